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
};

// The first two vector table entries of an application: initial SP inside DTCM or OCRAM
// (word-aligned, above the region start, at most its end), reset handler inside the payload with
// the Thumb bit set.
bool vector_table_sane(std::uint32_t initial_sp, std::uint32_t reset_handler,
                       std::uint32_t payload_length);

// Checks the committed image in flash: vector table, then CRC-32 of the whole payload. The flash
// must be idle. Reads the payload once.
bool application_intact(FlashPort& flash, const journal::InstalledImage& image);

// Valid commit + intact image + no entry request + (confirmed, or fewer than `boot_attempts`
// unconfirmed starts) -> start; otherwise the reason to stay. `boot_attempts` 0: no trial boot.
BootDecision decide_boot(FlashPort& flash, const journal::InstalledImage& image,
                         bool entry_requested, std::uint8_t boot_attempts);

}  // namespace rtcanboot
