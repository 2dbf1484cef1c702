// Bus URIs, frame encodings of every transport, slcan against a pseudo-terminal peer, the
// socketcand client against a small server on loopback, and the in-process endpoint binding.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/can.h>
#include <linux/can/error.h>
#include <linux/can/netlink.h>
#include <linux/rtnetlink.h>
#include <netinet/in.h>
#include <poll.h>
#include <pty.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <deque>
#include <functional>
#include <mutex>
#include <regex>
#include <string>
#include <thread>

#include "bad_peers.hpp"
#include "rtcanboot/host/endpoint_transport.hpp"
#include "rtcanboot/host/error.hpp"
#include "rtcanboot/host/master.hpp"
#include "rtcanboot/host/transports.hpp"

namespace rtcanboot::host {
namespace {

CanFrame frame(std::uint32_t id, std::initializer_list<std::uint8_t> data, std::uint8_t flags = 0) {
  CanFrame f;
  f.id = id;
  f.flags = flags;
  f.dlc = static_cast<std::uint8_t>(data.size());
  std::copy(data.begin(), data.end(), f.data);
  return f;
}

std::string usage_error(std::string_view uri) {
  try {
    parse_bus_uri(uri);
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kUsage);
    return e.what();
  }
  return "";
}

// ---- URIs ------------------------------------------------------------------------------------
TEST(BusUri, ParsesEveryScheme) {
  auto s = parse_bus_uri("socketcan://can0");
  EXPECT_EQ(s.scheme, BusUri::Scheme::kSocketCan);
  EXPECT_EQ(s.interface, "can0");
  auto l = parse_bus_uri("slcan:///dev/ttyACM0?bitrate=250000");
  EXPECT_EQ(l.scheme, BusUri::Scheme::kSlcan);
  EXPECT_EQ(l.interface, "/dev/ttyACM0");
  EXPECT_EQ(l.bitrate, 250000U);
  EXPECT_EQ(parse_bus_uri("slcan:///dev/ttyUSB1").bitrate, 500000U);
  EXPECT_EQ(parse_bus_uri("slcan:///dev/ttyUSB1?bitrate=1000000&baud=921600").serial_baud, 921600U);
  auto d = parse_bus_uri("socketcand://127.0.0.1:29999/can1");
  EXPECT_EQ(d.scheme, BusUri::Scheme::kSocketcand);
  EXPECT_EQ(d.host, "127.0.0.1");
  EXPECT_EQ(d.port, 29999);
  EXPECT_EQ(d.interface, "can1");
  EXPECT_EQ(parse_bus_uri("socketcand://twin.local/can0").port, 29536);
  auto v6 = parse_bus_uri("socketcand://[::1]:1234/vcan0");
  EXPECT_EQ(v6.host, "::1");
  EXPECT_EQ(v6.port, 1234);
  EXPECT_EQ(to_string(parse_bus_uri("socketcand://h:5/c")), "socketcand://h:5/c");
  // A bracketed host with a %zone but no ':' keeps its brackets (fuzz.bus_text round trip).
  EXPECT_EQ(to_string(parse_bus_uri("socketcand://[fe80%eth0]:5/c")),
            "socketcand://[fe80%eth0]:5/c");
  EXPECT_EQ(to_string(parse_bus_uri("slcan:///dev/x?bitrate=125000")),
            "slcan:///dev/x?bitrate=125000");
}

TEST(BusUri, TyposGetAOneLineExplanation) {
  EXPECT_NE(usage_error("can0").find("did you mean socketcan://can0"), std::string::npos);
  EXPECT_NE(usage_error("socketcn://can0").find("unknown scheme 'socketcn'"), std::string::npos);
  EXPECT_NE(usage_error("socketcan://").find("missing interface"), std::string::npos);
  EXPECT_NE(usage_error("socketcan://can 0").find("not allowed"), std::string::npos);
  EXPECT_NE(usage_error("slcan://dev/ttyACM0").find("absolute path"), std::string::npos);
  EXPECT_NE(usage_error("slcan:///dev/ttyACM0?bitrate=300000").find("CiA bit rate"),
            std::string::npos);
  EXPECT_NE(usage_error("slcan:///dev/ttyACM0?speed=1").find("unknown option 'speed'"),
            std::string::npos);
  EXPECT_NE(usage_error("slcan:///dev/ttyACM0?bitrate=").find("needs a number"), std::string::npos);
  EXPECT_NE(usage_error("socketcand://host:99999/can0").find("port"), std::string::npos);
  EXPECT_NE(usage_error("socketcand://host:29536").find("missing channel"), std::string::npos);
  EXPECT_NE(usage_error("socketcand://:29536/can0").find("missing host"), std::string::npos);
  EXPECT_NE(usage_error("socketcand://fe80::1:29536/can0").find("in brackets"), std::string::npos);
  // Found by bus_text_fuzz: a '[' inside a host printed back as a URI that did not parse.
  EXPECT_NE(usage_error("socketcand://1[::1]:29536/can0").find("'[' is not allowed"),
            std::string::npos);
  EXPECT_NE(usage_error("").find("expected"), std::string::npos);
  for (const char* bad : {"can0", "socketcand://host:29536", "slcan:///x?bitrate=1"}) {
    EXPECT_EQ(usage_error(bad).find('\n'), std::string::npos);
  }
}

// ---- SocketCAN encoding ------------------------------------------------------------------------
TEST(SocketCan, EncodesAndDecodesFrames) {
  ::can_frame raw;
  socketcan_encode(frame(0x605, {0x40, 0x00, 0x10, 0x00}), raw);
  EXPECT_EQ(raw.can_id, 0x605U);
  EXPECT_EQ(raw.can_dlc, 4);
  EXPECT_EQ(raw.data[0], 0x40);
  socketcan_encode(frame(0x1ABCDEF0, {1}, CanFrame::kExtended), raw);
  EXPECT_EQ(raw.can_id, 0x1ABCDEF0U | CAN_EFF_FLAG);
  socketcan_encode(frame(0x123, {}, CanFrame::kRemote), raw);
  EXPECT_EQ(raw.can_id, 0x123U | CAN_RTR_FLAG);

  ::can_frame in{};
  in.can_id = 0x185;
  in.can_dlc = 8;
  in.data[7] = 0x77;
  auto ev = socketcan_decode(in);
  EXPECT_EQ(ev.kind, RxEvent::Kind::kFrame);
  EXPECT_EQ(ev.frame.id, 0x185U);
  EXPECT_EQ(ev.frame.data[7], 0x77);
  EXPECT_FALSE(ev.frame.extended());
  in.can_id = 0x12345 | CAN_EFF_FLAG;
  EXPECT_TRUE(socketcan_decode(in).frame.extended());
  EXPECT_EQ(socketcan_decode(in).frame.id, 0x12345U);
}

TEST(SocketCan, MapsErrorFramesToStatus) {
  ::can_frame err{};
  err.can_id = CAN_ERR_FLAG | CAN_ERR_BUSOFF;
  err.can_dlc = CAN_ERR_DLC;
  auto ev = socketcan_decode(err);
  EXPECT_EQ(ev.kind, RxEvent::Kind::kStatus);
  EXPECT_EQ(ev.status.level, BusStatus::Level::kBusOff);
  EXPECT_NE(ev.status.text.find("bus-off"), std::string::npos);

  err.can_id = CAN_ERR_FLAG | CAN_ERR_ACK;
  EXPECT_NE(socketcan_error_status(err).text.find("no acknowledge"), std::string::npos);
  EXPECT_EQ(socketcan_error_status(err).level, BusStatus::Level::kError);

  err.can_id = CAN_ERR_FLAG | CAN_ERR_CRTL;
  err.data[1] = CAN_ERR_CRTL_RX_OVERFLOW | CAN_ERR_CRTL_TX_WARNING;
  const auto s = socketcan_error_status(err);
  EXPECT_NE(s.text.find("receive buffer overflow"), std::string::npos);
  EXPECT_NE(s.text.find("transmit error warning"), std::string::npos);

  err.can_id = CAN_ERR_FLAG | CAN_ERR_PROT;
  err.data[2] = CAN_ERR_PROT_STUFF;
  EXPECT_NE(socketcan_error_status(err).text.find("stuff error"), std::string::npos);
}

TEST(SocketCan, OpeningWithoutKernelSupportOrInterfaceIsABusError) {
  try {
    open_socketcan("rtcbnosuch0");
    FAIL() << "opened a CAN interface that does not exist";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kBus);
    EXPECT_NE(std::string(e.what()).find("socketcan://rtcbnosuch0"), std::string::npos);
  }
}

