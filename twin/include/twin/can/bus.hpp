// The twin's CAN bus: nodes (emulated FlexCANs, host-side endpoints), bit-accurate frame
// timing on the virtual clock, arbitration, acknowledgement, fault confinement (TEC/REC,
// error-passive, bus-off and its recovery), seeded fault injection and a candump-like trace.
// See docs/twin-can.md for the model and its simplifications.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "rtcanboot/types.hpp"
#include "twin/peripheral.hpp"

namespace rtcanboot::twin::can {

using rtcanboot::CanFrame;

enum class FaultState { kErrorActive, kErrorPassive, kBusOff };

// Kinds of protocol errors a node can see (mirrors FlexCAN ESR1 error bits).
enum class BusError { kAck, kBit0, kBit1, kStuff, kForm, kCrc };

const char* to_string(BusError error);
const char* to_string(FaultState state);

// ISO 11898-1 fault confinement counters.
struct ErrorCounters {
  std::uint32_t tec = 0;  // transmit error counter; >= 256 means bus-off
  std::uint32_t rec = 0;  // receive error counter (not incremented further above 127)
  FaultState state() const {
    if (tec >= 256) return FaultState::kBusOff;
    if (tec >= 128 || rec >= 128) return FaultState::kErrorPassive;
    return FaultState::kErrorActive;
  }
};

// How a node takes part in bus traffic right now.
enum class NodeMode {
  kOff,         // not connected (pins not muxed, disabled, frozen, no clock)
  kListenOnly,  // receives, never drives the bus (no ACK, no error flags, no transmission)
  kNormal,      // receives, acknowledges, signals errors, transmits
};

class Bus;

// Something attached to the bus. The bus calls these from clock events.
class BusNode {
 public:
  virtual ~BusNode();
  BusNode() = default;
  BusNode(const BusNode&) = delete;
  BusNode& operator=(const BusNode&) = delete;

  virtual std::string node_name() const = 0;
  // The nominal bit rate the node is configured for (bit/s); 0 when it has none.
  virtual double node_bitrate() const = 0;
  virtual NodeMode node_mode() const = 0;
  // Fill `frame` with the frame the node would send if arbitration started now.
  virtual bool tx_peek(CanFrame& frame) = 0;
  // The frame last peeked won arbitration and is now on the wire (started at `sof`).
  virtual void tx_begin(Nanos sof) { (void)sof; }
  // The transmission ended: success (acknowledged, no error) or an error destroyed it (the
  // node keeps it pending for retransmission unless it decides otherwise).
  virtual void tx_end(bool success, Nanos sof, Nanos eof) = 0;
  // A frame was received correctly (the transmitter does not receive its own frame here).
  virtual void rx(const CanFrame& frame, Nanos sof, Nanos eof) = 0;
  // A protocol error seen by this node (its counters are already updated).
  virtual void on_error(BusError error, bool as_transmitter, Nanos at) {
    (void)error, (void)as_transmitter, (void)at;
  }
  // Fault confinement state changed (also after bus-off recovery).
  virtual void on_fault_state(FaultState from, FaultState to, Nanos at) {
    (void)from, (void)to, (void)at;
  }
  // Whether bus-off recovery (128 x 11 recessive bits) may run now (FlexCAN: CTRL1.BOFFREC=0).
  virtual bool auto_recovery() const { return true; }

  const ErrorCounters& counters() const { return counters_; }
  FaultState fault_state() const { return counters_.state(); }
  // While bus-off: how many of the 128 sequences of 11 recessive bits have been seen.
  std::uint32_t recovery_sequences_seen() const;
  Bus* bus() const { return bus_; }

 protected:
  // Counters may be written by the owner (FlexCAN ECR in freeze mode, soft reset).
  void set_counters(const ErrorCounters& counters);
  // Tell the bus that the node's mode, bit rate or pending transmission may have changed.
  void notify_bus();

 private:
  friend class Bus;
  Bus* bus_ = nullptr;
  ErrorCounters counters_;
  std::uint32_t recovery_left_ = 0;  // 11-recessive-bit sequences still needed to leave bus-off
};

// A received frame with its virtual timestamps (start of frame and end of EOF).
struct TimedFrame {
  CanFrame frame;
  Nanos sof = 0;
  Nanos eof = 0;
};

// A host-side CAN controller in the same process (a master, a scripted device, the socketcand
// server): a transmit FIFO sent in order, a receive queue and optional callbacks.
class Endpoint : public BusNode {
 public:
  struct Options {
    double bitrate = 0;  // 0 = the bus's bit rate
    bool listen_only = false;
    std::uint32_t max_attempts =
        0;  // transmission attempts per frame before it is dropped; 0 = forever
    std::size_t rx_capacity = 1U << 20;  // frames kept in the receive queue (older are dropped)
  };
  explicit Endpoint(std::string name);
  Endpoint(std::string name, Options options);
  ~Endpoint() override;

