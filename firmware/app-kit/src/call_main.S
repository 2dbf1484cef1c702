/* The start-up's last step: call the application's main() and reset if it ever returns.
 * ISO C++ does not let a program name main(), so the call is in assembly. It is in a file of its
 * own, not inline assembly in app_startup.cpp: with link-time optimisation a reference inside
 * inline assembly is invisible to the linker, which then drops main() as unused (an application
 * built with -flto failed to link: "undefined reference to main"). */
  .syntax unified
  .cpu cortex-m7
  .thumb

  .section .text.rtcanboot_app_call_main, "ax", %progbits
  .global rtcanboot_app_call_main
  .type rtcanboot_app_call_main, %function
  .thumb_func
rtcanboot_app_call_main:
  bl main
  b rtcanboot_app_main_returned
  .size rtcanboot_app_call_main, . - rtcanboot_app_call_main
