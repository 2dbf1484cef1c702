// The object dictionary of an rtcanboot node: one constexpr table that the SDO server serves and
// the host tool's EDS consistency test compares against, plus the run-time access to the values.
#pragma once

#include <cstddef>
#include <cstdint>

#include "rtcanboot/canopen_defs.hpp"
#include "rtcanboot/image_format.hpp"
#include "rtcanboot/node_config.hpp"
#include "rtcanboot/program_control.hpp"

namespace rtcanboot::canopen {

// CiA 301 data type codes (the numbers an EDS writes as DataType=0x....).
enum class DataType : std::uint16_t {
  kUnsigned8 = 0x0005,
  kUnsigned16 = 0x0006,
  kUnsigned32 = 0x0007,
  kVisibleString = 0x0009,
  kDomain = 0x000F,
};

enum class Access : std::uint8_t { kReadOnly, kWriteOnly, kReadWrite, kConst };

// CiA 306 object codes (EDS ObjectType=0x7/0x8/0x9).
enum class ObjectCode : std::uint8_t { kVar = 0x7, kArray = 0x8, kRecord = 0x9 };

struct OdEntry {
  std::uint16_t index;
  std::uint8_t sub;
  ObjectCode object_code;   // of the whole object (same for all its sub-indices)
  const char* object_name;  // EDS ParameterName of the object
  const char* name;         // EDS ParameterName of this sub-index (the object's for a VAR)
  DataType type;
  Access access;
  // Default for numeric entries (0 for strings and domains). Entries with runtime_value set take
  // their value from NodeConfig or ProgramControl; default_value is then the typical value.
  std::uint32_t default_value;
  bool runtime_value;
};

// Size in bytes of a fixed-size type; 0 for strings and domains (any length).
constexpr std::uint32_t data_type_size(DataType type) {
  switch (type) {
    case DataType::kUnsigned8:
      return 1;
    case DataType::kUnsigned16:
      return 2;
    case DataType::kUnsigned32:
      return 4;
    default:
      return 0;
  }
}

// EDS AccessType spelling.
constexpr const char* access_name(Access access) {
  switch (access) {
    case Access::kReadOnly:
      return "ro";
    case Access::kWriteOnly:
      return "wo";
    case Access::kReadWrite:
      return "rw";
    default:
      return "const";
  }
}

constexpr bool readable(Access access) {
  return access != Access::kWriteOnly;
}
constexpr bool writable(Access access) {
  return access == Access::kWriteOnly || access == Access::kReadWrite;
}

// Every entry. The program arrays 0x1F50/0x1F51/0x1F56/0x1F57 list sub 1; subs 2..
// ProgramControl::program_count() (if any) behave like sub 1. 0x5F00 exists only when
// NodeConfig::info is set, 0x5F01 only when NodeConfig::self_test is, 0x5F02 only when
// NodeConfig::sector_digests is.
inline constexpr OdEntry kObjectDictionary[] = {
    // clang-format off
    {od::kDeviceType, 0, ObjectCode::kVar, "Device type", "Device type",
     DataType::kUnsigned32, Access::kReadOnly, kDeviceTypeValue, false},
    {od::kErrorRegister, 0, ObjectCode::kVar, "Error register", "Error register",
     DataType::kUnsigned8, Access::kReadOnly, 0, false},
    {0x1008, 0, ObjectCode::kVar, "Manufacturer device name", "Manufacturer device name",
     DataType::kVisibleString, Access::kConst, 0, true},
    {0x100A, 0, ObjectCode::kVar, "Manufacturer software version", "Manufacturer software version",
     DataType::kVisibleString, Access::kConst, 0, true},
    {od::kProducerHeartbeat, 0, ObjectCode::kVar, "Producer heartbeat time", "Producer heartbeat time",
     DataType::kUnsigned16, Access::kReadWrite, 1000, true},
    {od::kIdentity, 0, ObjectCode::kRecord, "Identity object", "Highest sub-index supported",
     DataType::kUnsigned8, Access::kReadOnly, 4, false},
    {od::kIdentity, 1, ObjectCode::kRecord, "Identity object", "Vendor-ID",
     DataType::kUnsigned32, Access::kReadOnly, 0, true},
    {od::kIdentity, 2, ObjectCode::kRecord, "Identity object", "Product code",
     DataType::kUnsigned32, Access::kReadOnly, 0, true},
    {od::kIdentity, 3, ObjectCode::kRecord, "Identity object", "Revision number",
     DataType::kUnsigned32, Access::kReadOnly, 0, true},
    {od::kIdentity, 4, ObjectCode::kRecord, "Identity object", "Serial number",
     DataType::kUnsigned32, Access::kReadOnly, 0, true},
    {od::kProgramData, 0, ObjectCode::kArray, "Program data", "Highest sub-index supported",
     DataType::kUnsigned8, Access::kReadOnly, 1, true},
    {od::kProgramData, 1, ObjectCode::kArray, "Program data", "Program number 1",
     DataType::kDomain, Access::kWriteOnly, 0, true},
    {od::kProgramControl, 0, ObjectCode::kArray, "Program control", "Highest sub-index supported",
     DataType::kUnsigned8, Access::kReadOnly, 1, true},
    {od::kProgramControl, 1, ObjectCode::kArray, "Program control", "Program number 1",
     DataType::kUnsigned8, Access::kReadWrite, 0, true},
    {od::kSoftwareId, 0, ObjectCode::kArray, "Program software identification",
     "Highest sub-index supported", DataType::kUnsigned8, Access::kReadOnly, 1, true},
    {od::kSoftwareId, 1, ObjectCode::kArray, "Program software identification", "Program number 1",
     DataType::kUnsigned32, Access::kReadOnly, 0, true},
    {od::kFlashStatus, 0, ObjectCode::kArray, "Flash status identification",
     "Highest sub-index supported", DataType::kUnsigned8, Access::kReadOnly, 1, true},
    {od::kFlashStatus, 1, ObjectCode::kArray, "Flash status identification", "Program number 1",
     DataType::kUnsigned32, Access::kReadOnly, 0, true},
    {od::kRtcanbootInfo, 0, ObjectCode::kRecord, "rtcanboot information",
     "Highest sub-index supported", DataType::kUnsigned8, Access::kReadOnly, 9, false},
    {od::kRtcanbootInfo, 1, ObjectCode::kRecord, "rtcanboot information", "Running program",
     DataType::kUnsigned8, Access::kReadOnly, kRunningBootloader, true},
    {od::kRtcanbootInfo, 2, ObjectCode::kRecord, "rtcanboot information", "Bootloader version",
     DataType::kUnsigned32, Access::kReadOnly, 0, true},
    {od::kRtcanbootInfo, 3, ObjectCode::kRecord, "rtcanboot information", "Application region start",
     DataType::kUnsigned32, Access::kReadOnly, 0, true},
    {od::kRtcanbootInfo, 4, ObjectCode::kRecord, "rtcanboot information", "Application region size",
     DataType::kUnsigned32, Access::kReadOnly, 0, true},
    {od::kRtcanbootInfo, 5, ObjectCode::kRecord, "rtcanboot information", "Boot reason",
     DataType::kUnsigned8, Access::kReadOnly, 0, true},
    {od::kRtcanbootInfo, 6, ObjectCode::kRecord, "rtcanboot information", "Application image version",
     DataType::kUnsigned32, Access::kReadOnly, 0, true},
    {od::kRtcanbootInfo, 7, ObjectCode::kRecord, "rtcanboot information", "Trial state",
     DataType::kUnsigned8, Access::kReadOnly, 0, true},
    {od::kRtcanbootInfo, 8, ObjectCode::kRecord, "rtcanboot information", "Unconfirmed boot attempts",
     DataType::kUnsigned8, Access::kReadOnly, 0, true},
    {od::kRtcanbootInfo, 9, ObjectCode::kRecord, "rtcanboot information", "Security counter",
     DataType::kUnsigned32, Access::kReadOnly, 0, true},
    {od::kSelfTest, 0, ObjectCode::kRecord, "rtcanboot self-test", "Highest sub-index supported",
     DataType::kUnsigned8, Access::kReadOnly, 3, false},
    {od::kSelfTest, 1, ObjectCode::kRecord, "rtcanboot self-test", "Run / state",
     DataType::kUnsigned8, Access::kReadWrite, 0, true},
    {od::kSelfTest, 2, ObjectCode::kRecord, "rtcanboot self-test", "Report",
     DataType::kVisibleString, Access::kReadOnly, 0, true},
    {od::kSelfTest, 3, ObjectCode::kRecord, "rtcanboot self-test", "Failed checks",
     DataType::kUnsigned32, Access::kReadOnly, 0, true},
    {od::kSectorDigests, 0, ObjectCode::kRecord, "rtcanboot sector digests",
     "Highest sub-index supported", DataType::kUnsigned8, Access::kReadOnly, 7, false},
    {od::kSectorDigests, 1, ObjectCode::kRecord, "rtcanboot sector digests", "Sectors",
     DataType::kUnsigned32, Access::kReadWrite, 0, true},
    {od::kSectorDigests, 2, ObjectCode::kRecord, "rtcanboot sector digests", "State",
     DataType::kUnsigned8, Access::kReadOnly, 0, true},
    {od::kSectorDigests, 3, ObjectCode::kRecord, "rtcanboot sector digests", "Digests",
     DataType::kDomain, Access::kReadOnly, 0, true},
    {od::kSectorDigests, 4, ObjectCode::kRecord, "rtcanboot sector digests", "Install state",
     DataType::kUnsigned8, Access::kReadOnly, 0, true},
    {od::kSectorDigests, 5, ObjectCode::kRecord, "rtcanboot sector digests", "Installed length",
     DataType::kUnsigned32, Access::kReadOnly, 0, true},
    {od::kSectorDigests, 6, ObjectCode::kRecord, "rtcanboot sector digests", "Installed CRC-32",
     DataType::kUnsigned32, Access::kReadOnly, 0, true},
    {od::kSectorDigests, 7, ObjectCode::kRecord, "rtcanboot sector digests", "Container flags",
     DataType::kUnsigned32, Access::kReadOnly, image::kUnderstoodFlags, false},
    {od::kSigningKeys, 0, ObjectCode::kRecord, "rtcanboot signing keys",
     "Highest sub-index supported", DataType::kUnsigned8, Access::kReadOnly, 2, false},
    {od::kSigningKeys, 1, ObjectCode::kRecord, "rtcanboot signing keys", "Key state",
     DataType::kUnsigned8, Access::kReadOnly, 0, true},
    {od::kSigningKeys, 2, ObjectCode::kRecord, "rtcanboot signing keys", "Key hashes",
     DataType::kDomain, Access::kReadWrite, 0, true},
    {od::kListenAlong, 0, ObjectCode::kRecord, "rtcanboot listen-along",
     "Highest sub-index supported", DataType::kUnsigned8, Access::kReadOnly, 6, false},
    {od::kListenAlong, 1, ObjectCode::kRecord, "rtcanboot listen-along", "Lead request COB-ID",
     DataType::kUnsigned32, Access::kReadWrite, 0, true},
    {od::kListenAlong, 2, ObjectCode::kRecord, "rtcanboot listen-along", "Lead response COB-ID",
     DataType::kUnsigned32, Access::kReadWrite, 0, true},
    {od::kListenAlong, 3, ObjectCode::kRecord, "rtcanboot listen-along", "Expected payload CRC-32",
     DataType::kUnsigned32, Access::kReadWrite, 0, true},
    {od::kListenAlong, 4, ObjectCode::kRecord, "rtcanboot listen-along", "Follow / state",
     DataType::kUnsigned8, Access::kReadWrite, 0, true},
    {od::kListenAlong, 5, ObjectCode::kRecord, "rtcanboot listen-along", "Gap bytes",
     DataType::kUnsigned32, Access::kReadOnly, 0, true},
    {od::kListenAlong, 6, ObjectCode::kRecord, "rtcanboot listen-along", "Gap list",
     DataType::kDomain, Access::kReadOnly, 0, true},
    {od::kProvisioning, 0, ObjectCode::kRecord, "rtcanboot provisioning",
     "Highest sub-index supported", DataType::kUnsigned8, Access::kReadOnly, 3, false},
    {od::kProvisioning, 1, ObjectCode::kRecord, "rtcanboot provisioning", "Record sequence",
     DataType::kUnsigned32, Access::kReadOnly, 0, true},
    {od::kProvisioning, 2, ObjectCode::kRecord, "rtcanboot provisioning", "Record / request",
     DataType::kDomain, Access::kReadWrite, 0, true},
    {od::kProvisioning, 3, ObjectCode::kRecord, "rtcanboot provisioning", "Request state",
     DataType::kUnsigned8, Access::kReadOnly, 0, true},
    // clang-format on
};

struct OdTable {
  const OdEntry* entries;
  std::size_t count;
  constexpr const OdEntry* begin() const { return entries; }
  constexpr const OdEntry* end() const { return entries + count; }
};

constexpr OdTable object_dictionary() {
  return {kObjectDictionary, sizeof(kObjectDictionary) / sizeof(kObjectDictionary[0])};
}

// True for the CiA 302 program arrays whose sub 1 stands for every program number.
constexpr bool is_program_array(std::uint16_t index) {
  return index == od::kProgramData || index == od::kProgramControl || index == od::kSoftwareId ||
         index == od::kFlashStatus;
}

// Run-time view of the dictionary for one node: resolves an index/sub to its entry and reads or
// writes the value, routing the program objects to ProgramControl.
class ObjectDictionary {
 public:
  struct Lookup {
    Abort abort = Abort::kNone;  // kNoObject / kNoSubIndex when not found
    const OdEntry* entry = nullptr;
    std::uint16_t index = 0;
    std::uint8_t sub = 0;
  };

  // A value to upload: data points either into `scratch` (numbers, little-endian) or to a
  // string that outlives the transfer (NodeConfig's strings).
  struct ReadValue {
    std::uint8_t scratch[4] = {};
    const std::uint8_t* data = nullptr;
    std::uint32_t size = 0;
  };

  ObjectDictionary(ProgramControl& program, const NodeConfig& config);

  Lookup find(std::uint16_t index, std::uint8_t sub) const;
  // Fills `value` (which must not be copied afterwards: data may point into it).
  Abort read(const Lookup& object, ReadValue& value) const;
  // Writes a fixed-size object; `size` equals data_type_size(object.entry->type).
  Abort write(const Lookup& object, const std::uint8_t* data, std::uint32_t size);
  // The streaming target of a DOMAIN object, nullptr when the program offers none.
  DownloadSink* domain_sink(const Lookup& object);

  std::uint16_t heartbeat_ms() const { return heartbeat_ms_; }
  // Back to NodeConfig::heartbeat_ms (NMT reset communication).
  void reset_communication() { heartbeat_ms_ = config_.heartbeat_ms; }

 private:
  ProgramControl& program_;
  const NodeConfig& config_;
  std::uint16_t heartbeat_ms_;
};

}  // namespace rtcanboot::canopen
