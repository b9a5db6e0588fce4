/* atome.c: the routed-ternary model, one token at a time.
 *
 * Read atome.h first. This file is the arithmetic: every float operation happens in
 * the order written here, and atome_core/engine.py repeats it operation for operation
 * in NumPy, so both produce the same float32 bits. Compile with -ffp-contract=off
 * (no fused multiply-add) and without -ffast-math.
 */
#include "atome.h"

#include <string.h>

/* ---------------------------------------------------------------------------------
 * Reading the blob. Weights stay where they are (flash); floats are assembled from
 * bytes, so no pointer is ever cast to float* (unaligned reads fault on Cortex-M0). */

static float float_from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static uint32_t bits_from_float(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float read_f32(const uint8_t *p) {
    return float_from_bits((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                           (uint32_t)p[3] << 24);
}

/* IEEE half -> float, exact (what NumPy's astype(float32) does). */
static float read_f16(const uint8_t *p) {
    uint32_t h = (uint32_t)p[0] | (uint32_t)p[1] << 8;
    uint32_t sign = (h >> 15) << 31, exponent = (h >> 10) & 31, mantissa = h & 1023;
    if (exponent == 31) return float_from_bits(sign | 0x7f800000u | mantissa << 13);
    if (exponent == 0) {
        int e = -14;
        if (mantissa == 0) return float_from_bits(sign);
        while (!(mantissa & 1024)) { /* subnormal half: normalise */
            mantissa <<= 1;
            e--;
        }
        return float_from_bits(sign | (uint32_t)(e + 127) << 23 | (mantissa & 1023) << 13);
    }
    return float_from_bits(sign | (exponent - 15 + 127) << 23 | mantissa << 13);
}

static float vector_at(const atome_vector *v, uint32_t layer, uint32_t i) {
    const uint8_t *p = v->data + (size_t)layer * v->stride;
    return v->f16 ? read_f16(p + 2 * (size_t)i) : read_f32(p + 4 * (size_t)i);
}

static float scale_of(const atome_trits *w, uint32_t layer) {
    return read_f32(w->scale + (size_t)layer * w->scale_stride);
}

/* A byte of four 2-bit codes -> its four trits (code 10 never passes the loader). */
#define TRIT(c) (((c) & 1) - ((c) & 2))
#define ROW(b) { TRIT(b), TRIT((b) >> 2), TRIT((b) >> 4), TRIT((b) >> 6) }
#define R4(b) ROW(b), ROW((b) + 1), ROW((b) + 2), ROW((b) + 3)
#define R16(b) R4(b), R4((b) + 4), R4((b) + 8), R4((b) + 12)
#define R64(b) R16(b), R16((b) + 16), R16((b) + 32), R16((b) + 48)
static const float TRITS_F32[256][4] = { R64(0), R64(64), R64(128), R64(192) };
static const int16_t TRITS_I16[256][4] = { R64(0), R64(64), R64(128), R64(192) };

static float trit_at(const uint8_t *codes, size_t i) {
    return TRITS_F32[codes[i >> 2]][i & 3];
}

/* ---------------------------------------------------------------------------------
 * The engine's own exp, tanh and rsqrt: a few float operations each, the same on
 * every target (a libm differs between hosts and toolchains). */

static float round_to_integer(float v) { /* nearest, ties to even; |v| < 2^22 */
    return (v + 12582912.0f) - 12582912.0f;
}

static float pow2i(int k) { /* 2^k for -126 <= k <= 127 */
    return float_from_bits((uint32_t)(k + 127) << 23);
}

float atome_exp(float x) {
    float n, r, p;
    int k;
    if (x != x) return x;
    if (x > 88.8f) return float_from_bits(0x7f800000u);
    if (x < -104.0f) return 0.0f;
    /* x = n ln2 + r with |r| <= ln2 / 2; ln2 split in two so n * LN2_HI is exact */
    n = round_to_integer(x * 1.44269502f);
    r = (x - n * 0.693145751953125f) - n * 1.428606765e-6f;
    /* e^r: Taylor to degree 7 (error below 1e-8 on |r| <= 0.35), Horner */
    p = 1.0f + r * (1.0f + r * (0.5f + r * (0.166666672f + r * (0.0416666679f +
        r * (0.00833333377f + r * (0.00138888892f + r * 0.000198412701f))))));
    k = (int)n;
    if (k > 127) return (p * pow2i(k - 1)) * 2.0f;
    if (k < -126) return (p * pow2i(k + 64)) * 5.42101086e-20f; /* 2^-64: one rounding */
    return p * pow2i(k);
}

float atome_tanh(float x) {
    float a = x < 0.0f ? -x : x, t;
    if (a < 0.625f) { /* odd polynomial, least-squares fit of (tanh x - x) / x^3 in x^2 */
        float z = x * x;
        return x + x * (z * (-0.333333313f + z * (0.133332163f + z * (-0.0539480969f +
                   z * (0.0217081271f + z * (-0.00819607731f + z * 0.00216041808f))))));
    }
    if (a > 9.5f) t = 1.0f; /* 1 - tanh(9.5) < 2^-26 */
    else t = 1.0f - 2.0f / (atome_exp(2.0f * a) + 1.0f);
    return x < 0.0f ? -t : t;
}

float atome_rsqrt(float x) { /* x > 0: bit-level first guess, three Newton steps */
    float y = float_from_bits(0x5f3759dfu - (bits_from_float(x) >> 1));
    float half = 0.5f * x;
    y = y * (1.5f - half * y * y);
    y = y * (1.5f - half * y * y);
    /* the last step as a small correction to y: within 1 ulp, exact on powers of 4 */
    return y + y * (0.5f - (half * y) * y);
}

/* ---------------------------------------------------------------------------------
 * Sums in a fixed order: element i goes into lane i % 8, each lane in order, then a
 * fixed tree. Eight independent lanes also let the compiler keep them in registers. */

static float lanes_total(const float a[8]) {
    return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
}

static float sum_lanes(const float *x, size_t n) {
    float a[8] = {0};
    size_t i = 0, j;
    for (; i + 8 <= n; i += 8)
        for (j = 0; j < 8; j++) a[j] += x[i + j];
    for (j = 0; i < n; i++, j++) a[j] += x[i];
    return lanes_total(a);
}

static float dot_lanes(const float *x, const float *y, size_t n) {
    float a[8] = {0};
    size_t i = 0, j;
    for (; i + 8 <= n; i += 8)
        for (j = 0; j < 8; j++) a[j] += x[i + j] * y[i + j];
    for (j = 0; i < n; i++, j++) a[j] += x[i] * y[i];
    return lanes_total(a);
}

/* The same with 8-bit y (the i8 path's keys). */
static float dot_lanes_i8(const float *x, const int8_t *y, size_t n) {
    float a[8] = {0};
    size_t i;
    for (i = 0; i < n; i++) a[i & 7] += x[i] * (float)y[i];
    return lanes_total(a);
}

/* sum over i < n of t[i] * x[i], t the trits from trit number `start` of `codes`.
 * Rows that start on a byte take the fast path, eight trits (two bytes) a turn;
 * both paths do the same operations in the same lanes. */
static float ternary_dot(const uint8_t *codes, size_t start, const float *x, size_t n) {
    float a[8] = {0};
    size_t i = 0, j;
    if ((start & 3) == 0) {
        const uint8_t *p = codes + start / 4;
        for (; i + 8 <= n; i += 8, p += 2) {
            const float *lo = TRITS_F32[p[0]], *hi = TRITS_F32[p[1]];
            for (j = 0; j < 4; j++) a[j] += lo[j] * x[i + j];
            for (j = 0; j < 4; j++) a[4 + j] += hi[j] * x[i + 4 + j];
        }
    }
    for (; i < n; i++) a[i & 7] += trit_at(codes, start + i) * x[i];
    return lanes_total(a);
}

/* The same on 8-bit activations: an exact integer sum, so any order will do. The
 * values are -128..127 held in int16, and so are the trits: eight int16 lanes (a product
 * is at most 128 in size, so 128 turns cannot overflow them) multiply without widening
 * and are flushed into the int32 total every 1024 trits. */
static int32_t ternary_dot_i8(const uint8_t *codes, size_t start, const int16_t *q, size_t n) {
    int32_t total = 0;
    size_t i = 0, j;
    if ((start & 3) == 0) {
        const uint8_t *p = codes + start / 4;
        while (i + 8 <= n) {
            int16_t a[8] = {0};
            size_t stop = n - i > 8 * 128 ? i + 8 * 128 : n;
            for (; i + 8 <= stop; i += 8, p += 2) {
                const int16_t *lo = TRITS_I16[p[0]], *hi = TRITS_I16[p[1]];
                for (j = 0; j < 4; j++) a[j] = (int16_t)(a[j] + lo[j] * q[i + j]);
                for (j = 0; j < 4; j++) a[4 + j] = (int16_t)(a[4 + j] + hi[j] * q[i + 4 + j]);
            }
            for (j = 0; j < 8; j++) total += a[j];
        }
    }
    for (; i < n; i++) total += TRITS_I16[codes[(start + i) >> 2]][(start + i) & 3] * q[i];
    return total;
}

/* y = (W x) * scale for layer `layer` of a stack of (rows, cols) ternary matrices. */
static void matvec_f32(const atome_trits *w, uint32_t layer, const float *x, uint32_t rows,
                       uint32_t cols, float *y) {
    float scale = scale_of(w, layer);
    size_t base = (size_t)layer * w->trit_stride;
    uint32_t r;
    for (r = 0; r < rows; r++) y[r] = ternary_dot(w->codes, base + (size_t)r * cols, x, cols) * scale;
}

/* y = float(W q) * (scale / s): q = 8-bit activations whose scale is s. */
static void matvec_i8(const atome_trits *w, uint32_t layer, const int16_t *q, float s, uint32_t rows,
                      uint32_t cols, float *y) {
    float c = scale_of(w, layer) / s;
    size_t base = (size_t)layer * w->trit_stride;
    uint32_t r;
    for (r = 0; r < rows; r++) y[r] = (float)ternary_dot_i8(w->codes, base + (size_t)r * cols, q, cols) * c;
}

/* Per-vector absmax quantisation to 8 bits (atome_core.quant.activation_quant_int8):
 * s = 127 / max(max|x|, 1e-5), q = clamp(round(x * s), -128, 127). Returns s. The
 * values go to q16 (held in int16, for the mat-vec lanes) or to q8 (the key/value ring). */
static float quantize_i8(const float *x, uint32_t n, int16_t *q16, int8_t *q8) {
    float amax = 0.0f, s;
    uint32_t i;
    for (i = 0; i < n; i++) {
        float a = x[i] < 0.0f ? -x[i] : x[i];
        if (a > amax) amax = a;
    }
    if (!(amax >= 1e-5f)) amax = 1e-5f;
    s = 127.0f / amax;
    for (i = 0; i < n; i++) {
        float v = x[i] * s;
        int16_t q;
        if (v != v) q = 0;
        else if (v >= 127.0f) q = 127;
        else if (v <= -128.0f) q = -128;
        else q = (int16_t)round_to_integer(v);
        if (q16) q16[i] = q;
        else q8[i] = (int8_t)q;
    }
    return s;
}

/* LayerNorm (eps 1e-5) with the affine vectors of layer `layer`. */
static void layer_norm(const float *x, uint32_t d, const atome_vector *w, const atome_vector *b,
                       uint32_t layer, float *out) {
    float mean = sum_lanes(x, d) / (float)d, var, rstd;
    uint32_t i;
    for (i = 0; i < d; i++) out[i] = x[i] - mean;
    var = dot_lanes(out, out, d) / (float)d;
    rstd = atome_rsqrt(var + 1e-5f);
    for (i = 0; i < d; i++) out[i] = (out[i] * rstd) * vector_at(w, layer, i) + vector_at(b, layer, i);
}

/* ---------------------------------------------------------------------------------
 * State and scratch: carved out of the caller's buffers. */

static int config_ok(const atome_config *c) {
    return c && c->vocab >= 1 && c->vocab <= 65535 && c->d_model >= 1 && c->d_model <= 65535 &&
           c->n_layers >= 1 && c->n_layers <= 65535 && c->d_head >= 1 && c->d_head <= 65535 &&
           c->top_k >= 1 && c->top_k <= 65535 && c->kernel >= 1 && c->kernel <= 65535;
}

#define ATOME_MAX_WINDOW (1u << 24)

/* The state buffer: the per-model constants (the SSM decay tanh(a_raw), L x d floats),
 * then what atome_reset zeroes: the conv window, the SSM state and the key/value ring.
 * The f32 path keeps keys and values in float32; the i8 path in 8 bits with one float
 * scale per key and per value vector (127 / absmax), the scales before the bytes. */
static uint64_t constant_bytes(const atome_config *c) {
    return 4 * (uint64_t)c->n_layers * c->d_model;
}

static uint64_t resettable_bytes(const atome_config *c, uint64_t window, int path) {
    uint64_t d = c->d_model, L = c->n_layers, ring = window * (c->d_head + d);
    uint64_t floats = L * ((c->kernel - 1) * d + d);
    if (path == ATOME_PATH_F32) return 4 * (floats + L * ring);
    return 4 * (floats + 2 * L * window) + ((L * ring + 3) & ~(uint64_t)3);
}

static size_t checked_size(uint64_t bytes) {
    return bytes > (uint64_t)(size_t)-1 ? 0 : (size_t)bytes;
}

static int sizes_ok(const atome_config *c, uint32_t window, int path) {
    return config_ok(c) && window >= 1 && window <= ATOME_MAX_WINDOW &&
           (path == ATOME_PATH_F32 || path == ATOME_PATH_I8);
}

size_t atome_state_bytes(const atome_config *c, uint32_t window, int path) {
    if (!sizes_ok(c, window, path)) return 0;
    return checked_size(constant_bytes(c) + resettable_bytes(c, window, path));
}

/* floats: x h conv_in local ssm_out attn (d each), q (d_head), scores (window), gates (4),
 * kv (i8 path: d_head + d); then top (top_k u32), then h8 (d int16, rounded up to 4 bytes) */
size_t atome_scratch_bytes(const atome_config *c, uint32_t window, int path) {
    uint64_t floats;
    if (!sizes_ok(c, window, path)) return 0;
    floats = 6 * (uint64_t)c->d_model + c->d_head + window + 4;
    if (path == ATOME_PATH_I8) floats += c->d_head + (uint64_t)c->d_model;
    return checked_size(4 * (floats + c->top_k) + ((2 * (uint64_t)c->d_model + 3) & ~(uint64_t)3));
}

size_t atome_sizeof_model(void) { return sizeof(atome_model); }
size_t atome_sizeof_state(void) { return sizeof(atome_state); }

void atome_reset(atome_state *s) {
    memset(s->conv, 0, (size_t)resettable_bytes(&s->model->cfg, s->window, s->path));
    s->filled = s->head = s->pos = 0;
}

int atome_state_init(atome_state *s, const atome_model *m, uint32_t window, int path,
                     void *state_buf, size_t state_len, void *scratch_buf, size_t scratch_len) {
    const atome_config *c;
    size_t need_state, need_scratch, d, L, l, i, ring;
    float *f;
    if (!s || !m || !state_buf || !scratch_buf) return ATOME_ERR_BAD_ARGUMENT;
    if (path != ATOME_PATH_F32 && path != ATOME_PATH_I8) return ATOME_ERR_BAD_ARGUMENT;
    c = &m->cfg;
    if (!config_ok(c)) return ATOME_ERR_CONFIG_LIMITS;
    if (window < 1 || window > ATOME_MAX_WINDOW) return ATOME_ERR_BAD_ARGUMENT;
    need_state = atome_state_bytes(c, window, path);
    need_scratch = atome_scratch_bytes(c, window, path);
    if (need_state == 0 || need_scratch == 0) return ATOME_ERR_CONFIG_LIMITS;
    if (state_len < need_state || scratch_len < need_scratch) return ATOME_ERR_BUFFER_TOO_SMALL;
    if (((uintptr_t)state_buf & 3) || ((uintptr_t)scratch_buf & 3)) return ATOME_ERR_MISALIGNED;
    d = c->d_model;
    L = c->n_layers;
    ring = L * (size_t)window;
    s->model = m;
    s->path = path;
    s->window = window;
    f = (float *)state_buf;
    s->decay = f;  f += L * d;
    s->conv = f;   f += L * (c->kernel - 1) * d;
    s->ssm = f;    f += L * d;
    s->keys = s->values = s->key_scale = s->value_scale = 0;
    s->keys8 = s->values8 = 0;
    if (path == ATOME_PATH_F32) {
        s->keys = f;        f += ring * c->d_head;
        s->values = f;
    } else {
        s->key_scale = f;   f += ring;
        s->value_scale = f; f += ring;
        s->keys8 = (int8_t *)f;
        s->values8 = s->keys8 + ring * c->d_head;
    }
    f = (float *)scratch_buf;
    s->x = f;       f += d;
    s->h = f;       f += d;
    s->conv_in = f; f += d;
    s->local = f;   f += d;
    s->ssm_out = f; f += d;
    s->attn = f;    f += d;
    s->q = f;       f += c->d_head;
    s->scores = f;  f += window;
    s->gates = f;   f += 4;
    s->kv = f;      if (path == ATOME_PATH_I8) f += c->d_head + d;
    s->top = (uint32_t *)f;
    s->h8 = (int16_t *)(s->top + c->top_k);
    for (l = 0; l < L; l++) /* constant per model: tanh once here, not at every step */
        for (i = 0; i < d; i++) s->decay[l * d + i] = atome_tanh(vector_at(&m->a_raw, (uint32_t)l, (uint32_t)i));
    atome_reset(s);
    return ATOME_OK;
}

/* ---------------------------------------------------------------------------------
 * The three pathways. */

/* Depthwise causal convolution: out[c] = scale * sum over taps, oldest first, of
 * trit * input; the window holds the kernel - 1 previous inputs and is shifted here. */
static void local_conv(const atome_model *m, uint32_t layer, float *window, const float *in, float *out) {
    uint32_t d = m->cfg.d_model, K = m->cfg.kernel, c, j;
    float scale = scale_of(&m->conv, layer);
    size_t base = (size_t)layer * m->conv.trit_stride;
    for (c = 0; c < d; c++) {
        float acc = 0.0f;
        for (j = 0; j < K; j++) {
            float v = j == K - 1 ? in[c] : window[(size_t)j * d + c];
            uint32_t tap = m->conv_newest_first ? K - 1 - j : j;
            acc += trit_at(m->conv.codes, base + (size_t)c * K + tap) * v;
        }
        out[c] = acc * scale;
    }
    if (K > 1) {
        memmove(window, window + d, sizeof(float) * (size_t)(K - 2) * d);
        memcpy(window + (size_t)(K - 2) * d, in, sizeof(float) * d);
    }
}

/* Diagonal recurrence: s = tanh(a_raw) * s + b * h, out = c_out * s (decay = tanh(a_raw)). */
static void ssm_step(const atome_model *m, uint32_t layer, const float *decay, float *state, const float *h,
                     float *out) {
    uint32_t i;
    for (i = 0; i < m->cfg.d_model; i++) {
        state[i] = decay[i] * state[i] + vector_at(&m->ssm_b, layer, i) * h[i];
        out[i] = vector_at(&m->c_out, layer, i) * state[i];
    }
}

/* Top-k attention over the ring (q, this token's key and value already computed and
 * stored at s->head). Scores in time order; the k largest kept in descending order,
 * ties to the earlier token; softmax over those; out = sum of weight * value in that order.
 * On the i8 path a key or value is its 8-bit codes divided by its scale. */
static void topk_attention(atome_state *s, uint32_t layer, float *out) {
    const atome_config *c = &s->model->cfg;
    uint32_t d = c->d_model, dh = c->d_head, N = s->window, n = s->filled, i, j, count = 0;
    uint32_t k = c->top_k < n ? c->top_k : n;
    uint32_t oldest = (s->head + N - n + 1) % N;
    size_t ring = (size_t)layer * N;
    float inv_sqrt_dh = atome_rsqrt((float)dh), top_score, total = 0.0f;
    for (i = 0; i < n; i++) {
        size_t slot = ring + (oldest + i) % N;
        s->scores[i] = s->keys ? dot_lanes(s->q, s->keys + slot * dh, dh) * inv_sqrt_dh
                               : (dot_lanes_i8(s->q, s->keys8 + slot * dh, dh) / s->key_scale[slot]) * inv_sqrt_dh;
    }
    for (i = 0; i < n; i++) { /* insertion into the sorted list s->top[0..count) */
        float score = s->scores[i];
        uint32_t at;
        if (count < k) at = count++;
        else if (score > s->scores[s->top[k - 1]]) at = k - 1;
        else continue;
        while (at > 0 && score > s->scores[s->top[at - 1]]) {
            s->top[at] = s->top[at - 1];
            at--;
        }
        s->top[at] = i;
    }
    top_score = s->scores[s->top[0]];
    for (j = 0; j < k; j++) { /* scores no longer needed: keep the exponentials there */
        float e = atome_exp(s->scores[s->top[j]] - top_score);
        s->scores[s->top[j]] = e;
        total += e;
    }
    for (i = 0; i < d; i++) out[i] = 0.0f;
    for (j = 0; j < k; j++) {
        float w = s->scores[s->top[j]] / total;
        size_t slot = ring + (oldest + s->top[j]) % N;
        if (s->values) {
            const float *v = s->values + slot * d;
            for (i = 0; i < d; i++) out[i] += w * v[i];
        } else {
            const int8_t *v = s->values8 + slot * d;
            w = w / s->value_scale[slot];
            for (i = 0; i < d; i++) out[i] += w * (float)v[i];
        }
    }
}

/* ---------------------------------------------------------------------------------
 * One token. */

int atome_step(atome_state *s, uint32_t token, float *logits) {
    const atome_model *m;
    const atome_config *c;
    uint32_t d, dh, N, l, i;
    if (!s || !s->model || !logits) return ATOME_ERR_BAD_ARGUMENT;
    m = s->model;
    c = &m->cfg;
    if (token >= c->vocab) return ATOME_ERR_BAD_TOKEN;
    d = c->d_model;
    dh = c->d_head;
    N = s->window;
    s->head = s->filled == 0 ? 0 : (s->head + 1) % N;
    if (s->filled < N) s->filled++;
    s->pos++;

    {   /* embedding: row `token` of the ternary table times its scale */
        float scale = scale_of(&m->embed, 0);
        for (i = 0; i < d; i++) s->x[i] = trit_at(m->embed.codes, (size_t)token * d + i) * scale;
    }
    for (l = 0; l < c->n_layers; l++) {
        size_t slot = (size_t)l * N + s->head;
        float *g = s->gates, top;
        layer_norm(s->x, d, &m->norm_w, &m->norm_b, l, s->h);
        if (s->path == ATOME_PATH_I8) {
            float q_scale = quantize_i8(s->h, d, s->h8, 0);
            for (i = 0; i < d; i++) s->conv_in[i] = (float)s->h8[i] / q_scale;
            matvec_i8(&m->router, l, s->h8, q_scale, 3, d, g);
            matvec_i8(&m->wq, l, s->h8, q_scale, dh, d, s->q);
            /* key and value through the float scratch, then into the ring in 8 bits */
            matvec_i8(&m->wk, l, s->h8, q_scale, dh, d, s->kv);
            s->key_scale[slot] = quantize_i8(s->kv, dh, 0, s->keys8 + slot * dh);
            matvec_i8(&m->wv, l, s->h8, q_scale, d, d, s->kv);
            s->value_scale[slot] = quantize_i8(s->kv, d, 0, s->values8 + slot * d);
        } else {
            memcpy(s->conv_in, s->h, sizeof(float) * d);
            matvec_f32(&m->router, l, s->h, 3, d, g);
            matvec_f32(&m->wq, l, s->h, dh, d, s->q);
            matvec_f32(&m->wk, l, s->h, dh, d, s->keys + slot * dh);
            matvec_f32(&m->wv, l, s->h, d, d, s->values + slot * d);
        }
        top = g[0]; /* router softmax over the three pathways */
        if (g[1] > top) top = g[1];
        if (g[2] > top) top = g[2];
        g[0] = atome_exp(g[0] - top);
        g[1] = atome_exp(g[1] - top);
        g[2] = atome_exp(g[2] - top);
        g[3] = (g[0] + g[1]) + g[2];
        g[0] = g[0] / g[3];
        g[1] = g[1] / g[3];
        g[2] = g[2] / g[3];
        local_conv(m, l, s->conv + (size_t)l * (c->kernel - 1) * d, s->conv_in, s->local);
        ssm_step(m, l, s->decay + (size_t)l * d, s->ssm + (size_t)l * d, s->h, s->ssm_out);
        topk_attention(s, l, s->attn);
        for (i = 0; i < d; i++)
            s->x[i] = ((s->x[i] + g[0] * s->local[i]) + g[1] * s->ssm_out[i]) + g[2] * s->attn[i];
    }
    layer_norm(s->x, d, &m->final_w, &m->final_b, 0, s->h);
    if (s->path == ATOME_PATH_I8) {
        float q_scale = quantize_i8(s->h, d, s->h8, 0);
        matvec_i8(&m->unembed, 0, s->h8, q_scale, c->vocab, d, logits);
    } else {
        matvec_f32(&m->unembed, 0, s->h, c->vocab, d, logits);
    }
    return ATOME_OK;
}

int atome_run(atome_state *s, const uint32_t *tokens, size_t n, float *logits) {
    size_t t;
    if (!s || !s->model || !tokens || n == 0) return ATOME_ERR_BAD_ARGUMENT;
    for (t = 0; t < n; t++) {
        int status = atome_step(s, tokens[t], logits);
        if (status != ATOME_OK) return status;
    }
    return ATOME_OK;
}

int atome_forward(atome_state *s, const uint32_t *tokens, size_t n, float *logits) {
    if (!s || !s->model || !tokens || n == 0) return ATOME_ERR_BAD_ARGUMENT;
    atome_reset(s);
    return atome_run(s, tokens, n, logits);
}

/* ---------------------------------------------------------------------------------
 * Picking the next token. */

uint32_t atome_argmax(const float *logits, uint32_t n) {
    uint32_t best = 0, i;
    for (i = 1; i < n; i++)
        if (logits[i] > logits[best] || logits[best] != logits[best]) best = i;
    return best;
}

static uint64_t splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint32_t atome_sample(float *logits, uint32_t n, float temperature, uint64_t *rng) {
    uint32_t best, i, last = 0;
    float top, total = 0.0f, target, acc = 0.0f;
    if (n == 0) return 0;
    best = atome_argmax(logits, n);
    if (!(temperature > 0.0f) || !rng) return best;
    top = logits[best];
    for (i = 0; i < n; i++) {
        logits[i] = atome_exp((logits[i] - top) / temperature);
        total += logits[i];
    }
    /* a uniform float in [0, 1): 24 random bits, exactly representable */
    target = (float)(uint32_t)(splitmix64(rng) >> 40) * 5.96046448e-8f * total;
    for (i = 0; i < n; i++) {
        if (logits[i] > 0.0f) last = i;
        acc += logits[i];
        if (target < acc) return i;
    }
    return logits[last] > 0.0f ? last : best; /* rounding left target at the very top */
}

const char *atome_status_name(int status) {
    static const char *const names[ATOME_N_STATUS] = {
        "OK", "BAD_MAGIC", "UNSUPPORTED_VERSION", "TRUNCATED", "TRAILING_BYTES", "CHECKSUM",
        "BAD_HEADER", "SECTION_BOUNDS", "SECTION_OVERLAP", "CONFIG_MISMATCH", "LEGACY_SIZE",
        "CORRUPT_SECTION", "CONFIG_LIMITS", "ARENA_TOO_SMALL", "BUFFER_TOO_SMALL", "MISALIGNED",
        "BAD_ARGUMENT", "BAD_TOKEN"};
    return status >= 0 && status < ATOME_N_STATUS ? names[status] : "UNKNOWN";
}
