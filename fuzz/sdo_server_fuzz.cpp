// libFuzzer target: a CanopenNode fed with a sequence of frames and time steps decoded from the
// input, with a fake ProgramControl whose download sink has a small, changing amount of room.
//
// Input: 4 configuration bytes, then operations, each one opcode byte followed by its operands:
//   0..3 SDO request to the node (8 data bytes)      4 time step (2 bytes, x 37 us) + poll
//   5    sink: drain / resize / fail next call (1)    6 NMT frame (2 bytes), DLC from the opcode
//   7    any frame: id (2 bytes), DLC (1), data (8)
//
//   opcode 3 is the client's next block download segment (seqno = last + 1; operand bit 0 = c)
//
// Invariants: every frame the node sends is an SDO response (0x580 + id, DLC 8) or a boot-up /
// heartbeat (0x700 + id, DLC 1); the sink never gets more than free_space() and sees calls only
// in the order begin, write*, end | cancel; after poll(now) the next deadline lies in the future.
// CiA 301 after an interrupted block download (issue 16, defects 1 and 2): a client model follows
// the block download sub-blocks from the node's own answers; once the transfer ended inside a
// sub-block (server abort, client abort, timeout, NMT), the rest of that sub-block, sent in
// sequence within NodeConfig::block_drain_time, gets no response at all.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "rtcanboot/canopen_node.hpp"

#include "fuzz_check.hpp"

namespace {

using rtcanboot::CanFrame;
using rtcanboot::Micros;
using rtcanboot::canopen::Abort;

constexpr std::uint8_t kNodeId = 0x21;

class Input {
 public:
  Input(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
  bool empty() const { return offset_ >= size_; }
  std::uint8_t byte() { return offset_ < size_ ? data_[offset_++] : 0; }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t offset_ = 0;
};

class CheckingFrameSink final : public rtcanboot::FrameSink {
 public:
  bool send(const CanFrame& frame) override {
    // CiA 305: LSS may give the node another node-ID, which it takes at reset communication.
    const std::uint32_t id = node != nullptr ? node->node_id() : kNodeId;
    const bool sdo = frame.id == 0x580U + id && frame.dlc == 8;
    const bool heartbeat = frame.id == 0x700U + id && frame.dlc == 1;
    // CiA 305: the node's LSS slave answers a master's request (0x7E5) on 0x7E4.
    const bool lss_answer = frame.id == 0x7E4U && frame.dlc == 8;
    FUZZ_CHECK(sdo || heartbeat || lss_answer);
    FUZZ_CHECK(frame.flags == 0);
    if (sdo) {
      ++sdo_frames;
      sent.push_back(frame);
    }
    // Now and then the queue is full, as on a busy bus.
    return refuse_every == 0 || ++count % refuse_every != 0;
  }
  const rtcanboot::CanopenNode* node = nullptr;
  unsigned refuse_every = 0;
  unsigned count = 0;
  unsigned sdo_frames = 0;     // attempted, refused ones included
  std::vector<CanFrame> sent;  // SDO frames not yet looked at by the client model
};

// The client's view of a block download, built from what it sent and what the node answered.
struct BlockModel {
  bool sub_block = false;  // a sub-block is open: the node takes every frame as a segment
  std::uint8_t block_size = 0;
  std::uint8_t last = 0;   // sequence number of the last frame sent inside the sub-block
  bool over = false;       // that sub-block's last segment (seqno = block size, or c = 1) was sent
  std::uint8_t c_seq = 0;  // sequence number of the segment with c = 1 in this sub-block
  bool draining = false;   // the transfer ended inside the sub-block: its rest must get no answer
  std::uint8_t bound = 0;
  Micros since = 0;
};

class CheckingSink final : public rtcanboot::DownloadSink {
 public:
  Abort begin(bool, std::uint32_t) override {
    FUZZ_CHECK(!active);
    const Abort result = take_failure();
    active = result == Abort::kNone;
    return result;
  }
  std::uint32_t free_space() const override {
    return capacity > buffered ? capacity - buffered : 0;
  }
  Abort write(const std::uint8_t* data, std::uint32_t length) override {
    FUZZ_CHECK(active);
    FUZZ_CHECK(length > 0);
    FUZZ_CHECK(length <= free_space());
    std::uint32_t sum = 0;
    for (std::uint32_t i = 0; i < length; ++i) sum += data[i];  // touches every byte (ASan)
    checksum += sum;
    buffered += length;
    const Abort result = take_failure();
    if (result != Abort::kNone) active = false;
    return result;
  }
  Abort end() override {
    FUZZ_CHECK(active);
    active = false;
    return take_failure();
  }
  void cancel(Abort, rtcanboot::CancelCause) override {
    FUZZ_CHECK(active);
    active = false;
  }

