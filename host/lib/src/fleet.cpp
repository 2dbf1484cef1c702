#include "rtcanboot/host/fleet.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <limits>
#include <map>
#include <memory>
#include <string_view>

#include "rtcanboot/bytes.hpp"
#include "rtcanboot/canopen_defs.hpp"

namespace rtcanboot::host {

namespace od = canopen::od;
using canopen::ListenAlongState;

const char* to_string(FleetMode mode) {
  switch (mode) {
    case FleetMode::kListenAlong:
      return "listen-along";
    case FleetMode::kUnicast:
      return "unicast";
    case FleetMode::kSequential:
      return "sequential";
  }
  return "unknown";
}

const char* to_string(FleetNodeState state) {
  switch (state) {
    case FleetNodeState::kWaiting:
      return "waiting";
    case FleetNodeState::kPreparing:
      return "preparing";
    case FleetNodeState::kLead:
      return "lead";
    case FleetNodeState::kFollowing:
      return "following";
    case FleetNodeState::kUnicast:
      return "downloading";
    case FleetNodeState::kChecking:
      return "checking";
    case FleetNodeState::kRepairing:
      return "repairing";
    case FleetNodeState::kStarting:
      return "starting";
    case FleetNodeState::kDone:
      return "done";
    case FleetNodeState::kSkipped:
      return "up to date";
    case FleetNodeState::kFailed:
      return "FAILED";
  }
  return "unknown";
}

bool FleetResult::ok() const {
  return std::all_of(nodes.begin(), nodes.end(), [](const FleetNodeResult& n) {
    return n.state == FleetNodeState::kDone || n.state == FleetNodeState::kSkipped;
  });
}

int FleetResult::exit_code() const {
  // Worst first: failures of the run itself, then what leaves a node furthest from the image.
  static constexpr std::array kWorstFirst = {
      ErrorKind::kBus,      ErrorKind::kInternal,     ErrorKind::kTimeout,
      ErrorKind::kRejected, ErrorKind::kAborted,      ErrorKind::kNotConfirmed,
      ErrorKind::kNoNode,   ErrorKind::kWrongProduct, ErrorKind::kInput,
  };
  std::optional<ErrorKind> worst;
  auto rank = [](ErrorKind k) {
    const auto* it = std::find(kWorstFirst.begin(), kWorstFirst.end(), k);
    return static_cast<std::size_t>(it - kWorstFirst.begin());
  };
  for (const auto& n : nodes) {
    if (n.state == FleetNodeState::kDone || n.state == FleetNodeState::kSkipped) continue;
    const ErrorKind k = n.error.value_or(ErrorKind::kInternal);
    if (!worst || rank(k) < rank(*worst)) worst = k;
  }
  return worst ? host::exit_code(*worst) : 0;
}

namespace {

std::string kib(std::uint64_t bytes) {
  return fmt::format("{:.1f}", static_cast<double>(bytes) / 1024.0);
}

std::string json_text(const std::string& s) {
  std::string out = "\"";
  for (const char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += fmt::format("\\u{:04x}", c);
    } else {
      out += c;
    }
  }
  return out + "\"";
}

const char* follow_text(std::uint8_t state) {
  switch (static_cast<ListenAlongState>(state)) {
    case ListenAlongState::kOff:
      return "off";
    case ListenAlongState::kWaiting:
      return "never started";
    case ListenAlongState::kFollowing:
      return "following";
    case ListenAlongState::kComplete:
      return "complete";
    case ListenAlongState::kGaps:
      return "gaps";
    case ListenAlongState::kLost:
      return "lost its place";
    case ListenAlongState::kRefused:
      return "refused";
  }
  return "unknown";
}

}  // namespace

