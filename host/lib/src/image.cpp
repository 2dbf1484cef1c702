#include "rtcanboot/host/image.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "rtcanboot/bytes.hpp"
#include "rtcanboot/hash.hpp"
#include "rtcanboot/host/error.hpp"
#include "rtcanboot/host/signing.hpp"
#include "rtcanboot/memory_map.hpp"

namespace rtcanboot::host {

namespace mm = memory_map;

const char* to_string(InputFormat format) {
  switch (format) {
    case InputFormat::kAuto:
      return "auto";
    case InputFormat::kElf:
      return "ELF";
    case InputFormat::kIntelHex:
      return "Intel HEX";
    case InputFormat::kSrec:
      return "Motorola S-record";
    case InputFormat::kBinary:
      return "raw binary";
    case InputFormat::kContainer:
      return "rtcanboot container";
  }
  return "?";
}

InputFormat parse_input_format(const std::string& name) {
  if (name == "auto") return InputFormat::kAuto;
  if (name == "elf") return InputFormat::kElf;
  if (name == "hex" || name == "ihex") return InputFormat::kIntelHex;
  if (name == "srec" || name == "s19" || name == "s28" || name == "s37" || name == "mot")
    return InputFormat::kSrec;
  if (name == "bin" || name == "binary") return InputFormat::kBinary;
  if (name == "container" || name == "rcb") return InputFormat::kContainer;
  throw Error(
      ErrorKind::kUsage,
      fmt::format("unknown input format '{}' (auto, elf, hex, srec, bin, container)", name));
}

// ---------------------------------------------------------------------------------------------
void MemoryImage::add(std::uint32_t address, std::span<const std::uint8_t> bytes,
                      const std::string& where) {
  if (bytes.empty()) return;
  const std::uint64_t end = std::uint64_t{address} + bytes.size();
  if (end > 0x1'0000'0000ULL) {
    throw Error(
        ErrorKind::kInput,
        fmt::format("{}: data at 0x{:08X} runs past the 4 GiB address space", where, address));
  }
  // Overlap check against the neighbours.
  auto next = chunks.lower_bound(address);
  if (next != chunks.end() && next->first < end) {
    throw Error(ErrorKind::kInput,
                fmt::format("{}: data at 0x{:08X} overlaps data already at 0x{:08X}", where,
                            address, next->first));
  }
  if (next != chunks.begin()) {
    auto prev = std::prev(next);
    const std::uint64_t prev_end = std::uint64_t{prev->first} + prev->second.size();
    if (prev_end > address) {
      throw Error(ErrorKind::kInput,
                  fmt::format("{}: data at 0x{:08X} overlaps data already at 0x{:08X}", where,
                              address, prev->first));
    }
    if (prev_end == address) {
      prev->second.insert(prev->second.end(), bytes.begin(), bytes.end());
      if (next != chunks.end() && next->first == end) {
        prev->second.insert(prev->second.end(), next->second.begin(), next->second.end());
        chunks.erase(next);
      }
      return;
    }
  }
  std::vector<std::uint8_t> data(bytes.begin(), bytes.end());
  if (next != chunks.end() && next->first == end) {
    data.insert(data.end(), next->second.begin(), next->second.end());
    chunks.erase(next);
  }
  chunks.emplace(address, std::move(data));
}

std::uint32_t MemoryImage::lowest() const {
  return chunks.empty() ? 0 : chunks.begin()->first;
}

std::uint64_t MemoryImage::end() const {
  if (chunks.empty()) return 0;
  const auto& last = *chunks.rbegin();
  return std::uint64_t{last.first} + last.second.size();
}

// ---------------------------------------------------------------------------------------------
// ELF: 32-bit little-endian ARM executables. Loadable data comes from PT_LOAD program headers
// (p_filesz bytes from p_offset, placed at the physical address p_paddr, which is where the
// linker put initialised data in flash); p_memsz beyond p_filesz is .bss and not stored.
MemoryImage parse_elf(std::span<const std::uint8_t> b, const std::string& name) {
  auto bad = [&](const std::string& why) -> Error {
    return Error(ErrorKind::kInput, fmt::format("{}: {}", name, why));
  };
  if (b.size() < 52 || b[0] != 0x7F || b[1] != 'E' || b[2] != 'L' || b[3] != 'F')
    throw bad("not an ELF file");
  if (b[4] != 1) throw bad("not a 32-bit ELF file (the i.MX RT1064 is a 32-bit Cortex-M7)");
  if (b[5] != 1) throw bad("not a little-endian ELF file");
  const std::uint16_t type = load_le16(&b[16]);
  const std::uint16_t machine = load_le16(&b[18]);
  if (machine != 40) throw bad(fmt::format("ELF machine {} is not ARM (40)", machine));
  if (type != 2)
    throw bad(fmt::format("ELF type {} is not an executable (linked image expected)", type));
  const std::uint32_t phoff = load_le32(&b[28]);
  const std::uint16_t phentsize = load_le16(&b[42]);
  const std::uint16_t phnum = load_le16(&b[44]);
  if (phnum == 0) throw bad("ELF file has no program headers");
  if (phentsize < 32) throw bad("ELF program header size is too small");
  if (std::uint64_t{phoff} + std::uint64_t{phnum} * phentsize > b.size())
    throw bad("ELF program headers lie beyond the end of the file (truncated?)");
  MemoryImage img;
  img.entry = load_le32(&b[24]);
  for (std::uint16_t i = 0; i < phnum; ++i) {
    const std::uint8_t* ph = &b[phoff + std::size_t{i} * phentsize];
    const std::uint32_t p_type = load_le32(ph + 0);
    const std::uint32_t p_offset = load_le32(ph + 4);
    const std::uint32_t p_paddr = load_le32(ph + 12);
    const std::uint32_t p_filesz = load_le32(ph + 16);
    const std::uint32_t p_memsz = load_le32(ph + 20);
    if (p_type != 1 || p_filesz == 0) continue;  // PT_LOAD with file content only
    if (p_filesz > p_memsz)
      throw bad(fmt::format("program header {}: file size larger than memory size", i));
    if (std::uint64_t{p_offset} + p_filesz > b.size()) {
      throw bad(
          fmt::format("program header {}: data lies beyond the end of the file (truncated?)", i));
    }
    img.add(p_paddr, b.subspan(p_offset, p_filesz), fmt::format("{}: program header {}", name, i));
  }
  if (img.empty()) throw bad("ELF file has no loadable data (no PT_LOAD segment with content)");
  return img;
}

// ---------------------------------------------------------------------------------------------
namespace {

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// Decodes a string of hex pairs; false on odd length or a non-hex character.
bool decode_hex(std::string_view s, std::vector<std::uint8_t>& out) {
  if (s.size() % 2 != 0) return false;
  out.clear();
  for (std::size_t i = 0; i < s.size(); i += 2) {
    const int hi = hex_digit(s[i]);
    const int lo = hex_digit(s[i + 1]);
    if (hi < 0 || lo < 0) return false;
    out.push_back(static_cast<std::uint8_t>(hi << 4 | lo));
  }
  return true;
}

template <typename F>
void for_each_line(std::string_view text, F&& f) {
  std::size_t line_no = 0;
  while (!text.empty()) {
    ++line_no;
    const auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t'))
      line.remove_suffix(1);
    while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
    if (!f(line, line_no)) return;
  }
}

}  // namespace

MemoryImage parse_intel_hex(std::string_view text, const std::string& name) {
  MemoryImage img;
  std::uint32_t base = 0;
  bool eof = false;
  std::vector<std::uint8_t> rec;
  for_each_line(text, [&](std::string_view line, std::size_t n) {
    auto bad = [&](const std::string& why) {
      return Error(ErrorKind::kInput, fmt::format("{}:{}: {}", name, n, why));
    };
    if (line.empty()) return true;
    if (eof) throw bad("data after the end-of-file record");
    if (line[0] != ':') throw bad("Intel HEX record does not start with ':'");
    if (!decode_hex(line.substr(1), rec))
      throw bad("Intel HEX record has a non-hex character or odd length");
    if (rec.size() < 5) throw bad("Intel HEX record is too short");
    const std::size_t count = rec[0];
    if (rec.size() != count + 5) {
      throw bad(fmt::format("Intel HEX record length {} does not match its byte count {}",
                            rec.size() - 5, count));
    }
    std::uint8_t sum = 0;
    for (std::uint8_t v : rec) sum = static_cast<std::uint8_t>(sum + v);
    if (sum != 0) throw bad("Intel HEX record checksum is wrong");
    const std::uint16_t offset = static_cast<std::uint16_t>(rec[1] << 8 | rec[2]);
    const std::uint8_t type = rec[3];
    const std::uint8_t* data = rec.data() + 4;
    switch (type) {
      case 0x00:
        img.add(base + offset, std::span<const std::uint8_t>(data, count),
                fmt::format("{}:{}", name, n));
        break;
      case 0x01:
        eof = true;
        break;
      case 0x02:
        if (count != 2) throw bad("extended segment address record needs 2 bytes");
        base = static_cast<std::uint32_t>((data[0] << 8 | data[1]) << 4);
        break;
      case 0x03:
        if (count != 4) throw bad("start segment address record needs 4 bytes");
        break;
      case 0x04:
        if (count != 2) throw bad("extended linear address record needs 2 bytes");
        base = static_cast<std::uint32_t>(data[0] << 8 | data[1]) << 16;
        break;
      case 0x05:
        if (count != 4) throw bad("start linear address record needs 4 bytes");
        img.entry = std::uint32_t{data[0]} << 24 | std::uint32_t{data[1]} << 16 |
                    std::uint32_t{data[2]} << 8 | data[3];
        break;
      default:
        throw bad(fmt::format("unknown Intel HEX record type {:02X}", type));
    }
    return true;
  });
  if (!eof)
    throw Error(ErrorKind::kInput,
                fmt::format("{}: no end-of-file record (truncated file?)", name));
  if (img.empty()) throw Error(ErrorKind::kInput, fmt::format("{}: no data records", name));
  return img;
}

MemoryImage parse_srec(std::string_view text, const std::string& name) {
  MemoryImage img;
  bool end = false;
  std::vector<std::uint8_t> rec;
  for_each_line(text, [&](std::string_view line, std::size_t n) {
    auto bad = [&](const std::string& why) {
      return Error(ErrorKind::kInput, fmt::format("{}:{}: {}", name, n, why));
    };
    if (line.empty()) return true;
    if (end) throw bad("data after the termination record");
    if (line.size() < 4 || line[0] != 'S') throw bad("S-record does not start with 'S'");
    const char type = line[1];
    if (!decode_hex(line.substr(2), rec))
      throw bad("S-record has a non-hex character or odd length");
    if (rec.empty() || rec.size() != std::size_t{rec[0]} + 1)
      throw bad("S-record byte count does not match its length");
    std::uint8_t sum = 0;
    for (std::size_t i = 0; i + 1 < rec.size(); ++i) sum = static_cast<std::uint8_t>(sum + rec[i]);
    if (static_cast<std::uint8_t>(~sum) != rec.back()) throw bad("S-record checksum is wrong");
    std::size_t addr_len = 0;
    switch (type) {
      case '0':
        return true;  // header
      case '1':
      case '9':
        addr_len = 2;
        break;
      case '2':
      case '8':
        addr_len = 3;
        break;
      case '3':
      case '7':
        addr_len = 4;
        break;
      case '5':
      case '6':
        return true;  // record count
      default:
        throw bad(fmt::format("unknown S-record type S{}", type));
    }
    if (rec.size() < 1 + addr_len + 1) throw bad("S-record too short for its address");
    std::uint32_t address = 0;
    for (std::size_t i = 0; i < addr_len; ++i) address = address << 8 | rec[1 + i];
    if (type >= '7') {
      img.entry = address;
      end = true;
      return true;
    }
    const std::size_t data_len = rec.size() - 2 - addr_len;
    img.add(address, std::span<const std::uint8_t>(rec.data() + 1 + addr_len, data_len),
            fmt::format("{}:{}", name, n));
    return true;
  });
  if (img.empty()) throw Error(ErrorKind::kInput, fmt::format("{}: no data records", name));
  return img;
}

MemoryImage parse_binary(std::span<const std::uint8_t> bytes, std::uint32_t load_address) {
  MemoryImage img;
  if (bytes.empty()) throw Error(ErrorKind::kInput, "the binary file is empty");
  img.add(load_address, bytes, "binary");
  return img;
}

std::optional<InputFormat> detect_format(std::span<const std::uint8_t> b, const std::string& name) {
  if (b.size() >= 4 && b[0] == 0x7F && b[1] == 'E' && b[2] == 'L' && b[3] == 'F')
    return InputFormat::kElf;
  if (b.size() >= 4 && load_le32(b.data()) == image::kMagic) return InputFormat::kContainer;
  std::size_t i = 0;
  while (i < b.size() && std::isspace(b[i])) ++i;
  auto ends_with = [&](const char* ext) {
    const std::size_t n = std::strlen(ext);
    if (name.size() < n) return false;
    for (std::size_t k = 0; k < n; ++k) {
      if (std::tolower(static_cast<unsigned char>(name[name.size() - n + k])) != ext[k])
        return false;
    }
    return true;
  };
  if (ends_with(".bin")) return InputFormat::kBinary;
  if (i < b.size() && b[i] == ':') return InputFormat::kIntelHex;
  if (i + 1 < b.size() && b[i] == 'S' && b[i + 1] >= '0' && b[i + 1] <= '9')
    return InputFormat::kSrec;
  if (ends_with(".hex") || ends_with(".ihex")) return InputFormat::kIntelHex;
  if (ends_with(".srec") || ends_with(".s19") || ends_with(".s28") || ends_with(".s37") ||
      ends_with(".mot"))
    return InputFormat::kSrec;
  if (ends_with(".elf") || ends_with(".axf")) return InputFormat::kElf;
  return std::nullopt;
}

std::vector<std::uint8_t> read_file(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    throw Error(ErrorKind::kInput, fmt::format("{}: is a directory, not a firmware file", path));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw Error(ErrorKind::kInput, fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
  }
  std::vector<std::uint8_t> data;
  try {
    data.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  } catch (const std::exception& e) {
    throw Error(ErrorKind::kInput, fmt::format("{}: read error: {}", path, e.what()));
  }
  if (in.bad()) throw Error(ErrorKind::kInput, fmt::format("{}: read error", path));
  return data;
}

void write_file(const std::string& path, std::span<const std::uint8_t> bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out)
    throw Error(ErrorKind::kInput,
                fmt::format("{}: cannot create: {}", path, std::strerror(errno)));
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) throw Error(ErrorKind::kInput, fmt::format("{}: write error", path));
}

