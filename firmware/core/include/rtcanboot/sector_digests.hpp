// The sector digests of object 0x5F02 (docs/canopen.md): the CRC-32 of each 4 KiB sector of the
// application region, for the first N sectors a master asks for. A master compares them with the
// image it is about to send and sends a sparse container of the sectors that differ
// (docs/image-format.md).
//
// Computed on request, one sector per poll(): the SDO write that asks is answered at once, the
// master polls the state until it reads "ready", then uploads the digests. A poll reads 4 KiB and
// runs one CRC-32 over it, so the node's SDO answers are never held up by more than that.
#pragma once

#include <cstdint>

#include "rtcanboot/canopen_defs.hpp"
#include "rtcanboot/flash_port.hpp"
#include "rtcanboot/image_format.hpp"
#include "rtcanboot/memory_map.hpp"

namespace rtcanboot {

class SectorDigests {
 public:
  static constexpr std::uint32_t kMaxSectors = memory_map::kAppSize / image::kSectorSize;
  static constexpr std::uint32_t kDigestSize = 4;  // CRC-32, little-endian
  static_assert(memory_map::kAppSize % image::kSectorSize == 0);
  static_assert(memory_map::kAppOffset % image::kSectorSize == 0);

  // 0x5F02:2.
  enum class State : std::uint8_t {
    kIdle = 0,       // nothing asked for, or the flash changed since (a download or a clear)
    kComputing = 1,  // digests() grows by one sector per poll
    kReady = 2,      // digests() holds all requested sectors
  };

  SectorDigests(FlashPort& flash, std::uint32_t region_offset)
      : flash_(flash), region_offset_(region_offset) {}

  // 0x5F02:1 written: computes the first `sectors` sectors anew (0 forgets them).
  canopen::Abort request(std::uint32_t sectors);
  // The application region is about to change: digests computed so far no longer hold.
  void invalidate();
  // One sector; only call while no flash operation is in flight.
  void poll();
  bool needs_poll() const { return state_ == State::kComputing; }

  State state() const { return state_; }
  std::uint32_t requested() const { return requested_; }
  // The digests of sectors 0 .. done - 1, kDigestSize bytes each.
  const std::uint8_t* digests() const { return digests_; }
  std::uint32_t digest_bytes() const { return done_ * kDigestSize; }

 private:
  FlashPort& flash_;
  std::uint32_t region_offset_;
  State state_ = State::kIdle;
  std::uint32_t requested_ = 0;
  std::uint32_t done_ = 0;
  std::uint8_t digests_[kMaxSectors * kDigestSize] = {};
};

}  // namespace rtcanboot
