// libFuzzer target: the read loops of the slcan and socketcand transports, on a fake device (one
// end of a socketpair) that streams the fuzz input. The first byte picks the transport and
// whether the device then goes quiet or hangs up:
//   bit 0: 0 slcan (channel already open), 1 socketcand (greeting, open, rawmode first)
//   bit 1: 1 = the device closes after the input, 0 = it stays connected and silent
//
// Invariants: the transport returns frames, status or "nothing by the deadline", or throws a bus
// error naming the device (never anything else, never hangs: every receive has a deadline in the
// past or 1 ms ahead, and the loop ends after a bounded number of calls); frames are well formed;
// at most one frame per 5 input bytes (the shortest frame, "t0000\r", has 6).
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <string>

#include "fd_transports.hpp"
#include "rtcanboot/host/error.hpp"
#include "rtcanboot/host/transports.hpp"

#include "fuzz_check.hpp"

using namespace rtcanboot;
using namespace rtcanboot::host;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // The whole input must fit the socket buffer: the harness writes it before reading anything.
  if (size < 1 || size > 16384) return 0;
  const bool socketcand = (data[0] & 1) != 0;
  const bool hang_up = (data[0] & 2) != 0;
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) return 0;
  detail::Fd device(fds[1]);
  ::fcntl(fds[0], F_SETFL, ::fcntl(fds[0], F_GETFL) | O_NONBLOCK);
  const char* bytes = reinterpret_cast<const char*>(data) + 1;
  std::size_t left = size - 1;
  while (left > 0) {
    const ssize_t n = ::send(device.get(), bytes, left, MSG_NOSIGNAL);
    if (n <= 0) break;
    bytes += n;
    left -= static_cast<std::size_t>(n);
  }
  if (hang_up) ::shutdown(device.get(), SHUT_WR);
  const std::string name = socketcand ? "socketcand://fuzz:1/can0" : "slcan://fuzz?bitrate=500000";
  std::size_t frames = 0;
  try {
    detail::Fd transport_end(fds[0]);
    // A silent device fails the socketcand handshake after 2 ms (3 s in the tool).
    auto t = socketcand
                 ? detail::socketcand_on_fd(std::move(transport_end), "fuzz", 1, "can0", 2000)
                 : detail::slcan_on_fd(std::move(transport_end), "fuzz", 500000, false);
    FUZZ_CHECK(t->describe() == name);
    // Past the input, each call returns "nothing" at its deadline: the loop must end.
    int quiet = 0;
    for (std::size_t calls = 0; calls < size + 16 && quiet < 2; ++calls) {
      const auto ev = t->receive(t->clock().now() + (calls % 2 == 0 ? 0 : 1000));
      quiet = ev ? 0 : quiet + 1;
      if (!ev) continue;
      if (ev->kind == RxEvent::Kind::kFrame) {
        ++frames;
        FUZZ_CHECK(ev->frame.dlc <= 8);
        FUZZ_CHECK(ev->frame.extended() ? ev->frame.id <= 0x1FFF'FFFFU : ev->frame.id <= 0x7FFU);
      }
    }
  } catch (const Error& e) {
    FUZZ_CHECK(e.kind() == ErrorKind::kBus);
    FUZZ_CHECK(std::string(e.what()).rfind(name + ": ", 0) == 0);
  }
  FUZZ_CHECK(frames * 5 <= size);
  return 0;
}
