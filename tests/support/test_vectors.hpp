// Hex text and the RFC 8032 test-vector file, shared by the core's hash and Ed25519 tests and the
// host's OpenSSL cross-check (host/tests adds this folder to its include path).
#pragma once

#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace rtcanboot::test {

inline std::string to_hex(const std::uint8_t* bytes, std::size_t n) {
  static const char* digits = "0123456789abcdef";
  std::string s;
  for (std::size_t i = 0; i < n; ++i) {
    s += digits[bytes[i] >> 4];
    s += digits[bytes[i] & 15];
  }
  return s;
}

// "-" is the empty string (the vector file's notation for an empty message).
inline std::vector<std::uint8_t> from_hex(const std::string& text) {
  std::vector<std::uint8_t> bytes;
  if (text == "-") return bytes;
  for (std::size_t i = 0; i + 1 < text.size(); i += 2) {
    bytes.push_back(static_cast<std::uint8_t>(std::stoul(text.substr(i, 2), nullptr, 16)));
  }
  return bytes;
}

struct Ed25519Vector {
  std::string name;
  std::vector<std::uint8_t> secret, public_key, message, signature;
};

// tests/vectors/ed25519_rfc8032.txt: one vector a line (name, secret key, public key, message,
// signature, all hex); '#' lines are comments.
inline std::vector<Ed25519Vector> rfc8032_vectors(const std::string& path) {
  std::ifstream file(path);
  std::vector<Ed25519Vector> vectors;
  std::string line;
  while (std::getline(file, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream fields(line);
    std::string name, secret, public_key, message, signature;
    fields >> name >> secret >> public_key >> message >> signature;
    vectors.push_back(
        {name, from_hex(secret), from_hex(public_key), from_hex(message), from_hex(signature)});
  }
  return vectors;
}

}  // namespace rtcanboot::test
