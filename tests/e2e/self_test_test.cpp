// The bring-up self-test (docs/bring-up.md) on the real bootloader in the twin: a master writes
// 0x5F01:1 = 1, the node resets into the self-test and reports twelve checks in 0x5F01. Under
// the readings the fact sheet expects every check passes and the installed application is left
// as it was; under each other reading of an unconfirmed chip fact (docs/twin.md "Readings")
// exactly the checks that confirm that fact fail.
#include <algorithm>
#include <cctype>
#include <string>
#include <vector>

#include "e2e_rig.hpp"

namespace rtcanboot::e2e {
namespace {

constexpr std::uint8_t kNode = 12;

struct SelfTestRun {
  co::SelfTestState state = co::SelfTestState::kNotRun;
  std::uint32_t failed = 0;
  std::string report;
};

// 0x5F01:1 = 1, then the bootloader's boot-up, then the three sub-indices.
SelfTestRun run_self_test(Rig& rig, tw::Board& board) {
  SelfTestRun run;
  const Micros t = rig.now();
  rig.master().download_u8(kNode, co::od::kSelfTest, 1, co::kSelfTestRun);
  EXPECT_TRUE(rig.wait_boot_up(kNode, t, 2'000'000).has_value()) << board.console();
  run.state = static_cast<co::SelfTestState>(rig.master().upload_u8(kNode, co::od::kSelfTest, 1));
  run.report = rig.master().upload_string(kNode, co::od::kSelfTest, 2);
  run.failed = rig.master().upload_u32(kNode, co::od::kSelfTest, 3);
  return run;
}

std::vector<std::string> lines_of(const std::string& report) {
  std::vector<std::string> lines;
  std::size_t at = 0;
  while (at < report.size()) {
    const std::size_t end = report.find('\n', at);
    if (end == std::string::npos) break;
    lines.push_back(report.substr(at, end - at));
    at = end + 1;
  }
  return lines;
}

std::uint32_t bits(std::initializer_list<int> checks) {
  std::uint32_t mask = 0;
  for (const int check : checks) mask |= 1U << (check - 1);
  return mask;
}

TEST(E2eSelfTest, PassesUnderTheFactSheetReadingsAndKeepsTheApplication) {
  E2E_REQUIRE_FIRMWARE(2);
  Rig rig(500'000);
  NodeSpec spec = node(kNode);
  spec.readings = tw::fact_sheet_readings();
  tw::Board& board = rig.add_board(spec);
  ASSERT_TRUE(rig.wait_boot_up(kNode, 0, 500'000).has_value()) << board.console();
  EXPECT_EQ(rig.master().upload_u8(kNode, co::od::kSelfTest, 1),
            static_cast<std::uint8_t>(co::SelfTestState::kNotRun));

  Micros t = rig.now();
  const auto installed = rig.update(kNode, example_app(), 0x010000);
  ASSERT_TRUE(rig.application_runs(kNode, t)) << board.console();
  // The application has no self-test object: the abort tells a master to stop it first.
  try {
    rig.master().download_u8(kNode, co::od::kSelfTest, 1, co::kSelfTestRun);
    ADD_FAILURE() << "the application accepted 0x5F01:1";
  } catch (const host::SdoError& e) {
    EXPECT_EQ(e.abort_code(), static_cast<std::uint32_t>(co::Abort::kNoObject));
  }
  t = rig.now();
  rig.master().download_u8(kNode, co::od::kProgramControl, 1,
                           static_cast<std::uint8_t>(co::ProgramCommand::kStop));
  ASSERT_TRUE(rig.wait_boot_up(kNode, t, 500'000).has_value()) << board.console();

  // Only the value 1 starts it.
  try {
    rig.master().download_u8(kNode, co::od::kSelfTest, 1, 2);
    ADD_FAILURE() << "0x5F01:1 = 2 was accepted";
  } catch (const host::SdoError& e) {
    EXPECT_EQ(e.abort_code(), static_cast<std::uint32_t>(co::Abort::kValueRange));
  }

  const SelfTestRun run = run_self_test(rig, board);
  EXPECT_EQ(run.state, co::SelfTestState::kPassed) << run.report;
  EXPECT_EQ(run.failed, 0u) << run.report;
  const auto lines = lines_of(run.report);
  ASSERT_EQ(lines.size(), 12u) << run.report;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    EXPECT_EQ(lines[i].rfind(std::to_string(i + 1) + " pass  ", 0), 0u) << lines[i];
  }
  EXPECT_NE(run.report.find("flash JEDEC ID: EF 40 16"), std::string::npos) << run.report;
  EXPECT_NE(run.report.find("FlexSPI2 serial clock: 120.0 MHz"), std::string::npos) << run.report;
  EXPECT_NE(run.report.find("FlexCAN bit timing: 500000 bit/s"), std::string::npos) << run.report;
  EXPECT_NE(board.console().find("rtcanboot: self-test passed"), std::string::npos)
      << board.console();
  // It stays in the bootloader (an entry request), and the scratch sector is erased again.
  EXPECT_EQ(rig.master().upload_u8(kNode, co::od::kRtcanbootInfo, 5),
            static_cast<std::uint8_t>(co::BootReason::kEntryRequest));
  const auto scratch =
      board.flash().contents().subspan(memory_map::kSelfTestScratchOffset, memory_map::kSectorSize);
  EXPECT_TRUE(std::all_of(scratch.begin(), scratch.end(), [](auto b) { return b == 0xFF; }));

  // The installed application is untouched and starts.
  EXPECT_EQ(rig.master().upload_u32(kNode, co::od::kSoftwareId, 1), installed.software_id);
  t = rig.now();
  rig.master().download_u8(kNode, co::od::kProgramControl, 1,
                           static_cast<std::uint8_t>(co::ProgramCommand::kStart));
  ASSERT_TRUE(rig.application_runs(kNode, t)) << board.console();
  EXPECT_EQ(board.fault_count(), 0u) << faults_of(board);
}

struct Deviation {
  std::string name;  // the --reading spec of the twin CLI
  std::uint32_t failing;
};

void PrintTo(const Deviation& deviation, std::ostream* os) {
  *os << deviation.name;
}

// One reading away from the fact sheet at a time, and every default (hostile) reading at once.
const Deviation kDeviations[] = {
    {"lut_after_reset=seeded", 0},
    {"lut_after_reset=kept_over_warm_reset", 0},
    {"pll3_after_boot=powered_down", bits({5, 6})},  // FlexSPI2 runs from PLL3 PFD0
    {"pll3_after_boot=bypassed", bits({5, 6})},
    {"src_gpr_over_reset=cleared_by_every_reset", bits({10})},
    {"src_gpr_over_reset=cleared_by_sysresetreq", bits({10})},
    {"snvs_lpgpr_over_reset=cleared_by_warm_reset", bits({11})},
    {"rom_watchdogs=wdog1_and_rtwdog_running", bits({12})},
    {"rom_watchdogs=rtwdog_running", bits({12})},
    {"ivt_entry_sp=rom_stack_kept", 0},
    {"serial_clk_code=sdk_enum", bits({6})},
    {"hostile", bits({5, 6, 10, 11, 12})},
};

class E2eSelfTestReadings : public ::testing::TestWithParam<Deviation> {};

TEST_P(E2eSelfTestReadings, NamesTheChecksThatConfirmTheFact) {
  E2E_REQUIRE_FIRMWARE(2);
  Rig rig(500'000);
  NodeSpec spec = node(kNode);
  spec.readings = tw::fact_sheet_readings();
  std::string error;
  ASSERT_TRUE(tw::parse_reading(GetParam().name, spec.readings, &error)) << error;
  tw::Board& board = rig.add_board(spec);
  ASSERT_TRUE(rig.wait_boot_up(kNode, 0, 500'000).has_value()) << board.console();

  const SelfTestRun run = run_self_test(rig, board);
  EXPECT_EQ(run.failed, GetParam().failing) << run.report;
  EXPECT_EQ(run.state,
            GetParam().failing == 0 ? co::SelfTestState::kPassed : co::SelfTestState::kFailed);
  for (const std::string& line : lines_of(run.report)) {
    const int check = std::stoi(line);
    const bool fails = (GetParam().failing >> (check - 1)) & 1U;
    EXPECT_NE(line.find(fails ? " FAIL  " : " pass  "), std::string::npos) << line;
  }
  EXPECT_EQ(board.fault_count(), 0u) << faults_of(board);
}

INSTANTIATE_TEST_SUITE_P(FromTheFactSheet, E2eSelfTestReadings, ::testing::ValuesIn(kDeviations),
                         [](const ::testing::TestParamInfo<Deviation>& param_info) {
                           std::string name;
                           for (const char c : param_info.param.name) {
                             name += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
                           }
                           return name;
                         });

}  // namespace
}  // namespace rtcanboot::e2e
