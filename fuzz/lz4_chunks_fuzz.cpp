// The compressed-container decoder (lz4_chunks.hpp) on any bytes. Invariants: no crash, no read
// or write outside its buffers (ASan/UBSan); never more output than the stream length; a stream
// it accepts whole yields exactly the stream length; the check-only decode of a block agrees
// with the real one and the real one writes nothing past its output.
//
// Input: bytes 0..1 = stream length (u16 LE, up to 3 sectors and a bit), byte 2 = piece size
// seed, then the compressed stream. The stream bytes are also decoded as one LZ4 block.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "fuzz_check.hpp"
#include "rtcanboot/lz4_chunks.hpp"

namespace {

using namespace rtcanboot;

void block_agrees(const std::uint8_t* data, std::uint32_t size, std::uint32_t out_length) {
  std::vector<std::uint8_t> out(out_length + 64, 0xA5);
  const lz4::Error real = lz4::decode_block(data, size, out.data(), out_length);
  const lz4::Error check = lz4::decode_block(data, size, nullptr, out_length);
  FUZZ_CHECK(real == check);
  for (std::size_t i = out_length; i < out.size(); ++i) FUZZ_CHECK(out[i] == 0xA5);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 3) return 0;
  const std::uint32_t stream_length =
      (static_cast<std::uint32_t>(data[0]) | static_cast<std::uint32_t>(data[1]) << 8) %
      (3 * lz4::kSectorSize + 200);
  const std::uint32_t piece_seed = data[2];
  data += 3;
  size -= 3;
  if (size > 64 * 1024) return 0;

  block_agrees(data, static_cast<std::uint32_t>(size), stream_length % (lz4::kSectorSize + 1));

  static lz4::ChunkDecoder decoder;
  decoder.open(stream_length);
  std::uint32_t produced = 0;
  std::uint32_t piece = 1 + piece_seed * 7;
  bool failed = false;
  for (std::size_t at = 0; at < size && !failed;) {
    std::size_t n = size - at;
    if (n > piece) n = piece;
    if (n > decoder.free_space()) n = decoder.free_space();
    FUZZ_CHECK(n > 0);  // a valid head never asks for more than the buffer holds
    failed = decoder.put(data + at, static_cast<std::uint32_t>(n)) != lz4::Error::kNone;
    at += n;
    piece = 1 + (piece * 5 + 3) % 1200;
    // Take the output in odd amounts.
    while (const std::uint32_t ready = decoder.available()) {
      const std::uint32_t take = ready > 777 ? 777 : ready;
      produced += take;
      decoder.take(take);
    }
    FUZZ_CHECK(produced <= stream_length);
  }
  if (!failed && decoder.finish_input() == lz4::Error::kNone) {
    while (const std::uint32_t ready = decoder.available()) {
      produced += ready;
      decoder.take(ready);
    }
    FUZZ_CHECK(produced == stream_length);
    FUZZ_CHECK(decoder.drained());
  }
  return 0;
}
