// The install journal: write-once records in two 4 KiB sectors of the records area that say
// whether the application region holds a valid, verified image. docs/flash-records.md describes
// the bytes.
//
// - A COMMIT record is written only after the image was read back and verified.
// - A REVOKE record is written before anything of a committed application is erased.
// - Records live in a RecordLog (rtcanboot/record_log.hpp): write-once pages, a torn record is
//   skipped, the highest sequence number decides, two sectors used in turn.
// - Trial boot: a COMMIT installs an unconfirmed image. Each start of an unconfirmed image is
//   recorded first (ATTEMPT n); the application's confirm() writes CONFIRM. Every record carries
//   the whole state (image fields, attempts), so the newest record alone decides even after the
//   older sector was erased.
// - Anti-rollback: every record also carries the highest security counter of a signed image that
//   committed (docs/security.md). Only a COMMIT raises it, in the same record that installs the
//   image; every other record (REVOKE, ATTEMPT, CONFIRM, and the ones written on a sector switch
//   after it) carries it on unchanged. A torn record is skipped and the one before it decides, so
//   a power cut can neither lower the counter nor record one whose image did not commit.
#pragma once

#include <cstddef>
#include <cstdint>

#include "rtcanboot/flash_port.hpp"
#include "rtcanboot/hash.hpp"
#include "rtcanboot/memory_map.hpp"
#include "rtcanboot/record_log.hpp"

namespace rtcanboot::journal {

inline constexpr std::uint32_t kRecordMagic = 0x4A43'5452;  // "RTCJ"
// Format 1 (64 bytes) is a record whose security counter is 0; format 2 (68 bytes) adds the
// counter. Records without a counter keep format 1, which an application built on an older kit
// still reads; a record with a counter is one such an application cannot decode, so its confirm()
// writes nothing (it cannot write a record that drops the counter).
inline constexpr std::uint8_t kRecordFormat = 1;
inline constexpr std::uint8_t kRecordFormatWithCounter = 2;
inline constexpr std::uint32_t kRecordSizeV1 = 64;
inline constexpr std::uint32_t kRecordSize = 68;  // the largest format; a format-1 record is
                                                  // followed by 4 bytes 0xFF
inline constexpr std::uint32_t kSlotSize = RecordLog::kSlotSize;  // one record per page
inline constexpr std::uint32_t kSlotsPerSector = RecordLog::kSlotsPerSector;
inline constexpr std::uint32_t kSectors = memory_map::kJournalSectors;
// Sequence numbers run 1 .. 0xFFFF'FFFE; a record with 0 or this value is never written and is
// ignored when read.
inline constexpr std::uint32_t kNoSequence = 0xFFFF'FFFFU;
static_assert(kRecordSize <= kSlotSize);
static_assert(kSectors == RecordLog::kSectors, "the journal alternates between two sectors");
static_assert(memory_map::kJournalOffset + kSectors * memory_map::kSectorSize <=
              memory_map::kFlashSize);

enum class RecordType : std::uint8_t {
  kCommit = 0x01,   // a verified image, not confirmed yet (0 attempts)
  kRevoke = 0x02,   // no valid image
  kAttempt = 0x03,  // the unconfirmed image is being started for the n-th time
  kConfirm = 0x04,  // the image confirmed that it runs (written by the application kit)
};

struct Record {
  RecordType type = RecordType::kRevoke;
  std::uint32_t sequence = 0;
  std::uint32_t payload_length = 0;  // COMMIT: installed payload; REVOKE: 0
  std::uint32_t payload_crc32 = 0;
  std::uint32_t image_version = 0;
  std::uint8_t payload_sha256[Sha256Engine::kDigestSize] = {};
  std::uint32_t attempts = 0;          // ATTEMPT: how many starts so far (1, 2, ...); else 0
  std::uint32_t security_counter = 0;  // highest counter committed so far (every type)
};

// Writes the kRecordSize bytes of `record` (with its CRC) to `out`.
void encode_record(const Record& record, std::uint8_t out[kRecordSize]);
// False for a blank, torn or foreign record.
bool decode_record(const std::uint8_t bytes[kRecordSize], Record& out);

// What the journal says about the application region.
struct InstalledImage {
  bool valid = false;  // latest record is a COMMIT, ATTEMPT or CONFIRM
  std::uint32_t payload_length = 0;
  std::uint32_t payload_crc32 = 0;
  std::uint32_t image_version = 0;
  std::uint8_t payload_sha256[Sha256Engine::kDigestSize] = {};
  bool confirmed = false;      // the application confirmed it runs (CONFIRM record)
  std::uint32_t attempts = 0;  // unconfirmed starts recorded since the COMMIT
  // The highest security counter of a signed image that committed on this node (0: none), also
  // when no image is valid: a container below it is refused (anti-rollback, docs/security.md).
  std::uint32_t security_counter = 0;
};

// The state a record leaves behind (REVOKE: no valid image; the security counter stays).
InstalledImage state_after(const Record& record);
// The record that moves `image` to `type` with sequence `sequence` (ATTEMPT: attempts + 1). It
// carries `image.security_counter`, also a REVOKE.
Record record_for(const InstalledImage& image, RecordType type, std::uint32_t sequence);

class InstallJournal {
 public:
  explicit InstallJournal(FlashPort& flash);

  // Scans both sectors. The flash must be idle (called once at start-up).
  void load();
  const InstalledImage& installed() const { return installed_; }
  std::uint32_t last_sequence() const { return log_.last_sequence(); }

  // Starts appending a record; progress in poll(). False while an append is running.
  // A COMMIT of `image` records max(image.security_counter, the journal's counter): the counter
  // never goes down, whatever the caller passes.
  bool append_commit(const InstalledImage& image);
  bool append_revoke();
  // Records one more start of the installed, unconfirmed image. The record is placed so that
  // the page after it is erased and in the same sector: the application's CONFIRM then needs
  // one page program only, never an erase.
  bool append_attempt();
  // The application confirms the installed image (application kit, one page program).
  bool append_confirm();
  // Writes `image`'s state again exactly as it was (COMMIT, ATTEMPT n or CONFIRM): undoes a
  // REVOKE after which nothing was erased.
  bool append_state(const InstalledImage& image);

  void poll();
  bool busy() const { return log_.busy(); }
  bool failed() const { return log_.failed(); }
  bool operation_in_flight() const { return log_.operation_in_flight(); }

  // Where the next record goes (tests).
  std::uint32_t active_sector() const { return log_.active_sector(); }
  std::uint32_t next_slot() const { return log_.next_slot(); }

 private:
  bool append(const Record& record, bool reserve_next_slot = false);

  RecordLog log_;
  InstalledImage installed_;
  bool appending_ = false;
  Record pending_;
};

}  // namespace rtcanboot::journal
