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
constexpr std::uint32_t kCanClkSelPll3Div6 = 2;
constexpr std::uint32_t kCanClkPodf = 1;  // divide by 2
static_assert(480'000'000 / 6 / (kCanClkPodf + 1) == kCanClockHz);
static_assert(480'000'000 / 6 == kUartClockHz);  // pll3_80m

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
                        (kCanClkSelPll3Div6 << ccm::kCanClkSelShift) |
                        (kCanClkPodf << ccm::kCanClkPodfShift);
  clock_gate_off(ccm::kGateLpuart1);
  reg32(ccm::kCscdr1) = reg32(ccm::kCscdr1) & ~(ccm::kUartClkSelOsc | ccm::kUartClkPodfMask);
  clock_gate_on(ccm::kGateIomuxc);
  clock_gate_on(ccm::kGateIomuxcGpr);
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
