"""Knowledge distillation in the trainer: the loss, the teacher's checks, checkpoints, jobs,
and a small student that learns more from a teacher's soft targets than from the data alone."""
import dataclasses
import json
import math

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from atome_core import train as T
from atome_core.evaluate import evaluate_loss
from atome_core.models.vanilla import VanillaConfig, VanillaGPT

pytestmark = pytest.mark.usefixtures("one_thread")


class Bigram(nn.Module):
    """Next token from the current one through a d-wide bottleneck: d sets how much it can learn."""

    def __init__(self, vocab=32, d=8):
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.head = nn.Linear(d, vocab)

    def forward(self, idx):
        return self.head(torch.tanh(self.embed(idx)))

    def loss(self, idx, targets):
        logits = self(idx)
        return F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))


class WideBigram(Bigram):
    """The teacher's shape, built from its vocabulary alone (as TrainJob builds a model)."""

    def __init__(self, vocab=32):
        super().__init__(vocab, 32)


def markov_tokens(n, vocab=32, seed=0):
    """A Markov chain with random, peaked transition rows: a bigram model can learn it, and
    from a few samples the rows are noisy, which is where soft targets help."""
    rng = np.random.default_rng(seed)
    cumulative = rng.dirichlet(np.full(vocab, 0.3), size=vocab).cumsum(1)
    u = rng.random(n)
    out = np.zeros(n, np.int64)
    for i in range(1, n):
        out[i] = min(np.searchsorted(cumulative[out[i - 1]], u[i]), vocab - 1)
    return out


@pytest.fixture(scope="module")
def corpus():
    tokens = markov_tokens(20000)
    return tokens[:16000], tokens[16000:]


@pytest.fixture(scope="module")
def teacher(corpus):
    """A wider bigram trained longer than any student here."""
    torch.manual_seed(0)
    model = WideBigram(32)
    T.train(model, *corpus, T.TrainConfig(steps=300, batch_size=16, seq_len=32, lr=1e-2, log_every=0))
    return model.eval()


def student(seed=0):
    torch.manual_seed(seed)
    return Bigram(32, 8)


def cfg(steps=8, **kw):
    base = dict(steps=steps, batch_size=4, seq_len=32, lr=1e-2, log_every=1, seed=3)
    return T.TrainConfig(**(base | kw))


def weights(model):
    return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}


def same_weights(a, b):
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def strip(history):
    return [{k: v for k, v in h.items() if k != "elapsed_s"} for h in history]


# -----------------------------------------------------------------------------
# the loss

def test_the_loss_of_a_two_token_vocabulary_is_the_hand_computed_mix_of_data_and_kl_terms():
    # position 1: student logits (0, 0)     -> p_s = (1/2, 1/2); target 0
    #             teacher logits (ln 3, 0)  -> p_t = (3/4, 1/4)
    #   CE = -ln(1/2) = ln 2 = 0.693147
    #   KL(p_t || p_s) = 3/4 ln(3/4 / 1/2) + 1/4 ln(1/4 / 1/2) = 3/4 ln 1.5 - 1/4 ln 2 = 0.130812
    # position 2: student logits (ln 3, 0)  -> p_s = (3/4, 1/4); target 1
    #             teacher logits (0, 0)     -> p_t = (1/2, 1/2)
    #   CE = -ln(1/4) = ln 4 = 1.386294
    #   KL = 1/2 ln(1/2 / 3/4) + 1/2 ln(1/2 / 1/4) = 1/2 ln(4/3) = 0.143841
    # mean over the two positions: CE = 1.039721, KL = 0.137327
    # alpha 0.25, T 1: 0.75 * 1.039721 + 0.25 * 0.137327 = 0.814122
    ln3 = math.log(3)
    student_logits = torch.tensor([[[0.0, 0.0], [ln3, 0.0]]], dtype=torch.float64)
    teacher_logits = torch.tensor([[[ln3, 0.0], [0.0, 0.0]]], dtype=torch.float64)
    targets = torch.tensor([[0, 1]])
    ce = (math.log(2) + math.log(4)) / 2
    kl = ((0.75 * math.log(1.5) - 0.25 * math.log(2)) + 0.5 * math.log(4 / 3)) / 2
    assert ce == pytest.approx(1.039721, abs=1e-6) and kl == pytest.approx(0.137327, abs=1e-6)
    got = T.distillation_loss(student_logits, teacher_logits, targets, alpha=0.25, temperature=1.0)
    assert float(got) == pytest.approx(0.75 * ce + 0.25 * kl, abs=1e-12)
    assert float(got) == pytest.approx(0.814122, abs=1e-6)
    # T = 2 halves the logits: p_t = (sqrt3, 1) / (sqrt3 + 1) at position 1, p_s likewise at
    # position 2, the uniform side unchanged; the KL term is scaled by T^2 = 4
    r3 = math.sqrt(3)
    kl2 = ((r3 / (r3 + 1)) * math.log(2 * r3 / (r3 + 1)) + (1 / (r3 + 1)) * math.log(2 / (r3 + 1))
           + 0.5 * math.log(0.5 * (r3 + 1) / r3) + 0.5 * math.log(0.5 * (r3 + 1))) / 2
    got2 = T.distillation_loss(student_logits, teacher_logits, targets, alpha=0.25, temperature=2.0)
    assert float(got2) == pytest.approx(0.75 * ce + 0.25 * 4 * kl2, abs=1e-12)
    # alpha 1: the teacher alone, whatever the targets
    only_kl = T.distillation_loss(student_logits, teacher_logits, 1 - targets, alpha=1.0, temperature=1.0)
    assert float(only_kl) == pytest.approx(kl, abs=1e-12)


