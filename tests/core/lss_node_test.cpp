// LSS inside the node and the bootloader: an unconfigured node (no node-ID) is only an LSS slave
// until a master configures it; configuration takes effect through reset communication; the bit
// rate switch silences the node; "store configuration" writes the provisioning record.
#include <gtest/gtest.h>

#include <optional>

#include "canopen_node_fixture.hpp"
#include "core_rig.hpp"
#include "image_builder.hpp"
#include "rtcanboot/bootloader.hpp"
#include "rtcanboot/install_journal.hpp"
#include "rtcanboot/lss.hpp"
#include "rtcanboot/memory_map.hpp"
#include "rtcanboot/provisioning.hpp"
#include "strict_flash.hpp"

namespace rtcanboot {
namespace {

using canopen::BootReason;
using lss::Cs;
using test::Bytes8;
using test::make_frame;
namespace od = canopen::od;

std::uint8_t c(Cs cs) {
  return static_cast<std::uint8_t>(cs);
}

// --- CanopenNode ----------------------------------------------------------------------------

class UnconfiguredNodeTest : public test::CanopenNodeTest {
 protected:
  void SetUp() override {
    config.node_id = lss::kUnconfigured;
    config.bitrate = 250'000;
    node.emplace(frames, program, config);
    node->start(now);
  }
  void lss(const Bytes8& data) { node->on_frame(make_frame(lss::kMasterCobId, data), now); }
};

TEST_F(UnconfiguredNodeTest, SilentUntilLssGivesItANodeId) {
  EXPECT_FALSE(node->configured());
  expect_silence();  // no boot-up
  advance(milliseconds(1000));
  expect_silence();  // no heartbeat
  // Neither NMT nor SDO on any node-ID.
  nmt(0x82, 0);
  nmt(0x01, 0);
  for (std::uint32_t id : {0x600U, 0x605U, 0x67FU}) {
    node->on_frame(make_frame(id, {0x40, 0x00, 0x10, 0, 0, 0, 0, 0}), now);
  }
  expect_silence();
  EXPECT_EQ(node->state(), canopen::NmtState::kBootUp);

  lss({c(Cs::kIdentifyNonConfigured)});
  ASSERT_EQ(frames.size(), 1U);
  EXPECT_EQ(frames.pop().data[0], 0x50);
  lss({c(Cs::kSwitchGlobal), 1});
  lss({c(Cs::kInquireNodeId)});
  EXPECT_EQ(test::payload(frames.pop()), (Bytes8{0x5E, 0xFF, 0, 0, 0, 0, 0, 0}));
  lss({c(Cs::kConfigureNodeId), 9});
  EXPECT_EQ(test::payload(frames.pop()), (Bytes8{0x11, 0, 0, 0, 0, 0, 0, 0}));
  expect_silence();
  // Back to waiting: the node enters reset communication by itself and boots up as node 9.
  lss({c(Cs::kSwitchGlobal), 0});
  ASSERT_EQ(frames.size(), 1U);
  const CanFrame boot_up = frames.pop();
  EXPECT_EQ(boot_up.id, 0x709U);
  EXPECT_EQ(boot_up.dlc, 1);
  EXPECT_EQ(boot_up.data[0], 0);
  EXPECT_TRUE(node->configured());
  EXPECT_EQ(node->node_id(), 9);
  EXPECT_EQ(node->state(), canopen::NmtState::kPreOperational);
  // Now an SDO server on 0x609.
  node->on_frame(make_frame(0x609, {0x40, 0x18, 0x10, 4, 0, 0, 0, 0}), now);
  ASSERT_EQ(frames.size(), 1U);
  const CanFrame response = frames.pop();
  EXPECT_EQ(response.id, 0x589U);
  EXPECT_EQ(test::payload(response), (Bytes8{0x43, 0x18, 0x10, 4, 0xEF, 0xBE, 0xAD, 0xDE}));
}

using ConfiguredNodeTest = test::CanopenNodeTest;

TEST_F(ConfiguredNodeTest, LssNodeIdOfAConfiguredNodeWaitsForResetCommunication) {
  auto lss = [&](const Bytes8& data) { node->on_frame(make_frame(lss::kMasterCobId, data), now); };
  lss({c(Cs::kSwitchGlobal), 1});
  lss({c(Cs::kConfigureNodeId), 20});
  EXPECT_EQ(test::payload(frames.pop()), (Bytes8{0x11, 0, 0, 0, 0, 0, 0, 0}));
  lss({c(Cs::kSwitchGlobal), 0});
  expect_silence();
  EXPECT_EQ(node->node_id(), kNodeId);  // still the old one
  nmt(0x82, kNodeId);                   // reset communication
  const CanFrame boot_up = frames.pop();
  EXPECT_EQ(boot_up.id, 0x714U);
  EXPECT_EQ(node->node_id(), 20);
  // Node-ID 0xFF then NMT reset communication: the node becomes unconfigured and goes silent.
  lss({c(Cs::kSwitchGlobal), 1});
  lss({c(Cs::kConfigureNodeId), 0xFF});
  frames.frames.clear();
  nmt(0x82, 0);
  expect_silence();
  EXPECT_FALSE(node->configured());
  advance(milliseconds(500));
  expect_silence();
}

TEST_F(ConfiguredNodeTest, HeartbeatPausesWhileLssSwitchesTheBitRate) {
  auto lss = [&](const Bytes8& data) { node->on_frame(make_frame(lss::kMasterCobId, data), now); };
  lss({c(Cs::kSwitchGlobal), 1});
  lss({c(Cs::kConfigureBitTiming), 0, 0});
  EXPECT_EQ(test::payload(frames.pop()), (Bytes8{0x13, 0, 0, 0, 0, 0, 0, 0}));
  lss({c(Cs::kActivateBitTiming), 0xF4, 0x01});  // 500 ms, longer than the 100 ms heartbeat
  std::uint32_t bitrate = 0;
  for (int i = 0; i < 999; ++i) advance(1000);
  expect_silence();
  ASSERT_TRUE(node->take_bitrate_switch(&bitrate));
  EXPECT_EQ(bitrate, 1'000'000U);
  advance(1000);
  ASSERT_FALSE(frames.empty());
  EXPECT_EQ(frames.pop().id, 0x700U + kNodeId);  // heartbeat again
}

// --- Bootloader --------------------------------------------------------------------------------

class LssBootloaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    test::fail_on_violation(flash);
    rig.settings().provisioning = Provisioning{};  // blank record: unconfigured
    rig.settings().provisioning.bitrate = 1'000'000;
  }

