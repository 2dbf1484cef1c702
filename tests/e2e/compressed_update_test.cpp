// End to end: compressed containers (issue 12 item 4) with the real bootloader on a twin board.
// The example application is installed (plain); a hostile compressed stream (liblzma with a
// preset dictionary: its first match reaches before the stream's start) is refused with abort
// 0x0800_0020 and 0x1F57 detail 35 and the stored image stays intact and valid; then the host
// tool's flow sends the example application compressed (the node lists the flag in 0x5F02:7),
// and it starts and runs.
#include <lzma.h>

#include <algorithm>
#include <cstdio>

#include "e2e_rig.hpp"
#include "rtcanboot/bytes.hpp"
#include "rtcanboot/hash.hpp"
#include "rtcanboot/lzma_stream.hpp"

namespace rtcanboot::e2e {
namespace {

constexpr std::uint8_t kNode = 9;

// A raw LZMA1 stream of `data` with the format's options but a preset dictionary `preset`.
std::vector<std::uint8_t> stream_with_preset(const std::vector<std::uint8_t>& data,
                                             const std::vector<std::uint8_t>& preset) {
  lzma_options_lzma options;
  EXPECT_FALSE(lzma_lzma_preset(&options, 9));
  options.lc = lzma::kLc;
  options.lp = lzma::kLp;
  options.pb = lzma::kPb;
  options.dict_size = lzma::kWindowSize;
  options.preset_dict = preset.data();
  options.preset_dict_size = static_cast<std::uint32_t>(preset.size());
  const lzma_filter filters[] = {{LZMA_FILTER_LZMA1, &options}, {LZMA_VLI_UNKNOWN, nullptr}};
  lzma_stream stream = LZMA_STREAM_INIT;
  EXPECT_EQ(lzma_raw_encoder(&stream, filters), LZMA_OK);
  std::vector<std::uint8_t> out(data.size() * 2 + 1024);
  stream.next_in = data.data();
  stream.avail_in = data.size();
  stream.next_out = out.data();
  stream.avail_out = out.size();
  EXPECT_EQ(lzma_code(&stream, LZMA_FINISH), LZMA_STREAM_END);
  out.resize(static_cast<std::size_t>(stream.total_out));
  lzma_end(&stream);
  return out;
}

TEST(E2eCompressed, AHostileStreamIsRefusedWithTheImageIntactThenTheCompressedImageRuns) {
  E2E_REQUIRE_FIRMWARE(2);
  Rig rig(1'000'000);
  tw::Board& board = rig.add_board(node(kNode));
  ASSERT_TRUE(rig.wait_boot_up(kNode, 0, 500'000).has_value()) << board.console();
  const auto bootloader_before = bootloader_region(board);
  host::Master& m = rig.master();
  EXPECT_EQ(m.upload_u32(kNode, co::od::kSectorDigests, 7),
            image::kFlagSparse | image::kFlagCompressed | image::kFlagPatch);

  const host::LoadedInput app = example_app();
  ASSERT_TRUE(app.image.has_value());
  const std::vector<std::uint8_t>& image_bytes = app.image->bytes;
  const std::uint32_t app_crc = crc32(0, image_bytes.data(), image_bytes.size());
  host::PackOptions pack;
  pack.vendor_id = m.upload_u32(kNode, co::od::kIdentity, 1);
  pack.product_code = m.upload_u32(kNode, co::od::kIdentity, 2);
  const std::vector<std::uint8_t> plain = host::pack(*app.image, pack);
  m.download(kNode, co::od::kProgramData, 1, plain);
  for (int i = 0; i < 200 && (m.upload_u32(kNode, co::od::kFlashStatus, 1) & 1U) != 0; ++i) {
    rig.listen_for(10'000);
  }
  ASSERT_EQ(m.upload_u32(kNode, co::od::kFlashStatus, 1), 0U);
  ASSERT_EQ(m.upload_u32(kNode, co::od::kSoftwareId, 1), app_crc);
  const auto& contents = board.flash().contents();
  const std::vector<std::uint8_t> stored(contents.begin(), contents.end());

  // The header of the compressed container, then a stream whose first match refers to the
  // image's own first 4 KiB as if they came before it.
  const auto compressed = host::compress_container(plain);
  ASSERT_TRUE(compressed.has_value());
  std::vector<std::uint8_t> hostile(compressed->begin(),
                                    compressed->begin() + image::kDefaultHeaderLength);
  const std::vector<std::uint8_t> preset(image_bytes.begin(), image_bytes.begin() + 4096);
  const std::vector<std::uint8_t> stream = stream_with_preset(image_bytes, preset);
  hostile.insert(hostile.end(), stream.begin(), stream.end());
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
  // Refused before its REVOKE: the stored image is untouched and still the valid program.
  EXPECT_EQ(m.upload_u32(kNode, co::od::kSoftwareId, 1), app_crc);
  const auto& after = board.flash().contents();
  EXPECT_TRUE(std::equal(stored.begin(), stored.end(), after.begin(), after.end()));

  // The flow: compressed by default, installed, started.
  std::vector<std::string> steps;
  host::UpdateEvents events;
  events.step = [&](const std::string& s) { steps.push_back(s); };
  host::UpdateOptions options;
  options.node = kNode;
  options.full = true;  // the whole image, not only the sectors that differ (none do)
  options.force = true;
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
