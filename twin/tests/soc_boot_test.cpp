// Boot path and strictness tests on the twin with the test firmwares from firmware/twin-tests.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>

#include "firmware_required.hpp"
#include "soc_test_support.hpp"
#include "twin/can/bus.hpp"

namespace rtcanboot::twin {
namespace {

using testing::firmware_path;
using testing::load_file;
using testing::quiet_config;

class FirmwareTest : public ::testing::Test {
 protected:
  Board& boot(const std::string& name, Nanos run_for = milliseconds_ns(100)) {
    image_ = load_file(firmware_path(name));
    Board& b = sim_.add_board(quiet_config(name));
    b.flash().probe_write(0, image_);
    b.power_on();
    sim_.run_for(run_for);
    return b;
  }
  bool have(const std::string& name) { return !load_file(firmware_path(name)).empty(); }
  Simulation sim_;
  std::vector<std::uint8_t> image_;
};

#define REQUIRE_FIRMWARE(name) \
  RTCANBOOT_SKIP_WITHOUT_FIRMWARE(!have(name), "test firmware not built: " << firmware_path(name))

TEST_F(FirmwareTest, HelloBootsRunsTimerRomApiAndWarmReset) {
  REQUIRE_FIRMWARE("hello");
  Board& b = boot("hello", milliseconds_ns(1500));
  EXPECT_EQ(b.fault_count(), 0u) << b.stop_reason();
  const std::string& c = b.console();
  EXPECT_NE(c.find("twin-test hello start"), std::string::npos) << c;
  EXPECT_NE(c.find("ticks 0x0000000A"), std::string::npos) << c;
  EXPECT_NE(c.find("init 0x00000000"), std::string::npos) << c;
  EXPECT_NE(c.find("erase 0x00000000"), std::string::npos) << c;
  EXPECT_NE(c.find("program 0x00000000"), std::string::npos) << c;
  EXPECT_NE(c.find("readback 0x070E151C"), std::string::npos) << c;
  EXPECT_NE(c.find("rom read 0x04080C10"), std::string::npos) << c;
  EXPECT_NE(c.find("update_lut 0x00000000"), std::string::npos) << c;
  EXPECT_NE(c.find("xfer readback 0x09121B24"), std::string::npos) << c;
  EXPECT_NE(c.find("warm reset seen, SRSR=0x00000003"), std::string::npos) << c;
  EXPECT_NE(c.find("DONE"), std::string::npos) << c;
  EXPECT_EQ(b.state(), BoardState::kSleeping);
}

}  // namespace
}  // namespace rtcanboot::twin

