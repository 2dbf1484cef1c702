// Configuration of a CANopen node built on the core: the bootloader and the example application
// use the same node, with different settings.
#pragma once

#include <cstdint>

#include "rtcanboot/canopen_defs.hpp"
#include "rtcanboot/lss.hpp"
#include "rtcanboot/program_control.hpp"
#include "rtcanboot/types.hpp"

namespace rtcanboot {

struct NodeIdentity {
  std::uint32_t vendor_id = 0;
  std::uint32_t product_code = 0;
  std::uint32_t revision = 0;
  std::uint32_t serial = 0;
};

// Live information published in 0x5F00 (read when an SDO asks, so it may change).
struct RtcanbootInfo {
  std::uint8_t running_program = canopen::kRunningBootloader;
  std::uint32_t bootloader_version = 0;
  std::uint32_t app_region_start = 0;
  std::uint32_t app_region_size = 0;
  canopen::BootReason boot_reason = canopen::BootReason::kNoValidApplication;
  std::uint32_t image_version = 0;
  canopen::TrialState trial_state = canopen::TrialState::kNoImage;  // 0x5F00:7
  std::uint8_t boot_attempts = 0;  // 0x5F00:8: unconfirmed starts of the installed image
  // 0x5F00:9: the highest security counter committed (install journal, anti-rollback).
  std::uint32_t security_counter = 0;
};

class LssStorage;

// 0x5F01, the bring-up self-test: the bootloader serves it, the port runs the checks.
class SelfTestAccess {
 public:
  virtual canopen::SelfTestState self_test_state() const = 0;
  virtual std::uint32_t self_test_failed() const = 0;
  virtual const char* self_test_report() const = 0;
  // 0x5F01:1 = 1: kNone when the node will reset into the self-test once the answer is sent.
  virtual canopen::Abort request_self_test() = 0;

 protected:
  ~SelfTestAccess() = default;
};

// 0x5F02, the sector digests and the install state: the bootloader serves them.
class SectorDigestAccess {
 public:
  // 0x5F02:1 written: kNone when the computation of `sectors` digests started.
  virtual canopen::Abort request_digests(std::uint32_t sectors) = 0;
  virtual std::uint32_t digest_sectors() const = 0;                         // sub 1
  virtual canopen::SectorDigestState digest_state() const = 0;              // sub 2
  virtual const std::uint8_t* digest_bytes(std::uint32_t* size) const = 0;  // sub 3
  virtual canopen::InstallState install_state() const = 0;                  // sub 4
  virtual std::uint32_t installed_length() const = 0;                       // sub 5
  virtual std::uint32_t installed_crc32() const = 0;                        // sub 6

 protected:
  ~SectorDigestAccess() = default;
};

// 0x5F03, the signing keys: the bootloader serves them (docs/security.md).
class KeyAccess {
 public:
  virtual canopen::KeyState key_state() const = 0;                        // sub 1
  virtual const std::uint8_t* key_hashes(std::uint32_t* size) const = 0;  // sub 2, read
  virtual DownloadSink* key_sink() = 0;                                   // sub 2, write

 protected:
  ~KeyAccess() = default;
};

// 0x5F05, the provisioning record and the requests that change it (docs/security.md).
class ProvisioningAccess {
 public:
  virtual std::uint32_t provisioning_sequence() const = 0;                           // sub 1
  virtual const std::uint8_t* provisioning_record(std::uint32_t* size) const = 0;    // sub 2, read
  virtual DownloadSink* provisioning_sink() = 0;                                     // sub 2, write
  virtual canopen::ProvisioningRequestState provisioning_request_state() const = 0;  // sub 3

 protected:
  ~ProvisioningAccess() = default;
};

// 0x5F04, listen-along download (docs/fleet-update.md).
class ListenAlongAccess {
 public:
  // Subs 1..3 (configuration, kept until written again) and sub 4 (command / state).
  virtual std::uint32_t listen_setting(std::uint8_t sub) const = 0;
  virtual canopen::Abort set_listen_setting(std::uint8_t sub, std::uint32_t value) = 0;
  virtual canopen::Abort listen_command(std::uint8_t command) = 0;
  virtual canopen::ListenAlongState listen_state() const = 0;
  virtual std::uint32_t listen_gap_bytes() const = 0;
  // Sub 6: the gaps as (u32 offset in the followed container, u32 length) pairs; 0 bytes when
  // there were more than ListenAlong::kMaxGapRuns.
  virtual const std::uint8_t* listen_gap_list(std::uint32_t* size) const = 0;

 protected:
  ~ListenAlongAccess() = default;
};

struct NodeConfig {
  // 1..127, or lss::kUnconfigured (0xFF): no boot-up, heartbeat, NMT or SDO until an LSS master
  // assigns a node-ID (CiA 305).
  std::uint8_t node_id = 1;
  std::uint32_t bitrate = 125'000;  // the bit rate the port runs (LSS reports and switches it)
  // LSS: bit n set = standard table index n can be run; where "store configuration" goes
  // (nullptr: the LSS answer is "store not supported").
  std::uint16_t lss_rates = lss::kAllStandardRates;
  LssStorage* lss_storage = nullptr;
  NodeIdentity identity;
  const char* device_name = "rtcanboot";  // 0x1008
  const char* software_version = "";      // 0x100A
  std::uint16_t heartbeat_ms = 1000;      // 0x1017 at start
  // A bootloader stays PRE-OPERATIONAL and ignores NMT start/stop; an application follows NMT.
  bool is_application = false;
  // A self-starting application (CiA 302-2 NMT start-up "start yourself") enters OPERATIONAL
  // right after each boot-up message instead of waiting for a master's NMT start.
  bool self_starting = false;
  // An SDO transfer with no frame from the client for this long is aborted (0x05040000).
  Micros sdo_timeout = milliseconds(1000);
  // Download pacing: the longest the server holds back a sub-block acknowledge (block download)
  // or a segment's confirmation (segmented download) while the download sink is short of room,
  // before it answers anyway and takes the next segment out of its reserve.
  Micros max_ack_hold = milliseconds(80);
  // Bytes of the sink's free space kept back for such forced answers: at one segment per
  // max_ack_hold, 1 KiB lasts 11 s, far longer than the flash's longest operation (2 s).
  std::uint32_t pacing_reserve = 1024;
  // After a block download ended inside a sub-block (server or client abort, timeout, NMT reset),
  // the segments of that sub-block the client already queued are ignored. The drain ends at the
  // sub-block's last segment, at the first frame that is not the next segment, or when no segment
  // came for this long (docs/canopen.md, "After an interrupted transfer").
  Micros block_drain_time = milliseconds(200);
  const RtcanbootInfo* info = nullptr;           // 0x5F00; absent when nullptr
  SelfTestAccess* self_test = nullptr;           // 0x5F01; absent when nullptr
  SectorDigestAccess* sector_digests = nullptr;  // 0x5F02; absent when nullptr
  KeyAccess* keys = nullptr;                     // 0x5F03; absent when nullptr
  ListenAlongAccess* listen_along = nullptr;     // 0x5F04; absent when nullptr
  ProvisioningAccess* provisioning = nullptr;    // 0x5F05; absent when nullptr
};

}  // namespace rtcanboot