@pytest.mark.parametrize("alpha,temperature", [(0.3, 1.0), (0.7, 2.5), (1.0, 0.5)])
def test_a_teacher_equal_to_the_student_adds_exactly_zero_kl(alpha, temperature):
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(3, 5, 11, generator=g) * 3
    targets = torch.randint(0, 11, (3, 5), generator=g)
    got = T.distillation_loss(logits, logits.clone(), targets, alpha, temperature)
    ce = F.cross_entropy(logits.reshape(-1, 11), targets.reshape(-1))
    assert torch.equal(got, (1 - alpha) * ce + alpha * temperature ** 2 * torch.zeros(()))
    assert torch.equal(got, (1 - alpha) * ce)


def test_alpha_zero_is_exactly_the_cross_entropy():
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(4, 7, 13, generator=g)
    teacher_logits = torch.randn(4, 7, 13, generator=g)
    targets = torch.randint(0, 13, (4, 7), generator=g)
    for temperature in (1.0, 3.0):
        got = T.distillation_loss(logits, teacher_logits, targets, 0.0, temperature)
        assert torch.equal(got, F.cross_entropy(logits.reshape(-1, 13), targets.reshape(-1)))


def test_the_gradient_in_the_student_logits_passes_gradcheck_in_float64():
    g = torch.Generator().manual_seed(3)
    student_logits = torch.randn(2, 3, 5, dtype=torch.float64, generator=g, requires_grad=True)
    teacher_logits = torch.randn(2, 3, 5, dtype=torch.float64, generator=g)
    targets = torch.randint(0, 5, (2, 3), generator=g)
    for alpha, temperature in ((0.5, 1.0), (0.9, 2.0), (1.0, 4.0)):
        assert torch.autograd.gradcheck(
            lambda s: T.distillation_loss(s, teacher_logits, targets, alpha, temperature), (student_logits,))


def test_no_gradient_reaches_the_teacher_logits():
    g = torch.Generator().manual_seed(4)
    s = torch.randn(6, 5, generator=g, requires_grad=True)
    t = torch.randn(6, 5, generator=g, requires_grad=True)
    T.distillation_loss(s, t, torch.zeros(6, dtype=torch.long), 0.5, 2.0).backward()
    assert s.grad is not None and t.grad is None


def test_the_loss_refuses_logits_of_different_shapes():
    with pytest.raises(ValueError, match="differ in shape"):
        T.distillation_loss(torch.zeros(2, 4, 8), torch.zeros(2, 4, 9), torch.zeros(2, 4, dtype=torch.long),
                            0.5, 1.0)


# -----------------------------------------------------------------------------
# the trainer

@pytest.mark.parametrize("bad", [dict(distill_alpha=-0.1), dict(distill_alpha=1.5),
                                 dict(distill_temperature=0.0), dict(distill_temperature=-1.0),
                                 dict(distill_temperature=float("inf"))])
def test_config_refuses_distillation_settings_out_of_range(bad):
    with pytest.raises(ValueError, match="distill"):
        cfg(**bad)


def test_alpha_above_zero_without_a_teacher_is_refused(corpus):
    with pytest.raises(ValueError, match="needs a teacher"):
        T.train(student(), *corpus, cfg(distill_alpha=0.5))