namespace rtcanboot::twin {
namespace {

using testing::firmware_path;
using testing::load_file;
using testing::quiet_config;

struct Strict {
  const char* firmware;
  const char* fault_text;
};

class StrictnessTest : public ::testing::TestWithParam<Strict> {};

TEST_P(StrictnessTest, FaultIsReported) {
  const auto image = load_file(firmware_path(GetParam().firmware));
  RTCANBOOT_SKIP_WITHOUT_FIRMWARE(
      image.empty(), "test firmware not built: " << firmware_path(GetParam().firmware));
  Simulation sim;
  Board& b = sim.add_board(quiet_config(GetParam().firmware));
  b.flash().probe_write(0, image);
  b.power_on();
  sim.run_for(milliseconds_ns(200));
  EXPECT_TRUE(b.has_fault_containing(GetParam().fault_text))
      << "console:\n"
      << b.console() << "\nstop: " << b.stop_reason();
  EXPECT_EQ(b.console().find("not reached"), std::string::npos) << b.console();
}

INSTANTIATE_TEST_SUITE_P(
    Firmwares, StrictnessTest,
    ::testing::Values(Strict{"read-during-program", "read-while-write: data read at 0x70000000"},
                      Strict{"zero-to-one", "0->1 bit change at offset 0x3F0000"},
                      Strict{"stale", "D-cache on and the line not invalidated"},
                      Strict{"instance0", "instance 0"},
                      Strict{"xip-erase", "ROM erase called from code in the FlexSPI2 window"}),
    [](const ::testing::TestParamInfo<Strict>& param_info) {
      std::string n = param_info.param.firmware;
      for (auto& c : n) {
        if (c == '-') c = '_';
      }
      return n;
    });

class BootPathTest : public ::testing::Test {
 protected:
  void SetUp() override {
    image_ = load_file(firmware_path("hello"));
    RTCANBOOT_SKIP_WITHOUT_FIRMWARE(image_.empty(), "test firmware not built");
  }
  Board& boot(const std::vector<std::uint8_t>& image) {
    Board& b = sim_.add_board(quiet_config("boot"));
    b.flash().probe_write(0, image);
    b.power_on();
    sim_.run_for(milliseconds_ns(30));
    return b;
  }
  void put32(std::vector<std::uint8_t>& img, std::size_t off, std::uint32_t v) {
    std::memcpy(&img[off], &v, 4);
  }
  Simulation sim_;
  std::vector<std::uint8_t> image_;
};

TEST_F(BootPathTest, ErasedFlashDoesNotBoot) {
  Board& b = sim_.add_board(quiet_config("blank"));
  b.power_on();
  sim_.run_for(milliseconds_ns(10));
  EXPECT_EQ(b.state(), BoardState::kBootFailed);
  EXPECT_NE(b.stop_reason().find("FCB tag at flash offset 0 is 0xFFFFFFFF"), std::string::npos)
      << b.stop_reason();
}

TEST_F(BootPathTest, BadFcbTagDoesNotBoot) {
  auto img = image_;
  img[0] ^= 0x01;
  Board& b = boot(img);
  EXPECT_EQ(b.state(), BoardState::kBootFailed);
  EXPECT_NE(b.stop_reason().find("FCB tag"), std::string::npos) << b.stop_reason();
  EXPECT_TRUE(b.console().empty());
}

TEST_F(BootPathTest, BadIvtHeaderDoesNotBoot) {
  auto img = image_;
  put32(img, 0x1000, 0x412000D2);
  Board& b = boot(img);
  EXPECT_EQ(b.state(), BoardState::kBootFailed);
  EXPECT_NE(b.stop_reason().find("IVT header"), std::string::npos) << b.stop_reason();
}

TEST_F(BootPathTest, IvtSelfMismatchDoesNotBoot) {
  auto img = image_;
  put32(img, 0x1014, 0x70001000);  // self says XIP, boot data says ITCM
  Board& b = boot(img);
  EXPECT_EQ(b.state(), BoardState::kBootFailed);
  EXPECT_NE(b.stop_reason().find("self"), std::string::npos) << b.stop_reason();
}

TEST_F(BootPathTest, ResetVectorWithoutThumbBitDoesNotBoot) {
  auto img = image_;
  std::uint32_t pc = 0;
  std::memcpy(&pc, &img[0x2004], 4);
  put32(img, 0x2004, pc & ~1u);
  Board& b = boot(img);
  EXPECT_EQ(b.state(), BoardState::kBootFailed);
  EXPECT_NE(b.stop_reason().find("Thumb bit"), std::string::npos) << b.stop_reason();
}

TEST_F(BootPathTest, IvtEntryMayBeAThumbFunction) {
  auto img = image_;
  std::uint32_t pc = 0;
  std::memcpy(&pc, &img[0x2004], 4);
  put32(img, 0x1004, pc);  // entry = Reset_Handler (odd) instead of the vector table
  Board& b = boot(img);
  EXPECT_EQ(b.fault_count(), 0u) << b.stop_reason();
  EXPECT_NE(b.console().find("twin-test hello start"), std::string::npos) << b.console();
}

TEST_F(BootPathTest, SameInputsGiveSameTimings) {
  auto run = [this]() {
    Simulation sim;
    BoardConfig cfg = quiet_config("det");
    Board& b = sim.add_board(cfg);
    b.flash().probe_write(0, image_);
    b.power_on();
    sim.run_for(milliseconds_ns(400));
    std::string log;
    for (const auto& r : b.reports()) log += std::to_string(r.time) + " " + r.message + "\n";
    return log + b.console() + std::to_string(b.cycles());
  };
  EXPECT_EQ(run(), run());
}

TEST(PowerCut, DuringABlockingRomProgramTearsThePageAndTheBoardBootsAgain) {
  const auto image = load_file(firmware_path("hello"));
  RTCANBOOT_SKIP_WITHOUT_FIRMWARE(image.empty(), "test firmware not built");
  Simulation sim;
  Board& b = sim.add_board(quiet_config("cut"));
  b.flash().probe_write(0, image);
  b.power_on();
  b.flash().cut_power_at_operation(2);  // 1: ROM erase, 2: ROM page program of 0x3F0000
  sim.run_for(milliseconds_ns(100));
  ASSERT_EQ(b.state(), BoardState::kOff) << b.console();
  EXPECT_NE(b.stop_reason().find("page program at 0x3F0000"), std::string::npos) << b.stop_reason();
  EXPECT_EQ(b.console().find("program 0x"), std::string::npos);  // the call never returned
  // Torn: the page holds some but not all of the pattern's cleared bits.
  const auto m = b.flash().contents();
  int changed = 0;
  for (std::uint32_t i = 0; i < 256; ++i) changed += m[0x3F'0000 + i] != 0xFF;
  EXPECT_GT(changed, 0);
  b.power_on();
  sim.run_for(milliseconds_ns(50));
  EXPECT_EQ(b.console().find("twin-test hello start"), 0u);
  EXPECT_NE(b.console().rfind("twin-test hello start"), 0u);  // printed again after power-on
}

// A cut that falls due inside a blocking ROM program call, before the call sends its first
// command: the board goes off with nothing programmed, and the ROM model does nothing more (it
// neither polls a dead flash until a timeout nor reports a hang): found by the power-cut sweep.
TEST(PowerCut, DueInsideABlockingRomCallBeforeItsFirstCommandTurnsTheBoardOff) {
  const auto image = load_file(firmware_path("hello"));
  RTCANBOOT_SKIP_WITHOUT_FIRMWARE(image.empty(), "test firmware not built");
  Nanos program_start = 0;
  {
    Simulation sim;
    Board& b = sim.add_board(quiet_config("ref"));
    b.flash().probe_write(0, image);
    int busy_edges = 0;
    auto board_hook = b.flash().on_busy_change;
    b.flash().on_busy_change = [&](bool busy) {
      board_hook(busy);
      if (busy && ++busy_edges == 2) program_start = b.flash().current_op().start;
    };
    b.power_on();
    sim.run_for(milliseconds_ns(100));
    b.flash().on_busy_change = board_hook;
  }
  ASSERT_GT(program_start, 2'000);
  Simulation sim;
  Board& b = sim.add_board(quiet_config("cut"));
  b.flash().probe_write(0, image);
  b.power_on();
  b.flash().cut_power_at_time(program_start - 1'000);
  sim.run_for(milliseconds_ns(100));
  ASSERT_EQ(b.state(), BoardState::kOff) << b.console();
  EXPECT_EQ(b.fault_count(), 0u) << b.stop_reason();
  EXPECT_EQ(b.flash().mutating_operations(), 1u);  // the erase only
  const auto m = b.flash().contents();
  for (std::uint32_t i = 0; i < 256; ++i) ASSERT_EQ(m[0x3F'0000 + i], 0xFF) << i;
}

TEST(CanStrictness, TimingWriteOutsideFreezeIsIgnoredAndReported) {
  const auto image = load_file(firmware_path("can-timing-outside-freeze"));
  RTCANBOOT_SKIP_WITHOUT_FIRMWARE(image.empty(), "test firmware not built");
  Simulation sim;
  Board& b = sim.add_board(quiet_config("can"));
  b.flash().probe_write(0, image);
  b.power_on();
  sim.run_for(milliseconds_ns(50));
  EXPECT_TRUE(b.has_fault_containing("outside freeze mode")) << b.console();
  EXPECT_NE(b.console().find("DONE"), std::string::npos) << b.console();
}

TEST(CanStrictness, MismatchedBitRateReachesNobody) {
  const auto image = load_file(firmware_path("can-wrong-bitrate"));
  RTCANBOOT_SKIP_WITHOUT_FIRMWARE(image.empty(), "test firmware not built");
  Simulation sim;
  std::vector<Report> bus_reports;
  sim.set_report_sink([&](const Report& r) { bus_reports.push_back(r); });
  can::Bus& bus = sim.add_bus(500'000);  // the firmware configures 1 Mbit/s
  can::Endpoint peer("peer");
  bus.attach(peer);
  Board& b = sim.add_board(quiet_config("can"));
  b.flash().probe_write(0, image);
  b.connect_can(bus, 2);
  b.power_on();
  sim.run_for(milliseconds_ns(50));
  EXPECT_EQ(peer.rx_pending(), 0u);
  const bool reported = std::any_of(bus_reports.begin(), bus_reports.end(), [](const Report& r) {
    return r.severity == Severity::kFault &&
           r.message.find("but the bus runs at 500000 bit/s") != std::string::npos;
  });
  EXPECT_TRUE(reported);
  EXPECT_NE(b.console().find("DONE"), std::string::npos) << b.console();
}

}  // namespace
}  // namespace rtcanboot::twin
