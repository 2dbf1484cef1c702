// Checksums and digests used by the core. CRC-32 and CRC-16 are plain functions; SHA-256 sits
// behind a small interface so the RT1064 port can use its DCP engine instead of software.
// SHA-512 (software only: the DCP has no SHA-512) serves Ed25519 (ed25519.hpp).
#pragma once

#include <cstddef>
#include <cstdint>

namespace rtcanboot {

// CRC-32 (IEEE 802.3, reflected, init and xorout 0xFFFFFFFF: zlib's crc32). Incremental: pass
// the previous return value as `crc` (start with 0).
std::uint32_t crc32(std::uint32_t crc, const void* data, std::size_t length);

// CRC-16/XMODEM (poly 0x1021, init 0, no reflection): the SDO block transfer CRC. Incremental:
// pass the previous return value as `crc` (start with 0).
// The 0x1018:4 serial number from a chip's unique-ID fuse words (i.MX RT OCOTP CFG0, CFG1,
// CFG2): CRC-32 over the three words, little-endian. Whether the ID sits in CFG0/CFG1 or in
// CFG1/CFG2, chips with different IDs get different serials (up to CRC-32 collisions).
std::uint32_t serial_from_unique_id(std::uint32_t cfg0, std::uint32_t cfg1, std::uint32_t cfg2);

std::uint16_t crc16_xmodem(std::uint16_t crc, const void* data, std::size_t length);

class Sha256Engine {
 public:
  static constexpr std::size_t kDigestSize = 32;
  virtual void reset() = 0;
  virtual void update(const void* data, std::size_t length) = 0;
  virtual void finish(std::uint8_t digest[kDigestSize]) = 0;

 protected:
  ~Sha256Engine() = default;
};

// Portable software SHA-256 (FIPS 180-4).
class SoftwareSha256 final : public Sha256Engine {
 public:
  SoftwareSha256() { reset(); }
  void reset() override;
  void update(const void* data, std::size_t length) override;
  void finish(std::uint8_t digest[kDigestSize]) override;

 private:
  void compress(const std::uint8_t block[64]);
  std::uint32_t state_[8] = {};
  std::uint8_t buffer_[64] = {};
  std::uint64_t total_length_ = 0;
  std::size_t buffered_ = 0;
};

// Portable software SHA-512 (FIPS 180-4 §6.4), for Ed25519 signature verification. Messages up
// to 2^61 - 1 bytes (the upper half of the 128-bit length field is always zero).
class Sha512 {
 public:
  static constexpr std::size_t kDigestSize = 64;
  Sha512() { reset(); }
  void reset();
  void update(const void* data, std::size_t length);
  // Writes the digest and resets the object for the next message.
  void finish(std::uint8_t digest[kDigestSize]);

 private:
  void compress(const std::uint8_t block[128]);
  std::uint64_t state_[8] = {};
  std::uint8_t buffer_[128] = {};
  std::uint64_t total_length_ = 0;
  std::size_t buffered_ = 0;
};

}  // namespace rtcanboot
