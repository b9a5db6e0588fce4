"""The one trainer for every model in the book.

A model only has to provide `loss(idx, targets) -> mean cross-entropy (nats)` and
`forward(idx) -> logits (B, T, V)`; tokens are integer numpy arrays (bytes with
vocab 256, or character ids with any vocab). AdamW, a constant or warmup+cosine
schedule, optional gradient clipping and accumulation, periodic evaluation.

Determinism: the batches come from a numpy Generator seeded with cfg.seed, the
model has no dropout, so on CPU the same seed gives the same losses bit for bit.

Checkpoints are one safetensors file (model, optimizer moments, torch RNG state)
whose metadata holds a JSON record (step, batch RNG state, config, history, and the
model's family and config, so `atome export` reads a checkpoint as a model file), plus
a human-readable JSON sidecar (`<path>.json`, informational only). The file is
written to a temporary name and renamed, so a crash never leaves half a checkpoint.
Resuming from step k replays exactly the steps k+1.. of an uninterrupted run.

Under torchrun (atome_core.distributed) every rank draws the global batch and trains on its
rows; gradients and logged losses are averaged over the ranks; rank 0 writes checkpoints.

Every call of `train` appends the shape of the run it starts to the training ledger
(atome_core.ledger.record_run) when ATOME_TRAINING_LEDGER names one.

Distillation (cfg.distill_alpha > 0, `train(..., teacher=...)`): the student minimises
(1 - alpha) * CE(student, data) + alpha * T^2 * KL(softmax(teacher/T) || softmax(student/T)),
both averaged per predicted token, the teacher run in eval mode without gradients on the
same input windows (`distillation_loss`). With alpha 0 the loop is the plain trainer's,
step for step. The teacher is not saved in a checkpoint; its class, config and a hash of
its weights are recorded in the checkpoint's config, so a run is resumed only with it.
"""
import dataclasses
import hashlib
import json
import math
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import distributed
from .evaluate import evaluate_loss
from .files import write_atomic
from .formats.model_file import TRAIN_CHECKPOINT_FORMAT as CHECKPOINT_FORMAT
from .ledger import record_run
from .models import family_of
from .progress import progress

# fields that may differ between the run that wrote a checkpoint and the one that resumes it
RESUMABLE_CHANGES = {"checkpoint_path", "checkpoint_every", "log_every", "eval_every", "eval_batches",
                     "device", "resume"}