  // Queue a frame for transmission (at the current virtual time).
  void send(const CanFrame& frame);
  // Oldest received frame, if any.
  std::optional<TimedFrame> receive();
  std::size_t rx_pending() const { return rx_.size(); }
  std::size_t tx_pending() const { return tx_.size(); }
  void clear_tx();
  void set_listen_only(bool listen_only);
  void set_connected(bool connected);
  // Called for every received frame (in addition to queueing it unless `queue` is false).
  void on_receive(std::function<void(const TimedFrame&)> callback, bool queue = true);
  // Called when one of this endpoint's frames was transmitted successfully.
  void on_transmitted(std::function<void(const TimedFrame&)> callback);
  std::uint64_t frames_sent() const { return sent_; }
  std::uint64_t frames_dropped() const { return dropped_tx_; }
  std::uint64_t rx_overflow() const { return rx_overflow_; }

  std::string node_name() const override { return name_; }
  double node_bitrate() const override;
  NodeMode node_mode() const override;
  bool tx_peek(CanFrame& frame) override;
  void tx_end(bool success, Nanos sof, Nanos eof) override;
  void rx(const CanFrame& frame, Nanos sof, Nanos eof) override;

 private:
  std::string name_;
  Options options_;
  bool connected_ = true;
  std::deque<CanFrame> tx_;
  std::uint32_t attempts_ = 0;
  std::deque<TimedFrame> rx_;
  std::function<void(const TimedFrame&)> rx_callback_;
  bool rx_queue_ = true;
  std::function<void(const TimedFrame&)> tx_callback_;
  std::uint64_t sent_ = 0;
  std::uint64_t dropped_tx_ = 0;
  std::uint64_t rx_overflow_ = 0;
};

// Deterministic fault injection. Frames are counted per transmission attempt started on the
// bus (1 = the first frame the bus ever carried; retransmissions count again).
struct FaultRule {
  enum class Action {
    kDrop,           // the frame completes and is acknowledged, but receivers do not get it
                     // (a receiver-side loss; the transmitter sees success)
    kCorrupt,        // a bit is flipped on the wire: receivers see a CRC error, an error frame
                     // follows and the transmitter retransmits (as CAN's CRC would catch it)
    kCorruptSilent,  // a data bit is flipped and the frame is delivered anyway (models a failure
                     // CAN's CRC would catch in practice; for robustness tests of upper layers)
    kErrorFrame,     // an external disturbance: an error flag inside the frame destroys it
  };
  Action action = Action::kDrop;
  std::uint64_t nth = 0;      // fire on this attempt number (1-based); 0 = not by number
  double rate = 0.0;          // otherwise fire with this probability per attempt (seeded);
                              // with neither nth nor rate: every matching attempt
  std::uint32_t id = 0;       // only frames with this identifier ...
  std::uint32_t id_mask = 0;  // ... under this mask (0 = every frame)
  std::uint64_t limit = 0;    // fire at most this many times (0 = unlimited)
  std::string receiver;       // kDrop only: the node (BusNode::node_name(): a board's controller is
                              // "<board>/FLEXCANn") that misses the frame; empty = all
  std::uint64_t fired = 0;    // how many times it fired so far (state)
};

struct BusStats {
  std::uint64_t frames = 0;        // frames completed successfully
  std::uint64_t attempts = 0;      // transmission attempts started
  std::uint64_t error_frames = 0;  // error frames on the wire
  std::uint64_t ack_errors = 0;
  std::uint64_t dropped = 0;    // frames dropped by fault injection (kDrop)
  std::uint64_t busy_bits = 0;  // bit times the bus was not idle
};

class Bus {
 public:
  // `name` is the channel name used in the trace (e.g. "can0").
  Bus(Clock& clock, Reporter& reporter, std::uint32_t bitrate, std::string name = "can0");
  ~Bus();
  Bus(const Bus&) = delete;
  Bus& operator=(const Bus&) = delete;

  std::uint32_t bitrate() const { return bitrate_; }
  // Another bit rate for the whole bus (the master's adapter and what the nodes were told), as
  // after a CiA 305 LSS activate bit timing. For `grace` nodes still at the old rate are not
  // reported: CiA 305 keeps the bus silent for the switch delay while every node switches. A
  // frame on the bus meanwhile still meets them as out of sync.
  void set_bitrate(std::uint32_t bitrate, Nanos grace = 0);
  const std::string& name() const { return name_; }
  Clock& clock() { return clock_; }

