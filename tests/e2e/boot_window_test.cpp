// End to end: the listen window, the default boot window at power-on (docs/trial-boot.md), with
// the real bootloader and example application builds in the twin. Without a request the
// application starts after the window and the node sends nothing before it; a confirmed
// application that faults a second after every start (the "latefault" build) is caught through
// the window by the host tool's catch (what `rtcanboot stop --catch` runs) after a power cycle,
// and then takes a good image.
#include "e2e_rig.hpp"
#include "rtcanboot/host/catch_node.hpp"

namespace rtcanboot::e2e {
namespace {

constexpr std::uint8_t kNode = 11;
constexpr Micros kWindow = Micros{kDefaultListenWindowMs} * 1000;

std::string late_fault_app_path() {
  return firmware_dir() + "/firmware/example-app/example-app-latefault.elf";
}

// Frames of `node` (any COB-ID with the node's low bits: SDO answers, boot-up, heartbeat).
std::vector<LoggedFrame> frames_of(const Rig& rig, std::uint8_t node, Micros since) {
  std::vector<LoggedFrame> out;
  for (const auto& f : rig.log()) {
    if (f.at >= since &&
        (f.frame.id == co::kHeartbeatBase + node || f.frame.id == co::kSdoTxBase + node)) {
      out.push_back(f);
    }
  }
  return out;
}

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// Cold boot; returns the time of power-on.
Micros power_cycle(Rig& rig, tw::Board& board) {
  board.power_off("test: power cycle");
  rig.listen_for(10'000);
  const Micros t = rig.now();
  board.power_on();
  return t;
}

// Power-on to the end of the application's boot-up frame.
Micros boot_to_application(Rig& rig, tw::Board& board) {
  const Micros t = power_cycle(rig, board);
  EXPECT_TRUE(rig.application_runs(kNode, t)) << board.console();
  const auto frames = frames_of(rig, kNode, t);
  EXPECT_FALSE(frames.empty());
  if (frames.empty()) return 0;
  // The first frame of the node after power-on is the application's boot-up: the bootloader
  // sent nothing during its window.
  EXPECT_EQ(frames.front().frame.id, co::kHeartbeatBase + kNode);
  EXPECT_EQ(frames.front().frame.data[0], 0x00);
  return frames.front().at - t;
}

TEST(E2eListenWindow, WithoutARequestTheApplicationStartsAfterTheWindowSilently) {
  E2E_REQUIRE_FIRMWARE(2);
  Rig rig(500'000);
  NodeSpec with_window = node(kNode);
  NodeSpec without = node(kNode);
  without.listen_window_ms = 0;
  tw::Board& board = rig.add_board(with_window);
  ASSERT_TRUE(rig.update(kNode, example_app()).confirmed) << board.console();
  const Micros with_ms = boot_to_application(rig, board);
  EXPECT_EQ(count(board.console(), "rtcanboot: starting application"), 2u);  // after the update
  // The same board with the window provisioned off: the difference is the window.
  rig.write_provisioning(board, without);
  const Micros without_ms = boot_to_application(rig, board);
  std::printf(
      "power-on to the application's boot-up: %.2f ms with the %u ms listen window, "
      "%.2f ms without\n",
      static_cast<double>(with_ms) / 1000, kDefaultListenWindowMs,
      static_cast<double>(without_ms) / 1000);
  // The window runs from the bootloader's start; the console output the bootloader drains
  // before its jump overlaps it, so the cost is the window less up to a millisecond.
  EXPECT_GE(with_ms, kWindow);
  EXPECT_GE(with_ms + 1'000, without_ms + kWindow);
  EXPECT_LT(with_ms, without_ms + kWindow + 1'000);
  EXPECT_EQ(board.fault_count(), 0u) << faults_of(board);
}

TEST(E2eListenWindow, ConfirmedApplicationThatFaultsLaterIsCaughtAfterAPowerCycle) {
  E2E_REQUIRE_FIRMWARE(2);
  RTCANBOOT_SKIP_WITHOUT_FIRMWARE(load_file(late_fault_app_path()).empty(), "no latefault build");
  Rig rig(500'000);
  tw::Board& board = rig.add_board(node(kNode));
  // It confirms (the update succeeds), then faults a second after its start; its HardFault
  // handler loops and no watchdog runs for a confirmed image, so the node stays silent.
  const auto bad = host::load_input(late_fault_app_path(), {});
  ASSERT_TRUE(rig.update(kNode, bad).confirmed) << board.console();
  rig.listen_for(2'000'000);
  ASSERT_TRUE(board.has_fault_containing("")) << board.console();
  EXPECT_NE(board.console().find("executing an undefined instruction"), std::string::npos);
  Micros t = rig.now();
  rig.listen_for(2'000'000);
  EXPECT_TRUE(frames_of(rig, kNode, t).empty()) << "the faulted node still talks";
  // Every power cycle starts it again (it is confirmed), and it faults again.
  t = power_cycle(rig, board);
  ASSERT_TRUE(rig.application_runs(kNode, t)) << board.console();

  // The user power-cycles the node while the host repeats the request: off now, on 700 ms
  // later.
  board.power_off("test: power off");
  tw::Board* b = &board;
  rig.sim().clock().schedule(rig.sim().now() + 700'000'000, [b] { b->power_on(); });
  const std::size_t starts = count(board.console(), "rtcanboot: starting application");
  host::CatchOptions options;
  options.node = kNode;
  options.timeout = 10'000'000;
  const host::CatchResult caught = host::catch_node(rig.master(), options);
  std::printf("caught after %.3f s with %llu requests\n", static_cast<double>(caught.after) / 1e6,
              static_cast<unsigned long long>(caught.requests));
  EXPECT_EQ(caught.reason, co::BootReason::kHeldByMaster);
  EXPECT_GE(caught.after, 700'000u);
  EXPECT_LT(caught.after, 700'000u + kWindow);
  EXPECT_EQ(count(board.console(), "rtcanboot: starting application"), starts);
  // It stays in the bootloader, well past the window.
  rig.listen_for(3'000'000);
  EXPECT_EQ(rig.master().upload_u8(kNode, co::od::kRtcanbootInfo, 1), co::kRunningBootloader);
  EXPECT_EQ(rig.master().upload_u8(kNode, co::od::kRtcanbootInfo, 5),
            static_cast<std::uint8_t>(co::BootReason::kHeldByMaster));
  EXPECT_EQ(rig.master().upload_u8(kNode, co::od::kProgramControl, 1),
            static_cast<std::uint8_t>(co::ProgramState::kStopped));
  // A good image installs over it, confirms, and starts after every power cycle.
  t = rig.now();
  EXPECT_TRUE(rig.update(kNode, example_app()).confirmed) << board.console();
  EXPECT_TRUE(rig.application_runs(kNode, t));
  t = power_cycle(rig, board);
  EXPECT_TRUE(rig.application_runs(kNode, t));
  rig.listen_for(2'000'000);
  EXPECT_EQ(rig.master().upload_u8(kNode, co::od::kRtcanbootInfo, 1), co::kRunningApplication);
}

// Without a catch the faulty image keeps being started: the window only helps a master that asks.
TEST(E2eListenWindow, CatchGivesUpWithNoNodeWhenNothingAnswers) {
  E2E_REQUIRE_FIRMWARE(2);
  Rig rig(500'000);
  host::CatchOptions options;
  options.node = 42;
  options.timeout = 500'000;
  try {
    host::catch_node(rig.master(), options);
    FAIL() << "caught a node that does not exist";
  } catch (const host::Error& e) {
    EXPECT_EQ(e.kind(), host::ErrorKind::kNoNode) << e.what();
  }
}

}  // namespace
}  // namespace rtcanboot::e2e
