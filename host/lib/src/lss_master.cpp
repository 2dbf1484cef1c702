#include "rtcanboot/host/lss_master.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "rtcanboot/bytes.hpp"
#include "rtcanboot/host/error.hpp"

namespace rtcanboot::host {

using lss::Cs;

namespace {

constexpr std::uint8_t cs_value(Cs cs) {
  return static_cast<std::uint8_t>(cs);
}

void check_interrupt() {
  if (interrupt_requested()) throw Error(ErrorKind::kInterrupted, "interrupted");
}

void set_part(NodeIdentity& id, std::uint8_t sub, std::uint32_t value) {
  switch (sub) {
    case 0:
      id.vendor_id = value;
      break;
    case 1:
      id.product_code = value;
      break;
    case 2:
      id.revision = value;
      break;
    default:
      id.serial = value;
      break;
  }
}

}  // namespace

std::string describe_lss_error(Cs service, std::uint8_t code, std::uint8_t spec) {
  if (code == lss::kSuccess) return "ok";
  if (code == lss::kImplementationSpecific) {
    if (service == Cs::kStoreConfiguration && spec == lss::kSpecStoreBusy) {
      return "the node's flash is busy with a program download (try again when it is done)";
    }
    return fmt::format("implementation-specific error {}", spec);
  }
  switch (service) {
    case Cs::kConfigureNodeId:
      return code == lss::kNodeIdOutOfRange ? "node-ID out of range (1..127, 255 = none)"
                                            : fmt::format("error {}", code);
    case Cs::kConfigureBitTiming:
      return code == lss::kBitTimingNotSupported ? "bit rate not supported by the node"
                                                 : fmt::format("error {}", code);
    case Cs::kStoreConfiguration:
      if (code == lss::kStoreNotSupported) {
        return "store configuration not supported (an application: store through its bootloader)";
      }
      if (code == lss::kStoreMediaError) return "storage media access error";
      return fmt::format("error {}", code);
    default:
      return fmt::format("error {}", code);
  }
}

LssMaster::LssMaster(Transport& transport, LssOptions options)
    : transport_(transport), options_(options) {}

void LssMaster::send(Cs cs, const std::uint8_t* data7) {
  check_interrupt();
  CanFrame frame;
  frame.id = lss::kMasterCobId;
  frame.dlc = lss::kFrameLength;
  frame.data[0] = cs_value(cs);
  for (int i = 0; i < 7; ++i) frame.data[1 + i] = data7[i];
  transport_.send(frame);
}

void LssMaster::send(Cs cs, std::uint32_t value) {
  std::uint8_t data[7] = {};
  store_le32(data, value);
  send(cs, data);
}

std::vector<CanFrame> LssMaster::collect(Cs cs, Micros timeout, bool all) {
  std::vector<CanFrame> answers;
  Micros deadline = now() + timeout;
  while (now() < deadline) {
    check_interrupt();
    const auto event = transport_.receive(deadline);
    if (!event) break;
    if (event->kind != RxEvent::Kind::kFrame) continue;
    const CanFrame& frame = event->frame;
    if (frame.id != lss::kSlaveCobId || frame.extended() || frame.remote() ||
        frame.dlc != lss::kFrameLength || frame.data[0] != cs_value(cs)) {
      continue;
    }
    answers.push_back(frame);
    // Other slaves may send the same answer right after this one (a real bus merges identical
    // frames, a simulated one may not): swallow them so they are not taken for the next answer.
    if (!all && answers.size() == 1) deadline = std::min(deadline, now() + options_.settle);
  }
  return answers;
}

LssAnswer LssMaster::one_answer(Cs cs, Micros timeout) {
  const auto answers = collect(cs, timeout, false);
  if (answers.empty()) {
    throw Error(ErrorKind::kNoNode,
                fmt::format("no LSS answer (0x{:02X}) within {} ms: no node in LSS configuration "
                            "state (select one with --serial or the full identity)",
                            cs_value(cs), timeout / 1000));
  }
  return {answers.front().data[1], answers.front().data[2]};
}

void LssMaster::switch_global(lss::Mode mode) {
  const std::uint8_t data[7] = {static_cast<std::uint8_t>(mode)};
  send(Cs::kSwitchGlobal, data);
}

bool LssMaster::switch_selective(const NodeIdentity& identity) {
  send(Cs::kSwitchSelectiveVendor, identity.vendor_id);
  send(Cs::kSwitchSelectiveProduct, identity.product_code);
  send(Cs::kSwitchSelectiveRevision, identity.revision);
  send(Cs::kSwitchSelectiveSerial, identity.serial);
  return !collect(Cs::kSwitchSelectiveResponse, options_.timeout, false).empty();
}

LssAnswer LssMaster::configure_node_id(std::uint8_t node_id) {
  const std::uint8_t data[7] = {node_id};
  send(Cs::kConfigureNodeId, data);
  return one_answer(Cs::kConfigureNodeId, options_.timeout);
}

LssAnswer LssMaster::configure_bit_timing(std::uint8_t table_index) {
  const std::uint8_t data[7] = {lss::kStandardTable, table_index};
  send(Cs::kConfigureBitTiming, data);
  return one_answer(Cs::kConfigureBitTiming, options_.timeout);
}

std::vector<LssAnswer> LssMaster::configure_bit_timing_all(std::uint8_t table_index) {
  const std::uint8_t data[7] = {lss::kStandardTable, table_index};
  send(Cs::kConfigureBitTiming, data);
  std::vector<LssAnswer> out;
  for (const CanFrame& f : collect(Cs::kConfigureBitTiming, options_.timeout, true)) {
    out.push_back({f.data[1], f.data[2]});
  }
  return out;
}

std::vector<LssAnswer> LssMaster::store_configuration_all() {
  const std::uint8_t data[7] = {};
  send(Cs::kStoreConfiguration, data);
  std::vector<LssAnswer> out;
  for (const CanFrame& f : collect(Cs::kStoreConfiguration, options_.store_timeout, true)) {
    out.push_back({f.data[1], f.data[2]});
  }
  return out;
}

LssAnswer LssMaster::store_configuration() {
  const std::uint8_t data[7] = {};
  send(Cs::kStoreConfiguration, data);
  return one_answer(Cs::kStoreConfiguration, options_.store_timeout);
}

void LssMaster::activate_bit_timing(std::uint16_t switch_delay_ms) {
  const std::uint8_t data[7] = {static_cast<std::uint8_t>(switch_delay_ms),
                                static_cast<std::uint8_t>(switch_delay_ms >> 8)};
  send(Cs::kActivateBitTiming, data);
}

std::uint32_t LssMaster::inquire(Cs what) {
  const std::uint8_t data[7] = {};
  send(what, data);
  const auto answers = collect(what, options_.timeout, false);
  if (answers.empty()) {
    throw Error(ErrorKind::kNoNode, "no LSS answer to inquire: no node in LSS configuration state");
  }
  return load_le32(answers.front().data + 1);
}

std::uint8_t LssMaster::inquire_node_id() {
  const std::uint8_t data[7] = {};
  send(Cs::kInquireNodeId, data);
  const auto answers = collect(Cs::kInquireNodeId, options_.timeout, false);
  if (answers.empty()) {
    throw Error(ErrorKind::kNoNode, "no LSS answer to inquire: no node in LSS configuration state");
  }
  return answers.front().data[1];
}

NodeIdentity LssMaster::inquire_identity() {
  NodeIdentity id;
  id.vendor_id = inquire(Cs::kInquireVendor);
  id.product_code = inquire(Cs::kInquireProduct);
  id.revision = inquire(Cs::kInquireRevision);
  id.serial = inquire(Cs::kInquireSerial);
  return id;
}

bool LssMaster::identify(std::uint32_t vendor_id, std::uint32_t product_code,
                         std::uint32_t revision_low, std::uint32_t revision_high,
                         std::uint32_t serial_low, std::uint32_t serial_high) {
  send(Cs::kIdentifyVendor, vendor_id);
  send(Cs::kIdentifyProduct, product_code);
  send(Cs::kIdentifyRevisionLow, revision_low);
  send(Cs::kIdentifyRevisionHigh, revision_high);
  send(Cs::kIdentifySerialLow, serial_low);
  send(Cs::kIdentifySerialHigh, serial_high);
  return !collect(Cs::kIdentifySlaveResponse, options_.timeout, false).empty();
}

bool LssMaster::identify_non_configured() {
  const std::uint8_t data[7] = {};
  send(Cs::kIdentifyNonConfigured, data);
  return !collect(Cs::kIdentifyNonConfiguredResponse, options_.timeout, false).empty();
}

bool LssMaster::fastscan_step(std::uint32_t id, std::uint8_t bit, std::uint8_t sub,
                              std::uint8_t next) {
  std::uint8_t data[7] = {};
  store_le32(data, id);
  data[4] = bit;
  data[5] = sub;
  data[6] = next;
  send(Cs::kFastscan, data);
  ++fastscan_requests_;
  // Several slaves may answer with the same frame: one is enough, the rest is drained by the
  // next wait (they all arrive within the frame time).
  const bool answered = !collect(Cs::kIdentifySlaveResponse, options_.timeout, false).empty();
  if (!answered) ++fastscan_timeouts_;
  return answered;
}

std::optional<NodeIdentity> LssMaster::fastscan(const FastscanHint& hint) {
  if (!fastscan_step(0, lss::kFastscanConfirm, 0, 0)) return std::nullopt;
  const std::optional<std::uint32_t> known[4] = {hint.vendor_id, hint.product_code, hint.revision,
                                                 std::nullopt};
  NodeIdentity found;
  for (std::uint8_t sub = 0; sub < 4; ++sub) {
    const auto next = static_cast<std::uint8_t>((sub + 1) % 4);
    std::uint32_t value = known[sub].value_or(0);
    if (!known[sub]) {
      // From the top bit down: "is this bit 0 in anyone's value?" No answer means 1.
      for (int bit = 31; bit >= 1; --bit) {
        if (!fastscan_step(value, static_cast<std::uint8_t>(bit), sub, sub)) value |= 1U << bit;
      }
      // Bit 0 asked together with the move to the next part.
      if (fastscan_step(value, 0, sub, next)) {
        set_part(found, sub, value);
        continue;
      }
      value |= 1U;
    }
    if (!fastscan_step(value, 0, sub, next)) return std::nullopt;  // gone, or hint not present
    set_part(found, sub, value);
  }
  return found;
}

std::vector<NodeIdentity> LssMaster::scan(const FastscanHint& hint,
                                          const std::function<void(const NodeIdentity&)>& found) {
  std::vector<NodeIdentity> all;
  switch_global(lss::Mode::kWaiting);
  // A found slave stays in configuration state, where Fastscan does not reach it.
  while (auto identity = fastscan(hint)) {
    all.push_back(*identity);
    if (found) found(*identity);
    if (all.size() > 127 * 4) break;  // more than a bus can hold: something answers wrongly
  }
  switch_global(lss::Mode::kWaiting);
  return all;
}

std::vector<LssMaster::Assignment> LssMaster::auto_assign(
    std::uint8_t first_node, bool store, const FastscanHint& hint,
    const std::function<void(const Assignment&)>& done) {
  std::vector<Assignment> out;
  switch_global(lss::Mode::kWaiting);
  std::uint8_t node = first_node;
  while (auto identity = fastscan(hint)) {
    if (node < 1 || node > 127) {
      switch_global(lss::Mode::kWaiting);
      throw Error(ErrorKind::kUsage,
                  fmt::format("more unconfigured nodes than node-IDs from {} to 127 ({} numbered)",
                              first_node, out.size()));
    }
    Assignment a;
    a.identity = *identity;
    a.node_id = node;
    const LssAnswer configured = configure_node_id(node);
    if (configured.code != lss::kSuccess) {
      switch_global(lss::Mode::kWaiting);
      throw Error(
          ErrorKind::kRejected,
          fmt::format("serial 0x{:08X} refused node-ID {}: {}", identity->serial, node,
                      describe_lss_error(Cs::kConfigureNodeId, configured.code, configured.spec)));
    }
    if (store) {
      const LssAnswer stored = store_configuration();
      if (stored.code != lss::kSuccess) {
        switch_global(lss::Mode::kWaiting);
        throw Error(
            ErrorKind::kRejected,
            fmt::format("serial 0x{:08X} (node-ID {}) could not store: {}", identity->serial, node,
                        describe_lss_error(Cs::kStoreConfiguration, stored.code, stored.spec)));
      }
      a.stored = true;
    }
    // Back to waiting: the slave takes its node-ID (boot-up) and leaves the Fastscan.
    switch_global(lss::Mode::kWaiting);
    out.push_back(a);
    if (done) done(a);
    ++node;
  }
  return out;
}

}  // namespace rtcanboot::host
