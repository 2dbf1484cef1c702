// One interface for every way to reach a CAN bus: SocketCAN, slcan serial adapters, socketcand
// over TCP and in-process simulations. A transport owns its notion of time: receive() waits
// until a deadline on the transport's own clock, which is the wall clock for real buses and
// virtual time for simulations (where waiting means running the simulation).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "rtcanboot/host/clock.hpp"
#include "rtcanboot/types.hpp"

namespace rtcanboot::host {

// Something the bus reported that is not a frame: error frames, controller state changes.
struct BusStatus {
  enum class Level { kInfo, kWarning, kError, kBusOff };
  Level level = Level::kInfo;
  std::string text;
};

struct RxEvent {
  enum class Kind { kFrame, kStatus };
  Kind kind = Kind::kFrame;
  CanFrame frame;
  BusStatus status;
  Micros timestamp = 0;  // transport clock when received
};

// Acceptance filter: a frame passes when (id & mask) == (filter.id & mask).
struct RxFilter {
  std::uint32_t id = 0;
  std::uint32_t mask = 0;
  bool extended = false;
};

class Transport {
 public:
  virtual ~Transport() = default;

  virtual Clock& clock() = 0;

  // Queues a frame for transmission. Throws Error(kBus) when the bus is unusable.
  virtual void send(const CanFrame& frame) = 0;

  // Returns the next received frame or status, waiting until `deadline` (transport clock) at
  // most; std::nullopt when the deadline passed. Throws Error(kBus) when the bus failed.
  virtual std::optional<RxEvent> receive(Micros deadline) = 0;

  // Hardware/kernel acceptance filters where the transport has them; an empty list receives
  // everything. Transports without filters ignore this (the master filters anyway).
  virtual void set_filters(std::span<const RxFilter> filters) { (void)filters; }

  // How long send() may wait for room in a transmit queue that stays full before it reports the
  // bus unusable (kBus); transports that wait use at least 1 s. The CLI makes it the SDO timeout
  // (--timeout): a queue may stall as long as a node may take to answer (a loaded machine, a slow
  // serial adapter) without the command failing.
  virtual void set_send_timeout(Micros timeout) { (void)timeout; }

  // For messages: "socketcan://can0", "slcan:///dev/ttyACM0 at 500000 bit/s", ...
  virtual std::string describe() const = 0;

  // The bus bit rate, where the transport knows it (slcan sets it, simulations have one);
  // std::nullopt otherwise. Timing that follows the bus (scan) assumes the slowest CiA rate then.
  virtual std::optional<std::uint32_t> bitrate() const { return std::nullopt; }

  // What the transport had to work around so far, for the user (e.g. "socketcan://vcan0: 12
  // frames were retried because the transmit queue was full (ENOBUFS)"); empty when nothing.
  virtual std::string workarounds() const { return {}; }
};

// A parsed bus URI (see docs/host-tool.md):
//   socketcan://IFACE
//   slcan://DEVICE?bitrate=N[&baud=N]     (DEVICE is an absolute path: slcan:///dev/ttyACM0)
//   socketcand://HOST:PORT/CHANNEL
//   sim://                                 (in-process simulation, for tests and benchmarks)
struct BusUri {
  enum class Scheme { kSocketCan, kSlcan, kSocketcand, kSim };
  Scheme scheme = Scheme::kSocketCan;
  std::string interface;  // socketcan interface, slcan device path, socketcand channel
  std::string host;       // socketcand
  std::uint16_t port = 29536;
  std::uint32_t bitrate = 0;  // slcan: 0 = leave the adapter's setting alone (default 500000)
  std::uint32_t serial_baud = 115200;  // slcan: serial line speed (ignored by USB CDC adapters)
};

// Throws Error(kUsage) with a one-line explanation for anything it does not understand.
BusUri parse_bus_uri(std::string_view text);
std::string to_string(const BusUri& uri);

// Opens the transport a URI names (sim:// is not openable here; tests build it directly).
std::unique_ptr<Transport> open_transport(const BusUri& uri);
std::unique_ptr<Transport> open_transport(std::string_view uri);

// "123#1122" style text for messages and logs.
std::string format_frame(const CanFrame& frame);

}  // namespace rtcanboot::host
