/* selftest.c: proves the platform without the engine. It prints the CRC-32 of the
 * blob linked in flash (the host compares it with zlib.crc32), calibrates the
 * instruction counter, and on request faults, hangs, overflows the stack or exits
 * with a given code, so the host can check that each of those is reported.
 * Command line (semihosting): [crc] [unaligned] [fault] [hang] [recurse=N] [exit=N] */
#include "board.h"

#include <string.h>

extern const uint8_t flash_blob[], flash_blob_end[];

/* bitwise CRC-32 (zlib's polynomial), independent of the engine's table version */
static uint32_t crc32_bitwise(const uint8_t *p, size_t n) {
    uint32_t crc = 0xFFFFFFFFu;
    while (n--) {
        int k;
        crc ^= *p++;
        for (k = 0; k < 8; k++) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1)));
    }
    return ~crc;
}

/* Deep enough recursion overruns the stack: every frame fills a buffer. */
static uint32_t __attribute__((noinline)) recurse(uint32_t depth) {
    volatile uint8_t frame[64];
    uint32_t i, sum = 0;
    for (i = 0; i < sizeof frame; i++) frame[i] = (uint8_t)(depth + i);
    if (depth > 0) sum = recurse(depth - 1);
    for (i = 0; i < sizeof frame; i++) sum += frame[i];
    return sum;
}

static char cmdline[256];

static const char *arg(const char *name) { return cmdline_arg(cmdline, name); }

int main(void) {
    const char *value;
    size_t n = (size_t)(flash_blob_end - flash_blob);
    uint64_t t0, t1;
    if (sh_get_cmdline(cmdline, sizeof cmdline) != 0) cmdline[0] = 0;
    sh_puts("ATOME-SELFTEST\n");
    t0 = ticks_now();
    calibrate_loop(1000000);
    t1 = ticks_now();
    sh_puts("CALIB iterations=1000000 instructions_per_iteration=2 ticks=");
    sh_put_u32((uint32_t)(t1 - t0));
    sh_puts("\n");
    if (arg("crc")) {
        uint32_t crc;
        t0 = ticks_now();
        crc = crc32_bitwise(flash_blob, n);
        t1 = ticks_now();
        sh_puts("CRC bytes=");
        sh_put_u32((uint32_t)n);
        sh_puts(" at=0x");
        sh_put_hex32((uint32_t)(uintptr_t)flash_blob);
        sh_puts(" crc32=0x");
        sh_put_hex32(crc);
        sh_puts(" ticks=");
        sh_put_u32((uint32_t)(t1 - t0));
        sh_puts("\n");
    }
    if ((value = arg("recurse")) != 0) {
        sh_puts("RECURSE ");
        sh_put_u32(recurse(parse_u32(value, 0)));
        sh_puts("\n");
    }
    if (arg("unaligned")) { /* faults on an M0, reads fine on M3/M4/M7 */
        volatile uint32_t words[2] = {0x03020100u, 0x07060504u};
        uint32_t v;
        sh_flush();
        __asm volatile("ldr %0, [%1]" : "=l"(v) : "l"((const volatile uint8_t *)words + 1) : "memory");
        sh_puts("UNALIGNED ");
        sh_put_hex32(v);
        sh_puts("\n");
    }
    if (arg("fault")) {
        sh_flush();
        (void)*(volatile uint32_t *)0xF0000000u; /* nothing is mapped there: a bus error */
    }
    if (arg("hang")) {
        sh_flush();
        for (;;) {
        }
    }
    sh_puts("STACK used=");
    sh_put_u32(stack_bytes_used());
    sh_puts(" size=");
    sh_put_u32(stack_bytes_total());
    sh_puts("\n");
    return (value = arg("exit")) != 0 ? (int)parse_u32(value, 0) : EXIT_OK;
}
