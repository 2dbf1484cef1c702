// GoogleTest fixture around one CanopenNode (node-ID 5) with recording fakes, and small SDO
// client helpers that check every response byte as they go.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "canopen_fakes.hpp"
#include "rtcanboot/canopen_node.hpp"
#include "rtcanboot/hash.hpp"

namespace rtcanboot::test {

class CanopenNodeTest : public ::testing::Test {
 protected:
  static constexpr std::uint8_t kNodeId = 5;
  static constexpr std::uint32_t kRx = 0x605;
  static constexpr std::uint32_t kTx = 0x585;

  CanopenNodeTest() {
    config.node_id = kNodeId;
    config.identity = {0x0000'0A1B, 0x0106'4001, 0x0001'0002, 0xDEAD'BEEF};
    config.device_name = "rtcanboot test device";
    config.software_version = "1.2";
    config.heartbeat_ms = 100;
    config.sdo_timeout = milliseconds(500);
    config.max_ack_hold = milliseconds(200);
    config.pacing_reserve = 64;
  }

  void SetUp() override { restart(); }
  void TearDown() override {
    EXPECT_EQ(program.sink.overflow_writes, 0U) << "the sink got more than free_space()";
  }

  // (Re)creates the node with the current config and starts it; drops the boot-up message.
  void restart() {
    node.emplace(frames, program, config);
    node->start(now);
    frames.frames.clear();
  }

  void sdo(const Bytes8& request) { node->on_frame(make_frame(kRx, request), now); }
  void nmt(std::uint8_t command, std::uint8_t target) {
    node->on_frame(make_frame(0x000, {command, target}), now);
  }
  void advance(Micros dt) {
    now += dt;
    node->poll(now);
  }

  CanFrame next_response() {
    CanFrame frame = frames.pop();
    EXPECT_EQ(frame.id, kTx);
    EXPECT_EQ(frame.dlc, 8);
    EXPECT_EQ(frame.flags, 0);
    return frame;
  }
  void expect_response(const Bytes8& expected) {
    ASSERT_FALSE(frames.empty()) << "no response";
    EXPECT_EQ(payload(next_response()), expected);
  }
  void expect_abort(std::uint16_t index, std::uint8_t sub, canopen::Abort code) {
    const auto value = static_cast<std::uint32_t>(code);
    expect_response({0x80, static_cast<std::uint8_t>(index), static_cast<std::uint8_t>(index >> 8),
                     sub, static_cast<std::uint8_t>(value), static_cast<std::uint8_t>(value >> 8),
                     static_cast<std::uint8_t>(value >> 16),
                     static_cast<std::uint8_t>(value >> 24)});
  }
  void expect_silence() {
    EXPECT_TRUE(frames.empty()) << "unexpected frame, first byte 0x" << std::hex
                                << (frames.empty() ? 0 : frames.frames.front().data[0]) << " id 0x"
                                << (frames.empty() ? 0U : frames.frames.front().id);
  }

  static std::uint8_t lo(std::uint16_t v) { return static_cast<std::uint8_t>(v); }
  static std::uint8_t hi(std::uint16_t v) { return static_cast<std::uint8_t>(v >> 8); }
  static std::uint8_t byte(std::uint32_t v, int n) {
    return static_cast<std::uint8_t>(v >> (8 * n));
  }

  // Expedited upload: returns the response after checking it is an expedited one.
  Bytes8 upload_expedited(std::uint16_t index, std::uint8_t sub) {
    sdo({0x40, lo(index), hi(index), sub, 0, 0, 0, 0});
    if (frames.empty()) {
      ADD_FAILURE() << "no response";
      return {};
    }
    return payload(next_response());
  }

