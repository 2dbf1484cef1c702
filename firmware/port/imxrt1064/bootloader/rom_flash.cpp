#include "rom_flash.hpp"

#include <cstring>

#include "rtcanboot/imxrt1064/cortex_m7.hpp"
#include "rtcanboot/memory_map.hpp"

namespace rtcanboot::imxrt1064 {

namespace mm = memory_map;

namespace {

// The RAM copy of the FCB the ROM is initialised with (never a pointer into the flash it
// reconfigures). Identical to the FCB at offset 0: both come from make_w25q32jv_fcb().
constinit FlexspiNorConfig g_config = make_w25q32jv_fcb();

// Datasheet maxima with margin (W25Q32JV: page 3 ms, 4 KiB 400 ms, 32 KiB 1.6 s, 64 KiB 2 s).
constexpr Micros kProgramTimeout = 10'000;
constexpr Micros kSectorEraseTimeout = 1'000'000;
constexpr Micros kBlock32EraseTimeout = 3'000'000;
constexpr Micros kBlock64EraseTimeout = 4'000'000;

}  // namespace

FlashResult RomFlash::init() {
  driver_ = rom::nor_driver();
  if (driver_ == nullptr) return FlashResult::kFailed;
  const std::int32_t status = driver_->init(rom::kFlexspi2Instance, &g_config);
  driver_->clear_cache(rom::kFlexspi2Instance);
  dsb();
  isb();
  return status == rom::kStatusSuccess ? FlashResult::kOk : FlashResult::kFailed;
}

bool RomFlash::command(std::uint32_t sequence, std::uint32_t offset) {
  rom::FlexspiXfer xfer{};
  xfer.operation = rom::XferOperation::kCommand;
  xfer.base_address = offset;
  xfer.seq_id = sequence;
  xfer.seq_num = 1;
  return driver_->xfer(rom::kFlexspi2Instance, &xfer) == rom::kStatusSuccess;
}

bool RomFlash::read_status(std::uint32_t& status) {
  status = 0;
  rom::FlexspiXfer xfer{};
  xfer.operation = rom::XferOperation::kRead;
  xfer.seq_id = lut::kSeqReadStatus;
  xfer.seq_num = 1;
  xfer.rx_buffer = &status;
  xfer.rx_size = 1;
  return driver_->xfer(rom::kFlexspi2Instance, &xfer) == rom::kStatusSuccess;
}

FlashResult RomFlash::check_writable(std::uint32_t offset, std::uint32_t length) {
  if (driver_ == nullptr) return FlashResult::kFailed;
  if (operation_ != Operation::kNone || !device_idle()) return FlashResult::kBusy;
  if (length == 0 || offset >= mm::kFlashSize || length > mm::kFlashSize - offset) {
    return FlashResult::kInvalidArgument;
  }
  // The bootloader's own 128 KiB are never erased or programmed.
  if (offset < mm::kBootloaderOffset + mm::kBootloaderSize) return FlashResult::kProtected;
  return FlashResult::kOk;
}

FlashResult RomFlash::start(std::uint32_t sequence, std::uint32_t offset, std::uint32_t length,
                            Operation operation, Micros timeout) {
  std::uint32_t status = 0;
  if (!command(lut::kSeqWriteEnable, offset) || !read_status(status) ||
      (status & kStatusWriteEnabled) == 0) {
    return FlashResult::kFailed;
  }
  bool started = false;
  if (operation == Operation::kProgram) {
    rom::FlexspiXfer xfer{};
    xfer.operation = rom::XferOperation::kWrite;
    xfer.base_address = offset;
    xfer.seq_id = sequence;
    xfer.seq_num = 1;
    xfer.tx_buffer = page_;
    xfer.tx_size = mm::kPageSize;
    started = driver_->xfer(rom::kFlexspi2Instance, &xfer) == rom::kStatusSuccess;
  } else {
    started = command(sequence, offset);
  }
  if (!started) return FlashResult::kFailed;
  mpu_lock_flash_window(true);
  operation_ = operation;
  offset_ = offset;
  length_ = length;
  deadline_ = clock_.now() + timeout;
  result_ = FlashResult::kBusy;
  ++operations_;
  return FlashResult::kOk;
}

FlashResult RomFlash::start_erase(std::uint32_t offset, std::uint32_t length) {
  const FlashResult writable = check_writable(offset, length);
  if (writable != FlashResult::kOk) return writable;
  std::uint32_t sequence = 0;
  Micros timeout = 0;
  switch (length) {
    case mm::kSectorSize:
      sequence = lut::kSeqEraseSector;
      timeout = kSectorEraseTimeout;
      break;
    case mm::kBlock32Size:
      sequence = lut::kSeqEraseBlock32;
      timeout = kBlock32EraseTimeout;
      break;
    case mm::kBlock64Size:
      sequence = lut::kSeqEraseBlock64;
      timeout = kBlock64EraseTimeout;
      break;
    default:
      return FlashResult::kInvalidArgument;
  }
  if (offset % length != 0) return FlashResult::kInvalidArgument;
  return start(sequence, offset, length, Operation::kErase, timeout);
}

FlashResult RomFlash::start_program(std::uint32_t offset, const std::uint8_t* page) {
  const FlashResult writable = check_writable(offset, mm::kPageSize);
  if (writable != FlashResult::kOk) return writable;
  if (offset % mm::kPageSize != 0 || page == nullptr) return FlashResult::kInvalidArgument;
  std::memcpy(page_, page, mm::kPageSize);  // word-aligned source for the ROM's TX FIFO fill
  return start(lut::kSeqPageProgram, offset, mm::kPageSize, Operation::kProgram, kProgramTimeout);
}

void RomFlash::finish(FlashResult result) {
  // The AHB RX buffers and the D-cache may still hold the old contents of the range.
  driver_->clear_cache(rom::kFlexspi2Instance);
  if (!device_may_be_busy_) mpu_lock_flash_window(false);
  dcache_invalidate_range(mm::kFlashBase + offset_, length_);
  operation_ = Operation::kNone;
  result_ = result;
}

bool RomFlash::busy() {
  if (operation_ == Operation::kNone) return false;
  std::uint32_t status = 0;
  if (!read_status(status)) {
    device_may_be_busy_ = true;
    finish(FlashResult::kFailed);
    return false;
  }
  if ((status & kStatusBusy) != 0) {
    if (clock_.now() <= deadline_) return true;
    // Past the datasheet maximum: report it. The device may still be busy, so every later
    // access first checks the status register (device_idle()).
    device_may_be_busy_ = true;
    finish(FlashResult::kTimeout);
    return false;
  }
  finish(FlashResult::kOk);
  return false;
}

bool RomFlash::device_idle() {
  if (!device_may_be_busy_) return true;
  std::uint32_t status = 0;
  if (!read_status(status) || (status & kStatusBusy) != 0) return false;
  device_may_be_busy_ = false;
  driver_->clear_cache(rom::kFlexspi2Instance);
  mpu_lock_flash_window(false);
  dcache_invalidate_range(mm::kFlashBase, mm::kFlashSize);
  return true;
}

FlashResult RomFlash::read(std::uint32_t offset, void* destination, std::uint32_t length) {
  if (operation_ != Operation::kNone) return FlashResult::kBusy;
  if (driver_ != nullptr && !device_idle()) return FlashResult::kBusy;
  if (offset >= mm::kFlashSize || length > mm::kFlashSize - offset) {
    return FlashResult::kInvalidArgument;
  }
  // AHB read through the (invalidated) D-cache; the copy routine itself lives in ITCM.
  std::memcpy(destination, reinterpret_cast<const void*>(mm::kFlashBase + offset), length);
  return FlashResult::kOk;
}

void RomFlash::prepare_for_execute() {
  if (driver_ != nullptr) driver_->clear_cache(rom::kFlexspi2Instance);
  dcache_clean_invalidate_and_disable();
  icache_invalidate_and_disable();
}

}  // namespace rtcanboot::imxrt1064
