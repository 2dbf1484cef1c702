// End to end: sector-diff updates (issue 12 item 3) with the real bootloader on a twin board and
// the host tool's update flow. The same image again sends nothing but a header, a small change
// sends the one sector it touched, and a download cut at half-way is finished by the next update,
// which sends only what is still missing; each time the application starts and runs.
#include <algorithm>
#include <cstdio>
#include <string>

#include "e2e_rig.hpp"
#include "rtcanboot/hash.hpp"

namespace rtcanboot::e2e {
namespace {

constexpr std::uint8_t kNode = 6;

// A transfer the test stops on purpose (the master goes silent, as when its cable is pulled).
struct CutHere {};

std::uint32_t image_crc(const std::vector<std::uint8_t>& bytes) {
  return crc32(0, bytes.data(), bytes.size());
}

host::LoadedInput input_of(const std::vector<std::uint8_t>& bytes) {
  host::LoadedInput input;
  input.format = host::InputFormat::kBinary;
  input.image = host::FlatImage{memory_map::kAppAddress, bytes};
  return input;
}

TEST(E2eSparse, SameImageSmallChangeAndResumeAfterACut) {
  E2E_REQUIRE_FIRMWARE(2);
  Rig rig(500'000);
  tw::Board& board = rig.add_board(node(kNode));
  ASSERT_TRUE(rig.wait_boot_up(kNode, 0, 500'000).has_value()) << board.console();
  const auto bootloader_before = bootloader_region(board);

  const host::LoadedInput elf = example_app();
  ASSERT_TRUE(elf.image.has_value());
  // Filler after the application's own bytes (never executed) makes the image 40 sectors, so
  // what is sent shows.
  std::vector<std::uint8_t> app_bytes = elf.image->bytes;
  const std::size_t code_end = app_bytes.size();
  app_bytes.resize(40 * image::kSectorSize - 300);
  for (std::size_t i = code_end; i < app_bytes.size(); ++i) {
    app_bytes[i] = static_cast<std::uint8_t>(i * 131 + (i >> 9));
  }
  const host::LoadedInput app = input_of(app_bytes);
  const auto sectors = image::sector_count(static_cast<std::uint32_t>(app_bytes.size()));

  std::vector<std::string> steps;
  host::UpdateEvents events;
  events.step = [&](const std::string& s) { steps.push_back(s); };
  auto saw = [&](const std::string& part) {
    return std::any_of(steps.begin(), steps.end(),
                       [&](const std::string& s) { return s.find(part) != std::string::npos; });
  };
  auto flash = [&](const host::LoadedInput& input, bool force, bool full) {
    steps.clear();
    host::UpdateOptions options;
    options.node = kNode;
    options.force = force;
    options.full = full;
    return host::run_update(rig.master(), input, options, events);
  };

  // 1. The empty board: no sector matches, the whole image after a clear.
  Micros t = rig.now();
  host::UpdateResult r = flash(app, false, false);
  EXPECT_FALSE(r.sparse);
  EXPECT_TRUE(saw("no sector of the 40 on node 6 matches: sending the whole image"));
  EXPECT_TRUE(rig.application_runs(kNode, t));
  EXPECT_EQ(r.software_id, image_crc(app_bytes));
  std::printf("[ figures  ] whole image: %llu bytes in %.2f s\n",
              static_cast<unsigned long long>(r.bytes), static_cast<double>(r.download_time) / 1e6);

  // 2. The same image again (--force: past the 0x1F56 shortcut): only the header goes out.
  t = rig.now();
  r = flash(app, true, false);
  EXPECT_TRUE(r.sparse);
  EXPECT_EQ(r.sectors_sent, 0U);
  EXPECT_EQ(r.sectors_total, sectors);
  EXPECT_EQ(r.bytes, image::kDefaultHeaderLength);
  EXPECT_TRUE(saw("sending 0 of 40 sectors: the node already holds this image"));
  EXPECT_FALSE(saw("clearing"));
  EXPECT_TRUE(rig.application_runs(kNode, t));
  EXPECT_EQ(r.software_id, image_crc(app_bytes));
  std::printf("[ figures  ] same image again: %llu bytes in %.3f s\n",
              static_cast<unsigned long long>(r.bytes), static_cast<double>(r.download_time) / 1e6);

  // 3. A few bytes changed (a console string of the application): one sector.
  std::vector<std::uint8_t> bytes = app_bytes;
  const std::string text = "example application, node";
  const auto found = std::search(bytes.begin(), bytes.end(), text.begin(), text.end());
  ASSERT_NE(found, bytes.end());
  std::transform(found, found + 7, found, [](std::uint8_t c) {
    return static_cast<std::uint8_t>(c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c);
  });
  const host::LoadedInput changed = input_of(bytes);
  t = rig.now();
  r = flash(changed, false, false);
  EXPECT_TRUE(r.sparse);
  EXPECT_EQ(r.sectors_sent, 1U);
  EXPECT_LE(r.bytes, image::kDefaultHeaderLength + image::kSectorSize);
  EXPECT_TRUE(saw("sending 1 of 40 sectors (4 KiB): the rest already matches"));
  EXPECT_TRUE(rig.application_runs(kNode, t));
  EXPECT_EQ(r.software_id, image_crc(bytes));
  EXPECT_NE(board.console().find("EXAMPLE application, node"), std::string::npos);
  std::printf("[ figures  ] one sector changed: %llu bytes in %.3f s\n",
              static_cast<unsigned long long>(r.bytes), static_cast<double>(r.download_time) / 1e6);

  // 4. A new image whose filler differs everywhere, sent whole (--full), cut at half-way: the
  // master goes silent, the node times the transfer out, nothing is committed.
  std::vector<std::uint8_t> next_bytes = bytes;
  for (std::size_t i = code_end; i < next_bytes.size(); ++i) next_bytes[i] ^= 0x3C;
  const host::LoadedInput next = input_of(next_bytes);
  host::UpdateEvents cutting = events;
  cutting.progress = [](std::uint64_t done, std::uint64_t total) {
    if (done * 2 >= total) throw CutHere{};
  };
  {
    host::UpdateOptions options;
    options.node = kNode;
    options.full = true;
    // Plain, so that half the bytes on the bus is half the image (compressed, half the stream
    // is much less: the code sectors compress less than the filler).
    options.compress = false;
    EXPECT_THROW(host::run_update(rig.master(), next, options, cutting), CutHere);
  }
  rig.listen_for(2'000'000);
  EXPECT_EQ(rig.master().upload_u8(kNode, co::od::kSectorDigests, 4),
            static_cast<std::uint8_t>(co::InstallState::kRevoked));
  EXPECT_EQ(rig.master().upload_u32(kNode, co::od::kSoftwareId, 1), 0U);

  // The next update sends only what is still missing, and the image commits and runs.
  t = rig.now();
  r = flash(next, false, false);
  EXPECT_TRUE(r.sparse);
  EXPECT_GT(r.sectors_sent, 0U);
  EXPECT_LE(r.sectors_sent, sectors / 2 + 2) << "about half the image was in place already";
  EXPECT_TRUE(saw("the rest already matches"));
  EXPECT_TRUE(rig.application_runs(kNode, t));
  EXPECT_EQ(r.software_id, image_crc(next_bytes));
  std::printf("[ figures  ] resume after a cut at 50%%: %u of %u sectors, %llu bytes in %.2f s\n",
              r.sectors_sent, sectors, static_cast<unsigned long long>(r.bytes),
              static_cast<double>(r.download_time) / 1e6);

  EXPECT_EQ(bootloader_region(board), bootloader_before);
  EXPECT_EQ(board.fault_count(), 0u) << faults_of(board);
  EXPECT_TRUE(rig.bus_faults().empty()) << rig.bus_faults().front();
}

}  // namespace
}  // namespace rtcanboot::e2e