std::string format_fleet_table(const std::vector<FleetNodeResult>& nodes) {
  std::string out = fmt::format("{:>4}  {:<8}  {:<11}  {:>19}  {:>7}  {}\n", "node", "role",
                                "state", "KiB", "repairs", "news");
  for (const auto& n : nodes) {
    const std::string bytes =
        n.total ? fmt::format("{}/{}", kib(n.bytes), kib(n.total)) : (n.bytes ? kib(n.bytes) : "-");
    std::string news = n.message;
    if (n.follow_state && news.empty())
      news = fmt::format("stream: {}", follow_text(*n.follow_state));
    if (news.size() > 60) news = news.substr(0, 57) + "...";
    out += fmt::format("{:>4}  {:<8}  {:<11}  {:>19}  {:>7}  {}\n", n.node,
                       n.role.empty() ? "-" : n.role, to_string(n.state), bytes, n.repairs, news);
  }
  return out;
}

std::string format_fleet_summary(const FleetResult& r) {
  std::string out;
  std::size_t good = 0;
  for (const auto& n : r.nodes) {
    if (n.state == FleetNodeState::kDone || n.state == FleetNodeState::kSkipped) {
      ++good;
      continue;
    }
    out += fmt::format("node {} failed (exit code {}): {}\n", n.node,
                       host::exit_code(n.error.value_or(ErrorKind::kInternal)), n.message);
  }
  std::uint32_t repaired = 0;
  std::uint32_t sectors = 0;
  for (const auto& n : r.nodes) {
    if (n.repairs) ++repaired;
    sectors += n.repair_sectors;
  }
  out += fmt::format("{} of {} node(s) hold image 0x{:08X}; {} repaired ({} sectors); {:.1f} s\n",
                     good, r.nodes.size(), r.expected_id, repaired, sectors,
                     static_cast<double>(r.time) / 1e6);
  return out;
}

std::string fleet_json(const FleetResult& r, FleetMode mode) {
  std::string s = fmt::format(
      "{{\"mode\": \"{}\", \"ok\": {}, \"exit_code\": {}, \"time_s\": {:.6f}, "
      "\"software_id\": {}, \"container_bytes\": {}, \"leads\": [",
      to_string(mode), r.ok() ? "true" : "false", r.exit_code(), static_cast<double>(r.time) / 1e6,
      r.expected_id, r.container_bytes);
  for (std::size_t i = 0; i < r.leads.size(); ++i) {
    s += fmt::format("{}{}", i ? ", " : "", r.leads[i]);
  }
  s += "], \"nodes\": [";
  for (std::size_t i = 0; i < r.nodes.size(); ++i) {
    const FleetNodeResult& n = r.nodes[i];
    const bool ok = n.state == FleetNodeState::kDone || n.state == FleetNodeState::kSkipped;
    s += fmt::format(
        "{}{{\"node\": {}, \"role\": {}, \"state\": {}, \"ok\": {}, \"bytes\": {}, "
        "\"repairs\": {}, \"repair_sectors\": {}, \"patched_bytes\": {}, \"gap_bytes\": {}, "
        "\"software_id\": {}, \"started\": {}, \"confirmed\": {}",
        i ? ", " : "", n.node, json_text(n.role), json_text(to_string(n.state)),
        ok ? "true" : "false", n.bytes, n.repairs, n.repair_sectors, n.patched_bytes, n.gap_bytes,
        n.software_id, n.started ? "true" : "false", n.confirmed ? "true" : "false");
    if (n.follow_state) {
      s += fmt::format(", \"follow_state\": {}, \"follow_state_text\": {}", *n.follow_state,
                       json_text(follow_text(*n.follow_state)));
    }
    if (!ok) {
      const ErrorKind kind = n.error.value_or(ErrorKind::kInternal);
      s += fmt::format(", \"exit_code\": {}, \"error\": {}", host::exit_code(kind),
                       json_text(to_string(kind)));
    }
    s += fmt::format(", \"message\": {}}}", json_text(n.message));
  }
  return s + "]}";
}

