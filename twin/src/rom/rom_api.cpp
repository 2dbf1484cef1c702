// The boot ROM's FlexSPI NOR API (the function table behind 0x0020_001C) and the ROM image the
// twin maps at 0x0020_0000, written to what NXP's code does (rom/README.md lists the sources;
// docs/twin.md §6 names the source of each behaviour):
//
// - `init` initialises FlexSPI2 from the config and loads LUT sequence 0 only (S8
//   ufl_flexspi_nor_flash.c flexspi_nor_drv_flash_init; ufl_flexspi.c flexspi_init loads none).
// - `program`, `erase`, `erase_all` copy each sequence they need from the config's LUT into the
//   controller's slot 1 just before running it (write enable, then the erase or program
//   command), and load the config's read-status sequence into its own slot 1 for the busy poll;
//   they leave slot 1 holding the read-status sequence (S8 ufl_flexspi_nor_flash.c
//   flexspi_nor_drv_flash_page_program/erase_sector/erase_block/erase_all, ufl_flexspi.c
//   flexspi_device_write_enable/flexspi_device_wait_busy; NOR_CMD_LUT_FOR_IP_CMD = 1).
// - `read` runs whatever slot 0 holds and loads nothing (S8 flexspi_nor_drv_flash_read).
// - `xfer` runs the slots it is given as the controller holds them and loads nothing (S8
//   ufl_flexspi.c flexspi_command_xfer).
// - A slot whose first instruction is STOP sends nothing. A READ transfer whose sequences hold no
//   READ instruction never receives data: the ROM's receive loop has no timeout, so the twin
//   reports "the ROM would hang here" and halts (S8 flexspi_command_xfer). So does a WRITE
//   transfer of more than half the TX FIFO whose sequences never take the data.
#include "../board_impl.hpp"

#include <algorithm>

#include <fmt/format.h>

