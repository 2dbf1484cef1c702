#include "rtcanboot/sdo_server.hpp"

#include <cstring>

#include "rtcanboot/bytes.hpp"
#include "rtcanboot/hash.hpp"

namespace rtcanboot::canopen {

namespace {

// Client command specifiers (bits 7..5 of byte 0).
constexpr std::uint8_t kCcsDownloadSegment = 0;
constexpr std::uint8_t kCcsInitiateDownload = 1;
constexpr std::uint8_t kCcsInitiateUpload = 2;
constexpr std::uint8_t kCcsUploadSegment = 3;
constexpr std::uint8_t kCcsAbort = 4;
constexpr std::uint8_t kCcsBlockUpload = 5;
constexpr std::uint8_t kCcsBlockDownload = 6;

// Block upload client sub-commands (bits 1..0).
constexpr std::uint8_t kBlockUploadInitiate = 0;
constexpr std::uint8_t kBlockUploadEndResponse = 1;
constexpr std::uint8_t kBlockUploadAck = 2;
constexpr std::uint8_t kBlockUploadStart = 3;

// Server responses (byte 0).
constexpr std::uint8_t kInitiateDownloadResponse = 0x60;
constexpr std::uint8_t kDownloadSegmentResponse = 0x20;
constexpr std::uint8_t kInitiateUploadExpedited = 0x43;        // | (4 - size) << 2
constexpr std::uint8_t kInitiateUploadSegmented = 0x41;        // size in bytes 4..7
constexpr std::uint8_t kBlockDownloadInitiateResponse = 0xA4;  // server CRC supported
constexpr std::uint8_t kBlockAck = 0xA2;
constexpr std::uint8_t kBlockDownloadEndResponse = 0xA1;
constexpr std::uint8_t kBlockUploadInitiateResponse = 0xC6;  // server CRC, size indicated
constexpr std::uint8_t kBlockUploadEnd = 0xC1;               // | unused << 2
constexpr std::uint8_t kAbortCommand = 0x80;

constexpr std::uint8_t kSegmentLast = 0x80;  // block segment: c bit
constexpr std::uint32_t kUnlimited = 0xFFFF'FFFFU;

std::uint32_t min_u32(std::uint32_t a, std::uint32_t b) {
  return a < b ? a : b;
}

bool is_initiate(std::uint8_t command) {
  const std::uint8_t ccs = command >> 5;
  return ccs == kCcsInitiateDownload || ccs == kCcsInitiateUpload ||
         (ccs == kCcsBlockUpload && (command & 0x03) == kBlockUploadInitiate) ||
         (ccs == kCcsBlockDownload && (command & 0x01) == 0);
}

Abort length_mismatch(std::uint32_t actual, std::uint32_t expected) {
  return actual > expected ? Abort::kLengthTooHigh : Abort::kLengthTooLow;
}

}  // namespace

SdoServer::SdoServer(FrameSink& frames, ObjectDictionary& objects, const NodeConfig& config)
    : frames_(frames), objects_(objects), config_(config) {}

void SdoServer::on_request(const CanFrame& frame, Micros now) {
  if (frame.dlc != 8) return;
  if (drained(frame, now)) return;
  const std::uint8_t command = frame.data[0];
  const std::uint8_t ccs = command >> 5;

  // Inside a sub-block every frame is a segment; only 0x80 (seqno 0, which is never valid) can
  // be told apart as the client's abort.
  const bool client_abort =
      state_ == State::kBlockDownloadSub ? command == kAbortCommand : ccs == kCcsAbort;
  if (client_abort) {
    if (state_ != State::kIdle) {
      cancel(static_cast<Abort>(load_le32(frame.data + 4)), CancelCause::kClientAbort, now);
    }
    return;
  }
  if (state_ == State::kBlockDownloadSub) {
    last_activity_ = now;
    on_block_download_segment(frame, now);
    return;
  }
  if (is_initiate(command)) {
    // A new transfer replaces whatever was going on.
    if (state_ != State::kIdle) cancel(Abort::kGeneral, CancelCause::kReplaced, now);
    last_activity_ = now;
    switch (ccs) {
      case kCcsInitiateDownload:
        start_download(frame, now);
        break;
      case kCcsInitiateUpload:
        start_upload(frame, now);
        break;
      case kCcsBlockUpload:
        start_block_upload(frame, now);
        break;
      default:
        start_block_download(frame, now);
        break;
    }
    return;
  }

  last_activity_ = now;
  switch (state_) {
    case State::kIdle:
      handle_idle_request(frame, now);
      return;
    case State::kDownloadSegmented:
      if (ccs == kCcsDownloadSegment) return on_download_segment(frame, now);
      break;
    case State::kUploadSegmented:
      if (ccs == kCcsUploadSegment) return on_upload_segment(frame, now);
      break;
    case State::kBlockDownloadEnd:
      if (ccs == kCcsBlockDownload) return on_block_download_end(frame, now);
      break;
    case State::kBlockUploadStart:
    case State::kBlockUploadSub:
    case State::kBlockUploadEnd:
      if (ccs == kCcsBlockUpload) return on_block_upload_request(frame, now);
      break;
    default:
      break;
  }
  abort(Abort::kCommandSpecifier, now);
}

void SdoServer::handle_idle_request(const CanFrame& frame, Micros now) {
  // Not an initiate and no transfer to continue. Segment requests carry data, not a multiplexer.
  const std::uint8_t ccs = frame.data[0] >> 5;
  if (ccs == kCcsDownloadSegment || ccs == kCcsUploadSegment) {
    send_abort_frame(0, 0, Abort::kCommandSpecifier, now);
  } else {
    send_abort_frame(load_le16(frame.data + 1), frame.data[3], Abort::kCommandSpecifier, now);
  }
}

// --- download ---------------------------------------------------------------------------------

void SdoServer::start_download(const CanFrame& frame, Micros now) {
  const std::uint8_t command = frame.data[0];
  object_ = objects_.find(load_le16(frame.data + 1), frame.data[3]);
  if (object_.abort != Abort::kNone) return abort(object_.abort, now);
  const OdEntry& entry = *object_.entry;
  if (!writable(entry.access)) return abort(Abort::kReadOnly, now);

  const bool expedited = (command & 0x02) != 0;
  size_indicated_ = (command & 0x01) != 0;
  const std::uint32_t fixed_size = data_type_size(entry.type);
  if (expedited) {
    // Without the size bit the four data bytes are "unspecified": take what the object needs.
    size_ = size_indicated_ ? 4U - ((command >> 2) & 0x03U) : (fixed_size != 0 ? fixed_size : 4U);
  } else {
    size_ = size_indicated_ ? load_le32(frame.data + 4) : 0;
  }
  if (fixed_size != 0 && (size_indicated_ || expedited) && size_ != fixed_size) {
    return abort(length_mismatch(size_, fixed_size), now);
  }
  if (fixed_size == 0) {
    DownloadSink* sink = objects_.domain_sink(object_);
    if (sink == nullptr) return abort(Abort::kDeviceState, now);
    const Abort begun = sink->begin(size_indicated_ || expedited, size_);
    if (begun != Abort::kNone) return abort(begun, now);
    sink_ = sink;
  }

  state_ = State::kDownloadSegmented;
  toggle_ = false;
  transferred_ = 0;
  value_length_ = 0;
  held_response_ = CanFrame{};
  held_response_.data[0] = kInitiateDownloadResponse;
  held_response_.data[1] = frame.data[1];
  held_response_.data[2] = frame.data[2];
  held_response_.data[3] = frame.data[3];
  response_held_ = true;
  response_held_since_ = now;
  hold_expired_ = false;
  if (expedited) {
    std::memcpy(pending_, frame.data + 4, size_);
    pending_length_ = size_;
    transferred_ = size_;
    pending_last_ = true;
  }
  advance_download(now);
}

void SdoServer::on_download_segment(const CanFrame& frame, Micros now) {
  // The client must wait for our confirmation before it sends the next segment.
  if (response_held_ || pending_length_ != 0) return abort(Abort::kGeneral, now);
  const std::uint8_t command = frame.data[0];
  const bool toggle = (command & 0x10) != 0;
  if (toggle != toggle_) return abort(Abort::kToggleBit, now);
  const std::uint32_t length = kSegmentBytes - ((command >> 1) & 0x07U);
  if (size_indicated_ && transferred_ + length > size_) return abort(Abort::kLengthTooHigh, now);

  std::memcpy(pending_, frame.data + 1, length);
  pending_length_ = length;
  pending_last_ = (command & 0x01) != 0;
  transferred_ += length;
  held_response_ = CanFrame{};
  held_response_.data[0] = static_cast<std::uint8_t>(kDownloadSegmentResponse | (command & 0x10));
  response_held_ = true;
  response_held_since_ = now;
  hold_expired_ = false;
  toggle_ = !toggle_;
  advance_download(now);
}

void SdoServer::advance_download(Micros now) {
  hold_expired_ = now - response_held_since_ >= config_.max_ack_hold;
  if (pending_length_ != 0) {
    const std::uint32_t length = min_u32(pending_length_, target_free_space());
    if (length != 0) {
      const Abort written = deliver(pending_, length);
      if (written != Abort::kNone) return abort(written, now, true);
      std::memmove(pending_, pending_ + length, pending_length_ - length);
      pending_length_ -= length;
    }
    if (pending_length_ != 0) return;  // the sink is full: hold the response
  }
  if (pending_last_) {
    if (size_indicated_ && transferred_ != size_) {
      return abort(length_mismatch(transferred_, size_), now);
    }
    const Abort finished = finish_download();
    if (finished != Abort::kNone) return abort(finished, now, true);
    send(held_response_, now);
    reset_state();
    return;
  }
  // Confirm only when the next segment will fit beside the reserve, which paces the client. A
  // sink that stays short of room (the flash busy for seconds) still gets its answer out within
  // max_ack_hold, from the reserve: the client is slowed, never left waiting into its timeout.
  const std::uint32_t room = target_free_space();
  const std::uint32_t reserve = sink_ != nullptr ? config_.pacing_reserve : 0;
  if (room < kSegmentBytes + reserve && !(hold_expired_ && room >= kSegmentBytes)) return;
  response_held_ = false;
  send(held_response_, now);
}

std::uint32_t SdoServer::target_free_space() const {
  return sink_ != nullptr ? sink_->free_space() : kUnlimited;
}

Abort SdoServer::deliver(const std::uint8_t* data, std::uint32_t length) {
  if (sink_ != nullptr) return sink_->write(data, length);
  if (value_length_ + length > data_type_size(object_.entry->type)) return Abort::kLengthTooHigh;
  std::memcpy(value_ + value_length_, data, length);
  value_length_ += length;
  return Abort::kNone;
}

Abort SdoServer::finish_download() {
  if (sink_ != nullptr) return sink_->end();
  return objects_.write(object_, value_, value_length_);
}

// --- upload -----------------------------------------------------------------------------------

void SdoServer::start_upload(const CanFrame& frame, Micros now) {
  object_ = objects_.find(load_le16(frame.data + 1), frame.data[3]);
  if (object_.abort != Abort::kNone) return abort(object_.abort, now);
  const Abort read = objects_.read(object_, upload_);
  if (read != Abort::kNone) return abort(read, now);

  CanFrame response;
  response.data[1] = frame.data[1];
  response.data[2] = frame.data[2];
  response.data[3] = frame.data[3];
  if (upload_.size >= 1 && upload_.size <= 4) {
    response.data[0] =
        static_cast<std::uint8_t>(kInitiateUploadExpedited | ((4 - upload_.size) << 2));
    std::memcpy(response.data + 4, upload_.data, upload_.size);
    send(response, now);
    reset_state();
    return;
  }
  response.data[0] = kInitiateUploadSegmented;
  store_le32(response.data + 4, upload_.size);
  state_ = State::kUploadSegmented;
  size_ = upload_.size;
  transferred_ = 0;
  toggle_ = false;
  send(response, now);
}

void SdoServer::on_upload_segment(const CanFrame& frame, Micros now) {
  const bool toggle = (frame.data[0] & 0x10) != 0;
  if (toggle != toggle_) return abort(Abort::kToggleBit, now);
  const std::uint32_t remaining = size_ - transferred_;
  const std::uint32_t length = min_u32(remaining, kSegmentBytes);
  const bool last = remaining <= kSegmentBytes;

  CanFrame response;
  response.data[0] = static_cast<std::uint8_t>((frame.data[0] & 0x10) |
                                               ((kSegmentBytes - length) << 1) | (last ? 1 : 0));
  std::memcpy(response.data + 1, upload_.data + transferred_, length);
  transferred_ += length;
  toggle_ = !toggle_;
  send(response, now);
  if (last) reset_state();
}

// --- block download ---------------------------------------------------------------------------

void SdoServer::start_block_download(const CanFrame& frame, Micros now) {
  const std::uint8_t command = frame.data[0];
  object_ = objects_.find(load_le16(frame.data + 1), frame.data[3]);
  if (object_.abort != Abort::kNone) return abort(object_.abort, now);
  const OdEntry& entry = *object_.entry;
  if (!writable(entry.access)) return abort(Abort::kReadOnly, now);

  size_indicated_ = (command & 0x02) != 0;
  size_ = size_indicated_ ? load_le32(frame.data + 4) : 0;
  const std::uint32_t fixed_size = data_type_size(entry.type);
  if (fixed_size != 0 && size_indicated_ && size_ != fixed_size) {
    return abort(length_mismatch(size_, fixed_size), now);
  }
  if (fixed_size == 0) {
    DownloadSink* sink = objects_.domain_sink(object_);
    if (sink == nullptr) return abort(Abort::kDeviceState, now);
    const Abort begun = sink->begin(size_indicated_, size_);
    if (begun != Abort::kNone) return abort(begun, now);
    sink_ = sink;
  }

  state_ = State::kBlockDownloadSub;
  crc_enabled_ = (command & 0x04) != 0;
  crc_ = 0;
  transferred_ = 0;
  value_length_ = 0;
  last_in_order_ = 0;
  last_sequence_ = 0;
  sub_block_over_ = false;
  last_segment_seen_ = false;
  const std::uint8_t block_size = next_block_size();
  block_size_ = block_size != 0 ? block_size : 1;

  CanFrame response;
  response.data[0] = kBlockDownloadInitiateResponse;
  response.data[1] = frame.data[1];
  response.data[2] = frame.data[2];
  response.data[3] = frame.data[3];
  response.data[4] = block_size_;
  send(response, now);
}

std::uint8_t SdoServer::next_block_size() const {
  if (sink_ == nullptr) return kMaxBlockSize;
  const std::uint32_t free = sink_->free_space();
  const std::uint32_t usable = free > config_.pacing_reserve ? free - config_.pacing_reserve : 0;
  return static_cast<std::uint8_t>(min_u32(kMaxBlockSize, usable / kSegmentBytes));
}

void SdoServer::on_block_download_segment(const CanFrame& frame, Micros now) {
  // While we hold the acknowledge the client has nothing to send; ignore strays.
  if (ack_held_) return;
  const std::uint8_t sequence = frame.data[0] & 0x7F;
  const bool last = (frame.data[0] & kSegmentLast) != 0;
  last_sequence_ = sequence;
  sub_block_over_ = last || sequence == block_size_;
  if (sequence == 0 || sequence > block_size_) return abort(Abort::kSequenceNumber, now);

  if (sequence == last_in_order_ + 1) {
    if (last) {
      // Held back until the end frame says how many of its bytes are data.
      std::memcpy(last_segment_, frame.data + 1, kSegmentBytes);
      last_in_order_ = sequence;
      last_segment_seen_ = true;
    } else if (size_indicated_ && transferred_ + kSegmentBytes > size_) {
      return abort(Abort::kLengthTooHigh, now);
    } else if (target_free_space() >= kSegmentBytes) {
      const Abort written = deliver(frame.data + 1, kSegmentBytes);
      if (written != Abort::kNone) return abort(written, now, true);
      crc_ = crc16_xmodem(crc_, frame.data + 1, kSegmentBytes);
      transferred_ += kSegmentBytes;
      last_in_order_ = sequence;
    }
    // No room (the sink shrank on its own): treat the segment as lost; the client resends it.
  }
  if (sequence == block_size_ || last) advance_block_ack(now, false);
}

void SdoServer::advance_block_ack(Micros now, bool forced) {
  std::uint8_t block_size = next_block_size();
  if (!last_segment_seen_ && block_size == 0) {
    if (!ack_held_) {
      ack_held_ = true;
      ack_held_since_ = now;
    }
    if (!forced && now - ack_held_since_ < config_.max_ack_hold) return;
  }
  // A forced acknowledge lets one segment through out of the reserve.
  if (block_size == 0) block_size = 1;
  ack_held_ = false;

  CanFrame ack;
  ack.data[0] = kBlockAck;
  ack.data[1] = last_in_order_;
  ack.data[2] = block_size;
  send(ack, now);
  if (last_segment_seen_) {
    state_ = State::kBlockDownloadEnd;
  } else {
    block_size_ = block_size;
    last_in_order_ = 0;
    last_sequence_ = 0;
    sub_block_over_ = false;
  }
}

void SdoServer::on_block_download_end(const CanFrame& frame, Micros now) {
  const std::uint8_t command = frame.data[0];
  if ((command & 0x01) == 0) return abort(Abort::kCommandSpecifier, now);
  if (end_held_) return;  // still waiting for room for the last bytes
  end_unused_ = (command >> 2) & 0x07;
  end_crc_ = load_le16(frame.data + 1);
  const std::uint32_t used = kSegmentBytes - end_unused_;
  if (size_indicated_ && transferred_ + used != size_) {
    return abort(length_mismatch(transferred_ + used, size_), now);
  }
  end_held_ = true;
  finish_block_download(now);
}

void SdoServer::finish_block_download(Micros now) {
  const std::uint32_t used = kSegmentBytes - end_unused_;
  if (target_free_space() < used) return;  // poll() retries; the SDO timeout bounds the wait
  const std::uint16_t crc = crc16_xmodem(crc_, last_segment_, used);
  if (crc_enabled_ && crc != end_crc_) return abort(Abort::kCrc, now);
  if (used != 0) {
    const Abort written = deliver(last_segment_, used);
    if (written != Abort::kNone) return abort(written, now, true);
  }
  const Abort finished = finish_download();
  if (finished != Abort::kNone) return abort(finished, now, true);
  CanFrame response;
  response.data[0] = kBlockDownloadEndResponse;
  send(response, now);
  reset_state();
}

// --- block upload -----------------------------------------------------------------------------

void SdoServer::start_block_upload(const CanFrame& frame, Micros now) {
  object_ = objects_.find(load_le16(frame.data + 1), frame.data[3]);
  if (object_.abort != Abort::kNone) return abort(object_.abort, now);
  const Abort read = objects_.read(object_, upload_);
  if (read != Abort::kNone) return abort(read, now);
  const std::uint8_t block_size = frame.data[4];
  if (block_size < 1 || block_size > kMaxBlockSize) return abort(Abort::kBlockSize, now);
  // Protocol switch threshold: small objects go the normal way, as the client asked.
  const std::uint8_t threshold = frame.data[5];
  if (threshold != 0 && upload_.size <= threshold) return start_upload(frame, now);

  state_ = State::kBlockUploadStart;
  crc_enabled_ = (frame.data[0] & 0x04) != 0;
  block_size_ = block_size;
  size_ = upload_.size;
  transferred_ = 0;

  CanFrame response;
  response.data[0] = kBlockUploadInitiateResponse;
  response.data[1] = frame.data[1];
  response.data[2] = frame.data[2];
  response.data[3] = frame.data[3];
  store_le32(response.data + 4, size_);
  send(response, now);
}

void SdoServer::on_block_upload_request(const CanFrame& frame, Micros now) {
  const std::uint8_t subcommand = frame.data[0] & 0x03;
  if (state_ == State::kBlockUploadStart && subcommand == kBlockUploadStart) {
    state_ = State::kBlockUploadSub;
    sub_block_start_ = 0;
  } else if (state_ == State::kBlockUploadSub && subcommand == kBlockUploadAck) {
    const std::uint8_t acknowledged = frame.data[1];
    const std::uint8_t block_size = frame.data[2];
    if (acknowledged > sub_block_count_) return abort(Abort::kSequenceNumber, now);
    if (block_size < 1 || block_size > kMaxBlockSize) return abort(Abort::kBlockSize, now);
    const std::uint32_t remaining = size_ - sub_block_start_;
    transferred_ = sub_block_start_ + min_u32(remaining, acknowledged * kSegmentBytes);
    const bool had_last = sub_block_count_ * kSegmentBytes >= remaining;
    if (had_last && acknowledged == sub_block_count_) {
      const std::uint32_t in_last = size_ == 0 ? 0 : (size_ - 1) % kSegmentBytes + 1;
      CanFrame end;
      end.data[0] = static_cast<std::uint8_t>(kBlockUploadEnd | ((kSegmentBytes - in_last) << 2));
      if (crc_enabled_) store_le16(end.data + 1, crc16_xmodem(0, upload_.data, size_));
      send_retry_ = false;
      state_ = State::kBlockUploadEnd;
      send(end, now);
      return;
    }
    block_size_ = block_size;
    sub_block_start_ = transferred_;
  } else if (state_ == State::kBlockUploadEnd && subcommand == kBlockUploadEndResponse) {
    reset_state();
    return;
  } else {
    return abort(Abort::kCommandSpecifier, now);
  }
  // Send the (next) sub-block.
  const std::uint32_t remaining = size_ - sub_block_start_;
  const std::uint32_t segments =
      remaining == 0 ? 1 : (remaining + kSegmentBytes - 1) / kSegmentBytes;
  sub_block_count_ = static_cast<std::uint8_t>(min_u32(segments, block_size_));
  sub_block_sent_ = 0;
  send_block_upload_segments(now);
}

void SdoServer::send_block_upload_segments(Micros now) {
  send_retry_ = false;
  const std::uint32_t remaining = size_ - sub_block_start_;
  const bool has_last = sub_block_count_ * kSegmentBytes >= remaining;
  while (sub_block_sent_ < sub_block_count_) {
    const std::uint32_t offset = sub_block_sent_ * kSegmentBytes;
    const std::uint32_t length =
        offset < remaining ? min_u32(remaining - offset, kSegmentBytes) : 0;
    const bool last = has_last && sub_block_sent_ + 1 == sub_block_count_;
    CanFrame segment;
    segment.id = kSdoTxBase + config_.node_id;
    segment.dlc = 8;
    segment.data[0] = static_cast<std::uint8_t>((sub_block_sent_ + 1) | (last ? kSegmentLast : 0));
    std::memcpy(segment.data + 1, upload_.data + sub_block_start_ + offset, length);
    if (!frames_.send(segment)) {
      // The port's queue is full: try again shortly rather than lose the sub-block.
      send_retry_ = true;
      send_retry_at_ = now + kSendRetry;
      return;
    }
    last_activity_ = now;
    ++sub_block_sent_;
  }
}

// --- common -----------------------------------------------------------------------------------

void SdoServer::poll(Micros now) {
  if (drain_.active && now - drain_.since >= config_.block_drain_time) drain_.active = false;
  if (state_ == State::kIdle) return;
  if (send_retry_ && now >= send_retry_at_) send_block_upload_segments(now);
  if (state_ == State::kDownloadSegmented && response_held_) advance_download(now);
  if (state_ == State::kBlockDownloadSub && ack_held_) {
    advance_block_ack(now, now - ack_held_since_ >= config_.max_ack_hold);
  }
  if (state_ == State::kBlockDownloadEnd && end_held_) finish_block_download(now);
  if (state_ != State::kIdle && now - last_activity_ >= config_.sdo_timeout) {
    abort(Abort::kTimeout, now);
  }
}

Micros SdoServer::next_deadline() const {
  if (drain_.active) return drain_.since + config_.block_drain_time;
  if (state_ == State::kIdle) return ~Micros{0};
  Micros deadline = last_activity_ + config_.sdo_timeout;
  if (ack_held_ && ack_held_since_ + config_.max_ack_hold < deadline) {
    deadline = ack_held_since_ + config_.max_ack_hold;
  }
  if (state_ == State::kDownloadSegmented && response_held_ && !hold_expired_ &&
      response_held_since_ + config_.max_ack_hold < deadline) {
    deadline = response_held_since_ + config_.max_ack_hold;
  }
  if (send_retry_ && send_retry_at_ < deadline) deadline = send_retry_at_;
  return deadline;
}

void SdoServer::cancel(Abort reason, CancelCause cause, Micros now) {
  if (sink_ != nullptr) sink_->cancel(reason, cause);
  start_drain(now);
  reset_state();
}

void SdoServer::start_drain(Micros now) {
  // Only a sub-block still under way has segments to come. An acknowledge held back means the
  // whole sub-block arrived already.
  if (state_ != State::kBlockDownloadSub || ack_held_ || sub_block_over_) return;
  drain_.active = true;
  drain_.last = last_sequence_;
  // A client that sent beyond our block size does not follow it: its sub-block may go to 127.
  drain_.bound = last_sequence_ > block_size_ ? kMaxBlockSize : block_size_;
  drain_.since = now;
  if (drain_.last >= drain_.bound) drain_.active = false;
}

bool SdoServer::drained(const CanFrame& frame, Micros now) {
  if (!drain_.active) return false;
  drain_.active = false;
  if (now - drain_.since >= config_.block_drain_time) return false;
  const std::uint8_t sequence = frame.data[0] & 0x7F;
  // CAN may deliver a frame twice (an error in its last EOF bit makes the sender repeat a frame
  // its receivers took): the segment just counted, again, is still the sub-block. It does not
  // extend the drain time, so a request that keeps repeating is answered once that has passed.
  if (sequence != 0 && sequence == drain_.last) {
    drain_.active = true;
    return true;
  }
  // Only the next segment continues the sub-block; anything else (a new initiate, the client's
  // abort 0x80) ends the drain and is handled as a request.
  if (sequence != drain_.last + 1) return false;
  drain_.last = sequence;
  drain_.since = now;
  drain_.active = (frame.data[0] & kSegmentLast) == 0 && sequence < drain_.bound;
  return true;
}

void SdoServer::send(const CanFrame& frame, Micros now) {
  CanFrame response = frame;
  response.id = kSdoTxBase + config_.node_id;
  response.dlc = 8;
  response.flags = 0;
  frames_.send(response);  // a dropped response is recovered by the client's timeout
  last_activity_ = now;
}

void SdoServer::abort(Abort code, Micros now, bool sink_knows) {
  send_abort_frame(object_.index, object_.sub, code, now);
  if (sink_ != nullptr && !sink_knows) sink_->cancel(code, CancelCause::kServerAbort);
  start_drain(now);
  reset_state();
}

void SdoServer::send_abort_frame(std::uint16_t index, std::uint8_t sub, Abort code, Micros now) {
  CanFrame frame;
  frame.data[0] = kAbortCommand;
  store_le16(frame.data + 1, index);
  frame.data[3] = sub;
  store_le32(frame.data + 4, static_cast<std::uint32_t>(code));
  send(frame, now);
}

void SdoServer::reset_state() {
  state_ = State::kIdle;
  sink_ = nullptr;
  pending_length_ = 0;
  pending_last_ = false;
  response_held_ = false;
  ack_held_ = false;
  end_held_ = false;
  last_segment_seen_ = false;
  last_sequence_ = 0;
  sub_block_over_ = false;
  send_retry_ = false;
}

}  // namespace rtcanboot::canopen
