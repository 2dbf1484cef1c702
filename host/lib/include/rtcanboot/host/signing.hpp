// Ed25519 keys and signatures on the host, with OpenSSL (libcrypto): key files for
// `rtcanboot keygen`, signing, and an independent verifier that the tests hold the firmware's own
// verifier (firmware/core/include/rtcanboot/ed25519.hpp) against. No hand-written crypto here.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace rtcanboot::host::signing {

using PublicKey = std::array<std::uint8_t, 32>;  // RFC 8032 encoding of A
using Seed = std::array<std::uint8_t, 32>;       // RFC 8032 secret key
using Signature = std::array<std::uint8_t, 64>;  // R || S

// Writes a new key pair: `private_path` (PEM PKCS#8 "PRIVATE KEY", mode 0600, never through a
// symbolic link) and `private_path + ".pub"` (PEM SubjectPublicKeyInfo "PUBLIC KEY"). Refuses
// (Error kInput) when either file exists, unless `force`. Returns the public key.
PublicKey generate_key_files(const std::string& private_path, bool force);

// An Ed25519 private key held by OpenSSL.
class PrivateKey {
 public:
  static PrivateKey generate();
  static PrivateKey from_seed(const Seed& seed);
  // A PEM PKCS#8 file as keygen writes it; Error(kInput) for anything else.
  static PrivateKey load(const std::string& path);
  PrivateKey(PrivateKey&&) noexcept;
  PrivateKey& operator=(PrivateKey&&) noexcept;
  ~PrivateKey();

  PublicKey public_key() const;
  Signature sign(std::span<const std::uint8_t> message) const;
  std::string pem() const;         // PKCS#8
  std::string public_pem() const;  // SubjectPublicKeyInfo

 private:
  struct Impl;
  explicit PrivateKey(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// A PEM SubjectPublicKeyInfo file (KEY.pub); Error(kInput) unless it holds an Ed25519 key.
PublicKey load_public_key(const std::string& path);
PublicKey parse_public_key_pem(const std::string& pem, const std::string& name);

// OpenSSL's Ed25519 verification (EVP_DigestVerify), for tests and host-side checks.
bool openssl_verify(const PublicKey& key, std::span<const std::uint8_t> message,
                    const Signature& signature);

}  // namespace rtcanboot::host::signing
