// Power-cut sweep: an update of the example application over an existing valid application, on
// the real bootloader in the twin, driven by the host tool's update flow, in pure virtual time.
// Power is cut
//   - before every mutating flash operation of the update (kind "before-op"),
//   - in the middle of each one (kind "in-op": a torn page program or a partly erased sector),
//   - at seeded random virtual times over the whole update ("time") and inside its boots
//     ("boot": power-on, the application's reset into the bootloader, the start of the new image).
// After each cut the board boots again from the same flash, and the invariant is checked:
//   - it runs the previous valid application (or the new one once it was committed): heartbeat
//     OPERATIONAL, 0x1F56 names that image and the application region holds exactly its bytes,
//   - or it stays in the bootloader answering 0x1F57:1 with "no valid program" (code 1),
//   - the bootloader region (first 128 KiB) is byte-identical and was never erased,
//   - the twin reported no fault;
// and a fresh update then succeeds: by default a 1 KiB image through the same flow, installed,
// verified and committed but not started (cheap); with --fresh-app (part of --full) the new
// application again, started.
//
// Prints "power-cut sweep: N cut points, N recovered, 0 bricked" and writes one JSON entry per cut
// point (build/results/powercut.json unless --json). Exit 0 when every point recovered, 1 when not,
// 77 when the firmware has not been built (ctest: skipped), 2 for bad arguments.
//
// The baseline journal sits right before a sector switch (sector 1 full, sector 0 with one free
// page), so the update's REVOKE takes the last page of sector 0 and its COMMIT needs an erase of
// sector 1: the sweep cuts inside that erase too. --fresh-journal starts from a single COMMIT.
//
// LSS store configuration (CiA 305) is swept too ("lss-before-op", "lss-in-op"): a configured node
// 5 whose provisioning log is right before a sector switch gets node-ID 42 and stores it; the store
// erases the other provisioning sector and programs its first page. After a cut the node must come
// up as node 5 or node 42 (never unconfigured or at another bit rate), and a new store must work.
//
// Key provisioning over CAN (docs/security.md) is swept too ("key-before-op", "key-in-op"): a
// keyless bootloader without an application gets RFC 8032 TEST 1's key hash on 0x5F03:2. After a
// cut it must hold the whole key (0x5F03:1 = 2), no key with its key sector blank (0), or report
// the cut write (3), never a half key; unless 2, a new key write must complete; then an unsigned
// image must be refused.
//
// --signed: the anti-rollback counter (docs/security.md). The node holds TEST 1's key (key store)
// and the old application committed with security counter 3; the update and the fresh update
// are containers signed by TEST 1 with counter 4. After each cut 0x5F00:9 must read 4 when the
// new image runs and 3 otherwise: a cut never lowers the counter nor records it without its image.
//
// Options: --full (a 192 KiB new image, 64 random cut times, --fresh-app), --pad BYTES (bytes
// appended to the new image, default 256; the old one has 512), --jobs N (cut points run in
// parallel, each on its own simulation; default 2), --random N, --boot N, --seed S, --json PATH,
// --firmware-dir DIR,
// --fresh-journal, --timing typical|max, --only INDEX, --verbose, --sparse (the update sends only
// the sectors that differ from the old application, without a clear; default: the whole image
// after a clear, as `rtcanboot flash --full`), --signed, --no-key (skip the key provisioning cuts).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "rtcanboot/bytes.hpp"
#include "rtcanboot/canopen_defs.hpp"
#include "rtcanboot/hash.hpp"
#include "rtcanboot/host/error.hpp"
#include "rtcanboot/host/image.hpp"
#include "rtcanboot/host/lss_master.hpp"
#include "rtcanboot/host/signing.hpp"
#include "rtcanboot/host/update.hpp"
#include "rtcanboot/key_store.hpp"
#include "rtcanboot/memory_map.hpp"
#include "rtcanboot/provisioning.hpp"
#include "twin/can/flexcan.hpp"
#include "twin_rig.hpp"

#ifndef RTCANBOOT_SOURCE_DIR
#define RTCANBOOT_SOURCE_DIR "."
#endif

