// Finding the nodes on a bus (`rtcanboot scan`): heartbeats and boot-ups heard while listening,
// and an SDO probe (upload of 0x1000) of every node-ID.
//
// The timing follows the bus: probes leave one by one at the pace the bus carries them (80 % of
// its capacity, so heartbeats and answers find gaps), and each probe's timeout counts from its
// transmission (the time to send it and to receive the answer at the bit rate is added to
// ScanOptions::probe_timeout). The bit rate is ScanOptions::bitrate, else the transport's, else
// the slowest CiA 301 rate (10 kbit/s), so that no probe is cut short on a slow bus.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "rtcanboot/host/master.hpp"

namespace rtcanboot::host {

struct ScanOptions {
  Micros listen = 1'500'000;       // listen at least this long from the start (heartbeats)
  Micros probe_timeout = 100'000;  // a node's answer time, on top of the frames' bus time
  bool probe = true;               // false: only listen, send nothing
  std::uint32_t bitrate = 0;       // 0: the transport's, else 10 kbit/s
  std::uint8_t first = 1;
  std::uint8_t last = canopen::kMaxNodeId;
};

struct ScanNode {
  std::uint8_t node = 0;
  bool sdo = false;                          // answered the probe (data or abort)
  std::optional<std::uint32_t> device_type;  // 0x1000, when it answered with data
  std::optional<HeartbeatInfo> heartbeat;    // last heartbeat/boot-up heard
  std::optional<std::uint32_t> vendor_id, product_code;
  std::optional<std::uint8_t> running;  // 0x5F00:1 of an rtcanboot node
};

struct ScanTiming {
  std::uint32_t bitrate = 0;     // the rate the timing was sized for
  bool bitrate_assumed = false;  // neither the options nor the transport knew it
  Micros probe_spacing = 0;      // time between two probes
  Micros probe_timeout = 0;      // per probe, from handing it to the transport
};

// The timing scan() uses for these options on this transport.
ScanTiming scan_timing(const ScanOptions& options, const Transport& transport);

// Scans the bus; nodes sorted by node-ID.
std::vector<ScanNode> scan(Master& master, const ScanOptions& options = {});

}  // namespace rtcanboot::host