// ---- slcan
// ---------------------------------------------------------------------------------------
TEST(Slcan, EncodesFrames) {
  EXPECT_EQ(slcan_encode(frame(0x605, {0x40, 0x00, 0x10, 0x00, 0, 0, 0, 0})),
            "t60584000100000000000\r");
  EXPECT_EQ(slcan_encode(frame(0x7E5, {})), "t7E50\r");
  EXPECT_EQ(slcan_encode(frame(0x1ABCDEF0, {0xAA}, CanFrame::kExtended)), "T1ABCDEF01AA\r");
  EXPECT_EQ(slcan_encode(frame(0x123, {}, CanFrame::kRemote)), "r1230\r");
  CanFrame r = frame(0x1234567, {}, CanFrame::kRemote | CanFrame::kExtended);
  r.dlc = 2;
  EXPECT_EQ(slcan_encode(r), "R012345672\r");
}

TEST(Slcan, DecodesFramesAndRejectsJunk) {
  auto f = slcan_decode("t5858430010000000000000");
  ASSERT_FALSE(f);  // 9 data bytes claimed by length: malformed
  f = slcan_decode("t58584300100000000000");
  ASSERT_TRUE(f);
  EXPECT_EQ(f->id, 0x585U);
  EXPECT_EQ(f->dlc, 8);
  EXPECT_EQ(f->data[0], 0x43);
  f = slcan_decode(
      "t70510000");  // with a 4-digit timestamp... no: dlc 1, data 00, timestamp missing digits
  EXPECT_FALSE(f);
  f = slcan_decode("t705100ABCD");  // dlc 1, data 00, timestamp ABCD
  ASSERT_TRUE(f);
  EXPECT_EQ(f->dlc, 1);
  f = slcan_decode("T1ABCDEF02BEEF");
  ASSERT_TRUE(f);
  EXPECT_TRUE(f->extended());
  EXPECT_EQ(f->id, 0x1ABCDEF0U);
  EXPECT_EQ(f->data[1], 0xEF);
  f = slcan_decode("r1233");
  ASSERT_TRUE(f);
  EXPECT_TRUE(f->remote());
  EXPECT_EQ(f->dlc, 3);
  EXPECT_FALSE(slcan_decode("t8001"));    // 11-bit id out of range
  EXPECT_FALSE(slcan_decode("t1239"));    // dlc 9
  EXPECT_FALSE(slcan_decode("t12320G"));  // not hex
  EXPECT_FALSE(slcan_decode("x"));
  EXPECT_FALSE(slcan_decode(""));
  EXPECT_FALSE(slcan_decode("T3FFFFFFF0"));  // 29-bit id out of range
}

