// The CANopen slave of an rtcanboot node: NMT slave, boot-up and heartbeat producer, SDO server,
// object dictionary and CiA 305 LSS slave. Passive and deterministic: frames and time go in, frames
// go out through the injected FrameSink. The bootloader (NodeConfig::is_application == false) stays
// PRE-OPERATIONAL; the application follows NMT start/stop.
#pragma once

#include <cstdint>

#include "rtcanboot/canopen_defs.hpp"
#include "rtcanboot/lss_slave.hpp"
#include "rtcanboot/node_config.hpp"
#include "rtcanboot/object_dictionary.hpp"
#include "rtcanboot/program_control.hpp"
#include "rtcanboot/sdo_server.hpp"
#include "rtcanboot/types.hpp"

namespace rtcanboot {

class CanopenNode {
 public:
  // `sink` and `program` must outlive the node; `config` is copied (LSS may change the node-ID).
  CanopenNode(FrameSink& sink, ProgramControl& program, const NodeConfig& config);

  // Sends the boot-up message (0x700 + node-ID, one byte 0x00) and starts the heartbeat (first
  // heartbeat one period later). Frames that arrive before start() are ignored. Without a
  // node-ID the node only serves LSS until a master configures it; it then enters reset
  // communication by itself and sends its boot-up message.
  void start(Micros now);
  void on_frame(const CanFrame& frame, Micros now);
  // SDO timeout, heartbeat, held block acknowledges.
  void poll(Micros now);
  // Latest time poll() must run next (idle strategy). While a download waits for sink space,
  // poll() should also run whenever the sink may have made room.
  Micros next_deadline() const;

  // NMT reset node arrived: the owner resets the chip (after the frame queue has drained). Inside
  // a block download sub-block this becomes true only once the rest of the sub-block has passed
  // (SdoServer::draining()), at most NodeConfig::block_drain_time after its last segment.
  bool reset_node_requested() const { return reset_node_requested_ && !sdo_.draining(); }
  canopen::NmtState state() const { return state_; }
  // An SDO request or a node-addressed (not broadcast) NMT command arrived since start().
  bool addressed() const { return addressed_; }
  // `frame` addresses this node as addressed() counts it: an SDO request (DLC 8 on 0x600 +
  // node-ID) or an NMT command (DLC 2) naming its node-ID. Also before start(): the bootloader's
  // listen window asks it of frames it does not pass on.
  bool addresses(const CanFrame& frame) const;
  bool transfer_active() const { return sdo_.transfer_active(); }

  std::uint8_t node_id() const { return config_.node_id; }
  bool configured() const { return config_.node_id != lss::kUnconfigured; }
  const LssSlave& lss() const { return lss_; }
  // LSS activate bit timing: true once when the controller must switch to `*bitrate` now.
  bool take_bitrate_switch(std::uint32_t* bitrate) { return lss_.take_bitrate_switch(bitrate); }
  std::uint16_t heartbeat_ms() const { return objects_.heartbeat_ms(); }
  // While true the heartbeat is not sent (a listen-along follower keeps quiet during the lead's
  // download); the periods that pass meanwhile are skipped, not sent late.
  void set_heartbeat_silent(bool silent) { heartbeat_silent_ = silent; }

 private:
  void on_nmt(const CanFrame& frame, Micros now);
  void reset_communication(Micros now);
  void boot_up(Micros now);
  void send_heartbeat();
  void reschedule_heartbeat(Micros now);

  FrameSink& frames_;
  NodeConfig config_;  // node_id follows LSS
  canopen::ObjectDictionary objects_;
  canopen::SdoServer sdo_;
  LssSlave lss_;

  bool started_ = false;
  bool heartbeat_silent_ = false;
  bool reset_node_requested_ = false;
  bool addressed_ = false;
  canopen::NmtState state_ = canopen::NmtState::kBootUp;
  std::uint16_t scheduled_heartbeat_ms_ = 0;  // 0x1017 value next_heartbeat_ was computed from
  Micros next_heartbeat_ = 0;
};

}  // namespace rtcanboot
