// The SDO client against the core's real SDO server (CanopenNode) in one process, in virtual time.
#include <gtest/gtest.h>

#include <numeric>
#include <string>

#include <fmt/format.h>

#include "rtcanboot/bytes.hpp"
#include "rtcanboot/canopen_defs.hpp"
#include "rtcanboot/host/master.hpp"
#include "rtcanboot/host/sdo_client.hpp"
#include "sim_nodes.hpp"

namespace rtcanboot::host {
namespace {

using canopen::Abort;
using test::SimCanopenNode;

std::vector<std::uint8_t> pattern(std::size_t n, std::uint32_t seed = 1) {
  std::vector<std::uint8_t> v(n);
  std::uint32_t x = seed;
  for (auto& b : v) {
    x = x * 1103515245U + 12345U;
    b = static_cast<std::uint8_t>(x >> 16);
  }
  return v;
}

class SdoClientTest : public ::testing::Test {
 protected:
  SdoClientTest() {
    config.node_id = 5;
    config.identity = {0x0000'ABCD, 0x0000'0042, 3, 77};
    config.device_name = long_name.c_str();
    config.software_version = "1.0";
  }
  void make_node() { node = std::make_unique<SimCanopenNode>(bus, config); }
  void SetUp() override {
    make_node();
    MasterOptions o;
    o.sdo.timeout = 500'000;
    master = std::make_unique<Master>(bus, o);
  }

