// Fleet benchmark (prints figures; not a test). script/bench runs it (issue 14,
// docs/fleet-update.md).
//
// N boards with the real bootloader on one twin bus at 1 Mbit/s, typical flash timing, each
// provisioned with its own node-ID (10, 11, ...) and waiting in its bootloader; one image (the
// example application padded with pseudo-random data to 1 MiB) installed on all of them by the
// host library's fleet flow (what `rtcanboot flash --nodes` runs) in pure virtual time:
//   listen-along  one download to a lead, the others follow it, then check and repair
//   unicast       a whole download to every node at the same time (interleaved SDO block transfers)
//   sequential    the single-node update flow for one node after the other
// plus listen-along with 8 nodes and 0.1 % frame loss at random followers: each frame is missed
// with probability 0.1 % by one of the seven followers (each follower's controller misses a frame
// with probability 0.1 % / 7, seeded); --loss-at-each makes every follower miss 0.1 %. The
// application is not started (like `flash --no-start`): the figures are the time until every node
// holds the image, verified and committed.
//
// fleet_bench [--firmware-dir DIR] [--nodes 1,2,4,8,16] [--kib 1024] [--flows listen-along,...]
//             [--no-loss] [--loss-at-each] [--json FILE] [--verbose]
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "rtcanboot/hash.hpp"
#include "rtcanboot/host/fleet.hpp"
#include "rtcanboot/memory_map.hpp"
#include "twin/board.hpp"
#include "twin/can/bus.hpp"
#include "twin/can/flexcan.hpp"
#include "twin_rig.hpp"

