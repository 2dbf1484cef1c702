#include "rtcanboot/host/signing.hpp"

#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <fmt/ranges.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "rtcanboot/bytes.hpp"
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

void sign_container(std::vector<std::uint8_t>& container, const PrivateKey& key,
                    std::uint32_t security_counter) {
  if (container.size() < image::kFixedLength) {
    throw Error(ErrorKind::kInput, "container too short to sign");
  }
  const std::uint16_t header_length = load_le16(container.data() + 6);
  if (header_length < image::kSignedHeaderLength || container.size() < header_length) {
    throw Error(ErrorKind::kInput,
                fmt::format("a signed container needs a header of at least {} bytes, this one "
                            "has {}",
                            image::kSignedHeaderLength, header_length));
  }
  image::SignatureRecord record;
  record.security_counter = security_counter;
  const PublicKey public_key = key.public_key();
  std::copy(public_key.begin(), public_key.end(), record.public_key);
  std::uint8_t message[image::kSignedMessageSize];
  image::signed_message(container.data(), record, message);
  const Signature signature = key.sign(message);
  std::copy(signature.begin(), signature.end(), record.signature);
  if (!image::place_signature_record(container.data(), header_length, image::kFixedLength,
                                     record)) {
    throw Error(ErrorKind::kInternal, "signature record does not fit the header");
  }
}

VerifyReport verify_container(std::span<const std::uint8_t> bytes, const std::string& name,
                              const PublicKey* key) {
  VerifyReport report;
  const Container container = parse_container(bytes, name);
  report.header = container.header;
  const image::RecordsResult records =
      image::find_signature(container.bytes.data(), container.header.header_length, report.record);
  if (!records.check.ok()) {
    throw Error(ErrorKind::kInput,
                fmt::format("{}: malformed records area or signature record (a record's length "
                            "runs past the header, is not a multiple of 4, or the signature "
                            "record has another length, version, flags or a second copy)",
                            name));
  }
  report.has_signature = records.has_signature;
  if (key == nullptr) return report;
  if (!report.has_signature) {
    throw Error(ErrorKind::kRejected, fmt::format("{}: not signed (no signature record)", name));
  }
  if (!std::equal(key->begin(), key->end(), report.record.public_key)) {
    throw Error(ErrorKind::kRejected,
                fmt::format("{}: signed by another key ({:02x}), not by {:02x}", name,
                            fmt::join(report.record.public_key, ""), fmt::join(*key, "")));
  }
  std::uint8_t message[image::kSignedMessageSize];
  image::signed_message(container.bytes.data(), report.record, message);
  Signature signature;
  std::copy(report.record.signature, report.record.signature + signature.size(), signature.begin());
  if (!openssl_verify(*key, message, signature)) {
    throw Error(ErrorKind::kRejected,
                fmt::format("{}: bad signature (the header or the signature record was changed "
                            "after signing, or the signature is damaged)",
                            name));
  }
  report.key_checked = true;
  return report;
}

}  // namespace rtcanboot::host::signing
