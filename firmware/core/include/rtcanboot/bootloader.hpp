// rtcanboot::Bootloader: the whole bootloader behaviour in one passive object. The RT1064 port's
// main loop and the twin tests drive exactly this:
//
//   Bootloader boot(frames, flash, sha, ram_buffer, settings);
//   boot.start(now);
//   loop: for each received frame boot.on_frame(frame, now); boot.poll(now);
//         act on boot.pending_action() once the transmit queue has drained;
//         sleep until a frame arrives or boot.next_deadline().
//
// It owns the CANopen node (bootloader mode), ProgramDownload, the flash manager and the install
// journal. Every erase/program goes through a guard that keeps the bootloader's own 128 KiB out
// of reach.
#pragma once

#include <cstdint>
#include <span>

#include "rtcanboot/boot_decision.hpp"
#include "rtcanboot/canopen_defs.hpp"
#include "rtcanboot/canopen_node.hpp"
#include "rtcanboot/flash_guard.hpp"
#include "rtcanboot/flash_port.hpp"
#include "rtcanboot/flash_writer.hpp"
#include "rtcanboot/hash.hpp"
#include "rtcanboot/install_journal.hpp"
#include "rtcanboot/key_record.hpp"
#include "rtcanboot/key_store.hpp"
#include "rtcanboot/listen_along.hpp"
#include "rtcanboot/node_config.hpp"
#include "rtcanboot/program_download.hpp"
#include "rtcanboot/provisioning.hpp"
#include "rtcanboot/provisioning_request.hpp"
#include "rtcanboot/sector_digests.hpp"
#include "rtcanboot/types.hpp"

