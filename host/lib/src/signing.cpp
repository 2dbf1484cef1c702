#include "rtcanboot/host/signing.hpp"

#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "rtcanboot/host/error.hpp"
#include "rtcanboot/host/image.hpp"

namespace rtcanboot::host::signing {

namespace {

struct PkeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;
struct BioFree {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
using Bio = std::unique_ptr<BIO, BioFree>;
struct MdCtxFree {
  void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
};
using MdCtx = std::unique_ptr<EVP_MD_CTX, MdCtxFree>;

// The oldest OpenSSL error of this thread as text (and the queue emptied).
std::string openssl_error() {
  const unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return "unknown OpenSSL error";
  char text[256];
  ERR_error_string_n(code, text, sizeof text);
  return text;
}

[[noreturn]] void fail_internal(const char* what) {
  throw Error(ErrorKind::kInternal, fmt::format("OpenSSL: {}: {}", what, openssl_error()));
}

// Passphrase callback: never prompt (keygen writes unencrypted keys; an encrypted one fails).
int no_passphrase(char*, int, int, void*) {
  return 0;
}

std::string bio_text(BIO* bio) {
  char* data = nullptr;
  const long length = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<std::size_t>(length));
}

std::string read_text(const std::string& path) {
  const std::vector<std::uint8_t> bytes = read_file(path);
  return std::string(bytes.begin(), bytes.end());
}

// Writes `text` to a new file with mode 0600 (O_EXCL unless `replace`; O_NOFOLLOW always).
void write_private(const std::string& path, const std::string& text, bool replace) {
  const int flags = O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC | (replace ? O_TRUNC : O_EXCL);
  const int fd = ::open(path.c_str(), flags, 0600);
  if (fd < 0) {
    throw Error(ErrorKind::kInput,
                fmt::format("{}: cannot create: {}", path, std::strerror(errno)));
  }
  // A replaced file keeps its old mode on open(): set it.
  bool ok = ::fchmod(fd, 0600) == 0;
  std::size_t done = 0;
  while (ok && done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    ok = n > 0;
    if (ok) done += static_cast<std::size_t>(n);
  }
  const int saved = errno;
  ok = (::close(fd) == 0) && ok;
  if (!ok) {
    throw Error(ErrorKind::kInput, fmt::format("{}: write error: {}", path, std::strerror(saved)));
  }
}

}  // namespace

struct PrivateKey::Impl {
  Pkey key;
};

PrivateKey::PrivateKey(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PrivateKey::PrivateKey(PrivateKey&&) noexcept = default;
PrivateKey& PrivateKey::operator=(PrivateKey&&) noexcept = default;
PrivateKey::~PrivateKey() = default;

PrivateKey PrivateKey::generate() {
  EVP_PKEY* raw = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
  if (raw == nullptr) fail_internal("Ed25519 key generation");
  auto impl = std::make_unique<Impl>();
  impl->key.reset(raw);
  return PrivateKey(std::move(impl));
}

PrivateKey PrivateKey::from_seed(const Seed& seed) {
  EVP_PKEY* raw = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, seed.data(), seed.size());
  if (raw == nullptr) fail_internal("Ed25519 private key");
  auto impl = std::make_unique<Impl>();
  impl->key.reset(raw);
  return PrivateKey(std::move(impl));
}

PrivateKey PrivateKey::load(const std::string& path) {
  const std::string text = read_text(path);
  Bio bio(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
  if (!bio) fail_internal("BIO");
  EVP_PKEY* raw = PEM_read_bio_PrivateKey(bio.get(), nullptr, no_passphrase, nullptr);
  if (raw == nullptr) {
    ERR_clear_error();
    throw Error(
        ErrorKind::kInput,
        fmt::format("{}: not an unencrypted PEM private key (rtcanboot keygen writes one)", path));
  }
  auto impl = std::make_unique<Impl>();
  impl->key.reset(raw);
  if (EVP_PKEY_get_id(raw) != EVP_PKEY_ED25519) {
    throw Error(ErrorKind::kInput, fmt::format("{}: not an Ed25519 private key", path));
  }
  return PrivateKey(std::move(impl));
}

PublicKey PrivateKey::public_key() const {
  PublicKey out{};
  std::size_t length = out.size();
  if (EVP_PKEY_get_raw_public_key(impl_->key.get(), out.data(), &length) != 1 ||
      length != out.size()) {
    fail_internal("Ed25519 public key");
  }
  return out;
}

Signature PrivateKey::sign(std::span<const std::uint8_t> message) const {
  MdCtx ctx(EVP_MD_CTX_new());
  Signature out{};
  std::size_t length = out.size();
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, impl_->key.get()) != 1 ||
      EVP_DigestSign(ctx.get(), out.data(), &length, message.data(), message.size()) != 1 ||
      length != out.size()) {
    fail_internal("Ed25519 signing");
  }
  return out;
}

std::string PrivateKey::pem() const {
  Bio bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PrivateKey(bio.get(), impl_->key.get(), nullptr, nullptr, 0, nullptr,
                                       nullptr) != 1) {
    fail_internal("PEM private key");
  }
  return bio_text(bio.get());
}

std::string PrivateKey::public_pem() const {
  Bio bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PUBKEY(bio.get(), impl_->key.get()) != 1) {
    fail_internal("PEM public key");
  }
  return bio_text(bio.get());
}

PublicKey generate_key_files(const std::string& private_path, bool force) {
  const std::string public_path = private_path + ".pub";
  std::error_code ec;
  if (!force) {
    for (const std::string& path : {private_path, public_path}) {
      if (std::filesystem::symlink_status(path, ec).type() !=
          std::filesystem::file_type::not_found) {
        throw Error(ErrorKind::kInput,
                    fmt::format("{}: exists; --force replaces it (the old key is lost)", path));
      }
    }
  }
  const PrivateKey key = PrivateKey::generate();
  write_private(private_path, key.pem(), force);
  const std::string public_text = key.public_pem();
  write_file(public_path, std::span(reinterpret_cast<const std::uint8_t*>(public_text.data()),
                                    public_text.size()));
  return key.public_key();
}

PublicKey parse_public_key_pem(const std::string& pem, const std::string& name) {
  Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) fail_internal("BIO");
  Pkey key(PEM_read_bio_PUBKEY(bio.get(), nullptr, no_passphrase, nullptr));
  if (!key) {
    ERR_clear_error();
    throw Error(ErrorKind::kInput,
                fmt::format("{}: not a PEM public key (rtcanboot keygen writes KEY.pub)", name));
  }
  if (EVP_PKEY_get_id(key.get()) != EVP_PKEY_ED25519) {
    throw Error(ErrorKind::kInput, fmt::format("{}: not an Ed25519 public key", name));
  }
  PublicKey out{};
  std::size_t length = out.size();
  if (EVP_PKEY_get_raw_public_key(key.get(), out.data(), &length) != 1 || length != out.size()) {
    fail_internal("Ed25519 public key");
  }
  return out;
}

PublicKey load_public_key(const std::string& path) {
  return parse_public_key_pem(read_text(path), path);
}

bool openssl_verify(const PublicKey& key, std::span<const std::uint8_t> message,
                    const Signature& signature) {
  Pkey pkey(EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, key.data(), key.size()));
  if (!pkey) {
    ERR_clear_error();
    return false;
  }
  MdCtx ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, pkey.get()) != 1) {
    fail_internal("Ed25519 verification");
  }
  const int result = EVP_DigestVerify(ctx.get(), signature.data(), signature.size(), message.data(),
                                      message.size());
  ERR_clear_error();
  return result == 1;
}

}  // namespace rtcanboot::host::signing
