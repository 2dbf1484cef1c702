// Monotonic microseconds from GPT1: the 24 MHz crystal divided to 1 MHz by the GPT prescaler,
// free-running 32-bit counter extended to 64 bits in software. One compare channel (OCR1)
// wakes the core from WFI at the next deadline.
#pragma once

#include "rtcanboot/types.hpp"

namespace rtcanboot::imxrt1064 {

class Timebase {
 public:
  // Gates GPT1 on, soft-resets it and starts it at 1 MHz from the crystal.
  void start();
  // Resets GPT1 and gates it off (before jumping to an application).
  void stop();
  // Current time. Call at least once per counter wrap (71 minutes); the idle loop's longest
  // sleep is far shorter.
  Micros now();
  // Arms the OCR1 interrupt for `deadline`. Returns false when the deadline is already (or
  // almost) due, in which case no interrupt is armed and the caller must not sleep.
  bool arm_wakeup(Micros deadline);
  // Called from the GPT1 interrupt: clears and disarms the compare.
  static void on_interrupt();

 private:
  std::uint32_t last_count_ = 0;
  std::uint32_t wraps_ = 0;
  std::uint32_t compare_ = 0;  // OCR1 as last written
  bool compare_valid_ = false;
};

}  // namespace rtcanboot::imxrt1064
