"""Chapter 5's reading of its measurements: the ladder, the published pair, the crossover, the router."""
from types import SimpleNamespace

import matplotlib
import numpy as np
import pytest
import torch

from atome_core.book.report import table_markdown
from atome_core.chapters import reversal as ra
from atome_core.chapters import reversal_ladder as rl
from atome_core.evaluate import eval_windows
from atome_core.models import presets
from atome_core.models.routed import RoutedConfig, RoutedLM

matplotlib.use("Agg")
pytestmark = pytest.mark.usefixtures("one_thread")


def stat(median, low=None, high=None, n=1):
    return {"median": median, "min": median if low is None else low, "max": median if high is None else high, "n": n}


def ci(estimate, low, high):
    return {"estimate": estimate, "low": low, "high": high}


# -----------------------------------------------------------------------------
# fixtures: two rungs, routed ahead at the small one and behind at the large one

SIZES = ["15k", "60k"]
FAMILIES = ["routed", "vanilla"]
FINAL = {("routed", "15k"): stat(7.0, 6.9, 7.1, 2), ("vanilla", "15k"): stat(7.5),
         ("routed", "60k"): stat(6.5), ("vanilla", "60k"): stat(6.0)}
PARAMS = {("routed", "15k"): 15_000, ("vanilla", "15k"): 15_000,
          ("routed", "60k"): 60_000, ("vanilla", "60k"): 60_000}
DISK = {("routed", "15k"): 4_000, ("vanilla", "15k"): 60_000,
        ("routed", "60k"): 16_000, ("vanilla", "60k"): 240_000}
PUBLISHED = {"routed": {"parameters": 944_640, "windows": 1023, "nats_per_byte": 1.10, "bits_per_byte": 1.587,
                        "kit_val_nats_per_byte": 1.0545, "kit_step": 30000},
             "vanilla": {"parameters": 950_608, "windows": 1023, "nats_per_byte": 1.00, "bits_per_byte": 1.443,
                         "kit_val_nats_per_byte": 0.9337, "kit_step": 30000}}


# -----------------------------------------------------------------------------
# the ladder and the budget

def test_tokens_for_and_budget_text_take_one_budget_or_one_per_size():
    assert rl.tokens_for(4096, "60k") == 4096
    assert rl.tokens_for({"15k": 10, "60k": 20}, "60k") == 20
    assert rl.budget_text(262144, SIZES) == "262,144"
    assert rl.budget_text({"15k": 1000, "60k": 2000}, SIZES) == "15k: 1,000, 60k: 2,000"


def test_shape_of_names_each_familys_own_layout():
    assert rl.shape_of("routed", {"d_model": 64, "n_layers": 4, "d_head": 16}) == "d 64, 4 layers, d_head 16"
    vanilla = {"d_model": 32, "n_layers": 3, "n_heads": 4, "d_ff": 124}
    assert rl.shape_of("vanilla", vanilla) == "d 32, 3 layers, 4 heads, d_ff 124"
    modern = {"d_model": 42, "n_layers": 3, "n_heads": 3, "n_kv_heads": 1, "d_ff": 94}
    assert rl.shape_of("modern", modern) == "d 42, 3 layers, 3 q / 1 kv heads, d_ff 94"


def test_ladder_rows_sign_the_gap_and_the_worst_gap_is_the_largest_in_size():
    rows = [{"size": "15k", "family": "routed", "params": 100, "gap_to_routed": 0.0,
             "deployed": {"format": "ATMB", "bytes": 30}, "config": {"d_model": 8, "n_layers": 1, "d_head": 2}},
            {"size": "15k", "family": "vanilla", "params": 99, "gap_to_routed": -0.0082,
             "deployed": {"format": "FP32", "bytes": 396},
             "config": {"d_model": 4, "n_layers": 1, "n_heads": 1, "d_ff": 8}}]
    header, table_rows = rl.ladder_rows(rows)
    assert len(header) == len(table_rows[0]) == 7
    assert table_rows[0][4] == "+0.00%" and table_rows[1][4] == "-0.82%"
    assert rl.worst_gap(rows) == pytest.approx(0.0082)


