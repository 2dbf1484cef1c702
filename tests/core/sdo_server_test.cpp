// SDO server of CanopenNode: expedited, segmented and block transfers in both directions, every
// protocol abort, flow control towards the download sink, timeouts and recovery.
#include <random>

#include "canopen_node_fixture.hpp"

namespace rtcanboot::test {
namespace {

using canopen::Abort;

class SdoServerTest : public CanopenNodeTest {
 protected:
  // Heartbeats would interleave with the SDO responses these tests check.
  void SetUp() override {
    config.heartbeat_ms = 0;
    restart();
  }
  FakeDownloadSink& sink() { return program.sink; }

  // Initiates a block download of `size` bytes to 0x1F50:1; returns the announced block size.
  std::uint8_t initiate_block_download(std::uint32_t size, bool crc = true) {
    sdo({static_cast<std::uint8_t>(0xC2 | (crc ? 4 : 0)), 0x50, 0x1F, 0x01, byte(size, 0),
         byte(size, 1), byte(size, 2), byte(size, 3)});
    const Bytes8 response = payload(next_response());
    EXPECT_EQ(response, (Bytes8{0xA4, 0x50, 0x1F, 0x01, response[4], 0, 0, 0}));
    return response[4];
  }
  void initiate_segmented_download(std::uint32_t size) {
    sdo({0x21, 0x50, 0x1F, 0x01, byte(size, 0), byte(size, 1), byte(size, 2), byte(size, 3)});
  }
  void expect_ack(std::uint8_t sequence, std::uint8_t block_size) {
    expect_response({0xA2, sequence, block_size, 0, 0, 0, 0, 0});
  }
};

// --- expedited and segmented download to the DOMAIN ---------------------------------------------

TEST_F(SdoServerTest, ExpeditedDownloadToDomain) {
  sdo({0x2B, 0x50, 0x1F, 0x01, 0xAB, 0xCD, 0xEE, 0xEE});
  expect_response({0x60, 0x50, 0x1F, 0x01, 0, 0, 0, 0});
  EXPECT_EQ(sink().begin_calls, 1);
  EXPECT_TRUE(sink().begin_size_known);
  EXPECT_EQ(sink().begin_size, 2U);
  EXPECT_EQ(sink().data, (std::vector<std::uint8_t>{0xAB, 0xCD}));
  EXPECT_EQ(sink().end_calls, 1);
  EXPECT_EQ(sink().cancel_calls, 0);
  EXPECT_FALSE(node->transfer_active());
}

TEST_F(SdoServerTest, SegmentedDownloadExactBytes) {
  initiate_segmented_download(10);
  expect_response({0x60, 0x50, 0x1F, 0x01, 0, 0, 0, 0});
  EXPECT_TRUE(node->transfer_active());
  EXPECT_EQ(sink().begin_size, 10U);
  sdo({0x00, 1, 2, 3, 4, 5, 6, 7});
  expect_response({0x20, 0, 0, 0, 0, 0, 0, 0});
  EXPECT_EQ(sink().data.size(), 7U);  // streamed, not buffered
  sdo({0x19, 8, 9, 10, 0, 0, 0, 0});  // toggle 1, 4 unused bytes, last
  expect_response({0x30, 0, 0, 0, 0, 0, 0, 0});
  EXPECT_EQ(sink().data, (std::vector<std::uint8_t>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}));
  EXPECT_EQ(sink().end_calls, 1);
  EXPECT_FALSE(node->transfer_active());
}

TEST_F(SdoServerTest, SegmentedDownloadLarge) {
  const auto data = pattern(5000);
  download_segmented(0x1F50, 1, data);
  EXPECT_EQ(sink().data, data);
  EXPECT_EQ(sink().end_calls, 1);
}

TEST_F(SdoServerTest, SegmentedDownloadWithoutSize) {
  sdo({0x20, 0x50, 0x1F, 0x01, 0, 0, 0, 0});
  expect_response({0x60, 0x50, 0x1F, 0x01, 0, 0, 0, 0});
  EXPECT_FALSE(sink().begin_size_known);
  sdo({0x0B, 1, 2, 0, 0, 0, 0, 0});  // 5 unused, last
  expect_response({0x20, 0, 0, 0, 0, 0, 0, 0});
  EXPECT_EQ(sink().data, (std::vector<std::uint8_t>{1, 2}));
}

TEST_F(SdoServerTest, SegmentedDownloadToggleError) {
  initiate_segmented_download(20);
  expect_response({0x60, 0x50, 0x1F, 0x01, 0, 0, 0, 0});
  sdo({0x10, 1, 2, 3, 4, 5, 6, 7});  // first toggle must be 0
  expect_abort(0x1F50, 1, Abort::kToggleBit);
  EXPECT_EQ(sink().cancel_calls, 1);
  EXPECT_EQ(sink().cancel_reason, Abort::kToggleBit);
  expect_recovers();
}

TEST_F(SdoServerTest, SegmentedDownloadRepeatedToggleIsAnError) {
  initiate_segmented_download(20);
  expect_response({0x60, 0x50, 0x1F, 0x01, 0, 0, 0, 0});
  sdo({0x00, 1, 2, 3, 4, 5, 6, 7});
  expect_response({0x20, 0, 0, 0, 0, 0, 0, 0});
  sdo({0x00, 1, 2, 3, 4, 5, 6, 7});
  expect_abort(0x1F50, 1, Abort::kToggleBit);
  expect_recovers();
}

TEST_F(SdoServerTest, SegmentedDownloadMoreThanAnnounced) {
  initiate_segmented_download(8);
  expect_response({0x60, 0x50, 0x1F, 0x01, 0, 0, 0, 0});
  sdo({0x00, 1, 2, 3, 4, 5, 6, 7});
  expect_response({0x20, 0, 0, 0, 0, 0, 0, 0});
  sdo({0x15, 8, 9, 0, 0, 0, 0, 0});  // 2 bytes: 9 > 8
  expect_abort(0x1F50, 1, Abort::kLengthTooHigh);
  EXPECT_EQ(sink().data.size(), 7U);
  EXPECT_EQ(sink().cancel_calls, 1);
  EXPECT_EQ(sink().end_calls, 0);
  expect_recovers();
}

TEST_F(SdoServerTest, SegmentedDownloadLessThanAnnounced) {
  initiate_segmented_download(9);
  expect_response({0x60, 0x50, 0x1F, 0x01, 0, 0, 0, 0});
  sdo({0x01, 1, 2, 3, 4, 5, 6, 7});  // last after 7 bytes
  expect_abort(0x1F50, 1, Abort::kLengthTooLow);
  EXPECT_EQ(sink().end_calls, 0);
  EXPECT_EQ(sink().cancel_calls, 1);
  expect_recovers();
}

TEST_F(SdoServerTest, DownloadSegmentWithoutTransfer) {
  sdo({0x00, 1, 2, 3, 4, 5, 6, 7});
  expect_abort(0, 0, Abort::kCommandSpecifier);
  sdo({0x60, 0, 0, 0, 0, 0, 0, 0});  // upload segment
  expect_abort(0, 0, Abort::kCommandSpecifier);
  expect_recovers();
}

TEST_F(SdoServerTest, UnknownCommandSpecifier) {
  sdo({0xE0, 0x00, 0x10, 0x00, 0, 0, 0, 0});
  expect_abort(0x1000, 0, Abort::kCommandSpecifier);
  sdo({0xC1, 0x00, 0x10, 0x00, 0, 0, 0, 0});  // block download end without a transfer
  expect_abort(0x1000, 0, Abort::kCommandSpecifier);
  expect_recovers();
}

TEST_F(SdoServerTest, WrongRequestDuringSegmentedDownload) {
  initiate_segmented_download(20);
  expect_response({0x60, 0x50, 0x1F, 0x01, 0, 0, 0, 0});
  sdo({0x60, 0, 0, 0, 0, 0, 0, 0});  // upload segment
  expect_abort(0x1F50, 1, Abort::kCommandSpecifier);
  EXPECT_EQ(sink().cancel_calls, 1);
  expect_recovers();
}

TEST_F(SdoServerTest, ClientAbortCancelsSilently) {
  initiate_segmented_download(20);
  expect_response({0x60, 0x50, 0x1F, 0x01, 0, 0, 0, 0});
  sdo({0x80, 0x50, 0x1F, 0x01, 0x00, 0x00, 0x04, 0x05});
  expect_silence();
  EXPECT_EQ(sink().cancel_calls, 1);
  EXPECT_EQ(sink().cancel_reason, Abort::kTimeout);
  EXPECT_FALSE(node->transfer_active());
  sdo({0x80, 0x00, 0x10, 0x00, 0, 0, 0, 0x08});  // abort with nothing running
  expect_silence();
  expect_recovers();
}

TEST_F(SdoServerTest, NewInitiateReplacesTransfer) {
  initiate_segmented_download(20);
  expect_response({0x60, 0x50, 0x1F, 0x01, 0, 0, 0, 0});
  sdo({0x00, 1, 2, 3, 4, 5, 6, 7});
  expect_response({0x20, 0, 0, 0, 0, 0, 0, 0});
  initiate_segmented_download(3);
  expect_response({0x60, 0x50, 0x1F, 0x01, 0, 0, 0, 0});
  EXPECT_EQ(sink().cancel_calls, 1);
  EXPECT_EQ(sink().begin_calls, 2);
  sdo({0x09, 0xA, 0xB, 0xC, 0, 0, 0, 0});
  expect_response({0x20, 0, 0, 0, 0, 0, 0, 0});
  EXPECT_EQ(sink().data, (std::vector<std::uint8_t>{0xA, 0xB, 0xC}));
  EXPECT_EQ(sink().end_calls, 1);
}

TEST_F(SdoServerTest, UploadInitiateReplacesDownload) {
  initiate_segmented_download(20);
  expect_response({0x60, 0x50, 0x1F, 0x01, 0, 0, 0, 0});
  EXPECT_EQ(upload_expedited(0x1000, 0), (Bytes8{0x43, 0x00, 0x10, 0x00, 0, 0, 0, 0}));
  EXPECT_EQ(sink().cancel_calls, 1);
  EXPECT_FALSE(node->transfer_active());
}

TEST_F(SdoServerTest, BeginRefusalIsReported) {
  sink().begin_result = Abort::kDeviceState;
  initiate_segmented_download(20);
  expect_abort(0x1F50, 1, Abort::kDeviceState);
  sink().begin_result = Abort::kOutOfMemory;
  sdo({0xC6, 0x50, 0x1F, 0x01, 20, 0, 0, 0});
  expect_abort(0x1F50, 1, Abort::kOutOfMemory);
  sdo({0x23, 0x50, 0x1F, 0x01, 1, 2, 3, 4});
  expect_abort(0x1F50, 1, Abort::kOutOfMemory);
  EXPECT_EQ(sink().cancel_calls, 0);  // nothing had started
  EXPECT_EQ(sink().write_calls, 0);
  sink().begin_result = Abort::kNone;
  expect_recovers();
}

TEST_F(SdoServerTest, NoSinkMeansDeviceState) {
  program.offer_sink = false;
  initiate_segmented_download(20);
  expect_abort(0x1F50, 1, Abort::kDeviceState);
  expect_recovers();
}

TEST_F(SdoServerTest, WriteRefusalAbortsWithTheSinksCode) {
  sink().fail_after = 7;
  sink().write_result = Abort::kCannotStore;
  initiate_segmented_download(20);
  expect_response({0x60, 0x50, 0x1F, 0x01, 0, 0, 0, 0});
  sdo({0x00, 1, 2, 3, 4, 5, 6, 7});
  expect_response({0x20, 0, 0, 0, 0, 0, 0, 0});
  sdo({0x10, 1, 2, 3, 4, 5, 6, 7});
  expect_abort(0x1F50, 1, Abort::kCannotStore);
  EXPECT_EQ(sink().cancel_calls, 0);  // the sink raised it and knows
  expect_recovers();
}

TEST_F(SdoServerTest, EndRefusalAbortsWithTheSinksCode) {
  sink().end_result = Abort::kGeneral;
  initiate_segmented_download(3);
  expect_response({0x60, 0x50, 0x1F, 0x01, 0, 0, 0, 0});
  sdo({0x09, 1, 2, 3, 0, 0, 0, 0});
  expect_abort(0x1F50, 1, Abort::kGeneral);
  EXPECT_EQ(sink().end_calls, 1);
  EXPECT_EQ(sink().cancel_calls, 0);
  expect_recovers();
}

// --- flow control of segmented download ---------------------------------------------------------

TEST_F(SdoServerTest, SegmentedInitiateHeldUntilSinkHasRoomBesideTheReserve) {
  sink().capacity = 100;
  sink().buffered = 40;
  initiate_segmented_download(14);
  expect_silence();  // 60 free < 7 + the 64-byte pacing reserve
  advance(milliseconds(10));
  expect_silence();
  sink().drain(11);
  advance(milliseconds(1));
  expect_response({0x60, 0x50, 0x1F, 0x01, 0, 0, 0, 0});
}

TEST_F(SdoServerTest, HeldSegmentedAnswerComesFromTheReserveAfterMaxAckHold) {
  sink().capacity = 100;
  sink().buffered = 40;  // 60 free: room for segments, but only inside the reserve
  initiate_segmented_download(14);
  advance(config.max_ack_hold - milliseconds(1));
  expect_silence();
  advance(milliseconds(1));
  expect_response({0x60, 0x50, 0x1F, 0x01, 0, 0, 0, 0});
  sdo({0x00, 1, 2, 3, 4, 5, 6, 7});
  advance(config.max_ack_hold - milliseconds(1));
  expect_silence();  // the sink is still short of room: paced again
  advance(milliseconds(1));
  expect_response({0x20, 0, 0, 0, 0, 0, 0, 0});
  EXPECT_EQ(sink().data, (std::vector<std::uint8_t>{1, 2, 3, 4, 5, 6, 7}));
}

TEST_F(SdoServerTest, SegmentConfirmationHeldUntilSinkHasRoom) {
  // Without a reserve the confirmation waits for room for the next segment and nothing else.
  config.pacing_reserve = 0;
  restart();
  sink().capacity = 10;
  initiate_segmented_download(14);
  expect_response({0x60, 0x50, 0x1F, 0x01, 0, 0, 0, 0});
  sdo({0x00, 1, 2, 3, 4, 5, 6, 7});
  expect_silence();  // 3 free: the next segment would not fit
  sink().drain(3);
  advance(milliseconds(5));
  expect_silence();
  sink().drain(1);
  advance(milliseconds(5));
  expect_response({0x20, 0, 0, 0, 0, 0, 0, 0});
  // A segment arriving while the sink shrank on its own is split: what fits goes now.
  sink().buffered = 7;  // 3 free
  sdo({0x11, 8, 9, 10, 11, 12, 13, 14});
  expect_silence();
  EXPECT_EQ(sink().data.size(), 10U);
  sink().drain_all();
  advance(milliseconds(1));
  expect_response({0x30, 0, 0, 0, 0, 0, 0, 0});
  EXPECT_EQ(sink().data,
            (std::vector<std::uint8_t>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14}));
  EXPECT_EQ(sink().end_calls, 1);
}

