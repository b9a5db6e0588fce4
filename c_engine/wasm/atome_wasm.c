/* atome_wasm.c: what the engine needs from a libc, for the WebAssembly build.
 *
 * The engine (../atome.c, ../atome_load.c) is compiled unchanged for wasm32; it calls
 * only memcpy, memmove, memset and memcmp, defined here. The module imports its memory from the
 * page (wasm-ld --import-memory): the page's JavaScript places the blob, model view,
 * decode arena, state, scratch and logits after __heap_base, so the engine still never
 * allocates. This file is compiled with -fno-builtin, so the loops below stay loops
 * (otherwise the compiler may turn them back into calls to themselves).
 */
#include <stddef.h>
#include <string.h>

void *memcpy(void *dst, const void *src, size_t n) {
    unsigned char *d = dst;
    const unsigned char *s = src;
    while (n--) *d++ = *s++;
    return dst;
}

void *memmove(void *dst, const void *src, size_t n) {
    unsigned char *d = dst;
    const unsigned char *s = src;
    if (d < s)
        while (n--) *d++ = *s++;
    else
        while (n--) d[n] = s[n];
    return dst;
}

void *memset(void *dst, int c, size_t n) {
    unsigned char *d = dst;
    while (n--) *d++ = (unsigned char)c;
    return dst;
}

int memcmp(const void *a, const void *b, size_t n) {
    const unsigned char *x = a, *y = b;
    for (; n; n--, x++, y++)
        if (*x != *y) return *x < *y ? -1 : 1;
    return 0;
}
