// Compressed containers through the whole Bootloader (SDO block download, strict NOR fake):
// plain and sparse containers whose extents travel as raw LZMA1 streams install the same image a
// plain container does; a corrupt, truncated or hostile stream is refused with abort 0x0800_0020
// and 0x1F57 detail kBadCompressedStream, never writing outside the image or overrunning a buffer
// (ASan); a ring smaller than a sector and the slowest flash keep the flow control honest.
#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "core_rig.hpp"
#include "image_builder.hpp"
#include "rtcanboot/bootloader.hpp"
#include "rtcanboot/bytes.hpp"
#include "rtcanboot/hash.hpp"
#include "rtcanboot/memory_map.hpp"
#include "strict_flash.hpp"

namespace rtcanboot {
namespace {

using canopen::Abort;
using canopen::FlashDetail;
using canopen::FlashStatus;
using test::CoreRig;
using test::NorFlashFake;
namespace mm = memory_map;
namespace od = canopen::od;
using Bytes = std::vector<std::uint8_t>;

constexpr std::uint32_t kSector = image::kSectorSize;

// A payload with a sane vector table whose sectors alternate between compressible (long runs)
// and incompressible (pseudo-random) content.
Bytes compressible_payload(std::uint32_t length, std::uint32_t seed) {
  Bytes payload = test::make_payload(length, seed);
  for (std::uint32_t i = 64; i < length; ++i) {
    if ((i / kSector) % 3 != 1) payload[i] = static_cast<std::uint8_t>((i / 700) * 17);
  }
  return payload;
}

BootloaderSettings settings() {
  BootloaderSettings s = test::test_settings();
  s.provisioning.listen_window_ms = 0;
  return s;
}

class CompressedUpdateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    test::fail_on_violation(flash);
    rig.boot();
  }
  void TearDown() override { EXPECT_EQ(rig.bootloader().refused_flash_requests(), 0U); }

  std::uint32_t read(std::uint16_t index, std::uint8_t sub) {
    const auto result = rig.sdo_read(index, sub);
    EXPECT_TRUE(result.ok());
    return result.value;
  }
  void download(const Bytes& container) {
    const auto result = rig.sdo_download_block(od::kProgramData, 1, container);
    ASSERT_TRUE(result.ok()) << std::hex << static_cast<std::uint32_t>(result.abort);
  }
  void install(const Bytes& payload) {
    download(test::make_container(payload));
    ASSERT_EQ(rig.wait_flash_idle(), 0U);
  }
  bool image_in_flash(const Bytes& payload) const {
    return std::equal(payload.begin(), payload.end(), flash.contents().begin() + mm::kAppOffset);
  }
  std::uint32_t erases() const {
    return flash.erases(mm::kSectorSize) + flash.erases(mm::kBlock64Size);
  }
  // 0x1F57 must say bad compressed stream after a refused download.
  void expect_refused(const Bytes& container) {
    const auto result = rig.sdo_download_block(od::kProgramData, 1, container);
    EXPECT_EQ(result.abort, Abort::kCannotStore);
    EXPECT_EQ(rig.wait_flash_idle(),
              canopen::flash_status_word(false, FlashStatus::kDataFormatError,
                                         FlashDetail::kBadCompressedStream));
  }

  NorFlashFake flash{test::NorTiming::typical()};
  CoreRig rig{flash, settings()};
};

