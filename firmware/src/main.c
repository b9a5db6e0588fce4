/* main.c: the C engine (c_engine/) on a blob linked read-only into flash.
 *
 * Command line (semihosting; the first word is the image's name):
 *   path=f32|i8  window=N  new=N  logits=crc|full  prompt=HEX  [config=V,D,L,H,K,C]  [expect=HEX]
 * prompt: the tokens, four hex digits each. expect: the reference's CRC-32 of each
 * step's logits, eight hex digits each: the firmware checks them itself and exits
 * with EXIT_CHECK_FAILED if any differs (pass/fail without parsing the output). config: vocab, d_model, n_layers,
 * d_head, top_k, kernel of an ATOME01 blob (ATMB blobs carry their own); an image
 * is built for one format (FIRMWARE_ATOME01) and links only that loader.
 *
 * It feeds the prompt, then its own greedy choices, one atome_step at a time, and
 * prints one line per step that the host checks against the Python reference:
 *   S <step> <input token> <ticks> <crc32 of the logits' bytes> <argmax>
 *   L <the logits' bytes in hex>              (logits=full only)
 * ticks: SysTick ticks of atome_step plus atome_argmax (see board.h). The engine's
 * state, scratch and logits are carved out of the RAM between .bss and the stack. */
#include "atome.h"
#include "board.h"

#include <string.h>

#ifndef FIRMWARE_ATOME01
#define FIRMWARE_ATOME01 0 /* 1: the blob is ATOME01 (the Makefile's FORMAT=atome01) */
#endif

extern const uint8_t flash_blob[], flash_blob_end[];

static char cmdline[2048];
static atome_model model;
static atome_state state;

static const char *arg(const char *name) { return cmdline_arg(cmdline, name); }

static int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static uint32_t hex_length(const char *hex) {
    uint32_t n = 0;
    while (hex && hex_digit(hex[n]) >= 0) n++;
    return n;
}

static uint32_t prompt_length(const char *hex) {
    uint32_t n = hex_length(hex);
    return n % 4 ? 0 : n / 4;
}

/* The i-th number of `digits` hex digits in a run of them. */
static uint32_t hex_field(const char *hex, uint32_t i, uint32_t digits) {
    const char *p = hex + digits * i;
    uint32_t v = 0, k;
    for (k = 0; k < digits; k++) v = v << 4 | (uint32_t)hex_digit(p[k]);
    return v;
}

static int fail(int code, const char *what, int status) {
    sh_puts("ERROR ");
    sh_puts(what);
    if (status >= 0) {
        sh_puts(" status=");
        sh_puts(atome_status_name(status));
    }
    sh_puts("\n");
    return code;
}

static void put_field(const char *name, uint32_t value) {
    sh_puts(" ");
    sh_puts(name);
    sh_puts("=");
    sh_put_u32(value);
}

/* Takes `bytes` (rounded up to 8) from the work area; 0 when it does not fit. */
static uint8_t *work_next;
static void *take(size_t bytes) {
    uint8_t *p = work_next;
    bytes = (bytes + 7) & ~(size_t)7;
    if (bytes > (size_t)(__work_end - work_next)) return 0;
    work_next += bytes;
    return p;
}