TEST(Slcan, BitRateCodes) {
  EXPECT_EQ(*slcan_bitrate_code(10000), 0);
  EXPECT_EQ(*slcan_bitrate_code(125000), 4);
  EXPECT_EQ(*slcan_bitrate_code(500000), 6);
  EXPECT_EQ(*slcan_bitrate_code(800000), 7);
  EXPECT_EQ(*slcan_bitrate_code(1000000), 8);
  EXPECT_FALSE(slcan_bitrate_code(83333));
}

// A pseudo-terminal peer that behaves like an slcan adapter with one CANopen node behind it
// answering expedited uploads of 0x1000.
class SlcanPeer {
 public:
  SlcanPeer() {
    char name[256];
    if (::openpty(&master_, &slave_, name, nullptr, nullptr) != 0)
      throw std::runtime_error("openpty");
    ::fcntl(master_, F_SETFL, ::fcntl(master_, F_GETFL) | O_NONBLOCK);
    path_ = name;
    thread_ = std::thread([this] { loop(); });
  }
  ~SlcanPeer() {
    stop_ = true;
    thread_.join();
    ::close(master_);
    ::close(slave_);
  }
  const std::string& path() const { return path_; }
  std::vector<std::string> commands() {
    std::lock_guard<std::mutex> lock(mutex_);
    return commands_;
  }
  std::atomic<bool> refuse_bitrate{false};
  std::atomic<bool> silent{false};
  // Once the channel is open: junk lines ("xyz 0123\0QW...\r") without end, never a frame.
  std::atomic<bool> garbage_after_open{false};
  // A slow adapter: its first answer comes this late (the others follow in order).
  std::atomic<int> first_answer_delay_ms{0};

 private:
  void reply(const std::string& s) { (void)!::write(master_, s.data(), s.size()); }
  void loop() {
    std::string buf;
    const std::string junk_line = test::junk_bytes(40) + "\r";
    while (!stop_) {
      if (garbage_after_open && open_) {
        for (int i = 0; i < 16; ++i) reply(junk_line);
      }
      pollfd p{master_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      char tmp[256];
      const ssize_t n = ::read(master_, tmp, sizeof tmp);
      if (n <= 0) continue;
      buf.append(tmp, static_cast<std::size_t>(n));
      test::take_lines(buf, [this](const std::string& line) { handle(line); });
    }
  }
  void handle(const std::string& line) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      commands_.push_back(line);
    }
    if (silent) return;
    if (!answered_) {
      answered_ = true;
      std::this_thread::sleep_for(std::chrono::milliseconds(first_answer_delay_ms.load()));
    }
    if (line.empty()) {
      reply("\r");
    } else if (line[0] == 'S') {
      reply(refuse_bitrate ? "\a" : "\r");
    } else if (line == "V") {
      reply("V1013\r");
    } else if (line == "O" || line == "C") {
      reply("\r");
      open_ = line == "O";
    } else if (line[0] == 't' && !garbage_after_open) {
      reply("z\r");
      // An expedited upload request of 0x1000:0 to node 5: answer with device type 0x00020192,
      // preceded by an unrelated heartbeat, a status line and junk.
      if (line.rfind("t6058400010", 0) == 0) {
        reply(
            "t7051"
            "05"
            "\r");
        reply("F00\r");
        reply("garbage\r");
        reply("t58584300100092010200\r");
      }
    }
  }
  int master_ = -1;
  int slave_ = -1;
  std::string path_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> open_{false};
  bool answered_ = false;  // the peer thread's own
  std::mutex mutex_;
  std::vector<std::string> commands_;
};

