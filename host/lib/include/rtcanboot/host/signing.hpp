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

#include "rtcanboot/image_format.hpp"

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

// Adds the signature record (docs/security.md) to a container whose header was just encoded
// with a zero-filled records area of at least image::kSignedHeaderLength bytes: record first in
// the area, signed message signed with `key` (OpenSSL), header CRC recomputed. Throws
// Error(kInput) when the header has no room.
void sign_container(std::vector<std::uint8_t>& container, const PrivateKey& key,
                    std::uint32_t security_counter);

// What `rtcanboot verify` found in a container.
struct VerifyReport {
  image::Header header;
  bool has_signature = false;
  image::SignatureRecord record;
  bool key_checked = false;  // a key was given and the signature verified with it
};

// Checks a container: structure, header CRC, payload CRC-32 and SHA-256 (Error kInput), the
// records area walk (a malformed area or signature record: Error kInput). With `key`: the
// container must carry a signature record by that key whose signature OpenSSL verifies over the
// signed message; otherwise Error(kRejected) says which of: no signature, another key, bad
// signature.
VerifyReport verify_container(std::span<const std::uint8_t> bytes, const std::string& name,
                              const PublicKey* key);

}  // namespace rtcanboot::host::signing