  void attach(BusNode& node);
  void detach(BusNode& node);

  // A node reports that its state or pending transmission changed.
  void notify();

  // Bit rates within this relative tolerance count as matching (default 0.5 %).
  void set_bitrate_tolerance(double tolerance) { tolerance_ = tolerance; }
  bool bitrate_matches(double node_bitrate) const;

  // Fault injection.
  void set_seed(std::uint64_t seed) { rng_ = seed ^ 0x9E3779B97F4A7C15ULL; }
  void add_fault(const FaultRule& rule) { faults_.push_back(rule); }
  void clear_faults() { faults_.clear(); }
  const std::vector<FaultRule>& faults() const { return faults_; }
  // Puts `node` into bus-off at `at` (applied when the bus is next idle at or after `at`).
  void inject_bus_off(BusNode& node, Nanos at);

  // Trace: one candump -L style line per frame or error frame, without a trailing newline.
  void set_trace(std::function<void(const std::string&)> sink) { trace_ = std::move(sink); }

  const BusStats& stats() const { return stats_; }
  bool idle() const { return !busy_; }
  // End of the current frame or error frame and its intermission (valid while !idle()).
  Nanos busy_until() const { return busy_until_; }
  // Recovery sequences a bus-off node has seen so far (0 when not bus-off).
  std::uint32_t recovery_progress(const BusNode& node) const;
  std::uint64_t bit_ns(std::uint64_t bits) const;

 private:
  struct Candidate {
    BusNode* node;
    CanFrame frame;
  };
  std::uint64_t later(Nanos at, std::function<void()> action);
  void schedule_arbitration(Nanos at);
  void arbitrate();
  struct EpisodeSpec {
    BusNode* tx = nullptr;
    Nanos sof = 0;
    std::uint32_t error_bit = 0;  // bit (after SOF) where the error flag starts
    std::uint32_t flag_bits = 0;  // length of the (superposed) error flag
    BusError tx_error = BusError::kBit1;
    BusError rx_error = BusError::kStuff;
    bool tx_counts = true;  // TEC += 8
    std::vector<BusNode*> first_signallers;
  };
  void error_episode(const EpisodeSpec& spec);
  void become_idle(Nanos at);
  void consume_idle(Nanos until);
  void schedule_recovery();
  void apply_counters(BusNode* node, const ErrorCounters& counters, Nanos at);
  void add_tec(BusNode* node, std::uint32_t amount, Nanos at);
  void add_rec(BusNode* node, std::uint32_t amount, Nanos at);
  void tx_ok(BusNode* node, Nanos at);
  void rx_ok(BusNode* node, Nanos at);
  void check_modes();
  bool in_sync(const BusNode* node) const;
  const FaultRule* pick_fault(const CanFrame& frame);
  std::uint64_t next_random();
  void trace_frame(Nanos at, const CanFrame& frame);
  void trace_error(Nanos at, std::uint32_t error_class, std::uint8_t prot_type);

  Clock& clock_;
  Reporter& reporter_;
  std::uint32_t bitrate_;
  Nanos mismatch_grace_until_ = 0;
  std::string name_;
  double tolerance_ = 0.005;
  std::vector<BusNode*> nodes_;
  std::vector<std::string> mismatch_reported_;
  bool busy_ = false;
  Nanos busy_until_ = 0;
  bool arbitration_pending_ = false;
  std::uint64_t arbitration_event_ = 0;
  Nanos idle_since_ = 0;
  std::uint64_t recovery_event_ = 0;
  bool recovery_scheduled_ = false;
  std::vector<BusNode*> bus_off_injections_;  // applied when the bus is next idle
  std::vector<FaultRule> faults_;
  std::uint64_t rng_ = 0x9E3779B97F4A7C15ULL;
  std::function<void(const std::string&)> trace_;
  BusStats stats_;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

// "(12.345678) can0 581#4300100000000000" (extended ids with 8 digits, "R" for remote frames).
std::string format_candump(Nanos at, std::string_view channel, const CanFrame& frame);

// The arbitration priority of a frame: lower wins (bit-wise comparison of the arbitration
// field, dominant = 0). Standard frames beat extended frames with the same base id; data frames
// beat remote frames.
std::uint64_t arbitration_key(const CanFrame& frame);

}  // namespace rtcanboot::twin::can
