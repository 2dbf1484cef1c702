// The i.MX RT1064 board model: a Cortex-M7 (Unicorn) with the RT1064 memory map, boot ROM path,
// ROM FlexSPI NOR API, NVIC/SCB/SysTick/DWT, the SoC peripheral models and the W25Q32JV flash.
// A Simulation owns the virtual clock shared by all boards (and the CAN bus) and runs them in
// deterministic lock-step.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "twin/event_queue.hpp"
#include "twin/flash_w25q.hpp"
#include "twin/peripheral.hpp"
#include "twin/soc_peripherals.hpp"

namespace rtcanboot::twin {

namespace can {
class Bus;
class FlexCan;
}  // namespace can

// Core clock 600 MHz; the twin charges one cycle per 16-bit halfword of executed Thumb code
// (16-bit instructions 1 cycle, 32-bit instructions 2 cycles).
inline constexpr std::uint64_t kCoreHz = 600'000'000;
constexpr Nanos cycles_to_ns(std::uint64_t cycles) {
  return cycles * 5 / 3;
}
constexpr std::uint64_t ns_to_cycles(Nanos ns) {
  return (ns * 3 + 4) / 5;
}

struct Report {
  Nanos time = 0;
  Severity severity = Severity::kInfo;
  std::string source;
  std::string message;
  std::uint32_t pc = 0;
};

// What the boot ROM does with the SP of the vector table that IVT.entry points to: unconfirmed
// (fact sheet §9 item 4). NXP's SDK images (entry = vector table) boot, so the ROM takes the reset
// vector from it; whether it also loads SP is not documented.
//   kRomStackKept          the ROM branches to the reset vector on its own stack (OCRAM2)
//   kLoadedFromVectorTable MSP = the table's first word
enum class IvtEntrySp { kRomStackKept, kLoadedFromVectorTable };

// What a Cortex-M7 lockup (a fault the core cannot take: inside HardFault or NMI, or while it
// fetches the HardFault vector or stacks for it) does to the RT1064. NXP's MIMXRT1064.h describes
// SRC_SRSR bit 1 LOCKUP_SYSRESETREQ as "a reset has been caused by CPU lockup or software setting
// of SYSRESETREQ", and MIMXRT1064_features.h has FSL_FEATURE_SRC_HAS_SCR_LOCKUP_RST = 0 (no enable
// bit in SRC_SCR to switch it off): the chip resets, like SYSRESETREQ (docs/twin.md §4, §14).
//   kResets the SRC resets the chip at once; SRSR reads LOCKUP_SYSRESETREQ (the sources' reading)
//   kHalts  the core stays locked up until a watchdog or a power cycle ends it (the twin's reading
//           before these sources were read; kept to show that the trial watchdog covers it too)
enum class LockupReading { kResets, kHalts };

// What the FCB's serialClkFreq code means to the RT1064 ROM: unconfirmed (fact sheet §2.4, §9
// item 1). The ROM sets the FlexSPI2 root (CBCMR FLEXSPI2_CLK_SEL = 1, PLL3 PFD0 and
// FLEXSPI2_PODF, the flashloader's table) from it at boot and at every FlexSPI NOR init.
//   kRt106xTable 1..9 = 30, 50, 60, 75, 80, 100, 120, 133, 166 MHz (board XIP header,
//                imxrt-boot-gen, NuttX, the flashloader)
//   kSdkEnum     the SDK fsl_romapi.h enum: 7 = 133 MHz, 8 = 166 MHz, 9 = 200 MHz
// A serial clock above the W25Q32JV's 133 MHz is a fault: its reads are not reliable.
enum class SerialClkCode { kSdkEnum, kRt106xTable };

// Readings of chip facts no NXP source settles (fact sheet §9), one switch each; the defaults
// are the most hostile readings the sources allow (docs/twin.md "Readings").
struct Readings {
  LutAfterReset lut_after_reset = LutAfterReset::kZero;         // FlexSPI2 LUT slots nobody loaded
  Pll3AfterBoot pll3_after_boot = Pll3AfterBoot::kPoweredDown;  // PLL3 as the boot ROM leaves it
  SrcGprOverReset src_gpr_over_reset = SrcGprOverReset::kClearedByEveryReset;
  SnvsLpgprOverReset snvs_lpgpr_over_reset = SnvsLpgprOverReset::kClearedByWarmReset;
  RomWatchdogs rom_watchdogs = RomWatchdogs::kWdog1AndRtwdogRunning;
  IvtEntrySp ivt_entry_sp = IvtEntrySp::kRomStackKept;
  SerialClkCode serial_clk_code = SerialClkCode::kSdkEnum;  // the faster clock for every code
  LockupReading lockup = LockupReading::kResets;  // settled by NXP's sources (see the enum)
};

// Every reading as the fact sheet expects it (the twin's "friendly" board; docs/twin.md).
Readings fact_sheet_readings();
// `name=value` (e.g. "src_gpr_over_reset=kept_over_warm_reset") sets one reading, "fact_sheet"
// and "hostile" set all of them; false with a
// message naming the known names or values otherwise. reading_names() lists "name=v1|v2|...".
bool parse_reading(const std::string& spec, Readings& readings, std::string* error);
std::vector<std::string> reading_names();

struct BoardConfig {
  std::string name = "node";  // console lines are prefixed with "[<name> uart] "
  std::string flash_path;     // backing file; empty = memory only
  FlashTiming flash_timing = FlashTiming::kTypical;
  bool strict = true;
  std::uint64_t seed = 1;  // power-cut tearing and other indeterminate contents
  Readings readings;
  // The chip's OCOTP fuse words CFG0, CFG1, CFG2 (shadow registers at 0x401F_4410/420/430; NXP
  // SDK demos read the unique ID from CFG0/CFG1). All zero: CFG0/CFG1 derived from the board
  // name (every board its own ID), CFG2 = 0.
  std::array<std::uint32_t, 3> ocotp_cfg = {};
  // Console lines (without newline). Default: printed to stdout with the prefix.
  std::function<void(const std::string& line)> console_sink;
  // Reports (faults, warnings, infos). Default: faults and warnings printed to stderr.
  std::function<void(const Report&)> report_sink;
};

class Simulation;

enum class BoardState { kOff, kBooting, kRunning, kSleeping, kBootFailed, kHalted };

class Board final : public InterruptController {
 public:
  Board(Simulation& sim, BoardConfig config);
  ~Board() override;
  Board(const Board&) = delete;
  Board& operator=(const Board&) = delete;

