/* atome_load.c: checking a blob and building the model view over it.
 *
 * Two layouts. ATMB, our format (atome_core/formats.py is its specification):
 *     header (28 B) | section table (20 B per section) | sections at 4-byte aligned
 *     offsets | u32 CRC-32 of every byte before it
 * and the published ATOME01, which has no header (the config is given). Every check
 * happens before any pointer is formed, in the order of formats.read_blob, and every
 * read is bounded by the length the caller gave: no input can make us read outside it.
 * Built with ATOME_CODECS 0 (atome.h) it reads 2-bit trit sections only, in place, and
 * refuses the packed codecs with ATOME_ERR_CODEC_NOT_BUILT after every other check.
 */
#include "atome.h"

#include <string.h>

static uint32_t rd16(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
static uint32_t rd32(const uint8_t *p) { return rd16(p) | rd16(p + 2) << 16; }

/* CRC-32 as zlib computes it, four bits at a time (a 64-byte table). */
static const uint32_t CRC_NIBBLE[16] = {
    0x00000000u, 0x1db71064u, 0x3b6e20c8u, 0x26d930acu, 0x76dc4190u, 0x6b6b51f4u, 0x4db26158u, 0x5005713cu,
    0xedb88320u, 0xf00f9344u, 0xd6d6a3e8u, 0xcb61b38cu, 0x9b64c2b0u, 0x86d3d2d4u, 0xa00ae278u, 0xbdbdf21cu};

uint32_t atome_crc32(const uint8_t *data, size_t len) {
    uint32_t crc = 0xffffffffu;
    size_t i;
    for (i = 0; i < len; i++) {
        crc ^= data[i];
        crc = (crc >> 4) ^ CRC_NIBBLE[crc & 15];
        crc = (crc >> 4) ^ CRC_NIBBLE[crc & 15];
    }
    return crc ^ 0xffffffffu;
}

static int config_valid(const atome_config *c) {
    return c->vocab >= 1 && c->vocab <= 65535 && c->d_model >= 1 && c->d_model <= 65535 &&
           c->n_layers >= 1 && c->n_layers <= 65535 && c->d_head >= 1 && c->d_head <= 65535 &&
           c->top_k >= 1 && c->top_k <= 65535 && c->kernel >= 1 && c->kernel <= 65535;
}

/* ---------------------------------------------------------------------------------
 * Trit codecs. Each checker validates a stream of exactly n trits the way
 * atome_core.packing does, and with `out` != NULL also writes them as 2-bit codes
 * (out zeroed by the caller). n can be huge on a hostile header: every loop is
 * bounded by the stream's length first. */

static int check_2bit(const uint8_t *s, size_t len, uint64_t n) {
    size_t i;
    if (len != (n + 3) / 4) return ATOME_ERR_CORRUPT_SECTION;
    for (i = 0; i < len; i++) {
        uint32_t b = s[i], j;
        for (j = 0; j < 4; j++)
            if (((b >> (2 * j)) & 3) == 2) return ATOME_ERR_CORRUPT_SECTION; /* code 10 */
    }
    if (n % 4 && (s[len - 1] >> (2 * (n % 4)))) return ATOME_ERR_CORRUPT_SECTION; /* padding */
    return ATOME_OK;
}

#if ATOME_CODECS
static void put_code(uint8_t *out, uint64_t i, int trit) {
    if (out) out[i >> 2] |= (uint8_t)((trit & 3) << (2 * (i & 3))); /* -1 -> 11, +1 -> 01 */
}

static int decode_base3x5(const uint8_t *s, size_t len, uint64_t n, uint8_t *out) {
    size_t i;
    uint64_t t = 0;
    uint32_t last;
    static const uint32_t pow3[5] = {1, 3, 9, 27, 81};
    /* len = ceil(n / 5), i.e. 5 (len - 1) < n <= 5 len (no 64-bit division) */
    if (len == 0) return n == 0 ? ATOME_OK : ATOME_ERR_CORRUPT_SECTION;
    if (n > 5 * (uint64_t)len || n <= 5 * ((uint64_t)len - 1)) return ATOME_ERR_CORRUPT_SECTION;
    for (i = 0; i < len; i++)
        if (s[i] >= 243) return ATOME_ERR_CORRUPT_SECTION;
    last = (uint32_t)(n - 5 * ((uint64_t)len - 1)); /* trits in the last byte, 1..5 */
    if (last < 5 && s[len - 1] >= 3 * pow3[last - 1]) return ATOME_ERR_CORRUPT_SECTION;
    for (i = 0; i < len && out; i++) {
        uint32_t b = s[i], j;
        for (j = 0; j < 5 && t < n; j++, t++, b /= 3) put_code(out, t, (int)(b % 3) - 1);
    }
    return ATOME_OK;
}

/* dense: groups of 306 trits, each the base-3 number sum((t_i + 1) 3^i) in 485 bits,
 * one little-endian bit stream; a shorter last group of r trits takes b(r) bits. */
#define DENSE_K 306
#define LIMB_TRITS 10
#define LIMB_BASE 59049u /* 3^10 < 2^16: the long division runs in 16-bit steps within 32 bits */
#define BIG_WORDS 16     /* 3^306 < 2^512 */

/* n / d (and n % d in *rem) for d < 2^16, in 16-bit steps: no 64-bit division. */
static uint64_t divide_small(uint64_t n, uint32_t d, uint32_t *rem) {
    uint64_t q = 0;
    uint32_t r = 0;
    int i;
    for (i = 48; i >= 0; i -= 16) {
        uint32_t cur = r << 16 | ((uint32_t)(n >> i) & 0xffffu);
        q = q << 16 | cur / d;
        r = cur % d;
    }
    *rem = r;
    return q;
}

static uint32_t group_bits(uint32_t k) { /* b(k): bit length of 3^k - 1 (k <= 306) */
    uint32_t w[BIG_WORDS] = {1}, i, j, bits = 0;
    if (k == 0) return 0;
    for (i = 0; i < k; i++) {
        uint64_t carry = 0;
        for (j = 0; j < BIG_WORDS; j++) {
            uint64_t v = (uint64_t)w[j] * 3 + carry;
            w[j] = (uint32_t)v;
            carry = v >> 32;
        }
    }
    w[0] -= 1; /* 3^k is odd: no borrow */
    for (j = 0; j < BIG_WORDS; j++)
        for (i = 0; i < 32; i++)
            if (w[j] >> i & 1) bits = 32 * j + i + 1;
    return bits;
}

static uint32_t pow3_u32(uint32_t k) { /* k <= 20 */
    uint32_t v = 1;
    while (k--) v *= 3;
    return v;
}

/* One group of k trits whose bits start at bit `at` of s. */
static int dense_group(const uint8_t *s, uint64_t at, uint32_t k, uint32_t nbits, uint8_t *out,
                       uint64_t first) {
    uint32_t w[BIG_WORDS] = {0}, limbs[(DENSE_K + LIMB_TRITS - 1) / LIMB_TRITS], b, j, t;
    uint32_t n_limbs = (k + LIMB_TRITS - 1) / LIMB_TRITS, top_trits = k - LIMB_TRITS * (n_limbs - 1);
    int i;
    for (b = 0; b < nbits; b++)
        if (s[(at + b) >> 3] >> ((at + b) & 7) & 1) w[b >> 5] |= 1u << (b & 31);
    for (j = 0; j + 1 < n_limbs; j++) { /* long division by 3^10, lowest limb first */
        uint32_t rem = 0;
        for (i = BIG_WORDS - 1; i >= 0; i--) {
            uint32_t hi = rem << 16 | w[i] >> 16, lo;
            rem = hi % LIMB_BASE;
            lo = rem << 16 | (w[i] & 0xffffu);
            w[i] = (hi / LIMB_BASE) << 16 | lo / LIMB_BASE;
            rem = lo % LIMB_BASE;
        }
        limbs[j] = rem;
    }
    for (j = 1; j < BIG_WORDS; j++)
        if (w[j]) return ATOME_ERR_CORRUPT_SECTION;
    if (w[0] >= pow3_u32(top_trits)) return ATOME_ERR_CORRUPT_SECTION; /* value >= 3^k */
    limbs[n_limbs - 1] = w[0];
    for (j = 0, t = 0; j < n_limbs && out; j++) {
        uint32_t v = limbs[j], i2;
        for (i2 = 0; i2 < LIMB_TRITS && t < k; i2++, t++, v /= 3) put_code(out, first + t, (int)(v % 3) - 1);
    }
    return ATOME_OK;
}

static int decode_dense(const uint8_t *s, size_t len, uint64_t n, uint8_t *out) {
    uint32_t kb = group_bits(DENSE_K), rest, rb;
    uint64_t full = divide_small(n, DENSE_K, &rest), used, g, bit;
    int status;
    rb = group_bits(rest);
    used = full * kb + rb;
    if (len != (used + 7) / 8) return ATOME_ERR_CORRUPT_SECTION;
    for (bit = used; bit < 8 * (uint64_t)len; bit++)
        if (s[bit >> 3] >> (bit & 7) & 1) return ATOME_ERR_CORRUPT_SECTION; /* padding */
    for (g = 0; g < full; g++)
        if ((status = dense_group(s, g * kb, DENSE_K, kb, out, g * DENSE_K)) != ATOME_OK) return status;
    if (rest) return dense_group(s, full * kb, rest, rb, out, full * DENSE_K);
    return ATOME_OK;
}

/* rans: u16 freq[3], u32 state, then renormalisation bytes (see packing.RansCodec). */
static int decode_rans(const uint8_t *s, size_t len, uint64_t n, uint8_t *out) {
    uint32_t f[3], start[3], x;
    size_t pos = 10;
    uint64_t i;
    if (len < 10 || n > 256 * (uint64_t)len) return ATOME_ERR_CORRUPT_SECTION;
    f[0] = rd16(s);
    f[1] = rd16(s + 2);
    f[2] = rd16(s + 4);
    if (f[0] + f[1] + f[2] != 16384 || f[0] < 256 || f[1] < 256 || f[2] < 256) return ATOME_ERR_CORRUPT_SECTION;
    start[0] = 0;
    start[1] = f[0];
    start[2] = f[0] + f[1];
    x = rd32(s + 6);
    if (x < (1u << 23) || x >= (1u << 31)) return ATOME_ERR_CORRUPT_SECTION;
    for (i = 0; i < n; i++) {
        uint32_t slot = x & 16383, sym = slot < start[1] ? 0 : slot < start[2] ? 1 : 2;
        x = f[sym] * (x >> 14) + slot - start[sym];
        while (x < (1u << 23)) {
            if (pos >= len) return ATOME_ERR_CORRUPT_SECTION;
            x = x << 8 | s[pos++];
        }
        put_code(out, i, (int)sym - 1);
    }
    return pos == len && x == (1u << 23) ? ATOME_OK : ATOME_ERR_CORRUPT_SECTION;
}

#endif /* ATOME_CODECS */

enum { CODEC_2BIT = 1, CODEC_BASE3X5 = 2, CODEC_DENSE = 3, CODEC_RANS = 4 };

static int decode_trits(int codec, const uint8_t *s, size_t len, uint64_t n, uint8_t *out) {
    switch (codec) {
    case CODEC_2BIT: return check_2bit(s, len, n);
#if ATOME_CODECS
    case CODEC_BASE3X5: return decode_base3x5(s, len, n, out);
    case CODEC_DENSE: return decode_dense(s, len, n, out);
    default: return decode_rans(s, len, n, out);
#else
    default: (void)out; return ATOME_ERR_CODEC_NOT_BUILT;
#endif
    }
}

/* ---------------------------------------------------------------------------------
 * ATMB. */

#define HEADER_BYTES 28
#define ENTRY_BYTES 20
#define N_SECTIONS 10
#define MAX_TABLE 64 /* beyond this the overlap check is skipped: the table is wrong anyway */
enum { DTYPE_TRIT = 1, DTYPE_F32 = 2, DTYPE_F16 = 3 };

/* The sections of version 1, by id (formats.SECTIONS). */
typedef struct { uint8_t is_trit, stacked, parts; } section_spec;
static const section_spec SPECS[N_SECTIONS + 1] = {
    {0, 0, 0},
    {1, 0, 0}, /* 1 embed (vocab, d) */
    {0, 1, 2}, /* 2 norm weight, bias (L, 2, d) */
    {1, 1, 0}, /* 3 conv (L, d, 1, kernel), PyTorch tap order */
    {0, 1, 3}, /* 4 ssm a_raw, b, c_out (L, 3, d) */
    {1, 1, 0}, /* 5 Wq (L, d_head, d) */
    {1, 1, 0}, /* 6 Wk (L, d_head, d) */
    {1, 1, 0}, /* 7 Wv (L, d, d) */
    {1, 1, 0}, /* 8 router (L, 3, d) */
    {0, 0, 2}, /* 9 final norm weight, bias (2, d) */
    {1, 0, 0}, /* 10 unembed (vocab, d) */
};

static uint32_t section_shape(uint32_t id, const atome_config *c, uint32_t dims[4]) {
    const section_spec *s = &SPECS[id];
    uint32_t n = 0;
    if (s->stacked) dims[n++] = c->n_layers;
    if (!s->is_trit) {
        dims[n++] = s->parts;
        dims[n++] = c->d_model;
        return n;
    }
    switch (id) {
    case 3: dims[n++] = c->d_model; dims[n++] = 1; dims[n++] = c->kernel; break;
    case 5: case 6: dims[n++] = c->d_head; dims[n++] = c->d_model; break;
    case 7: dims[n++] = c->d_model; dims[n++] = c->d_model; break;
    case 8: dims[n++] = 3; dims[n++] = c->d_model; break;
    default: dims[n++] = c->vocab; dims[n++] = c->d_model; break;
    }
    return n;
}

typedef struct { uint32_t dtype, codec, offset, length; } section_ref;

typedef struct {
    atome_config cfg;
    section_ref sec[N_SECTIONS + 1]; /* by id */
    size_t arena_bytes;
} blob_layout;

/* Items of one layer of a section (its shape without the layer dimension) ... */
static uint64_t layer_count(uint32_t id, const atome_config *c) {
    uint32_t dims[4], n = section_shape(id, c, dims), i;
    uint64_t count = 1;
    for (i = SPECS[id].stacked; i < n; i++) count *= dims[i];
    return count;
}

/* ... and of the whole section. */
static uint64_t section_count(uint32_t id, const atome_config *c) {
    return layer_count(id, c) * (SPECS[id].stacked ? c->n_layers : 1);
}

static uint32_t section_scales(uint32_t id, const atome_config *c) {
    return SPECS[id].is_trit ? (SPECS[id].stacked ? c->n_layers : 1) : 0;
}

static int parse_blob(const uint8_t *b, size_t len, blob_layout *out) {
    uint32_t file_size, end, n_sections, table_end, i, j;
    atome_config *c = &out->cfg;
    if (!b) return ATOME_ERR_BAD_ARGUMENT;
    if (len < 4) return memcmp(b, "ATMB", len) == 0 ? ATOME_ERR_TRUNCATED : ATOME_ERR_BAD_MAGIC;
    if (memcmp(b, "ATMB", 4) != 0) return ATOME_ERR_BAD_MAGIC;
    if (len < 6) return ATOME_ERR_TRUNCATED;
    if (rd16(b + 4) != 1) return ATOME_ERR_UNSUPPORTED_VERSION;
    if (len < HEADER_BYTES + 4) return ATOME_ERR_TRUNCATED;
    file_size = rd32(b + 8);
    if (file_size > len) return ATOME_ERR_TRUNCATED;
    if (file_size < len) return ATOME_ERR_TRAILING_BYTES;
    end = file_size - 4; /* the data area ends where the CRC begins */
    if (rd32(b + end) != atome_crc32(b, end)) return ATOME_ERR_CHECKSUM;

    if (rd16(b + 6) != 1 || rd16(b + 26) != 0 || file_size % 4) return ATOME_ERR_BAD_HEADER;
    c->vocab = rd16(b + 12);
    c->d_model = rd16(b + 14);
    c->n_layers = rd16(b + 16);
    c->d_head = rd16(b + 18);
    c->top_k = rd16(b + 20);
    c->kernel = rd16(b + 22);
    if (!config_valid(c)) return ATOME_ERR_BAD_HEADER;

    n_sections = rd16(b + 24);
    table_end = HEADER_BYTES + ENTRY_BYTES * n_sections;
    if (table_end > end) return ATOME_ERR_SECTION_BOUNDS;
    for (i = 0; i < n_sections; i++) {
        const uint8_t *e = b + HEADER_BYTES + ENTRY_BYTES * i;
        uint32_t dtype = e[1], codec = e[2], ndim = e[3], offset = rd32(e + 12), length = rd32(e + 16);
        if (dtype < DTYPE_TRIT || dtype > DTYPE_F16) return ATOME_ERR_BAD_HEADER;
        if (dtype == DTYPE_TRIT ? (codec < CODEC_2BIT || codec > CODEC_RANS) : codec != 0)
            return ATOME_ERR_BAD_HEADER;
        if (ndim < 1 || ndim > 4) return ATOME_ERR_BAD_HEADER;
        for (j = 0; j < 4; j++)
            if ((j < ndim) != (rd16(e + 4 + 2 * j) != 0)) return ATOME_ERR_BAD_HEADER;
        if (offset % 4) return ATOME_ERR_SECTION_BOUNDS;
        if (offset < table_end || (uint64_t)offset + length > end) return ATOME_ERR_SECTION_BOUNDS;
    }
    if (n_sections <= MAX_TABLE) /* sorted by (offset, length), no section may reach the next */
        for (i = 0; i < n_sections; i++)
            for (j = 0; j < n_sections; j++) {
                const uint8_t *a = b + HEADER_BYTES + ENTRY_BYTES * i, *z = b + HEADER_BYTES + ENTRY_BYTES * j;
                uint32_t ao = rd32(a + 12), al = rd32(a + 16), zo = rd32(z + 12), zl = rd32(z + 16);
                int a_first = ao < zo || (ao == zo && al <= zl);
                if (i != j && a_first && (uint64_t)ao + al > zo) return ATOME_ERR_SECTION_OVERLAP;
            }

    for (i = 0; i <= N_SECTIONS; i++) out->sec[i].dtype = 0;
    for (i = 0; i < n_sections; i++) {
        const uint8_t *e = b + HEADER_BYTES + ENTRY_BYTES * i;
        uint32_t id = e[0], dims[4], ndim;
        if (id < 1 || id > N_SECTIONS || out->sec[id].dtype) return ATOME_ERR_CONFIG_MISMATCH;
        if ((e[1] == DTYPE_TRIT) != SPECS[id].is_trit) return ATOME_ERR_CONFIG_MISMATCH;
        ndim = section_shape(id, c, dims);
        if (e[3] != ndim) return ATOME_ERR_CONFIG_MISMATCH;
        for (j = 0; j < ndim; j++)
            if (rd16(e + 4 + 2 * j) != dims[j]) return ATOME_ERR_CONFIG_MISMATCH;
        out->sec[id].dtype = e[1];
        out->sec[id].codec = e[2];
        out->sec[id].offset = rd32(e + 12);
        out->sec[id].length = rd32(e + 16);
    }
    for (i = 1; i <= N_SECTIONS; i++)
        if (!out->sec[i].dtype) return ATOME_ERR_CONFIG_MISMATCH; /* missing */

    out->arena_bytes = 0;
    for (i = 1; i <= N_SECTIONS; i++) {
        const section_ref *r = &out->sec[i];
        uint64_t count = section_count(i, c);
        if (!SPECS[i].is_trit) {
            if (r->length != count * (r->dtype == DTYPE_F32 ? 4 : 2)) return ATOME_ERR_CORRUPT_SECTION;
        } else {
            uint32_t scales = 4 * section_scales(i, c);
            int status;
            if (r->length < scales) return ATOME_ERR_CORRUPT_SECTION;
            status = decode_trits((int)r->codec, b + r->offset + scales, r->length - scales, count, NULL);
            if (status != ATOME_OK) return status;
            if (r->codec != CODEC_2BIT) out->arena_bytes += (size_t)((count + 3) / 4);
        }
    }
    return ATOME_OK;
}

int atome_check_blob(const uint8_t *blob, size_t len, atome_config *cfg, size_t *arena_bytes) {
    blob_layout layout;
    int status = parse_blob(blob, len, &layout);
    if (status != ATOME_OK) return status;
    if (cfg) *cfg = layout.cfg;
    if (arena_bytes) *arena_bytes = layout.arena_bytes;
    return ATOME_OK;
}

static void float_vectors(const blob_layout *lay, const uint8_t *b, uint32_t id, atome_vector **vs, uint32_t n) {
    const section_ref *r = &lay->sec[id];
    size_t item = r->dtype == DTYPE_F16 ? 2 : 4, d = lay->cfg.d_model;
    uint32_t k;
    for (k = 0; k < n; k++) {
        vs[k]->data = b + r->offset + k * d * item;
        vs[k]->stride = n * d * item;
        vs[k]->f16 = r->dtype == DTYPE_F16;
    }
}

/* The view's ternary matrix for a trit section id (0 for a float section). */
static atome_trits *trits_of(atome_model *m, uint32_t id) {
    switch (id) {
    case 1: return &m->embed;
    case 3: return &m->conv;
    case 5: return &m->wq;
    case 6: return &m->wk;
    case 7: return &m->wv;
    case 8: return &m->router;
    case 10: return &m->unembed;
    default: return 0;
    }
}

int atome_load_blob(atome_model *m, const uint8_t *blob, size_t len, uint8_t *arena, size_t arena_len) {
    blob_layout lay;
    size_t used = 0;
    uint32_t id;
    int status;
    if (!m) return ATOME_ERR_BAD_ARGUMENT;
    if ((status = parse_blob(blob, len, &lay)) != ATOME_OK) return status;
    if (lay.arena_bytes > arena_len || (lay.arena_bytes && !arena)) return ATOME_ERR_ARENA_TOO_SMALL;
    memset(m, 0, sizeof *m);
    m->cfg = lay.cfg;
    m->conv_newest_first = 0;
    for (id = 1; id <= N_SECTIONS; id++) {
        const section_ref *r = &lay.sec[id];
        atome_trits *t = trits_of(m, id);
        uint64_t count = section_count(id, &lay.cfg);
        uint32_t scales = section_scales(id, &lay.cfg);
        if (!t) continue;
        t->scale = blob + r->offset;
        t->scale_stride = 4;
        t->trit_stride = SPECS[id].stacked ? (size_t)layer_count(id, &lay.cfg) : 0;
        if (r->codec == CODEC_2BIT) {
            t->codes = blob + r->offset + 4 * scales;
        } else { /* decode once into the arena, as 2-bit codes */
            size_t bytes = (size_t)((count + 3) / 4);
            memset(arena + used, 0, bytes);
            decode_trits((int)r->codec, blob + r->offset + 4 * scales, r->length - 4 * scales, count, arena + used);
            t->codes = arena + used;
            used += bytes;
        }
    }
    {
        atome_vector *norm[2] = {&m->norm_w, &m->norm_b};
        atome_vector *ssm[3] = {&m->a_raw, &m->ssm_b, &m->c_out};
        atome_vector *fin[2] = {&m->final_w, &m->final_b};
        float_vectors(&lay, blob, 2, norm, 2);
        float_vectors(&lay, blob, 4, ssm, 3);
        float_vectors(&lay, blob, 9, fin, 2);
    }
    return ATOME_OK;
}

/* ---------------------------------------------------------------------------------
 * ATOME01: "ATOME01", then each tensor in order; a ternary one as a float32 scale and
 * its 2-bit codes from a fresh byte; floats unaligned. Per block: norm weight, bias;
 * conv (tap 0 = current token); ssm a_raw, b, c_out; Wq; Wk; Wv; router. */

static uint64_t trit_item(uint64_t n) { return 4 + (n + 3) / 4; }

static uint64_t atome01_block_bytes(const atome_config *c) {
    uint64_t d = c->d_model;
    return 8 * d + trit_item(d * c->kernel) + 12 * d + 2 * trit_item((uint64_t)c->d_head * d) +
           trit_item(d * d) + trit_item(3 * d);
}

size_t atome01_size(const atome_config *c) {
    uint64_t total;
    if (!c || !config_valid(c)) return 0;
    total = 7 + 2 * trit_item((uint64_t)c->vocab * c->d_model) + c->n_layers * atome01_block_bytes(c) +
            8 * (uint64_t)c->d_model;
    return total > (uint64_t)(size_t)-1 ? 0 : (size_t)total;
}

int atome_load_atome01(atome_model *m, const uint8_t *blob, size_t len, const atome_config *cfg) {
    size_t want, off, block, d, l, k;
    atome_trits *block_trits[5];
    uint64_t block_counts[5];
    size_t block_offsets[5];
    if (!m || !blob || !cfg) return ATOME_ERR_BAD_ARGUMENT;
    if (!config_valid(cfg)) return ATOME_ERR_CONFIG_LIMITS;
    if (len < 7 || memcmp(blob, "ATOME01", 7) != 0) return ATOME_ERR_BAD_MAGIC;
    want = atome01_size(cfg);
    if (want == 0) return ATOME_ERR_CONFIG_LIMITS;
    if (len != want) return ATOME_ERR_LEGACY_SIZE;
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    m->conv_newest_first = 1;
    d = cfg->d_model;
    block = (size_t)atome01_block_bytes(cfg);

    off = 7;
    m->embed.scale = blob + off;
    m->embed.codes = blob + off + 4;
    off += (size_t)trit_item((uint64_t)cfg->vocab * d);

    /* offsets inside block 0; every block has the same layout, `block` bytes apart */
    m->norm_w.data = blob + off;
    m->norm_b.data = blob + off + 4 * d;
    block_offsets[0] = off + 8 * d;
    block_counts[0] = (uint64_t)d * cfg->kernel;
    m->a_raw.data = blob + block_offsets[0] + trit_item(block_counts[0]);
    m->ssm_b.data = m->a_raw.data + 4 * d;
    m->c_out.data = m->ssm_b.data + 4 * d;
    block_offsets[1] = (size_t)(m->c_out.data - blob) + 4 * d;
    block_counts[1] = (uint64_t)cfg->d_head * d;
    block_offsets[2] = block_offsets[1] + (size_t)trit_item(block_counts[1]);
    block_counts[2] = block_counts[1];
    block_offsets[3] = block_offsets[2] + (size_t)trit_item(block_counts[2]);
    block_counts[3] = (uint64_t)d * d;
    block_offsets[4] = block_offsets[3] + (size_t)trit_item(block_counts[3]);
    block_counts[4] = 3 * (uint64_t)d;
    block_trits[0] = &m->conv;
    block_trits[1] = &m->wq;
    block_trits[2] = &m->wk;
    block_trits[3] = &m->wv;
    block_trits[4] = &m->router;
    m->norm_w.stride = m->norm_b.stride = m->a_raw.stride = m->ssm_b.stride = m->c_out.stride = block;
    for (k = 0; k < 5; k++) {
        atome_trits *t = block_trits[k];
        t->scale = blob + block_offsets[k];
        t->codes = blob + block_offsets[k] + 4;
        t->scale_stride = block;
        t->trit_stride = 4 * block;
    }
    off += cfg->n_layers * block;
    m->final_w.data = blob + off;
    m->final_b.data = blob + off + 4 * d;
    off += 8 * d;
    m->unembed.scale = blob + off;
    m->unembed.codes = blob + off + 4;

    /* every code valid, every padding zero (formats.read_atome01 decodes the same) */
    if (check_2bit(m->embed.codes, (size_t)((uint64_t)cfg->vocab * d + 3) / 4, (uint64_t)cfg->vocab * d) ||
        check_2bit(m->unembed.codes, (size_t)((uint64_t)cfg->vocab * d + 3) / 4, (uint64_t)cfg->vocab * d))
        goto corrupt;
    for (l = 0; l < cfg->n_layers; l++)
        for (k = 0; k < 5; k++)
            if (check_2bit(blob + block_offsets[k] + 4 + l * block, (size_t)((block_counts[k] + 3) / 4),
                           block_counts[k]))
                goto corrupt;
    return ATOME_OK;
corrupt:
    memset(m, 0, sizeof *m); /* no half-made view */
    return ATOME_ERR_CORRUPT_SECTION;
}
