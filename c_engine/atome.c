/* atome.c: the routed-ternary model, one token at a time.
 *
 * Read atome.h first. This file is the arithmetic: every float operation happens in
 * the order written here, and atome_core/engine/reference.py repeats it operation for operation
 * in NumPy, so both produce the same float32 bits (and the same integers on the i8
 * path). Compile with -ffp-contract=off (no fused multiply-add) and without -ffast-math.
 * Right shifts of negative integers are arithmetic (GCC and Clang, every target).
 */
#include "atome.h"

#include <string.h>

/* The hot loops stay functions of their own: inlined into one big step, they run out
 * of registers on a Cortex-M (measured: twice the instructions per multiply-add). */
#if defined(__GNUC__)
#define KERNEL __attribute__((noinline)) static
#define INLINE __attribute__((always_inline)) static inline
#else
#define KERNEL static
#define INLINE static
#endif

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

/* Little-endian float32 at any address: memcpy is one load where the core allows
 * unaligned loads (Cortex-M3/M4/M7, x86) and four byte loads where it does not (M0). */
INLINE float read_f32(const uint8_t *p) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    float f;
    memcpy(&f, p, 4);
    return f;
#else
    return float_from_bits((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                           (uint32_t)p[3] << 24);
#endif
}

/* IEEE half -> float, exact (what NumPy's astype(float32) does): the exponent rebiased,
 * a subnormal half as its mantissa times 2^-24 (exact in float). */
static float read_f16(const uint8_t *p) {
    uint32_t h = (uint32_t)p[0] | (uint32_t)p[1] << 8, sign = (h >> 15) << 31, e = (h >> 10) & 31, m = h & 1023;
    if (e == 0) return float_from_bits(bits_from_float((float)m * 5.96046448e-8f) | sign);
    return float_from_bits(sign | (e == 31 ? 255 : e + 112) << 23 | m << 13);
}

static float vector_at(const atome_vector *v, uint32_t layer, uint32_t i) {
    const uint8_t *p = v->data + (size_t)layer * v->stride;
    return v->f16 ? read_f16(p + 2 * (size_t)i) : read_f32(p + 4 * (size_t)i);
}

static float scale_of(const atome_trits *w, uint32_t layer) {
    return read_f32(w->scale + (size_t)layer * w->scale_stride);
}

/* A 2-bit code -> its trit: 00 = 0, 01 = +1, 11 = -1 (10 never passes the loader). */
#define TRIT(c) ((int32_t)((c) & 1) - (int32_t)((c) & 2))

