#include "twin/flash_w25q.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace rtcanboot::twin {

FlashTimes flash_times(FlashTiming timing) {
  constexpr Nanos us = 1000;
  constexpr Nanos ms = 1000 * us;
  if (timing == FlashTiming::kMax) {
    return FlashTimes{3 * ms, 400 * ms, 1600 * ms, 2000 * ms, 50000 * ms};
  }
  return FlashTimes{400 * us, 45 * ms, 120 * ms, 150 * ms, 10000 * ms};
}

W25Q32::W25Q32(Clock& clock, Reporter& reporter, FlashTiming timing)
    : clock_(clock),
      reporter_(reporter),
      times_(flash_times(timing)),
      mem_(kSize, 0xFF),
      wear_(kSectors, 0) {}

W25Q32::~W25Q32() {
  if (op_event_ != 0) clock_.cancel(op_event_);
  if (cut_event_ != 0) clock_.cancel(cut_event_);
  if (fd_ >= 0) ::close(fd_);
}

bool W25Q32::open_backing(const std::string& path, std::string* error) {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  path_ = path;
  if (path.empty()) return true;
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT, 0644);
  if (fd < 0) {
    if (error) *error = fmt::format("cannot open flash file {}: {}", path, std::strerror(errno));
    return false;
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    if (error) *error = fmt::format("cannot stat {}: {}", path, std::strerror(errno));
    ::close(fd);
    return false;
  }
  if (st.st_size == 0) {
    std::fill(mem_.begin(), mem_.end(), std::uint8_t{0xFF});
    if (::pwrite(fd, mem_.data(), mem_.size(), 0) != static_cast<ssize_t>(mem_.size())) {
      if (error) *error = fmt::format("cannot write {}: {}", path, std::strerror(errno));
      ::close(fd);
      return false;
    }
  } else if (st.st_size == static_cast<off_t>(kSize)) {
    if (::pread(fd, mem_.data(), mem_.size(), 0) != static_cast<ssize_t>(mem_.size())) {
      if (error) *error = fmt::format("cannot read {}: {}", path, std::strerror(errno));
      ::close(fd);
      return false;
    }
  } else {
    if (error) {
      *error = fmt::format("flash file {} has {} bytes; a W25Q32JV image has exactly {}", path,
                           static_cast<long long>(st.st_size), kSize);
    }
    ::close(fd);
    return false;
  }
  fd_ = fd;
  return true;
}

void W25Q32::persist(std::uint32_t offset, std::uint32_t length) {
  if (fd_ < 0 || length == 0) return;
  if (::pwrite(fd_, mem_.data() + offset, length, static_cast<off_t>(offset)) !=
      static_cast<ssize_t>(length)) {
    reporter_.report(Severity::kWarning, "flash",
                     fmt::format("write-through to {} failed: {}", path_, std::strerror(errno)), 0);
  }
}

void W25Q32::fault(const std::string& message, std::uint32_t pc) {
  reporter_.report(Severity::kFault, "flash", message, pc);
}

void W25Q32::probe_write(std::uint32_t offset, std::span<const std::uint8_t> bytes) {
  const std::uint32_t n = static_cast<std::uint32_t>(
      std::min<std::size_t>(bytes.size(), kSize - std::min(offset, kSize)));
  std::copy_n(bytes.begin(), n, mem_.begin() + offset);
  persist(offset, n);
  if (on_modified) on_modified(offset, n);
}

void W25Q32::probe_erase_all() {
  std::fill(mem_.begin(), mem_.end(), std::uint8_t{0xFF});
  persist(0, kSize);
  if (on_modified) on_modified(0, kSize);
}

std::uint8_t W25Q32::status1() const {
  std::uint8_t s = 0;
  if (busy()) s |= kStatusBusy;
  if (wel_) s |= kStatusWel;
  return s;
}

void W25Q32::power_on() {
  powered_ = true;
  wel_ = false;
}

