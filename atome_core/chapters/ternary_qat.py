"""Chapter 2's experiments: what ternary weights (and 8-bit activations) cost, and how
the trits behave while a model trains.

A model factory `make_model(quant: QuantConfig) -> nn.Module` builds the same
architecture in each precision mode, so one function compares FP32, ternary
weights, and ternary weights with 8-bit activations under identical seeds.

Every run trains with the book's recipe (atome_core.recipe.book_config). Each mode's
learning rate is the best of a sweep (`sweep_models`) trained on the training split less
its last bytes and scored on those bytes (recipe.tuning_split), never on the validation
text; 8-bit activations train at the rate ternary weights chose (`mode_rates`).
"""
import copy
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from ..ledger import RunShape, run_shape
from ..quant import (
    QuantConfig,
    TritFlipCounter,
    export_trits,
    ternary_layers,
    trit_statistics,
)
from ..recipe import KIT_LR, book_config, book_tokens, rate_at_edge
from ..train import TrainConfig, train

MODES = {
    "fp32": QuantConfig(weights="fp32", act_bits=32),
    "ternary": QuantConfig(weights="ternary", act_bits=32),
    "ternary+int8": QuantConfig(weights="ternary", act_bits=8),
}
SWEEP_MODES = ("fp32", "ternary")   # the modes a rate is swept for (8-bit activations take ternary's)


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
                  track_seed: int | None = None, desc: str = "", rates: dict | None = None) -> list[QATRun]:
    """Every mode x seed, each mode at its rate in `rates` ({mode: lr}; default cfg.lr); trit
    statistics are tracked for `track_seed` only (they cost time)."""
    runs = []
    for seed in seeds:
        for mode in modes:
            lr = (rates or {}).get(mode, cfg.lr)
            run = train_mode(make_model, mode, train_tokens, val_tokens, replace(cfg, seed=seed, lr=lr),
                             track_trits=(seed == track_seed), desc=f"{desc} {mode} seed {seed}")
            runs.append(run)
    return runs


def lr_sweep(make_model, train_tokens, tune_tokens, steps: int, lrs, modes=SWEEP_MODES,
             seed: int = 0, desc: str = "") -> dict:
    """{mode: {lr: loss on tune_tokens}}: the book's recipe for `steps` at every rate."""
    scores = {mode: {} for mode in modes}
    for lr in lrs:
        for mode in modes:
            run = train_mode(make_model, mode, train_tokens, tune_tokens, book_config(steps, lr, seed),
                             desc=f"{desc} {mode} lr {lr:g}")
            scores[mode][lr] = run.final_val_loss
    return scores


def sweep_models(steps: dict, sweep_tokens, tune_tokens, lrs, seed: int = 0) -> dict:
    """{model: {mode: {lr: tuning nats per byte}}}: each model swept at its own steps."""
    return {name: lr_sweep(routed_factory(MODEL_SHAPES[name]), sweep_tokens, tune_tokens, n, lrs, seed=seed,
                           desc=f"{name} lr sweep")
            for name, n in steps.items()}


def mode_rates(best: dict) -> dict:
    """{mode: lr} for every mode from the sweep's best ({mode: lr} for fp32 and ternary):
    ternary weights with 8-bit activations train at the rate ternary weights chose."""
    return {"fp32": best["fp32"], "ternary": best["ternary"], "ternary+int8": best["ternary"]}


def sweep_rows(sweeps: dict, rates: dict) -> tuple[list, list]:
    """The sweeps as a table: tuning nats per byte per rate, and the chosen rate, marked
    "(edge of the sweep)" when it is the smallest or largest tried (the best may lie beyond)."""
    lrs = sorted({lr for per_mode in sweeps.values() for scores in per_mode.values() for lr in scores})
    rows = [[name, mode] + [scores.get(lr) for lr in lrs]
            + [f"{rates[name][mode]:g}" + (" (edge of the sweep)" if rate_at_edge(scores) else "")]
            for name, per_mode in sweeps.items() for mode, scores in per_mode.items()]
    return ["model", "mode"] + [f"lr {lr:g}" for lr in lrs] + ["chosen"], rows


def edge_sentence(sweeps: dict) -> str:
    """Which chosen rates lie at the edge of their sweep, in words."""
    edges = [f"{mode} on the {name} model" for name, per_mode in sweeps.items()
             for mode, scores in per_mode.items() if rate_at_edge(scores)]
    if not edges:
        return "Every chosen rate lies inside its sweep."
    if len(edges) == 1:
        return (f"The chosen rate of {edges[0]} lies at the edge of its sweep: a rate beyond the ones "
                "tried may be better, so that mode may be under-tuned here.")
    return (f"The chosen rates of {', '.join(edges[:-1])} and {edges[-1]} lie at the edges of their sweeps: "
            "rates beyond the ones tried may be better, so those modes may be under-tuned here.")


def compare_models(steps: dict, train_tokens, val_tokens, seeds, rates: dict) -> dict:
    """{model name: compare_modes runs}: each model with its own number of steps and its
    modes' rates (`rates`: {model: {mode: lr}}), the book's recipe; trits are tracked for
    the first seed."""
    return {name: compare_modes(routed_factory(MODEL_SHAPES[name]), train_tokens, val_tokens,
                                book_config(n, rates[name]["fp32"], seeds[0]), seeds=seeds, track_seed=seeds[0],
                                desc=name, rates=rates[name])
            for name, n in steps.items()}


