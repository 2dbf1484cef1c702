#include "rtcanboot/lz4_chunks.hpp"

#include <cstring>

namespace rtcanboot::lz4 {

namespace {

constexpr std::uint32_t kMinMatch = 4;
constexpr std::uint32_t kLengthEscape = 15;

// Reads the extension bytes of a length whose nibble was 15. False when the block ends first;
// `length` stops growing once it exceeds `limit` (the caller refuses it then).
bool extend_length(const std::uint8_t* in, std::uint32_t in_length, std::uint32_t& ip,
                   std::uint32_t& length, std::uint32_t limit) {
  for (;;) {
    if (ip >= in_length) return false;
    const std::uint8_t more = in[ip++];
    length += more;
    if (more != 255 || length > limit) return true;
  }
}

std::uint16_t load16(const std::uint8_t* p) {
  return static_cast<std::uint16_t>(p[0] | (p[1] << 8));
}

}  // namespace

Error decode_block(const std::uint8_t* in, std::uint32_t in_length, std::uint8_t* out,
                   std::uint32_t out_length) {
  std::uint32_t ip = 0;
  std::uint32_t op = 0;
  for (;;) {
    if (ip >= in_length) return Error::kTruncatedBlock;
    const std::uint8_t token = in[ip++];
    std::uint32_t literals = token >> 4;
    if (literals == kLengthEscape && !extend_length(in, in_length, ip, literals, out_length)) {
      return Error::kTruncatedBlock;
    }
    if (literals > out_length - op) return Error::kOverrun;
    if (literals > in_length - ip) return Error::kTruncatedBlock;
    if (out != nullptr) std::memcpy(out + op, in + ip, literals);
    ip += literals;
    op += literals;
    // The last sequence has literals only: the block ends after them.
    if (ip == in_length) return op == out_length ? Error::kNone : Error::kUnderrun;
    if (in_length - ip < 2) return Error::kTruncatedBlock;
    const std::uint32_t offset = load16(in + ip);
    ip += 2;
    if (offset == 0 || offset > op) return Error::kMatchOffset;
    std::uint32_t match = token & 0x0F;
    if (match == kLengthEscape && !extend_length(in, in_length, ip, match, out_length)) {
      return Error::kTruncatedBlock;
    }
    match += kMinMatch;
    if (match > out_length - op) return Error::kOverrun;
    if (out != nullptr) {
      // Byte by byte: the source may overlap the bytes being written (offset < match).
      for (std::uint32_t i = 0; i < match; ++i) out[op + i] = out[op - offset + i];
    }
    op += match;
  }
}

void ChunkDecoder::open(std::uint32_t stream_length) {
  stream_length_ = stream_length;
  chunks_ = chunk_count(stream_length);
  received_ = 0;
  in_length_ = 0;
  checked_end_ = 0;
  checked_chunks_ = 0;
  decoded_chunks_ = 0;
  produced_ = 0;
  window_length_ = 0;
  window_taken_ = 0;
  error_ = Error::kNone;
}

std::uint32_t ChunkDecoder::sector_length(std::uint32_t chunk) const {
  const std::uint32_t start = chunk * kSectorSize;
  const std::uint32_t rest = stream_length_ - start;
  return rest < kSectorSize ? rest : kSectorSize;
}

Error ChunkDecoder::put(const std::uint8_t* data, std::uint32_t length) {
  if (error_ != Error::kNone) return error_;
  if (length > free_space()) return error_ = Error::kOverrun;
  if (length != 0) std::memcpy(in_ + in_length_, data, length);
  in_length_ += length;
  received_ += length;
  return error_ = check_chunks();
}

Error ChunkDecoder::check_chunks() {
  for (;;) {
    const std::uint32_t at = checked_end_;
    if (checked_chunks_ == chunks_) return at < in_length_ ? Error::kTrailing : Error::kNone;
    if (in_length_ - at < kChunkHeadSize) return Error::kNone;
    const std::uint16_t head = load16(in_ + at);
    const std::uint32_t sector = sector_length(checked_chunks_);
    const bool stored = (head & kStoredBit) != 0;
    const std::uint32_t body = head & ~static_cast<std::uint32_t>(kStoredBit);
    // Checked at once, so a head can never ask for more than the input buffer holds.
    if (stored ? body != sector : (body == 0 || body >= sector)) return Error::kChunkLength;
    if (in_length_ - at - kChunkHeadSize < body) return Error::kNone;
    if (!stored) {
      const Error e = decode_block(in_ + at + kChunkHeadSize, body, nullptr, sector);
      if (e != Error::kNone) return e;
    }
    checked_end_ = at + kChunkHeadSize + body;
    ++checked_chunks_;
  }
}

Error ChunkDecoder::finish_input() const {
  if (error_ != Error::kNone) return error_;
  return checked_chunks_ == chunks_ ? Error::kNone : Error::kTruncatedStream;
}

std::uint32_t ChunkDecoder::available() {
  if (window_taken_ < window_length_) return window_length_ - window_taken_;
  if (error_ != Error::kNone || decoded_chunks_ == checked_chunks_) return 0;
  // The chunk at the front of the input was checked whole by check_chunks().
  const std::uint16_t head = load16(in_);
  const std::uint32_t sector = sector_length(decoded_chunks_);
  const std::uint32_t body = head & ~static_cast<std::uint32_t>(kStoredBit);
  if ((head & kStoredBit) != 0) {
    std::memcpy(window_, in_ + kChunkHeadSize, body);
  } else {
    const Error e = decode_block(in_ + kChunkHeadSize, body, window_, sector);
    if (e != Error::kNone) {
      error_ = e;  // cannot happen after the check; kept so no garbage is ever handed out
      return 0;
    }
  }
  const std::uint32_t used = kChunkHeadSize + body;
  std::memmove(in_, in_ + used, in_length_ - used);
  in_length_ -= used;
  checked_end_ -= used;
  ++decoded_chunks_;
  produced_ += sector;
  window_length_ = sector;
  window_taken_ = 0;
  return window_length_;
}

void ChunkDecoder::take(std::uint32_t count) {
  const std::uint32_t rest = window_length_ - window_taken_;
  window_taken_ += count < rest ? count : rest;
}

}  // namespace rtcanboot::lz4
