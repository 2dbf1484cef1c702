// FlexCAN driver for classic CAN on FLEXCAN1, 2 or 3 (build-time choice,
// RTCANBOOT_FLEXCAN_INSTANCE). Reception: the legacy RX FIFO (6 frames deep, accepting every
// identifier) drained by the interrupt handler into a 256-frame software ring, so the main loop
// may be busy for ~28 ms at 1 Mbit/s (8-byte frames) before a frame is lost. Transmission: one
// message buffer (MB9) fed from a software queue in order, refilled from the interrupt handler.
// Bus-off recovery is the controller's automatic one (CTRL1.BOFFREC = 0).
#pragma once

#include <atomic>
#include <cstdint>

#include "rtcanboot/imxrt1064/timebase.hpp"
#include "rtcanboot/lss.hpp"
#include "rtcanboot/types.hpp"

#ifndef RTCANBOOT_FLEXCAN_INSTANCE
#define RTCANBOOT_FLEXCAN_INSTANCE 2
#endif

namespace rtcanboot::imxrt1064 {

// Bit timing in time quanta (not register encodings).
struct CanBitTiming {
  std::uint32_t prescaler = 0;  // CAN clock cycles per time quantum
  std::uint8_t propagation = 0;
  std::uint8_t phase1 = 0;
  std::uint8_t phase2 = 0;
  std::uint8_t jump_width = 0;
  constexpr std::uint32_t quanta() const { return 1U + propagation + phase1 + phase2; }
};

// Finds a timing for `bitrate` from `clock_hz` with an exact bit rate and a sample point of
// 80..87.5 % (CiA 301 recommends 87.5 %), preferring 20 time quanta per bit. Returns a timing
// with prescaler 0 when none exists.
constexpr CanBitTiming compute_bit_timing(std::uint32_t clock_hz, std::uint32_t bitrate) {
  // {propagation, phase1, phase2, jump width}; each segment fits CTRL1 (1..8 tq).
  constexpr std::uint8_t kLayouts[][4] = {
      {8, 8, 3, 3},  // 20 tq, sample point 85 %
      {7, 6, 2, 2},  // 16 tq, 87.5 %
      {5, 4, 2, 2},  // 12 tq, 83 %
      {4, 3, 2, 2},  // 10 tq, 80 %
      {3, 2, 2, 2},  //  8 tq, 75 % (last resort)
  };
  for (const auto& layout : kLayouts) {
    CanBitTiming timing{0, layout[0], layout[1], layout[2], layout[3]};
    const std::uint64_t per_bit = static_cast<std::uint64_t>(bitrate) * timing.quanta();
    if (bitrate == 0 || clock_hz % per_bit != 0) continue;
    const std::uint64_t prescaler = clock_hz / per_bit;
    if (prescaler < 1 || prescaler > 256) continue;
    timing.prescaler = static_cast<std::uint32_t>(prescaler);
    return timing;
  }
  return {};
}

// The LSS standard-table indices (bit n = index n) whose bit rate the clock can time exactly.
constexpr std::uint16_t lss_supported_rates(std::uint32_t clock_hz) {
  std::uint16_t rates = 0;
  for (std::uint8_t index = 0; index < lss::kBitTimingIndexCount; ++index) {
    const std::uint32_t rate = lss::bitrate_of(lss::kStandardTable, index);
    if (rate != 0 && compute_bit_timing(clock_hz, rate).prescaler != 0) {
      rates = static_cast<std::uint16_t>(rates | (1U << index));
    }
  }
  return rates;
}

// The CiA 301 bit rates (bit/s).
inline constexpr std::uint32_t kCia301Bitrates[] = {1'000'000, 800'000, 500'000, 250'000,
                                                    125'000,   50'000,  20'000,  10'000};

class FlexCan final : public FrameSink {
 public:
  static constexpr std::uint32_t kRxRingSize = 256;
  static constexpr std::uint32_t kTxQueueSize = 64;
  static constexpr std::uint32_t kInstance = RTCANBOOT_FLEXCAN_INSTANCE;
  static_assert(kInstance >= 1 && kInstance <= 3, "FLEXCAN1, 2 or 3");
  static_assert((kRxRingSize & (kRxRingSize - 1)) == 0 && (kTxQueueSize & (kTxQueueSize - 1)) == 0);