TEST(Slcan, TalksToAnAdapterOverAPseudoTerminal) {
  SlcanPeer peer;
  auto transport = open_transport("slcan://" + peer.path() + "?bitrate=250000");
  EXPECT_NE(transport->describe().find("bitrate=250000"), std::string::npos);
  Master master(*transport);
  EXPECT_EQ(master.upload_u32(5, 0x1000, 0), 0x0002'0192U);
  ASSERT_EQ(master.heartbeats().count(5), 1U);
  EXPECT_EQ(master.heartbeats().at(5).state, canopen::NmtState::kOperational);
  const auto cmds = peer.commands();
  // Set-up: close, bit rate S5, open; then the request.
  auto pos_s = std::find(cmds.begin(), cmds.end(), "S5");
  auto pos_o = std::find(cmds.begin(), cmds.end(), "O");
  ASSERT_NE(pos_s, cmds.end());
  ASSERT_NE(pos_o, cmds.end());
  EXPECT_LT(pos_s, pos_o);
  EXPECT_NE(std::find(cmds.begin(), cmds.end(), "C"), cmds.end());
  EXPECT_NE(std::find(cmds.begin(), cmds.end(), "t60584000100000000000"), cmds.end());
}

TEST(Slcan, AdapterErrorsAreBusErrors) {
  SlcanPeer peer;
  peer.refuse_bitrate = true;
  try {
    open_slcan(peer.path(), 500000, 115200);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kBus);
    EXPECT_NE(std::string(e.what()).find("refused bit rate"), std::string::npos);
  }
  // A slow adapter's late answers to the set-up's blank lines and C are not taken for the
  // answer to S: the version answer tells them apart.
  SlcanPeer slow;
  slow.refuse_bitrate = true;
  slow.first_answer_delay_ms = 200;
  try {
    open_slcan(slow.path(), 500000, 115200);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kBus);
    EXPECT_NE(std::string(e.what()).find("refused bit rate"), std::string::npos) << e.what();
  }
  SlcanPeer mute;
  mute.silent = true;
  try {
    open_slcan(mute.path(), 500000, 115200);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kBus);
    EXPECT_NE(std::string(e.what()).find("no answer"), std::string::npos);
  }
  // A regular file named by mistake is refused before anything is written into it.
  char file_name[] = "/tmp/rtcanboot-slcan-XXXXXX";
  const int file = ::mkstemp(file_name);
  ASSERT_GE(file, 0);
  (void)!::write(file, "keep", 4);
  ::close(file);
  try {
    open_slcan(file_name, 500000, 115200);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kBus);
    EXPECT_NE(std::string(e.what()).find("not a serial device"), std::string::npos);
  }
  char content[8] = {};
  const int again = ::open(file_name, O_RDONLY);
  EXPECT_EQ(::read(again, content, sizeof content), 4);
  ::close(again);
  ::unlink(file_name);
  EXPECT_STREQ(content, "keep");
  try {
    open_slcan("/nonexistent/ttyACM9", 500000, 115200);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kBus);
    EXPECT_NE(std::string(e.what()).find("cannot open"), std::string::npos);
  }
}

