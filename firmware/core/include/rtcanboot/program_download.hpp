// CiA 302-3 program download for the bootloader: 0x1F50:1 (the image container, streamed),
// 0x1F51:1 (program control), 0x1F56:1 (CRC-32 of the installed payload), 0x1F57:1 (flash
// status). It parses and checks the container header before anything is erased, hashes the
// payload as it arrives, hands it to the flash manager, and after the last byte answers the SDO
// at once while programming, read-back verification and the COMMIT record finish in poll().
//
// A download without a prior 0x1F51 clear is accepted: a committed application is revoked
// (REVOKE record) before its first sector is erased, and erasing then runs lazily ahead of the
// data. The REVOKE waits until every check on the first bytes passed: the container header, the
// announced size and the payload's vector table. A download refused by any of them, or that
// fails before any flash work, leaves the installed application valid; one that fails after its
// REVOKE but before its first erase or program writes the old COMMIT again.
//
// A 0x1F51 clear is done (0x1F57 bit 0 clear) as soon as its REVOKE record is on the flash. The
// erase it starts goes on in the background while the node is idle and gives way to the next
// download, which erases what it needs just ahead of its data: no master waits for a whole
// region to be erased before it may send (docs/canopen.md, "Clear").
// A sparse container (header flag bit 0, an extents record) carries only some 4 KiB sectors of
// the image: after the REVOKE only those are erased and programmed, then the whole image is read
// back and must match the header's CRC-32 and SHA-256 (of the full image) before the COMMIT.
// Its streamed bytes are not the image, so they are not hashed on arrival; a mismatch after
// programming is reported as write error / kSparseVerifyFailed and nothing is committed.
//
// A compressed container (flag bit 1, either kind) carries one raw LZMA1 stream per extent (the
// whole image is one): the decoder (lzma_stream.hpp) holds the compressed input, free_space() is
// its room, and the decompressed bytes go from its window to the flash manager's ring as the ring
// takes them (write() and poll()). A stream that breaks a rule is refused at once (abort
// 0x0800_0020, kBadCompressedStream), or, when found by the background decoding after the
// transfer, reported in 0x1F57. The decompressed bytes are not hashed on arrival: the read-back
// checks the image against the header (a whole compressed image that differs: 3 / 35).
#pragma once

#include <cstdint>

#include "rtcanboot/canopen_defs.hpp"
#include "rtcanboot/ed25519.hpp"
#include "rtcanboot/flash_writer.hpp"
#include "rtcanboot/hash.hpp"
#include "rtcanboot/image_format.hpp"
#include "rtcanboot/install_journal.hpp"
#include "rtcanboot/key_record.hpp"
#include "rtcanboot/key_store.hpp"
#include "rtcanboot/lzma_stream.hpp"
#include "rtcanboot/program_control.hpp"

namespace rtcanboot {

// Confirms the installed image before a 0x1F51 start or reset runs it: the bootloader's CRC check
// after an entry request may still be running (Bootloader, ImageCheck).
class StartGate {
 public:
  // Finishes whatever check is pending; false when the image must not be started (found damaged,
  // or the check cannot run now).
  virtual bool confirm_installed_image() = 0;

 protected:
  ~StartGate() = default;
};

class ProgramDownload final : public ProgramControl, public DownloadSink {
 public:
  // `writer` and `journal` share one FlashPort; ProgramDownload makes sure only one of them has
  // an operation in flight. `sha` is used for the streaming hash and then for the read-back.
  ProgramDownload(FlashWriter& writer, journal::InstallJournal& journal, Sha256Engine& sha,
                  const image::Expectation& expectation);

