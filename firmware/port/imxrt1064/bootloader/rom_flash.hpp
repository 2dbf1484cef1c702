// rtcanboot::FlashPort on the boot ROM FlexSPI NOR API. Erase and page program are started
// without waiting for the flash: xfer runs the write-enable sequence and then the erase or page
// program sequence of our LUT, and busy() polls the status register with a read-status xfer.
// So the main loop keeps serving CAN during a 4 KiB..64 KiB erase. Everything here runs from
// ITCM; nothing reads the QSPI flash until busy() has seen the operation finish, cleared the
// FlexSPI AHB buffers (clear_cache) and invalidated the D-cache over the affected range.
//
// The ROM's init loads only LUT sequence 0 into the controller and xfer runs whatever a slot
// holds (fact sheet §3.10): the port loads every sequence it runs (lut::kSeqCount from its own
// FCB) with update_lut after init, and again whenever a ROM call may have rewritten slots. It
// never runs a slot it did not load. At start it reads the JEDEC ID through the same path and
// refuses all erase/program work when it is not the W25Q32JV's.
#pragma once

#include <cstdint>

#include "rtcanboot/canopen_defs.hpp"
#include "rtcanboot/flash_port.hpp"
#include "rtcanboot/imxrt1064/rom_api.hpp"
#include "rtcanboot/imxrt1064/timebase.hpp"

namespace rtcanboot::imxrt1064 {

// The name of a boot ROM status code (fact sheet §3.4), e.g. "kStatus_FLEXSPI_InvalidSequence".
const char* rom_status_name(std::int32_t status);

class RomFlash final : public FlashPort {
 public:
  // The W25Q32JV answers 0x9F with manufacturer 0xEF, memory type 0x40, capacity 0x16.
  static constexpr std::uint32_t kJedecId = 0x16'40EF;  // bytes EF 40 16, little-endian

  explicit RomFlash(Timebase& clock) : clock_(clock) {}

  // Finds the ROM driver, initialises FlexSPI2 from the RAM copy of our FCB, loads our LUT
  // sequences and reads the JEDEC ID. Interrupts must be masked and nothing may execute from
  // the flash (the ROM reprograms FlexSPI2). Anything but kOk leaves erase/program refused;
  // refusal() says why (0x1F57 detail) and the console has a line naming the cause.
  FlashResult init();
  canopen::FlashDetail refusal() const { return refusal_; }
  std::uint32_t jedec_id() const { return jedec_id_; }
  // The last non-zero ROM status (0 if none).
  std::int32_t last_rom_error() const { return last_rom_error_; }

  FlashResult start_erase(std::uint32_t offset, std::uint32_t length) override;
  FlashResult start_program(std::uint32_t offset, const std::uint8_t* page) override;
  bool busy() override;
  FlashResult last_result() const override { return result_; }
  FlashResult read(std::uint32_t offset, void* destination, std::uint32_t length) override;

  // Before jumping to an application: AHB buffers reset, D-cache cleaned and invalidated over
  // the whole flash window, I-cache invalidated.
  void prepare_for_execute();

  std::uint32_t operations() const { return operations_; }

  // Self-test (bring-up) access. Reads `bytes` (<= 16) of the SFDP area at `address` into the
  // word-aligned `words`.
  bool read_sfdp(std::uint32_t address, std::uint32_t* words, std::uint32_t bytes);
  // Reads the JEDEC ID again (0 when the read fails).
  std::uint32_t read_jedec_id();
  // Compares the controller's LUT words of the sequences the port loads with its FCB: the number
  // of words that differ, the first of them in `first` (its index).
  std::uint32_t lut_mismatches(std::uint32_t* first) const;
  static constexpr std::uint32_t lut_words_loaded() { return 4 * lut::kSeqCount; }

 private:
  enum class Operation : std::uint8_t { kNone, kErase, kProgram };
  // update_lut of sequences 0..lut::kSeqCount-1 from our FCB, unless already loaded.
  bool load_sequences();
  // A ROM call's status: 0 is true; anything else is logged with its name and is false.
  bool check(std::int32_t status, const char* what);
  bool xfer(rom::FlexspiXfer& transfer, const char* what);
  bool command(std::uint32_t sequence, std::uint32_t offset, const char* what);
  bool read_register(std::uint32_t sequence, std::uint32_t& value, std::uint32_t bytes,
                     const char* what);
  bool read_status(std::uint32_t& status) {
    return read_register(lut::kSeqReadStatus, status, 1, "read status");
  }
  FlashResult check_writable(std::uint32_t offset, std::uint32_t length);
  FlashResult start(std::uint32_t sequence, std::uint32_t offset, std::uint32_t length,
                    Operation operation, Micros timeout);
  void finish(FlashResult result);
  // False while a timed-out or failed operation may still keep the device busy.
  bool device_idle();

  Timebase& clock_;
  const rom::NorDriver* driver_ = nullptr;
  bool lut_loaded_ = false;
  canopen::FlashDetail refusal_ = canopen::FlashDetail::kFlashPortFailed;  // until init() succeeds
  std::uint32_t jedec_id_ = 0;
  std::int32_t last_rom_error_ = 0;
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