  const std::string& name() const { return config_.name; }
  W25Q32& flash() { return *flash_; }
  Simulation& simulation() { return sim_; }

  // Power: cold reset and start of the boot ROM (also after a power cut).
  void power_on();
  void power_off(const std::string& why);
  // Warm reset of the whole chip (AIRCR.SYSRESETREQ, watchdog): RAM, SRC GPRs and SNVS kept.
  void warm_reset(ResetCause cause, const std::string& why);

  BoardState state() const { return state_; }
  bool halted() const { return state_ == BoardState::kHalted; }
  const std::string& stop_reason() const { return stop_reason_; }  // why halted / boot failed

  // Everything reported so far (faults, warnings, infos) and the console text.
  const std::vector<Report>& reports() const { return reports_; }
  std::size_t fault_count() const;
  bool has_fault_containing(const std::string& text) const;
  const std::string& console() const { return console_text_; }

  Nanos local_time() const { return cycles_to_ns(cycles_); }
  std::uint64_t cycles() const { return cycles_; }
  std::uint64_t executed_halfwords() const { return executed_halfwords_; }

  // SoC models other parts couple to (the FlexCAN models need the CAN clock and pin mux).
  Ccm& ccm() { return *ccm_; }
  Iomuxc& iomuxc() { return *iomuxc_; }
  Src& src() { return *src_; }
  Clock& clock();
  Reporter& reporter() { return reporter_; }
  InterruptController& irq() { return *this; }
  // Maps a model at `base` in the peripheral space (0x4000_0000-0x403F_FFFF).
  void attach_peripheral(std::uint32_t base, std::unique_ptr<Peripheral> model);
  void attach_peripheral(std::uint32_t base, Peripheral* model);  // not owned

