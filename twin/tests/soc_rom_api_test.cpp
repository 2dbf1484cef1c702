// ROM FlexSPI NOR API semantics, called directly on a board without firmware.
#include <gtest/gtest.h>

#include <unicorn/unicorn.h>

#include <algorithm>
#include <cstring>

#include "soc_test_support.hpp"

namespace rtcanboot::twin {
namespace {

using testing::quiet_config;

constexpr std::uint32_t kCfg = 0x2000'1000;   // config block in DTCM
constexpr std::uint32_t kBuf = 0x2000'2000;   // data buffer
constexpr std::uint32_t kXfer = 0x2000'3000;  // xfer descriptor
constexpr std::uint32_t kOpt = 0x2000'0F00;

class RomApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    board_ = &sim_.add_board(quiet_config("rom"));
    board_->power_on();
    sim_.run_for(milliseconds_ns(5));  // boot fails (blank flash): the core is free for calls
    const std::uint32_t tree = board_->read_u32(0x0020'001C);
    table_ = board_->read_u32(tree + 0x10);
    const std::uint32_t option = 0xC000'0007;
    board_->write_memory(kOpt, &option, 4);
    ASSERT_EQ(fn(9, {1, kCfg, kOpt}), 0u);  // get_config
    ASSERT_EQ(fn(1, {1, kCfg}), 0u);        // init
  }
  // Driver table entry `index` (0 = version, 1 = init, ... 9 = get_config).
  std::uint32_t fn(unsigned index, const std::vector<std::uint32_t>& args) {
    return board_->call(board_->read_u32(table_ + 4 * index), args);
  }
  std::uint8_t flash_at(std::uint32_t off) { return board_->flash().contents()[off]; }
  // FlexSPI2 LUT word `index` as the controller holds it (LUT registers at +0x200).
  std::uint32_t lut_word(unsigned index) { return board_->read_u32(0x402A'4200 + 4 * index); }
  std::uint32_t cfg_lut_word(unsigned index) { return board_->read_u32(kCfg + 0x80 + 4 * index); }
  // update_lut of config sequences first..first+count-1 into the same slots.
  std::uint32_t load_from_config(unsigned first, unsigned count) {
    return fn(8, {1, first, kCfg + 0x80 + 16 * first, count});
  }
  std::uint32_t xfer(std::uint32_t op, std::uint32_t addr, std::uint32_t seq, std::uint32_t tx,
                     std::uint32_t tx_size, std::uint32_t rx, std::uint32_t rx_size) {
    const std::uint32_t x[9] = {op, addr, seq, 1, 0, tx, tx_size, rx, rx_size};
    board_->write_memory(kXfer, x, sizeof x);
    return fn(7, {1, kXfer});
  }
  Simulation sim_;
  Board* board_ = nullptr;
  std::uint32_t table_ = 0;
};

TEST_F(RomApiTest, TreeAndTableLayout) {
  EXPECT_EQ(board_->read_u32(table_), 0x0001'0500u);  // version
  for (unsigned i = 1; i <= 9; ++i) EXPECT_EQ(board_->read_u32(table_ + 4 * i) & 1u, 1u) << i;
  EXPECT_EQ(board_->read_u32(kCfg), 0x4246'4346u);  // get_config filled an FCB
}

TEST_F(RomApiTest, EraseAlignsToSectorsAndTakesFlashTime) {
  std::vector<std::uint8_t> zeros(0x3000, 0);
  board_->flash().probe_write(0x10'0000, zeros);
  const Nanos t0 = board_->local_time();
  EXPECT_EQ(fn(4, {1, kCfg, 0x10'0800, 0x900}), 0u);  // covers 0x100800..0x101100 -> 2 sectors
  const Nanos took = board_->local_time() - t0;
  EXPECT_GE(took, 2 * board_->flash().times().erase_4k);
  EXPECT_EQ(flash_at(0x10'0000), 0xFF);
  EXPECT_EQ(flash_at(0x10'1FFF), 0xFF);
  EXPECT_EQ(flash_at(0x10'2000), 0x00);
  EXPECT_EQ(board_->flash().wear(0x100), 1u);
  EXPECT_EQ(board_->flash().wear(0x101), 1u);
  EXPECT_EQ(board_->flash().wear(0x102), 0u);
}

TEST_F(RomApiTest, ProgramSendsTheAddressAsGivenAndTheDeviceWrapsInsideThePage) {
  std::vector<std::uint8_t> page(256);
  for (unsigned i = 0; i < 256; ++i) page[i] = static_cast<std::uint8_t>(i);
  board_->write_memory(kBuf, page.data(), page.size());
  EXPECT_EQ(fn(2, {1, kCfg, 0x20'0080, kBuf}), 0u);
  EXPECT_EQ(flash_at(0x20'0080), 0);
  EXPECT_EQ(flash_at(0x20'00FF), 127);
  EXPECT_EQ(flash_at(0x20'0000), 128);
  EXPECT_EQ(flash_at(0x20'007F), 255);
  EXPECT_EQ(flash_at(0x20'0100), 0xFF);
}

TEST_F(RomApiTest, ProgramFromAnUnalignedSourceReturnsInvalidArgumentWithWelSet) {
  EXPECT_EQ(fn(2, {1, kCfg, 0x20'0000, kBuf + 2}), 4u);
  EXPECT_EQ(board_->flash().status1() & W25Q32::kStatusWel, W25Q32::kStatusWel);
  EXPECT_EQ(flash_at(0x20'0000), 0xFF);
}

TEST_F(RomApiTest, InitLoadsOnlySequenceZero) {
  // SetUp ran get_config and init: slot 0 is the config's read; write enable, erase and
  // program (slots 3, 5, 8, 9) were never loaded and hold the reset value 0.
  for (unsigned w = 0; w < 4; ++w) EXPECT_EQ(lut_word(w), cfg_lut_word(w)) << w;
  for (unsigned slot : {3u, 5u, 8u, 9u, 11u}) {
    for (unsigned w = 0; w < 4; ++w) EXPECT_EQ(lut_word(4 * slot + w), 0u) << slot;
    EXPECT_NE(cfg_lut_word(4 * slot), 0u) << slot;
  }
}

TEST_F(RomApiTest, RomCommandsLoadTheirSequencesIntoSlotOneAndLeaveReadStatusThere) {
  std::vector<std::uint8_t> page(256, 0x11);
  board_->write_memory(kBuf, page.data(), page.size());
  EXPECT_EQ(fn(2, {1, kCfg, 0x20'0000, kBuf}), 0u);
  EXPECT_EQ(flash_at(0x20'0000), 0x11);  // the ROM loaded write enable and program itself
  for (unsigned w = 0; w < 4; ++w)
    EXPECT_EQ(lut_word(4 + w), cfg_lut_word(4 + w)) << w;  // read status
  for (unsigned slot : {3u, 9u}) EXPECT_EQ(lut_word(4 * slot), 0u) << slot;
  EXPECT_EQ(fn(4, {1, kCfg, 0x20'1000, 0x1000}), 0u);
  EXPECT_EQ(lut_word(4 * 5), 0u);
  EXPECT_EQ(lut_word(4), cfg_lut_word(4));
}

TEST_F(RomApiTest, EraseUsesBlocksOnlyWhereNxpsTestAllowsThem) {
  // (start & ~blockSize) == 0 holds at 0 and 0x10000 only: 0x20000..0x2FFFF goes in 16 sectors.
  EXPECT_EQ(fn(4, {1, kCfg, 0x2'0000, 0x1'0000}), 0u);
  EXPECT_EQ(board_->flash().wear(0x20), 1u);
  EXPECT_EQ(board_->flash().wear(0x2F), 1u);
  const Nanos t0 = board_->local_time();
  EXPECT_EQ(fn(4, {1, kCfg, 0x1'0000, 0x1'0000}), 0u);  // one 64 KiB block erase
  EXPECT_LT(board_->local_time() - t0, 2 * board_->flash().times().erase_64k);
  EXPECT_EQ(fn(4, {1, kCfg, 0x3'0000, 0}), 4u);  // nothing to erase
}

TEST_F(RomApiTest, OutOfRangeArgumentsAreRejected) {
  EXPECT_EQ(fn(4, {1, kCfg, 0x40'0000, 0x1000}), 4u);
  EXPECT_EQ(fn(4, {1, kCfg, 0x3F'F000, 0x2000}), 4u);
  EXPECT_EQ(fn(2, {1, kCfg, 0x40'0000, kBuf}), 4u);
  EXPECT_EQ(fn(8, {1, 15, kBuf, 2}), 4u);  // update_lut past sequence 15
  EXPECT_EQ(fn(1, {2, kCfg}), 4u);         // instance 2 does not exist
}

TEST_F(RomApiTest, InstanceZeroHangsOnTheChipAndIsAFault) {
  fn(1, {0, kCfg});
  EXPECT_TRUE(board_->halted());
  EXPECT_TRUE(board_->has_fault_containing("instance 0"));
}

TEST_F(RomApiTest, ReadCopiesFlashToRam) {
  const std::vector<std::uint8_t> data = {1, 2, 3, 4, 5};
  board_->flash().probe_write(0x1234, data);
  EXPECT_EQ(fn(5, {1, kCfg, kBuf, 0x1234, 5}), 0u);
  std::uint8_t out[5] = {};
  board_->read_memory(kBuf, out, 5);
  EXPECT_EQ(std::vector<std::uint8_t>(out, out + 5), data);
}

TEST_F(RomApiTest, XferRunsLutSequencesInTheBackground) {
  std::vector<std::uint8_t> zeros(0x1000, 0);
  board_->flash().probe_write(0x5000, zeros);
  ASSERT_EQ(load_from_config(1, 15), 0u);
  EXPECT_EQ(xfer(0, 0, 3, 0, 0, 0, 0), 0u);       // write enable
  EXPECT_EQ(xfer(0, 0x5000, 5, 0, 0, 0, 0), 0u);  // sector erase, returns at once
  EXPECT_TRUE(board_->flash().busy());
  EXPECT_EQ(xfer(3, 0, 1, 0, 0, kBuf, 1), 0u);  // read status
  std::uint8_t st = 0;
  board_->read_memory(kBuf, &st, 1);
  EXPECT_EQ(st & 1, 1);
  sim_.run_for(board_->flash().times().erase_4k);
  EXPECT_FALSE(board_->flash().busy());
  EXPECT_EQ(flash_at(0x5000), 0xFF);
  // Page program through seq 9 with data.
  std::vector<std::uint8_t> page(256, 0x5A);
  board_->write_memory(kBuf, page.data(), page.size());
  EXPECT_EQ(xfer(0, 0, 3, 0, 0, 0, 0), 0u);
  EXPECT_EQ(xfer(2, 0x5100, 9, kBuf, 256, 0, 0), 0u);
  sim_.run_for(board_->flash().times().page_program);
  EXPECT_EQ(flash_at(0x5100), 0x5A);
  EXPECT_EQ(flash_at(0x51FF), 0x5A);
}

TEST_F(RomApiTest, UpdateLutChangesWhatXferSends) {
  // Sequence 6 := CMD 0x9F ; READ 1 pad (JEDEC ID).
  const std::uint32_t lut[4] = {0x2404'049F, 0, 0, 0};
  board_->write_memory(kBuf + 0x100, lut, sizeof lut);
  EXPECT_EQ(fn(8, {1, 6, kBuf + 0x100, 1}), 0u);
  EXPECT_EQ(xfer(3, 0, 6, 0, 0, kBuf, 3), 0u);
  std::uint8_t id[3] = {};
  board_->read_memory(kBuf, id, 3);
  EXPECT_EQ(id[0], 0xEF);
  EXPECT_EQ(id[1], 0x40);
  EXPECT_EQ(id[2], 0x16);
}

TEST_F(RomApiTest, XferOnAnUnloadedSlotSendsNothing) {
  // Write enable from slot 3, which init did not load: nothing reaches the flash.
  const std::size_t faults = board_->fault_count();  // the blank flash's boot failure
  EXPECT_EQ(xfer(0, 0, 3, 0, 0, 0, 0), 0u);
  EXPECT_EQ(board_->flash().status1() & W25Q32::kStatusWel, 0);
  EXPECT_FALSE(board_->halted());
  EXPECT_EQ(board_->fault_count(), faults);
}

TEST_F(RomApiTest, ReadOnAnUnloadedSlotIsTheRomHanging) {
  EXPECT_EQ(xfer(0, 0, 4, 0, 0, 0, 0), 0u);  // a command on slot 4 sends nothing
  xfer(3, 0, 5, 0, 0, kBuf, 1);              // read status from an empty slot 5
  EXPECT_TRUE(board_->halted());
  EXPECT_TRUE(board_->has_fault_containing("the ROM would hang here")) << board_->stop_reason();
  EXPECT_TRUE(board_->has_fault_containing("slot 5")) << board_->stop_reason();
}

TEST_F(RomApiTest, ProgramThroughAnUnloadedSlotIsTheRomHanging) {
  xfer(2, 0x5100, 9, kBuf, 256, 0,
       0);  // 256 bytes into a slot without WRITE: the TX FIFO never drains
  EXPECT_TRUE(board_->has_fault_containing("the ROM would hang here")) << board_->stop_reason();
}

TEST(RomApiReadings, SeededLutHoldsAPatternThatChangesWithTheSeed) {
  auto lut_after_boot = [](std::uint64_t seed) {
    Simulation sim;
    BoardConfig config = testing::quiet_config("seeded");
    config.readings.lut_after_reset = LutAfterReset::kSeeded;
    config.seed = seed;
    Board& b = sim.add_board(config);
    b.power_on();
    sim.run_for(milliseconds_ns(5));
    std::vector<std::uint32_t> words;
    for (unsigned i = 4; i < 64; ++i) words.push_back(b.read_u32(0x402A'4200 + 4 * i));
    return words;
  };
  const auto one = lut_after_boot(1);
  EXPECT_NE(std::count(one.begin(), one.end(), 0u), static_cast<long>(one.size()));
  EXPECT_EQ(one, lut_after_boot(1));
  EXPECT_NE(one, lut_after_boot(2));
}

}  // namespace
}  // namespace rtcanboot::twin