TEST_F(SdoServerTest, ExpeditedDownloadWaitsForRoom) {
  sink().capacity = 2;
  sdo({0x23, 0x50, 0x1F, 0x01, 1, 2, 3, 4});
  expect_silence();
  EXPECT_EQ(sink().data.size(), 2U);
  sink().drain_all();
  advance(milliseconds(1));
  expect_response({0x60, 0x50, 0x1F, 0x01, 0, 0, 0, 0});
  EXPECT_EQ(sink().data, (std::vector<std::uint8_t>{1, 2, 3, 4}));
  EXPECT_EQ(sink().end_calls, 1);
}

TEST_F(SdoServerTest, SegmentBeforeConfirmationIsAProtocolError) {
  sink().capacity = 64 + 10;  // the pacing reserve and 10 bytes
  initiate_segmented_download(21);
  expect_response({0x60, 0x50, 0x1F, 0x01, 0, 0, 0, 0});
  sdo({0x00, 1, 2, 3, 4, 5, 6, 7});
  expect_silence();
  sdo({0x10, 1, 2, 3, 4, 5, 6, 7});
  expect_abort(0x1F50, 1, Abort::kGeneral);
  EXPECT_EQ(sink().cancel_calls, 1);
}

TEST_F(SdoServerTest, HeldConfirmationTimesOut) {
  sink().capacity = 64 + 10;
  initiate_segmented_download(21);
  expect_response({0x60, 0x50, 0x1F, 0x01, 0, 0, 0, 0});
  sink().buffered = 64 + 3;  // the sink filled up on its own: not even the reserve is left
  sdo({0x00, 1, 2, 3, 4, 5, 6, 7});
  advance(milliseconds(500));
  expect_abort(0x1F50, 1, Abort::kTimeout);
  EXPECT_EQ(sink().cancel_reason, Abort::kTimeout);
}

