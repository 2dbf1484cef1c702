#include "rtcanboot/host/catch_node.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <optional>
#include <utility>

#include "rtcanboot/host/error.hpp"

namespace rtcanboot::host {

namespace {

using canopen::BootReason;

// Puts the master's frame hook back however catch_node ends.
class FrameHook {
 public:
  FrameHook(Master& master, std::function<void(const CanFrame&, Micros)> hook)
      : master_(master), previous_(master.on_frame) {
    master_.on_frame = [this, hook = std::move(hook)](const CanFrame& f, Micros t) {
      if (previous_) previous_(f, t);
      hook(f, t);
    };
  }
  ~FrameHook() { master_.on_frame = previous_; }
  FrameHook(const FrameHook&) = delete;
  FrameHook& operator=(const FrameHook&) = delete;

 private:
  Master& master_;
  std::function<void(const CanFrame&, Micros)> previous_;
};

}  // namespace

CanFrame catch_request(std::uint8_t node) {
  CanFrame f;
  f.id = canopen::kSdoRxBase + node;
  f.dlc = 8;
  f.data[0] = 0x2F;  // expedited download, 1 byte
  f.data[1] = static_cast<std::uint8_t>(canopen::od::kProgramControl & 0xFF);
  f.data[2] = static_cast<std::uint8_t>(canopen::od::kProgramControl >> 8);
  f.data[3] = 1;
  f.data[4] = static_cast<std::uint8_t>(canopen::ProgramCommand::kStop);
  return f;
}

CatchResult catch_node(Master& master, const CatchOptions& options,
                       const std::function<void(const std::string&)>& note) {
  const std::uint8_t node = options.node;
  const Micros period = std::max<Micros>(options.period, 1'000);
  bool heard = false;     // any frame of the node
  bool answered = false;  // an SDO answer or a boot-up since the last check
  Micros last_answer = 0;
  FrameHook hook(master, [&](const CanFrame& f, Micros t) {
    if (f.extended() || f.remote()) return;
    if (f.id == canopen::kSdoTxBase + node) {
      heard = answered = true;
      last_answer = t;
    } else if (f.id == canopen::kHeartbeatBase + node && f.dlc >= 1) {
      heard = true;
      if (f.data[0] == 0x00) {
        answered = true;
        last_answer = t;
      }
    }
  });
  auto tell = [&](const std::string& line) {
    if (note) note(line);
  };

  const CanFrame request = catch_request(node);
  const Micros start = master.now();
  const Micros deadline = start + options.timeout;
  CatchResult result;
  Micros next_send = start;
  for (;;) {
    if (master.now() >= deadline) {
      if (!heard) {
        throw Error(ErrorKind::kNoNode,
                    fmt::format("node {} sent nothing within {:.1f} s: power-cycle it while "
                                "'stop --catch' runs (is the node-ID right?)",
                                node, static_cast<double>(options.timeout) / 1e6));
      }
      throw Error(ErrorKind::kTimeout,
                  fmt::format("node {} was not caught within {:.1f} s: it answered but never "
                              "stayed in its bootloader (listen window off, or an application "
                              "that does not return on 0x1F51:1 = 0?)",
                              node, static_cast<double>(options.timeout) / 1e6));
    }
    if (master.now() >= next_send) {
      master.transport().send(request);
      ++result.requests;
      next_send = std::max(next_send + period, master.now() + period / 2);
    }
    master.listen_until(std::min(next_send, deadline));
    if (!answered) continue;

    // The node said something: stop repeating, let answers to requests still queued come in
    // (a bus with no other node acknowledges nothing while the node is off), then ask.
    const Micros caught_at = last_answer;
    const Micros quiet_for = std::max<Micros>(2 * period, 50'000);
    const Micros settle_end = master.now() + 1'000'000;
    while (master.now() < settle_end && master.now() < last_answer + quiet_for) {
      master.listen_until(std::min(settle_end, last_answer + quiet_for));
    }
    answered = false;
    std::optional<std::uint8_t> running;
    try {
      running = master.upload_u8(node, canopen::od::kRtcanbootInfo, 1);
    } catch (const SdoError& e) {
      tell(fmt::format("node {} answered, but not 0x5F00:1 ({}); trying again", node, e.what()));
    }
    if (running == canopen::kRunningBootloader) {
      result.after = caught_at > start ? caught_at - start : 0;
      try {
        result.reason =
            static_cast<BootReason>(master.upload_u8(node, canopen::od::kRtcanbootInfo, 5));
      } catch (const SdoError&) {
        result.reason = BootReason::kHeldByMaster;
      }
      return result;
    }
    if (running == canopen::kRunningApplication) {
      tell(fmt::format("node {}: the application runs; asking it again to return to the bootloader",
                       node));
    }
    next_send = master.now();
  }
}

}  // namespace rtcanboot::host
