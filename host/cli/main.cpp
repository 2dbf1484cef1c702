// rtcanboot: pack images and update rtcanboot nodes (or any CiA 302-3 node) over CAN.
// A thin layer over the rtcanboot_host library: parse options, call the library, print.
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "rtcanboot/canopen_defs.hpp"
#include "rtcanboot/hash.hpp"
#include "rtcanboot/host/catch_node.hpp"
#include "rtcanboot/host/configure.hpp"
#include "rtcanboot/host/error.hpp"
#include "rtcanboot/host/fleet.hpp"
#include "rtcanboot/host/image.hpp"
#include "rtcanboot/host/lss_master.hpp"
#include "rtcanboot/host/master.hpp"
#include "rtcanboot/host/progress.hpp"
#include "rtcanboot/host/scan.hpp"
#include "rtcanboot/host/signing.hpp"
#include "rtcanboot/host/transport.hpp"
#include "rtcanboot/host/update.hpp"
#include "rtcanboot/memory_map.hpp"

#include "cli_parser.hpp"

using namespace rtcanboot;
using namespace rtcanboot::host;
using rtcanboot::host::cli::FlashArgs;
using rtcanboot::host::cli::Globals;
using rtcanboot::host::cli::InputArgs;
using rtcanboot::host::cli::LssArgs;
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
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20)
          out += fmt::format("\\u{:04x}", c);
        else
          out += c;
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
  // The master only listens to SDO answers (0x580..0x5FF), heartbeats (0x700..0x77F) and LSS
  // answers (0x7E4); where
  // the transport has kernel filters (SocketCAN) the rest of a busy bus never reaches us.
  const RxFilter filters[] = {{canopen::kSdoTxBase, 0x780, false},
                              {canopen::kHeartbeatBase, 0x780, false},
                              {lss::kSlaveCobId, 0x7FF, false}};
  bus.transport->set_filters(filters);
  MasterOptions mo;
  mo.sdo.timeout = static_cast<Micros>(g.timeout_ms) * 1000;
  bus.transport->set_send_timeout(mo.sdo.timeout);
  mo.retries = g.retries;
  bus.master = std::make_unique<Master>(*bus.transport, mo);
  bus.master->on_status = [quiet = g.quiet](const BusStatus& s) {
    if (!quiet && s.level != BusStatus::Level::kInfo)
      fmt::print(stderr, "rtcanboot: bus: {}\n", s.text);
  };
  if (g.trace) {
    bus.master->on_frame = [](const CanFrame& f, Micros t) {
      fmt::print(stderr, "{:>12.6f} rx {}\n", static_cast<double>(t) / 1e6, format_frame(f));
    };
  }
  return bus;
}

std::string hex32(std::optional<std::uint32_t> v) {
  return v ? fmt::format("0x{:08X}", *v) : "-";
}

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

int cmd_pack(const Globals& g, const InputArgs& in, const std::string& output,
             const std::string& sign_key, const std::string& security_counter, bool compress) {
  const LoadedInput input = load(in);
  std::optional<signing::PrivateKey> key;
  if (!sign_key.empty()) key = signing::PrivateKey::load(sign_key);
  std::vector<std::uint8_t> bytes;
  if (input.container) {
    if (key) {
      throw Error(ErrorKind::kUsage,
                  fmt::format("{}: is a container already; --sign packs a firmware file (ELF, "
                              "HEX, S-record, binary)",
                              in.path));
    }
    bytes = input.container->bytes;
  } else {
    PackOptions p;
    if (key) {
      p.sign_with = &*key;
      if (!security_counter.empty()) {
        p.security_counter = parse_u32(security_counter, "--security-counter");
      }
    }
    p.vendor_id = in.vendor_id.empty() ? kDefaultVendorId : parse_u32(in.vendor_id, "--vendor-id");
    p.product_code = in.product_code.empty() ? kDefaultProductCode
                                             : parse_u32(in.product_code, "--product-code");
    p.image_version = parse_u32(in.image_version, "--image-version");
    bytes = pack(*input.image, p);
  }
  const std::size_t plain_size = bytes.size();
  if (compress) {
    auto packed = compress_container(bytes);
    if (!packed) throw Error(ErrorKind::kInternal, "the container could not be compressed");
    bytes = std::move(*packed);
  }
  write_file(output, bytes);
  if (!g.quiet) {
    const auto c = parse_container(bytes, output);
    fmt::print(
        "{}: {} bytes ({} payload at 0x{:08X}), CRC-32 0x{:08X}, vendor 0x{:08X}, product "
        "0x{:08X}, version {}\n",
        output, bytes.size(), c.header.payload_length, c.header.load_address,
        c.header.payload_crc32, c.header.vendor_id, c.header.product_code, c.header.image_version);
    if (compress) {
      fmt::print("{}: compressed, {} bytes instead of {} ({:.1f} %)\n", output, bytes.size(),
                 plain_size,
                 100.0 * static_cast<double>(bytes.size()) / static_cast<double>(plain_size));
    }
    if (key) {
      fmt::print("{}: signed by {:02x}, security counter {}\n", output,
                 fmt::join(key->public_key(), ""),
                 security_counter.empty() ? 0 : parse_u32(security_counter, "--security-counter"));
    }
  }
  return 0;
}

