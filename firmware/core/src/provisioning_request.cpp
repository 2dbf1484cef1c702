#include "rtcanboot/provisioning_request.hpp"

#include "rtcanboot/bytes.hpp"

namespace rtcanboot::provisioning_request {

namespace {

constexpr std::size_t kMagicAt = 0x00;
constexpr std::size_t kFormatAt = 0x04;
constexpr std::size_t kVendorAt = 0x08;
constexpr std::size_t kProductAt = 0x0C;
constexpr std::size_t kSerialAt = 0x10;
constexpr std::size_t kSequenceAt = 0x14;
constexpr std::size_t kNodeIdAt = 0x18;
constexpr std::size_t kFlagsAt = 0x19;
constexpr std::size_t kAttemptsAt = 0x1A;
constexpr std::size_t kHoldLimitAt = 0x1B;
constexpr std::size_t kBitrateAt = 0x1C;
constexpr std::size_t kBootWindowAt = 0x20;
constexpr std::size_t kListenWindowAt = 0x24;
constexpr std::size_t kReservedAt = 0x26;
static_assert(kReservedAt + 2 == kBodySize);
constexpr std::size_t kReservedHeadAt[] = {0x05, 0x06, 0x07};

}  // namespace

bool encode_body(const Request& request, std::uint8_t out[kBodySize]) {
  if (!valid_provisioning(request.settings)) return false;
  for (std::size_t i = 0; i < kBodySize; ++i) out[i] = 0;
  store_le32(out + kMagicAt, kMagic);
  out[kFormatAt] = kFormat;
  store_le32(out + kVendorAt, request.vendor_id);
  store_le32(out + kProductAt, request.product_code);
  store_le32(out + kSerialAt, request.serial);
  store_le32(out + kSequenceAt, request.sequence);
  const Provisioning& settings = request.settings;
  out[kNodeIdAt] = settings.node_id;
  out[kFlagsAt] = settings.flags;
  out[kAttemptsAt] = settings.boot_attempts;
  out[kHoldLimitAt] = settings.hold_limit_s;
  store_le32(out + kBitrateAt, settings.bitrate);
  store_le32(out + kBootWindowAt, settings.boot_window_ms);
  store_le16(out + kListenWindowAt, settings.listen_window_ms);
  return true;
}

void signed_message(const std::uint8_t body[kBodySize], std::uint8_t out[kMessageSize]) {
  for (std::size_t i = 0; i < kDomainSize; ++i) out[i] = static_cast<std::uint8_t>(kDomain[i]);
  for (std::size_t i = 0; i < kBodySize; ++i) out[kDomainSize + i] = body[i];
}

bool decode(const std::uint8_t* data, std::size_t length, Request& out) {
  if (data == nullptr || (length != kBodySize && length != kSignedSize)) return false;
  if (load_le32(data + kMagicAt) != kMagic || data[kFormatAt] != kFormat ||
      load_le16(data + kReservedAt) != 0) {
    return false;
  }
  for (const std::size_t at : kReservedHeadAt) {
    if (data[at] != 0) return false;
  }
  Request request;
  request.vendor_id = load_le32(data + kVendorAt);
  request.product_code = load_le32(data + kProductAt);
  request.serial = load_le32(data + kSerialAt);
  request.sequence = load_le32(data + kSequenceAt);
  Provisioning& settings = request.settings;
  settings.node_id = data[kNodeIdAt];
  settings.flags = data[kFlagsAt];
  settings.boot_attempts = data[kAttemptsAt];
  settings.hold_limit_s = data[kHoldLimitAt];
  settings.bitrate = load_le32(data + kBitrateAt);
  settings.boot_window_ms = load_le32(data + kBootWindowAt);
  settings.listen_window_ms = load_le16(data + kListenWindowAt);
  if (!valid_provisioning(settings)) return false;
  request.is_signed = length == kSignedSize;
  if (request.is_signed) {
    for (std::size_t i = 0; i < kPublicKeySize; ++i) request.public_key[i] = data[kBodySize + i];
    for (std::size_t i = 0; i < kSignatureSize; ++i) {
      request.signature[i] = data[kBodySize + kPublicKeySize + i];
    }
  }
  out = request;
  return true;
}

}  // namespace rtcanboot::provisioning_request
