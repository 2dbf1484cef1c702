#include "rtcanboot/imxrt1064/timebase.hpp"

#include "rtcanboot/imxrt1064/cortex_m7.hpp"
#include "rtcanboot/imxrt1064/system.hpp"

namespace rtcanboot::imxrt1064 {

namespace {
// 24 MHz / (PRESCALER24M + 1) / (PRESCALER + 1) = 1 MHz. PRESCALER24M stays 0 (divide by one),
// so the rate is 1 MHz whether the crystal path applies only PRESCALER or both in cascade.
constexpr std::uint32_t kCrystalHz = 24'000'000;
constexpr std::uint32_t kTickHz = 1'000'000;
constexpr std::uint32_t kPrescaler = kCrystalHz / kTickHz - 1;
static_assert(kPrescaler == 23 && kPrescaler < 4096);
// Compares closer than this are treated as already due (the write must land before CNT passes).
constexpr std::uint32_t kMinimumWakeupDelta = 4;
// Longest sleep: keeps now() far from missing a counter wrap.
constexpr Micros kMaximumSleep = 1'000'000;
// Below the CAN interrupt: a late wake-up costs nothing, a late CAN FIFO read loses frames.
constexpr std::uint8_t kGptPriority = 8;
}  // namespace

void Timebase::start() {
  clock_gate_on(ccm::kGateGpt1);
  clock_gate_on(ccm::kGateGpt1Serial);
  reg32(gpt::kCr) = 0;
  reg32(gpt::kCr) = gpt::kCrSoftReset;
  for (std::uint32_t tries = 0; tries < 10000 && (reg32(gpt::kCr) & gpt::kCrSoftReset) != 0;
       ++tries) {
  }
  reg32(gpt::kIr) = 0;
  reg32(gpt::kSr) = gpt::kSrAll;
  reg32(gpt::kPr) = (0U << gpt::kPrPrescaler24MShift) | (kPrescaler << gpt::kPrPrescalerShift);
  const std::uint32_t config =
      gpt::kCrClkSrcCrystal | gpt::kCrEn24M | gpt::kCrFreeRun | gpt::kCrWaitEn | gpt::kCrEnMod;
  reg32(gpt::kCr) = config;
  reg32(gpt::kCr) = config | gpt::kCrEn;
  last_count_ = reg32(gpt::kCnt);
  wraps_ = 0;
  compare_valid_ = false;
  nvic_enable(irq::kGpt1, kGptPriority);
}

void Timebase::stop() {
  nvic_disable(irq::kGpt1);
  reg32(gpt::kIr) = 0;
  reg32(gpt::kCr) = 0;
  reg32(gpt::kCr) = gpt::kCrSoftReset;
  for (std::uint32_t tries = 0; tries < 10000 && (reg32(gpt::kCr) & gpt::kCrSoftReset) != 0;
       ++tries) {
  }
  reg32(gpt::kSr) = gpt::kSrAll;
  clock_gate_off(ccm::kGateGpt1Serial);
  clock_gate_off(ccm::kGateGpt1);
  nvic_disable(irq::kGpt1);
  reg32(nvic::kIcpr + 4 * (irq::kGpt1 / 32)) = 1U << (irq::kGpt1 % 32);
}

Micros Timebase::now() {
  const std::uint32_t count = reg32(gpt::kCnt);
  if (count < last_count_) ++wraps_;
  last_count_ = count;
  return (static_cast<Micros>(wraps_) << 32) | count;
}

bool Timebase::arm_wakeup(Micros deadline) {
  const Micros current = now();
  if (deadline <= current + kMinimumWakeupDelta) return false;
  if (deadline - current > kMaximumSleep) deadline = current + kMaximumSleep;
  const std::uint32_t compare = static_cast<std::uint32_t>(deadline);
  if (!compare_valid_ || compare != compare_) {
    // Only a new deadline touches OCR1 (the idle loop re-arms the same one many times).
    reg32(gpt::kOcr1) = compare;
    reg32(gpt::kSr) = gpt::kSrOf1;
    compare_ = compare;
    compare_valid_ = true;
  }
  reg32(gpt::kIr) = gpt::kIrOf1Ie;
  // The compare only fires when CNT passes OCR1: if CNT got there first, do not sleep.
  const std::uint32_t remaining = static_cast<std::uint32_t>(deadline) - reg32(gpt::kCnt);
  if (remaining == 0 || remaining > static_cast<std::uint32_t>(kMaximumSleep)) {
    reg32(gpt::kIr) = 0;
    return false;
  }
  return true;
}

void Timebase::on_interrupt() {
  reg32(gpt::kIr) = 0;
  reg32(gpt::kSr) = gpt::kSrOf1;
  dsb();
}

}  // namespace rtcanboot::imxrt1064

extern "C" void rtcanboot_gpt1_irq() {
  rtcanboot::imxrt1064::Timebase::on_interrupt();
}
