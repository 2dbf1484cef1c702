// Unit tests of the SoC peripheral models through their register interface.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "twin/event_queue.hpp"
#include "twin/soc_peripherals.hpp"

namespace rtcanboot::twin {
namespace {

class Rig : public InterruptController, public Reporter {
 public:
  Rig() {
    ctx.clock = &q;
    ctx.irq = this;
    ctx.reporter = this;
    ctx.request_reset = [this](ResetCause c, const std::string& why) {
      resets.push_back(c);
      reset_why = why;
    };
    ctx.console = [this](char c) { console.push_back(c); };
    ctx.ahb_buffer_reset = [this] { ++ahb_resets; };
  }
  void set_irq_level(unsigned irq, bool asserted) override {
    if (irq < 256) lines[irq] = asserted;
  }
  void report(Severity s, const std::string&, const std::string& m, std::uint32_t) override {
    if (s == Severity::kFault) faults.push_back(m);
  }
  EventQueue q;
  SocContext ctx;
  bool lines[256] = {};
  std::vector<ResetCause> resets;
  std::string reset_why;
  std::string console;
  int ahb_resets = 0;
  std::vector<std::string> faults;
};

TEST(CcmTest, CanClockRootFromCscmr2AndGates) {
  Rig r;
  Ccm ccm(r.ctx);
  ccm.reset(false);
  EXPECT_EQ(ccm.can_root_hz(), 0u);  // reset: CAN_CLK_SEL = 3 (off)
  const std::uint32_t cscmr2 = ccm.read(0x20, 4, 0);
  ccm.write(0x20, (cscmr2 & ~0x3FCu) | (2u << 8) | (1u << 2), 4, 0);  // SEL 2 (80 MHz), PODF 1
  EXPECT_EQ(ccm.can_root_hz(), 40'000'000u);
  EXPECT_EQ(ccm.can_clock_hz(2), 40'000'000u);
  ccm.write(0x68, 0xFFFF'FFFFu & ~(3u << 18), 4, 0);  // CCGR0 CG9 (CAN2) off
  EXPECT_EQ(ccm.can_clock_hz(2), 0u);
  EXPECT_EQ(ccm.can_clock_hz(1), 40'000'000u);
  ccm.write(0x20, (cscmr2 & ~0x3FCu) | (0u << 8) | (2u << 2), 4, 0);  // 60 MHz / 3
  EXPECT_EQ(ccm.can_root_hz(), 20'000'000u);
}

TEST(IomuxcTest, CanPinsNeedMuxAndDaisy) {
  Rig r;
  Iomuxc io(r.ctx);
  io.reset(false);
  EXPECT_FALSE(io.can_pins_muxed(2));
  io.write(0xF4, 0x16, 4, 0);          // GPIO_AD_B0_14 ALT6 + SION
  io.write(0xF8, 0x16, 4, 0);          // GPIO_AD_B0_15 ALT6 + SION
  EXPECT_FALSE(io.can_pins_muxed(2));  // RX daisy not selected
  io.write(0x450, 2, 4, 0);
  EXPECT_TRUE(io.can_pins_muxed(2));
  EXPECT_FALSE(io.can_pins_muxed(3));
  io.write(0xF4, 0x18, 4, 0);
  io.write(0xF8, 0x18, 4, 0);
  io.write(0x78C, 1, 4, 0);
  EXPECT_TRUE(io.can_pins_muxed(3));
}

TEST(SrcTest, GprsAndResetFlagsSurviveWarmResetOnly) {
  Rig r;
  Src src(r.ctx, SrcGprOverReset::kKeptOverWarmReset);
  src.reset(false);
  src.record_reset(ResetCause::kPowerOn);
  src.write(0x30, 0xB007'CAFE, 4, 0);  // GPR5
  src.reset(true);
  src.record_reset(ResetCause::kSysResetReq);
  EXPECT_EQ(src.read(0x30, 4, 0), 0xB007'CAFEu);
  EXPECT_EQ(src.read(0x08, 4, 0), 0x3u);
  src.write(0x08, 0x1, 4, 0);  // w1c
  EXPECT_EQ(src.read(0x08, 4, 0), 0x2u);
  src.reset(false);
  EXPECT_EQ(src.read(0x30, 4, 0), 0u);
}

TEST(SrcTest, GprReadingsDecideWhichWarmResetsClearTheGprs) {
  struct Expect {
    SrcGprOverReset reading;
    bool kept_over_sysresetreq;
    bool kept_over_watchdog;
  };
  for (const Expect e : {Expect{SrcGprOverReset::kClearedByEveryReset, false, false},
                         Expect{SrcGprOverReset::kClearedBySysResetReq, false, true},
                         Expect{SrcGprOverReset::kKeptOverWarmReset, true, true}}) {
    for (const ResetCause cause :
         {ResetCause::kSysResetReq, ResetCause::kWdog, ResetCause::kWdog3}) {
      Rig r;
      Src src(r.ctx, e.reading);
      src.reset(false);
      src.record_reset(ResetCause::kPowerOn);
      src.write(0x30, 0xB007'10AD, 4, 0);  // GPR5
      src.reset(true);
      src.record_reset(cause);
      const bool kept =
          cause == ResetCause::kSysResetReq ? e.kept_over_sysresetreq : e.kept_over_watchdog;
      EXPECT_EQ(src.read(0x30, 4, 0), kept ? 0xB007'10ADu : 0u)
          << static_cast<int>(e.reading) << " " << static_cast<std::uint32_t>(cause);
    }
  }
}

TEST(SnvsTest, LpgprReadingsDecideWhetherAWarmResetKeepsThem) {
  for (const auto reading :
       {SnvsLpgprOverReset::kClearedByWarmReset, SnvsLpgprOverReset::kKeptOverWarmReset}) {
    Rig r;
    Snvs snvs(r.ctx, reading);
    snvs.reset(false);
    snvs.write(0x100, 0x1234'5678, 4, 0);
    snvs.reset(true);
    EXPECT_EQ(snvs.read(0x100, 4, 0),
              reading == SnvsLpgprOverReset::kKeptOverWarmReset ? 0x1234'5678u : 0u);
    snvs.reset(false);
    EXPECT_EQ(snvs.read(0x100, 4, 0), 0u);
  }
}

TEST(GptTest, CrystalClockCompareRaisesIrqInRestartMode) {
  Rig r;
  Ccm ccm(r.ctx);
  ccm.reset(false);
  Gpt gpt("GPT1", 100, ccm, r.ctx);
  gpt.reset(false);
  gpt.write(0x04, 23u, 4, 0);  // PRESCALER: 24 MHz / 24 = 1 MHz
  gpt.write(0x10, 999, 4, 0);  // OCR1
  gpt.write(0x0C, 1, 4, 0);    // OF1IE
  gpt.write(0x00, (1u << 10) | (5u << 6) | (1u << 1) | 1u, 4, 0);
  r.q.advance_to(500'000);
  EXPECT_EQ(gpt.read(0x24, 4, 0), 500u);
  EXPECT_FALSE(r.lines[100]);
  r.q.advance_to(1'000'100);
  EXPECT_TRUE(r.lines[100]);
  EXPECT_EQ(gpt.read(0x08, 4, 0) & 1u, 1u);
  gpt.write(0x08, 1, 4, 0);
  EXPECT_FALSE(r.lines[100]);
  EXPECT_LT(gpt.read(0x24, 4, 0), 10u);  // restarted at the compare
}

TEST(RtwdogTest, UnlockRefreshAndExpiry) {
  Rig r;
  Rtwdog wd(r.ctx);
  wd.reset(false);
  wd.write(0x08, 100, 4, 0);  // locked: ignored + fault
  EXPECT_EQ(r.faults.size(), 1u);
  wd.write(0x04, 0xD928'C520u, 4, 0);
  wd.write(0x08, 32, 4, 0);  // TOVAL: 32 LPO ticks = 1 ms
  wd.write(0x00, (1u << 8) | (1u << 7) | (1u << 5) | (1u << 13), 4, 0);  // LPO, EN, UPDATE
  EXPECT_TRUE(wd.enabled());
  r.q.advance_to(800'000);
  wd.write(0x04, 0xB480'A602u, 4, 0);  // refresh
  r.q.advance_to(1'500'000);
  EXPECT_TRUE(r.resets.empty());
  r.q.advance_to(2'000'000);
  ASSERT_EQ(r.resets.size(), 1u);
  EXPECT_EQ(r.resets[0], ResetCause::kWdog3);
  wd.write(0x04, 0x1234'5678u, 4, 0);  // a bad key resets at once
  EXPECT_EQ(r.resets.size(), 2u);
}

TEST(WdogTest, ExpiresUnlessServiced) {
  Rig r;
  Wdog wd("WDOG1", 92, r.ctx);
  wd.reset(false);
  wd.write(0x00, (1u << 8) | 0x4 | 0x30, 2, 0);  // WT = 1 -> 1 s, WDE
  r.q.advance_to(900'000'000);
  wd.write(0x02, 0x5555, 2, 0);
  wd.write(0x02, 0xAAAA, 2, 0);
  r.q.advance_to(1'800'000'000);
  EXPECT_TRUE(r.resets.empty());
  r.q.advance_to(2'000'000'000);
  ASSERT_EQ(r.resets.size(), 1u);
  EXPECT_EQ(r.resets[0], ResetCause::kWdog);
}

TEST(WdogTest, LeftRunningByTheRomCannotBeDisabledButItsTimeoutCanGrow) {
  Rig r;
  Wdog wd("WDOG1", 92, r.ctx, /*left_running=*/true);
  wd.reset(false);
  EXPECT_TRUE(wd.enabled());
  wd.write(0x00, 0x30, 2, 0);  // try to clear WDE: write-once, ignored (and reported)
  EXPECT_TRUE(wd.enabled());
  EXPECT_EQ(r.faults.size(), 1u);
  wd.write(0x00, 0xFF00u | 0x34, 2, 0);  // WT = 0xFF: 128 s
  wd.write(0x02, 0x5555, 2, 0);
  wd.write(0x02, 0xAAAA, 2, 0);
  r.q.advance_to(100'000'000'000);
  EXPECT_TRUE(r.resets.empty());
  r.q.advance_to(130'000'000'000);
  ASSERT_EQ(r.resets.size(), 1u);
  // The ROM enables it again at every boot: 0.5 s after the next reset.
  wd.reset(true);
  const Nanos after_reset = 130'000'000'000;
  r.q.advance_to(after_reset + 400'000'000);
  EXPECT_EQ(r.resets.size(), 1u);
  r.q.advance_to(after_reset + 600'000'000);
  EXPECT_EQ(r.resets.size(), 2u);
}

TEST(RtwdogTest, LeftRunningByTheRomExpiresAfterItsResetTimeoutUnlessReconfigured) {
  Rig r;
  Rtwdog wd(r.ctx, /*left_running=*/true);
  wd.reset(false);
  r.q.advance_to(30'000'000);
  EXPECT_TRUE(r.resets.empty());
  r.q.advance_to(40'000'000);  // TOVAL 0x400 LPO ticks: 32 ms
  ASSERT_EQ(r.resets.size(), 1u);
  EXPECT_EQ(r.resets[0], ResetCause::kWdog3);
}

TEST(LpuartTest, TransmitsOnlyWithTe) {
  Rig r;
  Lpuart u("LPUART1", r.ctx);
  u.reset(false);
  u.write(0x1C, 'x', 4, 0);
  EXPECT_TRUE(r.console.empty());
  u.write(0x18, 1u << 19, 4, 0);
  EXPECT_NE(u.read(0x14, 4, 0) & (1u << 23), 0u);  // TDRE
  u.write(0x1C, 'o', 4, 0);
  u.write(0x1C, 'k', 4, 0);
  EXPECT_EQ(r.console, "ok");
}

TEST(FlexSpi2Test, SwresetSelfClearsAndResetsAhbBuffers) {
  Rig r;
  FlexSpi2 f(r.ctx);
  f.reset(false);
  f.write(0x00, f.read(0x00, 4, 0) | 1u, 4, 0);
  EXPECT_EQ(f.read(0x00, 4, 0) & 1u, 0u);
  EXPECT_EQ(r.ahb_resets, 1);
  f.write(0x0C, f.read(0x0C, 4, 0) | 2u, 4, 0);  // CLRAHBRXBUF
  EXPECT_EQ(r.ahb_resets, 2);
  EXPECT_EQ(f.read(0xE0, 4, 0) & 3u, 3u);
  f.write(0x200, 0x0A18'04EB, 4, 0);
  EXPECT_EQ(f.lut(0), 0x0A18'04EBu);
  f.write(0x1C, 1, 4, 0);  // lock
  f.write(0x200, 0, 4, 0);
  EXPECT_EQ(f.lut(0), 0x0A18'04EBu);
  EXPECT_EQ(r.faults.size(), 1u);
}

TEST(FlexSpi2Test, InitFromFcbLoadsSequenceZeroOnlyAndResetReadingsDecideTheRest) {
  Rig r;
  FlexSpi2 f(r.ctx);
  f.reset(false);
  std::vector<std::uint8_t> fcb(512, 0);
  for (std::uint32_t i = 0; i < 64; ++i) {
    const std::uint32_t word = 0x1000u + i;
    std::memcpy(&fcb[0x80 + 4 * i], &word, 4);
  }
  f.init_from_fcb(fcb.data());
  for (unsigned i = 0; i < 4; ++i) EXPECT_EQ(f.lut(i), 0x1000u + i);
  for (unsigned i = 4; i < 64; ++i) EXPECT_EQ(f.lut(i), 0u) << i;
  const std::uint32_t seq[4] = {1, 2, 3, 4};
  f.load_sequences(15, seq, 1);
  EXPECT_EQ(f.lut(63), 4u);
  f.reset(true);  // default reading: zero after any reset
  EXPECT_EQ(f.lut(0), 0u);
  EXPECT_EQ(f.lut(63), 0u);
  f.set_lut_after_reset(LutAfterReset::kKeptOverWarmReset, 1);
  f.load_sequences(15, seq, 1);
  f.reset(true);
  EXPECT_EQ(f.lut(63), 4u);
  f.reset(false);
  EXPECT_EQ(f.lut(63), 0u);
}

TEST(CcmTest, Err050235Pll3Div6IsWrongWhileLpuart1IsGatedOff) {
  Rig r;
  std::vector<std::string> warnings;
  struct Sink : Reporter {
    std::vector<std::string>* out;
    void report(Severity s, const std::string&, const std::string& m, std::uint32_t) override {
      if (s == Severity::kWarning) out->push_back(m);
    }
  } sink;
  sink.out = &warnings;
  r.ctx.reporter = &sink;
  CcmAnalog analog(r.ctx, Pll3AfterBoot::kRunning);
  analog.reset(false);
  Ccm ccm(r.ctx);
  ccm.set_analog(&analog);
  ccm.reset(false);
  const std::uint32_t cscmr2 = ccm.read(0x20, 4, 0);
  ccm.write(0x20, (cscmr2 & ~0x3FCu) | (2u << 8) | (1u << 2), 4, 0);  // SEL 2, PODF 1
  EXPECT_EQ(ccm.can_root_hz(), 40'000'000u);
  EXPECT_TRUE(warnings.empty());
  ccm.write(0x7C, 0xFFFF'FFFFu & ~(3u << 24), 4, 0);  // CCGR5 CG12 (LPUART1) off
  EXPECT_NE(ccm.can_root_hz(), 40'000'000u);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("ERR050235"), std::string::npos);
  // The oscillator root does not depend on the LPUART1 gate.
  ccm.write(0x20, (cscmr2 & ~0x3FCu) | (1u << 8), 4, 0);  // SEL 1, PODF 0
  EXPECT_EQ(ccm.can_root_hz(), 24'000'000u);
}

TEST(CcmTest, Pll3ReadingsDecideThePll3RootsButNotTheOscillator) {
  struct Expect {
    Pll3AfterBoot reading;
    std::uint32_t can_pll3_div6;
    std::uint32_t uart_pll3_80m;
    bool locked;
  };
  for (const Expect e : {Expect{Pll3AfterBoot::kPoweredDown, 0, 0, false},
                         Expect{Pll3AfterBoot::kBypassed, 4'000'000, 4'000'000, true},
                         Expect{Pll3AfterBoot::kRunning, 80'000'000, 80'000'000, true}}) {
    Rig r;
    CcmAnalog analog(r.ctx, e.reading);
    analog.reset(false);
    Ccm ccm(r.ctx);
    ccm.set_analog(&analog);
    ccm.reset(false);
    const std::uint32_t cscmr2 = ccm.read(0x20, 4, 0);
    ccm.write(0x20, (cscmr2 & ~0x3FCu) | (2u << 8), 4, 0);  // SEL 2, PODF 0
    EXPECT_EQ(ccm.can_root_hz(), e.can_pll3_div6);
    ccm.write(0x24, ccm.read(0x24, 4, 0) & ~0x7Fu, 4, 0);  // UART from pll3_80m, PODF 0
    EXPECT_EQ(ccm.uart_root_hz(), e.uart_pll3_80m);
    EXPECT_EQ((analog.read(0x10, 4, 0) & 0x8000'0000u) != 0, e.locked);
    ccm.write(0x20, (cscmr2 & ~0x3FCu) | (1u << 8), 4, 0);  // SEL 1: oscillator
    EXPECT_EQ(ccm.can_root_hz(), 24'000'000u);
    ccm.write(0x24, ccm.read(0x24, 4, 0) | 0x40u, 4, 0);  // UART from the oscillator
    EXPECT_EQ(ccm.uart_root_hz(), 24'000'000u);
  }
}

TEST(CcmAnalogTest, PllsReadLockedAndSetClearAliasesWork) {
  Rig r;
  CcmAnalog a(r.ctx, Pll3AfterBoot::kRunning);
  a.reset(false);
  EXPECT_NE(a.read(0x10, 4, 0) & 0x8000'0000u, 0u);
  a.write(0x14, 0x40, 4, 0);  // SET
  EXPECT_NE(a.read(0x10, 4, 0) & 0x40u, 0u);
  a.write(0x18, 0x40, 4, 0);  // CLR
  EXPECT_EQ(a.read(0x10, 4, 0) & 0x40u, 0u);
}

}  // namespace
}  // namespace rtcanboot::twin