  Abort take_failure() {
    const Abort result = fail_next;
    fail_next = Abort::kNone;
    return result;
  }

  bool active = false;
  std::uint32_t capacity = 2048;
  std::uint32_t buffered = 0;
  std::uint32_t checksum = 0;
  Abort fail_next = Abort::kNone;
};

class FakeProgram final : public rtcanboot::ProgramControl {
 public:
  rtcanboot::DownloadSink* program_data(std::uint8_t sub) override {
    FUZZ_CHECK(sub >= 1 && sub <= count);
    return &sink;
  }
  Abort control(std::uint8_t sub, std::uint8_t command) override {
    FUZZ_CHECK(sub >= 1 && sub <= count);
    return command <= 3 ? Abort::kNone : Abort::kValueRange;
  }
  std::uint8_t control_state(std::uint8_t) const override { return 3; }
  std::uint32_t software_id(std::uint8_t) const override { return 0x1234'5678; }
  std::uint32_t flash_status(std::uint8_t) const override { return 0; }
  std::uint8_t program_count() const override { return count; }

  CheckingSink sink;
  std::uint8_t count = 1;
};

CanFrame read_frame(Input& input, std::uint32_t id, std::uint8_t dlc) {
  CanFrame frame;
  frame.id = id;
  frame.dlc = dlc;
  for (std::uint8_t i = 0; i < dlc; ++i) frame.data[i] = input.byte();
  return frame;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Input input(data, size);
  const std::uint8_t flags = input.byte();
  const std::uint8_t reserve = input.byte();
  const std::uint8_t hold = input.byte();
  const std::uint8_t timeout = input.byte();

  rtcanboot::RtcanbootInfo info;
  rtcanboot::NodeConfig config;
  config.node_id = kNodeId;
  config.device_name = "a device name longer than one sub-block of seven-byte segments, surely";
  config.software_version = (flags & 0x01) != 0 ? "" : "1.0.0";
  config.is_application = (flags & 0x02) != 0;
  config.info = (flags & 0x04) != 0 ? &info : nullptr;
  config.heartbeat_ms = (flags & 0x08) != 0 ? 0 : 10;
  config.pacing_reserve = reserve * 8U;
  config.max_ack_hold = hold * 100U;
  config.sdo_timeout = 1000U + timeout * 1000U;

  CheckingFrameSink frames;
  frames.refuse_every = (flags >> 4) & 0x03;
  FakeProgram program;
  program.count = (flags & 0x40) != 0 ? 2 : 1;
  rtcanboot::CanopenNode node(frames, program, config);
  frames.node = &node;

  Micros now = 0;
  node.start(now);
  BlockModel model;
  // The node's answers move the model: a block download initiate response opens the first
  // sub-block, an acknowledge the next one, or the end phase after the segment with c = 1.
  bool initiate_sent = false;
  auto observe = [&] {
    for (const CanFrame& reply : frames.sent) {
      const std::uint8_t r = reply.data[0];
      if (initiate_sent && (r & 0xE3) == 0xA0) {
        model.sub_block = true;
        model.block_size = reply.data[4];
        model.last = 0;
        model.over = false;
        model.c_seq = 0;
      } else if (model.sub_block && r == 0xA2) {
        if (model.c_seq != 0 && reply.data[1] == model.c_seq) {
          model.sub_block = false;  // end phase
        } else {
          model.block_size = reply.data[2];
          model.last = 0;
          model.over = false;
          model.c_seq = 0;
        }
      }
      initiate_sent = false;
    }
    frames.sent.clear();
    initiate_sent = false;
  };
  // Sends an SDO request and follows the block download in the model.
  auto send_sdo = [&](const CanFrame& frame) {
    const std::uint8_t first = frame.data[0];
    bool continuation = false;
    if (model.draining) {
      continuation = now - model.since < config.block_drain_time &&
                     (first & 0x7F) == model.last + 1 && model.last + 1 <= model.bound;
      model.draining = false;
      if (continuation) {
        model.last = first & 0x7F;
        model.since = now;
        model.draining = (first & 0x80) == 0 && model.last < model.bound;
      }
    }
    // Inside a sub-block the node takes the frame as a segment (0x80 is the client's abort; while
    // the acknowledge is held back, frames are ignored).
    if (model.sub_block && !model.over && first != 0x80) {
      model.last = first & 0x7F;
      if ((first & 0x80) != 0) model.c_seq = model.last;
      model.over = (first & 0x80) != 0 || model.last == model.block_size;
    }
    const unsigned before = frames.sdo_frames;
    initiate_sent = !model.sub_block && !continuation && (first & 0xE1) == 0xC0;
    node.on_frame(frame, now);
    // The oracle: the rest of an interrupted sub-block is never a request.
    if (continuation) FUZZ_CHECK(frames.sdo_frames == before);
  };
  while (!input.empty()) {
    const std::uint8_t opcode = input.byte();
    switch (opcode & 0x07) {
      case 0:
      case 1:
      case 2:
        send_sdo(read_frame(input, 0x600U + kNodeId, 8));
        break;
      case 3: {
        CanFrame segment = read_frame(input, 0x600U + kNodeId, 8);
        const std::uint8_t next = model.draining || model.sub_block ? model.last + 1 : 1;
        segment.data[0] = static_cast<std::uint8_t>((next & 0x7F) | ((segment.data[0] & 1) << 7));
        send_sdo(segment);
        break;
      }
      case 4: {
        const std::uint32_t steps = input.byte() | (input.byte() << 8U);
        now += steps * 37U;
        node.poll(now);
        FUZZ_CHECK(node.next_deadline() > now);
        break;
      }
      case 5: {
        const std::uint8_t value = input.byte();
        switch (opcode >> 6) {
          case 0:
            program.sink.buffered -=
                program.sink.buffered < value * 8U ? program.sink.buffered : value * 8U;
            break;
          case 1:
            program.sink.capacity = value * 16U;  // may shrink below what is buffered
            break;
          case 2:
            program.sink.buffered = 0;
            break;
          default:
            program.sink.fail_next = value < 128 ? Abort::kCannotStore : Abort::kGeneral;
            break;
        }
        break;
      }
      case 6:
        node.on_frame(read_frame(input, 0x000, static_cast<std::uint8_t>((opcode >> 3) % 4)), now);
        break;
      default: {
        const std::uint32_t id = (input.byte() | (input.byte() << 8U)) & 0x7FFU;
        const auto dlc = static_cast<std::uint8_t>(input.byte() % 9);
        const CanFrame frame = read_frame(input, id, dlc);
        if (id == 0x600U + kNodeId && dlc == 8) {
          send_sdo(frame);
        } else {
          node.on_frame(frame, now);
        }
        break;
      }
    }
    observe();
    // A transfer that ended inside an unfinished sub-block: the rest of it is drained.
    if (model.sub_block && !node.transfer_active()) {
      model.sub_block = false;
      if (!model.over) {
        model.draining = true;
        model.bound = model.last > model.block_size ? 127 : model.block_size;
        model.since = now;
        if (model.last >= model.bound) model.draining = false;
      }
    }
    if (!node.transfer_active()) model.sub_block = false;
    // The sink is never left mid-download once the node has no transfer.
    if (!node.transfer_active()) FUZZ_CHECK(!program.sink.active);
  }
  // Silence ends every transfer: the SDO timeout cleans up (a forced acknowledge or a retried
  // segment counts as activity, so it may take a few rounds).
  for (int round = 0; round < 300 && node.transfer_active(); ++round) {
    now += config.sdo_timeout + config.max_ack_hold + 1;
    node.poll(now);
  }
  FUZZ_CHECK(!node.transfer_active());
  FUZZ_CHECK(!program.sink.active);
  return 0;
}