// Exit 0 when the container is sound (and, with --key, signed by that key); 3 for a damaged or
// malformed container, 7 when the signature does not satisfy the key.
int cmd_verify(const Globals& g, const std::string& path, const std::string& key_path) {
  std::optional<signing::PublicKey> key;
  if (!key_path.empty()) key = signing::load_public_key(key_path);
  const std::vector<std::uint8_t> bytes = read_file(path);
  const signing::VerifyReport report =
      signing::verify_container(bytes, path, key ? &*key : nullptr);
  if (!g.quiet) {
    const image::Header& h = report.header;
    fmt::print(
        "{}: container OK: {} payload bytes at 0x{:08X}, CRC-32 0x{:08X}, SHA-256 matches, vendor "
        "0x{:08X}, product 0x{:08X}, version {}\n",
        path, h.payload_length, h.load_address, h.payload_crc32, h.vendor_id, h.product_code,
        h.image_version);
    if (!report.has_signature) {
      fmt::print("{}: not signed\n", path);
    } else {
      fmt::print("{}: signed by {:02x}, security counter {}: {}\n", path,
                 fmt::join(report.record.public_key, ""), report.record.security_counter,
                 report.key_checked ? "signature valid" : "signature not checked (no --key)");
    }
  }
  return 0;
}

int cmd_keygen(const Globals& g, const std::string& out, bool force) {
  const signing::PublicKey key = signing::generate_key_files(out, force);
  if (!g.quiet) {
    fmt::print("{}: Ed25519 private key (keep it secret); {}.pub: public key {:02x}\n", out, out,
               fmt::join(key, ""));
  }
  return 0;
}

const char* describe_key_state(std::uint8_t state) {
  switch (static_cast<canopen::KeyState>(state)) {
    case canopen::KeyState::kNone:
      return "none (provisioning state: unsigned images accepted)";
    case canopen::KeyState::kBuiltIn:
      return "built into the bootloader (signed images only)";
    case canopen::KeyState::kProvisioned:
      return "provisioned (signed images only)";
    case canopen::KeyState::kInterrupted:
      return "key write interrupted (every image refused until provision-key completes)";
    case canopen::KeyState::kWriting:
      return "being written";
  }
  return "unknown";
}

// Provisions the signing keys of a keyless bootloader (0x5F03, docs/security.md): the SHA-256 of
// each public key goes to 0x5F03:2; the node writes them once. Exit 0 when the node holds exactly
// these keys afterwards (also when it held them already), 7 when it holds others or the write
// did not complete.
int cmd_provision_key(const Globals& g, const std::string& node_text,
                      const std::vector<std::string>& key_paths) {
  namespace od = canopen::od;
  const std::uint8_t node = parse_node(node_text, false);
  std::vector<std::uint8_t> hashes;
  for (const std::string& path : key_paths) {
    const signing::PublicKey key = signing::load_public_key(path);  // fails before the bus
    SoftwareSha256 sha;
    sha.reset();
    sha.update(key.data(), key.size());
    std::array<std::uint8_t, 32> digest{};
    sha.finish(digest.data());
    for (std::size_t at = 0; at < hashes.size(); at += 32) {
      if (std::equal(digest.begin(), digest.end(), hashes.begin() + static_cast<long>(at))) {
        throw Error(ErrorKind::kUsage, fmt::format("--key {}: the same key twice", path));
      }
    }
    hashes.insert(hashes.end(), digest.begin(), digest.end());
  }
  Bus bus = open_bus(g);
  Master& m = *bus.master;
  auto state = [&] {
    return static_cast<canopen::KeyState>(m.upload_u8(node, od::kSigningKeys, 1));
  };
  canopen::KeyState before{};
  try {
    before = state();
  } catch (const SdoError& e) {
    throw_bootloader_read_error(e, node, "signing-key object 0x5F03");
  }
  if (before == canopen::KeyState::kBuiltIn || before == canopen::KeyState::kProvisioned) {
    const std::vector<std::uint8_t> held = m.upload(node, od::kSigningKeys, 2);
    if (held == hashes) {
      if (!g.quiet) fmt::print("node {} holds these {} key(s) already\n", node, hashes.size() / 32);
      return 0;
    }
    throw Error(ErrorKind::kRejected,
                fmt::format("node {} holds other keys ({}): keys are written once and cannot be "
                            "changed over CAN",
                            node,
                            before == canopen::KeyState::kBuiltIn ? "built into its bootloader"
                                                                  : "provisioned"));
  }
  try {
    m.download(node, od::kSigningKeys, 2, hashes, SdoMode::kSegmented);
  } catch (const SdoError& e) {
    if (e.abort_code() == static_cast<std::uint32_t>(canopen::Abort::kDeviceState)) {
      throw Error(ErrorKind::kAborted,
                  fmt::format("node {} is busy with flash work: provision when it is idle", node));
    }
    throw;
  }
  canopen::KeyState after = canopen::KeyState::kWriting;
  for (int i = 0; i < 100 && after == canopen::KeyState::kWriting; ++i) after = state();
  if (after != canopen::KeyState::kProvisioned) {
    throw Error(ErrorKind::kRejected,
                fmt::format("node {}: the key write did not complete (0x5F03:1 = {}); it refuses "
                            "every image until a key write completes: run provision-key again",
                            node, static_cast<unsigned>(after)));
  }
  if (m.upload(node, od::kSigningKeys, 2) != hashes) {
    throw Error(ErrorKind::kRejected,
                fmt::format("node {}: the keys read back differ from the ones sent", node));
  }
  if (!g.quiet) {
    fmt::print(
        "node {}: {} key(s) provisioned; from now on it takes only images signed by "
        "them\n",
        node, hashes.size() / 32);
  }
  return 0;
}

