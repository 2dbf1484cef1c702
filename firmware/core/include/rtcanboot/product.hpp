// What the rtcanboot programs say about themselves in their object dictionary: the device names
// (0x1008) and the version number format (0x1018:3, 0x5F00:2). One definition for the firmware
// (bootloader, example application) and the host tests that check the EDS files
// (host/eds/*.eds) against the build. The numbers themselves come from the build: the version
// from the CMake project version, vendor-ID and product code from the RTCANBOOT_VENDOR_ID and
// RTCANBOOT_PRODUCT_CODE cache variables (the same on the firmware and the host build).
#pragma once

#include <cstdint>

namespace rtcanboot::product {

// 0x1008 of the bootloader (host/eds/rtcanboot-bootloader.eds).
inline constexpr const char kBootloaderDeviceName[] = "rtcanboot RT1064";
// 0x1008 of the example application (host/eds/rtcanboot-example-app.eds); its 0x100A is
// kExampleAppVersionPrefix followed by the version text.
inline constexpr const char kExampleAppDeviceName[] = "rtcanboot example application";
inline constexpr const char kExampleAppVersionPrefix[] = "example-app ";

// Revision number (0x1018:3) and bootloader version (0x5F00:2): major << 16 | minor << 8 | patch.
constexpr std::uint32_t version_number(std::uint32_t major, std::uint32_t minor,
                                       std::uint32_t patch) {
  return (major << 16) | (minor << 8) | patch;
}

}  // namespace rtcanboot::product
