"""The size ladder of chapter 5: three model families at ~15K, 60K, 240K and 944K parameters.

Each rung is named by its nominal size; the routed-ternary model sets the count and the
two FP32 baselines are sized to within 1 % of it (exact counts: `ladder_table()`).
The 60K and 944K routed models are the kit's own shapes (60,800 and 944,640
parameters); the 944K vanilla model is the kit's published baseline (950,608).
Every model can read 256 bytes of context: the vanilla GPT's position table has 256
rows at every rung (so its counts include them), as in the kit's 944K baseline.

One cell of the ladder = (family, size, token budget, seed): `train_cell` trains it
with a recipe (`CPU_RECIPE`, or `PAPER_RECIPE`: the kit's 944K recipe, BF16 autocast
on CUDA) and returns its validation bits per byte, its parameter count and its
deployed bytes (routed: the real ATMB blob of atome_core.formats; baselines: FP32).
"""
import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import torch

from .evaluate import deployed_bytes   # one definition for chapters 4 and 5
from .models.modern import ModernConfig, ModernLM
from .models.routed import RoutedConfig, RoutedLM
from .models.vanilla import VanillaConfig, VanillaGPT
from .train import TrainConfig, TrainJob, run_job

SIZES = ("15k", "60k", "240k", "944k")
FAMILIES = ("routed", "vanilla", "modern")
CONTEXT = 256   # bytes of context every ladder model handles (the kit's 944K sequence length)

# The routed shapes keep the kit's d_head = d_model / 4; the baselines keep their own
# layouts (vanilla: 4 heads, 3 layers, d_ff ~ 4 d; modern: 3 query heads on 1 kv head,
# 3 layers, SwiGLU hidden ~ 2.5 d) and were sized by a search over d_model and d_ff.
LADDER = {
    ("routed", "15k"): RoutedConfig(d_model=24, n_layers=2, d_head=6),           # 14,688
    ("routed", "60k"): RoutedConfig(d_model=64, n_layers=4, d_head=16),          # 60,800 (kit default)
    ("routed", "240k"): RoutedConfig(d_model=144, n_layers=5, d_head=36),        # 238,896
    ("routed", "944k"): RoutedConfig(d_model=256, n_layers=8, d_head=64),        # 944,640 (published)
    ("vanilla", "15k"): VanillaConfig(d_model=12, n_layers=3, n_heads=4, d_ff=48, max_seq=CONTEXT),
    ("vanilla", "60k"): VanillaConfig(d_model=32, n_layers=3, n_heads=4, d_ff=124, max_seq=CONTEXT),
    ("vanilla", "240k"): VanillaConfig(d_model=72, n_layers=3, n_heads=4, d_ff=280, max_seq=CONTEXT),
    ("vanilla", "944k"): VanillaConfig(d_model=152, n_layers=3, n_heads=4, d_ff=608, max_seq=CONTEXT),  # published
    ("modern", "15k"): ModernConfig(d_model=18, n_layers=3, d_ff=46),
    ("modern", "60k"): ModernConfig(d_model=42, n_layers=3, d_ff=94),             # chapter 4's modern model
    ("modern", "240k"): ModernConfig(d_model=84, n_layers=3, d_ff=212),
    ("modern", "944k"): ModernConfig(d_model=174, n_layers=3, d_ff=420),
}
MODEL_CLASSES = {"routed": RoutedLM, "vanilla": VanillaGPT, "modern": ModernLM}


def check_cell(family: str, size: str) -> None:
    if family not in FAMILIES:
        raise ValueError(f"unknown model family {family!r}; choose one of {', '.join(FAMILIES)}")
    if size not in SIZES:
        raise ValueError(f"unknown ladder size {size!r}; choose one of {', '.join(SIZES)}")


def ladder_config(family: str, size: str):
    """The config dataclass of one rung (a copy: callers may change it freely)."""
    check_cell(family, size)
    return dataclasses.replace(LADDER[(family, size)])