// Shows or changes the provisioning record of a node's bootloader (0x5F05, docs/security.md).
int cmd_configure(const Globals& g, std::uint8_t node, const ProvisioningChanges& changes,
                  const std::string& key_path) {
  std::optional<signing::PrivateKey> key;
  if (!key_path.empty()) key = signing::PrivateKey::load(key_path);  // fails before the bus
  Bus bus = open_bus(g);
  Master& m = *bus.master;
  if (changes.empty()) {
    const NodeProvisioning now = read_node_provisioning(m, node);
    if (!g.quiet) {
      fmt::print(
          "node {}: provisioning record {} (hold limit applies once the node holds a "
          "signing key)\n{}",
          node, now.sequence, describe_provisioning(now.record));
    }
    return 0;
  }
  const ConfigureResult r = configure_node(m, node, changes, key ? &*key : nullptr);
  if (!g.quiet) {
    fmt::print(
        "node {}: provisioning record {} stored{}; it takes effect at the node's next "
        "reset (rtcanboot reset --node {})\nbefore:\n{}after:\n{}",
        node, r.after.sequence, key ? " (signed)" : "", node,
        describe_provisioning(r.before.record), describe_provisioning(r.after));
  }
  return 0;
}

int cmd_fleet(const Globals& g, const FlashArgs& a, const UpdateOptions& o,
              const LoadedInput& input);

int cmd_flash(const Globals& g, const FlashArgs& a) {
  UpdateOptions o;
  const bool fleet = !a.nodes.empty() || a.all;
  if (!fleet) o.node = parse_node(a.node, false);
  const LoadedInput input = load(a.in);  // bad input fails before the bus is touched
  if (!a.in.vendor_id.empty()) o.vendor_id = parse_u32(a.in.vendor_id, "--vendor-id");
  if (!a.in.product_code.empty()) o.product_code = parse_u32(a.in.product_code, "--product-code");
  o.image_version = parse_u32(a.in.image_version, "--image-version");
  o.start = !a.no_start;
  o.force = a.force;
  o.full = a.full;
  o.compress = !a.no_compress;
  o.force_product = a.force_product;
  o.allow_block = !a.segmented;
  o.clear = a.clear      ? UpdateOptions::Clear::kAlways
            : a.no_clear ? UpdateOptions::Clear::kNever
                         : UpdateOptions::Clear::kAuto;
  o.flash_timeout = static_cast<Micros>(a.flash_timeout_s) * 1'000'000;
  o.boot_timeout = static_cast<Micros>(a.boot_timeout_s) * 1'000'000;
  o.confirm_timeout = static_cast<Micros>(a.confirm_timeout_s) * 1'000'000;
  if (fleet) return cmd_fleet(g, a, o, input);
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
               secs > 0 ? static_cast<double>(r.bytes) / 1024.0 / secs : 0.0,
               r.used_block ? "block" : "segmented");
  }
  if (const std::string w = bus.transport->workarounds(); !g.quiet && !w.empty())
    fmt::print("{}\n", w);
  return 0;
}

