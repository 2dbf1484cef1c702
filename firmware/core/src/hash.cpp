#include "rtcanboot/hash.hpp"

#include "rtcanboot/bytes.hpp"

namespace rtcanboot {

namespace {

// Table-driven CRC-32; the table is built at compile time so it lives in .rodata (RAM on the
// chip, since the whole bootloader runs from RAM).
constexpr auto make_crc32_table() {
  struct Table {
    std::uint32_t entry[256];
  } table{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int bit = 0; bit < 8; ++bit) c = (c & 1U) ? (0xEDB8'8320U ^ (c >> 1)) : (c >> 1);
    table.entry[i] = c;
  }
  return table;
}
constexpr auto kCrc32Table = make_crc32_table();

constexpr auto make_crc16_table() {
  struct Table {
    std::uint16_t entry[256];
  } table{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i << 8;
    for (int bit = 0; bit < 8; ++bit) c = (c & 0x8000U) ? ((c << 1) ^ 0x1021U) : (c << 1);
    table.entry[i] = static_cast<std::uint16_t>(c);
  }
  return table;
}
constexpr auto kCrc16Table = make_crc16_table();

static_assert(kCrc32Table.entry[1] == 0x7707'3096U, "CRC-32 table (IEEE reflected)");
static_assert(kCrc16Table.entry[1] == 0x1021U, "CRC-16/XMODEM table");

constexpr std::uint32_t kSha256K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

constexpr std::uint32_t rotr(std::uint32_t x, unsigned n) {
  return (x >> n) | (x << (32U - n));
}

}  // namespace

std::uint32_t crc32(std::uint32_t crc, const void* data, std::size_t length) {
  const auto* bytes = static_cast<const std::uint8_t*>(data);
  crc = ~crc;
  for (std::size_t i = 0; i < length; ++i)
    crc = kCrc32Table.entry[(crc ^ bytes[i]) & 0xFFU] ^ (crc >> 8);
  return ~crc;
}

std::uint16_t crc16_xmodem(std::uint16_t crc, const void* data, std::size_t length) {
  const auto* bytes = static_cast<const std::uint8_t*>(data);
  for (std::size_t i = 0; i < length; ++i) {
    crc =
        static_cast<std::uint16_t>((crc << 8) ^ kCrc16Table.entry[((crc >> 8) ^ bytes[i]) & 0xFFU]);
  }
  return crc;
}

void SoftwareSha256::reset() {
  constexpr std::uint32_t kInitial[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                         0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  for (int i = 0; i < 8; ++i) state_[i] = kInitial[i];
  total_length_ = 0;
  buffered_ = 0;
}

void SoftwareSha256::compress(const std::uint8_t block[64]) {
  std::uint32_t w[64];
  for (int i = 0; i < 16; ++i) {
    w[i] = (std::uint32_t{block[4 * i]} << 24) | (std::uint32_t{block[4 * i + 1]} << 16) |
           (std::uint32_t{block[4 * i + 2]} << 8) | std::uint32_t{block[4 * i + 3]};
  }
  for (int i = 16; i < 64; ++i) {
    const std::uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
    const std::uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  std::uint32_t a = state_[0], b = state_[1], c = state_[2], d = state_[3];
  std::uint32_t e = state_[4], f = state_[5], g = state_[6], h = state_[7];
  for (int i = 0; i < 64; ++i) {
    const std::uint32_t t1 =
        h + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + kSha256K[i] + w[i];
    const std::uint32_t t2 =
        (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
    h = g;
    g = f;
    f = e;
    e = d + t1;
    d = c;
    c = b;
    b = a;
    a = t1 + t2;
  }
  state_[0] += a;
  state_[1] += b;
  state_[2] += c;
  state_[3] += d;
  state_[4] += e;
  state_[5] += f;
  state_[6] += g;
  state_[7] += h;
}

void SoftwareSha256::update(const void* data, std::size_t length) {
  const auto* bytes = static_cast<const std::uint8_t*>(data);
  total_length_ += length;
  while (length > 0) {
    if (buffered_ == 0 && length >= 64) {
      compress(bytes);
      bytes += 64;
      length -= 64;
      continue;
    }
    const std::size_t take = (64 - buffered_ < length) ? 64 - buffered_ : length;
    for (std::size_t i = 0; i < take; ++i) buffer_[buffered_ + i] = bytes[i];
    buffered_ += take;
    bytes += take;
    length -= take;
    if (buffered_ == 64) {
      compress(buffer_);
      buffered_ = 0;
    }
  }
}

void SoftwareSha256::finish(std::uint8_t digest[kDigestSize]) {
  const std::uint64_t bit_length = total_length_ * 8U;
  const std::uint8_t pad_start = 0x80;
  update(&pad_start, 1);
  const std::uint8_t zero = 0;
  while (buffered_ != 56) update(&zero, 1);
  std::uint8_t length_bytes[8];
  for (int i = 0; i < 8; ++i)
    length_bytes[i] = static_cast<std::uint8_t>(bit_length >> (56 - 8 * i));
  update(length_bytes, 8);
  for (int i = 0; i < 8; ++i) {
    digest[4 * i] = static_cast<std::uint8_t>(state_[i] >> 24);
    digest[4 * i + 1] = static_cast<std::uint8_t>(state_[i] >> 16);
    digest[4 * i + 2] = static_cast<std::uint8_t>(state_[i] >> 8);
    digest[4 * i + 3] = static_cast<std::uint8_t>(state_[i]);
  }
  reset();
}

std::uint32_t serial_from_unique_id(std::uint32_t cfg0, std::uint32_t cfg1, std::uint32_t cfg2) {
  std::uint8_t words[12];
  store_le32(words, cfg0);
  store_le32(words + 4, cfg1);
  store_le32(words + 8, cfg2);
  return crc32(0, words, sizeof words);
}

}  // namespace rtcanboot
