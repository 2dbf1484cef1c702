// The file-descriptor transports on a descriptor that is already open (not a public header).
// The tests and the fuzz targets drive the transports' real read loops through a socketpair.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "fd_util.hpp"
#include "rtcanboot/host/transport.hpp"

namespace rtcanboot::host::detail {

// slcan on `fd`; `configure` sends C, Sn and O and checks the answers as open_slcan does, without
// it the channel counts as open. `device` names the connection in messages.
std::unique_ptr<Transport> slcan_on_fd(Fd fd, std::string device, std::uint32_t bitrate,
                                       bool configure);

// socketcand on a connected stream `fd`: greeting, open `channel`, rawmode, as open_socketcand,
// within `handshake_time` (open_socketcand: 3 s).
std::unique_ptr<Transport> socketcand_on_fd(Fd fd, std::string host, std::uint16_t port,
                                            std::string channel, Micros handshake_time);

}  // namespace rtcanboot::host::detail
