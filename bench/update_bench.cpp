// Update benchmark (prints figures; not a test). script/bench runs it.
//
// The real bootloader runs in the twin; the host library's CiA 302-2 update flow (what
// `rtcanboot flash` runs) updates it over the twin's bit-accurate CAN bus, in pure virtual time.
// Every case starts from a board whose bootloader runs the example application (a valid, committed
// image), so the flow stops it, clears, downloads, waits for the verification and reads 0x1F57
// (--full: the whole image); the sector-diff cases let the flow send only the sectors that differ.
//
// Per case (docs/benchmarks.md explains the columns): update_s from the first frame the host
// queues to the 0x1F57:1 answer reading OK; bus_limit_s of an SDO block download of the same
// container (can_timing, stuff bits, no gaps); efficiency = bus_limit_s / update_s; lost_frames
// of the node's FLEXCAN2; the largest SDO response delay on the bus; wall-clock time.
// Also: boot-to-application time for a 64 KiB and a 1 MiB application, and the bootloader's flash
// and RAM footprint from its ELF.
//
// update_bench [--quick] [--only SUBSTRING] [--json PATH] [--firmware-dir DIR]
//   default: the two mandatory cases (1 MiB @ 1 Mbit/s, block, latency 0, typical and max flash
//   timing) first, then every combination of size (64 KiB, 1 MiB), bit rate (125k, 500k, 1M),
//   transfer (block, segmented), flash timing and host latency (0, 1 ms), and the sector-diff
//   cases (1 MiB over 1 MiB: the same image again, resume after a cut at 50 %), and the
//   compressed-image corpus (three firmware images, compressed and plain), and a small change
//   (example-app-report to a version with one function or one string changed, plain and
//   compressed): 64 cases;
//   --quick: the two mandatory cases and the boot/footprint figures only.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "rtcanboot/bytes.hpp"
#include "rtcanboot/canopen_defs.hpp"
#include "rtcanboot/host/error.hpp"
#include "rtcanboot/host/image.hpp"
#include "rtcanboot/host/update.hpp"
#include "rtcanboot/memory_map.hpp"
#include "twin/can/flexcan.hpp"
#include "twin/flash_w25q.hpp"
#include "twin_rig.hpp"

#ifndef RTCANBOOT_SOURCE_DIR
#define RTCANBOOT_SOURCE_DIR "."
#endif

