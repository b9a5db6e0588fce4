"""Chapter 1's fair contrast: the transformer's shapes fill each budget exactly, its search
makes as many runs as the n-gram search did, and the sliding-window scorer gives every
character after the first one prediction with at least half a block of context."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from atome_core.chapters import atto_comparison as ac
from atome_core.chapters import atto_series
from atome_core.evaluate import sliding_loss, sliding_starts
from atome_core.models import tiny_transformer as tt
from atome_core.models.atto import BUDGETS

pytestmark = pytest.mark.usefixtures("one_thread")


def _scored_targets(n, block, stride):
    """{target index: context length} as the plan scores them."""
    L = min(block, n)
    out = {}
    for start, first in sliding_starts(n, block, stride):
        for j in range(first, L):
            assert start + j + 1 not in out, "a target scored twice"
            out[start + j + 1] = j + 1
    return out


@pytest.mark.parametrize("n, block, stride", [(1, 4, 2), (7, 8, 4), (8, 8, 4), (9, 8, 4), (100, 8, 4),
                                              (101, 33, 16), (50, 5, 5), (50, 5, 1)])
def test_sliding_windows_score_every_target_once_with_at_least_block_minus_stride_plus_one_context(n, block, stride):
    scored = _scored_targets(n, block, stride)
    assert sorted(scored) == list(range(1, n + 1))
    for t, ctx in scored.items():
        assert ctx == t if t <= min(block, n) else block - stride + 1 <= ctx <= block


def test_sliding_windows_refuse_a_stride_longer_than_the_block_or_no_predictions():
    with pytest.raises(ValueError):
        sliding_starts(10, 4, 5)
    with pytest.raises(ValueError):
        sliding_starts(0, 4, 2)


def _naive_sum(model, tokens, block, stride):
    """Summed nats, one forward pass per character over exactly the context the plan gives it."""
    total = 0.0
    L = min(block, len(tokens) - 1)
    for start, first in sliding_starts(len(tokens) - 1, block, stride):
        for j in range(first, L):
            t = start + j + 1
            x = torch.from_numpy(tokens[start:t])[None]
            logp = F.log_softmax(model(x)[0, -1].double(), dim=-1)
            total -= logp[tokens[t]].item()
    return total


@pytest.mark.parametrize("length", [6, 17, 60])
def test_sliding_loss_equals_a_per_character_computation_on_a_tiny_transformer(length):
    torch.manual_seed(0)
    model = tt.TinyTransformer(tt.TinyTransformerConfig(vocab_size=64, n_embd=8, n_layer=2, n_head=2, n_mlp=12,
                                                        block_size=8))
    model.eval()
    tokens = np.random.default_rng(1).integers(0, 64, length).astype(np.int64)
    with torch.no_grad():
        naive = _naive_sum(model, tokens, 8, 4) / (length - 1)
    # the same float32 forward on shorter inputs: equal up to float32 rounding, not bit for bit
    assert sliding_loss(model, tokens, 8, 4, batch_size=3) == pytest.approx(naive, rel=1e-6)


def test_sliding_loss_gives_a_model_more_context_than_non_overlapping_windows():
    # a copy task the block can only solve with context: half-block overlap keeps it
    torch.manual_seed(0)
    tokens = np.tile(np.random.default_rng(0).integers(0, 64, 6), 40).astype(np.int64)
    model = tt.TinyTransformer(tt.TinyTransformerConfig(vocab_size=64, n_embd=16, n_layer=1, n_head=2, n_mlp=16,
                                                        block_size=12))
    atto_series.train_recipe(model, tokens, tokens[:25], steps=120, batch_size=16, seq_len=12, lr=3e-2, seed=0)
    from atome_core.evaluate import evaluate_loss
    assert sliding_loss(model, tokens, 12) < evaluate_loss(model, tokens, 12)


def test_every_transformer_shape_has_exactly_its_budget():
    for budget in BUDGETS:
        shapes = tt.shape_candidates(budget, atto_series.search_widths(budget, n_widths=3))
        assert (budget == 64) == (not shapes)
        assert len(set(shapes.values())) == len(shapes)
        for (E, L, H, _), cfg in shapes.items():
            assert (cfg.n_embd, cfg.n_layer, cfg.n_head) == (E, L, H)
            assert tt.count_params(cfg) == tt.TinyTransformer(cfg).num_params() == budget
            assert H == 1 or E // H >= 2
            assert 8 <= cfg.block_size <= 256


def _fake_training(monkeypatch, losses):
    """Each run's tuning loss from losses(cfg, lr); records (cfg, lr) in order."""
    calls = []

    def fake_train(cfg, train, *, steps, chars_per_step, lr, seed, progress_desc):
        calls.append((cfg, lr))
        return SimpleNamespace(cfg=cfg, lr=lr), SimpleNamespace(train_seconds=1.0)

    monkeypatch.setattr(atto_series, "train_transformer", fake_train)
    monkeypatch.setattr(atto_series, "transformer_loss", lambda m, tokens: losses(m.cfg, m.lr))
    return calls