// flash --nodes/--all: the fleet update (docs/fleet-update.md). A table with one line per node,
// redrawn in place on a terminal (otherwise printed when a node's state changes), then a summary
// that names every failed node; --json prints the result instead.
int cmd_fleet(const Globals& g, const FlashArgs& a, const UpdateOptions& o,
              const LoadedInput& input) {
  FleetOptions f;
  f.update = o;
  f.mode = a.mode == "unicast"      ? FleetMode::kUnicast
           : a.mode == "sequential" ? FleetMode::kSequential
                                    : FleetMode::kListenAlong;
  Bus bus = open_bus(g);
  if (a.all) {
    // The image's identity: the container's, --vendor-id/--product-code, or this build's default.
    std::uint32_t vendor = o.vendor_id.value_or(kDefaultVendorId);
    std::uint32_t product = o.product_code.value_or(kDefaultProductCode);
    if (input.container) {
      vendor = input.container->header.vendor_id;
      product = input.container->header.product_code;
    }
    for (const ScanNode& n : scan(*bus.master, ScanOptions{})) {
      if (n.vendor_id == vendor && n.product_code == product) f.nodes.push_back(n.node);
    }
    if (f.nodes.empty()) {
      throw Error(ErrorKind::kNoNode,
                  fmt::format("--all: the scan found no node of vendor 0x{:08X} product 0x{:08X}",
                              vendor, product));
    }
  } else {
    f.nodes = parse_node_list(a.nodes);
  }
  const bool show = !g.quiet && !a.json;
  const bool terminal = ::isatty(STDOUT_FILENO) != 0;
  SteadyClock wall;
  Micros last_draw = 0;
  std::size_t drawn_lines = 0;
  std::vector<std::string> last_states;
  FleetEvents ev;
  ev.changed = [&](const std::vector<FleetNodeResult>& rows) {
    if (!show) return;
    if (terminal) {
      if (wall.now() - last_draw < 200'000) return;
      last_draw = wall.now();
      const std::string table = format_fleet_table(rows);
      if (drawn_lines) fmt::print("\x1b[{}F\x1b[J", drawn_lines);
      fmt::print("{}", table);
      drawn_lines = static_cast<std::size_t>(std::count(table.begin(), table.end(), '\n'));
      std::fflush(stdout);
      return;
    }
    // Not a terminal: one line whenever a node changes state.
    last_states.resize(rows.size());
    for (std::size_t i = 0; i < rows.size(); ++i) {
      const std::string state = to_string(rows[i].state);
      if (state == last_states[i]) continue;
      last_states[i] = state;
      fmt::print("node {}: {}{}\n", rows[i].node, state,
                 rows[i].message.empty() ? "" : " (" + rows[i].message + ")");
    }
  };
  if (show && !terminal) ev.step = [](const std::string& s) { fmt::print("{}\n", s); };
  const FleetResult r = run_fleet_update(*bus.master, input, f, ev);
  if (a.json) {
    fmt::print("{}\n", fleet_json(r, f.mode));
  } else if (!g.quiet) {
    if (terminal && drawn_lines) fmt::print("\x1b[{}F\x1b[J", drawn_lines);
    if (terminal || !show) fmt::print("{}", format_fleet_table(r.nodes));
    fmt::print("{}", format_fleet_summary(r));
  }
  return r.exit_code();
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
      s += fmt::format(", \"running\": \"{}\"", *i.running_program == canopen::kRunningApplication
                                                    ? "application"
                                                    : "bootloader");
    }
    if (i.bootloader_version)
      s += fmt::format(", \"bootloader_version\": \"{}\"", version_text(*i.bootloader_version));
    num("app_region_start", i.app_start);
    num("app_region_size", i.app_size);
    if (i.boot_reason) {
      s += fmt::format(", \"boot_reason\": {}, \"boot_reason_text\": \"{}\"", *i.boot_reason,
                       describe_boot_reason(*i.boot_reason));
    }
    num("image_version", i.image_version);
    if (i.trial_state) {
      s += fmt::format(", \"trial_state\": {}, \"trial_state_text\": \"{}\"", *i.trial_state,
                       describe_trial_state(*i.trial_state));
    }
    num("boot_attempts", i.boot_attempts);
    num("security_counter", i.security_counter);
    num("key_state", i.key_state);
    if (i.program_state) {
      s += fmt::format(", \"program_state\": {}, \"program_state_text\": \"{}\"", *i.program_state,
                       describe_program_state(*i.program_state));
    }
    num("software_id", i.software_id);
    if (i.flash_status) {
      s += fmt::format(", \"flash_status\": {}, \"flash_status_text\": \"{}\"", *i.flash_status,
                       json_escape(describe_flash_status(*i.flash_status)));
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
  if (i.software_version && !i.software_version->empty())
    row("software version", *i.software_version);
  if (i.heartbeat_ms) row("heartbeat", fmt::format("{} ms", *i.heartbeat_ms));
  if (i.running_program) {
    const bool app = *i.running_program == canopen::kRunningApplication;
    row("running", app ? "application" : "bootloader");
    if (i.bootloader_version) row("bootloader version", version_text(*i.bootloader_version));
    if (!app && i.boot_reason) row("boot reason", describe_boot_reason(*i.boot_reason));
    if (i.app_start && i.app_size)
      row("application region", fmt::format("0x{:08X}, {} KiB", *i.app_start, *i.app_size / 1024));
    if (i.image_version)
      row("image version", fmt::format("{} (0x{:08X})", *i.image_version, *i.image_version));
    if (i.trial_state) {
      row("trial boot",
          *i.trial_state == static_cast<std::uint8_t>(canopen::TrialState::kOnTrial) &&
                  i.boot_attempts
              ? fmt::format("{}, {} unconfirmed start(s)", describe_trial_state(*i.trial_state),
                            *i.boot_attempts)
              : std::string(describe_trial_state(*i.trial_state)));
    }
    if (i.security_counter) row("security counter", fmt::format("{}", *i.security_counter));
    if (i.key_state) row("signing keys", describe_key_state(*i.key_state));
  } else {
    row("running", "unknown (no 0x5F00: not an rtcanboot node)");
  }
  if (i.program_state)
    row("program (0x1F51)",
        fmt::format("{} ({})", describe_program_state(*i.program_state), *i.program_state));
  if (i.software_id)
    row("software id (0x1F56)",
        fmt::format("0x{:08X}{}", *i.software_id, *i.software_id == 0 ? " (no program)" : ""));
  if (i.flash_status)
    row("flash status (0x1F57)",
        fmt::format("{} (0x{:08X})", describe_flash_status(*i.flash_status), *i.flash_status));
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
  fmt::print("{:>4}  {:<16} {:<5} {:<10} {:<10} {}\n", "node", "NMT state", "SDO", "vendor",
             "product", "running");
  for (const ScanNode& r : rows) {
    fmt::print("{:>4}  {:<16} {:<5} {:<10} {:<10} {}\n", r.node,
               r.heartbeat ? to_string(r.heartbeat->state) : "-", r.sdo ? "yes" : "no",
               r.vendor_id ? hex32(r.vendor_id) : "-", r.product_code ? hex32(r.product_code) : "-",
               running_text(r));
  }
  return 0;
}

int cmd_program(const Globals& g, const std::string& node_text, canopen::ProgramCommand command,
                bool nmt) {
  Bus bus = open_bus(g);
  Master& m = *bus.master;
  if (nmt) {
    const std::uint8_t node = parse_node(node_text, true);
    m.nmt(command == canopen::ProgramCommand::kStart ? canopen::NmtCommand::kStart
                                                     : canopen::NmtCommand::kStop,
          node);
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
      throw Error(ErrorKind::kNoNode,
                  fmt::format("node {} does not answer (no SDO response, no boot-up)", node));
    }
  }
  if (!g.quiet) {
    fmt::print("node {}: program {}\n", node,
               command == canopen::ProgramCommand::kStart ? "started" : "stopped");
  }
  return 0;
}

