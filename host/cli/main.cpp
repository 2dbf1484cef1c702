// rtcanboot: pack images and update rtcanboot nodes (or any CiA 302-3 node) over CAN.
// A thin layer over the rtcanboot_host library: parse options, call the library, print.
#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "rtcanboot/canopen_defs.hpp"
#include "rtcanboot/host/error.hpp"
#include "rtcanboot/host/image.hpp"
#include "rtcanboot/host/master.hpp"
#include "rtcanboot/host/progress.hpp"
#include "rtcanboot/host/scan.hpp"
#include "rtcanboot/host/transport.hpp"
#include "rtcanboot/host/update.hpp"
#include "rtcanboot/memory_map.hpp"

#include "cli_parser.hpp"

using namespace rtcanboot;
using namespace rtcanboot::host;
using rtcanboot::host::cli::FlashArgs;
using rtcanboot::host::cli::Globals;
using rtcanboot::host::cli::InputArgs;
using rtcanboot::host::cli::parse_node;
using rtcanboot::host::cli::parse_u32;

namespace {

constexpr const char* kDefaultBus = "socketcan://can0";
// The identity the firmware build gives the bootloader unless configured otherwise.
constexpr std::uint32_t kDefaultVendorId = RTCANBOOT_DEFAULT_VENDOR_ID;
constexpr std::uint32_t kDefaultProductCode = RTCANBOOT_DEFAULT_PRODUCT_CODE;

std::string json_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) out += fmt::format("\\u{:04x}", c);
        else out += c;
    }
  }
  return out;
}

struct Bus {
  std::unique_ptr<Transport> transport;
  std::unique_ptr<Master> master;
};

Bus open_bus(const Globals& g) {
  std::string uri = g.bus;
  if (uri.empty()) {
    const char* env = std::getenv("RTCANBOOT_BUS");
    uri = env && *env ? env : kDefaultBus;
  }
  const BusUri parsed = parse_bus_uri(uri);
  Bus bus;
  bus.transport = open_transport(parsed);
  // The master only listens to SDO answers (0x580..0x5FF) and heartbeats (0x700..0x77F); where
  // the transport has kernel filters (SocketCAN) the rest of a busy bus never reaches us.
  const RxFilter filters[] = {{canopen::kSdoTxBase, 0x780, false}, {canopen::kHeartbeatBase, 0x780, false}};
  bus.transport->set_filters(filters);
  MasterOptions mo;
  mo.sdo.timeout = static_cast<Micros>(g.timeout_ms) * 1000;
  mo.retries = g.retries;
  bus.master = std::make_unique<Master>(*bus.transport, mo);
  bus.master->on_status = [quiet = g.quiet](const BusStatus& s) {
    if (!quiet && s.level != BusStatus::Level::kInfo) fmt::print(stderr, "rtcanboot: bus: {}\n", s.text);
  };
  if (g.trace) {
    bus.master->on_frame = [](const CanFrame& f, Micros t) {
      fmt::print(stderr, "{:>12.6f} rx {}\n", static_cast<double>(t) / 1e6, format_frame(f));
    };
  }
  return bus;
}

std::string hex32(std::optional<std::uint32_t> v) { return v ? fmt::format("0x{:08X}", *v) : "-"; }

std::string version_text(std::uint32_t v) {
  return fmt::format("{}.{}.{}", v >> 16, (v >> 8) & 0xFF, v & 0xFF);
}

// ------------------------------------------------------------------------------------ commands
LoadedInput load(const InputArgs& in) {
  LoadOptions lo;
  lo.format = parse_input_format(in.format);
  if (!in.load_address.empty()) lo.load_address = parse_u32(in.load_address, "--load-address");
  return load_input(in.path, lo);
}

int cmd_pack(const Globals& g, const InputArgs& in, const std::string& output) {
  const LoadedInput input = load(in);
  std::vector<std::uint8_t> bytes;
  if (input.container) {
    bytes = input.container->bytes;
  } else {
    PackOptions p;
    p.vendor_id = in.vendor_id.empty() ? kDefaultVendorId : parse_u32(in.vendor_id, "--vendor-id");
    p.product_code = in.product_code.empty() ? kDefaultProductCode : parse_u32(in.product_code, "--product-code");
    p.image_version = parse_u32(in.image_version, "--image-version");
    bytes = pack(*input.image, p);
  }
  write_file(output, bytes);
  if (!g.quiet) {
    const auto c = parse_container(bytes, output);
    fmt::print("{}: {} bytes ({} payload at 0x{:08X}), CRC-32 0x{:08X}, vendor 0x{:08X}, product 0x{:08X}, version {}\n",
               output, bytes.size(), c.header.payload_length, c.header.load_address, c.header.payload_crc32,
               c.header.vendor_id, c.header.product_code, c.header.image_version);
  }
  return 0;
}

