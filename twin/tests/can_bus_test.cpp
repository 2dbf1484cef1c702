// The twin's CAN bus: frame timing with stuff bits, arbitration, ACK, fault confinement,
// mismatched bit rates, fault injection, bus-off recovery and the candump trace.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "can_test_support.hpp"
#include "rtcanboot/can_timing.hpp"
#include "twin/can/bus.hpp"

namespace rtcanboot::twin::can {
namespace {

using testing::FakeClock;
using testing::RecordingReporter;

CanFrame make(std::uint32_t id, std::vector<std::uint8_t> data, std::uint8_t flags = 0) {
  CanFrame f;
  f.id = id;
  f.flags = flags;
  f.dlc = static_cast<std::uint8_t>(data.size());
  for (std::size_t i = 0; i < data.size(); ++i) f.data[i] = data[i];
  return f;
}

struct BusRig {
  explicit BusRig(std::uint32_t bitrate = 1'000'000) : bus(clock, reporter, bitrate) {}
  FakeClock clock;
  RecordingReporter reporter;
  Bus bus;
};

TEST(CanBus, FrameDurationMatchesCanTimingIncludingStuffBits) {
  for (std::uint32_t bitrate : {1'000'000U, 500'000U, 125'000U}) {
    BusRig rig(bitrate);
    Endpoint a("a"), b("b");
    rig.bus.attach(a);
    rig.bus.attach(b);
    const std::vector<CanFrame> frames = {
        make(0x000, {0, 0, 0, 0, 0, 0, 0, 0}),  // many stuff bits
        make(0x7FF, {0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}),
        make(0x581, {0x43, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00}),
        make(0x701, {0x00}),
        make(0x123, {}),
        make(0x1ABCDE0, {1, 2, 3}, CanFrame::kExtended),
        make(0x555, {}, CanFrame::kRemote),
    };
    for (const CanFrame& f : frames) {
      const Nanos start = rig.clock.now();
      a.send(f);
      rig.clock.run_for(3'000'000);
      auto got = b.receive();
      ASSERT_TRUE(got.has_value());
      EXPECT_EQ(got->sof, start);
      EXPECT_EQ(got->eof - got->sof, can_timing::bits_to_ns(can_timing::frame_bits(f), bitrate));
      EXPECT_EQ(got->frame.id, f.id);
    }
    // The all-zero frame is longer than the same frame with alternating content.
    EXPECT_GT(can_timing::frame_bits(frames[0]), 44U + 64U);
  }
}

TEST(CanBus, BackToBackFramesAreSeparatedByIntermission) {
  BusRig rig;
  Endpoint a("a"), b("b");
  rig.bus.attach(a);
  rig.bus.attach(b);
  const CanFrame f1 = make(0x100, {1, 2, 3, 4, 5, 6, 7, 8});
  const CanFrame f2 = make(0x101, {8, 7, 6, 5});
  a.send(f1);
  a.send(f2);
  rig.clock.run_for(1'000'000);
  auto r1 = b.receive();
  auto r2 = b.receive();
  ASSERT_TRUE(r1 && r2);
  EXPECT_EQ(r2->sof, r1->sof + can_timing::bits_to_ns(can_timing::frame_slot_bits(f1), 1'000'000));
  EXPECT_EQ(rig.bus.stats().frames, 2U);
}

TEST(CanBus, ArbitrationLowestIdentifierFirst) {
  BusRig rig;
  Endpoint a("a"), b("b"), c("c"), d("d"), listener("listener");
  for (Endpoint* e : {&a, &b, &c, &d, &listener}) rig.bus.attach(*e);
  a.send(make(0x300, {3}));
  b.send(make(0x100, {1}));
  c.send(make(0x200, {2}));
  d.send(make(0x100 << 18, {4}, CanFrame::kExtended));  // same base id as 0x100, extended
  rig.clock.run_for(2'000'000);
  std::vector<std::uint32_t> order;
  while (auto f = listener.receive()) order.push_back(f->frame.id);
  ASSERT_EQ(order.size(), 4U);
  EXPECT_EQ(order[0], 0x100U);        // standard beats extended with the same base id
  EXPECT_EQ(order[1], 0x100U << 18);  // then the extended one (base 0x100 < 0x200)
  EXPECT_EQ(order[2], 0x200U);
  EXPECT_EQ(order[3], 0x300U);
}

TEST(CanBus, ArbitrationKeyOrdersDataBeforeRemoteAndStandardBeforeExtended) {
  EXPECT_LT(arbitration_key(make(0x123, {})), arbitration_key(make(0x123, {}, CanFrame::kRemote)));
  EXPECT_LT(arbitration_key(make(0x123, {}, CanFrame::kRemote)),
            arbitration_key(make(0x123u << 18, {}, CanFrame::kExtended)));
  EXPECT_LT(arbitration_key(make(0x122, {})), arbitration_key(make(0x123, {})));
}

TEST(CanBus, FrameNobodyAcknowledgesIsAnAckErrorAndRetransmitted) {
  BusRig rig;
  Endpoint alone("alone");
  Endpoint::Options lo;
  lo.listen_only = true;
  Endpoint sniffer("sniffer", lo);
  rig.bus.attach(alone);
  rig.bus.attach(sniffer);
  alone.send(make(0x701, {0}));
  rig.clock.run_for(200'000);  // 200 bit times: one attempt and its error frame at least
  EXPECT_GE(rig.bus.stats().ack_errors, 1U);
  EXPECT_EQ(rig.bus.stats().frames, 0U);
  EXPECT_EQ(alone.tx_pending(), 1U);
  EXPECT_EQ(sniffer.rx_pending(), 0U);  // error-active sender: its error flag destroys the frame
  rig.clock.run_for(20'000'000);
  // TEC rises by 8 per attempt up to error-passive, then stays (ISO 11898-1 exception).
  EXPECT_EQ(alone.counters().tec, 128U);
  EXPECT_EQ(alone.fault_state(), FaultState::kErrorPassive);
  // A listen-only node never takes an unacknowledged frame and keeps its counters frozen.
  EXPECT_EQ(sniffer.rx_pending(), 0U);
  EXPECT_EQ(sniffer.counters().rec, 0U);
  EXPECT_EQ(alone.frames_sent(), 0U);
}

TEST(CanBus, EndpointGivesUpAfterMaxAttempts) {
  BusRig rig;
  Endpoint::Options o;
  o.max_attempts = 3;
  Endpoint alone("alone", o);
  rig.bus.attach(alone);
  alone.send(make(0x100, {1}));
  rig.clock.run_for(5'000'000);
  EXPECT_EQ(alone.tx_pending(), 0U);
  EXPECT_EQ(alone.frames_dropped(), 1U);
  EXPECT_EQ(rig.bus.stats().ack_errors, 3U);
  EXPECT_EQ(alone.counters().tec, 24U);
}

TEST(CanBus, NodeAtWrongBitRateReceivesNothingSeesErrorsAndIsReported) {
  BusRig rig;
  Endpoint a("a"), c("c");
  Endpoint::Options slow;
  slow.bitrate = 500'000;
  Endpoint b("b-500k", slow);
  rig.bus.attach(a);
  rig.bus.attach(b);
  rig.bus.attach(c);
  EXPECT_TRUE(rig.reporter.has(Severity::kFault, "b-500k"));
  for (int i = 0; i < 30; ++i)
    a.send(make(0x200 + static_cast<std::uint32_t>(i), {static_cast<std::uint8_t>(i)}));
  rig.clock.run_for(50'000'000);
  EXPECT_EQ(b.rx_pending(), 0U);
  EXPECT_GE(b.counters().rec, 128U);  // error-passive after its first error flags
  EXPECT_EQ(b.fault_state(), FaultState::kErrorPassive);
  // While it was error-active its error flags destroyed frames: the sender's TEC rose, and
  // every frame still arrived exactly once at the correct node.
  EXPECT_GT(rig.bus.stats().error_frames, 0U);
  ASSERT_EQ(c.rx_pending(), 30U);
  for (int i = 0; i < 30; ++i)
    EXPECT_EQ(c.receive()->frame.id, 0x200U + static_cast<std::uint32_t>(i));
  EXPECT_EQ(a.frames_sent(), 30U);
}

TEST(CanBus, ListenOnlyAtWrongBitRateIsOnlyAnInfo) {
  BusRig rig;
  Endpoint a("a"), b("b");
  Endpoint::Options probe;
  probe.bitrate = 250'000;
  probe.listen_only = true;
  Endpoint p("probe", probe);
  rig.bus.attach(a);
  rig.bus.attach(b);
  rig.bus.attach(p);
  a.send(make(0x100, {1}));
  rig.clock.run_for(1'000'000);
  EXPECT_EQ(rig.reporter.count(Severity::kFault), 0U);
  EXPECT_TRUE(rig.reporter.has(Severity::kInfo, "probe listens"));
  EXPECT_EQ(p.rx_pending(), 0U);
  EXPECT_EQ(b.rx_pending(), 1U);  // a listen-only node never disturbs the bus
  EXPECT_EQ(rig.bus.stats().error_frames, 0U);
  p.set_listen_only(false);  // now it drives the bus at the wrong rate: a fault
  EXPECT_TRUE(rig.reporter.has(Severity::kFault, "probe joins"));
}

TEST(CanBus, TransmitterAtWrongBitRateGoesBusOff) {
  BusRig rig;
  Endpoint a("a");
  Endpoint::Options slow;
  slow.bitrate = 250'000;
  Endpoint b("b-250k", slow);
  rig.bus.attach(a);
  rig.bus.attach(b);
  b.send(make(0x123, {1}));
  rig.clock.run_for(2'000'000);
  EXPECT_EQ(b.fault_state(), FaultState::kBusOff);
  EXPECT_EQ(a.rx_pending(), 0U);
  EXPECT_GT(a.counters().rec, 0U);
}

TEST(CanBus, DropNthFrameLosesItForReceiversOnly) {
  BusRig rig;
  Endpoint a("a"), b("b");
  rig.bus.attach(a);
  rig.bus.attach(b);
  FaultRule r;
  r.action = FaultRule::Action::kDrop;
  r.nth = 2;
  rig.bus.add_fault(r);
  for (std::uint8_t i = 1; i <= 3; ++i) a.send(make(0x100, {i}));
  rig.clock.run_for(1'000'000);
  EXPECT_EQ(a.frames_sent(), 3U);
  ASSERT_EQ(b.rx_pending(), 2U);
  EXPECT_EQ(b.receive()->frame.data[0], 1);
  EXPECT_EQ(b.receive()->frame.data[0], 3);
  EXPECT_EQ(rig.bus.stats().dropped, 1U);
}

TEST(CanBus, DropForOneReceiverOnly) {
  BusRig rig;
  Endpoint a("a"), b("b"), c("c");
  rig.bus.attach(a);
  rig.bus.attach(b);
  rig.bus.attach(c);
  FaultRule r;
  r.action = FaultRule::Action::kDrop;
  r.id = 0x600;
  r.id_mask = 0x780;  // 0x600..0x67F
  r.receiver = "c";
  r.limit = 1;
  rig.bus.add_fault(r);
  a.send(make(0x181, {1}));
  a.send(make(0x601, {2}));
  a.send(make(0x601, {3}));
  rig.clock.run_for(1'000'000);
  EXPECT_EQ(b.rx_pending(), 3U);
  ASSERT_EQ(c.rx_pending(), 2U);
  EXPECT_EQ(c.receive()->frame.id, 0x181U);
  EXPECT_EQ(c.receive()->frame.data[0], 3);
  EXPECT_EQ(rig.bus.faults()[0].fired, 1U);
}

TEST(CanBus, CorruptedFrameIsRetransmittedAndArrivesOnce) {
  BusRig rig;
  Endpoint a("a"), b("b");
  rig.bus.attach(a);
  rig.bus.attach(b);
  FaultRule r;
  r.action = FaultRule::Action::kCorrupt;
  r.nth = 1;
  rig.bus.add_fault(r);
  a.send(make(0x100, {0xAA}));
  rig.clock.run_for(1'000'000);
  ASSERT_EQ(b.rx_pending(), 1U);
  EXPECT_EQ(b.receive()->frame.data[0], 0xAA);
  EXPECT_EQ(rig.bus.stats().attempts, 2U);
  EXPECT_EQ(rig.bus.stats().error_frames, 1U);
  EXPECT_EQ(a.counters().tec, 7U);  // +8 for the error, -1 for the successful retransmission
  EXPECT_EQ(b.counters().rec, 0U);  // +1, then -1
}

TEST(CanBus, SilentCorruptionDeliversAFlippedBit) {
  BusRig rig;
  Endpoint a("a"), b("b");
  rig.bus.attach(a);
  rig.bus.attach(b);
  FaultRule r;
  r.action = FaultRule::Action::kCorruptSilent;
  r.nth = 1;
  rig.bus.add_fault(r);
  a.send(make(0x100, {0, 0, 0, 0}));
  rig.clock.run_for(1'000'000);
  auto got = b.receive();
  ASSERT_TRUE(got);
  unsigned ones = 0;
  for (unsigned i = 0; i < 4; ++i)
    ones += static_cast<unsigned>(__builtin_popcount(got->frame.data[i]));
  EXPECT_EQ(ones, 1U);
}

std::vector<std::string> run_with_error_rate(std::uint64_t seed) {
  BusRig rig;
  std::vector<std::string> trace;
  rig.bus.set_trace([&](const std::string& line) { trace.push_back(line); });
  rig.bus.set_seed(seed);
  FaultRule r;
  r.action = FaultRule::Action::kErrorFrame;
  r.rate = 0.3;
  rig.bus.add_fault(r);
  Endpoint a("a"), b("b");
  rig.bus.attach(a);
  rig.bus.attach(b);
  for (std::uint8_t i = 0; i < 40; ++i) a.send(make(0x180, {i}));
  rig.clock.run_for(20'000'000);
  EXPECT_EQ(b.rx_pending(), 40U);
  return trace;
}

TEST(CanBus, ErrorFrameRateIsDeterministicFromTheSeed) {
  const auto t1 = run_with_error_rate(42);
  const auto t2 = run_with_error_rate(42);
  const auto t3 = run_with_error_rate(7);
  EXPECT_EQ(t1, t2);
  EXPECT_NE(t1, t3);
  std::size_t errors = 0;
  for (const auto& line : t1) errors += line.find(" 20000008#") != std::string::npos ? 1U : 0U;
  EXPECT_GT(errors, 3U);
  EXPECT_EQ(t1.size(), 40U + errors);
}

TEST(CanBus, InjectedBusOffRecoversAfter128Times11RecessiveBits) {
  BusRig rig;
  Endpoint a("a"), b("b");
  rig.bus.attach(a);
  rig.bus.attach(b);
  rig.bus.inject_bus_off(a, 1'000'000);
  rig.clock.run_until(1'000'000);
  EXPECT_EQ(a.fault_state(), FaultState::kBusOff);
  a.send(make(0x100, {1}));
  rig.clock.run_until(1'000'000 + 128 * 11 * 1000 - 1);
  EXPECT_EQ(b.rx_pending(), 0U);
  EXPECT_EQ(a.fault_state(), FaultState::kBusOff);
  rig.clock.run_until(1'000'000 + 128 * 11 * 1000 + 200'000);
  EXPECT_EQ(a.fault_state(), FaultState::kErrorActive);
  EXPECT_EQ(a.counters().tec, 0U);
  ASSERT_EQ(b.rx_pending(), 1U);
  EXPECT_EQ(b.receive()->sof, 1'000'000U + 128U * 11U * 1000U);
}

TEST(CanBus, EventsLeftAfterTheBusIsGoneDoNothing) {
  FakeClock clock;
  RecordingReporter reporter;
  {
    Bus bus(clock, reporter, 1'000'000);
    Endpoint a("a"), b("b");
    bus.attach(a);
    bus.attach(b);
    a.send(make(0x100, {1, 2, 3}));
    clock.run_for(10'000);  // the frame is on the wire
    EXPECT_FALSE(bus.idle());
  }
  clock.run_for(1'000'000);  // must not touch the destroyed bus or endpoints (ASan)
  SUCCEED();
}

TEST(CanBus, TraceIsCandumpLike) {
  EXPECT_EQ(
      format_candump(12'345'678'901ULL, "can0", make(0x581, {0x43, 0x00, 0x10, 0x00, 0, 0, 0, 0})),
      "(12.345678) can0 581#4300100000000000");
  EXPECT_EQ(format_candump(0, "can0", make(0x701, {0})), "(0.000000) can0 701#00");
  EXPECT_EQ(format_candump(1'000, "can1", make(0x1234567, {0xAB}, CanFrame::kExtended)),
            "(0.000001) can1 01234567#AB");
  EXPECT_EQ(format_candump(0, "can0", make(0x7FF, {}, CanFrame::kRemote)), "(0.000000) can0 7FF#R");

  BusRig rig;
  std::vector<std::string> trace;
  rig.bus.set_trace([&](const std::string& line) { trace.push_back(line); });
  Endpoint a("a"), b("b");
  rig.bus.attach(a);
  a.send(make(0x701, {0}));
  rig.clock.run_for(150'000);
  ASSERT_FALSE(trace.empty());
  EXPECT_NE(trace[0].find(" can0 20000020#"), std::string::npos);  // ACK error, SocketCAN style
  rig.bus.attach(b);
  rig.clock.run_for(200'000);
  EXPECT_NE(trace.back().find(" can0 701#00"), std::string::npos);
}

}  // namespace
}  // namespace rtcanboot::twin::can
