// Peripheral models of the i.MX RT1064 SoC side of the twin (everything except FlexCAN):
// CCM, CCM_ANALOG, IOMUXC, IOMUXC_GPR, SRC, SNVS, watchdogs, GPT, PIT, LPUART, FlexSPI2
// registers and plain register files for harmless blocks.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "twin/peripheral.hpp"

namespace rtcanboot::twin {

// Reset causes as SRC_SRSR bits.
enum class ResetCause : std::uint32_t {
  kPowerOn = 1u << 0,
  kSysResetReq = 1u << 1,
  kWdog = 1u << 4,
  kWdog3 = 1u << 7,
};

// What the SoC peripherals need from the SoC around them.
struct SocContext {
  Clock* clock = nullptr;
  InterruptController* irq = nullptr;
  Reporter* reporter = nullptr;
  std::function<void(ResetCause, const std::string&)> request_reset;
  std::function<void(char)> console;       // LPUART1 transmit
  std::function<void()> ahb_buffer_reset;  // FlexSPI2 MCR0.SWRESET / AHBCR.CLRAHBRXBUF
};

// Base for 32-bit register blocks: splits byte/halfword accesses into masked word accesses.
class RegisterBlock : public Peripheral {
 public:
  RegisterBlock(std::string name, std::uint32_t size, SocContext& ctx)
      : name_(std::move(name)), size_(size), ctx_(ctx) {}
  std::string name() const override { return name_; }
  std::uint32_t size() const override { return size_; }
  std::uint32_t read(std::uint32_t offset, unsigned width, std::uint32_t pc) override;
  void write(std::uint32_t offset, std::uint32_t value, unsigned width, std::uint32_t pc) override;
  void reset(bool warm) override;

 protected:
  // Word access at an aligned offset; `mask` has the bytes being written.
  virtual std::uint32_t read_word(std::uint32_t offset, std::uint32_t pc) {
    (void)pc;
    return reg(offset);
  }
  virtual void write_word(std::uint32_t offset, std::uint32_t value, std::uint32_t mask,
                          std::uint32_t pc) {
    (void)pc;
    store(offset, value, mask);
  }
  virtual void on_reset(bool warm) { (void)warm; }
  std::uint32_t reg(std::uint32_t offset) const;
  void set_reg(std::uint32_t offset, std::uint32_t value) { regs_[offset] = value; }
  void store(std::uint32_t offset, std::uint32_t value, std::uint32_t mask) {
    regs_[offset] = (reg(offset) & ~mask) | (value & mask);
  }
  void set_reset_value(std::uint32_t offset, std::uint32_t value) { reset_values_[offset] = value; }
  void fault(const std::string& message, std::uint32_t pc) const;
  void warn(const std::string& message, std::uint32_t pc) const;
  Nanos now() const { return ctx_.clock->now(); }

