// The decoder of compressed containers (docs/image-format.md, "Compressed containers"): each
// stream is raw LZMA1 ("LZMA-alone" without its 13-byte header) with fixed properties lc = 0,
// lp = 1, pb = 1 and a 32 KiB dictionary, ending with the end-of-payload marker right after its
// last byte. A container carries one stream per extent (the whole image is one extent); each
// stream starts afresh (probabilities, state, distances, range coder) and may not refer to bytes
// before its own start.
//
// Written here from the LZMA specification: freestanding, no heap, bounded memory (the
// probability array, a 32 KiB window that is both the history and the output queue, and a small
// input buffer). Streaming: put() takes compressed bytes as the SDO transfer delivers them, and
// decoding runs as far as the window has room for output that nobody took yet (available(),
// output(), take()). A symbol is decoded only when the input buffer holds at least the most bytes
// one symbol can need (kMaxSymbolInput), or when the input is over; so no decoding step ever
// waits for input in the middle of a symbol, and a hostile stream is refused at the symbol that
// breaks a rule.
#pragma once

#include <cstdint>

#include "rtcanboot/image_format.hpp"

namespace rtcanboot::lzma {

// Literal context bits, literal position bits, position bits: fixed by the container format.
inline constexpr std::uint32_t kLc = 0;
inline constexpr std::uint32_t kLp = 1;
inline constexpr std::uint32_t kPb = 1;
// The probability array holds literal coders for lc + lp up to this (0x300 << it of them).
inline constexpr std::uint32_t kMaxLcPlusLp = 1;
static_assert(kLc + kLp <= kMaxLcPlusLp, "the literal probabilities would not fit");
static_assert(kPb <= 4 && kLc <= 8 && kLp <= 4, "out of the LZMA ranges");
// History window = dictionary size: no distance may exceed it.
inline constexpr std::uint32_t kWindowSize = 32 * 1024;
static_assert((kWindowSize & (kWindowSize - 1)) == 0, "the window index wraps by a mask");
// Range coder: the first byte is 0, then 4 bytes of the code.
inline constexpr std::uint32_t kInitBytes = 5;
// The most bit decodes of one symbol, each of which reads at most one byte (after a
// normalisation range >= 2^24, probabilities stay within [31, 2017] of 2048): is-match, is-rep,
// a length (choice, choice 2, 8 bits), a position slot (6 bits), 26 direct bits and 4 align bits.
inline constexpr std::uint32_t kMaxSymbolInput = 1 + 1 + 10 + 6 + 26 + 4;

enum class Error : std::uint8_t {
  kNone = 0,
  kInitByte,   // the range coder's first byte is not 0, or its code starts at 0xFFFF'FFFF
  kDistance,   // a match reaches before the start of the stream, or farther than the window
  kOverrun,    // a literal or match past the stream's decompressed length
  kEarlyEnd,   // the end marker before the stream's decompressed length
  kCorrupt,    // the range coder's state is impossible, or not 0 after the end marker
  kTrailing,   // bytes after the last stream's end marker
  kTruncated,  // the input ended inside a stream
  kNoRoom,     // put() got more than free_space()
};

class StreamDecoder {
 public:
  // Compressed bytes the decoder buffers: one SDO block (127 segments of 7 bytes) and more.
  static constexpr std::uint32_t kInputCapacity = 2048;
  static_assert(kInputCapacity >= 2 * kMaxSymbolInput, "the input must hold whole symbols");

  // New input: one stream per run of `extents` (a sparse container; each run's sectors, the
  // image's last sector only up to `payload_length`), or with `extents == nullptr` one stream of
  // `payload_length` bytes. `extents` must stay valid while the decoder runs.
  void open(const image::ExtentList* extents, std::uint32_t payload_length);
  // Streams the input holds.
  std::uint32_t stream_count() const { return extents_ != nullptr ? extents_->count : 1; }
  // The stream being decoded (or the last one, once done).
  std::uint32_t stream_index() const { return stream_; }
  // Decompressed bytes of stream `index`.
  std::uint32_t stream_length(std::uint32_t index) const;
  // Every stream's end marker was read and checked.
  bool streams_done() const { return stage_ == Stage::kDone && stream_ + 1 >= stream_count(); }

  // Compressed bytes put() takes now.
  std::uint32_t free_space() const { return kInputCapacity - (in_end_ - in_pos_); }
  // Takes `length` <= free_space() bytes and decodes what it can; the first error sticks.
  Error put(const std::uint8_t* data, std::uint32_t length);
  // The input is over: what is buffered is decoded to its end (as the window makes room).
  Error finish_input();
  // Decodes what it can now (after take() made room); returns error().
  Error run();

  // Decompressed bytes ready in the window, in one piece (decodes first).
  std::uint32_t available();
  const std::uint8_t* output() const { return window_ + ((wpos_ - pending_) & kWindowMask); }
  // Marks `count` <= available() bytes of output() as taken.
  void take(std::uint32_t count) { pending_ -= count < pending_ ? count : pending_; }
  // available() would have something now, or run() would decode (false: it waits for input).
  bool has_work() const {
    return pending_ != 0 || (error_ == Error::kNone && stage_ != Stage::kIdle && !streams_done() &&
                             (match_left_ != 0 || input_finished_ || stage_ == Stage::kDone ||
                              in_end_ - in_pos_ >= kMaxSymbolInput));
  }
  // Bytes decoded but not taken yet.
  std::uint32_t pending() const { return pending_; }
  // The last stream ended, its end checked, and every byte was taken.
  bool drained() const { return streams_done() && pending_ == 0; }
  Error error() const { return error_; }
  std::uint32_t received() const { return received_; }              // compressed bytes taken so far
  std::uint32_t produced() const { return produced_; }              // of the current stream
  std::uint32_t total_produced() const { return total_produced_; }  // of every stream

