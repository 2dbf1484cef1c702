#include "rtcanboot/hash.hpp"
#include "test_vectors.hpp"

#include <gtest/gtest.h>

#include <set>

#include <cstring>
#include <string>

namespace rtcanboot {
namespace {

using test::to_hex;

std::string sha256_hex(const std::string& message) {
  SoftwareSha256 sha;
  sha.update(message.data(), message.size());
  std::uint8_t digest[32];
  sha.finish(digest);
  return to_hex(digest, 32);
}

// Check values from the CRC catalogue ("123456789").
TEST(Crc, Crc32CheckValue) {
  EXPECT_EQ(crc32(0, "123456789", 9), 0xCBF43926U);
}
TEST(Crc, Crc32Incremental) {
  EXPECT_EQ(crc32(crc32(0, "1234", 4), "56789", 5), 0xCBF43926U);
}
TEST(Crc, Crc32Empty) {
  EXPECT_EQ(crc32(0, "", 0), 0U);
}
TEST(Crc, Crc16XmodemCheckValue) {
  EXPECT_EQ(crc16_xmodem(0, "123456789", 9), 0x31C3U);
}
TEST(Crc, Crc16Incremental) {
  EXPECT_EQ(crc16_xmodem(crc16_xmodem(0, "12345", 5), "6789", 4), 0x31C3U);
}

// FIPS 180-4 / NIST example vectors.
TEST(Sha256, Empty) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}
TEST(Sha256, Abc) {
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}
TEST(Sha256, TwoBlocks) {
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}
TEST(Sha256, MillionA) {
  SoftwareSha256 sha;
  const std::string chunk(1000, 'a');
  for (int i = 0; i < 1000; ++i) sha.update(chunk.data(), chunk.size());
  std::uint8_t digest[32];
  sha.finish(digest);
  EXPECT_EQ(to_hex(digest, 32), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}
TEST(Sha256, SplitUpdatesMatchOneUpdate) {
  std::string message(1000, '\0');
  for (std::size_t i = 0; i < message.size(); ++i) message[i] = static_cast<char>(i * 7);
  SoftwareSha256 sha;
  for (std::size_t at = 0; at < message.size(); at += 13) {
    sha.update(message.data() + at, std::min<std::size_t>(13, message.size() - at));
  }
  std::uint8_t digest[32];
  sha.finish(digest);
  EXPECT_EQ(to_hex(digest, 32), sha256_hex(message));
}

// Both readings of where the RT1064's unique ID lives (OCOTP CFG0/CFG1 per NXP's SDK demos,
// CFG1/CFG2 per Zephyr) give every chip its own serial number; the value is pinned.
TEST(SerialFromUniqueId, DistinctUnderBothReadingsAndPinned) {
  std::set<std::uint32_t> reading_a, reading_b;
  std::uint64_t x = 0x0123'4567'89AB'CDEFULL;
  for (int i = 0; i < 5000; ++i) {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    const auto lo = static_cast<std::uint32_t>(x), hi = static_cast<std::uint32_t>(x >> 32);
    reading_a.insert(serial_from_unique_id(lo, hi, 0x0000'1234));
    reading_b.insert(serial_from_unique_id(0x0000'1234, lo, hi));
  }
  EXPECT_EQ(reading_a.size(), 5000U);
  EXPECT_EQ(reading_b.size(), 5000U);
  const std::uint8_t bytes[12] = {0x78, 0x56, 0x34, 0x12, 0xF0, 0xDE, 0xBC, 0x9A, 0, 0, 0, 0};
  EXPECT_EQ(serial_from_unique_id(0x1234'5678, 0x9ABC'DEF0, 0), crc32(0, bytes, sizeof bytes));
}

}  // namespace
}  // namespace rtcanboot
