#include "rtcanboot/imxrt1064/cortex_m7.hpp"

namespace rtcanboot::imxrt1064 {

void nvic_enable(std::uint32_t irq_number, std::uint8_t priority) {
  reg8(nvic::kIpr + irq_number) = static_cast<std::uint8_t>(priority << (8 - nvic::kPriorityBits));
  reg32(nvic::kIcpr + 4 * (irq_number / 32)) = 1U << (irq_number % 32);
  reg32(nvic::kIser + 4 * (irq_number / 32)) = 1U << (irq_number % 32);
}

void nvic_disable(std::uint32_t irq_number) {
  reg32(nvic::kIcer + 4 * (irq_number / 32)) = 1U << (irq_number % 32);
  dsb();
  isb();
}

void nvic_disable_all() {
  for (std::uint32_t i = 0; i < nvic::kRegisterCount; ++i) reg32(nvic::kIcer + 4 * i) = ~0U;
  dsb();
  isb();
  for (std::uint32_t i = 0; i < nvic::kRegisterCount; ++i) reg32(nvic::kIcpr + 4 * i) = ~0U;
  reg32(scb::kIcsr) = scb::kIcsrPendStClear | scb::kIcsrPendSvClear;
  dsb();
  isb();
}

namespace {

// Runs `op` on every set/way of the L1 data cache (geometry from CCSIDR).
void for_each_dcache_line(Address op_register) {
  reg32(scb::kCsselr) = 0;  // level 1 data cache
  dsb();
  const std::uint32_t ccsidr = reg32(scb::kCcsidr);
  const std::uint32_t sets = ((ccsidr >> 13) & 0x7FFF) + 1;
  const std::uint32_t ways = ((ccsidr >> 3) & 0x3FF) + 1;
  const std::uint32_t line_shift = (ccsidr & 7) + 4;
  const std::uint32_t way_shift =
      ways > 1 ? static_cast<std::uint32_t>(__builtin_clz(ways - 1)) : 0;
  for (std::uint32_t set = 0; set < sets; ++set) {
    for (std::uint32_t way = 0; way < ways; ++way) {
      reg32(op_register) = (set << line_shift) | (ways > 1 ? way << way_shift : 0);
    }
  }
  dsb();
}

}  // namespace

void dcache_enable() {
  if ((reg32(scb::kCcr) & scb::kCcrDcache) != 0) dcache_clean_invalidate_and_disable();
  for_each_dcache_line(scb::kDcisw);
  reg32(scb::kCcr) = reg32(scb::kCcr) | scb::kCcrDcache;
  dsb();
  isb();
}

void dcache_clean_invalidate_and_disable() {
  if ((reg32(scb::kCcr) & scb::kCcrDcache) == 0) return;
  reg32(scb::kCcr) = reg32(scb::kCcr) & ~scb::kCcrDcache;
  dsb();
  for_each_dcache_line(scb::kDccisw);
  isb();
}

void dcache_invalidate_range(std::uint32_t address, std::uint32_t length) {
  if (length == 0) return;
  std::uint32_t line = address & ~(scb::kCacheLine - 1);
  const std::uint32_t end = address + length;
  dsb();
  for (; line < end; line += scb::kCacheLine) reg32(scb::kDcimvac) = line;
  dsb();
  isb();
}

void icache_invalidate() {
  dsb();
  isb();
  reg32(scb::kIciallu) = 0;
  dsb();
  isb();
}

void icache_enable() {
  icache_invalidate();
  reg32(scb::kCcr) = reg32(scb::kCcr) | scb::kCcrIcache;
  dsb();
  isb();
}

void icache_invalidate_and_disable() {
  dsb();
  isb();
  reg32(scb::kCcr) = reg32(scb::kCcr) & ~scb::kCcrIcache;
  reg32(scb::kIciallu) = 0;
  dsb();
  isb();
}

namespace {
constexpr std::uint32_t kFlashWindowRegion = 1;
constexpr std::uint32_t kFlashWindowReadable = mpu::kRasrExecuteNever | mpu::kRasrApReadOnly |
                                               mpu::kRasrNormalWriteBack | mpu::rasr_size(22) |
                                               mpu::kRasrEnable;
constexpr std::uint32_t kFlashWindowLocked =
    mpu::kRasrExecuteNever | mpu::kRasrApNone | mpu::rasr_size(22) | mpu::kRasrEnable;
}  // namespace

void mpu_configure_bootloader() {
  mpu_disable();
  // Region 0: the FlexSPI1 window 0x6000_0000-0x6FFF_FFFF (no device on the RT1064): no access,
  // never executable, so no speculative access can reach an unpopulated bus.
  reg32(mpu::kRnr) = 0;
  reg32(mpu::kRbar) = 0x6000'0000;
  reg32(mpu::kRasr) =
      mpu::kRasrExecuteNever | mpu::kRasrApNone | mpu::rasr_size(28) | mpu::kRasrEnable;
  // Region 1: the 4 MiB QSPI flash window. Data reads only (read-back, records), cacheable
  // write-back (D-cache invalidated by range after every erase/program), never executable, so
  // the core never fetches instructions from it, not even speculatively.
  reg32(mpu::kRnr) = kFlashWindowRegion;
  reg32(mpu::kRbar) = 0x7000'0000;
  reg32(mpu::kRasr) = kFlashWindowReadable;
  reg32(mpu::kCtrl) = mpu::kCtrlEnable | mpu::kCtrlPrivDefEna;
  dsb();
  isb();
}

void mpu_lock_flash_window(bool locked) {
  if ((reg32(mpu::kCtrl) & mpu::kCtrlEnable) == 0) return;
  dsb();
  reg32(mpu::kRnr) = kFlashWindowRegion;
  reg32(mpu::kRasr) = locked ? kFlashWindowLocked : kFlashWindowReadable;
  dsb();
  isb();
}

void mpu_disable() {
  dsb();
  reg32(mpu::kCtrl) = 0;
  for (std::uint32_t region = 0; region < 2; ++region) {
    reg32(mpu::kRnr) = region;
    reg32(mpu::kRasr) = 0;
    reg32(mpu::kRbar) = 0;
  }
  dsb();
  isb();
}

void stop_systick() {
  reg32(systick::kCsr) = 0;
  reg32(systick::kRvr) = 0;
  reg32(systick::kCvr) = 0;
  reg32(scb::kIcsr) = scb::kIcsrPendStClear;
}

void system_reset() {
  dsb();
  reg32(scb::kAircr) =
      scb::kAircrVectKey | (reg32(scb::kAircr) & scb::kAircrPrigroupMask) | scb::kAircrSysResetReq;
  dsb();
  for (;;) {
  }
}

}  // namespace rtcanboot::imxrt1064

extern "C" void rtcanboot_fault_handler() {
  rtcanboot::imxrt1064::system_reset();
}
