// Firmware inputs (ELF, Intel HEX, Motorola S-record, raw binary, packed container) and packing
// into the rtcanboot image container (firmware/core/include/rtcanboot/image_format.hpp).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "rtcanboot/image_format.hpp"

namespace rtcanboot::host {

namespace signing {
class PrivateKey;
}

enum class InputFormat { kAuto, kElf, kIntelHex, kSrec, kBinary, kContainer };
const char* to_string(InputFormat format);
// "elf", "hex", "ihex", "srec", "s19", "bin", "container", "auto"; throws Error(kUsage).
InputFormat parse_input_format(const std::string& name);

// Data at absolute addresses, as read from a file (not yet checked against any region).
struct MemoryImage {
  std::map<std::uint32_t, std::vector<std::uint8_t>> chunks;  // address -> bytes, no overlaps
  std::optional<std::uint32_t> entry;
  // Adds bytes; throws Error(kInput) on overlap with data already present. Adjacent chunks merge.
  void add(std::uint32_t address, std::span<const std::uint8_t> bytes, const std::string& where);
  bool empty() const { return chunks.empty(); }
  std::uint32_t lowest() const;
  std::uint64_t end() const;  // one past the highest byte
};

// Parsers. `name` is used in messages ("app.hex:12: bad checksum"). All throw Error(kInput).
MemoryImage parse_elf(std::span<const std::uint8_t> bytes, const std::string& name);
MemoryImage parse_intel_hex(std::string_view text, const std::string& name);
MemoryImage parse_srec(std::string_view text, const std::string& name);
MemoryImage parse_binary(std::span<const std::uint8_t> bytes, std::uint32_t load_address);

// Guesses the format from the content (ELF magic, container magic, ':' or 'S' records) and
// the extension (.bin). std::nullopt when it cannot tell.
std::optional<InputFormat> detect_format(std::span<const std::uint8_t> bytes,
                                         const std::string& name);

std::vector<std::uint8_t> read_file(const std::string& path);  // throws Error(kInput)
void write_file(const std::string& path, std::span<const std::uint8_t> bytes);

// One contiguous payload for the application region: gaps filled with 0xFF.
struct FlatImage {
  std::uint32_t address = 0;
  std::vector<std::uint8_t> bytes;
};
// Checks that everything lies inside the application region and starts at its first address
// (the vector table), then flattens. Throws Error(kInput) with the offending range.
FlatImage flatten_for_application(const MemoryImage& image);

struct PackOptions {
  std::uint32_t vendor_id = 0;
  std::uint32_t product_code = 0;
  std::uint32_t image_version = 0;
  std::uint16_t header_length = image::kDefaultHeaderLength;
  // Sign with this key (a header of at least image::kSignedHeaderLength bytes is used; a
  // smaller header_length grows to it). The key must outlive the call.
  const signing::PrivateKey* sign_with = nullptr;
  std::uint32_t security_counter = 0;  // the signature record's anti-rollback counter
};

// The container: header + payload, the exact bytes to write into 0x1F50:1.
std::vector<std::uint8_t> pack(const FlatImage& image, const PackOptions& options);

// A container read back: header checked for internal consistency (magic, CRCs, region).
struct Container {
  image::Header header;
  std::vector<std::uint8_t> bytes;  // whole container
};
// Throws Error(kInput) when the header or the payload CRC/SHA-256 is wrong.
Container parse_container(std::span<const std::uint8_t> bytes, const std::string& name);

// Sector-diff updates (docs/image-format.md, "Sparse containers").
// The CRC-32 of each 4 KiB sector of `payload` as a node's flash holds it after a full download
// (the last sector padded with 0xFF): what the node's 0x5F02:3 reports for the same image.
// The header of a container whatever its load address, size and identity (the checks that do
// not depend on a node: magic, version, header CRC, records); std::nullopt when they fail.
std::optional<image::Header> parse_header(std::span<const std::uint8_t> container);

std::vector<std::uint32_t> sector_digests(std::span<const std::uint8_t> payload);
// Runs of the sectors whose digest differs from the node's (a sector the node did not report
// differs). With more than `max_runs` runs, the runs closest together are merged: a few matching
// sectors are sent too.
image::ExtentList differing_runs(const std::vector<std::uint32_t>& local,
                                 const std::vector<std::uint32_t>& node,
                                 std::uint32_t max_runs = image::kMaxExtents);
// The sparse container of the plain `container` (a whole image) that carries only `runs`; the
// other records of its header (e.g. a signature) are kept. std::nullopt when they do not fit
// one header together.
std::optional<std::vector<std::uint8_t>> make_sparse(std::span<const std::uint8_t> container,
                                                     const image::ExtentList& runs);
// The patch container of the plain `container` that carries only the bytes of `runs` (the gaps
// a follower listed in 0x5F04:6, as image offsets); its other records are kept too.
std::optional<std::vector<std::uint8_t>> make_patch(std::span<const std::uint8_t> container,
                                                    const image::PatchList& runs);

// Compressed containers (docs/image-format.md, "Compressed containers"). One raw LZMA1 stream
// of `data` as the container format wants it (liblzma: lc 0, lp 1, pb 1, 32 KiB dictionary,
// preset 9 extreme, end marker).
std::vector<std::uint8_t> lzma_compress(std::span<const std::uint8_t> data);
// The compressed form of a plain or sparse container: one stream per extent (the whole image is
// one); header fields unchanged but the compressed flag (and the header CRC). std::nullopt for a
// container that is malformed or compressed already.
std::optional<std::vector<std::uint8_t>> compress_container(
    std::span<const std::uint8_t> container);
// The way back, with the core's decoder: std::nullopt when the container is not compressed or
// its streams do not decode to exactly its extents.
std::optional<std::vector<std::uint8_t>> decompress_container(
    std::span<const std::uint8_t> container);

// Everything `pack` and `flash` need from an input file.
struct LoadOptions {
  InputFormat format = InputFormat::kAuto;
  std::optional<std::uint32_t> load_address;  // raw binary
};
struct LoadedInput {
  InputFormat format = InputFormat::kAuto;
  std::optional<Container> container;  // when the input already is a container
  std::optional<FlatImage> image;      // otherwise
};
LoadedInput load_input(const std::string& path, const LoadOptions& options);

}  // namespace rtcanboot::host
