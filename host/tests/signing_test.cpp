// Signed containers on the host (host/lib/src/signing.cpp): `pack --sign` adds the signature
// record (docs/security.md) signed by OpenSSL, `verify` checks it with OpenSSL. Each signed
// container is also held to the core's parser and verifier (firmware/core image_format.hpp,
// ed25519.hpp): what OpenSSL signed, the bootloader accepts; what either refuses, both refuse.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "rtcanboot/bytes.hpp"
#include "rtcanboot/hash.hpp"
#include "rtcanboot/host/error.hpp"
#include "rtcanboot/host/image.hpp"
#include "rtcanboot/host/signing.hpp"
#include "rtcanboot/image_format.hpp"
#include "rtcanboot/memory_map.hpp"
#include "test_vectors.hpp"

namespace rtcanboot::host::signing {
namespace {

using Bytes = std::vector<std::uint8_t>;
namespace mm = memory_map;

constexpr std::uint32_t kVendor = 0x0000'0ABC;
constexpr std::uint32_t kProduct = 0x0001'0064;

// RFC 8032 §7.1 TEST 1 (the key of tests/vectors/container_signed.bin).
Seed test1_seed() {
  const Bytes bytes =
      test::from_hex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60");
  Seed seed;
  std::copy(bytes.begin(), bytes.end(), seed.begin());
  return seed;
}

// The payload pattern of tests/vectors/make_vectors.py.
FlatImage vector_image(std::uint32_t length, std::uint32_t seed) {
  FlatImage image;
  image.address = mm::kAppAddress;
  image.bytes.resize(length);
  store_le32(image.bytes.data(), 0x2002'0000);
  store_le32(image.bytes.data() + 4, (mm::kAppAddress + 8) | 1U);
  for (std::uint32_t i = 0; i + 8 < length; ++i) {
    image.bytes[8 + i] = static_cast<std::uint8_t>(seed + 7 * i);
  }
  return image;
}

Bytes pack_signed(const PrivateKey& key, const FlatImage& image, std::uint32_t counter,
                  std::uint32_t image_version = 1) {
  PackOptions options;
  options.vendor_id = kVendor;
  options.product_code = kProduct;
  options.image_version = image_version;
  options.sign_with = &key;
  options.security_counter = counter;
  return pack(image, options);
}

// The bootloader's view: parse, walk the records, verify with the node's key.
image::CheckResult core_check(const Bytes& bytes, const PublicKey& node_key) {
  image::Header header;
  const image::Expectation expect{kVendor, kProduct, mm::kAppAddress, mm::kAppSize};
  image::CheckResult result = image::parse(bytes.data(), bytes.size(), expect, header);
  if (!result.ok()) return result;
  image::SignatureRecord record;
  const image::RecordsResult records =
      image::find_signature(bytes.data(), header.header_length, record);
  if (!records.check.ok()) return records.check;
  if (!records.has_signature) {
    return {canopen::FlashStatus::kNotAuthorised, canopen::FlashDetail::kSignatureMissing};
  }
  return image::check_signature(bytes.data(), record, node_key.data());
}

void reseal(Bytes& bytes) {
  const std::uint16_t header_length = load_le16(bytes.data() + 6);
  store_le32(bytes.data() + header_length - 4, crc32(0, bytes.data(), header_length - 4U));
}

// verify_container() must throw an Error of `kind` whose message contains `text`.
void expect_refused(const Bytes& bytes, const PublicKey* key, ErrorKind kind,
                    const std::string& text) {
  try {
    verify_container(bytes, "app.rcb", key);
    ADD_FAILURE() << "accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    EXPECT_NE(std::string(e.what()).find(text), std::string::npos) << e.what();
  }
}

TEST(Signing, PackReproducesTheSignedTestVector) {
  // Ed25519 is deterministic: OpenSSL through the host tool and Python's `cryptography` through
  // tests/vectors/make_vectors.py make the same bytes.
  const PrivateKey key = PrivateKey::from_seed(test1_seed());
  const Bytes packed = pack_signed(key, vector_image(64, 3), 5, 0x0001'0400);
  EXPECT_EQ(packed,
            read_file(std::string(RTCANBOOT_SOURCE_DIR) + "/tests/vectors/container_signed.bin"));
}

TEST(Signing, GoodSignedContainerVerifiesWithOpenSslAndTheCore) {
  const PrivateKey key = PrivateKey::generate();
  const PublicKey public_key = key.public_key();
  const Bytes bytes = pack_signed(key, vector_image(3000, 9), 42);
  EXPECT_EQ(load_le16(bytes.data() + 6), image::kSignedHeaderLength);
  const VerifyReport report = verify_container(bytes, "app.rcb", &public_key);
  EXPECT_TRUE(report.has_signature);
  EXPECT_TRUE(report.key_checked);
  EXPECT_EQ(report.record.security_counter, 42U);
  EXPECT_TRUE(core_check(bytes, public_key).ok());
  // Without a key: structure only, the record is reported.
  const VerifyReport unchecked = verify_container(bytes, "app.rcb", nullptr);
  EXPECT_TRUE(unchecked.has_signature);
  EXPECT_FALSE(unchecked.key_checked);
}

TEST(Signing, UnsignedContainerIsRefusedOnlyWhenAKeyIsAsked) {
  PackOptions options;
  options.vendor_id = kVendor;
  options.product_code = kProduct;
  const Bytes bytes = pack(vector_image(256, 1), options);
  EXPECT_FALSE(verify_container(bytes, "app.rcb", nullptr).has_signature);
  const PublicKey key = PrivateKey::generate().public_key();
  expect_refused(bytes, &key, ErrorKind::kRejected, "not signed");
  const image::CheckResult core = core_check(bytes, key);
  EXPECT_EQ(core.detail, canopen::FlashDetail::kSignatureMissing);
}

TEST(Signing, BadSignatureIsRefusedByBoth) {
  const PrivateKey key = PrivateKey::generate();
  const PublicKey public_key = key.public_key();
  Bytes bytes = pack_signed(key, vector_image(512, 2), 1);
  bytes[image::kFixedLength + 44 + 10] ^= 0x04;  // a bit of R
  reseal(bytes);
  expect_refused(bytes, &public_key, ErrorKind::kRejected, "bad signature");
  EXPECT_EQ(core_check(bytes, public_key).detail, canopen::FlashDetail::kBadSignature);
}

TEST(Signing, SignatureByAnotherKeyIsUnknownKey) {
  const PrivateKey key = PrivateKey::generate();
  const PublicKey other = PrivateKey::generate().public_key();
  const Bytes bytes = pack_signed(key, vector_image(512, 2), 1);
  expect_refused(bytes, &other, ErrorKind::kRejected, "another key");
  EXPECT_EQ(core_check(bytes, other).detail, canopen::FlashDetail::kUnknownKey);
  // A record that claims the node's key but carries the other key's signature: bad signature.
  Bytes claimed = bytes;
  std::copy(other.begin(), other.end(), claimed.begin() + image::kFixedLength + 12);
  reseal(claimed);
  expect_refused(claimed, &other, ErrorKind::kRejected, "bad signature");
  EXPECT_EQ(core_check(claimed, other).detail, canopen::FlashDetail::kBadSignature);
}

TEST(Signing, TruncatedOrMalformedRecordIsBadInput) {
  const PrivateKey key = PrivateKey::generate();
  const PublicKey public_key = key.public_key();
  const Bytes good = pack_signed(key, vector_image(512, 2), 1);
  {
    SCOPED_TRACE("record length runs past the records area");
    Bytes bytes = good;
    store_le16(bytes.data() + image::kFixedLength + 2, 108);
    reseal(bytes);
    expect_refused(bytes, &public_key, ErrorKind::kInput, "malformed");
    EXPECT_EQ(core_check(bytes, public_key).detail, canopen::FlashDetail::kSignatureMalformed);
  }
  {
    SCOPED_TRACE("header cut short: the record does not fit");
    // The same record in a header 8 bytes too small for it (the last 8 signature bytes are lost).
    PackOptions options;
    options.vendor_id = kVendor;
    options.product_code = kProduct;
    options.header_length = image::kSignedHeaderLength - 8;
    const FlatImage image = vector_image(512, 2);
    Bytes bytes = pack(image, options);
    std::copy(good.begin() + image::kFixedLength,
              good.begin() + image::kFixedLength + image::kSignatureRecordSize - 8,
              bytes.begin() + image::kFixedLength);
    reseal(bytes);
    expect_refused(bytes, &public_key, ErrorKind::kInput, "malformed");
    EXPECT_EQ(core_check(bytes, public_key).detail, canopen::FlashDetail::kSignatureMalformed);
  }
  {
    SCOPED_TRACE("record version 2");
    Bytes bytes = good;
    bytes[image::kFixedLength + 4] = 2;
    reseal(bytes);
    expect_refused(bytes, nullptr, ErrorKind::kInput, "malformed");
  }
}

TEST(Signing, SignatureOverOtherHeaderFieldsIsRefused) {
  const PrivateKey key = PrivateKey::generate();
  const PublicKey public_key = key.public_key();
  const Bytes good = pack_signed(key, vector_image(512, 2), 9, 0x0001'0000);
  // Fields changed after signing, the header CRC recomputed: a consistent container whose
  // signature belongs to other header fields.
  const std::size_t kChanged[] = {0x10 /* image version */, 0x1E /* informational flags */,
                                  0x44 /* reserved */, image::kFixedLength + 8 /* counter */};
  for (std::size_t at : kChanged) {
    SCOPED_TRACE(at);
    Bytes bytes = good;
    bytes[at] ^= 0x01;
    reseal(bytes);
    expect_refused(bytes, &public_key, ErrorKind::kRejected, "bad signature");
    EXPECT_EQ(core_check(bytes, public_key).detail, canopen::FlashDetail::kBadSignature);
  }
  // The header CRC itself is not signed: a header with only the CRC changed is a damaged header.
  Bytes bytes = good;
  bytes[image::kSignedHeaderLength - 1] ^= 0x01;
  expect_refused(bytes, &public_key, ErrorKind::kInput, "not a valid rtcanboot container");
}

// OpenSSL signs, the core verifies: random keys, payloads and counters; one flipped signed bit
// makes both refuse.
TEST(Signing, CoreAcceptsWhatOpenSslSigned) {
  std::mt19937 random(11);
  for (int i = 0; i < 1000; ++i) {
    SCOPED_TRACE(i);
    const PrivateKey key = PrivateKey::generate();
    const PublicKey public_key = key.public_key();
    const Bytes bytes =
        pack_signed(key, vector_image(8 + random() % 2000, random()), random(), random());
    ASSERT_TRUE(core_check(bytes, public_key).ok());
    ASSERT_NO_THROW(verify_container(bytes, "app.rcb", &public_key));
    Bytes mutated = bytes;
    const std::size_t signed_bytes[] = {0x08, 0x0C, 0x10, 0x14, 0x18, 0x20, 0x24, 0x40};
    const std::size_t at = signed_bytes[random() % 8] + random() % 4;
    mutated[at] ^= static_cast<std::uint8_t>(1U << (random() % 8));
    reseal(mutated);
    image::Header header;
    image::Expectation any{load_le32(mutated.data() + 0x14), load_le32(mutated.data() + 0x18),
                           load_le32(mutated.data() + 0x08), 0xFFFF'FFFF};
    if (!image::parse(mutated.data(), mutated.size(), any, header).ok()) continue;
    image::SignatureRecord record;
    ASSERT_TRUE(image::find_signature(mutated.data(), header.header_length, record).has_signature);
    EXPECT_EQ(image::check_signature(mutated.data(), record, public_key.data()).detail,
              canopen::FlashDetail::kBadSignature);
    std::uint8_t message[image::kSignedMessageSize];
    image::signed_message(mutated.data(), record, message);
    Signature signature;
    std::copy(record.signature, record.signature + 64, signature.begin());
    EXPECT_FALSE(openssl_verify(public_key, message, signature));
  }
}

}  // namespace
}  // namespace rtcanboot::host::signing