@dataclass
class TrainConfig:
    steps: int
    batch_size: int
    seq_len: int
    lr: float = 3e-4
    schedule: str = "constant"          # "constant" | "cosine" (after linear warmup, down to min_lr)
    warmup_steps: int = 0
    min_lr: float = 0.0
    weight_decay: float = 0.0
    betas: tuple = (0.9, 0.999)
    grad_clip: float | None = None      # max global gradient norm; None: no clipping
    grad_accum: int = 1                 # micro-batches of batch_size per optimizer step
    seed: int = 0
    device: str = "cpu"
    autocast_bf16: bool = False
    eval_every: int = 0                 # 0: evaluate only at the end
    eval_batches: int = 8               # periodic evaluation: the first eval_batches*batch_size val windows
    checkpoint_path: str | None = None
    checkpoint_every: int = 0           # 0: only at the end (when checkpoint_path is set)
    log_every: int = 10
    resume: bool = True                 # continue from checkpoint_path when it exists
    distill_alpha: float = 0.0          # weight of the teacher's soft targets; 0: no distillation
    distill_temperature: float = 1.0    # softmax temperature of teacher and student in the KL term

    def __post_init__(self):
        self.betas = tuple(self.betas)
        for name in ("steps", "batch_size", "seq_len", "grad_accum"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"TrainConfig.{name} must be a positive integer, got {value!r}")
        for name in ("warmup_steps", "eval_every", "checkpoint_every", "eval_batches", "log_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"TrainConfig.{name} must be a non-negative integer, got {value!r}")
        if self.schedule not in ("constant", "cosine"):
            raise ValueError(f"TrainConfig.schedule must be 'constant' or 'cosine', got {self.schedule!r}")
        if not self.lr > 0:
            raise ValueError(f"TrainConfig.lr must be positive, got {self.lr!r}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"TrainConfig.grad_clip must be positive or None, got {self.grad_clip!r}")
        if not 0.0 <= self.distill_alpha <= 1.0:
            raise ValueError(f"TrainConfig.distill_alpha must be in [0, 1], got {self.distill_alpha!r}")
        if not (self.distill_temperature > 0 and math.isfinite(self.distill_temperature)):
            raise ValueError(f"TrainConfig.distill_temperature must be positive, got {self.distill_temperature!r}")


@dataclass
class TrainResult:
    history: list                       # dicts: step, train_loss, lr, tokens_seen, elapsed_s[, val_loss]
    final_val_loss: float               # nats per token over the whole validation split
    tokens_per_second: float            # training tokens / training seconds (evaluation excluded)
    model: torch.nn.Module
    train_seconds: float = 0.0
    resumed_from_step: int = 0
    extra: dict = field(default_factory=dict)


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Learning rate for optimizer step `step` (1-based)."""
    if cfg.warmup_steps and step <= cfg.warmup_steps:
        return cfg.lr * step / cfg.warmup_steps
    if cfg.schedule == "constant":
        return cfg.lr
    span = max(1, cfg.steps - cfg.warmup_steps)
    progress_frac = min(1.0, (step - cfg.warmup_steps) / span)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1.0 + math.cos(math.pi * progress_frac))


def batches(tokens: np.ndarray, batch_size: int, seq_len: int, rng: np.random.Generator):
    """A batch of random windows: x = tokens[s:s+seq_len], y = tokens[s+1:s+seq_len+1]."""
    tokens = np.asarray(tokens)
    n_starts = len(tokens) - seq_len
    if n_starts < 1:
        raise ValueError(f"{len(tokens)} tokens are too few for windows of {seq_len}+1")
    starts = rng.integers(0, n_starts, size=batch_size)
    offsets = np.arange(seq_len + 1)
    windows = torch.from_numpy(tokens[starts[:, None] + offsets].astype(np.int64))
    return windows[:, :-1], windows[:, 1:]


@contextmanager
def torch_threads(n: int | None):
    """Run a block with n intra-op threads (None: leave as is), then restore.

    Tiny models are launch-bound: on a shared 2-core machine one thread avoids
    OpenMP workers spin-waiting for a core, which can cost 10x in wall time.
    """
    saved = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


def make_optimizer(model, cfg: TrainConfig) -> torch.optim.AdamW:
    # fused: one kernel call updates every parameter (tiny models have many small tensors,
    # and a per-tensor update is mostly call overhead); element-wise, so deterministic
    return torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=cfg.betas,
                             weight_decay=cfg.weight_decay, fused=True)


# -----------------------------------------------------------------------------
# distillation

def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, targets: torch.Tensor,
                      alpha: float, temperature: float = 1.0) -> torch.Tensor:
    """(1 - alpha) * CE(student, targets) + alpha * T^2 * KL(p_teacher || p_student), where
    p = softmax(logits / T); both terms are means over the predicted tokens (nats).

    Logits (..., V), targets (...). The T^2 keeps the soft targets' gradient on the scale of
    the data term's as T grows (Hinton et al. 2015). No gradient flows into the teacher.
    alpha 0 returns the cross-entropy alone (F.cross_entropy, the same number bit for bit).
    """
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"student logits {tuple(student_logits.shape)} and teacher logits "
                         f"{tuple(teacher_logits.shape)} differ in shape")
    V = student_logits.size(-1)
    s = student_logits.reshape(-1, V)
    if s.dtype in (torch.float16, torch.bfloat16):   # the loss in float32, as next_token_loss does
        s = s.float()
    ce = F.cross_entropy(s, targets.reshape(-1))
    if alpha == 0:
        return ce
    t = teacher_logits.detach().reshape(-1, V).to(s.dtype)
    log_p_student = F.log_softmax(s / temperature, dim=-1)
    log_p_teacher = F.log_softmax(t / temperature, dim=-1)
    # sum over the vocabulary of p_t (log p_t - log p_s), mean over tokens
    kl = F.kl_div(log_p_student, log_p_teacher, reduction="sum", log_target=True) / s.size(0)
    return (1.0 - alpha) * ce + alpha * temperature ** 2 * kl


def _max_sequence(model) -> int | None:
    """The longest sequence a model accepts (its position table), None where unbounded."""
    cfg = getattr(model, "cfg", None)
    for name in ("max_seq", "block_size"):
        if isinstance(getattr(cfg, name, None), int):
            return getattr(cfg, name)
    return None


def check_teacher(student, teacher, cfg: TrainConfig) -> None:
    """Refuse a teacher that cannot give soft targets for the student's training windows."""
    s_vocab = getattr(getattr(student, "cfg", None), "vocab_size", None)
    t_vocab = getattr(getattr(teacher, "cfg", None), "vocab_size", None)
    if s_vocab is not None and t_vocab is not None and s_vocab != t_vocab:
        raise ValueError(f"the teacher's vocabulary has {t_vocab} tokens, the student's {s_vocab}: "
                         f"distillation needs the same vocabulary")
    t_max = _max_sequence(teacher)
    if t_max is not None and t_max < cfg.seq_len:
        raise ValueError(f"the teacher reads at most {t_max} tokens, shorter than the training "
                         f"windows (seq_len {cfg.seq_len})")


def teacher_record(teacher) -> dict | None:
    """What a checkpoint records of a teacher: class, family, config and a hash of its weights."""
    if teacher is None:
        return None
    h = hashlib.sha256()
    for name, value in sorted(teacher.state_dict().items()):
        v = value.detach().cpu().contiguous()
        h.update(f"{name}:{v.dtype}:{tuple(v.shape)}".encode())
        h.update(v.reshape(-1).view(torch.uint8).numpy().tobytes())
    cfg = getattr(teacher, "cfg", None)
    record = {"model_class": type(teacher).__name__, "family": family_of(teacher),
              "model_config": dataclasses.asdict(cfg) if dataclasses.is_dataclass(cfg) else None,
              "weights_sha256": h.hexdigest()}
    return json.loads(json.dumps(record))   # as a checkpoint reads it back (tuples become lists)


# -----------------------------------------------------------------------------
# checkpoints

def _config_dict(cfg: TrainConfig, teacher: dict | None = None) -> dict:
    d = dataclasses.asdict(cfg)
    d["betas"] = list(d["betas"])
    d["teacher"] = teacher
    return d


# what a checkpoint written before a field existed holds for it: the field's default
_CONFIG_DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrainConfig)
                    if f.default is not dataclasses.MISSING} | {"teacher": None}


