"""Chapter 5: the size ladder, the router statistics and `atome train`."""
import json
import math

import numpy as np
import pytest
import torch

from atome_core import formats, recipe
from atome_core.chapters import reversal as ra
from atome_core.cli import main as atome
from atome_core.evaluate import eval_windows, evaluate_loss
from atome_core.formats.model_file import load_model
from atome_core.models import presets
from atome_core.models.routed import RoutedConfig, RoutedLM
from atome_core.models.vanilla import PUBLISHED_944K

# -----------------------------------------------------------------------------
# the ladder

def test_ladder_baselines_are_param_fair_at_every_rung():
    rows = recipe.ladder_table()
    assert {(r["family"], r["size"]) for r in rows} == set(presets.LADDER)
    for r in rows:
        model = presets.build_model(r["family"], r["size"])
        assert r["params"] == model.num_params()
        assert abs(r["gap_to_routed"]) < 0.01, r
    sizes = [next(r["params"] for r in rows if r["family"] == "routed" and r["size"] == s) for s in presets.SIZES]
    assert sizes == sorted(sizes) and sizes[-1] / sizes[0] > 50


def test_ladder_ends_are_the_kits_models():
    # the kit's published shapes and counts (../shared/interop/README.md)
    assert presets.count_params(presets.build_model("routed", "60k")) == 60_800
    assert presets.count_params(presets.build_model("routed", "944k")) == 944_640
    assert presets.count_params(presets.build_model("vanilla", "944k")) == 950_608
    assert formats.as_config(presets.ladder_config("routed", "944k")) == formats.PRESETS["944k"]
    assert presets.ladder_config("vanilla", "944k") == PUBLISHED_944K


def test_deployed_bytes_routed_is_the_real_blob_baselines_fp32():
    model = presets.build_model("routed", "15k", init_seed=3)
    got = recipe.deployed_bytes(model)
    blob = formats.write_blob(model.cfg, formats.tensors_from_state_dict(model.state_dict(), model.cfg))
    assert got["bytes"] == len(blob)
    cfg, tensors = formats.read_blob(blob)             # the bytes are a loadable model
    assert cfg == formats.as_config(model.cfg)
    vanilla = presets.build_model("vanilla", "15k")
    assert recipe.deployed_bytes(vanilla) == {"format": "FP32", "bytes": 4 * vanilla.num_params()}
    # ternary packing: well under a fifth of FP32's bytes at the same parameter count
    assert got["bytes"] < 0.2 * recipe.deployed_bytes(vanilla)["bytes"]


def test_bad_cells_are_refused():
    with pytest.raises(ValueError, match="family"):
        presets.ladder_config("gpt", "15k")
    with pytest.raises(ValueError, match="size"):
        presets.ladder_config("routed", "1m")
    with pytest.raises(ValueError, match="token budget"):
        recipe.steps_for(0, recipe.CPU_RECIPE)
    with pytest.raises(ValueError, match="recipe"):
        recipe.train_config("gpu", 1000, 0)


def test_paper_recipe_is_the_kits_944k_recipe():
    cfg = recipe.train_config("paper", recipe.PAPER_TOKENS, seed=0, device="cpu")
    assert (cfg.steps, cfg.batch_size, cfg.grad_accum, cfg.seq_len) == (30_000, 64, 4, 256)
    assert (cfg.lr, cfg.min_lr, cfg.warmup_steps, cfg.schedule) == (3e-4, 3e-5, 1000, "cosine")
    assert (cfg.betas, cfg.weight_decay, cfg.grad_clip) == ((0.9, 0.95), 0.1, 1.0)
    assert cfg.autocast_bf16 is False               # BF16 autocast only on CUDA
    if torch.cuda.is_available():
        assert recipe.train_config("paper", 10**6, seed=0, device="cuda").autocast_bf16 is True
    else:
        with pytest.raises(ValueError, match="CUDA"):
            recipe.pick_device("cuda")