namespace {

using namespace rtcanboot;
using twinrig::Nanos;
namespace od = canopen::od;

constexpr std::uint32_t kOldVersion = 0x0001'0000;
constexpr std::uint32_t kNewVersion = 0x0002'0000;
constexpr Nanos kMs = 1'000'000;

struct Options {
  bool full = false;
  std::size_t pad = 256;
  unsigned jobs = 0;  // 0 = up to two threads
  unsigned random_cuts = 16;
  unsigned boot_cuts = 8;
  std::uint64_t seed = 2026;
  std::string json = std::string(RTCANBOOT_SOURCE_DIR) + "/build/results/powercut.json";
  std::string firmware_dir;
  bool fresh_journal = false;
  bool fresh_app = false;
  // The update under the cuts sends only the sectors that differ (rtcanboot flash's default)
  // instead of the whole image after a clear (--full, what the sweep measures by default).
  bool sparse = false;
  twin::FlashTiming timing = twin::FlashTiming::kTypical;
  long only = -1;
  bool verbose = false;
  bool signed_update = false;  // --signed
  bool key_cuts = true;        // --no-key: false
};

constexpr std::uint32_t kOldCounter = 3;
constexpr std::uint32_t kNewCounter = 4;

struct OpInfo {
  twin::W25Q32::OpKind kind = twin::W25Q32::OpKind::kNone;
  std::uint32_t address = 0;
  std::uint32_t length = 0;
  Nanos start = 0;
  Nanos end = 0;
};

std::string describe(const OpInfo& op) {
  const char* kind = "?";
  switch (op.kind) {
    case twin::W25Q32::OpKind::kProgram:
      kind = "page program";
      break;
    case twin::W25Q32::OpKind::kErase4k:
      kind = "erase 4 KiB";
      break;
    case twin::W25Q32::OpKind::kErase32k:
      kind = "erase 32 KiB";
      break;
    case twin::W25Q32::OpKind::kErase64k:
      kind = "erase 64 KiB";
      break;
    case twin::W25Q32::OpKind::kEraseChip:
      kind = "chip erase";
      break;
    case twin::W25Q32::OpKind::kNone:
      break;
  }
  return fmt::format("{} at 0x{:06X}", kind, op.address);
}

struct CutPoint {
  std::string kind;      // before-op, in-op, time, boot
  std::uint64_t op = 0;  // 1-based operation of the update (before-op, in-op)
  Nanos time = 0;        // virtual time after power-on (before-op, time, boot)
  std::string op_desc;
};

struct Outcome {
  std::string state;       // old-app, new-app, bootloader-no-valid-program, or what went wrong
  bool recovered = false;  // invariant held and the fresh update succeeded
  bool bricked = false;    // no answer after the cut, or the fresh update failed
  std::string detail;
  std::string cut_what;  // the twin's description of the cut
  Nanos cut_at = 0;
  std::uint64_t ops_done = 0;
  int boot_reason = -1;
  double wall_s = 0;
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
};

// Everything one cut point needs, prepared once.
struct Scenario {
  Options options;
  twinrig::Firmware fw;
  twinrig::RigConfig rig;
  std::vector<std::uint8_t> baseline;  // 4 MiB: bootloader, records, old application
  std::vector<std::uint8_t> old_app;
  std::vector<std::uint8_t> new_app;
  std::uint32_t old_crc = 0;
  std::uint32_t new_crc = 0;
  host::LoadedInput new_input;
  // The image of the fresh update after each cut (unless --fresh-app): 1 KiB with a vector table
  // the bootloader accepts (initial SP at the top of DTCM, reset handler inside the payload).
  std::vector<std::uint8_t> probe_app;
  std::uint32_t probe_crc = 0;
  host::LoadedInput probe_input;
  host::LoadedInput unsigned_probe_input;  // the probe as a plain image (key provisioning cuts)
  std::vector<std::uint8_t> key_hash;      // SHA-256 of RFC 8032 TEST 1's public key
};

host::UpdateOptions update_options(const Scenario& s, bool force) {
  host::UpdateOptions o;
  o.node = s.rig.node_id;
  o.start = true;
  o.force = force;
  o.full = !s.options.sparse;
  o.image_version = kNewVersion;
  return o;
}

bool region_is(const std::span<const std::uint8_t> flash,
               const std::vector<std::uint8_t>& payload) {
  return std::equal(payload.begin(), payload.end(), flash.begin() + memory_map::kAppOffset);
}

// Checks that must hold at every moment: the bootloader's 128 KiB are unchanged and were never
// erased. Returns a description of the problem, empty when fine.
std::string check_bootloader_region(twin::Board& board, const Scenario& s) {
  const auto flash = board.flash().contents();
  if (!std::equal(flash.begin(), flash.begin() + memory_map::kBootloaderSize, s.baseline.begin())) {
    std::size_t i = 0;
    while (flash[i] == s.baseline[i]) ++i;
    return fmt::format("bootloader region changed at offset 0x{:05X}", i);
  }
  for (std::uint32_t sector = 0; sector < memory_map::kBootloaderSize / memory_map::kSectorSize;
       ++sector) {
    if (board.flash().wear(sector) != 0)
      return fmt::format("bootloader sector {} was erased", sector);
  }
  return {};
}

// The state a board comes up in after power-on: waits for its boot-up and asks it.
std::string classify(twinrig::Rig& rig, const Scenario& s, Outcome& out) {
  twin::Board& board = rig.board();
  const Nanos on = rig.sim().now();
  board.power_on();
  if (rig.wait_boot_up(on, on + 2000 * kMs) == 0) {
    out.bricked = true;
    return fmt::format("no boot-up within 2 s (board state {}, {})",
                       static_cast<int>(board.state()), board.stop_reason());
  }
  host::Master& m = rig.master();
  const std::uint8_t node = s.rig.node_id;
  std::uint8_t running = 0;
  try {
    running = m.upload_u8(node, od::kRtcanbootInfo, 1);
    if (running == canopen::kRunningApplication) {
      // Which image runs: the application region must hold one of the two images exactly, and
      // 0x1F56:1 (the software ID the bootloader handed over) must name it.
      const std::uint32_t id = m.upload_u32(node, od::kSoftwareId, 1);
      const auto flash = board.flash().contents();
      if (region_is(flash, s.old_app)) {
        out.state = "old-app";
        if (id != s.old_crc)
          return fmt::format("the old application reports software ID 0x{:08X}", id);
      } else if (region_is(flash, s.new_app)) {
        out.state = "new-app";
        if (id != s.new_crc)
          return fmt::format("the new application reports software ID 0x{:08X}", id);
      } else {
        out.state = "damaged-app-started";
        return fmt::format(
            "an application runs from a region that holds neither image (0x1F56 = 0x{:08X})", id);
      }
      // Its heartbeat (OPERATIONAL), not just the boot-up message.
      rig.run_until([&] { return rig.observed().last_heartbeat > on; },
                    rig.sim().now() + 1500 * kMs);
      if (rig.observed().last_heartbeat <= on || rig.observed().last_heartbeat_state != 0x05) {
        return "the application sends no OPERATIONAL heartbeat";
      }
    } else if (running == canopen::kRunningBootloader) {
      const std::uint32_t status = m.upload_u32(node, od::kFlashStatus, 1);
      out.boot_reason = m.upload_u8(node, od::kRtcanbootInfo, 5);
      out.state = "bootloader-no-valid-program";
      if ((status & 1U) != 0 ||
          ((status >> 1) & 0x7F) !=
              static_cast<std::uint32_t>(canopen::FlashStatus::kNoValidProgram)) {
        out.state = "bootloader";
        return fmt::format("the bootloader reports 0x1F57:1 = 0x{:08X} ({})", status,
                           host::describe_flash_status(status));
      }
      if (out.boot_reason == static_cast<int>(canopen::BootReason::kApplicationDamaged)) {
        return "the bootloader found a committed but damaged application";
      }
    } else {
      return fmt::format("0x5F00:1 = {}", running);
    }
    if (s.options.signed_update) {
      // The counter is the new image's exactly when the new image is the committed one.
      const std::uint32_t counter = m.upload_u32(node, od::kRtcanbootInfo, 9);
      const std::uint32_t expected = out.state == "new-app" ? kNewCounter : kOldCounter;
      if (counter != expected) {
        return fmt::format("security counter {} with {}, expected {}", counter, out.state,
                           expected);
      }
    }
  } catch (const host::Error& e) {
    out.bricked = true;
    return fmt::format("no SDO answer after the cut: {}", e.what());
  }
  return {};
}

// Closes a cut point's outcome: a twin fault is a problem too; no problem means it recovered.
Outcome finished(Outcome out, twinrig::Rig& rig, const Scenario& s, std::string problem) {
  twin::Board& board = rig.board();
  if (problem.empty() && board.fault_count() != 0) problem = "twin fault: " + rig.fault_summary();
  out.recovered = problem.empty();
  if (!out.recovered && s.options.verbose)
    std::printf("console of the failed run:\n%s\n", board.console().c_str());
  out.detail = std::move(problem);
  out.wall_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - out.started).count();
  return out;
}

