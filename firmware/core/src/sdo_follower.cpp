#include "rtcanboot/sdo_follower.hpp"

#include "rtcanboot/bytes.hpp"
#include "rtcanboot/hash.hpp"

namespace rtcanboot {

namespace {

// CiA 301 command specifiers as the follower sees them.
constexpr std::uint8_t kAbort = 0x80;
constexpr std::uint8_t kBlockEndRequestMask = 0xE3;  // ccs 6, cs 1: 110n nn01
constexpr std::uint8_t kBlockEndRequest = 0xC1;
constexpr std::uint8_t kBlockInitiateResponse = 0xA0;  // scs 5, ss 0 (bit 2: CRC)
constexpr std::uint8_t kBlockEndResponse = 0xA1;       // scs 5, ss 1
constexpr std::uint8_t kBlockAck = 0xA2;               // scs 5, ss 2
constexpr std::uint8_t kDownloadInitiateResponse = 0x60;

std::uint8_t specifier(const CanFrame& frame) {
  return frame.data[0] >> 5;
}

}  // namespace

void SdoFollower::follow(const Channel& channel) {
  channel_ = channel;
  state_ = State::kWaiting;
}

void SdoFollower::on_frame(const CanFrame& frame) {
  if (state_ == State::kOff || frame.dlc != 8 || (frame.flags & CanFrame::kRemote) != 0) return;
  if ((frame.flags & CanFrame::kExtended) != 0) return;
  if (frame.id == channel_.request_id) {
    on_request(frame);
  } else if (frame.id == channel_.response_id) {
    on_response(frame);
  }
}

void SdoFollower::on_receive_overrun() {
  // Which frames went missing shows in the sequence numbers and toggles; a missed acknowledge
  // shows as a sub-block that starts again (on_block_segment).
  overrun_ = true;
}

bool SdoFollower::names_object(const CanFrame& frame) const {
  return load_le16(frame.data + 1) == channel_.index && frame.data[3] == channel_.sub;
}

void SdoFollower::on_request(const CanFrame& frame) {
  const std::uint8_t first = frame.data[0];
  switch (state_) {
    case State::kBlock:
      // Inside a sub-block every frame is a segment; sequence number 0 with c set is an abort.
      if (first == kAbort) {
        cancel();
      } else if ((first & 0x7F) != 0) {
        on_block_segment(frame);
      }
      return;
    case State::kBlockEnd:
      if ((first & kBlockEndRequestMask) == kBlockEndRequest) {
        on_block_end_request(frame);
      } else if (first == kAbort) {
        cancel();
      } else if ((first & 0x7F) == 1) {
        // A new sub-block: the acknowledge did not cover the last segment after all.
        state_ = State::kBlock;
        on_block_segment(frame);
      }
      return;
    case State::kSegmented:
      if (specifier(frame) == 0) {  // download segment: t n n n c
        const std::uint8_t toggle = (first >> 4) & 1;
        if (segment_pending_ && toggle != toggle_) {
          // The lead's answer to the pending segment went missing, but the client went on: the
          // lead accepted it.
          release_held(segment_length_);
          segment_pending_ = false;
          toggle_ ^= 1;
        }
        segment_pending_ = true;
        segment_received_ = true;
        segment_length_ = kSegmentBytes - ((first >> 1) & 7);
        segment_last_ = (first & 1) != 0;
        for (std::uint32_t i = 0; i < kSegmentBytes; ++i) segment_[i] = frame.data[1 + i];
        return;
      }
      if (first == kAbort) {
        cancel();
        return;
      }
      break;  // anything else: perhaps a new initiate
    case State::kBlockEndSeen:
    case State::kInitiated:
      if (first == kAbort) {
        cancel();
        return;
      }
      break;
    default:
      break;
  }
  on_initiate(frame);
}

void SdoFollower::on_initiate(const CanFrame& frame) {
  if (!names_object(frame)) return;
  const std::uint8_t first = frame.data[0];
  const bool active = state_ != State::kWaiting && state_ != State::kDone &&
                      state_ != State::kLost && state_ != State::kOff;
  const bool block = (first & 0xF9) == 0xC0;      // ccs 6: 110 00 cc s 0
  const bool segmented = (first & 0xE2) == 0x20;  // ccs 1: 001 x nn e=0 s
  if (!block && !segmented) return;               // expedited: not a program download
  if (active) sink_.follow_cancel();              // the client gave up on the transfer
  block_ = block;
  block_crc_ = block && (first & 0x04) != 0;
  size_known_ = (first & (block ? 0x02 : 0x01)) != 0;
  size_ = size_known_ ? load_le32(frame.data + 4) : 0;
  state_ = State::kInitiated;
}

void SdoFollower::on_response(const CanFrame& frame) {
  const std::uint8_t first = frame.data[0];
  if (first == kAbort) {
    if (state_ != State::kWaiting && state_ != State::kDone && state_ != State::kLost) cancel();
    return;
  }
  switch (state_) {
    case State::kInitiated:
      if (block_ && (first & 0xFB) == kBlockInitiateResponse && names_object(frame)) {
        block_crc_ = block_crc_ && (first & 0x04) != 0;
        blksize_ = frame.data[4];
        start_transfer();
        state_ = State::kBlock;
      } else if (!block_ && first == kDownloadInitiateResponse && names_object(frame)) {
        start_transfer();
        toggle_ = 0;
        segment_pending_ = false;
        state_ = State::kSegmented;
      }
      return;
    case State::kBlock:
      if (first == kBlockAck) on_block_ack(frame);
      return;
    case State::kBlockEnd:
      if (first == kBlockEndResponse) {
        // The client's end frame went missing: how much of the held segment counts is known
        // only from the announced size.
        finish_block_without_end_frame();
      } else if (first == kBlockAck) {
        on_block_ack(frame);  // the lead acknowledged the sub-block again
      }
      return;
    case State::kBlockEndSeen:
      if (first == kBlockEndResponse) {
        const bool crc_ok = !block_crc_ || crc_ == end_crc_;
        state_ = State::kDone;
        sink_.follow_end(gap_ == 0 && crc_ok);
      }
      return;
    case State::kSegmented:
      on_segment_response(frame);
      return;
    default:
      return;
  }
}

void SdoFollower::start_transfer() {
  delivered_ = 0;
  gap_ = 0;
  crc_ = 0;
  held_ = false;
  overrun_ = false;
  clear_sub_block();
  sink_.follow_begin(size_known_, size_);
}

void SdoFollower::clear_sub_block() {
  for (bool& r : received_) r = false;
  last_seq_ = 0;
  last_segment_seq_ = 0;
}

void SdoFollower::on_block_segment(const CanFrame& frame) {
  const std::uint8_t seq = frame.data[0] & 0x7F;
  if (seq <= last_seq_) {
    // The sequence starts again: the lead's acknowledge of the previous sub-block went missing.
    // Assume it took every segment the client sent (a lead that did not makes the data after
    // this point land shifted: the full-image check then fails and the sector digests repair
    // it, so a wrong guess costs time, never correctness).
    const std::uint8_t taken = last_segment_seq_ != 0 ? last_segment_seq_ : blksize_;
    ++guessed_acks_;
    accept_sub_block(taken);
    if (state_ != State::kBlock) {
      lose();  // the guess says the transfer had ended: this segment makes no sense
      return;
    }
  }
  if (seq > kMaxBlockSize) return;
  received_[seq - 1] = true;
  for (std::uint32_t i = 0; i < kSegmentBytes; ++i) sub_block_[seq - 1][i] = frame.data[1 + i];
  last_seq_ = seq;
  if ((frame.data[0] & 0x80) != 0) last_segment_seq_ = seq;
}

void SdoFollower::on_block_ack(const CanFrame& frame) {
  const std::uint8_t ackseq = frame.data[1];
  accept_sub_block(ackseq);
  blksize_ = frame.data[2];
}

void SdoFollower::accept_sub_block(std::uint8_t ackseq) {
  if (ackseq > kMaxBlockSize) ackseq = kMaxBlockSize;
  if (ackseq != 0) {
    // The segment held from the previous sub-block was not the transfer's last.
    if (held_) release_held(kSegmentBytes);
    for (std::uint8_t seq = 1; seq < ackseq; ++seq) {
      if (received_[seq - 1]) {
        deliver(sub_block_[seq - 1], kSegmentBytes);
      } else {
        gap(kSegmentBytes);
      }
    }
    held_ = true;
    held_received_ = received_[ackseq - 1];
    if (held_received_) {
      for (std::uint32_t i = 0; i < kSegmentBytes; ++i) held_data_[i] = sub_block_[ackseq - 1][i];
    }
  }
  const bool last_acknowledged = last_segment_seq_ != 0 && ackseq >= last_segment_seq_;
  const bool size_reached = size_known_ && delivered_ + gap_ + (held_ ? kSegmentBytes : 0) >= size_;
  clear_sub_block();
  state_ = last_acknowledged || size_reached ? State::kBlockEnd : State::kBlock;
}

void SdoFollower::on_block_end_request(const CanFrame& frame) {
  const std::uint32_t unused = (frame.data[0] >> 2) & 7;
  if (held_) release_held(kSegmentBytes - unused);
  end_crc_ = load_le16(frame.data + 1);
  state_ = State::kBlockEndSeen;
}

void SdoFollower::finish_block_without_end_frame() {
  if (held_) {
    const std::uint32_t before = delivered_ + gap_;
    std::uint32_t bytes = kSegmentBytes;
    if (size_known_ && size_ > before && size_ - before < kSegmentBytes) bytes = size_ - before;
    release_held(bytes);
  }
  state_ = State::kDone;
  sink_.follow_end(false);  // the block CRC could not be compared
}

void SdoFollower::on_segment_response(const CanFrame& frame) {
  const std::uint8_t first = frame.data[0];
  if ((first & 0xEF) != 0x20) return;  // scs 1: 001t 0000
  const std::uint8_t toggle = (first >> 4) & 1;
  if (toggle != toggle_) return;  // an answer to a segment before the one we track
  std::uint32_t length = kSegmentBytes;
  bool last = false;
  if (segment_pending_) {
    length = segment_length_;
    last = segment_last_;
  } else if (size_known_) {
    // The client's segment went missing: its length follows from the announced size.
    const std::uint32_t left = size_ - (delivered_ + gap_);
    length = left < kSegmentBytes ? left : kSegmentBytes;
    last = left <= kSegmentBytes;
  }
  if (segment_pending_ && segment_received_) {
    deliver(segment_, length);
  } else {
    gap(length);
  }
  segment_pending_ = false;
  toggle_ ^= 1;
  if (last) {
    state_ = State::kDone;
    sink_.follow_end(gap_ == 0);
  }
}

void SdoFollower::release_held(std::uint32_t bytes) {
  if (bytes > kSegmentBytes) bytes = kSegmentBytes;
  const bool received = block_ ? held_received_ : segment_received_;
  const std::uint8_t* data = block_ ? held_data_ : segment_;
  if (received) {
    deliver(data, bytes);
  } else {
    gap(bytes);
  }
  held_ = false;
}

void SdoFollower::deliver(const std::uint8_t* data, std::uint32_t length) {
  if (length == 0) return;
  crc_ = crc16_xmodem(crc_, data, length);
  delivered_ += length;
  sink_.follow_write(data, length);
}

void SdoFollower::gap(std::uint32_t length) {
  if (length == 0) return;
  gap_ += length;
  sink_.follow_gap(length);
}

void SdoFollower::lose() {
  state_ = State::kLost;
  sink_.follow_lost();
}

void SdoFollower::cancel() {
  state_ = State::kWaiting;
  sink_.follow_cancel();
}

}  // namespace rtcanboot
