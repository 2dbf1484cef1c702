// The provisioning request parser (firmware/core/src/provisioning_request.cpp, the bytes a master
// writes to 0x5F05:2) on arbitrary input. Invariants: no crash and no read outside the input
// (ASan: it is copied into a buffer of exactly its length); a request is accepted only at its two
// lengths, with settings a provisioning record can hold (encode_provisioning() takes them); and an
// accepted request encodes back to the same 40 body bytes and carries the key and signature bytes
// of the input unchanged.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "fuzz_check.hpp"
#include "rtcanboot/provisioning_request.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace rtcanboot;
  namespace pr = provisioning_request;
  const std::vector<std::uint8_t> input(data, data + size);
  pr::Request request;
  if (!pr::decode(input.data(), input.size(), request)) return 0;
  FUZZ_CHECK(size == pr::kBodySize || size == pr::kSignedSize);
  FUZZ_CHECK(request.is_signed == (size == pr::kSignedSize));
  std::uint8_t record[kProvisioningRecordSize];
  FUZZ_CHECK(encode_provisioning(request.settings, record, sizeof record));
  std::uint8_t body[pr::kBodySize];
  FUZZ_CHECK(pr::encode_body(request, body));
  for (std::size_t i = 0; i < pr::kBodySize; ++i) FUZZ_CHECK(body[i] == data[i]);
  if (request.is_signed) {
    for (std::size_t i = 0; i < pr::kPublicKeySize; ++i) {
      FUZZ_CHECK(request.public_key[i] == data[pr::kBodySize + i]);
    }
    for (std::size_t i = 0; i < pr::kSignatureSize; ++i) {
      FUZZ_CHECK(request.signature[i] == data[pr::kBodySize + pr::kPublicKeySize + i]);
    }
  }
  return 0;
}
