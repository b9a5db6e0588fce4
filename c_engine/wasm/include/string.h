/* string.h for the WebAssembly build: the engine needs only these four, and
 * atome_wasm.c defines them (wasm32 has no libc here). Found before any system
 * header because the wasm target puts wasm/include first on the include path. */
#ifndef ATOME_WASM_STRING_H
#define ATOME_WASM_STRING_H
#include <stddef.h>
void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
#endif
