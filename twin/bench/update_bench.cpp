// Speed of the twin: a full CiA 302 program download of a 1 MiB application through the real
// bootloader on an emulated RT1064, driven in-process by the host tool's master over a 1 Mbit/s
// virtual bus. Prints virtual (bus) time against wall time.
//
// rtcanboot-twin-update-bench BOOTLOADER.BIN APP.BIN [SIZE_KIB] [BITRATE]
#include <chrono>
#include <cstdio>
#include <random>
#include <string>

#include "rtcanboot/host/endpoint_transport.hpp"
#include "rtcanboot/host/error.hpp"
#include "rtcanboot/host/image.hpp"
#include "rtcanboot/host/master.hpp"
#include "rtcanboot/host/update.hpp"
#include "rtcanboot/memory_map.hpp"
#include "rtcanboot/provisioning.hpp"
#include "twin/board.hpp"
#include "twin/can/bus.hpp"

using namespace rtcanboot;
using namespace rtcanboot::twin;

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s BOOTLOADER.BIN APP.BIN [SIZE_KIB] [BITRATE]\n", argv[0]);
    return 2;
  }
  const std::size_t size = (argc > 3 ? std::stoul(argv[3]) : 1024) * 1024;
  const std::uint32_t bitrate = argc > 4 ? static_cast<std::uint32_t>(std::stoul(argv[4])) : 1'000'000;
  const auto bootloader = host::read_file(argv[1]);
  auto app = host::read_file(argv[2]);
  if (app.size() < size) {
    std::mt19937 rng(1);
    while (app.size() < size) app.push_back(static_cast<std::uint8_t>(rng()));
  }
  app.resize(size);

  Simulation sim;
  can::Bus& bus = sim.add_bus(bitrate);
  can::Endpoint ep("master");
  bus.attach(ep);
  BoardConfig cfg;
  cfg.name = "node5";
  cfg.console_sink = [](const std::string&) {};
  Board& board = sim.add_board(cfg);
  board.flash().probe_write(0, bootloader);
  Provisioning p;
  p.node_id = 5;
  p.bitrate = bitrate;
  std::vector<std::uint8_t> sector(memory_map::kSectorSize, 0xFF);
  encode_provisioning(p, sector.data(), sector.size());
  board.flash().probe_write(memory_map::kProvisioningOffset, sector);
  board.connect_can(bus, 2);
  board.power_on();

  host::EndpointTransport<can::Endpoint> transport(
      ep, [&] { return sim.now(); },
      [&](std::uint64_t deadline, const std::function<bool()>& stop) { sim.run_until(stop, deadline); });
  host::Master master(transport);
  sim.run_for(milliseconds_ns(50));

  host::LoadedInput input;
  input.format = host::InputFormat::kBinary;
  input.image = host::FlatImage{memory_map::kAppAddress, app};
  host::UpdateOptions opt;
  opt.node = 5;
  opt.start = false;
  const Nanos v0 = sim.now();
  const std::uint64_t hw0 = board.executed_halfwords();
  const auto w0 = std::chrono::steady_clock::now();
  try {
    const auto r = host::run_update(master, input, opt);
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - w0).count();
    const double virt = static_cast<double>(sim.now() - v0) / 1e9;
    std::printf("update of %zu KiB at %u bit/s (%s): %.2f s virtual, %.2f s wall, %.2fx real time; "
                "%.1f M halfwords executed (%.1f MIPS-equivalent); %llu bus frames; faults %zu\n",
                size / 1024, bitrate, r.used_block ? "block" : "segmented", virt, wall, virt / wall,
                static_cast<double>(board.executed_halfwords() - hw0) / 1e6,
                static_cast<double>(board.executed_halfwords() - hw0) / 1e6 / wall,
                static_cast<unsigned long long>(bus.stats().frames), board.fault_count());
    return board.fault_count() == 0 ? 0 : 3;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "update failed after %.2f s virtual: %s\nconsole:\n%s\n",
                 static_cast<double>(sim.now() - v0) / 1e9, e.what(), board.console().c_str());
    return 1;
  }
}