FlatImage flatten_for_application(const MemoryImage& img) {
  if (img.empty()) throw Error(ErrorKind::kInput, "the image has no data");
  for (const auto& [addr, data] : img.chunks) {
    const std::uint64_t end = std::uint64_t{addr} + data.size();
    if (addr < mm::kAppAddress || end > mm::kAppEndAddress) {
      throw Error(ErrorKind::kInput,
                  fmt::format("image data at 0x{:08X}..0x{:08X} lies outside the application "
                              "region 0x{:08X}..0x{:08X}",
                              addr, end - 1, mm::kAppAddress, mm::kAppEndAddress - 1));
    }
  }
  if (img.lowest() != mm::kAppAddress) {
    throw Error(
        ErrorKind::kInput,
        fmt::format(
            "image starts at 0x{:08X}, but an application starts with its vector table at 0x{:08X}",
            img.lowest(), mm::kAppAddress));
  }
  FlatImage flat;
  flat.address = mm::kAppAddress;
  flat.bytes.assign(static_cast<std::size_t>(img.end() - mm::kAppAddress), 0xFF);
  for (const auto& [addr, data] : img.chunks) {
    std::copy(data.begin(), data.end(), flat.bytes.begin() + (addr - mm::kAppAddress));
  }
  if (flat.bytes.size() < image::kMinPayloadLength) {
    throw Error(ErrorKind::kInput, fmt::format("image has only {} bytes; an application has at "
                                               "least a stack pointer and a reset vector",
                                               flat.bytes.size()));
  }
  return flat;
}

