// CANopen identifiers, abort codes, flash status codes and the object dictionary of an rtcanboot
// node, defined once for the firmware, the example application, the host tool and the EDS test.
#pragma once

#include <cstdint>

namespace rtcanboot::canopen {

// Predefined connection set (CiA 301).
inline constexpr std::uint32_t kNmtCobId = 0x000;
inline constexpr std::uint32_t kEmcyBase = 0x080;
inline constexpr std::uint32_t kSdoTxBase = 0x580;  // server -> client
inline constexpr std::uint32_t kSdoRxBase = 0x600;  // client -> server
inline constexpr std::uint32_t kHeartbeatBase = 0x700;

inline constexpr std::uint8_t kMinNodeId = 1;
inline constexpr std::uint8_t kMaxNodeId = 127;

enum class NmtCommand : std::uint8_t {
  kStart = 0x01,
  kStop = 0x02,
  kEnterPreOperational = 0x80,
  kResetNode = 0x81,
  kResetCommunication = 0x82,
};

enum class NmtState : std::uint8_t {
  kBootUp = 0x00,
  kStopped = 0x04,
  kOperational = 0x05,
  kPreOperational = 0x7F,
};

// SDO abort codes (CiA 301).
enum class Abort : std::uint32_t {
  kNone = 0,
  kToggleBit = 0x0503'0000,
  kTimeout = 0x0504'0000,
  kCommandSpecifier = 0x0504'0001,
  kBlockSize = 0x0504'0002,
  kSequenceNumber = 0x0504'0003,
  kCrc = 0x0504'0004,
  kOutOfMemory = 0x0504'0005,
  kUnsupportedAccess = 0x0601'0000,
  kWriteOnly = 0x0601'0001,
  kReadOnly = 0x0601'0002,
  kNoObject = 0x0602'0000,
  kIncompatible = 0x0604'0047,
  kHardware = 0x0606'0000,
  kTypeMismatch = 0x0607'0010,
  kLengthTooHigh = 0x0607'0012,
  kLengthTooLow = 0x0607'0013,
  kNoSubIndex = 0x0609'0011,
  kValueRange = 0x0609'0030,
  kGeneral = 0x0800'0000,
  kCannotStore = 0x0800'0020,
  kLocalControl = 0x0800'0021,
  kDeviceState = 0x0800'0022,
};

// 0x1F57 flash status, bits 1..7 (shifted into place by flash_status_word).
enum class FlashStatus : std::uint8_t {
  kOk = 0,
  kNoValidProgram = 1,
  kDataFormatUnknown = 2,
  kDataFormatError = 3,  // also CRC/SHA mismatch
  kNotCleared = 4,
  kWriteError = 5,
  kAddressError = 6,
  kSecured = 7,
  kUnspecified = 63,
  kWrongProduct = 64,   // manufacturer-specific: container is for another vendor/product
  kNotAuthorised = 65,  // manufacturer-specific: the node holds a key, the container's signature
                        // does not satisfy it (docs/security.md)
};

// Manufacturer-specific detail in bits 16..31 of 0x1F57: which check failed.
enum class FlashDetail : std::uint16_t {
  kNone = 0,
  kBadMagic = 1,
  kBadFormatVersion = 2,
  kBadHeaderLength = 3,
  kBadHeaderCrc = 4,
  kLoadAddress = 5,
  kTooLarge = 6,
  kPayloadCrc = 7,
  kPayloadSha256 = 8,
  kLengthMismatch = 9,  // download ended before (or after) header + payload length
  kVerifyFailed = 10,   // read-back after programming differs
  kEraseFailed = 11,
  kProgramFailed = 12,
  kJournalFailed = 13,
  kProductMismatch = 14,
  kAborted = 15,  // the master aborted the SDO transfer part-way (its abort frame)
  kUnsupportedFlags = 16,
  kBadVectorTable = 17,    // initial SP / reset handler of the payload cannot start
  kTransferCrc = 18,       // SDO block download CRC mismatch (the node's abort 0x05040004)
  kTransferTimeout = 19,   // no frame from the master for the SDO timeout (abort 0x05040000)
  kTransferProtocol = 20,  // the master broke the SDO protocol (toggle, sequence, command, ...)
  kTransferReplaced = 21,  // a new SDO initiate replaced the download
  kTransferNmt = 22,       // NMT reset node / reset communication / stopped ended the download
  // The port refused all erase/program work at start (0x1F57 status 5, write error):
  kFlashNotIdentified = 23,  // the flash's JEDEC ID is not the expected device's
  kFlashPortFailed = 24,  // the flash driver could not be initialised (ROM status on the console)
  // Signed images (docs/security.md); refused before anything is written, status kNotAuthorised:
  kSignatureMissing = 25,    // the node holds a key, the header has no signature record
  kSignatureMalformed = 26,  // records area or signature record malformed (length, version, ...)
  kUnknownKey = 27,          // signed by a key the node does not hold
  kBadSignature = 28,        // the signature does not verify over the signed message
  kCounterRollback = 29,     // security counter below the node's recorded minimum
  // The installed image was started the provisioned number of times without confirming that
  // it runs (trial boot); the bootloader no longer starts it by itself.
  kNotConfirmed = 32,
  // Sparse containers (docs/image-format.md, "Sparse containers"):
  kBadExtents = 33,          // the extents record is missing, malformed or out of range
  kSparseVerifyFailed = 34,  // the image after programming the listed sectors is not the
                             // header's (the unchanged sectors differ): not committed
  // Compressed containers (docs/image-format.md, "Compressed containers"): a raw LZMA1 stream
  // that breaks a rule (range coder start, a byte past its extent, a distance before its start
  // or past the window, the end marker not at the extent's end, trailing bytes, truncated), or a
  // whole image that decoded by the rules to other bytes than the header's.
  kBadCompressedStream = 35,
  // Listen-along download (docs/fleet-update.md):
  kNotTheExpectedImage = 40,  // the lead's container is not the image 0x5F04:3 announced
  kIncompleteStream = 41,     // the node missed part of the lead's download: what it received
                              // is programmed, not committed (a sparse repair completes it)
  // Patch containers (docs/image-format.md, "Patch containers"):
  kBadPatch = 42,           // the patch record is missing, malformed or out of range
  kPatchNotBlank = 43,      // a byte under a patch run does not read 0xFF: nothing more written
  kPatchVerifyFailed = 44,  // the image after the patch is not the header's: not committed
};

constexpr std::uint32_t flash_status_word(bool in_progress, FlashStatus status,
                                          FlashDetail detail = FlashDetail::kNone) {
  return (in_progress ? 1U : 0U) | (static_cast<std::uint32_t>(status) << 1) |
         (static_cast<std::uint32_t>(detail) << 16);
}

// 0x1F51 program control.
enum class ProgramCommand : std::uint8_t { kStop = 0, kStart = 1, kReset = 2, kClear = 3 };
enum class ProgramState : std::uint8_t { kStopped = 0, kStarted = 1, kNoProgram = 3 };

// Object dictionary indices.
namespace od {
inline constexpr std::uint16_t kDeviceType = 0x1000;
inline constexpr std::uint16_t kErrorRegister = 0x1001;
inline constexpr std::uint16_t kProducerHeartbeat = 0x1017;
inline constexpr std::uint16_t kIdentity = 0x1018;  // sub 1 vendor, 2 product, 3 revision, 4 serial
inline constexpr std::uint16_t kProgramData = 0x1F50;
inline constexpr std::uint16_t kProgramControl = 0x1F51;
inline constexpr std::uint16_t kSoftwareId = 0x1F56;
inline constexpr std::uint16_t kFlashStatus = 0x1F57;
// rtcanboot information (manufacturer-specific, read-only):
//  sub 1 UNSIGNED8  running program: 1 = bootloader, 2 = application
//  sub 2 UNSIGNED32 bootloader version (major << 16 | minor << 8 | patch)
//  sub 3 UNSIGNED32 application region start address
//  sub 4 UNSIGNED32 application region size in bytes
//  sub 5 UNSIGNED8  why the bootloader runs (BootReason)
//  sub 6 UNSIGNED32 application image version from the commit record (0 when none)
//  sub 7 UNSIGNED8  trial state of the installed image (TrialState)
//  sub 8 UNSIGNED8  unconfirmed starts of the installed image so far
inline constexpr std::uint16_t kRtcanbootInfo = 0x5F00;
// rtcanboot bring-up self-test (bootloader only, docs/bring-up.md):
//  sub 1 UNSIGNED8  rw  read: SelfTestState; write 1: reset the node into the self-test
//  sub 2 VISIBLE_STRING ro  the report of the last run, one line per check
//  sub 3 UNSIGNED32 ro  failed checks, bit n = check n + 1
inline constexpr std::uint16_t kSelfTest = 0x5F01;
// rtcanboot sector digests (bootloader only, docs/canopen.md):
//  sub 1 UNSIGNED32 rw  sectors to digest (4 KiB each, from the application start); a write
//                       starts the computation (0 forgets), read: the number asked for
//  sub 2 UNSIGNED8  ro  SectorDigestState
//  sub 3 DOMAIN     ro  CRC-32 of each sector computed so far, 4 bytes little-endian each
//  sub 4 UNSIGNED8  ro  InstallState of the application region (install journal)
//  sub 5 UNSIGNED32 ro  payload length of the committed image (0 when none)
//  sub 6 UNSIGNED32 ro  payload CRC-32 of the committed image (0 when none)
//  sub 7 UNSIGNED32 ro  the must-understand container flags this bootloader understands
//                       (image::kUnderstoodFlags: bit 0 sparse, bit 1 compressed, bit 2 patch)
inline constexpr std::uint16_t kSectorDigests = 0x5F02;
// rtcanboot signing keys (bootloader only, docs/security.md):
//  sub 1 UNSIGNED8 ro  KeyState
//  sub 2 DOMAIN    rw  read: the SHA-256 of each key the node accepts (32 bytes each); write
//                      (only in KeyState::kNone or kInterrupted): 1 to 4 such hashes, 32 to
//                      128 bytes, provisioned once, never changed or erased over CAN
inline constexpr std::uint16_t kSigningKeys = 0x5F03;
// rtcanboot listen-along download (bootloader only, docs/fleet-update.md):
//  sub 1 UNSIGNED32 rw  COB-ID of the lead's SDO requests (client -> lead), e.g. 0x600 + lead
//  sub 2 UNSIGNED32 rw  COB-ID of the lead's SDO responses (lead -> client), e.g. 0x580 + lead
//  sub 3 UNSIGNED32 rw  payload CRC-32 of the expected image (its container header); 0: any
//  sub 4 UNSIGNED8  rw  write 1: follow (subs 1-3 as written), 0: stop; read: ListenAlongState
//  sub 5 UNSIGNED32 ro  bytes the lead accepted that this node missed (gaps) in the last transfer
//  sub 6 DOMAIN     ro  where: (u32 offset in the container, u32 length) per gap run, 8 bytes
//                       each; empty with no gap or more than 64 runs
inline constexpr std::uint16_t kListenAlong = 0x5F04;
// rtcanboot provisioning record (bootloader only, docs/security.md):
//  sub 1 UNSIGNED32 ro  sequence number of the record in force (0: none stored); a request
//                       must name it
//  sub 2 DOMAIN     rw  read: the record in force (32 bytes, docs/flash-records.md); write: a
//                       provisioning request (provisioning_request.hpp, 40 bytes unsigned or
//                       136 signed; signed by a held key once the node holds one)
//  sub 3 UNSIGNED8  ro  ProvisioningRequestState of the last request
inline constexpr std::uint16_t kProvisioning = 0x5F05;
}  // namespace od

// 0x5F03:1.
enum class KeyState : std::uint8_t {
  kNone = 0,         // no key: provisioning state, unsigned containers accepted
  kBuiltIn = 1,      // the key was built into the bootloader (RTCANBOOT_SIGNING_KEY)
  kProvisioned = 2,  // keys provisioned over CAN
  kInterrupted = 3,  // a key write was cut or failed: every container refused until a key is
                     // written again
  kWriting = 4,      // a key write is running
};

// 0x5F04:4.
enum class ListenAlongState : std::uint8_t {
  kOff = 0,
  kWaiting = 1,    // armed: waiting for the lead's download to start
  kFollowing = 2,  // writing the lead's download (the node sends nothing meanwhile)
  kComplete = 3,   // the lead's download ended and this node received all of it: its own
                   // checks and COMMIT follow as after any download (0x1F57, 0x1F56)
  kGaps = 4,       // the lead's download ended, this node missed some of it (sub 5): what it
                   // has is in flash, uncommitted, for a sparse repair
  kLost = 5,       // lost its place (or could not keep up): stopped following this transfer
  kRefused = 6,    // this node's own checks refused the container (0x1F57 says why)
};

// 0x5F05:3. A refused request is answered with an SDO abort too: kMalformed with 0x0609_0030,
// the others with 0x0800_0020.
enum class ProvisioningRequestState : std::uint8_t {
  kNone = 0,
  kStoring = 1,        // accepted: the new record is being written
  kStored = 2,         // written: it takes effect at the next reset
  kStoreFailed = 3,    // the flash write failed; the record before it stays in force
  kMalformed = 4,      // length, magic, format, reserved bytes or a setting out of range
  kOtherDevice = 5,    // vendor-ID, product code or serial number is not this node's
  kStaleSequence = 6,  // names another record than the one in force (e.g. a replayed request)
  kNotSigned = 7,      // the node holds a key and the request carries no signature
  kUnknownKey = 8,     // signed by a key the node does not hold (or its key store is incomplete)
  kBadSignature = 9,   // the signature does not verify
};

// 0x5F02:2.
enum class SectorDigestState : std::uint8_t { kIdle = 0, kComputing = 1, kReady = 2 };

// 0x5F02:4: what the install journal says about the application region.
enum class InstallState : std::uint8_t {
  kNone = 0,       // no record: nothing was ever installed
  kCommitted = 1,  // a verified image is installed
  kRevoked = 2,    // the last record is a REVOKE: an update began and did not finish
  kDamaged = 3,    // committed, but the image failed its check at start
};

// 0x5F01:1.
enum class SelfTestState : std::uint8_t { kNotRun = 0, kPassed = 1, kFailed = 2 };
inline constexpr std::uint8_t kSelfTestRun = 1;  // the value a master writes to 0x5F01:1

inline constexpr std::uint8_t kRunningBootloader = 1;
inline constexpr std::uint8_t kRunningApplication = 2;

// Why the bootloader is running instead of the application (0x5F00:5).
enum class BootReason : std::uint8_t {
  kBootWindow = 0,          // valid application; waiting out the provisioned boot window
  kNoValidApplication = 1,  // no commit record (or it was revoked)
  kEntryRequest = 2,        // the application asked for the bootloader
  kApplicationDamaged = 3,  // commit record present but the image fails its check
  kHeldByMaster = 4,        // a master addressed the node inside the boot window
  kNotConfirmed = 5,        // the image never confirmed it runs within its boot attempts
  kUnconfigured = 6,        // valid application, but the node had no node-ID (LSS configured it)
  // Read from an application (0x5F00:1 = 2): the bootloader is not running, the application
  // the bootloader started runs (docs/canopen.md, "0x5F00 rtcanboot information").
  kApplicationRunning = 7,
  // A valid image on trial was not started: its ATTEMPT record could not be written (0x1F57 =
  // write error, journal failed), and an attempt that is not counted could repeat forever.
  kAttemptNotRecorded = 8,
};

// Trial boot of the installed image (0x5F00:7, docs/trial-boot.md).
enum class TrialState : std::uint8_t {
  kNoImage = 0,    // no valid image installed
  kOnTrial = 1,    // installed, not confirmed yet: started under the watchdog
  kConfirmed = 2,  // the application confirmed that it runs
  kOff = 3,        // trial boot provisioned off: every committed image starts
};

// CiA 301 device type: no device profile.
inline constexpr std::uint32_t kDeviceTypeValue = 0x0000'0000;

}  // namespace rtcanboot::canopen