namespace {

using namespace rtcanboot;
using twinrig::Nanos;
namespace od = canopen::od;

constexpr std::uint8_t kNode = 5;
constexpr std::uint32_t kKiB = 1024;
constexpr std::uint32_t kMiB = 1024 * 1024;
constexpr Nanos kMs = 1'000'000;

struct Case {
  std::string name;
  std::uint32_t image_bytes = 0;
  std::uint32_t bitrate = 0;
  bool block = true;
  twin::FlashTiming timing = twin::FlashTiming::kTypical;
  std::uint32_t latency_us = 0;
  std::uint32_t previous_bytes = 0;  // size of the installed application the update replaces
  // Sector-diff cases (issue 12 item 3); the others send the whole image after a clear (--full).
  enum class Diff : std::uint8_t {
    kFull,         // --full
    kSameImage,    // the installed image again (--force, sector digests: nothing to send)
    kResume,       // a whole download cut at 50 %, then `flash` again: measured is the second one
    kSmallChange,  // example-app-report installed, its version 2 or 3 sent (one function or one
                   // string changed); sparse only if some sectors still match
  };
  Diff diff = Diff::kFull;
  // Compressed cases (issue 12 item 4): a corpus image instead of sized_app(), sent compressed
  // (compress) or as it is (the reference row); the flow sends the whole image after a clear.
  std::string corpus;  // empty: sized_app()
  bool compress = false;
};

// The progress callback of the cut download stops the transfer by throwing this.
struct CutHere {};

struct CaseResult {
  bool ok = false;
  std::string error;
  double update_s = 0;
  double bus_limit_s = 0;
  double efficiency = 0;
  std::uint64_t lost_frames = 0;
  double max_response_ms = 0;
  double wall_s = 0;
  bool used_block = false;
  std::uint32_t sectors_sent = 0;   // sparse updates
  std::uint32_t sectors_total = 0;  // 0: a whole image was sent
  std::uint64_t sent_bytes = 0;     // the container as sent (compressed cases: compressed)
  std::uint32_t image_bytes = 0;    // the payload's length
  double flash_limit_s = 0;
  double sent_limit_s = 0;  // bus limit of the container as sent (compressed cases: compressed)
};

// Erase and program time the update needs at the profile's datasheet figures: the erase units
// FlashWriter uses over the range it writes (64 KiB blocks where aligned and whole, 4 KiB sectors
// otherwise) that hold something of the previous image (the rest reads back blank and is
// skipped), and a page program per 256 bytes. A sparse update writes only the sectors it sent;
// the bench's sparse cases send one run that starts on a block boundary (none for the same image
// again, the missing second half when resuming), so that run is counted as one range. Journal
// records (a few pages) are left out.
double flash_limit_s(std::uint32_t image_bytes, std::uint32_t previous_bytes, const CaseResult& r,
                     twin::FlashTiming timing) {
  const twin::FlashTimes t = twin::flash_times(timing);
  constexpr std::uint32_t kSector = memory_map::kSectorSize;
  constexpr std::uint32_t kBlock = memory_map::kBlock64Size;
  constexpr std::uint32_t kPage = memory_map::kPageSize;
  const std::uint32_t bytes = r.sectors_total != 0 ? r.sectors_sent * kSector : image_bytes;
  const std::uint32_t end = (bytes + kSector - 1) / kSector * kSector;
  Nanos total = static_cast<Nanos>((bytes + kPage - 1) / kPage) * t.page_program;
  for (std::uint32_t at = 0; at < end;) {
    const bool block = at % kBlock == 0 && at + kBlock <= end;
    if (at < previous_bytes) total += block ? t.erase_64k : t.erase_4k;
    at += block ? kBlock : kSector;
  }
  return static_cast<double>(total) / 1e9;
}

// An application payload of `size` bytes: the example application followed by pseudo-random
// data (the bootloader checks and stores it whole; the application itself runs unchanged).
std::vector<std::uint8_t> sized_app(const std::vector<std::uint8_t>& app, std::uint32_t size,
                                    unsigned seed) {
  std::vector<std::uint8_t> payload = app;
  if (size == 0) return payload;  // the example application as it is
  std::mt19937 rng(seed);
  while (payload.size() < size) payload.push_back(static_cast<std::uint8_t>(rng()));
  payload.resize(size);
  return payload;
}

std::string bitrate_name(std::uint32_t bitrate) {
  return bitrate >= 1'000'000 ? fmt::format("{}M", bitrate / 1'000'000)
                              : fmt::format("{}k", bitrate / 1000);
}

std::string size_name(std::uint32_t bytes) {
  return bytes >= kMiB ? fmt::format("{}MiB", bytes / kMiB) : fmt::format("{}KiB", bytes / kKiB);
}

// The compressed-image corpus, built reproducibly by the firmware build (script/build): the
// example application (23 KiB); example-app-report, the example application with a report
// printed by newlib's printf (floating point), scanf, strtod, libm, qsort and strftime (81 KiB);
// the example application with the bootloader's own binary appended as data (an application
// that carries a data blob).
std::vector<std::uint8_t> corpus_image(const std::string& name, const twinrig::Firmware& fw) {
  if (name == "app") return fw.app;
  if (name == "appreport") {
    return twinrig::read_bytes(fw.dir + "/firmware/example-app/example-app-report.bin");
  }
  if (name == "appreport-v2" || name == "appreport-v3") {
    return twinrig::read_bytes(fw.dir + "/firmware/example-app/example-app-report-" +
                               name.substr(10) + ".bin");
  }
  if (name == "app+bootloader") {
    std::vector<std::uint8_t> image = fw.app;
    image.insert(image.end(), fw.bootloader.begin(), fw.bootloader.end());
    return image;
  }
  return {};
}

CaseResult run_case(const Case& c, const twinrig::Firmware& fw) {
  const auto w0 = std::chrono::steady_clock::now();
  CaseResult res;
  twinrig::RigConfig rc;
  rc.bitrate = c.bitrate;
  rc.node_id = kNode;
  rc.flash_timing = c.timing;
  rc.host_latency = static_cast<Nanos>(c.latency_us) * 1000;
  std::vector<std::uint8_t> flash = twinrig::factory_flash(fw.bootloader, rc);
  // The same image again: the installed application is the new one (same seed).
  const unsigned previous_seed = c.diff == Case::Diff::kSameImage ? c.image_bytes : 1;
  const std::vector<std::uint8_t> previous =
      c.diff == Case::Diff::kSmallChange ? corpus_image("appreport", fw)
                                         : sized_app(fw.app, c.previous_bytes, previous_seed);
  const auto previous_bytes = static_cast<std::uint32_t>(previous.size());
  twinrig::install_application(flash, previous, 0x0001'0000);
  twinrig::Rig rig(rc, flash);
  twin::Board& board = rig.board();
  board.power_on();
  if (rig.wait_boot_up(0, 2000 * kMs) == 0) {
    res.error = "the installed application did not boot";
    return res;
  }
  host::Master& m = rig.master();
  // The container the flow will send (packed for the node's identity, as the flow packs it).
  const std::vector<std::uint8_t> payload = c.corpus.empty()
                                                ? sized_app(fw.app, c.image_bytes, c.image_bytes)
                                                : corpus_image(c.corpus, fw);
  if (payload.empty()) {
    res.error = "corpus image " + c.corpus + " not built";
    return res;
  }
  res.image_bytes = static_cast<std::uint32_t>(payload.size());
  host::LoadedInput input;
  input.format = host::InputFormat::kBinary;
  input.image = host::FlatImage{memory_map::kAppAddress, payload};
  host::PackOptions pack;
  try {
    pack.vendor_id = m.upload_u32(kNode, od::kIdentity, 1);
    pack.product_code = m.upload_u32(kNode, od::kIdentity, 2);
  } catch (const host::Error& e) {
    res.error = fmt::format("identity: {}", e.what());
    return res;
  }
  pack.image_version = 0x0002'0000;
  const std::vector<std::uint8_t> container = host::pack(*input.image, pack);
  res.bus_limit_s =
      twinrig::block_download_bus_limit_s(container, kNode, od::kProgramData, 1, c.bitrate);
  res.sent_limit_s = res.bus_limit_s;
  if (c.compress) {
    // What the flow sends (it compresses the same way): update_s - sent_limit_s is what
    // decoding, flash and the flow's own steps add to the compressed bytes' bus time.
    if (const auto packed = host::compress_container(container)) {
      res.sent_limit_s =
          twinrig::block_download_bus_limit_s(*packed, kNode, od::kProgramData, 1, c.bitrate);
    }
  }

  host::UpdateOptions o;
  o.node = kNode;
  o.start = false;
  o.force = true;
  o.full = c.diff == Case::Diff::kFull;
  o.allow_block = c.block;
  o.compress = c.compress;
  o.image_version = pack.image_version;
  o.flash_timeout = 600'000'000;
  if (c.diff == Case::Diff::kResume) {
    // The whole image, cut when half of it is on the bus; the node times the transfer out.
    host::UpdateOptions cut = o;
    cut.full = true;
    host::UpdateEvents events;
    events.progress = [](std::uint64_t done, std::uint64_t total) {
      if (done * 2 >= total) throw CutHere{};
    };
    try {
      host::run_update(m, input, cut, events);
      res.error = "the download was not cut";
      return res;
    } catch (const CutHere&) {
    }
    rig.run_until([] { return false; }, rig.sim().now() + 2000 * kMs);
  }
  // Let the application's last frames settle, then measure from the host's first frame.
  rig.run_until([] { return false; }, rig.sim().now() + 10 * kMs);
  rig.reset_observations();
  rig.transport().sent_any = false;
  const std::uint64_t lost0 = board.flexcan(2).lost_frames();
  try {
    const host::UpdateResult r = host::run_update(m, input, o);
    res.used_block = r.used_block;
    res.sectors_sent = r.sectors_sent;
    res.sectors_total = r.sparse ? r.sectors_total : 0;
    res.sent_bytes = r.bytes;
    if (c.compress && !r.compressed) res.error = "the update was not compressed";
    if (c.diff != Case::Diff::kFull && c.diff != Case::Diff::kSmallChange && !r.sparse) {
      res.error = "the update was not sparse";
    }
    if (r.software_id != crc32(0, payload.data(), payload.size())) {
      res.error = fmt::format("software ID 0x{:08X} after the update", r.software_id);
    }
  } catch (const host::Error& e) {
    res.error = e.what();
  }
  const Nanos t0 = rig.transport().first_send;
  const Nanos t1 = rig.observed().last_status_ok;
  if (res.error.empty() && t1 <= t0) res.error = "no 0x1F57 OK answer observed";
  if (res.error.empty() && board.fault_count() != 0)
    res.error = "twin fault: " + rig.fault_summary();
  res.ok = res.error.empty();
  res.update_s = t1 > t0 ? static_cast<double>(t1 - t0) / 1e9 : 0;
  res.efficiency = res.update_s > 0 ? res.bus_limit_s / res.update_s : 0;
  res.flash_limit_s = flash_limit_s(res.image_bytes, previous_bytes, res, c.timing);
  res.lost_frames = board.flexcan(2).lost_frames() - lost0;
  res.max_response_ms = static_cast<double>(rig.observed().max_response_ns) / 1e6;
  res.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - w0).count();
  return res;
}

// A master that does not wait for the flash (issue 12), as Lely's CiA 302-2 boot process does
// by default: the clear right after the stop's answer, the download right after the clear's
// answer, without polling 0x1F57, a 100 ms SDO timeout and no retries. Over an installed image of
// the same size, so the clear has blocks to erase.
struct EagerResult {
  bool completed = false;
  std::string outcome;  // "completed" or why the master gave up
  double max_response_ms = 0;
  double seconds = 0;
};

EagerResult run_eager_master(std::uint32_t size, twin::FlashTiming timing,
                             const twinrig::Firmware& fw) {
  EagerResult res;
  twinrig::RigConfig rc;
  rc.bitrate = 1'000'000;
  rc.node_id = kNode;
  rc.flash_timing = timing;
  std::vector<std::uint8_t> flash = twinrig::factory_flash(fw.bootloader, rc);
  twinrig::install_application(flash, sized_app(fw.app, size, 1), 0x0001'0000);
  twinrig::Rig rig(rc, flash);
  rig.board().power_on();
  if (rig.wait_boot_up(0, 2000 * kMs) == 0) {
    res.outcome = "the installed application did not boot";
    return res;
  }
  host::Master& m = rig.master();
  host::PackOptions pack;
  pack.vendor_id = m.upload_u32(kNode, od::kIdentity, 1);
  pack.product_code = m.upload_u32(kNode, od::kIdentity, 2);
  pack.image_version = 0x0002'0000;
  const std::vector<std::uint8_t> container =
      host::pack(host::FlatImage{memory_map::kAppAddress, sized_app(fw.app, size, size)}, pack);
  m.options().sdo.timeout = 100'000;
  m.options().retries = 0;
  rig.run_until([] { return false; }, rig.sim().now() + 10 * kMs);
  rig.reset_observations();
  const Nanos t0 = rig.sim().now();
  std::string step = "stop";
  try {
    m.download_u8(kNode, od::kProgramControl, 1, 0);
    step = "clear";
    m.download_u8(kNode, od::kProgramControl, 1, 3);
    step = "download";
    m.download(kNode, od::kProgramData, 1, container, host::SdoMode::kBlock);
    res.completed = true;
    res.outcome = "completed";
  } catch (const host::Error& e) {
    res.outcome = fmt::format("gave up at the {}: {}", step, e.what());
  }
  res.seconds = static_cast<double>(rig.sim().now() - t0) / 1e9;
  res.max_response_ms = static_cast<double>(rig.observed().max_response_ns) / 1e6;
  return res;
}

struct BootResult {
  std::uint32_t image_bytes = 0;
  double boot_ms = 0;
  bool ok = false;
  double wall_s = 0;
};

// Power-on to the application's boot-up message (end of frame), with a committed application of
// `size` bytes: boot ROM, the bootloader's copy to RAM, journal and CRC-32 check of the image,
// jump, the application's own start.
BootResult boot_to_application(std::uint32_t size, const twinrig::Firmware& fw,
                               std::uint16_t listen_window_ms) {
  const auto w0 = std::chrono::steady_clock::now();
  BootResult b;
  b.image_bytes = size;
  twinrig::RigConfig rc;
  rc.node_id = kNode;
  rc.listen_window_ms = listen_window_ms;
  std::vector<std::uint8_t> flash = twinrig::factory_flash(fw.bootloader, rc);
  twinrig::install_application(flash, sized_app(fw.app, size, size), 0x0001'0000);
  twinrig::Rig rig(rc, flash);
  rig.board().power_on();
  const Nanos up = rig.wait_boot_up(0, 5000 * kMs);
  if (up != 0 && rig.board().fault_count() == 0) {
    // It must be the application (the bootloader would send a boot-up only when it stays).
    try {
      b.ok = rig.master().upload_u8(kNode, od::kRtcanbootInfo, 1) == canopen::kRunningApplication;
    } catch (const host::Error&) {
      b.ok = false;
    }
  }
  b.boot_ms = static_cast<double>(up) / 1e6;
  b.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - w0).count();
  return b;
}

// Flash and RAM use of the bootloader from its ELF (section headers of an ELF32 little-endian
// file): flash = the bytes stored from 0x7000_0000 (load addresses), RAM by region.
struct Footprint {
  bool ok = false;
  std::uint32_t flash_bytes = 0;
  std::uint32_t itcm_bytes = 0;
  std::uint32_t dtcm_bytes = 0;  // stack + data + bss
  std::uint32_t stack_bytes = 0;
  std::uint32_t ocram_bytes = 0;  // the download buffer
};

Footprint footprint(const std::string& elf_path) {
  Footprint f;
  const std::vector<std::uint8_t> elf = twinrig::read_bytes(elf_path);
  if (elf.size() < 52 ||
      std::memcmp(elf.data(),
                  "\x7f"
                  "ELF",
                  4) != 0 ||
      elf[4] != 1 || elf[5] != 1)
    return f;
  const std::uint32_t phoff = load_le32(&elf[28]);
  const std::uint32_t shoff = load_le32(&elf[32]);
  const std::uint16_t phentsize = load_le16(&elf[42]);
  const std::uint16_t phnum = load_le16(&elf[44]);
  const std::uint16_t shentsize = load_le16(&elf[46]);
  const std::uint16_t shnum = load_le16(&elf[48]);
  const std::uint16_t shstrndx = load_le16(&elf[50]);
  if (shoff + static_cast<std::size_t>(shnum) * shentsize > elf.size() ||
      phoff + static_cast<std::size_t>(phnum) * phentsize > elf.size() || shstrndx >= shnum) {
    return f;
  }
  for (std::uint16_t i = 0; i < phnum; ++i) {
    const std::uint8_t* ph = &elf[phoff + static_cast<std::size_t>(i) * phentsize];
    const std::uint32_t type = load_le32(ph);
    const std::uint32_t paddr = load_le32(ph + 12);
    const std::uint32_t filesz = load_le32(ph + 16);
    if (type == 1 && filesz > 0 && paddr >= memory_map::kFlashBase &&
        paddr < memory_map::kFlashBase + memory_map::kFlashSize) {
      f.flash_bytes = std::max(f.flash_bytes, paddr + filesz - memory_map::kFlashBase);
    }
  }
  const std::uint8_t* strtab_sh = &elf[shoff + static_cast<std::size_t>(shstrndx) * shentsize];
  const std::uint32_t strtab = load_le32(strtab_sh + 16);
  for (std::uint16_t i = 0; i < shnum; ++i) {
    const std::uint8_t* sh = &elf[shoff + static_cast<std::size_t>(i) * shentsize];
    const std::uint32_t flags = load_le32(sh + 8);
    const std::uint32_t addr = load_le32(sh + 12);
    const std::uint32_t size = load_le32(sh + 20);
    if ((flags & 0x2) == 0 || size == 0) continue;  // SHF_ALLOC
    const char* name = reinterpret_cast<const char*>(&elf[strtab + load_le32(sh)]);
    if (addr < memory_map::kItcmBase + memory_map::kItcmSize) {
      f.itcm_bytes += size;
    } else if (addr >= memory_map::kDtcmBase &&
               addr < memory_map::kDtcmBase + memory_map::kDtcmSize) {
      f.dtcm_bytes += size;
      if (std::strcmp(name, ".stack") == 0) f.stack_bytes += size;
    } else if (addr >= memory_map::kOcram2Base &&
               addr < memory_map::kOcramFlexBase + memory_map::kOcramFlexSize) {
      f.ocram_bytes += size;
    }
  }
  f.ok = f.flash_bytes > 0;
  return f;
}

std::vector<Case> make_cases(const std::string& mode) {
  std::vector<Case> cases;
  auto add = [&](std::uint32_t size, std::uint32_t bitrate, bool block, twin::FlashTiming timing,
                 std::uint32_t latency_us) {
    Case c;
    c.image_bytes = size;
    c.bitrate = bitrate;
    c.block = block;
    c.timing = timing;
    c.latency_us = latency_us;
    c.name = fmt::format("{}-{}-{}-{}-lat{}", size_name(size), bitrate_name(bitrate),
                         block ? "block" : "seg", timing == twin::FlashTiming::kMax ? "max" : "typ",
                         latency_us);
    cases.push_back(c);
  };
  // Over an installed application of the same size: the clear erases all of its 64 KiB blocks
  // before the download (the matrix replaces the 14 KiB example application).
  auto add_over = [&](twin::FlashTiming timing) {
    add(kMiB, 1'000'000, true, timing, 0);
    cases.back().previous_bytes = kMiB;
    cases.back().name += "-over1MiB";
  };
  using twin::FlashTiming;
  // The mandatory cases first.
  add(kMiB, 1'000'000, true, FlashTiming::kTypical, 0);
  add(kMiB, 1'000'000, true, FlashTiming::kMax, 0);
  if (mode == "quick") return cases;
  add_over(FlashTiming::kTypical);
  add_over(FlashTiming::kMax);
  // Sector-diff updates of 1 MiB over 1 MiB: the same image again, and the rest of a download
  // cut at 50 % (bus_limit_s stays that of the whole image, so eff is the gain over it).
  for (const auto diff : {Case::Diff::kSameImage, Case::Diff::kResume}) {
    for (const auto timing : {FlashTiming::kTypical, FlashTiming::kMax}) {
      add(kMiB, 1'000'000, true, timing, 0);
      cases.back().previous_bytes = kMiB;
      cases.back().diff = diff;
      cases.back().name += diff == Case::Diff::kSameImage ? "-sameimage" : "-resume50";
    }
  }
  // A small change (issue 12 item 5): example-app-report installed, then its version 2 (one
  // function changed) or 3 (one string changed, same length), by the flow's sector diff, plain
  // and compressed (the flow's default). A changed function moves every byte linked after it.
  for (const char* version : {"v2", "v3"}) {
    for (const bool compress : {false, true}) {
      add(0, 1'000'000, true, FlashTiming::kTypical, 0);
      cases.back().corpus = fmt::format("appreport-{}", version);
      cases.back().diff = Case::Diff::kSmallChange;
      cases.back().compress = compress;
      cases.back().name = fmt::format("smallchange-{}-1M-typ-{}",
                                      std::string(version) == "v2" ? "function" : "string",
                                      compress ? "compressed" : "plain");
    }
  }
  // Compressed images (issue 12 item 4): each corpus image at 1 Mbit/s, typical timing, sent
  // compressed and, as the reference, as it is. effective_speedup = bus limit of the whole
  // uncompressed container / update time (the eff column of these rows).
  for (const char* image : {"app", "appreport", "app+bootloader"}) {
    for (const bool compress : {true, false}) {
      add(0, 1'000'000, true, FlashTiming::kTypical, 0);
      cases.back().corpus = image;
      cases.back().compress = compress;
      cases.back().name =
          fmt::format("corpus-{}-1M-typ-{}", image, compress ? "compressed" : "plain");
    }
  }
  const std::uint32_t bitrates[] = {125'000, 500'000, 1'000'000};
  for (const std::uint32_t size : {64 * kKiB, kMiB}) {
    for (const std::uint32_t br : bitrates) {
      for (const bool block : {true, false}) {
        for (const auto timing : {FlashTiming::kTypical, FlashTiming::kMax}) {
          for (const std::uint32_t lat : {0u, 1000u}) {
            if (size == kMiB && br == 1'000'000 && block && lat == 0) continue;  // already there
            add(size, br, block, timing, lat);
          }
        }
      }
    }
  }
  return cases;
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  std::string mode = "default";
  std::string only;
  std::string json_path = std::string(RTCANBOOT_SOURCE_DIR) + "/build/results/bench.json";
  std::string dir = twinrig::default_firmware_dir();
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--quick" || a == "--full") {  // --full: the default, kept for scripts
      mode = a.substr(2);
    } else if (a == "--only" && i + 1 < argc) {
      only = argv[++i];
    } else if (a == "--json" && i + 1 < argc) {
      json_path = argv[++i];
    } else if (a == "--firmware-dir" && i + 1 < argc) {
      dir = argv[++i];
    } else {
      std::fprintf(stderr,
                   "usage: %s [--quick] [--only SUBSTRING] [--json PATH] [--firmware-dir DIR]\n",
                   argv[0]);
      return 2;
    }
  }
  const auto fw = twinrig::load_firmware(dir);
  if (!fw) {
    std::fprintf(stderr, "update_bench: firmware not built in %s (run script/build)\n",
                 dir.c_str());
    return 1;
  }
  const auto wall0 = std::chrono::steady_clock::now();
  std::vector<Case> cases = make_cases(mode);
  if (!only.empty()) {
    std::erase_if(cases, [&](const Case& c) { return c.name.find(only) == std::string::npos; });
  }

