// A strict model of the 4 MiB W25Q32JV QSPI NOR behind the FlashPort, for unit tests, the fuzzer
// and the core benchmark. Whatever the chip would not do is recorded as a violation (and, in
// tests, reported as a failure through set_violation_handler):
//   - erase only 4/32/64 KiB at matching boundaries; program only one whole, aligned page;
//   - programming only clears bits: asking for a 1 where the flash holds a 0 is a violation
//     (except in a 0xFF byte, which leaves its cells alone);
//   - busy for a modelled duration (typical or maximum datasheet timing): starting another
//     operation or reading while busy is a violation;
//   - the page buffer must stay unchanged until the program completes;
//   - the bootloader region (first 128 KiB) must never be erased or programmed.
// Power cuts: before the N-th mutating operation (it never happens) or in the middle of it (a
// prefix of the page's cleared bits, or a prefix of the sector erased); afterwards the flash is
// dead until power_on().
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "rtcanboot/flash_port.hpp"
#include "rtcanboot/types.hpp"

namespace rtcanboot::test {

struct NorTiming {
  Micros page_program = 0;
  Micros erase_4k = 0;
  Micros erase_32k = 0;
  Micros erase_64k = 0;

  static NorTiming instant() { return {}; }
  // W25Q32JV datasheet: typical and maximum.
  static NorTiming typical() { return {400, 45'000, 120'000, 150'000}; }
  static NorTiming maximum() { return {3'000, 400'000, 1'600'000, 2'000'000}; }
};

class NorFlashFake final : public FlashPort {
 public:
  static constexpr std::uint32_t kSize = 4 * 1024 * 1024;
  static constexpr std::uint32_t kPage = 256;
  static constexpr std::uint32_t kProtectedEnd = 0x2'0000;  // the bootloader's 128 KiB

  enum class Cut : std::uint8_t { kBefore, kMidOperation };

  explicit NorFlashFake(NorTiming timing = NorTiming::instant());

  // Time: the fake is busy until now() reaches the end of the running operation.
  void set_now(Micros now) { now_ = now; }
  Micros now() const { return now_; }
  void set_timing(NorTiming timing) { timing_ = timing; }
  // End time of the running operation (now() when idle).
  Micros busy_until() const { return in_op_ ? op_end_ : now_; }

  FlashResult start_erase(std::uint32_t offset, std::uint32_t length) override;
  FlashResult start_program(std::uint32_t offset, const std::uint8_t* page) override;
  bool busy() override;
  FlashResult last_result() const override { return last_result_; }
  FlashResult read(std::uint32_t offset, void* destination, std::uint32_t length) override;

  // Direct access, as a programmer or the test would have it (no timing, no strictness).
  std::vector<std::uint8_t>& contents() { return memory_; }
  const std::vector<std::uint8_t>& contents() const { return memory_; }
  void load(std::uint32_t offset, const void* data, std::size_t length);

  // Back to a fresh state cheaply (fuzzing): every range an operation touched is erased again,
  // the operation log, counters and violations are cleared, power is on.
  void reset_touched();

  // Power cut at the `index`-th (1-based) mutating operation from now on. `fraction` (0..1) is
  // how far a mid-operation cut gets.
  void cut_power_at(std::uint32_t index, Cut mode, double fraction = 0.5);
  bool power_lost() const { return power_lost_; }
  // Power comes back: no operation running, no cut armed.
  void power_on();

  // Failure injection: the `index`-th mutating operation from now on reports kFailed.
  void fail_operation_at(std::uint32_t index) { fail_at_ = mutating_ops_ + index; }

  std::uint32_t mutating_ops() const { return mutating_ops_; }
  // Every mutating operation started (or cut), in order.
  struct Operation {
    bool erase;
    std::uint32_t offset;
    std::uint32_t length;
  };
  const std::vector<Operation>& operations() const { return operations_; }
  std::uint32_t programs() const { return programs_; }
  std::uint32_t erases(std::uint32_t size) const;
  Micros busy_time() const { return busy_time_; }

  const std::vector<std::string>& violations() const { return violations_; }
  void set_violation_handler(std::function<void(const std::string&)> handler) {
    on_violation_ = std::move(handler);
  }

 private:
  void violation(std::string message);
  void complete();
  bool count_mutation();

  NorTiming timing_;
  std::vector<std::uint8_t> memory_;
  Micros now_ = 0;

  bool in_op_ = false;
  bool op_is_erase_ = false;
  std::uint32_t op_offset_ = 0;
  std::uint32_t op_length_ = 0;
  Micros op_end_ = 0;
  const std::uint8_t* op_source_ = nullptr;
  std::uint8_t op_page_[kPage] = {};
  bool op_fails_ = false;
  FlashResult last_result_ = FlashResult::kOk;

  std::uint32_t mutating_ops_ = 0;
  std::uint32_t cut_at_ = 0;  // 0: no cut armed
  Cut cut_mode_ = Cut::kBefore;
  double cut_fraction_ = 0.5;
  bool power_lost_ = false;
  std::uint32_t fail_at_ = 0;

  std::uint32_t programs_ = 0;
  std::uint32_t erases_4k_ = 0;
  std::uint32_t erases_32k_ = 0;
  std::uint32_t erases_64k_ = 0;
  Micros busy_time_ = 0;

  std::vector<Operation> operations_;
  std::vector<std::string> violations_;
  std::function<void(const std::string&)> on_violation_;
};

// Loads `payload` at the application region and a COMMIT record of it (sequence 1) into the
// install journal, as a previous bootloader run would have left them; no flash operation counted.
void install_committed_image(NorFlashFake& flash, const std::vector<std::uint8_t>& payload,
                             std::uint32_t image_version = 7);

}  // namespace rtcanboot::test