std::vector<std::uint8_t> pack(const FlatImage& img, const PackOptions& options) {
  image::Header h;
  h.header_length = options.header_length;
  if (options.sign_with != nullptr && h.header_length < image::kSignedHeaderLength) {
    h.header_length = image::kSignedHeaderLength;
  }
  h.load_address = img.address;
  h.payload_length = static_cast<std::uint32_t>(img.bytes.size());
  h.image_version = options.image_version;
  h.vendor_id = options.vendor_id;
  h.product_code = options.product_code;
  h.flags = 0;
  h.payload_crc32 = crc32(0, img.bytes.data(), img.bytes.size());
  SoftwareSha256 sha;
  sha.update(img.bytes.data(), img.bytes.size());
  sha.finish(h.payload_sha256);
  std::vector<std::uint8_t> out(h.header_length);
  if (!image::encode(h, out.data(), out.size())) {
    throw Error(ErrorKind::kUsage,
                fmt::format("invalid container header length {}", h.header_length));
  }
  if (options.sign_with != nullptr) {
    signing::sign_container(out, *options.sign_with, options.security_counter);
  }
  out.insert(out.end(), img.bytes.begin(), img.bytes.end());
  return out;
}

Container parse_container(std::span<const std::uint8_t> bytes, const std::string& name) {
  Container c;
  image::Expectation expect;
  expect.load_address = mm::kAppAddress;
  expect.max_payload_length = mm::kAppSize;
  // Vendor and product are checked against the node later; accept whatever the file says here.
  if (bytes.size() >= 0x1C) {
    expect.vendor_id = load_le32(bytes.data() + 0x14);
    expect.product_code = load_le32(bytes.data() + 0x18);
  }
  auto r = image::parse(bytes.data(), bytes.size(), expect, c.header);
  if (r.ok() && (c.header.flags & image::kFlagCompressed) != 0) {
    // A compressed container (pack --compress, whole or sparse) stands for its plain form: each
    // extent's stream is decoded alone by the core's decoder.
    const auto plain = decompress_container(bytes);
    if (!plain) {
      throw Error(
          ErrorKind::kInput,
          fmt::format("{}: the compressed container's streams do not decode to its {}", name,
                      (c.header.flags & image::kFlagSparse) != 0 ? "sectors" : "image"));
    }
    return parse_container(*plain, name);
  }
  if (r.ok() && (c.header.flags & image::kFlagSparse) != 0) {
    throw Error(ErrorKind::kInput,
                fmt::format("{}: a sparse container carries only some sectors of its image; give "
                            "the whole image (rtcanboot flash sends only what differs itself)",
                            name));
  }
  if (!r.ok()) {
    throw Error(ErrorKind::kInput,
                fmt::format("{}: not a valid rtcanboot container (flash status {}, detail {})",
                            name, static_cast<int>(r.status), static_cast<int>(r.detail)));
  }
  const std::uint64_t total = std::uint64_t{c.header.header_length} + c.header.payload_length;
  if (bytes.size() != total) {
    throw Error(ErrorKind::kInput, fmt::format("{}: container is {} bytes, its header announces {}",
                                               name, bytes.size(), total));
  }
  const std::uint8_t* payload = bytes.data() + c.header.header_length;
  if (crc32(0, payload, c.header.payload_length) != c.header.payload_crc32) {
    throw Error(ErrorKind::kInput,
                fmt::format("{}: container payload CRC-32 does not match its header", name));
  }
  SoftwareSha256 sha;
  sha.update(payload, c.header.payload_length);
  std::uint8_t digest[32];
  sha.finish(digest);
  if (!std::equal(digest, digest + 32, c.header.payload_sha256)) {
    throw Error(ErrorKind::kInput,
                fmt::format("{}: container payload SHA-256 does not match its header", name));
  }
  c.bytes.assign(bytes.begin(), bytes.end());
  return c;
}

