// Arbitrary bytes as a 0x1F50 container stream, in random chunk sizes, into ProgramDownload on
// the strict NOR flash fake. Invariants: no crash (ASan/UBSan), no flash violation, the
// bootloader region untouched, and never a COMMIT for data that does not match its header.
// Starting from a committed application (flags bit 7): a download that did not commit, that no
// clear was asked for, and that never erased or programmed the application's bytes leaves that
// application valid (issue 16, defect 11: a refused vector table revoked it).
//
// Input: byte 0 = flags, byte 1 = chunk-size seed, the rest = the stream.
//   flags bits 0..1: 0 raw; 1 reseal the header CRC; 2 also make the header fit this node and
//                    carry the payload's true CRC-32/SHA-256 (reaches programming and commit)
//   bit 2: announce the size at begin(); bit 3: announce a wrong size; bit 4: cancel part-way;
//   bit 5: a 0x1F51 clear is running when the download begins; bit 6: 0x1F51 commands part-way
//   bit 7: the journal starts with a committed application (kInstalled)
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

#include "fuzz_check.hpp"
#include "nor_flash_fake.hpp"
#include "rtcanboot/bytes.hpp"
#include "rtcanboot/flash_guard.hpp"
#include "rtcanboot/flash_writer.hpp"
#include "rtcanboot/hash.hpp"
#include "rtcanboot/image_format.hpp"
#include "rtcanboot/install_journal.hpp"
#include "rtcanboot/memory_map.hpp"
#include "rtcanboot/program_download.hpp"

