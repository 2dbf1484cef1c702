#include "twin/board.hpp"

#include "twin/can/bus.hpp"
#include "twin/can/flexcan.hpp"

#include <unicorn/unicorn.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>
#include <stdexcept>
#include <unordered_map>
#include <utility>
#include <vector>

#include <fmt/format.h>

namespace rtcanboot::twin {

namespace {

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
constexpr Nanos kRomBootTime = 3'000'000;            // boot ROM until the image starts

enum RomFn : unsigned {
  kFnInit = 0, kFnProgram, kFnEraseAll, kFnErase, kFnRead, kFnClearCache, kFnXfer, kFnUpdateLut,
  kFnGetConfig, kFnRunBootloader, kFnCount
};

// ROM status codes (group 201 = FlexSPI NOR, as NXP's bootloader/IAP sources; see docs/twin.md).
constexpr std::uint32_t kStatusSuccess = 0;
constexpr std::uint32_t kStatusInvalidArgument = 4;
constexpr std::uint32_t kStatusProgramFail = 20100;
constexpr std::uint32_t kStatusEraseSectorFail = 20101;
constexpr std::uint32_t kStatusEraseAllFail = 20102;
constexpr std::uint32_t kStatusCommandFailure = 20106;

constexpr std::uint8_t kLineAhb = 1, kLineDcache = 2, kLineIcache = 4;
constexpr std::uint32_t kLineSize = 32;
// Granularity of the flash window protections. Unicorn 2.0.1 never merges regions that
// uc_mem_protect splits and aborts when a memory map exceeds 1024 sections, so the window is
// protected in 64 KiB chunks (at most 64 pieces).
constexpr std::uint32_t kProtPage = 64 * 1024;

struct KnownBlock {
  std::uint32_t base;
  const char* name;
};
// Blocks of the RT1064 the twin does not model: reads warn (return 0), writes fault.
constexpr KnownBlock kKnownBlocks[] = {
    {0x4000'0000, "AIPSTZ1"}, {0x4008'0000, "DCDC"}, {0x4008'8000, "ACMP"}, {0x4009'4000, "IOMUXC_SNVS_GPR?"},
    {0x400A'4000, "IOMUXC_SNVS_GPR"}, {0x400A'8000, "IOMUXC_SNVS"}, {0x400B'0000, "FLEXRAM"},
    {0x400B'4000, "EWM"}, {0x400C'0000, "GPIO5"}, {0x400E'8000, "DMA0"}, {0x400E'C000, "DMAMUX"},
    {0x4018'0000, "ROMC"}, {0x401F'4000, "OCOTP"}, {0x402A'8000, "FLEXSPI"}, {0x402F'0000, "SEMC"},
    {0x400D'8000, "CCM_ANALOG"}, {0x4010'0000, "AIPSTZ2"}, {0x4020'0000, "AIPSTZ3"}, {0x4030'0000, "AIPSTZ4"},
};

const char* exception_name(std::uint32_t intno) {
  switch (intno) {
    case 1: return "undefined instruction (UsageFault UNDEFINSTR)";
    case 3: return "prefetch abort (instruction fetch bus/MPU fault)";
    case 4: return "data abort (bus/MPU fault)";
    case 7: return "BKPT instruction (no debugger attached: HardFault)";
    case 17: return "coprocessor access with the FPU disabled (UsageFault NOCP)";
    case 18: return "invalid state (UsageFault INVSTATE: branch to an even address?)";
    case 19: return "stack overflow";
    case 22: return "unaligned access (UsageFault UNALIGNED)";
    case 23: return "divide by zero (UsageFault DIVBYZERO)";
    default: return "CPU exception";
  }
}

}  // namespace

// =============================================================================================

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
  std::uint32_t current_pc() const { return block_pc; }

  // --- memory-mapped IO
  std::uint64_t mmio_read(std::uint32_t addr, unsigned size);
  void mmio_write(std::uint32_t addr, unsigned size, std::uint32_t value);
  std::uint32_t ppb_read(std::uint32_t off, unsigned size);
  void ppb_write(std::uint32_t off, unsigned size, std::uint32_t value);
  void note_poll(std::uint32_t addr, std::uint32_t value, bool time_register);

  // --- NVIC
  int group_priority(int prio) const {
    const std::uint32_t mask = prigroup <= 3 ? 0xF0u : (0xFFu << (prigroup + 1)) & 0xF0u;
    return static_cast<int>(static_cast<std::uint32_t>(prio) & mask);
  }
  int exception_priority(unsigned n) const {
    if (n >= 16) return irq_prio[n - 16] & 0xF0;
    return sys_prio[n] & 0xF0;
  }
  int execution_priority();
  unsigned best_pending(bool ignore_masks, int* prio_out);
  bool any_pending_enabled();
  void enter_exception(unsigned number);
  void exception_return(std::uint32_t exc_return);
  void systick_rearm();

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
  void rom_call(std::uint32_t address);
  std::uint32_t rom_arg(unsigned i);
  bool rom_check_instance(std::uint32_t instance, const char* fn);
  std::uint32_t rom_xfer(std::uint32_t xfer_addr, std::uint32_t lr);
  void rom_get_config(std::uint32_t cfg, std::uint32_t option_addr);
  void charge(Nanos ns) { b.cycles_ += ns_to_cycles(ns); }
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
    if (ends_with_wfi(address, size)) deferred_stop = Stop::kWfi;
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
  std::unordered_map<std::uint32_t, std::pair<std::uint64_t, std::uint64_t>> profile;  // halfwords, runs
  void write_profile() const;
  std::uint32_t stopped_at_block = 0xFFFF'FFFF;
  bool masked_pending = false;  // an enabled interrupt is pending but masked: re-check per block

  // Host copy of guest code memory (RAM and the flash window are mapped from these vectors).
  const std::uint8_t* code_pointer(std::uint32_t address, std::uint32_t size) const {
    auto in = [&](std::uint32_t base, const std::vector<std::uint8_t>& mem) {
      return address >= base && address - base <= mem.size() && mem.size() - (address - base) >= size;
    };
    if (in(kItcmBase, itcm)) return itcm.data() + (address - kItcmBase);
    if (in(kDtcmBase, dtcm)) return dtcm.data() + (address - kDtcmBase);
    if (in(kOcramBase, ocram)) return ocram.data() + (address - kOcramBase);
    if (in(kWindowBase, window)) return window.data() + (address - kWindowBase);
    return nullptr;
  }
  // True when the last instruction of the block is WFI (0xBF30), decoding Thumb-2 lengths from
  // the block start so the second half of a 32-bit instruction is not mistaken for one. Cached
  // per block address, checked against the block's first and last halfwords.
  struct WfiCacheEntry {
    std::uint32_t size = 0;
    std::uint16_t first = 0, last = 0;
    bool wfi = false;
  };
  std::unordered_map<std::uint32_t, WfiCacheEntry> wfi_cache;
  bool ends_with_wfi(std::uint32_t address, std::uint32_t size) {
    const std::uint8_t* code = code_pointer(address, size);
    if (code == nullptr || size < 2) return false;
    auto halfword = [&](std::uint32_t at) {
      return static_cast<std::uint16_t>(code[at] | (code[at + 1] << 8));
    };
    const std::uint16_t first = halfword(0), last = halfword(size - 2);
    auto& entry = wfi_cache[address];
    if (entry.size == size && entry.first == first && entry.last == last) return entry.wfi;
    std::uint32_t at = 0, last_start = 0;
    while (at + 2 <= size) {
      last_start = at;
      const std::uint16_t hw = halfword(at);
      const bool wide = (hw >> 11) == 0x1D || (hw >> 11) == 0x1E || (hw >> 11) == 0x1F;
      at += wide ? 4 : 2;
    }
    entry = {size, first, last, at == size && last_start == size - 2 && last == 0xBF30};
    return entry.wfi;
  }