LoadedInput load_input(const std::string& path, const LoadOptions& options) {
  const auto bytes = read_file(path);
  if (bytes.empty()) throw Error(ErrorKind::kInput, fmt::format("{}: the file is empty", path));
  InputFormat format = options.format;
  if (format == InputFormat::kAuto) {
    if (options.load_address) {
      format = InputFormat::kBinary;
    } else if (auto f = detect_format(bytes, path)) {
      format = *f;
    } else {
      throw Error(
          ErrorKind::kInput,
          fmt::format("{}: unknown file format (use --format, or --load-address for a raw binary)",
                      path));
    }
  }
  LoadedInput in;
  in.format = format;
  switch (format) {
    case InputFormat::kContainer:
      in.container = parse_container(bytes, path);
      return in;
    case InputFormat::kElf:
      in.image = flatten_for_application(parse_elf(bytes, path));
      return in;
    case InputFormat::kIntelHex:
      in.image = flatten_for_application(parse_intel_hex(
          std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()), path));
      return in;
    case InputFormat::kSrec:
      in.image = flatten_for_application(parse_srec(
          std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()), path));
      return in;
    case InputFormat::kBinary:
      if (!options.load_address) {
        throw Error(
            ErrorKind::kUsage,
            fmt::format(
                "{}: a raw binary needs --load-address (the application starts at 0x{:08X})", path,
                mm::kAppAddress));
      }
      in.image = flatten_for_application(parse_binary(bytes, *options.load_address));
      return in;
    case InputFormat::kAuto:
      break;
  }
  throw Error(ErrorKind::kInternal, "unhandled input format");
}

}  // namespace rtcanboot::host
