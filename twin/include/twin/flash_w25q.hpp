// Model of the Winbond W25Q32JV serial NOR flash inside the i.MX RT1064 package (FlexSPI2).
// SPI command level: the ROM API model and the FlexSPI2 LUT executor feed it opcodes.
#pragma once

#include <cstdint>
#include <functional>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "twin/peripheral.hpp"

namespace rtcanboot::twin {

enum class FlashTiming { kTypical, kMax };

struct FlashTimes {
  Nanos page_program;
  Nanos erase_4k;
  Nanos erase_32k;
  Nanos erase_64k;
  Nanos erase_chip;
};

FlashTimes flash_times(FlashTiming timing);

class W25Q32 {
 public:
  static constexpr std::uint32_t kSize = 4u * 1024 * 1024;
  static constexpr std::uint32_t kPage = 256;
  static constexpr std::uint32_t kSector = 4096;
  static constexpr std::uint32_t kSectors = kSize / kSector;
  static constexpr std::uint8_t kStatusBusy = 0x01;
  static constexpr std::uint8_t kStatusWel = 0x02;

  enum class OpKind { kNone, kProgram, kErase4k, kErase32k, kErase64k, kEraseChip };

  struct Op {
    OpKind kind = OpKind::kNone;
    std::uint32_t address = 0;  // first byte touched
    std::uint32_t length = 0;
    std::vector<std::uint8_t> data;  // program: the 256-byte page image after wrap (0xFF = keep)
    Nanos start = 0;
    Nanos end = 0;
  };

  W25Q32(Clock& clock, Reporter& reporter, FlashTiming timing = FlashTiming::kTypical);
  ~W25Q32();
  W25Q32(const W25Q32&) = delete;
  W25Q32& operator=(const W25Q32&) = delete;

  // Backing file: loaded when it exists (must be exactly 4 MiB), created erased otherwise.
  // Every completed mutating operation is written through. Empty path = memory only.
  bool open_backing(const std::string& path, std::string* error);
  const std::string& backing_path() const { return path_; }

  void set_timing(FlashTiming timing) { times_ = flash_times(timing); }
  const FlashTimes& times() const { return times_; }
  void set_strict(bool strict) { strict_ = strict; }
  void set_seed(std::uint64_t seed) { rng_.seed(seed); }

  // Debug-probe access: no timing, no rules (used to install the bootloader and by tests).
  void probe_write(std::uint32_t offset, std::span<const std::uint8_t> bytes);
  void probe_erase_all();
  std::span<const std::uint8_t> contents() const { return mem_; }

  // One SPI transaction: opcode, 24-bit address (when the command takes one), data shifted in
  // (`tx`) and data shifted out (`rx`). Returns false when the device ignored the command.
  bool command(std::uint8_t opcode, std::uint32_t address, std::span<const std::uint8_t> tx,
               std::span<std::uint8_t> rx, std::uint32_t pc);

  bool busy() const { return op_.kind != OpKind::kNone; }
  // Completes the operation in progress now, as if its end time had come (a blocking ROM call
  // that polls until the end). A power cut planned before the end tears the operation instead.
  void finish_now();
  const Op& current_op() const { return op_; }
  std::uint8_t status1() const;
  bool powered() const { return powered_; }
  void power_on();  // after a power cut: the device answers again (contents as left by the cut)

  // Power cuts: at the N-th mutating operation from now (1 = the next one; the operation is torn
  // half way), or at a virtual time (an operation in progress then is torn in proportion).
  void cut_power_at_operation(std::uint64_t n) { cut_after_ops_ = n; }
  void cut_power_at_time(Nanos t);
  void cut_power_now();

  std::uint64_t mutating_operations() const { return mutating_ops_; }
  std::uint32_t wear(std::uint32_t sector) const { return wear_.at(sector); }
  std::uint64_t programmed_pages() const { return programmed_pages_; }
  std::uint64_t erased_bytes() const { return erased_bytes_; }

  // Observers set by the SoC: busy started/ended, and a range whose contents changed.
  std::function<void(bool busy)> on_busy_change;
  std::function<void(std::uint32_t offset, std::uint32_t length)> on_modified;
  // Called after the power has been cut (the SoC stops the board).
  std::function<void(const std::string& what)> on_power_cut;

 private:
  static std::uint8_t sfdp_byte(std::uint32_t address);
  void start_op(Op op);
  void complete_op();
  void tear_op(double fraction);
  void persist(std::uint32_t offset, std::uint32_t length);
  void fault(const std::string& message, std::uint32_t pc);

  Clock& clock_;
  Reporter& reporter_;
  FlashTimes times_;
  bool strict_ = true;
  std::vector<std::uint8_t> mem_;
  std::vector<std::uint32_t> wear_;
  std::string path_;
  int fd_ = -1;
  bool wel_ = false;
  std::uint8_t status2_ = 0x02;  // QE set (the SiP part is used with quad reads)
  Op op_;
  std::uint64_t op_event_ = 0;
  bool powered_ = true;
  std::uint64_t cut_after_ops_ = 0;
  std::uint64_t cut_event_ = 0;
  Nanos cut_time_ = 0;
  std::uint64_t mutating_ops_ = 0;
  std::uint64_t programmed_pages_ = 0;
  std::uint64_t erased_bytes_ = 0;
  std::mt19937_64 rng_{0x5EED};
};

}  // namespace rtcanboot::twin
