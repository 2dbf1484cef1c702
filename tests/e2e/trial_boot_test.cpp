// End to end: trial boot (docs/trial-boot.md). The real bootloader and example application builds
// in the twin: a good image confirms and is started without a watchdog afterwards; images that hang
// or never confirm are reset by the bootloader's RTWDOG and, after three attempts, kept out, with
// the reason on the bus; a good image then installs over them.
#include "e2e_rig.hpp"

namespace rtcanboot::e2e {
namespace {

constexpr std::uint8_t kNode = 9;

std::string misbehaving_app_path(const std::string& name) {
  return firmware_dir() + "/firmware/example-app/example-app-" + name + ".elf";
}

std::uint8_t info_u8(Rig& rig, std::uint8_t sub) {
  return rig.master().upload_u8(kNode, co::od::kRtcanbootInfo, sub);
}

TEST(E2eTrialBoot, GoodImageConfirmsAndLaterStartsNeedNoWatchdog) {
  E2E_REQUIRE_FIRMWARE(2);
  Rig rig(500'000);
  tw::Board& board = rig.add_board(node(kNode));
  const Micros t = rig.now();
  const host::UpdateResult result = rig.update(kNode, example_app());
  EXPECT_TRUE(result.confirmed) << board.console();
  ASSERT_TRUE(rig.application_runs(kNode, t));
  EXPECT_EQ(info_u8(rig, 7), static_cast<std::uint8_t>(co::TrialState::kConfirmed));
  EXPECT_NE(board.console().find("trial start 1 of 3"), std::string::npos) << board.console();
  EXPECT_NE(board.console().find("example application: confirmed"), std::string::npos);
  // Power cycle: a confirmed image starts straight away, with no attempt and no watchdog.
  board.power_off("test: power cycle");
  board.power_on();
  const Micros t2 = rig.now();
  ASSERT_TRUE(rig.application_runs(kNode, t2));
  EXPECT_EQ(info_u8(rig, 7), static_cast<std::uint8_t>(co::TrialState::kConfirmed));
  rig.listen_for(10'000'000);  // longer than the 4 s trial watchdog: nothing resets it
  EXPECT_EQ(info_u8(rig, 1), co::kRunningApplication);
  EXPECT_EQ(faults_of(board), "");
}

// An image that cannot confirm: the flash command reports it with its own exit code, the node is
// back in the bootloader with the reason, and a good image then installs and confirms.
void expect_kept_out_then_repaired(const std::string& variant, Micros max_recovery) {
  if (load_file(misbehaving_app_path(variant)).empty())
    GTEST_SKIP() << "no " << variant << " build";
  Rig rig(500'000);
  tw::Board& board = rig.add_board(node(kNode));
  const auto bad = host::load_input(misbehaving_app_path(variant), {});
  const Micros started = rig.now();
  try {
    rig.update(kNode, bad);
    FAIL() << variant << ": the update reported success\n" << board.console();
  } catch (const host::Error& e) {
    EXPECT_EQ(e.kind(), host::ErrorKind::kNotConfirmed) << e.what();
  }
  const Micros recovery = rig.now() - started;
  EXPECT_LT(recovery, max_recovery) << variant;
  std::printf("%s: kept out after %.2f s of virtual time (3 attempts)\n", variant.c_str(),
              static_cast<double>(recovery) / 1e6);
  EXPECT_EQ(info_u8(rig, 1), co::kRunningBootloader);
  EXPECT_EQ(info_u8(rig, 5), static_cast<std::uint8_t>(co::BootReason::kNotConfirmed));
  EXPECT_EQ(info_u8(rig, 8), 3);
  EXPECT_EQ(rig.master().upload_u8(kNode, co::od::kProgramControl, 1),
            static_cast<std::uint8_t>(co::ProgramState::kStopped));
  EXPECT_EQ(rig.master().upload_u32(kNode, co::od::kFlashStatus, 1),
            co::flash_status_word(false, co::FlashStatus::kNoValidProgram,
                                  co::FlashDetail::kNotConfirmed));
  // It stays there across a power cycle.
  board.power_off("test: power cycle");
  board.power_on();
  const Micros t = rig.now();
  ASSERT_TRUE(rig.wait_boot_up(kNode, t, 1'000'000).has_value());
  rig.listen_for(6'000'000);
  EXPECT_EQ(info_u8(rig, 1), co::kRunningBootloader);
  // A good image repairs it.
  const Micros t2 = rig.now();
  EXPECT_TRUE(rig.update(kNode, example_app()).confirmed);
  EXPECT_TRUE(rig.application_runs(kNode, t2));
}

TEST(E2eTrialBoot, ImageThatHangsIsKeptOutAfterThreeWatchdogResets) {
  E2E_REQUIRE_FIRMWARE(2);
  expect_kept_out_then_repaired("hang", 20'000'000);
}

TEST(E2eTrialBoot, ImageThatNeverConfirmsIsKeptOutAfterThreeWatchdogResets) {
  E2E_REQUIRE_FIRMWARE(2);
  expect_kept_out_then_repaired("noconfirm", 20'000'000);
}

// The twin halts the core on a CPU fault (the hostile reading: lockup with no reset of its own,
// docs/twin.md) while RTWDOG keeps counting, so only the trial watchdog brings the node back.
TEST(E2eTrialBoot, ImageThatFaultsIsKeptOutAfterThreeWatchdogResets) {
  E2E_REQUIRE_FIRMWARE(2);
  expect_kept_out_then_repaired("fault", 20'000'000);
}

}  // namespace
}  // namespace rtcanboot::e2e
