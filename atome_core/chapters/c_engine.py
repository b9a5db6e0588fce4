"""Chapter 6: the C engine measured: its own transcendental functions, bit parity with the
NumPy reference, the published model's generation, decode speed, hostile input, sizes.

Everything here is what the notebook used to compute inline, in the same order (the
same seeds and draws), so a profile gives the same numbers.
"""
import re
import subprocess
import time

import numpy as np

# the kit's engine, as reported: tokens per second of the 944K model on one host core,
# by tokens of context (it re-runs the whole prefix for every token)
KIT_TOKENS_PER_SECOND = {32: 14.0, 128: 3.8}
# the kit's "bit-exact": its engine's logits within this absolute tolerance of PyTorch's
KIT_PARITY_TOLERANCE = 1e-3
# the context the claims and the prose quote speed at (the kit's context)
SPEED_CONTEXT = 128
# the codecs of the random configs, in turn
CODECS = ["2bit", "dense", "rans", "base3x5", "atome01"]
# the published model's parity text
STORY = (b"Once upon a time, there was a little dog named Max. Max liked to run in the park "
         b"with his friend Sue. One day they found a big red ball under a tree.")


def yes_no(x: bool) -> str:
    return "yes" if x else "no"


def build_engine():
    """(the loaded engine library, seconds it took to load and check that the build is
    up to date)."""
    from .. import engine as E
    t0 = time.perf_counter()
    lib = E.load_library()
    E.build_library()
    return lib, time.perf_counter() - t0


def transcendental_ulps(lib, seed: int, points: int = 2_000_001) -> dict:
    """The largest ulp distance of the engine's exp, tanh and rsqrt from float64 rounded
    to float32 over `points` points each, and whether C and the NumPy reference give the
    same bits for exp and tanh on 2,000 random inputs."""
    from .. import engine as E
    x = np.linspace(-87, 88, points).astype(np.float32)
    exp_ulp = int(E.ulp_distance(E.exp_ref(x), np.exp(x.astype(np.float64)).astype(np.float32)).max())
    x = np.linspace(-12, 12, points).astype(np.float32)
    tanh_ulp = int(E.ulp_distance(E.tanh_ref(x), np.tanh(x.astype(np.float64)).astype(np.float32)).max())
    x = np.exp(np.linspace(-25, 25, points)).astype(np.float32)
    rsqrt_ulp = int(E.ulp_distance(E.rsqrt_ref(x), (1 / np.sqrt(x.astype(np.float64))).astype(np.float32)).max())
    probe = np.random.default_rng(seed).uniform(-20, 20, 2000).astype(np.float32)
    same = all(E.bits_equal(np.array([getattr(lib, f"atome_{n}")(float(v)) for v in probe], np.float32), ref(probe))
               for n, ref in (("exp", E.exp_ref), ("tanh", E.tanh_ref)))
    return {"exp_max_ulp": exp_ulp, "tanh_max_ulp": tanh_ulp, "rsqrt_max_ulp": rsqrt_ulp, "same_bits": same}


# -- parity --------------------------------------------------------------------------------------