// stop --catch (docs/host-tool.md, "Catching a node"): exit 0 caught, 5 nothing heard, 6 heard
// but never held in the bootloader.
int cmd_catch(const Globals& g, std::uint8_t node, int timeout_s, int period_ms) {
  Bus bus = open_bus(g);
  Master& m = *bus.master;
  CatchOptions co;
  co.node = node;
  co.timeout = static_cast<Micros>(timeout_s) * 1'000'000;
  co.period = static_cast<Micros>(period_ms) * 1000;
  if (!g.quiet) {
    fmt::print(
        "catching node {}: 0x1F51:1 = 0 every {} ms for up to {} s; power-cycle the node now\n",
        node, period_ms, timeout_s);
    std::fflush(stdout);
  }
  const CatchResult r = catch_node(m, co, [&](const std::string& line) {
    if (!g.quiet) fmt::print("{}\n", line);
  });
  if (!g.quiet) {
    const char* how = r.reason == canopen::BootReason::kHeldByMaster ? "held in its boot window"
                      : r.reason == canopen::BootReason::kEntryRequest
                          ? "the application returned to it"
                          : "its bootloader was running";
    fmt::print("node {} caught in the bootloader after {:.2f} s, {} requests ({}, 0x5F00:5 = {})\n",
               node, static_cast<double>(r.after) / 1e6, r.requests, how,
               static_cast<unsigned>(r.reason));
  }
  return 0;
}

int cmd_reset(const Globals& g, const std::string& node_text, bool communication, bool wait) {
  const std::uint8_t node = parse_node(node_text, true);
  Bus bus = open_bus(g);
  Master& m = *bus.master;
  const Micros before = m.now();
  m.nmt(communication ? canopen::NmtCommand::kResetCommunication : canopen::NmtCommand::kResetNode,
        node);
  if (wait && node != 0) {
    if (!m.wait_heartbeat(node, before, m.now() + 5'000'000, true)) {
      throw Error(ErrorKind::kNoNode,
                  fmt::format("node {} sent no boot-up message within 5 s after the reset", node));
    }
    if (!g.quiet) fmt::print("node {} is back (boot-up received)\n", node);
  }
  return 0;
}

// The bring-up self-test (docs/bring-up.md): 0x5F01:1 = 1 resets the node into it; its report is
// readable once the bootloader's boot-up message is on the bus.
int cmd_selftest(const Globals& g, const std::string& node_text, bool json) {
  const std::uint8_t node = parse_node(node_text, false);
  Bus bus = open_bus(g);
  Master& m = *bus.master;
  try {
    m.download_u8(node, canopen::od::kSelfTest, 1, canopen::kSelfTestRun);
  } catch (const SdoError& e) {
    if (e.timed_out()) {
      throw Error(ErrorKind::kNoNode,
                  fmt::format("node {} does not answer (no SDO response to 0x5F01:1)", node));
    }
    if (e.abort_code() == static_cast<std::uint32_t>(canopen::Abort::kNoObject)) {
      throw Error(ErrorKind::kAborted,
                  fmt::format("node {} has no self-test object 0x5F01: it runs its application "
                              "(stop it first: rtcanboot stop --node {}) or an older bootloader",
                              node, node));
    }
    if (e.abort_code() == static_cast<std::uint32_t>(canopen::Abort::kDeviceState)) {
      throw Error(ErrorKind::kAborted,
                  fmt::format("node {} is busy with flash work (a download or a record): run the "
                              "self-test when it is idle",
                              node));
    }
    throw;
  }
  // The node resets only after its answer has left: a boot-up seen before the answer (a node
  // that was itself just powered on when the tool connected) is not the self-test's.
  const Micros answered = m.now() + 1;
  if (!g.quiet && !json) fmt::print("node {}: resetting into the self-test\n", node);
  // The self-test erases and programs one sector: up to 2 x 400 ms at the datasheet maximum.
  if (!m.wait_heartbeat(node, answered, m.now() + 10'000'000, true)) {
    throw Error(
        ErrorKind::kNoNode,
        fmt::format("node {} sent no boot-up message within 10 s after the self-test reset", node));
  }
  const auto state =
      static_cast<canopen::SelfTestState>(m.upload_u8(node, canopen::od::kSelfTest, 1));
  if (state == canopen::SelfTestState::kNotRun) {
    throw Error(ErrorKind::kSelfTestFailed,
                fmt::format("node {} came back without running the self-test: none of the reset "
                            "carriers (SRC_GPR5, SNVS LPGPR0, DTCM) kept the request; see "
                            "docs/bring-up.md",
                            node));
  }
  const std::string report = m.upload_string(node, canopen::od::kSelfTest, 2);
  const std::uint32_t failed = m.upload_u32(node, canopen::od::kSelfTest, 3);
  std::vector<std::string> lines;
  for (std::size_t at = 0; at < report.size();) {
    const std::size_t end = report.find('\n', at);
    lines.push_back(report.substr(at, end == std::string::npos ? std::string::npos : end - at));
    at = end == std::string::npos ? report.size() : end + 1;
  }
  std::vector<int> failed_checks;
  for (int check = 1; check <= 32; ++check) {
    if ((failed >> (check - 1)) & 1U) failed_checks.push_back(check);
  }
  if (json) {
    std::string s =
        fmt::format("{{\"node\": {}, \"passed\": {}, \"failed_checks\": [{}], \"lines\": [", node,
                    failed == 0 ? "true" : "false", fmt::join(failed_checks, ", "));
    for (std::size_t i = 0; i < lines.size(); ++i) {
      s += fmt::format("{}\"{}\"", i == 0 ? "" : ", ", json_escape(lines[i]));
    }
    fmt::print("{}]}}\n", s);
  } else if (!g.quiet) {
    for (const std::string& line : lines) fmt::print("{}\n", line);
    if (failed == 0) {
      fmt::print("node {}: self-test passed ({} checks)\n", node, lines.size());
    } else {
      fmt::print("node {}: {} of {} checks failed: {} (docs/bring-up.md says what each means)\n",
                 node, failed_checks.size(), lines.size(), fmt::join(failed_checks, ", "));
    }
  }
  if (state == canopen::SelfTestState::kFailed || failed != 0) {
    throw Error(ErrorKind::kSelfTestFailed, fmt::format("node {}: self-test failed (checks {})",
                                                        node, fmt::join(failed_checks, ", ")));
  }
  return 0;
}

