// The provisioning record: encode/decode, defaults for blank or invalid records, and the
// power-cut safe store LSS "store configuration" writes through.
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
  EXPECT_EQ(p.node_id, lss::kUnconfigured);
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
  EXPECT_FALSE(encode_provisioning({1, 125'000, 0, 0, 0x02}, bytes, sizeof bytes));  // unknown flag
  // 0xFF: an unconfigured node (CiA 305), a valid record.
  EXPECT_TRUE(
      encode_provisioning({0xFF, 125'000, 0, 0, kStartApplicationAfterLss}, bytes, sizeof bytes));
  bool valid = false;
  const Provisioning p = decode_provisioning(bytes, sizeof bytes, &valid);
  EXPECT_TRUE(valid);
  EXPECT_EQ(p.node_id, 0xFF);
  EXPECT_EQ(p.flags, kStartApplicationAfterLss);
}

TEST(Provisioning, PinnedBytes) {
  std::uint8_t bytes[kProvisioningRecordSize];
  ASSERT_TRUE(
      encode_provisioning({0x12, 500'000, 250, 0x01020304, 0x01, 0x0A0B0C0D}, bytes, sizeof bytes));
  const std::uint8_t expected_head[] = {0x52, 0x54, 0x43, 0x50, 0x01, 0x00, 0x12, 0x01, 0x20, 0xA1,
                                        0x07, 0x00, 0xFA, 0x00, 0x00, 0x00, 0x04, 0x03, 0x02, 0x01,
                                        0x0D, 0x0C, 0x0B, 0x0A, 3,    0,    50,   0};
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

// Bytes 0x1A..0x1B, the listen window (the default boot window at power-on): 0 = the default,
// 0xFFFF = off; older records hold 0 there and get the default window.
TEST(Provisioning, ListenWindowZeroIsTheDefaultAndFFFFIsOff) {
  std::uint8_t bytes[kProvisioningRecordSize];
  Provisioning p{0x12, 500'000, 0, 0};
  EXPECT_EQ(p.listen_window_ms, kDefaultListenWindowMs);
  p.listen_window_ms = 30;
  ASSERT_TRUE(encode_provisioning(p, bytes, sizeof bytes));
  EXPECT_EQ(load_le16(bytes + 0x1A), 30);
  EXPECT_EQ(decode_provisioning(bytes, sizeof bytes).listen_window_ms, 30);
  p.listen_window_ms = 0;
  ASSERT_TRUE(encode_provisioning(p, bytes, sizeof bytes));
  EXPECT_EQ(load_le16(bytes + 0x1A), 0xFFFF);
  EXPECT_EQ(decode_provisioning(bytes, sizeof bytes).listen_window_ms, 0);
  p.listen_window_ms = kMaxListenWindowMs;
  ASSERT_TRUE(encode_provisioning(p, bytes, sizeof bytes));
  p.listen_window_ms = kMaxListenWindowMs + 1;
  EXPECT_FALSE(encode_provisioning(p, bytes, sizeof bytes));
  // A record written before the field existed holds 0 there: the default window.
  store_le16(bytes + 0x1A, 0);
  store_le32(bytes + 28, crc32(0, bytes, 28));
  bool valid = false;
  EXPECT_EQ(decode_provisioning(bytes, sizeof bytes, &valid).listen_window_ms,
            kDefaultListenWindowMs);
  EXPECT_TRUE(valid);
  // Well-sealed but above the maximum: not a valid record.
  store_le16(bytes + 0x1A, kMaxListenWindowMs + 1);
  store_le32(bytes + 28, crc32(0, bytes, 28));
  decode_provisioning(bytes, sizeof bytes, &valid);
  EXPECT_FALSE(valid);
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

// Runs the store until it is done (instant fake flash).
bool save_and_wait(ProvisioningStore& store, const Provisioning& p) {
  if (!store.save(p)) return false;
  for (int i = 0; i < 1000 && store.busy(); ++i) store.poll();
  return !store.busy() && !store.failed();
}

TEST(ProvisioningStore, NewestRecordWinsAcrossSectorSwitches) {
  test::NorFlashFake flash;
  std::uint8_t factory[kProvisioningRecordSize];
  ASSERT_TRUE(encode_provisioning({0xFF, 500'000, 250, 0, kStartApplicationAfterLss}, factory,
                                  sizeof factory));
  flash.load(memory_map::kProvisioningOffset, factory, sizeof factory);
  ProvisioningStore store(flash);
  store.load();
  ASSERT_TRUE(store.valid());
  EXPECT_EQ(store.current().node_id, 0xFF);
  // 60 stores: more than the 16 slots of a sector, so both sectors are used and erased in turn.
  for (std::uint8_t n = 1; n <= 60; ++n) {
    Provisioning p = store.current();
    p.node_id = n;
    ASSERT_TRUE(save_and_wait(store, p)) << int{n};
    EXPECT_EQ(store.current().node_id, n);
    EXPECT_EQ(store.current().sequence, n);
    bool valid = false;
    const Provisioning loaded = load_provisioning(flash, &valid);
    ASSERT_TRUE(valid);
    EXPECT_EQ(loaded.node_id, n);
    EXPECT_EQ(loaded.boot_window_ms, 250U);  // the rest of the record is kept
    EXPECT_EQ(loaded.flags, kStartApplicationAfterLss);
  }
  EXPECT_GE(flash.erases(memory_map::kSectorSize), 2U);
  EXPECT_TRUE(flash.violations().empty());
  for (const auto& op : flash.operations()) {
    EXPECT_GE(op.offset, memory_map::kProvisioningOffset);
    EXPECT_LT(op.offset, memory_map::kJournalOffset);
  }
  EXPECT_FALSE(store.save({0, 125'000, 0, 0}));  // invalid node-ID: nothing started
}

// Byte 0x18 (boot attempts, trial boot) is not LSS's: a store that changes node-ID and bit rate
// keeps it byte for byte, including 0 ("the default") and 0xFF ("off").
TEST(ProvisioningStore, StoreKeepsTheBootAttemptsByte) {
  for (std::uint8_t stored : {std::uint8_t{0}, std::uint8_t{5}, std::uint8_t{0xFF}}) {
    test::NorFlashFake flash;
    std::uint8_t factory[kProvisioningRecordSize];
    ASSERT_TRUE(encode_provisioning({0xFF, 125'000, 0, 0}, factory, sizeof factory));
    factory[0x18] = stored;
    store_le32(factory + 28, crc32(0, factory, 28));
    flash.load(memory_map::kProvisioningOffset, factory, sizeof factory);
    ProvisioningStore store(flash);
    store.load();
    ASSERT_TRUE(store.valid());
    const std::uint8_t attempts = store.current().boot_attempts;
    Provisioning p = store.current();
    p.node_id = 12;
    p.bitrate = 500'000;
    ASSERT_TRUE(save_and_wait(store, p)) << int{stored};
    std::uint8_t bytes[kProvisioningRecordSize];
    ASSERT_EQ(
        flash.read(memory_map::kProvisioningOffset + RecordLog::kSlotSize, bytes, sizeof bytes),
        FlashResult::kOk);
    EXPECT_EQ(bytes[0x18], stored);
    EXPECT_EQ(load_le32(bytes + 0x14), 1U);  // the sequence number next to it
    bool valid = false;
    const Provisioning loaded = decode_provisioning(bytes, sizeof bytes, &valid);
    ASSERT_TRUE(valid);
    EXPECT_EQ(loaded.node_id, 12);
    EXPECT_EQ(loaded.boot_attempts, attempts);
    EXPECT_EQ(store.current().boot_attempts, attempts);
    // A store that does change the boot attempts writes the new value.
    p.boot_attempts = 2;
    ASSERT_TRUE(save_and_wait(store, p));
    EXPECT_EQ(load_provisioning(flash).boot_attempts, 2);
  }
}

// Bytes 0x1A..0x1B (listen window) are not LSS's either: kept as stored, 0 included.
TEST(ProvisioningStore, StoreKeepsTheListenWindowBytes) {
  for (std::uint16_t stored : {std::uint16_t{0}, std::uint16_t{20}, std::uint16_t{0xFFFF}}) {
    test::NorFlashFake flash;
    std::uint8_t factory[kProvisioningRecordSize];
    ASSERT_TRUE(encode_provisioning({0xFF, 125'000, 0, 0}, factory, sizeof factory));
    store_le16(factory + 0x1A, stored);
    store_le32(factory + 28, crc32(0, factory, 28));
    flash.load(memory_map::kProvisioningOffset, factory, sizeof factory);
    ProvisioningStore store(flash);
    store.load();
    ASSERT_TRUE(store.valid());
    const std::uint16_t window = store.current().listen_window_ms;
    Provisioning p = store.current();
    p.node_id = 12;
    ASSERT_TRUE(save_and_wait(store, p)) << stored;
    std::uint8_t bytes[kProvisioningRecordSize];
    ASSERT_EQ(
        flash.read(memory_map::kProvisioningOffset + RecordLog::kSlotSize, bytes, sizeof bytes),
        FlashResult::kOk);
    EXPECT_EQ(load_le16(bytes + 0x1A), stored);
    bool valid = false;
    EXPECT_EQ(decode_provisioning(bytes, sizeof bytes, &valid).listen_window_ms, window);
    EXPECT_TRUE(valid);
  }
}

// A power cut before or inside every flash operation of a store (including the sector erase of a
// switch) leaves the old record or the new one, never a broken or default one.
TEST(ProvisioningStore, PowerCutDuringStoreLeavesOldOrNew) {
  for (std::uint8_t stores_before : {0, 15, 16}) {
    for (auto mode : {test::NorFlashFake::Cut::kBefore, test::NorFlashFake::Cut::kMidOperation}) {
      for (std::uint32_t op = 1; op <= 2; ++op) {
        for (double fraction : {0.3, 0.9}) {
          test::NorFlashFake flash;
          ProvisioningStore store(flash);
          store.load();
          Provisioning p;
          p.node_id = 3;
          ASSERT_TRUE(save_and_wait(store, p));
          for (std::uint8_t i = 0; i < stores_before; ++i) {
            p.node_id = static_cast<std::uint8_t>(20 + i % 2);
            ASSERT_TRUE(save_and_wait(store, p));
          }
          const std::uint8_t old_id = store.current().node_id;
          flash.cut_power_at(op, mode, fraction);
          p.node_id = 99;
          p.bitrate = 1'000'000;
          if (store.save(p)) {
            for (int i = 0; i < 1000 && store.busy() && !flash.power_lost(); ++i) store.poll();
          }
          flash.power_on();
          bool valid = false;
          const Provisioning after = load_provisioning(flash, &valid);
          ASSERT_TRUE(valid) << int{stores_before} << " op " << op << " " << fraction;
          EXPECT_TRUE(after.node_id == old_id ||
                      (after.node_id == 99 && after.bitrate == 1'000'000))
              << int{after.node_id};
          // And the next store works.
          ProvisioningStore again(flash);
          again.load();
          p.node_id = 77;
          ASSERT_TRUE(save_and_wait(again, p));
          EXPECT_EQ(load_provisioning(flash).node_id, 77);
        }
      }
    }
  }
}

}  // namespace
}  // namespace rtcanboot
