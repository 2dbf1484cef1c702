// A CiA 305 LSS slave: passive like the rest of the core (frames in through on_frame(), answers out
// through the FrameSink, time through poll()). CanopenNode owns one; the bootloader and
// applications built with the application kit get it from there.
//
// Services: switch state global and selective, configure node-ID, configure bit timing (standard
// table), activate bit timing with its switch delay, store configuration (through LssStorage),
// inquire identity and node-ID, identify remote slave, identify non-configured remote slave and
// Fastscan. A switch-selective or identify sequence starts over when any other LSS request
// interrupts it. Requests that are not valid in the present LSS state get no answer (CiA 305).
#pragma once

#include <cstdint>

#include "rtcanboot/lss.hpp"
#include "rtcanboot/node_config.hpp"
#include "rtcanboot/types.hpp"

namespace rtcanboot {

struct LssResult {
  std::uint8_t code = lss::kSuccess;  // byte 1 of the answer
  std::uint8_t spec = 0;              // byte 2 (implementation-specific detail)
};

// Where "store configuration" puts the pending node-ID and bit rate (the bootloader: the
// provisioning record). Asynchronous, like the flash under it.
class LssStorage {
 public:
  // Starts storing. False: nothing was started and `*refused` says why (answered at once).
  virtual bool begin_store(std::uint8_t node_id, std::uint32_t bitrate, LssResult* refused) = 0;
  // Advances the store; true while it is still running.
  virtual bool store_busy() = 0;
  // The result once store_busy() returned false.
  virtual LssResult store_result() const = 0;

 protected:
  ~LssStorage() = default;
};

struct LssConfig {
  NodeIdentity identity;                                   // the LSS address (0x1018:1..4)
  std::uint8_t node_id = lss::kUnconfigured;               // active node-ID at start
  std::uint32_t bitrate = 125'000;                         // active bit rate at start
  std::uint16_t supported_rates = lss::kAllStandardRates;  // bit n: table index n is supported
  LssStorage* storage = nullptr;  // nullptr: store configuration not supported
};

class LssSlave {
 public:
  LssSlave(FrameSink& sink, const LssConfig& config);

  // Handles a frame on the LSS master COB-ID (others are ignored); true when it was one.
  bool on_frame(const CanFrame& frame, Micros now);
  void poll(Micros now);
  Micros next_deadline() const;

  lss::Mode mode() const { return mode_; }
  std::uint8_t active_node_id() const { return active_node_id_; }
  std::uint8_t pending_node_id() const { return pending_node_id_; }
  std::uint32_t active_bitrate() const { return active_bitrate_; }
  std::uint32_t pending_bitrate() const { return pending_bitrate_; }
  bool configured() const { return active_node_id_ != lss::kUnconfigured; }
  const NodeIdentity& identity() const { return identity_; }

  // NMT reset communication: the pending node-ID becomes the active one (CiA 305).
  void reset_communication() { active_node_id_ = pending_node_id_; }
  // An unconfigured slave that got a node-ID was switched back to waiting: its owner must now
  // enter NMT reset communication by itself (and call reset_communication()). Reported once.
  bool take_reset_communication_request();

  // Activate bit timing: no frame may be sent until the second switch delay has passed.
  bool transmit_allowed() const;
  // True once, when the first switch delay has passed: the owner switches the controller to
  // `*bitrate` now (active_bitrate() already reports it).
  bool take_bitrate_switch(std::uint32_t* bitrate);
  bool store_in_progress() const { return storing_; }

 private:
  void on_request(const std::uint8_t* data, Micros now);
  void on_waiting_request(lss::Cs cs, const std::uint8_t* data);
  void on_configuration_request(lss::Cs cs, const std::uint8_t* data, Micros now);
  void on_identify(lss::Cs cs, const std::uint8_t* data);
  void on_fastscan(const std::uint8_t* data);
  void answer(lss::Cs cs, std::uint8_t b1 = 0, std::uint8_t b2 = 0);
  void answer_u32(lss::Cs cs, std::uint32_t value);
  void send(lss::Cs cs, const std::uint8_t (&data)[7]);
  bool unconfigured() const {
    return active_node_id_ == lss::kUnconfigured && pending_node_id_ == lss::kUnconfigured;
  }

  enum class Switch : std::uint8_t { kNone, kBeforeSwitch, kAfterSwitch };

  FrameSink& frames_;
  NodeIdentity identity_;
  std::uint16_t supported_rates_;
  LssStorage* storage_;

  lss::Mode mode_ = lss::Mode::kWaiting;
  std::uint8_t active_node_id_;
  std::uint8_t pending_node_id_;
  std::uint32_t active_bitrate_;
  std::uint32_t pending_bitrate_;
  bool reset_communication_requested_ = false;

  // Switch state selective: how many of vendor, product, revision, serial have arrived in order.
  std::uint8_t selective_step_ = 0;
  NodeIdentity selective_;
  // Identify remote slave: how many of vendor, product, revision low/high, serial low/high.
  std::uint8_t identify_step_ = 0;
  std::uint32_t identify_[5] = {};
  // Fastscan: the identity part the slave compares next.
  std::uint8_t fastscan_part_ = 0;

  Switch switch_ = Switch::kNone;
  Micros switch_at_ = 0;  // end of the current switch-delay period
  Micros switch_delay_ = 0;
  bool switch_due_ = false;

  bool storing_ = false;
  Micros last_poll_ = 0;
};

}  // namespace rtcanboot
