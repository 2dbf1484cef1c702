// Boot image structures the i.MX RT1064 boot ROM reads from the QSPI flash: the FlexSPI NOR
// configuration block (FCB, offset 0), the image vector table (IVT, offset 0x1000) and its boot
// data (fact sheet §2.3 - §2.6). Also the FCB the ROM FlexSPI NOR API is initialised with.
#pragma once

#include <cstddef>
#include <cstdint>

namespace rtcanboot::imxrt1064 {

// --- LUT instruction encoding (§2.5) ---------------------------------------------------------
namespace lut {
enum Opcode : std::uint8_t {
  kStop = 0x00,
  kCmdSdr = 0x01,
  kRaddrSdr = 0x02,
  kWriteSdr = 0x08,
  kReadSdr = 0x09,
  kDummySdr = 0x0C,
};
enum Pads : std::uint8_t { kPads1 = 0, kPads2 = 1, kPads4 = 2, kPads8 = 3 };
constexpr std::uint16_t instruction(Opcode opcode, Pads pads, std::uint8_t operand) {
  return static_cast<std::uint16_t>((opcode << 10) | (pads << 8) | operand);
}
constexpr std::uint32_t word(std::uint16_t first, std::uint16_t second) {
  return first | (std::uint32_t{second} << 16);
}
inline constexpr std::uint16_t kStopInstruction = 0;

// Sequence indices: the ROM's convention (§2.5) plus 10 for the 32 KiB block erase and 12/13
// for identification (JEDEC ID, SFDP). The boot ROM's init loads only sequence 0 into the
// controller (§3.10): the flash port loads the others itself with update_lut.
inline constexpr std::uint32_t kSeqRead = 0;
inline constexpr std::uint32_t kSeqReadStatus = 1;
inline constexpr std::uint32_t kSeqWriteEnable = 3;
inline constexpr std::uint32_t kSeqEraseSector = 5;    // 4 KiB, 0x20
inline constexpr std::uint32_t kSeqEraseBlock64 = 8;   // 64 KiB, 0xD8
inline constexpr std::uint32_t kSeqPageProgram = 9;    // 0x02
inline constexpr std::uint32_t kSeqEraseBlock32 = 10;  // 32 KiB, 0x52
inline constexpr std::uint32_t kSeqChipErase = 11;     // 0x60
inline constexpr std::uint32_t kSeqReadJedecId = 12;   // 0x9F, 3 bytes
inline constexpr std::uint32_t kSeqReadSfdp = 13;      // 0x5A, 24-bit address, 8 dummy clocks
// The sequences the port loads (0..13) and runs through xfer.
inline constexpr std::uint32_t kSeqCount = 14;
}  // namespace lut

// W25Q32JV status register 1.
inline constexpr std::uint32_t kStatusBusy = 1U << 0;
inline constexpr std::uint32_t kStatusWriteEnabled = 1U << 1;

// --- FCB (flexspi_nor_config_t, 512 bytes) ---------------------------------------------------
struct FlexspiNorConfig {
  std::uint32_t tag;
  std::uint32_t version;
  std::uint32_t reserved0;
  std::uint8_t read_sample_clk_src;
  std::uint8_t cs_hold_time;
  std::uint8_t cs_setup_time;
  std::uint8_t column_address_width;
  std::uint8_t device_mode_cfg_enable;
  std::uint8_t device_mode_type;
  std::uint16_t wait_time_cfg_commands;
  std::uint32_t device_mode_seq;
  std::uint32_t device_mode_arg;
  std::uint8_t config_cmd_enable;
  std::uint8_t config_mode_type[3];
  std::uint32_t config_cmd_seqs[3];
  std::uint32_t reserved1;
  std::uint32_t config_cmd_args[3];
  std::uint32_t reserved2;
  std::uint32_t controller_misc_option;
  std::uint8_t device_type;
  std::uint8_t sflash_pad_type;
  std::uint8_t serial_clk_freq;
  std::uint8_t lut_custom_seq_enable;
  std::uint32_t reserved3[2];
  std::uint32_t sflash_a1_size;
  std::uint32_t sflash_a2_size;
  std::uint32_t sflash_b1_size;
  std::uint32_t sflash_b2_size;
  std::uint32_t cs_pad_setting_override;
  std::uint32_t sclk_pad_setting_override;
  std::uint32_t data_pad_setting_override;
  std::uint32_t dqs_pad_setting_override;
  std::uint32_t timeout_in_ms;
  std::uint32_t command_interval;
  std::uint16_t data_valid_time[2];
  std::uint16_t busy_offset;
  std::uint16_t busy_bit_polarity;
  std::uint32_t lookup_table[64];
  std::uint32_t lut_custom_seq[12];
  std::uint32_t reserved4[4];
  // Serial NOR extension.
  std::uint32_t page_size;
  std::uint32_t sector_size;
  std::uint8_t ipcmd_serial_clk_freq;
  std::uint8_t is_uniform_block_size;
  std::uint8_t is_data_order_swapped;
  std::uint8_t reserved5;
  std::uint8_t serial_nor_type;
  std::uint8_t need_exit_no_cmd_mode;
  std::uint8_t half_clk_for_non_read_cmd;
  std::uint8_t need_restore_no_cmd_mode;
  std::uint32_t block_size;
  std::uint32_t reserved6[11];
};
static_assert(sizeof(FlexspiNorConfig) == 512);
static_assert(offsetof(FlexspiNorConfig, read_sample_clk_src) == 0x00C);
static_assert(offsetof(FlexspiNorConfig, device_mode_seq) == 0x014);
static_assert(offsetof(FlexspiNorConfig, config_cmd_enable) == 0x01C);
static_assert(offsetof(FlexspiNorConfig, config_cmd_seqs) == 0x020);
static_assert(offsetof(FlexspiNorConfig, config_cmd_args) == 0x030);
static_assert(offsetof(FlexspiNorConfig, controller_misc_option) == 0x040);
static_assert(offsetof(FlexspiNorConfig, device_type) == 0x044);
static_assert(offsetof(FlexspiNorConfig, serial_clk_freq) == 0x046);
static_assert(offsetof(FlexspiNorConfig, sflash_a1_size) == 0x050);
static_assert(offsetof(FlexspiNorConfig, timeout_in_ms) == 0x070);
static_assert(offsetof(FlexspiNorConfig, data_valid_time) == 0x078);
static_assert(offsetof(FlexspiNorConfig, busy_offset) == 0x07C);
static_assert(offsetof(FlexspiNorConfig, busy_bit_polarity) == 0x07E);
static_assert(offsetof(FlexspiNorConfig, lookup_table) == 0x080);
static_assert(offsetof(FlexspiNorConfig, lut_custom_seq) == 0x180);
static_assert(offsetof(FlexspiNorConfig, page_size) == 0x1C0);
static_assert(offsetof(FlexspiNorConfig, sector_size) == 0x1C4);
static_assert(offsetof(FlexspiNorConfig, ipcmd_serial_clk_freq) == 0x1C8);
static_assert(offsetof(FlexspiNorConfig, block_size) == 0x1D0);

inline constexpr std::uint32_t kFcbTag = 0x4246'4346;      // "FCFB"
inline constexpr std::uint32_t kFcbVersion = 0x5601'0400;  // V1.4.0
// serialClkFreq code 7: 120 MHz per the RT106x tables (133 MHz per the SDK enum, §2.4). The
// W25Q32JV reads quad I/O at up to 133 MHz, so either reading is safe.
inline constexpr std::uint8_t kSerialClk120MHz = 7;
inline constexpr std::uint8_t kIpSerialClk30MHz = 1;

// The W25Q32JV FCB: the EVK's values (§2.5) plus a 32 KiB block erase sequence.
constexpr FlexspiNorConfig make_w25q32jv_fcb() {
  using namespace lut;
  FlexspiNorConfig fcb{};
  fcb.tag = kFcbTag;
  fcb.version = kFcbVersion;
  fcb.read_sample_clk_src = 1;  // loopback from the DQS pad
  fcb.cs_hold_time = 3;
  fcb.cs_setup_time = 3;
  fcb.controller_misc_option = 0x10;  // SafeConfigFreq
  fcb.device_type = 1;                // serial NOR
  fcb.sflash_pad_type = 4;
  fcb.serial_clk_freq = kSerialClk120MHz;
  fcb.sflash_a1_size = 0x0040'0000;
  fcb.busy_offset = 0;
  fcb.busy_bit_polarity = 0;
  auto& t = fcb.lookup_table;
  t[4 * kSeqRead + 0] =
      word(instruction(kCmdSdr, kPads1, 0xEB), instruction(kRaddrSdr, kPads4, 24));
  t[4 * kSeqRead + 1] = word(instruction(kDummySdr, kPads4, 6), instruction(kReadSdr, kPads4, 4));
  t[4 * kSeqReadStatus] =
      word(instruction(kCmdSdr, kPads1, 0x05), instruction(kReadSdr, kPads1, 4));
  t[4 * kSeqWriteEnable] = word(instruction(kCmdSdr, kPads1, 0x06), kStopInstruction);
  t[4 * kSeqEraseSector] =
      word(instruction(kCmdSdr, kPads1, 0x20), instruction(kRaddrSdr, kPads1, 24));
  t[4 * kSeqEraseBlock64] =
      word(instruction(kCmdSdr, kPads1, 0xD8), instruction(kRaddrSdr, kPads1, 24));
  t[4 * kSeqPageProgram + 0] =
      word(instruction(kCmdSdr, kPads1, 0x02), instruction(kRaddrSdr, kPads1, 24));
  t[4 * kSeqPageProgram + 1] = word(instruction(kWriteSdr, kPads1, 4), kStopInstruction);
  t[4 * kSeqEraseBlock32] =
      word(instruction(kCmdSdr, kPads1, 0x52), instruction(kRaddrSdr, kPads1, 24));
  t[4 * kSeqChipErase] = word(instruction(kCmdSdr, kPads1, 0x60), kStopInstruction);
  t[4 * kSeqReadJedecId] =
      word(instruction(kCmdSdr, kPads1, 0x9F), instruction(kReadSdr, kPads1, 4));
  t[4 * kSeqReadSfdp + 0] =
      word(instruction(kCmdSdr, kPads1, 0x5A), instruction(kRaddrSdr, kPads1, 24));
  t[4 * kSeqReadSfdp + 1] =
      word(instruction(kDummySdr, kPads1, 8), instruction(kReadSdr, kPads1, 4));
  fcb.page_size = 256;
  fcb.sector_size = 0x1000;
  fcb.ipcmd_serial_clk_freq = kIpSerialClk30MHz;
  fcb.is_uniform_block_size = 0;
  fcb.block_size = 0x1'0000;
  return fcb;
}

// The LUT words must be the ones the fact sheet lists for the EVK FCB (and Teensy's).
static_assert(make_w25q32jv_fcb().lookup_table[0] == 0x0A18'04EB);
static_assert(make_w25q32jv_fcb().lookup_table[1] == 0x2604'3206);
static_assert(make_w25q32jv_fcb().lookup_table[4] == 0x2404'0405);
static_assert(make_w25q32jv_fcb().lookup_table[12] == 0x0000'0406);
static_assert(make_w25q32jv_fcb().lookup_table[20] == 0x0818'0420);
static_assert(make_w25q32jv_fcb().lookup_table[32] == 0x0818'04D8);
static_assert(make_w25q32jv_fcb().lookup_table[36] == 0x0818'0402);
static_assert(make_w25q32jv_fcb().lookup_table[37] == 0x0000'2004);
static_assert(make_w25q32jv_fcb().lookup_table[40] == 0x0818'0452);
static_assert(make_w25q32jv_fcb().lookup_table[44] == 0x0000'0460);
static_assert(make_w25q32jv_fcb().lookup_table[48] == 0x2404'049F);  // JEDEC ID: CMD 9F, READ 1 pad

// --- IVT and boot data (§2.6) ------------------------------------------------------------------
struct BootData {
  std::uint32_t start;   // image start: the FlexSPI2 base for an execute-in-place image
  std::uint32_t size;    // image size
  std::uint32_t plugin;  // 0: not a plugin
  std::uint32_t placeholder;
};
static_assert(sizeof(BootData) == 16);

struct ImageVectorTable {
  std::uint32_t header;  // tag 0xD1, length 0x0020 big-endian, version 0x41
  const void* entry;     // the ARM vector table the ROM loads SP and PC from
  std::uint32_t reserved1;
  const void* dcd;
  const BootData* boot_data;
  const ImageVectorTable* self;
  const void* csf;
  std::uint32_t reserved2;
};
#if defined(__arm__)
static_assert(sizeof(ImageVectorTable) == 32);
static_assert(offsetof(ImageVectorTable, entry) == 0x04);
static_assert(offsetof(ImageVectorTable, boot_data) == 0x10);
static_assert(offsetof(ImageVectorTable, self) == 0x14);
#endif
inline constexpr std::uint32_t kIvtHeader = 0x4120'00D1;

}  // namespace rtcanboot::imxrt1064
