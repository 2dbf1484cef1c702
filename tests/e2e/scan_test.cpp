// End to end: `rtcanboot scan` (the library's scan) finds real bootloaders in the twin at every
// CiA 301 bit rate, 10 and 20 kbit/s included (the EDS claims them), with default options: the
// probes are paced and timed from their transmission at the bus's bit rate (issue 16, item 3).
#include <cstdio>

#include "e2e_rig.hpp"
#include "rtcanboot/host/scan.hpp"

namespace rtcanboot::e2e {
namespace {

class E2eScan : public ::testing::TestWithParam<std::uint32_t> {};

TEST_P(E2eScan, FindsTheNodesWithDefaultOptions) {
  E2E_REQUIRE_FIRMWARE(2);
  const std::uint32_t rate = GetParam();
  Rig rig(rate);
  rig.add_board(node(16));
  rig.add_board(node(127));
  ASSERT_TRUE(rig.wait_boot_up(127, 0, 1'000'000).has_value());
  const Micros t0 = rig.now();
  const auto nodes = host::scan(rig.master());
  std::printf("scan at %7u bit/s: %zu nodes in %.3f s virtual\n", rate, nodes.size(),
              static_cast<double>(rig.now() - t0) / 1e6);
  ASSERT_EQ(nodes.size(), 2U);
  EXPECT_EQ(nodes[0].node, 16);
  EXPECT_EQ(nodes[1].node, 127);
  for (const auto& n : nodes) {
    EXPECT_TRUE(n.sdo) << "node " << int{n.node};
    EXPECT_TRUE(n.heartbeat.has_value()) << "node " << int{n.node};
    EXPECT_EQ(n.running, co::kRunningBootloader) << "node " << int{n.node};
    EXPECT_TRUE(n.vendor_id.has_value());
  }
  EXPECT_TRUE(rig.bus_faults().empty());
}

INSTANTIATE_TEST_SUITE_P(CiaRates, E2eScan,
                         ::testing::Values(10'000U, 20'000U, 50'000U, 125'000U, 250'000U, 500'000U,
                                           800'000U, 1'000'000U),
                         [](const auto& p) { return std::to_string(p.param / 1000) + "k"; });

}  // namespace
}  // namespace rtcanboot::e2e
