// The seam between the CANopen node (SDO server, object dictionary) and whatever implements
// program download: the bootloader's ProgramDownload, or an application's "return to the
// bootloader" handler. The object dictionary routes 0x1F50..0x1F57 here.
#pragma once

#include <cstdint>

#include "rtcanboot/canopen_defs.hpp"

namespace rtcanboot {

// Why an SDO download ended before its end(), as DownloadSink::cancel() learns it.
enum class CancelCause : std::uint8_t {
  kServerAbort,  // the SDO server sent an abort frame; the code says which (protocol, CRC, timeout)
  kClientAbort,  // the client's abort frame; the code is the client's
  kReplaced,     // a new initiate request replaced the transfer
  kNmt,          // NMT reset node, reset communication or stopped (no abort frame)
};

// Streaming target of a DOMAIN download (0x1F50:1). The SDO server never buffers the whole
// transfer: it hands data over as it arrives and asks free_space() to pace the client.
class DownloadSink {
 public:
  // A download starts. size_known/size as announced by the client (size may be 0 if unknown).
  virtual canopen::Abort begin(bool size_known, std::uint32_t size) = 0;
  // Bytes it can take right now without blocking.
  virtual std::uint32_t free_space() const = 0;
  // Delivers data in order; length <= free_space(). A non-kNone return aborts the transfer.
  virtual canopen::Abort write(const std::uint8_t* data, std::uint32_t length) = 0;
  // All data delivered (the transfer's last frame arrived and its CRC matched).
  virtual canopen::Abort end() = 0;
  // The transfer ended early (`cause`, with the abort code sent or received, or the code the
  // server uses internally); discard the partial download. Not called after the sink's own
  // refusal of begin(), write() or end().
  virtual void cancel(canopen::Abort reason, CancelCause cause) = 0;

 protected:
  ~DownloadSink() = default;
};

class ProgramControl {
 public:
  virtual DownloadSink* program_data(std::uint8_t sub) = 0;  // 0x1F50:sub, nullptr if none
  // 0x1F51:sub write. kNone on success; kValueRange for unknown commands; kDeviceState when
  // it cannot be done now.
  virtual canopen::Abort control(std::uint8_t sub, std::uint8_t command) = 0;
  virtual std::uint8_t control_state(std::uint8_t sub) const = 0;  // 0x1F51:sub read
  virtual std::uint32_t software_id(std::uint8_t sub) const = 0;   // 0x1F56:sub
  virtual std::uint32_t flash_status(std::uint8_t sub) const = 0;  // 0x1F57:sub
  virtual std::uint8_t program_count() const = 0;                  // highest sub-index (1)

 protected:
  ~ProgramControl() = default;
};

}  // namespace rtcanboot
