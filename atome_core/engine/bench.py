"""How fast the engine decodes (timed inside C) and how big it is: object code, source,
and the state and scratch RAM a window needs."""

import os
import subprocess
import time

import numpy as np

from ..progress import progress
from .binding import ENGINE_DIR, PATHS, Engine, Model, build_library

# the engine's C source: the interface and the two C files (arithmetic, loaders)
SOURCE_FILES = ("atome.h", "atome.c", "atome_load.c")

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


def pin_to_one_core() -> None:
    """Pin this process to the first CPU it may run on (where the OS allows it), so a
    timing is of one core."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})


def decode_speeds(model: Model, contexts, n_tokens: int, recompute_contexts, recompute_tokens: int,
                  seed: int = 0, repeats: int = 3) -> dict:
    """(mode, path, context) -> tokens per second, for both paths: incremental decode at
    each of `contexts` (best of `repeats` runs, seeds seed, seed + 1, ...), and full-prefix
    recompute at each of `recompute_contexts` (one run)."""
    speed = {}
    for path in PATHS:
        for ctx in progress(contexts, desc=f"incremental {path}"):
            speed[("incremental", path, ctx)] = max(tokens_per_second(model, ctx, n_tokens, path=path, seed=seed + r)
                                                    for r in range(repeats))
        for ctx in progress(recompute_contexts, desc=f"recompute {path}"):
            speed[("recompute", path, ctx)] = tokens_per_second(model, ctx, recompute_tokens, mode="recompute",
                                                                path=path, seed=seed)
    return speed


def library_code_bytes(variant: str = "release") -> dict:
    """Sizes of the engine's object code (text, data, bss) from the static library."""
    build_library(variant)
    lib_a = ENGINE_DIR / "build" / "libatome.a"
    subprocess.run(["make", "-s", "-C", str(ENGINE_DIR), "build/libatome.a"], check=True, capture_output=True)
    out = subprocess.run(["size", "-t", str(lib_a)], capture_output=True, text=True, check=True).stdout
    text, data, bss = (int(v) for v in out.strip().splitlines()[-1].split()[:3])
    return {"text": text, "data": data, "bss": bss}


def trit_table_bytes() -> int:
    """Bytes of the float path's trit lookup tables (symbols ending TRITS_F32) in the
    static library, as `nm -S` reports them (build it first: library_code_bytes)."""
    symbols = subprocess.run(["nm", "-S", str(ENGINE_DIR / "build" / "libatome.a")], capture_output=True,
                             text=True, check=True).stdout
    return sum(int(line.split()[1], 16) for line in symbols.splitlines() if line.endswith("TRITS_F32"))


def source_lines(files=SOURCE_FILES) -> int:
    """Lines of the engine's C source, comments included."""
    return sum(len((ENGINE_DIR / f).read_text().splitlines()) for f in files)


def state_scratch_bytes(configs: dict, windows=(32, 64, 128, 256)) -> list:
    """(model name, window, path, state bytes, scratch bytes) for each named config (a
    random 2-bit blob of it), window and path."""
    from .. import formats
    from .conformance import random_tensors
    rows = []
    for name, cfg in configs.items():
        m = Model(formats.write_blob(cfg, random_tensors(cfg), codec="2bit"))
        for win in windows:
            for path in PATHS:
                rows.append((name, win, path, m.state_bytes(win, path), m.scratch_bytes(win, path)))
    return rows
