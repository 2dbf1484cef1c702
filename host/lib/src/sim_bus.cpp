#include "rtcanboot/host/sim_bus.hpp"

#include <algorithm>
#include <limits>

#include "rtcanboot/can_timing.hpp"

namespace rtcanboot::host {

FrameSink& SimBus::attach(SimNode& node) {
  nodes_.push_back(&node);
  auto sink = std::make_unique<Sink>();
  sink->bus = this;
  sink->node = &node;
  FrameSink& ref = *sink;
  sinks_[&node] = std::move(sink);
  return ref;
}

void SimBus::detach(SimNode& node) {
  nodes_.erase(std::remove(nodes_.begin(), nodes_.end(), &node), nodes_.end());
  for (auto& f : flight_) {
    if (f.from == &node) f.from = nullptr;  // still delivered, but the sender is gone
  }
}

void SimBus::put(const CanFrame& frame, SimNode* from) {
  const int dir = from == nullptr ? 1 : 0;
  const Fault fault = fault_ ? fault_(frame, from == nullptr) : Fault::kDeliver;
  if (fault == Fault::kDrop) {
    ++dropped_;
    return;
  }
  if (fault == Fault::kDelay && !delayed_[dir]) {
    delayed_[dir] = InFlight{0, frame, from};
    return;
  }
  schedule(frame, from);
  if (delayed_[dir]) {
    const InFlight held = *delayed_[dir];
    delayed_[dir].reset();
    schedule(held.frame, held.from);
  }
}

void SimBus::schedule(const CanFrame& frame, SimNode* from) {
  const Micros now = clock_.now();
  Micros start = std::max(now, bus_free_);
  Micros duration = 0;
  if (bitrate_ != 0) {
    const std::uint64_t ns = can_timing::bits_to_ns(can_timing::frame_slot_bits(frame), bitrate_);
    duration = (ns + 999) / 1000;
  }
  bus_free_ = start + duration;
  flight_.push_back(InFlight{start + duration, frame, from});
  ++frames_;
}

bool SimBus::step(Micros limit) {
  Micros next = std::numeric_limits<Micros>::max();
  if (!flight_.empty()) next = flight_.front().at;
  for (SimNode* n : nodes_) next = std::min(next, n->next_wakeup());
  if (next > limit) return false;
  clock_.set(next);
  const Micros now = clock_.now();
  while (!flight_.empty() && flight_.front().at <= now) {
    const InFlight f = flight_.front();
    flight_.pop_front();
    for (SimNode* n : nodes_) {
      if (n != f.from) n->on_frame(f.frame, now);
    }
    if (f.from != nullptr) {
      RxEvent ev;
      ev.kind = RxEvent::Kind::kFrame;
      ev.frame = f.frame;
      ev.timestamp = now;
      master_rx_.push_back(ev);
    }
  }
  for (SimNode* n : nodes_) {
    if (n->next_wakeup() <= now) n->poll(now);
  }
  // A node that keeps asking for poll at the same instant must not freeze time.
  // (Everything on the bus due now was delivered above.)
  for (SimNode* n : nodes_) {
    if (n->next_wakeup() > now) continue;
    clock_.advance(1);
    break;
  }
  return true;
}

void SimBus::run_until(Micros t) {
  while (step(t)) {
  }
  clock_.set(t);
}

std::optional<RxEvent> SimBus::receive(Micros deadline) {
  for (;;) {
    if (!master_rx_.empty()) {
      RxEvent ev = master_rx_.front();
      master_rx_.pop_front();
      return ev;
    }
    if (!step(deadline)) {
      clock_.set(deadline);
      return std::nullopt;
    }
  }
}

}  // namespace rtcanboot::host
