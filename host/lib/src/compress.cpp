// Compressed containers (docs/image-format.md, "Compressed containers"): each extent of the
// payload (the whole image, or each run of a sparse container) becomes one raw LZMA1 stream made
// by liblzma (Debian liblzma-dev: lzma_raw_encoder, LZMA_FILTER_LZMA1, lc 0, lp 1, pb 1, a 32 KiB
// dictionary, preset 9 extreme), which ends with the end-of-payload marker. Never hand-written
// compression on the host; the way back uses the core's decoder, the bootloader's own.
#include <lzma.h>

#include <memory>

#include "rtcanboot/bytes.hpp"
#include "rtcanboot/hash.hpp"
#include "rtcanboot/host/error.hpp"
#include "rtcanboot/host/image.hpp"
#include "rtcanboot/lzma_stream.hpp"

namespace rtcanboot::host {

namespace {

// The header, and the extents of a sparse container (`runs`, count 0 otherwise).
std::optional<image::Header> parse_any(std::span<const std::uint8_t> container,
                                       image::ExtentList& runs, std::uint32_t& stream_length) {
  runs.count = 0;
  const std::optional<image::Header> parsed = parse_header(container);
  if (!parsed) return std::nullopt;
  const image::Header& header = *parsed;
  stream_length = header.payload_length;
  if ((header.flags & image::kFlagSparse) != 0) {
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

std::vector<std::uint8_t> lzma_compress(std::span<const std::uint8_t> data) {
  lzma_options_lzma options;
  if (lzma_lzma_preset(&options, 9 | LZMA_PRESET_EXTREME)) {
    throw Error(ErrorKind::kInternal, "liblzma: no preset 9e");
  }
  options.lc = lzma::kLc;
  options.lp = lzma::kLp;
  options.pb = lzma::kPb;
  options.dict_size = lzma::kWindowSize;
  const lzma_filter filters[] = {{LZMA_FILTER_LZMA1, &options}, {LZMA_VLI_UNKNOWN, nullptr}};
  lzma_stream stream = LZMA_STREAM_INIT;
  if (lzma_raw_encoder(&stream, filters) != LZMA_OK) {
    throw Error(ErrorKind::kInternal, "liblzma: the raw LZMA1 encoder refused its options");
  }
  std::vector<std::uint8_t> out(data.size() + data.size() / 8 + 1024);
  stream.next_in = data.data();
  stream.avail_in = data.size();
  lzma_ret ret = LZMA_OK;
  while (ret == LZMA_OK) {
    if (stream.total_out == out.size()) out.resize(out.size() * 2);
    stream.next_out = out.data() + stream.total_out;
    stream.avail_out = out.size() - stream.total_out;
    ret = lzma_code(&stream, LZMA_FINISH);
  }
  const auto produced = static_cast<std::size_t>(stream.total_out);
  lzma_end(&stream);
  if (ret != LZMA_STREAM_END) {
    throw Error(ErrorKind::kInternal, "liblzma: the raw LZMA1 encoder failed");
  }
  out.resize(produced);
  return out;
}

std::optional<std::vector<std::uint8_t>> compress_container(
    std::span<const std::uint8_t> container) {
  image::ExtentList runs;
  std::uint32_t stream_length = 0;
  const auto header = parse_any(container, runs, stream_length);
  if (!header || (header->flags & image::kFlagCompressed) != 0 ||
      container.size() != std::size_t{header->header_length} + stream_length) {
    return std::nullopt;
  }
  std::vector<std::uint8_t> out = header_with_flag(container, header->header_length, true);
  // One stream per extent, each alone (the decoder starts afresh at each).
  auto decoder = std::make_unique<lzma::StreamDecoder>();
  const bool sparse = (header->flags & image::kFlagSparse) != 0;
  decoder->open(sparse ? &runs : nullptr, header->payload_length);
  std::size_t at = header->header_length;
  for (std::uint32_t i = 0; i < decoder->stream_count(); ++i) {
    const std::uint32_t length = decoder->stream_length(i);
    const std::vector<std::uint8_t> packed = lzma_compress(container.subspan(at, length));
    out.insert(out.end(), packed.begin(), packed.end());
    at += length;
  }
  return out;
}

std::optional<std::vector<std::uint8_t>> decompress_container(
    std::span<const std::uint8_t> container) {
  image::ExtentList runs;
  std::uint32_t stream_length = 0;
  const auto header = parse_any(container, runs, stream_length);
  if (!header || (header->flags & image::kFlagCompressed) == 0) return std::nullopt;
  std::vector<std::uint8_t> out = header_with_flag(container, header->header_length, false);
  auto decoder = std::make_unique<lzma::StreamDecoder>();
  const bool sparse = (header->flags & image::kFlagSparse) != 0;
  decoder->open(sparse ? &runs : nullptr, header->payload_length);
  auto drain = [&] {
    while (const std::uint32_t ready = decoder->available()) {
      out.insert(out.end(), decoder->output(), decoder->output() + ready);
      decoder->take(ready);
    }
  };
  for (std::size_t at = header->header_length; at < container.size();) {
    const std::size_t piece = std::min<std::size_t>(container.size() - at, decoder->free_space());
    if (piece == 0 || decoder->put(container.data() + at, static_cast<std::uint32_t>(piece)) !=
                          lzma::Error::kNone) {
      return std::nullopt;
    }
    at += piece;
    drain();
  }
  if (decoder->finish_input() != lzma::Error::kNone) return std::nullopt;
  drain();
  if (!decoder->drained() || out.size() != std::size_t{header->header_length} + stream_length) {
    return std::nullopt;
  }
  return out;
}

}  // namespace rtcanboot::host
