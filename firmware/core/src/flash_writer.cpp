#include "rtcanboot/flash_writer.hpp"

namespace rtcanboot {

using canopen::FlashDetail;

namespace {

constexpr std::uint32_t round_up(std::uint32_t value, std::uint32_t unit) {
  return (value + unit - 1) / unit * unit;
}

static_assert(FlashWriter::kReadPerPoll % memory_map::kPageSize == 0);
static_assert(memory_map::kBlock64Size % FlashWriter::kReadPerPoll == 0);
static_assert(memory_map::kSectorSize % FlashWriter::kReadPerPoll == 0);
static_assert(image::kSectorSize == memory_map::kSectorSize, "extents are erase sectors");

}  // namespace

FlashWriter::FlashWriter(FlashPort& flash, Sha256Engine& sha, std::span<std::uint8_t> ring)
    : flash_(flash),
      sha_(sha),
      ring_(ring.data()),
      capacity_(static_cast<std::uint32_t>(ring.size() / kPageSize * kPageSize)) {}

void FlashWriter::open_write(std::uint32_t offset, std::uint32_t length) {
  ++generation_;
  state_ = capacity_ >= kMinRingSize ? State::kWriting : State::kFailed;
  failure_ = capacity_ >= kMinRingSize ? FlashDetail::kNone : FlashDetail::kProgramFailed;
  armed_ = false;
  input_complete_ = false;
  start_ = offset;
  length_ = length;
  verify_length_ = length;
  extents_ = nullptr;
  patch_ = nullptr;
  erase_end_ = round_up(length, memory_map::kSectorSize);
  erased_to_ = 0;
  check_cursor_ = 0;
  pushed_ = 0;
  programmed_ = 0;
  verified_ = 0;
  changed_flash_ = false;
  stats_ = {};
}

void FlashWriter::open_sparse_write(std::uint32_t offset, std::uint32_t image_length,
                                    const image::ExtentList& extents) {
  open_write(offset, image::sparse_payload_length(extents, image_length));
  verify_length_ = image_length;
  extents_ = &extents;
}

void FlashWriter::open_patch_write(std::uint32_t offset, std::uint32_t image_length,
                                   const image::PatchList& runs) {
  open_write(offset, runs.bytes());
  verify_length_ = image_length;
  patch_ = &runs;
  erase_end_ = 0;  // nothing is erased
}

std::uint32_t FlashWriter::patch_piece(std::uint32_t position, std::uint32_t* image_offset) const {
  std::uint32_t run_start = 0;  // stream position of the run's first byte
  for (std::uint32_t i = 0; i < patch_->count; ++i) {
    const image::PatchRun& run = patch_->runs[i];
    if (position < run_start + run.length) {
      *image_offset = run.offset + (position - run_start);
      const std::uint32_t in_run = run_start + run.length - position;
      const std::uint32_t in_page = kPageSize - *image_offset % kPageSize;
      return in_run < in_page ? in_run : in_page;
    }
    run_start += run.length;
  }
  *image_offset = 0;
  return 0;
}

void FlashWriter::program_patch_piece() {
  std::uint32_t image_offset = 0;
  const std::uint32_t piece = patch_piece(programmed_, &image_offset);
  const std::uint32_t page_offset = start_ + image_offset / kPageSize * kPageSize;
  const std::uint32_t at = image_offset % kPageSize;
  if (flash_.read(page_offset, patch_page_, kPageSize) != FlashResult::kOk) {
    fail(FlashDetail::kProgramFailed);
    return;
  }
  for (std::uint32_t i = 0; i < piece; ++i) {
    if (patch_page_[at + i] != 0xFF) {
      fail(FlashDetail::kPatchNotBlank);  // not a gap: programming would merge two images
      return;
    }
  }
  for (std::uint32_t i = 0; i < kPageSize; ++i) patch_page_[i] = 0xFF;
  for (std::uint32_t i = 0; i < piece; ++i) {
    patch_page_[at + i] = ring_[(programmed_ + i) % capacity_];
  }
  start_program(page_offset, patch_page_, piece);
}

std::uint32_t FlashWriter::flash_offset(std::uint32_t position) const {
  if (extents_ == nullptr) return start_ + position;
  std::uint32_t run_start = 0;  // stream position of the run's first byte
  for (std::uint32_t i = 0; i < extents_->count; ++i) {
    const image::Extent& run = extents_->runs[i];
    const std::uint32_t size = run.sector_count * image::kSectorSize;
    if (position < run_start + size) {
      return start_ + run.first_sector * image::kSectorSize + (position - run_start);
    }
    run_start += size;
  }
  return start_ + position;  // past the last run: never used for flash work
}

std::uint32_t FlashWriter::run_end(std::uint32_t position) const {
  if (extents_ == nullptr) return erase_end_;
  std::uint32_t run_start = 0;
  for (std::uint32_t i = 0; i < extents_->count; ++i) {
    run_start += extents_->runs[i].sector_count * image::kSectorSize;
    if (position < run_start) return run_start;
  }
  return erase_end_;
}

void FlashWriter::open_erase(std::uint32_t offset, std::uint32_t length) {
  open_write(offset, 0);
  state_ = State::kErasing;
  failure_ = FlashDetail::kNone;
  length_ = length;
  erase_end_ = round_up(length, memory_map::kSectorSize);
}

void FlashWriter::stop() {
  ++generation_;
  state_ = State::kIdle;
  armed_ = false;
}

std::uint32_t FlashWriter::free_space() const {
  if (state_ != State::kWriting || input_complete_) return 0;
  const std::uint32_t room = capacity_ - pending_bytes();
  const std::uint32_t left = length_ - pushed_;
  return room < left ? room : left;
}

std::uint32_t FlashWriter::push(const std::uint8_t* data, std::uint32_t length) {
  const std::uint32_t space = free_space();
  const std::uint32_t take = length < space ? length : space;
  for (std::uint32_t i = 0; i < take; ++i) ring_[(pushed_ + i) % capacity_] = data[i];
  pushed_ += take;
  return take;
}

void FlashWriter::fail(FlashDetail detail) {
  state_ = State::kFailed;
  failure_ = detail;
  armed_ = false;
}

void FlashWriter::complete_operation() {
  in_flight_ = false;
  const FlashResult result = flash_.last_result();
  if (op_generation_ != generation_) return;  // belongs to an abandoned job
  if (result != FlashResult::kOk) {
    fail(op_ == Op::kErase ? FlashDetail::kEraseFailed : FlashDetail::kProgramFailed);
    return;
  }
  if (op_ == Op::kErase) {
    erased_to_ = op_position_ + op_length_;
    check_cursor_ = 0;
  } else {
    const std::uint32_t end = programmed_ + (patch_ != nullptr ? op_length_ : kPageSize);
    programmed_ = end < length_ ? end : length_;
    ++stats_.pages;
  }
}

// Blank-checks (a chunk of) the next erase unit and erases it when it is not blank. Returns true
// when it started an operation or read flash (one step done).
bool FlashWriter::erase_step(std::uint32_t limit) {
  if (erased_to_ >= limit) return false;
  const std::uint32_t offset = flash_offset(erased_to_);
  const std::uint32_t unit_limit =
      run_end(erased_to_) < erase_end_ ? run_end(erased_to_) : erase_end_;
  const bool whole_block =
      offset % memory_map::kBlock64Size == 0 && erased_to_ + memory_map::kBlock64Size <= unit_limit;
  const std::uint32_t unit = whole_block ? memory_map::kBlock64Size : memory_map::kSectorSize;

  std::uint32_t chunk[memory_map::kPageSize / 4];  // words: the check runs 4 bytes at a time
  bool blank = true;
  for (std::uint32_t done = 0; done < kReadPerPoll && blank; done += sizeof chunk) {
    if (flash_.read(offset + check_cursor_, chunk, sizeof chunk) != FlashResult::kOk) {
      fail(FlashDetail::kEraseFailed);
      return true;
    }
    for (const std::uint32_t word : chunk) blank = blank && word == 0xFFFF'FFFFU;
    if (blank) check_cursor_ += sizeof chunk;
  }
  if (blank) {
    if (check_cursor_ >= unit) {
      erased_to_ += unit;
      check_cursor_ = 0;
      ++stats_.blank_skipped;
    }
    return true;
  }
  if (flash_.start_erase(offset, unit) != FlashResult::kOk) {
    fail(FlashDetail::kEraseFailed);
    return true;
  }
  in_flight_ = true;
  changed_flash_ = true;
  op_ = Op::kErase;
  op_generation_ = generation_;
  op_offset_ = offset;
  op_position_ = erased_to_;
  op_length_ = unit;
  if (whole_block) {
    ++stats_.erases_64k;
  } else {
    ++stats_.erases_4k;
  }
  return true;
}

void FlashWriter::program_page() {
  std::uint8_t* page = ring_ + programmed_ % capacity_;
  const std::uint32_t bytes = pending_bytes();
  // The tail's slot in the ring is free beyond the data (see free_space()): pad it in place.
  for (std::uint32_t i = bytes; i < kPageSize; ++i) page[i] = 0xFF;
  start_program(flash_offset(programmed_), page, kPageSize);
}

void FlashWriter::start_program(std::uint32_t page_offset, const std::uint8_t* page,
                                std::uint32_t stream_bytes) {
  if (flash_.start_program(page_offset, page) != FlashResult::kOk) {
    fail(FlashDetail::kProgramFailed);
    return;
  }
  in_flight_ = true;
  changed_flash_ = true;
  op_ = Op::kProgram;
  op_generation_ = generation_;
  op_offset_ = page_offset;
  op_length_ = stream_bytes;
}

void FlashWriter::verify_step() {
  std::uint8_t chunk[memory_map::kPageSize];
  for (std::uint32_t done = 0; done < kReadPerPoll && verified_ < verify_length_;
       done += sizeof chunk) {
    const std::uint32_t left = verify_length_ - verified_;
    const std::uint32_t take =
        left < sizeof chunk ? left : static_cast<std::uint32_t>(sizeof chunk);
    if (flash_.read(start_ + verified_, chunk, take) != FlashResult::kOk) {
      fail(FlashDetail::kVerifyFailed);
      return;
    }
    for (std::uint32_t i = 0; verified_ + i < sizeof verified_head_ && i < take; ++i) {
      verified_head_[verified_ + i] = chunk[i];
    }
    verified_crc32_ = crc32(verified_crc32_, chunk, take);
    sha_.update(chunk, take);
    verified_ += take;
  }
  if (verified_ >= verify_length_) {
    sha_.finish(verified_sha256_);
    state_ = State::kDone;
  }
}

bool FlashWriter::has_work() const {
  if (in_flight_) return true;
  if (!armed_) return false;
  switch (state_) {
    case State::kWriting: {
      const std::uint32_t bytes = pending_bytes();
      if (patch_ != nullptr) {
        std::uint32_t unused = 0;
        const std::uint32_t piece = patch_piece(programmed_, &unused);
        return (piece != 0 && bytes >= piece) || (input_complete_ && programmed_ >= length_);
      }
      const bool page_ready = bytes >= kPageSize || (input_complete_ && bytes > 0);
      const std::uint32_t lookahead = programmed_ + kEraseLookahead;
      const std::uint32_t erase_limit = lookahead < erase_end_ ? lookahead : erase_end_;
      return page_ready || erased_to_ < erase_limit || (input_complete_ && programmed_ >= length_);
    }
    case State::kVerifying:
    case State::kErasing:
      return true;
    default:
      return false;
  }
}

void FlashWriter::poll() {
  if (in_flight_) {
    if (flash_.busy()) return;
    complete_operation();
  }
  if (!armed_) return;
  switch (state_) {
    case State::kWriting: {
      const std::uint32_t bytes = pending_bytes();
      if (patch_ != nullptr && programmed_ < length_) {
        std::uint32_t unused = 0;
        if (bytes >= patch_piece(programmed_, &unused)) program_patch_piece();
        return;
      }
      const bool page_ready = bytes >= kPageSize || (input_complete_ && bytes > 0);
      if (page_ready && programmed_ + kPageSize <= erased_to_) {
        program_page();
        return;
      }
      if (input_complete_ && programmed_ >= length_) {
        state_ = State::kVerifying;
        verified_ = 0;
        verified_crc32_ = 0;
        sha_.reset();
        return;
      }
      const std::uint32_t lookahead = programmed_ + kEraseLookahead;
      erase_step(lookahead < erase_end_ ? lookahead : erase_end_);
      return;
    }
    case State::kVerifying:
      verify_step();
      return;
    case State::kErasing:
      if (!erase_step(erase_end_)) state_ = State::kDone;
      return;
    default:
      return;
  }
}

}  // namespace rtcanboot