  std::string long_name =
      "rtcanboot test node with a name long enough for several segments: 0123456789abcdefghij";
  SimBus bus{500'000};
  NodeConfig config;
  std::unique_ptr<SimCanopenNode> node;
  std::unique_ptr<Master> master;
};

TEST_F(SdoClientTest, ExpeditedUploadReadsNumbers) {
  EXPECT_EQ(master->upload_u32(5, canopen::od::kDeviceType, 0), canopen::kDeviceTypeValue);
  EXPECT_EQ(master->upload_u32(5, canopen::od::kIdentity, 1), 0xABCDU);
  EXPECT_EQ(master->upload_u32(5, canopen::od::kIdentity, 2), 0x42U);
  EXPECT_EQ(master->upload_u8(5, canopen::od::kIdentity, 0), 4);
}

TEST_F(SdoClientTest, ExpeditedDownloadWritesHeartbeatTime) {
  std::uint8_t v[2] = {0xF4, 0x01};  // 500 ms
  master->download(5, canopen::od::kProducerHeartbeat, 0, v);
  EXPECT_EQ(master->upload_u32(5, canopen::od::kProducerHeartbeat, 0), 500U);
}

TEST_F(SdoClientTest, SegmentedUploadOfAString) {
  EXPECT_EQ(master->upload_string(5, 0x1008, 0), long_name);
  EXPECT_EQ(master->upload_string(5, 0x100A, 0), "1.0");
}

TEST_F(SdoClientTest, BlockUploadOfAString) {
  const auto data = master->upload(5, 0x1008, 0, SdoMode::kBlock);
  EXPECT_EQ(std::string(data.begin(), data.end()), long_name);
}

TEST_F(SdoClientTest, BlockUploadWithSmallBlocksAndWithoutCrc) {
  master->options().sdo.block_size = 3;
  master->options().sdo.block_crc = false;
  const auto data = master->upload(5, 0x1008, 0, SdoMode::kBlock);
  EXPECT_EQ(std::string(data.begin(), data.end()), long_name);
}

TEST_F(SdoClientTest, BlockUploadOfAShortValue) {
  const auto data = master->upload(5, canopen::od::kIdentity, 1, SdoMode::kBlock);
  ASSERT_EQ(data.size(), 4U);
  EXPECT_EQ(data[0], 0xCD);
  EXPECT_EQ(data[1], 0xAB);
}

TEST_F(SdoClientTest, SegmentedDownloadOfProgramData) {
  for (std::size_t n : {5U, 7U, 8U, 14U, 15U, 1000U}) {
    const auto data = pattern(n, static_cast<std::uint32_t>(n));
    master->download(5, canopen::od::kProgramData, 1, data, SdoMode::kSegmented);
    EXPECT_EQ(node->program.data, data) << n << " bytes";
    EXPECT_EQ(node->program.announced, n);
  }
}

TEST_F(SdoClientTest, EmptyDownloadsAreSegmented) {
  SdoClient c(5);
  c.start_download(canopen::od::kProgramData, 1, {}, SdoMode::kAuto, 0);
  CanFrame f;
  ASSERT_TRUE(c.next_frame(f, 0));
  EXPECT_EQ(f.data[0], 0x21);  // segmented initiate with size 0, not an expedited frame
  EXPECT_EQ(load_le32(f.data + 4), 0U);
}

TEST_F(SdoClientTest, BlockDownloadOfProgramDataAllSizes) {
  for (std::size_t n : {1U, 6U, 7U, 8U, 888U, 889U, 890U, 1778U, 1779U, 100'000U}) {
    const auto data = pattern(n, static_cast<std::uint32_t>(n));
    SdoClient client(5, master->options().sdo);
    client.start_download(canopen::od::kProgramData, 1, data, SdoMode::kBlock, bus.clock().now());
    SdoClient* list[] = {&client};
    master->run(list);
    ASSERT_EQ(client.state(), SdoClient::State::kDone) << n << ": " << client.error_message();
    EXPECT_EQ(node->program.data, data) << n << " bytes";
    EXPECT_EQ(node->program.ends, 1);
    EXPECT_EQ(client.retransmitted_segments(), 0U);
    EXPECT_EQ(client.bytes_done(), n);
    node->program.ends = 0;
  }
}

TEST_F(SdoClientTest, BlockDownloadWithoutCrc) {
  master->options().sdo.block_crc = false;
  const auto data = pattern(5000);
  master->download(5, canopen::od::kProgramData, 1, data, SdoMode::kBlock);
  EXPECT_EQ(node->program.data, data);
}

TEST_F(SdoClientTest, BlockDownloadFollowsTheServersBlockSize) {
  // The sink drains slowly, so the server announces smaller sub-blocks as it fills up.
  node->program.capacity = 1500;
  node->program.drain_per_ms = 40;
  std::vector<std::uint8_t> sizes;
  bus.set_fault_hook([&](const CanFrame& f, bool from_master) {
    if (!from_master && f.id == 0x585 && f.data[0] == 0xA2) sizes.push_back(f.data[2]);
    if (!from_master && f.id == 0x585 && (f.data[0] & 0xE3) == 0xA0) sizes.push_back(f.data[4]);
    return SimBus::Fault::kDeliver;
  });
  const auto data = pattern(20'000);
  master->download(5, canopen::od::kProgramData, 1, data, SdoMode::kBlock);
  EXPECT_EQ(node->program.data, data);
  ASSERT_FALSE(sizes.empty());
  EXPECT_LT(*std::min_element(sizes.begin(), sizes.end()), 127);
}

TEST_F(SdoClientTest, ProgressIsReported) {
  std::vector<std::uint64_t> seen;
  const auto data = pattern(10'000);
  master->download(5, canopen::od::kProgramData, 1, data, SdoMode::kBlock,
                   [&](std::uint64_t done, std::uint64_t total) {
                     EXPECT_EQ(total, 10'000U);
                     seen.push_back(done);
                   });
  ASSERT_GE(seen.size(), 3U);
  EXPECT_TRUE(std::is_sorted(seen.begin(), seen.end()));
  EXPECT_EQ(seen.back(), 10'000U);
}

// ---- aborts -----------------------------------------------------------------------------------

TEST_F(SdoClientTest, ServerAbortsReadOfWriteOnlyObject) {
  try {
    master->upload(5, canopen::od::kProgramData, 1);
    FAIL() << "no abort";
  } catch (const SdoError& e) {
    EXPECT_EQ(e.failure(), SdoClient::Failure::kServerAbort);
    EXPECT_EQ(e.abort_code(), static_cast<std::uint32_t>(Abort::kWriteOnly));
    EXPECT_NE(std::string(e.what()).find("write-only"), std::string::npos) << e.what();
    EXPECT_EQ(e.kind(), ErrorKind::kAborted);
  }
}

TEST_F(SdoClientTest, ServerAbortsWriteOfReadOnlyAndMissingObjects) {
  std::uint8_t v[4] = {1, 2, 3, 4};
  try {
    master->download(5, canopen::od::kDeviceType, 0, v);
    FAIL();
  } catch (const SdoError& e) {
    EXPECT_EQ(e.abort_code(), static_cast<std::uint32_t>(Abort::kReadOnly));
  }
  try {
    master->upload(5, 0x2000, 0);
    FAIL();
  } catch (const SdoError& e) {
    EXPECT_EQ(e.abort_code(), static_cast<std::uint32_t>(Abort::kNoObject));
    EXPECT_NE(std::string(e.what()).find("does not exist"), std::string::npos);
  }
  try {
    master->upload(5, canopen::od::kIdentity, 9);
    FAIL();
  } catch (const SdoError& e) {
    EXPECT_EQ(e.abort_code(), static_cast<std::uint32_t>(Abort::kNoSubIndex));
  }
}

TEST_F(SdoClientTest, ServerAbortsBlockDownloadWhenTheSinkFails) {
  node->program.fail_after = 3000;
  const auto data = pattern(10'000);
  try {
    master->download(5, canopen::od::kProgramData, 1, data, SdoMode::kBlock);
    FAIL();
  } catch (const SdoError& e) {
    EXPECT_EQ(e.failure(), SdoClient::Failure::kServerAbort);
    EXPECT_EQ(e.abort_code(), static_cast<std::uint32_t>(Abort::kCannotStore));
  }
  // The server is idle again (once the rest of the sub-block has passed).
  bus.run_until(bus.clock().now() + 50'000);
  EXPECT_EQ(master->upload_u32(5, canopen::od::kIdentity, 1), 0xABCDU);
}

TEST_F(SdoClientTest, ClientAbortCancelsTheServersTransfer) {
  const auto data = pattern(50'000);
  SdoClient client(5, master->options().sdo);
  client.start_download(canopen::od::kProgramData, 1, data, SdoMode::kBlock, bus.clock().now());
  SdoClient* list[] = {&client};
  bool aborted = false;
  bus.set_fault_hook([&](const CanFrame& f, bool from_master) {
    if (!from_master && f.data[0] == 0xA2 && !aborted) {
      aborted = true;
      client.abort(Abort::kGeneral);
    }
    return SimBus::Fault::kDeliver;
  });
  master->run(list);
  EXPECT_EQ(client.state(), SdoClient::State::kFailed);
  EXPECT_EQ(client.failure(), SdoClient::Failure::kLocalAbort);
  bus.run_until(bus.clock().now() + 10'000);
  EXPECT_EQ(node->program.cancels, 1);
  EXPECT_EQ(node->program.cancel_reason, Abort::kGeneral);
  bus.set_fault_hook({});
  EXPECT_EQ(master->upload_u32(5, canopen::od::kIdentity, 2), 0x42U);
}

TEST_F(SdoClientTest, TimeoutWhenNoNodeAnswers) {
  const Micros t0 = bus.clock().now();
  try {
    master->upload(9, canopen::od::kDeviceType, 0);
    FAIL();
  } catch (const SdoError& e) {
    EXPECT_TRUE(e.timed_out());
    EXPECT_EQ(e.kind(), ErrorKind::kTimeout);
  }
  // One retry by default: two timeouts of 500 ms, in virtual time.
  EXPECT_GE(bus.clock().now() - t0, 1'000'000U);
  EXPECT_LT(bus.clock().now() - t0, 1'200'000U);
}

TEST_F(SdoClientTest, TimeoutSendsAnAbortFrame) {
  bool abort_seen = false;
  bus.set_fault_hook([&](const CanFrame& f, bool from_master) {
    if (from_master && f.id == 0x605 && f.data[0] == 0x80) {
      abort_seen = true;
      EXPECT_EQ(load_le32(f.data + 4), static_cast<std::uint32_t>(Abort::kTimeout));
    }
    // The server's answers are lost.
    return from_master ? SimBus::Fault::kDeliver : SimBus::Fault::kDrop;
  });
  EXPECT_THROW(master->upload(5, canopen::od::kDeviceType, 0), SdoError);
  EXPECT_TRUE(abort_seen);
}

// ---- lost and reordered frames in block transfers -------------------------------------------

TEST_F(SdoClientTest, BlockDownloadResendsAfterALostSegment) {
  const auto data = pattern(3000);
  int segment = 0;
  bus.set_fault_hook([&](const CanFrame& f, bool from_master) {
    if (from_master && f.id == 0x605 && (f.data[0] & 0x7F) != 0 && segment >= 0) {
      if (++segment == 20) return SimBus::Fault::kDrop;
    }
    return SimBus::Fault::kDeliver;
  });
  SdoClient client(5, master->options().sdo);
  client.start_download(canopen::od::kProgramData, 1, data, SdoMode::kBlock, bus.clock().now());
  SdoClient* list[] = {&client};
  master->run(list);
  ASSERT_EQ(client.state(), SdoClient::State::kDone) << client.error_message();
  EXPECT_EQ(node->program.data, data);
  EXPECT_GT(client.retransmitted_segments(), 0U);
}

TEST_F(SdoClientTest, BlockDownloadResendsAfterReorderedSegments) {
  const auto data = pattern(4000);
  int segment = 0;
  bus.set_fault_hook([&](const CanFrame& f, bool from_master) {
    if (from_master && f.id == 0x605) {
      ++segment;
      if (segment == 10 || segment == 200) return SimBus::Fault::kDelay;
    }
    return SimBus::Fault::kDeliver;
  });
  SdoClient client(5, master->options().sdo);
  client.start_download(canopen::od::kProgramData, 1, data, SdoMode::kBlock, bus.clock().now());
  SdoClient* list[] = {&client};
  master->run(list);
  ASSERT_EQ(client.state(), SdoClient::State::kDone) << client.error_message();
  EXPECT_EQ(node->program.data, data);
  EXPECT_GT(client.retransmitted_segments(), 0U);
}

TEST_F(SdoClientTest, BlockDownloadSurvivesManyLostSegments) {
  const auto data = pattern(30'000);
  int n = 0;
  bus.set_fault_hook([&](const CanFrame& f, bool from_master) {
    // Every 37th segment of the client is lost, but never the last one of a sub-block.
    if (from_master && f.id == 0x605 && (f.data[0] & 0x80) == 0 && (f.data[0] & 0x7F) != 127 &&
        (f.data[0] & 0x7F) != 0 && ++n % 37 == 0) {
      return SimBus::Fault::kDrop;
    }
    return SimBus::Fault::kDeliver;
  });
  master->download(5, canopen::od::kProgramData, 1, data, SdoMode::kBlock);
  EXPECT_EQ(node->program.data, data);
}

TEST_F(SdoClientTest, BlockUploadRecoversFromALostSegment) {
  master->options().sdo.block_size = 4;
  int segment = 0;
  bus.set_fault_hook([&](const CanFrame& f, bool from_master) {
    if (!from_master && f.id == 0x585 && (f.data[0] & 0x7F) >= 1 && (f.data[0] & 0x7F) <= 4 &&
        (f.data[0] & 0xE0) != 0xC0) {
      if (++segment == 3) return SimBus::Fault::kDrop;
    }
    return SimBus::Fault::kDeliver;
  });
  const auto data = master->upload(5, 0x1008, 0, SdoMode::kBlock);
  EXPECT_EQ(std::string(data.begin(), data.end()), long_name);
}

TEST_F(SdoClientTest, BlockUploadRecoversFromReorderedSegments) {
  master->options().sdo.block_size = 10;
  int segment = 0;
  bus.set_fault_hook([&](const CanFrame& f, bool from_master) {
    if (!from_master && f.id == 0x585 && ++segment == 4) return SimBus::Fault::kDelay;
    return SimBus::Fault::kDeliver;
  });
  const auto data = master->upload(5, 0x1008, 0, SdoMode::kBlock);
  EXPECT_EQ(std::string(data.begin(), data.end()), long_name);
}

TEST_F(SdoClientTest, BlockUploadRecoversFromALostLastSegment) {
  // Nothing follows the lost segment, so only the client's idle acknowledge gets it resent.
  bool dropped = false;
  bus.set_fault_hook([&](const CanFrame& f, bool from_master) {
    const auto last = static_cast<std::uint8_t>(0x80 | ((long_name.size() + 6) / 7));  // c=1, seqno
    if (!from_master && f.id == 0x585 && f.data[0] == last && !dropped) {
      dropped = true;
      return SimBus::Fault::kDrop;
    }
    return SimBus::Fault::kDeliver;
  });
  const Micros t0 = bus.clock().now();
  const auto data = master->upload(5, 0x1008, 0, SdoMode::kBlock);
  EXPECT_TRUE(dropped);
  EXPECT_EQ(std::string(data.begin(), data.end()), long_name);
  EXPECT_GE(bus.clock().now() - t0, master->options().sdo.block_upload_idle_ack);
  EXPECT_LT(bus.clock().now() - t0, master->options().sdo.timeout);
}

// ---- the state machine alone -------------------------------------------------------------------

TEST(SdoClientMachine, ExpeditedUploadFramesAndTimeout) {
  SdoClient c(3);
  c.start_upload(0x1018, 1, SdoMode::kAuto, 1000);
  CanFrame f;
  ASSERT_TRUE(c.next_frame(f, 1000));
  EXPECT_EQ(f.id, 0x603U);
  EXPECT_EQ(f.data[0], 0x40);
  EXPECT_EQ(f.data[1], 0x18);
  EXPECT_EQ(f.data[2], 0x10);
  EXPECT_EQ(f.data[3], 1);
  EXPECT_FALSE(c.next_frame(f, 1000));
  EXPECT_EQ(c.deadline(), 1000U + c.config().timeout);
  c.poll(1000 + c.config().timeout - 1);
  EXPECT_TRUE(c.busy());
  c.poll(1000 + c.config().timeout);
  EXPECT_EQ(c.state(), SdoClient::State::kFailed);
  EXPECT_EQ(c.failure(), SdoClient::Failure::kTimeout);
  ASSERT_TRUE(c.next_frame(f, 0));
  EXPECT_EQ(f.data[0], 0x80);
}

TEST(SdoClientMachine, IgnoresOtherNodesAndRejectsProtocolViolations) {
  SdoClient c(3);
  c.start_upload(0x1000, 0, SdoMode::kAuto, 0);
  CanFrame f;
  while (c.next_frame(f, 0)) {
  }
  CanFrame other;
  other.id = 0x584;
  other.dlc = 8;
  other.data[0] = 0x43;
  EXPECT_FALSE(c.on_frame(other, 10));
  EXPECT_TRUE(c.busy());
  CanFrame wrong;
  wrong.id = 0x583;
  wrong.dlc = 8;
  wrong.data[0] = 0x60;  // a download answer to an upload, naming the right object
  wrong.data[2] = 0x10;
  EXPECT_TRUE(c.on_frame(wrong, 10));
  EXPECT_EQ(c.state(), SdoClient::State::kFailed);
  EXPECT_EQ(c.abort_code(), static_cast<std::uint32_t>(Abort::kCommandSpecifier));
}

TEST(SdoClientMachine, LateAnswersToEarlierRequestsAreIgnored) {
  SdoClient c(2);
  c.start_upload(0x1018, 2, SdoMode::kAuto, 0);
  CanFrame f;
  while (c.next_frame(f, 0)) {
  }
  CanFrame late;  // the answer to an earlier upload of 0x1018:1
  late.id = 0x582;
  late.dlc = 8;
  late.data[0] = 0x43;
  late.data[1] = 0x18;
  late.data[2] = 0x10;
  late.data[3] = 1;
  c.on_frame(late, 5);
  EXPECT_TRUE(c.busy());
  CanFrame right = late;
  right.data[3] = 2;
  right.data[4] = 0x42;
  c.on_frame(right, 6);
  ASSERT_EQ(c.state(), SdoClient::State::kDone);
  EXPECT_EQ(c.data()[0], 0x42);
}

TEST(SdoClientMachine, RetransmitsFromAckseq) {
  SdoClient c(1);
  std::vector<std::uint8_t> data(70);
  std::iota(data.begin(), data.end(), 0);
  c.start_download(0x1F50, 1, data, SdoMode::kBlock, 0);
  CanFrame f;
  ASSERT_TRUE(c.next_frame(f, 0));
  EXPECT_EQ(f.data[0], 0xC6);  // block download, CRC, size
  CanFrame r;
  r.id = 0x581;
  r.dlc = 8;
  r.data[0] = 0xA4;
  r.data[1] = 0x50;
  r.data[2] = 0x1F;
  r.data[3] = 1;
  r.data[4] = 4;  // blksize 4
  c.on_frame(r, 1);
  int sent = 0;
  while (c.next_frame(f, 2)) ++sent;
  EXPECT_EQ(sent, 4);
  EXPECT_EQ(f.data[0], 4);
  // Ack only 2 of 4, next blksize 3: the client resends from byte 14 with seqno 1.
  CanFrame ack;
  ack.id = 0x581;
  ack.dlc = 8;
  ack.data[0] = 0xA2;
  ack.data[1] = 2;
  ack.data[2] = 3;
  c.on_frame(ack, 3);
  EXPECT_EQ(c.bytes_done(), 14U);
  ASSERT_TRUE(c.next_frame(f, 4));
  EXPECT_EQ(f.data[0], 1);
  EXPECT_EQ(f.data[1], 14);
  sent = 1;
  while (c.next_frame(f, 4)) ++sent;
  EXPECT_EQ(sent, 3);
  EXPECT_EQ(c.retransmitted_segments(), 2U);
}

TEST(AbortMessages, EveryCoreAbortCodeHasText) {
  for (std::uint32_t code :
       {0x05030000U, 0x05040000U, 0x05040001U, 0x05040002U, 0x05040003U, 0x05040004U,
        0x05040005U, 0x06010000U, 0x06010001U, 0x06010002U, 0x06020000U, 0x06040047U,
        0x06060000U, 0x06070010U, 0x06070012U, 0x06070013U, 0x06090011U, 0x06090030U,
        0x08000000U, 0x08000020U, 0x08000021U, 0x08000022U}) {
    const std::string m = abort_message(code);
    EXPECT_EQ(m.find("unknown abort code"), std::string::npos) << m;
    EXPECT_EQ(m.substr(0, 10), fmt::format("0x{:08X}", code));
  }
  EXPECT_NE(abort_message(0x12345678).find("unknown"), std::string::npos);
}

}  // namespace
}  // namespace rtcanboot::host
