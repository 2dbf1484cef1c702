// The decoder of compressed containers (docs/image-format.md, "Compressed containers"): the
// payload is one chunk per transmitted 4 KiB sector of the image, each `u16 head` + body:
//   head bit 15 set:   stored, bits 0..14 = body length = the sector's length, the body is the
//                      sector's bytes as they are;
//   head bit 15 clear: an LZ4 block (the liblz4 block format, no frame) of head bytes,
//                      1 <= head < the sector's length, that decodes to exactly the sector.
// Every sector is 4096 bytes but the stream's last one, which ends at the stream length. A match
// never reaches before the start of its own sector, so the decoder needs one 4 KiB window.
//
// Written here: freestanding, no heap, bounded memory (an input buffer of kInputCapacity bytes
// and the window). Every chunk is checked whole as soon as its last byte arrives (a dry run that
// only counts), so a bad stream is refused while the SDO transfer is still open; the real decode
// into the window then repeats the same checks and cannot fail.
#pragma once

#include <cstdint>

namespace rtcanboot::lz4 {

inline constexpr std::uint32_t kSectorSize = 4096;
inline constexpr std::uint16_t kStoredBit = 0x8000;
inline constexpr std::uint32_t kChunkHeadSize = 2;
// The largest chunk: a stored 4 KiB sector and its head.
inline constexpr std::uint32_t kMaxChunkSize = kChunkHeadSize + kSectorSize;

enum class Error : std::uint8_t {
  kNone = 0,
  kChunkLength,      // a head with length 0, a compressed length >= the sector, a stored length
                     // that is not the sector's
  kMatchOffset,      // offset 0, or a match that starts before the sector
  kOverrun,          // a literal run or match past the end of the sector
  kUnderrun,         // the block ends before the sector is full
  kTruncatedBlock,   // a sequence runs past the end of the block's bytes
  kTrailing,         // bytes after the last chunk
  kTruncatedStream,  // the input ended inside a chunk or before the last chunk
};

// Decodes one LZ4 block `in[0..in_length)` into exactly `out_length` bytes at `out`; with
// `out == nullptr` it only checks (the same checks, no byte written).
Error decode_block(const std::uint8_t* in, std::uint32_t in_length, std::uint8_t* out,
                   std::uint32_t out_length);

// Sectors (chunks) of a stream of `stream_length` decompressed bytes.
constexpr std::uint32_t chunk_count(std::uint32_t stream_length) {
  return (stream_length + kSectorSize - 1) / kSectorSize;
}

class ChunkDecoder {
 public:
  // Input buffer: one largest chunk plus room for the next ones to arrive meanwhile.
  static constexpr std::uint32_t kInputCapacity = kMaxChunkSize + 2046;
  static_assert(kInputCapacity >= kMaxChunkSize, "a whole chunk must fit, or the stream stalls");

  // A new stream of `stream_length` decompressed bytes.
  void open(std::uint32_t stream_length);

  // Compressed bytes put() takes now.
  std::uint32_t free_space() const { return kInputCapacity - in_length_; }
  // Takes `length` <= free_space() bytes (more is kOverrun, nothing taken) and checks every
  // chunk they complete; the first error sticks.
  Error put(const std::uint8_t* data, std::uint32_t length);
  // The input is over: kTruncatedStream unless every chunk arrived whole.
  Error finish_input() const;

  // Decompressed bytes ready in the window (decodes the next chunk when the window is empty).
  std::uint32_t available();
  const std::uint8_t* output() const { return window_ + window_taken_; }
  // Marks `count` <= available() bytes of output() as taken.
  void take(std::uint32_t count);
  // Every decompressed byte of the stream was taken.
  bool drained() const { return produced_ == stream_length_ && window_taken_ == window_length_; }
  // available() would return more than 0.
  bool has_output() const {
    return window_taken_ < window_length_ || decoded_chunks_ < checked_chunks_;
  }
  Error error() const { return error_; }
  std::uint32_t received() const { return received_; }  // compressed bytes taken so far

 private:
  std::uint32_t sector_length(std::uint32_t chunk) const;
  Error check_chunks();

  std::uint32_t stream_length_ = 0;
  std::uint32_t chunks_ = 0;
  std::uint32_t received_ = 0;
  std::uint32_t in_length_ = 0;    // bytes in in_
  std::uint32_t checked_end_ = 0;  // in_[0, checked_end_) holds whole, checked chunks
  std::uint32_t checked_chunks_ = 0;
  std::uint32_t decoded_chunks_ = 0;
  std::uint32_t produced_ = 0;  // decompressed bytes decoded into the window so far
  std::uint32_t window_length_ = 0;
  std::uint32_t window_taken_ = 0;
  Error error_ = Error::kNone;
  std::uint8_t in_[kInputCapacity] = {};
  std::uint8_t window_[kSectorSize] = {};
};

}  // namespace rtcanboot::lz4