TEST_F(CompressedUpdateTest, ACompressedContainerInstallsTheSameImage) {
  const Bytes payload = compressible_payload(40 * kSector + 300, 3);
  const Bytes plain = test::make_container(payload, 7);
  const Bytes compressed = test::compress_container(plain);
  EXPECT_LT(compressed.size(), plain.size() * 2 / 3);
  download(compressed);
  ASSERT_EQ(rig.wait_flash_idle(), 0U);
  EXPECT_TRUE(image_in_flash(payload));
  EXPECT_TRUE(rig.bootloader().installed().valid);
  EXPECT_EQ(read(od::kSoftwareId, 1), crc32(0, payload.data(), payload.size()));
  EXPECT_EQ(read(od::kRtcanbootInfo, 6), 7U);
  EXPECT_LT(rig.max_response_delay(), 100'000);
}

TEST_F(CompressedUpdateTest, ACompressedSparseContainerWritesOnlyItsSectors) {
  const Bytes old_payload = compressible_payload(30 * kSector, 4);
  install(old_payload);
  Bytes new_payload = old_payload;
  new_payload[12 * kSector + 9] ^= 0x40;
  new_payload[29 * kSector + 4000] ^= 0x40;
  const std::uint32_t programs = flash.programs();
  const std::uint32_t erased = erases();
  download(test::compress_container(
      test::make_sparse_container(new_payload, test::runs({{12, 1}, {29, 1}}), 2)));
  ASSERT_EQ(rig.wait_flash_idle(), 0U);
  EXPECT_EQ(erases() - erased, 2U);
  EXPECT_EQ(flash.programs() - programs, 2 * kSector / mm::kPageSize + 2);
  EXPECT_TRUE(image_in_flash(new_payload));
  EXPECT_EQ(read(od::kSoftwareId, 1), crc32(0, new_payload.data(), new_payload.size()));
}

TEST_F(CompressedUpdateTest, ABadRangeCoderInitByteIsRefusedBeforeAnythingIsWritten) {
  const Bytes payload = compressible_payload(10 * kSector, 5);
  install(payload);
  const std::uint32_t ops = flash.mutating_ops();
  Bytes container =
      test::compress_container(test::make_container(compressible_payload(10 * kSector, 6)));
  container[image::kDefaultHeaderLength] = 0x01;
  expect_refused(container);
  EXPECT_EQ(flash.mutating_ops(), ops);
  EXPECT_TRUE(rig.bootloader().installed().valid);
  EXPECT_EQ(read(od::kSoftwareId, 1), crc32(0, payload.data(), payload.size()));
}

// The header's CRC-32 and SHA-256 of a compressed container, and its stream made of `stream`.
Bytes with_stream(const Bytes& payload, const Bytes& stream) {
  Bytes container = test::compress_container(test::make_container(payload));
  container.resize(image::kDefaultHeaderLength);
  container.insert(container.end(), stream.begin(), stream.end());
  return container;
}

TEST_F(CompressedUpdateTest, AReferenceBeforeTheStreamStartIsRefusedAndNothingIsWrittenOutside) {
  const Bytes payload = compressible_payload(20 * kSector, 6);
  // liblzma with a preset dictionary of the payload's first 8 KiB: its first match reaches
  // before the stream.
  const Bytes preset(payload.begin(), payload.begin() + 2 * kSector);
  expect_refused(
      with_stream(payload, test::lzma_stream(payload.data(), payload.size(), 32 * 1024, &preset)));
  // Nothing beyond the image's sectors was touched (the strict fake reports violations; the
  // region after the image is still blank).
  EXPECT_TRUE(std::all_of(flash.contents().begin() + mm::kAppOffset + 20 * kSector,
                          flash.contents().begin() + mm::kAppOffset + 64 * kSector,
                          [](std::uint8_t b) { return b == 0xFF; }));
  EXPECT_FALSE(rig.bootloader().installed().valid);
}

TEST_F(CompressedUpdateTest, AStreamLongerThanTheImageNeverWritesPastIt) {
  // The stream holds 3 sectors more than the header's payload length.
  const Bytes payload = compressible_payload(20 * kSector, 7);
  Bytes longer = payload;
  longer.resize(23 * kSector, 0x00);
  expect_refused(with_stream(payload, test::lzma_stream(longer.data(), longer.size())));
  EXPECT_TRUE(std::all_of(flash.contents().begin() + mm::kAppOffset + 20 * kSector,
                          flash.contents().begin() + mm::kAppOffset + 64 * kSector,
                          [](std::uint8_t b) { return b == 0xFF; }));
  // One byte short: the end marker comes early.
  expect_refused(with_stream(payload, test::lzma_stream(payload.data(), payload.size() - 1)));
}

TEST_F(CompressedUpdateTest, TruncatedTrailingAndMissizedStreamsAreRefused) {
  const Bytes payload = compressible_payload(8 * kSector + 10, 7);
  const Bytes good = test::compress_container(test::make_container(payload));
  // The last byte missing (the announced size is the shorter one: the SDO transfer itself is
  // complete).
  expect_refused(Bytes(good.begin(), good.end() - 1));
  Bytes trailing = good;
  trailing.push_back(0);
  expect_refused(trailing);
  // Fewer bytes than the range coder's start cannot be a stream: refused at the header.
  const Bytes header_only(good.begin(), good.begin() + image::kDefaultHeaderLength + 4);
  const auto result = rig.sdo_download_block(od::kProgramData, 1, header_only);
  EXPECT_EQ(result.abort, Abort::kTypeMismatch);
  EXPECT_EQ(rig.wait_flash_idle(), canopen::flash_status_word(false, FlashStatus::kDataFormatError,
                                                              FlashDetail::kLengthMismatch));
  download(good);
  ASSERT_EQ(rig.wait_flash_idle(), 0U);
  EXPECT_TRUE(image_in_flash(payload));
}

// A stream that follows every rule but decodes to other bytes than the header's: 0x1F57 says
// bad compressed stream (its own code), not verify failed, and nothing is committed.
TEST_F(CompressedUpdateTest, AStreamOfAnotherImageIsReportedAsABadCompressedStream) {
  const Bytes payload = compressible_payload(6 * kSector, 9);
  Bytes other = payload;
  other[3 * kSector + 5] ^= 0x10;
  const auto result = rig.sdo_download_block(
      od::kProgramData, 1, with_stream(payload, test::lzma_stream(other.data(), other.size())));
  EXPECT_TRUE(result.ok());  // the transfer itself was fine
  EXPECT_EQ(rig.wait_flash_idle(), canopen::flash_status_word(false, FlashStatus::kDataFormatError,
                                                              FlashDetail::kBadCompressedStream));
  EXPECT_FALSE(rig.bootloader().installed().valid);
}

TEST_F(CompressedUpdateTest, ADecompressedBadVectorTableIsRefused) {
  Bytes payload = compressible_payload(4 * kSector, 8);
  payload[4] &= 0xFE;  // reset handler without the Thumb bit
  const auto result = rig.sdo_download_block(
      od::kProgramData, 1, test::compress_container(test::make_container(payload)));
  EXPECT_EQ(result.abort, Abort::kCannotStore);
  EXPECT_EQ(rig.wait_flash_idle(), canopen::flash_status_word(false, FlashStatus::kDataFormatError,
                                                              FlashDetail::kBadVectorTable));
}

// The slowest flash and a ring of two pages: the decompressed bytes wait in the decoder's window
// and its input fills; every answer still comes in time and the image arrives whole.
TEST(CompressedFlowControl, ASmallRingAndMaximumTimingKeepUp) {
  NorFlashFake flash{test::NorTiming::maximum()};
  test::fail_on_violation(flash);
  CoreRig rig{flash, settings(), FlashWriter::kMinRingSize};
  rig.boot();
  Bytes payload = test::make_payload(24 * kSector, 9);
  std::fill(payload.begin() + 64, payload.end(), 0x00);  // 4 KiB from a handful of bytes
  const Bytes container = test::compress_container(test::make_container(payload));
  EXPECT_LT(container.size(), 24U * 40U + 300U);
  const auto result = rig.sdo_download_block(od::kProgramData, 1, container);
  ASSERT_TRUE(result.ok()) << std::hex << static_cast<std::uint32_t>(result.abort);
  ASSERT_EQ(rig.wait_flash_idle(), 0U);
  EXPECT_TRUE(
      std::equal(payload.begin(), payload.end(), flash.contents().begin() + mm::kAppOffset));
  EXPECT_TRUE(rig.bootloader().installed().valid);
}

}  // namespace
}  // namespace rtcanboot
