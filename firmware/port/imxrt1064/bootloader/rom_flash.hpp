// rtcanboot::FlashPort on the boot ROM FlexSPI NOR API. Erase and page program are started
// without waiting for the flash: xfer runs the write-enable sequence and then the erase or page
// program sequence of our LUT, and busy() polls the status register with a read-status xfer.
// So the main loop keeps serving CAN during a 4 KiB..64 KiB erase. Everything here runs from
// ITCM; nothing reads the QSPI flash until busy() has seen the operation finish, cleared the
// FlexSPI AHB buffers (clear_cache) and invalidated the D-cache over the affected range.
#pragma once

#include <cstdint>

#include "rtcanboot/imxrt1064/rom_api.hpp"
#include "rtcanboot/flash_port.hpp"
#include "rtcanboot/imxrt1064/timebase.hpp"

namespace rtcanboot::imxrt1064 {

class RomFlash final : public FlashPort {
 public:
  explicit RomFlash(Timebase& clock) : clock_(clock) {}

  // Finds the ROM driver and initialises FlexSPI2 from the RAM copy of our FCB. Interrupts
  // must be masked and nothing may execute from the flash (the ROM reprograms FlexSPI2).
  FlashResult init();

  FlashResult start_erase(std::uint32_t offset, std::uint32_t length) override;
  FlashResult start_program(std::uint32_t offset, const std::uint8_t* page) override;
  bool busy() override;
  FlashResult last_result() const override { return result_; }
  FlashResult read(std::uint32_t offset, void* destination, std::uint32_t length) override;

  // Before jumping to an application: AHB buffers reset, D-cache cleaned and invalidated over
  // the whole flash window, I-cache invalidated.
  void prepare_for_execute();

  std::uint32_t operations() const { return operations_; }

 private:
  enum class Operation : std::uint8_t { kNone, kErase, kProgram };
  bool command(std::uint32_t sequence, std::uint32_t offset);
  bool read_status(std::uint32_t& status);
  FlashResult check_writable(std::uint32_t offset, std::uint32_t length);
  FlashResult start(std::uint32_t sequence, std::uint32_t offset, std::uint32_t length,
                    Operation operation, Micros timeout);
  void finish(FlashResult result);
  // False while a timed-out or failed operation may still keep the device busy.
  bool device_idle();

  Timebase& clock_;
  const rom::NorDriver* driver_ = nullptr;
  Operation operation_ = Operation::kNone;
  FlashResult result_ = FlashResult::kOk;
  std::uint32_t offset_ = 0;
  std::uint32_t length_ = 0;
  Micros deadline_ = 0;
  std::uint32_t operations_ = 0;
  bool device_may_be_busy_ = false;
  std::uint32_t page_[256 / 4] = {};  // word-aligned copy of the page being programmed
};

}  // namespace rtcanboot::imxrt1064
