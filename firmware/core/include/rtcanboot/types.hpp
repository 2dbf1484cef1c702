// Basic vocabulary shared by the firmware core, the host tool and the twin.
#pragma once

#include <cstddef>
#include <cstdint>

namespace rtcanboot {

// Monotonic time in microseconds. 64 bits so it never wraps in a device's lifetime.
using Micros = std::uint64_t;

constexpr Micros milliseconds(std::uint64_t ms) {
  return ms * 1000U;
}

// A classic CAN frame (11- or 29-bit identifier, up to 8 data bytes).
struct CanFrame {
  static constexpr std::uint8_t kExtended = 0x01;  // 29-bit identifier
  static constexpr std::uint8_t kRemote = 0x02;    // remote transmission request

  std::uint32_t id = 0;
  std::uint8_t dlc = 0;
  std::uint8_t flags = 0;
  std::uint8_t data[8] = {};

  bool extended() const { return (flags & kExtended) != 0; }
  bool remote() const { return (flags & kRemote) != 0; }
};

// Where the core sends frames. The port queues them for the controller; a false return means
// the queue is full and the frame is dropped (the CANopen master recovers through SDO timeouts).
class FrameSink {
 public:
  virtual bool send(const CanFrame& frame) = 0;
  // Sends a frame that makes any earlier one sent this way with the same identifier out of date
  // (a heartbeat). A sink with a transmit queue replaces such a frame that is still waiting (in
  // the queue or in a transmit mailbox it can abort) instead of adding a second one, so that a
  // bus that was saturated never gets stale copies back to back. Without a queue: send().
  virtual bool send_latest(const CanFrame& frame) { return send(frame); }

 protected:
  ~FrameSink() = default;
};

}  // namespace rtcanboot