 private:
  static constexpr std::uint32_t kWindowMask = kWindowSize - 1;
  static constexpr std::uint32_t kStates = 12;
  static constexpr std::uint32_t kPosStates = 1U << kPb;
  static constexpr std::uint32_t kLenLowBits = 3;
  static constexpr std::uint32_t kLenHighBits = 8;
  static constexpr std::uint32_t kEndPosModelIndex = 14;
  static constexpr std::uint32_t kFullDistances = 128;
  static constexpr std::uint32_t kAlignBits = 4;
  static constexpr std::uint32_t kMatchMinLength = 2;

  // Probability array offsets (11-bit probabilities, one u16 each).
  struct LenCoder {
    static constexpr std::uint32_t kChoice = 0;
    static constexpr std::uint32_t kChoice2 = 1;
    static constexpr std::uint32_t kLow = 2;
    static constexpr std::uint32_t kMid = kLow + (kPosStates << kLenLowBits);
    static constexpr std::uint32_t kHigh = kMid + (kPosStates << kLenLowBits);
    static constexpr std::uint32_t kSize = kHigh + (1U << kLenHighBits);
  };
  static constexpr std::uint32_t kIsMatch = 0;
  static constexpr std::uint32_t kIsRep = kIsMatch + (kStates << kPb);
  static constexpr std::uint32_t kIsRepG0 = kIsRep + kStates;
  static constexpr std::uint32_t kIsRepG1 = kIsRepG0 + kStates;
  static constexpr std::uint32_t kIsRepG2 = kIsRepG1 + kStates;
  static constexpr std::uint32_t kIsRep0Long = kIsRepG2 + kStates;
  static constexpr std::uint32_t kPosSlot = kIsRep0Long + (kStates << kPb);
  static constexpr std::uint32_t kSpecPos = kPosSlot + (4U << 6);
  static constexpr std::uint32_t kAlign = kSpecPos + 1 + kFullDistances - kEndPosModelIndex;
  static constexpr std::uint32_t kLenDecoder = kAlign + (1U << kAlignBits);
  static constexpr std::uint32_t kRepLenDecoder = kLenDecoder + LenCoder::kSize;
  static constexpr std::uint32_t kLiteral = kRepLenDecoder + LenCoder::kSize;
  static constexpr std::uint32_t kProbCount = kLiteral + (0x300U << kMaxLcPlusLp);

 public:
  // Bytes of RAM the decoder's tables and buffers take (for the docs and the bench).
  static constexpr std::uint32_t kProbBytes = kProbCount * 2;

 private:
  enum class Stage : std::uint8_t { kIdle, kInit, kSymbols, kDone };

  void begin_stream(std::uint32_t index);
  bool init_range_coder();
  bool decode_symbol();
  bool symbol_error();
  void copy_match();
  void put_byte(std::uint8_t byte);
  std::uint8_t byte_back(std::uint32_t distance) const {
    return window_[(wpos_ - distance) & kWindowMask];
  }
  // Range decoder over in_[in_pos_, in_end_); running past in_end_ sets short_input_.
  std::uint8_t next_input();
  void normalize();
  std::uint32_t bit(std::uint16_t& prob);
  std::uint32_t bit_tree(std::uint32_t base, std::uint32_t bits);
  std::uint32_t reverse_bit_tree(std::uint32_t base, std::uint32_t bits);
  std::uint32_t direct_bits(std::uint32_t bits);
  std::uint32_t length(std::uint32_t coder, std::uint32_t pos_state);
  std::uint32_t distance(std::uint32_t length_code);
  void fail(Error e) {
    if (error_ == Error::kNone) error_ = e;
  }

  // Stream state.
  const image::ExtentList* extents_ = nullptr;
  std::uint32_t payload_length_ = 0;
  std::uint32_t stream_ = 0;  // index of the current stream
  std::uint32_t total_produced_ = 0;
  Stage stage_ = Stage::kIdle;
  bool input_finished_ = false;
  bool short_input_ = false;
  bool corrupt_ = false;
  std::uint32_t length_ = 0;    // decompressed bytes of the current stream
  std::uint32_t produced_ = 0;  // of them decoded so far
  std::uint32_t state_ = 0;
  std::uint32_t reps_[4] = {};
  std::uint32_t match_left_ = 0;  // bytes of the current match still to copy
  std::uint32_t range_ = 0;
  std::uint32_t code_ = 0;
  Error error_ = Error::kNone;

  // Buffers.
  std::uint32_t received_ = 0;
  std::uint32_t in_pos_ = 0;
  std::uint32_t in_end_ = 0;
  std::uint32_t wpos_ = 0;     // next byte of the window to write
  std::uint32_t pending_ = 0;  // bytes before wpos_ not taken yet
  std::uint16_t probs_[kProbCount] = {};
  std::uint8_t in_[kInputCapacity] = {};
  std::uint8_t window_[kWindowSize] = {};
};

}  // namespace rtcanboot::lzma
