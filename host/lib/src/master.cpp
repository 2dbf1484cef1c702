#include "rtcanboot/host/master.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <limits>

#include "rtcanboot/bytes.hpp"

namespace rtcanboot::host {

void throw_bootloader_read_error(const SdoError& e, std::uint8_t node, const char* what) {
  if (e.timed_out()) {
    throw Error(ErrorKind::kNoNode,
                fmt::format("node {} does not answer (no SDO response about its {})", node, what));
  }
  if (e.abort_code() == static_cast<std::uint32_t>(canopen::Abort::kNoObject)) {
    throw Error(ErrorKind::kAborted,
                fmt::format("node {} has no {}: it runs its application (stop it first: "
                            "rtcanboot stop --node {}) or an older bootloader",
                            node, what, node));
  }
  throw e;
}

using canopen::NmtState;

const char* to_string(NmtState state) {
  switch (state) {
    case NmtState::kBootUp:
      return "boot-up";
    case NmtState::kStopped:
      return "stopped";
    case NmtState::kOperational:
      return "operational";
    case NmtState::kPreOperational:
      return "pre-operational";
  }
  return "unknown";
}

Master::Master(Transport& transport, MasterOptions options)
    : transport_(transport), options_(options) {}

void Master::nmt(canopen::NmtCommand command, std::uint8_t node) {
  CanFrame f;
  f.id = canopen::kNmtCobId;
  f.dlc = 2;
  f.data[0] = static_cast<std::uint8_t>(command);
  f.data[1] = node;
  transport_.send(f);
}

void Master::dispatch(const RxEvent& event, std::span<SdoClient* const> clients) {
  const Micros t = now();
  if (event.kind == RxEvent::Kind::kStatus) {
    if (event.status.level != BusStatus::Level::kInfo) ++error_frames_;
    if (on_status) on_status(event.status);
    if (event.status.level == BusStatus::Level::kBusOff) {
      throw Error(ErrorKind::kBus, fmt::format("{}: {}", transport_.describe(), event.status.text));
    }
    return;
  }
  const CanFrame& f = event.frame;
  if (on_frame) on_frame(f, t);
  if (f.extended() || f.remote()) return;
  if (f.id > canopen::kHeartbeatBase && f.id <= canopen::kHeartbeatBase + canopen::kMaxNodeId &&
      f.dlc >= 1) {
    const auto node = static_cast<std::uint8_t>(f.id - canopen::kHeartbeatBase);
    auto& hb = heartbeats_[node];
    hb.node = node;
    hb.state = static_cast<NmtState>(f.data[0] & 0x7F);
    hb.at = t;
    ++hb.count;
    if (f.data[0] == 0) boot_ups_[node] = t;
    return;
  }
  for (SdoClient* c : clients) {
    if (c->on_frame(f, t)) break;
  }
}

void Master::flush(std::span<SdoClient* const> clients) {
  for (SdoClient* c : clients) {
    CanFrame f;
    while (c->next_frame(f, now())) transport_.send(f);
  }
}

void Master::run(std::span<SdoClient* const> clients, const ProgressFn& progress, Micros until) {
  std::uint64_t last_done = std::numeric_limits<std::uint64_t>::max();
  for (;;) {
    flush(clients);
    bool any_busy = false;
    Micros deadline = std::numeric_limits<Micros>::max();
    for (SdoClient* c : clients) {
      if (c->busy()) {
        any_busy = true;
        deadline = std::min(deadline, c->deadline());
      }
    }
    if (progress) {  // several clients: their sums
      std::uint64_t done = 0;
      std::uint64_t total = 0;
      for (const SdoClient* c : clients) {
        done += c->bytes_done();
        total += c->bytes_total();
      }
      if (done != last_done) {
        last_done = done;
        progress(done, total);
      }
    }
    if (!any_busy || now() >= until) return;
    if (deadline == std::numeric_limits<Micros>::max()) deadline = now() + options_.sdo.timeout;
    deadline = std::min(deadline, until);
    std::optional<RxEvent> ev;
    try {
      check_interrupt();
      ev = transport_.receive(deadline);
    } catch (const Error& e) {
      if (e.kind() != ErrorKind::kInterrupted) throw;
      // Leave the nodes in a clean state: abort what is running, then give up.
      for (SdoClient* c : clients) c->abort(canopen::Abort::kGeneral);
      try {
        flush(clients);
      } catch (const Error&) {
      }
      throw;
    }
    if (ev) dispatch(*ev, clients);
    const Micros t = now();
    for (SdoClient* c : clients) c->poll(t);
  }
}

[[noreturn]] void Master::throw_failure(const SdoClient& client) {
  const ErrorKind kind =
      client.failure() == SdoClient::Failure::kTimeout ? ErrorKind::kTimeout : ErrorKind::kAborted;
  throw SdoError(kind, client.error_message(), client.failure(), client.abort_code(),
                 client.bytes_done());
}

void Master::run_one(SdoClient& client, const ProgressFn& progress) {
  SdoClient* list[] = {&client};
  run(list, progress);
  if (client.state() != SdoClient::State::kDone) throw_failure(client);
}

std::vector<std::uint8_t> Master::upload(std::uint8_t node, std::uint16_t index, std::uint8_t sub,
                                         SdoMode mode) {
  SdoClient client(node, options_.sdo);
  for (int attempt = 0;; ++attempt) {
    client.reset();
    client.start_upload(index, sub, mode, now());
    SdoClient* list[] = {&client};
    run(list);
    if (client.state() == SdoClient::State::kDone) return client.data();
    if (client.failure() != SdoClient::Failure::kTimeout || attempt >= options_.retries) {
      throw_failure(client);
    }
  }
}

std::uint32_t Master::upload_u32(std::uint8_t node, std::uint16_t index, std::uint8_t sub) {
  const auto data = upload(node, index, sub);
  if (data.size() < 1 || data.size() > 4) {
    throw Error(ErrorKind::kAborted,
                fmt::format("node {} answered 0x{:04X}:{} with {} bytes, expected up to 4", node,
                            index, sub, data.size()));
  }
  std::uint8_t b[4] = {};
  std::copy(data.begin(), data.end(), b);
  return load_le32(b);
}

std::uint8_t Master::upload_u8(std::uint8_t node, std::uint16_t index, std::uint8_t sub) {
  return static_cast<std::uint8_t>(upload_u32(node, index, sub) & 0xFF);
}

std::string Master::upload_string(std::uint8_t node, std::uint16_t index, std::uint8_t sub) {
  const auto data = upload(node, index, sub);
  std::string s(data.begin(), data.end());
  while (!s.empty() && s.back() == '\0') s.pop_back();
  return s;
}

void Master::download(std::uint8_t node, std::uint16_t index, std::uint8_t sub,
                      std::span<const std::uint8_t> data, SdoMode mode,
                      const ProgressFn& progress) {
  SdoClient client(node, options_.sdo);
  const bool repeatable = data.size() <= 4 && mode != SdoMode::kBlock;
  for (int attempt = 0;; ++attempt) {
    client.reset();
    client.start_download(index, sub, data, mode, now());
    SdoClient* list[] = {&client};
    run(list, progress);
    if (client.state() == SdoClient::State::kDone) return;
    if (!repeatable || client.failure() != SdoClient::Failure::kTimeout ||
        attempt >= options_.retries) {
      throw_failure(client);
    }
  }
}

void Master::download_u8(std::uint8_t node, std::uint16_t index, std::uint8_t sub,
                         std::uint8_t value) {
  const std::uint8_t b[1] = {value};
  download(node, index, sub, b);
}

void Master::download_u32(std::uint8_t node, std::uint16_t index, std::uint8_t sub,
                          std::uint32_t value) {
  std::uint8_t b[4];
  store_le32(b, value);
  download(node, index, sub, b);
}

void Master::check_interrupt() const {
  if (interrupt_requested()) throw Error(ErrorKind::kInterrupted, "interrupted");
}

void Master::listen_until(Micros deadline) {
  while (now() < deadline) {
    check_interrupt();
    if (auto ev = transport_.receive(deadline)) dispatch(*ev, {});
  }
}

std::optional<HeartbeatInfo> Master::wait_heartbeat(std::uint8_t node, Micros since,
                                                    Micros deadline, bool boot_up_only) {
  auto seen = [&]() -> std::optional<HeartbeatInfo> {
    if (boot_up_only) {
      auto it = boot_ups_.find(node);
      if (it != boot_ups_.end() && it->second >= since) {
        HeartbeatInfo info = heartbeats_[node];
        info.at = it->second;
        info.state = NmtState::kBootUp;
        return info;
      }
      return std::nullopt;
    }
    auto it = heartbeats_.find(node);
    if (it != heartbeats_.end() && it->second.at >= since) return it->second;
    return std::nullopt;
  };
  for (;;) {
    if (auto hb = seen()) return hb;
    if (now() >= deadline) return std::nullopt;
    check_interrupt();
    if (auto ev = transport_.receive(deadline)) dispatch(*ev, {});
  }
}

}  // namespace rtcanboot::host
