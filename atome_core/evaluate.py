"""Held-out scores in units that compare across tokenisations: bits per byte.

The one windowed scorer of the package. Windows are non-overlapping, seq_len + 1 tokens
each, from token 0 (`eval_windows`): window i feeds tokens[i*L : i*L+L] and predicts
tokens[i*L+1 : i*L+L+1], each with a fresh context (the kit's evaluation); deterministic.
`evaluate_sum` adds the nats of every predicted token, `evaluate_loss` averages them,
`score` turns them into bits per byte for a byte model or, given each token's length in
bytes, for any tokenizer (`text_bits_per_byte` from text and a tokenizer).

The kit's numbers: bpb = summed nats / predicted bytes / ln 2, per-byte
perplexity = 2^bpb (e.g. its "6.31 ppl" is bpb 2.66). For a byte model one token
is one byte; a character model's nats are divided by the UTF-8 bytes of the
characters it predicted, so both land on the same scale.

`sliding_loss` is the streaming counterpart for a model with a fixed block: every token
after the first is predicted once, windows of `block` tokens overlapping by block - stride,
each prediction scored in the first window that reaches it, so it sees at least
block - stride + 1 tokens of left context (all of them in the first window).
"""
import contextlib
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


def model_device(model) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


@contextlib.contextmanager
def evaluating(model):
    """The model in eval mode for the block (its device as the value), its mode restored after."""
    was_training = model.training
    model.eval()
    try:
        yield model_device(model)
    finally:
        model.train(was_training)


def eval_windows(tokens, seq_len: int, max_windows: int | None = None) -> np.ndarray:
    """The evaluation windows as an int64 array (n, seq_len + 1)."""
    tokens = np.asarray(tokens)
    n_windows = (len(tokens) - 1) // seq_len
    if max_windows is not None:
        n_windows = min(n_windows, max_windows)
    if n_windows < 1:
        raise ValueError(f"{len(tokens)} tokens are too few for one evaluation window of {seq_len}+1")
    return tokens[np.arange(n_windows)[:, None] * seq_len + np.arange(seq_len + 1)].astype(np.int64)


@torch.no_grad()
def evaluate_sum(model, tokens: np.ndarray, seq_len: int, max_windows: int | None = None,
                 batch_size: int = 32) -> tuple[float, int]:
    """(summed nats, predicted tokens) over the evaluation windows."""
    windows = eval_windows(tokens, seq_len, max_windows)
    total = 0.0
    with evaluating(model) as device:
        for first in range(0, len(windows), batch_size):
            batch = torch.from_numpy(windows[first:first + batch_size]).to(device)
            logits = model(batch[:, :-1]).float()
            total += F.cross_entropy(logits.reshape(-1, logits.size(-1)), batch[:, 1:].reshape(-1),
                                     reduction="sum").item()
    return total, len(windows) * seq_len


def evaluate_loss(model, tokens: np.ndarray, seq_len: int, max_windows: int | None = None,
                  batch_size: int = 32) -> float:
    """Mean nats per predicted token over the evaluation windows."""
    total, count = evaluate_sum(model, tokens, seq_len, max_windows, batch_size)
    return total / count


def sliding_starts(n_predictions: int, block: int, stride: int) -> list[tuple[int, int]]:
    """[(start, first)]: window `start` feeds tokens[start : start + L] (L = min(block,
    n_predictions)) and scores its predictions from offset `first` on; together they score
    each of tokens[1 : n_predictions + 1] exactly once. The last window ends at the end."""
    if n_predictions < 1 or block < 1 or not 1 <= stride <= block:
        raise ValueError(f"need predictions, a block and 1 <= stride <= block (got {n_predictions}, {block}, {stride})")
    L = min(block, n_predictions)
    starts = list(range(0, n_predictions - L + 1, stride))
    if starts[-1] != n_predictions - L:
        starts.append(n_predictions - L)
    return [(s, 0 if i == 0 else starts[i - 1] + L - s) for i, s in enumerate(starts)]