// ----------------------------------------------------------------------------------------- LSS

std::string identity_text(const NodeIdentity& id) {
  return fmt::format("vendor 0x{:08X} product 0x{:08X} revision 0x{:08X} serial 0x{:08X}",
                     id.vendor_id, id.product_code, id.revision, id.serial);
}

std::string identity_json(const NodeIdentity& id) {
  return fmt::format("\"vendor_id\": {}, \"product_code\": {}, \"revision\": {}, \"serial\": {}",
                     id.vendor_id, id.product_code, id.revision, id.serial);
}

FastscanHint lss_hint(const LssArgs& a) {
  FastscanHint hint;
  if (!a.vendor_id.empty()) hint.vendor_id = parse_u32(a.vendor_id, "--vendor-id");
  if (!a.product_code.empty()) hint.product_code = parse_u32(a.product_code, "--product-code");
  if (!a.revision.empty()) hint.revision = parse_u32(a.revision, "--revision");
  return hint;
}

LssMaster lss_master(Bus& bus, const LssArgs& a) {
  LssOptions o;
  o.timeout = static_cast<Micros>(a.timeout_ms) * 1000;
  return LssMaster(*bus.transport, o);
}

// The full identity of the node --serial names: given on the command line, or found by a scan of
// the unconfigured nodes. Options are parsed before the bus is opened.
struct LssSelection {
  std::uint32_t serial = 0;
  FastscanHint hint;
};

LssSelection lss_selection(const LssArgs& a) {
  return {parse_u32(a.serial, "--serial"), lss_hint(a)};
}

NodeIdentity lss_select_identity(LssMaster& lss, const LssSelection& sel) {
  if (sel.hint.vendor_id && sel.hint.product_code && sel.hint.revision) {
    return {*sel.hint.vendor_id, *sel.hint.product_code, *sel.hint.revision, sel.serial};
  }
  for (const NodeIdentity& found : lss.scan(sel.hint)) {
    if (found.serial == sel.serial) return found;
  }
  throw Error(ErrorKind::kNoNode,
              fmt::format("no unconfigured node with serial 0x{:08X} (a configured node needs "
                          "--vendor-id, --product-code and --revision as well)",
                          sel.serial));
}

int cmd_lss_scan(const Globals& g, const LssArgs& a) {
  const FastscanHint hint = lss_hint(a);
  Bus bus = open_bus(g);
  LssMaster lss = lss_master(bus, a);
  const Micros t0 = lss.now();
  const auto found = lss.scan(hint, [&](const NodeIdentity& id) {
    if (!g.quiet && !a.json) fmt::print("found {}\n", identity_text(id));
  });
  const double secs = static_cast<double>(lss.now() - t0) / 1e6;
  if (a.json) {
    std::string s = "[";
    for (std::size_t k = 0; k < found.size(); ++k)
      s += fmt::format("{}{{{}}}", k ? ", " : "", identity_json(found[k]));
    fmt::print("{}]\n", s);
  } else if (!g.quiet) {
    fmt::print("{} unconfigured node{} in {:.2f} s ({} Fastscan requests)\n", found.size(),
               found.size() == 1 ? "" : "s", secs, lss.fastscan_requests());
  }
  return 0;
}

