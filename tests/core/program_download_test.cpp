// ProgramDownload through its own interfaces (DownloadSink / ProgramControl), without the SDO
// server: chunking, busy states, cancel, journal and verify failures.
#include "rtcanboot/program_download.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>
#include <vector>

#include "image_builder.hpp"
#include "nor_flash_fake.hpp"
#include "rtcanboot/bytes.hpp"
#include "rtcanboot/flash_guard.hpp"
#include "rtcanboot/hash.hpp"
#include "rtcanboot/key_record.hpp"
#include "rtcanboot/memory_map.hpp"
#include "strict_flash.hpp"
#include "test_vectors.hpp"

namespace rtcanboot {
namespace {

using canopen::Abort;
using canopen::FlashDetail;
using canopen::FlashStatus;
namespace mm = memory_map;
using Bytes = std::vector<std::uint8_t>;

class ProgramDownloadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    test::fail_on_violation(flash);
    journal.load();
  }

  void poll(int times = 1) {
    for (int i = 0; i < times; ++i) {
      now += 50;
      flash.set_now(now);
      download.poll();
    }
  }
  void poll_until_idle() {
    for (int i = 0; i < 1'000'000 && download.busy(); ++i) poll();
    ASSERT_FALSE(download.busy());
  }
  // Feeds `container` in pseudo-random chunks (never more than free_space()).
  Abort feed(const Bytes& container, std::uint32_t seed, std::size_t stop_at = SIZE_MAX) {
    std::uint32_t random = seed;
    std::size_t offset = 0;
    while (offset < container.size() && offset < stop_at) {
      random = random * 1103515245U + 12345U;
      std::uint32_t chunk = 1 + (random >> 16) % 900;
      chunk = std::min<std::uint32_t>(chunk, static_cast<std::uint32_t>(container.size() - offset));
      chunk = std::min(chunk, download.free_space());
      if (chunk == 0) {
        poll();
        continue;
      }
      const Abort abort = download.write(container.data() + offset, chunk);
      if (abort != Abort::kNone) return abort;
      offset += chunk;
      poll(static_cast<int>(random % 3));
    }
    return Abort::kNone;
  }
  void install(const Bytes& payload, std::uint32_t seed = 1) {
    const Bytes container = test::make_container(payload);
    ASSERT_EQ(download.begin(true, static_cast<std::uint32_t>(container.size())), Abort::kNone);
    ASSERT_EQ(feed(container, seed), Abort::kNone);
    ASSERT_EQ(download.end(), Abort::kNone);
    poll_until_idle();
    ASSERT_EQ(download.flash_status(1), 0U);
  }

  test::NorFlashFake flash{test::NorTiming::typical()};
  GuardedFlash guard{flash};
  SoftwareSha256 sha;
  Bytes ring = Bytes(6 * 1024);
  journal::InstallJournal journal{guard};
  FlashWriter writer{guard, sha, ring};
  ProgramDownload download{
      writer, journal, sha, {test::kTestVendor, test::kTestProduct, mm::kAppAddress, mm::kAppSize}};
  Micros now = 0;
};

