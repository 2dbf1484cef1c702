// End to end: trial boot (docs/trial-boot.md). The real bootloader and example application builds
// in the twin: a good image confirms and is started without a watchdog afterwards; images that
// hang, never confirm, fault (with a handler that resets, one that loops) or lock up end every
// attempt in a chip reset (their own, a lockup reset or the bootloader's RTWDOG) and, after three
// attempts, are kept out, with the reason on the bus; a good image then installs over them.
#include <algorithm>
#include <random>
#include <string>
#include <vector>

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
// back in the bootloader with the reason, and a good image then installs and confirms. Each of the
// three attempts must end in a chip reset of the kind `reset_kind` names (the twin's reset report,
// and the SRSR bit the bootloader's banner prints) within `max_attempt` of the bootloader's jump to
// the application; the figures are the recovery times in virtual time (docs/trial-boot.md).
struct BadImage {
  std::string variant;
  std::string reset_kind;      // start of the twin's "warm reset: ..." report
  std::uint32_t srsr_bit = 0;  // the SRC_SRSR bit that reset sets
  Micros max_attempt = 0;      // the jump to the application to the reset that ends it
  tw::LockupReading lockup = tw::LockupReading::kResets;
};

// The SRSR values the bootloader's banners printed, in order.
std::vector<std::uint32_t> banner_srsr(const std::string& console) {
  std::vector<std::uint32_t> values;
  for (std::size_t at = console.find(", SRSR 0x"); at != std::string::npos;
       at = console.find(", SRSR 0x", at + 1)) {
    values.push_back(
        static_cast<std::uint32_t>(std::stoul(console.substr(at + 9, 8), nullptr, 16)));
  }
  return values;
}

