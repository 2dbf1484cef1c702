#include "twin/can/pacer.hpp"

#include <algorithm>

namespace rtcanboot::twin::can {

Nanos WallClockPacer::pace(Nanos now, Nanos target, const WaitInput& wait) {
  const auto wall_now = SteadyClock::now();
  if (anchored_ && now >= anchor_virtual_ &&
      wall_now - (anchor_wall_ + std::chrono::nanoseconds(now - anchor_virtual_)) > max_lag_) {
    anchored_ = false;  // fell behind: restart real-time pacing from here
    ++restarts_;
  }
  if (!anchored_) {
    anchored_ = true;
    anchor_wall_ = wall_now;
    anchor_virtual_ = now;
  }
  if (target <= now) return target;
  for (;;) {
    const auto wall = SteadyClock::now();
    const auto wall_target = anchor_wall_ + std::chrono::nanoseconds(target - anchor_virtual_);
    if (wall >= wall_target) return target;
    const auto max_wait =
        std::min<SteadyClock::duration>(wall_target - wall, std::chrono::milliseconds(100));
    if (wait(max_wait)) {
      const auto elapsed =
          std::chrono::duration_cast<std::chrono::nanoseconds>(SteadyClock::now() - anchor_wall_)
              .count();
      const Nanos v = anchor_virtual_ + static_cast<Nanos>(std::max<long long>(elapsed, 0));
      return std::clamp(v, now, target);
    }
  }
}

}  // namespace rtcanboot::twin::can
