// The SDO server and ProgramDownload together (issue 16, item 17): the whole Bootloader on the
// strict NOR flash fake, with an SDO client that downloads a valid container to 0x1F50:1 by
// segmented or block transfer while the input perturbs the transfer (flipped data bits,
// duplicated or dropped segments, client aborts, long silences, NMT reset communication) and
// interleaves uploads of other objects.
//
// Oracles on meaning:
// - every response matches its request: the same index and subindex, the command specifier and
//   toggle the request calls for, no response to a block segment except the sub-block's
//   acknowledge, and an abort only for the transfer's own object;
// - every expected response comes (within 900 ms of virtual time);
// - a transfer without perturbations completes and commits the image;
// - whenever an image is committed, the application region holds exactly the payload sent, and
//   the transfer that carried it completed;
// - the flash fake sees no violation and the bootloader region stays untouched.
//
// Input: byte 0 = flags (bit 0 block transfer, bit 1 size indicated in a segmented transfer),
// bytes 1..2 = payload length seed, then the payload (repeated as needed), then one byte per
// client step: < 0xC0 normal; 0xC0.. flip a data bit; 0xD0.. duplicate the segment; 0xE0.. drop
// the segment; 0xE8.. upload 0x1F57:1 / 0x1000 / 0x1F56:1 first; 0xF0.. client abort; 0xF8..
// silence of (n - 0xF7) x 400 ms; 0xFF NMT reset communication.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <vector>

#include "fuzz_check.hpp"
#include "image_builder.hpp"
#include "nor_flash_fake.hpp"
#include "rtcanboot/bootloader.hpp"
#include "rtcanboot/bytes.hpp"
#include "rtcanboot/hash.hpp"
#include "rtcanboot/image_format.hpp"
#include "rtcanboot/memory_map.hpp"

namespace {

using namespace rtcanboot;
namespace mm = memory_map;

constexpr std::uint8_t kNode = 5;
constexpr std::uint32_t kRx = 0x600 + kNode;
constexpr std::uint32_t kTx = 0x580 + kNode;
constexpr std::uint32_t kVendor = test::kTestVendor;
constexpr std::uint32_t kProduct = test::kTestProduct;
constexpr Micros kFrameTime = 120;          // one 8-byte frame at 1 Mbit/s, roughly
constexpr Micros kResponseLimit = 900'000;  // an expected response comes within this
constexpr std::uint16_t kIndex = 0x1F50;
constexpr std::uint8_t kSub = 1;

void dump(const char* what, const CanFrame& f) {
  std::fprintf(stderr, "%s: %03X", what, static_cast<unsigned>(f.id));
  for (int i = 0; i < f.dlc; ++i) std::fprintf(stderr, " %02X", f.data[i]);
  std::fprintf(stderr, "\n");
}

class Sink final : public FrameSink {
 public:
  bool send(const CanFrame& frame) override {
    FUZZ_CHECK(frame.flags == 0);
    if (std::getenv("DOWNLOAD_FUZZ_TRACE") != nullptr) dump("server", frame);
    if (frame.id == kTx) {
      FUZZ_CHECK(frame.dlc == 8);
      responses.push_back(frame);
    } else {
      FUZZ_CHECK(frame.id == 0x700 + kNode && frame.dlc == 1);
    }
    return true;
  }
  std::deque<CanFrame> responses;
};

class Input {
 public:
  Input(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
  bool empty() const { return offset_ >= size_; }
  std::uint8_t byte() { return offset_ < size_ ? data_[offset_++] : 0; }
  std::size_t left() const { return size_ - offset_; }
  const std::uint8_t* here() const { return data_ + offset_; }
  void skip(std::size_t n) { offset_ += n < left() ? n : left(); }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t offset_ = 0;
};

std::uint16_t mux_index(const CanFrame& f) {
  return static_cast<std::uint16_t>(f.data[1] | (f.data[2] << 8));
}

class Client {
 public:
  Client(Bootloader& node, Sink& sink, Micros& now, Input& script)
      : node_(node), sink_(sink), now_(now), script_(script) {}

  bool perturbed = false;
  bool completed = false;  // the server confirmed the end of the download
  bool ended = false;      // the transfer is over (completed, aborted by either side, reset)

