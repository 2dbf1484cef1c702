// The flash manager: streams one image into the application region and erases what an update
// or a clear needs, all through the asynchronous FlashPort, one small step per poll().
//
// Writing: data is pushed into a RAM ring (owned by the caller) and programmed in whole 256-byte
// pages (the final tail padded with 0xFF). Erasing runs lazily, at most one 64 KiB block ahead
// of the write pointer: 64 KiB blocks where aligned and wholly needed, 4 KiB sectors otherwise,
// and a unit that reads back blank is skipped instead of erased. Once every page is programmed,
// the payload is read back and its CRC-32 and SHA-256 are computed from the flash.
//
// A sparse job (a sparse container, docs/image-format.md) writes the stream into the listed
// runs of 4 KiB sectors only: erasing and programming stay inside them, and the read-back
// covers the whole image, so the result is checked against the full image's CRC-32 and SHA-256.
//
// A patch job (a patch container) programs the stream's bytes into the patch record's runs
// without erasing: each piece of a run inside one page is checked to read 0xFF on the flash and
// programmed as a page of 0xFF around it (a 0xFF byte leaves a NOR cell as it is). The
// read-back again covers the whole image.
//
// Only the caller decides when flash work may begin (arm()), so a revoke record can be written
// before anything of the old application is erased.
#pragma once

#include <cstdint>
#include <span>

#include "rtcanboot/canopen_defs.hpp"
#include "rtcanboot/flash_port.hpp"
#include "rtcanboot/hash.hpp"
#include "rtcanboot/image_format.hpp"
#include "rtcanboot/memory_map.hpp"

namespace rtcanboot {

class FlashWriter {
 public:
  enum class State : std::uint8_t {
    kIdle,       // no job
    kWriting,    // taking data, erasing ahead, programming pages
    kVerifying,  // all pages programmed; reading the payload back
    kErasing,    // erase-only job (0x1F51 clear)
    kDone,       // job finished; for a write, verified_crc32()/verified_sha256() are valid
    kFailed,     // a flash operation failed; failure() says which
  };

  static constexpr std::uint32_t kPageSize = memory_map::kPageSize;
  // How far erasing may run ahead of the write pointer.
  static constexpr std::uint32_t kEraseLookahead = memory_map::kBlock64Size;
  // Bytes read per poll() for blank checks and read-back verification (bounds poll() time).
  static constexpr std::uint32_t kReadPerPoll = 4096;
  // The smallest usable ring: two pages, so one can be programmed while the next fills.
  static constexpr std::uint32_t kMinRingSize = 2 * kPageSize;

  // `ring` is used up to the largest multiple of the page size it holds.
  FlashWriter(FlashPort& flash, Sha256Engine& sha, std::span<std::uint8_t> ring);

  // A new write job for [offset, offset + length) (sector-aligned offset). Resets the ring;
  // touches no flash before arm().
  void open_write(std::uint32_t offset, std::uint32_t length);
  // A sparse write job: the pushed bytes go to the sectors of `extents` (sector-aligned offset,
  // runs inside the image of `image_length` bytes, as parse_extents() accepted them), then all
  // `image_length` bytes from `offset` are read back. `extents` must outlive the job.
  void open_sparse_write(std::uint32_t offset, std::uint32_t image_length,
                         const image::ExtentList& extents);
  // A patch write job: the pushed bytes go to the runs of `runs` (inside the image of
  // `image_length` bytes from the sector-aligned `offset`, as parse_patch() accepted them),
  // nothing is erased, then all `image_length` bytes are read back. `runs` must outlive the job.
  void open_patch_write(std::uint32_t offset, std::uint32_t image_length,
                        const image::PatchList& runs);
  // A new erase job: every unit of [offset, offset + length) that is not blank gets erased.
  void open_erase(std::uint32_t offset, std::uint32_t length);
  // Flash work of the open job may start.
  void arm() { armed_ = true; }
  // Abandons the job (an operation in flight still completes in poll()).
  void stop();

  // Ring space for push(), never more than the rest of the payload; 0 when no write job is open.
  std::uint32_t free_space() const;
  // Ring space regardless of the payload length (pacing a client whose last segment is short).
  std::uint32_t ring_room() const { return capacity_ - pending_bytes(); }
  // Queues payload bytes (in order); returns how many were taken (at most free_space()).
  std::uint32_t push(const std::uint8_t* data, std::uint32_t length);
  // Every byte has been pushed: program the tail, then verify.
  void finish_write() { input_complete_ = true; }