// The SFDP area (Read SFDP 0x5A, 24-bit address, 8 dummy clocks; fact sheet §2.8) as JEDEC
// JESD216 lays it out: the "SFDP" signature, one parameter header pointing at the Basic Flash
// Parameter Table, and the table's density word (bits - 1: 32 Mbit). The W25Q32JV datasheet's
// other table values are not modelled (read as 0xFF).
std::uint8_t W25Q32::sfdp_byte(std::uint32_t address) {
  constexpr std::uint32_t kTable = 0x80;
  constexpr std::uint8_t kHeader[16] = {
      'S',  'F',  'D',  'P',  0x05,   0x01, 0x00, 0xFF,   // signature, revision 1.5, 1 header
      0x00, 0x05, 0x01, 0x10, kTable, 0x00, 0x00, 0xFF};  // BFPT 1.5, 16 words at 0x80
  constexpr std::uint32_t kDensityBitsMinus1 = kSize * 8 - 1;
  address &= 0xFF;
  if (address < sizeof(kHeader)) return kHeader[address];
  if (address >= kTable + 4 && address < kTable + 8) {
    return static_cast<std::uint8_t>(kDensityBitsMinus1 >> (8 * (address - kTable - 4)));
  }
  return 0xFF;
}

bool W25Q32::command(std::uint8_t opcode, std::uint32_t address, std::span<const std::uint8_t> tx,
                     std::span<std::uint8_t> rx, std::uint32_t pc) {
  if (!powered_) {
    std::fill(rx.begin(), rx.end(), std::uint8_t{0xFF});
    return false;
  }
  // A cut that was due before this command (its event not run yet because a blocking ROM call
  // holds the core) happens first: the device never sees the command.
  if (cut_event_ != 0 && cut_time_ <= clock_.now()) {
    clock_.cancel(cut_event_);
    cut_event_ = 0;
    cut_power_now();
    std::fill(rx.begin(), rx.end(), std::uint8_t{0xFF});
    return false;
  }
  address &= kSize - 1;
  const bool is_status_read = opcode == 0x05 || opcode == 0x35 || opcode == 0x15;
  if (busy() && !is_status_read) {
    fault(
        fmt::format("command 0x{:02X} issued while the flash is busy ({} in progress): the device "
                    "ignores it",
                    opcode, op_.kind == OpKind::kProgram ? "page program" : "erase"),
        pc);
    std::fill(rx.begin(), rx.end(), std::uint8_t{0xFF});
    return false;
  }
  switch (opcode) {
    case 0x05:
      std::fill(rx.begin(), rx.end(), status1());
      return true;
    case 0x35:
      std::fill(rx.begin(), rx.end(), status2_);
      return true;
    case 0x15:
      std::fill(rx.begin(), rx.end(), std::uint8_t{0x60});
      return true;
    case 0x06:
      wel_ = true;
      return true;
    case 0x04:
      wel_ = false;
      return true;
    case 0x01:
    case 0x31:
    case 0x11:
      if (!wel_) {
        fault(fmt::format("write status register 0x{:02X} without write enable is ignored", opcode),
              pc);
        return false;
      }
      if (opcode == 0x31 && !tx.empty()) status2_ = tx[0];
      wel_ = false;
      return true;
    case 0x9F: {
      const std::uint8_t id[3] = {0xEF, 0x40, 0x16};
      for (std::size_t i = 0; i < rx.size(); ++i) rx[i] = id[i % 3];
      return true;
    }
    case 0x90: {
      const std::uint8_t id[2] = {0xEF, 0x15};
      for (std::size_t i = 0; i < rx.size(); ++i) rx[i] = id[i % 2];
      return true;
    }
    case 0xAB:
      std::fill(rx.begin(), rx.end(), std::uint8_t{0x15});
      return true;
    case 0x5A:
      for (std::size_t i = 0; i < rx.size(); ++i) {
        rx[i] = sfdp_byte(address + static_cast<std::uint32_t>(i));
      }
      return true;
    case 0x66:
    case 0x99:
      wel_ = false;
      return true;
    case 0x03:
    case 0x0B:
    case 0x3B:
    case 0x6B:
    case 0xBB:
    case 0xEB:
      for (std::size_t i = 0; i < rx.size(); ++i) rx[i] = mem_[(address + i) & (kSize - 1)];
      return true;
    case 0x02:
    case 0x32: {
      if (!wel_) {
        fault(fmt::format("page program at 0x{:06X} without write enable (WEL=0): ignored by the "
                          "device",
                          address),
              pc);
        return false;
      }
      Op op;
      op.kind = OpKind::kProgram;
      const std::uint32_t page = address & ~(kPage - 1);
      op.address = page;
      op.length = kPage;
      op.data.assign(kPage, 0xFF);
      // Data beyond 256 bytes wraps and only the last 256 bytes are kept (datasheet).
      const std::size_t skip = tx.size() > kPage ? tx.size() - kPage : 0;
      for (std::size_t i = skip; i < tx.size(); ++i) {
        op.data[(address + i) % kPage] = tx[i];
      }
      for (std::uint32_t i = 0; i < kPage; ++i) {
        const std::uint8_t want = op.data[i];
        const std::uint8_t have = mem_[page + i];
        if (want != 0xFF && (want & ~have) != 0) {
          const std::string msg = fmt::format(
              "page program needs a 0->1 bit change at offset 0x{:06X} (flash has 0x{:02X}, data "
              "0x{:02X}); NOR programming only clears bits",
              page + i, have, want);
          if (strict_) {
            fault(msg, pc);
          } else {
            reporter_.report(Severity::kWarning, "flash", msg, pc);
          }
          break;
        }
      }
      op.end = times_.page_program;
      start_op(std::move(op));
      return true;
    }
    case 0x20:
    case 0x52:
    case 0xD8:
    case 0x60:
    case 0xC7: {
      if (!wel_) {
        fault(fmt::format("erase command 0x{:02X} at 0x{:06X} without write enable (WEL=0): "
                          "ignored by the device",
                          opcode, address),
              pc);
        return false;
      }
      Op op;
      switch (opcode) {
        case 0x20:
          op.kind = OpKind::kErase4k;
          op.length = 4096;
          op.end = times_.erase_4k;
          break;
        case 0x52:
          op.kind = OpKind::kErase32k;
          op.length = 32768;
          op.end = times_.erase_32k;
          break;
        case 0xD8:
          op.kind = OpKind::kErase64k;
          op.length = 65536;
          op.end = times_.erase_64k;
          break;
        default:
          op.kind = OpKind::kEraseChip;
          op.length = kSize;
          op.end = times_.erase_chip;
          break;
      }
      op.address = address & ~(op.length - 1);
      start_op(std::move(op));
      return true;
    }
    default:
      fault(fmt::format("unsupported flash opcode 0x{:02X}", opcode), pc);
      return false;
  }
}