  std::optional<CanFrame> lss(const Bytes8& data, bool expect_answer = true) {
    rig.send(make_frame(lss::kMasterCobId, data));
    auto answer = rig.receive(lss::kSlaveCobId, expect_answer ? 500'000 : 5'000);
    return answer;
  }
  void configure(std::uint8_t node_id) {
    ASSERT_FALSE(lss({c(Cs::kSwitchGlobal), 1}, false));
    const auto answer = lss({c(Cs::kConfigureNodeId), node_id});
    ASSERT_TRUE(answer);
    EXPECT_EQ(answer->data[1], lss::kSuccess);
  }
  bool sent(std::uint32_t id) const {
    for (const auto& arrived : rig.history()) {
      if (arrived.frame.id == id) return true;
    }
    return false;
  }
  void install_application() {
    // Configured as node 5 for the download, then back to unconfigured in the record.
    rig.settings().provisioning.node_id = 5;
    rig.boot();
    const auto result = rig.sdo_download_block(od::kProgramData, 1,
                                               test::make_container(test::make_payload(3000, 1)));
    ASSERT_TRUE(result.ok());
    ASSERT_EQ(rig.wait_flash_idle(), 0U);
    rig.run_for(1000);
    rig.settings().provisioning.node_id = lss::kUnconfigured;
  }
  void reboot_from_flash() {
    rig.run_for(1000);
    bool valid = false;
    rig.settings().provisioning = load_provisioning(flash, &valid);
    EXPECT_TRUE(valid);
    rig.boot();
  }

