"""How fast the engine decodes (timed inside C) and how big its object code is."""

import subprocess
import time

import numpy as np

from .binding import ENGINE_DIR, Engine, Model, build_library

# -- timing --------------------------------------------------------------------------------------


def tokens_per_second(model: Model, context: int, n_tokens: int = 64, mode: str = "incremental",
                      path: str = "f32", seed: int = 0) -> float:
    """Decode speed with `context` tokens in the attention window, timed inside C
    (one call for all n_tokens, so Python adds nothing per token).

    incremental: an engine whose window is `context`, filled with `context` tokens, then
    n_tokens more steps, each attending over exactly `context` keys. recompute: every new
    token re-runs the whole prefix of `context` tokens from a reset state (the kit's way)."""
    rng = np.random.default_rng(seed)
    tokens = rng.integers(32, 127, size=context + n_tokens).astype(np.uint32)
    if mode == "incremental":
        engine = Engine(model, window=context, path=path)
        engine.prefill(tokens[:context])
        t0 = time.perf_counter()
        engine.prefill(tokens[context:])
        return n_tokens / (time.perf_counter() - t0)
    if mode == "recompute":
        engine = Engine(model, window=context, path=path)
        t0 = time.perf_counter()
        for i in range(n_tokens):
            engine.forward(tokens[i + 1:i + 1 + context])
        return n_tokens / (time.perf_counter() - t0)
    raise ValueError(f"mode must be 'incremental' or 'recompute', got {mode!r}")


def library_code_bytes(variant: str = "release") -> dict:
    """Sizes of the engine's object code (text, data, bss) from the static library."""
    build_library(variant)
    lib_a = ENGINE_DIR / "build" / "libatome.a"
    subprocess.run(["make", "-s", "-C", str(ENGINE_DIR), "build/libatome.a"], check=True, capture_output=True)
    out = subprocess.run(["size", "-t", str(lib_a)], capture_output=True, text=True, check=True).stdout
    text, data, bss = (int(v) for v in out.strip().splitlines()[-1].split()[:3])
    return {"text": text, "data": data, "bss": bss}