def test_a_teacher_with_another_vocabulary_is_refused(corpus):
    small = VanillaConfig(d_model=8, n_layers=1, n_heads=2, d_ff=8, max_seq=32)
    torch.manual_seed(0)
    s = VanillaGPT(dataclasses.replace(small, vocab_size=32))
    with pytest.raises(ValueError, match="vocabulary"):
        T.train(s, *corpus, cfg(distill_alpha=0.5), teacher=VanillaGPT(small))
    # a teacher without a config is caught on its first logits
    with pytest.raises(ValueError, match="do not match"):
        T.train(student(), *corpus, cfg(distill_alpha=0.5), teacher=Bigram(40, 4))


def test_a_teacher_whose_context_is_shorter_than_the_windows_is_refused(corpus):
    torch.manual_seed(0)
    short = VanillaGPT(VanillaConfig(vocab_size=32, d_model=8, n_layers=1, n_heads=2, d_ff=8, max_seq=16))
    with pytest.raises(ValueError, match="at most 16 tokens"):
        T.train(student(), *corpus, cfg(distill_alpha=0.5), teacher=short)


def test_a_teacher_at_alpha_zero_changes_nothing_bit_for_bit(corpus, teacher):
    plain = T.train(student(), *corpus, cfg())
    with_teacher = T.train(student(), *corpus, cfg(), teacher=teacher)
    assert strip(plain.history) == strip(with_teacher.history)
    assert plain.final_val_loss == with_teacher.final_val_loss
    assert same_weights(weights(plain.model), weights(with_teacher.model))


def test_distilled_training_is_deterministic_and_logs_both_losses(corpus, teacher):
    before = weights(teacher)
    a = T.train(student(), *corpus, cfg(distill_alpha=0.5, distill_temperature=2.0), teacher=teacher)
    b = T.train(student(), *corpus, cfg(distill_alpha=0.5, distill_temperature=2.0), teacher=teacher)
    assert strip(a.history) == strip(b.history) and a.final_val_loss == b.final_val_loss
    assert same_weights(weights(teacher), before)            # the teacher is not trained
    assert not teacher.training
    for h in a.history:
        assert h["train_loss"] != h["train_data_loss"]
    plain = T.train(student(), *corpus, cfg())
    assert a.final_val_loss != plain.final_val_loss


def test_a_distilled_run_resumes_bit_exactly_and_only_with_its_teacher(tmp_path, corpus, teacher):
    settings = dict(distill_alpha=0.7, distill_temperature=2.0, grad_accum=2)
    full = T.train(student(), *corpus, cfg(12, **settings), teacher=teacher)
    ckpt = tmp_path / "d.safetensors"

    class Crash(Exception):
        pass

    def crash_at_7(step, record):
        if step == 7:
            raise Crash

    c = cfg(12, **settings, checkpoint_path=str(ckpt), checkpoint_every=5)
    with pytest.raises(Crash):
        T.train(student(), *corpus, c, callback=crash_at_7, teacher=teacher)
    sidecar = json.loads((tmp_path / "d.safetensors.json").read_text())
    assert sidecar["config"]["distill_alpha"] == 0.7 and sidecar["config"]["distill_temperature"] == 2.0
    assert sidecar["config"]["teacher"]["model_class"] == "WideBigram"
    assert len(sidecar["config"]["teacher"]["weights_sha256"]) == 64
    assert not any(k.startswith("teacher") for k in sidecar)   # no teacher weights beside the record

    with pytest.raises(ValueError, match="needs a teacher"):
        T.train(student(), *corpus, c)
    with pytest.raises(ValueError, match="resume it with the same teacher"):
        T.train(student(), *corpus, cfg(12, **{**settings, "distill_alpha": 0.0},
                                        checkpoint_path=str(ckpt), checkpoint_every=5))
    other = WideBigram(32)
    other.load_state_dict(teacher.state_dict())
    with torch.no_grad():
        other.head.bias[0] += 1e-3
    with pytest.raises(ValueError, match="different teacher"):
        T.train(student(), *corpus, c, teacher=other)
    with pytest.raises(ValueError, match="different training config"):
        T.train(student(), *corpus, cfg(12, **{**settings, "distill_temperature": 1.0},
                                        checkpoint_path=str(ckpt), checkpoint_every=5), teacher=teacher)

    resumed = T.train(student(seed=99), *corpus, c, teacher=teacher)
    assert resumed.resumed_from_step == 5
    assert strip(resumed.history) == strip(full.history)
    assert resumed.final_val_loss == full.final_val_loss
    assert same_weights(weights(resumed.model), weights(full.model))


