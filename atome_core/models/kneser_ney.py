"""Interpolated modified Kneser-Ney over bytes: the n-gram reference line for the frontier.

A byte n-gram model of order n predicts byte w from the previous n-1 bytes h (fewer at
the start of a text: the first bytes use the context they have). Level L (L = 1..n)
holds the distinct L-grams of the training bytes with a count a:

    a(hw) = c(hw)                 the raw count, at the top level L = n
    a(hw) = N1+(. hw)             the continuation count (distinct bytes seen before hw), below

and three discounts per level from its count-of-counts n1..n4 (Chen & Goodman 1998):

    Y = n1 / (n1 + 2 n2),  D1 = 1 - 2Y n2/n1,  D2 = 2 - 3Y n3/n2,  D3+ = 3 - 4Y n4/n3

(Y = 1/2 where n1 = 0; a discount whose formula divides by zero or is not positive, which
only small texts meet, takes Y: every discount is then in (0, i], so every byte keeps a
positive probability). With A(h) = sum_w
a(hw) and N1(h.), N2(h.), N3+(h.) the numbers of bytes w with a(hw) = 1, 2, >= 3:

    p_L(w | h)  = max(a(hw) - D(a(hw)), 0) / A(h)  +  gamma(h) p_{L-1}(w | h')
    gamma(h)    = (D1 N1(h.) + D2 N2(h.) + D3+ N3+(h.)) / A(h)
    p_0(w)      = 1/256

where h' is h without its first byte. A context never seen (or with A(h) = 0) backs
off whole: p_L(w | h) = p_{L-1}(w | h'). Discounts and continuation counts follow
KenLM's convention (each level's discounts from the counts that level uses).

The stored model is a trie in sorted arrays: level L's nodes are the keys
parent * 256 + byte (parent: the node of the first L-1 bytes in level L-1), and each node
holds `term` = max(a - D, 0) / A(parent) and, below the top, `gamma` as a context. These
float32 tables are exactly what `to_bytes` writes, so `deployed_bytes` counts a model like
the book's other models: the size of what it needs to predict.

Pruning (`fit(..., prune_above=k)`) drops the n-grams longer than k bytes seen fewer
than `min_count` times in the training bytes (prefixes of dropped n-grams are never
rarer, so the trie stays whole); each dropped n-gram's term moves into its context's
gamma, so every distribution still sums to 1.

`fit(train, order)`, `bits_per_byte(model, val)`, `prob(model, context, byte)`,
`to_bytes` / `from_bytes`, `deployed_bytes`. NumPy only: fitting sorts one int64 key
per position and level.
"""
import struct
from dataclasses import dataclass

import numpy as np

MAGIC = b"ATOMEKN1"
_HEADER = struct.Struct("<8sI")
_LEVEL = struct.Struct("<3dI")


@dataclass
class KneserNey:
    order: int
    discounts: np.ndarray  # (order, 3) float64: D1, D2, D3+ of level L in row L-1
    keys: list             # level L = 1..order: sorted int64 keys parent * 256 + byte
    terms: list            # level L = 1..order: float32 per node, max(a - D, 0) / A(parent)
    gammas: list           # level 0..order-1: float32 back-off weight of each node as a context


def _check_order(order) -> int:
    if isinstance(order, bool) or not isinstance(order, (int, np.integer)) or order < 1:
        raise ValueError(f"order must be an integer >= 1, got {order!r}")
    return int(order)


def _as_bytes(data, what: str) -> np.ndarray:
    """bytes, bytearray, memoryview or an integer array of byte values, as int64."""
    if isinstance(data, str):
        raise TypeError(f"{what} must be bytes, not str: encode the text first")
    if isinstance(data, np.ndarray):
        x = data.reshape(-1)
        if x.size and (x.dtype.kind not in "iu" or x.min() < 0 or x.max() > 255):
            raise ValueError(f"{what} must hold byte values 0..255")
        return x.astype(np.int64)
    return np.frombuffer(bytes(data), dtype=np.uint8).astype(np.int64)


def discounts(counts) -> np.ndarray:
    """(D1, D2, D3+) from the count-of-counts of `counts` (zeros ignored), as in the module
    docstring."""
    counts = np.asarray(counts)
    n1, n2, n3, n4 = (int(np.count_nonzero(counts == k)) for k in (1, 2, 3, 4))
    y = n1 / (n1 + 2 * n2) if n1 else 0.5
    d1 = 1 - 2 * y * n2 / n1 if n1 else y
    d2 = 2 - 3 * y * n3 / n2 if n2 else y
    d3 = 3 - 4 * y * n4 / n3 if n3 else y
    return np.array([d if d > 0 else y for d in (d1, d2, d3)])


