// The board: the peripheral bus (16 KiB slots over 0x4000_0000..0x403F_FFFF) with the SoC models,
// FlexCANs and flash, power, resets and debug access.
#include "board_impl.hpp"

#include "twin/can/bus.hpp"
#include "twin/can/flexcan.hpp"

#include <algorithm>
#include <cstdio>
#include <stdexcept>

#include <fmt/format.h>

namespace rtcanboot::twin {

namespace {

// OCOTP CFG0..CFG2 of a board: configured, or CFG0/CFG1 = FNV-1a-64 of the board name.
std::array<std::uint32_t, 3> ocotp_words(const BoardConfig& config) {
  if (config.ocotp_cfg != std::array<std::uint32_t, 3>{}) return config.ocotp_cfg;
  std::uint64_t h = 0xCBF2'9CE4'8422'2325ULL;
  for (const char c : config.name)
    h = (h ^ static_cast<std::uint8_t>(c)) * 0x0000'0100'0000'01B3ULL;
  return {static_cast<std::uint32_t>(h), static_cast<std::uint32_t>(h >> 32), 0};
}

struct KnownBlock {
  std::uint32_t base;
  const char* name;
};
// Blocks of the RT1064 the twin does not model: reads warn (return 0), writes fault.
constexpr KnownBlock kKnownBlocks[] = {
    {0x4000'0000, "AIPSTZ1"},
    {0x4008'0000, "DCDC"},
    {0x4008'8000, "ACMP"},
    {0x4009'4000, "IOMUXC_SNVS_GPR?"},
    {0x400A'4000, "IOMUXC_SNVS_GPR"},
    {0x400A'8000, "IOMUXC_SNVS"},
    {0x400B'0000, "FLEXRAM"},
    {0x400B'4000, "EWM"},
    {0x400C'0000, "GPIO5"},
    {0x400E'8000, "DMA0"},
    {0x400E'C000, "DMAMUX"},
    {0x4018'0000, "ROMC"},
    {0x401F'4000, "OCOTP"},
    {0x402A'8000, "FLEXSPI"},
    {0x402F'0000, "SEMC"},
    {0x400D'8000, "CCM_ANALOG"},
    {0x4010'0000, "AIPSTZ2"},
    {0x4020'0000, "AIPSTZ3"},
    {0x4030'0000, "AIPSTZ4"},
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// Peripheral bus

void Board::Impl::attach(std::uint32_t base, Peripheral* model) {
  const std::uint32_t first = (base - kPeriphBase) / 0x4000;
  const std::uint32_t count = std::max<std::uint32_t>(1, (model->size() + 0x3FFF) / 0x4000);
  for (std::uint32_t i = first; i < first + count && i < slots.size(); ++i)
    slots[i] = Slot{model, base};
  all_models.push_back(model);
}

void Board::Impl::create_peripherals() {
  SocContext& ctx = b.soc_;
  auto own = [this](std::uint32_t base, std::unique_ptr<Peripheral> p) {
    Peripheral* raw = p.get();
    owned.push_back(std::move(p));
    attach(base, raw);
    return raw;
  };
  attach(0x400F'C000, b.ccm_.get());
  attach(0x401F'8000, b.iomuxc_.get());
  attach(0x400F'8000, b.src_.get());
  analog = static_cast<CcmAnalog*>(
      own(0x400D'8000, std::make_unique<CcmAnalog>(ctx, b.config_.readings.pll3_after_boot)));
  b.ccm_->set_analog(analog);
  auto gpr = std::make_unique<PlainRegisters>("IOMUXC_GPR", 0x4000, ctx);
  gpr->preset(0x44, 0x55AF'FA55);  // GPR17: default FlexRAM banks
  gpr->preset(0x40, 0x0020'0007);  // GPR16: INIT_VTOR = ROM
  own(0x400A'C000, std::move(gpr));
  own(0x400A'8000, std::make_unique<PlainRegisters>("IOMUXC_SNVS", 0x4000, ctx));
  own(0x400A'4000, std::make_unique<PlainRegisters>("IOMUXC_SNVS_GPR", 0x4000, ctx));
  own(0x400D'4000, std::make_unique<Snvs>(ctx, b.config_.readings.snvs_lpgpr_over_reset));
  const RomWatchdogs watchdogs = b.config_.readings.rom_watchdogs;
  own(0x400B'8000,
      std::make_unique<Wdog>("WDOG1", 92, ctx, watchdogs == RomWatchdogs::kWdog1AndRtwdogRunning));
  own(0x400D'0000, std::make_unique<Wdog>("WDOG2", 45, ctx));
  own(0x400B'C000, std::make_unique<Rtwdog>(ctx, watchdogs != RomWatchdogs::kNone));
  own(0x401E'C000, std::make_unique<Gpt>("GPT1", 100, *b.ccm_, ctx));
  own(0x401F'0000, std::make_unique<Gpt>("GPT2", 101, *b.ccm_, ctx));
  own(0x4008'4000, std::make_unique<Pit>(*b.ccm_, ctx));
  own(0x4018'4000, std::make_unique<Lpuart>("LPUART1", ctx));
  flexspi2 = static_cast<FlexSpi2*>(own(0x402A'4000, std::make_unique<FlexSpi2>(ctx)));
  flexspi2->set_lut_after_reset(b.config_.readings.lut_after_reset, b.config_.seed);
  own(0x400B'0000, std::make_unique<PlainRegisters>("FLEXRAM", 0x4000, ctx));
  own(0x4008'0000, std::make_unique<PlainRegisters>("DCDC", 0x4000, ctx));
  auto ocotp = std::make_unique<PlainRegisters>("OCOTP", 0x4000, ctx);
  ocotp->preset(0x440, 0x0010'0000);  // CFG3 bit 20: RT1064 SiP
  const auto cfg = ocotp_words(b.config_);
  for (std::uint32_t i = 0; i < 3; ++i) ocotp->preset(0x410 + 0x10 * i, cfg[i]);
  own(0x401F'4000, std::move(ocotp));
  own(0x401B'8000, std::make_unique<PlainRegisters>("GPIO1", 0x4000, ctx));
  own(0x401B'C000, std::make_unique<PlainRegisters>("GPIO2", 0x4000, ctx));
  own(0x401C'0000, std::make_unique<PlainRegisters>("GPIO3", 0x4000, ctx));
  own(0x401C'4000, std::make_unique<PlainRegisters>("GPIO4", 0x4000, ctx));
  own(0x400C'0000, std::make_unique<PlainRegisters>("GPIO5", 0x4000, ctx));
  own(0x402A'8000, std::make_unique<PlainRegisters>("FLEXSPI", 0x4000, ctx));
  gpio_fast = std::make_unique<PlainRegisters>("GPIO6-9", kGpioFastSize, ctx);
  for (unsigned inst = 1; inst <= 3; ++inst) {
    can::FlexCanConfig fc;
    fc.instance = inst;
    fc.owner = b.config_.name;
    fc.clock_hz = [this, inst] { return b.ccm_->can_clock_hz(inst); };
    fc.pins_muxed = [this, inst] { return b.iomuxc_->can_pins_muxed(inst); };
    auto model = std::make_unique<can::FlexCan>(fc, b.sim_.clock(), b, b.reporter_);
    flexcans[inst - 1] = model.get();
    own(can::FlexCan::base_address(inst), std::move(model));
  }
}

void Board::Impl::note_poll(std::uint32_t addr, std::uint32_t value, bool time_register) {
  // A tight loop (<= 2048 cycles per iteration) re-reading the same registers, with no register
  // write, where the non-timer registers keep their values: the firmware waits for an event or
  // for time to pass. After 24 iterations the board skips ahead (to the next event, at most to
  // the end of the quantum).
  for (unsigned i = 0; i < npolls; ++i) {
    PollEntry& e = polls[i];
    if (e.pc != block_pc || e.addr != addr) continue;
    if ((!time_register && e.value != value) || b.cycles_ - e.cycles > 2048) {
      npolls = 0;
      break;
    }
    e.cycles = b.cycles_;
    if (++e.count >= 24) {
      reset_polls();
      request_stop(Stop::kIdle);
    }
    return;
  }
  if (npolls == polls.size()) npolls = 0;
  polls[npolls++] = PollEntry{block_pc, addr, value, 0, b.cycles_};
}

std::uint64_t Board::Impl::mmio_read(std::uint32_t addr, unsigned size) {
  const Slot& s = slots[(addr - kPeriphBase) / 0x4000];
  if (s.model == nullptr) {
    for (const auto& k : kKnownBlocks) {
      if (addr >= k.base && addr < k.base + 0x4000) {
        b.reporter_.report(
            Severity::kWarning, "bus",
            fmt::format("read of unmodelled {} register 0x{:08X} returns 0 (block at 0x{:08X})",
                        k.name, addr, block_pc),
            block_pc);
        return 0;
      }
    }
    cpu_fault(
        "bus",
        fmt::format("read from unassigned peripheral address 0x{:08X} (bus error on the chip) "
                    "in the code block at 0x{:08X}",
                    addr, block_pc),
        block_pc);
    return 0;
  }
  const std::uint32_t off = addr - s.base;
  const std::uint32_t v = s.model->read(off, size, block_pc);
  note_poll(addr, v, s.model->is_time_register(off & ~3u));
  return v;
}

void Board::Impl::mmio_write(std::uint32_t addr, unsigned size, std::uint32_t value) {
  const Slot& s = slots[(addr - kPeriphBase) / 0x4000];
  // A watchdog service write changes nothing the firmware can read back: a loop that polls and
  // services the watchdogs still waits. Its skip ahead is at most one lock-step (200 us), far
  // below the shortest timeout the firmware sets (docs/twin.md, "Idle skipping").
  if (s.model == nullptr || !s.model->is_service_write(addr - s.base, value)) reset_polls();
  if (s.model == nullptr) {
    const char* name = nullptr;
    for (const auto& k : kKnownBlocks) {
      if (addr >= k.base && addr < k.base + 0x4000) name = k.name;
    }
    cpu_fault(
        "bus",
        fmt::format("write of 0x{:08X} to {} 0x{:08X}, which the twin does not model, in the code "
                    "block at 0x{:08X}",
                    value, name ? name : "unassigned peripheral address", addr, block_pc),
        block_pc);
    return;
  }
  s.model->write(addr - s.base, value, size, block_pc);
  if (s.base == 0x400F'C000 || s.base == 0x401F'8000) {
    for (auto* f : flexcans) {
      if (f != nullptr) f->config_changed();
    }
  }
}

void Board::Impl::reset_models(bool warm) {
  for (Peripheral* p : all_models) p->reset(warm);
  gpio_fast->reset(warm);
  if (syst_event != 0) b.clock().cancel(syst_event);
  syst_event = 0;
  enabled.fill(false);
  pending.fill(false);
  active_irq.fill(false);
  irq_prio.fill(0);
  sys_prio.fill(0);
  pend_systick = pend_pendsv = pend_svc = false;
  vtor = kRomBase;
  prigroup = 0;
  ccr = 0x0004'0200;
  scr = 0;
  cpacr = 0;
  ppb_store.clear();
  syst_csr = 0;
  syst_rvr = 0;
  dwt_ctrl = 0x4000'0000;
  dwt_base = 0;
  mpu_ctrl = 0;
  mpu_rnr = 0;
  mpu_rbar.fill(0);
  mpu_rasr.fill(0);
  active.clear();
  hardfault_pending = false;
  reset_polls();
  // Caches and AHB buffers start invalid: nothing stale after a reset.
  std::fill(line_flags.begin(), line_flags.end(), std::uint8_t{0});
  stale_pages.clear();
  refresh_all_pages();
}

// ---------------------------------------------------------------------------------------------
// Board

void Board::BoardReporter::report(Severity severity, const std::string& source,
                                  const std::string& message, std::uint32_t pc) {
  Report r{board_.local_time(), severity, source, message, pc};
  if (board_.reports_.size() < 100'000) board_.reports_.push_back(r);
  if (board_.config_.report_sink) {
    board_.config_.report_sink(r);
  } else if (severity != Severity::kInfo) {
    std::fprintf(stderr, "[%s %s] %.6f s %s: %s%s\n", board_.config_.name.c_str(),
                 severity == Severity::kFault ? "FAULT" : "warning",
                 static_cast<double>(r.time) / 1e9, source.c_str(), message.c_str(),
                 pc != 0 ? fmt::format(" (pc 0x{:08X})", pc).c_str() : "");
  }
}

Board::Board(Simulation& sim, BoardConfig config)
    : sim_(sim), config_(std::move(config)), reporter_(*this) {
  flash_ = std::make_unique<W25Q32>(sim_.clock(), reporter_, config_.flash_timing);
  flash_->set_strict(config_.strict);
  flash_->set_seed(config_.seed);
  std::string err;
  if (!flash_->open_backing(config_.flash_path, &err)) throw std::runtime_error(err);
  soc_.clock = &sim_.clock();
  soc_.irq = this;
  soc_.reporter = &reporter_;
  soc_.request_reset = [this](ResetCause cause, const std::string& why) {
    if (impl_->emulating) {
      // From an MMIO access: finish the access, then reset in the run loop.
      impl_->reset_pending = true;
      impl_->reset_cause = cause;
      impl_->reset_why = why;
      impl_->request_stop(Impl::Stop::kReset);
      return;
    }
    warm_reset(cause, why);
  };
  soc_.console = [this](char c) {
    if (c == '\r') return;
    console_text_.push_back(c);
    if (c == '\n') {
      if (config_.console_sink) {
        config_.console_sink(console_line_);
      } else {
        std::printf("[%s uart] %s\n", config_.name.c_str(), console_line_.c_str());
        std::fflush(stdout);
      }
      console_line_.clear();
    } else {
      console_line_.push_back(c);
    }
  };
  soc_.ahb_buffer_reset = [this] { impl_->ahb_buffer_reset(); };
  ccm_ = std::make_unique<Ccm>(soc_);
  iomuxc_ = std::make_unique<Iomuxc>(soc_);
  src_ = std::make_unique<Src>(soc_, config_.readings.src_gpr_over_reset);
  impl_ = std::make_unique<Impl>(*this);
  impl_->create_peripherals();
  flash_->on_busy_change = [this](bool busy) { impl_->on_flash_busy(busy); };
  flash_->on_modified = [this](std::uint32_t off, std::uint32_t len) {
    impl_->on_flash_modified(off, len);
  };
  flash_->on_power_cut = [this](const std::string& what) { power_off(what); };
  std::memcpy(impl_->window.data(), flash_->contents().data(), kWindowSize);
  impl_->reset_models(false);
}

Board::~Board() {
  flash_->on_busy_change = nullptr;
  flash_->on_modified = nullptr;
  flash_->on_power_cut = nullptr;
}

Clock& Board::clock() {
  return sim_.clock();
}

void Board::power_on() {
  if (cycles_ < ns_to_cycles(sim_.now())) cycles_ = ns_to_cycles(sim_.now());
  flash_->power_on();
  // RAM contents are undefined after power-up; the twin fills them with a pattern.
  std::fill(impl_->itcm.begin(), impl_->itcm.end(), std::uint8_t{0});
  std::fill(impl_->dtcm.begin(), impl_->dtcm.end(), std::uint8_t{0});
  std::fill(impl_->ocram.begin(), impl_->ocram.end(), std::uint8_t{0});
  uc_ctl_remove_cache(impl_->uc, 0, 0xFFFF'FFFFull);
  impl_->reset_models(false);
  src_->record_reset(ResetCause::kPowerOn);
  state_ = BoardState::kBooting;
  stop_reason_.clear();
  impl_->boot_at = local_time();
}

void Board::power_off(const std::string& why) {
  state_ = BoardState::kOff;
  stop_reason_ = why;
  // Peripherals lose power too: the FlexCANs go back to their reset state (disabled), so the
  // node leaves the bus; timers stop.
  impl_->reset_models(false);
  impl_->request_stop(Impl::Stop::kFault);
}

void Board::warm_reset(ResetCause cause, const std::string& why) {
  // A chip without power resets nothing: power_off() puts the models into their reset state, and
  // a watchdog the ROM reading leaves running out of reset (Readings::rom_watchdogs) would
  // otherwise expire and boot the board while it is off.
  if (state_ == BoardState::kOff) return;
  reporter_.report(Severity::kInfo, "reset", fmt::format("warm reset: {}", why), 0);
  impl_->reset_models(true);
  src_->record_reset(cause);
  state_ = BoardState::kBooting;
  impl_->boot_at = local_time();
}

std::size_t Board::fault_count() const {
  return static_cast<std::size_t>(
      std::count_if(reports_.begin(), reports_.end(),
                    [](const Report& r) { return r.severity == Severity::kFault; }));
}

bool Board::has_fault_containing(const std::string& text) const {
  return std::any_of(reports_.begin(), reports_.end(), [&](const Report& r) {
    return r.severity == Severity::kFault && r.message.find(text) != std::string::npos;
  });
}

void Board::attach_peripheral(std::uint32_t base, std::unique_ptr<Peripheral> model) {
  Peripheral* raw = model.get();
  impl_->owned.push_back(std::move(model));
  impl_->attach(base, raw);
}

void Board::attach_peripheral(std::uint32_t base, Peripheral* model) {
  impl_->attach(base, model);
}

can::FlexCan& Board::flexcan(unsigned instance) {
  if (instance < 1 || instance > 3) throw std::out_of_range("FlexCAN instance is 1..3");
  return *impl_->flexcans[instance - 1];
}

void Board::connect_can(can::Bus& bus, unsigned instance) {
  bus.attach(flexcan(instance));
}

void Board::set_irq_level(unsigned irq, bool asserted) {
  if (irq >= 256) return;
  impl_->line[irq] = asserted;
  if (asserted && impl_->enabled[irq] && state_ == BoardState::kRunning) {
    // Raised from an MMIO access during execution: end the slice so the exception is taken.
    impl_->request_stop(Impl::Stop::kInterrupt);
  }
}

bool Board::read_memory(std::uint32_t address, void* out, std::size_t length) {
  return uc_mem_read(impl_->uc, address, out, length) == UC_ERR_OK;
}

bool Board::write_memory(std::uint32_t address, const void* data, std::size_t length) {
  return uc_mem_write(impl_->uc, address, data, length) == UC_ERR_OK;
}

std::uint32_t Board::read_u32(std::uint32_t address) {
  return impl_->mem32(address);
}
std::uint32_t Board::pc() const {
  return impl_->rreg(UC_ARM_REG_PC);
}
std::uint32_t Board::reg(int uc_reg) const {
  return impl_->rreg(uc_reg);
}
void Board::set_reg(int uc_reg, std::uint32_t value) {
  impl_->wreg(uc_reg, value);
}

std::uint32_t Board::call(std::uint32_t address, const std::vector<std::uint32_t>& args,
                          Nanos timeout) {
  constexpr std::uint32_t kStub = kDtcmBase + kDtcmSize - 16;
  const std::uint16_t stub[2] = {0xBF30, 0xE7FD};  // wfi; b wfi
  write_memory(kStub, stub, sizeof stub);
  std::uint32_t sp = kStub - 64;
  for (std::size_t i = 4; i < args.size(); ++i)
    write_memory(sp + 4 * static_cast<std::uint32_t>(i - 4), &args[i], 4);
  for (std::size_t i = 0; i < args.size() && i < 4; ++i)
    impl_->wreg(UC_ARM_REG_R0 + static_cast<int>(i), args[i]);
  impl_->wreg(UC_ARM_REG_SP, sp);
  impl_->wreg(UC_ARM_REG_LR, kStub | 1);
  impl_->wreg(UC_ARM_REG_PC, address | 1);
  impl_->wreg(UC_ARM_REG_XPSR, 0x0100'0000);
  state_ = BoardState::kRunning;
  const Nanos deadline = sim_.now() + timeout;
  sim_.run_until([this] { return state_ != BoardState::kRunning; }, deadline);
  return impl_->rreg(UC_ARM_REG_R0);
}

}  // namespace rtcanboot::twin