  // Background work (programming, verification, journal records, clear). Call often while
  // busy(); each call does one small step.
  void poll();
  // A download, its completion, a clear, or a failed one's last flash operation is running.
  bool busy() const { return phase_ != Phase::kIdle; }
  // A download, its completion or a clear is running (0x1F57 bit 0): a failed download is over
  // for the master at once, while the flash operation it left in flight completes.
  bool in_progress() const { return busy() && phase_ != Phase::kAbandoning; }
  // poll() has work now (false while a download only waits for data).
  bool needs_poll() const;
  // No flash operation is in flight (safe moment for a reset).
  bool flash_quiet() const {
    return !writer_.operation_in_flight() && !journal_.operation_in_flight() &&
           !key_write_running();
  }
  bool key_write_running() const { return key_store_ != nullptr && key_store_->busy(); }
  // 0x1F51 start was accepted since the last call (the owner starts the application once the
  // SDO response has left).
  bool take_start_request() {
    const bool requested = start_requested_;
    start_requested_ = false;
    return requested;
  }
  const journal::InstalledImage& installed() const { return journal_.installed(); }
  // A committed application the boot decision found damaged does not count as a valid program.
  void mark_installed_damaged() { damaged_ = true; }
  bool installed_damaged() const { return damaged_; }
  // After the boot decision: with no valid program to offer (none committed, or damaged),
  // 0x1F57:1 reports "no valid program" (CiA 302-3 code 1) until a clear or a download sets its
  // own status.
  void report_boot_state() {
    if (flash_refused_ != canopen::FlashDetail::kNone) {
      set_status(canopen::FlashStatus::kWriteError, flash_refused_);
    } else if (!valid_program()) {
      set_status(canopen::FlashStatus::kNoValidProgram, canopen::FlashDetail::kNone);
    }
  }
  // Why the bootloader does not start the installed image by itself (trial boot used up: code
  // 1, detail kNotConfirmed; attempt record failed: code 5, kJournalFailed), shown in 0x1F57
  // until a clear or a download sets its own status. A master may still start it explicitly.
  void report_boot_failure(canopen::FlashStatus status, canopen::FlashDetail detail) {
    set_status(status, detail);
  }
  // From now on every container must carry a signature record by the record's key that
  // verifies, with a security counter of at least its min_security_counter and of at least the
  // highest counter committed before (install journal, anti-rollback); else it is refused
  // with 0x1F57 code 65 and its own detail before anything is written (docs/security.md). A
  // record with a wrong magic or a key that ed25519::valid_public_key() refuses makes every
  // container refused (kUnknownKey): fail closed. `record` must outlive this object. Without
  // this call no signature is asked for.
  void require_signature(const KeyRecord& record);
  // A bootloader built without a key: the keys provisioned over CAN decide (key_store.hpp). In
  // kNone (provisioning state) unsigned containers are accepted; once the store holds keys, a
  // container must be signed by one of them (the signature record's key A, SHA-256(A) listed);
  // in kInterrupted or kWriting every container is refused (kUnknownKey): fail closed. A
  // download cannot begin (and a clear is refused) while the store writes. `store` must outlive
  // this object.
  void use_key_store(const KeyStore& store) { key_store_ = &store; }
  // A signature by `public_key` (container or provisioning request) may be verified: it is the
  // built-in key (usable), or SHA-256 of it is in the complete key store.
  bool accepts_key(const std::uint8_t public_key[ed25519::kPublicKeySize]) const;
  bool signature_required() const {
    return signing_key_ != nullptr ||
           (key_store_ != nullptr && key_store_->state() != KeyStoreState::kNone);
  }

  // A clear's background erase (the only flash work while idle) stops after the operation in
  // flight: the sector digests (0x5F02) want the flash as it then stays. The region is revoked
  // already; a later download erases what it needs itself.
  void stop_background_erase() {
    if (phase_ == Phase::kIdle && writer_.state() == FlashWriter::State::kErasing) writer_.stop();
  }
  // The port cannot erase or program (`why`): downloads and clears are refused with abort
  // 0x0606_0000 and 0x1F57:1 keeps reporting write error with `why`.
  void refuse_flash_work(canopen::FlashDetail why) { flash_refused_ = why; }
  // Asked before a start or reset is accepted. `gate` must outlive this object.
  void set_start_gate(StartGate* gate) { start_gate_ = gate; }
  // A committed, undamaged application that no clear is removing.
  bool valid_program() const {
    return journal_.installed().valid && !damaged_ && phase_ != Phase::kClearing &&
           !clear_revoke_pending_;
  }

  // ProgramControl
  DownloadSink* program_data(std::uint8_t sub) override;
  canopen::Abort control(std::uint8_t sub, std::uint8_t command) override;
  std::uint8_t control_state(std::uint8_t sub) const override;
  std::uint32_t software_id(std::uint8_t sub) const override;
  std::uint32_t flash_status(std::uint8_t sub) const override;
  std::uint8_t program_count() const override { return 1; }

  // Listen-along download (ListenAlong): the container must be the image with this payload
  // CRC-32 (0: any), else it is refused at the header with kNotTheExpectedImage. Call after
  // begin(), which forgets it.
  void expect_image(std::uint32_t payload_crc32) { expected_image_crc_ = payload_crc32; }
  // Ends a download whose stream is known to be incomplete (gaps written as 0xFF): everything
  // received is programmed, nothing is committed, 0x1F57 reports kIncompleteStream. The master
  // repairs it with a sparse container of the sectors that differ.
  canopen::Abort end_without_commit();

  // DownloadSink
  canopen::Abort begin(bool size_known, std::uint32_t size) override;
  std::uint32_t free_space() const override;
  canopen::Abort write(const std::uint8_t* data, std::uint32_t length) override;
  canopen::Abort end() override;
  void cancel(canopen::Abort reason, CancelCause cause) override;

  // The container header of the current (or last) download.
  const image::Header& header() const { return header_; }

