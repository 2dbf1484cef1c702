// FlexCAN model (i.MX RT1064 FLEXCAN1..3, classic CAN frames) as a twin peripheral and a node
// on a twin::can::Bus. Register map and fields: shared/reference/rt1064.md §5; behaviour and
// simplifications: docs/twin-can.md.
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "twin/can/bus.hpp"
#include "twin/peripheral.hpp"

namespace rtcanboot::twin::can {

struct FlexCanConfig {
  unsigned instance = 2;  // 1, 2 or 3 (CBT, FDCTRL and FDCBT exist on 3 only)
  unsigned irq = 0;       // NVIC line; 0 = the RT1064 default (36, 37, 154)
  // The board it belongs to: the bus knows the controller as "<owner>/FLEXCANn" (several boards
  // on one bus each have a FLEXCAN2; fault rules name one receiver, mode reports one node).
  std::string owner;
  // CAN clock root (CCM CSCMR2 CAN_CLK_SEL/PODF) reaching this instance, in Hz, after its
  // CCGR gates; 0 = no clock. Called whenever the model needs the bit rate.
  std::function<std::uint32_t()> clock_hz;
  // True when CANx_TX and CANx_RX are routed to pads (IOMUXC mux + daisy). Without it the node
  // does not reach the bus.
  std::function<bool()> pins_muxed;
  // Latency of the MDIS/LPMACK, FRZ/FRZACK and SOFTRST handshakes.
  Nanos handshake_ns = 2000;
  // Injected fault: the next `freeze_refusals` freeze requests are never acknowledged (FRZACK
  // stays 0, the controller keeps running) until the request is withdrawn or a soft reset
  // completes; ~0U refuses every one. Tests the drivers' freeze timeouts (errata 9595 fallback).
  unsigned freeze_refusals = 0;
};

class FlexCan : public Peripheral, public BusNode {
 public:
  static constexpr std::uint32_t kBase1 = 0x401D0000U;
  static constexpr std::uint32_t kBase2 = 0x401D4000U;
  static constexpr std::uint32_t kBase3 = 0x401D8000U;
  static std::uint32_t base_address(unsigned instance);
  static unsigned default_irq(unsigned instance);

  FlexCan(FlexCanConfig config, Clock& clock, InterruptController& irq, Reporter& reporter);
  ~FlexCan() override;

  // Peripheral
  std::string name() const override;
  std::uint32_t size() const override { return 0x4000; }
  std::uint32_t read(std::uint32_t offset, unsigned width, std::uint32_t pc) override;
  void write(std::uint32_t offset, std::uint32_t value, unsigned width, std::uint32_t pc) override;
  void reset(bool warm) override;

  // BusNode
  std::string node_name() const override {
    return config_.owner.empty() ? name() : config_.owner + "/" + name();
  }
  double node_bitrate() const override { return bitrate(); }
  NodeMode node_mode() const override;
  bool tx_peek(CanFrame& frame) override;
  void tx_begin(Nanos sof) override;
  void tx_end(bool success, Nanos sof, Nanos eof) override;
  void rx(const CanFrame& frame, Nanos sof, Nanos eof) override;
  void on_error(BusError error, bool as_transmitter, Nanos at) override;
  void on_fault_state(FaultState from, FaultState to, Nanos at) override;
  bool auto_recovery() const override;

  // The SoC calls this after CCM or IOMUXC changes that may affect clock_hz()/pins_muxed().
  void config_changed();

  // Bit rate from the CAN clock and CTRL1 (or CBT when CBT.BTF=1 on FLEXCAN3); 0 without clock.
  double bitrate() const;
  // Time quanta per bit of the active timing (1 + PROPSEG+1 + PSEG1+1 + PSEG2+1).
  unsigned tq_per_bit() const;
  bool frozen() const { return frozen_; }
  // See FlexCanConfig::freeze_refusals.
  void refuse_freeze(unsigned count) { config_.freeze_refusals = count; }
  std::uint64_t freeze_refused() const { return freeze_refused_count_; }
  bool disabled() const { return disabled_; }
  bool irq_asserted() const { return irq_level_; }

  // Frames that reached the controller but were lost: RX FIFO overflow, an unread FULL buffer
  // overwritten (OVERRUN), or a frame dropped while its target buffer was locked.
  std::uint64_t lost_frames() const { return lost_frames_; }
  std::uint64_t overruns() const { return overruns_; }
  std::uint64_t fifo_overflows() const { return fifo_overflows_; }
  // Transmit MBs the firmware asked to abort (CODE = ABORT with MCR.AEN) while they were
  // pending or on the wire: the moments errata 6032 is about.
  std::uint64_t tx_aborts() const { return tx_aborts_; }
  std::uint64_t frames_received() const { return frames_received_; }
  std::uint64_t frames_transmitted() const { return frames_transmitted_; }

 private:
  struct Stored {
    CanFrame frame;
    std::uint16_t timestamp = 0;
    std::uint32_t filter_hit = 0;
  };

