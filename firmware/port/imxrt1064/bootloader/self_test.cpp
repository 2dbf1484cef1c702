#include "self_test.hpp"

#include "rtcanboot/imxrt1064/board.hpp"
#include "rtcanboot/imxrt1064/console.hpp"
#include "rtcanboot/imxrt1064/handover.hpp"
#include "rtcanboot/imxrt1064/registers.hpp"
#include "rtcanboot/memory_map.hpp"

namespace rtcanboot::imxrt1064 {

namespace {

namespace mm = memory_map;

// The report: plain text in a fixed buffer (no heap, no printf); what does not fit is cut.
class Report {
 public:
  void clear() {
    length_ = 0;
    text_[0] = '\0';
  }
  Report& add(const char* text) {
    while (*text != '\0') put(*text++);
    return *this;
  }
  Report& decimal(std::uint32_t value) {
    char digits[10];
    int count = 0;
    do {
      digits[count++] = static_cast<char>('0' + value % 10);
      value /= 10;
    } while (value != 0);
    while (count > 0) put(digits[--count]);
    return *this;
  }
  // `value` in thousandths, printed with `decimals` (1..3) digits after the point.
  Report& fixed(std::uint32_t thousandths, int decimals) {
    decimal(thousandths / 1000);
    put('.');
    std::uint32_t fraction = thousandths % 1000;
    for (int i = 0; i < decimals; ++i) {
      put(static_cast<char>('0' + fraction / 100));
      fraction = (fraction % 100) * 10;
    }
    return *this;
  }
  Report& mhz(std::uint32_t hz) { return fixed(hz / 1000, 1).add(" MHz"); }
  Report& hex(std::uint32_t value, int digits) {
    constexpr char kDigits[] = "0123456789ABCDEF";
    for (int i = digits - 1; i >= 0; --i) put(kDigits[(value >> (4 * i)) & 0xF]);
    return *this;
  }
  Report& id_bytes(std::uint32_t id) {
    return hex(id & 0xFF, 2).add(" ").hex((id >> 8) & 0xFF, 2).add(" ").hex((id >> 16) & 0xFF, 2);
  }
  const char* line_start() const { return text_ + line_start_; }
  void begin_line() { line_start_ = length_; }
  const char* text() const { return text_; }

