"""Trit codecs: ways to store a sequence of ternary weights in {-1, 0, +1} as bytes.

A trit carries log2(3) = 1.58496 bits. Four codecs, each with a NumPy encoder and a
streamable decoder (`iter_decode` yields the trits in order, a chunk at a time, so a
matrix-vector product can consume them without decoding the whole tensor first):

  2bit     4 trits per byte, 2 bits each, first trit in the lowest bits, codes
           00 = 0, 01 = +1, 11 = -1 (10 invalid). The ATOME01 code. Random access.
  base3x5  5 trits per byte, byte = sum((t_k + 1) * 3**k): 1.6 bits/trit, the ATOME02
           code. Random access. A short last byte holds only the trits that remain.
  dense    groups of K = 306 trits, each group's base-3 value in b(306) = 485 bits
           (b(k) = the fewest bits with 3**k <= 2**b): 1.584967 bits/trit, 0.0003 %
           above the floor. Random access by group (group g starts at bit 485 g).
  rans     a static rANS entropy code with the tensor's own trit frequencies: approaches
           the empirical entropy, which is below log2(3) when the three values are not
           equally frequent. Streamable in order, not random access.

Every decoder checks its input (exact length, no invalid code, zero padding) and
raises CodecError, so a reader can reject a corrupt file by name.
"""
import math
from dataclasses import dataclass

import numpy as np

LOG2_3 = math.log2(3)


class CodecError(ValueError):
    """Bytes that are not a valid encoding of the requested number of trits."""


def as_trits(trits) -> np.ndarray:
    """A flat int8 array of trits; ValueError if any value is not -1, 0 or +1."""
    a = np.asarray(trits)
    if a.dtype.kind not in "iufb":
        raise ValueError(f"trits must be numeric, got dtype {a.dtype}")
    flat = a.reshape(-1)
    if flat.size and not np.isin(flat, (-1, 0, 1)).all():
        bad = flat[~np.isin(flat, (-1, 0, 1))][0]
        raise ValueError(f"trits must be -1, 0 or +1; found {bad!r}")
    return flat.astype(np.int8)


def trit_counts(trits) -> tuple[int, int, int]:
    """(number of -1, number of 0, number of +1)."""
    t = as_trits(trits)
    c = np.bincount(t.astype(np.int64) + 1, minlength=3)
    return int(c[0]), int(c[1]), int(c[2])


def empirical_entropy(trits) -> float:
    """Order-0 entropy of the trit distribution, in bits per trit (0 for an empty array)."""
    counts = np.array(trit_counts(trits), dtype=np.float64)
    n = counts.sum()
    if n == 0:
        return 0.0
    p = counts[counts > 0] / n
    return float(-(p * np.log2(p)).sum())


def group_bits(k: int) -> int:
    """b(k): the fewest bits that hold every base-3 number of k digits (3**k <= 2**b)."""
    if k < 0:
        raise ValueError(f"group size must be >= 0, got {k}")
    return (3 ** k - 1).bit_length()


def group_bits_per_trit(k: int) -> float:
    return group_bits(k) / k


class Codec:
    """Interface: encode(trits) -> bytes, decode(data, n) -> int8 array, iter_decode."""
    name = ""
    code = 0               # the codec id in the blob format (atome_core.formats)
    random_access = False  # can trit i be read without decoding trits 0..i-1?
    description = ""

    def encode(self, trits) -> bytes:
        raise NotImplementedError

    def iter_decode(self, data, n: int, chunk_trits: int = 4096):
        raise NotImplementedError

    def decode(self, data, n: int) -> np.ndarray:
        parts = list(self.iter_decode(data, n, chunk_trits=max(n, 1)))
        return np.concatenate(parts) if parts else np.zeros(0, np.int8)

    def encoded_size(self, n: int) -> int | None:
        """Bytes for n trits when the size depends on n only (None for the entropy code)."""
        return None

    def max_trits(self, nbytes: int) -> int:
        """An upper bound on n for a valid stream of nbytes (readers bound allocations by it)."""
        raise NotImplementedError


def _check_n(n: int):
    if not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"number of trits must be an integer >= 0, got {n!r}")


def _as_bytes(data) -> np.ndarray:
    return np.frombuffer(bytes(data), dtype=np.uint8)


