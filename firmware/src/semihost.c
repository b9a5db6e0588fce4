/* semihost.c: console output, command line and exit through ARM semihosting
 * (BKPT 0xAB; QEMU: -semihosting-config enable=on,target=native). Output is
 * collected in a line buffer and written with SYS_WRITE0: one trap per line. */
#include "board.h"

#include <string.h>

enum {
    SYS_WRITE0 = 0x04,
    SYS_GET_CMDLINE = 0x15,
    SYS_EXIT_EXTENDED = 0x20,
    ADP_STOPPED_APPLICATION_EXIT = 0x20026
};

static uint32_t semihost(uint32_t op, const void *arg) {
    register uint32_t r0 __asm("r0") = op;
    register const void *r1 __asm("r1") = arg;
    __asm volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

static char line[256];
static uint32_t used;

void sh_flush(void) {
    if (used == 0) return;
    line[used] = 0;
    semihost(SYS_WRITE0, line);
    used = 0;
}

static void put_char(char c) {
    line[used++] = c;
    if (c == '\n' || used == sizeof line - 1) sh_flush();
}

void sh_puts(const char *s) {
    while (*s) put_char(*s++);
}

void sh_put_u32(uint32_t v) {
    char digits[10];
    int n = 0;
    do digits[n++] = (char)('0' + v % 10); while (v /= 10);
    while (n) put_char(digits[--n]);
}

void sh_put_hex32(uint32_t v) {
    int shift;
    for (shift = 28; shift >= 0; shift -= 4) put_char("0123456789abcdef"[(v >> shift) & 15]);
}

void sh_put_hex_bytes(const void *p, size_t n) {
    const uint8_t *b = p;
    size_t i;
    for (i = 0; i < n; i++) {
        put_char("0123456789abcdef"[b[i] >> 4]);
        put_char("0123456789abcdef"[b[i] & 15]);
    }
}

int sh_get_cmdline(char *buf, uint32_t len) {
    struct { char *buf; uint32_t len; } block = {buf, len};
    return (int)semihost(SYS_GET_CMDLINE, &block);
}

const char *cmdline_arg(const char *line, const char *name) {
    size_t n = strlen(name);
    const char *p = line;
    while (p && *p) {
        while (*p == ' ') p++;
        if (strncmp(p, name, n) == 0 && (p[n] == ' ' || p[n] == 0 || p[n] == '='))
            return p[n] == '=' ? p + n + 1 : p + n;
        while (*p && *p != ' ') p++;
    }
    return 0;
}

uint32_t parse_u32(const char *s, const char **end) {
    uint32_t v = 0;
    while (s && *s >= '0' && *s <= '9') v = 10 * v + (uint32_t)(*s++ - '0');
    if (end) *end = s;
    return v;
}

void sh_exit(int code) {
    uint32_t block[2] = {ADP_STOPPED_APPLICATION_EXIT, (uint32_t)code};
    sh_flush();
    semihost(SYS_EXIT_EXTENDED, block);
    for (;;) {
    }
}
