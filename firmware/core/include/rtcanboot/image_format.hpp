// The rtcanboot image container: the exact bytes a CANopen master writes into 0x1F50:1.
// Defined once for the bootloader (which parses it while streaming) and the host tool (which
// packs it). docs/image-format.md describes it; tests/vectors pin the bytes.
//
// Layout (little-endian):
//   0x00 u32  magic 0x42435452 ("RTCB")
//   0x04 u16  format version (1)
//   0x06 u16  header length H (multiple of 4, kMinHeaderLength..kMaxHeaderLength)
//   0x08 u32  load address (must be the application start 0x7002_0000)
//   0x0C u32  payload length (kMinPayloadLength..application region size)
//   0x10 u32  image version (free for the application's use; reported by 0x5F00:6)
//   0x14 u32  vendor-ID   (must equal the node's 0x1018:1)
//   0x18 u32  product code (must equal the node's 0x1018:2)
//   0x1C u32  flags: bits 0..15 must be understood (bit 0: sparse, bit 1: compressed, bit 2:
//             patch; any other set bit is rejected), bits 16..31 informational
//   0x20 u32  CRC-32 of the payload (IEEE 802.3, as zlib); also the node's 0x1F56:1 once installed
//   0x24 u8[32] SHA-256 of the payload
//   0x44 u32  reserved, 0
//   0x48 ..   records up to H-4: u16 type, u16 length, data; type 0 is padding, type 1 the
//             Ed25519 signature record (docs/security.md; a node without a key skips it). A
//             sparse container carries exactly one extents record (type 0x0002): u16 first
//             sector, u16 sector count per run of 4 KiB sectors, ascending, runs never touching.
//   H-4  u32  CRC-32 of header bytes 0..H-4
//   H    ..   payload, written to flash from the load address. Sparse: only the listed
//             sectors' bytes, in order (the last sector of the image ends at payload length);
//             payload length, CRC-32 and SHA-256 remain those of the WHOLE image.
//             Patch: only the bytes of the patch record's runs (type 0x0003: u32 offset, u32
//             length each), programmed without an erase onto bytes that read 0xFF (the gaps a
//             follower left, docs/fleet-update.md); the whole image is then read back.
//             Compressed: one raw LZMA1 stream per extent (lzma_stream.hpp), same identity fields.
#pragma once

#include <cstddef>
#include <cstdint>

#include "rtcanboot/canopen_defs.hpp"

