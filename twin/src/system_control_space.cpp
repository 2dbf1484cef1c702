// The Cortex-M7 system control space (PPB, 0xE000_0000): SCB, NVIC registers, SysTick, DWT, MPU and
// the cache maintenance operations.
#include "board_impl.hpp"

#include <algorithm>

#include <fmt/format.h>

namespace rtcanboot::twin {

std::uint32_t Board::Impl::ppb_read(std::uint32_t off, unsigned size) {
  const std::uint32_t aligned = off & ~3u;
  const unsigned shift = (off & 3u) * 8;
  std::uint32_t v = 0;
  auto nvic_bits = [](const std::array<bool, 256>& a, std::uint32_t idx) {
    std::uint32_t r = 0;
    for (unsigned i = 0; i < 32; ++i) r |= a[idx * 32 + i] ? (1u << i) : 0;
    return r;
  };
  if (aligned >= 0xE100 && aligned < 0xE120) {
    v = nvic_bits(enabled, (aligned - 0xE100) / 4);
  } else if (aligned >= 0xE180 && aligned < 0xE1A0) {
    v = nvic_bits(enabled, (aligned - 0xE180) / 4);
  } else if ((aligned >= 0xE200 && aligned < 0xE220) || (aligned >= 0xE280 && aligned < 0xE2A0)) {
    const std::uint32_t idx = ((aligned - 0xE200) % 0x80) / 4;
    std::array<bool, 256> p{};
    for (unsigned i = 0; i < 256; ++i) p[i] = pending[i] || (line[i] && !active_irq[i]);
    v = nvic_bits(p, idx);
  } else if (aligned >= 0xE300 && aligned < 0xE320) {
    v = nvic_bits(active_irq, (aligned - 0xE300) / 4);
  } else if (aligned >= 0xE400 && aligned < 0xE500) {
    const std::uint32_t n = aligned - 0xE400;
    for (unsigned i = 0; i < 4; ++i) v |= static_cast<std::uint32_t>(irq_prio[n + i]) << (8 * i);
  } else {
    switch (aligned) {
      case 0x1000:
        v = dwt_ctrl;
        break;
      case 0x1004:
        v = (dwt_ctrl & 1) ? dwt_base + static_cast<std::uint32_t>(b.cycles_ - dwt_start_cycles)
                           : dwt_base;
        break;
      case 0xE004:
        v = 7;
        break;  // ICTR: 256 interrupt lines
      case 0xE010: {
        v = syst_csr;
        syst_csr &= ~(1u << 16);  // COUNTFLAG clears on read
        break;
      }
      case 0xE014:
        v = syst_rvr;
        break;
      case 0xE018: {
        if (syst_csr & 1) {
          const Nanos tick = (syst_csr & 4) ? 0 : 10'000;  // core clock or 100 kHz reference
          const std::uint64_t period = static_cast<std::uint64_t>(syst_rvr) + 1;
          const std::uint64_t elapsed = tick == 0 ? ns_to_cycles(b.local_time() - syst_start)
                                                  : (b.local_time() - syst_start) / tick;
          v = static_cast<std::uint32_t>(syst_rvr - (elapsed % period));
        }
        break;
      }
      case 0xE01C:
        v = syst_calib;
        break;
      case 0xED00:
        v = 0x411F'C272;
        break;  // CPUID: Cortex-M7 r1p2
      case 0xED04: {
        unsigned act = active.empty() ? 0 : active.back().number;
        int prio = 0;
        const unsigned pend = best_pending(true, &prio);
        v = act | (pend << 12) | (pend_systick ? (1u << 26) : 0) | (pend_pendsv ? (1u << 28) : 0);
        if (pend != 0) v |= 1u << 22;
        break;
      }
      case 0xED08:
        v = vtor;
        break;
      case 0xED0C:
        v = 0xFA05'0000u | (prigroup << 8);
        break;
      case 0xED10:
        v = scr;
        break;
      case 0xED14:
        v = ccr;
        break;
      case 0xED18:
      case 0xED1C:
      case 0xED20: {
        const std::uint32_t n = aligned - 0xED18 + 4;
        for (unsigned i = 0; i < 4; ++i)
          v |= static_cast<std::uint32_t>(sys_prio[n + i]) << (8 * i);
        break;
      }
      case 0xED78:
        v = 0x0900'0003;
        break;  // CLIDR: L1 I+D
      case 0xED7C:
        v = 0x8303'C003;
        break;  // CTR
      case 0xED80:
        v = (ppb_store[0xED84] & 1) ? 0x003F'E009u : 0x001F'E019u;
        break;  // CCSIDR
      case 0xED88:
        v = cpacr;
        break;
      case 0xED90:
        v = 0x0000'1000;
        break;  // MPU_TYPE: 16 regions
      case 0xED94:
        v = mpu_ctrl;
        break;
      case 0xED98:
        v = mpu_rnr;
        break;
      case 0xED9C:
      case 0xEDA4:
      case 0xEDAC:
      case 0xEDB4:
        v = mpu_rbar[mpu_rnr & 15] | (mpu_rnr & 15);
        break;
      case 0xEDA0:
      case 0xEDA8:
      case 0xEDB0:
      case 0xEDB8:
        v = mpu_rasr[mpu_rnr & 15];
        break;
      case 0xEF34: {
        auto it = ppb_store.find(0xEF34);
        v = it == ppb_store.end() ? 0xC000'0000u : it->second;
        break;
      }
      default: {
        auto it = ppb_store.find(aligned);
        v = it == ppb_store.end() ? 0 : it->second;
        const bool known =
            (aligned >= 0xEF90 && aligned <= 0xEFA8) || (aligned >= 0xEDF0 && aligned <= 0xEDFC) ||
            (aligned >= 0xED24 && aligned <= 0xED3C) || aligned == 0xED84 ||
            (aligned >= 0x80000 && aligned < 0x81000) || (aligned >= 0x1000 && aligned < 0x2000) ||
            aligned == 0xEF38 || aligned == 0xEF3C;
        if (!known) {
          b.reporter_.report(
              Severity::kWarning, "ppb",
              fmt::format("read of unmodelled system register 0x{:08X}", kPpbBase + aligned),
              block_pc);
        }
        break;
      }
    }
  }
  const std::uint32_t mask = size >= 4 ? 0xFFFF'FFFFu : ((1u << (8 * size)) - 1);
  return (v >> shift) & mask;
}

void Board::Impl::ppb_write(std::uint32_t off, unsigned size, std::uint32_t value) {
  reset_polls();
  const std::uint32_t aligned = off & ~3u;
  const unsigned shift = (off & 3u) * 8;
  value <<= shift;
  const std::uint32_t pc = block_pc;
  auto set_bits = [](std::array<bool, 256>& a, std::uint32_t idx, std::uint32_t bits, bool to) {
    for (unsigned i = 0; i < 32; ++i) {
      if (bits & (1u << i)) a[idx * 32 + i] = to;
    }
  };
  bool check_irq = false;
  if (aligned >= 0xE100 && aligned < 0xE120) {
    set_bits(enabled, (aligned - 0xE100) / 4, value, true);
    check_irq = true;
  } else if (aligned >= 0xE180 && aligned < 0xE1A0) {
    set_bits(enabled, (aligned - 0xE180) / 4, value, false);
  } else if (aligned >= 0xE200 && aligned < 0xE220) {
    set_bits(pending, (aligned - 0xE200) / 4, value, true);
    check_irq = true;
  } else if (aligned >= 0xE280 && aligned < 0xE2A0) {
    set_bits(pending, (aligned - 0xE280) / 4, value, false);
  } else if (off >= 0xE400 && off < 0xE500) {
    for (unsigned i = 0; i < size; ++i)
      irq_prio[off - 0xE400 + i] = static_cast<std::uint8_t>((value >> (shift + 8 * i)) & 0xF0);
    check_irq = true;
  } else if (off >= 0xED18 && off < 0xED24) {
    for (unsigned i = 0; i < size; ++i)
      sys_prio[off - 0xED18 + 4 + i] = static_cast<std::uint8_t>((value >> (shift + 8 * i)) & 0xF0);
  } else {
    switch (aligned) {
      case 0x1000:
        if ((value & 1) && !(dwt_ctrl & 1)) dwt_start_cycles = b.cycles_;
        if (!(value & 1) && (dwt_ctrl & 1))
          dwt_base += static_cast<std::uint32_t>(b.cycles_ - dwt_start_cycles);
        dwt_ctrl = (dwt_ctrl & 0xF000'0000u) | (value & 0x0FFF'FFFFu);
        break;
      case 0x1004:
        dwt_base = value;
        dwt_start_cycles = b.cycles_;
        break;
      case 0xE010:
        syst_csr = (syst_csr & (1u << 16)) | (value & 7);
        systick_rearm();
        break;
      case 0xE014:
        syst_rvr = value & 0x00FF'FFFF;
        break;
      case 0xE018:
        syst_csr &= ~(1u << 16);
        systick_rearm();
        break;
      case 0xED04:
        if (value & (1u << 28)) pend_pendsv = true;
        if (value & (1u << 27)) pend_pendsv = false;
        if (value & (1u << 26)) pend_systick = true;
        if (value & (1u << 25)) pend_systick = false;
        if (value & (1u << 31)) {
          cpu_fault("scb", "NMI pended through ICSR.NMIPENDSET: not modelled", pc);
        }
        check_irq = true;
        break;
      case 0xED08:
        if (value & 0x3FF) {
          b.reporter_.report(
              Severity::kFault, "scb",
              fmt::format("VTOR = 0x{:08X} is not 1024-byte aligned (174 vectors): the low bits "
                          "are ignored by the core",
                          value),
              pc);
        }
        vtor = value & ~0x7Fu;
        break;
      case 0xED0C:
        if ((value >> 16) != 0x05FA) {
          b.reporter_.report(
              Severity::kWarning, "scb",
              fmt::format("AIRCR write 0x{:08X} without VECTKEY 0x05FA is ignored", value), pc);
          break;
        }
        prigroup = (value >> 8) & 7;
        if (value & 4) {
          reset_pending = true;
          reset_cause = ResetCause::kSysResetReq;
          reset_why = "AIRCR.SYSRESETREQ";
          request_stop(Stop::kReset);
        }
        if (value & 1) cpu_fault("scb", "AIRCR.VECTRESET is not supported on Cortex-M7", pc);
        break;
      case 0xED10:
        scr = value;
        break;
      case 0xED14: {
        const std::uint32_t old = ccr;
        ccr = value;
        if ((old & (1u << 16)) && !(value & (1u << 16))) dcache_invalidate_all();  // disable cleans
        break;
      }
      case 0xED88:
        cpacr = value;
        break;
      case 0xED94:
        mpu_ctrl = value;
        break;
      case 0xED98:
        mpu_rnr = value & 0xFF;
        break;
      case 0xED9C:
      case 0xEDA4:
      case 0xEDAC:
      case 0xEDB4:
        if (value & 0x10) mpu_rnr = value & 15;
        mpu_rbar[mpu_rnr & 15] = value & ~0x1Fu;
        break;
      case 0xEDA0:
      case 0xEDA8:
      case 0xEDB0:
      case 0xEDB8:
        mpu_rasr[mpu_rnr & 15] = value;
        break;
      case 0xEF00: {
        const unsigned irq = value & 0xFF;
        pending[irq] = true;
        check_irq = true;
        break;
      }
      case 0xEF50:
        icache_invalidate_all();
        break;  // ICIALLU
      case 0xEF58:
        break;  // ICIMVAU
      case 0xEF5C:
      case 0xEF70:
        dcache_invalidate_line(value);
        break;  // DCIMVAC, DCCIMVAC
      case 0xEF60:
      case 0xEF74:  // DCISW, DCCISW
        if ((value & 0xC000'3FE0u) == 0)
          dcache_invalidate_all();  // set 0 / way 0: end of a full loop
        break;
      case 0xEF64:
      case 0xEF68:
      case 0xEF6C:
      case 0xEF78:
        break;  // clean ops, BPIALL
      default:
        ppb_store[aligned] = (ppb_store[aligned] &
                              ~(((size >= 4) ? 0xFFFF'FFFFu : ((1u << (8 * size)) - 1)) << shift)) |
                             value;
        break;
    }
  }
  if (check_irq && any_pending_enabled()) request_stop(Stop::kInterrupt);
}

void Board::Impl::systick_rearm() {
  if (syst_event != 0) b.clock().cancel(syst_event);
  syst_event = 0;
  syst_start = b.local_time();
  if (!(syst_csr & 1)) return;
  const std::uint64_t ticks = static_cast<std::uint64_t>(syst_rvr) + 1;
  const Nanos period = (syst_csr & 4) ? cycles_to_ns(ticks) : ticks * 10'000;
  if (syst_rvr == 0) return;  // RVR 0 disables the counter on the next wrap
  syst_event = b.clock().schedule(syst_start + period, [this] {
    syst_event = 0;
    syst_csr |= 1u << 16;
    if (syst_csr & 2) pend_systick = true;
    const Nanos t = syst_start;
    systick_rearm();
    (void)t;
  });
}

}  // namespace rtcanboot::twin