@torch.no_grad()
def sliding_loss(model, tokens, block: int, stride: int | None = None, batch_size: int = 64) -> float:
    """Mean nats per token over tokens[1:] (as models.atto.stream_loss counts them), each
    predicted by a causal model in overlapping windows of `block` (sliding_starts; stride
    block // 2 unless given). Log-probabilities are summed in float64."""
    tokens = np.asarray(tokens, dtype=np.int64)
    n = len(tokens) - 1
    plan = sliding_starts(n, block, stride or max(1, block // 2))
    L = min(block, n)
    starts = np.array([s for s, _ in plan])
    scored = torch.from_numpy(np.arange(L)[None, :] >= np.array([f for _, f in plan])[:, None])
    windows = torch.from_numpy(tokens[starts[:, None] + np.arange(L + 1)])
    total = 0.0
    with evaluating(model) as device:
        for i in range(0, len(windows), batch_size):
            w, keep = windows[i:i + batch_size].to(device), scored[i:i + batch_size].to(device)
            logp = torch.log_softmax(model(w[:, :-1]).double(), dim=-1)
            total += -logp.gather(-1, w[:, 1:, None])[..., 0][keep].sum().item()
    assert int(scored.sum()) == n
    return total / n


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
    """Bits per byte (and friends) over the evaluation windows.

    bytes_per_token: for non-byte vocabularies, the UTF-8 length of each token id
    (indexable by id); None means one byte per token.
    """
    total, count = evaluate_sum(model, tokens, seq_len, max_windows, batch_size)
    if bytes_per_token is None:
        n_bytes = count
    else:
        predicted = eval_windows(tokens, seq_len, max_windows)[:, 1:]
        n_bytes = int(np.asarray(bytes_per_token)[predicted].sum())
    nats_per_byte = total / n_bytes
    bpb = bits_per_byte(nats_per_byte)
    return Score(nats_per_token=total / count, nats_per_byte=nats_per_byte, bits_per_byte=bpb,
                 ppl_per_byte=ppl_from_bpb(bpb), predicted_tokens=count, predicted_bytes=n_bytes)


def text_bits_per_byte(model, tokenizer, text: str, seq_len: int, max_windows: int | None = None,
                       batch_size: int = 16) -> float:
    """Bits per byte of `text` under a model with any tokenizer: the summed nats of the
    predicted tokens over the bytes those tokens spell, / ln 2."""
    tokens = np.asarray(tokenizer.encode(text), dtype=np.int64)
    token_bytes = np.array([len(tokenizer.decode_bytes([t])) for t in range(tokenizer.vocab_size)])
    return score(model, tokens, seq_len, max_windows, batch_size, bytes_per_token=token_bytes).bits_per_byte


def median_and_range(values) -> dict:
    v = np.asarray(list(values), dtype=float)
    return {"median": float(np.median(v)), "min": float(v.min()), "max": float(v.max()), "n": int(v.size)}


def deployed_bytes(model, scheme: str | None = None) -> dict:
    """What the model costs on disk, from a real file of the formats layer where one exists.

    routed ternary: the ATMB blob of chapter 3 (dense codec), with the kit's ATOME01 size;
    modern ternary: its ATMM blob (dense trits); any model under a post-training `scheme`
    ("int8", "int4", "fp16", "fp32"): its ATPQ file (atome_core.formats.ptq); otherwise an
    FP32 model at 4 bytes per parameter (no header: the bare weights).
    """
    from . import formats
    from .models import family_of
    from .models.routed import RoutedLM
    if scheme is not None:
        from .formats import ptq
        return {"format": f"ATPQ v1 ({scheme})", "bytes": ptq.deployed_bytes(model, scheme)}
    if isinstance(model, RoutedLM) and model.cfg.pathways == ("local", "state", "sparse"):
        tensors = formats.tensors_from_state_dict(model.state_dict(), model.cfg)
        return {"format": "ATMB v1 (dense trits)", "bytes": len(formats.write_blob(model.cfg, tensors, codec="dense")),
                "atome01_bytes": formats.legacy_size(model.cfg)}
    quant = getattr(getattr(model, "cfg", None), "quant", None)
    if family_of(model) == "modern" and quant is not None and quant.weights == "ternary":
        from .formats.modern_blob import deployed_bytes as atmm_bytes
        return {"format": "ATMM v1 (dense trits)", "bytes": atmm_bytes(model)}
    n = sum(p.numel() for p in model.parameters())
    return {"format": "FP32", "bytes": 4 * n}
