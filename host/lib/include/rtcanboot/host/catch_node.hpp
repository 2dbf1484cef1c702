// `rtcanboot stop --catch`: catches a node in its bootloader while the user power-cycles it.
// The host repeats the entry request every `period` (an expedited write of 0 to 0x1F51:1, stop
// program: what a running rtcanboot application and the bootloader's listen window both take);
// a bootloader that receives it inside its listen window sends its boot-up and answers, and
// stays. Every answer or boot-up of the node is checked by reading 0x5F00:1 (which program
// runs): only "bootloader" ends the catch (docs/host-tool.md, "Catching a node").
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "rtcanboot/canopen_defs.hpp"
#include "rtcanboot/host/master.hpp"
#include "rtcanboot/types.hpp"

namespace rtcanboot::host {

struct CatchOptions {
  std::uint8_t node = 0;
  // How often the request is repeated: 20 ms puts one inside the 50 ms default listen window
  // even at 10 kbit/s (a request takes up to 13.5 ms there; docs/trial-boot.md).
  Micros period = 20'000;
  // Give up after this long (kNoNode when the node sent nothing at all, else kTimeout).
  Micros timeout = 60'000'000;
};

struct CatchResult {
  Micros after = 0;            // from the first request to the answer that caught it
  std::uint64_t requests = 0;  // requests sent
  canopen::BootReason reason = canopen::BootReason::kHeldByMaster;  // 0x5F00:5 of the bootloader
};

// The request frame: SDO expedited download of one byte 0 into 0x1F51:1 to `node`.
CanFrame catch_request(std::uint8_t node);

// Sends the request every options.period until the node's bootloader runs, or throws Error
// (kNoNode: nothing heard from the node; kTimeout: it answered but never stayed in the
// bootloader; kInterrupted; kBus). `note` gets one line per event worth telling the user.
CatchResult catch_node(Master& master, const CatchOptions& options,
                       const std::function<void(const std::string&)>& note = {});

}  // namespace rtcanboot::host