def test_the_transformer_search_makes_exactly_the_runs_it_is_given_and_walks_from_the_best(monkeypatch):
    widths = atto_series.search_widths(4096, n_widths=3)
    pool = tt.shape_candidates(4096, widths)
    key_of = {cfg: k for k, cfg in pool.items()}
    # deeper and smaller blocks are better: the walk must follow them
    calls = _fake_training(monkeypatch, lambda cfg, lr: 3.0 - 0.1 * cfg.n_layer + cfg.block_size / 1000
                           + (0.05 if lr != 0.03 else 0.0))
    r = atto_series.search_transformer(4096, 12, np.zeros(10), np.zeros(10), widths=widths, steps=1,
                                       chars_per_step=64, lr=0.03, extra_lrs=(0.01, 0.06))
    assert len(calls) == 12 == atto_series.search_runs(r)
    assert key_of[calls[0][0]] == next(iter(pool))                 # the widest, first in order
    assert [lr for _, lr in calls[-2:]] == [0.01, 0.06] and r.lr == 0.03
    best = None
    for cfg, _ in calls[:10]:                                      # each next shape is nearest the best so far
        if best is not None:
            untried = [k for k in pool if k not in {key_of[c] for c, _ in calls[:calls.index((cfg, 0.03))]}]
            nearest = min(atto_series.axes_changed(k, best) for k in untried)
            assert atto_series.axes_changed(key_of[cfg], best) == nearest
        if best is None or r.shape_losses[key_of[cfg]] < r.shape_losses[best]:
            best = key_of[cfg]
    assert r.best == pool[best] and tt.count_params(r.best) == 4096


def test_the_transformer_search_stops_when_every_shape_was_tried_and_is_none_where_none_fits(monkeypatch):
    calls = _fake_training(monkeypatch, lambda cfg, lr: 1.0)
    pool = tt.shape_candidates(128, (1,))
    r = atto_series.search_transformer(128, len(pool) + 10, np.zeros(10), np.zeros(10), widths=(1,), steps=1,
                                       chars_per_step=64, lr=0.03)
    assert len(r.shape_losses) == len(pool) == len(calls)
    assert atto_series.search_transformer(64, 5, np.zeros(10), np.zeros(10), widths=(1,), steps=1,
                                          chars_per_step=64, lr=0.03) is None


def test_search_transformers_give_each_budget_the_n_gram_search_s_run_count(monkeypatch):
    _fake_training(monkeypatch, lambda cfg, lr: 2.0)
    atto = {b: SimpleNamespace(shape_losses=dict.fromkeys(range(n)), variant_losses=[None] * v,
                               lr_losses={0.03: 1, 0.06: 1})
            for b, n, v in ((64, 1, 0), (512, 5, 3), (2048, 9, 4))}
    tf = atto_series.search_transformers(atto, np.zeros(10), np.zeros(10), steps=1, chars_per_step=64, lr=0.03,
                                         extra_lrs=(0.06,))
    assert tf[64] is None
    assert {b: atto_series.search_runs(tf[b]) for b in (512, 2048)} == {512: 9, 2048: 14}
    rows = ac.search_budget_rows(atto, tf, steps=150)
    assert rows[0][2] == "no transformer fits" and rows[1][1:] == [9, 9, 150, 1350, 1350]
    assert ac.search_budget_summary(atto, tf, 150) == {"ngram_steps": 23 * 150, "transformer_steps": 23 * 150,
                                                       "fewer": []}