void W25Q32::start_op(Op op) {
  const Nanos duration = op.end;
  op.start = clock_.now();
  op.end = op.start + duration;
  op_ = std::move(op);
  ++mutating_ops_;
  if (on_busy_change) on_busy_change(true);
  if (cut_after_ops_ != 0 && --cut_after_ops_ == 0) {
    // Cut somewhere inside this operation, deterministic from the seed.
    const double fraction = std::uniform_real_distribution<double>(0.05, 0.95)(rng_);
    const Nanos at = op_.start + static_cast<Nanos>(static_cast<double>(duration) * fraction);
    cut_power_at_time(at);
  }
  op_event_ = clock_.schedule(op_.end, [this] {
    op_event_ = 0;
    complete_op();
  });
}

void W25Q32::complete_op() {
  if (op_.kind == OpKind::kNone) return;
  if (op_.kind == OpKind::kProgram) {
    for (std::uint32_t i = 0; i < kPage; ++i) mem_[op_.address + i] &= op_.data[i];
    ++programmed_pages_;
  } else {
    std::fill_n(mem_.begin() + op_.address, op_.length, std::uint8_t{0xFF});
    for (std::uint32_t s = op_.address / kSector; s < (op_.address + op_.length) / kSector; ++s) {
      ++wear_[s];
    }
    erased_bytes_ += op_.length;
  }
  const std::uint32_t a = op_.address;
  const std::uint32_t n = op_.length;
  op_ = Op{};
  wel_ = false;
  persist(a, n);
  if (on_modified) on_modified(a, n);
  if (on_busy_change) on_busy_change(false);
}