def test_paper_recipe_trains_with_gradient_accumulation_on_cpu():
    # one optimizer step of 64 x 4 windows: the accumulation path the GPU runs, here in FP32
    tokens = np.random.default_rng(0).integers(0, 256, 20_000)
    summary, model = recipe.train_cell("routed", "15k", recipe.PAPER_RECIPE.tokens_per_step, seed=0,
                                       train_tokens=tokens[:18_000], val_tokens=tokens[18_000:],
                                       recipe="paper", device="cpu")
    assert summary["steps"] == 1 and summary["tokens"] == 64 * 4 * 256
    assert math.isfinite(summary["val_bpb"]) and not model.training
    untrained = presets.build_model("routed", "15k", init_seed=0)
    assert any(not torch.equal(a, b) for a, b in zip(model.state_dict().values(), untrained.state_dict().values()))


def test_crossover_is_found_and_interpolated_in_log_size():
    xs = [1e4, 1e5, 1e6]
    # a is better (lower) at the small end, worse at the large end; the gap goes -1 -> +1
    # between 1e5 and 1e6, so the crossing sits at their geometric middle
    found = ra.crossover(xs, [1.0, 2.0, 3.0], [2.0, 3.0, 2.0])
    assert len(found) == 1
    assert found[0]["between"] == (1e5, 1e6) and found[0]["a_better_below"] is True
    assert found[0]["at"] == pytest.approx(math.sqrt(1e5 * 1e6))
    assert ra.crossover(xs, [1, 1, 1], [2, 2, 2]) == []
    with pytest.raises(ValueError, match="increasing"):
        ra.crossover([3, 2, 1], [1, 1, 1], [2, 2, 2])


def test_median_by_cell_over_seeds():
    cells = [{"family": "routed", "size": "15k", "val_bpb": v} for v in (3.0, 1.0, 2.0)]
    assert ra.median_by_cell(cells)[("routed", "15k")] == {"median": 2.0, "min": 1.0, "max": 3.0, "n": 3}


# -----------------------------------------------------------------------------
# statistics

def test_spearman_of_monotone_data():
    x = np.linspace(0.1, 5, 50)
    assert ra.spearman(x, np.exp(x)) == pytest.approx(1.0)       # any increasing map
    assert ra.spearman(x, -x ** 3) == pytest.approx(-1.0)
    rng = np.random.default_rng(0)
    assert abs(ra.spearman(rng.normal(size=4000), rng.normal(size=4000))) < 0.05
    with pytest.raises(ValueError, match="constant"):
        ra.spearman(x, np.ones_like(x))
    with pytest.raises(ValueError, match="length"):
        ra.spearman(x, x[:-1])


