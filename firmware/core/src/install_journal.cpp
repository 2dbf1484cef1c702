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
constexpr std::uint32_t kRecordCrcAt = 0x3C;
static_assert(kShaAt + Sha256Engine::kDigestSize == kAttemptsAt);
static_assert(kAttemptsAt + 4 == kRecordCrcAt);
static_assert(kRecordCrcAt + 4 == kRecordSize);

bool all_erased(const std::uint8_t* bytes, std::uint32_t length) {
  for (std::uint32_t i = 0; i < length; ++i) {
    if (bytes[i] != 0xFF) return false;
  }
  return true;
}

}  // namespace

void encode_record(const Record& record, std::uint8_t out[kRecordSize]) {
  for (std::uint32_t i = 0; i < kRecordSize; ++i) out[i] = 0;
  store_le32(out + kMagicAt, kRecordMagic);
  out[kFormatAt] = kRecordFormat;
  out[kTypeAt] = static_cast<std::uint8_t>(record.type);
  store_le32(out + kSequenceAt, record.sequence);
  store_le32(out + kLengthAt, record.payload_length);
  store_le32(out + kCrcAt, record.payload_crc32);
  store_le32(out + kVersionAt, record.image_version);
  for (std::uint32_t i = 0; i < Sha256Engine::kDigestSize; ++i) {
    out[kShaAt + i] = record.payload_sha256[i];
  }
  store_le32(out + kAttemptsAt, record.attempts);
  store_le32(out + kRecordCrcAt, crc32(0, out, kRecordCrcAt));
}

bool decode_record(const std::uint8_t bytes[kRecordSize], Record& out) {
  if (load_le32(bytes + kMagicAt) != kRecordMagic || bytes[kFormatAt] != kRecordFormat) {
    return false;
  }
  if (crc32(0, bytes, kRecordCrcAt) != load_le32(bytes + kRecordCrcAt)) return false;
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
  return true;
}

InstalledImage state_after(const Record& record) {
  InstalledImage image;
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

void InstallJournal::load() {
  installed_ = {};
  last_sequence_ = 0;
  step_ = Step::kIdle;
  in_flight_ = false;
  bool found = false;
  std::uint32_t best_sector = 0;
  Record best;
  std::uint32_t used_end[kSectors] = {};
  for (std::uint32_t sector = 0; sector < kSectors; ++sector) {
    sector_dirty_[sector] = false;
    for (std::uint32_t slot = 0; slot < kSlotsPerSector; ++slot) {
      if (flash_.read(slot_offset(sector, slot), page_, kSlotSize) != FlashResult::kOk) {
        // Unreadable: treat as used so nothing is ever written over it.
        sector_dirty_[sector] = true;
        used_end[sector] = slot + 1;
        continue;
      }
      if (all_erased(page_, kSlotSize)) continue;
      sector_dirty_[sector] = true;
      used_end[sector] = slot + 1;
      Record record;
      if (decode_record(page_, record) && (!found || record.sequence > best.sequence)) {
        found = true;
        best = record;
        best_sector = sector;
      }
    }
  }
  active_sector_ = best_sector;
  next_slot_ = used_end[best_sector];
  if (found) {
    last_sequence_ = best.sequence;
    installed_ = state_after(best);
  }
}

bool InstallJournal::append_commit(const InstalledImage& image) {
  return append(record_for(image, RecordType::kCommit, 0));
}

bool InstallJournal::append_revoke() {
  return append(Record{});
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
  return append(record);
}

bool InstallJournal::append_confirm() {
  if (!installed_.valid || installed_.confirmed) return false;
  return append(record_for(installed_, RecordType::kConfirm, 0));
}

bool InstallJournal::append(const Record& record, bool reserve_next_slot) {
  if (busy() || in_flight_) return false;
  pending_ = record;
  reserve_next_slot_ = reserve_next_slot;
  pending_.sequence = last_sequence_ + 1;
  // No sequence number left (unreachable by updates: 4 billion records): the record fails rather
  // than wrap and be outranked by the records it follows.
  if (pending_.sequence == kNoSequence) {
    step_ = Step::kFailed;
    return true;
  }
  target_sector_ = active_sector_;
  target_slot_ = next_slot_;
  switched_ = false;
  step_ = Step::kPrepare;
  return true;
}

bool InstallJournal::slot_blank(std::uint32_t sector, std::uint32_t slot) {
  if (flash_.read(slot_offset(sector, slot), page_, kSlotSize) != FlashResult::kOk) return false;
  return all_erased(page_, kSlotSize);
}

void InstallJournal::prepare() {
  // A reserved record needs an erased page after it in the same sector.
  const std::uint32_t slots_needed = reserve_next_slot_ ? 2 : 1;
  if (target_slot_ + slots_needed > kSlotsPerSector) {
    // Switching twice in one append would erase the sector holding the current state.
    if (switched_) {
      step_ = Step::kFailed;
      return;
    }
    switched_ = true;
    target_sector_ = (target_sector_ + 1) % kSectors;
    target_slot_ = 0;
    if (sector_dirty_[target_sector_]) {
      const std::uint32_t offset = slot_offset(target_sector_, 0);
      if (flash_.start_erase(offset, memory_map::kSectorSize) != FlashResult::kOk) {
        step_ = Step::kFailed;
        return;
      }
      in_flight_ = true;
      step_ = Step::kErasing;
      return;
    }
  }
  if (!slot_blank(target_sector_, target_slot_)) {
    ++target_slot_;  // used or torn: never written again
    return;
  }
  if (reserve_next_slot_ && !slot_blank(target_sector_, target_slot_ + 1)) {
    target_slot_ += 2;  // the page after is used: neither of the two can hold this record
    return;
  }
  for (std::uint32_t i = 0; i < kSlotSize; ++i) page_[i] = 0xFF;
  encode_record(pending_, page_);
  if (flash_.start_program(slot_offset(target_sector_, target_slot_), page_) != FlashResult::kOk) {
    step_ = Step::kFailed;
    return;
  }
  in_flight_ = true;
  step_ = Step::kProgramming;
}

void InstallJournal::finish_program() {
  sector_dirty_[target_sector_] = true;
  // Even a failed record may have landed: never reuse its sequence number.
  last_sequence_ = pending_.sequence;
  std::uint8_t expected[kRecordSize];
  encode_record(pending_, expected);
  bool same =
      flash_.last_result() == FlashResult::kOk &&
      flash_.read(slot_offset(target_sector_, target_slot_), page_, kSlotSize) == FlashResult::kOk;
  for (std::uint32_t i = 0; same && i < kRecordSize; ++i) same = page_[i] == expected[i];
  if (!same) {
    step_ = Step::kFailed;
    return;
  }
  active_sector_ = target_sector_;
  next_slot_ = target_slot_ + 1;
  installed_ = state_after(pending_);
  step_ = Step::kIdle;
}

void InstallJournal::poll() {
  if (in_flight_) {
    if (flash_.busy()) return;
    in_flight_ = false;
    if (step_ == Step::kErasing) {
      if (flash_.last_result() != FlashResult::kOk) {
        step_ = Step::kFailed;
        return;
      }
      sector_dirty_[target_sector_] = false;
      step_ = Step::kPrepare;
      return;
    }
    if (step_ == Step::kProgramming) finish_program();
    return;
  }
  if (step_ == Step::kPrepare) prepare();
}

}  // namespace rtcanboot::journal
