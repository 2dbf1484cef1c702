// Example application for rtcanboot: a self-starting CANopen node (OPERATIONAL) that uses the
// node-ID and bit rate the bootloader handed over, answers SDO reads (0x1018 identity, 0x100A
// software version, 0x1F56 software ID, 0x5F00 info) and returns to the bootloader when a master
// writes 0 (stop program) to 0x1F51:1 - the first step of every CiA 302-2 program download. All
// CANopen behaviour is the core's CanopenNode in application mode; only the program control below
// is specific to an application. Once its node is up it confirms that it runs (trial boot).
//
// Test builds make it misbehave on purpose (RTCANBOOT_EXAMPLE_MISBEHAVE, tests/e2e): 1 hangs
// before it confirms, 2 faults before it confirms (the kit's fault handler resets the chip), 3
// never confirms, 4 confirms and then faults a second later, with a HardFault handler that loops
// (a confirmed image that goes bad and silent). 5..7 fault before they confirm with another
// HardFault vector: 5 a handler that loops, 6 a handler that faults again (lockup), 7 a vector
// without the Thumb bit (lockup).
#include <cstddef>
#include <cstdint>

#include "rtcanboot/app_kit.hpp"
#include "rtcanboot/canopen_defs.hpp"
#include "rtcanboot/canopen_node.hpp"
#include "rtcanboot/imxrt1064/board.hpp"
#include "rtcanboot/imxrt1064/console.hpp"
#include "rtcanboot/imxrt1064/cortex_m7.hpp"
#include "rtcanboot/imxrt1064/flexcan.hpp"
#include "rtcanboot/imxrt1064/system.hpp"
#include "rtcanboot/imxrt1064/timebase.hpp"
#include "rtcanboot/memory_map.hpp"
#include "rtcanboot/product.hpp"
#include "rtcanboot/program_control.hpp"

#ifndef RTCANBOOT_EXAMPLE_REPORT
#define RTCANBOOT_EXAMPLE_REPORT 0
#endif
#if RTCANBOOT_EXAMPLE_REPORT
void example_report(std::uint32_t seed);
#endif

namespace {

using namespace rtcanboot;
using namespace rtcanboot::imxrt1064;

// Used when the application was started without the bootloader (e.g. from a debugger).
constexpr std::uint8_t kDefaultNodeId = 1;
constexpr std::uint32_t kDefaultBitrate = 125'000;
#ifndef RTCANBOOT_EXAMPLE_MISBEHAVE
#define RTCANBOOT_EXAMPLE_MISBEHAVE 0
#endif
constexpr int kMisbehave = RTCANBOOT_EXAMPLE_MISBEHAVE;
static_assert(kMisbehave >= 0 && kMisbehave <= 7, "see the comment at the top");
constexpr Micros kLateFaultAfter = 1'000'000;

[[noreturn]] void fault_now() {
  console_write("example application: executing an undefined instruction\n");
  console_flush();
  __asm__ volatile("udf #0");
  __builtin_unreachable();
}

// A HardFault handler that never returns and never resets: only the trial watchdog ends it.
extern "C" [[noreturn]] void example_fault_loops() {
  for (;;) __asm__ volatile("nop");
}

// A HardFault handler that faults itself: the core locks up.
extern "C" [[noreturn]] void example_fault_faults() {
  __asm__ volatile("udf #1");
  __builtin_unreachable();
}

// Variants 4..7: the vector table copied to DTCM with another HardFault entry, then a fault.
alignas(1024) std::uint32_t g_fault_vectors[kVectorCount];

[[noreturn]] void fault_with_other_handler() {
  const auto* current = reinterpret_cast<const std::uint32_t*>(reg32(scb::kVtor));
  for (std::uint32_t i = 0; i < kVectorCount; ++i) g_fault_vectors[i] = current[i];
  const auto loops = reinterpret_cast<std::uintptr_t>(&example_fault_loops);
  const auto faults = reinterpret_cast<std::uintptr_t>(&example_fault_faults);
  g_fault_vectors[3] = kMisbehave <= 5   ? loops
                       : kMisbehave == 6 ? faults
                                         : (faults & ~std::uintptr_t{1});  // no Thumb bit
  dsb();
  reg32(scb::kVtor) = reinterpret_cast<std::uintptr_t>(g_fault_vectors);
  dsb();
  isb();
  console_write(kMisbehave <= 5   ? "example application: HardFault handler loops\n"
                : kMisbehave == 6 ? "example application: HardFault handler faults\n"
                                  : "example application: HardFault vector without Thumb bit\n");
  fault_now();
}

// The stop command's SDO response must leave before the reset; give up waiting after this.
constexpr Micros kDrainTimeout = 200'000;

// Commits the reset into the bootloader without answering the stop: the bootloader answers it
// after its boot-up message (app_kit::request_bootloader_answering_stop).
[[noreturn]] void leave_answering_stop();

// 0x1F51 in the application: "stop" hands over to the bootloader, "start" is a no-op (already
// running), "reset" restarts the application through the bootloader; downloads (0x1F50) and
// "clear" need the bootloader, so they are refused with "device state".
class ApplicationProgramControl final : public ProgramControl {
 public:
  explicit ApplicationProgramControl(const app_kit::BootInfo& boot) : boot_(boot) {}