  // Segmented upload with toggles checked; returns the data.
  std::vector<std::uint8_t> upload_segmented(std::uint16_t index, std::uint8_t sub) {
    std::vector<std::uint8_t> data;
    sdo({0x40, lo(index), hi(index), sub, 0, 0, 0, 0});
    const Bytes8 initiate = payload(next_response());
    EXPECT_EQ(initiate[0], 0x41);
    EXPECT_EQ(initiate[1], lo(index));
    EXPECT_EQ(initiate[2], hi(index));
    EXPECT_EQ(initiate[3], sub);
    const std::uint32_t size = initiate[4] | (initiate[5] << 8) | (initiate[6] << 16) |
                               (static_cast<std::uint32_t>(initiate[7]) << 24);
    std::uint8_t toggle = 0;
    for (int guard = 0; guard < 10000; ++guard) {
      sdo({static_cast<std::uint8_t>(0x60 | toggle), 0, 0, 0, 0, 0, 0, 0});
      const Bytes8 segment = payload(next_response());
      EXPECT_EQ(segment[0] & 0xE0, 0x00);
      EXPECT_EQ(segment[0] & 0x10, toggle);
      const int length = 7 - ((segment[0] >> 1) & 7);
      data.insert(data.end(), segment.begin() + 1, segment.begin() + 1 + length);
      if (segment[0] & 1) break;
      toggle ^= 0x10;
    }
    EXPECT_EQ(data.size(), size);
    return data;
  }

  // Segmented download (size indicated), each confirmation checked.
  void download_segmented(std::uint16_t index, std::uint8_t sub,
                          const std::vector<std::uint8_t>& data) {
    const auto size = static_cast<std::uint32_t>(data.size());
    sdo({0x21, lo(index), hi(index), sub, byte(size, 0), byte(size, 1), byte(size, 2),
         byte(size, 3)});
    expect_response({0x60, lo(index), hi(index), sub, 0, 0, 0, 0});
    std::uint8_t toggle = 0;
    std::size_t offset = 0;
    do {
      const std::size_t length = std::min<std::size_t>(7, data.size() - offset);
      const bool last = offset + length == data.size();
      Bytes8 segment{};
      segment[0] = static_cast<std::uint8_t>(toggle | ((7 - length) << 1) | (last ? 1 : 0));
      for (std::size_t i = 0; i < length; ++i) segment[1 + i] = data[offset + i];
      sdo(segment);
      expect_response({static_cast<std::uint8_t>(0x20 | toggle), 0, 0, 0, 0, 0, 0, 0});
      offset += length;
      toggle ^= 0x10;
    } while (offset < data.size());
  }

  // Sends one block download segment.
  void block_segment(std::uint8_t seqno, bool last, const std::vector<std::uint8_t>& data,
                     std::size_t offset) {
    Bytes8 segment{};
    segment[0] = static_cast<std::uint8_t>(seqno | (last ? 0x80 : 0));
    for (std::size_t i = 0; i < 7 && offset + i < data.size(); ++i)
      segment[1 + i] = data[offset + i];
    sdo(segment);
  }

  // A complete block download that expects every sub-block acknowledged in full.
  void download_block(std::uint16_t index, std::uint8_t sub, const std::vector<std::uint8_t>& data,
                      bool crc) {
    const auto size = static_cast<std::uint32_t>(data.size());
    sdo({static_cast<std::uint8_t>(0xC2 | (crc ? 4 : 0)), lo(index), hi(index), sub, byte(size, 0),
         byte(size, 1), byte(size, 2), byte(size, 3)});
    Bytes8 response = payload(next_response());
    ASSERT_EQ(response[0], 0xA4);
    ASSERT_EQ(response[1], lo(index));
    ASSERT_EQ(response[3], sub);
    std::uint8_t block_size = response[4];
    ASSERT_GE(block_size, 1);
    ASSERT_LE(block_size, 127);
    std::size_t offset = 0;
    bool done = false;
    while (!done) {
      std::uint8_t seqno = 0;
      while (seqno < block_size) {
        ++seqno;
        const bool last = offset + 7 >= data.size();
        block_segment(seqno, last, data, offset);
        offset += 7;
        if (last) {
          done = true;
          break;
        }
      }
      response = payload(next_response());
      ASSERT_EQ(response[0], 0xA2);
      ASSERT_EQ(response[1], seqno);
      block_size = response[2];
      ASSERT_GE(block_size, 1);
      ASSERT_LE(block_size, 127);
    }
    const std::uint8_t unused =
        data.empty() ? 7 : static_cast<std::uint8_t>(7 - ((data.size() - 1) % 7 + 1));
    const std::uint16_t check = crc ? crc16_xmodem(0, data.data(), data.size()) : 0;
    sdo({static_cast<std::uint8_t>(0xC1 | (unused << 2)), lo(check), hi(check), 0, 0, 0, 0, 0});
    expect_response({0xA1, 0, 0, 0, 0, 0, 0, 0});
  }

