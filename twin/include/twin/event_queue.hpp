// The virtual clock of the twin: one deterministic event queue shared by every board and the
// CAN bus of a simulation. Events at the same time run in the order they were scheduled.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <utility>

#include "twin/peripheral.hpp"

namespace rtcanboot::twin {

inline constexpr Nanos kNever = std::numeric_limits<Nanos>::max();

constexpr Nanos microseconds_ns(std::uint64_t us) {
  return us * 1000;
}
constexpr Nanos milliseconds_ns(std::uint64_t ms) {
  return ms * 1000 * 1000;
}

class EventQueue final : public Clock {
 public:
  // While a board executes instructions its local time runs ahead of the queue's time; it
  // installs a time source so models called from its MMIO accesses see the board's time.
  using TimeSource = std::function<Nanos()>;

  Nanos now() const override { return local_ ? local_() : now_; }

  std::uint64_t schedule(Nanos at, std::function<void()> action) override {
    const std::uint64_t id = ++next_id_;
    events_.emplace(Key{at, id}, std::move(action));
    if (observer_) observer_(at);
    return id;
  }

  void cancel(std::uint64_t id) override {
    for (auto it = events_.begin(); it != events_.end(); ++it) {
      if (it->first.second == id) {
        events_.erase(it);
        return;
      }
    }
  }

  Nanos next_event_time() const { return events_.empty() ? kNever : events_.begin()->first.first; }
  Nanos queue_time() const { return now_; }

  // Runs every event due at or before `t` (in time order) and leaves the queue time at `t`.
  void advance_to(Nanos t) {
    while (!events_.empty() && events_.begin()->first.first <= t) {
      auto node = events_.extract(events_.begin());
      if (node.key().first > now_) now_ = node.key().first;
      node.mapped()();
    }
    if (t > now_) now_ = t;
  }

  void set_local_time_source(TimeSource source) { local_ = std::move(source); }
  void clear_local_time_source() { local_ = nullptr; }
  // Told about every newly scheduled event (a running board ends its time slice early when an
  // event falls before the end of the slice).
  void set_schedule_observer(std::function<void(Nanos)> observer) {
    observer_ = std::move(observer);
  }

 private:
  using Key = std::pair<Nanos, std::uint64_t>;
  std::map<Key, std::function<void()>> events_;
  Nanos now_ = 0;
  std::uint64_t next_id_ = 0;
  TimeSource local_;
  std::function<void(Nanos)> observer_;
};

}  // namespace rtcanboot::twin
