// rtcanboot-twin: runs i.MX RT1064 boards (the unmodified firmware) on a virtual CAN bus.
// docs/twin.md documents every option.
#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "rtcanboot/memory_map.hpp"
#include "rtcanboot/provisioning.hpp"
#include "twin/board.hpp"
#include "twin/can/bus.hpp"
#include "twin/can/slcan_pty.hpp"
#include "twin/can/socketcan.hpp"
#include "twin/can/socketcand.hpp"

namespace {

using namespace rtcanboot;
using namespace rtcanboot::twin;

std::atomic<bool> g_stop{false};
void on_signal(int) {
  g_stop = true;
}

struct BoardSpec {
  std::string name;
  std::string flash;
  std::string bootloader;
  std::optional<unsigned> node_id;
  std::optional<std::uint32_t> bitrate;
  unsigned can_instance = 2;
  std::array<std::uint32_t, 3> ocotp = {};  // OCOTP CFG0..CFG2; zero: derived from the name
};

// "CFG0:CFG1[:CFG2]" (numbers, 0x hex allowed) into the OCOTP words of a board.
bool parse_ocotp(const std::string& text, std::array<std::uint32_t, 3>& out) {
  std::stringstream ss(text);
  std::string word;
  std::size_t n = 0;
  while (std::getline(ss, word, ':')) {
    if (n == 3 || word.empty()) return false;
    std::size_t used = 0;
    unsigned long long v = 0;
    try {
      v = std::stoull(word, &used, 0);
    } catch (const std::exception&) {
      return false;
    }
    if (used != word.size() || v > 0xFFFF'FFFFULL) return false;
    out[n++] = static_cast<std::uint32_t>(v);
  }
  return n >= 2;
}

bool parse_board(const std::string& text, BoardSpec& spec, std::string& error) {
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    const auto eq = item.find('=');
    if (eq == std::string::npos) {
      error = fmt::format("--board: '{}' is not key=value", item);
      return false;
    }
    const std::string key = item.substr(0, eq);
    const std::string value = item.substr(eq + 1);
    try {
      if (key == "flash") {
        spec.flash = value;
      } else if (key == "bootloader" || key == "write-bootloader") {
        spec.bootloader = value;
      } else if (key == "node-id") {
        spec.node_id = static_cast<unsigned>(std::stoul(value, nullptr, 0));
      } else if (key == "bitrate") {
        spec.bitrate = static_cast<std::uint32_t>(std::stoul(value, nullptr, 0));
      } else if (key == "name") {
        spec.name = value;
      } else if (key == "can") {
        spec.can_instance = static_cast<unsigned>(std::stoul(value, nullptr, 0));
      } else if (key == "ocotp") {
        if (!parse_ocotp(value, spec.ocotp)) {
          error = fmt::format("--board: ocotp={} is not CFG0:CFG1[:CFG2]", value);
          return false;
        }
      } else {
        error = fmt::format(
            "--board: unknown key '{}' (flash, bootloader, node-id, bitrate, name, can, ocotp)",
            key);
        return false;
      }
    } catch (const std::exception&) {
      error = fmt::format("--board: bad number in '{}'", item);
      return false;
    }
  }
  if (spec.flash.empty()) {
    error = "--board needs flash=FILE";
    return false;
  }
  return true;
}

std::vector<std::uint8_t> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  return std::vector<std::uint8_t>(std::istreambuf_iterator<char>(in), {});
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "rtcanboot-twin: i.MX RT1064 digital twin running the unmodified rtcanboot firmware on a "
      "virtual CAN bus"};
  std::string flash;
  std::string bootloader;
  std::optional<unsigned> node_id;
  std::optional<std::uint32_t> bitrate;
  std::vector<std::string> board_specs;
  std::string socketcand;
  std::string bus_uri;
  bool slcan_pty = false;
  std::string timing = "typical";
  std::string trace_path;
  double run_ms = 0;
  std::string until_console;
  bool verbose = false;
  bool stats = false;
  std::optional<std::uint32_t> bus_bitrate;
  std::optional<std::uint64_t> cut_op;
  std::optional<double> cut_ms;
  double restore_ms = 100;
  double wait_client_s = 0;
  app.add_option("--flash", flash,
                 "Flash backing file of the board (4 MiB, created erased when missing)");
  app.add_option("--write-bootloader", bootloader,
                 "Program BIN at flash offset 0 before power-on (like a debug probe)");
  app.add_option("--node-id", node_id,
                 "Write the provisioning record with this node-ID (1..127, 255 = unconfigured: LSS "
                 "assigns one)");
  app.add_option("--bitrate", bitrate,
                 "Write the provisioning record with this CAN bit rate (CiA 301 rates)");
  app.add_option("--board", board_specs,
                 "Another board on the bus: "
                 "flash=FILE[,bootloader=BIN][,node-id=N][,bitrate=BPS][,name=NAME][,can=1|2|3][,"
                 "ocotp=CFG0:CFG1[:CFG2]]")
      ->take_all();
  std::string ocotp;
  app.add_option("--ocotp", ocotp,
                 "The board's OCOTP unique-ID fuse words CFG0:CFG1[:CFG2] (0x1018:4 is derived "
                 "from them; default: from the board name)");
  app.add_option("--socketcand", socketcand,
                 "Serve the bus as socketcand on HOST:PORT (loopback); virtual time then follows "
                 "wall-clock time");
  app.add_option("--bus", bus_uri,
                 "Join the bus to a Linux SocketCAN interface: socketcan://IFACE (e.g. vcan0, "
                 "can0, slcan0); virtual time "
                 "then follows wall-clock time");
  app.add_flag("--slcan-pty", slcan_pty,
               "Present the bus as an slcan serial adapter on a pseudo-terminal (prints its "
               "/dev/pts path); virtual time "
               "then follows wall-clock time");
  app.add_option(
      "--wait-client", wait_client_s,
      "With --socketcand: wait up to this many seconds for a client in raw mode before power-on");
  app.add_option("--flash-timing", timing, "Flash timing profile")
      ->check(CLI::IsMember({"typical", "max"}));
  app.add_option("--trace", trace_path,
                 "Write every bus frame with its virtual time (candump -L format) to FILE");
  app.add_option("--bus-bitrate", bus_bitrate,
                 "Bit rate of the bus (default: the provisioned bit rate, else 125000)");
  app.add_option("--run-for", run_ms,
                 "Stop after this much virtual time in ms (default: run until interrupted)");
  app.add_option("--until-console", until_console, "Stop when a board's console shows this text");
  app.add_option(
      "--power-cut-op", cut_op,
      "Cut the first board's power during its N-th flash erase/program (torn operation)");
  app.add_option("--power-cut-at", cut_ms,
                 "Cut the first board's power at this virtual time in ms");
  app.add_option("--restore-power-after", restore_ms,
                 "Power a cut board on again after this many ms (default 100; negative: never)");
  std::vector<std::string> reading_specs;
  std::string readings_help =
      "A reading of an unconfirmed chip fact for every board (repeatable; default: the most "
      "hostile one, docs/twin.md \"Readings\"):";
  for (const std::string& name : reading_names()) readings_help += "\n  " + name;
  app.add_option("--reading", reading_specs, readings_help)->check([](const std::string& spec) {
    Readings probe;
    std::string error;
    return parse_reading(spec, probe, &error) ? std::string() : error;
  });
  app.add_flag("--verbose", verbose, "Also print info reports (boot, resets)");
  app.add_flag("--stats", stats, "Print virtual vs wall time and executed instructions at the end");
  CLI11_PARSE(app, argc, argv);

  std::vector<BoardSpec> specs;
  if (!flash.empty()) {
    BoardSpec s;
    s.name = node_id ? fmt::format("node {}", *node_id) : "node";
    s.flash = flash;
    s.bootloader = bootloader;
    s.node_id = node_id;
    s.bitrate = bitrate;
    if (!ocotp.empty() && !parse_ocotp(ocotp, s.ocotp)) {
      std::fprintf(stderr, "rtcanboot-twin: --ocotp %s is not CFG0:CFG1[:CFG2]\n", ocotp.c_str());
      return 2;
    }
    specs.push_back(s);
  } else if (!bootloader.empty() || node_id || bitrate) {
    std::fprintf(stderr,
                 "rtcanboot-twin: --write-bootloader/--node-id/--bitrate need --flash FILE\n");
    return 2;
  }
  for (const auto& text : board_specs) {
    BoardSpec s;
    std::string err;
    if (!parse_board(text, s, err)) {
      std::fprintf(stderr, "rtcanboot-twin: %s\n", err.c_str());
      return 2;
    }
    if (s.name.empty())
      s.name =
          s.node_id ? fmt::format("node {}", *s.node_id) : fmt::format("node{}", specs.size() + 1);
    specs.push_back(s);
  }
  if (specs.empty()) {
    std::fprintf(stderr, "rtcanboot-twin: give --flash FILE or --board flash=FILE (see --help)\n");
    return 2;
  }

  Simulation sim;
  std::uint32_t rate = 125'000;
  if (bus_bitrate) {
    rate = *bus_bitrate;
  } else {
    for (const auto& s : specs) {
      if (s.bitrate) {
        rate = *s.bitrate;
        break;
      }
    }
  }
  can::Bus& bus = sim.add_bus(rate, "can0");
  std::unique_ptr<std::ofstream> trace;
  if (!trace_path.empty()) {
    trace = std::make_unique<std::ofstream>(trace_path);
    if (!*trace) {
      std::fprintf(stderr, "rtcanboot-twin: cannot write %s\n", trace_path.c_str());
      return 1;
    }
    bus.set_trace([&trace](const std::string& line) { *trace << line << '\n'; });
  }

  auto print_report = [verbose](const std::string& name, const Report& r) {
    if (r.severity == Severity::kInfo && !verbose) return;
    const char* sev = r.severity == Severity::kFault     ? "FAULT"
                      : r.severity == Severity::kWarning ? "warning"
                                                         : "info";
    std::fprintf(stderr, "[%s %s] %.6f s %s: %s%s\n", name.c_str(), sev,
                 static_cast<double>(r.time) / 1e9, r.source.c_str(), r.message.c_str(),
                 r.pc != 0 ? fmt::format(" (pc 0x{:08X})", r.pc).c_str() : "");
  };
  sim.set_report_sink([&](const Report& r) { print_report("bus", r); });

  std::vector<Board*> boards;
  for (const auto& s : specs) {
    BoardConfig cfg;
    cfg.name = s.name;
    cfg.flash_path = s.flash;
    cfg.ocotp_cfg = s.ocotp;
    for (const std::string& spec : reading_specs) parse_reading(spec, cfg.readings, nullptr);
    cfg.flash_timing = timing == "max" ? FlashTiming::kMax : FlashTiming::kTypical;
    const std::string name = s.name;
    cfg.report_sink = [print_report, name](const Report& r) { print_report(name, r); };
    Board* b = nullptr;
    try {
      b = &sim.add_board(cfg);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "rtcanboot-twin: %s\n", e.what());
      return 1;
    }
    if (!s.bootloader.empty()) {
      const auto image = read_file(s.bootloader);
      if (image.empty()) {
        std::fprintf(stderr, "rtcanboot-twin: cannot read bootloader %s\n", s.bootloader.c_str());
        return 1;
      }
      if (image.size() > memory_map::kBootloaderSize) {
        std::fprintf(stderr,
                     "rtcanboot-twin: %s is %zu bytes, more than the 128 KiB bootloader region\n",
                     s.bootloader.c_str(), image.size());
        return 1;
      }
      // Like a debug probe: erase the bootloader region, then program the image.
      std::vector<std::uint8_t> region(memory_map::kBootloaderSize, 0xFF);
      std::copy(image.begin(), image.end(), region.begin());
      b->flash().probe_write(memory_map::kBootloaderOffset, region);
    }
    if (s.node_id || s.bitrate) {
      Provisioning p;
      p.node_id = static_cast<std::uint8_t>(s.node_id.value_or(lss::kUnconfigured));
      p.bitrate = s.bitrate.value_or(rate);
      if (s.node_id && !lss::valid_node_id(static_cast<std::uint8_t>(*s.node_id))) {
        std::fprintf(stderr, "rtcanboot-twin: node-ID %u is not 1..127 or 255 (unconfigured)\n",
                     *s.node_id);
        return 2;
      }
      // Both sectors of the provisioning log: the factory record and nothing newer after it.
      std::vector<std::uint8_t> sector(memory_map::kProvisioningSectors * memory_map::kSectorSize,
                                       0xFF);
      if (!encode_provisioning(p, sector.data(), sector.size())) {
        std::fprintf(stderr,
                     "rtcanboot-twin: cannot encode provisioning (node-ID %u, bit rate %u)\n",
                     p.node_id, p.bitrate);
        return 2;
      }
      b->flash().probe_write(memory_map::kProvisioningOffset, sector);
    }
    b->connect_can(bus, s.can_instance);
    boards.push_back(b);
  }

  std::unique_ptr<can::SocketcanBridge> bridge;
  if (!bus_uri.empty()) {
    const std::string scheme = "socketcan://";
    if (bus_uri.rfind(scheme, 0) != 0 || bus_uri.size() == scheme.size()) {
      std::fprintf(stderr,
                   "rtcanboot-twin: --bus wants socketcan://IFACE (for socketcand clients use "
                   "--socketcand HOST:PORT)\n");
      return 2;
    }
    can::SocketcanOptions opt;
    opt.interface = bus_uri.substr(scheme.size());
    bridge = std::make_unique<can::SocketcanBridge>(bus, sim.reporter(), opt);
    std::string err;
    if (!bridge->start(&err)) {
      std::fprintf(stderr, "rtcanboot-twin: %s\n", err.c_str());
      return 1;
    }
    std::fprintf(stderr, "rtcanboot-twin: bus joined to %s at %u bit/s\n", bus_uri.c_str(), rate);
  }

  std::unique_ptr<can::SlcanPty> slcan;
  if (slcan_pty) {
    slcan = std::make_unique<can::SlcanPty>(bus, sim.reporter());
    std::string err;
    if (!slcan->start(&err)) {
      std::fprintf(stderr, "rtcanboot-twin: --slcan-pty: %s\n", err.c_str());
      return 1;
    }
    std::fprintf(stderr, "rtcanboot-twin: slcan adapter on %s\n", slcan->slave_path().c_str());
  }

  std::unique_ptr<can::SocketcandServer> server;
  if (!socketcand.empty()) {
    can::SocketcandOptions opt;
    const auto colon = socketcand.rfind(':');
    if (colon == std::string::npos) {
      std::fprintf(stderr, "rtcanboot-twin: --socketcand wants HOST:PORT\n");
      return 2;
    }
    opt.host = socketcand.substr(0, colon);
    opt.port = static_cast<std::uint16_t>(std::stoul(socketcand.substr(colon + 1)));
    opt.channel = "can0";
    // Clients can join at any time: the bus is live, and the twin sleeps between events instead of
    // racing virtual time while nobody watches.
    opt.pacing = can::SocketcandOptions::Pacing::kAlways;
    server = std::make_unique<can::SocketcandServer>(bus, sim.reporter(), opt);
    std::string err;
    if (!server->start(&err)) {
      std::fprintf(stderr, "rtcanboot-twin: socketcand: %s\n", err.c_str());
      return 1;
    }
    std::fprintf(stderr, "rtcanboot-twin: socketcand on %s:%u, channel can0\n", opt.host.c_str(),
                 server->port());
  }

  if (server && wait_client_s > 0) {
    if (!server->wait_for_client(
            std::chrono::milliseconds(static_cast<long long>(wait_client_s * 1000)))) {
      std::fprintf(stderr, "rtcanboot-twin: no socketcand client within %.1f s; starting anyway\n",
                   wait_client_s);
    }
  }
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  for (Board* b : boards) b->power_on();
  if (cut_op) boards.front()->flash().cut_power_at_operation(*cut_op);
  if (cut_ms) boards.front()->flash().cut_power_at_time(static_cast<Nanos>(*cut_ms * 1e6));
  std::vector<Nanos> off_since(boards.size(), kNever);
  const auto wall_start = std::chrono::steady_clock::now();
  const Nanos end = run_ms > 0 ? static_cast<Nanos>(run_ms * 1e6) : kNever;
  const Nanos step = 1'000'000;  // 1 ms of virtual time per outer step
  bool seen = false;
  bool bridge_failed = false;
  while (!g_stop && sim.now() < end && !seen) {
    Nanos target = std::min(end, sim.now() + step);
    if (bridge || slcan) {
      // The interface (else the pty) paces; the other gateways are serviced once per step.
      if (server) server->poll();
      if (bridge && slcan) slcan->poll();
      target = bridge ? bridge->pace(target) : slcan->pace(target);
      if (target <= sim.now()) continue;
    } else if (server) {
      server->poll();
      target = server->pace(target);
      if (target <= sim.now()) continue;
    }
    sim.run_until(target);
    if (server) server->poll();
    if (slcan) slcan->poll();
    if (bridge) {
      bridge->poll();
      if (bridge->failed()) {
        std::fprintf(stderr, "rtcanboot-twin: %s\n", bridge->failure().c_str());
        bridge_failed = true;
        break;
      }
    }
    for (std::size_t i = 0; i < boards.size(); ++i) {
      if (boards[i]->state() != BoardState::kOff) {
        off_since[i] = kNever;
        continue;
      }
      if (off_since[i] == kNever) {
        off_since[i] = sim.now();
        std::fprintf(stderr, "[%s] %.6f s power off: %s\n", boards[i]->name().c_str(),
                     static_cast<double>(sim.now()) / 1e9, boards[i]->stop_reason().c_str());
      }
      if (restore_ms >= 0 && sim.now() >= off_since[i] + static_cast<Nanos>(restore_ms * 1e6)) {
        std::fprintf(stderr, "[%s] %.6f s power on\n", boards[i]->name().c_str(),
                     static_cast<double>(sim.now()) / 1e9);
        boards[i]->power_on();
        off_since[i] = kNever;
      }
    }
    if (!until_console.empty()) {
      for (Board* b : boards) {
        if (b->console().find(until_console) != std::string::npos) seen = true;
      }
    }
  }
  const double wall =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
  if (stats) {
    std::uint64_t hw = 0;
    for (Board* b : boards) hw += b->executed_halfwords();
    std::fprintf(
        stderr,
        "rtcanboot-twin: %.3f s virtual in %.3f s wall (%.1fx), %.1f M halfwords executed\n",
        static_cast<double>(sim.now()) / 1e9, wall,
        wall > 0 ? static_cast<double>(sim.now()) / 1e9 / wall : 0.0,
        static_cast<double>(hw) / 1e6);
  }
  if (slcan) {
    const auto& st = slcan->stats();
    std::fprintf(stderr,
                 "rtcanboot-twin: slcan adapter %s: %llu frames to the program, %llu from it, %llu "
                 "errors, %llu dropped\n",
                 slcan->slave_path().c_str(), static_cast<unsigned long long>(st.to_serial),
                 static_cast<unsigned long long>(st.from_serial),
                 static_cast<unsigned long long>(st.errors),
                 static_cast<unsigned long long>(st.dropped));
  }
  if (bridge) {
    const auto& st = bridge->stats();
    std::fprintf(stderr,
                 "rtcanboot-twin: %s: %llu frames to the interface, %llu from it, %llu error "
                 "frames, %llu retries (transmit "
                 "queue full), %llu dropped\n",
                 bus_uri.c_str(), static_cast<unsigned long long>(st.to_interface),
                 static_cast<unsigned long long>(st.from_interface),
                 static_cast<unsigned long long>(st.error_frames),
                 static_cast<unsigned long long>(st.retries),
                 static_cast<unsigned long long>(st.dropped));
  }
  int rc = 0;
  for (Board* b : boards) {
    if (b->fault_count() > 0) rc = 3;
  }
  if (!until_console.empty() && !seen) rc = rc ? rc : 4;
  if (bridge_failed) rc = rc ? rc : 5;
  return rc;
}
