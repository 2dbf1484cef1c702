// NMT slave, boot-up and heartbeat of CanopenNode.
#include <deque>

#include "canopen_node_fixture.hpp"

namespace rtcanboot::test {
namespace {

using canopen::Abort;
using canopen::NmtState;

class NmtTest : public CanopenNodeTest {
 protected:
  void expect_heartbeat(std::uint8_t state) {
    ASSERT_FALSE(frames.empty()) << "no heartbeat";
    const CanFrame frame = frames.pop();
    EXPECT_EQ(frame.id, 0x705U);
    EXPECT_EQ(frame.dlc, 1);
    EXPECT_EQ(frame.data[0], state);
  }
  void expect_boot_up() { expect_heartbeat(0x00); }
  // Starts a segmented download to 0x1F50:1 and leaves it running.
  void start_program_download() {
    sdo({0x21, 0x50, 0x1F, 0x01, 100, 0, 0, 0});
    expect_response({0x60, 0x50, 0x1F, 0x01, 0, 0, 0, 0});
    ASSERT_TRUE(node->transfer_active());
  }
};

TEST_F(NmtTest, StartSendsBootUpAndEntersPreOperational) {
  node.emplace(frames, program, config);
  EXPECT_EQ(node->state(), NmtState::kBootUp);
  node->start(now);
  expect_boot_up();
  expect_silence();
  EXPECT_EQ(node->state(), NmtState::kPreOperational);
  EXPECT_FALSE(node->addressed());
  EXPECT_FALSE(node->reset_node_requested());
  EXPECT_FALSE(node->transfer_active());
}

TEST_F(NmtTest, FramesBeforeStartAreIgnored) {
  node.emplace(frames, program, config);
  sdo({0x40, 0x00, 0x10, 0x00, 0, 0, 0, 0});
  nmt(0x81, kNodeId);
  node->poll(now + milliseconds(500));
  expect_silence();
  EXPECT_FALSE(node->reset_node_requested());
  EXPECT_FALSE(node->addressed());
  EXPECT_EQ(node->next_deadline(), ~Micros{0});
}

TEST_F(NmtTest, FirstHeartbeatOnePeriodAfterBootUpThenPeriodic) {
  const Micros boot = now;
  EXPECT_EQ(node->next_deadline(), boot + milliseconds(100));
  advance(milliseconds(100) - 1);
  expect_silence();
  advance(1);
  expect_heartbeat(0x7F);
  EXPECT_EQ(node->next_deadline(), boot + milliseconds(200));
  advance(milliseconds(100));
  expect_heartbeat(0x7F);
  expect_silence();
}

TEST_F(NmtTest, HeartbeatDoesNotDriftWhenPolledLate) {
  const Micros boot = now;
  advance(milliseconds(130));  // 30 ms late
  expect_heartbeat(0x7F);
  EXPECT_EQ(node->next_deadline(), boot + milliseconds(200));
  advance(milliseconds(1000));  // far behind: one heartbeat, then count from now
  expect_heartbeat(0x7F);
  expect_silence();
  EXPECT_EQ(node->next_deadline(), now + milliseconds(100));
}

// A transmit path that a saturated bus blocks: frames wait in the queue until the test lets them
// out. send_latest() follows the FrameSink contract (replaces a waiting frame of its kind).
class BlockedQueueSink final : public FrameSink {
 public:
  struct Entry {
    CanFrame frame;
    bool latest = false;
  };
  bool send(const CanFrame& frame) override {
    queue.push_back({frame, false});
    return true;
  }
  bool send_latest(const CanFrame& frame) override {
    for (Entry& entry : queue) {
      if (entry.latest && entry.frame.id == frame.id) {
        entry.frame = frame;
        return true;
      }
    }
    queue.push_back({frame, true});
    return true;
  }
  std::deque<Entry> queue;
};

// Issue 16 item 9: after a saturated bus the node sent stale heartbeats back to back. A heartbeat
// still waiting when the next one is due is replaced, and the one that finally leaves says the
// current state; the boot-up message is never replaced.
TEST_F(NmtTest, HeartbeatsWaitingBehindABlockedBusAreReplacedNotAdded) {
  config.is_application = true;
  config.self_starting = false;
  BlockedQueueSink blocked;
  CanopenNode n(blocked, program, config);
  n.start(now);
  for (int step = 1; step <= 100; ++step) {  // one second at 100 ms heartbeats, polled every 10 ms
    now += milliseconds(10);
    if (step == 55) n.on_frame(make_frame(0x000, {0x01, kNodeId}), now);  // NMT start
    n.poll(now);
  }
  ASSERT_EQ(blocked.queue.size(), 2U) << "boot-up and one heartbeat, not one per period";
  EXPECT_EQ(blocked.queue[0].frame.id, 0x705U);
  EXPECT_EQ(blocked.queue[0].frame.data[0], 0x00) << "the boot-up message stays";
  EXPECT_EQ(blocked.queue[1].frame.id, 0x705U);
  EXPECT_EQ(blocked.queue[1].frame.dlc, 1);
  EXPECT_EQ(blocked.queue[1].frame.data[0], 0x05) << "the heartbeat says the current state";
}

TEST_F(NmtTest, HeartbeatZeroDisables) {
  config.heartbeat_ms = 0;
  restart();
  EXPECT_EQ(node->next_deadline(), ~Micros{0});
  advance(milliseconds(10'000));
  expect_silence();
}

TEST_F(NmtTest, WritingHeartbeatTimeRestartsThePeriod) {
  advance(milliseconds(30));
  sdo({0x2B, 0x17, 0x10, 0x00, 50, 0, 0, 0});
  expect_response({0x60, 0x17, 0x10, 0x00, 0, 0, 0, 0});
  EXPECT_EQ(node->heartbeat_ms(), 50);
  EXPECT_EQ(node->next_deadline(), now + milliseconds(50));
  advance(milliseconds(49));
  expect_silence();
  advance(milliseconds(1));
  expect_heartbeat(0x7F);

  sdo({0x2B, 0x17, 0x10, 0x00, 0, 0, 0, 0});  // 0 disables
  expect_response({0x60, 0x17, 0x10, 0x00, 0, 0, 0, 0});
  advance(milliseconds(5000));
  expect_silence();
}

TEST_F(NmtTest, BootloaderIgnoresStartAndStop) {
  nmt(0x01, kNodeId);
  EXPECT_EQ(node->state(), NmtState::kPreOperational);
  nmt(0x02, 0);
  EXPECT_EQ(node->state(), NmtState::kPreOperational);
  nmt(0x80, kNodeId);
  EXPECT_EQ(node->state(), NmtState::kPreOperational);
  expect_silence();
  advance(milliseconds(100));
  expect_heartbeat(0x7F);
  // SDO keeps working after a stop request.
  EXPECT_EQ(upload_expedited(0x1001, 0), (Bytes8{0x4F, 0x01, 0x10, 0x00, 0, 0, 0, 0}));
}

TEST_F(NmtTest, AddressedByNodeCommandNotByBroadcast) {
  nmt(0x80, 0);
  EXPECT_FALSE(node->addressed());
  nmt(0x80, kNodeId + 1);
  EXPECT_FALSE(node->addressed());
  nmt(0x80, kNodeId);
  EXPECT_TRUE(node->addressed());
}

TEST_F(NmtTest, AddressedBySdoRequest) {
  EXPECT_FALSE(node->addressed());
  upload_expedited(0x1000, 0);
  EXPECT_TRUE(node->addressed());
  node->start(now);  // "since start()"
  EXPECT_FALSE(node->addressed());
}

TEST_F(NmtTest, SdoForAnotherNodeIsIgnored) {
  node->on_frame(make_frame(0x606, Bytes8{0x40, 0x00, 0x10, 0x00, 0, 0, 0, 0}), now);
  node->on_frame(make_frame(0x585, Bytes8{0x40, 0x00, 0x10, 0x00, 0, 0, 0, 0}), now);
  expect_silence();
  EXPECT_FALSE(node->addressed());
}

TEST_F(NmtTest, SdoWithShortDlcIsIgnored) {
  node->on_frame(make_frame(kRx, {0x40, 0x00, 0x10, 0x00}), now);
  expect_silence();
  EXPECT_FALSE(node->addressed());
}

TEST_F(NmtTest, ExtendedAndRemoteFramesAreIgnored) {
  CanFrame extended = make_frame(0x000, {0x81, kNodeId});
  extended.flags = CanFrame::kExtended;
  node->on_frame(extended, now);
  CanFrame remote = make_frame(kRx, Bytes8{0x40, 0x00, 0x10, 0x00, 0, 0, 0, 0});
  remote.flags = CanFrame::kRemote;
  node->on_frame(remote, now);
  expect_silence();
  EXPECT_FALSE(node->reset_node_requested());
}

TEST_F(NmtTest, ResetNodeAddressedAndBroadcast) {
  nmt(0x81, kNodeId);
  EXPECT_TRUE(node->reset_node_requested());
  restart();
  nmt(0x81, 0);
  EXPECT_TRUE(node->reset_node_requested());
  expect_silence();
}

TEST_F(NmtTest, ResetNodeForOtherNodeIgnored) {
  nmt(0x81, kNodeId + 1);
  EXPECT_FALSE(node->reset_node_requested());
}

TEST_F(NmtTest, NmtWithWrongDlcIgnored) {
  node->on_frame(make_frame(0x000, {0x81}), now);
  node->on_frame(make_frame(0x000, {0x81, kNodeId, 0}), now);
  node->on_frame(make_frame(0x000, Bytes8{0x81, kNodeId, 0, 0, 0, 0, 0, 0}), now);
  EXPECT_FALSE(node->reset_node_requested());
  EXPECT_FALSE(node->addressed());
}

TEST_F(NmtTest, UnknownNmtCommandIgnored) {
  nmt(0x83, kNodeId);
  EXPECT_EQ(node->state(), NmtState::kPreOperational);
  EXPECT_FALSE(node->reset_node_requested());
  expect_silence();
}

TEST_F(NmtTest, ResetCommunicationAbortsTransferRestoresHeartbeatAndBootsUp) {
  sdo({0x2B, 0x17, 0x10, 0x00, 0x20, 0x03, 0, 0});  // 800 ms
  expect_response({0x60, 0x17, 0x10, 0x00, 0, 0, 0, 0});
  start_program_download();

  advance(milliseconds(10));
  nmt(0x82, kNodeId);
  expect_boot_up();
  expect_silence();  // no abort frame: the connection is reset
  EXPECT_FALSE(node->transfer_active());
  EXPECT_EQ(program.sink.cancel_calls, 1);
  EXPECT_EQ(node->heartbeat_ms(), 100);
  EXPECT_EQ(node->state(), NmtState::kPreOperational);
  EXPECT_FALSE(node->reset_node_requested());

  advance(milliseconds(100));
  expect_heartbeat(0x7F);
  // The old transfer's segment now gets an abort; a new transfer works.
  sdo({0x00, 1, 2, 3, 4, 5, 6, 7});
  expect_abort(0, 0, Abort::kCommandSpecifier);
  expect_recovers();
}

TEST_F(NmtTest, BroadcastResetCommunication) {
  nmt(0x82, 0);
  expect_boot_up();
  EXPECT_FALSE(node->addressed());
}

class ApplicationNmtTest : public NmtTest {
 protected:
  void SetUp() override {
    config.is_application = true;
    restart();
  }
};

TEST_F(ApplicationNmtTest, FollowsStartStopAndPreOperational) {
  nmt(0x01, kNodeId);
  EXPECT_EQ(node->state(), NmtState::kOperational);
  advance(milliseconds(100));
  expect_heartbeat(0x05);

  nmt(0x02, 0);
  EXPECT_EQ(node->state(), NmtState::kStopped);
  advance(milliseconds(100));
  expect_heartbeat(0x04);

  nmt(0x80, kNodeId);
  EXPECT_EQ(node->state(), NmtState::kPreOperational);
  advance(milliseconds(100));
  expect_heartbeat(0x7F);
}

TEST_F(ApplicationNmtTest, SdoIgnoredWhileStopped) {
  nmt(0x02, kNodeId);
  sdo({0x40, 0x00, 0x10, 0x00, 0, 0, 0, 0});
  expect_silence();
  nmt(0x01, kNodeId);
  EXPECT_EQ(upload_expedited(0x1000, 0), (Bytes8{0x43, 0x00, 0x10, 0x00, 0, 0, 0, 0}));
}

TEST_F(ApplicationNmtTest, StopCancelsRunningTransfer) {
  start_program_download();
  nmt(0x02, kNodeId);
  expect_silence();
  EXPECT_FALSE(node->transfer_active());
  EXPECT_EQ(program.sink.cancel_calls, 1);
  EXPECT_EQ(program.sink.cancel_reason, Abort::kDeviceState);
}

TEST_F(ApplicationNmtTest, ResetCommunicationFromStoppedGoesPreOperational) {
  nmt(0x02, kNodeId);
  nmt(0x82, kNodeId);
  expect_boot_up();
  EXPECT_EQ(node->state(), NmtState::kPreOperational);
  nmt(0x81, kNodeId);
  EXPECT_TRUE(node->reset_node_requested());
}

TEST_F(ApplicationNmtTest, SelfStartingApplicationIsOperationalAfterEachBootUp) {
  config.self_starting = true;
  restart();  // sent the boot-up (restart() drops it)
  EXPECT_EQ(node->state(), NmtState::kOperational);
  EXPECT_FALSE(node->addressed());
  advance(milliseconds(100));
  expect_heartbeat(0x05);
  nmt(0x80, kNodeId);  // a master may still hold it in PRE-OPERATIONAL
  EXPECT_EQ(node->state(), NmtState::kPreOperational);
  nmt(0x82, kNodeId);  // reset communication starts it again
  expect_boot_up();
  EXPECT_EQ(node->state(), NmtState::kOperational);
}

TEST_F(NmtTest, SelfStartingIsIgnoredByTheBootloader) {
  config.self_starting = true;
  restart();
  EXPECT_EQ(node->state(), NmtState::kPreOperational);
}

}  // namespace
}  // namespace rtcanboot::test
