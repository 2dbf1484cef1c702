// The boot ROM path: from reset to the image's entry (FCB, IVT, boot data, copy-to-RAM or XIP).
// The NXP sources each behaviour follows are listed in rom/README.md and docs/twin.md.
#include "../board_impl.hpp"

#include <fmt/format.h>

namespace rtcanboot::twin {

namespace {

constexpr Nanos kRomBootTime = 3'000'000;  // boot ROM until the image starts

bool in_ram(std::uint32_t addr, std::uint32_t len) {
  auto inside = [&](std::uint32_t base, std::uint32_t size) {
    return addr >= base && len <= size && addr - base <= size - len;
  };
  return inside(kItcmBase, kItcmSize) || inside(kDtcmBase, kDtcmSize) ||
         inside(kOcramBase, kOcramSize);
}

// The NXP flashloader's SDR clock table (fact sheet §2.4, S17): PLL3 PFD0 FRAC and
// FLEXSPI2 PODF for the clock codes 1..9 of the RT106x table (30 .. 166 MHz).
struct SerialClock {
  unsigned frac;
  unsigned podf;  // divider - 1
};
constexpr SerialClock kFlashloaderTable[] = {{34, 7}, {22, 7}, {24, 5}, {30, 3}, {18, 5},
                                             {12, 6}, {18, 3}, {13, 4}, {13, 3}};
constexpr std::uint32_t kW25q32jvMaxHz = 133'000'000;

}  // namespace

bool Board::Impl::apply_serial_clock(std::uint8_t code, const char* who) {
  if (code == 0) return true;  // "no change"
  // The SDK enum's 7, 8, 9 are the table's 133, 166 MHz and 200 MHz (not in the table: the twin
  // keeps the 166 MHz setting and reports the 200 MHz the code names).
  unsigned index = code;
  std::uint32_t named_hz = 0;
  if (b.config_.readings.serial_clk_code == SerialClkCode::kSdkEnum && code >= 7) {
    index = code + 1;
    if (code >= 9) {
      index = 9;
      named_hz = 200'000'000;
    }
  }
  if (index > 9) index = 9;
  const SerialClock& clock = kFlashloaderTable[index - 1];
  analog->set_pll3_pfd_frac(0, clock.frac);
  b.ccm_->select_flexspi2_pll3_pfd0(clock.podf);
  const std::uint32_t hz = named_hz != 0 ? named_hz : b.ccm_->flexspi2_root_hz();
  if (hz > kW25q32jvMaxHz) {
    b.reporter_.report(
        Severity::kFault, who,
        fmt::format("serialClkFreq code {} sets the FlexSPI2 serial clock to {:.1f} MHz ({} "
                    "reading), above the W25Q32JV's 133 MHz: its reads are not reliable",
                    code, hz / 1e6,
                    b.config_.readings.serial_clk_code == SerialClkCode::kSdkEnum ? "SDK enum"
                                                                                  : "RT106x table"),
        0);
    return false;
  }
  return true;
}

bool Board::Impl::rom_boot_image(std::string* why) {
  const auto flash = b.flash_->contents();
  const std::uint32_t tag = le32(flash, 0);
  if (tag != 0x4246'4346u) {
    *why = fmt::format(
        "FCB tag at flash offset 0 is 0x{:08X}, expected 0x42464346 ('FCFB'): the boot ROM "
        "does not boot (it would enter the serial downloader)",
        tag);
    return false;
  }
  const std::uint32_t version = le32(flash, 4);
  if ((version >> 24) != 0x56) {
    b.reporter_.report(Severity::kWarning, "bootrom",
                       fmt::format("FCB version 0x{:08X} does not start with 'V' (0x56)", version),
                       0);
  }
  if (flash[0x44] != 1) {
    *why = fmt::format("FCB deviceType is {} (expected 1 = serial NOR)", flash[0x44]);
    return false;
  }
  // The read sequence 0 must issue a read command the flash understands.
  const std::uint32_t lut0 = le32(flash, 0x80);
  const std::uint32_t op0 = (lut0 >> 10) & 0x3F;
  const std::uint32_t cmd0 = lut0 & 0xFF;
  if ((op0 != 0x01 && op0 != 0x21) || (cmd0 != 0x03 && cmd0 != 0x0B && cmd0 != 0xEB &&
                                       cmd0 != 0x6B && cmd0 != 0xBB && cmd0 != 0x3B)) {
    *why = fmt::format(
        "FCB LUT sequence 0 (read) starts with 0x{:04X}, not a read command of the W25Q32JV",
        lut0 & 0xFFFF);
    return false;
  }
  const std::uint32_t hdr = le32(flash, 0x1000);
  const std::uint32_t ivt_len = ((hdr >> 8) & 0xFF) << 8 | ((hdr >> 16) & 0xFF);
  const std::uint32_t ivt_ver = hdr >> 24;
  if ((hdr & 0xFF) != 0xD1 || ivt_len != 0x20 || ivt_ver < 0x40 || ivt_ver > 0x43) {
    *why = fmt::format(
        "IVT header at flash offset 0x1000 is 0x{:08X}, expected tag 0xD1, length 0x0020 and "
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
    *why = fmt::format(
        "IVT boot_data 0x{:08X} does not point into the image header after the IVT (self 0x{:08X})",
        boot_data, self);
    return false;
  }
  const std::uint32_t bd_off = 0x1000 + (boot_data - self);
  const std::uint32_t start = le32(flash, bd_off);
  const std::uint32_t size = le32(flash, bd_off + 4);
  const std::uint32_t plugin = le32(flash, bd_off + 8);
  if (start != load) {
    *why = fmt::format(
        "boot data start 0x{:08X} does not match the IVT self address 0x{:08X} - 0x1000", start,
        self);
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
    b.reporter_.report(Severity::kWarning, "bootrom",
                       "IVT csf is set: HAB authentication is not modelled (open part)", 0);
  }
  if (dcd != 0) {
    b.reporter_.report(
        Severity::kWarning, "bootrom",
        fmt::format("IVT names a DCD at 0x{:08X}: DCD commands are not executed by the twin", dcd),
        0);
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
    *why = fmt::format(
        "boot data start 0x{:08X} (size 0x{:X}) is neither the FlexSPI2 base (XIP) nor RAM", start,
        size);
    return false;
  }
  auto image_covers = [&](std::uint32_t a, std::uint32_t n) {
    return a >= start && a - start <= size - n;
  };
  flexspi2->init_from_fcb(flash.data());  // sequence 0 only, as ROM init (rom/rom_api.cpp)
  if (!apply_serial_clock(flash[0x46], "bootrom")) {
    *why = "the FCB's serial clock is above the flash's maximum (see the fault report)";
    return false;
  }
  std::uint32_t sp = 0, pc = 0;
  if (entry & 1) {
    if (!image_covers(entry & ~1u, 2) && !in_ram(entry & ~1u, 2)) {
      *why =
          fmt::format("IVT entry 0x{:08X} (a Thumb function) is outside the image and RAM", entry);
      return false;
    }
    pc = entry;
    sp = kRomStackTop;
  } else {
    if (!image_covers(entry, 8)) {
      *why = fmt::format("IVT entry 0x{:08X} (a vector table) is outside the image 0x{:08X}+0x{:X}",
                         entry, start, size);
      return false;
    }
    sp = mem32(entry);
    pc = mem32(entry + 4);
    if ((pc & 1) == 0) {
      *why = fmt::format(
          "reset vector 0x{:08X} in the vector table at 0x{:08X} lacks the Thumb bit", pc, entry);
      return false;
    }
    if (!in_ram(sp - 4, 4) && sp != kDtcmBase + kDtcmSize && sp != kOcramBase + kOcramSize &&
        sp != kItcmBase + kItcmSize) {
      *why = fmt::format("initial SP 0x{:08X} in the vector table at 0x{:08X} is not in RAM", sp,
                         entry);
      return false;
    }
    if (b.config_.readings.ivt_entry_sp == IvtEntrySp::kRomStackKept) sp = kRomStackTop;
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

}  // namespace rtcanboot::twin
