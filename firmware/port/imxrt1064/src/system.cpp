#include "rtcanboot/imxrt1064/system.hpp"

#include <initializer_list>

#include "rtcanboot/hash.hpp"

namespace rtcanboot::imxrt1064 {

namespace {

// RTWDOG unlock: the 32-bit key, or two 16-bit halves when CMD32EN is clear; then wait for ULK
// (new settings must follow within 255 bus clocks).
RTCANBOOT_RAMFUNC bool rtwdog_unlock() {
  const std::uint32_t cs = reg32(wdog::kRtCs);
  if ((cs & wdog::kRtCsCmd32En) != 0) {
    reg32(wdog::kRtCnt) = wdog::kRtUnlockKey;
  } else {
    reg16(wdog::kRtCnt) = static_cast<std::uint16_t>(wdog::kRtUnlockKey & 0xFFFF);
    reg16(wdog::kRtCnt) = static_cast<std::uint16_t>(wdog::kRtUnlockKey >> 16);
  }
  for (std::uint32_t tries = 0; tries < 10000; ++tries) {
    if ((reg32(wdog::kRtCs) & wdog::kRtCsUlk) != 0) return true;
  }
  return false;
}

}  // namespace

bool arm_trial_watchdog(std::uint32_t timeout_ms) {
  std::uint32_t ticks = timeout_ms * 1000 / kRtwdogTickUs;
  if (ticks == 0) ticks = 1;
  if (ticks > 0xFFFF) ticks = 0xFFFF;
  reg32(src::kScr) = (reg32(src::kScr) & ~src::kScrMaskWdog3Field) | src::kScrWdog3ResetOn;
  if (!rtwdog_unlock()) return false;
  reg32(wdog::kRtWin) = 0;
  reg32(wdog::kRtToval) = ticks;
  reg32(wdog::kRtCs) =
      wdog::kRtCsEn | wdog::kRtCsUpdate | wdog::kRtCsClkLpo | wdog::kRtCsPres | wdog::kRtCsCmd32En;
  for (std::uint32_t tries = 0; tries < 10000; ++tries) {
    if ((reg32(wdog::kRtCs) & wdog::kRtCsRcs) != 0) break;
  }
  return (reg32(wdog::kRtCs) & wdog::kRtCsEn) != 0;
}

void disarm_trial_watchdog() {
  if ((reg32(wdog::kRtCs) & wdog::kRtCsEn) == 0) return;
  if (!rtwdog_unlock()) return;
  reg32(wdog::kRtToval) = 0xFFFF;
  reg32(wdog::kRtCs) = (reg32(wdog::kRtCs) & ~wdog::kRtCsEn) | wdog::kRtCsUpdate;
}

WatchdogState read_watchdogs() {
  WatchdogState state;
  state.wdog1_wcr = reg16(wdog::kWdog1 + wdog::kWcr);
  state.wdog2_wcr = reg16(wdog::kWdog2 + wdog::kWcr);
  state.rtwdog_cs = reg32(wdog::kRtCs);
  state.rtwdog_toval = reg32(wdog::kRtToval);
  return state;
}

bool disable_watchdogs() {
  for (const Address base : {wdog::kWdog1, wdog::kWdog2}) {
    reg16(base + wdog::kWmcr) = 0;  // clear PDE (power-down counter)
    const std::uint16_t wcr = reg16(base + wdog::kWcr);
    if ((wcr & wdog::kWcrWde) != 0) {
      // Enabled before us (a fuse, the ROM): WDE cannot be cleared. The longest time-out
      // (128 s), loaded by the service that follows, outlasts any blocking ROM call.
      reg16(base + wdog::kWcr) = static_cast<std::uint16_t>(wcr | wdog::kWcrWtMask);
      reg16(base + wdog::kWsr) = wdog::kWsrServiceFirst;
      reg16(base + wdog::kWsr) = wdog::kWsrServiceSecond;
    }
  }
  // RTWDOG: the maximum timeout and EN clear, kept reconfigurable (UPDATE).
  rtwdog_unlock();
  reg32(wdog::kRtToval) = 0xFFFF;
  reg32(wdog::kRtCs) = (reg32(wdog::kRtCs) & ~wdog::kRtCsEn) | wdog::kRtCsUpdate;
  bool all_off = (reg32(wdog::kRtCs) & wdog::kRtCsEn) == 0;
  for (const Address base : {wdog::kWdog1, wdog::kWdog2}) {
    if ((reg16(base + wdog::kWcr) & wdog::kWcrWde) != 0) all_off = false;
  }
  return all_off;
}

void service_wdog1_wdog2() {
  for (const Address base : {wdog::kWdog1, wdog::kWdog2}) {
    if ((reg16(base + wdog::kWcr) & wdog::kWcrWde) == 0) continue;
    reg16(base + wdog::kWsr) = wdog::kWsrServiceFirst;
    reg16(base + wdog::kWsr) = wdog::kWsrServiceSecond;
  }
}

void service_watchdogs() {
  service_wdog1_wdog2();
  const std::uint32_t cs = reg32(wdog::kRtCs);
  if ((cs & wdog::kRtCsEn) == 0) return;
  if ((cs & wdog::kRtCsCmd32En) != 0) {
    reg32(wdog::kRtCnt) = wdog::kRtRefreshKey;
  } else {
    reg16(wdog::kRtCnt) = static_cast<std::uint16_t>(wdog::kRtRefreshKey & 0xFFFF);
    reg16(wdog::kRtCnt) = static_cast<std::uint16_t>(wdog::kRtRefreshKey >> 16);
  }
}

std::uint32_t chip_serial_number() {
  clock_gate_on(ccm::kGateOcotp);
  return serial_from_unique_id(reg32(ocotp::kCfg0), reg32(ocotp::kCfg1), reg32(ocotp::kCfg2));
}

void clock_gate_on(ccm::Gate gate) {
  const Address address = ccm::ccgr(gate.reg);
  reg32(address) = reg32(address) | (3U << (2 * gate.cg));
}

void clock_gate_off(ccm::Gate gate) {
  const Address address = ccm::ccgr(gate.reg);
  reg32(address) = reg32(address) & ~(3U << (2 * gate.cg));
}

bool clock_gate_is_on(ccm::Gate gate) {
  return ((reg32(ccm::ccgr(gate.reg)) >> (2 * gate.cg)) & 3U) != 0;
}

void configure_pin(const iomuxc::Pin& pin, bool software_input_on, std::uint32_t pad_config) {
  reg32(pin.mux) = pin.alt | (software_input_on ? iomuxc::kSion : 0U);
  if (pin.select_input != 0) reg32(pin.select_input) = pin.select_value;
  reg32(pin.pad) = pad_config;
}

void spin_cycles(std::uint32_t cycles) {
  // Three instructions per loop on the M7 is a safe upper bound for "at least `cycles`".
  for (std::uint32_t i = 0; i < cycles; i += 1) __asm__ volatile("nop");
}

}  // namespace rtcanboot::imxrt1064