def test_budget_rows_count_passes_over_the_training_text():
    cells = [{"size": "15k", "steps": 4, "tokens": 8192}, {"size": "15k", "steps": 4, "tokens": 8192},
             {"size": "60k", "steps": 8, "tokens": 16384}]
    header, rows = rl.budget_rows(cells, SIZES, {"15k": [0, 1], "60k": [3]}, train_bytes=4096)
    assert rows == [["15k", 4, 8192, "2.0", "0, 1"], ["60k", 8, 16384, "4.0", "3"]]
    assert rl.most_passes(cells, 4096) == 4.0
    assert "memorisation as much" in rl.passes_note(10.5)
    assert "memorisation as much" not in rl.passes_note(4.0)


def test_skipped_note_names_the_missing_rungs():
    assert "Every rung" in rl.skipped_note("paper", [])
    missing = rl.skipped_note("smoke", ["240k", "944k"])
    assert missing.startswith("Not trained at the smoke profile: the 240k, 944k rungs")
    # glued as plain text: Markdown would show as written
    assert not any("`" in text for text in (missing, rl.passes_note(11.0), rl.passes_note(1.0)))


def test_budget_note_scales_the_measured_training_time_to_the_books_budget():
    note = rl.budget_note(500, 1500, "cpu", worker_seconds=400.0, workers=2, time_share=360)
    assert "Every rung trains 500 steps (512,000 bytes), fewer than the book's 1,500" in note
    assert "about 600 s on 2 cores, past the chapter's share of the book's time (about 360 s)" in note
    cheap = rl.budget_note(500, 1500, "cpu", worker_seconds=100.0, workers=2, time_share=360)
    assert "about 150 s on 2 cores, within the chapter's share" in cheap
    assert "Every rung trains the book's budget" in rl.budget_note(1500, 1500, "cpu", 100.0, 2, 360)


def test_results_rows_show_median_and_range_and_name_the_best_family():
    header, rows = rl.results_rows(FINAL, FAMILIES, SIZES, {"15k": [0, 1], "60k": [0]})
    assert header == ["rung", "routed", "vanilla", "seeds", "best"]
    assert [r[-1] for r in rows] == ["routed", "vanilla"]
    text = table_markdown(header, rows)
    assert "| 15k | 7.000 [6.900, 7.100] | 7.500 | 2 | routed |" in text


def test_first_seed_models_keep_the_first_seed_of_the_family_only():
    state = {k: v.numpy() for k, v in presets.build_model("routed", "15k", init_seed=5).state_dict().items()}
    jobs = [SimpleNamespace(name=n) for n in ("routed|15k|1", "routed|15k|2", "vanilla|15k|1")]
    finished = [SimpleNamespace(state_dict=state)] * 3
    models = rl.first_seed_models(jobs, finished, {"15k": [1, 2]})
    assert list(models) == ["15k"] and isinstance(models["15k"], RoutedLM)
    assert not models["15k"].training
    loaded = models["15k"].state_dict()
    assert all(torch.equal(loaded[k], torch.from_numpy(v)) for k, v in state.items())


def test_recipe_rows_read_the_runs_config_and_each_familys_rate():
    from atome_core.recipe import book_config
    _, rows = rl.recipe_rows(book_config(10, 1e-2, 0), {"routed": 0.01, "modern": 0.003})
    text = dict(rows)
    assert text["learning rate"] == "constant, no warmup; peak routed 0.01, modern 0.003"
    assert text["batch"] == "16 x 1 windows of 64 bytes" and text["gradient clipping"] == "none"
    cosine = SimpleNamespace(batch_size=8, grad_accum=4, seq_len=256, lr=3e-4, min_lr=3e-5, betas=[0.9, 0.95],
                             weight_decay=0.1, grad_clip=1.0, autocast_bf16=True, schedule="cosine", warmup_steps=1000)
    text = dict(rl.recipe_rows(cosine, {"routed": 3e-4})[1])
    assert text["learning rate"].startswith("cosine from the peak to 3e-05 after 1,000 warmup steps")
    assert text["gradient clipping"] == "at 1" and text["BF16 autocast"] == "on"


def test_ladder_jobs_train_every_rung_on_one_budget_each_family_at_its_rate():
    train, val = np.arange(5000) % 256, np.arange(600) % 256
    jobs = rl.ladder_jobs("book", ["routed", "vanilla"], {"15k": [0, 1], "944k": [0]}, ["15k", "944k"], 4096,
                          {"routed": 0.01, "vanilla": 0.003}, train, val)
    assert [j.name for j in jobs] == ["routed|15k|0", "routed|15k|1", "vanilla|15k|0", "vanilla|15k|1",
                                      "routed|944k|0", "vanilla|944k|0"]
    assert {j.cfg.steps for j in jobs} == {4} and {(j.cfg.batch_size, j.cfg.seq_len) for j in jobs} == {(16, 64)}
    assert [j.cfg.lr for j in jobs if j.name.startswith("vanilla")] == [0.003] * 3
    with pytest.raises(ValueError, match="multiple of 1024"):
        rl.ladder_jobs("book", ["routed"], {"15k": [0]}, ["15k"], 5000, {"routed": 0.01}, train, val)
    paper = rl.ladder_jobs("paper", ["routed"], {"15k": [0]}, ["15k"], 65536 * 4, {"routed": 0.01}, train, val, "cpu")
    assert paper[0].cfg.lr == 3e-4 and paper[0].cfg.schedule == "cosine"


