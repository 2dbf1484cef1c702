#include "twin/can/bus.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <utility>

#include "rtcanboot/can_timing.hpp"

namespace rtcanboot::twin::can {

namespace {

// Error-frame geometry (bits): an error flag is 6 dominant bits; when other nodes answer it the
// superposition lasts up to 12; then an 8-bit recessive delimiter and the 3-bit intermission.
constexpr std::uint32_t kFlagAlone = 6;
constexpr std::uint32_t kFlagAnswered = 12;
constexpr std::uint32_t kErrorDelimiter = 8;
// Where a node at the wrong bit rate first detects a violation (stuff or form error) inside a
// frame, in bits after SOF. A modelling choice, see docs/twin-can.md.
constexpr std::uint32_t kMismatchDetectBit = 8;
constexpr std::uint32_t kBusOffRecoverySequences = 128;
constexpr std::uint32_t kRecoverySequenceBits = 11;

// SocketCAN error frame encoding (linux/can/error.h), used for error lines in the trace.
constexpr std::uint32_t kCanErrFlag = 0x20000000U;
constexpr std::uint32_t kErrProt = 0x08U;
constexpr std::uint32_t kErrAck = 0x20U;
constexpr std::uint32_t kErrBusOff = 0x40U;
constexpr std::uint8_t kProtBit0 = 0x08U;
constexpr std::uint8_t kProtBit1 = 0x10U;
constexpr std::uint8_t kProtStuff = 0x04U;
constexpr std::uint8_t kProtForm = 0x02U;

std::uint8_t prot_type(BusError error) {
  switch (error) {
    case BusError::kBit0:
      return kProtBit0;
    case BusError::kBit1:
      return kProtBit1;
    case BusError::kStuff:
      return kProtStuff;
    case BusError::kForm:
      return kProtForm;
    case BusError::kCrc:
      return 0;
    case BusError::kAck:
      return 0;
  }
  return 0;
}

}  // namespace

const char* to_string(BusError error) {
  switch (error) {
    case BusError::kAck:
      return "ack";
    case BusError::kBit0:
      return "bit0";
    case BusError::kBit1:
      return "bit1";
    case BusError::kStuff:
      return "stuff";
    case BusError::kForm:
      return "form";
    case BusError::kCrc:
      return "crc";
  }
  return "?";
}

const char* to_string(FaultState state) {
  switch (state) {
    case FaultState::kErrorActive:
      return "error-active";
    case FaultState::kErrorPassive:
      return "error-passive";
    case FaultState::kBusOff:
      return "bus-off";
  }
  return "?";
}

// ---------------------------------------------------------------------------------------------
// BusNode

BusNode::~BusNode() {
  if (bus_ != nullptr) bus_->detach(*this);
}

void BusNode::set_counters(const ErrorCounters& counters) {
  const FaultState before = counters_.state();
  counters_ = counters;
  if (counters_.tec >= 256) {
    counters_.tec = 256;
    if (before != FaultState::kBusOff) recovery_left_ = kBusOffRecoverySequences;
  } else {
    recovery_left_ = 0;
  }
  counters_.rec = std::min<std::uint32_t>(counters_.rec, 255);
  if (bus_ != nullptr) bus_->notify();
}

std::uint32_t BusNode::recovery_sequences_seen() const {
  if (counters_.state() != FaultState::kBusOff) return 0;
  return bus_ != nullptr ? bus_->recovery_progress(*this)
                         : kBusOffRecoverySequences - recovery_left_;
}

void BusNode::notify_bus() {
  if (bus_ != nullptr) bus_->notify();
}

// ---------------------------------------------------------------------------------------------
// Endpoint

Endpoint::Endpoint(std::string name) : Endpoint(std::move(name), Options{}) {}

Endpoint::Endpoint(std::string name, Options options) : name_(std::move(name)), options_(options) {}

Endpoint::~Endpoint() = default;

void Endpoint::send(const CanFrame& frame) {
  tx_.push_back(frame);
  notify_bus();
}

std::optional<TimedFrame> Endpoint::receive() {
  if (rx_.empty()) return std::nullopt;
  TimedFrame f = rx_.front();
  rx_.pop_front();
  return f;
}

void Endpoint::clear_tx() {
  tx_.clear();
  attempts_ = 0;
}

void Endpoint::set_listen_only(bool listen_only) {
  options_.listen_only = listen_only;
  notify_bus();
}

void Endpoint::set_connected(bool connected) {
  connected_ = connected;
  notify_bus();
}

void Endpoint::on_receive(std::function<void(const TimedFrame&)> callback, bool queue) {
  rx_callback_ = std::move(callback);
  rx_queue_ = queue;
}

void Endpoint::on_transmitted(std::function<void(const TimedFrame&)> callback) {
  tx_callback_ = std::move(callback);
}

double Endpoint::node_bitrate() const {
  if (options_.bitrate > 0) return options_.bitrate;
  return bus() != nullptr ? bus()->bitrate() : 0.0;
}

NodeMode Endpoint::node_mode() const {
  if (!connected_) return NodeMode::kOff;
  return options_.listen_only ? NodeMode::kListenOnly : NodeMode::kNormal;
}

bool Endpoint::tx_peek(CanFrame& frame) {
  if (tx_.empty() || options_.listen_only) return false;
  frame = tx_.front();
  return true;
}

void Endpoint::tx_end(bool success, Nanos sof, Nanos eof) {
  if (tx_.empty()) return;
  if (success) {
    const TimedFrame done{tx_.front(), sof, eof};
    tx_.pop_front();
    attempts_ = 0;
    ++sent_;
    if (tx_callback_) tx_callback_(done);
    return;
  }
  ++attempts_;
  if (options_.max_attempts != 0 && attempts_ >= options_.max_attempts) {
    tx_.pop_front();
    attempts_ = 0;
    ++dropped_tx_;
  }
}

void Endpoint::rx(const CanFrame& frame, Nanos sof, Nanos eof) {
  const TimedFrame f{frame, sof, eof};
  if (rx_callback_) rx_callback_(f);
  if (!rx_queue_) return;
  if (rx_.size() >= options_.rx_capacity) {
    rx_.pop_front();
    ++rx_overflow_;
  }
  rx_.push_back(f);
}

// ---------------------------------------------------------------------------------------------
// Free functions

std::string format_candump(Nanos at, std::string_view channel, const CanFrame& frame) {
  char head[64];
  std::snprintf(head, sizeof head, "(%llu.%06llu) ",
                static_cast<unsigned long long>(at / 1'000'000'000ULL),
                static_cast<unsigned long long>((at / 1000ULL) % 1'000'000ULL));
  std::string line = head;
  line.append(channel);
  char id[16];
  if (frame.extended()) {
    std::snprintf(id, sizeof id, " %08X#", static_cast<unsigned>(frame.id & 0x1FFFFFFFU));
  } else {
    std::snprintf(id, sizeof id, " %03X#", static_cast<unsigned>(frame.id & 0x7FFU));
  }
  line += id;
  if (frame.remote()) {
    line += 'R';
    if (frame.dlc != 0) line += static_cast<char>('0' + std::min<unsigned>(frame.dlc, 8U));
    return line;
  }
  const unsigned n = std::min<unsigned>(frame.dlc, 8U);
  for (unsigned i = 0; i < n; ++i) {
    char b[4];
    std::snprintf(b, sizeof b, "%02X", frame.data[i]);
    line += b;
  }
  return line;
}

std::uint64_t arbitration_key(const CanFrame& frame) {
  const std::uint64_t rtr = frame.remote() ? 1U : 0U;
  if (frame.extended()) {
    const std::uint64_t base = (frame.id >> 18) & 0x7FFU;
    const std::uint64_t ext = frame.id & 0x3FFFFU;
    return (base << 21) | (1ULL << 20) | (1ULL << 19) | (ext << 1) | rtr;
  }
  return (static_cast<std::uint64_t>(frame.id & 0x7FFU) << 21) | (rtr << 20);
}

// ---------------------------------------------------------------------------------------------
// Bus

Bus::Bus(Clock& clock, Reporter& reporter, std::uint32_t bitrate, std::string name)
    : clock_(clock), reporter_(reporter), bitrate_(bitrate), name_(std::move(name)) {
  idle_since_ = clock_.now();
}

Bus::~Bus() {
  if (arbitration_pending_) clock_.cancel(arbitration_event_);
  if (recovery_scheduled_) clock_.cancel(recovery_event_);
  for (BusNode* node : nodes_) node->bus_ = nullptr;
}

std::uint64_t Bus::bit_ns(std::uint64_t bits) const {
  return can_timing::bits_to_ns(bits, bitrate_);
}

std::uint32_t Bus::recovery_progress(const BusNode& node) const {
  if (node.counters_.state() != FaultState::kBusOff) return 0;
  std::uint64_t seen = kBusOffRecoverySequences - node.recovery_left_;
  const Nanos now = clock_.now();
  if (!busy_ && node.auto_recovery() && now > idle_since_)
    seen += (now - idle_since_) / bit_ns(kRecoverySequenceBits);
  return static_cast<std::uint32_t>(std::min<std::uint64_t>(seen, kBusOffRecoverySequences));
}

bool Bus::bitrate_matches(double node_bitrate) const {
  if (node_bitrate <= 0) return false;
  return std::fabs(node_bitrate - bitrate_) <= tolerance_ * bitrate_;
}

bool Bus::in_sync(const BusNode* node) const {
  return bitrate_matches(node->node_bitrate());
}

void Bus::attach(BusNode& node) {
  if (node.bus_ == this) return;
  if (node.bus_ != nullptr) node.bus_->detach(node);
  node.bus_ = this;
  nodes_.push_back(&node);
  notify();
}

void Bus::detach(BusNode& node) {
  auto it = std::find(nodes_.begin(), nodes_.end(), &node);
  if (it == nodes_.end()) return;
  nodes_.erase(it);
  node.bus_ = nullptr;
  std::erase(bus_off_injections_, &node);
}

void Bus::set_bitrate(std::uint32_t bitrate, Nanos grace) {
  bitrate_ = bitrate;
  mismatch_reported_.clear();
  mismatch_grace_until_ = clock_.now() + grace;
  if (grace == 0) {
    check_modes();
  } else {
    later(mismatch_grace_until_, [this] { check_modes(); });
  }
}

void Bus::notify() {
  check_modes();
  if (busy_) return;
  if (!arbitration_pending_) schedule_arbitration(clock_.now());
  schedule_recovery();
}

void Bus::check_modes() {
  if (clock_.now() < mismatch_grace_until_) return;  // nodes are still switching (set_bitrate)
  for (BusNode* node : nodes_) {
    const NodeMode mode = node->node_mode();
    const std::string name = node->node_name();
    // Keyed by name and mode: a listen-only node at the wrong rate (an auto-baud probe) is only
    // an info; the same node driving the bus at the wrong rate is a fault.
    const std::string key = name + (mode == NodeMode::kListenOnly ? "|listen" : "|normal");
    const std::string other = name + (mode == NodeMode::kListenOnly ? "|normal" : "|listen");
    std::erase(mismatch_reported_, other);
    auto it = std::find(mismatch_reported_.begin(), mismatch_reported_.end(), key);
    if (mode != NodeMode::kOff && !in_sync(node)) {
      if (it == mismatch_reported_.end()) {
        mismatch_reported_.push_back(key);
        char msg[220];
        if (mode == NodeMode::kNormal) {
          std::snprintf(
              msg, sizeof msg,
              "node %s joins %s at %.1f bit/s but the bus runs at %u bit/s: it receives "
              "nothing, sees errors and its error flags destroy frames until it is error-passive",
              name.c_str(), name_.c_str(), node->node_bitrate(), bitrate_);
          reporter_.report(Severity::kFault, "can-bus", msg, 0);
        } else {
          std::snprintf(
              msg, sizeof msg,
              "node %s listens on %s at %.1f bit/s, the bus runs at %u bit/s: it receives nothing",
              name.c_str(), name_.c_str(), node->node_bitrate(), bitrate_);
          reporter_.report(Severity::kInfo, "can-bus", msg, 0);
        }
      }
    } else if (it != mismatch_reported_.end()) {
      mismatch_reported_.erase(it);
    }
  }
}

void Bus::schedule_arbitration(Nanos at) {
  arbitration_pending_ = true;
  arbitration_event_ = later(at, [this] { arbitrate(); });
}

void Bus::inject_bus_off(BusNode& node, Nanos at) {
  BusNode* target = &node;
  later(at, [this, target] {
    if (std::find(nodes_.begin(), nodes_.end(), target) == nodes_.end()) return;
    if (busy_) {
      bus_off_injections_.push_back(target);
      return;
    }
    consume_idle(clock_.now());  // recovery counts recessive bits from now on
    ErrorCounters c = target->counters_;
    c.tec = 256;
    apply_counters(target, c, clock_.now());
    trace_error(clock_.now(), kErrBusOff, 0);
    notify();
  });
}

void Bus::apply_counters(BusNode* node, const ErrorCounters& counters, Nanos at) {
  const FaultState before = node->counters_.state();
  node->counters_ = counters;
  node->counters_.rec = std::min<std::uint32_t>(node->counters_.rec, 255);
  if (node->counters_.tec >= 256) node->counters_.tec = 256;
  const FaultState after = node->counters_.state();
  if (after == FaultState::kBusOff && before != FaultState::kBusOff) {
    node->recovery_left_ = kBusOffRecoverySequences;
  }
  if (before != after) node->on_fault_state(before, after, at);
}

void Bus::add_tec(BusNode* node, std::uint32_t amount, Nanos at) {
  ErrorCounters c = node->counters_;
  c.tec += amount;
  apply_counters(node, c, at);
}

void Bus::add_rec(BusNode* node, std::uint32_t amount, Nanos at) {
  // Listen-only nodes keep their counters frozen; a REC above 127 is not incremented further.
  if (node->node_mode() == NodeMode::kListenOnly || node->counters_.rec > 127) return;
  ErrorCounters c = node->counters_;
  c.rec += amount;
  apply_counters(node, c, at);
}

void Bus::tx_ok(BusNode* node, Nanos at) {
  ErrorCounters c = node->counters_;
  if (c.tec > 0 && c.tec < 256) --c.tec;
  apply_counters(node, c, at);
}

void Bus::rx_ok(BusNode* node, Nanos at) {
  if (node->node_mode() == NodeMode::kListenOnly) return;
  ErrorCounters c = node->counters_;
  if (c.rec > 127) {
    c.rec = 127;  // ISO 11898-1: "a value between 119 and 127"
  } else if (c.rec > 0) {
    --c.rec;
  }
  apply_counters(node, c, at);
}

std::uint64_t Bus::next_random() {
  // splitmix64: small, fast, and the same sequence on every platform.
  rng_ += 0x9E3779B97F4A7C15ULL;
  std::uint64_t z = rng_;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

const FaultRule* Bus::pick_fault(const CanFrame& frame) {
  for (FaultRule& rule : faults_) {
    if (((frame.id ^ rule.id) & rule.id_mask) != 0) continue;
    if (rule.limit != 0 && rule.fired >= rule.limit) continue;
    bool fire = false;
    if (rule.nth != 0) {
      fire = stats_.attempts == rule.nth;
    } else if (rule.rate > 0) {
      const double u = static_cast<double>(next_random() >> 11) * (1.0 / 9007199254740992.0);
      fire = u < rule.rate;
    } else {
      fire = true;  // neither a number nor a rate: every matching frame (up to `limit`)
    }
    if (fire) {
      ++rule.fired;
      return &rule;
    }
  }
  return nullptr;
}

void Bus::consume_idle(Nanos until) {
  if (until > idle_since_) {
    const std::uint64_t seq_ns = bit_ns(kRecoverySequenceBits);
    const std::uint64_t sequences = (until - idle_since_) / seq_ns;
    for (BusNode* node : nodes_) {
      if (node->counters_.state() != FaultState::kBusOff || !node->auto_recovery()) continue;
      if (node->recovery_left_ > sequences) {
        node->recovery_left_ -= static_cast<std::uint32_t>(sequences);
      } else {
        node->recovery_left_ = 0;
        apply_counters(node, ErrorCounters{}, until);
      }
    }
  }
  idle_since_ = until;
}

void Bus::schedule_recovery() {
  if (recovery_scheduled_) {
    clock_.cancel(recovery_event_);
    recovery_scheduled_ = false;
  }
  if (busy_) return;
  std::uint32_t least = 0;
  for (BusNode* node : nodes_) {
    if (node->counters_.state() != FaultState::kBusOff || !node->auto_recovery()) continue;
    if (least == 0 || node->recovery_left_ < least)
      least = std::max<std::uint32_t>(node->recovery_left_, 1);
  }
  if (least == 0) return;
  const Nanos at = idle_since_ + bit_ns(static_cast<std::uint64_t>(least) * kRecoverySequenceBits);
  recovery_scheduled_ = true;
  recovery_event_ = later(std::max(at, clock_.now()), [this] {
    recovery_scheduled_ = false;
    if (busy_) return;
    consume_idle(clock_.now());
    notify();
  });
}

void Bus::become_idle(Nanos at) {
  busy_ = false;
  idle_since_ = at;
  // The ACK delimiter, EOF and intermission of the frame just ended are one recovery sequence.
  for (BusNode* node : nodes_) {
    if (node->counters_.state() != FaultState::kBusOff || !node->auto_recovery()) continue;
    if (node->recovery_left_ > 1) {
      --node->recovery_left_;
    } else {
      node->recovery_left_ = 0;
      apply_counters(node, ErrorCounters{}, at);
    }
  }
  auto injections = std::move(bus_off_injections_);
  bus_off_injections_.clear();
  for (BusNode* node : injections) {
    ErrorCounters c = node->counters_;
    c.tec = 256;
    apply_counters(node, c, at);
    trace_error(at, kErrBusOff, 0);
  }
  notify();
}

void Bus::arbitrate() {
  arbitration_pending_ = false;
  if (busy_) return;
  const Nanos now = clock_.now();
  consume_idle(now);
  check_modes();

  BusNode* garbler = nullptr;
  std::vector<Candidate> candidates;
  for (BusNode* node : nodes_) {
    if (node->node_mode() != NodeMode::kNormal) continue;
    if (node->counters_.state() == FaultState::kBusOff) continue;
    CanFrame frame;
    if (!node->tx_peek(frame)) continue;
    if (!in_sync(node)) {
      if (garbler == nullptr) garbler = node;
      continue;
    }
    candidates.push_back({node, frame});
  }

  if (garbler != nullptr) {
    // A node at the wrong bit rate starts a frame nobody can decode: the others detect a stuff
    // error and answer with error flags, which the sender sees as a bit error.
    busy_ = true;
    if (recovery_scheduled_) {
      clock_.cancel(recovery_event_);
      recovery_scheduled_ = false;
    }
    ++stats_.attempts;
    garbler->tx_begin(now);
    EpisodeSpec spec;
    spec.tx = garbler;
    spec.sof = now;
    spec.error_bit = kMismatchDetectBit;
    spec.flag_bits = kFlagAnswered;
    spec.tx_error = BusError::kBit0;
    spec.rx_error = BusError::kStuff;
    spec.tx_counts = true;
    error_episode(spec);
    return;
  }
  if (candidates.empty()) {
    schedule_recovery();
    return;
  }

  auto same_bits = [](const CanFrame& a, const CanFrame& b) {
    if (a.id != b.id || a.flags != b.flags || a.dlc != b.dlc) return false;
    for (unsigned k = 0; k < std::min<unsigned>(a.dlc, 8U) && !a.remote(); ++k) {
      if (a.data[k] != b.data[k]) return false;
    }
    return true;
  };
  std::size_t best = 0;
  for (std::size_t i = 1; i < candidates.size(); ++i) {
    const std::uint64_t ki = arbitration_key(candidates[i].frame);
    const std::uint64_t kb = arbitration_key(candidates[best].frame);
    if (ki < kb) {
      best = i;
    } else if (ki == kb && !same_bits(candidates[i].frame, candidates[best].frame)) {
      char msg[160];
      std::snprintf(msg, sizeof msg, "%s and %s start frames with the same identifier 0x%X at once",
                    candidates[best].node->node_name().c_str(),
                    candidates[i].node->node_name().c_str(),
                    static_cast<unsigned>(candidates[i].frame.id));
      reporter_.report(Severity::kWarning, "can-bus", msg, 0);
    }
  }
  BusNode* tx = candidates[best].node;
  CanFrame frame = candidates[best].frame;
  // ISO 11898-1 bitwise arbitration: nodes that start the very same frame (identifier, DLC and
  // data, e.g. the LSS answers of several slaves) drive the same bits, none loses and none sees a
  // bit error: one frame on the wire, a successful transmission for each of them.
  std::vector<BusNode*> co_senders;
  for (std::size_t i = 0; i < candidates.size(); ++i) {
    if (i != best && same_bits(candidates[i].frame, frame))
      co_senders.push_back(candidates[i].node);
  }

  busy_ = true;
  if (recovery_scheduled_) {
    clock_.cancel(recovery_event_);
    recovery_scheduled_ = false;
  }
  ++stats_.attempts;
  tx->tx_begin(now);

  const std::uint32_t total = can_timing::frame_bits(frame);
  const FaultRule* rule = pick_fault(frame);
  auto fault_is = [rule](FaultRule::Action action) {
    return rule != nullptr && rule->action == action;
  };

  bool acked = false;
  std::vector<BusNode*> destroyers;
  for (BusNode* node : nodes_) {
    if (node == tx || node->node_mode() != NodeMode::kNormal) continue;
    if (node->counters_.state() == FaultState::kBusOff) continue;
    if (in_sync(node)) {
      acked = true;
    } else if (node->counters_.state() == FaultState::kErrorActive) {
      destroyers.push_back(node);
    }
  }

  EpisodeSpec spec;
  spec.tx = tx;
  spec.sof = now;
  if (!destroyers.empty()) {
    spec.error_bit = kMismatchDetectBit;
    spec.flag_bits = kFlagAnswered;
    spec.tx_error = BusError::kBit1;
    spec.rx_error = BusError::kStuff;
    spec.tx_counts = true;
    spec.first_signallers = destroyers;
    error_episode(spec);
    return;
  }
  if (fault_is(FaultRule::Action::kErrorFrame)) {
    spec.error_bit = 1 + static_cast<std::uint32_t>(next_random() % (total - 10));
    spec.flag_bits = kFlagAnswered;
    spec.tx_error = BusError::kBit1;
    spec.rx_error = BusError::kForm;
    spec.tx_counts = true;
    error_episode(spec);
    return;
  }
  if (fault_is(FaultRule::Action::kCorrupt)) {
    // Receivers see a CRC error and withhold the ACK; the transmitter flags an ACK error at the
    // ACK delimiter and the receivers' flags follow one bit later.
    spec.error_bit = total - 8;
    spec.flag_bits = kFlagAlone + 1;
    spec.tx_error = BusError::kAck;
    spec.rx_error = BusError::kCrc;
    spec.tx_counts = true;
    error_episode(spec);
    return;
  }
  if (!acked) {
    ++stats_.ack_errors;
    spec.error_bit = total - 8;
    spec.flag_bits = kFlagAlone;
    spec.tx_error = BusError::kAck;
    // Listen-only nodes (the only possible other receivers here) take no unacknowledged frame
    // and flag a BIT0 error without changing their counters (FlexCAN LOM behaviour).
    spec.rx_error = BusError::kBit0;
    // ISO 11898-1 exception: an error-passive transmitter that sees an ACK error (and no
    // dominant bit during its passive flag) does not increase its TEC.
    spec.tx_counts = tx->counters_.state() != FaultState::kErrorPassive;
    error_episode(spec);
    return;
  }

  bool deliver = true;
  std::string drop_for;  // one receiver misses the frame
  if (fault_is(FaultRule::Action::kDrop)) {
    ++stats_.dropped;
    if (rule->receiver.empty()) {
      deliver = false;
    } else {
      drop_for = rule->receiver;
    }
  }
  CanFrame on_wire = frame;
  if (fault_is(FaultRule::Action::kCorruptSilent)) {
    const std::uint64_t r = next_random();
    const unsigned n = std::min<unsigned>(on_wire.dlc, 8U);
    if (n > 0 && !on_wire.remote()) {
      on_wire.data[r % n] = static_cast<std::uint8_t>(on_wire.data[r % n] ^ (1U << ((r >> 8) % 8)));
    } else {
      on_wire.id ^= 1U;
    }
  }
  const Nanos eof = now + bit_ns(total);
  const Nanos idle_at = now + bit_ns(total + can_timing::kInterframeBits);
  busy_until_ = idle_at;
  stats_.busy_bits += total + can_timing::kInterframeBits;
  for (BusNode* co : co_senders) co->tx_begin(now);
  later(eof,
        [this, tx, on_wire, frame, co_senders, now, eof, idle_at, deliver, drop_for, same_bits] {
          ++stats_.frames;
          trace_frame(eof, on_wire);
          const bool attached = std::find(nodes_.begin(), nodes_.end(), tx) != nodes_.end();
          if (attached) {
            tx_ok(tx, eof);
            tx->tx_end(true, now, eof);
          }
          for (BusNode* co : co_senders) {
            CanFrame pending;
            if (std::find(nodes_.begin(), nodes_.end(), co) == nodes_.end() ||
                !co->tx_peek(pending) || !same_bits(pending, frame)) {
              continue;
            }
            tx_ok(co, eof);
            co->tx_end(true, now, eof);
          }
          // Copy: callbacks may attach or detach nodes.
          const std::vector<BusNode*> nodes = nodes_;
          for (BusNode* node : nodes) {
            if (node == tx || node->node_mode() == NodeMode::kOff) continue;
            if (std::find(co_senders.begin(), co_senders.end(), node) != co_senders.end()) continue;
            if (std::find(nodes_.begin(), nodes_.end(), node) == nodes_.end()) continue;
            if (node->counters_.state() == FaultState::kBusOff) continue;
            if (in_sync(node)) {
              rx_ok(node, eof);
              if (deliver && (drop_for.empty() || node->node_name() != drop_for))
                node->rx(on_wire, now, eof);
            } else {
              add_rec(node, 1, eof);
              node->on_error(BusError::kStuff, false, eof);
            }
          }
          later(idle_at, [this, idle_at] { become_idle(idle_at); });
        });
}

void Bus::error_episode(const EpisodeSpec& spec) {
  const Nanos err_at = spec.sof + bit_ns(spec.error_bit);
  const std::uint64_t episode_bits =
      spec.error_bit + spec.flag_bits + kErrorDelimiter + can_timing::kInterframeBits;
  const Nanos idle_at = spec.sof + bit_ns(episode_bits);
  busy_until_ = idle_at;
  stats_.busy_bits += episode_bits;
  later(err_at, [this, spec, err_at, idle_at] {
    ++stats_.error_frames;
    if (spec.tx_error == BusError::kAck) {
      trace_error(err_at, kErrAck, 0);
    } else {
      trace_error(err_at, kErrProt,
                  prot_type(spec.rx_error == BusError::kCrc ? spec.tx_error : spec.rx_error));
    }
    const std::vector<BusNode*> nodes = nodes_;
    auto attached = [this](BusNode* n) {
      return std::find(nodes_.begin(), nodes_.end(), n) != nodes_.end();
    };
    if (spec.tx != nullptr && attached(spec.tx)) {
      if (spec.tx_counts) add_tec(spec.tx, 8, err_at);
      spec.tx->on_error(spec.tx_error, true, err_at);
      spec.tx->tx_end(false, spec.sof, err_at);
    }
    for (BusNode* node : nodes) {
      if (node == spec.tx || !attached(node)) continue;
      if (node->node_mode() == NodeMode::kOff || node->counters_.state() == FaultState::kBusOff)
        continue;
      const bool first = std::find(spec.first_signallers.begin(), spec.first_signallers.end(),
                                   node) != spec.first_signallers.end();
      if (first) {
        // Detected the error first, flagged it, then saw the others' dominant flags.
        add_rec(node, 9, err_at);
        node->on_error(BusError::kForm, false, err_at);
        continue;
      }
      if (!in_sync(node)) {
        add_rec(node, 1, err_at);
        node->on_error(BusError::kStuff, false, err_at);
        continue;
      }
      add_rec(node, 1, err_at);
      node->on_error(spec.rx_error, false, err_at);
    }
    later(idle_at, [this, idle_at] { become_idle(idle_at); });
  });
}

void Bus::trace_frame(Nanos at, const CanFrame& frame) {
  if (trace_) trace_(format_candump(at, name_, frame));
}

void Bus::trace_error(Nanos at, std::uint32_t error_class, std::uint8_t prot) {
  if (!trace_) return;
  // SocketCAN error frame: CAN_ERR_FLAG | class, 8 data bytes, data[2] = protocol error type.
  CanFrame err;
  err.flags = CanFrame::kExtended;
  err.dlc = 8;
  err.data[2] = prot;
  std::string line = format_candump(at, name_, err);
  char id[12];
  std::snprintf(id, sizeof id, "%08X", static_cast<unsigned>(kCanErrFlag | error_class));
  const std::size_t hash = line.find('#');
  line.replace(hash - 8, 8, id);
  trace_(line);
}

std::uint64_t Bus::later(Nanos at, std::function<void()> action) {
  // Events left in the clock's queue after this object is gone do nothing.
  return clock_.schedule(at, [alive = std::weak_ptr<int>(alive_), action = std::move(action)] {
    if (!alive.expired()) action();
  });
}

}  // namespace rtcanboot::twin::can
