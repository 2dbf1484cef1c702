// Private to the twin library: the state of one emulated RT1064 (Board::Impl) shared by the units
// that model its parts (docs/twin.md "Structure"):
//   cortex_m7.cpp             Cortex-M7 core (Unicorn), memory map, NVIC, exception entry/return,
//   run loop system_control_space.cpp  SCB, SysTick, DWT, MPU and cache maintenance registers (the
//   PPB) flash_window.cpp          FlexSPI2 AHB window: read-while-write, stale buffer and cache
//   detection rom/boot_rom.cpp          boot ROM path (FCB, IVT, boot data, entry) rom/rom_api.cpp
//   ROM FlexSPI NOR API (its NXP sources: rom/README.md) board.cpp                 Board:
//   peripheral bus, SoC models, power and resets simulation.cpp            Simulation: boards and
//   buses in lock-step on one virtual clock
#pragma once

#include <unicorn/unicorn.h>

#include <array>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "twin/board.hpp"

namespace rtcanboot::twin {

namespace can {
class FlexCan;
}  // namespace can

constexpr std::uint32_t kItcmBase = 0x0000'0000, kItcmSize = 0x2'0000;
constexpr std::uint32_t kRomBase = 0x0020'0000, kRomSize = 0x2'0000;
constexpr std::uint32_t kDtcmBase = 0x2000'0000, kDtcmSize = 0x2'0000;
constexpr std::uint32_t kOcramBase = 0x2020'0000, kOcramSize = 0xC'0000;  // OCRAM2 + FlexRAM OCRAM
constexpr std::uint32_t kWindowBase = 0x7000'0000, kWindowSize = W25Q32::kSize;
constexpr std::uint32_t kPeriphBase = 0x4000'0000, kPeriphSize = 0x40'0000;
constexpr std::uint32_t kGpioFastBase = 0x4200'0000, kGpioFastSize = 0x1'0000;
constexpr std::uint32_t kPpbBase = 0xE000'0000, kPpbSize = 0x10'0000;

// Boot ROM layout of the twin (any layout works as long as 0x0020_001C -> tree -> +0x10 -> table).
constexpr std::uint32_t kRomTreePtr = kRomBase + 0x1C;
constexpr std::uint32_t kRomTree = kRomBase + 0x1000;
constexpr std::uint32_t kRomCopyright = kRomBase + 0x1040;
constexpr std::uint32_t kRomNorTable = kRomBase + 0x1100;
constexpr std::uint32_t kRomStubs = kRomBase + 0x2000;  // one 4-byte stub per function
constexpr std::uint32_t kRomStubsEnd = kRomStubs + 0x100;
constexpr std::uint32_t kRomDefaultHandler = kRomBase + 0x2100;
constexpr std::uint32_t kRomStackTop = 0x2020'7F00;  // SP for an IVT entry that is a function

constexpr std::uint8_t kLineAhb = 1, kLineDcache = 2, kLineIcache = 4;
constexpr std::uint32_t kLineSize = 32;
// Granularity of the flash window protections. Unicorn 2.0.1 never merges regions that
// uc_mem_protect splits and aborts when a memory map exceeds 1024 sections, so the window is
// protected in 64 KiB chunks (at most 64 pieces).
constexpr std::uint32_t kProtPage = 64 * 1024;

inline std::uint32_t le32(std::span<const std::uint8_t> m, std::uint32_t off) {
  std::uint32_t v = 0;
  std::memcpy(&v, m.data() + off, 4);
  return v;
}

struct Board::Impl {
  explicit Impl(Board& board);
  ~Impl();

  Board& b;
  uc_engine* uc = nullptr;
  std::vector<std::uint8_t> itcm, dtcm, ocram, rom, window;
  uc_hook h_block{}, h_rom{}, h_intr{}, h_unmapped{}, h_prot{};

  // Peripheral decoder: 16 KiB slots over 0x4000_0000..0x403F_FFFF.
  struct Slot {
    Peripheral* model = nullptr;
    std::uint32_t base = 0;
  };
  std::array<Slot, 256> slots{};
  std::vector<std::unique_ptr<Peripheral>> owned;
  std::vector<Peripheral*> all_models;
  std::unique_ptr<PlainRegisters> gpio_fast;
  CcmAnalog* analog = nullptr;
  FlexSpi2* flexspi2 = nullptr;
  std::array<can::FlexCan*, 3> flexcans{};

