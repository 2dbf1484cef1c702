// The real rtcanboot bootloader (cross build) on the twin: it boots from the flash image, prints
// its console, and its boot-up frame reaches a node on the virtual bus.
#include <gtest/gtest.h>

#include <cstring>

#include "firmware_required.hpp"
#include "rtcanboot/memory_map.hpp"
#include "rtcanboot/provisioning.hpp"
#include "soc_test_support.hpp"
#include "twin/can/bus.hpp"

namespace rtcanboot::twin {
namespace {

std::string bootloader_path() {
  const char* env = std::getenv("RTCANBOOT_FIRMWARE_DIR");
  const std::string dir = env != nullptr ? env : RTCANBOOT_FIRMWARE_DIR;
  return dir + "/firmware/bootloader/rtcanboot-bootloader.bin";
}

TEST(BootloaderOnTwin, BootsPrintsAndSendsBootUp) {
  const auto image = testing::load_file(bootloader_path());
  RTCANBOOT_SKIP_WITHOUT_FIRMWARE(image.empty(), "bootloader not built: " << bootloader_path());
  Simulation sim;
  can::Bus& bus = sim.add_bus(500'000);
  can::Endpoint master("master");
  bus.attach(master);
  Board& b = sim.add_board(testing::quiet_config("node5"));
  b.flash().probe_write(0, image);
  Provisioning p;
  p.node_id = 5;
  p.bitrate = 500'000;
  std::vector<std::uint8_t> sector(memory_map::kSectorSize, 0xFF);
  ASSERT_TRUE(encode_provisioning(p, sector.data(), sector.size()));
  b.flash().probe_write(memory_map::kProvisioningOffset, sector);
  b.connect_can(bus, 2);
  b.power_on();
  std::optional<can::TimedFrame> bootup;
  sim.run_until(
      [&] {
        while (auto f = master.receive()) {
          if (f->frame.id == 0x705) bootup = f;
        }
        return bootup.has_value();
      },
      milliseconds_ns(500));
  ASSERT_TRUE(bootup.has_value()) << "console:\n" << b.console() << "\nstop: " << b.stop_reason();
  EXPECT_EQ(bootup->frame.dlc, 1);
  EXPECT_EQ(bootup->frame.data[0], 0x00);
  EXPECT_NE(b.console().find("rtcanboot"), std::string::npos) << b.console();
  EXPECT_NE(b.console().find("node 5"), std::string::npos) << b.console();
  // SDO upload of 0x1000:00 (device type) gets an answer from 0x585.
  CanFrame req{};
  req.id = 0x605;
  req.dlc = 8;
  req.data[0] = 0x40;
  req.data[1] = 0x00;
  req.data[2] = 0x10;
  master.send(req);
  bool answered = false;
  sim.run_until(
      [&] {
        while (auto f = master.receive()) {
          if (f->frame.id == 0x585 && f->frame.data[1] == 0x00 && f->frame.data[2] == 0x10)
            answered = true;
        }
        return answered;
      },
      sim.now() + milliseconds_ns(100));
  EXPECT_TRUE(answered);
  EXPECT_EQ(b.fault_count(), 0u) << (b.reports().empty() ? "" : b.reports().back().message);
}

}  // namespace
}  // namespace rtcanboot::twin

namespace rtcanboot::twin {
namespace {

TEST(BootloaderOnTwin, TwoNodesOnOneBusAreDeterministic) {
  const auto image = testing::load_file(bootloader_path());
  RTCANBOOT_SKIP_WITHOUT_FIRMWARE(image.empty(), "bootloader not built: " << bootloader_path());
  auto run = [&image] {
    Simulation sim;
    can::Bus& bus = sim.add_bus(250'000);
    std::string trace;
    bus.set_trace([&trace](const std::string& line) { trace += line + "\n"; });
    for (std::uint8_t id : {3, 4}) {
      Board& b = sim.add_board(testing::quiet_config("node" + std::to_string(id)));
      b.flash().probe_write(0, image);
      Provisioning p;
      p.node_id = id;
      p.bitrate = 250'000;
      std::vector<std::uint8_t> sector(memory_map::kSectorSize, 0xFF);
      encode_provisioning(p, sector.data(), sector.size());
      b.flash().probe_write(memory_map::kProvisioningOffset, sector);
      b.connect_can(bus, 2);
      b.power_on();
    }
    sim.run_for(milliseconds_ns(2100));
    for (auto& b : sim.boards()) trace += b->console() + std::to_string(b->cycles()) + "\n";
    return trace;
  };
  const std::string a = run();
  EXPECT_NE(a.find("can0 703#00"), std::string::npos) << a;
  EXPECT_NE(a.find("can0 704#00"), std::string::npos) << a;
  EXPECT_NE(a.find("can0 703#7F"), std::string::npos)
      << a;  // heartbeats, acknowledged by the other
  EXPECT_EQ(a, run());
}

}  // namespace
}  // namespace rtcanboot::twin