static uint32_t code_at(const uint8_t *codes, size_t i) {
    return (uint32_t)(codes[i >> 2] >> (2 * (i & 3))) & 3;
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

/* c[0] + r (c[1] + r (... + r c[n-1])), innermost first: the order the reference uses */
static float horner(const float *c, int n, float r) {
    float p = c[n - 1];
    while (--n > 0) p = c[n - 1] + r * p;
    return p;
}

/* e^r: Taylor to degree 7 (error below 1e-8 on |r| <= 0.35) */
static const float EXP_TAYLOR[8] = {1.0f, 1.0f, 0.5f, 0.166666672f, 0.0416666679f, 0.00833333377f,
                                    0.00138888892f, 0.000198412701f};
/* tanh x = x + x z p(z), z = x^2: least-squares fit of (tanh x - x) / x^3 in x^2 on |x| < 0.625 */
static const float TANH_FIT[6] = {-0.333333313f, 0.133332163f, -0.0539480969f, 0.0217081271f, -0.00819607731f,
                                  0.00216041808f};

float atome_exp(float x) {
    float n, r, p;
    int k;
    if (x != x) return x;
    if (x > 88.8f) return float_from_bits(0x7f800000u);
    if (x < -104.0f) return 0.0f;
    /* x = n ln2 + r with |r| <= ln2 / 2; ln2 split in two so n * LN2_HI is exact */
    n = round_to_integer(x * 1.44269502f);
    r = (x - n * 0.693145751953125f) - n * 1.428606765e-6f;
    p = horner(EXP_TAYLOR, 8, r);
    k = (int)n;
    if (k > 127) return (p * pow2i(k - 1)) * 2.0f;
    if (k < -126) return (p * pow2i(k + 64)) * 5.42101086e-20f; /* 2^-64: one rounding */
    return p * pow2i(k);
}

float atome_tanh(float x) {
    float a = x < 0.0f ? -x : x, t;
    if (a < 0.625f) {
        float z = x * x;
        return x + x * (z * horner(TANH_FIT, 6, z));
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

/* The router's softmax over the three pathways, in place (g[3] gets the total,
 * (g0 + g1) + g2: 0 + g0 is g0 exactly, e^x is never -0). */
static void softmax3(float *g) {
    float top = g[0];
    int i;
    for (i = 1; i < 3; i++)
        if (g[i] > top) top = g[i];
    g[3] = 0.0f;
    for (i = 0; i < 3; i++) {
        g[i] = atome_exp(g[i] - top);
        g[3] += g[i];
    }
    for (i = 0; i < 3; i++) g[i] = g[i] / g[3];
}

/* ---------------------------------------------------------------------------------
 * The f32 path. Sums in a fixed order: element i goes into lane i % 8, each lane in
 * order, then a fixed tree. Eight independent lanes also let the compiler keep them
 * in (SIMD) registers. */
#if ATOME_F32_PATH

#define ROW(b) { TRIT(b), TRIT((b) >> 2), TRIT((b) >> 4), TRIT((b) >> 6) }
#define R4(b) ROW(b), ROW((b) + 1), ROW((b) + 2), ROW((b) + 3)
#define R16(b) R4(b), R4((b) + 4), R4((b) + 8), R4((b) + 12)
#define R64(b) R16(b), R16((b) + 16), R16((b) + 32), R16((b) + 48)
static const float TRITS_F32[256][4] = { R64(0), R64(64), R64(128), R64(192) };

static float trit_at(const uint8_t *codes, size_t i) {
    return TRITS_F32[codes[i >> 2]][i & 3];
}

static void clear_lanes(float a[8]) {
    size_t j;
    for (j = 0; j < 8; j++) a[j] = 0.0f;
}

static float lanes_total(const float a[8]) {
    return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
}

static float sum_lanes(const float *x, size_t n) {
    float a[8];
    size_t i = 0, j;
    clear_lanes(a);
    for (; i + 8 <= n; i += 8)
        for (j = 0; j < 8; j++) a[j] += x[i + j];
    for (j = 0; i < n; i++, j++) a[j] += x[i];
    return lanes_total(a);
}

static float dot_lanes(const float *x, const float *y, size_t n) {
    float a[8];
    size_t i = 0, j;
    clear_lanes(a);
    for (; i + 8 <= n; i += 8)
        for (j = 0; j < 8; j++) a[j] += x[i + j] * y[i + j];
    for (j = 0; i < n; i++, j++) a[j] += x[i] * y[i];
    return lanes_total(a);
}

/* sum over i < n of t[i] * x[i], t the trits from trit number `start` of `codes`.
 * Rows that start on a byte take the fast path, eight trits (two bytes) a turn;
 * both paths do the same operations in the same lanes. */
static float ternary_dot(const uint8_t *codes, size_t start, const float *x, size_t n) {
    float a[8];
    size_t i = 0, j;
    clear_lanes(a);
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

/* y = (W x) * scale for layer `layer` of a stack of (rows, cols) ternary matrices. */
static void matvec_f32(const atome_trits *w, uint32_t layer, const float *x, uint32_t rows,
                       uint32_t cols, float *y) {
    float scale = scale_of(w, layer);
    size_t base = (size_t)layer * w->trit_stride;
    uint32_t r;
    for (r = 0; r < rows; r++) y[r] = ternary_dot(w->codes, base + (size_t)r * cols, x, cols) * scale;
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

/* Diagonal recurrence: s = decay * s + b * h, out = c_out * s (decay = tanh(a_raw)). */
static void ssm_step(const atome_model *m, uint32_t layer, const float *decay, float *state, const float *h,
                     float *out) {
    uint32_t i;
    for (i = 0; i < m->cfg.d_model; i++) {
        state[i] = decay[i] * state[i] + vector_at(&m->ssm_b, layer, i) * h[i];
        out[i] = vector_at(&m->c_out, layer, i) * state[i];
    }
}
#endif /* ATOME_F32_PATH */

/* ---------------------------------------------------------------------------------
 * The i8 path: integers. Activations are int32 in Q16 fixed point (value * 2^16),
 * saturated to +-(2^31 - 1). A vector that goes into a ternary product, an attention
 * score or a value sum is first quantised to 8 bits by its absmax (q = round(127 x /
 * amax), so x is about q * amax / 127), which keeps every sum an exact integer.
 * Per-channel parameters are read as floats and converted exactly to Q24; the float
 * scale of a product becomes a multiplier m * 2^-shift, its own mantissa and exponent.
 * Floats remain for a few numbers per vector, never per multiply-add. */

#define Q 16   /* activations: value * 2^16 */
#define QP 24  /* parameters and the SSM decay: value * 2^24 */
#define QF 8   /* the per-term factors of the convolution and the attention value sum */
#define SAT 2147483647

/* v clamped to +-(2^31 - 1); every v this file passes is below 2^62 in size */
INLINE int32_t sat32(int64_t v) {
    if ((uint64_t)(v + SAT) <= 2u * (uint64_t)SAT) return (int32_t)v; /* -SAT <= v <= SAT */
    return v > 0 ? SAT : -SAT;
}

/* round(v / 2^s), halves up, 1 <= s <= 62 */
INLINE int64_t shift_round(int64_t v, int s) {
    return (v + ((int64_t)1 << (s - 1))) >> s;
}

/* round(f * 2^frac), halves away from zero, saturated; 0 for NaN and subnormals
 * (frac <= 24). From the float's bits: f = m * 2^(e - 150). */
INLINE int32_t fixed_inline(float f, int frac) {
    uint32_t u = bits_from_float(f), e = (u >> 23) & 255, m = (u & 0x7fffffu) | 0x800000u, v;
    int shift = (int)e - 150 + frac;
    if (e == 255 && (u & 0x7fffffu)) return 0;   /* NaN */
    if (e == 0) return 0;
    if (shift >= 8) v = SAT;                     /* m >= 2^23: at least 2^31 (or infinity) */
    else if (shift >= 0) v = m << shift;
    else if (shift >= -24) v = (m + (1u << (-shift - 1))) >> -shift;
    else v = 0;
    return u >> 31 ? -(int32_t)v : (int32_t)v;
}

/* The same, out of line: one copy for the calls outside the loop of params_q. */
static int32_t fixed_from_float(float f, int frac) { return fixed_inline(f, frac); }

/* A float as an exact multiplier m * 2^-shift, |m| < 2^24 (0 for zero, subnormals, inf, NaN). */
typedef struct {
    int32_t m;
    int shift;
} multiplier;

static multiplier multiplier_of(float f) {
    uint32_t u = bits_from_float(f), e = (u >> 23) & 255;
    multiplier r;
    r.m = 0;
    r.shift = 0;
    if (e == 0 || e == 255) return r;
    r.m = (int32_t)((u & 0x7fffffu) | 0x800000u);
    if (u >> 31) r.m = -r.m;
    r.shift = 150 - (int)e;
    return r;
}

/* round(a * f), halves up, saturated: |a * m| < 2^55, so int64 holds every step. */
static int32_t scale_by(int32_t a, multiplier f) {
    int64_t p = (int64_t)a * f.m;
    if (f.shift > 0 && f.shift < 32) { /* the usual case, in 32-bit halves */
        uint32_t s = (uint32_t)f.shift, lo, u;
        int32_t hi, top;
        p += (int64_t)((uint32_t)1 << (s - 1));
        lo = (uint32_t)p;
        hi = (int32_t)(p >> 32);
        u = (lo >> s) | ((uint32_t)hi << (32 - s)); /* the low 32 bits of p >> s */
        top = hi >> (s - 1);                        /* 0 or -1 when p >> s fits 32 bits */
        if (top == 0) return (int32_t)u;
        if (top == -1 && u > 0x80000000u) return -(int32_t)~u - 1;
        return top < 0 ? -SAT : SAT;
    }
    if (f.shift > 0 && f.shift < 56) return sat32(shift_round(p, f.shift));
    if (f.shift >= 56) return 0;
    if (p == 0) return 0;
    if (f.shift <= -8) return p > 0 ? SAT : -SAT;   /* |p| >= 2^23, times 2^8 or more */
    return sat32(p * ((int64_t)1 << -f.shift));
}

/* The factor from 8-bit codes to Q16 units of a vector quantised by amax, times scale. */
static float dequant(float scale, int32_t amax) {
    return (scale * (float)amax) * (1.0f / 127.0f);
}

INLINE uint32_t max_abs(const int32_t *x, uint32_t n) {
    uint32_t top = 0, i;
    for (i = 0; i < n; i++) {
        uint32_t a = x[i] < 0 ? 0u - (uint32_t)x[i] : (uint32_t)x[i];
        if (a > top) top = a;
    }
    return top;
}

/* q = round(127 x / amax) by one 32-bit division per vector: x and amax shifted down
 * to 16 bits (t), r = floor(127 2^23 / (amax >> t)), q = round((x >> t) r / 2^23),
 * within -127..127. Returns amax (0: x is all zero, and so is q). */
KERNEL int32_t quantize_q(const int32_t *x, uint32_t n, int8_t *q) {
    uint32_t amax = max_abs(x, n), t = 0, i;
    int32_t r;
    if (amax == 0) {
        for (i = 0; i < n; i++) q[i] = 0;
        return 0;
    }
    while ((amax >> t) >= (1u << 16)) t++;
    r = (int32_t)((127u << 23) / (amax >> t));
    for (i = 0; i < n; i++) q[i] = (int8_t)(((x[i] >> t) * r + (1 << 22)) >> 23);
    return (int32_t)amax;
}

/* The lookup table of 8-bit activations q for the ternary products: for each pair
 * (q[2p], q[2p+1]) and each 4-bit code c of two trits, the sum trit(c & 3) q[2p] +
 * trit(c >> 2) q[2p+1] (16 entries per pair). A byte of codes is then two lookups
 * and two adds, for four multiply-adds. */
KERNEL void build_lut(const int8_t *q, uint32_t n, int16_t *lut) {
    uint32_t p;
    for (p = 0; p < (n + 1) / 2; p++, lut += 16) {
        int16_t a = q[2 * p], b = (int16_t)(2 * p + 1 < n ? q[2 * p + 1] : 0);
        /* code c = 4 c1 + c0: trit(c0) a + trit(c1) b; entries with a 10 (never read) get 0 */
        lut[0] = 0;
        lut[1] = a;
        lut[3] = (int16_t)-a;
        lut[4] = b;
        lut[5] = (int16_t)(b + a);
        lut[7] = (int16_t)(b - a);
        lut[12] = (int16_t)-b;
        lut[13] = (int16_t)(a - b);
        lut[15] = (int16_t)(-a - b);
        lut[2] = lut[6] = lut[8] = lut[9] = lut[10] = lut[11] = lut[14] = 0;
    }
}

/* The exact sums of trit * q of rows 0..last (last <= 3) of byte-aligned codes, stride
 * bytes apart from p, nbytes bytes (4 trits each) a row: acc[0..3], the rows past `last`
 * repeating it (a short group costs no second kernel). The rows share the walk through
 * the table. */
KERNEL void ternary_dot4_q(const uint8_t *p, size_t stride, uint32_t last, uint32_t nbytes, const int16_t *lut,
                           int32_t *acc) {
    const uint8_t *end = p + nbytes;
    const int16_t *hi = lut + 16;
    size_t o1 = last ? stride : 0, o2 = (last > 1 ? 2 : last) * stride, o3 = last * stride;
    int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    for (; p < end; p++, lut += 32, hi += 32) {
        uint32_t b0 = p[0], b1 = p[o1], b2 = p[o2], b3 = p[o3];
        a0 += lut[b0 & 15] + hi[b0 >> 4];
        a1 += lut[b1 & 15] + hi[b1 >> 4];
        a2 += lut[b2 & 15] + hi[b2 >> 4];
        a3 += lut[b3 & 15] + hi[b3 >> 4];
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
}

/* y = round((W h8) * scale * amax / 127) in Q16, W the layer's (rows, d_model) trits and
 * h8 the scratch's 8-bit activations (their table s->i.lut); with logits != 0 instead
 * logits = (W h8) * scale * amax / 127 / 2^16 in float (the unembedding). When d_model
 * is a multiple of 4 every row starts on a byte and rows go four at a time through the
 * table; otherwise one trit at a time (the same integer sums). */
KERNEL void matvec_q(const atome_state *s, const atome_trits *w, uint32_t layer, uint32_t rows, int32_t amax,
                     int32_t *y, float *logits) {
    uint32_t d = s->model->cfg.d_model, r, k, n;
    float f = dequant(scale_of(w, layer), amax), unit = f * 0x1p-16f;
    multiplier mf = multiplier_of(f);
    size_t start = (size_t)layer * w->trit_stride;
    int32_t acc[4];
    for (r = 0; r < rows; r += n) {
        size_t at = start + (size_t)r * d;
        n = 1;
        if (d % 4 == 0) {
            n = rows - r < 4 ? rows - r : 4;
            ternary_dot4_q(w->codes + at / 4, d / 4, n - 1, d / 4, s->i.lut, acc);
        } else {
            uint32_t i;
            acc[0] = 0;
            for (i = 0; i < d; i++) acc[0] += TRIT(code_at(w->codes, at + i)) * s->i.h8[i];
        }
        for (k = 0; k < n; k++) {
            if (logits) logits[r + k] = (float)acc[k] * unit;
            else y[r + k] = scale_by(acc[k], mf);
        }
    }
}

/* A layer's float vector in fixed point (frac fractional bits), all n elements. */
KERNEL void params_q(const atome_vector *v, uint32_t layer, uint32_t n, int frac, int32_t *out) {
    const uint8_t *p = v->data + (size_t)layer * v->stride;
    uint32_t i;
    for (i = 0; i < n; i++) out[i] = fixed_inline(v->f16 ? read_f16(p + 2 * (size_t)i) : read_f32(p + 4 * (size_t)i), frac);
}

/* h = LayerNorm(x) in Q16 with the layer's weight w and bias b, then its 8-bit codes h8
 * and their table: the input of this layer's products. Returns h's amax.
 * The statistics are exact integers of y = x >> t (t so |y| <= 2^14): sum, and d^2
 * times the variance, d sum(y^2) - sum^2; then one float 1/std per vector. */
KERNEL int32_t norm_q(atome_state *s, const atome_vector *w, const atome_vector *b, uint32_t layer) {
    uint32_t d = s->model->cfg.d_model, amax = max_abs(s->i.x, d), t = 0, i;
    int32_t sum = 0, *x = s->i.x, *weight = s->i.local, *bias = s->i.attn; /* local, attn: free here */
    int64_t squares = 0, spread;
    float var;
    multiplier g;
    while ((amax >> t) >= (1u << 14)) t++;
    for (i = 0; i < d; i++) {
        int32_t y = x[i] >> t;
        sum += y;
        squares += (int64_t)y * y;
    }
    spread = (int64_t)d * squares - (int64_t)sum * sum;
    var = (((float)spread / (float)d) / (float)d) * pow2i(2 * (int)t - 2 * Q);
    /* (x - mean) / std in Q16 = (d y - sum) * 2^t / (d std) */
    g = multiplier_of((atome_rsqrt(var + 1e-5f) * pow2i((int)t)) / (float)d);
    params_q(w, layer, d, QP, weight);
    params_q(b, layer, d, Q, bias);
    for (i = 0; i < d; i++) {
        int32_t n = scale_by((int32_t)d * (x[i] >> t) - sum, g);
        s->i.h[i] = sat32(shift_round((int64_t)n * weight[i], QP) + bias[i]);
    }
    amax = (uint32_t)quantize_q(s->i.h, d, s->i.h8);
    build_lut(s->i.h8, d, s->i.lut);
    return (int32_t)amax;
}

/* A projection of h8 (rows of the layer's W) quantised to 8 bits into q; returns its amax. */
static int32_t project_q(atome_state *s, const atome_trits *w, uint32_t layer, uint32_t rows, int32_t amax,
                         int8_t *q) {
    matvec_q(s, w, layer, rows, amax, s->i.tmp, 0);
    return quantize_q(s->i.tmp, rows, q);
}

/* The convolution on 8-bit inputs: the layer's window = the kernel - 1 previous inputs
 * (oldest first) with their amax, this one = h8. Each tap's factor scale * amax / 127 in
 * Q8, then local[c] = round(sum over taps of trit * code * factor / 2^8), exactly. */
KERNEL void local_conv_q(atome_state *s, uint32_t layer, int32_t in_amax) {
    const atome_model *m = s->model;
    uint32_t d = m->cfg.d_model, K = m->cfg.kernel, c, j;
    int8_t *window = s->i.conv + (size_t)layer * (K - 1) * d;
    int32_t *window_amax = s->i.conv_amax + (size_t)layer * (K - 1), *factor = s->i.factor;
    const int8_t **rows = s->i.rows;
    float scale = scale_of(&m->conv, layer);
    size_t start = (size_t)layer * m->conv.trit_stride;
    const uint8_t *codes = m->conv.codes + start / 4;
    uint32_t bits = *codes++ >> (2 * (start & 3)), left = 4 - (uint32_t)(start & 3), t;
    for (j = 0; j < K; j++) { /* tap j of a channel: its j-th trit, or (ATOME01) its (K-1-j)-th */
        uint32_t tap = m->conv_newest_first ? K - 1 - j : j;
        rows[tap] = j == K - 1 ? s->i.h8 : window + (size_t)j * d;
        factor[tap] = fixed_from_float(dequant(scale, j == K - 1 ? in_amax : window_amax[j]), QF);
    }
    for (c = 0; c < d; c++) {
        int64_t acc = 0;
        for (t = 0; t < K; t++) { /* the channel's K trits in order: bits holds the current byte */
            uint32_t code;
            if (left == 0) {
                bits = *codes++;
                left = 4;
            }
            code = bits & 3;
            bits >>= 2;
            left--;
            if (code) {
                int32_t v = code == 1 ? rows[t][c] : -rows[t][c];
                acc += (int64_t)v * factor[t];
            }
        }
        s->i.local[c] = sat32(shift_round(acc, QF));
    }
    if (K > 1) {
        memmove(window, window + d, (size_t)(K - 2) * d);
        memcpy(window + (size_t)(K - 2) * d, s->i.h8, d);
        memmove(window_amax, window_amax + 1, sizeof(int32_t) * (K - 2));
        window_amax[K - 2] = in_amax;
    }
}

/* s = decay * s + b * h, out = c_out * s, in Q16 with Q24 parameters (b and c_out
 * converted into tmp and attn, free here). */
KERNEL void ssm_q(atome_state *s, uint32_t layer) {
    const atome_model *m = s->model;
    uint32_t d = m->cfg.d_model, i;
    int32_t *decay = s->i.decay + (size_t)layer * d, *state = s->i.ssm + (size_t)layer * d, *b = s->i.tmp,
            *c_out = s->i.attn;
    params_q(&m->ssm_b, layer, d, QP, b);
    params_q(&m->c_out, layer, d, QP, c_out);
    for (i = 0; i < d; i++) {
        state[i] = sat32(shift_round((int64_t)decay[i] * state[i] + (int64_t)b[i] * s->i.h[i], QP));
        s->i.ssm_out[i] = sat32(shift_round((int64_t)c_out[i] * state[i], QP));
    }
}

/* ---------------------------------------------------------------------------------
 * State and scratch: carved out of the caller's buffers, every array 8-byte aligned.
 * The state buffer holds the per-model constants (the SSM decay), then what
 * atome_reset zeroes; the scratch buffer one step's activations. */

/* Every dimension in 1..65535 (atome_load.c has its own copy: the objects stand alone). */
static int config_ok(const atome_config *c) {
    uint32_t v[6], i;
    if (!c) return 0;
    memcpy(v, c, sizeof v); /* the six dimensions, in order (atome_load.c checks the struct is that) */
    for (i = 0; i < 6; i++)
        if (v[i] - 1u > 65534u) return 0; /* outside 1..65535 */
    return 1;
}

#define ATOME_MAX_WINDOW (1u << 24)

static int path_ok(int path) {
    return path == ATOME_PATH_I8 || (ATOME_F32_PATH && path == ATOME_PATH_F32);
}

/* Each path's arrays in buffer order, state then scratch: the field of atome_state that
 * points at the array, and its bytes as the product of three of layout()'s sizes. */
enum { ONE, FOUR, EIGHT, THIRTY_TWO, L, D, DH, TOP_K, WINDOW, TAPS, WIDE, MANY, PAIRS, D4, DH4, N_SIZES };
typedef struct {
    uint8_t field, x, y, z; /* field: its offset in pointers */
} array_spec;
#define ARRAY(field, x, y, z) {offsetof(atome_state, field) / sizeof(void *), x, y, z}

static const array_spec I8_ARRAYS[] = {
    ARRAY(i.decay, L, D, FOUR), /* first on both paths: the constants, which atome_reset leaves */
    ARRAY(i.ssm, L, D, FOUR), ARRAY(i.conv_amax, L, TAPS, FOUR), ARRAY(i.key_amax, L, WINDOW, FOUR),
    ARRAY(i.value_amax, L, WINDOW, FOUR), ARRAY(i.conv, L, TAPS, D), ARRAY(i.keys, L, WINDOW, DH),
    ARRAY(i.values, L, WINDOW, D),
    /* scratch */
    ARRAY(gates, FOUR, FOUR, ONE), ARRAY(top, TOP_K, FOUR, ONE), ARRAY(i.rank, WINDOW, EIGHT, ONE),
    ARRAY(i.x, D, FOUR, ONE), ARRAY(i.h, D, FOUR, ONE), ARRAY(i.local, D, FOUR, ONE),
    ARRAY(i.ssm_out, D, FOUR, ONE), ARRAY(i.attn, D, FOUR, ONE), ARRAY(i.tmp, WIDE, FOUR, ONE),
    ARRAY(i.factor, MANY, FOUR, ONE),
    ARRAY(i.rows, MANY, EIGHT, ONE), /* pointers, 8 bytes each: the same size on every target */
    ARRAY(weights, TOP_K, FOUR, ONE), ARRAY(i.lut, PAIRS, THIRTY_TWO, ONE), ARRAY(i.h8, D, ONE, ONE),
    ARRAY(i.q8, DH, ONE, ONE)};
#define I8_STATE_ARRAYS 8

#if ATOME_F32_PATH
static const array_spec F32_ARRAYS[] = {
    ARRAY(f.decay, L, D, FOUR), ARRAY(f.conv, L, TAPS, D4), ARRAY(f.ssm, L, D, FOUR),
    ARRAY(f.keys, L, WINDOW, DH4), ARRAY(f.values, L, WINDOW, D4),
    /* scratch */
    ARRAY(gates, FOUR, FOUR, ONE), ARRAY(top, TOP_K, FOUR, ONE), ARRAY(f.x, D, FOUR, ONE),
    ARRAY(f.h, D, FOUR, ONE), ARRAY(f.local, D, FOUR, ONE), ARRAY(f.ssm_out, D, FOUR, ONE),
    ARRAY(f.attn, D, FOUR, ONE), ARRAY(f.q, DH, FOUR, ONE), ARRAY(f.scores, WINDOW, FOUR, ONE)};
#define F32_STATE_ARRAYS 5
#endif

/* Points n arrays into buf (0: only counts, every pointer 0), each 8-byte aligned;
 * returns their bytes (below 2^62: each product is below 2^58). A void pointer is
 * stored into each typed field (one pointer representation: every target of ours). */
static uint64_t carve(atome_state *s, const array_spec *e, uint32_t n, const uint32_t *sizes, uint8_t *buf) {
    uint64_t used = 0;
    for (; n > 0; n--, e++) {
        void *p = buf ? buf + used : 0;
        memcpy((uint8_t *)s + e->field * sizeof p, &p, sizeof p);
        used += ((uint64_t)sizes[e->x] * sizes[e->y] * sizes[e->z] + 7) & ~(uint64_t)7;
    }
    return used;
}

/* Lays out the state buffer and the scratch buffer (0: only counts) for s->window and
 * s->path, points s's arrays into them, and returns their bytes in need[0] and need[1]. */
static void layout(atome_state *s, const atome_config *c, void *state, void *scratch, uint64_t need[2]) {
    uint32_t d = c->d_model, dh = c->d_head, k = c->top_k, wide = d > dh ? d : dh, sizes[N_SIZES];
    uint64_t constants;
    const array_spec *arrays = I8_ARRAYS;
    uint32_t n_state = I8_STATE_ARRAYS, n_all = sizeof I8_ARRAYS / sizeof I8_ARRAYS[0];
    sizes[ONE] = 1;
    sizes[FOUR] = 4;
    sizes[EIGHT] = 8;
    sizes[THIRTY_TWO] = 32;
    sizes[L] = c->n_layers;
    sizes[D] = d;
    sizes[DH] = dh;
    sizes[TOP_K] = k;
    sizes[WINDOW] = s->window;
    sizes[TAPS] = c->kernel - 1;
    sizes[WIDE] = wide > 3 ? wide : 3;
    sizes[MANY] = c->kernel > k ? c->kernel : k;
    sizes[PAIRS] = (d + 1) / 2;
    sizes[D4] = 4 * d;
    sizes[DH4] = 4 * dh;
#if ATOME_F32_PATH
    if (s->path == ATOME_PATH_F32) {
        arrays = F32_ARRAYS;
        n_state = F32_STATE_ARRAYS;
        n_all = sizeof F32_ARRAYS / sizeof F32_ARRAYS[0];
    }
#endif
    need[0] = carve(s, arrays, n_state, sizes, (uint8_t *)state);
    need[1] = carve(s, arrays + n_state, n_all - n_state, sizes, (uint8_t *)scratch);
    constants = (4 * (uint64_t)c->n_layers * d + 7) & ~(uint64_t)7; /* the decay */
    s->history = state ? (uint8_t *)state + constants : 0;
    s->history_bytes = (size_t)(need[0] - constants);
}

/* Bytes of the state (which 0) or the scratch (which 1); 0 for what cannot be. */
static size_t buffer_bytes(const atome_config *c, uint32_t window, int path, int which) {
    atome_state counting;
    uint64_t need[2];
    if (!config_ok(c) || window < 1 || window > ATOME_MAX_WINDOW || !path_ok(path)) return 0;
    counting.window = window;
    counting.path = path;
    layout(&counting, c, 0, 0, need);
    return need[which] > (uint64_t)(size_t)-1 ? 0 : (size_t)need[which];
}

size_t atome_state_bytes(const atome_config *c, uint32_t window, int path) {
    return buffer_bytes(c, window, path, 0);
}

size_t atome_scratch_bytes(const atome_config *c, uint32_t window, int path) {
    return buffer_bytes(c, window, path, 1);
}

size_t atome_sizeof_model(void) { return sizeof(atome_model); }
size_t atome_sizeof_state(void) { return sizeof(atome_state); }

void atome_reset(atome_state *s) {
    memset(s->history, 0, s->history_bytes);
    s->filled = s->head = s->pos = 0;
}

int atome_state_init(atome_state *s, const atome_model *m, uint32_t window, int path,
                     void *state_buf, size_t state_len, void *scratch_buf, size_t scratch_len) {
    uint64_t need[2];
    uint32_t d, l, i, n = 0;
    if (!s || !m || !state_buf || !scratch_buf || !path_ok(path)) return ATOME_ERR_BAD_ARGUMENT;
    if (!config_ok(&m->cfg)) return ATOME_ERR_CONFIG_LIMITS;
    if (window < 1 || window > ATOME_MAX_WINDOW) return ATOME_ERR_BAD_ARGUMENT;
    memset(s, 0, sizeof *s); /* s->model stays 0 (atome_step refuses s) until the end */
    s->path = path;
    s->window = window;
    layout(s, &m->cfg, 0, 0, need);
    if (need[0] > (uint64_t)(size_t)-1 || need[1] > (uint64_t)(size_t)-1) return ATOME_ERR_CONFIG_LIMITS;
    if (state_len < need[0] || scratch_len < need[1]) return ATOME_ERR_BUFFER_TOO_SMALL;
    if (((uintptr_t)state_buf & 7) || ((uintptr_t)scratch_buf & 7)) return ATOME_ERR_MISALIGNED;
    layout(s, &m->cfg, state_buf, scratch_buf, need);
    d = m->cfg.d_model;
    for (l = 0; l < m->cfg.n_layers; l++) /* constant per model: tanh once here, not at every step */
        for (i = 0; i < d; i++, n++) {
            float a = atome_tanh(vector_at(&m->a_raw, l, i));
#if ATOME_F32_PATH
            if (path == ATOME_PATH_F32) {
                s->f.decay[n] = a;
                continue;
            }
#endif
            s->i.decay[n] = fixed_from_float(a, QP);
        }
    s->model = m;
    atome_reset(s);
    return ATOME_OK;
}

/* ---------------------------------------------------------------------------------
 * Top-k attention over the ring: this token's key and value are already at s->head.
 * Scores in time order (f32: s->f.scores; i8: s->i.rank, proportional to them); the k
 * largest kept in descending order, ties to the earlier token; softmax over those; out
 * = sum of weight * value in that order. */

INLINE int ranks_above(const atome_state *s, uint32_t i, uint32_t j) {
#if ATOME_F32_PATH
    if (s->path == ATOME_PATH_F32) return s->f.scores[i] > s->f.scores[j];
#endif
    return s->i.rank[i] > s->i.rank[j];
}

/* s->top[0..k) = the positions of the k best of n scores, best first. */
static void select_top(atome_state *s, uint32_t n, uint32_t k) {
    uint32_t i, count = 0;
    for (i = 0; i < n; i++) { /* insertion into the sorted list s->top[0..count) */
        uint32_t at;
        if (count < k) at = count++;
        else if (ranks_above(s, i, s->top[k - 1])) at = k - 1;
        else continue;
        while (at > 0 && ranks_above(s, i, s->top[at - 1])) {
            s->top[at] = s->top[at - 1];
            at--;
        }
        s->top[at] = i;
    }
}

#if ATOME_F32_PATH
static void attention_f32(atome_state *s, uint32_t layer, float *out) {
    const atome_config *c = &s->model->cfg;
    uint32_t d = c->d_model, dh = c->d_head, N = s->window, n = s->filled, i, j;
    uint32_t k = c->top_k < n ? c->top_k : n, oldest = (s->head + N - n + 1) % N;
    const float *keys = s->f.keys + (size_t)layer * N * dh, *values = s->f.values + (size_t)layer * N * d;
    float inv_sqrt_dh = atome_rsqrt((float)dh), top_score, total = 0.0f, *scores = s->f.scores;
    for (i = 0; i < n; i++) scores[i] = dot_lanes(s->f.q, keys + (size_t)((oldest + i) % N) * dh, dh) * inv_sqrt_dh;
    select_top(s, n, k);
    top_score = scores[s->top[0]];
    for (j = 0; j < k; j++) { /* scores no longer needed: keep the exponentials there */
        float e = atome_exp(scores[s->top[j]] - top_score);
        scores[s->top[j]] = e;
        total += e;
    }
    for (i = 0; i < d; i++) out[i] = 0.0f;
    for (j = 0; j < k; j++) {
        float w = scores[s->top[j]] / total;
        const float *v = values + (size_t)((oldest + s->top[j]) % N) * d;
        for (i = 0; i < d; i++) out[i] += w * v[i];
    }
}
#endif

KERNEL int32_t dot_i8(const int8_t *a, const int8_t *b, uint32_t n) {
    int32_t acc = 0;
    uint32_t i = 0;
    for (; i + 4 <= n; i += 4) acc += a[i] * b[i] + a[i + 1] * b[i + 1] + a[i + 2] * b[i + 2] + a[i + 3] * b[i + 3];
    for (; i < n; i++) acc += a[i] * b[i];
    return acc;
}

/* The i8 path: score_t = q8 . k8_t * amax_q * amax_k_t / (127^2 2^32 sqrt(d_head)); the
 * ranking uses the exact integer dot * amax_k_t, the softmax its difference to the best
 * in float. Each kept value's factor weight * amax_v / 127 in Q8, then an exact sum. */
KERNEL void attention_q(atome_state *s, uint32_t layer, int32_t amax_q) {
    const atome_config *c = &s->model->cfg;
    uint32_t d = c->d_model, dh = c->d_head, N = s->window, n = s->filled, i, j;
    uint32_t k = c->top_k < n ? c->top_k : n, oldest = (s->head + N - n + 1) % N;
    size_t ring = (size_t)layer * N;
    float unit = (((float)amax_q / 16129.0f) * atome_rsqrt((float)dh)) * 0x1p-32f, total = 0.0f;
    const int8_t *q8 = s->i.q8, **rows = s->i.rows;
    int32_t *factor = s->i.factor;
    int64_t best, *rank = s->i.rank;
    uint32_t slot = oldest;
    for (i = 0; i < n; i++) { /* time order: slot = (oldest + i) % N */
        rank[i] = (int64_t)dot_i8(q8, s->i.keys + (ring + slot) * dh, dh) * s->i.key_amax[ring + slot];
        if (++slot == N) slot = 0;
    }
    select_top(s, n, k);
    best = rank[s->top[0]];
    for (j = 0; j < k; j++) {
        s->weights[j] = atome_exp((float)(rank[s->top[j]] - best) * unit);
        total += s->weights[j];
    }
    total = 1.0f / total;
    for (j = 0; j < k; j++) {
        size_t at = ring + (oldest + s->top[j]) % N;
        factor[j] = fixed_from_float(dequant(s->weights[j] * total, s->i.value_amax[at]), QF);
        rows[j] = s->i.values + at * d;
    }
    for (i = 0; i < d; i++) {
        int64_t acc = 0;
        for (j = 0; j < k; j++) acc += (int64_t)factor[j] * rows[j][i];
        s->i.attn[i] = sat32(shift_round(acc, QF));
    }
}

/* ---------------------------------------------------------------------------------
 * One token. */

static void next_slot(atome_state *s) {
    s->head = s->filled == 0 ? 0 : (s->head + 1) % s->window;
    if (s->filled < s->window) s->filled++;
    s->pos++;
}

#if ATOME_F32_PATH
static void step_f32(atome_state *s, uint32_t token, float *logits) {
    const atome_model *m = s->model;
    const atome_config *c = &m->cfg;
    uint32_t d = c->d_model, dh = c->d_head, l, i;
    float scale = scale_of(&m->embed, 0), *g = s->gates, *x = s->f.x, *h = s->f.h;
    for (i = 0; i < d; i++) x[i] = trit_at(m->embed.codes, (size_t)token * d + i) * scale;
    for (l = 0; l < c->n_layers; l++) {
        size_t slot = (size_t)l * s->window + s->head;
        layer_norm(x, d, &m->norm_w, &m->norm_b, l, h);
        matvec_f32(&m->router, l, h, 3, d, g);
        matvec_f32(&m->wq, l, h, dh, d, s->f.q);
        matvec_f32(&m->wk, l, h, dh, d, s->f.keys + slot * dh);
        matvec_f32(&m->wv, l, h, d, d, s->f.values + slot * d);
        softmax3(g);
        local_conv(m, l, s->f.conv + (size_t)l * (c->kernel - 1) * d, h, s->f.local);
        ssm_step(m, l, s->f.decay + (size_t)l * d, s->f.ssm + (size_t)l * d, h, s->f.ssm_out);
        attention_f32(s, l, s->f.attn);
        for (i = 0; i < d; i++)
            x[i] = ((x[i] + g[0] * s->f.local[i]) + g[1] * s->f.ssm_out[i]) + g[2] * s->f.attn[i];
    }
    layer_norm(x, d, &m->final_w, &m->final_b, 0, h);
    matvec_f32(&m->unembed, 0, h, c->vocab, d, logits);
}
#endif

static void step_i8(atome_state *s, uint32_t token, float *logits) {
    const atome_model *m = s->model;
    const atome_config *c = &m->cfg;
    uint32_t d = c->d_model, dh = c->d_head, l, i;
    int32_t embed = fixed_from_float(scale_of(&m->embed, 0), Q), *x = s->i.x, amax, amax_q, gate[3];
    float *g = s->gates;
    for (i = 0; i < d; i++) x[i] = TRIT(code_at(m->embed.codes, (size_t)token * d + i)) * embed;
    for (l = 0; l < c->n_layers; l++) {
        size_t slot = (size_t)l * s->window + s->head;
        amax = norm_q(s, &m->norm_w, &m->norm_b, l);
        matvec_q(s, &m->router, l, 3, amax, s->i.tmp, 0);
        for (i = 0; i < 3; i++) g[i] = (float)s->i.tmp[i] * 0x1p-16f;
        softmax3(g);
        for (i = 0; i < 3; i++) gate[i] = fixed_from_float(g[i], Q);
        amax_q = project_q(s, &m->wq, l, dh, amax, s->i.q8);
        s->i.key_amax[slot] = project_q(s, &m->wk, l, dh, amax, s->i.keys + slot * dh);
        s->i.value_amax[slot] = project_q(s, &m->wv, l, d, amax, s->i.values + slot * d);
        local_conv_q(s, l, amax);
        ssm_q(s, l);
        attention_q(s, l, amax_q);
        for (i = 0; i < d; i++) {
            int64_t mix = (int64_t)gate[0] * s->i.local[i] + (int64_t)gate[1] * s->i.ssm_out[i] +
                          (int64_t)gate[2] * s->i.attn[i];
            x[i] = sat32(x[i] + shift_round(mix, Q));
        }
    }
    amax = norm_q(s, &m->final_w, &m->final_b, 0);
    matvec_q(s, &m->unembed, 0, c->vocab, amax, 0, logits);
}

int atome_step(atome_state *s, uint32_t token, float *logits) {
    if (!s || !s->model || !logits) return ATOME_ERR_BAD_ARGUMENT;
    if (token >= s->model->cfg.vocab) return ATOME_ERR_BAD_TOKEN;
    next_slot(s);
#if ATOME_F32_PATH
    if (s->path == ATOME_PATH_F32) {
        step_f32(s, token, logits);
        return ATOME_OK;
    }
#endif
    step_i8(s, token, logits);
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

/* The first maximum; a NaN best is replaced by the next element (as if by
 * `logits[i] > logits[best] || logits[best] != logits[best]`), compared as integers:
 * a float's bits, negatives' magnitudes negated and -0 as +0, order like the floats. */
static int32_t float_order(uint32_t u) {
    return u >> 31 ? -(int32_t)(u & 0x7fffffffu) : (int32_t)u;
}

uint32_t atome_argmax(const float *logits, uint32_t n) {
    uint32_t best = 0, i, u;
    int32_t top;
    int nan_best;
    if (n == 0) return 0;
    memcpy(&u, logits, 4);
    top = float_order(u);
    nan_best = (u & 0x7fffffffu) > 0x7f800000u;
    for (i = 1; i < n; i++) {
        int is_nan;
        memcpy(&u, logits + i, 4);
        is_nan = (u & 0x7fffffffu) > 0x7f800000u;
        if (nan_best || (!is_nan && float_order(u) > top)) {
            best = i;
            top = float_order(u);
            nan_best = is_nan;
        }
    }
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
        "BAD_ARGUMENT", "BAD_TOKEN", "CODEC_NOT_BUILT"};
    return status >= 0 && status < ATOME_N_STATUS ? names[status] : "UNKNOWN";
}
