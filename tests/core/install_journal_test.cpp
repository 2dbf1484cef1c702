// The install journal: write-once records, torn records skipped, the sector switch.
#include "rtcanboot/install_journal.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "nor_flash_fake.hpp"
#include "rtcanboot/hash.hpp"
#include "rtcanboot/memory_map.hpp"
#include "strict_flash.hpp"

namespace rtcanboot::journal {
namespace {

using test::NorFlashFake;

constexpr std::uint32_t kSector0 = memory_map::kJournalOffset;
constexpr std::uint32_t kSector1 = memory_map::kJournalOffset + memory_map::kSectorSize;

InstalledImage image(std::uint32_t n) {
  InstalledImage result;
  result.valid = true;
  result.payload_length = 1000 + n;
  result.payload_crc32 = 0xC0DE'0000 + n;
  result.image_version = n;
  for (std::uint32_t i = 0; i < 32; ++i)
    result.payload_sha256[i] = static_cast<std::uint8_t>(n + i);
  return result;
}

class JournalTest : public ::testing::Test {
 protected:
  void SetUp() override { test::fail_on_violation(flash); }

  // A record of `type` for image(n) with sequence `seq`, written straight into the flash.
  void put(std::uint32_t offset, RecordType type, std::uint32_t seq, std::uint32_t n) {
    Record record;
    record.type = type;
    record.sequence = seq;
    const InstalledImage img = image(n);
    record.payload_length = img.payload_length;
    record.payload_crc32 = img.payload_crc32;
    record.image_version = img.image_version;
    std::memcpy(record.payload_sha256, img.payload_sha256, 32);
    std::uint8_t encoded[kRecordSize];
    encode_record(record, encoded);
    flash.load(offset, encoded, kRecordSize);
  }
  // Runs the append to its end, time advancing with the flash.
  void drive(InstallJournal& journal) {
    for (int i = 0; i < 1000 && journal.busy() && !flash.power_lost(); ++i) {
      flash.set_now(flash.busy_until());
      journal.poll();
    }
  }
  void commit(InstallJournal& journal, std::uint32_t n) {
    ASSERT_TRUE(journal.append_commit(image(n)));
    drive(journal);
    ASSERT_FALSE(journal.failed());
  }
  void revoke(InstallJournal& journal) {
    ASSERT_TRUE(journal.append_revoke());
    drive(journal);
    ASSERT_FALSE(journal.failed());
  }
  InstalledImage reload() {
    InstallJournal fresh(flash);
    fresh.load();
    return fresh.installed();
  }
  std::vector<std::uint8_t> bytes(std::uint32_t offset, std::uint32_t length) {
    return {flash.contents().begin() + offset, flash.contents().begin() + offset + length};
  }

