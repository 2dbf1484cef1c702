// End to end: updates of the example application through the real bootloader on twin boards,
// driven by the host tool's update flow (run_update) in the same process, in virtual time.
#include "e2e_rig.hpp"

namespace rtcanboot::e2e {
namespace {

// Reads what `rtcanboot info` shows: the application runs and the bootloader is the one expected.
void expect_installed(host::Master& master, std::uint8_t node, std::uint32_t software_id,
                      std::uint32_t image_version) {
  const host::NodeInfo info = host::read_node_info(master, node);
  ASSERT_TRUE(info.running_program.has_value());
  EXPECT_EQ(*info.running_program, co::kRunningApplication);
  ASSERT_TRUE(info.bootloader_version.has_value());
  EXPECT_EQ(*info.bootloader_version, 0x000100u);  // 0.1.0, handed over by the bootloader
  ASSERT_TRUE(info.program_state.has_value());
  EXPECT_EQ(*info.program_state, static_cast<std::uint8_t>(co::ProgramState::kStarted));
  // Handed over by the bootloader (SRC_GPR8/GPR4): what it installed.
  ASSERT_TRUE(info.software_id.has_value());
  EXPECT_EQ(*info.software_id, software_id);
  ASSERT_TRUE(info.image_version.has_value());
  EXPECT_EQ(*info.image_version, image_version);
}

std::uint32_t payload_crc(const host::LoadedInput& input) {
  host::UpdateOptions opt;
  const auto container = host::container_for_node(input, opt, 0, 0x1064);
  host::Container parsed = host::parse_container(container, "example-app");
  return parsed.header.payload_crc32;
}

TEST(E2eUpdate, EmptyBoardThenOverTheApplicationThenAgain) {
  E2E_REQUIRE_FIRMWARE(2);
  Rig rig(500'000);
  tw::Board& board = rig.add_board(node(5));
  const auto bootloader_before = bootloader_region(board);
  const host::LoadedInput app = example_app();

  // The bootloader of an empty board comes up and says why it waits.
  ASSERT_TRUE(rig.wait_boot_up(5, 0, 500'000).has_value()) << board.console();
  EXPECT_EQ(rig.master().upload_u8(5, co::od::kRtcanbootInfo, 1), co::kRunningBootloader);
  EXPECT_EQ(rig.master().upload_u8(5, co::od::kRtcanbootInfo, 5),
            static_cast<std::uint8_t>(co::BootReason::kNoValidApplication));
  EXPECT_EQ(rig.master().upload_u8(5, co::od::kProgramControl, 1),
            static_cast<std::uint8_t>(co::ProgramState::kNoProgram));
  EXPECT_EQ(rig.master().upload_u32(5, co::od::kSoftwareId, 1), 0u);

  // 1: the empty board.
  Micros t = rig.now();
  host::UpdateResult r = rig.update(5, app, 1);
  EXPECT_FALSE(r.skipped);
  EXPECT_TRUE(r.used_block);
  EXPECT_TRUE(r.started);
  EXPECT_EQ(r.software_id, payload_crc(app));
  ASSERT_TRUE(r.app_state.has_value());
  EXPECT_TRUE(rig.application_runs(5, t));
  expect_installed(rig.master(), 5, r.software_id, 1);

  // 2: over the running application (it returns to the bootloader on 0x1F51:1 = 0).
  t = rig.now();
  r = rig.update(5, app, 2, /*force=*/true);
  EXPECT_FALSE(r.skipped);
  EXPECT_TRUE(r.started);
  EXPECT_TRUE(rig.application_runs(5, t));
  expect_installed(rig.master(), 5, r.software_id, 2);

  // 3: a second update after the first, another image version.
  t = rig.now();
  r = rig.update(5, app, 3, /*force=*/true);
  EXPECT_FALSE(r.skipped);
  EXPECT_TRUE(rig.application_runs(5, t));
  expect_installed(rig.master(), 5, r.software_id, 3);

  EXPECT_EQ(bootloader_region(board), bootloader_before);
  EXPECT_EQ(board.fault_count(), 0u) << faults_of(board);
  EXPECT_TRUE(rig.bus_faults().empty()) << rig.bus_faults().front();
  // The application survives a power cycle: the bootloader starts it at once.
  board.power_off("test");
  t = rig.now();
  board.power_on();
  EXPECT_TRUE(rig.application_runs(5, t));
  EXPECT_EQ(board.fault_count(), 0u) << faults_of(board);
}

// Issue 6: a device without a valid application comes up "in the bootloader answering SDO with
// 0x1F57 'no valid program'" (CiA 302-3 flash status 1).
TEST(E2eUpdate, EmptyBoardReportsNoValidProgramIn0x1F57) {
  E2E_REQUIRE_FIRMWARE(2);
  Rig rig(1'000'000);
  tw::Board& board = rig.add_board(node(5));
  ASSERT_TRUE(rig.wait_boot_up(5, 0, 500'000).has_value()) << board.console();
  const std::uint32_t status = rig.master().upload_u32(5, co::od::kFlashStatus, 1);
  EXPECT_EQ(status, co::flash_status_word(false, co::FlashStatus::kNoValidProgram));
}

// An application whose every source, the kit's start-up included, is compiled with -flto (as
// many applications are built) starts: the kit's call of main() is visible to the linker
// (firmware/app-kit/src/call_main.S; from inline assembly it was not, and the link failed).
TEST(E2eUpdate, AnApplicationBuiltWithLtoRuns) {
  E2E_REQUIRE_FIRMWARE(2);
  const std::string path = firmware_dir() + "/firmware/example-app/example-app-lto.elf";
  ASSERT_FALSE(load_file(path).empty()) << path << " not built";
  Rig rig(1'000'000);
  tw::Board& board = rig.add_board(node(5));
  ASSERT_TRUE(rig.wait_boot_up(5, 0, 500'000).has_value()) << board.console();
  const host::LoadedInput app = host::load_input(path, {});
  const Micros t = rig.now();
  const host::UpdateResult r = rig.update(5, app, 7);
  EXPECT_TRUE(r.started);
  EXPECT_TRUE(rig.application_runs(5, t)) << board.console();
  expect_installed(rig.master(), 5, r.software_id, 7);
  EXPECT_EQ(board.fault_count(), 0u) << faults_of(board);
}

// The running application reports what the bootloader installed: 0x1F56:1 = the payload CRC-32
// and 0x5F00:6 = the container's image version (handed over in SRC_GPR8/GPR4, docs/memory-map.md),
// so a CiA 302-2 master (and `rtcanboot flash` without --force) sees the image is current.
TEST(E2eUpdate, ApplicationReportsTheInstalledSoftwareIdAndImageVersion) {
  E2E_REQUIRE_FIRMWARE(2);
  Rig rig(1'000'000);
  tw::Board& board = rig.add_board(node(5));
  const host::LoadedInput app = example_app();
  const Micros t = rig.now();
  const host::UpdateResult r = rig.update(5, app, 0x20304);
  ASSERT_TRUE(rig.application_runs(5, t));
  const std::uint32_t id = rig.master().upload_u32(5, co::od::kSoftwareId, 1);
  const std::uint32_t version = rig.master().upload_u32(5, co::od::kRtcanbootInfo, 6);
  EXPECT_EQ(id, r.software_id);
  EXPECT_EQ(version, 0x20304u);
  // Without --force the same image is not downloaded again.
  EXPECT_TRUE(rig.update(5, app, 0x20304).skipped);
  EXPECT_EQ(board.fault_count(), 0u) << faults_of(board);
}

// An update at each CiA 301 bit rate from 125 kbit/s to 1 Mbit/s: the bootloader's provisioned
// rate, the bus and the application (which takes the rate from the hand-over) all agree.
class E2eBitrate : public ::testing::TestWithParam<std::uint32_t> {};

TEST_P(E2eBitrate, UpdateAndApplicationRun) {
  E2E_REQUIRE_FIRMWARE(2);
  Rig rig(GetParam());
  tw::Board& board = rig.add_board(node(12));
  ASSERT_TRUE(rig.wait_boot_up(12, 0, 500'000).has_value()) << board.console();
  const Micros t = rig.now();
  const host::UpdateResult r = rig.update(12, example_app());
  EXPECT_TRUE(r.used_block);
  EXPECT_TRUE(rig.application_runs(12, t));
  EXPECT_NEAR(board.flexcan(2).bitrate(), GetParam(), GetParam() * 0.005);
  EXPECT_NE(
      board.console().find("example application, node 12, " + std::to_string(GetParam() / 1000) +
                           " kbit/s (from the bootloader)"),
      std::string::npos)
      << board.console();
  EXPECT_EQ(board.fault_count(), 0u) << faults_of(board);
  EXPECT_TRUE(rig.bus_faults().empty()) << rig.bus_faults().front();
}

INSTANTIATE_TEST_SUITE_P(Cia301, E2eBitrate,
                         ::testing::Values(125'000u, 250'000u, 500'000u, 800'000u, 1'000'000u),
                         [](const ::testing::TestParamInfo<std::uint32_t>& p) {
                           return std::to_string(p.param / 1000) + "k";
                         });

// Pure virtual time: the same update twice gives the same bus traffic, frame for frame and to
// the nanosecond.
TEST(E2eUpdate, DeterministicBusTrace) {
  E2E_REQUIRE_FIRMWARE(2);
  auto run = [] {
    std::string trace;
    Rig rig(1'000'000);
    rig.bus().set_trace([&](const std::string& line) { trace += line + "\n"; });
    rig.add_board(node(5));
    const Micros t = rig.now();
    rig.update(5, example_app(), 4);
    EXPECT_TRUE(rig.application_runs(5, t));
    return trace;
  };
  const std::string first = run();
  const std::string second = run();
  EXPECT_GT(first.size(), 50'000u);  // about two thousand frames
  EXPECT_TRUE(first == second) << "the traces differ";
}

// Two boards of different node-IDs on one bus, updated one after the other: each update leaves
// the other node alone.
TEST(E2eUpdate, TwoNodesOnOneBusOneAfterTheOther) {
  E2E_REQUIRE_FIRMWARE(2);
  Rig rig(1'000'000);
  tw::Board& a = rig.add_board(node(3));
  tw::Board& b = rig.add_board(node(42));
  ASSERT_TRUE(rig.wait_boot_up(3, 0, 500'000).has_value());
  ASSERT_TRUE(rig.wait_boot_up(42, 0, 500'000).has_value());
  const host::LoadedInput app = example_app();

  Micros t = rig.now();
  const auto ra = rig.update(3, app, 7);
  EXPECT_EQ(ra.software_id, payload_crc(app));
  EXPECT_TRUE(rig.application_runs(3, t));
  // Node 42 still waits in its bootloader, untouched.
  EXPECT_EQ(rig.master().upload_u8(42, co::od::kRtcanbootInfo, 1), co::kRunningBootloader);
  EXPECT_EQ(rig.master().upload_u8(42, co::od::kProgramControl, 1),
            static_cast<std::uint8_t>(co::ProgramState::kNoProgram));

  t = rig.now();
  const auto rb = rig.update(42, app, 8);
  EXPECT_EQ(rb.software_id, payload_crc(app));
  EXPECT_TRUE(rig.application_runs(42, t));
  expect_installed(rig.master(), 3, ra.software_id, 7);
  expect_installed(rig.master(), 42, rb.software_id, 8);
  // Node 3 kept running throughout: no boot-up of node 3 during node 42's update.
  for (const auto& f : rig.log()) {
    if (f.at >= t && f.frame.id == co::kHeartbeatBase + 3) {
      EXPECT_EQ(f.frame.data[0], static_cast<std::uint8_t>(co::NmtState::kOperational));
    }
  }
  EXPECT_EQ(a.fault_count(), 0u) << faults_of(a);
  EXPECT_EQ(b.fault_count(), 0u) << faults_of(b);
  EXPECT_TRUE(rig.bus_faults().empty()) << rig.bus_faults().front();
}

// The FlexCAN instances the build supports: 2 is the default image; 1 and 3 are the
// rtcanboot-bootloader-can1/-can3 and example-app-can1/-can3 variants of the cross build.
class E2eInstance : public ::testing::TestWithParam<unsigned> {};

TEST_P(E2eInstance, UpdateThroughThisFlexcan) {
  E2E_REQUIRE_FIRMWARE(GetParam());
  Rig rig(500'000);
  tw::Board& board = rig.add_board(node(9, GetParam()));
  ASSERT_TRUE(rig.wait_boot_up(9, 0, 500'000).has_value()) << board.console();
  EXPECT_NE(board.console().find("FLEXCAN" + std::to_string(GetParam())), std::string::npos)
      << board.console();
  EXPECT_GT(board.flexcan(GetParam()).frames_transmitted(), 0u);
  const Micros t = rig.now();
  rig.update(9, example_app(GetParam()));
  EXPECT_TRUE(rig.application_runs(9, t));
  for (unsigned other = 1; other <= 3; ++other) {
    if (other != GetParam()) {
      EXPECT_EQ(board.flexcan(other).frames_transmitted(), 0u) << "FLEXCAN" << other;
    }
  }
  EXPECT_EQ(board.fault_count(), 0u) << faults_of(board);
}

INSTANTIATE_TEST_SUITE_P(Flexcan, E2eInstance, ::testing::Values(1u, 2u, 3u),
                         [](const ::testing::TestParamInfo<unsigned>& p) {
                           return "can" + std::to_string(p.param);
                         });

}  // namespace
}  // namespace rtcanboot::e2e
