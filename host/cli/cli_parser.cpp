#include "cli_parser.hpp"

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <cerrno>
#include <cstdlib>
#include <sstream>

#include "rtcanboot/canopen_defs.hpp"
#include "rtcanboot/host/error.hpp"
#include "rtcanboot/host/fleet.hpp"
#include "rtcanboot/host/image.hpp"
#include "rtcanboot/memory_map.hpp"

namespace rtcanboot::host::cli {

namespace {

// The identity the firmware build gives the bootloader unless configured otherwise.
constexpr std::uint32_t kDefaultVendorId = RTCANBOOT_DEFAULT_VENDOR_ID;
constexpr std::uint32_t kDefaultProductCode = RTCANBOOT_DEFAULT_PRODUCT_CODE;

std::string one_line(std::string s) {
  for (char& c : s) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return s;
}

void add_input_options(CLI::App* cmd, InputArgs& in) {
  cmd->add_option("input", in.path,
                  "Firmware: ELF, Intel HEX, S-record, raw binary (with --load-address) or a "
                  "packed container")
      ->required();
  cmd->add_option("--format", in.format, "Input format: auto, elf, hex, srec, bin, container")
      ->capture_default_str();
  cmd->add_option("--load-address", in.load_address,
                  fmt::format("Address of a raw binary (the application starts at 0x{:08X})",
                              memory_map::kAppAddress));
  cmd->add_option(
      "--vendor-id", in.vendor_id,
      fmt::format("Container vendor-ID (0x1018:1); flash: default is the node's, pack: 0x{:08X}",
                  kDefaultVendorId));
  cmd->add_option(
      "--product-code", in.product_code,
      fmt::format("Container product code (0x1018:2); flash: default is the node's, pack: 0x{:08X}",
                  kDefaultProductCode));
  cmd->add_option("--image-version", in.image_version,
                  "Image version stored in the container (0x5F00:6)")
      ->capture_default_str();
}

// The values a command reads from its input options, checked as the command would.
void check_input(const InputArgs& in) {
  (void)parse_input_format(in.format);
  if (!in.load_address.empty()) (void)parse_u32(in.load_address, "--load-address");
  if (!in.vendor_id.empty()) (void)parse_u32(in.vendor_id, "--vendor-id");
  if (!in.product_code.empty()) (void)parse_u32(in.product_code, "--product-code");
  (void)parse_u32(in.image_version, "--image-version");
}

}  // namespace

std::uint32_t parse_u32(const std::string& text, const char* what) {
  if (text.empty()) throw Error(ErrorKind::kUsage, fmt::format("{}: empty value", what));
  char* end = nullptr;
  errno = 0;
  const unsigned long long v = std::strtoull(text.c_str(), &end, 0);
  if (errno != 0 || end == text.c_str() || *end != '\0' || v > 0xFFFF'FFFFULL || text[0] == '-') {
    throw Error(ErrorKind::kUsage,
                fmt::format("{}: '{}' is not a 32-bit number (decimal or 0x hex)", what, text));
  }
  return static_cast<std::uint32_t>(v);
}

std::uint8_t parse_node(const std::string& text, bool allow_all) {
  const std::uint32_t v = parse_u32(text, "--node");
  if ((v == 0 && !allow_all) || v > canopen::kMaxNodeId) {
    throw Error(ErrorKind::kUsage, fmt::format("--node: {} is not a node-ID (1..127{})", text,
                                               allow_all ? ", or 0 for all" : ""));
  }
  return static_cast<std::uint8_t>(v);
}

Parser::Parser()
    : app_(std::make_unique<CLI::App>(
          "rtcanboot - update the firmware of rtcanboot nodes (CANopen CiA 302-3) over CAN",
          "rtcanboot")) {
  CLI::App& app = *app_;
  Options& o = options;
  app.footer(
      "\nBus URIs:  socketcan://can0   slcan:///dev/ttyACM0?bitrate=500000   "
      "socketcand://HOST:29536/can0\n"
      "The bus defaults to $RTCANBOOT_BUS, else socketcan://can0.\n"
      "Exit codes: 0 ok, 1 internal, 2 usage, 3 bad input, 4 bus error, 5 no such node, 6 "
      "timeout,\n"
      "            7 image rejected, 8 transfer aborted, 9 wrong product, 130 interrupted.\n"
      "Examples:\n"
      "  rtcanboot pack app.elf -o app.rcb --vendor-id 0x1234 --product-code 0x1\n"
      "  rtcanboot pack app.elf -o app.rcb --sign vendor.key --security-counter 3\n"
      "  rtcanboot verify app.rcb --key vendor.key.pub\n"
      "  rtcanboot --bus socketcan://can0 flash --node 5 app.elf\n"
      "  rtcanboot --bus socketcand://127.0.0.1:29536/can0 info --node 5\n"
      "  rtcanboot lss auto --first-node 10");
  app.require_subcommand(1);
  app.fallthrough();  // global options may also follow the command: rtcanboot flash --bus URI ...
  app.set_version_flag("--version", std::string(RTCANBOOT_VERSION));
  app.add_option("-b,--bus", o.g.bus, "CAN bus URI (see below)");
  app.add_option("-t,--timeout", o.g.timeout_ms, "SDO response timeout in ms")
      ->capture_default_str()
      ->check(CLI::Range(1, 600000));
  app.add_option("--retries", o.g.retries, "Repeats of short SDO transfers after a timeout")
      ->capture_default_str()
      ->check(CLI::Range(0, 100));
  app.add_flag("--trace", o.g.trace, "Print every received frame to stderr");
  app.add_flag("-q,--quiet", o.g.quiet, "Print only errors");

  pack_ = app.add_subcommand(
      "pack",
      "Pack a firmware file into a container: the exact bytes any master writes into 0x1F50:1");
  add_input_options(pack_, o.pack_in);
  pack_->add_option("-o,--output", o.pack_out, "Container file to write")->required();
  pack_->add_option("--sign", o.pack_sign,
                    "Sign with this Ed25519 private key (PEM, as keygen writes it): adds the "
                    "signature record (header grows to 184 bytes)");
  pack_->add_option("--security-counter", o.pack_security_counter,
                    "Anti-rollback counter in the signature record (0..0xFFFFFFFF; needs --sign)");
  pack_->add_flag("--compress", o.pack_compress,
                  "Compress the payload (raw LZMA1, 32 KiB dictionary; header flag bit 1): "
                  "for nodes whose 0x5F02:7 has bit 1 set");

  verify_ = app.add_subcommand(
      "verify",
      "Check a container: header, CRCs, payload SHA-256, records; with --key its signature");
  verify_->add_option("container", o.verify_path, "Container file")->required();
  verify_->add_option("--key", o.verify_key,
                      "Public key (PEM, KEY.pub): the container must be signed by it");

  keygen_ = app.add_subcommand(
      "keygen",
      "Make an Ed25519 signing key pair: KEY (private, PEM PKCS#8, mode 0600) and KEY.pub");
  keygen_->add_option("-o,--out", o.keygen_out, "Private key file to write (KEY.pub beside it)")
      ->required();
  keygen_->add_flag("--force", o.keygen_force, "Replace existing key files (the old key is lost)");

  FlashArgs& fa = o.flash;
  flash_ = app.add_subcommand("flash",
                              "Update a node: stop, clear, download, verify, start (CiA 302-2)");
  add_input_options(flash_, fa.in);
  auto* one = flash_->add_option("-n,--node", fa.node, "Node-ID 1..127");
  auto* many = flash_->add_option(
      "--nodes", fa.nodes,
      "Update several nodes of one product at once: 10-17, 3,5,9 (docs/fleet-update.md)");
  auto* all = flash_->add_flag(
      "--all", fa.all, "Update every node a scan finds with the image's vendor and product");
  one->excludes(many)->excludes(all);
  many->excludes(all);
  flash_
      ->add_option("--mode", fa.mode,
                   "Fleet update: listen-along (one download, the others follow it), unicast "
                   "(a download per node, all at once) or sequential")
      ->capture_default_str()
      ->check(CLI::IsMember({"listen-along", "unicast", "sequential"}));
  flash_->add_flag("--json", fa.json, "Fleet update: per-node results as JSON on stdout");
  flash_->add_flag("--no-start", fa.no_start,
                   "Leave the new application stopped in the bootloader");
  flash_->add_flag("--force", fa.force, "Download even if 0x1F56 shows the same image installed");
  flash_->add_flag("--full", fa.full,
                   "Send the whole image after a clear, even when the node's sector digests "
                   "(0x5F02) show that most of it is in place already");
  flash_->add_flag("--no-compress", fa.no_compress,
                   "Never compress the container (by default it is compressed when the node "
                   "lists the compressed flag in 0x5F02:7)");
  flash_->add_flag("--force-product", fa.force_product,
                   "Flash an image made for another vendor/product");
  flash_->add_flag("--segmented", fa.segmented, "Use segmented SDO instead of block transfer");
  auto* no_clear = flash_->add_flag(
      "--no-clear", fa.no_clear,
      "Never send the 0x1F51 clear before the download (the default skips it only on an "
      "rtcanboot bootloader, where a refused image then leaves the installed application valid)");
  flash_
      ->add_flag("--clear", fa.clear,
                 "Always send the 0x1F51 clear before the download, as CiA 302-2 masters do")
      ->excludes(no_clear);
  flash_
      ->add_option("--flash-timeout", fa.flash_timeout_s,
                   "Seconds the node may stay busy erasing/programming")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600));
  flash_
      ->add_option("--boot-timeout", fa.boot_timeout_s,
                   "Seconds to wait for the application's boot-up")
      ->capture_default_str()
      ->check(CLI::Range(1, 600));
  flash_
      ->add_option("--confirm-timeout", fa.confirm_timeout_s,
                   "Seconds to wait for the new application to confirm that it runs (trial boot; "
                   "0: do not wait)")
      ->capture_default_str()
      ->check(CLI::Range(0, 3600));

  info_ = app.add_subcommand(
      "info", "Show a node's identity, bootloader/application state, 0x1F56 and 0x1F57");
  info_->add_option("-n,--node", o.info_node, "Node-ID 1..127")->required();
  info_->add_flag("--json", o.info_json, "Machine-readable output");

  scan_ = app.add_subcommand(
      "scan", "List the nodes on the bus (heartbeats and an SDO probe of 0x1000 on 1..127)");
  scan_->add_flag("--json", o.scan_json, "Machine-readable output");
  scan_->add_option("--listen", o.scan_listen, "Milliseconds to listen for heartbeats")
      ->capture_default_str()
      ->check(CLI::Range(0, 600000));
  scan_->add_option("--probe-timeout", o.scan_probe, "SDO probe timeout per node in ms")
      ->capture_default_str()
      ->check(CLI::Range(1, 10000));
  scan_->add_flag("--no-probe", o.scan_no_probe, "Only listen, send nothing");
  scan_->add_option("--bitrate", o.scan_bitrate,
                    "Bus bit rate the probe timing follows (default: the adapter's, as slcan "
                    "or the kernel's CAN controller has it; vcan and socketcand: 10000, the "
                    "slowest)");

  start_ =
      app.add_subcommand("start", "Start the application (0x1F51:1 = 1), or NMT start with --nmt");
  start_->add_option("-n,--node", o.start_node, "Node-ID 1..127 (0 = all with --nmt)")->required();
  start_->add_flag("--nmt", o.start_nmt, "Send NMT start instead");
  stop_ = app.add_subcommand(
      "stop",
      "Stop the application (0x1F51:1 = 0: back to the bootloader), or NMT stop with --nmt");
  stop_->add_option("-n,--node", o.stop_node, "Node-ID 1..127 (0 = all with --nmt)")->required();
  stop_->add_flag("--nmt", o.stop_nmt, "Send NMT stop instead");
  stop_
      ->add_flag("--catch", o.stop_catch,
                 "Repeat the request until the node's bootloader holds it: power-cycle the node "
                 "meanwhile, its boot window at power-on takes the request")
      ->excludes("--nmt");
  stop_
      ->add_option("--catch-timeout", o.catch_timeout_s,
                   "With --catch: seconds to keep trying before giving up")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600));
  stop_
      ->add_option("--catch-period", o.catch_period_ms,
                   "With --catch: milliseconds between two requests (at most 30 for the "
                   "default 50 ms window at 10 kbit/s)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  reset_ =
      app.add_subcommand("reset", "NMT reset node (or communication) and wait for the boot-up");
  reset_->add_option("-n,--node", o.reset_node, "Node-ID 1..127, 0 = all")->required();
  reset_->add_flag("--communication", o.reset_comm, "Reset communication instead of the node");
  reset_->add_flag("--no-wait", o.reset_no_wait, "Do not wait for the boot-up message");

  selftest_ = app.add_subcommand(
      "selftest",
      "Run the bootloader's bring-up self-test (flash, LUT, clocks, bit timing, reset carriers, "
      "watchdogs; docs/bring-up.md): the node resets into it, then its report is read");
  selftest_->add_option("-n,--node", o.selftest_node, "Node-ID 1..127 (the node's bootloader)")
      ->required();
  selftest_->add_flag("--json", o.selftest_json, "Machine-readable output");

  provision_ = app.add_subcommand(
      "provision-key",
      "Provision the signing keys of a bootloader built without one (0x5F03, docs/security.md): "
      "written once, then the node takes only images signed by one of them");
  provision_->add_option("-n,--node", o.provision_node, "Node-ID 1..127 (the node's bootloader)")
      ->required();
  provision_
      ->add_option("--key", o.provision_keys,
                   "Public key (PEM, KEY.pub as keygen writes it); 1 to 4 times")
      ->required()
      ->expected(1, 4)
      ->take_all();

  configure_ = app.add_subcommand(
      "configure",
      "Show or change a node's provisioning record (0x5F05, docs/security.md): node-ID, bit rate, "
      "boot and listen windows, trial boot attempts, hold limit; takes effect at its next reset");
  configure_->add_option("-n,--node", o.configure_node, "Node-ID 1..127 (the node's bootloader)")
      ->required();
  configure_->add_option("--set", o.configure_set,
                         "NAME=VALUE to change; repeatable. node-id=1..127|unconfigured, "
                         "bitrate=BIT/S, boot-window=MS|off, listen-window=MS|off, "
                         "boot-attempts=N|off, hold-limit=S|off, start-after-lss=on|off. "
                         "Without --set: show the record");
  configure_->add_option("--key", o.configure_key,
                         "Private key (PEM, as keygen writes it) that signs the request; needed "
                         "once the node holds a signing key");

  auto* lss_cmd = app.add_subcommand("lss",
                                     "CiA 305 Layer Setting Services: find unconfigured nodes, "
                                     "give them node-IDs, switch the bit rate");
  lss_cmd->require_subcommand(1);
  lss_cmd
      ->add_option("--lss-timeout", o.lss.timeout_ms,
                   "LSS answer timeout in ms (every unanswered Fastscan step costs this long)")
      ->capture_default_str()
      ->check(CLI::Range(1, 10000));
  auto add_hint = [&](CLI::App* c) {
    c->add_option("--vendor-id", o.lss.vendor_id, "Known vendor-ID (skips its Fastscan search)");
    c->add_option("--product-code", o.lss.product_code, "Known product code");
    c->add_option("--revision", o.lss.revision, "Known revision number");
  };
  lss_scan_ =
      lss_cmd->add_subcommand("scan", "Fastscan: list the identity of every unconfigured node");
  add_hint(lss_scan_);
  lss_scan_->add_flag("--json", o.lss.json, "Machine-readable output");
  lss_assign_ = lss_cmd->add_subcommand(
      "assign", "Give the node with this serial number (or full identity) a node-ID");
  add_hint(lss_assign_);
  lss_assign_->add_option("--serial", o.lss.serial, "Serial number (0x1018:4) of the node")
      ->required();
  lss_assign_->add_option("-n,--node", o.lss.node, "Node-ID 1..127 (255: none)")->required();
  lss_assign_->add_flag("--store", o.lss.store, "Store it in the node (survives a reset)");
  lss_assign_->add_flag("--json", o.lss.json, "Machine-readable output");
  lss_auto_ = lss_cmd->add_subcommand(
      "auto", "Number every unconfigured node from --first-node on and store it");
  add_hint(lss_auto_);
  lss_auto_->add_option("--first-node", o.lss.first_node, "First node-ID to give")
      ->capture_default_str();
  lss_auto_->add_flag("--no-store", o.lss.no_store,
                      "Do not store (the numbers are lost at the next reset)");
  lss_auto_->add_flag("--json", o.lss.json, "Machine-readable output");
  lss_bitrate_ = lss_cmd->add_subcommand(
      "bitrate",
      "Switch every node on the bus to another bit rate (configure, activate with a delay)");
  lss_bitrate_
      ->add_option("--index", o.lss.index,
                   "CiA 305 table index: 0 1M, 1 800k, 2 500k, 3 250k, 4 125k, 6 50k, 7 20k, 8 10k")
      ->required();
  lss_bitrate_
      ->add_option("--delay", o.lss.delay_ms,
                   "Switch delay in ms (the nodes are silent twice this long)")
      ->capture_default_str()
      ->check(CLI::Range(0, 65535));
  lss_bitrate_->add_flag("--store", o.lss.store,
                         "Store the new bit rate in every node before switching");
  lss_bitrate_->add_flag("--json", o.lss.json, "Machine-readable output");
  lss_identify_ = lss_cmd->add_subcommand(
      "identify", "Ask whether a node in an identity range (or any unconfigured node) is present");
  lss_identify_->add_option("--vendor-id", o.lss.vendor_id, "Vendor-ID");
  lss_identify_->add_option("--product-code", o.lss.product_code, "Product code");
  lss_identify_->add_option("--revision-low", o.lss.revision_low, "Lowest revision (default 0)");
  lss_identify_->add_option("--revision-high", o.lss.revision_high,
                            "Highest revision (default 0xFFFFFFFF)");
  lss_identify_->add_option("--serial-low", o.lss.serial_low, "Lowest serial (default 0)");
  lss_identify_->add_option("--serial-high", o.lss.serial_high,
                            "Highest serial (default 0xFFFFFFFF)");
  lss_identify_->add_flag("--non-configured", o.lss.non_configured,
                          "Ask for nodes without a node-ID instead");
  lss_identify_->add_flag("--json", o.lss.json, "Machine-readable output");
  lss_inquire_ = lss_cmd->add_subcommand(
      "inquire",
      "Read identity and node-ID of one node over LSS (by --serial, or the only node on the bus)");
  add_hint(lss_inquire_);
  lss_inquire_->add_option("--serial", o.lss.serial, "Serial number of the node");
  lss_inquire_->add_flag("--json", o.lss.json, "Machine-readable output");
}

