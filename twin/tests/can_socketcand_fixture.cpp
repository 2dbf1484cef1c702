// A bus with one scripted CANopen-like device and a socketcand server, for the python-can test
// (can_python_socketcand.py). Prints "PORT <n>" once listening. When a client is in raw mode the
// device sends its boot-up frame 0x701#00 (100 ms later, virtual = wall time); when it receives
// 0x601 it prints "RX <frame>" and answers 0x581#4300100092010000, then the program exits.
// Bounded: gives up after --timeout-ms (default 20 s) of wall time.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "can_test_support.hpp"
#include "twin/can/bus.hpp"
#include "twin/can/socketcand.hpp"

using namespace rtcanboot::twin;
using namespace rtcanboot::twin::can;

namespace {

class StderrReporter final : public Reporter {
 public:
  void report(Severity severity, const std::string& source, const std::string& message, std::uint32_t) override {
    const char* s = severity == Severity::kFault ? "fault" : severity == Severity::kWarning ? "warning" : "info";
    std::fprintf(stderr, "[%s %s] %s\n", source.c_str(), s, message.c_str());
  }
};

}  // namespace

int main(int argc, char** argv) {
  long timeout_ms = 20000;
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], "--timeout-ms") == 0) timeout_ms = std::strtol(argv[i + 1], nullptr, 10);
  }
  testing::FakeClock clock;
  StderrReporter reporter;
  Bus bus(clock, reporter, 1'000'000);
  bus.set_trace([](const std::string& line) { std::fprintf(stderr, "%s\n", line.c_str()); });
  Endpoint device("scripted-device");
  bus.attach(device);

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
  device.on_receive([&](const TimedFrame& f) {
    if (f.frame.id != 0x601 || answered) return;
    std::printf("RX %s\n", format_candump(f.eof, "can0", f.frame).c_str());
    std::fflush(stdout);
    rtcanboot::CanFrame reply;
    reply.id = 0x581;
    reply.dlc = 8;
    const std::uint8_t bytes[8] = {0x43, 0x00, 0x10, 0x00, 0x92, 0x01, 0x00, 0x00};
    std::memcpy(reply.data, bytes, 8);
    device.send(reply);
    answered = true;
    answered_at = f.eof;
  });
  clock.schedule(clock.now() + 100'000'000, [&] {
    rtcanboot::CanFrame boot;
    boot.id = 0x701;
    boot.dlc = 1;
    device.send(boot);
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
  return 0;
}
