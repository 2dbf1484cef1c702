// The twin's bus joined to a Linux SocketCAN interface (`rtcanboot-twin --bus socketcan://IFACE`):
// one node on the twin's bus stands for everything on the interface. Frames other programs send
// on the interface (can-utils, the host tool, a CANopen master, another twin) are transmitted on
// the twin's bus; frames the twin's boards send are written to the interface. Error frames from
// the interface map onto the bus model. Virtual time follows wall-clock time. docs/twin.md.
#pragma once

#include <linux/can.h>

#include <cstdint>
#include <deque>
#include <string>

#include "twin/can/bus.hpp"
#include "twin/can/pacer.hpp"
#include "twin/peripheral.hpp"

namespace rtcanboot::twin::can {

struct SocketcanOptions {
  std::string interface = "vcan0";
  std::chrono::milliseconds max_lag{100};  // see WallClockPacer
  // Frames waiting for the interface's transmit queue (ENOBUFS) beyond this are dropped (counted).
  std::size_t max_pending = 4096;
};

struct SocketcanStats {
  std::uint64_t to_interface = 0;    // twin frames written to the interface
  std::uint64_t from_interface = 0;  // interface frames put on the twin's bus
  std::uint64_t error_frames = 0;    // error frames read from the interface
  std::uint64_t retries = 0;         // writes repeated because the transmit queue was full
  std::uint64_t dropped = 0;         // twin frames lost (interface down, queue overflow)
};

class SocketcanBridge {
 public:
  SocketcanBridge(Bus& bus, Reporter& reporter, SocketcanOptions options = {});
  ~SocketcanBridge();
  SocketcanBridge(const SocketcanBridge&) = delete;
  SocketcanBridge& operator=(const SocketcanBridge&) = delete;

  // Opens and binds the CAN_RAW socket. False (and a message saying what is wrong and what to do)
  // when the kernel has no SocketCAN, the interface is missing, is not a CAN interface or is down.
  bool start(std::string* error);

  // Without blocking: frames from the interface go onto the twin's bus (at the current virtual
  // time), queued twin frames go to the interface.
  void poll();

  // Real-time pacing (always on): the virtual time the caller may advance to (<= target); waits
  // until the wall clock reaches it, or returns earlier when the interface has input.
  Nanos pace(Nanos target);

  // The interface disappeared (unregistered): the bridge cannot go on.
  bool failed() const { return !failure_.empty(); }
  const std::string& failure() const { return failure_; }

  const SocketcanStats& stats() const { return stats_; }
  Endpoint& endpoint() { return endpoint_; }
  const std::string& interface() const { return options_.interface; }
  unsigned long long pacing_restarts() const { return pacer_.restarts(); }

 private:
  void read_interface();
  void flush();
  void on_error_frame(const ::can_frame& frame);
  void on_read_error(int err);

  Bus& bus_;
  Reporter& reporter_;
  SocketcanOptions options_;
  Endpoint endpoint_;
  WallClockPacer pacer_;
  int fd_ = -1;
  std::deque<::can_frame> out_;
  bool down_ = false;
  std::string failure_;
  SocketcanStats stats_;
};

// The SocketCAN frame for a twin frame and back (standard/extended ids, RTR, DLC <= 8).
::can_frame to_socketcan(const CanFrame& frame);
CanFrame from_socketcan(const ::can_frame& frame);

}  // namespace rtcanboot::twin::can
