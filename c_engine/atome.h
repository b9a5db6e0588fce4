/* atome.h: a C99 inference engine for the routed-ternary language model.
 *
 * The model (see ../shared/interop/README.md and the book's chapter 6): byte tokens,
 * a ternary embedding, n_layers blocks of
 *     h = LayerNorm(x);  r = softmax(W_r h)
 *     x = x + r0 * conv(h) + r1 * ssm(h) + r2 * topk_attention(h)
 * then a final LayerNorm and a ternary unembedding. Every matrix is ternary
 * (trits in {-1, 0, +1} times one float scale per tensor).
 *
 * Zero heap. The caller owns every byte: the blob (flash on a microcontroller; the
 * weights are read in place, never copied), the model view (atome_model), the state
 * and the scratch (atome_state_bytes / atome_scratch_bytes say how much). The core
 * needs only <stdint.h>, <stddef.h> and <string.h>: no stdio, malloc or libm.
 *
 * Context semantics (the Python reference, atome_core/engine/reference.py, implements the same):
 * the convolution window and the SSM state stream over the whole history; attention
 * sees a sliding window of the last `window` tokens, the current one included (a ring
 * buffer of keys and values). While fewer than `window` tokens have been seen this is
 * exactly full causal attention.
 *
 * Arithmetic, two paths; both in an order fixed by atome.c, which the NumPy reference
 * repeats, so the host, a Cortex-M and the reference compute the same bits.
 *   ATOME_PATH_F32: float32 activations (what the published weights were trained for).
 *     Dot products in 8 lanes (element i into lane i % 8, lanes added as
 *     ((0+1)+(2+3))+((4+5)+(6+7))); exp, tanh and rsqrt are the engine's own
 *     (atome_exp, atome_tanh, atome_rsqrt). Build with -ffp-contract=off.
 *   ATOME_PATH_I8: integers, for cores without an FPU. Activations are int32 in Q16
 *     fixed point; every ternary product, attention score and value sum runs on 8-bit
 *     activations (absmax per vector) with exact integer sums; keys, values and the
 *     convolution window are stored in 8 bits. Floats remain only for a few numbers per
 *     vector (the scale of a product, LayerNorm's 1/std, the softmaxes' exponentials).
 *
 * Build options (0 or 1; -D on the compiler's command line):
 *   ATOME_F32_PATH  (default 1) the float32 path; 0 leaves it out (atome_state_init then
 *                   refuses ATOME_PATH_F32 with ATOME_ERR_BAD_ARGUMENT)
 *   ATOME_CODECS    (default 1) the packed trit codecs (base3x5, dense, rANS); 0 leaves
 *                   them out and refuses such a blob with ATOME_ERR_CODEC_NOT_BUILT
 *   ATOME_MINIMAL   (default 0) 1 sets both to 0: the firmware engine for an FPU-less
 *                   core, which reads 2-bit blobs in place. Validation and CRC stay.
 */
#ifndef ATOME_H
#define ATOME_H

#include <stddef.h>
#include <stdint.h>

