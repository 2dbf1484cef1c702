// End to end under every reading of the unconfirmed chip facts the twin models (docs/twin.md
// "Readings"): the whole user story (update, the application runs, back to the bootloader on
// 0x1F51:1 = 0, update again) must work under each, with no twin fault.
#include <string>

#include "e2e_rig.hpp"

namespace rtcanboot::e2e {
namespace {

constexpr std::uint8_t kNode = 9;

struct Reading {
  std::string name;
  tw::Readings readings;
};

void PrintTo(const Reading& reading, std::ostream* os) {
  *os << reading.name;
}

std::vector<Reading> every_reading() {
  std::vector<Reading> out;
  for (const auto lut : {tw::LutAfterReset::kZero, tw::LutAfterReset::kSeeded,
                         tw::LutAfterReset::kKeptOverWarmReset}) {
    for (const auto pll3 : {tw::Pll3AfterBoot::kPoweredDown, tw::Pll3AfterBoot::kBypassed,
                            tw::Pll3AfterBoot::kRunning}) {
      Reading r;
      r.readings.lut_after_reset = lut;
      r.readings.pll3_after_boot = pll3;
      const char* lut_name = lut == tw::LutAfterReset::kZero     ? "LutZero"
                             : lut == tw::LutAfterReset::kSeeded ? "LutSeeded"
                                                                 : "LutKeptOverWarmReset";
      const char* pll3_name = pll3 == tw::Pll3AfterBoot::kPoweredDown ? "Pll3PoweredDown"
                              : pll3 == tw::Pll3AfterBoot::kBypassed  ? "Pll3Bypassed"
                                                                      : "Pll3Running";
      r.name = std::string(lut_name) + "_" + pll3_name;
      out.push_back(r);
    }
  }
  return out;
}

class E2eReadings : public ::testing::TestWithParam<Reading> {};

TEST_P(E2eReadings, UpdateRunReturnAndUpdateAgain) {
  E2E_REQUIRE_FIRMWARE(2);
  Rig rig(500'000);
  NodeSpec spec = node(kNode);
  spec.readings = GetParam().readings;
  tw::Board& board = rig.add_board(spec);
  ASSERT_TRUE(rig.wait_boot_up(kNode, 0, 500'000).has_value())
      << board.console() << faults_of(board);
  EXPECT_EQ(board.console().find("clock check failed"), std::string::npos) << board.console();

  Micros t = rig.now();
  const auto first = rig.update(kNode, example_app(), 0x010000);
  ASSERT_TRUE(rig.application_runs(kNode, t)) << board.console();

  t = rig.now();
  rig.master().download_u8(kNode, co::od::kProgramControl, 1,
                           static_cast<std::uint8_t>(co::ProgramCommand::kStop));
  ASSERT_TRUE(rig.wait_boot_up(kNode, t, 500'000).has_value()) << board.console();
  EXPECT_EQ(rig.master().upload_u8(kNode, co::od::kRtcanbootInfo, 1), co::kRunningBootloader);
  EXPECT_EQ(rig.master().upload_u32(kNode, co::od::kSoftwareId, 1), first.software_id);

  t = rig.now();
  const auto second = rig.update(kNode, example_app(), 0x010001, /*force=*/true);
  ASSERT_TRUE(rig.application_runs(kNode, t)) << board.console();
  EXPECT_EQ(rig.master().upload_u32(kNode, co::od::kSoftwareId, 1), second.software_id);
  EXPECT_EQ(board.fault_count(), 0u) << faults_of(board);
}

INSTANTIATE_TEST_SUITE_P(EveryReading, E2eReadings, ::testing::ValuesIn(every_reading()),
                         [](const ::testing::TestParamInfo<Reading>& param_info) {
                           return param_info.param.name;
                         });

}  // namespace
}  // namespace rtcanboot::e2e
