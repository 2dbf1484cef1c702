#include "rtcanboot/provisioning.hpp"

#include "rtcanboot/bytes.hpp"
#include "rtcanboot/canopen_defs.hpp"
#include "rtcanboot/hash.hpp"
#include "rtcanboot/memory_map.hpp"

namespace rtcanboot {

namespace {

// Record layout (docs/flash-records.md).
constexpr std::size_t kMagicAt = 0x00;
constexpr std::size_t kFormatAt = 0x04;
constexpr std::size_t kNodeIdAt = 0x06;
constexpr std::size_t kFlagsAt = 0x07;
constexpr std::size_t kBitrateAt = 0x08;
constexpr std::size_t kWindowAt = 0x0C;
constexpr std::size_t kSerialAt = 0x10;
constexpr std::size_t kSequenceAt = 0x14;
constexpr std::size_t kAttemptsAt = 0x18;
constexpr std::size_t kHoldLimitAt = 0x19;
constexpr std::size_t kListenWindowAt = 0x1A;
constexpr std::size_t kCrcAt = kProvisioningRecordSize - 4;
static_assert(kSequenceAt + 4 <= kAttemptsAt);
static_assert(kAttemptsAt + 1 == kHoldLimitAt && kHoldLimitAt + 1 <= kListenWindowAt);
static_assert(kListenWindowAt + 2 <= kCrcAt);
// Boot attempts as stored: 0 (the reserved value of older records) = the default, 0xFF = off.
constexpr std::uint8_t kStoredAttemptsDefault = 0;
constexpr std::uint8_t kStoredAttemptsOff = 0xFF;
// Listen window as stored: 0 (the reserved value of older records) = the default, 0xFFFF = off.
constexpr std::uint16_t kStoredListenDefault = 0;
constexpr std::uint16_t kStoredListenOff = 0xFFFF;
static_assert(kProvisioningRecordSize <= RecordLog::kSlotSize);
static_assert(memory_map::kProvisioningOffset + RecordLog::kSectors * memory_map::kSectorSize <=
                  memory_map::kJournalOffset,
              "the provisioning log ends before the journal");
static_assert(kProvisioningRecordSize <= memory_map::kPageSize, "one page program writes it");

constexpr std::uint32_t kCia301Bitrates[] = {10'000,  20'000,  50'000,  125'000,
                                             250'000, 500'000, 800'000, 1'000'000};

bool decode_slot(const std::uint8_t* slot, std::uint32_t* sequence) {
  bool valid = false;
  const Provisioning provisioning = decode_provisioning(slot, kProvisioningRecordSize, &valid);
  *sequence = provisioning.sequence;
  return valid;
}

}  // namespace

bool is_cia301_bitrate(std::uint32_t bitrate) {
  for (const std::uint32_t rate : kCia301Bitrates) {
    if (rate == bitrate) return true;
  }
  return false;
}

bool valid_provisioning(const Provisioning& provisioning) {
  return lss::valid_node_id(provisioning.node_id) && is_cia301_bitrate(provisioning.bitrate) &&
         (provisioning.flags & ~kKnownProvisioningFlags) == 0 &&
         provisioning.listen_window_ms <= kMaxListenWindowMs &&
         provisioning.boot_attempts != kStoredAttemptsOff;  // 0 is "off" in the struct
}

bool encode_provisioning(const Provisioning& provisioning, std::uint8_t* out,
                         std::size_t capacity) {
  if (capacity < kProvisioningRecordSize || !valid_provisioning(provisioning)) return false;
  for (std::size_t i = 0; i < kProvisioningRecordSize; ++i) out[i] = 0;
  store_le32(out + kMagicAt, kProvisioningMagic);
  store_le16(out + kFormatAt, kProvisioningFormat);
  out[kNodeIdAt] = provisioning.node_id;
  out[kFlagsAt] = provisioning.flags;
  store_le32(out + kBitrateAt, provisioning.bitrate);
  store_le32(out + kWindowAt, provisioning.boot_window_ms);
  store_le32(out + kSerialAt, provisioning.serial);
  store_le32(out + kSequenceAt, provisioning.sequence);
  out[kAttemptsAt] =
      provisioning.boot_attempts == kTrialBootOff ? kStoredAttemptsOff : provisioning.boot_attempts;
  out[kHoldLimitAt] = provisioning.hold_limit_s;
  store_le16(out + kListenWindowAt,
             provisioning.listen_window_ms == 0 ? kStoredListenOff : provisioning.listen_window_ms);
  store_le32(out + kCrcAt, crc32(0, out, kCrcAt));
  return true;
}

Provisioning decode_provisioning(const std::uint8_t* data, std::size_t length, bool* valid) {
  if (valid != nullptr) *valid = false;
  const Provisioning defaults;
  if (data == nullptr || length < kProvisioningRecordSize) return defaults;
  if (load_le32(data + kMagicAt) != kProvisioningMagic ||
      load_le16(data + kFormatAt) != kProvisioningFormat ||
      crc32(0, data, kCrcAt) != load_le32(data + kCrcAt)) {
    return defaults;
  }
  Provisioning provisioning;
  provisioning.node_id = data[kNodeIdAt];
  provisioning.flags = data[kFlagsAt];
  provisioning.bitrate = load_le32(data + kBitrateAt);
  provisioning.boot_window_ms = load_le32(data + kWindowAt);
  provisioning.serial = load_le32(data + kSerialAt);
  provisioning.sequence = load_le32(data + kSequenceAt);
  const std::uint8_t attempts = data[kAttemptsAt];
  provisioning.boot_attempts = attempts == kStoredAttemptsDefault ? defaults.boot_attempts
                               : attempts == kStoredAttemptsOff   ? kTrialBootOff
                                                                  : attempts;
  provisioning.hold_limit_s = data[kHoldLimitAt];  // 0 in records older than the hold limit
  const std::uint16_t listen = load_le16(data + kListenWindowAt);
  provisioning.listen_window_ms = listen == kStoredListenDefault ? defaults.listen_window_ms
                                  : listen == kStoredListenOff   ? std::uint16_t{0}
                                                                 : listen;
  if (!valid_provisioning(provisioning)) return defaults;
  if (valid != nullptr) *valid = true;
  return provisioning;
}

Provisioning load_provisioning(FlashPort& flash, bool* valid) {
  ProvisioningStore store(flash);
  store.load();
  if (valid != nullptr) *valid = store.valid();
  return store.current();
}

ProvisioningStore::ProvisioningStore(FlashPort& flash)
    : log_(flash, memory_map::kProvisioningOffset, kProvisioningRecordSize, decode_slot) {}

void ProvisioningStore::load() {
  log_.load();
  saving_ = false;
  current_ = log_.found() ? decode_provisioning(log_.current(), kProvisioningRecordSize, &valid_)
                          : Provisioning{};
  if (!log_.found()) valid_ = false;
}

bool ProvisioningStore::save(const Provisioning& provisioning) {
  if (log_.busy() || log_.operation_in_flight()) return false;
  pending_ = provisioning;
  pending_.sequence = log_.last_sequence() + 1;
  std::uint8_t record[kProvisioningRecordSize];
  if (!encode_provisioning(pending_, record, sizeof record)) return false;
  if (valid_ && pending_.boot_attempts == current_.boot_attempts) {
    // Unchanged boot attempts keep their stored byte as it is (0 stays "the default").
    record[kAttemptsAt] = log_.current()[kAttemptsAt];
  }
  if (valid_ && pending_.listen_window_ms == current_.listen_window_ms) {
    // The same for the listen window (0 stays "the default").
    record[kListenWindowAt] = log_.current()[kListenWindowAt];
    record[kListenWindowAt + 1] = log_.current()[kListenWindowAt + 1];
  }
  if (valid_) store_le32(record + kCrcAt, crc32(0, record, kCrcAt));
  if (!log_.append(record)) return false;
  saving_ = true;
  return true;
}

void ProvisioningStore::poll() {
  log_.poll();
  if (saving_ && !log_.busy()) {
    saving_ = false;
    if (!log_.failed()) {
      current_ = pending_;
      valid_ = true;
    }
  }
}

}  // namespace rtcanboot
