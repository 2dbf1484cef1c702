// A board with the real bootloader on a twin CAN bus, driven by the host library's master in
// pure virtual time. Shared by the power-cut sweep (tests/powercut) and the update benchmark
// (bench/update_bench.cpp).
//
//   Rig rig(config, flash_image);      // flash image: 4 MiB, bootloader + records (+ application)
//   rig.board().power_on();
//   host::run_update(rig.master(), input, options);
//
// The master reaches the bus through TwinTransport: "waiting" runs the simulation, and a host
// reaction latency can be modelled (every frame the host queues reaches the bus that much later).
// A listen-only monitor on the bus records SDO response delays and the 0x1F57 "OK" answers.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "rtcanboot/host/master.hpp"
#include "rtcanboot/host/transport.hpp"
#include "rtcanboot/install_journal.hpp"
#include "rtcanboot/provisioning.hpp"
#include "twin/board.hpp"
#include "twin/can/bus.hpp"

namespace rtcanboot::twinrig {

using twin::Nanos;

// The cross-built firmware this rig runs.
struct Firmware {
  std::string dir;
  std::vector<std::uint8_t> bootloader;  // rtcanboot-bootloader.bin (stored at 0x7000_0000)
  std::vector<std::uint8_t> app;         // example-app.bin (stored at 0x7002_0000)
  std::string bootloader_elf;            // path
};

// RTCANBOOT_FIRMWARE_DIR from the environment, else the build's default (compile definition).
std::string default_firmware_dir();
// Empty optional when the images are not there (the firmware build has not run).
std::optional<Firmware> load_firmware(const std::string& dir);
std::vector<std::uint8_t> read_bytes(const std::string& path);

// Thrown out of the host flow when the transport's interrupt condition holds (a power cut).
struct Interrupted {};

// Host side of the in-process bus.
class TwinTransport final : public host::Transport {
 public:
  TwinTransport(twin::Simulation& sim, twin::can::Endpoint& endpoint, Nanos latency);

  host::Clock& clock() override { return clock_; }
  void send(const CanFrame& frame) override;
  std::optional<host::RxEvent> receive(Micros deadline) override;
  std::string describe() const override { return "in-process twin bus"; }

  // Checked while the simulation runs; when it returns true, receive() throws Interrupted.
  std::function<bool()> interrupt;
  // Virtual time at which the host queued its first frame (0 = none yet); reset by the owner.
  Nanos first_send = 0;
  bool sent_any = false;

 private:
  class SimClock final : public host::Clock {
   public:
    explicit SimClock(twin::Simulation& sim) : sim_(sim) {}
    Micros now() const override { return sim_.now() / 1000; }

   private:
    twin::Simulation& sim_;
  };
  twin::Simulation& sim_;
  twin::can::Endpoint& endpoint_;
  Nanos latency_;
  SimClock clock_;
};

// What the listen-only monitor saw on the bus (SDO traffic of one node).
struct BusObservations {
  std::uint64_t frames = 0;
  Nanos max_response_ns = 0;  // end of a client request frame -> end of the server's answer
  Nanos last_status_ok = 0;   // end of the latest 0x1F57:1 upload answer reading 0 (OK)
  Nanos last_boot_up = 0;     // end of the latest boot-up frame (0x700 + node, 0x00)
  Nanos last_heartbeat = 0;   // end of the latest heartbeat other than boot-up
  std::uint8_t last_heartbeat_state = 0;
  std::uint64_t boot_ups = 0;
};

struct RigConfig {
  std::uint32_t bitrate = 1'000'000;
  std::uint8_t node_id = 5;
  twin::FlashTiming flash_timing = twin::FlashTiming::kTypical;
  std::uint64_t seed = 1;
  Nanos host_latency = 0;
  std::uint32_t boot_window_ms = 0;
  std::uint16_t listen_window_ms = kDefaultListenWindowMs;  // 0: off
  std::string name = "node5";
};

// A 4 MiB flash image: erased, the bootloader at 0 and the provisioning record (node-ID, bit
// rate, boot window of `config`), as a debug probe and a factory step leave it.
std::vector<std::uint8_t> factory_flash(std::span<const std::uint8_t> bootloader,
                                        const RigConfig& config);

// The journal record the bootloader writes after installing `payload` (COMMIT).
journal::Record commit_record(std::span<const std::uint8_t> payload, std::uint32_t sequence,
                              std::uint32_t image_version);
// Writes a record into its page (sector 0 or 1 of the journal, slot 0..15).
void put_record(std::vector<std::uint8_t>& flash, const journal::Record& record,
                std::uint32_t sector, std::uint32_t slot);
// Stores an application payload at 0x7002_0000 with a COMMIT record in journal sector 0, slot 0:
// the state the bootloader leaves after installing it on an empty board.
void install_application(std::vector<std::uint8_t>& flash, std::span<const std::uint8_t> payload,
                         std::uint32_t image_version);

class Rig {
 public:
  Rig(const RigConfig& config, std::span<const std::uint8_t> flash_image);
  ~Rig();
  Rig(const Rig&) = delete;
  Rig& operator=(const Rig&) = delete;

  twin::Simulation& sim() { return *sim_; }
  twin::can::Bus& bus() { return *bus_; }
  twin::Board& board() { return *board_; }
  twin::can::Endpoint& endpoint() { return *master_ep_; }
  TwinTransport& transport() { return *transport_; }
  host::Master& master() { return *master_; }
  const RigConfig& config() const { return config_; }

  BusObservations& observed() { return observed_; }
  void reset_observations() {
    observed_ = BusObservations{};
    request_pending_ = false;
  }

  // Runs until `done()` or `deadline` (absolute virtual time); returns done().
  bool run_until(const std::function<bool()>& done, Nanos deadline) {
    return sim_->run_until(done, deadline);
  }
  // Waits for a boot-up frame of the node after `since`; returns its time (0 = none).
  Nanos wait_boot_up(Nanos since, Nanos deadline);
  // Drops whatever the master had queued or received (after a power cut).
  void flush_host();

  // Console text and reports collected since the rig was built.
  std::string fault_summary() const;

 private:
  void on_monitor_frame(const twin::can::TimedFrame& f);

  RigConfig config_;
  std::unique_ptr<twin::Simulation> sim_;
  twin::can::Bus* bus_ = nullptr;
  twin::Board* board_ = nullptr;
  std::unique_ptr<twin::can::Endpoint> master_ep_;
  std::unique_ptr<twin::can::Endpoint> monitor_;
  std::unique_ptr<TwinTransport> transport_;
  std::unique_ptr<host::Master> master_;
  BusObservations observed_;
  bool request_pending_ = false;
  Nanos request_end_ = 0;
};

// Bus time of the minimal frame sequence of an SDO block download of `data` into
// `index`:`sub` of `node` at `bitrate`: initiate + response, 127-segment sub-blocks each with
// its acknowledge, end + response; every frame with its stuff bits and intermission, no gaps.
double block_download_bus_limit_s(std::span<const std::uint8_t> data, std::uint8_t node,
                                  std::uint16_t index, std::uint8_t sub, std::uint32_t bitrate);

}  // namespace rtcanboot::twinrig
