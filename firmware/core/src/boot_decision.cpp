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

bool application_intact(FlashPort& flash, const journal::InstalledImage& image) {
  if (!image.valid || image.payload_length < 8 || image.payload_length > mm::kAppSize) return false;
  std::uint8_t chunk[mm::kPageSize];
  if (flash.read(mm::kAppOffset, chunk, 8) != FlashResult::kOk) return false;
  if (!vector_table_sane(load_le32(chunk), load_le32(chunk + 4), image.payload_length)) {
    return false;
  }
  std::uint32_t crc = 0;
  for (std::uint32_t done = 0; done < image.payload_length;) {
    const std::uint32_t left = image.payload_length - done;
    const std::uint32_t take =
        left < sizeof chunk ? left : static_cast<std::uint32_t>(sizeof chunk);
    if (flash.read(mm::kAppOffset + done, chunk, take) != FlashResult::kOk) return false;
    crc = crc32(crc, chunk, take);
    done += take;
  }
  return crc == image.payload_crc32;
}

BootDecision decide_boot(FlashPort& flash, const journal::InstalledImage& image,
                         bool entry_requested, std::uint8_t boot_attempts) {
  BootDecision decision;
  if (!image.valid) {
    decision.reason = canopen::BootReason::kNoValidApplication;
    return decision;
  }
  if (!application_intact(flash, image)) {
    decision.reason = canopen::BootReason::kApplicationDamaged;
    return decision;
  }
  decision.application_valid = true;
  decision.trial = boot_attempts != 0 && !image.confirmed;
  if (entry_requested) {
    decision.reason = canopen::BootReason::kEntryRequest;
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
