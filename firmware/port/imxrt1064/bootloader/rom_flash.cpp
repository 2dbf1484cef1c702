#include "rom_flash.hpp"

#include <cstring>

#include "rtcanboot/imxrt1064/console.hpp"
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

static_assert(lut::kSeqCount <= 16, "the controller has 16 LUT slots");
static_assert(lut::kSeqReadJedecId < lut::kSeqCount && lut::kSeqReadSfdp < lut::kSeqCount &&
                  lut::kSeqEraseBlock32 < lut::kSeqCount && lut::kSeqPageProgram < lut::kSeqCount,
              "every sequence the port runs is one it loads");

void log_hex_byte(std::uint32_t value) {
  constexpr char kDigits[] = "0123456789ABCDEF";
  const char text[3] = {kDigits[(value >> 4) & 0xF], kDigits[value & 0xF], 0};
  console_write(text);
}

void log_id(std::uint32_t id) {
  for (unsigned i = 0; i < 3; ++i) {
    if (i != 0) console_write(" ");
    log_hex_byte(id >> (8 * i));
  }
}

}  // namespace

const char* rom_status_name(std::int32_t status) {
  switch (status) {
    case 0:
      return "kStatus_Success";
    case 1:
      return "kStatus_Fail";
    case 4:
      return "kStatus_InvalidArgument";
    case 5:
      return "kStatus_Timeout";
    case 6000:
      return "kStatus_FLEXSPI_SequenceExecutionTimeout";
    case 6001:
      return "kStatus_FLEXSPI_InvalidSequence";
    case 6002:
      return "kStatus_FLEXSPI_DeviceTimeout";
    case 20100:
      return "kStatus_FLEXSPINOR_ProgramFail";
    case 20101:
      return "kStatus_FLEXSPINOR_EraseSectorFail";
    case 20102:
      return "kStatus_FLEXSPINOR_EraseAllFail";
    case 20103:
      return "kStatus_FLEXSPINOR_WaitTimeout";
    case 20104:
      return "kStatus_FLEXSPINOR_NotSupported";
    case 20105:
      return "kStatus_FLEXSPINOR_WriteAlignmentError";
    case 20106:
      return "kStatus_FLEXSPINOR_CommandFailure";
    case 20107:
      return "kStatus_FLEXSPINOR_SFDP_NotFound";
    case 20108:
      return "kStatus_FLEXSPINOR_Unsupported_SFDP_Version";
    case 20109:
      return "kStatus_FLEXSPINOR_Flash_NotFound";
    case 20110:
      return "kStatus_FLEXSPINOR_DTRRead_DummyProbeFailed";
    // The SDK header numbers the same FlexSPI NOR codes in group 200 (fact sheet §3.4).
    case 20000:
      return "kStatus_FLEXSPINOR_ProgramFail (group 200)";
    case 20001:
      return "kStatus_FLEXSPINOR_EraseSectorFail (group 200)";
    case 20002:
      return "kStatus_FLEXSPINOR_EraseAllFail (group 200)";
    case 20003:
      return "kStatus_FLEXSPINOR_WaitTimeout (group 200)";
    case 20006:
      return "kStatus_FLEXSPINOR_CommandFailure (group 200)";
    case 20007:
      return "kStatus_FLEXSPINOR_SFDP_NotFound (group 200)";
    default:
      return "unknown ROM status";
  }
}

bool RomFlash::check(std::int32_t status, const char* what) {
  if (status == rom::kStatusSuccess) return true;
  last_rom_error_ = status;
  console_write("rtcanboot: ROM ");
  console_write(what);
  console_write(" failed: ");
  console_write_decimal(static_cast<std::uint32_t>(status));
  console_write(" ");
  console_write(rom_status_name(status));
  console_write("\n");
  return false;
}

bool RomFlash::load_sequences() {
  if (lut_loaded_) return true;
  lut_loaded_ =
      check(driver_->update_lut(rom::kFlexspi2Instance, 0, g_config.lookup_table, lut::kSeqCount),
            "update_lut");
  return lut_loaded_;
}

bool RomFlash::xfer(rom::FlexspiXfer& transfer, const char* what) {
  if (!load_sequences()) return false;
  return check(driver_->xfer(rom::kFlexspi2Instance, &transfer), what);
}

bool RomFlash::command(std::uint32_t sequence, std::uint32_t offset, const char* what) {
  rom::FlexspiXfer transfer{};
  transfer.operation = rom::XferOperation::kCommand;
  transfer.base_address = offset;
  transfer.seq_id = sequence;
  transfer.seq_num = 1;
  return xfer(transfer, what);
}

bool RomFlash::read_register(std::uint32_t sequence, std::uint32_t& value, std::uint32_t bytes,
                             const char* what) {
  value = 0;  // a word-aligned receive buffer: the ROM refuses others (fact sheet §3.10)
  rom::FlexspiXfer transfer{};
  transfer.operation = rom::XferOperation::kRead;
  transfer.seq_id = sequence;
  transfer.seq_num = 1;
  transfer.rx_buffer = &value;
  transfer.rx_size = bytes;
  return xfer(transfer, what);
}

