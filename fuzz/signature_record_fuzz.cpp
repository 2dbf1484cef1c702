// The records area walk and the signature record (firmware/core/src/image_format.cpp) on
// arbitrary headers. Invariants: no crash and no read outside the header (ASan: the header is
// copied into a buffer of exactly its length); a found record lies inside the records area,
// aligned, and encodes back to the same bytes; the walk refuses only as "malformed"; and a
// mutation of the signed test vector's header verifies only if it left every signed byte and the
// signature as they were.
//
// Input: byte 0 = mode.
//   mode even: the rest is a header; its length is taken from bytes 6..7 (clamped to the input).
//   mode odd:  the rest are (position, xor) byte pairs applied to the header of
//              tests/vectors/container_signed.bin (RFC 8032 TEST 1 key), then checked.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "fuzz_check.hpp"
#include "rtcanboot/bytes.hpp"
#include "rtcanboot/hash.hpp"
#include "rtcanboot/image_format.hpp"

namespace {

using namespace rtcanboot;

// tests/vectors/container_signed.bin, its 184-byte header.
constexpr std::uint8_t kSignedHeader[image::kSignedHeaderLength] = {
    0x52, 0x54, 0x43, 0x42, 0x01, 0x00, 0xb8, 0x00, 0x00, 0x00, 0x02, 0x70, 0x40, 0x00, 0x00, 0x00,
    0x00, 0x04, 0x01, 0x00, 0xbc, 0x0a, 0x00, 0x00, 0x64, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x1d, 0x9f, 0x1c, 0xb2, 0xfb, 0xa3, 0x0b, 0x5f, 0xfa, 0xfd, 0x42, 0xe8, 0xd9, 0xd6, 0x32, 0xe4,
    0x9d, 0x62, 0xf6, 0x65, 0x37, 0x0b, 0x51, 0x76, 0x1b, 0xa3, 0x7e, 0x77, 0x6e, 0x2c, 0xa1, 0xb0,
    0x4c, 0x1b, 0x08, 0xcd, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x68, 0x00, 0x01, 0x00, 0x00, 0x00,
    0x05, 0x00, 0x00, 0x00, 0xd7, 0x5a, 0x98, 0x01, 0x82, 0xb1, 0x0a, 0xb7, 0xd5, 0x4b, 0xfe, 0xd3,
    0xc9, 0x64, 0x07, 0x3a, 0x0e, 0xe1, 0x72, 0xf3, 0xda, 0xa6, 0x23, 0x25, 0xaf, 0x02, 0x1a, 0x68,
    0xf7, 0x07, 0x51, 0x1a, 0xe0, 0x66, 0x4f, 0x3e, 0x59, 0x63, 0xfb, 0x1a, 0x85, 0xca, 0xf4, 0xb4,
    0x28, 0x0a, 0x8d, 0x10, 0xe8, 0x99, 0xf5, 0x3d, 0x16, 0x5f, 0x3e, 0x73, 0x25, 0xe4, 0x9f, 0x6d,
    0x90, 0xef, 0x32, 0xb5, 0x50, 0x5d, 0x0a, 0x6a, 0x2f, 0xc5, 0x56, 0xfc, 0xb5, 0x53, 0xec, 0x5f,
    0x47, 0xb5, 0x84, 0xff, 0x53, 0x3c, 0xdb, 0xe7, 0x6e, 0x02, 0x76, 0x60, 0xdf, 0x86, 0xda, 0x90,
    0x8f, 0x81, 0x21, 0x04, 0x7c, 0x16, 0x59, 0xf1,
};

// RFC 8032 section 7.1 TEST 1 public key (the key of the header above).
constexpr std::uint8_t kTestKey[32] = {
    0xd7, 0x5a, 0x98, 0x01, 0x82, 0xb1, 0x0a, 0xb7, 0xd5, 0x4b, 0xfe, 0xd3, 0xc9, 0x64, 0x07, 0x3a,
    0x0e, 0xe1, 0x72, 0xf3, 0xda, 0xa6, 0x23, 0x25, 0xaf, 0x02, 0x1a, 0x68, 0xf7, 0x07, 0x51, 0x1a,
};

void check_walk(const std::vector<std::uint8_t>& header) {
  const auto length = static_cast<std::uint16_t>(header.size());
  image::SignatureRecord record;
  const image::RecordsResult result = image::find_signature(header.data(), length, record);
  if (!result.check.ok()) {
    FUZZ_CHECK(result.check.status == canopen::FlashStatus::kNotAuthorised);
    FUZZ_CHECK(result.check.detail == canopen::FlashDetail::kSignatureMalformed);
    FUZZ_CHECK(!result.has_signature);
    return;
  }
  if (!result.has_signature) return;
  const std::uint16_t at = result.signature_offset;
  FUZZ_CHECK(at >= image::kFixedLength && at % 4 == 0);
  FUZZ_CHECK(at + image::kSignatureRecordSize <= length - 4U);
  std::vector<std::uint8_t> again = header;
  FUZZ_CHECK(image::place_signature_record(again.data(), length, at, record));
  FUZZ_CHECK(std::memcmp(again.data(), header.data(), length - 4U) == 0);
  image::SignatureRecord second;
  const image::RecordsResult repeat = image::find_signature(header.data(), length, second);
  FUZZ_CHECK(repeat.has_signature && repeat.signature_offset == at);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1 || size > 4096) return 0;
  const std::uint8_t mode = data[0];
  if ((mode & 1) == 0) {
    if (size < 1 + image::kFixedLength) return 0;
    std::uint16_t length = load_le16(data + 1 + 6);
    if (length < image::kMinHeaderLength || length > image::kMaxHeaderLength || length % 4 != 0)
      return 0;
    if (length > size - 1) length = static_cast<std::uint16_t>((size - 1) & ~std::size_t{3});
    if (length < image::kMinHeaderLength) return 0;
    check_walk(std::vector<std::uint8_t>(data + 1, data + 1 + length));
    return 0;
  }
  std::vector<std::uint8_t> header(kSignedHeader, kSignedHeader + sizeof kSignedHeader);
  for (std::size_t i = 1; i + 1 < size; i += 2) header[data[i] % header.size()] ^= data[i + 1];
  check_walk(header);
  image::SignatureRecord record;
  const image::RecordsResult result =
      image::find_signature(header.data(), image::kSignedHeaderLength, record);
  if (!result.has_signature) return 0;
  if (!image::check_signature(header.data(), record, kTestKey).ok()) return 0;
  // Accepted: the signed message and the signature are the vector's own.
  image::SignatureRecord original;
  image::find_signature(kSignedHeader, image::kSignedHeaderLength, original);
  std::uint8_t signed_now[image::kSignedMessageSize];
  std::uint8_t signed_then[image::kSignedMessageSize];
  image::signed_message(header.data(), record, signed_now);
  image::signed_message(kSignedHeader, original, signed_then);
  FUZZ_CHECK(std::memcmp(signed_now, signed_then, sizeof signed_now) == 0);
  FUZZ_CHECK(std::memcmp(record.signature, original.signature, image::kSignatureSize) == 0);
  return 0;
}