// `image`: the image to install instead of the example application's `variant` build.
void expect_kept_out_then_repaired(const BadImage& bad_image,
                                   const host::LoadedInput* image = nullptr) {
  const std::string& variant = bad_image.variant;
  RTCANBOOT_SKIP_WITHOUT_FIRMWARE(
      image == nullptr && load_file(misbehaving_app_path(variant)).empty(),
      "no " << variant << " build");
  Rig rig(500'000);
  NodeSpec spec = node(kNode);
  spec.readings.lockup = bad_image.lockup;
  std::vector<Micros> jumps;  // when the bootloader said it starts the application
  spec.console_sink = [&rig, &jumps](const std::string& line) {
    if (line.find("rtcanboot: starting application") != std::string::npos)
      jumps.push_back(rig.now());
  };
  tw::Board& board = rig.add_board(spec);
  const auto bad = image != nullptr ? *image : host::load_input(misbehaving_app_path(variant), {});
  const Micros started = rig.now();
  Micros start_request = 0;
  host::UpdateEvents events;
  events.step = [&](const std::string& step) {
    if (step.rfind("starting the application", 0) == 0) start_request = rig.now();
  };
  try {
    rig.update(kNode, bad, 0, false, events);
    FAIL() << variant << ": the update reported success\n" << board.console();
  } catch (const host::Error& e) {
    EXPECT_EQ(e.kind(), host::ErrorKind::kNotConfirmed) << e.what();
  }
  const Micros reported = rig.now() - started;
  EXPECT_LT(reported, 20'000'000) << variant;
  EXPECT_EQ(info_u8(rig, 1), co::kRunningBootloader);
  EXPECT_EQ(info_u8(rig, 5), static_cast<std::uint8_t>(co::BootReason::kNotConfirmed));
  EXPECT_EQ(info_u8(rig, 8), 3);
  EXPECT_EQ(rig.master().upload_u8(kNode, co::od::kProgramControl, 1),
            static_cast<std::uint8_t>(co::ProgramState::kStopped));
  EXPECT_EQ(rig.master().upload_u32(kNode, co::od::kFlashStatus, 1),
            co::flash_status_word(false, co::FlashStatus::kNoValidProgram,
                                  co::FlashDetail::kNotConfirmed));

  // The three attempts: each ends in a reset, the last jump to the application before it starts
  // it; the first boot-up after the third is the bootloader's: it stays.
  std::vector<std::pair<Micros, std::string>> resets;
  for (const auto& r : board.reports()) {
    if (r.source == "reset" && r.time / 1000 >= start_request) {
      resets.emplace_back(r.time / 1000, r.message);
    }
  }
  ASSERT_GE(resets.size(), 3U) << board.console();
  std::vector<Micros> app_boot_ups(3, 0);  // the attempts' starts
  for (const Micros jump : jumps) {
    for (std::size_t i = 0; i < 3; ++i) {
      if (jump < resets[i].first && (i == 0 || jump > resets[i - 1].first)) app_boot_ups[i] = jump;
    }
  }
  Micros kept_out = 0;
  for (const auto& f : rig.log()) {
    if (f.at > resets[2].first && f.frame.id == co::kHeartbeatBase + kNode && f.frame.dlc == 1 &&
        f.frame.data[0] == 0x00) {
      kept_out = f.at;
      break;
    }
  }
  Micros longest = 0;
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(resets[i].second.rfind("warm reset: " + bad_image.reset_kind, 0), 0U)
        << variant << " attempt " << i + 1 << ": " << resets[i].second << "\n"
        << faults_of(board);
    ASSERT_NE(app_boot_ups[i], 0) << variant << " attempt " << i + 1 << "\n" << board.console();
    longest = std::max(longest, resets[i].first - app_boot_ups[i]);
  }
  EXPECT_LT(longest, bad_image.max_attempt) << variant;
  const auto srsr = banner_srsr(board.console());
  ASSERT_GE(srsr.size(), 2U) << board.console();
  EXPECT_NE(srsr.back() & bad_image.srsr_bit, 0U)
      << variant << ": SRSR 0x" << std::hex << srsr.back();
  ASSERT_NE(kept_out, 0) << board.console();
  std::printf(
      "[ figures  ] %s%s: each attempt ends %.1f ms after the jump to the application at most (%s, "
      "SRSR bit 0x%X); kept out in the bootloader %.3f s after the first start (3 attempts); "
      "rtcanboot flash reported it after %.3f s\n",
      variant.c_str(), bad_image.lockup == tw::LockupReading::kHalts ? " (lockup=halts)" : "",
      static_cast<double>(longest) / 1e3, bad_image.reset_kind.c_str(), bad_image.srsr_bit,
      static_cast<double>(kept_out - start_request) / 1e6, static_cast<double>(reported) / 1e6);

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

constexpr Micros kWatchdogBound = 4'100'000;  // the 4 s trial watchdog (7.8125 ms ticks)
constexpr std::uint32_t kSrsrLockupSysResetReq = 1U << 1;
constexpr std::uint32_t kSrsrWdog3 = 1U << 7;

TEST(E2eTrialBoot, ImageThatHangsIsKeptOutAfterThreeWatchdogResets) {
  E2E_REQUIRE_FIRMWARE(2);
  expect_kept_out_then_repaired({"hang", "RTWDOG expired", kSrsrWdog3, kWatchdogBound});
}

TEST(E2eTrialBoot, ImageThatNeverConfirmsIsKeptOutAfterThreeWatchdogResets) {
  E2E_REQUIRE_FIRMWARE(2);
  expect_kept_out_then_repaired({"noconfirm", "RTWDOG expired", kSrsrWdog3, kWatchdogBound});
}

// A fault with the kit's fault handler: the core takes HardFault, the handler resets the chip
// (AIRCR.SYSRESETREQ) at once.
TEST(E2eTrialBoot, ImageThatFaultsResetsItselfAndIsKeptOutAfterThreeAttempts) {
  E2E_REQUIRE_FIRMWARE(2);
  expect_kept_out_then_repaired({"fault", "AIRCR.SYSRESETREQ", kSrsrLockupSysResetReq, 100'000});
}

// A HardFault handler that loops forever: only the trial watchdog ends it.
TEST(E2eTrialBoot, ImageWhoseFaultHandlerLoopsIsKeptOutAfterThreeWatchdogResets) {
  E2E_REQUIRE_FIRMWARE(2);
  expect_kept_out_then_repaired({"faultloop", "RTWDOG expired", kSrsrWdog3, kWatchdogBound});
}

// A fault inside the HardFault handler, and a HardFault vector without the Thumb bit: the core
// locks up, and the RT1064's SRC resets the chip (SRSR LOCKUP_SYSRESETREQ; docs/twin.md).
TEST(E2eTrialBoot, ImageThatLocksUpIsKeptOutAfterThreeLockupResets) {
  E2E_REQUIRE_FIRMWARE(2);
  expect_kept_out_then_repaired({"lockup", "CPU lockup", kSrsrLockupSysResetReq, 100'000});
}

TEST(E2eTrialBoot, ImageWithAnInvalidFaultVectorIsKeptOutAfterThreeLockupResets) {
  E2E_REQUIRE_FIRMWARE(2);
  expect_kept_out_then_repaired({"badvector", "CPU lockup", kSrsrLockupSysResetReq, 100'000});
}

// Under the other reading (a lockup that does not reset the chip) the trial watchdog still ends
// every attempt.
TEST(E2eTrialBoot, ImageThatLocksUpIsKeptOutByTheWatchdogWhenLockupDoesNotReset) {
  E2E_REQUIRE_FIRMWARE(2);
  expect_kept_out_then_repaired(
      {"lockup", "RTWDOG expired", kSrsrWdog3, kWatchdogBound, tw::LockupReading::kHalts});
}

// The case issue 15 starts from: a sane vector table (the example application's) in front of a
// payload of garbage, with a valid CRC-32 and SHA-256 (a wrong linker script, a build for another
// board, a corrupted build). The bootloader accepts and commits it; its reset handler runs into
// the garbage, whose first undefined instruction faults into a HardFault handler that is garbage
// too: a lockup, which resets the chip.
TEST(E2eTrialBoot, GarbageBehindASaneVectorTableIsKeptOutAfterThreeAttempts) {
  E2E_REQUIRE_FIRMWARE(2);
  host::LoadedInput garbage = example_app();
  ASSERT_TRUE(garbage.image.has_value());
  std::vector<std::uint8_t>& bytes = garbage.image->bytes;
  constexpr std::size_t kVectorTableBytes = 174 * 4;  // memory_map.hpp: 174 vectors
  ASSERT_GT(bytes.size(), kVectorTableBytes);
  std::mt19937 random(15);
  for (std::size_t i = kVectorTableBytes; i < bytes.size(); ++i) {
    bytes[i] = static_cast<std::uint8_t>(random());
  }
  expect_kept_out_then_repaired({"garbage", "CPU lockup", kSrsrLockupSysResetReq, 100'000},
                                &garbage);
}

}  // namespace
}  // namespace rtcanboot::e2e
