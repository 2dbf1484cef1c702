// The compressed-container decoder (lzma_stream.hpp) on any bytes. Invariants: no crash, no read
// or write outside its buffers (ASan/UBSan); never more output than an extent's length, in any
// extent, nor more than the window's worth not taken; a stream it accepts whole yields exactly
// every extent's length; and what it accepts, liblzma's own raw LZMA1 decoder reads to the same
// bytes (one stream: the decoder never accepts what the reference refuses or reads otherwise).
//
// Input: bytes 0..1 = payload length (u16 LE, up to a bit over 2 windows), byte 2 = extents
// (0: one stream of the whole payload; n: up to 3 runs of sectors), byte 3 = piece size seed,
// then the compressed input.
#include <lzma.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "fuzz_check.hpp"
#include "rtcanboot/lzma_stream.hpp"

namespace {

using namespace rtcanboot;

// liblzma's raw decoder with the format's options over one stream: the bytes, or nothing.
bool reference_decode(const std::uint8_t* data, std::size_t size, std::uint32_t length,
                      std::vector<std::uint8_t>& out) {
  lzma_options_lzma options{};
  if (lzma_lzma_preset(&options, 6)) return false;
  options.lc = lzma::kLc;
  options.lp = lzma::kLp;
  options.pb = lzma::kPb;
  options.dict_size = lzma::kWindowSize;
  const lzma_filter filters[] = {{LZMA_FILTER_LZMA1, &options}, {LZMA_VLI_UNKNOWN, nullptr}};
  lzma_stream stream = LZMA_STREAM_INIT;
  if (lzma_raw_decoder(&stream, filters) != LZMA_OK) return false;
  out.assign(length + 1, 0);
  stream.next_in = data;
  stream.avail_in = size;
  stream.next_out = out.data();
  stream.avail_out = out.size();
  const lzma_ret ret = lzma_code(&stream, LZMA_FINISH);
  const bool ok = ret == LZMA_STREAM_END && stream.avail_in == 0 && stream.total_out == length;
  lzma_end(&stream);
  out.resize(length);
  return ok;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 4) return 0;
  const std::uint32_t payload_length =
      (static_cast<std::uint32_t>(data[0]) | static_cast<std::uint32_t>(data[1]) << 8) %
      (2 * lzma::kWindowSize + 300);
  const std::uint32_t extents_seed = data[2];
  const std::uint32_t piece_seed = data[3];
  data += 4;
  size -= 4;
  if (size > 64 * 1024) return 0;

  static image::ExtentList runs;
  runs.count = 0;
  const std::uint32_t sectors = image::sector_count(payload_length);
  for (std::uint32_t i = 0, next = extents_seed & 3; i < (extents_seed >> 2) % 4; ++i) {
    if (next >= sectors) break;
    const std::uint32_t count = 1 + (extents_seed >> (2 * i)) % 3;
    runs.runs[runs.count++] = {static_cast<std::uint16_t>(next), static_cast<std::uint16_t>(count)};
    next += count + 1;
  }
  const bool sparse = (extents_seed >> 2) % 4 != 0;

  static lzma::StreamDecoder decoder;
  decoder.open(sparse ? &runs : nullptr, payload_length);
  std::uint32_t total = 0;
  for (std::uint32_t i = 0; i < decoder.stream_count(); ++i) total += decoder.stream_length(i);
  static std::vector<std::uint8_t> out;
  out.clear();
  std::uint32_t piece = 1 + piece_seed * 7;
  bool failed = false;
  // No extent ever gets more than its length.
  auto within_extent = [&] {
    return decoder.stream_count() == 0 ||
           decoder.produced() <= decoder.stream_length(decoder.stream_index());
  };
  for (std::size_t at = 0; at < size && !failed;) {
    std::size_t n = size - at;
    if (n > piece) n = piece;
    if (n > decoder.free_space()) n = decoder.free_space();
    if (n == 0) {
      // Input full while the window waits: take output, then go on.
      while (const std::uint32_t ready = decoder.available()) {
        out.insert(out.end(), decoder.output(), decoder.output() + ready);
        decoder.take(ready);
      }
      FUZZ_CHECK(decoder.free_space() > 0 || decoder.error() != lzma::Error::kNone);
      if (decoder.error() != lzma::Error::kNone) break;
      continue;
    }
    failed = decoder.put(data + at, static_cast<std::uint32_t>(n)) != lzma::Error::kNone;
    at += n;
    piece = 1 + (piece * 5 + 3) % 1200;
    FUZZ_CHECK(decoder.pending() <= lzma::kWindowSize);
    // Take the output in odd amounts, sometimes not at all (the window fills).
    if (piece % 3 != 0) {
      while (const std::uint32_t ready = decoder.available()) {
        const std::uint32_t take = ready > 777 ? 777 : ready;
        out.insert(out.end(), decoder.output(), decoder.output() + take);
        decoder.take(take);
      }
    }
    FUZZ_CHECK(decoder.total_produced() <= total);
    FUZZ_CHECK(within_extent());
  }
  if (!failed && decoder.finish_input() == lzma::Error::kNone) {
    while (const std::uint32_t ready = decoder.available()) {
      out.insert(out.end(), decoder.output(), decoder.output() + ready);
      decoder.take(ready);
    }
    if (decoder.error() == lzma::Error::kNone) {
      FUZZ_CHECK(decoder.drained());
      FUZZ_CHECK(out.size() == total);
      if (!sparse) {
        std::vector<std::uint8_t> expected;
        FUZZ_CHECK(reference_decode(data, size, payload_length, expected));
        FUZZ_CHECK(expected == out);
      }
    }
  }
  FUZZ_CHECK(decoder.total_produced() <= total);
  FUZZ_CHECK(within_extent());
  FUZZ_CHECK(out.size() <= total);
  return 0;
}