void W25Q32::tear_op(double fraction) {
  fraction = std::clamp(fraction, 0.0, 1.0);
  const std::uint32_t a = op_.address;
  const std::uint32_t n = op_.length;
  if (op_.kind == OpKind::kProgram) {
    // A prefix (in address order, low bit first) of the bits to be cleared is cleared.
    std::uint64_t total = 0;
    for (std::uint32_t i = 0; i < kPage; ++i) {
      total += static_cast<unsigned>(__builtin_popcount(mem_[a + i] & ~op_.data[i] & 0xFF));
    }
    auto todo = static_cast<std::uint64_t>(static_cast<double>(total) * fraction);
    for (std::uint32_t i = 0; i < kPage && todo > 0; ++i) {
      for (unsigned bit = 0; bit < 8 && todo > 0; ++bit) {
        const auto mask = static_cast<std::uint8_t>(1u << bit);
        if ((mem_[a + i] & mask) != 0 && (op_.data[i] & mask) == 0) {
          mem_[a + i] = static_cast<std::uint8_t>(mem_[a + i] & ~mask);
          --todo;
        }
      }
    }
  } else {
    // A partly erased sector: erasing drives bits towards 1; which ones got there is
    // indeterminate (deterministic from the seed).
    for (std::uint32_t i = 0; i < n; ++i) {
      mem_[a + i] = static_cast<std::uint8_t>(mem_[a + i] | (rng_() & 0xFF));
    }
    for (std::uint32_t s = a / kSector; s < (a + n) / kSector; ++s) ++wear_[s];
  }
  op_ = Op{};
  wel_ = false;
  persist(a, n);
  if (on_modified) on_modified(a, n);
  if (on_busy_change) on_busy_change(false);
}

void W25Q32::finish_now() {
  if (!busy()) return;
  if (op_event_ != 0) {
    clock_.cancel(op_event_);
    op_event_ = 0;
  }
  if (cut_event_ != 0 && cut_time_ <= op_.end) {
    clock_.cancel(cut_event_);
    cut_event_ = 0;
    const double span = static_cast<double>(op_.end - op_.start);
    const double fraction =
        span > 0 ? static_cast<double>(cut_time_ > op_.start ? cut_time_ - op_.start : 0) / span
                 : 0.5;
    const std::string what = fmt::format("power cut during {} at 0x{:06X} ({:.0f}% done)",
                                         op_.kind == OpKind::kProgram ? "page program" : "erase",
                                         op_.address, fraction * 100.0);
    tear_op(fraction);
    powered_ = false;
    reporter_.report(Severity::kInfo, "flash", what, 0);
    if (on_power_cut) on_power_cut(what);
    return;
  }
  complete_op();
}

void W25Q32::cut_power_at_time(Nanos t) {
  if (cut_event_ != 0) clock_.cancel(cut_event_);
  cut_time_ = t;
  cut_event_ = clock_.schedule(t, [this] {
    cut_event_ = 0;
    cut_power_now();
  });
}

void W25Q32::cut_power_now() {
  std::string what = "power cut";
  if (busy()) {
    const Nanos now = clock_.now();
    const double span = static_cast<double>(op_.end - op_.start);
    const double fraction = span > 0 ? static_cast<double>(now - op_.start) / span : 0.5;
    what = fmt::format("power cut during {} at 0x{:06X} ({:.0f}% done)",
                       op_.kind == OpKind::kProgram ? "page program" : "erase", op_.address,
                       fraction * 100.0);
    if (op_event_ != 0) {
      clock_.cancel(op_event_);
      op_event_ = 0;
    }
    tear_op(fraction);
  }
  powered_ = false;
  wel_ = false;
  reporter_.report(Severity::kInfo, "flash", what, 0);
  if (on_power_cut) on_power_cut(what);
}

}  // namespace rtcanboot::twin
