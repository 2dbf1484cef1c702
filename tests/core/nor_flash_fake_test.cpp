// The strict NOR fake itself: if it accepted what the chip does not, every other test would be
// worth less.
#include "nor_flash_fake.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cstdint>

#include "strict_flash.hpp"

namespace rtcanboot::test {
namespace {

constexpr std::uint32_t kApp = 0x2'0000;

std::array<std::uint8_t, 256> filled(std::uint8_t value) {
  std::array<std::uint8_t, 256> page;
  page.fill(value);
  return page;
}

TEST(NorFlashFake, StartsErasedAndProgramsOnlyClearBits) {
  NorFlashFake flash;
  fail_on_violation(flash);
  EXPECT_EQ(flash.contents().size(), 4U * 1024 * 1024);
  EXPECT_EQ(flash.contents()[kApp], 0xFF);
  auto page = filled(0xF0);
  ASSERT_EQ(flash.start_program(kApp, page.data()), FlashResult::kOk);
  EXPECT_FALSE(flash.busy());
  EXPECT_EQ(flash.contents()[kApp], 0xF0);
  page = filled(0xC0);  // clears more bits: fine
  ASSERT_EQ(flash.start_program(kApp, page.data()), FlashResult::kOk);
  EXPECT_FALSE(flash.busy());
  EXPECT_EQ(flash.contents()[kApp + 255], 0xC0);
}

TEST(NorFlashFake, ZeroToOneIsAViolation) {
  NorFlashFake flash;
  auto page = filled(0x00);
  flash.start_program(kApp, page.data());
  flash.busy();
  auto ones = filled(0x01);
  page = ones;
  flash.start_program(kApp, page.data());
  flash.busy();
  ASSERT_EQ(flash.violations().size(), 1U);
  EXPECT_EQ(flash.contents()[kApp], 0x00);  // the chip leaves the bit at 0
}

TEST(NorFlashFake, EraseOnlyOnMatchingBoundaries) {
  NorFlashFake flash;
  EXPECT_EQ(flash.start_erase(kApp + 0x1000, 0x8000), FlashResult::kInvalidArgument);
  EXPECT_EQ(flash.start_erase(kApp, 0x2000), FlashResult::kInvalidArgument);
  EXPECT_EQ(flash.start_erase(kApp + 0x100, 0x1000), FlashResult::kInvalidArgument);
  EXPECT_EQ(flash.start_program(kApp + 0x10, filled(0).data()), FlashResult::kInvalidArgument);
  EXPECT_EQ(flash.violations().size(), 4U);
  EXPECT_EQ(flash.mutating_ops(), 0U);
  for (std::uint32_t size : {0x1000U, 0x8000U, 0x10000U}) {
    EXPECT_EQ(flash.start_erase(kApp + 0x10000, size), FlashResult::kOk);
    flash.busy();
    EXPECT_EQ(flash.erases(size), 1U);
  }
}

TEST(NorFlashFake, BusyForTheModelledTimeAndReadWhileBusyIsAViolation) {
  NorFlashFake flash(NorTiming::typical());
  ASSERT_EQ(flash.start_erase(kApp, 0x10000), FlashResult::kOk);
  EXPECT_TRUE(flash.busy());
  std::uint8_t byte = 0;
  EXPECT_EQ(flash.read(kApp, &byte, 1), FlashResult::kBusy);
  EXPECT_EQ(flash.start_program(kApp, filled(0).data()), FlashResult::kBusy);
  EXPECT_EQ(flash.violations().size(), 2U);
  flash.set_now(149'999);
  EXPECT_TRUE(flash.busy());
  flash.set_now(150'000);
  EXPECT_FALSE(flash.busy());
  EXPECT_EQ(flash.read(kApp, &byte, 1), FlashResult::kOk);
  EXPECT_EQ(flash.busy_time(), 150'000U);
  flash.set_timing(NorTiming::maximum());
  const auto page = filled(0);
  flash.start_program(kApp, page.data());
  EXPECT_EQ(flash.busy_until(), 153'000U);
}

TEST(NorFlashFake, ChangingThePageBufferWhileProgrammingIsAViolation) {
  NorFlashFake flash(NorTiming::typical());
  auto page = filled(0x0F);
  flash.start_program(kApp, page.data());
  page[3] = 0x00;
  finish_operation(flash);
  EXPECT_EQ(flash.violations().size(), 1U);
}

TEST(NorFlashFake, TouchingTheBootloaderRegionIsAViolation) {
  NorFlashFake flash;
  flash.start_erase(0x1'0000, 0x1000);
  flash.busy();
  const auto page = filled(0);
  flash.start_program(0x1'F000, page.data());
  flash.busy();
  EXPECT_EQ(flash.violations().size(), 2U);
}

TEST(NorFlashFake, PowerCutBeforeAnOperationLeavesTheFlashUnchangedAndDead) {
  NorFlashFake flash;
  flash.cut_power_at(2, NorFlashFake::Cut::kBefore);
  const auto zeros = filled(0x00);
  flash.start_program(kApp, zeros.data());
  flash.busy();
  flash.start_program(kApp + 256, zeros.data());
  EXPECT_TRUE(flash.power_lost());
  EXPECT_EQ(flash.contents()[kApp], 0x00);
  EXPECT_EQ(flash.contents()[kApp + 256], 0xFF);
  std::uint8_t byte = 0;
  EXPECT_EQ(flash.read(kApp, &byte, 1), FlashResult::kFailed);
  flash.power_on();
  EXPECT_EQ(flash.read(kApp, &byte, 1), FlashResult::kOk);
}

TEST(NorFlashFake, PowerCutMidProgramTearsThePage) {
  NorFlashFake flash;
  flash.cut_power_at(1, NorFlashFake::Cut::kMidOperation, 0.5);
  flash.start_program(kApp, filled(0x00).data());
  EXPECT_TRUE(flash.power_lost());
  // Half of the 2048 bits are cleared: the first 128 bytes.
  EXPECT_EQ(flash.contents()[kApp], 0x00);
  EXPECT_EQ(flash.contents()[kApp + 127], 0x00);
  EXPECT_EQ(flash.contents()[kApp + 128], 0xFF);
}

TEST(NorFlashFake, PowerCutMidEraseLeavesAPartlyErasedSector) {
  NorFlashFake flash;
  const auto zeros = filled(0x00);
  for (std::uint32_t at = 0; at < 0x1000; at += 256) {
    flash.start_program(kApp + at, zeros.data());
    flash.busy();
  }
  flash.cut_power_at(1, NorFlashFake::Cut::kMidOperation, 0.25);
  flash.start_erase(kApp, 0x1000);
  EXPECT_EQ(flash.contents()[kApp], 0xFF);
  EXPECT_EQ(flash.contents()[kApp + 0x3FF], 0xFF);
  EXPECT_EQ(flash.contents()[kApp + 0x400], 0x00);
}

TEST(NorFlashFake, InjectedFailureIsReportedAndNothingChanges) {
  NorFlashFake flash;
  flash.fail_operation_at(1);
  const auto zeros = filled(0x00);
  flash.start_program(kApp, zeros.data());
  EXPECT_FALSE(flash.busy());
  EXPECT_EQ(flash.last_result(), FlashResult::kFailed);
  EXPECT_EQ(flash.contents()[kApp], 0xFF);
}

}  // namespace
}  // namespace rtcanboot::test
