// Listen-along download (0x5F04) between two real bootloaders: the master downloads to the lead
// (node 5) in one core rig; every frame of that bus also reaches the follower (node 6, its own
// flash), unless a test drops it at the follower. The follower must write the same image, never
// transmit meanwhile, and leave what it missed for a sparse repair.
#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <vector>

#include "core_rig.hpp"
#include "image_builder.hpp"
#include "rtcanboot/bootloader.hpp"
#include "rtcanboot/bytes.hpp"
#include "rtcanboot/canopen_defs.hpp"
#include "rtcanboot/hash.hpp"
#include "rtcanboot/memory_map.hpp"
#include "strict_flash.hpp"

namespace rtcanboot {
namespace {

using canopen::Abort;
using canopen::FlashDetail;
using canopen::FlashStatus;
using canopen::ListenAlongState;
namespace od = canopen::od;
namespace mm = memory_map;
using Bytes = std::vector<std::uint8_t>;

class ListenAlongTest : public ::testing::Test {
 protected:
  ListenAlongTest() {
    test::fail_on_violation(lead_flash);
    test::fail_on_violation(follower_flash);
    lead.boot();
    follower.boot();
    lead.tap = [this](const CanFrame& frame) {
      if (drop && drop(frame)) return;
      follower.run_until(lead.now());
      follower.bootloader().on_frame(frame, follower.now());
    };
  }

  Abort arm(std::uint32_t expected_crc) {
    EXPECT_TRUE(follower.sdo_write(od::kListenAlong, 1, canopen::kSdoRxBase + 5, 4).ok());
    EXPECT_TRUE(follower.sdo_write(od::kListenAlong, 2, canopen::kSdoTxBase + 5, 4).ok());
    EXPECT_TRUE(follower.sdo_write(od::kListenAlong, 3, expected_crc, 4).ok());
    return follower.sdo_write(od::kListenAlong, 4, 1, 1).abort;
  }
  std::uint32_t follower_read(std::uint16_t index, std::uint8_t sub) {
    const auto result = follower.sdo_read(index, sub);
    EXPECT_TRUE(result.ok()) << std::hex << index << " abort "
                             << static_cast<std::uint32_t>(result.abort);
    return result.value;
  }
  ListenAlongState follower_state() {
    return static_cast<ListenAlongState>(follower_read(od::kListenAlong, 4));
  }
  // Runs the follower on until its flash work is done (it answers nothing meanwhile).
  std::uint32_t follower_settles() {
    follower.run_for(3'000'000);
    const auto status = follower.wait_flash_idle();
    EXPECT_TRUE(status.has_value());
    return status.value_or(~0U);
  }
  bool follower_holds(const Bytes& payload) {
    return std::equal(payload.begin(), payload.end(),
                      follower_flash.contents().begin() + mm::kAppOffset);
  }

