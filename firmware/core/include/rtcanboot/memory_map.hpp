// The flash and RAM layout of rtcanboot on the i.MX RT1064, defined once for the firmware, the
// application kit, the host tool and the twin. docs/memory-map.md explains every region.
#pragma once

#include <cstdint>

namespace rtcanboot::memory_map {

// The 4 MiB W25Q32JV inside the package, on FlexSPI2.
inline constexpr std::uint32_t kFlashBase = 0x7000'0000;  // AHB (XIP) address of offset 0
inline constexpr std::uint32_t kFlashSize = 0x0040'0000;
inline constexpr std::uint32_t kPageSize = 256;
inline constexpr std::uint32_t kSectorSize = 4 * 1024;
inline constexpr std::uint32_t kBlock32Size = 32 * 1024;
inline constexpr std::uint32_t kBlock64Size = 64 * 1024;

// Offsets below are flash offsets (0 = 0x7000_0000), as the ROM FlexSPI NOR API takes them.

// Bootloader: FCB at 0, IVT + boot data at 0x1000, code after. Never erased or programmed by
// an update.
inline constexpr std::uint32_t kBootloaderOffset = 0x0000'0000;
inline constexpr std::uint32_t kBootloaderSize = 0x0002'0000;  // 128 KiB
inline constexpr std::uint32_t kFcbOffset = 0x0000;
inline constexpr std::uint32_t kIvtOffset = 0x1000;

// Application: vector table first, at 0x7002_0000.
inline constexpr std::uint32_t kAppOffset = 0x0002'0000;
inline constexpr std::uint32_t kAppAddress = kFlashBase + kAppOffset;

// Bootloader records at the top of the flash; the application may not use them.
inline constexpr std::uint32_t kRecordsOffset = 0x003F'0000;  // 64 KiB, one 64 KiB block
inline constexpr std::uint32_t kRecordsSize = 0x0001'0000;
// The key store (key_store.hpp): one 4 KiB sector, write-once pages, never erased by the
// bootloader (flash_guard.hpp keeps every other writer out of it).
inline constexpr std::uint32_t kKeyStoreOffset = 0x003F'A000;
inline constexpr std::uint32_t kProvisioningOffset = 0x003F'C000;  // two 4 KiB sectors
inline constexpr std::uint32_t kProvisioningSectors = 2;
inline constexpr std::uint32_t kJournalOffset = 0x003F'E000;  // two 4 KiB sectors
inline constexpr std::uint32_t kJournalSectors = 2;

// The self-test's scratch sector: the last reserved sector below the provisioning records; it
// holds nothing and is left erased (docs/bring-up.md).
inline constexpr std::uint32_t kSelfTestScratchOffset = 0x003F'B000;

inline constexpr std::uint32_t kAppSize = kRecordsOffset - kAppOffset;  // 3904 KiB
inline constexpr std::uint32_t kAppEndAddress = kAppAddress + kAppSize;

static_assert(kAppOffset == kBootloaderOffset + kBootloaderSize, "application follows bootloader");
static_assert(kAppOffset % kBlock64Size == 0, "application starts on a 64 KiB block");
static_assert(kAppAddress % 1024 == 0, "VTOR needs 1 KiB alignment (174 vectors)");
static_assert(kRecordsOffset % kBlock64Size == 0, "records area is one 64 KiB block");
static_assert(kRecordsOffset + kRecordsSize == kFlashSize, "records area ends the flash");
static_assert(kProvisioningOffset >= kRecordsOffset &&
              kProvisioningOffset + kProvisioningSectors * kSectorSize <= kJournalOffset);
static_assert(kJournalOffset + kJournalSectors * kSectorSize == kFlashSize);
static_assert(kKeyStoreOffset >= kRecordsOffset && kKeyStoreOffset % kSectorSize == 0 &&
                  kKeyStoreOffset + kSectorSize <= kSelfTestScratchOffset,
              "the key store sector is its own, below the self-test scratch sector");
static_assert(kJournalOffset % kSectorSize == 0 && kProvisioningOffset % kSectorSize == 0);
static_assert(kSelfTestScratchOffset >= kRecordsOffset &&
                  kSelfTestScratchOffset + kSectorSize <= kProvisioningOffset &&
                  kSelfTestScratchOffset % kSectorSize == 0,
              "the scratch sector is a reserved sector of its own");

// RAM (default FlexRAM layout: 128 KiB ITCM, 128 KiB DTCM, 256 KiB FlexRAM OCRAM).
inline constexpr std::uint32_t kItcmBase = 0x0000'0000;
inline constexpr std::uint32_t kItcmSize = 0x0002'0000;
inline constexpr std::uint32_t kDtcmBase = 0x2000'0000;
inline constexpr std::uint32_t kDtcmSize = 0x0002'0000;
inline constexpr std::uint32_t kOcram2Base = 0x2020'0000;  // first 64 KiB used by the boot ROM
inline constexpr std::uint32_t kOcram2Size = 0x0008'0000;
inline constexpr std::uint32_t kOcramFlexBase = 0x2028'0000;
inline constexpr std::uint32_t kOcramFlexSize = 0x0004'0000;
inline constexpr std::uint32_t kRomReservedOcram = 0x0001'0000;

constexpr bool in_app_region(std::uint32_t offset, std::uint32_t length) {
  return offset >= kAppOffset && length <= kAppSize && offset - kAppOffset <= kAppSize - length;
}

}  // namespace rtcanboot::memory_map
