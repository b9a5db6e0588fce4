"""The book's training recipes, for every architecture comparison, and one cell of the ladder.

The book's recipe (`BOOK_RECIPE`, the Atome kit's 60K recipe shape) trains every architecture
comparison (chapters 2, 4, 5 and 9): AdamW at a constant learning rate, no warmup, no weight
decay, no clipping, batches of 16 random windows of 64 bytes. Its token budget is stated per
profile (`BOOK_STEPS`: optimizer steps of 16 x 64 bytes); a chapter that trains for another
budget says why on its page and draws its loss against training tokens. Each family trains at
its own learning rate, the best of a short sweep (`best_rates`) scored on a slice of the
training text held out from the sweep's training (`tuning_split`), never on the validation text.

A ladder cell = (family, size, token budget, seed): `train_cell` trains it with a recipe
(`CPU_RECIPE`, or `PAPER_RECIPE`: the kit's 944K recipe, BF16 autocast on CUDA) and
returns its validation bits per byte, its parameter count and its deployed bytes
(routed: the real ATMB blob of atome_core.formats; a ternary modern model: its ATMM file,
atome_core.formats.modern_blob; FP32 baselines: 4 bytes per parameter).
"""

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import torch

from .evaluate import deployed_bytes
from .models import family as family_classes
from .models.presets import (
    FAMILIES,
    SIZES,
    build_model,
    count_params,
    ladder_config,
)
from .train import TrainConfig, TrainJob, load_state, run_job


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
# the book's recipe

BOOK_RECIPE = {"batch_size": 16, "seq_len": 64, "schedule": "constant", "warmup_steps": 0,
               "weight_decay": 0.0, "betas": (0.9, 0.999), "grad_clip": None}
# The token budget per profile, in optimizer steps of BOOK_RECIPE's 16 x 64 bytes: the kit's
# 3,000 steps at paper; half of them at cpu (what the frontier's grid affords in its share
# of the 45 minutes); a few at smoke.
BOOK_STEPS = {"smoke": 8, "cpu": 1500, "paper": 3000, "paper-smoke": 8}
KIT_LR = 3e-4          # the kit's one rate for every model


def book_steps(profile: str) -> int:
    """The book's budget at a profile, in optimizer steps."""
    if profile not in BOOK_STEPS:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(BOOK_STEPS)}")
    return BOOK_STEPS[profile]


def book_tokens(steps: int) -> int:
    """Training bytes of `steps` steps of the book's recipe."""
    return steps * BOOK_RECIPE["batch_size"] * BOOK_RECIPE["seq_len"]


