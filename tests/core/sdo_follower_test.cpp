// SdoFollower: another node's program download, followed from the bus. The lead is the real
// Bootloader in the core rig (its SDO server decides what it accepts); the follower sees every
// frame of the rig's bus, or the frames a test lets through, and must deliver exactly what the
// lead accepted, with gaps where it missed something, in the right places.
#include "rtcanboot/sdo_follower.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <vector>

#include "canopen_fakes.hpp"
#include "core_rig.hpp"
#include "image_builder.hpp"
#include "rtcanboot/canopen_defs.hpp"
#include "strict_flash.hpp"

namespace rtcanboot {
namespace {

namespace od = canopen::od;
using Bytes = std::vector<std::uint8_t>;

// What the follower handed over: each byte, or -1 for a byte reported as a gap.
class RecordingSink final : public FollowSink {
 public:
  void follow_begin(bool size_known, std::uint32_t size) override {
    ++begins;
    announced = size_known ? size : 0;
    bytes.clear();
  }
  void follow_write(const std::uint8_t* data, std::uint32_t length) override {
    bytes.insert(bytes.end(), data, data + length);
  }
  void follow_gap(std::uint32_t length) override { bytes.insert(bytes.end(), length, -1); }
  void follow_end(bool is_complete) override {
    ended = true;
    complete = is_complete;
  }
  void follow_cancel() override { ++cancels; }
  void follow_lost() override { lost = true; }

  int begins = 0;
  int cancels = 0;
  std::uint32_t announced = 0;
  std::vector<int> bytes;
  bool ended = false;
  bool complete = false;
  bool lost = false;
};

class SdoFollowerTest : public ::testing::Test {
 protected:
  SdoFollowerTest() {
    test::fail_on_violation(flash);
    rig.boot();
    SdoFollower::Channel channel;
    channel.request_id = canopen::kSdoRxBase + rig.node_id();
    channel.response_id = canopen::kSdoTxBase + rig.node_id();
    channel.index = od::kProgramData;
    channel.sub = 1;
    follower.follow(channel);
    rig.tap = [this](const CanFrame& frame) {
      ++frames_seen;
      if (drop && drop(frame, frames_seen)) return;
      follower.on_frame(frame);
    };
  }

  // Every byte the follower delivered equals the lead's data; returns how many were gaps.
  std::size_t check_against(const Bytes& data) {
    EXPECT_EQ(sink.bytes.size(), data.size());
    std::size_t gaps = 0;
    for (std::size_t i = 0; i < sink.bytes.size() && i < data.size(); ++i) {
      if (sink.bytes[i] < 0) {
        ++gaps;
      } else if (sink.bytes[i] != data[i]) {
        ADD_FAILURE() << "byte " << i << " differs";
        break;
      }
    }
    return gaps;
  }

