#include "canopen_fakes.hpp"

#include <gtest/gtest.h>

#include <cstring>

namespace rtcanboot::test {

CanFrame make_frame(std::uint32_t id, std::initializer_list<std::uint8_t> data) {
  CanFrame frame;
  frame.id = id;
  for (std::uint8_t byte : data) frame.data[frame.dlc++] = byte;
  return frame;
}

CanFrame make_frame(std::uint32_t id, const Bytes8& data) {
  CanFrame frame;
  frame.id = id;
  frame.dlc = 8;
  std::memcpy(frame.data, data.data(), 8);
  return frame;
}

Bytes8 payload(const CanFrame& frame) {
  Bytes8 bytes{};
  std::memcpy(bytes.data(), frame.data, 8);
  return bytes;
}

bool RecordingFrameSink::send(const CanFrame& frame) {
  if (refuse_count > 0) {
    --refuse_count;
    ++refused;
    return false;
  }
  frames.push_back(frame);
  return true;
}

CanFrame RecordingFrameSink::pop() {
  if (frames.empty()) {
    ADD_FAILURE() << "expected a frame from the node, got none";
    return CanFrame{};
  }
  CanFrame frame = frames.front();
  frames.pop_front();
  return frame;
}

canopen::Abort FakeDownloadSink::begin(bool size_known, std::uint32_t size) {
  ++begin_calls;
  begin_size_known = size_known;
  begin_size = size;
  if (begin_result == canopen::Abort::kNone) data.clear();
  return begin_result;
}

std::uint32_t FakeDownloadSink::free_space() const {
  return buffered < capacity ? capacity - buffered : 0;
}

canopen::Abort FakeDownloadSink::write(const std::uint8_t* bytes, std::uint32_t length) {
  ++write_calls;
  if (length > free_space()) ++overflow_writes;
  if (data.size() + length > fail_after) return write_result;
  data.insert(data.end(), bytes, bytes + length);
  buffered += length;
  return canopen::Abort::kNone;
}

canopen::Abort FakeDownloadSink::end() {
  ++end_calls;
  return end_result;
}

void FakeDownloadSink::cancel(canopen::Abort reason, CancelCause cause) {
  ++cancel_calls;
  cancel_reason = reason;
  cancel_cause = cause;
}

void FakeDownloadSink::drain(std::uint32_t length) {
  buffered = length < buffered ? buffered - length : 0;
}

DownloadSink* FakeProgramControl::program_data(std::uint8_t sub) {
  subs_asked.push_back(sub);
  return offer_sink ? &sink : nullptr;
}

canopen::Abort FakeProgramControl::control(std::uint8_t sub, std::uint8_t command) {
  control_calls.push_back({sub, command});
  return control_result;
}

std::uint8_t FakeProgramControl::control_state(std::uint8_t sub) const {
  subs_asked.push_back(sub);
  return state;
}

std::uint32_t FakeProgramControl::software_id(std::uint8_t sub) const {
  subs_asked.push_back(sub);
  return id;
}

std::uint32_t FakeProgramControl::flash_status(std::uint8_t sub) const {
  subs_asked.push_back(sub);
  return status;
}

}  // namespace rtcanboot::test
