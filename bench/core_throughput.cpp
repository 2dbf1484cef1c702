// Core throughput benchmark (prints figures; not a test).
//
// A simulated CANopen master (the host library's SdoClient, in virtual time) downloads a 1 MiB
// container into 0x1F50:1 of a Bootloader with SDO block transfer at 1 Mbit/s. Every frame takes
// its bit-accurate time (can_timing, stuff bits included), frames follow each other without gaps
// and the master answers instantly, so what remains is the bootloader: its pacing, its flash
// work (NOR fake with typical and maximum W25Q32JV timings) and its response delays.
//
// Figures: transfer time, efficiency against the SDO block bus limit (the same frames back to
// back with zero turnaround), time until the COMMIT, and the largest SDO response delay (from the
// end of the master's frame that needs an answer to the start of the answer).
#include <algorithm>
#include <cstdio>
#include <deque>
#include <vector>

#include "image_builder.hpp"
#include "nor_flash_fake.hpp"
#include "rtcanboot/bootloader.hpp"
#include "rtcanboot/bytes.hpp"
#include "rtcanboot/can_timing.hpp"
#include "rtcanboot/hash.hpp"
#include "rtcanboot/host/sdo_client.hpp"
#include "rtcanboot/install_journal.hpp"
#include "rtcanboot/memory_map.hpp"

namespace {

using namespace rtcanboot;

constexpr std::uint32_t kBitrate = 1'000'000;
constexpr std::uint8_t kNodeId = 5;
constexpr std::uint32_t kPayloadBytes = 1024 * 1024 - 128;  // container = 1 MiB exactly
// The RT1064 port's download buffer (docs/memory-map.md); a smaller ring is measured too.
constexpr std::uint32_t kPortRingBytes = 64 * 1024;

Micros frame_ns(const CanFrame& frame) {
  return can_timing::bits_to_ns(can_timing::frame_slot_bits(frame), kBitrate);
}

class QueueSink final : public FrameSink {
 public:
  bool send(const CanFrame& frame) override {
    frames.push_back(frame);
    return true;
  }
  std::deque<CanFrame> frames;
};

CanFrame frame(std::uint32_t id, std::initializer_list<std::uint8_t> bytes) {
  CanFrame result;
  result.id = id;
  result.dlc = 8;
  std::size_t i = 0;
  for (const std::uint8_t byte : bytes) result.data[i++] = byte;
  return result;
}

// The SDO block download with zero turnaround: the same frames the transfer needs, back to back.
double block_bus_limit_seconds(const std::vector<std::uint8_t>& data) {
  const std::uint32_t rx = canopen::kSdoRxBase + kNodeId;
  const std::uint32_t tx = canopen::kSdoTxBase + kNodeId;
  std::uint64_t ns = 0;
  ns += frame_ns(frame(rx, {0xC6, 0x50, 0x1F, 0x01, 0, 0, 0x10, 0}));
  ns += frame_ns(frame(tx, {0xA4, 0x50, 0x1F, 0x01, 127, 0, 0, 0}));
  const std::size_t segments = (data.size() + 6) / 7;
  for (std::size_t s = 0; s < segments; ++s) {
    CanFrame segment;
    segment.id = rx;
    segment.dlc = 8;
    const std::uint8_t seq = static_cast<std::uint8_t>(s % 127 + 1);
    segment.data[0] = static_cast<std::uint8_t>(seq | (s + 1 == segments ? 0x80 : 0));
    for (std::size_t i = 0; i < 7 && s * 7 + i < data.size(); ++i)
      segment.data[1 + i] = data[s * 7 + i];
    ns += frame_ns(segment);
    if (seq == 127 || s + 1 == segments) ns += frame_ns(frame(tx, {0xA2, seq, 127, 0, 0, 0, 0, 0}));
  }
  const std::uint16_t crc = crc16_xmodem(0, data.data(), data.size());
  ns += frame_ns(
      frame(rx, {0xC1, static_cast<std::uint8_t>(crc), static_cast<std::uint8_t>(crc >> 8)}));
  ns += frame_ns(frame(tx, {0xA1, 0, 0, 0, 0, 0, 0, 0}));
  return static_cast<double>(ns) / 1e9;
}

struct Result {
  double transfer_s = 0;
  double commit_s = 0;
  double max_delay_ms = 0;
  std::uint64_t frames = 0;
  bool ok = false;
  std::uint32_t flash_status = 0;
  Micros flash_busy = 0;
  std::uint32_t erases_64k = 0;
  std::uint32_t erases_4k = 0;
};

class Simulation {
 public:
  Simulation(test::NorTiming timing, const BootloaderSettings& settings, std::uint32_t ring_bytes)
      : flash_(timing), ring_(ring_bytes), boot_(sink_, flash_, sha_, ring_, settings) {
    install_old_application();
    boot_.start(0);
    node_poll(0);
  }

