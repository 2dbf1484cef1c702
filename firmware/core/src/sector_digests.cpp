#include "rtcanboot/sector_digests.hpp"

#include "rtcanboot/bytes.hpp"
#include "rtcanboot/hash.hpp"

namespace rtcanboot {

canopen::Abort SectorDigests::request(std::uint32_t sectors) {
  if (sectors > kMaxSectors) return canopen::Abort::kValueRange;
  requested_ = sectors;
  done_ = 0;
  state_ = sectors == 0 ? State::kIdle : State::kComputing;
  return canopen::Abort::kNone;
}

void SectorDigests::invalidate() {
  if (state_ == State::kIdle && done_ == 0) return;
  state_ = State::kIdle;
  done_ = 0;
}

void SectorDigests::poll() {
  if (state_ != State::kComputing) return;
  const std::uint32_t sector_offset = region_offset_ + done_ * image::kSectorSize;
  std::uint8_t chunk[memory_map::kPageSize];
  std::uint32_t crc = 0;
  for (std::uint32_t at = 0; at < image::kSectorSize; at += sizeof chunk) {
    if (flash_.read(sector_offset + at, chunk, sizeof chunk) != FlashResult::kOk) {
      invalidate();  // the master reads state 0 and sends a full image
      return;
    }
    crc = crc32(crc, chunk, sizeof chunk);
  }
  store_le32(digests_ + done_ * kDigestSize, crc);
  ++done_;
  if (done_ == requested_) state_ = State::kReady;
}

}  // namespace rtcanboot