std::vector<std::uint8_t> parse_node_list(const std::string& text) {
  auto bad = [&](const std::string& why) -> Error {
    return Error(ErrorKind::kUsage,
                 fmt::format("--nodes '{}': {} (write e.g. 10-17 or 3,5,9)", text, why));
  };
  auto number = [&](std::string_view s) {
    unsigned value = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
    if (s.empty() || ec != std::errc{} || end != s.data() + s.size()) {
      throw bad(fmt::format("'{}' is not a node-ID", s));
    }
    if (value < 1 || value > canopen::kMaxNodeId) {
      throw bad(fmt::format("node-ID {} is outside 1..127", value));
    }
    return static_cast<std::uint8_t>(value);
  };
  std::vector<std::uint8_t> nodes;
  std::string_view rest = text;
  if (rest.empty()) throw bad("no node-ID");
  while (true) {
    const std::size_t comma = rest.find(',');
    const std::string_view item = rest.substr(0, comma);
    const std::size_t dash = item.find('-');
    const std::uint8_t first = number(item.substr(0, dash));
    const std::uint8_t last =
        dash == std::string_view::npos ? first : number(item.substr(dash + 1));
    if (last < first) throw bad(fmt::format("range {} runs backwards", item));
    for (unsigned n = first; n <= last; ++n) {
      if (std::find(nodes.begin(), nodes.end(), n) != nodes.end()) {
        throw bad(fmt::format("node {} is listed twice", n));
      }
      nodes.push_back(static_cast<std::uint8_t>(n));
    }
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  return nodes;
}

namespace {

// Unicast attempts of one node in all, however much each one progressed: bounds the time a node
// on a link that loses frames all the time can take.
constexpr int kMaxUnicastAttempts = 12;

class Fleet {
 public:
  Fleet(Master& m, const LoadedInput& input, const FleetOptions& o, const FleetEvents& ev)
      : m_(m), input_(input), o_(o), ev_(ev) {
    for (const std::uint8_t n : o.nodes) {
      FleetNodeResult row;
      row.node = n;
      result_.nodes.push_back(row);
    }
  }

  FleetResult run() {
    const Micros t0 = m_.now();
    if (!identify()) {
      result_.time = m_.now() - t0;
      return result_;
    }
    if (o_.mode == FleetMode::kSequential) {
      for (auto& row : result_.nodes) {
        if (active(row)) unicast_update(row, false);
      }
    } else {
      for (auto& row : result_.nodes) {
        if (active(row)) bring_to_bootloader(row);
      }
      if (o_.mode == FleetMode::kListenAlong) {
        stream();
      } else {
        concurrent_unicast();
      }
      check_and_repair();
    }
    if (o_.update.start) start_all();
    result_.time = m_.now() - t0;
    return result_;
  }

 private:
  void step(const std::string& s) {
    if (ev_.step) ev_.step(s);
  }
  // A step of run_update for one node, prefixed with the node unless it names it already.
  void node_step(std::uint8_t node, const std::string& s) {
    const std::string prefix = fmt::format("node {}", node);
    step(s.starts_with(prefix) ? s : fmt::format("{}: {}", prefix, s));
  }
  void changed() {
    if (ev_.changed) ev_.changed(result_.nodes);
  }
  static bool active(const FleetNodeResult& row) {
    return row.state != FleetNodeState::kFailed && row.state != FleetNodeState::kSkipped;
  }
  void set(FleetNodeResult& row, FleetNodeState state, std::string message = {}) {
    row.state = state;
    if (!message.empty()) row.message = std::move(message);
    changed();
  }
  void fail(FleetNodeResult& row, ErrorKind kind, const std::string& why) {
    row.error = kind;
    step(fmt::format("node {}: {}", row.node, why));
    set(row, FleetNodeState::kFailed, why);
  }
  // Runs `f`; a node failure becomes the row's failure (false). Bus failures and interruptions
  // end the whole run: they are not about one node.
  template <typename F>
  bool guarded(FleetNodeResult& row, F&& f) {
    try {
      f();
      return true;
    } catch (const SdoError& e) {
      fail(row, e.timed_out() ? ErrorKind::kTimeout : ErrorKind::kAborted, e.what());
    } catch (const Error& e) {
      if (e.kind() == ErrorKind::kBus || e.kind() == ErrorKind::kInterrupted) throw;
      fail(row, e.kind(), e.what());
    }
    return false;
  }
  UpdateOptions options_for(std::uint8_t node) const {
    UpdateOptions u = o_.update;
    u.node = node;
    return u;
  }

  // 1. Every node's identity against the one container the fleet gets; nodes that already hold
  // it are skipped (unless --force).
  bool identify() {
    std::optional<std::pair<std::uint32_t, std::uint32_t>> reference;
    std::vector<std::pair<std::uint32_t, std::uint32_t>> identity(result_.nodes.size());
    for (std::size_t i = 0; i < result_.nodes.size(); ++i) {
      FleetNodeResult& row = result_.nodes[i];
      set(row, FleetNodeState::kPreparing);
      try {
        identity[i] = {m_.upload_u32(row.node, od::kIdentity, 1),
                       m_.upload_u32(row.node, od::kIdentity, 2)};
        if (!reference) reference = identity[i];
      } catch (const SdoError& e) {
        if (!e.timed_out()) throw Error(ErrorKind::kAborted, e.what());
        fail(row, ErrorKind::kNoNode,
             fmt::format("node {} does not answer (no SDO response)", row.node));
      }
    }
    if (!reference) return false;
    // The container: from the input, or packed once for the first node's identity (or
    // --vendor-id/--product-code); every node is compared with it.
    UpdateOptions pack_for = options_for(result_.nodes.front().node);
    pack_for.force_product = true;
    container_ = container_for_node(input_, pack_for, reference->first, reference->second);
    header_ = container_header(container_);
    result_.expected_id = header_.payload_crc32;
    result_.container_bytes = container_.size();
    for (std::size_t i = 0; i < result_.nodes.size(); ++i) {
      FleetNodeResult& row = result_.nodes[i];
      if (!active(row)) continue;
      if ((identity[i].first != header_.vendor_id || identity[i].second != header_.product_code) &&
          !o_.update.force_product) {
        fail(row, ErrorKind::kWrongProduct,
             fmt::format("node {} is vendor 0x{:08X} product 0x{:08X}, the image is for vendor "
                         "0x{:08X} product 0x{:08X}: left alone (--force-product to flash it)",
                         row.node, identity[i].first, identity[i].second, header_.vendor_id,
                         header_.product_code));
        continue;
      }
      guarded(row, [&] {
        row.software_id = m_.upload_u32(row.node, od::kSoftwareId, o_.update.program);
        if (row.software_id == result_.expected_id && !o_.update.force) {
          set(row, FleetNodeState::kSkipped, "already holds this image");
        }
      });
    }
    return true;
  }

  // 2. Stops the application (it resets into the bootloader) and finds out whether the node can
  // follow: an rtcanboot bootloader with object 0x5F04.
  void bring_to_bootloader(FleetNodeResult& row) {
    guarded(row, [&] {
      const std::uint8_t state = m_.upload_u8(row.node, od::kProgramControl, o_.update.program);
      if (state == static_cast<std::uint8_t>(canopen::ProgramState::kStarted)) {
        const Micros before = m_.now();
        try {
          m_.download_u8(row.node, od::kProgramControl, o_.update.program,
                         static_cast<std::uint8_t>(canopen::ProgramCommand::kStop));
        } catch (const SdoError& e) {
          if (!e.timed_out()) throw;
        }
        m_.wait_heartbeat(row.node, before, m_.now() + 200'000, true);
      }
      const Micros until = m_.now() + o_.update.reboot_window;
      for (;;) {
        try {
          const bool bootloader =
              m_.upload_u8(row.node, od::kRtcanbootInfo, 1) == canopen::kRunningBootloader;
          std::optional<std::uint8_t> follow;
          if (bootloader) {
            try {
              follow = m_.upload_u8(row.node, od::kListenAlong, 4);
            } catch (const SdoError& e) {
              if (e.timed_out()) throw;
            }
          }
          can_follow_[row.node] = follow.has_value();
          if (!follow)
            step(fmt::format("node {} cannot follow (no 0x5F04): updated by unicast", row.node));
          return;
        } catch (const SdoError& e) {
          if (!e.timed_out()) {  // not rtcanboot (no 0x5F00): a plain CiA 302-3 node
            can_follow_[row.node] = false;
            return;
          }
          if (m_.now() >= until) {
            throw Error(ErrorKind::kTimeout,
                        fmt::format("node {} did not come back after the stop", row.node));
          }
        }
      }
    });
  }

  bool can_follow(const FleetNodeResult& row) const {
    const auto it = can_follow_.find(row.node);
    return it != can_follow_.end() && it->second;
  }

  void stop_following(std::uint8_t node) {
    try {
      m_.download_u8(node, od::kListenAlong, 4, 0);
    } catch (const SdoError&) {
      // A node that does not answer shows that in its check.
    }
  }

  // Arms a follower for `lead`'s SDO channel and the expected image. False: it did not take it.
  bool arm(FleetNodeResult& row, std::uint8_t lead) {
    try {
      stop_following(row.node);
      m_.download_u32(row.node, od::kListenAlong, 1, canopen::kSdoRxBase + lead);
      m_.download_u32(row.node, od::kListenAlong, 2, canopen::kSdoTxBase + lead);
      m_.download_u32(row.node, od::kListenAlong, 3, result_.expected_id);
      m_.download_u8(row.node, od::kListenAlong, 4, 1);
      if (m_.upload_u8(row.node, od::kListenAlong, 4) ==
          static_cast<std::uint8_t>(ListenAlongState::kWaiting)) {
        return true;
      }
    } catch (const SdoError& e) {
      step(fmt::format("node {} refused to follow node {}: {}", row.node, lead, e.what()));
    }
    return false;
  }

  // 3. The download to a lead, followed by every other node that can follow. A lead that stops
  // answering is replaced by a follower, which then receives (sparse) what it still lacks while
  // the others follow again.
  void stream() {
    std::vector<FleetNodeResult*> candidates;
    for (auto& row : result_.nodes) {
      if (active(row) && can_follow(row)) candidates.push_back(&row);
    }
    bool first = true;
    for (int attempt = 0; attempt < o_.lead_attempts && !candidates.empty(); ++attempt) {
      FleetNodeResult& lead = *candidates.front();
      candidates.erase(candidates.begin());
      result_.leads.push_back(lead.node);
      stop_following(lead.node);
      std::vector<FleetNodeResult*> followers;
      for (FleetNodeResult* f : candidates) {
        if (active(*f) && arm(*f, lead.node)) {
          f->role = "follower";
          set(*f, FleetNodeState::kFollowing);
          followers.push_back(f);
        }
      }
      lead.role = "lead";
      set(lead, FleetNodeState::kLead);
      step(fmt::format("node {} leads; {} node(s) follow", lead.node, followers.size()));
      UpdateOptions u = options_for(lead.node);
      u.full = first;  // a new lead after a failed one gets what it still lacks
      u.compress = false;
      u.force = true;
      u.start = false;
      UpdateEvents events;
      events.step = [&](const std::string& s) { node_step(lead.node, s); };
      std::uint64_t last_drawn = 0;
      events.progress = [&](std::uint64_t done, std::uint64_t total) {
        if (ev_.lead_progress) ev_.lead_progress(lead.node, done, total);
        lead.bytes = done;
        lead.total = total;
        for (FleetNodeResult* f : followers) {
          f->bytes = done;
          f->total = total;
        }
        if (done == total || done - last_drawn >= total / 100) {
          last_drawn = done;
          changed();
        }
      };
      first = false;
      bool led = false;
      guarded(lead, [&] {
        const UpdateResult r = run_update(m_, input_for_stream(), u, events);
        lead.software_id = r.software_id;
        lead.bytes = r.bytes;
        set(lead, FleetNodeState::kChecking, "installed and verified");
        led = true;
      });
      if (led) return;
      // Those that followed hold what the lead confirmed: one of them leads the rest.
      step(fmt::format("lead node {} failed; choosing another lead", lead.node));
      std::erase_if(candidates, [](const FleetNodeResult* f) { return !active(*f); });
    }
  }

  // The stream always carries the container this flow packed (identical for every node).
  const LoadedInput& input_for_stream() {
    if (!stream_input_) {
      stream_input_ = std::make_unique<LoadedInput>();
      stream_input_->format = InputFormat::kContainer;
      stream_input_->container = parse_container(container_, "the fleet's container");
    }
    return *stream_input_;
  }

  // 3'. --mode unicast: every node gets the whole container at the same time, interleaved on the
  // bus (like concurrent boot processes of CiA 302-2 masters).
  void concurrent_unicast() {
    std::vector<std::unique_ptr<SdoClient>> clients;
    std::vector<FleetNodeResult*> rows;
    for (auto& row : result_.nodes) {
      if (!active(row)) continue;
      const bool rtcanboot = can_follow_.count(row.node) != 0;
      if (!rtcanboot || !can_follow(row)) {
        // Not an rtcanboot bootloader with a revoke-on-download: clear first (CiA 302-3).
        if (!guarded(row, [&] {
              m_.download_u8(row.node, od::kProgramControl, o_.update.program,
                             static_cast<std::uint8_t>(canopen::ProgramCommand::kClear));
              wait_flash_idle(row.node);
            })) {
          continue;
        }
      }
      row.role = "unicast";
      set(row, FleetNodeState::kUnicast);
      auto client = std::make_unique<SdoClient>(row.node, m_.options().sdo);
      client->start_download(od::kProgramData, o_.update.program, container_, SdoMode::kBlock,
                             m_.now());
      clients.push_back(std::move(client));
      rows.push_back(&row);
    }
    if (clients.empty()) return;
    std::vector<SdoClient*> pointers;
    for (auto& c : clients) pointers.push_back(c.get());
    std::uint64_t last_drawn = 0;
    m_.run(pointers, [&](std::uint64_t, std::uint64_t total) {
      std::uint64_t sum = 0;
      for (std::size_t i = 0; i < rows.size(); ++i) {
        rows[i]->bytes = clients[i]->bytes_done();
        rows[i]->total = container_.size();
        sum += rows[i]->bytes;
      }
      if (sum - last_drawn >= total / 100) {
        last_drawn = sum;
        changed();
      }
    });
    for (std::size_t i = 0; i < rows.size(); ++i) {
      if (clients[i]->state() != SdoClient::State::kDone) {
        // The check below finds out what the node holds; the repair sends what is missing.
        step(fmt::format("node {}: {}", rows[i]->node, clients[i]->error_message()));
      }
      rows[i]->bytes = clients[i]->bytes_done();
    }
  }

  std::uint32_t wait_flash_idle(std::uint8_t node) {
    const Micros until = m_.now() + o_.update.flash_timeout;
    Micros interval = 2'000;
    for (;;) {
      const std::uint32_t status = m_.upload_u32(node, od::kFlashStatus, o_.update.program);
      if ((status & 1U) == 0) return status;
      if (m_.now() >= until) {
        throw Error(ErrorKind::kTimeout, fmt::format("node {} still busy after {} s", node,
                                                     o_.update.flash_timeout / 1'000'000));
      }
      m_.listen_until(m_.now() + interval);
      interval = std::min(2 * interval, o_.update.poll_interval);
    }
  }

  // 4. Every node that did not lead: its follow state, its flash status and software id; what
  // does not hold the image gets the ordinary update flow, which sends the sectors that differ.
  void check_and_repair() {
    for (auto& row : result_.nodes) {
      if (!active(row) || row.state == FleetNodeState::kChecking) continue;
      set(row, FleetNodeState::kChecking);
      bool holds_image = false;
      std::vector<std::uint8_t> gap_list;
      if (!guarded(row, [&] {
            if (row.role == "follower") {
              row.follow_state = m_.upload_u8(row.node, od::kListenAlong, 4);
              row.gap_bytes = m_.upload_u32(row.node, od::kListenAlong, 5);
              if (row.gap_bytes != 0) gap_list = read_gap_list(row.node);
              stop_following(row.node);
            }
            const std::uint32_t status = wait_flash_idle(row.node);
            row.software_id = m_.upload_u32(row.node, od::kSoftwareId, o_.update.program);
            holds_image = status == 0 && row.software_id == result_.expected_id;
          })) {
        continue;
      }
      if (holds_image) continue;
      if (!gap_list.empty() && patch_repair(row, gap_list)) continue;
      if (row.role.empty()) row.role = "unicast";
      unicast_update(row, true);
    }
  }

  // 0x5F04:6 of a follower (an older bootloader has none: empty).
  std::vector<std::uint8_t> read_gap_list(std::uint8_t node) {
    try {
      return m_.upload(node, od::kListenAlong, 6);
    } catch (const SdoError& e) {
      if (e.timed_out()) throw;
      return {};
    }
  }

  // The gaps a follower listed, repaired with a patch container of exactly those bytes (no
  // erase; docs/fleet-update.md). Only for the one stream of a single lead, whose container the
  // offsets count in, and a node that understands patches (0x5F02:7). False: nothing gained,
  // the sector repair follows (it erases what the patch may have written).
  bool patch_repair(FleetNodeResult& row, const std::vector<std::uint8_t>& list) {
    if (result_.leads.size() != 1 || list.size() % 8 != 0) return false;
    image::PatchList runs;
    std::uint64_t total = 0;
    for (std::size_t at = 0; at < list.size(); at += 8) {
      const std::uint32_t offset = load_le32(list.data() + at);
      const std::uint32_t length = load_le32(list.data() + at + 4);
      if (offset < header_.header_length || runs.count >= image::kMaxPatchRuns) return false;
      runs.runs[runs.count++] = {offset - header_.header_length, length};
      total += length;
    }
    if (total != row.gap_bytes) return false;
    try {
      const std::uint32_t understood = m_.upload_u32(row.node, od::kSectorDigests, 7);
      if ((understood & image::kFlagPatch) == 0) return false;
      const std::optional<std::vector<std::uint8_t>> patch = make_patch(container_, runs);
      if (!patch) return false;
      set(row, FleetNodeState::kRepairing, fmt::format("patching {} gap bytes", total));
      m_.download(row.node, od::kProgramData, o_.update.program, *patch, SdoMode::kBlock);
      const std::uint32_t status = wait_flash_idle(row.node);
      row.software_id = m_.upload_u32(row.node, od::kSoftwareId, o_.update.program);
      row.bytes += patch->size();
      if (status != 0 || row.software_id != result_.expected_id) {
        node_step(row.node, fmt::format("the patch did not complete the image (0x1F57 0x{:08X}): "
                                        "repairing by sectors",
                                        status));
        return false;
      }
      ++row.repairs;
      row.patched_bytes += static_cast<std::uint32_t>(total);
      set(row, FleetNodeState::kChecking, "installed and verified");
      return true;
    } catch (const Error& e) {
      node_step(row.node, fmt::format("{}; repairing by sectors", e.what()));
      return false;
    }
  }

  // run_update for one node (a repair: only what differs; sequential mode: the whole flow).
  void unicast_update(FleetNodeResult& row, bool repair) {
    set(row, repair ? FleetNodeState::kRepairing : FleetNodeState::kUnicast);
    if (row.role.empty()) row.role = "unicast";
    UpdateOptions u = options_for(row.node);
    u.start = false;
    u.force = true;
    UpdateEvents events;
    events.step = [&](const std::string& s) { node_step(row.node, s); };
    std::uint64_t before = row.bytes;
    std::uint64_t to_send = 0;  // the container of this attempt: what the node still missed
    events.progress = [&](std::uint64_t done, std::uint64_t total) {
      row.bytes = before + done;
      row.total = std::max<std::uint64_t>(row.total, total);
      to_send = total;
    };
    guarded(row, [&] {
      // A transfer that stalls (a frame the transfer cannot do without was missed, or a side was
      // busy) is tried again: the next attempt sends only what is still missing. It goes on as
      // long as the attempts make progress (each has less to send than every one before), so
      // that a node on a lossy link, whose long transfers stall often, still gets there; after
      // repair_attempts stalls in a row without progress, or kMaxUnicastAttempts in all, it fails.
      std::optional<UpdateResult> r;
      std::uint64_t least_to_send = std::numeric_limits<std::uint64_t>::max();
      int without_progress = 0;
      for (int attempt = 1; !r; ++attempt) {
        before = row.bytes;
        to_send = 0;
        try {
          r = run_update(m_, input_for_stream(), u, events);
        } catch (const Error& e) {
          // Stalls: this computer's SDO timeout, or the node's (an abort 0x0504_0000, for
          // example of the sector digests' block upload when the node missed an acknowledge).
          const auto* sdo = dynamic_cast<const SdoError*>(&e);
          const bool stalled =
              e.kind() == ErrorKind::kTimeout ||
              (sdo != nullptr &&
               sdo->abort_code() == static_cast<std::uint32_t>(canopen::Abort::kTimeout));
          if (to_send != 0 && to_send < least_to_send) {
            least_to_send = to_send;
            without_progress = 0;
          } else {
            ++without_progress;
          }
          if (!stalled || without_progress >= o_.repair_attempts ||
              attempt >= kMaxUnicastAttempts) {
            throw;
          }
          node_step(row.node, fmt::format("{}; trying again with what is still missing", e.what()));
        }
      }
      row.software_id = r->software_id;
      row.bytes = before + r->bytes;
      if (repair) {
        ++row.repairs;
        row.repair_sectors +=
            r->sparse ? r->sectors_sent : image::sector_count(header_.payload_length);
      }
      set(row, FleetNodeState::kChecking, "installed and verified");
    });
  }

  // 5. Start every node that holds the image (also those that already held it).
  void start_all() {
    for (auto& row : result_.nodes) {
      if (!active(row) && row.state != FleetNodeState::kSkipped) continue;
      const bool skipped = row.state == FleetNodeState::kSkipped;
      set(row, FleetNodeState::kStarting);
      UpdateOptions u = options_for(row.node);
      u.force = false;  // the image is in place: run_update only starts it
      UpdateEvents events;
      events.step = [&](const std::string& s) { node_step(row.node, s); };
      guarded(row, [&] {
        const UpdateResult r = run_update(m_, input_for_stream(), u, events);
        row.started = r.started;
        row.confirmed = r.confirmed;
        set(row, skipped ? FleetNodeState::kSkipped : FleetNodeState::kDone,
            r.confirmed ? "runs the new image (confirmed)" : "runs the new image");
      });
    }
  }

 private:
  Master& m_;
  const LoadedInput& input_;
  const FleetOptions& o_;
  const FleetEvents& ev_;
  FleetResult result_;
  std::vector<std::uint8_t> container_;
  image::Header header_;
  std::unique_ptr<LoadedInput> stream_input_;
  std::map<std::uint8_t, bool> can_follow_;
};

}  // namespace

FleetResult run_fleet_update(Master& master, const LoadedInput& input, const FleetOptions& options,
                             const FleetEvents& events) {
  if (options.nodes.empty()) throw Error(ErrorKind::kUsage, "no node to update");
  Fleet fleet(master, input, options, events);
  FleetResult result = fleet.run();
  if (!options.update.start) {
    for (auto& row : result.nodes) {
      if (row.state == FleetNodeState::kChecking) {
        row.state = FleetNodeState::kDone;
        row.message = "holds the new image (not started: --no-start)";
      }
    }
  }
  return result;
}

}  // namespace rtcanboot::host