def save_checkpoint(path, model, optimizer, step: int, rng: np.random.Generator, cfg: TrainConfig,
                    history: list, state: dict, teacher: dict | None = None) -> Path:
    """Atomically write model + optimizer + RNG states + step (+ history) to `path`;
    `teacher`: its teacher_record (the teacher itself is not saved)."""
    from safetensors.torch import save
    path = Path(path)
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    opt = optimizer.state_dict()
    for pid, pstate in opt["state"].items():
        for name, value in pstate.items():
            tensors[f"optim.{pid}.{name}"] = torch.as_tensor(value).detach().cpu().contiguous()
    tensors["rng.torch"] = torch.get_rng_state()
    record = {
        "format": CHECKPOINT_FORMAT, "step": step, "config": _config_dict(cfg, teacher),
        "numpy_rng": rng.bit_generator.state, "param_groups": opt["param_groups"],
        "history": history, "state": state, "model_class": type(model).__name__,
        "family": family_of(model),
        "model_config": dataclasses.asdict(model.cfg) if family_of(model) else None,
    }
    write_atomic(path, save(tensors, metadata={"atome": json.dumps(record)}))
    sidecar = {k: v for k, v in record.items() if k not in ("history",)}
    sidecar["history_tail"] = history[-3:]
    write_atomic(Path(str(path) + ".json"), (json.dumps(sidecar, indent=2) + "\n").encode())
    return path