def test_transformer_finalists_add_the_best_deeper_shape_only_for_a_one_layer_winner():
    one = tt.TinyTransformerConfig(n_embd=4, n_layer=1, n_head=1, n_mlp=8, block_size=16)
    two_a = tt.TinyTransformerConfig(n_embd=4, n_layer=2, n_head=1, n_mlp=8, block_size=16)
    two_b = tt.TinyTransformerConfig(n_embd=4, n_layer=2, n_head=2, n_mlp=8, block_size=16)
    r = atto_series.SearchResult(0, {"a": 2.0, "b": 2.5, "c": 2.4}, {"a": one, "b": two_a, "c": two_b}, [], one,
                                 2.0, 0.0, 0.03, {0.03: 2.0})
    assert atto_series.transformer_finalists(r) == [one, two_b]
    r.best = two_a
    assert atto_series.transformer_finalists(r) == [two_a]


def test_a_real_transformer_search_and_finalist_round_keep_the_budget_and_score_every_seed():
    tokens = np.random.default_rng(0).integers(0, 64, 4000)
    r = atto_series.search_transformer(1024, 4, tokens[:3000], tokens[3000:3500], widths=(4, 8), steps=2,
                                       chars_per_step=64, lr=1e-2, extra_lrs=(2e-2,))
    assert atto_series.search_runs(r) == 4 and tt.count_params(r.best) == 1024 and r.lr in (1e-2, 2e-2)
    runs = atto_series.train_transformer_series({1024: r, 64: None}, tokens[:3000], tokens[3500:], tokens[3000:3500],
                                                seeds=[0, 1], steps=2, chars_per_step=64)
    assert list(runs.losses) == [1024] and set(runs.losses[1024]) == {0, 1}
    assert runs.models[1024].num_params() == 1024
    assert runs.losses[1024][0] == pytest.approx(atto_series.transformer_loss(runs.models[1024], tokens[3500:]))


def test_contest_rows_name_the_family_with_the_lower_mean_and_mark_narrow_gaps():
    spread = {256: np.array([3.0, 3.0]), 1024: np.array([2.0, 2.2]), 4096: np.array([2.0, 2.0])}
    tf_spread = {256: np.array([2.5, 2.5]), 1024: np.array([2.15, 2.15])}
    rows = ac.contest_rows([64, 256, 1024, 4096], spread, tf_spread)
    assert [r[0] for r in rows] == [256, 1024]
    assert rows[0][4] == "transformer" and rows[0][3].startswith("-")
    assert rows[1][4] == "n-gram (narrow)"   # 2.15 vs 2.10: under two sd of the n-gram's seeds


def test_the_n_gram_search_tries_its_winner_at_each_extra_rate_and_counts_every_run():
    tokens = np.random.default_rng(0).integers(0, 64, 5000)
    r = atto_series.search_budget(512, tokens, tokens[:600], steps=2, batch_size=4, seq_len=16, lr=1e-2,
                                  extra_lrs=(5e-3, 2e-2))
    assert set(r.lr_losses) == {1e-2, 5e-3, 2e-2} and r.lr_losses[r.lr] == min(r.lr_losses.values())
    assert atto_series.search_runs(r) == len(r.shape_losses) + len(r.variant_losses) + 2


def test_family_seconds_add_each_budget_s_search_and_kept_runs_only_at_the_budgets_asked():
    search = {256: SimpleNamespace(seconds=2.0), 1024: SimpleNamespace(seconds=5.0)}
    runs = SimpleNamespace(losses={256: {}, 1024: {}}, seconds={256: {0: 1.0, 1: 1.5}, 1024: {0: 4.0}})
    assert ac.family_seconds(search, runs) == 2.0 + 2.5 + 5.0 + 4.0
    assert ac.family_seconds(search, runs, [256]) == 4.5
