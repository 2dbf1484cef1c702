// The install journal and the provisioning reader on corrupted flash (issue 16, item 17): the
// input writes arbitrary bytes, and records with valid CRCs but arbitrary fields, into the two
// journal sectors and the provisioning sector of the strict NOR flash fake; then the bootloader's
// start-up readers run on it.
//
// Invariants: no crash or UB; the journal's decision is the newest record whose checks pass (an
// image counts as installed only if such a record says so); the boot decision starts or reports
// valid only an image whose vector table and CRC-32 in flash match its record; the next record
// the journal appends lands on blank flash inside the journal and is the one a fresh reader
// decides on; provisioning is either valid with fields in range (and survives an encode/decode
// round trip) or exactly the documented defaults.
//
// Input: byte 0 = flags, byte 1 = appended record kind, then slot operations until the input
// ends, each one byte (bits 0..4: slot 0..31 across both sectors; bits 5..7: kind) and operands:
//   kind 0..2: raw bytes: length (1 byte, up to 64 + 192) and that many bytes, at the slot start
//   kind 3..5: a record encoded with a valid CRC: type (1), sequence (4), payload length (4),
//              version (1), attempts (1), corruption (1: 0 none, else flips bit n - 1 of the
//              64 bytes); type bit 7 = the record describes the application in flash exactly
//   kind 6:    the provisioning sector gets raw bytes: length (1) and that many bytes
//   kind 7:    the provisioning sector gets an encoded record: node-ID (1), bit-rate index (1),
//              window (2), serial (2), attempts (1), corruption (1)
// flags bit 0: the application in flash has a bad vector table; bit 1: entry requested.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "fuzz_check.hpp"
#include "nor_flash_fake.hpp"
#include "rtcanboot/boot_decision.hpp"
#include "rtcanboot/bytes.hpp"
#include "rtcanboot/hash.hpp"
#include "rtcanboot/install_journal.hpp"
#include "rtcanboot/memory_map.hpp"
#include "rtcanboot/provisioning.hpp"

