// A CANopen master on top of a Transport: NMT, heartbeat/boot-up watching and blocking SDO
// transfers built on the passive SdoClient. Time comes from the transport's clock, so the same
// master runs on a real bus and in virtual time.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "rtcanboot/canopen_defs.hpp"
#include "rtcanboot/host/error.hpp"
#include "rtcanboot/host/sdo_client.hpp"
#include "rtcanboot/host/transport.hpp"

namespace rtcanboot::host {

// A failed SDO transfer. kind() is kTimeout for no answer, kAborted for aborts.
class SdoError : public Error {
 public:
  SdoError(ErrorKind kind, const std::string& message, SdoClient::Failure failure,
           std::uint32_t abort_code, std::uint64_t bytes_done)
      : Error(kind, message), failure_(failure), abort_code_(abort_code), bytes_done_(bytes_done) {}
  SdoClient::Failure failure() const { return failure_; }
  std::uint32_t abort_code() const { return abort_code_; }
  std::uint64_t bytes_done() const { return bytes_done_; }
  bool timed_out() const { return failure_ == SdoClient::Failure::kTimeout; }

 private:
  SdoClient::Failure failure_;
  std::uint32_t abort_code_;
  std::uint64_t bytes_done_;
};

struct MasterOptions {
  SdoConfig sdo;
  // Uploads and expedited downloads are repeated this many times after a timeout.
  int retries = 1;
};

struct HeartbeatInfo {
  std::uint8_t node = 0;
  canopen::NmtState state = canopen::NmtState::kBootUp;
  Micros at = 0;
  std::uint64_t count = 0;  // heartbeats/boot-ups seen from this node
};

using ProgressFn = std::function<void(std::uint64_t done, std::uint64_t total)>;

const char* to_string(canopen::NmtState state);

// Turns the failure of a first read of a bootloader-only object (`what`, e.g. "signing-key
// object 0x5F03") into what the user can act on: no answer at all is Error(kNoNode); "object does
// not exist" is Error(kAborted), an application runs or the bootloader is older. Anything else is
// rethrown as it is.
[[noreturn]] void throw_bootloader_read_error(const SdoError& e, std::uint8_t node,
                                              const char* what);

class Master {
 public:
  explicit Master(Transport& transport, MasterOptions options = {});

  Transport& transport() { return transport_; }
  MasterOptions& options() { return options_; }
  Micros now() const { return transport_.clock().now(); }

  // NMT command to one node, or to all with node 0.
  void nmt(canopen::NmtCommand command, std::uint8_t node);

  std::vector<std::uint8_t> upload(std::uint8_t node, std::uint16_t index, std::uint8_t sub,
                                   SdoMode mode = SdoMode::kAuto);
  std::uint32_t upload_u32(std::uint8_t node, std::uint16_t index, std::uint8_t sub);
  std::uint8_t upload_u8(std::uint8_t node, std::uint16_t index, std::uint8_t sub);
  std::string upload_string(std::uint8_t node, std::uint16_t index, std::uint8_t sub);

  void download(std::uint8_t node, std::uint16_t index, std::uint8_t sub,
                std::span<const std::uint8_t> data, SdoMode mode = SdoMode::kAuto,
                const ProgressFn& progress = {});
  void download_u8(std::uint8_t node, std::uint16_t index, std::uint8_t sub, std::uint8_t value);
  void download_u32(std::uint8_t node, std::uint16_t index, std::uint8_t sub, std::uint32_t value);

  // Runs several started clients side by side until all finished, or until the transport clock
  // reaches `until` (scan uses both). Does not throw for failed transfers: the caller reads each
  // client's state. `progress` gets the bytes of all clients together.
  void run(std::span<SdoClient* const> clients, const ProgressFn& progress = {},
           Micros until = std::numeric_limits<Micros>::max());

  // Lets time pass while recording heartbeats (and other traffic) until `deadline`.
  void listen_until(Micros deadline);
  // Waits for a heartbeat or boot-up of `node` received after `since`, up to `deadline`.
  // With `boot_up_only`, only a boot-up message counts.
  std::optional<HeartbeatInfo> wait_heartbeat(std::uint8_t node, Micros since, Micros deadline,
                                              bool boot_up_only = false);
  // Last heartbeat/boot-up seen from each node (node -> info).
  const std::map<std::uint8_t, HeartbeatInfo>& heartbeats() const { return heartbeats_; }
  // Last boot-up messages seen (node -> time).
  const std::map<std::uint8_t, Micros>& boot_ups() const { return boot_ups_; }

  // Bus status (error frames, bus-off) as reported by the transport.
  std::function<void(const BusStatus&)> on_status;
  // Every received frame (tracing).
  std::function<void(const CanFrame&, Micros)> on_frame;
  std::uint64_t error_frames() const { return error_frames_; }

 private:
  void run_one(SdoClient& client, const ProgressFn& progress);
  void check_interrupt() const;
  void dispatch(const RxEvent& event, std::span<SdoClient* const> clients);
  void flush(std::span<SdoClient* const> clients);
  [[noreturn]] void throw_failure(const SdoClient& client);

  Transport& transport_;
  MasterOptions options_;
  std::map<std::uint8_t, HeartbeatInfo> heartbeats_;
  std::map<std::uint8_t, Micros> boot_ups_;
  std::uint64_t error_frames_ = 0;
};

}  // namespace rtcanboot::host