// --- timeouts ---------------------------------------------------------------------------------

TEST_F(SdoServerTest, SegmentedDownloadTimesOut) {
  initiate_segmented_download(20);
  expect_response({0x60, 0x50, 0x1F, 0x01, 0, 0, 0, 0});
  EXPECT_EQ(node->next_deadline(), now + milliseconds(500));
  advance(milliseconds(300));
  sdo({0x00, 1, 2, 3, 4, 5, 6, 7});  // activity restarts the clock
  expect_response({0x20, 0, 0, 0, 0, 0, 0, 0});
  EXPECT_EQ(node->next_deadline(), now + milliseconds(500));
  advance(milliseconds(500) - 1);
  expect_silence();
  advance(1);
  expect_abort(0x1F50, 1, Abort::kTimeout);
  EXPECT_EQ(sink().cancel_calls, 1);
  EXPECT_EQ(sink().cancel_reason, Abort::kTimeout);
  EXPECT_EQ(sink().end_calls, 0);
  expect_recovers();
}

TEST_F(SdoServerTest, SegmentedUploadTimesOut) {
  config.heartbeat_ms = 0;
  restart();
  sdo({0x40, 0x08, 0x10, 0x00, 0, 0, 0, 0});
  next_response();
  EXPECT_EQ(node->next_deadline(), now + milliseconds(500));
  advance(milliseconds(500));
  expect_abort(0x1008, 0, Abort::kTimeout);
  EXPECT_EQ(node->next_deadline(), ~Micros{0});
  expect_recovers();
}

// --- segmented upload -------------------------------------------------------------------------

TEST_F(SdoServerTest, SegmentedUploadExactBytes) {
  sdo({0x40, 0x08, 0x10, 0x00, 0, 0, 0, 0});
  expect_response({0x41, 0x08, 0x10, 0x00, 21, 0, 0, 0});
  sdo({0x60, 0, 0, 0, 0, 0, 0, 0});
  expect_response({0x00, 'r', 't', 'c', 'a', 'n', 'b', 'o'});
  sdo({0x70, 0, 0, 0, 0, 0, 0, 0});
  expect_response({0x10, 'o', 't', ' ', 't', 'e', 's', 't'});
  sdo({0x60, 0, 0, 0, 0, 0, 0, 0});
  expect_response({0x01, ' ', 'd', 'e', 'v', 'i', 'c', 'e'});
  EXPECT_FALSE(node->transfer_active());
}

TEST_F(SdoServerTest, SegmentedUploadPartialLastSegment) {
  config.device_name = "ABCDEFGHIJ";
  restart();
  sdo({0x40, 0x08, 0x10, 0x00, 0, 0, 0, 0});
  expect_response({0x41, 0x08, 0x10, 0x00, 10, 0, 0, 0});
  sdo({0x60, 0, 0, 0, 0, 0, 0, 0});
  expect_response({0x00, 'A', 'B', 'C', 'D', 'E', 'F', 'G'});
  sdo({0x70, 0, 0, 0, 0, 0, 0, 0});
  expect_response({0x19, 'H', 'I', 'J', 0, 0, 0, 0});
}

TEST_F(SdoServerTest, SegmentedUploadToggleError) {
  sdo({0x40, 0x08, 0x10, 0x00, 0, 0, 0, 0});
  next_response();
  sdo({0x60, 0, 0, 0, 0, 0, 0, 0});
  next_response();
  sdo({0x60, 0, 0, 0, 0, 0, 0, 0});
  expect_abort(0x1008, 0, Abort::kToggleBit);
  expect_recovers();
}

TEST_F(SdoServerTest, WrongRequestDuringSegmentedUpload) {
  sdo({0x40, 0x08, 0x10, 0x00, 0, 0, 0, 0});
  next_response();
  sdo({0x00, 0, 0, 0, 0, 0, 0, 0});  // download segment
  expect_abort(0x1008, 0, Abort::kCommandSpecifier);
  expect_recovers();
}

// --- block download ---------------------------------------------------------------------------

TEST_F(SdoServerTest, BlockDownloadExactBytesWithCrc) {
  const std::vector<std::uint8_t> data = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  EXPECT_EQ(initiate_block_download(10), 127);
  EXPECT_TRUE(sink().begin_size_known);
  EXPECT_EQ(sink().begin_size, 10U);
  sdo({0x01, 1, 2, 3, 4, 5, 6, 7});
  expect_silence();
  EXPECT_EQ(sink().data.size(), 7U);
  sdo({0x82, 8, 9, 10, 0, 0, 0, 0});
  expect_ack(2, 127);
  EXPECT_EQ(sink().data.size(), 7U);  // the last segment waits for the end frame
  const std::uint16_t crc = crc16_xmodem(0, data.data(), data.size());
  sdo({0xC1 | (4 << 2), lo(crc), hi(crc), 0, 0, 0, 0, 0});
  expect_response({0xA1, 0, 0, 0, 0, 0, 0, 0});
  EXPECT_EQ(sink().data, data);
  EXPECT_EQ(sink().end_calls, 1);
  EXPECT_FALSE(node->transfer_active());
}

TEST_F(SdoServerTest, BlockDownloadLargeWithAndWithoutCrc) {
  const auto data = pattern(3000);  // several full sub-blocks
  download_block(0x1F50, 1, data, true);
  EXPECT_EQ(sink().data, data);
  download_block(0x1F50, 1, pattern(889), false);  // exactly one full sub-block
  EXPECT_EQ(sink().data, pattern(889));
  download_block(0x1F50, 1, pattern(889 + 7), true);
  EXPECT_EQ(sink().data, pattern(896));
  EXPECT_EQ(sink().end_calls, 3);
}

TEST_F(SdoServerTest, BlockDownloadWithoutSizeAndEmpty) {
  sdo({0xC4, 0x50, 0x1F, 0x01, 0, 0, 0, 0});
  expect_response({0xA4, 0x50, 0x1F, 0x01, 127, 0, 0, 0});
  EXPECT_FALSE(sink().begin_size_known);
  sdo({0x81, 0, 0, 0, 0, 0, 0, 0});
  expect_ack(1, 127);
  sdo({0xC1 | (7 << 2), 0, 0, 0, 0, 0, 0, 0});  // no data at all; CRC of nothing is 0
  expect_response({0xA1, 0, 0, 0, 0, 0, 0, 0});
  EXPECT_TRUE(sink().data.empty());
  EXPECT_EQ(sink().end_calls, 1);
}

