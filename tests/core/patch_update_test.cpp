// Patch containers through the whole Bootloader (SDO frames, strict NOR fake): the bytes a
// follower missed (written as 0xFF, docs/fleet-update.md) are programmed without an erase, then
// the whole image is read back before its COMMIT. A patch over bytes that are not 0xFF writes
// nothing more; one whose other bytes are not the header's image is never committed; a bad
// patch record is refused at the header.
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
using canopen::InstallState;
using test::CoreRig;
using test::NorFlashFake;
namespace mm = memory_map;
namespace od = canopen::od;
using Bytes = std::vector<std::uint8_t>;

image::PatchList patch_of(std::initializer_list<image::PatchRun> list) {
  image::PatchList patch;
  for (const image::PatchRun& run : list) patch.runs[patch.count++] = run;
  return patch;
}

class PatchUpdateTest : public ::testing::Test {
 protected:
  void SetUp() override { test::fail_on_violation(flash); }
  void TearDown() override { EXPECT_EQ(rig.bootloader().refused_flash_requests(), 0U); }

  // The application region as a follower leaves it: `image` with the runs of `gaps` read as
  // 0xFF, the rest of the region erased, no COMMIT in the journal.
  void leave_gaps(const Bytes& bytes, const image::PatchList& missed) {
    Bytes region = bytes;
    for (std::uint32_t i = 0; i < missed.count; ++i) {
      std::fill_n(region.begin() + missed.runs[i].offset, missed.runs[i].length, 0xFF);
    }
    flash.load(mm::kAppOffset, region.data(), region.size());
    rig.boot();
    ASSERT_EQ(read(od::kSectorDigests, 4), static_cast<std::uint32_t>(InstallState::kNone));
  }
  std::uint32_t read(std::uint16_t index, std::uint8_t sub) {
    const auto result = rig.sdo_read(index, sub);
    EXPECT_TRUE(result.ok()) << std::hex << index << ":" << int{sub};
    return result.value;
  }
  Bytes region() const {
    const auto begin = flash.contents().begin() + mm::kAppOffset;
    return {begin, begin + 64 * 1024};
  }

  const Bytes payload_ = test::make_payload(5 * image::kSectorSize + 100, 11);
  // A lost segment (7 bytes), one byte, and 300 bytes across a page and a sector boundary.
  const image::PatchList gaps_ = patch_of({{700, 7}, {2 * 4096 + 13, 1}, {3 * 4096 - 150, 300}});
  NorFlashFake flash{test::NorTiming::typical()};
  CoreRig rig{flash, [] {
                BootloaderSettings settings = test::test_settings();
                settings.provisioning.listen_window_ms = 0;
                return settings;
              }()};
};

TEST_F(PatchUpdateTest, ThePatchFillsTheGapsWithoutAnEraseAndTheImageCommits) {
  leave_gaps(payload_, gaps_);
  const std::uint32_t erases_before =
      flash.erases(mm::kSectorSize) + flash.erases(mm::kBlock64Size);
  const Bytes container = test::make_patch_container(payload_, gaps_);
  EXPECT_EQ(container.size(), 104U + 308U);  // header and the 308 bytes of the runs
  ASSERT_TRUE(rig.sdo_download_block(od::kProgramData, 1, container).ok());
  ASSERT_EQ(rig.wait_flash_idle(), 0U);
  EXPECT_EQ(read(od::kFlashStatus, 1), 0U);
  EXPECT_EQ(read(od::kSoftwareId, 1), crc32(0, payload_.data(), payload_.size()));
  EXPECT_EQ(read(od::kSectorDigests, 4), static_cast<std::uint32_t>(InstallState::kCommitted));
  EXPECT_TRUE(std::equal(payload_.begin(), payload_.end(), region().begin()));
  EXPECT_EQ(flash.erases(mm::kSectorSize) + flash.erases(mm::kBlock64Size), erases_before);
  // One page program per piece: the 300-byte run spans two pages (and two sectors).
  EXPECT_EQ(rig.bootloader().writer().stats().pages, 4U);
}

