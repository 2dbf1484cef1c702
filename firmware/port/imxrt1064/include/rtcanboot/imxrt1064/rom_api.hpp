// The boot ROM's FlexSPI NOR API (fact sheet §3): the word at 0x0020_001C points to the API
// tree, whose member at +0x10 points to the driver's function table. FlexSPI2 (the internal
// W25Q32JV) is instance 1; addresses are flash offsets.
#pragma once

#include <cstddef>
#include <cstdint>

#include "rtcanboot/imxrt1064/boot_header.hpp"

namespace rtcanboot::imxrt1064::rom {

inline constexpr std::uintptr_t kApiTreePointer = 0x0020'001C;
inline constexpr std::uint32_t kTreeNorDriverOffset = 0x10;
inline constexpr std::uint32_t kFlexspi2Instance = 1;
inline constexpr std::int32_t kStatusSuccess = 0;

enum class XferOperation : std::uint32_t { kCommand = 0, kConfig = 1, kWrite = 2, kRead = 3 };

struct FlexspiXfer {
  XferOperation operation;
  std::uint32_t base_address;  // flash offset
  std::uint32_t seq_id;
  std::uint32_t seq_num;
  std::uint32_t is_parallel_mode;  // bool in the ROM, padded to a word
  const std::uint32_t* tx_buffer;
  std::uint32_t tx_size;
  std::uint32_t* rx_buffer;
  std::uint32_t rx_size;
};

struct NorDriver {
  std::uint32_t version;
  std::int32_t (*init)(std::uint32_t instance, FlexspiNorConfig* config);
  std::int32_t (*program)(std::uint32_t instance, FlexspiNorConfig* config, std::uint32_t offset,
                          const std::uint32_t* source);
  std::int32_t (*erase_all)(std::uint32_t instance, FlexspiNorConfig* config);
  std::int32_t (*erase)(std::uint32_t instance, FlexspiNorConfig* config, std::uint32_t offset,
                        std::uint32_t length);
  std::int32_t (*read)(std::uint32_t instance, FlexspiNorConfig* config, std::uint32_t* destination,
                       std::uint32_t offset, std::uint32_t length);
  void (*clear_cache)(std::uint32_t instance);
  std::int32_t (*xfer)(std::uint32_t instance, FlexspiXfer* xfer);
  std::int32_t (*update_lut)(std::uint32_t instance, std::uint32_t seq_index,
                             const std::uint32_t* lut, std::uint32_t seq_count);
  std::int32_t (*get_config)(std::uint32_t instance, FlexspiNorConfig* config,
                             const std::uint32_t* option);
};

#if defined(__arm__)
static_assert(offsetof(FlexspiXfer, base_address) == 0x04);
static_assert(offsetof(FlexspiXfer, is_parallel_mode) == 0x10);
static_assert(offsetof(FlexspiXfer, tx_buffer) == 0x14);
static_assert(offsetof(FlexspiXfer, rx_buffer) == 0x1C);
static_assert(sizeof(FlexspiXfer) == 0x24);
static_assert(offsetof(NorDriver, init) == 0x04);
static_assert(offsetof(NorDriver, erase) == 0x10);
static_assert(offsetof(NorDriver, clear_cache) == 0x18);
static_assert(offsetof(NorDriver, xfer) == 0x1C);
static_assert(offsetof(NorDriver, update_lut) == 0x20);
static_assert(offsetof(NorDriver, get_config) == 0x24);
#endif

// The driver table, found through the ROM's API tree.
inline const NorDriver* nor_driver() {
  const std::uintptr_t tree = *reinterpret_cast<const volatile std::uint32_t*>(kApiTreePointer);
  return *reinterpret_cast<const NorDriver* const volatile*>(tree + kTreeNorDriverOffset);
}

}  // namespace rtcanboot::imxrt1064::rom
