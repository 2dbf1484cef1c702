#include "rtcanboot/can_timing.hpp"

namespace rtcanboot::can_timing {

namespace {

// Up to SOF(1) + ID/arbitration/control (39 with extended id) + 64 data + 15 CRC bits.
constexpr std::uint32_t kMaxStuffedRegion = 1 + 39 + 64 + 15;

struct BitWriter {
  std::uint8_t bits[kMaxStuffedRegion] = {};
  std::uint32_t count = 0;
  void put(std::uint32_t value, std::uint32_t width) {
    for (std::uint32_t i = width; i > 0; --i)
      bits[count++] = static_cast<std::uint8_t>((value >> (i - 1)) & 1U);
  }
};

}  // namespace

std::uint16_t crc15(const std::uint8_t* bits, std::uint32_t count) {
  std::uint16_t crc = 0;
  for (std::uint32_t i = 0; i < count; ++i) {
    const bool next = ((crc >> 14) & 1U) != bits[i];
    crc = static_cast<std::uint16_t>((crc << 1) & 0x7FFFU);
    if (next) crc ^= 0x4599U;
  }
  return crc;
}

std::uint32_t frame_bits(const CanFrame& frame) {
  BitWriter w;
  const std::uint32_t dlc = frame.dlc > 8 ? 8U : frame.dlc;
  w.put(0, 1);  // SOF
  if (frame.extended()) {
    w.put((frame.id >> 18) & 0x7FFU, 11);  // base id
    w.put(1, 1);                           // SRR
    w.put(1, 1);                           // IDE
    w.put(frame.id & 0x3FFFFU, 18);        // id extension
    w.put(frame.remote() ? 1U : 0U, 1);    // RTR
    w.put(0, 2);                           // r1, r0
  } else {
    w.put(frame.id & 0x7FFU, 11);
    w.put(frame.remote() ? 1U : 0U, 1);  // RTR
    w.put(0, 1);                         // IDE
    w.put(0, 1);                         // r0
  }
  w.put(frame.dlc & 0xFU, 4);
  if (!frame.remote()) {
    for (std::uint32_t i = 0; i < dlc; ++i) w.put(frame.data[i], 8);
  }
  w.put(crc15(w.bits, w.count), 15);

  // Stuffing: after five equal bits the transmitter inserts a complement, which itself counts
  // towards the next run.
  std::uint32_t stuff = 0;
  std::uint32_t run = 0;
  std::uint8_t last = 2;
  for (std::uint32_t i = 0; i < w.count; ++i) {
    if (w.bits[i] == last) {
      ++run;
    } else {
      last = w.bits[i];
      run = 1;
    }
    if (run == 5) {
      ++stuff;
      last = static_cast<std::uint8_t>(1U - last);
      run = 1;
    }
  }
  // CRC delimiter, ACK slot, ACK delimiter, 7 EOF bits are not stuffed.
  return w.count + stuff + 1 + 1 + 1 + 7;
}

}  // namespace rtcanboot::can_timing