namespace rtcanboot::image {

inline constexpr std::uint32_t kMagic = 0x4243'5452;
inline constexpr std::uint16_t kFormatVersion = 1;
inline constexpr std::uint16_t kFixedLength = 0x48;
inline constexpr std::uint16_t kMinHeaderLength = kFixedLength + 4;
inline constexpr std::uint16_t kMaxHeaderLength = 1024;
inline constexpr std::uint16_t kDefaultHeaderLength = 128;
inline constexpr std::uint32_t kMinPayloadLength = 8;  // at least initial SP and reset vector
inline constexpr std::uint32_t kRequiredFlagsMask = 0x0000'FFFF;
// Must-understand flag: the payload holds only the sectors of the extents record.
inline constexpr std::uint32_t kFlagSparse = 0x0000'0001;
// Must-understand flag: the payload is one raw LZMA1 stream per extent (the whole image is one;
// lzma_stream.hpp); payload length, CRC-32 and SHA-256 stay those of the image.
inline constexpr std::uint32_t kFlagCompressed = 0x0000'0002;
// Must-understand flag: the payload holds only the bytes of the patch record's runs, programmed
// without an erase onto flash that reads 0xFF under them; neither sparse nor compressed.
inline constexpr std::uint32_t kFlagPatch = 0x0000'0004;
inline constexpr std::uint32_t kUnderstoodFlags = kFlagSparse | kFlagCompressed | kFlagPatch;
// How the image travels, left out of the signed message (signed_message()).
inline constexpr std::uint32_t kTransportFlags = kFlagSparse | kFlagCompressed | kFlagPatch;

inline constexpr std::uint16_t kRecordPadding = 0x0000;
inline constexpr std::uint16_t kRecordSignature = 0x0001;
inline constexpr std::uint16_t kRecordExtents = 0x0002;
inline constexpr std::uint16_t kRecordPatch = 0x0003;
inline constexpr std::uint16_t kRecordHeadLength = 4;  // u16 type, u16 length
// The unit of a sparse container (and of the sector digests, 0x5F02).
inline constexpr std::uint32_t kSectorSize = 4096;
// The most runs one header can hold: the whole records area as one extents record.
inline constexpr std::uint32_t kMaxExtents =
    (kMaxHeaderLength - kFixedLength - kRecordHeadLength - 4) / 4;
static_assert(kMaxExtents == 236);
// The most runs of a patch record (8 bytes each); a bound for the bootloader's RAM too.
inline constexpr std::uint32_t kMaxPatchRuns = 64;
static_assert(kFixedLength + kRecordHeadLength + 8 * kMaxPatchRuns + 4 <= kMaxHeaderLength);
static_assert(kSectorSize % 256 == 0, "a sector holds whole flash pages");

struct Header {
  std::uint16_t format_version = kFormatVersion;
  std::uint16_t header_length = kDefaultHeaderLength;
  std::uint32_t load_address = 0;
  std::uint32_t payload_length = 0;
  std::uint32_t image_version = 0;
  std::uint32_t vendor_id = 0;
  std::uint32_t product_code = 0;
  std::uint32_t flags = 0;
  std::uint32_t payload_crc32 = 0;
  std::uint8_t payload_sha256[32] = {};
};

// What the node expects of a container.
struct Expectation {
  std::uint32_t vendor_id = 0;
  std::uint32_t product_code = 0;
  std::uint32_t load_address = 0;
  std::uint32_t max_payload_length = 0;
};

struct CheckResult {
  canopen::FlashStatus status = canopen::FlashStatus::kOk;
  canopen::FlashDetail detail = canopen::FlashDetail::kNone;
  bool ok() const { return status == canopen::FlashStatus::kOk; }
};

// One run of 4 KiB sectors of the image, counted from the load address.
struct Extent {
  std::uint16_t first_sector = 0;
  std::uint16_t sector_count = 0;
};

struct ExtentList {
  Extent runs[kMaxExtents] = {};
  std::uint32_t count = 0;
};

// Bytes of the image at [offset, offset + length), counted from the load address.
struct PatchRun {
  std::uint32_t offset = 0;
  std::uint32_t length = 0;
};

struct PatchList {
  PatchRun runs[kMaxPatchRuns] = {};
  std::uint32_t count = 0;
  std::uint32_t bytes() const {
    std::uint32_t total = 0;
    for (std::uint32_t i = 0; i < count; ++i) total += runs[i].length;
    return total;
  }
};

// Sectors that hold bytes of an image of `payload_length` bytes (the last one may be partial).
constexpr std::uint32_t sector_count(std::uint32_t payload_length) {
  return (payload_length + kSectorSize - 1) / kSectorSize;
}

// Bytes a sparse payload holds: the listed sectors, the image's last sector only up to its end.
std::uint32_t sparse_payload_length(const ExtentList& extents, std::uint32_t payload_length);

// Header length the packer uses for `extent_count` runs after `other_length` bytes of other
// records: 128, or more when they need it (more than kMaxHeaderLength: they do not fit).
std::uint32_t sparse_header_length(std::uint32_t extent_count, std::uint32_t other_length = 0);

// How many bytes must have arrived before parse() can decide: first the fixed part to learn H,
// then H. Returns kFixedLength until the header length is known.
std::size_t bytes_needed(const std::uint8_t* data, std::size_t available);

// Parses and checks a complete header (at least header_length bytes). Does not look at the
// payload. Order of checks: magic, version, header length, header CRC, flags, load address,
// size, product.
CheckResult parse(const std::uint8_t* data, std::size_t length, const Expectation& expect,
                  Header& out);

// ---------------------------------------------------------------------------------------------
// Records area and the signature record (docs/security.md). Each record: u16 type, u16 length
// (bytes after the 4-byte head, a multiple of 4 so every head stays aligned), data. The walk is
// strict: a head or data that does not fit the area, a length that is not a multiple of 4, a
// second signature record or a signature record of the wrong length, version, flags or reserved
// bytes is refused as malformed. Unknown types are skipped.
inline constexpr std::uint16_t kSignatureDataLength = 104;
inline constexpr std::uint16_t kSignatureRecordSize = kRecordHeadLength + kSignatureDataLength;
inline constexpr std::uint8_t kSignatureRecordVersion = 1;
inline constexpr std::size_t kSignaturePublicKeySize = 32;
inline constexpr std::size_t kSignatureSize = 64;
// Smallest header that holds a signature record (the packer's header length when signing).
inline constexpr std::uint16_t kSignedHeaderLength = kFixedLength + kSignatureRecordSize + 4;
static_assert(kSignatureDataLength == 8 + kSignaturePublicKeySize + kSignatureSize);
static_assert(kSignedHeaderLength == 184 && kSignedHeaderLength % 4 == 0);

// The signed message: domain (16 bytes, "RTCB-ED25519-V1\0"), header bytes 0..0x47 with the
// header length and the transport flags (sparse, compressed) zeroed, record bytes 4..11
// (version, flags, reserved, security counter).
inline constexpr char kSignatureDomain[] = "RTCB-ED25519-V1";
inline constexpr std::size_t kSignatureDomainSize = sizeof kSignatureDomain;
inline constexpr std::size_t kSignedMessageSize = kSignatureDomainSize + kFixedLength + 8;
static_assert(kSignatureDomainSize == 16 && kSignedMessageSize == 96);

struct SignatureRecord {
  std::uint8_t record_version = kSignatureRecordVersion;
  std::uint8_t flags = 0;
  std::uint32_t security_counter = 0;
  std::uint8_t public_key[kSignaturePublicKeySize] = {};
  std::uint8_t signature[kSignatureSize] = {};
};

struct RecordsResult {
  CheckResult check;                   // kNotAuthorised / kSignatureMalformed when the walk failed
  bool has_signature = false;          // a well-formed signature record was found
  std::uint16_t signature_offset = 0;  // its offset in the header
};

// Walks the records area of a header that parse() accepted (`data` holds at least its
// header_length bytes). Fills `record` when a signature record is found.
RecordsResult find_signature(const std::uint8_t* data, std::uint16_t header_length,
                             SignatureRecord& record);

// The 96-byte message that the signature covers.
void signed_message(const std::uint8_t* header, const SignatureRecord& record,
                    std::uint8_t out[kSignedMessageSize]);

// Checks a found signature record against the node's public key: kUnknownKey when the record
// names another key, kBadSignature when the Ed25519 verification (strict, ed25519.hpp) fails.
// Takes about 8 M cycles (13 ms at 600 MHz).
CheckResult check_signature(const std::uint8_t* header, const SignatureRecord& record,
                            const std::uint8_t node_key[kSignaturePublicKeySize]);

// Writes `record` (kSignatureRecordSize bytes) at `offset` of an encoded header of
// `header_length` bytes and recomputes the header CRC. False when it does not fit the records
// area or the offset is not 4-aligned.
bool place_signature_record(std::uint8_t* header, std::uint16_t header_length, std::uint16_t offset,
                            const SignatureRecord& record);
// For a header that parse() accepted with kFlagSparse set: reads its one extents record from
// the records area (`data`, header_length bytes). Refuses (data format error, kBadExtents) a
// record area that does not walk to its end, a missing or repeated extents record, a length
// that is not 4 per run, an empty run, runs out of order or touching, a run past the image.
CheckResult parse_extents(const std::uint8_t* data, const Header& header, ExtentList& out);

// For a header that parse() accepted with kFlagPatch set: reads its one patch record. Refuses
// (data format error, kBadPatch) what parse_extents() refuses for extents, a patch container
// that is also sparse or compressed, more than kMaxPatchRuns runs, an empty run, runs out of
// order or touching, a run past the image.
CheckResult parse_patch(const std::uint8_t* data, const Header& header, PatchList& out);
// encode() with the patch flag and the patch record after `other_records` (as encode_sparse()).
bool encode_patch(const Header& header, const PatchList& runs, std::uint8_t* out,
                  std::size_t out_capacity, const std::uint8_t* other_records = nullptr,
                  std::size_t other_length = 0);

// Writes a header of out_length = header.header_length bytes (records area zero-padded) and its
// CRC. Returns false when header_length is out of range or the buffer is too small.
bool encode(const Header& header, std::uint8_t* out, std::size_t out_capacity);

// encode() with the sparse flag set; the records area holds `other_records` (whole records of
// other types, copied as they are, e.g. a signature) and then the extents record. False when
// they do not fit header.header_length or encode() fails. Does not check the runs
// (parse_extents() does).
bool encode_sparse(const Header& header, const ExtentList& extents, std::uint8_t* out,
                   std::size_t out_capacity, const std::uint8_t* other_records = nullptr,
                   std::size_t other_length = 0);

}  // namespace rtcanboot::image
