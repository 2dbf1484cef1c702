// Cortex-M7 core helpers: barriers, interrupt masking, NVIC, caches, MPU, reset.
#pragma once

#include <cstdint>

#include "rtcanboot/imxrt1064/registers.hpp"

namespace rtcanboot::imxrt1064 {

inline void dsb() {
  __asm__ volatile("dsb 0xF" ::: "memory");
}
inline void isb() {
  __asm__ volatile("isb 0xF" ::: "memory");
}
inline void compiler_barrier() {
  __asm__ volatile("" ::: "memory");
}
inline void disable_irq() {
  __asm__ volatile("cpsid i" ::: "memory");
}
inline void enable_irq() {
  __asm__ volatile("cpsie i" ::: "memory");
}
inline void wait_for_interrupt() {
  __asm__ volatile("dsb 0xF\n wfi" ::: "memory");
}

inline std::uint32_t primask() {
  std::uint32_t value;
  __asm__ volatile("mrs %0, primask" : "=r"(value));
  return value;
}

// Masks interrupts for its lifetime and restores the previous PRIMASK.
class InterruptLock {
 public:
  InterruptLock() : was_masked_(primask() != 0) { disable_irq(); }
  ~InterruptLock() {
    if (!was_masked_) enable_irq();
  }
  InterruptLock(const InterruptLock&) = delete;
  InterruptLock& operator=(const InterruptLock&) = delete;

 private:
  bool was_masked_;
};

void nvic_enable(std::uint32_t irq_number, std::uint8_t priority);
void nvic_disable(std::uint32_t irq_number);
// Disables every device interrupt and clears every pending one.
void nvic_disable_all();

// Whole-cache operations (by set/way) and range operations on 32-byte lines.
void dcache_enable();
void dcache_clean_invalidate_and_disable();
void dcache_invalidate_range(std::uint32_t address, std::uint32_t length);
void icache_enable();
void icache_invalidate_and_disable();
void icache_invalidate();

// MPU: default map for privileged code as background; the FlexSPI1 window no-access and the
// QSPI flash window read-only, both never executable (see README.md).
void mpu_configure_bootloader();
// While an erase/program runs the flash window is made inaccessible (no access at all, so not
// even a speculative read can reach the busy flash; a stray access faults instead of reading
// garbage). No effect when the MPU is off.
void mpu_lock_flash_window(bool locked);
void mpu_disable();

void stop_systick();
[[noreturn]] void system_reset();

}  // namespace rtcanboot::imxrt1064
