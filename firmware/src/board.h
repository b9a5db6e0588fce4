/* board.h: what every firmware program shares: exit codes, the instruction
 * counter, the stack gauge, and semihosting I/O (semihost.c). */
#ifndef BOARD_H
#define BOARD_H

#include <stddef.h>
#include <stdint.h>

/* Exit codes QEMU returns to the host (atome_core/firmware.py knows them by name).
 * QEMU itself exits with 1 when a guest stops in a way semihosting does not describe. */
enum {
    EXIT_OK = 0,
    EXIT_USAGE = 2,           /* a command line the program does not understand */
    EXIT_ENGINE = 3,          /* the engine returned an error status */
    EXIT_NO_RAM = 4,          /* the work area is too small for state, scratch and logits */
    EXIT_CHECK_FAILED = 5,    /* a self-test computed the wrong answer */
    EXIT_STACK_OVERFLOW = 6,  /* the paint at the bottom of the stack was overwritten */
    EXIT_FAULT = 13           /* HardFault, NMI, MemManage, BusFault, UsageFault or a stray exception */
};

/* --- semihosting (semihost.c) ------------------------------------------------------- */
void sh_puts(const char *s);            /* buffered; flushed at '\n' and by sh_flush */
void sh_put_u32(uint32_t v);            /* decimal */
void sh_put_hex32(uint32_t v);          /* 8 hex digits */
void sh_put_hex_bytes(const void *p, size_t n);
void sh_flush(void);
int sh_get_cmdline(char *buf, uint32_t len);   /* 0 on success */
/* In a command line of space-separated words: the value of `name=value`, or for a
 * bare `name` the empty string after it; 0 when absent. */
const char *cmdline_arg(const char *line, const char *name);
uint32_t parse_u32(const char *s, const char **end);  /* decimal digits; end may be 0 */
__attribute__((noreturn)) void sh_exit(int code);

/* --- the instruction counter (startup.c) ----------------------------------------------
 * SysTick counts the core clock. QEMU run with -icount shift=0 advances its virtual
 * clock by exactly 1 ns per guest instruction, so at the boards' 25 MHz one tick is
 * a fixed number of instructions (40; the host measures it with calibrate_loop).
 * Deterministic: the same image and input give the same counts on every run. */
uint64_t ticks_now(void);
void calibrate_loop(uint32_t iterations);  /* exactly 2 instructions per iteration */

/* --- the stack gauge (startup.c) --------------------------------------------------------
 * The stack is painted at reset; the deepest word ever written gives the high-water mark. */
uint32_t stack_bytes_used(void);
uint32_t stack_bytes_total(void);
int stack_overflowed(void);

/* The RAM between .bss and the stack: main() places the engine's buffers there. */
extern uint8_t __work_start[], __work_end[];

#endif
