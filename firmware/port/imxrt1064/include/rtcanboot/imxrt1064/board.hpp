// The board: MIMXRT1064-EVK. The only place where board specifics (pins, clock choices,
// console) live; another board provides its own board_*.cpp with this interface.
#pragma once

#include <cstdint>

namespace rtcanboot::imxrt1064::board {

inline constexpr const char* kName = "MIMXRT1064-EVK";
// CAN clock root: the 24 MHz crystal oscillator, undivided (CSCMR2 CAN_CLK_SEL = 1, PODF = 0).
// Not pll3_sw_clk/6 (SEL = 2, the SDK's choice): there erratum ERR050235 makes the CAN clock
// depend on the LPUART1 clock gate, and both PLL3 roots depend on the boot ROM leaving PLL3
// running (unconfirmed, fact sheet §5.2). 24 MHz gives every CiA 301 bit rate exactly.
inline constexpr std::uint32_t kCanClockHz = 24'000'000;
// UART clock root: the oscillator too (CSCDR1 UART_CLK_SEL = 1, PODF = 0), so the console does
// not depend on PLL3 either.
inline constexpr std::uint32_t kUartClockHz = 24'000'000;
inline constexpr std::uint32_t kConsoleBaud = 115'200;

// CAN and UART clock roots, both from the oscillator.
void init_clocks();
// Checks the CAN and UART clock roots as the CCM has them now: nullptr when CAN runs at
// kCanClockHz, else what is wrong (ERR050235, a disabled root, PLL3 not running for a PLL3
// root). Code that changes the clock tree (an application) calls it before starting CAN.
const char* check_clocks();
// The selected FlexCAN instance's TX/RX pins and the console pins.
void init_pins();
// LPUART1 at 115200 bit/s.
void init_console();

}  // namespace rtcanboot::imxrt1064::board
