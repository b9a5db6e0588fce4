"""Chapter 9's runs: one recipe for every family, the learning-rate sweep, the grid of cells,
the atto models, and the reference lines (compressors and Kneser-Ney).

The recipe is the book's (atome_core.recipe.BOOK_RECIPE, the Atome kit's shape): AdamW at a
constant learning rate, batches of 16 random windows of 64 bytes; the number of steps is the
profile's token budget. Each family trains at its own rate, the best of a short sweep scored
on a slice of the training text held out from the sweep's training (recipe.tuning_split),
never on the validation text. Validation: every
non-overlapping 64-byte window of the held-out 10 % (atome_core.evaluate), optionally
capped (`cap_windows`).

Families ("arms"): routed ternary, vanilla FP32 (the ladder's shapes), modern FP32, modern
ternary and modern ternary at doubled width (the frontier presets), and atto (chapter 1's
character n-gram models, trained with chapter 1's own recipe on its 64-symbol vocabulary:
the one exception to the recipe, stated on the page).

Every run is a TrainJob for atome_core.train.run_jobs: deterministic, one thread each.
"""
import math

import numpy as np

from ..evaluate import eval_windows
from ..models import family
from ..models.presets import ladder_config, preset_config
from ..recipe import book_config, rate_at_edge, tuning_split
from ..train import TrainConfig, TrainJob

LN2 = math.log(2)
WINDOW = 64
ARMS = ("routed", "vanilla", "modern", "modern-ternary", "modern-ternary-x2")
LABELS = {"routed": "routed ternary", "vanilla": "vanilla FP32", "modern": "modern FP32",
          "modern-ternary": "modern ternary", "modern-ternary-x2": "modern ternary x2", "atto": "atto"}
FP32_ARMS = ("vanilla", "modern", "atto")     # the arms also scored after post-training quantisation


# -- the recipe ---------------------------------------------------------------------------------

def recipe_rows(steps: int) -> tuple[list, list]:
    """The recipe as a table (header, rows), with the frontier's validation."""
    from ..recipe import book_recipe_rows
    header, rows = book_recipe_rows(steps)
    return header, rows + [["validation", f"every non-overlapping {WINDOW}-byte window of the held-out 10 %"]]


def model_spec(arm: str, size: str) -> tuple[type, object]:
    """(model class, config) of an arm at a named size."""
    if arm in ("routed", "vanilla"):
        return family(arm)[1], ladder_config(arm, size)
    if arm in ("modern", "modern-ternary", "modern-ternary-x2"):
        return family("modern")[1], preset_config(f"{arm}-{size}")
    raise ValueError(f"unknown arm {arm!r}; choose one of {', '.join(ARMS)}")


def build(arm: str, size: str, state_dict=None):
    """A model of the arm (its trained weights when a state_dict is given), in eval mode."""
    from ..train import load_state
    cls, cfg = model_spec(arm, size)
    model = cls(cfg)
    return load_state(model, state_dict) if state_dict is not None else model.eval()


# -- data ---------------------------------------------------------------------------------------