  // NVIC / SCB / SysTick / DWT state.
  std::array<bool, 256> enabled{}, pending{}, line{}, active_irq{};
  std::array<std::uint8_t, 256> irq_prio{};
  std::array<std::uint8_t, 16> sys_prio{};
  bool pend_systick = false, pend_pendsv = false, pend_svc = false;
  std::uint32_t vtor = kRomBase, prigroup = 0, ccr = 0x0004'0200, scr = 0, cpacr = 0;
  std::map<std::uint32_t, std::uint32_t> ppb_store;
  std::uint32_t syst_csr = 0, syst_rvr = 0, syst_calib = 0x4000'0000 | 999;
  Nanos syst_start = 0;
  std::uint64_t syst_event = 0;
  std::uint32_t dwt_ctrl = 0x4000'0000, dwt_base = 0;
  std::uint64_t dwt_start_cycles = 0;
  std::uint32_t mpu_ctrl = 0, mpu_rnr = 0;
  std::array<std::uint32_t, 16> mpu_rbar{}, mpu_rasr{};

  struct Active {
    unsigned number;
    int priority;
    std::uint32_t control;
    std::array<std::uint32_t, 16> fp;
    std::uint32_t fpscr;
  };
  std::vector<Active> active;

  // Flash window: staleness per 32-byte line, protection per 1 KiB page.
  std::vector<std::uint8_t> line_flags;
  std::vector<std::uint8_t> page_prot;     // what each 1 KiB page should allow
  std::vector<std::uint8_t> applied_prot;  // what Unicorn currently has
  std::set<std::uint32_t> stale_pages;     // pages with any stale line
  bool window_busy = false;

  // Run control.
  enum class Stop { kNone, kSlice, kFault, kReset, kIdle, kInterrupt, kWfi };
  Stop stop = Stop::kNone;
  std::uint64_t stop_cycles = 0;
  std::uint32_t block_pc = 0;
  std::uint32_t block_size = 0;
  bool reset_pending = false;
  bool emulating = false;
  ResetCause reset_cause = ResetCause::kSysResetReq;
  std::string reset_why;
  Nanos boot_at = 0;

  // Idle-poll detectors: MMIO reads that keep returning the same values with no register write
  // in between, and ROM read-status calls that keep answering BUSY.
  struct PollEntry {
    std::uint32_t pc, addr, value, count;
    std::uint64_t cycles;
  };
  std::array<PollEntry, 8> polls{};
  unsigned npolls = 0;
  unsigned busy_polls = 0;
  void reset_polls() {
    npolls = 0;
    busy_polls = 0;
  }
  bool idle_after_rom = false;

  // --- setup
  void map_memory();
  void build_rom();
  void create_peripherals();
  void attach(std::uint32_t base, Peripheral* model);

  // --- CPU helpers
  std::uint32_t rreg(int r) const {
    std::uint32_t v = 0;
    uc_reg_read(uc, r, &v);
    return v;
  }
  void wreg(int r, std::uint32_t v) { uc_reg_write(uc, r, &v); }
  std::uint32_t mem32(std::uint32_t addr) {
    std::uint32_t v = 0;
    uc_mem_read(uc, addr, &v, 4);
    return v;
  }
  // Faults and resets stop at once (the state is abandoned). Everything else stops at the start
  // of the next translated block: Unicorn 2.0.1 does not keep the PC exact inside a block, so a
  // stop requested from an MMIO callback would resume at the block start and repeat the
  // instructions before the access.
  void request_stop(Stop why) {
    if (why == Stop::kFault || why == Stop::kReset) {
      stop = why;
      uc_emu_stop(uc);
      return;
    }
    if (deferred_stop == Stop::kNone || why == Stop::kInterrupt) deferred_stop = why;
  }
  Stop deferred_stop = Stop::kNone;
  void cpu_fault(const std::string& source, const std::string& message, std::uint32_t pc);
  // A fault the Cortex-M7 takes (cortex_m7.cpp): reported, then HardFault through the vector
  // table (every fault escalates: SHCSR's separate fault handlers are not modelled), or a lockup
  // when the core is in HardFault or NMI already.
  static constexpr unsigned kHardFault = 3;
  void cpu_exception(const std::string& source, const std::string& message, std::uint32_t pc);
  // A fault while entering exception `number` (its vector or its stacking): HardFault, or a
  // lockup when `number` is HardFault or the core already runs at HardFault priority.
  void entry_fault(unsigned number, const std::string& message, std::uint32_t pc);
  void lockup(const std::string& why, std::uint32_t pc);
  bool in_fault_handler() const {
    for (const auto& a : active)
      if (a.priority < 0) return true;
    return false;
  }
  bool hardfault_pending = false;  // taken by the run loop once Unicorn has stopped
  std::uint32_t hardfault_pc = 0;  // the return address stacked for it
  std::uint32_t current_pc() const { return block_pc; }

