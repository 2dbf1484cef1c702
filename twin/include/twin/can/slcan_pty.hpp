// The twin's bus presented as an slcan (Lawicel) serial adapter on a pseudo-terminal
// (`rtcanboot-twin --slcan-pty`): programs open the pty's slave (/dev/pts/N) as they would a
// USB-serial CAN adapter, directly (`rtcanboot --bus slcan:///dev/pts/N`) or through the kernel
// (`slcand ... /dev/pts/N slcan0`). One node on the twin's bus stands for the adapter. Virtual
// time follows wall-clock time. docs/twin.md.
#pragma once

#include <cstdint>
#include <string>

#include "twin/can/bus.hpp"
#include "twin/can/pacer.hpp"
#include "twin/peripheral.hpp"

namespace rtcanboot::twin::can {

struct SlcanPtyStats {
  std::uint64_t to_serial = 0;    // bus frames written to the pty
  std::uint64_t from_serial = 0;  // frames the program sent through the adapter
  std::uint64_t errors = 0;       // commands answered with BEL
  std::uint64_t dropped = 0;      // bus frames lost while the channel was closed or the pty full
};

class SlcanPty {
 public:
  SlcanPty(Bus& bus, Reporter& reporter);
  ~SlcanPty();
  SlcanPty(const SlcanPty&) = delete;
  SlcanPty& operator=(const SlcanPty&) = delete;

  // Opens the pty pair; false (and a message) when the system has none.
  bool start(std::string* error);
  const std::string& slave_path() const { return slave_; }

  // Without blocking: parses what the program wrote, writes what the bus carried.
  void poll();
  // Real-time pacing (see SocketcanBridge::pace).
  Nanos pace(Nanos target);

  bool channel_open() const { return open_; }
  const SlcanPtyStats& stats() const { return stats_; }

 private:
  void handle(const std::string& line);
  void reply(const std::string& text);
  void flush();

  Bus& bus_;
  Reporter& reporter_;
  Endpoint endpoint_;
  WallClockPacer pacer_;
  int master_ = -1;
  int slave_keep_ = -1;  // kept open so the pty survives programs closing it
  std::string slave_;
  std::string in_;
  std::string out_;
  bool open_ = false;
  std::uint32_t bitrate_ = 0;  // from Sn; 0 = not set
  SlcanPtyStats stats_;
};

}  // namespace rtcanboot::twin::can
