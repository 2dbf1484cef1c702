/* Small firmwares that check the strictness of rtcanboot-twin. One source, one variant per
 * TWIN_TEST_* define (see CMakeLists.txt). Each prints its progress on LPUART1. */
#include <stdint.h>

#define REG32(a) (*(volatile uint32_t*)(a))

#define LPUART1_STAT REG32(0x40184014u)
#define LPUART1_CTRL REG32(0x40184018u)
#define LPUART1_DATA REG32(0x4018401Cu)
#define GPT1_CR REG32(0x401EC000u)
#define GPT1_PR REG32(0x401EC004u)
#define GPT1_SR REG32(0x401EC008u)
#define GPT1_IR REG32(0x401EC00Cu)
#define GPT1_OCR1 REG32(0x401EC010u)
#define SRC_SRSR REG32(0x400F8008u)
#define SRC_GPR5 REG32(0x400F8030u)
#define SCB_VTOR REG32(0xE000ED08u)
#define SCB_AIRCR REG32(0xE000ED0Cu)
#define SCB_CCR REG32(0xE000ED14u)
#define SCB_CPACR REG32(0xE000ED88u)
#define NVIC_ISER(n) REG32(0xE000E100u + 4u * (n))
#define CCM_CSCMR2 REG32(0x400FC020u)
#define CAN2_MCR REG32(0x401D4000u)
#define CAN2_CTRL1 REG32(0x401D4004u)
#define CAN2_MB_CS(n) REG32(0x401D4080u + 16u * (n))
#define CAN2_MB_ID(n) REG32(0x401D4084u + 16u * (n))
#define CAN2_MB_W0(n) REG32(0x401D4088u + 16u * (n))
#define CAN2_MB_W1(n) REG32(0x401D408Cu + 16u * (n))

typedef struct {
  uint32_t operation, base_address, seq_id, seq_num, parallel;
  const uint32_t* tx;
  uint32_t tx_size;
  uint32_t* rx;
  uint32_t rx_size;
} xfer_t;

typedef struct {
  uint32_t version;
  int32_t (*init)(uint32_t, void*);
  int32_t (*program)(uint32_t, void*, uint32_t, const uint32_t*);
  int32_t (*erase_all)(uint32_t, void*);
  int32_t (*erase)(uint32_t, void*, uint32_t, uint32_t);
  int32_t (*read)(uint32_t, void*, uint32_t*, uint32_t, uint32_t);
  void (*clear_cache)(uint32_t);
  int32_t (*xfer)(uint32_t, xfer_t*);
  int32_t (*update_lut)(uint32_t, uint32_t, const uint32_t*, uint32_t);
  int32_t (*get_config)(uint32_t, void*, void*);
} nor_api_t;

#define NOR_API (*(const nor_api_t* const*)(REG32(0x0020001Cu) + 0x10u))

#define RAMFUNC __attribute__((section(".ramfunc"), noinline))

static uint32_t config[128];
__attribute__((unused)) static uint32_t page[64];
static volatile uint32_t ticks;

static void putc_uart(char c) {
  while (!(LPUART1_STAT & (1u << 23))) {
  }
  LPUART1_DATA = (uint8_t)c;
}

static void puts_uart(const char* s) {
  while (*s) putc_uart(*s++);
}

static void puthex(uint32_t v) {
  puts_uart("0x");
  for (int i = 7; i >= 0; --i) putc_uart("0123456789ABCDEF"[(v >> (4 * i)) & 0xF]);
}

static void line(const char* s, uint32_t v) {
  puts_uart(s);
  puthex(v);
  putc_uart('\n');
}

void GPT1_IRQHandler(void) {
  GPT1_SR = 1u;
  ++ticks;
}

__attribute__((unused)) static void wait_mcr(uint32_t mask, uint32_t value) {
  for (uint32_t i = 0; i < 100000u && (CAN2_MCR & mask) != value; ++i) {
  }
}

