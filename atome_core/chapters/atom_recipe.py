"""Atom 3.4m as a configuration of the modern baseline (chapter 4's ModernLM).

7 layers, hidden 192, 3 query heads and 1 key-value head of dimension 64, SwiGLU FFN
480, context 512, RoPE theta 5000, RMSNorm, tied embeddings, a 4,096-token byte-level
BPE: 3,412,800 parameters.
"""
from ..models.modern import ModernConfig

ATOM_3_4M = dict(vocab_size=4096, d_model=192, n_layers=7, n_heads=3, n_kv_heads=1, d_ff=480,
                 max_seq=512, rope_theta=5000.0)


def atom_config(**overrides) -> ModernConfig:
    """The Atom 3.4m config; overrides scale it (e.g. for the CPU budget)."""
    return ModernConfig(**{**ATOM_3_4M, **overrides})


def text_bits_per_byte(model, tokenizer, text: str, seq_len: int, max_windows: int | None = None,
                       batch_size: int = 16) -> float:
    """Bits per byte of `text` under a model with any tokenizer: the summed nats of the
    predicted tokens over the bytes those tokens spell, / ln 2. Non-overlapping windows of
    seq_len + 1 tokens from the start (the first token of each window is context only)."""
    import math

    import numpy as np
    import torch
    import torch.nn.functional as F

    tokens = np.asarray(tokenizer.encode(text), dtype=np.int64)
    token_bytes = np.array([len(tokenizer.decode_bytes([t])) for t in range(tokenizer.vocab_size)])
    n_windows = (len(tokens) - 1) // seq_len
    if max_windows is not None:
        n_windows = min(n_windows, max_windows)
    if n_windows < 1:
        raise ValueError(f"text of {len(tokens)} tokens is too short for one window of {seq_len}+1")
    nats, n_bytes = 0.0, 0
    model.eval()
    with torch.no_grad():
        for first in range(0, n_windows, batch_size):
            rows = np.arange(first, min(n_windows, first + batch_size))[:, None] * seq_len + np.arange(seq_len + 1)
            w = torch.from_numpy(tokens[rows])
            logits = model(w[:, :-1]).float()
            nats += F.cross_entropy(logits.reshape(-1, logits.size(-1)), w[:, 1:].reshape(-1),
                                    reduction="sum").item()
            n_bytes += int(token_bytes[w[:, 1:].numpy()].sum())
    return nats / n_bytes / math.log(2)
