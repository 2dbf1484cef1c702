// The application kit: what an application linked at 0x7002_0000 uses to cooperate with the
// rtcanboot bootloader. See docs/porting-an-application.md.
#pragma once

#include <cstdint>

#include "rtcanboot/imxrt1064/handover.hpp"

namespace rtcanboot::app_kit {

using BootInfo = imxrt1064::handover::Info;

// What the bootloader handed over before it started this application (node-ID, bit rate,
// bootloader version, software ID, image version). False when the application was not started
// by the bootloader (debugger, power-on without bootloader): use the application's defaults.
bool boot_info(BootInfo& out);

// The serial number (0x1018:4) the bootloader reports for this board: the provisioning record's
// serial when it holds one, else the chip's unique-ID fuses (imxrt1064::chip_serial_number()).
// An application puts it in its identity so LSS and SDO show the same node as the bootloader.
std::uint32_t serial_number();

// Sets the entry request (SRC_GPR5 = 0xB007_10AD) and resets the chip with SYSRESETREQ; the
// bootloader then stays active and waits for a download. Call it once the answer to the
// request (e.g. the SDO response to 0x1F51:1 = 0) has left the CAN controller.
[[noreturn]] void request_bootloader();
// The same with the self-test request: the bootloader runs its bring-up self-test, prints it on
// the console and keeps it in 0x5F01 (docs/bring-up.md), then waits like after
// request_bootloader().
[[noreturn]] void request_self_test();

// The same for a 0x1F51:1 = 0 (stop) that this application has not answered: the bootloader sends
// the SDO answer as node `node_id` right after its boot-up message, so the master's next request
// reaches a node that serves it (docs/canopen.md, "What a master may expect after 0x1F51:1 = 0").
// Call it from ProgramControl::control() instead of returning (the SDO server then never answers),
// once the frames already queued have left the CAN controller.
[[noreturn]] void request_bootloader_answering_stop(std::uint8_t node_id);

enum class ConfirmResult : std::uint8_t {
  kConfirmed,               // the CONFIRM record is on the flash; the trial watchdog is off
  kAlreadyConfirmed,        // nothing to do (the trial watchdog is off too)
  kNotStartedByBootloader,  // debugger or no bootloader: nothing written
  kNotInstalled,            // the journal's image is not the one running: nothing written
  kFlashError,              // the record could not be written: the next start is a trial again
};

// Tells the bootloader that this image runs (trial boot, docs/trial-boot.md). Call it once the
// application is up: its CAN node started and its own checks passed. Until then the bootloader's
// watchdog (RTWDOG, RTCANBOOT_TRIAL_WATCHDOG_MS) resets the chip, and an image that does not
// confirm within its boot attempts is no longer started. Blocks for one page program (about
// 1 ms, at most a few ms) with interrupts masked. Confirming turns RTWDOG off; an application
// that wants a watchdog configures its own afterwards.
ConfirmResult confirm();
const char* describe(ConfirmResult result);

// The highest security counter committed on this node (install journal, read through the
// memory-mapped flash; 0 when none): what the application publishes in 0x5F00:9.
std::uint32_t installed_security_counter();

}  // namespace rtcanboot::app_kit