  std::string name_;
  std::uint32_t size_;
  SocContext& ctx_;
  std::map<std::uint32_t, std::uint32_t> regs_;
  std::map<std::uint32_t, std::uint32_t> reset_values_;
  std::map<std::uint32_t, std::uint32_t> previous_;  // contents before the last reset
};

// Plain storage, no behaviour (GPIO, FlexRAM, DCDC, OCOTP, IOMUXC_SNVS, CM7_MCM ...).
class PlainRegisters final : public RegisterBlock {
 public:
  using RegisterBlock::RegisterBlock;
  void preset(std::uint32_t offset, std::uint32_t value) {
    set_reset_value(offset, value);
    set_reg(offset, value);
  }
};

class CcmAnalog;

// What the boot ROM leaves PLL3 (USB1 PLL, the source of pll3_sw_clk) in: unconfirmed (fact
// sheet §5.2: "running" is an inference from the ROM clocking FlexSPI2 from PLL3 PFD0).
//   kPoweredDown  off: the PLL3 roots (CAN_CLK_SEL 0/2, UART pll3_80m) give no clock
//   kBypassed     bypassed: pll3_sw_clk is the 24 MHz oscillator, every PLL3 root is 20x slow
//   kRunning      locked at 480 MHz
enum class Pll3AfterBoot { kPoweredDown, kBypassed, kRunning };

class Ccm final : public RegisterBlock {
 public:
  explicit Ccm(SocContext& ctx);
  void set_analog(const CcmAnalog* analog) { analog_ = analog; }
  // The CAN clock root (CSCMR2 CAN_CLK_SEL/PODF, PLL3 as CCM_ANALOG has it); 0 when disabled.
  // ERR050235: at CAN_CLK_SEL = 2 with the LPUART1 clock gate off the clock is wrong.
  std::uint32_t can_root_hz() const;
  // Whether the clock gate (CCGRn, CGm) is on in run mode.
  bool gate_on(unsigned ccgr, unsigned cg) const;
  // FlexCAN instance 1..3: root frequency if both the module and serial gates are on, else 0.
  std::uint32_t can_clock_hz(unsigned instance) const;
  std::uint32_t uart_root_hz() const;
  // FLEXSPI2_CLK_ROOT (CBCMR FLEXSPI2_CLK_SEL and FLEXSPI2_PODF; mux per mcux-sdk fsl_clock.h).
  std::uint32_t flexspi2_root_hz() const;
  // What the ROM does for a serialClkFreq code: FLEXSPI2_CLK_SEL = 1 (PLL3 PFD0), PODF.
  void select_flexspi2_pll3_pfd0(unsigned podf);
  std::uint32_t ipg_hz() const;
  std::uint32_t perclk_hz() const;

 protected:
  void on_reset(bool warm) override;

 private:
  const CcmAnalog* analog_ = nullptr;
  mutable bool err050235_reported_ = false;
};

class CcmAnalog final : public RegisterBlock {
 public:
  CcmAnalog(SocContext& ctx, Pll3AfterBoot pll3);
  // pll3_sw_clk as PLL_USB1 is set now: 0 (powered down or disabled), 24 MHz (bypassed) or
  // 480/528 MHz (DIV_SELECT); LOCK reads 1 only while the PLL is powered and enabled.
  std::uint32_t pll3_hz() const;
  // PLL3 PFD0..3 (PFD_480): pll3 * 18 / FRAC, 0 while the PFD is gated.
  std::uint32_t pll3_pfd_hz(unsigned pfd) const;
  std::uint32_t pll2_hz() const { return 528'000'000; }
  std::uint32_t pll2_pfd_hz(unsigned pfd) const;
  void set_pll3_pfd_frac(unsigned pfd, unsigned frac);

 protected:
  std::uint32_t read_word(std::uint32_t offset, std::uint32_t pc) override;
  void write_word(std::uint32_t offset, std::uint32_t value, std::uint32_t mask,
                  std::uint32_t pc) override;
  void on_reset(bool warm) override;

 private:
  Pll3AfterBoot pll3_after_boot_;
};

class Iomuxc final : public RegisterBlock {
 public:
  explicit Iomuxc(SocContext& ctx);
  // Whether the TX and RX pins of FlexCAN `instance` (1..3) are routed to a pad (one of the
  // documented pad options, with the daisy chain set for RX).
  bool can_pins_muxed(unsigned instance) const;
  std::uint32_t mux(std::uint32_t offset) const { return reg(offset); }
};

// Which resets clear SRC_GPR1..10: unconfirmed (fact sheet §6.2, §9 items 6 and 16; the SDK
// says only "hold the value during reset process"). A power-on reset clears them in every reading.
//   kClearedByEveryReset   SYSRESETREQ and the watchdogs clear them too
//   kClearedBySysResetReq  SYSRESETREQ clears them, a watchdog reset keeps them
//   kKeptOverWarmReset     every warm reset keeps them (the SDK's wording)
enum class SrcGprOverReset { kClearedByEveryReset, kClearedBySysResetReq, kKeptOverWarmReset };

// Whether the SNVS LP general-purpose registers keep their contents over a warm reset:
// unconfirmed for the RT1064 (fact sheet §6.3, §9 item 7).
enum class SnvsLpgprOverReset { kClearedByWarmReset, kKeptOverWarmReset };

class Src final : public RegisterBlock {
 public:
  Src(SocContext& ctx, SrcGprOverReset reading);
  // Sets SRSR for `cause` and applies the GPR reading (called after the reset itself).
  void record_reset(ResetCause cause);