TEST_F(SdoServerTest, BlockDownloadCrcError) {
  initiate_block_download(3);
  sdo({0x81, 1, 2, 3, 0, 0, 0, 0});
  expect_ack(1, 127);
  const std::uint8_t good[] = {1, 2, 3};
  const std::uint16_t crc = crc16_xmodem(0, good, 3) ^ 0x0100;
  sdo({0xC1 | (4 << 2), lo(crc), hi(crc), 0, 0, 0, 0, 0});
  expect_abort(0x1F50, 1, Abort::kCrc);
  EXPECT_EQ(sink().end_calls, 0);
  EXPECT_EQ(sink().cancel_calls, 1);
  EXPECT_EQ(sink().cancel_reason, Abort::kCrc);
  expect_recovers();
}

TEST_F(SdoServerTest, BlockDownloadCrcIgnoredWhenClientHasNone) {
  initiate_block_download(3, false);
  sdo({0x81, 1, 2, 3, 0, 0, 0, 0});
  expect_ack(1, 127);
  sdo({0xC1 | (4 << 2), 0x12, 0x34, 0, 0, 0, 0, 0});
  expect_response({0xA1, 0, 0, 0, 0, 0, 0, 0});
}

TEST_F(SdoServerTest, BlockDownloadEndRefusedBySink) {
  sink().end_result = Abort::kCannotStore;
  initiate_block_download(3);
  sdo({0x81, 1, 2, 3, 0, 0, 0, 0});
  expect_ack(1, 127);
  const std::uint8_t data[] = {1, 2, 3};
  const std::uint16_t crc = crc16_xmodem(0, data, 3);
  sdo({0xC1 | (4 << 2), lo(crc), hi(crc), 0, 0, 0, 0, 0});
  expect_abort(0x1F50, 1, Abort::kCannotStore);
  EXPECT_EQ(sink().cancel_calls, 0);
  expect_recovers();
}

TEST_F(SdoServerTest, BlockDownloadSizeMismatchAtEnd) {
  initiate_block_download(10, false);
  sdo({0x81, 1, 2, 3, 0, 0, 0, 0});
  expect_ack(1, 127);
  sdo({0xC1 | (4 << 2), 0, 0, 0, 0, 0, 0, 0});  // 3 bytes, 10 announced
  expect_abort(0x1F50, 1, Abort::kLengthTooLow);
  EXPECT_EQ(sink().cancel_calls, 1);
  expect_recovers();
}

TEST_F(SdoServerTest, BlockDownloadMoreSegmentsThanAnnounced) {
  initiate_block_download(7, false);
  sdo({0x01, 1, 2, 3, 4, 5, 6, 7});
  sdo({0x02, 1, 2, 3, 4, 5, 6, 7});  // 14 > 7 before the last segment
  expect_abort(0x1F50, 1, Abort::kLengthTooHigh);
  expect_recovers();
}

TEST_F(SdoServerTest, BlockDownloadOutOfSequenceAcknowledgesLastInOrder) {
  sink().capacity = 64 + 5 * 7;  // block size 5
  const auto data = pattern(40);
  EXPECT_EQ(initiate_block_download(40), 5);
  block_segment(1, false, data, 0);
  block_segment(2, false, data, 7);
  block_segment(4, false, data, 21);  // 3 lost
  block_segment(5, false, data, 28);
  EXPECT_EQ(sink().data.size(), 14U);
  expect_ack(2, 3);  // 5 * 7 - 14 = 21 free beyond the reserve
  sink().drain_all();
  // The client resends from segment 3 on, numbered from 1.
  block_segment(1, false, data, 14);
  block_segment(2, false, data, 21);
  block_segment(3, false, data, 28);
  expect_ack(3, 2);  // 21 bytes buffered again
  block_segment(1, true, data, 35);
  expect_ack(1, 2);  // the last segment is not written before the end frame
  const std::uint16_t crc = crc16_xmodem(0, data.data(), data.size());
  sdo({0xC1 | (2 << 2), lo(crc), hi(crc), 0, 0, 0, 0, 0});
  expect_response({0xA1, 0, 0, 0, 0, 0, 0, 0});
  EXPECT_EQ(sink().data, data);
}

TEST_F(SdoServerTest, BlockDownloadResendWholeSubBlock) {
  sink().capacity = 64 + 3 * 7;
  const auto data = pattern(21);
  EXPECT_EQ(initiate_block_download(21), 3);
  block_segment(2, false, data, 7);  // 1 lost
  block_segment(3, true, data, 14);  // the last one, out of order: not the end yet
  expect_ack(0, 3);
  EXPECT_TRUE(sink().data.empty());
  block_segment(1, false, data, 0);
  block_segment(2, false, data, 7);
  block_segment(3, true, data, 14);
  expect_ack(3, 1);
  const std::uint16_t crc = crc16_xmodem(0, data.data(), data.size());
  sdo({0xC1, lo(crc), hi(crc), 0, 0, 0, 0, 0});
  expect_response({0xA1, 0, 0, 0, 0, 0, 0, 0});
  EXPECT_EQ(sink().data, data);
}

TEST_F(SdoServerTest, BlockDownloadSequenceBeyondBlockSize) {
  sink().capacity = 64 + 4 * 7;
  EXPECT_EQ(initiate_block_download(100), 4);
  sdo({0x01, 1, 2, 3, 4, 5, 6, 7});
  sdo({0x05, 1, 2, 3, 4, 5, 6, 7});
  expect_abort(0x1F50, 1, Abort::kSequenceNumber);
  EXPECT_EQ(sink().cancel_calls, 1);
  EXPECT_EQ(sink().cancel_reason, Abort::kSequenceNumber);
  expect_recovers();
}

TEST_F(SdoServerTest, BlockDownloadSequenceZero) {
  initiate_block_download(100);
  sdo({0x00, 1, 2, 3, 4, 5, 6, 7});
  expect_abort(0x1F50, 1, Abort::kSequenceNumber);
  expect_recovers();
}

TEST_F(SdoServerTest, BlockDownloadClientAbortInsideSubBlock) {
  initiate_block_download(100);
  sdo({0x01, 1, 2, 3, 4, 5, 6, 7});
  sdo({0x80, 0x50, 0x1F, 0x01, 0x00, 0x00, 0x00, 0x08});
  expect_silence();
  EXPECT_EQ(sink().cancel_calls, 1);
  EXPECT_EQ(sink().cancel_reason, Abort::kGeneral);
  expect_recovers();
}

TEST_F(SdoServerTest, BlockDownloadTimesOut) {
  config.heartbeat_ms = 0;
  restart();
  initiate_block_download(100);
  sdo({0x01, 1, 2, 3, 4, 5, 6, 7});
  advance(milliseconds(499));
  expect_silence();
  advance(milliseconds(1));
  expect_abort(0x1F50, 1, Abort::kTimeout);
  EXPECT_EQ(sink().cancel_reason, Abort::kTimeout);
  expect_recovers();
}

TEST_F(SdoServerTest, BlockDownloadWrongRequestAtEnd) {
  initiate_block_download(3);
  sdo({0x81, 1, 2, 3, 0, 0, 0, 0});
  expect_ack(1, 127);
  sdo({0x60, 0, 0, 0, 0, 0, 0, 0});
  expect_abort(0x1F50, 1, Abort::kCommandSpecifier);
  EXPECT_EQ(sink().cancel_calls, 1);
  expect_recovers();
}

TEST_F(SdoServerTest, BlockDownloadInitiateDuringEndPhaseStartsAfresh) {
  initiate_block_download(3);
  sdo({0x81, 1, 2, 3, 0, 0, 0, 0});
  expect_ack(1, 127);
  initiate_block_download(5);
  EXPECT_EQ(sink().cancel_calls, 1);
  EXPECT_EQ(sink().begin_calls, 2);
  EXPECT_TRUE(node->transfer_active());
}

