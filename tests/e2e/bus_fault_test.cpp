// End to end: bus faults injected in the twin's CAN bus while the host tool's update flow runs a
// block download into the real bootloader. CAN-level faults (corrupted frames, error frames, a
// bus-off episode) are repaired by the controllers' retransmission; frames lost above CAN
// (dropped) are repaired by the block transfer's acknowledge/resend, or end the transfer with a
// clean abort after which a retry succeeds.
#include "e2e_rig.hpp"

namespace rtcanboot::e2e {
namespace {

constexpr std::uint8_t kNode = 6;
constexpr std::uint32_t kBitrate = 1'000'000;

class E2eBusFault : public ::testing::Test {
 protected:
  void SetUp() override {
    E2E_REQUIRE_FIRMWARE(2);
    board_ = &rig_.add_board(node(kNode));
    before_ = bootloader_region(*board_);
    ASSERT_TRUE(rig_.wait_boot_up(kNode, 0, 500'000).has_value());
  }

  // Runs the update; `inject` is called once, when a third of the container has been confirmed.
  // Returns the error of a failed attempt (empty when the update succeeded).
  std::string update_with(const std::function<void()>& inject) {
    host::UpdateEvents events;
    bool injected = false;
    events.progress = [&](std::uint64_t done, std::uint64_t total) {
      if (!injected && total > 0 && done >= total / 3) {
        injected = true;
        inject();
      }
    };
    const Micros t = rig_.now();
    try {
      rig_.update(kNode, example_app(), 0, /*force=*/true, events);
    } catch (const host::Error& e) {
      EXPECT_TRUE(injected);
      return e.what();
    }
    EXPECT_TRUE(injected);
    EXPECT_TRUE(rig_.application_runs(kNode, t));
    return {};
  }

  // After a failed attempt: the transfer ended cleanly (the node is idle and answers), and the
  // same update without faults succeeds.
  void retry_succeeds() {
    rig_.bus().clear_faults();
    rig_.listen_for(2'000'000);  // both sides' SDO timeouts have passed
    const Micros t = rig_.now();
    rig_.update(kNode, example_app(), 0, /*force=*/true);
    EXPECT_TRUE(rig_.application_runs(kNode, t));
  }

  void TearDown() override {
    if (board_ == nullptr) return;
    EXPECT_EQ(bootloader_region(*board_), before_);
    EXPECT_EQ(board_->fault_count(), 0u) << faults_of(*board_);
  }

  tc::FaultRule rule(tc::FaultRule::Action action, double rate, std::uint64_t limit,
                     std::uint32_t id = 0, std::uint32_t mask = 0) {
    tc::FaultRule r;
    r.action = action;
    r.rate = rate;
    r.limit = limit;
    r.id = id;
    r.id_mask = mask;
    return r;
  }

  Rig rig_{kBitrate};
  tw::Board* board_ = nullptr;
  std::vector<std::uint8_t> before_;
};

// Corrupted frames: every receiver sees a CRC error, the transmitter retransmits; the SDO layer
// sees nothing missing.
TEST_F(E2eBusFault, CorruptedFramesAreRetransmittedByCan) {
  rig_.bus().set_seed(7);
  const auto errors_before = rig_.bus().stats().error_frames;
  const std::string error =
      update_with([&] { rig_.bus().add_fault(rule(tc::FaultRule::Action::kCorrupt, 0.05, 40)); });
  EXPECT_EQ(error, "");
  ASSERT_EQ(rig_.bus().faults().size(), 1u);
  EXPECT_EQ(rig_.bus().faults()[0].fired, 40u);
  EXPECT_GE(rig_.bus().stats().error_frames - errors_before, 40u);
}

// Error frames (external disturbances) destroy frames in flight, both directions.
TEST_F(E2eBusFault, ErrorFramesAreRetransmittedByCan) {
  rig_.bus().set_seed(11);
  const auto errors_before = rig_.bus().stats().error_frames;
  const std::string error = update_with(
      [&] { rig_.bus().add_fault(rule(tc::FaultRule::Action::kErrorFrame, 0.05, 40)); });
  EXPECT_EQ(error, "");
  ASSERT_EQ(rig_.bus().faults().size(), 1u);
  EXPECT_EQ(rig_.bus().faults()[0].fired, 40u);
  EXPECT_GE(rig_.bus().stats().error_frames - errors_before, 40u);
}

// Frames the node never gets (acknowledged on the wire, lost above it): the block download
// resends from the node's acknowledge; a lost last segment of a sub-block or a lost
// acknowledge may cost the transfer, which then ends with an abort, and a retry succeeds.
TEST_F(E2eBusFault, DroppedSegmentsAreResentOrTheTransferAbortsAndARetrySucceeds) {
  rig_.bus().set_seed(3);
  const std::string error = update_with([&] {
    rig_.bus().add_fault(
        rule(tc::FaultRule::Action::kDrop, 0.02, 6, co::kSdoRxBase + kNode, 0x7FF));
  });
  ASSERT_EQ(rig_.bus().faults().size(), 1u);
  EXPECT_EQ(rig_.bus().faults()[0].fired, 6u);
  EXPECT_EQ(rig_.bus().stats().dropped, 6u);
  if (!error.empty()) {
    SCOPED_TRACE("first attempt: " + error);
    retry_succeeds();
  }
}

// One segment lost in the middle of a sub-block: the node acknowledges what arrived in order and
// the client resends the rest; the download completes without an abort and installs.
TEST_F(E2eBusFault, ALostSegmentIsResentInsideTheBlockTransfer) {
  host::UpdateOptions opt;
  const auto container = host::container_for_node(example_app(), opt, 0, 0x1064);
  host::SdoClient client(kNode);
  client.start_download(co::od::kProgramData, 1, container, host::SdoMode::kBlock, rig_.now());
  host::SdoClient* clients[] = {&client};
  bool injected = false;
  rig_.master().run(clients, [&](std::uint64_t done, std::uint64_t total) {
    if (!injected && done >= total / 3) {
      injected = true;  // the next frame of the master (the first segment of the next sub-block)
      rig_.bus().add_fault(
          rule(tc::FaultRule::Action::kDrop, 0.0, 1, co::kSdoRxBase + kNode, 0x7FF));
    }
  });
  ASSERT_TRUE(injected);
  EXPECT_EQ(rig_.bus().faults()[0].fired, 1u);
  ASSERT_EQ(client.state(), host::SdoClient::State::kDone) << client.error_message();
  EXPECT_GT(client.retransmitted_segments(), 0u);
  for (int i = 0; i < 100; ++i) {
    if ((rig_.master().upload_u32(kNode, co::od::kFlashStatus, 1) & 1U) == 0) break;
    rig_.listen_for(50'000);
  }
  EXPECT_EQ(rig_.master().upload_u32(kNode, co::od::kFlashStatus, 1), 0u);
  EXPECT_EQ(rig_.master().upload_u32(kNode, co::od::kSoftwareId, 1),
            host::parse_container(container, "example-app").header.payload_crc32);
}

// Every frame of the master dropped for a while: the transfer cannot go on; it ends with an SDO
// timeout/abort on both sides (the node's download is cancelled), and a retry succeeds.
TEST_F(E2eBusFault, ALongOutageAbortsCleanlyAndARetrySucceeds) {
  const std::string error = update_with([&] {
    rig_.bus().add_fault(
        rule(tc::FaultRule::Action::kDrop, 0.0, 400, co::kSdoRxBase + kNode, 0x7FF));
  });
  EXPECT_NE(error, "");
  // The node gave up the transfer: it reports an interrupted download, not busy.
  rig_.bus().clear_faults();
  rig_.listen_for(2'000'000);
  const std::uint32_t status = rig_.master().upload_u32(kNode, co::od::kFlashStatus, 1);
  EXPECT_EQ(status & 1U, 0u);
  // Whichever side gave up first: the node's SDO timeout, or the host tool's abort.
  EXPECT_TRUE(status == co::flash_status_word(false, co::FlashStatus::kUnspecified,
                                              co::FlashDetail::kAborted) ||
              status == co::flash_status_word(false, co::FlashStatus::kUnspecified,
                                              co::FlashDetail::kTransferTimeout))
      << std::hex << status;
  retry_succeeds();
}

// A bus-off episode of the node in the middle of the download: its FlexCAN leaves the bus,
// recovers after 128 x 11 recessive bits, and the transfer completes (or aborts and a retry
// succeeds).
TEST_F(E2eBusFault, BusOffEpisodeOfTheNode) {
  std::size_t bus_off_frames = 0;
  rig_.bus().set_trace([&](const std::string& line) {
    if (line.find(" 20000040#") != std::string::npos) ++bus_off_frames;
  });
  const std::string error =
      update_with([&] { rig_.bus().inject_bus_off(board_->flexcan(2), rig_.sim().now()); });
  // The node did go bus-off and came back error-active.
  EXPECT_GE(bus_off_frames, 1u);
  EXPECT_EQ(board_->flexcan(2).fault_state(), tc::FaultState::kErrorActive);
  if (!error.empty()) {
    SCOPED_TRACE("first attempt: " + error);
    retry_succeeds();
  }
}

}  // namespace
}  // namespace rtcanboot::e2e