 protected:
  void write_word(std::uint32_t offset, std::uint32_t value, std::uint32_t mask,
                  std::uint32_t pc) override;
  void on_reset(bool warm) override;

 private:
  SrcGprOverReset reading_;
};

class Snvs final : public RegisterBlock {
 public:
  Snvs(SocContext& ctx, SnvsLpgprOverReset reading)
      : RegisterBlock("SNVS", 0x4000, ctx), reading_(reading) {}

 protected:
  void on_reset(bool warm) override;

 private:
  SnvsLpgprOverReset reading_;
};

// WDOG1/WDOG2 (16-bit registers).
// Which watchdogs the boot ROM leaves running (a WDOG_ENABLE fuse, or RTWDOG's own reset state):
// unconfirmed (issue 9; fact sheet §6.5). When running: WDOG1 with WCR.WDE set (write-once) and
// WT = 0 (0.5 s); RTWDOG enabled from the LPO with its reset TOVAL 0x400 (32 ms), UPDATE set.
enum class RomWatchdogs { kWdog1AndRtwdogRunning, kRtwdogRunning, kNone };

class Wdog final : public RegisterBlock {
 public:
  // `left_running`: the ROM leaves this one enabled at every boot (RomWatchdogs).
  Wdog(std::string name, unsigned irq, SocContext& ctx, bool left_running = false);
  bool enabled() const { return (reg(0) & 0x4) != 0; }
  // The service sequence's two WSR (+2) values.
  static constexpr std::uint16_t kService1 = 0x5555, kService2 = 0xAAAA;
  // A write of one of them: it restarts the countdown and changes nothing readable.
  bool is_service_write(std::uint32_t offset, std::uint32_t value) const override {
    return offset == 2 && (value == kService1 || value == kService2);
  }

 protected:
  void write_word(std::uint32_t offset, std::uint32_t value, std::uint32_t mask,
                  std::uint32_t pc) override;
  void on_reset(bool warm) override;

 private:
  void rearm();
  unsigned irq_;
  std::uint16_t service_state_ = 0;
  std::uint64_t event_ = 0;
  bool wde_written_ = false;
  bool left_running_ = false;
};

// RTWDOG (WDOG3).
class Rtwdog final : public RegisterBlock {
 public:
  explicit Rtwdog(SocContext& ctx, bool left_running = false);
  bool enabled() const { return (reg(0) & 0x80) != 0; }
  // The CNT (+4) refresh key, written whole or as its two halves (low half first).
  static constexpr std::uint32_t kRefreshKey = 0xB480'A602u;
  static constexpr std::uint16_t kRefreshLow = kRefreshKey & 0xFFFF,
                                 kRefreshHigh = kRefreshKey >> 16;
  // A refresh write: it restarts the countdown and changes nothing readable.
  bool is_service_write(std::uint32_t offset, std::uint32_t value) const override {
    return offset == 4 && (value == kRefreshKey || value == kRefreshLow || value == kRefreshHigh);
  }
  // CNT (+4) counts with time.
  bool is_time_register(std::uint32_t offset) const override { return offset == 4; }

 protected:
  std::uint32_t read_word(std::uint32_t offset, std::uint32_t pc) override;
  void write_word(std::uint32_t offset, std::uint32_t value, std::uint32_t mask,
                  std::uint32_t pc) override;
  void on_reset(bool warm) override;

 private:
  void rearm();
  Nanos tick_ns() const;
  Nanos unlock_until_ = 0;
  bool unlocked_ = false;
  std::uint16_t half_key_ = 0;
  std::uint16_t half_refresh_ = 0;
  bool left_running_ = false;
  Nanos started_ = 0;
  std::uint64_t event_ = 0;
};

class Gpt final : public RegisterBlock {
 public:
  Gpt(std::string name, unsigned irq, const Ccm& ccm, SocContext& ctx);
  // CNT (+0x24) counts with time.
  bool is_time_register(std::uint32_t offset) const override { return offset == 0x24; }

