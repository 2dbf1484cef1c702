// In-process binding to a virtual-time CAN bus such as the twin's (twin/include/twin/can/bus.hpp):
// the master talks through an endpoint object and "waiting" means running the simulation.
//
// Header-only and duck-typed, so the host library does not depend on the twin: any Endpoint with
//   void send(const CanFrame&);
//   std::optional<T> receive();   // T has .frame (CanFrame) and .eof (nanoseconds)
//   std::size_t rx_pending() const;
// works. The owner supplies the simulation's clock and a runner:
//
//   twin::can::Endpoint ep("master");
//   bus.attach(ep);
//   host::EndpointTransport<twin::can::Endpoint> transport(
//       ep, [&] { return events.now(); },
//       [&](std::uint64_t deadline_ns, const std::function<bool()>& stop) {
//         simulation.run_until(deadline_ns, stop);   // run boards + bus, return early on stop()
//       });
//   host::Master master(transport);
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>

#include "rtcanboot/host/transport.hpp"

namespace rtcanboot::host {

template <typename Endpoint>
class EndpointTransport final : public Transport {
 public:
  using NowNs = std::function<std::uint64_t()>;
  // Runs the simulation until virtual time `deadline_ns`, or earlier once `stop()` is true.
  using Runner = std::function<void(std::uint64_t deadline_ns, const std::function<bool()>& stop)>;

  EndpointTransport(Endpoint& endpoint, NowNs now_ns, Runner run, std::string name = "twin")
      : endpoint_(endpoint),
        clock_(std::move(now_ns)),
        run_(std::move(run)),
        name_(std::move(name)) {}

  Clock& clock() override { return clock_; }
  void send(const CanFrame& frame) override { endpoint_.send(frame); }

  std::optional<RxEvent> receive(Micros deadline) override {
    if (auto ev = take()) return ev;
    const std::uint64_t deadline_ns = deadline >= UINT64_MAX / 1000 ? UINT64_MAX : deadline * 1000;
    run_(deadline_ns, [this] { return endpoint_.rx_pending() != 0; });
    return take();
  }

  std::string describe() const override { return "in-process " + name_; }

  // An endpoint that knows its bit rate (the twin's: node_bitrate()) tells it.
  std::optional<std::uint32_t> bitrate() const override {
    if constexpr (requires(const Endpoint& e) { e.node_bitrate(); }) {
      const double rate = endpoint_.node_bitrate();
      if (rate > 0) return static_cast<std::uint32_t>(rate);
    }
    return std::nullopt;
  }

 private:
  class NsClock final : public Clock {
   public:
    explicit NsClock(NowNs now) : now_(std::move(now)) {}
    Micros now() const override { return now_() / 1000; }

   private:
    NowNs now_;
  };

  std::optional<RxEvent> take() {
    auto rx = endpoint_.receive();
    if (!rx) return std::nullopt;
    RxEvent ev;
    ev.kind = RxEvent::Kind::kFrame;
    ev.frame = rx->frame;
    ev.timestamp = rx->eof / 1000;
    return ev;
  }

  Endpoint& endpoint_;
  NsClock clock_;
  Runner run_;
  std::string name_;
};

}  // namespace rtcanboot::host