  // Runs a transfer to its end; returns false when it failed.
  bool run(host::SdoClient& client) {
    while (client.busy()) {
      CanFrame next;
      bool from_master = false;
      if (!sink_.frames.empty()) {  // lower identifiers (0x580+) win arbitration over 0x600+
        next = sink_.frames.front();
        sink_.frames.pop_front();
      } else if (client.next_frame(next, now_ns_ / 1000)) {
        from_master = true;
      } else {
        // Bus idle: the next thing that happens is a deadline of either side.
        const Micros wake = std::min(boot_.next_deadline(), client.deadline());
        advance_to(std::max(wake, now_ns_ / 1000 + 1) * 1000);
        client.poll(now_ns_ / 1000);
        continue;
      }
      if (!from_master && waiting_since_ns_ != 0) {
        max_delay_ns_ = std::max(max_delay_ns_, now_ns_ - waiting_since_ns_);
        waiting_since_ns_ = 0;
      }
      advance_to(now_ns_ + frame_ns(next));
      ++frames_;
      const Micros now = now_ns_ / 1000;
      if (from_master) {
        boot_.on_frame(next, now);
        // A frame the server must answer: a request, or the last segment of a sub-block.
        if (client.busy() && !client.has_frame()) waiting_since_ns_ = now_ns_;
      } else {
        client.on_frame(next, now);
      }
    }
    return client.state() == host::SdoClient::State::kDone;
  }

  Micros now() const { return now_ns_ / 1000; }
  // The bus stays idle; the node works.
  void idle_for(Micros duration) { advance_to(now_ns_ + duration * 1000); }
  Micros max_delay_ns() const { return max_delay_ns_; }
  std::uint64_t frames() const { return frames_; }
  Bootloader& bootloader() { return boot_; }
  test::NorFlashFake& flash() { return flash_; }
  void reset_delay() { max_delay_ns_ = 0; }

 private:
  // Virtual time moves on; the node is polled at each of its deadlines on the way.
  void advance_to(std::uint64_t ns) {
    while (boot_.next_deadline() * 1000 <= ns) {
      const Micros deadline = std::max(boot_.next_deadline(), now_ns_ / 1000);
      now_ns_ = std::max(now_ns_, deadline * 1000);
      node_poll(deadline);
      if (boot_.next_deadline() <= deadline) {
        now_ns_ = std::max(now_ns_, (deadline + 1) * 1000);
        if (now_ns_ > ns) break;
      }
    }
    now_ns_ = std::max(now_ns_, ns);
    node_poll(now_ns_ / 1000);
  }
  // An update replaces an application: the region is written (every sector needs erasing) and
  // committed, so the download revokes it first.
  void install_old_application() {
    const std::vector<std::uint8_t> old = test::make_payload(kPayloadBytes + 64 * 1024, 7);
    flash_.load(memory_map::kAppOffset, old.data(), old.size());
    const image::Header header = test::header_for(old, 1);
    journal::Record commit;
    commit.type = journal::RecordType::kCommit;
    commit.sequence = 1;
    commit.payload_length = header.payload_length;
    commit.payload_crc32 = header.payload_crc32;
    std::copy_n(header.payload_sha256, 32, commit.payload_sha256);
    std::uint8_t bytes[journal::kRecordSize];
    journal::encode_record(commit, bytes);
    flash_.load(memory_map::kJournalOffset, bytes, sizeof bytes);
  }
  void node_poll(Micros now) {
    flash_.set_now(now);
    boot_.poll(now);
  }

