#include "rtcanboot/flash_guard.hpp"

namespace rtcanboot {

FlashResult GuardedFlash::start_erase(std::uint32_t offset, std::uint32_t length) {
  if (!writable(offset, length)) return refuse();
  return flash_.start_erase(offset, length);
}

FlashResult GuardedFlash::start_program(std::uint32_t offset, const std::uint8_t* page) {
  if (!writable(offset, memory_map::kPageSize)) return refuse();
  return flash_.start_program(offset, page);
}

FlashResult KeyStoreFlash::start_program(std::uint32_t offset, const std::uint8_t* page) {
  bool allowed = offset >= GuardedFlash::kKeyStoreStart && offset < GuardedFlash::kKeyStoreEnd &&
                 offset % memory_map::kPageSize == 0;
  // Write-once: only onto an erased page (a torn or complete record is never programmed over).
  std::uint8_t word[16];
  for (std::uint32_t at = 0; allowed && at < memory_map::kPageSize; at += sizeof word) {
    if (flash_.read(offset + at, word, sizeof word) != FlashResult::kOk) allowed = false;
    for (std::uint8_t byte : word) allowed = allowed && byte == 0xFF;
  }
  if (!allowed) return refuse();
  return flash_.start_program(offset, page);
}

}  // namespace rtcanboot