int cmd_lss_assign(const Globals& g, const LssArgs& a) {
  const std::uint32_t node = parse_u32(a.node, "--node");
  if (!lss::valid_node_id(static_cast<std::uint8_t>(node)) || node > 255) {
    throw Error(ErrorKind::kUsage,
                fmt::format("--node: {} is not a node-ID (1..127, or 255 to remove it)", a.node));
  }
  const LssSelection sel = lss_selection(a);
  Bus bus = open_bus(g);
  LssMaster lss = lss_master(bus, a);
  const NodeIdentity id = lss_select_identity(lss, sel);
  if (!lss.switch_selective(id)) {
    throw Error(ErrorKind::kNoNode, fmt::format("no node answers to {}", identity_text(id)));
  }
  const LssAnswer configured = lss.configure_node_id(static_cast<std::uint8_t>(node));
  if (configured.code != lss::kSuccess) {
    lss.switch_global(lss::Mode::kWaiting);
    throw Error(
        ErrorKind::kRejected,
        fmt::format("configure node-ID: {}", describe_lss_error(lss::Cs::kConfigureNodeId,
                                                                configured.code, configured.spec)));
  }
  bool stored = false;
  if (a.store) {
    const LssAnswer answer = lss.store_configuration();
    if (answer.code != lss::kSuccess) {
      lss.switch_global(lss::Mode::kWaiting);
      throw Error(ErrorKind::kRejected, fmt::format("store configuration: {}",
                                                    describe_lss_error(lss::Cs::kStoreConfiguration,
                                                                       answer.code, answer.spec)));
    }
    stored = true;
  }
  lss.switch_global(lss::Mode::kWaiting);
  if (a.json) {
    fmt::print("{{{}, \"node\": {}, \"stored\": {}}}\n", identity_json(id), node,
               stored ? "true" : "false");
  } else if (!g.quiet) {
    fmt::print("serial 0x{:08X}: node-ID {}{}\n", id.serial, node,
               stored ? ", stored" : " (not stored: lost at the next reset; add --store)");
  }
  return 0;
}

int cmd_lss_auto(const Globals& g, const LssArgs& a) {
  const std::uint32_t first = parse_u32(a.first_node, "--first-node");
  if (first < 1 || first > canopen::kMaxNodeId) {
    throw Error(ErrorKind::kUsage,
                fmt::format("--first-node: {} is not a node-ID (1..127)", a.first_node));
  }
  const FastscanHint hint = lss_hint(a);
  Bus bus = open_bus(g);
  LssMaster lss = lss_master(bus, a);
  const Micros t0 = lss.now();
  const auto done = lss.auto_assign(
      static_cast<std::uint8_t>(first), !a.no_store, hint, [&](const LssMaster::Assignment& x) {
        if (!g.quiet && !a.json) {
          fmt::print("serial 0x{:08X} -> node {}{}\n", x.identity.serial, x.node_id,
                     x.stored ? " (stored)" : "");
        }
      });
  if (a.json) {
    std::string s = "[";
    for (std::size_t k = 0; k < done.size(); ++k) {
      s += fmt::format("{}{{{}, \"node\": {}, \"stored\": {}}}", k ? ", " : "",
                       identity_json(done[k].identity), done[k].node_id,
                       done[k].stored ? "true" : "false");
    }
    fmt::print("{}]\n", s);
  } else if (!g.quiet) {
    fmt::print("{} node{} numbered in {:.2f} s\n", done.size(), done.size() == 1 ? "" : "s",
               static_cast<double>(lss.now() - t0) / 1e6);
  }
  return 0;
}

int cmd_lss_bitrate(const Globals& g, const LssArgs& a) {
  const std::uint32_t bitrate =
      lss::bitrate_of(lss::kStandardTable, static_cast<std::uint8_t>(a.index));
  if (a.index < 0 || bitrate == 0) {
    throw Error(ErrorKind::kUsage, fmt::format("--index: {} is not a CiA 305 table index (0 1M, 1 "
                                               "800k, 2 500k, 3 250k, 4 125k, 6 50k, 7 20k, 8 10k)",
                                               a.index));
  }
  Bus bus = open_bus(g);
  LssMaster lss = lss_master(bus, a);
  lss.switch_global(lss::Mode::kConfiguration);
  const auto answers = lss.configure_bit_timing_all(static_cast<std::uint8_t>(a.index));
  if (answers.empty()) {
    lss.switch_global(lss::Mode::kWaiting);
    throw Error(ErrorKind::kNoNode, "no node answers LSS configure bit timing");
  }
  for (const LssAnswer& x : answers) {
    if (x.code != lss::kSuccess) {
      lss.switch_global(lss::Mode::kWaiting);
      throw Error(ErrorKind::kRejected,
                  fmt::format("a node refused {} bit/s: {}; nothing switched", bitrate,
                              describe_lss_error(lss::Cs::kConfigureBitTiming, x.code, x.spec)));
    }
  }
  std::size_t stored = 0;
  if (a.store) {
    for (const LssAnswer& x : lss.store_configuration_all()) {
      if (x.code != lss::kSuccess) {
        lss.switch_global(lss::Mode::kWaiting);
        throw Error(ErrorKind::kRejected,
                    fmt::format("a node could not store the bit rate: {}; nothing switched",
                                describe_lss_error(lss::Cs::kStoreConfiguration, x.code, x.spec)));
      }
      ++stored;
    }
  }
  lss.activate_bit_timing(static_cast<std::uint16_t>(a.delay_ms));
  if (a.json) {
    fmt::print("{{\"bitrate\": {}, \"nodes\": {}, \"stored\": {}, \"delay_ms\": {}}}\n", bitrate,
               answers.size(), stored, a.delay_ms);
  } else if (!g.quiet) {
    fmt::print(
        "{} node{} switch to {} bit/s after {} ms{}; switch the adapter of {} to {} bit/s now (the "
        "nodes stay in LSS configuration state until a switch to waiting at the new rate)\n",
        answers.size(), answers.size() == 1 ? "" : "s", bitrate, a.delay_ms,
        a.store ? fmt::format(" ({} stored)", stored) : "", bus.transport->describe(), bitrate);
  }
  return 0;
}

