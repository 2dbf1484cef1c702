// A bus with one scripted CANopen-like device and a socketcand server, for the python-can test
// (can_python_socketcand.py). Prints "PORT <n>" once listening. When a client is in raw mode the
// device sends its boot-up frame 0x701#00 (100 ms later, virtual = wall time); when it receives
// 0x601 it prints "RX <frame>" and answers 0x581#4300100092010000, then the program exits.
// The device is a host endpoint, or with --flexcan a FlexCAN model driven through its registers
// by a small polling "driver" (the path the real firmware takes in the twin).
// Bounded: gives up after --timeout-ms (default 20 s) of wall time.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <string>

#include "can_test_support.hpp"
#include "twin/can/bus.hpp"
#include "twin/can/flexcan.hpp"
#include "twin/can/socketcand.hpp"

using namespace rtcanboot::twin;
using namespace rtcanboot::twin::can;

namespace {

class StderrReporter final : public Reporter {
 public:
  void report(Severity severity, const std::string& source, const std::string& message,
              std::uint32_t) override {
    const char* s = severity == Severity::kFault     ? "fault"
                    : severity == Severity::kWarning ? "warning"
                                                     : "info";
    std::fprintf(stderr, "[%s %s] %s\n", source.c_str(), s, message.c_str());
    if (severity == Severity::kFault) ++faults;
  }
  int faults = 0;
};

const std::uint8_t kAnswer[8] = {0x43, 0x00, 0x10, 0x00, 0x92, 0x01, 0x00, 0x00};

// Minimal FlexCAN "driver": register accesses only, as firmware would do them.
class FlexcanDevice {
 public:
  FlexcanDevice(testing::FakeClock& clock, Reporter& reporter, Bus& bus) : clock_(clock) {
    FlexCanConfig cfg;
    cfg.instance = 2;
    cfg.clock_hz = [] { return 40'000'000U; };  // CSCMR2 CAN_CLK_SEL=2, PODF=1
    cfg.pins_muxed = [] { return true; };
    can_ = std::make_unique<FlexCan>(cfg, clock, irq_, reporter);
    bus.attach(*can_);
    wr(0x00, rd(0x00) & ~(1U << 31));  // MDIS off; FRZ/HALT are set from reset
    wait_mcr(1U << 24, true);          // FRZACK
    wr(0x04, 0x01730007);              // 1 Mbit/s at 40 MHz, 20 tq
    wr(0x00, (rd(0x00) & ~0x7FU) | 15U | (1U << 16) | (1U << 17));  // MAXMB 15, IRMQ, SRXDIS
    wr(0x880 + 4 * 4, 0x1FFFFFFF);                                  // RXIMR[4]: exact id
    wr(0x80 + 16 * 4 + 4, 0x601U << 18);
    wr(0x80 + 16 * 4, 0x4U << 24);  // MB4 EMPTY
    wr(0x00, rd(0x00) & ~((1U << 30) | (1U << 28)));
    wait_mcr(1U << 24, false);
  }
  void send(unsigned mb, std::uint32_t id, const std::uint8_t* data, unsigned dlc) {
    const std::uint32_t base = 0x80 + 16 * mb;
    wr(base, 0x8U << 24);
    wr(base + 4, id << 18);
    std::uint8_t b[8] = {};
    std::memcpy(b, data, dlc);
    wr(base + 8, static_cast<std::uint32_t>(b[0] << 24 | b[1] << 16 | b[2] << 8 | b[3]));
    wr(base + 12, static_cast<std::uint32_t>(b[4] << 24 | b[5] << 16 | b[6] << 8 | b[7]));
    wr(base, (0xCU << 24) | (dlc << 16));
  }
  // Polls MB4 every 50 us of virtual time.
  void poll(const std::function<void(const rtcanboot::CanFrame&)>& on_frame) {
    if ((rd(0x30) & (1U << 4)) != 0) {
      const std::uint32_t base = 0x80 + 16 * 4;
      const std::uint32_t cs = rd(base);  // locks MB4
      rtcanboot::CanFrame f;
      f.id = (rd(base + 4) >> 18) & 0x7FF;
      f.dlc = static_cast<std::uint8_t>((cs >> 16) & 0xF);
      const std::uint32_t w0 = rd(base + 8), w1 = rd(base + 12);
      for (unsigned i = 0; i < 4; ++i) {
        f.data[i] = static_cast<std::uint8_t>(w0 >> (24 - 8 * i));
        f.data[4 + i] = static_cast<std::uint8_t>(w1 >> (24 - 8 * i));
      }
      rd(0x08);              // TIMER: unlock
      wr(0x30, 1U << 4);     // clear IFLAG
      wr(base, 0x4U << 24);  // re-arm
      on_frame(f);
    }
    clock_.schedule(clock_.now() + 50'000, [this, on_frame] { poll(on_frame); });
  }

 private:
  std::uint32_t rd(std::uint32_t off) { return can_->read(off, 4, 0); }
  void wr(std::uint32_t off, std::uint32_t v) { can_->write(off, v, 4, 0); }
  void wait_mcr(std::uint32_t bit, bool set) {
    for (int i = 0; i < 1000 && ((rd(0x00) & bit) != 0) != set; ++i) clock_.run_for(1000);
  }
  testing::FakeClock& clock_;
  testing::FakeIrq irq_;
  std::unique_ptr<FlexCan> can_;
};

}  // namespace

int main(int argc, char** argv) {
  long timeout_ms = 20000;
  bool flexcan = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--timeout-ms") == 0 && i + 1 < argc)
      timeout_ms = std::strtol(argv[i + 1], nullptr, 10);
    if (std::strcmp(argv[i], "--flexcan") == 0) flexcan = true;
  }
  testing::FakeClock clock;
  StderrReporter reporter;
  Bus bus(clock, reporter, 1'000'000);
  bus.set_trace([](const std::string& line) { std::fprintf(stderr, "%s\n", line.c_str()); });

