// The CiA 305 LSS slave: every service in both LSS states, bad input, interrupted sequences and
// several slaves answering one request at once.
#include "rtcanboot/lss_slave.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "canopen_fakes.hpp"

namespace rtcanboot::test {
namespace {

using lss::Cs;

constexpr NodeIdentity kIdentity{0x0000'0A1B, 0x0106'4001, 0x0001'0002, 0x1234'5678};

std::uint8_t b(std::uint32_t v, int n) {
  return static_cast<std::uint8_t>(v >> (8 * n));
}
std::uint8_t c(Cs cs) {
  return static_cast<std::uint8_t>(cs);
}

Bytes8 request32(Cs cs, std::uint32_t v) {
  return {c(cs), b(v, 0), b(v, 1), b(v, 2), b(v, 3), 0, 0, 0};
}

// A store that finishes after `busy_polls` polls with `result`.
class FakeStorage final : public LssStorage {
 public:
  bool begin_store(std::uint8_t node_id, std::uint32_t bitrate, LssResult* refused) override {
    if (refuse) {
      *refused = refusal;
      return false;
    }
    stored_node_id = node_id;
    stored_bitrate = bitrate;
    ++begins;
    remaining = busy_polls;
    return true;
  }
  bool store_busy() override {
    if (remaining == 0) return false;
    --remaining;
    return true;
  }
  LssResult store_result() const override { return result; }

  int busy_polls = 3;
  int remaining = 0;
  int begins = 0;
  bool refuse = false;
  LssResult refusal{lss::kImplementationSpecific, lss::kSpecStoreBusy};
  LssResult result{};
  std::uint8_t stored_node_id = 0;
  std::uint32_t stored_bitrate = 0;
};

class LssSlaveTest : public ::testing::Test {
 protected:
  LssSlaveTest() {
    config.identity = kIdentity;
    config.node_id = lss::kUnconfigured;
    config.bitrate = 500'000;
    config.storage = &storage;
  }
  void SetUp() override { restart(); }

  void restart() { slave = std::make_unique<LssSlave>(frames, config); }
  void send(const Bytes8& data) {
    EXPECT_TRUE(slave->on_frame(make_frame(lss::kMasterCobId, data), now));
  }
  void advance(Micros dt) {
    now += dt;
    slave->poll(now);
  }
  void expect_answer(const Bytes8& expected) {
    ASSERT_FALSE(frames.empty()) << "no answer";
    const CanFrame frame = frames.pop();
    EXPECT_EQ(frame.id, lss::kSlaveCobId);
    EXPECT_EQ(frame.dlc, 8);
    EXPECT_EQ(frame.flags, 0);
    EXPECT_EQ(payload(frame), expected);
  }
  void expect_silence() {
    EXPECT_TRUE(frames.empty()) << "unexpected answer 0x" << std::hex
                                << (frames.empty() ? 0 : frames.frames.front().data[0]);
    frames.frames.clear();
  }
  void switch_global(lss::Mode mode) {
    send({c(Cs::kSwitchGlobal), static_cast<std::uint8_t>(mode)});
  }
  void switch_selective(const NodeIdentity& id) {
    send(request32(Cs::kSwitchSelectiveVendor, id.vendor_id));
    send(request32(Cs::kSwitchSelectiveProduct, id.product_code));
    send(request32(Cs::kSwitchSelectiveRevision, id.revision));
    send(request32(Cs::kSwitchSelectiveSerial, id.serial));
  }
  void identify(std::uint32_t rev_low, std::uint32_t rev_high, std::uint32_t serial_low,
                std::uint32_t serial_high, std::uint32_t vendor = kIdentity.vendor_id,
                std::uint32_t product = kIdentity.product_code) {
    send(request32(Cs::kIdentifyVendor, vendor));
    send(request32(Cs::kIdentifyProduct, product));
    send(request32(Cs::kIdentifyRevisionLow, rev_low));
    send(request32(Cs::kIdentifyRevisionHigh, rev_high));
    send(request32(Cs::kIdentifySerialLow, serial_low));
    send(request32(Cs::kIdentifySerialHigh, serial_high));
  }
  void fastscan(std::uint32_t id, std::uint8_t bit, std::uint8_t sub, std::uint8_t next) {
    send({c(Cs::kFastscan), b(id, 0), b(id, 1), b(id, 2), b(id, 3), bit, sub, next});
  }

