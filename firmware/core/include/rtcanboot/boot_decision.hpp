// The boot decision: start the installed application or stay in the bootloader, and why.
#pragma once

#include <cstdint>

#include "rtcanboot/canopen_defs.hpp"
#include "rtcanboot/flash_port.hpp"
#include "rtcanboot/install_journal.hpp"

namespace rtcanboot {

struct BootDecision {
  // A valid application may start (after the boot window; the owner decides when).
  bool application_valid = false;
  bool start_application = false;
  // Starting it is a trial: record the attempt first and arm the watchdog.
  bool trial = false;
  canopen::BootReason reason = canopen::BootReason::kNoValidApplication;
  // An entry request: the node stays in the bootloader whatever the CRC says, so only the vector
  // table was checked; the owner runs the payload's CRC-32 check afterwards (ImageCheck) and
  // answers the request that brought it here first.
  bool crc_check_deferred = false;
};

// The first two vector table entries of an application: initial SP inside DTCM or OCRAM
// (word-aligned, above the region start, at most its end), reset handler inside the payload with
// the Thumb bit set.
bool vector_table_sane(std::uint32_t initial_sp, std::uint32_t reset_handler,
                       std::uint32_t payload_length);

// The CRC-32 check of a committed image in flash, a slice at a time: reading 3.9 MiB takes about
// 100 ms, longer than any SDO answer may wait. The flash must be idle during each step().
class ImageCheck {
 public:
  enum class Result : std::uint8_t { kRunning, kIntact, kDamaged };

  // Starts over for `image`: vector table first (a damaged one ends the check at once).
  void begin(FlashPort& flash, const journal::InstalledImage& image);
  // Reads up to `budget` more bytes of the payload.
  Result step(FlashPort& flash, std::uint32_t budget);
  bool running() const { return result_ == Result::kRunning; }
  Result result() const { return result_; }
  // Whether `image` is the one being checked (a download that committed another one ends it).
  bool checks(const journal::InstalledImage& image) const {
    return image.payload_length == length_ && image.payload_crc32 == expected_crc_;
  }
  void drop() { result_ = Result::kIntact; }

 private:
  Result result_ = Result::kIntact;
  std::uint32_t length_ = 0;
  std::uint32_t expected_crc_ = 0;
  std::uint32_t done_ = 0;
  std::uint32_t crc_ = 0;
};

// Valid commit + intact image + no entry request + (confirmed, or fewer than `boot_attempts`
// unconfirmed starts) -> start; otherwise the reason to stay. `boot_attempts` 0: no trial boot.
// With an entry request the CRC check is left to the owner (crc_check_deferred).
BootDecision decide_boot(FlashPort& flash, const journal::InstalledImage& image,
                         bool entry_requested, std::uint8_t boot_attempts);

}  // namespace rtcanboot