  DownloadSink* program_data(std::uint8_t) override { return nullptr; }
  canopen::Abort control(std::uint8_t sub, std::uint8_t command) override {
    if (sub != 1) return canopen::Abort::kNoSubIndex;
    switch (static_cast<canopen::ProgramCommand>(command)) {
      case canopen::ProgramCommand::kStop:
        // Not answered here: an answer followed by the reset (about 3 ms in which nothing
        // listens) would let a master's next request get lost (issue 16, item 10).
        leave_answering_stop();
      case canopen::ProgramCommand::kStart:
        return canopen::Abort::kNone;
      case canopen::ProgramCommand::kReset:
        reset_ = true;
        return canopen::Abort::kNone;
      case canopen::ProgramCommand::kClear:
        return canopen::Abort::kDeviceState;
    }
    return canopen::Abort::kValueRange;
  }
  std::uint8_t control_state(std::uint8_t) const override {
    return static_cast<std::uint8_t>(canopen::ProgramState::kStarted);
  }
  std::uint32_t software_id(std::uint8_t) const override { return boot_.software_id; }
  std::uint32_t flash_status(std::uint8_t) const override {
    return canopen::flash_status_word(false, canopen::FlashStatus::kOk);
  }
  std::uint8_t program_count() const override { return 1; }

  bool reset() const { return reset_; }

 private:
  const app_kit::BootInfo& boot_;
  bool reset_ = false;
};

Timebase g_clock;
const CanopenNode* g_node = nullptr;

void leave_answering_stop() {
  // The frames already queued (a heartbeat) leave first: a reset cuts a frame being sent.
  FlexCan& can = flexcan_driver();
  const Micros since = g_clock.now();
  while (!can.tx_idle() && g_clock.now() - since < kDrainTimeout) can.poll();
  console_write("example application: stop, the bootloader answers it\n");
  console_flush();
  app_kit::request_bootloader_answering_stop(g_node->node_id());
}

// 0x100A: product::kExampleAppVersionPrefix followed by the version text, built at compile time.
constexpr char kVersionText[] = RTCANBOOT_VERSION_STRING;
struct SoftwareVersion {
  char text[sizeof(product::kExampleAppVersionPrefix) + sizeof(kVersionText) - 1];
};
constexpr SoftwareVersion kSoftwareVersion = [] {
  SoftwareVersion version{};
  std::size_t n = 0;
  for (std::size_t i = 0; i + 1 < sizeof(product::kExampleAppVersionPrefix); ++i) {
    version.text[n++] = product::kExampleAppVersionPrefix[i];
  }
  for (char c : kVersionText) version.text[n++] = c;  // with its terminating NUL
  return version;
}();

}  // namespace

