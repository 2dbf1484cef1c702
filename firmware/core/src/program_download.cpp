#include "rtcanboot/program_download.hpp"

#include "rtcanboot/boot_decision.hpp"
#include "rtcanboot/bytes.hpp"
#include "rtcanboot/ed25519.hpp"
#include "rtcanboot/memory_map.hpp"

namespace rtcanboot {

using canopen::Abort;
using canopen::FlashDetail;
using canopen::FlashStatus;

namespace {
constexpr std::uint8_t kProgramSub = 1;
}  // namespace

ProgramDownload::ProgramDownload(FlashWriter& writer, journal::InstallJournal& journal,
                                 Sha256Engine& sha, const image::Expectation& expectation)
    : writer_(writer), journal_(journal), sha_(sha), expectation_(expectation) {}

void ProgramDownload::require_signature(const KeyRecord& record) {
  signing_key_ = record.public_key;
  signing_key_usable_ =
      record.magic == kKeyRecordMagic && ed25519::valid_public_key(record.public_key);
  min_security_counter_ = record.min_security_counter;
}

bool ProgramDownload::accepts_key(const std::uint8_t public_key[ed25519::kPublicKeySize]) const {
  if (signing_key_ != nullptr) {
    if (!signing_key_usable_) return false;
    for (std::size_t i = 0; i < ed25519::kPublicKeySize; ++i) {
      if (public_key[i] != signing_key_[i]) return false;
    }
    return true;
  }
  return key_store_ != nullptr && key_store_->holds(public_key) &&
         ed25519::valid_public_key(public_key);
}

DownloadSink* ProgramDownload::program_data(std::uint8_t sub) {
  return sub == kProgramSub ? this : nullptr;
}

Abort ProgramDownload::control(std::uint8_t sub, std::uint8_t command) {
  if (sub != kProgramSub) return Abort::kNoSubIndex;
  switch (static_cast<canopen::ProgramCommand>(command)) {
    case canopen::ProgramCommand::kStop:
      return Abort::kNone;  // the bootloader never runs the program: it is stopped already
    case canopen::ProgramCommand::kStart:
    case canopen::ProgramCommand::kReset:
      if (busy() || transfer_open_ || !valid_program()) return Abort::kDeviceState;
      if (start_gate_ != nullptr && !start_gate_->confirm_installed_image()) {
        return Abort::kDeviceState;
      }
      start_requested_ = true;
      return Abort::kNone;
    case canopen::ProgramCommand::kClear:
      if (flash_refused_ != FlashDetail::kNone) {
        set_status(FlashStatus::kWriteError, flash_refused_);
        return Abort::kHardware;
      }
      if (phase_ == Phase::kClearing) return Abort::kNone;
      if (key_write_running()) return Abort::kDeviceState;
      if (transfer_open_ || (phase_ != Phase::kIdle && phase_ != Phase::kAbandoning)) {
        return Abort::kDeviceState;
      }
      phase_ = Phase::kClearing;
      reinstate_pending_ = false;  // the master wants the program gone
      revoked_untouched_ = false;
      armed_ = false;
      pending_abort_ = Abort::kNone;
      writer_.open_erase(memory_map::kAppOffset, memory_map::kAppSize);
      set_status(FlashStatus::kOk, FlashDetail::kNone);
      return Abort::kNone;
  }
  return Abort::kValueRange;
}

std::uint8_t ProgramDownload::control_state(std::uint8_t) const {
  return static_cast<std::uint8_t>(valid_program() ? canopen::ProgramState::kStopped
                                                   : canopen::ProgramState::kNoProgram);
}

std::uint32_t ProgramDownload::software_id(std::uint8_t) const {
  return valid_program() ? journal_.installed().payload_crc32 : 0;
}

std::uint32_t ProgramDownload::flash_status(std::uint8_t) const {
  if (in_progress()) return canopen::flash_status_word(true, FlashStatus::kOk);
  return canopen::flash_status_word(false, status_, detail_);
}

Abort ProgramDownload::begin(bool size_known, std::uint32_t size) {
  if (phase_ == Phase::kFinishing || phase_ == Phase::kCommitting || key_write_running()) {
    return Abort::kDeviceState;
  }
  if (flash_refused_ != FlashDetail::kNone) {
    set_status(FlashStatus::kWriteError, flash_refused_);
    return Abort::kHardware;
  }
  if (transfer_open_) cancel(Abort::kGeneral, CancelCause::kReplaced);
  // Refuse an impossible size before anything else happens.
  if (size_known && size < image::kMinHeaderLength + image::kMinPayloadLength) {
    set_status(FlashStatus::kDataFormatError, FlashDetail::kLengthMismatch);
    return Abort::kTypeMismatch;
  }
  if (size_known && size > image::kMaxHeaderLength + expectation_.max_payload_length) {
    set_status(FlashStatus::kAddressError, FlashDetail::kTooLarge);
    return Abort::kTypeMismatch;
  }
  // A running clear gives way: its REVOKE still happens (even if this download fails at its
  // header), and the download's own lazy erase takes over what is needed.
  if (phase_ == Phase::kClearing) clear_revoke_pending_ = true;
  writer_.stop();
  phase_ = Phase::kHeader;
  revoked_untouched_ = false;
  transfer_open_ = true;
  armed_ = false;
  pending_abort_ = Abort::kNone;
  size_known_ = size_known;
  announced_size_ = size;
  header_received_ = 0;
  header_ = {};
  sparse_ = false;
  patch_ = false;
  compressed_ = false;
  finish_pending_ = false;
  vectors_in_stream_ = true;
  stream_length_ = 0;
  payload_received_ = 0;
  uncommitted_end_ = false;
  expected_image_crc_ = 0;
  payload_crc32_ = 0;
  sha_.reset();
  set_status(FlashStatus::kOk, FlashDetail::kNone);
  return Abort::kNone;
}

std::uint32_t ProgramDownload::free_space() const {
  // Let a pending abort (or excess data) reach write() promptly.
  if (pending_abort_ != Abort::kNone || !transfer_open_) return writer_.ring_capacity();
  if (phase_ == Phase::kHeader) return writer_.ring_capacity();
  // Ring room, not capped by the rest of the payload: the SDO server wants room for a whole
  // segment even when the last one is shorter; excess data is refused by write().
  if (phase_ == Phase::kPayload && compressed_) return decoder_.free_space();
  if (phase_ == Phase::kPayload && payload_received_ < stream_length_) {
    return writer_.ring_room();
  }
  return writer_.ring_capacity();
}

void ProgramDownload::abandon() {
  transfer_open_ = false;
  // This download revoked the installed program and then failed before its first erase or
  // program: the program's bytes are all still there, so its COMMIT is written again.
  if (revoked_untouched_ && !writer_.job_changed_flash()) reinstate_pending_ = true;
  revoked_untouched_ = false;
  writer_.stop();
  armed_ = false;
  phase_ = Phase::kAbandoning;
}

Abort ProgramDownload::reject(Abort abort, FlashStatus status, FlashDetail detail) {
  set_status(status, detail);
  abandon();
  return abort;
}

Abort ProgramDownload::take_header(const std::uint8_t*& data, std::uint32_t& length) {
  for (;;) {
    std::size_t needed = image::bytes_needed(header_bytes_, header_received_);
    if (needed > image::kMaxHeaderLength) needed = header_received_;  // parse() rejects it
    if (header_received_ >= needed) break;
    if (length == 0) return Abort::kNone;
    const std::size_t want = needed - header_received_;
    const std::uint32_t take = length < want ? length : static_cast<std::uint32_t>(want);
    for (std::uint32_t i = 0; i < take; ++i) header_bytes_[header_received_ + i] = data[i];
    header_received_ += take;
    data += take;
    length -= take;
  }
  const image::CheckResult check =
      image::parse(header_bytes_, header_received_, expectation_, header_);
  if (!check.ok()) return reject(Abort::kCannotStore, check.status, check.detail);
  sparse_ = (header_.flags & image::kFlagSparse) != 0;
  if (sparse_) {
    const image::CheckResult runs = image::parse_extents(header_bytes_, header_, extents_);
    if (!runs.ok()) return reject(Abort::kCannotStore, runs.status, runs.detail);
  }
  patch_ = (header_.flags & image::kFlagPatch) != 0;
  if (patch_) {
    const image::CheckResult runs = image::parse_patch(header_bytes_, header_, patch_runs_);
    if (!runs.ok()) return reject(Abort::kCannotStore, runs.status, runs.detail);
  }
  stream_length_ = sparse_  ? image::sparse_payload_length(extents_, header_.payload_length)
                   : patch_ ? patch_runs_.bytes()
                            : header_.payload_length;
  // A patch's vectors, if it has any, are checked on the read-back with the rest of the image.
  vectors_in_stream_ =
      !patch_ && (!sparse_ || (extents_.count > 0 && extents_.runs[0].first_sector == 0));
  compressed_ = (header_.flags & image::kFlagCompressed) != 0;
  if (size_known_) {
    // A compressed stream: at least the range coder's init bytes per stream; its upper bound is
    // the decoder's (an LZMA stream may be longer than its data), so any larger size is allowed.
    const std::uint32_t streams = sparse_ ? extents_.count : 1;
    const std::uint32_t rest = announced_size_ - header_.header_length;
    const bool fits = announced_size_ >= header_.header_length &&
                      (compressed_ ? rest >= streams * lzma::kInitBytes : rest == stream_length_);
    if (!fits) {
      return reject(Abort::kTypeMismatch, FlashStatus::kDataFormatError,
                    FlashDetail::kLengthMismatch);
    }
  }
  // Last of the header checks, as it is the slow one (a verification holds this write, and the
  // SDO answer to it, about 13 ms; the FlexCAN receive ring holds 256 frames meanwhile).
  const image::CheckResult signature = check_signature_of_header();
  if (!signature.ok()) return reject(Abort::kCannotStore, signature.status, signature.detail);
  if (expected_image_crc_ != 0 && header_.payload_crc32 != expected_image_crc_) {
    return reject(Abort::kCannotStore, FlashStatus::kDataFormatError,
                  FlashDetail::kNotTheExpectedImage);
  }
  phase_ = Phase::kPayload;
  if (compressed_) decoder_.open(sparse_ ? &extents_ : nullptr, header_.payload_length);
  if (sparse_) {
    writer_.open_sparse_write(memory_map::kAppOffset, header_.payload_length, extents_);
  } else if (patch_) {
    writer_.open_patch_write(memory_map::kAppOffset, header_.payload_length, patch_runs_);
  } else {
    writer_.open_write(memory_map::kAppOffset, header_.payload_length);
  }
  return Abort::kNone;
}

image::CheckResult ProgramDownload::check_signature_of_header() {
  accepted_counter_ = 0;
  if (!signature_required()) return {};
  image::SignatureRecord record;
  const image::RecordsResult records =
      image::find_signature(header_bytes_, header_.header_length, record);
  if (!records.check.ok()) return records.check;
  if (!records.has_signature) {
    return {FlashStatus::kNotAuthorised, FlashDetail::kSignatureMissing};
  }
  // The record names its key: the built-in one, or one listed in a complete key store.
  if (!accepts_key(record.public_key)) {
    return {FlashStatus::kNotAuthorised, FlashDetail::kUnknownKey};
  }
  const image::CheckResult verified =
      image::check_signature(header_bytes_, record, record.public_key);
  if (!verified.ok()) return verified;
  // Only an authentic counter means anything: checked after the signature. The floor is the
  // key record's minimum or the highest counter committed here (install journal), whichever is
  // higher; an equal counter is accepted (the same release again).
  if (record.security_counter < min_security_counter_ ||
      record.security_counter < journal_.installed().security_counter) {
    return {FlashStatus::kNotAuthorised, FlashDetail::kCounterRollback};
  }
  accepted_counter_ = record.security_counter;
  return {};
}

Abort ProgramDownload::write(const std::uint8_t* data, std::uint32_t length) {
  if (pending_abort_ != Abort::kNone) {
    const Abort abort = pending_abort_;
    pending_abort_ = Abort::kNone;
    transfer_open_ = false;
    return abort;
  }
  if (!transfer_open_) return Abort::kGeneral;
  if (phase_ == Phase::kHeader) {
    const Abort abort = take_header(data, length);
    if (abort != Abort::kNone || phase_ != Phase::kPayload) return abort;
  }
  if (length == 0) return Abort::kNone;
  if (compressed_) {
    // In pieces the input buffer takes (the first write may bring more than it holds, after the
    // header); decoding between them makes room while the window has some.
    FlashDetail detail = FlashDetail::kNone;
    while (length != 0 && detail == FlashDetail::kNone) {
      const std::uint32_t room = decoder_.free_space();
      if (room == 0) {
        return reject(Abort::kOutOfMemory, FlashStatus::kUnspecified, FlashDetail::kNone);
      }
      const std::uint32_t piece = length < room ? length : room;
      if (decoder_.put(data, piece) != lzma::Error::kNone) {
        return reject(Abort::kCannotStore, FlashStatus::kDataFormatError,
                      FlashDetail::kBadCompressedStream);
      }
      data += piece;
      length -= piece;
      detail = pump_decoder();
    }
    if (detail == FlashDetail::kNone && decoder_.error() != lzma::Error::kNone) {
      detail = FlashDetail::kBadCompressedStream;
    }
    if (detail != FlashDetail::kNone) {
      return reject(Abort::kCannotStore, FlashStatus::kDataFormatError, detail);
    }
    return Abort::kNone;
  }
  if (length > stream_length_ - payload_received_) {
    return reject(Abort::kTypeMismatch, FlashStatus::kDataFormatError,
                  FlashDetail::kLengthMismatch);
  }
  if (writer_.free_space() < length) {
    return reject(Abort::kOutOfMemory, FlashStatus::kUnspecified, FlashDetail::kNone);
  }
  const FlashDetail detail = take_payload(data, length);
  if (detail != FlashDetail::kNone) {
    return reject(Abort::kCannotStore, FlashStatus::kDataFormatError, detail);
  }
  return Abort::kNone;
}

FlashDetail ProgramDownload::take_payload(const std::uint8_t* data, std::uint32_t length) {
  for (std::uint32_t i = 0; i < length && payload_received_ + i < sizeof vectors_; ++i) {
    vectors_[payload_received_ + i] = data[i];
  }
  const bool vectors_complete = vectors_in_stream_ && payload_received_ < sizeof vectors_ &&
                                payload_received_ + length >= sizeof vectors_;
  if (!sparse_ && !compressed_ && !patch_) {
    // A sparse or patch stream is not the image, and a compressed one is checked by the
    // read-back only.
    payload_crc32_ = crc32(payload_crc32_, data, length);
    sha_.update(data, length);
  }
  // The callers never push more than the ring takes (write() checked free_space()).
  writer_.push(data, length);
  payload_received_ += length;
  if (vectors_complete &&
      !vector_table_sane(load_le32(vectors_), load_le32(vectors_ + 4), header_.payload_length)) {
    return FlashDetail::kBadVectorTable;
  }
  return FlashDetail::kNone;
}

FlashDetail ProgramDownload::pump_decoder() {
  for (;;) {
    const std::uint32_t ready = decoder_.available();
    const std::uint32_t room = writer_.free_space();
    const std::uint32_t count = ready < room ? ready : room;
    if (count == 0) return FlashDetail::kNone;
    const FlashDetail detail = take_payload(decoder_.output(), count);
    decoder_.take(count);
    if (detail != FlashDetail::kNone) return detail;
  }
}

Abort ProgramDownload::end() {
  if (pending_abort_ != Abort::kNone) return write(nullptr, 0);
  if (!transfer_open_) return Abort::kGeneral;
  if (phase_ == Phase::kPayload && compressed_ && decoder_.finish_input() != lzma::Error::kNone) {
    return reject(Abort::kCannotStore, FlashStatus::kDataFormatError,
                  FlashDetail::kBadCompressedStream);
  }
  if (phase_ != Phase::kPayload || (!compressed_ && payload_received_ != stream_length_)) {
    return reject(Abort::kTypeMismatch, FlashStatus::kDataFormatError,
                  FlashDetail::kLengthMismatch);
  }
  if (sparse_ || compressed_ || patch_) {
    // Every compressed byte arrived; the decoder may still wait for room in the ring to decode
    // and check the rest of it (poll()).
    transfer_open_ = false;
    if (compressed_ && !decoder_.drained()) {
      finish_pending_ = true;
    } else {
      writer_.finish_write();
    }
    phase_ = Phase::kFinishing;
    return Abort::kNone;
  }
  std::uint8_t digest[Sha256Engine::kDigestSize];
  sha_.finish(digest);
  if (payload_crc32_ != header_.payload_crc32) {
    return reject(Abort::kCannotStore, FlashStatus::kDataFormatError, FlashDetail::kPayloadCrc);
  }
  for (std::uint32_t i = 0; i < Sha256Engine::kDigestSize; ++i) {
    if (digest[i] != header_.payload_sha256[i]) {
      return reject(Abort::kCannotStore, FlashStatus::kDataFormatError,
                    FlashDetail::kPayloadSha256);
    }
  }
  transfer_open_ = false;
  writer_.finish_write();
  phase_ = Phase::kFinishing;
  return Abort::kNone;
}

Abort ProgramDownload::end_without_commit() {
  if (pending_abort_ != Abort::kNone) return write(nullptr, 0);
  if (!transfer_open_) return Abort::kGeneral;
  if (compressed_) {
    // A gap inside a compressed stream leaves nothing after it decodable: the whole rest is
    // unknown, so nothing more is programmed (the sector digests then show what is missing).
    return reject(Abort::kCannotStore, FlashStatus::kDataFormatError,
                  FlashDetail::kIncompleteStream);
  }
  if (phase_ != Phase::kPayload || payload_received_ != stream_length_) {
    return reject(Abort::kTypeMismatch, FlashStatus::kDataFormatError,
                  FlashDetail::kLengthMismatch);
  }
  if (!sparse_ && !patch_) {
    std::uint8_t unused[Sha256Engine::kDigestSize];
    sha_.finish(unused);  // the engine is free for the read-back
  }
  transfer_open_ = false;
  uncommitted_end_ = true;
  writer_.finish_write();
  phase_ = Phase::kFinishing;
  return Abort::kNone;
}

namespace {

// 0x1F57 after a transfer that ended early: each cause has its own detail (docs/image-format.md).
FlashStatus cancel_status(Abort reason, CancelCause cause, FlashDetail& detail) {
  switch (cause) {
    case CancelCause::kClientAbort:
      detail = FlashDetail::kAborted;
      return FlashStatus::kUnspecified;
    case CancelCause::kReplaced:
      detail = FlashDetail::kTransferReplaced;
      return FlashStatus::kUnspecified;
    case CancelCause::kNmt:
      detail = FlashDetail::kTransferNmt;
      return FlashStatus::kUnspecified;
    case CancelCause::kServerAbort:
      break;
  }
  switch (reason) {
    case Abort::kCrc:
      detail = FlashDetail::kTransferCrc;
      return FlashStatus::kDataFormatError;
    case Abort::kTimeout:
      detail = FlashDetail::kTransferTimeout;
      return FlashStatus::kUnspecified;
    case Abort::kLengthTooHigh:
    case Abort::kLengthTooLow:
      detail = FlashDetail::kLengthMismatch;  // more or fewer bytes than the client announced
      return FlashStatus::kDataFormatError;
    default:
      detail = FlashDetail::kTransferProtocol;
      return FlashStatus::kUnspecified;
  }
}

}  // namespace

void ProgramDownload::cancel(Abort reason, CancelCause cause) {
  pending_abort_ = Abort::kNone;
  if (!transfer_open_) return;
  FlashDetail detail = FlashDetail::kNone;
  const FlashStatus status = cancel_status(reason, cause, detail);
  set_status(status, detail);
  abandon();
}

void ProgramDownload::fail_background(FlashStatus status, FlashDetail detail, Abort abort) {
  set_status(status, detail);
  const bool open = transfer_open_;
  abandon();
  if (open) {
    // The SDO transfer is still running: its next segment gets the abort.
    transfer_open_ = true;
    pending_abort_ = abort;
  }
}

// Before the first erase of a job: a committed application gets its REVOKE record. Returns true
// once flash work may run.
bool ProgramDownload::revoke_then_arm() {
  // Nothing is written for a download before every check on its first bytes passed.
  if (awaiting_first_checks()) return false;
  if (journal_.busy() || journal_.operation_in_flight() || writer_.operation_in_flight()) {
    return false;
  }
  if (revoke_requested_) {
    revoke_requested_ = false;
    if (journal_.failed()) {
      fail_background(FlashStatus::kWriteError, FlashDetail::kJournalFailed);
      return false;
    }
  }
  if (journal_.installed().valid) {
    // A download's own REVOKE (not a clear's) can be undone while nothing was erased yet.
    revoked_untouched_ = phase_ != Phase::kClearing && !clear_revoke_pending_ && !damaged_;
    revoked_image_ = journal_.installed();
    revoke_requested_ = journal_.append_revoke();
    if (!revoke_requested_) fail_background(FlashStatus::kWriteError, FlashDetail::kJournalFailed);
    return false;
  }
  clear_revoke_pending_ = false;
  if (phase_ == Phase::kHeader) return true;  // nothing to arm before the header is known
  armed_ = true;
  writer_.arm();
  return true;
}

bool ProgramDownload::needs_poll() const {
  const bool flash_activity = writer_.has_work() || journal_.busy() ||
                              journal_.operation_in_flight() || revoke_requested_ ||
                              reinstate_pending_;
  switch (phase_) {
    case Phase::kIdle:
      return flash_activity;
    case Phase::kHeader:
      return flash_activity || clear_revoke_pending_;
    case Phase::kPayload:
      if (compressed_ && decoder_.has_work() && writer_.free_space() > 0) return true;
      if (awaiting_first_checks()) return flash_activity;
      return flash_activity || !armed_ || writer_.state() == FlashWriter::State::kFailed;
    default:
      return true;
  }
}

void ProgramDownload::poll() {
  journal_.poll();
  writer_.poll();
  if (reinstate_pending_ && !journal_.busy() && !journal_.operation_in_flight() &&
      !writer_.operation_in_flight()) {
    reinstate_pending_ = false;
    if (!journal_.failed() && !journal_.installed().valid) journal_.append_state(revoked_image_);
  }
  switch (phase_) {
    case Phase::kIdle:
      // Only a clear's background erase leaves the writer with a job while idle.
      if (writer_.state() == FlashWriter::State::kFailed) {
        set_status(FlashStatus::kWriteError, writer_.failure());
        writer_.stop();
      }
      return;
    case Phase::kHeader:
      if (clear_revoke_pending_ && revoke_then_arm()) clear_revoke_pending_ = false;
      return;
    case Phase::kPayload:
    case Phase::kFinishing:
    case Phase::kClearing: {
      if (compressed_ && phase_ != Phase::kClearing) {
        // Decompressed bytes waiting for ring room (before arming too: the ring fills first).
        FlashDetail detail = pump_decoder();
        if (detail == FlashDetail::kNone && decoder_.error() != lzma::Error::kNone) {
          detail = FlashDetail::kBadCompressedStream;  // found decoding the rest after the end
        }
        if (detail != FlashDetail::kNone) {
          fail_background(FlashStatus::kDataFormatError, detail, Abort::kCannotStore);
          return;
        }
        if (finish_pending_ && decoder_.drained()) {
          finish_pending_ = false;
          writer_.finish_write();
        }
      }
      if (!armed_ && !revoke_then_arm()) return;
      if (writer_.state() == FlashWriter::State::kFailed) {
        fail_background(FlashStatus::kWriteError, writer_.failure());
        return;
      }
      if (phase_ == Phase::kClearing) {
        // The clear is done once its REVOKE is on the flash: the erase it armed goes on in the
        // background and gives way to the next download, whose own erase runs ahead of its data.
        set_status(FlashStatus::kOk, FlashDetail::kNone);
        phase_ = Phase::kIdle;
        return;
      }
      if (writer_.state() != FlashWriter::State::kDone) return;
      if (phase_ != Phase::kFinishing) return;
      if (uncommitted_end_) {
        // Everything received is on the flash; the gaps make it another image: no COMMIT.
        uncommitted_end_ = false;
        revoked_untouched_ = false;
        writer_.stop();
        set_status(FlashStatus::kDataFormatError, FlashDetail::kIncompleteStream);
        phase_ = Phase::kIdle;
        return;
      }
      bool same = writer_.verified_crc32() == header_.payload_crc32;
      for (std::uint32_t i = 0; same && i < Sha256Engine::kDigestSize; ++i) {
        same = writer_.verified_sha256()[i] == header_.payload_sha256[i];
      }
      if (!same) {
        // A sparse image: the sectors not sent are the likelier cause. A whole compressed image
        // was decoded by the rules yet is not the header's: the stream's fault, not the flash's.
        if (sparse_) {
          fail_background(FlashStatus::kWriteError, FlashDetail::kSparseVerifyFailed);
        } else if (patch_) {
          fail_background(FlashStatus::kWriteError, FlashDetail::kPatchVerifyFailed);
        } else if (compressed_) {
          fail_background(FlashStatus::kDataFormatError, FlashDetail::kBadCompressedStream,
                          Abort::kCannotStore);
        } else {
          fail_background(FlashStatus::kWriteError, FlashDetail::kVerifyFailed);
        }
        return;
      }
      const std::uint8_t* head = writer_.verified_head();
      if (!vectors_in_stream_ &&
          !vector_table_sane(load_le32(head), load_le32(head + 4), header_.payload_length)) {
        fail_background(FlashStatus::kDataFormatError, FlashDetail::kBadVectorTable,
                        Abort::kCannotStore);
        return;
      }
      journal::InstalledImage image;
      image.valid = true;
      // The COMMIT raises the journal's counter to this image's (never lowers it): one record,
      // so the counter is recorded exactly when the image commits.
      image.security_counter = accepted_counter_;
      image.payload_length = header_.payload_length;
      image.payload_crc32 = header_.payload_crc32;
      image.image_version = header_.image_version;
      for (std::uint32_t i = 0; i < Sha256Engine::kDigestSize; ++i) {
        image.payload_sha256[i] = header_.payload_sha256[i];
      }
      if (!journal_.append_commit(image)) {
        fail_background(FlashStatus::kWriteError, FlashDetail::kJournalFailed);
        return;
      }
      writer_.stop();
      phase_ = Phase::kCommitting;
      return;
    }
    case Phase::kCommitting:
      if (journal_.busy() || journal_.operation_in_flight()) return;
      if (journal_.failed()) {
        fail_background(FlashStatus::kWriteError, FlashDetail::kJournalFailed);
        return;
      }
      damaged_ = false;
      revoked_untouched_ = false;
      set_status(FlashStatus::kOk, FlashDetail::kNone);
      phase_ = Phase::kIdle;
      return;
    case Phase::kAbandoning:
      if (writer_.operation_in_flight() || journal_.busy() || journal_.operation_in_flight())
        return;
      phase_ = Phase::kIdle;
      return;
  }
}

}  // namespace rtcanboot
