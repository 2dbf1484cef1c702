// SHA-512 against the FIPS 180-4 example messages (NIST CSRC "Examples with Intermediate Values")
// and the one-million-'a' vector; padding boundaries against one-shot hashing.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "rtcanboot/hash.hpp"
#include "test_vectors.hpp"

namespace rtcanboot {
namespace {

using test::to_hex;

std::string sha512_hex(const std::string& message) {
  Sha512 sha;
  sha.update(message.data(), message.size());
  std::uint8_t digest[Sha512::kDigestSize];
  sha.finish(digest);
  return to_hex(digest, sizeof digest);
}

TEST(Sha512, Empty) {
  EXPECT_EQ(sha512_hex(""),
            "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce"
            "47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e");
}
TEST(Sha512, Abc) {
  EXPECT_EQ(sha512_hex("abc"),
            "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
            "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f");
}
TEST(Sha512, Message448Bits) {
  EXPECT_EQ(sha512_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "204a8fc6dda82f0a0ced7beb8e08a41657c16ef468b228a8279be331a703c335"
            "96fd15c13b1b07f9aa1d3bea57789ca031ad85c7a71dd70354ec631238ca3445");
}
TEST(Sha512, Message896Bits) {
  EXPECT_EQ(sha512_hex("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmno"
                       "ijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu"),
            "8e959b75dae313da8cf4f72814fc143f8f7779c6eb9f7fa17299aeadb6889018"
            "501d289e4900f7e4331b99dec4b5433ac7d329eeb6dd26545e96e55b874be909");
}
TEST(Sha512, MillionA) {
  Sha512 sha;
  const std::string chunk(1000, 'a');
  for (int i = 0; i < 1000; ++i) sha.update(chunk.data(), chunk.size());
  std::uint8_t digest[Sha512::kDigestSize];
  sha.finish(digest);
  EXPECT_EQ(to_hex(digest, sizeof digest),
            "e718483d0ce769644e2e42c7bc15b4638e1f98b13b2044285632a803afa973eb"
            "de0ff244877ea60a4cb0432ce577c31beb009c5c2c49aa2e4eadb217ad8cc09b");
}
// Every split of messages around the padding boundaries (111, 112 and 128 bytes) gives the digest
// of one update; finish() leaves the object ready for the next message.
TEST(Sha512, SplitUpdatesMatchOneUpdate) {
  for (std::size_t length : {0U, 1U, 111U, 112U, 113U, 127U, 128U, 129U, 239U, 240U, 300U}) {
    std::string message(length, '\0');
    for (std::size_t i = 0; i < length; ++i) message[i] = static_cast<char>(i * 7 + length);
    const std::string expected = sha512_hex(message);
    for (std::size_t step : {1U, 3U, 64U, 127U}) {
      Sha512 sha;
      sha.update("junk", 4);
      std::uint8_t digest[Sha512::kDigestSize];
      sha.finish(digest);  // resets
      for (std::size_t at = 0; at < length; at += step) {
        sha.update(message.data() + at, std::min(step, length - at));
      }
      sha.finish(digest);
      EXPECT_EQ(to_hex(digest, sizeof digest), expected) << length << " in steps of " << step;
    }
  }
}

}  // namespace
}  // namespace rtcanboot
