#include "rtcanboot/host/configure.hpp"

#include <fmt/format.h>

#include <charconv>

#include "rtcanboot/canopen_defs.hpp"

namespace rtcanboot::host {

namespace {

namespace od = canopen::od;
using State = canopen::ProvisioningRequestState;

std::uint64_t parse_number(const std::string& name, const std::string& value, std::uint64_t max) {
  std::uint64_t number = 0;
  const char* end = value.data() + value.size();
  const auto [at, ec] = std::from_chars(value.data(), end, number);
  if (value.empty() || ec != std::errc{} || at != end || number > max) {
    throw Error(ErrorKind::kUsage,
                fmt::format("--set {}={}: not a number from 0 to {}", name, value, max));
  }
  return number;
}

// "off" or a number from `min` to `max` (0 stands for off).
std::uint64_t parse_or_off(const std::string& name, const std::string& value, std::uint64_t min,
                           std::uint64_t max, const char* unit) {
  if (value == "off") return 0;
  const std::uint64_t number = parse_number(name, value, max);
  if (number < min) {
    throw Error(ErrorKind::kUsage,
                fmt::format("--set {}={}: give {} to {} {} or off", name, value, min, max, unit));
  }
  return number;
}

const char* refusal_reason(State state) {
  switch (state) {
    case State::kMalformed:
      return "the request is malformed or a setting is out of range";
    case State::kOtherDevice:
      return "the request names another device (vendor-ID, product code or serial number)";
    case State::kStaleSequence:
      return "the record changed since it was read (another master, or an LSS store): run the "
             "command again";
    case State::kNotSigned:
      return "the node holds a signing key: sign the request with --key KEY";
    case State::kUnknownKey:
      return "the request is signed by a key the node does not hold";
    case State::kBadSignature:
      return "the signature does not verify";
    case State::kStoreFailed:
      return "the node could not write its flash; the record before stays in force";
    default:
      return "refused";
  }
}

}  // namespace

void parse_provisioning_setting(const std::string& text, ProvisioningChanges& changes) {
  const std::size_t equals = text.find('=');
  if (equals == std::string::npos) {
    throw Error(ErrorKind::kUsage, fmt::format("--set {}: write NAME=VALUE, e.g. node-id=7", text));
  }
  const std::string name = text.substr(0, equals);
  const std::string value = text.substr(equals + 1);
  if (name == "node-id") {
    if (value == "unconfigured") {
      changes.node_id = lss::kUnconfigured;
      return;
    }
    const auto id = parse_number(name, value, 255);
    if (!lss::valid_node_id(static_cast<std::uint8_t>(id))) {
      throw Error(ErrorKind::kUsage,
                  fmt::format("--set node-id={}: give 1 to 127, or unconfigured", value));
    }
    changes.node_id = static_cast<std::uint8_t>(id);
  } else if (name == "bitrate") {
    const auto rate = parse_number(name, value, 1'000'000);
    if (!is_cia301_bitrate(static_cast<std::uint32_t>(rate))) {
      throw Error(ErrorKind::kUsage,
                  fmt::format("--set bitrate={}: give a CiA 301 rate in bit/s (10000, 20000, "
                              "50000, 125000, 250000, 500000, 800000, 1000000)",
                              value));
    }
    changes.bitrate = static_cast<std::uint32_t>(rate);
  } else if (name == "boot-window") {
    changes.boot_window_ms =
        static_cast<std::uint32_t>(parse_or_off(name, value, 1, 0xFFFF'FFFF, "ms"));
  } else if (name == "listen-window") {
    changes.listen_window_ms =
        static_cast<std::uint16_t>(parse_or_off(name, value, 1, kMaxListenWindowMs, "ms"));
  } else if (name == "boot-attempts") {
    changes.boot_attempts = static_cast<std::uint8_t>(parse_or_off(name, value, 1, 254, ""));
  } else if (name == "hold-limit") {
    changes.hold_limit_s = static_cast<std::uint8_t>(parse_or_off(name, value, 1, 255, "s"));
  } else if (name == "start-after-lss") {
    if (value != "on" && value != "off") {
      throw Error(ErrorKind::kUsage, fmt::format("--set start-after-lss={}: on or off", value));
    }
    changes.start_after_lss = value == "on";
  } else {
    throw Error(ErrorKind::kUsage,
                fmt::format("--set {}: unknown setting (node-id, bitrate, boot-window, "
                            "listen-window, boot-attempts, hold-limit, start-after-lss)",
                            text));
  }
}

std::vector<std::uint8_t> make_provisioning_request(const provisioning_request::Request& request,
                                                    const signing::PrivateKey* key) {
  namespace pr = provisioning_request;
  std::vector<std::uint8_t> bytes(pr::kBodySize);
  if (!pr::encode_body(request, bytes.data())) {
    throw Error(ErrorKind::kUsage, "a provisioning setting is out of range");
  }
  if (key == nullptr) return bytes;
  std::array<std::uint8_t, pr::kMessageSize> message{};
  pr::signed_message(bytes.data(), message.data());
  const signing::PublicKey public_key = key->public_key();
  const signing::Signature signature = key->sign(message);
  bytes.insert(bytes.end(), public_key.begin(), public_key.end());
  bytes.insert(bytes.end(), signature.begin(), signature.end());
  return bytes;
}

NodeProvisioning read_node_provisioning(Master& master, std::uint8_t node) {
  NodeProvisioning result;
  try {
    result.sequence = master.upload_u32(node, od::kProvisioning, 1);
  } catch (const SdoError& e) {
    throw_bootloader_read_error(e, node, "provisioning object 0x5F05");
  }
  const std::vector<std::uint8_t> record = master.upload(node, od::kProvisioning, 2);
  bool valid = false;
  result.record = decode_provisioning(record.data(), record.size(), &valid);
  if (!valid) {
    throw Error(ErrorKind::kRejected,
                fmt::format("node {}: its provisioning record (0x5F05:2, {} bytes) does not decode",
                            node, record.size()));
  }
  result.identity.vendor_id = master.upload_u32(node, od::kIdentity, 1);
  result.identity.product_code = master.upload_u32(node, od::kIdentity, 2);
  result.identity.revision = master.upload_u32(node, od::kIdentity, 3);
  result.identity.serial = master.upload_u32(node, od::kIdentity, 4);
  return result;
}

ConfigureResult configure_node(Master& master, std::uint8_t node,
                               const ProvisioningChanges& changes, const signing::PrivateKey* key) {
  ConfigureResult result;
  result.before = read_node_provisioning(master, node);
  Provisioning wanted = result.before.record;
  if (changes.node_id) wanted.node_id = *changes.node_id;
  if (changes.bitrate) wanted.bitrate = *changes.bitrate;
  if (changes.boot_window_ms) wanted.boot_window_ms = *changes.boot_window_ms;
  if (changes.listen_window_ms) wanted.listen_window_ms = *changes.listen_window_ms;
  if (changes.boot_attempts) wanted.boot_attempts = *changes.boot_attempts;
  if (changes.hold_limit_s) wanted.hold_limit_s = *changes.hold_limit_s;
  if (changes.start_after_lss) {
    wanted.flags = static_cast<std::uint8_t>(*changes.start_after_lss
                                                 ? wanted.flags | kStartApplicationAfterLss
                                                 : wanted.flags & ~kStartApplicationAfterLss);
  }
  provisioning_request::Request request;
  request.vendor_id = result.before.identity.vendor_id;
  request.product_code = result.before.identity.product_code;
  request.serial = result.before.identity.serial;
  request.sequence = result.before.sequence;
  request.settings = wanted;
  const std::vector<std::uint8_t> bytes = make_provisioning_request(request, key);
  try {
    master.download(node, od::kProvisioning, 2, bytes, SdoMode::kSegmented);
  } catch (const SdoError& e) {
    if (e.abort_code() == static_cast<std::uint32_t>(canopen::Abort::kDeviceState)) {
      throw Error(
          ErrorKind::kAborted,
          fmt::format("node {} is busy with flash work: configure it when it is idle", node));
    }
    if (e.abort_code() != static_cast<std::uint32_t>(canopen::Abort::kCannotStore) &&
        e.abort_code() != static_cast<std::uint32_t>(canopen::Abort::kValueRange)) {
      throw;
    }
    const auto state = static_cast<State>(master.upload_u8(node, od::kProvisioning, 3));
    throw Error(ErrorKind::kRejected,
                fmt::format("node {} refused the provisioning request: {} (0x5F05:3 = {})", node,
                            refusal_reason(state), static_cast<unsigned>(state)));
  }
  // One page program, or a sector erase when the log switches sectors (at most 400 ms).
  const Micros deadline = master.now() + 3'000'000;
  auto state = static_cast<State>(master.upload_u8(node, od::kProvisioning, 3));
  while (state == State::kStoring && master.now() < deadline) {
    master.listen_until(master.now() + 10'000);
    state = static_cast<State>(master.upload_u8(node, od::kProvisioning, 3));
  }
  if (state != State::kStored) {
    throw Error(
        ErrorKind::kRejected,
        fmt::format(
            "node {}: the provisioning record was not stored: {} (0x5F05:3 = {})", node,
            state == State::kStoring ? "still being written after 3 s" : refusal_reason(state),
            static_cast<unsigned>(state)));
  }
  const NodeProvisioning after = read_node_provisioning(master, node);
  result.after = after.record;
  result.changed = after.sequence != result.before.sequence;
  return result;
}

std::string describe_provisioning(const Provisioning& r) {
  const auto off_or = [](std::uint32_t value, const char* unit) {
    return value == 0 ? std::string("off") : fmt::format("{} {}", value, unit);
  };
  return fmt::format(
      "node-ID          {}\n"
      "bit rate         {} bit/s\n"
      "boot window      {}\n"
      "listen window    {}\n"
      "boot attempts    {}\n"
      "hold limit       {}\n"
      "start after LSS  {}\n",
      r.node_id == lss::kUnconfigured ? std::string("unconfigured") : fmt::format("{}", r.node_id),
      r.bitrate, off_or(r.boot_window_ms, "ms"), off_or(r.listen_window_ms, "ms"),
      r.boot_attempts == kTrialBootOff ? std::string("off (trial boot off)")
                                       : fmt::format("{}", r.boot_attempts),
      off_or(r.hold_limit_s, "s"), (r.flags & kStartApplicationAfterLss) != 0 ? "on" : "off");
}

}  // namespace rtcanboot::host