Outcome run_point(const Scenario& s, const CutPoint& point, std::uint64_t seed) {
  Outcome out;
  twinrig::RigConfig rc = s.rig;
  rc.seed = seed;
  twinrig::Rig rig(rc, s.baseline);
  twin::Board& board = rig.board();
  twin::W25Q32& flash = board.flash();
  if (point.kind == "in-op") flash.cut_power_at_operation(point.op);
  board.power_on();
  if (point.kind != "in-op") flash.cut_power_at_time(point.time);
  auto is_off = [&] { return board.state() == twin::BoardState::kOff; };

  // The interrupted update, started once the old application is up (or the power is gone).
  rig.run_until([&] { return is_off() || rig.observed().boot_ups > 0; }, 2000 * kMs);
  rig.transport().interrupt = is_off;
  std::string host_error;
  try {
    host::run_update(rig.master(), s.new_input, update_options(s, false));
  } catch (const twinrig::Interrupted&) {
  } catch (const host::Error& e) {
    host_error = e.what();
  }
  rig.transport().interrupt = nullptr;
  if (!is_off()) rig.run_until(is_off, rig.sim().now() + 5000 * kMs);
  auto finish = [&](std::string problem) { return finished(out, rig, s, std::move(problem)); };
  if (!is_off()) {
    out.state = "cut-not-reached";
    return finish(fmt::format("the power cut did not happen (host: {})",
                              host_error.empty() ? "update completed" : host_error));
  }
  out.cut_at = rig.sim().now();
  out.ops_done = flash.mutating_operations();
  for (const twin::Report& r : board.reports()) {
    if (r.source == "flash" && r.message.rfind("power cut", 0) == 0) {
      out.cut_what = r.message;
      out.cut_at = r.time;
    }
  }
  if (board.fault_count() != 0) {
    out.state = "fault-before-cut";
    return finish("twin fault before the cut: " + rig.fault_summary());
  }
  if (point.kind == "before-op" && out.ops_done + 1 != point.op) {
    out.state = "cut-misplaced";
    return finish(fmt::format("cut after {} operations, expected {}", out.ops_done, point.op - 1));
  }
  if (point.kind == "in-op" &&
      (out.ops_done != point.op || out.cut_what.find("during") == std::string::npos)) {
    out.state = "cut-misplaced";
    return finish(fmt::format("cut after {} operations ({}), expected inside operation {}",
                              out.ops_done, out.cut_what, point.op));
  }
  if (auto problem = check_bootloader_region(board, s); !problem.empty()) {
    out.state = "bootloader-region-changed";
    return finish(problem);
  }

  // Boot again from the same flash.
  rig.flush_host();
  if (auto problem = classify(rig, s, out); !problem.empty()) return finish(problem);

  // A fresh update must succeed.
  try {
    if (s.options.fresh_app) {
      // The new application again, started: it must run from an intact region.
      const host::UpdateResult r =
          host::run_update(rig.master(), s.new_input, update_options(s, true));
      if (r.software_id != s.new_crc || !r.started) {
        out.bricked = true;
        return finish(fmt::format("fresh update: software ID 0x{:08X}, started {}", r.software_id,
                                  r.started));
      }
      const std::uint8_t running = rig.master().upload_u8(s.rig.node_id, od::kRtcanbootInfo, 1);
      const std::uint32_t id_after = rig.master().upload_u32(s.rig.node_id, od::kSoftwareId, 1);
      if (running != canopen::kRunningApplication ||
          !region_is(board.flash().contents(), s.new_app) || id_after != s.new_crc) {
        out.bricked = true;
        return finish("fresh update: the new application is not running from an intact region");
      }
    } else {
      // A small image through the same flow (stop, clear, download, verification), not started:
      // the bootloader accepts, stores, verifies and commits it (0x1F57 OK, 0x1F56 its CRC).
      host::UpdateOptions o = update_options(s, true);
      o.start = false;
      const host::UpdateResult r = host::run_update(rig.master(), s.probe_input, o);
      const std::uint32_t status = rig.master().upload_u32(s.rig.node_id, od::kFlashStatus, 1);
      const std::uint8_t state = rig.master().upload_u8(s.rig.node_id, od::kProgramControl, 1);
      if (r.software_id != s.probe_crc || status != 0 ||
          state != static_cast<std::uint8_t>(canopen::ProgramState::kStopped) ||
          !region_is(board.flash().contents(), s.probe_app)) {
        out.bricked = true;
        return finish(fmt::format("fresh update: software ID 0x{:08X}, 0x1F57 0x{:08X}, 0x1F51 {}",
                                  r.software_id, status, state));
      }
    }
  } catch (const host::Error& e) {
    out.bricked = true;
    return finish(fmt::format("fresh update failed: {}", e.what()));
  }
  return finish(check_bootloader_region(board, s));
}

// The update without a cut: the list of flash operations, the boots and the total time.
struct Reference {
  std::vector<OpInfo> ops;
  std::vector<std::pair<Nanos, Nanos>> boots;  // [start, boot-up]
  Nanos end = 0;
  std::string error;
};