  test::NorFlashFake flash{test::NorTiming::typical()};
  test::CoreRig rig{flash, test::test_settings()};
};

TEST_F(LssBootloaderTest, UnconfiguredWithValidApplicationStaysSilentInTheBootloader) {
  install_application();
  rig.boot();
  const std::size_t before = rig.history().size();
  rig.run_for(2'000'000);
  EXPECT_EQ(rig.history().size(), before);  // no boot-up, no heartbeat
  EXPECT_EQ(rig.bootloader().pending_action(), PendingAction::kNone);
  EXPECT_EQ(rig.bootloader().boot_reason(), BootReason::kUnconfigured);
  // Configured by LSS: boots up as node 12 and, by default, stays in the bootloader.
  configure(12);
  EXPECT_FALSE(lss({c(Cs::kSwitchGlobal), 0}, false));
  rig.run_for(10'000);
  EXPECT_TRUE(sent(0x70C));
  EXPECT_EQ(rig.bootloader().node_id(), 12);
  EXPECT_EQ(rig.bootloader().pending_action(), PendingAction::kNone);
  rig.settings().provisioning.node_id = 12;  // the rig's SDO client addresses node 12 now
  const auto reason = rig.sdo_read(od::kRtcanbootInfo, 5);
  ASSERT_TRUE(reason.ok());
  EXPECT_EQ(reason.value, static_cast<std::uint32_t>(BootReason::kUnconfigured));
  const auto control = rig.sdo_read(od::kProgramControl, 1);
  ASSERT_TRUE(control.ok());
  EXPECT_EQ(control.value, 0U);  // a valid program, stopped
}

TEST_F(LssBootloaderTest, ProvisionedChoiceStartsTheApplicationOnceConfigured) {
  install_application();
  rig.settings().provisioning.flags = kStartApplicationAfterLss;
  rig.boot();
  EXPECT_EQ(rig.bootloader().pending_action(), PendingAction::kNone);
  configure(13);
  EXPECT_FALSE(lss({c(Cs::kSwitchGlobal), 0}, false));
  EXPECT_EQ(rig.bootloader().pending_action(), PendingAction::kStartApplication);
  EXPECT_EQ(rig.bootloader().node_id(), 13);  // handed over to the application
}

// Trial boot: the start after LSS is a start like any other, so an unconfirmed image gets its
// ATTEMPT record on the flash before it runs; with trial boot off it starts without one.
class LssTrialStartTest : public LssBootloaderTest,
                          public ::testing::WithParamInterface<std::uint8_t> {};

TEST_P(LssTrialStartTest, StartAfterLssRecordsTheTrialAttemptFirst) {
  const std::uint8_t attempts = GetParam();
  rig.settings().provisioning.boot_attempts = attempts;
  install_application();
  rig.settings().provisioning.flags = kStartApplicationAfterLss;
  rig.boot();
  EXPECT_EQ(rig.bootloader().installed().attempts, 0U);
  configure(13);
  EXPECT_FALSE(lss({c(Cs::kSwitchGlobal), 0}, false));
  EXPECT_EQ(rig.bootloader().pending_action(), PendingAction::kStartApplication);
  const bool trial = attempts != kTrialBootOff;
  EXPECT_EQ(rig.bootloader().trial_start(), trial);
  journal::InstallJournal journal(flash);
  journal.load();
  EXPECT_EQ(journal.installed().attempts, trial ? 1U : 0U);
  EXPECT_EQ(rig.bootloader().refused_flash_requests(), 0U);
}

INSTANTIATE_TEST_SUITE_P(TrialOnAndOff, LssTrialStartTest,
                         ::testing::Values(std::uint8_t{3}, kTrialBootOff));

TEST_F(LssBootloaderTest, StoreConfigurationSurvivesTheReset) {
  rig.boot();
  EXPECT_FALSE(sent(0x700 + 5));
  configure(17);
  auto answer = lss({c(Cs::kConfigureBitTiming), 0, 2});  // 500 kbit/s
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->data[1], lss::kSuccess);
  answer = lss({c(Cs::kStoreConfiguration)});
  ASSERT_TRUE(answer);
  EXPECT_EQ(test::payload(*answer), (Bytes8{0x17, 0, 0, 0, 0, 0, 0, 0}));
  EXPECT_EQ(rig.bootloader().provisioning().current().node_id, 17);
  EXPECT_EQ(rig.bootloader().refused_flash_requests(), 0U);
  // After a reset the node comes up configured, at the stored bit rate.
  reboot_from_flash();
  EXPECT_EQ(rig.settings().provisioning.node_id, 17);
  EXPECT_EQ(rig.settings().provisioning.bitrate, 500'000U);
  EXPECT_TRUE(sent(0x711));
  EXPECT_EQ(rig.bootloader().node().lss().active_node_id(), 17);
  // Storing "unconfigured" again is allowed (CiA 305 node-ID 0xFF).
  ASSERT_FALSE(lss({c(Cs::kSwitchGlobal), 1}, false));
  answer = lss({c(Cs::kConfigureNodeId), 0xFF});
  ASSERT_TRUE(answer);
  answer = lss({c(Cs::kStoreConfiguration)});
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->data[1], lss::kSuccess);
  EXPECT_EQ(load_provisioning(flash).node_id, lss::kUnconfigured);
}

