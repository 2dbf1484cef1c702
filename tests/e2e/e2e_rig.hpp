// End-to-end test rig: the unmodified rtcanboot firmware (cross build) on twin boards, driven by
// the host tool's master and update flow in the same process, in pure virtual time.
//
// The firmware is found in RTCANBOOT_FIRMWARE_DIR (CMake cache variable of the host build; the
// environment variable of the same name overrides it at run time).
#pragma once

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "firmware_required.hpp"
#include "rtcanboot/canopen_defs.hpp"
#include "rtcanboot/host/endpoint_transport.hpp"
#include "rtcanboot/host/error.hpp"
#include "rtcanboot/host/image.hpp"
#include "rtcanboot/host/master.hpp"
#include "rtcanboot/host/update.hpp"
#include "rtcanboot/memory_map.hpp"
#include "rtcanboot/provisioning.hpp"
#include "twin/board.hpp"
#include "twin/can/bus.hpp"
#include "twin/can/flexcan.hpp"

namespace rtcanboot::e2e {

namespace tw = rtcanboot::twin;
namespace tc = rtcanboot::twin::can;
namespace co = rtcanboot::canopen;

inline std::string firmware_dir() {
  const char* env = std::getenv("RTCANBOOT_FIRMWARE_DIR");
  return env != nullptr ? env : RTCANBOOT_FIRMWARE_DIR;
}
// The bootloader built for FlexCAN `instance` (2 is the default image).
inline std::string bootloader_path(unsigned instance = 2) {
  const std::string dir = firmware_dir() + "/firmware/bootloader/";
  if (instance == 2) return dir + "rtcanboot-bootloader.bin";
  return dir + "rtcanboot-bootloader-can" + std::to_string(instance) + ".bin";
}
inline std::string example_app_path(unsigned instance = 2) {
  const std::string dir = firmware_dir() + "/firmware/example-app/";
  if (instance == 2) return dir + "example-app.elf";
  return dir + "example-app-can" + std::to_string(instance) + ".elf";
}

inline std::vector<std::uint8_t> load_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  return std::vector<std::uint8_t>(std::istreambuf_iterator<char>(in), {});
}

// Skips the test when the cross build has not produced the firmware.
#define E2E_REQUIRE_FIRMWARE(instance)                                                       \
  do {                                                                                       \
    if (::rtcanboot::e2e::load_file(::rtcanboot::e2e::bootloader_path(instance)).empty() ||  \
        ::rtcanboot::e2e::load_file(::rtcanboot::e2e::example_app_path(instance)).empty()) { \
      RTCANBOOT_SKIP_WITHOUT_FIRMWARE(                                                       \
          true, "firmware not built in " << ::rtcanboot::e2e::firmware_dir());               \
    }                                                                                        \
  } while (false)

struct LoggedFrame {
  CanFrame frame;
  Micros at = 0;
};

struct NodeSpec {
  std::uint8_t node_id = 5;  // 0xFF: an unconfigured node (LSS)
  unsigned instance = 2;
  std::uint32_t boot_window_ms = 0;
  std::uint16_t listen_window_ms = kDefaultListenWindowMs;  // 0: off
  std::string name;                                         // default "node<id>"
  std::array<std::uint32_t, 3> ocotp = {};  // unique-ID fuses; zero: derived from the name
  tw::Readings readings;  // unconfirmed chip facts: the twin's most hostile readings by default
  std::function<void(const std::string&)> console_sink;  // each console line; none: dropped
  // Another bootloader image under firmware_dir()/firmware/ (e.g.
  // "bootloader-variants/rtcanboot-bootloader-nofollow.bin"); empty: bootloader_path(instance).
  std::string bootloader;
};

inline NodeSpec node(std::uint8_t node_id, unsigned instance = 2,
                     std::uint32_t boot_window_ms = 0) {
  NodeSpec spec;
  spec.node_id = node_id;
  spec.instance = instance;
  spec.boot_window_ms = boot_window_ms;
  return spec;
}

