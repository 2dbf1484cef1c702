// The host's LSS master against the core's bootloader (LSS slave and provisioning store) on an
// in-process bus: Fastscan over several unconfigured nodes, numbering and storing, selective
// assignment, bit rate switch, identify and inquire.
#include "rtcanboot/host/lss_master.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "rtcanboot/host/error.hpp"
#include "rtcanboot/host/master.hpp"
#include "rtcanboot/provisioning.hpp"
#include "sim_nodes.hpp"

namespace rtcanboot::host {
namespace {

constexpr std::uint32_t kVendor = 0x0000'0A1B;
constexpr std::uint32_t kProduct = 0x0000'1064;
constexpr std::uint32_t kRevision = 0x0001'0200;

BootloaderSettings unconfigured(std::uint32_t serial) {
  BootloaderSettings s;
  s.identity = {kVendor, kProduct, kRevision, serial};
  s.heartbeat_ms = 0;
  s.provisioning = Provisioning{};  // no record: no node-ID
  s.provisioning.bitrate = 500'000;
  return s;
}

class LssMasterTest : public ::testing::Test {
 protected:
  void add(std::uint32_t serial) {
    boards.push_back(std::make_unique<test::SimBoard>(bus, unconfigured(serial)));
  }
  SimBus bus{500'000};
  std::vector<std::unique_ptr<test::SimBoard>> boards;
  LssMaster lss{bus};
};

TEST_F(LssMasterTest, ScanListsEveryUnconfiguredNodeLowestFirstAndChangesNothing) {
  for (std::uint32_t serial :
       {0x5000'0001U, 0x0000'0007U, 0xFFFF'FFFEU, 0x0000'0006U, 0x8000'0000U}) {
    add(serial);
  }
  std::vector<std::uint32_t> seen;
  const auto found = lss.scan({}, [&](const NodeIdentity& id) { seen.push_back(id.serial); });
  ASSERT_EQ(found.size(), 5U);
  EXPECT_EQ(seen, (std::vector<std::uint32_t>{0x6, 0x7, 0x5000'0001, 0x8000'0000, 0xFFFF'FFFE}));
  for (const auto& id : found) {
    EXPECT_EQ(id.vendor_id, kVendor);
    EXPECT_EQ(id.product_code, kProduct);
    EXPECT_EQ(id.revision, kRevision);
  }
  bus.run_until(bus.clock().now() + 1000);  // the final switch to waiting reaches the nodes
  for (auto& b : boards) {
    EXPECT_FALSE(b->bootloader()->node().configured());
    EXPECT_EQ(b->bootloader()->node().lss().mode(), lss::Mode::kWaiting);
  }
  // A second scan finds them again; with a known vendor/product/revision it needs fewer steps.
  const auto before = lss.fastscan_requests();
  const auto again = lss.scan({kVendor, kProduct, kRevision});
  EXPECT_EQ(again.size(), 5U);
  EXPECT_LT(lss.fastscan_requests() - before, 5U * 40U);
  // A wrong hint finds nothing.
  EXPECT_TRUE(lss.scan({kVendor + 1, std::nullopt, std::nullopt}).empty());
}

TEST_F(LssMasterTest, AutoAssignNumbersAndStoresAndTheNodesBootUp) {
  for (std::uint32_t serial : {30U, 10U, 20U}) add(serial);
  Master master(bus);
  std::vector<std::uint8_t> order;
  const auto done = lss.auto_assign(10, true, {}, [&](const LssMaster::Assignment& a) {
    order.push_back(a.node_id);
    EXPECT_TRUE(a.stored);
  });
  ASSERT_EQ(done.size(), 3U);
  EXPECT_EQ(done[0].identity.serial, 10U);
  EXPECT_EQ(done[0].node_id, 10);
  EXPECT_EQ(done[2].identity.serial, 30U);
  EXPECT_EQ(done[2].node_id, 12);
  master.listen_until(bus.clock().now() + 50'000);
  for (auto& b : boards) EXPECT_TRUE(b->bootloader()->node().configured());
  for (std::uint8_t node = 10; node <= 12; ++node) {
    // Now a CANopen node with an SDO server.
    EXPECT_EQ(master.upload_u32(node, canopen::od::kIdentity, 4), (node - 9U) * 10U);
  }
  for (auto& b : boards) {
    bool valid = false;
    const Provisioning p = load_provisioning(b->flash, &valid);
    EXPECT_TRUE(valid);
    EXPECT_EQ(p.node_id, b->bootloader()->node_id());
    EXPECT_EQ(p.bitrate, 500'000U);
  }
  // Nothing unconfigured is left.
  EXPECT_TRUE(lss.auto_assign(20, true).empty());
  EXPECT_FALSE(lss.identify_non_configured());
}

TEST_F(LssMasterTest, SelectiveAssignInquireAndIdentify) {
  add(111);
  add(222);
  EXPECT_TRUE(lss.identify_non_configured());
  EXPECT_TRUE(lss.identify(kVendor, kProduct, 0, 0xFFFF'FFFF, 200, 300));
  EXPECT_FALSE(lss.identify(kVendor, kProduct, 0, 0xFFFF'FFFF, 300, 400));
  EXPECT_FALSE(lss.identify(kVendor, kProduct + 1, 0, 0xFFFF'FFFF, 0, 0xFFFF'FFFF));
  EXPECT_FALSE(lss.switch_selective({kVendor, kProduct, kRevision, 333}));
  ASSERT_TRUE(lss.switch_selective({kVendor, kProduct, kRevision, 222}));
  const NodeIdentity id = lss.inquire_identity();
  EXPECT_EQ(id.serial, 222U);
  EXPECT_EQ(lss.inquire_node_id(), lss::kUnconfigured);
  EXPECT_EQ(lss.configure_node_id(0).code, lss::kNodeIdOutOfRange);
  EXPECT_EQ(lss.configure_node_id(42).code, lss::kSuccess);
  EXPECT_EQ(lss.store_configuration().code, lss::kSuccess);
  lss.switch_global(lss::Mode::kWaiting);
  Master master(bus);
  master.listen_until(bus.clock().now() + 10'000);
  EXPECT_EQ(master.upload_u32(42, canopen::od::kIdentity, 4), 222U);
  EXPECT_EQ(boards[1]->bootloader()->node_id(), 42);
  EXPECT_FALSE(boards[0]->bootloader()->node().configured());
  // Without a node in configuration state the configuration services get no answer.
  EXPECT_THROW(lss.configure_node_id(5), Error);
}

TEST_F(LssMasterTest, BitRateSwitchReachesEveryNodeAndRefusalsAreReported) {
  add(1);
  add(2);
  lss.switch_global(lss::Mode::kConfiguration);
  auto answers = lss.configure_bit_timing_all(5);  // reserved index
  ASSERT_EQ(answers.size(), 2U);
  for (const auto& a : answers) EXPECT_EQ(a.code, lss::kBitTimingNotSupported);
  answers = lss.configure_bit_timing_all(0);
  ASSERT_EQ(answers.size(), 2U);
  for (const auto& a : answers) EXPECT_EQ(a.code, lss::kSuccess);
  const auto stored = lss.store_configuration_all();
  ASSERT_EQ(stored.size(), 2U);
  for (const auto& a : stored) EXPECT_EQ(a.code, lss::kSuccess);
  lss.activate_bit_timing(50);
  bus.run_until(bus.clock().now() + 120'000);
  for (auto& b : boards) {
    EXPECT_EQ(b->bootloader()->bitrate(), 1'000'000U);
    EXPECT_EQ(load_provisioning(b->flash).bitrate, 1'000'000U);
  }
  EXPECT_EQ(describe_lss_error(lss::Cs::kConfigureBitTiming, 1, 0),
            "bit rate not supported by the node");
}

TEST_F(LssMasterTest, EmptyBusScansQuickly) {
  const Micros t0 = bus.clock().now();
  EXPECT_TRUE(lss.scan().empty());
  EXPECT_LE(bus.clock().now() - t0, 2 * lss.options().timeout);
  EXPECT_FALSE(lss.fastscan().has_value());
}

}  // namespace
}  // namespace rtcanboot::host