def _levels(x: np.ndarray, order: int):
    """Per level L = 1..order: sorted keys, raw counts, and the node of the L-gram ending at
    each position (valid from position L-1 on), first-occurrence end positions."""
    n = len(x)
    out, ids_prev = [], None
    for L in range(1, order + 1):
        parent = np.zeros(n, np.int64) if L == 1 else ids_prev[L - 2:n - 1]
        keys, first, inverse, raw = np.unique(parent * 256 + x[L - 1:], return_index=True,
                                              return_inverse=True, return_counts=True)
        ids = np.full(n, -1, np.int64)
        ids[L - 1:] = inverse.reshape(-1)
        out.append((keys, raw, ids, first + L - 1))
        ids_prev = ids
    return out


def fit(train, order: int, *, prune_above: int | None = None, min_count: int = 2) -> KneserNey:
    """Interpolated modified Kneser-Ney of `order` over the bytes of `train`.

    prune_above=k drops the n-grams longer than k bytes seen fewer than `min_count` times
    (see the module docstring)."""
    order = _check_order(order)
    x = _as_bytes(train, "train")
    if len(x) < order:
        raise ValueError(f"train has {len(x)} bytes; order {order} needs at least {order}")
    if prune_above is not None and (prune_above < 1 or min_count < 1):
        raise ValueError("prune_above and min_count must be >= 1")
    levels = _levels(x, order)
    keys = [lv[0] for lv in levels]
    raws = [lv[1] for lv in levels]
    sizes = [1] + [len(k) for k in keys]
    ds, terms, gammas = np.zeros((order, 3)), [], []
    for L in range(1, order + 1):
        if L == order:
            a = raws[L - 1]
        else:  # continuation count: how many distinct (L+1)-grams end with this L-gram
            suffix = levels[L - 1][2][levels[L][3]]
            a = np.bincount(suffix, minlength=sizes[L])
        ds[L - 1] = discounts(a)
        d = np.concatenate([[0.0], ds[L - 1]])[np.minimum(a, 3)]
        parent = keys[L - 1] // 256
        total = np.bincount(parent, weights=a, minlength=sizes[L - 1])
        mass = np.bincount(parent, weights=d, minlength=sizes[L - 1])
        seen = total > 0
        terms.append(np.where(seen[parent], np.maximum(a - d, 0) / np.where(seen, total, 1)[parent], 0.0))
        gammas.append(np.where(seen, mass / np.where(seen, total, 1), 1.0))
    if prune_above is not None:
        keys, terms, gammas = _prune(keys, raws, terms, gammas, prune_above, min_count)
    return KneserNey(order, ds, keys, [t.astype(np.float32) for t in terms],
                     [g.astype(np.float32) for g in gammas])


def _prune(keys, raws, terms, gammas, above: int, min_count: int):
    """Drop the nodes of levels > above with raw count < min_count; their terms move into
    their contexts' gammas, and the trie is renumbered."""
    keys, terms, gammas = list(keys), list(terms), list(gammas)
    new_id = np.zeros(1, np.int64)  # level 0: the root keeps id 0
    for L in range(1, len(keys) + 1):
        parent, byte = keys[L - 1] // 256, keys[L - 1] % 256
        keep = np.ones(len(parent), bool) if L <= above else raws[L - 1] >= min_count
        gammas[L - 1] = gammas[L - 1] + np.bincount(parent[~keep], weights=terms[L - 1][~keep],
                                                    minlength=len(gammas[L - 1]))
        if L > 1:  # the previous level's gammas follow its kept nodes
            gammas[L - 1] = gammas[L - 1][new_id >= 0]
        assert (new_id[parent[keep]] >= 0).all(), "a kept n-gram lost its prefix"
        keys[L - 1] = new_id[parent[keep]] * 256 + byte[keep]
        terms[L - 1] = terms[L - 1][keep]
        new_id = np.where(keep, np.cumsum(keep) - 1, -1)
    return keys, terms, gammas


