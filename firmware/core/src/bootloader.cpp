#include "rtcanboot/bootloader.hpp"

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
  return config;
}

Bootloader::Bootloader(FrameSink& frames, FlashPort& flash, Sha256Engine& sha,
                       std::span<std::uint8_t> buffer, const BootloaderSettings& settings)
    : settings_(settings),
      frames_(frames),
      guard_(flash),
      journal_(guard_),
      provisioning_(guard_),
      writer_(guard_, sha, buffer),
      download_(writer_, journal_, sha, expectation_for(settings)),
      digests_(guard_, memory_map::kAppOffset),
      info_(info_for(settings)),
      node_config_(make_node_config(settings_, info_)),
      node_(frames, download_, node_config_) {
  if (settings.key_record != nullptr) download_.require_signature(*settings.key_record);
}

void Bootloader::start(Micros now) {
  last_poll_ = now;
  provisioning_.load();
  journal_.load();
  download_.refuse_flash_work(settings_.flash_refused);
  decision_ = decide_boot(guard_, journal_.installed(), settings_.entry_requested,
                          settings_.provisioning.boot_attempts);
  if (journal_.installed().valid && !decision_.application_valid) {
    download_.mark_installed_damaged();
  }
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
  if (!node_started_) {
    if (!listening_ || !node_.addresses(frame) || !asks_for_the_program(frame)) return;
    // An entry request inside the listen window: the node starts (boot-up message) and handles
    // the request; it stays in the bootloader until it is told to start the program.
    listening_ = false;
    info_.boot_reason = canopen::BootReason::kHeldByMaster;
    node_.start(now);
    node_started_ = true;
  }
  node_.on_frame(frame, now);
  update_pending(now);
}

void Bootloader::poll(Micros now) {
  last_poll_ = now;
  // Flash first: room it makes in the ring is seen by the SDO server in the same call. An LSS
  // store owns the flash until it is done (it only starts while the download is quiet and no
  // ATTEMPT record is due).
  if (!provisioning_.busy() && !provisioning_.operation_in_flight()) download_.poll();
  poll_digests();
  finish_attempt_record();
  if (listening_ && now >= window_end_) {
    listening_ = false;
    begin_start();  // nobody asked: start as if there were no window
  }
  if (!node_started_) return;
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
      provisioning_.operation_in_flight()) {
    return;
  }
  digests_.poll();
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
      node_.transfer_active() || attempt_record_ != AttemptRecord::kNone) {
    *refused = {lss::kImplementationSpecific, lss::kSpecStoreBusy};
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

Micros Bootloader::next_deadline() const {
  if (attempt_record_ != AttemptRecord::kNone) return last_poll_ + kFlashPollInterval;
  if (!node_started_) return listening_ ? window_end_ : ~Micros{0};
  Micros deadline = node_.next_deadline();
  if (window_open_ && window_end_ < deadline) deadline = window_end_;
  const bool flash_work =
      download_.needs_poll() || !download_.flash_quiet() || digests_.needs_poll() ||
      ((node_.reset_node_requested() || self_test_requested_) && pending_ == PendingAction::kNone);
  if (flash_work && last_poll_ + kFlashPollInterval < deadline) {
    deadline = last_poll_ + kFlashPollInterval;
  }
  return deadline;
}

}  // namespace rtcanboot
