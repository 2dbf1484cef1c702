#include "image_builder.hpp"

#include <lzma.h>

#include <cstdlib>
#include <memory>

#include "rtcanboot/bytes.hpp"
#include "rtcanboot/hash.hpp"
#include "rtcanboot/lzma_stream.hpp"
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

std::vector<std::uint8_t> make_patch_container(const std::vector<std::uint8_t>& image,
                                               const image::PatchList& patch,
                                               std::uint32_t image_version) {
  image::Header header = header_for(image, image_version);
  header.header_length = static_cast<std::uint16_t>(
      (image::kFixedLength + image::kRecordHeadLength + 8 * patch.count + 4 + 3) / 4 * 4);
  std::vector<std::uint8_t> bytes(header.header_length);
  if (!image::encode_patch(header, patch, bytes.data(), bytes.size())) return {};
  for (std::uint32_t i = 0; i < patch.count; ++i) {
    const auto begin = image.begin() + static_cast<std::ptrdiff_t>(patch.runs[i].offset);
    bytes.insert(bytes.end(), begin, begin + static_cast<std::ptrdiff_t>(patch.runs[i].length));
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

std::vector<std::uint8_t> lzma_stream(const std::uint8_t* data, std::size_t length,
                                      std::uint32_t dict_size,
                                      const std::vector<std::uint8_t>* preset) {
  lzma_options_lzma options;
  if (lzma_lzma_preset(&options, 9 | LZMA_PRESET_EXTREME)) std::abort();
  options.lc = lzma::kLc;
  options.lp = lzma::kLp;
  options.pb = lzma::kPb;
  options.dict_size = dict_size;
  if (preset != nullptr) {
    options.preset_dict = preset->data();
    options.preset_dict_size = static_cast<std::uint32_t>(preset->size());
  }
  const lzma_filter filters[] = {{LZMA_FILTER_LZMA1, &options}, {LZMA_VLI_UNKNOWN, nullptr}};
  ::lzma_stream stream = LZMA_STREAM_INIT;
  if (lzma_raw_encoder(&stream, filters) != LZMA_OK) std::abort();
  std::vector<std::uint8_t> out(length + length / 8 + 1024);
  stream.next_in = data;
  stream.avail_in = length;
  stream.next_out = out.data();
  stream.avail_out = out.size();
  if (lzma_code(&stream, LZMA_FINISH) != LZMA_STREAM_END) std::abort();
  out.resize(static_cast<std::size_t>(stream.total_out));
  lzma_end(&stream);
  return out;
}

std::vector<std::uint8_t> compress_container(const std::vector<std::uint8_t>& container) {
  const std::uint32_t header_length = load_le16(container.data() + 6);
  const std::uint32_t flags = load_le32(container.data() + 0x1C);
  const std::uint32_t payload_length = load_le32(container.data() + 0x0C);
  std::vector<std::uint8_t> out(container.begin(), container.begin() + header_length);
  store_le32(out.data() + 0x1C, flags | image::kFlagCompressed);
  store_le32(out.data() + header_length - 4, crc32(0, out.data(), header_length - 4));
  image::ExtentList runs;
  if ((flags & image::kFlagSparse) != 0) {
    image::Header header;
    header.header_length = static_cast<std::uint16_t>(header_length);
    header.flags = flags;
    header.payload_length = payload_length;
    if (!image::parse_extents(container.data(), header, runs).ok()) std::abort();
  }
  // The decoder's own idea of the stream lengths (one per run, or the whole payload).
  auto decoder = std::make_unique<lzma::StreamDecoder>();
  decoder->open((flags & image::kFlagSparse) != 0 ? &runs : nullptr, payload_length);
  std::size_t at = header_length;
  for (std::uint32_t i = 0; i < decoder->stream_count(); ++i) {
    const std::uint32_t length = decoder->stream_length(i);
    const std::vector<std::uint8_t> stream = lzma_stream(container.data() + at, length);
    out.insert(out.end(), stream.begin(), stream.end());
    at += length;
  }
  return out;
}

}  // namespace rtcanboot::test
