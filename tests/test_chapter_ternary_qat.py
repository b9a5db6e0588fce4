"""Chapter 2's analysis: the mode comparison's tables and costs, the trit statistics, the
learning-rate sweep's verdict and the deployed models' check."""
import math

import numpy as np
import pytest
import torch

from atome_core import recipe
from atome_core.chapters import ternary_qat as qat
from atome_core.train import TrainConfig


def _run(mode, seed, loss, lr=1e-3):
    return qat.QATRun(mode=mode, seed=seed, lr=lr, history=[], final_val_loss=loss, tokens_per_second=1.0)


def _summary():
    runs = [_run("fp32", s, 2.0 + s) for s in (0, 1, 2)] + [_run("ternary", s, 2.2 + s) for s in (0, 1, 2)]
    runs += [_run("ternary+int8", s, 2.42 + s) for s in (0, 1, 2)]
    return qat.summarise(runs)


def test_summary_rows_give_the_median_and_range_and_the_change_against_fp32():
    rows = qat.summary_rows({"60K": _summary()})
    assert [r[1] for r in rows] == ["fp32", "ternary", "ternary+int8"]
    assert rows[1][2] == {"median": 3.2, "min": 2.2, "max": 4.2, "n": 3}
    assert rows[1][3] == pytest.approx(3.2 / math.log(2)) and rows[1][4] == "+6.7 %" and rows[0][4] == "+0.0 %"


def test_mode_costs_compare_ternary_with_fp32_and_int8_activations_with_ternary():
    costs = qat.mode_costs({"fp32": {"median": 2.0}, "ternary": {"median": 2.2}, "ternary+int8": {"median": 2.42}})
    assert costs["ternary_cost_pct"] == pytest.approx(10.0) and costs["int8_cost_pct"] == pytest.approx(10.0)
    assert (costs["fp32"], costs["ternary"], costs["int8"]) == (2.0, 2.2, 2.42)


def test_each_mode_gets_its_sweeps_best_rate_and_int8_activations_take_ternarys():
    rates = qat.mode_rates(recipe.best_rates({"fp32": {1e-2: 2.5, 1e-3: 2.5}, "ternary": {1e-3: 2.4, 3e-2: 2.3}}))
    assert rates == {"fp32": 1e-3, "ternary": 3e-2, "ternary+int8": 3e-2}
    assert qat.learning_rate_verdict(rates).startswith("Ternary does prefer")
    assert "not" in qat.learning_rate_verdict({"fp32": 1e-2, "ternary": 1e-3})
    assert "same" in qat.learning_rate_verdict({"fp32": 1e-2, "ternary": 1e-2})


def test_the_sweep_table_marks_a_chosen_rate_at_the_edge_and_the_prose_names_it():
    sweeps = {"60K": {"fp32": {3e-3: 2.6, 1e-2: 2.4, 3e-2: 2.5}, "ternary": {3e-3: 2.9, 1e-2: 2.8, 3e-2: 2.7}}}
    rates = {name: qat.mode_rates(recipe.best_rates(per_mode)) for name, per_mode in sweeps.items()}
    header, rows = qat.sweep_rows(sweeps, rates)
    assert header == ["model", "mode", "lr 0.003", "lr 0.01", "lr 0.03", "chosen"]
    assert rows[0] == ["60K", "fp32", 2.6, 2.4, 2.5, "0.01"]
    assert rows[1][-1] == "0.03 (edge of the sweep)"
    assert qat.edge_sentence(sweeps).startswith("The chosen rate of ternary on the 60K model lies at the edge")
    sweeps["atto-sized"] = {"fp32": {1e-2: 2.0, 3e-2: 1.9}}
    rates["atto-sized"] = {"fp32": 3e-2}
    assert qat.edge_sentence(sweeps).startswith("The chosen rates of ternary on the 60K model and fp32 on the atto-sized")
    del sweeps["atto-sized"], rates["atto-sized"]
    sweeps["60K"]["ternary"][3e-2] = 3.0
    assert qat.edge_sentence(sweeps) == "Every chosen rate lies inside its sweep."
    metrics = qat.sweep_metrics(sweeps, rates)
    assert metrics["lr_sweep"]["60K"]["fp32"] == {"0.003": 2.6, "0.01": 2.4, "0.03": 2.5}
    assert metrics["lr_at_edge"]["60K"] == {"fp32": False, "ternary": False}