TEST_F(SdoServerTest, BlockDownloadAnnouncesSizeFromFreeSpace) {
  sink().capacity = 64 + 10 * 7 + 6;
  EXPECT_EQ(initiate_block_download(1000), 10);
  sdo({0x80, 0x50, 0x1F, 0x01, 0, 0, 0, 0x08});
  sink().capacity = 64 + 6;  // nothing beyond the reserve: still at least 1
  EXPECT_EQ(initiate_block_download(1000), 1);
  sdo({0x80, 0x50, 0x1F, 0x01, 0, 0, 0, 0x08});
  sink().capacity = 100'000;
  EXPECT_EQ(initiate_block_download(1000), 127);
}

// --- flow control of block download -----------------------------------------------------------

TEST_F(SdoServerTest, BlockAckHeldWhileSinkFullThenReleased) {
  config.heartbeat_ms = 0;
  restart();
  sink().capacity = 64 + 2 * 7;
  const auto data = pattern(30);
  EXPECT_EQ(initiate_block_download(30), 2);
  block_segment(1, false, data, 0);
  block_segment(2, false, data, 7);
  expect_silence();  // nothing beyond the reserve: ack held
  EXPECT_TRUE(node->transfer_active());
  EXPECT_EQ(node->next_deadline(), now + milliseconds(200));
  advance(milliseconds(100));
  expect_silence();
  sink().drain(7);
  advance(milliseconds(1));
  expect_ack(2, 1);  // 7 bytes beyond the reserve
}

TEST_F(SdoServerTest, BlockAckForcedWithBlockSizeOneAfterMaxHold) {
  config.heartbeat_ms = 0;
  restart();
  sink().capacity = 64 + 2 * 7;
  const auto data = pattern(30);
  EXPECT_EQ(initiate_block_download(30), 2);
  block_segment(1, false, data, 0);
  block_segment(2, false, data, 7);
  advance(milliseconds(199));
  expect_silence();
  advance(milliseconds(1));
  expect_ack(2, 1);  // one segment out of the reserve
  block_segment(1, false, data, 14);
  EXPECT_EQ(sink().data.size(), 21U);
  advance(milliseconds(200));
  expect_ack(1, 1);
  // Reserve used up but the client is never starved of acknowledges; the sink frees, the
  // transfer completes.
  sink().drain_all();
  block_segment(1, false, data, 21);
  expect_ack(1, 1);  // 71 free: 7 beyond the reserve
  block_segment(1, true, data, 28);
  expect_ack(1, 1);
  const std::uint16_t crc = crc16_xmodem(0, data.data(), data.size());
  sdo({0xC1 | (5 << 2), lo(crc), hi(crc), 0, 0, 0, 0, 0});
  expect_response({0xA1, 0, 0, 0, 0, 0, 0, 0});
  EXPECT_EQ(sink().data, data);
}

TEST_F(SdoServerTest, BlockSegmentWithoutRoomCountsAsLost) {
  sink().capacity = 64 + 2 * 7;
  const auto data = pattern(14);
  EXPECT_EQ(initiate_block_download(14), 2);
  sink().buffered = sink().capacity - 3;  // the sink shrank on its own
  block_segment(1, false, data, 0);
  block_segment(2, true, data, 7);
  advance(milliseconds(200));
  expect_ack(0, 1);
  EXPECT_TRUE(sink().data.empty());
  sink().drain_all();
  block_segment(1, false, data, 0);
  expect_ack(1, 1);
  block_segment(1, true, data, 7);
  expect_ack(1, 1);
  const std::uint16_t crc = crc16_xmodem(0, data.data(), data.size());
  sdo({0xC1, lo(crc), hi(crc), 0, 0, 0, 0, 0});
  expect_response({0xA1, 0, 0, 0, 0, 0, 0, 0});
  EXPECT_EQ(sink().data, data);
}

TEST_F(SdoServerTest, BlockEndWaitsForRoomForTheLastBytes) {
  sink().capacity = 64 + 7;
  const auto data = pattern(10);
  EXPECT_EQ(initiate_block_download(10), 1);
  block_segment(1, false, data, 0);
  advance(milliseconds(200));
  expect_ack(1, 1);
  block_segment(1, true, data, 7);
  expect_ack(1, 1);
  sink().buffered = sink().capacity - 2;  // 2 free, 3 needed
  const std::uint16_t crc = crc16_xmodem(0, data.data(), data.size());
  sdo({0xC1 | (4 << 2), lo(crc), hi(crc), 0, 0, 0, 0, 0});
  expect_silence();
  sink().drain(1);
  advance(milliseconds(1));
  expect_response({0xA1, 0, 0, 0, 0, 0, 0, 0});
  EXPECT_EQ(sink().data, data);
}

// A client that follows CiA 301 over a channel that loses segments (never the one that closes a
// sub-block, which would leave both sides waiting for a timeout), into a sink that drains slowly.
TEST_F(SdoServerTest, BlockDownloadSurvivesLostSegmentsAndSlowSink) {
  std::mt19937 random(20261123);
  for (int round = 0; round < 20; ++round) {
    sink().capacity = 64 + 7 * static_cast<std::uint32_t>(1 + random() % 60);
    sink().buffered = 0;
    const auto data = pattern(1 + random() % 4000);
    std::uint8_t block_size = initiate_block_download(static_cast<std::uint32_t>(data.size()));
    std::size_t acknowledged = 0;  // bytes confirmed so far
    int guard = 0;
    while (true) {
      ASSERT_LT(++guard, 100000);
      std::uint8_t seqno = 0;
      bool sent_last = false;
      while (seqno < block_size && !sent_last) {
        ++seqno;
        const std::size_t offset = acknowledged + (seqno - 1) * 7U;
        sent_last = offset + 7 >= data.size();
        const bool closes = sent_last || seqno == block_size;
        if (!closes && random() % 8 == 0) continue;  // lost on the bus
        block_segment(seqno, sent_last, data, offset);
        if (random() % 3 == 0) sink().drain(static_cast<std::uint32_t>(random() % 40));
      }
      // Wait for the acknowledge; the node may hold it while the sink is full.
      while (frames.empty()) {
        sink().drain(5);
        advance(milliseconds(10));
      }
      const Bytes8 ack = payload(next_response());
      ASSERT_EQ(ack[0], 0xA2);
      ASSERT_LE(ack[1], seqno);
      acknowledged += ack[1] * 7U;
      block_size = ack[2];
      ASSERT_GE(block_size, 1);
      if (sent_last && ack[1] == seqno) break;
    }
    const auto unused = static_cast<std::uint8_t>(7 - ((data.size() - 1) % 7 + 1));
    const std::uint16_t crc = crc16_xmodem(0, data.data(), data.size());
    sdo({static_cast<std::uint8_t>(0xC1 | (unused << 2)), lo(crc), hi(crc), 0, 0, 0, 0, 0});
    while (frames.empty()) {
      sink().drain_all();
      advance(milliseconds(1));
    }
    expect_response({0xA1, 0, 0, 0, 0, 0, 0, 0});
    ASSERT_EQ(sink().data, data) << "round " << round;
  }
  EXPECT_EQ(sink().end_calls, 20);
  EXPECT_EQ(sink().cancel_calls, 0);
}

// --- block upload -----------------------------------------------------------------------------

TEST_F(SdoServerTest, BlockUploadExactBytesWithCrc) {
  config.device_name = "ABCDEFGHIJ";
  restart();
  sdo({0xA4, 0x08, 0x10, 0x00, 127, 0, 0, 0});
  expect_response({0xC6, 0x08, 0x10, 0x00, 10, 0, 0, 0});
  expect_silence();
  sdo({0xA3, 0, 0, 0, 0, 0, 0, 0});
  expect_response({0x01, 'A', 'B', 'C', 'D', 'E', 'F', 'G'});
  expect_response({0x82, 'H', 'I', 'J', 0, 0, 0, 0});
  expect_silence();
  sdo({0xA2, 2, 127, 0, 0, 0, 0, 0});
  const std::uint16_t crc = crc16_xmodem(0, "ABCDEFGHIJ", 10);
  expect_response({0xC1 | (4 << 2), lo(crc), hi(crc), 0, 0, 0, 0, 0});
  EXPECT_TRUE(node->transfer_active());
  sdo({0xA1, 0, 0, 0, 0, 0, 0, 0});
  expect_silence();
  EXPECT_FALSE(node->transfer_active());
}