def _lookup(keys: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Index of each query in the sorted `keys`, -1 where absent (negative queries: absent)."""
    if len(keys) == 0:
        return np.full(len(queries), -1, np.int64)
    pos = np.minimum(np.searchsorted(keys, queries), len(keys) - 1)
    return np.where((keys[pos] == queries) & (queries >= 0), pos, -1)


def _probs(model: KneserNey, x: np.ndarray) -> np.ndarray:
    """p(x[t] | x[max(0, t-order+1):t]) for every t, streaming over the levels."""
    p = np.full(len(x), 1.0 / 256)
    ctx = np.zeros(len(x), np.int64)  # the node of the context of level L ending at t-1
    for L in range(1, model.order + 1):
        valid = ctx >= 0
        gram = _lookup(model.keys[L - 1], np.where(valid, ctx * 256 + x, -1))
        term = np.where(gram >= 0, model.terms[L - 1][np.maximum(gram, 0)], 0.0)
        gamma = model.gammas[L - 1][np.maximum(ctx, 0)].astype(np.float64)
        p = np.where(valid, term + gamma * p, p)
        ctx = np.concatenate([[-1], gram[:-1]])
    return p


def bits_per_byte(model: KneserNey, val) -> float:
    """Mean -log2 p over every byte of `val`, each from up to order-1 previous bytes."""
    x = _as_bytes(val, "val")
    if len(x) == 0:
        raise ValueError("cannot score an empty text")
    return float(-np.log2(_probs(model, x)).mean())


def prob(model: KneserNey, context, byte: int) -> float:
    """p(byte | the last order-1 bytes of context)."""
    if not 0 <= int(byte) <= 255:
        raise ValueError(f"byte must be in 0..255, got {byte}")
    c = _as_bytes(context, "context")
    c = c[len(c) - (model.order - 1):] if model.order > 1 else c[:0]
    return float(_probs(model, np.append(c, int(byte)))[-1])


# -----------------------------------------------------------------------------
# the stored form

def to_bytes(model: KneserNey) -> bytes:
    """MAGIC, order; per level L: D1 D2 D3+ (float64) and the node count (uint32); then per
    level L: children per node of level L-1 (uint16), each node's byte (uint8) and term
    (float32), the gammas of level L-1's nodes (float32). Little-endian."""
    parts = [_HEADER.pack(MAGIC, model.order)]
    parts += [_LEVEL.pack(*map(float, model.discounts[L]), len(model.keys[L])) for L in range(model.order)]
    for L in range(model.order):
        n_prev = len(model.gammas[L])
        children = np.bincount(model.keys[L] // 256, minlength=n_prev)
        parts += [children.astype("<u2").tobytes(), (model.keys[L] % 256).astype(np.uint8).tobytes(),
                  model.terms[L].astype("<f4").tobytes(), model.gammas[L].astype("<f4").tobytes()]
    return b"".join(parts)


def from_bytes(blob: bytes) -> KneserNey:
    """The model `to_bytes` wrote; ValueError on anything else."""
    blob = bytes(blob)
    if len(blob) < _HEADER.size or blob[:8] != MAGIC:
        raise ValueError("not a Kneser-Ney byte model (bad magic)")
    order = _check_order(_HEADER.unpack_from(blob)[1])
    at = _HEADER.size
    if len(blob) < at + order * _LEVEL.size:
        raise ValueError("truncated Kneser-Ney model")
    heads = [_LEVEL.unpack_from(blob, at + L * _LEVEL.size) for L in range(order)]
    at += order * _LEVEL.size
    sizes = [1] + [h[3] for h in heads]

    def take(dtype, count):
        nonlocal at
        end = at + np.dtype(dtype).itemsize * count
        if end > len(blob):
            raise ValueError("truncated Kneser-Ney model")
        out, at = np.frombuffer(blob[at:end], dtype=dtype), end
        return out

    keys, terms, gammas = [], [], []
    for L in range(1, order + 1):
        children = take("<u2", sizes[L - 1]).astype(np.int64)
        if children.sum() != sizes[L]:
            raise ValueError(f"level {L}: children do not add up to its {sizes[L]} nodes")
        byte = take(np.uint8, sizes[L]).astype(np.int64)
        keys.append(np.repeat(np.arange(sizes[L - 1]), children) * 256 + byte)
        terms.append(take("<f4", sizes[L]).astype(np.float32))
        gammas.append(take("<f4", sizes[L - 1]).astype(np.float32))
    if at != len(blob):
        raise ValueError(f"{len(blob) - at} bytes after the Kneser-Ney model")
    return KneserNey(order, np.array([h[:3] for h in heads]), keys, terms, gammas)


def deployed_bytes(model: KneserNey) -> int:
    """Length of the stored form (`to_bytes`)."""
    return len(to_bytes(model))


def reference_points(train, val, orders=(3, 4, 5, 6), prunes=(None, 2)) -> list[dict]:
    """One row per (order, prune_above): bits per byte on val and deployed bytes."""
    rows = []
    for order in orders:
        for above in prunes:
            if above is not None and above >= order:
                continue
            model = fit(train, order, prune_above=above)
            rows.append({"order": order, "prune_above": above,
                         "bits_per_byte": bits_per_byte(model, val),
                         "deployed_bytes": deployed_bytes(model)})
    return rows
