// Time for the host side: the CANopen master never reads a clock directly, it asks a Clock.
// Real buses use the monotonic wall clock; in-process simulations use virtual time.
#pragma once

#include "rtcanboot/types.hpp"

namespace rtcanboot::host {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual Micros now() const = 0;
};

// std::chrono::steady_clock in microseconds.
class SteadyClock final : public Clock {
 public:
  Micros now() const override;
};

// A clock that only moves when told to (simulations, tests).
class ManualClock final : public Clock {
 public:
  Micros now() const override { return now_; }
  void set(Micros t) {
    if (t > now_) now_ = t;
  }
  void advance(Micros dt) { now_ += dt; }

 private:
  Micros now_ = 0;
};

}  // namespace rtcanboot::host