  // --- reset
  void reset_core_state();
  void reset_models(bool warm);
};

// ---------------------------------------------------------------------------------------------
// Unicorn callbacks

namespace {

Board::Impl* impl_of(void* user) { return static_cast<Board::Impl*>(user); }

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
  im->cpu_fault("cpu", fmt::format("{} at pc 0x{:08X}", exception_name(intno), pc), pc);
}

bool hook_unmapped(uc_engine*, uc_mem_type type, std::uint64_t address, int size, std::int64_t,
                   void* user) {
  auto* im = impl_of(user);
  const char* kind = type == UC_MEM_FETCH_UNMAPPED  ? "instruction fetch from"
                     : type == UC_MEM_WRITE_UNMAPPED ? "write to"
                                                     : "read from";
  im->cpu_fault("bus", fmt::format("{} unmapped address 0x{:08X} ({} bytes) in the code block at 0x{:08X}",
                                   kind, static_cast<std::uint32_t>(address), size, im->block_pc),
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
void periph_write_cb(uc_engine*, std::uint64_t offset, unsigned size, std::uint64_t value, void* user) {
  impl_of(user)->mmio_write(kPeriphBase + static_cast<std::uint32_t>(offset), size,
                            static_cast<std::uint32_t>(value));
}
std::uint64_t gpio_read_cb(uc_engine*, std::uint64_t offset, unsigned size, void* user) {
  auto* im = impl_of(user);
  return im->gpio_fast->read(static_cast<std::uint32_t>(offset), size, im->block_pc);
}
void gpio_write_cb(uc_engine*, std::uint64_t offset, unsigned size, std::uint64_t value, void* user) {
  auto* im = impl_of(user);
  im->gpio_fast->write(static_cast<std::uint32_t>(offset), static_cast<std::uint32_t>(value), size,
                       im->block_pc);
}
std::uint64_t ppb_read_cb(uc_engine*, std::uint64_t offset, unsigned size, void* user) {
  return impl_of(user)->ppb_read(static_cast<std::uint32_t>(offset), size);
}
void ppb_write_cb(uc_engine*, std::uint64_t offset, unsigned size, std::uint64_t value, void* user) {
  impl_of(user)->ppb_write(static_cast<std::uint32_t>(offset), size, static_cast<std::uint32_t>(value));
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Setup

Board::Impl::Impl(Board& board)
    : b(board), itcm(kItcmSize), dtcm(kDtcmSize), ocram(kOcramSize), rom(kRomSize),
      window(kWindowSize, 0xFF), line_flags(kWindowSize / kLineSize, 0),
      page_prot(kWindowSize / kProtPage, UC_PROT_READ | UC_PROT_EXEC),
      applied_prot(kWindowSize / kProtPage, UC_PROT_READ | UC_PROT_EXEC) {
  if (uc_open(UC_ARCH_ARM, static_cast<uc_mode>(UC_MODE_THUMB | UC_MODE_MCLASS), &uc) != UC_ERR_OK) {
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
    const std::uint32_t hi = static_cast<std::uint32_t>(std::strtoul(std::getenv("TWIN_DEBUG_TRACE_END"), nullptr, 16));
    uc_hook_add(uc, &h_dbg, UC_HOOK_CODE, reinterpret_cast<void*>(+[](uc_engine* u, std::uint64_t a, std::uint32_t, void*) {
      std::uint32_t sp = 0, r0 = 0, lr = 0;
      uc_reg_read(u, UC_ARM_REG_SP, &sp);
      uc_reg_read(u, UC_ARM_REG_R0, &r0);
      uc_reg_read(u, UC_ARM_REG_LR, &lr);
      std::fprintf(stderr, "  pc=%08x sp=%08x r0=%08x lr=%08x\n", static_cast<std::uint32_t>(a), sp, r0, lr);
    }), this, lo, hi);
  }
  uc_hook_add(uc, &h_intr, UC_HOOK_INTR, reinterpret_cast<void*>(hook_intr), this, 1, 0);
  uc_hook_add(uc, &h_unmapped, UC_HOOK_MEM_UNMAPPED, reinterpret_cast<void*>(hook_unmapped), this, 1, 0);
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
  std::fprintf(out, "# %s: block, executed halfwords, runs (total %llu halfwords)\n", b.name().c_str(),
               static_cast<unsigned long long>(b.executed_halfwords_));
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

void Board::Impl::build_rom() {
  auto put32 = [this](std::uint32_t addr, std::uint32_t v) { std::memcpy(&rom[addr - kRomBase], &v, 4); };
  // ROM's own vector table (used if the firmware never moves VTOR).
  put32(kRomBase + 0, kRomStackTop);
  for (unsigned i = 1; i < 16; ++i) {
    if (i != 7) put32(kRomBase + 4 * i, kRomDefaultHandler | 1);
  }
  put32(kRomTreePtr, kRomTree);
  put32(kRomTree + 0x00, 0x4B03'0100);  // bootloader version ('K' 3.1.0, value not documented)
  put32(kRomTree + 0x04, kRomCopyright);
  put32(kRomTree + 0x08, (kRomStubs + 4 * kFnRunBootloader) | 1);
  put32(kRomTree + 0x0C, 0);
  put32(kRomTree + 0x10, kRomNorTable);
  const char copyright[] = "rtcanboot-twin model of the i.MX RT1064 boot ROM";
  std::memcpy(&rom[kRomCopyright - kRomBase], copyright, sizeof copyright);
  put32(kRomNorTable + 0x00, 0x0001'0500);  // driver version 1.5.0
  const RomFn order[] = {kFnInit, kFnProgram, kFnEraseAll, kFnErase, kFnRead, kFnClearCache,
                         kFnXfer, kFnUpdateLut, kFnGetConfig};
  for (unsigned i = 0; i < std::size(order); ++i) {
    put32(kRomNorTable + 4 + 4 * i, (kRomStubs + 4 * order[i]) | 1);
  }
  for (unsigned i = 0; i < kFnCount; ++i) put32(kRomStubs + 4 * i, 0xBF00'4770);  // bx lr; nop
  put32(kRomDefaultHandler, 0xE7FE'E7FE);  // b .
}

void Board::Impl::attach(std::uint32_t base, Peripheral* model) {
  const std::uint32_t first = (base - kPeriphBase) / 0x4000;
  const std::uint32_t count = std::max<std::uint32_t>(1, (model->size() + 0x3FFF) / 0x4000);
  for (std::uint32_t i = first; i < first + count && i < slots.size(); ++i) slots[i] = Slot{model, base};
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
  analog = static_cast<CcmAnalog*>(own(0x400D'8000, std::make_unique<CcmAnalog>(ctx)));
  auto gpr = std::make_unique<PlainRegisters>("IOMUXC_GPR", 0x4000, ctx);
  gpr->preset(0x44, 0x55AF'FA55);  // GPR17: default FlexRAM banks
  gpr->preset(0x40, 0x0020'0007);  // GPR16: INIT_VTOR = ROM
  own(0x400A'C000, std::move(gpr));
  own(0x400A'8000, std::make_unique<PlainRegisters>("IOMUXC_SNVS", 0x4000, ctx));
  own(0x400A'4000, std::make_unique<PlainRegisters>("IOMUXC_SNVS_GPR", 0x4000, ctx));
  own(0x400D'4000, std::make_unique<Snvs>(ctx));
  own(0x400B'8000, std::make_unique<Wdog>("WDOG1", 92, ctx));
  own(0x400D'0000, std::make_unique<Wdog>("WDOG2", 45, ctx));
  own(0x400B'C000, std::make_unique<Rtwdog>(ctx));
  own(0x401E'C000, std::make_unique<Gpt>("GPT1", 100, *b.ccm_, ctx));
  own(0x401F'0000, std::make_unique<Gpt>("GPT2", 101, *b.ccm_, ctx));
  own(0x4008'4000, std::make_unique<Pit>(*b.ccm_, ctx));
  own(0x4018'4000, std::make_unique<Lpuart>("LPUART1", ctx));
  flexspi2 = static_cast<FlexSpi2*>(own(0x402A'4000, std::make_unique<FlexSpi2>(ctx)));
  own(0x400B'0000, std::make_unique<PlainRegisters>("FLEXRAM", 0x4000, ctx));
  own(0x4008'0000, std::make_unique<PlainRegisters>("DCDC", 0x4000, ctx));
  auto ocotp = std::make_unique<PlainRegisters>("OCOTP", 0x4000, ctx);
  ocotp->preset(0x440, 0x0010'0000);  // CFG3 bit 20: RT1064 SiP
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
    fc.clock_hz = [this, inst] { return b.ccm_->can_clock_hz(inst); };
    fc.pins_muxed = [this, inst] { return b.iomuxc_->can_pins_muxed(inst); };
    auto model = std::make_unique<can::FlexCan>(fc, b.sim_.clock(), b, b.reporter_);
    flexcans[inst - 1] = model.get();
    own(can::FlexCan::base_address(inst), std::move(model));
  }
}

// ---------------------------------------------------------------------------------------------
// Faults and MMIO

void Board::Impl::cpu_fault(const std::string& source, const std::string& message, std::uint32_t pc) {
  b.reporter_.report(Severity::kFault, source, message, pc);
  b.state_ = BoardState::kHalted;
  b.stop_reason_ = message;
  request_stop(Stop::kFault);
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
        b.reporter_.report(Severity::kWarning, "bus",
                           fmt::format("read of unmodelled {} register 0x{:08X} returns 0 (block at 0x{:08X})",
                                       k.name, addr, block_pc),
                           block_pc);
        return 0;
      }
    }
    cpu_fault("bus", fmt::format("read from unassigned peripheral address 0x{:08X} (bus error on the chip) "
                                 "in the code block at 0x{:08X}", addr, block_pc),
              block_pc);
    return 0;
  }
  const std::uint32_t off = addr - s.base;
  const std::uint32_t v = s.model->read(off, size, block_pc);
  bool time_reg = false;
  if (s.base == 0x401E'C000 || s.base == 0x401F'0000) time_reg = Gpt::is_time_register(off & ~3u);
  if (s.base == 0x4008'4000) time_reg = Pit::is_time_register(off & ~3u);
  if (s.base == 0x400B'C000) time_reg = (off & ~3u) == 4;
  note_poll(addr, v, time_reg);
  return v;
}

void Board::Impl::mmio_write(std::uint32_t addr, unsigned size, std::uint32_t value) {
  reset_polls();
  const Slot& s = slots[(addr - kPeriphBase) / 0x4000];
  if (s.model == nullptr) {
    const char* name = nullptr;
    for (const auto& k : kKnownBlocks) {
      if (addr >= k.base && addr < k.base + 0x4000) name = k.name;
    }
    cpu_fault("bus", fmt::format("write of 0x{:08X} to {} 0x{:08X}, which the twin does not model, in the code "
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

// ---------------------------------------------------------------------------------------------
// PPB: SCB, NVIC, SysTick, DWT, MPU, cache maintenance

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
      case 0x1000: v = dwt_ctrl; break;
      case 0x1004:
        v = (dwt_ctrl & 1) ? dwt_base + static_cast<std::uint32_t>(b.cycles_ - dwt_start_cycles) : dwt_base;
        break;
      case 0xE004: v = 7; break;  // ICTR: 256 interrupt lines
      case 0xE010: {
        v = syst_csr;
        syst_csr &= ~(1u << 16);  // COUNTFLAG clears on read
        break;
      }
      case 0xE014: v = syst_rvr; break;
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
      case 0xE01C: v = syst_calib; break;
      case 0xED00: v = 0x411F'C272; break;  // CPUID: Cortex-M7 r1p2
      case 0xED04: {
        unsigned act = active.empty() ? 0 : active.back().number;
        int prio = 0;
        const unsigned pend = best_pending(true, &prio);
        v = act | (pend << 12) | (pend_systick ? (1u << 26) : 0) | (pend_pendsv ? (1u << 28) : 0);
        if (pend != 0) v |= 1u << 22;
        break;
      }
      case 0xED08: v = vtor; break;
      case 0xED0C: v = 0xFA05'0000u | (prigroup << 8); break;
      case 0xED10: v = scr; break;
      case 0xED14: v = ccr; break;
      case 0xED18: case 0xED1C: case 0xED20: {
        const std::uint32_t n = aligned - 0xED18 + 4;
        for (unsigned i = 0; i < 4; ++i) v |= static_cast<std::uint32_t>(sys_prio[n + i]) << (8 * i);
        break;
      }
      case 0xED78: v = 0x0900'0003; break;  // CLIDR: L1 I+D
      case 0xED7C: v = 0x8303'C003; break;  // CTR
      case 0xED80: v = (ppb_store[0xED84] & 1) ? 0x003F'E009u : 0x001F'E019u; break;  // CCSIDR
      case 0xED88: v = cpacr; break;
      case 0xED90: v = 0x0000'1000; break;  // MPU_TYPE: 16 regions
      case 0xED94: v = mpu_ctrl; break;
      case 0xED98: v = mpu_rnr; break;
      case 0xED9C: case 0xEDA4: case 0xEDAC: case 0xEDB4: v = mpu_rbar[mpu_rnr & 15] | (mpu_rnr & 15); break;
      case 0xEDA0: case 0xEDA8: case 0xEDB0: case 0xEDB8: v = mpu_rasr[mpu_rnr & 15]; break;
      case 0xEF34: {
        auto it = ppb_store.find(0xEF34);
        v = it == ppb_store.end() ? 0xC000'0000u : it->second;
        break;
      }
      default: {
        auto it = ppb_store.find(aligned);
        v = it == ppb_store.end() ? 0 : it->second;
        const bool known = (aligned >= 0xEF90 && aligned <= 0xEFA8) || (aligned >= 0xEDF0 && aligned <= 0xEDFC) ||
                           (aligned >= 0xED24 && aligned <= 0xED3C) || aligned == 0xED84 ||
                           (aligned >= 0x80000 && aligned < 0x81000) || (aligned >= 0x1000 && aligned < 0x2000) ||
                           aligned == 0xEF38 || aligned == 0xEF3C;
        if (!known) {
          b.reporter_.report(Severity::kWarning, "ppb",
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
    for (unsigned i = 0; i < size; ++i) irq_prio[off - 0xE400 + i] = static_cast<std::uint8_t>((value >> (shift + 8 * i)) & 0xF0);
    check_irq = true;
  } else if (off >= 0xED18 && off < 0xED24) {
    for (unsigned i = 0; i < size; ++i) sys_prio[off - 0xED18 + 4 + i] = static_cast<std::uint8_t>((value >> (shift + 8 * i)) & 0xF0);
  } else {
    switch (aligned) {
      case 0x1000:
        if ((value & 1) && !(dwt_ctrl & 1)) dwt_start_cycles = b.cycles_;
        if (!(value & 1) && (dwt_ctrl & 1)) dwt_base += static_cast<std::uint32_t>(b.cycles_ - dwt_start_cycles);
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
      case 0xE014: syst_rvr = value & 0x00FF'FFFF; break;
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
          b.reporter_.report(Severity::kFault, "scb",
                             fmt::format("VTOR = 0x{:08X} is not 1024-byte aligned (174 vectors): the low bits "
                                         "are ignored by the core",
                                         value),
                             pc);
        }
        vtor = value & ~0x7Fu;
        break;
      case 0xED0C:
        if ((value >> 16) != 0x05FA) {
          b.reporter_.report(Severity::kWarning, "scb",
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
      case 0xED10: scr = value; break;
      case 0xED14: {
        const std::uint32_t old = ccr;
        ccr = value;
        if ((old & (1u << 16)) && !(value & (1u << 16))) dcache_invalidate_all();  // disable cleans
        break;
      }
      case 0xED88: cpacr = value; break;
      case 0xED94: mpu_ctrl = value; break;
      case 0xED98: mpu_rnr = value & 0xFF; break;
      case 0xED9C: case 0xEDA4: case 0xEDAC: case 0xEDB4:
        if (value & 0x10) mpu_rnr = value & 15;
        mpu_rbar[mpu_rnr & 15] = value & ~0x1Fu;
        break;
      case 0xEDA0: case 0xEDA8: case 0xEDB0: case 0xEDB8: mpu_rasr[mpu_rnr & 15] = value; break;
      case 0xEF00: {
        const unsigned irq = value & 0xFF;
        pending[irq] = true;
        check_irq = true;
        break;
      }
      case 0xEF50: icache_invalidate_all(); break;                   // ICIALLU
      case 0xEF58: break;                                            // ICIMVAU
      case 0xEF5C: case 0xEF70: dcache_invalidate_line(value); break;  // DCIMVAC, DCCIMVAC
      case 0xEF60: case 0xEF74:                                      // DCISW, DCCISW
        if ((value & 0xC000'3FE0u) == 0) dcache_invalidate_all();    // set 0 / way 0: end of a full loop
        break;
      case 0xEF64: case 0xEF68: case 0xEF6C: case 0xEF78: break;     // clean ops, BPIALL
      default:
        ppb_store[aligned] = (ppb_store[aligned] & ~(((size >= 4) ? 0xFFFF'FFFFu : ((1u << (8 * size)) - 1)) << shift)) | value;
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
    cpu_fault("nvic", fmt::format("exception {} taken while VTOR still points at the boot ROM vector table "
                                  "(0x{:08X}): the firmware never set VTOR",
                                  number, vtor),
              pc);
    return;
  }
  const std::uint32_t vec_addr = vtor + 4 * number;
  if (vec_addr >= kWindowBase && vec_addr < kWindowBase + kWindowSize) {
    if (window_busy) {
      cpu_fault("flash", fmt::format("read-while-write: vector fetch of exception {} from 0x{:08X} while the "
                                     "flash is being erased/programmed",
                                     number, vec_addr),
                pc);
      return;
    }
  }
  std::uint32_t handler = 0;
  if (uc_mem_read(uc, vec_addr, &handler, 4) != UC_ERR_OK) {
    cpu_fault("nvic", fmt::format("vector fetch of exception {} from unmapped 0x{:08X}", number, vec_addr), pc);
    return;
  }
  if ((handler & 1) == 0) {
    cpu_fault("nvic", fmt::format("vector {} at 0x{:08X} holds 0x{:08X} without the Thumb bit (INVSTATE "
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
  const std::uint32_t words[8] = {rreg(UC_ARM_REG_R0), rreg(UC_ARM_REG_R1), rreg(UC_ARM_REG_R2),
                                  rreg(UC_ARM_REG_R3), rreg(UC_ARM_REG_R12), rreg(UC_ARM_REG_LR),
                                  pc & ~1u, xpsr | (1u << 24)};
  if (uc_mem_write(uc, frame, words, sizeof words) != UC_ERR_OK) {
    cpu_fault("nvic", fmt::format("stacking fault: exception frame at 0x{:08X} is not writable RAM", frame), pc);
    return;
  }
  for (unsigned i = 0; i < 16; ++i) rec.fp[i] = rreg(UC_ARM_REG_S0 + static_cast<int>(i));
  rec.fpscr = rreg(UC_ARM_REG_FPSCR);
  const std::uint32_t exc_return = !active.empty() ? 0xFFFF'FFF1u : (psp ? 0xFFFF'FFFDu : 0xFFFF'FFF9u);
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
    cpu_fault("nvic", fmt::format("branch to EXC_RETURN 0x{:08X} with no active exception", exc_return), 0);
    return;
  }
  const Active rec = active.back();
  active.pop_back();
  if (rec.number >= 16) active_irq[rec.number - 16] = false;
  if (exc_return & 4) wreg(UC_ARM_REG_CONTROL, rec.control);
  const std::uint32_t sp = rreg(UC_ARM_REG_SP);
  std::uint32_t words[8] = {};
  if (uc_mem_read(uc, sp, words, sizeof words) != UC_ERR_OK) {
    cpu_fault("nvic", fmt::format("unstacking fault at 0x{:08X}", sp), 0);
    return;
  }
  const int regs[6] = {UC_ARM_REG_R0, UC_ARM_REG_R1, UC_ARM_REG_R2, UC_ARM_REG_R3, UC_ARM_REG_R12, UC_ARM_REG_LR};
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

// ---------------------------------------------------------------------------------------------
// Flash window: read-while-write and stale AHB buffer / cache detection

void Board::Impl::on_flash_busy(bool busy) {
  window_busy = busy;
  if (busy) {
    uc_mem_protect(uc, kWindowBase, kWindowSize, UC_PROT_NONE);
    std::fill(applied_prot.begin(), applied_prot.end(), std::uint8_t{UC_PROT_NONE});
  } else {
    apply_protections();
  }
}

void Board::Impl::on_flash_modified(std::uint32_t offset, std::uint32_t length) {
  std::uint8_t flags = kLineAhb;
  if (ccr & (1u << 16)) flags |= kLineDcache;
  if (ccr & (1u << 17)) flags |= kLineIcache;
  const std::uint32_t first_line = offset / kLineSize;
  const std::uint32_t end_line = std::min<std::uint32_t>((offset + length + kLineSize - 1) / kLineSize,
                                                         static_cast<std::uint32_t>(line_flags.size()));
  for (std::uint32_t l = first_line; l < end_line; ++l) line_flags[l] |= flags;
  for (std::uint32_t p = offset / kProtPage; p < (offset + length + kProtPage - 1) / kProtPage && p < page_prot.size(); ++p) {
    stale_pages.insert(p);
    refresh_page(p);
  }
  if (!window_busy) apply_protections();
}

void Board::Impl::refresh_page(std::uint32_t page) {
  const std::uint32_t first = page * (kProtPage / kLineSize);
  std::uint8_t any = 0;
  for (std::uint32_t l = first; l < first + kProtPage / kLineSize; ++l) any |= line_flags[l];
  std::uint8_t prot = UC_PROT_READ | UC_PROT_EXEC;
  if (any & (kLineAhb | kLineDcache)) prot &= static_cast<std::uint8_t>(~UC_PROT_READ);
  if (any & (kLineAhb | kLineIcache)) prot &= static_cast<std::uint8_t>(~UC_PROT_EXEC);
  const std::uint32_t off = page * kProtPage;
  // Accessible contents are the flash's current contents.
  if (std::memcmp(&window[off], b.flash_->contents().data() + off, kProtPage) != 0) {
    std::memcpy(&window[off], b.flash_->contents().data() + off, kProtPage);
    uc_ctl_remove_cache(uc, kWindowBase + off, kWindowBase + off + kProtPage);
  }
  page_prot[page] = prot;
  if (any == 0) stale_pages.erase(page);
}

void Board::Impl::refresh_all_pages() {
  for (std::uint32_t p = 0; p < page_prot.size(); ++p) refresh_page(p);
  apply_protections();
}

void Board::Impl::apply_protections() {
  if (window_busy) return;
  // Change Unicorn's protections only where they differ, in runs of equal protection.
  std::uint32_t p = 0;
  const auto n = static_cast<std::uint32_t>(page_prot.size());
  while (p < n) {
    if (page_prot[p] == applied_prot[p]) {
      ++p;
      continue;
    }
    std::uint32_t q = p + 1;
    while (q < n && page_prot[q] == page_prot[p] && page_prot[q] != applied_prot[q]) ++q;
    uc_mem_protect(uc, kWindowBase + p * kProtPage, (q - p) * kProtPage, page_prot[p]);
    for (std::uint32_t i = p; i < q; ++i) applied_prot[i] = page_prot[p];
    p = q;
  }
}

void Board::Impl::clear_line_flags(std::uint8_t mask) {
  if (stale_pages.empty()) return;
  const std::vector<std::uint32_t> pages(stale_pages.begin(), stale_pages.end());
  for (std::uint32_t page : pages) {
    const std::uint32_t first = page * (kProtPage / kLineSize);
    for (std::uint32_t l = first; l < first + kProtPage / kLineSize; ++l) {
      line_flags[l] = static_cast<std::uint8_t>(line_flags[l] & ~mask);
    }
    refresh_page(page);
  }
  apply_protections();
}

void Board::Impl::ahb_buffer_reset() { clear_line_flags(kLineAhb); }
void Board::Impl::dcache_invalidate_all() { clear_line_flags(kLineDcache); }
void Board::Impl::icache_invalidate_all() { clear_line_flags(kLineIcache); }

void Board::Impl::dcache_invalidate_line(std::uint32_t addr) {
  if (addr < kWindowBase || addr >= kWindowBase + kWindowSize) return;
  const std::uint32_t l = (addr - kWindowBase) / kLineSize;
  if (!(line_flags[l] & kLineDcache)) return;
  line_flags[l] = static_cast<std::uint8_t>(line_flags[l] & ~kLineDcache);
  refresh_page((addr - kWindowBase) / kProtPage);
  apply_protections();
}

bool Board::Impl::handle_prot(uc_mem_type type, std::uint32_t addr, int size) {
  const std::uint32_t pc = block_pc;
  if (addr >= kWindowBase && addr < kWindowBase + kWindowSize) {
    const bool fetch = type == UC_MEM_FETCH_PROT;
    if (type == UC_MEM_WRITE_PROT) {
      cpu_fault("flash", fmt::format("write to the FlexSPI2 flash window at 0x{:08X} (the NOR is written only "
                                     "through commands; AHB writes fault) in the code block at 0x{:08X}",
                                     addr, pc),
                pc);
      return false;
    }
    if (window_busy) {
      const auto& op = b.flash_->current_op();
      cpu_fault("flash", fmt::format("read-while-write: {} at 0x{:08X} while the flash {} at offset 0x{:06X} is in "
                                     "progress (code block at 0x{:08X})",
                                     fetch ? "instruction fetch" : "data read", addr,
                                     op.kind == W25Q32::OpKind::kProgram ? "page program" : "erase", op.address, pc),
                pc);
      return false;
    }
    const std::uint32_t l = (addr - kWindowBase) / kLineSize;
    const std::uint8_t f = line_flags[l];
    if (f & kLineAhb) {
      cpu_fault("flash", fmt::format("stale read: {} at 0x{:08X} after the flash was programmed/erased there, "
                                     "without a FlexSPI2 AHB buffer reset (ROM clear_cache or MCR0.SWRESET) "
                                     "(code block at 0x{:08X})",
                                     fetch ? "instruction fetch" : "data read", addr, pc),
                pc);
      return false;
    }
    if (!fetch && (f & kLineDcache)) {
      cpu_fault("flash", fmt::format("stale read: data read at 0x{:08X} after the flash changed there, with the "
                                     "D-cache on and the line not invalidated (SCB DCIMVAC/DCCIMVAC) (code block at "
                                     "0x{:08X})",
                                     addr, pc),
                pc);
      return false;
    }
    if (fetch && (f & kLineIcache)) {
      cpu_fault("flash", fmt::format("stale fetch: instruction fetch at 0x{:08X} after the flash changed there, "
                                     "with the I-cache on and not invalidated (ICIALLU) (code block at 0x{:08X})",
                                     addr, pc),
                pc);
      return false;
    }
    // The accessed line is fresh but its 1 KiB page still holds stale lines: give up detection
    // for that page (documented granularity) and retry the access.
    const std::uint32_t page = (addr - kWindowBase) / kProtPage;
    for (std::uint32_t i = page * (kProtPage / kLineSize); i < (page + 1) * (kProtPage / kLineSize); ++i) line_flags[i] = 0;
    refresh_page(page);
    apply_protections();
    (void)size;
    return true;
  }
  if (addr >= kRomBase && addr < kRomBase + kRomSize) {
    cpu_fault("bus", fmt::format("write to the boot ROM at 0x{:08X} (code block at 0x{:08X})", addr, pc), pc);
    return false;
  }
  cpu_fault("bus", fmt::format("protection fault at 0x{:08X} (code block at 0x{:08X})", addr, pc), pc);
  return false;
}

}  // namespace rtcanboot::twin

namespace rtcanboot::twin {

// ---------------------------------------------------------------------------------------------
// Boot ROM path

namespace {
std::uint32_t le32(std::span<const std::uint8_t> m, std::uint32_t off) {
  std::uint32_t v = 0;
  std::memcpy(&v, m.data() + off, 4);
  return v;
}
bool in_ram(std::uint32_t addr, std::uint32_t len) {
  auto inside = [&](std::uint32_t base, std::uint32_t size) {
    return addr >= base && len <= size && addr - base <= size - len;
  };
  return inside(kItcmBase, kItcmSize) || inside(kDtcmBase, kDtcmSize) || inside(kOcramBase, kOcramSize);
}
}  // namespace

bool Board::Impl::rom_boot_image(std::string* why) {
  const auto flash = b.flash_->contents();
  const std::uint32_t tag = le32(flash, 0);
  if (tag != 0x4246'4346u) {
    *why = fmt::format("FCB tag at flash offset 0 is 0x{:08X}, expected 0x42464346 ('FCFB'): the boot ROM "
                       "does not boot (it would enter the serial downloader)",
                       tag);
    return false;
  }
  const std::uint32_t version = le32(flash, 4);
  if ((version >> 24) != 0x56) {
    b.reporter_.report(Severity::kWarning, "bootrom",
                       fmt::format("FCB version 0x{:08X} does not start with 'V' (0x56)", version), 0);
  }
  if (flash[0x44] != 1) {
    *why = fmt::format("FCB deviceType is {} (expected 1 = serial NOR)", flash[0x44]);
    return false;
  }
  // The read sequence 0 must issue a read command the flash understands.
  const std::uint32_t lut0 = le32(flash, 0x80);
  const std::uint32_t op0 = (lut0 >> 10) & 0x3F;
  const std::uint32_t cmd0 = lut0 & 0xFF;
  if ((op0 != 0x01 && op0 != 0x21) ||
      (cmd0 != 0x03 && cmd0 != 0x0B && cmd0 != 0xEB && cmd0 != 0x6B && cmd0 != 0xBB && cmd0 != 0x3B)) {
    *why = fmt::format("FCB LUT sequence 0 (read) starts with 0x{:04X}, not a read command of the W25Q32JV", lut0 & 0xFFFF);
    return false;
  }
  const std::uint32_t hdr = le32(flash, 0x1000);
  const std::uint32_t ivt_len = ((hdr >> 8) & 0xFF) << 8 | ((hdr >> 16) & 0xFF);
  const std::uint32_t ivt_ver = hdr >> 24;
  if ((hdr & 0xFF) != 0xD1 || ivt_len != 0x20 || ivt_ver < 0x40 || ivt_ver > 0x43) {
    *why = fmt::format("IVT header at flash offset 0x1000 is 0x{:08X}, expected tag 0xD1, length 0x0020 and "
                       "version 0x40..0x43 (e.g. 0x412000D1)",
                       hdr);
    return false;
  }
  const std::uint32_t entry = le32(flash, 0x1004);
  const std::uint32_t dcd = le32(flash, 0x100C);
  const std::uint32_t boot_data = le32(flash, 0x1010);
  const std::uint32_t self = le32(flash, 0x1014);
  const std::uint32_t csf = le32(flash, 0x1018);
  const std::uint32_t load = self - 0x1000;
  if (boot_data < self || boot_data - self >= 0x1000 - 16) {
    *why = fmt::format("IVT boot_data 0x{:08X} does not point into the image header after the IVT (self 0x{:08X})",
                       boot_data, self);
    return false;
  }
  const std::uint32_t bd_off = 0x1000 + (boot_data - self);
  const std::uint32_t start = le32(flash, bd_off);
  const std::uint32_t size = le32(flash, bd_off + 4);
  const std::uint32_t plugin = le32(flash, bd_off + 8);
  if (start != load) {
    *why = fmt::format("boot data start 0x{:08X} does not match the IVT self address 0x{:08X} - 0x1000", start, self);
    return false;
  }
  if (plugin != 0) {
    *why = "boot data marks a plugin image; the twin does not model plugin boot";
    return false;
  }
  if (size < 0x2000 || size > W25Q32::kSize) {
    *why = fmt::format("boot data size 0x{:X} is outside 0x2000..0x400000", size);
    return false;
  }
  if (csf != 0) {
    b.reporter_.report(Severity::kWarning, "bootrom", "IVT csf is set: HAB authentication is not modelled (open part)", 0);
  }
  if (dcd != 0) {
    b.reporter_.report(Severity::kWarning, "bootrom",
                       fmt::format("IVT names a DCD at 0x{:08X}: DCD commands are not executed by the twin", dcd), 0);
  }
  Nanos boot_time = kRomBootTime;
  if (start == kWindowBase) {
    // XIP: the image runs in place.
  } else if (in_ram(start, size)) {
    std::vector<std::uint8_t> copy(flash.begin(), flash.begin() + size);
    uc_mem_write(uc, start, copy.data(), copy.size());
    uc_ctl_remove_cache(uc, start, start + size);
    boot_time += static_cast<Nanos>(size) * 20;  // ~50 MB/s AHB copy
  } else {
    *why = fmt::format("boot data start 0x{:08X} (size 0x{:X}) is neither the FlexSPI2 base (XIP) nor RAM", start, size);
    return false;
  }
  auto image_covers = [&](std::uint32_t a, std::uint32_t n) { return a >= start && a - start <= size - n; };
  flexspi2->configure_from_fcb(flash.data());
  std::uint32_t sp = 0, pc = 0;
  if (entry & 1) {
    if (!image_covers(entry & ~1u, 2) && !in_ram(entry & ~1u, 2)) {
      *why = fmt::format("IVT entry 0x{:08X} (a Thumb function) is outside the image and RAM", entry);
      return false;
    }
    pc = entry;
    sp = kRomStackTop;
  } else {
    if (!image_covers(entry, 8)) {
      *why = fmt::format("IVT entry 0x{:08X} (a vector table) is outside the image 0x{:08X}+0x{:X}", entry, start, size);
      return false;
    }
    sp = mem32(entry);
    pc = mem32(entry + 4);
    if ((pc & 1) == 0) {
      *why = fmt::format("reset vector 0x{:08X} in the vector table at 0x{:08X} lacks the Thumb bit", pc, entry);
      return false;
    }
    if (!in_ram(sp - 4, 4) && sp != kDtcmBase + kDtcmSize && sp != kOcramBase + kOcramSize &&
        sp != kItcmBase + kItcmSize) {
      *why = fmt::format("initial SP 0x{:08X} in the vector table at 0x{:08X} is not in RAM", sp, entry);
      return false;
    }
  }
  charge(boot_time);
  reset_core_state();
  wreg(UC_ARM_REG_MSP, sp);
  wreg(UC_ARM_REG_SP, sp);
  wreg(UC_ARM_REG_PC, pc);
  b.reporter_.report(Severity::kInfo, "bootrom",
                     fmt::format("booting {} image: IVT entry 0x{:08X}, SP 0x{:08X}, PC 0x{:08X}",
                                 start == kWindowBase ? "XIP" : "copy-to-RAM", entry, sp, pc),
                     0);
  return true;
}

void Board::Impl::rom_boot() {
  std::string why;
  if (rom_boot_image(&why)) {
    b.state_ = BoardState::kRunning;
  } else {
    b.state_ = BoardState::kBootFailed;
    b.stop_reason_ = why;
    b.reporter_.report(Severity::kFault, "bootrom", why, 0);
  }
}

void Board::Impl::reset_core_state() {
  for (int r = UC_ARM_REG_R0; r <= UC_ARM_REG_R12; ++r) wreg(r, 0);
  wreg(UC_ARM_REG_LR, 0xFFFF'FFFF);
  wreg(UC_ARM_REG_CONTROL, 0);
  wreg(UC_ARM_REG_PRIMASK, 0);
  wreg(UC_ARM_REG_BASEPRI, 0);
  wreg(UC_ARM_REG_XPSR, 0x0100'0000);
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
  reset_polls();
  // Caches and AHB buffers start invalid: nothing stale after a reset.
  std::fill(line_flags.begin(), line_flags.end(), std::uint8_t{0});
  stale_pages.clear();
  refresh_all_pages();
}

// ---------------------------------------------------------------------------------------------
// ROM FlexSPI NOR API

std::uint32_t Board::Impl::rom_arg(unsigned i) {
  if (i < 4) return rreg(UC_ARM_REG_R0 + static_cast<int>(i));
  return mem32(rreg(UC_ARM_REG_SP) + 4 * (i - 4));
}

bool Board::Impl::rom_check_instance(std::uint32_t instance, const char* fn) {
  if (instance == 1) return true;
  if (instance == 0) {
    cpu_fault("romapi", fmt::format("ROM API {}(instance 0): instance 0 is FlexSPI1, which has no flash on the "
                                    "RT1064; the real ROM hangs here (wolfBoot PR #497). The internal flash is "
                                    "instance 1 (FlexSPI2)",
                                    fn),
              rreg(UC_ARM_REG_LR));
    return false;
  }
  b.reporter_.report(Severity::kFault, "romapi",
                     fmt::format("ROM API {}(instance {}): invalid instance, returns kStatus_InvalidArgument", fn, instance),
                     rreg(UC_ARM_REG_LR));
  return false;
}

void Board::Impl::rom_call(std::uint32_t address) {
  const unsigned fn = (address - kRomStubs) / 4;
  const std::uint32_t lr = rreg(UC_ARM_REG_LR);
  std::uint32_t result = kStatusSuccess;
  W25Q32& flash = *b.flash_;
  auto finish_blocking = [&](Nanos extra) {
    charge(extra);
    if (flash.busy()) {
      // The ROM polls until the operation ends: complete it now and move the board's time on.
      // Events of other models due meanwhile run when this slice ends (as interrupts pended
      // during the call and taken after it).
      const Nanos end = flash.current_op().end;
      if (end > b.local_time()) b.cycles_ = ns_to_cycles(end);
      flash.finish_now();
    }
  };
  // Code in the flash window must not run around an erase/program: the ROM returns into it and
  // the core's prefetcher fetches from it while the operation is still going on.
  auto caller_in_window = [&](const char* name) {
    if (lr < kWindowBase || lr >= kWindowBase + kWindowSize) return false;
    cpu_fault("flash", fmt::format("read-while-write: ROM {} called from code in the FlexSPI2 window (return address "
                                   "0x{:08X}); the core fetches from the flash while it is being modified. Run flash "
                                   "operations from RAM",
                                   name, lr & ~1u),
              lr);
    return true;
  };
  auto ok_instance = [&](const char* name) {
    const std::uint32_t inst = rreg(UC_ARM_REG_R0);
    if (rom_check_instance(inst, name)) return true;
    result = kStatusInvalidArgument;
    return false;
  };
  switch (fn) {
    case kFnInit: {
      if (!ok_instance("init")) break;
      const std::uint32_t cfg = rom_arg(1);
      std::vector<std::uint8_t> fcb(512);
      if (uc_mem_read(uc, cfg, fcb.data(), fcb.size()) != UC_ERR_OK || le32(fcb, 0) != 0x4246'4346u) {
        b.reporter_.report(Severity::kFault, "romapi",
                           fmt::format("init: config at 0x{:08X} is not a FlexSPI NOR config block (tag 'FCFB')", cfg), lr);
        result = kStatusInvalidArgument;
        break;
      }
      if (cfg >= kWindowBase && cfg < kWindowBase + kWindowSize) {
        b.reporter_.report(Severity::kWarning, "romapi",
                           "init: config read from the flash window while the ROM reconfigures FlexSPI2; copy it to "
                           "RAM first",
                           lr);
      }
      flexspi2->configure_from_fcb(fcb.data());
      ahb_buffer_reset();
      charge(200'000);
      break;
    }
    case kFnGetConfig: {
      if (!ok_instance("get_config")) break;
      rom_get_config(rom_arg(1), rom_arg(2));
      result = rreg(UC_ARM_REG_R0);
      break;
    }
    case kFnProgram: {
      if (!ok_instance("program") || caller_in_window("program")) break;
      const std::uint32_t dst = rom_arg(2);
      const std::uint32_t src = rom_arg(3);
      if (dst >= W25Q32::kSize) {
        result = kStatusInvalidArgument;
        break;
      }
      std::uint8_t page[W25Q32::kPage];
      if (src >= kWindowBase && src < kWindowBase + kWindowSize) {
        b.reporter_.report(Severity::kWarning, "romapi", "program: source buffer in the flash window", lr);
      }
      if (uc_mem_read(uc, src, page, sizeof page) != UC_ERR_OK) {
        cpu_fault("romapi", fmt::format("program: source 0x{:08X} is not readable memory", src), lr);
        break;
      }
      const std::uint32_t aligned = dst & ~(W25Q32::kPage - 1);
      charge(70'000);  // 256 bytes shifted at 30 MHz
      if (!flash.command(0x06, 0, {}, {}, lr) || !flash.command(0x02, aligned, page, {}, lr)) {
        result = kStatusProgramFail;
      }
      finish_blocking(0);
      if (!flash.powered()) result = kStatusProgramFail;
      break;
    }
    case kFnEraseAll: {
      if (!ok_instance("erase_all") || caller_in_window("erase_all")) break;
      if (!flash.command(0x06, 0, {}, {}, lr) || !flash.command(0x60, 0, {}, {}, lr)) result = kStatusEraseAllFail;
      finish_blocking(2'000);
      break;
    }
    case kFnErase: {
      if (!ok_instance("erase") || caller_in_window("erase")) break;
      const std::uint32_t start = rom_arg(2);
      const std::uint32_t length = rom_arg(3);
      if (start >= W25Q32::kSize || length > W25Q32::kSize - start) {
        result = kStatusInvalidArgument;
        break;
      }
      std::uint32_t a = start & ~(W25Q32::kSector - 1);
      const std::uint32_t end = (start + length + W25Q32::kSector - 1) & ~(W25Q32::kSector - 1);
      while (a < end && result == kStatusSuccess) {
        const bool block = (a % 0x1'0000) == 0 && end - a >= 0x1'0000;
        if (!flash.command(0x06, 0, {}, {}, lr) || !flash.command(block ? 0xD8 : 0x20, a, {}, {}, lr)) {
          result = kStatusEraseSectorFail;
        }
        finish_blocking(2'000);
        if (!flash.powered()) result = kStatusEraseSectorFail;
        a += block ? 0x1'0000 : W25Q32::kSector;
      }
      break;
    }
    case kFnRead: {
      if (!ok_instance("read")) break;
      const std::uint32_t dst = rom_arg(2);
      const std::uint32_t addr = rom_arg(3);
      const std::uint32_t len = rom_arg(4);
      if (addr >= W25Q32::kSize || len > W25Q32::kSize - addr) {
        result = kStatusInvalidArgument;
        break;
      }
      std::vector<std::uint8_t> buf(len);
      if (!flash.command(0xEB, addr, {}, buf, lr)) result = kStatusCommandFailure;
      if (uc_mem_write(uc, dst, buf.data(), buf.size()) != UC_ERR_OK) {
        cpu_fault("romapi", fmt::format("read: destination 0x{:08X}+{} is not writable memory", dst, len), lr);
        break;
      }
      charge(2'000 + static_cast<Nanos>(len) * 67);
      break;
    }
    case kFnClearCache:
      if (!ok_instance("clear_cache")) break;
      ahb_buffer_reset();
      charge(1'000);
      result = rreg(UC_ARM_REG_R0);
      break;
    case kFnXfer:
      if (!ok_instance("xfer")) break;
      result = rom_xfer(rom_arg(1), lr);
      if (flash.busy() && caller_in_window("xfer starting an erase/program")) break;
      break;
    case kFnUpdateLut: {
      if (!ok_instance("update_lut")) break;
      const std::uint32_t seq = rom_arg(1);
      const std::uint32_t lut = rom_arg(2);
      const std::uint32_t count = rom_arg(3);
      if (seq >= 16 || count == 0 || count > 16 - seq) {
        result = kStatusInvalidArgument;
        break;
      }
      for (std::uint32_t i = 0; i < 4 * count; ++i) flexspi2->set_lut(4 * seq + i, mem32(lut + 4 * i));
      charge(1'000);
      break;
    }
    case kFnRunBootloader: {
      const std::uint32_t arg = mem32(rreg(UC_ARM_REG_R0));
      b.reporter_.report(Severity::kInfo, "romapi",
                         fmt::format("runBootloader(0x{:08X}): the ROM enters the serial downloader (not modelled)", arg), lr);
      b.state_ = BoardState::kHalted;
      b.stop_reason_ = "runBootloader: serial downloader";
      request_stop(Stop::kFault);
      return;
    }
    default:
      cpu_fault("romapi", fmt::format("call into the boot ROM at 0x{:08X}, which is not an API entry", address), lr);
      return;
  }
  if (b.state_ == BoardState::kHalted) return;
  wreg(UC_ARM_REG_R0, result);
  wreg(UC_ARM_REG_PC, lr | 1);
}

void Board::Impl::rom_get_config(std::uint32_t cfg, std::uint32_t option_addr) {
  const std::uint32_t lr = rreg(UC_ARM_REG_LR);
  const std::uint32_t option0 = mem32(option_addr);
  if ((option0 >> 28) != 0xC) {
    wreg(UC_ARM_REG_R0, kStatusInvalidArgument);
    return;
  }
  const std::uint32_t device_type = (option0 >> 20) & 0xF;
  if (device_type == 1) {
    b.reporter_.report(Severity::kFault, "romapi",
                       "get_config with a DDR option: on the RT1064 this writes a 16-byte test pattern to flash "
                       "offset 0x200 (community report); use an SDR option such as 0xC0000007",
                       lr);
    const std::uint8_t pattern[16] = {0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
                                      0x88, 0x99, 0xAA, 0xBB, 0xCC, 0xDD, 0xEE, 0xFF};
    std::vector<std::uint8_t> page(W25Q32::kPage, 0xFF);
    std::copy(std::begin(pattern), std::end(pattern), page.begin());
    b.flash_->command(0x06, 0, {}, {}, lr);
    b.flash_->command(0x02, 0x200, page, {}, lr);
  } else if (device_type != 0) {
    wreg(UC_ARM_REG_R0, 20107);  // SFDP not found for this device type
    return;
  }
  std::vector<std::uint8_t> fcb(512, 0);
  auto put32 = [&](std::uint32_t off, std::uint32_t v) { std::memcpy(&fcb[off], &v, 4); };
  put32(0x000, 0x4246'4346);
  put32(0x004, 0x5601'0400);
  fcb[0x00C] = 0;  // readSampleClkSrc: internal loopback (the SDK wrapper changes it to 1)
  fcb[0x00D] = 3;
  fcb[0x00E] = 3;
  put32(0x040, 0x10);
  fcb[0x044] = 1;
  fcb[0x045] = 4;
  fcb[0x046] = static_cast<std::uint8_t>(option0 & 0xF);
  put32(0x050, W25Q32::kSize);
  const std::pair<unsigned, std::uint32_t> lut[] = {
      {0, 0x0A18'04EB}, {1, 0x2604'3206}, {4, 0x2404'0405}, {12, 0x0000'0406}, {20, 0x0818'0420},
      {32, 0x0818'04D8}, {36, 0x0818'0402}, {37, 0x0000'2004}, {44, 0x0000'0460}};
  for (const auto& [i, w] : lut) put32(0x80 + 4 * i, w);
  put32(0x1C0, W25Q32::kPage);
  put32(0x1C4, W25Q32::kSector);
  fcb[0x1C8] = 1;
  put32(0x1D0, 0x1'0000);
  if (uc_mem_write(uc, cfg, fcb.data(), fcb.size()) != UC_ERR_OK) {
    cpu_fault("romapi", fmt::format("get_config: config 0x{:08X} is not writable RAM", cfg), lr);
    return;
  }
  charge(2'000'000);
  wreg(UC_ARM_REG_R0, kStatusSuccess);
}

std::uint32_t Board::Impl::rom_xfer(std::uint32_t xfer_addr, std::uint32_t lr) {
  std::uint32_t x[9];
  if (uc_mem_read(uc, xfer_addr, x, sizeof x) != UC_ERR_OK) {
    cpu_fault("romapi", fmt::format("xfer: descriptor 0x{:08X} is not readable", xfer_addr), lr);
    return kStatusInvalidArgument;
  }
  const std::uint32_t operation = x[0] & 0xFF;
  const std::uint32_t address = x[1];
  const std::uint32_t seq_id = x[2];
  const std::uint32_t seq_num = x[3] == 0 ? 1 : x[3];
  const std::uint32_t tx_buf = x[5], tx_size = x[6], rx_buf = x[7], rx_size = x[8];
  if (seq_id >= 16 || seq_num > 16 - seq_id || operation > 3 || tx_size > 0x1'0000 || rx_size > 0x1'0000) {
    return kStatusInvalidArgument;
  }
  std::uint32_t status = kStatusSuccess;
  Nanos cost = 1'000;
  for (std::uint32_t s = seq_id; s < seq_id + seq_num; ++s) {
    int opcode = -1;
    bool has_addr = false, has_write = false, has_read = false;
    for (unsigned i = 0; i < 8; ++i) {
      const std::uint32_t word = flexspi2->lut(4 * s + i / 2);
      const std::uint32_t instr = (i & 1) ? (word >> 16) : (word & 0xFFFF);
      const std::uint32_t op = (instr >> 10) & 0x3F;
      const std::uint32_t operand = instr & 0xFF;
      if (op == 0x00) break;  // STOP
      switch (op) {
        case 0x01: case 0x21:
          if (opcode < 0) opcode = static_cast<int>(operand);
          break;
        case 0x02: case 0x22: has_addr = true; break;
        case 0x08: case 0x28: has_write = true; break;
        case 0x09: case 0x29: has_read = true; break;
        case 0x03: case 0x23: case 0x04: case 0x05: case 0x06: case 0x07: case 0x24: case 0x25: case 0x26:
        case 0x27: case 0x0C: case 0x2C: case 0x0D: case 0x2D: case 0x1F:
          break;
        default:
          b.reporter_.report(Severity::kWarning, "romapi",
                             fmt::format("xfer: LUT sequence {} uses instruction opcode 0x{:02X}, not modelled", s, op), lr);
          break;
      }
    }
    if (opcode < 0) {
      b.reporter_.report(Severity::kFault, "romapi",
                         fmt::format("xfer: LUT sequence {} has no CMD instruction (empty or not loaded)", s), lr);
      return 6001;  // FlexSPI invalid sequence
    }
    std::vector<std::uint8_t> tx;
    if (has_write) {
      if (operation != 2) {
        b.reporter_.report(Severity::kWarning, "romapi",
                           fmt::format("xfer: sequence {} has WRITE but the operation is {} (not kFlexSpiOperation_Write)", s, operation),
                           lr);
      }
      tx.resize(tx_size);
      if (tx_buf >= kWindowBase && tx_buf < kWindowBase + kWindowSize && window_busy) {
        cpu_fault("flash", fmt::format("read-while-write: xfer TX buffer 0x{:08X} is in the flash window while the flash is busy", tx_buf), lr);
        return kStatusCommandFailure;
      }
      if (tx_size > 0 && uc_mem_read(uc, tx_buf, tx.data(), tx.size()) != UC_ERR_OK) {
        cpu_fault("romapi", fmt::format("xfer: TX buffer 0x{:08X} is not readable", tx_buf), lr);
        return kStatusInvalidArgument;
      }
    }
    std::vector<std::uint8_t> rx(has_read ? rx_size : 0);
    if (has_read && operation != 3) {
      b.reporter_.report(Severity::kWarning, "romapi",
                         fmt::format("xfer: sequence {} has READ but the operation is {} (not kFlexSpiOperation_Read)", s, operation), lr);
    }
    const bool accepted = b.flash_->command(static_cast<std::uint8_t>(opcode), has_addr ? address : 0, tx, rx, lr);
    (void)accepted;
    cost += static_cast<Nanos>(1 + (has_addr ? 3 : 0) + tx.size() + rx.size()) * 267;  // 30 MHz, 1 pad
    if (has_read && !rx.empty()) {
      if (uc_mem_write(uc, rx_buf, rx.data(), rx.size()) != UC_ERR_OK) {
        cpu_fault("romapi", fmt::format("xfer: RX buffer 0x{:08X} is not writable", rx_buf), lr);
        return kStatusInvalidArgument;
      }
      // Status polling while the flash is busy: the firmware only waits (idle detector).
      if (opcode == 0x05 && (rx[0] & W25Q32::kStatusBusy)) {
        if (++busy_polls >= 8) {
          busy_polls = 0;
          idle_after_rom = true;  // stopping here would be undone by the PC write below
        }
      }
    }
  }
  charge(cost);
  return status;
}

// ---------------------------------------------------------------------------------------------
// Board

void Board::BoardReporter::report(Severity severity, const std::string& source, const std::string& message,
                                  std::uint32_t pc) {
  Report r{board_.local_time(), severity, source, message, pc};
  if (board_.reports_.size() < 100'000) board_.reports_.push_back(r);
  if (board_.config_.report_sink) {
    board_.config_.report_sink(r);
  } else if (severity != Severity::kInfo) {
    std::fprintf(stderr, "[%s %s] %.6f s %s: %s%s\n", board_.config_.name.c_str(),
                 severity == Severity::kFault ? "FAULT" : "warning", static_cast<double>(r.time) / 1e9, source.c_str(),
                 message.c_str(), pc != 0 ? fmt::format(" (pc 0x{:08X})", pc).c_str() : "");
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
  src_ = std::make_unique<Src>(soc_);
  impl_ = std::make_unique<Impl>(*this);
  impl_->create_peripherals();
  flash_->on_busy_change = [this](bool busy) { impl_->on_flash_busy(busy); };
  flash_->on_modified = [this](std::uint32_t off, std::uint32_t len) { impl_->on_flash_modified(off, len); };
  flash_->on_power_cut = [this](const std::string& what) { power_off(what); };
  std::memcpy(impl_->window.data(), flash_->contents().data(), kWindowSize);
  impl_->reset_models(false);
}

Board::~Board() {
  flash_->on_busy_change = nullptr;
  flash_->on_modified = nullptr;
  flash_->on_power_cut = nullptr;
}

Clock& Board::clock() { return sim_.clock(); }

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
  reporter_.report(Severity::kInfo, "reset", fmt::format("warm reset: {}", why), 0);
  impl_->reset_models(true);
  src_->record_reset(cause);
  state_ = BoardState::kBooting;
  impl_->boot_at = local_time();
}

std::size_t Board::fault_count() const {
  return static_cast<std::size_t>(std::count_if(reports_.begin(), reports_.end(),
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

void Board::attach_peripheral(std::uint32_t base, Peripheral* model) { impl_->attach(base, model); }

can::FlexCan& Board::flexcan(unsigned instance) {
  if (instance < 1 || instance > 3) throw std::out_of_range("FlexCAN instance is 1..3");
  return *impl_->flexcans[instance - 1];
}

void Board::connect_can(can::Bus& bus, unsigned instance) { bus.attach(flexcan(instance)); }

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

std::uint32_t Board::read_u32(std::uint32_t address) { return impl_->mem32(address); }
std::uint32_t Board::pc() const { return impl_->rreg(UC_ARM_REG_PC); }
std::uint32_t Board::reg(int uc_reg) const { return impl_->rreg(uc_reg); }
void Board::set_reg(int uc_reg, std::uint32_t value) { impl_->wreg(uc_reg, value); }

std::uint32_t Board::call(std::uint32_t address, const std::vector<std::uint32_t>& args, Nanos timeout) {
  constexpr std::uint32_t kStub = kDtcmBase + kDtcmSize - 16;
  const std::uint16_t stub[2] = {0xBF30, 0xE7FD};  // wfi; b wfi
  write_memory(kStub, stub, sizeof stub);
  std::uint32_t sp = kStub - 64;
  for (std::size_t i = 4; i < args.size(); ++i) write_memory(sp + 4 * static_cast<std::uint32_t>(i - 4), &args[i], 4);
  for (std::size_t i = 0; i < args.size() && i < 4; ++i) impl_->wreg(UC_ARM_REG_R0 + static_cast<int>(i), args[i]);
  impl_->wreg(UC_ARM_REG_SP, sp);
  impl_->wreg(UC_ARM_REG_LR, kStub | 1);
  impl_->wreg(UC_ARM_REG_PC, address | 1);
  impl_->wreg(UC_ARM_REG_XPSR, 0x0100'0000);
  state_ = BoardState::kRunning;
  const Nanos deadline = sim_.now() + timeout;
  sim_.run_until([this] { return state_ != BoardState::kRunning; }, deadline);
  return impl_->rreg(UC_ARM_REG_R0);
}

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
    if (im.stopped_at_block != 0xFFFF'FFFFu && err == UC_ERR_OK) im.wreg(UC_ARM_REG_PC, im.stopped_at_block | 1);
    if (state_ == BoardState::kOff) return;
    if (err != UC_ERR_OK && state_ == BoardState::kRunning) {
      const std::uint32_t pc = im.rreg(UC_ARM_REG_PC);
      im.cpu_fault("cpu", fmt::format("CPU stopped: {} at pc 0x{:08X} (code block at 0x{:08X})", uc_strerror(err), pc,
                                      im.block_pc),
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

// ---------------------------------------------------------------------------------------------
// Simulation

Simulation::Simulation() { reporter_.sim = this; }

Simulation::~Simulation() {
  boards_.clear();
  buses_.clear();
}

void Simulation::SimReporter::report(Severity severity, const std::string& source, const std::string& message,
                                     std::uint32_t pc) {
  Report r{sim->clock_.now(), severity, source, message, pc};
  if (sink) {
    sink(r);
  } else if (severity != Severity::kInfo) {
    std::fprintf(stderr, "[bus %s] %.6f s %s: %s\n", severity == Severity::kFault ? "FAULT" : "warning",
                 static_cast<double>(r.time) / 1e9, source.c_str(), message.c_str());
  }
}

can::Bus& Simulation::add_bus(std::uint32_t bitrate, const std::string& name) {
  buses_.push_back(std::make_unique<can::Bus>(clock_, reporter_, bitrate, name));
  return *buses_.back();
}

Board& Simulation::add_board(BoardConfig config) {
  boards_.push_back(std::make_unique<Board>(*this, std::move(config)));
  return *boards_.back();
}

void Simulation::step(Nanos t) {
  const Nanos now = clock_.queue_time();
  const Nanos target = std::min({t, std::max(clock_.next_event_time(), now + 1), now + quantum});
  for (auto& b : boards_) b->run_to(target);
  // Boards may have scheduled events before `target`: run the queue only up to the first.
  clock_.advance_to(std::min(target, std::max(clock_.next_event_time(), now + 1)));
}

void Simulation::run_until(Nanos t) {
  while (clock_.queue_time() < t) step(t);
}

bool Simulation::run_until(const std::function<bool()>& done, Nanos deadline) {
  while (!done() && now() < deadline) step(deadline);
  return done();
}

}  // namespace rtcanboot::twin