  // Gates the controller on, resets it and starts it at `bitrate` from a CAN clock root of
  // `clock_hz` (the board configures the root and the pins first). False for a bit rate the
  // clock cannot produce exactly. `clock` (running) bounds the mode handshakes in time.
  bool start(std::uint32_t clock_hz, std::uint32_t bitrate, Timebase& clock);
  // Leaves the bus: freeze mode, soft reset, module disabled, interrupt off, clock gated.
  void stop();
  // The bit timing the controller holds now, decoded from CTRL1 (or CBT when its BTF is set).
  CanBitTiming timing_in_use() const;

  // Queued in order and sent through MB9.
  bool send(const CanFrame& frame) override;
  // The heartbeat: sent through its own MB10, so that a heartbeat that keeps losing arbitration
  // on a busy bus never holds up an SDO answer queued after it (the controller sends the MB
  // with the lowest identifier first, CTRL1.LBUF = 0). A different frame replaces one still
  // waiting in MB10 (aborted with MCR.AEN); the same frame leaves the waiting one alone (it is
  // not out of date, and an abort is what errata 6032 is about).
  bool send_latest(const CanFrame& frame) override;
  // Next received frame; false when the ring is empty.
  bool receive(CanFrame& frame);
  bool rx_pending() const {
    return rx_head_.load(std::memory_order_acquire) != rx_tail_.load(std::memory_order_relaxed);
  }
  // Nothing queued and the last frame left the controller.
  bool tx_idle() const;
  // Counts and clears error-state events (bus-off); called from the main loop.
  void poll();
  // The controller's interrupt: drains the RX FIFO, refills the TX message buffer.
  void on_interrupt();

  std::uint32_t rx_dropped() const { return rx_dropped_; }
  std::uint32_t fifo_overflows() const { return fifo_overflows_; }
  std::uint32_t bus_off_count() const { return bus_off_count_; }
  // Out-of-date frames aborted in MB10 by send_latest().
  std::uint32_t tx_superseded() const { return tx_superseded_; }
  // Freeze handshakes that failed even after a soft reset (each also reported on the console).
  std::uint32_t freeze_failures() const { return freeze_failures_; }

 private:
  void load_next_tx();    // interrupts masked
  void load_latest_tx();  // interrupts masked

  // The rings themselves are zero-initialised arrays in flexcan.cpp (.bss, not image bytes).
  std::atomic<std::uint32_t> rx_head_{0};  // written by the interrupt handler
  std::atomic<std::uint32_t> rx_tail_{0};  // written by the main loop
  std::uint32_t tx_head_ = 0;              // both indices change with interrupts masked
  std::uint32_t tx_tail_ = 0;
  volatile bool tx_busy_ = false;
  // MB10 (send_latest): the frame waiting for it, the one MB10 holds, whether MB10 holds one,
  // whether it is aborting.
  CanFrame latest_frame_;
  CanFrame latest_loaded_;
  bool latest_pending_ = false;
  volatile bool latest_busy_ = false;
  bool latest_aborting_ = false;
  std::uint32_t tx_superseded_ = 0;
  std::uint32_t freeze_failures_ = 0;
  std::uint32_t rx_dropped_ = 0;
  std::uint32_t fifo_overflows_ = 0;
  std::uint32_t bus_off_count_ = 0;
};

// The driver instance (the one controller the build selected).
FlexCan& flexcan_driver();
// Interrupt entry for the vector table of the bootloader and of applications.
extern "C" void rtcanboot_flexcan_irq();

}  // namespace rtcanboot::imxrt1064
