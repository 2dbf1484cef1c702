#include "rtcanboot/flash_guard.hpp"

namespace rtcanboot {

FlashResult GuardedFlash::start_erase(std::uint32_t offset, std::uint32_t length) {
  if (!writable(offset, length)) {
    ++refused_;
    return FlashResult::kProtected;
  }
  return flash_.start_erase(offset, length);
}

FlashResult GuardedFlash::start_program(std::uint32_t offset, const std::uint8_t* page) {
  if (!writable(offset, memory_map::kPageSize)) {
    ++refused_;
    return FlashResult::kProtected;
  }
  return flash_.start_program(offset, page);
}

}  // namespace rtcanboot
