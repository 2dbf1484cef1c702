// ProgramDownload on a node that holds a key record (RFC 8032 TEST 1's public key), fed mutations
// of tests/vectors/container_signed.bin (signed by that key, security counter 5) in random chunks,
// on the strict NOR flash fake. Invariants: no crash (ASan/UBSan), no flash violation, nothing in
// the bootloader region; a container refused at its header (signature details 25..29 included)
// causes no flash operation at all and leaves an installed application valid; and a COMMIT
// happens only for a container whose signed message and signature are the vector's own (nobody
// else can sign for TEST 1's key) with a counter at or above the key record's minimum.
//
// Input: byte 0 = flags (bit 0: start with a committed application; bit 1: reseal the header CRC
// after the mutations; bit 2: announce the size at begin()), byte 1 = the key record's minimum
// security counter, byte 2 = chunk-size seed, then (position, xor) byte pairs applied to the
// vector (position modulo its length).
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
#include "rtcanboot/key_record.hpp"
#include "rtcanboot/memory_map.hpp"
#include "rtcanboot/program_download.hpp"

namespace {

using namespace rtcanboot;
namespace mm = memory_map;
using canopen::FlashDetail;

constexpr std::uint32_t kVendor = 0x0ABC;
constexpr std::uint32_t kProduct = 0x0001'0064;

// tests/vectors/container_signed.bin
constexpr std::uint8_t kSignedContainer[] = {
    0x52, 0x54, 0x43, 0x42, 0x01, 0x00, 0xb8, 0x00, 0x00, 0x00, 0x02, 0x70, 0x40, 0x00, 0x00, 0x00,
    0x00, 0x04, 0x01, 0x00, 0xbc, 0x0a, 0x00, 0x00, 0x64, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x1d, 0x9f, 0x1c, 0xb2, 0xfb, 0xa3, 0x0b, 0x5f, 0xfa, 0xfd, 0x42, 0xe8, 0xd9, 0xd6, 0x32, 0xe4,
    0x9d, 0x62, 0xf6, 0x65, 0x37, 0x0b, 0x51, 0x76, 0x1b, 0xa3, 0x7e, 0x77, 0x6e, 0x2c, 0xa1, 0xb0,
    0x4c, 0x1b, 0x08, 0xcd, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x68, 0x00, 0x01, 0x00, 0x00, 0x00,
    0x05, 0x00, 0x00, 0x00, 0xd7, 0x5a, 0x98, 0x01, 0x82, 0xb1, 0x0a, 0xb7, 0xd5, 0x4b, 0xfe, 0xd3,
    0xc9, 0x64, 0x07, 0x3a, 0x0e, 0xe1, 0x72, 0xf3, 0xda, 0xa6, 0x23, 0x25, 0xaf, 0x02, 0x1a, 0x68,
    0xf7, 0x07, 0x51, 0x1a, 0xe0, 0x66, 0x4f, 0x3e, 0x59, 0x63, 0xfb, 0x1a, 0x85, 0xca, 0xf4, 0xb4,
    0x28, 0x0a, 0x8d, 0x10, 0xe8, 0x99, 0xf5, 0x3d, 0x16, 0x5f, 0x3e, 0x73, 0x25, 0xe4, 0x9f, 0x6d,
    0x90, 0xef, 0x32, 0xb5, 0x50, 0x5d, 0x0a, 0x6a, 0x2f, 0xc5, 0x56, 0xfc, 0xb5, 0x53, 0xec, 0x5f,
    0x47, 0xb5, 0x84, 0xff, 0x53, 0x3c, 0xdb, 0xe7, 0x6e, 0x02, 0x76, 0x60, 0xdf, 0x86, 0xda, 0x90,
    0x8f, 0x81, 0x21, 0x04, 0x7c, 0x16, 0x59, 0xf1, 0x00, 0x00, 0x02, 0x20, 0x09, 0x00, 0x02, 0x70,
    0x03, 0x0a, 0x11, 0x18, 0x1f, 0x26, 0x2d, 0x34, 0x3b, 0x42, 0x49, 0x50, 0x57, 0x5e, 0x65, 0x6c,
    0x73, 0x7a, 0x81, 0x88, 0x8f, 0x96, 0x9d, 0xa4, 0xab, 0xb2, 0xb9, 0xc0, 0xc7, 0xce, 0xd5, 0xdc,
    0xe3, 0xea, 0xf1, 0xf8, 0xff, 0x06, 0x0d, 0x14, 0x1b, 0x22, 0x29, 0x30, 0x37, 0x3e, 0x45, 0x4c,
    0x53, 0x5a, 0x61, 0x68, 0x6f, 0x76, 0x7d, 0x84,
};

// RFC 8032 section 7.1 TEST 1 public key.
constexpr std::uint8_t kTestKey[32] = {
    0xd7, 0x5a, 0x98, 0x01, 0x82, 0xb1, 0x0a, 0xb7, 0xd5, 0x4b, 0xfe, 0xd3, 0xc9, 0x64, 0x07, 0x3a,
    0x0e, 0xe1, 0x72, 0xf3, 0xda, 0xa6, 0x23, 0x25, 0xaf, 0x02, 0x1a, 0x68, 0xf7, 0x07, 0x51, 0x1a,
};

constexpr std::uint32_t kInstalledLength = 3000;
std::vector<std::uint8_t> installed_payload() {
  std::vector<std::uint8_t> bytes(kInstalledLength);
  for (std::uint32_t i = 0; i < kInstalledLength; ++i) bytes[i] = static_cast<std::uint8_t>(i * 29);
  store_le32(bytes.data(), mm::kDtcmBase + 0x1000);
  store_le32(bytes.data() + 4, mm::kAppAddress | 1U);
  return bytes;
}

void install_directly(test::NorFlashFake& flash, const std::vector<std::uint8_t>& payload) {
  flash.load(mm::kAppOffset, payload.data(), payload.size());
  journal::Record commit;
  commit.type = journal::RecordType::kCommit;
  commit.sequence = 1;
  commit.payload_length = kInstalledLength;
  commit.payload_crc32 = crc32(0, payload.data(), payload.size());
  commit.image_version = 7;
  SoftwareSha256 sha;
  sha.update(payload.data(), payload.size());
  sha.finish(commit.payload_sha256);
  std::uint8_t bytes[journal::kRecordSize];
  journal::encode_record(commit, bytes);
  flash.load(mm::kJournalOffset, bytes, sizeof bytes);
}

bool header_refusal(FlashDetail detail) {
  switch (detail) {
    case FlashDetail::kBadMagic:
    case FlashDetail::kBadFormatVersion:
    case FlashDetail::kBadHeaderLength:
    case FlashDetail::kBadHeaderCrc:
    case FlashDetail::kLoadAddress:
    case FlashDetail::kTooLarge:
    case FlashDetail::kProductMismatch:
    case FlashDetail::kUnsupportedFlags:
    case FlashDetail::kBadVectorTable:
    case FlashDetail::kSignatureMissing:
    case FlashDetail::kSignatureMalformed:
    case FlashDetail::kUnknownKey:
    case FlashDetail::kBadSignature:
    case FlashDetail::kCounterRollback:
      return true;
    default:
      return false;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 3 || size > 2048) return 0;
  const std::uint8_t flags = data[0];
  KeyRecord key_record;
  std::memcpy(key_record.public_key, kTestKey, sizeof kTestKey);
  key_record.min_security_counter = data[1];
  std::uint32_t random = data[2] * 2654435761U + 1U;
  std::vector<std::uint8_t> stream(kSignedContainer, kSignedContainer + sizeof kSignedContainer);
  for (std::size_t i = 3; i + 1 < size; i += 2) stream[data[i] % stream.size()] ^= data[i + 1];
  const std::uint16_t header_length = load_le16(stream.data() + 6);
  if ((flags & 2) != 0 && header_length >= image::kMinHeaderLength &&
      header_length <= stream.size() && header_length % 4 == 0) {
    store_le32(stream.data() + header_length - 4, crc32(0, stream.data(), header_length - 4U));
  }

  static test::NorFlashFake flash(test::NorTiming{2, 5, 7, 9});
  flash.reset_touched();
  std::memset(flash.contents().data() + mm::kAppOffset, 0xFF, kInstalledLength);
  std::memset(flash.contents().data() + mm::kJournalOffset, 0xFF,
              mm::kJournalSectors * mm::kSectorSize);
  const bool start_installed = (flags & 1) != 0;
  const std::vector<std::uint8_t> old_payload = installed_payload();
  if (start_installed) install_directly(flash, old_payload);
  GuardedFlash guard(flash);
  SoftwareSha256 sha;
  std::vector<std::uint8_t> ring(4096);
  journal::InstallJournal journal(guard);
  journal.load();
  FlashWriter writer(guard, sha, ring);
  const image::Expectation expectation{kVendor, kProduct, mm::kAppAddress, mm::kAppSize};
  ProgramDownload download(writer, journal, sha, expectation);
  download.require_signature(key_record);

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
  bool open = download.begin((flags & 4) != 0, static_cast<std::uint32_t>(stream.size())) ==
              canopen::Abort::kNone;
  std::size_t offset = 0;
  while (open && offset < stream.size()) {
    std::uint32_t chunk = 1 + next_random() % 96;
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
  const bool ended = open && download.end() == canopen::Abort::kNone;
  for (int i = 0; i < 1'000'000 && download.busy(); ++i) poll();
  FUZZ_CHECK(!download.busy());
  FUZZ_CHECK(flash.violations().empty());
  FUZZ_CHECK(guard.refused() == 0);

  const auto detail = static_cast<FlashDetail>(download.flash_status(1) >> 16);
  if (header_refusal(detail)) {
    FUZZ_CHECK(flash.mutating_ops() == 0);
    if (start_installed) {
      journal::InstallJournal reread(flash);
      reread.load();
      FUZZ_CHECK(reread.installed().valid);
      FUZZ_CHECK(reread.installed().payload_crc32 ==
                 crc32(0, old_payload.data(), old_payload.size()));
    }
  }

  const bool new_commit =
      journal.installed().valid &&
      !(start_installed && journal.installed().payload_length == kInstalledLength &&
        journal.installed().image_version == 7);
  if (new_commit) {
    FUZZ_CHECK(ended);
    image::Header header;
    FUZZ_CHECK(image::parse(stream.data(), stream.size(), expectation, header).ok());
    image::SignatureRecord record;
    const image::RecordsResult records =
        image::find_signature(stream.data(), header.header_length, record);
    FUZZ_CHECK(records.check.ok() && records.has_signature);
    FUZZ_CHECK(record.security_counter >= key_record.min_security_counter);
    image::SignatureRecord original;
    image::find_signature(kSignedContainer, image::kSignedHeaderLength, original);
    std::uint8_t signed_now[image::kSignedMessageSize];
    std::uint8_t signed_then[image::kSignedMessageSize];
    image::signed_message(stream.data(), record, signed_now);
    image::signed_message(kSignedContainer, original, signed_then);
    FUZZ_CHECK(std::memcmp(signed_now, signed_then, sizeof signed_now) == 0);
    FUZZ_CHECK(std::memcmp(record.signature, original.signature, image::kSignatureSize) == 0);
    FUZZ_CHECK(std::memcmp(flash.contents().data() + mm::kAppOffset,
                           stream.data() + header.header_length, header.payload_length) == 0);
  }
  return 0;
}