def load_checkpoint(path, model, optimizer, cfg: TrainConfig,
                    teacher: dict | None = None) -> tuple[int, np.random.Generator, list, dict]:
    """Restore model and optimizer in place; return (step, batch rng, history, trainer state).
    `teacher`: the teacher_record of this run's teacher, which must be the checkpoint's."""
    from .files import SafetensorsReadError, read_safetensors
    path = Path(path)
    try:
        meta, tensors = read_safetensors(path)
    except SafetensorsReadError as e:
        raise ValueError(f"{path}: not a readable training checkpoint ({e})") from None
    if "atome" not in meta:
        raise ValueError(f"{path}: safetensors file without the trainer's metadata; not a checkpoint")
    record = json.loads(meta["atome"])
    if record.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: unknown checkpoint format {record.get('format')!r}")
    saved, wanted = record["config"], _config_dict(cfg, teacher)
    if saved.get("teacher") != teacher:
        if teacher is None:
            raise ValueError(f"{path}: written by a run distilled from a teacher "
                             f"({saved['teacher']['model_class']}); resume it with the same teacher")
        if saved.get("teacher") is None:
            raise ValueError(f"{path}: written by a run without a teacher; resume it without one")
        shown = ", ".join(f"{k}: checkpoint {saved['teacher'].get(k)!r} vs now {teacher[k]!r}"
                          for k in teacher if saved["teacher"].get(k) != teacher[k])
        raise ValueError(f"{path}: written with a different teacher ({shown}); resume it with the same teacher")
    differ = sorted(k for k in wanted if k not in RESUMABLE_CHANGES
                    and saved.get(k, _CONFIG_DEFAULTS.get(k)) != wanted[k])
    if differ:
        shown = ", ".join(f"{k}: checkpoint {saved.get(k)!r} vs now {wanted[k]!r}" for k in differ)
        raise ValueError(f"{path}: written with a different training config ({shown}); "
                         f"delete it or set resume=False to start over")
    if record["model_class"] != type(model).__name__:
        raise ValueError(f"{path}: holds a {record['model_class']}, not a {type(model).__name__}")
    model_state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    model.load_state_dict(model_state, strict=True)
    opt_state = {}
    for k, v in tensors.items():
        if k.startswith("optim."):
            _, pid, name = k.split(".", 2)
            opt_state.setdefault(int(pid), {})[name] = v
    optimizer.load_state_dict({"state": opt_state, "param_groups": record["param_groups"]})
    torch.set_rng_state(tensors["rng.torch"])
    rng = np.random.default_rng()
    rng.bit_generator.state = record["numpy_rng"]
    return record["step"], rng, record["history"], record["state"]


# -----------------------------------------------------------------------------
# the loop

