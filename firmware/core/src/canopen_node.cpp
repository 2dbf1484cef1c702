#include "rtcanboot/canopen_node.hpp"

namespace rtcanboot {

using canopen::NmtCommand;
using canopen::NmtState;

namespace {

LssConfig lss_config(const NodeConfig& config) {
  LssConfig lss;
  lss.identity = config.identity;
  lss.node_id = config.node_id;
  lss.bitrate = config.bitrate;
  lss.supported_rates = config.lss_rates;
  lss.storage = config.lss_storage;
  return lss;
}

}  // namespace

CanopenNode::CanopenNode(FrameSink& sink, ProgramControl& program, const NodeConfig& config)
    : frames_(sink),
      config_(config),
      objects_(program, config_),
      sdo_(sink, objects_, config_),
      lss_(sink, lss_config(config)) {
  config_.node_id = lss_.active_node_id();  // anything but 1..127 means unconfigured
}

void CanopenNode::start(Micros now) {
  started_ = true;
  reset_node_requested_ = false;
  addressed_ = false;
  reset_communication(now);
}

void CanopenNode::on_frame(const CanFrame& frame, Micros now) {
  if (!started_ || frame.extended() || frame.remote()) return;
  if (lss_.on_frame(frame, now)) {
    // A node that just got its first node-ID enters reset communication by itself (CiA 305).
    if (lss_.take_reset_communication_request()) reset_communication(now);
    return;
  }
  if (!configured()) return;  // no NMT, no SDO without a node-ID
  if (frame.id == canopen::kNmtCobId) {
    on_nmt(frame, now);
    return;
  }
  if (frame.id != canopen::kSdoRxBase + config_.node_id) return;
  // CiA 301: no SDO in STOPPED. SDO frames are always 8 bytes long.
  if (state_ == NmtState::kStopped || frame.dlc != 8) return;
  addressed_ = true;
  sdo_.on_request(frame, now);
  reschedule_heartbeat(now);  // 0x1017 may just have been written
}

bool CanopenNode::addresses(const CanFrame& frame) const {
  if (frame.extended() || frame.remote() || !configured()) return false;
  if (frame.id == canopen::kNmtCobId) return frame.dlc == 2 && frame.data[1] == config_.node_id;
  return frame.id == canopen::kSdoRxBase + config_.node_id && frame.dlc == 8;
}

void CanopenNode::on_nmt(const CanFrame& frame, Micros now) {
  if (frame.dlc != 2) return;
  const std::uint8_t target = frame.data[1];
  if (target != 0 && target != config_.node_id) return;
  if (target != 0) addressed_ = true;

  switch (static_cast<NmtCommand>(frame.data[0])) {
    case NmtCommand::kStart:
      if (config_.is_application) state_ = NmtState::kOperational;
      break;
    case NmtCommand::kStop:
      if (config_.is_application) {
        state_ = NmtState::kStopped;
        sdo_.cancel(canopen::Abort::kDeviceState, CancelCause::kNmt, now);
      }
      break;
    case NmtCommand::kEnterPreOperational:
      state_ = NmtState::kPreOperational;
      break;
    case NmtCommand::kResetNode:
      // The transfer ends here. reset_node_requested() waits until the rest of an interrupted
      // block download sub-block has passed, so that the node after the reset never reads it.
      sdo_.cancel(canopen::Abort::kDeviceState, CancelCause::kNmt, now);
      reset_node_requested_ = true;
      break;
    case NmtCommand::kResetCommunication:
      reset_communication(now);
      break;
    default:
      break;  // unknown command: ignored
  }
}

void CanopenNode::reset_communication(Micros now) {
  sdo_.cancel(canopen::Abort::kDeviceState, CancelCause::kNmt, now);
  objects_.reset_communication();
  lss_.reset_communication();  // a node-ID configured by LSS becomes active
  config_.node_id = lss_.active_node_id();
  if (!configured()) {
    state_ = NmtState::kBootUp;  // stays in initialisation: LSS only
    scheduled_heartbeat_ms_ = 0;
    return;
  }
  boot_up(now);
}

void CanopenNode::boot_up(Micros now) {
  state_ = config_.is_application && config_.self_starting ? NmtState::kOperational
                                                           : NmtState::kPreOperational;
  CanFrame frame;
  frame.id = canopen::kHeartbeatBase + config_.node_id;
  frame.dlc = 1;
  frame.data[0] = static_cast<std::uint8_t>(NmtState::kBootUp);
  frames_.send(frame);
  scheduled_heartbeat_ms_ = objects_.heartbeat_ms();
  next_heartbeat_ = now + milliseconds(scheduled_heartbeat_ms_);
}

void CanopenNode::reschedule_heartbeat(Micros now) {
  if (objects_.heartbeat_ms() == scheduled_heartbeat_ms_) return;
  // A new period counts from the write.
  scheduled_heartbeat_ms_ = objects_.heartbeat_ms();
  next_heartbeat_ = now + milliseconds(scheduled_heartbeat_ms_);
}

void CanopenNode::send_heartbeat() {
  CanFrame frame;
  frame.id = canopen::kHeartbeatBase + config_.node_id;
  frame.dlc = 1;
  frame.data[0] = static_cast<std::uint8_t>(state_);
  // A heartbeat that is still queued when the next one is due is out of date: replace it.
  frames_.send_latest(frame);
}

void CanopenNode::poll(Micros now) {
  if (!started_) return;
  lss_.poll(now);
  if (!configured()) return;
  sdo_.poll(now);
  reschedule_heartbeat(now);
  // No frame while LSS switches the bit rate: the heartbeat waits for the end of the delay.
  if (scheduled_heartbeat_ms_ != 0 && now >= next_heartbeat_ && lss_.transmit_allowed()) {
    if (!heartbeat_silent_) send_heartbeat();
    // Keep the period free of drift; after a long stall start counting from now.
    next_heartbeat_ += milliseconds(scheduled_heartbeat_ms_);
    if (next_heartbeat_ <= now) next_heartbeat_ = now + milliseconds(scheduled_heartbeat_ms_);
  }
}

Micros CanopenNode::next_deadline() const {
  if (!started_) return ~Micros{0};
  Micros deadline = lss_.next_deadline();
  if (!configured()) return deadline;
  if (sdo_.next_deadline() < deadline) deadline = sdo_.next_deadline();
  if (scheduled_heartbeat_ms_ != 0 && next_heartbeat_ < deadline && lss_.transmit_allowed()) {
    deadline = next_heartbeat_;
  }
  return deadline;
}

}  // namespace rtcanboot
