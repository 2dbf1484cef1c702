// Sparse containers (docs/image-format.md, "Sparse containers") into ProgramDownload on the strict
// NOR flash fake, over an installed application. The header always describes a real image (the
// installed one with some bytes changed); the fuzzer chooses the changes, the extents record and
// the stream. Invariants: no crash (ASan/UBSan), no flash violation, the bootloader region
// untouched; a malformed extents record writes nothing; no erase or program outside the listed
// sectors (the journal aside); a COMMIT only when the application region then holds exactly the
// header's image; and parse_extents() only returns ascending, separate runs inside the image.
//
// Input: byte 0 = flags, byte 1 = chunk-size seed, byte 2 = number of changes n, then n changes
// of 3 bytes (u16 offset into the image, u8 xor), then the rest:
//   flags bit 0: the rest is the raw records area; otherwise it is a bitmask of the sectors to
//                send (made into well-formed runs)
//   bit 1: flip one byte of the stream; bit 2: announce the size; bit 3: cancel part-way;
//   bit 4: no application installed (the journal is empty)
#include <cstddef>
#include <cstdint>
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
constexpr std::uint32_t kImageLength = 8 * image::kSectorSize + 1000;  // 9 sectors, last partial
constexpr std::uint32_t kSectors = image::sector_count(kImageLength);

const std::vector<std::uint8_t>& installed_image() {
  static const std::vector<std::uint8_t> bytes = [] {
    std::vector<std::uint8_t> image(kImageLength);
    for (std::uint32_t i = 0; i < kImageLength; ++i) {
      image[i] = static_cast<std::uint8_t>(i * 29 + (i >> 12));
    }
    store_le32(image.data(), mm::kDtcmBase + 0x1000);
    store_le32(image.data() + 4, mm::kAppAddress | 1U);
    return image;
  }();
  return bytes;
}

