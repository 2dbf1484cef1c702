#include "rtcanboot/host/sdo_client.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <limits>
#include <stdexcept>

#include "rtcanboot/bytes.hpp"
#include "rtcanboot/hash.hpp"

namespace rtcanboot::host {

using canopen::Abort;

std::string abort_message(std::uint32_t code) {
  const char* text = nullptr;
  switch (static_cast<Abort>(code)) {
    case Abort::kNone:
      text = "no error";
      break;
    case Abort::kToggleBit:
      text = "toggle bit not alternated";
      break;
    case Abort::kTimeout:
      text = "SDO protocol timed out";
      break;
    case Abort::kCommandSpecifier:
      text = "client/server command specifier not valid or unknown";
      break;
    case Abort::kBlockSize:
      text = "invalid block size (block mode)";
      break;
    case Abort::kSequenceNumber:
      text = "invalid sequence number (block mode)";
      break;
    case Abort::kCrc:
      text = "CRC error (block mode)";
      break;
    case Abort::kOutOfMemory:
      text = "out of memory";
      break;
    case Abort::kUnsupportedAccess:
      text = "unsupported access to an object";
      break;
    case Abort::kWriteOnly:
      text = "attempt to read a write-only object";
      break;
    case Abort::kReadOnly:
      text = "attempt to write a read-only object";
      break;
    case Abort::kNoObject:
      text = "object does not exist in the object dictionary";
      break;
    case Abort::kIncompatible:
      text = "general internal incompatibility in the device";
      break;
    case Abort::kHardware:
      text = "access failed due to a hardware error";
      break;
    case Abort::kTypeMismatch:
      text = "data type does not match, length of service parameter does not match";
      break;
    case Abort::kLengthTooHigh:
      text = "data type does not match, length of service parameter too high";
      break;
    case Abort::kLengthTooLow:
      text = "data type does not match, length of service parameter too low";
      break;
    case Abort::kNoSubIndex:
      text = "sub-index does not exist";
      break;
    case Abort::kValueRange:
      text = "invalid value for parameter (value range exceeded)";
      break;
    case Abort::kGeneral:
      text = "general error";
      break;
    case Abort::kCannotStore:
      text = "data cannot be transferred or stored to the application";
      break;
    case Abort::kLocalControl:
      text = "data cannot be transferred or stored because of local control";
      break;
    case Abort::kDeviceState:
      text = "data cannot be transferred or stored because of the present device state";
      break;
  }
  if (text == nullptr) {
    switch (code) {
      case 0x0604'0041:
        text = "object cannot be mapped to the PDO";
        break;
      case 0x0604'0042:
        text = "the number and length of the objects to be mapped would exceed PDO length";
        break;
      case 0x0604'0043:
        text = "general parameter incompatibility reason";
        break;
      case 0x0609'0031:
        text = "value of parameter written too high";
        break;
      case 0x0609'0032:
        text = "value of parameter written too low";
        break;
      case 0x0609'0036:
        text = "maximum value is less than minimum value";
        break;
      case 0x060A'0023:
        text = "resource not available: SDO connection";
        break;
      case 0x0800'0023:
        text = "object dictionary dynamic generation failed or no object dictionary is present";
        break;
      case 0x0800'0024:
        text = "no data available";
        break;
      default:
        break;
    }
  }
  if (text == nullptr) text = "unknown abort code";
  return fmt::format("0x{:08X} {}", code, text);
}

namespace {
bool mux_matches(const std::uint8_t* d, std::uint16_t index, std::uint8_t sub) {
  return load_le16(d + 1) == index && d[3] == sub;
}
}  // namespace

SdoClient::SdoClient(std::uint8_t node_id, SdoConfig config) : node_id_(node_id), config_(config) {}

void SdoClient::set_node_id(std::uint8_t node_id) {
  if (busy()) throw std::logic_error("SdoClient: node id changed during a transfer");
  node_id_ = node_id;
}

CanFrame SdoClient::make(std::uint8_t b0) const {
  CanFrame f;
  f.id = canopen::kSdoRxBase + node_id_;
  f.dlc = 8;
  f.data[0] = b0;
  return f;
}

static void put_mux(CanFrame& f, std::uint16_t index, std::uint8_t sub) {
  store_le16(f.data + 1, index);
  f.data[3] = sub;
}

void SdoClient::queue(const CanFrame& f, bool expects_answer) {
  tx_.push_back(f);
  if (expects_answer) {
    pending_answer_frame_ = true;
    awaiting_ = false;
  }
}

void SdoClient::reset() {
  if (busy()) return;
  state_ = State::kIdle;
  phase_ = Phase::kNone;
  failure_ = Failure::kNone;
  abort_code_ = 0;
  local_reason_.clear();
}

void SdoClient::start_download(std::uint16_t index, std::uint8_t sub,
                               std::span<const std::uint8_t> data, SdoMode mode, Micros now) {
  if (busy()) throw std::logic_error("SdoClient: transfer already in progress");
  if (mode == SdoMode::kExpedited && (data.empty() || data.size() > 4)) {
    throw std::invalid_argument("SdoClient: expedited download of other than 1..4 bytes");
  }
  reset();
  tx_.clear();
  state_ = State::kBusy;
  index_ = index;
  sub_ = sub;
  mode_ = mode;
  data_.assign(data.begin(), data.end());
  done_ = 0;
  total_ = data.size();
  size_known_ = true;
  toggle_ = 0;
  offset_ = 0;
  retransmitted_ = 0;
  phase_is_block_ = false;
  timer_start_ = now;
  const std::uint32_t size = static_cast<std::uint32_t>(data.size());

  if (mode == SdoMode::kBlock) {
    phase_is_block_ = true;
    phase_ = Phase::kBlockDownInitiate;
    CanFrame f = make(static_cast<std::uint8_t>(0xC0 | (config_.block_crc ? 0x04 : 0) | 0x02));
    put_mux(f, index, sub);
    store_le32(f.data + 4, size);
    queue(f, true);
    return;
  }
  if (size >= 1 && size <= 4 && mode != SdoMode::kSegmented) {
    CanFrame f = make(static_cast<std::uint8_t>(0x23 | ((4 - size) << 2)));
    put_mux(f, index, sub);
    std::copy(data.begin(), data.end(), f.data + 4);
    phase_ = Phase::kDownInitiate;
    queue(f, true);
    return;
  }
  CanFrame f = make(0x21);
  put_mux(f, index, sub);
  store_le32(f.data + 4, size);
  phase_ = Phase::kDownInitiate;
  queue(f, true);
}

void SdoClient::start_upload(std::uint16_t index, std::uint8_t sub, SdoMode mode, Micros now) {
  if (busy()) throw std::logic_error("SdoClient: transfer already in progress");
  reset();
  tx_.clear();
  state_ = State::kBusy;
  index_ = index;
  sub_ = sub;
  mode_ = mode;
  data_.clear();
  done_ = 0;
  total_ = 0;
  size_known_ = false;
  toggle_ = 0;
  retransmitted_ = 0;
  phase_is_block_ = false;
  timer_start_ = now;
  if (mode == SdoMode::kBlock) {
    phase_is_block_ = true;
    phase_ = Phase::kBlockUpInitiate;
    std::uint8_t blk = std::clamp<std::uint8_t>(config_.block_size, 1, 127);
    CanFrame f = make(static_cast<std::uint8_t>(0xA0 | (config_.block_crc ? 0x04 : 0)));
    put_mux(f, index, sub);
    f.data[4] = blk;
    f.data[5] = 0;  // protocol switch threshold: never switch
    queue(f, true);
    return;
  }
  CanFrame f = make(0x40);
  put_mux(f, index, sub);
  phase_ = Phase::kUpInitiate;
  queue(f, true);
}

void SdoClient::fail(Failure why, std::uint32_t code, bool send_abort) {
  tx_.clear();
  pending_answer_frame_ = false;
  awaiting_ = false;
  state_ = State::kFailed;
  phase_ = Phase::kNone;
  failure_ = why;
  abort_code_ = code;
  if (send_abort) {
    CanFrame f = make(0x80);
    put_mux(f, index_, sub_);
    store_le32(f.data + 4, code);
    tx_.push_back(f);
  }
}

void SdoClient::finish() {
  awaiting_ = false;
  pending_answer_frame_ = false;
  state_ = State::kDone;
  phase_ = Phase::kNone;
}

void SdoClient::abort(Abort code) {
  if (!busy()) return;
  local_reason_ = "aborted by the client";
  fail(Failure::kLocalAbort, static_cast<std::uint32_t>(code), true);
}

std::string SdoClient::error_message() const {
  switch (failure_) {
    case Failure::kNone:
      return "no error";
    case Failure::kServerAbort:
      return fmt::format("node {} aborted the SDO transfer of 0x{:04X}:{}: {}", node_id_, index_,
                         sub_, abort_message(abort_code_));
    case Failure::kLocalAbort:
      return fmt::format("SDO transfer of 0x{:04X}:{} with node {} aborted: {}{}", index_, sub_,
                         node_id_, abort_message(abort_code_),
                         local_reason_.empty() ? "" : " (" + local_reason_ + ")");
    case Failure::kTimeout:
      return fmt::format("node {} did not answer the SDO transfer of 0x{:04X}:{} in time", node_id_,
                         index_, sub_);
  }
  return "unknown failure";
}

bool SdoClient::has_frame() const {
  return !tx_.empty() ||
         (phase_ == Phase::kBlockDownSubBlock && seq_sent_ < blksize_ && !sub_block_has_last_);
}

bool SdoClient::next_frame(CanFrame& out, Micros now) {
  if (!tx_.empty()) {
    out = tx_.front();
    tx_.pop_front();
    if (tx_.empty() && pending_answer_frame_) {
      pending_answer_frame_ = false;
      awaiting_ = true;
      timer_start_ = now;
    }
    return true;
  }
  if (phase_ == Phase::kBlockDownSubBlock && seq_sent_ < blksize_ && !sub_block_has_last_) {
    const std::size_t size = data_.size();
    const std::size_t off = block_base_ + std::size_t{seq_sent_} * 7U;
    const std::size_t n = off >= size ? 0 : std::min<std::size_t>(7, size - off);
    ++seq_sent_;
    const bool last = off + n >= size;
    CanFrame f = make(static_cast<std::uint8_t>((last ? 0x80 : 0) | seq_sent_));
    if (n > 0) std::copy_n(data_.begin() + static_cast<std::ptrdiff_t>(off), n, f.data + 1);
    if (last) sub_block_has_last_ = true;
    if (last || seq_sent_ == blksize_) {
      awaiting_ = true;
      timer_start_ = now;
    }
    out = f;
    return true;
  }
  return false;
}

Micros SdoClient::deadline() const {
  Micros d = std::numeric_limits<Micros>::max();
  if (!busy()) return d;
  if (awaiting_) d = timer_start_ + config_.timeout;
  if (phase_ == Phase::kBlockUpSubBlock && !idle_ack_sent_ && seq_expected_ > 0) {
    d = std::min(d, last_rx_ + config_.block_upload_idle_ack);
  }
  return d;
}

void SdoClient::poll(Micros now) {
  if (!busy()) return;
  if (phase_ == Phase::kBlockUpSubBlock && !idle_ack_sent_ && seq_expected_ > 0 &&
      now >= last_rx_ + config_.block_upload_idle_ack) {
    // Acknowledge what arrived in order; the server resends the rest.
    idle_ack_sent_ = true;
    send_block_ack();
    return;
  }
  if (awaiting_ && now >= timer_start_ + config_.timeout) {
    fail(Failure::kTimeout, static_cast<std::uint32_t>(Abort::kTimeout), config_.abort_on_timeout);
  }
}

bool SdoClient::on_frame(const CanFrame& frame, Micros now) {
  if (frame.id != canopen::kSdoTxBase + node_id_ || frame.extended() || frame.remote())
    return false;
  if (!busy()) return true;
  if (frame.dlc < 8) {
    local_reason_ = "short SDO frame from the server";
    fail(Failure::kLocalAbort, static_cast<std::uint32_t>(Abort::kCommandSpecifier), true);
    return true;
  }
  const std::uint8_t* d = frame.data;
  if (d[0] == 0x80) {
    // An abort names the object; one for another object is a stale answer to an earlier
    // transfer (or to stray segments) and is ignored.
    if (load_le16(d + 1) == index_ && d[3] == sub_) {
      fail(Failure::kServerAbort, load_le32(d + 4), false);
    }
    return true;
  }
  // Every answer to an initiate request names the object: one naming another object is a late
  // answer to an earlier request (after a timeout and retry) and is ignored.
  const bool initiate = phase_ == Phase::kDownInitiate || phase_ == Phase::kUpInitiate ||
                        phase_ == Phase::kBlockDownInitiate || phase_ == Phase::kBlockUpInitiate;
  if (initiate && !mux_matches(d, index_, sub_)) return true;
  timer_start_ = now;
  switch (phase_) {
    case Phase::kDownInitiate:
    case Phase::kDownSegment:
      handle_down(d);
      break;
    case Phase::kUpInitiate:
    case Phase::kUpSegment:
      handle_up(d);
      break;
    case Phase::kBlockDownInitiate:
    case Phase::kBlockDownSubBlock:
    case Phase::kBlockDownEnd:
      handle_block_down(d);
      break;
    case Phase::kBlockUpInitiate:
    case Phase::kBlockUpSubBlock:
    case Phase::kBlockUpEnd:
      handle_block_up(d, now);
      break;
    case Phase::kNone:
      break;
  }
  return true;
}

void SdoClient::send_next_download_segment() {
  const std::size_t remaining = data_.size() - offset_;
  const std::size_t n = std::min<std::size_t>(7, remaining);
  const bool last = offset_ + n >= data_.size();
  CanFrame f = make(static_cast<std::uint8_t>((toggle_ << 4) | ((7 - n) << 1) | (last ? 1 : 0)));
  std::copy_n(data_.begin() + static_cast<std::ptrdiff_t>(offset_), n, f.data + 1);
  offset_ += n;
  queue(f, true);
}

bool SdoClient::answer_is(const std::uint8_t* d, std::uint8_t mask, std::uint8_t expected,
                          std::string_view answer_to) {
  if ((d[0] & mask) == expected) return true;
  local_reason_ = fmt::format("unexpected answer 0x{:02X} {}", d[0], answer_to);
  fail(Failure::kLocalAbort, static_cast<std::uint32_t>(Abort::kCommandSpecifier), true);
  return false;
}

bool SdoClient::toggle_matches(const std::uint8_t* d) {
  if (((d[0] >> 4) & 1) == toggle_) return true;
  fail(Failure::kLocalAbort, static_cast<std::uint32_t>(Abort::kToggleBit), true);
  return false;
}

void SdoClient::handle_down(const std::uint8_t* d) {
  if (phase_ == Phase::kDownInitiate) {
    if (!answer_is(d, 0xFF, 0x60, "to a download request")) return;
    if (data_.size() >= 1 && data_.size() <= 4 && mode_ != SdoMode::kSegmented) {
      done_ = data_.size();
      finish();
      return;
    }
    phase_ = Phase::kDownSegment;
    toggle_ = 0;
    offset_ = 0;
    send_next_download_segment();
    return;
  }
  // Segment response: scs 1 with the toggle of the segment it confirms.
  if (!answer_is(d, 0xE0, 0x20, "to a download segment")) return;
  if (!toggle_matches(d)) return;
  done_ = offset_;
  if (offset_ >= data_.size()) {
    finish();
    return;
  }
  toggle_ ^= 1;
  send_next_download_segment();
}

void SdoClient::handle_up(const std::uint8_t* d) {
  if (phase_ == Phase::kUpInitiate) {
    if (!answer_is(d, 0xE0, 0x40, "to an upload request")) return;
    const bool expedited = (d[0] & 0x02) != 0;
    const bool sized = (d[0] & 0x01) != 0;
    if (expedited) {
      const std::size_t n = sized ? 4U - ((d[0] >> 2) & 3U) : 4U;
      data_.assign(d + 4, d + 4 + n);
      done_ = total_ = n;
      finish();
      return;
    }
    if (sized) {
      total_ = load_le32(d + 4);
      size_known_ = true;
    }
    phase_ = Phase::kUpSegment;
    toggle_ = 0;
    queue(make(0x60), true);
    return;
  }
  if (!answer_is(d, 0xE0, 0x00, "to an upload segment request")) return;
  if (!toggle_matches(d)) return;
  const std::size_t n = 7U - ((d[0] >> 1) & 7U);
  data_.insert(data_.end(), d + 1, d + 1 + n);
  done_ = data_.size();
  if (size_known_ && data_.size() > total_) {
    fail(Failure::kLocalAbort, static_cast<std::uint32_t>(Abort::kLengthTooHigh), true);
    return;
  }
  if ((d[0] & 1) != 0) {
    if (size_known_ && data_.size() != total_) {
      fail(Failure::kLocalAbort, static_cast<std::uint32_t>(Abort::kLengthTooLow), true);
      return;
    }
    finish();
    return;
  }
  toggle_ ^= 1;
  queue(make(static_cast<std::uint8_t>(0x60 | (toggle_ << 4))), true);
}

void SdoClient::handle_block_down(const std::uint8_t* d) {
  switch (phase_) {
    case Phase::kBlockDownInitiate: {
      if (!answer_is(d, 0xE3, 0xA0, "to a block download request")) return;
      if (d[4] < 1 || d[4] > 127) {
        fail(Failure::kLocalAbort, static_cast<std::uint32_t>(Abort::kBlockSize), true);
        return;
      }
      crc_ = config_.block_crc && (d[0] & 0x04) != 0;
      blksize_ = d[4];
      block_base_ = 0;
      seq_sent_ = 0;
      sub_block_has_last_ = false;
      awaiting_ = false;
      phase_ = Phase::kBlockDownSubBlock;
      return;
    }
    case Phase::kBlockDownSubBlock: {
      if (!answer_is(d, 0xFF, 0xA2, "during a block download")) return;
      const std::uint8_t ackseq = d[1];
      const std::uint8_t next_blksize = d[2];
      if (ackseq > seq_sent_) {
        fail(Failure::kLocalAbort, static_cast<std::uint32_t>(Abort::kSequenceNumber), true);
        return;
      }
      const bool acked_last = sub_block_has_last_ && ackseq == seq_sent_;
      const std::size_t acked =
          std::min<std::size_t>(std::size_t{ackseq} * 7U, data_.size() - block_base_);
      retransmitted_ += static_cast<std::uint32_t>(seq_sent_ - ackseq);
      block_base_ += acked;
      done_ = block_base_;
      if (acked_last) {
        const std::size_t size = data_.size();
        const std::size_t last_n = size == 0 ? 0 : ((size - 1) % 7U) + 1U;
        CanFrame f = make(static_cast<std::uint8_t>(0xC1 | ((7U - last_n) << 2)));
        if (crc_) store_le16(f.data + 1, crc16_xmodem(0, data_.data(), data_.size()));
        phase_ = Phase::kBlockDownEnd;
        queue(f, true);
        return;
      }
      if (next_blksize < 1 || next_blksize > 127) {
        fail(Failure::kLocalAbort, static_cast<std::uint32_t>(Abort::kBlockSize), true);
        return;
      }
      blksize_ = next_blksize;
      seq_sent_ = 0;
      sub_block_has_last_ = false;
      awaiting_ = false;
      return;
    }
    case Phase::kBlockDownEnd:
      if (!answer_is(d, 0xFF, 0xA1, "to the block download end")) return;
      done_ = data_.size();
      finish();
      return;
    default:
      return;
  }
}

void SdoClient::send_block_ack() {
  CanFrame f = make(0xA2);
  f.data[1] = seq_expected_;
  f.data[2] = std::clamp<std::uint8_t>(config_.block_size, 1, 127);
  blksize_ = f.data[2];
  if (last_seen_) {
    phase_ = Phase::kBlockUpEnd;
  }
  seq_expected_ = 0;
  queue(f, true);
}

void SdoClient::handle_block_up(const std::uint8_t* d, Micros now) {
  switch (phase_) {
    case Phase::kBlockUpInitiate: {
      if ((d[0] & 0xE0) == 0x40) {
        // The server switched to a normal upload (protocol switch).
        phase_is_block_ = false;
        phase_ = Phase::kUpInitiate;
        handle_up(d);
        return;
      }
      if (!answer_is(d, 0xE1, 0xC0, "to a block upload request")) return;
      crc_ = config_.block_crc && (d[0] & 0x04) != 0;
      if ((d[0] & 0x02) != 0) {
        size_known_ = true;
        total_ = load_le32(d + 4);
      }
      blksize_ = std::clamp<std::uint8_t>(config_.block_size, 1, 127);
      seq_expected_ = 0;
      last_seen_ = false;
      last_rx_ = now;
      idle_ack_sent_ = false;
      phase_ = Phase::kBlockUpSubBlock;
      queue(make(0xA3), false);
      awaiting_ = true;
      return;
    }
    case Phase::kBlockUpSubBlock: {
      const std::uint8_t seq = d[0] & 0x7F;
      const bool last = (d[0] & 0x80) != 0;
      if (seq == 0) {
        fail(Failure::kLocalAbort, static_cast<std::uint32_t>(Abort::kSequenceNumber), true);
        return;
      }
      if (seq == seq_expected_ + 1) {
        seq_expected_ = seq;
        data_.insert(data_.end(), d + 1, d + 8);
        done_ = data_.size();
        last_rx_ = now;
        idle_ack_sent_ = false;
        if (last) last_seen_ = true;
        if (size_known_ && data_.size() > total_ + 7) {
          fail(Failure::kLocalAbort, static_cast<std::uint32_t>(Abort::kLengthTooHigh), true);
          return;
        }
        if (last || seq == blksize_) {
          send_block_ack();
          awaiting_ = true;
        }
        return;
      }
      // Out of order or repeated: keep waiting, but once the server reached the end of the
      // sub-block, tell it where to resume.
      if (last || seq >= blksize_) {
        send_block_ack();
        awaiting_ = true;
      }
      return;
    }
    case Phase::kBlockUpEnd: {
      if ((d[0] & 0xE3) != 0xC1) {
        // Late segments of a sub-block we already acknowledged are ignored.
        if ((d[0] & 0x7F) != 0 && (d[0] & 0xE0) != 0xC0) return;
        local_reason_ =
            fmt::format("unexpected frame 0x{:02X} instead of the block upload end", d[0]);
        fail(Failure::kLocalAbort, static_cast<std::uint32_t>(Abort::kCommandSpecifier), true);
        return;
      }
      const std::size_t unused = (d[0] >> 2) & 7U;
      if (unused > data_.size()) {
        fail(Failure::kLocalAbort, static_cast<std::uint32_t>(Abort::kLengthTooLow), true);
        return;
      }
      data_.resize(data_.size() - unused);
      done_ = data_.size();
      if (size_known_ && data_.size() != total_) {
        local_reason_ = fmt::format("announced {} bytes, received {}", total_, data_.size());
        fail(Failure::kLocalAbort, static_cast<std::uint32_t>(Abort::kTypeMismatch), true);
        return;
      }
      if (crc_ && crc16_xmodem(0, data_.data(), data_.size()) != load_le16(d + 1)) {
        fail(Failure::kLocalAbort, static_cast<std::uint32_t>(Abort::kCrc), true);
        return;
      }
      tx_.push_back(make(0xA1));
      finish();
      return;
    }
    default:
      return;
  }
}

}  // namespace rtcanboot::host