/* FLEXCAN2 on the EVK pins, 40 MHz CAN clock, left frozen with MB8 free. */
__attribute__((unused)) static void can2_enable_frozen(void) {
  CCM_CSCMR2 = (CCM_CSCMR2 & ~0x3FCu) | (2u << 8) | (1u << 2); /* 80 MHz / 2 */
  REG32(0x401F80F4u) = 0x16u;          /* GPIO_AD_B0_14: CAN2_TX (ALT6, SION) */
  REG32(0x401F80F8u) = 0x16u;          /* GPIO_AD_B0_15: CAN2_RX */
  REG32(0x401F8450u) = 2u;             /* CAN2_RX select input */
  CAN2_MCR &= ~(1u << 31);             /* MDIS */
  wait_mcr(1u << 20, 0);               /* LPMACK */
  CAN2_MCR |= (1u << 30) | (1u << 28); /* FRZ | HALT */
  wait_mcr(1u << 24, 1u << 24);        /* FRZACK */
}

__attribute__((unused)) static void can2_exit_freeze(void) {
  CAN2_MCR &= ~((1u << 30) | (1u << 28));
  wait_mcr(1u << 24, 0);
}

static void copy_config(void) {
  const volatile uint32_t* fcb = (const volatile uint32_t*)0x70000000u;
  for (int i = 0; i < 128; ++i) config[i] = fcb[i];
}

RAMFUNC static int32_t xfer_cmd(uint32_t seq, uint32_t addr, uint32_t op, const uint32_t* tx,
                                uint32_t tx_size, uint32_t* rx, uint32_t rx_size) {
  xfer_t x = {op, addr, seq, 1, 0, tx, tx_size, rx, rx_size};
  return NOR_API->xfer(1, &x);
}

/* The ROM's init loads LUT sequence 0 only and its erase/program leave slot 1 with the
 * read-status sequence: every sequence run through xfer is loaded from the config first. */
__attribute__((unused)) static int32_t load_sequences(void) {
  return NOR_API->update_lut(1, 1, &config[0x80 / 4 + 4], 15);
}

__attribute__((unused)) RAMFUNC static uint32_t wait_idle(void) {
  uint32_t polls = 0, status = 0;
  do {
    xfer_cmd(1, 0, 3, 0, 0, &status, 1);
    ++polls;
  } while (status & 1u);
  return polls;
}

