// Builds image containers and application payloads for tests, the fuzzer and the benchmark.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <vector>

#include "rtcanboot/image_format.hpp"

namespace rtcanboot::test {

// Identity the test bootloaders use (0x1018:1/2); containers are made for it by default.
inline constexpr std::uint32_t kTestVendor = 0x0000'0ABC;
inline constexpr std::uint32_t kTestProduct = 0x0001'0064;

// A payload of `length` bytes that starts with a sane vector table (SP at the top of DTCM,
// reset handler inside the payload, Thumb bit) followed by pseudo-random bytes from `seed`.
std::vector<std::uint8_t> make_payload(std::uint32_t length, std::uint32_t seed);

// The header every test container starts from: for kTestVendor/kTestProduct at the application
// address, with the payload's length, CRC-32 and SHA-256 filled in.
image::Header header_for(const std::vector<std::uint8_t>& payload, std::uint32_t image_version = 1);

// Header bytes (encoded) followed by the payload.
std::vector<std::uint8_t> make_container(const image::Header& header,
                                         const std::vector<std::uint8_t>& payload);
inline std::vector<std::uint8_t> make_container(const std::vector<std::uint8_t>& payload,
                                                std::uint32_t image_version = 1) {
  return make_container(header_for(payload, image_version), payload);
}

// Runs of sectors from {first, count} pairs (as written, unchecked).
image::ExtentList runs(std::initializer_list<image::Extent> list);

// A sparse container: the header of the whole `image` (length, CRC-32, SHA-256), the extents
// record of `extents`, then only those sectors' bytes.
std::vector<std::uint8_t> make_sparse_container(const std::vector<std::uint8_t>& image,
                                                const image::ExtentList& extents,
                                                std::uint32_t image_version = 1);

// A patch container: the header of the whole `image`, the patch record of `patch`, then only
// the bytes of its runs.
std::vector<std::uint8_t> make_patch_container(const std::vector<std::uint8_t>& image,
                                               const image::PatchList& patch,
                                               std::uint32_t image_version = 1);

// The runs of every sector of `image` whose bytes differ from `flash` (the application region
// as it is; the image's last sector compared up to its end, padding 0xFF as the writer does).
image::ExtentList differing_sectors(const std::vector<std::uint8_t>& image,
                                    const std::uint8_t* flash);

// Compressed containers (docs/image-format.md) for the core tests: one raw LZMA1 stream of
// `data` made by liblzma (Debian liblzma-dev) with the format's options (lc 0, lp 1, pb 1, a
// 32 KiB dictionary, preset 9 extreme, end marker).
// Hostile streams for the tests: a larger `dict_size` lets matches reach farther than the
// format's window; a `preset` dictionary lets them reach before the stream's start.
std::vector<std::uint8_t> lzma_stream(const std::uint8_t* data, std::size_t length,
                                      std::uint32_t dict_size = 32 * 1024,
                                      const std::vector<std::uint8_t>* preset = nullptr);
// `container` (plain or sparse) with the compressed flag set, its header CRC recomputed and its
// payload replaced by one lzma_stream() per extent (the whole payload, or each run).
std::vector<std::uint8_t> compress_container(const std::vector<std::uint8_t>& container);

}  // namespace rtcanboot::test