#ifndef ATOME_MINIMAL
#define ATOME_MINIMAL 0
#endif
#ifndef ATOME_F32_PATH
#define ATOME_F32_PATH (!ATOME_MINIMAL)
#endif
#ifndef ATOME_CODECS
#define ATOME_CODECS (!ATOME_MINIMAL)
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Status codes. The loader's names follow atome_core.formats' error classes. */
enum {
    ATOME_OK = 0,
    ATOME_ERR_BAD_MAGIC = 1,           /* not "ATMB" (or not "ATOME01") */
    ATOME_ERR_UNSUPPORTED_VERSION = 2, /* an ATMB version other than 1 */
    ATOME_ERR_TRUNCATED = 3,           /* shorter than the header says */
    ATOME_ERR_TRAILING_BYTES = 4,      /* longer than the header says */
    ATOME_ERR_CHECKSUM = 5,            /* CRC-32 mismatch */
    ATOME_ERR_BAD_HEADER = 6,          /* a header or table field the format forbids */
    ATOME_ERR_SECTION_BOUNDS = 7,      /* a section outside the data area, or misaligned */
    ATOME_ERR_SECTION_OVERLAP = 8,     /* two sections share bytes */
    ATOME_ERR_CONFIG_MISMATCH = 9,     /* sections missing, extra, duplicate, wrong shape/dtype */
    ATOME_ERR_LEGACY_SIZE = 10,        /* an ATOME01 blob whose size is not its config's */
    ATOME_ERR_CORRUPT_SECTION = 11,    /* a payload that does not decode */
    ATOME_ERR_CONFIG_LIMITS = 12,      /* a config outside 1..65535 or too big for this build */
    ATOME_ERR_ARENA_TOO_SMALL = 13,    /* a packed codec needs a bigger decode arena */
    ATOME_ERR_BUFFER_TOO_SMALL = 14,   /* state or scratch smaller than atome_*_bytes */
    ATOME_ERR_MISALIGNED = 15,         /* state or scratch not 8-byte aligned */
    ATOME_ERR_BAD_ARGUMENT = 16,       /* NULL pointer, window 0, unknown path */
    ATOME_ERR_BAD_TOKEN = 17,          /* token id >= vocab */
    ATOME_ERR_CODEC_NOT_BUILT = 18     /* a packed trit codec this build leaves out (ATOME_CODECS 0) */
};
#define ATOME_N_STATUS 19

const char *atome_status_name(int status);

enum { ATOME_PATH_F32 = 0, ATOME_PATH_I8 = 1 };

/* Every dimension is in 1..65535 (the blob stores them as u16). */
typedef struct {
    uint32_t vocab, d_model, n_layers, d_head, top_k, kernel;
} atome_config;

/* A stack of per-layer ternary matrices, read in place: layer l's scale is the
 * little-endian float32 at scale + l * scale_stride, its trits are 2-bit codes
 * (00 = 0, 01 = +1, 11 = -1, four per byte, first in the low bits) starting at
 * trit number l * trit_stride of codes. Rows are contiguous, row-major (out, in). */
typedef struct {
    const uint8_t *scale;
    size_t scale_stride;
    const uint8_t *codes;
    size_t trit_stride;
} atome_trits;

/* A stack of per-layer float vectors: layer l's element i is at
 * data + l * stride + i * (f16 ? 2 : 4), little-endian, any alignment. */
typedef struct {
    const uint8_t *data;
    size_t stride;
    int f16;
} atome_vector;

/* A view of a loaded blob: pointers into it (and into the arena, if one was used). */
typedef struct {
    atome_config cfg;
    int conv_newest_first;  /* ATOME01 stores tap 0 = current token; ATMB the PyTorch order */
    atome_trits embed, conv, wq, wk, wv, router, unembed;
    atome_vector norm_w, norm_b, a_raw, ssm_b, c_out, final_w, final_b;
} atome_model;

/* --- loading --------------------------------------------------------------------- */

/* Validates an ATMB blob completely (magic, version, length, CRC, header, section
 * table, alignment, overlaps, shapes against the config, every payload) in the order
 * of atome_core.formats.read_blob. On success fills *cfg and *arena_bytes: the decode
 * arena atome_load_blob needs (0 when every trit section is 2-bit, read in place). */
int atome_check_blob(const uint8_t *blob, size_t len, atome_config *cfg, size_t *arena_bytes);

/* Validates, then fills the model view. Trit sections in a packed codec (base3x5,
 * dense, rans) are decoded once into `arena` as 2-bit codes; 2-bit sections and all
 * floats are read in place. `blob` (and `arena`) must outlive the model. */
int atome_load_blob(atome_model *m, const uint8_t *blob, size_t len, uint8_t *arena, size_t arena_len);

/* The published ATOME01 layout, which has no header: the config is given, and the
 * length must equal the length that config implies, exactly. */
size_t atome01_size(const atome_config *cfg);  /* 0 if the config is invalid */
int atome_load_atome01(atome_model *m, const uint8_t *blob, size_t len, const atome_config *cfg);

/* --- running --------------------------------------------------------------------- */

