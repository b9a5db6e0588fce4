"""The shape of a training run: what a build's training ledger records, and what a throughput
measurement times.

A `RunShape` is one training run without its data: the model's family and config, steps,
batch, window, accumulation, BF16 autocast and a distillation teacher's family and config;
`run_shape` and `job_shape` make one from a model class and TrainConfig or from a TrainJob.
When ATOME_TRAINING_LEDGER names a file (a chapter sets it to training_runs.jsonl in its
results when it opens), every call of atome_core.train.train appends the shape of the run it
starts there, one JSON line (`record_run`; `read_ledger` reads them back), so a build records
the training work it did. `measure_throughput` trains a few real steps of a shape on a device
and times them: the measured rate behind `atome book --list`'s estimates (atome_core.book.estimate).
"""
import dataclasses
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import distributed
from .models import family_of
from .paths import LEDGER_ENV


@dataclass(frozen=True)
class RunShape:
    """The work of one training run, without its data: enough to rebuild the model and time it."""
    family: str                         # a registered family (atome_core.models.REGISTRY)
    model_config: str                   # its config dataclass as sorted JSON
    steps: int
    batch_size: int
    seq_len: int
    grad_accum: int = 1
    autocast_bf16: bool = False
    teacher_family: str | None = None   # a distillation teacher's family and config (JSON), if any
    teacher_config: str | None = None

    @property
    def tokens(self) -> int:
        """Training tokens of the whole run."""
        return self.steps * self.batch_size * self.seq_len * self.grad_accum


def _config_json(cfg) -> str:
    return json.dumps(dataclasses.asdict(cfg), sort_keys=True)


def run_shape(model_class: type, model_config, cfg, teacher=None) -> RunShape:
    """The RunShape of training a `model_class(model_config)` with `cfg` (`teacher`: a teacher
    model, or a TrainJob's (class, config, state_dict) teacher spec)."""
    from .models import REGISTRY
    families = {cls: name for name, (_, _, cls) in REGISTRY.items()}
    if model_class.__name__ not in families:
        raise ValueError(f"{model_class.__name__} is not a registered model family")
    teacher_family = teacher_config = None
    if teacher is not None:
        t_class, t_config = (teacher[0], teacher[1]) if isinstance(teacher, tuple) else \
            (type(teacher), getattr(teacher, "cfg", None))
        # any teacher may teach; one outside the registry is recorded by its class name only
        teacher_family = families.get(t_class.__name__, t_class.__name__)
        teacher_config = _config_json(t_config) if dataclasses.is_dataclass(t_config) else None
    return RunShape(family=families[model_class.__name__], model_config=_config_json(model_config),
                    steps=cfg.steps, batch_size=cfg.batch_size, seq_len=cfg.seq_len, grad_accum=cfg.grad_accum,
                    autocast_bf16=cfg.autocast_bf16, teacher_family=teacher_family, teacher_config=teacher_config)


def job_shape(job) -> RunShape:
    """The RunShape of a TrainJob."""
    return run_shape(job.model_class, job.model_config, job.cfg, job.teacher)


def build_shape_model(family_name: str, config_json: str):
    """A freshly initialised model of a RunShape's family and config."""
    from .formats.model_file import config_from_dict
    from .models import family
    config_class, model_class = family(family_name)
    return model_class(config_from_dict(config_class, json.loads(config_json)))


def record_run(model, cfg, teacher=None) -> None:
    """Append the run's shape to the ledger named by $ATOME_TRAINING_LEDGER (rank 0; no-op unset)."""
    path = os.environ.get(LEDGER_ENV)
    if not path or distributed.world()[0] != 0 or family_of(model) is None:
        return
    shape = run_shape(type(model), model.cfg, cfg, teacher)
    with open(path, "a") as f:   # one short line per run: appends from worker processes do not mix
        f.write(json.dumps(dataclasses.asdict(shape), sort_keys=True) + "\n")


def read_ledger(path) -> list[RunShape]:
    """The RunShapes a ledger file recorded, in order."""
    return [RunShape(**json.loads(line)) for line in Path(path).read_text().splitlines() if line.strip()]


class _MeasuredEnough(Exception):
    """Raised from measure_throughput's callback to end its run early."""


def measure_throughput(shape: RunShape, device: str = "cpu", warmup: int = 2, max_steps: int = 8,
                       max_seconds: float = 10.0, seed: int = 0, threads: int | None = 1) -> float:
    """Training tokens per second of `shape` on `device`: optimizer steps of the real trainer
    (its accumulation, autocast and teacher) on random tokens; after `warmup` steps, the median
    time of up to `max_steps` steps (fewer once `max_seconds` have passed, at least two).
    `threads`: torch's intra-op threads, one as a TrainJob runs (the book's models are too small
    to gain from more, and lose much on a busy machine)."""
    from .train import (  # the trainer imports this module
        TrainConfig,
        torch_threads,
        train,
    )
    n = warmup + max_steps + 1
    cfg = TrainConfig(steps=n, batch_size=shape.batch_size, seq_len=shape.seq_len, grad_accum=shape.grad_accum,
                      autocast_bf16=shape.autocast_bf16, device=device, seed=seed, log_every=1,
                      distill_alpha=0.5 if shape.teacher_family else 0.0)
    torch.manual_seed(seed)
    model = build_shape_model(shape.family, shape.model_config)
    teacher = build_shape_model(shape.teacher_family, shape.teacher_config) if shape.teacher_family else None
    vocab = getattr(model.cfg, "vocab_size", 256)
    tokens = np.random.default_rng(seed).integers(0, vocab, size=max(4 * shape.seq_len, 4096)).astype(np.int64)
    ends = []   # when each step ended (the trainer's loss.item() waits for the device)

    def tick(step, record):
        ends.append(time.perf_counter())
        timed = len(ends) - 1 - warmup
        if timed >= max_steps or (timed >= 2 and ends[-1] - ends[warmup] >= max_seconds):
            raise _MeasuredEnough

    # a measurement is not part of a build's work (no ledger line) and draws no bar of its own
    saved = {k: os.environ.pop(k, None) for k in (LEDGER_ENV, "ATOME_PROGRESS")}
    os.environ["ATOME_PROGRESS"] = "0"
    try:
        with torch_threads(threads):
            train(model, tokens, tokens[: shape.seq_len + 1], cfg, progress_desc="timing", callback=tick,
                  teacher=teacher)
    except _MeasuredEnough:
        pass
    finally:
        for k, v in saved.items():
            os.environ.pop(k, None)
            if v is not None:
                os.environ[k] = v
    seconds = float(np.median(np.diff(ends[warmup:])))
    return shape.batch_size * shape.seq_len * shape.grad_accum / max(seconds, 1e-9)