TEST_F(ProgramDownloadTest, AnyChunkingGivesTheSameInstalledImage) {
  const Bytes payload = test::make_payload(40'000, 9);
  for (std::uint32_t seed : {1U, 2U, 77U, 1234U}) {
    install(payload, seed);
    EXPECT_TRUE(
        std::equal(payload.begin(), payload.end(), flash.contents().begin() + mm::kAppOffset));
    EXPECT_EQ(download.software_id(1), crc32(0, payload.data(), payload.size()));
    EXPECT_EQ(download.control_state(1), 0);
  }
}

TEST_F(ProgramDownloadTest, SizeNeedNotBeAnnounced) {
  const Bytes payload = test::make_payload(5'000, 3);
  const Bytes container = test::make_container(payload);
  ASSERT_EQ(download.begin(false, 0), Abort::kNone);
  ASSERT_EQ(feed(container, 5), Abort::kNone);
  ASSERT_EQ(download.end(), Abort::kNone);
  poll_until_idle();
  EXPECT_TRUE(download.valid_program());
}

TEST_F(ProgramDownloadTest, OnlySubIndexOneExists) {
  EXPECT_EQ(download.program_count(), 1);
  EXPECT_EQ(download.program_data(1), &download);
  EXPECT_EQ(download.program_data(2), nullptr);
  EXPECT_EQ(download.control(2, 1), Abort::kNoSubIndex);
}

TEST_F(ProgramDownloadTest, WhileFinishingNothingElseCanStart) {
  const Bytes container = test::make_container(test::make_payload(30'000, 3));
  ASSERT_EQ(download.begin(true, static_cast<std::uint32_t>(container.size())), Abort::kNone);
  ASSERT_EQ(feed(container, 3), Abort::kNone);
  ASSERT_EQ(download.end(), Abort::kNone);
  ASSERT_TRUE(download.busy());
  EXPECT_EQ(download.flash_status(1), 1U);
  EXPECT_EQ(download.begin(true, static_cast<std::uint32_t>(container.size())),
            Abort::kDeviceState);
  EXPECT_EQ(download.control(1, 3), Abort::kDeviceState);
  EXPECT_EQ(download.control(1, 1), Abort::kDeviceState);
  EXPECT_EQ(download.control(1, 0), Abort::kNone);
  poll_until_idle();
  EXPECT_TRUE(download.valid_program());
  EXPECT_EQ(download.control(1, 1), Abort::kNone);
  EXPECT_TRUE(download.take_start_request());
  EXPECT_FALSE(download.take_start_request());
}

TEST_F(ProgramDownloadTest, CancelBeforeAnyFlashWorkKeepsTheOldApplication) {
  install(test::make_payload(8'000, 1));
  const std::uint32_t ops = flash.mutating_ops();
  const Bytes container = test::make_container(test::make_payload(20'000, 2));
  ASSERT_EQ(download.begin(true, static_cast<std::uint32_t>(container.size())), Abort::kNone);
  ASSERT_EQ(download.write(container.data(), 3000), Abort::kNone);  // no poll: no flash work yet
  download.cancel(Abort::kTimeout, CancelCause::kServerAbort);
  poll_until_idle();
  EXPECT_EQ(flash.mutating_ops(), ops);
  EXPECT_TRUE(download.valid_program());
  EXPECT_EQ(download.flash_status(1), canopen::flash_status_word(false, FlashStatus::kUnspecified,
                                                                 FlashDetail::kTransferTimeout));
}

// Issue 16, defect 11: the REVOKE record went out as soon as the header was in, before the
// vector table at the start of the payload was checked, so a refused image left no valid program.
TEST_F(ProgramDownloadTest, RefusedVectorTableKeepsTheInstalledApplication) {
  install(test::make_payload(8'000, 1));
  const std::uint32_t ops = flash.mutating_ops();
  Bytes payload = test::make_payload(20'000, 2);
  payload[4] &= 0xFE;  // reset handler without the Thumb bit
  const Bytes container = test::make_container(payload);
  const std::uint32_t header_length = test::header_for(payload).header_length;
  ASSERT_EQ(download.begin(true, static_cast<std::uint32_t>(container.size())), Abort::kNone);
  // The header and then the payload byte by byte, with plenty of polls in between: nothing may
  // be written before the vector table (the first 8 payload bytes) has been checked.
  ASSERT_EQ(download.write(container.data(), header_length), Abort::kNone);
  poll(200);
  Abort abort = Abort::kNone;
  for (std::uint32_t i = 0; i < 8 && abort == Abort::kNone; ++i) {
    abort = download.write(container.data() + header_length + i, 1);
    poll(200);
  }
  EXPECT_EQ(abort, Abort::kCannotStore);
  poll_until_idle();
  EXPECT_EQ(flash.mutating_ops(), ops);
  EXPECT_EQ(download.flash_status(1),
            canopen::flash_status_word(false, FlashStatus::kDataFormatError,
                                       FlashDetail::kBadVectorTable));
  EXPECT_TRUE(download.valid_program());
  journal::InstallJournal reloaded{guard};
  reloaded.load();
  EXPECT_TRUE(reloaded.installed().valid) << "the REVOKE record was written";
}

TEST_F(ProgramDownloadTest, NoPollWorkWhileWaitingForTheVectorTable) {
  install(test::make_payload(8'000, 1));
  const Bytes container = test::make_container(test::make_payload(20'000, 2));
  const std::uint32_t header_length = test::header_for(test::make_payload(20'000, 2)).header_length;
  ASSERT_EQ(download.begin(true, static_cast<std::uint32_t>(container.size())), Abort::kNone);
  ASSERT_EQ(download.write(container.data(), header_length + 7), Abort::kNone);
  poll(50);
  EXPECT_FALSE(download.needs_poll());
  ASSERT_EQ(download.write(container.data() + header_length + 7, 1), Abort::kNone);
  EXPECT_TRUE(download.needs_poll());  // now the REVOKE may go out
  ASSERT_EQ(feed(Bytes(container.begin() + header_length + 8, container.end()), 3), Abort::kNone);
  ASSERT_EQ(download.end(), Abort::kNone);
  poll_until_idle();
  EXPECT_TRUE(download.valid_program());
}

// A download whose REVOKE went out but which ends before its first erase or program (here the
// master aborts right after the vector table) leaves the old application's bytes untouched: its
// COMMIT is written again.
TEST_F(ProgramDownloadTest, AbortAfterTheRevokeButBeforeAnyEraseReinstatesTheApplication) {
  const Bytes old_payload = test::make_payload(8'000, 1);
  install(old_payload);
  const Bytes container = test::make_container(test::make_payload(20'000, 2));
  const std::uint32_t header_length = test::header_for(test::make_payload(20'000, 2)).header_length;
  ASSERT_EQ(download.begin(true, static_cast<std::uint32_t>(container.size())), Abort::kNone);
  ASSERT_EQ(download.write(container.data(), header_length + 8), Abort::kNone);
  // Poll until the REVOKE is on the flash, not longer (the next step would be the erase).
  for (int i = 0; i < 100'000; ++i) {
    poll();
    journal::InstallJournal probe{guard};
    if (!flash.busy()) {
      probe.load();
      if (!probe.installed().valid) break;
    }
  }
  ASSERT_EQ(flash.erases(4096) + flash.erases(65536), 0U);
  download.cancel(Abort::kGeneral, CancelCause::kClientAbort);
  poll_until_idle();
  EXPECT_EQ(flash.erases(4096) + flash.erases(65536), 0U);
  EXPECT_TRUE(download.valid_program());
  journal::InstallJournal reloaded{guard};
  reloaded.load();
  EXPECT_TRUE(reloaded.installed().valid);
  EXPECT_EQ(reloaded.installed().payload_crc32, crc32(0, old_payload.data(), old_payload.size()));
  EXPECT_TRUE(std::equal(old_payload.begin(), old_payload.end(),
                         flash.contents().begin() + mm::kAppOffset));
}

TEST_F(ProgramDownloadTest, AbortAfterTheFirstEraseLeavesNoValidProgram) {
  install(test::make_payload(8'000, 1));
  const Bytes container = test::make_container(test::make_payload(20'000, 2));
  ASSERT_EQ(download.begin(true, static_cast<std::uint32_t>(container.size())), Abort::kNone);
  ASSERT_EQ(download.write(container.data(), 600), Abort::kNone);
  for (int i = 0; i < 100'000 && flash.erases(4096) + flash.erases(65536) == 0; ++i) poll();
  download.cancel(Abort::kGeneral, CancelCause::kClientAbort);
  poll_until_idle();
  EXPECT_FALSE(download.valid_program());
  journal::InstallJournal reloaded{guard};
  reloaded.load();
  EXPECT_FALSE(reloaded.installed().valid);
}

// Issue 16, defect 14: every cause that ends a download early has its own 0x1F57 code/detail
// (docs/image-format.md); before, all of them read 63/15 "aborted".
TEST_F(ProgramDownloadTest, EachCancelCauseHasItsOwnFlashStatus) {
  struct Case {
    Abort code;
    CancelCause cause;
    FlashStatus status;
    FlashDetail detail;
  };
  const Case cases[] = {
      {Abort::kCrc, CancelCause::kServerAbort, FlashStatus::kDataFormatError,
       FlashDetail::kTransferCrc},
      {Abort::kTimeout, CancelCause::kServerAbort, FlashStatus::kUnspecified,
       FlashDetail::kTransferTimeout},
      {Abort::kToggleBit, CancelCause::kServerAbort, FlashStatus::kUnspecified,
       FlashDetail::kTransferProtocol},
      {Abort::kSequenceNumber, CancelCause::kServerAbort, FlashStatus::kUnspecified,
       FlashDetail::kTransferProtocol},
      {Abort::kCommandSpecifier, CancelCause::kServerAbort, FlashStatus::kUnspecified,
       FlashDetail::kTransferProtocol},
      {Abort::kGeneral, CancelCause::kServerAbort, FlashStatus::kUnspecified,
       FlashDetail::kTransferProtocol},
      {Abort::kLengthTooHigh, CancelCause::kServerAbort, FlashStatus::kDataFormatError,
       FlashDetail::kLengthMismatch},
      {Abort::kLengthTooLow, CancelCause::kServerAbort, FlashStatus::kDataFormatError,
       FlashDetail::kLengthMismatch},
      {Abort::kGeneral, CancelCause::kClientAbort, FlashStatus::kUnspecified,
       FlashDetail::kAborted},
      {Abort::kCrc, CancelCause::kClientAbort, FlashStatus::kUnspecified, FlashDetail::kAborted},
      {Abort::kGeneral, CancelCause::kReplaced, FlashStatus::kUnspecified,
       FlashDetail::kTransferReplaced},
      {Abort::kDeviceState, CancelCause::kNmt, FlashStatus::kUnspecified,
       FlashDetail::kTransferNmt},
  };
  const Bytes container = test::make_container(test::make_payload(2'000, 2));
  for (const Case& c : cases) {
    ASSERT_EQ(download.begin(true, static_cast<std::uint32_t>(container.size())), Abort::kNone);
    ASSERT_EQ(download.write(container.data(), 300), Abort::kNone);
    download.cancel(c.code, c.cause);
    poll_until_idle();
    EXPECT_EQ(download.flash_status(1), canopen::flash_status_word(false, c.status, c.detail))
        << std::hex << static_cast<std::uint32_t>(c.code) << " cause " << static_cast<int>(c.cause);
  }
}

TEST_F(ProgramDownloadTest,
       RefusedFlashWorkKeepsTheApplicationAndAnswersEveryWriteWithAHardwareAbort) {
  install(test::make_payload(8'000, 1));
  const std::uint32_t ops = flash.mutating_ops();
  download.refuse_flash_work(FlashDetail::kFlashNotIdentified);
  download.report_boot_state();
  const std::uint32_t refused =
      canopen::flash_status_word(false, FlashStatus::kWriteError, FlashDetail::kFlashNotIdentified);
  EXPECT_EQ(download.flash_status(1), refused);
  EXPECT_EQ(download.begin(true, 20'000), Abort::kHardware);
  EXPECT_EQ(download.control(1, 3), Abort::kHardware);  // clear
  poll(10);
  EXPECT_EQ(download.flash_status(1), refused);
  EXPECT_EQ(flash.mutating_ops(), ops);
  EXPECT_TRUE(download.valid_program());
  EXPECT_EQ(download.control(1, 1), Abort::kNone);  // the installed application still starts
}

TEST_F(ProgramDownloadTest, FailedRevokeStopsBeforeAnyErase) {
  install(test::make_payload(8'000, 1));
  const Bytes old_region(flash.contents().begin() + mm::kAppOffset,
                         flash.contents().begin() + mm::kAppOffset + 8'000);
  flash.fail_operation_at(1);  // the REVOKE record
  const Bytes container = test::make_container(test::make_payload(20'000, 2));
  ASSERT_EQ(download.begin(true, static_cast<std::uint32_t>(container.size())), Abort::kNone);
  EXPECT_EQ(feed(container, 4), Abort::kHardware);
  poll_until_idle();
  EXPECT_EQ(download.flash_status(1), canopen::flash_status_word(false, FlashStatus::kWriteError,
                                                                 FlashDetail::kJournalFailed));
  EXPECT_TRUE(download.valid_program());
  EXPECT_TRUE(
      std::equal(old_region.begin(), old_region.end(), flash.contents().begin() + mm::kAppOffset));
  EXPECT_EQ(flash.erases(4096) + flash.erases(65536), 0U);
}

TEST_F(ProgramDownloadTest, ReadBackMismatchIsAVerifyFailureAndNothingIsCommitted) {
  const Bytes payload = test::make_payload(10'000, 3);
  const Bytes container = test::make_container(payload);
  ASSERT_EQ(download.begin(true, static_cast<std::uint32_t>(container.size())), Abort::kNone);
  ASSERT_EQ(feed(container, 8), Abort::kNone);
  ASSERT_EQ(download.end(), Abort::kNone);
  for (int i = 0; i < 100'000 && writer.state() != FlashWriter::State::kVerifying; ++i) poll();
  ASSERT_EQ(writer.state(), FlashWriter::State::kVerifying);
  flash.contents()[mm::kAppOffset + 9'000] ^= 0x10;  // as if a bit did not program
  poll_until_idle();
  EXPECT_EQ(download.flash_status(1), canopen::flash_status_word(false, FlashStatus::kWriteError,
                                                                 FlashDetail::kVerifyFailed));
  EXPECT_FALSE(download.valid_program());
  journal::InstallJournal reread(flash);
  reread.load();
  EXPECT_FALSE(reread.installed().valid);
}

TEST_F(ProgramDownloadTest, ClearThenStatusAndControlState) {
  install(test::make_payload(8'000, 1));
  EXPECT_EQ(download.control(1, 3), Abort::kNone);
  EXPECT_EQ(download.control(1, 3), Abort::kNone);  // repeated: still fine
  EXPECT_EQ(download.control_state(1), 3);
  EXPECT_EQ(download.software_id(1), 0U);
  EXPECT_EQ(download.flash_status(1), 1U);
  poll_until_idle();
  EXPECT_EQ(download.flash_status(1), 0U);
  EXPECT_EQ(download.control(1, 1), Abort::kDeviceState);
  EXPECT_EQ(download.control(1, 9), Abort::kValueRange);
}

TEST_F(ProgramDownloadTest, ImageFillingTheWholeRegionStopsAtTheRecordsArea) {
  std::fill_n(flash.contents().begin() + mm::kAppOffset, mm::kAppSize, 0x00);
  const Bytes payload = test::make_payload(mm::kAppSize, 4);
  install(payload, 9);
  EXPECT_TRUE(
      std::equal(payload.begin(), payload.end(), flash.contents().begin() + mm::kAppOffset));
  EXPECT_EQ(flash.erases(65536), mm::kAppSize / mm::kBlock64Size);
  EXPECT_EQ(flash.erases(4096), 0U);
  for (const auto& operation : flash.operations()) {
    const bool in_app = operation.offset >= mm::kAppOffset &&
                        operation.offset + operation.length <= mm::kRecordsOffset;
    const bool journal_page = operation.offset >= mm::kJournalOffset && !operation.erase;
    EXPECT_TRUE(in_app || journal_page) << std::hex << operation.offset;
  }
}

// --- signed containers (docs/security.md) ---------------------------------------------------
// The node holds the RFC 8032 TEST 1 public key; tests/vectors/container_signed.bin is signed by
// its secret key (security counter 5, 64-byte payload for kTestVendor/kTestProduct). Each refusal
// happens at the header, before any REVOKE or erase: the flash is not written at all, and the
// application installed before stays valid (COMMIT record intact, 0x1F56 unchanged).

KeyRecord test1_key_record(std::uint32_t min_security_counter = 0) {
  KeyRecord record;
  const Bytes key =
      test::from_hex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
  std::copy(key.begin(), key.end(), record.public_key);
  record.min_security_counter = min_security_counter;
  return record;
}

Bytes signed_container() {
  std::ifstream file(std::string(RTCANBOOT_SOURCE_DIR) + "/tests/vectors/container_signed.bin",
                     std::ios::binary);
  EXPECT_TRUE(file.good());
  return Bytes(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
}

constexpr std::uint16_t kSignedHeader = image::kSignedHeaderLength;
constexpr std::size_t kRecordAt = image::kFixedLength;

void reseal(Bytes& container) {
  store_le32(container.data() + kSignedHeader - 4, crc32(0, container.data(), kSignedHeader - 4U));
}

class SignedDownloadTest : public ProgramDownloadTest {
 protected:
  void SetUp() override {
    ProgramDownloadTest::SetUp();
    old_payload = test::make_payload(8'000, 1);
    install(old_payload);  // unsigned, before the node holds a key
    old_crc = crc32(0, old_payload.data(), old_payload.size());
  }

  // Sends `container`; expects the refusal at the header with `detail`, nothing written, and the
  // old application still installed and valid.
  void expect_refused(const Bytes& container, FlashDetail detail) {
    const std::uint32_t ops = flash.mutating_ops();
    ASSERT_EQ(download.begin(true, static_cast<std::uint32_t>(container.size())), Abort::kNone);
    EXPECT_EQ(feed(container, 7), Abort::kCannotStore);  // SDO abort 0x0800_0020
    poll_until_idle();
    EXPECT_EQ(download.flash_status(1),
              canopen::flash_status_word(false, FlashStatus::kNotAuthorised, detail));
    EXPECT_EQ(flash.mutating_ops(), ops) << "no REVOKE, no erase";
    EXPECT_TRUE(download.valid_program());
    EXPECT_EQ(download.software_id(1), old_crc);
    journal::InstallJournal reloaded{guard};
    reloaded.load();
    EXPECT_TRUE(reloaded.installed().valid);
    EXPECT_EQ(reloaded.installed().payload_crc32, old_crc);
    EXPECT_TRUE(std::equal(old_payload.begin(), old_payload.end(),
                           flash.contents().begin() + mm::kAppOffset));
  }

  void expect_installed(const Bytes& container) {
    ASSERT_EQ(download.begin(true, static_cast<std::uint32_t>(container.size())), Abort::kNone);
    ASSERT_EQ(feed(container, 3), Abort::kNone);
    ASSERT_EQ(download.end(), Abort::kNone);
    poll_until_idle();
    EXPECT_EQ(download.flash_status(1), 0U);
    EXPECT_TRUE(download.valid_program());
    EXPECT_EQ(download.software_id(1), load_le32(container.data() + 0x20));
  }

  Bytes old_payload;
  std::uint32_t old_crc = 0;
  KeyRecord key_record = test1_key_record();
};

TEST_F(SignedDownloadTest, SignedByTheNodesKeyIsInstalled) {
  download.require_signature(key_record);
  EXPECT_TRUE(download.signature_required());
  expect_installed(signed_container());
}

TEST_F(SignedDownloadTest, WithoutAKeyRecordsAreIgnoredAsBefore) {
  EXPECT_FALSE(download.signature_required());
  Bytes container = signed_container();
  container[kRecordAt + 4] = 9;  // a record version nobody knows: not looked at
  reseal(container);
  expect_installed(container);
  expect_installed(test::make_container(test::make_payload(3'000, 5)));
}

TEST_F(SignedDownloadTest, UnsignedIsRefused) {
  download.require_signature(key_record);
  expect_refused(test::make_container(test::make_payload(3'000, 5)),
                 FlashDetail::kSignatureMissing);
}

TEST_F(SignedDownloadTest, MalformedRecordsAreRefused) {
  download.require_signature(key_record);
  {
    SCOPED_TRACE("record version 2");
    Bytes container = signed_container();
    container[kRecordAt + 4] = 2;
    reseal(container);
    expect_refused(container, FlashDetail::kSignatureMalformed);
  }
  {
    SCOPED_TRACE("truncated: the record runs past the records area");
    Bytes container = signed_container();
    store_le16(container.data() + kRecordAt + 2, image::kSignatureDataLength + 4);
    reseal(container);
    expect_refused(container, FlashDetail::kSignatureMalformed);
  }
  {
    SCOPED_TRACE("record length not a multiple of 4");
    Bytes container = signed_container();
    store_le16(container.data() + kRecordAt + 2, 2);
    reseal(container);
    expect_refused(container, FlashDetail::kSignatureMalformed);
  }
}

TEST_F(SignedDownloadTest, UnknownKeyIsRefused) {
  // The node holds RFC 8032 TEST 2's key; the container is signed with TEST 1's.
  const Bytes other =
      test::from_hex("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c");
  std::copy(other.begin(), other.end(), key_record.public_key);
  download.require_signature(key_record);
  expect_refused(signed_container(), FlashDetail::kUnknownKey);
}

TEST_F(SignedDownloadTest, BadSignatureIsRefused) {
  download.require_signature(key_record);
  Bytes container = signed_container();
  container[kRecordAt + 44 + 63] ^= 0x01;  // last byte of S
  reseal(container);
  expect_refused(container, FlashDetail::kBadSignature);
}

TEST_F(SignedDownloadTest, SignatureOverOtherHeaderFieldsIsRefused) {
  download.require_signature(key_record);
  Bytes container = signed_container();
  store_le32(container.data() + 0x10, 0x0002'0000);  // image version, changed after signing
  reseal(container);
  expect_refused(container, FlashDetail::kBadSignature);
}

TEST_F(SignedDownloadTest, CounterBelowTheRecordedOneIsRefused) {
  key_record.min_security_counter = 6;  // the vector carries 5
  download.require_signature(key_record);
  expect_refused(signed_container(), FlashDetail::kCounterRollback);
  key_record.min_security_counter = 5;  // equal is accepted
  download.require_signature(key_record);
  expect_installed(signed_container());
}

TEST_F(SignedDownloadTest, ForAnotherProductIsRefusedByTheProductCheck) {
  download.require_signature(key_record);
  Bytes container = signed_container();
  store_le32(container.data() + 0x18, test::kTestProduct + 1);
  reseal(container);
  const std::uint32_t ops = flash.mutating_ops();
  ASSERT_EQ(download.begin(true, static_cast<std::uint32_t>(container.size())), Abort::kNone);
  EXPECT_EQ(feed(container, 7), Abort::kCannotStore);
  poll_until_idle();
  EXPECT_EQ(download.flash_status(1), canopen::flash_status_word(false, FlashStatus::kWrongProduct,
                                                                 FlashDetail::kProductMismatch));
  EXPECT_EQ(flash.mutating_ops(), ops);
  EXPECT_TRUE(download.valid_program());
}

TEST_F(SignedDownloadTest, DamagedKeyRecordRefusesEverything) {
  key_record.magic ^= 1;
  download.require_signature(key_record);
  expect_refused(signed_container(), FlashDetail::kUnknownKey);
  key_record = test1_key_record();
  key_record.public_key[0] = 1;  // the neutral element (small order): never a usable key
  for (int i = 1; i < 32; ++i) key_record.public_key[i] = 0;
  download.require_signature(key_record);
  expect_refused(signed_container(), FlashDetail::kUnknownKey);
}

// --- anti-rollback: the install journal's counter -------------------------------------------

// Gives the journal a COMMIT of the installed image with `counter` (as a signed COMMIT would).
void set_journal_counter(journal::InstallJournal& journal, std::uint32_t counter,
                         const std::function<void()>& step) {
  journal::InstalledImage image = journal.installed();
  image.security_counter = counter;
  ASSERT_TRUE(journal.append_commit(image));
  for (int i = 0; i < 10'000 && journal.busy(); ++i) step();
  ASSERT_EQ(journal.installed().security_counter, counter);
}

std::uint32_t reloaded_counter(FlashPort& flash) {
  journal::InstallJournal reloaded{flash};
  reloaded.load();
  return reloaded.installed().security_counter;
}

TEST_F(SignedDownloadTest, TheCommitRecordsTheCounterOfTheImage) {
  download.require_signature(key_record);
  EXPECT_EQ(download.installed().security_counter, 0U);
  expect_installed(signed_container());
  EXPECT_EQ(download.installed().security_counter, 5U);
  EXPECT_EQ(reloaded_counter(guard), 5U);
}

TEST_F(SignedDownloadTest, ACounterBelowTheJournalsIsRefused) {
  set_journal_counter(journal, 6, [this] { poll(); });
  download.require_signature(key_record);  // minimum 0: the journal's counter is the floor
  expect_refused(signed_container(), FlashDetail::kCounterRollback);
  EXPECT_EQ(reloaded_counter(guard), 6U);
}

TEST_F(SignedDownloadTest, TheJournalsCounterItselfIsAccepted) {
  set_journal_counter(journal, 5, [this] { poll(); });
  download.require_signature(key_record);
  expect_installed(signed_container());  // the same release again
  EXPECT_EQ(reloaded_counter(guard), 5U);
}

TEST_F(SignedDownloadTest, AFailedSignedDownloadRecordsNoCounter) {
  download.require_signature(key_record);
  const Bytes container = signed_container();
  flash.fail_operation_at(3);  // REVOKE, then the erase, then the program of the payload fails
  ASSERT_EQ(download.begin(true, static_cast<std::uint32_t>(container.size())), Abort::kNone);
  feed(container, 3);
  download.end();
  poll_until_idle();
  EXPECT_NE(download.flash_status(1), 0U);
  EXPECT_EQ(reloaded_counter(guard), 0U);
  EXPECT_EQ(download.installed().security_counter, 0U);
}

TEST_F(SignedDownloadTest, WithoutAKeyTheCounterIsKeptNotUsed) {
  set_journal_counter(journal, 9, [this] { poll(); });
  // A node without a key accepts what it accepted before; its commits carry the counter on.
  install(test::make_payload(3'000, 5));
  EXPECT_EQ(reloaded_counter(guard), 9U);
}

// A cut before or inside every flash operation of a signed download over an unsigned image:
// after power returns the journal holds counter 5 exactly when the signed image committed.
TEST(SignedDownloadCuts, TheCounterIsRecordedExactlyWhenItsImageCommits) {
  const Bytes old_payload = test::make_payload(8'000, 1);
  const Bytes signed_bytes = signed_container();
  const std::uint32_t signed_crc = load_le32(signed_bytes.data() + 0x20);
  for (int mode = 0; mode < 2; ++mode) {
    for (std::uint32_t cut = 1;; ++cut) {
      SCOPED_TRACE(::testing::Message() << "mode " << mode << " cut " << cut);
      test::NorFlashFake flash{test::NorTiming::typical()};
      GuardedFlash guard{flash};
      SoftwareSha256 sha;
      Bytes ring(6 * 1024);
      journal::InstallJournal journal{guard};
      FlashWriter writer{guard, sha, ring};
      ProgramDownload download{
          writer,
          journal,
          sha,
          {test::kTestVendor, test::kTestProduct, mm::kAppAddress, mm::kAppSize}};
      journal.load();
      Micros now = 0;
      auto poll = [&] {
        now += 50;
        flash.set_now(now);
        download.poll();
      };
      auto send = [&](const Bytes& container) {
        if (download.begin(true, static_cast<std::uint32_t>(container.size())) != Abort::kNone)
          return;
        std::size_t offset = 0;
        while (offset < container.size() && !flash.power_lost()) {
          const std::uint32_t chunk = std::min<std::uint32_t>(
              {512U, static_cast<std::uint32_t>(container.size() - offset), download.free_space()});
          if (chunk == 0) {
            poll();
            continue;
          }
          if (download.write(container.data() + offset, chunk) != Abort::kNone) return;
          offset += chunk;
          poll();
        }
        if (!flash.power_lost()) download.end();
        for (int i = 0; i < 1'000'000 && download.busy() && !flash.power_lost(); ++i) poll();
      };
      send(test::make_container(old_payload));
      ASSERT_EQ(download.flash_status(1), 0U);
      const KeyRecord key = test1_key_record();
      download.require_signature(key);
      flash.cut_power_at(cut, mode == 0 ? test::NorFlashFake::Cut::kBefore
                                        : test::NorFlashFake::Cut::kMidOperation);
      send(signed_bytes);
      const bool cut_happened = flash.power_lost();
      flash.power_on();
      journal::InstallJournal rebooted{guard};
      rebooted.load();
      const journal::InstalledImage state = rebooted.installed();
      const bool signed_committed = state.valid && state.payload_crc32 == signed_crc;
      EXPECT_EQ(state.security_counter, signed_committed ? 5U : 0U);
      if (!cut_happened) {
        EXPECT_TRUE(signed_committed);
        break;
      }
      ASSERT_LT(cut, 200U);
    }
  }
}

}  // namespace
}  // namespace rtcanboot
