// Interfaces between the twin's SoC (CPU, memory map, NVIC, virtual time) and its peripheral
// models (FlexCAN, CCM, SRC, ...). A model sees register accesses relative to its base address,
// schedules its own future events on the virtual clock and raises interrupt lines.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace rtcanboot::twin {

// Virtual time in nanoseconds since power-on of the twin. Deterministic: derived from executed
// instructions and modelled durations only.
using Nanos = std::uint64_t;

enum class Severity { kInfo, kWarning, kFault };

// Where models report what the real chip would not do (strictness) or what the user should see.
class Reporter {
 public:
  virtual ~Reporter() = default;
  // `pc` is the program counter of the access that caused it (0 if not caused by the CPU).
  virtual void report(Severity severity, const std::string& source, const std::string& message,
                      std::uint32_t pc) = 0;
};

// The virtual clock and its event queue.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual Nanos now() const = 0;
  // Runs `action` when virtual time reaches `at` (not before the current instruction retires).
  // Returns an id for cancel().
  virtual std::uint64_t schedule(Nanos at, std::function<void()> action) = 0;
  virtual void cancel(std::uint64_t id) = 0;
};

// Interrupt lines into the NVIC (device IRQ numbers as in the RT1064 reference manual).
class InterruptController {
 public:
  virtual ~InterruptController() = default;
  // Level-sensitive view: a model sets the line while its flag & enable condition holds.
  virtual void set_irq_level(unsigned irq, bool asserted) = 0;
};

// A memory-mapped peripheral block.
class Peripheral {
 public:
  virtual ~Peripheral() = default;
  virtual std::string name() const = 0;
  virtual std::uint32_t size() const = 0;  // bytes of address space it decodes
  // Register access at `offset` from the block base; width 1, 2 or 4 bytes. `pc` is for reports.
  virtual std::uint32_t read(std::uint32_t offset, unsigned width, std::uint32_t pc) = 0;
  virtual void write(std::uint32_t offset, std::uint32_t value, unsigned width,
                     std::uint32_t pc) = 0;
  // Power-on reset (`warm` = system reset through AIRCR/watchdog: registers documented to survive
  // a warm reset keep their values).
  virtual void reset(bool warm) = 0;

  // For the board's idle detector (docs/twin.md, "Idle skipping"): a register whose value changes
  // with time alone (a counter), which a wait loop polls; and a write that changes nothing the
  // firmware can read back (a watchdog service), which a wait loop may do while it waits.
  // `offset` is word-aligned for the first.
  virtual bool is_time_register(std::uint32_t offset) const {
    (void)offset;
    return false;
  }
  virtual bool is_service_write(std::uint32_t offset, std::uint32_t value) const {
    (void)offset;
    (void)value;
    return false;
  }
};

}  // namespace rtcanboot::twin
