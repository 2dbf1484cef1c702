// The compressed-container decoder (lz4_chunks.hpp): LZ4 blocks from liblz4 and handmade ones,
// every malformed case, and the chunk stream fed in pieces of every size.
#include "rtcanboot/lz4_chunks.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "image_builder.hpp"

namespace rtcanboot::lz4 {
namespace {

using Bytes = std::vector<std::uint8_t>;

// LZ4_compress_HC(level 12) of liblz4 1.9.4 (Debian liblz4-dev) for the 300 bytes of
// vector_source(): pinned, as the core tests do not link liblz4.
const Bytes kLiblz4Block = {0xff, 0x06, 0x72, 0x74, 0x63, 0x61, 0x6e, 0x62, 0x6f, 0x6f, 0x74,
                            0x20, 0x4c, 0x5a, 0x34, 0x20, 0x76, 0x65, 0x63, 0x74, 0x6f, 0x72,
                            0x20, 0x15, 0x00, 0xa0, 0x1f, 0x00, 0x01, 0x00, 0x28, 0x0f, 0x69,
                            0x00, 0x10, 0x50, 0x74, 0x63, 0x61, 0x6e, 0x62};

Bytes vector_source() {
  const char text[] = "rtcanboot LZ4 vector ";
  Bytes bytes(300);
  for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<std::uint8_t>(text[i % 21]);
  for (std::size_t i = 200; i < 260; ++i) bytes[i] = 0;
  return bytes;
}

Error decode(const Bytes& block, Bytes& out) {
  return decode_block(block.data(), static_cast<std::uint32_t>(block.size()), out.data(),
                      static_cast<std::uint32_t>(out.size()));
}

TEST(Lz4Block, DecodesTheLiblz4Vector) {
  Bytes out(300, 0xEE);
  ASSERT_EQ(decode(kLiblz4Block, out), Error::kNone);
  EXPECT_EQ(out, vector_source());
  // The check alone agrees.
  EXPECT_EQ(decode_block(kLiblz4Block.data(), 41, nullptr, 300), Error::kNone);
}

TEST(Lz4Block, OverlappingMatchAndLengthExtensions) {
  // "ab" then a match of 4 + 15 + 1 = 20 at offset 2, then 16 literals (nibble 15 + 1).
  Bytes block = {0x2F, 'a', 'b', 0x02, 0x00, 0x01, 0xF0, 0x01};
  for (int i = 0; i < 16; ++i) block.push_back(static_cast<std::uint8_t>('A' + i));
  Bytes out(2 + 20 + 16);
  ASSERT_EQ(decode(block, out), Error::kNone);
  for (int i = 0; i < 22; ++i) EXPECT_EQ(out[i], i % 2 == 0 ? 'a' : 'b') << i;
  EXPECT_EQ(out[22], 'A');
  EXPECT_EQ(out[37], 'P');
}

TEST(Lz4Block, MalformedBlocksAreRefusedAndNothingIsWrittenPastTheOutput) {
  struct Case {
    Bytes block;
    std::uint32_t out_length;
    Error expected;
  };
  const Case cases[] = {
      {{}, 4, Error::kTruncatedBlock},                          // no token
      {{0x30, 'a', 'b'}, 3, Error::kTruncatedBlock},            // literals past the end
      {{0x10, 'a', 0x00, 0x00, 0x00}, 5, Error::kMatchOffset},  // offset 0
      {{0x10, 'a', 0x02, 0x00, 0x00}, 5, Error::kMatchOffset},  // before the sector start
      {{0x10, 'a', 0x01, 0x00, 0x00}, 4, Error::kOverrun},      // match past the end
      {{0x40, 'a', 'b', 'c', 'd'}, 3, Error::kOverrun},         // literals past the end
      {{0x20, 'a', 'b'}, 3, Error::kUnderrun},                  // ends short
      {{0x10, 'a', 0x01}, 5, Error::kTruncatedBlock},           // half an offset
      {{0x1F, 'a', 0x01, 0x00}, 40, Error::kTruncatedBlock},    // match extension missing
      {{0xF0}, 40, Error::kTruncatedBlock},                     // literal extension missing
      {{0xF0, 0xFF, 0xFF, 0xFF, 0x00}, 600, Error::kOverrun},   // huge literal length
      {{0x1F, 'a', 0x01, 0x00, 0xFF, 0xFF, 0x10}, 300, Error::kOverrun},  // huge match
  };
  for (const Case& c : cases) {
    Bytes out(c.out_length + 16, 0xAA);
    EXPECT_EQ(decode_block(c.block.data(), static_cast<std::uint32_t>(c.block.size()), out.data(),
                           c.out_length),
              c.expected)
        << "case with " << c.block.size() << " bytes";
    EXPECT_EQ(decode_block(c.block.data(), static_cast<std::uint32_t>(c.block.size()), nullptr,
                           c.out_length),
              c.expected);
    for (std::size_t i = c.out_length; i < out.size(); ++i) ASSERT_EQ(out[i], 0xAA);
  }
}

Bytes sample_stream(std::uint32_t length) {
  Bytes bytes(length);
  for (std::uint32_t i = 0; i < length; ++i) {
    // Runs of zeros, then pseudo-random stretches: some sectors compress, some are stored.
    bytes[i] = (i / 1000) % 3 == 0 ? 0 : static_cast<std::uint8_t>((i * 2654435761U) >> 24);
  }
  return bytes;
}

// Feeds `chunks` `piece` bytes at a time, taking output as it comes.
Error run(ChunkDecoder& decoder, const Bytes& chunks, std::uint32_t piece, Bytes& out) {
  std::size_t at = 0;
  while (at < chunks.size()) {
    std::uint32_t n = static_cast<std::uint32_t>(chunks.size() - at);
    if (n > piece) n = piece;
    if (n > decoder.free_space()) n = decoder.free_space();
    EXPECT_GT(n, 0U) << "the decoder stalled";
    if (n == 0) return Error::kNone;
    const Error e = decoder.put(chunks.data() + at, n);
    if (e != Error::kNone) return e;
    at += n;
    while (const std::uint32_t ready = decoder.available()) {
      out.insert(out.end(), decoder.output(), decoder.output() + ready);
      decoder.take(ready);
    }
  }
  return decoder.finish_input();
}

TEST(ChunkDecoder, RoundTripsInPiecesOfEverySize) {
  for (const std::uint32_t length : {1U, 8U, 4095U, 4096U, 4097U, 3 * 4096U + 5, 10 * 4096U}) {
    const Bytes stream = sample_stream(length);
    const Bytes chunks = test::rle_chunks(stream);
    for (const std::uint32_t piece : {1U, 7U, 889U, 100000U}) {
      auto decoder = std::make_unique<ChunkDecoder>();
      decoder->open(length);
      Bytes out;
      EXPECT_EQ(run(*decoder, chunks, piece, out), Error::kNone) << length << "/" << piece;
      EXPECT_EQ(out, stream) << length << "/" << piece;
      EXPECT_TRUE(decoder->drained());
    }
  }
  // The sample holds compressible and incompressible sectors.
  const Bytes chunks = test::rle_chunks(sample_stream(10 * 4096));
  EXPECT_LT(chunks.size(), 10U * 4096U);
}

TEST(ChunkDecoder, TheWindowHoldsTheInputBackUntilItIsTaken) {
  Bytes stream(3 * 4096, 0x11);
  for (std::size_t i = 4095; i < stream.size(); i += 4096) stream[i] = 0x22;
  const Bytes chunks = test::rle_chunks(stream);
  ASSERT_LT(chunks.size(), 100U);
  ChunkDecoder decoder;
  decoder.open(3 * 4096);
  ASSERT_EQ(decoder.put(chunks.data(), static_cast<std::uint32_t>(chunks.size())), Error::kNone);
  EXPECT_EQ(decoder.available(), 4096U);
  decoder.take(4000);
  EXPECT_EQ(decoder.available(), 96U);  // the next chunk waits for the window
  decoder.take(96);
  EXPECT_EQ(decoder.available(), 4096U);
  EXPECT_FALSE(decoder.drained());
}

TEST(ChunkDecoder, MalformedStreamsAreRefused) {
  const Bytes stream = sample_stream(2 * 4096 + 10);
  const Bytes good = test::rle_chunks(stream);
  const auto check = [](const Bytes& chunks, std::uint32_t length, Error expected) {
    auto decoder = std::make_unique<ChunkDecoder>();
    decoder->open(length);
    Bytes out;
    EXPECT_EQ(run(*decoder, chunks, 1000, out), expected);
    EXPECT_LE(out.size(), length);
  };
  check(good, 2 * 4096 + 10, Error::kNone);
  Bytes truncated(good.begin(), good.end() - 1);
  check(truncated, 2 * 4096 + 10, Error::kTruncatedStream);
  Bytes trailing = good;
  trailing.push_back(0);
  check(trailing, 2 * 4096 + 10, Error::kTrailing);
  check(good, 2 * 4096 + 11, Error::kChunkLength);      // last stored chunk is not the sector
  check(Bytes{0x00, 0x00}, 100, Error::kChunkLength);   // length 0
  check(Bytes{0x64, 0x00}, 100, Error::kChunkLength);   // not shorter
  check(Bytes{0xFF, 0x7F}, 4096, Error::kChunkLength);  // far too long
  check(Bytes{0x10, 0x80}, 4096, Error::kChunkLength);  // stored, too short
  check(Bytes{0x05, 0x00, 0x10, 'a', 0x02, 0x00, 0x00}, 100, Error::kMatchOffset);
  check(Bytes{0x03, 0x00, 0x20, 'a', 'b'}, 100, Error::kUnderrun);
  // After an error the decoder takes nothing more.
  ChunkDecoder decoder;
  decoder.open(100);
  const Bytes bad = {0x00, 0x00};
  EXPECT_EQ(decoder.put(bad.data(), 2), Error::kChunkLength);
  EXPECT_EQ(decoder.put(good.data(), 2), Error::kChunkLength);
  EXPECT_EQ(decoder.available(), 0U);
  // More than free_space() is refused, nothing taken.
  ChunkDecoder big;
  big.open(10 * 4096);
  const Bytes lots(ChunkDecoder::kInputCapacity + 1, 0);
  EXPECT_EQ(big.put(lots.data(), static_cast<std::uint32_t>(lots.size())), Error::kOverrun);
  EXPECT_EQ(big.received(), 0U);
}

}  // namespace
}  // namespace rtcanboot::lz4