  // One step: completes the operation in flight, starts the next, or reads a chunk.
  void poll();

  State state() const { return state_; }
  bool operation_in_flight() const { return in_flight_; }
  // The current (or last, after stop()) job started an erase or a program.
  bool job_changed_flash() const { return changed_flash_; }
  // poll() has something to do now (an operation to complete or to start, data to read back).
  bool has_work() const;
  canopen::FlashDetail failure() const { return failure_; }
  std::uint32_t ring_capacity() const { return capacity_; }
  std::uint32_t verified_crc32() const { return verified_crc32_; }
  const std::uint8_t* verified_sha256() const { return verified_sha256_; }
  // The first 8 bytes read back (the image's vector table), valid in kDone.
  const std::uint8_t* verified_head() const { return verified_head_; }

  // Statistics of the current job (tests, benchmark).
  struct Stats {
    std::uint32_t erases_4k = 0;
    std::uint32_t erases_64k = 0;
    std::uint32_t blank_skipped = 0;  // units found blank and not erased
    std::uint32_t pages = 0;
  };
  const Stats& stats() const { return stats_; }

 private:
  enum class Op : std::uint8_t { kNone, kErase, kProgram };

  bool erase_step(std::uint32_t limit);
  void program_page();
  // Patch job: the image offset of stream byte `position` and the bytes from there to the end
  // of its run or its flash page, whichever comes first.
  std::uint32_t patch_piece(std::uint32_t position, std::uint32_t* image_offset) const;
  void program_patch_piece();
  // Starts programming `page` at `page_offset`; the operation moves the stream by
  // `stream_bytes` when it completes.
  void start_program(std::uint32_t page_offset, const std::uint8_t* page,
                     std::uint32_t stream_bytes);
  void verify_step();
  void complete_operation();
  void fail(canopen::FlashDetail detail);
  std::uint32_t pending_bytes() const { return pushed_ - programmed_; }
  // Flash offset of stream byte `position`, and the stream position where its run ends.
  std::uint32_t flash_offset(std::uint32_t position) const;
  std::uint32_t run_end(std::uint32_t position) const;

  FlashPort& flash_;
  Sha256Engine& sha_;
  std::uint8_t* ring_;
  std::uint32_t capacity_;

  State state_ = State::kIdle;
  bool armed_ = false;
  bool input_complete_ = false;
  std::uint32_t generation_ = 0;  // a stale operation's completion must not move the new job

  std::uint32_t start_ = 0;                     // flash offset of the job
  std::uint32_t length_ = 0;                    // stream bytes (write) or bytes to erase
  std::uint32_t verify_length_ = 0;             // bytes read back from start_ (the whole image)
  const image::ExtentList* extents_ = nullptr;  // sparse job; nullptr: one run from start_
  const image::PatchList* patch_ = nullptr;     // patch job
  std::uint8_t patch_page_[memory_map::kPageSize] = {};  // the page a patch piece programs
  std::uint32_t erase_end_ = 0;     // end of what the job may erase (sector-rounded)
  std::uint32_t erased_to_ = 0;     // flash below this offset (from start_) is known erased
  std::uint32_t check_cursor_ = 0;  // blank check progress inside the unit at erased_to_
  std::uint32_t pushed_ = 0;        // payload bytes queued
  std::uint32_t programmed_ = 0;    // payload bytes programmed (page multiple until the tail)
  std::uint32_t verified_ = 0;      // payload bytes read back

  bool in_flight_ = false;
  bool changed_flash_ = false;
  Op op_ = Op::kNone;
  std::uint32_t op_generation_ = 0;
  std::uint32_t op_offset_ = 0;
  std::uint32_t op_position_ = 0;  // stream position of an erase in flight
  std::uint32_t op_length_ = 0;

  canopen::FlashDetail failure_ = canopen::FlashDetail::kNone;
  std::uint32_t verified_crc32_ = 0;
  std::uint8_t verified_sha256_[Sha256Engine::kDigestSize] = {};
  std::uint8_t verified_head_[8] = {};
  Stats stats_;
};

}  // namespace rtcanboot
