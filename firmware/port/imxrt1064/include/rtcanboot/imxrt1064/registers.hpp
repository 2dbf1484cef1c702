// Register addresses and bit fields of the i.MX RT1064 blocks rtcanboot touches, written from
// the project's fact sheet (shared/reference/rt1064.md, section numbers in the comments) and the
// Armv7-M architecture (CMSIS core_cm7.h, S19). GPT and LPUART layouts are not in the fact sheet;
// they follow the i.MX RT1060/1064 reference manual and are listed in README.md for the twin.
#pragma once

#include <cstdint>

namespace rtcanboot::imxrt1064 {

using Address = std::uintptr_t;

inline volatile std::uint32_t& reg32(Address address) {
  return *reinterpret_cast<volatile std::uint32_t*>(address);
}
inline volatile std::uint16_t& reg16(Address address) {
  return *reinterpret_cast<volatile std::uint16_t*>(address);
}
inline volatile std::uint8_t& reg8(Address address) {
  return *reinterpret_cast<volatile std::uint8_t*>(address);
}

// --- Cortex-M7 system control space (§1.4, S19) ---------------------------------------------
namespace scb {
inline constexpr Address kIcsr = 0xE000'ED04;
inline constexpr std::uint32_t kIcsrPendStClear = 1U << 25;
inline constexpr std::uint32_t kIcsrPendSvClear = 1U << 27;
inline constexpr Address kVtor = 0xE000'ED08;
inline constexpr Address kAircr = 0xE000'ED0C;
inline constexpr std::uint32_t kAircrVectKey = 0x05FAU << 16;
inline constexpr std::uint32_t kAircrPrigroupMask = 0x700;
inline constexpr std::uint32_t kAircrSysResetReq = 1U << 2;
inline constexpr Address kCcr = 0xE000'ED14;
inline constexpr std::uint32_t kCcrDcache = 1U << 16;
inline constexpr std::uint32_t kCcrIcache = 1U << 17;
inline constexpr Address kShcsr = 0xE000'ED24;
inline constexpr Address kCcsidr = 0xE000'ED80;
inline constexpr Address kCsselr = 0xE000'ED84;
inline constexpr Address kCpacr = 0xE000'ED88;
inline constexpr Address kIciallu = 0xE000'EF50;
inline constexpr Address kDcimvac = 0xE000'EF5C;
inline constexpr Address kDcisw = 0xE000'EF60;
inline constexpr Address kDccimvac = 0xE000'EF70;
inline constexpr Address kDccisw = 0xE000'EF74;
inline constexpr std::uint32_t kCacheLine = 32;
}  // namespace scb

namespace mpu {
inline constexpr Address kCtrl = 0xE000'ED94;
inline constexpr std::uint32_t kCtrlEnable = 1U << 0;
inline constexpr std::uint32_t kCtrlPrivDefEna = 1U << 2;  // default map as background
inline constexpr Address kRnr = 0xE000'ED98;
inline constexpr Address kRbar = 0xE000'ED9C;
inline constexpr Address kRasr = 0xE000'EDA0;
inline constexpr std::uint32_t kRasrEnable = 1U << 0;
constexpr std::uint32_t rasr_size(std::uint32_t log2_bytes) {
  return (log2_bytes - 1) << 1;
}
inline constexpr std::uint32_t kRasrNormalWriteBack =
    (1U << 19) | (1U << 17) | (1U << 16);  // TEX=1 C B
inline constexpr std::uint32_t kRasrApNone = 0U << 24;
inline constexpr std::uint32_t kRasrApReadOnly = 6U << 24;
inline constexpr std::uint32_t kRasrExecuteNever = 1U << 28;
}  // namespace mpu

namespace systick {
inline constexpr Address kCsr = 0xE000'E010;
inline constexpr Address kRvr = 0xE000'E014;
inline constexpr Address kCvr = 0xE000'E018;
}  // namespace systick

namespace nvic {
inline constexpr Address kIser = 0xE000'E100;  // + 4 per 32 interrupts
inline constexpr Address kIcer = 0xE000'E180;
inline constexpr Address kIcpr = 0xE000'E280;
inline constexpr Address kIpr = 0xE000'E400;  // one byte per interrupt
inline constexpr std::uint32_t kPriorityBits = 4;
inline constexpr std::uint32_t kRegisterCount = 8;  // covers 256 > 158 device interrupts
}  // namespace nvic

// Device interrupt numbers (§1.5).
namespace irq {
inline constexpr std::uint32_t kLpuart1 = 20;
inline constexpr std::uint32_t kCan1 = 36;
inline constexpr std::uint32_t kCan2 = 37;
inline constexpr std::uint32_t kGpt1 = 100;
inline constexpr std::uint32_t kCan3 = 154;
inline constexpr std::uint32_t kDeviceCount = 158;
}  // namespace irq
inline constexpr std::uint32_t kVectorCount = 16 + irq::kDeviceCount;  // 174 (§1.1)

// --- CCM (§1.6, §5.2, §8) ---------------------------------------------------------------------
namespace ccm {
inline constexpr Address kBase = 0x400F'C000;
inline constexpr Address kCscmr2 = kBase + 0x20;
inline constexpr std::uint32_t kCanClkSelShift = 8;  // 0 pll3/8, 1 osc, 2 pll3/6, 3 off
inline constexpr std::uint32_t kCanClkSelMask = 3U << kCanClkSelShift;
inline constexpr std::uint32_t kCanClkPodfShift = 2;
inline constexpr std::uint32_t kCanClkPodfMask = 0x3FU << kCanClkPodfShift;
// CBCMR: FLEXSPI2_CLK_SEL 0 PLL2 PFD2, 1 PLL3 PFD0, 2 PLL3 PFD1, 3 PLL2 (mcux-sdk MIMXRT1064.h).
inline constexpr Address kCbcmr = kBase + 0x18;
inline constexpr std::uint32_t kFlexspi2ClkSelShift = 8;
inline constexpr std::uint32_t kFlexspi2PodfShift = 29;
inline constexpr Address kCscdr1 = kBase + 0x24;
inline constexpr std::uint32_t kUartClkSelOsc = 1U << 6;  // 0 = pll3_80m
inline constexpr std::uint32_t kUartClkPodfMask = 0x3F;
constexpr Address ccgr(std::uint32_t n) {
  return kBase + 0x68 + 4 * n;
}
// A gate is two bits; 0b11 = clock on in run and wait.
struct Gate {
  std::uint8_t reg;
  std::uint8_t cg;
};
inline constexpr Gate kGateCan1{0, 7}, kGateCan1Serial{0, 8};
inline constexpr Gate kGateCan2{0, 9}, kGateCan2Serial{0, 10};
inline constexpr Gate kGateCan3{7, 3}, kGateCan3Serial{7, 4};
inline constexpr Gate kGateGpt1{1, 10}, kGateGpt1Serial{1, 11};
inline constexpr Gate kGateLpuart1{5, 12};
inline constexpr Gate kGateIomuxc{4, 1}, kGateIomuxcGpr{4, 2};
inline constexpr Gate kGateOcotp{2, 6};  // NXP SDK fsl_clock.h: kCLOCK_Ocotp = CCGR2 CG6
}  // namespace ccm

// --- SNVS LP general-purpose registers (§6.3) -------------------------------------------------
namespace snvs {
// LPGPR[0]: exists whether 4 or 8 LPGPRs are implemented (§9 item 7).
inline constexpr Address kLpgpr0 = 0x400D'4100;
}  // namespace snvs

// --- CCM_ANALOG: PLL3 (USB1 PLL, 480 MHz), the source of pll3_sw_clk (§5.2) ------------------
namespace ccm_analog {
inline constexpr Address kPllUsb1 = 0x400D'8010;
inline constexpr std::uint32_t kPllLock = 1U << 31;
inline constexpr std::uint32_t kPllBypass = 1U << 16;
inline constexpr std::uint32_t kPllEnable = 1U << 13;
inline constexpr std::uint32_t kPllPower = 1U << 12;
inline constexpr std::uint32_t kPllDivSelect = 1U << 1;  // PLL3: 0 = 480 MHz, 1 = 528 MHz
// PFD_480 / PFD_528: PFDn FRAC in bits 8n+5..8n, gate in bit 8n+7; out = pll * 18 / FRAC.
inline constexpr Address kPfd480 = 0x400D'80F0;
inline constexpr Address kPfd528 = 0x400D'8100;
}  // namespace ccm_analog

// --- FlexSPI2 (§4.2): the 64 LUT words the controller runs sequences from -------------------
namespace flexspi2 {
inline constexpr Address kBase = 0x402A'4000;
inline constexpr Address kLut = kBase + 0x200;
}  // namespace flexspi2

// --- IOMUXC (§5.9) --------------------------------------------------------------------------
namespace iomuxc {
inline constexpr std::uint32_t kSion = 1U << 4;
inline constexpr std::uint32_t kPadConfigDefault = 0x10B0;  // keeper, 100 MHz, DSE R0/6, slow slew
struct Pin {
  Address mux;
  std::uint8_t alt;
  Address select_input;  // 0 when the signal has no daisy chain
  std::uint8_t select_value;
  Address pad;
};
// GPIO_AD_B0_14 / _15: the EVK's J11 CAN connector.
inline constexpr Pin kCan2TxAdB014{0x401F'80F4, 6, 0, 0, 0x401F'82E4};
inline constexpr Pin kCan2RxAdB015{0x401F'80F8, 6, 0x401F'8450, 2, 0x401F'82E8};
inline constexpr Pin kCan3TxAdB014{0x401F'80F4, 8, 0, 0, 0x401F'82E4};
inline constexpr Pin kCan3RxAdB015{0x401F'80F8, 8, 0x401F'878C, 1, 0x401F'82E8};
// GPIO_AD_B1_08 / _09 (Zephyr's CAN1 pins; not on J11, shared with SAI1 on the EVK).
inline constexpr Pin kCan1TxAdB108{0x401F'811C, 2, 0, 0, 0x401F'830C};
inline constexpr Pin kCan1RxAdB109{0x401F'8120, 2, 0x401F'844C, 2, 0x401F'8310};
// GPIO_AD_B0_12 / _13: LPUART1, the EVK's debug console.
inline constexpr Pin kLpuart1TxAdB012{0x401F'80EC, 2, 0, 0, 0x401F'82DC};
inline constexpr Pin kLpuart1RxAdB013{0x401F'80F0, 2, 0, 0, 0x401F'82E0};
}  // namespace iomuxc

// --- OCOTP (NXP mcux-sdk devices/MIMXRT1064/MIMXRT1064.h: OCOTP_BASE 0x401F_4000; CFG0 "OTP
// Bank0 Word1" at +0x410, CFG1 "Bank0 Word2" at +0x420, CFG2 "Bank0 Word3" at +0x430, shadow
// registers of the configuration and manufacturing fuses). Which of these hold the chip's unique
// ID is unconfirmed: NXP's SDK demos use CFG0/CFG1, Zephyr's RT10xx Ethernet driver CFG1/CFG2.
namespace ocotp {
inline constexpr Address kBase = 0x401F'4000;
inline constexpr Address kCfg0 = kBase + 0x410;
inline constexpr Address kCfg1 = kBase + 0x420;
inline constexpr Address kCfg2 = kBase + 0x430;
}  // namespace ocotp

// --- SRC (§6.2) -----------------------------------------------------------------------------
namespace src {
inline constexpr Address kBase = 0x400F'8000;
inline constexpr Address kScr = kBase + 0x00;
inline constexpr Address kSrsr = kBase + 0x08;
// SCR bits 31:28 MASK_WDOG3_RST: 0xA lets an RTWDOG time-out reset the chip, 0x5 masks it.
inline constexpr std::uint32_t kScrMaskWdog3Shift = 28;
inline constexpr std::uint32_t kScrMaskWdog3Field = 0xFU << kScrMaskWdog3Shift;
inline constexpr std::uint32_t kScrWdog3ResetOn = 0xAU << kScrMaskWdog3Shift;
constexpr Address gpr(std::uint32_t n) {
  return kBase + 0x20 + 4 * (n - 1);
}
inline constexpr Address kGpr5 = gpr(5);
inline constexpr Address kGpr6 = gpr(6);
inline constexpr Address kGpr7 = gpr(7);
static_assert(kGpr5 == 0x400F'8030);
}  // namespace src

// --- Watchdogs (§6.5) -----------------------------------------------------------------------
namespace wdog {
inline constexpr Address kWdog1 = 0x400B'8000;
inline constexpr Address kWdog2 = 0x400D'0000;
inline constexpr Address kWcr = 0x0;  // 16-bit registers
inline constexpr Address kWsr = 0x2;
inline constexpr Address kWmcr = 0x8;
inline constexpr std::uint16_t kWsrServiceFirst = 0x5555;
inline constexpr std::uint16_t kWsrServiceSecond = 0xAAAA;
inline constexpr std::uint16_t kWcrWde = 1U << 2;    // write-once: a set WDE cannot be cleared
inline constexpr std::uint16_t kWcrWtMask = 0xFF00;  // time-out (WT + 1) x 0.5 s; writable any time
inline constexpr std::uint16_t kWmcrPde = 1U << 0;
inline constexpr Address kRtwdog = 0x400B'C000;
inline constexpr Address kRtCs = kRtwdog + 0x0;
inline constexpr Address kRtCnt = kRtwdog + 0x4;
inline constexpr Address kRtToval = kRtwdog + 0x8;
inline constexpr Address kRtWin = kRtwdog + 0xC;
inline constexpr std::uint32_t kRtCsUpdate = 1U << 5;
inline constexpr std::uint32_t kRtCsClkLpo = 1U << 8;  // CLK = 1: LPO clock (32 kHz)
inline constexpr std::uint32_t kRtCsRcs = 1U << 10;
inline constexpr std::uint32_t kRtCsPres = 1U << 12;  // divide by 256
inline constexpr std::uint32_t kRtCsEn = 1U << 7;
inline constexpr std::uint32_t kRtCsUlk = 1U << 11;
inline constexpr std::uint32_t kRtCsCmd32En = 1U << 13;
inline constexpr std::uint32_t kRtUnlockKey = 0xD928'C520;
inline constexpr std::uint32_t kRtRefreshKey = 0xB480'A602;
}  // namespace wdog

// --- GPT1 (i.MX RT1060/1064 RM, GPT chapter; not in the fact sheet) ---------------------------
namespace gpt {
inline constexpr Address kGpt1 = 0x401E'C000;
inline constexpr Address kCr = kGpt1 + 0x00;
inline constexpr Address kPr = kGpt1 + 0x04;
inline constexpr Address kSr = kGpt1 + 0x08;
inline constexpr Address kIr = kGpt1 + 0x0C;
inline constexpr Address kOcr1 = kGpt1 + 0x10;
inline constexpr Address kCnt = kGpt1 + 0x24;
inline constexpr std::uint32_t kCrEn = 1U << 0;
inline constexpr std::uint32_t kCrEnMod = 1U << 1;          // counter restarts from 0 on enable
inline constexpr std::uint32_t kCrWaitEn = 1U << 3;         // keeps counting in WAIT (WFI)
inline constexpr std::uint32_t kCrClkSrcCrystal = 5U << 6;  // ipg_clk_24M
inline constexpr std::uint32_t kCrFreeRun = 1U << 9;
inline constexpr std::uint32_t kCrEn24M = 1U << 10;
inline constexpr std::uint32_t kCrSoftReset = 1U << 15;
inline constexpr std::uint32_t kPrPrescalerShift = 0;      // divide by value + 1 (12 bits)
inline constexpr std::uint32_t kPrPrescaler24MShift = 12;  // 24 MHz pre-divider, value + 1 (4 bits)
inline constexpr std::uint32_t kSrOf1 = 1U << 0;           // output compare 1 (write 1 to clear)
inline constexpr std::uint32_t kSrAll = 0x3F;
inline constexpr std::uint32_t kIrOf1Ie = 1U << 0;
}  // namespace gpt

// --- LPUART1 (i.MX RT1060/1064 RM, LPUART chapter; not in the fact sheet) --------------------
namespace lpuart {
inline constexpr Address kLpuart1 = 0x4018'4000;
inline constexpr Address kGlobal = kLpuart1 + 0x08;
inline constexpr Address kBaud = kLpuart1 + 0x10;
inline constexpr Address kStat = kLpuart1 + 0x14;
inline constexpr Address kCtrl = kLpuart1 + 0x18;
inline constexpr Address kData = kLpuart1 + 0x1C;
inline constexpr std::uint32_t kBaudOsrShift = 24;  // oversampling = OSR + 1 (4..32)
inline constexpr std::uint32_t kBaudSbrMask = 0x1FFF;
inline constexpr std::uint32_t kStatTdre = 1U << 23;
inline constexpr std::uint32_t kStatTc = 1U << 22;
inline constexpr std::uint32_t kCtrlTe = 1U << 19;
inline constexpr std::uint32_t kCtrlRe = 1U << 18;
}  // namespace lpuart

// --- FlexCAN (§5.3 - §5.5) ------------------------------------------------------------------
namespace flexcan {
inline constexpr Address kCan1 = 0x401D'0000;
inline constexpr Address kCan2 = 0x401D'4000;
inline constexpr Address kCan3 = 0x401D'8000;
inline constexpr Address kMcr = 0x000;
inline constexpr Address kCtrl1 = 0x004;
inline constexpr Address kTimer = 0x008;
inline constexpr Address kRxMgMask = 0x010;
inline constexpr Address kRx14Mask = 0x014;
inline constexpr Address kRx15Mask = 0x018;
inline constexpr Address kEcr = 0x01C;
inline constexpr Address kEsr1 = 0x020;
inline constexpr Address kImask2 = 0x024;
inline constexpr Address kImask1 = 0x028;
inline constexpr Address kIflag2 = 0x02C;
inline constexpr Address kIflag1 = 0x030;
inline constexpr Address kCtrl2 = 0x034;
inline constexpr Address kRxFgMask = 0x048;
inline constexpr Address kRxFir = 0x04C;
inline constexpr Address kCbt = 0x050;  // CAN3 only
inline constexpr Address kMbRam = 0x080;
inline constexpr Address kMbRamEnd = 0x480;
inline constexpr Address kRximr = 0x880;
inline constexpr std::uint32_t kMbCount = 64;
constexpr Address mb(std::uint32_t n) {
  return kMbRam + 16 * n;
}
inline constexpr Address kMbCs = 0x0, kMbId = 0x4, kMbWord0 = 0x8, kMbWord1 = 0xC;

// MCR
inline constexpr std::uint32_t kMcrMaxMbMask = 0x7F;
inline constexpr std::uint32_t kMcrAen = 1U << 12;  // abort enable (CODE = ABORT on TX MBs)
inline constexpr std::uint32_t kMcrIrmq = 1U << 16;
inline constexpr std::uint32_t kMcrSrxDis = 1U << 17;
inline constexpr std::uint32_t kMcrDoze = 1U << 18;
inline constexpr std::uint32_t kMcrLpmAck = 1U << 20;
inline constexpr std::uint32_t kMcrWrnEn = 1U << 21;
inline constexpr std::uint32_t kMcrSupv = 1U << 23;
inline constexpr std::uint32_t kMcrFrzAck = 1U << 24;
inline constexpr std::uint32_t kMcrSoftRst = 1U << 25;
inline constexpr std::uint32_t kMcrNotRdy = 1U << 27;
inline constexpr std::uint32_t kMcrHalt = 1U << 28;
inline constexpr std::uint32_t kMcrRfen = 1U << 29;
inline constexpr std::uint32_t kMcrFrz = 1U << 30;
inline constexpr std::uint32_t kMcrMdis = 1U << 31;
// CTRL1
inline constexpr std::uint32_t kCtrl1PropSegShift = 0;
inline constexpr std::uint32_t kCtrl1BoffRec = 1U << 6;  // 1 = no automatic bus-off recovery
inline constexpr std::uint32_t kCtrl1Lbuf = 1U << 4;
inline constexpr std::uint32_t kCtrl1Pseg2Shift = 16;
inline constexpr std::uint32_t kCtrl1Pseg1Shift = 19;
inline constexpr std::uint32_t kCtrl1RjwShift = 22;
inline constexpr std::uint32_t kCtrl1PresDivShift = 24;
inline constexpr std::uint32_t kCtrl1TimingMask = 0xFFFF'0007;
// CTRL2
inline constexpr std::uint32_t kCtrl2RffnShift = 24;
inline constexpr std::uint32_t kCtrl2TasdShift = 19;
inline constexpr std::uint32_t kCtrl2Mrp = 1U << 18;
inline constexpr std::uint32_t kCtrl2Rrs = 1U << 17;
inline constexpr std::uint32_t kCtrl2Eacen = 1U << 16;
// ESR1
inline constexpr std::uint32_t kEsr1BoffInt = 1U << 2;
inline constexpr std::uint32_t kEsr1FltConfShift = 4;
inline constexpr std::uint32_t kEsr1FltConfMask = 3U << kEsr1FltConfShift;
inline constexpr std::uint32_t kEsr1BoffDoneInt = 1U << 19;
inline constexpr std::uint32_t kEsr1ErrInt = 1U << 1;
inline constexpr std::uint32_t kEsr1W1cMask = 0x0003'0007U | (1U << 19) | (1U << 20) | (1U << 21);
// CBT (CAN3)
inline constexpr std::uint32_t kCbtEpSeg2Shift = 0;
inline constexpr std::uint32_t kCbtEpSeg1Shift = 5;
inline constexpr std::uint32_t kCbtEpropSegShift = 10;
inline constexpr std::uint32_t kCbtErjwShift = 16;
inline constexpr std::uint32_t kCbtEpresDivShift = 21;
inline constexpr std::uint32_t kCbtBtf = 1U << 31;
// IFLAG1 with the legacy RX FIFO enabled
inline constexpr std::uint32_t kIflagFifoAvailable = 1U << 5;
inline constexpr std::uint32_t kIflagFifoWarning = 1U << 6;
inline constexpr std::uint32_t kIflagFifoOverflow = 1U << 7;
// Message buffer CS word
inline constexpr std::uint32_t kCsDlcShift = 16;
inline constexpr std::uint32_t kCsRtr = 1U << 20;
inline constexpr std::uint32_t kCsIde = 1U << 21;
inline constexpr std::uint32_t kCsSrr = 1U << 22;
inline constexpr std::uint32_t kCsCodeShift = 24;
inline constexpr std::uint32_t kCsCodeMask = 0xFU << kCsCodeShift;
inline constexpr std::uint32_t kCodeTxInactive = 0x8;
inline constexpr std::uint32_t kCodeTxAbort = 0x9;
inline constexpr std::uint32_t kCodeTxData = 0xC;
inline constexpr std::uint32_t kIdStdShift = 18;
inline constexpr std::uint32_t kIdExtMask = 0x1FFF'FFFF;
}  // namespace flexcan

}  // namespace rtcanboot::imxrt1064
