// Start-up of an application linked by the kit: the vector table at 0x7002_0000 (first bytes
// of the image, no FCB/IVT) and a reset handler that runs in place from the QSPI flash.
#include <cstdint>

#include "rtcanboot/imxrt1064/cortex_m7.hpp"
#include "rtcanboot/imxrt1064/registers.hpp"
#include "rtcanboot/imxrt1064/vector_table.hpp"

extern "C" {
extern std::uint32_t __stack_top[];
extern std::uint32_t __ramfunc_load[];
extern std::uint32_t __ramfunc_start[];
extern std::uint32_t __ramfunc_end[];
extern std::uint32_t __data_load[];
extern std::uint32_t __data_start[];
extern std::uint32_t __data_end[];
extern std::uint32_t __bss_start[];
extern std::uint32_t __bss_end[];
extern void (*__init_array_start[])();
extern void (*__init_array_end[])();
[[noreturn]] void rtcanboot_app_reset();
[[noreturn]] void rtcanboot_app_call_main();  // call_main.S
[[noreturn]] void rtcanboot_app_main_returned();
}

namespace {
using namespace rtcanboot::imxrt1064;

[[gnu::section(".app_vectors"), gnu::used]] constinit const VectorTable kAppVectors =
    make_vector_table(__stack_top, rtcanboot_app_reset, rtcanboot_fault_handler,
                      rtcanboot_flexcan_irq, rtcanboot_gpt1_irq);
}  // namespace

extern "C" void rtcanboot_app_reset() {
  disable_irq();
  // FPU before any compiled code (hard-float code may use VFP registers anywhere).
  reg32(scb::kCpacr) = reg32(scb::kCpacr) | (0xFU << 20);
  dsb();
  isb();
  // Word copies through volatile pointers so the compiler cannot call memcpy before .data exists.
  volatile std::uint32_t* code = __ramfunc_load;
  for (volatile std::uint32_t* target = __ramfunc_start; target < __ramfunc_end;)
    *target++ = *code++;
  volatile std::uint32_t* source = __data_load;
  for (volatile std::uint32_t* target = __data_start; target < __data_end;) *target++ = *source++;
  for (volatile std::uint32_t* target = __bss_start; target < __bss_end;) *target++ = 0;
  reg32(scb::kVtor) = reinterpret_cast<std::uintptr_t>(&kAppVectors);
  dsb();
  isb();
  icache_enable();  // execute-in-place from the QSPI flash
  for (auto* constructor = __init_array_start; constructor != __init_array_end; ++constructor) {
    (*constructor)();
  }
  enable_irq();
  rtcanboot_app_call_main();
}

// An application's main() that returns ends in a reset (back to the bootloader's decision).
extern "C" void rtcanboot_app_main_returned() {
  system_reset();
}