int cmd_flash(const Globals& g, const FlashArgs& a) {
  UpdateOptions o;
  o.node = parse_node(a.node, false);
  const LoadedInput input = load(a.in);  // bad input fails before the bus is touched
  if (!a.in.vendor_id.empty()) o.vendor_id = parse_u32(a.in.vendor_id, "--vendor-id");
  if (!a.in.product_code.empty()) o.product_code = parse_u32(a.in.product_code, "--product-code");
  o.image_version = parse_u32(a.in.image_version, "--image-version");
  o.start = !a.no_start;
  o.force = a.force;
  o.force_product = a.force_product;
  o.allow_block = !a.segmented;
  o.flash_timeout = static_cast<Micros>(a.flash_timeout_s) * 1'000'000;
  o.boot_timeout = static_cast<Micros>(a.boot_timeout_s) * 1'000'000;
  o.confirm_timeout = static_cast<Micros>(a.confirm_timeout_s) * 1'000'000;
  Bus bus = open_bus(g);
  SteadyClock wall;
  ProgressDisplay progress(
      [](const std::string& text) {
        fmt::print("{}", text);
        std::fflush(stdout);
      },
      ::isatty(STDOUT_FILENO) != 0, [&wall] { return wall.now(); });
  UpdateEvents ev;
  ev.step = [&](const std::string& s) {
    if (!g.quiet) fmt::print("{}\n", s);
  };
  ev.progress = [&](std::uint64_t d, std::uint64_t t) {
    if (!g.quiet) progress.update(d, t);
  };
  const UpdateResult r = run_update(*bus.master, input, o, ev);
  if (!g.quiet && !r.skipped) {
    const double secs = static_cast<double>(r.download_time) / 1e6;
    fmt::print("done: {} bytes in {:.1f} s ({:.1f} KiB/s, {} transfer)\n", r.bytes, secs,
               secs > 0 ? static_cast<double>(r.bytes) / 1024.0 / secs : 0.0, r.used_block ? "block" : "segmented");
  }
  if (const std::string w = bus.transport->workarounds(); !g.quiet && !w.empty()) fmt::print("{}\n", w);
  return 0;
}

