// socketcand server: handshake, raw mode frames in both directions, the socketcand text format,
// echo-less delivery between several clients, syntax errors.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "can_test_support.hpp"
#include "twin/can/bus.hpp"
#include "twin/can/socketcand.hpp"

namespace rtcanboot::twin::can {
namespace {

using testing::FakeClock;
using testing::RecordingReporter;

struct ServerRig {
  ServerRig() : bus(clock, reporter, 1'000'000) {
    SocketcandOptions o;
    o.port = 0;
    o.pacing = SocketcandOptions::Pacing::kNever;
    o.rawmode_settle = std::chrono::milliseconds(0);
    server = std::make_unique<SocketcandServer>(bus, reporter, o);
    std::string error;
    EXPECT_TRUE(server->start(&error)) << error;
    bus.attach(device);
  }
  // Advance virtual time and service the sockets.
  void step(Nanos d = 1'000'000) {
    server->poll();
    clock.run_for(d);
    server->poll();
  }
  FakeClock clock;
  RecordingReporter reporter;
  Bus bus;
  Endpoint device{"device"};
  std::unique_ptr<SocketcandServer> server;
};

class TestClient {
 public:
  explicit TestClient(std::uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    ::inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  }
  ~TestClient() { ::close(fd_); }
  bool connected() const { return connected_; }
  int fd() const { return fd_; }
  void send(const std::string& s) {
    ASSERT_EQ(::send(fd_, s.data(), s.size(), 0), static_cast<ssize_t>(s.size()));
  }
  // Reads what is available, servicing the server meanwhile, until `text` appears or timeout.
  std::string read_until(ServerRig& rig, const std::string& text, int max_ms = 2000) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(max_ms);
    while (buffer_.find(text) == std::string::npos && std::chrono::steady_clock::now() < deadline) {
      rig.step(10'000);
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 5) > 0) {
        char b[1024];
        const ssize_t n = ::recv(fd_, b, sizeof b, 0);
        if (n > 0) buffer_.append(b, static_cast<std::size_t>(n));
      }
    }
    const std::size_t at = buffer_.find(text);
    if (at == std::string::npos) return buffer_;
    std::string got = buffer_.substr(0, at + text.size());
    buffer_.erase(0, at + text.size());
    return got;
  }
  // Everything that arrives within `ms`.
  std::string drain(ServerRig& rig, int ms) {
    read_until(rig, "\x01never\x01", ms);
    std::string all = buffer_;
    buffer_.clear();
    return all;
  }
  void open_raw(ServerRig& rig) {
    EXPECT_EQ(read_until(rig, "< hi >"), "< hi >");
    send("< open can0 >");
    EXPECT_EQ(read_until(rig, "< ok >"), "< ok >");
    send("< rawmode >");
    EXPECT_EQ(read_until(rig, "< ok >"), "< ok >");
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
  std::string buffer_;
};

CanFrame make(std::uint32_t id, std::initializer_list<std::uint8_t> data, std::uint8_t flags = 0) {
  CanFrame f;
  f.id = id;
  f.flags = flags;
  f.dlc = static_cast<std::uint8_t>(data.size());
  std::size_t i = 0;
  for (std::uint8_t b : data) f.data[i++] = b;
  return f;
}

TEST(Socketcand, FrameTextMatchesSocketcand) {
  EXPECT_EQ(socketcand_frame_text(make(0x581, {0x43, 0x00, 0x10}), 12'345'678'000ULL),
            "< frame 581 12.345678 430010 >");
  EXPECT_EQ(socketcand_frame_text(make(0x701, {}), 1'000'000ULL), "< frame 701 0.001000  >");
  EXPECT_EQ(socketcand_frame_text(make(0x1ABCDEF, {0xFF}, CanFrame::kExtended), 0),
            "< frame 01ABCDEF 0.000000 FF >");
  EXPECT_EQ(socketcand_frame_text(make(0x123, {}, CanFrame::kRemote), 0), "< rtr 123 0.000000 0 >");
}

TEST(Socketcand, HandshakeAndOpenOfUnknownChannel) {
  ServerRig rig;
  TestClient c(rig.server->port());
  ASSERT_TRUE(c.connected());
  EXPECT_EQ(c.read_until(rig, "< hi >"), "< hi >");
  c.send("< rawmode >");
  EXPECT_NE(c.read_until(rig, ">").find("< error"), std::string::npos);
  c.send("< open can7 >");
  EXPECT_NE(c.read_until(rig, ">").find("< error"), std::string::npos);
  c.send("< open can0 >");
  EXPECT_EQ(c.read_until(rig, ">"), "< ok >");
  c.send("< echo >");
  EXPECT_EQ(c.read_until(rig, ">"), "< echo >");
  c.send("< rawmode >");
  EXPECT_EQ(c.read_until(rig, ">"), "< ok >");
  c.send("< subscribe 0 0 123 >");
  EXPECT_EQ(c.read_until(rig, ">"), "< error unknown command >");
  EXPECT_EQ(rig.server->raw_clients(), 1U);
}

TEST(Socketcand, FramesFlowBothWaysInRawMode) {
  ServerRig rig;
  TestClient c(rig.server->port());
  c.open_raw(rig);
  rig.device.send(make(0x701, {0x00}));
  const std::string got = c.read_until(rig, " >");
  EXPECT_NE(got.find("< frame 701 0."), std::string::npos) << got;
  EXPECT_NE(got.find(" 00 >"), std::string::npos) << got;
  // python-can 4.1 style: hex DLC and unpadded lower-case bytes.
  c.send("< send 601 8 40 0 10 0 0 0 0 0 >");
  c.send("< send 12345 1 aa >");   // > 0x7FF: extended
  c.send("< send 00000123 0  >");  // 8 digits: extended (socketcand rule)
  c.send("< sendrtr 7E5 0 >");
  c.read_until(rig, "\x01", 200);
  rig.step(2'000'000);
  auto f1 = rig.device.receive();
  ASSERT_TRUE(f1);
  EXPECT_EQ(f1->frame.id, 0x601U);
  EXPECT_FALSE(f1->frame.extended());
  EXPECT_EQ(f1->frame.dlc, 8);
  EXPECT_EQ(f1->frame.data[0], 0x40);
  EXPECT_EQ(f1->frame.data[2], 0x10);
  auto f2 = rig.device.receive();
  ASSERT_TRUE(f2);
  EXPECT_EQ(f2->frame.id, 0x12345U);
  EXPECT_TRUE(f2->frame.extended());
  EXPECT_EQ(f2->frame.data[0], 0xAA);
  auto f3 = rig.device.receive();
  ASSERT_TRUE(f3);
  EXPECT_EQ(f3->frame.id, 0x123U);
  EXPECT_TRUE(f3->frame.extended());
  EXPECT_EQ(f3->frame.dlc, 0);
  auto f4 = rig.device.receive();
  ASSERT_TRUE(f4);
  EXPECT_TRUE(f4->frame.remote());
}

TEST(Socketcand, SyntaxErrorsAreReportedAndNothingIsSent) {
  ServerRig rig;
  TestClient c(rig.server->port());
  c.open_raw(rig);
  c.send("< send 601 3 1 2 >");  // DLC says 3, two bytes
  c.send("< send 601 9 >");      // DLC > 8
  c.send("< send xyz 1 00 >");   // not hex
  c.send("< send 601 1 100 >");  // byte > 0xFF
  c.read_until(rig, "\x01", 200);
  rig.step(1'000'000);
  EXPECT_EQ(rig.device.rx_pending(), 0U);
  std::size_t syntax = 0;
  for (const auto& e : rig.reporter.entries)
    syntax += e.message.find("syntax error") != std::string::npos ? 1U : 0U;
  EXPECT_EQ(syntax, 4U);
}

TEST(Socketcand, SeveralClientsSeeEachOthersFramesButNotTheirOwn) {
  ServerRig rig;
  TestClient a(rig.server->port());
  TestClient b(rig.server->port());
  a.open_raw(rig);
  b.open_raw(rig);
  EXPECT_EQ(rig.server->raw_clients(), 2U);
  a.send("< send 181 1 11 >");
  const std::string at_b = b.read_until(rig, " >");
  EXPECT_NE(at_b.find("< frame 181 "), std::string::npos) << at_b;
  EXPECT_NE(at_b.find(" 11 >"), std::string::npos);
  const std::string at_a = a.drain(rig, 100);
  EXPECT_EQ(at_a.find("181"), std::string::npos) << at_a;  // no echo to the sender
  EXPECT_EQ(rig.device.rx_pending(), 1U);
  // Frames after the first one to a client are separated by a space (python-can 4.1 workaround).
  rig.device.send(make(0x702, {1}));
  rig.device.send(make(0x703, {2}));
  const std::string two = b.read_until(rig, "703 ");
  EXPECT_NE(two.find(" > < frame 703"), std::string::npos) << two;
  EXPECT_EQ(two.find("><"), std::string::npos) << two;
}

TEST(Socketcand, PacingFollowsWallClockWhileConnected) {
  FakeClock clock;
  RecordingReporter reporter;
  Bus bus(clock, reporter, 1'000'000);
  SocketcandOptions o;
  o.port = 0;
  SocketcandServer server(bus, reporter, o);
  ASSERT_TRUE(server.start());
  // No client: pace() returns the target at once.
  EXPECT_EQ(server.pace(5'000'000'000ULL), 5'000'000'000ULL);
  clock.run_until(5'000'000'000ULL);
  TestClient c(server.port());
  ASSERT_TRUE(c.connected());
  for (int i = 0; i < 100 && server.clients() == 0; ++i) {
    server.poll();
    ::usleep(1000);
  }
  ASSERT_TRUE(server.pacing_active());
  const auto t0 = std::chrono::steady_clock::now();
  Nanos v = clock.now();
  const Nanos target = v + 50'000'000;  // 50 ms of virtual time
  while (v < target) {
    v = server.pace(target);
    clock.run_until(v);
  }
  const auto wall = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(wall, std::chrono::milliseconds(45));
  EXPECT_LT(wall, std::chrono::milliseconds(1000));
  // After a stall longer than max_lag, pacing restarts instead of racing to catch up.
  ::usleep(300'000);
  const auto t1 = std::chrono::steady_clock::now();
  const Nanos target2 = clock.now() + 50'000'000;
  v = clock.now();
  while (v < target2) {
    v = server.pace(target2);
    clock.run_until(v);
  }
  EXPECT_GE(std::chrono::steady_clock::now() - t1, std::chrono::milliseconds(45));
}

TEST(Socketcand, HoldUntilClientStopsVirtualTimeUntilRawMode) {
  FakeClock clock;
  RecordingReporter reporter;
  Bus bus(clock, reporter, 1'000'000);
  SocketcandOptions o;
  o.port = 0;
  o.hold_until_client = true;
  o.rawmode_settle = std::chrono::milliseconds(0);
  SocketcandServer server(bus, reporter, o);
  ASSERT_TRUE(server.start());
  EXPECT_EQ(server.pace(1'000'000'000ULL), 0U);  // nobody there: no time passes
  TestClient c(server.port());
  ASSERT_TRUE(c.connected());
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  std::string got;
  bool opened = false, raw = false;
  while (std::chrono::steady_clock::now() < deadline && server.raw_clients() == 0) {
    const Nanos v = server.pace(1'000'000);
    if (server.raw_clients() == 0) {
      EXPECT_EQ(v, 0U);
    }
    pollfd p{c.fd(), POLLIN, 0};
    if (::poll(&p, 1, 1) > 0) {
      char b[256];
      const ssize_t n = ::recv(c.fd(), b, sizeof b, 0);
      if (n > 0) got.append(b, static_cast<std::size_t>(n));
    }
    if (!opened && got.find("< hi >") != std::string::npos) {
      c.send("< open can0 >");
      opened = true;
    }
    if (opened && !raw && got.find("< ok >") != std::string::npos) {
      c.send("< rawmode >");
      raw = true;
    }
  }
  ASSERT_EQ(server.raw_clients(), 1U);
  const Nanos v = server.pace(clock.now() + 1'000'000);  // paced from now on
  EXPECT_GT(v, clock.now());
  EXPECT_LE(v, clock.now() + 1'000'000U);
}

}  // namespace
}  // namespace rtcanboot::twin::can
