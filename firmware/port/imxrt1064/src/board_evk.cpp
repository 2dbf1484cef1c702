// MIMXRT1064-EVK. CAN: the J11 connector's transceiver sits on GPIO_AD_B0_14 (TX) and
// GPIO_AD_B0_15 (RX), which carry CAN2 at ALT6 (CAN3 at ALT8, used by NXP's CAN-FD examples).
// CAN2 is the default because it is what the EVK's board files (Zephyr: zephyr,canbus =
// &flexcan2) and the SDK classic CAN examples use on J11. CAN1 has no path to J11: its pins
// GPIO_AD_B1_08/09 need an external transceiver (and conflict with SAI1 on the EVK).
#include "rtcanboot/imxrt1064/board.hpp"

#include <initializer_list>

#include "rtcanboot/imxrt1064/console.hpp"
#include "rtcanboot/imxrt1064/flexcan.hpp"
#include "rtcanboot/imxrt1064/registers.hpp"
#include "rtcanboot/imxrt1064/system.hpp"

namespace rtcanboot::imxrt1064::board {

namespace {
constexpr std::uint32_t kOscillatorHz = 24'000'000;
constexpr std::uint32_t kCanClkSelOscillator = 1;
constexpr std::uint32_t kCanClkSelPll3Div6 = 2;  // the root ERR050235 is about
constexpr std::uint32_t kCanClkSelDisabled = 3;
constexpr std::uint32_t kCanClkPodf = 0;  // undivided
static_assert(kOscillatorHz / (kCanClkPodf + 1) == kCanClockHz);
static_assert(kOscillatorHz == kUartClockHz);

constexpr bool every_cia301_rate_is_exact() {
  for (const std::uint32_t bitrate : kCia301Bitrates) {
    if (compute_bit_timing(kCanClockHz, bitrate).prescaler == 0) return false;
  }
  return true;
}
static_assert(every_cia301_rate_is_exact(), "the CAN clock root must give every CiA 301 rate");

constexpr bool console_baud_within_1_percent() {
  const UartDivider d = uart_divider(kUartClockHz, kConsoleBaud);
  if (d.sbr == 0) return false;
  const std::uint64_t actual = kUartClockHz / (d.oversampling * d.sbr);
  const std::uint64_t error = actual > kConsoleBaud ? actual - kConsoleBaud : kConsoleBaud - actual;
  return error * 100 < kConsoleBaud;
}
static_assert(console_baud_within_1_percent());

bool pll3_running() {
  const std::uint32_t pll = reg32(ccm_analog::kPllUsb1);
  return (pll & ccm_analog::kPllLock) != 0 && (pll & ccm_analog::kPllBypass) == 0 &&
         (pll & ccm_analog::kPllEnable) != 0 && (pll & ccm_analog::kPllPower) != 0;
}

struct CanPins {
  iomuxc::Pin tx;
  iomuxc::Pin rx;
};
constexpr CanPins kCanPins[] = {
    {iomuxc::kCan1TxAdB108, iomuxc::kCan1RxAdB109},
    {iomuxc::kCan2TxAdB014, iomuxc::kCan2RxAdB015},
    {iomuxc::kCan3TxAdB014, iomuxc::kCan3RxAdB015},
};
}  // namespace

void init_clocks() {
  // Gate the CAN clocks while the root mux and divider change.
  for (const ccm::Gate gate : {ccm::kGateCan1, ccm::kGateCan1Serial, ccm::kGateCan2,
                               ccm::kGateCan2Serial, ccm::kGateCan3, ccm::kGateCan3Serial}) {
    clock_gate_off(gate);
  }
  reg32(ccm::kCscmr2) = (reg32(ccm::kCscmr2) & ~(ccm::kCanClkSelMask | ccm::kCanClkPodfMask)) |
                        (kCanClkSelOscillator << ccm::kCanClkSelShift) |
                        (kCanClkPodf << ccm::kCanClkPodfShift);
  // The UART root changes with LPUART1 gated; console_start gates it on again. LPUART1 stays
  // on from then on (ERR050235 would need it at CAN_CLK_SEL = 2; the oscillator root does not).
  clock_gate_off(ccm::kGateLpuart1);
  reg32(ccm::kCscdr1) = (reg32(ccm::kCscdr1) & ~ccm::kUartClkPodfMask) | ccm::kUartClkSelOsc;
  clock_gate_on(ccm::kGateIomuxc);
  clock_gate_on(ccm::kGateIomuxcGpr);
}

const char* check_clocks() {
  const std::uint32_t cscmr2 = reg32(ccm::kCscmr2);
  const std::uint32_t can_sel = (cscmr2 & ccm::kCanClkSelMask) >> ccm::kCanClkSelShift;
  const std::uint32_t can_podf = (cscmr2 & ccm::kCanClkPodfMask) >> ccm::kCanClkPodfShift;
  if (can_sel == kCanClkSelDisabled)
    return "the CAN clock root is disabled (CSCMR2.CAN_CLK_SEL = 3)";
  if (can_sel == kCanClkSelPll3Div6 && !clock_gate_is_on(ccm::kGateLpuart1)) {
    return "ERR050235: CAN_CLK_SEL = 2 (pll3_sw_clk/6) with the LPUART1 clock gate off gives a "
           "wrong CAN clock";
  }
  if (can_sel != kCanClkSelOscillator || can_podf != kCanClkPodf) {
    if (!pll3_running()) return "the CAN clock root needs PLL3, which is not locked or bypassed";
    return "the CAN clock root is not the one kCanClockHz assumes (CSCMR2 changed)";
  }
  if ((reg32(ccm::kCscdr1) & ccm::kUartClkSelOsc) == 0 && !pll3_running()) {
    return "the UART clock root needs PLL3, which is not locked or bypassed";
  }
  return nullptr;
}

void init_pins() {
  const CanPins& can = kCanPins[FlexCan::kInstance - 1];
  configure_pin(can.tx, true, iomuxc::kPadConfigDefault);
  configure_pin(can.rx, true, iomuxc::kPadConfigDefault);
  configure_pin(iomuxc::kLpuart1TxAdB012, false, iomuxc::kPadConfigDefault);
  configure_pin(iomuxc::kLpuart1RxAdB013, false, iomuxc::kPadConfigDefault);
}

void init_console() {
  console_start(kUartClockHz, kConsoleBaud);
}

}  // namespace rtcanboot::imxrt1064::board
