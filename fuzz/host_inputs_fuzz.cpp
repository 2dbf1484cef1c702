// libFuzzer target: the host tool's input parsers (ELF, Intel HEX, S-record, container) and the
// application-region check, on arbitrary bytes. The first byte picks the parser.
//
// Invariants: a parser either returns or throws rtcanboot::host::Error (never anything else,
// never crashes); what it returns has no overlapping chunks; a flattened image lies inside the
// application region and starts at its first address.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string_view>

#include "rtcanboot/host/error.hpp"
#include "rtcanboot/host/image.hpp"
#include "rtcanboot/memory_map.hpp"

#include "fuzz_check.hpp"

namespace {

using namespace rtcanboot;
using namespace rtcanboot::host;

void check(const MemoryImage& image) {
  std::uint64_t previous_end = 0;
  for (const auto& [address, data] : image.chunks) {
    FUZZ_CHECK(!data.empty());
    FUZZ_CHECK(address >= previous_end);
    previous_end = std::uint64_t{address} + data.size();
  }
  try {
    const FlatImage flat = flatten_for_application(image);
    FUZZ_CHECK(flat.address == memory_map::kAppAddress);
    FUZZ_CHECK(flat.bytes.size() <= memory_map::kAppSize);
  } catch (const Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::span<const std::uint8_t> bytes(data + 1, size - 1);
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  try {
    switch (data[0] % 5) {
      case 0:
        check(parse_elf(bytes, "f"));
        break;
      case 1:
        check(parse_intel_hex(text, "f"));
        break;
      case 2:
        check(parse_srec(text, "f"));
        break;
      case 3: {
        const Container c = parse_container(bytes, "f");
        FUZZ_CHECK(c.bytes.size() == std::size_t{c.header.header_length} + c.header.payload_length);
        break;
      }
      case 4:
        (void)detect_format(bytes, "f.bin");
        break;
    }
  } catch (const Error&) {
  }
  return 0;
}
