"""The C engine against the reference: equal float32 bits on every logit, and what a path costs.

Bit-exact means equal bits compared as uint32 (`bits_equal`); `ulp_distance` says by
how far two floats differ when they do not."""

import numpy as np

from .binding import DEFAULT_WINDOW, Engine, Model
from .reference import Reference

# -- comparing --------------------------------------------------------------------------------


def ulp_distance(a, b) -> np.ndarray:
    """|a - b| in units in the last place (0 iff the float32 bits are equal, +0 vs -0 aside)."""
    def ordered(x):
        i = np.asarray(x, np.float32).view(np.int32).astype(np.int64)
        return np.where(i < 0, -(i & 0x7FFFFFFF), i)
    return np.abs(ordered(a) - ordered(b))


def bits_equal(a, b) -> bool:
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    return a.shape == b.shape and np.array_equal(a.view(np.uint32), b.view(np.uint32))


def parity(data: bytes, tokens, window: int = DEFAULT_WINDOW, path: str = "f32", config=None,
           lib=None) -> dict:
    """Run the C engine and the reference over `tokens`; compare every logit's bits."""
    engine = Engine(Model(data, config, lib=lib), window=window, path=path)
    ref = Reference.from_blob(data, config, window=window, path=path)
    c_logits, r_logits = engine.run(tokens), ref.run(tokens)
    ulps = ulp_distance(c_logits, r_logits)
    return {"steps": len(tokens), "window": window, "path": path, "logits": int(c_logits.size),
            "bits_equal": bits_equal(c_logits, r_logits), "max_ulp": int(ulps.max()),
            "unequal": int((c_logits.view(np.uint32) != r_logits.view(np.uint32)).sum())}


# -- what a path costs in prediction ------------------------------------------------------------


def next_token_loss(model: "Model | bytes", tokens, window: int = DEFAULT_WINDOW, path: str = "f32",
                    config=None) -> float:
    """Mean cross-entropy in nats of each next token of `tokens` under the C engine's
    logits (one streaming pass, attention over the last `window` tokens); for byte
    models nats per byte. Computed in float64 from the engine's float32 logits."""
    tokens = np.asarray(tokens, np.int64)
    if tokens.size < 2:
        raise ValueError("need at least two tokens")
    engine = Engine(model, window=window, path=path, config=config)
    logits = engine.run(tokens[:-1]).astype(np.float64)
    top = logits.max(axis=1, keepdims=True)
    log_total = np.log(np.exp(logits - top).sum(axis=1)) + top[:, 0]
    return float(np.mean(log_total - logits[np.arange(tokens.size - 1), tokens[1:]]))