def build_model(family: str, size: str, init_seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(init_seed)
    return MODEL_CLASSES[family](ladder_config(family, size))


def count_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def ladder_table(sizes=SIZES, families=FAMILIES) -> list[dict]:
    """One row per (size, family): config, exact parameters, gap to the routed model, deployed bytes."""
    rows = []
    for size in sizes:
        routed_params = count_params(build_model("routed", size))
        for family in families:
            model = build_model(family, size)
            n = count_params(model)
            rows.append({"size": size, "family": family, "params": n,
                         "gap_to_routed": (n - routed_params) / routed_params,
                         "deployed": deployed_bytes(model),
                         "config": dataclasses.asdict(model.cfg)})
    return rows


# -----------------------------------------------------------------------------
# recipes

@dataclass(frozen=True)
class Recipe:
    batch_size: int
    grad_accum: int
    seq_len: int
    lr: float
    min_lr: float
    warmup_steps: int
    weight_decay: float
    betas: tuple
    grad_clip: float
    bf16_on_cuda: bool

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.grad_accum * self.seq_len


# The kit's 944K recipe: 30,000 steps of 64 x 4 windows of 256 bytes (1,966,080,000
# tokens), AdamW (0.9, 0.95), lr 3e-4 cosine to 3e-5 after 1,000 warmup steps,
# weight decay 0.1, gradient clipping at 1.0, BF16 autocast.
PAPER_RECIPE = Recipe(batch_size=64, grad_accum=4, seq_len=256, lr=3e-4, min_lr=3e-5, warmup_steps=1000,
                      weight_decay=0.1, betas=(0.9, 0.95), grad_clip=1.0, bf16_on_cuda=True)
PAPER_TOKENS = 30_000 * PAPER_RECIPE.tokens_per_step
# The same shape scaled to what 2 cores do in minutes: a few hundred steps of 8 windows,
# so a higher peak learning rate (one for every family: none is tuned for) and a short warmup.
CPU_RECIPE = Recipe(batch_size=8, grad_accum=1, seq_len=256, lr=2e-3, min_lr=2e-4, warmup_steps=20,
                    weight_decay=0.1, betas=(0.9, 0.95), grad_clip=1.0, bf16_on_cuda=False)
RECIPES = {"cpu": CPU_RECIPE, "paper": PAPER_RECIPE}


def get_recipe(recipe) -> Recipe:
    if isinstance(recipe, Recipe):
        return recipe
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; choose one of {', '.join(RECIPES)}")
    return RECIPES[recipe]


def pick_device(device: str = "auto") -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but torch sees no CUDA GPU")
    return device


def steps_for(tokens: int, recipe: Recipe) -> int:
    """Optimizer steps that spend the token budget (at least one)."""
    if not isinstance(tokens, (int, np.integer)) or tokens < 1:
        raise ValueError(f"token budget must be a positive integer, got {tokens!r}")
    return max(1, round(tokens / recipe.tokens_per_step))


def train_config(recipe, tokens: int, seed: int, device: str = "auto", eval_every: int = 0) -> TrainConfig:
    recipe = get_recipe(recipe)
    device = pick_device(device)
    steps = steps_for(tokens, recipe)
    return TrainConfig(steps=steps, batch_size=recipe.batch_size, seq_len=recipe.seq_len, lr=recipe.lr,
                       schedule="cosine", min_lr=recipe.min_lr,
                       # a short trial run (tests, the CLI) warms up for at most a tenth of its steps
                       warmup_steps=min(recipe.warmup_steps, steps // 10),
                       weight_decay=recipe.weight_decay, betas=recipe.betas, grad_clip=recipe.grad_clip,
                       grad_accum=recipe.grad_accum, seed=seed, device=device,
                       autocast_bf16=recipe.bf16_on_cuda and device.startswith("cuda"),
                       eval_every=eval_every, log_every=max(1, steps // 50))


def cell_name(family: str, size: str, seed: int) -> str:
    return f"{family}|{size}|{seed}"


def cell_job(family: str, size: str, tokens: int, seed: int, train_tokens, val_tokens,
             recipe="cpu", device: str = "auto", eval_every: int = 0) -> TrainJob:
    """A TrainJob for one ladder cell (for atome_core.train.run_jobs: many cells in parallel)."""
    check_cell(family, size)
    cfg = train_config(recipe, tokens, seed, device, eval_every)
    if len(val_tokens) < cfg.seq_len + 1:
        raise ValueError(f"{len(val_tokens)} validation bytes are too few for one {cfg.seq_len}-byte window")
    return TrainJob(name=cell_name(family, size, seed), model_class=MODEL_CLASSES[family],
                    model_config=ladder_config(family, size), train_tokens=np.asarray(train_tokens),
                    val_tokens=np.asarray(val_tokens), cfg=cfg, init_seed=seed,
                    # on a GPU let torch use the CPU threads it likes; on CPU one per run
                    threads=None if cfg.device.startswith("cuda") else 1)


def cell_result(job: TrainJob, result) -> dict:
    """Summary of a finished cell (a JobResult of run_jobs)."""
    family, size, seed = job.name.split("|")
    model = MODEL_CLASSES[family](job.model_config)
    model.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in result.state_dict.items()})
    return {"family": family, "size": size, "seed": int(seed), "params": result.num_params,
            "deployed": deployed_bytes(model), "steps": job.cfg.steps,
            "tokens": job.cfg.steps * job.cfg.batch_size * job.cfg.seq_len * job.cfg.grad_accum,
            "val_nats_per_byte": result.final_val_loss, "val_bpb": result.final_val_loss / math.log(2),
            "train_seconds": result.train_seconds, "tokens_per_second": result.tokens_per_second,
            "history": result.history}


def train_cell(family: str, size: str, tokens: int, seed: int, train_tokens, val_tokens,
               recipe="cpu", device: str = "auto") -> tuple[dict, torch.nn.Module]:
    """Train one ladder cell in this process: (summary dict, trained model in eval mode)."""
    job = cell_job(family, size, tokens, seed, train_tokens, val_tokens, recipe, device)
    result = run_job(job)
    summary = cell_result(job, result)
    model = MODEL_CLASSES[family](job.model_config)
    model.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in result.state_dict.items()})
    return summary, model.eval()


