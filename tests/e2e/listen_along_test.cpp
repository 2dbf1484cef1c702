// End to end: the listen-along download (issue 14, docs/fleet-update.md) with the real bootloader
// on three twin boards on one 1 Mbit/s bus. The host tool's update flow downloads to the lead
// (node 5) while nodes 6 and 7 follow it from the bus; node 7's controller misses three of the
// client's frames. Node 6 commits the image on its own without sending a frame during the stream;
// node 7 ends with gaps, and the usual update flow repairs it with a sparse container of the
// sectors it missed. Every node then runs the application.
#include <algorithm>
#include <cstdio>
#include <string>

#include "e2e_rig.hpp"
#include "rtcanboot/hash.hpp"

namespace rtcanboot::e2e {
namespace {

constexpr std::uint8_t kLead = 5;

std::uint32_t wait_flash_idle(Rig& rig, std::uint8_t node) {
  for (int i = 0; i < 400; ++i) {
    const std::uint32_t status = rig.master().upload_u32(node, co::od::kFlashStatus, 1);
    if ((status & 1U) == 0) return status;
    rig.listen_for(10'000);
  }
  return ~0U;
}

TEST(E2eListenAlong, FollowersWriteTheLeadsImageAndOneWithLostFramesIsRepaired) {
  E2E_REQUIRE_FIRMWARE(2);
  Rig rig(1'000'000);
  for (const std::uint8_t id : {kLead, std::uint8_t{6}, std::uint8_t{7}}) {
    tw::Board& board = rig.add_board(node(id));
    ASSERT_TRUE(rig.wait_boot_up(id, 0, 500'000).has_value()) << board.console();
  }
  const host::LoadedInput app = padded_example_app(24);
  const std::uint32_t crc = crc32(0, app.image->bytes.data(), app.image->bytes.size());

  host::Master& m = rig.master();
  for (const std::uint8_t follower : {6, 7}) {
    m.download_u32(follower, co::od::kListenAlong, 1, co::kSdoRxBase + kLead);
    m.download_u32(follower, co::od::kListenAlong, 2, co::kSdoTxBase + kLead);
    m.download_u32(follower, co::od::kListenAlong, 3, crc);
    m.download_u8(follower, co::od::kListenAlong, 4, 1);
    EXPECT_EQ(m.upload_u8(follower, co::od::kListenAlong, 4),
              static_cast<std::uint8_t>(co::ListenAlongState::kWaiting));
  }
  // Node 7's controller misses three of the client's block segments, spread over the stream.
  tc::FaultRule lossy;
  lossy.action = tc::FaultRule::Action::kDrop;
  lossy.rate = 0.002;
  lossy.id = co::kSdoRxBase + kLead;
  lossy.id_mask = 0x7FF;
  lossy.limit = 3;
  lossy.receiver = "node7/FLEXCAN2";
  rig.bus().add_fault(lossy);

  host::UpdateOptions options;
  options.node = kLead;
  options.full = true;
  options.compress = false;  // a gap in a compressed stream loses the rest (fleet-update.md)
  const Micros t0 = rig.now();
  const host::UpdateResult lead = host::run_update(m, app, options);
  EXPECT_EQ(lead.software_id, crc);
  EXPECT_TRUE(rig.application_runs(kLead, t0));
  std::printf("[ figures  ] lead: %llu bytes in %.3f s\n",
              static_cast<unsigned long long>(lead.bytes),
              static_cast<double>(lead.download_time) / 1e6);

  // The followers sent nothing between the lead's answers to the block initiate and to its end
  // (the master's log holds what it receives: the nodes' frames).
  const auto& log = rig.log();
  const auto first = std::find_if(log.begin(), log.end(), [&](const LoggedFrame& f) {
    return f.at >= t0 && f.frame.id == co::kSdoTxBase + kLead && (f.frame.data[0] & 0xFB) == 0xA0;
  });
  const auto last = std::find_if(first, log.end(), [&](const LoggedFrame& f) {
    return f.frame.id == co::kSdoTxBase + kLead && f.frame.data[0] == 0xA1;
  });
  ASSERT_NE(first, log.end());
  ASSERT_NE(last, log.end());
  for (auto it = first; it != last; ++it) {
    const std::uint32_t from = it->frame.id & 0x7F;
    const bool to_a_follower =
        it->frame.id == co::kSdoRxBase + 6 || it->frame.id == co::kSdoRxBase + 7;
    EXPECT_TRUE((from != 6 && from != 7) || to_a_follower)
        << "a follower sent 0x" << std::hex << it->frame.id << " during the stream";
  }
  EXPECT_EQ(lossy.fired, 0U);  // (the bus holds its own copy of the rule)

  // Node 6 got everything: its own checks and COMMIT.
  EXPECT_EQ(wait_flash_idle(rig, 6), 0U);
  EXPECT_EQ(m.upload_u8(6, co::od::kListenAlong, 4),
            static_cast<std::uint8_t>(co::ListenAlongState::kComplete));
  EXPECT_EQ(m.upload_u32(6, co::od::kSoftwareId, 1), crc);

  // Node 7 missed three segments: programmed, not committed, repaired by sectors.
  EXPECT_EQ(wait_flash_idle(rig, 7), co::flash_status_word(false, co::FlashStatus::kDataFormatError,
                                                           co::FlashDetail::kIncompleteStream));
  EXPECT_EQ(m.upload_u8(7, co::od::kListenAlong, 4),
            static_cast<std::uint8_t>(co::ListenAlongState::kGaps));
  EXPECT_EQ(m.upload_u32(7, co::od::kListenAlong, 5), 21U);
  options.node = 7;
  options.full = false;
  Micros t = rig.now();
  const host::UpdateResult repair = host::run_update(m, app, options);
  EXPECT_TRUE(repair.sparse);
  EXPECT_GE(repair.sectors_sent, 1U);
  EXPECT_LE(repair.sectors_sent, 3U);
  EXPECT_EQ(repair.software_id, crc);
  EXPECT_TRUE(rig.application_runs(7, t));
  std::printf("[ figures  ] node 7 repaired: %u of %u sectors sent, %llu bytes in %.3f s\n",
              repair.sectors_sent, repair.sectors_total,
              static_cast<unsigned long long>(repair.bytes),
              static_cast<double>(repair.download_time) / 1e6);

  // Node 6 starts the image it committed by itself.
  t = rig.now();
  m.download_u8(6, co::od::kProgramControl, 1, 1);
  EXPECT_TRUE(rig.application_runs(6, t));
  EXPECT_TRUE(rig.bus_faults().empty());
}

}  // namespace
}  // namespace rtcanboot::e2e
