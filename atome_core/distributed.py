"""Data-parallel training over processes started by `torchrun`, and resumable runs of a book.

Under `torchrun --nproc_per_node=N ...` each of the N processes sees RANK, WORLD_SIZE and
LOCAL_RANK in its environment. `start(device)` joins them into one process group (NCCL when
the device is CUDA, gloo on the CPU) and gives each rank its device (cuda:LOCAL_RANK on a GPU
machine). Outside torchrun nothing changes: `world()` is (0, 1).

One run at any process count. The trainer (atome_core.train) draws the whole global batch
(the recipe's batch_size rows) from the run's seed on every rank, and each rank trains on its
own rows (`shard`: rank r of N takes rows r*b .. r*b+b-1, b = batch_size / N). After the
backward pass `average_gradients` all-reduces the gradients and divides by N: every rank's
loss is the mean over the same number of rows, so this is the gradient of the global batch's
mean loss, and the optimizer steps agree on every rank. The data stream therefore does not
depend on N (a rank-seeded stream would), and a 2-process run matches a 1-process run up to
the order of float sums (tests: 1e-5 relative loss at every logged step). Rank 0 alone writes
checkpoints, model files and results (`is_writer`).

Resumable book runs: when ATOME_CHECKPOINT_DIR is set (the book runner sets it for profiles
that ask for checkpoints, e.g. paper), every TrainJob that names no checkpoint of its own
checkpoints there at a fixed interval under a name that hashes the whole job
(`job_checkpoint_path`), so running the chapter again continues each unfinished run from its
last checkpoint, and a job whose inputs changed starts afresh rather than resuming the wrong run.
"""
import hashlib
import os
import re
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

CHECKPOINT_ENV = "ATOME_CHECKPOINT_DIR"
CHECKPOINTS_PER_RUN = 20       # a checkpoint every 1/20 of a run's steps (at least every step)


def world() -> tuple[int, int]:
    """(this process's rank, number of processes); (0, 1) outside a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_writer() -> bool:
    """Whether this process writes files: rank 0, or the only process."""
    return world()[0] == 0


def start(device: str) -> str:
    """Join torchrun's process group when launched by torchrun with more than one process;
    returns the device this rank trains on (cuda:LOCAL_RANK for a CUDA device)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size < 2 or dist.is_initialized():
        return device
    cuda = device.startswith("cuda")
    if cuda:
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
        torch.cuda.set_device(device)
    dist.init_process_group(backend="nccl" if cuda else "gloo")
    return device


def stop() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def check_batch(batch_size: int, size: int) -> None:
    if batch_size % size:
        raise ValueError(f"a global batch of {batch_size} rows does not split over {size} processes; "
                         f"choose a process count that divides it")


def shard(x: torch.Tensor, y: torch.Tensor, rank: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """This rank's rows of a global batch (x, y)."""
    check_batch(len(x), size)
    b = len(x) // size
    return x[rank * b:(rank + 1) * b], y[rank * b:(rank + 1) * b]


def broadcast_parameters(model: torch.nn.Module) -> None:
    """Every rank starts from rank 0's weights (they are equal already when seeded alike)."""
    for p in model.parameters():
        dist.broadcast(p.data, src=0)


def average_gradients(model: torch.nn.Module, size: int) -> None:
    """All-reduce the gradients and divide by the process count."""
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= size
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def average(value: float, size: int) -> float:
    """The mean of a number over the ranks (a logged loss)."""
    t = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(t)
    return float(t.item()) / size


# -- resumable book runs ---------------------------------------------------------------------

def job_digest(job) -> str:
    """A hash of everything a TrainJob's result depends on: name, model class and config,
    training config, seeds, and the bytes of its data."""
    h = hashlib.sha256()
    cls = job.model_class
    h.update(f"{job.name}\0{cls.__module__}.{cls.__qualname__}\0{job.model_config!r}\0{job.cfg!r}\0"
             f"{job.init_seed}\0".encode())
    for tokens in (job.train_tokens, job.val_tokens):
        arr = np.ascontiguousarray(tokens)
        h.update(f"{arr.dtype}{arr.shape}".encode())
        h.update(arr.tobytes())
    if job.teacher is not None:
        h.update(repr(job.teacher[:2]).encode())
    return h.hexdigest()[:16]


def job_checkpoint_path(job, folder) -> Path:
    """Where a job checkpoints in `folder`: a readable slug of its name and its digest."""
    slug = re.sub(r"[^A-Za-z0-9_.=-]+", "_", job.name).strip("_")[:80] or "run"
    return Path(folder) / f"{slug}-{job_digest(job)}.ckpt.safetensors"


def with_book_checkpoints(job):
    """The job with a checkpoint in $ATOME_CHECKPOINT_DIR (unless it names its own or the
    variable is unset): saved every 1/20 of its steps and resumed when it exists."""
    import dataclasses
    folder = os.environ.get(CHECKPOINT_ENV)
    if not folder or job.cfg.checkpoint_path:
        return job
    Path(folder).mkdir(parents=True, exist_ok=True)
    every = job.cfg.checkpoint_every or max(1, job.cfg.steps // CHECKPOINTS_PER_RUN)
    cfg = dataclasses.replace(job.cfg, checkpoint_path=str(job_checkpoint_path(job, folder)),
                              checkpoint_every=every, resume=True)
    return dataclasses.replace(job, cfg=cfg)
