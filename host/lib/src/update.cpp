#include "rtcanboot/host/update.hpp"

#include <fmt/format.h>
#include <algorithm>

#include "rtcanboot/bytes.hpp"
#include "rtcanboot/canopen_defs.hpp"

namespace rtcanboot::host {

using canopen::Abort;
using canopen::FlashDetail;
using canopen::FlashStatus;
namespace od = canopen::od;

std::string describe_flash_status(std::uint32_t value) {
  if (value & 1U) return "operation in progress";
  const auto status = static_cast<std::uint8_t>((value >> 1) & 0x7F);
  const auto detail = static_cast<std::uint16_t>(value >> 16);
  const char* s = nullptr;
  switch (static_cast<FlashStatus>(status)) {
    case FlashStatus::kOk:
      s = "OK";
      break;
    case FlashStatus::kNoValidProgram:
      s = "no valid program";
      break;
    case FlashStatus::kDataFormatUnknown:
      s = "data format unknown";
      break;
    case FlashStatus::kDataFormatError:
      s = "data format error or CRC error";
      break;
    case FlashStatus::kNotCleared:
      s = "flash not cleared before write";
      break;
    case FlashStatus::kWriteError:
      s = "flash write error";
      break;
    case FlashStatus::kAddressError:
      s = "general address error";
      break;
    case FlashStatus::kSecured:
      s = "flash secured (write access forbidden)";
      break;
    case FlashStatus::kUnspecified:
      s = "unspecified error";
      break;
    case FlashStatus::kWrongProduct:
      s = "image is for another vendor/product";
      break;
    case FlashStatus::kNotAuthorised:
      s = "image not authorised (signature)";
      break;
  }
  std::string text = s ? s : fmt::format("status code {}", status);
  const char* d = nullptr;
  switch (static_cast<FlashDetail>(detail)) {
    case FlashDetail::kNone:
      break;
    case FlashDetail::kBadMagic:
      d = "not an rtcanboot container (bad magic)";
      break;
    case FlashDetail::kBadFormatVersion:
      d = "unsupported container format version";
      break;
    case FlashDetail::kBadHeaderLength:
      d = "bad container header length";
      break;
    case FlashDetail::kBadHeaderCrc:
      d = "container header CRC mismatch";
      break;
    case FlashDetail::kLoadAddress:
      d = "load address is not the application start";
      break;
    case FlashDetail::kTooLarge:
      d = "image does not fit the application region";
      break;
    case FlashDetail::kPayloadCrc:
      d = "payload CRC-32 mismatch";
      break;
    case FlashDetail::kPayloadSha256:
      d = "payload SHA-256 mismatch";
      break;
    case FlashDetail::kLengthMismatch:
      d = "download length differs from the container's";
      break;
    case FlashDetail::kVerifyFailed:
      d = "read-back verification failed";
      break;
    case FlashDetail::kEraseFailed:
      d = "erase failed";
      break;
    case FlashDetail::kProgramFailed:
      d = "programming failed";
      break;
    case FlashDetail::kJournalFailed:
      d = "install record could not be written";
      break;
    case FlashDetail::kProductMismatch:
      d = "vendor-ID/product code differ from the node's 0x1018";
      break;
    case FlashDetail::kAborted:
      d = "the master aborted the transfer part-way";
      break;
    case FlashDetail::kUnsupportedFlags:
      d = "container uses flags this bootloader does not know";
      break;
    case FlashDetail::kNotConfirmed:
      d = "the application was started its allowed number of times and never confirmed that it "
          "runs";
      break;
    case FlashDetail::kBadVectorTable:
      d = "the image's initial stack pointer or reset handler cannot start";
      break;
    case FlashDetail::kBadExtents:
      d = "the sparse container's extents record is malformed";
      break;
    case FlashDetail::kBadCompressedStream:
      d = "the compressed stream breaks the format or does not decode to the image";
      break;
    case FlashDetail::kSparseVerifyFailed:
      d = "after programming the sent sectors the image differs from the container's (the "
          "sectors not sent do not match)";
      break;
    case FlashDetail::kNotTheExpectedImage:
      d = "the lead's container is not the image this follower was told to expect (0x5F04:3)";
      break;
    case FlashDetail::kIncompleteStream:
      d = "this node missed part of the lead's download: what it received is programmed, not "
          "committed (a sparse update of the differing sectors completes it)";
      break;
    case FlashDetail::kBadPatch:
      d = "the patch container's patch record is malformed";
      break;
    case FlashDetail::kPatchNotBlank:
      d = "a byte under the patch does not read 0xFF on the node (not a gap it left): nothing "
          "more was written";
      break;
    case FlashDetail::kPatchVerifyFailed:
      d = "after the patch the image differs from the container's (the bytes not patched do not "
          "match)";
      break;
    case FlashDetail::kTransferCrc:
      d = "the SDO block transfer's CRC did not match the data";
      break;
    case FlashDetail::kTransferTimeout:
      d = "the master went silent during the transfer (SDO timeout)";
      break;
    case FlashDetail::kTransferProtocol:
      d = "the master broke the SDO protocol during the transfer";
      break;
    case FlashDetail::kTransferReplaced:
      d = "a new SDO request replaced the transfer";
      break;
    case FlashDetail::kTransferNmt:
      d = "an NMT reset or stop ended the transfer";
      break;
    case FlashDetail::kSignatureMissing:
      d = "the node holds a signing key and the container is not signed";
      break;
    case FlashDetail::kSignatureMalformed:
      d = "the container's records area or signature record is malformed";
      break;
    case FlashDetail::kUnknownKey:
      d = "the container is signed by a key the node does not hold";
      break;
    case FlashDetail::kBadSignature:
      d = "the container's signature does not verify (header changed after signing?)";
      break;
    case FlashDetail::kCounterRollback:
      d = "the container's security counter is below the node's (rollback refused)";
      break;
    case FlashDetail::kFlashNotIdentified:
      d = "the node refuses flash work: its flash did not identify as the expected device (JEDEC "
          "ID; see its console)";
      break;
    case FlashDetail::kFlashPortFailed:
      d = "the node refuses flash work: its flash driver could not be initialised (see its "
          "console)";
      break;
  }
  if (d)
    text += fmt::format(": {}", d);
  else if (detail)
    text += fmt::format(" (detail {})", detail);
  return text;
}

const char* describe_boot_reason(std::uint8_t reason) {
  switch (static_cast<canopen::BootReason>(reason)) {
    case canopen::BootReason::kBootWindow:
      return "waiting out the boot window";
    case canopen::BootReason::kNoValidApplication:
      return "no valid application";
    case canopen::BootReason::kEntryRequest:
      return "the application asked for the bootloader";
    case canopen::BootReason::kApplicationDamaged:
      return "the application image is damaged";
    case canopen::BootReason::kHeldByMaster:
      return "held by a master";
    case canopen::BootReason::kNotConfirmed:
      return "the application did not confirm";
    case canopen::BootReason::kUnconfigured:
      return "it had no node-ID until LSS configured it";
    case canopen::BootReason::kApplicationRunning:
      return "none: the application runs";
    case canopen::BootReason::kAttemptNotRecorded:
      return "the boot attempt could not be recorded (journal write failed): not started";
  }
  return "unknown";
}

const char* describe_trial_state(std::uint8_t state) {
  switch (static_cast<canopen::TrialState>(state)) {
    case canopen::TrialState::kNoImage:
      return "no image";
    case canopen::TrialState::kOnTrial:
      return "on trial (not confirmed yet)";
    case canopen::TrialState::kConfirmed:
      return "confirmed";
    case canopen::TrialState::kOff:
      return "off (every image starts unconfirmed)";
  }
  return "unknown";
}

const char* describe_program_state(std::uint8_t state) {
  switch (state) {
    case 0:
      return "stopped";
    case 1:
      return "started";
    case 2:
      return "stopped";
    case 3:
      return "no program";
    default:
      return "unknown";
  }
}

namespace {

template <typename T, typename F>
std::optional<T> optional_read(F&& f) {
  try {
    return f();
  } catch (const SdoError& e) {
    if (e.timed_out()) throw;
    return std::nullopt;
  }
}

[[noreturn]] void no_node(std::uint8_t node) {
  throw Error(
      ErrorKind::kNoNode,
      fmt::format(
          "node {} does not answer (no SDO response): check the node-ID, bit rate and wiring",
          node));
}

}  // namespace

NodeInfo read_node_info(Master& m, std::uint8_t node) {
  NodeInfo info;
  info.node = node;
  try {
    info.device_type = m.upload_u32(node, od::kDeviceType, 0);
  } catch (const SdoError& e) {
    if (e.timed_out()) no_node(node);
    throw;
  }
  try {
    info.vendor_id =
        optional_read<std::uint32_t>([&] { return m.upload_u32(node, od::kIdentity, 1); });
    info.product_code =
        optional_read<std::uint32_t>([&] { return m.upload_u32(node, od::kIdentity, 2); });
    info.revision =
        optional_read<std::uint32_t>([&] { return m.upload_u32(node, od::kIdentity, 3); });
    info.serial =
        optional_read<std::uint32_t>([&] { return m.upload_u32(node, od::kIdentity, 4); });
    info.device_name = optional_read<std::string>([&] { return m.upload_string(node, 0x1008, 0); });
    info.software_version =
        optional_read<std::string>([&] { return m.upload_string(node, 0x100A, 0); });
    info.heartbeat_ms = optional_read<std::uint16_t>(
        [&] { return static_cast<std::uint16_t>(m.upload_u32(node, od::kProducerHeartbeat, 0)); });
    info.running_program =
        optional_read<std::uint8_t>([&] { return m.upload_u8(node, od::kRtcanbootInfo, 1); });
    if (info.running_program) {
      info.bootloader_version =
          optional_read<std::uint32_t>([&] { return m.upload_u32(node, od::kRtcanbootInfo, 2); });
      info.app_start =
          optional_read<std::uint32_t>([&] { return m.upload_u32(node, od::kRtcanbootInfo, 3); });
      info.app_size =
          optional_read<std::uint32_t>([&] { return m.upload_u32(node, od::kRtcanbootInfo, 4); });
      info.boot_reason =
          optional_read<std::uint8_t>([&] { return m.upload_u8(node, od::kRtcanbootInfo, 5); });
      info.image_version =
          optional_read<std::uint32_t>([&] { return m.upload_u32(node, od::kRtcanbootInfo, 6); });
      info.trial_state =
          optional_read<std::uint8_t>([&] { return m.upload_u8(node, od::kRtcanbootInfo, 7); });
      info.boot_attempts =
          optional_read<std::uint8_t>([&] { return m.upload_u8(node, od::kRtcanbootInfo, 8); });
      info.security_counter =
          optional_read<std::uint32_t>([&] { return m.upload_u32(node, od::kRtcanbootInfo, 9); });
      info.key_state =
          optional_read<std::uint8_t>([&] { return m.upload_u8(node, od::kSigningKeys, 1); });
    }
    info.program_state =
        optional_read<std::uint8_t>([&] { return m.upload_u8(node, od::kProgramControl, 1); });
    info.software_id =
        optional_read<std::uint32_t>([&] { return m.upload_u32(node, od::kSoftwareId, 1); });
    info.flash_status =
        optional_read<std::uint32_t>([&] { return m.upload_u32(node, od::kFlashStatus, 1); });
  } catch (const SdoError& e) {
    throw Error(ErrorKind::kTimeout, fmt::format("node {} stopped answering: {}", node, e.what()));
  }
  return info;
}

std::vector<std::uint8_t> container_for_node(const LoadedInput& input, const UpdateOptions& o,
                                             std::uint32_t node_vendor,
                                             std::uint32_t node_product) {
  std::uint32_t vendor = 0;
  std::uint32_t product = 0;
  std::vector<std::uint8_t> bytes;
  if (input.container) {
    vendor = input.container->header.vendor_id;
    product = input.container->header.product_code;
    bytes = input.container->bytes;
  } else if (input.image) {
    vendor = o.vendor_id.value_or(node_vendor);
    product = o.product_code.value_or(node_product);
    PackOptions p;
    p.vendor_id = vendor;
    p.product_code = product;
    p.image_version = o.image_version;
    bytes = pack(*input.image, p);
  } else {
    throw Error(ErrorKind::kInternal, "no image to flash");
  }
  if ((vendor != node_vendor || product != node_product) && !o.force_product) {
    throw Error(ErrorKind::kWrongProduct,
                fmt::format("the image is for vendor 0x{:08X} product 0x{:08X}, node {} is vendor "
                            "0x{:08X} product 0x{:08X} (--force-product to flash anyway)",
                            vendor, product, o.node, node_vendor, node_product));
  }
  return bytes;
}

image::Header container_header(std::span<const std::uint8_t> container) {
  const std::optional<image::Header> header = parse_header(container);
  if (!header)
    throw Error(ErrorKind::kInternal, "a container packed or checked here does not parse");
  return *header;
}

namespace {

class Flow {
 public:
  Flow(Master& m, const UpdateOptions& o, const UpdateEvents& ev) : m_(m), o_(o), ev_(ev) {}

