// The board: MIMXRT1064-EVK. The only place where board specifics (pins, clock choices,
// console) live; another board provides its own board_*.cpp with this interface.
#pragma once

#include <cstdint>

namespace rtcanboot::imxrt1064::board {

inline constexpr const char* kName = "MIMXRT1064-EVK";
// CAN clock root: pll3_sw_clk / 6 = 80 MHz, divided by 2 (CSCMR2 CAN_CLK_SEL = 2, PODF = 1).
// 40 MHz gives every CiA 301 bit rate exactly (20 tq per bit, 10 at 800 kbit/s).
inline constexpr std::uint32_t kCanClockHz = 40'000'000;
// UART clock root: pll3_80m undivided (CSCDR1 UART_CLK_SEL = 0, PODF = 0).
inline constexpr std::uint32_t kUartClockHz = 80'000'000;
inline constexpr std::uint32_t kConsoleBaud = 115'200;

// CAN and UART clock roots; assumes PLL3 (USB1 PLL, 480 MHz) runs, as the boot ROM leaves it
// after a FlexSPI boot (it clocks FlexSPI2 from it).
void init_clocks();
// The selected FlexCAN instance's TX/RX pins and the console pins.
void init_pins();
// LPUART1 at 115200 bit/s.
void init_console();

}  // namespace rtcanboot::imxrt1064::board
