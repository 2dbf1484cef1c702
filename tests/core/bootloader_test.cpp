// The Bootloader end to end: the real CanopenNode, SDO frames on a bit-timed bus, the strict NOR
// fake. Program download (block and segmented), every 0x1F50/51/56/57 behaviour, the boot
// decision and the boot window.
#include "rtcanboot/bootloader.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "canopen_fakes.hpp"
#include "core_rig.hpp"
#include "image_builder.hpp"
#include "rtcanboot/bytes.hpp"
#include "rtcanboot/hash.hpp"
#include "rtcanboot/lss.hpp"
#include "rtcanboot/memory_map.hpp"
#include "strict_flash.hpp"
#include "test_vectors.hpp"

namespace rtcanboot {
namespace {

using canopen::Abort;
using canopen::BootReason;
using canopen::FlashDetail;
using canopen::FlashStatus;
using test::CoreRig;
using test::NorFlashFake;
namespace mm = memory_map;
namespace od = canopen::od;

using Bytes = std::vector<std::uint8_t>;

[[maybe_unused]] constexpr std::uint32_t status_word(FlashStatus status,
                                                     FlashDetail detail = FlashDetail::kNone) {
  return canopen::flash_status_word(false, status, detail);
}

class BootloaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    test::fail_on_violation(flash);
    // Something recognisable where the bootloader lives: it must never change.
    for (std::uint32_t i = 0; i < mm::kBootloaderSize; ++i) {
      flash.contents()[i] = static_cast<std::uint8_t>(i * 13 + 7);
    }
    bootloader_image.assign(flash.contents().begin(),
                            flash.contents().begin() + mm::kBootloaderSize);
  }
  void TearDown() override {
    EXPECT_TRUE(
        std::equal(bootloader_image.begin(), bootloader_image.end(), flash.contents().begin()))
        << "the bootloader region changed";
    if (rig.bootloader_ready()) {
      EXPECT_EQ(rig.bootloader().refused_flash_requests(), 0U);
    }
  }

  // Installs `payload` through a full block download and waits for the commit.
  void install(const Bytes& payload, std::uint32_t version = 1) {
    const auto result =
        rig.sdo_download_block(od::kProgramData, 1, test::make_container(payload, version));
    ASSERT_TRUE(result.ok()) << std::hex << static_cast<std::uint32_t>(result.abort);
    ASSERT_EQ(rig.wait_flash_idle(), 0U);
  }
  bool app_in_flash(const Bytes& payload) {
    return std::equal(payload.begin(), payload.end(), flash.contents().begin() + mm::kAppOffset);
  }
  std::uint32_t read(std::uint16_t index, std::uint8_t sub = 1) {
    const auto result = rig.sdo_read(index, sub);
    EXPECT_TRUE(result.ok()) << std::hex << index << " abort "
                             << static_cast<std::uint32_t>(result.abort);
    return result.value;
  }
  Abort write(std::uint16_t index, std::uint8_t sub, std::uint32_t value, std::uint8_t size = 1) {
    const auto result = rig.sdo_write(index, sub, value, size);
    EXPECT_FALSE(result.timed_out);
    return result.abort;
  }
  void reboot() {
    rig.run_for(1000);
    rig.boot();
  }

  // The listen window off: these tests start a valid application at once; the window has its
  // own tests (BootloaderListenWindow).
  static BootloaderSettings settings_without_listen_window() {
    BootloaderSettings settings = test::test_settings();
    settings.provisioning.listen_window_ms = 0;
    return settings;
  }

  NorFlashFake flash{test::NorTiming::typical()};
  Bytes bootloader_image;
  CoreRig rig{flash, settings_without_listen_window()};
};

TEST_F(BootloaderTest, FreshDeviceStaysInTheBootloaderWithNoProgram) {
  rig.boot();
  ASSERT_FALSE(rig.history().empty());
  EXPECT_EQ(rig.history().front().frame.id, 0x705U);  // boot-up
  EXPECT_EQ(rig.history().front().frame.data[0], 0x00);
  EXPECT_EQ(rig.bootloader().boot_reason(), BootReason::kNoValidApplication);
  EXPECT_EQ(read(od::kProgramControl), 3U);
  EXPECT_EQ(read(od::kSoftwareId), 0U);
  EXPECT_EQ(read(od::kFlashStatus), status_word(FlashStatus::kNoValidProgram, FlashDetail::kNone));
  EXPECT_EQ(read(od::kRtcanbootInfo, 5),
            static_cast<std::uint32_t>(BootReason::kNoValidApplication));
  EXPECT_EQ(read(od::kRtcanbootInfo, 3), mm::kAppAddress);
  EXPECT_EQ(rig.bootloader().pending_action(), PendingAction::kNone);
}

