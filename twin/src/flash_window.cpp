// The FlexSPI2 AHB window (0x7000_0000): protections that catch read-while-write, reads through a
// stale AHB buffer or cache line, and AHB writes.
#include "board_impl.hpp"

#include <algorithm>

#include <fmt/format.h>

namespace rtcanboot::twin {

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
  const std::uint32_t end_line = std::min<std::uint32_t>(
      (offset + length + kLineSize - 1) / kLineSize, static_cast<std::uint32_t>(line_flags.size()));
  for (std::uint32_t l = first_line; l < end_line; ++l) line_flags[l] |= flags;
  for (std::uint32_t p = offset / kProtPage;
       p < (offset + length + kProtPage - 1) / kProtPage && p < page_prot.size(); ++p) {
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

void Board::Impl::ahb_buffer_reset() {
  clear_line_flags(kLineAhb);
}
void Board::Impl::dcache_invalidate_all() {
  clear_line_flags(kLineDcache);
}
void Board::Impl::icache_invalidate_all() {
  clear_line_flags(kLineIcache);
}

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
      cpu_fault(
          "flash",
          fmt::format("write to the FlexSPI2 flash window at 0x{:08X} (the NOR is written only "
                      "through commands; AHB writes fault) in the code block at 0x{:08X}",
                      addr, pc),
          pc);
      return false;
    }
    if (window_busy) {
      const auto& op = b.flash_->current_op();
      cpu_fault("flash",
                fmt::format(
                    "read-while-write: {} at 0x{:08X} while the flash {} at offset 0x{:06X} is in "
                    "progress (code block at 0x{:08X})",
                    fetch ? "instruction fetch" : "data read", addr,
                    op.kind == W25Q32::OpKind::kProgram ? "page program" : "erase", op.address, pc),
                pc);
      return false;
    }
    const std::uint32_t l = (addr - kWindowBase) / kLineSize;
    const std::uint8_t f = line_flags[l];
    if (f & kLineAhb) {
      cpu_fault(
          "flash",
          fmt::format("stale read: {} at 0x{:08X} after the flash was programmed/erased there, "
                      "without a FlexSPI2 AHB buffer reset (ROM clear_cache or MCR0.SWRESET) "
                      "(code block at 0x{:08X})",
                      fetch ? "instruction fetch" : "data read", addr, pc),
          pc);
      return false;
    }
    if (!fetch && (f & kLineDcache)) {
      cpu_fault("flash",
                fmt::format(
                    "stale read: data read at 0x{:08X} after the flash changed there, with the "
                    "D-cache on and the line not invalidated (SCB DCIMVAC/DCCIMVAC) (code block at "
                    "0x{:08X})",
                    addr, pc),
                pc);
      return false;
    }
    if (fetch && (f & kLineIcache)) {
      cpu_fault(
          "flash",
          fmt::format("stale fetch: instruction fetch at 0x{:08X} after the flash changed there, "
                      "with the I-cache on and not invalidated (ICIALLU) (code block at 0x{:08X})",
                      addr, pc),
          pc);
      return false;
    }
    // The accessed line is fresh but its 1 KiB page still holds stale lines: give up detection
    // for that page (documented granularity) and retry the access.
    const std::uint32_t page = (addr - kWindowBase) / kProtPage;
    for (std::uint32_t i = page * (kProtPage / kLineSize); i < (page + 1) * (kProtPage / kLineSize);
         ++i)
      line_flags[i] = 0;
    refresh_page(page);
    apply_protections();
    (void)size;
    return true;
  }
  if (addr >= kRomBase && addr < kRomBase + kRomSize) {
    cpu_fault("bus",
              fmt::format("write to the boot ROM at 0x{:08X} (code block at 0x{:08X})", addr, pc),
              pc);
    return false;
  }
  cpu_fault("bus", fmt::format("protection fault at 0x{:08X} (code block at 0x{:08X})", addr, pc),
            pc);
  return false;
}

}  // namespace rtcanboot::twin