def test_family_rates_take_the_sweeps_best_or_the_recipes_own_rate():
    sweep = {"routed": {0.001: 3.0, 0.01: 2.5}, "vanilla": {0.001: 2.9, 0.01: 3.1}}
    assert rl.family_rates(["routed", "vanilla", "modern"], sweep, 3e-4) == {
        "routed": 0.01, "vanilla": 0.001, "modern": 3e-4}
    text = rl.sweep_text(sweep, {"routed": 0.01, "vanilla": 0.001}, 400, "60K", 4, 12.0, "cpu")
    assert "Chosen: routed 0.01, vanilla 0.001" in text and "edge of the rates tried: routed, vanilla" in text
    assert "No sweep runs at the paper profile" in rl.sweep_text({}, {"routed": 3e-4}, 0, "60K", 0, 0.0, "paper")


# -----------------------------------------------------------------------------
# the budget curves

CURVES = {"routed": [(1024, 5.0), (2048, 4.0), (4096, 3.5)],
          "modern": [(1024, 5.5), (2048, 4.2), (4096, 3.0)]}


def test_curve_points_keep_the_evaluated_steps_in_bits_per_byte():
    history = [{"tokens_seen": 1024, "train_loss": 1.0}, {"tokens_seen": 2048, "val_loss": 2 * np.log(2)}]
    assert rl.curve_points(history) == [(2048, pytest.approx(2.0))]
    assert rl.bpb_at(CURVES["routed"], 2048) == 4.0
    with pytest.raises(ValueError, match="no evaluation point at 3,000"):
        rl.bpb_at(CURVES["routed"], 3000)


def test_rankings_say_plainly_when_the_longer_budget_changes_the_order():
    ranks = rl.rankings_glue(CURVES, 2048, {"routed": 4.1, "modern": 4.3})
    assert ranks["rank_ladder_budget"] == "routed (4.000) < modern (4.200)"
    assert ranks["rank_book_budget"] == "modern (3.000) < routed (3.500)"
    assert ranks["rank_holds"] == "no" and ranks["rank_verdict"].startswith(
        "The ranking changes with the budget: routed is ahead of modern at the ladder's budget and behind it at "
        "the longer one (routed leads at the ladder's budget, modern at the longer one).")
    three = {**CURVES, "vanilla": [(1024, 5.2), (2048, 4.5), (4096, 3.2)]}
    verdict = rl.rankings_glue(three, 2048, {})["rank_verdict"]
    assert "vanilla is ahead of routed" not in verdict and "routed is ahead of vanilla at the ladder's budget" in verdict
    assert ranks["curve_tokens"] == "4,096" and ranks["ladder_tokens"] == "2,048"
    same = rl.rankings_glue(CURVES, 4096, {"routed": 4.1, "modern": 4.3})
    assert same["rank_holds"] == "yes" and "still holds" in same["rank_verdict"]
    absent = rl.rankings_glue({}, 0, {"routed": 4.1, "modern": 4.3})
    assert absent["rank_book_budget"] == "n/a" and absent["rank_ladder_medians"] == "routed (4.100) < modern (4.300)"


def test_curve_jobs_evaluate_at_the_ladders_budget_on_every_validation_window():
    train, val = np.arange(5000) % 256, np.arange(3000) % 256
    jobs = rl.curve_jobs(["routed", "modern"], "15k", 8, {"routed": 0.01, "modern": 0.003}, 0, train, val, 2, 4)
    assert [j.name for j in jobs] == ["curve|routed|15k|0", "curve|modern|15k|0"]
    assert jobs[0].cfg.eval_batches * 16 * 64 >= len(val) - 1 and jobs[1].cfg.lr == 0.003
    with pytest.raises(ValueError, match="must divide"):
        rl.curve_jobs(["routed"], "15k", 8, {"routed": 0.01}, 0, train, val, 3, 4)
    with pytest.raises(ValueError, match="must reach"):
        rl.curve_jobs(["routed"], "15k", 4, {"routed": 0.01}, 0, train, val, 2, 8)


