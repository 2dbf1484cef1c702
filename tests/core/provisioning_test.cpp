// The provisioning record: encode/decode, defaults for blank or invalid records.
#include "rtcanboot/provisioning.hpp"

#include <gtest/gtest.h>

#include <cstring>

#include "nor_flash_fake.hpp"
#include "rtcanboot/bytes.hpp"
#include "rtcanboot/hash.hpp"
#include "rtcanboot/memory_map.hpp"

namespace rtcanboot {
namespace {

void expect_defaults(const Provisioning& p) {
  EXPECT_EQ(p.node_id, 1);
  EXPECT_EQ(p.bitrate, 125'000U);
  EXPECT_EQ(p.boot_window_ms, 0U);
  EXPECT_EQ(p.serial, 0U);
}

TEST(Provisioning, RoundTripForEveryCia301Rate) {
  for (std::uint32_t rate :
       {10'000U, 20'000U, 50'000U, 125'000U, 250'000U, 500'000U, 800'000U, 1'000'000U}) {
    const Provisioning in{127, rate, 1500, 0xCAFE};
    std::uint8_t bytes[kProvisioningRecordSize];
    ASSERT_TRUE(encode_provisioning(in, bytes, sizeof bytes));
    bool valid = false;
    const Provisioning out = decode_provisioning(bytes, sizeof bytes, &valid);
    EXPECT_TRUE(valid);
    EXPECT_EQ(out.node_id, 127);
    EXPECT_EQ(out.bitrate, rate);
    EXPECT_EQ(out.boot_window_ms, 1500U);
    EXPECT_EQ(out.serial, 0xCAFEU);
  }
}

TEST(Provisioning, EncoderRefusesInvalidFields) {
  std::uint8_t bytes[kProvisioningRecordSize];
  EXPECT_FALSE(encode_provisioning({0, 125'000, 0, 0}, bytes, sizeof bytes));
  EXPECT_FALSE(encode_provisioning({128, 125'000, 0, 0}, bytes, sizeof bytes));
  EXPECT_FALSE(encode_provisioning({1, 100'000, 0, 0}, bytes, sizeof bytes));
  EXPECT_FALSE(encode_provisioning({1, 125'000, 0, 0}, bytes, sizeof bytes - 1));
}

TEST(Provisioning, PinnedBytes) {
  std::uint8_t bytes[kProvisioningRecordSize];
  ASSERT_TRUE(encode_provisioning({0x12, 500'000, 250, 0x01020304}, bytes, sizeof bytes));
  const std::uint8_t expected_head[] = {0x52, 0x54, 0x43, 0x50, 0x01, 0x00, 0x12, 0x00, 0x20, 0xA1,
                                        0x07, 0x00, 0xFA, 0x00, 0x00, 0x00, 0x04, 0x03, 0x02, 0x01,
                                        0,    0,    0,    0,    3,    0,    0,    0};
  EXPECT_EQ(0, std::memcmp(bytes, expected_head, sizeof expected_head));
  EXPECT_EQ(load_le32(bytes + 28), crc32(0, bytes, 28));
}

TEST(Provisioning, BootAttemptsByteZeroIsTheDefaultAndFFIsOff) {
  std::uint8_t bytes[kProvisioningRecordSize];
  Provisioning p{0x12, 500'000, 0, 0};
  p.boot_attempts = 7;
  ASSERT_TRUE(encode_provisioning(p, bytes, sizeof bytes));
  EXPECT_EQ(bytes[0x18], 7);
  EXPECT_EQ(decode_provisioning(bytes, sizeof bytes).boot_attempts, 7);
  p.boot_attempts = kTrialBootOff;
  ASSERT_TRUE(encode_provisioning(p, bytes, sizeof bytes));
  EXPECT_EQ(bytes[0x18], 0xFF);
  EXPECT_EQ(decode_provisioning(bytes, sizeof bytes).boot_attempts, kTrialBootOff);
  // A record written before the field existed holds 0 there: the default, 3.
  bytes[0x18] = 0;
  store_le32(bytes + 28, crc32(0, bytes, 28));
  bool valid = false;
  EXPECT_EQ(decode_provisioning(bytes, sizeof bytes, &valid).boot_attempts, 3);
  EXPECT_TRUE(valid);
}

TEST(Provisioning, BlankTornOrInvalidRecordsGiveDefaults) {
  std::uint8_t blank[kProvisioningRecordSize];
  std::memset(blank, 0xFF, sizeof blank);
  bool valid = true;
  expect_defaults(decode_provisioning(blank, sizeof blank, &valid));
  EXPECT_FALSE(valid);

  std::uint8_t bytes[kProvisioningRecordSize];
  ASSERT_TRUE(encode_provisioning({9, 250'000, 100, 7}, bytes, sizeof bytes));
  for (std::size_t bit = 0; bit < sizeof bytes * 8; ++bit) {
    std::uint8_t flipped[kProvisioningRecordSize];
    std::memcpy(flipped, bytes, sizeof bytes);
    flipped[bit / 8] ^= static_cast<std::uint8_t>(1U << (bit % 8));
    expect_defaults(decode_provisioning(flipped, sizeof flipped, &valid));
    EXPECT_FALSE(valid) << bit;
  }
  // Well-sealed but out of range: node-ID 0, a bit rate CiA 301 does not have.
  for (auto patch : {std::pair<std::size_t, std::uint32_t>{6, 0}, {8, 100'000}}) {
    std::uint8_t bad[kProvisioningRecordSize];
    std::memcpy(bad, bytes, sizeof bytes);
    if (patch.first == 6) {
      bad[6] = 0;
    } else {
      store_le32(bad + 8, patch.second);
    }
    store_le32(bad + 28, crc32(0, bad, 28));
    expect_defaults(decode_provisioning(bad, sizeof bad, &valid));
    EXPECT_FALSE(valid);
  }
  expect_defaults(decode_provisioning(bytes, sizeof bytes - 1, &valid));
  EXPECT_FALSE(valid);
}

TEST(Provisioning, LoadedFromItsSector) {
  test::NorFlashFake flash;
  bool valid = true;
  expect_defaults(load_provisioning(flash, &valid));
  EXPECT_FALSE(valid);
  std::uint8_t bytes[kProvisioningRecordSize];
  ASSERT_TRUE(encode_provisioning({42, 1'000'000, 300, 5}, bytes, sizeof bytes));
  flash.load(memory_map::kProvisioningOffset, bytes, sizeof bytes);
  const Provisioning p = load_provisioning(flash, &valid);
  EXPECT_TRUE(valid);
  EXPECT_EQ(p.node_id, 42);
  EXPECT_EQ(p.bitrate, 1'000'000U);
  EXPECT_EQ(p.boot_window_ms, 300U);
}

}  // namespace
}  // namespace rtcanboot
