// The flash manager: lazy erase (64 KiB where aligned and wholly needed, else 4 KiB, blank units
// skipped), whole-page programming with a padded tail, read-back verification, and the guard that
// keeps the bootloader region out of reach.
#include "rtcanboot/flash_writer.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "image_builder.hpp"
#include "nor_flash_fake.hpp"
#include "rtcanboot/flash_guard.hpp"
#include "rtcanboot/hash.hpp"
#include "rtcanboot/memory_map.hpp"
#include "strict_flash.hpp"

namespace rtcanboot {
namespace {

using test::NorFlashFake;
namespace mm = memory_map;

class FlashWriterTest : public ::testing::Test {
 protected:
  void SetUp() override { test::fail_on_violation(flash); }

  void step() {
    flash.set_now(flash.busy_until());
    writer.poll();
  }
  // Pushes everything (as fast as the ring takes it), then finishes and verifies.
  void write_all(const std::vector<std::uint8_t>& data, std::uint32_t chunk = 889) {
    writer.open_write(mm::kAppOffset, static_cast<std::uint32_t>(data.size()));
    writer.arm();
    std::size_t sent = 0;
    for (int guard = 0; sent < data.size() && guard < 1'000'000; ++guard) {
      const auto want =
          static_cast<std::uint32_t>(std::min<std::size_t>(chunk, data.size() - sent));
      const std::uint32_t take = std::min(want, writer.free_space());
      ASSERT_EQ(writer.push(data.data() + sent, take), take);
      sent += take;
      step();
    }
    writer.finish_write();
    run_to_end();
  }
  void run_to_end() {
    for (int guard = 0; guard < 1'000'000; ++guard) {
      if (writer.state() == FlashWriter::State::kDone ||
          writer.state() == FlashWriter::State::kFailed) {
        return;
      }
      step();
    }
    FAIL() << "writer did not finish";
  }
  void dirty(std::uint32_t offset, std::uint32_t length) {
    std::fill_n(flash.contents().begin() + offset, length, 0x00);
  }

