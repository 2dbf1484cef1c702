/* The only code of the bootloader that runs from the QSPI flash: sets the stack, enables the
 * FPU, copies the ITCM and DTCM images, zeroes .bss and jumps to ITCM. Written in assembly so
 * that no compiler-generated call (memcpy, memset) can reach the flash-resident libraries.
 * It does not rely on the ROM having loaded SP from the vector table. */
  .syntax unified
  .cpu cortex-m7
  .thumb

  .section .boot.stub, "ax", %progbits
  .global rtcanboot_reset_stub
  .type rtcanboot_reset_stub, %function
  .thumb_func
rtcanboot_reset_stub:
  cpsid i
  ldr r0, =__stack_top
  msr msp, r0
  /* CPACR: full access to CP10/CP11 (the hard-float code may use VFP registers anywhere). */
  ldr r0, =0xE000ED88
  ldr r1, [r0]
  orr r1, r1, #(0xF << 20)
  str r1, [r0]
  dsb
  isb

  ldr r0, =__itcm_load
  ldr r1, =__itcm_start
  ldr r2, =__itcm_end
1:
  cmp r1, r2
  bhs 2f
  ldr r3, [r0], #4
  str r3, [r1], #4
  b 1b
2:
  ldr r0, =__dtcm_load
  ldr r1, =__dtcm_start
  ldr r2, =__dtcm_end
3:
  cmp r1, r2
  bhs 4f
  ldr r3, [r0], #4
  str r3, [r1], #4
  b 3b
4:
  ldr r1, =__bss_start
  ldr r2, =__bss_end
  movs r3, #0
5:
  cmp r1, r2
  bhs 6f
  str r3, [r1], #4
  b 5b
6:
  dsb
  isb
  ldr r0, =rtcanboot_ram_entry
  bx r0
  .pool
  .size rtcanboot_reset_stub, . - rtcanboot_reset_stub

/* Exceptions during the copy (only possible with a broken image): wait for the debugger. */
  .global rtcanboot_boot_fault
  .type rtcanboot_boot_fault, %function
  .thumb_func
rtcanboot_boot_fault:
  b rtcanboot_boot_fault
  .size rtcanboot_boot_fault, . - rtcanboot_boot_fault
