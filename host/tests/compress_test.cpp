// Compressed containers on the host (host/lib/src/compress.cpp): liblz4's blocks decoded by the
// core's decoder give back exactly the container they came from, plain, sparse and signed; a
// compressed file is read as its plain form; a damaged one is refused.
#include <gtest/gtest.h>

#include "rtcanboot/bytes.hpp"
#include "rtcanboot/hash.hpp"
#include "rtcanboot/host/error.hpp"
#include "rtcanboot/host/image.hpp"
#include "rtcanboot/lz4_chunks.hpp"
#include "rtcanboot/memory_map.hpp"

namespace rtcanboot::host {
namespace {

namespace mm = memory_map;
using Bytes = std::vector<std::uint8_t>;

// Something like firmware: code-like repeats with variation, a zero-filled table, a random blob.
FlatImage firmware_like(std::size_t size) {
  FlatImage img;
  img.address = mm::kAppAddress;
  img.bytes.resize(size);
  std::uint32_t x = 12345;
  for (std::size_t i = 0; i < size; ++i) {
    x = x * 1103515245U + 12345U;
    if (i % 16384 < 9000) {
      img.bytes[i] = static_cast<std::uint8_t>((i % 24) * 11 + ((x >> 28) == 0 ? x >> 20 : 0));
    } else if (i % 16384 < 12000) {
      img.bytes[i] = 0;
    } else {
      img.bytes[i] = static_cast<std::uint8_t>(x >> 24);
    }
  }
  store_le32(img.bytes.data(), 0x2002'0000);
  store_le32(img.bytes.data() + 4, mm::kAppAddress + 0x201);
  return img;
}

Bytes packed(std::size_t size) {
  PackOptions options;
  options.vendor_id = 1;
  options.product_code = 2;
  return pack(firmware_like(size), options);
}

TEST(Compress, RoundTripsThroughTheCoreDecoder) {
  for (const std::size_t size : {8UL, 100UL, 4096UL, 4097UL, 70'000UL, 300'000UL}) {
    const Bytes plain = packed(size);
    const auto compressed = compress_container(plain);
    ASSERT_TRUE(compressed) << size;
    EXPECT_EQ(load_le32(compressed->data() + 0x1C) & image::kFlagCompressed,
              image::kFlagCompressed);
    // The header is sealed: the core parser accepts it as it is.
    image::Header header;
    image::Expectation expect{1, 2, mm::kAppAddress, mm::kAppSize};
    ASSERT_TRUE(image::parse(compressed->data(), compressed->size(), expect, header).ok());
    EXPECT_EQ(header.payload_length, size);
    const auto back = decompress_container(*compressed);
    ASSERT_TRUE(back) << size;
    EXPECT_EQ(*back, plain) << size;
    // Already compressed: not again.
    EXPECT_FALSE(compress_container(*compressed));
    EXPECT_FALSE(decompress_container(plain));
  }
}

TEST(Compress, FirmwareLikeImagesShrinkAndIncompressibleSectorsAreStored) {
  const Bytes plain = packed(300'000);
  const auto compressed = compress_container(plain);
  ASSERT_TRUE(compressed);
  EXPECT_LT(compressed->size(), plain.size() * 6 / 10);
  // Walk the chunks: every sector has one, random sectors are stored, the others are LZ4 blocks.
  std::size_t at = image::kDefaultHeaderLength;
  std::uint32_t stored = 0;
  std::uint32_t blocks = 0;
  while (at < compressed->size()) {
    const std::uint16_t head = load_le16(compressed->data() + at);
    if ((head & lz4::kStoredBit) != 0) {
      ++stored;
    } else {
      ++blocks;
    }
    at += 2 + (head & 0x7FFF);
  }
  EXPECT_EQ(at, compressed->size());
  EXPECT_EQ(stored + blocks, image::sector_count(300'000));
  EXPECT_GT(stored, 0U);
  EXPECT_GT(blocks, stored);
}

TEST(Compress, SparseContainersCompressTheirSectorsOnly) {
  const Bytes plain = packed(70'000);
  image::ExtentList runs;
  runs.runs[0] = {2, 3};
  runs.runs[1] = {16, 2};  // the last sector (17) is partial
  runs.count = 2;
  const auto sparse = make_sparse(plain, runs);
  ASSERT_TRUE(sparse);
  const auto compressed = compress_container(*sparse);
  ASSERT_TRUE(compressed);
  const std::uint32_t flags = load_le32(compressed->data() + 0x1C);
  EXPECT_EQ(flags & (image::kFlagSparse | image::kFlagCompressed),
            image::kFlagSparse | image::kFlagCompressed);
  const auto back = decompress_container(*compressed);
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, *sparse);
}

TEST(Compress, ACompressedFileIsReadAsItsPlainFormAndDamageIsRefused) {
  const Bytes plain = packed(70'000);
  const auto compressed = compress_container(plain);
  ASSERT_TRUE(compressed);
  const Container c = parse_container(*compressed, "app.rcb");
  EXPECT_EQ(c.bytes, plain);
  EXPECT_EQ(c.header.flags & image::kFlagCompressed, 0U);
  // Every byte of the first chunk's head and body flipped in turn: refused or (a literal byte)
  // a different payload that fails its CRC; never accepted as the image.
  const std::size_t first = image::kDefaultHeaderLength;
  const std::size_t body = load_le16(compressed->data() + first) & 0x7FFF;
  for (std::size_t i = first; i < first + 2 + body; ++i) {
    Bytes bad = *compressed;
    bad[i] ^= 0x55;
    EXPECT_THROW(parse_container(bad, "bad.rcb"), Error) << "byte " << i;
  }
  Bytes truncated(compressed->begin(), compressed->end() - 1);
  EXPECT_THROW(parse_container(truncated, "short.rcb"), Error);
}

}  // namespace
}  // namespace rtcanboot::host
