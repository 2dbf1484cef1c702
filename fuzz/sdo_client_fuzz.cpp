// libFuzzer target: the host SDO client fed with arbitrary server frames and time steps, for every
// transfer type.
//
// Input: 1 byte picks the transfer (upload/download x auto/segmented/block, small/large data),
// then operations: 0..5 a server frame (8 data bytes, from the input), 6 a time step (1 byte x
// 10 ms), 7 abort by the client.
//
// Invariants: the client never sends a frame for another node, every frame it sends has DLC 8;
// it never hands out more than 127 + 2 frames between two inputs; a finished upload holds at most
// what the server announced (when announced); once idle it stays idle; after poll(now) while busy
// the deadline lies in the future.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "rtcanboot/host/sdo_client.hpp"

#include "fuzz_check.hpp"

namespace {

using namespace rtcanboot;
using namespace rtcanboot::host;

void drain(SdoClient& client, Micros now) {
  CanFrame f;
  int n = 0;
  while (client.next_frame(f, now)) {
    FUZZ_CHECK(f.id == 0x600U + client.node_id());
    FUZZ_CHECK(f.dlc == 8);
    FUZZ_CHECK(++n <= 129);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  SdoConfig config;
  config.timeout = 100'000;
  config.block_size = static_cast<std::uint8_t>(1 + data[0] % 127);
  config.block_crc = (data[0] & 0x80) != 0;
  SdoClient client(9, config);
  static const SdoMode kModes[] = {SdoMode::kAuto, SdoMode::kSegmented, SdoMode::kBlock};
  const SdoMode mode = kModes[(data[0] >> 1) % 3];
  const bool upload = (data[0] & 1) != 0;
  std::vector<std::uint8_t> payload((data[0] & 0x40) ? 1000 : 3, 0xA5);
  Micros now = 0;
  if (upload) {
    client.start_upload(0x1F50, 1, mode, now);
  } else {
    client.start_download(0x1F50, 1, payload, mode, now);
  }
  drain(client, now);
  std::size_t i = 1;
  while (i < size) {
    const std::uint8_t op = data[i++] & 7;
    if (op <= 5) {
      if (i + 8 > size) break;
      CanFrame f;
      f.id = 0x589;
      f.dlc = 8;
      for (int k = 0; k < 8; ++k) f.data[k] = data[i + static_cast<std::size_t>(k)];
      // Give the fuzzer an easy path to the right object in answers to the initiate request.
      if (op == 0) {
        f.data[1] = 0x50;
        f.data[2] = 0x1F;
        f.data[3] = 1;
      }
      i += 8;
      const bool was_busy = client.busy();
      client.on_frame(f, now);
      if (!was_busy) FUZZ_CHECK(!client.busy());
    } else if (op == 6) {
      if (i >= size) break;
      now += Micros{data[i++]} * 10'000;
      client.poll(now);
      if (client.busy()) FUZZ_CHECK(client.deadline() > now);
    } else {
      client.abort(canopen::Abort::kGeneral);
    }
    drain(client, now);
    if (upload && client.state() == SdoClient::State::kDone && client.bytes_total() != 0) {
      FUZZ_CHECK(client.data().size() <= client.bytes_total());
    }
  }
  return 0;
}
