"""The trainer: batches, schedule, evaluation, determinism, checkpoint and resume."""
import math

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from atome_core import evaluate as E
from atome_core import train as T

pytestmark = pytest.mark.usefixtures("one_thread")


class TinyLM(nn.Module):
    """A bigram-plus-previous-token model: small, but its loss depends on context."""

    def __init__(self, vocab=64, d=16):
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.prev = nn.Linear(d, d, bias=False)
        self.head = nn.Linear(d, vocab)

    def forward(self, idx):
        h = self.embed(idx)
        shifted = F.pad(h, (0, 0, 1, 0))[:, :-1]
        return self.head(torch.tanh(h + self.prev(shifted)))

    def loss(self, idx, targets):
        logits = self(idx)
        return F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))


def make_tokens(n, vocab, seed=0):
    # a learnable sequence: a noisy cycle
    rng = np.random.default_rng(seed)
    base = np.arange(n) % vocab
    noise = rng.integers(0, vocab, n)
    return np.where(rng.random(n) < 0.2, noise, base).astype(np.int64)


def fresh_model(vocab=64, seed=0):
    torch.manual_seed(seed)
    return TinyLM(vocab)


def bits(model):
    return {k: v.detach().numpy().view(np.uint32).copy() for k, v in model.state_dict().items()}


def test_batches_are_shifted_windows_and_seeded():
    tokens = np.arange(1000)
    x, y = T.batches(tokens, 8, 16, np.random.default_rng(3))
    assert x.shape == y.shape == (8, 16) and x.dtype == torch.int64
    assert torch.equal(x[:, 1:], y[:, :-1])
    assert torch.equal(y, x + 1)  # consecutive tokens
    x2, _ = T.batches(tokens, 8, 16, np.random.default_rng(3))
    assert torch.equal(x, x2)
    assert int(y.max()) <= 999
    with pytest.raises(ValueError, match="too few"):
        T.batches(np.arange(10), 2, 10, np.random.default_rng(0))


def test_lr_schedule():
    cfg = T.TrainConfig(steps=100, batch_size=1, seq_len=4, lr=1e-3, schedule="cosine",
                        warmup_steps=10, min_lr=1e-4)
    assert T.lr_at(1, cfg) == pytest.approx(1e-4)
    assert T.lr_at(10, cfg) == pytest.approx(1e-3)
    assert T.lr_at(100, cfg) == pytest.approx(1e-4)
    mid = T.lr_at(55, cfg)
    assert mid == pytest.approx(1e-4 + 0.5 * 9e-4)
    const = T.TrainConfig(steps=100, batch_size=1, seq_len=4, lr=3e-4)
    assert {T.lr_at(s, const) for s in range(1, 101)} == {3e-4}


@pytest.mark.parametrize("bad", [dict(steps=0), dict(schedule="linear"), dict(lr=0.0),
                                 dict(grad_clip=-1.0), dict(batch_size=2.5)])
def test_config_rejects_bad_values(bad):
    args = dict(steps=10, batch_size=2, seq_len=4) | bad
    with pytest.raises(ValueError):
        T.TrainConfig(**args)


def test_evaluate_loss_is_mean_over_nonoverlapping_windows():
    model = fresh_model()
    tokens = make_tokens(1000, 64)
    L = 32
    n = (len(tokens) - 1) // L
    with torch.no_grad():
        x = torch.from_numpy(np.stack([tokens[i * L:i * L + L] for i in range(n)]))
        y = torch.from_numpy(np.stack([tokens[i * L + 1:i * L + L + 1] for i in range(n)]))
        expected = F.cross_entropy(model(x).reshape(-1, 64), y.reshape(-1)).item()
    assert E.evaluate_loss(model, tokens, L, batch_size=7) == pytest.approx(expected, rel=1e-6)
    total, count = E.evaluate_sum(model, tokens, L, max_windows=5)
    assert count == 5 * L
    with pytest.raises(ValueError, match="too few"):
        E.evaluate_loss(model, tokens[:10], L)


def run(steps, vocab=64, lr=3e-3, **kw):
    tokens = make_tokens(4000, vocab)
    cfg = T.TrainConfig(steps=steps, batch_size=4, seq_len=16, lr=lr, log_every=1, seed=5, **kw)
    model = fresh_model(vocab)
    return T.train(model, tokens[:3600], tokens[3600:], cfg)


