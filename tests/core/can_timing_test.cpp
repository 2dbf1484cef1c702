#include "rtcanboot/can_timing.hpp"

#include <gtest/gtest.h>

namespace rtcanboot::can_timing {
namespace {

CanFrame make(std::uint32_t id, std::uint8_t dlc, std::uint8_t fill) {
  CanFrame f;
  f.id = id;
  f.dlc = dlc;
  for (auto& b : f.data) b = fill;
  return f;
}

// Without stuffing a standard 8-byte data frame is 108 bits (reference notes, §4); stuffing can
// only add bits, at most one per four after the first five in the 98-bit stuffed region.
TEST(CanTiming, StandardFrameBounds) {
  for (std::uint32_t id : {0x000U, 0x123U, 0x581U, 0x7FFU}) {
    for (std::uint8_t fill : {0x00, 0x55, 0xAA, 0xFF, 0x0F}) {
      const std::uint32_t bits = frame_bits(make(id, 8, fill));
      EXPECT_GE(bits, 108U);
      EXPECT_LE(bits, 108U + 24U);
    }
  }
}

TEST(CanTiming, AllZeroPayloadIsHeavilyStuffed) {
  // 64 zero data bits alone produce at least 64/4 = 16 stuff bits.
  EXPECT_GE(frame_bits(make(0x000, 8, 0x00)), 108U + 16U);
}

TEST(CanTiming, AlternatingPayloadNeedsLittleStuffing) {
  EXPECT_LE(frame_bits(make(0x555, 8, 0x55)), 108U + 6U);
}

TEST(CanTiming, EmptyFrameLength) {
  // SOF + 11 id + RTR + IDE + r0 + 4 DLC + 15 CRC + 3 + 7 = 44 bits before stuffing.
  const std::uint32_t bits = frame_bits(make(0x555, 0, 0));
  EXPECT_GE(bits, 44U);
  EXPECT_LE(bits, 44U + 8U);
}

TEST(CanTiming, ExtendedFrameIsLonger) {
  CanFrame f = make(0x1234567, 8, 0x55);
  f.flags = CanFrame::kExtended;
  EXPECT_GE(frame_bits(f), 128U);
}

TEST(CanTiming, Crc15OfKnownSequence) {
  // All-zero input leaves the CRC register at zero; a single 1 bit yields the polynomial.
  const std::uint8_t zeros[8] = {};
  EXPECT_EQ(crc15(zeros, 8), 0U);
  const std::uint8_t one[1] = {1};
  EXPECT_EQ(crc15(one, 1), 0x4599U);
}

TEST(CanTiming, BitsToNanoseconds) {
  EXPECT_EQ(bits_to_ns(111, 1'000'000), 111'000U);
  EXPECT_EQ(bits_to_ns(1, 125'000), 8'000U);
}

}  // namespace
}  // namespace rtcanboot::can_timing