def test_curve_vs_ladder_compares_the_same_family_size_and_seed():
    cells = [{"family": "routed", "size": "60k", "seed": 0, "val_bpb": 4.0},
             {"family": "modern", "size": "60k", "seed": 0, "val_bpb": 4.25},
             {"family": "modern", "size": "60k", "seed": 1, "val_bpb": 9.0}]
    assert rl.curve_vs_ladder(CURVES, cells, "60k", 0, 2048) == pytest.approx(0.05)
    assert rl.curve_vs_ladder(CURVES, cells, "15k", 0, 2048) is None


def test_budget_curve_figure_marks_the_ladders_budget():
    fig = rl.budget_curve_figure(CURVES, 2048, "60K")
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["routed", "modern", "the ladder's budget"]


# -----------------------------------------------------------------------------
# the published pair

def test_published_glue_says_who_is_ahead_and_by_how_much():
    glued = rl.published_glue(PUBLISHED)
    assert glued["published_status"].startswith("The reversal holds")
    assert glued["published_routed_nats"] == "1.1000" and glued["published_windows"] == "1,023"
    assert glued["published_gap"] == "+10.0%" and glued["kit_gap"] == "+12.9%"
    flipped = {"routed": PUBLISHED["vanilla"], "vanilla": PUBLISHED["routed"]}
    assert "no reversal" in rl.published_glue(flipped)["published_status"]
    assert rl.published_gap(PUBLISHED) == pytest.approx(0.1)


def test_published_glue_reads_n_a_for_every_number_when_the_checkpoints_are_absent():
    absent, present = rl.published_glue({}), rl.published_glue(PUBLISHED)
    assert set(absent) == set(present)          # the prose's glue keys exist in every build
    assert absent["published_routed_nats"] == absent["kit_gap"] == "n/a"
    assert rl.published_gap({}) is None


def test_published_claims_carry_units_or_the_reason_they_are_missing():
    class Recorder:
        def __init__(self):
            self.claims = {}

        def claim(self, key, value, unit="", reason=None):
            self.claims[key] = (value, unit, reason)

    present, absent = Recorder(), Recorder()
    rl.record_published_claims(present, PUBLISHED)
    rl.record_published_claims(absent, {})
    assert present.claims == {"published_windows": (1023, "windows of 256 bytes", None),
                              "published_routed_nats_per_byte": (1.10, "nats per byte", None),
                              "published_vanilla_nats_per_byte": (1.00, "nats per byte", None)}
    assert set(absent.claims) == set(present.claims)
    assert all(v is None and "absent" in reason for v, _, reason in absent.claims.values())


def test_published_rows_put_the_kits_figure_beside_ours():
    header, rows = rl.published_rows(PUBLISHED)
    assert rows[0] == ["routed 944K", 944_640, 1023, 1.10, 1.587, 1.0545]
    assert "| routed 944K | 944,640 | 1,023 | 1.1000 | 1.5870 | 1.0545 |" in table_markdown(header, rows, 4)


# -----------------------------------------------------------------------------
# where the curves cross

def test_crossover_is_found_between_the_two_sizes_where_the_curves_cross():
    shared, reading, found = rl.crossing(FINAL, PARAMS, "vanilla", SIZES, "parameters")
    assert shared == "15,000 to 60,000"
    assert len(found) == 1 and 15_000 < found[0]["at"] < 60_000 and found[0]["a_better_below"]
    assert reading.startswith("they cross near") and "routed better below, worse above" in reading


def test_curves_that_share_no_range_in_bytes_are_not_compared():
    shared, reading, found = rl.crossing(FINAL, DISK, "vanilla", SIZES, "bytes")
    assert shared == "none" and found == [] and "too little" in reading


def test_curves_that_never_cross_say_which_stays_ahead():
    ahead = {**FINAL, ("routed", "60k"): stat(5.0)}
    _, reading, found = rl.crossing(ahead, PARAMS, "vanilla", SIZES, "parameters")
    assert found == [] and "stays below the vanilla curve" in reading


