// The raw LZMA1 stream decoder of compressed containers (lzma_stream.hpp): liblzma's output of
// many sizes and kinds decodes to exactly its input, fed in any pieces and taken in any amounts;
// every hostile stream is refused with its own error and never yields a byte past its length.
#include "rtcanboot/lzma_stream.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <random>
#include <vector>

#include "image_builder.hpp"

namespace rtcanboot::lzma {
namespace {

using Bytes = std::vector<std::uint8_t>;

Bytes random_bytes(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  Bytes b(n);
  for (auto& x : b) x = static_cast<std::uint8_t>(rng());
  return b;
}

// Code-like: short repeats at varying distances, small constants, some noise.
Bytes code_like(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  Bytes b(n);
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint32_t r = rng();
    if (i >= 64 && r % 4 != 0) {
      b[i] = b[i - 2 * (1 + r % 30)];
    } else {
      b[i] = static_cast<std::uint8_t>(r % 5 == 0 ? r >> 8 : (i % 4 == 1 ? 0x68 : r & 0x1F));
    }
  }
  return b;
}

Bytes stream_of(const Bytes& data) {
  return test::lzma_stream(data.data(), data.size());
}

struct Result {
  Error error = Error::kNone;
  Bytes out;
  bool drained = false;
};

// Feeds `input` in pieces of 1 + (k * step) % max_piece bytes and takes the output in amounts of
// at most `take`; with `take == 0` nothing is taken until the input is over.
Result decode(StreamDecoder& d, const Bytes& input, const image::ExtentList* extents,
              std::uint32_t payload_length, std::uint32_t max_piece = 700,
              std::uint32_t take = 1000) {
  Result r;
  d.open(extents, payload_length);
  auto drain = [&] {
    while (const std::uint32_t ready = d.available()) {
      const std::uint32_t n = take != 0 && ready > take ? take : ready;
      r.out.insert(r.out.end(), d.output(), d.output() + n);
      d.take(n);
    }
  };
  std::size_t at = 0;
  for (std::uint32_t k = 0; at < input.size() && r.error == Error::kNone; ++k) {
    std::uint32_t n = 1 + (k * 37) % max_piece;
    if (n > input.size() - at) n = static_cast<std::uint32_t>(input.size() - at);
    if (n > d.free_space()) n = d.free_space();
    if (n == 0) {
      // Only a full window with nobody taking can leave no room: take now.
      EXPECT_EQ(take, 0U);
      take = 1000;
      drain();
      continue;
    }
    r.error = d.put(input.data() + at, n);
    at += n;
    if (take != 0) drain();
  }
  if (r.error == Error::kNone) r.error = d.finish_input();
  if (r.error == Error::kNone) {
    take = 1000;
    drain();
    r.error = d.error();
  }
  r.drained = d.drained();
  return r;
}

class LzmaStreamTest : public ::testing::Test {
 protected:
  std::unique_ptr<StreamDecoder> d = std::make_unique<StreamDecoder>();
};

TEST_F(LzmaStreamTest, LiblzmaStreamsOfEverySizeRoundTrip) {
  const std::size_t sizes[] = {0,     1,     2,     3,     100,   4095,   4096,  4097,
                               32767, 32768, 32769, 65536, 65537, 100000, 300000};
  for (const std::size_t n : sizes) {
    for (int kind = 0; kind < 3; ++kind) {
      const Bytes data = kind == 0   ? code_like(n, static_cast<unsigned>(n))
                         : kind == 1 ? random_bytes(n, static_cast<unsigned>(n))
                                     : Bytes(n, 0x5A);
      const Bytes stream = stream_of(data);
      ASSERT_GE(stream.size(), kInitBytes);
      EXPECT_EQ(stream[0], 0);
      const Result r = decode(*d, stream, nullptr, static_cast<std::uint32_t>(n));
      EXPECT_EQ(r.error, Error::kNone) << n << " kind " << kind;
      EXPECT_TRUE(r.drained) << n << " kind " << kind;
      EXPECT_EQ(r.out, data) << n << " kind " << kind;
      EXPECT_EQ(d->received(), stream.size());
      EXPECT_EQ(d->total_produced(), n);
    }
  }
}

TEST_F(LzmaStreamTest, AnyPiecesAndAnyTakingGiveTheSameBytes) {
  const Bytes data = code_like(80000, 4);
  const Bytes stream = stream_of(data);
  for (const std::uint32_t piece : {1U, 7U, 48U, 889U, 2048U}) {
    for (const std::uint32_t take : {0U, 1U, 255U, 4096U}) {
      const Result r = decode(*d, stream, nullptr, 80000, piece, take);
      EXPECT_EQ(r.error, Error::kNone) << piece << " " << take;
      EXPECT_EQ(r.out, data) << piece << " " << take;
    }
  }
}

TEST_F(LzmaStreamTest, AFullWindowStopsTheDecoderUntilBytesAreTaken) {
  const Bytes data(100000, 0);
  const Bytes stream = stream_of(data);
  ASSERT_LT(stream.size(), StreamDecoder::kInputCapacity);
  d->open(nullptr, 100000);
  ASSERT_EQ(d->put(stream.data(), static_cast<std::uint32_t>(stream.size())), Error::kNone);
  ASSERT_EQ(d->finish_input(), Error::kNone);
  EXPECT_EQ(d->pending(), kWindowSize);  // never more than the window: no byte overwritten
  EXPECT_EQ(d->total_produced(), kWindowSize);
  std::uint32_t got = 0;
  while (const std::uint32_t ready = d->available()) {
    got += ready;
    d->take(ready);
    EXPECT_LE(d->pending(), kWindowSize);
  }
  EXPECT_EQ(got, 100000U);
  EXPECT_TRUE(d->drained());
}

TEST_F(LzmaStreamTest, EachExtentIsAStreamOfItsOwn) {
  // 70000 bytes = 17 sectors and a bit; runs 0-1, 5, 16-17 (the last one partial).
  const Bytes image = code_like(70000, 5);
  image::ExtentList runs;
  runs.runs[0] = {0, 2};
  runs.runs[1] = {5, 1};
  runs.runs[2] = {16, 2};
  runs.count = 3;
  Bytes input;
  Bytes expected;
  for (std::uint32_t i = 0; i < runs.count; ++i) {
    const std::size_t begin = std::size_t{runs.runs[i].first_sector} * image::kSectorSize;
    std::size_t end = begin + std::size_t{runs.runs[i].sector_count} * image::kSectorSize;
    if (end > image.size()) end = image.size();
    const Bytes part(image.begin() + static_cast<std::ptrdiff_t>(begin),
                     image.begin() + static_cast<std::ptrdiff_t>(end));
    const Bytes s = stream_of(part);
    input.insert(input.end(), s.begin(), s.end());
    expected.insert(expected.end(), part.begin(), part.end());
  }
  d->open(&runs, 70000);
  EXPECT_EQ(d->stream_count(), 3U);
  EXPECT_EQ(d->stream_length(2), 70000U - 16 * image::kSectorSize);
  const Result r = decode(*d, input, &runs, 70000);
  EXPECT_EQ(r.error, Error::kNone);
  EXPECT_EQ(r.out, expected);
  // One stream for two runs is not the format: the second run's stream is missing.
  image::ExtentList two = runs;
  two.count = 2;
  const Bytes first_two = stream_of(Bytes(expected.begin(), expected.begin() + 3 * 4096));
  EXPECT_EQ(decode(*d, first_two, &two, 70000).error, Error::kOverrun);
  // No extents: not a byte may come.
  image::ExtentList none;
  EXPECT_EQ(decode(*d, Bytes{}, &none, 70000).error, Error::kNone);
  EXPECT_EQ(decode(*d, Bytes{0}, &none, 70000).error, Error::kTrailing);
}

TEST_F(LzmaStreamTest, ABadRangeCoderStartIsRefused) {
  Bytes stream = stream_of(code_like(5000, 6));
  stream[0] = 0x01;
  EXPECT_EQ(decode(*d, stream, nullptr, 5000).error, Error::kInitByte);
  // The code may not start at 0xFFFF'FFFF (it must stay below the range).
  const Bytes all_ones = {0, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0};
  EXPECT_EQ(decode(*d, all_ones, nullptr, 5000).error, Error::kInitByte);
}

TEST_F(LzmaStreamTest, AStreamLongerThanItsLengthIsRefusedAtTheFirstByteTooMany) {
  const Bytes data = code_like(9000, 7);
  const Bytes stream = stream_of(data);
  const Result r = decode(*d, stream, nullptr, 8999, 700, 1);
  EXPECT_EQ(r.error, Error::kOverrun);
  EXPECT_LE(r.out.size(), 8999U);  // never a byte past the length
  EXPECT_LE(d->total_produced(), 8999U);
  EXPECT_TRUE(std::equal(r.out.begin(), r.out.end(), data.begin()));
  // A run of zeros encoded as one long match past the end: refused before any of it is written.
  const Bytes zeros(5000, 0);
  const Result z = decode(*d, stream_of(zeros), nullptr, 4000);
  EXPECT_EQ(z.error, Error::kOverrun);
  EXPECT_LE(d->total_produced(), 4000U);
}

TEST_F(LzmaStreamTest, AnEndMarkerBeforeTheLengthIsRefused) {
  const Bytes stream = stream_of(code_like(9000, 8));
  EXPECT_EQ(decode(*d, stream, nullptr, 9001).error, Error::kEarlyEnd);
}

TEST_F(LzmaStreamTest, AReferenceBeforeTheStreamStartIsRefused) {
  // liblzma with a preset dictionary refers to bytes the decoder never had.
  const Bytes preset = random_bytes(3000, 9);
  const Bytes stream = test::lzma_stream(preset.data(), preset.size(), kWindowSize, &preset);
  const Result r = decode(*d, stream, nullptr, 3000);
  EXPECT_EQ(r.error, Error::kDistance);
  EXPECT_TRUE(r.out.empty());
  // The same within a later extent: its stream may not reach into the one before.
  image::ExtentList runs;
  runs.runs[0] = {0, 1};
  runs.runs[1] = {1, 1};
  runs.count = 2;
  const Bytes first = random_bytes(4096, 10);
  Bytes input = stream_of(first);
  const Bytes second = test::lzma_stream(first.data(), first.size(), kWindowSize, &first);
  input.insert(input.end(), second.begin(), second.end());
  EXPECT_EQ(decode(*d, input, &runs, 8192).error, Error::kDistance);
}

TEST_F(LzmaStreamTest, AMatchFartherThanTheWindowIsRefused) {
  // 40 KiB of noise twice, compressed with a 64 KiB dictionary: matches 40960 bytes back.
  Bytes data = random_bytes(40960, 11);
  data.insert(data.end(), data.begin(), data.end());
  const Bytes stream = test::lzma_stream(data.data(), data.size(), 64 * 1024);
  const Result r = decode(*d, stream, nullptr, static_cast<std::uint32_t>(data.size()));
  EXPECT_EQ(r.error, Error::kDistance);
  EXPECT_TRUE(std::equal(r.out.begin(), r.out.end(), data.begin()));
}

TEST_F(LzmaStreamTest, TrailingTruncatedAndDamagedStreamsAreRefused) {
  const Bytes data = code_like(20000, 12);
  const Bytes stream = stream_of(data);
  Bytes trailing = stream;
  trailing.push_back(0);
  EXPECT_EQ(decode(*d, trailing, nullptr, 20000).error, Error::kTrailing);
  for (std::size_t cut = 1; cut <= 12; ++cut) {
    const Bytes shorter(stream.begin(), stream.end() - static_cast<std::ptrdiff_t>(cut));
    const Result r = decode(*d, shorter, nullptr, 20000);
    EXPECT_NE(r.error, Error::kNone) << cut;
    EXPECT_FALSE(r.drained);
  }
  EXPECT_EQ(decode(*d, Bytes(stream.begin(), stream.begin() + 3), nullptr, 20000).error,
            Error::kTruncated);
  // Every byte changed in turn: refused, or different bytes (the container's CRC catches
  // those); never more than the length, never a crash (ASan, UBSan).
  for (std::size_t i = 0; i < stream.size(); i += 1 + i / 64) {
    Bytes bad = stream;
    bad[i] ^= 0x21;
    const Result r = decode(*d, bad, nullptr, 20000);
    EXPECT_LE(d->total_produced(), 20000U);
    if (r.error == Error::kNone) {
      EXPECT_NE(r.out, data) << i;
    }
  }
  // The last byte changed: the code is no longer 0 after the end marker (or worse).
  Bytes last = stream;
  last.back() ^= 0x01;
  EXPECT_NE(decode(*d, last, nullptr, 20000).error, Error::kNone);
}

TEST_F(LzmaStreamTest, MoreThanTheFreeSpaceIsRefused) {
  d->open(nullptr, 100);
  const Bytes big(StreamDecoder::kInputCapacity + 1, 0);
  EXPECT_EQ(d->put(big.data(), static_cast<std::uint32_t>(big.size())), Error::kNoRoom);
  EXPECT_EQ(d->error(), Error::kNoRoom);  // it sticks
  EXPECT_EQ(d->available(), 0U);
}

}  // namespace
}  // namespace rtcanboot::lzma