  test::NorFlashFake lead_flash{test::NorTiming::typical()};
  test::NorFlashFake follower_flash{test::NorTiming::typical()};
  test::CoreRig lead{lead_flash, test::test_settings(5)};
  test::CoreRig follower{follower_flash, test::test_settings(6)};
  std::function<bool(const CanFrame&)> drop;
};

TEST_F(ListenAlongTest, TheFollowerWritesAndCommitsTheLeadsImageWithoutSendingAFrame) {
  const Bytes payload = test::make_payload(150'000, 1);
  const Bytes container = test::make_container(payload, 3);
  const std::uint32_t crc = crc32(0, payload.data(), payload.size());
  ASSERT_EQ(arm(crc), Abort::kNone);
  EXPECT_EQ(follower_state(), ListenAlongState::kWaiting);
  // A heartbeat every 20 ms, which must stop while the lead's download streams.
  ASSERT_TRUE(follower.sdo_write(od::kProducerHeartbeat, 0, 20, 2).ok());
  follower.run_for(100'000);
  const std::size_t frames_before = follower.history().size();
  ASSERT_TRUE(lead.sdo_download_block(od::kProgramData, 1, container).ok());
  EXPECT_EQ(follower.history().size(), frames_before) << "the follower sent during the stream";
  EXPECT_EQ(follower_settles(), 0U);
  EXPECT_EQ(follower_state(), ListenAlongState::kComplete);
  EXPECT_EQ(follower_read(od::kListenAlong, 5), 0U);
  EXPECT_EQ(follower_read(od::kSoftwareId, 1), crc);
  EXPECT_EQ(follower_read(od::kProgramControl, 1), 0U);  // a valid program, stopped
  EXPECT_TRUE(follower_holds(payload));
  ASSERT_EQ(lead.wait_flash_idle(), 0U);
  // The heartbeat is back.
  const std::size_t after = follower.history().size();
  follower.run_for(100'000);
  EXPECT_GT(follower.history().size(), after);
}

TEST_F(ListenAlongTest, MissedFramesAreProgrammedAroundAndRepairedBySectors) {
  const Bytes payload = test::make_payload(150'000, 2);
  const std::uint32_t crc = crc32(0, payload.data(), payload.size());
  ASSERT_EQ(arm(crc), Abort::kNone);
  int segments = 0;
  drop = [&](const CanFrame& frame) {
    if (frame.id != canopen::kSdoRxBase + 5) return false;
    ++segments;
    return segments == 3'000 || segments == 12'000;  // two segments deep in the payload
  };
  ASSERT_TRUE(lead.sdo_download_block(od::kProgramData, 1, test::make_container(payload, 3)).ok());
  EXPECT_EQ(follower_settles(), canopen::flash_status_word(false, FlashStatus::kDataFormatError,
                                                           FlashDetail::kIncompleteStream));
  EXPECT_EQ(follower_state(), ListenAlongState::kGaps);
  EXPECT_EQ(follower_read(od::kListenAlong, 5), 14U);
  EXPECT_EQ(follower_read(od::kProgramControl, 1), 3U);  // nothing committed
  // Everything but the two gaps is on the flash: the repair is those two sectors.
  const image::ExtentList differing =
      test::differing_sectors(payload, follower_flash.contents().data() + mm::kAppOffset);
  ASSERT_EQ(differing.count, 2U);
  EXPECT_EQ(differing.runs[0].sector_count + differing.runs[1].sector_count, 2U);
  ASSERT_TRUE(follower
                  .sdo_download_block(od::kProgramData, 1,
                                      test::make_sparse_container(payload, differing, 3))
                  .ok());
  EXPECT_EQ(follower.wait_flash_idle(), 0U);
  EXPECT_EQ(follower_read(od::kSoftwareId, 1), crc);
  EXPECT_TRUE(follower_holds(payload));
}

// The same gaps, listed in 0x5F04:6 (offsets in the followed container) and repaired with a
// patch container of exactly those bytes: no erase, 14 bytes sent instead of two sectors.
TEST_F(ListenAlongTest, MissedFramesAreListedAndRepairedByAPatchWithoutAnErase) {
  const Bytes payload = test::make_payload(150'000, 2);
  const std::uint32_t crc = crc32(0, payload.data(), payload.size());
  ASSERT_EQ(arm(crc), Abort::kNone);
  int segments = 0;
  drop = [&](const CanFrame& frame) {
    if (frame.id != canopen::kSdoRxBase + 5) return false;
    ++segments;
    return segments == 3'000 || segments == 3'001 || segments == 12'000;
  };
  const Bytes container = test::make_container(payload, 3);
  ASSERT_TRUE(lead.sdo_download_block(od::kProgramData, 1, container).ok());
  follower_settles();
  ASSERT_EQ(follower_state(), ListenAlongState::kGaps);
  EXPECT_EQ(follower_read(od::kListenAlong, 5), 21U);
  Bytes list;
  ASSERT_TRUE(follower.sdo_upload(od::kListenAlong, 6, list).ok());
  ASSERT_EQ(list.size(), 16U) << "two runs: the two neighbouring segments are one";
  image::PatchList gaps;
  const std::uint32_t header = load_le16(container.data() + 6);
  for (std::size_t at = 0; at < list.size(); at += 8) {
    gaps.runs[gaps.count].offset = load_le32(list.data() + at) - header;
    gaps.runs[gaps.count].length = load_le32(list.data() + at + 4);
    ++gaps.count;
  }
  EXPECT_EQ(gaps.runs[0].length, 14U);
  EXPECT_EQ(gaps.runs[1].length, 7U);
  for (std::uint32_t i = 0; i < gaps.count; ++i) {  // exactly the bytes that differ
    for (std::uint32_t b = 0; b < gaps.runs[i].length; ++b) {
      EXPECT_EQ(follower_flash.contents()[mm::kAppOffset + gaps.runs[i].offset + b], 0xFF);
    }
  }
  const std::uint32_t erases =
      follower_flash.erases(mm::kSectorSize) + follower_flash.erases(mm::kBlock64Size);
  ASSERT_TRUE(
      follower.sdo_download_block(od::kProgramData, 1, test::make_patch_container(payload, gaps, 3))
          .ok());
  EXPECT_EQ(follower.wait_flash_idle(), 0U);
  EXPECT_EQ(follower_read(od::kSoftwareId, 1), crc);
  EXPECT_TRUE(follower_holds(payload));
  EXPECT_EQ(follower_flash.erases(mm::kSectorSize) + follower_flash.erases(mm::kBlock64Size),
            erases);
  // A new follow forgets the list.
  ASSERT_TRUE(follower.sdo_write(od::kListenAlong, 4, 0, 1).ok());
  ASSERT_EQ(arm(crc), Abort::kNone);
  ASSERT_TRUE(follower.sdo_upload(od::kListenAlong, 6, list).ok());
  EXPECT_TRUE(list.empty());
}

TEST_F(ListenAlongTest, AnotherImageThanAnnouncedIsRefusedBeforeAnythingIsWritten) {
  const Bytes installed = test::make_payload(20'000, 3);
  ASSERT_TRUE(
      follower.sdo_download_block(od::kProgramData, 1, test::make_container(installed, 1)).ok());
  ASSERT_EQ(follower.wait_flash_idle(), 0U);
  ASSERT_EQ(arm(0x1234'5678), Abort::kNone);
  const Bytes payload = test::make_payload(40'000, 4);
  ASSERT_TRUE(lead.sdo_download_block(od::kProgramData, 1, test::make_container(payload, 2)).ok());
  EXPECT_EQ(follower_settles(), canopen::flash_status_word(false, FlashStatus::kDataFormatError,
                                                           FlashDetail::kNotTheExpectedImage));
  EXPECT_EQ(follower_state(), ListenAlongState::kRefused);
  EXPECT_EQ(follower_read(od::kSoftwareId, 1), crc32(0, installed.data(), installed.size()));
  EXPECT_EQ(follower_read(od::kProgramControl, 1), 0U);
  EXPECT_TRUE(follower_holds(installed));
}

TEST_F(ListenAlongTest, TheLeadsRefusalCancelsAndTheNextDownloadIsFollowed) {
  ASSERT_EQ(arm(0), Abort::kNone);
  Bytes wrong = test::make_container(test::make_payload(20'000, 5), 1);
  wrong[20] ^= 0xFF;
  EXPECT_FALSE(lead.sdo_download_block(od::kProgramData, 1, wrong).ok());
  lead.run_for(300'000);
  follower.run_until(lead.now());
  EXPECT_EQ(follower_state(), ListenAlongState::kWaiting);
  const Bytes payload = test::make_payload(30'000, 6);
  ASSERT_TRUE(lead.sdo_download_block(od::kProgramData, 1, test::make_container(payload, 2)).ok());
  EXPECT_EQ(follower_settles(), 0U);
  EXPECT_EQ(follower_state(), ListenAlongState::kComplete);
  EXPECT_TRUE(follower_holds(payload));
}

TEST_F(ListenAlongTest, SettingsAreCheckedAndFrozenWhileFollowing) {
  EXPECT_EQ(follower.sdo_write(od::kListenAlong, 4, 1, 1).abort, Abort::kDeviceState);  // no IDs
  EXPECT_EQ(follower.sdo_write(od::kListenAlong, 1, 0x800, 4).abort, Abort::kValueRange);
  EXPECT_EQ(follower.sdo_write(od::kListenAlong, 1, 0, 4).abort, Abort::kValueRange);
  EXPECT_EQ(follower.sdo_write(od::kListenAlong, 4, 2, 1).abort, Abort::kValueRange);
  ASSERT_EQ(arm(0), Abort::kNone);
  EXPECT_EQ(follower.sdo_write(od::kListenAlong, 3, 7, 4).abort, Abort::kDeviceState);
  EXPECT_EQ(follower_read(od::kListenAlong, 1), canopen::kSdoRxBase + 5);
  EXPECT_EQ(follower.sdo_write(od::kListenAlong, 4, 0, 1).abort, Abort::kNone);
  EXPECT_EQ(follower_state(), ListenAlongState::kOff);
  EXPECT_EQ(follower.sdo_write(od::kListenAlong, 3, 7, 4).abort, Abort::kNone);
}

}  // namespace
}  // namespace rtcanboot
