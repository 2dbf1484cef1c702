#include "nor_flash_fake.hpp"

#include <cstdio>

#include <cstring>
#include <utility>
#include "rtcanboot/hash.hpp"
#include "rtcanboot/install_journal.hpp"
#include "rtcanboot/memory_map.hpp"

namespace rtcanboot::test {

namespace {

std::string describe(const char* what, std::uint32_t offset, std::uint32_t length) {
  char text[128];
  std::snprintf(text, sizeof text, "%s at 0x%06X length 0x%X", what, offset, length);
  return text;
}

}  // namespace

NorFlashFake::NorFlashFake(NorTiming timing) : timing_(timing), memory_(kSize, 0xFF) {}

void NorFlashFake::violation(std::string message) {
  if (on_violation_) on_violation_(message);
  violations_.push_back(std::move(message));
}

void NorFlashFake::load(std::uint32_t offset, const void* data, std::size_t length) {
  std::memcpy(memory_.data() + offset, data, length);
}

std::uint32_t NorFlashFake::erases(std::uint32_t size) const {
  switch (size) {
    case 4096:
      return erases_4k_;
    case 32768:
      return erases_32k_;
    case 65536:
      return erases_64k_;
    default:
      return 0;
  }
}

void NorFlashFake::cut_power_at(std::uint32_t index, Cut mode, double fraction) {
  cut_at_ = mutating_ops_ + index;
  cut_mode_ = mode;
  cut_fraction_ = fraction;
}

void NorFlashFake::reset_touched() {
  for (const Operation& operation : operations_) {
    std::memset(memory_.data() + operation.offset, 0xFF, operation.length);
  }
  operations_.clear();
  violations_.clear();
  mutating_ops_ = 0;
  programs_ = erases_4k_ = erases_32k_ = erases_64k_ = 0;
  busy_time_ = 0;
  now_ = 0;
  power_on();
}

void NorFlashFake::power_on() {
  power_lost_ = false;
  in_op_ = false;
  cut_at_ = 0;
  fail_at_ = 0;
  last_result_ = FlashResult::kOk;
}

// Counts a mutating operation; false when the power is cut at it (the caller then applies the
// partial effect and the flash goes dead).
bool NorFlashFake::count_mutation() {
  ++mutating_ops_;
  return cut_at_ == 0 || mutating_ops_ != cut_at_;
}

FlashResult NorFlashFake::start_erase(std::uint32_t offset, std::uint32_t length) {
  if (power_lost_) return FlashResult::kFailed;
  if (busy()) {
    violation(describe("erase while busy", offset, length));
    return FlashResult::kBusy;
  }
  Micros duration = 0;
  if (length == 4096) {
    duration = timing_.erase_4k;
  } else if (length == 32768) {
    duration = timing_.erase_32k;
  } else if (length == 65536) {
    duration = timing_.erase_64k;
  } else {
    violation(describe("erase of a size the flash does not have", offset, length));
    return FlashResult::kInvalidArgument;
  }
  if (offset % length != 0 || offset >= kSize || length > kSize - offset) {
    violation(describe("misaligned or out-of-range erase", offset, length));
    return FlashResult::kInvalidArgument;
  }
  if (offset < kProtectedEnd) violation(describe("erase in the bootloader region", offset, length));
  operations_.push_back({true, offset, length});
  if (!count_mutation()) {
    power_lost_ = true;
    if (cut_mode_ == Cut::kMidOperation) {
      // A partly erased sector: a prefix is 0xFF, the rest keeps its old content.
      const auto erased = static_cast<std::uint32_t>(length * cut_fraction_);
      std::memset(memory_.data() + offset, 0xFF, erased);
    }
    return FlashResult::kOk;
  }
  in_op_ = true;
  op_is_erase_ = true;
  op_offset_ = offset;
  op_length_ = length;
  op_end_ = now_ + duration;
  op_fails_ = fail_at_ != 0 && mutating_ops_ == fail_at_;
  busy_time_ += duration;
  if (length == 4096) ++erases_4k_;
  if (length == 32768) ++erases_32k_;
  if (length == 65536) ++erases_64k_;
  return FlashResult::kOk;
}

FlashResult NorFlashFake::start_program(std::uint32_t offset, const std::uint8_t* page) {
  if (power_lost_) return FlashResult::kFailed;
  if (busy()) {
    violation(describe("program while busy", offset, kPage));
    return FlashResult::kBusy;
  }
  if (offset % kPage != 0 || offset >= kSize) {
    violation(describe("misaligned or out-of-range program", offset, kPage));
    return FlashResult::kInvalidArgument;
  }
  if (offset < kProtectedEnd)
    violation(describe("program in the bootloader region", offset, kPage));
  for (std::uint32_t i = 0; i < kPage; ++i) {
    // A 0xFF data byte leaves its cells as they are (as the twin's W25Q32 model has it): a page
    // may be programmed again around bytes programmed before (patch containers).
    if (page[i] != 0xFF && (memory_[offset + i] & page[i]) != page[i]) {
      violation(describe("program asks for a 0->1 bit change", offset + i, 1));
      break;
    }
  }
  operations_.push_back({false, offset, kPage});
  if (!count_mutation()) {
    power_lost_ = true;
    if (cut_mode_ == Cut::kMidOperation) {
      // A torn page: the first part of the bits that were to be cleared are cleared.
      std::uint32_t to_clear = 0;
      for (std::uint32_t i = 0; i < kPage; ++i) {
        to_clear +=
            static_cast<std::uint32_t>(__builtin_popcount(memory_[offset + i] & ~page[i] & 0xFFU));
      }
      auto budget = static_cast<std::uint32_t>(to_clear * cut_fraction_);
      for (std::uint32_t i = 0; i < kPage && budget > 0; ++i) {
        for (int bit = 0; bit < 8 && budget > 0; ++bit) {
          const auto mask = static_cast<std::uint8_t>(1U << bit);
          if ((memory_[offset + i] & mask) != 0 && (page[i] & mask) == 0) {
            memory_[offset + i] = static_cast<std::uint8_t>(memory_[offset + i] & ~mask);
            --budget;
          }
        }
      }
    }
    return FlashResult::kOk;
  }
  in_op_ = true;
  op_is_erase_ = false;
  op_offset_ = offset;
  op_length_ = kPage;
  op_end_ = now_ + timing_.page_program;
  op_source_ = page;
  std::memcpy(op_page_, page, kPage);
  op_fails_ = fail_at_ != 0 && mutating_ops_ == fail_at_;
  busy_time_ += timing_.page_program;
  ++programs_;
  return FlashResult::kOk;
}

void NorFlashFake::complete() {
  in_op_ = false;
  if (op_fails_) {
    last_result_ = FlashResult::kFailed;
    return;
  }
  last_result_ = FlashResult::kOk;
  if (op_is_erase_) {
    std::memset(memory_.data() + op_offset_, 0xFF, op_length_);
    return;
  }
  if (std::memcmp(op_source_, op_page_, kPage) != 0) {
    violation(describe("page buffer changed while programming", op_offset_, kPage));
  }
  for (std::uint32_t i = 0; i < kPage; ++i) memory_[op_offset_ + i] &= op_page_[i];
}

bool NorFlashFake::busy() {
  if (power_lost_) return false;
  if (in_op_ && now_ >= op_end_) complete();
  return in_op_;
}

FlashResult NorFlashFake::read(std::uint32_t offset, void* destination, std::uint32_t length) {
  if (power_lost_) return FlashResult::kFailed;
  if (busy()) {
    violation(describe("read while busy", offset, length));
    return FlashResult::kBusy;
  }
  if (offset > kSize || length > kSize - offset) return FlashResult::kInvalidArgument;
  std::memcpy(destination, memory_.data() + offset, length);
  return FlashResult::kOk;
}

void install_committed_image(NorFlashFake& flash, const std::vector<std::uint8_t>& payload,
                             std::uint32_t image_version) {
  flash.load(memory_map::kAppOffset, payload.data(), payload.size());
  journal::Record commit;
  commit.type = journal::RecordType::kCommit;
  commit.sequence = 1;
  commit.payload_length = static_cast<std::uint32_t>(payload.size());
  commit.payload_crc32 = crc32(0, payload.data(), payload.size());
  commit.image_version = image_version;
  SoftwareSha256 sha;
  sha.update(payload.data(), payload.size());
  sha.finish(commit.payload_sha256);
  std::uint8_t bytes[journal::kRecordSize];
  journal::encode_record(commit, bytes);
  flash.load(memory_map::kJournalOffset, bytes, sizeof bytes);
}

}  // namespace rtcanboot::test
