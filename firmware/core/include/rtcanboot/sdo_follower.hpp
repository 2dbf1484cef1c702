// Listen-along download (issue 14, docs/fleet-update.md): follows the program download of another
// node (the lead) from the bus, both directions of the lead's SDO channel, and never transmits.
// The client's segments say what was sent; the lead's answers say what the lead accepted (a block
// acknowledge names the last segment it took; the client sends the rest again). The follower hands
// exactly the accepted bytes to a FollowSink, in order, and reports each accepted byte it did not
// receive as a gap, so that its owner keeps writing at the right place. The master repairs gaps
// afterwards with a sparse update of the sectors they touched (sector digests, 0x5F02).
//
// When it cannot know how many bytes the lead accepted (it missed an acknowledge, a segment whose
// length it cannot infer, or an initiate), the follower has lost its place: it stops delivering
// and reports it once; the master then updates the node on its own.
#pragma once

#include <cstdint>

#include "rtcanboot/types.hpp"

namespace rtcanboot {

class FollowSink {
 public:
  // The lead accepted the initiate of a download to the followed object.
  virtual void follow_begin(bool size_known, std::uint32_t size) = 0;
  // Bytes the lead accepted, in order.
  virtual void follow_write(const std::uint8_t* data, std::uint32_t length) = 0;
  // `length` bytes the lead accepted that this node did not receive.
  virtual void follow_gap(std::uint32_t length) = 0;
  // The lead confirmed the end of the transfer. `complete`: no gap, and the block CRC (when the
  // transfer used one) matches what was delivered.
  virtual void follow_end(bool complete) = 0;
  // Client or lead aborted the transfer: discard it (a new initiate may follow).
  virtual void follow_cancel() = 0;
  // The follower lost its place in this transfer: nothing more of it will be delivered.
  virtual void follow_lost() = 0;

 protected:
  ~FollowSink() = default;
};

class SdoFollower {
 public:
  static constexpr std::uint8_t kMaxBlockSize = 127;
  static constexpr std::uint32_t kSegmentBytes = 7;

  // The lead's SDO channel and the object its download goes to.
  struct Channel {
    std::uint32_t request_id = 0;   // client -> lead (0x600 + lead node-ID by default)
    std::uint32_t response_id = 0;  // lead -> client (0x580 + lead node-ID by default)
    std::uint16_t index = 0;
    std::uint8_t sub = 0;
  };

  enum class State : std::uint8_t {
    kOff,           // not following
    kWaiting,       // armed: waiting for a client initiate to the object
    kInitiated,     // initiate seen: waiting for the lead to accept it
    kSegmented,     // segmented download in progress
    kBlock,         // block download: receiving a sub-block
    kBlockEnd,      // block download: waiting for the client's end frame
    kBlockEndSeen,  // block download: end frame seen, waiting for the lead's answer
    kDone,          // the lead confirmed the end (armed again for the next initiate)
    kLost,          // lost its place in the current transfer (until the next initiate)
  };

  explicit SdoFollower(FollowSink& sink) : sink_(sink) {}

  void follow(const Channel& channel);
  void stop() { state_ = State::kOff; }
  // Every received frame; frames of other identifiers are ignored.
  void on_frame(const CanFrame& frame);
  // The node's controller dropped received frames (overrun): which ones is unknown.
  void on_receive_overrun();

  State state() const { return state_; }
  const Channel& channel() const { return channel_; }
  // Accepted bytes delivered and reported as gaps in the current (or last) transfer.
  std::uint32_t delivered_bytes() const { return delivered_; }
  std::uint32_t gap_bytes() const { return gap_; }
  // Sub-blocks whose acknowledge this node missed (it assumed the lead took them whole).
  std::uint32_t guessed_acknowledges() const { return guessed_acks_; }

 private:
  void on_request(const CanFrame& frame);
  void on_response(const CanFrame& frame);
  void on_initiate(const CanFrame& frame);
  void on_block_segment(const CanFrame& frame);
  void on_block_ack(const CanFrame& frame);
  void on_block_end_request(const CanFrame& frame);
  void on_segment_response(const CanFrame& frame);
  void accept_sub_block(std::uint8_t ackseq);
  void finish_block_without_end_frame();
  void start_transfer();
  void clear_sub_block();
  bool names_object(const CanFrame& frame) const;
  void deliver(const std::uint8_t* data, std::uint32_t length);
  void gap(std::uint32_t length);
  // The held last acknowledged segment, `bytes` of it (7, or fewer for the transfer's last).
  void release_held(std::uint32_t bytes);
  void lose();
  void cancel();

  FollowSink& sink_;
  Channel channel_;
  State state_ = State::kOff;
  bool block_ = false;
  bool block_crc_ = false;  // client and lead both announced CRC support
  bool size_known_ = false;
  std::uint32_t size_ = 0;
  std::uint32_t delivered_ = 0;
  std::uint32_t gap_ = 0;
  std::uint16_t crc_ = 0;      // CRC-16/XMODEM of the delivered bytes (the block CRC)
  std::uint16_t end_crc_ = 0;  // the client's, from its end frame
  std::uint32_t guessed_acks_ = 0;

  // Block download: the segments of the sub-block in progress (index = sequence number - 1).
  std::uint8_t sub_block_[kMaxBlockSize][kSegmentBytes] = {};
  bool received_[kMaxBlockSize] = {};
  std::uint8_t blksize_ = 0;           // announced by the lead for the sub-block in progress
  std::uint8_t last_seq_ = 0;          // highest sequence number seen in the sub-block
  std::uint8_t last_segment_seq_ = 0;  // the segment with c set (the transfer's last), if seen
  // The last segment the lead acknowledged is held until it is known whether it was the
  // transfer's last (the client's end frame says how many of its bytes count).
  bool held_ = false;
  bool held_received_ = false;
  std::uint8_t held_data_[kSegmentBytes] = {};
  bool overrun_ = false;  // frames were dropped since the last acknowledge

  // Segmented download: the client's segment that waits for the lead's answer.
  bool segment_pending_ = false;
  bool segment_received_ = false;
  std::uint8_t toggle_ = 0;
  std::uint8_t segment_[kSegmentBytes] = {};
  std::uint32_t segment_length_ = 0;
  bool segment_last_ = false;
};

}  // namespace rtcanboot