def test_a_teacher_whose_config_holds_a_tuple_resumes_from_its_json_record(tmp_path, corpus):
    from atome_core.models.routed import RoutedConfig, RoutedLM
    torch.manual_seed(0)
    routed = RoutedLM(RoutedConfig(vocab_size=32, d_model=8, n_layers=1))   # pathways: a tuple
    c = cfg(3, distill_alpha=0.5, checkpoint_path=str(tmp_path / "r.safetensors"))
    first = T.train(student(), *corpus, c, teacher=routed)
    again = T.train(student(), *corpus, c, teacher=routed)
    assert again.resumed_from_step == 3 and again.final_val_loss == first.final_val_loss


def test_a_run_without_a_teacher_is_not_resumed_with_one(tmp_path, corpus, teacher):
    ckpt = tmp_path / "plain.safetensors"
    T.train(student(), *corpus, cfg(3, checkpoint_path=str(ckpt)))
    with pytest.raises(ValueError, match="without a teacher"):
        T.train(student(), *corpus, cfg(3, checkpoint_path=str(ckpt)), teacher=teacher)
    assert T.train(student(), *corpus, cfg(3, checkpoint_path=str(ckpt))).resumed_from_step == 3


def test_a_checkpoint_written_before_distillation_existed_still_resumes(tmp_path, corpus):
    ckpt = tmp_path / "old.safetensors"
    first = T.train(student(), *corpus, cfg(3, checkpoint_path=str(ckpt)))
    # rewrite its record as the trainer wrote it before: no distill_* fields, no teacher
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file
    with safe_open(str(ckpt), "pt") as f:
        record = json.loads(f.metadata()["atome"])
    for key in ("distill_alpha", "distill_temperature", "teacher"):
        del record["config"][key]
    save_file(load_file(str(ckpt)), str(ckpt), metadata={"atome": json.dumps(record)})
    again = T.train(student(), *corpus, cfg(3, checkpoint_path=str(ckpt)))
    assert again.resumed_from_step == 3 and again.final_val_loss == first.final_val_loss


def test_jobs_rebuild_their_teacher_in_worker_processes(corpus, teacher):
    spec = (WideBigram, 32, {k: v.detach().numpy() for k, v in teacher.state_dict().items()})
    c = cfg(distill_alpha=0.6, distill_temperature=2.0)
    jobs = [T.TrainJob(f"s{i}", Bigram, 32, *corpus, c, init_seed=i, teacher=spec) for i in range(2)]
    parallel = T.run_jobs(jobs, workers=2)
    for i, result in enumerate(parallel):
        torch.manual_seed(i)
        direct = T.train(Bigram(32), *corpus, c, teacher=teacher)
        assert strip(result.history) == strip(direct.history)
        assert result.final_val_loss == direct.final_val_loss
        assert same_weights(result.state_dict, weights(direct.model))
    with pytest.raises(ValueError, match="model class, config, state_dict"):
        T.run_job(T.TrainJob("bad", Bigram, 32, *corpus, c, teacher=teacher))


# -----------------------------------------------------------------------------
# what it does

def test_a_small_student_learns_more_from_the_teacher_than_from_the_data_alone(corpus, teacher):
    """Same student, same seed, same batches, 60 steps: with alpha 0.9 (T = 2) the validation
    loss is lower and the student's predictions are closer to the teacher's than with alpha 0,
    for each of three seeds. (The teacher, 4x wider and trained 5x longer, is the better model.)"""
    train_tokens, val_tokens = corpus
    x = torch.from_numpy(val_tokens[:-1])[None]
    with torch.no_grad():
        log_p_teacher = F.log_softmax(teacher(x), -1)

    def kl_from_teacher(model):
        with torch.no_grad():
            log_p = F.log_softmax(model(x), -1)
        return float((log_p_teacher.exp() * (log_p_teacher - log_p)).sum(-1).mean())

    teacher_val = evaluate_loss(teacher, val_tokens, 32)
    for seed in range(3):
        runs = {}
        for alpha in (0.0, 0.9):
            c = cfg(60, lr=3e-2, log_every=0, seed=seed, distill_alpha=alpha, distill_temperature=2.0)
            r = T.train(student(seed), train_tokens, val_tokens, c, teacher=teacher)
            runs[alpha] = (r.final_val_loss, kl_from_teacher(r.model))
        (plain_val, plain_kl), (distilled_val, distilled_kl) = runs[0.0], runs[0.9]
        assert teacher_val < distilled_val < plain_val - 0.05
        assert distilled_kl < 0.8 * plain_kl