namespace rtcanboot::twin {

namespace {

enum RomFn : unsigned {
  kFnInit = 0,
  kFnProgram,
  kFnEraseAll,
  kFnErase,
  kFnRead,
  kFnClearCache,
  kFnXfer,
  kFnUpdateLut,
  kFnGetConfig,
  kFnRunBootloader,
  kFnCount
};

// ROM status codes: generic, FlexSPI (group 60) and FlexSPI NOR (group 201, as NXP's
// bootloader/IAP sources; see docs/twin.md).
constexpr std::uint32_t kStatusSuccess = 0;
constexpr std::uint32_t kStatusInvalidArgument = 4;
constexpr std::uint32_t kStatusFlexspiInvalidSequence = 6001;
constexpr std::uint32_t kStatusFlexspiDeviceTimeout = 6002;
constexpr std::uint32_t kStatusSfdpNotFound = 20107;

// The controller slot NXP's ROM code loads a command's sequence into (NOR_CMD_LUT_FOR_IP_CMD,
// CMD_LUT_FOR_IP_CMD in S8) and the config sequences it uses (S8 NOR_CMD_LUT_SEQ_IDX_*).
constexpr unsigned kIpCmdSlot = 1;
constexpr unsigned kSeqRead = 0;
constexpr unsigned kSeqReadStatus = 1;
constexpr unsigned kSeqWriteEnable = 3;
constexpr unsigned kSeqEraseSector = 5;
constexpr unsigned kSeqEraseBlock = 8;
constexpr unsigned kSeqPageProgram = 9;
constexpr unsigned kSeqChipErase = 11;
// Half the 128-byte IP TX FIFO: the ROM writes it in bursts of this size (S8 flexspi_command_xfer).
constexpr std::uint32_t kTxBurst = 64;

enum class Operation : std::uint32_t { kCommand = 0, kConfig = 1, kWrite = 2, kRead = 3 };

// A config block (flexspi_nor_config_t, 512 bytes) as the ROM reads it from the caller's RAM.
struct NorConfig {
  std::array<std::uint8_t, 512> raw{};
  std::uint32_t u32(std::uint32_t off) const { return le32(raw, off); }
  std::uint16_t u16(std::uint32_t off) const {
    return static_cast<std::uint16_t>(raw[off] | (raw[off + 1] << 8));
  }
  const std::uint8_t* sequence(unsigned seq) const { return raw.data() + 0x80 + 16 * seq; }
  std::uint32_t timeout_ms() const { return u32(0x70); }
  unsigned busy_offset() const { return u16(0x7C); }
  bool busy_polarity() const { return u16(0x7E) != 0; }
  std::uint32_t a1_size() const { return u32(0x50); }
  std::uint32_t page_size() const { return u32(0x1C0); }
  std::uint32_t sector_size() const { return u32(0x1C4); }
  bool uniform_block_size() const { return raw[0x1C9] != 0; }
  std::uint32_t block_size() const { return u32(0x1D0); }
  bool custom_sequences() const { return raw[0x47] != 0; }
};

// One IP command as flexspi_command_xfer issues it.
struct IpCommand {
  Operation operation = Operation::kCommand;
  std::uint32_t address = 0;
  unsigned seq_id = 0;
  unsigned seq_num = 1;
  std::span<const std::uint8_t> tx;
  std::span<std::uint8_t> rx;
};

// kPowerLost: the board lost power during the command (a power cut): the ROM does nothing more.
enum class IpResult { kDone, kInvalidSequence, kHang, kPowerLost };

// One decoded LUT sequence.
struct Sequence {
  int opcode = -1;  // first CMD operand; -1: the sequence sends nothing
  bool address = false, write = false, read = false;
  int bad_instruction = -1;  // an opcode the controller does not define (IPCMDERR)
};

Sequence decode(const FlexSpi2& controller, unsigned slot) {
  Sequence s;
  for (unsigned i = 0; i < 8; ++i) {
    const std::uint32_t word = controller.lut(4 * slot + i / 2);
    const std::uint32_t instr = (i & 1) ? (word >> 16) : (word & 0xFFFF);
    const std::uint32_t op = (instr >> 10) & 0x3F;
    if (op == 0x00) break;  // STOP
    switch (op) {
      case 0x01:
      case 0x21:
        if (s.opcode < 0) s.opcode = static_cast<int>(instr & 0xFF);
        break;
      case 0x02:
      case 0x22:
        s.address = true;
        break;
      case 0x08:
      case 0x28:
        s.write = true;
        break;
      case 0x09:
      case 0x29:
        s.read = true;
        break;
      // CADDR, MODE1/2/4/8, LEARN, DATSZ, DUMMY, DUMMY_RWDS, JMP_ON_CS: no effect on the flash
      // model.
      case 0x03:
      case 0x23:
      case 0x04:
      case 0x24:
      case 0x05:
      case 0x25:
      case 0x06:
      case 0x26:
      case 0x07:
      case 0x27:
      case 0x0A:
      case 0x2A:
      case 0x0B:
      case 0x2B:
      case 0x0C:
      case 0x2C:
      case 0x0D:
      case 0x2D:
      case 0x1F:
        break;
      default:
        s.bad_instruction = static_cast<int>(op);
        return s;
    }
  }
  return s;
}

class RomDriver {
 public:
  explicit RomDriver(Board::Impl& im) : im_(im), lr_(im.rreg(UC_ARM_REG_LR)) {}
  void call(std::uint32_t address);
  // flexspi_command_xfer on the controller's LUT; *why says what the ROM would hang on.
  IpResult ip_command(const IpCommand& c, std::string* why);

 private:
  Board& board() { return im_.b; }
  W25Q32& flash() { return board().flash(); }
  Reporter& reporter() { return board().reporter(); }
  std::uint32_t arg(unsigned i) {
    if (i < 4) return im_.rreg(UC_ARM_REG_R0 + static_cast<int>(i));
    return im_.mem32(im_.rreg(UC_ARM_REG_SP) + 4 * (i - 4));
  }
  bool check_instance(std::uint32_t instance, const char* fn);
  bool read_config(std::uint32_t address, NorConfig& cfg, const char* fn);
  // Copies config sequence `seq` into slot `slot` (flexspi_update_lut).
  void load(const NorConfig& cfg, unsigned seq, unsigned slot) {
    std::uint32_t words[4];
    std::memcpy(words, cfg.sequence(seq), sizeof words);
    im_.flexspi2->load_sequences(slot, words, 1);
  }
  // The ROM's own command: config sequence `seq` loaded into slot 1 and run from there.
  std::uint32_t run_from_ip_slot(const NorConfig& cfg, unsigned seq, Operation op,
                                 std::uint32_t address, std::span<const std::uint8_t> tx = {});
  std::uint32_t write_enable(const NorConfig& cfg, std::uint32_t address) {
    return run_from_ip_slot(cfg, kSeqWriteEnable, Operation::kCommand, address);
  }
  std::uint32_t wait_busy(const NorConfig& cfg, std::uint32_t address);
  std::uint32_t status_of(IpResult r, const std::string& why);
  std::uint32_t xfer(std::uint32_t descriptor);
  std::uint32_t program(const NorConfig& cfg, std::uint32_t dst, std::uint32_t src);
  std::uint32_t erase(const NorConfig& cfg, std::uint32_t start, std::uint32_t length);
  std::uint32_t erase_one(const NorConfig& cfg, unsigned seq, std::uint32_t address);
  std::uint32_t erase_all(const NorConfig& cfg);
  std::uint32_t read(std::uint32_t dst, std::uint32_t addr, std::uint32_t length);
  std::uint32_t get_config(std::uint32_t cfg, std::uint32_t option_addr);
  bool caller_in_window(const char* name);
  void charge(Nanos ns) { im_.charge(ns); }

