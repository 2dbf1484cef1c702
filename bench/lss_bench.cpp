// LSS benchmark (prints figures; not a test). script/bench runs it.
//
// Eight unconfigured boards with the real bootloader in the twin, each with its own OCOTP unique
// ID, on one bus; the host library's LSS master (what `rtcanboot lss` runs) in pure virtual time.
// Per bit rate (125 kbit/s and 1 Mbit/s): Fastscan of all eight with nothing known, the same with
// vendor-ID, product code and revision given (only the serial searched), and `lss auto` numbering
// and storing all eight. The LSS answer timeout is the tool's default (20 ms) unless
// --lss-timeout MS is given; a Fastscan step nobody answers costs exactly that long.
//
// lss_bench [--firmware-dir DIR] [--lss-timeout MS]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "rtcanboot/host/lss_master.hpp"
#include "rtcanboot/lss.hpp"
#include "twin/board.hpp"
#include "twin/can/bus.hpp"
#include "twin_rig.hpp"

namespace {

using namespace rtcanboot;
constexpr int kBoards = 8;

struct Figures {
  double seconds = 0;
  std::uint64_t requests = 0;
  std::uint64_t unanswered = 0;
  std::size_t nodes = 0;
};

struct Bench {
  Bench(const twinrig::Firmware& fw, std::uint32_t bitrate)
      : bus(sim.add_bus(bitrate)), endpoint("master"), transport(sim, endpoint, 0) {
    bus.attach(endpoint);
    twinrig::RigConfig rc;
    rc.bitrate = bitrate;
    rc.node_id = lss::kUnconfigured;
    const auto image = twinrig::factory_flash(fw.bootloader, rc);
    for (int i = 0; i < kBoards; ++i) {
      twin::BoardConfig cfg;
      cfg.name = "board" + std::to_string(i);
      cfg.ocotp_cfg = {0x3C00'0000U ^ static_cast<std::uint32_t>(i * 0x0193'5A27),
                       0x0000'1064U + static_cast<std::uint32_t>(i), 0};
      cfg.console_sink = [](const std::string&) {};
      cfg.report_sink = [](const twin::Report&) {};
      twin::Board& b = sim.add_board(cfg);
      b.flash().probe_write(0, image);
      b.connect_can(bus, 2);
      b.power_on();
    }
    sim.run_for(500'000'000);  // boot (unconfigured nodes stay silent)
  }
  twin::Simulation sim;
  twin::can::Bus& bus;
  twin::can::Endpoint endpoint;
  twinrig::TwinTransport transport;
};

template <typename Fn>
Figures measure(host::LssMaster& lss, Fn&& fn) {
  const auto requests = lss.fastscan_requests();
  const auto unanswered = lss.fastscan_timeouts();
  const Micros t0 = lss.now();
  Figures f;
  f.nodes = fn();
  f.seconds = static_cast<double>(lss.now() - t0) / 1e6;
  f.requests = lss.fastscan_requests() - requests;
  f.unanswered = lss.fastscan_timeouts() - unanswered;
  return f;
}

void print(const char* what, std::uint32_t bitrate, const Figures& f) {
  std::printf(
      "%-34s %5u kbit/s  %zu nodes  %8.3f s virtual  %5llu Fastscan requests (%llu unanswered)\n",
      what, bitrate / 1000, f.nodes, f.seconds, static_cast<unsigned long long>(f.requests),
      static_cast<unsigned long long>(f.unanswered));
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir = twinrig::default_firmware_dir();
  int timeout_ms = 20;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--firmware-dir") == 0 && i + 1 < argc) {
      dir = argv[++i];
    } else if (std::strcmp(argv[i], "--lss-timeout") == 0 && i + 1 < argc) {
      timeout_ms = std::atoi(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: lss_bench [--firmware-dir DIR] [--lss-timeout MS]\n");
      return 2;
    }
  }
  const auto fw = twinrig::load_firmware(dir);
  if (!fw) {
    std::fprintf(stderr, "lss_bench: no firmware in %s (run script/build)\n", dir.c_str());
    return 1;
  }
  std::printf("LSS with %d unconfigured boards, LSS answer timeout %d ms\n", kBoards, timeout_ms);
  int status = 0;
  for (std::uint32_t bitrate : {125'000U, 1'000'000U}) {
    const auto wall0 = std::chrono::steady_clock::now();
    Bench bench(*fw, bitrate);
    host::LssOptions options;
    options.timeout = static_cast<Micros>(timeout_ms) * 1000;
    host::LssMaster lss(bench.transport, options);
    NodeIdentity first;
    const Figures full = measure(lss, [&] {
      const auto found = lss.scan();
      if (!found.empty()) first = found.front();
      return found.size();
    });
    print("lss scan (Fastscan, nothing known)", bitrate, full);
    const Figures hinted = measure(lss, [&] {
      return lss.scan({first.vendor_id, first.product_code, first.revision}).size();
    });
    print("lss scan (vendor/product/rev given)", bitrate, hinted);
    const Figures numbered = measure(lss, [&] { return lss.auto_assign(10, true).size(); });
    print("lss auto --first-node 10 (stored)", bitrate, numbered);
    const double wall =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
    std::printf("%-34s %5u kbit/s  %.1f s wall for the three runs\n", "", bitrate / 1000, wall);
    if (full.nodes != kBoards || hinted.nodes != kBoards || numbered.nodes != kBoards) status = 1;
  }
  return status;
}
