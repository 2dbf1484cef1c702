// Ed25519 signature verification (RFC 8032 §5.1.7), freestanding: no heap, no tables beyond a few
// constants; 2.3 KiB of code and constants on the Cortex-M7 (-Os), plus 1.8 KiB for SHA-512
// (hash.hpp). Only verification: signing happens on the host (OpenSSL).
//
// Strict, as RFC 8032 §5.1.7 asks: S must be below the group order L (no malleable S + L), and R
// and A must be canonical encodings of curve points (y < p; x = 0 with the sign bit set is
// refused). On top of the RFC, a public key of small order (one of the eight points with [8]A = 0)
// is refused: with such a key anyone can make signatures that verify.
//
// The group equation is the cofactorless one, [S]B = R + [k]A, checked by encoding [S]B - [k]A
// and comparing it with the 32 bytes of R. RFC 8032 allows it ("sufficient, but not required");
// it is what OpenSSL and the ref10 lineage check. A signature that the cofactorless check accepts
// is also accepted by the cofactored check [8][S]B = [8]R + [8][k]A; the converse fails only for
// signatures crafted with a small-order component in R or A, which no honest signer makes.
// Comparing encodings gives the strict decoding of R for free: a non-canonical or invalid R can
// never equal the canonical encoding of a point.
//
// Not constant time: everything verification touches (key, signature, message) is public.
#pragma once

#include <cstddef>
#include <cstdint>

namespace rtcanboot::ed25519 {

inline constexpr std::size_t kPublicKeySize = 32;
inline constexpr std::size_t kSignatureSize = 64;

enum class Verdict : std::uint8_t {
  kValid,
  kNonCanonicalS,  // S >= L
  kBadPublicKey,   // A is not a canonical encoding of a point, or the point has small order
  kMismatch,       // the group equation does not hold (this includes an invalid R)
};

// Verifies signature R || S (64 bytes) of `message` under the public key A (32 bytes).
Verdict verify(const std::uint8_t signature[kSignatureSize],
               const std::uint8_t public_key[kPublicKeySize], const void* message,
               std::size_t length);

// The key checks of verify() alone (for a key that is about to be stored).
bool valid_public_key(const std::uint8_t public_key[kPublicKeySize]);

}  // namespace rtcanboot::ed25519
