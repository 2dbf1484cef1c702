// End to end: the fleet update (`rtcanboot flash --nodes`, docs/fleet-update.md) with the real
// bootloader on several twin boards on one 1 Mbit/s bus, and the faults issue 14 names: frames
// lost at one follower only, a node of another product, a node whose bootloader cannot follow,
// a lead that stops answering and a follower that loses power mid-stream. Every node that can
// hold the image ends up running it; the result names each failed node and why.
#include <algorithm>
#include <cstdio>
#include <string>

#include "e2e_rig.hpp"
#include "rtcanboot/hash.hpp"
#include "rtcanboot/host/fleet.hpp"

namespace rtcanboot::e2e {
namespace {

using host::FleetNodeState;

const host::FleetNodeResult& row(const host::FleetResult& r, std::uint8_t node) {
  const auto it = std::find_if(r.nodes.begin(), r.nodes.end(),
                               [node](const host::FleetNodeResult& n) { return n.node == node; });
  EXPECT_NE(it, r.nodes.end()) << "node " << int{node} << " missing from the result";
  return *it;
}

void print(const host::FleetResult& r, const char* what) {
  std::printf("[ figures  ] %s: %.3f s, leads", what, static_cast<double>(r.time) / 1e6);
  for (const std::uint8_t lead : r.leads) std::printf(" %u", lead);
  std::printf("\n%s%s", host::format_fleet_table(r.nodes).c_str(),
              host::format_fleet_summary(r).c_str());
}

// Boards that come up in their bootloader (no application yet) and announce it.
void add_boards(Rig& rig, std::initializer_list<std::uint8_t> ids,
                const std::string& bootloader = {}) {
  for (const std::uint8_t id : ids) {
    NodeSpec spec = node(id);
    spec.bootloader = bootloader;
    tw::Board& board = rig.add_board(spec);
    ASSERT_TRUE(rig.wait_boot_up(id, 0, 500'000).has_value()) << board.console();
  }
}

tw::Board& board_of(Rig& rig, std::uint8_t id) {
  for (auto& b : rig.sim().boards()) {
    if (b->name() == "node" + std::to_string(id)) return *b;
  }
  throw std::runtime_error("no board for node " + std::to_string(id));
}

TEST(E2eFleet, FollowersLossAnotherProductAndANodeThatCannotFollow) {
  E2E_REQUIRE_FIRMWARE(2);
  Rig rig(1'000'000);
  add_boards(rig, {10, 11, 12, 13});
  add_boards(rig, {14}, "bootloader-variants/rtcanboot-bootloader-nofollow.bin");
  add_boards(rig, {15}, "bootloader-variants/rtcanboot-bootloader-otherproduct.bin");
  if (HasFatalFailure()) return;
  // Node 12's controller misses three of the client's block segments (one receiver only).
  tc::FaultRule lossy;
  lossy.action = tc::FaultRule::Action::kDrop;
  lossy.rate = 0.002;
  lossy.id = co::kSdoRxBase + 10;
  lossy.id_mask = 0x7FF;
  lossy.limit = 3;
  lossy.receiver = "node12/FLEXCAN2";
  rig.bus().add_fault(lossy);

  const host::LoadedInput app = padded_example_app(24, 31);
  const std::uint32_t crc = crc32(0, app.image->bytes.data(), app.image->bytes.size());
  host::FleetOptions options;
  options.nodes = {10, 11, 12, 13, 14, 15};
  int table_updates = 0;
  host::FleetEvents events;
  events.changed = [&](const std::vector<host::FleetNodeResult>&) { ++table_updates; };
  const Micros t0 = rig.now();
  const host::FleetResult r = host::run_fleet_update(rig.master(), app, options, events);
  print(r, "6 nodes, listen-along");

  EXPECT_EQ(r.expected_id, crc);
  ASSERT_EQ(r.leads, std::vector<std::uint8_t>{10});
  EXPECT_EQ(row(r, 10).role, "lead");
  for (const std::uint8_t follower : {11, 12, 13}) {
    EXPECT_EQ(row(r, follower).role, "follower") << int{follower};
  }
  // Nodes 11 and 13 took everything from the stream; node 12 got exactly the bytes it missed,
  // a patch without an erase (0x5F04:6 listed them).
  EXPECT_EQ(row(r, 11).repairs, 0U);
  EXPECT_EQ(row(r, 13).repairs, 0U);
  EXPECT_EQ(row(r, 11).follow_state, static_cast<std::uint8_t>(co::ListenAlongState::kComplete));
  EXPECT_EQ(row(r, 12).follow_state, static_cast<std::uint8_t>(co::ListenAlongState::kGaps));
  EXPECT_EQ(row(r, 12).repairs, 1U);
  EXPECT_EQ(row(r, 12).repair_sectors, 0U);
  EXPECT_GE(row(r, 12).gap_bytes, 7U);
  EXPECT_LE(row(r, 12).gap_bytes, 21U);
  EXPECT_EQ(row(r, 12).patched_bytes, row(r, 12).gap_bytes);
  // The node that cannot follow was updated by unicast.
  EXPECT_EQ(row(r, 14).role, "unicast");
  EXPECT_EQ(row(r, 14).follow_state, std::nullopt);
  // The node of another product was left alone, the others went on.
  EXPECT_EQ(row(r, 15).state, FleetNodeState::kFailed);
  EXPECT_EQ(row(r, 15).error, host::ErrorKind::kWrongProduct);
  EXPECT_EQ(r.exit_code(), host::exit_code(host::ErrorKind::kWrongProduct));
  for (const std::uint8_t id : {10, 11, 12, 13, 14}) {
    EXPECT_EQ(row(r, id).state, FleetNodeState::kDone) << int{id} << ": " << row(r, id).message;
    EXPECT_EQ(row(r, id).software_id, crc) << int{id};
    EXPECT_TRUE(row(r, id).started) << int{id};
    EXPECT_TRUE(rig.application_runs(id, t0)) << int{id};
  }
  EXPECT_EQ(rig.master().upload_u8(15, co::od::kRtcanbootInfo, 1), co::kRunningBootloader);
  EXPECT_GT(table_updates, 20);
  // The followers sent nothing between the lead's answers to the block initiate and to its end.
  const auto& log = rig.log();
  const auto first = std::find_if(log.begin(), log.end(), [&](const LoggedFrame& f) {
    return f.at >= t0 && f.frame.id == co::kSdoTxBase + 10 && (f.frame.data[0] & 0xFB) == 0xA0;
  });
  const auto last = std::find_if(first, log.end(), [&](const LoggedFrame& f) {
    return f.frame.id == co::kSdoTxBase + 10 && f.frame.data[0] == 0xA1;
  });
  ASSERT_NE(last, log.end());
  for (auto it = first; it != last; ++it) {
    const std::uint32_t from = it->frame.id & 0x7F;
    EXPECT_TRUE(from < 11 || from > 13) << "node " << from << " sent a frame during the stream";
  }
  EXPECT_TRUE(rig.bus_faults().empty());

  // The same image again: every node already holds it, nothing is sent.
  const host::FleetResult again = host::run_fleet_update(rig.master(), app, options);
  for (const std::uint8_t id : {10, 11, 12, 13, 14}) {
    EXPECT_EQ(row(again, id).state, FleetNodeState::kSkipped) << int{id};
  }
  EXPECT_TRUE(again.leads.empty());
}

// Nodes 5, 6 and 7 in their bootloaders, a 96 KiB image for all three.
class E2eFleetOfThree : public ::testing::Test {
 protected:
  void SetUp() override {
    E2E_REQUIRE_FIRMWARE(2);
    add_boards(rig, {5, 6, 7});
    app = padded_example_app(24, 31);
    options.nodes = {5, 6, 7};
  }
  Rig rig{1'000'000};
  host::LoadedInput app;
  host::FleetOptions options;
  host::FleetEvents events;
};

TEST_F(E2eFleetOfThree, ALeadThatStopsAnsweringIsReplacedAndTheFollowersPickUp) {
  bool cut = false;
  std::uint64_t cut_at = 0;
  events.lead_progress = [&](std::uint8_t lead, std::uint64_t done, std::uint64_t total) {
    if (lead == 5 && !cut && done > total / 2) {
      board_of(rig, 5).power_off("the lead dies mid-stream (fleet test)");
      cut = true;
      cut_at = done;
    }
  };
  const host::FleetResult r = host::run_fleet_update(rig.master(), app, options, events);
  print(r, "lead lost at 50 %");
  ASSERT_TRUE(cut);
  EXPECT_EQ(r.leads, (std::vector<std::uint8_t>{5, 6}));
  EXPECT_EQ(row(r, 5).state, FleetNodeState::kFailed);
  EXPECT_EQ(row(r, 5).error, host::ErrorKind::kTimeout);
  EXPECT_EQ(r.exit_code(), host::exit_code(host::ErrorKind::kTimeout));
  // The new lead received only what it still lacked (it had followed the first half), and
  // node 7 followed it and needed no repair.
  EXPECT_EQ(row(r, 6).state, FleetNodeState::kDone) << row(r, 6).message;
  EXPECT_EQ(row(r, 7).state, FleetNodeState::kDone) << row(r, 7).message;
  EXPECT_LT(row(r, 6).bytes, r.container_bytes - cut_at / 2);
  EXPECT_EQ(row(r, 7).repairs, 0U);
  EXPECT_EQ(row(r, 7).follow_state, static_cast<std::uint8_t>(co::ListenAlongState::kComplete));
}

TEST_F(E2eFleetOfThree, AFollowerThatLosesPowerMidStreamIsRepaired) {
  int phase = 0;
  events.lead_progress = [&](std::uint8_t, std::uint64_t done, std::uint64_t total) {
    if (phase == 0 && done > total / 3) {
      board_of(rig, 7).power_off("a follower loses power (fleet test)");
      phase = 1;
    } else if (phase == 1 && done > total / 2) {
      board_of(rig, 7).power_on();
      phase = 2;
    }
  };
  const host::FleetResult r = host::run_fleet_update(rig.master(), app, options, events);
  print(r, "follower power loss");
  EXPECT_EQ(phase, 2);
  EXPECT_EQ(r.exit_code(), 0);
  EXPECT_EQ(r.leads, std::vector<std::uint8_t>{5});
  EXPECT_EQ(row(r, 6).repairs, 0U);
  EXPECT_EQ(row(r, 7).repairs, 1U);
  EXPECT_EQ(row(r, 7).state, FleetNodeState::kDone) << row(r, 7).message;
}

TEST(E2eFleet, UnicastAndSequentialModesUpdateEveryNode) {
  E2E_REQUIRE_FIRMWARE(2);
  Rig rig(1'000'000);
  add_boards(rig, {5, 6, 7});
  if (HasFatalFailure()) return;
  std::uint32_t sectors = 8;
  for (const host::FleetMode mode : {host::FleetMode::kUnicast, host::FleetMode::kSequential}) {
    // Another image each time: the second mode also replaces an installed one.
    const host::LoadedInput app = padded_example_app(sectors++, 31);
    const std::uint32_t crc = crc32(0, app.image->bytes.data(), app.image->bytes.size());
    host::FleetOptions options;
    options.nodes = {5, 6, 7};
    options.mode = mode;
    options.update.force = true;
    options.update.start = false;
    const host::FleetResult r = host::run_fleet_update(rig.master(), app, options);
    print(r, host::to_string(mode));
    EXPECT_EQ(r.exit_code(), 0) << host::to_string(mode);
    EXPECT_TRUE(r.leads.empty());
    for (const std::uint8_t id : {5, 6, 7}) {
      EXPECT_EQ(row(r, id).state, FleetNodeState::kDone) << int{id} << ": " << row(r, id).message;
      EXPECT_EQ(row(r, id).role, "unicast");
      EXPECT_EQ(rig.master().upload_u32(id, co::od::kSoftwareId, 1), crc);
      EXPECT_EQ(rig.master().upload_u32(id, co::od::kFlashStatus, 1), 0U);
    }
  }
}

}  // namespace
}  // namespace rtcanboot::e2e
