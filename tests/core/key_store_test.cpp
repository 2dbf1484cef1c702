// Keys provisioned over CAN (0x5F03, docs/security.md): the key store's record and states, the
// flash guard around its sector, and the bootloader's provisioning through the SDO server: only a
// node without a key takes a key write, once; a cut write never becomes a key and never lets the
// node fall back to unsigned containers; every other path is kept out of the sector.
#include "rtcanboot/key_store.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "core_rig.hpp"
#include "image_builder.hpp"
#include "nor_flash_fake.hpp"
#include "rtcanboot/bootloader.hpp"
#include "rtcanboot/bytes.hpp"
#include "rtcanboot/flash_guard.hpp"
#include "rtcanboot/hash.hpp"
#include "rtcanboot/memory_map.hpp"
#include "rtcanboot/object_dictionary.hpp"
#include "strict_flash.hpp"
#include "test_vectors.hpp"

namespace rtcanboot {
namespace {

using canopen::Abort;
using canopen::FlashDetail;
using canopen::FlashStatus;
using canopen::KeyState;
using test::CoreRig;
using test::NorFlashFake;
namespace mm = memory_map;
namespace od = canopen::od;
using Bytes = std::vector<std::uint8_t>;

// RFC 8032 TEST 1's public key: tests/vectors/container_signed.bin is signed by it.
const Bytes kTest1Key =
    test::from_hex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
const Bytes kTest2Key =
    test::from_hex("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c");

Bytes sha256_of(const Bytes& data) {
  SoftwareSha256 sha;
  sha.reset();
  sha.update(data.data(), data.size());
  Bytes digest(32);
  sha.finish(digest.data());
  return digest;
}

Bytes signed_vector() {
  std::ifstream file(std::string(RTCANBOOT_SOURCE_DIR) + "/tests/vectors/container_signed.bin",
                     std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
}

std::uint32_t status_word(FlashStatus status, FlashDetail detail) {
  return canopen::flash_status_word(false, status, detail);
}

TEST(KeyStoreRecord, RoundTripAndEveryBitFlipIsDetected) {
  KeyHashes keys;
  keys.count = 2;
  for (std::uint32_t i = 0; i < 32; ++i) {
    keys.hash[0][i] = static_cast<std::uint8_t>(i);
    keys.hash[1][i] = static_cast<std::uint8_t>(0xA0 + i);
  }
  std::uint8_t bytes[kKeyStoreRecordSize];
  ASSERT_TRUE(encode_key_store_record(keys, bytes));
  KeyHashes out;
  ASSERT_TRUE(decode_key_store_record(bytes, out));
  EXPECT_EQ(out.count, 2);
  EXPECT_EQ(0, std::memcmp(out.hash, keys.hash, 64));
  for (std::uint32_t bit = 0; bit < kKeyStoreRecordSize * 8; ++bit) {
    std::uint8_t flipped[kKeyStoreRecordSize];
    std::memcpy(flipped, bytes, sizeof flipped);
    flipped[bit / 8] ^= static_cast<std::uint8_t>(1U << (bit % 8));
    EXPECT_FALSE(decode_key_store_record(flipped, out)) << bit;
  }
  keys.count = 0;
  EXPECT_FALSE(encode_key_store_record(keys, bytes));
  keys.count = 5;
  EXPECT_FALSE(encode_key_store_record(keys, bytes));
}

TEST(KeyStoreGuard, NoOtherWriterReachesTheKeySector) {
  static_assert(!GuardedFlash::writable(mm::kKeyStoreOffset, mm::kSectorSize));
  static_assert(!GuardedFlash::writable(mm::kKeyStoreOffset + 0xF00, 256));
  static_assert(!GuardedFlash::writable(mm::kRecordsOffset, mm::kRecordsSize));  // 64 KiB erase
  static_assert(!GuardedFlash::writable(mm::kAppOffset, mm::kFlashSize - mm::kAppOffset));
  static_assert(GuardedFlash::writable(mm::kKeyStoreOffset - mm::kSectorSize, mm::kSectorSize));
  static_assert(GuardedFlash::writable(mm::kKeyStoreOffset + mm::kSectorSize, mm::kSectorSize));
  NorFlashFake flash;
  GuardedFlash guard(flash);
  const std::uint8_t page[256] = {};
  EXPECT_EQ(guard.start_erase(mm::kKeyStoreOffset, mm::kSectorSize), FlashResult::kProtected);
  EXPECT_EQ(guard.start_program(mm::kKeyStoreOffset + 256, page), FlashResult::kProtected);
  EXPECT_EQ(guard.refused(), 2U);
  KeyStoreFlash keys(flash);
  EXPECT_EQ(keys.start_erase(mm::kKeyStoreOffset, mm::kSectorSize), FlashResult::kProtected);
  EXPECT_EQ(keys.start_program(mm::kKeyStoreOffset - 256, page), FlashResult::kProtected);
  EXPECT_EQ(keys.start_program(mm::kKeyStoreOffset + 1, page), FlashResult::kProtected);
  ASSERT_EQ(keys.start_program(mm::kKeyStoreOffset, page), FlashResult::kOk);
  EXPECT_EQ(keys.start_program(mm::kKeyStoreOffset, page), FlashResult::kProtected)
      << "a written page is never programmed again";
  EXPECT_EQ(flash.erases(4096), 0U);
}

class KeyStoreTest : public ::testing::Test {
 protected:
  void drive(KeyStore& store) {
    for (int i = 0; i < 100 && store.busy() && !flash.power_lost(); ++i) {
      flash.set_now(flash.busy_until());
      store.poll();
    }
  }
  static KeyHashes one_key(const Bytes& key) {
    KeyHashes keys;
    keys.count = 1;
    const Bytes hash = sha256_of(key);
    std::copy(hash.begin(), hash.end(), keys.hash[0]);
    return keys;
  }

  NorFlashFake flash{test::NorTiming::typical()};
  KeyStoreFlash key_flash{flash};
};

TEST_F(KeyStoreTest, WrittenOnceThenHeldAndNeverWrittenAgain) {
  KeyStore store(key_flash);
  store.load();
  EXPECT_EQ(store.state(), KeyStoreState::kNone);
  EXPECT_FALSE(store.holds(kTest1Key.data()));
  ASSERT_TRUE(store.begin_write(one_key(kTest1Key)));
  drive(store);
  EXPECT_EQ(store.state(), KeyStoreState::kProvisioned);
  EXPECT_TRUE(store.holds(kTest1Key.data()));
  EXPECT_FALSE(store.holds(kTest2Key.data()));
  EXPECT_FALSE(store.begin_write(one_key(kTest2Key))) << "write-once";
  KeyStore reloaded(key_flash);
  reloaded.load();
  EXPECT_EQ(reloaded.state(), KeyStoreState::kProvisioned);
  EXPECT_TRUE(reloaded.holds(kTest1Key.data()));
  EXPECT_EQ(flash.programs(), 1U);
}

// A cut before or inside the page program: afterwards the store holds the whole key or no key;
// a torn page makes it kInterrupted (never kNone: the node does not fall back to unsigned), and a
// second write onto the next page completes the provisioning.
TEST_F(KeyStoreTest, ACutWriteLeavesTheWholeKeyOrNoKeyAndNeverUnsignedAgain) {
  for (const double fraction : {0.0, 0.01, 0.3, 0.6, 0.99}) {
    SCOPED_TRACE(fraction);
    NorFlashFake fresh{test::NorTiming::typical()};
    KeyStoreFlash port(fresh);
    KeyStore store(port);
    store.load();
    fresh.cut_power_at(1, NorFlashFake::Cut::kMidOperation, fraction);
    ASSERT_TRUE(store.begin_write(one_key(kTest1Key)));
    for (int i = 0; i < 100 && store.busy() && !fresh.power_lost(); ++i) {
      fresh.set_now(fresh.busy_until());
      store.poll();
    }
    ASSERT_TRUE(fresh.power_lost());
    fresh.power_on();
    KeyStore rebooted(port);
    rebooted.load();
    const bool page_blank = std::all_of(fresh.contents().begin() + mm::kKeyStoreOffset,
                                        fresh.contents().begin() + mm::kKeyStoreOffset + 256,
                                        [](std::uint8_t b) { return b == 0xFF; });
    if (page_blank) {
      EXPECT_EQ(rebooted.state(), KeyStoreState::kNone);  // nothing was written at all
    } else {
      EXPECT_EQ(rebooted.state(), KeyStoreState::kInterrupted);
      EXPECT_FALSE(rebooted.holds(kTest1Key.data()));
    }
    ASSERT_TRUE(rebooted.begin_write(one_key(kTest1Key)));
    for (int i = 0; i < 100 && rebooted.busy(); ++i) {
      fresh.set_now(fresh.busy_until());
      rebooted.poll();
    }
    EXPECT_EQ(rebooted.state(), KeyStoreState::kProvisioned);
    EXPECT_TRUE(rebooted.holds(kTest1Key.data()));
  }
}

TEST_F(KeyStoreTest, AFailedProgramIsNeverAKeyAndTheWriteCanBeRepeated) {
  KeyStore store(key_flash);
  store.load();
  flash.fail_operation_at(1);
  ASSERT_TRUE(store.begin_write(one_key(kTest1Key)));
  drive(store);
  EXPECT_NE(store.state(), KeyStoreState::kProvisioned);
  EXPECT_FALSE(store.holds(kTest1Key.data()));
  ASSERT_TRUE(store.begin_write(one_key(kTest1Key)));
  drive(store);
  EXPECT_EQ(store.state(), KeyStoreState::kProvisioned);
}

// A page that holds anything but a valid record (a program cut part-way, bits of foreign data)
// is never a key and never the provisioning state.
TEST_F(KeyStoreTest, AnyWrittenPageWithoutAValidRecordRefusesEverything) {
  std::uint8_t bytes[kKeyStoreRecordSize];
  ASSERT_TRUE(encode_key_store_record(one_key(kTest1Key), bytes));
  std::uint32_t at = 8;
  while (bytes[at] == 0) ++at;
  bytes[at] &= static_cast<std::uint8_t>(bytes[at] - 1);  // one more bit programmed: CRC fails
  flash.load(mm::kKeyStoreOffset, bytes, sizeof bytes);
  KeyStore store(key_flash);
  store.load();
  EXPECT_EQ(store.state(), KeyStoreState::kInterrupted);
  EXPECT_FALSE(store.holds(kTest1Key.data()));
}

// --- through the bootloader's SDO server --------------------------------------------------

class KeyProvisioningTest : public ::testing::Test {
 protected:
  static BootloaderSettings settings() {
    BootloaderSettings s = test::test_settings();
    s.provisioning.listen_window_ms = 0;
    return s;
  }
  std::uint32_t read(std::uint16_t index, std::uint8_t sub = 1) {
    const auto result = rig.sdo_read(index, sub);
    EXPECT_TRUE(result.ok()) << std::hex << static_cast<std::uint32_t>(result.abort);
    return result.value;
  }
  CoreRig::SdoResult provision(const Bytes& hashes) {
    const auto result = rig.sdo_download_segmented(od::kSigningKeys, 2, hashes);
    rig.run_for(50'000);
    return result;
  }
  CoreRig::SdoResult download(const Bytes& container) {
    const auto result = rig.sdo_download_block(od::kProgramData, 1, container);
    rig.wait_flash_idle();
    return result;
  }
  void TearDown() override {
    if (rig.bootloader_ready()) {
      EXPECT_EQ(rig.bootloader().refused_flash_requests(), 0U);
    }
  }

  NorFlashFake flash{test::NorTiming::typical()};
  CoreRig rig{flash, settings()};
};

TEST_F(KeyProvisioningTest, AKeylessNodeTakesOneKeyWriteThenOnlySignedImages) {
  test::fail_on_violation(flash);
  rig.boot();
  EXPECT_EQ(read(od::kSigningKeys), static_cast<std::uint32_t>(KeyState::kNone));
  // Provisioning state: unsigned containers are accepted, as before signatures existed.
  const Bytes unsigned_container = test::make_container(test::make_payload(2000, 4));
  ASSERT_TRUE(download(unsigned_container).ok());
  Bytes hashes = sha256_of(kTest2Key);
  const Bytes test1 = sha256_of(kTest1Key);
  hashes.insert(hashes.end(), test1.begin(), test1.end());
  ASSERT_TRUE(provision(hashes).ok());
  EXPECT_EQ(read(od::kSigningKeys), static_cast<std::uint32_t>(KeyState::kProvisioned));
  Bytes read_back;
  ASSERT_TRUE(rig.sdo_upload(od::kSigningKeys, 2, read_back).ok());
  EXPECT_EQ(read_back, hashes);

  // Once: another write is refused, whatever it holds.
  EXPECT_EQ(provision(sha256_of(kTest2Key)).abort, Abort::kCannotStore);
  Bytes after;
  ASSERT_TRUE(rig.sdo_upload(od::kSigningKeys, 2, after).ok());
  EXPECT_EQ(after, hashes);

  const std::uint32_t ops = flash.mutating_ops();
  EXPECT_EQ(download(test::make_container(test::make_payload(3000, 5))).abort, Abort::kCannotStore);
  EXPECT_EQ(read(od::kFlashStatus),
            status_word(FlashStatus::kNotAuthorised, FlashDetail::kSignatureMissing));
  EXPECT_EQ(flash.mutating_ops(), ops);
  const Bytes good = signed_vector();
  ASSERT_TRUE(download(good).ok());
  EXPECT_EQ(read(od::kFlashStatus), 0U);
  EXPECT_EQ(read(od::kSoftwareId), load_le32(good.data() + 0x20));
  EXPECT_EQ(read(od::kRtcanbootInfo, 9), 5U) << "the signed image's counter is recorded";

  // After a reset (a new Bootloader on the same flash) the key is still there.
  rig.settings().entry_requested = true;  // stay in the bootloader
  rig.boot();
  EXPECT_EQ(read(od::kSigningKeys), static_cast<std::uint32_t>(KeyState::kProvisioned));
  EXPECT_EQ(download(unsigned_container).abort, Abort::kCannotStore);
  EXPECT_EQ(read(od::kRtcanbootInfo, 9), 5U);
}

TEST_F(KeyProvisioningTest, ABadLengthIsRefusedAndLeavesNoKey) {
  rig.boot();
  EXPECT_EQ(provision(Bytes(31, 1)).abort, Abort::kLengthTooLow);
  EXPECT_EQ(provision(Bytes(160, 1)).abort, Abort::kLengthTooHigh);
  EXPECT_EQ(read(od::kSigningKeys), static_cast<std::uint32_t>(KeyState::kNone));
  EXPECT_EQ(flash.programs(), 0U);
}

TEST_F(KeyProvisioningTest, ABuiltInKeyTakesNoWrite) {
  KeyRecord key;
  std::copy(kTest1Key.begin(), kTest1Key.end(), key.public_key);
  rig.settings().key_record = &key;
  rig.boot();
  EXPECT_EQ(read(od::kSigningKeys), static_cast<std::uint32_t>(KeyState::kBuiltIn));
  EXPECT_EQ(provision(sha256_of(kTest2Key)).abort, Abort::kCannotStore);
  Bytes hash;
  ASSERT_TRUE(rig.sdo_upload(od::kSigningKeys, 2, hash).ok());
  EXPECT_EQ(hash, sha256_of(kTest1Key));
}

// A key write cut by power loss: after the reboot the node refuses every container (unsigned
// too) until a key write completes, then takes the signed image.
TEST_F(KeyProvisioningTest, ACutKeyWriteRefusesEverythingUntilAKeyIsWritten) {
  rig.boot();
  flash.cut_power_at(1, NorFlashFake::Cut::kMidOperation, 0.5);
  rig.sdo_download_segmented(od::kSigningKeys, 2, sha256_of(kTest1Key));
  rig.run_for(50'000);
  ASSERT_TRUE(flash.power_lost());
  flash.power_on();
  rig.boot();
  EXPECT_EQ(read(od::kSigningKeys), static_cast<std::uint32_t>(KeyState::kInterrupted));
  const std::uint32_t ops = flash.mutating_ops();
  EXPECT_EQ(download(test::make_container(test::make_payload(2000, 4))).abort, Abort::kCannotStore);
  EXPECT_EQ(read(od::kFlashStatus),
            status_word(FlashStatus::kNotAuthorised, FlashDetail::kSignatureMissing));
  EXPECT_EQ(download(signed_vector()).abort, Abort::kCannotStore);
  EXPECT_EQ(read(od::kFlashStatus),
            status_word(FlashStatus::kNotAuthorised, FlashDetail::kUnknownKey));
  EXPECT_EQ(flash.mutating_ops(), ops);
  ASSERT_TRUE(provision(sha256_of(kTest1Key)).ok());
  EXPECT_EQ(read(od::kSigningKeys), static_cast<std::uint32_t>(KeyState::kProvisioned));
  ASSERT_TRUE(download(signed_vector()).ok());
  EXPECT_EQ(read(od::kFlashStatus), 0U);
}

// The lock-down table of docs/security.md: these are all the objects an SDO client can write,
// and no DOMAIN is readable but the listed ones. A new writable object must be added there (and
// here) with what it can do once the node holds a key.
TEST(LockDown, EveryWritableObjectIsInTheSecurityTable) {
  using canopen::Access;
  using canopen::DataType;
  const std::vector<std::pair<std::uint16_t, std::uint8_t>> writable = {
      {0x1017, 0},           {od::kProgramData, 1},   {od::kProgramControl, 1},
      {od::kSelfTest, 1},    {od::kSectorDigests, 1}, {od::kSigningKeys, 2},
      {od::kListenAlong, 1}, {od::kListenAlong, 2},   {od::kListenAlong, 3},
      {od::kListenAlong, 4}, {od::kProvisioning, 2}};
  const std::vector<std::pair<std::uint16_t, std::uint8_t>> domains = {{od::kProgramData, 1},
                                                                       {od::kSectorDigests, 3},
                                                                       {od::kSigningKeys, 2},
                                                                       {od::kProvisioning, 2},
                                                                       {od::kListenAlong, 6}};
  for (const canopen::OdEntry& e : canopen::object_dictionary()) {
    const std::pair<std::uint16_t, std::uint8_t> at{e.index, e.sub};
    const bool may_write = std::find(writable.begin(), writable.end(), at) != writable.end();
    EXPECT_EQ(canopen::writable(e.access), may_write) << std::hex << e.index << ":" << int{e.sub};
    if (e.type == DataType::kDomain) {
      EXPECT_NE(std::find(domains.begin(), domains.end(), at), domains.end())
          << std::hex << e.index << ":" << int{e.sub};
    }
  }
}

}  // namespace
}  // namespace rtcanboot
