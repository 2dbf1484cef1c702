// Builds image containers and application payloads for tests, the fuzzer and the benchmark.
#pragma once

#include <cstdint>
#include <vector>

#include "rtcanboot/image_format.hpp"

namespace rtcanboot::test {

// Identity the test bootloaders use (0x1018:1/2); containers are made for it by default.
inline constexpr std::uint32_t kTestVendor = 0x0000'0ABC;
inline constexpr std::uint32_t kTestProduct = 0x0001'0064;

// A payload of `length` bytes that starts with a sane vector table (SP at the top of DTCM,
// reset handler inside the payload, Thumb bit) followed by pseudo-random bytes from `seed`.
std::vector<std::uint8_t> make_payload(std::uint32_t length, std::uint32_t seed);

// The header every test container starts from: for kTestVendor/kTestProduct at the application
// address, with the payload's length, CRC-32 and SHA-256 filled in.
image::Header header_for(const std::vector<std::uint8_t>& payload, std::uint32_t image_version = 1);

// Header bytes (encoded) followed by the payload.
std::vector<std::uint8_t> make_container(const image::Header& header,
                                         const std::vector<std::uint8_t>& payload);
inline std::vector<std::uint8_t> make_container(const std::vector<std::uint8_t>& payload,
                                                std::uint32_t image_version = 1) {
  return make_container(header_for(payload, image_version), payload);
}

}  // namespace rtcanboot::test