int main(void) {
  LPUART1_CTRL |= (1u << 19) | (1u << 18);
  extern const uint32_t __vectors_start[];
  SCB_VTOR = (uint32_t)__vectors_start;
  puts_uart("twin-test " TWIN_TEST_NAME " start\n");
  copy_config();
#if defined(TWIN_TEST_HELLO)
  if (SRC_GPR5 == 0xB007CAFEu) {
    line("warm reset seen, SRSR=", SRC_SRSR);
    SRC_GPR5 = 0;
    puts_uart("DONE\n");
    for (;;) __asm volatile("wfi");
  }
  /* GPT1: 24 MHz crystal, PRESCALER 23 -> 1 MHz, compare every 1000 ticks, IRQ 100. */
  GPT1_CR = 0;
  GPT1_PR = 23u; /* PRESCALER: 24 MHz / 24 */
  GPT1_OCR1 = 999u;
  GPT1_IR = 1u;
  GPT1_CR = (1u << 10) | (5u << 6) | (1u << 1) | 1u;
  NVIC_ISER(100 / 32) = 1u << (100 % 32);
  __asm volatile("cpsie i");
  while (ticks < 10) __asm volatile("wfi");
  line("ticks ", ticks);
  int32_t st = NOR_API->init(1, config);
  line("init ", (uint32_t)st);
  st = NOR_API->erase(1, config, 0x3F0000u, 0x1000u);
  line("erase ", (uint32_t)st);
  for (int i = 0; i < 64; ++i) page[i] = 0x01020304u * (uint32_t)i;
  st = NOR_API->program(1, config, 0x3F0000u, page);
  line("program ", (uint32_t)st);
  NOR_API->clear_cache(1);
  line("readback ", REG32(0x703F0000u + 4u * 7u));
  uint32_t rb[4] = {0};
  st = NOR_API->read(1, config, rb, 0x3F0010u, 16);
  line("rom read ", rb[0]);
  /* Non-blocking erase through xfer, with read-status polling from RAM. */
  line("update_lut ", (uint32_t)load_sequences());
  xfer_cmd(3, 0, 0, 0, 0, 0, 0);
  xfer_cmd(5, 0x3F1000u, 0, 0, 0, 0, 0);
  line("xfer erase polls ", wait_idle());
  xfer_cmd(3, 0, 0, 0, 0, 0, 0);
  xfer_cmd(9, 0x3F1000u, 2, page, 256, 0, 0);
  line("xfer program polls ", wait_idle());
  NOR_API->clear_cache(1);
  line("xfer readback ", REG32(0x703F1000u + 4u * 9u));
  SRC_GPR5 = 0xB007CAFEu;
  puts_uart("resetting\n");
  SCB_AIRCR = 0x05FA0004u;
  for (;;) {
  }
#elif defined(TWIN_TEST_READ_DURING_PROGRAM)
  NOR_API->init(1, config);
  NOR_API->erase(1, config, 0x3F0000u, 0x1000u);
  for (int i = 0; i < 64; ++i) page[i] = 0;
  load_sequences();
  xfer_cmd(3, 0, 0, 0, 0, 0, 0);
  xfer_cmd(9, 0x3F0000u, 2, page, 256, 0, 0);
  line("flash word during program ", REG32(0x70000000u));
  puts_uart("not reached\n");
#elif defined(TWIN_TEST_ZERO_TO_ONE)
  NOR_API->init(1, config);
  NOR_API->erase(1, config, 0x3F0000u, 0x1000u);
  for (int i = 0; i < 64; ++i) page[i] = 0x0F0F0F0Fu;
  NOR_API->program(1, config, 0x3F0000u, page);
  for (int i = 0; i < 64; ++i) page[i] = 0xF0F0F0F0u;
  line("second program ", (uint32_t)NOR_API->program(1, config, 0x3F0000u, page));
#elif defined(TWIN_TEST_STALE)
  SCB_CCR |= 1u << 16; /* D-cache on */
  NOR_API->init(1, config);
  NOR_API->erase(1, config, 0x3F0000u, 0x1000u);
  NOR_API->clear_cache(1);
  line("stale word ", REG32(0x703F0000u));
  puts_uart("not reached\n");
#elif defined(TWIN_TEST_INSTANCE0)
  line("init(0) ", (uint32_t)NOR_API->init(0, config));
  puts_uart("not reached\n");
#elif defined(TWIN_TEST_CAN_TIMING_OUTSIDE_FREEZE)
  can2_enable_frozen();
  can2_exit_freeze();
  CAN2_CTRL1 = 0x01730007u; /* 1 Mbit/s at 40 MHz, but not in freeze mode */
  line("CTRL1 ", CAN2_CTRL1);
#elif defined(TWIN_TEST_CAN_WRONG_BITRATE)
  can2_enable_frozen();
  CAN2_CTRL1 = 0x01730007u;             /* 1 Mbit/s at 40 MHz */
  CAN2_MCR = (CAN2_MCR & ~0x7Fu) | 15u; /* MAXMB = 15 */
  can2_exit_freeze();
  CAN2_MB_CS(8) = 0x8u << 24;
  CAN2_MB_ID(8) = 0x123u << 18;
  CAN2_MB_W0(8) = 0x11223344u;
  CAN2_MB_W1(8) = 0x55667788u;
  CAN2_MB_CS(8) = (0xCu << 24) | (8u << 16);
  for (volatile uint32_t i = 0; i < 200000u; ++i) {
  }
  line("MB8 CS ", CAN2_MB_CS(8));
#elif defined(TWIN_TEST_XIP_ERASE)
  /* Runs in place from the flash: a blocking erase returns into code in the flash window. */
  NOR_API->init(1, config);
  line("erase from XIP ", (uint32_t)NOR_API->erase(1, config, 0x3F0000u, 0x1000u));
#endif
  puts_uart("DONE\n");
  for (;;) __asm volatile("wfi");
}
