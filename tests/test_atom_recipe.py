import numpy as np
import pytest

from atome_core.chapters.atom_recipe import atom_config
from atome_core.data.curriculum import Curriculum
from atome_core.models.modern import ModernLM


def test_atom_3_4m_has_exactly_the_published_parameter_count():
    model = ModernLM(atom_config())
    assert model.num_params() == 3_412_800
    assert model.cfg.d_model // model.cfg.n_heads == 64   # head dimension of the recipe


def make():
    return Curriculum(corpora={"a": np.zeros(1000, np.int64), "b": np.ones(1000, np.int64)},
                      schedule=[(0.0, {"a": 1.0}), (0.5, {"a": 1.0, "b": 1.0}), (1.0, {"b": 1.0})])


def test_schedule_interpolates_and_holds():
    c = make()
    assert c.weights_at(1, 101) == {"a": 1.0, "b": 0.0}
    w = c.weights_at(26, 101)          # t = 0.25: halfway from (1, 0) to (1, 1) -> (1, 0.5)
    assert w["a"] == pytest.approx(2 / 3) and w["b"] == pytest.approx(1 / 3)
    assert c.weights_at(51, 101) == {"a": 0.5, "b": 0.5}
    assert c.weights_at(101, 101) == {"a": 0.0, "b": 1.0}


def test_batches_follow_the_weights_and_the_seed():
    c = make()
    x, y = c.batch(1, 101, 64, 8, np.random.default_rng(0))
    assert x.shape == (64, 8) and (x == 0).all()                 # only corpus a at the start
    x, _ = c.batch(101, 101, 64, 8, np.random.default_rng(0))
    assert (x == 1).all()
    x1, _ = c.batch(51, 101, 256, 8, np.random.default_rng(1))
    x2, _ = c.batch(51, 101, 256, 8, np.random.default_rng(1))
    assert np.array_equal(x1, x2) and 0.35 < float((x1[:, 0] == 1).float().mean()) < 0.65


def test_bad_curricula_are_rejected():
    with pytest.raises(ValueError, match="unknown corpora"):
        Curriculum({"a": np.zeros(10)}, [(0.0, {"z": 1.0})])
    with pytest.raises(ValueError, match="increase"):
        Curriculum({"a": np.zeros(10)}, [(0.5, {"a": 1.0}), (0.1, {"a": 1.0})])
    with pytest.raises(ValueError, match="not all zero"):
        Curriculum({"a": np.zeros(10)}, [(0.0, {"a": 0.0})])


def test_bits_per_byte_is_tokenizer_fair():
    import math

    import torch

    from atome_core.data.tokenizer import BPETokenizer, ByteTokenizer
    from atome_core.evaluate import text_bits_per_byte

    class Uniform(torch.nn.Module):          # the same probability for every token
        def __init__(self, vocab):
            super().__init__()
            self.vocab = vocab

        def forward(self, idx):
            return torch.zeros(*idx.shape, self.vocab)

    text = "to be or not to be, that is the question " * 40
    assert text_bits_per_byte(Uniform(256), ByteTokenizer(), text, 32) == pytest.approx(8.0)
    bpe = BPETokenizer.train([text], vocab_size=300)
    # uniform over 300 tokens: log2(300) bits per token, spread over the bytes each token spells
    tokens = bpe.encode(text)
    bpb = text_bits_per_byte(Uniform(300), bpe, text, 16)
    assert bpb < 8.0 and bpb == pytest.approx(math.log2(300) * len(tokens) / len(text.encode()), rel=0.2)


def test_trainer_follows_and_logs_the_curriculum():
    import torch

    from atome_core.models.modern import ModernConfig, ModernLM
    from atome_core.train import TrainConfig, train
    rng = np.random.default_rng(0)
    c = Curriculum({"low": rng.integers(0, 8, 3000), "high": rng.integers(8, 16, 3000)},
                   [(0.0, {"low": 1.0}), (1.0, {"high": 1.0})])
    cfg = TrainConfig(steps=6, batch_size=4, seq_len=8, lr=1e-2, log_every=1, seed=3)
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        m = ModernLM(ModernConfig(vocab_size=16, d_model=12, n_layers=1, n_heads=3, n_kv_heads=1, d_ff=8))
        runs.append(train(m, c, rng.integers(0, 16, 500), cfg))
    hist = runs[0].history
    assert hist[0]["mixture"] == {"low": 1.0, "high": 0.0} and hist[-1]["mixture"] == {"low": 0.0, "high": 1.0}
    assert [h["train_loss"] for h in hist] == [h["train_loss"] for h in runs[1].history]   # seeded
