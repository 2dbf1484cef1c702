// Transmit-only polled console on LPUART1 (boot banner and rare status lines; never used while
// CAN traffic is time-critical, since each character blocks for ~87 us at 115200 bit/s).
#pragma once

#include <cstdint>

namespace rtcanboot::imxrt1064 {

// Oversampling ratio (8..32) and SBR divider that give the closest baud rate to `baud`.
struct UartDivider {
  std::uint32_t oversampling = 0;
  std::uint32_t sbr = 0;
};
constexpr UartDivider uart_divider(std::uint32_t clock_hz, std::uint32_t baud) {
  UartDivider best{};
  std::uint64_t best_error = ~std::uint64_t{0};
  for (std::uint32_t osr = 8; osr <= 32; ++osr) {
    const std::uint32_t sbr = (clock_hz + osr * baud / 2) / (osr * baud);
    if (sbr == 0 || sbr > 0x1FFF) continue;
    const std::uint64_t actual = clock_hz / (osr * sbr);
    const std::uint64_t error = actual > baud ? actual - baud : baud - actual;
    if (error < best_error) {
      best_error = error;
      best = {osr, sbr};
    }
  }
  return best;
}

void console_start(std::uint32_t clock_hz, std::uint32_t baud);
void console_write(const char* text);
void console_write_hex(std::uint32_t value);
void console_write_decimal(std::uint32_t value);
// Waits until the last character left the shift register (before a reset or a jump).
void console_flush();

}  // namespace rtcanboot::imxrt1064
