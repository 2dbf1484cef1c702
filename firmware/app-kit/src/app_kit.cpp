#include "rtcanboot/app_kit.hpp"

#include "rtcanboot/imxrt1064/cortex_m7.hpp"

namespace rtcanboot::app_kit {

bool boot_info(BootInfo& out) {
  return imxrt1064::handover::read(out);
}

void request_bootloader() {
  imxrt1064::disable_irq();
  imxrt1064::handover::write_entry_request();
  imxrt1064::dsb();
  imxrt1064::system_reset();
}

}  // namespace rtcanboot::app_kit
