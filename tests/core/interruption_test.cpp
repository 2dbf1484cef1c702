// The core-level interruption test: power is cut before every mutating flash operation of an
// update and in the middle of each one (torn page, partly erased sector); the core then boots
// again on the same flash. It must always come up with the old valid application or in the
// bootloader with "no valid program" - never with a half-written application marked valid - and
// the bootloader region stays untouched. Sampled runs then download again and must succeed.
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "core_rig.hpp"
#include "image_builder.hpp"
#include "rtcanboot/bootloader.hpp"
#include "rtcanboot/hash.hpp"
#include "rtcanboot/install_journal.hpp"
#include "rtcanboot/memory_map.hpp"
#include "strict_flash.hpp"

namespace rtcanboot {
namespace {

using canopen::BootReason;
using test::CoreRig;
using test::NorFlashFake;
namespace mm = memory_map;
namespace od = canopen::od;
using Bytes = std::vector<std::uint8_t>;

enum class Plan {
  kDownloadOverOld,
  kClearThenDownload,
  kDownloadAtJournalSwitch,
  kLargeImage,
  kSparseOverOld,  // a sparse container: sectors 1 and 3 of the old application changed
};

// The old application spans five 4 KiB sectors; the new one eight (30 KB), or for kLargeImage a
// 64 KiB block and more (there only erases, records and every 16th page are cut, to keep the
// run short; the other plans cut at every operation).
struct Images {
  explicit Images(std::uint32_t new_length)
      : new_payload(test::make_payload(new_length, 12)),
        new_container(test::make_container(new_payload, 2)) {}
  // The old application with two sectors changed, sent as a sparse container of those two.
  struct SparseTag {};
  explicit Images(SparseTag) : new_payload(old_payload) {
    new_payload[1 * image::kSectorSize + 10] ^= 0xFF;
    new_payload[3 * image::kSectorSize + 99] ^= 0xFF;
    new_container = test::make_sparse_container(new_payload, test::runs({{1, 1}, {3, 1}}), 2);
  }
  Bytes old_payload = test::make_payload(20'000, 11);
  Bytes new_payload;
  Bytes new_container;
};

Plan current_plan = Plan::kDownloadOverOld;

const Images& images() {
  static const Images small(30'000);
  static const Images large(70'000);
  static const Images sparse(Images::SparseTag{});
  if (current_plan == Plan::kSparseOverOld) return sparse;
  return current_plan == Plan::kLargeImage ? large : small;
}

std::string name(Plan plan) {
  switch (plan) {
    case Plan::kDownloadOverOld:
      return "download over the old application";
    case Plan::kClearThenDownload:
      return "clear, then download";
    case Plan::kDownloadAtJournalSwitch:
      return "download while the journal changes sectors";
    case Plan::kLargeImage:
      return "download of an image with a 64 KiB block (sampled cuts)";
    case Plan::kSparseOverOld:
      return "sparse download of two changed sectors over the old application";
  }
  return "?";
}

// A device with the bootloader and the old application installed (committed), as after a
// successful earlier update.
std::unique_ptr<NorFlashFake> device_with_old_application(Plan plan) {
  auto flash = std::make_unique<NorFlashFake>(test::NorTiming::typical());
  for (std::uint32_t i = 0; i < mm::kBootloaderSize; ++i) {
    flash->contents()[i] = static_cast<std::uint8_t>(i * 29 + 3);
  }
  const Bytes& old_payload = images().old_payload;
  flash->load(mm::kAppOffset, old_payload.data(), old_payload.size());
  const image::Header header = test::header_for(old_payload, 1);
  journal::Record commit;
  commit.type = journal::RecordType::kCommit;
  commit.payload_length = header.payload_length;
  commit.payload_crc32 = header.payload_crc32;
  commit.image_version = 1;
  std::copy_n(header.payload_sha256, 32, commit.payload_sha256);
  std::uint8_t encoded[journal::kRecordSize];
  if (plan == Plan::kDownloadAtJournalSwitch) {
    // Both sectors full, the newest record (the commit) in the last slot of sector 1: the next
    // record needs sector 0 erased first.
    std::uint32_t sequence = 1;
    for (std::uint32_t sector : {0U, 1U}) {
      for (std::uint32_t slot = 0; slot < journal::kSlotsPerSector; ++slot) {
        journal::Record record = commit;
        record.sequence = sequence++;
        if (slot % 2 == 0 && !(sector == 1 && slot + 1 == journal::kSlotsPerSector)) {
          record = journal::Record{};
          record.sequence = sequence - 1;
        }
        journal::encode_record(record, encoded);
        flash->load(mm::kJournalOffset + sector * mm::kSectorSize + slot * journal::kSlotSize,
                    encoded, sizeof encoded);
      }
    }
  } else {
    commit.sequence = 1;
    journal::encode_record(commit, encoded);
    flash->load(mm::kJournalOffset, encoded, sizeof encoded);
  }
  return flash;
}

BootloaderSettings settings(bool entry_requested) {
  BootloaderSettings result = test::test_settings();
  result.entry_requested = entry_requested;
  return result;
}

// Runs the update; returns early when the power goes.
void run_update(CoreRig& rig, Plan plan) {
  if (plan == Plan::kClearThenDownload) {
    rig.sdo_write(od::kProgramControl, 1, 3, 1);
    if (rig.flash().power_lost()) return;
    rig.wait_flash_idle();
    if (rig.flash().power_lost()) return;
  }
  rig.sdo_download_block(od::kProgramData, 1, images().new_container);
  if (rig.flash().power_lost()) return;
  rig.wait_flash_idle();
}

bool region_holds(const NorFlashFake& flash, const Bytes& payload) {
  return std::equal(payload.begin(), payload.end(), flash.contents().begin() + mm::kAppOffset);
}

class Interruption : public ::testing::TestWithParam<Plan> {};

TEST_P(Interruption, EveryCutLeavesAValidOldOrNewApplicationOrNoProgram) {
  const Plan plan = GetParam();
  current_plan = plan;
  SCOPED_TRACE(name(plan));
  const auto pristine = device_with_old_application(plan);
  const Bytes bootloader(pristine->contents().begin(),
                         pristine->contents().begin() + mm::kBootloaderSize);
  const std::uint32_t old_crc = crc32(0, images().old_payload.data(), images().old_payload.size());
  const std::uint32_t new_crc = crc32(0, images().new_payload.data(), images().new_payload.size());

  // Dry run: how many mutating operations the update takes, and that it works at all.
  std::uint32_t operations = 0;
  std::vector<NorFlashFake::Operation> log;
  {
    NorFlashFake flash = *pristine;
    test::fail_on_violation(flash);
    CoreRig rig(flash, settings(true));
    rig.boot();
    run_update(rig, plan);
    ASSERT_EQ(rig.sdo_read(od::kSoftwareId, 1).value, new_crc);
    operations = flash.mutating_ops();
    log = flash.operations();
    ASSERT_GT(operations, 10U);
    if (plan == Plan::kSparseOverOld) {
      // Two sectors erased and programmed, nothing else of the application touched.
      ASSERT_EQ(flash.erases(mm::kSectorSize) + flash.erases(65536), 2U);
    }
    if (plan == Plan::kLargeImage) {
      ASSERT_EQ(flash.erases(65536), 1U);
    }
  }

  int old_seen = 0;
  int new_seen = 0;
  int none_seen = 0;
  for (std::uint32_t cut = 1; cut <= operations; ++cut) {
    const NorFlashFake::Operation& operation = log[cut - 1];
    const bool page_of_the_image = !operation.erase && operation.offset < mm::kRecordsOffset;
    if (plan == Plan::kLargeImage && page_of_the_image && cut % 16 != 0) continue;
    for (const auto mode : {NorFlashFake::Cut::kBefore, NorFlashFake::Cut::kMidOperation}) {
      SCOPED_TRACE("power cut at operation " + std::to_string(cut) + " of " +
                   std::to_string(operations) +
                   (mode == NorFlashFake::Cut::kBefore ? " (before)" : " (midway)"));
      NorFlashFake flash = *pristine;
      test::fail_on_violation(flash);
      {
        CoreRig rig(flash, settings(true));
        rig.boot();
        // Tears at varying depths: from a few bits of a page (or bytes of a sector) to almost all.
        const double depth = 0.02 + 0.96 * static_cast<double>((cut * 37) % 101) / 100.0;
        flash.cut_power_at(cut, mode, depth);
        run_update(rig, plan);
        ASSERT_TRUE(flash.power_lost());
      }
      flash.power_on();

      // Boot as a device would: no entry request.
      CoreRig rebooted(flash, settings(false));
      rebooted.boot();
      const Bootloader& boot = rebooted.bootloader();
      ASSERT_NE(boot.boot_reason(), BootReason::kApplicationDamaged)
          << "an application that fails its check is marked valid";
      if (boot.installed().valid) {
        ASSERT_TRUE(boot.decision().start_application);
        const bool is_old =
            boot.installed().payload_crc32 == old_crc && region_holds(flash, images().old_payload);
        const bool is_new =
            boot.installed().payload_crc32 == new_crc && region_holds(flash, images().new_payload);
        ASSERT_TRUE(is_old || is_new);
        old_seen += is_old ? 1 : 0;
        new_seen += is_new ? 1 : 0;
      } else {
        ASSERT_EQ(boot.boot_reason(), BootReason::kNoValidApplication);
        ++none_seen;
      }
      ASSERT_TRUE(std::equal(bootloader.begin(), bootloader.end(), flash.contents().begin()))
          << "the bootloader region changed";
      ASSERT_EQ(boot.refused_flash_requests(), 0U);

      // Every so often: the device takes a new download after the interruption.
      if (cut % 16 == 1 || cut + 2 >= operations) {
        CoreRig recovery(flash, settings(true));
        recovery.boot();
        ASSERT_TRUE(recovery.sdo_download_block(od::kProgramData, 1, images().new_container).ok());
        ASSERT_EQ(recovery.wait_flash_idle(), 0U);
        ASSERT_EQ(recovery.sdo_read(od::kSoftwareId, 1).value, new_crc);
      }
    }
  }
  // Both outcomes occur; "new" cannot, since the COMMIT record is the update's last operation.
  EXPECT_GT(old_seen, 0);
  EXPECT_GT(none_seen, 0);
  EXPECT_EQ(new_seen, 0);
  std::printf("%s: %u operations, outcomes old %d / none %d / new %d\n", name(plan).c_str(),
              operations, old_seen, none_seen, new_seen);
}

INSTANTIATE_TEST_SUITE_P(Updates, Interruption,
                         ::testing::Values(Plan::kDownloadOverOld, Plan::kClearThenDownload,
                                           Plan::kDownloadAtJournalSwitch, Plan::kLargeImage,
                                           Plan::kSparseOverOld));

}  // namespace
}  // namespace rtcanboot
