// confirm(): the application tells the bootloader that the installed image runs. It appends a
// CONFIRM record to the install journal with one page program through the boot ROM's blocking
// FlexSPI NOR `program` call, made from ITCM with interrupts masked (nothing may fetch from the
// QSPI flash meanwhile), then turns the trial watchdog off. docs/trial-boot.md.
#include <cstdint>

#include "rtcanboot/app_kit.hpp"
#include "rtcanboot/flash_port.hpp"
#include "rtcanboot/imxrt1064/boot_header.hpp"
#include "rtcanboot/imxrt1064/cortex_m7.hpp"
#include "rtcanboot/imxrt1064/rom_api.hpp"
#include "rtcanboot/imxrt1064/system.hpp"
#include "rtcanboot/install_journal.hpp"
#include "rtcanboot/memory_map.hpp"

namespace rtcanboot::app_kit {
namespace {

namespace mm = memory_map;
namespace rom = imxrt1064::rom;

// The ROM's program call reads the FlexSPI NOR configuration: a RAM copy of the bootloader's FCB.
alignas(4) imxrt1064::FlexspiNorConfig g_config;
alignas(4) std::uint32_t g_page[mm::kPageSize / 4];

RTCANBOOT_RAMFUNC std::int32_t program_page_from_ram(const rom::NorDriver* driver,
                                                     std::uint32_t offset) {
  const bool was_masked = imxrt1064::primask() != 0;
  imxrt1064::disable_irq();
  const std::int32_t status = driver->program(rom::kFlexspi2Instance, &g_config, offset, g_page);
  driver->clear_cache(rom::kFlexspi2Instance);  // the AHB buffers may hold the old bytes
  imxrt1064::dsb();
  imxrt1064::isb();
  if (!was_masked) imxrt1064::enable_irq();
  return status;
}

// The journal's flash as the application sees it: reads through the memory-mapped window,
// one page program at a time, never an erase (the bootloader left an erased page for us).
class JournalFlash final : public FlashPort {
 public:
  explicit JournalFlash(const rom::NorDriver* driver) : driver_(driver) {}

  FlashResult start_erase(std::uint32_t, std::uint32_t) override {
    return result_ = FlashResult::kProtected;
  }
  FlashResult start_program(std::uint32_t offset, const std::uint8_t* page) override {
    if (!in_journal(offset, mm::kPageSize) || offset % mm::kPageSize != 0) {
      return FlashResult::kProtected;
    }
    auto* words = reinterpret_cast<std::uint8_t*>(g_page);
    for (std::uint32_t i = 0; i < mm::kPageSize; ++i) words[i] = page[i];
    const std::int32_t status = program_page_from_ram(driver_, offset);
    imxrt1064::dcache_invalidate_range(mm::kFlashBase + offset, mm::kPageSize);
    result_ = status == rom::kStatusSuccess ? FlashResult::kOk : FlashResult::kFailed;
    return FlashResult::kOk;  // started, and already finished: busy() is false
  }
  bool busy() override { return false; }
  FlashResult last_result() const override { return result_; }
  FlashResult read(std::uint32_t offset, void* destination, std::uint32_t length) override {
    if (offset >= mm::kFlashSize || length > mm::kFlashSize - offset) {
      return FlashResult::kInvalidArgument;
    }
    const auto* source = reinterpret_cast<const volatile std::uint8_t*>(mm::kFlashBase + offset);
    auto* target = static_cast<std::uint8_t*>(destination);
    for (std::uint32_t i = 0; i < length; ++i) target[i] = source[i];
    return FlashResult::kOk;
  }

 private:
  static bool in_journal(std::uint32_t offset, std::uint32_t length) {
    constexpr std::uint32_t kEnd = mm::kJournalOffset + mm::kJournalSectors * mm::kSectorSize;
    return offset >= mm::kJournalOffset && offset < kEnd && length <= kEnd - offset;
  }

  const rom::NorDriver* driver_;
  FlashResult result_ = FlashResult::kOk;
};

}  // namespace

ConfirmResult confirm() {
  BootInfo info;
  if (!boot_info(info)) return ConfirmResult::kNotStartedByBootloader;
  const rom::NorDriver* driver = rom::nor_driver();
  JournalFlash flash(driver);
  journal::InstallJournal journal(flash);
  journal.load();
  const journal::InstalledImage& image = journal.installed();
  // Only the image the bootloader started may confirm itself.
  if (!image.valid || image.payload_crc32 != info.software_id) return ConfirmResult::kNotInstalled;
  if (image.confirmed) {
    imxrt1064::disarm_trial_watchdog();
    return ConfirmResult::kAlreadyConfirmed;
  }
  const auto* fcb = reinterpret_cast<const volatile std::uint8_t*>(mm::kFlashBase);
  auto* config = reinterpret_cast<std::uint8_t*>(&g_config);
  for (std::uint32_t i = 0; i < sizeof g_config; ++i) config[i] = fcb[i];
  if (!journal.append_confirm()) return ConfirmResult::kFlashError;
  // Each poll is one step (find the page, program it, read it back): a handful at most.
  for (int step = 0; step < 2 * static_cast<int>(journal::kSlotsPerSector) && journal.busy();
       ++step) {
    journal.poll();
  }
  if (journal.busy() || journal.failed() || !journal.installed().confirmed) {
    return ConfirmResult::kFlashError;
  }
  imxrt1064::disarm_trial_watchdog();
  return ConfirmResult::kConfirmed;
}

std::uint32_t installed_security_counter() {
  JournalFlash flash(rom::nor_driver());  // only read
  journal::InstallJournal journal(flash);
  journal.load();
  return journal.installed().security_counter;
}

const char* describe(ConfirmResult result) {
  switch (result) {
    case ConfirmResult::kConfirmed:
      return "confirmed";
    case ConfirmResult::kAlreadyConfirmed:
      return "already confirmed";
    case ConfirmResult::kNotStartedByBootloader:
      return "not started by the bootloader";
    case ConfirmResult::kNotInstalled:
      return "not the installed image";
    case ConfirmResult::kFlashError:
      return "the confirm record could not be written";
  }
  return "unknown";
}

}  // namespace rtcanboot::app_kit