  // --- memory-mapped IO
  std::uint64_t mmio_read(std::uint32_t addr, unsigned size);
  void mmio_write(std::uint32_t addr, unsigned size, std::uint32_t value);
  std::uint32_t ppb_read(std::uint32_t off, unsigned size);
  void ppb_write(std::uint32_t off, unsigned size, std::uint32_t value);
  void note_poll(std::uint32_t addr, std::uint32_t value, bool time_register);

  // --- NVIC
  int group_priority(int prio) const {
    if (prio < 0) return prio;  // HardFault (-1) and NMI (-2): fixed
    const std::uint32_t mask = prigroup <= 3 ? 0xF0u : (0xFFu << (prigroup + 1)) & 0xF0u;
    return static_cast<int>(static_cast<std::uint32_t>(prio) & mask);
  }
  int exception_priority(unsigned n) const {
    if (n == kHardFault) return -1;
    if (n == 2) return -2;  // NMI
    if (n >= 16) return irq_prio[n - 16] & 0xF0;
    return sys_prio[n] & 0xF0;
  }
  int execution_priority();
  unsigned best_pending(bool ignore_masks, int* prio_out);
  bool any_pending_enabled();
  void enter_exception(unsigned number);
  void exception_return(std::uint32_t exc_return);
  void systick_rearm();

  // --- boot ROM (rom/boot_rom.cpp)
  // The FlexSPI2 serial clock the ROM sets for the FCB's serialClkFreq (Readings::serial_clk_code):
  // false, after a fault report naming `who`, when it exceeds the W25Q32JV's 133 MHz.
  bool apply_serial_clock(std::uint8_t code, const char* who);

  // --- flash window
  void on_flash_busy(bool busy);
  void on_flash_modified(std::uint32_t offset, std::uint32_t length);
  void ahb_buffer_reset();
  void dcache_invalidate_line(std::uint32_t addr);
  void dcache_invalidate_all();
  void icache_invalidate_all();
  void refresh_page(std::uint32_t page);
  void refresh_all_pages();
  void apply_protections();
  void clear_line_flags(std::uint8_t mask);
  bool handle_prot(uc_mem_type type, std::uint32_t addr, int size);

  // --- boot ROM
  void rom_boot();
  bool rom_boot_image(std::string* why);
  void rom_call(std::uint32_t address);  // rom/rom_api.cpp
  void charge(Nanos ns) { b.cycles_ += ns_to_cycles(ns); }
  void advance_to(Nanos t) {
    if (t > b.local_time()) b.cycles_ = ns_to_cycles(t);
  }
  void halt(const std::string& reason) {  // stops the core (not a fault)
    b.state_ = BoardState::kHalted;
    b.stop_reason_ = reason;
    request_stop(Stop::kFault);
  }
  // Block hook. A stop requested here happens before the block executes; Unicorn 2.0.1 does
  // not always report that block's address as the PC afterwards, so the run loop restores it
  // from `stopped_at_block`.
  void on_block(std::uint32_t address, std::uint32_t size) {
    if (idle_after_rom) {
      idle_after_rom = false;
      if (deferred_stop == Stop::kNone) deferred_stop = Stop::kIdle;
    }
    // An interrupt left pending by PRIMASK/BASEPRI is taken at the first block after the mask
    // drops (CPSIE), not at the end of the slice.
    if (masked_pending && deferred_stop == Stop::kNone && any_pending_enabled()) {
      masked_pending = false;
      deferred_stop = Stop::kInterrupt;
    }
    Stop why = deferred_stop;
    if (why == Stop::kNone && b.cycles_ >= stop_cycles) why = Stop::kSlice;
    if (why != Stop::kNone) {
      deferred_stop = Stop::kNone;
      if (stop == Stop::kNone) stop = why;
      stopped_at_block = address;
      uc_emu_stop(uc);
      return;
    }
    block_pc = address;
    block_size = size;
    // Unicorn 2.0.1 executes WFI as a no-op in M-profile mode; QEMU ends a translated block at
    // WFI, so a block that ends in one stops the core at the next block start (after the WFI).
    const BlockKind kind = classify_block(address, size);
    if (kind.wfi)
      deferred_stop = Stop::kWfi;
    else if (kind.dead_loop)
      deferred_stop = Stop::kIdle;
    const std::uint64_t hw = size / 2;
    b.cycles_ += hw;
    b.executed_halfwords_ += hw;
    if (profile_path != nullptr) {
      auto& entry = profile[address];
      entry.first += hw;
      ++entry.second;
    }
  }
  // RTCANBOOT_TWIN_PROFILE=FILE: executed halfwords per translated block, written when the
  // board is destroyed (map the addresses to symbols with arm-none-eabi-addr2line).
  const char* profile_path = std::getenv("RTCANBOOT_TWIN_PROFILE");
  std::unordered_map<std::uint32_t, std::pair<std::uint64_t, std::uint64_t>>
      profile;  // halfwords, runs
  void write_profile() const;
  std::uint32_t stopped_at_block = 0xFFFF'FFFF;
  bool masked_pending = false;  // an enabled interrupt is pending but masked: re-check per block