  // Sends one frame (it reaches the node at the end of its frame time).
  void put(const CanFrame& frame) {
    if (std::getenv("DOWNLOAD_FUZZ_TRACE") != nullptr) dump("client", frame);
    now_ += kFrameTime;
    node_.on_frame(frame, now_);
    node_.poll(now_);
  }
  void idle(Micros duration) {
    const Micros until = now_ + duration;
    while (now_ < until) {
      now_ += Bootloader::kFlashPollInterval;
      node_.poll(now_);
    }
  }
  // Waits for the response to a request; checks that nothing else came meanwhile.
  bool await(CanFrame& response) {
    const Micros deadline = now_ + kResponseLimit;
    while (sink_.responses.empty() && now_ < deadline) {
      now_ += Bootloader::kFlashPollInterval;
      node_.poll(now_);
    }
    if (sink_.responses.empty()) return false;
    response = sink_.responses.front();
    sink_.responses.pop_front();
    FUZZ_CHECK(sink_.responses.empty());  // one request, one response
    return true;
  }
  // Nothing may answer a frame that calls for no response, except an abort of the transfer.
  void expect_silence_or_abort() {
    while (!sink_.responses.empty()) {
      const CanFrame r = sink_.responses.front();
      sink_.responses.pop_front();
      check_abort(r);
      ended = true;
    }
  }
  void check_abort(const CanFrame& r) {
    if (r.data[0] != 0x80 || mux_index(r) != kIndex || r.data[3] != kSub)
      dump("unexpected response", r);
    FUZZ_CHECK(r.data[0] == 0x80);
    FUZZ_CHECK(mux_index(r) == kIndex && r.data[3] == kSub);
    FUZZ_CHECK(load_le32(r.data + 4) != 0);
    FUZZ_CHECK(perturbed);  // a clean transfer of a valid container is never aborted
  }

  // An expedited upload of another object: answered in kind (or with an abort naming it). One
  // transfer runs at a time: an upload initiate during a segmented download cancels the download
  // silently and starts afresh (docs/canopen.md, "SDO server").
  void upload(std::uint16_t index, std::uint8_t sub, bool during_transfer) {
    CanFrame f =
        frame({0x40, static_cast<std::uint8_t>(index), static_cast<std::uint8_t>(index >> 8), sub});
    put(f);
    CanFrame r;
    FUZZ_CHECK(await(r));
    if (during_transfer) {
      perturbed = true;
      ended = true;
    }
    if (mux_index(r) != index || r.data[3] != sub) dump("response to an upload", r);
    FUZZ_CHECK(mux_index(r) == index && r.data[3] == sub);
    FUZZ_CHECK((r.data[0] & 0xF0) == 0x40 || r.data[0] == 0x80);
    if ((r.data[0] & 0xF0) == 0x40)
      FUZZ_CHECK((r.data[0] & 0x03) == 0x03);  // expedited, size given
  }

  static CanFrame frame(std::initializer_list<std::uint8_t> bytes) {
    CanFrame f;
    f.id = kRx;
    f.dlc = 8;
    int i = 0;
    for (const std::uint8_t b : bytes) f.data[i++] = b;
    return f;
  }

