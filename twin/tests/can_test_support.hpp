// Small fakes of the twin's SoC interfaces for the CAN unit tests: a deterministic event-queue
// clock, a reporter that records, an interrupt controller that records line levels.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "twin/peripheral.hpp"

namespace rtcanboot::twin::can::testing {

class FakeClock final : public Clock {
 public:
  Nanos now() const override { return now_; }
  std::uint64_t schedule(Nanos at, std::function<void()> action) override {
    const std::uint64_t id = ++next_id_;
    events_.emplace(std::make_pair(at < now_ ? now_ : at, id), std::move(action));
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
  Nanos next_event() const {
    return events_.empty() ? std::numeric_limits<Nanos>::max() : events_.begin()->first.first;
  }
  // Runs every event due at or before `t`, then leaves the time at `t`.
  void run_until(Nanos t) {
    while (!events_.empty() && events_.begin()->first.first <= t) {
      auto node = events_.extract(events_.begin());
      now_ = node.key().first;
      node.mapped()();
    }
    if (t > now_) now_ = t;
  }
  void run_for(Nanos d) { run_until(now_ + d); }
  bool idle() const { return events_.empty(); }

 private:
  std::map<std::pair<Nanos, std::uint64_t>, std::function<void()>> events_;
  Nanos now_ = 0;
  std::uint64_t next_id_ = 0;
};

class RecordingReporter final : public Reporter {
 public:
  struct Entry {
    Severity severity;
    std::string source;
    std::string message;
    std::uint32_t pc;
  };
  void report(Severity severity, const std::string& source, const std::string& message,
              std::uint32_t pc) override {
    entries.push_back({severity, source, message, pc});
  }
  std::size_t count(Severity severity) const {
    std::size_t n = 0;
    for (const Entry& e : entries) n += e.severity == severity ? 1U : 0U;
    return n;
  }
  bool has(Severity severity, const std::string& text) const {
    for (const Entry& e : entries) {
      if (e.severity == severity && e.message.find(text) != std::string::npos) return true;
    }
    return false;
  }
  std::vector<Entry> entries;
};

class FakeIrq final : public InterruptController {
 public:
  void set_irq_level(unsigned irq, bool asserted) override { levels[irq] = asserted; }
  bool level(unsigned irq) const {
    auto it = levels.find(irq);
    return it != levels.end() && it->second;
  }
  std::map<unsigned, bool> levels;
};

}  // namespace rtcanboot::twin::can::testing
