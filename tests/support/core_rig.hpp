// A bench for the whole core: one Bootloader on a NorFlashFake, a CAN bus with bit-accurate frame
// times (can_timing) and virtual time, and a minimal SDO client (expedited, segmented and block
// download; expedited upload) playing the CANopen master. Used by the core tests, the
// interruption test and the throughput benchmark. The flash outlives the Bootloader, so a test
// can cut the power and boot again on the same flash.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "nor_flash_fake.hpp"
#include "rtcanboot/bootloader.hpp"
#include "rtcanboot/canopen_defs.hpp"
#include "rtcanboot/hash.hpp"
#include "rtcanboot/types.hpp"

namespace rtcanboot::test {

BootloaderSettings test_settings(std::uint8_t node_id = 5);

class CoreRig {
 public:
  CoreRig(NorFlashFake& flash, BootloaderSettings settings, std::uint32_t ring_bytes = 32 * 1024,
          std::uint32_t bitrate = 1'000'000);

  // Constructs a fresh Bootloader (as after a reset) and starts it at now().
  void boot();
  Bootloader& bootloader() { return *bootloader_; }
  bool bootloader_ready() const { return bootloader_ != nullptr; }
  NorFlashFake& flash() { return flash_; }
  Micros now() const { return now_; }
  BootloaderSettings& settings() { return settings_; }
  std::uint8_t node_id() const { return settings_.provisioning.node_id; }

  // The master puts a frame on the bus: it occupies the bus for its bit-accurate time and
  // reaches the node at its end.
  void send(const CanFrame& frame);
  // Polls the node at every deadline up to `until` (stops early when the power is lost).
  void run_until(Micros until);
  void run_for(Micros duration) { run_until(now_ + duration); }
  // The next frame with `id` sent by the node, waiting up to `timeout`; other frames are skipped.
  std::optional<CanFrame> receive(std::uint32_t id, Micros timeout);
  // Frames the node sent so far (all of them, with their arrival times).
  struct Arrived {
    CanFrame frame;
    Micros at;
  };
  const std::vector<Arrived>& history() const { return history_; }
  // Sees every frame on the bus, the master's and the node's, as it ends (another node
  // listening: the listen-along tests).
  std::function<void(const CanFrame&)> tap;

  // SDO client.
  struct SdoResult {
    canopen::Abort abort = canopen::Abort::kNone;
    bool timed_out = false;
    std::uint32_t value = 0;
    bool ok() const { return abort == canopen::Abort::kNone && !timed_out; }
  };
  SdoResult sdo_read(std::uint16_t index, std::uint8_t sub);
  // Expedited or segmented upload into `out`.
  SdoResult sdo_upload(std::uint16_t index, std::uint8_t sub, std::vector<std::uint8_t>& out);
  SdoResult sdo_write(std::uint16_t index, std::uint8_t sub, std::uint32_t value,
                      std::uint8_t size = 4);
  SdoResult sdo_download_segmented(std::uint16_t index, std::uint8_t sub,
                                   const std::vector<std::uint8_t>& data,
                                   bool size_indicated = true);
  // Block download with CRC. `announced_size` overrides the size in the initiate request.
  SdoResult sdo_download_block(std::uint16_t index, std::uint8_t sub,
                               const std::vector<std::uint8_t>& data,
                               std::optional<std::uint32_t> announced_size = std::nullopt);
  // Sends an abort for `index`/`sub` (the master gives up a transfer).
  void sdo_abort(std::uint16_t index, std::uint8_t sub, canopen::Abort code);
  // Polls 0x1F57:1 until bit 0 is clear; returns the status word (or nullopt on timeout).
  std::optional<std::uint32_t> wait_flash_idle(Micros timeout = 120'000'000);

  // Longest time from a request (or last segment of a sub-block) to the node's response.
  Micros max_response_delay() const { return max_response_delay_; }
  Micros sdo_timeout = 1'000'000;
  // Stop the SDO client part-way through a block download after this many data bytes (tests of
  // interrupted transfers); 0 = never.
  std::uint32_t stop_after_bytes = 0;
  // Block download: queue each sub-block whole before looking at the node's answers, as a client
  // does that hands a sub-block to its driver at once (an abort then meets segments under way).
  bool queue_whole_sub_blocks = false;
  // Block download: send a CRC in the end frame that does not match the data.
  bool wrong_block_crc = false;

 private:
  class Sink final : public FrameSink {
   public:
    explicit Sink(CoreRig& rig) : rig_(rig) {}
    bool send(const CanFrame& frame) override;

   private:
    CoreRig& rig_;
  };
  std::optional<CanFrame> response(Micros asked_at);
  // Drops whatever the node sent before a new request (late answers to an aborted transfer).
  void flush();
  Micros frame_time(const CanFrame& frame) const;

  NorFlashFake& flash_;
  BootloaderSettings settings_;
  std::vector<std::uint8_t> ring_;
  std::uint32_t bitrate_;
  SoftwareSha256 sha_;
  Sink sink_;
  std::unique_ptr<Bootloader> bootloader_;

  Micros now_ = 0;
  Micros bus_free_ = 0;
  std::deque<Arrived> inbox_;
  std::vector<Arrived> history_;
  Micros max_response_delay_ = 0;
};

}  // namespace rtcanboot::test