def test_crossings_table_covers_every_baseline_in_parameters_and_bytes():
    crossings, header, rows = rl.crossings_table(FINAL, PARAMS, DISK, FAMILIES, SIZES)
    assert set(crossings) == {"routed_vs_vanilla_parameters", "routed_vs_vanilla_bytes"}
    assert len(rows) == 2 and all(len(r) == len(header) for r in rows)
    assert "near" in rl.where_they_cross(crossings, 2)
    assert rl.where_they_cross({"routed_vs_vanilla_parameters": []}, 2) == "nowhere between the rungs we trained"
    assert "one rung only" in rl.where_they_cross({}, 1)


def test_equal_bytes_pairs_match_a_baseline_to_the_routed_rung_nearest_in_bytes_within_1_5x():
    disk = {**DISK, ("routed", "60k"): 50_000}        # 60k routed within 1.5x of the 15k vanilla
    pairs = rl.equal_bytes_pairs(FINAL, disk, FAMILIES, SIZES)
    assert [(p["baseline_size"], p["routed_size"]) for p in pairs] == [("15k", "60k")]
    assert pairs[0]["routed_bpb"] == 6.5 and pairs[0]["baseline_bpb"] == 7.5
    assert rl.equal_bytes_pairs(FINAL, DISK, FAMILIES, SIZES) == []
    header, rows = rl.equal_bytes_rows(pairs)
    assert rows == [["60k", 50_000, 6.5, "vanilla 15k", 60_000, 7.5]]


def test_crossover_figure_plots_both_axes_with_our_runs_only():
    fig = rl.crossover_figure(FINAL, PARAMS, DISK, FAMILIES, SIZES)
    assert [ax.get_xlabel() for ax in fig.axes] == ["parameters", "deployed bytes"]
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == FAMILIES


# -----------------------------------------------------------------------------
# the router

def detection_row(entropy, diff, loss=ci(0.9, 0.8, 1.0)):
    return {"entropy_mean": entropy, "loss": loss, "one_minus_msp": ci(0.6, 0.5, 0.7),
            "entropy_vs_loss": diff, "entropy_vs_one_minus_msp": ci(0.0, -0.1, 0.1)}


def router_result():
    corr = {"mean_over_layers": ci(0.25, 0.2, 0.3), "layer_0": ci(0.05, 0.0, 0.1), "layer_1": ci(-0.4, -0.5, -0.3)}
    for c in corr.values():
        c.update(n_pairs=100, n_units=4)
    late = {**ci(0.2, 0.1, 0.3), "n_pairs": 80, "n_units": 4}
    detection = {"alice": detection_row(ci(0.99, 0.97, 1.0), ci(0.05, 0.01, 0.09)),
                 "moby": detection_row(ci(0.5, 0.4, 0.6), ci(-0.3, -0.4, -0.2)),
                 "shuffled in-domain bytes": detection_row(ci(0.3, 0.2, 0.4), ci(-0.1, -0.2, 0.05))}
    return {"detection": detection, "correlation": corr, "correlation_after_first": late}


def test_router_verdict_counts_a_win_only_when_the_whole_difference_interval_is_above_zero():
    v = ra.router_verdict(router_result())
    assert v["wins"] == 1 and v["strength"] == "weak"
    assert v["best_layer"] == "layer 1" and v["best_rho"] == "-0.400 [-0.500, -0.300]"
    by_source = {r[0]: r for r in v["rows"]}
    assert by_source["alice"][2:5] == ["higher out of domain", "loss: 0.900 [0.800, 1.000]", "separates better"]
    assert by_source["moby"][2] == "interval includes chance" and by_source["moby"][4] == "separates worse"
    assert by_source["shuffled in-domain bytes"][2] == "lower out of domain"
    assert by_source["shuffled in-domain bytes"][4] == "not distinguishable"
    assert all(len(r) == len(v["header"]) for r in v["rows"])


def test_router_glue_has_the_same_keys_whether_or_not_the_published_model_was_measured():
    present, absent = ra.router_glue(router_result()), ra.router_glue(None)
    assert set(present) == set(absent)
    assert present["router_wins"] == "1" and present["router_sources"] == "3"
    assert present["router_aurocs"].startswith("alice 0.990, moby 0.500")
    assert "not a more useful signal" in present["router_conclusion"]
    assert absent["router_rho"] == "n/a"


