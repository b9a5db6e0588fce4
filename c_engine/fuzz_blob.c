/* libFuzzer target: the loaders, then a few decode steps on whatever loads.
 *
 * Input: byte 0 picks the layout and the run; the rest is the blob.
 *   bit 0 = 0: ATMB, blob = input[1..]
 *   bit 0 = 1: ATOME01 with the config input[1..6] (each dimension 1 + byte % 16),
 *              blob = "ATOME01" + input[7..]; with bit 1 set the blob is cut or
 *              zero-padded to the size the config implies, so the decoder is reached.
 *   bits 2..4: attention window - 1;  bit 5: the 8-bit path.
 *   ATMB only: bit 6 writes the true length into the header's file_size, bit 7 a
 *   correct CRC at the end, so mutations get past those checks to the ones behind.
 * After a successful load, up to 8 steps on token ids taken from the input's tail (mod vocab).
 * The harness may allocate (the engine never does).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "atome.h"

#define MAX_RUN_BYTES (8u << 20)

static void run_steps(const atome_model *m, const uint8_t *data, size_t size, uint8_t mode) {
    uint32_t window = 1 + ((mode >> 2) & 7), t;
    int path = (mode >> 5) & 1 ? ATOME_PATH_I8 : ATOME_PATH_F32;
    size_t state_bytes = atome_state_bytes(&m->cfg, window, path), scratch_bytes = atome_scratch_bytes(&m->cfg, window, path);
    size_t logit_bytes = sizeof(float) * m->cfg.vocab;
    atome_state s;
    void *state, *scratch;
    float *logits;
    if (!state_bytes || !scratch_bytes || state_bytes + scratch_bytes + logit_bytes > MAX_RUN_BYTES) return;
    state = malloc(state_bytes);
    scratch = malloc(scratch_bytes);
    logits = malloc(logit_bytes);
    if (state && scratch && logits &&
        atome_state_init(&s, m, window, path, state, state_bytes, scratch, scratch_bytes) == ATOME_OK) {
        for (t = 0; t < 8 && t < size; t++) {
            uint32_t token = data[size - 1 - t] % m->cfg.vocab;
            if (atome_step(&s, token, logits) == ATOME_OK) (void)atome_sample(logits, m->cfg.vocab, 0.7f, (uint64_t[]){t});
        }
    }
    free(state);
    free(scratch);
    free(logits);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    atome_model m;
    uint8_t mode;
    if (size < 1) return 0;
    mode = data[0];
    if (!(mode & 1)) {
        atome_config cfg;
        size_t arena_bytes = 0, len = size - 1;
        uint8_t *arena = NULL, *blob = malloc(len ? len : 1);
        if (!blob) return 0;
        memcpy(blob, data + 1, len);
        if ((mode & 64) && len >= 12) {
            blob[8] = (uint8_t)len; blob[9] = (uint8_t)(len >> 8);
            blob[10] = (uint8_t)(len >> 16); blob[11] = (uint8_t)(len >> 24);
        }
        if ((mode & 128) && len >= 8) {
            uint32_t crc = atome_crc32(blob, len - 4);
            blob[len - 4] = (uint8_t)crc; blob[len - 3] = (uint8_t)(crc >> 8);
            blob[len - 2] = (uint8_t)(crc >> 16); blob[len - 1] = (uint8_t)(crc >> 24);
        }
        if (atome_check_blob(blob, len, &cfg, &arena_bytes) == ATOME_OK) {
            arena = malloc(arena_bytes ? arena_bytes : 1);
            if (arena && atome_load_blob(&m, blob, len, arena, arena_bytes) == ATOME_OK)
                run_steps(&m, data, size, mode);
        }
        free(arena);
        free(blob);
    } else if (size >= 7) {
        atome_config cfg;
        size_t want, have = size - 7, len;
        uint8_t *blob;
        cfg.vocab = 1 + data[1] % 16;
        cfg.d_model = 1 + data[2] % 16;
        cfg.n_layers = 1 + data[3] % 16;
        cfg.d_head = 1 + data[4] % 16;
        cfg.top_k = 1 + data[5] % 16;
        cfg.kernel = 1 + data[6] % 16;
        want = atome01_size(&cfg);
        len = (mode & 2) ? want : 7 + have;
        blob = calloc(len ? len : 1, 1);
        if (!blob) return 0;
        memcpy(blob, "ATOME01", len < 7 ? len : 7);
        if (len > 7) memcpy(blob + 7, data + 7, have < len - 7 ? have : len - 7);
        if (atome_load_atome01(&m, blob, len, &cfg) == ATOME_OK) run_steps(&m, data, size, mode);
        free(blob);
    }
    return 0;
}
