// Ed25519 verification: the RFC 8032 §7.1 test vectors (tests/vectors/ed25519_rfc8032.txt) and
// the strictness the header promises (S < L, canonical R and A, no small-order keys). The
// cross-check against OpenSSL on 1,000 random keys is host/tests/crypto_test.cpp.
#include "rtcanboot/ed25519.hpp"

#include <gtest/gtest.h>

#include "test_vectors.hpp"

#include <string>
#include <vector>

namespace rtcanboot::ed25519 {
namespace {

using Bytes = std::vector<std::uint8_t>;

using test::from_hex;
using Vector = test::Ed25519Vector;

std::vector<Vector> rfc8032_vectors() {
  return test::rfc8032_vectors(RTCANBOOT_SOURCE_DIR "/tests/vectors/ed25519_rfc8032.txt");
}

Verdict check(const Bytes& signature, const Bytes& public_key, const Bytes& message) {
  return verify(signature.data(), public_key.data(), message.data(), message.size());
}

// S + L (S < L < 2^253, so the sum fits in 32 bytes): the same point [S]B, the malleable twin.
Bytes add_l_to_s(Bytes signature) {
  static const Bytes kL =
      from_hex("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010");
  unsigned carry = 0;
  for (int i = 0; i < 32; ++i) {
    const unsigned sum = signature[32 + i] + kL[i] + carry;
    signature[32 + i] = static_cast<std::uint8_t>(sum);
    carry = sum >> 8;
  }
  return signature;
}

TEST(Ed25519, Rfc8032VectorsVerify) {
  const std::vector<Vector> vectors = rfc8032_vectors();
  ASSERT_EQ(vectors.size(), 5U);
  EXPECT_EQ(vectors[3].message.size(), 1023U);
  for (const Vector& v : vectors) {
    ASSERT_EQ(v.public_key.size(), kPublicKeySize) << v.name;
    ASSERT_EQ(v.signature.size(), kSignatureSize) << v.name;
    EXPECT_EQ(check(v.signature, v.public_key, v.message), Verdict::kValid) << v.name;
    EXPECT_TRUE(valid_public_key(v.public_key.data())) << v.name;
  }
}

// A flipped bit in any byte of R, S or A (a different bit position from byte to byte), or in the
// message, is refused. (Every bit of every byte would take half a minute in the sanitizer build.)
TEST(Ed25519, FlippedBitsFail) {
  for (const Vector& v : rfc8032_vectors()) {
    for (std::size_t byte = 0; byte < kSignatureSize; ++byte) {
      Bytes signature = v.signature;
      signature[byte] ^= static_cast<std::uint8_t>(1U << ((byte * 3) % 8));
      EXPECT_NE(check(signature, v.public_key, v.message), Verdict::kValid) << v.name << byte;
    }
    for (std::size_t byte = 0; byte < kPublicKeySize; ++byte) {
      Bytes public_key = v.public_key;
      public_key[byte] ^= static_cast<std::uint8_t>(1U << ((byte * 5) % 8));
      EXPECT_NE(check(v.signature, public_key, v.message), Verdict::kValid) << v.name << byte;
    }
    for (std::size_t bit = 0; bit < 8 * v.message.size(); bit += 331) {
      Bytes message = v.message;
      message[bit / 8] ^= static_cast<std::uint8_t>(1U << (bit % 8));
      EXPECT_EQ(check(v.signature, v.public_key, message), Verdict::kMismatch) << v.name << bit;
    }
    Bytes longer = v.message;
    longer.push_back(0);
    EXPECT_EQ(check(v.signature, v.public_key, longer), Verdict::kMismatch) << v.name;
  }
}

TEST(Ed25519, FlippedBitsAreReportedWhereTheyAre) {
  const Vector v = rfc8032_vectors()[1];
  Bytes r_flipped = v.signature;
  r_flipped[0] ^= 1;
  EXPECT_EQ(check(r_flipped, v.public_key, v.message), Verdict::kMismatch);
  Bytes s_flipped = v.signature;
  s_flipped[32] ^= 1;
  EXPECT_EQ(check(s_flipped, v.public_key, v.message), Verdict::kMismatch);
  Bytes s_top = v.signature;
  s_top[63] ^= 0x80;  // S >= 2^255 > L
  EXPECT_EQ(check(s_top, v.public_key, v.message), Verdict::kNonCanonicalS);
}

// S + L satisfies the group equation too ([S + L]B = [S]B); RFC 8032 §5.1.7 refuses it.
TEST(Ed25519, NonCanonicalSIsRefused) {
  for (const Vector& v : rfc8032_vectors()) {
    EXPECT_EQ(check(add_l_to_s(v.signature), v.public_key, v.message), Verdict::kNonCanonicalS)
        << v.name;
  }
  Bytes s_equal_l = rfc8032_vectors()[0].signature;
  for (int i = 32; i < 64; ++i) s_equal_l[i] = 0;
  s_equal_l = add_l_to_s(s_equal_l);  // S = L exactly
  const Vector v = rfc8032_vectors()[0];
  EXPECT_EQ(check(s_equal_l, v.public_key, v.message), Verdict::kNonCanonicalS);
  Bytes all_ones = v.signature;
  for (int i = 32; i < 64; ++i) all_ones[i] = 0xFF;
  EXPECT_EQ(check(all_ones, v.public_key, v.message), Verdict::kNonCanonicalS);
}

// y = p + 3 decodes, leniently, to the same point of large order as y = 3: the non-canonical
// encoding is refused, the canonical one accepted.
TEST(Ed25519, NonCanonicalPublicKeyIsRefused) {
  const Bytes canonical =
      from_hex("0300000000000000000000000000000000000000000000000000000000000000");
  const Bytes non_canonical =
      from_hex("f0ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f");
  EXPECT_TRUE(valid_public_key(canonical.data()));
  EXPECT_FALSE(valid_public_key(non_canonical.data()));
  const Vector v = rfc8032_vectors()[0];
  EXPECT_EQ(check(v.signature, non_canonical, v.message), Verdict::kBadPublicKey);
  // y = 2^255 - 1 (the largest non-canonical y, p + 18) and y = p itself.
  EXPECT_FALSE(valid_public_key(
      from_hex("ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f").data()));
  EXPECT_FALSE(valid_public_key(
      from_hex("edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f").data()));
}

// A y with no x on the curve (y = 2: (y^2 - 1)/(d y^2 + 1) is no square), and x = 0 with the
// sign bit set (y = -1, order 2, with x = "-0").
TEST(Ed25519, InvalidPublicKeyEncodingsAreRefused) {
  EXPECT_FALSE(valid_public_key(
      from_hex("0200000000000000000000000000000000000000000000000000000000000000").data()));
  EXPECT_FALSE(valid_public_key(
      from_hex("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff").data()));
  EXPECT_FALSE(valid_public_key(
      from_hex("0100000000000000000000000000000000000000000000000000000000000080").data()));
}

// The identity (0, 1) and the point of order 2 (0, -1): small order, refused. With the identity
// as the key, [S]B = R + [k]A holds for R = [S]B and any message: this forgery (S = 123456789)
// would pass the group equation.
TEST(Ed25519, SmallOrderPublicKeysAreRefused) {
  const Bytes identity =
      from_hex("0100000000000000000000000000000000000000000000000000000000000000");
  const Bytes order_two =
      from_hex("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f");
  EXPECT_FALSE(valid_public_key(identity.data()));
  EXPECT_FALSE(valid_public_key(order_two.data()));
  const Bytes forged = from_hex(
      "17ffad8068dc0de9935d36636f3ad1b5de6de3413b12388e453b05f2a4c1d3db"
      "15cd5b0700000000000000000000000000000000000000000000000000000000");
  const Bytes message = {'a', 'n', 'y'};
  EXPECT_EQ(check(forged, identity, message), Verdict::kBadPublicKey);
}

// R must be the canonical encoding of a point: an R with y >= p, or with no point, never matches.
TEST(Ed25519, InvalidREncodingsAreRefused) {
  const Vector v = rfc8032_vectors()[2];
  for (const char* r : {"edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
                        "f0ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
                        "0200000000000000000000000000000000000000000000000000000000000000",
                        "0100000000000000000000000000000000000000000000000000000000000080"}) {
    Bytes signature = from_hex(r);
    signature.insert(signature.end(), v.signature.begin() + 32, v.signature.end());
    EXPECT_EQ(check(signature, v.public_key, v.message), Verdict::kMismatch) << r;
  }
}

}  // namespace
}  // namespace rtcanboot::ed25519