# -----------------------------------------------------------------------------
# the crossover

def median_by_cell(cells: list[dict], key: str = "val_bpb") -> dict:
    """(family, size) -> {"median", "min", "max", "n"} over seeds."""
    grouped = {}
    for c in cells:
        grouped.setdefault((c["family"], c["size"]), []).append(c[key])
    return {k: {"median": float(np.median(v)), "min": float(np.min(v)), "max": float(np.max(v)), "n": len(v)}
            for k, v in grouped.items()}


def crossover(xs, a, b) -> list[dict]:
    """Where curve a stops beating curve b (or starts), lower being better.

    xs: increasing positive sizes (parameters or bytes); a, b: their values at each.
    Returns one entry per sign change of a - b between consecutive points, with the
    crossing point interpolated linearly in log(x): {"between": (x0, x1), "at": x,
    "a_better_below": bool}. An empty list: no crossing within the range.
    """
    xs, a, b = (np.asarray(v, dtype=float) for v in (xs, a, b))
    if not (len(xs) == len(a) == len(b)):
        raise ValueError("xs, a and b must have the same length")
    if len(xs) and (np.any(xs <= 0) or np.any(np.diff(xs) <= 0)):
        raise ValueError("xs must be positive and strictly increasing")
    diff = a - b
    out = []
    for i in range(len(xs) - 1):
        d0, d1 = diff[i], diff[i + 1]
        if d0 == 0 or np.sign(d0) == np.sign(d1):
            continue
        frac = d0 / (d0 - d1)                   # where the line through (log x, diff) is zero
        lx = np.log(xs[i]) + frac * (np.log(xs[i + 1]) - np.log(xs[i]))
        out.append({"between": (float(xs[i]), float(xs[i + 1])), "at": float(np.exp(lx)),
                    "a_better_below": bool(d0 < 0)})
    return out


# -----------------------------------------------------------------------------
# data

def interop_tinystories():
    """The kit's TinyStories sample in ../shared/interop, or None when absent."""
    from .paths import shared_interop_dir
    interop = shared_interop_dir()
    if interop is None or not (interop / "tinystories_sample.txt").is_file():
        return None
    return interop / "tinystories_sample.txt"


def load_ladder_corpus(name: str = "auto", path=None, val_fraction: float = 0.1):
    """(corpus name, train bytes, validation bytes) as int64 arrays: the first 90 % of the raw
    bytes train, the last 10 % validate (the kit's split, as in chapter 4).

    name "auto": TinyStories (the kit's corpus) when the sample is in ../shared/interop,
    else Shakespeare. "tinystories" without a path: $ATOME_TINYSTORIES, else the sample."""
    import os

    from . import data
    if name == "auto":
        sample = interop_tinystories()
        name, path = ("tinystories", path or sample) if (path or sample) else ("shakespeare", None)
    if name == "tinystories" and path is None:
        path = os.environ.get(data.TINYSTORIES_ENV) or interop_tinystories()
        if path is None:
            raise ValueError("tinystories needs a file: give its path, set $ATOME_TINYSTORIES, "
                             "or put the kit's sample in ../shared/interop")
    corpus = data.load_corpus(name, path=str(path) if path is not None else None)
    raw = data.encode_bytes(corpus.text).astype(np.int64)
    cut = int(len(raw) * (1 - val_fraction))
    return name, raw[:cut], raw[cut:]


# -----------------------------------------------------------------------------
# the CLI: atome train (arguments in atome_core/cli.py)

def cli_train(args) -> int:
    import json
    import sys
    from pathlib import Path

    from .model_io import save_model
    from .results import write_atomic
    try:
        corpus_name, train_tokens, val_tokens = load_ladder_corpus(args.corpus, args.corpus_path)
        if args.val_bytes is not None:
            if args.val_bytes < 1:
                raise ValueError(f"--val-bytes must be positive, got {args.val_bytes}")
            val_tokens = val_tokens[:args.val_bytes]
        summary, model = train_cell(args.model, args.size, args.tokens, args.seed, train_tokens, val_tokens,
                                    recipe=args.recipe, device=args.device)
    except (ValueError, OSError) as e:
        print(f"atome train: error: {e}", file=sys.stderr)
        return 2
    out = Path(args.out)
    save_model(model.cpu(), out)
    summary = {**summary, "corpus": corpus_name, "recipe": args.recipe, "device": pick_device(args.device)}
    write_atomic(Path(str(out) + ".json"), (json.dumps(summary, indent=2) + "\n").encode())
    print(f"{args.model} {args.size} ({summary['params']:,} params, {summary['deployed']['bytes']:,} bytes "
          f"{summary['deployed']['format']}), seed {args.seed}, {summary['tokens']:,} tokens on {corpus_name}: "
          f"validation {summary['val_bpb']:.4f} bits per byte -> {out}")
    return 0