@pytest.mark.parametrize("vocab", [64, 256])
def test_training_learns_and_is_deterministic(vocab):
    kw = dict(lr=3e-2, schedule="cosine", warmup_steps=3, grad_clip=1.0, weight_decay=0.1)
    a, b = run(30, vocab, **kw), run(30, vocab, **kw)
    la = [h["train_loss"] for h in a.history]
    assert la == [h["train_loss"] for h in b.history]
    assert a.final_val_loss == b.final_val_loss
    assert la[-1] < la[0] - 0.3
    assert a.final_val_loss < math.log(vocab)
    assert [h["step"] for h in a.history] == list(range(1, 31))
    assert a.history[-1]["tokens_seen"] == 30 * 4 * 16
    assert a.tokens_per_second > 0


def test_eval_every_records_val_loss():
    r = run(10, eval_every=4, eval_batches=2)
    with_val = [h["step"] for h in r.history if "val_loss" in h]
    assert with_val == [4, 8, 10]


def test_resume_is_bit_exact(tmp_path):
    full = run(12, grad_accum=2, grad_clip=0.5)
    ckpt = tmp_path / "run.safetensors"

    class Crash(Exception):
        pass

    def crash_at_7(step, record):
        if step == 7:
            raise Crash

    with pytest.raises(Crash):
        tokens = make_tokens(4000, 64)
        cfg = T.TrainConfig(steps=12, batch_size=4, seq_len=16, lr=3e-3, log_every=1, seed=5,
                            grad_accum=2, grad_clip=0.5, checkpoint_path=str(ckpt), checkpoint_every=5)
        T.train(fresh_model(), tokens[:3600], tokens[3600:], cfg, callback=crash_at_7)
    assert ckpt.exists() and (tmp_path / "run.safetensors.json").exists()
    assert not list(tmp_path.glob(".*.tmp"))

    # a different initialisation: everything must come from the checkpoint
    resumed_model = fresh_model(seed=99)
    cfg = T.TrainConfig(steps=12, batch_size=4, seq_len=16, lr=3e-3, log_every=1, seed=5,
                        grad_accum=2, grad_clip=0.5, checkpoint_path=str(ckpt), checkpoint_every=5)
    resumed = T.train(resumed_model, tokens[:3600], tokens[3600:], cfg)
    assert resumed.resumed_from_step == 5
    strip = lambda hist: [{k: v for k, v in h.items() if k != "elapsed_s"} for h in hist]
    assert strip(resumed.history) == strip(full.history)
    assert resumed.final_val_loss == full.final_val_loss
    full_bits, resumed_bits = bits(full.model), bits(resumed.model)
    assert all(np.array_equal(full_bits[k], resumed_bits[k]) for k in full_bits)


def test_resume_refuses_a_different_config(tmp_path):
    ckpt = tmp_path / "c.safetensors"
    run(3, checkpoint_path=str(ckpt))
    with pytest.raises(ValueError, match="different training config"):
        run(3, checkpoint_path=str(ckpt), weight_decay=0.5)
    # resume=False starts over and overwrites
    r = run(3, checkpoint_path=str(ckpt), weight_decay=0.5, resume=False)
    assert r.resumed_from_step == 0
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable"):
        run(3, checkpoint_path=str(bad))


def test_nan_loss_is_an_error():
    class Broken(TinyLM):
        def loss(self, idx, targets):
            return super().loss(idx, targets) * float("nan")
    tokens = make_tokens(500, 64)
    cfg = T.TrainConfig(steps=2, batch_size=2, seq_len=8)
    torch.manual_seed(0)
    with pytest.raises(FloatingPointError):
        T.train(Broken(), tokens[:400], tokens[400:], cfg)


def test_jobs_give_the_same_results_in_parallel_processes():
    tokens = make_tokens(3000, 64)
    cfg = T.TrainConfig(steps=6, batch_size=4, seq_len=16, lr=3e-3, log_every=2)
    jobs = [T.TrainJob(f"run{i}", TinyLM, 64, tokens[:2700], tokens[2700:], cfg, init_seed=i) for i in range(2)]
    serial = T.run_jobs(jobs, workers=1)
    parallel = T.run_jobs(jobs, workers=2)
    for a, b in zip(serial, parallel):
        assert a.name == b.name
        assert [h["train_loss"] for h in a.history] == [h["train_loss"] for h in b.history]
        assert a.final_val_loss == b.final_val_loss
        assert all(np.array_equal(a.state_dict[k], b.state_dict[k]) for k in a.state_dict)
    assert serial[0].final_val_loss != serial[1].final_val_loss   # the init seed matters
    model = T.load_state(TinyLM(64), serial[0].state_dict)
    assert E.evaluate_loss(model, tokens[2700:], 16, batch_size=4) == serial[0].final_val_loss


