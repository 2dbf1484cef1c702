// Unit tests of the W25Q32JV model: commands, wrap, 0->1 rule, erase sizes, busy/WEL, timing,
// power cuts and the backing file.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <vector>

#include "twin/event_queue.hpp"
#include "twin/flash_w25q.hpp"

namespace rtcanboot::twin {
namespace {

class CollectingReporter : public Reporter {
 public:
  void report(Severity severity, const std::string&, const std::string& message,
              std::uint32_t) override {
    if (severity == Severity::kFault) faults.push_back(message);
  }
  std::vector<std::string> faults;
};

class FlashTest : public ::testing::Test {
 protected:
  bool cmd(std::uint8_t op, std::uint32_t addr = 0, std::vector<std::uint8_t> tx = {}) {
    return flash.command(op, addr, tx, {}, 0);
  }
  std::uint8_t status() {
    std::uint8_t s = 0;
    flash.command(0x05, 0, {}, {&s, 1}, 0);
    return s;
  }
  void program(std::uint32_t addr, std::vector<std::uint8_t> data) {
    ASSERT_TRUE(cmd(0x06));
    ASSERT_TRUE(cmd(0x02, addr, std::move(data)));
    q.advance_to(q.queue_time() + flash.times().page_program);
    ASSERT_FALSE(flash.busy());
  }
  EventQueue q;
  CollectingReporter rep;
  W25Q32 flash{q, rep};
};

TEST_F(FlashTest, StartsErasedAndAnswersJedecId) {
  EXPECT_EQ(flash.contents()[0], 0xFF);
  EXPECT_EQ(flash.contents()[W25Q32::kSize - 1], 0xFF);
  std::uint8_t id[3] = {};
  ASSERT_TRUE(flash.command(0x9F, 0, {}, id, 0));
  EXPECT_EQ(id[0], 0xEF);
  EXPECT_EQ(id[1], 0x40);
  EXPECT_EQ(id[2], 0x16);
}

TEST_F(FlashTest, ProgramNeedsWriteEnableAndClearsWelAfterwards) {
  EXPECT_FALSE(cmd(0x02, 0, {0x00}));
  EXPECT_EQ(rep.faults.size(), 1u);
  EXPECT_TRUE(cmd(0x06));
  EXPECT_EQ(status() & W25Q32::kStatusWel, W25Q32::kStatusWel);
  EXPECT_TRUE(cmd(0x02, 0x100, {0x12, 0x34}));
  EXPECT_EQ(status(), W25Q32::kStatusBusy | W25Q32::kStatusWel);
  q.advance_to(flash.times().page_program - 1);
  EXPECT_TRUE(flash.busy());
  EXPECT_EQ(flash.contents()[0x100], 0xFF);  // data lands when the operation ends
  q.advance_to(flash.times().page_program);
  EXPECT_EQ(status(), 0);
  EXPECT_EQ(flash.contents()[0x100], 0x12);
  EXPECT_EQ(flash.contents()[0x101], 0x34);
}

TEST_F(FlashTest, PageProgramWrapsInsideThePage) {
  program(0x1FE, {1, 2, 3, 4});
  EXPECT_EQ(flash.contents()[0x1FE], 1);
  EXPECT_EQ(flash.contents()[0x1FF], 2);
  EXPECT_EQ(flash.contents()[0x100], 3);
  EXPECT_EQ(flash.contents()[0x101], 4);
  EXPECT_EQ(flash.contents()[0x200], 0xFF);
}

TEST_F(FlashTest, ZeroToOneIsAFaultAndBitsStayCleared) {
  program(0x0, {0x0F});
  EXPECT_TRUE(rep.faults.empty());
  program(0x0, {0xF0});
  ASSERT_EQ(rep.faults.size(), 1u);
  EXPECT_NE(rep.faults[0].find("0->1"), std::string::npos);
  EXPECT_EQ(flash.contents()[0], 0x00);
}

TEST_F(FlashTest, PaddingWithFFIsNotAZeroToOneAttempt) {
  program(0x0, {0x00, 0x00});
  program(0x0, {0xFF, 0xFF, 0x55});
  EXPECT_TRUE(rep.faults.empty());
  EXPECT_EQ(flash.contents()[2], 0x55);
}

TEST_F(FlashTest, EraseSizesAlignDownAndTakeTheirTime) {
  std::vector<std::uint8_t> zeros(256, 0);
  for (std::uint32_t a = 0; a < 0x20000; a += 0x8000) program(a + 0x100, zeros);
  struct Case {
    std::uint8_t op;
    std::uint32_t addr, start, len;
    Nanos time;
  } cases[] = {{0x20, 0x1234, 0x1000, 0x1000, flash.times().erase_4k},
               {0x52, 0x8123, 0x8000, 0x8000, flash.times().erase_32k},
               {0xD8, 0x1FFFF, 0x10000, 0x10000, flash.times().erase_64k}};
  for (const auto& c : cases) {
    program(c.start + 0x10, {0x00});
    program(c.start + c.len - 1, {0x00});
    ASSERT_TRUE(cmd(0x06));
    ASSERT_TRUE(cmd(c.op, c.addr));
    const Nanos t0 = q.queue_time();
    EXPECT_TRUE(flash.busy());
    EXPECT_EQ(flash.current_op().address, c.start);
    q.advance_to(t0 + c.time - 1);
    EXPECT_TRUE(flash.busy());
    q.advance_to(t0 + c.time);
    EXPECT_FALSE(flash.busy());
    EXPECT_EQ(flash.contents()[c.start + 0x10], 0xFF);
    EXPECT_EQ(flash.contents()[c.start + c.len - 1], 0xFF);
  }
  EXPECT_EQ(flash.contents()[0x100], 0x00);  // sector 0 untouched
  EXPECT_EQ(flash.wear(1), 1u);
  EXPECT_EQ(flash.wear(0), 0u);
}

TEST_F(FlashTest, CommandsWhileBusyAreIgnoredButStatusAnswers) {
  ASSERT_TRUE(cmd(0x06));
  ASSERT_TRUE(cmd(0x20, 0));
  EXPECT_FALSE(cmd(0x06));
  std::uint8_t b[4] = {};
  EXPECT_FALSE(flash.command(0x03, 0, {}, b, 0));
  EXPECT_EQ(rep.faults.size(), 2u);
  EXPECT_EQ(status() & W25Q32::kStatusBusy, W25Q32::kStatusBusy);
}

TEST_F(FlashTest, MaxTimingProfile) {
  flash.set_timing(FlashTiming::kMax);
  EXPECT_EQ(flash.times().page_program, 3'000'000u);
  EXPECT_EQ(flash.times().erase_4k, 400'000'000u);
  EXPECT_EQ(flash.times().erase_32k, 1'600'000'000u);
  EXPECT_EQ(flash.times().erase_64k, 2'000'000'000u);
  flash.set_timing(FlashTiming::kTypical);
  EXPECT_EQ(flash.times().page_program, 400'000u);
  EXPECT_EQ(flash.times().erase_4k, 45'000'000u);
}

TEST_F(FlashTest, PowerCutAtNthOperationTearsAProgram) {
  std::string cut;
  flash.on_power_cut = [&](const std::string& what) { cut = what; };
  flash.cut_power_at_operation(2);
  program(0x0, std::vector<std::uint8_t>(256, 0xAA));
  ASSERT_TRUE(cmd(0x06));
  ASSERT_TRUE(cmd(0x02, 0x100, std::vector<std::uint8_t>(256, 0x00)));
  q.advance_to(q.queue_time() + flash.times().page_program);
  EXPECT_FALSE(flash.powered());
  EXPECT_NE(cut.find("page program"), std::string::npos);
  // A prefix of the bits is cleared: some bytes 0x00 at the start, 0xFF at the end.
  const auto m = flash.contents();
  EXPECT_EQ(m[0x100], 0x00);
  EXPECT_EQ(m[0x1FF], 0xFF);
  for (std::uint32_t i = 0x101; i < 0x200; ++i) EXPECT_LE(m[i - 1] & 0xFF, 0xFF);
  EXPECT_FALSE(cmd(0x06));  // no power: no answer
  flash.power_on();
  EXPECT_TRUE(cmd(0x06));
}

TEST_F(FlashTest, PowerCutAtTimeLeavesPartlyErasedSectorDeterministically) {
  auto run = [](std::uint64_t seed) {
    EventQueue eq;
    CollectingReporter r;
    W25Q32 f(eq, r);
    f.set_seed(seed);
    std::vector<std::uint8_t> zeros(W25Q32::kSector, 0);
    f.probe_write(0x3000, zeros);
    f.command(0x06, 0, {}, {}, 0);
    f.command(0x20, 0x3000, {}, {}, 0);
    f.cut_power_at_time(f.times().erase_4k / 2);
    eq.advance_to(f.times().erase_4k);
    return std::vector<std::uint8_t>(f.contents().begin() + 0x3000, f.contents().begin() + 0x4000);
  };
  const auto a = run(7);
  const auto b = run(7);
  const auto c = run(8);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  std::size_t erased = 0, zero = 0;
  for (auto v : a) {
    erased += v == 0xFF;
    zero += v == 0x00;
  }
  EXPECT_LT(erased, a.size());  // not fully erased
  EXPECT_LT(zero, a.size());    // not untouched either
}

TEST_F(FlashTest, BackingFileIsCreatedErasedAndWrittenThrough) {
  char path[] = "/tmp/rtcanboot-flash-XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  close(fd);
  std::remove(path);
  {
    EventQueue eq;
    CollectingReporter r;
    W25Q32 f(eq, r);
    std::string err;
    ASSERT_TRUE(f.open_backing(path, &err)) << err;
    f.command(0x06, 0, {}, {}, 0);
    std::vector<std::uint8_t> d = {0x12, 0x34};
    f.command(0x02, 0x3F'F000, d, {}, 0);
    eq.advance_to(f.times().page_program);
  }
  {
    EventQueue eq;
    CollectingReporter r;
    W25Q32 f(eq, r);
    std::string err;
    ASSERT_TRUE(f.open_backing(path, &err)) << err;
    EXPECT_EQ(f.contents()[0x3F'F000], 0x12);
    EXPECT_EQ(f.contents()[0x3F'F001], 0x34);
    EXPECT_EQ(f.contents()[0], 0xFF);
  }
  {
    std::ofstream(path, std::ios::app) << "x";  // wrong size
    EventQueue eq;
    CollectingReporter r;
    W25Q32 f(eq, r);
    std::string err;
    EXPECT_FALSE(f.open_backing(path, &err));
    EXPECT_NE(err.find("exactly"), std::string::npos);
  }
  std::remove(path);
}

}  // namespace
}  // namespace rtcanboot::twin
