// A power-cut safe log of write-once records in two 4 KiB flash sectors, shared by the install
// journal and the provisioning store. docs/flash-records.md describes the rules:
//
// - every record takes its own 256-byte page and is never rewritten; a torn record (the decoder
//   refuses it) is skipped and its page stays used;
// - the valid record with the highest sequence number is the current one;
// - when the active sector is full (or, for a record that reserves the page after it, has fewer
//   than two pages left), the other sector is erased (if not blank) and used next; the current
//   record lives in the active sector, so that erase never loses it.
#pragma once

#include <cstdint>

#include "rtcanboot/flash_port.hpp"
#include "rtcanboot/memory_map.hpp"

namespace rtcanboot {

class RecordLog {
 public:
  static constexpr std::uint32_t kSlotSize = memory_map::kPageSize;  // one record per page
  static constexpr std::uint32_t kSlotsPerSector = memory_map::kSectorSize / kSlotSize;
  static constexpr std::uint32_t kSectors = 2;

  // True when `slot` (kSlotSize bytes) holds a valid record; gives its sequence number.
  using Decoder = bool (*)(const std::uint8_t* slot, std::uint32_t* sequence);

  // `base` is the flash offset of the first of the two consecutive sectors.
  RecordLog(FlashPort& flash, std::uint32_t base, std::uint32_t record_size, Decoder decode)
      : flash_(flash), base_(base), record_size_(record_size), decode_(decode) {}

  // Scans both sectors. The flash must be idle.
  void load();
  bool found() const { return found_; }
  // The current record (record_size bytes) when found().
  const std::uint8_t* current() const { return current_; }
  std::uint32_t last_sequence() const { return last_sequence_; }

  // Starts appending `record` (record_size bytes, sequence number and CRC already in it; the
  // decoder must accept it). Progress in poll(). False while an append is running.
  // `reserve_next_slot`: the record goes only where the page after it is erased and in the same
  // sector, so that the next record needs one page program and no erase (the journal's ATTEMPT
  // before the application's CONFIRM).
  bool append(const std::uint8_t* record, bool reserve_next_slot = false);
  void poll();
  bool busy() const { return step_ != Step::kIdle && step_ != Step::kFailed; }
  bool failed() const { return step_ == Step::kFailed; }
  // Ends an append before it starts, as failed (the owner found no sequence number left).
  void refuse() { step_ = Step::kFailed; }
  bool operation_in_flight() const { return in_flight_; }

  // Where the next record goes (tests).
  std::uint32_t active_sector() const { return active_sector_; }
  std::uint32_t next_slot() const { return next_slot_; }

 private:
  enum class Step : std::uint8_t { kIdle, kPrepare, kErasing, kProgramming, kFailed };

  std::uint32_t slot_offset(std::uint32_t sector, std::uint32_t slot) const {
    return base_ + sector * memory_map::kSectorSize + slot * kSlotSize;
  }
  bool slot_blank(std::uint32_t sector, std::uint32_t slot);
  void prepare();
  void finish_program();

  FlashPort& flash_;
  std::uint32_t base_;
  std::uint32_t record_size_;
  Decoder decode_;

  bool found_ = false;
  std::uint8_t current_[kSlotSize] = {};
  std::uint32_t last_sequence_ = 0;
  std::uint32_t active_sector_ = 0;
  std::uint32_t next_slot_ = 0;
  bool sector_dirty_[kSectors] = {};

  Step step_ = Step::kIdle;
  bool in_flight_ = false;
  std::uint8_t pending_[kSlotSize] = {};
  std::uint32_t pending_sequence_ = 0;
  std::uint32_t target_sector_ = 0;
  std::uint32_t target_slot_ = 0;
  bool switched_ = false;
  bool reserve_next_slot_ = false;
  std::uint8_t page_[kSlotSize] = {};
};

}  // namespace rtcanboot
