"""Held-out scores in units that compare across tokenisations: bits per byte.

The kit's numbers: bpb = summed nats / predicted bytes / ln 2, per-byte
perplexity = 2^bpb (e.g. its "6.31 ppl" is bpb 2.66). For a byte model one token
is one byte; a character model's nats are divided by the UTF-8 bytes of the
characters it predicted, so both land on the same scale.
"""
import math
from dataclasses import asdict, dataclass

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

    def as_dict(self) -> dict:
        return asdict(self)


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


# -----------------------------------------------------------------------------
# the kit's 60K A/B (chapter 4)

# The kit's published per-byte perplexities on the first 500 KB of TinyStories (90/10
# split, batch 16 x 64 bytes, AdamW 3e-4 constant): one seed at 3,000 steps, and
# medians of three seeds at 1,500 steps. It had no modern baseline.
KIT_PPL = {
    "3000 steps, 1 seed": {"routed": 6.31, "vanilla param-fair": 8.12, "vanilla flash-fair": 13.10},
    "1500 steps, median of 3 seeds": {"routed": 7.60, "vanilla param-fair": 9.86, "vanilla flash-fair": 18.69},
}
KIT_TRAIN_SECONDS = {"routed": 195, "vanilla param-fair": 95}
# reported validation losses of the published 944K checkpoints (nats per byte, the kit's split)
KIT_944K_VAL_NATS = {"routed": 1.0545, "vanilla": 0.9337}


def ab_models(pathway_ablations: bool = False) -> dict:
    """name -> (model class, config) of the 60K A/B; with the ablations, the routed model
    trained without one pathway each."""
    from .models import modern, routed, vanilla
    specs = {
        "routed": (routed.RoutedLM, routed.RoutedConfig()),
        "vanilla param-fair": (vanilla.VanillaGPT, vanilla.PARAM_FAIR_60K),
        "vanilla flash-fair": (vanilla.VanillaGPT, vanilla.FLASH_FAIR_60K),
        "modern": (modern.ModernLM, modern.ModernConfig()),
    }
    if pathway_ablations:
        for drop in routed.PATHWAYS:
            kept = tuple(p for p in routed.PATHWAYS if p != drop)
            specs[f"routed without {drop}"] = (routed.RoutedLM, routed.RoutedConfig(pathways=kept))
    return specs


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