  std::printf(
      "update benchmark: the real bootloader in the twin, host update flow in virtual time (%zu "
      "cases)\n",
      cases.size());
  const char* header = "%-38s %9s %8s %5s %4s %7s %9s %9s %9s %6s %5s %9s %7s\n";
  std::printf(header, "name", "image", "bitrate", "xfer", "tim", "lat_us", "update_s", "limit_s",
              "flash_s", "eff", "lost", "maxrsp_ms", "wall_s");
  bool all_ok = true;
  std::string entries;
  for (const Case& c : cases) {
    const CaseResult r = run_case(c, *fw);
    all_ok = all_ok && r.ok;
    std::printf("%-38s %9u %8u %5s %4s %7u %9.3f %9.3f %9.3f %6.3f %5llu %9.2f %7.1f%s%s\n",
                c.name.c_str(), r.image_bytes, c.bitrate, c.block ? "block" : "seg",
                c.timing == twin::FlashTiming::kMax ? "max" : "typ", c.latency_us, r.update_s,
                r.bus_limit_s, r.flash_limit_s, r.efficiency,
                static_cast<unsigned long long>(r.lost_frames), r.max_response_ms, r.wall_s,
                r.ok ? "" : "  FAILED: ", r.error.c_str());
    if (!entries.empty()) entries += ",\n";
    entries += fmt::format(
        "    {{\"name\": \"{}\", \"image_bytes\": {}, \"bitrate\": {}, \"transfer\": \"{}\", "
        "\"flash_timing\": \"{}\", "
        "\"host_latency_us\": {}, \"previous_image_bytes\": {}, \"update_s\": {:.4f}, "
        "\"bus_limit_s\": {:.4f}, \"flash_limit_s\": {:.4f}, \"efficiency\": {:.4f}, "
        "\"effective_speedup\": {:.4f}, \"limit_ratio\": {:.4f}, "
        "\"lost_frames\": {}, \"max_sdo_response_ms\": {:.3f}, \"wall_s\": {:.2f}, "
        "\"sectors_sent\": {}, \"sectors_total\": {}, \"corpus\": \"{}\", \"compressed\": {}, "
        "\"sent_bytes\": {}, \"sent_limit_s\": {:.4f}, \"ok\": {}}}",
        c.name, r.image_bytes, c.bitrate, c.block ? "block" : "segmented",
        c.timing == twin::FlashTiming::kMax ? "max" : "typical", c.latency_us,
        c.previous_bytes != 0 ? c.previous_bytes : static_cast<std::uint32_t>(fw->app.size()),
        r.update_s, r.bus_limit_s, r.flash_limit_s, r.efficiency, r.efficiency,
        r.update_s / std::max({r.bus_limit_s, r.flash_limit_s, 1e-9}), r.lost_frames,
        r.max_response_ms, r.wall_s, r.sectors_sent, r.sectors_total, c.corpus, c.compress,
        r.sent_bytes, r.sent_limit_s, r.ok);
    if (r.sectors_total != 0) {
      std::printf("%-38s sparse: %u of %u sectors sent\n", "", r.sectors_sent, r.sectors_total);
    }
    if (!c.corpus.empty()) {
      std::printf(
          "%-38s %s: %llu bytes sent (%.3f of the image), bus limit of them %.3f s, "
          "effective_speedup %.3f\n",
          "", c.compress ? "compressed" : "plain", static_cast<unsigned long long>(r.sent_bytes),
          r.image_bytes != 0 ? static_cast<double>(r.sent_bytes) / r.image_bytes : 0.0,
          r.sent_limit_s, r.efficiency);
    }
  }

