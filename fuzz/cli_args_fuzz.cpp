// The host tool's command line (issue 16, item 17): argv vectors built from the input go through
// the CLI11 parser and the value checks of `rtcanboot` (host/cli/cli_parser.cpp) without running a
// command. Invariants: no crash, no exception escapes; the outcome is "run a command" with every
// checked value in range, exit 0 only for --help / --version (with text for stdout), or the
// documented usage code 2 with a one-line message; parsing the same argv again gives the same.
//
// Input: the arguments after the program name, separated by NUL bytes (at most 24). A byte 0x01
// at the start of an argument is replaced by a word from a dictionary of the tool's own commands
// and options (byte after it = which word), so that most inputs reach the commands.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "cli_parser.hpp"
#include "fuzz_check.hpp"
#include "rtcanboot/host/error.hpp"

namespace {

using rtcanboot::host::cli::Command;
using rtcanboot::host::cli::Parser;
using rtcanboot::host::cli::ParseResult;

const char* const kWords[] = {
    "pack",
    "flash",
    "info",
    "scan",
    "start",
    "stop",
    "reset",
    "--node",
    "-n",
    "--bus",
    "-b",
    "--timeout",
    "-t",
    "--retries",
    "--trace",
    "-q",
    "--quiet",
    "--help",
    "-h",
    "--version",
    "--format",
    "--load-address",
    "--vendor-id",
    "--product-code",
    "--image-version",
    "-o",
    "--output",
    "--no-start",
    "--force",
    "--full",
    "--force-product",
    "--segmented",
    "--flash-timeout",
    "--boot-timeout",
    "--confirm-timeout",
    "--json",
    "--listen",
    "--probe-timeout",
    "--no-probe",
    "--bitrate",
    "--nmt",
    "--communication",
    "--no-wait",
    "5",
    "0",
    "127",
    "128",
    "0x7F",
    "-1",
    "app.elf",
    "socketcan://can0",
    "--node=5",
    "--",
    "bin",
    "elf",
    "1000000",
    "4294967296",
    "0x",
    "",
    "keygen",
    "--out",
    "verify",
    "--key",
    "--sign",
    "--security-counter",
    "--no-clear",
    "--clear",
    "configure",
    "--set",
    "node-id=7",
    "bitrate=500000",
    "hold-limit=off",
    "listen-window=60000",
    "boot-attempts=255",
};
constexpr std::size_t kWordCount = sizeof kWords / sizeof kWords[0];

std::vector<std::string> arguments(const std::uint8_t* data, std::size_t size) {
  std::vector<std::string> args;
  std::string current;
  for (std::size_t i = 0; i < size && args.size() < 24; ++i) {
    if (data[i] == 0) {
      args.push_back(current);
      current.clear();
    } else if (data[i] == 1 && current.empty() && i + 1 < size) {
      current = kWords[data[++i] % kWordCount];
    } else {
      current.push_back(static_cast<char>(data[i]));
    }
  }
  if (args.size() < 24 && (!current.empty() || (size > 0 && data[size - 1] == 0)))
    args.push_back(current);
  return args;
}

ParseResult run(const std::vector<std::string>& args, Parser& parser) {
  std::vector<const char*> argv;
  argv.push_back("rtcanboot");
  for (const std::string& a : args) argv.push_back(a.c_str());
  argv.push_back(nullptr);
  return parser.parse(static_cast<int>(argv.size() - 1), argv.data());
}

bool mentions(const std::vector<std::string>& args, const char* word) {
  for (const std::string& a : args) {
    if (a.find(word) != std::string::npos) return true;
  }
  return false;
}

// -h, alone or among combined short flags (-qh).
bool asks_for_help(const std::vector<std::string>& args) {
  for (const std::string& a : args) {
    if (a.size() >= 2 && a[0] == '-' && a[1] != '-' && a.find('h') != std::string::npos)
      return true;
  }
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > 4096) return 0;
  const std::vector<std::string> args = arguments(data, size);
  Parser parser;
  const ParseResult result = run(args, parser);