// The receive buffer holds one incomplete line at most; junk is skipped up to a limit, then it is
// a bus error that names the device.
TEST(Slcan, ReaderBoundsItsBufferAndGivesUpOnJunk) {
  SlcanReader r("slcan:///dev/ttyX?bitrate=500000");
  r.feed("garbage\rV1013\rz\rt12311A\rF00\r\a");
  auto item = r.next();
  ASSERT_TRUE(item);
  EXPECT_EQ(item->kind, SlcanItem::Kind::kVersion);  // the set-up's synchronisation point
  item = r.next();
  ASSERT_TRUE(item);
  EXPECT_EQ(item->kind, SlcanItem::Kind::kAck);
  item = r.next();
  ASSERT_TRUE(item);
  EXPECT_EQ(item->kind, SlcanItem::Kind::kFrame);
  EXPECT_EQ(item->frame.id, 0x123U);
  EXPECT_EQ(r.junk(), 0U);  // a valid item resets the count
  item = r.next();
  ASSERT_TRUE(item);
  EXPECT_EQ(item->kind, SlcanItem::Kind::kStatus);
  item = r.next();
  ASSERT_TRUE(item);
  EXPECT_EQ(item->kind, SlcanItem::Kind::kBell);
  EXPECT_FALSE(r.next());
  // A line that grows without a terminator is dropped once it cannot be slcan any more.
  r.feed(std::string(SlcanReader::kMaxLine + 1, 'x'));
  EXPECT_FALSE(r.next());
  EXPECT_EQ(r.buffered(), 0U);
  EXPECT_EQ(r.junk(), SlcanReader::kMaxLine + 1);
  r.feed(
      "t7051"
      "05\r");
  ASSERT_TRUE(r.next());
  EXPECT_EQ(r.junk(), 0U);
  // /dev/zero: NUL bytes without end.
  try {
    for (int i = 0; i < 100; ++i) {
      r.feed(std::string(512, '\0'));
      while (r.next()) {
      }
    }
    FAIL() << "read 51200 NUL bytes as slcan";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kBus);
    EXPECT_NE(std::string(e.what()).find("slcan:///dev/ttyX?bitrate=500000: received 1"),
              std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("not an slcan adapter"), std::string::npos) << e.what();
    EXPECT_LE(r.buffered(), SlcanReader::kMaxLine + 512);
  }
}

TEST(Slcan, DeviceThatStreamsZerosIsABusErrorAtOnce) {
  const auto t0 = std::chrono::steady_clock::now();
  try {
    open_slcan("/dev/zero", 500000, 115200);
    FAIL() << "/dev/zero taken for an slcan adapter";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kBus);
    EXPECT_EQ(std::string(e.what()).rfind("slcan:///dev/zero?bitrate=500000: ", 0), 0U) << e.what();
  }
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
}

TEST(Slcan, GarbageAfterTheSetUpIsABusErrorNotAnEndlessRead) {
  SlcanPeer peer;
  peer.garbage_after_open = true;
  auto transport = open_slcan(peer.path(), 500000, 115200);
  Master master(*transport);
  try {
    master.upload_u32(5, 0x1000, 0);
    FAIL() << "an SDO answer out of junk";
  } catch (const SdoError& e) {
    FAIL() << "junk taken for silence: " << e.what();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kBus);
    EXPECT_NE(std::string(e.what()).find("slcan://" + peer.path()), std::string::npos) << e.what();
  }
}

// The interrupt flag is looked at on every pass, also while bytes keep coming (no EINTR then).
TEST(Slcan, InterruptIsSeenWhileJunkStreams) {
  SlcanPeer peer;
  auto transport = open_slcan(peer.path(), 500000, 115200);
  peer.garbage_after_open = true;
  request_interrupt();
  try {
    transport->receive(transport->clock().now() + 60'000'000);
    ADD_FAILURE() << "receive returned";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kInterrupted) << e.what();
  }
  clear_interrupt();
}

// ---- socketcand -------------------------------------------------------------------------------
// An RTM_NEWLINK answer as the kernel builds it: header, ifinfomsg, then IFLA_LINKINFO holding
// IFLA_INFO_KIND and, for a controller, IFLA_INFO_DATA with IFLA_CAN_BITTIMING.
class LinkMessage {
 public:
  LinkMessage() { bytes_.resize(NLMSG_ALIGN(sizeof(nlmsghdr)) + NLMSG_ALIGN(sizeof(ifinfomsg))); }
  // Opens an attribute; close() sets its length.
  std::size_t open(unsigned type) { return attribute(type, nullptr, 0); }
  void close(std::size_t at) {
    const auto length = static_cast<std::uint16_t>(bytes_.size() - at);
    std::memcpy(bytes_.data() + at, &length, sizeof length);
  }
  std::size_t attribute(unsigned type, const void* data, std::size_t size) {
    const std::size_t at = bytes_.size();
    rtattr a{};
    a.rta_len = static_cast<unsigned short>(sizeof(rtattr) + size);
    a.rta_type = static_cast<unsigned short>(type);
    bytes_.resize(at + sizeof a);
    std::memcpy(bytes_.data() + at, &a, sizeof a);
    const auto* p = static_cast<const std::uint8_t*>(data);
    bytes_.insert(bytes_.end(), p, p + size);
    bytes_.resize((bytes_.size() + 3) & ~std::size_t{3});
    return at;
  }
  std::vector<std::uint8_t> done() {
    nlmsghdr h{};
    h.nlmsg_len = static_cast<std::uint32_t>(bytes_.size());
    h.nlmsg_type = RTM_NEWLINK;
    std::memcpy(bytes_.data(), &h, sizeof h);
    return bytes_;
  }