  Board::Impl& im_;
  const std::uint32_t lr_;
  bool hung_ = false;
};

bool RomDriver::check_instance(std::uint32_t instance, const char* fn) {
  if (instance == 1) return true;
  if (instance == 0) {
    im_.cpu_fault(
        "romapi",
        fmt::format("ROM API {}(instance 0): instance 0 is FlexSPI1, which has no flash on the "
                    "RT1064; the real ROM hangs here (wolfBoot PR #497). The internal flash is "
                    "instance 1 (FlexSPI2)",
                    fn),
        lr_);
    return false;
  }
  reporter().report(
      Severity::kFault, "romapi",
      fmt::format("ROM API {}(instance {}): invalid instance, returns kStatus_InvalidArgument", fn,
                  instance),
      lr_);
  return false;
}

bool RomDriver::read_config(std::uint32_t address, NorConfig& cfg, const char* fn) {
  if (uc_mem_read(im_.uc, address, cfg.raw.data(), cfg.raw.size()) != UC_ERR_OK) {
    im_.cpu_fault("romapi", fmt::format("{}: config 0x{:08X} is not readable memory", fn, address),
                  lr_);
    return false;
  }
  if (cfg.custom_sequences()) {
    reporter().report(
        Severity::kWarning, "romapi",
        fmt::format("{}: config enables custom LUT sequences (lutCustomSeqEnable), which the twin "
                    "does not model; it uses the standard sequence indices",
                    fn),
        lr_);
  }
  return true;
}

// Code in the flash window must not run around an erase/program: the ROM returns into it and
// the core's prefetcher fetches from it while the operation is still going on.
bool RomDriver::caller_in_window(const char* name) {
  if (lr_ < kWindowBase || lr_ >= kWindowBase + kWindowSize) return false;
  im_.cpu_fault(
      "flash",
      fmt::format(
          "read-while-write: ROM {} called from code in the FlexSPI2 window (return address "
          "0x{:08X}); the core fetches from the flash while it is being modified. Run flash "
          "operations from RAM",
          name, lr_ & ~1u),
      lr_);
  return true;
}

IpResult RomDriver::ip_command(const IpCommand& c, std::string* why) {
  bool any_read = false, any_write = false;
  std::vector<Sequence> sequences;
  for (unsigned s = c.seq_id; s < c.seq_id + c.seq_num; ++s) {
    const Sequence seq = decode(*im_.flexspi2, s);
    if (seq.bad_instruction >= 0) {
      reporter().report(
          Severity::kWarning, "romapi",
          fmt::format(
              "LUT slot {} holds instruction opcode 0x{:02X}, which FlexSPI does not define: "
              "the controller flags an IP command error (kStatus_FLEXSPI_InvalidSequence)",
              s, seq.bad_instruction),
          lr_);
      return IpResult::kInvalidSequence;
    }
    any_read |= seq.read;
    any_write |= seq.write;
    sequences.push_back(seq);
  }
  auto slots = [&] {
    return c.seq_num == 1 ? fmt::format("slot {}", c.seq_id)
                          : fmt::format("slots {}..{}", c.seq_id, c.seq_id + c.seq_num - 1);
  };
  if (c.operation == Operation::kRead && !c.rx.empty() && !any_read) {
    *why = fmt::format(
        "READ of {} bytes on LUT {}, which hold{} no READ instruction (never loaded with "
        "update_lut?): "
        "no data ever reaches the RX FIFO and the ROM's receive loop has no timeout",
        c.rx.size(), slots(), c.seq_num == 1 ? "s" : "");
    return IpResult::kHang;
  }
  if ((c.operation == Operation::kWrite || c.operation == Operation::kConfig) &&
      c.tx.size() > kTxBurst && !any_write) {
    *why = fmt::format(
        "WRITE of {} bytes on LUT {}, which hold{} no WRITE instruction (never loaded with "
        "update_lut?): "
        "the TX FIFO never drains and the ROM waits for room forever",
        c.tx.size(), slots(), c.seq_num == 1 ? "s" : "");
    return IpResult::kHang;
  }
  Nanos cost = 1'000;
  std::vector<std::uint8_t> rx(c.rx.size(), 0);
  for (const Sequence& seq : sequences) {
    if (seq.opcode < 0) continue;  // STOP first: no chip select, nothing sent
    std::span<const std::uint8_t> tx = seq.write ? c.tx : std::span<const std::uint8_t>{};
    std::span<std::uint8_t> data =
        seq.read ? std::span<std::uint8_t>(rx) : std::span<std::uint8_t>{};
    flash().command(static_cast<std::uint8_t>(seq.opcode), seq.address ? c.address : 0, tx, data,
                    lr_);
    if (!flash().powered()) return IpResult::kPowerLost;
    cost += static_cast<Nanos>(1 + (seq.address ? 3 : 0) + tx.size() + data.size()) *
            267;  // 30 MHz, 1 pad
  }
  std::copy(rx.begin(), rx.end(), c.rx.begin());
  charge(cost);
  return IpResult::kDone;
}

std::uint32_t RomDriver::status_of(IpResult r, const std::string& why) {
  switch (r) {
    case IpResult::kDone:
      return kStatusSuccess;
    case IpResult::kInvalidSequence:
      return kStatusFlexspiInvalidSequence;
    case IpResult::kHang:
      im_.cpu_fault("romapi", "the ROM would hang here: " + why, lr_);
      hung_ = true;
      return kStatusSuccess;
    case IpResult::kPowerLost:
      hung_ = true;  // nothing more runs: the board is off
      return kStatusSuccess;
  }
  return kStatusSuccess;
}

std::uint32_t RomDriver::run_from_ip_slot(const NorConfig& cfg, unsigned seq, Operation op,
                                          std::uint32_t address, std::span<const std::uint8_t> tx) {
  load(cfg, seq, kIpCmdSlot);
  IpCommand c;
  c.operation = op;
  c.address = address;
  c.seq_id = kIpCmdSlot;
  c.tx = tx;
  std::string why;
  return status_of(ip_command(c, &why), why);
}

// flexspi_device_wait_busy: the config's read-status sequence in its own slot (1), polled until
// the busy bit clears or timeoutInMs passes.
std::uint32_t RomDriver::wait_busy(const NorConfig& cfg, std::uint32_t address) {
  load(cfg, kSeqReadStatus, kSeqReadStatus);
  const Nanos started = board().local_time();
  for (;;) {
    std::array<std::uint8_t, 4> status{};
    IpCommand c;
    c.operation = Operation::kRead;
    c.address = address;
    c.seq_id = kSeqReadStatus;
    c.rx = status;
    std::string why;
    const IpResult r = ip_command(c, &why);
    if (r != IpResult::kDone) return status_of(r, why);
    const bool bit = (le32(status, 0) >> cfg.busy_offset()) & 1;
    const bool busy = cfg.busy_polarity() ? !bit : bit;
    if (!busy) return kStatusSuccess;
    if (!flash().busy()) {
      reporter().report(Severity::kWarning, "romapi",
                        "busy poll: the read-status sequence reports busy while the flash is idle "
                        "(wrong read-status "
                        "sequence, busyOffset or busyBitPolarity in the config?); the ROM polls "
                        "until its timeout",
                        lr_);
      if (cfg.timeout_ms() == 0) {
        status_of(IpResult::kHang,
                  "busy poll never sees the device idle and the config's timeoutInMs is 0");
        return kStatusSuccess;
      }
      charge(static_cast<Nanos>(cfg.timeout_ms()) * 1'000'000);
      return kStatusFlexspiDeviceTimeout;
    }
    // The ROM polls until the operation ends: complete it now and move the board's time on.
    // Events of other models due meanwhile run when this slice ends (as interrupts pended
    // during the call and taken after it).
    const Nanos end = flash().current_op().end;
    if (cfg.timeout_ms() != 0 && end - started > static_cast<Nanos>(cfg.timeout_ms()) * 1'000'000) {
      charge(static_cast<Nanos>(cfg.timeout_ms()) * 1'000'000);
      return kStatusFlexspiDeviceTimeout;
    }
    im_.advance_to(end);
    flash().finish_now();
    if (!flash().powered()) return kStatusSuccess;
  }
}

std::uint32_t RomDriver::program(const NorConfig& cfg, std::uint32_t dst, std::uint32_t src) {
  std::uint32_t status = write_enable(cfg, dst);
  if (status != kStatusSuccess || hung_) return status;
  // The ROM feeds the TX FIFO with word reads from src; an unaligned src ends the transfer
  // before it starts (flexspi_command_xfer), with the WEL already set.
  if ((src & 3) != 0) return kStatusInvalidArgument;
  std::vector<std::uint8_t> page(cfg.page_size());
  if (src >= kWindowBase && src < kWindowBase + kWindowSize) {
    reporter().report(Severity::kWarning, "romapi", "program: source buffer in the flash window",
                      lr_);
  }
  if (uc_mem_read(im_.uc, src, page.data(), page.size()) != UC_ERR_OK) {
    im_.cpu_fault("romapi", fmt::format("program: source 0x{:08X} is not readable memory", src),
                  lr_);
    hung_ = true;
    return kStatusSuccess;
  }
  status = run_from_ip_slot(cfg, kSeqPageProgram, Operation::kWrite, dst, page);
  if (status != kStatusSuccess || hung_) return status;
  status = wait_busy(cfg, dst);
  im_.ahb_buffer_reset();  // flexspi_clear_cache (SWRESET) after every program
  return status;
}

std::uint32_t RomDriver::erase_one(const NorConfig& cfg, unsigned seq, std::uint32_t address) {
  std::uint32_t status = write_enable(cfg, address);
  if (status == kStatusSuccess && !hung_)
    status = run_from_ip_slot(cfg, seq, Operation::kCommand, address);
  if (status == kStatusSuccess && !hung_) status = wait_busy(cfg, address);
  im_.ahb_buffer_reset();  // flexspi_clear_cache after every erase
  return status;
}

// flexspi_nor_drv_flash_erase: start aligned down and end aligned up to sectorSize; blocks only
// when the config says the block size is not uniform and `(start & ~blockSize) == 0` holds
// literally as NXP's code writes it (so in practice only at offsets 0 and blockSize).
std::uint32_t RomDriver::erase(const NorConfig& cfg, std::uint32_t start, std::uint32_t length) {
  const std::uint32_t sector = cfg.sector_size();
  const std::uint32_t block = cfg.block_size();
  if (sector == 0 || (sector & (sector - 1)) != 0) {
    reporter().report(Severity::kFault, "romapi",
                      fmt::format("erase: config sectorSize 0x{:X} is not a power of two", sector),
                      lr_);
    return kStatusInvalidArgument;
  }
  std::uint32_t at = start & ~(sector - 1);
  const std::uint64_t end = (static_cast<std::uint64_t>(start) + length + sector - 1) &
                            ~static_cast<std::uint64_t>(sector - 1);
  std::uint32_t status = kStatusInvalidArgument;  // a zero length erases nothing and returns this
  while (at < end) {
    const bool use_block =
        !(cfg.uniform_block_size() || block == 0) && (at & ~block) == 0 && end - at >= block;
    status = erase_one(cfg, use_block ? kSeqEraseBlock : kSeqEraseSector, at);
    if (status != kStatusSuccess || hung_) return status;
    at += use_block ? block : sector;
  }
  return status;
}

std::uint32_t RomDriver::erase_all(const NorConfig& cfg) {
  if (cfg.a1_size() == 0) return kStatusSuccess;
  std::uint32_t status = write_enable(cfg, 0);
  if (status == kStatusSuccess && !hung_)
    status = run_from_ip_slot(cfg, kSeqChipErase, Operation::kCommand, 0);
  if (status == kStatusSuccess && !hung_) status = wait_busy(cfg, 0);
  im_.ahb_buffer_reset();
  return status;
}

// flexspi_nor_drv_flash_read: IP reads of at most 65535 bytes through slot 0 as it stands.
std::uint32_t RomDriver::read(std::uint32_t dst, std::uint32_t addr, std::uint32_t length) {
  if (length == 0 || (dst & 3) != 0) return kStatusInvalidArgument;
  std::uint32_t done = 0;
  while (done < length) {
    const std::uint32_t chunk = std::min<std::uint32_t>(length - done, 65535);
    std::vector<std::uint8_t> buf(chunk);
    IpCommand c;
    c.operation = Operation::kRead;
    c.address = addr + done;
    c.seq_id = kSeqRead;
    c.rx = buf;
    std::string why;
    const std::uint32_t status = status_of(ip_command(c, &why), why);
    if (status != kStatusSuccess || hung_) return status;
    if (uc_mem_write(im_.uc, dst + done, buf.data(), buf.size()) != UC_ERR_OK) {
      im_.cpu_fault(
          "romapi",
          fmt::format("read: destination 0x{:08X}+{} is not writable memory", dst, length), lr_);
      hung_ = true;
      return kStatusSuccess;
    }
    done += chunk;
  }
  return kStatusSuccess;
}

std::uint32_t RomDriver::xfer(std::uint32_t descriptor) {
  std::uint32_t x[9];
  if (uc_mem_read(im_.uc, descriptor, x, sizeof x) != UC_ERR_OK) {
    im_.cpu_fault("romapi", fmt::format("xfer: descriptor 0x{:08X} is not readable", descriptor),
                  lr_);
    hung_ = true;
    return kStatusInvalidArgument;
  }
  const std::uint32_t operation = x[0] & 0xFF;
  const std::uint32_t seq_id = x[2];
  const std::uint32_t seq_num = x[3] == 0 ? 1 : x[3];
  const std::uint32_t tx_buf = x[5], tx_size = x[6], rx_buf = x[7], rx_size = x[8];
  if (seq_id >= 16 || seq_num > 16 - seq_id || operation > 3 || tx_size > 0x1'0000 ||
      rx_size > 0x1'0000) {
    return kStatusInvalidArgument;
  }
  IpCommand c;
  c.operation = static_cast<Operation>(operation);
  c.address = x[1];
  c.seq_id = seq_id;
  c.seq_num = seq_num;
  std::vector<std::uint8_t> tx;
  if (c.operation == Operation::kWrite || c.operation == Operation::kConfig) {
    if ((tx_buf & 3) != 0)
      return kStatusInvalidArgument;  // flexspi_command_xfer: word-aligned buffers only
    if (tx_buf >= kWindowBase && tx_buf < kWindowBase + kWindowSize && im_.window_busy) {
      im_.cpu_fault(
          "flash",
          fmt::format("read-while-write: xfer TX buffer 0x{:08X} is in the flash window while the "
                      "flash is busy",
                      tx_buf),
          lr_);
      hung_ = true;
      return kStatusInvalidArgument;
    }
    tx.resize(tx_size);
    if (tx_size > 0 && uc_mem_read(im_.uc, tx_buf, tx.data(), tx.size()) != UC_ERR_OK) {
      im_.cpu_fault("romapi", fmt::format("xfer: TX buffer 0x{:08X} is not readable", tx_buf), lr_);
      hung_ = true;
      return kStatusInvalidArgument;
    }
    c.tx = tx;
  }
  std::vector<std::uint8_t> rx;
  if (c.operation == Operation::kRead) {
    if ((rx_buf & 3) != 0) return kStatusInvalidArgument;
    rx.resize(rx_size);
    c.rx = rx;
  }
  std::string why;
  const std::uint32_t status = status_of(ip_command(c, &why), why);
  if (hung_ || status != kStatusSuccess) return status;
  if (!rx.empty()) {
    if (uc_mem_write(im_.uc, rx_buf, rx.data(), rx.size()) != UC_ERR_OK) {
      im_.cpu_fault("romapi", fmt::format("xfer: RX buffer 0x{:08X} is not writable", rx_buf), lr_);
      hung_ = true;
      return kStatusInvalidArgument;
    }
    // Status polling while the flash is busy: the firmware only waits (idle detector).
    const Sequence first = decode(*im_.flexspi2, seq_id);
    if (first.opcode == 0x05 && (rx[0] & W25Q32::kStatusBusy)) {
      if (++im_.busy_polls >= 8) {
        im_.busy_polls = 0;
        im_.idle_after_rom = true;  // stopping here would be undone by the PC write below
      }
    }
  }
  return status;
}

std::uint32_t RomDriver::get_config(std::uint32_t cfg, std::uint32_t option_addr) {
  const std::uint32_t option0 = im_.mem32(option_addr);
  if ((option0 >> 28) != 0xC) return kStatusInvalidArgument;
  const std::uint32_t device_type = (option0 >> 20) & 0xF;
  if (device_type == 1) {
    reporter().report(
        Severity::kFault, "romapi",
        "get_config with a DDR option: on the RT1064 this writes a 16-byte test pattern to flash "
        "offset 0x200 (community report); use an SDR option such as 0xC0000007",
        lr_);
    const std::uint8_t pattern[16] = {0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
                                      0x88, 0x99, 0xAA, 0xBB, 0xCC, 0xDD, 0xEE, 0xFF};
    std::vector<std::uint8_t> page(W25Q32::kPage, 0xFF);
    std::copy(std::begin(pattern), std::end(pattern), page.begin());
    flash().command(0x06, 0, {}, {}, lr_);
    flash().command(0x02, 0x200, page, {}, lr_);
  } else if (device_type != 0) {
    return kStatusSfdpNotFound;
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
      {0, 0x0A18'04EB},  {1, 0x2604'3206},  {4, 0x2404'0405},  {12, 0x0000'0406}, {20, 0x0818'0420},
      {32, 0x0818'04D8}, {36, 0x0818'0402}, {37, 0x0000'2004}, {44, 0x0000'0460}};
  for (const auto& [i, w] : lut) put32(0x80 + 4 * i, w);
  put32(0x1C0, W25Q32::kPage);
  put32(0x1C4, W25Q32::kSector);
  fcb[0x1C8] = 1;
  put32(0x1D0, 0x1'0000);
  if (uc_mem_write(im_.uc, cfg, fcb.data(), fcb.size()) != UC_ERR_OK) {
    im_.cpu_fault("romapi", fmt::format("get_config: config 0x{:08X} is not writable RAM", cfg),
                  lr_);
    hung_ = true;
    return kStatusSuccess;
  }
  // The SFDP probe initialises FlexSPI2 and reads the SFDP table through slot 1 (S8
  // flexspi_nor_drv_get_config -> flexspi_nor_generate_config_block_using_sfdp): it leaves
  // slot 0 with the probe's read and slot 1 with an SFDP read (1 pad, 0x5A).
  const std::uint32_t probe_read[4] = {0x0818'0403, 0x0000'2404, 0, 0};
  const std::uint32_t sfdp_read[4] = {0x0818'045A, 0x24FF'3008, 0,
                                      0};  // CMD 5A, RADDR 24; DUMMY 8, READ
  im_.flexspi2->load_sequences(0, probe_read, 1);
  im_.flexspi2->load_sequences(kIpCmdSlot, sfdp_read, 1);
  charge(2'000'000);
  return kStatusSuccess;
}

void RomDriver::call(std::uint32_t address) {
  const unsigned fn = (address - kRomStubs) / 4;
  std::uint32_t result = kStatusSuccess;
  auto ok_instance = [&](const char* name) {
    if (check_instance(arg(0), name)) return true;
    result = kStatusInvalidArgument;
    return false;
  };
  NorConfig cfg;
  switch (fn) {
    case kFnInit: {
      if (!ok_instance("init")) break;
      const std::uint32_t config = arg(1);
      if (!read_config(config, cfg, "init")) return;
      if (cfg.u32(0) != 0x4246'4346u) {
        reporter().report(
            Severity::kFault, "romapi",
            fmt::format("init: config at 0x{:08X} is not a FlexSPI NOR config block (tag 'FCFB')",
                        config),
            lr_);
        result = kStatusInvalidArgument;
        break;
      }
      if (config >= kWindowBase && config < kWindowBase + kWindowSize) {
        reporter().report(Severity::kWarning, "romapi",
                          "init: config read from the flash window while the ROM reconfigures "
                          "FlexSPI2; copy it to "
                          "RAM first",
                          lr_);
      }
      if (cfg.raw[0x10] != 0 || cfg.raw[0x1C] != 0) {
        reporter().report(
            Severity::kWarning, "romapi",
            "init: the config enables device mode / config commands (deviceModeCfgEnable, "
            "configCmdEnable), which the twin does not run",
            lr_);
      }
      im_.flexspi2->init_from_fcb(cfg.raw.data());
      // The ROM sets the clock the code names and returns success even above the flash's
      // maximum; the twin reports that as a fault (its reads are not reliable).
      im_.apply_serial_clock(cfg.raw[0x46], "romapi");
      im_.ahb_buffer_reset();  // flexspi_init ends with a software reset
      charge(200'000);
      break;
    }
    case kFnGetConfig:
      if (!ok_instance("get_config")) break;
      result = get_config(arg(1), arg(2));
      break;
    case kFnProgram: {
      if (!ok_instance("program") || caller_in_window("program")) break;
      if (!read_config(arg(1), cfg, "program")) return;
      const std::uint32_t dst = arg(2);
      if (dst >= W25Q32::kSize) {
        result = kStatusInvalidArgument;
        break;
      }
      result = program(cfg, dst, arg(3));
      break;
    }
    case kFnEraseAll:
      if (!ok_instance("erase_all") || caller_in_window("erase_all")) break;
      if (!read_config(arg(1), cfg, "erase_all")) return;
      result = erase_all(cfg);
      break;
    case kFnErase: {
      if (!ok_instance("erase") || caller_in_window("erase")) break;
      if (!read_config(arg(1), cfg, "erase")) return;
      const std::uint32_t start = arg(2);
      const std::uint32_t length = arg(3);
      if (start >= W25Q32::kSize || length > W25Q32::kSize - start) {
        result = kStatusInvalidArgument;
        break;
      }
      result = erase(cfg, start, length);
      break;
    }
    case kFnRead: {
      if (!ok_instance("read")) break;
      const std::uint32_t dst = arg(2);
      const std::uint32_t addr = arg(3);
      const std::uint32_t len = arg(4);
      if (addr >= W25Q32::kSize || len > W25Q32::kSize - addr) {
        result = kStatusInvalidArgument;
        break;
      }
      result = read(dst, addr, len);
      break;
    }
    case kFnClearCache:
      if (!ok_instance("clear_cache")) break;
      im_.ahb_buffer_reset();
      charge(1'000);
      result = im_.rreg(UC_ARM_REG_R0);
      break;
    case kFnXfer:
      if (!ok_instance("xfer")) break;
      result = xfer(arg(1));
      if (!hung_ && flash().busy()) caller_in_window("xfer starting an erase/program");
      break;
    case kFnUpdateLut: {
      if (!ok_instance("update_lut")) break;
      const std::uint32_t seq = arg(1);
      const std::uint32_t lut = arg(2);
      const std::uint32_t count = arg(3);
      if (seq >= 16 || count == 0 || count > 16 - seq) {
        result = kStatusInvalidArgument;
        break;
      }
      std::vector<std::uint32_t> words(4 * count);
      if (uc_mem_read(im_.uc, lut, words.data(), 16 * count) != UC_ERR_OK) {
        im_.cpu_fault("romapi", fmt::format("update_lut: table 0x{:08X} is not readable", lut),
                      lr_);
        return;
      }
      im_.flexspi2->load_sequences(seq, words.data(), count);
      charge(1'000);
      break;
    }
    case kFnRunBootloader: {
      const std::uint32_t a = im_.mem32(im_.rreg(UC_ARM_REG_R0));
      reporter().report(
          Severity::kInfo, "romapi",
          fmt::format(
              "runBootloader(0x{:08X}): the ROM enters the serial downloader (not modelled)", a),
          lr_);
      im_.halt("runBootloader: serial downloader");
      return;
    }
    default:
      im_.cpu_fault(
          "romapi",
          fmt::format("call into the boot ROM at 0x{:08X}, which is not an API entry", address),
          lr_);
      return;
  }
  if (board().state() == BoardState::kHalted || board().state() == BoardState::kOff) return;
  im_.wreg(UC_ARM_REG_R0, result);
  im_.wreg(UC_ARM_REG_PC, lr_ | 1);
}

}  // namespace

void Board::Impl::build_rom() {
  auto put32 = [this](std::uint32_t addr, std::uint32_t v) {
    std::memcpy(&rom[addr - kRomBase], &v, 4);
  };
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
  const RomFn order[] = {kFnInit,       kFnProgram, kFnEraseAll,  kFnErase,    kFnRead,
                         kFnClearCache, kFnXfer,    kFnUpdateLut, kFnGetConfig};
  for (unsigned i = 0; i < std::size(order); ++i) {
    put32(kRomNorTable + 4 + 4 * i, (kRomStubs + 4 * order[i]) | 1);
  }
  for (unsigned i = 0; i < kFnCount; ++i) put32(kRomStubs + 4 * i, 0xBF00'4770);  // bx lr; nop
  put32(kRomDefaultHandler, 0xE7FE'E7FE);                                         // b .
}

void Board::Impl::rom_call(std::uint32_t address) {
  RomDriver(*this).call(address);
}

}  // namespace rtcanboot::twin