def train_60k_config(steps: int, batch_size: int, seq_len: int, lr: float, seed: int):
    """The recipe of the chapter's 60K routed model: AdamW at a constant rate."""
    from ..train import TrainConfig
    return TrainConfig(steps=steps, batch_size=batch_size, seq_len=seq_len, lr=lr, seed=seed,
                       log_every=max(1, steps // 4))


def training_plan(P) -> list:
    """The chapter's one training run under parameters `P` (atome_core.book.estimate)."""
    from ..ledger import run_shape
    from ..models.routed import RoutedConfig, RoutedLM
    return [run_shape(RoutedLM, RoutedConfig(), train_60k_config(P.train_steps, P.batch_size, P.seq_len, P.lr, P.seed))]


def train_60k(corpus, steps: int, batch_size: int, seq_len: int, lr: float, seed: int, val_bytes: int):
    """(model, training result, its 2-bit ATMB blob, seconds): the 60K routed model trained
    briefly on `corpus` (train split; the first val_bytes of validation)."""
    import torch

    from .. import data, formats, train
    from ..models.routed import RoutedConfig, RoutedLM
    train_tokens, val_tokens = data.encode_bytes(corpus.train), data.encode_bytes(corpus.val)[:val_bytes]
    torch.manual_seed(seed)
    model = RoutedLM(RoutedConfig())
    t0 = time.perf_counter()
    run = train.train(model, train_tokens, val_tokens, train_60k_config(steps, batch_size, seq_len, lr, seed),
                      progress_desc="60K routed model")
    seconds = time.perf_counter() - t0
    blob = formats.write_blob("60k", formats.tensors_from_state_dict(model.state_dict(), "60k"), codec="2bit")
    return model, run, blob, seconds


def random_parity_rows(n_configs: int, steps: int, seed: int) -> list:
    """Parity of `n_configs` random small configs (odd widths, kernels of 1, top_k above
    the window, windows of a few tokens), each in the next codec of CODECS, on both paths."""
    from .. import engine as E
    from .. import formats as F
    from ..progress import progress
    rng = np.random.default_rng(seed)
    rows = []
    for i in progress(range(n_configs), desc="random configs"):
        cfg = F.RoutedBlobConfig(vocab=int(rng.integers(2, 40)), d_model=int(rng.integers(1, 40)),
                                 n_layers=int(rng.integers(1, 4)), d_head=int(rng.integers(1, 17)),
                                 top_k=int(rng.integers(1, 7)), kernel=int(rng.integers(1, 7)))
        tensors = E.random_tensors(cfg, seed=seed + i)
        codec = CODECS[i % len(CODECS)]
        blob = F.write_atome01(tensors, cfg) if codec == "atome01" else F.write_blob(cfg, tensors, codec=codec)
        win = int(rng.integers(1, 12))
        tokens = rng.integers(0, cfg.vocab, steps)
        for path in E.PATHS:
            r = E.parity(blob, tokens, window=win, path=path, config=cfg if codec == "atome01" else None)
            rows.append({"model": f"random {cfg.vocab}/{cfg.d_model}/{cfg.n_layers}/{cfg.d_head}/{cfg.top_k}/"
                                  f"{cfg.kernel}", "codec": codec, **r})
    return rows


def trained_parity_rows(blob: bytes, text, windows) -> list:
    """Parity of the trained 60K blob over `text`, both paths, each window."""
    from .. import engine as E
    return [{"model": "60K trained", "codec": "2bit", **E.parity(blob, text, window=win, path=path)}
            for path in E.PATHS for win in windows]


def published_parity_rows(blob_944k: bytes, steps: int, window: int) -> list:
    """Parity of the published 944K blob (ATOME01, both paths) over the first `steps`
    bytes of STORY, and of its conversion to a dense ATMB blob (24 bytes, window 8)."""
    from .. import engine as E
    from .. import formats as F
    story = np.frombuffer(STORY[:steps], np.uint8)
    rows = [{"model": "944K published", "codec": "ATOME01", **E.parity(blob_944k, story, window=window, path=path)}
            for path in E.PATHS]
    rows.append({"model": "944K published", "codec": "dense (ATMB)",
                 **E.parity(F.atome01_to_blob(blob_944k, "944k", codec="dense"), story[:24], window=8)})
    return rows


def parity_table(rows: list) -> tuple[list, list]:
    header = ["model (vocab/d/L/d_head/top_k/kernel)", "codec", "path", "window", "steps", "logits compared",
              "max ulp"]
    return header, [[r["model"], r["codec"], r["path"], r["window"], r["steps"], r["logits"], r["max_ulp"]]
                    for r in rows]


def parity_summary(rows: list) -> dict:
    """Runs, logits compared, whether every one was bit-equal, and the largest ulp distance."""
    return {"runs": len(rows), "logits": sum(r["logits"] for r in rows),
            "all_bits_equal": all(r["bits_equal"] for r in rows), "max_ulp": max(r["max_ulp"] for r in rows)}


def torch_difference(engine_logits, torch_logits) -> dict:
    """How far the engine's logits are from PyTorch's forward pass on the same tokens: the
    largest absolute difference, the largest ulp distance (`ulp_distance`) and the size of
    the logit where it falls (ulps shrink toward zero), the logits compared and the largest
    |logit| (for scale). Not bits: the two sum in other orders."""
    from .. import engine as E
    a, b = np.asarray(engine_logits, np.float32), np.asarray(torch_logits, np.float32)
    ulps = E.ulp_distance(a, b).ravel()
    return {"logits": int(a.size), "max_abs": float(np.abs(a - b).max()), "max_ulp": int(ulps.max()),
            "max_ulp_logit": float(np.abs(b).ravel()[ulps.argmax()]), "largest_logit": float(np.abs(b).max())}


def torch_parity_60k(model, blob: bytes, tokens, window: int) -> dict:
    """`torch_difference` of the trained 60K model over `tokens`: its PyTorch forward pass
    against the engine running its blob (attention window at least the tokens: full context)."""
    import torch

    from .. import engine as E
    with torch.no_grad():
        idx = torch.from_numpy(np.asarray(tokens).astype(np.int64))[None]
        torch_logits = model.eval()(idx)[0].numpy()
    engine_logits = E.Engine(blob, window=max(window, len(tokens))).run(tokens)
    return torch_difference(engine_logits, torch_logits)


# -- the published 944K model --------------------------------------------------------------------


def published_greedy(blob_944k: bytes, reference: dict, window: int) -> dict:
    """The kit's reference case run through our engine: the greedy continuation, whether it
    equals the kit's, the gap between the two best logits at each step, the largest
    difference from PyTorch's forward pass of the published checkpoint, and where the
    8-bit path first departs (None: never)."""
    import torch

    from .. import engine as E
    from ..formats.published import load_routed_pt
    case = reference["cases"][0]
    got = E.Engine(blob_944k, window=window).generate(case["prompt"], 10_000, max_total=reference["max_total_tokens"])
    tokens = list(case["prompt"].encode()) + got
    logits = E.Engine(blob_944k, window=window).run(tokens[:-1])[len(case["prompt"]) - 1:]
    top2 = np.sort(logits, axis=1)[:, -2:]
    margin = top2[:, 1] - top2[:, 0]
    i8 = E.Engine(blob_944k, window=window, path="i8").generate(case["prompt"], len(got))
    first_i8_diff = next((i for i, (a, b) in enumerate(zip(i8, got)) if a != b), None)
    torch_model, _ = load_routed_pt()
    with torch.no_grad():
        torch_logits = torch_model(torch.tensor([tokens[:-1]]))[0, len(case["prompt"]) - 1:].numpy()
    torch_944k = torch_difference(logits, torch_logits)
    diff = torch_944k["max_abs"]
    return {"prompt": case["prompt"], "generated": got, "text": case["prompt"] + bytes(got).decode(),
            "same": got == case["generated_byte_ids"], "margin": margin, "min_margin": float(margin.min()),
            "min_margin_step": int(margin.argmin()), "torch_max_abs": diff,
            "torch_max_ulp": torch_944k["max_ulp"], "torch": torch_944k,
            "margin_over_difference": float(margin.min()) / max(diff, 1e-30),
            "i8_first_difference": first_i8_diff, "i8_text": case["prompt"] + bytes(i8).decode(errors="replace")}


def published_table(g: dict) -> tuple[list, list]:
    """(header, rows) of the published model's checks."""
    i8 = "never" if g["i8_first_difference"] is None else f"at token {g['i8_first_difference']}"
    rows = [["greedy tokens generated", len(g["generated"])],
            ["byte for byte equal to the kit's reference generation", yes_no(g["same"])],
            ["smallest gap between the best and second-best logit", f"{g['min_margin']:.4f}"],
            ["at greedy step", g["min_margin_step"]],
            ["largest difference from PyTorch's forward pass (logits)", f"{g['torch_max_abs']:.1e}"],
            ["the same, in units in the last place (largest)", f"{g['torch_max_ulp']:,}"],
            ["smallest gap over largest difference", f"{g['margin_over_difference']:,.0f}"],
            ["the 8-bit path departs from the float path's text", i8]]
    return ["check", "measured"], rows


def published_metrics(g: dict) -> dict:
    return {"published_greedy_equal": g["same"], "published_generated_tokens": len(g["generated"]),
            "published_min_top2_gap": g["min_margin"], "torch_vs_engine_944k_max_abs": g["torch_max_abs"],
            "torch_vs_engine_944k_max_ulp": g["torch_max_ulp"],
            "published_i8_first_difference": g["i8_first_difference"]}


# -- speed ---------------------------------------------------------------------------------------


def speed_table(speed: dict, contexts) -> tuple[list, list]:
    """(header, rows): tokens per second by context, incremental and recompute, both paths
    (recompute only where it was timed)."""
    header = ["context", "incremental f32", "incremental i8", "recompute f32", "recompute i8"]
    rows = []
    for c in contexts:
        rec = [f"{speed[('recompute', p, c)]:,.1f}" if ("recompute", p, c) in speed else "—" for p in ("f32", "i8")]
        rows.append([c, round(speed[("incremental", "f32", c)]), round(speed[("incremental", "i8", c)]), *rec])
    return header, rows


def speed_summary(speed: dict, context: int = SPEED_CONTEXT) -> dict:
    """The speeds the prose quotes at `context` tokens, and how the gain over the kit's
    reported figure splits into incremental decode and arithmetic."""
    needed = [("incremental", "f32", context), ("incremental", "i8", context), ("recompute", "f32", context)]
    missing = [k for k in needed if k not in speed]
    if missing:
        raise ValueError(f"the speed section quotes {context} tokens of context; not timed: {missing}")
    incremental, recompute = speed[needed[0]], speed[needed[2]]
    kit = KIT_TOKENS_PER_SECOND[context]
    return {"incremental_f32": incremental, "incremental_i8": speed[needed[1]], "recompute_f32": recompute,
            "kit": kit, "over_kit": incremental / kit, "incremental_factor": incremental / recompute,
            "arithmetic_factor": recompute / kit}


def speed_metrics(speed: dict, bench_name: str) -> dict:
    return {"bench_model": bench_name, "tokens_per_second": {f"{m}_{p}_{c}": v for (m, p, c), v in speed.items()},
            "tokens_per_second_128_f32": speed.get(("incremental", "f32", 128))}


def claims(parity: dict, bench_name: str, speed: dict, torch_60k: dict, torch_944k: dict | None,
           context: int = SPEED_CONTEXT) -> dict:
    """key -> (value, unit, reason) of the intro's claims table: parity with our reference
    over every run; the engine against PyTorch's forward pass (`torch_difference`) of the
    trained 60K model and of the published 944K one (None: not measured, with the reason);
    the decode speed at `context` tokens, recomputing the prefix and incrementally, timed
    side by side on this machine."""
    out = {"parity_all_bits_equal": (parity["all_bits_equal"], "", None),
           "parity_max_ulp": (parity["max_ulp"], "ulp", None),
           "parity_logits": (parity["logits"], "logits", None),
           "bench_model": (bench_name, "", None)}
    for size, diff in (("60k", torch_60k), ("944k", torch_944k)):
        reason = None if diff is not None else "the published 944K model (../shared/interop) is absent"
        out[f"torch_{size}_max_abs"] = (diff and diff["max_abs"], "largest |engine - PyTorch| logit", reason)
        out[f"torch_{size}_max_ulp"] = (diff and diff["max_ulp"], "ulp", reason)
    for key, mode in (("recompute_tokens_per_second", "recompute"), ("incremental_tokens_per_second", "incremental")):
        value = speed.get((mode, "f32", context))
        reason = None if value is not None else f"{mode} decode was not timed at {context} tokens in this profile"
        out[key] = (value, "tokens per second", reason)
    return out


# -- hostile input -------------------------------------------------------------------------------


def malformed_verdicts() -> list:
    """(case, agree, Python reader's verdict, C loader's verdict) for every malformed file."""
    from .. import engine as E
    return [(name, *E.same_verdict(blob, cfg)) for name, blob, cfg in E.malformed_cases()]


def verdict_table(verdicts: list) -> tuple[list, list]:
    return (["malformed file", "Python reader", "C loader", "agree"],
            [[name, f"`{py}`", f"`{c}`", "yes" if ok else "NO"] for name, ok, py, c in verdicts])


def run_fuzzer(seconds: int) -> tuple[dict | None, str]:
    """(libFuzzer's final stats plus "crashes", its log) after `seconds` of fuzzing the
    loaders and step(); (None, the build log) when the fuzz target does not build."""
    from .. import engine as E
    build = subprocess.run(["make", "-s", "-C", str(E.ENGINE_DIR), "build/fuzz_blob", "build/fuzz_corpus"],
                           capture_output=True, text=True)
    if build.returncode != 0:
        return None, build.stdout + build.stderr
    out = subprocess.run([str(E.ENGINE_DIR / "build" / "fuzz_blob"), f"-max_total_time={seconds}", "-max_len=8192",
                          "-print_final_stats=1", f"-artifact_prefix={E.ENGINE_DIR / 'build'}/",
                          str(E.ENGINE_DIR / "build" / "fuzz_corpus")], capture_output=True, text=True)
    log = out.stdout + out.stderr
    return fuzz_stats(log, out.returncode), log


def fuzz_stats(log: str, returncode: int) -> dict:
    """libFuzzer's `stat::name: value` lines, and crashes = 1 when it failed or reported an ERROR."""
    stats = {k: int(v) for k, v in re.findall(r"stat::(\w+):\s+(\d+)", log)}
    stats["crashes"] = int(returncode != 0 or "ERROR:" in log)
    return stats


def fuzz_table(seconds: int, stats: dict | None) -> tuple[list, list]:
    header = ["seconds of fuzzing", "executions", "crashes", "peak memory (MB)"]
    if stats is None:
        return header, [[seconds, "not built", "—", "—"]]
    return header, [[seconds, stats.get("number_of_executed_units", 0), stats["crashes"], stats.get("peak_rss_mb", 0)]]


# -- sizes ---------------------------------------------------------------------------------------


def state_table(sizes: list) -> tuple[list, list]:
    return ["model", "window", "path", "state bytes", "scratch bytes"], [list(r) for r in sizes]


def state_of(sizes: list) -> dict:
    """(model, window, path) -> state bytes."""
    return {(n, w, p): s for n, w, p, s, _ in sizes}
