#include "rtcanboot/host/scan.hpp"

#include <algorithm>
#include <map>
#include <memory>

#include "rtcanboot/can_timing.hpp"

namespace rtcanboot::host {

namespace {
constexpr std::uint32_t kSlowestCiaRate = 10'000;

Micros slot_us(const CanFrame& f, std::uint32_t bitrate) {
  return (can_timing::bits_to_ns(can_timing::frame_slot_bits(f), bitrate) + 999) / 1000;
}
}  // namespace

ScanTiming scan_timing(const ScanOptions& o, const Transport& transport) {
  ScanTiming t;
  t.bitrate = o.bitrate;
  if (t.bitrate == 0) t.bitrate = transport.bitrate().value_or(0);
  if (t.bitrate == 0) {
    t.bitrate = kSlowestCiaRate;
    t.bitrate_assumed = true;
  }
  // The probe (an expedited upload request) and the longest answer (8 data bytes of zeros: the
  // most stuff bits), node-ID 1 as the worst case of the identifier's stuffing.
  CanFrame request;
  request.id = canopen::kSdoRxBase + 1;
  request.dlc = 8;
  request.data[0] = 0x40;
  CanFrame answer;
  answer.id = canopen::kSdoTxBase + 1;
  answer.dlc = 8;
  const Micros request_us = slot_us(request, t.bitrate);
  const Micros answer_us = slot_us(answer, t.bitrate);
  // 80 % of the bus: a fifth is left for answers, heartbeats and other traffic.
  t.probe_spacing = request_us * 5 / 4;
  // From handing the probe over: its transmission (behind at most one frame on the bus), the
  // node's answer time, and the answer's transmission (behind at most one other answer).
  t.probe_timeout = 2 * request_us + o.probe_timeout + 2 * answer_us;
  return t;
}

std::vector<ScanNode> scan(Master& m, const ScanOptions& o) {
  const Micros t0 = m.now();
  std::map<std::uint8_t, ScanNode> found;
  if (o.probe && o.first <= o.last) {
    const ScanTiming timing = scan_timing(o, m.transport());
    SdoConfig cfg = m.options().sdo;
    cfg.timeout = timing.probe_timeout;
    // A probe without an answer leaves no transfer open on any server (an expedited upload ends
    // with its answer), so it is not aborted: 127 abort frames would only load a slow bus.
    cfg.abort_on_timeout = false;
    std::vector<std::unique_ptr<SdoClient>> clients;
    std::vector<SdoClient*> active;
    Micros next_start = t0;
    int next = o.first;
    while (next <= o.last) {
      if (m.now() >= next_start) {
        clients.push_back(std::make_unique<SdoClient>(static_cast<std::uint8_t>(next), cfg));
        clients.back()->start_upload(canopen::od::kDeviceType, 0, SdoMode::kAuto, m.now());
        active.push_back(clients.back().get());
        ++next;
        next_start = std::max(next_start + timing.probe_spacing, m.now());
        continue;
      }
      m.run(active, {}, next_start);
    }
    m.run(active);
    for (SdoClient* c : active) {
      if (c->state() == SdoClient::State::kDone) {
        std::uint32_t v = 0;
        for (std::size_t k = 0; k < c->data().size() && k < 4; ++k)
          v |= std::uint32_t{c->data()[k]} << (8 * k);
        found[c->node_id()].sdo = true;
        found[c->node_id()].device_type = v;
      } else if (c->failure() == SdoClient::Failure::kServerAbort) {
        found[c->node_id()].sdo = true;
      }
    }
  }
  m.listen_until(t0 + o.listen);
  for (const auto& [n, hb] : m.heartbeats()) {
    if (n >= o.first && n <= o.last) found[n].heartbeat = hb;
  }
  std::vector<ScanNode> out;
  for (auto& [n, node] : found) {
    node.node = n;
    if (node.sdo) {
      try {
        node.vendor_id = m.upload_u32(n, canopen::od::kIdentity, 1);
        node.product_code = m.upload_u32(n, canopen::od::kIdentity, 2);
        node.running = m.upload_u8(n, canopen::od::kRtcanbootInfo, 1);
      } catch (const SdoError&) {
      }
    }
    out.push_back(node);
  }
  return out;
}

}  // namespace rtcanboot::host
