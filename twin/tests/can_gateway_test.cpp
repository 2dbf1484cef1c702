// The twin's gateways to Linux programs: the slcan adapter on a pseudo-terminal (a program on the
// slave side speaks Lawicel commands) and the SocketCAN bridge's frame conversion and its
// messages. Frames through a real kernel: tests/kernel (label kernel).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/can.h>
#include <poll.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

#include <chrono>
#include <string>

#include "can_test_support.hpp"
#include "twin/can/bus.hpp"
#include "twin/can/slcan_pty.hpp"
#include "twin/can/socketcan.hpp"

namespace rtcanboot::twin::can {
namespace {

using testing::FakeClock;
using testing::RecordingReporter;

CanFrame make(std::uint32_t id, std::initializer_list<std::uint8_t> bytes) {
  CanFrame f;
  f.id = id;
  f.dlc = static_cast<std::uint8_t>(bytes.size());
  std::size_t i = 0;
  for (auto b : bytes) f.data[i++] = b;
  return f;
}

struct PtyRig {
  FakeClock clock;
  RecordingReporter reporter;
  Bus bus{clock, reporter, 500'000};
  Endpoint device{"device"};
  SlcanPty pty{bus, reporter};
  int fd = -1;
  PtyRig() {
    bus.attach(device);
    std::string err;
    EXPECT_TRUE(pty.start(&err)) << err;
    fd = ::open(pty.slave_path().c_str(), O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
    EXPECT_GE(fd, 0);
    termios tio{};
    ::tcgetattr(fd, &tio);
    ::cfmakeraw(&tio);
    ::tcsetattr(fd, TCSANOW, &tio);
  }
  ~PtyRig() {
    if (fd >= 0) ::close(fd);
    bus.detach(device);
  }
  void write_text(const std::string& s) {
    ASSERT_EQ(::write(fd, s.data(), s.size()), static_cast<ssize_t>(s.size()));
  }
  // Services the adapter and the bus for `ns` of virtual time, then reads what the adapter wrote.
  std::string exchange(const std::string& s, Nanos ns = 2'000'000) {
    if (!s.empty()) write_text(s);
    std::string got;
    for (int i = 0; i < 20; ++i) {
      pty.poll();
      clock.run_for(ns / 20);
      pty.poll();
      pollfd p{fd, POLLIN, 0};
      ::poll(&p, 1, 5);
      char buf[512];
      const ssize_t n = ::read(fd, buf, sizeof buf);
      if (n > 0) got.append(buf, static_cast<std::size_t>(n));
    }
    return got;
  }
};

TEST(SlcanPty, LawicelCommandsAndFramesBothWays) {
  PtyRig rig;
  EXPECT_EQ(rig.pty.slave_path().rfind("/dev/pts/", 0), 0U) << rig.pty.slave_path();
  // A frame sent while the channel is closed is refused with BEL.
  EXPECT_EQ(rig.exchange("t1230\r"), "\a");
  EXPECT_EQ(rig.exchange("S6\rO\r"), "\r\r");
  EXPECT_TRUE(rig.pty.channel_open());
  // Program -> bus: standard, extended and remote frames; each confirmed with z / Z.
  EXPECT_EQ(rig.exchange("t61784000100000000000\rT000123451AA\rr7E50\r"), "z\rZ\rz\r");
  auto f1 = rig.device.receive();
  ASSERT_TRUE(f1);
  EXPECT_EQ(f1->frame.id, 0x617U);
  EXPECT_EQ(f1->frame.dlc, 8);
  EXPECT_EQ(f1->frame.data[0], 0x40);
  EXPECT_EQ(f1->frame.data[2], 0x10);
  auto f2 = rig.device.receive();
  ASSERT_TRUE(f2);
  EXPECT_TRUE(f2->frame.extended());
  EXPECT_EQ(f2->frame.id, 0x12345U);
  auto f3 = rig.device.receive();
  ASSERT_TRUE(f3);
  EXPECT_TRUE(f3->frame.remote());
  // Bus -> program.
  rig.device.send(make(0x597, {0x43, 0x00, 0x10, 0x00, 0x92, 0x01, 0x00, 0x00}));
  EXPECT_EQ(rig.exchange(""), "t59784300100092010000\r");
  // Malformed lines get BEL and send nothing: wrong length, DLC 9, id past 11 bits.
  EXPECT_EQ(rig.exchange("t61784000\rt6179\rt8000\r"), "\a\a\a");
  EXPECT_FALSE(rig.device.receive());
  EXPECT_EQ(rig.pty.stats().errors, 4U);
  EXPECT_EQ(rig.exchange("C\r"), "\r");
  EXPECT_FALSE(rig.pty.channel_open());
}

TEST(SlcanPty, BitRateOfTheProgramIsCheckedAgainstTheBus) {
  PtyRig rig;
  EXPECT_EQ(rig.exchange("S4\r"), "\r");  // 125 kbit/s on a 500 kbit/s bus
  EXPECT_TRUE(rig.reporter.has(Severity::kWarning, "125000"));
  EXPECT_EQ(rig.exchange("S9\r"), "\a");
}

TEST(SocketcanBridge, FrameConversionKeepsIdsFlagsAndData) {
  CanFrame e = make(0x1ABCDEF, {1, 2, 3});
  e.flags |= CanFrame::kExtended;
  const ::can_frame raw = to_socketcan(e);
  EXPECT_EQ(raw.can_id, 0x1ABCDEFU | CAN_EFF_FLAG);
  EXPECT_EQ(raw.can_dlc, 3);
  const CanFrame back = from_socketcan(raw);
  EXPECT_TRUE(back.extended());
  EXPECT_EQ(back.id, 0x1ABCDEFU);
  EXPECT_EQ(back.data[2], 3);
  CanFrame r = make(0x617, {});
  r.flags |= CanFrame::kRemote;
  r.dlc = 8;
  EXPECT_EQ(to_socketcan(r).can_id, 0x617U | CAN_RTR_FLAG);
  EXPECT_TRUE(from_socketcan(to_socketcan(r)).remote());
}

TEST(SocketcanBridge, StartSaysWhatIsWrong) {
  FakeClock clock;
  RecordingReporter reporter;
  Bus bus(clock, reporter, 500'000);
  SocketcanBridge bridge(bus, reporter, SocketcanOptions{"nosuch0"});
  std::string err;
  ASSERT_FALSE(bridge.start(&err));
  const int s = ::socket(PF_CAN, SOCK_RAW, CAN_RAW);
  if (s < 0) {
    // This kernel has no SocketCAN (the build machines): the message says so.
    EXPECT_NE(err.find("no SocketCAN"), std::string::npos) << err;
  } else {
    ::close(s);
    EXPECT_NE(err.find("no such interface"), std::string::npos) << err;
  }
  EXPECT_EQ(err.rfind("socketcan://nosuch0: ", 0), 0U) << err;
}

}  // namespace
}  // namespace rtcanboot::twin::can
