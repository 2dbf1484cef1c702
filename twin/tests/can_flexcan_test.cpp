// FlexCAN model: handshakes, freeze-only registers, bit rate derivation, message buffers
// (CODE, lock/unlock, matching, overrun), RX FIFO, interrupts, error counters and bus-off.
#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "can_test_support.hpp"
#include "twin/can/bus.hpp"
#include "twin/can/flexcan.hpp"

namespace rtcanboot::twin::can {
namespace {

using testing::FakeClock;
using testing::FakeIrq;
using testing::RecordingReporter;

constexpr std::uint32_t MCR = 0x00, CTRL1 = 0x04, TIMER = 0x08, RXMGMASK = 0x10, ECR = 0x1C,
                        ESR1 = 0x20, IMASK1 = 0x28, IFLAG1 = 0x30, CTRL2 = 0x34, RXFGMASK = 0x48,
                        RXFIR = 0x4C, CBT = 0x50;
constexpr std::uint32_t kMdis = 1U << 31, kFrz = 1U << 30, kRfen = 1U << 29, kHalt = 1U << 28,
                        kNotrdy = 1U << 27, kSoftrst = 1U << 25, kFrzack = 1U << 24,
                        kLpmack = 1U << 20, kSrxdis = 1U << 17, kIrmq = 1U << 16, kAen = 1U << 12;
constexpr std::uint32_t kPc = 0x00001234;
// 40 MHz CAN clock, PRESDIV=1, RJW=1, PSEG1=6, PSEG2=3, PROPSEG=7: 20 tq, 1 Mbit/s.
constexpr std::uint32_t kCtrl1_1M = 0x01730007;

std::uint32_t cs(unsigned mb) {
  return 0x80 + 16 * mb;
}
std::uint32_t rximr(unsigned mb) {
  return 0x880 + 4 * mb;
}

CanFrame make(std::uint32_t id, std::vector<std::uint8_t> data) {
  CanFrame f;
  f.id = id;
  f.dlc = static_cast<std::uint8_t>(data.size());
  for (std::size_t i = 0; i < data.size(); ++i) f.data[i] = data[i];
  return f;
}

struct Rig {
  explicit Rig(unsigned instance = 2, std::uint32_t bitrate = 1'000'000)
      : bus(clock, reporter, bitrate) {
    FlexCanConfig cfg;
    cfg.instance = instance;
    cfg.clock_hz = [this] { return can_hz; };
    cfg.pins_muxed = [this] { return pins; };
    can = std::make_unique<FlexCan>(cfg, clock, irq, reporter);
    bus.attach(*can);
    bus.attach(peer);
  }
  std::uint32_t rd(std::uint32_t off) { return can->read(off, 4, kPc); }
  void wr(std::uint32_t off, std::uint32_t v) { can->write(off, v, 4, kPc); }
  void settle() { clock.run_for(20'000); }
  // Module enable into freeze mode (FRZ and HALT are set at reset).
  void enable_frozen() {
    wr(MCR, rd(MCR) & ~kMdis);
    settle();
  }
  void leave_freeze() {
    wr(MCR, rd(MCR) & ~(kFrz | kHalt));
    settle();
  }
  void enter_freeze() {
    wr(MCR, rd(MCR) | kFrz | kHalt);
    settle();
  }
  // SDK-like bring-up: enable, timing and MCR in freeze, then run.
  void start(std::uint32_t ctrl1 = kCtrl1_1M, std::uint32_t mcr_set = kIrmq | kSrxdis) {
    enable_frozen();
    wr(CTRL1, ctrl1);
    wr(MCR, (rd(MCR) & ~0x7FU) | 15U | mcr_set);
    leave_freeze();
  }
  void tx(unsigned mb, std::uint32_t id, std::vector<std::uint8_t> data) {
    wr(cs(mb), 0x8U << 24);
    wr(cs(mb) + 4, id << 18);
    std::uint8_t b[8] = {};
    for (std::size_t i = 0; i < data.size(); ++i) b[i] = data[i];
    wr(cs(mb) + 8, static_cast<std::uint32_t>(b[0] << 24 | b[1] << 16 | b[2] << 8 | b[3]));
    wr(cs(mb) + 12, static_cast<std::uint32_t>(b[4] << 24 | b[5] << 16 | b[6] << 8 | b[7]));
    wr(cs(mb), (0xCU << 24) | (static_cast<std::uint32_t>(data.size()) << 16));
  }
  void arm_rx(unsigned mb, std::uint32_t id) {
    wr(cs(mb), 0);
    wr(cs(mb) + 4, id << 18);
    wr(cs(mb), 0x4U << 24);
  }
  unsigned code(unsigned mb) { return (can->read(cs(mb), 4, kPc) >> 24) & 0xF; }

  FakeClock clock;
  RecordingReporter reporter;
  FakeIrq irq;
  Bus bus;
  std::uint32_t can_hz = 40'000'000;
  bool pins = true;
  std::unique_ptr<FlexCan> can;
  Endpoint peer{"peer"};
};

TEST(FlexCan, ResetValueAndEnableFreezeHandshakes) {
  Rig rig;
  EXPECT_EQ(rig.rd(MCR), 0xD890000FU);
  rig.wr(MCR, rig.rd(MCR) & ~kMdis);
  EXPECT_NE(rig.rd(MCR) & kLpmack, 0U);  // not instantaneous
  rig.settle();
  std::uint32_t mcr = rig.rd(MCR);
  EXPECT_EQ(mcr & kLpmack, 0U);
  EXPECT_NE(mcr & kFrzack, 0U);
  EXPECT_NE(mcr & kNotrdy, 0U);
  EXPECT_TRUE(rig.can->frozen());
  rig.wr(CTRL1, kCtrl1_1M);
  rig.leave_freeze();
  mcr = rig.rd(MCR);
  EXPECT_EQ(mcr & (kFrzack | kNotrdy), 0U);
  rig.enter_freeze();
  EXPECT_NE(rig.rd(MCR) & kFrzack, 0U);
  rig.wr(MCR, rig.rd(MCR) | kMdis);
  rig.settle();
  EXPECT_NE(rig.rd(MCR) & kLpmack, 0U);
  EXPECT_EQ(rig.rd(MCR) & kFrzack, 0U);
  EXPECT_EQ(rig.reporter.count(Severity::kFault), 0U);
}

TEST(FlexCan, FreezeOnlyRegistersIgnoreWritesOutsideFreezeAndReportThem) {
  Rig rig;
  rig.start();
  ASSERT_FALSE(rig.can->frozen());
  // Timing write outside freeze: ignored, reported as a fault with the PC.
  rig.wr(CTRL1, 0x03730007);
  EXPECT_EQ(rig.rd(CTRL1), kCtrl1_1M);
  ASSERT_EQ(rig.reporter.count(Severity::kFault), 1U);
  EXPECT_EQ(rig.reporter.entries.back().pc, kPc);
  EXPECT_NE(rig.reporter.entries.back().message.find("CTRL1"), std::string::npos);
  // Interrupt masks in CTRL1 are writable at any time.
  rig.wr(CTRL1, kCtrl1_1M | (1U << 15));
  EXPECT_EQ(rig.rd(CTRL1), kCtrl1_1M | (1U << 15));
  EXPECT_EQ(rig.reporter.count(Severity::kFault), 1U);
  // MCR.MAXMB, masks and ECR as well.
  rig.wr(MCR, (rig.rd(MCR) & ~0x7FU) | 63U);
  EXPECT_EQ(rig.rd(MCR) & 0x7FU, 15U);
  rig.wr(RXMGMASK, 0x1FFC0000);
  EXPECT_EQ(rig.rd(RXMGMASK), 0xFFFFFFFFU);
  rig.wr(rximr(4), 0);
  EXPECT_EQ(rig.rd(rximr(4)), 0U);  // reset value 0, unchanged write is not reported
  rig.wr(rximr(4), 0x1FFFFFFF);
  EXPECT_EQ(rig.rd(rximr(4)), 0U);
  rig.wr(ECR, 0x0505);
  EXPECT_EQ(rig.rd(ECR), 0U);
  EXPECT_EQ(rig.reporter.count(Severity::kFault), 5U);
  // A read-modify-write that changes only FRZ/HALT is fine.
  rig.enter_freeze();
  EXPECT_EQ(rig.reporter.count(Severity::kFault), 5U);
  rig.wr(CTRL1, 0x03730007);
  rig.wr(RXMGMASK, 0x1FFC0000);
  rig.wr(ECR, 0x0505);
  EXPECT_EQ(rig.rd(CTRL1), 0x03730007U);
  EXPECT_EQ(rig.rd(RXMGMASK), 0x1FFC0000U);
  EXPECT_EQ(rig.rd(ECR), 0x0505U);
  EXPECT_EQ(rig.reporter.count(Severity::kFault), 5U);
}

TEST(FlexCan, SoftResetSelfClearsAndResetsOnlyItsRegisters) {
  Rig rig;
  rig.start();
  rig.wr(IMASK1, 0xFF);
  rig.wr(CTRL1, kCtrl1_1M | (1U << 14));
  rig.wr(MCR, rig.rd(MCR) | kSoftrst);
  EXPECT_NE(rig.rd(MCR) & kSoftrst, 0U);
  rig.settle();
  const std::uint32_t mcr = rig.rd(MCR);
  EXPECT_EQ(mcr & kSoftrst, 0U);
  EXPECT_NE(mcr & kFrzack, 0U);  // MCR reset value: FRZ and HALT set, so the module freezes
  EXPECT_EQ(mcr & 0x7FU, 15U);
  EXPECT_EQ(mcr & kIrmq, 0U);
  EXPECT_EQ(rig.rd(IMASK1), 0U);
  EXPECT_EQ(rig.rd(CTRL1), kCtrl1_1M | (1U << 14));  // not affected by soft reset
}

// Injected fault (FlexCanConfig::freeze_refusals): a refused freeze request leaves FRZACK clear
// and the controller running until a soft reset; the soft reset's own freeze is refused too
// while refusals remain. Freeze-only writes meanwhile are ignored and reported.
TEST(FlexCan, InjectedFreezeRefusalHoldsUntilSoftReset) {
  Rig rig;
  rig.start();
  rig.can->refuse_freeze(1);
  rig.enter_freeze();
  EXPECT_EQ(rig.rd(MCR) & kFrzack, 0U);
  EXPECT_FALSE(rig.can->frozen());
  EXPECT_EQ(rig.can->freeze_refused(), 1U);
  rig.clock.run_for(50'000'000);  // 50 ms: still refused
  EXPECT_EQ(rig.rd(MCR) & kFrzack, 0U);
  rig.wr(CTRL1, 0x03730007);  // outside freeze: ignored and reported
  EXPECT_EQ(rig.rd(CTRL1), kCtrl1_1M);
  EXPECT_EQ(rig.reporter.count(Severity::kFault), 1U);
  rig.wr(MCR, rig.rd(MCR) | kSoftrst);
  rig.settle();
  EXPECT_NE(rig.rd(MCR) & kFrzack, 0U);  // the refusal ended with the soft reset
  EXPECT_EQ(rig.can->freeze_refused(), 1U);

  rig.leave_freeze();
  rig.can->refuse_freeze(~0U);  // every request, the soft reset's included
  rig.enter_freeze();
  rig.wr(MCR, rig.rd(MCR) | kSoftrst);
  rig.settle();
  EXPECT_EQ(rig.rd(MCR) & (kFrzack | kSoftrst), 0U);
  EXPECT_EQ(rig.can->freeze_refused(), 3U);
  rig.can->refuse_freeze(0);
  rig.wr(MCR, rig.rd(MCR) | kSoftrst);
  rig.settle();
  EXPECT_NE(rig.rd(MCR) & kFrzack, 0U);
}

struct RateCase {
  std::uint32_t bitrate;
  std::uint32_t ctrl1;
  unsigned tq;
};

TEST(FlexCan, BitRateFromClockAndCtrl1ForEveryCia301RateAt40MHz) {
  // CCM CSCMR2 CAN_CLK_SEL=2 (pll3/6 = 80 MHz), PODF=1 (/2) gives 40 MHz; 20 tq per bit where
  // the divider allows it (800 kbit/s needs 25 or 10 tq at 40 MHz).
  const std::vector<RateCase> cases = {
      {1'000'000, 0x01730007, 20}, {800'000, 0x017F0007, 25}, {500'000, 0x03730007, 20},
      {250'000, 0x07730007, 20},   {125'000, 0x0F730007, 20}, {50'000, 0x27730007, 20},
      {20'000, 0x63730007, 20},    {10'000, 0xC7730007, 20},
  };
  for (const RateCase& c : cases) {
    Rig rig(2, c.bitrate);
    rig.start(c.ctrl1);
    EXPECT_EQ(rig.can->tq_per_bit(), c.tq) << c.bitrate;
    EXPECT_DOUBLE_EQ(rig.can->bitrate(), c.bitrate);
    rig.arm_rx(4, 0x601);
    rig.wr(rximr(4), 0);  // ignored outside freeze: keep the reset RXIMR (0 = accept all)
    rig.peer.send(make(0x601, {0x40, 0x00, 0x10}));
    rig.clock.run_for(20'000'000);
    EXPECT_EQ(rig.code(4), 0x2U) << c.bitrate;
    EXPECT_EQ(rig.peer.counters().tec, 0U);
    EXPECT_FALSE(rig.reporter.has(Severity::kFault, "bit/s"));
  }
}

TEST(FlexCan, Flexcan3UsesCbtWhenBtfIsSet) {
  Rig rig(3);
  rig.enable_frozen();
  // EPRESDIV=1, ERJW=1, EPROPSEG=7, EPSEG1=6, EPSEG2=3, BTF=1: 1+8+7+4 = 20 tq, 1 Mbit/s.
  const std::uint32_t cbt = (1U << 31) | (1U << 21) | (1U << 16) | (7U << 10) | (6U << 5) | 3U;
  rig.wr(CBT, cbt);
  EXPECT_EQ(rig.rd(CBT), cbt);
  EXPECT_EQ(rig.can->tq_per_bit(), 20U);
  EXPECT_DOUBLE_EQ(rig.can->bitrate(), 1'000'000.0);
  rig.leave_freeze();
  rig.wr(CBT, cbt | (3U << 21));
  EXPECT_EQ(rig.rd(CBT), cbt);
  EXPECT_TRUE(rig.reporter.has(Severity::kFault, "CBT"));
  // CBT does not exist on FLEXCAN2.
  Rig rig2(2);
  rig2.rd(CBT);
  EXPECT_TRUE(rig2.reporter.has(Severity::kWarning, "0x00000050"));
}

TEST(FlexCan, WrongBitRateReceivesNothingAndCountsErrors) {
  Rig rig(2, 1'000'000);
  rig.start(0x03730007);  // 500 kbit/s on a 1 Mbit/s bus
  EXPECT_TRUE(rig.reporter.has(Severity::kFault, "FLEXCAN2 joins can0 at 500000.0 bit/s"));
  rig.arm_rx(4, 0x601);
  Endpoint other("other");
  rig.bus.attach(other);
  for (int i = 0; i < 20; ++i) rig.peer.send(make(0x601, {1}));
  rig.clock.run_for(20'000'000);
  EXPECT_NE(rig.code(4), 0x2U);
  EXPECT_EQ(rig.can->frames_received(), 0U);
  const std::uint32_t ecr = rig.rd(ECR);
  EXPECT_GE((ecr >> 8) & 0xFF, 128U);  // RXERRCNT
  const std::uint32_t esr1 = rig.rd(ESR1);
  EXPECT_EQ((esr1 >> 4) & 3U, 1U);                          // FLTCONF error-passive
  EXPECT_NE(esr1 & ((1U << 10) | (1U << 11)), 0U);          // STFERR / FRMERR
  EXPECT_EQ(rig.rd(ESR1) & ((1U << 10) | (1U << 11)), 0U);  // cleared by the read
  EXPECT_EQ(other.rx_pending(), 20U);
}

TEST(FlexCan, TransmitCompletesToInactiveWithFlagAndInterrupt) {
  Rig rig;
  rig.start();
  rig.wr(IMASK1, 1U << 9);
  rig.tx(9, 0x181, {1, 2, 3, 4, 5});
  EXPECT_EQ(rig.code(9), 0xCU);
  rig.clock.run_for(1'000'000);
  auto got = rig.peer.receive();
  ASSERT_TRUE(got);
  EXPECT_EQ(got->frame.id, 0x181U);
  EXPECT_EQ(got->frame.dlc, 5);
  EXPECT_EQ(got->frame.data[4], 5);
  EXPECT_EQ(rig.code(9), 0x8U);
  EXPECT_EQ(rig.rd(IFLAG1), 1U << 9);
  EXPECT_TRUE(rig.irq.level(37));
  rig.wr(IFLAG1, 0);  // writing 0 clears nothing
  EXPECT_EQ(rig.rd(IFLAG1), 1U << 9);
  rig.wr(IFLAG1, 1U << 9);
  EXPECT_EQ(rig.rd(IFLAG1), 0U);
  EXPECT_FALSE(rig.irq.level(37));
  EXPECT_EQ(rig.can->frames_transmitted(), 1U);
}

TEST(FlexCan, TransmitOrderLowestIdFirstOrLowestBufferWithLbuf) {
  for (bool lbuf : {false, true}) {
    Rig rig;
    rig.enable_frozen();
    rig.wr(CTRL1, kCtrl1_1M | (lbuf ? 1U << 4 : 0U));
    rig.wr(MCR, (rig.rd(MCR) & ~0x7FU) | 15U | kSrxdis);
    rig.tx(10, 0x300, {3});
    rig.tx(11, 0x100, {1});
    rig.tx(12, 0x200, {2});
    rig.leave_freeze();
    rig.clock.run_for(2'000'000);
    std::vector<std::uint32_t> order;
    while (auto f = rig.peer.receive()) order.push_back(f->frame.id);
    const std::vector<std::uint32_t> expected =
        lbuf ? std::vector<std::uint32_t>{0x300, 0x100, 0x200}
             : std::vector<std::uint32_t>{0x100, 0x200, 0x300};
    EXPECT_EQ(order, expected);
  }
}

TEST(FlexCan, QueueReceivesIntoFirstFreeMatchingBufferThenOverrunsTheLast) {
  Rig rig;
  rig.enable_frozen();
  rig.wr(CTRL1, kCtrl1_1M);
  rig.wr(MCR, (rig.rd(MCR) & ~0x7FU) | 15U | kIrmq | kSrxdis);
  rig.wr(rximr(4), 0x1FFFFFFF);
  rig.wr(rximr(5), 0x1FFFFFFF);
  rig.wr(rximr(6), 0x1FFFFFFF);
  rig.leave_freeze();
  rig.arm_rx(4, 0x123);
  rig.arm_rx(5, 0x123);
  rig.arm_rx(6, 0x124);
  for (std::uint8_t i = 1; i <= 3; ++i) rig.peer.send(make(0x123, {i}));
  rig.clock.run_for(1'000'000);
  EXPECT_EQ(rig.code(4), 0x2U);
  EXPECT_EQ(rig.code(5), 0x6U);  // OVERRUN: frame 3 replaced unread frame 2
  EXPECT_EQ(rig.code(6), 0x4U);
  EXPECT_EQ(rig.rd(cs(4) + 8) >> 24, 1U);
  EXPECT_EQ(rig.rd(cs(5) + 8) >> 24, 3U);
  EXPECT_EQ(rig.can->overruns(), 1U);
  EXPECT_EQ(rig.can->lost_frames(), 1U);
  EXPECT_EQ(rig.rd(IFLAG1), (1U << 4) | (1U << 5));
}

TEST(FlexCan, LegacyMatchingUsesTheFirstMatchingBufferEvenWhenFull) {
  Rig rig;
  rig.enable_frozen();
  rig.wr(CTRL1, kCtrl1_1M);
  rig.wr(MCR, (rig.rd(MCR) & ~0x7FU) | 15U | kSrxdis);  // IRMQ=0: RXMGMASK
  rig.wr(RXMGMASK, 0x1FFFFFFF);
  rig.leave_freeze();
  rig.arm_rx(4, 0x123);
  rig.arm_rx(5, 0x123);
  rig.peer.send(make(0x123, {1}));
  rig.peer.send(make(0x123, {2}));
  rig.clock.run_for(1'000'000);
  EXPECT_EQ(rig.code(4), 0x6U);
  EXPECT_EQ(rig.code(5), 0x4U);
  EXPECT_EQ(rig.can->lost_frames(), 1U);
}

TEST(FlexCan, ReadingCsLocksTheBufferAndReadingTimerUnlocksIt) {
  Rig rig;
  rig.start();
  rig.arm_rx(4, 0x123);
  rig.peer.send(make(0x123, {1}));
  rig.clock.run_for(500'000);
  ASSERT_EQ(rig.code(4), 0x2U);  // this read of CS locks MB4
  rig.peer.send(make(0x123, {2}));
  rig.clock.run_for(500'000);
  EXPECT_EQ(rig.rd(cs(4) + 8) >> 24, 1U);  // the new frame waits while the MB is locked
  rig.rd(TIMER);                           // unlock: the waiting frame moves in
  EXPECT_EQ(rig.code(4), 0x2U);            // FULL, not OVERRUN: the CPU had read the first one
  EXPECT_EQ(rig.rd(cs(4) + 8) >> 24, 2U);
  EXPECT_EQ(rig.can->lost_frames(), 0U);
  rig.rd(TIMER);
  rig.peer.send(make(0x123, {3}));  // not read before: overrun
  rig.clock.run_for(500'000);
  rig.rd(TIMER);
  rig.peer.send(make(0x123, {4}));
  rig.clock.run_for(500'000);
  EXPECT_EQ(rig.code(4), 0x6U);
  EXPECT_EQ(rig.can->overruns(), 1U);
  // Re-arming: CODE written back to EMPTY.
  rig.wr(cs(4), 0x4U << 24);
  EXPECT_EQ(rig.code(4), 0x4U);
}

TEST(FlexCan, LegacyRxFifoSixDeepWithFlagsAndPopOnFlagClear) {
  Rig rig;
  rig.enable_frozen();
  rig.wr(CTRL1, kCtrl1_1M);
  rig.wr(MCR, (rig.rd(MCR) & ~0x7FU) | 15U | kRfen | kSrxdis);  // IDAM=A, IRMQ=0: RXFGMASK
  rig.wr(CTRL2, rig.rd(CTRL2) & ~(0xFU << 24));                 // RFFN=0: 8 filter elements
  rig.wr(RXFGMASK, 0xFFFFFFFF);
  for (unsigned e = 0; e < 8; ++e) rig.wr(0xE0 + 4 * e, (0x200U + e) << 19);
  rig.leave_freeze();
  rig.wr(0xE0, 0x300U << 19);  // filter table outside freeze: ignored and reported
  EXPECT_TRUE(rig.reporter.has(Severity::kFault, "RX FIFO ID filter table"));
  rig.wr(IMASK1, 1U << 5);
  for (std::uint32_t i = 0; i < 7; ++i)
    rig.peer.send(make(0x200 + i, {static_cast<std::uint8_t>(i)}));
  rig.peer.send(make(0x2FF, {0xEE}));  // matches no filter element
  rig.clock.run_for(2'000'000);
  EXPECT_EQ(rig.rd(IFLAG1) & 0xE0U, 0xE0U);  // available, warning (5), overflow
  EXPECT_TRUE(rig.irq.level(37));
  EXPECT_EQ(rig.can->lost_frames(), 1U);
  EXPECT_EQ(rig.can->fifo_overflows(), 1U);
  rig.wr(IFLAG1, (1U << 6) | (1U << 7));
  for (std::uint32_t i = 0; i < 6; ++i) {
    ASSERT_NE(rig.rd(IFLAG1) & (1U << 5), 0U) << i;
    EXPECT_EQ(rig.rd(0x84), (0x200U + i) << 18);
    EXPECT_EQ(rig.rd(0x88) >> 24, i);
    EXPECT_EQ(rig.rd(RXFIR), i);
    EXPECT_EQ((rig.rd(0x80) >> 16) & 0xFU, 1U);  // DLC
    rig.wr(IFLAG1, 1U << 5);                     // clearing the flag pops the FIFO
  }
  EXPECT_EQ(rig.rd(IFLAG1), 0U);
  EXPECT_FALSE(rig.irq.level(37));
  rig.wr(0x84, 0);  // output area is read-only
  EXPECT_TRUE(rig.reporter.has(Severity::kWarning, "RX FIFO output"));
}

TEST(FlexCan, BusOffWithAutomaticRecoveryAndWithBoffrec) {
  for (bool boffrec : {false, true}) {
    Rig rig;
    rig.start(kCtrl1_1M | (1U << 15) | (boffrec ? 1U << 6 : 0U));  // BOFFMSK
    rig.wr(CTRL2, rig.rd(CTRL2));
    const Nanos t0 = rig.clock.now();
    rig.bus.inject_bus_off(*rig.can, t0);
    rig.clock.run_for(1);
    std::uint32_t esr1 = rig.rd(ESR1);
    EXPECT_EQ((esr1 >> 4) & 3U, 2U);  // FLTCONF bus-off
    EXPECT_NE(esr1 & (1U << 2), 0U);  // BOFFINT
    EXPECT_TRUE(rig.irq.level(37));
    rig.wr(ESR1, 1U << 2);
    EXPECT_FALSE(rig.irq.level(37));
    rig.tx(9, 0x181, {1});
    rig.clock.run_until(t0 + 128 * 11 * 1000 + 500'000);
    if (!boffrec) {
      esr1 = rig.rd(ESR1);
      EXPECT_EQ((esr1 >> 4) & 3U, 0U);
      EXPECT_NE(esr1 & (1U << 19), 0U);  // BOFFDONEINT
      EXPECT_EQ(rig.rd(ECR), 0U);
      EXPECT_EQ(rig.peer.rx_pending(), 1U);
    } else {
      EXPECT_EQ((rig.rd(ESR1) >> 4) & 3U, 2U);  // stays bus-off while BOFFREC=1
      EXPECT_EQ(rig.peer.rx_pending(), 0U);
      rig.wr(CTRL1, rig.rd(CTRL1) & ~(1U << 6));
      rig.clock.run_for(128 * 11 * 1000 + 500'000);
      EXPECT_EQ((rig.rd(ESR1) >> 4) & 3U, 0U);
      EXPECT_EQ(rig.peer.rx_pending(), 1U);
    }
  }
}

TEST(FlexCan, TransmittingAtWrongBitRateEndsBusOff) {
  Rig rig(2, 1'000'000);
  rig.start(0x07730007 | (1U << 6));  // 250 kbit/s, BOFFREC=1: no automatic recovery
  rig.tx(9, 0x181, {1});
  rig.clock.run_for(5'000'000);
  EXPECT_EQ((rig.rd(ESR1) >> 4) & 3U, 2U);
  EXPECT_EQ(rig.peer.rx_pending(), 0U);
  EXPECT_EQ(rig.code(9), 0xCU);  // still pending
}

TEST(FlexCan, UnmuxedPinsKeepTheNodeOffTheBus) {
  Rig rig;
  rig.pins = false;
  rig.start();
  rig.arm_rx(4, 0x601);
  rig.peer.send(make(0x601, {1}));
  rig.clock.run_for(300'000);
  EXPECT_EQ(rig.code(4), 0x4U);
  EXPECT_GT(rig.peer.counters().tec, 0U);  // nobody acknowledged
  rig.pins = true;
  rig.can->config_changed();
  rig.clock.run_for(300'000);
  EXPECT_EQ(rig.code(4), 0x2U);
}

TEST(FlexCan, NoCanClockStallsTheHandshakeAndWarns) {
  Rig rig;
  rig.can_hz = 0;
  rig.wr(MCR, rig.rd(MCR) & ~kMdis);
  rig.settle();
  EXPECT_NE(rig.rd(MCR) & kLpmack, 0U);
  EXPECT_TRUE(rig.reporter.has(Severity::kWarning, "no CAN clock"));
  rig.can_hz = 40'000'000;
  rig.can->config_changed();
  rig.settle();
  EXPECT_EQ(rig.rd(MCR) & kLpmack, 0U);
}

TEST(FlexCan, AbortWithAenEndsPendingTransmission) {
  Rig rig;
  rig.bus.detach(rig.peer);  // alone: the frame is never acknowledged
  rig.start(kCtrl1_1M, kIrmq | kSrxdis | kAen);
  rig.tx(9, 0x181, {1});
  rig.clock.run_for(50'000);
  rig.wr(cs(9), 0x9U << 24);
  rig.clock.run_for(500'000);
  EXPECT_EQ(rig.code(9), 0x9U);
  EXPECT_EQ(rig.rd(IFLAG1), 1U << 9);
  EXPECT_NE(rig.rd(ESR1) & (1U << 13), 0U);  // ACKERR seen on the way
}

TEST(FlexCan, SelfReceptionUnlessSrxdis) {
  for (bool srxdis : {false, true}) {
    Rig rig;
    rig.start(kCtrl1_1M, kIrmq | (srxdis ? kSrxdis : 0U));
    rig.arm_rx(4, 0x181);
    rig.tx(9, 0x181, {7});
    rig.clock.run_for(500'000);
    EXPECT_EQ(rig.code(4), srxdis ? 0x4U : 0x2U);
  }
}

TEST(FlexCan, LoopbackModeReceivesItsOwnFramesWithoutTheBus) {
  Rig rig;
  rig.start(kCtrl1_1M | (1U << 12), kIrmq);  // LPB, self-reception on
  rig.arm_rx(4, 0x181);
  rig.tx(9, 0x181, {0x5A});
  rig.clock.run_for(500'000);
  EXPECT_EQ(rig.code(9), 0x8U);
  EXPECT_EQ(rig.code(4), 0x2U);
  EXPECT_EQ(rig.rd(cs(4) + 8) >> 24, 0x5AU);
  EXPECT_EQ(rig.peer.rx_pending(), 0U);
}

TEST(FlexCan, TimerCountsBitTimesOutOfFreezeAndStampsFrames) {
  Rig rig;
  rig.start();
  const std::uint32_t t0 = rig.rd(TIMER);
  rig.clock.run_for(1'000'000);  // 1000 bit times at 1 Mbit/s
  EXPECT_EQ((rig.rd(TIMER) - t0) & 0xFFFFU, 1000U);
  rig.enter_freeze();
  const std::uint32_t frozen = rig.rd(TIMER);
  rig.clock.run_for(1'000'000);
  EXPECT_EQ(rig.rd(TIMER), frozen);  // stopped in freeze mode
  rig.leave_freeze();
  rig.arm_rx(4, 0x123);
  const Nanos sof = rig.clock.now();
  const std::uint32_t at_sof = rig.rd(TIMER);
  rig.peer.send(make(0x123, {1}));
  rig.clock.run_for(500'000);
  ASSERT_LE(rig.clock.now() - sof, 500'000U);
  EXPECT_EQ(rig.rd(cs(4)) & 0xFFFFU, (at_sof + 1) & 0xFFFFU);  // captured at the identifier
}

// The MCUXpresso SDK driver sequence (shared/reference/rt1064.md §5.7) runs without any report.
TEST(FlexCan, SdkInitSequenceIsAcceptedWithoutReports) {
  Rig rig;
  auto poll = [&](std::uint32_t mask, bool set) {
    for (int i = 0; i < 1000; ++i) {
      if (((rig.rd(MCR) & mask) != 0) == set) return true;
      rig.clock.run_for(100);
    }
    return false;
  };
  // FLEXCAN_Enable(false) then (true).
  rig.wr(MCR, rig.rd(MCR) | kMdis);
  ASSERT_TRUE(poll(kLpmack, true));
  rig.wr(MCR, rig.rd(MCR) & ~kMdis);
  ASSERT_TRUE(poll(kLpmack, false));
  // FLEXCAN_Reset: DOZE off, soft reset, then configuration straight away (frozen by the reset).
  rig.wr(MCR, rig.rd(MCR) & ~(1U << 18));
  rig.wr(MCR, rig.rd(MCR) | kSoftrst);
  ASSERT_TRUE(poll(kSoftrst, false));
  rig.wr(MCR, rig.rd(MCR) | (1U << 21) | (1U << 19) | 63U);
  rig.wr(CTRL1, 1U << 7);
  rig.wr(CTRL2, (0x16U << 19) | (1U << 17) | (1U << 16));
  for (unsigned i = 0; i < 64; ++i) rig.wr(rximr(i), 0x3FFFFFFF);
  rig.wr(RXMGMASK, 0x3FFFFFFF);
  rig.wr(0x14, 0x3FFFFFFF);
  rig.wr(0x18, 0x3FFFFFFF);
  rig.wr(RXFGMASK, 0x3FFFFFFF);
  for (std::uint32_t off = 0x80; off < 0x480; off += 4) rig.wr(off, 0);
  // FLEXCAN_EnterFreezeMode (errata 9595 variant), timing, MCR options, exit freeze.
  rig.wr(MCR, rig.rd(MCR) | kFrz);
  ASSERT_TRUE(poll(kLpmack, false));
  ASSERT_NE((rig.rd(ESR1) >> 4) & 3U, 2U);
  rig.wr(MCR, rig.rd(MCR) | kHalt);
  ASSERT_TRUE(poll(kFrzack, true));
  std::uint32_t ctrl1 = rig.rd(CTRL1) & ~0xFFFF0007U;
  rig.wr(CTRL1, ctrl1 | kCtrl1_1M);
  rig.wr(MCR, (rig.rd(MCR) & ~0x7FU) | 15U | kIrmq | kSrxdis | (1U << 23));
  rig.wr(MCR, rig.rd(MCR) & ~kHalt);
  rig.wr(MCR, rig.rd(MCR) & ~kFrz);
  ASSERT_TRUE(poll(kFrzack, false));
  // Errata 5829: two INACTIVE writes to the first valid MB after each transmit request.
  rig.tx(9, 0x701, {0x00});
  rig.wr(cs(0), 0x8U << 24);
  rig.wr(cs(0), 0x8U << 24);
  rig.clock.run_for(500'000);
  EXPECT_EQ(rig.peer.rx_pending(), 1U);
  EXPECT_EQ(rig.reporter.entries.size(), 0U) << rig.reporter.entries.front().message;
}

TEST(FlexCan, AloneOnTheBusAckErrorsMakeItErrorPassive) {
  Rig rig;
  rig.bus.detach(rig.peer);
  rig.start(kCtrl1_1M | (1U << 14), kIrmq | kSrxdis | (1U << 21));  // ERRMSK, WRNEN
  rig.tx(9, 0x701, {0x00});
  rig.clock.run_for(10'000'000);
  EXPECT_EQ(rig.rd(ECR) & 0xFFU, 128U);  // TXERRCNT stops at 128 (ACK errors while passive)
  const std::uint32_t esr1 = rig.rd(ESR1);
  EXPECT_EQ((esr1 >> 4) & 3U, 1U);   // error-passive
  EXPECT_NE(esr1 & (1U << 13), 0U);  // ACKERR
  EXPECT_NE(esr1 & (1U << 9), 0U);   // TXWRN
  EXPECT_NE(esr1 & (1U << 17), 0U);  // TWRNINT (WRNEN)
  EXPECT_TRUE(rig.irq.level(37));    // ERRINT under ERRMSK
  EXPECT_EQ(rig.code(9), 0xCU);      // still trying
  // A second node appears: the frame goes out, the counter starts to fall.
  rig.bus.attach(rig.peer);
  rig.clock.run_for(1'000'000);
  EXPECT_EQ(rig.peer.rx_pending(), 1U);
  EXPECT_EQ(rig.code(9), 0x8U);
  EXPECT_EQ(rig.rd(ECR) & 0xFFU, 127U);
}

TEST(FlexCan, TwoFlexcansOnOneBusTalk) {
  FakeClock clock;
  RecordingReporter reporter;
  FakeIrq irq;
  Bus bus(clock, reporter, 500'000);
  FlexCanConfig cfg;
  cfg.clock_hz = [] { return 40'000'000U; };
  cfg.instance = 2;
  FlexCan a(cfg, clock, irq, reporter);
  cfg.instance = 3;
  FlexCan b(cfg, clock, irq, reporter);
  bus.attach(a);
  bus.attach(b);
  for (FlexCan* c : {&a, &b}) {
    c->write(MCR, c->read(MCR, 4, 0) & ~kMdis, 4, 0);
    clock.run_for(20'000);
    c->write(CTRL1, 0x03730007, 4, 0);  // 500 kbit/s at 40 MHz (FLEXCAN3 with BTF=0 uses CTRL1 too)
    c->write(MCR, (c->read(MCR, 4, 0) & ~(kFrz | kHalt | 0x7FU)) | 15U | kIrmq | kSrxdis, 4, 0);
    clock.run_for(20'000);
  }
  b.write(cs(4) + 4, 0x581U << 18, 4, 0);
  b.write(cs(4), 0x4U << 24, 4, 0);
  a.write(cs(9) + 4, 0x581U << 18, 4, 0);
  a.write(cs(9) + 8, 0x43001000, 4, 0);
  a.write(cs(9), (0xCU << 24) | (4U << 16), 4, 0);
  clock.run_for(1'000'000);
  EXPECT_EQ((b.read(cs(4), 4, 0) >> 24) & 0xFU, 0x2U);
  EXPECT_EQ(b.read(cs(4) + 8, 4, 0), 0x43001000U);
  EXPECT_EQ((a.read(cs(9), 4, 0) >> 24) & 0xFU, 0x8U);
  EXPECT_EQ(reporter.count(Severity::kFault), 0U);
}

TEST(FlexCan, RemoteFramesStoredOnlyWithRrsAndRtrComparedUnderEacenMask) {
  struct Case {
    std::uint32_t ctrl2;
    std::uint32_t rximr;
    bool stored;
  };
  const std::uint32_t rrs = 1U << 17, eacen = 1U << 16;
  for (const Case& c :
       {Case{0, 0x1FFFFFFF, false}, Case{rrs, 0x1FFFFFFF, true},
        Case{rrs | eacen, 0xFFFFFFFF, false}, Case{rrs | eacen, 0x7FFFFFFF, true}}) {
    Rig rig;
    rig.enable_frozen();
    rig.wr(CTRL1, kCtrl1_1M);
    rig.wr(CTRL2, (rig.rd(CTRL2) & ~(rrs | eacen)) | c.ctrl2);
    rig.wr(MCR, (rig.rd(MCR) & ~0x7FU) | 15U | kIrmq | kSrxdis);
    rig.wr(rximr(4), c.rximr);
    rig.leave_freeze();
    rig.arm_rx(4, 0x123);  // RTR bit of the MB is 0
    CanFrame remote = make(0x123, {});
    remote.flags = CanFrame::kRemote;
    rig.peer.send(remote);
    rig.clock.run_for(300'000);
    EXPECT_EQ(rig.code(4), c.stored ? 0x2U : 0x4U) << c.ctrl2 << " " << c.rximr;
  }
}

TEST(FlexCan, EacenWithoutIdeMaskBitAcceptsBothFormats) {
  Rig rig;
  rig.enable_frozen();
  rig.wr(CTRL1, kCtrl1_1M);
  rig.wr(CTRL2, rig.rd(CTRL2) | (1U << 16));
  rig.wr(MCR, (rig.rd(MCR) & ~0x7FU) | 15U | kIrmq | kSrxdis);
  rig.wr(rximr(4), 0x1FFC0000);  // base id only, IDE/RTR not compared
  rig.leave_freeze();
  rig.arm_rx(4, 0x123);
  CanFrame ext = make(0x123U << 18, {1});
  ext.flags = CanFrame::kExtended;
  rig.peer.send(ext);
  rig.clock.run_for(300'000);
  EXPECT_EQ(rig.code(4), 0x2U);
  EXPECT_NE(rig.rd(cs(4)) & (1U << 21), 0U);  // stored with IDE
}

TEST(FlexCan, ListenOnlyReadsPassiveNeverAcknowledgesAndKeepsCountersFrozen) {
  Rig rig;
  rig.start(kCtrl1_1M | (1U << 3));  // LOM
  EXPECT_EQ((rig.rd(ESR1) >> 4) & 3U, 1U);
  rig.arm_rx(4, 0x181);
  rig.peer.send(make(0x181, {1}));
  rig.clock.run_for(300'000);
  EXPECT_EQ(rig.code(4), 0x4U);              // not acknowledged by anyone: not received
  EXPECT_GT(rig.peer.counters().tec, 0U);    // the listen-only node gave no ACK
  EXPECT_NE(rig.rd(ESR1) & (1U << 14), 0U);  // BIT0ERR
  EXPECT_EQ(rig.rd(ECR), 0U);
  Endpoint acker("acker");
  rig.bus.attach(acker);
  rig.clock.run_for(300'000);
  EXPECT_EQ(rig.code(4), 0x2U);  // acknowledged by another node: received
  rig.tx(9, 0x200, {1});
  rig.clock.run_for(300'000);
  EXPECT_EQ(rig.code(9), 0xCU);       // no transmission in listen-only mode
  EXPECT_EQ(acker.rx_pending(), 1U);  // only the peer's frame
}

TEST(FlexCan, WarningMasksNeedWrnen) {
  Rig rig;
  rig.start();
  rig.wr(CTRL1, kCtrl1_1M | (1U << 10) | (1U << 11));
  EXPECT_EQ(rig.rd(CTRL1), kCtrl1_1M);
  EXPECT_TRUE(rig.reporter.has(Severity::kWarning, "WRNEN"));
  rig.enter_freeze();
  rig.wr(MCR, rig.rd(MCR) | (1U << 21));
  rig.wr(CTRL1, kCtrl1_1M | (1U << 10) | (1U << 11));
  EXPECT_EQ(rig.rd(CTRL1), kCtrl1_1M | (1U << 10) | (1U << 11));
}

TEST(FlexCan, TxErrCountCountsRecoverySequencesWhileBusOff) {
  Rig rig;
  rig.start();
  const Nanos t0 = rig.clock.now();
  rig.bus.inject_bus_off(*rig.can, t0);
  rig.clock.run_until(t0 + 64 * 11 * 1000 + 500);
  EXPECT_EQ((rig.rd(ESR1) >> 4) & 3U, 2U);
  EXPECT_EQ(rig.rd(ECR) & 0xFFU, 64U);
  rig.clock.run_until(t0 + 128 * 11 * 1000 + 500);
  EXPECT_EQ((rig.rd(ESR1) >> 4) & 3U, 0U);
  EXPECT_EQ(rig.rd(ECR), 0U);
}

TEST(FlexCan, FreezeRequestedDuringAReceptionWaitsForTheEndOfTheFrame) {
  Rig rig;
  rig.start();
  rig.arm_rx(4, 0x181);
  rig.peer.send(make(0x181, {1, 2, 3, 4, 5, 6, 7, 8}));
  rig.clock.run_for(30'000);  // 30 bits into a frame of more than 100
  ASSERT_FALSE(rig.bus.idle());
  rig.wr(MCR, rig.rd(MCR) | kFrz | kHalt);
  rig.clock.run_for(10'000);
  EXPECT_EQ(rig.rd(MCR) & kFrzack, 0U);  // not yet: the frame is still on the wire
  rig.clock.run_for(200'000);
  EXPECT_NE(rig.rd(MCR) & kFrzack, 0U);
  EXPECT_EQ(rig.code(4), 0x2U);  // and it was received
}

TEST(FlexCan, PartialWidthAccessesWork) {
  Rig rig;
  rig.start();
  rig.can->write(cs(20) + 9, 0xAB, 1, kPc);
  EXPECT_EQ(rig.rd(cs(20) + 8), 0x0000AB00U);  // little-endian bus: byte 1 of the word
  EXPECT_EQ(rig.can->read(cs(20) + 8, 2, kPc), 0xAB00U);
  EXPECT_EQ(rig.can->read(cs(20) + 10, 2, kPc), 0U);
  EXPECT_EQ(rig.can->read(cs(20) + 9, 1, kPc), 0xABU);
}

}  // namespace
}  // namespace rtcanboot::twin::can
