// Reading and changing a node's provisioning record over CAN (0x5F05, docs/security.md
// "Changing the provisioning record"): `rtcanboot configure`. The request names the device and
// the record it replaces; once the node holds a signing key it must be signed (OpenSSL, the
// vendor's private key).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "rtcanboot/host/master.hpp"
#include "rtcanboot/host/signing.hpp"
#include "rtcanboot/node_config.hpp"
#include "rtcanboot/provisioning.hpp"
#include "rtcanboot/provisioning_request.hpp"

namespace rtcanboot::host {

// The settings a request changes; what is not set stays as the node has it.
struct ProvisioningChanges {
  std::optional<std::uint8_t> node_id;  // 1..127, 0xFF: unconfigured
  std::optional<std::uint32_t> bitrate;
  std::optional<std::uint32_t> boot_window_ms;
  std::optional<std::uint16_t> listen_window_ms;  // 0: off
  std::optional<std::uint8_t> boot_attempts;      // 0: trial boot off
  std::optional<std::uint8_t> hold_limit_s;       // 0: none
  std::optional<bool> start_after_lss;
  bool empty() const {
    return !node_id && !bitrate && !boot_window_ms && !listen_window_ms && !boot_attempts &&
           !hold_limit_s && !start_after_lss;
  }
};

// Applies one "NAME=VALUE" of `configure --set` (node-id, bitrate, boot-window, listen-window,
// boot-attempts, hold-limit, start-after-lss). Error(kUsage) that says what is wrong.
void parse_provisioning_setting(const std::string& text, ProvisioningChanges& changes);

// The request's bytes: the body, then (with `key`) its public key and signature.
std::vector<std::uint8_t> make_provisioning_request(const provisioning_request::Request& request,
                                                    const signing::PrivateKey* key);

struct NodeProvisioning {
  std::uint32_t sequence = 0;  // 0x5F05:1
  Provisioning record;         // 0x5F05:2
  NodeIdentity identity;       // 0x1018:1, 2, 4
};
// Reads 0x1018 and 0x5F05 of a node's bootloader. Error(kNoNode) when it does not answer,
// Error(kAborted) when it has no 0x5F05 (an application runs, or an older bootloader).
NodeProvisioning read_node_provisioning(Master& master, std::uint8_t node);

struct ConfigureResult {
  NodeProvisioning before;
  Provisioning after;  // as stored; the node uses it from its next reset on
  bool changed = false;
};
// Sends one request with `changes` to `node` and waits until it is stored. Refusals are
// Error(kRejected) with the node's reason (0x5F05:3), e.g. unsigned while the node holds a key.
ConfigureResult configure_node(Master& master, std::uint8_t node,
                               const ProvisioningChanges& changes, const signing::PrivateKey* key);

// One line per setting, for people.
std::string describe_provisioning(const Provisioning& record);

}  // namespace rtcanboot::host
