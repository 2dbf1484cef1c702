// The firmware's own Ed25519 verifier and SHA-512 (firmware/core) against OpenSSL: the RFC 8032
// vectors reproduced by OpenSSL from their secret keys, 1,000 random keys and messages signed by
// OpenSSL (each verifies with the core's code; a mutated copy fails in both), SHA-512 on random
// lengths. And the key files of `rtcanboot keygen` (host/lib/src/signing.cpp).
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sys/stat.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "rtcanboot/ed25519.hpp"
#include "rtcanboot/hash.hpp"
#include "rtcanboot/host/error.hpp"
#include "rtcanboot/host/signing.hpp"
#include "test_vectors.hpp"

namespace rtcanboot::host::signing {
namespace {

namespace fs = std::filesystem;
using Bytes = std::vector<std::uint8_t>;

using rtcanboot::test::from_hex;

ed25519::Verdict core_verify(const PublicKey& key, const Bytes& message,
                             const Signature& signature) {
  return ed25519::verify(signature.data(), key.data(), message.data(), message.size());
}

// OpenSSL derives each RFC 8032 §7.1 public key from its secret key and makes the same signature
// (Ed25519 is deterministic): the vector file holds what the RFC says.
TEST(Crypto, OpenSslReproducesTheRfc8032Vectors) {
  int count = 0;
  for (const auto& v :
       test::rfc8032_vectors(RTCANBOOT_SOURCE_DIR "/tests/vectors/ed25519_rfc8032.txt")) {
    const std::string& name = v.name;
    Seed seed{};
    ASSERT_EQ(v.secret.size(), seed.size()) << name;
    std::copy(v.secret.begin(), v.secret.end(), seed.begin());
    const PrivateKey key = PrivateKey::from_seed(seed);
    const PublicKey pub = key.public_key();
    EXPECT_EQ(Bytes(pub.begin(), pub.end()), v.public_key) << name;
    const Signature sig = key.sign(v.message);
    EXPECT_EQ(Bytes(sig.begin(), sig.end()), v.signature) << name;
    EXPECT_TRUE(openssl_verify(pub, v.message, sig)) << name;
    EXPECT_EQ(core_verify(pub, v.message, sig), ed25519::Verdict::kValid) << name;
    ++count;
  }
  EXPECT_EQ(count, 5);
}

// 1,000 random key pairs and messages (0..300 bytes) signed by OpenSSL: the core's verifier
// accepts every signature; a copy with one random bit flipped in R, S, A or the message fails
// with the core and with OpenSSL.
TEST(Crypto, ThousandOpenSslSignaturesVerifyAndMutationsFail) {
  std::mt19937_64 random(20240611);
  int mutated_fields[4] = {};
  for (int i = 0; i < 1000; ++i) {
    const PrivateKey key = PrivateKey::generate();
    const PublicKey pub = key.public_key();
    Bytes message(random() % 301);
    for (std::uint8_t& b : message) b = static_cast<std::uint8_t>(random());
    const Signature sig = key.sign(message);
    ASSERT_EQ(core_verify(pub, message, sig), ed25519::Verdict::kValid) << i;

    PublicKey bad_pub = pub;
    Bytes bad_message = message;
    Signature bad_sig = sig;
    const int field =
        message.empty() ? static_cast<int>(random() % 3) : static_cast<int>(random() % 4);
    ++mutated_fields[field];
    const auto bit = static_cast<std::size_t>(random());
    switch (field) {
      case 0:  // R
        bad_sig[(bit / 8) % 32] ^= static_cast<std::uint8_t>(1U << (bit % 8));
        break;
      case 1:  // S
        bad_sig[32 + (bit / 8) % 32] ^= static_cast<std::uint8_t>(1U << (bit % 8));
        break;
      case 2:  // A
        bad_pub[(bit / 8) % 32] ^= static_cast<std::uint8_t>(1U << (bit % 8));
        break;
      default:
        bad_message[(bit / 8) % bad_message.size()] ^= static_cast<std::uint8_t>(1U << (bit % 8));
        break;
    }
    EXPECT_NE(core_verify(bad_pub, bad_message, bad_sig), ed25519::Verdict::kValid)
        << i << " field " << field;
    EXPECT_FALSE(openssl_verify(bad_pub, bad_message, bad_sig)) << i << " field " << field;
  }
  for (int count : mutated_fields) EXPECT_GT(count, 150);
}

TEST(Crypto, Sha512MatchesOpenSsl) {
  std::mt19937_64 random(7);
  for (int i = 0; i < 200; ++i) {
    Bytes message(random() % 1000);
    for (std::uint8_t& b : message) b = static_cast<std::uint8_t>(random());
    std::uint8_t expected[64];
    unsigned int length = 0;
    ASSERT_EQ(EVP_Digest(message.data(), message.size(), expected, &length, EVP_sha512(), nullptr),
              1);
    Sha512 sha;
    const std::size_t split = message.empty() ? 0 : random() % message.size();
    sha.update(message.data(), split);
    sha.update(message.data() + split, message.size() - split);
    std::uint8_t digest[64];
    sha.finish(digest);
    EXPECT_EQ(Bytes(digest, digest + 64), Bytes(expected, expected + 64)) << message.size();
  }
}

class KeyFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = fs::temp_directory_path() / ("rtcanboot-keys-" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  void TearDown() override { fs::remove_all(dir); }
  fs::path dir;
};

std::string slurp(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST_F(KeyFiles, KeygenWritesPkcs8PrivateAndSpkiPublicKey) {
  const std::string key = (dir / "vendor.key").string();
  const PublicKey pub = generate_key_files(key, false);
  struct stat st {};
  ASSERT_EQ(::stat(key.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600U);
  EXPECT_EQ(slurp(key).rfind("-----BEGIN PRIVATE KEY-----\n", 0), 0U);
  EXPECT_EQ(slurp(key + ".pub").rfind("-----BEGIN PUBLIC KEY-----\n", 0), 0U);
  EXPECT_EQ(load_public_key(key + ".pub"), pub);
  const PrivateKey loaded = PrivateKey::load(key);
  EXPECT_EQ(loaded.public_key(), pub);
  const Bytes message = {1, 2, 3};
  EXPECT_EQ(core_verify(pub, message, loaded.sign(message)), ed25519::Verdict::kValid);
  EXPECT_TRUE(ed25519::valid_public_key(pub.data()));
}

TEST_F(KeyFiles, KeygenRefusesToOverwriteWithoutForce) {
  const std::string key = (dir / "vendor.key").string();
  const PublicKey first = generate_key_files(key, false);
  const std::string before = slurp(key);
  try {
    generate_key_files(key, false);
    FAIL() << "overwrote " << key;
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kInput);
    EXPECT_NE(std::string(e.what()).find("--force"), std::string::npos) << e.what();
  }
  EXPECT_EQ(slurp(key), before);
  // Only the .pub present still refuses (a key pair is written together).
  const std::string other = (dir / "other.key").string();
  std::ofstream(other + ".pub") << "x";
  EXPECT_THROW(generate_key_files(other, false), Error);
  EXPECT_FALSE(fs::exists(other));
  // --force replaces both, and a replaced 0644 file becomes 0600.
  ::chmod(key.c_str(), 0644);
  const PublicKey second = generate_key_files(key, true);
  EXPECT_NE(first, second);
  EXPECT_EQ(load_public_key(key + ".pub"), second);
  struct stat st {};
  ASSERT_EQ(::stat(key.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600U);
}

TEST_F(KeyFiles, KeygenNeverWritesThroughASymlink) {
  const std::string target = (dir / "elsewhere").string();
  std::ofstream(target) << "precious";
  const std::string key = (dir / "link.key").string();
  fs::create_symlink(target, key);
  EXPECT_THROW(generate_key_files(key, false), Error);
  EXPECT_THROW(generate_key_files(key, true), Error);
  EXPECT_EQ(slurp(target), "precious");
}

TEST_F(KeyFiles, MalformedKeyFilesAreInputErrors) {
  const std::string junk = (dir / "junk.pem").string();
  std::ofstream(junk) << "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n";
  for (auto load : {+[](const std::string& p) { load_public_key(p); },
                    +[](const std::string& p) { PrivateKey::load(p); }}) {
    try {
      load(junk);
      FAIL();
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kInput) << e.what();
    }
  }
  // A private key where a public one belongs, and an RSA-free but non-Ed25519 key (X25519).
  const std::string key = (dir / "k").string();
  generate_key_files(key, false);
  EXPECT_THROW(load_public_key(key), Error);
  EXPECT_THROW(PrivateKey::load(key + ".pub"), Error);
  EXPECT_THROW(load_public_key((dir / "missing").string()), Error);
}

// A passphrase-protected private key is refused at once (no prompt on the terminal).
TEST_F(KeyFiles, EncryptedPrivateKeyIsRefusedWithoutPrompt) {
  EVP_PKEY* key = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
  ASSERT_NE(key, nullptr);
  BIO* bio = BIO_new(BIO_s_mem());
  char passphrase[] = "secret";
  ASSERT_EQ(
      PEM_write_bio_PKCS8PrivateKey(bio, key, EVP_aes_256_cbc(), passphrase, 6, nullptr, nullptr),
      1);
  char* data = nullptr;
  const long length = BIO_get_mem_data(bio, &data);
  const std::string path = (dir / "encrypted.key").string();
  std::ofstream(path) << std::string(data, static_cast<std::size_t>(length));
  BIO_free(bio);
  EVP_PKEY_free(key);
  EXPECT_EQ(slurp(path).rfind("-----BEGIN ENCRYPTED PRIVATE KEY-----", 0), 0U);
  try {
    PrivateKey::load(path);
    FAIL() << "loaded an encrypted key";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kInput);
    EXPECT_NE(std::string(e.what()).find("unencrypted"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace rtcanboot::host::signing
