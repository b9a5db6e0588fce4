import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from atome_core.chapters import ternary_qat as qat
from atome_core.quant import QuantConfig, TernaryEmbedding, TernaryLinear
from atome_core.train import TrainConfig


class Bigram(nn.Module):
    def __init__(self, quant: QuantConfig, vocab=16, width=8):
        super().__init__()
        self.embed = TernaryEmbedding(vocab, width, quant=quant)
        self.mix = TernaryLinear(width, width, quant=quant)
        self.out = TernaryLinear(width, vocab, quant=quant)

    def forward(self, idx):
        return self.out(torch.tanh(self.mix(self.embed(idx))))

    def loss(self, idx, targets):
        logits = self(idx)
        return F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))


def tokens(n, seed=0):
    rng = np.random.default_rng(seed)
    # a learnable sequence: mostly +1 steps mod 16, some noise
    steps = np.where(rng.random(n) < 0.8, 1, rng.integers(0, 16, n))
    return (np.cumsum(steps) % 16).astype(np.int64)


CFG = TrainConfig(steps=30, batch_size=8, seq_len=16, lr=1e-2, log_every=1)


def test_modes_train_and_ternary_costs_are_measured():
    runs = qat.compare_modes(Bigram, tokens(4000), tokens(800, 1), CFG, seeds=[0, 1], track_seed=0)
    assert [(r.mode, r.seed) for r in runs] == [(m, s) for s in (0, 1) for m in qat.MODES]
    for r in runs:
        assert np.isfinite(r.final_val_loss) and r.final_val_loss < np.log(16)  # learned something
    summary = qat.summarise(runs)
    assert set(summary) == set(qat.MODES) and summary["fp32"]["n_seeds"] == 2
    tracked = [r for r in runs if r.seed == 0 and r.mode == "ternary"][0]
    assert len(tracked.trit_log) == CFG.steps
    layer = tracked.trit_log[-1]["layers"]["embed"]
    assert 0.0 <= layer["p0"] <= 1.0 and 0.0 <= layer["entropy_bits"] <= np.log2(3) + 1e-9
    assert sum(rec["layers"]["out"]["flips"] for rec in tracked.trit_log) > 0   # trits move
    assert not [r for r in runs if r.seed == 1][0].trit_log                       # untracked seed


def test_same_seed_same_result():
    a = qat.train_mode(Bigram, "ternary+int8", tokens(4000), tokens(800, 1), CFG)
    b = qat.train_mode(Bigram, "ternary+int8", tokens(4000), tokens(800, 1), CFG)
    assert a.final_val_loss == b.final_val_loss
    assert [h["train_loss"] for h in a.history] == [h["train_loss"] for h in b.history]


def test_deployed_model_from_exported_trits_is_bit_identical():
    run = qat.train_mode(Bigram, "ternary", tokens(4000), tokens(800, 1), CFG)
    gap = qat.deployed_forward_gap(run.model, torch.from_numpy(tokens(64)).view(4, 16))
    assert gap["bit_identical"] and gap["max_abs_diff"] == 0.0
    # the deployed copy really holds {-a, 0, +a} weights and no longer quantises
    deployed = qat.deployed_model(run.model)
    w = deployed.mix.weight
    assert deployed.mix.quant.weights == "fp32" and len(torch.unique(w)) <= 3


def test_int8_activations_change_the_forward():
    torch.manual_seed(0)
    m8 = Bigram(qat.MODES["ternary+int8"])
    torch.manual_seed(0)
    m32 = Bigram(qat.MODES["ternary"])
    idx = torch.from_numpy(tokens(32)).view(2, 16)
    assert not torch.equal(m8(idx), m32(idx))
    assert (m8(idx) - m32(idx)).abs().max() < 0.5