  Endpoint endpoint("scripted-device");
  std::unique_ptr<FlexcanDevice> device;
  if (flexcan) {
    device = std::make_unique<FlexcanDevice>(clock, reporter, bus);
  } else {
    bus.attach(endpoint);
  }
  auto send = [&](std::uint32_t id, const std::uint8_t* data, unsigned dlc, unsigned mb) {
    if (device) {
      device->send(mb, id, data, dlc);
      return;
    }
    rtcanboot::CanFrame f;
    f.id = id;
    f.dlc = static_cast<std::uint8_t>(dlc);
    std::memcpy(f.data, data, dlc);
    endpoint.send(f);
  };

  SocketcandOptions options;
  options.port = 0;
  options.pacing = SocketcandOptions::Pacing::kAlways;
  SocketcandServer server(bus, reporter, options);
  std::string error;
  if (!server.start(&error)) {
    std::fprintf(stderr, "cannot listen: %s\n", error.c_str());
    return 2;
  }
  std::printf("PORT %u\n", static_cast<unsigned>(server.port()));
  std::fflush(stdout);

  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  if (!server.wait_for_client(std::chrono::milliseconds(timeout_ms))) {
    std::fprintf(stderr, "no client\n");
    return 3;
  }

  bool answered = false;
  Nanos answered_at = 0;
  auto on_frame = [&](const rtcanboot::CanFrame& f) {
    if (f.id != 0x601 || answered) return;
    std::printf("RX %s\n", format_candump(clock.now(), "can0", f).c_str());
    std::fflush(stdout);
    send(0x581, kAnswer, 8, 10);
    answered = true;
    answered_at = clock.now();
  };
  if (device) {
    device->poll(on_frame);
  } else {
    endpoint.on_receive([&](const TimedFrame& f) { on_frame(f.frame); });
  }
  clock.schedule(clock.now() + 100'000'000, [&] {
    const std::uint8_t boot[1] = {0x00};
    send(0x701, boot, 1, 9);
  });

  while (std::chrono::steady_clock::now() < deadline) {
    if (answered && clock.now() > answered_at + 300'000'000) break;
    if (answered && server.clients() == 0) break;
    const Nanos target = std::min(clock.next_event(), clock.now() + 10'000'000);
    clock.run_until(server.pace(target));
    server.poll();
  }
  server.stop();
  if (!answered) {
    std::fprintf(stderr, "timed out without 0x601\n");
    return 4;
  }
  return reporter.faults == 0 ? 0 : 5;
}
