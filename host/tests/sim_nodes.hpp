// Test doubles for the host tests: the core's CanopenNode and Bootloader on a SimBus, an
// in-memory QSPI flash, a ProgramControl that stores what is downloaded.
#pragma once

#include <algorithm>
#include <cstring>
#include <limits>
#include <memory>
#include <optional>
#include <vector>

#include "rtcanboot/bootloader.hpp"
#include "rtcanboot/canopen_node.hpp"
#include "rtcanboot/host/sim_bus.hpp"
#include "rtcanboot/memory_map.hpp"

namespace rtcanboot::host::test {

// Loses the last segment of some sub-blocks of every block download to `node` (a frame the node
// missed): the transfer stalls, client and server wait for each other until a timeout, as CiA 301
// block transfer has no way to ask for a lost last segment again. `every`: one sub-block in
// `every` loses it (1: all of them), `losses` at most.
inline SimBus::FaultHook lose_last_segments(
    std::uint8_t node, unsigned every, unsigned losses = std::numeric_limits<unsigned>::max()) {
  struct Tracker {
    bool downloading = false;
    unsigned block_size = 0;
    unsigned in_sub_block = 0;
    unsigned sub_blocks = 0;
    unsigned lost = 0;
  };
  auto t = std::make_shared<Tracker>();
  return [t, node, every, losses](const CanFrame& f, bool from_master) {
    if (!from_master && f.id == canopen::kSdoTxBase + node) {
      if (f.data[0] == 0xA4) {  // block download initiated: the first sub-block's size
        t->downloading = true;
        t->block_size = f.data[4];
        t->in_sub_block = 0;
      } else if (t->downloading && f.data[0] == 0xA2) {  // acknowledge: the next size
        t->block_size = f.data[2];
        t->in_sub_block = 0;
      } else if (f.data[0] == 0xA1 || f.data[0] == 0x80) {
        t->downloading = false;
      }
      return SimBus::Fault::kDeliver;
    }
    if (from_master && f.id == canopen::kSdoRxBase + node && f.data[0] == 0x80)
      t->downloading = false;
    if (!from_master || f.id != canopen::kSdoRxBase + node || !t->downloading)
      return SimBus::Fault::kDeliver;
    if (++t->in_sub_block != t->block_size) return SimBus::Fault::kDeliver;
    if (++t->sub_blocks % every != 0 || t->lost >= losses) return SimBus::Fault::kDeliver;
    ++t->lost;
    return SimBus::Fault::kDrop;
  };
}

// Stores a DOMAIN download; optional bounded buffer that drains over time (flow control).
class StoringProgram final : public ProgramControl, public DownloadSink {
 public:
  canopen::Abort begin(bool size_known, std::uint32_t size) override {
    data.clear();
    buffered = 0;
    begun = true;
    announced = size_known ? size : 0;
    return begin_result;
  }
  std::uint32_t free_space() const override { return capacity - buffered; }
  canopen::Abort write(const std::uint8_t* bytes, std::uint32_t length) override {
    data.insert(data.end(), bytes, bytes + length);
    buffered += length;
    if (data.size() > fail_after) return canopen::Abort::kCannotStore;
    return canopen::Abort::kNone;
  }
  canopen::Abort end() override {
    ++ends;
    return canopen::Abort::kNone;
  }
  void cancel(canopen::Abort reason, CancelCause) override {
    ++cancels;
    cancel_reason = reason;
  }
  DownloadSink* program_data(std::uint8_t sub) override { return sub == 1 ? this : nullptr; }
  canopen::Abort control(std::uint8_t, std::uint8_t command) override {
    if (command > 3) return canopen::Abort::kValueRange;
    state = command == 3 ? 0 : command;
    return canopen::Abort::kNone;
  }
  std::uint8_t control_state(std::uint8_t) const override { return state; }
  std::uint32_t software_id(std::uint8_t) const override { return 0x1234'5678; }
  std::uint32_t flash_status(std::uint8_t) const override { return 0; }
  std::uint8_t program_count() const override { return 1; }

  std::vector<std::uint8_t> data;
  std::uint32_t capacity = 1U << 30;
  std::uint32_t buffered = 0;
  std::uint32_t drain_per_ms = 0;  // 0: drained at once
  std::size_t fail_after = std::numeric_limits<std::size_t>::max();
  canopen::Abort begin_result = canopen::Abort::kNone;
  std::uint32_t announced = 0;
  bool begun = false;
  int ends = 0;
  int cancels = 0;
  canopen::Abort cancel_reason = canopen::Abort::kNone;
  std::uint8_t state = 0;
};

// A CanopenNode on the SimBus.
class SimCanopenNode final : public SimNode {
 public:
  SimCanopenNode(SimBus& bus, NodeConfig config) : bus_(bus), config_(config) {
    FrameSink& sink = bus.attach(*this);
    node_ = std::make_unique<CanopenNode>(sink, program, config_);
    node_->start(bus.clock().now());
  }
  ~SimCanopenNode() override { bus_.detach(*this); }
  void on_frame(const CanFrame& frame, Micros now) override {
    drain(now);
    node_->on_frame(frame, now);
  }
  void poll(Micros now) override {
    drain(now);
    node_->poll(now);
  }
  Micros next_wakeup() const override {
    Micros t = node_->next_deadline();
    if (program.drain_per_ms != 0 && program.buffered != 0) t = std::min(t, last_drain_ + 1000);
    return t;
  }
  CanopenNode& node() { return *node_; }

