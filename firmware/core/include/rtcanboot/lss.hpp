// CiA 305 Layer Setting Services (LSS): identifiers, command specifiers, error codes and the
// standard bit timing table, defined once for the LSS slave (bootloader, application kit), the
// host tool's LSS master and the tests. docs/canopen.md lists the services.
#pragma once

#include <cstdint>

namespace rtcanboot::lss {

// COB-IDs (CiA 305).
inline constexpr std::uint32_t kMasterCobId = 0x7E5;  // master -> slaves
inline constexpr std::uint32_t kSlaveCobId = 0x7E4;   // slave -> master
// Every LSS frame carries 8 data bytes; shorter frames are not LSS requests.
inline constexpr std::uint8_t kFrameLength = 8;

// Node-ID of a slave that has none ("not configured").
inline constexpr std::uint8_t kUnconfigured = 0xFF;

enum class Mode : std::uint8_t { kWaiting = 0, kConfiguration = 1 };

// Command specifiers (byte 0 of every LSS frame).
enum class Cs : std::uint8_t {
  kSwitchGlobal = 0x04,
  kConfigureNodeId = 0x11,
  kConfigureBitTiming = 0x13,
  kActivateBitTiming = 0x15,
  kStoreConfiguration = 0x17,
  kSwitchSelectiveVendor = 0x40,
  kSwitchSelectiveProduct = 0x41,
  kSwitchSelectiveRevision = 0x42,
  kSwitchSelectiveSerial = 0x43,
  kSwitchSelectiveResponse = 0x44,
  kIdentifyVendor = 0x46,
  kIdentifyProduct = 0x47,
  kIdentifyRevisionLow = 0x48,
  kIdentifyRevisionHigh = 0x49,
  kIdentifySerialLow = 0x4A,
  kIdentifySerialHigh = 0x4B,
  kIdentifyNonConfigured = 0x4C,
  kIdentifySlaveResponse = 0x4F,  // answer to identify remote slave and to Fastscan
  kIdentifyNonConfiguredResponse = 0x50,
  kFastscan = 0x51,
  kInquireVendor = 0x5A,
  kInquireProduct = 0x5B,
  kInquireRevision = 0x5C,
  kInquireSerial = 0x5D,
  kInquireNodeId = 0x5E,
};

// Error codes in byte 1 of the configure / store answers (byte 2: implementation-specific detail
// when byte 1 is kImplementationSpecific).
inline constexpr std::uint8_t kSuccess = 0;
inline constexpr std::uint8_t kNodeIdOutOfRange = 1;       // configure node-ID
inline constexpr std::uint8_t kBitTimingNotSupported = 1;  // configure bit timing
inline constexpr std::uint8_t kStoreNotSupported = 1;      // store configuration
inline constexpr std::uint8_t kStoreMediaError = 2;        // store configuration
inline constexpr std::uint8_t kImplementationSpecific = 0xFF;
// rtcanboot's implementation-specific details (byte 2 with byte 1 = 0xFF):
inline constexpr std::uint8_t kSpecStoreBusy = 1;  // the flash is busy with a program download
// The node holds a signing key (built in or provisioned) and its build does not let LSS store a
// new node-ID or bit rate then (RTCANBOOT_LSS_STORE_WHEN_LOCKED, docs/security.md).
inline constexpr std::uint8_t kSpecStoreLocked = 2;

// Fastscan: BitChecked 0x80 resets the scan and asks every unconfigured slave to answer; 0..31
// compares the bits from BitChecked up. LSSSub / LSSNext select the identity part.
inline constexpr std::uint8_t kFastscanConfirm = 0x80;
inline constexpr std::uint8_t kFastscanMaxBit = 31;
enum class FastscanPart : std::uint8_t { kVendor = 0, kProduct = 1, kRevision = 2, kSerial = 3 };

// The CiA 305 standard bit timing table (table selector 0). Index 5 is reserved and 9 means
// automatic bit rate detection; rtcanboot supports neither.
inline constexpr std::uint8_t kStandardTable = 0;
inline constexpr std::uint8_t kBitTimingIndexCount = 9;  // 0..8
inline constexpr std::uint32_t kStandardBitrates[kBitTimingIndexCount] = {
    1'000'000, 800'000, 500'000, 250'000, 125'000, 0, 50'000, 20'000, 10'000};
// Indices 0-4 and 6-8: every CiA 301 rate.
inline constexpr std::uint16_t kAllStandardRates = 0x01DF;

// Bit rate of a table entry, 0 when the selector or index names none.
constexpr std::uint32_t bitrate_of(std::uint8_t table, std::uint8_t index) {
  if (table != kStandardTable || index >= kBitTimingIndexCount) return 0;
  return kStandardBitrates[index];
}
// Table index of a bit rate, 0xFF when it has none.
constexpr std::uint8_t index_of(std::uint32_t bitrate) {
  for (std::uint8_t i = 0; i < kBitTimingIndexCount; ++i) {
    if (bitrate != 0 && kStandardBitrates[i] == bitrate) return i;
  }
  return 0xFF;
}
static_assert(index_of(125'000) == 4 && bitrate_of(0, 2) == 500'000 && index_of(100'000) == 0xFF);

constexpr bool valid_node_id(std::uint8_t id) {
  return (id >= 1 && id <= 127) || id == kUnconfigured;
}

}  // namespace rtcanboot::lss