# -----------------------------------------------------------------------------
# atome_core.evaluate

def test_score_in_bits_per_byte():
    model = fresh_model()
    tokens = make_tokens(1000, 64)
    s = E.score(model, tokens, 32)
    nats = E.evaluate_loss(model, tokens, 32)
    assert s.predicted_tokens == s.predicted_bytes == (999 // 32) * 32
    assert s.nats_per_token == pytest.approx(nats) and s.nats_per_byte == pytest.approx(nats)
    assert s.bits_per_byte == pytest.approx(nats / math.log(2))
    assert s.ppl_per_byte == pytest.approx(math.exp(nats))
    # a character model whose tokens are 2 bytes each: half the nats per byte
    two = E.score(model, tokens, 32, bytes_per_token=np.full(64, 2))
    assert two.predicted_bytes == 2 * s.predicted_bytes
    assert two.bits_per_byte == pytest.approx(s.bits_per_byte / 2)


def test_kit_units():
    assert E.ppl_from_bpb(E.bpb_from_ppl(6.31)) == pytest.approx(6.31)
    assert E.bpb_from_ppl(6.31) == pytest.approx(math.log2(6.31))
    assert E.median_and_range([3.0, 1.0, 2.0]) == {"median": 2.0, "min": 1.0, "max": 3.0, "n": 3}


def test_ab_models_and_deployed_bytes():
    from atome_core.chapters.ab_60k import ab_models
    specs = ab_models(pathway_ablations=True)
    assert list(specs)[:4] == ["routed", "vanilla param-fair", "vanilla flash-fair", "modern"]
    assert len(specs) == 7
    counts = {name: cls(cfg).num_params() for name, (cls, cfg) in specs.items()}
    assert counts["routed"] == 60_800 and counts["vanilla param-fair"] == 60_808
    assert counts["vanilla flash-fair"] == 5_968
    cls, cfg = specs["routed"]
    size = E.deployed_bytes(cls(cfg))
    # ATOME01 by hand: magic, then per trit tensor a float scale and 4 trits per byte, floats 4 bytes
    d, dh, v = 64, 16, 256
    trit_tensor = lambda n: 4 + (n + 3) // 4
    block = 2 * 4 * d + trit_tensor(5 * d) + 3 * 4 * d + 2 * trit_tensor(dh * d) + trit_tensor(d * d) + trit_tensor(3 * d)
    assert size["atome01_bytes"] == 7 + trit_tensor(v * d) + 4 * block + 2 * 4 * d + trit_tensor(v * d)
    assert 0 < size["bytes"] < 4 * 60_800 / 10   # far below FP32
    fp32 = E.deployed_bytes(specs["modern"][0](specs["modern"][1]))
    assert fp32 == {"format": "FP32", "bytes": 4 * counts["modern"]}


def test_every_windowed_score_predicts_the_same_tokens_from_the_same_windows():
    tokens = np.arange(50) % 7
    w = E.eval_windows(tokens, 8, max_windows=3)
    assert w.shape == (3, 9) and w[1, 0] == tokens[8] and w[2, -1] == tokens[24]
    with pytest.raises(ValueError, match="too few for one evaluation window"):
        E.eval_windows(tokens[:5], 8)


def test_text_bits_per_byte_counts_the_bytes_each_predicted_token_spells():
    class Uniform(nn.Module):
        def __init__(self, vocab):
            super().__init__()
            self.vocab, self.p = vocab, nn.Parameter(torch.zeros(1))

        def forward(self, idx):
            return torch.zeros(*idx.shape, self.vocab) + 0 * self.p

    class TwoBytesPerToken:
        vocab_size = 16

        def encode(self, text):
            return [ord(c) % 16 for c in text]

        def decode_bytes(self, ids):
            return b"ab" * len(ids)

    # uniform over 16 tokens = 4 bits per token = 2 bits per byte when each token spells 2 bytes
    assert E.text_bits_per_byte(Uniform(16), TwoBytesPerToken(), "x" * 65, 16) == pytest.approx(2.0)