def train(model, train_tokens: np.ndarray, val_tokens: np.ndarray, cfg: TrainConfig,
          progress_desc: str = "", callback=None, teacher=None) -> TrainResult:
    """Train `model` in place with AdamW; returns its history and final validation loss.

    `callback(step, record)`, when given, is called after each logged step (a test
    uses it to simulate a crash). Evaluation uses windows of cfg.seq_len.
    `teacher`: a model giving soft targets when cfg.distill_alpha > 0 (required then,
    unused at alpha 0); it is moved to cfg.device and put in eval mode. With a teacher,
    train_loss in the history is the distillation objective and train_data_loss its
    cross-entropy on the data; val_loss is always the student's cross-entropy.
    """
    # train_tokens: a token array, or a data curriculum (atome_core.curriculum) that
    # draws each batch from a mixture of corpora whose weights move with the step.
    curriculum = train_tokens if hasattr(train_tokens, "weights_at") else None
    if curriculum is None:
        train_tokens = np.asarray(train_tokens)
    val_tokens = np.asarray(val_tokens)
    distill = cfg.distill_alpha > 0
    if distill and teacher is None:
        raise ValueError(f"distill_alpha {cfg.distill_alpha} needs a teacher: train(..., teacher=model)")
    if teacher is not None:
        if teacher is model:
            raise ValueError("the teacher is the student itself")
        check_teacher(model, teacher, cfg)
    device = torch.device(cfg.device)
    model.to(device)
    model.train()
    if teacher is not None:
        teacher.to(device)
        teacher.eval()
    teacher_info = teacher_record(teacher)
    record_run(model, cfg, teacher)
    rank, n_ranks = distributed.world()
    distributed.check_batch(cfg.batch_size, n_ranks)
    if n_ranks > 1:
        distributed.broadcast_parameters(model)
    optimizer = make_optimizer(model, cfg)
    rng = np.random.default_rng(cfg.seed)
    torch.manual_seed(cfg.seed)
    step, history = 0, []
    # running sums between logs, part of the checkpoint so a resumed history is identical
    state = {"loss_sum": 0.0, "loss_count": 0, "train_seconds": 0.0}
    if distill:
        state["data_loss_sum"] = 0.0
    resumed_from = 0
    if cfg.checkpoint_path and cfg.resume and Path(cfg.checkpoint_path).exists():
        step, rng, history, state = load_checkpoint(cfg.checkpoint_path, model, optimizer, cfg, teacher_info)
        resumed_from = step
    tokens_per_step = cfg.batch_size * cfg.seq_len * cfg.grad_accum
    autocast = torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=cfg.autocast_bf16)

    bar = progress(total=cfg.steps, initial=step, desc=progress_desc or type(model).__name__, unit="step")
    run_seconds = 0.0  # training time of this call (a resumed run counts only its own steps)
    while step < cfg.steps:
        t0 = time.perf_counter()
        step += 1
        lr = lr_at(step, cfg)
        for group in optimizer.param_groups:
            group["lr"] = lr
        step_loss = step_data_loss = 0.0
        for _ in range(cfg.grad_accum):
            if curriculum is not None:
                x, y = curriculum.batch(step, cfg.steps, cfg.batch_size, cfg.seq_len, rng)
            else:
                x, y = batches(train_tokens, cfg.batch_size, cfg.seq_len, rng)
            if n_ranks > 1:
                x, y = distributed.shard(x, y, rank, n_ranks)
            x, y = x.to(device), y.to(device)
            if distill:
                with autocast:
                    logits = model(x)
                    with torch.no_grad():
                        teacher_logits = teacher(x)
                if teacher_logits.shape != logits.shape:
                    raise ValueError(f"the teacher's logits {tuple(teacher_logits.shape)} do not match the "
                                     f"student's {tuple(logits.shape)} (a different vocabulary?)")
                loss = distillation_loss(logits, teacher_logits, y, cfg.distill_alpha, cfg.distill_temperature)
                with torch.no_grad():
                    step_data_loss += distillation_loss(logits, teacher_logits, y, 0.0).item() / cfg.grad_accum
            else:
                with autocast:
                    loss = model.loss(x, y)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"training loss became {loss.item()} at step {step}")
            (loss / cfg.grad_accum).backward()
            step_loss += loss.item() / cfg.grad_accum
        if n_ranks > 1:
            distributed.average_gradients(model, n_ranks)
            step_loss = distributed.average(step_loss, n_ranks)
            if distill:
                step_data_loss = distributed.average(step_data_loss, n_ranks)
        if cfg.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip, foreach=True)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        state["train_seconds"] += time.perf_counter() - t0
        run_seconds += time.perf_counter() - t0
        state["loss_sum"] += step_loss
        state["loss_count"] += 1
        if distill:
            state["data_loss_sum"] += step_data_loss
        bar.update(1)

        is_last = step == cfg.steps
        do_eval = is_last or (cfg.eval_every and step % cfg.eval_every == 0)
        if is_last or do_eval or (cfg.log_every and step % cfg.log_every == 0):
            record = {"step": step, "train_loss": state["loss_sum"] / state["loss_count"], "lr": lr,
                      "tokens_seen": step * tokens_per_step,
                      "elapsed_s": round(state["train_seconds"], 3)}
            if distill:
                record["train_data_loss"] = state["data_loss_sum"] / state["loss_count"]
                state["data_loss_sum"] = 0.0
            if curriculum is not None:
                record["mixture"] = curriculum.weights_at(step, cfg.steps)
            state["loss_sum"], state["loss_count"] = 0.0, 0
            if do_eval and not is_last:
                record["val_loss"] = evaluate_loss(model, val_tokens, cfg.seq_len,
                                                   max_windows=cfg.eval_batches * cfg.batch_size,
                                                   batch_size=cfg.batch_size)
            if is_last:
                record["val_loss"] = evaluate_loss(model, val_tokens, cfg.seq_len,
                                                   batch_size=cfg.batch_size)
            history.append(record)
            bar.set_postfix(loss=f"{record['train_loss']:.3f}")
            if callback is not None:
                callback(step, record)
        if cfg.checkpoint_path and rank == 0 and (is_last or (cfg.checkpoint_every
                                                          and step % cfg.checkpoint_every == 0)):
            save_checkpoint(cfg.checkpoint_path, model, optimizer, step, rng, cfg, history, state, teacher_info)
    bar.close()

    if history and history[-1]["step"] == cfg.steps and "val_loss" in history[-1]:
        final_val = history[-1]["val_loss"]
    else:
        final_val = evaluate_loss(model, val_tokens, cfg.seq_len, batch_size=cfg.batch_size)
    trained_tokens = (cfg.steps - resumed_from) * tokens_per_step
    return TrainResult(history=history, final_val_loss=final_val,
                       tokens_per_second=trained_tokens / max(run_seconds, 1e-9),
                       model=model, train_seconds=state["train_seconds"], resumed_from_step=resumed_from)


# -----------------------------------------------------------------------------
# many runs, optionally in parallel processes

