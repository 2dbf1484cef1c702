// End to end: compressed containers (issue 12 item 4) with the real bootloader on a twin board.
// A hostile compressed stream (a match before its sector's start) is refused with abort
// 0x0800_0020 and 0x1F57 detail 35, then the host tool's flow sends the example application
// compressed (the node lists the flag in 0x5F02:7) and it starts and runs.
#include <algorithm>
#include <cstdio>

#include "e2e_rig.hpp"
#include "rtcanboot/bytes.hpp"
#include "rtcanboot/hash.hpp"
#include "rtcanboot/lz4_chunks.hpp"

namespace rtcanboot::e2e {
namespace {

constexpr std::uint8_t kNode = 9;

TEST(E2eCompressed, AHostileStreamIsRefusedThenTheCompressedImageInstallsAndRuns) {
  E2E_REQUIRE_FIRMWARE(2);
  Rig rig(1'000'000);
  tw::Board& board = rig.add_board(node(kNode));
  ASSERT_TRUE(rig.wait_boot_up(kNode, 0, 500'000).has_value()) << board.console();
  const auto bootloader_before = bootloader_region(board);
  host::Master& m = rig.master();
  EXPECT_EQ(m.upload_u32(kNode, co::od::kSectorDigests, 7),
            image::kFlagSparse | image::kFlagCompressed);

  const host::LoadedInput app = example_app();
  ASSERT_TRUE(app.image.has_value());
  host::PackOptions pack;
  pack.vendor_id = m.upload_u32(kNode, co::od::kIdentity, 1);
  pack.product_code = m.upload_u32(kNode, co::od::kIdentity, 2);
  const auto compressed = host::compress_container(host::pack(*app.image, pack));
  ASSERT_TRUE(compressed.has_value());

  // The first LZ4 chunk's first match points 4000 bytes back, before its sector's start.
  std::vector<std::uint8_t> hostile = *compressed;
  std::size_t at = image::kDefaultHeaderLength;
  std::size_t offset_at = 0;
  while (at + 2 < hostile.size() && offset_at == 0) {
    const std::uint16_t head = load_le16(hostile.data() + at);
    if ((head & lz4::kStoredBit) == 0 && (hostile[at + 2] >> 4) < 15) {
      offset_at = at + 3 + (hostile[at + 2] >> 4);
    }
    at += 2 + (head & 0x7FFF);
  }
  ASSERT_NE(offset_at, 0U);
  store_le16(hostile.data() + offset_at, 4000);
  std::uint32_t abort_code = 0;
  try {
    m.download(kNode, co::od::kProgramData, 1, hostile);
  } catch (const host::SdoError& e) {
    abort_code = e.abort_code();
  }
  EXPECT_EQ(abort_code, 0x0800'0020U);
  EXPECT_EQ(m.upload_u32(kNode, co::od::kFlashStatus, 1),
            co::flash_status_word(false, co::FlashStatus::kDataFormatError,
                                  co::FlashDetail::kBadCompressedStream));

  // The flow: compressed by default, installed, started.
  std::vector<std::string> steps;
  host::UpdateEvents events;
  events.step = [&](const std::string& s) { steps.push_back(s); };
  host::UpdateOptions options;
  options.node = kNode;
  const Micros t = rig.now();
  const host::UpdateResult r = host::run_update(m, app, options, events);
  EXPECT_TRUE(r.compressed);
  EXPECT_LT(r.bytes, app.image->bytes.size() + image::kDefaultHeaderLength);
  EXPECT_EQ(r.software_id, crc32(0, app.image->bytes.data(), app.image->bytes.size()));
  EXPECT_TRUE(rig.application_runs(kNode, t));
  EXPECT_EQ(bootloader_region(board), bootloader_before);
  std::printf("[ figures  ] example application: %zu bytes plain, %llu sent compressed\n",
              app.image->bytes.size() + image::kDefaultHeaderLength,
              static_cast<unsigned long long>(r.bytes));
}

}  // namespace
}  // namespace rtcanboot::e2e