 private:
  std::vector<std::uint8_t> bytes_;
};

TEST(SocketcanLink, AControllerReportsItsBitRateAVcanNone) {
  can_bittiming timing{};
  timing.bitrate = 250'000;
  timing.sample_point = 875;
  LinkMessage controller;
  const auto info = controller.open(IFLA_LINKINFO);
  controller.attribute(IFLA_INFO_KIND, "can", 4);
  const auto data = controller.open(IFLA_INFO_DATA);
  controller.attribute(IFLA_CAN_BITTIMING, &timing, sizeof timing);
  controller.close(data);
  controller.close(info);
  const auto message = controller.done();
  const SocketcanLink link = socketcan_parse_link(message.data(), message.size());
  EXPECT_EQ(link.kind, "can");
  EXPECT_EQ(link.bitrate, 250'000u);

  LinkMessage vcan;
  const auto vcan_info = vcan.open(IFLA_LINKINFO);
  vcan.attribute(IFLA_INFO_KIND, "vcan", 5);
  vcan.close(vcan_info);
  const auto vcan_message = vcan.done();
  const SocketcanLink virtual_link = socketcan_parse_link(vcan_message.data(), vcan_message.size());
  EXPECT_EQ(virtual_link.kind, "vcan");
  EXPECT_EQ(virtual_link.bitrate, 0u);

  // Every truncation of the controller's answer parses without reading past it.
  for (std::size_t size = 0; size < message.size(); ++size) {
    std::vector<std::uint8_t> cut(message.begin(), message.begin() + static_cast<long>(size));
    const SocketcanLink partial = socketcan_parse_link(cut.data(), cut.size());
    EXPECT_EQ(partial.bitrate, 0u) << size;
  }
}

TEST(Socketcand, EncodesSendAndDecodesFrame) {
  EXPECT_EQ(socketcand_encode_send(frame(0x605, {0x40, 0x00, 0x10})), "< send 605 3 40 00 10 >");
  EXPECT_EQ(socketcand_encode_send(frame(0x12345, {}, CanFrame::kExtended)), "< send 00012345 0 >");
  auto f = socketcand_decode_frame("frame 585 1700000000.123456 4300100000000000");
  ASSERT_TRUE(f);
  EXPECT_EQ(f->id, 0x585U);
  EXPECT_EQ(f->dlc, 8);
  EXPECT_EQ(f->data[0], 0x43);
  f = socketcand_decode_frame("frame 00012345 1.0 11 22");
  ASSERT_TRUE(f);
  EXPECT_TRUE(f->extended());
  EXPECT_EQ(f->dlc, 2);
  f = socketcand_decode_frame("frame 705 1.0");
  ASSERT_TRUE(f);
  EXPECT_EQ(f->dlc, 0);
  EXPECT_FALSE(socketcand_decode_frame("frame 800 1.0 11"));
  EXPECT_FALSE(socketcand_decode_frame("frame 123 1.0 1"));
  EXPECT_FALSE(socketcand_decode_frame("frame 123 1.0 112233445566778899"));
  EXPECT_FALSE(socketcand_decode_frame("ok"));
  EXPECT_FALSE(socketcand_decode_frame("frame zz 1.0"));
}

// A socketcand server on loopback with one node behind it (same answers as the slcan peer).
class SocketcandServer {
 public:
  explicit SocketcandServer(std::string channel = "can0") : channel_(std::move(channel)) {
    listen_ = test::listen_on_loopback(port_);
    thread_ = std::thread([this] { serve(); });
  }
  ~SocketcandServer() {
    stop_ = true;
    ::shutdown(listen_, SHUT_RDWR);
    thread_.join();
    ::close(listen_);
  }
  std::uint16_t port() const { return port_; }
  std::vector<std::string> received() {
    std::lock_guard<std::mutex> lock(mutex_);
    return received_;
  }

 private:
  void send_text(int fd, const std::string& s) {
    (void)!::send(fd, s.data(), s.size(), MSG_NOSIGNAL);
  }
  void serve() {
    while (!stop_) {
      pollfd p{listen_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      const int fd = ::accept(listen_, nullptr, nullptr);
      if (fd < 0) continue;
      send_text(fd, "< hi >");
      std::string buf;
      bool open = false;
      while (!stop_) {
        pollfd q{fd, POLLIN, 0};
        if (::poll(&q, 1, 20) <= 0) continue;
        char tmp[512];
        const ssize_t n = ::recv(fd, tmp, sizeof tmp, 0);
        if (n <= 0) break;
        buf.append(tmp, static_cast<std::size_t>(n));
        std::size_t close_at;
        while ((close_at = buf.find('>')) != std::string::npos) {
          const std::string msg = buf.substr(0, close_at + 1);
          buf.erase(0, close_at + 1);
          {
            std::lock_guard<std::mutex> lock(mutex_);
            received_.push_back(msg);
          }
          if (msg == "< open " + channel_ + " >") {
            open = true;
            send_text(fd, "< ok >");
          } else if (msg.rfind("< open ", 0) == 0) {
            send_text(fd, "< error could not open bus >");
          } else if (msg == "< rawmode >" && open) {
            send_text(fd, "< ok >");
          } else if (msg.rfind("< send 605 8 40 00 10 00", 0) == 0) {
            // Split across two TCP writes on purpose, with a heartbeat first.
            send_text(fd, "< frame 705 10.000000 7F >< frame 585 10.0001");
            send_text(fd, "00 43 00 10 00 92 01 02 00 >");
          }
        }
      }
      ::close(fd);
    }
  }
  std::string channel_;
  int listen_ = -1;
  std::uint16_t port_ = 0;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::vector<std::string> received_;
};

TEST(Socketcand, ClientTalksToAServer) {
  SocketcandServer server;
  auto transport = open_transport(fmt::format("socketcand://127.0.0.1:{}/can0", server.port()));
  Master master(*transport);
  EXPECT_EQ(master.upload_u32(5, 0x1000, 0), 0x0002'0192U);
  EXPECT_EQ(master.heartbeats().at(5).state, canopen::NmtState::kPreOperational);
  const auto got = server.received();
  ASSERT_GE(got.size(), 3U);
  EXPECT_EQ(got[0], "< open can0 >");
  EXPECT_EQ(got[1], "< rawmode >");
  EXPECT_EQ(got[2], "< send 605 8 40 00 10 00 00 00 00 00 >");
}

TEST(Socketcand, FramesSentJustBeforeClosingStillLeave) {
  SocketcandServer server;
  {
    auto transport = open_transport(fmt::format("socketcand://127.0.0.1:{}/can0", server.port()));
    Master master(*transport);
    master.nmt(canopen::NmtCommand::kResetNode, 5);
  }
  for (int i = 0; i < 100; ++i) {
    const auto got = server.received();
    if (got.size() >= 3) {
      EXPECT_EQ(got[2], "< send 000 2 81 05 >");
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  FAIL() << "the NMT frame never arrived";
}

TEST(Socketcand, RefusedChannelAndNoServerAreBusErrors) {
  SocketcandServer server("can0");
  try {
    open_socketcand("127.0.0.1", server.port(), "can7");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kBus);
    EXPECT_NE(std::string(e.what()).find("could not open bus"), std::string::npos);
  }
  // A port nobody listens on: take a fresh server's port and shut it down.
  std::uint16_t dead_port;
  {
    SocketcandServer gone;
    dead_port = gone.port();
  }
  try {
    open_socketcand("127.0.0.1", dead_port, "can0");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kBus);
    EXPECT_NE(std::string(e.what()).find("cannot connect"), std::string::npos);
  }
}

TEST(Socketcand, ServerThatSendsGarbageOrNothingIsABusError) {
  using Mode = test::BadSocketcandServer::Mode;
  auto open_error = [](Mode mode) {
    test::BadSocketcandServer server(mode);
    const auto t0 = std::chrono::steady_clock::now();
    std::string what;
    try {
      auto t = open_socketcand("127.0.0.1", server.port(), "can0");
      Master master(*t);
      master.upload_u32(5, 0x1000, 0);
      what = "no error";
    } catch (const SdoError& e) {
      what = std::string("SDO error: ") + e.what();
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kBus) << e.what();
      what = e.what();
    }
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5)) << what;
    return what;
  };
  // Each message starts with the server's URI ("socketcand://127.0.0.1:PORT/can0: ...").
  auto matches = [](const std::string& text, const char* pattern) {
    return std::regex_match(text, std::regex(pattern));
  };
  std::string m = open_error(Mode::kSilentAfterGreeting);
  EXPECT_TRUE(matches(m, "socketcand://127\\.0\\.0\\.1:[0-9]+/can0: no answer to 'open can0'.*"))
      << m;
  m = open_error(Mode::kGarbageAfterGreeting);
  EXPECT_TRUE(matches(m,
                      "socketcand://127\\.0\\.0\\.1:[0-9]+/can0: received [0-9]+ bytes that are "
                      "not socketcand messages.*"))
      << m;
  m = open_error(Mode::kGarbageAfterRawmode);
  EXPECT_TRUE(matches(m,
                      "socketcand://127\\.0\\.0\\.1:[0-9]+/can0: received [0-9]+ bytes that are "
                      "not socketcand messages.*"))
      << m;
  // Silence after a good handshake is just a quiet bus: the SDO request times out.
  m = open_error(Mode::kSilentAfterRawmode);
  EXPECT_EQ(m.rfind("SDO error: node 5 did not answer", 0), 0U) << m;
}