TEST_F(PatchUpdateTest, APatchOverBytesThatAreNotBlankWritesNothingMoreAndIsNotCommitted) {
  Bytes other = payload_;
  other[2 * 4096 + 13] ^= 0x5A;  // this node holds something else where the patch goes
  leave_gaps(other, patch_of({{700, 7}, {3 * 4096 - 150, 300}}));
  const Bytes before = region();
  // Found while the transfer runs (or at its end): the SDO transfer may be aborted.
  rig.sdo_download_block(od::kProgramData, 1, test::make_patch_container(payload_, gaps_));
  rig.wait_flash_idle();
  EXPECT_EQ(read(od::kFlashStatus, 1), canopen::flash_status_word(false, FlashStatus::kWriteError,
                                                                  FlashDetail::kPatchNotBlank));
  EXPECT_EQ(read(od::kSoftwareId, 1), 0U);
  // The first run (into blank bytes) is programmed; nothing after the refused one.
  Bytes expected = before;
  std::copy_n(payload_.begin() + 700, 7, expected.begin() + 700);
  EXPECT_EQ(region(), expected);
}

TEST_F(PatchUpdateTest, APatchWhoseOtherBytesAreNotTheImageIsNeverCommitted) {
  Bytes other = payload_;
  other[4 * 4096] ^= 0x01;  // outside every run
  leave_gaps(other, gaps_);
  ASSERT_TRUE(
      rig.sdo_download_block(od::kProgramData, 1, test::make_patch_container(payload_, gaps_))
          .ok());
  rig.wait_flash_idle();
  EXPECT_EQ(read(od::kFlashStatus, 1), canopen::flash_status_word(false, FlashStatus::kWriteError,
                                                                  FlashDetail::kPatchVerifyFailed));
  EXPECT_EQ(read(od::kSectorDigests, 4), static_cast<std::uint32_t>(InstallState::kNone));
}

TEST_F(PatchUpdateTest, BadPatchRecordsAreRefusedAtTheHeader) {
  leave_gaps(payload_, gaps_);
  const Bytes before = region();
  const image::PatchList bad[] = {
      patch_of({{700, 0}}),                                              // an empty run
      patch_of({{700, 7}, {707, 5}}),                                    // runs touching
      patch_of({{800, 7}, {700, 5}}),                                    // out of order
      patch_of({{static_cast<std::uint32_t>(payload_.size()) - 3, 4}}),  // past the payload_
      patch_of({}),                                                      // no run at all
  };
  for (const image::PatchList& patch : bad) {
    image::Header header = test::header_for(payload_);
    header.header_length = 128;
    Bytes container(128);
    ASSERT_TRUE(image::encode_patch(header, patch, container.data(), container.size()));
    container.resize(128 + (patch.bytes() != 0 ? patch.bytes() : 16), 0xFF);
    const auto result = rig.sdo_download_block(od::kProgramData, 1, container);
    EXPECT_EQ(result.abort, Abort::kCannotStore);
    EXPECT_EQ(
        read(od::kFlashStatus, 1),
        canopen::flash_status_word(false, FlashStatus::kDataFormatError, FlashDetail::kBadPatch));
  }
  // Patch and sparse at once: refused too.
  image::Header both = test::header_for(payload_);
  both.flags = image::kFlagSparse;
  both.header_length = 128;
  Bytes container(128);
  ASSERT_TRUE(image::encode_patch(both, gaps_, container.data(), container.size()));
  container.insert(container.end(), 308, 0);
  EXPECT_EQ(rig.sdo_download_block(od::kProgramData, 1, container).abort, Abort::kCannotStore);
  EXPECT_EQ(region(), before);
}

}  // namespace
}  // namespace rtcanboot
