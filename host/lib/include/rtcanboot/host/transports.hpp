// The concrete transports. Each also exposes its wire encoding as plain functions so tests can
// check it without hardware.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "rtcanboot/host/transport.hpp"

struct can_frame;  // <linux/can.h>

namespace rtcanboot::host {

// ---- SocketCAN (Linux kernel CAN stack: every adapter with a kernel driver, vcan, slcand) ----
std::unique_ptr<Transport> open_socketcan(const std::string& interface);
// struct can_frame <-> CanFrame / BusStatus (error frames, CAN_ERR_FLAG).
void socketcan_encode(const CanFrame& frame, ::can_frame& out);
RxEvent socketcan_decode(const ::can_frame& in);
// The text of an error frame (controller problems, bus-off, missing ACK, ...).
BusStatus socketcan_error_status(const ::can_frame& in);
// What an RTM_NEWLINK answer says about a CAN interface: its kind ("can", "vcan", "vxcan", ...)
// and, for a controller with bit timing, its bit rate (0 when the answer has none).
struct SocketcanLink {
  std::string kind;
  std::uint32_t bitrate = 0;
};
SocketcanLink socketcan_parse_link(const std::uint8_t* message, std::size_t size);

// ---- slcan / Lawicel ASCII protocol over a serial device ----
// S-command index for a CiA bit rate (10k..1M); std::nullopt for others.
std::optional<int> slcan_bitrate_code(std::uint32_t bitrate);
// "t1232AABB\r" etc. Throws std::invalid_argument for a dlc > 8.
std::string slcan_encode(const CanFrame& frame);
// Parses one received line without its '\r' ("t...", "T...", "r...", "R..."); std::nullopt if
// it is not a well-formed frame.
std::optional<CanFrame> slcan_decode(std::string_view line);
std::unique_ptr<Transport> open_slcan(const std::string& device, std::uint32_t bitrate,
                                      std::uint32_t serial_baud);

// The bounded receive buffer of the line-based transports (slcan, socketcand): bytes in, junk
// counted. `junk_limit` bytes of junk without one valid item in between end the connection with
// Error(kBus) "<source>: received N bytes that are <not_what>".
class RxBuffer {
 public:
  RxBuffer(std::string source, std::size_t junk_limit, std::string not_what)
      : source_(std::move(source)), junk_limit_(junk_limit), not_what_(std::move(not_what)) {}
  void feed(std::string_view bytes) { buf_.append(bytes); }
  void clear() { buf_.clear(); }
  std::size_t buffered() const { return buf_.size(); }
  std::size_t junk() const { return junk_; }

 protected:
  void add_junk(std::size_t n);  // throws at the limit
  void valid() { junk_ = 0; }
  // An incomplete item longer than `max` can no longer become a valid one: dropped as junk.
  void drop_if_longer(std::size_t max);
  std::string buf_;

 private:
  std::string source_;
  std::size_t junk_limit_;
  std::string not_what_;
  std::size_t junk_ = 0;
};

// What an slcan adapter sends, one item at a time.
struct SlcanItem {
  enum class Kind {
    kFrame,    // t/T/r/R
    kOk,       // an empty line: a command succeeded
    kBell,     // '\a': a command failed, or the adapter's transmit queue is full
    kStatus,   // "Fxx" status flags
    kAck,      // z/Z transmit confirmation
    kVersion,  // "Vhhss": the answer to V, which the set-up uses to tell old answers from new
  };
  Kind kind = Kind::kOk;
  CanFrame frame;          // kFrame
  std::uint8_t flags = 0;  // kStatus
};

// The receive side of an slcan connection: bytes in, items out. The buffer is bounded: it never
// holds more than one incomplete line of kMaxLine bytes (plus what the last feed() brought).
// Lines that are not slcan (line noise) are skipped as junk; kJunkLimit bytes of
// junk without one valid item in between (a wrong serial speed, a device that is not an slcan
// adapter, /dev/zero) end the connection with Error(kBus) naming `source`.
class SlcanReader final : public RxBuffer {
 public:
  static constexpr std::size_t kMaxLine = 64;  // the longest valid line is 30 characters
  static constexpr std::size_t kJunkLimit = 1024;

  explicit SlcanReader(std::string source);
  std::optional<SlcanItem> next();
};

// ---- socketcand (TCP, rawmode) ----
// "< send 123 2 11 22 >"
std::string socketcand_encode_send(const CanFrame& frame);
// Parses the inside of one "< ... >" message ("frame 123 1.5 1122"); std::nullopt if it is
// not a frame message.
std::optional<CanFrame> socketcand_decode_frame(std::string_view message);
std::unique_ptr<Transport> open_socketcand(const std::string& host, std::uint16_t port,
                                           const std::string& channel);

// A socketcand channel name: what socketcand accepts as an interface name (1..15 characters,
// letters, digits, '_', '-', '.'). Anything else (spaces, '<', '>') could inject commands.
bool socketcand_channel_valid(std::string_view channel);

// The receive side of a socketcand connection: bytes in, the insides of "< ... >" messages out
// (trimmed). Bounded like SlcanReader: a message longer than kMaxMessage, bytes outside messages
// and messages a raw-mode server never sends count as junk, and kJunkLimit bytes of junk without
// one valid message ("hi", "ok", "error ...", "echo", "frame ...") end the connection with
// Error(kBus) naming `source`.
class SocketcandReader final : public RxBuffer {
 public:
  static constexpr std::size_t kMaxMessage = 256;
  static constexpr std::size_t kJunkLimit = 4096;

  explicit SocketcandReader(std::string source);
  std::optional<std::string> next();
};

}  // namespace rtcanboot::host