TEST_F(SdoServerTest, BlockUploadWithoutCrcSendsZero) {
  config.device_name = "ABCDEFG";
  restart();
  sdo({0xA0, 0x08, 0x10, 0x00, 10, 0, 0, 0});
  expect_response({0xC6, 0x08, 0x10, 0x00, 7, 0, 0, 0});
  sdo({0xA3, 0, 0, 0, 0, 0, 0, 0});
  expect_response({0x81, 'A', 'B', 'C', 'D', 'E', 'F', 'G'});
  sdo({0xA2, 1, 10, 0, 0, 0, 0, 0});
  expect_response({0xC1, 0, 0, 0, 0, 0, 0, 0});
  sdo({0xA1, 0, 0, 0, 0, 0, 0, 0});
  EXPECT_FALSE(node->transfer_active());
}

TEST_F(SdoServerTest, BlockUploadSeveralSubBlocks) {
  EXPECT_EQ(upload_block(0x1008, 0, 2, true), text("rtcanboot test device"));
  EXPECT_EQ(upload_block(0x1008, 0, 1, false), text("rtcanboot test device"));
  EXPECT_EQ(upload_block(0x1018, 2, 127, true),
            (std::vector<std::uint8_t>{0x01, 0x40, 0x06, 0x01}));
}

TEST_F(SdoServerTest, BlockUploadResendsAfterPartialAck) {
  sdo({0xA4, 0x08, 0x10, 0x00, 3, 0, 0, 0});
  next_response();
  sdo({0xA3, 0, 0, 0, 0, 0, 0, 0});
  EXPECT_EQ(frames.size(), 3U);
  frames.frames.clear();
  sdo({0xA2, 1, 3, 0, 0, 0, 0, 0});  // only the first arrived
  expect_response({0x01, 'o', 't', ' ', 't', 'e', 's', 't'});
  expect_response({0x82, ' ', 'd', 'e', 'v', 'i', 'c', 'e'});
  expect_silence();
  sdo({0xA2, 0, 3, 0, 0, 0, 0, 0});  // none arrived: the same again
  expect_response({0x01, 'o', 't', ' ', 't', 'e', 's', 't'});
  expect_response({0x82, ' ', 'd', 'e', 'v', 'i', 'c', 'e'});
  sdo({0xA2, 2, 3, 0, 0, 0, 0, 0});
  const std::uint16_t crc = crc16_xmodem(0, "rtcanboot test device", 21);
  expect_response({0xC1, lo(crc), hi(crc), 0, 0, 0, 0, 0});
}

TEST_F(SdoServerTest, BlockUploadInvalidBlockSize) {
  sdo({0xA4, 0x08, 0x10, 0x00, 0, 0, 0, 0});
  expect_abort(0x1008, 0, Abort::kBlockSize);
  sdo({0xA4, 0x08, 0x10, 0x00, 128, 0, 0, 0});
  expect_abort(0x1008, 0, Abort::kBlockSize);
  sdo({0xA4, 0x08, 0x10, 0x00, 2, 0, 0, 0});
  next_response();
  sdo({0xA3, 0, 0, 0, 0, 0, 0, 0});
  frames.frames.clear();
  sdo({0xA2, 2, 0, 0, 0, 0, 0, 0});  // new block size 0 in the acknowledge
  expect_abort(0x1008, 0, Abort::kBlockSize);
  expect_recovers();
}

TEST_F(SdoServerTest, BlockUploadAckBeyondSentSegments) {
  sdo({0xA4, 0x08, 0x10, 0x00, 2, 0, 0, 0});
  next_response();
  sdo({0xA3, 0, 0, 0, 0, 0, 0, 0});
  frames.frames.clear();
  sdo({0xA2, 3, 2, 0, 0, 0, 0, 0});
  expect_abort(0x1008, 0, Abort::kSequenceNumber);
  expect_recovers();
}

TEST_F(SdoServerTest, BlockUploadWrongSubcommand) {
  sdo({0xA4, 0x08, 0x10, 0x00, 2, 0, 0, 0});
  next_response();
  sdo({0xA2, 0, 2, 0, 0, 0, 0, 0});  // acknowledge before start
  expect_abort(0x1008, 0, Abort::kCommandSpecifier);
  sdo({0xA4, 0x08, 0x10, 0x00, 2, 0, 0, 0});
  next_response();
  sdo({0x60, 0, 0, 0, 0, 0, 0, 0});
  expect_abort(0x1008, 0, Abort::kCommandSpecifier);
  expect_recovers();
}

TEST_F(SdoServerTest, BlockUploadProtocolSwitchThreshold) {
  // Size 4 <= threshold 8: the server answers as a normal (expedited) upload.
  sdo({0xA4, 0x18, 0x10, 0x04, 10, 8, 0, 0});
  expect_response({0x43, 0x18, 0x10, 0x04, 0xEF, 0xBE, 0xAD, 0xDE});
  EXPECT_FALSE(node->transfer_active());
  // 21 > 8: block upload.
  sdo({0xA4, 0x08, 0x10, 0x00, 10, 8, 0, 0});
  expect_response({0xC6, 0x08, 0x10, 0x00, 21, 0, 0, 0});
  // 21 <= 30: segmented.
  sdo({0xA4, 0x08, 0x10, 0x00, 10, 30, 0, 0});
  expect_response({0x41, 0x08, 0x10, 0x00, 21, 0, 0, 0});
  sdo({0x60, 0, 0, 0, 0, 0, 0, 0});
  expect_response({0x00, 'r', 't', 'c', 'a', 'n', 'b', 'o'});
}

TEST_F(SdoServerTest, BlockUploadClientAbortAndTimeout) {
  config.heartbeat_ms = 0;
  restart();
  sdo({0xA4, 0x08, 0x10, 0x00, 2, 0, 0, 0});
  next_response();
  sdo({0x80, 0x08, 0x10, 0x00, 0, 0, 0, 0x08});
  expect_silence();
  EXPECT_FALSE(node->transfer_active());
  sdo({0xA4, 0x08, 0x10, 0x00, 2, 0, 0, 0});
  next_response();
  sdo({0xA3, 0, 0, 0, 0, 0, 0, 0});
  frames.frames.clear();
  advance(milliseconds(500));
  expect_abort(0x1008, 0, Abort::kTimeout);
  expect_recovers();
}

TEST_F(SdoServerTest, BlockUploadRetriesWhenFrameQueueIsFull) {
  sdo({0xA4, 0x08, 0x10, 0x00, 127, 0, 0, 0});
  next_response();
  frames.refuse_count = 1;
  sdo({0xA3, 0, 0, 0, 0, 0, 0, 0});
  expect_silence();  // the first segment was refused: nothing sent out of order
  EXPECT_EQ(node->next_deadline(), now + canopen::SdoServer::kSendRetry);
  advance(canopen::SdoServer::kSendRetry - 1);
  expect_silence();
  frames.refuse_count = 1;  // the second attempt gets one segment through
  advance(1);
  expect_silence();
  advance(canopen::SdoServer::kSendRetry);
  expect_response({0x01, 'r', 't', 'c', 'a', 'n', 'b', 'o'});
  expect_response({0x02, 'o', 't', ' ', 't', 'e', 's', 't'});
  expect_response({0x83, ' ', 'd', 'e', 'v', 'i', 'c', 'e'});
  EXPECT_EQ(frames.refused, 2U);
  frames.refuse_count = 2;  // mid sub-block: continues where it stopped
  sdo({0xA2, 1, 127, 0, 0, 0, 0, 0});
  expect_silence();
  advance(canopen::SdoServer::kSendRetry);
  expect_silence();
  advance(canopen::SdoServer::kSendRetry);
  expect_response({0x01, 'o', 't', ' ', 't', 'e', 's', 't'});
  expect_response({0x82, ' ', 'd', 'e', 'v', 'i', 'c', 'e'});
}

