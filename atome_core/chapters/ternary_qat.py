"""Chapter 2's experiments: what ternary weights (and 8-bit activations) cost, and how
the trits behave while a model trains.

A model factory `make_model(quant: QuantConfig) -> nn.Module` builds the same
architecture in each precision mode, so one function compares FP32, ternary
weights, and ternary weights with 8-bit activations under identical seeds.
"""
import copy
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from ..quant import (
    QuantConfig,
    TritFlipCounter,
    export_trits,
    ternary_layers,
    trit_statistics,
)
from ..train import TrainConfig, train

MODES = {
    "fp32": QuantConfig(weights="fp32", act_bits=32),
    "ternary": QuantConfig(weights="ternary", act_bits=32),
    "ternary+int8": QuantConfig(weights="ternary", act_bits=8),
}


@dataclass
class QATRun:
    mode: str
    seed: int
    lr: float
    history: list                     # the trainer's records (step, train_loss, val_loss, ...)
    final_val_loss: float             # nats per token, whole validation split
    tokens_per_second: float
    trit_log: list = field(default_factory=list)   # per logged step: {step, layers: {name: stats + flips}}
    model: torch.nn.Module | None = None


def train_mode(make_model, mode: str, train_tokens, val_tokens, cfg: TrainConfig,
               track_trits: bool = False, desc: str = "") -> QATRun:
    """Train one model in `mode`; with track_trits, record per-layer trit statistics and
    the number of trits that flipped since the previous record, at every logged step."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose from {list(MODES)}")
    torch.manual_seed(cfg.seed)      # same initial FP32 weights in every mode
    model = make_model(MODES[mode])
    trit_log = []
    counter = TritFlipCounter(model) if track_trits and MODES[mode].weights == "ternary" else None
    last_step = [0]

    def record(step, rec):
        if counter is None:
            return
        flips = counter.update()
        stats = trit_statistics(model)
        steps_since = step - last_step[0]
        last_step[0] = step
        for name, s in stats.items():
            s["flips"] = flips[name]
            s["flips_per_step"] = flips[name] / max(steps_since, 1)
        trit_log.append({"step": step, "layers": stats})

    result = train(model, train_tokens, val_tokens, cfg, progress_desc=desc or mode, callback=record)
    return QATRun(mode=mode, seed=cfg.seed, lr=cfg.lr, history=result.history,
                  final_val_loss=result.final_val_loss, tokens_per_second=result.tokens_per_second,
                  trit_log=trit_log, model=model)


def compare_modes(make_model, train_tokens, val_tokens, cfg: TrainConfig, seeds, modes=tuple(MODES),
                  track_seed: int | None = None, desc: str = "") -> list[QATRun]:
    """Every mode x seed; trit statistics are tracked for `track_seed` only (they cost time)."""
    runs = []
    for seed in seeds:
        for mode in modes:
            run = train_mode(make_model, mode, train_tokens, val_tokens, replace(cfg, seed=seed),
                             track_trits=(seed == track_seed), desc=f"{desc} {mode} seed {seed}")
            runs.append(run)
    return runs


def lr_sweep(make_model, train_tokens, val_tokens, cfg: TrainConfig, lrs, modes=("fp32", "ternary"),
             seed: int = 0, desc: str = "") -> list[QATRun]:
    return [train_mode(make_model, mode, train_tokens, val_tokens, replace(cfg, lr=lr, seed=seed),
                       desc=f"{desc} {mode} lr {lr:g}")
            for lr in lrs for mode in modes]


@torch.no_grad()
def deployed_model(model: torch.nn.Module) -> torch.nn.Module:
    """A copy whose ternary layers hold trit * scale as plain FP32 weights (what an engine
    reconstructs from the exported integers) and no longer quantise their weights."""
    deployed = copy.deepcopy(model)
    exported = export_trits(model)
    for name, layer in ternary_layers(deployed).items():
        if name in exported:
            trits, scale = exported[name]
            layer.weight.copy_(trits.float() * scale)
            layer.quant = replace(layer.quant, weights="fp32")
    return deployed


@torch.no_grad()
def deployed_forward_gap(model: torch.nn.Module, idx: torch.Tensor) -> dict:
    """Training forward vs the forward of the model rebuilt from exported trits and scales."""
    model.eval()
    a = model(idx)
    b = deployed_model(model)(idx)
    a32, b32 = a.float().contiguous(), b.float().contiguous()
    differing = int((a32.view(torch.int32) != b32.view(torch.int32)).sum())
    return {"max_abs_diff": float((a32 - b32).abs().max()), "differing_logits": differing,
            "n_logits": a32.numel(), "bit_identical": differing == 0}


def summarise(runs: list[QATRun]) -> dict:
    """Median, min and max of the final validation loss per mode."""
    out = {}
    for mode in dict.fromkeys(r.mode for r in runs):
        losses = np.array([r.final_val_loss for r in runs if r.mode == mode])
        out[mode] = {"median": float(np.median(losses)), "min": float(losses.min()),
                     "max": float(losses.max()), "n_seeds": int(len(losses)),
                     "per_seed": {int(r.seed): r.final_val_loss for r in runs if r.mode == mode}}
    return out


# -----------------------------------------------------------------------------
# the chapter: two routed models on Shakespeare bytes, every mode, every seed

# name -> RoutedConfig overrides: an atto-sized model (~9K parameters) and the kit's 60K default
MODEL_SHAPES = {"atto-sized": dict(d_model=16, n_layers=1, d_head=8), "60K": dict()}
GLUE_PREFIX = {"atto-sized": "atto", "60K": "k60"}   # names in the chapter's prose


def byte_splits(val_bytes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Shakespeare as bytes: (training split, the first val_bytes of the validation split)."""
    from .. import data
    corpus = data.load_corpus("shakespeare")
    return data.encode_bytes(corpus.train), data.encode_bytes(corpus.val)[:val_bytes]


