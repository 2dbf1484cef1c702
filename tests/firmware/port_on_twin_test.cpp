// The port's claims checked on the twin with the real images: boot, CiA 302 program download by
// SDO block transfer at 1 Mbit/s while a second node floods the bus and the flash runs at its
// datasheet maximum timings (every block fully acknowledged: no frame lost), start of the example
// application with the handed-over node-ID and bit rate (heartbeat OPERATIONAL), and the return to
// the bootloader on 0x1F51:1 = 0. Built when RTCANBOOT_PORT_TWIN_TEST is ON.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include "rtcanboot/hash.hpp"
#include "rtcanboot/image_format.hpp"
#include "rtcanboot/memory_map.hpp"
#include "rtcanboot/provisioning.hpp"
#include "twin/board.hpp"
#include "twin/can/bus.hpp"

namespace rtcanboot::twin {
namespace {

constexpr std::uint32_t kBitrate = 1'000'000;
constexpr std::uint8_t kNode = 9;

std::vector<std::uint8_t> load(const std::string& name) {
  const char* env = std::getenv("RTCANBOOT_FIRMWARE_DIR");
  const std::string path =
      std::string(env != nullptr ? env : RTCANBOOT_FIRMWARE_DIR) + "/firmware/" + name;
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

class PortOnTwin : public ::testing::Test {
 protected:
  void SetUp() override {
    bootloader_ = load("bootloader/rtcanboot-bootloader.bin");
    app_ = load("example-app/example-app.bin");
    ASSERT_FALSE(bootloader_.empty()) << "build the rt1064 firmware first";
    ASSERT_FALSE(app_.empty());
    BoardConfig config;
    config.name = "port";
    config.flash_timing = FlashTiming::kMax;
    config.console_sink = [](const std::string&) {};
    config.report_sink = [](const Report&) {};
    board_ = &sim_.add_board(config);
    board_->flash().probe_write(0, bootloader_);
    Provisioning provisioning;
    provisioning.node_id = kNode;
    provisioning.bitrate = kBitrate;
    std::vector<std::uint8_t> sector(memory_map::kSectorSize, 0xFF);
    ASSERT_TRUE(encode_provisioning(provisioning, sector.data(), sector.size()));
    board_->flash().probe_write(memory_map::kProvisioningOffset, sector);
    bus_ = &sim_.add_bus(kBitrate);
    board_->connect_can(*bus_, 2);
    bus_->attach(master_);
  }

  // Lowest-priority 8-byte frames back to back: 100 % bus load around the SDO traffic.
  void start_flood() {
    bus_->attach(flood_);
    CanFrame frame;
    frame.id = 0x7E0;
    frame.dlc = 8;
    flood_.on_transmitted([this, frame](const can::TimedFrame&) { flood_.send(frame); });
    flood_.send(frame);
    flood_.send(frame);
  }

  void request(std::initializer_list<std::uint8_t> bytes) {
    CanFrame frame;
    frame.id = 0x600 + kNode;
    frame.dlc = 8;
    int i = 0;
    for (const std::uint8_t b : bytes) frame.data[i++] = b;
    master_.send(frame);
  }

  // Next frame from `id` within `timeout_ns`.
  std::optional<CanFrame> expect(std::uint32_t id, Nanos timeout_ns) {
    std::optional<CanFrame> found;
    sim_.run_until(
        [&] {
          while (auto f = master_.receive()) {
            if (f->frame.id == id && !found) found = f->frame;
          }
          return found.has_value();
        },
        sim_.now() + timeout_ns);
    return found;
  }

  std::vector<std::uint8_t> container() const {
    image::Header header;
    header.load_address = memory_map::kAppAddress;
    header.payload_length = static_cast<std::uint32_t>(app_.size());
    header.vendor_id = RTCANBOOT_VENDOR_ID;
    header.product_code = RTCANBOOT_PRODUCT_CODE;
    header.payload_crc32 = crc32(0, app_.data(), app_.size());
    SoftwareSha256 sha;
    sha.update(app_.data(), app_.size());
    sha.finish(header.payload_sha256);
    std::vector<std::uint8_t> bytes(header.header_length);
    EXPECT_TRUE(image::encode(header, bytes.data(), bytes.size()));
    bytes.insert(bytes.end(), app_.begin(), app_.end());
    return bytes;
  }

  Simulation sim_;
  Board* board_ = nullptr;
  can::Bus* bus_ = nullptr;
  can::Endpoint master_{"master"};
  can::Endpoint flood_{"flood"};
  std::vector<std::uint8_t> bootloader_;
  std::vector<std::uint8_t> app_;
};

constexpr Nanos kMs = 1'000'000;

TEST_F(PortOnTwin, DownloadUnderFullBusLoadStartAndReturn) {
  board_->power_on();
  auto bootup = expect(0x700 + kNode, 200 * kMs);
  ASSERT_TRUE(bootup) << board_->console() << board_->stop_reason();
  EXPECT_EQ(bootup->data[0], 0x00);
  EXPECT_NE(board_->console().find("FLEXCAN2"), std::string::npos) << board_->console();
  start_flood();
  sim_.run_for(20 * kMs);

  const std::uint32_t sdo_tx = 0x580 + kNode;
  request({0x2F, 0x51, 0x1F, 0x01, 0x03});  // clear program
  auto answer = expect(sdo_tx, 1000 * kMs);
  ASSERT_TRUE(answer);
  ASSERT_EQ(answer->data[0], 0x60);

  const std::vector<std::uint8_t> data = container();
  const auto n = static_cast<std::uint32_t>(data.size());
  request({0xC6, 0x50, 0x1F, 0x01, static_cast<std::uint8_t>(n), static_cast<std::uint8_t>(n >> 8),
           static_cast<std::uint8_t>(n >> 16), static_cast<std::uint8_t>(n >> 24)});
  answer = expect(sdo_tx, 1000 * kMs);
  ASSERT_TRUE(answer);
  ASSERT_EQ(answer->data[0] & 0xE3, 0xA0);
  std::uint32_t block_size = answer->data[4];
  std::uint32_t offset = 0;
  int blocks = 0;
  while (offset < n) {
    std::uint32_t sequence = 0;
    while (sequence < block_size && offset < n) {
      const std::uint32_t length = std::min<std::uint32_t>(7, n - offset);
      CanFrame segment;
      segment.id = 0x600 + kNode;
      segment.dlc = 8;
      segment.data[0] = static_cast<std::uint8_t>(++sequence | (offset + length == n ? 0x80 : 0));
      std::memcpy(segment.data + 1, data.data() + offset, length);
      master_.send(segment);
      offset += length;
    }
    answer = expect(sdo_tx, 5000 * kMs);
    ASSERT_TRUE(answer) << "no acknowledge for block " << blocks;
    ASSERT_EQ(answer->data[0], 0xA2);
    ASSERT_EQ(answer->data[1], sequence) << "block " << blocks << ": a segment was lost";
    block_size = answer->data[2];
    ++blocks;
  }
  const std::uint32_t last = n % 7 == 0 ? 7 : n % 7;
  const std::uint16_t crc = crc16_xmodem(0, data.data(), n);
  request({static_cast<std::uint8_t>(0xC1 | ((7 - last) << 2)), static_cast<std::uint8_t>(crc),
           static_cast<std::uint8_t>(crc >> 8)});
  answer = expect(sdo_tx, 5000 * kMs);
  ASSERT_TRUE(answer);
  ASSERT_EQ(answer->data[0], 0xA1);

  // Wait until programming and verification are done (0x1F57:1 bit 0 clear, status OK).
  std::uint32_t status = 1;
  for (int i = 0; i < 100 && (status & 1) != 0; ++i) {
    request({0x40, 0x57, 0x1F, 0x01});
    answer = expect(sdo_tx, 1000 * kMs);
    ASSERT_TRUE(answer);
    std::memcpy(&status, answer->data + 4, 4);
    if (status & 1) sim_.run_for(50 * kMs);
  }
  ASSERT_EQ(status, 0u);

  request({0x2F, 0x51, 0x1F, 0x01, 0x01});  // start program
  answer = expect(sdo_tx, 1000 * kMs);
  ASSERT_TRUE(answer) << "the start confirmation must leave before the jump";
  EXPECT_EQ(answer->data[0], 0x60);
  bootup = expect(0x700 + kNode, 500 * kMs);
  ASSERT_TRUE(bootup);
  EXPECT_EQ(bootup->data[0], 0x00);
  auto heartbeat = expect(0x700 + kNode, 1500 * kMs);
  ASSERT_TRUE(heartbeat);
  EXPECT_EQ(heartbeat->data[0], 0x05) << "the example application is OPERATIONAL";
  EXPECT_NE(board_->console().find("node 9, 1000 kbit/s (from the bootloader)"), std::string::npos)
      << board_->console();

  request({0x2F, 0x51, 0x1F, 0x01, 0x00});  // stop program: back to the bootloader
  answer = expect(sdo_tx, 1000 * kMs);
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->data[0], 0x60);
  bootup = expect(0x700 + kNode, 500 * kMs);
  ASSERT_TRUE(bootup);
  EXPECT_NE(board_->console().find("entry requested"), std::string::npos) << board_->console();
  EXPECT_EQ(board_->fault_count(), 0u) << board_->stop_reason();
}

}  // namespace
}  // namespace rtcanboot::twin
