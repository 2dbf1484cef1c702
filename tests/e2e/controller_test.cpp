// End to end: the port's FlexCAN driver under conditions the bus and the controller impose on
// the real firmware (issue 16). A saturated bus must not leave stale heartbeats queued behind it
// (item 9), and a controller that refuses the freeze handshake is reported, reset and never
// configured outside freeze mode (item 15). A heartbeat that cannot win arbitration never holds
// up an SDO answer (the fleet benchmark's concurrent downloads).
#include "e2e_rig.hpp"

namespace rtcanboot::e2e {
namespace {

constexpr std::uint8_t kNode = 6;
constexpr std::uint32_t kBitrate = 1'000'000;
constexpr std::uint32_t kHeartbeatId = co::kHeartbeatBase + kNode;

class E2eController : public ::testing::Test {
 protected:
  void SetUp() override { E2E_REQUIRE_FIRMWARE(2); }

  void TearDown() override {
    if (board_ == nullptr) return;
    EXPECT_EQ(board_->fault_count(), 0u) << faults_of(*board_);
    EXPECT_EQ(rig_.bus_faults().size(), 0u);
  }

  // Back-to-back 8-byte frames with identifier `id` from another node until stop_flood(); 0x001
  // wins every arbitration: the node cannot send anything while they last.
  void start_flood(std::uint32_t id = 0x001) {
    CanFrame frame;
    frame.id = id;
    frame.dlc = 8;
    flooding_ = true;
    flood_.on_transmitted([this, frame](const tc::TimedFrame&) {
      if (flooding_) flood_.send(frame);
    });
    rig_.bus().attach(flood_);
    flood_.send(frame);
    flood_.send(frame);
  }
  void stop_flood() { flooding_ = false; }
  void flood_for(Micros duration) {
    start_flood();
    rig_.listen_for(duration);
    stop_flood();
  }

  std::size_t count(Micros from, Micros to, std::uint32_t id) const {
    std::size_t n = 0;
    for (const auto& f : rig_.log()) {
      if (f.at >= from && f.at < to && f.frame.id == id) ++n;
    }
    return n;
  }

