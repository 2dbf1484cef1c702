// Chip-level helpers shared by the bootloader and applications: watchdogs, clock gates, pins.
#pragma once

#include <cstdint>

#include "rtcanboot/imxrt1064/registers.hpp"

namespace rtcanboot::imxrt1064 {

// Disables WDOG1, WDOG2 and RTWDOG, which the boot ROM may have left running (fuse-enabled
// watchdog), and stops the WDOG1/2 power-down counter that would otherwise reset the chip
// 16 s after reset. rtcanboot never blocks for long, but a watchdog that nobody services would
// reset a device waiting for a download; an application enables its own. Returns false when a
// watchdog stayed enabled (WCR.WDE read as write-once on some i.MX parts, or a failed RTWDOG
// unlock): then service_watchdogs() must run at least every 100 ms.
bool disable_watchdogs();
void service_watchdogs();

void clock_gate_on(ccm::Gate gate);
void clock_gate_off(ccm::Gate gate);

void configure_pin(const iomuxc::Pin& pin, bool software_input_on, std::uint32_t pad_config);

// Busy-waits about `cycles` core cycles (only for short hardware settling delays).
void spin_cycles(std::uint32_t cycles);

}  // namespace rtcanboot::imxrt1064
