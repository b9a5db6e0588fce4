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

/* Every dimension in 1..65535 (atome.c has its own copy: the objects stand alone). */
static int config_valid(const atome_config *c) {
    uint32_t v[6], i;
    memcpy(v, c, sizeof v); /* the six dimensions, in order (see view_fields_are_as_assumed) */
    for (i = 0; i < 6; i++)
        if (v[i] - 1u > 65534u) return 0;
    return 1;
}

/* ---------------------------------------------------------------------------------
 * Trit codecs. Each checker validates a stream of exactly n trits the way
 * atome_core.packing does, and with `out` != NULL also writes them as 2-bit codes
 * (out zeroed by the caller). n can be huge on a hostile header: every loop is
 * bounded by the stream's length first. */

static int check_2bit(const uint8_t *s, size_t len, uint64_t n) {
    size_t i;
    if (len != (n + 3) / 4) return ATOME_ERR_CORRUPT_SECTION;
    for (i = 0; i < len; i++)
        if ((s[i] >> 1) & ~s[i] & 0x55) return ATOME_ERR_CORRUPT_SECTION; /* a code 10: high bit set, low clear */
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

/* The sections of version 1 by id (formats.SECTIONS), each one's shape as a digit per
 * dimension, first dimension in the low 4 bits, that indexes blob_layout.dims: 1..6 the
 * header's vocab, d_model, n_layers, d_head, top_k, kernel; 7, 8, 9 the numbers 1, 2, 3. */
static const uint16_t SHAPES[N_SECTIONS + 1] = {
    0,
    0x21,   /* 1 embed (vocab, d) */
    0x283,  /* 2 norm weight, bias (L, 2, d) */
    0x6723, /* 3 conv (L, d, 1, kernel), PyTorch tap order */
    0x293,  /* 4 ssm a_raw, b, c_out (L, 3, d) */
    0x243,  /* 5 Wq (L, d_head, d) */
    0x243,  /* 6 Wk (L, d_head, d) */
    0x223,  /* 7 Wv (L, d, d) */
    0x293,  /* 8 router (L, 3, d) */
    0x28,   /* 9 final norm weight, bias (2, d) */
    0x21,   /* 10 unembed (vocab, d) */
};
#define TRIT_SECTIONS 0x5eau               /* bit id: a ternary section (1, 3, 5, 6, 7, 8, 10) */
#define IS_TRIT(id) ((TRIT_SECTIONS >> (id)) & 1)
#define STACKED(id) ((SHAPES[id] & 15) == 3) /* one per layer: the first dimension is n_layers */

/* Where each section goes in the model view (a float section's parts are consecutive). */
static const uint16_t FIELDS[N_SECTIONS + 1] = {
    0, offsetof(atome_model, embed), offsetof(atome_model, norm_w), offsetof(atome_model, conv),
    offsetof(atome_model, a_raw), offsetof(atome_model, wq), offsetof(atome_model, wk),
    offsetof(atome_model, wv), offsetof(atome_model, router), offsetof(atome_model, final_w),
    offsetof(atome_model, unembed)};

/* The view's fields that FIELDS and atome_check_blob rely on (a negative size fails to compile). */
typedef char view_fields_are_as_assumed[sizeof(atome_config) == 6 * sizeof(uint32_t) &&
                                        offsetof(atome_model, norm_b) == offsetof(atome_model, norm_w) + sizeof(atome_vector) &&
                                        offsetof(atome_model, c_out) == offsetof(atome_model, a_raw) + 2 * sizeof(atome_vector) &&
                                        offsetof(atome_model, final_b) == offsetof(atome_model, final_w) + sizeof(atome_vector)
                                    ? 1 : -1];

typedef struct {
    uint32_t dims[10];                    /* by the digits of SHAPES; dims[1..6] is the config */
    const uint8_t *entry[N_SECTIONS + 1]; /* each section's table entry, by id */
    size_t arena_bytes;
} blob_layout;

/* The product of the dimensions of a shape (SHAPES[id], or that >> 4 for one layer). */
static uint64_t items(const blob_layout *lay, uint32_t shape) {
    uint64_t n = 1;
    for (; shape; shape >>= 4) n *= lay->dims[shape & 15];
    return n;
}

/* Bytes of trit scales at the start of a ternary section: one float per layer, or one. */
static uint32_t scale_bytes(const blob_layout *lay, uint32_t id) {
    return 4 * (STACKED(id) ? lay->dims[3] : 1);
}

static int parse_blob(const uint8_t *b, size_t len, blob_layout *lay) {
    uint32_t file_size, end, n_sections, table_end, i, j;
    const uint8_t *table = b + HEADER_BYTES;
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
    memset(lay, 0, sizeof *lay);
    for (i = 1; i <= 9; i++) { /* the config's u16s are <= 65535; none may be 0 */
        lay->dims[i] = i <= 6 ? rd16(b + 10 + 2 * i) : i - 6;
        if (!lay->dims[i]) return ATOME_ERR_BAD_HEADER;
    }

    n_sections = rd16(b + 24);
    table_end = HEADER_BYTES + ENTRY_BYTES * n_sections;
    if (table_end > end) return ATOME_ERR_SECTION_BOUNDS;
    for (i = 0; i < n_sections; i++) {
        const uint8_t *e = table + ENTRY_BYTES * i;
        uint32_t dtype = e[1], codec = e[2], ndim = e[3], offset = rd32(e + 12);
        if (dtype < DTYPE_TRIT || dtype > DTYPE_F16) return ATOME_ERR_BAD_HEADER;
        if (dtype == DTYPE_TRIT ? codec < CODEC_2BIT || codec > CODEC_RANS : codec != 0) return ATOME_ERR_BAD_HEADER;
        if (ndim < 1 || ndim > 4) return ATOME_ERR_BAD_HEADER;
        for (j = 0; j < 4; j++) /* ndim nonzero dimensions, then zeros */
            if ((j < ndim) != (rd16(e + 4 + 2 * j) != 0)) return ATOME_ERR_BAD_HEADER;
        if (offset % 4) return ATOME_ERR_SECTION_BOUNDS;
        if (offset < table_end || (uint64_t)offset + rd32(e + 16) > end) return ATOME_ERR_SECTION_BOUNDS;
    }
    /* sorted by (offset, length), no section may reach the next: no a before z (offset + length
     * <= end, checked above, so no sum wraps) that ends after z starts */
    if (n_sections <= MAX_TABLE)
        for (i = 0; i < n_sections; i++)
            for (j = 0; j < n_sections; j++) {
                const uint8_t *a = table + ENTRY_BYTES * i + 12, *z = table + ENTRY_BYTES * j + 12;
                uint32_t ao = rd32(a), al = rd32(a + 4), zo = rd32(z), zl = rd32(z + 4);
                if (i != j && (ao < zo || (ao == zo && al <= zl)) && ao + al > zo) return ATOME_ERR_SECTION_OVERLAP;
            }

    for (i = 0; i < n_sections; i++) { /* each section once, with its kind and shape */
        const uint8_t *e = table + ENTRY_BYTES * i;
        uint32_t id = e[0], shape;
        if (id < 1 || id > N_SECTIONS || lay->entry[id]) return ATOME_ERR_CONFIG_MISMATCH;
        if ((e[1] == DTYPE_TRIT) != IS_TRIT(id)) return ATOME_ERR_CONFIG_MISMATCH;
        /* the entry's dimensions past its ndim are 0, and so are those past the shape's */
        for (j = 0, shape = SHAPES[id]; j < 4; j++, shape >>= 4)
            if (rd16(e + 4 + 2 * j) != lay->dims[shape & 15]) return ATOME_ERR_CONFIG_MISMATCH;
        lay->entry[id] = e;
    }
    for (i = 1; i <= N_SECTIONS; i++)
        if (!lay->entry[i]) return ATOME_ERR_CONFIG_MISMATCH; /* missing */

    for (i = 1; i <= N_SECTIONS; i++) { /* the payloads, in id order */
        const uint8_t *e = lay->entry[i];
        uint32_t length = rd32(e + 16), scales = scale_bytes(lay, i);
        uint64_t count = items(lay, SHAPES[i]);
        int status;
        if (!IS_TRIT(i)) {
            if (length != count * (e[1] == DTYPE_F32 ? 4 : 2)) return ATOME_ERR_CORRUPT_SECTION;
            continue;
        }
        if (length < scales) return ATOME_ERR_CORRUPT_SECTION;
        status = decode_trits(e[2], b + rd32(e + 12) + scales, length - scales, count, NULL);
        if (status != ATOME_OK) return status;
        if (e[2] != CODEC_2BIT) lay->arena_bytes += (size_t)((count + 3) / 4);
    }
    return ATOME_OK;
}

int atome_check_blob(const uint8_t *blob, size_t len, atome_config *cfg, size_t *arena_bytes) {
    blob_layout lay;
    int status = parse_blob(blob, len, &lay);
    if (status != ATOME_OK) return status;
    if (cfg) memcpy(cfg, lay.dims + 1, sizeof *cfg); /* the same six numbers in the same order */
    if (arena_bytes) *arena_bytes = lay.arena_bytes;
    return ATOME_OK;
}

int atome_load_blob(atome_model *m, const uint8_t *blob, size_t len, uint8_t *arena, size_t arena_len) {
    blob_layout lay;
    uint32_t id, k;
    int status;
    if (!m) return ATOME_ERR_BAD_ARGUMENT;
    if ((status = parse_blob(blob, len, &lay)) != ATOME_OK) return status;
    if (lay.arena_bytes > arena_len || (lay.arena_bytes && !arena)) return ATOME_ERR_ARENA_TOO_SMALL;
    memset(m, 0, sizeof *m); /* conv_newest_first = 0: ATMB keeps PyTorch's tap order */
    memcpy(&m->cfg, lay.dims + 1, sizeof m->cfg);
    for (id = 1; id <= N_SECTIONS; id++) {
        const uint8_t *e = lay.entry[id], *p = blob + rd32(e + 12);
        uint8_t *field = (uint8_t *)m + FIELDS[id];
        if (IS_TRIT(id)) { /* a scale per layer, then the codes; one layer = the shape less its first dimension */
            atome_trits *t = (atome_trits *)field;
            uint32_t scales = scale_bytes(&lay, id);
            t->scale = p;
            t->scale_stride = 4;
            t->trit_stride = STACKED(id) ? (size_t)items(&lay, SHAPES[id] >> 4) : 0;
            t->codes = p + scales;
#if ATOME_CODECS
            if (e[2] != CODEC_2BIT) { /* decode once into the arena, as 2-bit codes */
                uint64_t count = items(&lay, SHAPES[id]);
                size_t bytes = (size_t)((count + 3) / 4);
                memset(arena, 0, bytes);
                decode_trits(e[2], p + scales, rd32(e + 16) - scales, count, arena);
                t->codes = arena;
                arena += bytes;
            }
#endif
        } else { /* parts (d floats each) side by side, per layer when stacked */
            uint32_t parts = lay.dims[(SHAPES[id] >> (STACKED(id) ? 4 : 0)) & 15];
            size_t item = e[1] == DTYPE_F16 ? 2 : 4, d = lay.dims[2];
            for (k = 0; k < parts; k++) {
                atome_vector *v = (atome_vector *)(field + k * sizeof(atome_vector));
                v->data = p + k * d * item;
                v->stride = parts * d * item;
                v->f16 = item == 2;
            }
        }
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
