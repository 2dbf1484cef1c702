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

// ---- socketcand (TCP, rawmode) ----
// "< send 123 2 11 22 >"
std::string socketcand_encode_send(const CanFrame& frame);
// Parses the inside of one "< ... >" message ("frame 123 1.5 1122"); std::nullopt if it is
// not a frame message.
std::optional<CanFrame> socketcand_decode_frame(std::string_view message);
std::unique_ptr<Transport> open_socketcand(const std::string& host, std::uint16_t port,
                                           const std::string& channel);

}  // namespace rtcanboot::host
