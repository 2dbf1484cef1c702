// The CiA 302-2 program download flow (what `rtcanboot flash` runs) and node information.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>

#include "rtcanboot/host/image.hpp"
#include "rtcanboot/host/master.hpp"

namespace rtcanboot::host {

// "data format error: payload CRC-32 mismatch" for a 0x1F57 value.
std::string describe_flash_status(std::uint32_t value);
const char* describe_boot_reason(std::uint8_t reason);
const char* describe_program_state(std::uint8_t state);
const char* describe_trial_state(std::uint8_t state);  // 0x5F00:7

struct NodeInfo {
  std::uint8_t node = 0;
  std::optional<std::uint32_t> device_type, vendor_id, product_code, revision, serial;
  std::optional<std::string> device_name, software_version;
  std::optional<std::uint16_t> heartbeat_ms;
  // 0x5F00 (absent on nodes that are not rtcanboot)
  std::optional<std::uint8_t> running_program;
  std::optional<std::uint32_t> bootloader_version, app_start, app_size;
  std::optional<std::uint8_t> boot_reason;
  std::optional<std::uint32_t> image_version;
  std::optional<std::uint8_t> trial_state;    // 0x5F00:7 (canopen::TrialState)
  std::optional<std::uint8_t> boot_attempts;  // 0x5F00:8
  // 0x5F00:9: highest security counter committed (absent on older rtcanboot versions)
  std::optional<std::uint32_t> security_counter;
  std::optional<std::uint8_t> key_state;  // 0x5F03:1 (bootloader only; canopen::KeyState)
  // CiA 302-3
  std::optional<std::uint8_t> program_state;  // 0x1F51:1
  std::optional<std::uint32_t> software_id;   // 0x1F56:1
  std::optional<std::uint32_t> flash_status;  // 0x1F57:1
};

// Reads everything `info` shows. Throws Error(kNoNode) when the node does not answer 0x1000.
NodeInfo read_node_info(Master& master, std::uint8_t node);

struct UpdateOptions {
  std::uint8_t node = 0;
  std::uint8_t program = 1;    // sub-index of 0x1F50/0x1F51/0x1F56/0x1F57
  bool start = true;           // false: --no-start
  bool force = false;          // download even when 0x1F56 already matches
  bool force_product = false;  // download an image built for another vendor/product
  // false: when the node publishes sector digests (0x5F02), send only the sectors that differ
  // (a sparse container, no clear); true (--full): always the whole image after a clear.
  bool full = false;
  // true: compress the container (docs/image-format.md) when the node lists the compressed flag
  // in 0x5F02:7 and it comes out shorter; false (--no-compress): never.
  bool compress = true;
  std::optional<std::uint32_t> vendor_id;  // container fields when packing (default: node's 0x1018)
  std::optional<std::uint32_t> product_code;
  std::uint32_t image_version = 0;
  bool allow_block = true;  // false: segmented only
  // The 0x1F51 clear before the download. kAuto: only for nodes that are not an rtcanboot
  // bootloader (0x5F00:1 = 1). rtcanboot accepts a download without it and revokes the installed
  // image only once the container's header, signature included, passed, so a refused container
  // leaves the installed image valid; other CiA 302-3 nodes may need the clear.
  enum class Clear : std::uint8_t { kAuto, kAlways, kNever };
  Clear clear = Clear::kAuto;
  int download_attempts = 2;           // clear + download again when the node restarts part-way
  Micros reboot_window = 5'000'000;    // how long resets between steps may take
  Micros flash_timeout = 120'000'000;  // 0x1F57 busy at most this long
  // 0x1F57 polling: the first read at once, then after 2 ms, doubling up to poll_interval (a
  // small image is done within milliseconds; a long erase is not polled needlessly often).
  Micros poll_interval = 100'000;
  Micros boot_timeout = 10'000'000;  // application boot-up/heartbeat after start
  // After the start: how long to wait for the application's confirmation (trial boot); 0 = do
  // not wait. Covers every boot attempt (3 x the 4 s trial watchdog by default).
  Micros confirm_timeout = 30'000'000;
};

struct UpdateEvents {
  std::function<void(const std::string&)> step;  // human-readable progress of the sequence
  ProgressFn progress;                           // bytes of the download
};

struct UpdateResult {
  bool skipped = false;  // 0x1F56 already matched (without --force)
  bool used_block = false;
  bool sparse = false;              // the last download was a sparse container
  bool compressed = false;          // the last download was a compressed container
  std::uint32_t sectors_sent = 0;   // sparse: 4 KiB sectors it carried
  std::uint32_t sectors_total = 0;  // sectors of the image
  std::uint32_t software_id = 0;
  std::uint64_t bytes = 0;
  Micros download_time = 0;
  bool started = false;
  std::optional<canopen::NmtState> app_state;  // from the application's boot-up/heartbeat
  bool confirmed = false;  // the application confirmed it runs (or runs without trial boot)
};

// Runs the sequence. Throws Error with the kind of the failure (kNoNode, kRejected with the
// decoded 0x1F57 reason, kTimeout, kBus, kWrongProduct, kAborted).
UpdateResult run_update(Master& master, const LoadedInput& input, const UpdateOptions& options,
                        const UpdateEvents& events = {});

// Pure helper: the container bytes for an input and the node's identity (packs images,
// checks containers). Throws Error(kWrongProduct) on a mismatch unless force_product.
std::vector<std::uint8_t> container_for_node(const LoadedInput& input, const UpdateOptions& options,
                                             std::uint32_t node_vendor, std::uint32_t node_product);

// The header of a container container_for_node() returned (already checked when it was packed or
// loaded), whatever its load address, size and identity.
image::Header container_header(std::span<const std::uint8_t> container);

}  // namespace rtcanboot::host