TEST_F(BootloaderTest, BlockDownloadInstallsVerifiesAndCommits) {
  rig.boot();
  const Bytes payload = test::make_payload(100'000, 1);
  const auto result = rig.sdo_download_block(od::kProgramData, 1, test::make_container(payload, 7));
  ASSERT_TRUE(result.ok()) << std::hex << static_cast<std::uint32_t>(result.abort);
  // The end of the transfer is answered at once; the rest runs in the background.
  EXPECT_EQ(read(od::kFlashStatus) & 1U, 1U);
  EXPECT_EQ(read(od::kProgramControl), 3U);
  ASSERT_EQ(rig.wait_flash_idle(), 0U);
  EXPECT_EQ(read(od::kProgramControl), 0U);
  EXPECT_EQ(read(od::kSoftwareId), crc32(0, payload.data(), payload.size()));
  EXPECT_EQ(read(od::kRtcanbootInfo, 6), 7U);
  EXPECT_TRUE(app_in_flash(payload));
  EXPECT_TRUE(rig.bootloader().installed().valid);
  // A reboot finds it valid and starts it straight away (no boot window).
  reboot();
  rig.run_for(10'000);  // the trial boot's attempt record
  EXPECT_EQ(rig.bootloader().pending_action(), PendingAction::kStartApplication);
  EXPECT_TRUE(rig.bootloader().decision().start_application);
}

TEST_F(BootloaderTest, SegmentedDownloadWorksToo) {
  rig.boot();
  const Bytes payload = test::make_payload(3000, 2);
  const auto result =
      rig.sdo_download_segmented(od::kProgramData, 1, test::make_container(payload));
  ASSERT_TRUE(result.ok()) << std::hex << static_cast<std::uint32_t>(result.abort);
  ASSERT_EQ(rig.wait_flash_idle(), 0U);
  EXPECT_EQ(read(od::kSoftwareId), crc32(0, payload.data(), payload.size()));
  EXPECT_TRUE(app_in_flash(payload));
}

// --- 0x1F51 program control ---------------------------------------------------------------------

TEST_F(BootloaderTest, StartWithoutValidProgramIsRefused) {
  rig.boot();
  EXPECT_EQ(write(od::kProgramControl, 1, 1), Abort::kDeviceState);
  EXPECT_EQ(write(od::kProgramControl, 1, 2), Abort::kDeviceState);
  EXPECT_EQ(rig.bootloader().pending_action(), PendingAction::kNone);
}

TEST_F(BootloaderTest, StopIsAcceptedAndUnknownCommandsAreOutOfRange) {
  rig.boot();
  EXPECT_EQ(write(od::kProgramControl, 1, 0), Abort::kNone);
  EXPECT_EQ(write(od::kProgramControl, 1, 4), Abort::kValueRange);
  EXPECT_EQ(write(od::kProgramControl, 1, 0xFF), Abort::kValueRange);
}

TEST_F(BootloaderTest, StartWithValidProgramAnswersFirstThenAsksForTheApplication) {
  rig.boot();
  install(test::make_payload(5000, 3));
  rig.settings().entry_requested = true;  // otherwise it would start without waiting
  for (std::uint32_t command : {1U, 2U}) {
    reboot();
    const std::size_t frames_before = rig.history().size();
    EXPECT_EQ(write(od::kProgramControl, 1, command), Abort::kNone);
    // The SDO response was handed to the bus before the action became pending.
    ASSERT_GT(rig.history().size(), frames_before);
    EXPECT_EQ(rig.history().back().frame.data[0], 0x60);
    rig.run_for(10'000);  // the trial boot's attempt record
    EXPECT_EQ(rig.bootloader().pending_action(), PendingAction::kStartApplication);
  }
}

TEST_F(BootloaderTest, ClearRevokesAndErasesInTheBackground) {
  rig.boot();
  const Bytes payload = test::make_payload(150'000, 4);
  install(payload);
  ASSERT_EQ(read(od::kProgramControl), 0U);
  EXPECT_EQ(write(od::kProgramControl, 1, 3), Abort::kNone);  // acknowledged at once
  EXPECT_EQ(read(od::kFlashStatus) & 1U, 1U);
  EXPECT_EQ(read(od::kProgramControl), 3U);
  EXPECT_EQ(read(od::kSoftwareId), 0U);
  // The clear is done once its REVOKE is on the flash, long before its 64 KiB erases are.
  const Micros cleared_at = rig.now();
  ASSERT_EQ(rig.wait_flash_idle(), 0U);
  EXPECT_LT(rig.now() - cleared_at, 50'000U);
  EXPECT_TRUE(rig.bootloader().writer().has_work());
  // The erase goes on in the background until the region is blank.
  for (int i = 0; i < 2000 && rig.bootloader().writer().has_work(); ++i) rig.run_for(10'000);
  EXPECT_FALSE(rig.bootloader().writer().has_work());
  EXPECT_GE(rig.bootloader().writer().stats().erases_64k, 3U);
  EXPECT_EQ(read(od::kFlashStatus), 0U);
  EXPECT_TRUE(std::all_of(flash.contents().begin() + mm::kAppOffset,
                          flash.contents().begin() + mm::kRecordsOffset,
                          [](std::uint8_t b) { return b == 0xFF; }));
  reboot();
  EXPECT_EQ(rig.bootloader().boot_reason(), BootReason::kNoValidApplication);
  EXPECT_EQ(read(od::kProgramControl), 3U);
}

TEST_F(BootloaderTest, DownloadMayStartWhileAClearRuns) {
  rig.boot();
  install(test::make_payload(300'000, 5));
  EXPECT_EQ(write(od::kProgramControl, 1, 3), Abort::kNone);
  rig.run_for(20'000);
  // The clear is done (its REVOKE is written); its erase still runs in the background.
  ASSERT_EQ(read(od::kFlashStatus), 0U);
  ASSERT_TRUE(rig.bootloader().writer().has_work());
  const Bytes payload = test::make_payload(70'000, 6);
  const auto result = rig.sdo_download_block(od::kProgramData, 1, test::make_container(payload));
  ASSERT_TRUE(result.ok()) << std::hex << static_cast<std::uint32_t>(result.abort);
  ASSERT_EQ(rig.wait_flash_idle(), 0U);
  EXPECT_EQ(read(od::kSoftwareId), crc32(0, payload.data(), payload.size()));
  EXPECT_TRUE(app_in_flash(payload));
}

TEST_F(BootloaderTest, DownloadWithoutClearReplacesTheApplication) {
  rig.boot();
  install(test::make_payload(200'000, 7), 1);
  const Bytes second = test::make_payload(90'000, 8);
  install(second, 2);
  EXPECT_EQ(read(od::kSoftwareId), crc32(0, second.data(), second.size()));
  EXPECT_EQ(read(od::kRtcanbootInfo, 6), 2U);
  EXPECT_TRUE(app_in_flash(second));
  reboot();
  rig.run_for(10'000);  // the trial boot's attempt record
  EXPECT_EQ(rig.bootloader().pending_action(), PendingAction::kStartApplication);
}

TEST_F(BootloaderTest, ProgramDataIsWriteOnlyAndOtherSubIndicesDoNotExist) {
  rig.boot();
  EXPECT_EQ(rig.sdo_read(od::kProgramData, 1).abort, Abort::kWriteOnly);
  EXPECT_NE(write(od::kProgramControl, 2, 1), Abort::kNone);
}

// --- refused downloads
// -----------------------------------------------------------------------------

TEST_F(BootloaderTest, ImpossibleSizeAtInitiateIsRefusedBeforeAnything) {
  rig.boot();
  const Bytes container = test::make_container(test::make_payload(1000, 1));
  auto result = rig.sdo_download_block(od::kProgramData, 1, container, 10U);
  EXPECT_EQ(result.abort, Abort::kTypeMismatch);
  EXPECT_EQ(read(od::kFlashStatus),
            status_word(FlashStatus::kDataFormatError, FlashDetail::kLengthMismatch));
  result = rig.sdo_download_block(od::kProgramData, 1, container, mm::kAppSize + 2000);
  EXPECT_EQ(result.abort, Abort::kTypeMismatch);
  EXPECT_EQ(read(od::kFlashStatus),
            status_word(FlashStatus::kAddressError, FlashDetail::kTooLarge));
  EXPECT_EQ(flash.mutating_ops(), 0U);
}

TEST_F(BootloaderTest, AnnouncedSizeThatDisagreesWithTheHeaderIsRefusedBeforeErasing) {
  rig.boot();
  install(test::make_payload(4000, 1));
  const std::uint32_t ops = flash.mutating_ops();
  const Bytes container = test::make_container(test::make_payload(1000, 2));
  const auto result = rig.sdo_download_block(od::kProgramData, 1, container,
                                             static_cast<std::uint32_t>(container.size() + 7));
  EXPECT_EQ(result.abort, Abort::kTypeMismatch);
  EXPECT_EQ(read(od::kFlashStatus),
            status_word(FlashStatus::kDataFormatError, FlashDetail::kLengthMismatch));
  EXPECT_EQ(flash.mutating_ops(), ops);
  EXPECT_EQ(read(od::kProgramControl), 0U);  // the installed application is untouched
}

TEST_F(BootloaderTest, HeaderErrorsAbortWithTheirFlashStatusAndKeepTheApplication) {
  rig.boot();
  const Bytes installed = test::make_payload(4000, 1);
  install(installed);
  const std::uint32_t ops = flash.mutating_ops();
  struct Case {
    void (*patch)(image::Header&);
    FlashStatus status;
    FlashDetail detail;
  };
  const Case cases[] = {
      {[](image::Header& h) { h.vendor_id ^= 1; }, FlashStatus::kWrongProduct,
       FlashDetail::kProductMismatch},
      {[](image::Header& h) { h.product_code ^= 1; }, FlashStatus::kWrongProduct,
       FlashDetail::kProductMismatch},
      {[](image::Header& h) { h.load_address = mm::kFlashBase; }, FlashStatus::kAddressError,
       FlashDetail::kLoadAddress},
      {[](image::Header& h) { h.format_version = 2; }, FlashStatus::kDataFormatUnknown,
       FlashDetail::kBadFormatVersion},
      {[](image::Header& h) { h.flags = 8; }, FlashStatus::kDataFormatUnknown,
       FlashDetail::kUnsupportedFlags},
      // Bit 2 is the patch flag: without its patch record the container is malformed.
      {[](image::Header& h) { h.flags = 4; }, FlashStatus::kDataFormatError,
       FlashDetail::kBadPatch},
      // Bit 0 is the sparse flag: without its extents record the container is malformed.
      {[](image::Header& h) { h.flags = 1; }, FlashStatus::kDataFormatError,
       FlashDetail::kBadExtents},
  };
  for (const Case& c : cases) {
    const Bytes payload = test::make_payload(2000, 9);
    image::Header header = test::header_for(payload);
    c.patch(header);
    const auto result =
        rig.sdo_download_block(od::kProgramData, 1, test::make_container(header, payload));
    EXPECT_EQ(result.abort, Abort::kCannotStore);
    EXPECT_EQ(read(od::kFlashStatus), status_word(c.status, c.detail));
  }
  Bytes bad_magic = test::make_container(test::make_payload(2000, 9));
  bad_magic[0] = 'X';
  EXPECT_EQ(rig.sdo_download_block(od::kProgramData, 1, bad_magic).abort, Abort::kCannotStore);
  EXPECT_EQ(read(od::kFlashStatus),
            status_word(FlashStatus::kDataFormatUnknown, FlashDetail::kBadMagic));
  Bytes bad_crc = test::make_container(test::make_payload(2000, 9));
  bad_crc[0x30] ^= 0x40;
  EXPECT_EQ(rig.sdo_download_block(od::kProgramData, 1, bad_crc).abort, Abort::kCannotStore);
  EXPECT_EQ(read(od::kFlashStatus),
            status_word(FlashStatus::kDataFormatError, FlashDetail::kBadHeaderCrc));
  EXPECT_EQ(flash.mutating_ops(), ops);
  EXPECT_EQ(read(od::kProgramControl), 0U);
  EXPECT_EQ(read(od::kSoftwareId), crc32(0, installed.data(), installed.size()));
}

// Issue 16, defect 1: a wrong-product image whose segment 0x2F holds 51 1F 01 03 ("write
// 0x1F51:1 = 3", clear) once erased the installed application: after the abort the rest of the
// sub-block was read as requests.
TEST_F(BootloaderTest, SegmentsAfterAnAbortInsideASubBlockAreNeverRequests) {
  rig.boot();
  const Bytes installed = test::make_payload(4000, 1);
  install(installed);
  const std::uint32_t ops = flash.mutating_ops();
  const Bytes payload = test::make_payload(3000, 9);
  image::Header header = test::header_for(payload);
  header.product_code ^= 1;
  Bytes container = test::make_container(header, payload);
  const std::size_t segment_2f = (0x2F - 1) * 7;  // data bytes of sequence number 0x2F
  ASSERT_GT(segment_2f, std::size_t{header.header_length});
  const std::uint8_t clear[] = {0x51, 0x1F, 0x01, 0x03};
  std::copy(std::begin(clear), std::end(clear), container.begin() + segment_2f);
  rig.queue_whole_sub_blocks = true;
  const std::size_t sent_before = rig.history().size();
  EXPECT_EQ(rig.sdo_download_block(od::kProgramData, 1, container).abort, Abort::kCannotStore);
  rig.run_for(300'000);
  std::size_t responses = 0;
  for (std::size_t i = sent_before; i < rig.history().size(); ++i) {
    responses += rig.history()[i].frame.id == canopen::kSdoTxBase + rig.node_id() ? 1 : 0;
  }
  EXPECT_EQ(responses, 2U) << "the initiate response and the abort, nothing for the segments";
  EXPECT_EQ(read(od::kFlashStatus),
            status_word(FlashStatus::kWrongProduct, FlashDetail::kProductMismatch));
  EXPECT_EQ(flash.mutating_ops(), ops);
  EXPECT_EQ(read(od::kProgramControl), 0U);
  reboot();
  EXPECT_TRUE(rig.bootloader().decision().application_valid);
  EXPECT_TRUE(app_in_flash(installed));
}

TEST_F(BootloaderTest, PayloadCrcOrShaMismatchAbortsAtTheEndAndNothingIsCommitted) {
  rig.boot();
  const Bytes payload = test::make_payload(20'000, 3);
  Bytes container = test::make_container(payload);
  container[container.size() - 100] ^= 0x01;
  EXPECT_EQ(rig.sdo_download_block(od::kProgramData, 1, container).abort, Abort::kCannotStore);
  EXPECT_EQ(read(od::kFlashStatus),
            status_word(FlashStatus::kDataFormatError, FlashDetail::kPayloadCrc));

  image::Header header = test::header_for(payload);
  header.payload_sha256[5] ^= 0x80;
  EXPECT_EQ(
      rig.sdo_download_block(od::kProgramData, 1, test::make_container(header, payload)).abort,
      Abort::kCannotStore);
  rig.run_for(500'000);
  EXPECT_EQ(read(od::kFlashStatus),
            status_word(FlashStatus::kDataFormatError, FlashDetail::kPayloadSha256));
  EXPECT_EQ(read(od::kProgramControl), 3U);
  reboot();
  EXPECT_EQ(rig.bootloader().boot_reason(), BootReason::kNoValidApplication);
}

TEST_F(BootloaderTest, TruncatedAndOverlongDownloadsAreLengthMismatches) {
  rig.boot();
  const Bytes container = test::make_container(test::make_payload(3000, 3));
  Bytes shorter(container.begin(), container.end() - 5);
  EXPECT_EQ(rig.sdo_download_segmented(od::kProgramData, 1, shorter, false).abort,
            Abort::kTypeMismatch);
  EXPECT_EQ(read(od::kFlashStatus),
            status_word(FlashStatus::kDataFormatError, FlashDetail::kLengthMismatch));
  Bytes longer = container;
  longer.insert(longer.end(), 9, 0xAA);
  EXPECT_EQ(rig.sdo_download_segmented(od::kProgramData, 1, longer, false).abort,
            Abort::kTypeMismatch);
  EXPECT_EQ(read(od::kFlashStatus),
            status_word(FlashStatus::kDataFormatError, FlashDetail::kLengthMismatch));
  Bytes header_only(container.begin(), container.begin() + 60);
  EXPECT_EQ(rig.sdo_download_segmented(od::kProgramData, 1, header_only, false).abort,
            Abort::kTypeMismatch);
  EXPECT_EQ(read(od::kProgramControl), 3U);
}

TEST_F(BootloaderTest, VectorTableThatCannotStartIsRefused) {
  rig.boot();
  Bytes payload = test::make_payload(3000, 3);
  store_le32(payload.data() + 4, mm::kAppAddress + 0x200);  // no Thumb bit
  EXPECT_EQ(rig.sdo_download_block(od::kProgramData, 1, test::make_container(payload)).abort,
            Abort::kCannotStore);
  EXPECT_EQ(read(od::kFlashStatus),
            status_word(FlashStatus::kDataFormatError, FlashDetail::kBadVectorTable));
}

// Issue 16, defect 11: the REVOKE went out before the vector table was checked, so after the
// refusal and a reset there was no valid program although no application byte had changed.
TEST_F(BootloaderTest, RefusedVectorTableKeepsTheInstalledApplication) {
  rig.boot();
  const Bytes installed = test::make_payload(4000, 1);
  install(installed);
  const std::uint32_t ops = flash.mutating_ops();
  Bytes payload = test::make_payload(30'000, 3);
  store_le32(payload.data(), 0x2000'0001);  // stack pointer not word-aligned
  EXPECT_EQ(rig.sdo_download_segmented(od::kProgramData, 1, test::make_container(payload)).abort,
            Abort::kCannotStore);
  EXPECT_EQ(read(od::kFlashStatus),
            status_word(FlashStatus::kDataFormatError, FlashDetail::kBadVectorTable));
  EXPECT_EQ(flash.mutating_ops(), ops);
  EXPECT_EQ(read(od::kProgramControl), 0U);
  reboot();
  EXPECT_TRUE(rig.bootloader().decision().application_valid);
  EXPECT_EQ(rig.bootloader().installed().payload_crc32,
            crc32(0, installed.data(), installed.size()));
}

TEST_F(BootloaderTest, FlashErrorDuringDownloadIsAHardwareAbort) {
  rig.boot();
  flash.fail_operation_at(3);
  const auto result = rig.sdo_download_block(od::kProgramData, 1,
                                             test::make_container(test::make_payload(50'000, 3)));
  EXPECT_EQ(result.abort, Abort::kHardware);
  EXPECT_EQ(read(od::kFlashStatus),
            status_word(FlashStatus::kWriteError, FlashDetail::kProgramFailed));
  EXPECT_EQ(read(od::kProgramControl), 3U);
  // The next attempt succeeds.
  install(test::make_payload(50'000, 4));
}

// Issue 16, defect 14: a block CRC error was reported as 63/15 "aborted".
TEST_F(BootloaderTest, BlockCrcErrorHasItsOwnFlashStatusDetail) {
  rig.boot();
  rig.wrong_block_crc = true;
  EXPECT_EQ(
      rig.sdo_download_block(od::kProgramData, 1, test::make_container(test::make_payload(3000, 2)))
          .abort,
      Abort::kCrc);
  rig.wrong_block_crc = false;
  rig.run_for(200'000);
  EXPECT_EQ(read(od::kFlashStatus),
            status_word(FlashStatus::kDataFormatError, FlashDetail::kTransferCrc));
}

TEST_F(BootloaderTest, SdoTimeoutHasItsOwnFlashStatusDetail) {
  rig.boot();
  rig.stop_after_bytes = 2000;
  EXPECT_TRUE(
      rig.sdo_download_block(od::kProgramData, 1, test::make_container(test::make_payload(8000, 2)))
          .timed_out);
  rig.stop_after_bytes = 0;
  rig.run_for(2'000'000);  // the node's SDO timeout
  EXPECT_EQ(read(od::kFlashStatus),
            status_word(FlashStatus::kUnspecified, FlashDetail::kTransferTimeout));
}

TEST_F(BootloaderTest, MasterAbortPartWayLeavesNoValidProgram) {
  rig.boot();
  install(test::make_payload(10'000, 1));
  rig.stop_after_bytes = 30'000;
  EXPECT_TRUE(rig.sdo_download_block(od::kProgramData, 1,
                                     test::make_container(test::make_payload(80'000, 2)))
                  .timed_out);
  rig.stop_after_bytes = 0;
  rig.sdo_abort(od::kProgramData, 1, Abort::kGeneral);
  rig.run_for(200'000);
  EXPECT_EQ(read(od::kFlashStatus), status_word(FlashStatus::kUnspecified, FlashDetail::kAborted));
  EXPECT_EQ(read(od::kProgramControl), 3U);
  reboot();
  EXPECT_EQ(rig.bootloader().boot_reason(), BootReason::kNoValidApplication);
}

// --- boot decision
// -----------------------------------------------------------------------------------

TEST_F(BootloaderTest, BootWindowStartsTheApplicationWhenNobodyCalls) {
  rig.boot();
  install(test::make_payload(5000, 1));
  rig.settings().provisioning.boot_window_ms = 200;
  reboot();
  EXPECT_EQ(rig.bootloader().boot_reason(), BootReason::kBootWindow);
  EXPECT_EQ(rig.bootloader().pending_action(), PendingAction::kNone);
  rig.run_for(199'000);
  EXPECT_EQ(rig.bootloader().pending_action(), PendingAction::kNone);
  rig.run_for(2'000);
  rig.run_for(10'000);  // the trial boot's attempt record
  EXPECT_EQ(rig.bootloader().pending_action(), PendingAction::kStartApplication);
}

TEST_F(BootloaderTest, MasterAddressingTheNodeInTheWindowHoldsIt) {
  rig.boot();
  install(test::make_payload(5000, 1));
  rig.settings().provisioning.boot_window_ms = 200;
  reboot();
  rig.run_for(50'000);
  EXPECT_EQ(read(od::kProgramControl), 0U);
  rig.run_for(1'000'000);
  EXPECT_EQ(rig.bootloader().pending_action(), PendingAction::kNone);
  EXPECT_EQ(rig.bootloader().boot_reason(), BootReason::kHeldByMaster);
  EXPECT_EQ(read(od::kRtcanbootInfo, 5), static_cast<std::uint32_t>(BootReason::kHeldByMaster));
  EXPECT_EQ(write(od::kProgramControl, 1, 1), Abort::kNone);
  rig.run_for(10'000);  // the trial boot's attempt record
  EXPECT_EQ(rig.bootloader().pending_action(), PendingAction::kStartApplication);
}

TEST_F(BootloaderTest, ValidApplicationWithoutWindowStartsSilently) {
  rig.boot();
  install(test::make_payload(5000, 1));
  rig.run_for(1000);
  const std::size_t frames = rig.history().size();
  rig.boot();
  rig.run_for(10'000);  // the trial boot's attempt record
  EXPECT_EQ(rig.bootloader().pending_action(), PendingAction::kStartApplication);
  EXPECT_EQ(rig.history().size(), frames);  // not even a boot-up message
}

TEST_F(BootloaderTest, EntryRequestKeepsTheBootloaderWithTheApplicationStillValid) {
  rig.boot();
  install(test::make_payload(5000, 1));
  rig.settings().entry_requested = true;
  reboot();
  EXPECT_EQ(rig.bootloader().boot_reason(), BootReason::kEntryRequest);
  EXPECT_EQ(rig.bootloader().pending_action(), PendingAction::kNone);
  EXPECT_EQ(read(od::kProgramControl), 0U);
  EXPECT_EQ(write(od::kProgramControl, 1, 1), Abort::kNone);
  rig.run_for(10'000);  // the trial boot's attempt record
  EXPECT_EQ(rig.bootloader().pending_action(), PendingAction::kStartApplication);
}

TEST_F(BootloaderTest, DamagedApplicationIsNotStartedAndNotOffered) {
  rig.boot();
  const Bytes payload = test::make_payload(5000, 1);
  install(payload);
  flash.contents()[mm::kAppOffset + 3000] &= 0x7F;  // a bit rots
  flash.contents()[mm::kAppOffset + 3001] &= 0x7F;
  reboot();
  EXPECT_EQ(rig.bootloader().boot_reason(), BootReason::kApplicationDamaged);
  EXPECT_EQ(rig.bootloader().pending_action(), PendingAction::kNone);
  EXPECT_EQ(read(od::kProgramControl), 3U);
  EXPECT_EQ(read(od::kSoftwareId), 0U);
  EXPECT_EQ(read(od::kFlashStatus), status_word(FlashStatus::kNoValidProgram, FlashDetail::kNone));
  EXPECT_EQ(write(od::kProgramControl, 1, 1), Abort::kDeviceState);
  install(payload);  // a new download repairs it
  EXPECT_EQ(read(od::kProgramControl), 0U);
  EXPECT_EQ(read(od::kFlashStatus), 0U);
}

// The CRC check of a large image takes about 26 ms per MiB (100 ms for the largest): after an
// entry request the stop is answered first and the check runs afterwards, a slice per pass.
TEST_F(BootloaderTest, EntryRequestAnswersTheStopFirstAndFindsDamageAfterwards) {
  rig.boot();
  install(test::make_payload(200'000, 6));
  flash.contents()[mm::kAppOffset + 199'000] ^= 0x10;  // a bit rots near the end
  rig.settings().entry_requested = true;
  rig.settings().answer_stop = true;
  reboot();
  // Sent by start(), before any pass of the loop read the payload.
  ASSERT_FALSE(rig.history().empty());
  const CanFrame answer = rig.history().back().frame;
  EXPECT_EQ(answer.id, canopen::kSdoTxBase + rig.node_id());
  EXPECT_EQ(answer.data[0], 0x60);
  EXPECT_EQ(rig.bootloader().boot_reason(), BootReason::kEntryRequest);
  // The loop's passes finish the check: the image is no longer offered.
  EXPECT_EQ(read(od::kProgramControl), 3U);
  EXPECT_EQ(rig.bootloader().boot_reason(), BootReason::kApplicationDamaged);
  EXPECT_EQ(read(od::kSoftwareId), 0U);
  EXPECT_EQ(read(od::kFlashStatus), status_word(FlashStatus::kNoValidProgram, FlashDetail::kNone));
  EXPECT_EQ(write(od::kProgramControl, 1, 1), Abort::kDeviceState);
}

// A start that arrives before the loop ran the check finishes it first, and is refused when it
// finds the image damaged.
TEST_F(BootloaderTest, StartBeforeTheDeferredCheckEndedWaitsForIt) {
  rig.boot();
  const Bytes payload = test::make_payload(200'000, 7);
  install(payload);
  rig.settings().entry_requested = true;
  const auto start_at_once = [&] {
    reboot();
    // Straight into the node, before any pass of the loop.
    rig.bootloader().on_frame(test::make_frame(canopen::kSdoRxBase + rig.node_id(),
                                               {0x2F, 0x51, 0x1F, 0x01, 0x01, 0, 0, 0}),
                              rig.now());
    const auto reply = rig.receive(canopen::kSdoTxBase + rig.node_id(), 10'000);
    EXPECT_TRUE(reply.has_value());
    return reply ? test::payload(*reply) : test::Bytes8{};
  };
  EXPECT_EQ(start_at_once()[0], 0x60);  // intact: accepted
  rig.run_for(10'000);
  EXPECT_EQ(rig.bootloader().pending_action(), PendingAction::kStartApplication);

  flash.contents()[mm::kAppOffset + 150'000] ^= 0x01;
  const test::Bytes8 refused = start_at_once();
  EXPECT_EQ(refused[0], 0x80);
  EXPECT_EQ(load_le32(refused.data() + 4), static_cast<std::uint32_t>(Abort::kDeviceState));
  EXPECT_EQ(rig.bootloader().boot_reason(), BootReason::kApplicationDamaged);
  EXPECT_EQ(rig.bootloader().pending_action(), PendingAction::kNone);
}

TEST_F(BootloaderTest, NoValidProgramStatusLastsUntilTheNextCommand) {
  rig.boot();
  ASSERT_EQ(read(od::kFlashStatus), status_word(FlashStatus::kNoValidProgram, FlashDetail::kNone));
  // A clear is a command that succeeds: from then on the status reports its result.
  EXPECT_EQ(write(od::kProgramControl, 1, 3), Abort::kNone);
  EXPECT_EQ(rig.wait_flash_idle(), 0U);
  // A device with a valid application that is held in the bootloader reports OK.
  install(test::make_payload(3000, 4));
  rig.settings().entry_requested = true;
  reboot();
  EXPECT_EQ(read(od::kFlashStatus), 0U);
}

TEST_F(BootloaderTest, NmtResetNodeBecomesAPendingReset) {
  rig.boot();
  CanFrame nmt;
  nmt.id = 0;
  nmt.dlc = 2;
  nmt.data[0] = 0x81;
  nmt.data[1] = rig.node_id();
  rig.send(nmt);
  rig.run_for(1000);
  EXPECT_EQ(rig.bootloader().pending_action(), PendingAction::kReset);
}

TEST_F(BootloaderTest, ProvisionedNodeIdAndSerialAreUsed) {
  rig.settings().provisioning.node_id = 0x21;
  rig.settings().provisioning.serial = 0xABCD;
  rig.boot();
  EXPECT_EQ(rig.history().front().frame.id, 0x721U);
  EXPECT_EQ(read(od::kIdentity, 4), 0xABCDU);
}

// Trial boot: an unconfirmed image is started at most boot_attempts times, each start recorded
// before the jump; a confirmed one starts without writing anything.
TEST_F(BootloaderTest, UnconfirmedImageIsStartedThreeTimesThenKeptOut) {
  rig.boot();
  install(test::make_payload(5000, 1));
  for (std::uint32_t attempt = 1; attempt <= 3; ++attempt) {
    reboot();
    EXPECT_TRUE(rig.bootloader().decision().trial);
    EXPECT_TRUE(rig.bootloader().trial_start());
    // The jump waits for the ATTEMPT record to be on the flash.
    EXPECT_EQ(rig.bootloader().pending_action(), PendingAction::kNone);
    rig.run_for(10'000);
    ASSERT_EQ(rig.bootloader().pending_action(), PendingAction::kStartApplication);
    EXPECT_EQ(rig.bootloader().installed().attempts, attempt);
  }
  const std::size_t frames = rig.history().size();
  reboot();
  EXPECT_EQ(rig.bootloader().boot_reason(), BootReason::kNotConfirmed);
  rig.run_for(50'000);
  EXPECT_EQ(rig.bootloader().pending_action(), PendingAction::kNone);
  EXPECT_GT(rig.history().size(), frames);  // boot-up: a master can find it
  EXPECT_EQ(read(od::kRtcanbootInfo, 5), static_cast<std::uint32_t>(BootReason::kNotConfirmed));
  EXPECT_EQ(read(od::kProgramControl), 0U);  // stopped: the program is there
  EXPECT_EQ(read(od::kFlashStatus),
            status_word(FlashStatus::kNoValidProgram, FlashDetail::kNotConfirmed));
  // A master may still insist: one more recorded attempt.
  EXPECT_EQ(write(od::kProgramControl, 1, 1), Abort::kNone);
  rig.run_for(10'000);
  EXPECT_EQ(rig.bootloader().pending_action(), PendingAction::kStartApplication);
  EXPECT_EQ(rig.bootloader().installed().attempts, 4U);
  // A new image starts its own trial.
  reboot();
  install(test::make_payload(6000, 2), 2);
  EXPECT_EQ(read(od::kFlashStatus), 0U);
  EXPECT_EQ(rig.bootloader().installed().attempts, 0U);
  reboot();
  rig.run_for(10'000);
  EXPECT_EQ(rig.bootloader().pending_action(), PendingAction::kStartApplication);
}

TEST_F(BootloaderTest, ConfirmedImageStartsAtOnceAndWritesNothing) {
  rig.boot();
  install(test::make_payload(5000, 1));
  reboot();
  rig.run_for(10'000);
  ASSERT_EQ(rig.bootloader().pending_action(), PendingAction::kStartApplication);
  // What the application kit does once the application runs.
  journal::InstallJournal journal(flash);
  journal.load();
  ASSERT_TRUE(journal.append_confirm());
  for (int i = 0; i < 100 && journal.busy(); ++i) {
    flash.set_now(flash.busy_until());
    journal.poll();
  }
  ASSERT_FALSE(journal.failed());
  for (int boot = 0; boot < 5; ++boot) {
    const std::uint32_t programs = flash.programs();
    reboot();
    EXPECT_FALSE(rig.bootloader().trial_start());
    EXPECT_EQ(rig.bootloader().pending_action(), PendingAction::kStartApplication);
    EXPECT_EQ(flash.programs(), programs);
  }
}

TEST_F(BootloaderTest, TrialBootOffStartsEveryCommittedImage) {
  rig.settings().provisioning.boot_attempts = kTrialBootOff;
  rig.boot();
  install(test::make_payload(5000, 1));
  for (int boot = 0; boot < 5; ++boot) {
    const std::uint32_t programs = flash.programs();
    reboot();
    EXPECT_FALSE(rig.bootloader().decision().trial);
    EXPECT_EQ(rig.bootloader().pending_action(), PendingAction::kStartApplication);
    EXPECT_EQ(flash.programs(), programs);
  }
}

// --- the listen window (the default boot window at power-on, docs/trial-boot.md)

class BootloaderListenWindow : public BootloaderTest {
 protected:
  // A valid application installed, then a cold boot with the default listen window; returns the
  // number of frames the node had sent before that boot.
  std::size_t boot_with_listen_window() {
    rig.boot();
    install(test::make_payload(5000, 1));
    rig.run_for(1000);
    const std::size_t frames = rig.history().size();
    rig.settings().provisioning.listen_window_ms = kDefaultListenWindowMs;
    rig.boot();
    return frames;
  }
  static constexpr Micros kWindow = Micros{kDefaultListenWindowMs} * 1000;
};

TEST_F(BootloaderListenWindow, WithoutARequestTheApplicationStartsSilentlyAfterTheWindow) {
  const std::size_t frames = boot_with_listen_window();
  const Micros booted = rig.now();
  EXPECT_EQ(rig.bootloader().next_deadline(), booted + kWindow);
  rig.run_until(booted + kWindow - 1);
  EXPECT_EQ(rig.bootloader().pending_action(), PendingAction::kNone);
  EXPECT_EQ(rig.bootloader().installed().attempts, 0U);  // not counted yet
  rig.run_for(10'000);  // the window's end, then the trial boot's attempt record
  EXPECT_EQ(rig.bootloader().pending_action(), PendingAction::kStartApplication);
  EXPECT_EQ(rig.bootloader().installed().attempts, 1U);
  EXPECT_EQ(rig.history().size(), frames);  // not even a boot-up message
}

TEST_F(BootloaderListenWindow, AnSdoRequestInsideTheWindowIsAnsweredAfterABootUpAndHoldsTheNode) {
  const std::size_t frames = boot_with_listen_window();
  rig.run_for(kWindow - 15'000);
  EXPECT_EQ(rig.history().size(), frames);
  // 0x1F51:1 = 0 (stop program): what `rtcanboot stop --catch` repeats.
  EXPECT_EQ(write(od::kProgramControl, 1, 0), Abort::kNone);
  ASSERT_GE(rig.history().size(), frames + 2);
  EXPECT_EQ(rig.history()[frames].frame.id, 0x705U);  // the boot-up first
  EXPECT_EQ(rig.history()[frames].frame.data[0], 0x00);
  EXPECT_EQ(rig.history()[frames + 1].frame.id, 0x585U);  // then the answer
  EXPECT_EQ(rig.history()[frames + 1].frame.data[0], 0x60);
  EXPECT_EQ(rig.bootloader().boot_reason(), BootReason::kHeldByMaster);
  rig.run_for(2'000'000);
  EXPECT_EQ(rig.bootloader().pending_action(), PendingAction::kNone);
  EXPECT_EQ(read(od::kRtcanbootInfo, 5), static_cast<std::uint32_t>(BootReason::kHeldByMaster));
  EXPECT_EQ(rig.bootloader().installed().attempts, 0U);  // a held boot is no attempt
  // Until it is told to start the program.
  EXPECT_EQ(write(od::kProgramControl, 1, 1), Abort::kNone);
  rig.run_for(10'000);
  EXPECT_EQ(rig.bootloader().pending_action(), PendingAction::kStartApplication);
}

TEST_F(BootloaderListenWindow, OnlyFramesThatNameTheNodeAreEntryRequests) {
  const std::size_t frames = boot_with_listen_window();
  rig.send(test::make_frame(0x000, {0x80, 0x00}));                       // broadcast NMT
  rig.send(test::make_frame(0x000, {0x80, 0x06}));                       // NMT for another node
  rig.send(test::make_frame(0x606, {0x40, 0x00, 0x10, 0, 0, 0, 0, 0}));  // SDO to node 6
  rig.send(test::make_frame(0x605, {0x40, 0x00, 0x10, 0, 0, 0, 0}));     // DLC 7
  rig.send(test::make_frame(lss::kMasterCobId, {0x04, 0x01, 0, 0, 0, 0, 0, 0}));  // LSS
  rig.run_for(10'000);
  EXPECT_EQ(rig.history().size(), frames);
  // NMT enter pre-operational naming node 5.
  rig.send(test::make_frame(0x000, {0x80, 0x05}));
  rig.run_for(kWindow);
  ASSERT_EQ(rig.history().size(), frames + 1);
  EXPECT_EQ(rig.history()[frames].frame.id, 0x705U);
  EXPECT_EQ(rig.bootloader().pending_action(), PendingAction::kNone);
  EXPECT_EQ(rig.bootloader().boot_reason(), BootReason::kHeldByMaster);
}

// A CiA 302-2 master that powers up with the node reads 0x1000/0x1018 and sends NMT start without
// waiting for a boot-up: none of that may keep the node in its bootloader.
TEST_F(BootloaderListenWindow, ReadsAndNmtStartDoNotHoldTheNode) {
  const std::size_t frames = boot_with_listen_window();
  rig.send(test::make_frame(0x605, {0x40, 0x00, 0x10, 0, 0, 0, 0, 0}));        // upload 0x1000
  rig.send(test::make_frame(0x605, {0x40, 0x18, 0x10, 1, 0, 0, 0, 0}));        // upload 0x1018:1
  rig.send(test::make_frame(0x605, {0x2F, 0x17, 0x10, 0, 0xE8, 0x03, 0, 0}));  // write 0x1017
  rig.send(test::make_frame(0x000, {0x01, 0x05}));                             // NMT start node 5
  rig.run_for(kWindow + 10'000);
  EXPECT_EQ(rig.history().size(), frames);  // nothing answered
  EXPECT_EQ(rig.bootloader().pending_action(), PendingAction::kStartApplication);
}

// A block download of a container (what a master that skips the stop and the clear sends first)
// holds it like the stop does.
TEST_F(BootloaderListenWindow, AProgramDownloadHoldsTheNode) {
  const std::size_t frames = boot_with_listen_window();
  rig.send(test::make_frame(0x605, {0xC6, 0x50, 0x1F, 0x01, 0x00, 0x10, 0, 0}));
  ASSERT_GE(rig.history().size(), frames + 2);
  EXPECT_EQ(rig.history()[frames].frame.id, 0x705U);
  EXPECT_EQ(rig.history()[frames + 1].frame.data[0] & 0xE0, 0xA0);  // block download response
  EXPECT_EQ(rig.bootloader().boot_reason(), BootReason::kHeldByMaster);
}

TEST_F(BootloaderListenWindow, AnAnnouncedBootWindowReplacesIt) {
  rig.boot();
  install(test::make_payload(5000, 1));
  rig.settings().provisioning.listen_window_ms = kDefaultListenWindowMs;
  rig.settings().provisioning.boot_window_ms = 200;
  reboot();
  EXPECT_EQ(rig.history().back().frame.id, 0x705U);  // boot-up at once
  rig.run_for(150'000);
  EXPECT_EQ(rig.bootloader().pending_action(), PendingAction::kNone);
  rig.run_for(60'000);
  EXPECT_EQ(rig.bootloader().pending_action(), PendingAction::kStartApplication);
}

TEST_F(BootloaderListenWindow, AnEntryRequestFromTheApplicationSkipsIt) {
  boot_with_listen_window();
  rig.settings().entry_requested = true;
  reboot();
  EXPECT_EQ(rig.history().back().frame.id, 0x705U);
  EXPECT_EQ(rig.bootloader().boot_reason(), BootReason::kEntryRequest);
}

TEST_F(BootloaderTest, AttemptThatCannotBeRecordedKeepsTheBootloader) {
  rig.boot();
  install(test::make_payload(5000, 1));
  rig.run_for(1000);
  flash.fail_operation_at(1);  // the ATTEMPT page program
  rig.boot();
  rig.run_for(20'000);
  EXPECT_EQ(rig.bootloader().pending_action(), PendingAction::kNone);
  EXPECT_EQ(read(od::kFlashStatus),
            status_word(FlashStatus::kWriteError, FlashDetail::kJournalFailed));
  // Its own boot reason: not "did not confirm" (the image was never started).
  EXPECT_EQ(rig.bootloader().boot_reason(), BootReason::kAttemptNotRecorded);
  EXPECT_EQ(read(od::kRtcanbootInfo, 5),
            static_cast<std::uint32_t>(BootReason::kAttemptNotRecorded));
  EXPECT_EQ(read(od::kProgramControl), 0U);  // stopped: the image is still there
}

TEST_F(BootloaderTest, BootWindowRecordsTheAttemptOnlyWhenItStarts) {
  rig.boot();
  install(test::make_payload(5000, 1));
  rig.settings().provisioning.boot_window_ms = 100;
  reboot();
  rig.run_for(50'000);
  EXPECT_EQ(read(od::kProgramControl), 0U);  // held by the master
  reboot();
  rig.run_for(150'000);
  EXPECT_EQ(rig.bootloader().pending_action(), PendingAction::kStartApplication);
  EXPECT_EQ(rig.bootloader().installed().attempts, 1U);  // the held boot did not count
}

TEST(BootDecision, VectorTableSanity) {
  const std::uint32_t app = mm::kAppAddress;
  EXPECT_TRUE(vector_table_sane(0x2002'0000, app + 0x201, 0x1000));
  EXPECT_TRUE(vector_table_sane(0x2020'1000, app + 0x201, 0x1000));    // OCRAM
  EXPECT_TRUE(vector_table_sane(0x202C'0000, app + 0x201, 0x1000));    // top of OCRAM
  EXPECT_FALSE(vector_table_sane(0x2000'0000, app + 0x201, 0x1000));   // empty stack
  EXPECT_FALSE(vector_table_sane(0x2002'0004, app + 0x201, 0x1000));   // past DTCM
  EXPECT_FALSE(vector_table_sane(0x2001'0002, app + 0x201, 0x1000));   // unaligned
  EXPECT_FALSE(vector_table_sane(0x7002'0000, app + 0x201, 0x1000));   // SP in flash
  EXPECT_FALSE(vector_table_sane(0x2002'0000, app + 0x200, 0x1000));   // no Thumb bit
  EXPECT_FALSE(vector_table_sane(0x2002'0000, app + 0x1001, 0x1000));  // past the payload
  EXPECT_FALSE(vector_table_sane(0x2002'0000, mm::kFlashBase + 0x1001, 0x1000));  // bootloader
  EXPECT_FALSE(vector_table_sane(0xFFFF'FFFF, 0xFFFF'FFFF, 0x1000));              // erased flash
}

// --- worst-case flash timing
// ----------------------------------------------------------------------

TEST_F(BootloaderTest, AnswersAtOnceWhileALongEraseRuns) {
  flash.set_timing(test::NorTiming::maximum());
  rig.boot();
  std::fill_n(flash.contents().begin() + mm::kAppOffset, 0x40000, 0x00);
  EXPECT_EQ(write(od::kProgramControl, 1, 3), Abort::kNone);
  rig.run_for(10'000);  // a 2 s block erase is running now
  ASSERT_TRUE(flash.busy());
  const Micros before = rig.now();
  // Nothing was installed, so the clear had no REVOKE to write: it is done, the erase runs on.
  EXPECT_EQ(read(od::kFlashStatus), 0U);
  EXPECT_LT(rig.now() - before, 1'000U);  // request and answer: two frames on the bus
  EXPECT_TRUE(flash.busy());
}

// A segmented download paces the client too: while a 2 s block erase keeps the ring full, each
// segment is still confirmed within max_ack_hold (from the sink's reserve), never after the erase.
TEST_F(BootloaderTest, SegmentedDownloadAtWorstCaseTimingAnswersWithin100Ms) {
  flash.set_timing(test::NorTiming::maximum());
  std::fill_n(flash.contents().begin() + mm::kAppOffset, 0x40000, 0x00);  // every block erases
  rig.boot();
  const Bytes payload = test::make_payload(150'000, 9);
  rig.sdo_timeout = 100'000;  // Lely's default
  const auto result =
      rig.sdo_download_segmented(od::kProgramData, 1, test::make_container(payload));
  ASSERT_TRUE(result.ok()) << std::hex << static_cast<std::uint32_t>(result.abort);
  EXPECT_LE(rig.max_response_delay(), 100'000U);
  // The flash, not the bus, set the pace: the ring ran full behind the first 2 s erase.
  EXPECT_GE(rig.max_response_delay(), 50'000U);
  ASSERT_EQ(rig.wait_flash_idle(), 0U);
  EXPECT_TRUE(app_in_flash(payload));
}

TEST_F(BootloaderTest, WorstCaseFlashTimingNeverHitsTheSdoTimeout) {
  flash.set_timing(test::NorTiming::maximum());
  std::fill_n(flash.contents().begin() + mm::kAppOffset, 0x60000, 0x00);  // every block erases
  rig.boot();
  const Bytes payload = test::make_payload(300'000, 5);
  rig.sdo_timeout = 500'000;  // stricter than the usual 1 s
  const auto result = rig.sdo_download_block(od::kProgramData, 1, test::make_container(payload));
  ASSERT_TRUE(result.ok()) << std::hex << static_cast<std::uint32_t>(result.abort);
  EXPECT_LE(rig.max_response_delay(), 100'000U);  // issue 12: every answer within 100 ms
  ASSERT_EQ(rig.wait_flash_idle(), 0U);
  EXPECT_TRUE(app_in_flash(payload));
}

// A bootloader built with a key record (RFC 8032 TEST 1's public key): through the SDO server,
// a container signed by that key is installed; an unsigned one and one with a bad signature are
// aborted with 0x0800_0020 at their header, 0x1F57 says why (status 65), nothing is written and
// the installed image stays valid and offered (0x1F51 stopped, 0x1F56 unchanged).
class BootloaderWithKey : public ::testing::Test {
 protected:
  static KeyRecord test1_key() {
    KeyRecord record;
    const Bytes key =
        test::from_hex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
    std::copy(key.begin(), key.end(), record.public_key);
    return record;
  }
  static BootloaderSettings settings_with(const KeyRecord* key) {
    BootloaderSettings settings = test::test_settings();
    settings.provisioning.listen_window_ms = 0;
    settings.key_record = key;
    return settings;
  }
  static Bytes signed_vector() {
    std::ifstream file(std::string(RTCANBOOT_SOURCE_DIR) + "/tests/vectors/container_signed.bin",
                       std::ios::binary);
    return Bytes(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
  }
  std::uint32_t read(std::uint16_t index, std::uint8_t sub = 1) {
    const auto result = rig.sdo_read(index, sub);
    EXPECT_TRUE(result.ok());
    return result.value;
  }

  KeyRecord key = test1_key();
  NorFlashFake flash{test::NorTiming::typical()};
  CoreRig rig{flash, settings_with(&key)};
};

TEST_F(BootloaderWithKey, SignedIsInstalledUnsignedAndForgedAreRefusedAtTheHeader) {
  test::fail_on_violation(flash);
  rig.boot();
  const Bytes good = signed_vector();
  ASSERT_EQ(good.size(), image::kSignedHeaderLength + 64U);
  const auto installed = rig.sdo_download_block(od::kProgramData, 1, good);
  ASSERT_TRUE(installed.ok()) << std::hex << static_cast<std::uint32_t>(installed.abort);
  ASSERT_EQ(rig.wait_flash_idle(), 0U);
  const std::uint32_t good_crc = load_le32(good.data() + 0x20);
  EXPECT_EQ(read(od::kSoftwareId), good_crc);
  const std::uint32_t ops = flash.mutating_ops();

  const auto unsigned_result = rig.sdo_download_block(
      od::kProgramData, 1, test::make_container(test::make_payload(2000, 4)));
  EXPECT_EQ(unsigned_result.abort, Abort::kCannotStore);
  EXPECT_EQ(read(od::kFlashStatus),
            status_word(FlashStatus::kNotAuthorised, FlashDetail::kSignatureMissing));

  Bytes forged = good;
  store_le32(forged.data() + 0x10, 0x0009'0000);  // image version changed after signing
  store_le32(forged.data() + image::kSignedHeaderLength - 4,
             crc32(0, forged.data(), image::kSignedHeaderLength - 4U));
  const auto forged_result = rig.sdo_download_segmented(od::kProgramData, 1, forged);
  EXPECT_EQ(forged_result.abort, Abort::kCannotStore);
  EXPECT_EQ(read(od::kFlashStatus),
            status_word(FlashStatus::kNotAuthorised, FlashDetail::kBadSignature));

  rig.run_for(100'000);
  EXPECT_EQ(flash.mutating_ops(), ops) << "a refused container wrote to the flash";
  EXPECT_EQ(read(od::kProgramControl), 0U);  // stopped: a valid program is installed
  EXPECT_EQ(read(od::kSoftwareId), good_crc);
  EXPECT_TRUE(rig.bootloader().installed().valid);
}

// Lock-down (docs/security.md): with a key and a provisioned hold limit, a node held in its
// bootloader by an entry request starts its valid application once nothing addressed it for that
// long; each request addressed to it starts the time again. Without a limit it stays.
TEST_F(BootloaderWithKey, AHeldNodeStartsItsApplicationAfterTheHoldLimit) {
  rig.boot();
  ASSERT_TRUE(rig.sdo_download_block(od::kProgramData, 1, signed_vector()).ok());
  ASSERT_EQ(rig.wait_flash_idle(), 0U);
  rig.settings().entry_requested = true;
  rig.settings().provisioning.hold_limit_s = 0;
  rig.boot();
  EXPECT_EQ(rig.bootloader().boot_reason(), canopen::BootReason::kEntryRequest);
  rig.run_for(3'000'000);
  EXPECT_EQ(rig.bootloader().pending_action(), PendingAction::kNone) << "no limit: held";

  rig.settings().provisioning.hold_limit_s = 1;
  rig.boot();
  rig.run_for(900'000);
  EXPECT_EQ(rig.bootloader().pending_action(), PendingAction::kNone);
  EXPECT_EQ(read(od::kSoftwareId), load_le32(signed_vector().data() + 0x20));  // addressed again
  rig.run_for(900'000);
  EXPECT_EQ(rig.bootloader().pending_action(), PendingAction::kNone);
  rig.run_for(200'000);
  EXPECT_EQ(rig.bootloader().pending_action(), PendingAction::kStartApplication);
}

// Without a key the limit does not apply: the node behaves as before (held until told).
TEST(BootloaderHoldLimit, WithoutAKeyAHeldNodeStays) {
  NorFlashFake flash{test::NorTiming::typical()};
  BootloaderSettings settings = test::test_settings();
  settings.provisioning.listen_window_ms = 0;
  CoreRig rig{flash, settings};
  rig.boot();
  ASSERT_TRUE(
      rig.sdo_download_block(od::kProgramData, 1, test::make_container(test::make_payload(2000, 4)))
          .ok());
  ASSERT_EQ(rig.wait_flash_idle(), 0U);
  rig.settings().entry_requested = true;
  rig.settings().provisioning.hold_limit_s = 1;
  rig.boot();
  rig.run_for(3'000'000);
  EXPECT_EQ(rig.bootloader().pending_action(), PendingAction::kNone);
}

}  // namespace
}  // namespace rtcanboot
