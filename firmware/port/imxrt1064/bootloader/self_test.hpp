// The bring-up self-test (docs/bring-up.md): twelve checks of the facts the port builds on, each
// a line "N pass|FAIL  what: measured value (expected ...)" on the console and in 0x5F01:2. It
// runs after a reset that asked for it (0x5F01:1 = 1 over CAN, or the application kit's
// request_self_test()), so that it can also tell which reset carriers survived that reset.
#pragma once

#include <cstdint>

#include "rom_flash.hpp"
#include "rtcanboot/bootloader.hpp"
#include "rtcanboot/imxrt1064/flexcan.hpp"
#include "rtcanboot/imxrt1064/system.hpp"
#include "rtcanboot/imxrt1064/timebase.hpp"

namespace rtcanboot::imxrt1064 {

enum class SelfTestCheck : std::uint8_t {
  kJedecId = 1,
  kSfdp,
  kScratchSector,
  kLut,
  kPll3,
  kFlexspiClock,
  kCanClock,
  kUartClock,
  kBitTiming,
  kSrcGprOverReset,
  kSnvsOverReset,
  kWatchdogsAtEntry,
};
inline constexpr std::uint32_t kSelfTestChecks = 12;

struct SelfTestInputs {
  std::uint32_t entry_carriers = 0;  // handover::kCarrier* bits that kept the request
  WatchdogState watchdogs_at_entry;  // as the boot ROM left them
  bool watchdogs_off = true;         // disable_watchdogs() turned every one off
  bool can_started = false;
  const char* clock_problem = nullptr;  // board::check_clocks()
  std::uint32_t bitrate = 0;            // the bit rate the node runs
};

// Runs every check (the flash ones through `flash`, which init() has set up), prints the lines
// on the console and returns the result, whose report stays valid until the next run.
SelfTestResult run_self_test(const SelfTestInputs& inputs, RomFlash& flash, const FlexCan& can,
                             Timebase& clock);

}  // namespace rtcanboot::imxrt1064