  test::NorFlashFake flash_;
  std::vector<std::uint8_t> ring_;
  SoftwareSha256 sha_;
  QueueSink sink_;
  Bootloader boot_;
  std::uint64_t now_ns_ = 0;
  std::uint64_t waiting_since_ns_ = 0;
  std::uint64_t max_delay_ns_ = 0;
  std::uint64_t frames_ = 0;
};

BootloaderSettings bench_settings() {
  BootloaderSettings settings;
  settings.identity.vendor_id = test::kTestVendor;
  settings.identity.product_code = test::kTestProduct;
  settings.heartbeat_ms = 0;
  settings.provisioning.node_id = kNodeId;
  settings.provisioning.bitrate = kBitrate;
  settings.entry_requested = true;  // the application handed over to the bootloader for the update
  return settings;
}

Result measure(test::NorTiming timing, std::uint32_t ring_bytes,
               const std::vector<std::uint8_t>& container) {
  const BootloaderSettings settings = bench_settings();
  Simulation sim(timing, settings, ring_bytes);
  host::SdoConfig config;
  config.timeout = 1'000'000;
  host::SdoClient client(kNodeId, config);
  Result result;
  client.start_download(canopen::od::kProgramData, 1, container, host::SdoMode::kBlock, sim.now());
  const Micros start = sim.now();
  result.ok = sim.run(client);
  result.transfer_s = static_cast<double>(sim.now() - start) / 1e6;
  result.max_delay_ms = static_cast<double>(sim.max_delay_ns()) / 1e6;
  result.frames = sim.frames();
  // Poll 0x1F57 every 10 ms, as a master does, until bit 0 clears.
  for (int i = 0; i < 100'000 && result.ok; ++i) {
    client.reset();
    client.start_upload(canopen::od::kFlashStatus, 1, host::SdoMode::kAuto, sim.now());
    if (!sim.run(client) || client.data().size() < 4) {
      result.ok = false;
      break;
    }
    result.flash_status = load_le32(client.data().data());
    if ((result.flash_status & 1U) == 0) break;
    sim.idle_for(10'000);
  }
  result.commit_s = static_cast<double>(sim.now() - start) / 1e6;
  result.ok = result.ok && result.flash_status == 0 && sim.bootloader().installed().valid;
  result.flash_busy = sim.flash().busy_time();
  result.erases_64k = sim.flash().erases(65536);
  result.erases_4k = sim.flash().erases(4096);
  return result;
}

}  // namespace

int main() {
  const std::vector<std::uint8_t> payload = test::make_payload(kPayloadBytes, 2024);
  const std::vector<std::uint8_t> container = test::make_container(payload);
  const double limit_s = block_bus_limit_seconds(container);
  std::printf(
      "core throughput: %zu-byte container replacing a committed application, SDO block download "
      "at %u bit/s\n",
      container.size(), kBitrate);
  std::printf("SDO block bus limit (same frames back to back): %.2f s = %.1f kB/s\n", limit_s,
              static_cast<double>(container.size()) / limit_s / 1000);
  struct Case {
    const char* name;
    test::NorTiming timing;
    std::uint32_t ring_bytes;
    double delay_target_ms;
  };
  const Case cases[] = {
      {"typical", test::NorTiming::typical(), kPortRingBytes, 100.0},
      {"maximum", test::NorTiming::maximum(), kPortRingBytes, 250.0},
      {"typical", test::NorTiming::typical(), 16 * 1024, 100.0},
      {"maximum", test::NorTiming::maximum(), 16 * 1024, 250.0},
  };
  bool all_ok = true;
  for (const Case& c : cases) {
    const Result r = measure(c.timing, c.ring_bytes, container);
    const double efficiency = limit_s / r.transfer_s;
    const bool typical = std::string(c.name) == "typical";
    std::printf(
        "%-7s flash timing, ring %2u KiB: transfer %.2f s (%.1f kB/s, efficiency %.3f of the bus "
        "limit%s), committed after %.2f s, largest SDO response delay %.1f ms (target <= %.0f "
        "ms), flash busy %.2f s (%u x 64 KiB + %u x 4 KiB erases), %llu frames, %s\n",
        c.name, c.ring_bytes / 1024, r.transfer_s,
        static_cast<double>(container.size()) / r.transfer_s / 1000, efficiency,
        typical ? ", target >= 0.90" : "", r.commit_s, r.max_delay_ms, c.delay_target_ms,
        static_cast<double>(r.flash_busy) / 1e6, r.erases_64k, r.erases_4k,
        static_cast<unsigned long long>(r.frames), r.ok ? "installed" : "FAILED");
    all_ok = all_ok && r.ok;
  }
  return all_ok ? 0 : 1;
}