class Rig {
 public:
  explicit Rig(std::uint32_t bitrate = 500'000)
      : bitrate_(bitrate),
        bus_(sim_.add_bus(bitrate)),
        master_ep_("master"),
        transport_(
            master_ep_, [this] { return sim_.now(); },
            [this](std::uint64_t deadline, const std::function<bool()>& stop) {
              sim_.run_until(stop, deadline);
            }),
        master_(transport_) {
    sim_.set_report_sink([this](const tw::Report& r) {
      if (r.severity == tw::Severity::kFault) bus_faults_.push_back(r.source + ": " + r.message);
    });
    bus_.attach(master_ep_);
    // Every frame the master's controller receives, stamped with its end of frame on the bus.
    master_ep_.on_receive([this](const tc::TimedFrame& f) {
      log_.push_back({f.frame, f.eof / 1000});
    });
  }

  tw::Simulation& sim() { return sim_; }
  tc::Bus& bus() { return bus_; }
  host::Master& master() { return master_; }
  host::Transport& transport() { return transport_; }
  std::uint32_t bitrate() const { return bitrate_; }
  Micros now() const { return sim_.now() / 1000; }
  const std::vector<LoggedFrame>& log() const { return log_; }
  const std::vector<std::string>& bus_faults() const { return bus_faults_; }

  // A board with an erased flash, the bootloader written at offset 0 like a debug probe and the
  // provisioning record written with the core's encode_provisioning (a factory step); powered on.
  tw::Board& add_board(const NodeSpec& spec, bool power_on = true) {
    tw::BoardConfig cfg;
    cfg.name = spec.name.empty() ? "node" + std::to_string(spec.node_id) : spec.name;
    cfg.ocotp_cfg = spec.ocotp;
    cfg.console_sink = spec.console_sink ? spec.console_sink : [](const std::string&) {};
    cfg.report_sink = [](const tw::Report&) {};
    cfg.readings = spec.readings;
    tw::Board& board = sim_.add_board(cfg);
    const std::string path = spec.bootloader.empty()
                                 ? bootloader_path(spec.instance)
                                 : firmware_dir() + "/firmware/" + spec.bootloader;
    const auto bootloader = load_file(path);
    EXPECT_FALSE(bootloader.empty()) << path;
    board.flash().probe_write(memory_map::kBootloaderOffset, bootloader);
    write_provisioning(board, spec);
    board.connect_can(bus_, spec.instance);
    if (power_on) board.power_on();
    return board;
  }

  void write_provisioning(tw::Board& board, const NodeSpec& spec) {
    Provisioning p;
    p.node_id = spec.node_id;
    p.bitrate = bitrate_;
    p.boot_window_ms = spec.boot_window_ms;
    p.listen_window_ms = spec.listen_window_ms;
    std::vector<std::uint8_t> sector(memory_map::kSectorSize, 0xFF);
    EXPECT_TRUE(encode_provisioning(p, sector.data(), sector.size()));
    board.flash().probe_write(memory_map::kProvisioningOffset, sector);
  }

  // Lets virtual time pass while the master records the traffic.
  void listen_for(Micros duration) { master_.listen_until(now() + duration); }

  // Waits until `pred(frame)` holds for a frame logged at or after `since`.
  template <typename Pred>
  std::optional<LoggedFrame> wait_frame(Micros since, Micros timeout, Pred pred) {
    const Micros deadline = now() + timeout;
    std::size_t checked = 0;
    for (;;) {
      for (; checked < log_.size(); ++checked) {
        if (log_[checked].at >= since && pred(log_[checked].frame)) return log_[checked];
      }
      if (now() >= deadline) return std::nullopt;
      master_.listen_until(std::min(deadline, now() + 10'000));
    }
  }

  std::optional<LoggedFrame> wait_boot_up(std::uint8_t node, Micros since, Micros timeout) {
    return wait_frame(since, timeout, [node](const CanFrame& f) {
      return f.id == co::kHeartbeatBase + node && f.dlc == 1 && f.data[0] == 0x00;
    });
  }

  // The example application runs: after `since` the node sent a boot-up message followed by an
  // OPERATIONAL heartbeat (0x700 + node, one byte 0x05), and 0x5F00:1 reads "application".
  ::testing::AssertionResult application_runs(std::uint8_t node, Micros since,
                                              Micros timeout = 3'000'000) {
    const auto heartbeat = wait_frame(since, timeout, [node](const CanFrame& f) {
      return f.id == co::kHeartbeatBase + node && f.dlc == 1 &&
             f.data[0] == static_cast<std::uint8_t>(co::NmtState::kOperational);
    });
    if (!heartbeat) {
      return ::testing::AssertionFailure()
             << "no OPERATIONAL heartbeat of node " << int{node} << " within " << timeout << " us";
    }
    bool boot_up = false;
    for (const auto& f : log_) {
      if (f.at >= since && f.at <= heartbeat->at && f.frame.id == co::kHeartbeatBase + node &&
          f.frame.dlc == 1 && f.frame.data[0] == 0x00) {
        boot_up = true;
      }
    }
    if (!boot_up) {
      return ::testing::AssertionFailure()
             << "no boot-up of node " << int{node} << " before its OPERATIONAL heartbeat";
    }
    try {
      const auto running = master_.upload_u8(node, co::od::kRtcanbootInfo, 1);
      if (running != co::kRunningApplication) {
        return ::testing::AssertionFailure() << "0x5F00:1 = " << int{running} << ", expected 2";
      }
    } catch (const std::exception& e) {
      return ::testing::AssertionFailure() << "0x5F00:1: " << e.what();
    }
    return ::testing::AssertionSuccess();
  }

  // The CiA 302-2 update flow of the host tool (what `rtcanboot flash` runs).
  host::UpdateResult update(std::uint8_t node, const host::LoadedInput& input,
                            std::uint32_t image_version = 0, bool force = false,
                            const host::UpdateEvents& events = {}) {
    host::UpdateOptions opt;
    opt.node = node;
    opt.image_version = image_version;
    opt.force = force;
    return host::run_update(master_, input, opt, events);
  }

 private:
  std::uint32_t bitrate_;
  tw::Simulation sim_;
  tc::Bus& bus_;
  tc::Endpoint master_ep_;
  host::EndpointTransport<tc::Endpoint> transport_;
  host::Master master_;
  std::vector<LoggedFrame> log_;
  std::vector<std::string> bus_faults_;
};

inline host::LoadedInput example_app(unsigned instance = 2) {
  return host::load_input(example_app_path(instance), {});
}

// The example application padded with a pattern (multiplier `pattern`) to `sectors` 4 KiB
// sectors less 100 bytes: a larger image that still runs.
inline host::LoadedInput padded_example_app(std::uint32_t sectors, unsigned pattern = 29) {
  const host::LoadedInput elf = example_app();
  std::vector<std::uint8_t> bytes = elf.image->bytes;
  const std::size_t code_end = bytes.size();
  bytes.resize(sectors * image::kSectorSize - 100);
  for (std::size_t i = code_end; i < bytes.size(); ++i) {
    bytes[i] = static_cast<std::uint8_t>(i * pattern + (i >> 11));
  }
  host::LoadedInput input;
  input.format = host::InputFormat::kBinary;
  input.image = host::FlatImage{memory_map::kAppAddress, bytes};
  return input;
}

// Everything a board reported as a fault, one per line (empty when none).
inline std::string faults_of(const tw::Board& board) {
  std::ostringstream out;
  for (const auto& r : board.reports()) {
    if (r.severity == tw::Severity::kFault) {
      out << r.time << " " << r.source << ": " << r.message << " (pc 0x" << std::hex << r.pc
          << std::dec << ")\n";
    }
  }
  return out.str();
}

inline std::vector<std::uint8_t> bootloader_region(tw::Board& board) {
  const auto all = board.flash().contents();
  return {all.begin(), all.begin() + memory_map::kBootloaderSize};
}

}  // namespace rtcanboot::e2e
