// Compressed containers on the host (host/lib/src/compress.cpp): liblzma's raw LZMA1 streams
// decoded by the core's decoder give back exactly the container they came from, plain and
// sparse; a compressed file (whole or sparse) is read as its plain form; a damaged one is
// refused.
#include <gtest/gtest.h>
#include <lzma.h>

#include "rtcanboot/bytes.hpp"
#include "rtcanboot/hash.hpp"
#include "rtcanboot/host/error.hpp"
#include "rtcanboot/host/image.hpp"
#include "rtcanboot/lzma_stream.hpp"
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

TEST(Compress, FirmwareLikeImagesShrinkAndEachStreamIsRawLzma1) {
  const Bytes plain = packed(300'000);
  const auto compressed = compress_container(plain);
  ASSERT_TRUE(compressed);
  EXPECT_LT(compressed->size(), plain.size() * 6 / 10);
  // One stream: the range coder's 0 byte right after the header, and liblzma's own raw LZMA1
  // decoder (lc 0, lp 1, pb 1, 32 KiB) reads it back to the payload.
  const std::size_t at = image::kDefaultHeaderLength;
  EXPECT_EQ((*compressed)[at], 0);
  lzma_options_lzma options{};
  ASSERT_FALSE(lzma_lzma_preset(&options, 6));
  options.lc = 0;
  options.lp = 1;
  options.pb = 1;
  options.dict_size = lzma::kWindowSize;
  const lzma_filter filters[] = {{LZMA_FILTER_LZMA1, &options}, {LZMA_VLI_UNKNOWN, nullptr}};
  lzma_stream stream = LZMA_STREAM_INIT;
  ASSERT_EQ(lzma_raw_decoder(&stream, filters), LZMA_OK);
  Bytes out(plain.size());
  stream.next_in = compressed->data() + at;
  stream.avail_in = compressed->size() - at;
  stream.next_out = out.data();
  stream.avail_out = out.size();
  EXPECT_EQ(lzma_code(&stream, LZMA_FINISH), LZMA_STREAM_END);
  EXPECT_EQ(stream.avail_in, 0U);
  EXPECT_EQ(stream.total_out, plain.size() - image::kDefaultHeaderLength);
  lzma_end(&stream);
  out.resize(plain.size() - image::kDefaultHeaderLength);
  EXPECT_TRUE(std::equal(out.begin(), out.end(), plain.begin() + image::kDefaultHeaderLength));
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
  // Two streams, each alone: the second starts with its range coder's 0 byte where the first
  // one's liblzma output ends.
  const std::uint16_t h = load_le16(compressed->data() + 6);
  const Bytes first = lzma_compress(std::span(sparse->data() + h, 3 * image::kSectorSize));
  EXPECT_TRUE(std::equal(first.begin(), first.end(), compressed->begin() + h));
  EXPECT_EQ((*compressed)[h + first.size()], 0);
  // A compressed sparse file is read (its streams decoded), then refused as any sparse file is:
  // it is not a whole image.
  try {
    parse_container(*compressed, "sparse.rcb");
    ADD_FAILURE() << "a sparse container was taken as an input";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("sparse container carries only some sectors"),
              std::string::npos)
        << e.what();
  }
}

TEST(Compress, ACompressedFileIsReadAsItsPlainFormAndDamageIsRefused) {
  const Bytes plain = packed(70'000);
  const auto compressed = compress_container(plain);
  ASSERT_TRUE(compressed);
  const Container c = parse_container(*compressed, "app.rcb");
  EXPECT_EQ(c.bytes, plain);
  EXPECT_EQ(c.header.flags & image::kFlagCompressed, 0U);
  // Every byte of the stream's first 64 flipped in turn: refused, or a different payload that
  // fails its CRC; never accepted as the image.
  const std::size_t first = image::kDefaultHeaderLength;
  for (std::size_t i = first; i < first + 64; ++i) {
    Bytes bad = *compressed;
    bad[i] ^= 0x55;
    EXPECT_THROW(parse_container(bad, "bad.rcb"), Error) << "byte " << i;
  }
  Bytes truncated(compressed->begin(), compressed->end() - 1);
  EXPECT_THROW(parse_container(truncated, "short.rcb"), Error);
}

}  // namespace
}  // namespace rtcanboot::host
