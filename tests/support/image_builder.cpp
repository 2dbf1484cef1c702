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

image::ExtentList runs(std::initializer_list<image::Extent> list) {
  image::ExtentList extents;
  for (const image::Extent& run : list) extents.runs[extents.count++] = run;
  return extents;
}

std::vector<std::uint8_t> make_sparse_container(const std::vector<std::uint8_t>& image,
                                                const image::ExtentList& extents,
                                                std::uint32_t image_version) {
  image::Header header = header_for(image, image_version);
  header.header_length = static_cast<std::uint16_t>(image::sparse_header_length(extents.count));
  std::vector<std::uint8_t> bytes(header.header_length);
  if (!image::encode_sparse(header, extents, bytes.data(), bytes.size())) return {};
  for (std::uint32_t i = 0; i < extents.count; ++i) {
    const std::size_t begin = std::size_t{extents.runs[i].first_sector} * image::kSectorSize;
    const std::size_t end = begin + std::size_t{extents.runs[i].sector_count} * image::kSectorSize;
    bytes.insert(
        bytes.end(), image.begin() + static_cast<std::ptrdiff_t>(begin),
        image.begin() + static_cast<std::ptrdiff_t>(end < image.size() ? end : image.size()));
  }
  return bytes;
}

image::ExtentList differing_sectors(const std::vector<std::uint8_t>& image,
                                    const std::uint8_t* flash) {
  image::ExtentList extents;
  const auto sectors = image::sector_count(static_cast<std::uint32_t>(image.size()));
  for (std::uint32_t sector = 0; sector < sectors; ++sector) {
    bool same = true;
    for (std::uint32_t i = 0; i < image::kSectorSize && same; ++i) {
      const std::size_t at = std::size_t{sector} * image::kSectorSize + i;
      same = flash[at] == (at < image.size() ? image[at] : 0xFF);
    }
    if (same) continue;
    image::Extent* last = extents.count > 0 ? &extents.runs[extents.count - 1] : nullptr;
    if (last != nullptr && last->first_sector + last->sector_count == sector) {
      ++last->sector_count;
    } else {
      extents.runs[extents.count++] = {static_cast<std::uint16_t>(sector), 1};
    }
  }
  return extents;
}

}  // namespace rtcanboot::test
