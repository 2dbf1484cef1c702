// Ed25519 verification after RFC 8032 §5.1 (edwards25519: -x^2 + y^2 = 1 + d x^2 y^2 over
// GF(p), p = 2^255 - 19). Not constant time: verification handles public data only.
//
// Field elements are eight 32-bit limbs holding any value below 2^256 (not necessarily below p);
// 2^256 = 38 (mod p) folds carries back. freeze() gives the canonical value below p for
// comparisons and encoding. Points use extended coordinates (X:Y:Z:T), x = X/Z, y = Y/Z,
// x y = T/Z, with the addition and doubling formulas of RFC 8032 §5.1.4.
#include "rtcanboot/ed25519.hpp"

#include "rtcanboot/hash.hpp"

namespace rtcanboot::ed25519 {

namespace {

struct Fe {
  std::uint32_t v[8];
};

// d = -121665/121666, 2d, sqrt(-1) = 2^((p-1)/4), and the base point B (x even, y = 4/5).
constexpr Fe kD2 = {{0x26b2f159, 0xebd69b94, 0x8283b156, 0x00e0149a, 0xeef3d130, 0x198e80f2,
                     0x56dffce7, 0x2406d9dc}};
constexpr Fe kD = {{0x135978a3, 0x75eb4dca, 0x4141d8ab, 0x00700a4d, 0x7779e898, 0x8cc74079,
                    0x2b6ffe73, 0x52036cee}};
constexpr Fe kSqrtM1 = {{0x4a0ea0b0, 0xc4ee1b27, 0xad2fe478, 0x2f431806, 0x3dfbd7a7, 0x2b4d0099,
                         0x4fc1df0b, 0x2b832480}};
constexpr Fe kBaseX = {{0x8f25d51a, 0xc9562d60, 0x9525a7b2, 0x692cc760, 0xfdd6dc5c, 0xc0a4e231,
                        0xcd6e53fe, 0x216936d3}};
constexpr Fe kBaseY = {{0x66666658, 0x66666666, 0x66666666, 0x66666666, 0x66666666, 0x66666666,
                        0x66666666, 0x66666666}};
constexpr Fe kP = {{0xffffffed, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff,
                    0xffffffff, 0x7fffffff}};
// Exponents: p - 2 (inversion, Fermat) and (p - 5)/8 (square root, RFC 8032 §5.1.3).
constexpr Fe kPMinus2 = {{0xffffffeb, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff,
                          0xffffffff, 0x7fffffff}};
constexpr Fe kPMinus5Over8 = {{0xfffffffd, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff,
                               0xffffffff, 0xffffffff, 0x0fffffff}};
// The group order L = 2^252 + 27742317777372353535851937790883648493.
constexpr std::uint32_t kL[8] = {0x5cf5d3ed, 0x5812631a, 0xa2f79cd6, 0x14def9de,
                                 0x00000000, 0x00000000, 0x00000000, 0x10000000};

constexpr Fe kZero = {{0, 0, 0, 0, 0, 0, 0, 0}};
constexpr Fe kOne = {{1, 0, 0, 0, 0, 0, 0, 0}};

// Adds 38 * carry (the value of carry * 2^256) until nothing carries out of the top limb.
void fold(Fe& r, std::uint32_t carry) {
  while (carry != 0) {
    std::uint64_t c = std::uint64_t{carry} * 38U;
    for (std::uint32_t& limb : r.v) {
      c += limb;
      limb = static_cast<std::uint32_t>(c);
      c >>= 32;
    }
    carry = static_cast<std::uint32_t>(c);
  }
}

void add(Fe& r, const Fe& a, const Fe& b) {
  std::uint64_t c = 0;
  for (int i = 0; i < 8; ++i) {
    c += std::uint64_t{a.v[i]} + b.v[i];
    r.v[i] = static_cast<std::uint32_t>(c);
    c >>= 32;
  }
  fold(r, static_cast<std::uint32_t>(c));
}

// r = a - b; returns the borrow out of the top limb (no modular correction).
std::uint32_t sub_raw(Fe& r, const Fe& a, const Fe& b) {
  std::uint32_t borrow = 0;
  for (int i = 0; i < 8; ++i) {
    const std::uint64_t d = std::uint64_t{a.v[i]} - b.v[i] - borrow;
    r.v[i] = static_cast<std::uint32_t>(d);
    borrow = static_cast<std::uint32_t>(d >> 32) & 1U;
  }
  return borrow;
}

void sub(Fe& r, const Fe& a, const Fe& b) {
  // A borrow leaves a - b + 2^256 = a - b + 38 (mod p): take 38 away until nothing borrows.
  constexpr Fe k38 = {{38, 0, 0, 0, 0, 0, 0, 0}};
  std::uint32_t borrow = sub_raw(r, a, b);
  while (borrow != 0) borrow = sub_raw(r, r, k38);
}

void mul(Fe& r, const Fe& a, const Fe& b) {
  std::uint32_t t[16] = {};
  for (int i = 0; i < 8; ++i) {
    std::uint64_t c = 0;
    for (int j = 0; j < 8; ++j) {
      // At most (2^32 - 1)^2 + 2 (2^32 - 1) = 2^64 - 1: no overflow.
      c += std::uint64_t{a.v[i]} * b.v[j] + t[i + j];
      t[i + j] = static_cast<std::uint32_t>(c);
      c >>= 32;
    }
    t[i + 8] = static_cast<std::uint32_t>(c);
  }
  std::uint64_t c = 0;
  for (int i = 0; i < 8; ++i) {
    c += std::uint64_t{t[i + 8]} * 38U + t[i];
    r.v[i] = static_cast<std::uint32_t>(c);
    c >>= 32;
  }
  fold(r, static_cast<std::uint32_t>(c));
}

void sq(Fe& r, const Fe& a) {
  mul(r, a, a);
}

// r = a^e, square and multiply over the 255 low bits of e.
void power(Fe& r, const Fe& a, const Fe& e) {
  Fe x = kOne;
  for (int bit = 254; bit >= 0; --bit) {
    sq(x, x);
    if ((e.v[bit / 32] >> (bit % 32)) & 1U) mul(x, x, a);
  }
  r = x;
}

// The canonical value, below p (any value below 2^256 = 2p + 38 needs at most two subtractions).
Fe freeze(const Fe& a) {
  Fe r = a;
  for (int i = 0; i < 2; ++i) {
    Fe t;
    if (sub_raw(t, r, kP) == 0) r = t;
  }
  return r;
}

bool equal(const Fe& a, const Fe& b) {
  const Fe x = freeze(a);
  const Fe y = freeze(b);
  for (int i = 0; i < 8; ++i) {
    if (x.v[i] != y.v[i]) return false;
  }
  return true;
}

bool is_zero(const Fe& a) {
  return equal(a, kZero);
}

struct Point {
  Fe x, y, z, t;
};

// RFC 8032 §5.1.4, "add": complete for edwards25519 (d is not a square), so it also doubles.
void point_add(Point& r, const Point& p, const Point& q) {
  Fe a, b, c, d, e, f, g, h;
  sub(a, p.y, p.x);
  sub(e, q.y, q.x);
  mul(a, a, e);  // A = (Y1 - X1)(Y2 - X2)
  add(b, p.y, p.x);
  add(e, q.y, q.x);
  mul(b, b, e);  // B = (Y1 + X1)(Y2 + X2)
  mul(c, p.t, q.t);
  mul(c, c, kD2);  // C = T1 2d T2
  mul(d, p.z, q.z);
  add(d, d, d);  // D = Z1 2 Z2
  sub(e, b, a);
  sub(f, d, c);
  add(g, d, c);
  add(h, b, a);
  mul(r.x, e, f);
  mul(r.y, g, h);
  mul(r.t, e, h);
  mul(r.z, f, g);
}

// RFC 8032 §5.1.4, "double" (4 multiplications and 4 squarings instead of 9 multiplications).
void point_double(Point& r, const Point& p) {
  Fe a, b, c, e, f, g, h;
  sq(a, p.x);
  sq(b, p.y);
  sq(c, p.z);
  add(c, c, c);
  add(h, a, b);
  add(e, p.x, p.y);
  sq(e, e);
  sub(e, h, e);
  sub(g, a, b);
  add(f, c, g);
  mul(r.x, e, f);
  mul(r.y, g, h);
  mul(r.t, e, h);
  mul(r.z, f, g);
}

Fe load_fe(const std::uint8_t bytes[32]) {
  Fe r;
  for (int i = 0; i < 8; ++i) {
    r.v[i] = std::uint32_t{bytes[4 * i]} | (std::uint32_t{bytes[4 * i + 1]} << 8) |
             (std::uint32_t{bytes[4 * i + 2]} << 16) | (std::uint32_t{bytes[4 * i + 3]} << 24);
  }
  return r;
}

// RFC 8032 §5.1.3, strict: y >= p and x = 0 with the sign bit set are refused.
bool decode_point(Point& r, const std::uint8_t bytes[32]) {
  Fe y = load_fe(bytes);
  const std::uint32_t sign = y.v[7] >> 31;
  y.v[7] &= 0x7fffffffU;
  Fe t;
  if (sub_raw(t, y, kP) == 0) return false;  // y >= p: not canonical
  Fe u, v, v3, x;
  sq(u, y);
  mul(v, u, kD);
  sub(u, u, kOne);  // u = y^2 - 1
  add(v, v, kOne);  // v = d y^2 + 1
  sq(v3, v);
  mul(v3, v3, v);  // v^3
  sq(x, v3);
  mul(x, x, v);
  mul(x, x, u);  // u v^7
  power(x, x, kPMinus5Over8);
  mul(x, x, v3);
  mul(x, x, u);  // x = u v^3 (u v^7)^((p-5)/8)
  Fe check;
  sq(check, x);
  mul(check, check, v);  // v x^2
  if (!equal(check, u)) {
    add(check, check, u);
    if (!is_zero(check)) return false;  // v x^2 is neither u nor -u: no square root
    mul(x, x, kSqrtM1);
  }
  x = freeze(x);
  if ((x.v[0] & 1U) != sign) {
    if (is_zero(x)) return false;  // x = 0 has no negative
    sub(x, kZero, x);
  }
  r.x = x;
  r.y = y;
  r.z = kOne;
  mul(r.t, x, y);
  return true;
}

void encode_point(std::uint8_t bytes[32], const Point& p) {
  Fe inverse, x, y;
  power(inverse, p.z, kPMinus2);
  mul(x, p.x, inverse);
  mul(y, p.y, inverse);
  x = freeze(x);
  y = freeze(y);
  for (int i = 0; i < 32; ++i) bytes[i] = static_cast<std::uint8_t>(y.v[i / 4] >> (8 * (i % 4)));
  bytes[31] = static_cast<std::uint8_t>(bytes[31] | ((x.v[0] & 1U) << 7));
}

bool small_order(const Point& p) {
  Point q;
  point_double(q, p);
  point_double(q, q);
  point_double(q, q);  // [8]P is the neutral element (0, 1) exactly when P has small order
  return is_zero(q.x) && equal(q.y, q.z);
}

bool decode_public_key(Point& r, const std::uint8_t bytes[32]) {
  return decode_point(r, bytes) && !small_order(r);
}

// Scalars (below 2^254) as eight 32-bit limbs, least significant first.
bool less_than_l(const std::uint32_t s[8]) {
  for (int i = 7; i >= 0; --i) {
    if (s[i] != kL[i]) return s[i] < kL[i];
  }
  return false;
}

// The 512-bit little-endian number h modulo L, one bit at a time (r stays below L < 2^253, so
// 2r + 1 fits in 256 bits).
void reduce_mod_l(std::uint32_t r[8], const std::uint8_t h[64]) {
  for (int i = 0; i < 8; ++i) r[i] = 0;
  for (int bit = 511; bit >= 0; --bit) {
    std::uint32_t carry = (h[bit / 8] >> (bit % 8)) & 1U;
    for (int i = 0; i < 8; ++i) {
      const std::uint32_t next = r[i] >> 31;
      r[i] = (r[i] << 1) | carry;
      carry = next;
    }
    if (!less_than_l(r)) {
      std::uint32_t borrow = 0;
      for (int i = 0; i < 8; ++i) {
        const std::uint64_t d = std::uint64_t{r[i]} - kL[i] - borrow;
        r[i] = static_cast<std::uint32_t>(d);
        borrow = static_cast<std::uint32_t>(d >> 32) & 1U;
      }
    }
  }
}

}  // namespace

bool valid_public_key(const std::uint8_t public_key[kPublicKeySize]) {
  Point a;
  return decode_public_key(a, public_key);
}

Verdict verify(const std::uint8_t signature[kSignatureSize],
               const std::uint8_t public_key[kPublicKeySize], const void* message,
               std::size_t length) {
  const std::uint8_t* r_bytes = signature;
  const Fe s_fe = load_fe(signature + 32);
  const std::uint32_t* s = s_fe.v;
  if (!less_than_l(s)) return Verdict::kNonCanonicalS;

  // table[1] = B, table[2] = -A, table[3] = B - A.
  Point table[4];
  if (!decode_public_key(table[2], public_key)) return Verdict::kBadPublicKey;
  sub(table[2].x, kZero, table[2].x);
  sub(table[2].t, kZero, table[2].t);
  table[1].x = kBaseX;
  table[1].y = kBaseY;
  table[1].z = kOne;
  mul(table[1].t, kBaseX, kBaseY);
  point_add(table[3], table[1], table[2]);

  // k = SHA-512(R || A || M) mod L.
  std::uint8_t h[Sha512::kDigestSize];
  Sha512 sha;
  sha.update(r_bytes, 32);
  sha.update(public_key, kPublicKeySize);
  sha.update(message, length);
  sha.finish(h);
  std::uint32_t k[8];
  reduce_mod_l(k, h);

  // [S]B - [k]A by joint double-and-add over both scalars (Straus); both are below L < 2^253.
  Point acc = {kZero, kOne, kOne, kZero};
  for (int bit = 252; bit >= 0; --bit) {
    point_double(acc, acc);
    const unsigned index =
        ((s[bit / 32] >> (bit % 32)) & 1U) | (((k[bit / 32] >> (bit % 32)) & 1U) << 1);
    if (index != 0) point_add(acc, acc, table[index]);
  }
  std::uint8_t encoded[32];
  encode_point(encoded, acc);
  for (int i = 0; i < 32; ++i) {
    if (encoded[i] != r_bytes[i]) return Verdict::kMismatch;
  }
  return Verdict::kValid;
}

}  // namespace rtcanboot::ed25519
