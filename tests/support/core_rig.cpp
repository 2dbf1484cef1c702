#include "core_rig.hpp"

#include <algorithm>

#include "image_builder.hpp"
#include "rtcanboot/bytes.hpp"
#include "rtcanboot/can_timing.hpp"

namespace rtcanboot::test {

using canopen::Abort;

BootloaderSettings test_settings(std::uint8_t node_id) {
  BootloaderSettings settings;
  settings.identity.vendor_id = kTestVendor;
  settings.identity.product_code = kTestProduct;
  settings.identity.revision = 0x0001'0000;
  settings.identity.serial = 42;
  settings.bootloader_version = 0x0001'0000;
  settings.heartbeat_ms = 0;
  settings.provisioning.node_id = node_id;
  settings.provisioning.bitrate = 1'000'000;
  return settings;
}

CoreRig::CoreRig(NorFlashFake& flash, BootloaderSettings settings, std::uint32_t ring_bytes,
                 std::uint32_t bitrate)
    : flash_(flash), settings_(settings), ring_(ring_bytes), bitrate_(bitrate), sink_(*this) {}

void CoreRig::boot() {
  inbox_.clear();
  bootloader_.reset();
  bootloader_ = std::make_unique<Bootloader>(sink_, flash_, sha_, ring_, settings_);
  flash_.set_now(now_);
  bootloader_->start(now_);
}

Micros CoreRig::frame_time(const CanFrame& frame) const {
  // Rounded up to whole microseconds so time always moves forward.
  const std::uint64_t bits = can_timing::frame_slot_bits(frame);
  return (bits * 1'000'000ULL + bitrate_ - 1) / bitrate_;
}

bool CoreRig::Sink::send(const CanFrame& frame) {
  const Micros start = std::max(rig_.now_, rig_.bus_free_);
  rig_.bus_free_ = start + rig_.frame_time(frame);
  rig_.inbox_.push_back({frame, rig_.bus_free_});
  rig_.history_.push_back({frame, rig_.bus_free_});
  if (rig_.tap) rig_.tap(frame);
  return true;
}

void CoreRig::run_until(Micros until) {
  while (!flash_.power_lost()) {
    Micros deadline = bootloader_->next_deadline();
    if (deadline > until) break;
    if (deadline <= now_) deadline = now_ + 1;
    if (deadline > until) break;
    now_ = deadline;
    flash_.set_now(now_);
    bootloader_->poll(now_);
  }
  if (until > now_) now_ = until;
  flash_.set_now(now_);
  if (!flash_.power_lost()) bootloader_->poll(now_);
}

void CoreRig::send(const CanFrame& frame) {
  const Micros start = std::max(now_, bus_free_);
  const Micros end = start + frame_time(frame);
  bus_free_ = end;
  run_until(end);
  if (flash_.power_lost()) return;
  if (tap) tap(frame);
  bootloader_->on_frame(frame, now_);
}

std::optional<CanFrame> CoreRig::receive(std::uint32_t id, Micros timeout) {
  const Micros limit = now_ + timeout;
  while (!flash_.power_lost()) {
    while (!inbox_.empty()) {
      const Arrived next = inbox_.front();
      if (next.at > now_) {
        if (next.at > limit) break;
        run_until(next.at);
      }
      inbox_.pop_front();
      if (next.frame.id == id) return next.frame;
    }
    if (!inbox_.empty() && inbox_.front().at > limit) return std::nullopt;
    if (now_ >= limit) return std::nullopt;
    const Micros deadline = bootloader_->next_deadline();
    run_until(std::min(std::max(deadline, now_ + 1), limit));
  }
  return std::nullopt;
}

void CoreRig::flush() {
  while (!inbox_.empty() && !flash_.power_lost()) {
    if (inbox_.front().at > now_) run_until(inbox_.front().at);
    inbox_.pop_front();
  }
}

std::optional<CanFrame> CoreRig::response(Micros asked_at) {
  auto frame = receive(canopen::kSdoTxBase + node_id(), sdo_timeout);
  if (frame) max_response_delay_ = std::max(max_response_delay_, now_ - asked_at);
  return frame;
}

namespace {

CanFrame sdo_frame(std::uint8_t node_id, std::uint8_t command, std::uint16_t index,
                   std::uint8_t sub, std::uint32_t value) {
  CanFrame frame;
  frame.id = canopen::kSdoRxBase + node_id;
  frame.dlc = 8;
  frame.data[0] = command;
  store_le16(frame.data + 1, index);
  frame.data[3] = sub;
  store_le32(frame.data + 4, value);
  return frame;
}

bool is_abort(const CanFrame& frame) {
  return frame.data[0] == 0x80;
}

CoreRig::SdoResult aborted(const CanFrame& frame) {
  CoreRig::SdoResult result;
  result.abort = static_cast<Abort>(load_le32(frame.data + 4));
  return result;
}

CoreRig::SdoResult timed_out() {
  CoreRig::SdoResult result;
  result.timed_out = true;
  return result;
}

CoreRig::SdoResult unexpected() {
  CoreRig::SdoResult result;
  result.abort = Abort::kCommandSpecifier;
  return result;
}

}  // namespace

CoreRig::SdoResult CoreRig::sdo_read(std::uint16_t index, std::uint8_t sub) {
  flush();
  send(sdo_frame(node_id(), 0x40, index, sub, 0));
  const auto reply = response(now_);
  if (!reply) return timed_out();
  if (is_abort(*reply)) return aborted(*reply);
  if ((reply->data[0] & 0xE2) != 0x42) return unexpected();  // expedited upload only
  SdoResult result;
  result.value = load_le32(reply->data + 4);
  return result;
}

CoreRig::SdoResult CoreRig::sdo_upload(std::uint16_t index, std::uint8_t sub,
                                       std::vector<std::uint8_t>& out) {
  out.clear();
  flush();
  send(sdo_frame(node_id(), 0x40, index, sub, 0));
  auto reply = response(now_);
  if (!reply) return timed_out();
  if (is_abort(*reply)) return aborted(*reply);
  if ((reply->data[0] & 0xE3) == 0x43) {  // expedited, size indicated
    const std::uint32_t size = 4 - ((reply->data[0] >> 2) & 3U);
    out.assign(reply->data + 4, reply->data + 4 + size);
    return {};
  }
  if (reply->data[0] != 0x41) return unexpected();
  const std::uint32_t size = load_le32(reply->data + 4);
  for (std::uint8_t toggle = 0;; toggle ^= 1) {
    CanFrame request;
    request.id = canopen::kSdoRxBase + node_id();
    request.dlc = 8;
    request.data[0] = static_cast<std::uint8_t>(0x60 | (toggle << 4));
    send(request);
    reply = response(now_);
    if (!reply) return timed_out();
    if (is_abort(*reply)) return aborted(*reply);
    if ((reply->data[0] & 0xE0) != 0 || ((reply->data[0] >> 4) & 1U) != toggle) {
      return unexpected();
    }
    const std::uint32_t length = 7 - ((reply->data[0] >> 1) & 7U);
    out.insert(out.end(), reply->data + 1, reply->data + 1 + length);
    if ((reply->data[0] & 1U) != 0) break;
  }
  if (out.size() != size) return unexpected();
  return {};
}

CoreRig::SdoResult CoreRig::sdo_write(std::uint16_t index, std::uint8_t sub, std::uint32_t value,
                                      std::uint8_t size) {
  flush();
  const auto command = static_cast<std::uint8_t>(0x23 | ((4 - size) << 2));
  send(sdo_frame(node_id(), command, index, sub, value));
  const auto reply = response(now_);
  if (!reply) return timed_out();
  if (is_abort(*reply)) return aborted(*reply);
  if (reply->data[0] != 0x60) return unexpected();
  return {};
}

void CoreRig::sdo_abort(std::uint16_t index, std::uint8_t sub, Abort code) {
  send(sdo_frame(node_id(), 0x80, index, sub, static_cast<std::uint32_t>(code)));
}

CoreRig::SdoResult CoreRig::sdo_download_segmented(std::uint16_t index, std::uint8_t sub,
                                                   const std::vector<std::uint8_t>& data,
                                                   bool size_indicated) {
  flush();
  send(sdo_frame(node_id(), size_indicated ? 0x21 : 0x20, index, sub,
                 size_indicated ? static_cast<std::uint32_t>(data.size()) : 0));
  auto reply = response(now_);
  if (!reply) return timed_out();
  if (is_abort(*reply)) return aborted(*reply);
  if (reply->data[0] != 0x60) return unexpected();
  std::uint8_t toggle = 0;
  for (std::size_t offset = 0; offset < data.size() || data.empty(); offset += 7) {
    const std::size_t left = data.size() - offset;
    const std::size_t take = std::min<std::size_t>(7, left);
    const bool last = left <= 7;
    CanFrame segment;
    segment.id = canopen::kSdoRxBase + node_id();
    segment.dlc = 8;
    segment.data[0] = static_cast<std::uint8_t>((toggle << 4) | ((7 - take) << 1) | (last ? 1 : 0));
    std::copy_n(data.begin() + static_cast<std::ptrdiff_t>(offset), take, segment.data + 1);
    send(segment);
    reply = response(now_);
    if (!reply) return timed_out();
    if (is_abort(*reply)) return aborted(*reply);
    if (reply->data[0] != (0x20 | (toggle << 4))) return unexpected();
    toggle ^= 1;
    if (last) break;
  }
  return {};
}

CoreRig::SdoResult CoreRig::sdo_download_block(std::uint16_t index, std::uint8_t sub,
                                               const std::vector<std::uint8_t>& data,
                                               std::optional<std::uint32_t> announced_size) {
  flush();
  const auto size = announced_size.value_or(static_cast<std::uint32_t>(data.size()));
  send(sdo_frame(node_id(), 0xC6, index, sub, size));  // CRC supported, size indicated
  auto reply = response(now_);
  if (!reply) return timed_out();
  if (is_abort(*reply)) return aborted(*reply);
  if ((reply->data[0] & 0xE3) != 0xA0) return unexpected();
  const bool crc_used = (reply->data[0] & 0x04) != 0;
  std::uint8_t block_size = reply->data[4];
  std::size_t acknowledged = 0;  // bytes confirmed by the server
  const std::size_t total_segments = (data.size() + 6) / 7;
  std::size_t next_segment = 0;  // index of the first segment of the current sub-block
  while (next_segment < total_segments || total_segments == 0) {
    if (block_size == 0 || block_size > 127) return unexpected();
    std::uint8_t sent = 0;
    for (std::uint8_t seq = 1; seq <= block_size; ++seq) {
      const std::size_t segment = next_segment + seq - 1;
      if (segment >= total_segments && total_segments != 0) break;
      const std::size_t offset = segment * 7;
      if (stop_after_bytes != 0 && offset >= stop_after_bytes) return timed_out();
      const std::size_t take = std::min<std::size_t>(7, data.size() - offset);
      const bool last = segment + 1 >= total_segments;
      CanFrame frame;
      frame.id = canopen::kSdoRxBase + node_id();
      frame.dlc = 8;
      frame.data[0] = static_cast<std::uint8_t>(seq | (last ? 0x80 : 0));
      std::copy_n(data.begin() + static_cast<std::ptrdiff_t>(offset), take, frame.data + 1);
      send(frame);
      sent = seq;
      // An abort may arrive in the middle of a sub-block.
      const bool abort_waiting =
          !queue_whole_sub_blocks &&
          std::any_of(inbox_.begin(), inbox_.end(), [&](const Arrived& arrived) {
            return arrived.frame.id == canopen::kSdoTxBase + node_id() && is_abort(arrived.frame);
          });
      if (abort_waiting) {
        const auto abort_frame = receive(canopen::kSdoTxBase + node_id(), sdo_timeout);
        if (abort_frame) return aborted(*abort_frame);
      }
      if (last) break;
    }
    reply = response(now_);
    if (!reply) return timed_out();
    if (is_abort(*reply)) return aborted(*reply);
    if (reply->data[0] != 0xA2) return unexpected();
    const std::uint8_t ack = reply->data[1];
    if (ack > sent) return unexpected();
    next_segment += ack;
    acknowledged = std::min(next_segment * 7, data.size());
    block_size = reply->data[2];
    if (total_segments == 0) break;
  }
  const auto unused = static_cast<std::uint8_t>(total_segments * 7 - data.size());
  std::uint16_t crc = crc_used ? crc16_xmodem(0, data.data(), data.size()) : 0;
  if (wrong_block_crc) crc ^= 0x0100;
  CanFrame end;
  end.id = canopen::kSdoRxBase + node_id();
  end.dlc = 8;
  end.data[0] = static_cast<std::uint8_t>(0xC1 | (unused << 2));
  store_le16(end.data + 1, crc);
  send(end);
  reply = response(now_);
  (void)acknowledged;
  if (!reply) return timed_out();
  if (is_abort(*reply)) return aborted(*reply);
  if (reply->data[0] != 0xA1) return unexpected();
  return {};
}

std::optional<std::uint32_t> CoreRig::wait_flash_idle(Micros timeout) {
  const Micros limit = now_ + timeout;
  while (now_ < limit && !flash_.power_lost()) {
    const SdoResult status = sdo_read(canopen::od::kFlashStatus, 1);
    if (status.ok() && (status.value & 1U) == 0) return status.value;
    run_for(10'000);
  }
  return std::nullopt;
}

}  // namespace rtcanboot::test
