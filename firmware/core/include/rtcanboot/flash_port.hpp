// The asynchronous flash port: how the core asks the port (ROM FlexSPI NOR API on the RT1064,
// a fake in unit tests) to erase, program and read the QSPI NOR. Offsets are flash offsets
// (0 = 0x7000_0000). One operation at a time; the core polls busy() from poll(now) so CAN
// reception never waits for the flash.
#pragma once

#include <cstdint>

namespace rtcanboot {

enum class FlashResult : std::uint8_t {
  kOk = 0,
  kBusy,             // an operation is still running; try again after busy() returns false
  kInvalidArgument,  // misaligned offset, bad erase size, out of range
  kProtected,        // outside the region the core may touch (bootloader, foreign area)
  kFailed,           // the device or ROM reported an error
  kTimeout,          // the operation did not finish in the datasheet maximum
};

class FlashPort {
 public:
  // Starts erasing `length` bytes at `offset`: length is 4, 32 or 64 KiB and offset is aligned
  // to it. Returns kOk when the erase was started.
  virtual FlashResult start_erase(std::uint32_t offset, std::uint32_t length) = 0;
  // Starts programming one 256-byte page at a page-aligned offset. `page` must stay valid and
  // unchanged until busy() returns false.
  virtual FlashResult start_program(std::uint32_t offset, const std::uint8_t* page) = 0;
  // Advances the running operation; true while it is still in progress.
  virtual bool busy() = 0;
  // Result of the last operation once busy() returned false.
  virtual FlashResult last_result() const = 0;
  // Reads flash contents. Only while not busy (a read during erase/program is a fault on the chip).
  virtual FlashResult read(std::uint32_t offset, void* destination, std::uint32_t length) = 0;

 protected:
  ~FlashPort() = default;
};

}  // namespace rtcanboot
