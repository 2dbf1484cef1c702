#include "twin_rig.hpp"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <limits>

#include "rtcanboot/bytes.hpp"
#include "rtcanboot/can_timing.hpp"
#include "rtcanboot/canopen_defs.hpp"
#include "rtcanboot/hash.hpp"
#include "rtcanboot/memory_map.hpp"
#include "rtcanboot/provisioning.hpp"

#ifndef RTCANBOOT_FIRMWARE_DIR
#define RTCANBOOT_FIRMWARE_DIR "build/rt1064"
#endif

namespace rtcanboot::twinrig {

std::string default_firmware_dir() {
  const char* env = std::getenv("RTCANBOOT_FIRMWARE_DIR");
  return env != nullptr && *env != '\0' ? env : RTCANBOOT_FIRMWARE_DIR;
}

std::vector<std::uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  return std::vector<std::uint8_t>(std::istreambuf_iterator<char>(in), {});
}

std::optional<Firmware> load_firmware(const std::string& dir) {
  Firmware fw;
  fw.dir = dir;
  fw.bootloader = read_bytes(dir + "/firmware/bootloader/rtcanboot-bootloader.bin");
  fw.app = read_bytes(dir + "/firmware/example-app/example-app.bin");
  fw.bootloader_elf = dir + "/firmware/bootloader/rtcanboot-bootloader.elf";
  if (fw.bootloader.empty() || fw.app.empty()) return std::nullopt;
  return fw;
}

// ---------------------------------------------------------------------------------------------
// Transport

TwinTransport::TwinTransport(twin::Simulation& sim, twin::can::Endpoint& endpoint, Nanos latency)
    : sim_(sim), endpoint_(endpoint), latency_(latency), clock_(sim) {}

void TwinTransport::send(const CanFrame& frame) {
  if (!sent_any) {
    sent_any = true;
    first_send = sim_.now();
  }
  if (latency_ == 0) {
    endpoint_.send(frame);
    return;
  }
  // The host reacts `latency_` after it decided to send: the frame reaches its CAN controller
  // then. Frames queued at the same time keep their order (events at equal times run in order).
  twin::can::Endpoint* endpoint = &endpoint_;
  sim_.clock().schedule(sim_.now() + latency_, [endpoint, frame] { endpoint->send(frame); });
}

std::optional<host::RxEvent> TwinTransport::receive(Micros deadline) {
  auto take = [this]() -> std::optional<host::RxEvent> {
    auto rx = endpoint_.receive();
    if (!rx) return std::nullopt;
    host::RxEvent ev;
    ev.kind = host::RxEvent::Kind::kFrame;
    ev.frame = rx->frame;
    ev.timestamp = rx->eof / 1000;
    return ev;
  };
  if (interrupt && interrupt()) throw Interrupted{};
  if (auto ev = take()) return ev;
  const Nanos deadline_ns = deadline >= std::numeric_limits<Micros>::max() / 1000
                                ? std::numeric_limits<Nanos>::max() / 2
                                : deadline * 1000;
  sim_.run_until([this] { return endpoint_.rx_pending() != 0 || (interrupt && interrupt()); },
                 deadline_ns);
  if (interrupt && interrupt()) throw Interrupted{};
  return take();
}

// ---------------------------------------------------------------------------------------------
// Flash images

std::vector<std::uint8_t> factory_flash(std::span<const std::uint8_t> bootloader,
                                        const RigConfig& config) {
  std::vector<std::uint8_t> flash(memory_map::kFlashSize, 0xFF);
  std::copy(bootloader.begin(), bootloader.end(), flash.begin());
  Provisioning p;
  p.node_id = config.node_id;
  p.bitrate = config.bitrate;
  p.boot_window_ms = config.boot_window_ms;
  p.listen_window_ms = config.listen_window_ms;
  encode_provisioning(p, flash.data() + memory_map::kProvisioningOffset, memory_map::kSectorSize);
  return flash;
}

journal::Record commit_record(std::span<const std::uint8_t> payload, std::uint32_t sequence,
                              std::uint32_t image_version) {
  journal::Record r;
  r.type = journal::RecordType::kCommit;
  r.sequence = sequence;
  r.payload_length = static_cast<std::uint32_t>(payload.size());
  r.payload_crc32 = crc32(0, payload.data(), payload.size());
  r.image_version = image_version;
  SoftwareSha256 sha;
  sha.update(payload.data(), payload.size());
  sha.finish(r.payload_sha256);
  return r;
}

void put_record(std::vector<std::uint8_t>& flash, const journal::Record& record,
                std::uint32_t sector, std::uint32_t slot) {
  const std::uint32_t offset =
      memory_map::kJournalOffset + sector * memory_map::kSectorSize + slot * journal::kSlotSize;
  journal::encode_record(record, flash.data() + offset);
}

void install_application(std::vector<std::uint8_t>& flash, std::span<const std::uint8_t> payload,
                         std::uint32_t image_version) {
  std::copy(payload.begin(), payload.end(), flash.begin() + memory_map::kAppOffset);
  put_record(flash, commit_record(payload, 1, image_version), 0, 0);
}

// ---------------------------------------------------------------------------------------------
// Rig

Rig::Rig(const RigConfig& config, std::span<const std::uint8_t> flash_image) : config_(config) {
  sim_ = std::make_unique<twin::Simulation>();
  twin::BoardConfig bc;
  bc.name = config.name;
  bc.flash_timing = config.flash_timing;
  bc.seed = config.seed;
  bc.console_sink = [](const std::string&) {};
  bc.report_sink = [](const twin::Report&) {};
  board_ = &sim_->add_board(bc);
  board_->flash().probe_write(0, flash_image);
  bus_ = &sim_->add_bus(config.bitrate);
  master_ep_ = std::make_unique<twin::can::Endpoint>("master");
  bus_->attach(*master_ep_);
  twin::can::Endpoint::Options listen;
  listen.listen_only = true;
  monitor_ = std::make_unique<twin::can::Endpoint>("monitor", listen);
  monitor_->on_receive([this](const twin::can::TimedFrame& f) { on_monitor_frame(f); }, false);
  bus_->attach(*monitor_);
  board_->connect_can(*bus_, 2);
  transport_ = std::make_unique<TwinTransport>(*sim_, *master_ep_, config.host_latency);
  master_ = std::make_unique<host::Master>(*transport_);
}