def budget_sentence(steps_60k: int, book_steps: int, runs: list) -> str:
    """Why the 60K comparison trains `steps_60k` steps, in words: the book's budget, or what
    the book's budget would have cost at the speed these `runs` trained."""
    if steps_60k >= book_steps:
        return f"The 60K comparison trains the book's budget for this profile, {steps_60k:,} steps."
    rate = float(np.median([r.tokens_per_second for r in runs]))
    seconds = len(runs) * book_tokens(book_steps) / rate
    return (f"The book's budget for this profile is {book_steps:,} steps; the 60K comparison trains "
            f"{steps_60k:,}, because its {len(runs)} runs at {book_steps:,} steps would take about "
            f"{seconds:,.0f} s at the speed measured here ({rate:,.0f} training bytes per second and run), "
            "more than this chapter's share of the build. The curves below show whether the ranking "
            "still moves at the end.")


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
                     "max": float(losses.max()), "n_seeds": len(losses),
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


def model_steps(steps_small: int, steps_60k: int) -> dict:
    """{model name: its optimizer steps}, for its sweep and its runs alike."""
    return {"atto-sized": steps_small, "60K": steps_60k}


def routed_config(overrides: dict, quant: QuantConfig):
    """The RoutedConfig of a routed model with these overrides, in the precision `quant`."""
    from ..models.routed import RoutedConfig
    return RoutedConfig(quant=quant, **overrides)


def routed_factory(overrides: dict):
    """make_model(quant) for the routed model with these RoutedConfig overrides."""
    from ..models.routed import RoutedLM
    return lambda quant: RoutedLM(routed_config(overrides, quant))


def training_plan(P) -> list[RunShape]:
    """Every training run the chapter's notebook starts under parameters `P`, in its order:
    every model's sweep (`sweep_models`: every rate in P.sweep_lrs x SWEEP_MODES at the model's
    steps, seed P.seeds[0]), then every model's comparison (`compare_models`: seed x mode). All
    train the book's recipe on the CPU; the rates, which come from the sweep, do not change a
    run's shape (the plan gives the comparison the kit's rate in their place)."""
    from ..models.routed import RoutedLM

    def shape(name, mode, cfg):
        return run_shape(RoutedLM, routed_config(MODEL_SHAPES[name], MODES[mode]), cfg)

    steps = model_steps(P.steps_small, P.steps_60k)
    sweeps = [shape(name, mode, book_config(n, lr, P.seeds[0]))
              for name, n in steps.items() for lr in P.sweep_lrs for mode in SWEEP_MODES]
    runs = [shape(name, mode, book_config(n, KIT_LR, seed))
            for name, n in steps.items() for seed in P.seeds for mode in MODES]
    return sweeps + runs


def parameter_rows(steps: dict) -> list:
    """model, parameters (ternary mode), training steps; `steps` maps each model to its steps."""
    return [[name, routed_factory(MODEL_SHAPES[name])(MODES["ternary"]).num_params(), n] for name, n in steps.items()]


def gaussian_zero_fraction() -> tuple[float, float]:
    """(threshold in standard deviations, expected fraction of zero trits) for Gaussian
    weights: alpha = E|W| = sigma sqrt(2/pi), a trit is zero when |W| < alpha / 2."""
    import math
    threshold_sd = math.sqrt(2 / math.pi) / 2
    return threshold_sd, math.erf(threshold_sd / math.sqrt(2))


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
    entropy (bits per trit), and the fraction that flipped per step over the interval
    before it."""
    final = trit_log[-1]["layers"]
    n_total = sum(s["n"] for s in final.values())
    return {"step": trit_log[-1]["step"], "n_trits": n_total,
            "p0_weighted": sum(s["p0"] * s["n"] for s in final.values()) / n_total,
            "entropy_bits_weighted": sum(s["entropy_bits"] * s["n"] for s in final.values()) / n_total,
            "flip_fraction_per_step": sum(s["flips_per_step"] for s in final.values()) / n_total,
            "per_layer_final": final}


def learning_rate_verdict(best: dict) -> str:
    """Whether ternary preferred a higher rate than FP32 in the sweep ({mode: lr}), in words."""
    if best["ternary"] > best["fp32"]:
        return "Ternary does prefer the higher rate here."
    if best["ternary"] < best["fp32"]:
        return "Here ternary does not prefer a higher rate than FP32."
    return "Both prefer the same rate in this sweep."


def sweep_metrics(sweeps: dict, rates: dict) -> dict:
    return {"lr_sweep": {name: {mode: {f"{lr:g}": v for lr, v in scores.items()} for mode, scores in per_mode.items()}
                         for name, per_mode in sweeps.items()},
            "lr_chosen": rates,
            "lr_at_edge": {name: {mode: rate_at_edge(scores) for mode, scores in per_mode.items()}
                           for name, per_mode in sweeps.items()}}


def loss_by_tokens(runs: list, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """(training bytes, smoothed training loss per seed) of one mode's runs: the loss
    against training tokens, each record's loss the mean over its logging interval."""
    mine = [r for r in runs if r.mode == mode]
    curves = np.array([smooth([h["train_loss"] for h in r.history]) for r in mine])
    tokens = np.array([h["tokens_seen"] for h in mine[0].history], dtype=float)
    shift = (len(tokens) - curves.shape[1]) // 2          # a centred moving average
    return tokens[shift: shift + curves.shape[1]], curves


def deployed_gaps(runs: dict, probe: torch.Tensor) -> list:
    """[(model, mode, seed, deployed_forward_gap)] for every trained run with ternary weights."""
    return [(name, r.mode, r.seed, deployed_forward_gap(r.model, probe))
            for name, model_runs in runs.items() for r in model_runs if MODES[r.mode].weights == "ternary"]
