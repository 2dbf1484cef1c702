// The container header: every malformed field gets its own 0x1F57 code and detail, and the test
// vectors in tests/vectors pin the exact bytes (written by an independent Python encoder).
#include "rtcanboot/image_format.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "image_builder.hpp"
#include "rtcanboot/bytes.hpp"
#include "rtcanboot/hash.hpp"
#include "rtcanboot/lzma_stream.hpp"
#include "rtcanboot/memory_map.hpp"
#include "test_vectors.hpp"

namespace rtcanboot {
namespace {

using canopen::FlashDetail;
using canopen::FlashStatus;
using Bytes = std::vector<std::uint8_t>;

image::Expectation expectation() {
  return {test::kTestVendor, test::kTestProduct, memory_map::kAppAddress, memory_map::kAppSize};
}

Bytes header_bytes(std::uint16_t header_length = image::kDefaultHeaderLength) {
  image::Header header = test::header_for(test::make_payload(64, 1));
  header.header_length = header_length;
  Bytes bytes(header_length);
  EXPECT_TRUE(image::encode(header, bytes.data(), bytes.size()));
  return bytes;
}

// Recomputes the header CRC after a field was changed, so the check under test is the field's.
void reseal(Bytes& bytes) {
  const std::size_t crc_at = bytes.size() - 4;
  store_le32(bytes.data() + crc_at, crc32(0, bytes.data(), crc_at));
}

void reseal_header(Bytes& bytes, std::size_t header_length) {
  const std::size_t crc_at = header_length - 4;
  store_le32(bytes.data() + crc_at, crc32(0, bytes.data(), crc_at));
}

image::CheckResult check(const Bytes& bytes) {
  image::Header header;
  return image::parse(bytes.data(), bytes.size(), expectation(), header);
}

void expect_result(const image::CheckResult& result, FlashStatus status, FlashDetail detail) {
  EXPECT_EQ(result.status, status);
  EXPECT_EQ(result.detail, detail);
}

TEST(ImageFormat, WellFormedHeaderParsesWithEveryField) {
  const Bytes payload = test::make_payload(64, 1);
  image::Header in = test::header_for(payload, 0x0102'0304);
  in.flags = 0x0003'0000;  // informational bits only
  Bytes bytes(in.header_length);
  ASSERT_TRUE(image::encode(in, bytes.data(), bytes.size()));
  image::Header out;
  ASSERT_TRUE(image::parse(bytes.data(), bytes.size(), expectation(), out).ok());
  EXPECT_EQ(out.header_length, in.header_length);
  EXPECT_EQ(out.load_address, memory_map::kAppAddress);
  EXPECT_EQ(out.payload_length, 64U);
  EXPECT_EQ(out.image_version, 0x0102'0304U);
  EXPECT_EQ(out.vendor_id, test::kTestVendor);
  EXPECT_EQ(out.product_code, test::kTestProduct);
  EXPECT_EQ(out.flags, 0x0003'0000U);
  EXPECT_EQ(out.payload_crc32, crc32(0, payload.data(), payload.size()));
  EXPECT_EQ(0, std::memcmp(out.payload_sha256, in.payload_sha256, 32));
}

TEST(ImageFormat, BadMagicIsUnknownFormat) {
  Bytes bytes = header_bytes();
  bytes[0] ^= 0x01;
  reseal(bytes);
  expect_result(check(bytes), FlashStatus::kDataFormatUnknown, FlashDetail::kBadMagic);
}

TEST(ImageFormat, OtherFormatVersionIsUnknownFormat) {
  for (std::uint16_t version : {0, 2, 0xFFFF}) {
    Bytes bytes = header_bytes();
    store_le16(bytes.data() + 4, version);
    reseal(bytes);
    expect_result(check(bytes), FlashStatus::kDataFormatUnknown, FlashDetail::kBadFormatVersion);
  }
}

TEST(ImageFormat, HeaderLengthOutOfRangeOrUnalignedIsFormatError) {
  for (std::uint16_t length : {0, 0x48, 0x4A, 0x4E, 0x81, 1028, 0xFFFC}) {
    Bytes bytes = header_bytes();
    store_le16(bytes.data() + 6, length);
    reseal(bytes);
    expect_result(check(bytes), FlashStatus::kDataFormatError, FlashDetail::kBadHeaderLength);
  }
}

TEST(ImageFormat, TruncatedHeaderIsFormatError) {
  const Bytes bytes = header_bytes();
  for (std::size_t length :
       {std::size_t{0}, std::size_t{4}, std::size_t{0x47}, std::size_t{0x48}, bytes.size() - 1}) {
    image::Header header;
    expect_result(image::parse(bytes.data(), length, expectation(), header),
                  FlashStatus::kDataFormatError, FlashDetail::kBadHeaderLength);
  }
}

TEST(ImageFormat, EveryFlippedHeaderBitFailsTheHeaderCrc) {
  const Bytes good = header_bytes(image::kMinHeaderLength);
  // Bits after the length field (magic/version/length have their own earlier checks).
  for (std::size_t bit = 8 * 8; bit < good.size() * 8; ++bit) {
    Bytes bytes = good;
    bytes[bit / 8] ^= static_cast<std::uint8_t>(1U << (bit % 8));
    expect_result(check(bytes), FlashStatus::kDataFormatError, FlashDetail::kBadHeaderCrc);
  }
}

TEST(ImageFormat, RequiredFlagBitsAreRejectedInformationalAccepted) {
  for (int bit = 0; bit < 32; ++bit) {
    Bytes bytes = header_bytes();
    store_le32(bytes.data() + 0x1C, 1U << bit);
    reseal(bytes);
    if (bit == 0) {
      EXPECT_TRUE(check(bytes).ok()) << "bit 0 is the sparse flag";
    } else if (bit == 1) {
      EXPECT_TRUE(check(bytes).ok()) << "bit 1 is the compressed flag";
    } else if (bit == 2) {
      EXPECT_TRUE(check(bytes).ok()) << "bit 2 is the patch flag";
    } else if (bit < 16) {
      expect_result(check(bytes), FlashStatus::kDataFormatUnknown, FlashDetail::kUnsupportedFlags);
    } else {
      EXPECT_TRUE(check(bytes).ok()) << "bit " << bit;
    }
  }
}

TEST(ImageFormat, LoadAddressMustBeTheApplicationStart) {
  for (std::uint32_t address : {0x7000'0000U, 0x7002'0100U, 0x6002'0000U, 0U}) {
    Bytes bytes = header_bytes();
    store_le32(bytes.data() + 0x08, address);
    reseal(bytes);
    expect_result(check(bytes), FlashStatus::kAddressError, FlashDetail::kLoadAddress);
  }
}

TEST(ImageFormat, PayloadLengthOutsideTheRegionIsRejected) {
  for (std::uint32_t length : {0U, 7U, memory_map::kAppSize + 1, 0xFFFF'FFFFU}) {
    Bytes bytes = header_bytes();
    store_le32(bytes.data() + 0x0C, length);
    reseal(bytes);
    expect_result(check(bytes), FlashStatus::kAddressError, FlashDetail::kTooLarge);
  }
  for (std::uint32_t length : {8U, memory_map::kAppSize}) {
    Bytes bytes = header_bytes();
    store_le32(bytes.data() + 0x0C, length);
    reseal(bytes);
    EXPECT_TRUE(check(bytes).ok()) << length;
  }
}

TEST(ImageFormat, OtherVendorOrProductIsWrongProduct) {
  for (std::size_t at : {std::size_t{0x14}, std::size_t{0x18}}) {
    Bytes bytes = header_bytes();
    store_le32(bytes.data() + at, load_le32(bytes.data() + at) + 1);
    reseal(bytes);
    expect_result(check(bytes), FlashStatus::kWrongProduct, FlashDetail::kProductMismatch);
  }
}

TEST(ImageFormat, RecordsAreaIsCoveredByTheCrcButNotInterpreted) {
  Bytes bytes = header_bytes(0x60);
  store_le16(bytes.data() + 0x48, 0x1234);  // an unknown record type
  store_le16(bytes.data() + 0x4A, 4);
  reseal(bytes);
  EXPECT_TRUE(check(bytes).ok());
}

TEST(ImageFormat, BytesNeededAsksForTheFixedPartThenTheHeader) {
  const Bytes bytes = header_bytes(0x60);
  EXPECT_EQ(image::bytes_needed(bytes.data(), 0), image::kFixedLength);
  EXPECT_EQ(image::bytes_needed(bytes.data(), 0x47), image::kFixedLength);
  EXPECT_EQ(image::bytes_needed(bytes.data(), 0x48), 0x60U);
  Bytes small = bytes;
  store_le16(small.data() + 6, 0x10);
  EXPECT_EQ(image::bytes_needed(small.data(), 0x48), image::kFixedLength);
}

TEST(ImageFormat, EncodeRefusesBadLengthsAndSmallBuffers) {
  image::Header header;
  std::uint8_t out[image::kMaxHeaderLength + 4];
  header.header_length = 0x4A;
  EXPECT_FALSE(image::encode(header, out, sizeof out));
  header.header_length = image::kMaxHeaderLength + 4;
  EXPECT_FALSE(image::encode(header, out, sizeof out));
  header.header_length = 128;
  EXPECT_FALSE(image::encode(header, out, 127));
  EXPECT_TRUE(image::encode(header, out, 128));
}

// --- sparse containers ----------------------------------------------------------------------

// The header of an image of `sectors` sectors (the last one `tail` bytes short) with the records
// area given as raw bytes, sparse flag set, sealed.
Bytes sparse_header(const Bytes& records, std::uint32_t sectors = 10, std::uint32_t tail = 0,
                    std::uint16_t header_length = 128) {
  image::Header header =
      test::header_for(test::make_payload(sectors * image::kSectorSize - tail, 1));
  header.header_length = header_length;
  header.flags = image::kFlagSparse;
  Bytes bytes(header_length);
  EXPECT_TRUE(image::encode(header, bytes.data(), bytes.size()));
  EXPECT_LE(records.size(), header_length - 4U - image::kFixedLength);
  std::copy(records.begin(), records.end(), bytes.begin() + image::kFixedLength);
  reseal(bytes);
  return bytes;
}

Bytes record(std::uint16_t type, const std::vector<std::uint16_t>& words,
             std::optional<std::uint16_t> length = std::nullopt) {
  Bytes bytes(4 + 2 * words.size());
  store_le16(bytes.data(), type);
  store_le16(bytes.data() + 2, length.value_or(static_cast<std::uint16_t>(2 * words.size())));
  for (std::size_t i = 0; i < words.size(); ++i) store_le16(bytes.data() + 4 + 2 * i, words[i]);
  return bytes;
}

Bytes concat(Bytes a, const Bytes& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

image::CheckResult check_extents(const Bytes& bytes, image::ExtentList& out) {
  image::Header header;
  const image::CheckResult result = image::parse(bytes.data(), bytes.size(), expectation(), header);
  if (!result.ok()) return result;
  return image::parse_extents(bytes.data(), header, out);
}

TEST(ImageFormatSparse, EncodedRunsParseBackAndCountTheirBytes) {
  const Bytes payload = test::make_payload(5 * image::kSectorSize + 100, 2);
  image::Header header = test::header_for(payload);
  const image::ExtentList runs = test::runs({{0, 2}, {3, 1}, {5, 1}});
  header.header_length = static_cast<std::uint16_t>(image::sparse_header_length(runs.count));
  EXPECT_EQ(header.header_length, 128);
  Bytes bytes(header.header_length);
  ASSERT_TRUE(image::encode_sparse(header, runs, bytes.data(), bytes.size()));
  image::ExtentList parsed;
  ASSERT_TRUE(check_extents(bytes, parsed).ok());
  ASSERT_EQ(parsed.count, 3U);
  EXPECT_EQ(parsed.runs[1].first_sector, 3);
  EXPECT_EQ(parsed.runs[2].sector_count, 1);
  EXPECT_EQ(load_le32(bytes.data() + 0x1C) & image::kFlagSparse, image::kFlagSparse);
  // The last sector holds 100 bytes of the image.
  EXPECT_EQ(image::sparse_payload_length(parsed, header.payload_length),
            3 * image::kSectorSize + 100);
  EXPECT_EQ(test::make_sparse_container(payload, runs).size(), 128 + 3 * image::kSectorSize + 100);
  // The largest record fills a 1024-byte header; one run more does not fit.
  image::ExtentList most;
  for (std::uint32_t i = 0; i < image::kMaxExtents; ++i) {
    most.runs[most.count++] = {static_cast<std::uint16_t>(2 * i), 1};
  }
  header.header_length = static_cast<std::uint16_t>(image::sparse_header_length(most.count));
  EXPECT_EQ(header.header_length, image::kMaxHeaderLength);
  header.payload_length = 2 * image::kMaxExtents * image::kSectorSize;
  Bytes big(header.header_length);
  ASSERT_TRUE(image::encode_sparse(header, most, big.data(), big.size()));
  ASSERT_TRUE(check_extents(big, parsed).ok());
  EXPECT_EQ(parsed.count, image::kMaxExtents);
  header.header_length = 128;
  EXPECT_FALSE(image::encode_sparse(header, most, big.data(), big.size()));
}

TEST(ImageFormatSparse, OtherRecordsAndPaddingAreSkipped) {
  image::ExtentList parsed;
  const Bytes signature_like = record(0x0001, std::vector<std::uint16_t>(52, 0xABCD));
  EXPECT_TRUE(check_extents(
                  sparse_header(concat(signature_like, record(0x0002, {4, 2})), 10, 0, 256), parsed)
                  .ok());
  ASSERT_EQ(parsed.count, 1U);
  EXPECT_EQ(parsed.runs[0].first_sector, 4);
  // No runs at all is the same image again.
  EXPECT_TRUE(check_extents(sparse_header(record(0x0002, {})), parsed).ok());
  EXPECT_EQ(parsed.count, 0U);
}

TEST(ImageFormatSparse, MalformedRecordsAreBadExtents) {
  const struct {
    const char* what;
    Bytes records;
  } cases[] = {
      {"no extents record", {}},
      {"two extents records", concat(record(0x0002, {1, 1}), record(0x0002, {5, 1}))},
      {"empty run", record(0x0002, {1, 0})},
      {"runs out of order", record(0x0002, {5, 1, 2, 1})},
      {"overlapping runs", record(0x0002, {2, 3, 4, 1})},
      {"touching runs", record(0x0002, {2, 2, 4, 1})},
      {"run past the image", record(0x0002, {9, 2})},
      {"run starting past the image", record(0x0002, {10, 1})},
      {"length not a multiple of 4", record(0x0002, {1, 1, 0}, 6)},
      {"record longer than the area", record(0x0002, {1, 1}, 0x7FFC)},
      {"unknown record longer than the area", record(0x0007, {}, 60)},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    image::ExtentList parsed;
    expect_result(check_extents(sparse_header(c.records), parsed), FlashStatus::kDataFormatError,
                  FlashDetail::kBadExtents);
  }
  // The image's partial last sector counts as a sector.
  image::ExtentList parsed;
  EXPECT_TRUE(check_extents(sparse_header(record(0x0002, {9, 1}), 10, 4000), parsed).ok());
}

// --- test vectors ---------------------------------------------------------------------------

Bytes read_file(const std::string& name) {
  std::ifstream file(std::string(RTCANBOOT_SOURCE_DIR) + "/tests/vectors/" + name,
                     std::ios::binary);
  EXPECT_TRUE(file.good()) << name;
  return Bytes(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
}

Bytes read_hex(const std::string& name) {
  std::ifstream file(std::string(RTCANBOOT_SOURCE_DIR) + "/tests/vectors/" + name);
  EXPECT_TRUE(file.good()) << name;
  Bytes bytes;
  std::string token;
  while (file >> token) bytes.push_back(static_cast<std::uint8_t>(std::stoul(token, nullptr, 16)));
  return bytes;
}

// The payload pattern of tests/vectors/make_vectors.py.
Bytes vector_payload(std::uint32_t length, std::uint32_t seed) {
  Bytes payload(length);
  store_le32(payload.data(), 0x2002'0000);
  store_le32(payload.data() + 4, (memory_map::kAppAddress + 8) | 1U);
  for (std::uint32_t i = 0; i + 8 < length; ++i) {
    payload[8 + i] = static_cast<std::uint8_t>(seed + 7 * i);
  }
  return payload;
}

struct Vector {
  const char* name;
  std::uint32_t payload_length;
  std::uint32_t seed;
  std::uint16_t header_length;
  std::uint32_t image_version;
  std::uint32_t flags;
};

constexpr Vector kVectors[] = {
    {"container_minimal", 8, 0, 0x4C, 1, 0},
    {"container_default", 64, 1, 128, 0x0001'0203, 0},
    {"container_info_flags", 40, 2, 0x60, 0xFFFF'FFFF, 0xA5A5'0000},
};

TEST(ImageFormatVectors, EncoderProducesTheCommittedBytes) {
  for (const Vector& vector : kVectors) {
    SCOPED_TRACE(vector.name);
    const Bytes payload = vector_payload(vector.payload_length, vector.seed);
    image::Header header = test::header_for(payload, vector.image_version);
    header.header_length = vector.header_length;
    header.flags = vector.flags;
    const Bytes encoded = test::make_container(header, payload);
    EXPECT_EQ(encoded, read_file(std::string(vector.name) + ".bin"));
    EXPECT_EQ(read_hex(std::string(vector.name) + ".hex"),
              read_file(std::string(vector.name) + ".bin"));
  }
}

TEST(ImageFormatVectors, ParserAcceptsTheCommittedBytes) {
  for (const Vector& vector : kVectors) {
    SCOPED_TRACE(vector.name);
    const Bytes bytes = read_file(std::string(vector.name) + ".bin");
    ASSERT_GE(bytes.size(), vector.header_length);
    EXPECT_EQ(image::bytes_needed(bytes.data(), bytes.size()), vector.header_length);
    image::Header header;
    ASSERT_TRUE(image::parse(bytes.data(), bytes.size(), expectation(), header).ok());
    EXPECT_EQ(header.payload_length, vector.payload_length);
    EXPECT_EQ(header.image_version, vector.image_version);
    EXPECT_EQ(header.flags, vector.flags);
    EXPECT_EQ(header.payload_crc32,
              crc32(0, bytes.data() + vector.header_length, vector.payload_length));
    EXPECT_EQ(bytes.size(), std::size_t{vector.header_length} + vector.payload_length);
  }
}

// --- signature record (docs/security.md) ----------------------------------------------------

// RFC 8032 §7.1 TEST 1 public key: tests/vectors/make_vectors.py signs container_signed with its
// secret key (Python `cryptography`, i.e. OpenSSL), so the core's verifier is held to bytes an
// independent signer made.
const Bytes kTestPublicKey =
    test::from_hex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
constexpr std::uint16_t kSignedHeaderLength = 184;

Bytes signed_vector() {
  return read_file("container_signed.bin");
}

struct Found {
  image::RecordsResult result;
  image::SignatureRecord record;
};

Found find(const Bytes& bytes) {
  Found found;
  found.result = image::find_signature(bytes.data(), load_le16(bytes.data() + 6), found.record);
  return found;
}

image::CheckResult verify(const Bytes& bytes, const Bytes& key = kTestPublicKey) {
  image::Header header;
  const image::CheckResult parsed = image::parse(bytes.data(), bytes.size(), expectation(), header);
  if (!parsed.ok()) return parsed;
  const Found found = find(bytes);
  if (!found.result.check.ok()) return found.result.check;
  if (!found.result.has_signature)
    return {FlashStatus::kNotAuthorised, FlashDetail::kSignatureMissing};
  return image::check_signature(bytes.data(), found.record, key.data());
}

void expect_malformed(const Bytes& bytes) {
  const Found found = find(bytes);
  expect_result(found.result.check, FlashStatus::kNotAuthorised, FlashDetail::kSignatureMalformed);
  EXPECT_FALSE(found.result.has_signature);
}

TEST(SignatureRecord, SignedVectorVerifiesWithTheCoreVerifier) {
  const Bytes bytes = signed_vector();
  ASSERT_EQ(bytes.size(), kSignedHeaderLength + 64U);
  EXPECT_EQ(read_hex("container_signed.hex"), bytes);
  const Found found = find(bytes);
  ASSERT_TRUE(found.result.check.ok());
  ASSERT_TRUE(found.result.has_signature);
  EXPECT_EQ(found.result.signature_offset, image::kFixedLength);
  EXPECT_EQ(found.record.record_version, 1);
  EXPECT_EQ(found.record.security_counter, 5U);
  EXPECT_EQ(Bytes(found.record.public_key, found.record.public_key + 32), kTestPublicKey);
  EXPECT_TRUE(verify(bytes).ok());
}

TEST(SignatureRecord, EncoderProducesTheCommittedSignedBytes) {
  const Bytes expected = signed_vector();
  const Found found = find(expected);
  ASSERT_TRUE(found.result.has_signature);
  const Bytes payload = vector_payload(64, 3);
  image::Header header = test::header_for(payload, 0x0001'0400);
  header.header_length = image::kSignedHeaderLength;
  Bytes bytes = test::make_container(header, payload);
  image::SignatureRecord record;
  record.security_counter = 5;
  std::copy(found.record.public_key, found.record.public_key + 32, record.public_key);
  std::copy(found.record.signature, found.record.signature + 64, record.signature);
  ASSERT_TRUE(image::place_signature_record(bytes.data(), image::kSignedHeaderLength,
                                            image::kFixedLength, record));
  EXPECT_EQ(bytes, expected);
  // The message the signature covers: domain, the fixed header part, the record's fields.
  std::uint8_t message[image::kSignedMessageSize];
  image::signed_message(bytes.data(), record, message);
  EXPECT_EQ(0, std::memcmp(message, "RTCB-ED25519-V1", 16));
  // The fixed part as it is, except the header length and the sparse flag (not signed).
  Bytes fixed(bytes.begin(), bytes.begin() + image::kFixedLength);
  fixed[6] = fixed[7] = 0;
  fixed[0x1C] &= 0xFE;
  EXPECT_EQ(0, std::memcmp(message + 16, fixed.data(), image::kFixedLength));
  EXPECT_NE(bytes[6], 0);  // the header length really is left out
  const std::uint8_t fields[8] = {1, 0, 0, 0, 5, 0, 0, 0};
  EXPECT_EQ(0, std::memcmp(message + 16 + image::kFixedLength, fields, 8));
}

// The transport flags (sparse, compressed, patch) are left out of the signed message; every other
// flag bit, informational ones included, is signed.
TEST(SignatureRecord, TransportFlagsAreNotSignedOtherFlagsAre) {
  const Bytes vector = signed_vector();
  const Found found = find(vector);
  ASSERT_TRUE(found.result.has_signature);
  std::uint8_t original[image::kSignedMessageSize];
  image::signed_message(vector.data(), found.record, original);
  for (int bit = 0; bit < 32; ++bit) {
    Bytes bytes = vector;
    store_le32(bytes.data() + 0x1C, 1U << bit);
    std::uint8_t message[image::kSignedMessageSize];
    image::signed_message(bytes.data(), found.record, message);
    const bool same = std::memcmp(message, original, sizeof message) == 0;
    EXPECT_EQ(same, bit == 0 || bit == 1 || bit == 2) << "flag bit " << bit;
  }
  // The committed vector, marked compressed (its header CRC redone), still verifies.
  Bytes compressed = vector;
  store_le32(compressed.data() + 0x1C, image::kFlagCompressed);
  reseal_header(compressed, image::kSignedHeaderLength);
  EXPECT_TRUE(verify(compressed).ok());
}

TEST(SignatureRecord, UnsignedHeaderHasNoRecordAndUnknownRecordsAreSkipped) {
  Bytes bytes = header_bytes(0x60);
  Found found = find(bytes);
  EXPECT_TRUE(found.result.check.ok());
  EXPECT_FALSE(found.result.has_signature);
  store_le16(bytes.data() + 0x48, 0x1234);  // an unknown record of 8 bytes, then padding
  store_le16(bytes.data() + 0x4A, 8);
  found = find(bytes);
  EXPECT_TRUE(found.result.check.ok());
  EXPECT_FALSE(found.result.has_signature);
}

TEST(SignatureRecord, RecordAfterAnUnknownRecordIsFound) {
  const Bytes vector = signed_vector();
  const Found original = find(vector);
  Bytes bytes = header_bytes(kSignedHeaderLength + 16);
  store_le16(bytes.data() + 0x48, 0x7777);
  store_le16(bytes.data() + 0x4A, 12);
  ASSERT_TRUE(image::place_signature_record(bytes.data(), kSignedHeaderLength + 16, 0x48 + 16,
                                            original.record));
  const Found found = find(bytes);
  ASSERT_TRUE(found.result.check.ok());
  ASSERT_TRUE(found.result.has_signature);
  EXPECT_EQ(found.result.signature_offset, 0x48 + 16);
}

TEST(SignatureRecord, BadSignatureUnknownKeyAndChangedFieldsAreRefused) {
  const Bytes good = signed_vector();
  {
    SCOPED_TRACE("a flipped bit of S");
    Bytes bytes = good;
    bytes[0x48 + 44 + 40] ^= 0x01;
    reseal_header(bytes, kSignedHeaderLength);
    expect_result(verify(bytes), FlashStatus::kNotAuthorised, FlashDetail::kBadSignature);
  }
  {
    SCOPED_TRACE("a flipped bit of R");
    Bytes bytes = good;
    bytes[0x48 + 44] ^= 0x80;
    reseal_header(bytes, kSignedHeaderLength);
    expect_result(verify(bytes), FlashStatus::kNotAuthorised, FlashDetail::kBadSignature);
  }
  {
    SCOPED_TRACE("the record names another key");
    Bytes bytes = good;
    bytes[0x48 + 12] ^= 0x01;
    reseal_header(bytes, kSignedHeaderLength);
    expect_result(verify(bytes), FlashStatus::kNotAuthorised, FlashDetail::kUnknownKey);
  }
  {
    SCOPED_TRACE("the node holds another key");
    Bytes other = kTestPublicKey;
    other[5] ^= 0x10;
    expect_result(verify(good, other), FlashStatus::kNotAuthorised, FlashDetail::kUnknownKey);
  }
  // A valid signature over other header fields: every signed byte of the fixed part and of the
  // record's fields, changed after signing with the header CRC recomputed, fails verification.
  for (std::size_t at : {0x08, 0x0C, 0x10, 0x14, 0x18, 0x1F, 0x20, 0x24, 0x43, 0x44}) {
    SCOPED_TRACE(at);
    Bytes bytes = good;
    bytes[at] ^= 0x01;
    reseal_header(bytes, kSignedHeaderLength);
    image::Header header;
    // Fields that parse() itself checks would fail there first; skip to the signature.
    image::Expectation any = expectation();
    any.load_address = load_le32(bytes.data() + 0x08);
    any.vendor_id = load_le32(bytes.data() + 0x14);
    any.product_code = load_le32(bytes.data() + 0x18);
    const image::CheckResult parsed = image::parse(bytes.data(), bytes.size(), any, header);
    if (!parsed.ok()) continue;  // e.g. a required flag bit: refused before the signature
    const Found found = find(bytes);
    ASSERT_TRUE(found.result.has_signature);
    expect_result(image::check_signature(bytes.data(), found.record, kTestPublicKey.data()),
                  FlashStatus::kNotAuthorised, FlashDetail::kBadSignature);
  }
  {
    SCOPED_TRACE("a raised security counter");
    Bytes bytes = good;
    bytes[0x48 + 8] = 6;
    reseal_header(bytes, kSignedHeaderLength);
    expect_result(verify(bytes), FlashStatus::kNotAuthorised, FlashDetail::kBadSignature);
  }
}

TEST(SignatureRecord, MalformedRecordsAreRefused) {
  const Bytes good = signed_vector();
  {
    SCOPED_TRACE("wrong record length");
    Bytes bytes = good;
    store_le16(bytes.data() + 0x4A, 100);
    expect_malformed(bytes);
  }
  {
    SCOPED_TRACE("record version 2");
    Bytes bytes = good;
    bytes[0x4C] = 2;
    expect_malformed(bytes);
  }
  {
    SCOPED_TRACE("a record flag");
    Bytes bytes = good;
    bytes[0x4D] = 1;
    expect_malformed(bytes);
  }
  {
    SCOPED_TRACE("reserved bytes");
    Bytes bytes = good;
    bytes[0x4F] = 1;
    expect_malformed(bytes);
  }
  {
    SCOPED_TRACE("truncated: the record runs past the records area");
    Bytes bytes = header_bytes(0x48 + 100 + 4);
    std::copy(good.begin() + 0x48, good.begin() + 0x48 + 100, bytes.begin() + 0x48);
    expect_malformed(bytes);
  }
  {
    SCOPED_TRACE("an unknown record longer than the area");
    Bytes bytes = header_bytes(0x60);
    store_le16(bytes.data() + 0x48, 0x0042);
    store_le16(bytes.data() + 0x4A, 0x60 - 0x48 - 4 - 4 + 4);
    expect_malformed(bytes);
  }
  {
    SCOPED_TRACE("a length that is not a multiple of 4");
    Bytes bytes = header_bytes(0x60);
    store_le16(bytes.data() + 0x48, 0x0042);
    store_le16(bytes.data() + 0x4A, 2);
    expect_malformed(bytes);
  }
  {
    SCOPED_TRACE("two signature records");
    const Found original = find(good);
    const std::uint16_t length = 0x48 + 2 * image::kSignatureRecordSize + 4;
    Bytes bytes = header_bytes(length);
    ASSERT_TRUE(image::place_signature_record(bytes.data(), length, 0x48, original.record));
    ASSERT_TRUE(image::place_signature_record(bytes.data(), length, 0x48 + 108, original.record));
    EXPECT_TRUE(check(bytes).ok());
    expect_malformed(bytes);
  }
}

TEST(SignatureRecord, PlaceRefusesARecordThatDoesNotFit) {
  image::SignatureRecord record;
  Bytes bytes = header_bytes(image::kSignedHeaderLength - 4);
  EXPECT_FALSE(
      image::place_signature_record(bytes.data(), image::kSignedHeaderLength - 4, 0x48, record));
  bytes = header_bytes(image::kSignedHeaderLength + 4);
  EXPECT_FALSE(image::place_signature_record(bytes.data(), image::kSignedHeaderLength + 4, 0x4A,
                                             record));  // not aligned
  EXPECT_FALSE(image::place_signature_record(bytes.data(), image::kSignedHeaderLength + 4, 0x44,
                                             record));  // inside the fixed part
  EXPECT_TRUE(
      image::place_signature_record(bytes.data(), image::kSignedHeaderLength + 4, 0x4C, record));
  EXPECT_TRUE(check(bytes).ok());  // header CRC recomputed
}

TEST(ImageFormatVectors, SparseVectorsAreWhatTheEncoderWritesAndParseBack) {
  const Bytes image = vector_payload(10000, 3);
  const struct {
    const char* name;
    image::ExtentList runs;
  } vectors[] = {
      {"container_sparse", test::runs({{0, 1}, {2, 1}})},
      {"container_sparse_empty", test::runs({})},
  };
  for (const auto& vector : vectors) {
    SCOPED_TRACE(vector.name);
    const Bytes bytes = read_file(std::string(vector.name) + ".bin");
    EXPECT_EQ(read_hex(std::string(vector.name) + ".hex"), bytes);
    EXPECT_EQ(test::make_sparse_container(image, vector.runs, 0x0002'0000), bytes);
    image::ExtentList parsed;
    ASSERT_TRUE(check_extents(bytes, parsed).ok());
    image::Header header;
    ASSERT_TRUE(image::parse(bytes.data(), bytes.size(), expectation(), header).ok());
    EXPECT_EQ(header.payload_crc32, crc32(0, image.data(), image.size()));
    EXPECT_EQ(bytes.size(),
              header.header_length + image::sparse_payload_length(parsed, header.payload_length));
  }
}

// The compressed vectors (make_vectors.py, Python's lzma module): one raw LZMA1 stream per extent.
// liblzma through the test support writes the same bytes, and the core's decoder reads them back
// to the image (the whole payload, or the listed sectors).
TEST(ImageFormatVectors, CompressedVectorsAreLiblzmaStreamsThatTheDecoderReads) {
  const Bytes image = vector_payload(10000, 4);
  const struct {
    const char* name;
    bool sparse;
    image::ExtentList runs;
  } vectors[] = {
      {"container_compressed", false, test::runs({})},
      {"container_compressed_sparse", true, test::runs({{0, 1}, {2, 1}})},
  };
  for (const auto& vector : vectors) {
    SCOPED_TRACE(vector.name);
    const Bytes bytes = read_file(std::string(vector.name) + ".bin");
    EXPECT_EQ(read_hex(std::string(vector.name) + ".hex"), bytes);
    const Bytes plain = vector.sparse ? test::make_sparse_container(image, vector.runs, 0x0002'0000)
                                      : test::make_container(image, 0x0002'0000);
    EXPECT_EQ(test::compress_container(plain), bytes);
    image::Header header;
    ASSERT_TRUE(image::parse(bytes.data(), bytes.size(), expectation(), header).ok());
    EXPECT_EQ(header.flags & image::kFlagCompressed, image::kFlagCompressed);
    EXPECT_EQ(header.payload_crc32, crc32(0, image.data(), image.size()));
    image::ExtentList parsed;
    if (vector.sparse) {
      ASSERT_TRUE(check_extents(bytes, parsed).ok());
    }
    auto decoder = std::make_unique<lzma::StreamDecoder>();
    decoder->open(vector.sparse ? &parsed : nullptr, header.payload_length);
    const std::uint32_t input = static_cast<std::uint32_t>(bytes.size() - header.header_length);
    ASSERT_LE(input, decoder->free_space());
    ASSERT_EQ(decoder->put(bytes.data() + header.header_length, input), lzma::Error::kNone);
    ASSERT_EQ(decoder->finish_input(), lzma::Error::kNone);
    Bytes out;
    while (const std::uint32_t ready = decoder->available()) {
      out.insert(out.end(), decoder->output(), decoder->output() + ready);
      decoder->take(ready);
    }
    EXPECT_TRUE(decoder->drained());
    EXPECT_EQ(out, Bytes(plain.begin() + header.header_length, plain.end()));
  }
}

}  // namespace
}  // namespace rtcanboot
