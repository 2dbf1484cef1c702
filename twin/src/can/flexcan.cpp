#include "twin/can/flexcan.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>

#include "rtcanboot/can_timing.hpp"

namespace rtcanboot::twin::can {

namespace {

// Register offsets.
constexpr std::uint32_t kMcr = 0x000, kCtrl1 = 0x004, kTimer = 0x008, kRxmgmask = 0x010,
                        kRx14mask = 0x014, kRx15mask = 0x018, kEcr = 0x01C, kEsr1 = 0x020,
                        kImask2 = 0x024, kImask1 = 0x028, kIflag2 = 0x02C, kIflag1 = 0x030,
                        kCtrl2 = 0x034, kEsr2 = 0x038, kCrcr = 0x044, kRxfgmask = 0x048,
                        kRxfir = 0x04C, kCbt = 0x050, kDbg1 = 0x058, kDbg2 = 0x05C,
                        kRamStart = 0x080, kRamEnd = 0x480, kRximrStart = 0x880, kRximrEnd = 0x980,
                        kGfwr = 0x9E0, kFdctrl = 0xC00, kFdcbt = 0xC04, kFdcrc = 0xC08;

// MCR bits.
constexpr std::uint32_t kMdis = 1U << 31, kFrz = 1U << 30, kRfen = 1U << 29, kHalt = 1U << 28,
                        kNotrdy = 1U << 27, kWakmsk = 1U << 26, kSoftrst = 1U << 25,
                        kFrzack = 1U << 24, kSupv = 1U << 23, kSlfwak = 1U << 22, kWrnen = 1U << 21,
                        kLpmack = 1U << 20, kWaksrc = 1U << 19, kDoze = 1U << 18,
                        kSrxdis = 1U << 17, kIrmq = 1U << 16, kDma = 1U << 15, kLprioen = 1U << 13,
                        kAen = 1U << 12, kFden = 1U << 11, kIdamMask = 3U << 8, kMaxmbMask = 0x7FU;
constexpr std::uint32_t kMcrReset = 0xD890000FU;
constexpr std::uint32_t kMcrFreezeOnly = kMaxmbMask | kIdamMask | kFden | kAen | kLprioen | kDma |
                                         kIrmq | kSrxdis | kWaksrc | kWrnen | kSupv | kRfen;
constexpr std::uint32_t kMcrAnytime = kMdis | kFrz | kHalt | kWakmsk | kSlfwak | kDoze;
constexpr std::uint32_t kMcrStatus = kNotrdy | kSoftrst | kFrzack | kLpmack;

// CTRL1 bits.
constexpr std::uint32_t kBoffmsk = 1U << 15, kErrmsk = 1U << 14, kLpb = 1U << 12,
                        kTwrnmsk = 1U << 11, kRwrnmsk = 1U << 10, kSmp = 1U << 7,
                        kBoffrec = 1U << 6, kTsyn = 1U << 5, kLbuf = 1U << 4, kLom = 1U << 3;
constexpr std::uint32_t kCtrl1FreezeOnly = 0xFFFF0000U | kSmp | kLom | kLpb | kTsyn | kLbuf | 0x7U;
constexpr std::uint32_t kCtrl1Anytime = kBoffmsk | kErrmsk | kBoffrec;
constexpr std::uint32_t kCtrl1WarnMasks = kTwrnmsk | kRwrnmsk;  // writable only with MCR.WRNEN

// CTRL2 bits.
constexpr std::uint32_t kErrmskFast = 1U << 31, kBoffdonemsk = 1U << 30, kMrp = 1U << 18,
                        kRrs = 1U << 17, kEacen = 1U << 16;
constexpr std::uint32_t kCtrl2FreezeOnly = 0x1FFFD800U;
constexpr std::uint32_t kCtrl2Reset = 0x00B00000U;  // TASD = 0x16

// ESR1 bits.
constexpr std::uint32_t kWakint = 1U << 0, kErrint = 1U << 1, kBoffint = 1U << 2, kEsrTx = 1U << 6,
                        kEsrIdle = 1U << 7, kRxwrn = 1U << 8, kTxwrn = 1U << 9, kStferr = 1U << 10,
                        kFrmerr = 1U << 11, kCrcerr = 1U << 12, kAckerr = 1U << 13,
                        kBit0err = 1U << 14, kBit1err = 1U << 15, kRwrnint = 1U << 16,
                        kTwrnint = 1U << 17, kSynch = 1U << 18, kBoffdoneint = 1U << 19,
                        kErrintFast = 1U << 20, kErrovr = 1U << 21;
constexpr std::uint32_t kEsr1ReadClear =
    kStferr | kFrmerr | kCrcerr | kAckerr | kBit0err | kBit1err;
constexpr std::uint32_t kEsr1W1c = kWakint | kErrint | kBoffint | kRwrnint | kTwrnint |
                                   kBoffdoneint | kErrintFast | kErrovr | kEsr1ReadClear;

// CBT (FLEXCAN3).
constexpr std::uint32_t kBtf = 1U << 31;

// Message buffer CODE values.
constexpr unsigned kRxFull = 0x2, kRxEmpty = 0x4, kRxOverrun = 0x6;
constexpr unsigned kTxInactive = 0x8, kTxAbort = 0x9, kTxData = 0xC;
constexpr std::uint32_t kCsSrr = 1U << 22, kCsIde = 1U << 21, kCsRtr = 1U << 20;

// RX FIFO flags in IFLAG1.
constexpr std::uint32_t kFifoAvailable = 1U << 5, kFifoWarning = 1U << 6, kFifoOverflow = 1U << 7;
constexpr std::size_t kFifoDepth = 6;

std::string hex(std::uint32_t v) {
  char b[16];
  std::snprintf(b, sizeof b, "0x%08X", static_cast<unsigned>(v));
  return b;
}

std::uint32_t data_word(const CanFrame& f, unsigned first) {
  std::uint32_t w = 0;
  for (unsigned i = 0; i < 4; ++i)
    w |= static_cast<std::uint32_t>(f.data[first + i]) << (24 - 8 * i);
  return w;
}

}  // namespace

std::uint32_t FlexCan::base_address(unsigned instance) {
  switch (instance) {
    case 1:
      return kBase1;
    case 2:
      return kBase2;
    default:
      return kBase3;
  }
}

unsigned FlexCan::default_irq(unsigned instance) {
  switch (instance) {
    case 1:
      return 36;
    case 2:
      return 37;
    default:
      return 154;
  }
}

FlexCan::FlexCan(FlexCanConfig config, Clock& clock, InterruptController& irq, Reporter& reporter)
    : config_(std::move(config)), clock_(clock), irq_(irq), reporter_(reporter) {
  if (config_.instance < 1 || config_.instance > 3) config_.instance = 3;
  if (config_.irq == 0) config_.irq = default_irq(config_.instance);
  name_ = "FLEXCAN" + std::to_string(config_.instance);
  hard_reset();
}

FlexCan::~FlexCan() {
  if (mode_event_pending_) clock_.cancel(mode_event_);
  if (bus() != nullptr) bus()->detach(*this);
}

std::string FlexCan::name() const {
  return name_;
}

void FlexCan::report(Severity severity, const std::string& message, std::uint32_t pc) {
  reporter_.report(severity, name_, message, pc);
}

// ---------------------------------------------------------------------------------------------
// Reset and modes

void FlexCan::hard_reset() {
  if (mode_event_pending_) {
    clock_.cancel(mode_event_);
    mode_event_pending_ = false;
  }
  mcr_ = kMcrReset & ~kMcrStatus;
  ctrl1_ = 0;
  ctrl2_ = kCtrl2Reset;
  esr1_ = 0;
  imask1_ = imask2_ = iflag1_ = iflag2_ = 0;
  rxmgmask_ = rx14mask_ = rx15mask_ = rxfgmask_ = 0xFFFFFFFFU;
  cbt_ = fdctrl_ = fdcbt_ = gfwr_ = 0;
  ram_.fill(0);
  rximr_.fill(0);
  disabled_ = true;
  frozen_ = false;
  normal_ = false;
  softrst_ = false;
  freeze_refusing_ = false;
  clock_warned_ = false;
  timer_base_ = 0;
  timer_epoch_ = clock_.now();
  timer_running_ = false;
  locked_mb_ = -1;
  serviced_.fill(false);
  smb_.reset();
  tx_peeked_mb_ = -1;
  tx_inflight_mb_ = -1;
  tx_inflight_deactivated_ = false;
  abort_pending_.fill(false);
  freeze_waits_for_tx_ = false;
  fifo_.clear();
  fifo_output_ = Stored{};
  tx_warn_ = rx_warn_ = false;
  set_counters(ErrorCounters{});
  if (irq_level_) {
    irq_level_ = false;
    irq_.set_irq_level(config_.irq, false);
  }
  notify_bus();
}

void FlexCan::reset(bool warm) {
  (void)warm;  // FlexCAN is fully reset by every system reset.
  hard_reset();
}

void FlexCan::soft_reset() {
  // RM: MCR (except MDIS), TIMER, ECR, ESR1, ESR2, IMASKx, IFLAGx and CRCR are reset; CTRL1,
  // CTRL2, the masks, RXIMR and the message buffers are not.
  mcr_ = (kMcrReset & ~kMcrStatus & ~kMdis) | (mcr_ & kMdis);
  timer_base_ = 0;
  timer_epoch_ = clock_.now();
  esr1_ = 0;
  imask1_ = imask2_ = iflag1_ = iflag2_ = 0;
  fifo_.clear();
  locked_mb_ = -1;
  smb_.reset();
  abort_pending_.fill(false);
  freeze_refusing_ = false;  // an injected freeze refusal ends with the soft reset
  tx_warn_ = rx_warn_ = false;
  set_counters(ErrorCounters{});
  update_irq();
}

std::uint32_t FlexCan::clock_hz() const {
  return config_.clock_hz ? config_.clock_hz() : 0U;
}

void FlexCan::schedule_mode_update() {
  if (mode_event_pending_) clock_.cancel(mode_event_);
  mode_event_pending_ = true;
  mode_event_ = later(clock_.now() + config_.handshake_ns, [this] {
    mode_event_pending_ = false;
    update_mode();
  });
}

void FlexCan::update_mode() {
  if (clock_hz() == 0) {
    if (!clock_warned_) {
      clock_warned_ = true;
      report(Severity::kWarning,
             "no CAN clock (CCM CAN_CLK_ROOT or the CCGR gate is off): mode handshakes do not "
             "complete",
             0);
    }
    return;
  }
  clock_warned_ = false;
  const Nanos now = clock_.now();
  const bool want_disable = (mcr_ & kMdis) != 0;
  if (softrst_ && !want_disable) {
    softrst_ = false;
    soft_reset();
  }
  const bool want_freeze = (mcr_ & kFrz) != 0 && (mcr_ & kHalt) != 0;
  if ((want_disable || want_freeze) && tx_inflight_mb_ >= 0) {
    freeze_waits_for_tx_ = true;  // completes at the end of the frame on the wire
    return;
  }
  freeze_waits_for_tx_ = false;
  if ((want_disable || want_freeze) && node_mode() != NodeMode::kOff && bus() != nullptr &&
      !bus()->idle()) {
    // Freeze and disable are granted only after the frame being received has ended.
    if (mode_event_pending_) clock_.cancel(mode_event_);
    mode_event_pending_ = true;
    mode_event_ = later(std::max(bus()->busy_until(), now + 1), [this] {
      mode_event_pending_ = false;
      update_mode();
    });
    return;
  }
  if (!want_freeze) freeze_refusing_ = false;  // the refused request was withdrawn
  if (want_disable) {
    if (normal_) leave_normal(now);
    disabled_ = true;
    frozen_ = false;
  } else {
    disabled_ = false;
    if (want_freeze) {
      // Errata 9595: a bus-off FlexCAN may not enter freeze mode (the SDK soft-resets after a
      // timeout). The twin does not acknowledge freeze while bus-off.
      if (fault_state() == FaultState::kBusOff) return;
      if (!frozen_ && (freeze_refusing_ || config_.freeze_refusals > 0)) {
        if (!freeze_refusing_) {
          freeze_refusing_ = true;
          ++freeze_refused_count_;
          if (config_.freeze_refusals != ~0U) --config_.freeze_refusals;
          report(Severity::kWarning,
                 "freeze request (MCR.FRZ+HALT) not acknowledged: injected fault", 0);
        }
        notify_bus();
        update_irq();
        return;
      }
      if (normal_) leave_normal(now);
      frozen_ = true;
    } else {
      frozen_ = false;
      if (!normal_) enter_normal(now);
    }
  }
  notify_bus();
  update_irq();
  loopback_kick();
}

void FlexCan::enter_normal(Nanos now) {
  normal_ = true;
  timer_running_ = true;
  timer_epoch_ = now;
  const unsigned tq = tq_per_bit();
  if (tq < 8 || tq > 25) {
    report(Severity::kWarning,
           "bit timing has " + std::to_string(tq) + " time quanta per bit (CAN needs 8..25)", 0);
  }
  if ((mcr_ & kFden) != 0)
    report(Severity::kWarning, "CAN FD (MCR.FDEN) is not modelled: classic frames only", 0);
}

void FlexCan::leave_normal(Nanos now) {
  timer_base_ = timer_at(now);
  timer_running_ = false;
  normal_ = false;
}

void FlexCan::config_changed() {
  if (clock_warned_ || freeze_waits_for_tx_) schedule_mode_update();
  notify_bus();
}

// ---------------------------------------------------------------------------------------------
// Timing

unsigned FlexCan::tq_per_bit() const {
  if (config_.instance == 3 && (cbt_ & kBtf) != 0) {
    const unsigned prop = (cbt_ >> 10) & 0x3FU, pseg1 = (cbt_ >> 5) & 0x1FU, pseg2 = cbt_ & 0x1FU;
    return 1 + (prop + 1) + (pseg1 + 1) + (pseg2 + 1);
  }
  const unsigned prop = ctrl1_ & 0x7U, pseg1 = (ctrl1_ >> 19) & 0x7U, pseg2 = (ctrl1_ >> 16) & 0x7U;
  return 1 + (prop + 1) + (pseg1 + 1) + (pseg2 + 1);
}

double FlexCan::bitrate() const {
  const std::uint32_t f = clock_hz();
  if (f == 0) return 0;
  unsigned presdiv = 0;
  if (config_.instance == 3 && (cbt_ & kBtf) != 0) {
    presdiv = (cbt_ >> 21) & 0x3FFU;
  } else {
    presdiv = (ctrl1_ >> 24) & 0xFFU;
  }
  return static_cast<double>(f) / (static_cast<double>(presdiv + 1) * tq_per_bit());
}

Nanos FlexCan::bit_time_ns() const {
  const double br = bitrate();
  if (br <= 0) return 0;
  return static_cast<Nanos>(std::llround(1e9 / br));
}

std::uint16_t FlexCan::timer_at(Nanos t) const {
  if (!timer_running_) return timer_base_;
  const Nanos bit = bit_time_ns();
  if (bit == 0 || t < timer_epoch_) return timer_base_;
  return static_cast<std::uint16_t>(timer_base_ + (t - timer_epoch_) / bit);
}

// ---------------------------------------------------------------------------------------------
// Bus node

NodeMode FlexCan::node_mode() const {
  if (!normal_) return NodeMode::kOff;
  if (config_.pins_muxed && !config_.pins_muxed()) return NodeMode::kOff;
  if (clock_hz() == 0) return NodeMode::kOff;
  if ((ctrl1_ & kLpb) != 0) return NodeMode::kOff;
  return (ctrl1_ & kLom) != 0 ? NodeMode::kListenOnly : NodeMode::kNormal;
}

bool FlexCan::auto_recovery() const {
  return (ctrl1_ & kBoffrec) == 0;
}

unsigned FlexCan::first_mb() const {
  if ((mcr_ & kRfen) == 0) return 0;
  const unsigned rffn = (ctrl2_ >> 24) & 0xFU;
  return 8 + 2 * rffn;
}

unsigned FlexCan::last_mb() const {
  return std::min<unsigned>(mcr_ & kMaxmbMask, 63);
}

void FlexCan::set_code(unsigned mb, unsigned c) {
  ram_[mb * 4] = (ram_[mb * 4] & ~0x0F000000U) | (static_cast<std::uint32_t>(c & 0xFU) << 24);
}

CanFrame FlexCan::mb_frame(unsigned mb) const {
  const std::uint32_t cs = ram_[mb * 4];
  const std::uint32_t id = ram_[mb * 4 + 1];
  CanFrame f;
  if ((cs & kCsIde) != 0) {
    f.flags |= CanFrame::kExtended;
    f.id = id & 0x1FFFFFFFU;
  } else {
    f.id = (id >> 18) & 0x7FFU;
  }
  if ((cs & kCsRtr) != 0) f.flags |= CanFrame::kRemote;
  f.dlc = static_cast<std::uint8_t>((cs >> 16) & 0xFU);
  const std::uint32_t w0 = ram_[mb * 4 + 2], w1 = ram_[mb * 4 + 3];
  for (unsigned i = 0; i < 4; ++i) {
    f.data[i] = static_cast<std::uint8_t>(w0 >> (24 - 8 * i));
    f.data[4 + i] = static_cast<std::uint8_t>(w1 >> (24 - 8 * i));
  }
  return f;
}

bool FlexCan::tx_peek(CanFrame& frame) {
  if (!normal_) return false;
  const bool lprio = (mcr_ & kLprioen) != 0;
  const bool lbuf = (ctrl1_ & kLbuf) != 0;
  int best = -1;
  std::uint64_t best_key = 0;
  for (unsigned mb = first_mb(); mb <= last_mb(); ++mb) {
    if (code(mb) != kTxData) continue;
    if (lbuf) {
      best = static_cast<int>(mb);
      break;
    }
    const std::uint64_t prio = lprio ? (ram_[mb * 4 + 1] >> 29) & 0x7U : 0U;
    const std::uint64_t key = (prio << 40) | arbitration_key(mb_frame(mb));
    if (best < 0 || key < best_key) {
      best = static_cast<int>(mb);
      best_key = key;
    }
  }
  tx_peeked_mb_ = best;
  if (best < 0) return false;
  frame = mb_frame(static_cast<unsigned>(best));
  if (frame.dlc > 8) frame.dlc = 8;
  return true;
}

void FlexCan::tx_begin(Nanos sof) {
  (void)sof;
  tx_inflight_mb_ = tx_peeked_mb_;
  tx_inflight_deactivated_ = false;
  if (tx_inflight_mb_ >= 0) {
    tx_inflight_frame_ = mb_frame(static_cast<unsigned>(tx_inflight_mb_));
    if (tx_inflight_frame_.dlc > 8) tx_inflight_frame_.dlc = 8;
  }
}

void FlexCan::tx_end(bool success, Nanos sof, Nanos eof) {
  (void)eof;
  const int mb = tx_inflight_mb_;
  tx_inflight_mb_ = -1;
  if (mb < 0) return;
  const auto m = static_cast<unsigned>(mb);
  if (!tx_inflight_deactivated_) {
    if (success) {
      const std::uint16_t ts = timer_at(sof + bit_time_ns());
      ram_[m * 4] = (ram_[m * 4] & 0xF0FF0000U & ~0x0F000000U) |
                    (static_cast<std::uint32_t>(kTxInactive) << 24) | ts;
      abort_pending_[m] = false;
      ++frames_transmitted_;
      set_iflag(m);
    } else if (abort_pending_[m]) {
      abort_pending_[m] = false;
      set_code(m, kTxAbort);
      set_iflag(m);
    }
  }
  if (success && (mcr_ & kSrxdis) == 0) receive(tx_inflight_frame_, sof);
  if (freeze_waits_for_tx_) schedule_mode_update();
  if (success && (ctrl1_ & kLpb) != 0) loopback_kick();
}

void FlexCan::loopback_kick() {
  if ((ctrl1_ & kLpb) == 0 || !normal_ || loopback_busy_) return;
  CanFrame f;
  if (!tx_peek(f)) return;
  const double br = bitrate();
  if (br <= 0) return;
  const Nanos sof = clock_.now();
  tx_begin(sof);
  loopback_busy_ = true;
  const Nanos eof = sof + can_timing::bits_to_ns(can_timing::frame_bits(f),
                                                 static_cast<std::uint32_t>(std::lround(br)));
  later(eof, [this, sof, eof] {
    loopback_busy_ = false;
    tx_end(true, sof, eof);
  });
}

void FlexCan::rx(const CanFrame& frame, Nanos sof, Nanos eof) {
  (void)eof;
  receive(frame, sof);
}

void FlexCan::on_error(BusError error, bool as_transmitter, Nanos at) {
  (void)as_transmitter, (void)at;
  std::uint32_t bit = 0;
  switch (error) {
    case BusError::kAck:
      bit = kAckerr;
      break;
    case BusError::kBit0:
      bit = kBit0err;
      break;
    case BusError::kBit1:
      bit = kBit1err;
      break;
    case BusError::kStuff:
      bit = kStferr;
      break;
    case BusError::kForm:
      bit = kFrmerr;
      break;
    case BusError::kCrc:
      bit = kCrcerr;
      break;
  }
  if ((esr1_ & kEsr1ReadClear) != 0) esr1_ |= kErrovr;
  esr1_ |= bit | kErrint;
  const ErrorCounters& c = counters();
  if ((mcr_ & kWrnen) != 0) {
    if (c.tec >= 96 && c.tec < 256 && !tx_warn_) esr1_ |= kTwrnint;
    if (c.rec >= 96 && !rx_warn_) esr1_ |= kRwrnint;
  }
  tx_warn_ = c.tec >= 96;
  rx_warn_ = c.rec >= 96;
  update_irq();
}

void FlexCan::on_fault_state(FaultState from, FaultState to, Nanos at) {
  (void)at;
  if (to == FaultState::kBusOff) esr1_ |= kBoffint;
  if (from == FaultState::kBusOff) {
    esr1_ |= kBoffdoneint;
    if ((mcr_ & (kFrz | kHalt)) == (kFrz | kHalt) && !frozen_) schedule_mode_update();
  }
  update_irq();
}

// ---------------------------------------------------------------------------------------------
// Reception

bool FlexCan::fifo_accepts(const CanFrame& frame, std::uint32_t& filter_hit) const {
  const unsigned idam = (mcr_ >> 8) & 3U;
  if (idam == 3) return false;  // format D: reject all
  const unsigned rffn = (ctrl2_ >> 24) & 0xFU;
  const unsigned elements = (rffn + 1) * 8;
  // With IRMQ the first 8 + 2·RFFN elements (at most 32) use RXIMR, the others RXFGMASK.
  const unsigned individual = (mcr_ & kIrmq) != 0 ? std::min(8U + 2U * rffn, 32U) : 0U;
  const bool ext = frame.extended();
  const bool rtr = frame.remote();
  for (unsigned e = 0; e < elements; ++e) {
    const std::uint32_t word = ram_[24 + e];
    const std::uint32_t mask = e < individual ? rximr_[e] : rxfgmask_;
    bool hit = false;
    if (idam == 0) {
      // Format A: RTR 31, IDE 30, standard id 29:19 or extended id 29:1.
      const bool ide_ok = ((word >> 30) & 1U) == (ext ? 1U : 0U) || ((mask >> 30) & 1U) == 0;
      const bool rtr_ok = ((word >> 31) & 1U) == (rtr ? 1U : 0U) || ((mask >> 31) & 1U) == 0;
      std::uint32_t id_ok;
      if (ext) {
        id_ok = ((word >> 1) ^ frame.id) & (mask >> 1) & 0x1FFFFFFFU;
      } else {
        id_ok = ((word >> 19) ^ frame.id) & (mask >> 19) & 0x7FFU;
      }
      hit = ide_ok && rtr_ok && id_ok == 0;
    } else if (idam == 1) {
      // Format B: two filters, RTR/IDE/14-bit id in 31:16 and 15:0.
      for (unsigned half = 0; half < 2 && !hit; ++half) {
        const std::uint32_t w = half == 0 ? word >> 16 : word & 0xFFFFU;
        const std::uint32_t m = half == 0 ? mask >> 16 : mask & 0xFFFFU;
        const bool ide_ok = ((w >> 14) & 1U) == (ext ? 1U : 0U) || ((m >> 14) & 1U) == 0;
        const bool rtr_ok = ((w >> 15) & 1U) == (rtr ? 1U : 0U) || ((m >> 15) & 1U) == 0;
        std::uint32_t diff;
        if (ext) {
          diff = ((w & 0x3FFFU) ^ (frame.id >> 15)) & m & 0x3FFFU;
        } else {
          diff = (((w >> 3) & 0x7FFU) ^ frame.id) & (m >> 3) & 0x7FFU;
        }
        hit = ide_ok && rtr_ok && diff == 0;
      }
    } else {
      // Format C: four 8-bit partial ids (the 8 most significant id bits).
      const std::uint32_t top = ext ? (frame.id >> 21) & 0xFFU : (frame.id >> 3) & 0xFFU;
      for (unsigned q = 0; q < 4 && !hit; ++q) {
        const unsigned shift = 24 - 8 * q;
        hit = (((word >> shift) ^ top) & (mask >> shift) & 0xFFU) == 0;
      }
    }
    if (hit) {
      filter_hit = e;
      return true;
    }
  }
  return false;
}

bool FlexCan::fifo_push(const CanFrame& frame, Nanos sof, std::uint32_t filter_hit) {
  if (fifo_.size() >= kFifoDepth) {
    iflag1_ |= kFifoOverflow;
    ++fifo_overflows_;
    ++lost_frames_;
    update_irq();
    return false;
  }
  Stored s;
  s.frame = frame;
  s.timestamp = timer_at(sof + bit_time_ns());
  s.filter_hit = filter_hit;
  fifo_.push_back(s);
  if (fifo_.size() == 1) fifo_output_ = fifo_.front();
  if (fifo_.size() == kFifoDepth - 1) iflag1_ |= kFifoWarning;
  iflag1_ |= kFifoAvailable;
  update_irq();
  return true;
}

void FlexCan::fifo_pop() {
  if (fifo_.empty()) return;
  fifo_.pop_front();
  if (!fifo_.empty()) {
    fifo_output_ = fifo_.front();
    iflag1_ |= kFifoAvailable;
  }
}

std::optional<unsigned> FlexCan::match_mb(const CanFrame& frame) const {
  const bool irmq = (mcr_ & kIrmq) != 0;
  const std::uint32_t frame_word =
      frame.extended() ? (frame.id & 0x1FFFFFFFU) : (frame.id & 0x7FFU) << 18;
  std::optional<unsigned> last_busy;
  for (unsigned mb = first_mb(); mb <= last_mb(); ++mb) {
    const unsigned c = code(mb);
    if (c != kRxEmpty && c != kRxFull && c != kRxOverrun) continue;
    const std::uint32_t cs = ram_[mb * 4];
    const std::uint32_t full_mask = irmq ? rximr_[mb]
                                         : (mb == 14   ? rx14mask_
                                            : mb == 15 ? rx15mask_
                                                       : rxmgmask_);
    const bool ide_differs = ((cs & kCsIde) != 0) != frame.extended();
    const bool rtr_differs = ((cs & kCsRtr) != 0) != frame.remote();
    if ((ctrl2_ & kEacen) != 0) {
      // CTRL2.EACEN=1: IDE and RTR are compared under mask bits 30 and 31.
      if (ide_differs && (full_mask & (1U << 30)) != 0) continue;
      if (rtr_differs && (full_mask & (1U << 31)) != 0) continue;
    } else if (ide_differs) {
      continue;  // EACEN=0: IDE always compared, RTR never
    }
    const std::uint32_t mask = full_mask & (frame.extended() ? 0x1FFFFFFFU : 0x1FFC0000U);
    if (((ram_[mb * 4 + 1] ^ frame_word) & mask) != 0) continue;
    if (!irmq) return mb;  // legacy: the first matching buffer, free or not
    const bool free = c == kRxEmpty || serviced_[mb];
    if (free) return mb;
    last_busy = mb;
  }
  return last_busy;  // no free one: the last matching buffer is overwritten (OVERRUN)
}

void FlexCan::move_in(unsigned mb, const CanFrame& frame, std::uint16_t timestamp) {
  const unsigned c = code(mb);
  const bool unread = (c == kRxFull || c == kRxOverrun) && !serviced_[mb];
  if (unread) {
    ++overruns_;
    ++lost_frames_;
  }
  std::uint32_t cs = (static_cast<std::uint32_t>(unread ? kRxOverrun : kRxFull) << 24) |
                     (static_cast<std::uint32_t>(std::min<unsigned>(frame.dlc, 15U)) << 16) |
                     timestamp;
  if (frame.extended()) cs |= kCsIde | kCsSrr;
  if (frame.remote()) cs |= kCsRtr;
  ram_[mb * 4] = cs;
  const std::uint32_t id = frame.extended() ? (frame.id & 0x1FFFFFFFU) : (frame.id & 0x7FFU) << 18;
  ram_[mb * 4 + 1] = (ram_[mb * 4 + 1] & 0xE0000000U) | id;
  CanFrame f = frame;
  for (unsigned i = std::min<unsigned>(f.dlc, 8U); i < 8; ++i) f.data[i] = 0;
  ram_[mb * 4 + 2] = data_word(f, 0);
  ram_[mb * 4 + 3] = data_word(f, 4);
  serviced_[mb] = false;
  if ((ctrl1_ & kTsyn) != 0 && mb == first_mb()) {
    timer_base_ = 0;
    timer_epoch_ = clock_.now();
  }
  set_iflag(mb);
}

void FlexCan::receive(const CanFrame& frame, Nanos sof) {
  ++frames_received_;
  // Remote frames are stored only with CTRL2.RRS=1 (automatic answers are not modelled).
  if (frame.remote() && (ctrl2_ & kRrs) == 0) return;
  const std::uint16_t ts = timer_at(sof + bit_time_ns());
  const bool rfen = (mcr_ & kRfen) != 0;
  auto try_fifo = [&]() {
    std::uint32_t hit = 0;
    if (!rfen || !fifo_accepts(frame, hit)) return false;
    fifo_push(frame, sof, hit);
    return true;
  };
  auto try_mbs = [&]() {
    const std::optional<unsigned> mb = match_mb(frame);
    if (!mb) return false;
    if (locked_mb_ == static_cast<int>(*mb)) {
      // The move-in waits in the serial message buffer until the CPU unlocks the MB.
      if (smb_) ++lost_frames_;
      smb_ = std::make_pair(frame, ts);
      return true;
    }
    move_in(*mb, frame, ts);
    return true;
  };
  if ((ctrl2_ & kMrp) == 0) {
    if (!try_fifo()) try_mbs();
  } else {
    if (!try_mbs()) try_fifo();
  }
}

void FlexCan::lock(unsigned mb) {
  if (locked_mb_ == static_cast<int>(mb)) return;
  unlock();
  locked_mb_ = static_cast<int>(mb);
}

void FlexCan::unlock() {
  if (locked_mb_ < 0) return;
  locked_mb_ = -1;
  if (smb_) {
    const auto [frame, ts] = *smb_;
    smb_.reset();
    if (const std::optional<unsigned> mb = match_mb(frame)) move_in(*mb, frame, ts);
  }
}

// ---------------------------------------------------------------------------------------------
// Interrupts

void FlexCan::set_iflag(unsigned bit) {
  if (bit < 32) {
    iflag1_ |= 1U << bit;
  } else {
    iflag2_ |= 1U << (bit - 32);
  }
  update_irq();
}

void FlexCan::update_irq() {
  bool level = (iflag1_ & imask1_) != 0 || (iflag2_ & imask2_) != 0;
  level = level || ((esr1_ & kErrint) != 0 && (ctrl1_ & kErrmsk) != 0);
  level = level || ((esr1_ & kBoffint) != 0 && (ctrl1_ & kBoffmsk) != 0);
  level = level || ((esr1_ & kRwrnint) != 0 && (ctrl1_ & kRwrnmsk) != 0);
  level = level || ((esr1_ & kTwrnint) != 0 && (ctrl1_ & kTwrnmsk) != 0);
  level = level || ((esr1_ & kBoffdoneint) != 0 && (ctrl2_ & kBoffdonemsk) != 0);
  level = level || ((esr1_ & kErrintFast) != 0 && (ctrl2_ & kErrmskFast) != 0);
  level = level || ((esr1_ & kWakint) != 0 && (mcr_ & kWakmsk) != 0);
  if (level != irq_level_) {
    irq_level_ = level;
    irq_.set_irq_level(config_.irq, level);
  }
}

// ---------------------------------------------------------------------------------------------
// Register access

std::uint32_t FlexCan::read(std::uint32_t offset, unsigned width, std::uint32_t pc) {
  const std::uint32_t shift = (offset & 3U) * 8;
  const std::uint32_t v = read32(offset & ~3U, pc) >> shift;
  if (width >= 4) return v;
  return v & ((1U << (8 * width)) - 1U);
}

void FlexCan::write(std::uint32_t offset, std::uint32_t value, unsigned width, std::uint32_t pc) {
  const std::uint32_t shift = (offset & 3U) * 8;
  const std::uint32_t mask = width >= 4 ? 0xFFFFFFFFU : ((1U << (8 * width)) - 1U) << shift;
  write32(offset & ~3U, value << shift, mask, pc);
}

std::uint32_t FlexCan::read32(std::uint32_t off, std::uint32_t pc) {
  const unsigned inst = config_.instance;
  switch (off) {
    case kMcr: {
      std::uint32_t v = mcr_;
      if (disabled_) v |= kLpmack;
      if (frozen_) v |= kFrzack;
      if (!normal_) v |= kNotrdy;
      if (softrst_) v |= kSoftrst;
      return v;
    }
    case kCtrl1:
      return (mcr_ & kWrnen) != 0 ? ctrl1_ : ctrl1_ & ~kCtrl1WarnMasks;
    case kTimer: {
      const std::uint16_t t = timer_at(clock_.now());
      unlock();
      return t;
    }
    case kRxmgmask:
      return rxmgmask_;
    case kRx14mask:
      return rx14mask_;
    case kRx15mask:
      return rx15mask_;
    case kEcr: {
      const ErrorCounters& c = counters();
      // While bus-off TXERRCNT counts the 11-recessive-bit sequences of the recovery.
      const std::uint32_t tec =
          fault_state() == FaultState::kBusOff ? recovery_sequences_seen() : c.tec;
      return (tec & 0xFFU) | ((std::min<std::uint32_t>(c.rec, 255) & 0xFFU) << 8);
    }
    case kEsr1: {
      std::uint32_t v = esr1_;
      const bool lom = normal_ && (ctrl1_ & kLom) != 0 && fault_state() == FaultState::kErrorActive;
      if (lom) v |= 1U << 4;  // listen-only mode reads as error-passive
      switch (fault_state()) {
        case FaultState::kErrorActive:
          break;
        case FaultState::kErrorPassive:
          v |= 1U << 4;
          break;
        case FaultState::kBusOff:
          v |= 2U << 4;
          break;
      }
      if (tx_inflight_mb_ >= 0) v |= kEsrTx;
      const bool on =
          node_mode() != NodeMode::kOff && bus() != nullptr && bus()->bitrate_matches(bitrate());
      if (on) v |= kSynch;
      if (on && bus()->idle()) v |= kEsrIdle;
      if (counters().rec >= 96) v |= kRxwrn;
      if (counters().tec >= 96) v |= kTxwrn;
      esr1_ &= ~kEsr1ReadClear;
      return v;
    }
    case kImask2:
      return imask2_;
    case kImask1:
      return imask1_;
    case kIflag2:
      return iflag2_;
    case kIflag1:
      return iflag1_;
    case kCtrl2:
      return ctrl2_;
    case kEsr2:
      return 0;
    case kCrcr:
      return 0;
    case kRxfgmask:
      return rxfgmask_;
    case kRxfir:
      return fifo_output_.filter_hit & 0x1FFU;
    default:
      break;
  }
  if (off == kCbt && inst == 3) return cbt_;
  if ((off == kDbg1 || off == kDbg2) && inst != 3) {
    if (off == kDbg2) return 0;
    // CFSM: 0x02 = bus idle (what the SDK's errata-6032 workaround polls for).
    const bool on = node_mode() != NodeMode::kOff && bus() != nullptr;
    return on && bus()->idle() ? 0x02U : 0x00U;
  }
  if (off >= kRamStart && off < kRamEnd) return read_mb_word((off - kRamStart) / 4);
  if (off >= kRximrStart && off < kRximrEnd) return rximr_[(off - kRximrStart) / 4];
  if (off == kGfwr && inst != 3) return gfwr_;
  if (inst == 3 && off == kFdctrl) return fdctrl_;
  if (inst == 3 && off == kFdcbt) return fdcbt_;
  if (inst == 3 && off == kFdcrc) return 0;
  report(Severity::kWarning, "read of unmodelled or reserved offset " + hex(off), pc);
  return 0;
}

std::uint32_t FlexCan::read_mb_word(std::uint32_t w) {
  const bool rfen = (mcr_ & kRfen) != 0;
  if (rfen && w < 24) {
    if (w >= 4) return 0;
    const CanFrame& f = fifo_output_.frame;
    switch (w) {
      case 0: {
        std::uint32_t cs = (static_cast<std::uint32_t>(std::min<unsigned>(f.dlc, 15U)) << 16) |
                           fifo_output_.timestamp;
        if (f.extended()) cs |= kCsIde | kCsSrr;
        if (f.remote()) cs |= kCsRtr;
        return cs;
      }
      case 1:
        return f.extended() ? (f.id & 0x1FFFFFFFU) : (f.id & 0x7FFU) << 18;
      case 2:
        return data_word(f, 0);
      default:
        return data_word(f, 4);
    }
  }
  const std::uint32_t v = ram_[w];
  if (w % 4 == 0) {
    const unsigned mb = w / 4;
    const unsigned c = (v >> 24) & 0xFU;
    const bool irmq = (mcr_ & kIrmq) != 0;
    if (c == kRxFull || c == kRxOverrun) {
      lock(mb);
      serviced_[mb] = true;
    } else if (c == kRxEmpty && !irmq) {
      lock(mb);  // legacy mode locks even an EMPTY buffer
    } else {
      unlock();  // reading the C/S of another MB releases the lock
    }
  }
  return v;
}

void FlexCan::guarded_write(std::uint32_t& reg, std::uint32_t value, std::uint32_t mask,
                            std::uint32_t freeze_only, const char* reg_name, std::uint32_t pc) {
  std::uint32_t allowed = mask;
  if (!frozen_) {
    allowed &= ~freeze_only;
    const std::uint32_t ignored = (reg ^ value) & mask & freeze_only;
    if (ignored != 0) {
      report(Severity::kFault,
             std::string(reg_name) + " write " + hex(value) + " outside freeze mode: bits " +
                 hex(ignored) +
                 " ignored (the chip accepts them only in freeze mode, MCR.FRZACK=1)",
             pc);
    }
  }
  reg = (reg & ~allowed) | (value & allowed);
}

void FlexCan::write_mcr(std::uint32_t value, std::uint32_t mask, std::uint32_t pc) {
  const std::uint32_t before = mcr_;
  guarded_write(mcr_, value, mask & (kMcrFreezeOnly | kMcrAnytime), kMcrFreezeOnly, "MCR", pc);
  if ((value & mask & kSoftrst) != 0) {
    if ((mcr_ & kMdis) != 0) {
      report(
          Severity::kWarning,
          "MCR.SOFTRST requested while the module is disabled: it completes after MDIS is cleared",
          pc);
    }
    softrst_ = true;
  }
  if ((mcr_ & kFden) != 0 && (before & kFden) == 0 && config_.instance != 3) {
    report(Severity::kFault, "MCR.FDEN set on " + name_ + ", which has no CAN FD", pc);
  }
  if (((before ^ mcr_) & (kMdis | kFrz | kHalt)) != 0 || softrst_) schedule_mode_update();
  if (((before ^ mcr_) & (kLprioen | kMaxmbMask | kRfen)) != 0) notify_bus();
  update_irq();
}

void FlexCan::write_mb_word(std::uint32_t w, std::uint32_t value, std::uint32_t mask,
                            std::uint32_t pc) {
  const unsigned mb = w / 4;
  if ((mcr_ & kRfen) != 0) {
    const unsigned filter_words = (((ctrl2_ >> 24) & 0xFU) + 1) * 8;
    if (w < 24) {
      report(Severity::kWarning,
             "write to the RX FIFO output area (MB0..5) while MCR.RFEN=1 is ignored", pc);
      return;
    }
    if (w < 24 + filter_words) {
      std::uint32_t& word = ram_[w];
      guarded_write(word, value, mask, 0xFFFFFFFFU, "RX FIFO ID filter table", pc);
      return;
    }
  }
  const std::uint32_t old = ram_[w];
  ram_[w] = (old & ~mask) | (value & mask);
  if (w % 4 != 0 || (mask & 0x0F000000U) == 0) return;
  const unsigned old_code = (old >> 24) & 0xFU;
  const unsigned new_code = (ram_[w] >> 24) & 0xFU;
  const bool aen = (mcr_ & kAen) != 0;
  serviced_[mb] = false;
  if (static_cast<int>(mb) == tx_inflight_mb_) {
    if (aen && new_code == kTxAbort) {
      ++tx_aborts_;
      abort_pending_[mb] = true;  // resolved when the frame on the wire ends
      set_code(mb, old_code);
    } else {
      tx_inflight_deactivated_ = true;  // the frame finishes on the wire; the MB is not updated
    }
  } else if (aen && new_code == kTxAbort && old_code == kTxData) {
    ++tx_aborts_;
    set_iflag(mb);  // aborted before it reached the bus
  }
  if (new_code == kTxData || old_code == kTxData) {
    notify_bus();
    loopback_kick();
  }
}

void FlexCan::write32(std::uint32_t off, std::uint32_t value, std::uint32_t mask,
                      std::uint32_t pc) {
  const unsigned inst = config_.instance;
  switch (off) {
    case kMcr:
      write_mcr(value, mask, pc);
      return;
    case kCtrl1: {
      const std::uint32_t before = ctrl1_;
      std::uint32_t writable = kCtrl1FreezeOnly | kCtrl1Anytime;
      if ((mcr_ & kWrnen) != 0) {
        writable |= kCtrl1WarnMasks;
      } else if ((value & mask & kCtrl1WarnMasks) != 0) {
        report(Severity::kWarning, "CTRL1 RWRNMSK/TWRNMSK ignored: writable only with MCR.WRNEN=1",
               pc);
      }
      guarded_write(ctrl1_, value, mask & writable, kCtrl1FreezeOnly, "CTRL1", pc);
      if (((before ^ ctrl1_) & (kBoffrec | kLom | kLpb)) != 0) notify_bus();
      update_irq();
      return;
    }
    case kTimer:
      timer_base_ = static_cast<std::uint16_t>((timer_at(clock_.now()) & ~mask) | (value & mask));
      timer_epoch_ = clock_.now();
      return;
    case kRxmgmask:
      guarded_write(rxmgmask_, value, mask, 0xFFFFFFFFU, "RXMGMASK", pc);
      return;
    case kRx14mask:
      guarded_write(rx14mask_, value, mask, 0xFFFFFFFFU, "RX14MASK", pc);
      return;
    case kRx15mask:
      guarded_write(rx15mask_, value, mask, 0xFFFFFFFFU, "RX15MASK", pc);
      return;
    case kRxfgmask:
      guarded_write(rxfgmask_, value, mask, 0xFFFFFFFFU, "RXFGMASK", pc);
      return;
    case kEcr: {
      const ErrorCounters& c = counters();
      std::uint32_t ecr = (c.tec & 0xFFU) | ((c.rec & 0xFFU) << 8);
      guarded_write(ecr, value, mask & 0xFFFFU, 0xFFFFU, "ECR", pc);
      if (frozen_) set_counters(ErrorCounters{ecr & 0xFFU, (ecr >> 8) & 0xFFU});
      return;
    }
    case kEsr1:
      esr1_ &= ~(value & mask & kEsr1W1c);
      update_irq();
      return;
    case kImask1:
      imask1_ = (imask1_ & ~mask) | (value & mask);
      update_irq();
      return;
    case kImask2:
      imask2_ = (imask2_ & ~mask) | (value & mask);
      update_irq();
      return;
    case kIflag1: {
      const std::uint32_t clear = value & mask;
      const bool pop =
          (mcr_ & kRfen) != 0 && (clear & kFifoAvailable) != 0 && (iflag1_ & kFifoAvailable) != 0;
      iflag1_ &= ~clear;
      if (pop) fifo_pop();
      update_irq();
      return;
    }
    case kIflag2:
      iflag2_ &= ~(value & mask);
      update_irq();
      return;
    case kCtrl2: {
      const std::uint32_t writable = kCtrl2FreezeOnly | kBoffdonemsk | kErrmskFast;
      guarded_write(ctrl2_, value, mask & writable, kCtrl2FreezeOnly, "CTRL2", pc);
      update_irq();
      return;
    }
    case kEsr2:
    case kCrcr:
    case kRxfir:
      report(Severity::kWarning, "write to read-only register " + hex(off) + " ignored", pc);
      return;
    default:
      break;
  }
  if (off == kCbt && inst == 3) {
    guarded_write(cbt_, value, mask, 0xFFFFFFFFU, "CBT", pc);
    return;
  }
  if ((off == kDbg1 || off == kDbg2) && inst != 3) return;
  if (off >= kRamStart && off < kRamEnd) {
    write_mb_word((off - kRamStart) / 4, value, mask, pc);
    return;
  }
  if (off >= kRximrStart && off < kRximrEnd) {
    guarded_write(rximr_[(off - kRximrStart) / 4], value, mask, 0xFFFFFFFFU, "RXIMR", pc);
    return;
  }
  if (off == kGfwr && inst != 3) {
    guarded_write(gfwr_, value, mask & 0xFFU, 0xFFU, "GFWR", pc);
    return;
  }
  if (inst == 3 && off == kFdctrl) {
    guarded_write(fdctrl_, value, mask, 0xFFFFFFFFU, "FDCTRL", pc);
    return;
  }
  if (inst == 3 && off == kFdcbt) {
    guarded_write(fdcbt_, value, mask, 0xFFFFFFFFU, "FDCBT", pc);
    return;
  }
  report(Severity::kFault, "write " + hex(value) + " to unmodelled or reserved offset " + hex(off),
         pc);
}

std::uint64_t FlexCan::later(Nanos at, std::function<void()> action) {
  // Events left in the clock's queue after this object is gone do nothing.
  return clock_.schedule(at, [alive = std::weak_ptr<int>(alive_), action = std::move(action)] {
    if (!alive.expired()) action();
  });
}

}  // namespace rtcanboot::twin::can
