// An in-process CAN bus in virtual time. The master's side is a Transport; nodes are anything
// with on_frame/poll (the core's CanopenNode behind a small adapter, a twin endpoint, a scripted
// test peer). receive() runs the simulation until a frame for the master arrives or the deadline
// is reached, so the master never waits in wall-clock time.
//
// Frame durations follow can_timing at the configured bit rate (0 = instantaneous); a fault hook
// can drop or reorder frames to test recovery.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <vector>

#include "rtcanboot/host/transport.hpp"

namespace rtcanboot::host {

class SimNode {
 public:
  virtual ~SimNode() = default;
  virtual void on_frame(const CanFrame& frame, Micros now) = 0;
  virtual void poll(Micros now) = 0;
  // Earliest time the node wants poll() (UINT64_MAX for "only when a frame arrives").
  virtual Micros next_wakeup() const = 0;
};

class SimBus final : public Transport {
 public:
  enum class Fault { kDeliver, kDrop, kDelay };  // kDelay: deliver after the next frame
  // Called for every frame put on the bus; from_master tells the direction.
  using FaultHook = std::function<Fault(const CanFrame&, bool from_master)>;

  explicit SimBus(std::uint32_t bitrate = 0) : bitrate_(bitrate) {}

  // Nodes are not owned. Each gets a FrameSink to transmit through.
  FrameSink& attach(SimNode& node);
  void detach(SimNode& node);
  void set_fault_hook(FaultHook hook) { fault_ = std::move(hook); }

  // Runs the nodes alone (no master) until `t`.
  void run_until(Micros t);

  ManualClock& manual_clock() { return clock_; }
  Clock& clock() override { return clock_; }
  void send(const CanFrame& frame) override { put(frame, nullptr); }
  std::optional<RxEvent> receive(Micros deadline) override;
  std::string describe() const override { return "sim://"; }
  std::optional<std::uint32_t> bitrate() const override {
    return bitrate_ != 0 ? std::optional<std::uint32_t>(bitrate_) : std::nullopt;
  }

  std::uint64_t frames_on_bus() const { return frames_; }
  std::uint64_t frames_dropped() const { return dropped_; }

 private:
  struct Sink final : FrameSink {
    SimBus* bus = nullptr;
    SimNode* node = nullptr;
    bool send(const CanFrame& frame) override {
      bus->put(frame, node);
      return true;
    }
  };
  struct InFlight {
    Micros at;
    CanFrame frame;
    SimNode* from;
  };
  void put(const CanFrame& frame, SimNode* from);
  void schedule(const CanFrame& frame, SimNode* from);
  // Processes everything due at or before t; returns true if it did anything.
  bool step(Micros limit);

  std::uint32_t bitrate_;
  ManualClock clock_;
  std::vector<SimNode*> nodes_;
  std::map<SimNode*, std::unique_ptr<Sink>> sinks_;
  std::deque<InFlight> flight_;
  std::deque<RxEvent> master_rx_;
  std::optional<InFlight> delayed_[2];  // per direction (0 = nodes, 1 = master)
  FaultHook fault_;
  Micros bus_free_ = 0;
  std::uint64_t frames_ = 0;
  std::uint64_t dropped_ = 0;
};

}  // namespace rtcanboot::host