Parser::~Parser() = default;

void Parser::check() {
  Options& o = options;
  if (*pack_) {
    o.command = Command::kPack;
    check_input(o.pack_in);
    if (!o.pack_security_counter.empty()) {
      if (o.pack_sign.empty()) throw Error(ErrorKind::kUsage, "--security-counter needs --sign");
      (void)parse_u32(o.pack_security_counter, "--security-counter");
    }
    if (pack_->count("--sign") != 0 && o.pack_sign.empty()) {
      throw Error(ErrorKind::kUsage, "--sign: the key file name is empty");
    }
  } else if (*flash_) {
    o.command = Command::kFlash;
    const bool fleet = !o.flash.nodes.empty() || o.flash.all;
    if (!fleet) {
      if (o.flash.node.empty()) {
        throw Error(ErrorKind::kUsage, "flash: say which node: --node N, --nodes LIST or --all");
      }
      o.node = parse_node(o.flash.node, false);
      if (o.flash.json || flash_->count("--mode") != 0) {
        throw Error(ErrorKind::kUsage, "flash: --json and --mode go with --nodes or --all");
      }
    } else if (!o.flash.nodes.empty()) {
      (void)parse_node_list(o.flash.nodes);
    }
    check_input(o.flash.in);
  } else if (*info_) {
    o.command = Command::kInfo;
    o.node = parse_node(o.info_node, false);
  } else if (*scan_) {
    o.command = Command::kScan;
    o.scan_rate = o.scan_bitrate.empty() ? 0 : parse_u32(o.scan_bitrate, "--bitrate");
    if (o.scan_rate != 0 && (o.scan_rate < 10'000 || o.scan_rate > 1'000'000)) {
      throw Error(
          ErrorKind::kUsage,
          fmt::format("--bitrate: {} is not a CAN bit rate (10000..1000000)", o.scan_bitrate));
    }
  } else if (*start_) {
    o.command = Command::kStart;
    o.node = parse_node(o.start_node, o.start_nmt);
  } else if (*stop_) {
    o.command = Command::kStop;
    o.node = parse_node(o.stop_node, o.stop_nmt);
    if (!o.stop_catch &&
        (stop_->count("--catch-timeout") != 0 || stop_->count("--catch-period") != 0)) {
      throw Error(ErrorKind::kUsage, "--catch-timeout and --catch-period need --catch");
    }
  } else if (*reset_) {
    o.command = Command::kReset;
    o.node = parse_node(o.reset_node, true);
  } else if (*selftest_) {
    o.command = Command::kSelfTest;
    o.node = parse_node(o.selftest_node, false);
  } else if (*lss_scan_) {
    o.command = Command::kLssScan;
  } else if (*lss_assign_) {
    o.command = Command::kLssAssign;
  } else if (*lss_auto_) {
    o.command = Command::kLssAuto;
  } else if (*lss_bitrate_) {
    o.command = Command::kLssBitrate;
  } else if (*lss_identify_) {
    o.command = Command::kLssIdentify;
  } else if (*lss_inquire_) {
    o.command = Command::kLssInquire;
  } else if (*verify_) {
    o.command = Command::kVerify;
    if (verify_->count("--key") != 0 && o.verify_key.empty()) {
      throw Error(ErrorKind::kUsage, "--key: the key file name is empty");
    }
  } else if (*provision_) {
    o.command = Command::kProvisionKey;
    o.node = parse_node(o.provision_node, false);
    if (o.provision_keys.empty() || o.provision_keys.size() > 4) {
      throw Error(ErrorKind::kUsage, "--key: give 1 to 4 public key files");
    }
    for (const std::string& key : o.provision_keys) {
      if (key.empty()) throw Error(ErrorKind::kUsage, "--key: the key file name is empty");
    }
  } else if (*configure_) {
    o.command = Command::kConfigure;
    o.node = parse_node(o.configure_node, false);
    for (const std::string& setting : o.configure_set) {
      parse_provisioning_setting(setting, o.configure_changes);
    }
    if (configure_->count("--key") != 0 && o.configure_key.empty()) {
      throw Error(ErrorKind::kUsage, "--key: the key file name is empty");
    }
    if (!o.configure_key.empty() && o.configure_set.empty()) {
      throw Error(ErrorKind::kUsage, "--key signs a change: give the settings with --set");
    }
  } else if (*keygen_) {
    o.command = Command::kKeygen;
    if (o.keygen_out.empty()) throw Error(ErrorKind::kUsage, "--out: the key file name is empty");
  } else {
    throw Error(ErrorKind::kUsage, "no command given");
  }
}

ParseResult Parser::parse(int argc, const char* const* argv) {
  ParseResult result;
  try {
    app_->parse(argc, argv);
  } catch (const CLI::Success& e) {
    std::ostringstream out, err;
    result.exit_code = app_->exit(e, out, err);
    result.out = out.str();
    result.err = err.str();
    return result;
  } catch (const CLI::ParseError& e) {
    result.exit_code = exit_code(ErrorKind::kUsage);
    result.err = fmt::format("rtcanboot: {} (see rtcanboot --help)", one_line(e.what()));
    return result;
  }
  try {
    check();
  } catch (const std::exception& e) {
    const FailureReport failure = report_failure(e);
    result.exit_code = failure.exit_code;
    result.err = failure.line;
    return result;
  }
  result.run = true;
  return result;
}

}  // namespace rtcanboot::host::cli
