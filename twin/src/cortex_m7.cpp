// Cortex-M7 core of the RT1064 on Unicorn: the memory map, the Unicorn hooks, exception entry and
// return and the NVIC's priority logic (done by the twin, not by Unicorn), and the run loop.
#include "board_impl.hpp"

#include <algorithm>
#include <cstdio>
#include <stdexcept>

#include <fmt/format.h>

namespace rtcanboot::twin {

namespace {

const char* exception_name(std::uint32_t intno) {
  switch (intno) {
    case 1:
      return "undefined instruction (UsageFault UNDEFINSTR)";
    case 3:
      return "prefetch abort (instruction fetch bus/MPU fault)";
    case 4:
      return "data abort (bus/MPU fault)";
    case 7:
      return "BKPT instruction (no debugger attached: HardFault)";
    case 17:
      return "coprocessor access with the FPU disabled (UsageFault NOCP)";
    case 18:
      return "invalid state (UsageFault INVSTATE: branch to an even address?)";
    case 19:
      return "stack overflow";
    case 22:
      return "unaligned access (UsageFault UNALIGNED)";
    case 23:
      return "divide by zero (UsageFault DIVBYZERO)";
    default:
      return "CPU exception";
  }
}

Board::Impl* impl_of(void* user) {
  return static_cast<Board::Impl*>(user);
}

void hook_block(uc_engine*, std::uint64_t address, std::uint32_t size, void* user) {
  impl_of(user)->on_block(static_cast<std::uint32_t>(address), size);
}

void hook_rom(uc_engine*, std::uint64_t address, std::uint32_t, void* user) {
  impl_of(user)->rom_call(static_cast<std::uint32_t>(address));
}

void hook_intr(uc_engine*, std::uint32_t intno, void* user) {
  auto* im = impl_of(user);
  const std::uint32_t pc = im->rreg(UC_ARM_REG_PC);
  if (intno == 8 && pc >= 0xFFFF'FF00u) {  // EXCP_EXCEPTION_EXIT: branch to EXC_RETURN
    im->exception_return(pc | 1);
    return;
  }
  if (intno == 2) {  // SVC
    im->pend_svc = true;
    im->request_stop(Board::Impl::Stop::kInterrupt);
    return;
  }
  im->cpu_exception("cpu", fmt::format("{} at pc 0x{:08X}", exception_name(intno), pc), pc);
}

bool hook_unmapped(uc_engine*, uc_mem_type type, std::uint64_t address, int size, std::int64_t,
                   void* user) {
  auto* im = impl_of(user);
  const char* kind = type == UC_MEM_FETCH_UNMAPPED   ? "instruction fetch from"
                     : type == UC_MEM_WRITE_UNMAPPED ? "write to"
                                                     : "read from";
  im->cpu_exception(
      "bus",
      fmt::format("{} unmapped address 0x{:08X} ({} bytes) in the code block at 0x{:08X}", kind,
                  static_cast<std::uint32_t>(address), size, im->block_pc),
      im->block_pc);
  return false;
}

bool hook_prot(uc_engine*, uc_mem_type type, std::uint64_t address, int size, std::int64_t,
               void* user) {
  return impl_of(user)->handle_prot(type, static_cast<std::uint32_t>(address), size);
}

std::uint64_t periph_read_cb(uc_engine*, std::uint64_t offset, unsigned size, void* user) {
  return impl_of(user)->mmio_read(kPeriphBase + static_cast<std::uint32_t>(offset), size);
}
void periph_write_cb(uc_engine*, std::uint64_t offset, unsigned size, std::uint64_t value,
                     void* user) {
  impl_of(user)->mmio_write(kPeriphBase + static_cast<std::uint32_t>(offset), size,
                            static_cast<std::uint32_t>(value));
}
std::uint64_t gpio_read_cb(uc_engine*, std::uint64_t offset, unsigned size, void* user) {
  auto* im = impl_of(user);
  return im->gpio_fast->read(static_cast<std::uint32_t>(offset), size, im->block_pc);
}
void gpio_write_cb(uc_engine*, std::uint64_t offset, unsigned size, std::uint64_t value,
                   void* user) {
  auto* im = impl_of(user);
  im->gpio_fast->write(static_cast<std::uint32_t>(offset), static_cast<std::uint32_t>(value), size,
                       im->block_pc);
}
std::uint64_t ppb_read_cb(uc_engine*, std::uint64_t offset, unsigned size, void* user) {
  return impl_of(user)->ppb_read(static_cast<std::uint32_t>(offset), size);
}
void ppb_write_cb(uc_engine*, std::uint64_t offset, unsigned size, std::uint64_t value,
                  void* user) {
  impl_of(user)->ppb_write(static_cast<std::uint32_t>(offset), size,
                           static_cast<std::uint32_t>(value));
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Setup

Board::Impl::Impl(Board& board)
    : b(board),
      itcm(kItcmSize),
      dtcm(kDtcmSize),
      ocram(kOcramSize),
      rom(kRomSize),
      window(kWindowSize, 0xFF),
      line_flags(kWindowSize / kLineSize, 0),
      page_prot(kWindowSize / kProtPage, UC_PROT_READ | UC_PROT_EXEC),
      applied_prot(kWindowSize / kProtPage, UC_PROT_READ | UC_PROT_EXEC) {
  if (uc_open(UC_ARCH_ARM, static_cast<uc_mode>(UC_MODE_THUMB | UC_MODE_MCLASS), &uc) !=
      UC_ERR_OK) {
    throw std::runtime_error("cannot create the Unicorn ARM engine");
  }
  uc_ctl_set_cpu_model(uc, UC_CPU_ARM_CORTEX_M7);
  map_memory();
  build_rom();
  uc_hook_add(uc, &h_block, UC_HOOK_BLOCK, reinterpret_cast<void*>(hook_block), this, 1, 0);
  uc_hook_add(uc, &h_rom, UC_HOOK_CODE, reinterpret_cast<void*>(hook_rom), this, kRomStubs,
              kRomStubsEnd - 1);
  if (const char* dbg = std::getenv("TWIN_DEBUG_TRACE")) {
    static uc_hook h_dbg;
    const std::uint32_t lo = static_cast<std::uint32_t>(std::strtoul(dbg, nullptr, 16));
    const std::uint32_t hi =
        static_cast<std::uint32_t>(std::strtoul(std::getenv("TWIN_DEBUG_TRACE_END"), nullptr, 16));
    uc_hook_add(uc, &h_dbg, UC_HOOK_CODE,
                reinterpret_cast<void*>(+[](uc_engine* u, std::uint64_t a, std::uint32_t, void*) {
                  std::uint32_t sp = 0, r0 = 0, lr = 0;
                  uc_reg_read(u, UC_ARM_REG_SP, &sp);
                  uc_reg_read(u, UC_ARM_REG_R0, &r0);
                  uc_reg_read(u, UC_ARM_REG_LR, &lr);
                  std::fprintf(stderr, "  pc=%08x sp=%08x r0=%08x lr=%08x\n",
                               static_cast<std::uint32_t>(a), sp, r0, lr);
                }),
                this, lo, hi);
  }
  uc_hook_add(uc, &h_intr, UC_HOOK_INTR, reinterpret_cast<void*>(hook_intr), this, 1, 0);
  uc_hook_add(uc, &h_unmapped, UC_HOOK_MEM_UNMAPPED, reinterpret_cast<void*>(hook_unmapped), this,
              1, 0);
  uc_hook_add(uc, &h_prot, UC_HOOK_MEM_PROT, reinterpret_cast<void*>(hook_prot), this, 1, 0);
}

Board::Impl::~Impl() {
  if (profile_path != nullptr) write_profile();
  if (uc != nullptr) uc_close(uc);
}

void Board::Impl::write_profile() const {
  std::vector<std::pair<std::uint32_t, std::pair<std::uint64_t, std::uint64_t>>> blocks(
      profile.begin(), profile.end());
  std::sort(blocks.begin(), blocks.end(),
            [](const auto& l, const auto& r) { return l.second.first > r.second.first; });
  std::FILE* out = std::fopen(profile_path, "a");
  if (out == nullptr) return;
  std::fprintf(out, "# %s: block, executed halfwords, runs (total %llu halfwords)\n",
               b.name().c_str(), static_cast<unsigned long long>(b.executed_halfwords_));
  for (const auto& [address, counts] : blocks) {
    std::fprintf(out, "0x%08x %llu %llu\n", address, static_cast<unsigned long long>(counts.first),
                 static_cast<unsigned long long>(counts.second));
  }
  std::fclose(out);
}

void Board::Impl::map_memory() {
  uc_mem_map_ptr(uc, kItcmBase, kItcmSize, UC_PROT_ALL, itcm.data());
  uc_mem_map_ptr(uc, kRomBase, kRomSize, UC_PROT_READ | UC_PROT_EXEC, rom.data());
  uc_mem_map_ptr(uc, kDtcmBase, kDtcmSize, UC_PROT_ALL, dtcm.data());
  uc_mem_map_ptr(uc, kOcramBase, kOcramSize, UC_PROT_ALL, ocram.data());
  uc_mem_map_ptr(uc, kWindowBase, kWindowSize, UC_PROT_READ | UC_PROT_EXEC, window.data());
  uc_mmio_map(uc, kPeriphBase, kPeriphSize, periph_read_cb, this, periph_write_cb, this);
  uc_mmio_map(uc, kGpioFastBase, kGpioFastSize, gpio_read_cb, this, gpio_write_cb, this);
  uc_mmio_map(uc, kPpbBase, kPpbSize, ppb_read_cb, this, ppb_write_cb, this);
}

void Board::Impl::cpu_fault(const std::string& source, const std::string& message,
                            std::uint32_t pc) {
  b.reporter_.report(Severity::kFault, source, message, pc);
  b.state_ = BoardState::kHalted;
  b.stop_reason_ = message;
  request_stop(Stop::kFault);
}

// A fault the chip takes as an exception (undefined instruction, bus error, INVSTATE, ...). The
// Cortex-M7 escalates it to HardFault (SHCSR's reset value: MemManage, BusFault and UsageFault
// disabled) through the vector table VTOR names; a fault it cannot take (already in HardFault or
// NMI) locks the core up. Reported as a fault in every case: it is a bug in the firmware.
void Board::Impl::cpu_exception(const std::string& source, const std::string& message,
                                std::uint32_t pc) {
  if (in_fault_handler()) {
    lockup(fmt::format("{} inside the fault handler", message), pc);
    return;
  }
  b.reporter_.report(Severity::kFault, source, message + "; the core takes HardFault", pc);
  if (!emulating) {
    wreg(UC_ARM_REG_PC, pc | 1);
    enter_exception(kHardFault);
    return;
  }
  // Unicorn stops first; the run loop then enters HardFault with `pc` as the return address.
  hardfault_pending = true;
  hardfault_pc = pc;
  request_stop(Stop::kFault);
}

void Board::Impl::entry_fault(unsigned number, const std::string& message, std::uint32_t pc) {
  if (number == kHardFault || number == 2 || in_fault_handler()) {
    lockup(message, pc);
    return;
  }
  b.reporter_.report(Severity::kFault, "nvic", message + "; the core takes HardFault", pc);
  enter_exception(kHardFault);
}

// Cortex-M7 lockup. The RT1064's SRC resets the chip on it (SRSR bit 1 LOCKUP_SYSRESETREQ, no
// enable bit in SRC_SCR: MIMXRT1064.h, MIMXRT1064_features.h) unless the reading says it halts.
void Board::Impl::lockup(const std::string& why, std::uint32_t pc) {
  const bool resets = b.config_.readings.lockup == LockupReading::kResets;
  b.reporter_.report(Severity::kFault, "cpu",
                     fmt::format("lockup: {}; {}", why,
                                 resets ? "the SRC resets the chip (SRSR LOCKUP_SYSRESETREQ)"
                                        : "the core stays locked up (reading lockup=halts)"),
                     pc);
  if (!resets) {
    b.state_ = BoardState::kHalted;
    b.stop_reason_ = "lockup: " + why;
    request_stop(Stop::kFault);
    return;
  }
  hardfault_pending = false;
  if (emulating) {
    reset_pending = true;
    reset_cause = ResetCause::kSysResetReq;
    reset_why = "CPU lockup: " + why;
    request_stop(Stop::kReset);
    return;
  }
  b.warm_reset(ResetCause::kSysResetReq, "CPU lockup: " + why);
}

// ---------------------------------------------------------------------------------------------
// NVIC and exception entry/return (done by the twin, not by Unicorn: the core stays in thread
// mode as far as Unicorn knows; EXC_RETURN branches are caught as EXCEPTION_EXIT).

int Board::Impl::execution_priority() {
  int prio = 256;
  for (const auto& a : active) prio = std::min(prio, group_priority(a.priority));
  if (rreg(UC_ARM_REG_PRIMASK) & 1) prio = std::min(prio, 0);
  const std::uint32_t basepri = rreg(UC_ARM_REG_BASEPRI) & 0xF0;
  if (basepri != 0) prio = std::min(prio, group_priority(static_cast<int>(basepri)));
  return prio;
}

unsigned Board::Impl::best_pending(bool ignore_masks, int* prio_out) {
  unsigned best = 0;
  int best_prio = 1 << 20;
  auto consider = [&](unsigned n, int prio) {
    if (prio < best_prio) {
      best = n;
      best_prio = prio;
    }
  };
  if (pend_svc) consider(11, sys_prio[11]);
  if (pend_pendsv) consider(14, sys_prio[14]);
  if (pend_systick) consider(15, sys_prio[15]);
  for (unsigned i = 0; i < 256; ++i) {
    if (active_irq[i]) continue;
    if ((pending[i] || line[i]) && (enabled[i] || ignore_masks)) consider(16 + i, irq_prio[i]);
  }
  if (prio_out) *prio_out = best_prio;
  return best;
}

bool Board::Impl::any_pending_enabled() {
  int prio = 0;
  const unsigned n = best_pending(false, &prio);
  if (n == 0) return false;
  return group_priority(prio) < execution_priority();
}

void Board::Impl::enter_exception(unsigned number) {
  const std::uint32_t pc = rreg(UC_ARM_REG_PC);
  if (vtor >= kRomBase && vtor < kRomBase + kRomSize) {
    cpu_fault("nvic",
              fmt::format("exception {} taken while VTOR still points at the boot ROM vector table "
                          "(0x{:08X}): the firmware never set VTOR",
                          number, vtor),
              pc);
    return;
  }
  const std::uint32_t vec_addr = vtor + 4 * number;
  if (vec_addr >= kWindowBase && vec_addr < kWindowBase + kWindowSize) {
    if (window_busy) {
      cpu_fault(
          "flash",
          fmt::format("read-while-write: vector fetch of exception {} from 0x{:08X} while the "
                      "flash is being erased/programmed",
                      number, vec_addr),
          pc);
      return;
    }
  }
  std::uint32_t handler = 0;
  if (uc_mem_read(uc, vec_addr, &handler, 4) != UC_ERR_OK) {
    entry_fault(
        number,
        fmt::format("vector fetch of exception {} from unmapped 0x{:08X}", number, vec_addr), pc);
    return;
  }
  if ((handler & 1) == 0) {
    entry_fault(number,
                fmt::format("vector {} at 0x{:08X} holds 0x{:08X} without the Thumb bit (INVSTATE "
                            "UsageFault on the chip)",
                            number, vec_addr, handler),
                pc);
    return;
  }
  Active rec{};
  rec.number = number;
  rec.priority = exception_priority(number);
  rec.control = rreg(UC_ARM_REG_CONTROL);
  const bool psp = active.empty() && (rec.control & 2);
  std::uint32_t sp = rreg(UC_ARM_REG_SP);
  std::uint32_t xpsr = rreg(UC_ARM_REG_XPSR);
  std::uint32_t frame = (sp - 32) & ~7u;
  if ((sp - 32) & 4) xpsr |= 1u << 9;
  const std::uint32_t words[8] = {rreg(UC_ARM_REG_R0),
                                  rreg(UC_ARM_REG_R1),
                                  rreg(UC_ARM_REG_R2),
                                  rreg(UC_ARM_REG_R3),
                                  rreg(UC_ARM_REG_R12),
                                  rreg(UC_ARM_REG_LR),
                                  pc & ~1u,
                                  xpsr | (1u << 24)};
  if (uc_mem_write(uc, frame, words, sizeof words) != UC_ERR_OK) {
    entry_fault(
        number,
        fmt::format("stacking fault: exception frame at 0x{:08X} is not writable RAM", frame), pc);
    return;
  }
  for (unsigned i = 0; i < 16; ++i) rec.fp[i] = rreg(UC_ARM_REG_S0 + static_cast<int>(i));
  rec.fpscr = rreg(UC_ARM_REG_FPSCR);
  const std::uint32_t exc_return =
      !active.empty() ? 0xFFFF'FFF1u : (psp ? 0xFFFF'FFFDu : 0xFFFF'FFF9u);
  wreg(UC_ARM_REG_SP, frame);
  if (psp) wreg(UC_ARM_REG_CONTROL, rec.control & ~2u);
  wreg(UC_ARM_REG_LR, exc_return);
  wreg(UC_ARM_REG_XPSR, 0x0100'0000u);
  wreg(UC_ARM_REG_PC, handler | 1);
  if (number >= 16) {
    pending[number - 16] = false;
    active_irq[number - 16] = true;
  } else if (number == 15) {
    pend_systick = false;
  } else if (number == 14) {
    pend_pendsv = false;
  } else if (number == 11) {
    pend_svc = false;
  }
  active.push_back(rec);
  b.cycles_ += 12;  // exception entry latency
  if (b.state_ == BoardState::kSleeping) b.state_ = BoardState::kRunning;
}

void Board::Impl::exception_return(std::uint32_t exc_return) {
  if (active.empty()) {
    cpu_exception(
        "nvic",
        fmt::format("branch to EXC_RETURN 0x{:08X} with no active exception (INVPC)", exc_return),
        block_pc);
    return;
  }
  const Active rec = active.back();
  active.pop_back();
  if (rec.number >= 16) active_irq[rec.number - 16] = false;
  if (exc_return & 4) wreg(UC_ARM_REG_CONTROL, rec.control);
  const std::uint32_t sp = rreg(UC_ARM_REG_SP);
  std::uint32_t words[8] = {};
  if (uc_mem_read(uc, sp, words, sizeof words) != UC_ERR_OK) {
    cpu_exception("nvic", fmt::format("unstacking fault at 0x{:08X}", sp), block_pc);
    return;
  }
  const int regs[6] = {UC_ARM_REG_R0, UC_ARM_REG_R1,  UC_ARM_REG_R2,
                       UC_ARM_REG_R3, UC_ARM_REG_R12, UC_ARM_REG_LR};
  for (unsigned i = 0; i < 6; ++i) wreg(regs[i], words[i]);
  for (unsigned i = 0; i < 16; ++i) wreg(UC_ARM_REG_S0 + static_cast<int>(i), rec.fp[i]);
  wreg(UC_ARM_REG_FPSCR, rec.fpscr);
  const std::uint32_t xpsr = words[7];
  wreg(UC_ARM_REG_SP, sp + 32 + ((xpsr & (1u << 9)) ? 4 : 0));
  wreg(UC_ARM_REG_XPSR, xpsr & ~(1u << 9) & ~0x1FFu);
  wreg(UC_ARM_REG_PC, words[6] | 1);
  b.cycles_ += 10;
  request_stop(Stop::kInterrupt);  // tail-chain check happens in the run loop
}

void Board::Impl::reset_core_state() {
  for (int r = UC_ARM_REG_R0; r <= UC_ARM_REG_R12; ++r) wreg(r, 0);
  wreg(UC_ARM_REG_LR, 0xFFFF'FFFF);
  wreg(UC_ARM_REG_CONTROL, 0);
  wreg(UC_ARM_REG_PRIMASK, 0);
  wreg(UC_ARM_REG_BASEPRI, 0);
  wreg(UC_ARM_REG_XPSR, 0x0100'0000);
}

// ---------------------------------------------------------------------------------------------
// Run loop

void Board::run_to(Nanos until) {
  Impl& im = *impl_;
  EventQueue& q = sim_.clock();
  for (;;) {
    const Nanos next_event = q.next_event_time();
    // Return when the slice is done or an event is due (the simulation runs it, then resumes us).
    if (local_time() >= until || next_event <= local_time()) return;
    const Nanos limit = std::min(until, next_event);
    switch (state_) {
      case BoardState::kOff:
      case BoardState::kBootFailed:
      case BoardState::kHalted:
        cycles_ = std::max(cycles_, ns_to_cycles(limit));
        continue;
      case BoardState::kBooting:
        if (flash_->busy() || local_time() < im.boot_at) {
          cycles_ = std::max(cycles_, ns_to_cycles(limit));
          continue;
        }
        im.rom_boot();
        continue;
      case BoardState::kSleeping: {
        int prio = 0;
        if (im.best_pending(false, &prio) != 0) {
          state_ = BoardState::kRunning;
          continue;
        }
        cycles_ = std::max(cycles_, ns_to_cycles(limit));
        continue;
      }
      case BoardState::kRunning:
        break;
    }
    // Take the highest-priority pending exception that may preempt.
    if (im.any_pending_enabled()) {
      int prio = 0;
      const unsigned n = im.best_pending(false, &prio);
      im.enter_exception(n);
      if (state_ != BoardState::kRunning) continue;
    }
    im.stop = Impl::Stop::kNone;
    im.deferred_stop = Impl::Stop::kNone;
    im.masked_pending = im.best_pending(false, nullptr) != 0;
    im.stopped_at_block = 0xFFFF'FFFF;
    im.stop_cycles = ns_to_cycles(limit);
    const std::uint32_t start_pc = im.rreg(UC_ARM_REG_PC) | 1;
    q.set_local_time_source([this] { return local_time(); });
    q.set_schedule_observer([&im](Nanos at) {
      const std::uint64_t c = ns_to_cycles(at);
      if (c < im.stop_cycles) im.stop_cycles = c;
    });
    im.emulating = true;
    const uc_err err = uc_emu_start(im.uc, start_pc, 0xFFFF'FFFFull, 0, 0);
    im.emulating = false;
    q.clear_local_time_source();
    q.set_schedule_observer(nullptr);
    if (im.stopped_at_block != 0xFFFF'FFFFu && err == UC_ERR_OK)
      im.wreg(UC_ARM_REG_PC, im.stopped_at_block | 1);
    if (state_ == BoardState::kOff) return;
    if (im.hardfault_pending) {
      im.hardfault_pending = false;
      if (state_ == BoardState::kRunning && !im.reset_pending) {
        im.wreg(UC_ARM_REG_PC, im.hardfault_pc | 1);
        im.enter_exception(Impl::kHardFault);
        continue;
      }
    }
    if (err != UC_ERR_OK && state_ == BoardState::kRunning && !im.reset_pending) {
      const std::uint32_t pc = im.rreg(UC_ARM_REG_PC);
      if (err == UC_ERR_INSN_INVALID || err == UC_ERR_EXCEPTION) {
        // Unicorn ends the run on an undefined instruction instead of calling the hook: the core
        // takes it (HardFault, or a lockup inside the fault handler).
        im.cpu_exception(
            "cpu",
            fmt::format("{} at pc 0x{:08X}",
                        err == UC_ERR_INSN_INVALID ? "undefined instruction (UsageFault UNDEFINSTR)"
                                                   : uc_strerror(err),
                        pc),
            pc);
        continue;
      }
      im.cpu_fault("cpu",
                   fmt::format("CPU stopped: {} at pc 0x{:08X} (code block at 0x{:08X})",
                               uc_strerror(err), pc, im.block_pc),
                   pc);
    }
    if (im.reset_pending) {
      im.reset_pending = false;
      warm_reset(im.reset_cause, im.reset_why);
      continue;
    }
    if (state_ != BoardState::kRunning) continue;
    if (im.stop == Impl::Stop::kNone && im.deferred_stop == Impl::Stop::kWfi) {
      // Unicorn returned on its own right after a block that ends in WFI (the PC it reports
      // may be stale): resume after the WFI, asleep unless an enabled interrupt is pending.
      im.deferred_stop = Impl::Stop::kNone;
      im.wreg(UC_ARM_REG_PC, (im.block_pc + im.block_size) | 1);
      int prio = 0;
      if (im.best_pending(false, &prio) == 0) state_ = BoardState::kSleeping;
    } else if (im.stop == Impl::Stop::kNone) {
      // Unicorn returned on its own: WFI (or WFE) halts the core until an interrupt.
      const std::uint32_t pc = im.rreg(UC_ARM_REG_PC);
      std::uint16_t prev = 0;
      uc_mem_read(im.uc, pc - 2, &prev, 2);
      if (prev == 0xBF30 || prev == 0xBF20) {
        int prio = 0;
        if (im.best_pending(false, &prio) == 0) state_ = BoardState::kSleeping;
      }
    } else if (im.stop == Impl::Stop::kWfi) {
      // Stopped just after a WFI: sleep until an enabled interrupt is pending (PRIMASK does not
      // keep WFI from waking, as on the Cortex-M7).
      int prio = 0;
      if (im.best_pending(false, &prio) == 0) state_ = BoardState::kSleeping;
    } else if (im.stop == Impl::Stop::kIdle) {
      // A polling loop that cannot see a change before the next event: skip ahead.
      cycles_ = std::max(cycles_, ns_to_cycles(limit));
    }
  }
}

}  // namespace rtcanboot::twin
