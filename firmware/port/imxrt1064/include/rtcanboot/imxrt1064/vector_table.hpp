// The Cortex-M7 vector table (16 system entries + 158 device interrupts), built at compile
// time so it can live in any section: ITCM for the bootloader, 0x7002_0000 for applications.
#pragma once

#include <cstdint>

#include "rtcanboot/imxrt1064/flexcan.hpp"
#include "rtcanboot/imxrt1064/registers.hpp"

namespace rtcanboot::imxrt1064 {

using Handler = void (*)();

struct VectorTable {
  const void* initial_sp;
  Handler handlers[kVectorCount - 1];  // [0] = reset, [15 + n] = device interrupt n
};
#if defined(__arm__)
static_assert(sizeof(VectorTable) == kVectorCount * 4, "0x2B8 bytes: VTOR needs 1 KiB alignment");
#endif

constexpr std::uint32_t kFlexcanIrq = FlexCan::kInstance == 1   ? irq::kCan1
                                      : FlexCan::kInstance == 2 ? irq::kCan2
                                                                : irq::kCan3;

// Every exception goes to `fault` except reset and the two interrupts the port uses.
constexpr VectorTable make_vector_table(const void* initial_sp, Handler reset, Handler fault,
                                        Handler can_irq, Handler gpt_irq) {
  VectorTable table{initial_sp, {}};
  for (Handler& handler : table.handlers) handler = fault;
  table.handlers[0] = reset;
  table.handlers[15 + kFlexcanIrq] = can_irq;
  table.handlers[15 + irq::kGpt1] = gpt_irq;
  return table;
}

extern "C" {
void rtcanboot_flexcan_irq();
void rtcanboot_gpt1_irq();
// Unexpected exception or interrupt: reset the chip (the bootloader comes back up).
void rtcanboot_fault_handler();
}

}  // namespace rtcanboot::imxrt1064