Reference reference_run(const Scenario& s) {
  const auto w0 = std::chrono::steady_clock::now();
  Reference ref;
  twinrig::Rig rig(s.rig, s.baseline);
  twin::Board& board = rig.board();
  twin::W25Q32& flash = board.flash();
  // Observe the operations next to the board's own hook.
  auto board_hook = flash.on_busy_change;
  flash.on_busy_change = [&flash, &ref, board_hook](bool busy) {
    if (busy) {
      const auto& op = flash.current_op();
      ref.ops.push_back(OpInfo{op.kind, op.address, op.length, op.start, op.end});
    }
    if (board_hook) board_hook(busy);
  };
  board.power_on();
  // Boot-up frames and what started each boot: power-on, a warm reset, or the master's last
  // request.
  Nanos boot_start = 0;
  std::uint64_t seen_boot_ups = 0;
  std::size_t seen_reports = 0;
  auto track_boots = [&] {
    for (; seen_reports < board.reports().size(); ++seen_reports) {
      const twin::Report& r = board.reports()[seen_reports];
      if (r.source == "reset" && r.time > boot_start) boot_start = r.time;
    }
    if (rig.observed().boot_ups != seen_boot_ups) {
      seen_boot_ups = rig.observed().boot_ups;
      ref.boots.emplace_back(boot_start, rig.observed().last_boot_up);
      boot_start = rig.observed().last_boot_up;
    }
    return false;
  };
  rig.transport().interrupt = track_boots;
  rig.run_until([&] { return rig.observed().boot_ups > 0; }, 2000 * kMs);
  Nanos start_request = 0;
  host::UpdateEvents events;
  events.step = [&](const std::string& step) {
    if (step.rfind("starting the application", 0) == 0) start_request = rig.sim().now();
    if (s.options.verbose) {
      std::printf("  [reference %9.3f ms, wall %6.2f s] %s\n",
                  static_cast<double>(rig.sim().now()) / 1e6,
                  std::chrono::duration<double>(std::chrono::steady_clock::now() - w0).count(),
                  step.c_str());
    }
  };
  try {
    const host::UpdateResult r =
        host::run_update(rig.master(), s.new_input, update_options(s, false), events);
    if (r.software_id != s.new_crc || !r.started)
      ref.error = "the reference update did not start the new image";
  } catch (const host::Error& e) {
    ref.error = fmt::format("reference update failed: {}", e.what());
  }
  track_boots();
  rig.transport().interrupt = nullptr;
  // The boot of the new image starts with the master's start request, not with the bootloader's
  // last boot-up.
  if (start_request != 0 && !ref.boots.empty() && ref.boots.back().first < start_request) {
    ref.boots.back().first = start_request;
  }
  flash.on_busy_change = board_hook;
  ref.end = rig.sim().now();
  if (board.fault_count() != 0)
    ref.error = "twin fault in the reference update: " + rig.fault_summary();
  if (ref.ops.empty()) ref.error = "the reference update did no flash operation";
  return ref;
}

std::string json_escape(const std::string& text) {
  std::string out;
  for (const char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += fmt::format("\\u{:04x}", static_cast<unsigned>(c));
    } else {
      out += c;
    }
  }
  return out;
}

bool parse_args(int argc, char** argv, Options& o) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::invalid_argument(a + " needs a value");
      return argv[++i];
    };
    if (a == "--full") {
      o.full = true;
      o.fresh_app = true;
      o.pad = 192 * 1024;
      o.random_cuts = 64;
      o.boot_cuts = 24;
    } else if (a == "--pad") {
      o.pad = std::stoul(value());
    } else if (a == "--random") {
      o.random_cuts = static_cast<unsigned>(std::stoul(value()));
    } else if (a == "--boot") {
      o.boot_cuts = static_cast<unsigned>(std::stoul(value()));
    } else if (a == "--seed") {
      o.seed = std::stoull(value());
    } else if (a == "--json") {
      o.json = value();
    } else if (a == "--firmware-dir") {
      o.firmware_dir = value();
    } else if (a == "--fresh-app") {
      o.fresh_app = true;
    } else if (a == "--sparse") {
      o.sparse = true;
    } else if (a == "--fresh-journal") {
      o.fresh_journal = true;
    } else if (a == "--timing") {
      const std::string t = value();
      if (t == "typical") {
        o.timing = twin::FlashTiming::kTypical;
      } else if (t == "max") {
        o.timing = twin::FlashTiming::kMax;
      } else {
        throw std::invalid_argument("--timing typical|max");
      }
    } else if (a == "--jobs" || a == "-j") {
      o.jobs = static_cast<unsigned>(std::stoul(value()));
    } else if (a == "--only") {
      o.only = std::stol(value());
    } else if (a == "--signed") {
      o.signed_update = true;
    } else if (a == "--no-key") {
      o.key_cuts = false;
    } else if (a == "--verbose" || a == "-v") {
      o.verbose = true;
    } else if (a == "--help" || a == "-h") {
      std::printf(
          "usage: %s [--full] [--pad BYTES] [--random N] [--boot N] [--seed S] [--json PATH]\n"
          "          [--firmware-dir DIR] [--fresh-journal] [--fresh-app] [--timing typical|max] "
          "[--jobs N]\n"
          "          [--only INDEX] [--sparse] [--signed] [--no-key] [--verbose]\n",
          argv[0]);
      std::exit(0);
    } else {
      throw std::invalid_argument("unknown option " + a);
    }
  }
  return true;
}

// The previous application's journal: a long history right before a sector switch, or a single
// COMMIT on a fresh journal.
void write_journal(std::vector<std::uint8_t>& flash, const Scenario& s) {
  const std::uint32_t counter = s.options.signed_update ? kOldCounter : 0;
  if (s.options.fresh_journal) {
    journal::Record r = twinrig::commit_record(s.old_app, 1, kOldVersion);
    r.security_counter = counter;
    twinrig::put_record(flash, r, 0, 0);
    return;
  }
  // Sequence 1..16 fill sector 1, 17..31 take slots 0..14 of sector 0; odd = COMMIT of the old
  // application, even = REVOKE (as repeated updates of it leave them). 31 = COMMIT decides.
  for (std::uint32_t seq = 1; seq <= 31; ++seq) {
    journal::Record r;
    if (seq % 2 == 1) {
      r = twinrig::commit_record(s.old_app, seq, kOldVersion);
    } else {
      r.type = journal::RecordType::kRevoke;
      r.sequence = seq;
    }
    r.security_counter = counter;
    const std::uint32_t sector = seq <= 16 ? 1 : 0;
    const std::uint32_t slot = seq <= 16 ? seq - 1 : seq - 17;
    twinrig::put_record(flash, r, sector, slot);
  }
}

