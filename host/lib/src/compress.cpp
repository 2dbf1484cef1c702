// Compressed containers (docs/image-format.md, "Compressed containers"): each carried 4 KiB
// sector becomes one chunk, an LZ4 block made by liblz4 (Debian liblz4-dev, LZ4_compress_HC at
// the highest level) or the sector as it is when that is not shorter. Never hand-written
// compression on the host; the way back uses the core's decoder, the bootloader's own.
#include <lz4.h>
#include <lz4hc.h>

#include <memory>

#include "rtcanboot/bytes.hpp"
#include "rtcanboot/hash.hpp"
#include "rtcanboot/host/image.hpp"
#include "rtcanboot/lz4_chunks.hpp"

namespace rtcanboot::host {

namespace {

// The stream length a container's payload decompresses to: the whole image, or the listed
// sectors of a sparse one.
std::optional<image::Header> parse_any(std::span<const std::uint8_t> container,
                                       std::uint32_t& stream_length) {
  if (container.size() < image::kMinHeaderLength) return std::nullopt;
  image::Expectation any;
  any.load_address = load_le32(container.data() + 0x08);
  any.max_payload_length = 0xFFFF'FFFF;
  any.vendor_id = load_le32(container.data() + 0x14);
  any.product_code = load_le32(container.data() + 0x18);
  image::Header header;
  if (!image::parse(container.data(), container.size(), any, header).ok()) return std::nullopt;
  stream_length = header.payload_length;
  if ((header.flags & image::kFlagSparse) != 0) {
    image::ExtentList runs;
    if (!image::parse_extents(container.data(), header, runs).ok()) return std::nullopt;
    stream_length = image::sparse_payload_length(runs, header.payload_length);
  }
  return header;
}

// The header bytes with the compressed flag set or cleared and the header CRC-32 redone.
std::vector<std::uint8_t> header_with_flag(std::span<const std::uint8_t> container,
                                           std::uint16_t header_length, bool compressed) {
  std::vector<std::uint8_t> out(container.begin(), container.begin() + header_length);
  std::uint32_t flags = load_le32(out.data() + 0x1C);
  flags = compressed ? flags | image::kFlagCompressed : flags & ~image::kFlagCompressed;
  store_le32(out.data() + 0x1C, flags);
  store_le32(out.data() + header_length - 4, crc32(0, out.data(), header_length - 4U));
  return out;
}

}  // namespace

std::optional<std::vector<std::uint8_t>> compress_container(
    std::span<const std::uint8_t> container) {
  std::uint32_t stream_length = 0;
  const auto header = parse_any(container, stream_length);
  if (!header || (header->flags & image::kFlagCompressed) != 0 ||
      container.size() != std::size_t{header->header_length} + stream_length) {
    return std::nullopt;
  }
  std::vector<std::uint8_t> out = header_with_flag(container, header->header_length, true);
  const std::uint8_t* stream = container.data() + header->header_length;
  char block[LZ4_COMPRESSBOUND(lz4::kSectorSize)];
  for (std::uint32_t at = 0; at < stream_length; at += lz4::kSectorSize) {
    const std::uint32_t length =
        stream_length - at < lz4::kSectorSize ? stream_length - at : lz4::kSectorSize;
    const int packed =
        LZ4_compress_HC(reinterpret_cast<const char*>(stream + at), block, static_cast<int>(length),
                        static_cast<int>(sizeof block), LZ4HC_CLEVEL_MAX);
    const bool stored = packed <= 0 || static_cast<std::uint32_t>(packed) >= length;
    const std::uint32_t head =
        stored ? (lz4::kStoredBit | length) : static_cast<std::uint32_t>(packed);
    out.push_back(static_cast<std::uint8_t>(head));
    out.push_back(static_cast<std::uint8_t>(head >> 8));
    if (stored) {
      out.insert(out.end(), stream + at, stream + at + length);
    } else {
      out.insert(out.end(), block, block + packed);
    }
  }
  return out;
}

std::optional<std::vector<std::uint8_t>> decompress_container(
    std::span<const std::uint8_t> container) {
  std::uint32_t stream_length = 0;
  const auto header = parse_any(container, stream_length);
  if (!header || (header->flags & image::kFlagCompressed) == 0) return std::nullopt;
  std::vector<std::uint8_t> out = header_with_flag(container, header->header_length, false);
  auto decoder = std::make_unique<lz4::ChunkDecoder>();
  decoder->open(stream_length);
  for (std::size_t at = header->header_length; at < container.size();) {
    const std::size_t piece = std::min<std::size_t>(container.size() - at, decoder->free_space());
    if (piece == 0 || decoder->put(container.data() + at, static_cast<std::uint32_t>(piece)) !=
                          lz4::Error::kNone) {
      return std::nullopt;
    }
    at += piece;
    while (const std::uint32_t ready = decoder->available()) {
      out.insert(out.end(), decoder->output(), decoder->output() + ready);
      decoder->take(ready);
    }
  }
  if (decoder->finish_input() != lz4::Error::kNone) return std::nullopt;
  while (const std::uint32_t ready = decoder->available()) {
    out.insert(out.end(), decoder->output(), decoder->output() + ready);
    decoder->take(ready);
  }
  if (!decoder->drained()) return std::nullopt;
  return out;
}

}  // namespace rtcanboot::host
