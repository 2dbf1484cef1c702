// Ed25519 verification time in the twin (prints figures; not a test). script/bench runs it.
//
// Runs firmware/twin-tests/ed25519_bench.cpp (the core's verifier on the Cortex-M7, timed with the
// DWT cycle counter) on a twin board and prints the cycles and the time at the bootloader's
// 600 MHz per case. The twin charges one cycle per 16-bit halfword of executed Thumb code
// (docs/twin.md §4): the figure is the twin's, not a measurement on silicon.
//
// ed25519_bench [--firmware-dir DIR]
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "twin/board.hpp"

namespace {

using namespace rtcanboot::twin;

std::vector<std::uint8_t> load_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  return std::vector<std::uint8_t>(std::istreambuf_iterator<char>(in), {});
}

}  // namespace

int main(int argc, char** argv) {
  const char* env = std::getenv("RTCANBOOT_FIRMWARE_DIR");
  std::string dir = env != nullptr ? env : RTCANBOOT_FIRMWARE_DIR;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--firmware-dir") == 0 && i + 1 < argc) {
      dir = argv[++i];
    } else {
      std::fprintf(stderr, "usage: ed25519_bench [--firmware-dir DIR]\n");
      return 2;
    }
  }
  const std::string path = dir + "/firmware/twin-tests/twin-test-ed25519.bin";
  const std::vector<std::uint8_t> image = load_file(path);
  if (image.empty()) {
    std::fprintf(stderr, "ed25519_bench: %s not built (cmake --build --preset rt1064)\n",
                 path.c_str());
    return 1;
  }

  Simulation sim;
  BoardConfig config;
  config.name = "ed25519";
  config.console_sink = [](const std::string&) {};
  // The bench firmware services no watchdog and takes SP from its vector table.
  config.readings.rom_watchdogs = RomWatchdogs::kNone;
  config.readings.ivt_entry_sp = IvtEntrySp::kLoadedFromVectorTable;
  Board& board = sim.add_board(config);
  board.flash().probe_write(0, image);
  board.power_on();
  const bool done =
      sim.run_until([&] { return board.console().find("ed25519-bench done") != std::string::npos; },
                    sim.now() + milliseconds_ns(2000));
  if (!done || board.fault_count() != 0) {
    std::fprintf(stderr, "ed25519_bench: the firmware did not finish:\n%s\n",
                 board.console().c_str());
    return 1;
  }

  std::printf("Ed25519 verification in the twin (core clock 600 MHz, 1 cycle per halfword)\n");
  std::printf("%-18s %12s %10s %s\n", "case", "cycles", "ms", "verdict");
  std::istringstream lines(board.console());
  std::string line;
  int cases = 0;
  int expected = 0;  // sha_abc and test1 verify, sha_abc_flipped does not
  while (std::getline(lines, line)) {
    char name[32] = {};
    unsigned long cycles = 0;
    int verdict = -1;
    if (std::sscanf(line.c_str(), "%31s cycles %lx verdict %d", name, &cycles, &verdict) == 3) {
      std::printf("%-18s %12lu %10.2f %s\n", name, cycles, static_cast<double>(cycles) / 600e3,
                  verdict == 0 ? "valid" : (verdict == 3 ? "mismatch" : "other"));
      ++cases;
      const bool flipped = std::strcmp(name, "sha_abc_flipped") == 0;
      if (verdict == (flipped ? 3 : 0)) ++expected;
    }
  }
  return cases == 3 && expected == 3 ? 0 : 1;
}
