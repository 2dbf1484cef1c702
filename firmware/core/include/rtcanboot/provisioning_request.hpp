// A provisioning request: the new settings of one device's provisioning record (node-ID, bit
// rate, boot and listen windows, trial attempts, hold limit), written to 0x5F05:2. Once the node
// holds a signing key it must be signed by one of its keys; it names the device (vendor-ID,
// product code, serial number) and the sequence number of the record it replaces, so it is good
// for one change of one device and a recorded request cannot be replayed
// (docs/security.md, "Changing the provisioning record").
//
// Bytes (little-endian), docs/security.md has the table:
//   0x00 magic "RTCQ", 0x04 format 1, 0x05..0x07 reserved 0,
//   0x08 vendor-ID, 0x0C product code, 0x10 serial number, 0x14 record sequence it replaces,
//   0x18 node-ID, 0x19 flags, 0x1A boot attempts (0: trial boot off), 0x1B hold limit s,
//   0x1C bit rate, 0x20 boot window ms, 0x24 listen window ms (0: off), 0x26 reserved 0;
//   signed: 0x28 public key A (32), 0x48 signature R || S (64) over
//   "RTCB-PROVISION-1\0" ... (kMessageSize bytes: the domain string and bytes 0x00..0x27).
#pragma once

#include <cstddef>
#include <cstdint>

#include "rtcanboot/provisioning.hpp"

namespace rtcanboot::provisioning_request {

inline constexpr std::uint32_t kMagic = 0x5143'5452;  // "RTCQ"
inline constexpr std::uint8_t kFormat = 1;
inline constexpr std::size_t kBodySize = 0x28;
inline constexpr std::size_t kPublicKeySize = 32;
inline constexpr std::size_t kSignatureSize = 64;
inline constexpr std::size_t kSignedSize = kBodySize + kPublicKeySize + kSignatureSize;
// Domain separation from the container signature ("RTCB-ED25519-V1"): a signature made for one
// can never pass as the other.
inline constexpr char kDomain[] = "RTCB-PROVISION-1";
inline constexpr std::size_t kDomainSize = sizeof kDomain;
inline constexpr std::size_t kMessageSize = kDomainSize + kBodySize;
static_assert(kDomainSize == 17 && kSignedSize == 136);

struct Request {
  std::uint32_t vendor_id = 0;
  std::uint32_t product_code = 0;
  std::uint32_t serial = 0;    // the device's 0x1018:4
  std::uint32_t sequence = 0;  // 0x5F05:1, the sequence of the record in force
  // The new settings; serial and sequence of this struct are not used.
  Provisioning settings;
  bool is_signed = false;
  std::uint8_t public_key[kPublicKeySize] = {};
  std::uint8_t signature[kSignatureSize] = {};
};

// Writes the unsigned body (kBodySize bytes). False when a setting is out of range (the rules of
// encode_provisioning()).
bool encode_body(const Request& request, std::uint8_t out[kBodySize]);
// The message a signature covers: kDomain (with its NUL) followed by the body.
void signed_message(const std::uint8_t body[kBodySize], std::uint8_t out[kMessageSize]);
// Reads a request of kBodySize (unsigned) or kSignedSize (signed) bytes. False when the length,
// magic, format or a reserved byte is wrong, or a setting is out of range.
bool decode(const std::uint8_t* data, std::size_t length, Request& out);

}  // namespace rtcanboot::provisioning_request
