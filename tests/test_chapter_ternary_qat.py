"""Chapter 2's analysis: the mode comparison's tables and costs, the trit statistics, the
learning-rate sweep's verdict and the deployed models' check."""
import math

import numpy as np
import pytest
import torch

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


def test_the_best_learning_rate_is_the_lowest_loss_and_the_lower_rate_on_a_tie():
    sweep = [_run("fp32", 0, 2.5, 1e-2), _run("fp32", 0, 2.5, 1e-3), _run("ternary", 0, 2.4, 1e-3),
             _run("ternary", 0, 2.3, 3e-2)]
    best = qat.best_learning_rates(sweep)
    assert best == {"fp32": (1e-3, 2.5), "ternary": (3e-2, 2.3)}
    assert qat.learning_rate_verdict(best).startswith("Ternary does prefer")
    assert "not" in qat.learning_rate_verdict({"fp32": (1e-2, 1.0), "ternary": (1e-3, 1.0)})
    assert "same" in qat.learning_rate_verdict({"fp32": (1e-2, 1.0), "ternary": (1e-2, 1.0)})
    assert qat.sweep_metrics(sweep)["lr_sweep"]["fp32"] == {"0.01": 2.5, "0.001": 2.5}


def test_trit_summary_weights_each_layer_by_its_number_of_trits():
    log = [{"step": 1, "layers": {"a": {"n": 10, "p0": 1.0, "entropy_bits": 0.0, "flips": 5}}},
           {"step": 9, "layers": {"a": {"n": 10, "p0": 0.5, "entropy_bits": 1.0, "flips": 2},
                                  "b": {"n": 30, "p0": 0.1, "entropy_bits": 1.5, "flips": 0}}}]
    s = qat.trit_summary(log)
    assert s["step"] == 9 and s["n_trits"] == 40
    assert s["p0_weighted"] == pytest.approx((0.5 * 10 + 0.1 * 30) / 40)
    assert s["entropy_bits_weighted"] == pytest.approx((10 + 45) / 40)
    assert s["flip_fraction_last_step"] == pytest.approx(2 / 40)
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


def test_compare_models_trains_each_model_with_its_own_steps_and_tracks_the_first_seed(monkeypatch):
    calls = []
    monkeypatch.setattr(qat, "compare_modes", lambda make, tr, va, cfg, seeds, track_seed, desc:
                        calls.append((desc, cfg.steps, cfg.lr, tuple(seeds), track_seed)) or desc)
    out = qat.compare_models({"atto-sized": 12, "60K": 8}, None, None, TrainConfig(steps=1, batch_size=2, seq_len=8, lr=0.5), [3, 4])
    assert out == {"atto-sized": "atto-sized", "60K": "60K"}
    assert calls == [("atto-sized", 12, 0.5, (3, 4), 3), ("60K", 8, 0.5, (3, 4), 3)]


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