  // FlexCAN instance 1..3 (always present; reaches a bus only when connected, clocked and muxed).
  can::FlexCan& flexcan(unsigned instance);
  // Connects FlexCAN `instance` (the bootloader uses 2) to `bus`.
  void connect_can(can::Bus& bus, unsigned instance = 2);

  // InterruptController
  void set_irq_level(unsigned irq, bool asserted) override;

  // Debug access to memory and registers (tests).
  bool read_memory(std::uint32_t address, void* out, std::size_t length);
  bool write_memory(std::uint32_t address, const void* data, std::size_t length);
  std::uint32_t read_u32(std::uint32_t address);
  std::uint32_t pc() const;
  std::uint32_t reg(int uc_reg) const;
  void set_reg(int uc_reg, std::uint32_t value);
  // Tests: calls the function at `address` (AAPCS, up to 4 register and 4 stack arguments) from
  // RAM with SP near the top of DTCM, runs until it returns or `timeout` passes; returns r0.
  // The board must not be executing firmware (e.g. flash without a bootloader).
  std::uint32_t call(std::uint32_t address, const std::vector<std::uint32_t>& args,
                     Nanos timeout = 10'000'000'000ull);

  // Runs this board's CPU until its local time reaches `until` (or it sleeps, halts or an event
  // it scheduled is due earlier than `until`). Used by Simulation.
  void run_to(Nanos until);

  struct Impl;

 private:
  friend struct Impl;
  class BoardReporter final : public Reporter {
   public:
    explicit BoardReporter(Board& b) : board_(b) {}
    void report(Severity severity, const std::string& source, const std::string& message,
                std::uint32_t pc) override;

   private:
    Board& board_;
  };

  Simulation& sim_;
  BoardConfig config_;
  BoardReporter reporter_;
  std::unique_ptr<W25Q32> flash_;
  SocContext soc_;
  std::unique_ptr<Ccm> ccm_;
  std::unique_ptr<Iomuxc> iomuxc_;
  std::unique_ptr<Src> src_;
  std::unique_ptr<Impl> impl_;
  BoardState state_ = BoardState::kOff;
  std::string stop_reason_;
  std::vector<Report> reports_;
  std::string console_text_;
  std::string console_line_;
  std::uint64_t cycles_ = 0;
  std::uint64_t executed_halfwords_ = 0;
};

// A set of boards on one virtual clock.
class Simulation {
 public:
  Simulation();
  ~Simulation();
  Board& add_board(BoardConfig config);
  std::vector<std::unique_ptr<Board>>& boards() { return boards_; }
  EventQueue& clock() { return clock_; }
  // A CAN bus on this simulation's clock (owned by the simulation).
  can::Bus& add_bus(std::uint32_t bitrate, const std::string& name = "can0");
  Reporter& reporter() { return reporter_; }
  Nanos now() const { return clock_.queue_time(); }
  void run_until(Nanos t);
  void run_for(Nanos d) { run_until(now() + d); }
  // Runs until `done()` holds (checked between quanta) or `deadline`; returns done().
  bool run_until(const std::function<bool()>& done, Nanos deadline);
  // One lock-step: runs the boards to the next event (at most one quantum, not past `t`) and
  // then the events due.
  void step(Nanos t);
  // Longest stretch the boards run apart before the queue catches up (lock-step quantum).
  Nanos quantum = 200'000;

 private:
  class SimReporter final : public Reporter {
   public:
    void report(Severity severity, const std::string& source, const std::string& message,
                std::uint32_t pc) override;
    std::function<void(const Report&)> sink;
    Simulation* sim = nullptr;
  };
  EventQueue clock_;
  SimReporter reporter_;
  std::vector<std::unique_ptr<can::Bus>> buses_;
  std::vector<std::unique_ptr<Board>> boards_;

 public:
  // Reports from buses (default: warnings and faults to stderr).
  void set_report_sink(std::function<void(const Report&)> sink) {
    reporter_.sink = std::move(sink);
  }
};

}  // namespace rtcanboot::twin
