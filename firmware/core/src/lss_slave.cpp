#include "rtcanboot/lss_slave.hpp"

#include "rtcanboot/bytes.hpp"

namespace rtcanboot {

using lss::Cs;
using lss::Mode;

namespace {

constexpr std::uint8_t cs_value(Cs cs) {
  return static_cast<std::uint8_t>(cs);
}

// Position of a request inside the switch-selective sequence (1..4), 0 when it is none of it.
std::uint8_t selective_position(Cs cs) {
  const std::uint8_t v = cs_value(cs);
  if (v >= cs_value(Cs::kSwitchSelectiveVendor) && v <= cs_value(Cs::kSwitchSelectiveSerial)) {
    return static_cast<std::uint8_t>(v - cs_value(Cs::kSwitchSelectiveVendor) + 1);
  }
  return 0;
}

// Position inside the identify-remote-slave sequence (1..6), 0 when it is none of it.
std::uint8_t identify_position(Cs cs) {
  const std::uint8_t v = cs_value(cs);
  if (v >= cs_value(Cs::kIdentifyVendor) && v <= cs_value(Cs::kIdentifySerialHigh)) {
    return static_cast<std::uint8_t>(v - cs_value(Cs::kIdentifyVendor) + 1);
  }
  return 0;
}

std::uint32_t identity_part(const NodeIdentity& identity, std::uint8_t part) {
  switch (part) {
    case 0:
      return identity.vendor_id;
    case 1:
      return identity.product_code;
    case 2:
      return identity.revision;
    default:
      return identity.serial;
  }
}

}  // namespace

LssSlave::LssSlave(FrameSink& sink, const LssConfig& config)
    : frames_(sink),
      identity_(config.identity),
      supported_rates_(config.supported_rates),
      storage_(config.storage),
      active_node_id_(lss::valid_node_id(config.node_id) ? config.node_id : lss::kUnconfigured),
      pending_node_id_(active_node_id_),
      active_bitrate_(config.bitrate),
      pending_bitrate_(config.bitrate) {}

bool LssSlave::on_frame(const CanFrame& frame, Micros now) {
  if (frame.id != lss::kMasterCobId || frame.extended() || frame.remote()) return false;
  if (frame.dlc != lss::kFrameLength) return true;  // not a valid LSS request: ignored
  // While the bit rate changes the slave neither answers nor starts anything new.
  if (switch_ != Switch::kNone) return true;
  on_request(frame.data, now);
  return true;
}

void LssSlave::on_request(const std::uint8_t* data, Micros now) {
  const Cs cs = static_cast<Cs>(data[0]);

  // Any request that does not continue a sequence interrupts it: the sequence starts over.
  const std::uint8_t selective = selective_position(cs);
  if (selective != selective_step_ + 1 && selective != 1) selective_step_ = 0;
  const std::uint8_t identify = identify_position(cs);
  if (identify != identify_step_ + 1 && identify != 1) identify_step_ = 0;

  if (cs == Cs::kSwitchGlobal) {
    const std::uint8_t mode = data[1];
    if (mode == static_cast<std::uint8_t>(Mode::kWaiting)) {
      // An unconfigured slave that got a node-ID enters NMT reset communication by itself.
      if (mode_ == Mode::kConfiguration && active_node_id_ == lss::kUnconfigured &&
          pending_node_id_ != lss::kUnconfigured) {
        reset_communication_requested_ = true;
      }
      mode_ = Mode::kWaiting;
      fastscan_part_ = 0;
    } else if (mode == static_cast<std::uint8_t>(Mode::kConfiguration)) {
      mode_ = Mode::kConfiguration;
    }
    return;  // other modes: ignored, and never answered
  }
  if (identify != 0 || cs == Cs::kIdentifyNonConfigured) {
    on_identify(cs, data);
    return;
  }
  if (mode_ == Mode::kWaiting) {
    on_waiting_request(cs, data);
  } else {
    on_configuration_request(cs, data, now);
  }
}

void LssSlave::on_waiting_request(Cs cs, const std::uint8_t* data) {
  const std::uint8_t selective = selective_position(cs);
  if (selective != 0) {
    if (selective != 1 && selective != selective_step_ + 1) return;  // out of order (step reset)
    const std::uint32_t value = load_le32(data + 1);
    switch (selective) {
      case 1:
        selective_.vendor_id = value;
        break;
      case 2:
        selective_.product_code = value;
        break;
      case 3:
        selective_.revision = value;
        break;
      default:
        selective_.serial = value;
        break;
    }
    selective_step_ = selective;
    if (selective == 4) {
      selective_step_ = 0;
      if (selective_.vendor_id == identity_.vendor_id &&
          selective_.product_code == identity_.product_code &&
          selective_.revision == identity_.revision && selective_.serial == identity_.serial) {
        mode_ = Mode::kConfiguration;
        answer(Cs::kSwitchSelectiveResponse);
      }
    }
    return;
  }
  // Configuration services are not available in the waiting state: no answer.
  if (cs == Cs::kFastscan) on_fastscan(data);
}

void LssSlave::on_fastscan(const std::uint8_t* data) {
  if (!unconfigured()) return;  // Fastscan finds unconfigured slaves only
  const std::uint32_t id_number = load_le32(data + 1);
  const std::uint8_t bit_checked = data[5];
  const std::uint8_t sub = data[6];
  const std::uint8_t next = data[7];
  const std::uint8_t last_part = static_cast<std::uint8_t>(lss::FastscanPart::kSerial);
  if ((bit_checked > lss::kFastscanMaxBit && bit_checked != lss::kFastscanConfirm) ||
      sub > last_part || next > last_part) {
    return;  // malformed: no answer
  }
  if (bit_checked == lss::kFastscanConfirm) {
    fastscan_part_ = 0;
    answer(Cs::kIdentifySlaveResponse);
    return;
  }
  if (sub != fastscan_part_) return;
  const std::uint32_t mask = 0xFFFF'FFFFU << bit_checked;
  if ((identity_part(identity_, sub) & mask) != (id_number & mask)) return;
  if (bit_checked == 0) {
    fastscan_part_ = next;
    // The last part matched completely (LSSNext wraps back): this slave is the one selected.
    if (next < sub) mode_ = Mode::kConfiguration;
  }
  answer(Cs::kIdentifySlaveResponse);
}

void LssSlave::on_identify(Cs cs, const std::uint8_t* data) {
  if (cs == Cs::kIdentifyNonConfigured) {
    if (unconfigured()) answer(Cs::kIdentifyNonConfiguredResponse);
    return;
  }
  const std::uint8_t position = identify_position(cs);
  if (position != 1 && position != identify_step_ + 1) return;  // out of order (step reset)
  if (position <= 5) {
    identify_[position - 1] = load_le32(data + 1);
    identify_step_ = position;
    return;
  }
  identify_step_ = 0;
  const std::uint32_t serial_high = load_le32(data + 1);
  if (identify_[0] == identity_.vendor_id && identify_[1] == identity_.product_code &&
      identify_[2] <= identity_.revision && identity_.revision <= identify_[3] &&
      identify_[4] <= identity_.serial && identity_.serial <= serial_high) {
    answer(Cs::kIdentifySlaveResponse);
  }
}

void LssSlave::on_configuration_request(Cs cs, const std::uint8_t* data, Micros now) {
  if (storing_) return;  // the answer to the store comes first
  switch (cs) {
    case Cs::kConfigureNodeId: {
      const std::uint8_t id = data[1];
      if (!lss::valid_node_id(id)) {
        answer(cs, lss::kNodeIdOutOfRange);
        return;
      }
      pending_node_id_ = id;
      answer(cs, lss::kSuccess);
      return;
    }
    case Cs::kConfigureBitTiming: {
      const std::uint8_t index = data[2];
      const std::uint32_t bitrate = lss::bitrate_of(data[1], index);
      if (bitrate == 0 || (supported_rates_ & (1U << index)) == 0) {
        answer(cs, lss::kBitTimingNotSupported);
        return;
      }
      pending_bitrate_ = bitrate;
      answer(cs, lss::kSuccess);
      return;
    }
    case Cs::kActivateBitTiming:
      switch_delay_ = milliseconds(load_le16(data + 1));
      switch_ = Switch::kBeforeSwitch;
      switch_at_ = now + switch_delay_;
      poll(now);  // a delay of 0 switches at once
      return;
    case Cs::kStoreConfiguration: {
      if (storage_ == nullptr) {
        answer(cs, lss::kStoreNotSupported);
        return;
      }
      LssResult refused;
      if (!storage_->begin_store(pending_node_id_, pending_bitrate_, &refused)) {
        answer(cs, refused.code, refused.spec);
        return;
      }
      storing_ = true;
      poll(now);
      return;
    }
    case Cs::kInquireVendor:
      answer_u32(cs, identity_.vendor_id);
      return;
    case Cs::kInquireProduct:
      answer_u32(cs, identity_.product_code);
      return;
    case Cs::kInquireRevision:
      answer_u32(cs, identity_.revision);
      return;
    case Cs::kInquireSerial:
      answer_u32(cs, identity_.serial);
      return;
    case Cs::kInquireNodeId:
      answer(cs, active_node_id_);
      return;
    default:
      return;  // unknown or not a configuration-state service: no answer
  }
}

void LssSlave::poll(Micros now) {
  last_poll_ = now;
  if (storing_ && !storage_->store_busy()) {
    storing_ = false;
    const LssResult result = storage_->store_result();
    answer(Cs::kStoreConfiguration, result.code, result.spec);
  }
  if (switch_ == Switch::kBeforeSwitch && now >= switch_at_) {
    active_bitrate_ = pending_bitrate_;
    switch_due_ = true;
    switch_ = Switch::kAfterSwitch;
    switch_at_ = now + switch_delay_;
  }
  if (switch_ == Switch::kAfterSwitch && now >= switch_at_) switch_ = Switch::kNone;
}

Micros LssSlave::next_deadline() const {
  Micros deadline = ~Micros{0};
  if (switch_ != Switch::kNone) deadline = switch_at_;
  // A store runs on the flash: poll it about every 100 us, like the flash manager.
  if (storing_ && last_poll_ + 100 < deadline) deadline = last_poll_ + 100;
  return deadline;
}

bool LssSlave::take_reset_communication_request() {
  const bool requested = reset_communication_requested_;
  reset_communication_requested_ = false;
  return requested;
}

bool LssSlave::transmit_allowed() const {
  return switch_ == Switch::kNone;
}

bool LssSlave::take_bitrate_switch(std::uint32_t* bitrate) {
  if (!switch_due_) return false;
  switch_due_ = false;
  *bitrate = active_bitrate_;
  return true;
}

void LssSlave::answer(Cs cs, std::uint8_t b1, std::uint8_t b2) {
  std::uint8_t data[7] = {b1, b2};
  send(cs, data);
}

void LssSlave::answer_u32(Cs cs, std::uint32_t value) {
  std::uint8_t data[7] = {};
  store_le32(data, value);
  send(cs, data);
}

void LssSlave::send(Cs cs, const std::uint8_t (&data)[7]) {
  CanFrame frame;
  frame.id = lss::kSlaveCobId;
  frame.dlc = lss::kFrameLength;
  frame.data[0] = cs_value(cs);
  for (int i = 0; i < 7; ++i) frame.data[1 + i] = data[i];
  frames_.send(frame);
}

}  // namespace rtcanboot
