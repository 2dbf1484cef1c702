// A socketcand-compatible TCP server on loopback that joins a twin::can::Bus as one node (like
// socketcand on a host whose SocketCAN interface sits on the bus). Speaks the raw mode of
// linux-can/socketcand as python-can's `socketcand` interface (python-can 4.1) and the host tool
// use it: "< hi >", "< open CHANNEL >", "< ok >", "< rawmode >", "< send ID DLC B0 .. >",
// "< frame ID SECONDS.USECS DATA >". Single-threaded: the simulation's run loop calls poll() and
// pace(). See docs/twin-can.md.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "twin/can/bus.hpp"
#include "twin/can/pacer.hpp"
#include "twin/peripheral.hpp"

namespace rtcanboot::twin::can {

struct SocketcandOptions {
  std::string host = "127.0.0.1";  // loopback only unless told otherwise
  std::uint16_t port = 29536;      // 0 = any free port (see port())
  std::string channel = "can0";    // the bus name clients must "open"
  enum class Pacing {
    kWhileConnected,  // virtual time follows wall-clock time while a client is connected
    kAlways,          // always (a client can join at any time and see a live bus)
    kNever,           // never (tests that drive the socket themselves)
  };
  Pacing pacing = Pacing::kWhileConnected;
  // Frames for a client are held this long (wall time) after the "< ok >" answering its
  // "< rawmode >": python-can 4.1 reads that "< ok >" with a single recv() and fails when a frame
  // arrives in the same read.
  std::chrono::milliseconds rawmode_settle{50};
  // Put a space before each "< frame >" after the first one sent to a client. python-can 4.1
  // drops one character after the last complete element of every read; with the space that
  // character is the separator instead of the "<" of a frame split across two reads.
  bool frame_separator = true;
  // When the simulation falls behind the wall clock by more than this (a slow stretch, a
  // debugger pause), pacing restarts from the current moment instead of letting virtual time
  // race to catch up.
  std::chrono::milliseconds max_lag{100};  // see WallClockPacer
  // pace() lets no virtual time pass until the first client is in raw mode (it waits at most
  // 100 ms per call and returns the current time, so the caller's loop stays responsive). For
  // tools that must see a node's first frames, e.g. its boot-up message.
  bool hold_until_client = false;
};

class SocketcandServer {
 public:
  SocketcandServer(Bus& bus, Reporter& reporter, SocketcandOptions options = {});
  ~SocketcandServer();
  SocketcandServer(const SocketcandServer&) = delete;
  SocketcandServer& operator=(const SocketcandServer&) = delete;

  // Binds and listens. False (and `error`) when the address cannot be used.
  bool start(std::string* error = nullptr);
  void stop();
  std::uint16_t port() const { return port_; }

  std::size_t clients() const;
  std::size_t raw_clients() const;  // clients in raw mode (they receive frames)

  // Services the sockets without blocking: accepts clients, parses their commands (frames they
  // send are queued on the server's bus node at the current virtual time) and writes output.
  void poll();

  // Real-time pacing. Returns the virtual time the caller may advance the clock to (<= target).
  // When pacing is active it blocks until the wall clock reaches the moment that corresponds to
  // `target`; it returns earlier, with the virtual time of that moment, when a client sent
  // something (call poll() after advancing the clock to the returned time).
  Nanos pace(Nanos target);
  bool pacing_active() const;

  // Blocks, servicing the sockets, until a client is in raw mode or `timeout` passes.
  bool wait_for_client(std::chrono::milliseconds timeout);

  // The server's node on the bus (its counters, what it transmitted).
  Endpoint& endpoint() { return endpoint_; }

 private:
  struct Client;
  void accept_clients();
  void read_client(Client& client);
  void handle_command(Client& client, const std::string& element);
  void send_text(Client& client, const std::string& text);
  void queue_frame(Client& client, const std::string& text);
  void flush(Client& client);
  void on_bus_frame(const TimedFrame& frame, const Client* origin);
  void close_dead();
  int wait_fds(int timeout_us);
  std::chrono::steady_clock::time_point next_settle_deadline() const;

  Bus& bus_;
  Reporter& reporter_;
  SocketcandOptions options_;
  Endpoint endpoint_;
  int listen_fd_ = -1;
  std::uint16_t port_ = 0;
  std::vector<std::unique_ptr<Client>> clients_;
  std::uint64_t next_client_id_ = 1;
  std::deque<std::uint64_t> tx_origin_;  // client id of each frame queued on endpoint_
  bool client_seen_ = false;
  WallClockPacer pacer_;
};

// Text of one frame as socketcand sends it: "< frame 123 12.345678 11223344 >".
std::string socketcand_frame_text(const CanFrame& frame, Nanos at);

}  // namespace rtcanboot::twin::can