def load_split(name: str, path=None, max_bytes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(train bytes, validation bytes) of a corpus, chapter 4's way: its first `max_bytes`
    (None: all), the first 90 % to train and the last 10 % to validate."""
    from ..recipe import load_ladder_corpus
    _, train, val = load_ladder_corpus(name, path=path)
    if max_bytes is None or max_bytes >= len(train) + len(val):
        return train, val
    raw = np.concatenate([train, val])[:max_bytes]
    cut = int(len(raw) * 0.9)
    return raw[:cut], raw[cut:]


STAND_IN_BYTES = 262_144   # the size of the kit's TinyStories sample


def load_main_split(path=None) -> tuple[np.ndarray, np.ndarray, str | None]:
    """(train, validation, stand-in note) of the main corpus: the TinyStories sample, or, when a
    build has no copy of it, the first 256 KiB of Moby-Dick in its place, with the note that says
    so (the claims about the kit's corpus are then not measured)."""
    try:
        return (*load_split("tinystories", path), None)
    except ValueError as e:
        if "tinystories needs a file" not in str(e):
            raise
    train, val = load_split("moby", max_bytes=STAND_IN_BYTES)
    return train, val, ("the TinyStories sample is absent from this build (no ../shared/interop): the first "
                        "256 KiB of Moby-Dick stand in wherever this page says TinyStories sample")


def cap_windows(val: np.ndarray, max_windows: int | None, window: int = WINDOW) -> np.ndarray:
    """The validation bytes that give at most `max_windows` evaluation windows (None: all)."""
    if max_windows is None:
        return val
    return val[: max_windows * window + 1]


def n_windows(val: np.ndarray, window: int = WINDOW) -> int:
    return len(eval_windows(val, window))


# -- the learning-rate sweep ------------------------------------------------------------------

def job_name(corpus: str, arm: str, size: str, seed: int, lr: float | None = None) -> str:
    return f"{corpus}|{arm}|{size}|{seed}" + (f"|lr={lr:g}" if lr is not None else "")


def parse_name(name: str) -> dict:
    parts = name.split("|")
    out = {"corpus": parts[0], "arm": parts[1], "size": parts[2], "seed": int(parts[3])}
    if len(parts) > 4:
        out["lr"] = float(parts[4][3:])
    return out


def _job(name, arm, size, train, val, cfg, seed) -> TrainJob:
    cls, model_cfg = model_spec(arm, size)
    return TrainJob(name=name, model_class=cls, model_config=model_cfg, train_tokens=np.asarray(train),
                    val_tokens=np.asarray(val), cfg=cfg, init_seed=seed, threads=1)


def sweep_jobs(corpus: str, train: np.ndarray, tune: np.ndarray, arms, size: str, lrs, steps: int,
               seed: int = 0) -> list[TrainJob]:
    """One short run per (arm, rate) at one size, scored on the tuning bytes."""
    return [_job(job_name(corpus, arm, size, seed, lr), arm, size, train, tune,
                 book_config(steps, lr, seed), seed) for arm in arms for lr in lrs]


def sweep_results(results: dict) -> dict:
    """{arm: {lr: tuning bits per byte}} from the sweep's JobResults (by job name)."""
    out = {}
    for name, r in results.items():
        if name.count("|") != 4:        # not a sweep run (the atto search's runs ride along)
            continue
        p = parse_name(name)
        if "lr" in p:
            out.setdefault(p["arm"], {})[p["lr"]] = r.final_val_loss / LN2
    return out


def sweep_rows(sweep: dict, rates: dict) -> tuple[list, list]:
    """The sweep as a table: tuning bits per byte per rate, and the chosen rate, marked "(edge
    of the sweep)" when it is the grid's smallest or largest (the best may lie beyond it)."""
    lrs = sorted({lr for scores in sweep.values() for lr in scores})
    rows = [[LABELS[arm]] + [scores.get(lr) for lr in lrs]
            + [f"{rates[arm]:g}" + (" (edge of the sweep)" if rate_at_edge(scores) else "")]
            for arm, scores in sweep.items()]
    return ["family"] + [f"lr {lr:g}" for lr in lrs] + ["chosen"], rows


# -- the grid -----------------------------------------------------------------------------------

def grid_cells(grid: dict, seeds, extra_seeds: dict | None = None) -> list[tuple]:
    """[(arm, size, seed)] for a grid {arm: [sizes]}: every cell with `seeds`, sizes named in
    `extra_seeds` ({size: seeds}) with those instead."""
    extra_seeds = extra_seeds or {}
    out = []
    for arm, sizes in grid.items():
        if arm not in ARMS:
            raise ValueError(f"unknown arm {arm!r} in the grid; choose from {', '.join(ARMS)}")
        for size in sizes:
            model_spec(arm, size)           # an unknown size fails here, before any training
            for seed in extra_seeds.get(size, seeds):
                out.append((arm, size, seed))
    return out


def _cost(job: TrainJob) -> float:
    params = sum(p.numel() for p in job.model_class(job.model_config).parameters())
    return job.cfg.steps * job.cfg.batch_size * job.cfg.seq_len * (20_000 + params)


def longest_first(jobs: list) -> list:
    """The jobs with the costliest first (a run's result does not depend on the order)."""
    return sorted(jobs, key=_cost, reverse=True)


def grid_jobs(corpus: str, train: np.ndarray, val: np.ndarray, cells, rates: dict, steps: int,
              eval_every: int = 0) -> list[TrainJob]:
    return [_job(job_name(corpus, arm, size, seed), arm, size, train, val,
                 book_config(steps, rates[arm], seed, eval_every), seed) for arm, size, seed in cells]


# -- atto: chapter 1's models on the same bytes ---------------------------------------------------

def atto_data(train: np.ndarray, val: np.ndarray, tune_bytes: int, vocab_size: int = 64) -> dict:
    """The byte splits as atto's 64-symbol ids (vocabulary from the training text): "train"
    (all of it), "search" and "tune" (tuning_split's two parts) and "val"; and each
    symbol's UTF-8 length, so that its nats are divided by the bytes it stands for."""
    from ..models.atto import AttoVocab
    search, tune = tuning_split(train, tune_bytes)
    texts = {k: bytes(np.asarray(v, np.uint8)).decode("utf-8", errors="replace")
             for k, v in (("train", train), ("search", search), ("tune", tune), ("val", val))}
    vocab = AttoVocab.from_text(texts["train"], vocab_size)
    bytes_per_token = np.array([len(s.encode()) for s in vocab.symbols] + [1])
    return {"vocab": vocab, "bytes_per_token": bytes_per_token, "changed": vocab.changed_fraction(texts["val"]),
            **{k: vocab.encode(t) for k, t in texts.items()}}


def atto_train_config(steps: int, batch_size: int, seq_len: int, lr: float, seed: int,
                      eval_every: int = 0) -> TrainConfig:
    """Chapter 1's recipe (atome_core.chapters.atto_series.train_recipe): AdamW, 5 % linear
    warmup then cosine down to lr / 20. `eval_every` only adds validation points (the
    evaluation draws nothing at random, so the run is the same)."""
    return TrainConfig(steps=steps, batch_size=batch_size, seq_len=seq_len, lr=lr, schedule="cosine",
                       warmup_steps=max(1, steps // 20), min_lr=lr / 20, seed=seed,
                       log_every=max(1, steps // 20), eval_every=eval_every)


def atto_search_jobs(budgets, train_ids, tune_ids, *, n_widths: int, fulls, steps: int, batch_size: int,
                     seq_len: int, lr: float, seed: int = 0) -> list[TrainJob]:
    """Chapter 1's shape search at each budget (base recipe at the n_widths largest widths and
    each n_full, plus the linear family), short runs scored on the tuning ids."""
    from ..models.atto import AttoModel
    from .atto_series import search_widths, shape_candidates
    jobs = []
    for budget in budgets:
        widths = search_widths(budget, n_widths=n_widths)
        shapes = shape_candidates(budget, widths, tuple(fulls))
        shapes.update(shape_candidates(budget, widths[-1:], (0,)))
        for (E, n_full), cfg in shapes.items():
            jobs.append(TrainJob(name=f"atto|{budget}|E{E}_full{n_full}", model_class=AttoModel, model_config=cfg,
                                 train_tokens=np.asarray(train_ids), val_tokens=np.asarray(tune_ids),
                                 cfg=atto_train_config(steps, batch_size, seq_len, lr, seed), init_seed=seed))
    return jobs


def atto_winners(jobs, results: dict) -> dict:
    """{budget: (AttoConfig, tuning loss)}: the search's lowest tuning loss per budget."""
    best = {}
    for job in jobs:
        if not job.name.startswith("atto|"):
            continue
        budget = int(job.name.split("|")[1])
        loss = results[job.name].final_val_loss
        if budget not in best or loss < best[budget][1]:
            best[budget] = (job.model_config, loss)
    return dict(sorted(best.items()))


def atto_final_jobs(corpus: str, winners: dict, train_ids, val_ids, seeds, *, steps: int, batch_size: int,
                    seq_len: int, lr: float, eval_every: int = 0) -> list[TrainJob]:
    from ..models.atto import AttoModel
    return [TrainJob(name=job_name(corpus, "atto", str(budget), seed), model_class=AttoModel, model_config=cfg,
                     train_tokens=np.asarray(train_ids), val_tokens=np.asarray(val_ids),
                     cfg=atto_train_config(steps, batch_size, seq_len, lr, seed, eval_every), init_seed=seed)
            for budget, (cfg, _) in winners.items() for seed in seeds]


# -- references ---------------------------------------------------------------------------------

def references(train: np.ndarray, val: np.ndarray, kn_orders, kn_prunes) -> dict:
    """bz2 -9 and xz -9e on the validation bytes alone, and Kneser-Ney byte models fitted on
    the training bytes and scored on every validation byte (their stored tables' bytes)."""
    from ..models import kneser_ney
    from .corpora import compressed_bits_per_byte
    val_bytes = bytes(np.asarray(val, np.uint8))
    kn = kneser_ney.reference_points(np.asarray(train, np.uint8), np.asarray(val, np.uint8),
                                     orders=tuple(kn_orders), prunes=tuple(kn_prunes))
    return {"bz2": compressed_bits_per_byte(val_bytes, "bz2 -9"),
            "xz": compressed_bits_per_byte(val_bytes, "xz -9e"),
            "kn": [{"order": r["order"], "prune_above": r["prune_above"], "bpb": r["bits_per_byte"],
                    "deployed_bytes": r["deployed_bytes"]} for r in kn]}


# -- the plan -----------------------------------------------------------------------------------

PLAN_RATE = 1e-3   # a stand-in for the rates the sweep chooses: a rate does not change a run's shape


def atto_stand_ins(search: list[TrainJob]) -> dict:
    """{budget: (AttoConfig, 0.0)} in atto_winners' form: each searched budget's first candidate,
    standing in for the winner the search picks (every candidate fits the same budget)."""
    out = {}
    for job in search:
        out.setdefault(int(job.name.split("|")[1]), (job.model_config, 0.0))
    return dict(sorted(out.items()))


def training_plan(P) -> list:
    """Every training run the chapter's notebook starts under parameters `P`, as RunShapes
    (atome_core.book.estimate), built with the notebook's own job builders on empty data:
    the rate sweep and the atto search (the first round), the TinyStories and Shakespeare
    grids with their seeds and extra seeds and the atto models (the grid), and the
    distillation students with and without the published teacher (only when
    `distillation.published_teacher_or_reason` finds it, as in the notebook).

    Stand-ins where the notebook's runs depend on results: PLAN_RATE for every chosen rate,
    and `atto_stand_ins` for the atto search's winners."""
    from ..ledger import job_shape
    from ..recipe import BOOK_RECIPE
    from . import distillation as D
    empty = np.zeros(0, np.int64)
    rates = dict.fromkeys(ARMS, PLAN_RATE)
    sweep = sweep_jobs("tinystories", empty, empty, ARMS, P.sweep_size, P.sweep_lrs, P.sweep_steps, P.seed)
    atto_search = atto_search_jobs(P.atto_budgets, empty, empty, n_widths=P.atto_search_widths,
                                   fulls=P.atto_search_fulls, steps=P.atto_search_steps, batch_size=P.atto_batch,
                                   seq_len=P.atto_seq_len, lr=P.atto_lr, seed=P.seed)
    atto_jobs = atto_final_jobs("shakespeare", atto_stand_ins(atto_search), empty, empty, P.shakespeare_seeds,
                                steps=P.atto_steps, batch_size=P.atto_batch, seq_len=P.atto_seq_len, lr=P.atto_lr,
                                eval_every=max(1, P.atto_steps // 10))
    ts_cells = grid_cells(P.tinystories_grid, P.seeds, P.extra_seeds)
    sh_cells = grid_cells(P.shakespeare_grid, P.shakespeare_seeds)
    grid = (grid_jobs("tinystories", empty, empty, ts_cells, rates, P.steps, P.eval_every)
            + grid_jobs("shakespeare", empty, empty, sh_cells, rates, P.steps, P.eval_every) + atto_jobs)
    teacher, _ = D.published_teacher_or_reason()
    distill = D.training_plan(P.distill_students, teacher, P.distill_steps, BOOK_RECIPE["batch_size"],
                              BOOK_RECIPE["seq_len"], P.distill_seeds, P.distill_alphas, P.distill_temperature)
    return [job_shape(job) for job in sweep + atto_search + grid] + distill