  NorFlashFake flash{test::NorTiming::typical()};
  SoftwareSha256 sha;
  std::vector<std::uint8_t> ring = std::vector<std::uint8_t>(8 * 1024);
  FlashWriter writer{flash, sha, ring};
};

TEST_F(FlashWriterTest, ProgramsWholePagesPadsTheTailAndVerifies) {
  const auto data = test::make_payload(10'000, 3);
  write_all(data);
  ASSERT_EQ(writer.state(), FlashWriter::State::kDone);
  EXPECT_TRUE(std::equal(data.begin(), data.end(), flash.contents().begin() + mm::kAppOffset));
  const std::uint32_t padded = (10'000 + 255) / 256 * 256;
  for (std::uint32_t i = 10'000; i < padded; ++i)
    EXPECT_EQ(flash.contents()[mm::kAppOffset + i], 0xFF);
  EXPECT_EQ(writer.stats().pages, padded / 256);
  EXPECT_EQ(flash.programs(), padded / 256);
  EXPECT_EQ(writer.verified_crc32(), crc32(0, data.data(), data.size()));
  const image::Header header = test::header_for(data);
  EXPECT_EQ(0, std::memcmp(writer.verified_sha256(), header.payload_sha256, 32));
}

TEST_F(FlashWriterTest, BlankFlashIsNotErased) {
  write_all(test::make_payload(100'000, 1));
  ASSERT_EQ(writer.state(), FlashWriter::State::kDone);
  EXPECT_EQ(flash.erases(4096) + flash.erases(32768) + flash.erases(65536), 0U);
  EXPECT_GT(writer.stats().blank_skipped, 0U);
}

TEST_F(FlashWriterTest, Uses64KiBBlocksWhereWhollyNeededElse4KiB) {
  dirty(mm::kAppOffset, 0x40000);
  // 200 KiB + 1: three whole 64 KiB blocks, then 8 KiB + 1 byte -> three 4 KiB sectors.
  const auto data = test::make_payload(200 * 1024 + 1, 2);
  write_all(data);
  ASSERT_EQ(writer.state(), FlashWriter::State::kDone);
  EXPECT_EQ(flash.erases(65536), 3U);
  EXPECT_EQ(flash.erases(4096), 3U);
  EXPECT_EQ(flash.erases(32768), 0U);
  EXPECT_TRUE(std::equal(data.begin(), data.end(), flash.contents().begin() + mm::kAppOffset));
  // The rest of the dirty area was not needed and stays as it was.
  EXPECT_EQ(flash.contents()[mm::kAppOffset + 0x33000], 0x00);
}

TEST_F(FlashWriterTest, SkipsBlankUnitsAndErasesOnlyDirtyOnes) {
  dirty(mm::kAppOffset + 0x10000 + 0x5000, 16);  // one byte range inside the second block
  write_all(test::make_payload(3 * 0x10000, 4));
  ASSERT_EQ(writer.state(), FlashWriter::State::kDone);
  EXPECT_EQ(flash.erases(65536), 1U);
  EXPECT_EQ(writer.stats().blank_skipped, 2U);
}

TEST_F(FlashWriterTest, ErasesLazilyAtMostOneBlockAhead) {
  dirty(mm::kAppOffset, 0x100000);
  writer.open_write(mm::kAppOffset, 0x100000);
  writer.arm();
  const auto data = test::make_payload(256, 1);
  writer.push(data.data(), 256);
  for (int i = 0; i < 100; ++i) step();
  // Block 0 for the first page, block 1 as look-ahead; nothing further without data.
  EXPECT_EQ(flash.erases(65536), 2U);
  EXPECT_EQ(writer.stats().pages, 1U);
}

TEST_F(FlashWriterTest, NothingHappensBeforeArm) {
  dirty(mm::kAppOffset, 0x10000);
  writer.open_write(mm::kAppOffset, 1000);
  const auto data = test::make_payload(1000, 1);
  writer.push(data.data(), 1000);
  for (int i = 0; i < 10; ++i) step();
  EXPECT_EQ(flash.mutating_ops(), 0U);
}

TEST_F(FlashWriterTest, FreeSpaceIsTheRingRoomAndNeverMoreThanTheRest) {
  writer.open_write(mm::kAppOffset, 100'000);
  EXPECT_EQ(writer.ring_capacity(), 8U * 1024);
  EXPECT_EQ(writer.free_space(), 8U * 1024);
  const auto data = test::make_payload(9000, 1);
  EXPECT_EQ(writer.push(data.data(), 9000), 8U * 1024);
  EXPECT_EQ(writer.free_space(), 0U);
  writer.open_write(mm::kAppOffset, 100);
  EXPECT_EQ(writer.free_space(), 100U);
}

TEST_F(FlashWriterTest, RingIsUsedUpToAWholeNumberOfPages) {
  std::vector<std::uint8_t> odd(1000);
  FlashWriter small(flash, sha, odd);
  EXPECT_EQ(small.ring_capacity(), 768U);
}

TEST_F(FlashWriterTest, EraseFailureIsReported) {
  dirty(mm::kAppOffset, 0x1000);
  flash.fail_operation_at(1);
  write_all(test::make_payload(1000, 1));
  EXPECT_EQ(writer.state(), FlashWriter::State::kFailed);
  EXPECT_EQ(writer.failure(), canopen::FlashDetail::kEraseFailed);
}

TEST_F(FlashWriterTest, ProgramFailureIsReported) {
  flash.fail_operation_at(2);
  write_all(test::make_payload(1000, 1));
  EXPECT_EQ(writer.state(), FlashWriter::State::kFailed);
  EXPECT_EQ(writer.failure(), canopen::FlashDetail::kProgramFailed);
}

TEST_F(FlashWriterTest, EraseJobClearsEveryDirtyUnitOfTheRange) {
  dirty(mm::kAppOffset + 0x3000, 10);
  dirty(mm::kAppOffset + 0x50000, 0x20000);
  writer.open_erase(mm::kAppOffset, mm::kAppSize);
  writer.arm();
  run_to_end();
  ASSERT_EQ(writer.state(), FlashWriter::State::kDone);
  EXPECT_EQ(flash.erases(65536), 3U);  // blocks 0, 5, 6
  EXPECT_TRUE(std::all_of(flash.contents().begin() + mm::kAppOffset,
                          flash.contents().begin() + mm::kRecordsOffset,
                          [](std::uint8_t b) { return b == 0xFF; }));
}

TEST_F(FlashWriterTest, StaleOperationOfAnAbandonedJobDoesNotMoveTheNewOne) {
  dirty(mm::kAppOffset, 0x20000);
  writer.open_erase(mm::kAppOffset, mm::kAppSize);
  writer.arm();
  writer.poll();  // starts erasing block 0 (150 ms)
  ASSERT_TRUE(writer.operation_in_flight());
  writer.stop();
  // A new write job while the old erase runs: the erase completes but the new job re-checks.
  const auto data = test::make_payload(0x18000, 5);
  write_all(data);
  ASSERT_EQ(writer.state(), FlashWriter::State::kDone);
  EXPECT_TRUE(std::equal(data.begin(), data.end(), flash.contents().begin() + mm::kAppOffset));
}

// A FlashPort that records what reaches it.
class CountingPort final : public FlashPort {
 public:
  FlashResult start_erase(std::uint32_t, std::uint32_t) override {
    ++calls;
    return FlashResult::kOk;
  }
  FlashResult start_program(std::uint32_t, const std::uint8_t*) override {
    ++calls;
    return FlashResult::kOk;
  }
  bool busy() override { return false; }
  FlashResult last_result() const override { return FlashResult::kOk; }
  FlashResult read(std::uint32_t, void*, std::uint32_t) override { return FlashResult::kOk; }
  int calls = 0;
};

TEST(FlashGuard, RefusesEverythingThatTouchesTheBootloader) {
  CountingPort port;
  GuardedFlash guard(port);
  const std::uint8_t page[256] = {};
  EXPECT_EQ(guard.start_erase(0, 0x10000), FlashResult::kProtected);
  EXPECT_EQ(guard.start_erase(0x1'F000, 0x1000), FlashResult::kProtected);
  EXPECT_EQ(guard.start_erase(0x1'0000, 0x20000), FlashResult::kProtected);
  EXPECT_EQ(guard.start_program(0x1'FF00, page), FlashResult::kProtected);
  EXPECT_EQ(guard.start_program(0xFFFF'FF00, page), FlashResult::kProtected);
  EXPECT_EQ(guard.start_erase(0x3F'F000, 0x2000), FlashResult::kProtected);  // past the end
  EXPECT_EQ(guard.refused(), 6U);
  EXPECT_EQ(port.calls, 0);
  EXPECT_EQ(guard.start_erase(mm::kAppOffset, 0x10000), FlashResult::kOk);
  EXPECT_EQ(guard.start_program(mm::kJournalOffset, page), FlashResult::kOk);
  EXPECT_EQ(guard.start_program(mm::kFlashSize - 256, page), FlashResult::kOk);
  EXPECT_EQ(port.calls, 3);
  static_assert(!GuardedFlash::writable(mm::kBootloaderOffset, 1));
  static_assert(GuardedFlash::writable(mm::kAppOffset, mm::kKeyStoreOffset - mm::kAppOffset));
  static_assert(GuardedFlash::writable(mm::kKeyStoreOffset + mm::kSectorSize,
                                       mm::kFlashSize - mm::kKeyStoreOffset - mm::kSectorSize));
  // The key store's sector is out of reach (key_store_test.cpp).
  static_assert(!GuardedFlash::writable(mm::kAppOffset, mm::kFlashSize - mm::kAppOffset));
}

}  // namespace
}  // namespace rtcanboot
