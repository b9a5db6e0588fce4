"""Runs that survive a kill and runs over several processes (atome_core.distributed)."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from atome_core import distributed
from atome_core.recipe import CPU_RECIPE
from atome_core.train import TrainConfig, TrainJob, run_job

BIN = Path(sys.executable).parent
ENV = {**os.environ, "ATOME_PROGRESS": "0", "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo"}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "text.txt"
    path.write_text((Path(__file__).parent / "test_train.py").read_text() * 4)
    return path


def train_args(corpus, out, steps, *extra):
    return ["train", "--model", "routed", "--size", "15k", "--tokens", str(steps * CPU_RECIPE.tokens_per_step),
            "--corpus", "file", "--corpus-path", str(corpus), "--val-bytes", "4096", "--device", "cpu",
            "--out", str(out), *extra]


def run(argv, **kw):
    r = subprocess.run(argv, env=ENV, capture_output=True, text=True, **kw)
    assert r.returncode == 0, r.stderr[-2000:]
    return r


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def weights_as_uint32(path) -> dict:
    return {k: np.ascontiguousarray(v, np.float32).view(np.uint32) for k, v in load_file(str(path)).items()}


def test_a_run_killed_with_sigkill_and_resumed_ends_bit_identical_to_an_uninterrupted_one(corpus, tmp_path):
    steps = 200
    atome = [str(BIN / "atome")]
    run(atome + train_args(corpus, tmp_path / "whole.safetensors", steps))
    ckpt = tmp_path / "run.ckpt"
    killed = subprocess.Popen(atome + train_args(corpus, tmp_path / "resumed.safetensors", steps,
                                                 "--checkpoint", str(ckpt), "--checkpoint-every", "10"),
                              env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sidecar = Path(str(ckpt) + ".json")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if sidecar.exists() and json.loads(sidecar.read_text())["step"] >= 40:
            break
        time.sleep(0.02)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    at = json.loads(sidecar.read_text())["step"]
    assert killed.returncode == -signal.SIGKILL and 40 <= at < steps, "the run was not killed mid-way"
    assert not (tmp_path / "resumed.safetensors").exists()
    run(atome + train_args(corpus, tmp_path / "resumed.safetensors", steps, "--checkpoint", str(ckpt),
                           "--checkpoint-every", "10"))
    whole, resumed = weights_as_uint32(tmp_path / "whole.safetensors"), weights_as_uint32(tmp_path / "resumed.safetensors")
    assert whole.keys() == resumed.keys()
    for name in whole:
        assert np.array_equal(whole[name], resumed[name]), name


def test_a_two_process_gloo_run_matches_one_process_at_every_logged_step(corpus, tmp_path):
    steps = 24
    run([str(BIN / "atome")] + train_args(corpus, tmp_path / "one.safetensors", steps))
    torchrun = [str(BIN / "torchrun"), "--nnodes=1", "--nproc_per_node=2", "--master_addr=127.0.0.1",
                f"--master_port={free_port()}", "-m", "atome_core.cli"]
    run(torchrun + train_args(corpus, tmp_path / "two.safetensors", steps), timeout=300)
    one = json.loads(Path(str(tmp_path / "one.safetensors") + ".json").read_text())["history"]
    two = json.loads(Path(str(tmp_path / "two.safetensors") + ".json").read_text())["history"]
    assert [r["step"] for r in one] == [r["step"] for r in two] and len(one) == steps
    for a, b in zip(one, two):
        assert abs(a["train_loss"] - b["train_loss"]) <= 1e-5 * abs(a["train_loss"]), a["step"]
    assert abs(one[-1]["val_loss"] - two[-1]["val_loss"]) <= 1e-5 * one[-1]["val_loss"]


def test_a_global_batch_that_does_not_split_over_the_processes_is_refused():
    with pytest.raises(ValueError, match="does not split over 3 processes"):
        distributed.check_batch(8, 3)


def test_a_shard_takes_this_ranks_rows_of_the_global_batch():
    import torch
    x = torch.arange(8).reshape(4, 2)
    a, b = distributed.shard(x, x + 100, rank=1, size=2)
    assert a.tolist() == [[4, 5], [6, 7]] and b.tolist() == [[104, 105], [106, 107]]


def tiny_job(tokens, steps=12, seed=0):
    from atome_core.models.routed import RoutedConfig, RoutedLM
    cfg = RoutedConfig(d_model=16, n_layers=1, d_head=8, top_k=2, kernel_size=3)
    return TrainJob(name="tiny|routed|seed=0", model_class=RoutedLM, model_config=cfg,
                    train_tokens=tokens[:3000], val_tokens=tokens[3000:], init_seed=seed,
                    cfg=TrainConfig(steps=steps, batch_size=4, seq_len=16, lr=3e-3, seed=seed))


def test_a_book_job_checkpoints_under_the_books_folder_and_a_changed_job_gets_another_file(tmp_path, monkeypatch):
    tokens = np.frombuffer(b"the cat sat on the mat. " * 200, np.uint8).astype(np.int64)
    monkeypatch.setenv(distributed.CHECKPOINT_ENV, str(tmp_path))
    first = run_job(tiny_job(tokens))
    files = sorted(tmp_path.glob("*.ckpt.safetensors"))
    assert len(files) == 1 and files[0].name.startswith("tiny_routed_seed=0-")
    again = run_job(tiny_job(tokens))          # resumes at the last step: nothing trained again
    assert again.final_val_loss == first.final_val_loss
    for k in first.state_dict:
        assert np.array_equal(first.state_dict[k].view(np.uint32), again.state_dict[k].view(np.uint32))
    run_job(tiny_job(tokens, steps=13))
    assert len(list(tmp_path.glob("*.ckpt.safetensors"))) == 2
    monkeypatch.delenv(distributed.CHECKPOINT_ENV)
    assert distributed.with_book_checkpoints(tiny_job(tokens)).cfg.checkpoint_path is None
