// The command line of `rtcanboot`: the CLI11 parser, the options it fills and the checks of every
// value the commands take (node-IDs, numbers, bit rate, input format), without touching a bus or
// a file. main() runs the command it returns; the CLI fuzz target (fuzz/cli_args_fuzz.cpp) runs
// the parser alone.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "rtcanboot/host/configure.hpp"

namespace CLI {
class App;
}

namespace rtcanboot::host::cli {

struct Globals {
  std::string bus;
  int timeout_ms = 1000;
  int retries = 1;
  bool trace = false;
  bool quiet = false;
};

struct InputArgs {
  std::string path;
  std::string format = "auto";
  std::string load_address;
  std::string vendor_id;
  std::string product_code;
  std::string image_version = "0";
};

struct FlashArgs {
  InputArgs in;
  std::string node;
  std::string nodes;                  // --nodes 10-17 / 3,5,9: fleet update (docs/fleet-update.md)
  bool all = false;                   // --all: every node a scan finds with the image's product
  std::string mode = "listen-along";  // fleet: listen-along, unicast, sequential
  bool json = false;                  // fleet: per-node results as JSON on stdout
  bool no_start = false;
  bool force = false;
  bool full = false;
  bool no_compress = false;
  bool force_product = false;
  bool segmented = false;
  bool no_clear = false;
  bool clear = false;
  int flash_timeout_s = 120;
  int boot_timeout_s = 10;
  int confirm_timeout_s = 30;
};

enum class Command {
  kNone,
  kPack,
  kFlash,
  kInfo,
  kScan,
  kStart,
  kStop,
  kReset,
  kLssScan,
  kLssAssign,
  kLssAuto,
  kLssBitrate,
  kLssIdentify,
  kLssInquire,
  kSelfTest,
  kKeygen,
  kProvisionKey,
  kConfigure,
  kVerify
};

// LSS (CiA 305) commands' options; values are checked by the commands before the bus opens.
struct LssArgs {
  int timeout_ms = 20;
  bool json = false;
  std::string vendor_id, product_code, revision, serial;
  std::string node;
  bool store = false;
  bool no_store = false;
  std::string first_node = "1";
  int index = -1;
  int delay_ms = 100;
  bool non_configured = false;
  std::string revision_low, revision_high, serial_low, serial_high;
};

struct Options {
  Globals g;
  InputArgs pack_in;
  std::string pack_out;
  std::string pack_sign;              // pack --sign: the private key file
  bool pack_compress = false;         // pack --compress
  std::string pack_security_counter;  // pack --security-counter (needs --sign)
  std::string verify_path;            // verify: the container
  std::string verify_key;             // verify --key: the public key file
  FlashArgs flash;
  std::string info_node;
  bool info_json = false;
  std::string selftest_node;
  bool selftest_json = false;
  std::string provision_node;               // provision-key --node
  std::vector<std::string> provision_keys;  // provision-key --key (1..4 public key files)
  std::string configure_node;               // configure --node
  std::string configure_key;                // configure --key: the private key file
  std::vector<std::string> configure_set;   // configure --set NAME=VALUE
  bool scan_json = false;
  int scan_listen = 1500;
  int scan_probe = 100;
  bool scan_no_probe = false;
  std::string scan_bitrate;
  std::string start_node, stop_node, reset_node;
  bool start_nmt = false, stop_nmt = false, reset_comm = false, reset_no_wait = false;
  // stop --catch: repeat the entry request while the node is power-cycled (catch_node.hpp).
  bool stop_catch = false;
  int catch_timeout_s = 60;
  int catch_period_ms = 20;
  LssArgs lss;
  std::string keygen_out;  // keygen: the private key file; the public key goes to <out>.pub
  bool keygen_force = false;

  // Filled by the checks (valid when parse() says kRun).
  Command command = Command::kNone;
  std::uint8_t node = 0;                  // the command's node-ID (0 = all, NMT and reset only)
  std::uint32_t scan_rate = 0;            // scan --bitrate (0: the adapter's)
  ProvisioningChanges configure_changes;  // configure --set, parsed
};

struct ParseResult {
  bool run = false;   // run options.command; else end with exit_code
  int exit_code = 0;  // 0 after --help / --version, 2 (usage) for bad arguments
  std::string out;    // text for stdout (help, version)
  std::string err;    // text for stderr (the usage error, one line)
};

// "32-bit number (decimal or 0x hex)" and node-ID parsing; throw host::Error(kUsage).
std::uint32_t parse_u32(const std::string& text, const char* what);
std::uint8_t parse_node(const std::string& text, bool allow_all);

class Parser {
 public:
  Parser();
  ~Parser();
  Parser(const Parser&) = delete;
  Parser& operator=(const Parser&) = delete;

  // Parses argv (argv[0] is the program name) and checks the values. Never throws.
  ParseResult parse(int argc, const char* const* argv);
  Options options;

 private:
  void check();  // throws host::Error(kUsage)
  std::unique_ptr<CLI::App> app_;
  CLI::App* pack_ = nullptr;
  CLI::App* flash_ = nullptr;
  CLI::App* info_ = nullptr;
  CLI::App* scan_ = nullptr;
  CLI::App* start_ = nullptr;
  CLI::App* stop_ = nullptr;
  CLI::App* reset_ = nullptr;
  CLI::App* selftest_ = nullptr;
  CLI::App* provision_ = nullptr;
  CLI::App* configure_ = nullptr;
  CLI::App* lss_scan_ = nullptr;
  CLI::App* lss_assign_ = nullptr;
  CLI::App* lss_auto_ = nullptr;
  CLI::App* lss_bitrate_ = nullptr;
  CLI::App* lss_identify_ = nullptr;
  CLI::App* lss_inquire_ = nullptr;
  CLI::App* keygen_ = nullptr;
  CLI::App* verify_ = nullptr;
};

}  // namespace rtcanboot::host::cli
