// The bootloader's program: RAM entry after the reset stub, chip bring-up, the core's
// Bootloader driven by CAN frames and GPT time, and the hand-over to the application.
#include <cstdint>
#include <span>

#include "rom_flash.hpp"
#include "rtcanboot/bootloader.hpp"
#include "rtcanboot/hash.hpp"
#include "rtcanboot/imxrt1064/board.hpp"
#include "rtcanboot/imxrt1064/console.hpp"
#include "rtcanboot/imxrt1064/cortex_m7.hpp"
#include "rtcanboot/imxrt1064/flexcan.hpp"
#include "rtcanboot/imxrt1064/handover.hpp"
#include "rtcanboot/imxrt1064/system.hpp"
#include "rtcanboot/imxrt1064/timebase.hpp"
#include "rtcanboot/imxrt1064/vector_table.hpp"
#include "rtcanboot/memory_map.hpp"
#include "rtcanboot/product.hpp"
#include "rtcanboot/provisioning.hpp"
#include "self_test.hpp"
#ifdef RTCANBOOT_HAS_KEY_RECORD
#include "build_key_record.hpp"  // generated from RTCANBOOT_SIGNING_KEY (key_record.py)
#endif

extern "C" {
extern std::uint32_t __stack_top[];
extern void (*__init_array_start[])();
extern void (*__init_array_end[])();
[[noreturn]] void rtcanboot_ram_entry();
}