namespace rtcanboot {

// What the port's bring-up self-test found in this boot (docs/bring-up.md).
struct SelfTestResult {
  canopen::SelfTestState state = canopen::SelfTestState::kNotRun;
  std::uint32_t failed = 0;  // bit n: check n + 1 failed
  const char* report = "";   // one line per check
};

struct BootloaderSettings {
  // 0x1018 vendor-ID / product code (a container must match them), revision; the serial number
  // comes from the provisioning record when it holds one.
  NodeIdentity identity;
  std::uint32_t bootloader_version = 0;  // major << 16 | minor << 8 | patch (0x5F00:2)
  std::uint16_t heartbeat_ms = 1000;
  const char* device_name = "rtcanboot";
  const char* software_version = "";
  // Node-ID (0xFF: unconfigured, LSS assigns one), bit rate the port runs, boot window, flags
  // (the port applies the bit rate before constructing the Bootloader).
  Provisioning provisioning;
  // Bit n set: the port can run LSS standard-table index n.
  std::uint16_t lss_rates = lss::kAllStandardRates;
  // The application asked for the bootloader (shared boot information, kept across the reset).
  bool entry_requested = false;
  // With entry_requested: the application owes the SDO answer to 0x1F51:1 = 0 (stop); the
  // bootloader sends it right after its boot-up message (when it serves the next request).
  bool answer_stop = false;
  // Set by the port when it cannot erase or program the flash (e.g. an unexpected JEDEC ID):
  // downloads and clears are refused and 0x1F57:1 reports write error with this detail. An
  // installed application still starts.
  canopen::FlashDetail flash_refused = canopen::FlashDetail::kNone;
  // Object 0x5F04 and the listen-along download (docs/fleet-update.md). Off: the node answers
  // 0x5F04 with "object does not exist", like an rtcanboot older than the object, and a fleet
  // update reaches it by unicast.
  bool listen_along = true;
  // The build's key record (key_record.hpp): containers must be signed by its key. nullptr: no
  // key, unsigned containers are accepted. Must outlive the Bootloader.
  const KeyRecord* key_record = nullptr;
  // Once the node holds a signing key (built in or provisioned), LSS "store configuration" is
  // refused (kSpecStoreLocked) unless this is set: the provisioning record (node-ID, bit rate,
  // boot window) then cannot be changed over CAN (docs/security.md, "Lock-down").
  bool lss_store_when_locked = false;
  // The port offers the self-test (0x5F01); nullptr: no such object. Must outlive the Bootloader.
  const SelfTestResult* self_test = nullptr;
};

enum class PendingAction : std::uint8_t {
  kNone,
  kStartApplication,  // hand over to the application at memory_map::kAppAddress
  kReset,             // NMT reset node: reset the chip
  kSelfTestReset,     // 0x5F01:1 = 1: reset the chip into the port's self-test
};

class Bootloader final : private LssStorage,
                         private SelfTestAccess,
                         private SectorDigestAccess,
                         private StartGate,
                         private KeyAccess,
                         private ProvisioningAccess,
                         private DownloadSink {
 public:
  // How often poll() must run while flash work is in progress.
  static constexpr Micros kFlashPollInterval = 100;

  // `buffer` is the RAM ring of the flash manager (a multiple of 256 bytes is used; 16 KiB or
  // more keeps up with 1 Mbit/s through a 64 KiB erase). Everything passed must outlive this.
  Bootloader(FrameSink& frames, FlashPort& flash, Sha256Engine& sha, std::span<std::uint8_t> buffer,
             const BootloaderSettings& settings);

  // Reads the journal, decides whether to boot. With a valid application and no announced boot
  // window the bootloader listens silently for the listen window (provisioning): an entry
  // request (an SDO request or an NMT command naming the node) starts the node (boot-up message,
  // then the request's answer) and holds it; without one the pending action becomes
  // kStartApplication when the window ends, and nothing was sent. With an announced boot window
  // the node starts at once (boot-up message) and waits that long; otherwise it stays.
  void start(Micros now);
  void on_frame(const CanFrame& frame, Micros now);
  void poll(Micros now);
  // Latest time poll() must run next.
  Micros next_deadline() const;

  // What the owner must do once the frames handed to the sink have left the controller.
  PendingAction pending_action() const { return pending_; }

  canopen::BootReason boot_reason() const { return info_.boot_reason; }
  const BootDecision& decision() const { return decision_; }
  const journal::InstalledImage& installed() const { return journal_.installed(); }
  // The pending start is a trial boot: the attempt is recorded; the owner arms the watchdog
  // before it jumps, and the application confirms with the application kit.
  bool trial_start() const { return trial_enabled() && !journal_.installed().confirmed; }
  const CanopenNode& node() const { return node_; }
  // The node-ID and bit rate the node runs now (LSS may have changed both since start); what the
  // application gets in the hand-over.
  std::uint8_t node_id() const { return node_.node_id(); }
  std::uint32_t bitrate() const { return node_.lss().active_bitrate(); }
  // LSS activate bit timing: true once when the port must switch the controller to `*bitrate`.
  bool take_bitrate_switch(std::uint32_t* bitrate) { return node_.take_bitrate_switch(bitrate); }
  const ProvisioningStore& provisioning() const { return provisioning_; }
  const ProgramDownload& download() const { return download_; }
  const FlashWriter& writer() const { return writer_; }
  // Mutating requests the guard refused (must stay 0).
  std::uint32_t refused_flash_requests() const { return guard_.refused() + key_flash_.refused(); }
  const KeyStore& key_store() const { return key_store_; }

 private:
  NodeConfig make_node_config(const BootloaderSettings& settings, const RtcanbootInfo& info);
  void update_pending(Micros now);
  // The hold limit applies now (provisioned hold limit, a key, a startable application, nothing
  // running): a node held in its bootloader with a valid application it would start by itself
  // starts it after hold_limit_s without a frame addressed to it (docs/security.md).
  bool hold_limited() const;
  Micros hold_limit() const { return milliseconds(settings_.provisioning.hold_limit_s * 1000U); }
  // Starts the application, recording the attempt first when the image is unconfirmed.
  void begin_start();
  void update_info();  // 0x5F00:6..8 from the journal
  void finish_attempt_record();
  bool trial_enabled() const { return settings_.provisioning.boot_attempts != kTrialBootOff; }

  // LssStorage: "store configuration" writes the provisioning record.
  bool begin_store(std::uint8_t node_id, std::uint32_t bitrate, LssResult* refused) override;
  bool store_busy() override;
  LssResult store_result() const override;

  // SelfTestAccess: 0x5F01 from the port's result; a run request resets the node.
  canopen::SelfTestState self_test_state() const override { return settings_.self_test->state; }
  std::uint32_t self_test_failed() const override { return settings_.self_test->failed; }
  const char* self_test_report() const override { return settings_.self_test->report; }
  canopen::Abort request_self_test() override;

  // SectorDigestAccess: 0x5F02, computed in poll() while the flash is quiet.
  canopen::Abort request_digests(std::uint32_t sectors) override;
  std::uint32_t digest_sectors() const override { return digests_.requested(); }
  canopen::SectorDigestState digest_state() const override {
    return static_cast<canopen::SectorDigestState>(digests_.state());
  }
  const std::uint8_t* digest_bytes(std::uint32_t* size) const override {
    *size = digests_.digest_bytes();
    return digests_.digests();
  }
  canopen::InstallState install_state() const override;
  std::uint32_t installed_length() const override {
    return journal_.installed().valid ? journal_.installed().payload_length : 0;
  }
  std::uint32_t installed_crc32() const override {
    return journal_.installed().valid ? journal_.installed().payload_crc32 : 0;
  }
  void poll_digests();
  // The CRC check an entry request deferred (BootDecision::crc_check_deferred).
  void poll_image_check();
  bool image_check_can_read() const;
  void image_check_done();
  bool confirm_installed_image() override;

  // KeyAccess: 0x5F03, the signing keys (docs/security.md).
  canopen::KeyState key_state() const override;
  const std::uint8_t* key_hashes(std::uint32_t* size) const override;
  DownloadSink* key_sink() override { return this; }
  // DownloadSink for 0x5F03:2: 1 to 4 key hashes, written by poll() once the flash is quiet.
  canopen::Abort begin(bool size_known, std::uint32_t size) override;
  // Never short of room (no pacing for 128 bytes at most): write() refuses what does not fit.
  std::uint32_t free_space() const override { return 0x7FFF'FFFF; }
  canopen::Abort write(const std::uint8_t* data, std::uint32_t length) override;
  canopen::Abort end() override;
  void cancel(canopen::Abort, CancelCause) override { key_received_ = 0; }
  void poll_keys();

  // ProvisioningAccess: 0x5F05, the provisioning record and signed requests to change it.
  std::uint32_t provisioning_sequence() const override;
  const std::uint8_t* provisioning_record(std::uint32_t* size) const override;
  DownloadSink* provisioning_sink() override { return &request_sink_; }
  canopen::ProvisioningRequestState provisioning_request_state() const override {
    return request_state_;
  }
  // A complete request (the sink's end()): checked, then stored as the new record.
  canopen::Abort take_provisioning_request(const std::uint8_t* data, std::uint32_t size);
  canopen::Abort refuse_request(canopen::ProvisioningRequestState why, canopen::Abort abort);
  void poll_provisioning_request();
  // Nothing else uses the flash: a record write may start.
  bool flash_free_for_records() const;

  // Collects the bytes of a 0x5F05:2 write (at most a signed request).
  class RequestSink final : public DownloadSink {
   public:
    explicit RequestSink(Bootloader& owner) : owner_(owner) {}
    canopen::Abort begin(bool size_known, std::uint32_t size) override;
    std::uint32_t free_space() const override { return 0x7FFF'FFFF; }
    canopen::Abort write(const std::uint8_t* data, std::uint32_t length) override;
    canopen::Abort end() override { return owner_.take_provisioning_request(bytes_, received_); }
    void cancel(canopen::Abort, CancelCause) override { received_ = 0; }

   private:
    Bootloader& owner_;
    std::uint8_t bytes_[provisioning_request::kSignedSize] = {};
    std::uint32_t received_ = 0;
  };

  BootloaderSettings settings_;
  FrameSink& frames_;
  GuardedFlash guard_;
  KeyStoreFlash key_flash_;
  KeyStore key_store_;
  std::uint8_t built_in_key_hash_[kKeyHashSize] = {};  // 0x5F03:2 of a build with a key
  std::uint8_t key_bytes_[kMaxProvisionedKeys * kKeyHashSize] = {};
  std::uint32_t key_received_ = 0;
  bool key_write_pending_ = false;  // a complete 0x5F03:2 write waits for the flash
  RequestSink request_sink_{*this};
  canopen::ProvisioningRequestState request_state_ = canopen::ProvisioningRequestState::kNone;
  mutable std::uint8_t record_bytes_[kProvisioningRecordSize] = {};  // 0x5F05:2 read
  journal::InstallJournal journal_;
  ProvisioningStore provisioning_;
  FlashWriter writer_;
  ProgramDownload download_;
  ListenAlong listen_;
  SectorDigests digests_;
  RtcanbootInfo info_;
  NodeConfig node_config_;
  CanopenNode node_;

  BootDecision decision_;
  ImageCheck image_check_;
  bool node_started_ = false;
  enum class AttemptRecord : std::uint8_t { kNone, kWaiting, kWriting };
  AttemptRecord attempt_record_ = AttemptRecord::kNone;
  bool was_configured_ = false;
  bool self_test_requested_ = false;
  bool window_open_ = false;  // announced boot window
  bool listening_ = false;    // silent listen window
  Micros window_end_ = 0;
  Micros last_addressed_ = 0;  // the last frame addressed to the node (hold limit)
  Micros last_poll_ = 0;
  PendingAction pending_ = PendingAction::kNone;
};

}  // namespace rtcanboot