 private:
  void put(char c) {
    if (length_ + 1 >= sizeof(text_)) return;
    text_[length_++] = c;
    text_[length_] = '\0';
  }
  char text_[2048] = {};
  std::uint32_t length_ = 0;
  std::uint32_t line_start_ = 0;
};

Report g_report;
std::uint32_t g_failed = 0;

// Starts line `check`; finish() ends it.
Report& begin(SelfTestCheck check, bool pass, const char* what) {
  g_report.begin_line();
  if (!pass) g_failed |= 1U << (static_cast<std::uint32_t>(check) - 1);
  return g_report.decimal(static_cast<std::uint32_t>(check))
      .add(pass ? " pass  " : " FAIL  ")
      .add(what)
      .add(": ");
}

void finish() {
  g_report.add("\n");
  console_write("rtcanboot: selftest ");
  console_write(g_report.line_start());
}

std::uint32_t pll3_hz() {
  const std::uint32_t pll = reg32(ccm_analog::kPllUsb1);
  if ((pll & ccm_analog::kPllBypass) != 0) return 24'000'000;
  if ((pll & ccm_analog::kPllPower) == 0 || (pll & ccm_analog::kPllEnable) == 0) return 0;
  return (pll & ccm_analog::kPllDivSelect) != 0 ? 528'000'000 : 480'000'000;
}

std::uint32_t pfd_hz(std::uint32_t pll_hz, Address pfd_register, std::uint32_t pfd) {
  const std::uint32_t field = reg32(pfd_register) >> (8 * pfd);
  const std::uint32_t frac = field & 0x3F;
  if ((field & 0x80) != 0 || frac < 12) return 0;  // gated, or outside FRAC's 12..35
  return static_cast<std::uint32_t>(std::uint64_t{pll_hz} * 18 / frac);
}

std::uint32_t flexspi2_root_hz() {
  const std::uint32_t cbcmr = reg32(ccm::kCbcmr);
  std::uint32_t base = 0;
  switch ((cbcmr >> ccm::kFlexspi2ClkSelShift) & 3) {
    case 0:
      base = pfd_hz(528'000'000, ccm_analog::kPfd528, 2);
      break;
    case 1:
      base = pfd_hz(pll3_hz(), ccm_analog::kPfd480, 0);
      break;
    case 2:
      base = pfd_hz(pll3_hz(), ccm_analog::kPfd480, 1);
      break;
    default:
      base = 528'000'000;
      break;
  }
  return base / ((cbcmr >> ccm::kFlexspi2PodfShift) + 1);
}

std::uint32_t can_root_hz() {
  const std::uint32_t cscmr2 = reg32(ccm::kCscmr2);
  const std::uint32_t podf = (cscmr2 & ccm::kCanClkPodfMask) >> ccm::kCanClkPodfShift;
  switch ((cscmr2 & ccm::kCanClkSelMask) >> ccm::kCanClkSelShift) {
    case 0:
      return pll3_hz() / 8 / (podf + 1);
    case 1:
      return 24'000'000 / (podf + 1);
    case 2:
      return pll3_hz() / 6 / (podf + 1);
    default:
      return 0;
  }
}

std::uint32_t uart_root_hz() {
  const std::uint32_t cscdr1 = reg32(ccm::kCscdr1);
  const std::uint32_t base = (cscdr1 & ccm::kUartClkSelOsc) != 0 ? 24'000'000 : pll3_hz() / 6;
  return base / ((cscdr1 & ccm::kUartClkPodfMask) + 1);
}

void check_jedec(RomFlash& flash) {
  const std::uint32_t id = flash.read_jedec_id();
  Report& line = begin(SelfTestCheck::kJedecId, id == RomFlash::kJedecId, "flash JEDEC ID");
  if (id == 0) {
    line.add("unreadable");
  } else {
    line.id_bytes(id);
  }
  line.add(" (expected ").id_bytes(RomFlash::kJedecId).add(", W25Q32JV)");
  finish();
}

void check_sfdp(RomFlash& flash) {
  constexpr std::uint32_t kSignature = 0x5044'4653;  // "SFDP"
  constexpr std::uint32_t kExpectedBits = mm::kFlashSize * 8;
  std::uint32_t header[4] = {};
  std::uint32_t density = 0;
  const bool header_read = flash.read_sfdp(0, header, sizeof(header));
  const bool signed_ok = header_read && header[0] == kSignature;
  const std::uint32_t table = header[3] & 0x00FF'FFFF;  // parameter header 0: table pointer
  const bool density_read = signed_ok && flash.read_sfdp(table + 4, &density, 4);
  // JESD216 density: bit 31 clear = bits - 1; set = 2^N bits.
  const std::uint32_t bits = (density & 0x8000'0000U) != 0
                                 ? ((density & 0x7FFF'FFFF) < 32 ? 1U << (density & 0x1F) : 0)
                                 : density + 1;
  const bool pass = density_read && bits == kExpectedBits;
  Report& line = begin(SelfTestCheck::kSfdp, pass, "flash SFDP");
  if (!header_read) {
    line.add("unreadable");
  } else if (!signed_ok) {
    line.add("no SFDP signature (read ").hex(header[0], 8).add(")");
  } else {
    line.add("signature SFDP, revision ")
        .decimal((header[1] >> 8) & 0xFF)
        .add(".")
        .decimal(header[1] & 0xFF)
        .add(", density ");
    if (density_read) {
      line.decimal(bits / (1024 * 1024)).add(" Mbit");
    } else {
      line.add("unreadable");
    }
  }
  line.add(" (expected SFDP, ").decimal(kExpectedBits / (1024 * 1024)).add(" Mbit)");
  finish();
}

// Waits for the flash operation in progress; its result.
FlashResult wait(RomFlash& flash, const SelfTestInputs& inputs) {
  while (flash.busy()) {
    if (!inputs.watchdogs_off) service_watchdogs();
    spin_cycles(6000);  // about 10 us between status reads
  }
  return flash.last_result();
}

bool sector_blank(RomFlash& flash) {
  std::uint32_t chunk[64];
  for (std::uint32_t at = 0; at < mm::kSectorSize; at += sizeof(chunk)) {
    if (flash.read(mm::kSelfTestScratchOffset + at, chunk, sizeof(chunk)) != FlashResult::kOk) {
      return false;
    }
    for (const std::uint32_t word : chunk) {
      if (word != 0xFFFF'FFFF) return false;
    }
  }
  return true;
}

const char* result_name(FlashResult result) {
  switch (result) {
    case FlashResult::kOk:
      return "ok";
    case FlashResult::kBusy:
      return "busy";
    case FlashResult::kTimeout:
      return "timed out";
    case FlashResult::kProtected:
      return "refused (protected)";
    case FlashResult::kInvalidArgument:
      return "refused (invalid argument)";
    default:
      return "failed (ROM status on the console)";
  }
}

struct ScratchOutcome {
  const char* problem = nullptr;  // nullptr: verified
  FlashResult result = FlashResult::kOk;
  Micros erase_us = 0;
};

// Erase, blank check, program one page, read back, erase again, blank check.
ScratchOutcome exercise_scratch(RomFlash& flash, const SelfTestInputs& inputs, Timebase& clock) {
  constexpr std::uint32_t kOffset = mm::kSelfTestScratchOffset;
  ScratchOutcome out;
  auto erase = [&](const char* what) {
    const Micros start = clock.now();
    out.result = flash.start_erase(kOffset, mm::kSectorSize);
    if (out.result == FlashResult::kOk) out.result = wait(flash, inputs);
    if (out.result != FlashResult::kOk) {
      out.problem = what;
      return false;
    }
    if (out.erase_us == 0) out.erase_us = clock.now() - start;
    if (!sector_blank(flash)) {
      out.problem = "sector not blank after the erase";
      return false;
    }
    return true;
  };
  if (!erase("erase ")) return out;
  std::uint8_t page[mm::kPageSize];
  for (std::uint32_t i = 0; i < mm::kPageSize; ++i) {
    page[i] = static_cast<std::uint8_t>(i * 7 + 0x5A);
  }
  out.result = flash.start_program(kOffset, page);
  if (out.result == FlashResult::kOk) out.result = wait(flash, inputs);
  if (out.result != FlashResult::kOk) {
    out.problem = "program ";
    return out;
  }
  std::uint8_t back[mm::kPageSize];
  if (flash.read(kOffset, back, sizeof(back)) != FlashResult::kOk) {
    out.problem = "read back failed";
    return out;
  }
  for (std::uint32_t i = 0; i < mm::kPageSize; ++i) {
    if (back[i] != page[i]) {
      out.problem = "read back differs from the programmed page";
      return out;
    }
  }
  erase("second erase ");  // leaves the sector as it found it: erased
  return out;
}

void check_scratch(RomFlash& flash, const SelfTestInputs& inputs, Timebase& clock) {
  const ScratchOutcome out = exercise_scratch(flash, inputs, clock);
  Report& line = begin(SelfTestCheck::kScratchSector, out.problem == nullptr, "scratch sector");
  line.add("0x").hex(mm::kSelfTestScratchOffset, 6).add(" ");
  if (out.problem == nullptr) {
    line.add("erased in ")
        .decimal(static_cast<std::uint32_t>(out.erase_us / 1000))
        .add(" ms, 256 bytes programmed, read back, erased again");
  } else {
    line.add(out.problem);
    if (out.result != FlashResult::kOk) line.add(result_name(out.result));
  }
  line.add(" (expected verified)");
  finish();
}

void check_lut(const RomFlash& flash) {
  std::uint32_t first = 0;
  const std::uint32_t differ = flash.lut_mismatches(&first);
  Report& line = begin(SelfTestCheck::kLut, differ == 0, "FlexSPI2 LUT");
  if (differ == 0) {
    line.decimal(RomFlash::lut_words_loaded())
        .add(" words of the sequences the port loaded read back");
  } else {
    line.decimal(differ)
        .add(" of ")
        .decimal(RomFlash::lut_words_loaded())
        .add(" words differ, first word ")
        .decimal(first)
        .add(" (sequence ")
        .decimal(first / 4)
        .add(")");
  }
  line.add(" (expected as loaded)");
  finish();
}

void check_pll3() {
  const std::uint32_t pll = reg32(ccm_analog::kPllUsb1);
  const bool powered = (pll & ccm_analog::kPllPower) != 0 && (pll & ccm_analog::kPllEnable) != 0;
  const bool bypassed = (pll & ccm_analog::kPllBypass) != 0;
  const bool locked = (pll & ccm_analog::kPllLock) != 0;
  Report& line = begin(SelfTestCheck::kPll3, powered && locked && !bypassed, "PLL3 (USB1 PLL)");
  if (bypassed) {
    line.add("bypassed");
  } else if (!powered) {
    line.add("powered down");
  } else if (!locked) {
    line.add("not locked");
  } else {
    line.add("locked, ").mhz(pll3_hz());
  }
  line.add(", PLL_USB1 ")
      .hex(pll, 8)
      .add(" (expected locked, not bypassed; CAN and console do not use it)");
  finish();
}

void check_flexspi_clock() {
  // FCB serialClkFreq 7 is 120 MHz in the RT106x tables (fact sheet §2.4; 133 MHz per the SDK).
  constexpr std::uint32_t kExpectedHz = 120'000'000;
  const std::uint32_t hz = flexspi2_root_hz();
  const bool pass = hz >= kExpectedHz - 1'000'000 && hz <= kExpectedHz + 1'000'000;
  const std::uint32_t cbcmr = reg32(ccm::kCbcmr);
  Report& line = begin(SelfTestCheck::kFlexspiClock, pass, "FlexSPI2 serial clock");
  line.mhz(hz)
      .add(", CBCMR FLEXSPI2_CLK_SEL ")
      .decimal((cbcmr >> ccm::kFlexspi2ClkSelShift) & 3)
      .add(", divider ")
      .decimal((cbcmr >> ccm::kFlexspi2PodfShift) + 1)
      .add(" (expected ")
      .mhz(kExpectedHz)
      .add(" for FCB code 7, at most 133 MHz)");
  finish();
}

void check_can_clock(const SelfTestInputs& inputs) {
  const std::uint32_t hz = can_root_hz();
  Report& line =
      begin(SelfTestCheck::kCanClock, hz == board::kCanClockHz && inputs.clock_problem == nullptr,
            "CAN clock root");
  line.mhz(hz);
  if (inputs.clock_problem != nullptr) line.add(", ").add(inputs.clock_problem);
  line.add(" (expected ").mhz(board::kCanClockHz).add(")");
  finish();
}

void check_uart_clock() {
  const std::uint32_t hz = uart_root_hz();
  Report& line = begin(SelfTestCheck::kUartClock, hz == board::kUartClockHz, "console clock root");
  line.mhz(hz).add(" (expected ").mhz(board::kUartClockHz).add(")");
  finish();
}

void check_bit_timing(const SelfTestInputs& inputs, const FlexCan& can) {
  const CanBitTiming timing = can.timing_in_use();
  const std::uint32_t quanta = timing.quanta();
  const std::uint32_t clock_hz = can_root_hz();
  const std::uint32_t bitrate = clock_hz / (timing.prescaler * quanta);
  const std::uint32_t sample_permille = (1U + timing.propagation + timing.phase1) * 1000 / quanta;
  const bool exact = clock_hz % (timing.prescaler * quanta) == 0;
  const bool pass = inputs.can_started && exact && bitrate == inputs.bitrate &&
                    sample_permille >= 750 && sample_permille <= 900;
  Report& line = begin(SelfTestCheck::kBitTiming, pass, "FlexCAN bit timing");
  if (!inputs.can_started) {
    line.add("controller not started");
  } else {
    line.decimal(bitrate)
        .add(exact ? "" : " (inexact)")
        .add(" bit/s, prescaler ")
        .decimal(timing.prescaler)
        .add(", ")
        .decimal(quanta)
        .add(" tq, sample point ")
        .fixed(sample_permille * 100, 1)
        .add(" %");
  }
  line.add(" (expected ").decimal(inputs.bitrate).add(" bit/s, sample point 75..90 %)");
  finish();
}

void check_carrier(SelfTestCheck check, const SelfTestInputs& inputs, std::uint32_t carrier,
                   const char* what) {
  const bool kept = (inputs.entry_carriers & carrier) != 0;
  Report& line = begin(check, kept, what);
  line.add(kept ? "kept" : "cleared").add(" the request over the software reset (expected kept)");
  finish();
}

void check_watchdogs(const SelfTestInputs& inputs) {
  const WatchdogState& found = inputs.watchdogs_at_entry;
  const bool none = !found.wdog1_on() && !found.wdog2_on() && !found.rtwdog_on();
  Report& line = begin(SelfTestCheck::kWatchdogsAtEntry, none, "watchdogs left by the boot ROM");
  if (none) line.add("none");
  if (found.wdog1_on()) {
    line.add("WDOG1 (WT ").decimal((found.wdog1_wcr >> 8) & 0xFF).add(") ");
  }
  if (found.wdog2_on()) {
    line.add("WDOG2 (WT ").decimal((found.wdog2_wcr >> 8) & 0xFF).add(") ");
  }
  if (found.rtwdog_on()) line.add("RTWDOG (TOVAL ").decimal(found.rtwdog_toval & 0xFFFF).add(") ");
  if (!none) {
    line.add(inputs.watchdogs_off ? "- all off now"
                                  : "- WDOG1/2 write-once: now 128 s and serviced, RTWDOG off");
  }
  line.add(" (expected none)");
  finish();
}

}  // namespace

SelfTestResult run_self_test(const SelfTestInputs& inputs, RomFlash& flash, const FlexCan& can,
                             Timebase& clock) {
  g_report.clear();
  g_failed = 0;
  console_write("rtcanboot: self-test (docs/bring-up.md)\n");
  check_jedec(flash);
  check_sfdp(flash);
  check_scratch(flash, inputs, clock);
  check_lut(flash);
  check_pll3();
  check_flexspi_clock();
  check_can_clock(inputs);
  check_uart_clock();
  check_bit_timing(inputs, can);
  check_carrier(SelfTestCheck::kSrcGprOverReset, inputs, handover::kCarrierSrcGpr, "SRC_GPR5");
  check_carrier(SelfTestCheck::kSnvsOverReset, inputs, handover::kCarrierSnvs, "SNVS LPGPR0");
  check_watchdogs(inputs);
  std::uint32_t failed = 0;
  for (std::uint32_t bits = g_failed; bits != 0; bits &= bits - 1) ++failed;
  console_write("rtcanboot: self-test ");
  if (failed == 0) {
    console_write("passed\n");
  } else {
    console_write_decimal(failed);
    console_write(" of ");
    console_write_decimal(kSelfTestChecks);
    console_write(" checks failed\n");
  }
  SelfTestResult result;
  result.state = failed == 0 ? canopen::SelfTestState::kPassed : canopen::SelfTestState::kFailed;
  result.failed = g_failed;
  result.report = g_report.text();
  return result;
}

}  // namespace rtcanboot::imxrt1064
