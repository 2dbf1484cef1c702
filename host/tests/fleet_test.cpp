// The fleet update (host/lib/src/fleet.cpp, docs/fleet-update.md) against the real core Bootloader
// on a simulated bus (several SimBoards), and its pure helpers: the node list, the exit code of
// the worst failure, the table and the JSON. The same flow with the unmodified firmware in the
// twin and its faults: tests/e2e/fleet_test.cpp.
#include "rtcanboot/host/fleet.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <random>
#include <string_view>

#include "rtcanboot/bytes.hpp"
#include "rtcanboot/hash.hpp"
#include "rtcanboot/host/signing.hpp"
#include "rtcanboot/memory_map.hpp"
#include "sim_nodes.hpp"

namespace rtcanboot::host {
namespace {

using test::SimBoard;
namespace mm = memory_map;

constexpr std::uint32_t kVendor = 0x0000'1234;
constexpr std::uint32_t kProduct = 0x0000'0042;

TEST(NodeList, RangesAndListsInTheOrderGiven) {
  EXPECT_EQ(parse_node_list("10-13"), (std::vector<std::uint8_t>{10, 11, 12, 13}));
  EXPECT_EQ(parse_node_list("3,5,9"), (std::vector<std::uint8_t>{3, 5, 9}));
  EXPECT_EQ(parse_node_list("9,1-2,127"), (std::vector<std::uint8_t>{9, 1, 2, 127}));
  EXPECT_EQ(parse_node_list("7"), (std::vector<std::uint8_t>{7}));
}

TEST(NodeList, BadListsAreUsageErrorsThatSayWhy) {
  const std::pair<const char*, const char*> cases[] = {
      {"", "no node-ID"},        {"0", "outside 1..127"},  {"128", "outside 1..127"},
      {"9-3", "runs backwards"}, {"3,3", "listed twice"},  {"1-5,4", "listed twice"},
      {"a", "not a node-ID"},    {"3,", "not a node-ID"},  {"-3", "not a node-ID"},
      {"3-", "not a node-ID"},   {"1 2", "not a node-ID"}, {"99999999999", "not a node-ID"},
  };
  for (const auto& [text, why] : cases) {
    try {
      parse_node_list(text);
      ADD_FAILURE() << "'" << text << "' accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kUsage) << text;
      EXPECT_NE(std::string(e.what()).find(why), std::string::npos) << text << ": " << e.what();
    }
  }
}

FleetNodeResult failed(std::uint8_t node, ErrorKind kind) {
  FleetNodeResult r;
  r.node = node;
  r.state = FleetNodeState::kFailed;
  r.error = kind;
  return r;
}

TEST(FleetExitCode, ZeroOnlyWhenEveryNodeHoldsTheImageElseTheWorstFailure) {
  FleetResult r;
  FleetNodeResult done;
  done.state = FleetNodeState::kDone;
  FleetNodeResult skipped;
  skipped.state = FleetNodeState::kSkipped;
  r.nodes = {done, skipped};
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.exit_code(), 0);
  r.nodes.push_back(failed(3, ErrorKind::kWrongProduct));
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.exit_code(), 9);
  r.nodes.push_back(failed(4, ErrorKind::kNoNode));
  EXPECT_EQ(r.exit_code(), 5);
  r.nodes.push_back(failed(5, ErrorKind::kNotConfirmed));
  EXPECT_EQ(r.exit_code(), 10);
  r.nodes.push_back(failed(6, ErrorKind::kRejected));
  EXPECT_EQ(r.exit_code(), 7);
  r.nodes.push_back(failed(7, ErrorKind::kTimeout));
  EXPECT_EQ(r.exit_code(), 6);
  // A node left in an unfinished state counts as a failure.
  FleetNodeResult stuck;
  stuck.state = FleetNodeState::kChecking;
  r.nodes.push_back(stuck);
  EXPECT_EQ(r.exit_code(), 1);
}