TEST_F(SdoServerTest, HeldBlockEndTimesOut) {
  sink().capacity = 64 + 7;
  const auto data = pattern(3);
  EXPECT_EQ(initiate_block_download(3), 1);
  block_segment(1, true, data, 0);
  expect_ack(1, 1);
  sink().buffered = sink().capacity;  // never frees
  const std::uint16_t crc = crc16_xmodem(0, data.data(), data.size());
  sdo({0xC1 | (4 << 2), lo(crc), hi(crc), 0, 0, 0, 0, 0});
  expect_silence();
  advance(milliseconds(499));
  expect_silence();
  advance(milliseconds(1));
  expect_abort(0x1F50, 1, Abort::kTimeout);
  EXPECT_EQ(sink().end_calls, 0);
  EXPECT_EQ(sink().cancel_reason, Abort::kTimeout);
  EXPECT_TRUE(sink().data.empty());
  expect_recovers();
}

TEST_F(SdoServerTest, ResetCommunicationInsideSubBlock) {
  initiate_block_download(100);
  sdo({0x01, 1, 2, 3, 4, 5, 6, 7});
  nmt(0x82, 0);
  const CanFrame boot_up = frames.pop();
  EXPECT_EQ(boot_up.id, 0x705U);
  EXPECT_EQ(boot_up.data[0], 0x00);
  expect_silence();
  EXPECT_FALSE(node->transfer_active());
  EXPECT_EQ(sink().cancel_calls, 1);
  expect_recovers();
}

TEST_F(SdoServerTest, InitiateInsideSubBlockIsASegment) {
  // Inside a sub-block the first byte is a sequence number: 0xC6 is segment 70 > block size.
  sink().capacity = 64 + 3 * 7;
  EXPECT_EQ(initiate_block_download(100), 3);
  sdo({0xC6, 0x50, 0x1F, 0x01, 100, 0, 0, 0});
  expect_abort(0x1F50, 1, Abort::kSequenceNumber);
  expect_recovers();
}

// --- after a block download ended inside a sub-block ------------------------------------------
// CiA 301: once a transfer is aborted the server is idle, and the block segments the client had
// already queued (they carry a sequence number, not a command specifier) are never requests.

class SdoDrainTest : public SdoServerTest {
 protected:
  // Segment `seqno` of a sub-block whose data bytes are `body`.
  void segment(std::uint8_t seqno, std::initializer_list<std::uint8_t> body = {},
               bool last = false) {
    Bytes8 frame{};
    frame[0] = static_cast<std::uint8_t>(seqno | (last ? 0x80 : 0));
    std::size_t i = 1;
    for (const std::uint8_t b : body) frame[i++] = b;
    sdo(frame);
  }
  // The rest of a 127-segment sub-block after `from`, as a client that queued it sends it. Segment
  // 0x2F carries 51 1F 01 03 and segment 0x40 carries 50 1F 01: read as requests they would be
  // "write 0x1F51:1 = 3" (clear) and "read 0x1F50:1".
  void rest_of_sub_block(std::uint8_t from, std::uint8_t to = 127) {
    for (int s = from; s <= to; ++s) {
      if (s == 0x2F) {
        segment(0x2F, {0x51, 0x1F, 0x01, 0x03, 0, 0, 0});
      } else if (s == 0x40) {
        segment(0x40, {0x50, 0x1F, 0x01, 0, 0, 0, 0});
      } else {
        segment(static_cast<std::uint8_t>(s), {0x17, 0x10, 0x00, 0xE8, 0x03, 0, 0});
      }
      now += 200;  // about one frame at 500 kbit/s
    }
  }
  void expect_nothing_executed() {
    expect_silence();
    EXPECT_TRUE(program.control_calls.empty()) << "a block segment was executed as a request";
    EXPECT_EQ(node->heartbeat_ms(), 0) << "a block segment was executed as a request";
  }
};

TEST_F(SdoDrainTest, ServerAbortIgnoresTheRestOfTheSubBlock) {
  sink().fail_after = 7;  // the sink refuses the second segment, as a wrong-product header does
  EXPECT_EQ(initiate_block_download(100000), 127);
  segment(1);
  segment(2);
  expect_abort(0x1F50, 1, Abort::kCannotStore);
  rest_of_sub_block(3);
  expect_nothing_executed();
  expect_recovers();
}

TEST_F(SdoDrainTest, ServerAbortAtTheLastSegmentNeedsNoDrain) {
  sink().fail_after = 7;
  sink().capacity = 64 + 2 * 7;
  EXPECT_EQ(initiate_block_download(100000), 2);
  segment(1);
  segment(2);
  expect_abort(0x1F50, 1, Abort::kCannotStore);
  // The sub-block is over: the next frame is a request whatever its first byte.
  sdo({0x03, 0x00, 0x10, 0x00, 0, 0, 0, 0});
  expect_abort(0, 0, Abort::kCommandSpecifier);
  expect_recovers();
}

TEST_F(SdoDrainTest, SequenceErrorIgnoresTheClientsFurtherSegments) {
  sink().capacity = 64 + 4 * 7;
  EXPECT_EQ(initiate_block_download(100000), 4);
  segment(1);
  segment(5);  // the client does not follow the block size
  expect_abort(0x1F50, 1, Abort::kSequenceNumber);
  rest_of_sub_block(6);
  expect_nothing_executed();
  expect_recovers();
}

TEST_F(SdoDrainTest, ServerTimeoutIgnoresLateSegments) {
  EXPECT_EQ(initiate_block_download(100000), 127);
  segment(1);
  segment(2);
  advance(milliseconds(500));
  expect_abort(0x1F50, 1, Abort::kTimeout);
  rest_of_sub_block(3, 60);  // a stalled client resumes right after the timeout
  expect_nothing_executed();
  expect_recovers();
}

TEST_F(SdoDrainTest, ClientAbortIgnoresSegmentsStillUnderway) {
  EXPECT_EQ(initiate_block_download(100000), 127);
  segment(1);
  sdo({0x80, 0x50, 0x1F, 0x01, 0x00, 0x00, 0x00, 0x08});
  EXPECT_EQ(sink().cancel_reason, Abort::kGeneral);
  rest_of_sub_block(2);
  expect_nothing_executed();
  expect_recovers();
}

TEST_F(SdoDrainTest, ResetCommunicationIgnoresTheRestOfTheSubBlock) {
  EXPECT_EQ(initiate_block_download(100000), 127);
  segment(1);
  nmt(0x82, 0);
  EXPECT_EQ(frames.pop().id, 0x705U);  // boot-up
  rest_of_sub_block(2);
  expect_nothing_executed();
  EXPECT_EQ(sink().cancel_calls, 1);
  expect_recovers();
}

TEST_F(SdoDrainTest, ResetNodeWaitsUntilTheSubBlockIsOver) {
  EXPECT_EQ(initiate_block_download(100000), 127);
  segment(1);
  nmt(0x81, kNodeId);
  EXPECT_EQ(sink().cancel_calls, 1);
  // The reset would come before the queued segments and a fresh node would execute them.
  EXPECT_FALSE(node->reset_node_requested());
  rest_of_sub_block(2, 126);
  EXPECT_FALSE(node->reset_node_requested());
  segment(127);
  EXPECT_TRUE(node->reset_node_requested());
  expect_nothing_executed();
}

