#include "rtcanboot/record_log.hpp"

namespace rtcanboot {

namespace {

bool all_erased(const std::uint8_t* bytes, std::uint32_t length) {
  for (std::uint32_t i = 0; i < length; ++i) {
    if (bytes[i] != 0xFF) return false;
  }
  return true;
}

}  // namespace

void RecordLog::load() {
  found_ = false;
  last_sequence_ = 0;
  step_ = Step::kIdle;
  in_flight_ = false;
  std::uint32_t best_sector = 0;
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
      std::uint32_t sequence = 0;
      if (decode_(page_, &sequence) && (!found_ || sequence > last_sequence_)) {
        found_ = true;
        last_sequence_ = sequence;
        best_sector = sector;
        for (std::uint32_t i = 0; i < record_size_; ++i) current_[i] = page_[i];
      }
    }
  }
  active_sector_ = best_sector;
  next_slot_ = used_end[best_sector];
}

bool RecordLog::append(const std::uint8_t* record, bool reserve_next_slot) {
  if (busy() || in_flight_ || record_size_ > kSlotSize) return false;
  for (std::uint32_t i = 0; i < kSlotSize; ++i) pending_[i] = i < record_size_ ? record[i] : 0xFF;
  if (!decode_(pending_, &pending_sequence_)) return false;
  reserve_next_slot_ = reserve_next_slot;
  target_sector_ = active_sector_;
  target_slot_ = next_slot_;
  switched_ = false;
  step_ = Step::kPrepare;
  return true;
}

bool RecordLog::slot_blank(std::uint32_t sector, std::uint32_t slot) {
  if (flash_.read(slot_offset(sector, slot), page_, kSlotSize) != FlashResult::kOk) return false;
  return all_erased(page_, kSlotSize);
}

void RecordLog::prepare() {
  // A reserving record needs an erased page after it in the same sector.
  const std::uint32_t slots_needed = reserve_next_slot_ ? 2 : 1;
  if (target_slot_ + slots_needed > kSlotsPerSector) {
    // Switching twice in one append would erase the sector holding the current record.
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
  if (flash_.start_program(slot_offset(target_sector_, target_slot_), pending_) !=
      FlashResult::kOk) {
    step_ = Step::kFailed;
    return;
  }
  in_flight_ = true;
  step_ = Step::kProgramming;
}

void RecordLog::finish_program() {
  sector_dirty_[target_sector_] = true;
  // Even a failed record may have landed: never reuse its sequence number.
  last_sequence_ = pending_sequence_;
  bool same =
      flash_.last_result() == FlashResult::kOk &&
      flash_.read(slot_offset(target_sector_, target_slot_), page_, kSlotSize) == FlashResult::kOk;
  for (std::uint32_t i = 0; same && i < record_size_; ++i) same = page_[i] == pending_[i];
  if (!same) {
    step_ = Step::kFailed;
    return;
  }
  active_sector_ = target_sector_;
  next_slot_ = target_slot_ + 1;
  found_ = true;
  for (std::uint32_t i = 0; i < record_size_; ++i) current_[i] = pending_[i];
  step_ = Step::kIdle;
}

void RecordLog::poll() {
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

}  // namespace rtcanboot
