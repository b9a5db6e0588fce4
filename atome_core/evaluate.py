"""Held-out scores in units that compare across tokenisations: bits per byte.

The kit's numbers: bpb = summed nats / predicted bytes / ln 2, per-byte
perplexity = 2^bpb (e.g. its "6.31 ppl" is bpb 2.66). For a byte model one token
is one byte; a character model's nats are divided by the UTF-8 bytes of the
characters it predicted, so both land on the same scale.
"""
import math
from dataclasses import dataclass

import numpy as np

from .train import evaluate_sum


@dataclass
class Score:
    nats_per_token: float
    nats_per_byte: float
    bits_per_byte: float
    ppl_per_byte: float        # 2 ** bits_per_byte
    predicted_tokens: int
    predicted_bytes: int


def bits_per_byte(nats_per_byte: float) -> float:
    return nats_per_byte / math.log(2)


def ppl_from_bpb(bpb: float) -> float:
    return 2.0 ** bpb


def bpb_from_ppl(ppl: float) -> float:
    return math.log2(ppl)


def score(model, tokens: np.ndarray, seq_len: int, max_windows: int | None = None,
          batch_size: int = 32, bytes_per_token: np.ndarray | None = None) -> Score:
    """Evaluate on non-overlapping windows from token 0 (see train.evaluate_loss).

    bytes_per_token: for non-byte vocabularies, the UTF-8 length of each token id
    (indexable by id); None means one byte per token.
    """
    tokens = np.asarray(tokens)
    total, count = evaluate_sum(model, tokens, seq_len, max_windows, batch_size)
    n_windows = count // seq_len
    if bytes_per_token is None:
        n_bytes = count
    else:
        rows = np.arange(n_windows)[:, None] * seq_len + 1 + np.arange(seq_len)  # the predicted positions
        n_bytes = int(np.asarray(bytes_per_token)[tokens[rows]].sum())
    nats_per_byte = total / n_bytes
    bpb = bits_per_byte(nats_per_byte)
    return Score(nats_per_token=total / count, nats_per_byte=nats_per_byte, bits_per_byte=bpb,
                 ppl_per_byte=ppl_from_bpb(bpb), predicted_tokens=count, predicted_bytes=n_bytes)


def median_and_range(values) -> dict:
    v = np.asarray(list(values), dtype=float)
    return {"median": float(np.median(v)), "min": float(v.min()), "max": float(v.max()), "n": int(v.size)}


def deployed_bytes(model) -> dict:
    """What the model costs on disk: for the routed-ternary model the real ATMB blob of
    chapter 3 (atome_core.formats, dense codec) and the kit's ATOME01 layout; for FP32
    baselines 4 bytes per parameter."""
    from . import formats
    from .models.routed import RoutedLM
    if isinstance(model, RoutedLM) and model.cfg.pathways == ("local", "state", "sparse"):
        tensors = formats.tensors_from_state_dict(model.state_dict(), model.cfg)
        return {"format": "ATMB v1 (dense trits)", "bytes": len(formats.write_blob(model.cfg, tensors, codec="dense")),
                "atome01_bytes": formats.legacy_size(model.cfg)}
    n = sum(p.numel() for p in model.parameters())
    return {"format": "FP32", "bytes": 4 * n}
