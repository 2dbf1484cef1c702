// Input parsers (ELF, Intel HEX, S-record, binary), the application-region check and packing.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <string>

#include "rtcanboot/bytes.hpp"
#include "rtcanboot/hash.hpp"
#include "rtcanboot/host/error.hpp"
#include "rtcanboot/host/image.hpp"
#include "rtcanboot/memory_map.hpp"

namespace rtcanboot::host {
namespace {

namespace mm = memory_map;

struct Seg {
  std::uint32_t type;
  std::uint32_t paddr;
  std::vector<std::uint8_t> data;
  std::uint32_t memsz;
};

// A minimal 32-bit little-endian ARM ELF executable with the given program headers.
std::vector<std::uint8_t> make_elf(const std::vector<Seg>& segs, std::uint16_t machine = 40) {
  const std::uint32_t phoff = 52;
  const std::uint32_t data_at = phoff + 32U * static_cast<std::uint32_t>(segs.size());
  std::vector<std::uint8_t> out(data_at, 0);
  out[0] = 0x7F;
  out[1] = 'E';
  out[2] = 'L';
  out[3] = 'F';
  out[4] = 1;
  out[5] = 1;
  out[6] = 1;
  store_le16(&out[16], 2);
  store_le16(&out[18], machine);
  store_le32(&out[20], 1);
  store_le32(&out[24], mm::kAppAddress + 0x401);
  store_le32(&out[28], phoff);
  store_le16(&out[40], 52);
  store_le16(&out[42], 32);
  store_le16(&out[44], static_cast<std::uint16_t>(segs.size()));
  std::uint32_t offset = data_at;
  for (std::size_t i = 0; i < segs.size(); ++i) {
    std::uint8_t* ph = &out[phoff + 32 * i];
    store_le32(ph + 0, segs[i].type);
    store_le32(ph + 4, offset);
    store_le32(ph + 8, segs[i].paddr >= 0x7000'0000 ? segs[i].paddr : segs[i].paddr);
    store_le32(ph + 12, segs[i].paddr);
    store_le32(ph + 16, static_cast<std::uint32_t>(segs[i].data.size()));
    store_le32(ph + 20, segs[i].memsz);
    offset += static_cast<std::uint32_t>(segs[i].data.size());
  }
  for (const auto& s : segs) out.insert(out.end(), s.data.begin(), s.data.end());
  return out;
}

std::vector<std::uint8_t> bytes(std::size_t n, std::uint8_t start = 0) {
  std::vector<std::uint8_t> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::uint8_t>(start + i);
  return v;
}

ErrorKind kind_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.kind();
  }
  return ErrorKind::kInternal;
}

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Elf, LoadsPtLoadSegmentsAtTheirPhysicalAddress) {
  // Vector table + code, then .data stored after it in flash (paddr), plus a .bss-only segment.
  const auto elf = make_elf({{1, mm::kAppAddress, bytes(64), 64},
                             {1, mm::kAppAddress + 0x100, bytes(16, 0x80), 32},
                             {1, 0x2000'0000, {}, 0x400},
                             {4, 0, bytes(8), 8}});
  const MemoryImage img = parse_elf(elf, "app.elf");
  ASSERT_EQ(img.chunks.size(), 2U);
  EXPECT_EQ(img.lowest(), mm::kAppAddress);
  EXPECT_EQ(img.end(), mm::kAppAddress + 0x110U);
  EXPECT_EQ(*img.entry, mm::kAppAddress + 0x401);
  const FlatImage flat = flatten_for_application(img);
  ASSERT_EQ(flat.bytes.size(), 0x110U);
  EXPECT_EQ(flat.bytes[63], 63);
  EXPECT_EQ(flat.bytes[64], 0xFF);  // gap filled
  EXPECT_EQ(flat.bytes[0xFF], 0xFF);
  EXPECT_EQ(flat.bytes[0x100], 0x80);
}

TEST(Elf, RejectsMalformedFiles) {
  const auto good = make_elf({{1, mm::kAppAddress, bytes(64), 64}});
  EXPECT_EQ(kind_of([&] { parse_elf(std::vector<std::uint8_t>(10, 0), "x"); }), ErrorKind::kInput);
  auto elf64 = good;
  elf64[4] = 2;
  EXPECT_NE(message_of([&] { parse_elf(elf64, "x"); }).find("32-bit"), std::string::npos);
  auto big = good;
  big[5] = 2;
  EXPECT_NE(message_of([&] { parse_elf(big, "x"); }).find("little-endian"), std::string::npos);
  EXPECT_NE(message_of([&] {
              parse_elf(make_elf({{1, mm::kAppAddress, bytes(8), 8}}, 62), "x");
            }).find("not ARM"),
            std::string::npos);
  auto truncated = good;
  truncated.resize(truncated.size() - 10);
  EXPECT_NE(message_of([&] { parse_elf(truncated, "x"); }).find("truncated"), std::string::npos);
  auto bad_phoff = good;
  store_le32(&bad_phoff[28], 0xFFFF'FF00);
  EXPECT_EQ(kind_of([&] { parse_elf(bad_phoff, "x"); }), ErrorKind::kInput);
  EXPECT_NE(message_of([&] {
              parse_elf(make_elf({{1, 0x2000'0000, {}, 64}}), "x");
            }).find("no loadable data"),
            std::string::npos);
  EXPECT_NE(message_of([&] {
              parse_elf(make_elf({{1, mm::kAppAddress, bytes(64), 64},
                                  {1, mm::kAppAddress + 32, bytes(8), 8}}),
                        "x");
            }).find("overlaps"),
            std::string::npos);
}

TEST(IntelHex, ParsesExtendedLinearAddressesAndChecksums) {
  const std::string hex =
      ":02000004700288\n"
      ":10000000000102030405060708090A0B0C0D0E0F78\n"
      ":0400100010111213A6\n"
      ":040000057002040180\n"
      ":00000001FF\n";
  const MemoryImage img = parse_intel_hex(hex, "a.hex");
  ASSERT_EQ(img.chunks.size(), 1U);
  EXPECT_EQ(img.lowest(), mm::kAppAddress);
  EXPECT_EQ(img.chunks.begin()->second.size(), 20U);
  EXPECT_EQ(img.chunks.begin()->second[19], 0x13);
  EXPECT_EQ(*img.entry, 0x7002'0401U);
}

TEST(IntelHex, ReportsTheBadLine) {
  const std::string bad_sum =
      ":02000004700288\n:10000000000102030405060708090A0B0C0D0E0F79\n:00000001FF\n";
  EXPECT_EQ(message_of([&] { parse_intel_hex(bad_sum, "a.hex"); }),
            "a.hex:2: Intel HEX record checksum is wrong");
  EXPECT_NE(message_of([&] { parse_intel_hex(":0200000470\n", "a.hex"); }).find("a.hex:1:"),
            std::string::npos);
  EXPECT_NE(
      message_of([&] { parse_intel_hex("hello\n", "a.hex"); }).find("does not start with ':'"),
      std::string::npos);
  EXPECT_NE(message_of([&] { parse_intel_hex(":0G0000047002\n", "a.hex"); }).find("non-hex"),
            std::string::npos);
  EXPECT_NE(message_of([&] {
              parse_intel_hex(":020000047002880000\n:00000001FF\n", "a.hex");
            }).find("does not match"),
            std::string::npos);
  EXPECT_NE(message_of([&] { parse_intel_hex(":02000004700288\n", "a.hex"); }).find("end-of-file"),
            std::string::npos);
  EXPECT_NE(message_of([&] {
              parse_intel_hex(":00000001FF\n:00000001FF\n", "a.hex");
            }).find("after the end-of-file"),
            std::string::npos);
  EXPECT_NE(message_of([&] {
              parse_intel_hex(":00000007F9\n:00000001FF\n", "a.hex");
            }).find("record type"),
            std::string::npos);
}

std::string srec_line(char type, std::uint32_t address, std::size_t addr_len,
                      const std::vector<std::uint8_t>& data) {
  std::vector<std::uint8_t> rec;
  rec.push_back(static_cast<std::uint8_t>(addr_len + data.size() + 1));
  for (std::size_t i = 0; i < addr_len; ++i)
    rec.push_back(static_cast<std::uint8_t>(address >> (8 * (addr_len - 1 - i))));
  rec.insert(rec.end(), data.begin(), data.end());
  std::uint8_t sum = 0;
  for (auto b : rec) sum = static_cast<std::uint8_t>(sum + b);
  rec.push_back(static_cast<std::uint8_t>(~sum));
  std::string s = fmt::format("S{}", type);
  for (auto b : rec) s += fmt::format("{:02X}", b);
  return s + "\r\n";
}

TEST(Srec, ParsesS3RecordsAndTermination) {
  const std::string text =
      srec_line('0', 0, 2, {'h', 'i'}) + srec_line('3', mm::kAppAddress, 4, bytes(16)) +
      srec_line('3', mm::kAppAddress + 16, 4, bytes(4, 16)) + srec_line('5', 2, 2, {}) +
      srec_line('7', mm::kAppAddress + 0x401, 4, {});
  const MemoryImage img = parse_srec(text, "a.s37");
  ASSERT_EQ(img.chunks.size(), 1U);
  EXPECT_EQ(img.chunks.begin()->second, bytes(20));
  EXPECT_EQ(*img.entry, mm::kAppAddress + 0x401);
  // S1/S2 addressing.
  const MemoryImage s1 = parse_srec(
      srec_line('1', 0x1234, 2, bytes(3)) + srec_line('2', 0x123456, 3, bytes(2)), "a.s19");
  EXPECT_EQ(s1.lowest(), 0x1234U);
  EXPECT_EQ(s1.end(), 0x123458U);
}

TEST(Srec, RejectsMalformedRecords) {
  std::string bad = srec_line('3', mm::kAppAddress, 4, bytes(4));
  bad[bad.size() - 3] = bad[bad.size() - 3] == '0' ? '1' : '0';
  EXPECT_NE(message_of([&] { parse_srec(bad, "b.srec"); }).find("b.srec:1: S-record checksum"),
            std::string::npos);
  EXPECT_NE(message_of([&] { parse_srec("S30500\n", "b.srec"); }).find("byte count"),
            std::string::npos);
  EXPECT_NE(message_of([&] { parse_srec("X1234\n", "b.srec"); }).find("does not start with 'S'"),
            std::string::npos);
  EXPECT_NE(message_of([&] { parse_srec("S4030000FC\n", "b.srec"); }).find("unknown S-record type"),
            std::string::npos);
  EXPECT_NE(message_of([&] { parse_srec(srec_line('0', 0, 2, {}), "b.srec"); }).find("no data"),
            std::string::npos);
}

TEST(Region, RejectsDataOutsideTheApplicationRegion) {
  MemoryImage below;
  below.add(mm::kFlashBase, bytes(16), "t");
  EXPECT_NE(
      message_of([&] { flatten_for_application(below); }).find("outside the application region"),
      std::string::npos);
  MemoryImage records;
  records.add(mm::kAppAddress, bytes(16), "t");
  records.add(mm::kFlashBase + mm::kRecordsOffset, bytes(4), "t");
  EXPECT_EQ(kind_of([&] { flatten_for_application(records); }), ErrorKind::kInput);
  MemoryImage late;
  late.add(mm::kAppAddress + 0x1000, bytes(16), "t");
  EXPECT_NE(message_of([&] { flatten_for_application(late); }).find("vector table"),
            std::string::npos);
  MemoryImage last_byte;
  last_byte.add(mm::kAppAddress, bytes(16), "t");
  last_byte.add(mm::kAppEndAddress - 1, bytes(1), "t");
  EXPECT_EQ(flatten_for_application(last_byte).bytes.size(), mm::kAppSize);
  MemoryImage tiny;
  tiny.add(mm::kAppAddress, bytes(4), "t");
  EXPECT_EQ(kind_of([&] { flatten_for_application(tiny); }), ErrorKind::kInput);
}

TEST(Pack, ContainerHeaderMatchesTheCoreParser) {
  FlatImage flat{mm::kAppAddress, bytes(1000)};
  PackOptions o;
  o.vendor_id = 0x1234;
  o.product_code = 0x42;
  o.image_version = 7;
  const auto c = pack(flat, o);
  ASSERT_EQ(c.size(), image::kDefaultHeaderLength + 1000U);
  image::Expectation e{0x1234, 0x42, mm::kAppAddress, mm::kAppSize};
  image::Header h;
  ASSERT_TRUE(image::parse(c.data(), c.size(), e, h).ok());
  EXPECT_EQ(h.payload_length, 1000U);
  EXPECT_EQ(h.image_version, 7U);
  EXPECT_EQ(h.payload_crc32, crc32(0, flat.bytes.data(), 1000));
  const Container back = parse_container(c, "c.rcb");
  EXPECT_EQ(back.header.vendor_id, 0x1234U);
  // A flipped payload byte is caught before anything is sent.
  auto broken = c;
  broken.back() ^= 1;
  EXPECT_NE(message_of([&] { parse_container(broken, "c.rcb"); }).find("CRC-32"),
            std::string::npos);
  auto cut = c;
  cut.pop_back();
  EXPECT_NE(message_of([&] { parse_container(cut, "c.rcb"); }).find("announces"),
            std::string::npos);
}

TEST(Files, LoadInputDetectsFormatsAndRejectsBadFiles) {
  const auto dir =
      std::filesystem::temp_directory_path() / fmt::format("rtcanboot-image-test-{}", ::getpid());
  std::filesystem::create_directories(dir);
  const auto elf_path = (dir / "a.elf").string();
  write_file(elf_path, make_elf({{1, mm::kAppAddress, bytes(64), 64}}));
  auto in = load_input(elf_path, {});
  EXPECT_EQ(in.format, InputFormat::kElf);
  ASSERT_TRUE(in.image);
  EXPECT_EQ(in.image->bytes.size(), 64U);

  const auto bin_path = (dir / "a.bin").string();
  write_file(bin_path, bytes(32));
  EXPECT_EQ(kind_of([&] { load_input(bin_path, {}); }), ErrorKind::kUsage);  // needs --load-address
  LoadOptions lo;
  lo.load_address = mm::kAppAddress;
  EXPECT_EQ(load_input(bin_path, lo).image->bytes, bytes(32));
  lo.load_address = 0x6000'0000;
  EXPECT_EQ(kind_of([&] { load_input(bin_path, lo); }), ErrorKind::kInput);

  const auto rcb_path = (dir / "a.rcb").string();
  write_file(rcb_path, pack(FlatImage{mm::kAppAddress, bytes(64)}, {}));
  EXPECT_EQ(load_input(rcb_path, {}).format, InputFormat::kContainer);

  const auto junk_path = (dir / "a.txt").string();
  write_file(junk_path, bytes(5, 'a'));
  EXPECT_NE(message_of([&] { load_input(junk_path, {}); }).find("unknown file format"),
            std::string::npos);
  EXPECT_NE(message_of([&] { load_input((dir / "missing.hex").string(), {}); }).find("cannot open"),
            std::string::npos);
  std::filesystem::remove_all(dir);
}

// --- sparse containers ----------------------------------------------------------------------

std::vector<std::uint8_t> plain_container(std::uint32_t length, std::uint16_t header_length = 128) {
  FlatImage image;
  image.address = mm::kAppAddress;
  image.bytes.resize(length);
  for (std::uint32_t i = 0; i < length; ++i) image.bytes[i] = static_cast<std::uint8_t>(i * 7 + 1);
  store_le32(image.bytes.data(), mm::kDtcmBase + 0x1000);
  store_le32(image.bytes.data() + 4, mm::kAppAddress | 1U);
  PackOptions options;
  options.vendor_id = 1;
  options.product_code = 2;
  options.header_length = header_length;
  return pack(image, options);
}

TEST(Sparse, SectorDigestsPadTheLastSectorWithErasedBytes) {
  std::vector<std::uint8_t> payload(4096 + 10, 0x11);
  const auto digests = sector_digests(payload);
  ASSERT_EQ(digests.size(), 2U);
  EXPECT_EQ(digests[0], crc32(0, payload.data(), 4096));
  std::vector<std::uint8_t> last(4096, 0xFF);
  std::fill_n(last.begin(), 10, 0x11);
  EXPECT_EQ(digests[1], crc32(0, last.data(), last.size()));
}

TEST(Sparse, DifferingRunsListWhatDiffersAndMergeTheClosestWhenThereAreTooMany) {
  const std::vector<std::uint32_t> local = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  std::vector<std::uint32_t> node = local;
  node[1] = 0;
  node[2] = 0;
  node[5] = 0;
  node[9] = 0;
  image::ExtentList runs = differing_runs(local, node);
  ASSERT_EQ(runs.count, 3U);
  EXPECT_EQ(runs.runs[0].first_sector, 1);
  EXPECT_EQ(runs.runs[0].sector_count, 2);
  EXPECT_EQ(runs.runs[1].first_sector, 5);
  EXPECT_EQ(runs.runs[2].first_sector, 9);
  // Two runs at most: the smallest gap (sectors 3..4 between the first two) is closed.
  runs = differing_runs(local, node, 2);
  ASSERT_EQ(runs.count, 2U);
  EXPECT_EQ(runs.runs[0].first_sector, 1);
  EXPECT_EQ(runs.runs[0].sector_count, 5);
  EXPECT_EQ(runs.runs[1].first_sector, 9);
  // Sectors the node did not report differ.
  runs = differing_runs(local, std::vector<std::uint32_t>(local.begin(), local.begin() + 8));
  ASSERT_EQ(runs.count, 1U);
  EXPECT_EQ(runs.runs[0].first_sector, 8);
  EXPECT_EQ(differing_runs(local, local).count, 0U);
}

TEST(Sparse, MakeSparseCarriesTheListedSectorsUnderTheWholeImagesHeader) {
  const auto container = plain_container(3 * 4096 + 500);
  image::ExtentList runs;
  runs.runs[runs.count++] = {1, 1};
  runs.runs[runs.count++] = {3, 1};
  const auto sparse = make_sparse(container, runs);
  ASSERT_TRUE(sparse.has_value());
  ASSERT_EQ(sparse->size(), 128U + 4096 + 500);
  const image::Expectation expect{1, 2, mm::kAppAddress, mm::kAppSize};
  image::Header plain_header;
  image::Header header;
  ASSERT_TRUE(image::parse(container.data(), container.size(), expect, plain_header).ok());
  ASSERT_TRUE(image::parse(sparse->data(), sparse->size(), expect, header).ok());
  EXPECT_EQ(header.payload_crc32, plain_header.payload_crc32);
  EXPECT_EQ(header.payload_length, plain_header.payload_length);
  EXPECT_EQ(header.flags & image::kFlagSparse, image::kFlagSparse);
  image::ExtentList parsed;
  ASSERT_TRUE(image::parse_extents(sparse->data(), header, parsed).ok());
  EXPECT_EQ(parsed.count, 2U);
  EXPECT_TRUE(std::equal(sparse->begin() + 128, sparse->begin() + 128 + 4096,
                         container.begin() + 128 + 4096));
  EXPECT_TRUE(
      std::equal(sparse->begin() + 128 + 4096, sparse->end(), container.begin() + 128 + 3 * 4096));
}

TEST(Sparse, MakeSparseKeepsTheOtherRecordsOfThePlainHeader) {
  auto container = plain_container(2 * 4096, 256);
  // A record of another type (as a signature would be) at the start of the records area.
  store_le16(container.data() + 0x48, 0x0001);
  store_le16(container.data() + 0x4A, 8);
  for (int i = 0; i < 8; ++i) container[0x4C + i] = static_cast<std::uint8_t>(0xA0 + i);
  store_le32(container.data() + 252, crc32(0, container.data(), 252));
  image::ExtentList runs;
  runs.runs[runs.count++] = {0, 1};
  const auto sparse = make_sparse(container, runs);
  ASSERT_TRUE(sparse.has_value());
  EXPECT_TRUE(std::equal(sparse->begin() + 0x48, sparse->begin() + 0x54, container.begin() + 0x48));
  const image::Expectation expect{1, 2, mm::kAppAddress, mm::kAppSize};
  image::Header header;
  ASSERT_TRUE(image::parse(sparse->data(), sparse->size(), expect, header).ok());
  image::ExtentList parsed;
  ASSERT_TRUE(image::parse_extents(sparse->data(), header, parsed).ok());
  EXPECT_EQ(parsed.count, 1U);
  // A records area that does not walk to its end is not turned into a sparse container.
  store_le16(container.data() + 0x4A, 400);
  store_le32(container.data() + 252, crc32(0, container.data(), 252));
  EXPECT_FALSE(make_sparse(container, runs).has_value());
}

}  // namespace
}  // namespace rtcanboot::host