def book_config(steps: int, lr: float, seed: int, eval_every: int = 0, eval_batches: int = 8,
                **overrides) -> TrainConfig:
    """The book's recipe for `steps` optimizer steps at learning rate `lr` (`overrides`:
    other TrainConfig fields, e.g. act_bits)."""
    return TrainConfig(steps=steps, lr=lr, seed=seed, eval_every=eval_every, eval_batches=eval_batches,
                       log_every=max(1, steps // 50), **{**BOOK_RECIPE, **overrides})


def book_recipe_rows(steps: int, rates: str = "each family's best of the sweep") -> tuple[list, list]:
    """The recipe as a table (header, rows), for a chapter's page."""
    r = BOOK_RECIPE
    rows = [["optimizer", "AdamW, betas (0.9, 0.999), no weight decay"],
            ["learning rate", f"constant, no warmup; {rates}"],
            ["batch", f"{r['batch_size']} random windows of {r['seq_len']} bytes"],
            ["gradient clipping", "none"],
            ["steps", f"{steps:,} ({book_tokens(steps):,} training bytes)"]]
    return ["", "every family"], rows


def tuning_split(train: np.ndarray, tune_bytes: int) -> tuple[np.ndarray, np.ndarray]:
    """(sweep training bytes, tuning bytes): the last `tune_bytes` of the training split score
    a learning-rate sweep, the rest trains it. The runs themselves train on the whole split."""
    if not 0 < tune_bytes < len(train) // 2:
        raise ValueError(f"tune_bytes {tune_bytes} must be positive and under half the {len(train)} training bytes")
    return train[:-tune_bytes], train[-tune_bytes:]


def best_rates(sweep: dict) -> dict:
    """{family: the rate with the lowest tuning loss} from {family: {lr: loss}} (ties: the
    smaller rate)."""
    return {arm: min(sorted(scores), key=lambda lr: scores[lr]) for arm, scores in sweep.items()}


def rate_at_edge(scores: dict) -> bool:
    """Whether the best rate of one family's sweep ({lr: loss}) is its smallest or largest:
    the sweep may not have bracketed the best rate."""
    lrs = sorted(scores)
    best = min(lrs, key=lambda lr: scores[lr])
    return len(lrs) > 1 and best in (lrs[0], lrs[-1])


# -----------------------------------------------------------------------------
# the ladder's recipes (chapter 5, `atome train`)

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


def on_device(jobs: list, device: str = "cpu") -> list:
    """The TrainJobs set to train on `device` ("auto": CUDA when present); on a GPU torch
    keeps its own thread count. A chapter's paper profile passes "auto", its cpu profile cpu."""
    device = pick_device(device)
    return [dataclasses.replace(job, cfg=dataclasses.replace(job.cfg, device=device),
                                threads=None if device.startswith("cuda") else job.threads) for job in jobs]


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
             recipe="cpu", device: str = "auto", eval_every: int = 0, **overrides) -> TrainJob:
    """A TrainJob for one ladder cell (for atome_core.train.run_jobs: many cells in parallel).
    `overrides`: fields of the rung's config to change (e.g. top_k=2)."""
    model_config = ladder_config(family, size, **overrides)
    cfg = train_config(recipe, tokens, seed, device, eval_every)
    if len(val_tokens) < cfg.seq_len + 1:
        raise ValueError(f"{len(val_tokens)} validation bytes are too few for one {cfg.seq_len}-byte window")
    return TrainJob(name=cell_name(family, size, seed), model_class=family_classes(family)[1],
                    model_config=model_config, train_tokens=np.asarray(train_tokens),
                    val_tokens=np.asarray(val_tokens), cfg=cfg, init_seed=seed,
                    # on a GPU let torch use the CPU threads it likes; on CPU one per run
                    threads=None if cfg.device.startswith("cuda") else 1)


def cell_result(job: TrainJob, result) -> dict:
    """Summary of a finished cell (a JobResult of run_jobs)."""
    family, size, seed = job.name.split("|")
    model = load_state(job.model_class(job.model_config), result.state_dict)
    return {"family": family, "size": size, "seed": int(seed), "params": result.num_params,
            "deployed": deployed_bytes(model), "steps": job.cfg.steps,
            "tokens": job.cfg.steps * job.cfg.batch_size * job.cfg.seq_len * job.cfg.grad_accum,
            "val_nats_per_byte": result.final_val_loss, "val_bpb": result.final_val_loss / math.log(2),
            "train_seconds": result.train_seconds, "tokens_per_second": result.tokens_per_second,
            "history": result.history}


def train_cell(family: str, size: str, tokens: int, seed: int, train_tokens, val_tokens,
               recipe="cpu", device: str = "auto", out=None, info: dict | None = None,
               checkpoint=None, checkpoint_every: int = 0, **overrides) -> tuple[dict, torch.nn.Module]:
    """Train one ladder cell in this process: (summary dict, trained model in eval mode).
    `out`: also write the model file (atome_core.formats.model_file) there, with the
    summary and `info` as its info; `checkpoint`: a checkpoint file, written every
    `checkpoint_every` steps (0: at the end) and resumed from when it exists;
    `overrides`: fields of the rung's config to change."""
    job = cell_job(family, size, tokens, seed, train_tokens, val_tokens, recipe, device, **overrides)
    if checkpoint is not None:
        job = dataclasses.replace(job, cfg=dataclasses.replace(job.cfg, checkpoint_path=str(checkpoint),
                                                               checkpoint_every=checkpoint_every))
    result = run_job(job)
    summary = cell_result(job, result)
    model = load_state(job.model_class(job.model_config), result.state_dict)
    if out is not None:
        from .formats.model_file import save_model
        save_model(model, out, info={**summary, **(info or {})})
    return summary, model


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
# the ladder under the book's recipe (chapter 5 at smoke and cpu)

def book_cell_job(family: str, size: str, steps: int, lr: float, seed: int, train_tokens, val_tokens,
                  eval_every: int = 0, eval_batches: int = 8, name: str | None = None) -> TrainJob:
    """A TrainJob for one ladder cell under the book's recipe: `steps` optimizer steps of
    BOOK_RECIPE at learning rate `lr`, one thread. Named like cell_job's (cell_result reads
    it) unless `name` is given."""
    cfg = book_config(steps, lr, seed, eval_every, eval_batches)
    if len(val_tokens) < cfg.seq_len + 1:
        raise ValueError(f"{len(val_tokens)} validation bytes are too few for one {cfg.seq_len}-byte window")
    return TrainJob(name=name or cell_name(family, size, seed), model_class=family_classes(family)[1],
                    model_config=ladder_config(family, size), train_tokens=np.asarray(train_tokens),
                    val_tokens=np.asarray(val_tokens), cfg=cfg, init_seed=seed, threads=1)


def book_steps_for(tokens: int) -> int:
    """Optimizer steps of the book's recipe that spend `tokens` training bytes (a whole number of steps)."""
    per_step = book_tokens(1)
    if not isinstance(tokens, (int, np.integer)) or tokens < per_step or tokens % per_step:
        raise ValueError(f"a book-recipe budget is a positive multiple of {per_step} bytes, got {tokens!r}")
    return tokens // per_step
