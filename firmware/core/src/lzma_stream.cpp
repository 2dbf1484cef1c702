#include "rtcanboot/lzma_stream.hpp"

#include <cstring>

namespace rtcanboot::lzma {

namespace {

constexpr std::uint32_t kTopValue = 1U << 24;
constexpr std::uint32_t kProbBits = 11;
constexpr std::uint32_t kProbInit = (1U << kProbBits) / 2;
constexpr std::uint32_t kMoveBits = 5;
constexpr std::uint32_t kEndMarker = 0xFFFF'FFFF;  // the distance of the end-of-payload marker
constexpr std::uint32_t kLiteralStates = 7;        // states below: the last symbol was a literal

}  // namespace

void StreamDecoder::open(const image::ExtentList* extents, std::uint32_t payload_length) {
  extents_ = extents;
  payload_length_ = payload_length;
  total_produced_ = 0;
  error_ = Error::kNone;
  input_finished_ = false;
  received_ = 0;
  in_pos_ = 0;
  in_end_ = 0;
  wpos_ = 0;
  pending_ = 0;
  if (stream_count() == 0) {
    stream_ = 0;
    stage_ = Stage::kDone;  // nothing may arrive
    return;
  }
  begin_stream(0);
}

std::uint32_t StreamDecoder::stream_length(std::uint32_t index) const {
  if (extents_ == nullptr) return payload_length_;
  const image::Extent& run = extents_->runs[index];
  const std::uint32_t start = std::uint32_t{run.first_sector} * image::kSectorSize;
  std::uint32_t end = (std::uint32_t{run.first_sector} + run.sector_count) * image::kSectorSize;
  if (end > payload_length_) end = payload_length_;
  return end > start ? end - start : 0;
}

void StreamDecoder::begin_stream(std::uint32_t index) {
  stream_ = index;
  length_ = stream_length(index);
  produced_ = 0;
  match_left_ = 0;
  short_input_ = false;
  corrupt_ = false;
  stage_ = Stage::kInit;
}

Error StreamDecoder::put(const std::uint8_t* data, std::uint32_t length) {
  if (error_ != Error::kNone) return error_;
  if (length > free_space()) {
    fail(Error::kNoRoom);
    return error_;
  }
  if (kInputCapacity - in_end_ < length) {
    // Only the bytes not read yet move to the front (fewer than a symbol's most, mostly).
    std::memmove(in_, in_ + in_pos_, in_end_ - in_pos_);
    in_end_ -= in_pos_;
    in_pos_ = 0;
  }
  if (length != 0) std::memcpy(in_ + in_end_, data, length);
  in_end_ += length;
  received_ += length;
  return run();
}

Error StreamDecoder::finish_input() {
  input_finished_ = true;
  return run();
}

Error StreamDecoder::run() {
  while (error_ == Error::kNone) {
    if (match_left_ != 0) {
      copy_match();
      if (match_left_ != 0) break;  // the window is full of bytes nobody took yet
      continue;
    }
    if (stage_ == Stage::kIdle) break;
    if (stage_ == Stage::kDone) {
      if (stream_ + 1 < stream_count()) {
        begin_stream(stream_ + 1);
        continue;
      }
      if (in_end_ != in_pos_) fail(Error::kTrailing);
      break;
    }
    const std::uint32_t buffered = in_end_ - in_pos_;
    if (stage_ == Stage::kInit) {
      if (buffered < kInitBytes) {
        if (input_finished_) fail(Error::kTruncated);
        break;
      }
      if (!init_range_coder()) break;
      continue;
    }
    // A symbol only with all the input it can need, or at the end of the input.
    if (buffered < kMaxSymbolInput && !input_finished_) break;
    if (pending_ == kWindowSize) break;  // no room for a byte
    if (!decode_symbol()) break;
  }
  return error_;
}

bool StreamDecoder::init_range_coder() {
  if (in_[in_pos_] != 0) {
    fail(Error::kInitByte);
    return false;
  }
  code_ = 0;
  for (std::uint32_t i = 1; i < kInitBytes; ++i) code_ = (code_ << 8) | in_[in_pos_ + i];
  in_pos_ += kInitBytes;
  range_ = 0xFFFF'FFFF;
  if (code_ == range_) {
    fail(Error::kInitByte);  // code must stay below range
    return false;
  }
  for (std::uint16_t& p : probs_) p = static_cast<std::uint16_t>(kProbInit);
  state_ = 0;
  for (std::uint32_t& r : reps_) r = 0;
  stage_ = Stage::kSymbols;
  return true;
}

std::uint8_t StreamDecoder::next_input() {
  if (in_pos_ == in_end_) {
    short_input_ = true;  // only at the end of the input (run() waits for kMaxSymbolInput)
    return 0;
  }
  return in_[in_pos_++];
}

void StreamDecoder::normalize() {
  if (range_ < kTopValue) {
    range_ <<= 8;
    code_ = (code_ << 8) | next_input();
  }
}

std::uint32_t StreamDecoder::bit(std::uint16_t& prob) {
  const std::uint32_t bound = (range_ >> kProbBits) * prob;
  std::uint32_t b = 0;
  if (code_ < bound) {
    range_ = bound;
    prob = static_cast<std::uint16_t>(prob + (((1U << kProbBits) - prob) >> kMoveBits));
  } else {
    range_ -= bound;
    code_ -= bound;
    prob = static_cast<std::uint16_t>(prob - (prob >> kMoveBits));
    b = 1;
  }
  normalize();
  return b;
}

std::uint32_t StreamDecoder::bit_tree(std::uint32_t base, std::uint32_t bits) {
  std::uint32_t m = 1;
  for (std::uint32_t i = 0; i < bits; ++i) m = (m << 1) + bit(probs_[base + m]);
  return m - (1U << bits);
}

std::uint32_t StreamDecoder::reverse_bit_tree(std::uint32_t base, std::uint32_t bits) {
  std::uint32_t m = 1;
  std::uint32_t symbol = 0;
  for (std::uint32_t i = 0; i < bits; ++i) {
    const std::uint32_t b = bit(probs_[base + m]);
    m = (m << 1) + b;
    symbol |= b << i;
  }
  return symbol;
}

std::uint32_t StreamDecoder::direct_bits(std::uint32_t bits) {
  std::uint32_t result = 0;
  for (std::uint32_t i = 0; i < bits; ++i) {
    range_ >>= 1;
    code_ -= range_;
    const std::uint32_t t = 0U - (code_ >> 31);  // all ones when code was below range
    code_ += range_ & t;
    if (code_ == range_) corrupt_ = true;
    normalize();
    result = (result << 1) + (t + 1);
  }
  return result;
}

std::uint32_t StreamDecoder::length(std::uint32_t coder, std::uint32_t pos_state) {
  if (bit(probs_[coder + LenCoder::kChoice]) == 0) {
    return bit_tree(coder + LenCoder::kLow + (pos_state << kLenLowBits), kLenLowBits);
  }
  if (bit(probs_[coder + LenCoder::kChoice2]) == 0) {
    return (1U << kLenLowBits) +
           bit_tree(coder + LenCoder::kMid + (pos_state << kLenLowBits), kLenLowBits);
  }
  return (2U << kLenLowBits) + bit_tree(coder + LenCoder::kHigh, kLenHighBits);
}

std::uint32_t StreamDecoder::distance(std::uint32_t length_code) {
  const std::uint32_t len_state = length_code < 3 ? length_code : 3;
  const std::uint32_t slot = bit_tree(kPosSlot + (len_state << 6), 6);
  if (slot < 4) return slot;
  const std::uint32_t direct = (slot >> 1) - 1;
  std::uint32_t dist = (2U | (slot & 1U)) << direct;
  if (slot < kEndPosModelIndex) return dist + reverse_bit_tree(kSpecPos + dist - slot, direct);
  dist += direct_bits(direct - kAlignBits) << kAlignBits;
  return dist + reverse_bit_tree(kAlign, kAlignBits);
}

void StreamDecoder::put_byte(std::uint8_t byte) {
  window_[wpos_] = byte;
  wpos_ = (wpos_ + 1) & kWindowMask;
  ++pending_;
  ++produced_;
  ++total_produced_;
}

void StreamDecoder::copy_match() {
  const std::uint32_t back = reps_[0] + 1;  // checked: within the stream and the window
  while (match_left_ != 0 && pending_ < kWindowSize) {
    put_byte(byte_back(back));
    --match_left_;
  }
}

// After the bits of a symbol: input that ran out (only possible at the end of the input) or an
// impossible range coder state refuses the stream.
bool StreamDecoder::symbol_error() {
  if (short_input_) {
    fail(Error::kTruncated);
    return true;
  }
  if (corrupt_) {
    fail(Error::kCorrupt);
    return true;
  }
  return false;
}

bool StreamDecoder::decode_symbol() {
  const std::uint32_t pos_state = produced_ & (kPosStates - 1);
  if (bit(probs_[kIsMatch + (state_ << kPb) + pos_state]) == 0) {
    if (produced_ == length_) {
      fail(Error::kOverrun);
      return false;
    }
    const std::uint32_t previous = produced_ != 0 ? byte_back(1) : 0;
    const std::uint32_t literal_state =
        ((produced_ & ((1U << kLp) - 1)) << kLc) + (previous >> (8 - kLc));
    const std::uint32_t base = kLiteral + 0x300 * literal_state;
    std::uint32_t symbol = 1;
    if (state_ >= kLiteralStates) {
      // After a match: the byte at the last distance guides the first bits.
      std::uint32_t match_byte = byte_back(reps_[0] + 1);
      do {
        const std::uint32_t match_bit = (match_byte >> 7) & 1U;
        match_byte <<= 1;
        const std::uint32_t b = bit(probs_[base + ((1 + match_bit) << 8) + symbol]);
        symbol = (symbol << 1) | b;
        if (match_bit != b) break;
      } while (symbol < 0x100);
    }
    while (symbol < 0x100) symbol = (symbol << 1) | bit(probs_[base + symbol]);
    if (symbol_error()) return false;
    put_byte(static_cast<std::uint8_t>(symbol));
    state_ = state_ < 4 ? 0 : (state_ < 10 ? state_ - 3 : state_ - 6);
    return true;
  }
  std::uint32_t length_code = 0;
  if (bit(probs_[kIsRep + state_]) == 0) {
    // A match with a new distance, or the end marker.
    length_code = length(kLenDecoder, pos_state);
    state_ = state_ < kLiteralStates ? 7 : 10;
    const std::uint32_t dist = distance(length_code);
    if (symbol_error()) return false;
    if (dist == kEndMarker) {
      if (produced_ != length_) {
        fail(Error::kEarlyEnd);
      } else if (code_ != 0) {
        fail(Error::kCorrupt);  // the encoder's flush leaves the code at 0
      } else {
        stage_ = Stage::kDone;
        return true;
      }
      return false;
    }
    reps_[3] = reps_[2];
    reps_[2] = reps_[1];
    reps_[1] = reps_[0];
    reps_[0] = dist;
  } else {
    if (bit(probs_[kIsRepG0 + state_]) == 0) {
      if (bit(probs_[kIsRep0Long + (state_ << kPb) + pos_state]) == 0) {
        // One byte at the last distance.
        if (symbol_error()) return false;
        if (produced_ == length_) {
          fail(Error::kOverrun);
          return false;
        }
        if (reps_[0] >= produced_) {
          fail(Error::kDistance);
          return false;
        }
        state_ = state_ < kLiteralStates ? 9 : 11;
        put_byte(byte_back(reps_[0] + 1));
        return true;
      }
    } else {
      std::uint32_t dist = 0;
      if (bit(probs_[kIsRepG1 + state_]) == 0) {
        dist = reps_[1];
      } else {
        if (bit(probs_[kIsRepG2 + state_]) == 0) {
          dist = reps_[2];
        } else {
          dist = reps_[3];
          reps_[3] = reps_[2];
        }
        reps_[2] = reps_[1];
      }
      reps_[1] = reps_[0];
      reps_[0] = dist;
    }
    length_code = length(kRepLenDecoder, pos_state);
    state_ = state_ < kLiteralStates ? 8 : 11;
  }
  if (symbol_error()) return false;
  // Every distance is checked where it is used: within this stream and the window.
  if (reps_[0] >= produced_ || reps_[0] >= kWindowSize) {
    fail(Error::kDistance);
    return false;
  }
  const std::uint32_t count = length_code + kMatchMinLength;
  if (count > length_ - produced_) {
    fail(Error::kOverrun);
    return false;
  }
  match_left_ = count;
  copy_match();
  return true;
}

std::uint32_t StreamDecoder::available() {
  run();
  if (error_ != Error::kNone || pending_ == 0) return 0;
  const std::uint32_t start = (wpos_ - pending_) & kWindowMask;
  const std::uint32_t to_end = kWindowSize - start;
  return pending_ < to_end ? pending_ : to_end;
}

}  // namespace rtcanboot::lzma
