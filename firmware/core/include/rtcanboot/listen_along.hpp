// The bootloader's side of the listen-along download (0x5F04, docs/fleet-update.md): follows
// the lead's program download from the bus (SdoFollower) and writes it through this node's own
// ProgramDownload, with its own header checks, journal and COMMIT. Bytes it missed are written
// as 0xFF (erased flash stays as it is) so that everything after them lands in its place; such
// a download is programmed but not committed. The node lists where the gaps are (0x5F04:6), and
// the master repairs them with a patch container of exactly those bytes (no erase), or with a
// sparse update of the sectors that differ.
#pragma once

#include <cstdint>

#include "rtcanboot/canopen_defs.hpp"
#include "rtcanboot/node_config.hpp"
#include "rtcanboot/program_download.hpp"
#include "rtcanboot/sdo_follower.hpp"
#include "rtcanboot/types.hpp"

namespace rtcanboot {

class ListenAlong final : public ListenAlongAccess, private FollowSink {
 public:
  // Gap runs listed in 0x5F04:6; a download with more lists none (the master repairs sectors).
  static constexpr std::uint32_t kMaxGapRuns = 64;

  explicit ListenAlong(ProgramDownload& download) : download_(download) {}

  // Every received frame (only the lead's SDO channel is looked at).
  void on_frame(const CanFrame& frame) {
    if (state_ != canopen::ListenAlongState::kOff) follower_.on_frame(frame);
  }
  void on_receive_overrun() { follower_.on_receive_overrun(); }
  // The lead's download is being written: the node sends nothing meanwhile.
  bool streaming() const { return state_ == canopen::ListenAlongState::kFollowing; }

  // ListenAlongAccess (0x5F04)
  std::uint32_t listen_setting(std::uint8_t sub) const override;
  canopen::Abort set_listen_setting(std::uint8_t sub, std::uint32_t value) override;
  canopen::Abort listen_command(std::uint8_t command) override;
  canopen::ListenAlongState listen_state() const override { return state_; }
  std::uint32_t listen_gap_bytes() const override { return gap_bytes_; }
  const std::uint8_t* listen_gap_list(std::uint32_t* size) const override {
    *size = gap_runs_ <= kMaxGapRuns ? gap_runs_ * 8 : 0;
    return gap_list_;
  }

 private:
  // FollowSink
  void follow_begin(bool size_known, std::uint32_t size) override;
  void follow_write(const std::uint8_t* data, std::uint32_t length) override;
  void follow_gap(std::uint32_t length) override;
  void follow_end(bool complete) override;
  void follow_cancel() override;
  void follow_lost() override;

  void write(const std::uint8_t* data, std::uint32_t length);
  void give_up(canopen::ListenAlongState why);
  void forget_gaps();
  void list_gap(std::uint32_t length);

  ProgramDownload& download_;
  SdoFollower follower_{*this};
  std::uint32_t request_id_ = 0;
  std::uint32_t response_id_ = 0;
  std::uint32_t expected_crc_ = 0;
  std::uint32_t gap_bytes_ = 0;
  std::uint32_t position_ = 0;  // container bytes written or skipped as gaps so far
  std::uint32_t gap_runs_ = 0;  // runs seen (more than kMaxGapRuns: the list is not kept)
  std::uint8_t gap_list_[kMaxGapRuns * 8] = {};
  canopen::ListenAlongState state_ = canopen::ListenAlongState::kOff;
};

}  // namespace rtcanboot