TEST_F(SdoDrainTest, ResetNodeAfterSilenceWaitsOnlyTheDrainTime) {
  EXPECT_EQ(initiate_block_download(100000), 127);
  segment(1);
  nmt(0x81, kNodeId);
  EXPECT_LE(node->next_deadline(), now + config.block_drain_time);
  advance(config.block_drain_time - 1);
  EXPECT_FALSE(node->reset_node_requested());
  advance(1);
  EXPECT_TRUE(node->reset_node_requested());
  expect_silence();
}

TEST_F(SdoDrainTest, ResetNodeOutsideASubBlockIsImmediate) {
  nmt(0x81, kNodeId);
  EXPECT_TRUE(node->reset_node_requested());
}

// Issue 16 (found by the download fuzzer's author): a CAN duplicate of a queued segment must not
// end the drain; segment 0x2F twice would otherwise be "write 0x1F51:1 = 3" (clear).
TEST_F(SdoDrainTest, ADuplicatedSegmentDoesNotEndTheDrain) {
  sink().fail_after = 7;
  EXPECT_EQ(initiate_block_download(100000), 127);
  segment(1);
  segment(2);
  expect_abort(0x1F50, 1, Abort::kCannotStore);
  segment(2);  // the aborted segment, delivered twice
  rest_of_sub_block(3, 0x2F);
  segment(0x2F, {0x51, 0x1F, 0x01, 0x03, 0, 0, 0});  // segment 0x2F, delivered twice
  rest_of_sub_block(0x30);
  expect_nothing_executed();
  expect_recovers();
}

TEST_F(SdoDrainTest, AFrameThatDoesNotContinueTheSubBlockIsARequest) {
  sink().fail_after = 0;
  EXPECT_EQ(initiate_block_download(100000), 127);
  segment(1);
  expect_abort(0x1F50, 1, Abort::kCannotStore);
  segment(2);
  segment(3);
  expect_silence();
  // The client noticed the abort and reads 0x1F57 (0x40 is not segment 4).
  EXPECT_EQ(upload_expedited(0x1F57, 1), (Bytes8{0x43, 0x57, 0x1F, 0x01, 0, 0, 0, 0}));
  // The drain is over: segment-like frames are requests again.
  sdo({0x05, 0, 0, 0, 0, 0, 0, 0});
  expect_abort(0, 0, Abort::kCommandSpecifier);
}

TEST_F(SdoDrainTest, ARequestLikeTheNextSegmentIsAnsweredWhenRetriedAfterTheDrainTime) {
  // A master whose request happened to look like the next segment gets a later retry answered;
  // an immediate retry looks like a CAN duplicate of that segment and is ignored too.
  sink().fail_after = 0;
  EXPECT_EQ(initiate_block_download(100000), 127);
  for (std::uint8_t s = 1; s <= 0x3F; ++s) segment(s);
  expect_abort(0x1F50, 1, Abort::kCannotStore);
  sdo({0x40, 0x57, 0x1F, 0x01, 0, 0, 0, 0});  // looks like segment 64: ignored
  sdo({0x40, 0x57, 0x1F, 0x01, 0, 0, 0, 0});  // and again at once: ignored
  expect_silence();
  advance(config.block_drain_time);
  EXPECT_EQ(upload_expedited(0x1F57, 1), (Bytes8{0x43, 0x57, 0x1F, 0x01, 0, 0, 0, 0}));
}

TEST_F(SdoDrainTest, TheDrainEndsAfterTheDrainTime) {
  sink().fail_after = 0;
  EXPECT_EQ(initiate_block_download(100000), 127);
  segment(1);
  expect_abort(0x1F50, 1, Abort::kCannotStore);
  segment(2);
  advance(config.block_drain_time);
  segment(3, {0x00, 0x10, 0x00});  // no segment after so long: a request
  expect_abort(0, 0, Abort::kCommandSpecifier);
  expect_recovers();
}

TEST_F(SdoDrainTest, LastSegmentEndsTheDrain) {
  sink().fail_after = 0;
  EXPECT_EQ(initiate_block_download(100000), 127);
  segment(1);
  expect_abort(0x1F50, 1, Abort::kCannotStore);
  segment(2, {}, true);  // c = 1: the client's data ends here
  segment(3, {0x00, 0x10, 0x00});
  expect_abort(0, 0, Abort::kCommandSpecifier);
}

// Segmented download after an abort: the toggle starts again at 0 with the next initiate, and a
// segment that arrives without a transfer is answered with an abort and never taken as data.
TEST_F(SdoDrainTest, SegmentedDownloadAfterAnAbortStartsWithToggleZero) {
  initiate_segmented_download(20);
  expect_response({0x60, 0x50, 0x1F, 0x01, 0, 0, 0, 0});
  sdo({0x00, 1, 2, 3, 4, 5, 6, 7});
  expect_response({0x20, 0, 0, 0, 0, 0, 0, 0});
  advance(milliseconds(500));
  expect_abort(0x1F50, 1, Abort::kTimeout);
  sdo({0x10, 8, 9, 10, 11, 12, 13, 14});  // the client's late segment (toggle 1)
  expect_abort(0, 0, Abort::kCommandSpecifier);
  EXPECT_EQ(sink().data.size(), 7U);
  initiate_segmented_download(8);
  expect_response({0x60, 0x50, 0x1F, 0x01, 0, 0, 0, 0});
  sdo({0x10, 1, 2, 3, 4, 5, 6, 7});  // toggle 1 continues nothing: the new transfer wants 0
  expect_abort(0x1F50, 1, Abort::kToggleBit);
  initiate_segmented_download(8);
  expect_response({0x60, 0x50, 0x1F, 0x01, 0, 0, 0, 0});
  sdo({0x00, 1, 2, 3, 4, 5, 6, 7});
  expect_response({0x20, 0, 0, 0, 0, 0, 0, 0});
  sdo({0x1D, 8, 0, 0, 0, 0, 0, 0});
  expect_response({0x30, 0, 0, 0, 0, 0, 0, 0});
  EXPECT_EQ(sink().end_calls, 1);
}

// --- block download to a fixed-size object ----------------------------------------------------

TEST_F(SdoServerTest, BlockDownloadToHeartbeatTime) {
  sdo({0xC6, 0x17, 0x10, 0x00, 2, 0, 0, 0});
  expect_response({0xA4, 0x17, 0x10, 0x00, 127, 0, 0, 0});
  sdo({0x81, 0xF4, 0x01, 0, 0, 0, 0, 0});
  expect_ack(1, 127);
  const std::uint8_t value[] = {0xF4, 0x01};
  const std::uint16_t crc = crc16_xmodem(0, value, 2);
  sdo({0xC1 | (5 << 2), lo(crc), hi(crc), 0, 0, 0, 0, 0});
  expect_response({0xA1, 0, 0, 0, 0, 0, 0, 0});
  EXPECT_EQ(node->heartbeat_ms(), 500);
}

TEST_F(SdoServerTest, UnsizedBlockDownloadTooLongForObject) {
  sdo({0xC4, 0x17, 0x10, 0x00, 0, 0, 0, 0});
  expect_response({0xA4, 0x17, 0x10, 0x00, 127, 0, 0, 0});
  sdo({0x01, 1, 2, 3, 4, 5, 6, 7});
  expect_abort(0x1017, 0, Abort::kLengthTooHigh);
  EXPECT_EQ(node->heartbeat_ms(), 0);  // unchanged
  expect_recovers();
}

TEST_F(SdoServerTest, UnsizedSegmentedDownloadTooShortForObject) {
  sdo({0x20, 0x17, 0x10, 0x00, 0, 0, 0, 0});
  expect_response({0x60, 0x17, 0x10, 0x00, 0, 0, 0, 0});
  sdo({0x0D, 7, 0, 0, 0, 0, 0, 0});  // 1 byte, last
  expect_abort(0x1017, 0, Abort::kLengthTooLow);
  EXPECT_EQ(node->heartbeat_ms(), 0);  // unchanged
  expect_recovers();
}

}  // namespace
}  // namespace rtcanboot::test
