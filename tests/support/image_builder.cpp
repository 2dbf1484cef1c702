#include "image_builder.hpp"

#include "rtcanboot/bytes.hpp"
#include "rtcanboot/hash.hpp"
#include "rtcanboot/memory_map.hpp"

namespace rtcanboot::test {

std::vector<std::uint8_t> make_payload(std::uint32_t length, std::uint32_t seed) {
  std::vector<std::uint8_t> payload(length);
  std::uint32_t state = seed * 2654435761U + 1U;
  for (auto& byte : payload) {
    state = state * 1103515245U + 12345U;
    byte = static_cast<std::uint8_t>(state >> 16);
  }
  if (length >= 8) {
    store_le32(payload.data(), memory_map::kDtcmBase + memory_map::kDtcmSize);
    const std::uint32_t handler = length > 0x200 ? 0x200 : 8;
    store_le32(payload.data() + 4, (memory_map::kAppAddress + handler) | 1U);
  }
  return payload;
}

image::Header header_for(const std::vector<std::uint8_t>& payload, std::uint32_t image_version) {
  image::Header header;
  header.load_address = memory_map::kAppAddress;
  header.payload_length = static_cast<std::uint32_t>(payload.size());
  header.image_version = image_version;
  header.vendor_id = kTestVendor;
  header.product_code = kTestProduct;
  header.payload_crc32 = crc32(0, payload.data(), payload.size());
  SoftwareSha256 sha;
  sha.update(payload.data(), payload.size());
  sha.finish(header.payload_sha256);
  return header;
}

std::vector<std::uint8_t> make_container(const image::Header& header,
                                         const std::vector<std::uint8_t>& payload) {
  std::vector<std::uint8_t> bytes(header.header_length);
  if (!image::encode(header, bytes.data(), bytes.size())) return {};
  bytes.insert(bytes.end(), payload.begin(), payload.end());
  return bytes;
}

}  // namespace rtcanboot::test