  // The script's next step; false when the step ended the transfer (abort, reset).
  enum class Step { kNormal, kFlip, kDuplicate, kDrop };
  Step step(bool segmented_transfer) {
    const std::uint8_t op = script_.byte();
    if (op < 0xC0) return Step::kNormal;
    if (op < 0xD0) {
      perturbed = true;
      return Step::kFlip;
    }
    if (op < 0xE0) {
      perturbed = true;
      return Step::kDuplicate;
    }
    if (op < 0xE8) {
      perturbed = true;
      return Step::kDrop;
    }
    if (op < 0xF0) {
      static constexpr std::uint16_t kObjects[][2] = {{0x1F57, 1}, {0x1000, 0}, {0x1F56, 1}};
      const auto& o = kObjects[op % 3];
      // Inside a block download every frame is a segment (no command specifier): uploads only
      // fit between the transfers of a segmented download.
      if (segmented_transfer) upload(o[0], static_cast<std::uint8_t>(o[1]), true);
      return Step::kNormal;
    }
    perturbed = true;
    if (op < 0xF8) {
      put(frame({0x80, static_cast<std::uint8_t>(kIndex), static_cast<std::uint8_t>(kIndex >> 8),
                 kSub, 0x00, 0x00, 0x00, 0x08}));
      expect_silence_or_abort();
      FUZZ_CHECK(sink_.responses.empty());
      ended = true;
      return Step::kNormal;
    }
    if (op < 0xFF) {
      idle(static_cast<Micros>(op - 0xF7) * 400'000);
      // Past the server's SDO timeout the transfer ends with its abort.
      expect_silence_or_abort();
      return Step::kNormal;
    }
    CanFrame nmt;
    nmt.id = 0x000;
    nmt.dlc = 2;
    nmt.data[0] = 0x82;
    nmt.data[1] = kNode;
    put(nmt);
    FUZZ_CHECK(sink_.responses.empty());  // an NMT reset ends the transfer silently
    ended = true;
    return Step::kNormal;
  }

  void segmented(const std::vector<std::uint8_t>& data, bool size_indicated) {
    put(size_indicated ? frame({0x21, 0x50, 0x1F, kSub, static_cast<std::uint8_t>(data.size()),
                                static_cast<std::uint8_t>(data.size() >> 8),
                                static_cast<std::uint8_t>(data.size() >> 16), 0})
                       : frame({0x20, 0x50, 0x1F, kSub}));
    CanFrame r;
    FUZZ_CHECK(await(r));
    if (r.data[0] == 0x80) {
      check_abort(r);
      return;
    }
    FUZZ_CHECK(r.data[0] == 0x60 && mux_index(r) == kIndex && r.data[3] == kSub);
    std::size_t offset = 0;
    std::uint8_t toggle = 0;
    while (!ended && offset < data.size()) {
      const Step s = step(true);
      if (ended) return;
      const std::size_t n = std::min<std::size_t>(7, data.size() - offset);
      const bool last = offset + n == data.size();
      CanFrame seg = frame({});
      seg.data[0] = static_cast<std::uint8_t>(toggle | ((7 - n) << 1) | (last ? 1 : 0));
      std::memcpy(seg.data + 1, data.data() + offset, n);
      if (s == Step::kFlip)
        seg.data[1 + script_.byte() % n] ^= static_cast<std::uint8_t>(1U << (script_.byte() % 8));
      if (s == Step::kDrop) {
        // A lost segment: the client waits in vain, the server times out.
        idle(1'100'000);
        expect_silence_or_abort();
        ended = true;
        return;
      }
      put(seg);
      FUZZ_CHECK(await(r));  // every download segment is answered
      if (r.data[0] == 0x80) {
        check_abort(r);
        ended = true;
        return;
      }
      FUZZ_CHECK(r.data[0] == (0x20 | toggle));
      if (s == Step::kDuplicate && !last) {
        put(seg);  // the same toggle again: the server must abort (0x05030000)
        FUZZ_CHECK(await(r));
        check_abort(r);
        FUZZ_CHECK(load_le32(r.data + 4) == 0x0503'0000U);
        ended = true;
        return;
      }
      toggle ^= 0x10;
      offset += n;
    }
    completed = !ended;
    ended = true;
  }

  void block(const std::vector<std::uint8_t>& data) {
    const auto size = static_cast<std::uint32_t>(data.size());
    put(frame({0xC6, 0x50, 0x1F, kSub, static_cast<std::uint8_t>(size),
               static_cast<std::uint8_t>(size >> 8), static_cast<std::uint8_t>(size >> 16),
               static_cast<std::uint8_t>(size >> 24)}));
    CanFrame r;
    FUZZ_CHECK(await(r));
    if (r.data[0] == 0x80) {
      check_abort(r);
      return;
    }
    FUZZ_CHECK((r.data[0] & 0xFB) == 0xA0 && mux_index(r) == kIndex && r.data[3] == kSub);
    std::uint32_t block_size = r.data[4];
    FUZZ_CHECK(block_size >= 1 && block_size <= 127);
    std::size_t acked = 0;  // bytes confirmed by the server
    while (!ended && acked < data.size()) {
      std::size_t offset = acked;
      std::uint32_t seq = 0;
      while (!ended && seq < block_size && offset < data.size()) {
        Step s = step(false);
        if (ended) return;
        const std::size_t n = std::min<std::size_t>(7, data.size() - offset);
        const bool last = offset + n == data.size();
        if (last && s == Step::kDuplicate)
          s = Step::kNormal;  // a repeated last segment would
                              // meet the end phase
        ++seq;
        CanFrame seg = frame({});
        seg.data[0] = static_cast<std::uint8_t>(seq | (last ? 0x80 : 0));
        std::memcpy(seg.data + 1, data.data() + offset, n);
        if (s == Step::kFlip)
          seg.data[1 + script_.byte() % n] ^= static_cast<std::uint8_t>(1U << (script_.byte() % 8));
        const bool sub_block_end = last || seq == block_size;
        if (s != Step::kDrop) put(seg);
        // A repeated segment right after a server abort ends the drain and is handled as a
        // request (documented in docs/canopen.md, "the drain", item 2): not modelled here.
        if (s == Step::kDuplicate && sink_.responses.empty()) put(seg);
        offset += n;
        if (s == Step::kDrop && sub_block_end) {
          // The segment that ends the sub-block was lost: no acknowledge comes; the client and
          // the server time out.
          idle(1'100'000);
          expect_silence_or_abort();
          ended = true;
          return;
        }
        if (!sub_block_end) expect_silence_or_abort();
      }
      if (ended) return;
      FUZZ_CHECK(await(r));  // the acknowledge at the end of a sub-block
      if (r.data[0] == 0x80) {
        check_abort(r);
        ended = true;
        return;
      }
      FUZZ_CHECK(r.data[0] == 0xA2);
      const std::uint32_t ack = r.data[1];
      FUZZ_CHECK(ack <= seq);
      acked += std::min<std::size_t>(std::size_t{ack} * 7, data.size() - acked);
      block_size = r.data[2];
      FUZZ_CHECK(block_size >= 1 && block_size <= 127);
    }
    if (ended) return;
    const std::size_t tail = data.size() % 7 == 0 ? 7 : data.size() % 7;
    const std::uint16_t crc = crc16_xmodem(0, data.data(), data.size());
    put(frame({static_cast<std::uint8_t>(0xC1 | ((7 - tail) << 2)), static_cast<std::uint8_t>(crc),
               static_cast<std::uint8_t>(crc >> 8)}));
    FUZZ_CHECK(await(r));
    ended = true;
    if (r.data[0] == 0x80) {
      check_abort(r);
      return;
    }
    FUZZ_CHECK(r.data[0] == 0xA1);
    completed = true;
  }

 private:
  Bootloader& node_;
  Sink& sink_;
  Micros& now_;
  Input& script_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 3 || size > 8192) return 0;
  Input in(data, size);
  const std::uint8_t flags = in.byte();
  const std::uint32_t length = 8 + ((in.byte() | (std::uint32_t{in.byte()} << 8)) % 1500);

  // The payload: a vector table that can start, then the input's bytes (repeated).
  std::vector<std::uint8_t> payload(length);
  const std::size_t source = std::min<std::size_t>(in.left(), length);
  for (std::uint32_t i = 0; i < length; ++i) {
    payload[i] = source == 0 ? static_cast<std::uint8_t>(i) : in.here()[i % source];
  }
  in.skip(source);
  store_le32(payload.data(), mm::kDtcmBase + 0x1000);
  store_le32(payload.data() + 4, mm::kAppAddress | 1U);

  // The unit tests' container builder: kVendor/kProduct are its test identity.
  const std::vector<std::uint8_t> container =
      test::make_container(test::header_for(payload, /*image_version=*/0), payload);
  FUZZ_CHECK(!container.empty());

  // One flash for all runs; what a run changed is blanked again afterwards.
  static std::vector<std::uint8_t> bootloader_pattern;
  static test::NorFlashFake flash(test::NorTiming{50, 400, 1'000, 2'000});
  if (bootloader_pattern.empty()) {
    bootloader_pattern.resize(mm::kBootloaderSize);
    for (std::uint32_t i = 0; i < mm::kBootloaderSize; ++i) {
      bootloader_pattern[i] = static_cast<std::uint8_t>(i * 7 + 1);
    }
    flash.load(0, bootloader_pattern.data(), bootloader_pattern.size());
  }
  flash.reset_touched();

  BootloaderSettings settings;
  settings.identity.vendor_id = kVendor;
  settings.identity.product_code = kProduct;
  settings.heartbeat_ms = 0;
  settings.provisioning.node_id = kNode;
  settings.provisioning.bitrate = 1'000'000;
  static std::vector<std::uint8_t> ring(8 * 1024);
  SoftwareSha256 sha;
  Sink sink;
  Micros now = 1;
  flash.set_now(now);
  {
    Bootloader node(sink, flash, sha, ring, settings);
    node.start(now);
    FUZZ_CHECK(node.pending_action() == PendingAction::kNone);
    sink.responses.clear();

    Client client(node, sink, now, in);
    if ((flags & 1) != 0) {
      client.block(container);
    } else {
      client.segmented(container, (flags & 2) != 0);
    }
    // Let the flash work finish, then ask for the flash status like a master does.
    for (int i = 0; i < 200'000 && node.download().busy(); ++i) {
      now += Bootloader::kFlashPollInterval;
      flash.set_now(now);
      node.poll(now);
    }
    client.idle(1'500'000);  // past every SDO timeout and block drain
    client.expect_silence_or_abort();
    FUZZ_CHECK(!node.download().busy());
    client.upload(0x1F57, 1, false);

    FUZZ_CHECK(flash.violations().empty());
    FUZZ_CHECK(node.refused_flash_requests() == 0);
    FUZZ_CHECK(
        std::memcmp(flash.contents().data(), bootloader_pattern.data(), mm::kBootloaderSize) == 0);
    if (!client.perturbed) FUZZ_CHECK(client.completed && node.installed().valid);
    if (node.installed().valid) {
      FUZZ_CHECK(client.completed);
      FUZZ_CHECK(node.installed().payload_length == length);
      FUZZ_CHECK(std::memcmp(flash.contents().data() + mm::kAppOffset, payload.data(), length) ==
                 0);
    }
  }

  // Blank what the run wrote (erases and programs) for the next run.
  for (const test::NorFlashFake::Operation& op : flash.operations()) {
    if (op.offset + op.length <= flash.contents().size()) {
      std::memset(flash.contents().data() + op.offset, 0xFF, op.length);
    }
  }
  return 0;
}
