// End to end: CiA 305 LSS with the real bootloader on eight unconfigured twin boards, each with
// its own OCOTP unique ID, driven by the host tool's LSS master in virtual time. Fastscan finds all
// eight, automatic numbering gives node-IDs 10-17 and stores them, a power cycle brings all eight
// up configured, then LSS switches the whole bus from 500 kbit/s to 1 Mbit/s and nodes are flashed
// at the new rate.
#include <algorithm>
#include <cstdio>

#include "e2e_rig.hpp"
#include "rtcanboot/hash.hpp"
#include "rtcanboot/host/lss_master.hpp"
#include "rtcanboot/lss.hpp"

namespace rtcanboot::e2e {
namespace {

constexpr int kBoards = 8;

std::array<std::uint32_t, 3> fuses(int i) {
  // Scattered, so the serials share no obvious order with the board index.
  return {0x3C00'0000U ^ static_cast<std::uint32_t>(i * 0x0193'5A27),
          0x0000'1064U + static_cast<std::uint32_t>(i), 0};
}

std::uint32_t serial_of(int i) {
  const auto f = fuses(i);
  return serial_from_unique_id(f[0], f[1], f[2]);
}

void power_cycle(std::vector<tw::Board*>& boards, Rig& rig) {
  for (tw::Board* b : boards) b->power_off("power cycle");
  rig.listen_for(20'000);
  for (tw::Board* b : boards) b->power_on();
}

bool sent_by_node(const Rig& rig, Micros since) {
  for (const auto& f : rig.log()) {
    if (f.at >= since && f.frame.id != lss::kSlaveCobId) return true;
  }
  return false;
}

TEST(E2eLss, EightUnconfiguredBoardsNumberedStoredSwitchedTo1MbitAndFlashed) {
  E2E_REQUIRE_FIRMWARE(2);
  Rig rig(500'000);
  std::vector<tw::Board*> boards;
  std::vector<std::uint32_t> serials;
  for (int i = 0; i < kBoards; ++i) {
    NodeSpec spec;
    spec.node_id = lss::kUnconfigured;  // factory record without a node-ID
    spec.name = "board" + std::to_string(i);
    spec.ocotp = fuses(i);
    boards.push_back(&rig.add_board(spec));
    serials.push_back(serial_of(i));
  }
  std::vector<std::uint32_t> sorted = serials;
  std::sort(sorted.begin(), sorted.end());

  // CiA 305: no node-ID, no boot-up, no heartbeat.
  rig.listen_for(1'000'000);
  EXPECT_FALSE(sent_by_node(rig, 0)) << "an unconfigured node sent something";

  host::LssMaster lss(rig.transport());
  ASSERT_TRUE(lss.identify_non_configured());

  // lss scan: all eight, lowest serial first.
  Micros t = rig.now();
  const auto found = lss.scan();
  const Micros scan_time = rig.now() - t;
  ASSERT_EQ(found.size(), static_cast<std::size_t>(kBoards));
  for (int i = 0; i < kBoards; ++i) {
    EXPECT_EQ(found[i].serial, sorted[i]) << i;
    EXPECT_EQ(found[i].vendor_id, found[0].vendor_id);
    EXPECT_EQ(found[i].product_code, 0x1064U);
  }
  std::printf(
      "[ figures  ] lss scan: %d nodes in %.3f s virtual (%llu Fastscan requests, %llu "
      "unanswered)\n",
      kBoards, static_cast<double>(scan_time) / 1e6,
      static_cast<unsigned long long>(lss.fastscan_requests()),
      static_cast<unsigned long long>(lss.fastscan_timeouts()));

  // lss auto --first-node 10: numbered in serial order and stored; each boots up at once.
  t = rig.now();
  const auto assigned = lss.auto_assign(10, true);
  const Micros auto_time = rig.now() - t;
  ASSERT_EQ(assigned.size(), static_cast<std::size_t>(kBoards));
  for (int i = 0; i < kBoards; ++i) {
    EXPECT_EQ(assigned[i].identity.serial, sorted[i]);
    EXPECT_EQ(assigned[i].node_id, 10 + i);
    EXPECT_TRUE(assigned[i].stored);
    EXPECT_TRUE(rig.wait_boot_up(static_cast<std::uint8_t>(10 + i), t, 100'000)) << 10 + i;
    std::printf("[ figures  ] serial 0x%08X -> node %d (stored)\n", assigned[i].identity.serial,
                assigned[i].node_id);
  }
  std::printf("[ figures  ] lss auto: %d nodes numbered and stored in %.3f s virtual\n", kBoards,
              static_cast<double>(auto_time) / 1e6);
  EXPECT_FALSE(lss.identify_non_configured());

  // Power cycle: all eight boot configured, in the bootloader; each reports its own serial.
  t = rig.now();
  power_cycle(boards, rig);
  for (int i = 0; i < kBoards; ++i) {
    const auto node = static_cast<std::uint8_t>(10 + i);
    ASSERT_TRUE(rig.wait_boot_up(node, t, 1'000'000)) << int{node};
    EXPECT_EQ(rig.master().upload_u32(node, co::od::kIdentity, 4), sorted[i]);
    EXPECT_EQ(rig.master().upload_u8(node, co::od::kRtcanbootInfo, 1), co::kRunningBootloader);
  }
  std::printf(
      "[ figures  ] after the power cycle: nodes 10-17 boot up in the bootloader, 0x1018:4 = their "
      "serials\n");

  // The whole bus from 500 kbit/s to 1 Mbit/s: configure and store on every node, activate with a
  // 100 ms switch delay, the master's adapter follows, back to waiting at the new rate.
  lss.switch_global(lss::Mode::kConfiguration);
  const auto configured = lss.configure_bit_timing_all(0);
  ASSERT_FALSE(configured.empty());
  for (const auto& a : configured) EXPECT_EQ(a.code, lss::kSuccess);
  const auto stored = lss.store_configuration_all();
  ASSERT_FALSE(stored.empty());
  for (const auto& a : stored) EXPECT_EQ(a.code, lss::kSuccess);
  lss.activate_bit_timing(100);
  rig.listen_for(2'000);  // the activate frame leaves at 500 kbit/s
  rig.bus().set_bitrate(1'000'000, 150'000'000);
  rig.listen_for(250'000);
  lss.switch_global(lss::Mode::kWaiting);
  for (int i = 0; i < kBoards; ++i) {
    EXPECT_EQ(rig.master().upload_u32(static_cast<std::uint8_t>(10 + i), co::od::kIdentity, 4),
              sorted[i]);
  }

  // Flashed at 1 Mbit/s: the first and the last node.
  const host::LoadedInput app = example_app();
  for (std::uint8_t node : {10, 17}) {
    t = rig.now();
    const host::UpdateResult r = rig.update(node, app, 1);
    EXPECT_TRUE(r.started) << int{node};
    EXPECT_TRUE(rig.application_runs(node, t)) << int{node};
  }

  // Another power cycle: the stored bit rate and node-IDs hold; the flashed nodes start their
  // application with the same identity.
  t = rig.now();
  power_cycle(boards, rig);
  for (int i = 0; i < kBoards; ++i) {
    const auto node = static_cast<std::uint8_t>(10 + i);
    ASSERT_TRUE(rig.wait_boot_up(node, t, 1'000'000)) << int{node};
    EXPECT_EQ(rig.master().upload_u32(node, co::od::kIdentity, 4), sorted[i]) << int{node};
  }
  EXPECT_EQ(rig.master().upload_u8(10, co::od::kRtcanbootInfo, 1), co::kRunningApplication);
  EXPECT_EQ(rig.master().upload_u8(17, co::od::kRtcanbootInfo, 1), co::kRunningApplication);
  EXPECT_EQ(rig.master().upload_u8(11, co::od::kRtcanbootInfo, 1), co::kRunningBootloader);

  EXPECT_TRUE(rig.bus_faults().empty()) << rig.bus_faults().front();
  for (tw::Board* b : boards) EXPECT_EQ(faults_of(*b), "") << b->name();
}

}  // namespace
}  // namespace rtcanboot::e2e