def test_auroc_of_separable_identical_and_tied_samples():
    assert ra.auroc([0, 1, 2], [3, 4]) == 1.0
    assert ra.auroc([3, 4], [0, 1, 2]) == 0.0
    same = np.arange(20.0)
    assert ra.auroc(same, same) == 0.5
    # against counting every pair, ties at 1/2
    rng = np.random.default_rng(1)
    neg, pos = rng.integers(0, 6, 40), rng.integers(2, 8, 30)
    pairs = (pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean()
    assert ra.auroc(neg, pos) == pytest.approx(pairs)
    with pytest.raises(ValueError, match="one sample of each"):
        ra.auroc([], [1.0])


def test_bootstrap_intervals_contain_the_estimate_and_repeat_with_a_seed():
    rng = np.random.default_rng(2)
    neg, pos = rng.normal(0, 1, 200), rng.normal(0.7, 1, 150)
    a = ra.auroc_ci(neg, pos, n_boot=300, seed=7)
    assert a["low"] <= a["estimate"] <= a["high"] and a["high"] - a["low"] < 0.25
    assert a == ra.auroc_ci(neg, pos, n_boot=300, seed=7)
    assert a != ra.auroc_ci(neg, pos, n_boot=300, seed=8)
    x = rng.normal(size=(60, 32))
    y = x + rng.normal(size=(60, 32))
    s = ra.spearman_ci(x, y, n_boot=200, seed=3)
    assert s["low"] <= s["estimate"] <= s["high"] and s["estimate"] > 0.5
    assert s["n_units"] == 60 and s["n_pairs"] == 60 * 32
    assert s == ra.spearman_ci(x, y, n_boot=200, seed=3)


def test_separation_difference_of_a_perfect_and_a_useless_detector():
    rng = np.random.default_rng(5)
    perfect_in, perfect_out = rng.uniform(0, 1, 80), rng.uniform(2, 3, 60)
    useless_in, useless_out = rng.normal(size=80), rng.normal(size=60)
    d = ra.separation_difference_ci(perfect_in, perfect_out, useless_in, useless_out, n_boot=300, seed=1)
    assert d["low"] > 0.3 and d["low"] <= d["estimate"] <= d["high"]
    # direction-free: a perfect detector pointing the other way separates just as well
    flipped = ra.separation_difference_ci(-perfect_in, -perfect_out, useless_in, useless_out, n_boot=300, seed=1)
    assert flipped == d
    swapped = ra.separation_difference_ci(useless_in, useless_out, perfect_in, perfect_out, n_boot=300, seed=1)
    assert swapped["estimate"] == pytest.approx(-d["estimate"]) and swapped["high"] < 0
    with pytest.raises(ValueError, match="same windows"):
        ra.separation_difference_ci(perfect_in, perfect_out, useless_in[:-1], useless_out)


def test_window_bootstrap_is_wider_when_windows_differ():
    # each window has its own offset shared by both variables: tokens within a window are
    # not independent, and resampling whole windows must show the larger uncertainty
    rng = np.random.default_rng(4)
    offset = rng.normal(size=(30, 1)) * 3
    x, y = offset + rng.normal(size=(30, 50)), offset + rng.normal(size=(30, 50))
    by_window = ra.spearman_ci(x, y, n_boot=300, seed=0)
    by_token = ra.spearman_ci(x.ravel(), y.ravel(), n_boot=300, seed=0)
    assert by_window["estimate"] == pytest.approx(by_token["estimate"])
    assert by_window["high"] - by_window["low"] > 1.5 * (by_token["high"] - by_token["low"])


# -----------------------------------------------------------------------------
# model statistics

def test_per_token_stats_of_a_routed_model():
    torch.manual_seed(0)
    model = RoutedLM(RoutedConfig(d_model=16, n_layers=2, d_head=4))
    tokens = np.random.default_rng(0).integers(0, 256, 16 * 10 + 1)
    w = eval_windows(tokens, 16)
    assert w.shape == (10, 17) and (w[1, :] == tokens[16:33]).all()
    stats = ra.per_token_stats(model, w, batch_size=4)
    assert stats["loss"].shape == stats["msp"].shape == (10, 16)
    assert stats["router_entropy"].shape == (2, 10, 16)
    assert stats["loss"].mean() == pytest.approx(evaluate_loss(model, tokens, 16), rel=1e-5)
    assert (stats["router_entropy"] <= math.log(3) + 1e-6).all() and (stats["router_entropy"] >= 0).all()
    assert ((stats["msp"] > 0) & (stats["msp"] <= 1)).all()
    scores = ra.window_scores(stats)
    assert set(scores) == {"loss", "one_minus_msp", "entropy_mean", "entropy_layer_0", "entropy_layer_1"}
    assert scores["entropy_mean"] == pytest.approx((scores["entropy_layer_0"] + scores["entropy_layer_1"]) / 2)
    other = ra.window_scores(ra.per_token_stats(model, eval_windows(ra.shuffled_bytes(tokens, 0), 16)))
    table = ra.detection_table(scores, {"shuffled": other}, n_boot=50)
    assert set(table["shuffled"]) == set(scores) | {"entropy_vs_loss", "entropy_vs_one_minus_msp"}
    corr = ra.entropy_loss_correlations(stats, n_boot=50, skip_first=4)
    assert set(corr) == {"mean_over_layers", "layer_0", "layer_1"}
    assert corr["layer_0"]["n_pairs"] == 10 * 12


def test_shuffled_bytes_keep_the_bytes():
    tokens = np.frombuffer(b"the cat sat on the mat", dtype=np.uint8)
    shuffled = ra.shuffled_bytes(tokens, seed=0)
    assert sorted(shuffled.tolist()) == sorted(tokens.tolist()) and shuffled.tolist() != tokens.tolist()
    assert (shuffled == ra.shuffled_bytes(tokens, seed=0)).all()


# -----------------------------------------------------------------------------
# atome train

def run_train(text_file, out, *extra):
    return atome(["train", "--model", "routed", "--size", "15k", "--tokens", "8192", "--seed", "1",
                  "--corpus", "file", "--corpus-path", str(text_file), "--val-bytes", "1100",
                  "--device", "cpu", "--out", str(out), *extra])


def test_cli_trains_one_cell_and_saves_a_loadable_model(text_file, tmp_path):
    out = tmp_path / "r15.safetensors"
    assert run_train(text_file, out) == 0
    summary = json.loads((tmp_path / "r15.safetensors.json").read_text())
    assert (summary["family"], summary["size"], summary["seed"]) == ("routed", "15k", 1)
    assert summary["tokens"] == 8192 and summary["steps"] == 4 and summary["params"] == 14_688
    model, _ = load_model(out)
    raw = np.frombuffer(text_file.read_bytes(), dtype=np.uint8).astype(np.int64)
    val = raw[int(len(raw) * 0.9):][:1100]
    assert evaluate_loss(model, val, 256) == pytest.approx(summary["val_nats_per_byte"], rel=1e-6)
    # same seed, same run
    assert run_train(text_file, tmp_path / "again.safetensors") == 0
    again = json.loads((tmp_path / "again.safetensors.json").read_text())
    assert again["val_bpb"] == summary["val_bpb"]


def test_cli_accepts_every_ladder_cell_and_refuses_bad_input(text_file, tmp_path, capsys):
    # a budget of 0 passes argparse and is refused by the ladder: every choice is known to both
    for family in presets.FAMILIES:
        for size in presets.SIZES:
            for recipe_name in recipe.RECIPES:
                code = atome(["train", "--model", family, "--size", size, "--tokens", "0", "--recipe", recipe_name,
                              "--corpus", "file", "--corpus-path", str(text_file), "--out", str(tmp_path / "x")])
                assert code == 2
    assert "token budget must be a positive integer" in capsys.readouterr().err
    assert atome(["train", "--model", "routed", "--size", "2m", "--tokens", "10", "--out", str(tmp_path / "x")]) == 2
    assert run_train(text_file, tmp_path / "y", "--val-bytes", "100") == 2   # too few for one window


def test_a_book_cell_job_trains_the_books_recipe_at_its_rate_and_refuses_a_partial_step():
    train, val = np.arange(4000) % 256, np.arange(100) % 256
    job = recipe.book_cell_job("modern", "15k", 12, 0.01, 3, train, val)
    assert job.name == "modern|15k|3" and job.init_seed == 3 and job.threads == 1
    assert (job.cfg.steps, job.cfg.lr, job.cfg.schedule, job.cfg.batch_size, job.cfg.seq_len) == (
        12, 0.01, "constant", 16, 64)
    assert job.model_config == presets.ladder_config("modern", "15k")
    assert recipe.book_cell_job("modern", "15k", 12, 0.01, 3, train, val, name="curve|x").name == "curve|x"
    with pytest.raises(ValueError, match="too few"):
        recipe.book_cell_job("modern", "15k", 12, 0.01, 3, train, val[:64])
    assert recipe.book_steps_for(512_000) == 500
    for bad in (1000, 1025, 0):
        with pytest.raises(ValueError, match="multiple of 1024"):
            recipe.book_steps_for(bad)


def test_out_of_domain_windows_take_the_models_window_length():
    rng = np.random.default_rng(0)
    books = {"other": rng.integers(0, 256, 2000)}
    sets = ra.ood_window_sets(rng.integers(0, 256, 2000), books, 3, seed=0, window=64)
    assert list(sets) == ["other", "shuffled in-domain bytes"]
    assert all(w.shape == eval_windows(books["other"], 64, 3).shape for w in sets.values())