LoadedInput app_image(std::size_t size) {
  FlatImage img;
  img.address = mm::kAppAddress;
  img.bytes.resize(size);
  for (std::size_t i = 0; i < size; ++i)
    img.bytes[i] = static_cast<std::uint8_t>(i * 13 + (i >> 9));
  store_le32(img.bytes.data(), 0x2002'0000);
  store_le32(img.bytes.data() + 4, mm::kAppAddress + 0x201);
  LoadedInput in;
  in.format = InputFormat::kElf;
  in.image = img;
  return in;
}

class FleetTest : public ::testing::Test {
 protected:
  SimBoard& add(std::uint8_t node, bool can_follow = true, std::uint32_t product = kProduct,
                const KeyRecord* key = nullptr) {
    BootloaderSettings s;
    s.key_record = key;
    s.identity = {kVendor, product, 1, node};
    s.provisioning.node_id = node;
    s.heartbeat_ms = 500;
    s.listen_along = can_follow;
    boards.push_back(std::make_unique<SimBoard>(bus, s));
    return *boards.back();
  }
  FleetResult run_recording_steps(const LoadedInput& in, const FleetOptions& o,
                                  std::vector<std::string>& steps) {
    FleetEvents ev;
    ev.step = [&](const std::string& s) { steps.push_back(s); };
    return run_fleet_update(*master, in, o, ev);
  }
  const FleetNodeResult& row(const FleetResult& r, std::uint8_t node) {
    for (const auto& n : r.nodes) {
      if (n.node == node) return n;
    }
    throw std::runtime_error("no row");
  }

  SimBus bus{1'000'000};
  std::vector<std::unique_ptr<SimBoard>> boards;
  std::unique_ptr<Master> master = std::make_unique<Master>(bus);
};

TEST_F(FleetTest, OneStreamFollowedByEveryNodeThatCanFollowTheRestByUnicast) {
  add(7);
  add(8);
  add(9);
  add(10, /*can_follow=*/false);
  add(11, true, /*product=*/0x99);
  const LoadedInput in = app_image(40'000);
  const std::uint32_t crc = crc32(0, in.image->bytes.data(), in.image->bytes.size());
  FleetOptions o;
  o.nodes = {7, 8, 9, 10, 11, 12};  // 12 does not exist
  o.update.reboot_window = 300'000;
  std::vector<std::string> steps;
  FleetEvents ev;
  ev.step = [&](const std::string& s) { steps.push_back(s); };
  const FleetResult r = run_fleet_update(*master, in, o, ev);
  SCOPED_TRACE(format_fleet_table(r.nodes));
  EXPECT_EQ(r.leads, std::vector<std::uint8_t>{7});
  EXPECT_EQ(r.expected_id, crc);
  EXPECT_EQ(row(r, 7).role, "lead");
  for (const std::uint8_t f : {8, 9}) {
    EXPECT_EQ(row(r, f).role, "follower");
    EXPECT_EQ(row(r, f).follow_state,
              static_cast<std::uint8_t>(canopen::ListenAlongState::kComplete));
    EXPECT_EQ(row(r, f).repairs, 0U);
  }
  EXPECT_EQ(row(r, 10).role, "unicast");
  EXPECT_EQ(row(r, 10).repairs, 1U);
  for (const std::uint8_t n : {7, 8, 9, 10}) {
    EXPECT_EQ(row(r, n).state, FleetNodeState::kDone) << int{n} << ": " << row(r, n).message;
    EXPECT_EQ(row(r, n).software_id, crc);
    EXPECT_TRUE(row(r, n).started);
    EXPECT_TRUE(boards[n - 7]->app_running()) << int{n};
    EXPECT_TRUE(std::equal(in.image->bytes.begin(), in.image->bytes.end(),
                           boards[n - 7]->flash.mem.begin() + mm::kAppOffset));
  }
  EXPECT_EQ(row(r, 11).error, ErrorKind::kWrongProduct);
  EXPECT_FALSE(boards[4]->app_running());
  EXPECT_EQ(row(r, 12).error, ErrorKind::kNoNode);
  EXPECT_EQ(r.exit_code(), 5);  // no such node ranks before another product (9)

  const std::string json = fleet_json(r, FleetMode::kListenAlong);
  EXPECT_NE(json.find("\"mode\": \"listen-along\""), std::string::npos);
  EXPECT_NE(json.find("\"leads\": [7]"), std::string::npos);
  EXPECT_NE(json.find("\"follow_state_text\": \"complete\""), std::string::npos);
  EXPECT_NE(json.find("\"exit_code\": 9, \"error\": \"wrong product\""), std::string::npos) << json;
  const std::string summary = format_fleet_summary(r);
  EXPECT_NE(summary.find("node 11 failed (exit code 9)"), std::string::npos) << summary;
  EXPECT_NE(summary.find("node 12 failed (exit code 5)"), std::string::npos) << summary;
  EXPECT_NE(summary.find("4 of 6 node(s) hold image"), std::string::npos) << summary;
}

// Signed images are checked on every node by its own bootloader: followers verify the signature
// of the container they follow like the lead does. A node that holds another key refuses it (its
// own 0x1F57 reason in the result); the others install it.
TEST_F(FleetTest, EveryNodeChecksTheSignatureItself) {
  const signing::PrivateKey key = signing::PrivateKey::generate();
  const signing::PrivateKey other = signing::PrivateKey::generate();
  KeyRecord ours;
  KeyRecord theirs;
  const signing::PublicKey ours_public = key.public_key();
  const signing::PublicKey theirs_public = other.public_key();
  std::copy(ours_public.begin(), ours_public.end(), ours.public_key);
  std::copy(theirs_public.begin(), theirs_public.end(), theirs.public_key);
  add(7, true, kProduct, &ours);
  add(8, true, kProduct, &ours);
  add(9, true, kProduct, &theirs);
  PackOptions p;
  p.vendor_id = kVendor;
  p.product_code = kProduct;
  p.sign_with = &key;
  LoadedInput in;
  in.format = InputFormat::kContainer;
  in.container = parse_container(pack(*app_image(20'000).image, p), "signed.rcb");
  FleetOptions o;
  o.nodes = {7, 8, 9};
  const FleetResult r = run_fleet_update(*master, in, o);
  SCOPED_TRACE(format_fleet_table(r.nodes));
  EXPECT_EQ(r.leads, std::vector<std::uint8_t>{7});
  EXPECT_EQ(row(r, 8).follow_state,
            static_cast<std::uint8_t>(canopen::ListenAlongState::kComplete));
  EXPECT_EQ(row(r, 8).repairs, 0U);
  EXPECT_EQ(row(r, 9).follow_state, static_cast<std::uint8_t>(canopen::ListenAlongState::kRefused));
  EXPECT_EQ(row(r, 9).error, ErrorKind::kRejected);
  EXPECT_NE(row(r, 9).message.find("signed by a key the node does not hold"), std::string::npos)
      << row(r, 9).message;
  EXPECT_EQ(r.exit_code(), 7);
  EXPECT_TRUE(boards[0]->app_running());
  EXPECT_TRUE(boards[1]->app_running());
  EXPECT_FALSE(boards[2]->app_running());
}

TEST_F(FleetTest, UnicastModeDownloadsToEveryNodeAtOnce) {
  add(7);
  add(8);
  add(9, /*can_follow=*/false);
  const LoadedInput in = app_image(30'000);
  FleetOptions o;
  o.nodes = {7, 8, 9};
  o.mode = FleetMode::kUnicast;
  o.update.start = false;
  const FleetResult r = run_fleet_update(*master, in, o);
  SCOPED_TRACE(format_fleet_table(r.nodes));
  EXPECT_EQ(r.exit_code(), 0);
  EXPECT_TRUE(r.leads.empty());
  for (const auto& n : r.nodes) {
    EXPECT_EQ(n.role, "unicast");
    EXPECT_EQ(n.repairs, 0U);
    EXPECT_EQ(n.bytes, r.container_bytes);
    EXPECT_FALSE(n.started);
  }
}

// An image that does not compress (the repairs are compressed): the transfers stay long.
LoadedInput random_app_image(std::size_t size) {
  LoadedInput in = app_image(size);
  std::mt19937 rng(1064);
  for (std::size_t i = 8; i < size; ++i) in.image->bytes[i] = static_cast<std::uint8_t>(rng());
  return in;
}

FleetOptions one_node_unicast(std::uint8_t node) {
  FleetOptions o;
  o.nodes = {node};
  o.mode = FleetMode::kUnicast;
  o.update.start = false;
  return o;
}

std::size_t count_containing(const std::vector<std::string>& lines, std::string_view text) {
  return static_cast<std::size_t>(
      std::count_if(lines.begin(), lines.end(),
                    [&](const std::string& l) { return l.find(text) != std::string::npos; }));
}

// A node whose transfers stall again and again, but each time after some progress (here every
// tenth sub-block loses its last segment), is tried again until it holds the image: each attempt
// sends only what the node still misses. Three attempts, the limit before, were not enough.
TEST_F(FleetTest, ANodeWhoseTransfersKeepStallingIsTriedAgainWhileItProgresses) {
  add(7);
  const LoadedInput in = random_app_image(60'000);
  bus.set_fault_hook(test::lose_last_segments(7, 10));
  const FleetOptions o = one_node_unicast(7);
  std::vector<std::string> steps;
  const FleetResult r = run_recording_steps(in, o, steps);
  SCOPED_TRACE(format_fleet_table(r.nodes) + format_fleet_summary(r));
  EXPECT_EQ(r.exit_code(), 0);
  EXPECT_EQ(row(r, 7).state, FleetNodeState::kDone) << row(r, 7).message;
  EXPECT_EQ(row(r, 7).software_id, r.expected_id);
  EXPECT_GE(count_containing(steps, "trying again with what is still missing"),
            static_cast<std::size_t>(o.repair_attempts));
  EXPECT_TRUE(std::equal(in.image->bytes.begin(), in.image->bytes.end(),
                         boards[0]->flash.mem.begin() + mm::kAppOffset));
}

// A node whose transfer stalls at the same place every time (the first sub-block never
// completes) fails after repair_attempts attempts without progress, with a timeout's exit code.
TEST_F(FleetTest, ANodeThatStallsWithoutProgressFailsAfterTheAttemptsWithout) {
  add(7);
  const LoadedInput in = random_app_image(30'000);
  bus.set_fault_hook(test::lose_last_segments(7, 1));
  const FleetOptions o = one_node_unicast(7);
  std::vector<std::string> steps;
  const FleetResult r = run_recording_steps(in, o, steps);
  SCOPED_TRACE(format_fleet_table(r.nodes) + format_fleet_summary(r));
  EXPECT_EQ(row(r, 7).state, FleetNodeState::kFailed);
  EXPECT_EQ(row(r, 7).error, ErrorKind::kTimeout);
  EXPECT_EQ(r.exit_code(), 6);
  // The first attempt (it had everything to send), then repair_attempts more with as much.
  EXPECT_EQ(count_containing(steps, "trying again with what is still missing"),
            static_cast<std::size_t>(o.repair_attempts));
}

}  // namespace
}  // namespace rtcanboot::host