def test_the_sweep_scores_each_rate_on_the_text_it_is_given_to_tune_on(monkeypatch):
    seen = []

    def fake_train_mode(make, mode, train_tokens, tune_tokens, cfg, desc=""):
        seen.append((mode, cfg.lr, cfg.steps, cfg.batch_size, len(train_tokens), len(tune_tokens)))
        return _run(mode, cfg.seed, cfg.lr * 10, cfg.lr)
    monkeypatch.setattr(qat, "train_mode", fake_train_mode)
    train = np.zeros(1000, dtype=np.int64)
    sweep_part, tune = recipe.tuning_split(train, 100)
    scores = qat.sweep_models({"60K": 7}, sweep_part, tune, [1e-3, 1e-2])
    assert scores == {"60K": {"fp32": {1e-3: 1e-2, 1e-2: 0.1}, "ternary": {1e-3: 1e-2, 1e-2: 0.1}}}
    assert {(s[2], s[3], s[4], s[5]) for s in seen} == {(7, recipe.BOOK_RECIPE["batch_size"], 900, 100)}


def test_the_budget_sentence_says_why_a_shorter_budget_and_what_the_books_would_cost():
    runs = [qat.QATRun(mode="fp32", seed=s, lr=1e-2, history=[], final_val_loss=1.0, tokens_per_second=1024.0)
            for s in range(3)]
    text = qat.budget_sentence(500, 1500, runs)
    # three runs of 1,500 steps of 1,024 bytes at 1,024 bytes per second
    assert "1,500 steps" in text and "trains 500" in text and "about 4,500 s" in text
    assert qat.budget_sentence(1500, 1500, runs).startswith("The 60K comparison trains the book's budget")


def test_loss_by_tokens_puts_each_smoothed_loss_at_its_training_bytes():
    history = [{"step": i, "train_loss": float(i), "tokens_seen": 1024 * i} for i in range(1, 11)]
    runs = [qat.QATRun(mode="fp32", seed=s, lr=1e-2, history=history, final_val_loss=1.0, tokens_per_second=1.0)
            for s in (0, 1)]
    tokens, curves = qat.loss_by_tokens(runs, "fp32")
    assert curves.shape == (2, 9) and len(tokens) == 9
    assert np.allclose(curves[0], np.arange(1, 10) + 0.5) and tokens[0] == 1024    # k = 2


def test_trit_summary_weights_each_layer_by_its_number_of_trits():
    log = [{"step": 1, "layers": {"a": {"n": 10, "p0": 1.0, "entropy_bits": 0.0, "flips_per_step": 5}}},
           {"step": 9, "layers": {"a": {"n": 10, "p0": 0.5, "entropy_bits": 1.0, "flips_per_step": 2},
                                  "b": {"n": 30, "p0": 0.1, "entropy_bits": 1.5, "flips_per_step": 0}}}]
    s = qat.trit_summary(log)
    assert s["step"] == 9 and s["n_trits"] == 40
    assert s["p0_weighted"] == pytest.approx((0.5 * 10 + 0.1 * 30) / 40)
    assert s["entropy_bits_weighted"] == pytest.approx((10 + 45) / 40)
    assert s["flip_fraction_per_step"] == pytest.approx(2 / 40)
    assert qat.layer_series(log, "a", "p0") == [1.0, 0.5]


def test_the_expected_zero_fraction_matches_gaussian_weights_quantised_by_absmean():
    threshold_sd, p0 = qat.gaussian_zero_fraction()
    w = torch.randn(200_000, generator=torch.Generator().manual_seed(0))
    alpha = w.abs().mean()
    assert threshold_sd == pytest.approx(float(alpha / 2), abs=0.01)
    assert p0 == pytest.approx(float((w.abs() < alpha / 2).float().mean()), abs=0.01)


def test_smooth_averages_over_at_most_a_fifth_of_the_series():
    assert np.allclose(qat.smooth(np.arange(10.0)), np.arange(10.0)[:9] + 0.5)   # k = 2
    assert len(qat.smooth(np.ones(100), k=25)) == 81 and len(qat.smooth([3.0])) == 1


