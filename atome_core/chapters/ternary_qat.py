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