TEST(Socketcand, ReaderBoundsItsBufferAndGivesUpOnJunk) {
  SocketcandReader r("socketcand://h:1/can0");
  r.feed("  < hi >< stat 1 2 3 >< frame 705 1.0 7F >junk< ok ");
  EXPECT_EQ(r.next(), "hi");
  EXPECT_EQ(r.next(), "frame 705 1.0 7F");  // "stat" is not raw mode: skipped as junk
  EXPECT_FALSE(r.next());
  EXPECT_EQ(r.junk(), 4U);  // "junk"; the unfinished "< ok " waits
  r.feed(">");
  EXPECT_EQ(r.next(), "ok");
  EXPECT_EQ(r.junk(), 0U);
  r.feed("< " + std::string(SocketcandReader::kMaxMessage, 'a'));
  EXPECT_FALSE(r.next());
  EXPECT_EQ(r.buffered(), 0U);
  try {
    for (int i = 0; i < 100; ++i) {
      r.feed(test::junk_bytes(512));
      while (r.next()) {
      }
    }
    FAIL() << "junk read for ever";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kBus);
    EXPECT_NE(std::string(e.what()).find("socketcand://h:1/can0: received"), std::string::npos)
        << e.what();
  }
}

// socketcand names are interface names; anything else would be sent into the command stream.
TEST(Socketcand, ChannelIsAnInterfaceNameOrAUsageError) {
  EXPECT_TRUE(socketcand_channel_valid("can0"));
  EXPECT_TRUE(socketcand_channel_valid("vcan_1.2-x"));
  for (const char* bad :
       {"", "can0 > < send 000 2 81 00 ", "can0>", "can 0", "a<b", "0123456789abcdef", "can0\n"}) {
    EXPECT_FALSE(socketcand_channel_valid(bad)) << bad;
  }
  test::BadSocketcandServer server(test::BadSocketcandServer::Mode::kSilentAfterRawmode);
  try {
    parse_bus_uri(
        fmt::format("socketcand://127.0.0.1:{}/can0 > < send 000 2 81 00 ", server.port()));
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kUsage);
    EXPECT_NE(std::string(e.what()).find("interface name"), std::string::npos) << e.what();
  }
  try {
    open_socketcand("127.0.0.1", server.port(), "can0 > < send 000 2 81 00 ");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kUsage);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(server.connections(), 0);
  EXPECT_EQ(server.received(), "");
}

