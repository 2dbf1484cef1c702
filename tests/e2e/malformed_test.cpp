// End to end: malformed containers sent through the real bootloader. Each is rejected with the
// documented SDO abort and 0x1F57 code/detail (docs/image-format.md); header faults are caught
// before anything is erased, so the installed application stays valid; the bootloader region is
// byte-identical before and after.
#include <cstring>

#include "e2e_rig.hpp"
#include "rtcanboot/image_format.hpp"

namespace rtcanboot::e2e {
namespace {

constexpr std::uint8_t kNode = 5;
constexpr std::uint32_t kBitrate = 1'000'000;

struct Installed {
  std::vector<std::uint8_t> flash;  // 4 MiB with bootloader, provisioning and the application
  std::vector<std::uint8_t> container;
  std::uint32_t software_id = 0;
};

// One update of the example application, done once per test program; later boards start from a
// copy of that flash (a board with the application installed).
const Installed& installed() {
  static const Installed value = [] {
    Installed v;
    Rig rig(kBitrate);
    tw::Board& board = rig.add_board(node(kNode));
    const Micros t = rig.now();
    const auto r = rig.update(kNode, example_app());
    EXPECT_TRUE(rig.application_runs(kNode, t));
    EXPECT_EQ(board.fault_count(), 0u) << faults_of(board);
    const auto all = board.flash().contents();
    v.flash.assign(all.begin(), all.end());
    host::UpdateOptions opt;
    v.container = host::container_for_node(example_app(), opt, 0, 0x1064);
    v.software_id = r.software_id;
    return v;
  }();
  return value;
}

image::Header header_of(const std::vector<std::uint8_t>& container) {
  return host::parse_container(container, "example-app").header;
}

// Rewrites the header (with a correct header CRC) in front of the payload.
std::vector<std::uint8_t> with_header(const std::vector<std::uint8_t>& container,
                                      const image::Header& header) {
  std::vector<std::uint8_t> out = container;
  EXPECT_TRUE(image::encode(header, out.data(), header.header_length));
  return out;
}

struct Expect {
  co::Abort abort;
  co::FlashStatus status;
  co::FlashDetail detail;
  bool clears_application;  // the check comes after the first erase
};

class E2eMalformed : public ::testing::Test {
 protected:
  void SetUp() override {
    E2E_REQUIRE_FIRMWARE(2);
    const Installed& inst = installed();
    ASSERT_FALSE(inst.flash.empty());
    board_ = &rig_.add_board(node(kNode), /*power_on=*/false);
    board_->flash().probe_write(0, inst.flash);
    before_ = bootloader_region(*board_);
    Micros t = rig_.now();
    board_->power_on();
    ASSERT_TRUE(rig_.application_runs(kNode, t));
    // Like every CiA 302 master: stop the program, the node returns to its bootloader.
    t = rig_.now();
    rig_.master().download_u8(kNode, co::od::kProgramControl, 1,
                              static_cast<std::uint8_t>(co::ProgramCommand::kStop));
    ASSERT_TRUE(rig_.wait_boot_up(kNode, t, 500'000).has_value());
    ASSERT_EQ(rig_.master().upload_u8(kNode, co::od::kRtcanbootInfo, 1), co::kRunningBootloader);
  }

  std::uint32_t flash_status_when_idle() {
    for (int i = 0; i < 200; ++i) {
      const std::uint32_t s = rig_.master().upload_u32(kNode, co::od::kFlashStatus, 1);
      if ((s & 1U) == 0) return s;
      rig_.listen_for(50'000);
    }
    ADD_FAILURE() << "0x1F57:1 stays busy";
    return 1;
  }

  // Sends `bytes` into 0x1F50:1 and checks the abort, 0x1F57:1, the previous application and the
  // bootloader region.
  void reject(const std::vector<std::uint8_t>& bytes, const Expect& expect) {
    try {
      rig_.master().download(kNode, co::od::kProgramData, 1, bytes, host::SdoMode::kBlock);
      ADD_FAILURE() << "the download was accepted";
    } catch (const host::SdoError& e) {
      EXPECT_EQ(e.failure(), host::SdoClient::Failure::kServerAbort) << e.what();
      EXPECT_EQ(e.abort_code(), static_cast<std::uint32_t>(expect.abort))
          << std::hex << "abort 0x" << e.abort_code() << ": " << e.what();
    }
    EXPECT_EQ(flash_status_when_idle(), co::flash_status_word(false, expect.status, expect.detail));
    expect_previous_application(!expect.clears_application);
  }

  void expect_previous_application(bool valid) {
    const std::uint8_t state = rig_.master().upload_u8(kNode, co::od::kProgramControl, 1);
    const std::uint32_t id = rig_.master().upload_u32(kNode, co::od::kSoftwareId, 1);
    if (valid) {
      EXPECT_EQ(state, static_cast<std::uint8_t>(co::ProgramState::kStopped));
      EXPECT_EQ(id, installed().software_id);
    } else {
      EXPECT_EQ(state, static_cast<std::uint8_t>(co::ProgramState::kNoProgram));
      EXPECT_EQ(id, 0u);
    }
    // A cold boot decides the same way: the application starts at once, or the bootloader
    // stays with "no valid application".
    board_->power_off("test");
    rig_.listen_for(10'000);
    const Micros t = rig_.now();
    board_->power_on();
    if (valid) {
      EXPECT_TRUE(rig_.application_runs(kNode, t));
    } else {
      ASSERT_TRUE(rig_.wait_boot_up(kNode, t, 500'000).has_value());
      EXPECT_EQ(rig_.master().upload_u8(kNode, co::od::kRtcanbootInfo, 5),
                static_cast<std::uint8_t>(co::BootReason::kNoValidApplication));
      EXPECT_EQ(rig_.master().upload_u8(kNode, co::od::kProgramControl, 1),
                static_cast<std::uint8_t>(co::ProgramState::kNoProgram));
      // And a good image installs.
      const Micros s = rig_.now();
      rig_.update(kNode, example_app());
      EXPECT_TRUE(rig_.application_runs(kNode, s));
    }
    EXPECT_EQ(bootloader_region(*board_), before_);
    EXPECT_EQ(board_->fault_count(), 0u) << faults_of(*board_);
  }

  const std::vector<std::uint8_t>& good() { return installed().container; }

  Rig rig_{kBitrate};
  tw::Board* board_ = nullptr;
  std::vector<std::uint8_t> before_;
};

TEST_F(E2eMalformed, BadMagic) {
  auto bytes = good();
  bytes[0] ^= 0xFF;
  reject(bytes, {co::Abort::kCannotStore, co::FlashStatus::kDataFormatUnknown,
                 co::FlashDetail::kBadMagic, false});
}

TEST_F(E2eMalformed, BadHeaderCrc) {
  auto bytes = good();
  bytes[0x50] ^= 0x01;  // inside the records area, covered by the header CRC
  reject(bytes, {co::Abort::kCannotStore, co::FlashStatus::kDataFormatError,
                 co::FlashDetail::kBadHeaderCrc, false});
}

TEST_F(E2eMalformed, LoadAddressInTheBootloaderRegion) {
  image::Header h = header_of(good());
  h.load_address = memory_map::kFlashBase;
  reject(with_header(good(), h), {co::Abort::kCannotStore, co::FlashStatus::kAddressError,
                                  co::FlashDetail::kLoadAddress, false});
}

TEST_F(E2eMalformed, PayloadLengthPastTheRegion) {
  image::Header h = header_of(good());
  h.payload_length = memory_map::kAppSize + 4;
  reject(with_header(good(), h), {co::Abort::kCannotStore, co::FlashStatus::kAddressError,
                                  co::FlashDetail::kTooLarge, false});
}

TEST_F(E2eMalformed, AnnouncedSizePastTheRegion) {
  // Refused at the initiate: nothing of the 2 MB is sent.
  std::vector<std::uint8_t> bytes = good();
  bytes.resize(image::kMaxHeaderLength + memory_map::kAppSize + 1, 0xFF);
  const std::uint64_t frames_before = rig_.bus().stats().frames;
  reject(bytes, {co::Abort::kTypeMismatch, co::FlashStatus::kAddressError,
                 co::FlashDetail::kTooLarge, false});
  EXPECT_LT(rig_.bus().stats().frames - frames_before, 2000u);
}

TEST_F(E2eMalformed, PayloadCrcMismatch) {
  auto bytes = good();
  const std::size_t h = header_of(good()).header_length;
  bytes[h + (bytes.size() - h) / 2] ^= 0x10;  // in the middle of the payload, header untouched
  reject(bytes, {co::Abort::kCannotStore, co::FlashStatus::kDataFormatError,
                 co::FlashDetail::kPayloadCrc, true});
}

TEST_F(E2eMalformed, PayloadSha256Mismatch) {
  image::Header h = header_of(good());
  h.payload_sha256[31] ^= 0x01;  // CRC-32 still right, SHA-256 wrong
  reject(with_header(good(), h), {co::Abort::kCannotStore, co::FlashStatus::kDataFormatError,
                                  co::FlashDetail::kPayloadSha256, true});
}

TEST_F(E2eMalformed, TruncatedContainer) {
  auto bytes = good();
  bytes.resize(bytes.size() - 100);
  reject(bytes, {co::Abort::kTypeMismatch, co::FlashStatus::kDataFormatError,
                 co::FlashDetail::kLengthMismatch, false});
}

TEST_F(E2eMalformed, WrongProduct) {
  image::Header h = header_of(good());
  h.product_code ^= 0x1;
  reject(with_header(good(), h), {co::Abort::kCannotStore, co::FlashStatus::kWrongProduct,
                                  co::FlashDetail::kProductMismatch, false});
}

TEST_F(E2eMalformed, WrongVendor) {
  image::Header h = header_of(good());
  h.vendor_id = 0x0000'0123;
  reject(with_header(good(), h), {co::Abort::kCannotStore, co::FlashStatus::kWrongProduct,
                                  co::FlashDetail::kProductMismatch, false});
}

// The master stops part-way (a truncated download): its abort ends the transfer, the partly
// written image is not valid.
TEST_F(E2eMalformed, DownloadAbortedByTheMasterPartWay) {
  host::SdoClient client(kNode);
  client.start_download(co::od::kProgramData, 1, good(), host::SdoMode::kBlock, rig_.now());
  host::SdoClient* clients[] = {&client};
  bool aborted = false;
  rig_.master().run(clients, [&](std::uint64_t done, std::uint64_t total) {
    if (!aborted && done > total / 2) {
      aborted = true;
      client.abort(co::Abort::kGeneral);
    }
  });
  ASSERT_TRUE(aborted);
  EXPECT_EQ(client.state(), host::SdoClient::State::kFailed);
  EXPECT_EQ(client.failure(), host::SdoClient::Failure::kLocalAbort);
  EXPECT_EQ(flash_status_when_idle(),
            co::flash_status_word(false, co::FlashStatus::kUnspecified, co::FlashDetail::kAborted));
  expect_previous_application(false);
}

}  // namespace
}  // namespace rtcanboot::e2e