def routed_factory(overrides: dict):
    """make_model(quant) for the routed model with these RoutedConfig overrides."""
    from ..models.routed import RoutedConfig, RoutedLM
    return lambda quant: RoutedLM(RoutedConfig(quant=quant, **overrides))


def parameter_rows(steps: dict) -> list:
    """model, parameters (ternary mode), training steps; `steps` maps each model to its steps."""
    return [[name, routed_factory(MODEL_SHAPES[name])(MODES["ternary"]).num_params(), n] for name, n in steps.items()]


def gaussian_zero_fraction() -> tuple[float, float]:
    """(threshold in standard deviations, expected fraction of zero trits) for Gaussian
    weights: alpha = E|W| = sigma sqrt(2/pi), a trit is zero when |W| < alpha / 2."""
    import math
    threshold_sd = math.sqrt(2 / math.pi) / 2
    return threshold_sd, math.erf(threshold_sd / math.sqrt(2))


def compare_models(steps: dict, train_tokens, val_tokens, cfg: TrainConfig, seeds) -> dict:
    """{model name: compare_modes runs}, each model with its own number of steps; trits are
    tracked for the first seed."""
    return {name: compare_modes(routed_factory(MODEL_SHAPES[name]), train_tokens, val_tokens,
                                replace(cfg, steps=n), seeds=seeds, track_seed=seeds[0], desc=name)
            for name, n in steps.items()}


def smooth(y, k: int = 25) -> np.ndarray:
    """Moving average over k points ('valid' part only), k at most a fifth of the series."""
    y = np.asarray(y, dtype=float)
    k = max(1, min(k, len(y) // 5 or 1))
    return np.convolve(y, np.ones(k) / k, mode="valid")


def summary_rows(summary: dict) -> list:
    """model, mode, validation nats/byte (median [min, max]), bits/byte (median), change
    against FP32; `summary` is {model: summarise(runs)}."""
    rows = []
    for name, per_mode in summary.items():
        ref = per_mode["fp32"]["median"]
        for mode, s in per_mode.items():
            stat = {"median": s["median"], "min": s["min"], "max": s["max"], "n": s["n_seeds"]}
            rows.append([name, mode, stat, s["median"] / np.log(2), f"{100 * (s['median'] / ref - 1):+.1f} %"])
    return rows


def mode_costs(per_mode: dict) -> dict:
    """Medians per mode and what ternary weights cost against FP32, and 8-bit activations
    against ternary weights alone, in percent of the validation loss."""
    f, t, t8 = (per_mode[m]["median"] for m in ("fp32", "ternary", "ternary+int8"))
    return {"fp32": f, "ternary": t, "int8": t8, "ternary_cost_pct": 100 * (t / f - 1),
            "int8_cost_pct": 100 * (t8 / t - 1)}


def tracked_run(runs: list, seed: int) -> QATRun:
    """The ternary run of `seed` (the one whose trits were tracked)."""
    return next(r for r in runs if r.mode == "ternary" and r.seed == seed)


def layer_series(trit_log: list, layer: str, key: str) -> list:
    return [rec["layers"][layer][key] for rec in trit_log]


def trit_summary(trit_log: list) -> dict:
    """The last record's statistics weighted by each layer's number of trits: zero fraction,
    entropy (bits per trit), and the fraction that flipped since the record before."""
    final = trit_log[-1]["layers"]
    n_total = sum(s["n"] for s in final.values())
    return {"step": trit_log[-1]["step"], "n_trits": n_total,
            "p0_weighted": sum(s["p0"] * s["n"] for s in final.values()) / n_total,
            "entropy_bits_weighted": sum(s["entropy_bits"] * s["n"] for s in final.values()) / n_total,
            "flip_fraction_last_step": sum(s["flips"] for s in final.values()) / n_total,
            "per_layer_final": final}


def best_learning_rates(sweep: list, modes=("fp32", "ternary")) -> dict:
    """{mode: (lr, validation loss)} of the lowest loss in the sweep (the lower rate on a tie)."""
    return {mode: min(sorted((r.lr, r.final_val_loss) for r in sweep if r.mode == mode), key=lambda p: p[1])
            for mode in modes}


def learning_rate_verdict(best: dict) -> str:
    """Whether ternary preferred a higher rate than FP32 in the sweep, in words."""
    if best["ternary"][0] > best["fp32"][0]:
        return "Ternary does prefer the higher rate here."
    if best["ternary"][0] < best["fp32"][0]:
        return "Here ternary does not prefer a higher rate than FP32."
    return "Both prefer the same rate in this sweep."


def sweep_metrics(sweep: list, modes=("fp32", "ternary")) -> dict:
    best = best_learning_rates(sweep, modes)
    return {"lr_sweep": {mode: {f"{r.lr:g}": r.final_val_loss for r in sweep if r.mode == mode} for mode in modes},
            "lr_best": {m: {"lr": b[0], "val_nats_per_byte": b[1]} for m, b in best.items()}}


def deployed_gaps(runs: dict, probe: torch.Tensor) -> list:
    """[(model, mode, seed, deployed_forward_gap)] for every trained run with ternary weights."""
    return [(name, r.mode, r.seed, deployed_forward_gap(r.model, probe))
            for name, model_runs in runs.items() for r in model_runs if MODES[r.mode].weights == "ternary"]