@dataclass
class TrainJob:
    """One training run, described by data only so it can run in another process."""
    name: str
    model_class: type                  # e.g. atome_core.models.routed.RoutedLM
    model_config: object               # its config dataclass
    train_tokens: np.ndarray
    val_tokens: np.ndarray
    cfg: TrainConfig
    init_seed: int = 0                 # torch seed for the model's initialisation
    threads: int = 1                   # intra-op threads; fixed so results do not depend on workers
    teacher: tuple | None = None       # (model class, config, state_dict) of a distillation teacher


@dataclass
class JobResult:
    name: str
    history: list
    final_val_loss: float
    tokens_per_second: float
    train_seconds: float
    num_params: int
    state_dict: dict                   # name -> numpy array (portable between processes)


def build_teacher(spec: tuple | None):
    """A TrainJob's teacher (model class, config, state_dict) as a model in eval mode."""
    if spec is None:
        return None
    if not (isinstance(spec, tuple) and len(spec) == 3):
        raise ValueError("TrainJob.teacher must be (model class, config, state_dict)")
    model_class, config, state_dict = spec
    return load_state(model_class(config), state_dict)


def run_job(job: TrainJob) -> JobResult:
    """Train one job in this process ($ATOME_CHECKPOINT_DIR: resumably, distributed.with_book_checkpoints)."""
    job = distributed.with_book_checkpoints(job)
    with torch_threads(job.threads):
        torch.manual_seed(job.init_seed)
        model = job.model_class(job.model_config)
        teacher = build_teacher(job.teacher)
        r = train(model, job.train_tokens, job.val_tokens, job.cfg, progress_desc=job.name, teacher=teacher)
    return JobResult(name=job.name, history=r.history, final_val_loss=r.final_val_loss,
                     tokens_per_second=r.tokens_per_second, train_seconds=r.train_seconds,
                     num_params=sum(p.numel() for p in model.parameters()),
                     state_dict={k: v.detach().cpu().numpy() for k, v in model.state_dict().items()})


def run_jobs(jobs: list, workers: int = 1) -> list:
    """Run every job; results in the order of `jobs`. workers > 1: that many spawned
    processes (each job single-threaded by default), for the many small runs of a chapter.
    A job's result does not depend on where it ran: its seeds and thread count are its own."""
    from .progress import progress as bar
    if workers <= 1 or len(jobs) <= 1:
        return [run_job(job) for job in bar(jobs, desc="training runs", unit="run")]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    # spawn, not fork: a forked child would inherit the parent's OpenMP thread state
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(run_job, job) for job in jobs]
        for _ in bar(as_completed(futures), total=len(futures), desc="training runs", unit="run"):
            pass
        return [f.result() for f in futures]


def load_state(model, state_dict: dict):
    """Load a JobResult's numpy state_dict into a model; returns the model in eval mode."""
    model.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in state_dict.items()})
    return model.eval()


def benchmark_steps(models: dict, tokens: np.ndarray, batch_size: int, seq_len: int, rounds: int = 30,
                    warmup: int = 3, threads: int | None = 1, lr: float = 3e-4, seed: int = 0) -> dict:
    """Training-step time of several models measured in the same run, interleaved.

    Each round runs one full optimizer step (forward, backward, AdamW) of every model in
    turn, so a slow patch of a shared machine hits all of them alike. Returns, per
    model name, the median wall seconds per step, tokens per second, and the median CPU
    seconds of the calling thread per step (after `warmup` rounds).
    """
    rng = np.random.default_rng(seed)
    steppers = {}
    for name, model in models.items():
        model.train()
        opt = make_optimizer(model, TrainConfig(steps=1, batch_size=batch_size, seq_len=seq_len, lr=lr))
        steppers[name] = (model, opt)
    wall = {name: [] for name in models}
    cpu = {name: [] for name in models}
    with torch_threads(threads):
        for _ in progress(range(warmup + rounds), desc="timing steps", unit="round"):
            x, y = batches(tokens, batch_size, seq_len, rng)
            for name, (model, opt) in steppers.items():
                t0, c0 = time.perf_counter(), time.thread_time()
                model.loss(x, y).backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
                wall[name].append(time.perf_counter() - t0)
                cpu[name].append(time.thread_time() - c0)
    out = {}
    for name in models:
        median = float(np.median(wall[name][warmup:]))
        out[name] = {"seconds_per_step": median, "tokens_per_second": batch_size * seq_len / median,
                     # CPU time of this thread: with one thread, what the step costs even when
                     # other processes share the machine
                     "cpu_seconds_per_step": float(np.median(cpu[name][warmup:]))}
    return out