  StoringProgram program;

 private:
  void drain(Micros now) {
    if (program.drain_per_ms == 0) {
      program.buffered = 0;
    } else if (now >= last_drain_ + 1000) {
      const auto ms = (now - last_drain_) / 1000;
      const auto amount = static_cast<std::uint64_t>(program.drain_per_ms) * ms;
      program.buffered =
          amount >= program.buffered ? 0 : program.buffered - static_cast<std::uint32_t>(amount);
      last_drain_ += ms * 1000;
    }
  }
  SimBus& bus_;
  NodeConfig config_;
  std::unique_ptr<CanopenNode> node_;
  Micros last_drain_ = 0;
};

// 4 MiB NOR flash in RAM with erase/program durations in virtual time.
class MemFlash final : public FlashPort {
 public:
  explicit MemFlash(const Clock& clock) : clock_(clock), mem(memory_map::kFlashSize, 0xFF) {}
  FlashResult start_erase(std::uint32_t offset, std::uint32_t length) override {
    if (busy_until_ > clock_.now()) return FlashResult::kBusy;
    if ((length != 4096 && length != 32768 && length != 65536) || offset % length ||
        offset + length > mem.size()) {
      return FlashResult::kInvalidArgument;
    }
    std::fill_n(mem.begin() + offset, length, 0xFF);
    busy_until_ = clock_.now() + (length == 4096    ? 45'000
                                  : length == 32768 ? 120'000
                                                    : 150'000) *
                                     erase_scale / 100;
    ++erases;
    return FlashResult::kOk;
  }
  FlashResult start_program(std::uint32_t offset, const std::uint8_t* page) override {
    if (busy_until_ > clock_.now()) return FlashResult::kBusy;
    if (offset % 256 || offset + 256 > mem.size()) return FlashResult::kInvalidArgument;
    for (int i = 0; i < 256; ++i) mem[offset + static_cast<std::uint32_t>(i)] &= page[i];
    busy_until_ = clock_.now() + 400;
    return FlashResult::kOk;
  }
  bool busy() override { return busy_until_ > clock_.now(); }
  FlashResult last_result() const override { return FlashResult::kOk; }
  FlashResult read(std::uint32_t offset, void* destination, std::uint32_t length) override {
    if (offset + length > mem.size()) return FlashResult::kInvalidArgument;
    std::memcpy(destination, mem.data() + offset, length);
    return FlashResult::kOk;
  }
  Micros busy_until() const { return busy_until_; }

  const Clock& clock_;
  std::vector<std::uint8_t> mem;
  int erases = 0;
  std::uint32_t erase_scale = 100;  // percent of typical erase times
 private:
  Micros busy_until_ = 0;
};

// A board: the real core Bootloader, and after it hands over, a stand-in application (a
// CanopenNode in application mode) until NMT reset / 0x1F51 stop brings the bootloader back.
// The stand-in cannot confirm through the flash, so the board runs with trial boot off and its
// application says so in 0x5F00:7 (trial boot itself: tests/core and tests/e2e/trial_boot_test).
class SimBoard final : public SimNode {
 public:
  MemFlash flash;

