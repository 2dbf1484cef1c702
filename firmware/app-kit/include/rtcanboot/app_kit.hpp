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

// Sets the entry request (SRC_GPR5 = 0xB007_10AD) and resets the chip with SYSRESETREQ; the
// bootloader then stays active and waits for a download. Call it once the answer to the
// request (e.g. the SDO response to 0x1F51:1 = 0) has left the CAN controller.
[[noreturn]] void request_bootloader();

}  // namespace rtcanboot::app_kit