int main(void) {
    const char *path_arg, *prompt;
    size_t blob_len = (size_t)(flash_blob_end - flash_blob), arena_bytes = 0, state_bytes, scratch_bytes;
    uint32_t window, n_new, n_prompt, n_steps, n_expect, mismatches = 0, i, token, full_logits;
    const char *expect;
    void *state_buf, *scratch_buf;
    float *logits;
    uint64_t t0, t1;
    int path, status;

    if (sh_get_cmdline(cmdline, sizeof cmdline) != 0) return fail(EXIT_USAGE, "no command line", -1);
    path_arg = arg("path");
    prompt = arg("prompt");
    window = parse_u32(arg("window"), 0);
    n_new = parse_u32(arg("new"), 0);
    n_prompt = prompt_length(prompt);
    full_logits = arg("logits") && strncmp(arg("logits"), "full", 4) == 0;
    expect = arg("expect");
    n_expect = hex_length(expect) / 8;
    if (!path_arg || (strncmp(path_arg, "f32", 3) && strncmp(path_arg, "i8", 2)) || window == 0 || n_prompt == 0)
        return fail(EXIT_USAGE, "usage: path=f32|i8 window=N new=N logits=crc|full prompt=HEX [config=...]", -1);
    path = path_arg[0] == 'i' ? ATOME_PATH_I8 : ATOME_PATH_F32;

    /* load: every check of the blob runs here, on the flash copy. An image links one
     * loader, the one its blob needs (the Makefile's FORMAT). */
    work_next = __work_start;
#if FIRMWARE_ATOME01
    {
        uint32_t dims[6], k;
        const char *c = arg("config");
        for (k = 0; k < 6 && c; k++) {
            dims[k] = parse_u32(c, &c);
            c = k == 5 || *c == ',' ? c + 1 : 0;
        }
        if (!c) return fail(EXIT_USAGE, "an ATOME01 blob needs config=V,D,L,H,K,C", -1);
        {
            atome_config cfg = {dims[0], dims[1], dims[2], dims[3], dims[4], dims[5]};
            t0 = ticks_now();
            status = atome_load_atome01(&model, flash_blob, blob_len, &cfg);
        }
    }
#else
    {
        atome_config cfg;
        uint8_t *arena = 0;
        t0 = ticks_now();
        status = atome_check_blob(flash_blob, blob_len, &cfg, &arena_bytes);
        if (status == ATOME_OK) {
            arena = arena_bytes ? take(arena_bytes) : 0;
            if (arena_bytes && !arena) return fail(EXIT_NO_RAM, "decode arena", -1);
            status = atome_load_blob(&model, flash_blob, blob_len, arena, arena_bytes);
        }
    }
#endif
    t1 = ticks_now();
    sh_puts("LOAD format=");
    sh_puts(FIRMWARE_ATOME01 ? "ATOME01" : "ATMB");
    put_field("bytes", (uint32_t)blob_len);
    sh_puts(" at=0x");
    sh_put_hex32((uint32_t)(uintptr_t)flash_blob);
    put_field("ticks", (uint32_t)(t1 - t0));
    sh_puts("\n");
    if (status != ATOME_OK) return fail(EXIT_ENGINE, "load", status);

    state_bytes = atome_state_bytes(&model.cfg, window, path);
    scratch_bytes = atome_scratch_bytes(&model.cfg, window, path);
    state_buf = take(state_bytes);
    scratch_buf = take(scratch_bytes);
    logits = take(sizeof(float) * model.cfg.vocab);
    if (!state_bytes || !scratch_bytes) /* the engine says why: a path this build leaves out, or limits */
        return fail(EXIT_ENGINE, "state size", atome_state_init(&state, &model, window, path, __work_start, 0,
                                                                __work_start, 0));
    if (!state_buf || !scratch_buf || !logits) return fail(EXIT_NO_RAM, "state, scratch and logits", -1);
    status = atome_state_init(&state, &model, window, path, state_buf, state_bytes, scratch_buf, scratch_bytes);
    if (status != ATOME_OK) return fail(EXIT_ENGINE, "state init", status);
    sh_puts("RUN");
    put_field("vocab", model.cfg.vocab);
    put_field("d_model", model.cfg.d_model);
    put_field("n_layers", model.cfg.n_layers);
    put_field("d_head", model.cfg.d_head);
    put_field("top_k", model.cfg.top_k);
    put_field("kernel", model.cfg.kernel);
    sh_puts(path == ATOME_PATH_I8 ? " path=i8" : " path=f32");
    put_field("window", window);
    put_field("prompt", n_prompt);
    put_field("new", n_new);
    sh_puts("\n");
    sh_puts("RAM");
    put_field("model_view", sizeof model);
    put_field("state_struct", sizeof state);
    put_field("arena", (uint32_t)arena_bytes);
    put_field("state", (uint32_t)state_bytes);
    put_field("scratch", (uint32_t)scratch_bytes);
    put_field("logits", sizeof(float) * model.cfg.vocab);
    put_field("work_used", (uint32_t)(work_next - __work_start));
    sh_puts("\n");

    /* the prompt, then greedy decoding: n_new tokens need n_new - 1 more steps */
    n_steps = n_prompt + (n_new ? n_new - 1 : 0);
    token = hex_field(prompt, 0, 4);
    for (i = 0; i < n_steps; i++) {
        uint32_t next, crc;
        t0 = ticks_now();
        status = atome_step(&state, token, logits);
        next = atome_argmax(logits, model.cfg.vocab);
        t1 = ticks_now();
        if (status != ATOME_OK) return fail(EXIT_ENGINE, "step", status);
        crc = atome_crc32((const uint8_t *)logits, sizeof(float) * model.cfg.vocab);
        sh_puts("S ");
        sh_put_u32(i);
        sh_puts(" ");
        sh_put_u32(token);
        sh_puts(" ");
        sh_put_u32((uint32_t)(t1 - t0));
        sh_puts(" ");
        sh_put_hex32(crc);
        sh_puts(" ");
        sh_put_u32(next);
        sh_puts("\n");
        if (full_logits) {
            sh_puts("L ");
            sh_put_hex_bytes(logits, sizeof(float) * model.cfg.vocab);
            sh_puts("\n");
        }
        if (i < n_expect && hex_field(expect, i, 8) != crc) {
            sh_puts("MISMATCH step=");
            sh_put_u32(i);
            sh_puts("\n");
            mismatches++;
        }
        token = i + 1 < n_prompt ? hex_field(prompt, i + 1, 4) : next;
    }
    sh_puts("STACK");
    put_field("used", stack_bytes_used());
    put_field("size", stack_bytes_total());
    sh_puts("\n");
    if (expect) {
        sh_puts("CHECK");
        put_field("steps", n_expect < n_steps ? n_expect : n_steps);
        put_field("mismatches", mismatches);
        sh_puts("\n");
    }
    sh_puts("END\n");
    return mismatches || (expect && n_expect < n_steps) ? EXIT_CHECK_FAILED : EXIT_OK;
}