  SimBoard(SimBus& bus, BootloaderSettings settings)
      : flash(bus.clock()), bus_(bus), settings_(settings), buffer_(32 * 1024) {
    settings_.provisioning.boot_attempts = kTrialBootOff;
    sink_ = &bus.attach(*this);
    boot(bus.clock().now());
  }
  ~SimBoard() override { bus_.detach(*this); }

  void on_frame(const CanFrame& frame, Micros now) override {
    if (app_) {
      app_->on_frame(frame, now);
      after_app(now);
      return;
    }
    if (bootloader_) {
      bootloader_->on_frame(frame, now);
      after_boot(now);
    }
  }
  void poll(Micros now) override {
    if (app_) {
      app_->poll(now);
      after_app(now);
      return;
    }
    if (bootloader_) {
      bootloader_->poll(now);
      after_boot(now);
    }
  }
  Micros next_wakeup() const override {
    if (app_) return app_->next_deadline();
    Micros t = bootloader_ ? bootloader_->next_deadline() : std::numeric_limits<Micros>::max();
    if (flash.busy_until() > bus_.clock().now()) t = std::min(t, flash.busy_until());
    return t;
  }

  void boot(Micros now) {
    app_.reset();
    // Like the port: a stored provisioning record (LSS store, 0x5F05) is what the node starts
    // with; without one, the settings the board was made with.
    bool stored = false;
    const Provisioning record = load_provisioning(flash, &stored);
    if (stored) {
      settings_.provisioning = record;
      settings_.provisioning.boot_attempts = kTrialBootOff;
    }
    bootloader_ = std::make_unique<Bootloader>(*sink_, flash, sha_, buffer_, settings_);
    bootloader_->start(now);
    after_boot(now);
  }

  Bootloader* bootloader() { return bootloader_.get(); }
  bool app_running() const { return app_ != nullptr; }
  int app_starts = 0;
  bool app_heartbeat = true;

 private:
  // The application stand-in: answers 0x1F51 (stop = back to the bootloader).
  class AppControl final : public ProgramControl {
   public:
    DownloadSink* program_data(std::uint8_t) override { return nullptr; }
    canopen::Abort control(std::uint8_t, std::uint8_t command) override {
      if (command == 0) {
        stop_requested = true;
        return canopen::Abort::kNone;
      }
      return command == 1 ? canopen::Abort::kNone : canopen::Abort::kDeviceState;
    }
    std::uint8_t control_state(std::uint8_t) const override { return 1; }
    std::uint32_t software_id(std::uint8_t) const override { return id; }
    std::uint32_t flash_status(std::uint8_t) const override { return 0; }
    std::uint8_t program_count() const override { return 1; }
    bool stop_requested = false;
    std::uint32_t id = 0;
  };

  void after_boot(Micros now) {
    if (bootloader_->pending_action() == PendingAction::kStartApplication) {
      app_control_.stop_requested = false;
      app_control_.id = bootloader_->installed().payload_crc32;
      app_info_.running_program = canopen::kRunningApplication;
      app_info_.trial_state = canopen::TrialState::kOff;
      app_config_ = NodeConfig{};
      app_config_.node_id = settings_.provisioning.node_id;
      app_config_.identity = settings_.identity;
      app_config_.is_application = true;
      app_config_.heartbeat_ms = app_heartbeat ? 100 : 0;
      app_config_.info = &app_info_;
      bootloader_.reset();
      app_ = std::make_unique<CanopenNode>(*sink_, app_control_, app_config_);
      app_->start(now);
      ++app_starts;
    } else if (bootloader_->pending_action() == PendingAction::kReset) {
      boot(now);
    }
  }
  void after_app(Micros now) {
    if (app_control_.stop_requested || app_->reset_node_requested()) {
      settings_.entry_requested = app_control_.stop_requested;
      boot(now);
      settings_.entry_requested = false;
    }
  }

  SimBus& bus_;
  BootloaderSettings settings_;
  FrameSink* sink_ = nullptr;
  SoftwareSha256 sha_;
  std::vector<std::uint8_t> buffer_;
  std::unique_ptr<Bootloader> bootloader_;
  std::unique_ptr<CanopenNode> app_;
  AppControl app_control_;
  RtcanbootInfo app_info_;
  NodeConfig app_config_;
};

}  // namespace rtcanboot::host::test
