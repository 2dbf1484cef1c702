// SDO client (CiA 301) as a passive state machine: frames in (on_frame), time in (poll), frames
// out (next_frame). No threads, no sleeps, no clock of its own, so the same client runs against
// a real bus (wrapped by Master) or in-process in virtual time (benchmarks, tests).
//
// Transfers: expedited, segmented and block download/upload. Block transfers negotiate the
// block size, use the CRC-16 when the server supports it, follow the block size the server
// announces with every acknowledge and resend from ackseq + 1 when ackseq < blksize.
#pragma once

#include <cstdint>
#include <deque>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "rtcanboot/canopen_defs.hpp"
#include "rtcanboot/types.hpp"

namespace rtcanboot::host {

enum class SdoMode {
  kAuto,       // download: expedited up to 4 bytes, else segmented; upload: as the server answers
  kExpedited,  // download only: fails for more than 4 bytes
  kSegmented,
  kBlock,
};

struct SdoConfig {
  Micros timeout = 1'000'000;     // longest wait for any expected frame from the server
  std::uint8_t block_size = 127;  // blksize the client offers for block upload (1..127)
  bool block_crc = true;          // offer/use the CRC in block transfers
  // Block upload: after this long without the frame that closes a sub-block, acknowledge what
  // arrived in order so the server resends (a lost last segment otherwise stalls until timeout).
  Micros block_upload_idle_ack = 100'000;
  // Send abort 0x05040000 when a timeout ends the transfer (CiA 301). A scan's probes turn it off:
  // a server that never answered an expedited upload has no transfer open.
  bool abort_on_timeout = true;
};

// A readable message for an abort code ("0x06020000 object does not exist in the object
// dictionary").
std::string abort_message(std::uint32_t code);
inline std::string abort_message(canopen::Abort code) {
  return abort_message(static_cast<std::uint32_t>(code));
}

class SdoClient {
 public:
  enum class State { kIdle, kBusy, kDone, kFailed };

  // Why a transfer failed.
  enum class Failure {
    kNone,
    kServerAbort,  // the server sent an abort (abort_code())
    kLocalAbort,   // we aborted: protocol violation, CRC mismatch, size mismatch, abort() call
    kTimeout,      // no answer within SdoConfig::timeout (abort 0x05040000 sent)
  };

  explicit SdoClient(std::uint8_t node_id, SdoConfig config = {});

  std::uint8_t node_id() const { return node_id_; }
  void set_node_id(std::uint8_t node_id);
  const SdoConfig& config() const { return config_; }
  SdoConfig& config() { return config_; }

  // Starting a transfer while one is busy throws std::logic_error. The data of a download is
  // copied. `now` starts the response timer.
  void start_download(std::uint16_t index, std::uint8_t sub, std::span<const std::uint8_t> data,
                      SdoMode mode, Micros now);
  void start_upload(std::uint16_t index, std::uint8_t sub, SdoMode mode, Micros now);

  // Feeds every received frame; frames not from this client's server are ignored.
  // Returns true if the frame belonged to this client.
  bool on_frame(const CanFrame& frame, Micros now);
  // Checks timeouts.
  void poll(Micros now);
  // Next frame to transmit, if any. Call until it returns false after every on_frame/poll/start.
  // `now` restarts the response timer when the frame is the one the server must answer.
  bool next_frame(CanFrame& out, Micros now);
  bool has_frame() const;
  // When poll() should be called next at the latest (UINT64_MAX when nothing is pending).
  Micros deadline() const;

  // Aborts a busy transfer locally and queues an abort frame for the server.
  void abort(canopen::Abort code);
  // Forgets a finished transfer (kDone/kFailed -> kIdle). Keeps the client reusable.
  void reset();

  State state() const { return state_; }
  bool busy() const { return state_ == State::kBusy; }
  Failure failure() const { return failure_; }
  std::uint32_t abort_code() const { return abort_code_; }
  std::string error_message() const;  // for kFailed

  // Upload result (kDone).
  const std::vector<std::uint8_t>& data() const { return data_; }

  // Progress: bytes confirmed by the server (download) or received (upload), and the size if known.
  std::uint64_t bytes_done() const { return done_; }
  std::uint64_t bytes_total() const { return total_; }

  // Statistics of the last transfer.
  std::uint32_t retransmitted_segments() const { return retransmitted_; }
  std::uint16_t index() const { return index_; }
  std::uint8_t sub() const { return sub_; }
  bool used_block() const { return phase_is_block_; }

 private:
  enum class Phase {
    kNone,
    kDownInitiate,  // waiting for the initiate response of an expedited/segmented download
    kDownSegment,   // waiting for a segment response
    kUpInitiate,
    kUpSegment,
    kBlockDownInitiate,
    kBlockDownSubBlock,  // sending segments / waiting for the acknowledge
    kBlockDownEnd,
    kBlockUpInitiate,
    kBlockUpSubBlock,  // receiving segments
    kBlockUpEnd,       // waiting for the end frame
  };

  CanFrame make(std::uint8_t b0) const;
  void queue(const CanFrame& f, bool expects_answer);
  void fail(Failure why, std::uint32_t code, bool send_abort);
  void finish();
  // False, and the transfer aborted with 0x05040001, unless (d[0] & mask) == expected;
  // `answer_to` says what the answer was to, for the local reason.
  bool answer_is(const std::uint8_t* d, std::uint8_t mask, std::uint8_t expected,
                 std::string_view answer_to);
  // False, and the transfer aborted with 0x05030000, unless the segment's toggle bit is due.
  bool toggle_matches(const std::uint8_t* d);
  void handle_down(const std::uint8_t* d);
  void handle_up(const std::uint8_t* d);
  void handle_block_down(const std::uint8_t* d);
  void handle_block_up(const std::uint8_t* d, Micros now);
  void send_next_download_segment();
  void send_block_ack();

  std::uint8_t node_id_;
  SdoConfig config_;
  State state_ = State::kIdle;
  Phase phase_ = Phase::kNone;
  Failure failure_ = Failure::kNone;
  std::uint32_t abort_code_ = 0;
  std::string local_reason_;
  std::uint16_t index_ = 0;
  std::uint8_t sub_ = 0;
  SdoMode mode_ = SdoMode::kAuto;

  std::vector<std::uint8_t> data_;  // download source or upload destination
  std::uint64_t done_ = 0;
  std::uint64_t total_ = 0;
  bool size_known_ = false;
  std::uint8_t toggle_ = 0;
  std::size_t offset_ = 0;  // segmented: next byte to send

  // Block transfers.
  bool phase_is_block_ = false;
  bool crc_ = false;
  std::uint8_t blksize_ = 0;    // current sub-block size
  std::uint8_t seq_sent_ = 0;   // download: segments of the current sub-block handed out
  std::size_t block_base_ = 0;  // download: first byte of the current sub-block
  bool sub_block_has_last_ = false;
  std::uint8_t seq_expected_ = 0;  // upload: next in-order seqno - 1 (ackseq)
  bool last_seen_ = false;         // upload: the segment with c=1 arrived in order
  std::uint8_t last_segment_bytes_ = 7;
  std::uint32_t retransmitted_ = 0;
  Micros last_rx_ = 0;
  bool idle_ack_sent_ = false;

  std::deque<CanFrame> tx_;
  bool awaiting_ = false;              // a response is expected: timer runs
  bool pending_answer_frame_ = false;  // the last queued frame arms the timer once sent
  Micros timer_start_ = 0;
};

}  // namespace rtcanboot::host
