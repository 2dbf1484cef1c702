// A FlashPort in front of the real one that refuses every erase or program outside the area the
// bootloader may rewrite: the application region and the records area, without the key store's
// sector. The bootloader's own 128 KiB (FCB, IVT, code) and the provisioned keys can therefore
// never be touched through it, whatever the code above it asks: every SDO path (downloads,
// clears, journal, provisioning records, digests) writes through this guard.
//
// KeyStoreFlash is the only way to the key store's sector: page programs inside it, each only
// onto a page that reads back blank, and never an erase. Only KeyStore (key_store.hpp) holds it.
#pragma once

#include <cstdint>

#include "rtcanboot/flash_port.hpp"
#include "rtcanboot/memory_map.hpp"

namespace rtcanboot {

// What both guards share: reads and status pass through; erases and programs are each guard's
// own decision, and it counts what it refused.
class FlashFilter : public FlashPort {
 public:
  bool busy() override { return flash_.busy(); }
  FlashResult last_result() const override { return flash_.last_result(); }
  FlashResult read(std::uint32_t offset, void* destination, std::uint32_t length) override {
    return flash_.read(offset, destination, length);
  }

  // How many mutating requests the guard has refused (tests and diagnostics).
  std::uint32_t refused() const { return refused_; }

 protected:
  explicit FlashFilter(FlashPort& flash) : flash_(flash) {}
  FlashResult refuse() {
    ++refused_;
    return FlashResult::kProtected;
  }

  FlashPort& flash_;

 private:
  std::uint32_t refused_ = 0;
};

class GuardedFlash final : public FlashFilter {
 public:
  // Everything from the application start to the end of the flash (records area included).
  static constexpr std::uint32_t kWritableStart = memory_map::kAppOffset;
  static constexpr std::uint32_t kWritableEnd = memory_map::kFlashSize;
  static_assert(kWritableStart >= memory_map::kBootloaderOffset + memory_map::kBootloaderSize,
                "the guard must keep the bootloader out of reach");

  static constexpr std::uint32_t kKeyStoreStart = memory_map::kKeyStoreOffset;
  static constexpr std::uint32_t kKeyStoreEnd =
      memory_map::kKeyStoreOffset + memory_map::kSectorSize;
  static_assert(kKeyStoreStart >= kWritableStart && kKeyStoreEnd <= kWritableEnd);

  static constexpr bool writable(std::uint32_t offset, std::uint32_t length) {
    if (!(offset >= kWritableStart && offset <= kWritableEnd && length <= kWritableEnd - offset)) {
      return false;
    }
    // No overlap with the key store's sector (an erase of the 64 KiB block holding it too).
    return offset + length <= kKeyStoreStart || offset >= kKeyStoreEnd;
  }

  explicit GuardedFlash(FlashPort& flash) : FlashFilter(flash) {}

  FlashResult start_erase(std::uint32_t offset, std::uint32_t length) override;
  FlashResult start_program(std::uint32_t offset, const std::uint8_t* page) override;
};

class KeyStoreFlash final : public FlashFilter {
 public:
  explicit KeyStoreFlash(FlashPort& flash) : FlashFilter(flash) {}

  FlashResult start_erase(std::uint32_t, std::uint32_t) override { return refuse(); }
  FlashResult start_program(std::uint32_t offset, const std::uint8_t* page) override;
};

}  // namespace rtcanboot
