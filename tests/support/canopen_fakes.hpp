// Fakes around the CANopen node: a frame sink that records what the node sends, a download sink
// with a bounded buffer the test drains by hand, and a ProgramControl that records the commands.
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <initializer_list>
#include <vector>

#include "rtcanboot/canopen_defs.hpp"
#include "rtcanboot/program_control.hpp"
#include "rtcanboot/types.hpp"

namespace rtcanboot::test {

using Bytes8 = std::array<std::uint8_t, 8>;

CanFrame make_frame(std::uint32_t id, std::initializer_list<std::uint8_t> data);
CanFrame make_frame(std::uint32_t id, const Bytes8& data);
Bytes8 payload(const CanFrame& frame);

class RecordingFrameSink final : public FrameSink {
 public:
  bool send(const CanFrame& frame) override;

  bool empty() const { return frames.empty(); }
  std::size_t size() const { return frames.size(); }
  CanFrame pop();  // oldest frame; fails the test when there is none

  std::deque<CanFrame> frames;
  std::size_t refuse_count = 0;  // refuse (drop) the next n frames, as a full queue does
  std::size_t refused = 0;
};

// Holds written bytes in a buffer of `capacity` until drain(); everything written is kept in
// `data` for the test to check. Counts writes larger than free_space() as violations.
class FakeDownloadSink final : public DownloadSink {
 public:
  canopen::Abort begin(bool size_known, std::uint32_t size) override;
  std::uint32_t free_space() const override;
  canopen::Abort write(const std::uint8_t* bytes, std::uint32_t length) override;
  canopen::Abort end() override;
  void cancel(canopen::Abort reason, CancelCause cause) override;

  void drain(std::uint32_t length);
  void drain_all() { buffered = 0; }

  std::uint32_t capacity = 1U << 20;
  std::uint32_t buffered = 0;
  std::vector<std::uint8_t> data;

  int begin_calls = 0;
  bool begin_size_known = false;
  std::uint32_t begin_size = 0;
  int write_calls = 0;
  int end_calls = 0;
  int cancel_calls = 0;
  canopen::Abort cancel_reason = canopen::Abort::kNone;
  CancelCause cancel_cause = CancelCause::kServerAbort;
  std::uint32_t overflow_writes = 0;

  canopen::Abort begin_result = canopen::Abort::kNone;
  canopen::Abort end_result = canopen::Abort::kNone;
  // write() fails with write_result once this many bytes have been written in total.
  std::uint32_t fail_after = 0xFFFF'FFFFU;
  canopen::Abort write_result = canopen::Abort::kCannotStore;
};

class FakeProgramControl final : public ProgramControl {
 public:
  DownloadSink* program_data(std::uint8_t sub) override;
  canopen::Abort control(std::uint8_t sub, std::uint8_t command) override;
  std::uint8_t control_state(std::uint8_t sub) const override;
  std::uint32_t software_id(std::uint8_t sub) const override;
  std::uint32_t flash_status(std::uint8_t sub) const override;
  std::uint8_t program_count() const override { return count; }

  FakeDownloadSink sink;
  bool offer_sink = true;
  std::uint8_t count = 1;
  std::uint8_t state = static_cast<std::uint8_t>(canopen::ProgramState::kNoProgram);
  std::uint32_t id = 0x1234'5678;
  std::uint32_t status = 0;
  canopen::Abort control_result = canopen::Abort::kNone;
  struct Call {
    std::uint8_t sub;
    std::uint8_t value;
  };
  std::vector<Call> control_calls;
  mutable std::vector<std::uint8_t> subs_asked;  // sub-indices passed to the getters
};

}  // namespace rtcanboot::test