// ---- in-process endpoint binding --------------------------------------------------------------
struct FakeTimedFrame {
  CanFrame frame;
  std::uint64_t sof = 0;
  std::uint64_t eof = 0;
};
// Shaped like the twin's Endpoint: a node behind it answers expedited uploads 1 ms later.
struct FakeEndpoint {
  std::uint64_t now_ns = 0;
  std::deque<std::pair<std::uint64_t, CanFrame>> scheduled;
  std::deque<FakeTimedFrame> rx;
  void send(const CanFrame& f) {
    if (f.id == 0x605) {
      CanFrame r = f;
      r.id = 0x585;
      r.data[0] = 0x4F;
      r.data[4] = 0x99;
      scheduled.emplace_back(now_ns + 1'000'000, r);
    }
  }
  std::optional<FakeTimedFrame> receive() {
    if (rx.empty()) return std::nullopt;
    auto f = rx.front();
    rx.pop_front();
    return f;
  }
  std::size_t rx_pending() const { return rx.size(); }
  void run(std::uint64_t deadline, const std::function<bool()>& stop) {
    while (!stop()) {
      if (scheduled.empty() || scheduled.front().first > deadline) {
        now_ns = std::max(now_ns, deadline);
        return;
      }
      now_ns = scheduled.front().first;
      rx.push_back({scheduled.front().second, now_ns - 100'000, now_ns});
      scheduled.pop_front();
    }
  }
};

TEST(EndpointTransport, RunsTheSimulationWhileWaiting) {
  FakeEndpoint ep;
  EndpointTransport<FakeEndpoint> t(
      ep, [&] { return ep.now_ns; },
      [&](std::uint64_t d, const std::function<bool()>& stop) { ep.run(d, stop); });
  Master master(t);
  EXPECT_EQ(master.upload_u8(5, 0x1001, 0), 0x99);
  EXPECT_EQ(t.clock().now(), 1000U);  // exactly one simulated millisecond
  // Nobody answers node 6: the timeout passes in virtual time only.
  master.options().retries = 0;
  EXPECT_THROW(master.upload_u8(6, 0x1001, 0), SdoError);
  EXPECT_EQ(t.clock().now(), 1000U + master.options().sdo.timeout);
}

}  // namespace
}  // namespace rtcanboot::host
