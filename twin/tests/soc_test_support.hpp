// Helpers shared by the twin's SoC tests.
#pragma once

#include <cstdint>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "twin/board.hpp"

namespace rtcanboot::twin::testing {

inline std::string firmware_path(const std::string& name) {
  const char* env = std::getenv("RTCANBOOT_FIRMWARE_DIR");
  const std::string dir = env != nullptr ? env : RTCANBOOT_FIRMWARE_DIR;
  return dir + "/firmware/twin-tests/twin-test-" + name + ".bin";
}

inline std::vector<std::uint8_t> load_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  return std::vector<std::uint8_t>(std::istreambuf_iterator<char>(in), {});
}

// A quiet board config: console and reports are kept in the board only.
inline BoardConfig quiet_config(std::string name = "test") {
  BoardConfig c;
  c.name = std::move(name);
  c.console_sink = [](const std::string&) {};
  c.report_sink = [](const Report&) {};
  // The twin-test firmware clocks CAN from pll3_sw_clk/6, as NXP's SDK does: PLL3 running.
  c.readings.pll3_after_boot = Pll3AfterBoot::kRunning;
  // It also carries a flag over SYSRESETREQ in SRC_GPR5 alone, as community code does.
  c.readings.src_gpr_over_reset = SrcGprOverReset::kKeptOverWarmReset;
  // And it does not service watchdogs; its own tests turn them on.
  c.readings.rom_watchdogs = RomWatchdogs::kNone;
  // Its startup code takes SP from the vector table, as the SDK's does.
  c.readings.ivt_entry_sp = IvtEntrySp::kLoadedFromVectorTable;
  return c;
}

}  // namespace rtcanboot::twin::testing