 private:
  enum class Phase : std::uint8_t {
    kIdle,
    kHeader,      // SDO transfer open, collecting the container header
    kPayload,     // SDO transfer open, payload streaming to flash
    kFinishing,   // transfer complete: programming the rest, verifying
    kCommitting,  // COMMIT record being written
    kClearing,    // 0x1F51 clear: its REVOKE (the erase then runs in the background)
    kAbandoning,  // failed or cancelled: waiting for the flash operation in flight
  };

  canopen::Abort take_header(const std::uint8_t*& data, std::uint32_t& length);
  // The signature checks on a parsed header (require_signature()); OK when none is required.
  // Sets accepted_counter_ (0 without a signature check).
  image::CheckResult check_signature_of_header();
  canopen::Abort reject(canopen::Abort abort, canopen::FlashStatus status,
                        canopen::FlashDetail detail);
  // A failure found by poll(): the status, and the abort for the transfer's next segment while
  // it is still open (a flash failure: 0x0606_0000; the data's fault: 0x0800_0020).
  void fail_background(canopen::FlashStatus status, canopen::FlashDetail detail,
                       canopen::Abort abort = canopen::Abort::kHardware);
  bool revoke_then_arm();
  // Decompressed bytes go through the same path as a plain payload's: vector table, hashing,
  // the ring. kNone, or the detail to refuse the download with (kBadVectorTable).
  canopen::FlashDetail take_payload(const std::uint8_t* data, std::uint32_t length);
  // Moves decompressed bytes from the decoder into the ring while it has room.
  canopen::FlashDetail pump_decoder();
  // The payload's vector table (its first 8 bytes) has not arrived yet: the last check that can
  // refuse an image from its first bytes. Until it passed, no REVOKE and no erase (a clear the
  // download interrupted still gets its REVOKE: the master asked for it).
  bool awaiting_first_checks() const {
    return phase_ == Phase::kPayload && vectors_in_stream_ && payload_received_ < sizeof vectors_ &&
           !clear_revoke_pending_;
  }
  void abandon();
  void set_status(canopen::FlashStatus status, canopen::FlashDetail detail) {
    status_ = status;
    detail_ = detail;
  }

  FlashWriter& writer_;
  journal::InstallJournal& journal_;
  Sha256Engine& sha_;
  image::Expectation expectation_;

  Phase phase_ = Phase::kIdle;
  bool transfer_open_ = false;
  bool armed_ = false;  // revoke done, flash work of the current job may run
  bool start_requested_ = false;
  canopen::FlashDetail flash_refused_ = canopen::FlashDetail::kNone;
  StartGate* start_gate_ = nullptr;
  std::uint32_t expected_image_crc_ = 0;
  bool uncommitted_end_ = false;
  bool revoke_requested_ = false;
  bool clear_revoke_pending_ = false;  // a download interrupted a clear before its REVOKE
  bool damaged_ = false;
  // This download's REVOKE went out and nothing of the application was erased or programmed yet.
  bool revoked_untouched_ = false;
  bool reinstate_pending_ = false;  // write revoked_image_'s COMMIT again (see abandon())
  journal::InstalledImage revoked_image_;
  canopen::Abort pending_abort_ = canopen::Abort::kNone;  // for the next write()/end()
  canopen::FlashStatus status_ = canopen::FlashStatus::kOk;
  canopen::FlashDetail detail_ = canopen::FlashDetail::kNone;

  const std::uint8_t* signing_key_ = nullptr;  // nullptr: unsigned containers are accepted
  const KeyStore* key_store_ = nullptr;        // without signing_key_: the provisioned keys
  bool signing_key_usable_ = false;
  std::uint32_t min_security_counter_ = 0;
  // The verified security counter of the current download (0 when no signature is required):
  // its COMMIT records it in the install journal.
  std::uint32_t accepted_counter_ = 0;

  bool size_known_ = false;
  std::uint32_t announced_size_ = 0;
  std::uint8_t header_bytes_[image::kMaxHeaderLength] = {};
  std::uint32_t header_received_ = 0;
  image::Header header_;
  std::uint32_t payload_received_ = 0;
  std::uint32_t payload_crc32_ = 0;
  std::uint8_t vectors_[8] = {};
  // Sparse container: the runs it carries, and whether its stream starts with sector 0 (then the
  // vector table is checked on arrival; otherwise on the read-back, before the COMMIT).
  bool sparse_ = false;
  bool vectors_in_stream_ = true;
  std::uint32_t stream_length_ = 0;  // payload bytes the transfer carries
  image::ExtentList extents_;
  bool patch_ = false;  // a patch container: runs of bytes onto flash that reads 0xFF
  image::PatchList patch_runs_;
  // Compressed container: the decoder; finish_write() is due once it is drained after the end.
  bool compressed_ = false;
  bool finish_pending_ = false;
  lzma::StreamDecoder decoder_;
};

}  // namespace rtcanboot
