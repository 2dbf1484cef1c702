/* Start-up of the twin test firmwares: vector table, data/bss/ramfunc set-up, FPU on. */
#include <stdint.h>

extern uint32_t __stack_top[];
extern uint32_t __data_start[], __data_end[], __data_load[];
extern uint32_t __bss_start[], __bss_end[];
extern uint32_t __ramfunc_start[], __ramfunc_end[], __ramfunc_load[];
int main(void);
void Reset_Handler(void);
void GPT1_IRQHandler(void);

static void Default_Handler(void) {
  for (;;) {
  }
}

__attribute__((section(".vectors"), used)) const void* const twin_test_vectors[16 + 158] = {
    [0] = __stack_top,
    [1] = (const void*)Reset_Handler,
    [2] = (const void*)Default_Handler,
    [3] = (const void*)Default_Handler,
    [16 + 100] = (const void*)GPT1_IRQHandler,
};

void Reset_Handler(void) {
  *(volatile uint32_t*)0xE000ED88u |= 0xFu << 20; /* CPACR: CP10/CP11 full access */
  __asm volatile("dsb\n isb");
  for (uint32_t *s = __ramfunc_load, *d = __ramfunc_start; d < __ramfunc_end;) *d++ = *s++;
  for (uint32_t *s = __data_load, *d = __data_start; d < __data_end;) *d++ = *s++;
  for (uint32_t* d = __bss_start; d < __bss_end;) *d++ = 0;
  main();
  for (;;) {
  }
}
