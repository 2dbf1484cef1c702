// The bootloader's key record (docs/security.md): the Ed25519 public key whose signatures this
// node accepts, and the lowest security counter it accepts. Written into the bootloader image at
// build time (CMake RTCANBOOT_SIGNING_KEY, generated into a constant in the bootloader's own
// flash region, which no SDO path can erase or program: flash_guard.hpp). Without a key record
// the bootloader accepts unsigned containers, as before signatures existed.
#pragma once

#include <cstdint>

#include "rtcanboot/image_format.hpp"

namespace rtcanboot {

inline constexpr std::uint32_t kKeyRecordMagic = 0x4B43'5452;  // "RTCK"

struct KeyRecord {
  std::uint32_t magic = kKeyRecordMagic;
  std::uint8_t public_key[image::kSignaturePublicKeySize] = {};
  std::uint32_t min_security_counter = 0;
};

}  // namespace rtcanboot