  test::NorFlashFake flash{test::NorTiming::typical()};
  test::CoreRig rig{flash, test::test_settings()};
  RecordingSink sink;
  SdoFollower follower{sink};
  std::uint32_t frames_seen = 0;
  // Frames for which this returns true never reach the follower (its own receive overrun).
  std::function<bool(const CanFrame&, std::uint32_t)> drop;
};

bool is_segment_of(const CanFrame& frame, std::uint32_t id) {
  return frame.id == id;
}

TEST_F(SdoFollowerTest, ABlockDownloadIsDeliveredWholeWithItsCrc) {
  const Bytes container = test::make_container(test::make_payload(20'000, 3), 1);
  ASSERT_TRUE(rig.sdo_download_block(od::kProgramData, 1, container).ok());
  EXPECT_EQ(sink.begins, 1);
  EXPECT_EQ(sink.announced, container.size());
  EXPECT_EQ(check_against(container), 0U);
  EXPECT_TRUE(sink.ended);
  EXPECT_TRUE(sink.complete);
  EXPECT_EQ(follower.state(), SdoFollower::State::kDone);
  EXPECT_EQ(follower.guessed_acknowledges(), 0U);
}

TEST_F(SdoFollowerTest, ASegmentedDownloadIsDeliveredWhole) {
  const Bytes container = test::make_container(test::make_payload(3'000, 4), 1);
  ASSERT_TRUE(rig.sdo_download_segmented(od::kProgramData, 1, container).ok());
  EXPECT_EQ(check_against(container), 0U);
  EXPECT_TRUE(sink.ended);
  EXPECT_TRUE(sink.complete);
}

TEST_F(SdoFollowerTest, MissedSegmentsBecomeGapsInTheirPlace) {
  const std::uint32_t request_id = canopen::kSdoRxBase + rig.node_id();
  int segments = 0;
  drop = [&](const CanFrame& frame, std::uint32_t) {
    if (!is_segment_of(frame, request_id)) return false;
    ++segments;
    return segments == 10 || segments == 200 || segments == 201;  // after the initiate
  };
  const Bytes container = test::make_container(test::make_payload(20'000, 5), 1);
  ASSERT_TRUE(rig.sdo_download_block(od::kProgramData, 1, container).ok());
  // Frame 1 is the initiate: the 9th, 199th and 200th segments are missing.
  EXPECT_EQ(check_against(container), 3U * 7U);
  for (const std::size_t segment : {9U, 199U, 200U}) {
    EXPECT_EQ(sink.bytes[(segment - 1) * 7], -1) << segment;
  }
  EXPECT_TRUE(sink.ended);
  EXPECT_FALSE(sink.complete);
}

TEST_F(SdoFollowerTest, AMissedAcknowledgeIsAssumedWholeAndTheRestStaysInPlace) {
  const std::uint32_t response_id = canopen::kSdoTxBase + rig.node_id();
  int acks = 0;
  drop = [&](const CanFrame& frame, std::uint32_t) {
    if (frame.id != response_id || frame.data[0] != 0xA2) return false;
    return ++acks == 2;
  };
  const Bytes container = test::make_container(test::make_payload(20'000, 6), 1);
  ASSERT_TRUE(rig.sdo_download_block(od::kProgramData, 1, container).ok());
  EXPECT_EQ(follower.guessed_acknowledges(), 1U);
  EXPECT_EQ(check_against(container), 0U);  // the lead took the whole sub-block, as guessed
  EXPECT_TRUE(sink.ended);
}

TEST_F(SdoFollowerTest, AMissedEndFrameUsesTheAnnouncedSize) {
  const std::uint32_t request_id = canopen::kSdoRxBase + rig.node_id();
  drop = [&](const CanFrame& frame, std::uint32_t) {
    return frame.id == request_id && follower.state() == SdoFollower::State::kBlockEnd;
  };
  // 20,003 bytes: the last segment carries fewer than 7.
  const Bytes container = test::make_container(test::make_payload(19'876, 7), 1);
  ASSERT_NE(container.size() % 7, 0U);
  ASSERT_TRUE(rig.sdo_download_block(od::kProgramData, 1, container).ok());
  EXPECT_EQ(check_against(container), 0U);
  EXPECT_TRUE(sink.ended);
  EXPECT_FALSE(sink.complete);  // the block CRC could not be compared
}

TEST_F(SdoFollowerTest, TheLeadsAbortCancelsAndTheNextInitiateIsFollowed) {
  Bytes wrong = test::make_container(test::make_payload(20'000, 8), 1);
  wrong[20] ^= 0xFF;  // the header no longer checks out: the lead aborts
  EXPECT_FALSE(rig.sdo_download_block(od::kProgramData, 1, wrong).ok());
  EXPECT_EQ(sink.cancels, 1);
  EXPECT_EQ(follower.state(), SdoFollower::State::kWaiting);
  rig.run_for(100'000);
  const Bytes container = test::make_container(test::make_payload(9'000, 9), 1);
  ASSERT_TRUE(rig.sdo_download_block(od::kProgramData, 1, container).ok());
  EXPECT_EQ(sink.begins, 2);
  EXPECT_EQ(check_against(container), 0U);
  EXPECT_TRUE(sink.complete);
}

TEST_F(SdoFollowerTest, OtherObjectsAndOtherNodesAreIgnored) {
  ASSERT_TRUE(rig.sdo_write(od::kProgramControl, 1, 0, 1).ok());
  Bytes out;
  ASSERT_TRUE(rig.sdo_upload(0x1018, 1, out).ok());
  EXPECT_EQ(sink.begins, 0);
  CanFrame other = test::make_frame(canopen::kSdoRxBase + rig.node_id() + 1,
                                    {0xC6, 0x50, 0x1F, 0x01, 0x10, 0, 0, 0});
  follower.on_frame(other);
  EXPECT_EQ(follower.state(), SdoFollower::State::kWaiting);
}

// A lead that lost segments itself acknowledges fewer than were sent; the client sends the rest
// again in the next sub-block (hand-made frames: the rig's lead never loses any).
TEST(SdoFollowerFrames, APartialAcknowledgeTakesOnlyWhatTheLeadTook) {
  RecordingSink sink;
  SdoFollower follower(sink);
  follower.follow({0x605, 0x585, 0x1F50, 1});
  const auto frame = [](std::uint32_t id, test::Bytes8 data) { return test::make_frame(id, data); };
  follower.on_frame(frame(0x605, {0xC6, 0x50, 0x1F, 0x01, 35, 0, 0, 0}));  // 35 bytes, CRC
  follower.on_frame(frame(0x585, {0xA4, 0x50, 0x1F, 0x01, 4, 0, 0, 0}));   // blksize 4
  for (std::uint8_t seq = 1; seq <= 4; ++seq) {
    const std::uint8_t v = static_cast<std::uint8_t>(seq * 10);
    follower.on_frame(frame(0x605, {seq, v, v, v, v, v, v, v}));
  }
  follower.on_frame(frame(0x585, {0xA2, 2, 4, 0, 0, 0, 0, 0}));  // took 1 and 2 only
  // Sub-block 2: the client resends what were segments 3 and 4, then the last one (c set).
  follower.on_frame(frame(0x605, {1, 30, 30, 30, 30, 30, 30, 30}));
  follower.on_frame(frame(0x605, {2, 40, 40, 40, 40, 40, 40, 40}));
  follower.on_frame(frame(0x605, {0x83, 50, 50, 50, 50, 50, 50, 50}));
  follower.on_frame(frame(0x585, {0xA2, 3, 4, 0, 0, 0, 0, 0}));
  EXPECT_EQ(follower.state(), SdoFollower::State::kBlockEnd);
  follower.on_frame(frame(0x605, {0xC1, 0x00, 0x00, 0, 0, 0, 0, 0}));  // n = 0, CRC 0 (wrong)
  follower.on_frame(frame(0x585, {0xA1, 0, 0, 0, 0, 0, 0, 0}));
  std::vector<int> expected;
  for (const int v : {10, 20, 30, 40, 50}) expected.insert(expected.end(), 7, v);
  EXPECT_EQ(sink.bytes, expected);
  EXPECT_TRUE(sink.ended);
  EXPECT_FALSE(sink.complete);  // the CRC in the end frame does not match
}

}  // namespace
}  // namespace rtcanboot
