// SdoFollower on arbitrary frames of the lead's SDO channel (and others): every input is a
// sequence of 9-byte records, [kind][8 data bytes]; kind & 3 = 0 client request (0x605),
// 1 lead response (0x585), 2 another node's request (0x606), 3 a receive overrun (no frame);
// kind bit 2 makes the frame 7 bytes long (not an SDO frame). The seeds are real transfers.
// Invariants: the sink hears of data only between follow_begin and the transfer's end, cancel or
// loss; every delivery is 1..7 bytes; the follower's counters match what the sink got; follow_end
// comes at most once per transfer.
#include <cstddef>
#include <cstdint>

#include "fuzz_check.hpp"
#include "rtcanboot/sdo_follower.hpp"

namespace {

using rtcanboot::CanFrame;
using rtcanboot::FollowSink;
using rtcanboot::SdoFollower;

class CheckingSink final : public FollowSink {
 public:
  void follow_begin(bool, std::uint32_t) override {
    open = true;
    ended = false;
    delivered = 0;
    gaps = 0;
  }
  void follow_write(const std::uint8_t* data, std::uint32_t length) override {
    FUZZ_CHECK(open && data != nullptr);
    FUZZ_CHECK(length >= 1 && length <= SdoFollower::kSegmentBytes);
    delivered += length;
  }
  void follow_gap(std::uint32_t length) override {
    FUZZ_CHECK(open);
    FUZZ_CHECK(length >= 1 && length <= SdoFollower::kSegmentBytes);
    gaps += length;
  }
  void follow_end(bool complete) override {
    FUZZ_CHECK(open && !ended);
    if (complete) FUZZ_CHECK(gaps == 0);
    ended = true;
    open = false;
  }
  void follow_cancel() override { open = false; }
  void follow_lost() override { open = false; }

  bool open = false;
  bool ended = false;
  std::uint64_t delivered = 0;
  std::uint64_t gaps = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  CheckingSink sink;
  SdoFollower follower(sink);
  follower.follow({0x605, 0x585, 0x1F50, 1});
  for (std::size_t at = 0; at + 9 <= size; at += 9) {
    const std::uint8_t kind = data[at];
    if ((kind & 3) == 3) {
      follower.on_receive_overrun();
      continue;
    }
    CanFrame frame;
    frame.id = (kind & 3) == 0 ? 0x605U : (kind & 3) == 1 ? 0x585U : 0x606U;
    frame.dlc = (kind & 4) != 0 ? 7 : 8;
    for (int i = 0; i < 8; ++i) frame.data[i] = data[at + 1 + static_cast<std::size_t>(i)];
    follower.on_frame(frame);
    if (sink.open || sink.ended) {
      FUZZ_CHECK(follower.delivered_bytes() == sink.delivered);
      FUZZ_CHECK(follower.gap_bytes() == sink.gaps);
    }
  }
  return 0;
}