  // A master that does not poll 0x1F57 (issue 12): every answer within its 100 ms timeout.
  std::string eager;
  std::vector<std::pair<std::uint32_t, twin::FlashTiming>> eager_cases = {
      {256 * kKiB, twin::FlashTiming::kTypical}, {256 * kKiB, twin::FlashTiming::kMax}};
  if (mode != "quick") eager_cases.emplace_back(kMiB, twin::FlashTiming::kMax);
  for (const auto& [size, timing] : eager_cases) {
    const EagerResult e = run_eager_master(size, timing, *fw);
    all_ok = all_ok && e.completed && e.max_response_ms <= 100.0;
    const char* timing_name = timing == twin::FlashTiming::kMax ? "max" : "typical";
    std::printf(
        "eager master (no 0x1F57 polling, 100 ms SDO timeout), %s over %s at 1 Mbit/s, %s flash "
        "timing: %s after %.3f s; longest response %.2f ms\n",
        size_name(size).c_str(), size_name(size).c_str(), timing_name, e.outcome.c_str(), e.seconds,
        e.max_response_ms);
    if (!eager.empty()) eager += ",\n";
    eager += fmt::format(
        "    {{\"name\": \"eager-{}-{}\", \"completed\": {}, \"seconds\": {:.3f}, "
        "\"max_sdo_response_ms\": {:.3f}}}",
        size_name(size), timing_name, e.completed, e.seconds, e.max_response_ms);
  }

