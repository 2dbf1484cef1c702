// Bit-accurate length of classic CAN frames on the wire, stuff bits included. Used by the twin's
// bus, the core throughput benchmark and the bus-limit figures of script/bench, so all three
// count the same bits.
#pragma once

#include <cstdint>

#include "rtcanboot/types.hpp"

namespace rtcanboot::can_timing {

// Intermission between frames (bits of recessive level after EOF).
inline constexpr std::uint32_t kInterframeBits = 3;

// Bits from SOF to the end of EOF, with the stuff bits the frame's content produces.
std::uint32_t frame_bits(const CanFrame& frame);

// frame_bits plus intermission: the bus time a frame occupies back to back with the next one.
inline std::uint32_t frame_slot_bits(const CanFrame& frame) {
  return frame_bits(frame) + kInterframeBits;
}

// Duration of `bits` at `bitrate` bit/s in nanoseconds.
inline std::uint64_t bits_to_ns(std::uint64_t bits, std::uint32_t bitrate) {
  return bits * 1'000'000'000ULL / bitrate;
}

// The CRC-15 of the CAN protocol over the given bits (exposed for tests).
std::uint16_t crc15(const std::uint8_t* bits, std::uint32_t count);

}  // namespace rtcanboot::can_timing
