// SDO server (CiA 301): expedited, segmented and block download and upload for one node, with
// the block CRC (CRC-16/XMODEM) in both directions and flow control towards a DownloadSink.
// Passive: requests and time go in, responses go out through the FrameSink.
#pragma once

#include <cstdint>

#include "rtcanboot/canopen_defs.hpp"
#include "rtcanboot/node_config.hpp"
#include "rtcanboot/object_dictionary.hpp"
#include "rtcanboot/program_control.hpp"
#include "rtcanboot/types.hpp"

namespace rtcanboot::canopen {

class SdoServer {
 public:
  static constexpr std::uint8_t kMaxBlockSize = 127;
  static constexpr std::uint32_t kSegmentBytes = 7;
  // After the frame queue refused a block upload segment, poll() tries again this much later.
  static constexpr Micros kSendRetry = 100;

  SdoServer(FrameSink& frames, ObjectDictionary& objects, const NodeConfig& config);

  // A request on 0x600 + node-ID. Requests whose DLC is not 8 are ignored (as CANopenNode does).
  void on_request(const CanFrame& frame, Micros now);
  void poll(Micros now);
  // Latest time poll() must run next; Micros max when nothing is pending. While a response waits
  // for sink space, poll() should also run whenever the sink may have made room.
  Micros next_deadline() const;
  // Drops any transfer without an abort frame (NMT reset communication, NMT stopped, reset node).
  void cancel(Abort reason, CancelCause cause, Micros now);
  bool transfer_active() const { return state_ != State::kIdle; }
  // The segments of an interrupted block download sub-block are still being ignored (no transfer
  // is active meanwhile). poll() ends the drain after NodeConfig::block_drain_time.
  bool draining() const { return drain_.active; }

 private:
  enum class State : std::uint8_t {
    kIdle,
    kDownloadSegmented,  // expedited (waiting for sink space) or segmented download
    kUploadSegmented,    // waiting for the next upload segment request
    kBlockDownloadSub,   // receiving the segments of a sub-block
    kBlockDownloadEnd,   // last segment acknowledged; waiting for the end frame
    kBlockUploadStart,   // initiate answered; waiting for the client's start
    kBlockUploadSub,     // sending a sub-block / waiting for its acknowledge
    kBlockUploadEnd,     // end frame sent; waiting for the client's end response
  };

  void handle_idle_request(const CanFrame& frame, Micros now);
  void start_download(const CanFrame& frame, Micros now);
  void start_upload(const CanFrame& frame, Micros now);
  void start_block_download(const CanFrame& frame, Micros now);
  void start_block_upload(const CanFrame& frame, Micros now);
  void on_download_segment(const CanFrame& frame, Micros now);
  void on_upload_segment(const CanFrame& frame, Micros now);
  void on_block_download_segment(const CanFrame& frame, Micros now);
  void on_block_download_end(const CanFrame& frame, Micros now);
  void on_block_upload_request(const CanFrame& frame, Micros now);

  // Download data path: a DownloadSink for DOMAIN objects, a small buffer for fixed-size ones.
  std::uint32_t target_free_space() const;
  Abort deliver(const std::uint8_t* data, std::uint32_t length);
  Abort finish_download();
  // Segmented/expedited download: hands pending bytes to the sink and sends the held response
  // once the sink has room for the next segment beyond the pacing reserve, or out of the reserve
  // after max_ack_hold (or finishes the download after the last segment).
  void advance_download(Micros now);
  // Block download: announces the next block size, or holds the acknowledge while the sink is full.
  void advance_block_ack(Micros now, bool forced);
  std::uint8_t next_block_size() const;
  void finish_block_download(Micros now);
  void send_block_upload_segments(Micros now);

  void send(const CanFrame& frame, Micros now);
  void send_response(std::uint8_t command, Micros now);
  // Sends an abort for the current transfer, cancels the sink unless it raised the error itself.
  void abort(Abort code, Micros now, bool sink_knows = false);
  void send_abort_frame(std::uint16_t index, std::uint8_t sub, Abort code, Micros now);
  void reset_state();
  // Called whenever a transfer ends early: inside an unfinished block download sub-block, the
  // rest of that sub-block is ignored (CiA 301: segments are never requests).
  void start_drain(Micros now);
  // True when `frame` is the next segment of the drained sub-block (and swallows it).
  bool drained(const CanFrame& frame, Micros now);

  FrameSink& frames_;
  ObjectDictionary& objects_;
  const NodeConfig& config_;

  State state_ = State::kIdle;
  ObjectDictionary::Lookup object_{};
  DownloadSink* sink_ = nullptr;  // DOMAIN download in progress (begin() accepted)
  Micros last_activity_ = 0;      // last request of the transfer or our last response

  // Transfer bookkeeping (download and upload).
  bool toggle_ = false;
  bool size_indicated_ = false;
  std::uint32_t size_ = 0;         // announced (download) or total (upload) size
  std::uint32_t transferred_ = 0;  // bytes delivered (download) / acknowledged (upload)
  bool crc_enabled_ = false;
  std::uint16_t crc_ = 0;

  // Fixed-size object download collects its value here (at most 4 bytes).
  std::uint8_t value_[4] = {};
  std::uint32_t value_length_ = 0;

  // Segmented/expedited download: bytes not yet taken by the sink and the response held back
  // until they are (or until the sink has room for the next segment).
  std::uint8_t pending_[kSegmentBytes] = {};
  std::uint32_t pending_length_ = 0;
  bool pending_last_ = false;
  bool response_held_ = false;
  Micros response_held_since_ = 0;
  bool hold_expired_ = false;  // held max_ack_hold already: only room for 7 bytes is missing
  CanFrame held_response_{};

  // Block download.
  std::uint8_t block_size_ = 0;     // announced for the current sub-block
  std::uint8_t last_in_order_ = 0;  // last sequence number received in order
  std::uint8_t last_sequence_ = 0;  // sequence number of the last segment received (any order)
  bool sub_block_over_ = false;     // the segment with seqno = block size, or with c = 1, came
  bool last_segment_seen_ = false;  // the segment with c = 1 arrived in order
  std::uint8_t last_segment_[kSegmentBytes] = {};
  bool ack_held_ = false;
  Micros ack_held_since_ = 0;
  bool end_held_ = false;
  std::uint8_t end_unused_ = 0;
  std::uint16_t end_crc_ = 0;

  // Upload source (block and segmented).
  ObjectDictionary::ReadValue upload_{};
  std::uint32_t sub_block_start_ = 0;  // offset of the first segment of the current sub-block
  std::uint8_t sub_block_sent_ = 0;    // segments of the current sub-block sent so far
  std::uint8_t sub_block_count_ = 0;   // segments the current sub-block consists of
  bool send_retry_ = false;
  Micros send_retry_at_ = 0;

  // The rest of an interrupted sub-block: segments last + 1 .. bound are ignored.
  struct Drain {
    bool active = false;
    std::uint8_t last = 0;
    std::uint8_t bound = 0;
    Micros since = 0;  // the interruption or the last ignored segment
  } drain_;
};

}  // namespace rtcanboot::canopen