namespace {

using namespace rtcanboot;
namespace mm = memory_map;
using journal::Record;
using journal::RecordType;

constexpr std::uint32_t kAppLength = 3000;
constexpr std::uint32_t kSlots = journal::kSlotsPerSector * journal::kSectors;

class Input {
 public:
  Input(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
  bool empty() const { return offset_ >= size_; }
  std::uint8_t byte() { return offset_ < size_ ? data_[offset_++] : 0; }
  std::uint32_t le32() {
    std::uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v |= std::uint32_t{byte()} << (8 * i);
    return v;
  }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t offset_ = 0;
};

std::vector<std::uint8_t> application(bool bad_vectors) {
  std::vector<std::uint8_t> bytes(kAppLength);
  for (std::uint32_t i = 0; i < kAppLength; ++i) bytes[i] = static_cast<std::uint8_t>(i * 13 + 1);
  store_le32(bytes.data(), bad_vectors ? 0x1234'5678U : mm::kDtcmBase + 0x2000);
  store_le32(bytes.data() + 4, mm::kAppAddress | 1U);
  return bytes;
}

std::uint32_t slot_offset(std::uint32_t slot) {
  return mm::kJournalOffset + slot * journal::kSlotSize;
}

bool same_state(const journal::InstalledImage& a, const journal::InstalledImage& b) {
  if (a.valid != b.valid) return false;
  if (!a.valid) return true;
  return a.payload_length == b.payload_length && a.payload_crc32 == b.payload_crc32 &&
         a.image_version == b.image_version && a.confirmed == b.confirmed &&
         a.attempts == b.attempts &&
         std::memcmp(a.payload_sha256, b.payload_sha256, sizeof a.payload_sha256) == 0;
}

bool same_provisioning(const Provisioning& a, const Provisioning& b) {
  return a.node_id == b.node_id && a.bitrate == b.bitrate && a.boot_window_ms == b.boot_window_ms &&
         a.serial == b.serial && a.boot_attempts == b.boot_attempts &&
         a.listen_window_ms == b.listen_window_ms;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2 || size > 16'384) return 0;
  Input in(data, size);
  const std::uint8_t flags = in.byte();
  const std::uint8_t append_kind = in.byte();

  // One flash for all runs: the regions a run uses are blanked again by hand.
  static test::NorFlashFake flash(test::NorTiming{1, 3, 5, 7});
  flash.reset_touched();
  std::memset(flash.contents().data() + mm::kProvisioningOffset, 0xFF,
              mm::kSectorSize * (1 + journal::kSectors));
  std::memset(flash.contents().data() + mm::kAppOffset, 0xFF, kAppLength);
  const std::vector<std::uint8_t> app = application((flags & 1) != 0);
  flash.load(mm::kAppOffset, app.data(), app.size());
  const std::uint32_t app_crc = crc32(0, app.data(), app.size());
  std::uint8_t app_sha[32];
  {
    SoftwareSha256 sha;
    sha.update(app.data(), app.size());
    sha.finish(app_sha);
  }

  std::uint8_t* memory = flash.contents().data();
  while (!in.empty()) {
    const std::uint8_t op = in.byte();
    const std::uint32_t slot = op & 0x1FU;
    const unsigned kind = op >> 5;
    if (kind <= 2) {
      const std::uint32_t length = in.byte();
      for (std::uint32_t i = 0; i < length && slot_offset(slot) + i < mm::kFlashSize; ++i) {
        memory[slot_offset(slot) + i] = in.byte();
      }
    } else if (kind <= 5) {
      const std::uint8_t type = in.byte();
      Record record;
      record.type = static_cast<RecordType>(type & 0x7F);
      record.sequence = in.le32();
      record.payload_length = in.le32();
      record.image_version = in.byte();
      record.attempts = in.byte();
      record.payload_crc32 = record.payload_length * 2654435761U;
      std::memset(record.payload_sha256, record.image_version, sizeof record.payload_sha256);
      if ((type & 0x80) != 0) {
        record.payload_length = kAppLength;
        record.payload_crc32 = app_crc;
        std::memcpy(record.payload_sha256, app_sha, sizeof app_sha);
      }
      std::uint8_t bytes[journal::kRecordSize];
      journal::encode_record(record, bytes);
      const std::uint8_t corrupt = in.byte();
      if (corrupt != 0) {
        const unsigned bit = (corrupt - 1U) % (journal::kRecordSize * 8);
        bytes[bit / 8] = static_cast<std::uint8_t>(bytes[bit / 8] ^ (1U << (bit % 8)));
      }
      std::memcpy(memory + slot_offset(slot), bytes, sizeof bytes);
    } else if (kind == 6) {
      const std::uint32_t length = in.byte();
      for (std::uint32_t i = 0; i < length; ++i) memory[mm::kProvisioningOffset + i] = in.byte();
    } else {
      static constexpr std::uint32_t kRates[] = {10'000,  20'000,  50'000,    125'000, 250'000,
                                                 500'000, 800'000, 1'000'000, 33'333,  0};
      Provisioning p;
      p.node_id = in.byte();
      p.bitrate = kRates[in.byte() % 10];
      p.boot_window_ms = in.byte() | (std::uint32_t{in.byte()} << 8);
      p.serial = in.byte() | (std::uint32_t{in.byte()} << 8);
      p.boot_attempts = in.byte();
      std::uint8_t bytes[kProvisioningRecordSize];
      std::memset(bytes, 0xFF, sizeof bytes);
      const bool encoded = encode_provisioning(p, bytes, sizeof bytes);
      // Node-ID 0xFF: unconfigured (LSS); boot attempts 255 would be stored as "off", which the
      // struct writes as 0.
      FUZZ_CHECK(encoded == (lss::valid_node_id(p.node_id) && is_cia301_bitrate(p.bitrate) &&
                             p.boot_attempts != 255));
      const std::uint8_t corrupt = in.byte();
      if (corrupt != 0) {
        const unsigned bit = (corrupt - 1U) % (kProvisioningRecordSize * 8);
        bytes[bit / 8] = static_cast<std::uint8_t>(bytes[bit / 8] ^ (1U << (bit % 8)));
      }
      std::memcpy(memory + mm::kProvisioningOffset, bytes, sizeof bytes);
    }
  }

  // Provisioning: valid with every field in range, or exactly the defaults.
  bool provisioned = false;
  const Provisioning provisioning = load_provisioning(flash, &provisioned);
  bool decoded_valid = false;
  const Provisioning decoded = decode_provisioning(memory + mm::kProvisioningOffset,
                                                   kProvisioningRecordSize, &decoded_valid);
  FUZZ_CHECK(provisioned == decoded_valid && same_provisioning(provisioning, decoded));
  if (provisioned) {
    FUZZ_CHECK(lss::valid_node_id(provisioning.node_id));  // 1..127, or 0xFF: unconfigured (LSS)
    FUZZ_CHECK(is_cia301_bitrate(provisioning.bitrate));
    std::uint8_t again[kProvisioningRecordSize];
    FUZZ_CHECK(encode_provisioning(provisioning, again, sizeof again));
    bool again_valid = false;
    FUZZ_CHECK(
        same_provisioning(decode_provisioning(again, sizeof again, &again_valid), provisioning));
    FUZZ_CHECK(again_valid);
  } else {
    FUZZ_CHECK(same_provisioning(provisioning, Provisioning{}));
  }

  // The journal decides on the newest record whose checks pass.
  journal::InstallJournal reader(flash);
  reader.load();
  bool found = false;
  Record newest;
  for (std::uint32_t slot = 0; slot < kSlots; ++slot) {
    Record record;
    if (journal::decode_record(memory + slot_offset(slot), record) &&
        (!found || record.sequence > newest.sequence)) {
      found = true;
      newest = record;
    }
  }
  FUZZ_CHECK(same_state(reader.installed(),
                        found ? journal::state_after(newest) : journal::InstalledImage{}));
  FUZZ_CHECK(reader.last_sequence() == (found ? newest.sequence : 0));
  if (reader.installed().valid) {
    FUZZ_CHECK(found && newest.type != RecordType::kRevoke);
  }

  // The boot decision starts (or calls valid) only an image that matches its record in flash.
  for (const std::uint8_t attempts : {std::uint8_t{0}, std::uint8_t{3}}) {
    const BootDecision decision =
        decide_boot(flash, reader.installed(), (flags & 2) != 0, attempts);
    if (decision.start_application) FUZZ_CHECK(decision.application_valid && (flags & 2) == 0);
    // With an entry request the CRC is checked afterwards, by ImageCheck, before any start.
    bool intact = decision.application_valid;
    if (decision.crc_check_deferred) {
      FUZZ_CHECK(decision.application_valid && (flags & 2) != 0 && !decision.start_application);
      ImageCheck check;
      check.begin(flash, reader.installed());
      intact = check.step(flash, mm::kAppSize) == ImageCheck::Result::kIntact;
    }
    if (intact) {
      const journal::InstalledImage& image = reader.installed();
      FUZZ_CHECK(image.valid);
      FUZZ_CHECK(image.payload_length >= 8 && image.payload_length <= mm::kAppSize);
      FUZZ_CHECK(vector_table_sane(load_le32(memory + mm::kAppOffset),
                                   load_le32(memory + mm::kAppOffset + 4), image.payload_length));
      FUZZ_CHECK(crc32(0, memory + mm::kAppOffset, image.payload_length) == image.payload_crc32);
      FUZZ_CHECK((flags & 1) == 0 || image.payload_length != kAppLength);
    }
  }

  // The next record lands on blank flash inside the journal, and a fresh reader decides on it.
  flash.reset_touched();
  journal::InstallJournal writer(flash);
  writer.load();
  const journal::InstalledImage before = writer.installed();
  journal::InstalledImage expected;
  bool started = false;
  switch (append_kind % 4) {
    case 0:
      started = writer.append_revoke();
      break;
    case 1: {
      journal::InstalledImage image;
      image.valid = true;
      image.payload_length = kAppLength;
      image.payload_crc32 = app_crc;
      image.image_version = append_kind;
      std::memcpy(image.payload_sha256, app_sha, sizeof app_sha);
      started = writer.append_commit(image);
      expected = image;
      break;
    }
    case 2:
      if (!before.valid || before.confirmed) return 0;
      started = writer.append_attempt();
      expected = before;
      ++expected.attempts;
      break;
    default:
      if (!before.valid || before.confirmed) return 0;
      started = writer.append_confirm();
      expected = before;
      expected.confirmed = true;
      expected.attempts = 0;
      break;
  }
  FUZZ_CHECK(started);
  Micros now = 0;
  for (int i = 0; i < 100'000 && writer.busy(); ++i) {
    now += 3;
    flash.set_now(now);
    writer.poll();
  }
  FUZZ_CHECK(!writer.busy());
  FUZZ_CHECK(flash.violations().empty());
  for (const test::NorFlashFake::Operation& op : flash.operations()) {
    FUZZ_CHECK(op.offset >= mm::kJournalOffset &&
               op.offset + op.length <= mm::kJournalOffset + journal::kSectors * mm::kSectorSize);
  }
  if (writer.failed()) return 0;
  journal::InstallJournal reread(flash);
  reread.load();
  FUZZ_CHECK(same_state(reread.installed(), expected));
  FUZZ_CHECK(same_state(writer.installed(), expected));
  return 0;
}