  if (result.run) {
    const auto& o = parser.options;
    FUZZ_CHECK(o.command != Command::kNone);
    FUZZ_CHECK(result.exit_code == 0 && result.err.empty());
    FUZZ_CHECK(o.g.timeout_ms >= 1 && o.g.timeout_ms <= 600'000);
    FUZZ_CHECK(o.g.retries >= 0 && o.g.retries <= 100);
    FUZZ_CHECK(o.node <= 127);
    switch (o.command) {
      case Command::kFlash:
        FUZZ_CHECK(o.node >= 1 && !o.flash.in.path.empty());
        FUZZ_CHECK(o.flash.flash_timeout_s >= 1 && o.flash.flash_timeout_s <= 3600);
        FUZZ_CHECK(o.flash.boot_timeout_s >= 1 && o.flash.boot_timeout_s <= 600);
        FUZZ_CHECK(o.flash.confirm_timeout_s >= 0 && o.flash.confirm_timeout_s <= 3600);
        break;
      case Command::kInfo:
      case Command::kSelfTest:
        FUZZ_CHECK(o.node >= 1);
        break;
      case Command::kStart:
        FUZZ_CHECK(o.node >= 1 || o.start_nmt);
        break;
      case Command::kStop:
        FUZZ_CHECK(o.node >= 1 || o.stop_nmt);
        break;
      case Command::kScan:
        FUZZ_CHECK(o.scan_rate == 0 || (o.scan_rate >= 10'000 && o.scan_rate <= 1'000'000));
        FUZZ_CHECK(o.scan_listen >= 0 && o.scan_listen <= 600'000);
        FUZZ_CHECK(o.scan_probe >= 1 && o.scan_probe <= 10'000);
        break;
      case Command::kLssScan:
      case Command::kLssAssign:
      case Command::kLssAuto:
      case Command::kLssBitrate:
      case Command::kLssIdentify:
      case Command::kLssInquire:
        FUZZ_CHECK(o.lss.timeout_ms >= 1 && o.lss.timeout_ms <= 10'000);
        FUZZ_CHECK(o.lss.delay_ms >= 0 && o.lss.delay_ms <= 65'535);
        break;
      case Command::kKeygen:
        FUZZ_CHECK(!o.keygen_out.empty());
        break;
      case Command::kProvisionKey:
        FUZZ_CHECK(o.node >= 1);
        FUZZ_CHECK(!o.provision_keys.empty() && o.provision_keys.size() <= 4);
        for (const std::string& key : o.provision_keys) FUZZ_CHECK(!key.empty());
        break;
      case Command::kConfigure: {
        FUZZ_CHECK(o.node >= 1);
        FUZZ_CHECK(o.configure_changes.empty() == o.configure_set.empty());
        FUZZ_CHECK(o.configure_key.empty() || !o.configure_set.empty());
        // Every accepted setting is one a request can carry.
        const auto& c = o.configure_changes;
        FUZZ_CHECK(!c.node_id || rtcanboot::lss::valid_node_id(*c.node_id));
        FUZZ_CHECK(!c.bitrate || rtcanboot::is_cia301_bitrate(*c.bitrate));
        FUZZ_CHECK(!c.listen_window_ms || *c.listen_window_ms <= rtcanboot::kMaxListenWindowMs);
        FUZZ_CHECK(!c.boot_attempts || *c.boot_attempts != 255);
        break;
      }
      case Command::kVerify:
        FUZZ_CHECK(!o.verify_path.empty());
        break;
      case Command::kPack:
        // A counter only with a key to sign with.
        FUZZ_CHECK(o.pack_security_counter.empty() || !o.pack_sign.empty());
        break;
      case Command::kReset:
      case Command::kNone:
        break;
    }
  } else if (result.exit_code == 0) {
    // Only help and version end the program successfully without a command.
    FUZZ_CHECK(asks_for_help(args) || mentions(args, "--help") || mentions(args, "--version"));
    FUZZ_CHECK(!result.out.empty());
  } else {
    FUZZ_CHECK(result.exit_code == rtcanboot::host::exit_code(rtcanboot::host::ErrorKind::kUsage));
    FUZZ_CHECK(!result.err.empty());
    FUZZ_CHECK(result.err.find('\n') == std::string::npos);
  }

  // The parser is a pure function of argv.
  Parser again;
  const ParseResult second = run(args, again);
  FUZZ_CHECK(second.run == result.run && second.exit_code == result.exit_code &&
             second.err == result.err);
  if (result.run)
    FUZZ_CHECK(again.options.command == parser.options.command &&
               again.options.node == parser.options.node);
  return 0;
}