int cmd_info(const Globals& g, const std::string& node_text, bool json) {
  const std::uint8_t node = parse_node(node_text, false);
  Bus bus = open_bus(g);
  const NodeInfo i = read_node_info(*bus.master, node);
  if (json) {
    std::string s = fmt::format("{{\"node\": {}", node);
    auto num = [&](const char* k, auto v) {
      if (v) s += fmt::format(", \"{}\": {}", k, *v);
    };
    auto str = [&](const char* k, const std::optional<std::string>& v) {
      if (v) s += fmt::format(", \"{}\": \"{}\"", k, json_escape(*v));
    };
    num("device_type", i.device_type);
    num("vendor_id", i.vendor_id);
    num("product_code", i.product_code);
    num("revision", i.revision);
    num("serial", i.serial);
    str("device_name", i.device_name);
    str("software_version", i.software_version);
    num("heartbeat_ms", i.heartbeat_ms);
    if (i.running_program) {
      s += fmt::format(", \"running\": \"{}\"", *i.running_program == canopen::kRunningApplication ? "application" : "bootloader");
    }
    if (i.bootloader_version) s += fmt::format(", \"bootloader_version\": \"{}\"", version_text(*i.bootloader_version));
    num("app_region_start", i.app_start);
    num("app_region_size", i.app_size);
    if (i.boot_reason) {
      s += fmt::format(", \"boot_reason\": {}, \"boot_reason_text\": \"{}\"", *i.boot_reason, describe_boot_reason(*i.boot_reason));
    }
    num("image_version", i.image_version);
    if (i.trial_state) {
      s += fmt::format(", \"trial_state\": {}, \"trial_state_text\": \"{}\"", *i.trial_state, describe_trial_state(*i.trial_state));
    }
    num("boot_attempts", i.boot_attempts);
    if (i.program_state) {
      s += fmt::format(", \"program_state\": {}, \"program_state_text\": \"{}\"", *i.program_state, describe_program_state(*i.program_state));
    }
    num("software_id", i.software_id);
    if (i.flash_status) {
      s += fmt::format(", \"flash_status\": {}, \"flash_status_text\": \"{}\"", *i.flash_status, json_escape(describe_flash_status(*i.flash_status)));
    }
    s += "}";
    fmt::print("{}\n", s);
    return 0;
  }
  fmt::print("node {}\n", node);
  auto row = [](const char* k, const std::string& v) { fmt::print("  {:<23}{}\n", k, v); };
  row("device type", hex32(i.device_type));
  row("vendor-ID", hex32(i.vendor_id));
  row("product code", hex32(i.product_code));
  row("revision", hex32(i.revision));
  row("serial number", hex32(i.serial));
  if (i.device_name) row("device name", *i.device_name);
  if (i.software_version && !i.software_version->empty()) row("software version", *i.software_version);
  if (i.heartbeat_ms) row("heartbeat", fmt::format("{} ms", *i.heartbeat_ms));
  if (i.running_program) {
    const bool app = *i.running_program == canopen::kRunningApplication;
    row("running", app ? "application" : "bootloader");
    if (i.bootloader_version) row("bootloader version", version_text(*i.bootloader_version));
    if (!app && i.boot_reason) row("boot reason", describe_boot_reason(*i.boot_reason));
    if (i.app_start && i.app_size) row("application region", fmt::format("0x{:08X}, {} KiB", *i.app_start, *i.app_size / 1024));
    if (i.image_version) row("image version", fmt::format("{} (0x{:08X})", *i.image_version, *i.image_version));
    if (i.trial_state) {
      row("trial boot", *i.trial_state == static_cast<std::uint8_t>(canopen::TrialState::kOnTrial) && i.boot_attempts
                            ? fmt::format("{}, {} unconfirmed start(s)", describe_trial_state(*i.trial_state), *i.boot_attempts)
                            : std::string(describe_trial_state(*i.trial_state)));
    }
  } else {
    row("running", "unknown (no 0x5F00: not an rtcanboot node)");
  }
  if (i.program_state) row("program (0x1F51)", fmt::format("{} ({})", describe_program_state(*i.program_state), *i.program_state));
  if (i.software_id) row("software id (0x1F56)", fmt::format("0x{:08X}{}", *i.software_id, *i.software_id == 0 ? " (no program)" : ""));
  if (i.flash_status) row("flash status (0x1F57)", fmt::format("{} (0x{:08X})", describe_flash_status(*i.flash_status), *i.flash_status));
  return 0;
}

int cmd_scan(const Globals& g, bool json, int listen_ms, int probe_ms, bool probe,
             std::uint32_t bitrate) {
  Bus bus = open_bus(g);
  ScanOptions o;
  o.listen = static_cast<Micros>(listen_ms) * 1000;
  o.probe_timeout = static_cast<Micros>(probe_ms) * 1000;
  o.probe = probe;
  o.bitrate = bitrate;
  const std::vector<ScanNode> rows = scan(*bus.master, o);
  auto running_text = [](const ScanNode& r) -> std::string {
    if (!r.running) return "-";
    return *r.running == canopen::kRunningApplication ? "application" : "bootloader";
  };
  if (json) {
    std::string s = "[";
    for (std::size_t k = 0; k < rows.size(); ++k) {
      const ScanNode& r = rows[k];
      if (k) s += ", ";
      s += fmt::format("{{\"node\": {}, \"sdo\": {}", r.node, r.sdo ? "true" : "false");
      if (r.heartbeat) s += fmt::format(", \"nmt_state\": \"{}\"", to_string(r.heartbeat->state));
      if (r.vendor_id) s += fmt::format(", \"vendor_id\": {}", *r.vendor_id);
      if (r.product_code) s += fmt::format(", \"product_code\": {}", *r.product_code);
      if (r.running) s += fmt::format(", \"running\": \"{}\"", running_text(r));
      s += "}";
    }
    s += "]";
    fmt::print("{}\n", s);
    return 0;
  }
  if (rows.empty()) {
    fmt::print("no nodes found on {}\n", bus.transport->describe());
    return 0;
  }
  fmt::print("{:>4}  {:<16} {:<5} {:<10} {:<10} {}\n", "node", "NMT state", "SDO", "vendor", "product", "running");
  for (const ScanNode& r : rows) {
    fmt::print("{:>4}  {:<16} {:<5} {:<10} {:<10} {}\n", r.node,
               r.heartbeat ? to_string(r.heartbeat->state) : "-", r.sdo ? "yes" : "no",
               r.vendor_id ? hex32(r.vendor_id) : "-", r.product_code ? hex32(r.product_code) : "-",
               running_text(r));
  }
  return 0;
}