namespace rtcanboot::imxrt1064 {
namespace {

constexpr std::uint32_t kVersion = product::version_number(
    RTCANBOOT_VERSION_MAJOR, RTCANBOOT_VERSION_MINOR, RTCANBOOT_VERSION_PATCH);
// A pending start/reset waits for the transmit queue at most this long (no bus, no ACK).
constexpr Micros kDrainTimeout = 200'000;
constexpr std::uint32_t kFallbackBitrate = 125'000;
// A new image must confirm within this time after its start (docs/trial-boot.md).
constexpr std::uint32_t kTrialWatchdogMs = RTCANBOOT_TRIAL_WATCHDOG_MS;
static_assert(kTrialWatchdogMs >= 100 && kTrialWatchdogMs * 1000ULL / kRtwdogTickUs <= 0xFFFF,
              "the trial watchdog runs from 0.1 s to 512 s");
// Only when a watchdog could not be disabled (the shortest WDOG1/2 timeout is 0.5 s).
constexpr Micros kWatchdogServicePeriod = 100'000;

[[gnu::section(".ram_vectors"), gnu::used]] constinit const VectorTable kRamVectors =
    make_vector_table(__stack_top, rtcanboot_ram_entry, rtcanboot_fault_handler,
                      rtcanboot_flexcan_irq, rtcanboot_gpt1_irq);

// The flash manager's ring (the download buffer): OCRAM2 above the boot ROM's scratch area.
constexpr std::uint32_t kDownloadBufferSize = 64 * 1024;
[[gnu::section(".ocram.download")]] alignas(32) std::uint8_t g_download_buffer[kDownloadBufferSize];

Timebase g_clock;
RomFlash g_flash(g_clock);
SoftwareSha256 g_sha;

void print_banner(std::uint32_t reset_status, std::uint32_t entry_carriers) {
  console_write("\nrtcanboot ");
  console_write_decimal(RTCANBOOT_VERSION_MAJOR);
  console_write(".");
  console_write_decimal(RTCANBOOT_VERSION_MINOR);
  console_write(".");
  console_write_decimal(RTCANBOOT_VERSION_PATCH);
  console_write(" on ");
  console_write(board::kName);
  console_write(", FLEXCAN");
  console_write_decimal(FlexCan::kInstance);
  console_write(", SRSR ");
  console_write_hex(reset_status);
  if (entry_carriers != 0) {
    // Which carriers kept the request over the reset: a bring-up fact (handover.hpp).
    console_write(", entry requested (kept by");
    constexpr const char* kCarrierNames[] = {" SRC_GPR5", " SNVS_LPGPR0", " DTCM"};
    for (std::uint32_t i = 0; i < 3; ++i) {
      if ((entry_carriers & (1U << i)) != 0) console_write(kCarrierNames[i]);
    }
    console_write(")");
  }
  console_write("\n");
}

// Quiesces everything the bootloader started and branches to the application's reset handler
// with its stack, as close to the state after reset as the hand-over allows.
[[noreturn]] void start_application(std::uint8_t node_id, std::uint32_t bitrate,
                                    const Provisioning& provisioning,
                                    const journal::InstalledImage& image, bool trial) {
  if (trial) {
    console_write("rtcanboot: trial start ");
    console_write_decimal(image.attempts);
    console_write(" of ");
    console_write_decimal(provisioning.boot_attempts);
    console_write(", watchdog ");
    console_write_decimal(kTrialWatchdogMs);
    console_write(" ms\n");
  }
  console_write("rtcanboot: starting application\n");
  console_flush();
  disable_irq();
  flexcan_driver().stop();
  g_clock.stop();
  handover::write({node_id, bitrate, kVersion, image.payload_crc32, image.image_version});
  g_flash.prepare_for_execute();
  // Last before the jump: whatever the image does from here on, a reset comes back to us.
  if (trial && !arm_trial_watchdog(kTrialWatchdogMs)) {
    console_write("rtcanboot: RTWDOG did not start: trial boot without watchdog\n");
  }
  mpu_disable();
  stop_systick();
  nvic_disable_all();
  const auto* vectors = reinterpret_cast<const volatile std::uint32_t*>(memory_map::kAppAddress);
  const std::uint32_t initial_sp = vectors[0];
  const std::uint32_t reset_handler = vectors[1];
  reg32(scb::kVtor) = memory_map::kAppAddress;
  dsb();
  isb();
  __asm__ volatile(
      "msr msp, %0\n"
      "movs r3, #0\n"
      "msr control, r3\n"  // privileged, MSP, no FP context: as after reset
      "isb\n"
      "cpsie i\n"  // every interrupt source is disabled and nothing is pending
      "bx %1\n" ::"r"(initial_sp),
      "r"(reset_handler)
      : "r3", "memory");
  __builtin_unreachable();
}

bool g_watchdogs_off = true;
constinit WatchdogState g_watchdogs_at_entry;  // set before the constructors run
constinit SelfTestResult g_self_test;          // 0x5F01: kNotRun unless this boot ran the self-test

[[noreturn]] void run() {
  const handover::EntryRequest request = handover::take_entry_request();
  const std::uint32_t entry_carriers = request.carriers;
  const bool self_test_requested = request.self_test;
  const std::uint8_t answer_node = request.answer_node;  // the application's stop answer is owed
  const bool entry_requested = entry_carriers != 0;
  handover::clear();
  const std::uint32_t reset_status = reg32(src::kSrsr);

  mpu_configure_bootloader();
  board::init_clocks();
  board::init_pins();
  board::init_console();
  print_banner(reset_status, entry_carriers);
  g_clock.start();

  // FlexSPI2 is reconfigured by the ROM: interrupts are still masked, caches still off.
  // The port loads its own LUT sequences and checks the JEDEC ID; on failure it has said why on
  // the console and refuses erase/program work (0x1F57:1 reports it).
  const bool flash_ready = g_flash.init() == FlashResult::kOk;
  dcache_enable();
  icache_enable();

  bool provisioned = false;
  Provisioning provisioning = load_provisioning(g_flash, &provisioned);
  FlexCan& can = flexcan_driver();
  if (compute_bit_timing(board::kCanClockHz, provisioning.bitrate).prescaler == 0) {
    provisioning.bitrate = kFallbackBitrate;
  }
  if (provisioning.node_id == lss::kUnconfigured) {
    console_write("node unconfigured (LSS), ");
  } else {
    console_write("node ");
    console_write_decimal(provisioning.node_id);
    console_write(", ");
  }
  console_write_decimal(provisioning.bitrate / 1000);
  console_write(provisioned ? " kbit/s\n" : " kbit/s (defaults)\n");

  BootloaderSettings settings;
  // Serial number: the chip's unique-ID fuses; a provisioning record's serial overrides it.
#ifdef RTCANBOOT_TEST_PRODUCT_CODE
  // The twin's fleet test only: a node of another product on the same bus.
  settings.identity = {RTCANBOOT_VENDOR_ID, RTCANBOOT_TEST_PRODUCT_CODE, kVersion,
                       chip_serial_number()};
#else
  settings.identity = {RTCANBOOT_VENDOR_ID, RTCANBOOT_PRODUCT_CODE, kVersion, chip_serial_number()};
#endif
#if defined(RTCANBOOT_LISTEN_ALONG) && RTCANBOOT_LISTEN_ALONG == 0
  settings.listen_along = false;
#endif
  settings.bootloader_version = kVersion;
  settings.device_name = product::kBootloaderDeviceName;
  settings.software_version = RTCANBOOT_VERSION_STRING;
  settings.provisioning = provisioning;
  settings.entry_requested = entry_requested;
  // Only as the node the master asked: an application whose node-ID LSS changed without a store
  // comes back under another one, and the master's retry finds it by its boot-up.
  settings.answer_stop = answer_node != 0 && answer_node == provisioning.node_id;
  if (!flash_ready) settings.flash_refused = g_flash.refusal();
  settings.lss_rates = lss_supported_rates(board::kCanClockHz);
  settings.self_test = &g_self_test;
#ifdef RTCANBOOT_LSS_STORE_WHEN_LOCKED
  settings.lss_store_when_locked = true;
#endif
#ifdef RTCANBOOT_HAS_KEY_RECORD
  settings.key_record = &port::kBuildKeyRecord;
  console_write("signed images only\n");
#endif
  static Bootloader bootloader(can, g_flash, g_sha, std::span<std::uint8_t>(g_download_buffer),
                               settings);

  // CAN comes up last and interrupts right after it: from here on every frame reaches the ring.
  // With a wrong CAN clock the node would send at a wrong bit rate and disturb the bus: it stays
  // off the bus and says why; the boot decision (start a valid application) is unchanged.
  // A controller that does not start (the FlexCAN freeze handshake failed even after a soft
  // reset; the driver said so on the console) is retried every second. Nothing is written to it
  // meanwhile that needs freeze mode, and the node stays off the bus.
  const char* const clock_problem = board::check_clocks();
  bool can_started = false;
  if (clock_problem != nullptr) {
    console_write("rtcanboot: clock check failed: ");
    console_write(clock_problem);
    console_write("; CAN stays off the bus\n");
  } else {
    while (!(can_started = can.start(board::kCanClockHz, provisioning.bitrate, g_clock))) {
      console_write("rtcanboot: CAN controller not started, retrying in 1 s\n");
      const Micros retry_at = g_clock.now() + 1'000'000;
      while (g_clock.now() < retry_at) {
        if (!g_watchdogs_off) service_watchdogs();
      }
    }
  }
  enable_irq();
  if (self_test_requested) {
    // Before the node starts: a master sees the boot-up message once the result is readable.
    SelfTestInputs inputs;
    inputs.entry_carriers = entry_carriers;
    inputs.watchdogs_at_entry = g_watchdogs_at_entry;
    inputs.watchdogs_off = g_watchdogs_off;
    inputs.can_started = can_started;
    inputs.clock_problem = clock_problem;
    inputs.bitrate = provisioning.bitrate;
    g_self_test = run_self_test(inputs, g_flash, can, g_clock);
  }
  bootloader.start(g_clock.now());
  bool action_waiting = false;
  Micros action_since = 0;
  for (;;) {
    Micros now = g_clock.now();
    CanFrame frame;
    while (can.receive(frame)) {
      bootloader.on_frame(frame, now);
      now = g_clock.now();
    }
    bootloader.poll(now);
    std::uint32_t new_bitrate = 0;
    if (bootloader.take_bitrate_switch(&new_bitrate) && clock_problem == nullptr) {
      // LSS activate bit timing: the first switch delay has passed, nothing is being sent.
      can.stop();
      can.start(board::kCanClockHz, new_bitrate, g_clock);
    }
    can.poll();
    if (!g_watchdogs_off) service_watchdogs();

    const PendingAction action = bootloader.pending_action();
    if (action != PendingAction::kNone) {
      if (!action_waiting) {
        action_waiting = true;
        action_since = now;
      }
      if (can.tx_idle() || now - action_since > kDrainTimeout) {
        if (action == PendingAction::kStartApplication)
          start_application(bootloader.node_id(), bootloader.bitrate(), provisioning,
                            bootloader.installed(), bootloader.trial_start());
        if (action == PendingAction::kSelfTestReset) {
          // The same carriers as an application's entry request: which of them survive this
          // reset is one of the things the self-test reports.
          handover::write_entry_value(handover::kSelfTestRequestMagic);
          console_write("rtcanboot: reset into the self-test\n");
        }
        console_write("rtcanboot: reset\n");
        console_flush();
        system_reset();
      }
    }

    // Sleep until a frame, a transmit completion or the core's next deadline. PRIMASK keeps
    // the wake-up interrupt pending across the check, so none is missed between test and WFI.
    disable_irq();
    Micros deadline = action != PendingAction::kNone ? now + 1000 : bootloader.next_deadline();
    if (!g_watchdogs_off && deadline > now + kWatchdogServicePeriod) {
      deadline = now + kWatchdogServicePeriod;
    }
    if (!can.rx_pending() && g_clock.arm_wakeup(deadline)) wait_for_interrupt();
    enable_irq();
  }
}

}  // namespace
}  // namespace rtcanboot::imxrt1064

// Runs from ITCM, entered from the flash-resident reset stub once the copy is done.
extern "C" void rtcanboot_ram_entry() {
  using namespace rtcanboot::imxrt1064;
  reg32(scb::kVtor) = reinterpret_cast<std::uintptr_t>(&kRamVectors);
  dsb();
  isb();
  g_watchdogs_at_entry = read_watchdogs();
  g_watchdogs_off = disable_watchdogs();
  stop_systick();
  nvic_disable_all();
  for (auto* constructor = __init_array_start; constructor != __init_array_end; ++constructor) {
    (*constructor)();
  }
  run();
}
