#include "rtcanboot/app_kit.hpp"

#include <cstring>

#include "rtcanboot/imxrt1064/cortex_m7.hpp"
#include "rtcanboot/imxrt1064/system.hpp"
#include "rtcanboot/memory_map.hpp"
#include "rtcanboot/provisioning.hpp"

namespace rtcanboot::app_kit {

namespace {

// Read-only view of the flash through the XIP window: the application runs from the flash, so
// it reads the bootloader's records in place and never erases or programs.
class XipFlash final : public FlashPort {
 public:
  FlashResult start_erase(std::uint32_t, std::uint32_t) override { return FlashResult::kProtected; }
  FlashResult start_program(std::uint32_t, const std::uint8_t*) override {
    return FlashResult::kProtected;
  }
  bool busy() override { return false; }
  FlashResult last_result() const override { return FlashResult::kOk; }
  FlashResult read(std::uint32_t offset, void* destination, std::uint32_t length) override {
    if (offset > memory_map::kFlashSize || length > memory_map::kFlashSize - offset) {
      return FlashResult::kInvalidArgument;
    }
    std::memcpy(destination, reinterpret_cast<const void*>(memory_map::kFlashBase + offset),
                length);
    return FlashResult::kOk;
  }
};

}  // namespace

std::uint32_t serial_number() {
  XipFlash flash;
  const Provisioning provisioning = load_provisioning(flash);
  return provisioning.serial != 0 ? provisioning.serial : imxrt1064::chip_serial_number();
}

bool boot_info(BootInfo& out) {
  return imxrt1064::handover::read(out);
}

void request_bootloader() {
  imxrt1064::disable_irq();
  imxrt1064::handover::write_entry_request();
  imxrt1064::dsb();
  imxrt1064::system_reset();
}

void request_bootloader_answering_stop(std::uint8_t node_id) {
  imxrt1064::disable_irq();
  imxrt1064::handover::write_entry_request(node_id);
  imxrt1064::dsb();
  imxrt1064::system_reset();
}

void request_self_test() {
  imxrt1064::disable_irq();
  imxrt1064::handover::write_entry_value(imxrt1064::handover::kSelfTestRequestMagic);
  imxrt1064::dsb();
  imxrt1064::system_reset();
}

}  // namespace rtcanboot::app_kit