def test_correlation_and_trained_rows_label_layers_and_the_first_row_of_each_rung():
    header, rows = ra.correlation_rows(router_result(), n_layers=2, skip_first=8)
    assert [r[0] for r in rows] == ["0", "1", "mean over layers", "mean over layers, positions ≥ 8"]
    assert rows[-1][2:] == [80, 4]
    header, rows = ra.trained_rows({"15k": router_result(), "60k": router_result()})
    assert len(rows) == 6 and [r[0] for r in rows] == ["15k", "", "", "60k", "", ""]
    assert rows[0][1] == "0.250 [0.200, 0.300]" and rows[1][1] == ""
    assert ra.trained_wins_text({"15k": router_result()}) == "1 of 3 texts at 15k"
    assert ra.strength(0.05) == "negligible" and ra.strength(-0.6) == "strong"


def test_analyse_router_of_a_tiny_routed_model_scores_every_text_with_every_detector():
    torch.manual_seed(0)
    model = RoutedLM(RoutedConfig(d_model=16, n_layers=2, d_head=4))
    rng = np.random.default_rng(0)
    in_tokens = rng.integers(97, 123, 256 * 4 + 1)            # lowercase letters
    books = {"other": rng.integers(0, 256, 256 * 4 + 1)}
    in_stats = ra.per_token_stats(model, eval_windows(in_tokens, 256, 4))
    options = dict(ood_windows=4, bootstrap=20, spearman_windows=3, spearman_bootstrap=10, skip_first=8, seed=0)
    result = ra.analyse_router(model, in_stats, in_tokens, books, **options)
    assert list(result["detection"]) == ["other", "shuffled in-domain bytes"]
    assert set(result["detection"]["other"]) == {"entropy_mean", "loss", "one_minus_msp",
                                                 "entropy_vs_loss", "entropy_vs_one_minus_msp"}
    assert result["correlation"]["mean_over_layers"]["n_units"] == 3
    assert result["correlation_after_first"]["n_pairs"] == 3 * (256 - 8)
    assert result == ra.analyse_router(model, in_stats, in_tokens, books, **options)   # seeded
    fig = ra.router_figure(result, n_layers=2)
    assert len(fig.axes) == 2


# -----------------------------------------------------------------------------
# the chapter's training plan

def test_the_paper_plan_trains_every_rung_and_seed_on_the_kits_944k_recipe_with_bf16_on_cuda_only(monkeypatch):
    from atome_core import recipe
    from atome_core.book.estimate import chapter_namespace
    P = chapter_namespace("05_reversal", "paper")
    plan = rl.training_plan(P, device="cpu")
    assert P.recipe == "paper" and not P.sweep_lrs and P.curve_steps == 0    # no sweep, no curves: the ladder only
    assert len(plan) == len(P.families) * sum(len(s) for s in P.seeds.values()) == 30
    r = recipe.PAPER_RECIPE
    assert {(s.steps, s.batch_size, s.grad_accum, s.seq_len, s.autocast_bf16) for s in plan} == {
        (P.tokens // r.tokens_per_step, r.batch_size, r.grad_accum, r.seq_len, False)}
    assert sum(s.tokens for s in plan) == 30 * recipe.PAPER_TOKENS
    assert sorted({s.family for s in plan}) == sorted(P.families)
    # device "auto" (the profile's) is CUDA where the machine has it, and there the recipe autocasts
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert {s.autocast_bf16 for s in rl.training_plan(P)} == {True}


def test_the_cpu_plan_adds_the_rate_sweep_and_the_budget_curves_to_the_ladder():
    from atome_core import recipe
    from atome_core.book.estimate import chapter_namespace
    P = chapter_namespace("05_reversal", "cpu")
    plan = rl.training_plan(P)
    n_sweep, n_ladder = len(P.families) * len(P.sweep_lrs), len(P.families) * sum(len(s) for s in P.seeds.values())
    steps = [s.steps for s in plan]
    assert steps == ([P.sweep_steps] * n_sweep + [recipe.book_steps_for(P.tokens)] * n_ladder
                     + [recipe.book_steps("cpu")] * len(P.families))
    assert {(s.batch_size, s.seq_len, s.grad_accum, s.autocast_bf16) for s in plan} == {(16, 64, 1, False)}
    no_curves = rl.training_plan(type(P)(**{**vars(P), "curve_steps": 0, "sweep_lrs": None}))
    assert len(no_curves) == n_ladder


def test_the_budget_curves_train_the_books_budget_unless_told_otherwise_and_only_under_the_books_recipe():
    assert rl.curve_budget("book", None, "cpu") == 1500 and rl.curve_budget("book", 0, "cpu") == 0
    assert rl.curve_budget("book", 40, "smoke") == 40 and rl.curve_budget("paper", None, "paper") == 0
