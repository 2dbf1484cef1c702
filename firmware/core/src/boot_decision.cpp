#include "rtcanboot/boot_decision.hpp"

#include "rtcanboot/bytes.hpp"
#include "rtcanboot/hash.hpp"
#include "rtcanboot/memory_map.hpp"

namespace rtcanboot {

namespace {

namespace mm = memory_map;

// The initial SP is the top of a stack: above the region start, at most its end.
constexpr bool stack_top_in(std::uint32_t sp, std::uint32_t base, std::uint32_t size) {
  return sp > base && sp - base <= size;
}

// OCRAM2 and the FlexRAM OCRAM are adjacent: one range.
static_assert(mm::kOcram2Base + mm::kOcram2Size == mm::kOcramFlexBase);

}  // namespace

bool vector_table_sane(std::uint32_t initial_sp, std::uint32_t reset_handler,
                       std::uint32_t payload_length) {
  const bool sp_ok =
      initial_sp % 4 == 0 &&
      (stack_top_in(initial_sp, mm::kDtcmBase, mm::kDtcmSize) ||
       stack_top_in(initial_sp, mm::kOcram2Base, mm::kOcram2Size + mm::kOcramFlexSize));
  const std::uint32_t entry = reset_handler & ~1U;
  const bool handler_ok = (reset_handler & 1U) != 0 && entry >= mm::kAppAddress &&
                          entry - mm::kAppAddress < payload_length &&
                          payload_length <= mm::kAppSize;
  return sp_ok && handler_ok;
}

void ImageCheck::begin(FlashPort& flash, const journal::InstalledImage& image) {
  length_ = image.payload_length;
  expected_crc_ = image.payload_crc32;
  done_ = 0;
  crc_ = 0;
  result_ = Result::kDamaged;
  if (!image.valid || image.payload_length < 8 || image.payload_length > mm::kAppSize) return;
  std::uint8_t vectors[8];
  if (flash.read(mm::kAppOffset, vectors, sizeof vectors) != FlashResult::kOk) return;
  if (!vector_table_sane(load_le32(vectors), load_le32(vectors + 4), image.payload_length)) {
    return;
  }
  result_ = Result::kRunning;
}

ImageCheck::Result ImageCheck::step(FlashPort& flash, std::uint32_t budget) {
  std::uint8_t chunk[mm::kPageSize];
  while (result_ == Result::kRunning && budget != 0) {
    const std::uint32_t left = length_ - done_;
    std::uint32_t take = left < sizeof chunk ? left : static_cast<std::uint32_t>(sizeof chunk);
    if (take > budget) take = budget;
    if (flash.read(mm::kAppOffset + done_, chunk, take) != FlashResult::kOk) {
      result_ = Result::kDamaged;
      break;
    }
    crc_ = crc32(crc_, chunk, take);
    done_ += take;
    budget -= take;
    if (done_ == length_) result_ = crc_ == expected_crc_ ? Result::kIntact : Result::kDamaged;
  }
  return result_;
}

BootDecision decide_boot(FlashPort& flash, const journal::InstalledImage& image,
                         bool entry_requested, std::uint8_t boot_attempts) {
  BootDecision decision;
  if (!image.valid) {
    decision.reason = canopen::BootReason::kNoValidApplication;
    return decision;
  }
  // With an entry request the node stays here anyway: the vector table now, the CRC later.
  ImageCheck check;
  check.begin(flash, image);
  if (!entry_requested) check.step(flash, mm::kAppSize);
  if (check.result() == ImageCheck::Result::kDamaged) {
    decision.reason = canopen::BootReason::kApplicationDamaged;
    return decision;
  }
  decision.application_valid = true;
  decision.trial = boot_attempts != 0 && !image.confirmed;
  if (entry_requested) {
    decision.reason = canopen::BootReason::kEntryRequest;
    decision.crc_check_deferred = true;
    return decision;
  }
  if (decision.trial && image.attempts >= boot_attempts) {
    decision.reason = canopen::BootReason::kNotConfirmed;
    return decision;
  }
  decision.start_application = true;
  decision.reason = canopen::BootReason::kBootWindow;
  return decision;
}

}  // namespace rtcanboot
