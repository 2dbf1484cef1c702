// A CiA 305 LSS master on top of a Transport: switch state, configure node-ID and bit timing,
// activate, store, inquire, identify and Fastscan, plus the two flows the CLI offers (list every
// unconfigured node; number them all). Time comes from the transport's clock, so the same code
// runs on a real bus and in virtual time (twin, benchmarks). docs/host-tool.md describes the
// commands built on it.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "rtcanboot/host/transport.hpp"
#include "rtcanboot/lss.hpp"
#include "rtcanboot/node_config.hpp"

namespace rtcanboot::host {

struct LssOptions {
  // How long to wait for an answer. A Fastscan step without an answer always costs this long,
  // so it sets the scan time; it must cover two frames at the bus's bit rate plus the slaves'
  // reaction (20 ms is enough from 50 kbit/s up; 10 and 20 kbit/s need about 40 ms).
  Micros timeout = 20'000;
  // After the first answer, how long further identical answers (other slaves) are awaited and
  // dropped before the next request.
  Micros settle = 3'000;
  // Store configuration writes flash: the slaves may take this long to answer.
  Micros store_timeout = 1'000'000;
};

// Identity parts a Fastscan does not need to search bit by bit (known from the product).
struct FastscanHint {
  std::optional<std::uint32_t> vendor_id;
  std::optional<std::uint32_t> product_code;
  std::optional<std::uint32_t> revision;
};

struct LssAnswer {
  std::uint8_t code = 0;
  std::uint8_t spec = 0;
};

std::string describe_lss_error(lss::Cs service, std::uint8_t code, std::uint8_t spec);

class LssMaster {
 public:
  explicit LssMaster(Transport& transport, LssOptions options = {});
  LssOptions& options() { return options_; }
  Micros now() const { return transport_.clock().now(); }

  // --- single services (CiA 305)
  void switch_global(lss::Mode mode);
  // True when a slave with exactly this identity answered (it is now in configuration state).
  bool switch_selective(const NodeIdentity& identity);
  // The answer of the one slave in configuration state. Throws Error(kNoNode) without one.
  LssAnswer configure_node_id(std::uint8_t node_id);
  LssAnswer configure_bit_timing(std::uint8_t table_index);
  // Every answer that arrives within the timeout (all slaves in configuration state answer).
  std::vector<LssAnswer> configure_bit_timing_all(std::uint8_t table_index);
  std::vector<LssAnswer> store_configuration_all();
  LssAnswer store_configuration();
  void activate_bit_timing(std::uint16_t switch_delay_ms);
  std::uint32_t inquire(lss::Cs what);  // kInquireVendor .. kInquireSerial
  std::uint8_t inquire_node_id();
  NodeIdentity inquire_identity();
  // Identify remote slave: true when any slave in the ranges answered.
  bool identify(std::uint32_t vendor_id, std::uint32_t product_code, std::uint32_t revision_low,
                std::uint32_t revision_high, std::uint32_t serial_low, std::uint32_t serial_high);
  bool identify_non_configured();

  // --- Fastscan
  // Finds the unconfigured slave with the lowest identity among those in waiting state and
  // leaves it in configuration state; nullopt when there is none.
  std::optional<NodeIdentity> fastscan(const FastscanHint& hint = {});
  // Statistics of the Fastscan requests sent so far.
  std::uint64_t fastscan_requests() const { return fastscan_requests_; }
  std::uint64_t fastscan_timeouts() const { return fastscan_timeouts_; }

  // Every unconfigured slave, lowest identity first. Each found slave is kept in configuration
  // state (out of the next scan) and all are switched back to waiting at the end, unchanged.
  std::vector<NodeIdentity> scan(const FastscanHint& hint = {},
                                 const std::function<void(const NodeIdentity&)>& found = {});

  struct Assignment {
    NodeIdentity identity;
    std::uint8_t node_id = 0;
    bool stored = false;
  };
  // Numbers every unconfigured slave from `first_node` on (lowest identity first): Fastscan,
  // configure node-ID, optionally store, then back to waiting, where the slave boots up with
  // its node-ID. Throws Error(kRejected) when a slave refuses its node-ID or its store.
  std::vector<Assignment> auto_assign(std::uint8_t first_node, bool store,
                                      const FastscanHint& hint = {},
                                      const std::function<void(const Assignment&)>& done = {});

 private:
  void send(lss::Cs cs, const std::uint8_t* data7);
  void send(lss::Cs cs, std::uint32_t value);
  // Waits for answers with specifier `cs` until `timeout` passes; unless `all`, stops `settle`
  // after the first one.
  std::vector<CanFrame> collect(lss::Cs cs, Micros timeout, bool all);
  bool fastscan_step(std::uint32_t id, std::uint8_t bit, std::uint8_t sub, std::uint8_t next);
  LssAnswer one_answer(lss::Cs cs, Micros timeout);

  Transport& transport_;
  LssOptions options_;
  std::uint64_t fastscan_requests_ = 0;
  std::uint64_t fastscan_timeouts_ = 0;
};

}  // namespace rtcanboot::host
