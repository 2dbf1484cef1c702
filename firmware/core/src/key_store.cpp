#include "rtcanboot/key_store.hpp"

#include "rtcanboot/bytes.hpp"

namespace rtcanboot {

namespace {

constexpr std::uint32_t kMagicAt = 0;
constexpr std::uint32_t kFormatAt = 4;
constexpr std::uint32_t kCountAt = 5;
constexpr std::uint32_t kHashesAt = 8;
constexpr std::uint32_t kCrcAt = kHashesAt + kMaxProvisionedKeys * kKeyHashSize;
static_assert(kCrcAt + 4 == kKeyStoreRecordSize);

}  // namespace

bool encode_key_store_record(const KeyHashes& keys, std::uint8_t out[kKeyStoreRecordSize]) {
  if (keys.count == 0 || keys.count > kMaxProvisionedKeys) return false;
  for (std::uint32_t i = 0; i < kKeyStoreRecordSize; ++i) out[i] = 0;
  store_le32(out + kMagicAt, kKeyStoreMagic);
  out[kFormatAt] = kKeyStoreFormat;
  out[kCountAt] = keys.count;
  for (std::uint32_t k = 0; k < keys.count; ++k) {
    for (std::uint32_t i = 0; i < kKeyHashSize; ++i)
      out[kHashesAt + k * kKeyHashSize + i] = keys.hash[k][i];
  }
  store_le32(out + kCrcAt, crc32(0, out, kCrcAt));
  return true;
}

bool decode_key_store_record(const std::uint8_t bytes[kKeyStoreRecordSize], KeyHashes& out) {
  if (load_le32(bytes + kMagicAt) != kKeyStoreMagic || bytes[kFormatAt] != kKeyStoreFormat) {
    return false;
  }
  if (crc32(0, bytes, kCrcAt) != load_le32(bytes + kCrcAt)) return false;
  const std::uint8_t count = bytes[kCountAt];
  if (count == 0 || count > kMaxProvisionedKeys || bytes[6] != 0 || bytes[7] != 0) return false;
  for (std::uint32_t i = kHashesAt + count * kKeyHashSize; i < kCrcAt; ++i) {
    if (bytes[i] != 0) return false;
  }
  out = KeyHashes{};
  out.count = count;
  for (std::uint32_t k = 0; k < count; ++k) {
    for (std::uint32_t i = 0; i < kKeyHashSize; ++i)
      out.hash[k][i] = bytes[kHashesAt + k * kKeyHashSize + i];
  }
  return true;
}

void KeyStore::load() {
  state_ = KeyStoreState::kNone;
  keys_ = KeyHashes{};
  next_blank_ = 0;
  in_flight_ = false;
  bool written = false;
  bool provisioned = false;
  for (std::uint32_t page = 0; page < kKeyStorePages; ++page) {
    bool blank = flash_.read(page_offset(page), page_, memory_map::kPageSize) == FlashResult::kOk;
    for (std::uint32_t i = 0; blank && i < memory_map::kPageSize; ++i) blank = page_[i] == 0xFF;
    if (blank) continue;
    written = true;
    next_blank_ = page + 1;
    KeyHashes keys;
    if (!provisioned && decode_key_store_record(page_, keys)) {
      provisioned = true;
      keys_ = keys;
    }
  }
  state_ = provisioned ? KeyStoreState::kProvisioned
           : written   ? KeyStoreState::kInterrupted
                       : KeyStoreState::kNone;
}

bool KeyStore::holds(const std::uint8_t public_key[32]) const {
  if (state_ != KeyStoreState::kProvisioned) return false;
  SoftwareSha256 sha;
  sha.reset();
  sha.update(public_key, 32);
  std::uint8_t digest[kKeyHashSize];
  sha.finish(digest);
  for (std::uint32_t k = 0; k < keys_.count; ++k) {
    bool same = true;
    for (std::uint32_t i = 0; i < kKeyHashSize; ++i) same = same && keys_.hash[k][i] == digest[i];
    if (same) return true;
  }
  return false;
}

bool KeyStore::begin_write(const KeyHashes& keys) {
  if (state_ != KeyStoreState::kNone && state_ != KeyStoreState::kInterrupted) return false;
  if (next_blank_ >= kKeyStorePages || in_flight_) return false;
  for (std::uint32_t i = 0; i < memory_map::kPageSize; ++i) page_[i] = 0xFF;
  if (!encode_key_store_record(keys, page_)) return false;
  const std::uint32_t page = next_blank_++;  // a failed or torn write still uses its page
  state_ = KeyStoreState::kWriting;
  if (flash_.start_program(page_offset(page), page_) != FlashResult::kOk) {
    load();  // nothing started: the sector as it is decides again
    return false;
  }
  in_flight_ = true;
  return true;
}

void KeyStore::poll() {
  if (state_ != KeyStoreState::kWriting || flash_.busy()) return;
  in_flight_ = false;
  // Whatever the port says, the sector as it now reads decides (a failed program may have left
  // part of the record: kInterrupted, never a key).
  load();
}

}  // namespace rtcanboot
