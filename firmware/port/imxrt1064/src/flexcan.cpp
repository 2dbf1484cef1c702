#include "rtcanboot/imxrt1064/flexcan.hpp"

#include "rtcanboot/imxrt1064/console.hpp"
#include "rtcanboot/imxrt1064/cortex_m7.hpp"
#include "rtcanboot/imxrt1064/registers.hpp"
#include "rtcanboot/imxrt1064/system.hpp"

namespace rtcanboot::imxrt1064 {

namespace fc = flexcan;

namespace {

struct InstanceInfo {
  Address base;
  std::uint32_t irq_number;
  ccm::Gate gate;
  ccm::Gate serial_gate;
  bool extended_bit_timing;  // CAN3: timing in CBT
};

constexpr InstanceInfo kInstances[] = {
    {fc::kCan1, irq::kCan1, ccm::kGateCan1, ccm::kGateCan1Serial, false},
    {fc::kCan2, irq::kCan2, ccm::kGateCan2, ccm::kGateCan2Serial, false},
    {fc::kCan3, irq::kCan3, ccm::kGateCan3, ccm::kGateCan3Serial, true},
};
constexpr InstanceInfo kThis = kInstances[FlexCan::kInstance - 1];

// Legacy RX FIFO with RFFN = 0: MB0..5 are the FIFO, MB6..7 hold the 8 ID filter elements.
// MB8 is the first valid MB, reserved for the errata 5829 workaround; MB9 transmits the queue,
// MB10 the heartbeat (send_latest).
constexpr std::uint32_t kFilterTableMb = 6;
constexpr std::uint32_t kFilterElements = 8;
constexpr std::uint32_t kErrata5829Mb = (0 + 1) * 2 + 6;
constexpr std::uint32_t kTxMb = kErrata5829Mb + 1;
constexpr std::uint32_t kLatestMb = kTxMb + 1;
static_assert(kErrata5829Mb == 8 && kTxMb == 9 && kLatestMb == 10);
constexpr std::uint32_t kTxFlag = 1U << kTxMb;
constexpr std::uint32_t kLatestFlag = 1U << kLatestMb;
constexpr std::uint8_t kCanPriority = 2;  // above the timer: the FIFO holds only 6 frames
// Freeze acknowledge must come within 178 CAN bit times (17.8 ms at 10 kbit/s). Handshakes are
// bounded in time (the timebase the driver was started with); the iteration cap only guards
// against a stopped timer.
constexpr Micros kHandshakeTimeout = 25'000;
constexpr std::uint32_t kHandshakeMaxTries = 20'000'000;
Timebase* g_clock = nullptr;

volatile std::uint32_t& r(Address offset) {
  return reg32(kThis.base + offset);
}

bool wait_mcr(std::uint32_t mask, std::uint32_t value) {
  const Micros deadline = g_clock->now() + kHandshakeTimeout;
  for (std::uint32_t tries = 0; tries < kHandshakeMaxTries; ++tries) {
    if ((r(fc::kMcr) & mask) == value) return true;
    if (g_clock->now() > deadline) break;
  }
  return (r(fc::kMcr) & mask) == value;
}

void report(const char* what) {
  console_write("FLEXCAN");
  console_write_decimal(FlexCan::kInstance);
  console_write(": ");
  console_write(what);
  console_write("\n");
}

// MCR.SOFTRST; false when it does not complete. Afterwards the module heads for freeze mode (MCR
// reset value FRZ = HALT = 1), which it enters once FRZACK reads 1.
bool soft_reset() {
  r(fc::kMcr) = r(fc::kMcr) & ~fc::kMcrDoze;
  if (!wait_mcr(fc::kMcrLpmAck, 0)) return false;
  r(fc::kMcr) = r(fc::kMcr) | fc::kMcrSoftRst;
  return wait_mcr(fc::kMcrSoftRst, 0);
}

// Freeze-mode entry as errata 9595 and NXP's FLEXCAN_EnterFreezeMode (fsl_flexcan.c) do it, with
// every wait bounded: FRZ, clear MDIS, HALT and FRZACK; when the controller is bus-off or FRZACK
// does not come, a soft reset (which freezes the controller) and the MCR and interrupt masks
// restored. Unlike the SDK, MCR is restored only once FRZACK confirms freeze mode: its
// configuration fields are writable only there. False (and a console line) when freeze mode
// cannot be reached; then nothing that needs freeze mode may be written.
bool enter_freeze() {
  r(fc::kMcr) = r(fc::kMcr) | fc::kMcrFrz;
  if ((r(fc::kMcr) & fc::kMcrMdis) != 0) r(fc::kMcr) = r(fc::kMcr) & ~fc::kMcrMdis;
  wait_mcr(fc::kMcrLpmAck, 0);
  const bool bus_off = ((r(fc::kEsr1) & fc::kEsr1FltConfMask) >> fc::kEsr1FltConfShift) >= 2;
  if (!bus_off) {
    r(fc::kMcr) = r(fc::kMcr) | fc::kMcrHalt;
    if (wait_mcr(fc::kMcrFrzAck, fc::kMcrFrzAck)) return true;
    report("freeze not acknowledged (MCR.FRZACK) within 25 ms: soft reset");
  }
  const std::uint32_t mcr = r(fc::kMcr) | fc::kMcrFrz | fc::kMcrHalt;
  const std::uint32_t imask1 = r(fc::kImask1);
  const std::uint32_t imask2 = r(fc::kImask2);
  if (!soft_reset() || !wait_mcr(fc::kMcrFrzAck, fc::kMcrFrzAck)) {
    report("freeze mode not reached after a soft reset: controller left unconfigured");
    return false;
  }
  r(fc::kMcr) = mcr & ~(fc::kMcrFrzAck | fc::kMcrSoftRst | fc::kMcrLpmAck | fc::kMcrNotRdy);
  r(fc::kImask1) = imask1;
  r(fc::kImask2) = imask2;
  return true;
}

bool exit_freeze() {
  r(fc::kMcr) = r(fc::kMcr) & ~(fc::kMcrHalt | fc::kMcrFrz);
  if (wait_mcr(fc::kMcrFrzAck, 0)) return true;
  report("freeze mode not left (MCR.FRZACK stays 1) within 25 ms");
  return false;
}

// Writes the bit timing (and the rest of CTRL1 as zero); the controller must be frozen.
bool write_timing(const CanBitTiming& timing) {
  const std::uint32_t prescaler = timing.prescaler - 1;
  const std::uint32_t propagation = timing.propagation - 1U;
  const std::uint32_t phase1 = timing.phase1 - 1U;
  const std::uint32_t phase2 = timing.phase2 - 1U;
  const std::uint32_t jump = timing.jump_width - 1U;
  if (kThis.extended_bit_timing) {
    // CAN3: CBT with BTF; a single write may be ignored on RT106x, so write until it reads back.
    const std::uint32_t cbt = fc::kCbtBtf | (prescaler << fc::kCbtEpresDivShift) |
                              (jump << fc::kCbtErjwShift) | (propagation << fc::kCbtEpropSegShift) |
                              (phase1 << fc::kCbtEpSeg1Shift) | (phase2 << fc::kCbtEpSeg2Shift);
    for (std::uint32_t tries = 0; tries < 100; ++tries) {
      r(fc::kCbt) = cbt;
      if (r(fc::kCbt) == cbt) break;
    }
    r(fc::kCtrl1) = 0;
    return r(fc::kCbt) == cbt;
  }
  const std::uint32_t timing_bits =
      (prescaler << fc::kCtrl1PresDivShift) | (jump << fc::kCtrl1RjwShift) |
      (phase1 << fc::kCtrl1Pseg1Shift) | (phase2 << fc::kCtrl1Pseg2Shift) |
      (propagation << fc::kCtrl1PropSegShift);
  r(fc::kCtrl1) = timing_bits;
  return true;
}

FlexCan g_flexcan;
CanFrame g_rx_ring[FlexCan::kRxRingSize];
CanFrame g_tx_queue[FlexCan::kTxQueueSize];

// Writes `frame` into transmit MB `mb` and activates it. Only called once the MB's previous
// frame completed or was aborted (IFLAG), or before the first one, so no pending transmission is
// ever deactivated (errata 6032 does not arise).
void write_tx_mb(std::uint32_t mb_index, const CanFrame& frame) {
  const Address mb = fc::mb(mb_index);
  r(mb + fc::kMbCs) = fc::kCodeTxInactive << fc::kCsCodeShift;
  std::uint32_t cs = (fc::kCodeTxData << fc::kCsCodeShift) |
                     (static_cast<std::uint32_t>(frame.dlc & 0xF) << fc::kCsDlcShift);
  if (frame.extended()) {
    r(mb + fc::kMbId) = frame.id & fc::kIdExtMask;
    cs |= fc::kCsIde | fc::kCsSrr;
  } else {
    r(mb + fc::kMbId) = (frame.id & 0x7FFU) << fc::kIdStdShift;
  }
  if (frame.remote()) cs |= fc::kCsRtr;
  const std::uint32_t word0 = (std::uint32_t{frame.data[0]} << 24) |
                              (std::uint32_t{frame.data[1]} << 16) |
                              (std::uint32_t{frame.data[2]} << 8) | frame.data[3];
  const std::uint32_t word1 = (std::uint32_t{frame.data[4]} << 24) |
                              (std::uint32_t{frame.data[5]} << 16) |
                              (std::uint32_t{frame.data[6]} << 8) | frame.data[7];
  r(mb + fc::kMbWord0) = word0;
  r(mb + fc::kMbWord1) = word1;
  r(mb + fc::kMbCs) = cs;
  // Errata 5829: write INACTIVE twice into the first valid MB after arming a transmission.
  r(fc::mb(kErrata5829Mb) + fc::kMbCs) = fc::kCodeTxInactive << fc::kCsCodeShift;
  r(fc::mb(kErrata5829Mb) + fc::kMbCs) = fc::kCodeTxInactive << fc::kCsCodeShift;
}

bool same_frame(const CanFrame& a, const CanFrame& b) {
  if (a.id != b.id || a.dlc != b.dlc || a.flags != b.flags) return false;
  for (std::uint8_t i = 0; i < a.dlc && i < 8; ++i) {
    if (a.data[i] != b.data[i]) return false;
  }
  return true;
}

}  // namespace

CanBitTiming FlexCan::timing_in_use() const {
  CanBitTiming timing;
  const std::uint32_t cbt = kThis.extended_bit_timing ? r(fc::kCbt) : 0;
  if ((cbt & fc::kCbtBtf) != 0) {
    timing.prescaler = ((cbt >> fc::kCbtEpresDivShift) & 0x3FF) + 1;
    timing.jump_width = static_cast<std::uint8_t>(((cbt >> fc::kCbtErjwShift) & 0x1F) + 1);
    timing.propagation = static_cast<std::uint8_t>(((cbt >> fc::kCbtEpropSegShift) & 0x3F) + 1);
    timing.phase1 = static_cast<std::uint8_t>(((cbt >> fc::kCbtEpSeg1Shift) & 0x1F) + 1);
    timing.phase2 = static_cast<std::uint8_t>(((cbt >> fc::kCbtEpSeg2Shift) & 0x1F) + 1);
    return timing;
  }
  const std::uint32_t ctrl1 = r(fc::kCtrl1);
  timing.prescaler = ((ctrl1 >> fc::kCtrl1PresDivShift) & 0xFF) + 1;
  timing.jump_width = static_cast<std::uint8_t>(((ctrl1 >> fc::kCtrl1RjwShift) & 0x3) + 1);
  timing.phase1 = static_cast<std::uint8_t>(((ctrl1 >> fc::kCtrl1Pseg1Shift) & 0x7) + 1);
  timing.phase2 = static_cast<std::uint8_t>(((ctrl1 >> fc::kCtrl1Pseg2Shift) & 0x7) + 1);
  timing.propagation = static_cast<std::uint8_t>(((ctrl1 >> fc::kCtrl1PropSegShift) & 0x7) + 1);
  return timing;
}

FlexCan& flexcan_driver() {
  return g_flexcan;
}

extern "C" void rtcanboot_flexcan_irq() {
  g_flexcan.on_interrupt();
}

bool FlexCan::start(std::uint32_t clock_hz, std::uint32_t bitrate, Timebase& clock) {
  g_clock = &clock;
  const CanBitTiming timing = compute_bit_timing(clock_hz, bitrate);
  if (timing.prescaler == 0) return false;

  nvic_disable(kThis.irq_number);
  clock_gate_on(kThis.gate);
  clock_gate_on(kThis.serial_gate);

  // Enable the module, soft reset (leaves it heading for freeze), then configure in freeze mode.
  // A controller that never acknowledges freeze is left alone: its configuration fields are
  // writable only in freeze mode (the failure is on the console; start() returns false).
  r(fc::kMcr) = r(fc::kMcr) & ~fc::kMcrMdis;
  wait_mcr(fc::kMcrLpmAck, 0);
  if (!soft_reset()) report("soft reset (MCR.SOFTRST) did not complete within 25 ms");
  if (!enter_freeze()) {
    ++freeze_failures_;
    return false;
  }

  // MB RAM is cleared before the RX FIFO is enabled (MB0..5 become FIFO output then). AEN lets
  // send_latest() abort an out-of-date heartbeat still waiting in MB10; MAXMB = 10.
  const std::uint32_t mcr = fc::kMcrFrz | fc::kMcrHalt | fc::kMcrSupv | fc::kMcrWrnEn |
                            fc::kMcrSrxDis | fc::kMcrAen | kLatestMb;
  r(fc::kMcr) = mcr;
  for (Address offset = fc::kMbRam; offset < fc::kMbRamEnd; offset += 4) r(offset) = 0;
  for (std::uint32_t mb = 0; mb < fc::kMbCount; ++mb) r(fc::kRximr + 4 * mb) = 0;
  r(fc::mb(kErrata5829Mb) + fc::kMbCs) = fc::kCodeTxInactive << fc::kCsCodeShift;
  r(fc::mb(kTxMb) + fc::kMbCs) = fc::kCodeTxInactive << fc::kCsCodeShift;
  r(fc::mb(kLatestMb) + fc::kMbCs) = fc::kCodeTxInactive << fc::kCsCodeShift;
  r(fc::kMcr) = mcr | fc::kMcrRfen;
  // Automatic bus-off recovery (CTRL1.BOFFREC = 0), timing in CTRL1 or CBT.
  if (!write_timing(timing)) return false;
  r(fc::kCtrl2) = (0U << fc::kCtrl2RffnShift) | (0x16U << fc::kCtrl2TasdShift) | fc::kCtrl2Rrs;
  r(fc::kRxMgMask) = 0x3FFF'FFFF;
  r(fc::kRx14Mask) = 0x3FFF'FFFF;
  r(fc::kRx15Mask) = 0x3FFF'FFFF;
  r(fc::kRxFgMask) = 0;  // FIFO filters: no identifier bit must match, so every frame is taken
  for (std::uint32_t element = 0; element < kFilterElements; ++element) {
    r(fc::mb(kFilterTableMb) + 4 * element) = 0;
  }

  rx_head_.store(0, std::memory_order_relaxed);
  rx_tail_.store(0, std::memory_order_relaxed);
  tx_head_ = tx_tail_ = 0;
  tx_busy_ = false;
  latest_pending_ = latest_aborting_ = false;
  latest_busy_ = false;
  r(fc::kIflag1) = ~0U;
  r(fc::kIflag2) = ~0U;
  r(fc::kEsr1) = fc::kEsr1W1cMask;
  r(fc::kImask2) = 0;
  r(fc::kImask1) = fc::kIflagFifoAvailable | fc::kIflagFifoWarning | fc::kIflagFifoOverflow |
                   kTxFlag | kLatestFlag;

  if (!exit_freeze()) {
    ++freeze_failures_;
    return false;
  }
  nvic_enable(kThis.irq_number, kCanPriority);
  return true;
}

void FlexCan::stop() {
  nvic_disable(kThis.irq_number);
  // Without freeze mode the soft reset below still takes the controller off the bus.
  if (!enter_freeze()) ++freeze_failures_;
  r(fc::kImask1) = 0;
  r(fc::kImask2) = 0;
  soft_reset();
  r(fc::kIflag1) = ~0U;
  r(fc::kIflag2) = ~0U;
  r(fc::kMcr) = r(fc::kMcr) | fc::kMcrMdis;
  wait_mcr(fc::kMcrLpmAck, fc::kMcrLpmAck);
  clock_gate_off(kThis.serial_gate);
  clock_gate_off(kThis.gate);
  reg32(nvic::kIcpr + 4 * (kThis.irq_number / 32)) = 1U << (kThis.irq_number % 32);
  tx_head_ = tx_tail_ = 0;
  tx_busy_ = false;
  latest_pending_ = latest_aborting_ = false;
  latest_busy_ = false;
}

bool FlexCan::send(const CanFrame& frame) {
  InterruptLock lock;
  if (tx_head_ - tx_tail_ == kTxQueueSize) return false;
  g_tx_queue[tx_head_ % kTxQueueSize] = frame;
  ++tx_head_;
  if (!tx_busy_) load_next_tx();
  return true;
}

bool FlexCan::send_latest(const CanFrame& frame) {
  InterruptLock lock;
  if (latest_busy_ && !latest_aborting_ && same_frame(frame, latest_loaded_)) {
    // The same heartbeat still waits in MB10 (it lost arbitration for a whole period): it says
    // what this one says and leaves when the bus lets it, so it is kept, and no abort runs into
    // errata 6032 (README).
    latest_pending_ = false;
    return true;
  }
  latest_frame_ = frame;
  latest_pending_ = true;
  if (!latest_busy_) {
    load_latest_tx();
    return true;
  }
  // Still waiting in MB10 (it lost arbitration until now): abort it. The MB's interrupt comes
  // either way (aborted, or sent after all when it was already on the wire) and loads this one.
  const Address cs = fc::mb(kLatestMb) + fc::kMbCs;
  if (!latest_aborting_ && ((r(cs) & fc::kCsCodeMask) >> fc::kCsCodeShift) == fc::kCodeTxData) {
    r(cs) = (r(cs) & ~fc::kCsCodeMask) | (fc::kCodeTxAbort << fc::kCsCodeShift);
    latest_aborting_ = true;
    ++tx_superseded_;
  }
  return true;
}

bool FlexCan::tx_idle() const {
  InterruptLock lock;
  return !tx_busy_ && tx_head_ == tx_tail_ && !latest_busy_ && !latest_pending_;
}

void FlexCan::load_next_tx() {
  if (tx_head_ == tx_tail_) {
    tx_busy_ = false;
    return;
  }
  tx_busy_ = true;
  write_tx_mb(kTxMb, g_tx_queue[tx_tail_ % kTxQueueSize]);
  ++tx_tail_;
}

void FlexCan::load_latest_tx() {
  latest_aborting_ = false;
  latest_busy_ = latest_pending_;
  if (!latest_pending_) return;
  latest_pending_ = false;
  latest_loaded_ = latest_frame_;
  write_tx_mb(kLatestMb, latest_frame_);
}

bool FlexCan::receive(CanFrame& frame) {
  const std::uint32_t head = rx_head_.load(std::memory_order_acquire);
  const std::uint32_t tail = rx_tail_.load(std::memory_order_relaxed);
  if (head == tail) return false;
  frame = g_rx_ring[tail % kRxRingSize];
  rx_tail_.store(tail + 1, std::memory_order_release);
  return true;
}

void FlexCan::on_interrupt() {
  std::uint32_t head = rx_head_.load(std::memory_order_relaxed);
  const std::uint32_t tail = rx_tail_.load(std::memory_order_acquire);
  while ((r(fc::kIflag1) & fc::kIflagFifoAvailable) != 0) {
    const Address mb = fc::mb(0);  // FIFO output
    const std::uint32_t cs = r(mb + fc::kMbCs);
    const std::uint32_t id = r(mb + fc::kMbId);
    const std::uint32_t word0 = r(mb + fc::kMbWord0);
    const std::uint32_t word1 = r(mb + fc::kMbWord1);
    r(fc::kIflag1) = fc::kIflagFifoAvailable;  // pops the FIFO
    if (head - tail >= kRxRingSize) {
      ++rx_dropped_;
      continue;
    }
    CanFrame& frame = g_rx_ring[head % kRxRingSize];
    frame.flags = 0;
    if ((cs & fc::kCsIde) != 0) {
      frame.flags |= CanFrame::kExtended;
      frame.id = id & fc::kIdExtMask;
    } else {
      frame.id = (id >> fc::kIdStdShift) & 0x7FFU;
    }
    if ((cs & fc::kCsRtr) != 0) frame.flags |= CanFrame::kRemote;
    frame.dlc = static_cast<std::uint8_t>((cs >> fc::kCsDlcShift) & 0xF);
    for (int i = 0; i < 4; ++i) {
      frame.data[i] = static_cast<std::uint8_t>(word0 >> (24 - 8 * i));
      frame.data[4 + i] = static_cast<std::uint8_t>(word1 >> (24 - 8 * i));
    }
    ++head;
  }
  rx_head_.store(head, std::memory_order_release);

  const std::uint32_t flags = r(fc::kIflag1);
  if ((flags & fc::kIflagFifoOverflow) != 0) {
    ++fifo_overflows_;
    r(fc::kIflag1) = fc::kIflagFifoOverflow;
  }
  if ((flags & fc::kIflagFifoWarning) != 0) r(fc::kIflag1) = fc::kIflagFifoWarning;
  if ((flags & kTxFlag) != 0) {
    r(fc::kIflag1) = kTxFlag;
    load_next_tx();
  }
  if ((flags & kLatestFlag) != 0) {
    r(fc::kIflag1) = kLatestFlag;
    load_latest_tx();
  }
  dsb();
}

void FlexCan::poll() {
  const std::uint32_t esr1 = r(fc::kEsr1);
  if ((esr1 & fc::kEsr1BoffInt) != 0) ++bus_off_count_;
  const std::uint32_t events = esr1 & (fc::kEsr1BoffInt | fc::kEsr1BoffDoneInt | fc::kEsr1ErrInt);
  if (events != 0) r(fc::kEsr1) = events;
}

}  // namespace rtcanboot::imxrt1064
