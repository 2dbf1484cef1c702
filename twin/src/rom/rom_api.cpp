// The boot ROM's FlexSPI NOR API (the function table behind 0x0020_001C) and the ROM image the
// twin maps at 0x0020_0000. The NXP sources each behaviour follows are listed in rom/README.md and
// docs/twin.md.
#include "../board_impl.hpp"

#include <algorithm>

#include <fmt/format.h>

namespace rtcanboot::twin {

namespace {

enum RomFn : unsigned {
  kFnInit = 0, kFnProgram, kFnEraseAll, kFnErase, kFnRead, kFnClearCache, kFnXfer, kFnUpdateLut,
  kFnGetConfig, kFnRunBootloader, kFnCount
};

// ROM status codes (group 201 = FlexSPI NOR, as NXP's bootloader/IAP sources; see docs/twin.md).
constexpr std::uint32_t kStatusSuccess = 0;
constexpr std::uint32_t kStatusInvalidArgument = 4;
constexpr std::uint32_t kStatusProgramFail = 20100;
constexpr std::uint32_t kStatusEraseSectorFail = 20101;
constexpr std::uint32_t kStatusEraseAllFail = 20102;
constexpr std::uint32_t kStatusCommandFailure = 20106;

}  // namespace

void Board::Impl::build_rom() {
  auto put32 = [this](std::uint32_t addr, std::uint32_t v) { std::memcpy(&rom[addr - kRomBase], &v, 4); };
  // ROM's own vector table (used if the firmware never moves VTOR).
  put32(kRomBase + 0, kRomStackTop);
  for (unsigned i = 1; i < 16; ++i) {
    if (i != 7) put32(kRomBase + 4 * i, kRomDefaultHandler | 1);
  }
  put32(kRomTreePtr, kRomTree);
  put32(kRomTree + 0x00, 0x4B03'0100);  // bootloader version ('K' 3.1.0, value not documented)
  put32(kRomTree + 0x04, kRomCopyright);
  put32(kRomTree + 0x08, (kRomStubs + 4 * kFnRunBootloader) | 1);
  put32(kRomTree + 0x0C, 0);
  put32(kRomTree + 0x10, kRomNorTable);
  const char copyright[] = "rtcanboot-twin model of the i.MX RT1064 boot ROM";
  std::memcpy(&rom[kRomCopyright - kRomBase], copyright, sizeof copyright);
  put32(kRomNorTable + 0x00, 0x0001'0500);  // driver version 1.5.0
  const RomFn order[] = {kFnInit, kFnProgram, kFnEraseAll, kFnErase, kFnRead, kFnClearCache,
                         kFnXfer, kFnUpdateLut, kFnGetConfig};
  for (unsigned i = 0; i < std::size(order); ++i) {
    put32(kRomNorTable + 4 + 4 * i, (kRomStubs + 4 * order[i]) | 1);
  }
  for (unsigned i = 0; i < kFnCount; ++i) put32(kRomStubs + 4 * i, 0xBF00'4770);  // bx lr; nop
  put32(kRomDefaultHandler, 0xE7FE'E7FE);  // b .
}

std::uint32_t Board::Impl::rom_arg(unsigned i) {
  if (i < 4) return rreg(UC_ARM_REG_R0 + static_cast<int>(i));
  return mem32(rreg(UC_ARM_REG_SP) + 4 * (i - 4));
}

bool Board::Impl::rom_check_instance(std::uint32_t instance, const char* fn) {
  if (instance == 1) return true;
  if (instance == 0) {
    cpu_fault("romapi", fmt::format("ROM API {}(instance 0): instance 0 is FlexSPI1, which has no flash on the "
                                    "RT1064; the real ROM hangs here (wolfBoot PR #497). The internal flash is "
                                    "instance 1 (FlexSPI2)",
                                    fn),
              rreg(UC_ARM_REG_LR));
    return false;
  }
  b.reporter_.report(Severity::kFault, "romapi",
                     fmt::format("ROM API {}(instance {}): invalid instance, returns kStatus_InvalidArgument", fn, instance),
                     rreg(UC_ARM_REG_LR));
  return false;
}

void Board::Impl::rom_call(std::uint32_t address) {
  const unsigned fn = (address - kRomStubs) / 4;
  const std::uint32_t lr = rreg(UC_ARM_REG_LR);
  std::uint32_t result = kStatusSuccess;
  W25Q32& flash = *b.flash_;
  auto finish_blocking = [&](Nanos extra) {
    charge(extra);
    if (flash.busy()) {
      // The ROM polls until the operation ends: complete it now and move the board's time on.
      // Events of other models due meanwhile run when this slice ends (as interrupts pended
      // during the call and taken after it).
      const Nanos end = flash.current_op().end;
      if (end > b.local_time()) b.cycles_ = ns_to_cycles(end);
      flash.finish_now();
    }
  };
  // Code in the flash window must not run around an erase/program: the ROM returns into it and
  // the core's prefetcher fetches from it while the operation is still going on.
  auto caller_in_window = [&](const char* name) {
    if (lr < kWindowBase || lr >= kWindowBase + kWindowSize) return false;
    cpu_fault("flash", fmt::format("read-while-write: ROM {} called from code in the FlexSPI2 window (return address "
                                   "0x{:08X}); the core fetches from the flash while it is being modified. Run flash "
                                   "operations from RAM",
                                   name, lr & ~1u),
              lr);
    return true;
  };
  auto ok_instance = [&](const char* name) {
    const std::uint32_t inst = rreg(UC_ARM_REG_R0);
    if (rom_check_instance(inst, name)) return true;
    result = kStatusInvalidArgument;
    return false;
  };
  switch (fn) {
    case kFnInit: {
      if (!ok_instance("init")) break;
      const std::uint32_t cfg = rom_arg(1);
      std::vector<std::uint8_t> fcb(512);
      if (uc_mem_read(uc, cfg, fcb.data(), fcb.size()) != UC_ERR_OK || le32(fcb, 0) != 0x4246'4346u) {
        b.reporter_.report(Severity::kFault, "romapi",
                           fmt::format("init: config at 0x{:08X} is not a FlexSPI NOR config block (tag 'FCFB')", cfg), lr);
        result = kStatusInvalidArgument;
        break;
      }
      if (cfg >= kWindowBase && cfg < kWindowBase + kWindowSize) {
        b.reporter_.report(Severity::kWarning, "romapi",
                           "init: config read from the flash window while the ROM reconfigures FlexSPI2; copy it to "
                           "RAM first",
                           lr);
      }
      flexspi2->configure_from_fcb(fcb.data());
      ahb_buffer_reset();
      charge(200'000);
      break;
    }
    case kFnGetConfig: {
      if (!ok_instance("get_config")) break;
      rom_get_config(rom_arg(1), rom_arg(2));
      result = rreg(UC_ARM_REG_R0);
      break;
    }
    case kFnProgram: {
      if (!ok_instance("program") || caller_in_window("program")) break;
      const std::uint32_t dst = rom_arg(2);
      const std::uint32_t src = rom_arg(3);
      if (dst >= W25Q32::kSize) {
        result = kStatusInvalidArgument;
        break;
      }
      std::uint8_t page[W25Q32::kPage];
      if (src >= kWindowBase && src < kWindowBase + kWindowSize) {
        b.reporter_.report(Severity::kWarning, "romapi", "program: source buffer in the flash window", lr);
      }
      if (uc_mem_read(uc, src, page, sizeof page) != UC_ERR_OK) {
        cpu_fault("romapi", fmt::format("program: source 0x{:08X} is not readable memory", src), lr);
        break;
      }
      const std::uint32_t aligned = dst & ~(W25Q32::kPage - 1);
      charge(70'000);  // 256 bytes shifted at 30 MHz
      if (!flash.command(0x06, 0, {}, {}, lr) || !flash.command(0x02, aligned, page, {}, lr)) {
        result = kStatusProgramFail;
      }
      finish_blocking(0);
      if (!flash.powered()) result = kStatusProgramFail;
      break;
    }
    case kFnEraseAll: {
      if (!ok_instance("erase_all") || caller_in_window("erase_all")) break;
      if (!flash.command(0x06, 0, {}, {}, lr) || !flash.command(0x60, 0, {}, {}, lr)) result = kStatusEraseAllFail;
      finish_blocking(2'000);
      break;
    }
    case kFnErase: {
      if (!ok_instance("erase") || caller_in_window("erase")) break;
      const std::uint32_t start = rom_arg(2);
      const std::uint32_t length = rom_arg(3);
      if (start >= W25Q32::kSize || length > W25Q32::kSize - start) {
        result = kStatusInvalidArgument;
        break;
      }
      std::uint32_t a = start & ~(W25Q32::kSector - 1);
      const std::uint32_t end = (start + length + W25Q32::kSector - 1) & ~(W25Q32::kSector - 1);
      while (a < end && result == kStatusSuccess) {
        const bool block = (a % 0x1'0000) == 0 && end - a >= 0x1'0000;
        if (!flash.command(0x06, 0, {}, {}, lr) || !flash.command(block ? 0xD8 : 0x20, a, {}, {}, lr)) {
          result = kStatusEraseSectorFail;
        }
        finish_blocking(2'000);
        if (!flash.powered()) result = kStatusEraseSectorFail;
        a += block ? 0x1'0000 : W25Q32::kSector;
      }
      break;
    }
    case kFnRead: {
      if (!ok_instance("read")) break;
      const std::uint32_t dst = rom_arg(2);
      const std::uint32_t addr = rom_arg(3);
      const std::uint32_t len = rom_arg(4);
      if (addr >= W25Q32::kSize || len > W25Q32::kSize - addr) {
        result = kStatusInvalidArgument;
        break;
      }
      std::vector<std::uint8_t> buf(len);
      if (!flash.command(0xEB, addr, {}, buf, lr)) result = kStatusCommandFailure;
      if (uc_mem_write(uc, dst, buf.data(), buf.size()) != UC_ERR_OK) {
        cpu_fault("romapi", fmt::format("read: destination 0x{:08X}+{} is not writable memory", dst, len), lr);
        break;
      }
      charge(2'000 + static_cast<Nanos>(len) * 67);
      break;
    }
    case kFnClearCache:
      if (!ok_instance("clear_cache")) break;
      ahb_buffer_reset();
      charge(1'000);
      result = rreg(UC_ARM_REG_R0);
      break;
    case kFnXfer:
      if (!ok_instance("xfer")) break;
      result = rom_xfer(rom_arg(1), lr);
      if (flash.busy() && caller_in_window("xfer starting an erase/program")) break;
      break;
    case kFnUpdateLut: {
      if (!ok_instance("update_lut")) break;
      const std::uint32_t seq = rom_arg(1);
      const std::uint32_t lut = rom_arg(2);
      const std::uint32_t count = rom_arg(3);
      if (seq >= 16 || count == 0 || count > 16 - seq) {
        result = kStatusInvalidArgument;
        break;
      }
      for (std::uint32_t i = 0; i < 4 * count; ++i) flexspi2->set_lut(4 * seq + i, mem32(lut + 4 * i));
      charge(1'000);
      break;
    }
    case kFnRunBootloader: {
      const std::uint32_t arg = mem32(rreg(UC_ARM_REG_R0));
      b.reporter_.report(Severity::kInfo, "romapi",
                         fmt::format("runBootloader(0x{:08X}): the ROM enters the serial downloader (not modelled)", arg), lr);
      b.state_ = BoardState::kHalted;
      b.stop_reason_ = "runBootloader: serial downloader";
      request_stop(Stop::kFault);
      return;
    }
    default:
      cpu_fault("romapi", fmt::format("call into the boot ROM at 0x{:08X}, which is not an API entry", address), lr);
      return;
  }
  if (b.state_ == BoardState::kHalted) return;
  wreg(UC_ARM_REG_R0, result);
  wreg(UC_ARM_REG_PC, lr | 1);
}

void Board::Impl::rom_get_config(std::uint32_t cfg, std::uint32_t option_addr) {
  const std::uint32_t lr = rreg(UC_ARM_REG_LR);
  const std::uint32_t option0 = mem32(option_addr);
  if ((option0 >> 28) != 0xC) {
    wreg(UC_ARM_REG_R0, kStatusInvalidArgument);
    return;
  }
  const std::uint32_t device_type = (option0 >> 20) & 0xF;
  if (device_type == 1) {
    b.reporter_.report(Severity::kFault, "romapi",
                       "get_config with a DDR option: on the RT1064 this writes a 16-byte test pattern to flash "
                       "offset 0x200 (community report); use an SDR option such as 0xC0000007",
                       lr);
    const std::uint8_t pattern[16] = {0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
                                      0x88, 0x99, 0xAA, 0xBB, 0xCC, 0xDD, 0xEE, 0xFF};
    std::vector<std::uint8_t> page(W25Q32::kPage, 0xFF);
    std::copy(std::begin(pattern), std::end(pattern), page.begin());
    b.flash_->command(0x06, 0, {}, {}, lr);
    b.flash_->command(0x02, 0x200, page, {}, lr);
  } else if (device_type != 0) {
    wreg(UC_ARM_REG_R0, 20107);  // SFDP not found for this device type
    return;
  }
  std::vector<std::uint8_t> fcb(512, 0);
  auto put32 = [&](std::uint32_t off, std::uint32_t v) { std::memcpy(&fcb[off], &v, 4); };
  put32(0x000, 0x4246'4346);
  put32(0x004, 0x5601'0400);
  fcb[0x00C] = 0;  // readSampleClkSrc: internal loopback (the SDK wrapper changes it to 1)
  fcb[0x00D] = 3;
  fcb[0x00E] = 3;
  put32(0x040, 0x10);
  fcb[0x044] = 1;
  fcb[0x045] = 4;
  fcb[0x046] = static_cast<std::uint8_t>(option0 & 0xF);
  put32(0x050, W25Q32::kSize);
  const std::pair<unsigned, std::uint32_t> lut[] = {
      {0, 0x0A18'04EB}, {1, 0x2604'3206}, {4, 0x2404'0405}, {12, 0x0000'0406}, {20, 0x0818'0420},
      {32, 0x0818'04D8}, {36, 0x0818'0402}, {37, 0x0000'2004}, {44, 0x0000'0460}};
  for (const auto& [i, w] : lut) put32(0x80 + 4 * i, w);
  put32(0x1C0, W25Q32::kPage);
  put32(0x1C4, W25Q32::kSector);
  fcb[0x1C8] = 1;
  put32(0x1D0, 0x1'0000);
  if (uc_mem_write(uc, cfg, fcb.data(), fcb.size()) != UC_ERR_OK) {
    cpu_fault("romapi", fmt::format("get_config: config 0x{:08X} is not writable RAM", cfg), lr);
    return;
  }
  charge(2'000'000);
  wreg(UC_ARM_REG_R0, kStatusSuccess);
}

std::uint32_t Board::Impl::rom_xfer(std::uint32_t xfer_addr, std::uint32_t lr) {
  std::uint32_t x[9];
  if (uc_mem_read(uc, xfer_addr, x, sizeof x) != UC_ERR_OK) {
    cpu_fault("romapi", fmt::format("xfer: descriptor 0x{:08X} is not readable", xfer_addr), lr);
    return kStatusInvalidArgument;
  }
  const std::uint32_t operation = x[0] & 0xFF;
  const std::uint32_t address = x[1];
  const std::uint32_t seq_id = x[2];
  const std::uint32_t seq_num = x[3] == 0 ? 1 : x[3];
  const std::uint32_t tx_buf = x[5], tx_size = x[6], rx_buf = x[7], rx_size = x[8];
  if (seq_id >= 16 || seq_num > 16 - seq_id || operation > 3 || tx_size > 0x1'0000 || rx_size > 0x1'0000) {
    return kStatusInvalidArgument;
  }
  std::uint32_t status = kStatusSuccess;
  Nanos cost = 1'000;
  for (std::uint32_t s = seq_id; s < seq_id + seq_num; ++s) {
    int opcode = -1;
    bool has_addr = false, has_write = false, has_read = false;
    for (unsigned i = 0; i < 8; ++i) {
      const std::uint32_t word = flexspi2->lut(4 * s + i / 2);
      const std::uint32_t instr = (i & 1) ? (word >> 16) : (word & 0xFFFF);
      const std::uint32_t op = (instr >> 10) & 0x3F;
      const std::uint32_t operand = instr & 0xFF;
      if (op == 0x00) break;  // STOP
      switch (op) {
        case 0x01: case 0x21:
          if (opcode < 0) opcode = static_cast<int>(operand);
          break;
        case 0x02: case 0x22: has_addr = true; break;
        case 0x08: case 0x28: has_write = true; break;
        case 0x09: case 0x29: has_read = true; break;
        case 0x03: case 0x23: case 0x04: case 0x05: case 0x06: case 0x07: case 0x24: case 0x25: case 0x26:
        case 0x27: case 0x0C: case 0x2C: case 0x0D: case 0x2D: case 0x1F:
          break;
        default:
          b.reporter_.report(Severity::kWarning, "romapi",
                             fmt::format("xfer: LUT sequence {} uses instruction opcode 0x{:02X}, not modelled", s, op), lr);
          break;
      }
    }
    if (opcode < 0) {
      b.reporter_.report(Severity::kFault, "romapi",
                         fmt::format("xfer: LUT sequence {} has no CMD instruction (empty or not loaded)", s), lr);
      return 6001;  // FlexSPI invalid sequence
    }
    std::vector<std::uint8_t> tx;
    if (has_write) {
      if (operation != 2) {
        b.reporter_.report(Severity::kWarning, "romapi",
                           fmt::format("xfer: sequence {} has WRITE but the operation is {} (not kFlexSpiOperation_Write)", s, operation),
                           lr);
      }
      tx.resize(tx_size);
      if (tx_buf >= kWindowBase && tx_buf < kWindowBase + kWindowSize && window_busy) {
        cpu_fault("flash", fmt::format("read-while-write: xfer TX buffer 0x{:08X} is in the flash window while the flash is busy", tx_buf), lr);
        return kStatusCommandFailure;
      }
      if (tx_size > 0 && uc_mem_read(uc, tx_buf, tx.data(), tx.size()) != UC_ERR_OK) {
        cpu_fault("romapi", fmt::format("xfer: TX buffer 0x{:08X} is not readable", tx_buf), lr);
        return kStatusInvalidArgument;
      }
    }
    std::vector<std::uint8_t> rx(has_read ? rx_size : 0);
    if (has_read && operation != 3) {
      b.reporter_.report(Severity::kWarning, "romapi",
                         fmt::format("xfer: sequence {} has READ but the operation is {} (not kFlexSpiOperation_Read)", s, operation), lr);
    }
    const bool accepted = b.flash_->command(static_cast<std::uint8_t>(opcode), has_addr ? address : 0, tx, rx, lr);
    (void)accepted;
    cost += static_cast<Nanos>(1 + (has_addr ? 3 : 0) + tx.size() + rx.size()) * 267;  // 30 MHz, 1 pad
    if (has_read && !rx.empty()) {
      if (uc_mem_write(uc, rx_buf, rx.data(), rx.size()) != UC_ERR_OK) {
        cpu_fault("romapi", fmt::format("xfer: RX buffer 0x{:08X} is not writable", rx_buf), lr);
        return kStatusInvalidArgument;
      }
      // Status polling while the flash is busy: the firmware only waits (idle detector).
      if (opcode == 0x05 && (rx[0] & W25Q32::kStatusBusy)) {
        if (++busy_polls >= 8) {
          busy_polls = 0;
          idle_after_rom = true;  // stopping here would be undone by the PC write below
        }
      }
    }
  }
  charge(cost);
  return status;
}

}  // namespace rtcanboot::twin