  std::uint32_t read32(std::uint32_t offset, std::uint32_t pc);
  // `mask` = the bytes actually written (partial writes).
  void write32(std::uint32_t offset, std::uint32_t value, std::uint32_t mask, std::uint32_t pc);
  void write_mcr(std::uint32_t value, std::uint32_t mask, std::uint32_t pc);
  // Writes `value` under `mask` into `reg`, but bits in `freeze_only` only in freeze mode;
  // ignored bits are reported.
  void guarded_write(std::uint32_t& reg, std::uint32_t value, std::uint32_t mask,
                     std::uint32_t freeze_only, const char* reg_name, std::uint32_t pc);
  void write_mb_word(std::uint32_t word, std::uint32_t value, std::uint32_t mask, std::uint32_t pc);
  std::uint32_t read_mb_word(std::uint32_t word);

  void report(Severity severity, const std::string& message, std::uint32_t pc);
  std::uint64_t later(Nanos at, std::function<void()> action);
  void schedule_mode_update();
  void update_mode();
  void soft_reset();
  void hard_reset();
  void enter_normal(Nanos now);
  void leave_normal(Nanos now);

  std::uint32_t clock_hz() const;
  Nanos bit_time_ns() const;
  std::uint16_t timer_at(Nanos t) const;
  void unlock();
  void lock(unsigned mb);

  unsigned first_mb() const;  // first MB available for TX/RX (after the RX FIFO area)
  unsigned last_mb() const;   // MCR.MAXMB (clamped to 63)
  unsigned code(unsigned mb) const { return (ram_[mb * 4] >> 24) & 0xFU; }
  void set_code(unsigned mb, unsigned code);
  CanFrame mb_frame(unsigned mb) const;
  void set_iflag(unsigned bit);
  void update_irq();

  void receive(const CanFrame& frame, Nanos sof);
  bool fifo_accepts(const CanFrame& frame, std::uint32_t& filter_hit) const;
  bool fifo_push(const CanFrame& frame, Nanos sof, std::uint32_t filter_hit);
  std::optional<unsigned> match_mb(const CanFrame& frame) const;
  void move_in(unsigned mb, const CanFrame& frame, std::uint16_t timestamp);
  void fifo_pop();
  void loopback_kick();

  FlexCanConfig config_;
  Clock& clock_;
  InterruptController& irq_;
  Reporter& reporter_;
  std::string name_;

  // Registers (MCR holds the writable bits; status bits are composed on read).
  std::uint32_t mcr_ = 0;
  std::uint32_t ctrl1_ = 0;
  std::uint32_t ctrl2_ = 0;
  std::uint32_t esr1_ = 0;  // latched error and interrupt bits
  std::uint32_t imask1_ = 0, imask2_ = 0, iflag1_ = 0, iflag2_ = 0;
  std::uint32_t rxmgmask_ = 0, rx14mask_ = 0, rx15mask_ = 0, rxfgmask_ = 0;
  std::uint32_t cbt_ = 0, fdctrl_ = 0, fdcbt_ = 0, gfwr_ = 0;
  std::array<std::uint32_t, 256> ram_{};   // message buffer RAM 0x080..0x47F
  std::array<std::uint32_t, 64> rximr_{};  // 0x880..0x97F

  // Mode state.
  bool disabled_ = true;          // LPMACK
  bool frozen_ = false;           // FRZACK
  bool normal_ = false;           // out of freeze and disable, participating
  bool softrst_ = false;          // SOFTRST in progress
  bool freeze_refusing_ = false;  // the current freeze request is refused (injected fault)
  std::uint64_t freeze_refused_count_ = 0;
  bool mode_event_pending_ = false;
  std::uint64_t mode_event_ = 0;
  bool clock_warned_ = false;

  // Free-running timer.
  std::uint16_t timer_base_ = 0;
  Nanos timer_epoch_ = 0;
  bool timer_running_ = false;

  // Message buffer service state.
  int locked_mb_ = -1;
  std::array<bool, 64> serviced_{};
  std::optional<std::pair<CanFrame, std::uint16_t>> smb_;  // frame waiting for a locked MB
  int tx_peeked_mb_ = -1;
  int tx_inflight_mb_ = -1;
  bool tx_inflight_deactivated_ = false;
  CanFrame tx_inflight_frame_;
  bool loopback_busy_ = false;
  std::array<bool, 64> abort_pending_{};
  bool freeze_waits_for_tx_ = false;

  // Legacy RX FIFO.
  std::deque<Stored> fifo_;
  Stored fifo_output_;

  bool irq_level_ = false;
  bool tx_warn_ = false, rx_warn_ = false;
  std::uint64_t lost_frames_ = 0, overruns_ = 0, fifo_overflows_ = 0;
  std::uint64_t tx_aborts_ = 0;
  std::uint64_t frames_received_ = 0, frames_transmitted_ = 0;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

}  // namespace rtcanboot::twin::can