int main() {
  app_kit::BootInfo boot;
  const bool from_bootloader = app_kit::boot_info(boot);
  if (!from_bootloader) {
    boot.node_id = kDefaultNodeId;
    boot.bitrate = kDefaultBitrate;
  }

  board::init_clocks();
  board::init_pins();
  board::init_console();
  console_write("\nrtcanboot example application, node ");
  console_write_decimal(boot.node_id);
  console_write(", ");
  console_write_decimal(boot.bitrate / 1000);
  console_write(from_bootloader ? " kbit/s (from the bootloader)\n" : " kbit/s (defaults)\n");

  g_clock.start();
  FlexCan& can = flexcan_driver();
  // A wrong CAN clock would send at a wrong bit rate and disturb the bus: stay off it instead.
  std::uint32_t bitrate = boot.bitrate;
  const char* const clock_problem = board::check_clocks();
  if (clock_problem != nullptr) {
    console_write("clock check failed: ");
    console_write(clock_problem);
    console_write("; CAN stays off the bus\n");
  } else if (!can.start(board::kCanClockHz, bitrate, g_clock)) {
    bitrate = kDefaultBitrate;
    can.start(board::kCanClockHz, bitrate, g_clock);
  }

  static RtcanbootInfo info;
  info.running_program = canopen::kRunningApplication;
  info.bootloader_version = boot.bootloader_version;
  info.app_region_start = memory_map::kAppAddress;
  info.app_region_size = memory_map::kAppSize;
  info.image_version = boot.image_version;
  info.security_counter = app_kit::installed_security_counter();
  info.boot_reason = canopen::BootReason::kApplicationRunning;

  static NodeConfig config;
  config.node_id = boot.node_id;
  // The core's node is also the CiA 305 LSS slave. Store configuration needs the bootloader
  // (the application runs from the flash it would write): no LssStorage, the LSS answer is
  // "store not supported".
  config.bitrate = bitrate;
  config.lss_rates = lss_supported_rates(board::kCanClockHz);
  config.identity = {RTCANBOOT_VENDOR_ID, RTCANBOOT_PRODUCT_CODE,
                     product::version_number(RTCANBOOT_VERSION_MAJOR, RTCANBOOT_VERSION_MINOR,
                                             RTCANBOOT_VERSION_PATCH),
                     app_kit::serial_number()};
  config.device_name = product::kExampleAppDeviceName;
  config.software_version = kSoftwareVersion.text;
  config.is_application = true;
  config.self_starting = true;  // heartbeats say OPERATIONAL without a master's NMT start
  config.info = &info;

  static ApplicationProgramControl program(boot);
  static CanopenNode node(can, program, config);
  g_node = &node;
  enable_irq();
  node.start(g_clock.now());

  if (kMisbehave == 1) {
    console_write("example application: hanging\n");
    console_flush();
    disable_irq();
    for (;;) __asm__ volatile("nop");
  }
  if (kMisbehave == 2) fault_now();
  if (kMisbehave >= 5) fault_with_other_handler();
  // The node is up: tell the bootloader this image works.
  const app_kit::ConfirmResult confirmed =
      kMisbehave == 3 ? app_kit::ConfirmResult::kFlashError : app_kit::confirm();
  if (kMisbehave != 3) {
    console_write("example application: ");
    console_write(app_kit::describe(confirmed));
    console_write("\n");
  }
#if RTCANBOOT_EXAMPLE_REPORT
  example_report(boot.node_id);  // example-app-report: newlib's printf, scanf, math (report.cpp)
#endif
  info.trial_state = confirmed == app_kit::ConfirmResult::kConfirmed ||
                             confirmed == app_kit::ConfirmResult::kAlreadyConfirmed
                         ? canopen::TrialState::kConfirmed
                         : canopen::TrialState::kOnTrial;
  const Micros started = g_clock.now();

  bool waiting_to_leave = false;
  Micros leaving_since = 0;
  for (;;) {
    Micros now = g_clock.now();
    CanFrame frame;
    while (can.receive(frame)) {
      node.on_frame(frame, now);
      now = g_clock.now();
    }
    node.poll(now);
    std::uint32_t new_bitrate = 0;
    if (node.take_bitrate_switch(&new_bitrate) &&
        clock_problem == nullptr) {  // LSS activate bit timing
      can.stop();
      can.start(board::kCanClockHz, new_bitrate, g_clock);
    }
    can.poll();
    service_wdog1_wdog2();  // only if enabled before the bootloader ran
                            // (docs/porting-an-application.md)
    if (kMisbehave == 4 && now - started > kLateFaultAfter) fault_with_other_handler();

    const bool leaving = program.reset() || node.reset_node_requested();
    if (leaving) {
      if (!waiting_to_leave) {
        waiting_to_leave = true;
        leaving_since = now;
      }
      if (can.tx_idle() || now - leaving_since > kDrainTimeout) {
        console_flush();
        system_reset();
      }
    }

    disable_irq();
    const Micros deadline = leaving ? now + 1000 : node.next_deadline();
    if (!can.rx_pending() && g_clock.arm_wakeup(deadline)) wait_for_interrupt();
    enable_irq();
  }
}
