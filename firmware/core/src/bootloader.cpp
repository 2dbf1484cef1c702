#include "rtcanboot/bootloader.hpp"

#include "rtcanboot/ed25519.hpp"
#include "rtcanboot/memory_map.hpp"

namespace rtcanboot {

namespace {

image::Expectation expectation_for(const BootloaderSettings& settings) {
  image::Expectation expectation;
  expectation.vendor_id = settings.identity.vendor_id;
  expectation.product_code = settings.identity.product_code;
  expectation.load_address = memory_map::kAppAddress;
  expectation.max_payload_length = memory_map::kAppSize;
  return expectation;
}

// Inside the listen window only a request for the program holds the node: a download to 0x1F50
// or 0x1F51 (a CiA 302 master's stop, clear or program download; what `stop --catch` sends), or
// an NMT command naming the node other than start. A CiA 302-2 master's boot-up reads (0x1000,
// 0x1018) and an NMT start go unanswered: the application answers the master's retry, and a node
// that powers up with its master is not held in its bootloader by them.
bool asks_for_the_program(const CanFrame& frame) {
  if (frame.id == canopen::kNmtCobId) {
    return frame.data[0] != static_cast<std::uint8_t>(canopen::NmtCommand::kStart);
  }
  const std::uint8_t command = frame.data[0] >> 5;
  const bool expedited_or_segmented_download = command == 1;
  const bool block_download_initiate = command == 6 && (frame.data[0] & 0x01) == 0;
  const std::uint16_t index = static_cast<std::uint16_t>(frame.data[1] | frame.data[2] << 8);
  return (expedited_or_segmented_download || block_download_initiate) &&
         (index == canopen::od::kProgramData || index == canopen::od::kProgramControl);
}

RtcanbootInfo info_for(const BootloaderSettings& settings) {
  RtcanbootInfo info;
  info.running_program = canopen::kRunningBootloader;
  info.bootloader_version = settings.bootloader_version;
  info.app_region_start = memory_map::kAppAddress;
  info.app_region_size = memory_map::kAppSize;
  return info;
}

}  // namespace

NodeConfig Bootloader::make_node_config(const BootloaderSettings& settings,
                                        const RtcanbootInfo& info) {
  NodeConfig config;
  const std::uint8_t node_id = settings.provisioning.node_id;
  config.node_id = node_id >= canopen::kMinNodeId && node_id <= canopen::kMaxNodeId
                       ? node_id
                       : lss::kUnconfigured;
  config.bitrate = settings.provisioning.bitrate;
  config.lss_rates = settings.lss_rates;
  config.lss_storage = this;
  config.identity = settings.identity;
  if (settings.provisioning.serial != 0) config.identity.serial = settings.provisioning.serial;
  config.device_name = settings.device_name;
  config.software_version = settings.software_version;
  config.heartbeat_ms = settings.heartbeat_ms;
  config.is_application = false;
  config.info = &info;
  if (settings.self_test != nullptr) config.self_test = this;
  config.sector_digests = this;
  config.keys = this;
  config.listen_along = settings.listen_along ? &listen_ : nullptr;
  config.provisioning = this;
  return config;
}

Bootloader::Bootloader(FrameSink& frames, FlashPort& flash, Sha256Engine& sha,
                       std::span<std::uint8_t> buffer, const BootloaderSettings& settings)
    : settings_(settings),
      frames_(frames),
      guard_(flash),
      key_flash_(flash),
      key_store_(key_flash_),
      journal_(guard_),
      provisioning_(guard_),
      writer_(guard_, sha, buffer),
      download_(writer_, journal_, sha, expectation_for(settings)),
      listen_(download_),
      digests_(guard_, memory_map::kAppOffset),
      info_(info_for(settings)),
      node_config_(make_node_config(settings_, info_)),
      node_(frames, download_, node_config_) {
  if (settings.key_record != nullptr) {
    download_.require_signature(*settings.key_record);
    SoftwareSha256 key_sha;
    key_sha.reset();
    key_sha.update(settings.key_record->public_key, sizeof settings.key_record->public_key);
    key_sha.finish(built_in_key_hash_);
  } else {
    download_.use_key_store(key_store_);
  }
  download_.set_start_gate(this);
}

void Bootloader::start(Micros now) {
  last_poll_ = now;
  last_addressed_ = now;
  provisioning_.load();
  journal_.load();
  if (settings_.key_record == nullptr) key_store_.load();
  download_.refuse_flash_work(settings_.flash_refused);
  decision_ = decide_boot(guard_, journal_.installed(), settings_.entry_requested,
                          settings_.provisioning.boot_attempts);
  if (journal_.installed().valid && !decision_.application_valid) {
    download_.mark_installed_damaged();
  }
  if (decision_.crc_check_deferred) image_check_.begin(guard_, journal_.installed());
  download_.report_boot_state();
  if (decision_.reason == canopen::BootReason::kNotConfirmed) {
    download_.report_boot_failure(canopen::FlashStatus::kNoValidProgram,
                                  canopen::FlashDetail::kNotConfirmed);
  }
  info_.boot_reason = decision_.reason;
  update_info();
  was_configured_ = node_.configured();
  if (!was_configured_) {
    // CiA 305: without a node-ID the node is only an LSS slave (no boot-up, no SDO), and it
    // stays in the bootloader until a master configures it.
    if (decision_.start_application) info_.boot_reason = canopen::BootReason::kUnconfigured;
  } else if (decision_.start_application) {
    if (settings_.provisioning.boot_window_ms == 0) {
      if (settings_.provisioning.listen_window_ms != 0) {
        // The listen window: nothing on the bus unless a master's entry request comes in time.
        listening_ = true;
        window_end_ = now + milliseconds(settings_.provisioning.listen_window_ms);
      } else {
        begin_start();  // straight through: nothing on the bus
      }
      return;
    }
    window_open_ = true;
    window_end_ = now + milliseconds(settings_.provisioning.boot_window_ms);
  }
  node_.start(now);
  node_started_ = true;
  if (settings_.entry_requested && settings_.answer_stop && was_configured_) {
    // The application's stop (0x1F51:1 = 0), answered by the node that serves the next request.
    CanFrame answer;
    answer.id = canopen::kSdoTxBase + node_.node_id();
    answer.dlc = 8;
    answer.data[0] = 0x60;  // download initiate response
    answer.data[1] = static_cast<std::uint8_t>(canopen::od::kProgramControl & 0xFF);
    answer.data[2] = static_cast<std::uint8_t>(canopen::od::kProgramControl >> 8);
    answer.data[3] = 1;
    frames_.send(answer);
  }
}

void Bootloader::update_pending(Micros now) {
  if (!was_configured_ && node_.configured()) {
    // LSS gave the node its node-ID; the provisioning decides whether a valid application runs.
    was_configured_ = true;
    if (decision_.start_application &&
        (settings_.provisioning.flags & kStartApplicationAfterLss) != 0 &&
        pending_ == PendingAction::kNone && attempt_record_ == AttemptRecord::kNone) {
      begin_start();  // an unconfirmed image gets its ATTEMPT record first (trial boot)
    }
  }
  if (window_open_) {
    if (node_.addressed()) {
      window_open_ = false;
      info_.boot_reason = canopen::BootReason::kHeldByMaster;
    } else if (now >= window_end_ && pending_ == PendingAction::kNone) {
      window_open_ = false;
      begin_start();
    }
  }
  update_info();
  if (pending_ != PendingAction::kNone || attempt_record_ != AttemptRecord::kNone) return;
  if (hold_limited() && now - last_addressed_ >= hold_limit()) {
    begin_start();  // nobody asked for this node for the hold limit: its application runs
    return;
  }
  if (download_.take_start_request()) {
    begin_start();
  } else if (self_test_requested_ && download_.flash_quiet()) {
    pending_ = PendingAction::kSelfTestReset;
  } else if (node_.reset_node_requested() && download_.flash_quiet()) {
    // A reset in the middle of flash work is safe, but waiting for the operation in flight
    // keeps the flash from being cut mid-page without need.
    pending_ = PendingAction::kReset;
  }
}

void Bootloader::update_info() {
  const journal::InstalledImage& image = journal_.installed();
  const bool valid = download_.valid_program();
  info_.image_version = valid ? image.image_version : 0;
  info_.security_counter = image.security_counter;  // also without a valid image
  info_.boot_attempts =
      valid ? static_cast<std::uint8_t>(image.attempts > 255 ? 255 : image.attempts) : 0;
  info_.trial_state = !valid             ? canopen::TrialState::kNoImage
                      : !trial_enabled() ? canopen::TrialState::kOff
                      : image.confirmed  ? canopen::TrialState::kConfirmed
                                         : canopen::TrialState::kOnTrial;
}

void Bootloader::begin_start() {
  if (!trial_start()) {
    pending_ = PendingAction::kStartApplication;
    return;
  }
  attempt_record_ = AttemptRecord::kWaiting;
  finish_attempt_record();
}

// The ATTEMPT record must be on the flash before the image runs: an image that resets the chip
// before it confirms then still uses up one of its attempts.
void Bootloader::finish_attempt_record() {
  if (attempt_record_ == AttemptRecord::kWaiting) {
    if (!download_.flash_quiet() || journal_.busy() || provisioning_.busy() ||
        provisioning_.operation_in_flight()) {
      return;
    }
    if (download_.busy() || !download_.valid_program() || !journal_.append_attempt()) {
      attempt_record_ = AttemptRecord::kNone;  // a download or clear took over: no start
      return;
    }
    attempt_record_ = AttemptRecord::kWriting;
    return;
  }
  if (attempt_record_ != AttemptRecord::kWriting || journal_.busy()) return;
  attempt_record_ = AttemptRecord::kNone;
  if (journal_.failed()) {
    // Starting an image whose attempt could not be counted could repeat forever: stay here.
    download_.report_boot_failure(canopen::FlashStatus::kWriteError,
                                  canopen::FlashDetail::kJournalFailed);
    info_.boot_reason = canopen::BootReason::kAttemptNotRecorded;
    if (!node_started_) {
      node_.start(last_poll_);
      node_started_ = true;
    }
    return;
  }
  pending_ = PendingAction::kStartApplication;
}

void Bootloader::on_frame(const CanFrame& frame, Micros now) {
  if (node_.addresses(frame)) last_addressed_ = now;
  if (!node_started_) {
    if (!listening_ || !node_.addresses(frame) || !asks_for_the_program(frame)) return;
    // An entry request inside the listen window: the node starts (boot-up message) and handles
    // the request; it stays in the bootloader until it is told to start the program.
    listening_ = false;
    info_.boot_reason = canopen::BootReason::kHeldByMaster;
    node_.start(now);
    node_started_ = true;
  }
  listen_.on_frame(frame);
  node_.on_frame(frame, now);
  node_.set_heartbeat_silent(listen_.streaming());
  update_pending(now);
}

void Bootloader::poll(Micros now) {
  last_poll_ = now;
  // Flash first: room it makes in the ring is seen by the SDO server in the same call. An LSS
  // store owns the flash until it is done (it only starts while the download is quiet and no
  // ATTEMPT record is due).
  if (!provisioning_.busy() && !provisioning_.operation_in_flight() && !key_store_.busy()) {
    download_.poll();
  }
  poll_keys();
  poll_provisioning_request();
  poll_digests();
  poll_image_check();
  finish_attempt_record();
  if (listening_ && now >= window_end_) {
    listening_ = false;
    begin_start();  // nobody asked: start as if there were no window
  }
  if (!node_started_) return;
  node_.set_heartbeat_silent(listen_.streaming());
  node_.poll(now);
  update_pending(now);
}

canopen::Abort Bootloader::request_self_test() {
  // The self-test resets the node and uses the flash: not while either is taken.
  if (download_.busy() || download_.needs_poll() || attempt_record_ != AttemptRecord::kNone ||
      provisioning_.busy() || provisioning_.operation_in_flight() ||
      pending_ != PendingAction::kNone) {
    return canopen::Abort::kDeviceState;
  }
  self_test_requested_ = true;
  return canopen::Abort::kNone;
}

canopen::Abort Bootloader::request_digests(std::uint32_t sectors) {
  // The digests describe the flash as it stays: not while a download or a clear changes it. The
  // last operation of a failed one is waited for below (poll_digests reads only when quiet).
  if (download_.in_progress()) return canopen::Abort::kDeviceState;
  download_.stop_background_erase();
  return digests_.request(sectors);
}

void Bootloader::poll_digests() {
  if (download_.in_progress()) {
    digests_.invalidate();
    return;
  }
  // Reads only between flash operations (a read while the NOR is busy is a fault on the chip).
  if (!digests_.needs_poll() || !download_.flash_quiet() || download_.needs_poll() ||
      provisioning_.busy() || provisioning_.operation_in_flight() || key_write_pending_) {
    return;
  }
  digests_.poll();
}

// A slice of the deferred CRC check per pass of the loop: about 0.4 ms of reading, so that the
// node keeps answering while it checks a large image.
constexpr std::uint32_t kImageCheckSlice = 16 * 1024;

bool Bootloader::image_check_can_read() const {
  // Only between flash operations, and only while the checked image is the installed one.
  return image_check_.running() && journal_.installed().valid &&
         image_check_.checks(journal_.installed()) && !download_.in_progress() &&
         download_.flash_quiet() && !download_.needs_poll() && !provisioning_.operation_in_flight();
}

void Bootloader::poll_image_check() {
  if (!image_check_.running()) return;
  if (journal_.installed().valid && !image_check_.checks(journal_.installed())) {
    image_check_.drop();  // a download committed another image, read back before its COMMIT
    return;
  }
  if (!image_check_can_read()) return;  // resumes when a refused download reinstated the image
  if (image_check_.step(guard_, kImageCheckSlice) != ImageCheck::Result::kRunning) {
    image_check_done();
  }
}

void Bootloader::image_check_done() {
  if (image_check_.result() != ImageCheck::Result::kDamaged) return;
  download_.mark_installed_damaged();
  download_.report_boot_state();
  info_.boot_reason = canopen::BootReason::kApplicationDamaged;
  update_info();
}

bool Bootloader::confirm_installed_image() {
  if (!image_check_.running()) return image_check_.result() != ImageCheck::Result::kDamaged;
  if (!image_check_can_read()) return false;
  image_check_.step(guard_, memory_map::kAppSize);  // the rest at once: the master waits for it
  image_check_done();
  return image_check_.result() == ImageCheck::Result::kIntact;
}

canopen::InstallState Bootloader::install_state() const {
  if (journal_.installed().valid) {
    return download_.installed_damaged() ? canopen::InstallState::kDamaged
                                         : canopen::InstallState::kCommitted;
  }
  return journal_.last_sequence() == 0 ? canopen::InstallState::kNone
                                       : canopen::InstallState::kRevoked;
}

bool Bootloader::begin_store(std::uint8_t node_id, std::uint32_t bitrate, LssResult* refused) {
  if (download_.busy() || !download_.flash_quiet() || download_.needs_poll() ||
      node_.transfer_active() || attempt_record_ != AttemptRecord::kNone || key_write_pending_ ||
      provisioning_.busy() || provisioning_.operation_in_flight()) {
    *refused = {lss::kImplementationSpecific, lss::kSpecStoreBusy};
    return false;
  }
  if (download_.signature_required() && !settings_.lss_store_when_locked) {
    *refused = {lss::kImplementationSpecific, lss::kSpecStoreLocked};
    return false;
  }
  // Everything else of the record (boot window, serial, flags) stays as it is.
  Provisioning record = provisioning_.valid() ? provisioning_.current() : settings_.provisioning;
  record.node_id = node_id;
  record.bitrate = bitrate;
  if (!provisioning_.save(record)) {
    *refused = {lss::kStoreMediaError, 0};
    return false;
  }
  return true;
}

bool Bootloader::store_busy() {
  provisioning_.poll();
  return provisioning_.busy() || provisioning_.operation_in_flight();
}

LssResult Bootloader::store_result() const {
  if (provisioning_.failed()) return {lss::kStoreMediaError, 0};
  return {};
}

bool Bootloader::hold_limited() const {
  if (settings_.provisioning.hold_limit_s == 0 || !download_.signature_required() ||
      !node_started_ || window_open_ || listening_ || !was_configured_ ||
      pending_ != PendingAction::kNone || attempt_record_ != AttemptRecord::kNone) {
    return false;
  }
  if (!decision_.application_valid || !download_.valid_program() || download_.busy() ||
      download_.needs_poll() || !download_.flash_quiet() || node_.transfer_active() ||
      key_write_pending_ || provisioning_.busy() || node_.reset_node_requested()) {
    return false;
  }
  // Only an image the bootloader would start by itself (not one whose trial is used up).
  const journal::InstalledImage& image = journal_.installed();
  return !(trial_enabled() && !image.confirmed &&
           image.attempts >= settings_.provisioning.boot_attempts);
}

Micros Bootloader::next_deadline() const {
  if (attempt_record_ != AttemptRecord::kNone) return last_poll_ + kFlashPollInterval;
  if (!node_started_) return listening_ ? window_end_ : ~Micros{0};
  Micros deadline = node_.next_deadline();
  if (window_open_ && window_end_ < deadline) deadline = window_end_;
  if (image_check_can_read()) return last_poll_;  // the next slice of the CRC check
  if (hold_limited()) {
    const Micros hold_end = last_addressed_ + hold_limit();
    if (hold_end < deadline) deadline = hold_end;
  }
  const bool flash_work =
      download_.needs_poll() || !download_.flash_quiet() || digests_.needs_poll() ||
      key_write_pending_ || key_store_.busy() ||
      request_state_ == canopen::ProvisioningRequestState::kStoring ||
      ((node_.reset_node_requested() || self_test_requested_) && pending_ == PendingAction::kNone);
  if (flash_work && last_poll_ + kFlashPollInterval < deadline) {
    deadline = last_poll_ + kFlashPollInterval;
  }
  return deadline;
}

// --- 0x5F03, the signing keys (docs/security.md) ------------------------------------------

canopen::KeyState Bootloader::key_state() const {
  if (settings_.key_record != nullptr) return canopen::KeyState::kBuiltIn;
  if (key_write_pending_) return canopen::KeyState::kWriting;
  switch (key_store_.state()) {
    case KeyStoreState::kProvisioned:
      return canopen::KeyState::kProvisioned;
    case KeyStoreState::kInterrupted:
      return canopen::KeyState::kInterrupted;
    case KeyStoreState::kWriting:
      return canopen::KeyState::kWriting;
    case KeyStoreState::kNone:
      break;
  }
  return canopen::KeyState::kNone;
}

const std::uint8_t* Bootloader::key_hashes(std::uint32_t* size) const {
  if (settings_.key_record != nullptr) {
    *size = kKeyHashSize;
    return built_in_key_hash_;
  }
  if (key_store_.state() != KeyStoreState::kProvisioned) {
    *size = 0;
    return built_in_key_hash_;
  }
  *size = key_store_.keys().count * kKeyHashSize;
  return key_store_.keys().hash[0];
}

canopen::Abort Bootloader::begin(bool size_known, std::uint32_t size) {
  // Written once: never over a built-in or provisioned key (only with none, or after a cut).
  const canopen::KeyState state = key_state();
  if (state != canopen::KeyState::kNone && state != canopen::KeyState::kInterrupted) {
    return canopen::Abort::kCannotStore;
  }
  if (download_.busy() || download_.needs_poll() || !download_.flash_quiet() ||
      provisioning_.busy() || provisioning_.operation_in_flight() ||
      attempt_record_ != AttemptRecord::kNone) {
    return canopen::Abort::kDeviceState;
  }
  if (size_known && size > sizeof key_bytes_) return canopen::Abort::kLengthTooHigh;
  if (size_known && (size == 0 || size % kKeyHashSize != 0)) return canopen::Abort::kLengthTooLow;
  key_received_ = 0;
  return canopen::Abort::kNone;
}

canopen::Abort Bootloader::write(const std::uint8_t* data, std::uint32_t length) {
  if (length > sizeof key_bytes_ - key_received_) return canopen::Abort::kLengthTooHigh;
  for (std::uint32_t i = 0; i < length; ++i) key_bytes_[key_received_ + i] = data[i];
  key_received_ += length;
  return canopen::Abort::kNone;
}

canopen::Abort Bootloader::end() {
  if (key_received_ == 0 || key_received_ % kKeyHashSize != 0) {
    key_received_ = 0;
    return canopen::Abort::kLengthTooLow;
  }
  key_write_pending_ = true;  // poll_keys() writes it once the flash is quiet
  return canopen::Abort::kNone;
}

void Bootloader::poll_keys() {
  key_store_.poll();
  if (!key_write_pending_ || key_store_.busy()) return;
  if (download_.busy() || !download_.flash_quiet() || provisioning_.busy() ||
      provisioning_.operation_in_flight() || attempt_record_ != AttemptRecord::kNone) {
    return;
  }
  key_write_pending_ = false;
  KeyHashes keys;
  keys.count = static_cast<std::uint8_t>(key_received_ / kKeyHashSize);
  for (std::uint32_t k = 0; k < keys.count; ++k) {
    for (std::uint32_t i = 0; i < kKeyHashSize; ++i)
      keys.hash[k][i] = key_bytes_[k * kKeyHashSize + i];
  }
  key_received_ = 0;
  // Refused (no blank page left, or the state changed): the store's state tells (0x5F03:1).
  key_store_.begin_write(keys);
}

// --- 0x5F05, the provisioning record and requests to change it (docs/security.md) ----------

std::uint32_t Bootloader::provisioning_sequence() const {
  return provisioning_.valid() ? provisioning_.current().sequence : 0;
}

const std::uint8_t* Bootloader::provisioning_record(std::uint32_t* size) const {
  // The record in force: the stored one, or the settings the port started with.
  const Provisioning& record =
      provisioning_.valid() ? provisioning_.current() : settings_.provisioning;
  *size =
      encode_provisioning(record, record_bytes_, sizeof record_bytes_) ? sizeof record_bytes_ : 0;
  return record_bytes_;
}

canopen::Abort Bootloader::RequestSink::begin(bool size_known, std::uint32_t size) {
  if (size_known && size > sizeof bytes_) return canopen::Abort::kLengthTooHigh;
  if (size_known && size < provisioning_request::kBodySize) return canopen::Abort::kLengthTooLow;
  received_ = 0;
  return canopen::Abort::kNone;
}

canopen::Abort Bootloader::RequestSink::write(const std::uint8_t* data, std::uint32_t length) {
  if (length > sizeof bytes_ - received_) return canopen::Abort::kLengthTooHigh;
  for (std::uint32_t i = 0; i < length; ++i) bytes_[received_ + i] = data[i];
  received_ += length;
  return canopen::Abort::kNone;
}

bool Bootloader::flash_free_for_records() const {
  return !download_.busy() && download_.flash_quiet() && !download_.needs_poll() &&
         attempt_record_ == AttemptRecord::kNone && !key_write_pending_ && !key_store_.busy() &&
         !provisioning_.busy() && !provisioning_.operation_in_flight();
}

canopen::Abort Bootloader::refuse_request(canopen::ProvisioningRequestState why,
                                          canopen::Abort abort) {
  request_state_ = why;
  return abort;
}

canopen::Abort Bootloader::take_provisioning_request(const std::uint8_t* data, std::uint32_t size) {
  using State = canopen::ProvisioningRequestState;
  if (!flash_free_for_records()) return canopen::Abort::kDeviceState;
  provisioning_request::Request request;
  if (!provisioning_request::decode(data, size, request)) {
    return refuse_request(State::kMalformed, canopen::Abort::kValueRange);
  }
  const NodeIdentity& identity = node_config_.identity;
  if (request.vendor_id != identity.vendor_id || request.product_code != identity.product_code ||
      request.serial != identity.serial) {
    return refuse_request(State::kOtherDevice, canopen::Abort::kCannotStore);
  }
  if (request.sequence != provisioning_sequence()) {
    return refuse_request(State::kStaleSequence, canopen::Abort::kCannotStore);
  }
  // Without a key, like an unsigned container, any request is taken (a signature is not read).
  if (download_.signature_required()) {
    if (!request.is_signed) return refuse_request(State::kNotSigned, canopen::Abort::kCannotStore);
    if (!download_.accepts_key(request.public_key)) {
      return refuse_request(State::kUnknownKey, canopen::Abort::kCannotStore);
    }
    std::uint8_t message[provisioning_request::kMessageSize];
    provisioning_request::signed_message(data, message);
    if (ed25519::verify(request.signature, request.public_key, message, sizeof message) !=
        ed25519::Verdict::kValid) {
      return refuse_request(State::kBadSignature, canopen::Abort::kCannotStore);
    }
  }
  // The serial number stays; the sequence is the store's.
  Provisioning record = provisioning_.valid() ? provisioning_.current() : settings_.provisioning;
  const Provisioning& wanted = request.settings;
  record.node_id = wanted.node_id;
  record.bitrate = wanted.bitrate;
  record.boot_window_ms = wanted.boot_window_ms;
  record.flags = wanted.flags;
  record.boot_attempts = wanted.boot_attempts;
  record.listen_window_ms = wanted.listen_window_ms;
  record.hold_limit_s = wanted.hold_limit_s;
  if (!provisioning_.save(record))
    return refuse_request(State::kStoreFailed, canopen::Abort::kCannotStore);
  request_state_ = State::kStoring;
  return canopen::Abort::kNone;
}

void Bootloader::poll_provisioning_request() {
  if (request_state_ != canopen::ProvisioningRequestState::kStoring) return;
  provisioning_.poll();
  if (provisioning_.busy()) return;
  request_state_ = provisioning_.failed() ? canopen::ProvisioningRequestState::kStoreFailed
                                          : canopen::ProvisioningRequestState::kStored;
}

}  // namespace rtcanboot