// --- LSS store configuration under power cuts ----------------------------------------------

constexpr std::uint8_t kLssOldNode = 5;
constexpr std::uint8_t kLssNewNode = 42;

// Bootloader only (no application), provisioning log: sector 0 full (sequence 2..17, node 5),
// sector 1 with an older record (sequence 1): the next store erases sector 1 first.
std::vector<std::uint8_t> lss_baseline(const Scenario& s) {
  std::vector<std::uint8_t> flash = twinrig::factory_flash(s.fw.bootloader, s.rig);
  auto put = [&](std::uint32_t sector, std::uint32_t slot, std::uint32_t sequence) {
    Provisioning p;
    p.node_id = kLssOldNode;
    p.bitrate = s.rig.bitrate;
    p.sequence = sequence;
    const std::uint32_t at = memory_map::kProvisioningOffset + sector * memory_map::kSectorSize +
                             slot * RecordLog::kSlotSize;
    std::fill_n(flash.begin() + at, RecordLog::kSlotSize, 0xFF);
    encode_provisioning(p, flash.data() + at, kProvisioningRecordSize);
  };
  for (std::uint32_t slot = 0; slot < RecordLog::kSlotsPerSector; ++slot) put(0, slot, slot + 2);
  put(1, 0, 1);
  return flash;
}

// LSS: select the node, give it `node_id`, store (the power may go meanwhile).
std::string lss_store(twinrig::Rig& rig, std::uint8_t node_id) {
  host::LssMaster lss(rig.transport());
  lss.switch_global(lss::Mode::kConfiguration);
  if (lss.configure_node_id(node_id).code != lss::kSuccess) return "configure node-ID refused";
  const host::LssAnswer answer = lss.store_configuration();
  if (answer.code != lss::kSuccess) return fmt::format("store refused: {}", answer.code);
  lss.switch_global(lss::Mode::kWaiting);
  return {};
}

// Which node-ID the board boots with (0: none within 2 s).
std::uint8_t lss_boot_node(twinrig::Rig& rig) {
  const Nanos on = rig.sim().now();
  rig.board().power_on();
  host::Master& m = rig.master();
  m.listen_until(on / 1000 + 1'500'000);
  std::uint8_t node = 0;
  for (const auto& [id, at] : m.boot_ups()) {
    if (at * 1000 >= on) node = id;
  }
  return node;
}

// The flash operations `action` causes on a board that boots normally (empty: `action` failed).
std::vector<OpInfo> record_ops(const Scenario& s, const std::vector<std::uint8_t>& base,
                               const std::function<bool(twinrig::Rig&)>& action) {
  twinrig::Rig rig(s.rig, base);
  twin::W25Q32& flash = rig.board().flash();
  std::vector<OpInfo> ops;
  auto board_hook = flash.on_busy_change;
  flash.on_busy_change = [&](bool busy) {
    if (busy) {
      const auto& op = flash.current_op();
      ops.push_back(OpInfo{op.kind, op.address, op.length, op.start, op.end});
    }
    if (board_hook) board_hook(busy);
  };
  rig.board().power_on();
  rig.wait_boot_up(0, 2000 * kMs);
  bool done = false;
  try {
    done = action(rig);
  } catch (const host::Error&) {
  }
  if (!done) ops.clear();
  flash.on_busy_change = board_hook;
  return ops;
}

// Boots the board, arms the cut at `point` (`in_op_kind`: the count of mutating operations, else
// the time), runs `action` until the power goes and checks the bootloader region. Empty: the cut
// happened and the bootloader is intact; otherwise the problem, with out.state set.
std::string cut_during(twinrig::Rig& rig, const Scenario& s, const CutPoint& point,
                       std::string_view in_op_kind, const std::function<void()>& action,
                       Outcome& out) {
  twin::Board& board = rig.board();
  twin::W25Q32& flash = board.flash();
  auto is_off = [&] { return board.state() == twin::BoardState::kOff; };
  board.power_on();
  rig.wait_boot_up(0, 2000 * kMs);
  if (point.kind == in_op_kind) {
    flash.cut_power_at_operation(flash.mutating_operations() + point.op);
  } else {
    flash.cut_power_at_time(point.time);
  }
  rig.transport().interrupt = is_off;
  try {
    action();
  } catch (const twinrig::Interrupted&) {
  } catch (const host::Error&) {
  }
  rig.transport().interrupt = nullptr;
  if (!is_off()) rig.run_until(is_off, rig.sim().now() + 2000 * kMs);
  if (!is_off()) {
    out.state = "cut-not-reached";
    return "the power cut did not happen";
  }
  out.cut_at = rig.sim().now();
  out.ops_done = flash.mutating_operations();
  if (auto problem = check_bootloader_region(board, s); !problem.empty()) {
    out.state = "bootloader-region-changed";
    return problem;
  }
  rig.flush_host();
  return {};
}

Outcome run_lss_point(const Scenario& s, const std::vector<std::uint8_t>& base,
                      const CutPoint& point) {
  Outcome out;
  twinrig::Rig rig(s.rig, base);
  twin::Board& board = rig.board();
  auto finish = [&](std::string problem) { return finished(out, rig, s, std::move(problem)); };
  if (auto problem = cut_during(
          rig, s, point, "lss-in-op", [&] { lss_store(rig, kLssNewNode); }, out);
      !problem.empty())
    return finish(problem);
  const std::uint8_t node = lss_boot_node(rig);
  if (node == kLssOldNode) {
    out.state = "lss-old-record";
  } else if (node == kLssNewNode) {
    out.state = "lss-new-record";
  } else {
    out.state = "lss-lost-record";
    out.bricked = true;
    return finish(node == 0 ? "no boot-up after the cut (unconfigured or dead)"
                            : fmt::format("boots as node {}", node));
  }
  // A new store works and holds over a reset.
  try {
    if (auto problem = lss_store(rig, 43); !problem.empty()) {
      out.bricked = true;
      return finish("store after the cut: " + problem);
    }
  } catch (const host::Error& e) {
    out.bricked = true;
    return finish(fmt::format("store after the cut: {}", e.what()));
  }
  board.power_off("check");
  rig.flush_host();
  if (const std::uint8_t again = lss_boot_node(rig); again != 43) {
    out.bricked = true;
    return finish(fmt::format("after the new store the node boots as {}", again));
  }
  return finish(check_bootloader_region(board, s));
}