namespace {

using namespace rtcanboot;
namespace mm = memory_map;

constexpr std::uint32_t kVendor = 0x0ABC;
constexpr std::uint32_t kProduct = 0x0001'0064;

// The application a run may start from: a sane vector table, then a pattern.
constexpr std::uint32_t kInstalledLength = 6000;
const std::vector<std::uint8_t>& installed_payload() {
  static const std::vector<std::uint8_t> payload = [] {
    std::vector<std::uint8_t> bytes(kInstalledLength);
    for (std::uint32_t i = 0; i < kInstalledLength; ++i) {
      bytes[i] = static_cast<std::uint8_t>(i * 17 + 3);
    }
    store_le32(bytes.data(), mm::kDtcmBase + 0x1000);
    store_le32(bytes.data() + 4, mm::kAppAddress | 1U);
    return bytes;
  }();
  return payload;
}

bool touched(const test::NorFlashFake& flash, std::uint32_t offset, std::uint32_t length) {
  for (const test::NorFlashFake::Operation& op : flash.operations()) {
    if (op.offset < offset + length && offset < op.offset + op.length) return true;
  }
  return false;
}

void fix_up(std::vector<std::uint8_t>& stream, int mode) {
  if (mode == 0 || stream.size() < image::kFixedLength) return;
  std::uint16_t header_length = load_le16(stream.data() + 6);
  if (mode == 2) {
    header_length = static_cast<std::uint16_t>(image::kMinHeaderLength +
                                               (header_length % 64) * 4);  // always a valid length
    store_le16(stream.data() + 6, header_length);
  }
  if (header_length < image::kMinHeaderLength || header_length > image::kMaxHeaderLength ||
      header_length % 4 != 0 || stream.size() < header_length) {
    return;
  }
  if (mode == 2) {
    const auto payload_length = static_cast<std::uint32_t>(stream.size() - header_length);
    // Bytes 1 and 2 (overwritten by the magic below) choose whether the vector table is made sane.
    const bool sane_sp = (stream[1] & 0x80) == 0;
    const bool sane_entry = (stream[2] & 0x80) == 0;
    store_le32(stream.data(), image::kMagic);
    store_le16(stream.data() + 4, image::kFormatVersion);
    store_le32(stream.data() + 0x08, mm::kAppAddress);
    store_le32(stream.data() + 0x0C, payload_length);
    store_le32(stream.data() + 0x14, kVendor);
    store_le32(stream.data() + 0x18, kProduct);
    store_le32(stream.data() + 0x1C, load_le32(stream.data() + 0x1C) & 0xFFFF'0000U);
    const std::uint8_t* payload = stream.data() + header_length;
    store_le32(stream.data() + 0x20, crc32(0, payload, payload_length));
    SoftwareSha256 sha;
    sha.update(payload, payload_length);
    sha.finish(stream.data() + 0x24);
    if (payload_length >= 8) {  // a vector table that can start, most of the time
      if (sane_sp) store_le32(stream.data() + header_length, mm::kDtcmBase + 0x1000);
      if (sane_entry) store_le32(stream.data() + header_length + 4, mm::kAppAddress | 1U);
      store_le32(stream.data() + 0x20, crc32(0, payload, payload_length));
      SoftwareSha256 again;
      again.update(payload, payload_length);
      again.finish(stream.data() + 0x24);
    }
  }
  store_le32(stream.data() + header_length - 4, crc32(0, stream.data(), header_length - 4U));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2 || size > 70'000) return 0;
  const std::uint8_t flags = data[0];
  std::uint32_t random = data[1] * 2654435761U + 1U;
  std::vector<std::uint8_t> stream(data + 2, data + size);
  fix_up(stream, flags & 3);

  // One flash for all runs (a fresh 4 MiB per input is slow): what a run touched is erased again.
  static std::vector<std::uint8_t> bootloader_pattern;
  static test::NorFlashFake flash(test::NorTiming{2, 5, 7, 9});
  if (bootloader_pattern.empty()) {
    bootloader_pattern.resize(mm::kBootloaderSize);
    for (std::uint32_t i = 0; i < mm::kBootloaderSize; ++i) {
      bootloader_pattern[i] = static_cast<std::uint8_t>(i * 31 + 5);
    }
    flash.load(0, bootloader_pattern.data(), bootloader_pattern.size());
  }
  flash.reset_touched();
  // What install_committed_image() wrote is no operation: blank it by hand.
  std::memset(flash.contents().data() + mm::kAppOffset, 0xFF, kInstalledLength);
  std::memset(flash.contents().data() + mm::kJournalOffset, 0xFF,
              mm::kJournalSectors * mm::kSectorSize);
  const bool start_installed = (flags & 0x80) != 0;
  if (start_installed) test::install_committed_image(flash, installed_payload());
  GuardedFlash guard(flash);
  SoftwareSha256 sha;
  std::vector<std::uint8_t> ring(4096 + 512 * (random % 8));
  journal::InstallJournal journal(guard);
  journal.load();
  FUZZ_CHECK(journal.installed().valid == start_installed);
  FlashWriter writer(guard, sha, ring);
  const image::Expectation expectation{kVendor, kProduct, mm::kAppAddress, mm::kAppSize};
  ProgramDownload download(writer, journal, sha, expectation);

  Micros now = 0;
  auto poll = [&] {
    now += 1 + (random >> 28);
    flash.set_now(now);
    download.poll();
  };
  auto next_random = [&] {
    random = random * 1103515245U + 12345U;
    return random >> 8;
  };

  const bool size_known = (flags & 4) != 0;
  const auto announced = static_cast<std::uint32_t>(stream.size() + ((flags & 8) ? 1 : 0));
  const std::size_t cancel_at =
      (flags & 16) ? next_random() % (stream.size() + 1) : stream.size() + 1;
  bool clear_asked = false;
  if ((flags & 32) != 0) {
    clear_asked = true;
    download.control(1, static_cast<std::uint8_t>(canopen::ProgramCommand::kClear));
    for (std::uint32_t i = next_random() % 64; i > 0; --i) poll();
  }
  // Half of the runs end a chunk exactly at the header's end, so the payload's first bytes (the
  // vector table) come after polls that could already write to the flash.
  const std::size_t split_at =
      (random & 0x100) != 0 && stream.size() >= 8 ? load_le16(stream.data() + 6) : SIZE_MAX;
  bool open = download.begin(size_known, announced) == canopen::Abort::kNone;
  std::size_t offset = 0;
  while (open && offset < stream.size()) {
    if (offset >= cancel_at) {
      download.cancel(canopen::Abort::kGeneral, CancelCause::kClientAbort);
      open = false;
      break;
    }
    const std::uint32_t space = download.free_space();
    std::uint32_t chunk = 1 + next_random() % 1024;
    if (chunk > stream.size() - offset) chunk = static_cast<std::uint32_t>(stream.size() - offset);
    if (chunk > space) chunk = space;
    if (offset < split_at && offset + chunk > split_at) {
      chunk = static_cast<std::uint32_t>(split_at - offset);
    }
    if (chunk == 0) {
      poll();
      continue;
    }
    if (download.write(stream.data() + offset, chunk) != canopen::Abort::kNone) open = false;
    offset += chunk;
    if ((flags & 64) != 0 && next_random() % 8 == 0) {
      // Commands a master may send on another channel; none may disturb the download.
      const auto command = static_cast<std::uint8_t>(next_random() % 5);
      const bool was_busy = download.busy();
      const canopen::Abort answer = download.control(1, command);
      if (command == 3 && answer == canopen::Abort::kNone) clear_asked = true;
      // Never "start" while a download or clear runs; unknown commands are out of range.
      if (was_busy && (command == 1 || command == 2))
        FUZZ_CHECK(answer == canopen::Abort::kDeviceState);
      if (command > 3) FUZZ_CHECK(answer == canopen::Abort::kValueRange);
      download.flash_status(1);
      download.software_id(1);
      download.control_state(1);
    }
    for (std::uint32_t i = next_random() % (offset == split_at ? 16 : 4); i > 0; --i) poll();
  }
  const bool ended = open && download.end() == canopen::Abort::kNone;
  for (int i = 0; i < 2'000'000 && download.busy(); ++i) poll();
  FUZZ_CHECK(!download.busy());

  FUZZ_CHECK(flash.violations().empty());
  FUZZ_CHECK(guard.refused() == 0);
  FUZZ_CHECK(std::memcmp(flash.contents().data(), bootloader_pattern.data(), mm::kBootloaderSize) ==
             0);

  // A download refused by a check on its first bytes (header, announced size, vector table)
  // writes nothing at all: no REVOKE, no erase.
  const auto detail = static_cast<canopen::FlashDetail>(download.flash_status(1) >> 16);
  using canopen::FlashDetail;
  const bool first_bytes_refusal =
      detail == FlashDetail::kBadMagic || detail == FlashDetail::kBadFormatVersion ||
      detail == FlashDetail::kBadHeaderLength || detail == FlashDetail::kBadHeaderCrc ||
      detail == FlashDetail::kLoadAddress || detail == FlashDetail::kTooLarge ||
      detail == FlashDetail::kProductMismatch || detail == FlashDetail::kUnsupportedFlags ||
      detail == FlashDetail::kBadPatch || detail == FlashDetail::kBadVectorTable;
  if (first_bytes_refusal && !clear_asked) FUZZ_CHECK(flash.mutating_ops() == 0);

  // A download that failed without touching the installed application keeps it.
  if (start_installed && !clear_asked && !touched(flash, mm::kAppOffset, kInstalledLength)) {
    journal::InstallJournal reread(flash);
    reread.load();
    FUZZ_CHECK(reread.installed().valid);
    FUZZ_CHECK(reread.installed().payload_crc32 ==
               crc32(0, installed_payload().data(), kInstalledLength));
    FUZZ_CHECK(download.valid_program());
  }

  // The COMMIT that describes the application the run started from (kept or written again)
  // stands for exactly those bytes in the flash.
  const std::vector<std::uint8_t>& old_payload = installed_payload();
  const bool old_commit =
      start_installed && journal.installed().valid &&
      journal.installed().payload_length == kInstalledLength &&
      journal.installed().image_version == 7 &&
      journal.installed().payload_crc32 == crc32(0, old_payload.data(), old_payload.size());
  if (old_commit) {
    FUZZ_CHECK(std::memcmp(flash.contents().data() + mm::kAppOffset, old_payload.data(),
                           kInstalledLength) == 0);
  }

  // A commit only for a stream that is exactly a header plus the payload it describes.
  if (journal.installed().valid && !old_commit) {
    FUZZ_CHECK(ended);
    const journal::InstalledImage& installed = journal.installed();
    image::Header header;
    FUZZ_CHECK(image::parse(stream.data(), stream.size(), expectation, header).ok());
    FUZZ_CHECK(stream.size() == std::size_t{header.header_length} + header.payload_length);
    FUZZ_CHECK(installed.payload_length == header.payload_length);
    FUZZ_CHECK(installed.payload_crc32 == header.payload_crc32);
    const std::uint8_t* payload = stream.data() + header.header_length;
    FUZZ_CHECK(crc32(0, payload, header.payload_length) == header.payload_crc32);
    FUZZ_CHECK(
        std::memcmp(flash.contents().data() + mm::kAppOffset, payload, header.payload_length) == 0);
    SoftwareSha256 digest;
    digest.update(payload, header.payload_length);
    std::uint8_t sha256[32];
    digest.finish(sha256);
    FUZZ_CHECK(std::memcmp(sha256, header.payload_sha256, 32) == 0);
    journal::InstallJournal reread(flash);
    reread.load();
    FUZZ_CHECK(reread.installed().valid &&
               reread.installed().payload_crc32 == header.payload_crc32);
  }
  return 0;
}