typedef struct {
    const atome_model *model;
    int path;
    uint32_t window;   /* attention window (KV ring capacity) */
    uint32_t filled;   /* keys in the ring: min(tokens seen, window) */
    uint32_t head;     /* ring slot of the newest key */
    uint32_t pos;      /* tokens seen (wraps after 2^32; nothing depends on it) */
    /* The f32 path's buffers (float32). */
    struct {
        float *decay;          /* constant, per layer d: tanh(a_raw), the SSM's decay */
        float *conv;           /* per layer (kernel - 1) x d: the previous conv inputs, oldest first */
        float *ssm;            /* per layer d */
        float *keys, *values;  /* per layer window x d_head, window x d_model */
        float *x, *h, *local, *ssm_out, *attn, *q, *scores;   /* scratch */
    } f;
    /* The i8 path's buffers: activations in Q16 (int32 = value * 2^16), 8-bit vectors
     * with the absmax they were quantised by (a vector is q * amax / 127). */
    struct {
        int32_t *decay;        /* constant, per layer d: tanh(a_raw) in Q24 */
        int8_t *conv;          /* per layer (kernel - 1) x d: the previous conv inputs (8-bit) ... */
        int32_t *conv_amax;    /* ... and their amax, per layer kernel - 1 */
        int32_t *ssm;          /* per layer d */
        int8_t *keys, *values; /* per layer window x d_head, window x d_model, 8-bit ... */
        int32_t *key_amax, *value_amax;  /* ... and their amax, per layer window */
        int32_t *x, *h, *local, *ssm_out, *attn, *tmp, *factor;  /* scratch */
        int64_t *rank;         /* scratch: a score times 127^2 2^32 sqrt(d_head) / amax of q */
        const int8_t **rows;   /* scratch: the conv taps' inputs, the kept values */
        int16_t *lut;          /* scratch: the lookup table of h8 for the ternary products */
        int8_t *h8, *q8;       /* scratch */
    } i;
    float *gates;              /* scratch: the router's softmax (4) */
    float *weights;            /* scratch (i8 path): the attention weights (top_k) */
    uint32_t *top;             /* scratch: top_k positions in the window */
    uint8_t *history;          /* the state after the constants: what atome_reset zeroes ... */
    size_t history_bytes;      /* ... and its size */
} atome_state;

/* Bytes of state / scratch for a config, an attention window and a path (0: invalid,
 * too big, or a path this build leaves out). The i8 path keeps its key/value ring and
 * convolution window in 8 bits, about a quarter of the f32 path's state. */
size_t atome_state_bytes(const atome_config *cfg, uint32_t window, int path);
size_t atome_scratch_bytes(const atome_config *cfg, uint32_t window, int path);

/* Both buffers 8-byte aligned, at least the sizes above; the model must outlive s. */
int atome_state_init(atome_state *s, const atome_model *m, uint32_t window, int path,
                     void *state_buf, size_t state_len, void *scratch_buf, size_t scratch_len);
void atome_reset(atome_state *s);

/* One token in, the next token's logits out (vocab floats): incremental decode. */
int atome_step(atome_state *s, uint32_t token, float *logits);

/* Several tokens in a row (a prompt), from the current state; the logits after the last. */
int atome_run(atome_state *s, const uint32_t *tokens, size_t n, float *logits);

/* Full-prefix recompute: reset, then run every token; the logits after the last. */
int atome_forward(atome_state *s, const uint32_t *tokens, size_t n, float *logits);

/* --- picking tokens ---------------------------------------------------------------- */

uint32_t atome_argmax(const float *logits, uint32_t n);   /* the first maximum */
/* temperature <= 0: argmax. Else draws from softmax(logits / temperature) with the
 * splitmix64 generator *rng; overwrites logits with the unnormalised probabilities. */
uint32_t atome_sample(float *logits, uint32_t n, float temperature, uint64_t *rng);

/* --- the engine's own functions (exported for the tests) ----------------------------- */

float atome_exp(float x);
float atome_tanh(float x);
float atome_rsqrt(float x);
uint32_t atome_crc32(const uint8_t *data, size_t len);
size_t atome_sizeof_model(void);
size_t atome_sizeof_state(void);

#ifdef __cplusplus
}
#endif
#endif
