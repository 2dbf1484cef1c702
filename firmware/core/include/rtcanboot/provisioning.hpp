// The provisioning record: node-ID, bit rate, boot window and serial number of one device, in
// its own 4 KiB sector of the records area (memory_map::kProvisioningOffset), written at the
// factory (or by the twin, like a factory step). A blank or invalid record means the documented
// defaults. docs/flash-records.md describes the bytes.
#pragma once

#include <cstddef>
#include <cstdint>

#include "rtcanboot/flash_port.hpp"

namespace rtcanboot {

struct Provisioning {
  std::uint8_t node_id = 1;
  std::uint32_t bitrate = 125'000;   // bit/s, one of the CiA 301 rates
  std::uint32_t boot_window_ms = 0;  // how long a valid application waits for a master
  std::uint32_t serial = 0;          // 0x1018:4 (0: keep the build's serial)
  // Starts of a new, unconfirmed image before the bootloader gives up on it (trial boot);
  // kTrialBootOff starts every committed image without asking for a confirmation.
  std::uint8_t boot_attempts = 3;
};

inline constexpr std::uint8_t kTrialBootOff = 0;

inline constexpr std::uint32_t kProvisioningMagic = 0x5043'5452;  // "RTCP"
inline constexpr std::uint16_t kProvisioningFormat = 1;
inline constexpr std::size_t kProvisioningRecordSize = 32;

// 10k, 20k, 50k, 125k, 250k, 500k, 800k or 1M bit/s.
bool is_cia301_bitrate(std::uint32_t bitrate);

// Writes the record (kProvisioningRecordSize bytes, CRC included). False when a field is out of
// range (node-ID not 1..127, bit rate not a CiA 301 rate) or the buffer is too small.
bool encode_provisioning(const Provisioning& provisioning, std::uint8_t* out, std::size_t capacity);
// Decodes a record; blank, torn or invalid records give the defaults (`valid` tells which).
Provisioning decode_provisioning(const std::uint8_t* data, std::size_t length,
                                 bool* valid = nullptr);
// Reads the record from its sector (flash idle, start-up).
Provisioning load_provisioning(FlashPort& flash, bool* valid = nullptr);

}  // namespace rtcanboot