TEST_F(LssBootloaderTest, StoreIsRefusedWhileADownloadIsRunning) {
  rig.settings().provisioning.node_id = 5;
  rig.boot();
  // Start a block download and stop part-way: the download session stays open.
  rig.stop_after_bytes = 8'000;
  rig.sdo_download_block(od::kProgramData, 1, test::make_container(test::make_payload(60'000, 1)));
  rig.stop_after_bytes = 0;
  ASSERT_FALSE(lss({c(Cs::kSwitchGlobal), 1}, false));
  const auto answer = lss({c(Cs::kStoreConfiguration)});
  ASSERT_TRUE(answer);
  EXPECT_EQ(test::payload(*answer),
            (Bytes8{0x17, lss::kImplementationSpecific, lss::kSpecStoreBusy, 0, 0, 0, 0, 0}));
  bool valid = true;
  load_provisioning(flash, &valid);
  EXPECT_FALSE(valid);  // nothing written
}

TEST_F(LssBootloaderTest, StoreMediaErrorIsReported) {
  rig.boot();
  configure(40);
  flash.fail_operation_at(1);
  const auto answer = lss({c(Cs::kStoreConfiguration)});
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->data[1], lss::kStoreMediaError);
}

// Lock-down (docs/security.md): once the node holds a signing key, LSS cannot store a new
// node-ID or bit rate unless the build allows it (RTCANBOOT_LSS_STORE_WHEN_LOCKED).
TEST_F(LssBootloaderTest, StoreIsRefusedOnceTheNodeHoldsAKeyUnlessTheBuildAllowsIt) {
  KeyRecord key;
  key.public_key[0] = 0xD7;  // any key: only whether one is held matters here
  rig.settings().provisioning.node_id = 5;
  rig.settings().key_record = &key;
  rig.boot();
  configure(40);
  auto answer = lss({c(Cs::kStoreConfiguration)});
  ASSERT_TRUE(answer);
  EXPECT_EQ(test::payload(*answer),
            (Bytes8{0x17, lss::kImplementationSpecific, lss::kSpecStoreLocked, 0, 0, 0, 0, 0}));
  bool valid = true;
  load_provisioning(flash, &valid);
  EXPECT_FALSE(valid);  // nothing written

  rig.settings().lss_store_when_locked = true;
  rig.boot();
  configure(41);
  answer = lss({c(Cs::kStoreConfiguration)});
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->data[1], lss::kSuccess);
  EXPECT_EQ(load_provisioning(flash).node_id, 41);
}

}  // namespace
}  // namespace rtcanboot
