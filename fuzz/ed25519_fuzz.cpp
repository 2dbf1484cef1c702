// Ed25519 verification (firmware/core/src/ed25519.cpp) on arbitrary keys, signatures and
// messages. Invariants: no crash (ASan/UBSan); the verdict is a pure function of the input; S >= L
// is always kNonCanonicalS; a key that valid_public_key() refuses never verifies; a mutation of
// a valid RFC 8032 triple (TEST 2) never verifies, unless it changed nothing.
//
// Input: byte 0 = mode.
//   mode even: the rest is A (32 bytes) || R || S (64 bytes) || message, verified as it is.
//   mode odd:  the rest are (position, xor) byte pairs applied to TEST 2's A || R || S || message
//              (the message may grow to 64 bytes), then verified.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "fuzz_check.hpp"
#include "rtcanboot/ed25519.hpp"

namespace {

using rtcanboot::ed25519::valid_public_key;
using rtcanboot::ed25519::Verdict;
using rtcanboot::ed25519::verify;

// RFC 8032 §7.1 TEST 2: A, R || S, message 0x72.
constexpr std::uint8_t kTest2[32 + 64 + 1] = {
    0x3d, 0x40, 0x17, 0xc3, 0xe8, 0x43, 0x89, 0x5a, 0x92, 0xb7, 0x0a, 0xa7, 0x4d, 0x1b,
    0x7e, 0xbc, 0x9c, 0x98, 0x2c, 0xcf, 0x2e, 0xc4, 0x96, 0x8c, 0xc0, 0xcd, 0x55, 0xf1,
    0x2a, 0xf4, 0x66, 0x0c, 0x92, 0xa0, 0x09, 0xa9, 0xf0, 0xd4, 0xca, 0xb8, 0x72, 0x0e,
    0x82, 0x0b, 0x5f, 0x64, 0x25, 0x40, 0xa2, 0xb2, 0x7b, 0x54, 0x16, 0x50, 0x3f, 0x8f,
    0xb3, 0x76, 0x22, 0x23, 0xeb, 0xdb, 0x69, 0xda, 0x08, 0x5a, 0xc1, 0xe4, 0x3e, 0x15,
    0x99, 0x6e, 0x45, 0x8f, 0x36, 0x13, 0xd0, 0xf1, 0x1d, 0x8c, 0x38, 0x7b, 0x2e, 0xae,
    0xb4, 0x30, 0x2a, 0xee, 0xb0, 0x0d, 0x29, 0x16, 0x12, 0xbb, 0x0c, 0x00, 0x72};

// S (little-endian) >= L = 2^252 + 27742317777372353535851937790883648493, byte by byte.
bool s_at_least_l(const std::uint8_t s[32]) {
  constexpr std::uint8_t kL[32] = {0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7,
                                   0xa2, 0xde, 0xf9, 0xde, 0x14, 0,    0,    0,    0,    0,    0,
                                   0,    0,    0,    0,    0,    0,    0,    0,    0,    0x10};
  for (int i = 31; i >= 0; --i) {
    if (s[i] != kL[i]) return s[i] > kL[i];
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1 || size > 4096) return 0;
  std::vector<std::uint8_t> triple;
  bool unchanged = false;
  if ((data[0] & 1) == 0) {
    if (size < 1 + 96) return 0;
    triple.assign(data + 1, data + size);
  } else {
    triple.assign(kTest2, kTest2 + sizeof kTest2);
    triple.resize(32 + 64 + 64, 0);
    std::size_t message_end = sizeof kTest2;
    for (std::size_t i = 1; i + 1 < size; i += 2) {
      const std::size_t at = data[i] % triple.size();
      triple[at] ^= data[i + 1];
      if (at >= message_end && data[i + 1] != 0) message_end = at + 1;
    }
    triple.resize(message_end);
    unchanged =
        triple.size() == sizeof kTest2 && std::memcmp(triple.data(), kTest2, sizeof kTest2) == 0;
  }
  const std::uint8_t* key = triple.data();
  const std::uint8_t* signature = triple.data() + 32;
  const std::uint8_t* message = triple.data() + 96;
  const std::size_t length = triple.size() - 96;

  const Verdict verdict = verify(signature, key, message, length);
  FUZZ_CHECK(verify(signature, key, message, length) == verdict);
  if (s_at_least_l(signature + 32)) {
    FUZZ_CHECK(verdict == Verdict::kNonCanonicalS);
  } else {
    FUZZ_CHECK(verdict != Verdict::kNonCanonicalS);
    FUZZ_CHECK((verdict == Verdict::kBadPublicKey) == !valid_public_key(key));
  }
  if ((data[0] & 1) != 0) FUZZ_CHECK((verdict == Verdict::kValid) == unchanged);
  return 0;
}
