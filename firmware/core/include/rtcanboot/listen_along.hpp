// The bootloader's side of the listen-along download (0x5F04, docs/fleet-update.md): follows
// the lead's program download from the bus (SdoFollower) and writes it through this node's own
// ProgramDownload, with its own header checks, journal and COMMIT. Bytes it missed are written
// as 0xFF (erased flash stays as it is) so that everything after them lands in its place; such
// a download is programmed but not committed, and the master repairs it with a sparse update.
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

  ProgramDownload& download_;
  SdoFollower follower_{*this};
  std::uint32_t request_id_ = 0;
  std::uint32_t response_id_ = 0;
  std::uint32_t expected_crc_ = 0;
  std::uint32_t gap_bytes_ = 0;
  canopen::ListenAlongState state_ = canopen::ListenAlongState::kOff;
};

}  // namespace rtcanboot
