#include "rtcanboot/image_format.hpp"

#include "rtcanboot/bytes.hpp"
#include "rtcanboot/ed25519.hpp"
#include "rtcanboot/hash.hpp"

namespace rtcanboot::image {

using canopen::FlashDetail;
using canopen::FlashStatus;

namespace {
constexpr CheckResult fail(FlashStatus status, FlashDetail detail) {
  return {status, detail};
}
}  // namespace

std::size_t bytes_needed(const std::uint8_t* data, std::size_t available) {
  if (available < kFixedLength) return kFixedLength;
  const std::uint16_t length = load_le16(data + 0x06);
  return length < kFixedLength ? kFixedLength : length;
}

CheckResult parse(const std::uint8_t* data, std::size_t length, const Expectation& expect,
                  Header& out) {
  if (length < kFixedLength)
    return fail(FlashStatus::kDataFormatError, FlashDetail::kBadHeaderLength);
  if (load_le32(data) != kMagic)
    return fail(FlashStatus::kDataFormatUnknown, FlashDetail::kBadMagic);
  out.format_version = load_le16(data + 0x04);
  if (out.format_version != kFormatVersion) {
    return fail(FlashStatus::kDataFormatUnknown, FlashDetail::kBadFormatVersion);
  }
  out.header_length = load_le16(data + 0x06);
  if (out.header_length < kMinHeaderLength || out.header_length > kMaxHeaderLength ||
      out.header_length % 4 != 0) {
    return fail(FlashStatus::kDataFormatError, FlashDetail::kBadHeaderLength);
  }
  if (length < out.header_length)
    return fail(FlashStatus::kDataFormatError, FlashDetail::kBadHeaderLength);
  const std::size_t crc_at = out.header_length - 4U;
  if (crc32(0, data, crc_at) != load_le32(data + crc_at)) {
    return fail(FlashStatus::kDataFormatError, FlashDetail::kBadHeaderCrc);
  }
  out.load_address = load_le32(data + 0x08);
  out.payload_length = load_le32(data + 0x0C);
  out.image_version = load_le32(data + 0x10);
  out.vendor_id = load_le32(data + 0x14);
  out.product_code = load_le32(data + 0x18);
  out.flags = load_le32(data + 0x1C);
  out.payload_crc32 = load_le32(data + 0x20);
  for (int i = 0; i < 32; ++i) out.payload_sha256[i] = data[0x24 + i];
  if ((out.flags & kRequiredFlagsMask & ~kUnderstoodFlags) != 0) {
    return fail(FlashStatus::kDataFormatUnknown, FlashDetail::kUnsupportedFlags);
  }
  if (out.load_address != expect.load_address) {
    return fail(FlashStatus::kAddressError, FlashDetail::kLoadAddress);
  }
  if (out.payload_length < kMinPayloadLength || out.payload_length > expect.max_payload_length) {
    return fail(FlashStatus::kAddressError, FlashDetail::kTooLarge);
  }
  if (out.vendor_id != expect.vendor_id || out.product_code != expect.product_code) {
    return fail(FlashStatus::kWrongProduct, FlashDetail::kProductMismatch);
  }
  return {};
}

namespace {

constexpr CheckResult malformed() {
  return fail(FlashStatus::kNotAuthorised, FlashDetail::kSignatureMalformed);
}

constexpr std::uint16_t kRecordsStart = kFixedLength;

}  // namespace

RecordsResult find_signature(const std::uint8_t* data, std::uint16_t header_length,
                             SignatureRecord& record) {
  RecordsResult result;
  // A malformed records area reports no signature, also when a good one came before the fault.
  const auto refused = [] {
    RecordsResult malformed_result;
    malformed_result.check = malformed();
    return malformed_result;
  };
  if (header_length < kMinHeaderLength || header_length > kMaxHeaderLength) {
    return refused();
  }
  const std::uint16_t records_end = header_length - 4U;
  std::uint16_t at = kRecordsStart;
  // Each step advances by at least the 4-byte head: at most 237 steps for a 1024-byte header.
  while (at < records_end) {
    if (records_end - at < kRecordHeadLength) {
      return refused();
    }
    const std::uint16_t type = load_le16(data + at);
    const std::uint16_t length = load_le16(data + at + 2);
    if (length % 4 != 0 || length > records_end - at - kRecordHeadLength) {
      return refused();
    }
    if (type == kRecordSignature) {
      const std::uint8_t* body = data + at + kRecordHeadLength;
      if (result.has_signature || length != kSignatureDataLength ||
          body[0] != kSignatureRecordVersion || body[1] != 0 || body[2] != 0 || body[3] != 0) {
        return refused();
      }
      record.record_version = body[0];
      record.flags = body[1];
      record.security_counter = load_le32(body + 4);
      for (std::size_t i = 0; i < kSignaturePublicKeySize; ++i) record.public_key[i] = body[8 + i];
      for (std::size_t i = 0; i < kSignatureSize; ++i) record.signature[i] = body[40 + i];
      result.has_signature = true;
      result.signature_offset = at;
    }
    at = static_cast<std::uint16_t>(at + kRecordHeadLength + length);
  }
  return result;
}

void signed_message(const std::uint8_t* header, const SignatureRecord& record,
                    std::uint8_t out[kSignedMessageSize]) {
  for (std::size_t i = 0; i < kSignatureDomainSize; ++i) {
    out[i] = static_cast<std::uint8_t>(kSignatureDomain[i]);
  }
  std::uint8_t* fixed = out + kSignatureDomainSize;
  for (std::size_t i = 0; i < kFixedLength; ++i) fixed[i] = header[i];
  // How the image travels is not signed: the header length and the sparse and compressed flags
  // change when the host turns a signed container into a sparse or compressed one. The image itself
  // stays bound: its length, CRC-32 and SHA-256 are signed, and a sparse result is read back
  // against them before COMMIT.
  store_le16(fixed + 0x06, 0);
  store_le32(fixed + 0x1C, load_le32(header + 0x1C) & ~kTransportFlags);
  std::uint8_t* fields = fixed + kFixedLength;
  fields[0] = record.record_version;
  fields[1] = record.flags;
  fields[2] = 0;
  fields[3] = 0;
  store_le32(fields + 4, record.security_counter);
}

CheckResult check_signature(const std::uint8_t* header, const SignatureRecord& record,
                            const std::uint8_t node_key[kSignaturePublicKeySize]) {
  for (std::size_t i = 0; i < kSignaturePublicKeySize; ++i) {
    if (record.public_key[i] != node_key[i]) {
      return fail(FlashStatus::kNotAuthorised, FlashDetail::kUnknownKey);
    }
  }
  std::uint8_t message[kSignedMessageSize];
  signed_message(header, record, message);
  if (ed25519::verify(record.signature, node_key, message, sizeof message) !=
      ed25519::Verdict::kValid) {
    return fail(FlashStatus::kNotAuthorised, FlashDetail::kBadSignature);
  }
  return {};
}

bool place_signature_record(std::uint8_t* header, std::uint16_t header_length, std::uint16_t offset,
                            const SignatureRecord& record) {
  if (header_length < kMinHeaderLength || header_length > kMaxHeaderLength ||
      header_length % 4 != 0 || offset < kRecordsStart || offset % 4 != 0 ||
      offset + kSignatureRecordSize > header_length - 4) {
    return false;
  }
  std::uint8_t* at = header + offset;
  store_le16(at, kRecordSignature);
  store_le16(at + 2, kSignatureDataLength);
  at[4] = record.record_version;
  at[5] = record.flags;
  at[6] = 0;
  at[7] = 0;
  store_le32(at + 8, record.security_counter);
  for (std::size_t i = 0; i < kSignaturePublicKeySize; ++i) at[12 + i] = record.public_key[i];
  for (std::size_t i = 0; i < kSignatureSize; ++i) at[44 + i] = record.signature[i];
  store_le32(header + header_length - 4, crc32(0, header, header_length - 4U));
  return true;
}

std::uint32_t sparse_payload_length(const ExtentList& extents, std::uint32_t payload_length) {
  std::uint32_t total = 0;
  for (std::uint32_t i = 0; i < extents.count; ++i) {
    const std::uint32_t begin = extents.runs[i].first_sector * kSectorSize;
    const std::uint32_t end = begin + extents.runs[i].sector_count * kSectorSize;
    if (begin >= payload_length) continue;
    total += (end < payload_length ? end : payload_length) - begin;
  }
  return total;
}

std::uint32_t sparse_header_length(std::uint32_t extent_count, std::uint32_t other_length) {
  const std::uint32_t needed =
      kFixedLength + other_length + kRecordHeadLength + 4 * extent_count + 4;
  return needed < kDefaultHeaderLength ? kDefaultHeaderLength : needed;
}

namespace {

// Walks the records area and finds the one record of `type`: false when the area does not walk
// to its end (a record past it, a length not a multiple of 4) or the record is missing or
// repeated. `body` and `length` then say where its data is.
bool find_one_record(const std::uint8_t* data, const Header& header, std::uint16_t type,
                     std::uint32_t& body, std::uint32_t& length) {
  const std::uint32_t end = header.header_length - 4U;
  bool found = false;
  std::uint32_t offset = kFixedLength;
  while (offset < end) {
    if (end - offset < kRecordHeadLength) return false;
    const std::uint32_t record_length = load_le16(data + offset + 2);
    const std::uint32_t record_body = offset + kRecordHeadLength;
    if (record_length > end - record_body || record_length % 4 != 0) return false;
    if (load_le16(data + offset) == type) {
      if (found) return false;
      found = true;
      body = record_body;
      length = record_length;
    }
    offset = record_body + record_length;
  }
  return found;
}

}  // namespace

CheckResult parse_extents(const std::uint8_t* data, const Header& header, ExtentList& out) {
  const CheckResult bad = fail(FlashStatus::kDataFormatError, FlashDetail::kBadExtents);
  out.count = 0;
  std::uint32_t body = 0;
  std::uint32_t length = 0;
  if (!find_one_record(data, header, kRecordExtents, body, length)) return bad;
  const std::uint32_t sectors = sector_count(header.payload_length);
  std::uint32_t next_free = 0;  // first sector a run may start at
  for (std::uint32_t at = 0; at < length; at += 4) {
    const std::uint32_t first = load_le16(data + body + at);
    const std::uint32_t count = load_le16(data + body + at + 2);
    if (count == 0 || first < next_free || first + count > sectors) return bad;
    out.runs[out.count].first_sector = static_cast<std::uint16_t>(first);
    out.runs[out.count].sector_count = static_cast<std::uint16_t>(count);
    ++out.count;
    next_free = first + count + 1;  // runs never touch: one encoding per sector set
  }
  return {};
}

CheckResult parse_patch(const std::uint8_t* data, const Header& header, PatchList& out) {
  const CheckResult bad = fail(FlashStatus::kDataFormatError, FlashDetail::kBadPatch);
  out.count = 0;
  if ((header.flags & (kFlagSparse | kFlagCompressed)) != 0) return bad;
  std::uint32_t body = 0;
  std::uint32_t length = 0;
  if (!find_one_record(data, header, kRecordPatch, body, length)) return bad;
  if (length % 8 != 0 || length / 8 > kMaxPatchRuns) return bad;
  std::uint32_t next_free = 0;  // first byte a run may start at
  for (std::uint32_t at = 0; at < length; at += 8) {
    const std::uint32_t offset = load_le32(data + body + at);
    const std::uint32_t run_length = load_le32(data + body + at + 4);
    if (run_length == 0 || offset < next_free || offset > header.payload_length ||
        run_length > header.payload_length - offset) {
      return bad;
    }
    out.runs[out.count].offset = offset;
    out.runs[out.count].length = run_length;
    ++out.count;
    next_free = offset + run_length + 1;  // runs never touch
  }
  return out.count != 0 ? CheckResult{} : bad;
}

namespace {

// encode() with `flag` set and the records area holding `other_records`, then the head of a
// record of `type` with `record_length` bytes of data. Returns where its data goes (nullptr when
// it does not fit); the caller fills it, then seal() writes the header CRC.
std::uint8_t* encode_with_record(const Header& header, std::uint32_t flag, std::uint16_t type,
                                 std::uint32_t record_length, std::uint8_t* out,
                                 std::size_t out_capacity, const std::uint8_t* other_records,
                                 std::size_t other_length) {
  if (other_length % 4 != 0 || other_length > kMaxHeaderLength ||
      kFixedLength + other_length + kRecordHeadLength + record_length + 4 > header.header_length) {
    return nullptr;
  }
  Header with_flag = header;
  with_flag.flags |= flag;
  if (!encode(with_flag, out, out_capacity)) return nullptr;
  for (std::size_t i = 0; i < other_length; ++i) out[kFixedLength + i] = other_records[i];
  std::uint8_t* record = out + kFixedLength + other_length;
  store_le16(record, type);
  store_le16(record + 2, static_cast<std::uint16_t>(record_length));
  return record + kRecordHeadLength;
}

void seal(const Header& header, std::uint8_t* out) {
  const std::uint32_t crc_at = header.header_length - 4U;
  store_le32(out + crc_at, crc32(0, out, crc_at));
}

}  // namespace

bool encode_sparse(const Header& header, const ExtentList& extents, std::uint8_t* out,
                   std::size_t out_capacity, const std::uint8_t* other_records,
                   std::size_t other_length) {
  if (extents.count > kMaxExtents) return false;
  std::uint8_t* data = encode_with_record(header, kFlagSparse, kRecordExtents, 4 * extents.count,
                                          out, out_capacity, other_records, other_length);
  if (data == nullptr) return false;
  for (std::uint32_t i = 0; i < extents.count; ++i) {
    store_le16(data + 4 * i, extents.runs[i].first_sector);
    store_le16(data + 4 * i + 2, extents.runs[i].sector_count);
  }
  seal(header, out);
  return true;
}

bool encode_patch(const Header& header, const PatchList& runs, std::uint8_t* out,
                  std::size_t out_capacity, const std::uint8_t* other_records,
                  std::size_t other_length) {
  if (runs.count > kMaxPatchRuns) return false;
  std::uint8_t* data = encode_with_record(header, kFlagPatch, kRecordPatch, 8 * runs.count, out,
                                          out_capacity, other_records, other_length);
  if (data == nullptr) return false;
  for (std::uint32_t i = 0; i < runs.count; ++i) {
    store_le32(data + 8 * i, runs.runs[i].offset);
    store_le32(data + 8 * i + 4, runs.runs[i].length);
  }
  seal(header, out);
  return true;
}

bool encode(const Header& header, std::uint8_t* out, std::size_t out_capacity) {
  const std::uint16_t length = header.header_length;
  if (length < kMinHeaderLength || length > kMaxHeaderLength || length % 4 != 0 ||
      out_capacity < length) {
    return false;
  }
  for (std::size_t i = 0; i < length; ++i) out[i] = 0;
  store_le32(out, kMagic);
  store_le16(out + 0x04, header.format_version);
  store_le16(out + 0x06, length);
  store_le32(out + 0x08, header.load_address);
  store_le32(out + 0x0C, header.payload_length);
  store_le32(out + 0x10, header.image_version);
  store_le32(out + 0x14, header.vendor_id);
  store_le32(out + 0x18, header.product_code);
  store_le32(out + 0x1C, header.flags);
  store_le32(out + 0x20, header.payload_crc32);
  for (int i = 0; i < 32; ++i) out[0x24 + i] = header.payload_sha256[i];
  store_le32(out + length - 4, crc32(0, out, length - 4U));
  return true;
}

}  // namespace rtcanboot::image
