// The CiA 302-2 update flow against the core's real Bootloader (flash in RAM) on the in-process
// bus, in virtual time: fresh install, skip when installed, update over a running application,
// wrong product, no node, lost frames, --no-start.
#include <gtest/gtest.h>

#include "rtcanboot/bytes.hpp"
#include "rtcanboot/hash.hpp"
#include "rtcanboot/host/signing.hpp"
#include "rtcanboot/host/update.hpp"
#include "rtcanboot/memory_map.hpp"
#include "sim_nodes.hpp"

namespace rtcanboot::host {
namespace {

namespace mm = memory_map;
using test::SimBoard;

constexpr std::uint32_t kVendor = 0x0000'1234;
constexpr std::uint32_t kProduct = 0x0000'0042;

LoadedInput app_image(std::size_t size, std::uint8_t seed) {
  FlatImage img;
  img.address = mm::kAppAddress;
  img.bytes.resize(size);
  for (std::size_t i = 0; i < size; ++i) img.bytes[i] = static_cast<std::uint8_t>(i * 7 + seed);
  store_le32(img.bytes.data(), 0x2002'0000);                  // initial SP in DTCM
  store_le32(img.bytes.data() + 4, mm::kAppAddress + 0x201);  // reset handler (thumb)
  LoadedInput in;
  in.format = InputFormat::kElf;
  in.image = img;
  return in;
}

class UpdateTest : public ::testing::Test {
 protected:
  UpdateTest() {
    settings.identity = {kVendor, kProduct, 1, 99};
    settings.bootloader_version = 0x00'01'02;
    settings.provisioning.node_id = 7;
    settings.heartbeat_ms = 500;
    board = std::make_unique<SimBoard>(bus, settings);
    master = std::make_unique<Master>(bus);
    options.node = 7;
    events.step = [this](const std::string& s) { steps.push_back(s); };
  }

  bool saw_step(const std::string& part) const {
    for (const auto& s : steps) {
      if (s.find(part) != std::string::npos) return true;
    }
    return false;
  }

  ErrorKind fails_with(const LoadedInput& in, std::string* message = nullptr) {
    try {
      run_update(*master, in, options, events);
    } catch (const Error& e) {
      if (message) *message = e.what();
      return e.kind();
    }
    return ErrorKind::kInternal;
  }

  SimBus bus{1'000'000};
  BootloaderSettings settings;
  std::unique_ptr<SimBoard> board;
  std::unique_ptr<Master> master;
  UpdateOptions options;
  UpdateEvents events;
  std::vector<std::string> steps;
};

TEST_F(UpdateTest, FreshInstallDownloadsVerifiesAndStarts) {
  const auto in = app_image(100'000, 1);
  std::uint64_t last_progress = 0;
  events.progress = [&](std::uint64_t done, std::uint64_t) { last_progress = done; };
  options.compress = false;  // the plain container, byte for byte (compressed: below)
  const UpdateResult r = run_update(*master, in, options, events);
  EXPECT_FALSE(r.skipped);
  EXPECT_TRUE(r.used_block);
  EXPECT_TRUE(r.started);
  EXPECT_FALSE(r.compressed);
  EXPECT_EQ(r.bytes, 100'000U + image::kDefaultHeaderLength);
  EXPECT_EQ(last_progress, r.bytes);
  EXPECT_EQ(r.software_id, crc32(0, in.image->bytes.data(), in.image->bytes.size()));
  EXPECT_TRUE(board->app_running());
  ASSERT_TRUE(r.app_state);
  // The flash holds the payload at the application address.
  EXPECT_TRUE(std::equal(in.image->bytes.begin(), in.image->bytes.end(),
                         board->flash.mem.begin() + mm::kAppOffset));
  // info sees the application.
  const NodeInfo info = read_node_info(*master, 7);
  EXPECT_EQ(*info.vendor_id, kVendor);
  EXPECT_EQ(*info.running_program, canopen::kRunningApplication);
  EXPECT_EQ(*info.software_id, r.software_id);
}

// The node lists the compressed flag in 0x5F02:7: the container goes compressed (liblzma), the
// node decompresses it into its flash and 0x1F56 is the image's CRC; --no-compress sends it as
// it is.
TEST_F(UpdateTest, ImagesGoCompressedToANodeThatTakesThemUnlessTurnedOff) {
  const auto in = app_image(100'000, 3);
  const UpdateResult r = run_update(*master, in, options, events);
  EXPECT_TRUE(r.compressed);
  EXPECT_FALSE(r.sparse);
  EXPECT_LT(r.bytes, 100'000U / 4);
  EXPECT_TRUE(saw_step("compressed: "));
  EXPECT_EQ(r.software_id, crc32(0, in.image->bytes.data(), in.image->bytes.size()));
  EXPECT_TRUE(std::equal(in.image->bytes.begin(), in.image->bytes.end(),
                         board->flash.mem.begin() + mm::kAppOffset));
  EXPECT_TRUE(board->app_running());

  options.compress = false;
  const auto other = app_image(100'000, 4);
  const UpdateResult plain = run_update(*master, other, options, events);
  EXPECT_FALSE(plain.compressed);
  EXPECT_EQ(plain.bytes, 100'000U + image::kDefaultHeaderLength);
  EXPECT_EQ(plain.software_id, crc32(0, other.image->bytes.data(), other.image->bytes.size()));
}

// A small change: the sparse container of the changed sector, compressed.
TEST_F(UpdateTest, ASparseContainerIsCompressedToo) {
  run_update(*master, app_image(60'000, 5), options, events);
  LoadedInput v2 = app_image(60'000, 5);
  v2.image->bytes[7 * 4096 + 100] ^= 0x33;
  const UpdateResult r = run_update(*master, v2, options, events);
  EXPECT_TRUE(r.sparse);
  EXPECT_TRUE(r.compressed);
  EXPECT_EQ(r.sectors_sent, 1U);
  EXPECT_LT(r.bytes, 4096U / 2);
  EXPECT_EQ(r.software_id, crc32(0, v2.image->bytes.data(), v2.image->bytes.size()));
}

TEST_F(UpdateTest, SameImageIsSkippedUnlessForced) {
  const auto in = app_image(5000, 2);
  run_update(*master, in, options, events);
  ASSERT_TRUE(board->app_running());
  const int erases = board->flash.erases;
  steps.clear();
  const UpdateResult again = run_update(*master, in, options, events);
  EXPECT_TRUE(again.skipped);
  EXPECT_TRUE(saw_step("already holds this image"));
  EXPECT_EQ(board->flash.erases, erases);
  options.force = true;
  steps.clear();
  // Forced: the node's sector digests show every sector in place, so nothing is sent but the
  // header, and nothing is erased.
  const UpdateResult forced = run_update(*master, in, options, events);
  EXPECT_FALSE(forced.skipped);
  EXPECT_TRUE(forced.sparse);
  EXPECT_EQ(forced.sectors_sent, 0U);
  EXPECT_EQ(forced.sectors_total, 2U);
  EXPECT_EQ(forced.bytes, image::kDefaultHeaderLength);
  EXPECT_TRUE(saw_step("sending 0 of 2 sectors"));
  EXPECT_FALSE(saw_step("clearing"));
  EXPECT_EQ(board->flash.erases, erases);
  EXPECT_TRUE(board->app_running());
  // --full: the whole image, without a clear on an rtcanboot bootloader.
  options.full = true;
  steps.clear();
  const UpdateResult full = run_update(*master, in, options, events);
  EXPECT_FALSE(full.sparse);
  EXPECT_TRUE(saw_step("no clear"));
  EXPECT_FALSE(saw_step("clearing"));
  EXPECT_GT(board->flash.erases, erases);
  EXPECT_TRUE(board->app_running());
  // --clear: the CiA 302-2 clear first, as before.
  options.clear = UpdateOptions::Clear::kAlways;
  steps.clear();
  EXPECT_FALSE(run_update(*master, in, options, events).sparse);
  EXPECT_TRUE(saw_step("clearing the application region"));
  EXPECT_TRUE(board->app_running());
}

// The node's flash changes between the digests and the download (here: behind its back), so
// the sectors not sent are not the image's: the node refuses to commit (detail 34) and the flow
// sends the whole image instead.
TEST_F(UpdateTest, ASparseImageThatFailsToVerifyIsSentWhole) {
  auto in = app_image(40'000, 2);
  run_update(*master, in, options, events);
  ASSERT_TRUE(board->app_running());
  in.image->bytes[5 * 4096 + 17] ^= 0xFF;
  steps.clear();
  events.step = [this](const std::string& s) {
    steps.push_back(s);
    if (s.find("sending 1 of 10 sectors") != std::string::npos) {
      board->flash.mem[memory_map::kAppOffset + 2 * 4096 + 3] ^= 0x10;  // sector 2, not sent
    }
  };
  const UpdateResult r = run_update(*master, in, options, events);
  EXPECT_TRUE(saw_step("sending 1 of 10 sectors"));
  EXPECT_TRUE(saw_step("sectors not sent do not match"));
  EXPECT_TRUE(saw_step("no clear"));  // the whole image, without a clear on an rtcanboot node
  EXPECT_FALSE(r.sparse);
  EXPECT_TRUE(board->app_running());
  EXPECT_EQ(r.software_id, crc32(0, in.image->bytes.data(), in.image->bytes.size()));
}

TEST_F(UpdateTest, ASmallChangeSendsOnlyTheSectorsItTouched) {
  auto in = app_image(40'000, 2);
  run_update(*master, in, options, events);
  ASSERT_TRUE(board->app_running());
  in.image->bytes[5 * 4096 + 17] ^= 0xFF;
  in.image->bytes[9 * 4096 + 1] ^= 0xFF;
  steps.clear();
  const UpdateResult r = run_update(*master, in, options, events);
  EXPECT_TRUE(r.sparse);
  EXPECT_EQ(r.sectors_sent, 2U);
  EXPECT_EQ(r.sectors_total, 10U);
  EXPECT_TRUE(saw_step("sending 2 of 10 sectors (8 KiB): the rest already matches"));
  EXPECT_LT(r.bytes, 3U * 4096);
  EXPECT_TRUE(board->app_running());
  EXPECT_EQ(r.software_id, crc32(0, in.image->bytes.data(), in.image->bytes.size()));
}

TEST_F(UpdateTest, UpdatesOverARunningApplication) {
  run_update(*master, app_image(3000, 3), options, events);
  ASSERT_TRUE(board->app_running());
  EXPECT_EQ(board->app_starts, 1);
  steps.clear();
  const auto v2 = app_image(9000, 4);
  const UpdateResult r = run_update(*master, v2, options, events);
  EXPECT_TRUE(saw_step("stopping the program"));
  EXPECT_TRUE(r.started);
  EXPECT_EQ(board->app_starts, 2);
  EXPECT_EQ(r.software_id, crc32(0, v2.image->bytes.data(), v2.image->bytes.size()));
}

TEST_F(UpdateTest, NoStartLeavesTheBootloaderRunning) {
  options.start = false;
  const UpdateResult r = run_update(*master, app_image(2000, 5), options, events);
  EXPECT_FALSE(r.started);
  EXPECT_FALSE(board->app_running());
  const NodeInfo info = read_node_info(*master, 7);
  EXPECT_EQ(*info.running_program, canopen::kRunningBootloader);
  EXPECT_EQ(*info.flash_status, 0U);
}

TEST_F(UpdateTest, SegmentedTransferWorksToo) {
  options.allow_block = false;
  const UpdateResult r = run_update(*master, app_image(3000, 6), options, events);
  EXPECT_FALSE(r.used_block);
  EXPECT_TRUE(board->app_running());
}

// Answers for the board where the test needs a frame the board would not send.
struct Responder final : SimNode {
  explicit Responder(SimBus& bus) : sink(bus.attach(*this)) {}
  void on_frame(const CanFrame&, Micros) override {}
  void poll(Micros) override {}
  Micros next_wakeup() const override { return UINT64_MAX; }
  FrameSink& sink;
};

TEST_F(UpdateTest, FallsBackToSegmentedWhenBlockTransferIsRefused) {
  Responder responder(bus);
  int refused = 0;
  bus.set_fault_hook([&](const CanFrame& f, bool from_master) {
    if (from_master && f.id == 0x607 && (f.data[0] & 0xE1) == 0xC0 && f.data[1] == 0x50 &&
        f.data[2] == 0x1F) {
      CanFrame abort = f;
      abort.id = 0x587;
      abort.data[0] = 0x80;
      store_le32(abort.data + 4, static_cast<std::uint32_t>(canopen::Abort::kCommandSpecifier));
      responder.sink.send(abort);
      ++refused;
      return SimBus::Fault::kDrop;
    }
    return SimBus::Fault::kDeliver;
  });
  const auto in = app_image(5000, 13);
  const UpdateResult r = run_update(*master, in, options, events);
  EXPECT_EQ(refused, 1);
  EXPECT_FALSE(r.used_block);
  EXPECT_TRUE(saw_step("falling back to segmented"));
  EXPECT_TRUE(board->app_running());
  bus.detach(responder);
}

TEST_F(UpdateTest, LostEndConfirmationIsResolvedThroughTheFlashStatus) {
  bool dropped = false;
  bus.set_fault_hook([&](const CanFrame& f, bool from_master) {
    if (!from_master && f.id == 0x587 && f.data[0] == 0xA1 && !dropped) {
      dropped = true;
      return SimBus::Fault::kDrop;
    }
    return SimBus::Fault::kDeliver;
  });
  const UpdateResult r = run_update(*master, app_image(5000, 14), options, events);
  EXPECT_TRUE(dropped);
  EXPECT_TRUE(saw_step("checking the node's status"));
  EXPECT_TRUE(r.started);
}

TEST_F(UpdateTest, NodeRestartingDuringTheDownloadGetsTheSequenceAgain) {
  int segments = 0;
  bool reset_done = false;
  bus.set_fault_hook([&](const CanFrame& f, bool from_master) {
    if (from_master && f.id == 0x607 && (f.data[0] & 0x7F) != 0 && (f.data[0] & 0xE0) != 0xC0 &&
        ++segments == 400 && !reset_done) {
      reset_done = true;
      board->boot(bus.clock().now());  // power cut / watchdog: the bootloader starts over
      return SimBus::Fault::kDrop;
    }
    return SimBus::Fault::kDeliver;
  });
  options.compress = false;  // the cut needs 400 segments: the plain container
  const auto in = app_image(20'000, 15);
  const UpdateResult r = run_update(*master, in, options, events);
  EXPECT_TRUE(reset_done);
  EXPECT_TRUE(saw_step("restarted during the download; starting over"));
  EXPECT_TRUE(r.started);
  EXPECT_TRUE(std::equal(in.image->bytes.begin(), in.image->bytes.end(),
                         board->flash.mem.begin() + mm::kAppOffset));
}

TEST_F(UpdateTest, NodeThatVanishesDuringTheDownloadIsATimeout) {
  int segments = 0;
  bus.set_fault_hook([&](const CanFrame& f, bool from_master) {
    if (from_master && f.id == 0x607 && (f.data[0] & 0x7F) != 0 && (f.data[0] & 0xE0) != 0xC0)
      ++segments;
    // After 300 segments nothing reaches the node any more (cable pulled).
    return segments >= 300 && from_master ? SimBus::Fault::kDrop : SimBus::Fault::kDeliver;
  });
  options.compress = false;  // the cut needs 300 segments: the plain container
  std::string message;
  EXPECT_EQ(fails_with(app_image(20'000, 16), &message), ErrorKind::kTimeout);
  EXPECT_NE(message.find("download interrupted after"), std::string::npos) << message;
}

// A node that stalls for 2.5 s part-way (nothing in, nothing out), then answers again: the
// client's timeout interrupted the download, so it is exit code 6 ("download interrupted"), not a
// rejected image, although the node's 0x1F57 then says "aborted part-way" (issue 16, item 4).
TEST_F(UpdateTest, NodeThatStallsPartWayIsAnInterruptedDownload) {
  int segments = 0;
  Micros stall_end = 0;
  bus.set_fault_hook([&](const CanFrame& f, bool from_master) {
    if (from_master && f.id == 0x607 && (f.data[0] & 0x7F) != 0 && (f.data[0] & 0xE0) != 0xC0 &&
        ++segments == 300) {
      stall_end = bus.clock().now() + 2'500'000;
    }
    return bus.clock().now() < stall_end ? SimBus::Fault::kDrop : SimBus::Fault::kDeliver;
  });
  options.compress = false;  // the stall needs 300 segments: the plain container
  std::string message;
  EXPECT_EQ(fails_with(app_image(20'000, 16), &message), ErrorKind::kTimeout) << message;
  EXPECT_NE(message.find("download interrupted after"), std::string::npos) << message;
  EXPECT_GT(bus.clock().now(), stall_end);  // the node answered again before the flow gave up
}

// A lost last segment of a sub-block stalls a block download (CiA 301 has no way to ask for it
// again). Whether the node restarted is decided by its next heartbeat message (a boot-up or not),
// one heartbeat period after the timeout, not by waiting the whole reboot window for a boot-up
// that never comes: every stall on a lossy link cost 5 s before.
TEST_F(UpdateTest, AStallIsToldFromARestartByTheNextHeartbeat) {
  bus.set_fault_hook(test::lose_last_segments(7, 1, 1));
  options.compress = false;  // the stall needs a whole sub-block: the plain container
  const Micros start = bus.clock().now();
  std::string message;
  EXPECT_EQ(fails_with(app_image(20'000, 17), &message), ErrorKind::kTimeout) << message;
  EXPECT_NE(message.find("download interrupted after"), std::string::npos) << message;
  const Micros took = bus.clock().now() - start;
  // The client's 1 s timeout, then at most one heartbeat period (500 ms) and the flow's reads.
  EXPECT_LT(took, 1'000'000 + 2 * static_cast<Micros>(settings.heartbeat_ms) * 1000) << took;
  EXPECT_LT(took, options.reboot_window);
}

// This computer stalls for 1.5 s half-way (a loaded machine): the node's SDO timeout aborts the
// transfer. The flow goes on with what is still missing instead of failing (a soak run on a
// machine with load 11 on 2 cores once failed this way).
TEST_F(UpdateTest, AMasterStallThatTheNodeTimesOutIsResumed) {
  bool stalled = false;
  events.progress = [&](std::uint64_t done, std::uint64_t total) {
    if (!stalled && done > total / 2) {
      stalled = true;
      bus.run_until(bus.clock().now() + 1'500'000);  // the nodes run, this computer does not
    }
  };
  const auto in = app_image(60'000, 17);
  options.compress = false;  // the test pattern would compress to a few hundred bytes
  const UpdateResult r = run_update(*master, in, options, events);
  EXPECT_TRUE(stalled);
  EXPECT_TRUE(saw_step("gave up waiting for this computer part-way"));
  EXPECT_TRUE(r.started);
  EXPECT_TRUE(r.sparse);
  EXPECT_LT(r.sectors_sent, r.sectors_total);  // what was programmed before the stall stays
  EXPECT_TRUE(std::equal(in.image->bytes.begin(), in.image->bytes.end(),
                         board->flash.mem.begin() + mm::kAppOffset));
}

TEST_F(UpdateTest, SurvivesLostFramesDuringTheDownload) {
  int n = 0;
  bus.set_fault_hook([&](const CanFrame& f, bool from_master) {
    // A handful of lost segments (never the last of a sub-block, which only a timeout recovers).
    if (from_master && f.id == 0x607 && (f.data[0] & 0x7F) > 0 && (f.data[0] & 0x7F) < 100) {
      ++n;
      if (n == 30 || n == 300 || n == 301 || n == 1000 || n == 3000) return SimBus::Fault::kDrop;
    }
    return SimBus::Fault::kDeliver;
  });
  const auto in = app_image(40'000, 7);
  const UpdateResult r = run_update(*master, in, options, events);
  EXPECT_TRUE(r.started);
  EXPECT_TRUE(std::equal(in.image->bytes.begin(), in.image->bytes.end(),
                         board->flash.mem.begin() + mm::kAppOffset));
}

TEST_F(UpdateTest, ImageForAnotherProductIsRefusedBeforeAnythingIsSent) {
  options.product_code = 0x99;
  std::string message;
  EXPECT_EQ(fails_with(app_image(2000, 8), &message), ErrorKind::kWrongProduct);
  EXPECT_NE(message.find("--force-product"), std::string::npos);
  EXPECT_EQ(board->flash.erases, 0);
  // Forced, the node itself refuses it and says why through 0x1F57.
  options.force_product = true;
  EXPECT_EQ(fails_with(app_image(2000, 8), &message), ErrorKind::kRejected);
  EXPECT_NE(message.find("vendor"), std::string::npos) << message;
}

TEST_F(UpdateTest, ImageTheNodeRejectsReportsTheDecodedReason) {
  auto in = app_image(1000, 12);
  store_le32(in.image->bytes.data() + 4,
             mm::kAppAddress + 0x8001);  // reset handler beyond the image
  std::string message;
  EXPECT_EQ(fails_with(in, &message), ErrorKind::kRejected);
  EXPECT_NE(message.find("node 7 rejected the image: data format error"), std::string::npos)
      << message;
  EXPECT_FALSE(board->app_running());
}

TEST_F(UpdateTest, PackedContainerForAnotherProductIsRefused) {
  PackOptions p;
  p.vendor_id = kVendor + 1;
  p.product_code = kProduct;
  LoadedInput in;
  in.format = InputFormat::kContainer;
  in.container = parse_container(pack(*app_image(1000, 9).image, p), "x.rcb");
  EXPECT_EQ(fails_with(in), ErrorKind::kWrongProduct);
}

// A node built with a key record (docs/security.md): a container signed by the key is installed;
// an unsigned one is refused with the decoded reason. Without the clear (the default for an
// rtcanboot bootloader, or --no-clear) the
// installed application stays valid and nothing is erased; with the CiA 302-2 clear first, the
// clear has removed it already (the documented rule).
class SignedUpdateTest : public UpdateTest {
 protected:
  SignedUpdateTest() {
    const signing::PublicKey public_key = key.public_key();
    std::copy(public_key.begin(), public_key.end(), key_record.public_key);
    settings.key_record = &key_record;
    board = std::make_unique<SimBoard>(bus, settings);
  }
  LoadedInput container(const LoadedInput& app, bool sign) const {
    PackOptions p;
    p.vendor_id = kVendor;
    p.product_code = kProduct;
    if (sign) p.sign_with = &key;
    LoadedInput in;
    in.format = InputFormat::kContainer;
    in.container = parse_container(pack(*app.image, p), "app.rcb");
    return in;
  }

  signing::PrivateKey key = signing::PrivateKey::generate();
  KeyRecord key_record;
};

TEST_F(SignedUpdateTest, SignedIsInstalledUnsignedIsRefusedAndWithoutClearKeepsTheApplication) {
  const UpdateResult installed =
      run_update(*master, container(app_image(4000, 1), true), options, events);
  ASSERT_TRUE(board->app_running());
  const int erases = board->flash.erases;
  std::string message;
  NodeInfo info;
  // The default skips the clear on an rtcanboot bootloader; --no-clear skips it everywhere.
  for (const auto clear : {UpdateOptions::Clear::kAuto, UpdateOptions::Clear::kNever}) {
    SCOPED_TRACE(clear == UpdateOptions::Clear::kAuto ? "default" : "--no-clear");
    steps.clear();
    options.clear = clear;
    EXPECT_EQ(fails_with(container(app_image(5000, 2), false), &message), ErrorKind::kRejected);
    EXPECT_NE(message.find("not signed"), std::string::npos) << message;
    EXPECT_FALSE(saw_step("clearing"));
    EXPECT_EQ(saw_step("no clear"), clear == UpdateOptions::Clear::kAuto);
    EXPECT_EQ(board->flash.erases, erases);
    info = read_node_info(*master, 7);
    EXPECT_EQ(*info.software_id, installed.software_id);
    EXPECT_EQ(*info.program_state, 0U);  // stopped: a valid program is installed
  }

  options.clear = UpdateOptions::Clear::kAlways;
  EXPECT_EQ(fails_with(container(app_image(5000, 2), false), &message), ErrorKind::kRejected);
  info = read_node_info(*master, 7);
  EXPECT_EQ(*info.software_id, 0U) << "the clear removed the application";
}

TEST_F(UpdateTest, MissingNodeIsReportedAsSuch) {
  options.node = 9;
  std::string message;
  EXPECT_EQ(fails_with(app_image(1000, 10), &message), ErrorKind::kNoNode);
  EXPECT_NE(message.find("node 9 does not answer"), std::string::npos);
  EXPECT_THROW(read_node_info(*master, 9), Error);
}

TEST_F(UpdateTest, ApplicationThatNeverComesUpIsATimeout) {
  board->app_heartbeat = false;
  // Swallow the application's boot-up message.
  bus.set_fault_hook([&](const CanFrame& f, bool from_master) {
    if (!from_master && f.id == 0x707 && board->app_running()) return SimBus::Fault::kDrop;
    return SimBus::Fault::kDeliver;
  });
  options.boot_timeout = 2'000'000;
  std::string message;
  EXPECT_EQ(fails_with(app_image(1000, 11), &message), ErrorKind::kTimeout) << message;
  EXPECT_NE(message.find("no boot-up"), std::string::npos);
}

TEST(FlashStatusText, DecodesStatusAndDetail) {
  EXPECT_EQ(describe_flash_status(0), "OK");
  EXPECT_EQ(describe_flash_status(1), "operation in progress");
  EXPECT_EQ(describe_flash_status(canopen::flash_status_word(
                false, canopen::FlashStatus::kDataFormatError, canopen::FlashDetail::kPayloadCrc)),
            "data format error or CRC error: payload CRC-32 mismatch");
  EXPECT_NE(
      describe_flash_status(canopen::flash_status_word(false, canopen::FlashStatus::kWrongProduct,
                                                       canopen::FlashDetail::kProductMismatch))
          .find("another vendor/product"),
      std::string::npos);
  EXPECT_EQ(describe_flash_status(0x00FF'0000 | (100U << 1)), "status code 100 (detail 255)");
}

}  // namespace
// A signed container sent compressed: the compressed flag is not signed either.
TEST_F(SignedUpdateTest, ASignedImageIsSentCompressedAndAccepted) {
  LoadedInput v1 = app_image(50'000, 1);
  const UpdateResult r = run_update(*master, container(v1, true), options, events);
  EXPECT_TRUE(r.compressed);
  EXPECT_EQ(r.software_id, crc32(0, v1.image->bytes.data(), v1.image->bytes.size()));
  EXPECT_TRUE(board->app_running());
}

// A signed container sent sparse: the extents record changes the header length and sets the
// sparse flag, neither of which is signed, so the keyed node accepts it, reads the whole image back
// against the signed digest and commits it.
TEST_F(SignedUpdateTest, ASignedImageIsSentSparseAndAccepted) {
  LoadedInput v1 = app_image(40'000, 1);
  run_update(*master, container(v1, true), options, events);
  ASSERT_TRUE(board->app_running());
  // Built afresh rather than copied: GCC 12 -O2 warns (maybe-uninitialized, a false alarm)
  // about a copied LoadedInput's optional image.
  LoadedInput v2 = app_image(40'000, 1);
  v2.image->bytes[3 * 4096 + 5] ^= 0x5A;  // one sector changed
  steps.clear();
  const UpdateResult r = run_update(*master, container(v2, true), options, events);
  EXPECT_TRUE(r.sparse);
  EXPECT_EQ(r.sectors_sent, 1U);
  EXPECT_EQ(r.software_id, crc32(0, v2.image->bytes.data(), v2.image->bytes.size()));
  EXPECT_TRUE(board->app_running());
  // The same sectors unsigned: refused at the header, the signed v2 stays installed.
  LoadedInput v3 = app_image(40'000, 1);
  v3.image->bytes[3 * 4096 + 5] ^= 0x5A;
  v3.image->bytes[3 * 4096 + 6] ^= 0x5A;
  std::string message;
  EXPECT_EQ(fails_with(container(v3, false), &message), ErrorKind::kRejected);
  EXPECT_NE(message.find("not signed"), std::string::npos) << message;
  EXPECT_EQ(*read_node_info(*master, 7).software_id, r.software_id);
}

}  // namespace rtcanboot::host
