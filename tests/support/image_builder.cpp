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

namespace {

void put_length(std::vector<std::uint8_t>& out, std::uint32_t extra) {
  while (extra >= 255) {
    out.push_back(255);
    extra -= 255;
  }
  out.push_back(static_cast<std::uint8_t>(extra));
}

void put_sequence(std::vector<std::uint8_t>& out, const std::uint8_t* literals,
                  std::uint32_t literal_count, std::uint32_t match_length) {
  const std::uint32_t lit_nibble = literal_count < 15 ? literal_count : 15;
  const std::uint32_t match_code = match_length == 0 ? 0 : match_length - 4;
  const std::uint32_t match_nibble = match_code < 15 ? match_code : 15;
  out.push_back(static_cast<std::uint8_t>(lit_nibble << 4 | match_nibble));
  if (lit_nibble == 15) put_length(out, literal_count - 15);
  out.insert(out.end(), literals, literals + literal_count);
  if (match_length == 0) return;  // the last sequence: literals only
  out.push_back(1);               // offset 1: repeat the byte before
  out.push_back(0);
  if (match_nibble == 15) put_length(out, match_code - 15);
}

}  // namespace

std::vector<std::uint8_t> rle_lz4_block(const std::uint8_t* data, std::uint32_t length) {
  std::vector<std::uint8_t> out;
  std::uint32_t literal_start = 0;
  std::uint32_t i = 0;
  while (i < length) {
    std::uint32_t run = 1;
    while (i + run < length && data[i + run] == data[i]) ++run;
    // A run of 5 or more: its first byte is a literal, the rest a match at offset 1 (at least
    // 4 bytes); the block must still end with a literal sequence, so keep the last bytes.
    if (run >= 5 && i + run < length) {
      put_sequence(out, data + literal_start, i + 1 - literal_start, run - 1);
      i += run;
      literal_start = i;
    } else if (run >= 6 && i + run == length) {
      // A run to the end: all of it but the last byte, which ends the block as a literal.
      put_sequence(out, data + literal_start, i + 1 - literal_start, run - 2);
      i += run - 1;
      literal_start = i;
    } else {
      i += run;
    }
  }
  put_sequence(out, data + literal_start, length - literal_start, 0);
  return out;
}

std::vector<std::uint8_t> rle_chunks(const std::vector<std::uint8_t>& stream) {
  std::vector<std::uint8_t> out;
  for (std::size_t at = 0; at < stream.size(); at += image::kSectorSize) {
    const auto length = static_cast<std::uint32_t>(
        stream.size() - at < image::kSectorSize ? stream.size() - at : image::kSectorSize);
    const std::vector<std::uint8_t> block = rle_lz4_block(stream.data() + at, length);
    const bool stored = block.size() >= length;
    const auto head = static_cast<std::uint16_t>(stored ? (0x8000U | length) : block.size());
    out.push_back(static_cast<std::uint8_t>(head));
    out.push_back(static_cast<std::uint8_t>(head >> 8));
    if (stored) {
      out.insert(out.end(), stream.begin() + static_cast<std::ptrdiff_t>(at),
                 stream.begin() + static_cast<std::ptrdiff_t>(at + length));
    } else {
      out.insert(out.end(), block.begin(), block.end());
    }
  }
  return out;
}

std::vector<std::uint8_t> compress_container(const std::vector<std::uint8_t>& container) {
  const std::uint32_t header_length = load_le16(container.data() + 6);
  std::vector<std::uint8_t> out(container.begin(), container.begin() + header_length);
  store_le32(out.data() + 0x1C, load_le32(out.data() + 0x1C) | image::kFlagCompressed);
  store_le32(out.data() + header_length - 4, crc32(0, out.data(), header_length - 4));
  const std::vector<std::uint8_t> chunks =
      rle_chunks(std::vector<std::uint8_t>(container.begin() + header_length, container.end()));
  out.insert(out.end(), chunks.begin(), chunks.end());
  return out;
}

}  // namespace rtcanboot::test