int cmd_lss_identify(const Globals& g, const LssArgs& a) {
  std::uint32_t range[6] = {};
  if (!a.non_configured) {
    if (a.vendor_id.empty() || a.product_code.empty()) {
      throw Error(ErrorKind::kUsage,
                  "lss identify needs --vendor-id and --product-code (or --non-configured)");
    }
    auto or_default = [](const std::string& text, const char* what, std::uint32_t fallback) {
      return text.empty() ? fallback : parse_u32(text, what);
    };
    range[0] = parse_u32(a.vendor_id, "--vendor-id");
    range[1] = parse_u32(a.product_code, "--product-code");
    range[2] = or_default(a.revision_low, "--revision-low", 0);
    range[3] = or_default(a.revision_high, "--revision-high", 0xFFFF'FFFF);
    range[4] = or_default(a.serial_low, "--serial-low", 0);
    range[5] = or_default(a.serial_high, "--serial-high", 0xFFFF'FFFF);
  }
  Bus bus = open_bus(g);
  LssMaster lss = lss_master(bus, a);
  const bool answered =
      a.non_configured ? lss.identify_non_configured()
                       : lss.identify(range[0], range[1], range[2], range[3], range[4], range[5]);
  if (a.json) {
    fmt::print("{{\"answered\": {}}}\n", answered ? "true" : "false");
  } else if (!g.quiet) {
    fmt::print("{}\n", answered ? "at least one node matches" : "no node matches");
  }
  if (!answered) throw Error(ErrorKind::kNoNode, "no LSS node matches");
  return 0;
}

int cmd_lss_inquire(const Globals& g, const LssArgs& a) {
  const std::optional<LssSelection> sel =
      a.serial.empty() ? std::nullopt : std::optional(lss_selection(a));
  Bus bus = open_bus(g);
  LssMaster lss = lss_master(bus, a);
  if (sel) {
    const NodeIdentity id = lss_select_identity(lss, *sel);
    if (!lss.switch_selective(id))
      throw Error(ErrorKind::kNoNode, fmt::format("no node answers to {}", identity_text(id)));
  } else {
    lss.switch_global(lss::Mode::kConfiguration);  // meant for a bus with one node
  }
  NodeIdentity id;
  std::uint8_t node = 0;
  try {
    id = lss.inquire_identity();
    node = lss.inquire_node_id();
  } catch (...) {
    lss.switch_global(lss::Mode::kWaiting);
    throw;
  }
  lss.switch_global(lss::Mode::kWaiting);
  if (a.json) {
    fmt::print("{{{}, \"node\": {}}}\n", identity_json(id), node);
  } else {
    fmt::print("{}, node-ID {}\n", identity_text(id),
               node == lss::kUnconfigured ? std::string("none") : std::to_string(node));
  }
  return 0;
}

}  // namespace

namespace {

int run_cli(int argc, char** argv) {
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
        return cmd_pack(g, o.pack_in, o.pack_out, o.pack_sign, o.pack_security_counter,
                        o.pack_compress);
      case cli::Command::kVerify:
        return cmd_verify(g, o.verify_path, o.verify_key);
      case cli::Command::kFlash:
        return cmd_flash(g, o.flash);
      case cli::Command::kInfo:
        return cmd_info(g, o.info_node, o.info_json);
      case cli::Command::kScan:
        return cmd_scan(g, o.scan_json, o.scan_listen, o.scan_probe, !o.scan_no_probe, o.scan_rate);
      case cli::Command::kStart:
        return cmd_program(g, o.start_node, canopen::ProgramCommand::kStart, o.start_nmt);
      case cli::Command::kStop:
        if (o.stop_catch) return cmd_catch(g, o.node, o.catch_timeout_s, o.catch_period_ms);
        return cmd_program(g, o.stop_node, canopen::ProgramCommand::kStop, o.stop_nmt);
      case cli::Command::kReset:
        return cmd_reset(g, o.reset_node, o.reset_comm, !o.reset_no_wait);
      case cli::Command::kLssScan:
        return cmd_lss_scan(g, o.lss);
      case cli::Command::kLssAssign:
        return cmd_lss_assign(g, o.lss);
      case cli::Command::kLssAuto:
        return cmd_lss_auto(g, o.lss);
      case cli::Command::kLssBitrate:
        return cmd_lss_bitrate(g, o.lss);
      case cli::Command::kLssIdentify:
        return cmd_lss_identify(g, o.lss);
      case cli::Command::kLssInquire:
        return cmd_lss_inquire(g, o.lss);
      case cli::Command::kSelfTest:
        return cmd_selftest(g, o.selftest_node, o.selftest_json);
      case cli::Command::kKeygen:
        return cmd_keygen(g, o.keygen_out, o.keygen_force);
      case cli::Command::kProvisionKey:
        return cmd_provision_key(g, o.provision_node, o.provision_keys);
      case cli::Command::kConfigure:
        return cmd_configure(g, o.node, o.configure_changes, o.configure_key);
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

// Output that never reached stdout (a full disk, a closed pipe) is a failure, not a success: the
// buffered rest is flushed here and checked.
int with_output_checked(int code) {
  if (std::fflush(stdout) == 0 && std::ferror(stdout) == 0) return code;
  const int error = errno;
  fmt::print(stderr, "rtcanboot: cannot write the output to stdout: {}\n", std::strerror(error));
  return code != 0 ? code : exit_code(ErrorKind::kInternal);
}

}  // namespace

int main(int argc, char** argv) {
  // Ctrl-C / SIGTERM abort a running transfer on the bus (abort frame) instead of leaving it
  // hanging; a second one ends the process at once.
  install_interrupt_handlers();
  return with_output_checked(run_cli(argc, argv));
}