def _check_length(codec: Codec, data: np.ndarray, n: int):
    want = codec.encoded_size(n)
    if data.size != want:
        raise CodecError(f"{codec.name}: {n} trits take {want} bytes, got {data.size}")


# -- 2 bits per trit (ATOME01) ------------------------------------------------

_TWO_BIT_CODES = (np.arange(256)[:, None] >> np.array([0, 2, 4, 6])) & 3  # (256, 4) codes per byte
_TWO_BIT_DECODE = np.array([0, 1, 0, -1], dtype=np.int8)[_TWO_BIT_CODES]   # byte -> 4 trits
_TWO_BIT_INVALID = (_TWO_BIT_CODES == 2).any(axis=1)                        # holds the unused code 10


class TwoBitCodec(Codec):
    name, code, random_access = "2bit", 1, True
    description = "4 trits per byte, codes 00=0 01=+1 11=-1, first trit in the low bits (ATOME01)"

    def encoded_size(self, n):
        return (n + 3) // 4

    def max_trits(self, nbytes):
        return 4 * nbytes

    def encode(self, trits):
        t = as_trits(trits)
        codes = (t.astype(np.uint8) & 3)  # -1 -> 0b11, 0 -> 0b00, +1 -> 0b01
        codes = np.concatenate([codes, np.zeros(-t.size % 4, np.uint8)]).reshape(-1, 4)
        packed = codes[:, 0] | (codes[:, 1] << 2) | (codes[:, 2] << 4) | (codes[:, 3] << 6)
        return packed.astype(np.uint8).tobytes()

    def iter_decode(self, data, n, chunk_trits=4096):
        _check_n(n)
        raw = _as_bytes(data)
        _check_length(self, raw, n)
        step = max(1, chunk_trits // 4)
        if _TWO_BIT_INVALID[raw].any():
            raise CodecError("2bit: invalid code 10")
        if n % 4 and raw[-1] >> (2 * (n % 4)):
            raise CodecError("2bit: nonzero padding after the last trit")
        for start in range(0, raw.size, step):
            trits = _TWO_BIT_DECODE[raw[start:start + step]].reshape(-1)
            yield trits[:min(trits.size, n - 4 * start)]


# -- 5 trits per byte (ATOME02) -----------------------------------------------

_POW3_5 = np.array([1, 3, 9, 27, 81], dtype=np.int64)
_BASE3_DECODE = ((np.arange(243)[:, None] // _POW3_5) % 3 - 1).astype(np.int8)  # (243, 5)


class Base3x5Codec(Codec):
    name, code, random_access = "base3x5", 2, True
    description = "5 trits per byte, byte = sum((t_k+1) 3^k) (ATOME02)"

    def encoded_size(self, n):
        return (n + 4) // 5

    def max_trits(self, nbytes):
        return 5 * nbytes

    def encode(self, trits):
        t = as_trits(trits)
        full, rest = divmod(t.size, 5)
        digits = t.astype(np.int64) + 1
        out = (digits[:5 * full].reshape(full, 5) @ _POW3_5).astype(np.uint8).tobytes()
        if rest:  # the trits that remain; absent positions add nothing
            out += bytes([int(digits[5 * full:] @ _POW3_5[:rest])])
        return out

    def iter_decode(self, data, n, chunk_trits=4096):
        _check_n(n)
        raw = _as_bytes(data)
        _check_length(self, raw, n)
        if (raw >= 243).any():
            raise CodecError("base3x5: byte value above 242")
        rest = n % 5
        if rest and raw[-1] >= 3 ** rest:
            raise CodecError(f"base3x5: last byte holds {rest} trits but is {raw[-1]} >= 3^{rest}")
        step = max(1, chunk_trits // 5)
        for start in range(0, raw.size, step):
            trits = _BASE3_DECODE[raw[start:start + step]].reshape(-1)
            yield trits[:min(trits.size, n - 5 * start)]


# -- dense groups: k trits in b(k) bits ----------------------------------------

LIMB_TRITS = 17          # 3**17 < 2**27, so limb * 2**32 fits in 64 bits
LIMB_BASE = 3 ** LIMB_TRITS
_MASK32 = np.uint64(0xFFFFFFFF)
_POW3_LIMB = 3 ** np.arange(LIMB_TRITS, dtype=np.int64)


def _words_needed(nbits: int) -> int:
    return max(1, (nbits + 31) // 32)


def pack_groups(digits: np.ndarray) -> np.ndarray:
    """(G, k) base-3 digits (0..2, first digit least significant) -> (G, b(k)) bits, LSB first.

    The group's value is built by Horner's rule over 17-digit limbs, in 32-bit words
    held in uint64 so that word * 3**17 + carry never overflows.
    """
    g, k = digits.shape
    nbits = group_bits(k)
    n_limbs = -(-k // LIMB_TRITS)
    padded = np.zeros((g, n_limbs * LIMB_TRITS), np.int64)
    padded[:, :k] = digits
    limbs = (padded.reshape(g, n_limbs, LIMB_TRITS) @ _POW3_LIMB).astype(np.uint64)
    words = np.zeros((g, _words_needed(nbits)), np.uint64)
    base = np.uint64(LIMB_BASE)
    for j in range(n_limbs - 1, -1, -1):
        carry = limbs[:, j].copy()
        live = _words_needed(group_bits(k - LIMB_TRITS * j))  # the value is < 3**(k - 17 j)
        for w in range(live):
            t = words[:, w] * base + carry
            words[:, w] = t & _MASK32
            carry = t >> np.uint64(32)
    as_bytes = words.astype("<u4").view(np.uint8).reshape(g, -1)
    return np.unpackbits(as_bytes, axis=1, bitorder="little")[:, :nbits]


def unpack_groups(bits: np.ndarray, k: int) -> np.ndarray:
    """Inverse of pack_groups: (G, b(k)) bits -> (G, k) digits; CodecError if a value >= 3**k."""
    g = bits.shape[0]
    nbits = group_bits(k)
    nwords = _words_needed(nbits)
    full = np.zeros((g, 32 * nwords), np.uint8)
    full[:, :nbits] = bits
    words = np.packbits(full, axis=1, bitorder="little").view("<u4").astype(np.uint64)
    n_limbs = -(-k // LIMB_TRITS)
    limbs = np.zeros((g, n_limbs), np.int64)
    base = np.uint64(LIMB_BASE)
    top_value = 2 ** nbits - 1  # the largest value the bits can hold, divided as we go
    for j in range(n_limbs - 1):  # long division by 3**17, lowest limb first
        live = _words_needed(top_value.bit_length())
        rem = np.zeros(g, np.uint64)
        for w in range(live - 1, -1, -1):
            cur = (rem << np.uint64(32)) | words[:, w]
            q = cur // base
            rem = cur - q * base
            words[:, w] = q
        limbs[:, j] = rem.astype(np.int64)
        top_value //= LIMB_BASE
    top_trits = k - LIMB_TRITS * (n_limbs - 1)
    if g and ((words[:, 1:] != 0).any() or (words[:, 0] >= 3 ** top_trits).any()):
        raise CodecError(f"dense: a group value is >= 3^{k}")
    limbs[:, n_limbs - 1] = words[:, 0].astype(np.int64)
    digits = (limbs[:, :, None] // _POW3_LIMB) % 3
    return digits.reshape(g, -1)[:, :k]


@dataclass(frozen=True)
class DenseCodec(Codec):
    """Groups of k trits in b(k) bits, one continuous little-endian bit stream.

    Trit i of group g is digit i of the group's value V = sum((t_i + 1) 3^i); V's
    b(k) bits follow the previous group's bits with no gap, least significant first.
    The last group may be shorter (r trits in b(r) bits); the stream ends with zero
    bits up to a whole byte. k = 306 gives 485 bits: 1.584967 bits/trit.
    """
    k: int = 306
    name = "dense"
    code = 3
    random_access = True
    description = "groups of 306 trits as 485-bit base-3 numbers, bit stream (random access by group)"

    def __post_init__(self):
        if self.k < 1:
            raise ValueError(f"dense group size must be >= 1, got {self.k}")

    def stream_bits(self, n: int) -> int:
        full, rest = divmod(n, self.k)
        return full * group_bits(self.k) + group_bits(rest)

    def encoded_size(self, n):
        return (self.stream_bits(n) + 7) // 8

    def max_trits(self, nbytes):
        return int(8 * nbytes / LOG2_3) + self.k

    def encode(self, trits):
        t = as_trits(trits)
        digits = t.astype(np.int64) + 1
        full, rest = divmod(t.size, self.k)
        parts = []
        if full:
            parts.append(pack_groups(digits[:full * self.k].reshape(full, self.k)).reshape(-1))
        if rest:
            parts.append(pack_groups(digits[full * self.k:].reshape(1, rest)).reshape(-1))
        bits = np.concatenate(parts) if parts else np.zeros(0, np.uint8)
        return np.packbits(bits, bitorder="little").tobytes()

    def iter_decode(self, data, n, chunk_trits=4096):
        _check_n(n)
        raw = _as_bytes(data)
        _check_length(self, raw, n)
        bits = np.unpackbits(raw, bitorder="little")
        used = self.stream_bits(n)
        if bits[used:].any():
            raise CodecError("dense: nonzero padding after the last group")
        kb = group_bits(self.k)
        full, rest = divmod(n, self.k)
        step = max(1, chunk_trits // self.k)
        for g0 in range(0, full, step):
            g1 = min(full, g0 + step)
            chunk = bits[g0 * kb:g1 * kb].reshape(g1 - g0, kb)
            yield (unpack_groups(chunk, self.k).reshape(-1) - 1).astype(np.int8)
        if rest:
            tail = bits[full * kb:full * kb + group_bits(rest)].reshape(1, -1)
            yield (unpack_groups(tail, rest).reshape(-1) - 1).astype(np.int8)


# -- rANS entropy code ---------------------------------------------------------

RANS_SCALE_BITS = 14
RANS_M = 1 << RANS_SCALE_BITS     # frequencies sum to 2**14
RANS_L = 1 << 23                  # the state lives in [2**23, 2**31)
RANS_FMIN = 256                   # every frequency >= M/64: bounds the trits per byte
RANS_HEADER = 10                  # u16 freq[3] + u32 initial decoder state
RANS_MAX_TRITS_PER_BYTE = 256     # a valid stream never holds more (see max_trits)


def rans_frequencies(counts) -> tuple[int, int, int]:
    """Counts of (-1, 0, +1) -> frequencies summing to 2**14, each >= 256.

    Rounded proportionally; the largest absorbs the rounding. The floor costs at most
    a few thousandths of a bit per trit on realistic tensors and guarantees that every
    trit costs >= log2(16384 / 15872) = 0.046 bits, so a stream of B bytes holds fewer
    than 256 B trits: a reader can bound its allocation by the file size.
    """
    counts = [int(c) for c in counts]
    n = sum(counts)
    if n == 0:
        return (RANS_FMIN, RANS_M - 2 * RANS_FMIN, RANS_FMIN)
    f = [max(RANS_FMIN, (c * RANS_M + n // 2) // n) for c in counts]
    big = max(range(3), key=lambda i: (f[i], -i))
    f[big] += RANS_M - sum(f)
    return tuple(f)


class RansCodec(Codec):
    """Static rANS, 8-bit renormalisation, the tensor's trit frequencies stored up front.

    Stream: u16 f[3] (frequencies of -1, 0, +1), u32 x (the decoder's initial state),
    then renormalisation bytes. Decoding one trit: slot = x mod 2**14; s = the symbol
    with c[s] <= slot < c[s] + f[s] (c the running sum of f); x = f[s] (x >> 14) +
    slot - c[s]; while x < 2**23: x = (x << 8) | next byte. A valid stream ends with
    every byte consumed and x == 2**23. The decoder only shifts and multiplies; the
    encoder runs backwards over the trits and divides.
    """
    name, code, random_access = "rans", 4, False
    description = "static rANS, per-tensor trit frequencies (entropy code; sequential)"

    def max_trits(self, nbytes):
        return RANS_MAX_TRITS_PER_BYTE * nbytes

    def encode(self, trits):
        t = as_trits(trits)
        freqs = rans_frequencies(trit_counts(t))
        cum = (0, freqs[0], freqs[0] + freqs[1])
        x_max = [((RANS_L >> RANS_SCALE_BITS) << 8) * f for f in freqs]
        x = RANS_L
        out = bytearray()
        for s in (t[::-1].astype(np.int64) + 1).tolist():
            f = freqs[s]
            while x >= x_max[s]:
                out.append(x & 0xFF)
                x >>= 8
            q, r = divmod(x, f)
            x = (q << RANS_SCALE_BITS) + r + cum[s]
        out.reverse()
        head = np.array(freqs, "<u2").tobytes() + np.array([x], "<u4").tobytes()
        stream = head + bytes(out)
        if t.size > self.max_trits(len(stream)):  # impossible by the frequency floor
            raise CodecError("rans: stream denser than the format allows")
        return stream

    def iter_decode(self, data, n, chunk_trits=4096):
        _check_n(n)
        raw = bytes(data)
        if len(raw) < RANS_HEADER:
            raise CodecError(f"rans: stream of {len(raw)} bytes is shorter than its {RANS_HEADER}-byte header")
        if n > self.max_trits(len(raw)):
            raise CodecError(f"rans: {n} trits cannot come from {len(raw)} bytes")
        freqs = [int(v) for v in np.frombuffer(raw[:6], "<u2")]
        if sum(freqs) != RANS_M or min(freqs) < RANS_FMIN:
            raise CodecError(f"rans: frequencies {freqs} must be >= {RANS_FMIN} and sum to {RANS_M}")
        x = int(np.frombuffer(raw[6:10], "<u4")[0])
        if not RANS_L <= x < (RANS_L << 8):
            raise CodecError(f"rans: initial state {x:#x} outside [2^23, 2^31)")
        cum = (0, freqs[0], freqs[0] + freqs[1])
        symbol_of_slot = [0] * freqs[0] + [1] * freqs[1] + [2] * freqs[2]
        mask = RANS_M - 1
        pos, end = RANS_HEADER, len(raw)
        done = 0
        chunk_trits = max(1, chunk_trits)
        while done < n:
            m = min(chunk_trits, n - done)
            out = [0] * m
            for i in range(m):
                slot = x & mask
                s = symbol_of_slot[slot]
                x = freqs[s] * (x >> RANS_SCALE_BITS) + slot - cum[s]
                while x < RANS_L:
                    if pos >= end:
                        raise CodecError("rans: stream ends before the last trit")
                    x = (x << 8) | raw[pos]
                    pos += 1
                out[i] = s - 1
            done += m
            yield np.array(out, dtype=np.int8)
        if pos != end or x != RANS_L:
            raise CodecError("rans: stream does not end where the trits end (corrupt or wrong length)")


TWO_BIT = TwoBitCodec()
BASE3X5 = Base3x5Codec()
DENSE = DenseCodec()
RANS = RansCodec()
CODECS = {c.name: c for c in (TWO_BIT, BASE3X5, DENSE, RANS)}
CODECS_BY_ID = {c.code: c for c in CODECS.values()}


def get_codec(name: str) -> Codec:
    if isinstance(name, Codec):
        return name
    try:
        return CODECS[name]
    except KeyError:
        raise ValueError(f"unknown codec {name!r}; choose one of {', '.join(CODECS)}") from None


def bits_per_trit(codec, trits) -> float:
    """Measured size of `trits` under `codec`, in bits per trit (whole bytes, headers included)."""
    t = as_trits(trits)
    if t.size == 0:
        raise ValueError("bits per trit of an empty tensor is undefined")
    return 8 * len(get_codec(codec).encode(t)) / t.size


# -- measurements for the chapter --------------------------------------------------


def record_group_sizes(max_k: int) -> list[int]:
    """Every k <= max_k whose b(k)/k beats all smaller group sizes (the useful groupings)."""
    best, out = float("inf"), []
    for k in range(1, max_k + 1):
        rate = group_bits(k) / k
        if rate < best:
            best, out = rate, out + [k]
    return out


def measure_throughput(trits, codecs=None, repeats: int = 3) -> dict:
    """{codec: {"encode": trits/s, "decode": trits/s}}, best of `repeats` timings each.

    All codecs are timed on the same trits in the same run, so ratios between them hold
    on any machine even when the absolute rates do not.
    """
    import time

    from ..progress import progress
    t = as_trits(trits)
    out = {}
    for name in progress(list(codecs or CODECS), desc="codec throughput"):
        codec = get_codec(name)
        enc, dec = [], []
        for _ in range(max(1, repeats)):
            t0 = time.perf_counter()
            data = codec.encode(t)
            t1 = time.perf_counter()
            back = codec.decode(data, t.size)
            t2 = time.perf_counter()
            enc.append(t1 - t0)
            dec.append(t2 - t1)
        if not np.array_equal(back, t):
            raise AssertionError(f"{name}: round trip failed during the timing")
        out[name] = {"encode": t.size / min(enc), "decode": t.size / min(dec),
                     "bits_per_trit": 8 * len(data) / max(t.size, 1)}
    return out
