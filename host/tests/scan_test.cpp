// `rtcanboot scan` timing follows the bus (issue 16, item 3): probes paced at the bus's pace and
// timed from their transmission, at every CiA 301 bit rate, on the in-process bus with the core's
// Bootloader as nodes (virtual time). tests/e2e/scan_test.cpp does the same with the real firmware
// in the twin.
#include <gtest/gtest.h>

#include <cstdio>

#include "rtcanboot/host/scan.hpp"
#include "sim_nodes.hpp"

namespace rtcanboot::host {
namespace {

constexpr std::uint32_t kCiaRates[] = {10'000,  20'000,  50'000,  125'000,
                                       250'000, 500'000, 800'000, 1'000'000};

BootloaderSettings settings_for(std::uint8_t node) {
  BootloaderSettings s;
  s.identity = {0x1234, 0x42, 1, node};
  s.provisioning.node_id = node;
  s.heartbeat_ms = 1000;
  return s;
}

// Nodes at the end of the old 16-probe batches (16, 127) and one in the middle.
TEST(Scan, FindsEveryNodeAtEveryCiaRate) {
  for (const std::uint32_t rate : kCiaRates) {
    SimBus bus(rate);
    test::SimBoard a(bus, settings_for(16));
    test::SimBoard b(bus, settings_for(64));
    test::SimBoard c(bus, settings_for(127));
    bus.run_until(50'000);
    Master master(bus);
    const Micros t0 = bus.clock().now();
    const auto nodes = scan(master);
    const Micros took = bus.clock().now() - t0;
    const ScanTiming timing = scan_timing({}, bus);
    std::printf(
        "scan at %7u bit/s: probe every %6llu us, timeout %7llu us, %zu nodes, %.3f s virtual, "
        "%llu frames\n",
        rate, static_cast<unsigned long long>(timing.probe_spacing),
        static_cast<unsigned long long>(timing.probe_timeout), nodes.size(),
        static_cast<double>(took) / 1e6, static_cast<unsigned long long>(bus.frames_on_bus()));
    ASSERT_EQ(nodes.size(), 3U) << rate;
    for (const auto& n : nodes) {
      EXPECT_TRUE(n.sdo) << rate << " bit/s, node " << int{n.node};
      EXPECT_TRUE(n.heartbeat.has_value()) << rate << " bit/s, node " << int{n.node};
      EXPECT_EQ(n.vendor_id, 0x1234U) << rate;
      EXPECT_EQ(n.running, canopen::kRunningBootloader) << rate;
    }
    EXPECT_EQ(nodes[0].node, 16);
    EXPECT_EQ(nodes[2].node, 127);
    // No abort frames for the 124 probes nobody answered: 127 probes, 3 answers, 9 identity
    // reads, heartbeats and boot-ups.
    EXPECT_LT(bus.frames_on_bus(), 127U + 3U + 18U + 30U) << rate;
  }
}

// A transport that does not know its bit rate gets the timing of the slowest CiA rate.
TEST(Scan, UnknownBitRateIsTimedForTheSlowestRate) {
  SimBus instant(0);  // bit rate 0: unknown
  const ScanTiming assumed = scan_timing({}, instant);
  EXPECT_TRUE(assumed.bitrate_assumed);
  EXPECT_EQ(assumed.bitrate, 10'000U);
  SimBus slow(10'000);
  const ScanTiming known = scan_timing({}, slow);
  EXPECT_FALSE(known.bitrate_assumed);
  EXPECT_EQ(known.probe_spacing, assumed.probe_spacing);
  EXPECT_EQ(known.probe_timeout, assumed.probe_timeout);
  // A probe's timeout covers its own transmission and the answer's at that rate: two 8-byte
  // frames take more than 20 ms at 10 kbit/s, on top of the 100 ms answer time.
  EXPECT_GT(known.probe_timeout, 100'000U + 20'000U);
  ScanOptions o;
  o.bitrate = 1'000'000;
  EXPECT_LT(scan_timing(o, slow).probe_timeout, 101'000U + 1'000U);
}

}  // namespace
}  // namespace rtcanboot::host