  // Host copy of guest code memory (RAM and the flash window are mapped from these vectors).
  const std::uint8_t* code_pointer(std::uint32_t address, std::uint32_t size) const {
    auto in = [&](std::uint32_t base, const std::vector<std::uint8_t>& mem) {
      return address >= base && address - base <= mem.size() &&
             mem.size() - (address - base) >= size;
    };
    if (in(kItcmBase, itcm)) return itcm.data() + (address - kItcmBase);
    if (in(kDtcmBase, dtcm)) return dtcm.data() + (address - kDtcmBase);
    if (in(kOcramBase, ocram)) return ocram.data() + (address - kOcramBase);
    if (in(kWindowBase, window)) return window.data() + (address - kWindowBase);
    return nullptr;
  }
  // What the block hook needs to know about a translated block: whether its last instruction is
  // WFI (0xBF30), decoding Thumb-2 lengths from the block start so the second half of a 32-bit
  // instruction is not mistaken for one, and whether it is a loop that can observe nothing (only
  // NOPs and a branch back to its own start: `b .`, `1: nop; b 1b`), which only an exception
  // ends, so the core skips ahead to the next event instead of spinning. Asked on every block,
  // so the answers sit in a direct-mapped table (a hash map here took 13 % of a fleet
  // benchmark's perf samples), checked against the block's size and first and last halfwords.
  struct BlockKind {
    bool wfi = false;
    bool dead_loop = false;
  };
  struct BlockKindEntry {
    std::uint32_t address = 0xFFFF'FFFF;  // no guest block starts at an odd address
    std::uint32_t size = 0;
    std::uint16_t first = 0, last = 0;
    BlockKind kind;
  };
  static constexpr std::size_t kBlockKindEntries = 4096;
  static_assert((kBlockKindEntries & (kBlockKindEntries - 1)) == 0, "index by mask");
  std::vector<BlockKindEntry> block_kinds = std::vector<BlockKindEntry>(kBlockKindEntries);
  BlockKind classify_block(std::uint32_t address, std::uint32_t size) {
    const std::uint8_t* code = code_pointer(address, size);
    if (code == nullptr || size < 2) return {};
    auto halfword = [&](std::uint32_t at) {
      return static_cast<std::uint16_t>(code[at] | (code[at + 1] << 8));
    };
    const std::uint16_t first = halfword(0), last = halfword(size - 2);
    BlockKindEntry& entry = block_kinds[(address >> 1) & (kBlockKindEntries - 1)];
    if (entry.address == address && entry.size == size && entry.first == first &&
        entry.last == last)
      return entry.kind;
    std::uint32_t at = 0, last_start = 0;
    bool only_nops = true;
    while (at + 2 <= size) {
      last_start = at;
      const std::uint16_t hw = halfword(at);
      const bool wide = (hw >> 11) == 0x1D || (hw >> 11) == 0x1E || (hw >> 11) == 0x1F;
      if (at + 2 < size && hw != 0xBF00) only_nops = false;
      at += wide ? 4 : 2;
    }
    const bool whole = at == size && last_start == size - 2;
    // B<c> T2 (unconditional, 16 bit): target = its address + 4 + SignExtend(imm11:0).
    const bool branch = (last & 0xF800) == 0xE000;
    const std::int32_t offset =
        static_cast<std::int32_t>(static_cast<std::uint32_t>(last & 0x7FF) << 21) >> 20;
    const bool to_start =
        branch && static_cast<std::uint32_t>(static_cast<std::int32_t>(address + size + 2) +
                                             offset) == address;
    entry = {address, size, first, last, {whole && last == 0xBF30, whole && only_nops && to_start}};
    return entry.kind;
  }

  // --- reset
  void reset_core_state();
  void reset_models(bool warm);
};

}  // namespace rtcanboot::twin
