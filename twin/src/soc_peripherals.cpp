#include "twin/soc_peripherals.hpp"

#include <algorithm>
#include <cstring>
#include <random>

#include <fmt/format.h>

namespace rtcanboot::twin {

namespace {
__extension__ typedef unsigned __int128 u128;

std::uint32_t width_mask(unsigned width) {
  return width >= 4 ? 0xFFFF'FFFFu : ((1u << (8 * width)) - 1u);
}
}  // namespace

// ---------------------------------------------------------------------------------------------
// RegisterBlock

std::uint32_t RegisterBlock::reg(std::uint32_t offset) const {
  auto it = regs_.find(offset);
  return it == regs_.end() ? 0 : it->second;
}

std::uint32_t RegisterBlock::read(std::uint32_t offset, unsigned width, std::uint32_t pc) {
  const std::uint32_t aligned = offset & ~3u;
  const unsigned shift = (offset & 3u) * 8;
  return (read_word(aligned, pc) >> shift) & width_mask(width);
}

void RegisterBlock::write(std::uint32_t offset, std::uint32_t value, unsigned width,
                          std::uint32_t pc) {
  const std::uint32_t aligned = offset & ~3u;
  const unsigned shift = (offset & 3u) * 8;
  const std::uint32_t mask = width_mask(width) << shift;
  write_word(aligned, (value << shift) & mask, mask, pc);
}

void RegisterBlock::reset(bool warm) {
  previous_ = regs_;
  regs_ = reset_values_;
  on_reset(warm);
}

void RegisterBlock::fault(const std::string& message, std::uint32_t pc) const {
  ctx_.reporter->report(Severity::kFault, name_, message, pc);
}

void RegisterBlock::warn(const std::string& message, std::uint32_t pc) const {
  ctx_.reporter->report(Severity::kWarning, name_, message, pc);
}

// ---------------------------------------------------------------------------------------------
// CCM

Ccm::Ccm(SocContext& ctx) : RegisterBlock("CCM", 0x4000, ctx) {
  set_reset_value(0x00, 0x0401'107F);  // CCR
  set_reset_value(0x14, 0x000A'8300);  // CBCDR: IPG_PODF = 3 (150 MHz IPG at 600 MHz AHB)
  set_reset_value(0x18, 0x2DAE'8324);  // CBCMR
  set_reset_value(0x1C, 0x0490'0080);  // CSCMR1: PERCLK from IPG, PODF 0
  set_reset_value(0x20, 0x1319'2F06);  // CSCMR2: CAN_CLK_SEL = 3 (off), PODF = 1
  set_reset_value(0x24, 0x0649'0B00);  // CSCDR1: UART from pll3_80m, PODF 0
  set_reset_value(0x38, 0x2940'8600);  // CSCDR2
  for (unsigned i = 0; i < 8; ++i) set_reset_value(0x68 + 4 * i, 0xFFFF'FFFF);
}

void Ccm::on_reset(bool) {}

std::uint32_t Ccm::can_root_hz() const {
  const std::uint32_t v = reg(0x20);
  const std::uint32_t sel = (v >> 8) & 3;
  const std::uint32_t podf = (v >> 2) & 0x3F;
  const std::uint32_t pll3 = analog_ != nullptr ? analog_->pll3_hz() : 480'000'000u;
  std::uint32_t base = 0;
  switch (sel) {
    case 0:
      base = pll3 / 8;
      break;
    case 1:
      base = 24'000'000;
      break;
    case 2:
      base = pll3 / 6;
      // ERR050235 (fact sheet §5.2; mcux-sdk devices/MIMXRT1064/drivers/fsl_clock.h
      // CAN_CLOCK_CHECK_NO_AFFECTS): the clock is correct only while LPUART1's gate is on.
      // No source says what it becomes; the twin runs it at pll3/8, a rate every bit timing
      // notices.
      if (!gate_on(5, 12)) {
        base = pll3 / 8;
        if (!err050235_reported_) {
          err050235_reported_ = true;
          warn(
              "ERR050235: CAN_CLK_SEL = 2 with the LPUART1 clock gate (CCGR5 CG12) off: the CAN "
              "clock "
              "is wrong (the twin runs it at pll3_sw_clk/8)",
              0);
        }
      }
      break;
    default:
      break;
  }
  return base / (podf + 1);
}

bool Ccm::gate_on(unsigned ccgr, unsigned cg) const {
  return ((reg(0x68 + 4 * ccgr) >> (2 * cg)) & 3) != 0;
}

std::uint32_t Ccm::can_clock_hz(unsigned instance) const {
  bool on = false;
  switch (instance) {
    case 1:
      on = gate_on(0, 7) && gate_on(0, 8);
      break;
    case 2:
      on = gate_on(0, 9) && gate_on(0, 10);
      break;
    case 3:
      on = gate_on(7, 3) && gate_on(7, 4);
      break;
    default:
      break;
  }
  return on ? can_root_hz() : 0;
}

std::uint32_t Ccm::uart_root_hz() const {
  const std::uint32_t v = reg(0x24);
  const std::uint32_t pll3 = analog_ != nullptr ? analog_->pll3_hz() : 480'000'000u;
  const std::uint32_t base = (v & (1u << 6)) ? 24'000'000u : pll3 / 6;  // pll3_80m
  return base / ((v & 0x3F) + 1);
}

std::uint32_t Ccm::flexspi2_root_hz() const {
  const std::uint32_t v = reg(0x18);
  const std::uint32_t podf = v >> 29;
  if (analog_ == nullptr) return 0;
  std::uint32_t base = 0;
  switch ((v >> 8) & 3) {
    case 0:
      base = analog_->pll2_pfd_hz(2);
      break;
    case 1:
      base = analog_->pll3_pfd_hz(0);
      break;
    case 2:
      base = analog_->pll3_pfd_hz(1);
      break;
    default:
      base = analog_->pll2_hz();
      break;
  }
  return base / (podf + 1);
}

void Ccm::select_flexspi2_pll3_pfd0(unsigned podf) {
  set_reg(0x18, (reg(0x18) & ~(0x7u << 29 | 0x3u << 8)) | (podf & 7) << 29 | 1u << 8);
}

std::uint32_t Ccm::ipg_hz() const {
  return 600'000'000u / (((reg(0x14) >> 8) & 3) + 1);
}

std::uint32_t Ccm::perclk_hz() const {
  const std::uint32_t v = reg(0x1C);
  const std::uint32_t base = (v & (1u << 6)) ? 24'000'000u : ipg_hz();
  return base / ((v & 0x3F) + 1);
}

// ---------------------------------------------------------------------------------------------
// CCM_ANALOG (with PMU / XTALOSC): SET/CLR/TOG aliases; PLLs always report lock.

namespace {
constexpr std::uint32_t kPllLock = 1u << 31, kPllBypass = 1u << 16, kPllEnable = 1u << 13,
                        kPllPower = 1u << 12, kPllEnUsbClks = 1u << 6;
}  // namespace

CcmAnalog::CcmAnalog(SocContext& ctx, Pll3AfterBoot pll3)
    : RegisterBlock("CCM_ANALOG", 0x1000, ctx), pll3_after_boot_(pll3) {
  set_reset_value(0x00, 0x0001'3063);  // PLL_ARM
  // PLL_USB1 as the boot ROM leaves it (Readings::pll3_after_boot).
  std::uint32_t usb1 = 0;  // powered down, disabled, not bypassed: no output (CLOCK_DeinitUsb1Pll)
  if (pll3 == Pll3AfterBoot::kBypassed) usb1 = kPllBypass | kPllEnable | kPllPower | kPllEnUsbClks;
  if (pll3 == Pll3AfterBoot::kRunning) usb1 = kPllEnable | kPllPower | kPllEnUsbClks;
  set_reset_value(0x10, usb1);
  set_reset_value(0x30, 0x0001'3001);   // PLL_SYS
  set_reset_value(0xF0, 0x1311'100C);   // PFD_480
  set_reset_value(0x100, 0x1018'101B);  // PFD_528
}

void CcmAnalog::on_reset(bool) {}

std::uint32_t CcmAnalog::pll3_hz() const {
  const std::uint32_t v = reg(0x10);
  if ((v & kPllBypass) != 0) return 24'000'000;
  if ((v & kPllPower) == 0 || (v & kPllEnable) == 0) return 0;
  return (v & 2u) ? 528'000'000u : 480'000'000u;
}

std::uint32_t CcmAnalog::pll3_pfd_hz(unsigned pfd) const {
  const std::uint32_t field = reg(0xF0) >> (8 * (pfd & 3));
  const std::uint32_t frac = field & 0x3F;
  if ((field & 0x80) != 0 || frac < 12) return 0;  // gated, or FRAC below its 12..35 range
  return static_cast<std::uint32_t>(std::uint64_t{pll3_hz()} * 18 / frac);
}

std::uint32_t CcmAnalog::pll2_pfd_hz(unsigned pfd) const {
  const std::uint32_t field = reg(0x100) >> (8 * (pfd & 3));
  const std::uint32_t frac = field & 0x3F;
  if ((field & 0x80) != 0 || frac < 12) return 0;
  return static_cast<std::uint32_t>(std::uint64_t{pll2_hz()} * 18 / frac);
}

void CcmAnalog::set_pll3_pfd_frac(unsigned pfd, unsigned frac) {
  const unsigned shift = 8 * (pfd & 3);
  set_reg(0xF0, (reg(0xF0) & ~(0xFFu << shift)) | (frac & 0x3F) << shift);
}

std::uint32_t CcmAnalog::read_word(std::uint32_t offset, std::uint32_t) {
  const std::uint32_t base = offset < 0x200 ? (offset & ~0xFu) : offset;
  std::uint32_t v = reg(base);
  switch (base) {
    case 0x10:  // PLL_USB1: locked only while powered and enabled
      if ((v & kPllPower) != 0 && (v & kPllEnable) != 0) v |= kPllLock;
      break;
    case 0x00:
    case 0x20:
    case 0x30:
    case 0x70:
    case 0xA0:
    case 0xE0:
      v |= kPllLock;
      break;
    default:
      break;
  }
  return v;
}

void CcmAnalog::write_word(std::uint32_t offset, std::uint32_t value, std::uint32_t mask,
                           std::uint32_t) {
  if (offset >= 0x200) {
    store(offset, value, mask);
    return;
  }
  const std::uint32_t base = offset & ~0xFu;
  const std::uint32_t old = reg(base);
  switch (offset & 0xF) {
    case 0x0:
      store(base, value, mask);
      break;
    case 0x4:
      set_reg(base, old | (value & mask));
      break;
    case 0x8:
      set_reg(base, old & ~(value & mask));
      break;
    default:
      set_reg(base, old ^ (value & mask));
      break;
  }
}

// ---------------------------------------------------------------------------------------------
// IOMUXC

Iomuxc::Iomuxc(SocContext& ctx) : RegisterBlock("IOMUXC", 0x4000, ctx) {}

bool Iomuxc::can_pins_muxed(unsigned instance) const {
  auto alt = [this](std::uint32_t off) { return reg(off) & 0xF; };
  switch (instance) {
    case 1:  // GPIO_AD_B1_08/09 ALT2, CAN1_RX select input = 2
      return alt(0x11C) == 2 && alt(0x120) == 2 && reg(0x44C) == 2;
    case 2:  // GPIO_AD_B0_14/15 ALT6, CAN2_RX select input = 2
      return alt(0x0F4) == 6 && alt(0x0F8) == 6 && reg(0x450) == 2;
    case 3:  // GPIO_AD_B0_14/15 ALT8 (select 1) or GPIO_EMC_36/37 ALT9 (select 0)
      return (alt(0x0F4) == 8 && alt(0x0F8) == 8 && reg(0x78C) == 1) ||
             (alt(0x0A4) == 9 && alt(0x0A8) == 9 && reg(0x78C) == 0);
    default:
      return false;
  }
}

// ---------------------------------------------------------------------------------------------
// SRC

Src::Src(SocContext& ctx, SrcGprOverReset reading)
    : RegisterBlock("SRC", 0x4000, ctx), reading_(reading) {
  set_reset_value(0x00, 0xA048'0520);  // SCR
  set_reset_value(0x1C, 0x0200'0000);  // SBMR2: BMOD = 10 (internal boot)
}

void Src::record_reset(ResetCause cause) {
  set_reg(0x08, reg(0x08) | static_cast<std::uint32_t>(cause));
  const bool cleared =
      reading_ == SrcGprOverReset::kClearedByEveryReset ||
      (reading_ == SrcGprOverReset::kClearedBySysResetReq && cause == ResetCause::kSysResetReq);
  if (cause != ResetCause::kPowerOn && cleared) {
    for (std::uint32_t off = 0x20; off <= 0x44; off += 4) set_reg(off, 0);
  }
}

void Src::write_word(std::uint32_t offset, std::uint32_t value, std::uint32_t mask,
                     std::uint32_t pc) {
  if (offset == 0x08) {  // SRSR: write 1 to clear
    set_reg(0x08, reg(0x08) & ~(value & mask));
    return;
  }
  if (offset == 0x04 || offset == 0x1C) {
    warn(fmt::format("write to read-only SRC register +0x{:02X} ignored", offset), pc);
    return;
  }
  store(offset, value, mask);
}

void Src::on_reset(bool warm) {
  if (!warm) return;
  // GPR1..GPR10 and the sticky reset flags (SRSR) survive a warm reset.
  for (std::uint32_t off = 0x20; off <= 0x44; off += 4) {
    auto it = previous_.find(off);
    if (it != previous_.end()) set_reg(off, it->second);
  }
  auto it = previous_.find(0x08);
  if (it != previous_.end()) set_reg(0x08, it->second);
}

// ---------------------------------------------------------------------------------------------
// SNVS: the LP domain (LPGPR) keeps its contents across a warm reset, or not (the reading).

void Snvs::on_reset(bool warm) {
  if (warm && reading_ == SnvsLpgprOverReset::kKeptOverWarmReset) regs_ = previous_;
}

}  // namespace rtcanboot::twin

namespace rtcanboot::twin {

// ---------------------------------------------------------------------------------------------
// WDOG1 / WDOG2: WCR +0 (16 bit), WSR +2, WRSR +4, WICR +6, WMCR +8. Timeout (WT+1) * 0.5 s.

Wdog::Wdog(std::string name, unsigned irq, SocContext& ctx, bool left_running)
    : RegisterBlock(std::move(name), 0x4000, ctx), irq_(irq), left_running_(left_running) {
  set_reset_value(0x00, 0x0000'0030);  // WCR: WDA | SRS
  set_reset_value(0x04, 0x0000'0000);
  set_reset_value(0x08, 0x0000'0001);  // WMCR: PDE
}

void Wdog::on_reset(bool) {
  if (event_ != 0) ctx_.clock->cancel(event_);
  event_ = 0;
  service_state_ = 0;
  wde_written_ = false;
  if (left_running_) {  // the boot ROM enabled it (RomWatchdogs): WDE set, WT = 0 (0.5 s)
    set_reg(0, reg(0) | 0x4);
    wde_written_ = true;
    rearm();
  }
}

void Wdog::rearm() {
  if (event_ != 0) ctx_.clock->cancel(event_);
  event_ = 0;
  if (!enabled()) return;
  const std::uint32_t wt = (reg(0) >> 8) & 0xFF;
  const Nanos timeout = (static_cast<Nanos>(wt) + 1) * 500'000'000ull;
  event_ = ctx_.clock->schedule(now() + timeout, [this] {
    event_ = 0;
    ctx_.request_reset(ResetCause::kWdog, fmt::format("{} expired (not serviced)", name_));
  });
}

void Wdog::write_word(std::uint32_t offset, std::uint32_t value, std::uint32_t mask,
                      std::uint32_t pc) {
  (void)irq_;
  if (offset == 0x00) {
    if (mask & 0xFFFFu) {
      const std::uint32_t old = reg(0) & 0xFFFF;
      std::uint32_t wcr = (old & ~mask) | (value & mask & 0xFFFF);
      if ((old & 0x4) && !(wcr & 0x4) && wde_written_) {
        fault(
            fmt::format("{} WCR.WDE is write-once: clearing it after it was set is ignored", name_),
            pc);
        wcr |= 0x4;
      }
      if (wcr & 0x4) wde_written_ = true;
      set_reg(0, (reg(0) & 0xFFFF'0000u) | wcr);
      rearm();
    }
    if (mask & 0xFFFF'0000u) {  // WSR service sequence
      const auto wsr = static_cast<std::uint16_t>(value >> 16);
      if (wsr == kService1) {
        service_state_ = 1;
      } else if (wsr == kService2 && service_state_ == 1) {
        service_state_ = 0;
        rearm();
      } else {
        service_state_ = 0;
      }
    }
    return;
  }
  store(offset, value, mask);
}

// ---------------------------------------------------------------------------------------------
// RTWDOG: CS +0, CNT +4, TOVAL +8, WIN +C. Left disabled and reconfigurable by the boot ROM,
// or running (Readings::rom_watchdogs).

Rtwdog::Rtwdog(SocContext& ctx, bool left_running)
    : RegisterBlock("RTWDOG", 0x4000, ctx), left_running_(left_running) {
  set_reset_value(0x00, 0x0000'2120);  // CMD32EN | CLK=LPO | UPDATE, EN = 0
  set_reset_value(0x08, 0x0000'0400);
}

void Rtwdog::on_reset(bool) {
  if (event_ != 0) ctx_.clock->cancel(event_);
  event_ = 0;
  unlocked_ = false;
  half_key_ = 0;
  half_refresh_ = 0;
  started_ = now();
  if (left_running_) {  // enabled out of reset (RomWatchdogs): EN, reset TOVAL, UPDATE kept
    set_reg(0, reg(0) | 0x80);
    rearm();
  }
}

Nanos Rtwdog::tick_ns() const {
  const std::uint32_t cs = reg(0);
  Nanos ns = 0;
  switch ((cs >> 8) & 3) {
    case 0:
      ns = 7;
      break;  // bus clock ~150 MHz
    case 1:
      ns = 31'250;
      break;  // LPO 32 kHz
    case 2:
      ns = 125;
      break;  // INTCLK 8 MHz
    default:
      ns = 42;
      break;  // ERCLK 24 MHz
  }
  if (cs & (1u << 12)) ns *= 256;
  return ns;
}

void Rtwdog::rearm() {
  if (event_ != 0) ctx_.clock->cancel(event_);
  event_ = 0;
  if (!enabled()) return;
  const Nanos timeout = (static_cast<Nanos>(reg(0x08) & 0xFFFF) + 1) * tick_ns();
  event_ = ctx_.clock->schedule(started_ + timeout, [this] {
    event_ = 0;
    ctx_.request_reset(ResetCause::kWdog3, "RTWDOG expired (not refreshed)");
  });
}

std::uint32_t Rtwdog::read_word(std::uint32_t offset, std::uint32_t) {
  if (offset == 0x00) {
    std::uint32_t cs = reg(0) | (1u << 10);  // RCS: reconfiguration done
    if (unlocked_ && now() <= unlock_until_) cs |= 1u << 11;
    return cs;
  }
  if (offset == 0x04) {
    if (!enabled()) return 0;
    return static_cast<std::uint32_t>(((now() - started_) / tick_ns()) & 0xFFFF);
  }
  return reg(offset);
}

void Rtwdog::write_word(std::uint32_t offset, std::uint32_t value, std::uint32_t mask,
                        std::uint32_t pc) {
  const bool open = unlocked_ && now() <= unlock_until_;
  if (offset == 0x04) {
    const std::uint32_t v = value & mask;
    auto unlock = [this] {
      unlocked_ = true;
      unlock_until_ = now() + 1700;  // 255 bus clocks
    };
    auto refresh = [this] {
      started_ = now();
      rearm();
    };
    if (mask == 0xFFFF'FFFFu) {
      if (v == 0xD928'C520u) {
        unlock();
      } else if (v == kRefreshKey) {
        refresh();
      } else {
        ctx_.request_reset(ResetCause::kWdog3,
                           fmt::format("RTWDOG: invalid CNT write 0x{:08X}", v));
      }
      return;
    }
    const auto half = static_cast<std::uint16_t>((mask & 0xFFFF) ? v : (v >> 16));
    if (half == 0xC520) {
      half_key_ = 0xC520;
    } else if (half == 0xD928 && half_key_ == 0xC520) {
      half_key_ = 0;
      unlock();
    } else if (half == kRefreshLow) {
      half_refresh_ = kRefreshLow;
    } else if (half == kRefreshHigh && half_refresh_ == kRefreshLow) {
      half_refresh_ = 0;
      refresh();
    } else {
      ctx_.request_reset(ResetCause::kWdog3,
                         fmt::format("RTWDOG: invalid CNT write 0x{:04X}", half));
    }
    return;
  }
  if (!open) {
    fault(fmt::format("RTWDOG register +0x{:X} written without the unlock sequence (ignored)",
                      offset),
          pc);
    return;
  }
  if (offset == 0x00) {
    store(0, value & ~(1u << 11) & ~(1u << 10), mask);
    started_ = now();
  } else {
    store(offset, value, mask);
  }
  rearm();
}

// ---------------------------------------------------------------------------------------------
// GPT: CR +0, PR +4, SR +8, IR +C, OCR1..3 +10..+18, ICR1/2 +1C/+20, CNT +24.

Gpt::Gpt(std::string name, unsigned irq, const Ccm& ccm, SocContext& ctx)
    : RegisterBlock(std::move(name), 0x4000, ctx), irq_(irq), ccm_(ccm) {
  for (std::uint32_t off = 0x10; off <= 0x18; off += 4) set_reset_value(off, 0xFFFF'FFFF);
}

void Gpt::on_reset(bool) {
  for (auto& e : events_) {
    if (e != 0) ctx_.clock->cancel(e);
    e = 0;
  }
  running_ = false;
  base_value_ = 0;
  base_time_ = now();
  ctx_.irq->set_irq_level(irq_, false);
}

double Gpt::tick_hz() const {
  const std::uint32_t cr = reg(0);
  const std::uint32_t pr = reg(4);
  double hz = 0;
  switch ((cr >> 6) & 7) {
    case 1:
      hz = ccm_.perclk_hz();
      break;
    case 2:
      hz = ccm_.perclk_hz();
      break;
    case 4:
      hz = 32768.0;
      break;
    case 5:
      hz = (cr & (1u << 10)) ? 24e6 / static_cast<double>(((pr >> 12) & 0xF) + 1) : 0.0;
      break;
    default:
      hz = 0;
      break;
  }
  return hz / static_cast<double>((pr & 0xFFF) + 1);
}

std::uint32_t Gpt::counter() const {
  if (!running_) return base_value_;
  const double hz = tick_hz();
  if (hz <= 0) return base_value_;
  const auto elapsed = static_cast<u128>(now() - base_time_);
  const auto ticks = static_cast<std::uint64_t>(static_cast<double>(elapsed) * hz / 1e9);
  if (!(reg(0) & (1u << 9))) {  // restart mode: wraps after OCR1
    const std::uint64_t period = static_cast<std::uint64_t>(reg(0x10)) + 1;
    return static_cast<std::uint32_t>((base_value_ + ticks) % period);
  }
  return static_cast<std::uint32_t>(base_value_ + ticks);
}

void Gpt::rebase(std::uint32_t value) {
  base_value_ = value;
  base_time_ = now();
}

void Gpt::update_irq() {
  ctx_.irq->set_irq_level(irq_, (reg(8) & reg(0xC) & 0x3F) != 0);
}

void Gpt::reschedule() {
  for (auto& e : events_) {
    if (e != 0) ctx_.clock->cancel(e);
    e = 0;
  }
  if (!running_) return;
  const double hz = tick_hz();
  if (hz <= 0) return;
  const std::uint32_t cnt = counter();
  const bool restart = !(reg(0) & (1u << 9));
  for (unsigned ch = 0; ch < 3; ++ch) {
    const std::uint32_t ocr = reg(0x10 + 4 * ch);
    std::uint64_t delta = 0;
    if (restart) {
      const std::uint64_t period = static_cast<std::uint64_t>(reg(0x10)) + 1;
      if (ocr >= period) continue;
      delta = ocr >= cnt ? ocr - cnt : period - cnt + ocr;
      if (delta == 0) delta = period;
    } else {
      delta = static_cast<std::uint32_t>(ocr - cnt);
      if (delta == 0) delta = 1ull << 32;
    }
    // The compare fires when the counter reaches OCR (one tick after it equals OCR - 1).
    const Nanos at = now() + static_cast<Nanos>(static_cast<double>(delta) * 1e9 / hz) + 1;
    events_[ch] = ctx_.clock->schedule(at, [this, ch] {
      events_[ch] = 0;
      set_reg(8, reg(8) | (1u << ch));
      update_irq();
      reschedule();
    });
  }
}

std::uint32_t Gpt::read_word(std::uint32_t offset, std::uint32_t) {
  if (offset == 0x24) return counter();
  return reg(offset);
}

void Gpt::write_word(std::uint32_t offset, std::uint32_t value, std::uint32_t mask,
                     std::uint32_t pc) {
  switch (offset) {
    case 0x00: {
      const std::uint32_t cnt = counter();
      const std::uint32_t old = reg(0);
      std::uint32_t cr = (old & ~mask) | (value & mask);
      if (cr & (1u << 15)) {  // SWR: software reset of the module
        reset(false);
        return;
      }
      cr &= ~(7u << 26);  // FO bits are write-only strobes
      set_reg(0, cr);
      const bool en = (cr & 1) != 0;
      if (en && !running_) {
        rebase((cr & 2) ? 0 : cnt);  // ENMOD: counter restarts from 0
        running_ = true;
      } else if (!en && running_) {
        running_ = false;
        rebase(cnt);
      } else {
        rebase(cnt);
      }
      reschedule();
      return;
    }
    case 0x04: {
      const std::uint32_t cnt = counter();
      store(4, value, mask);
      rebase(cnt);
      reschedule();
      return;
    }
    case 0x08:  // SR: write 1 to clear
      set_reg(8, reg(8) & ~(value & mask));
      update_irq();
      return;
    case 0x0C:
      store(0xC, value, mask);
      update_irq();
      return;
    case 0x10:
    case 0x14:
    case 0x18: {
      const std::uint32_t cnt = counter();
      store(offset, value, mask);
      // In restart mode a write to OCR1 resets the counter.
      rebase(offset == 0x10 && !(reg(0) & (1u << 9)) ? 0 : cnt);
      reschedule();
      return;
    }
    default:
      warn(fmt::format("write to read-only {} register +0x{:02X} ignored", name_, offset), pc);
      return;
  }
}

// ---------------------------------------------------------------------------------------------
// PIT: MCR +0, channel n at +0x100 + 0x10 n: LDVAL, CVAL, TCTRL, TFLG. Clocked by PERCLK.

Pit::Pit(const Ccm& ccm, SocContext& ctx) : RegisterBlock("PIT", 0x4000, ctx), ccm_(ccm) {
  set_reset_value(0x00, 0x0000'0002);  // MDIS
}

void Pit::on_reset(bool) {
  for (auto& e : events_) {
    if (e != 0) ctx_.clock->cancel(e);
    e = 0;
  }
  ctx_.irq->set_irq_level(122, false);
}

void Pit::update_irq() {
  bool any = false;
  for (unsigned ch = 0; ch < 4; ++ch) {
    const std::uint32_t base = 0x100 + 0x10 * ch;
    if ((reg(base + 0xC) & 1) && (reg(base + 8) & 2)) any = true;
  }
  ctx_.irq->set_irq_level(122, any);
}

void Pit::restart(unsigned ch) {
  const std::uint32_t base = 0x100 + 0x10 * ch;
  if (events_[ch] != 0) ctx_.clock->cancel(events_[ch]);
  events_[ch] = 0;
  start_[ch] = now();
  if ((reg(0) & 2) || !(reg(base + 8) & 1)) return;
  const double hz = ccm_.perclk_hz();
  const Nanos period = static_cast<Nanos>((static_cast<double>(reg(base)) + 1) * 1e9 / hz);
  events_[ch] = ctx_.clock->schedule(now() + std::max<Nanos>(period, 1), [this, ch, base] {
    events_[ch] = 0;
    set_reg(base + 0xC, 1);
    update_irq();
    restart(ch);
  });
}

std::uint32_t Pit::read_word(std::uint32_t offset, std::uint32_t) {
  if (offset >= 0x100 && offset < 0x140 && (offset & 0xF) == 4) {
    const unsigned ch = (offset - 0x100) / 0x10;
    const std::uint32_t ld = reg(0x100 + 0x10 * ch);
    if (events_[ch] == 0) return ld;
    const double hz = ccm_.perclk_hz();
    const auto ticks =
        static_cast<std::uint64_t>(static_cast<double>(now() - start_[ch]) * hz / 1e9);
    return ld - static_cast<std::uint32_t>(std::min<std::uint64_t>(ticks, ld));
  }
  return reg(offset);
}

void Pit::write_word(std::uint32_t offset, std::uint32_t value, std::uint32_t mask,
                     std::uint32_t pc) {
  if (offset == 0) {
    store(0, value, mask);
    for (unsigned ch = 0; ch < 4; ++ch) restart(ch);
    return;
  }
  if (offset >= 0x100 && offset < 0x140) {
    const unsigned ch = (offset - 0x100) / 0x10;
    switch (offset & 0xF) {
      case 0x0:
        store(offset, value, mask);
        return;  // takes effect at the next reload
      case 0x4:
        warn("PIT CVAL is read-only", pc);
        return;
      case 0x8:
        if (value & mask & 4) warn("PIT chain mode is not modelled", pc);
        {
          const bool was = reg(offset) & 1;
          store(offset, value, mask);
          if (!was && (reg(offset) & 1)) restart(ch);
          if (was && !(reg(offset) & 1)) restart(ch);
        }
        update_irq();
        return;
      default:
        set_reg(offset, reg(offset) & ~(value & mask));
        update_irq();
        return;
    }
  }
  store(offset, value, mask);
}

// ---------------------------------------------------------------------------------------------
// LPUART: transmit is instantaneous (TDRE and TC always set); the receiver never has data.

Lpuart::Lpuart(std::string name, SocContext& ctx) : RegisterBlock(std::move(name), 0x4000, ctx) {
  set_reset_value(0x00, 0x0401'0003);  // VERID
  set_reset_value(0x04, 0x0000'0202);  // PARAM
  set_reset_value(0x10, 0x0F00'0004);  // BAUD
  set_reset_value(0x14, 0x00C0'0000);  // STAT: TDRE | TC
  set_reset_value(0x28, 0x00C0'0011);  // FIFO
}

void Lpuart::on_reset(bool) {}

std::uint32_t Lpuart::read_word(std::uint32_t offset, std::uint32_t) {
  if (offset == 0x14) return (reg(0x14) & ~0x0020'0000u) | 0x00C0'0000u;
  if (offset == 0x1C) return 0x1000;                    // RXEMPT
  if (offset == 0x28) return reg(0x28) | 0x00C0'0000u;  // TXEMPT | RXEMPT
  return reg(offset);
}

void Lpuart::write_word(std::uint32_t offset, std::uint32_t value, std::uint32_t mask,
                        std::uint32_t pc) {
  if (offset == 0x1C) {
    if (!(reg(0x18) & (1u << 19))) {
      warn(fmt::format("{} DATA written with the transmitter disabled (CTRL.TE = 0): character "
                       "0x{:02X} is lost",
                       name_, value & 0xFF),
           pc);
      return;
    }
    if (ctx_.console) ctx_.console(static_cast<char>(value & 0xFF));
    return;
  }
  if (offset == 0x14) {  // STAT: w1c flags
    set_reg(0x14, reg(0x14) & ~(value & mask & 0xC01F'C000u));
    return;
  }
  if (offset == 0x08 && (value & mask & 2)) {  // GLOBAL.RST
    store(8, value, mask);
    return;
  }
  store(offset, value, mask);
}

// ---------------------------------------------------------------------------------------------
// FlexSPI2 registers.

FlexSpi2::FlexSpi2(SocContext& ctx) : RegisterBlock("FLEXSPI2", 0x4000, ctx) {
  set_reset_value(0x00, 0xFFFF'80C2);  // MCR0 (MDIS set)
  set_reset_value(0x0C, 0x0000'0018);  // AHBCR
  set_reset_value(0x18, 0x5AF0'5AF0);  // LUTKEY
  set_reset_value(0x1C, 0x0000'0002);  // LUTCR: unlocked
  set_reset_value(0xE0, 0x0000'0003);  // STS0: SEQIDLE | ARBIDLE
}

void FlexSpi2::on_reset(bool warm) {
  lut_locked_ = false;
  ++resets_;
  switch (lut_after_reset_) {
    case LutAfterReset::kZero:
      lut_.fill(0);
      break;
    case LutAfterReset::kSeeded: {
      std::mt19937_64 rng(seed_ * 0x9E37'79B9'7F4A'7C15ull + resets_);
      for (auto& w : lut_) w = static_cast<std::uint32_t>(rng());
      break;
    }
    case LutAfterReset::kKeptOverWarmReset:
      if (!warm) lut_.fill(0);
      break;
  }
}

void FlexSpi2::load_sequences(unsigned first, const std::uint32_t* words, unsigned count) {
  for (unsigned i = 0; i < 4 * count && 4 * first + i < lut_.size(); ++i)
    lut_[4 * first + i] = words[i];
}

void FlexSpi2::init_from_fcb(const std::uint8_t* fcb) {
  std::uint32_t read_sequence[4];
  std::memcpy(read_sequence, fcb + 0x80, sizeof read_sequence);
  load_sequences(0, read_sequence, 1);
  set_reg(0x00, 0xFFFF'8010);  // enabled, RXCLKSRC = loopback from DQS pad
  set_reg(0x0C, 0x0000'0078);  // AHBCR: cachable, bufferable, prefetch, read-address-opt
  set_reg(0x60, 0x0000'1000);  // FLSHA1CR0: 4 MiB
}

std::uint32_t FlexSpi2::read_word(std::uint32_t offset, std::uint32_t) {
  if (offset >= 0x200 && offset < 0x300) return lut_[(offset - 0x200) / 4];
  if (offset == 0xE0) return 0x3;
  if (offset == 0x1C) return lut_locked_ ? 1 : 2;
  return reg(offset);
}

void FlexSpi2::write_word(std::uint32_t offset, std::uint32_t value, std::uint32_t mask,
                          std::uint32_t pc) {
  if (offset >= 0x200 && offset < 0x300) {
    if (lut_locked_) {
      fault("FlexSPI2 LUT written while locked (LUTCR.LOCK): ignored", pc);
      return;
    }
    auto& w = lut_[(offset - 0x200) / 4];
    w = (w & ~mask) | (value & mask);
    return;
  }
  switch (offset) {
    case 0x00: {
      std::uint32_t v = (reg(0) & ~mask) | (value & mask);
      if (v & 1) {
        if (ctx_.ahb_buffer_reset) ctx_.ahb_buffer_reset();
        v &= ~1u;  // SWRESET self-clears
      }
      set_reg(0, v);
      return;
    }
    case 0x0C: {
      std::uint32_t v = (reg(0x0C) & ~mask) | (value & mask);
      if (v & 2) {
        if (ctx_.ahb_buffer_reset) ctx_.ahb_buffer_reset();
        v &= ~2u;
      }
      set_reg(0x0C, v & ~4u);
      return;
    }
    case 0x14:
      set_reg(0x14, reg(0x14) & ~(value & mask));
      return;
    case 0x18:
      return;
    case 0x1C:
      if (reg(0x18) != 0x5AF0'5AF0u) return;
      if (value & mask & 1) lut_locked_ = true;
      if (value & mask & 2) lut_locked_ = false;
      return;
    case 0xB0:
      if (value & mask & 1) {
        fault("IP command through FlexSPI2 IPCMD is not modelled by the twin; use the ROM API xfer",
              pc);
      }
      return;
    default:
      store(offset, value, mask);
      return;
  }
}

}  // namespace rtcanboot::twin
