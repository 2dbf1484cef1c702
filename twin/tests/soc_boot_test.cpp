// Boot path and strictness tests on the twin with the test firmwares from firmware/twin-tests.
#include <gtest/gtest.h>

#include "soc_test_support.hpp"

namespace rtcanboot::twin {
namespace {

using testing::firmware_path;
using testing::load_file;
using testing::quiet_config;

class FirmwareTest : public ::testing::Test {
 protected:
  Board& boot(const std::string& name, Nanos run_for = milliseconds_ns(100)) {
    image_ = load_file(firmware_path(name));
    if (image_.empty()) return *static_cast<Board*>(nullptr);
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
  if (!have(name)) GTEST_SKIP() << "test firmware not built: " << firmware_path(name)

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
  EXPECT_NE(c.find("xfer readback 0x09121B24"), std::string::npos) << c;
  EXPECT_NE(c.find("warm reset seen, SRSR=0x00000003"), std::string::npos) << c;
  EXPECT_NE(c.find("DONE"), std::string::npos) << c;
  EXPECT_EQ(b.state(), BoardState::kSleeping);
}

}  // namespace
}  // namespace rtcanboot::twin
