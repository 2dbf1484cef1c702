// Fleet update (`rtcanboot flash --nodes ...`, docs/fleet-update.md): one image into many nodes
// of one product on one bus. The listen-along flow downloads the container to one node (the lead)
// while every other node follows the lead's SDO channel from the bus (0x5F04), then checks every
// follower and repairs what it missed with a unicast sparse update. The unicast flows (concurrent
// downloads like Lely's concurrent boot processes, or one node after another) serve nodes that
// cannot follow and are the benchmark's baselines.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "rtcanboot/host/error.hpp"
#include "rtcanboot/host/image.hpp"
#include "rtcanboot/host/master.hpp"
#include "rtcanboot/host/update.hpp"

namespace rtcanboot::host {

enum class FleetMode : std::uint8_t {
  kListenAlong,  // one download on the bus, the others follow it (default)
  kUnicast,      // a whole download to every node, all at the same time (interleaved on the bus)
  kSequential,   // run_update for one node after the other
};
const char* to_string(FleetMode mode);

struct FleetOptions {
  std::vector<std::uint8_t> nodes;  // the targets; the first that can lead leads
  FleetMode mode = FleetMode::kListenAlong;
  // Per-node settings (start, force, force_product, vendor/product, timeouts ...); `node` is
  // ignored. A fleet download is never compressed: a gap in a compressed stream loses the rest
  // of it at that follower (docs/fleet-update.md); repairs are compressed when `compress`.
  UpdateOptions update;
  int lead_attempts = 3;  // leads tried in turn when a lead stops answering
  // A node's unicast update that stalls (a timeout) is tried again while each attempt has less
  // to send than the ones before; it fails after this many stalls in a row without that.
  int repair_attempts = 3;
};

enum class FleetNodeState : std::uint8_t {
  kWaiting,    // not reached yet
  kPreparing,  // identity, stop into the bootloader
  kLead,       // receiving the download
  kFollowing,  // following the lead's download from the bus
  kUnicast,    // receiving its own download
  kChecking,   // flash status, software id
  kRepairing,  // receiving a sparse update of what it missed
  kStarting,   // starting the application, waiting for its confirmation
  kDone,       // runs (or holds, with --no-start) the new image
  kSkipped,    // already held the image (0x1F56), nothing sent
  kFailed,
};
const char* to_string(FleetNodeState state);

struct FleetNodeResult {
  std::uint8_t node = 0;
  FleetNodeState state = FleetNodeState::kWaiting;
  std::string role;         // "lead", "follower", "unicast" (empty before the download)
  std::uint64_t bytes = 0;  // container bytes this node received (stream and repairs)
  std::uint64_t total = 0;  // bytes of the stream it took part in
  std::optional<std::uint8_t> follow_state;  // 0x5F04:4 after the stream (ListenAlongState)
  std::uint32_t gap_bytes = 0;               // 0x5F04:5 after the stream
  std::uint32_t repairs = 0;                 // unicast updates after the stream
  std::uint32_t repair_sectors = 0;          // 4 KiB sectors they carried (a whole image: all)
  std::uint32_t patched_bytes = 0;           // gap bytes a patch container repaired (no erase)
  std::uint32_t software_id = 0;             // 0x1F56 at the end
  bool started = false;
  bool confirmed = false;
  std::optional<ErrorKind> error;  // set when state == kFailed
  std::string message;             // why it failed, or the last step
};

struct FleetResult {
  std::vector<FleetNodeResult> nodes;
  std::vector<std::uint8_t> leads;  // every node that led a download, in order
  std::uint32_t expected_id = 0;    // the image's CRC-32 (0x1F56)
  std::uint64_t container_bytes = 0;
  Micros time = 0;  // from the first request to the last node done
  bool ok() const;
  // 0 when every node runs (or holds) the new image; otherwise the exit code of the worst
  // failure (docs/host-tool.md, fleet update): bus and internal errors first, then the node
  // failures that leave a node furthest from the new image.
  int exit_code() const;
};

struct FleetEvents {
  std::function<void(const std::string&)> step;
  // Called whenever a node's row changes (state, bytes): the progress table.
  std::function<void(const std::vector<FleetNodeResult>&)> changed;
  // Test hook: called with the lead and the bytes it confirmed during every lead download.
  std::function<void(std::uint8_t lead, std::uint64_t done, std::uint64_t total)> lead_progress;
};

// Runs the flow. Failures of single nodes are reported in the result, never thrown; a bus
// failure or an interruption (Error kBus, kInterrupted) is thrown.
FleetResult run_fleet_update(Master& master, const LoadedInput& input, const FleetOptions& options,
                             const FleetEvents& events = {});

// The progress table: a header line and one line per node (state, bytes, repairs, last news).
std::string format_fleet_table(const std::vector<FleetNodeResult>& nodes);
// The summary after the run: one line per node that failed and why, then the totals.
std::string format_fleet_summary(const FleetResult& result);
// `flash --json`: the whole result, one object (docs/host-tool.md).
std::string fleet_json(const FleetResult& result, FleetMode mode);

// "10-17", "3,5,9", "3,10-12": node-IDs 1..127, each once, in the order given.
// Throws Error(kUsage) with what is wrong.
std::vector<std::uint8_t> parse_node_list(const std::string& text);

}  // namespace rtcanboot::host
