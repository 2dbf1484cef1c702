// Chip-level helpers shared by the bootloader and applications: watchdogs, clock gates, pins.
#pragma once

#include <cstdint>

#include "rtcanboot/imxrt1064/registers.hpp"

// Code that must not execute from the QSPI flash while the flash or a timed unlock sequence is
// busy: the application links .ramfunc into ITCM; the bootloader runs from RAM anyway.
#define RTCANBOOT_RAMFUNC [[gnu::section(".ramfunc"), gnu::noinline, gnu::long_call]]

namespace rtcanboot::imxrt1064 {

// Disables WDOG1, WDOG2 and RTWDOG, which the boot ROM may have left running (fuse-enabled
// watchdog), and stops the WDOG1/2 power-down counter that would otherwise reset the chip
// 16 s after reset. rtcanboot never blocks for long, but a watchdog that nobody services would
// reset a device waiting for a download; an application enables its own. A WDOG1/2 enabled
// before us (WCR.WDE is write-once) gets the longest time-out, 128 s, and is serviced at once.
// Returns false when a watchdog stayed enabled (that, or a failed RTWDOG unlock): then
// service_watchdogs() must run at least every 100 ms (the shortest RTWDOG time-out is unknown).
bool disable_watchdogs();
// The watchdogs as found (the bootloader reads them before disable_watchdogs(): the self-test
// reports what the boot ROM left running).
struct WatchdogState {
  std::uint16_t wdog1_wcr = 0;
  std::uint16_t wdog2_wcr = 0;
  std::uint32_t rtwdog_cs = 0;
  std::uint32_t rtwdog_toval = 0;
  bool wdog1_on() const { return (wdog1_wcr & wdog::kWcrWde) != 0; }
  bool wdog2_on() const { return (wdog2_wcr & wdog::kWcrWde) != 0; }
  bool rtwdog_on() const { return (rtwdog_cs & wdog::kRtCsEn) != 0; }
};
WatchdogState read_watchdogs();
void service_watchdogs();
// WDOG1 and WDOG2 only, when enabled (an application's main loop: the RTWDOG is the trial watchdog,
// which only confirm() may stop).
void service_wdog1_wdog2();

// The trial-boot watchdog (docs/trial-boot.md): RTWDOG on the 32 kHz LPO clock divided by 256
// (7.8125 ms a tick), reconfigurable (UPDATE) so that an application may take it over or turn
// it off, with its reset unmasked in SRC_SCR. False when it did not start.
inline constexpr std::uint32_t kRtwdogTickUs = 7'813;
RTCANBOOT_RAMFUNC bool arm_trial_watchdog(std::uint32_t timeout_ms);
// Turns RTWDOG off again (the application kit, once the application confirmed).
RTCANBOOT_RAMFUNC void disarm_trial_watchdog();

void clock_gate_on(ccm::Gate gate);
void clock_gate_off(ccm::Gate gate);
bool clock_gate_is_on(ccm::Gate gate);

void configure_pin(const iomuxc::Pin& pin, bool software_input_on, std::uint32_t pad_config);

// The 0x1018:4 serial number from the chip's unique-ID fuses: serial_from_unique_id() of the
// OCOTP shadow words CFG0, CFG1, CFG2. The bootloader and the application report the same value.
std::uint32_t chip_serial_number();

// Busy-waits about `cycles` core cycles (only for short hardware settling delays).
void spin_cycles(std::uint32_t cycles);

}  // namespace rtcanboot::imxrt1064