  std::string boots;
  // The default listen window (docs/trial-boot.md) and the same boot with the window off.
  for (const std::uint16_t window : {kDefaultListenWindowMs, std::uint16_t{0}}) {
    for (const std::uint32_t size : {64 * kKiB, kMiB}) {
      const BootResult b = boot_to_application(size, *fw, window);
      all_ok = all_ok && b.ok;
      const std::string window_text =
          window != 0 ? fmt::format("{} ms listen window", window) : "listen window off";
      std::printf(
          "boot to application, %s image, %s: %.2f ms (power-on to the application's boot-up "
          "frame)%s\n",
          size_name(size).c_str(), window_text.c_str(), b.boot_ms, b.ok ? "" : "  FAILED");
      if (!boots.empty()) boots += ",\n";
      boots += fmt::format(
          "    {{\"name\": \"boot-{}{}\", \"image_bytes\": {}, \"listen_window_ms\": {}, "
          "\"boot_to_app_ms\": {:.3f}, \"ok\": {}}}",
          size_name(size), window != 0 ? "" : "-nowindow", size, window, b.boot_ms, b.ok);
    }
  }
  const Footprint f = footprint(fw->bootloader_elf);
  if (f.ok) {
    std::printf(
        "bootloader footprint: flash %u bytes (%.1f KiB of the 128 KiB region); RAM: ITCM %u bytes "
        "(code), DTCM %u "
        "bytes (%u stack + %u data/bss), OCRAM %u bytes (download buffer)\n",
        f.flash_bytes, f.flash_bytes / 1024.0, f.itcm_bytes, f.dtcm_bytes, f.stack_bytes,
        f.dtcm_bytes - f.stack_bytes, f.ocram_bytes);
  } else {
    std::printf("bootloader footprint: cannot read %s\n", fw->bootloader_elf.c_str());
    all_ok = false;
  }
  const double wall =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(json_path).parent_path(), ec);
  std::ofstream json(json_path);
  json << fmt::format(
      "{{\n  \"cases\": [\n{}\n  ],\n  \"eager_master\": [\n{}\n  ],\n"
      "  \"boot_to_application\": [\n{}\n  ],\n"
      "  \"footprint\": {{\"flash_bytes\": {}, \"itcm_bytes\": {}, \"dtcm_bytes\": {}, "
      "\"stack_bytes\": {}, "
      "\"ocram_bytes\": {}}},\n  \"wall_s\": {:.1f}\n}}\n",
      entries, eager, boots, f.flash_bytes, f.itcm_bytes, f.dtcm_bytes, f.stack_bytes,
      f.ocram_bytes, wall);
  std::printf("results: %s (%.1f s wall)\n", json_path.c_str(), wall);
  return all_ok ? 0 : 1;
}
