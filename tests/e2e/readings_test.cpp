// End to end under the readings of the unconfirmed chip facts the twin models (docs/twin.md
// "Readings"): the whole user story (update, the application runs, back to the bootloader on
// 0x1F51:1 = 0, update again) must work under each, with no twin fault; the bootloader's banner
// names the entry-request carriers that survived the reset.
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

const char* name_of(tw::LutAfterReset r) {
  switch (r) {
    case tw::LutAfterReset::kZero:
      return "LutZero";
    case tw::LutAfterReset::kSeeded:
      return "LutSeeded";
    case tw::LutAfterReset::kKeptOverWarmReset:
      return "LutKeptOverWarmReset";
  }
  return "?";
}
const char* name_of(tw::Pll3AfterBoot r) {
  switch (r) {
    case tw::Pll3AfterBoot::kPoweredDown:
      return "Pll3PoweredDown";
    case tw::Pll3AfterBoot::kBypassed:
      return "Pll3Bypassed";
    case tw::Pll3AfterBoot::kRunning:
      return "Pll3Running";
  }
  return "?";
}
const char* name_of(tw::SrcGprOverReset r) {
  switch (r) {
    case tw::SrcGprOverReset::kClearedByEveryReset:
      return "GprClearedByEveryReset";
    case tw::SrcGprOverReset::kClearedBySysResetReq:
      return "GprClearedBySysResetReq";
    case tw::SrcGprOverReset::kKeptOverWarmReset:
      return "GprKept";
  }
  return "?";
}
const char* name_of(tw::SnvsLpgprOverReset r) {
  return r == tw::SnvsLpgprOverReset::kKeptOverWarmReset ? "SnvsKept" : "SnvsCleared";
}
const char* name_of(tw::IvtEntrySp r) {
  return r == tw::IvtEntrySp::kRomStackKept ? "SpFromRom" : "SpFromVectorTable";
}
const char* name_of(tw::RomWatchdogs r) {
  switch (r) {
    case tw::RomWatchdogs::kWdog1AndRtwdogRunning:
      return "Wdog1AndRtwdogRunning";
    case tw::RomWatchdogs::kRtwdogRunning:
      return "RtwdogRunning";
    case tw::RomWatchdogs::kNone:
      return "NoWatchdog";
  }
  return "?";
}

const char* name_of(tw::SerialClkCode r) {
  return r == tw::SerialClkCode::kSdkEnum ? "ClkSdkEnum" : "ClkRt106xTable";
}

Reading reading(const tw::Readings& readings) {
  Reading r;
  r.readings = readings;
  r.name = std::string(name_of(readings.lut_after_reset)) + "_" +
           name_of(readings.pll3_after_boot) + "_" + name_of(readings.src_gpr_over_reset) + "_" +
           name_of(readings.snvs_lpgpr_over_reset) + "_" + name_of(readings.rom_watchdogs) + "_" +
           name_of(readings.ivt_entry_sp) + "_" + name_of(readings.serial_clk_code);
  return r;
}

// The flash and clock readings crossed with each other, and the two reset-retention readings
// crossed with each other (each group acts on a different part of the firmware); the rest at
// the twin's defaults, its most hostile readings.
std::vector<Reading> every_reading() {
  std::vector<Reading> out;
  for (const auto lut : {tw::LutAfterReset::kZero, tw::LutAfterReset::kSeeded,
                         tw::LutAfterReset::kKeptOverWarmReset}) {
    for (const auto pll3 : {tw::Pll3AfterBoot::kPoweredDown, tw::Pll3AfterBoot::kBypassed,
                            tw::Pll3AfterBoot::kRunning}) {
      tw::Readings r;
      r.lut_after_reset = lut;
      r.pll3_after_boot = pll3;
      out.push_back(reading(r));
    }
  }
  for (const auto gpr :
       {tw::SrcGprOverReset::kClearedBySysResetReq, tw::SrcGprOverReset::kKeptOverWarmReset}) {
    for (const auto snvs : {tw::SnvsLpgprOverReset::kClearedByWarmReset,
                            tw::SnvsLpgprOverReset::kKeptOverWarmReset}) {
      tw::Readings r;
      r.src_gpr_over_reset = gpr;
      r.snvs_lpgpr_over_reset = snvs;
      out.push_back(reading(r));
    }
  }
  for (const auto watchdogs : {tw::RomWatchdogs::kRtwdogRunning, tw::RomWatchdogs::kNone}) {
    tw::Readings r;
    r.rom_watchdogs = watchdogs;
    out.push_back(reading(r));
  }
  {
    tw::Readings r;
    r.ivt_entry_sp = tw::IvtEntrySp::kLoadedFromVectorTable;
    out.push_back(reading(r));
  }
  {
    tw::Readings r;
    r.serial_clk_code = tw::SerialClkCode::kRt106xTable;
    out.push_back(reading(r));
  }
  out.push_back(reading(tw::fact_sheet_readings()));
  tw::Readings r;
  r.snvs_lpgpr_over_reset = tw::SnvsLpgprOverReset::kKeptOverWarmReset;
  out.push_back(reading(r));
  return out;
}

// What the bootloader's banner must say kept the entry request over the SYSRESETREQ.
std::string expected_carriers(const tw::Readings& r) {
  std::string out = " (kept by";
  if (r.src_gpr_over_reset == tw::SrcGprOverReset::kKeptOverWarmReset) out += " SRC_GPR5";
  if (r.snvs_lpgpr_over_reset == tw::SnvsLpgprOverReset::kKeptOverWarmReset) out += " SNVS_LPGPR0";
  return out + " DTCM)";
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
  EXPECT_EQ(rig.master().upload_u8(kNode, co::od::kRtcanbootInfo, 5),
            static_cast<std::uint8_t>(co::BootReason::kEntryRequest));
  EXPECT_NE(board.console().find("entry requested" + expected_carriers(GetParam().readings)),
            std::string::npos)
      << board.console();
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
