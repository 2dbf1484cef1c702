// Sector-diff updates through the whole Bootloader (SDO frames, strict NOR fake): the sector
// digests of 0x5F02, and sparse containers that carry only the sectors that differ, for the same
// image again, one changed sector, the rest of an interrupted download, and a sparse container
// whose unchanged sectors are not what its header describes (refused, never committed).
#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "core_rig.hpp"
#include "image_builder.hpp"
#include "rtcanboot/bootloader.hpp"
#include "rtcanboot/bytes.hpp"
#include "rtcanboot/hash.hpp"
#include "rtcanboot/memory_map.hpp"
#include "strict_flash.hpp"

namespace rtcanboot {
namespace {

using canopen::Abort;
using canopen::FlashDetail;
using canopen::FlashStatus;
using canopen::InstallState;
using canopen::SectorDigestState;
using test::CoreRig;
using test::NorFlashFake;
namespace mm = memory_map;
namespace od = canopen::od;
using Bytes = std::vector<std::uint8_t>;

constexpr std::uint32_t kSector = image::kSectorSize;

class SparseUpdateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    test::fail_on_violation(flash);
    rig.boot();
  }
  void TearDown() override { EXPECT_EQ(rig.bootloader().refused_flash_requests(), 0U); }

  std::uint32_t read(std::uint16_t index, std::uint8_t sub) {
    const auto result = rig.sdo_read(index, sub);
    EXPECT_TRUE(result.ok()) << std::hex << index << ":" << int{sub} << " abort "
                             << static_cast<std::uint32_t>(result.abort);
    return result.value;
  }
  void download(const Bytes& container) {
    const auto result = rig.sdo_download_block(od::kProgramData, 1, container);
    ASSERT_TRUE(result.ok()) << std::hex << static_cast<std::uint32_t>(result.abort);
  }
  void install(const Bytes& payload) {
    download(test::make_container(payload));
    ASSERT_EQ(rig.wait_flash_idle(), 0U);
  }
  // 0x5F02 as a master uses it: ask for `sectors`, poll the state, upload the digests.
  std::vector<std::uint32_t> node_digests(std::uint32_t sectors) {
    EXPECT_TRUE(rig.sdo_write(od::kSectorDigests, 1, sectors, 4).ok());
    for (int i = 0; i < 1000 && read(od::kSectorDigests, 2) !=
                                    static_cast<std::uint32_t>(SectorDigestState::kReady);
         ++i) {
      rig.run_for(5'000);
    }
    Bytes bytes;
    EXPECT_TRUE(rig.sdo_upload(od::kSectorDigests, 3, bytes).ok());
    std::vector<std::uint32_t> digests;
    for (std::size_t at = 0; at + 4 <= bytes.size(); at += 4) {
      digests.push_back(load_le32(bytes.data() + at));
    }
    return digests;
  }
  std::uint32_t erases() const {
    return flash.erases(mm::kSectorSize) + flash.erases(mm::kBlock64Size);
  }
  bool image_in_flash(const Bytes& payload) const {
    return std::equal(payload.begin(), payload.end(), flash.contents().begin() + mm::kAppOffset);
  }

  NorFlashFake flash{test::NorTiming::typical()};
  CoreRig rig{flash, [] {
                BootloaderSettings settings = test::test_settings();
                settings.provisioning.listen_window_ms = 0;
                return settings;
              }()};
};

TEST_F(SparseUpdateTest, DigestsAreTheCrcOfEachSectorAndTheInstallStateFollowsTheJournal) {
  EXPECT_EQ(read(od::kSectorDigests, 4), static_cast<std::uint32_t>(InstallState::kNone));
  EXPECT_EQ(read(od::kSectorDigests, 2), static_cast<std::uint32_t>(SectorDigestState::kIdle));
  Bytes nothing;
  ASSERT_TRUE(rig.sdo_upload(od::kSectorDigests, 3, nothing).ok());
  EXPECT_TRUE(nothing.empty());

  const Bytes payload = test::make_payload(5 * kSector + 100, 4);
  install(payload);
  EXPECT_EQ(read(od::kSectorDigests, 4), static_cast<std::uint32_t>(InstallState::kCommitted));
  EXPECT_EQ(read(od::kSectorDigests, 5), payload.size());
  EXPECT_EQ(read(od::kSectorDigests, 6), crc32(0, payload.data(), payload.size()));

  const auto digests = node_digests(8);
  ASSERT_EQ(digests.size(), 8U);
  for (std::uint32_t sector = 0; sector < 8; ++sector) {
    const std::uint8_t* bytes = flash.contents().data() + mm::kAppOffset + sector * kSector;
    EXPECT_EQ(digests[sector], crc32(0, bytes, kSector)) << "sector " << sector;
  }
  EXPECT_EQ(read(od::kSectorDigests, 1), 8U);
  // Every answer came quickly, the computation included.
  EXPECT_LT(rig.max_response_delay(), 100'000);
}

TEST_F(SparseUpdateTest, DigestRequestsOutOfRangeOrDuringADownloadAreRefused) {
  EXPECT_EQ(rig.sdo_write(od::kSectorDigests, 1, SectorDigests::kMaxSectors + 1, 4).abort,
            Abort::kValueRange);
  EXPECT_TRUE(rig.sdo_write(od::kSectorDigests, 1, SectorDigests::kMaxSectors, 4).ok());
  // A download makes the digests stale: they are forgotten (state idle, nothing to upload).
  const Bytes payload = test::make_payload(3 * kSector, 5);
  download(test::make_container(payload));
  EXPECT_EQ(rig.sdo_write(od::kSectorDigests, 1, 2, 4).abort, Abort::kDeviceState);
  ASSERT_EQ(rig.wait_flash_idle(), 0U);
  EXPECT_EQ(read(od::kSectorDigests, 2), static_cast<std::uint32_t>(SectorDigestState::kIdle));
}

// A clear's background erase is housekeeping: a digest request stops it (after the erase in
// flight), so the digests come at once and describe the flash as it then stays.
TEST_F(SparseUpdateTest, DigestsDuringAClearsBackgroundEraseStopItAndMatchTheFlash) {
  flash.set_timing(test::NorTiming::maximum());  // 2 s per 64 KiB block
  install(test::make_payload(4 * mm::kBlock64Size, 9));
  ASSERT_EQ(rig.sdo_write(od::kProgramControl, 1, 3, 1).abort, Abort::kNone);  // clear
  ASSERT_EQ(rig.wait_flash_idle(), 0U);                                        // done at its REVOKE
  ASSERT_TRUE(rig.bootloader().writer().has_work());  // the erase runs in the background
  const Micros asked = rig.now();
  const auto digests = node_digests(64);
  EXPECT_LT(rig.now() - asked, 2'500'000U);  // at most the erase in flight, not all four
  EXPECT_FALSE(rig.bootloader().writer().has_work());
  ASSERT_EQ(digests.size(), 64U);
  for (std::uint32_t sector = 0; sector < 64; ++sector) {
    const std::uint8_t* bytes = flash.contents().data() + mm::kAppOffset + sector * kSector;
    EXPECT_EQ(digests[sector], crc32(0, bytes, kSector)) << "sector " << sector;
  }
  // Blocks the erase had not reached keep their old bytes, and the digests say so.
  EXPECT_NE(digests[63], crc32(0, Bytes(kSector, 0xFF).data(), kSector));
  EXPECT_LT(rig.max_response_delay(), 100'000);
}

TEST_F(SparseUpdateTest, TheSameImageAgainWritesNoSectorAndCommits) {
  const Bytes payload = test::make_payload(40 * kSector + 300, 6);
  install(payload);
  const std::uint32_t programs = flash.programs();
  const std::uint32_t erased = erases();
  const Bytes container = test::make_sparse_container(payload, test::runs({}));
  EXPECT_EQ(container.size(), image::kDefaultHeaderLength);
  download(container);
  ASSERT_EQ(rig.wait_flash_idle(), 0U);
  EXPECT_EQ(erases(), erased) << "no application sector erased";
  EXPECT_LE(flash.programs() - programs, 2U) << "only the REVOKE and COMMIT records";
  EXPECT_TRUE(rig.bootloader().installed().valid);
  EXPECT_EQ(read(od::kSoftwareId, 1), crc32(0, payload.data(), payload.size()));
}

TEST_F(SparseUpdateTest, OneChangedSectorIsTheOnlyOneErasedAndProgrammed) {
  const Bytes old_payload = test::make_payload(40 * kSector, 6);
  install(old_payload);
  Bytes new_payload = old_payload;
  for (std::uint32_t i = 0; i < 20; ++i) new_payload[17 * kSector + 100 + i] ^= 0x5A;

  const auto digests = node_digests(image::sector_count(new_payload.size()));
  image::ExtentList extents;
  for (std::uint32_t sector = 0; sector < digests.size(); ++sector) {
    if (digests[sector] != crc32(0, new_payload.data() + sector * kSector, kSector)) {
      extents.runs[extents.count++] = {static_cast<std::uint16_t>(sector), 1};
    }
  }
  ASSERT_EQ(extents.count, 1U);
  EXPECT_EQ(extents.runs[0].first_sector, 17);

  const std::uint32_t programs = flash.programs();
  const std::uint32_t erased = erases();
  download(test::make_sparse_container(new_payload, extents, 2));
  ASSERT_EQ(rig.wait_flash_idle(), 0U);
  EXPECT_EQ(flash.erases(mm::kSectorSize) + flash.erases(mm::kBlock64Size) - erased, 1U);
  EXPECT_EQ(flash.programs() - programs, kSector / mm::kPageSize + 2)
      << "one sector's pages, REVOKE and COMMIT";
  EXPECT_TRUE(image_in_flash(new_payload));
  EXPECT_EQ(read(od::kSoftwareId, 1), crc32(0, new_payload.data(), new_payload.size()));
  EXPECT_EQ(read(od::kRtcanbootInfo, 6), 2U);
}

// At maximum timing the download a master abandoned can leave a 2 s erase in flight. 0x1F57
// already reports the result then, so a master asks for the digests at once: they are accepted and
// computed once the erase is done, not refused as "busy".
TEST_F(SparseUpdateTest, DigestsRightAfterAnAbandonedDownloadWaitForItsEraseInFlight) {
  flash.set_timing(test::NorTiming::maximum());
  install(test::make_payload(4 * mm::kBlock64Size, 1));
  const Bytes new_payload = test::make_payload(4 * mm::kBlock64Size, 2);
  rig.stop_after_bytes = static_cast<std::uint32_t>(new_payload.size() / 2);
  EXPECT_FALSE(rig.sdo_download_block(od::kProgramData, 1, test::make_container(new_payload)).ok());
  rig.stop_after_bytes = 0;
  // The node's SDO timeout (1 s) ends the transfer; an erase is still in flight then.
  rig.run_for(1'050'000);
  ASSERT_EQ(read(od::kFlashStatus, 1) & 1U, 0U);
  ASSERT_TRUE(flash.busy()) << "the scenario needs the abandoned erase still running";
  const auto digests = node_digests(64);
  ASSERT_EQ(digests.size(), 64U);
  for (std::uint32_t sector = 0; sector < 64; ++sector) {
    const std::uint8_t* bytes = flash.contents().data() + mm::kAppOffset + sector * kSector;
    EXPECT_EQ(digests[sector], crc32(0, bytes, kSector)) << "sector " << sector;
  }
}

TEST_F(SparseUpdateTest, AnInterruptedFullDownloadResumesWithTheSectorsStillMissing) {
  const Bytes old_payload = test::make_payload(64 * kSector, 1);
  install(old_payload);
  const Bytes new_payload = test::make_payload(64 * kSector + 1000, 2);
  // The full download stops half-way: the master goes silent, the node times out.
  rig.stop_after_bytes = static_cast<std::uint32_t>(new_payload.size() / 2);
  const auto cut = rig.sdo_download_block(od::kProgramData, 1, test::make_container(new_payload));
  EXPECT_FALSE(cut.ok());
  rig.stop_after_bytes = 0;
  rig.run_for(3'000'000);
  ASSERT_TRUE(rig.wait_flash_idle().has_value());
  EXPECT_EQ(read(od::kSectorDigests, 4), static_cast<std::uint32_t>(InstallState::kRevoked));
  EXPECT_FALSE(rig.bootloader().installed().valid);

  const auto sectors = image::sector_count(new_payload.size());
  const auto digests = node_digests(sectors);
  ASSERT_EQ(digests.size(), sectors);
  Bytes padded = new_payload;
  padded.resize(std::size_t{sectors} * kSector, 0xFF);
  std::uint32_t differing = 0;
  for (std::uint32_t sector = 0; sector < sectors; ++sector) {
    differing += digests[sector] != crc32(0, padded.data() + sector * kSector, kSector) ? 1 : 0;
  }
  const image::ExtentList extents =
      test::differing_sectors(new_payload, flash.contents().data() + mm::kAppOffset);
  std::uint32_t listed = 0;
  for (std::uint32_t i = 0; i < extents.count; ++i) listed += extents.runs[i].sector_count;
  EXPECT_EQ(listed, differing) << "the digests find exactly the sectors that differ";
  EXPECT_GT(listed, 0U);
  EXPECT_LT(listed, sectors * 3 / 4) << "about half the image was already in place";

  const std::uint32_t programs = flash.programs();
  download(test::make_sparse_container(new_payload, extents, 3));
  ASSERT_EQ(rig.wait_flash_idle(), 0U);
  EXPECT_LE(flash.programs() - programs, listed * kSector / mm::kPageSize + 2);
  EXPECT_TRUE(image_in_flash(new_payload));
  EXPECT_TRUE(rig.bootloader().installed().valid);
  EXPECT_EQ(read(od::kSoftwareId, 1), crc32(0, new_payload.data(), new_payload.size()));
}

TEST_F(SparseUpdateTest, UnchangedSectorsThatDoNotMatchTheHeaderAreRefusedAtVerify) {
  const Bytes old_payload = test::make_payload(20 * kSector, 1);
  install(old_payload);
  Bytes new_payload = old_payload;
  new_payload[3 * kSector + 5] ^= 1;
  new_payload[9 * kSector + 5] ^= 1;
  // Only sector 9 is sent: sector 3 on the node is not the new image's.
  download(test::make_sparse_container(new_payload, test::runs({{9, 1}})));
  EXPECT_EQ(rig.wait_flash_idle(), canopen::flash_status_word(false, FlashStatus::kWriteError,
                                                              FlashDetail::kSparseVerifyFailed));
  EXPECT_FALSE(rig.bootloader().installed().valid) << "a changed region is not committed";
  EXPECT_EQ(read(od::kSoftwareId, 1), 0U);
  EXPECT_EQ(read(od::kSectorDigests, 4), static_cast<std::uint32_t>(InstallState::kRevoked));
  // Nothing erased or programmed for a container with no sectors: the old image gets its COMMIT
  // back after the failed verification.
  install(old_payload);
  download(test::make_sparse_container(new_payload, test::runs({})));
  EXPECT_EQ(rig.wait_flash_idle(), canopen::flash_status_word(false, FlashStatus::kWriteError,
                                                              FlashDetail::kSparseVerifyFailed));
  rig.run_for(100'000);
  EXPECT_TRUE(rig.bootloader().installed().valid);
  EXPECT_EQ(read(od::kSoftwareId, 1), crc32(0, old_payload.data(), old_payload.size()));
}

TEST_F(SparseUpdateTest, AMalformedExtentsRecordIsRefusedBeforeAnythingIsWritten) {
  const Bytes payload = test::make_payload(10 * kSector, 1);
  install(payload);
  const std::uint32_t ops = flash.mutating_ops();
  // Runs out of order.
  const Bytes container = test::make_sparse_container(payload, test::runs({{5, 1}, {2, 1}}));
  const auto result = rig.sdo_download_block(od::kProgramData, 1, container);
  EXPECT_EQ(result.abort, Abort::kCannotStore);
  EXPECT_EQ(rig.wait_flash_idle(), canopen::flash_status_word(false, FlashStatus::kDataFormatError,
                                                              FlashDetail::kBadExtents));
  EXPECT_EQ(flash.mutating_ops(), ops);
  EXPECT_TRUE(rig.bootloader().installed().valid);
}

TEST_F(SparseUpdateTest, ASparseImageWithoutSectorZeroHasItsVectorTableCheckedOnTheReadBack) {
  const Bytes old_payload = test::make_payload(6 * kSector, 1);
  install(old_payload);
  // The node's sector 0 holds a reset handler without the Thumb bit (written behind the
  // bootloader's back), and the header describes exactly that image: only the vector table
  // check on the read-back can refuse it.
  flash.contents()[mm::kAppOffset + 4] &= 0xFE;
  Bytes image = std::vector<std::uint8_t>(
      flash.contents().begin() + mm::kAppOffset,
      flash.contents().begin() + mm::kAppOffset + static_cast<std::ptrdiff_t>(old_payload.size()));
  image[2 * kSector] ^= 0xFF;
  download(test::make_sparse_container(image, test::runs({{2, 1}})));
  EXPECT_EQ(rig.wait_flash_idle(), canopen::flash_status_word(false, FlashStatus::kDataFormatError,
                                                              FlashDetail::kBadVectorTable));
  EXPECT_FALSE(rig.bootloader().installed().valid);
  // With a sane vector table the same kind of container installs.
  flash.contents()[mm::kAppOffset + 4] |= 0x01;
  image[4] |= 0x01;
  download(test::make_sparse_container(image, test::runs({{2, 1}})));
  ASSERT_EQ(rig.wait_flash_idle(), 0U);
  EXPECT_TRUE(image_in_flash(image));
  EXPECT_TRUE(rig.bootloader().installed().valid);
}

}  // namespace
}  // namespace rtcanboot
