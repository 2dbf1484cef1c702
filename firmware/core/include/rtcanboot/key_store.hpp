// The key store: signing keys provisioned over CAN (0x5F03, docs/security.md) into one 4 KiB
// sector of the records area (memory_map::kKeyStoreOffset), for a bootloader built without a key.
//
// - A key record is the SHA-256 of 1 to 4 Ed25519 public keys (the signature record carries the
//   public key A; the node accepts A when SHA-256(A) is listed). One record per 256-byte page,
//   programmed once, never erased: nothing in the bootloader erases this sector, and every other
//   writer is kept out of it by GuardedFlash (flash_guard.hpp).
// - State after load(): a page with a valid record (magic, format, count, CRC) -> kProvisioned
//   (the first one counts; a node with a key takes no other). Every page blank -> kNone, the
//   provisioning state: the node accepts unsigned containers and one key write. A page that is
//   neither blank nor valid (a write cut by power loss or failed) and no valid one ->
//   kInterrupted: the node refuses every container (fail closed, never back to unsigned) and
//   takes a key write onto the next blank page, so the provisioning can be completed.
#pragma once

#include <cstdint>

#include "rtcanboot/flash_port.hpp"
#include "rtcanboot/hash.hpp"
#include "rtcanboot/memory_map.hpp"

namespace rtcanboot {

inline constexpr std::uint32_t kKeyStoreMagic = 0x4B50'5452;  // "RTPK"
inline constexpr std::uint8_t kKeyStoreFormat = 1;
inline constexpr std::uint32_t kMaxProvisionedKeys = 4;
inline constexpr std::uint32_t kKeyHashSize = Sha256Engine::kDigestSize;
// magic 4, format 1, count 1, reserved 2, 4 hashes, CRC-32 4.
inline constexpr std::uint32_t kKeyStoreRecordSize = 8 + kMaxProvisionedKeys * kKeyHashSize + 4;
inline constexpr std::uint32_t kKeyStorePages = memory_map::kSectorSize / memory_map::kPageSize;
static_assert(kKeyStoreRecordSize <= memory_map::kPageSize);

struct KeyHashes {
  std::uint8_t count = 0;  // 1..kMaxProvisionedKeys when valid
  std::uint8_t hash[kMaxProvisionedKeys][kKeyHashSize] = {};
};

// Writes a key record (kKeyStoreRecordSize bytes). False for a count outside 1..4.
bool encode_key_store_record(const KeyHashes& keys, std::uint8_t out[kKeyStoreRecordSize]);
// False for a blank, torn or foreign record (also a count outside 1..4, unused hashes not 0).
bool decode_key_store_record(const std::uint8_t bytes[kKeyStoreRecordSize], KeyHashes& out);

enum class KeyStoreState : std::uint8_t {
  kNone = 0,         // all pages blank: provisioning state
  kProvisioned = 2,  // a valid key record
  kInterrupted = 3,  // a page written but no valid record: every container refused
  kWriting = 4,      // a key write is running
};

class KeyStore {
 public:
  // `flash` is the KeyStoreFlash (page programs onto blank pages of the sector only).
  explicit KeyStore(FlashPort& flash) : flash_(flash) {}

  // Scans the sector (flash idle, start-up).
  void load();
  KeyStoreState state() const { return state_; }
  // Valid when state() is kProvisioned.
  const KeyHashes& keys() const { return keys_; }
  // True when SHA-256(public_key) is one of the provisioned hashes.
  bool holds(const std::uint8_t public_key[32]) const;

  // Starts writing `keys` onto the next blank page: only in kNone or kInterrupted, with a blank
  // page left and a count of 1..4. Progress in poll(); the flash must not be busy with other work.
  bool begin_write(const KeyHashes& keys);
  void poll();
  bool busy() const { return state_ == KeyStoreState::kWriting; }
  bool operation_in_flight() const { return in_flight_; }

 private:
  std::uint32_t page_offset(std::uint32_t page) const {
    return memory_map::kKeyStoreOffset + page * memory_map::kPageSize;
  }

  FlashPort& flash_;
  KeyStoreState state_ = KeyStoreState::kNone;
  KeyHashes keys_;
  std::uint32_t next_blank_ = 0;  // first page after every used one (kKeyStorePages: none left)
  bool in_flight_ = false;
  std::uint8_t page_[memory_map::kPageSize] = {};
};

}  // namespace rtcanboot