FlashResult RomFlash::init() {
  driver_ = rom::nor_driver();
  if (driver_ == nullptr) {
    console_write("rtcanboot: no ROM FlexSPI NOR driver: flash work refused\n");
    return FlashResult::kFailed;
  }
  refusal_ = canopen::FlashDetail::kFlashPortFailed;
  lut_loaded_ = false;  // init rewrites slot 0 and leaves the others as they were
  const bool initialised = check(driver_->init(rom::kFlexspi2Instance, &g_config), "init");
  driver_->clear_cache(rom::kFlexspi2Instance);
  dsb();
  isb();
  if (!initialised || !load_sequences()) {
    console_write("rtcanboot: flash driver not ready: flash work refused\n");
    return FlashResult::kFailed;
  }
  if (!read_register(lut::kSeqReadJedecId, jedec_id_, 3, "xfer (read JEDEC ID)")) {
    console_write("rtcanboot: flash JEDEC ID unreadable: flash work refused\n");
    return FlashResult::kFailed;
  }
  if (jedec_id_ != kJedecId) {
    refusal_ = canopen::FlashDetail::kFlashNotIdentified;
    console_write("rtcanboot: flash JEDEC ID ");
    log_id(jedec_id_);
    console_write(", expected ");
    log_id(kJedecId);
    console_write(" (W25Q32JV): flash erase/program refused\n");
    return FlashResult::kFailed;
  }
  refusal_ = canopen::FlashDetail::kNone;
  return FlashResult::kOk;
}

FlashResult RomFlash::check_writable(std::uint32_t offset, std::uint32_t length) {
  if (driver_ == nullptr || refusal_ != canopen::FlashDetail::kNone) return FlashResult::kFailed;
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
  if (!command(lut::kSeqWriteEnable, offset, "xfer (write enable)") || !read_status(status)) {
    return FlashResult::kFailed;
  }
  if ((status & kStatusWriteEnabled) == 0) {
    console_write("rtcanboot: flash did not set WEL after write enable (status ");
    log_hex_byte(status);
    console_write(")\n");
    return FlashResult::kFailed;
  }
  bool started = false;
  if (operation == Operation::kProgram) {
    rom::FlexspiXfer transfer{};
    transfer.operation = rom::XferOperation::kWrite;
    transfer.base_address = offset;
    transfer.seq_id = sequence;
    transfer.seq_num = 1;
    transfer.tx_buffer = page_;
    transfer.tx_size = mm::kPageSize;
    started = xfer(transfer, "xfer (page program)");
  } else {
    started = command(sequence, offset, "xfer (erase)");
  }
  if (!started) {
    // The device may have taken the command before the controller reported the error.
    device_may_be_busy_ = true;
    return FlashResult::kFailed;
  }
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
    console_write("rtcanboot: flash operation past its datasheet maximum time\n");
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
  if (driver_ != nullptr && lut_loaded_ && !device_idle()) return FlashResult::kBusy;
  if (offset >= mm::kFlashSize || length > mm::kFlashSize - offset) {
    return FlashResult::kInvalidArgument;
  }
  // AHB read through the (invalidated) D-cache; the copy routine itself lives in ITCM.
  std::memcpy(destination, reinterpret_cast<const void*>(mm::kFlashBase + offset), length);
  return FlashResult::kOk;
}

bool RomFlash::read_sfdp(std::uint32_t address, std::uint32_t* words, std::uint32_t bytes) {
  if (driver_ == nullptr || bytes > 16 || operation_ != Operation::kNone || !device_idle()) {
    return false;
  }
  rom::FlexspiXfer transfer{};
  transfer.operation = rom::XferOperation::kRead;
  transfer.base_address = address;
  transfer.seq_id = lut::kSeqReadSfdp;
  transfer.seq_num = 1;
  transfer.rx_buffer = words;
  transfer.rx_size = bytes;
  return xfer(transfer, "xfer (read SFDP)");
}

std::uint32_t RomFlash::read_jedec_id() {
  std::uint32_t id = 0;
  if (driver_ == nullptr || operation_ != Operation::kNone || !device_idle()) return 0;
  return read_register(lut::kSeqReadJedecId, id, 3, "xfer (read JEDEC ID)") ? id : 0;
}

std::uint32_t RomFlash::lut_mismatches(std::uint32_t* first) const {
  std::uint32_t mismatches = 0;
  for (std::uint32_t i = 0; i < lut_words_loaded(); ++i) {
    if (reg32(flexspi2::kLut + 4 * i) == g_config.lookup_table[i]) continue;
    if (mismatches++ == 0 && first != nullptr) *first = i;
  }
  return mismatches;
}

void RomFlash::prepare_for_execute() {
  if (driver_ != nullptr) driver_->clear_cache(rom::kFlexspi2Instance);
  dcache_clean_invalidate_and_disable();
  icache_invalidate_and_disable();
}

}  // namespace rtcanboot::imxrt1064
