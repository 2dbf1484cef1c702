// Real-time pacing for a twin bus that outside programs can see (socketcand clients, a SocketCAN
// interface): virtual time follows the wall clock. Shared by SocketcandServer and SocketcanBridge.
#pragma once

#include <chrono>
#include <functional>

#include "twin/peripheral.hpp"

namespace rtcanboot::twin::can {

class WallClockPacer {
 public:
  using SteadyClock = std::chrono::steady_clock;
  // Waits for input for at most `max_wait`; true when input arrived (the pacer then returns early).
  using WaitInput = std::function<bool(SteadyClock::duration max_wait)>;

  // When the simulation falls behind the wall clock by more than `max_lag` (a slow stretch, a
  // debugger pause, an emulator inside an emulator), pacing restarts from the current moment
  // instead of letting virtual time race to catch up.
  explicit WallClockPacer(std::chrono::milliseconds max_lag = std::chrono::milliseconds(100))
      : max_lag_(max_lag) {}

  // Forget the anchor (pacing was off for a while).
  void reset() { anchored_ = false; }

  // Returns the virtual time the caller may advance the clock to (<= target, >= now): blocks,
  // through `wait`, until the wall clock reaches the moment that corresponds to `target`; returns
  // earlier, with the virtual time of that moment, when `wait` reports input.
  Nanos pace(Nanos now, Nanos target, const WaitInput& wait);

  // How often pacing fell behind by more than max_lag and restarted.
  unsigned long long restarts() const { return restarts_; }

 private:
  std::chrono::milliseconds max_lag_;
  bool anchored_ = false;
  SteadyClock::time_point anchor_wall_;
  Nanos anchor_virtual_ = 0;
  unsigned long long restarts_ = 0;
};

}  // namespace rtcanboot::twin::can