void sha256_of(const std::uint8_t* data, std::size_t length, std::uint8_t out[32]) {
  SoftwareSha256 sha;
  sha.update(data, length);
  sha.finish(out);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 3 || size > 4096) return 0;
  const std::uint8_t flags = data[0];
  std::uint32_t random = data[1] * 2654435761U + 1U;
  auto next_random = [&] {
    random = random * 1103515245U + 12345U;
    return random >> 8;
  };
  std::size_t at = 3;
  std::vector<std::uint8_t> target = installed_image();
  for (std::uint32_t n = data[2] % 32; n > 0 && at + 3 <= size; --n, at += 3) {
    target[load_le16(data + at) % kImageLength] ^= data[at + 2];
  }
  const std::uint8_t* rest = data + at;
  const std::size_t rest_size = size - at;

  // The header of `target`, sparse, with the records area from the input.
  image::Header header;
  header.load_address = mm::kAppAddress;
  header.payload_length = kImageLength;
  header.vendor_id = kVendor;
  header.product_code = kProduct;
  header.flags = image::kFlagSparse;
  header.payload_crc32 = crc32(0, target.data(), target.size());
  sha256_of(target.data(), target.size(), header.payload_sha256);
  std::vector<std::uint8_t> stream;
  if ((flags & 1) != 0) {
    const std::size_t area = rest_size > 948 ? 948 : rest_size & ~std::size_t{3};
    header.header_length = static_cast<std::uint16_t>(image::kFixedLength + area + 4);
    if (header.header_length < image::kMinHeaderLength)
      header.header_length = image::kMinHeaderLength;
    stream.resize(header.header_length);
    FUZZ_CHECK(image::encode(header, stream.data(), stream.size()));
    std::memcpy(stream.data() + image::kFixedLength, rest, area);
    store_le32(stream.data() + header.header_length - 4,
               crc32(0, stream.data(), header.header_length - 4U));
  } else {
    image::ExtentList chosen;
    for (std::uint32_t sector = 0; sector < kSectors; ++sector) {
      const bool send = sector / 8 < rest_size && ((rest[sector / 8] >> (sector % 8)) & 1U) != 0;
      if (!send) continue;
      image::Extent* last = chosen.count > 0 ? &chosen.runs[chosen.count - 1] : nullptr;
      if (last != nullptr && last->first_sector + last->sector_count == sector) {
        ++last->sector_count;
      } else {
        chosen.runs[chosen.count++] = {static_cast<std::uint16_t>(sector), 1};
      }
    }
    header.header_length = static_cast<std::uint16_t>(image::sparse_header_length(chosen.count));
    stream.resize(header.header_length);
    FUZZ_CHECK(image::encode_sparse(header, chosen, stream.data(), stream.size()));
  }

  // What the parser makes of it, checked on its own.
  image::Header parsed_header;
  const image::Expectation expectation{kVendor, kProduct, mm::kAppAddress, mm::kAppSize};
  FUZZ_CHECK(image::parse(stream.data(), stream.size(), expectation, parsed_header).ok());
  image::ExtentList runs;
  const bool runs_ok = image::parse_extents(stream.data(), parsed_header, runs).ok();
  bool listed[kSectors] = {};
  if (runs_ok) {
    FUZZ_CHECK(runs.count <= image::kMaxExtents);
    std::uint32_t next_free = 0;
    for (std::uint32_t i = 0; i < runs.count; ++i) {
      FUZZ_CHECK(runs.runs[i].sector_count > 0);
      FUZZ_CHECK(runs.runs[i].first_sector >= next_free);
      FUZZ_CHECK(runs.runs[i].first_sector + runs.runs[i].sector_count <= kSectors);
      next_free = runs.runs[i].first_sector + runs.runs[i].sector_count + 1U;
      for (std::uint32_t s = 0; s < runs.runs[i].sector_count; ++s) {
        listed[runs.runs[i].first_sector + s] = true;
      }
    }
    // The stream: the listed sectors of the target image.
    for (std::uint32_t i = 0; i < runs.count; ++i) {
      const std::uint32_t begin = runs.runs[i].first_sector * image::kSectorSize;
      std::uint32_t end = begin + runs.runs[i].sector_count * image::kSectorSize;
      if (end > kImageLength) end = kImageLength;
      stream.insert(stream.end(), target.begin() + begin, target.begin() + end);
    }
    FUZZ_CHECK(stream.size() ==
               header.header_length + image::sparse_payload_length(runs, kImageLength));
  }
  if ((flags & 2) != 0 && stream.size() > header.header_length) {
    stream[header.header_length + next_random() % (stream.size() - header.header_length)] ^= 0x40;
  }

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
  std::memset(flash.contents().data() + mm::kAppOffset, 0xFF, kSectors * image::kSectorSize);
  std::memset(flash.contents().data() + mm::kJournalOffset, 0xFF,
              mm::kJournalSectors * mm::kSectorSize);
  const bool start_installed = (flags & 16) == 0;
  if (start_installed) test::install_committed_image(flash, installed_image());

  GuardedFlash guard(flash);
  SoftwareSha256 sha;
  std::vector<std::uint8_t> ring(4096 + 512 * (random % 8));
  journal::InstallJournal journal(guard);
  journal.load();
  FlashWriter writer(guard, sha, ring);
  ProgramDownload download(writer, journal, sha, expectation);
  Micros now = 0;
  auto poll = [&] {
    now += 1 + (random >> 28);
    flash.set_now(now);
    download.poll();
  };

  const std::size_t cancel_at =
      (flags & 8) ? next_random() % (stream.size() + 1) : stream.size() + 1;
  bool open = download.begin((flags & 4) != 0, static_cast<std::uint32_t>(stream.size())) ==
              canopen::Abort::kNone;
  std::size_t offset = 0;
  while (open && offset < stream.size()) {
    if (offset >= cancel_at) {
      download.cancel(canopen::Abort::kGeneral, CancelCause::kClientAbort);
      open = false;
      break;
    }
    std::uint32_t chunk = 1 + next_random() % 1024;
    if (chunk > stream.size() - offset) chunk = static_cast<std::uint32_t>(stream.size() - offset);
    if (chunk > download.free_space()) chunk = download.free_space();
    if (chunk == 0) {
      poll();
      continue;
    }
    if (download.write(stream.data() + offset, chunk) != canopen::Abort::kNone) open = false;
    offset += chunk;
    for (std::uint32_t i = next_random() % 4; i > 0; --i) poll();
  }
  if (open) download.end();
  for (int i = 0; i < 2'000'000 && download.busy(); ++i) poll();
  FUZZ_CHECK(!download.busy());

  FUZZ_CHECK(flash.violations().empty());
  FUZZ_CHECK(guard.refused() == 0);
  FUZZ_CHECK(std::memcmp(flash.contents().data(), bootloader_pattern.data(), mm::kBootloaderSize) ==
             0);
  if (!runs_ok) FUZZ_CHECK(flash.mutating_ops() == 0);
  // Erases and programs in the application region stay inside the listed sectors.
  for (const test::NorFlashFake::Operation& op : flash.operations()) {
    if (op.offset < mm::kAppOffset || op.offset >= mm::kAppOffset + mm::kAppSize) continue;
    const std::uint32_t first = (op.offset - mm::kAppOffset) / image::kSectorSize;
    const std::uint32_t last = (op.offset - mm::kAppOffset + op.length - 1) / image::kSectorSize;
    for (std::uint32_t s = first; s <= last; ++s) FUZZ_CHECK(s < kSectors && listed[s]);
  }
  // A COMMIT stands for exactly the header's image in the flash.
  journal::InstallJournal reread(flash);
  reread.load();
  if (reread.installed().valid) {
    const std::vector<std::uint8_t>& expected =
        reread.installed().payload_crc32 == header.payload_crc32 ? target : installed_image();
    FUZZ_CHECK(
        std::memcmp(flash.contents().data() + mm::kAppOffset, expected.data(), kImageLength) == 0);
  }
  return 0;
}