  // A complete block upload; checks sequence numbers, the end frame and the CRC.
  std::vector<std::uint8_t> upload_block(std::uint16_t index, std::uint8_t sub,
                                         std::uint8_t block_size, bool crc) {
    std::vector<std::uint8_t> data;
    sdo({static_cast<std::uint8_t>(0xA0 | (crc ? 4 : 0)), lo(index), hi(index), sub, block_size, 0,
         0, 0});
    const Bytes8 initiate = payload(next_response());
    EXPECT_EQ(initiate[0], 0xC6);
    EXPECT_EQ(initiate[1], lo(index));
    EXPECT_EQ(initiate[2], hi(index));
    EXPECT_EQ(initiate[3], sub);
    const std::uint32_t size = initiate[4] | (initiate[5] << 8) | (initiate[6] << 16) |
                               (static_cast<std::uint32_t>(initiate[7]) << 24);
    sdo({0xA3, 0, 0, 0, 0, 0, 0, 0});
    bool last = false;
    while (!last) {
      std::uint8_t count = 0;
      while (!frames.empty()) {
        const Bytes8 segment = payload(next_response());
        EXPECT_EQ(segment[0] & 0x7F, count + 1);
        ++count;
        data.insert(data.end(), segment.begin() + 1, segment.end());
        if (segment[0] & 0x80) last = true;
      }
      EXPECT_TRUE(last || count == block_size);
      sdo({0xA2, count, block_size, 0, 0, 0, 0, 0});
      if (count == 0) break;
    }
    const Bytes8 end = payload(next_response());
    EXPECT_EQ(end[0] & 0xE3, 0xC1);
    const std::size_t unused = (end[0] >> 2) & 7;
    EXPECT_GE(data.size(), unused);
    data.resize(data.size() - unused);
    EXPECT_EQ(data.size(), size);
    const std::uint16_t expected_crc = crc ? crc16_xmodem(0, data.data(), data.size()) : 0;
    EXPECT_EQ(end[1] | (end[2] << 8), expected_crc);
    sdo({0xA1, 0, 0, 0, 0, 0, 0, 0});
    expect_silence();
    return data;
  }

  // After any abort the next transfer must work.
  void expect_recovers() {
    EXPECT_FALSE(node->transfer_active());
    EXPECT_EQ(upload_expedited(0x1018, 1), (Bytes8{0x43, 0x18, 0x10, 0x01, 0x1B, 0x0A, 0, 0}));
    expect_silence();
  }

  static std::vector<std::uint8_t> pattern(std::size_t size) {
    std::vector<std::uint8_t> data(size);
    for (std::size_t i = 0; i < size; ++i) data[i] = static_cast<std::uint8_t>(i * 7 + (i >> 8));
    return data;
  }
  static std::vector<std::uint8_t> text(const std::string& s) { return {s.begin(), s.end()}; }

  NodeConfig config;
  RtcanbootInfo info;
  RecordingFrameSink frames;
  FakeProgramControl program;
  std::optional<CanopenNode> node;
  Micros now = 1'000'000;
};

}  // namespace rtcanboot::test
