// Changing the provisioning record over CAN (0x5F05, docs/security.md "Changing the provisioning
// record"): host/lib/src/configure.cpp against the real core Bootloader on a simulated bus, with
// requests signed by OpenSSL. Without a key any well-formed request for this device and record
// is taken; with a key (built in or provisioned) only one signed by a held key, and each refusal
// leaves the stored record as it was. The same through the built programs and the firmware in
// the twin: tests/e2e/cli_configure.sh.
#include "rtcanboot/host/configure.hpp"

#include <gtest/gtest.h>

#include <memory>

#include "rtcanboot/bytes.hpp"
#include "rtcanboot/ed25519.hpp"
#include "rtcanboot/hash.hpp"
#include "rtcanboot/memory_map.hpp"
#include "sim_nodes.hpp"

namespace rtcanboot::host {
namespace {

using test::SimBoard;
namespace mm = memory_map;
namespace od = canopen::od;
namespace pr = provisioning_request;
using State = canopen::ProvisioningRequestState;

constexpr std::uint32_t kVendor = 0x0000'1234;
constexpr std::uint32_t kProduct = 0x0000'0042;
constexpr std::uint32_t kSerial = 0x00C0'FFEE;

class ConfigureTest : public ::testing::Test {
 protected:
  SimBoard& add(std::uint8_t node, const KeyRecord* key = nullptr) {
    BootloaderSettings s;
    s.key_record = key;
    s.identity = {kVendor, kProduct, 1, kSerial};
    s.provisioning.node_id = node;
    s.heartbeat_ms = 200;
    boards.push_back(std::make_unique<SimBoard>(bus, s));
    return *boards.back();
  }
  static KeyRecord key_record(const signing::PrivateKey& key) {
    KeyRecord record;
    const signing::PublicKey pub = key.public_key();
    std::copy(pub.begin(), pub.end(), record.public_key);
    return record;
  }
  // The stored provisioning log, both sectors.
  std::vector<std::uint8_t> records(const SimBoard& board) const {
    const auto begin = board.flash.mem.begin() + mm::kProvisioningOffset;
    return {begin, begin + mm::kProvisioningSectors * mm::kSectorSize};
  }
  // A request for `node`'s record in force, changing the node-ID to `new_id`.
  pr::Request request_for(std::uint8_t node, std::uint8_t new_id) {
    const NodeProvisioning now = read_node_provisioning(*master, node);
    pr::Request request;
    request.vendor_id = now.identity.vendor_id;
    request.product_code = now.identity.product_code;
    request.serial = now.identity.serial;
    request.sequence = now.sequence;
    request.settings = now.record;
    request.settings.node_id = new_id;
    return request;
  }
  // Writes raw request bytes; the abort code (0: taken).
  std::uint32_t send(std::uint8_t node, const std::vector<std::uint8_t>& bytes) {
    try {
      master->download(node, od::kProvisioning, 2, bytes, SdoMode::kSegmented);
    } catch (const SdoError& e) {
      return e.abort_code();
    }
    return 0;
  }
  State state(std::uint8_t node) {
    return static_cast<State>(master->upload_u8(node, od::kProvisioning, 3));
  }
  void reset(std::uint8_t node) {
    master->nmt(canopen::NmtCommand::kResetNode, node);
    master->listen_until(master->now() + 300'000);
  }

  SimBus bus{1'000'000};
  std::vector<std::unique_ptr<SimBoard>> boards;
  std::unique_ptr<Master> master = std::make_unique<Master>(bus);
};

TEST_F(ConfigureTest, AKeylessNodeTakesARequestAndUsesItFromItsNextReset) {
  SimBoard& board = add(5);
  const NodeProvisioning before = read_node_provisioning(*master, 5);
  EXPECT_EQ(before.sequence, 0U);  // nothing stored: the settings it was made with
  EXPECT_EQ(before.record.node_id, 5);
  EXPECT_EQ(before.identity.serial, kSerial);

  ProvisioningChanges changes;
  parse_provisioning_setting("node-id=9", changes);
  parse_provisioning_setting("hold-limit=30", changes);
  parse_provisioning_setting("listen-window=200", changes);
  parse_provisioning_setting("bitrate=250000", changes);
  const ConfigureResult r = configure_node(*master, 5, changes, nullptr);
  EXPECT_TRUE(r.changed);
  EXPECT_EQ(r.after.node_id, 9);
  EXPECT_EQ(r.after.hold_limit_s, 30);
  EXPECT_EQ(r.after.listen_window_ms, 200);
  EXPECT_EQ(r.after.bitrate, 250'000U);
  EXPECT_EQ(r.after.serial, 0U);  // the serial is not the request's to change
  EXPECT_EQ(state(5), State::kStored);
  EXPECT_EQ(board.bootloader()->node_id(), 5) << "in force only from the next reset";

  reset(5);
  ASSERT_NE(board.bootloader(), nullptr);
  EXPECT_EQ(board.bootloader()->node_id(), 9);
  EXPECT_TRUE(master->boot_ups().count(9));
  const NodeProvisioning after = read_node_provisioning(*master, 9);
  EXPECT_EQ(after.sequence, 1U);
  EXPECT_EQ(after.record.hold_limit_s, 30);
  EXPECT_EQ(state(9), State::kNone);  // a new start: no request yet
}

// With a built-in key, every refusal has its own state and abort code, and the stored record
// stays byte for byte; a signed request is taken once: replaying it is refused.
TEST_F(ConfigureTest, WithAKeyOnlyASignedRequestForThisDeviceAndRecordIsTaken) {
  const signing::PrivateKey key = signing::PrivateKey::generate();
  const signing::PrivateKey other = signing::PrivateKey::generate();
  const KeyRecord record = key_record(key);
  SimBoard& board = add(5, &record);
  const std::vector<std::uint8_t> stored = records(board);

  ProvisioningChanges changes;
  parse_provisioning_setting("node-id=9", changes);
  try {
    configure_node(*master, 5, changes, nullptr);
    ADD_FAILURE() << "unsigned request taken";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kRejected);
    EXPECT_NE(std::string(e.what()).find("sign the request with --key"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(state(5), State::kNotSigned);
  try {
    configure_node(*master, 5, changes, &other);
    ADD_FAILURE() << "request by another key taken";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kRejected);
    EXPECT_NE(std::string(e.what()).find("a key the node does not hold"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(state(5), State::kUnknownKey);

  const std::uint32_t cannot_store = static_cast<std::uint32_t>(canopen::Abort::kCannotStore);
  std::vector<std::uint8_t> bad = make_provisioning_request(request_for(5, 9), &key);
  bad.back() ^= 0x01;  // S changed
  EXPECT_EQ(send(5, bad), cannot_store);
  EXPECT_EQ(state(5), State::kBadSignature);
  std::vector<std::uint8_t> other_bytes = make_provisioning_request(request_for(5, 9), &key);
  other_bytes[0x18] = 10;  // the signed node-ID changed after signing
  EXPECT_EQ(send(5, other_bytes), cannot_store);
  EXPECT_EQ(state(5), State::kBadSignature);

  pr::Request elsewhere = request_for(5, 9);
  elsewhere.serial = kSerial + 1;  // signed for a sibling device
  EXPECT_EQ(send(5, make_provisioning_request(elsewhere, &key)), cannot_store);
  EXPECT_EQ(state(5), State::kOtherDevice);
  pr::Request other_product = request_for(5, 9);
  other_product.product_code = kProduct + 1;
  EXPECT_EQ(send(5, make_provisioning_request(other_product, &key)), cannot_store);
  EXPECT_EQ(state(5), State::kOtherDevice);

  std::vector<std::uint8_t> malformed = make_provisioning_request(request_for(5, 9), &key);
  malformed[0x26] = 1;  // a reserved byte
  EXPECT_EQ(send(5, malformed), static_cast<std::uint32_t>(canopen::Abort::kValueRange));
  EXPECT_EQ(state(5), State::kMalformed);
  std::vector<std::uint8_t> truncated = make_provisioning_request(request_for(5, 9), &key);
  truncated.resize(truncated.size() - 1);
  EXPECT_EQ(send(5, truncated), static_cast<std::uint32_t>(canopen::Abort::kValueRange));
  EXPECT_EQ(records(board), stored) << "a refused request wrote something";

  const std::vector<std::uint8_t> good = make_provisioning_request(request_for(5, 9), &key);
  EXPECT_EQ(send(5, good), 0U);
  master->listen_until(master->now() + 50'000);
  EXPECT_EQ(state(5), State::kStored);
  const std::vector<std::uint8_t> changed = records(board);
  EXPECT_NE(changed, stored);
  EXPECT_EQ(send(5, good), cannot_store) << "a replayed request was taken";
  EXPECT_EQ(state(5), State::kStaleSequence);
  EXPECT_EQ(records(board), changed);

  reset(5);
  EXPECT_EQ(board.bootloader()->node_id(), 9);
  // Replayed after the reset, it still names the record before: refused.
  EXPECT_EQ(send(9, good), cannot_store);
  EXPECT_EQ(state(9), State::kStaleSequence);
  // The vendor's next change names the new record.
  ProvisioningChanges back;
  parse_provisioning_setting("node-id=5", back);
  parse_provisioning_setting("hold-limit=10", back);
  const ConfigureResult r = configure_node(*master, 9, back, &key);
  EXPECT_EQ(r.before.sequence, 1U);
  EXPECT_EQ(r.after.node_id, 5);
  EXPECT_EQ(r.after.hold_limit_s, 10);
}

// Keys provisioned over CAN (0x5F03) lock the record the same way as a built-in key.
TEST_F(ConfigureTest, ProvisionedKeysAskForASignedRequestToo) {
  const signing::PrivateKey key = signing::PrivateKey::generate();
  add(5);
  const signing::PublicKey pub = key.public_key();
  std::vector<std::uint8_t> hash(32);
  SoftwareSha256 sha;
  sha.reset();
  sha.update(pub.data(), pub.size());
  sha.finish(hash.data());
  master->download(5, od::kSigningKeys, 2, hash, SdoMode::kSegmented);
  master->listen_until(master->now() + 50'000);
  ASSERT_EQ(master->upload_u8(5, od::kSigningKeys, 1),
            static_cast<std::uint8_t>(canopen::KeyState::kProvisioned));

  ProvisioningChanges changes;
  parse_provisioning_setting("boot-window=2000", changes);
  EXPECT_THROW(configure_node(*master, 5, changes, nullptr), Error);
  EXPECT_EQ(state(5), State::kNotSigned);
  const ConfigureResult r = configure_node(*master, 5, changes, &key);
  EXPECT_EQ(r.after.boot_window_ms, 2000U);
}

// The request's settings are checked like a provisioning record's; the command line's parser
// says what is wrong before the bus is touched.
TEST(ProvisioningSettings, BadSettingsAreUsageErrorsThatSayWhy) {
  const std::pair<const char*, const char*> cases[] = {
      {"node-id=0", "1 to 127"},
      {"node-id=128", "1 to 127"},
      {"bitrate=300000", "CiA 301 rate"},
      {"listen-window=60001", "not a number from 0 to 60000"},
      {"boot-attempts=255", "not a number from 0 to 254"},
      {"hold-limit=256", "not a number from 0 to 255"},
      {"hold-limit=", "not a number"},
      {"start-after-lss=yes", "on or off"},
      {"speed=1", "unknown setting"},
      {"node-id", "NAME=VALUE"},
  };
  for (const auto& [text, why] : cases) {
    ProvisioningChanges changes;
    try {
      parse_provisioning_setting(text, changes);
      ADD_FAILURE() << text << " accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kUsage) << text;
      EXPECT_NE(std::string(e.what()).find(why), std::string::npos) << text << ": " << e.what();
    }
  }
  ProvisioningChanges changes;
  parse_provisioning_setting("listen-window=off", changes);
  parse_provisioning_setting("boot-attempts=off", changes);
  parse_provisioning_setting("node-id=unconfigured", changes);
  EXPECT_EQ(changes.listen_window_ms, 0);
  EXPECT_EQ(changes.boot_attempts, 0);
  EXPECT_EQ(changes.node_id, lss::kUnconfigured);
}

// The request's bytes: the layout of docs/security.md, and a signature OpenSSL made over the
// domain string and the body, which the firmware's verifier takes.
TEST(ProvisioningRequestBytes, LayoutAndSignature) {
  const signing::PrivateKey key = signing::PrivateKey::generate();
  pr::Request request;
  request.vendor_id = kVendor;
  request.product_code = kProduct;
  request.serial = kSerial;
  request.sequence = 7;
  request.settings.node_id = 12;
  request.settings.bitrate = 500'000;
  request.settings.hold_limit_s = 90;
  const std::vector<std::uint8_t> bytes = make_provisioning_request(request, &key);
  ASSERT_EQ(bytes.size(), pr::kSignedSize);
  EXPECT_EQ(std::string(bytes.begin(), bytes.begin() + 4), "RTCQ");
  EXPECT_EQ(load_le32(bytes.data() + 0x10), kSerial);
  EXPECT_EQ(load_le32(bytes.data() + 0x14), 7U);
  EXPECT_EQ(bytes[0x18], 12);
  EXPECT_EQ(bytes[0x1B], 90);
  EXPECT_EQ(load_le32(bytes.data() + 0x1C), 500'000U);
  pr::Request decoded;
  ASSERT_TRUE(pr::decode(bytes.data(), bytes.size(), decoded));
  EXPECT_TRUE(decoded.is_signed);
  std::uint8_t message[pr::kMessageSize];
  pr::signed_message(bytes.data(), message);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(message)), "RTCB-PROVISION-1");
  EXPECT_EQ(ed25519::verify(decoded.signature, decoded.public_key, message, sizeof message),
            ed25519::Verdict::kValid);
  EXPECT_EQ(make_provisioning_request(request, nullptr).size(), pr::kBodySize);
}

}  // namespace
}  // namespace rtcanboot::host
