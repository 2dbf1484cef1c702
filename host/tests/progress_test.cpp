// Progress display: plain lines every 10 % off a terminal, a throttled bar on one, rate and ETA.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "rtcanboot/host/progress.hpp"

namespace rtcanboot::host {
namespace {

TEST(Progress, PlainLinesEveryTenPercentWithRateAndEta) {
  std::vector<std::string> out;
  Micros now = 0;
  ProgressDisplay p([&](const std::string& s) { out.push_back(s); }, false, [&] { return now; });
  for (std::uint64_t done = 0; done <= 10'240; done += 256) {
    p.update(done, 10'240);
    now += 100'000;  // 256 bytes per 0.1 s = 2.5 KiB/s
  }
  p.update(10'240, 10'240);  // repeated completion prints nothing more
  ASSERT_EQ(out.size(), 11U);
  EXPECT_EQ(out.front(), "  0%  0 / 10240 bytes  0.0 KiB/s  ETA --:--\n");
  EXPECT_EQ(out[5], " 50%  5120 / 10240 bytes  2.5 KiB/s  ETA 0:02\n");
  EXPECT_EQ(out.back(), "100%  10240 / 10240 bytes  2.5 KiB/s  ETA 0:00\n");
}

TEST(Progress, TerminalBarIsRedrawnInPlaceAtMostTenTimesASecond) {
  std::vector<std::string> out;
  Micros now = 1;
  ProgressDisplay p([&](const std::string& s) { out.push_back(s); }, true, [&] { return now; });
  for (std::uint64_t done = 0; done <= 1000; done += 10) {
    p.update(done, 1000);
    now += 20'000;
  }
  // 100 updates over 2 s: about 20 redraws, the last one complete with a newline.
  EXPECT_GE(out.size(), 18U);
  EXPECT_LE(out.size(), 22U);
  for (const auto& s : out) EXPECT_EQ(s.front(), '\r');
  EXPECT_NE(out.back().find("[##############################] 100.0%"), std::string::npos)
      << out.back();
  EXPECT_EQ(out.back().back(), '\n');
  EXPECT_EQ(std::count(out.back().begin(), out.back().end(), '\n'), 1);
}

TEST(Progress, EtaText) {
  EXPECT_EQ(ProgressDisplay::eta_text(0, 100, 0.0), "--:--");
  EXPECT_EQ(ProgressDisplay::eta_text(50, 100, 10.0), "0:05");
  EXPECT_EQ(ProgressDisplay::eta_text(0, 7200, 1.0), "2:00:00");
  EXPECT_EQ(ProgressDisplay::eta_text(0, 90, 1.0), "1:30");
}

}  // namespace
}  // namespace rtcanboot::host