int cmd_program(const Globals& g, const std::string& node_text, canopen::ProgramCommand command, bool nmt) {
  Bus bus = open_bus(g);
  Master& m = *bus.master;
  if (nmt) {
    const std::uint8_t node = parse_node(node_text, true);
    m.nmt(command == canopen::ProgramCommand::kStart ? canopen::NmtCommand::kStart : canopen::NmtCommand::kStop, node);
    return 0;
  }
  const std::uint8_t node = parse_node(node_text, false);
  const Micros before = m.now();
  try {
    m.download_u8(node, canopen::od::kProgramControl, 1, static_cast<std::uint8_t>(command));
  } catch (const SdoError& e) {
    if (!e.timed_out()) throw;
    // A node that resets on start/stop may not answer; it announces itself with a boot-up.
    if (!m.wait_heartbeat(node, before, m.now() + 3'000'000, true)) {
      throw Error(ErrorKind::kNoNode, fmt::format("node {} does not answer (no SDO response, no boot-up)", node));
    }
  }
  if (!g.quiet) {
    fmt::print("node {}: program {}\n", node, command == canopen::ProgramCommand::kStart ? "started" : "stopped");
  }
  return 0;
}

int cmd_reset(const Globals& g, const std::string& node_text, bool communication, bool wait) {
  const std::uint8_t node = parse_node(node_text, true);
  Bus bus = open_bus(g);
  Master& m = *bus.master;
  const Micros before = m.now();
  m.nmt(communication ? canopen::NmtCommand::kResetCommunication : canopen::NmtCommand::kResetNode, node);
  if (wait && node != 0) {
    if (!m.wait_heartbeat(node, before, m.now() + 5'000'000, true)) {
      throw Error(ErrorKind::kNoNode, fmt::format("node {} sent no boot-up message within 5 s after the reset", node));
    }
    if (!g.quiet) fmt::print("node {} is back (boot-up received)\n", node);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // Ctrl-C / SIGTERM abort a running transfer on the bus (abort frame) instead of leaving it
  // hanging; a second one ends the process at once.
  install_interrupt_handlers();

  cli::Parser parser;
  const cli::ParseResult parsed = parser.parse(argc, argv);
  if (!parsed.run) {
    std::fputs(parsed.out.c_str(), stdout);
    if (!parsed.err.empty()) fmt::print(stderr, "{}\n", parsed.err);
    return parsed.exit_code;
  }
  const cli::Options& o = parser.options;
  const cli::Globals& g = o.g;

  try {
    switch (o.command) {
      case cli::Command::kPack:
        return cmd_pack(g, o.pack_in, o.pack_out);
      case cli::Command::kFlash:
        return cmd_flash(g, o.flash);
      case cli::Command::kInfo:
        return cmd_info(g, o.info_node, o.info_json);
      case cli::Command::kScan:
        return cmd_scan(g, o.scan_json, o.scan_listen, o.scan_probe, !o.scan_no_probe, o.scan_rate);
      case cli::Command::kStart:
        return cmd_program(g, o.start_node, canopen::ProgramCommand::kStart, o.start_nmt);
      case cli::Command::kStop:
        return cmd_program(g, o.stop_node, canopen::ProgramCommand::kStop, o.stop_nmt);
      case cli::Command::kReset:
        return cmd_reset(g, o.reset_node, o.reset_comm, !o.reset_no_wait);
      case cli::Command::kNone:
        break;
    }
  } catch (const std::exception& e) {
    std::fflush(stdout);
    const FailureReport failure = report_failure(e);
    fmt::print(stderr, "{}\n", failure.line);
    return failure.exit_code;
  }
  return exit_code(ErrorKind::kUsage);
}
