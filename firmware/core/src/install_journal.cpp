#include "rtcanboot/install_journal.hpp"

#include "rtcanboot/bytes.hpp"

namespace rtcanboot::journal {

namespace {

// Record layout (docs/flash-records.md).
constexpr std::uint32_t kMagicAt = 0x00;
constexpr std::uint32_t kFormatAt = 0x04;
constexpr std::uint32_t kTypeAt = 0x05;
constexpr std::uint32_t kSequenceAt = 0x08;
constexpr std::uint32_t kLengthAt = 0x0C;
constexpr std::uint32_t kCrcAt = 0x10;
constexpr std::uint32_t kVersionAt = 0x14;
constexpr std::uint32_t kShaAt = 0x18;
constexpr std::uint32_t kAttemptsAt = 0x38;
constexpr std::uint32_t kRecordCrcAt = 0x3C;    // format 1
constexpr std::uint32_t kCounterAt = 0x3C;      // format 2
constexpr std::uint32_t kRecordCrcV2At = 0x40;  // format 2
static_assert(kShaAt + Sha256Engine::kDigestSize == kAttemptsAt);
static_assert(kAttemptsAt + 4 == kRecordCrcAt);
static_assert(kRecordCrcAt + 4 == kRecordSizeV1);
static_assert(kCounterAt + 4 == kRecordCrcV2At && kRecordCrcV2At + 4 == kRecordSize);

bool decode_slot(const std::uint8_t* slot, std::uint32_t* sequence) {
  Record record;
  if (!decode_record(slot, record)) return false;
  *sequence = record.sequence;
  return true;
}

}  // namespace

void encode_record(const Record& record, std::uint8_t out[kRecordSize]) {
  const bool with_counter = record.security_counter != 0;
  for (std::uint32_t i = 0; i < kRecordSize; ++i)
    out[i] = i < kRecordSizeV1 || with_counter ? 0 : 0xFF;
  store_le32(out + kMagicAt, kRecordMagic);
  out[kFormatAt] = with_counter ? kRecordFormatWithCounter : kRecordFormat;
  out[kTypeAt] = static_cast<std::uint8_t>(record.type);
  store_le32(out + kSequenceAt, record.sequence);
  store_le32(out + kLengthAt, record.payload_length);
  store_le32(out + kCrcAt, record.payload_crc32);
  store_le32(out + kVersionAt, record.image_version);
  for (std::uint32_t i = 0; i < Sha256Engine::kDigestSize; ++i) {
    out[kShaAt + i] = record.payload_sha256[i];
  }
  store_le32(out + kAttemptsAt, record.attempts);
  if (with_counter) {
    store_le32(out + kCounterAt, record.security_counter);
    store_le32(out + kRecordCrcV2At, crc32(0, out, kRecordCrcV2At));
  } else {
    store_le32(out + kRecordCrcAt, crc32(0, out, kRecordCrcAt));
  }
}

bool decode_record(const std::uint8_t bytes[kRecordSize], Record& out) {
  if (load_le32(bytes + kMagicAt) != kRecordMagic) return false;
  const bool with_counter = bytes[kFormatAt] == kRecordFormatWithCounter;
  if (!with_counter && bytes[kFormatAt] != kRecordFormat) return false;
  const std::uint32_t crc_at = with_counter ? kRecordCrcV2At : kRecordCrcAt;
  if (crc32(0, bytes, crc_at) != load_le32(bytes + crc_at)) return false;
  // A format-2 record always has a counter (one of 0 is written as format 1): one with 0 is
  // foreign.
  const std::uint32_t counter = with_counter ? load_le32(bytes + kCounterAt) : 0;
  if (with_counter && counter == 0) return false;
  const std::uint8_t type = bytes[kTypeAt];
  if (type < static_cast<std::uint8_t>(RecordType::kCommit) ||
      type > static_cast<std::uint8_t>(RecordType::kConfirm)) {
    return false;
  }
  out.type = static_cast<RecordType>(type);
  out.sequence = load_le32(bytes + kSequenceAt);
  // The writer never uses 0 or the last number: a record carrying one is foreign (corrupted flash
  // with a matching CRC). Were 0xFFFF'FFFF decisive, the next record (sequence 0 after the wrap)
  // would never be (found by fuzzing, issue 16 item 17).
  if (out.sequence == 0 || out.sequence == kNoSequence) return false;
  out.payload_length = load_le32(bytes + kLengthAt);
  out.payload_crc32 = load_le32(bytes + kCrcAt);
  out.image_version = load_le32(bytes + kVersionAt);
  for (std::uint32_t i = 0; i < Sha256Engine::kDigestSize; ++i) {
    out.payload_sha256[i] = bytes[kShaAt + i];
  }
  out.attempts = load_le32(bytes + kAttemptsAt);
  out.security_counter = counter;
  return true;
}

InstalledImage state_after(const Record& record) {
  InstalledImage image;
  image.security_counter = record.security_counter;
  if (record.type == RecordType::kRevoke) return image;
  image.valid = true;
  image.confirmed = record.type == RecordType::kConfirm;
  image.attempts = record.type == RecordType::kAttempt ? record.attempts : 0;
  image.payload_length = record.payload_length;
  image.payload_crc32 = record.payload_crc32;
  image.image_version = record.image_version;
  for (std::uint32_t i = 0; i < Sha256Engine::kDigestSize; ++i) {
    image.payload_sha256[i] = record.payload_sha256[i];
  }
  return image;
}

Record record_for(const InstalledImage& image, RecordType type, std::uint32_t sequence) {
  Record record;
  record.type = type;
  record.sequence = sequence;
  record.security_counter = image.security_counter;
  if (type == RecordType::kRevoke) return record;
  record.payload_length = image.payload_length;
  record.payload_crc32 = image.payload_crc32;
  record.image_version = image.image_version;
  for (std::uint32_t i = 0; i < Sha256Engine::kDigestSize; ++i) {
    record.payload_sha256[i] = image.payload_sha256[i];
  }
  if (type == RecordType::kAttempt) record.attempts = image.attempts + 1;
  return record;
}

InstallJournal::InstallJournal(FlashPort& flash)
    : log_(flash, memory_map::kJournalOffset, kRecordSize, decode_slot) {}

void InstallJournal::load() {
  log_.load();
  appending_ = false;
  installed_ = {};
  Record record;
  if (log_.found() && decode_record(log_.current(), record)) installed_ = state_after(record);
}

bool InstallJournal::append_commit(const InstalledImage& image) {
  Record record = record_for(image, RecordType::kCommit, 0);
  if (record.security_counter < installed_.security_counter) {
    record.security_counter = installed_.security_counter;
  }
  return append(record);
}

bool InstallJournal::append_revoke() {
  return append(record_for(installed_, RecordType::kRevoke, 0));
}

bool InstallJournal::append_attempt() {
  if (!installed_.valid || installed_.confirmed) return false;
  return append(record_for(installed_, RecordType::kAttempt, 0), true);
}

bool InstallJournal::append_state(const InstalledImage& image) {
  if (!image.valid) return append_revoke();
  const RecordType type = image.confirmed      ? RecordType::kConfirm
                          : image.attempts > 0 ? RecordType::kAttempt
                                               : RecordType::kCommit;
  Record record = record_for(image, type, 0);
  record.attempts = type == RecordType::kAttempt ? image.attempts : 0;
  // Never below the counter recorded since `image` was taken.
  if (record.security_counter < installed_.security_counter) {
    record.security_counter = installed_.security_counter;
  }
  return append(record);
}

bool InstallJournal::append_confirm() {
  if (!installed_.valid || installed_.confirmed) return false;
  return append(record_for(installed_, RecordType::kConfirm, 0));
}

bool InstallJournal::append(const Record& record, bool reserve_next_slot) {
  if (log_.busy() || log_.operation_in_flight()) return false;
  pending_ = record;
  pending_.sequence = log_.last_sequence() + 1;
  appending_ = true;
  // No sequence number left (unreachable by updates: 4 billion records): the record fails rather
  // than wrap and be outranked by the records it follows.
  if (pending_.sequence == kNoSequence) {
    log_.refuse();
    return true;
  }
  std::uint8_t bytes[kRecordSize];
  encode_record(pending_, bytes);
  if (!log_.append(bytes, reserve_next_slot)) {
    appending_ = false;
    return false;
  }
  return true;
}

void InstallJournal::poll() {
  log_.poll();
  if (appending_ && !log_.busy()) {
    appending_ = false;
    if (!log_.failed()) installed_ = state_after(pending_);
  }
}

}  // namespace rtcanboot::journal