 protected:
  std::uint32_t read_word(std::uint32_t offset, std::uint32_t pc) override;
  void write_word(std::uint32_t offset, std::uint32_t value, std::uint32_t mask,
                  std::uint32_t pc) override;
  void on_reset(bool warm) override;

 private:
  double tick_hz() const;
  std::uint32_t counter() const;
  void rebase(std::uint32_t value);
  void reschedule();
  void update_irq();
  unsigned irq_;
  const Ccm& ccm_;
  bool running_ = false;
  std::uint32_t base_value_ = 0;
  Nanos base_time_ = 0;
  std::array<std::uint64_t, 3> events_{};
};

class Pit final : public RegisterBlock {
 public:
  Pit(const Ccm& ccm, SocContext& ctx);
  // Each channel's CVAL (+0x104 + 16 n) counts with time.
  bool is_time_register(std::uint32_t offset) const override {
    return offset >= 0x100 && (offset & 0xF) == 0x4;
  }

 protected:
  std::uint32_t read_word(std::uint32_t offset, std::uint32_t pc) override;
  void write_word(std::uint32_t offset, std::uint32_t value, std::uint32_t mask,
                  std::uint32_t pc) override;
  void on_reset(bool warm) override;

 private:
  void restart(unsigned ch);
  void update_irq();
  const Ccm& ccm_;
  std::array<Nanos, 4> start_{};
  std::array<std::uint64_t, 4> events_{};
};

class Lpuart final : public RegisterBlock {
 public:
  Lpuart(std::string name, SocContext& ctx);

 protected:
  std::uint32_t read_word(std::uint32_t offset, std::uint32_t pc) override;
  void write_word(std::uint32_t offset, std::uint32_t value, std::uint32_t mask,
                  std::uint32_t pc) override;
  void on_reset(bool warm) override;
};

// FlexSPI2 controller registers. Holds the LUT that the ROM API and the boot path use.
// What the 64 LUT words hold after a reset. No NXP source says (fact sheet §3.10, §9 item 15);
// each is a reading the twin can take (docs/twin.md "Readings"):
//   kZero               every word 0 (the first instruction of every slot is STOP: sends nothing)
//   kSeeded             a pattern from the board's seed (garbage instructions)
//   kKeptOverWarmReset  a warm reset keeps what was loaded before it (0 after power-on)
enum class LutAfterReset { kZero, kSeeded, kKeptOverWarmReset };

class FlexSpi2 final : public RegisterBlock {
 public:
  explicit FlexSpi2(SocContext& ctx);
  std::uint32_t lut(unsigned index) const { return lut_[index & 63]; }
  // flexspi_update_lut: `count` sequences of 4 words into slots first..first+count-1.
  void load_sequences(unsigned first, const std::uint32_t* words, unsigned count);
  // flexspi_nor_drv_flash_init (boot path and ROM init): controller registers from the FCB and
  // LUT sequence 0 only; the other slots keep what they held.
  void init_from_fcb(const std::uint8_t* fcb);
  void set_lut_after_reset(LutAfterReset mode, std::uint64_t seed) {
    lut_after_reset_ = mode;
    seed_ = seed;
  }

 protected:
  std::uint32_t read_word(std::uint32_t offset, std::uint32_t pc) override;
  void write_word(std::uint32_t offset, std::uint32_t value, std::uint32_t mask,
                  std::uint32_t pc) override;
  void on_reset(bool warm) override;

 private:
  std::array<std::uint32_t, 64> lut_{};
  bool lut_locked_ = false;
  LutAfterReset lut_after_reset_ = LutAfterReset::kZero;
  std::uint64_t seed_ = 1;
  std::uint64_t resets_ = 0;
};

}  // namespace rtcanboot::twin