  NorFlashFake flash{test::NorTiming::typical()};
};

void expect_image(const InstalledImage& actual, std::uint32_t n) {
  const InstalledImage expected = image(n);
  EXPECT_TRUE(actual.valid);
  EXPECT_EQ(actual.payload_length, expected.payload_length);
  EXPECT_EQ(actual.payload_crc32, expected.payload_crc32);
  EXPECT_EQ(actual.image_version, expected.image_version);
  EXPECT_EQ(0, std::memcmp(actual.payload_sha256, expected.payload_sha256, 32));
}

TEST(JournalRecord, EncodeDecodeRoundTripAndEveryBitFlipIsDetected) {
  Record record;
  record.type = RecordType::kCommit;
  record.sequence = 77;
  record.payload_length = 123456;
  record.payload_crc32 = 0xDEADBEEF;
  record.image_version = 9;
  for (std::uint32_t i = 0; i < 32; ++i)
    record.payload_sha256[i] = static_cast<std::uint8_t>(i * 3);
  std::uint8_t bytes[kRecordSize];
  encode_record(record, bytes);
  Record out;
  ASSERT_TRUE(decode_record(bytes, out));
  EXPECT_EQ(out.type, RecordType::kCommit);
  EXPECT_EQ(out.sequence, 77U);
  EXPECT_EQ(out.payload_length, 123456U);
  EXPECT_EQ(out.payload_crc32, 0xDEADBEEFU);
  EXPECT_EQ(out.image_version, 9U);
  EXPECT_EQ(0, std::memcmp(out.payload_sha256, record.payload_sha256, 32));
  // Without a security counter: format 1, its 64 bytes as before, the rest of the page erased.
  EXPECT_EQ(bytes[4], kRecordFormat);
  EXPECT_EQ(out.security_counter, 0U);
  for (std::uint32_t i = kRecordSizeV1; i < kRecordSize; ++i) EXPECT_EQ(bytes[i], 0xFF) << i;
  for (std::uint32_t bit = 0; bit < kRecordSizeV1 * 8; ++bit) {
    std::uint8_t flipped[kRecordSize];
    std::memcpy(flipped, bytes, kRecordSize);
    flipped[bit / 8] ^= static_cast<std::uint8_t>(1U << (bit % 8));
    EXPECT_FALSE(decode_record(flipped, out)) << bit;
  }
  std::uint8_t blank[kRecordSize];
  std::memset(blank, 0xFF, sizeof blank);
  EXPECT_FALSE(decode_record(blank, out));
}

TEST(JournalRecord, ASecurityCounterMakesAFormat2RecordWhoseEveryBitIsChecked) {
  Record record;
  record.type = RecordType::kRevoke;
  record.sequence = 3;
  record.security_counter = 0x0102'0304;
  std::uint8_t bytes[kRecordSize];
  encode_record(record, bytes);
  EXPECT_EQ(bytes[4], kRecordFormatWithCounter);
  EXPECT_EQ(bytes[0x3C], 0x04);
  Record out;
  ASSERT_TRUE(decode_record(bytes, out));
  EXPECT_EQ(out.type, RecordType::kRevoke);
  EXPECT_EQ(out.security_counter, 0x0102'0304U);
  EXPECT_EQ(state_after(out).security_counter, 0x0102'0304U) << "a REVOKE keeps the counter";
  EXPECT_FALSE(state_after(out).valid);
  for (std::uint32_t bit = 0; bit < kRecordSize * 8; ++bit) {
    std::uint8_t flipped[kRecordSize];
    std::memcpy(flipped, bytes, kRecordSize);
    flipped[bit / 8] ^= static_cast<std::uint8_t>(1U << (bit % 8));
    EXPECT_FALSE(decode_record(flipped, out)) << bit;
  }
  // A format-2 record with a counter of 0 is never written: foreign, even with a good CRC.
  std::memset(bytes + 0x3C, 0, 4);
  const std::uint32_t crc = crc32(0, bytes, kRecordSize - 4);
  std::memcpy(bytes + kRecordSize - 4, &crc, 4);
  EXPECT_FALSE(decode_record(bytes, out));
}

TEST_F(JournalTest, BlankJournalMeansNoApplication) {
  InstallJournal journal(flash);
  journal.load();
  EXPECT_FALSE(journal.installed().valid);
  EXPECT_EQ(journal.last_sequence(), 0U);
  EXPECT_EQ(journal.active_sector(), 0U);
  EXPECT_EQ(journal.next_slot(), 0U);
}

TEST_F(JournalTest, CommitIsDurableAndRevokeCancelsIt) {
  InstallJournal journal(flash);
  journal.load();
  commit(journal, 1);
  expect_image(journal.installed(), 1);
  expect_image(reload(), 1);
  revoke(journal);
  EXPECT_FALSE(journal.installed().valid);
  EXPECT_FALSE(reload().valid);
  commit(journal, 2);
  expect_image(reload(), 2);
  EXPECT_EQ(journal.last_sequence(), 3U);
  // One record per page, nothing else touched.
  EXPECT_EQ(flash.programs(), 3U);
  EXPECT_EQ(flash.erases(4096), 0U);
}

TEST_F(JournalTest, RecordsAreNeverRewritten) {
  InstallJournal journal(flash);
  journal.load();
  commit(journal, 1);
  const auto first = bytes(kSector0, 256);
  revoke(journal);
  commit(journal, 2);
  EXPECT_EQ(bytes(kSector0, 256), first);
}

TEST_F(JournalTest, FullSectorContinuesInTheOtherWithoutLosingState) {
  InstallJournal journal(flash);
  journal.load();
  for (std::uint32_t n = 1; n <= kSlotsPerSector; ++n) commit(journal, n);
  EXPECT_EQ(journal.next_slot(), kSlotsPerSector);
  const auto old_sector = bytes(kSector0, memory_map::kSectorSize);
  commit(journal, 100);  // sector 1 is blank: no erase needed
  EXPECT_EQ(journal.active_sector(), 1U);
  EXPECT_EQ(journal.next_slot(), 1U);
  EXPECT_EQ(flash.erases(4096), 0U);
  EXPECT_EQ(bytes(kSector0, memory_map::kSectorSize), old_sector);
  expect_image(reload(), 100);
  for (std::uint32_t n = 101; n < 101 + kSlotsPerSector - 1; ++n) commit(journal, n);
  // Back to sector 0, which must be erased first; sector 1 keeps the state meanwhile.
  const auto before = bytes(kSector1, memory_map::kSectorSize);
  commit(journal, 200);
  EXPECT_EQ(flash.erases(4096), 1U);
  EXPECT_EQ(journal.active_sector(), 0U);
  EXPECT_EQ(bytes(kSector1, memory_map::kSectorSize), before);
  expect_image(reload(), 200);
  InstallJournal again(flash);
  again.load();
  EXPECT_EQ(again.active_sector(), 0U);
  EXPECT_EQ(again.next_slot(), 1U);
  EXPECT_EQ(again.last_sequence(), 2 * kSlotsPerSector + 1);
}

TEST_F(JournalTest, HighestSequenceDecidesWhereverItIs) {
  // Sector 1 slot 0 holds seq 5 (COMMIT 5); sector 0 holds seq 3 and 4.
  put(kSector0, RecordType::kCommit, 3, 3);
  put(kSector0 + 256, RecordType::kRevoke, 4, 0);
  put(kSector1, RecordType::kCommit, 5, 5);
  InstallJournal journal(flash);
  journal.load();
  expect_image(journal.installed(), 5);
  EXPECT_EQ(journal.active_sector(), 1U);
  EXPECT_EQ(journal.next_slot(), 1U);
  revoke(journal);
  EXPECT_EQ(journal.last_sequence(), 6U);
  EXPECT_FALSE(reload().valid);
}

TEST_F(JournalTest, TornRecordIsSkippedAndItsPageNeverReused) {
  InstallJournal journal(flash);
  journal.load();
  commit(journal, 1);
  flash.cut_power_at(1, NorFlashFake::Cut::kMidOperation, 0.6);
  ASSERT_TRUE(journal.append_revoke());
  drive(journal);
  ASSERT_TRUE(flash.power_lost());
  flash.power_on();
  const auto torn = bytes(kSector0 + 256, 256);
  EXPECT_NE(torn, std::vector<std::uint8_t>(256, 0xFF));
  // The torn REVOKE does not count: the commit still stands.
  InstallJournal rebooted(flash);
  rebooted.load();
  expect_image(rebooted.installed(), 1);
  EXPECT_EQ(rebooted.next_slot(), 2U);
  revoke(rebooted);
  EXPECT_EQ(bytes(kSector0 + 256, 256), torn);
  EXPECT_FALSE(reload().valid);
}

TEST_F(JournalTest, TornRecordInTheLastSlotMovesToTheOtherSector) {
  InstallJournal journal(flash);
  journal.load();
  for (std::uint32_t n = 1; n < kSlotsPerSector; ++n) commit(journal, n);
  flash.cut_power_at(1, NorFlashFake::Cut::kMidOperation, 0.3);
  ASSERT_TRUE(journal.append_commit(image(99)));
  drive(journal);
  flash.power_on();
  InstallJournal rebooted(flash);
  rebooted.load();
  expect_image(rebooted.installed(), kSlotsPerSector - 1);
  EXPECT_EQ(rebooted.next_slot(), kSlotsPerSector);
  commit(rebooted, 50);
  EXPECT_EQ(rebooted.active_sector(), 1U);
  expect_image(reload(), 50);
}

TEST_F(JournalTest, PowerCutWhileErasingTheOtherSectorKeepsTheState) {
  InstallJournal journal(flash);
  journal.load();
  for (std::uint32_t n = 1; n <= 2 * kSlotsPerSector; ++n) commit(journal, n);
  ASSERT_EQ(journal.active_sector(), 1U);
  ASSERT_EQ(journal.next_slot(), kSlotsPerSector);
  flash.cut_power_at(1, NorFlashFake::Cut::kMidOperation, 0.5);  // the erase of sector 0
  ASSERT_TRUE(journal.append_revoke());
  drive(journal);
  ASSERT_TRUE(flash.power_lost());
  flash.power_on();
  InstallJournal rebooted(flash);
  rebooted.load();
  expect_image(rebooted.installed(), 2 * kSlotsPerSector);
  revoke(rebooted);
  EXPECT_FALSE(reload().valid);
  EXPECT_EQ(rebooted.active_sector(), 0U);
}

TEST_F(JournalTest, FailedProgramReportsFailureAndKeepsTheState) {
  InstallJournal journal(flash);
  journal.load();
  commit(journal, 1);
  flash.fail_operation_at(1);
  ASSERT_TRUE(journal.append_revoke());
  drive(journal);
  EXPECT_TRUE(journal.failed());
  expect_image(journal.installed(), 1);
  revoke(journal);  // the next attempt takes a fresh page and a fresh sequence number
  EXPECT_EQ(journal.last_sequence(), 3U);
  EXPECT_FALSE(reload().valid);
}

TEST_F(JournalTest, ForeignBytesInASlotAreSkipped) {
  const std::uint8_t junk[16] = {1, 2, 3};
  flash.load(kSector0, junk, sizeof junk);
  InstallJournal journal(flash);
  journal.load();
  EXPECT_FALSE(journal.installed().valid);
  EXPECT_EQ(journal.next_slot(), 1U);
  commit(journal, 4);
  expect_image(reload(), 4);
}

// Trial boot (docs/flash-records.md): ATTEMPT and CONFIRM records carry the whole image state.
TEST_F(JournalTest, AttemptsCountUpAndConfirmEndsTheTrial) {
  InstallJournal journal(flash);
  journal.load();
  commit(journal, 7);
  EXPECT_FALSE(journal.installed().confirmed);
  EXPECT_EQ(journal.installed().attempts, 0U);
  for (std::uint32_t n = 1; n <= 3; ++n) {
    ASSERT_TRUE(journal.append_attempt());
    drive(journal);
    ASSERT_FALSE(journal.failed());
    const InstalledImage after = reload();
    expect_image(after, 7);
    EXPECT_EQ(after.attempts, n);
    EXPECT_FALSE(after.confirmed);
  }
  ASSERT_TRUE(journal.append_confirm());
  drive(journal);
  const InstalledImage confirmed = reload();
  expect_image(confirmed, 7);
  EXPECT_TRUE(confirmed.confirmed);
  EXPECT_EQ(confirmed.attempts, 0U);
  // Nothing more to record for a confirmed image, nor for none.
  EXPECT_FALSE(journal.append_attempt());
  EXPECT_FALSE(journal.append_confirm());
  revoke(journal);
  EXPECT_FALSE(journal.append_attempt());
  EXPECT_FALSE(journal.append_confirm());
}

TEST_F(JournalTest, AttemptAlwaysLeavesAnErasedPageAfterItForTheConfirm) {
  InstallJournal journal(flash);
  journal.load();
  // Sector 0 filled up to its second-to-last page: an attempt there would leave no room.
  for (std::uint32_t n = 1; n < kSlotsPerSector - 1; ++n) commit(journal, n);
  ASSERT_EQ(journal.next_slot(), kSlotsPerSector - 2);
  commit(journal, 40);
  ASSERT_EQ(journal.next_slot(), kSlotsPerSector - 1);
  ASSERT_TRUE(journal.append_attempt());
  drive(journal);
  ASSERT_FALSE(journal.failed());
  EXPECT_EQ(journal.active_sector(), 1U);
  EXPECT_EQ(journal.next_slot(), 1U);
  EXPECT_EQ(bytes(kSector1 + 256, 256), std::vector<std::uint8_t>(256, 0xFF));
  // The state moved with the record: sector 0 may be erased later without losing it.
  const InstalledImage after = reload();
  expect_image(after, 40);
  EXPECT_EQ(after.attempts, 1U);
  // The confirm takes exactly the reserved page, with no erase.
  const std::uint32_t erases = flash.erases(4096);
  ASSERT_TRUE(journal.append_confirm());
  drive(journal);
  EXPECT_EQ(flash.erases(4096), erases);
  EXPECT_EQ(journal.next_slot(), 2U);
  EXPECT_TRUE(reload().confirmed);
}

TEST_F(JournalTest, AttemptSkipsAUsedPageThatWouldBlockTheConfirm) {
  InstallJournal journal(flash);
  journal.load();
  commit(journal, 3);
  // A foreign byte in the page after the next one: that pair cannot hold attempt + confirm.
  const std::uint8_t junk = 0x00;
  flash.load(kSector0 + 2 * 256 + 100, &junk, 1);
  ASSERT_TRUE(journal.append_attempt());
  drive(journal);
  ASSERT_FALSE(journal.failed());
  EXPECT_EQ(journal.next_slot(), 4U);  // attempt in slot 3, slot 4 erased
  EXPECT_EQ(reload().attempts, 1U);
}

// Undoing a REVOKE (a refused download that erased nothing) brings back the exact trial state.
TEST_F(JournalTest, AppendStateRestoresConfirmedAndAttemptStates) {
  InstallJournal journal(flash);
  journal.load();
  commit(journal, 4);
  for (int n = 0; n < 2; ++n) {
    ASSERT_TRUE(journal.append_attempt());
    drive(journal);
  }
  InstalledImage before = journal.installed();
  ASSERT_EQ(before.attempts, 2U);
  revoke(journal);
  ASSERT_TRUE(journal.append_state(before));
  drive(journal);
  InstalledImage after = reload();
  expect_image(after, 4);
  EXPECT_EQ(after.attempts, 2U);
  EXPECT_FALSE(after.confirmed);
  ASSERT_TRUE(journal.append_confirm());
  drive(journal);
  before = journal.installed();
  revoke(journal);
  ASSERT_TRUE(journal.append_state(before));
  drive(journal);
  after = reload();
  expect_image(after, 4);
  EXPECT_TRUE(after.confirmed);
}

// Issue 16 item 17 (found by fuzz/flash_records_fuzz.cpp): a record with sequence 0xFFFF'FFFF
// (corrupted flash with a matching CRC) used to decide the state, and the next record wrapped to
// sequence 0 and was never decisive: a REVOKE written before an erase was lost. Such records are
// foreign now, and a journal at the last sequence number refuses to write instead of wrapping.
TEST_F(JournalTest, SequenceNumbersNeverWrap) {
  put(kSector0, RecordType::kCommit, 5, 1);
  put(kSector0 + 256, RecordType::kCommit, 0xFFFF'FFFFU, 2);  // foreign
  put(kSector0 + 512, RecordType::kCommit, 0, 3);             // foreign
  InstallJournal journal(flash);
  journal.load();
  expect_image(journal.installed(), 1);
  EXPECT_EQ(journal.last_sequence(), 5U);
  revoke(journal);
  EXPECT_FALSE(reload().valid) << "the REVOKE decides";

  put(kSector1, RecordType::kCommit, 0xFFFF'FFFEU, 4);  // the last usable number
  journal.load();
  expect_image(journal.installed(), 4);
  ASSERT_TRUE(journal.append_revoke());
  drive(journal);
  EXPECT_TRUE(journal.failed()) << "no number left: the write fails, it does not wrap";
  expect_image(reload(), 4);
}

TEST_F(JournalTest, RecordsOfAnUnknownTypeAreForeign) {
  Record record;
  record.type = RecordType::kConfirm;
  record.sequence = 9;
  std::uint8_t encoded[kRecordSize];
  encode_record(record, encoded);
  Record out;
  ASSERT_TRUE(decode_record(encoded, out));
  EXPECT_EQ(out.type, RecordType::kConfirm);
  encoded[5] = 0x05;  // type after CONFIRM, CRC fixed up
  const std::uint32_t crc = crc32(0, encoded, kRecordSizeV1 - 4);
  std::memcpy(encoded + kRecordSizeV1 - 4, &crc, 4);
  EXPECT_FALSE(decode_record(encoded, out));
}

// --- anti-rollback: the highest security counter committed (docs/security.md) ---------------

InstalledImage signed_image(std::uint32_t n, std::uint32_t counter) {
  InstalledImage result = image(n);
  result.security_counter = counter;
  return result;
}

TEST_F(JournalTest, EveryRecordCarriesTheCounterAndOnlyACommitRaisesIt) {
  InstallJournal journal(flash);
  journal.load();
  EXPECT_EQ(journal.installed().security_counter, 0U);
  ASSERT_TRUE(journal.append_commit(signed_image(1, 5)));
  drive(journal);
  EXPECT_EQ(journal.installed().security_counter, 5U);
  EXPECT_EQ(reload().security_counter, 5U);
  ASSERT_TRUE(journal.append_attempt());
  drive(journal);
  EXPECT_EQ(reload().security_counter, 5U);
  ASSERT_TRUE(journal.append_confirm());
  drive(journal);
  EXPECT_EQ(reload().security_counter, 5U);
  EXPECT_TRUE(reload().confirmed);
  revoke(journal);
  EXPECT_FALSE(reload().valid);
  EXPECT_EQ(reload().security_counter, 5U) << "a REVOKE must not lower the counter";
  // A COMMIT never lowers it, whatever the caller passes (an unsigned image: 0; a lower one).
  commit(journal, 2);
  EXPECT_EQ(reload().security_counter, 5U);
  ASSERT_TRUE(journal.append_commit(signed_image(3, 4)));
  drive(journal);
  expect_image(reload(), 3);
  EXPECT_EQ(reload().security_counter, 5U);
  ASSERT_TRUE(journal.append_commit(signed_image(4, 9)));
  drive(journal);
  EXPECT_EQ(reload().security_counter, 9U);
  // Restoring a state taken before a higher counter keeps the higher one.
  InstalledImage before = image(1);
  before.security_counter = 5;
  ASSERT_TRUE(journal.append_state(before));
  drive(journal);
  expect_image(reload(), 1);
  EXPECT_EQ(reload().security_counter, 9U);
}

TEST_F(JournalTest, TheCounterSurvivesSectorSwitchesAndTheEraseOfItsOwnRecord) {
  InstallJournal journal(flash);
  journal.load();
  ASSERT_TRUE(journal.append_commit(signed_image(1, 7)));
  drive(journal);
  // Enough REVOKE/COMMIT pairs (no counter of their own) to fill both sectors twice: the sector
  // that held the COMMIT with the counter is erased twice meanwhile.
  for (std::uint32_t n = 2; n < 2 + 2 * kSlotsPerSector; ++n) {
    revoke(journal);
    commit(journal, n);
  }
  EXPECT_GE(flash.erases(4096), 2U);
  const InstalledImage after = reload();
  expect_image(after, 1 + 2 * kSlotsPerSector);
  EXPECT_EQ(after.security_counter, 7U);
  EXPECT_EQ(journal.installed().security_counter, 7U);
}

// A cut before or inside every flash operation of a COMMIT that raises the counter, also the
// erase of the other sector at a switch: afterwards the journal holds either the old image with
// the old counter or the new image with the new one, never the new counter without its image.
TEST_F(JournalTest, ACutNeverLowersTheCounterNorRecordsOneWithoutItsImage) {
  for (const std::uint32_t filled : {1U, kSlotsPerSector - 1, 2 * kSlotsPerSector - 1}) {
    for (int mode = 0; mode < 2; ++mode) {
      for (std::uint32_t cut = 1;; ++cut) {
        SCOPED_TRACE(::testing::Message()
                     << "filled " << filled << " mode " << mode << " cut " << cut);
        NorFlashFake fresh{test::NorTiming::typical()};
        InstallJournal journal(fresh);
        journal.load();
        auto run = [&](InstallJournal& j) {
          for (int i = 0; i < 1000 && j.busy() && !fresh.power_lost(); ++i) {
            fresh.set_now(fresh.busy_until());
            j.poll();
          }
        };
        ASSERT_TRUE(journal.append_commit(signed_image(1, 3)));
        run(journal);
        for (std::uint32_t n = 1; n < filled; ++n) {
          ASSERT_TRUE(journal.append_attempt() || journal.append_revoke());
          run(journal);
        }
        fresh.cut_power_at(
            cut, mode == 0 ? NorFlashFake::Cut::kBefore : NorFlashFake::Cut::kMidOperation, 0.5);
        const std::uint32_t ops = fresh.mutating_ops();
        ASSERT_TRUE(journal.append_commit(signed_image(2, 8)));
        run(journal);
        const bool cut_happened = fresh.power_lost();
        fresh.power_on();
        InstallJournal rebooted(fresh);
        rebooted.load();
        const InstalledImage state = rebooted.installed();
        if (state.valid && state.image_version == 2) {
          EXPECT_EQ(state.security_counter, 8U);
        } else {
          EXPECT_EQ(state.security_counter, 3U);
        }
        if (!cut_happened) {
          EXPECT_EQ(state.image_version, 2U);
          EXPECT_GT(fresh.mutating_ops(), ops);
          break;
        }
        ASSERT_LT(cut, 10U);
      }
    }
  }
}

}  // namespace
}  // namespace rtcanboot::journal
