// Progress display of long transfers: bytes, rate and ETA, as a bar redrawn in place on a
// terminal or as plain lines (one per 10 %) otherwise.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "rtcanboot/types.hpp"

namespace rtcanboot::host {

class ProgressDisplay {
 public:
  // `write` receives the text to print; `terminal` selects the bar; `now` is the clock (µs).
  ProgressDisplay(std::function<void(const std::string&)> write, bool terminal,
                  std::function<Micros()> now);

  void update(std::uint64_t done, std::uint64_t total);

  // "1.5/2.0 KiB", "30.2 KiB/s", "1:05": the pieces, for tests and other front ends.
  static std::string eta_text(std::uint64_t done, std::uint64_t total, double bytes_per_second);

 private:
  std::function<void(const std::string&)> write_;
  bool terminal_;
  std::function<Micros()> now_;
  bool started_ = false;
  bool finished_ = false;
  Micros t0_ = 0;
  Micros last_draw_ = 0;
  int last_decile_ = -1;
};

}  // namespace rtcanboot::host