  Rig rig_{kBitrate};
  tc::Endpoint flood_{"flood"};
  bool flooding_ = false;
  tw::Board* board_ = nullptr;
};

// Item 9. The bootloader's heartbeat (1 s) waits behind 3.5 s of a saturated bus: the heartbeat
// that lost arbitration in its MB says what the later ones would say, so it stays (no abort,
// which is where errata 6032 bites) and the later ones are not queued: exactly one heartbeat
// leaves when the bus frees up, and the next one a period later. Before the fix the node sent
// three stale heartbeats back to back.
TEST_F(E2eController, NoStaleHeartbeatsAfterASaturatedBus) {
  board_ = &rig_.add_board(node(kNode));
  ASSERT_TRUE(rig_.wait_boot_up(kNode, 0, 500'000).has_value());
  rig_.listen_for(100'000);
  const Micros flood_start = rig_.now();
  flood_for(3'500'000);
  const Micros flood_end = rig_.now();
  EXPECT_EQ(count(flood_start + 1'000, flood_end, kHeartbeatId), 0u)
      << "the flood must keep the node off the bus";
  rig_.listen_for(2'500'000);
  std::vector<Micros> after;
  for (const auto& f : rig_.log()) {
    if (f.at >= flood_end && f.frame.id == kHeartbeatId) {
      after.push_back(f.at);
      EXPECT_EQ(f.frame.dlc, 1);
      EXPECT_EQ(f.frame.data[0], 0x7F) << "PRE-OPERATIONAL";
    }
  }
  EXPECT_EQ(count(flood_end, flood_end + 20'000, kHeartbeatId), 1u)
      << "one heartbeat when the bus frees up, not one per missed period";
  ASSERT_GE(after.size(), 3u);
  EXPECT_GE(after[1] - after[0], 20'000u) << "no second heartbeat back to back";
  for (std::size_t i = 2; i < after.size(); ++i) {
    EXPECT_GE(after[i] - after[i - 1], 990'000u) << "then one per period";
  }
  EXPECT_EQ(board_->flexcan(2).tx_aborts(), 0u) << "an unchanged heartbeat is not aborted";
}

// Item 9, the other half. The example application (OPERATIONAL) is put into PRE-OPERATIONAL
// (NMT, which wins arbitration over the flood) while its heartbeat waits: the waiting OPERATIONAL
// heartbeat is out of date, so it is aborted and the first heartbeat after the flood says
// PRE-OPERATIONAL. (The bootloader's own heartbeat never changes: it stays PRE-OPERATIONAL.)
TEST_F(E2eController, AWaitingHeartbeatIsReplacedWhenTheStateChanges) {
  board_ = &rig_.add_board(node(kNode));
  ASSERT_TRUE(rig_.wait_boot_up(kNode, 0, 500'000).has_value());
  ASSERT_TRUE(rig_.update(kNode, example_app()).confirmed) << board_->console();
  rig_.listen_for(1'500'000);
  const std::uint64_t aborts_before = board_->flexcan(2).tx_aborts();
  start_flood();
  rig_.listen_for(1'500'000);
  rig_.master().nmt(co::NmtCommand::kEnterPreOperational, kNode);
  rig_.listen_for(2'000'000);
  stop_flood();
  const Micros flood_end = rig_.now();
  rig_.listen_for(1'500'000);
  std::vector<CanFrame> after;
  for (const auto& f : rig_.log()) {
    if (f.at >= flood_end && f.frame.id == kHeartbeatId) after.push_back(f.frame);
  }
  ASSERT_GE(after.size(), 2u);
  EXPECT_EQ(after[0].data[0], 0x7F) << "PRE-OPERATIONAL, not the OPERATIONAL that waited";
  EXPECT_EQ(after[1].data[0], 0x7F);
  EXPECT_EQ(count(flood_end, flood_end + 20'000, kHeartbeatId), 1u);
  EXPECT_EQ(board_->flexcan(2).tx_aborts() - aborts_before, 1u);
}

// Found by the fleet benchmark (issue 14): four concurrent SDO block downloads keep the bus busy
// with client frames (0x60A..0x60D) that win against any heartbeat (0x70x). A heartbeat waiting
// in the one transmit MB then held up every SDO answer queued behind it, and the master's
// transfers timed out. The heartbeat now has its own MB: while another node floods the bus with
// 0x650 (below the SDO answers, above the heartbeat) for 3.5 s, every SDO request is answered
// at once, and the heartbeat leaves only once the flood ends.
TEST_F(E2eController, AHeartbeatThatCannotWinArbitrationDoesNotHoldUpSdoAnswers) {
  board_ = &rig_.add_board(node(kNode));
  ASSERT_TRUE(rig_.wait_boot_up(kNode, 0, 500'000).has_value());
  rig_.master().options().sdo.timeout = 50'000;
  rig_.master().options().retries = 0;
  start_flood(0x650);
  const Micros flood_start = rig_.now();
  int answered = 0;
  while (rig_.now() < flood_start + 3'500'000) {
    EXPECT_NO_THROW(rig_.master().upload_u32(kNode, co::od::kDeviceType, 0))
        << "at " << (rig_.now() - flood_start) / 1000 << " ms into the flood";
    ++answered;
    rig_.listen_for(20'000);
  }
  stop_flood();
  const Micros flood_end = rig_.now();
  EXPECT_GT(answered, 100);
  EXPECT_EQ(count(flood_start + 1'000, flood_end, kHeartbeatId), 0u)
      << "the flood keeps the heartbeat off the bus";
  rig_.listen_for(1'500'000);
  EXPECT_GE(count(flood_end, rig_.now(), kHeartbeatId), 1u);
}

// Item 15. The freeze requests at enable and after the driver's first soft reset are refused
// (each until a soft reset): the driver's freeze entry times out, says so on the console,
// soft-resets and starts normally.
TEST_F(E2eController, RefusedFreezeIsReportedAndRecoveredBySoftReset) {
  board_ = &rig_.add_board(node(kNode), /*power_on=*/false);
  board_->flexcan(2).refuse_freeze(2);
  board_->power_on();
  ASSERT_TRUE(rig_.wait_boot_up(kNode, 0, 1'000'000).has_value()) << board_->console();
  EXPECT_EQ(board_->flexcan(2).freeze_refused(), 2u);
  EXPECT_NE(board_->console().find(
                "FLEXCAN2: freeze not acknowledged (MCR.FRZACK) within 25 ms: soft reset"),
            std::string::npos)
      << board_->console();
  EXPECT_EQ(board_->console().find("not started"), std::string::npos) << board_->console();
  EXPECT_EQ(rig_.master().upload_u8(kNode, co::od::kRtcanbootInfo, 1), co::kRunningBootloader);
}

// Item 15. A controller that never acknowledges freeze, not even after a soft reset: the driver
// reports it, writes nothing that needs freeze mode (the twin reports any such write as a fault)
// and keeps the node off the bus; once the controller behaves, a retry brings the node up.
TEST_F(E2eController, ControllerThatNeverFreezesIsReportedAndLeftAlone) {
  board_ = &rig_.add_board(node(kNode), /*power_on=*/false);
  board_->flexcan(2).refuse_freeze(~0U);
  board_->power_on();
  rig_.listen_for(2'500'000);
  EXPECT_EQ(count(0, rig_.now(), kHeartbeatId), 0u);
  EXPECT_NE(board_->console().find("FLEXCAN2: freeze mode not reached after a soft reset"),
            std::string::npos)
      << board_->console();
  EXPECT_NE(board_->console().find("rtcanboot: CAN controller not started, retrying in 1 s"),
            std::string::npos)
      << board_->console();
  EXPECT_GE(board_->flexcan(2).freeze_refused(), 2u);
  EXPECT_EQ(board_->fault_count(), 0u) << faults_of(*board_);

  board_->flexcan(2).refuse_freeze(0);
  const Micros t = rig_.now();
  ASSERT_TRUE(rig_.wait_boot_up(kNode, t, 2'000'000).has_value()) << board_->console();
}

// Item 15. The freeze request of the bootloader's stop() before it starts the application is
// refused once: reported, recovered by the soft reset, and the application starts.
TEST_F(E2eController, RefusedFreezeBeforeTheApplicationStarts) {
  board_ = &rig_.add_board(node(kNode));
  ASSERT_TRUE(rig_.wait_boot_up(kNode, 0, 500'000).has_value());
  const Micros t = rig_.now();
  host::UpdateEvents events;
  bool armed = false;
  events.progress = [&](std::uint64_t done, std::uint64_t total) {
    if (!armed && total > 0 && done == total) {
      armed = true;
      board_->flexcan(2).refuse_freeze(1);
    }
  };
  rig_.update(kNode, example_app(), 0, /*force=*/true, events);
  ASSERT_TRUE(armed);
  EXPECT_TRUE(rig_.application_runs(kNode, t)) << board_->console();
  EXPECT_GE(board_->flexcan(2).freeze_refused(), 1u);
  EXPECT_NE(board_->console().find("FLEXCAN2: freeze not acknowledged"), std::string::npos)
      << board_->console();
}

}  // namespace
}  // namespace rtcanboot::e2e
