#include "rtcanboot/imxrt1064/console.hpp"

#include "rtcanboot/imxrt1064/registers.hpp"
#include "rtcanboot/imxrt1064/system.hpp"

namespace rtcanboot::imxrt1064 {

namespace {
// A stuck transmitter (no clock, model without LPUART) must not hang the bootloader.
constexpr std::uint32_t kWaitTries = 100'000;
bool g_console_ready = false;

void put(char c) {
  for (std::uint32_t tries = 0; tries < kWaitTries; ++tries) {
    if ((reg32(lpuart::kStat) & lpuart::kStatTdre) != 0) {
      reg32(lpuart::kData) = static_cast<std::uint8_t>(c);
      return;
    }
  }
}
}  // namespace

void console_start(std::uint32_t clock_hz, std::uint32_t baud) {
  const UartDivider divider = uart_divider(clock_hz, baud);
  clock_gate_on(ccm::kGateLpuart1);
  reg32(lpuart::kCtrl) = 0;  // TE/RE off while the divider changes
  reg32(lpuart::kBaud) = ((divider.oversampling - 1) << lpuart::kBaudOsrShift) | divider.sbr;
  reg32(lpuart::kCtrl) = lpuart::kCtrlTe;
  g_console_ready = true;
}

void console_write(const char* text) {
  if (!g_console_ready) return;
  for (; *text != '\0'; ++text) {
    if (*text == '\n') put('\r');
    put(*text);
  }
}

void console_write_hex(std::uint32_t value) {
  char text[11] = {'0', 'x'};
  for (int i = 0; i < 8; ++i) {
    const std::uint32_t nibble = (value >> (28 - 4 * i)) & 0xF;
    text[2 + i] = static_cast<char>(nibble < 10 ? '0' + nibble : 'A' + nibble - 10);
  }
  text[10] = '\0';
  console_write(text);
}

void console_write_decimal(std::uint32_t value) {
  char text[11] = {};
  int position = 10;
  do {
    text[--position] = static_cast<char>('0' + value % 10);
    value /= 10;
  } while (value != 0);
  console_write(text + position);
}

void console_flush() {
  if (!g_console_ready) return;
  for (std::uint32_t tries = 0; tries < kWaitTries && (reg32(lpuart::kStat) & lpuart::kStatTc) == 0;
       ++tries) {
  }
}

}  // namespace rtcanboot::imxrt1064
