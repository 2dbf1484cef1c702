// Sparse containers on the host: the local image's sector digests, the runs that differ from the
// node's, and the container that carries only them (docs/image-format.md, "Sparse containers").
#include <algorithm>

#include "rtcanboot/bytes.hpp"
#include "rtcanboot/hash.hpp"
#include "rtcanboot/host/image.hpp"

namespace rtcanboot::host {

std::vector<std::uint32_t> sector_digests(std::span<const std::uint8_t> payload) {
  const std::uint32_t sectors = image::sector_count(static_cast<std::uint32_t>(payload.size()));
  std::vector<std::uint32_t> digests;
  digests.reserve(sectors);
  std::vector<std::uint8_t> sector(image::kSectorSize);
  for (std::uint32_t i = 0; i < sectors; ++i) {
    const std::size_t begin = std::size_t{i} * image::kSectorSize;
    const std::size_t length = std::min<std::size_t>(image::kSectorSize, payload.size() - begin);
    std::fill(sector.begin(), sector.end(), 0xFF);  // the writer pads the last page with 0xFF
    std::copy_n(payload.begin() + static_cast<std::ptrdiff_t>(begin), length, sector.begin());
    digests.push_back(crc32(0, sector.data(), sector.size()));
  }
  return digests;
}

image::ExtentList differing_runs(const std::vector<std::uint32_t>& local,
                                 const std::vector<std::uint32_t>& node, std::uint32_t max_runs) {
  struct Run {
    std::uint32_t first;
    std::uint32_t count;
  };
  std::vector<Run> runs;
  for (std::uint32_t sector = 0; sector < local.size(); ++sector) {
    if (sector < node.size() && node[sector] == local[sector]) continue;
    if (!runs.empty() && runs.back().first + runs.back().count == sector) {
      ++runs.back().count;
    } else {
      runs.push_back({sector, 1});
    }
  }
  // The format wants separate runs (never touching) and at most max_runs of them: close the
  // smallest gaps first.
  if (max_runs == 0) max_runs = 1;
  while (runs.size() > max_runs) {
    std::size_t best = 0;
    for (std::size_t i = 1; i + 1 < runs.size(); ++i) {
      const auto gap = [&](std::size_t k) {
        return runs[k + 1].first - (runs[k].first + runs[k].count);
      };
      if (gap(i) < gap(best)) best = i;
    }
    runs[best].count = runs[best + 1].first + runs[best + 1].count - runs[best].first;
    runs.erase(runs.begin() + static_cast<std::ptrdiff_t>(best) + 1);
  }
  image::ExtentList extents;
  for (const Run& run : runs) {
    extents.runs[extents.count++] = {static_cast<std::uint16_t>(run.first),
                                     static_cast<std::uint16_t>(run.count)};
  }
  return extents;
}

std::optional<image::Header> parse_header(std::span<const std::uint8_t> container) {
  if (container.size() < image::kMinHeaderLength) return std::nullopt;
  image::Expectation any;
  any.load_address = load_le32(container.data() + 0x08);
  any.max_payload_length = 0xFFFF'FFFF;
  any.vendor_id = load_le32(container.data() + 0x14);
  any.product_code = load_le32(container.data() + 0x18);
  image::Header header;
  if (!image::parse(container.data(), container.size(), any, header).ok()) return std::nullopt;
  return header;
}

namespace {

// A plain container's header (parsed) and the length of its records (up to the end of the last
// one that is not padding), kept in a sparse or patch container made from it.
struct PlainHeader {
  image::Header header;
  std::uint32_t other_length = 0;
};

std::optional<PlainHeader> plain_header(std::span<const std::uint8_t> container) {
  std::optional<image::Header> parsed = parse_header(container);
  if (!parsed) return std::nullopt;
  if ((parsed->flags & image::kTransportFlags) != 0 ||
      container.size() != std::size_t{parsed->header_length} + parsed->payload_length) {
    return std::nullopt;
  }
  const std::uint32_t area_end = parsed->header_length - 4U;
  std::uint32_t kept_end = image::kFixedLength;
  for (std::uint32_t at = image::kFixedLength; at < area_end;) {
    if (area_end - at < image::kRecordHeadLength) return std::nullopt;
    const std::uint16_t type = load_le16(container.data() + at);
    const std::uint32_t length = load_le16(container.data() + at + 2);
    const std::uint32_t next = at + image::kRecordHeadLength + length;
    if (next > area_end || length % 4 != 0 || type == image::kRecordExtents ||
        type == image::kRecordPatch) {
      return std::nullopt;
    }
    if (type != image::kRecordPadding) kept_end = next;
    at = next;
  }
  return PlainHeader{*parsed, kept_end - image::kFixedLength};
}

}  // namespace

std::optional<std::vector<std::uint8_t>> make_sparse(std::span<const std::uint8_t> container,
                                                     const image::ExtentList& runs) {
  std::optional<PlainHeader> plain = plain_header(container);
  if (!plain) return std::nullopt;
  image::Header& header = plain->header;  // rewritten below for the sparse container
  const std::uint32_t header_length = image::sparse_header_length(runs.count, plain->other_length);
  if (header_length > image::kMaxHeaderLength) return std::nullopt;
  header.header_length = static_cast<std::uint16_t>(header_length);
  std::vector<std::uint8_t> bytes(header_length);
  if (!image::encode_sparse(header, runs, bytes.data(), bytes.size(),
                            container.data() + image::kFixedLength, plain->other_length)) {
    return std::nullopt;
  }
  const auto payload = container.subspan(container.size() - header.payload_length);
  for (std::uint32_t i = 0; i < runs.count; ++i) {
    const std::size_t begin = std::size_t{runs.runs[i].first_sector} * image::kSectorSize;
    const std::size_t end = std::min<std::size_t>(
        begin + std::size_t{runs.runs[i].sector_count} * image::kSectorSize, payload.size());
    if (begin >= end) return std::nullopt;
    bytes.insert(bytes.end(), payload.begin() + static_cast<std::ptrdiff_t>(begin),
                 payload.begin() + static_cast<std::ptrdiff_t>(end));
  }
  return bytes;
}

std::optional<std::vector<std::uint8_t>> make_patch(std::span<const std::uint8_t> container,
                                                    const image::PatchList& runs) {
  std::optional<PlainHeader> plain = plain_header(container);
  if (!plain || runs.count == 0 || runs.count > image::kMaxPatchRuns) return std::nullopt;
  image::Header& header = plain->header;
  const std::uint32_t header_length =
      image::kFixedLength + plain->other_length + image::kRecordHeadLength + 8 * runs.count + 4;
  if (header_length > image::kMaxHeaderLength) return std::nullopt;
  header.header_length = static_cast<std::uint16_t>(header_length);
  std::vector<std::uint8_t> bytes(header_length);
  if (!image::encode_patch(header, runs, bytes.data(), bytes.size(),
                           container.data() + image::kFixedLength, plain->other_length)) {
    return std::nullopt;
  }
  const auto payload = container.subspan(container.size() - header.payload_length);
  for (std::uint32_t i = 0; i < runs.count; ++i) {
    const image::PatchRun& run = runs.runs[i];
    if (run.length == 0 || run.offset > payload.size() ||
        run.length > payload.size() - run.offset) {
      return std::nullopt;
    }
    const auto begin = payload.begin() + static_cast<std::ptrdiff_t>(run.offset);
    bytes.insert(bytes.end(), begin, begin + static_cast<std::ptrdiff_t>(run.length));
  }
  return bytes;
}

}  // namespace rtcanboot::host