def test_compare_models_trains_each_model_with_its_own_steps_and_rates_and_tracks_the_first_seed(monkeypatch):
    calls = []
    monkeypatch.setattr(qat, "compare_modes", lambda make, tr, va, cfg, seeds, track_seed, desc, rates:
                        calls.append((desc, cfg.steps, cfg.batch_size, tuple(seeds), track_seed, rates)) or desc)
    rates = {"atto-sized": {"fp32": 0.5}, "60K": {"fp32": 0.25}}
    out = qat.compare_models({"atto-sized": 12, "60K": 8}, None, None, [3, 4], rates)
    assert out == {"atto-sized": "atto-sized", "60K": "60K"}
    batch = recipe.BOOK_RECIPE["batch_size"]
    assert calls == [("atto-sized", 12, batch, (3, 4), 3, {"fp32": 0.5}), ("60K", 8, batch, (3, 4), 3, {"fp32": 0.25})]


def test_compare_modes_trains_each_mode_at_its_own_rate(monkeypatch):
    seen = []
    monkeypatch.setattr(qat, "train_mode", lambda make, mode, tr, va, cfg, track_trits, desc:
                        seen.append((mode, cfg.seed, cfg.lr, track_trits)))
    qat.compare_modes(None, None, None, TrainConfig(steps=1, batch_size=2, seq_len=8, lr=0.5), seeds=[0, 1],
                      modes=("fp32", "ternary"), track_seed=1, rates={"ternary": 0.125})
    assert seen == [("fp32", 0, 0.5, False), ("ternary", 0, 0.125, False), ("fp32", 1, 0.5, True),
                    ("ternary", 1, 0.125, True)]


def test_the_two_models_have_the_sizes_the_chapter_names():
    sizes = {name: n for name, n, _ in qat.parameter_rows({"atto-sized": 1, "60K": 2})}
    assert 8_000 < sizes["atto-sized"] < 10_000 and 55_000 < sizes["60K"] < 65_000


def test_deployed_gaps_check_every_run_with_ternary_weights_and_only_those():
    torch.manual_seed(0)
    make = qat.routed_factory(qat.MODEL_SHAPES["atto-sized"])
    runs = {"tiny": []}
    for mode in qat.MODES:
        r = _run(mode, 0, 1.0)
        r.model = make(qat.MODES[mode])
        runs["tiny"].append(r)
    probe = torch.randint(0, 256, (1, 16))
    gaps = qat.deployed_gaps(runs, probe)
    assert [(name, mode) for name, mode, _, _ in gaps] == [("tiny", "ternary"), ("tiny", "ternary+int8")]
    assert all(g["bit_identical"] and g["n_logits"] == 16 * 256 for *_, g in gaps)


def test_the_paper_plan_sweeps_every_rate_for_two_modes_then_trains_every_seed_and_mode_at_each_models_steps():
    from atome_core.book.estimate import chapter_namespace
    P = chapter_namespace("02_ternary_qat", "paper")
    plan = qat.training_plan(P)
    steps = {"atto-sized": P.steps_small, "60K": P.steps_60k}
    n_sweep = len(steps) * len(P.sweep_lrs) * len(qat.SWEEP_MODES)
    assert len(plan) == n_sweep + len(steps) * len(P.seeds) * len(qat.MODES)
    assert [s.steps for s in plan[:n_sweep]] == ([P.steps_small] * (n_sweep // 2) + [P.steps_60k] * (n_sweep // 2))
    assert {(s.family, s.batch_size, s.seq_len, s.grad_accum, s.autocast_bf16) for s in plan} == {
        ("routed", recipe.BOOK_RECIPE["batch_size"], recipe.BOOK_RECIPE["seq_len"], 1, False)}
    assert sum(s.tokens for s in plan) == recipe.book_tokens(
        (len(P.sweep_lrs) * len(qat.SWEEP_MODES) + len(P.seeds) * len(qat.MODES)) * (P.steps_small + P.steps_60k))
    # 8-bit activations are a mode of their own in the runs, never swept
    assert sum('"act_bits": 8' in s.model_config for s in plan) == len(steps) * len(P.seeds)
    fewer = qat.training_plan(type(P)(**{**vars(P), "seeds": [0], "steps_60k": 7}))
    assert len(fewer) == n_sweep + len(steps) * len(qat.MODES) and [s.steps for s in fewer[-3:]] == [7, 7, 7]