  RecordingFrameSink frames;
  FakeStorage storage;
  LssConfig config;
  std::unique_ptr<LssSlave> slave;
  Micros now = 1'000;
};

const Bytes8 kSelectiveAnswer{0x44, 0, 0, 0, 0, 0, 0, 0};
const Bytes8 kIdentifyAnswer{0x4F, 0, 0, 0, 0, 0, 0, 0};

TEST_F(LssSlaveTest, StartsWaitingWithTheConfiguredValues) {
  EXPECT_EQ(slave->mode(), lss::Mode::kWaiting);
  EXPECT_FALSE(slave->configured());
  EXPECT_EQ(slave->active_node_id(), lss::kUnconfigured);
  EXPECT_EQ(slave->active_bitrate(), 500'000U);
  config.node_id = 0;  // not a node-ID: unconfigured
  restart();
  EXPECT_FALSE(slave->configured());
  config.node_id = 42;
  restart();
  EXPECT_TRUE(slave->configured());
  EXPECT_EQ(slave->pending_node_id(), 42);
}

TEST_F(LssSlaveTest, IgnoresFramesThatAreNoLssRequests) {
  EXPECT_FALSE(slave->on_frame(make_frame(0x7E4, {0x04, 1, 0, 0, 0, 0, 0, 0}), now));
  EXPECT_FALSE(slave->on_frame(make_frame(0x605, {0x04, 1, 0, 0, 0, 0, 0, 0}), now));
  CanFrame extended = make_frame(lss::kMasterCobId, {0x04, 1, 0, 0, 0, 0, 0, 0});
  extended.flags = CanFrame::kExtended;
  EXPECT_FALSE(slave->on_frame(extended, now));
  CanFrame remote = make_frame(lss::kMasterCobId, {0x04, 1, 0, 0, 0, 0, 0, 0});
  remote.flags = CanFrame::kRemote;
  EXPECT_FALSE(slave->on_frame(remote, now));
  // Right COB-ID, wrong length: consumed but not acted on.
  EXPECT_TRUE(slave->on_frame(make_frame(lss::kMasterCobId, {0x04, 1}), now));
  EXPECT_EQ(slave->mode(), lss::Mode::kWaiting);
  expect_silence();
}

TEST_F(LssSlaveTest, SwitchStateGlobal) {
  switch_global(lss::Mode::kConfiguration);
  EXPECT_EQ(slave->mode(), lss::Mode::kConfiguration);
  send({c(Cs::kSwitchGlobal), 2});  // no such mode: ignored
  EXPECT_EQ(slave->mode(), lss::Mode::kConfiguration);
  switch_global(lss::Mode::kWaiting);
  EXPECT_EQ(slave->mode(), lss::Mode::kWaiting);
  expect_silence();  // never answered
  EXPECT_FALSE(slave->take_reset_communication_request());
}

TEST_F(LssSlaveTest, SwitchStateSelectiveOnlyOnTheFullIdentity) {
  NodeIdentity other = kIdentity;
  other.serial += 1;
  switch_selective(other);
  expect_silence();
  EXPECT_EQ(slave->mode(), lss::Mode::kWaiting);
  other = kIdentity;
  other.revision = 0;
  switch_selective(other);
  expect_silence();
  switch_selective(kIdentity);
  expect_answer(kSelectiveAnswer);
  EXPECT_EQ(slave->mode(), lss::Mode::kConfiguration);
  // In the configuration state the sequence is not a service: no second answer.
  switch_selective(kIdentity);
  expect_silence();
}

TEST_F(LssSlaveTest, SwitchStateSelectiveInterruptedStartsOver) {
  send(request32(Cs::kSwitchSelectiveVendor, kIdentity.vendor_id));
  send(request32(Cs::kSwitchSelectiveProduct, kIdentity.product_code));
  send({c(Cs::kInquireNodeId)});  // another LSS request in between
  send(request32(Cs::kSwitchSelectiveRevision, kIdentity.revision));
  send(request32(Cs::kSwitchSelectiveSerial, kIdentity.serial));
  expect_silence();
  EXPECT_EQ(slave->mode(), lss::Mode::kWaiting);
  // Out of order: product before vendor.
  send(request32(Cs::kSwitchSelectiveProduct, kIdentity.product_code));
  send(request32(Cs::kSwitchSelectiveVendor, kIdentity.vendor_id));
  send(request32(Cs::kSwitchSelectiveRevision, kIdentity.revision));
  send(request32(Cs::kSwitchSelectiveSerial, kIdentity.serial));
  expect_silence();
  // A repeated vendor request restarts the sequence, which then completes.
  send(request32(Cs::kSwitchSelectiveVendor, 0xBAD));
  switch_selective(kIdentity);
  expect_answer(kSelectiveAnswer);
  // Frames on other COB-IDs do not interrupt.
  switch_global(lss::Mode::kWaiting);
  send(request32(Cs::kSwitchSelectiveVendor, kIdentity.vendor_id));
  EXPECT_FALSE(slave->on_frame(make_frame(0x181, {1, 2, 3}), now));
  send(request32(Cs::kSwitchSelectiveProduct, kIdentity.product_code));
  send(request32(Cs::kSwitchSelectiveRevision, kIdentity.revision));
  send(request32(Cs::kSwitchSelectiveSerial, kIdentity.serial));
  expect_answer(kSelectiveAnswer);
}

TEST_F(LssSlaveTest, ConfigurationServicesAreSilentInWaitingState) {
  send({c(Cs::kConfigureNodeId), 10});
  send({c(Cs::kConfigureBitTiming), 0, 0});
  send({c(Cs::kActivateBitTiming), 10, 0});
  send({c(Cs::kStoreConfiguration)});
  for (Cs cs : {Cs::kInquireVendor, Cs::kInquireProduct, Cs::kInquireRevision, Cs::kInquireSerial,
                Cs::kInquireNodeId}) {
    send({c(cs)});
  }
  expect_silence();
  EXPECT_EQ(slave->pending_node_id(), lss::kUnconfigured);
  EXPECT_EQ(slave->pending_bitrate(), 500'000U);
  EXPECT_TRUE(slave->transmit_allowed());
  EXPECT_EQ(storage.begins, 0);
}

TEST_F(LssSlaveTest, UnknownCommandsAreSilent) {
  for (std::uint8_t cs : {0x00, 0x05, 0x12, 0x14, 0x44, 0x4F, 0x50, 0x52, 0x5F, 0xFF}) {
    send({cs, 1, 2, 3, 4, 5, 6, 7});
  }
  switch_global(lss::Mode::kConfiguration);
  for (std::uint8_t cs : {0x00, 0x05, 0x12, 0x14, 0x44, 0x4F, 0x50, 0x51, 0x52, 0x5F, 0xFF}) {
    send({cs, 1, 2, 3, 4, 5, 6, 7});
  }
  expect_silence();
}

TEST_F(LssSlaveTest, ConfigureNodeId) {
  switch_global(lss::Mode::kConfiguration);
  for (std::uint8_t id : {0, 128, 200, 0xFE}) {
    send({c(Cs::kConfigureNodeId), id});
    expect_answer({0x11, lss::kNodeIdOutOfRange, 0, 0, 0, 0, 0, 0});
  }
  EXPECT_EQ(slave->pending_node_id(), lss::kUnconfigured);
  for (std::uint8_t id : {1, 127, 0xFF, 10}) {
    send({c(Cs::kConfigureNodeId), id});
    expect_answer({0x11, lss::kSuccess, 0, 0, 0, 0, 0, 0});
    EXPECT_EQ(slave->pending_node_id(), id);
  }
  // The pending node-ID is not active yet: inquire reports the active one.
  send({c(Cs::kInquireNodeId)});
  expect_answer({0x5E, 0xFF, 0, 0, 0, 0, 0, 0});
  slave->reset_communication();
  EXPECT_EQ(slave->active_node_id(), 10);
  send({c(Cs::kInquireNodeId)});
  expect_answer({0x5E, 10, 0, 0, 0, 0, 0, 0});
}

TEST_F(LssSlaveTest, UnconfiguredSlaveResetsCommunicationWhenSwitchedToWaiting) {
  switch_global(lss::Mode::kConfiguration);
  switch_global(lss::Mode::kWaiting);
  EXPECT_FALSE(slave->take_reset_communication_request());  // still no node-ID
  switch_global(lss::Mode::kConfiguration);
  send({c(Cs::kConfigureNodeId), 17});
  expect_answer({0x11, 0, 0, 0, 0, 0, 0, 0});
  EXPECT_FALSE(slave->take_reset_communication_request());
  switch_global(lss::Mode::kWaiting);
  EXPECT_TRUE(slave->take_reset_communication_request());
  EXPECT_FALSE(slave->take_reset_communication_request());  // reported once
  slave->reset_communication();
  EXPECT_TRUE(slave->configured());
  // A configured slave given a new node-ID waits for NMT reset communication instead.
  switch_global(lss::Mode::kConfiguration);
  send({c(Cs::kConfigureNodeId), 18});
  expect_answer({0x11, 0, 0, 0, 0, 0, 0, 0});
  switch_global(lss::Mode::kWaiting);
  EXPECT_FALSE(slave->take_reset_communication_request());
  EXPECT_EQ(slave->active_node_id(), 17);
}

TEST_F(LssSlaveTest, ConfigureBitTimingStandardTable) {
  switch_global(lss::Mode::kConfiguration);
  const std::uint32_t expected[] = {1'000'000, 800'000, 500'000, 250'000, 125'000,
                                    0,         50'000,  20'000,  10'000};
  for (std::uint8_t index = 0; index < 9; ++index) {
    send({c(Cs::kConfigureBitTiming), 0, index});
    if (expected[index] == 0) {
      expect_answer({0x13, lss::kBitTimingNotSupported, 0, 0, 0, 0, 0, 0});
    } else {
      expect_answer({0x13, lss::kSuccess, 0, 0, 0, 0, 0, 0});
      EXPECT_EQ(slave->pending_bitrate(), expected[index]);
    }
  }
  send({c(Cs::kConfigureBitTiming), 0, 9});  // automatic detection: not supported
  expect_answer({0x13, lss::kBitTimingNotSupported, 0, 0, 0, 0, 0, 0});
  send({c(Cs::kConfigureBitTiming), 0, 200});
  expect_answer({0x13, lss::kBitTimingNotSupported, 0, 0, 0, 0, 0, 0});
  send({c(Cs::kConfigureBitTiming), 1, 0});  // user-defined table
  expect_answer({0x13, lss::kBitTimingNotSupported, 0, 0, 0, 0, 0, 0});
  EXPECT_EQ(slave->pending_bitrate(), 10'000U);
  EXPECT_EQ(slave->active_bitrate(), 500'000U);
}

TEST_F(LssSlaveTest, ConfigureBitTimingRefusesRatesThePortCannotRun) {
  config.supported_rates = (1U << 0) | (1U << 2);  // 1M and 500k only
  restart();
  switch_global(lss::Mode::kConfiguration);
  send({c(Cs::kConfigureBitTiming), 0, 4});
  expect_answer({0x13, lss::kBitTimingNotSupported, 0, 0, 0, 0, 0, 0});
  send({c(Cs::kConfigureBitTiming), 0, 0});
  expect_answer({0x13, lss::kSuccess, 0, 0, 0, 0, 0, 0});
}

TEST_F(LssSlaveTest, ActivateBitTimingWaitsTheSwitchDelayTwice) {
  switch_global(lss::Mode::kConfiguration);
  send({c(Cs::kConfigureBitTiming), 0, 0});
  expect_answer({0x13, 0, 0, 0, 0, 0, 0, 0});
  send({c(Cs::kActivateBitTiming), 100, 0});  // 100 ms
  expect_silence();                           // not answered
  std::uint32_t bitrate = 0;
  EXPECT_FALSE(slave->transmit_allowed());
  EXPECT_EQ(slave->next_deadline(), now + milliseconds(100));
  advance(milliseconds(100) - 1);
  EXPECT_FALSE(slave->take_bitrate_switch(&bitrate));
  EXPECT_EQ(slave->active_bitrate(), 500'000U);
  // Requests during the switch are ignored.
  send({c(Cs::kInquireNodeId)});
  expect_silence();
  advance(1);
  EXPECT_TRUE(slave->take_bitrate_switch(&bitrate));
  EXPECT_EQ(bitrate, 1'000'000U);
  EXPECT_FALSE(slave->take_bitrate_switch(&bitrate));
  EXPECT_EQ(slave->active_bitrate(), 1'000'000U);
  EXPECT_FALSE(slave->transmit_allowed());
  advance(milliseconds(100) - 1);
  EXPECT_FALSE(slave->transmit_allowed());
  advance(1);
  EXPECT_TRUE(slave->transmit_allowed());
  EXPECT_EQ(slave->next_deadline(), ~Micros{0});
  send({c(Cs::kInquireNodeId)});
  expect_answer({0x5E, 0xFF, 0, 0, 0, 0, 0, 0});
}

TEST_F(LssSlaveTest, ActivateBitTimingWithoutDelaySwitchesAtOnce) {
  switch_global(lss::Mode::kConfiguration);
  send({c(Cs::kActivateBitTiming), 0, 0});
  std::uint32_t bitrate = 0;
  EXPECT_TRUE(slave->take_bitrate_switch(&bitrate));
  EXPECT_EQ(bitrate, 500'000U);  // nothing configured: the active rate again
  EXPECT_TRUE(slave->transmit_allowed());
}

TEST_F(LssSlaveTest, StoreConfigurationAnswersWhenTheStoreHasFinished) {
  switch_global(lss::Mode::kConfiguration);
  send({c(Cs::kConfigureNodeId), 33});
  send({c(Cs::kConfigureBitTiming), 0, 3});
  frames.frames.clear();
  send({c(Cs::kStoreConfiguration)});
  EXPECT_EQ(storage.begins, 1);
  EXPECT_EQ(storage.stored_node_id, 33);
  EXPECT_EQ(storage.stored_bitrate, 250'000U);
  EXPECT_TRUE(slave->store_in_progress());
  EXPECT_LE(slave->next_deadline(), now + 100);
  expect_silence();
  // Requests while storing are not served (the store's answer comes first).
  send({c(Cs::kInquireNodeId)});
  advance(100);
  expect_silence();
  advance(100);
  advance(100);
  expect_answer({0x17, lss::kSuccess, 0, 0, 0, 0, 0, 0});
  EXPECT_FALSE(slave->store_in_progress());
  // A failing medium.
  storage.result = {lss::kStoreMediaError, 0};
  send({c(Cs::kStoreConfiguration)});
  for (int i = 0; i < 4; ++i) advance(100);
  expect_answer({0x17, lss::kStoreMediaError, 0, 0, 0, 0, 0, 0});
  // Refused at once (flash busy with a download).
  storage.refuse = true;
  send({c(Cs::kStoreConfiguration)});
  expect_answer({0x17, 0xFF, lss::kSpecStoreBusy, 0, 0, 0, 0, 0});
}

TEST_F(LssSlaveTest, StoreConfigurationWithoutStorageIsNotSupported) {
  config.storage = nullptr;
  restart();
  switch_global(lss::Mode::kConfiguration);
  send({c(Cs::kStoreConfiguration)});
  expect_answer({0x17, lss::kStoreNotSupported, 0, 0, 0, 0, 0, 0});
}

TEST_F(LssSlaveTest, InquireIdentity) {
  switch_global(lss::Mode::kConfiguration);
  send({c(Cs::kInquireVendor)});
  expect_answer({0x5A, 0x1B, 0x0A, 0, 0, 0, 0, 0});
  send({c(Cs::kInquireProduct)});
  expect_answer({0x5B, 0x01, 0x40, 0x06, 0x01, 0, 0, 0});
  send({c(Cs::kInquireRevision)});
  expect_answer({0x5C, 0x02, 0x00, 0x01, 0x00, 0, 0, 0});
  send({c(Cs::kInquireSerial)});
  expect_answer({0x5D, 0x78, 0x56, 0x34, 0x12, 0, 0, 0});
}

TEST_F(LssSlaveTest, IdentifyRemoteSlaveInBothStates) {
  identify(kIdentity.revision, kIdentity.revision, kIdentity.serial, kIdentity.serial);
  expect_answer(kIdentifyAnswer);
  identify(0, 0xFFFF'FFFF, 0, 0xFFFF'FFFF);
  expect_answer(kIdentifyAnswer);
  switch_global(lss::Mode::kConfiguration);
  identify(0, kIdentity.revision, kIdentity.serial, 0xFFFF'FFFF);
  expect_answer(kIdentifyAnswer);
}

TEST_F(LssSlaveTest, IdentifyRemoteSlaveMismatchesAreSilent) {
  identify(0, 0xFFFF'FFFF, 0, 0xFFFF'FFFF, kIdentity.vendor_id + 1);
  identify(0, 0xFFFF'FFFF, 0, 0xFFFF'FFFF, kIdentity.vendor_id, 0);
  identify(kIdentity.revision + 1, 0xFFFF'FFFF, 0, 0xFFFF'FFFF);
  identify(0, kIdentity.revision - 1, 0, 0xFFFF'FFFF);
  identify(0, 0xFFFF'FFFF, kIdentity.serial + 1, 0xFFFF'FFFF);
  identify(0, 0xFFFF'FFFF, 0, kIdentity.serial - 1);
  identify(0xFFFF'FFFF, 0, 0, 0xFFFF'FFFF);  // empty range
  expect_silence();
  // Interrupted by another request: starts over, no answer.
  send(request32(Cs::kIdentifyVendor, kIdentity.vendor_id));
  send(request32(Cs::kIdentifyProduct, kIdentity.product_code));
  send(request32(Cs::kIdentifyRevisionLow, 0));
  send({c(Cs::kIdentifyNonConfigured)});
  expect_answer({0x50, 0, 0, 0, 0, 0, 0, 0});
  send(request32(Cs::kIdentifyRevisionHigh, 0xFFFF'FFFF));
  send(request32(Cs::kIdentifySerialLow, 0));
  send(request32(Cs::kIdentifySerialHigh, 0xFFFF'FFFF));
  expect_silence();
  // The last frame alone is not enough either.
  send(request32(Cs::kIdentifySerialHigh, 0xFFFF'FFFF));
  expect_silence();
}

TEST_F(LssSlaveTest, IdentifyNonConfiguredOnlyWithoutNodeId) {
  send({c(Cs::kIdentifyNonConfigured)});
  expect_answer({0x50, 0, 0, 0, 0, 0, 0, 0});
  switch_global(lss::Mode::kConfiguration);
  send({c(Cs::kIdentifyNonConfigured)});
  expect_answer({0x50, 0, 0, 0, 0, 0, 0, 0});
  send({c(Cs::kConfigureNodeId), 5});
  expect_answer({0x11, 0, 0, 0, 0, 0, 0, 0});
  send({c(Cs::kIdentifyNonConfigured)});  // a node-ID is pending: no longer non-configured
  expect_silence();
  config.node_id = 5;
  restart();
  send({c(Cs::kIdentifyNonConfigured)});
  expect_silence();
}

TEST_F(LssSlaveTest, FastscanFindsTheSlaveBitByBit) {
  fastscan(0, lss::kFastscanConfirm, 0, 0);
  expect_answer(kIdentifyAnswer);
  const std::uint32_t parts[4] = {kIdentity.vendor_id, kIdentity.product_code, kIdentity.revision,
                                  kIdentity.serial};
  for (std::uint8_t sub = 0; sub < 4; ++sub) {
    std::uint32_t found = 0;
    for (int bit = 31; bit >= 0; --bit) {
      // Ask whether the bit is 0; no answer means it is 1.
      fastscan(found, static_cast<std::uint8_t>(bit), sub, sub);
      if (frames.empty()) found |= 1U << bit;
      frames.frames.clear();
    }
    EXPECT_EQ(found, parts[sub]);
    const auto next = static_cast<std::uint8_t>((sub + 1) % 4);
    fastscan(found, 0, sub, next);  // confirm the part, go on with the next
    expect_answer(kIdentifyAnswer);
    EXPECT_EQ(slave->mode(), sub == 3 ? lss::Mode::kConfiguration : lss::Mode::kWaiting);
  }
  // Selected: the configuration services answer now, Fastscan no longer does.
  send({c(Cs::kInquireSerial)});
  expect_answer({0x5D, 0x78, 0x56, 0x34, 0x12, 0, 0, 0});
  fastscan(0, lss::kFastscanConfirm, 0, 0);
  expect_silence();
}

TEST_F(LssSlaveTest, FastscanBadInputAndWrongPositionAreSilent) {
  fastscan(0, lss::kFastscanConfirm, 0, 0);
  expect_answer(kIdentifyAnswer);
  fastscan(kIdentity.vendor_id, 32, 0, 0);  // BitChecked out of range
  fastscan(kIdentity.vendor_id, 0x7F, 0, 0);
  fastscan(kIdentity.vendor_id, 0, 4, 0);      // LSSSub out of range
  fastscan(kIdentity.vendor_id, 0, 0, 4);      // LSSNext out of range
  fastscan(kIdentity.product_code, 0, 1, 2);   // the slave is still at the vendor-ID
  fastscan(kIdentity.vendor_id ^ 1, 0, 0, 1);  // last bit differs
  expect_silence();
  fastscan(kIdentity.vendor_id ^ 1, 1, 0, 0);  // bit 0 not checked: matches
  expect_answer(kIdentifyAnswer);
  // A confirm starts over at the vendor-ID.
  fastscan(kIdentity.vendor_id, 0, 0, 1);
  expect_answer(kIdentifyAnswer);
  fastscan(0, lss::kFastscanConfirm, 0, 0);
  expect_answer(kIdentifyAnswer);
  fastscan(kIdentity.product_code, 0, 1, 2);
  expect_silence();
}

TEST_F(LssSlaveTest, FastscanIgnoredByConfiguredSlaves) {
  config.node_id = 12;
  restart();
  fastscan(0, lss::kFastscanConfirm, 0, 0);
  fastscan(kIdentity.vendor_id, 0, 0, 1);
  expect_silence();
}

// Several slaves on one bus: they all see every request and answer with identical frames, which
// CAN merges into one (same identifier and data: no arbitration loss, one frame on the wire).
// A Fastscan over the merged answers separates them one by one.
TEST(LssSlavesOnOneBus, FastscanSeparatesSlavesAnsweringAtOnce) {
  RecordingFrameSink frames;
  std::vector<std::unique_ptr<LssSlave>> slaves;
  const std::uint32_t serials[] = {0x1000'0001, 0x1000'0003, 0x9000'0001, 0x1000'0002};
  for (std::uint32_t serial : serials) {
    LssConfig config;
    config.identity = kIdentity;
    config.identity.serial = serial;
    slaves.push_back(std::make_unique<LssSlave>(frames, config));
  }
  // One bus transaction: every slave gets the request; true when anyone answered. All answers
  // must be the same frame.
  auto exchange = [&](const Bytes8& data) {
    for (auto& slave : slaves) slave->on_frame(make_frame(lss::kMasterCobId, data), 0);
    if (frames.empty()) return false;
    const Bytes8 first = payload(frames.frames.front());
    for (const CanFrame& frame : frames.frames) EXPECT_EQ(payload(frame), first);
    frames.frames.clear();
    return true;
  };
  auto fastscan = [&](std::uint32_t id, std::uint8_t bit, std::uint8_t sub, std::uint8_t next) {
    return exchange({c(Cs::kFastscan), b(id, 0), b(id, 1), b(id, 2), b(id, 3), bit, sub, next});
  };

  std::vector<std::uint32_t> found_serials;
  for (int round = 0; round < 10 && fastscan(0, lss::kFastscanConfirm, 0, 0); ++round) {
    // Check the two answered-at-once case: all unconfigured slaves answered the confirm.
    std::uint32_t parts[4] = {};
    for (std::uint8_t sub = 0; sub < 4; ++sub) {
      for (int bit = 31; bit >= 0; --bit) {
        if (!fastscan(parts[sub], static_cast<std::uint8_t>(bit), sub, sub)) {
          parts[sub] |= 1U << bit;
        }
      }
      ASSERT_TRUE(fastscan(parts[sub], 0, sub, static_cast<std::uint8_t>((sub + 1) % 4)));
    }
    found_serials.push_back(parts[3]);
    EXPECT_EQ(parts[0], kIdentity.vendor_id);
    // Exactly one slave is in the configuration state: give it a node-ID, send it back.
    int selected = 0;
    for (auto& slave : slaves) selected += slave->mode() == lss::Mode::kConfiguration ? 1 : 0;
    ASSERT_EQ(selected, 1);
    ASSERT_TRUE(exchange({c(Cs::kConfigureNodeId), static_cast<std::uint8_t>(10 + round)}));
    EXPECT_FALSE(exchange({c(Cs::kSwitchGlobal), 0}));
    for (auto& slave : slaves) {
      if (slave->take_reset_communication_request()) slave->reset_communication();
    }
  }
  // Lowest serial first, each exactly once.
  EXPECT_EQ(found_serials,
            (std::vector<std::uint32_t>{0x1000'0001, 0x1000'0002, 0x1000'0003, 0x9000'0001}));
  for (std::size_t i = 0; i < slaves.size(); ++i) EXPECT_TRUE(slaves[i]->configured());
}

}  // namespace
}  // namespace rtcanboot::test
