// The provisioning record: node-ID, bit rate, boot windows and serial number of one device, in a
// RecordLog of two 4 KiB sectors of the records area (memory_map::kProvisioningOffset), written
// at the factory (or by the twin, like a factory step) and by LSS "store configuration". No
// valid record means the documented defaults: an unconfigured node (node-ID 0xFF) at 125 kbit/s.
// docs/flash-records.md describes the bytes.
#pragma once

#include <cstddef>
#include <cstdint>

#include "rtcanboot/flash_port.hpp"
#include "rtcanboot/lss.hpp"
#include "rtcanboot/record_log.hpp"

namespace rtcanboot {

// Provisioning flags (byte 0x07 of the record).
// Once an LSS master has given an unconfigured node its node-ID, start a valid installed
// application (instead of staying in the bootloader, the default).
inline constexpr std::uint8_t kStartApplicationAfterLss = 0x01;
inline constexpr std::uint8_t kKnownProvisioningFlags = kStartApplicationAfterLss;

// The listen window (docs/trial-boot.md, "The boot window at power-on"): a node with a valid
// application and no announced boot window listens this long, silently, for a master's entry
// request before it starts the application. 50 ms: a request repeated every 20 ms lands inside it
// even at 10 kbit/s (13.5 ms per frame) with room for one lost arbitration.
inline constexpr std::uint16_t kDefaultListenWindowMs = 50;
inline constexpr std::uint16_t kMaxListenWindowMs = 60'000;

struct Provisioning {
  std::uint8_t node_id = lss::kUnconfigured;  // 1..127, or 0xFF: unconfigured (LSS assigns one)
  std::uint32_t bitrate = 125'000;            // bit/s, one of the CiA 301 rates
  // Announced boot window: boot-up message first, then a valid application waits this long for
  // a master (0: none; the listen window applies instead).
  std::uint32_t boot_window_ms = 0;
  std::uint32_t serial = 0;    // 0x1018:4 (0: keep the build's serial)
  std::uint8_t flags = 0;      // kStartApplicationAfterLss
  std::uint32_t sequence = 0;  // record sequence number (newest wins)
  // Starts of a new, unconfirmed image before the bootloader gives up on it (trial boot);
  // kTrialBootOff starts every committed image without asking for a confirmation.
  std::uint8_t boot_attempts = 3;
  // Silent listen window before a valid application starts, ms (0: off, start at once).
  std::uint16_t listen_window_ms = kDefaultListenWindowMs;
  // Hold limit, s (0: none): once the node holds a signing key, a node held in its bootloader
  // with a valid application it would start by itself starts it after this long without a frame
  // addressed to it (docs/security.md, "Lock-down").
  std::uint8_t hold_limit_s = 0;
};

inline constexpr std::uint8_t kTrialBootOff = 0;

inline constexpr std::uint32_t kProvisioningMagic = 0x5043'5452;  // "RTCP"
inline constexpr std::uint16_t kProvisioningFormat = 1;
inline constexpr std::size_t kProvisioningRecordSize = 32;

// 10k, 20k, 50k, 125k, 250k, 500k, 800k or 1M bit/s.
bool is_cia301_bitrate(std::uint32_t bitrate);

// The settings' ranges: node-ID 1..127 or 0xFF, a CiA 301 bit rate, known flags, listen window
// at most kMaxListenWindowMs, boot attempts not 255 (kTrialBootOff, 0, turns trial boot off).
bool valid_provisioning(const Provisioning& provisioning);
// Writes the record (kProvisioningRecordSize bytes, CRC included). False when a field is out of
// range (node-ID not 1..127 or 0xFF, bit rate not a CiA 301 rate, unknown flags, listen window
// above kMaxListenWindowMs) or the buffer is too small.
bool encode_provisioning(const Provisioning& provisioning, std::uint8_t* out, std::size_t capacity);
// Decodes a record; blank, torn or invalid records give the defaults (`valid` tells which).
Provisioning decode_provisioning(const std::uint8_t* data, std::size_t length,
                                 bool* valid = nullptr);
// Reads the newest record from its sectors (flash idle, start-up).
Provisioning load_provisioning(FlashPort& flash, bool* valid = nullptr);

// The provisioning record log: reads the newest record and appends new ones power-cut safe
// (RecordLog: an interrupted store leaves the old record or the new one, never a broken one).
class ProvisioningStore {
 public:
  explicit ProvisioningStore(FlashPort& flash);

  // Scans both sectors (flash idle).
  void load();
  bool valid() const { return valid_; }
  const Provisioning& current() const { return current_; }

  // Starts writing `provisioning` as the newest record (its sequence number is set here). False
  // when a store is running or a field is out of range. Progress in poll().
  bool save(const Provisioning& provisioning);
  void poll();
  bool busy() const { return log_.busy(); }
  bool failed() const { return log_.failed(); }
  bool operation_in_flight() const { return log_.operation_in_flight(); }

 private:
  RecordLog log_;
  Provisioning current_;
  Provisioning pending_;
  bool valid_ = false;
  bool saving_ = false;
};

}  // namespace rtcanboot