// --- key provisioning over CAN under power cuts ---------------------------------------------

// Writes the key hash to 0x5F03:2 and waits until the node is done (0x5F03:1 no longer 4).
std::string key_write(twinrig::Rig& rig, const Scenario& s) {
  host::Master& m = rig.master();
  const std::uint8_t node = s.rig.node_id;
  m.download(node, od::kSigningKeys, 2, s.key_hash, host::SdoMode::kSegmented);
  std::uint8_t state = static_cast<std::uint8_t>(canopen::KeyState::kWriting);
  for (int i = 0; i < 50 && state == static_cast<std::uint8_t>(canopen::KeyState::kWriting); ++i)
    state = m.upload_u8(node, od::kSigningKeys, 1);
  if (state != static_cast<std::uint8_t>(canopen::KeyState::kProvisioned))
    return fmt::format("0x5F03:1 = {} after the key write", state);
  return {};
}

Outcome run_key_point(const Scenario& s, const std::vector<std::uint8_t>& base,
                      const CutPoint& point) {
  Outcome out;
  twinrig::Rig rig(s.rig, base);
  twin::Board& board = rig.board();
  auto finish = [&](std::string problem) { return finished(out, rig, s, std::move(problem)); };
  if (auto problem = cut_during(
          rig, s, point, "key-in-op", [&] { key_write(rig, s); }, out);
      !problem.empty())
    return finish(problem);
  const Nanos on = rig.sim().now();
  board.power_on();
  if (rig.wait_boot_up(on, on + 2000 * kMs) == 0) {
    out.bricked = true;
    out.state = "no-boot-up";
    return finish("no boot-up after the cut");
  }
  host::Master& m = rig.master();
  const std::uint8_t node = s.rig.node_id;
  try {
    const auto state = static_cast<canopen::KeyState>(m.upload_u8(node, od::kSigningKeys, 1));
    const auto contents = board.flash().contents();
    const bool sector_blank =
        std::all_of(contents.begin() + memory_map::kKeyStoreOffset,
                    contents.begin() + memory_map::kKeyStoreOffset + memory_map::kSectorSize,
                    [](std::uint8_t b) { return b == 0xFF; });
    if (state == canopen::KeyState::kProvisioned) {
      out.state = "key-provisioned";
      if (m.upload(node, od::kSigningKeys, 2) != s.key_hash) return finish("another key is held");
    } else if (state == canopen::KeyState::kNone) {
      out.state = "key-none";
      if (!sector_blank) return finish("no key reported, but the key sector was written");
    } else if (state == canopen::KeyState::kInterrupted) {
      out.state = "key-interrupted";
      if (sector_blank) return finish("interrupted reported on a blank key sector");
    } else {
      out.state = "key-other";
      return finish(fmt::format("0x5F03:1 = {}", static_cast<int>(state)));
    }
    if (state != canopen::KeyState::kProvisioned) {
      // An unsigned image must not pass meanwhile unless nothing was written at all.
      if (state == canopen::KeyState::kInterrupted) {
        host::UpdateOptions o = update_options(s, true);
        o.start = false;
        try {
          host::run_update(m, s.unsigned_probe_input, o);
          out.bricked = true;
          return finish("an unsigned image was installed after a cut key write");
        } catch (const host::Error& e) {
          if (e.kind() != host::ErrorKind::kRejected)
            return finish(fmt::format("unsigned image: {}", e.what()));
        }
      }
      if (auto problem = key_write(rig, s); !problem.empty()) {
        out.bricked = true;
        return finish("key write after the cut: " + problem);
      }
    }
    // Provisioned now: an unsigned image is refused.
    host::UpdateOptions o = update_options(s, true);
    o.start = false;
    try {
      host::run_update(m, s.unsigned_probe_input, o);
      return finish("an unsigned image was installed on a provisioned node");
    } catch (const host::Error& e) {
      if (e.kind() != host::ErrorKind::kRejected)
        return finish(fmt::format("unsigned image after provisioning: {}", e.what()));
    }
  } catch (const host::Error& e) {
    out.bricked = true;
    return finish(fmt::format("no SDO answer after the cut: {}", e.what()));
  }
  return finish(check_bootloader_region(board, s));
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  Options opt;
  try {
    parse_args(argc, argv, opt);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "powercut: %s\n", e.what());
    return 2;
  }
  const auto wall0 = std::chrono::steady_clock::now();
  const std::string dir =
      opt.firmware_dir.empty() ? twinrig::default_firmware_dir() : opt.firmware_dir;
  auto fw = twinrig::load_firmware(dir);
  if (!fw) {
    std::printf("powercut: firmware not built in %s (run the rt1064 cross build): skipped\n",
                dir.c_str());
    return 77;
  }

  Scenario s;
  s.options = opt;
  s.fw = *fw;
  s.rig.bitrate = 1'000'000;
  s.rig.node_id = 5;
  s.rig.flash_timing = opt.timing;
  // Both images are the example application with different data appended: they run the same,
  // but their bytes right after the code, their CRC and SHA-256 differ, so the application region
  // tells which one is there (and a mix of both is neither).
  s.old_app = fw->app;
  s.new_app = fw->app;
  std::mt19937 old_pattern(3);
  for (std::size_t i = 0; i < 512; ++i)
    s.old_app.push_back(static_cast<std::uint8_t>(old_pattern()));
  std::mt19937 new_pattern(7);
  for (std::size_t i = 0; i < opt.pad; ++i)
    s.new_app.push_back(static_cast<std::uint8_t>(new_pattern()));
  s.old_crc = crc32(0, s.old_app.data(), s.old_app.size());
  s.new_crc = crc32(0, s.new_app.data(), s.new_app.size());
  s.new_input.format = host::InputFormat::kBinary;
  s.new_input.image = host::FlatImage{memory_map::kAppAddress, s.new_app};
  s.probe_app.resize(1024);
  for (std::size_t i = 0; i < s.probe_app.size(); ++i)
    s.probe_app[i] = static_cast<std::uint8_t>(i * 7 + 1);
  store_le32(s.probe_app.data(), memory_map::kDtcmBase + memory_map::kDtcmSize);
  store_le32(s.probe_app.data() + 4, memory_map::kAppAddress + 0x101);
  s.probe_crc = crc32(0, s.probe_app.data(), s.probe_app.size());
  s.probe_input.format = host::InputFormat::kBinary;
  s.probe_input.image = host::FlatImage{memory_map::kAppAddress, s.probe_app};
  s.unsigned_probe_input = s.probe_input;
  const host::signing::PrivateKey test1_key = [] {
    host::signing::Seed seed{};
    const std::uint8_t bytes[32] = {0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60,
                                    0xba, 0x84, 0x4a, 0xf4, 0x92, 0xec, 0x2c, 0xc4,
                                    0x44, 0x49, 0xc5, 0x69, 0x7b, 0x32, 0x69, 0x19,
                                    0x70, 0x3b, 0xac, 0x03, 0x1c, 0xae, 0x7f, 0x60};
    std::copy(std::begin(bytes), std::end(bytes), seed.begin());
    return host::signing::PrivateKey::from_seed(seed);
  }();
  {
    const host::signing::PublicKey pub = test1_key.public_key();
    SoftwareSha256 sha;
    sha.reset();
    sha.update(pub.data(), pub.size());
    s.key_hash.resize(32);
    sha.finish(s.key_hash.data());
  }
  s.baseline = twinrig::factory_flash(fw->bootloader, s.rig);
  std::copy(s.old_app.begin(), s.old_app.end(), s.baseline.begin() + memory_map::kAppOffset);
  write_journal(s.baseline, s);
  if (opt.signed_update) {
    // The node holds TEST 1's key; both updates are signed with counter 4 for its product.
    KeyHashes keys;
    keys.count = 1;
    std::copy(s.key_hash.begin(), s.key_hash.end(), keys.hash[0]);
    encode_key_store_record(keys, s.baseline.data() + memory_map::kKeyStoreOffset);
    twinrig::Rig probe(s.rig, s.baseline);
    probe.board().power_on();
    probe.wait_boot_up(0, 2000 * kMs);
    host::PackOptions pack;
    pack.vendor_id = probe.master().upload_u32(s.rig.node_id, od::kIdentity, 1);
    pack.product_code = probe.master().upload_u32(s.rig.node_id, od::kIdentity, 2);
    pack.image_version = kNewVersion;
    pack.sign_with = &test1_key;
    pack.security_counter = kNewCounter;
    auto container_input = [&](const std::vector<std::uint8_t>& payload, const char* name) {
      host::LoadedInput input;
      input.format = host::InputFormat::kContainer;
      input.container = host::parse_container(
          host::pack(host::FlatImage{memory_map::kAppAddress, payload}, pack), name);
      return input;
    };
    s.new_input = container_input(s.new_app, "signed new image");
    s.probe_input = container_input(s.probe_app, "signed probe");
  }

  std::printf(
      "power-cut sweep: old image %zu bytes (0x%08X), new image %zu bytes (0x%08X), %s journal, %s "
      "flash timing%s\n",
      s.old_app.size(), s.old_crc, s.new_app.size(), s.new_crc,
      opt.fresh_journal ? "fresh" : "near-sector-switch",
      opt.timing == twin::FlashTiming::kMax ? "max" : "typical",
      opt.signed_update ? ", signed (counter 3 -> 4)" : "");
  const Reference ref = reference_run(s);
  if (!ref.error.empty()) {
    std::printf("power-cut sweep: %s\n", ref.error.c_str());
    return 1;
  }
  std::printf("reference update: %zu flash operations, %zu boots, %.3f s virtual\n", ref.ops.size(),
              ref.boots.size(), static_cast<double>(ref.end) / 1e9);
  if (opt.verbose) {
    for (std::size_t i = 0; i < ref.ops.size(); ++i) {
      std::printf("  op %3zu at %9.3f ms: %s\n", i + 1, static_cast<double>(ref.ops[i].start) / 1e6,
                  describe(ref.ops[i]).c_str());
    }
    for (const auto& [from, to] : ref.boots) {
      std::printf("  boot %9.3f .. %9.3f ms\n", static_cast<double>(from) / 1e6,
                  static_cast<double>(to) / 1e6);
    }
  }

  std::vector<CutPoint> points;
  for (std::size_t i = 0; i < ref.ops.size(); ++i) {
    // Just before the operation starts (after the previous one has completed).
    const Nanos prev_end = i == 0 ? 0 : ref.ops[i - 1].end;
    const Nanos start = ref.ops[i].start;
    const Nanos at = start > prev_end + 2000 ? start - 1000 : (prev_end + start) / 2;
    points.push_back(CutPoint{"before-op", i + 1, at, describe(ref.ops[i])});
    points.push_back(CutPoint{"in-op", i + 1, 0, describe(ref.ops[i])});
  }
  std::mt19937_64 rng(opt.seed);
  for (unsigned i = 0; i < opt.random_cuts; ++i) {
    const Nanos at = std::uniform_int_distribution<Nanos>(1000, ref.end - 1)(rng);
    points.push_back(CutPoint{"time", 0, at, {}});
  }
  for (unsigned i = 0; i < opt.boot_cuts && !ref.boots.empty(); ++i) {
    const auto& [from, to] = ref.boots[i % ref.boots.size()];
    const Nanos at =
        std::uniform_int_distribution<Nanos>(from + 1, std::max(from + 1, to - 1))(rng);
    points.push_back(CutPoint{"boot", 0, at, {}});
  }
  // Name the operation a timed cut falls into (or after).
  for (CutPoint& p : points) {
    if (p.kind != "time" && p.kind != "boot") continue;
    for (std::size_t i = 0; i < ref.ops.size(); ++i) {
      if (p.time >= ref.ops[i].start && p.time < ref.ops[i].end) {
        p.op = i + 1;
        p.op_desc = "during " + describe(ref.ops[i]);
      }
    }
  }

  // LSS store configuration: before and inside each of its flash operations.
  const std::vector<std::uint8_t> lss_base = lss_baseline(s);
  const std::vector<OpInfo> lss_ops = record_ops(
      s, lss_base, [](twinrig::Rig& rig) { return lss_store(rig, kLssNewNode).empty(); });
  if (lss_ops.empty()) {
    std::printf("power-cut sweep: the reference LSS store failed or wrote nothing\n");
    return 1;
  }
  for (std::size_t i = 0; i < lss_ops.size(); ++i) {
    points.push_back(
        CutPoint{"lss-before-op", i + 1, lss_ops[i].start - 1000, describe(lss_ops[i])});
    points.push_back(CutPoint{"lss-in-op", i + 1, 0, describe(lss_ops[i])});
  }

  // Key provisioning over CAN on a keyless bootloader without an application.
  const std::vector<std::uint8_t> key_base = twinrig::factory_flash(fw->bootloader, s.rig);
  if (opt.key_cuts) {
    const std::vector<OpInfo> key_ops =
        record_ops(s, key_base, [&s](twinrig::Rig& rig) { return key_write(rig, s).empty(); });
    if (key_ops.empty()) {
      std::printf("power-cut sweep: the reference key write failed or wrote nothing\n");
      return 1;
    }
    for (std::size_t i = 0; i < key_ops.size(); ++i) {
      points.push_back(
          CutPoint{"key-before-op", i + 1, key_ops[i].start - 1000, describe(key_ops[i])});
      points.push_back(CutPoint{"key-in-op", i + 1, 0, describe(key_ops[i])});
    }
  }

  // Every cut point runs on its own simulation: spread them over a few threads.
  std::vector<std::size_t> selected;
  for (std::size_t i = 0; i < points.size(); ++i) {
    if (opt.only < 0 || static_cast<std::size_t>(opt.only) == i) selected.push_back(i);
  }
  std::vector<Outcome> outcomes(points.size());
  std::atomic<std::size_t> next{0};
  std::mutex print_mutex;
  auto worker = [&] {
    for (std::size_t k = next++; k < selected.size(); k = next++) {
      const std::size_t i = selected[k];
      const CutPoint& p = points[i];
      outcomes[i] = p.kind.rfind("lss-", 0) == 0   ? run_lss_point(s, lss_base, p)
                    : p.kind.rfind("key-", 0) == 0 ? run_key_point(s, key_base, p)
                                                   : run_point(s, p, opt.seed + i);
      const Outcome& o = outcomes[i];
      if (opt.verbose || !o.recovered) {
        const std::lock_guard<std::mutex> lock(print_mutex);
        std::printf("%4zu %-9s op %3llu t %10.3f ms: %-28s %s%s%s (%.2f s)\n", i, p.kind.c_str(),
                    static_cast<unsigned long long>(p.op), static_cast<double>(p.time) / 1e6,
                    o.state.c_str(), o.recovered ? "recovered" : "NOT RECOVERED",
                    o.detail.empty() ? "" : ": ", o.detail.c_str(), o.wall_s);
      }
    }
  };
  const unsigned jobs =
      std::max(1u, opt.jobs != 0 ? opt.jobs : std::min(2u, std::thread::hardware_concurrency()));
  std::vector<std::thread> threads;
  for (unsigned j = 1; j < jobs; ++j) threads.emplace_back(worker);
  worker();
  for (std::thread& t : threads) t.join();

  std::size_t recovered = 0;
  std::size_t bricked = 0;
  std::string entries;
  std::map<std::string, std::size_t> states;
  for (const std::size_t i : selected) {
    const CutPoint& p = points[i];
    const Outcome& o = outcomes[i];
    recovered += o.recovered ? 1 : 0;
    bricked += o.bricked ? 1 : 0;
    ++states[o.state];
    if (!entries.empty()) entries += ",\n";
    entries += fmt::format(
        "    {{\"index\": {}, \"kind\": \"{}\", \"op_index\": {}, \"op\": \"{}\", \"time_ns\": {}, "
        "\"cut_at_ns\": {}, \"cut\": \"{}\", \"ops_done\": {}, \"outcome\": \"{}\", "
        "\"boot_reason\": {}, "
        "\"recovered\": {}, \"bricked\": {}, \"detail\": \"{}\", \"wall_s\": {:.3f}}}",
        i, p.kind, p.op, json_escape(p.op_desc), p.time, o.cut_at, json_escape(o.cut_what),
        o.ops_done, o.state, o.boot_reason, o.recovered, o.bricked, json_escape(o.detail),
        o.wall_s);
  }
  const std::size_t run = selected.size();
  const double wall =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();

  std::string summary;
  for (const auto& [state, n] : states)
    summary += fmt::format("{}{} {}", summary.empty() ? "" : ", ", n, state);
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(opt.json).parent_path(), ec);
  std::ofstream json(opt.json);
  json << fmt::format(
      "{{\n  \"cut_points\": {},\n  \"recovered\": {},\n  \"bricked\": {},\n  "
      "\"flash_operations\": {},\n"
      "  \"old_image_bytes\": {},\n  \"new_image_bytes\": {},\n  \"journal\": \"{}\",\n  "
      "\"flash_timing\": \"{}\",\n"
      "  \"seed\": {},\n  \"wall_s\": {:.1f},\n  \"points\": [\n{}\n  ]\n}}\n",
      run, recovered, bricked, ref.ops.size(), s.old_app.size(), s.new_app.size(),
      opt.fresh_journal ? "fresh" : "near-sector-switch",
      opt.timing == twin::FlashTiming::kMax ? "max" : "typical", opt.seed, wall, entries);
  json.close();
  std::printf("outcomes: %s\n", summary.c_str());
  std::printf("results: %s (%.1f s wall)\n", opt.json.c_str(), wall);
  std::printf("power-cut sweep: %zu cut points, %zu recovered, %zu bricked\n", run, recovered,
              bricked);
  return recovered == run && run > 0 ? 0 : 1;
}