Rig::~Rig() = default;

void Rig::on_monitor_frame(const twin::can::TimedFrame& f) {
  const CanFrame& frame = f.frame;
  ++observed_.frames;
  if (frame.extended() || frame.remote()) return;
  const std::uint32_t node = config_.node_id;
  if (frame.id == canopen::kSdoRxBase + node) {
    request_pending_ = true;
    request_end_ = f.eof;
  } else if (frame.id == canopen::kSdoTxBase + node) {
    if (request_pending_) {
      observed_.max_response_ns = std::max(observed_.max_response_ns, f.eof - request_end_);
      request_pending_ = false;
    }
    const std::uint8_t cmd = frame.data[0];
    const bool expedited_upload = (cmd & 0xE0) == 0x40 && (cmd & 0x02) != 0;
    if (expedited_upload && frame.dlc == 8 &&
        load_le16(frame.data + 1) == canopen::od::kFlashStatus && frame.data[3] == 1) {
      const unsigned unused = (cmd & 0x01) != 0 ? (cmd >> 2) & 0x3 : 0;
      std::uint32_t value = load_le32(frame.data + 4);
      if (unused > 0) value &= 0xFFFF'FFFFu >> (8 * unused);
      if (value == 0) observed_.last_status_ok = f.eof;
    }
  } else if (frame.id == canopen::kHeartbeatBase + node && frame.dlc >= 1) {
    if (frame.data[0] == 0) {
      observed_.last_boot_up = f.eof;
      ++observed_.boot_ups;
    } else {
      observed_.last_heartbeat = f.eof;
      observed_.last_heartbeat_state = frame.data[0];
    }
  }
}

Nanos Rig::wait_boot_up(Nanos since, Nanos deadline) {
  sim_->run_until([&] { return observed_.last_boot_up > since; }, deadline);
  return observed_.last_boot_up > since ? observed_.last_boot_up : 0;
}

void Rig::flush_host() {
  master_ep_->clear_tx();
  while (master_ep_->receive()) {
  }
}

std::string Rig::fault_summary() const {
  std::string text;
  for (const twin::Report& r : board_->reports()) {
    if (r.severity != twin::Severity::kFault) continue;
    if (!text.empty()) text += "; ";
    text += r.source + ": " + r.message;
  }
  return text;
}

// ---------------------------------------------------------------------------------------------
// Bus limit

namespace {

CanFrame sdo_frame(std::uint32_t id, std::initializer_list<std::uint8_t> bytes) {
  CanFrame f;
  f.id = id;
  f.dlc = 8;
  std::size_t i = 0;
  for (const std::uint8_t b : bytes) f.data[i++] = b;
  return f;
}

}  // namespace

double block_download_bus_limit_s(std::span<const std::uint8_t> data, std::uint8_t node,
                                  std::uint16_t index, std::uint8_t sub, std::uint32_t bitrate) {
  const std::uint32_t rx = canopen::kSdoRxBase + node;
  const std::uint32_t tx = canopen::kSdoTxBase + node;
  const auto lo = static_cast<std::uint8_t>(index & 0xFF);
  const auto hi = static_cast<std::uint8_t>(index >> 8);
  const auto size = static_cast<std::uint32_t>(data.size());
  std::uint64_t bits = 0;
  auto add = [&bits](const CanFrame& f) { bits += can_timing::frame_slot_bits(f); };
  // Initiate (client CRC supported, size indicated) and the server's answer with blksize 127.
  add(sdo_frame(
      rx, {0xC6, lo, hi, sub, static_cast<std::uint8_t>(size), static_cast<std::uint8_t>(size >> 8),
           static_cast<std::uint8_t>(size >> 16), static_cast<std::uint8_t>(size >> 24)}));
  add(sdo_frame(tx, {0xA4, lo, hi, sub, 127, 0, 0, 0}));
  const std::size_t segments = (data.size() + 6) / 7;
  for (std::size_t s = 0; s < segments; ++s) {
    CanFrame segment;
    segment.id = rx;
    segment.dlc = 8;
    const auto seq = static_cast<std::uint8_t>(s % 127 + 1);
    segment.data[0] = static_cast<std::uint8_t>(seq | (s + 1 == segments ? 0x80 : 0));
    for (std::size_t i = 0; i < 7 && s * 7 + i < data.size(); ++i)
      segment.data[1 + i] = data[s * 7 + i];
    add(segment);
    if (seq == 127 || s + 1 == segments) add(sdo_frame(tx, {0xA2, seq, 127, 0, 0, 0, 0, 0}));
  }
  const std::uint16_t crc = crc16_xmodem(0, data.data(), data.size());
  const auto unused = static_cast<std::uint8_t>((7 - data.size() % 7) % 7);
  add(sdo_frame(rx, {static_cast<std::uint8_t>(0xC1 | (unused << 2)),
                     static_cast<std::uint8_t>(crc), static_cast<std::uint8_t>(crc >> 8)}));
  add(sdo_frame(tx, {0xA1, 0, 0, 0, 0, 0, 0, 0}));
  return static_cast<double>(can_timing::bits_to_ns(bits, bitrate)) / 1e9;
}

}  // namespace rtcanboot::twinrig