namespace {

using namespace rtcanboot;
constexpr std::uint8_t kFirstNode = 10;
bool verbose = false;       // --verbose: every step of the flow
bool loss_at_each = false;  // --loss-at-each: every follower loses 0.1 %, not 0.1 % in all

struct Bench {
  Bench(const twinrig::Firmware& fw, int boards)
      : bus(sim.add_bus(1'000'000)),
        endpoint("master"),
        transport(sim, endpoint, 0),
        master(transport) {
    bus.attach(endpoint);
    bus.set_seed(2026);
    for (int i = 0; i < boards; ++i) {
      twinrig::RigConfig rc;
      rc.node_id = static_cast<std::uint8_t>(kFirstNode + i);
      rc.listen_window_ms = 0;
      twin::BoardConfig cfg;
      cfg.name = "node" + std::to_string(rc.node_id);
      cfg.console_sink = [](const std::string&) {};
      cfg.report_sink = [](const twin::Report&) {};
      twin::Board& b = sim.add_board(cfg);
      b.flash().probe_write(0, twinrig::factory_flash(fw.bootloader, rc));
      b.connect_can(bus, 2);
      b.power_on();
    }
    sim.run_for(300'000'000);  // every bootloader is up (no application: it stays there)
  }
  twin::Simulation sim;
  twin::can::Bus& bus;
  twin::can::Endpoint endpoint;
  twinrig::TwinTransport transport;
  host::Master master;
};

struct Row {
  std::string flow;
  int nodes = 0;
  double loss = 0;
  double seconds = 0;
  double wall = 0;
  int exit_code = 0;
  std::uint32_t repaired = 0;
  std::uint32_t repair_sectors = 0;
  std::uint64_t lost_frames = 0;      // dropped by the loss injection
  std::uint64_t controller_lost = 0;  // lost in the boards' FlexCAN (FIFO overflow, overrun)
};

Row run(const twinrig::Firmware& fw, const host::LoadedInput& input, host::FleetMode mode,
        int boards, double loss) {
  const auto wall0 = std::chrono::steady_clock::now();
  Bench bench(fw, boards);
  if (loss > 0) {
    for (int i = 1; i < boards; ++i) {  // the followers (the lead is node 10)
      twin::can::FaultRule rule;
      rule.action = twin::can::FaultRule::Action::kDrop;
      // "random": each frame is lost with probability `loss` at one of the followers, chosen at
      // random; "each": every follower loses each frame with probability `loss`.
      rule.rate = loss_at_each ? loss : loss / (boards - 1);
      rule.receiver = fmt::format("node{}/FLEXCAN2", kFirstNode + i);
      bench.bus.add_fault(rule);
    }
  }
  host::FleetOptions options;
  for (int i = 0; i < boards; ++i)
    options.nodes.push_back(static_cast<std::uint8_t>(kFirstNode + i));
  options.mode = mode;
  options.update.start = false;
  host::FleetEvents events;
  if (verbose) events.step = [](const std::string& s) { std::printf("  %s\n", s.c_str()); };
  const host::FleetResult r = host::run_fleet_update(bench.master, input, options, events);
  Row row;
  row.flow = host::to_string(mode);
  row.nodes = boards;
  row.loss = loss;
  row.seconds = static_cast<double>(r.time) / 1e6;
  row.exit_code = r.exit_code();
  for (const auto& n : r.nodes) {
    if (n.repairs) ++row.repaired;
    row.repair_sectors += n.repair_sectors;
  }
  row.lost_frames = bench.bus.stats().dropped;
  for (auto& b : bench.sim.boards()) row.controller_lost += b->flexcan(2).lost_frames();
  row.wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
  if (row.exit_code != 0) std::fputs(host::format_fleet_summary(r).c_str(), stdout);
  return row;
}

std::vector<int> parse_counts(const std::string& text) {
  std::vector<int> counts;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) counts.push_back(std::stoi(item));
  return counts;
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir = twinrig::default_firmware_dir();
  std::vector<int> counts = {1, 2, 4, 8, 16};
  std::uint32_t kib = 1024;
  std::string flows = "listen-along,unicast,sequential";
  bool with_loss = true;
  std::string json_path;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--firmware-dir" && i + 1 < argc) {
      dir = argv[++i];
    } else if (a == "--nodes" && i + 1 < argc) {
      counts = parse_counts(argv[++i]);
    } else if (a == "--kib" && i + 1 < argc) {
      kib = static_cast<std::uint32_t>(std::stoul(argv[++i]));
    } else if (a == "--flows" && i + 1 < argc) {
      flows = argv[++i];
    } else if (a == "--loss-at-each") {
      loss_at_each = true;
    } else if (a == "--verbose") {
      verbose = true;
    } else if (a == "--no-loss") {
      with_loss = false;
    } else if (a == "--json" && i + 1 < argc) {
      json_path = argv[++i];
    } else {
      std::fprintf(stderr,
                   "usage: fleet_bench [--firmware-dir DIR] [--nodes 1,2,4,8,16] [--kib 1024] "
                   "[--flows listen-along,unicast,sequential] [--no-loss] [--loss-at-each] [--json "
                   "FILE] [--verbose]\n");
      return 2;
    }
  }
  const auto fw = twinrig::load_firmware(dir);
  if (!fw) {
    std::fprintf(stderr, "fleet_bench: no firmware in %s (run script/build)\n", dir.c_str());
    return 1;
  }
  std::vector<std::uint8_t> payload = fw->app;
  std::mt19937 rng(14);
  while (payload.size() < kib * 1024) payload.push_back(static_cast<std::uint8_t>(rng()));
  payload.resize(kib * 1024);
  host::LoadedInput input;
  input.format = host::InputFormat::kBinary;
  input.image = host::FlatImage{memory_map::kAppAddress, payload};

  std::printf("fleet update: %u KiB at 1 Mbit/s, typical flash timing, nodes from %u up\n", kib,
              kFirstNode);
  std::printf("%-14s %5s %6s %10s %8s %9s %8s %6s %7s\n", "flow", "nodes", "loss", "time_s",
              "x_single", "repaired", "sectors", "exit", "wall_s");
  std::vector<Row> rows;
  // x_single: against the same flow with one node, when this run measured it.
  std::map<std::string, double> single;
  auto times_single = [&](const Row& row) -> std::optional<double> {
    const auto it = single.find(row.flow);
    if (it == single.end() || it->second <= 0) return std::nullopt;
    return row.seconds / it->second;
  };
  auto report = [&](const Row& row) {
    if (row.nodes == 1 && row.loss == 0) single.emplace(row.flow, row.seconds);
    const auto x = times_single(row);
    std::printf("%-14s %5d %5.1f%% %10.3f %8s %9u %8u %6d %7.1f  ctrl_lost %llu\n",
                row.flow.c_str(), row.nodes, row.loss * 100, row.seconds,
                x ? fmt::format("{:.2f}", *x).c_str() : "-", row.repaired, row.repair_sectors,
                row.exit_code, row.wall, static_cast<unsigned long long>(row.controller_lost));
    std::fflush(stdout);
    rows.push_back(row);
  };
  const std::pair<const char*, host::FleetMode> modes[] = {
      {"listen-along", host::FleetMode::kListenAlong},
      {"unicast", host::FleetMode::kUnicast},
      {"sequential", host::FleetMode::kSequential}};
  for (const auto& [name, mode] : modes) {
    if (flows.find(name) == std::string::npos) continue;
    for (const int n : counts) report(run(*fw, input, mode, n, 0.0));
  }
  if (with_loss) report(run(*fw, input, host::FleetMode::kListenAlong, 8, 0.001));

  int status = 0;
  for (const Row& r : rows) {
    if (r.exit_code != 0) status = 1;
  }
  if (!json_path.empty()) {
    std::ofstream out(json_path);
    out << fmt::format("{{\"image_bytes\": {}, \"bitrate\": 1000000, \"cases\": [", payload.size());
    for (std::size_t i = 0; i < rows.size(); ++i) {
      const Row& r = rows[i];
      const auto x = times_single(r);
      out << fmt::format(
          "{}{{\"flow\": \"{}\", \"nodes\": {}, \"loss\": {}, \"time_s\": {:.6f}, "
          "\"x_single\": {}, \"repaired_nodes\": {}, \"repair_sectors\": {}, "
          "\"lost_frames\": {}, \"exit_code\": {}, \"wall_s\": {:.1f}}}",
          i ? ", " : "", r.flow, r.nodes, r.loss, r.seconds,
          x ? fmt::format("{:.4f}", *x) : std::string("null"), r.repaired, r.repair_sectors,
          r.lost_frames, r.exit_code, r.wall);
    }
    out << "]}\n";
  }
  return status;
}