  void step(const std::string& s) {
    if (ev_.step) ev_.step(s);
  }

  // An SDO action repeated while the node is rebooting (timeouts) within the reboot window.
  template <typename F>
  auto retry_while_rebooting(const char* what, F&& f) {
    const Micros until = m_.now() + o_.reboot_window;
    for (;;) {
      try {
        return f();
      } catch (const SdoError& e) {
        if (!e.timed_out() || m_.now() >= until) {
          if (e.timed_out()) {
            throw Error(ErrorKind::kTimeout,
                        fmt::format("node {} did not answer while {}", o_.node, what));
          }
          throw;
        }
        step(fmt::format("no answer while {}; the node may be restarting, retrying", what));
      }
    }
  }

  std::uint32_t wait_flash_idle(const char* what) {
    const Micros until = m_.now() + o_.flash_timeout;
    Micros interval = std::min<Micros>(2'000, o_.poll_interval);
    for (;;) {
      const std::uint32_t status = retry_while_rebooting("reading the flash status", [&] {
        return m_.upload_u32(o_.node, od::kFlashStatus, o_.program);
      });
      if ((status & 1U) == 0) return status;
      if (m_.now() >= until) {
        throw Error(ErrorKind::kTimeout, fmt::format("node {} still busy {} after {} s", o_.node,
                                                     what, o_.flash_timeout / 1'000'000));
      }
      m_.listen_until(m_.now() + interval);
      interval = std::min(2 * interval, o_.poll_interval);
    }
  }

  // The node's 0x5F02:7 lists the compressed flag among the container flags it understands. A
  // node without it (another CiA 302-3 bootloader, an older rtcanboot) gets plain containers.
  bool node_understands_compression() {
    try {
      const std::uint32_t flags = m_.upload_u32(o_.node, od::kSectorDigests, 7);
      if ((flags & image::kFlagCompressed) != 0) return true;
    } catch (const SdoError& e) {
      if (e.timed_out()) throw;
    }
    step("the node does not take compressed containers (0x5F02:7): sending them uncompressed");
    return false;
  }

  struct SparsePlan {
    std::vector<std::uint8_t> container;
    std::uint32_t sent = 0;
    std::uint32_t total = 0;
  };

  // Reads the node's sector digests (0x5F02) and plans a sparse container of the sectors that
  // differ. std::nullopt: send the whole image (the node has no digests, or nothing matches).
  std::optional<SparsePlan> plan_sparse(const std::vector<std::uint8_t>& container,
                                        const image::Header& header) {
    const std::uint8_t node = o_.node;
    const std::uint32_t sectors = image::sector_count(header.payload_length);
    // A download another master left open, or its verification, ends first: the digests
    // describe the flash only when nothing writes it.
    wait_flash_idle("finishing earlier work");
    try {
      retry_while_rebooting("asking for the sector digests", [&] {
        m_.download_u32(node, od::kSectorDigests, 1, sectors);
        return 0;
      });
    } catch (const SdoError& e) {
      if (e.timed_out()) throw;
      step("the node publishes no sector digests (0x5F02): sending the whole image");
      return std::nullopt;
    }
    const Micros until = m_.now() + o_.flash_timeout;
    for (;;) {
      const std::uint8_t state = m_.upload_u8(node, od::kSectorDigests, 2);
      if (state == static_cast<std::uint8_t>(canopen::SectorDigestState::kReady)) break;
      if (state != static_cast<std::uint8_t>(canopen::SectorDigestState::kComputing) ||
          m_.now() >= until) {
        step("the node did not finish its sector digests: sending the whole image");
        return std::nullopt;
      }
      m_.listen_until(m_.now() + o_.poll_interval / 10);
    }
    const std::vector<std::uint8_t> bytes = m_.upload(node, od::kSectorDigests, 3);
    if (bytes.size() != std::size_t{sectors} * 4) {
      step("the node's sector digests have the wrong size: sending the whole image");
      return std::nullopt;
    }
    std::vector<std::uint32_t> theirs;
    for (std::size_t at = 0; at < bytes.size(); at += 4) theirs.push_back(load_le32(&bytes[at]));
    const auto payload = std::span(container).subspan(header.header_length);
    const image::ExtentList runs = differing_runs(sector_digests(payload), theirs);
    SparsePlan plan;
    plan.total = sectors;
    for (std::uint32_t i = 0; i < runs.count; ++i) plan.sent += runs.runs[i].sector_count;
    if (plan.sent == sectors) {
      step(fmt::format("no sector of the {} on node {} matches: sending the whole image", sectors,
                       node));
      return std::nullopt;
    }
    auto sparse = make_sparse(container, runs);
    if (!sparse) {
      step("the container's records leave no room for the extents: sending the whole image");
      return std::nullopt;
    }
    plan.container = std::move(*sparse);
    const std::uint32_t sent_bytes =
        static_cast<std::uint32_t>(plan.container.size()) - load_le16(&plan.container[6]);
    step(plan.sent == 0
             ? fmt::format("sending 0 of {} sectors: the node already holds this image", sectors)
             : fmt::format("sending {} of {} sectors ({} KiB): the rest already matches", plan.sent,
                           sectors, (sent_bytes + 1023) / 1024));
    return plan;
  }

  // kNodeGaveUp: the node aborted with its SDO timeout (0x0504_0000): this computer sent
  // nothing for a second (a stalled host, a loaded machine); what was written stays on the node.
  enum class DownloadOutcome { kDone, kFallBack, kRestarted, kNodeGaveUp };

  // One download attempt of the container into 0x1F50. Throws for failures that are final.
  DownloadOutcome download(const std::vector<std::uint8_t>& container, bool block) {
    const std::uint8_t node = o_.node;
    const std::uint8_t p = o_.program;
    const Micros started = m_.now();
    try {
      m_.download(node, od::kProgramData, p, container,
                  block ? SdoMode::kBlock : SdoMode::kSegmented, ev_.progress);
      return DownloadOutcome::kDone;
    } catch (const SdoError& e) {
      const bool refused_block =
          block && e.bytes_done() == 0 && e.failure() == SdoClient::Failure::kServerAbort &&
          (e.abort_code() == static_cast<std::uint32_t>(Abort::kCommandSpecifier) ||
           e.abort_code() == static_cast<std::uint32_t>(Abort::kUnsupportedAccess));
      if (refused_block) return DownloadOutcome::kFallBack;
      if (e.failure() == SdoClient::Failure::kServerAbort &&
          e.abort_code() == static_cast<std::uint32_t>(Abort::kTimeout)) {
        return DownloadOutcome::kNodeGaveUp;
      }
      if (e.timed_out() && e.bytes_done() >= container.size()) {
        // Everything arrived but the final confirmation was lost: let the status decide.
        step("no confirmation of the end of the download; checking the node's status");
        return DownloadOutcome::kDone;
      }
      if (e.timed_out()) {
        // Did the node restart? Its boot-up message says so. A node that restarts sends its
        // boot-up before any other heartbeat, so the first heartbeat message after the timeout
        // decides: a boot-up, or a node that is alive and did not restart (the transfer only
        // stalled). That is one heartbeat period; the whole reboot window only for a node that
        // sends no heartbeat (it cost every stall of a lossy link 5 s).
        auto restarted = [&] {
          const auto it = m_.boot_ups().find(node);
          return it != m_.boot_ups().end() && it->second >= started;
        };
        if (!restarted()) m_.wait_heartbeat(node, m_.now(), m_.now() + o_.reboot_window);
        if (restarted()) return DownloadOutcome::kRestarted;
      }
      // Tell the user what the node thinks, if it says anything beyond "no valid program".
      std::string reason;
      try {
        const std::uint32_t fs = m_.upload_u32(node, od::kFlashStatus, p);
        const std::uint32_t code = (fs >> 1) & 0x7F;
        if (code != 0 && code != static_cast<std::uint32_t>(FlashStatus::kNoValidProgram)) {
          reason = describe_flash_status(fs);
        }
      } catch (const Error&) {
      }
      if (e.timed_out()) {
        // The node stopped answering part-way: an interrupted download (exit code 6), whatever
        // its 0x1F57 says afterwards (usually "aborted part-way": its view of the same timeout).
        throw Error(
            ErrorKind::kTimeout,
            fmt::format("download interrupted after {} of {} bytes: {}{}", e.bytes_done(),
                        container.size(), e.what(),
                        reason.empty() ? "" : fmt::format(" (node {} reports: {})", node, reason)));
      }
      if (!reason.empty()) {
        throw Error(ErrorKind::kRejected,
                    fmt::format("node {} rejected the image: {} ({})", node, reason, e.what()));
      }
      throw;
    }
  }

  UpdateResult run(const LoadedInput& input) {
    UpdateResult result;
    const std::uint8_t node = o_.node;
    const std::uint8_t p = o_.program;
    // 0. Who is there?
    std::uint32_t vendor = 0;
    std::uint32_t product = 0;
    try {
      vendor = m_.upload_u32(node, od::kIdentity, 1);
    } catch (const SdoError& e) {
      if (e.timed_out()) no_node(node);
      throw;
    }
    product = m_.upload_u32(node, od::kIdentity, 2);
    step(fmt::format("node {}: vendor 0x{:08X}, product 0x{:08X}", node, vendor, product));
    const auto container = container_for_node(input, o_, vendor, product);
    const image::Header header = container_header(container);
    const std::uint32_t expected_id = header.payload_crc32;

    // 1. Already installed?
    const std::uint32_t installed = m_.upload_u32(node, od::kSoftwareId, p);
    if (installed == expected_id && !o_.force) {
      step(fmt::format(
          "node {} already holds this image (0x1F56 = 0x{:08X}); not flashed again without --force",
          node, installed));
      result.skipped = true;
      result.software_id = installed;
      if (o_.start) {
        const std::uint8_t running = m_.upload_u8(node, od::kProgramControl, p);
        if (running == static_cast<std::uint8_t>(canopen::ProgramState::kStarted)) {
          step("the application is already running");
          result.started = true;
        } else {
          start(result);
        }
      }
      return result;
    }

    // 2. Stop the program (the application may reset into the bootloader here).
    const std::uint8_t state = m_.upload_u8(node, od::kProgramControl, p);
    if (state != 0 && state != 3) {
      step("stopping the program");
      const Micros before = m_.now();
      try {
        m_.download_u8(node, od::kProgramControl, p,
                       static_cast<std::uint8_t>(canopen::ProgramCommand::kStop));
      } catch (const SdoError& e) {
        if (!e.timed_out()) throw;
        step("no answer to stop: the node is restarting into its bootloader");
      }
      // An application that hands over to the bootloader announces the bootloader's boot-up.
      if (auto hb = m_.wait_heartbeat(node, before, m_.now() + 200'000, true)) {
        step("the bootloader came up");
      }
    }

    // 3 + 4. Clear, then download the container. A node that restarts part-way (boot-up seen)
    // gets the sequence again from the clear, up to UpdateOptions::download_attempts times.
    // A sparse container (only the sectors that differ, no clear) when the node publishes its
    // sector digests; the whole image otherwise, or when the sparse result fails to verify.
    bool block = o_.allow_block;
    bool full = o_.full;
    Micros t0 = 0;
    bool clear = o_.clear == UpdateOptions::Clear::kAlways;
    if (o_.clear == UpdateOptions::Clear::kAuto) {
      std::optional<std::uint8_t> running;
      try {
        running = m_.upload_u8(node, od::kRtcanbootInfo, 1);
      } catch (const SdoError& e) {
        if (e.timed_out()) throw;
      }
      clear = running != std::uint8_t{1};
    }
    const bool compress = o_.compress && node_understands_compression();
    std::uint32_t fs = 0;
    for (int attempt = 1;; ++attempt) {
      const std::optional<SparsePlan> plan = full ? std::nullopt : plan_sparse(container, header);
      std::vector<std::uint8_t> compressed;
      if (compress) {
        auto packed = compress_container(plan ? plan->container : container);
        const std::size_t plain = plan ? plan->container.size() : container.size();
        if (packed && packed->size() < plain) {
          step(fmt::format(
              "compressed: {} bytes instead of {} ({:.1f} %)", packed->size(), plain,
              100.0 * static_cast<double>(packed->size()) / static_cast<double>(plain)));
          compressed = std::move(*packed);
        }
      }
      const std::vector<std::uint8_t>& bytes =
          !compressed.empty() ? compressed : (plan ? plan->container : container);
      if (!plan && !clear && o_.clear == UpdateOptions::Clear::kAuto) {
        step(
            "no clear: the rtcanboot bootloader revokes the installed application only once the "
            "container has passed its checks");
      }
      if (!plan && clear) {
        step("clearing the application region");
        retry_while_rebooting("clearing the program", [&] {
          m_.download_u8(node, od::kProgramControl, p,
                         static_cast<std::uint8_t>(canopen::ProgramCommand::kClear));
          return 0;
        });
        wait_flash_idle("erasing");
      }
      step(fmt::format("downloading {} bytes into 0x{:04X}:{}", bytes.size(), od::kProgramData, p));
      t0 = m_.now();
      const DownloadOutcome outcome = download(bytes, block);
      if (outcome == DownloadOutcome::kFallBack) {
        step("the node refused block transfer; falling back to segmented transfer");
        block = false;
        --attempt;
        continue;
      }
      if (outcome == DownloadOutcome::kDone) {
        result.used_block = block;
        result.bytes = bytes.size();
        result.download_time = m_.now() - t0;
        result.sparse = plan.has_value();
        result.compressed = !compressed.empty();
        result.sectors_sent = plan ? plan->sent : 0;
        result.sectors_total = plan ? plan->total : 0;
        // 5. Wait for the node to finish writing and verifying.
        fs = wait_flash_idle("programming");
        const auto sparse_mismatch = canopen::flash_status_word(
            false, FlashStatus::kWriteError, canopen::FlashDetail::kSparseVerifyFailed);
        if (!plan || fs != sparse_mismatch) break;
        // The sectors taken as unchanged were not the image's after all: send it whole.
        step(fmt::format("node {}: {}; sending the whole image", node, describe_flash_status(fs)));
        full = true;
        --attempt;
        continue;
      }
      if (outcome == DownloadOutcome::kNodeGaveUp) {
        if (attempt >= o_.download_attempts) {
          throw Error(ErrorKind::kTimeout,
                      fmt::format("download interrupted: node {} gave up waiting for this "
                                  "computer part-way (its SDO timeout) {} times",
                                  node, attempt));
        }
        step(
            fmt::format("node {} gave up waiting for this computer part-way (its SDO timeout); "
                        "sending what is still missing",
                        node));
        continue;
      }
      // kRestarted
      if (attempt >= o_.download_attempts) {
        throw Error(ErrorKind::kTimeout,
                    fmt::format("node {} restarted during the download {} times; giving up", node,
                                attempt));
      }
      step(fmt::format("node {} restarted during the download; starting over", node));
    }
    if (fs != 0) {
      throw Error(ErrorKind::kRejected,
                  fmt::format("node {} rejected the image: {}", node, describe_flash_status(fs)));
    }
    // 6. Check the software identification.
    const std::uint32_t now_id = m_.upload_u32(node, od::kSoftwareId, p);
    result.software_id = now_id;
    if (now_id != expected_id) {
      throw Error(
          ErrorKind::kRejected,
          fmt::format("node {} reports software id 0x{:08X} after the download, expected 0x{:08X}",
                      node, now_id, expected_id));
    }
    step(fmt::format("image installed and verified (0x1F56 = 0x{:08X})", now_id));
    // 7. Start.
    if (o_.start) start(result);
    return result;
  }

  void start(UpdateResult& result) {
    step("starting the application");
    const Micros before = m_.now();
    try {
      m_.download_u8(o_.node, od::kProgramControl, o_.program,
                     static_cast<std::uint8_t>(canopen::ProgramCommand::kStart));
    } catch (const SdoError& e) {
      if (!e.timed_out()) {
        throw Error(ErrorKind::kRejected,
                    fmt::format("node {} refused to start the application: {}", o_.node, e.what()));
      }
    }
    // Prefer the boot-up message: a heartbeat could still come from the bootloader.
    auto hb = m_.wait_heartbeat(o_.node, before, before + o_.boot_timeout, true);
    if (!hb) hb = m_.wait_heartbeat(o_.node, before + 500'000, m_.now(), false);
    if (!hb) {
      throw Error(ErrorKind::kTimeout,
                  fmt::format("the application on node {} sent no boot-up or heartbeat within {} s",
                              o_.node, o_.boot_timeout / 1'000'000));
    }
    // The boot-up message comes first; wait for a heartbeat to learn the state if one follows soon.
    auto state = hb->state;
    if (state == canopen::NmtState::kBootUp) {
      if (auto next = m_.wait_heartbeat(o_.node, hb->at + 1, m_.now() + 1'500'000, false)) {
        if (next->state != canopen::NmtState::kBootUp) state = next->state;
      }
    }
    result.started = true;
    result.app_state = state;
    step(fmt::format("node {} is up ({})", o_.node, to_string(state)));
    if (o_.confirm_timeout > 0) wait_confirmed(result);
  }

  // Trial boot (docs/trial-boot.md): the new image counts as installed once it confirmed. Until
  // then the node may reset into the bootloader (watchdog) and start it again; once the
  // bootloader gives up it reports boot reason 5.
  void wait_confirmed(UpdateResult& result) {
    const std::uint8_t node = o_.node;
    const Micros deadline = m_.now() + o_.confirm_timeout;
    bool announced = false;
    while (m_.now() < deadline) {
      std::optional<std::uint8_t> running, trial, reason, attempts;
      try {
        running = m_.upload_u8(node, od::kRtcanbootInfo, 1);
        trial = m_.upload_u8(node, od::kRtcanbootInfo, 7);
        if (*running == canopen::kRunningBootloader) {
          reason = m_.upload_u8(node, od::kRtcanbootInfo, 5);
          attempts = m_.upload_u8(node, od::kRtcanbootInfo, 8);
        }
      } catch (const SdoError& e) {
        // An application without 0x5F00:7 predates trial boot: nothing to wait for.
        if (!e.timed_out() && running && *running == canopen::kRunningApplication) {
          result.confirmed = true;
          return;
        }
        // Otherwise the node is resetting between attempts: ask again.
      }
      const auto confirmed = static_cast<std::uint8_t>(canopen::TrialState::kConfirmed);
      const auto off = static_cast<std::uint8_t>(canopen::TrialState::kOff);
      if (running == canopen::kRunningApplication && trial &&
          (*trial == confirmed || *trial == off)) {
        result.confirmed = true;
        step(*trial == off ? "trial boot is off on this node"
                           : "the application confirmed that it runs");
        return;
      }
      if (running == canopen::kRunningBootloader && reason &&
          *reason == static_cast<std::uint8_t>(canopen::BootReason::kNotConfirmed)) {
        throw Error(
            ErrorKind::kNotConfirmed,
            fmt::format(
                "the application on node {} did not confirm that it runs: started {} times, "
                "the bootloader keeps it stopped (docs/trial-boot.md)",
                node, attempts ? *attempts : 0));
      }
      if (running == canopen::kRunningBootloader && reason &&
          *reason == static_cast<std::uint8_t>(canopen::BootReason::kHeldByMaster)) {
        // The application reset the node and one of these reads landed in the bootloader's
        // listen window, which holds the node for the master (docs/trial-boot.md). A held start
        // uses no attempt: start it again, as the bootloader would have done without the read.
        step("the node came back to its bootloader, held there by this poll: starting again");
        try {
          m_.download_u8(node, od::kProgramControl, o_.program,
                         static_cast<std::uint8_t>(canopen::ProgramCommand::kStart));
        } catch (const SdoError&) {
          // A refusal or a timeout shows in the next poll.
        }
        m_.listen_until(m_.now() + 5 * o_.poll_interval);
        continue;
      }
      if (running == canopen::kRunningBootloader && reason &&
          *reason == static_cast<std::uint8_t>(canopen::BootReason::kAttemptNotRecorded)) {
        throw Error(ErrorKind::kRejected,
                    fmt::format("node {} did not start the application: it could not record the "
                                "boot attempt in its install journal (0x1F57: write error, journal "
                                "failed; docs/trial-boot.md)",
                                node));
      }
      if (!announced) {
        step("waiting for the application to confirm");
        announced = true;
      }
      m_.listen_until(m_.now() + 5 * o_.poll_interval);
    }
    throw Error(ErrorKind::kNotConfirmed,
                fmt::format("the application on node {} did not confirm that it runs within {} s",
                            node, o_.confirm_timeout / 1'000'000));
  }

 private:
  Master& m_;
  const UpdateOptions& o_;
  const UpdateEvents& ev_;
};

}  // namespace

UpdateResult run_update(Master& master, const LoadedInput& input, const UpdateOptions& options,
                        const UpdateEvents& events) {
  Flow flow(master, options, events);
  try {
    return flow.run(input);
  } catch (const SdoError& e) {
    if (e.timed_out()) throw Error(ErrorKind::kTimeout, e.what());
    throw;
  }
}

}  // namespace rtcanboot::host
