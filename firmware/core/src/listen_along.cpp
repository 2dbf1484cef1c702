#include "rtcanboot/listen_along.hpp"

#include "rtcanboot/bytes.hpp"

namespace rtcanboot {

namespace {

using canopen::Abort;
using State = canopen::ListenAlongState;

constexpr std::uint32_t kMaxStandardId = 0x7FF;

}  // namespace

std::uint32_t ListenAlong::listen_setting(std::uint8_t sub) const {
  if (sub == 1) return request_id_;
  if (sub == 2) return response_id_;
  return expected_crc_;
}

Abort ListenAlong::set_listen_setting(std::uint8_t sub, std::uint32_t value) {
  if (state_ != State::kOff) return Abort::kDeviceState;  // stop (sub 4 = 0) first
  if ((sub == 1 || sub == 2) && (value == 0 || value > kMaxStandardId)) return Abort::kValueRange;
  if (sub == 1) request_id_ = value;
  if (sub == 2) response_id_ = value;
  if (sub == 3) expected_crc_ = value;
  return Abort::kNone;
}

Abort ListenAlong::listen_command(std::uint8_t command) {
  if (command == 0) {
    if (state_ == State::kFollowing) download_.cancel(Abort::kGeneral, CancelCause::kClientAbort);
    follower_.stop();
    state_ = State::kOff;
    return Abort::kNone;
  }
  if (command != 1) return Abort::kValueRange;
  if (request_id_ == 0 || response_id_ == 0 || request_id_ == response_id_) {
    return Abort::kDeviceState;  // subs 1 and 2 first
  }
  if (state_ == State::kFollowing || download_.in_progress()) return Abort::kDeviceState;
  SdoFollower::Channel channel;
  channel.request_id = request_id_;
  channel.response_id = response_id_;
  channel.index = canopen::od::kProgramData;
  channel.sub = 1;
  follower_.follow(channel);
  forget_gaps();
  state_ = State::kWaiting;
  return Abort::kNone;
}

void ListenAlong::forget_gaps() {
  gap_bytes_ = 0;
  position_ = 0;
  gap_runs_ = 0;
}

// A gap of `length` bytes at position_: joins the previous run when it ends there.
void ListenAlong::list_gap(std::uint32_t length) {
  if (gap_runs_ > 0 && gap_runs_ <= kMaxGapRuns) {
    std::uint8_t* last = gap_list_ + (gap_runs_ - 1) * 8;
    if (load_le32(last) + load_le32(last + 4) == position_) {
      store_le32(last + 4, load_le32(last + 4) + length);
      return;
    }
  }
  if (gap_runs_ < kMaxGapRuns) {
    store_le32(gap_list_ + gap_runs_ * 8, position_);
    store_le32(gap_list_ + gap_runs_ * 8 + 4, length);
  }
  if (gap_runs_ <= kMaxGapRuns) ++gap_runs_;  // kMaxGapRuns + 1: too many to list
}

void ListenAlong::follow_begin(bool size_known, std::uint32_t size) {
  forget_gaps();
  const Abort refused = download_.begin(size_known, size);
  state_ = refused == Abort::kNone ? State::kFollowing : State::kRefused;
  // Checked at the header, which comes with the next bytes; begin() forgot any earlier one, so
  // the node's own downloads stay free.
  if (refused == Abort::kNone) download_.expect_image(expected_crc_);
}

void ListenAlong::follow_write(const std::uint8_t* data, std::uint32_t length) {
  if (state_ != State::kFollowing) return;
  write(data, length);
  position_ += length;
}

void ListenAlong::follow_gap(std::uint32_t length) {
  if (state_ != State::kFollowing) return;
  gap_bytes_ += length;
  list_gap(length);
  position_ += length;
  static constexpr std::uint8_t kErased[SdoFollower::kSegmentBytes] = {0xFF, 0xFF, 0xFF, 0xFF,
                                                                       0xFF, 0xFF, 0xFF};
  while (length != 0 && state_ == State::kFollowing) {
    const std::uint32_t take = length < sizeof kErased ? length : sizeof kErased;
    write(kErased, take);
    length -= take;
  }
}

void ListenAlong::write(const std::uint8_t* data, std::uint32_t length) {
  // The lead paces the client to its own flash; a follower whose ring is fuller cannot hold
  // anybody back: it stops following, and what it wrote stays for the repair.
  if (download_.free_space() < length) {
    give_up(State::kLost);
    return;
  }
  if (download_.write(data, length) != Abort::kNone) state_ = State::kRefused;
}

void ListenAlong::follow_end(bool complete) {
  if (state_ != State::kFollowing) return;
  const bool whole = complete && gap_bytes_ == 0;
  const Abort refused = whole ? download_.end() : download_.end_without_commit();
  if (refused != Abort::kNone) {
    state_ = State::kRefused;
  } else {
    state_ = whole ? State::kComplete : State::kGaps;
  }
}

void ListenAlong::follow_cancel() {
  if (state_ == State::kFollowing) download_.cancel(Abort::kGeneral, CancelCause::kClientAbort);
  state_ = State::kWaiting;  // a new initiate to the lead may follow
}

void ListenAlong::follow_lost() {
  give_up(State::kLost);
}

void ListenAlong::give_up(State why) {
  if (state_ == State::kFollowing) download_.cancel(Abort::kGeneral, CancelCause::kClientAbort);
  state_ = why;
}

}  // namespace rtcanboot
