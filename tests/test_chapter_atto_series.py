"""Chapter 1's analysis: the series' training loop, the comparisons with atto and the
transformer, and the claims the intro's table reads."""
import json
import math
from collections import Counter
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from atome_core.chapters import atto_comparison as ac
from atome_core.chapters import atto_plan, atto_series
from atome_core.models.atto import AttoConfig, AttoModel, AttoVocab

TEXT = "to be or not to be, that is the question: whether 'tis nobler in the mind to suffer\n" * 20


def _search(shape_losses, variant_losses=(), lr_losses=None, configs=None):
    best_key = min(shape_losses, key=shape_losses.get)
    cfg = AttoConfig(n_embd=2, n_full=0, n_diag=1)
    return atto_series.SearchResult(256, dict(shape_losses), configs or {k: cfg for k in shape_losses},
                                    list(variant_losses), cfg, shape_losses[best_key], 0.5, 0.03,
                                    lr_losses or {0.03: shape_losses[best_key]})


def _comparison(rows):
    return {str(b): {"ours_seed0": s0, "ours_mean": mean, "transformer": t} for b, (s0, mean, t) in rows.items()}


def test_claims_count_the_budgets_where_the_transformer_s_mean_is_below_ours_among_those_where_one_was_trained():
    comparison = _comparison({64: (4.0, 4.1, None), 128: (3.5, 3.4, 3.45), 256: (3.0, 3.2, 2.9),
                              8192: (2.0, 2.1, 2.05)})
    claims = ac.comparison_claims(comparison)
    # 128: 3.45 is below our first seed (3.5) but not our mean (3.4): the means decide
    assert claims["transformer_better_budgets"][0] == 2 and claims["compared_budgets"][0] == 3
    assert claims["atto_8192_nats_per_char"] == (2.1, "nats per character", None)
    assert claims["atto_64_nats_per_char"][0] == 4.1


def test_a_claim_for_a_budget_that_was_not_trained_says_why():
    value, unit, reason = ac.comparison_claims(_comparison({64: (4.0, 4.1, None)}))["atto_8192_nats_per_char"]
    assert value is None and "8,192" in reason and unit == "nats per character"


def test_verdicts_judge_atto_and_the_transformer_by_the_mean_over_seeds():
    budgets = [64, 256, 8192, 100]
    spread = {64: np.array([2.50, 2.56]), 256: np.array([2.0, 3.0]), 8192: np.array([2.0, 2.2]),
              100: np.array([1.0, 1.0])}
    tf_spread = {256: np.array([2.4, 2.4]), 8192: np.array([2.0, 2.4]), 100: np.array([1.5, 1.5])}
    v = ac.verdicts(budgets, spread, tf_spread)
    assert v["wins"] == [64] and v["losses"] == [256, 8192, 100]   # 100 was never published: not a win
    assert v["narrow"] == [64]                 # 2.59 - 2.53 is less than two sd of (2.50, 2.56)
    assert v["tf_better"] == [256]             # 2.4 < 2.5; at 8192 2.2 is not below 2.1
    assert v["tf_gap"] == pytest.approx(np.mean([2.4 - 2.5, 2.2 - 2.1, 1.5 - 1.0]))


def test_a_win_by_more_than_two_standard_deviations_is_not_narrow():
    spread = {64: np.array([2.0, 2.02])}
    assert ac.verdicts([64], spread, {})["narrow"] == []


def test_comparison_metrics_keep_only_published_budgets_and_a_zero_sd_for_one_seed():
    spread = {64: np.array([2.5]), 100: np.array([1.0]), 256: np.array([2.0, 2.2])}
    m = ac.comparison_metrics([64, 100, 256], {64: 2.5, 100: 1.0, 256: 2.0}, spread, {256: np.array([1.9, 2.1])})
    assert list(m) == ["64", "256"] and m["64"]["ours_sd"] == 0.0 and m["64"]["transformer"] is None
    assert m["256"]["transformer"] == pytest.approx(2.0) and m["256"]["transformer_sd"] > 0
    assert m["64"]["ours_bits"] == pytest.approx(2.5 / math.log(2))


def test_heatmap_grid_places_each_loss_and_leaves_cells_without_a_configuration_empty():
    result = _search({(4, 1): 2.5, (8, 2): 2.3, (16, 1): 9.0})
    grid = ac.heatmap_grid(result, [4, 8], [1, 2])
    assert grid[0, 0] == 2.5 and grid[1, 1] == 2.3 and np.isnan(grid[0, 1]) and np.isnan(grid[1, 0])
    assert ac.heatmap_extremes(result, [4, 8], [1, 2]) == {"best": (8, 2, 2.3), "worst": (4, 1, 2.5)}
    with pytest.raises(ValueError):
        ac.heatmap_extremes(result, [32], [1])


def test_variant_rows_give_each_change_against_the_best_shape_and_skip_budgets_without_variants():
    cfg = AttoConfig(n_embd=2, n_full=0, n_diag=3)
    searched = _search({(2, 0): 3.0, (4, 2): 2.8}, [(cfg, 2.7)], {0.03: 2.7, 0.06: 2.9})
    rows = ac.variant_rows({256: searched, 512: _search({(2, 0): 3.0})})
    assert [r[0] for r in rows] == [256, 256, 256]
    assert rows[0] == [256, cfg.describe(), 2.7, "-0.100"] and rows[2][3] == "+0.100"


def test_finalist_rows_mark_the_kept_configuration_only_where_there_were_two():
    a, b = AttoConfig(n_embd=2, n_full=0, n_diag=1), AttoConfig(n_embd=2, n_full=0, n_diag=2)
    runs = atto_series.SeriesRuns({64: a, 128: b}, {64: [(a.describe(), 3.0)],
                                                    128: [(a.describe(), 3.0), (b.describe(), 2.9)]}, {}, {}, {})
    assert ac.finalist_rows(runs) == [[128, a.describe(), 3.0, False], [128, b.describe(), 2.9, True]]


def test_shortfall_reasons_depend_on_the_budget_and_on_the_count_tables():
    counts = {"unigram counts": 3.3, "bigram counts": 2.46, "trigram counts": 2.0}
    ours = {64: 3.0, 256: 2.6, 8192: 2.0}
    spread = {b: np.array([v, v + 0.05]) for b, v in ours.items()}
    rows = ac.shortfall_rows([64, 256, 8192], ours, spread, counts, passes=0.5)
    assert "0.300 nats/char below the context-free unigram table" in rows[0][3]
    assert "bigram table" in rows[1][3] and "0.140 above" in rows[1][3]
    assert "0.050 nats/char" in rows[2][3] and "0.50 passes" in rows[2][3] and rows[2][2] == "1.91"


def test_monotone_steps_counts_the_falls_from_one_budget_to_the_next():
    assert ac.monotone_steps([1, 2, 3, 4], {1: 3.0, 2: 2.5, 3: 2.6, 4: 2.0}) == 2


def test_count_models_fall_with_context_on_a_repetitive_text():
    vocab = AttoVocab.from_text(TEXT, 64)
    ids = vocab.encode(TEXT)
    losses = ac.count_model_losses(ids[:1500], ids[1500:])
    assert list(losses) == list(ac.COUNT_MODELS)
    assert losses["trigram counts"] < losses["bigram counts"] < losses["unigram counts"]
    assert [r[3] for r in ac.count_model_rows(losses)] == [64, 4096, 262144]


def test_train_series_keeps_the_better_finalist_then_trains_it_with_the_other_seeds(monkeypatch):
    a, b = AttoConfig(n_embd=2, n_full=0, n_diag=1), AttoConfig(n_embd=2, n_full=0, n_diag=2)
    calls = []

    def fake_train(cfg, train, val, *, steps, batch_size, seq_len, lr, seed, progress_desc):
        calls.append((cfg, seed, lr))
        return SimpleNamespace(cfg=cfg, seed=seed), SimpleNamespace(train_seconds=1.0 + seed)

    monkeypatch.setattr(atto_series, "train_atto", fake_train)
    monkeypatch.setattr(atto_series, "finalists", lambda s: [a, b])
    monkeypatch.setattr(atto_series, "stream_loss",
                        lambda m, tokens: (3.0 if m.cfg is a else 2.0) + 0.1 * m.seed + (len(tokens) == 100))
    search = {256: SimpleNamespace(lr=0.06)}
    runs = atto_series.train_series(search, np.zeros(500), np.zeros(100), np.zeros(50), seeds=[0, 1, 2],
                                    steps=1, batch_size=1, seq_len=4)
    assert calls == [(a, 0, 0.06), (b, 0, 0.06), (b, 1, 0.06), (b, 2, 0.06)]
    assert runs.chosen[256] is b and runs.finalist_losses[256] == [(a.describe(), 3.0), (b.describe(), 2.0)]
    assert runs.losses[256] == pytest.approx({0: 3.0, 1: 3.1, 2: 3.2})   # scored on the whole validation split
    assert runs.seconds[256] == {0: 1.0, 1: 2.0, 2: 3.0} and runs.models[256].seed == 0


def test_continuations_are_reproducible_and_sampling_depends_on_the_seed():
    vocab = AttoVocab.from_text(TEXT, 64)
    torch.manual_seed(0)
    model = AttoModel(AttoConfig(n_embd=4, n_full=2, n_hidden=8, nonlinearity="relu"))
    one = atto_series.continuations(model, vocab, ("to", "be"), 20, 1.0, seed=3)
    assert one == atto_series.continuations(model, vocab, ("to", "be"), 20, 1.0, seed=3)
    assert list(one) == ["to", "be"] and all(len(g["greedy"]) == len(g["sampled"]) == 20 for g in one.values())
    other = atto_series.continuations(model, vocab, ("to", "be"), 20, 1.0, seed=4)
    assert other["to"]["greedy"] == one["to"]["greedy"] and other["to"]["sampled"] != one["to"]["sampled"]


def test_export_web_writes_every_model_and_the_manifest_with_reloadable_files(tmp_path):
    vocab = AttoVocab.from_text(TEXT, 64)
    torch.manual_seed(0)
    models = {64: AttoModel(AttoConfig(n_embd=1, n_full=0, skip=True)),
              128: AttoModel(AttoConfig(n_embd=2, n_full=0, n_diag=1))}
    infos = {b: {"val_loss_nats": 3.0} for b in models}
    manifest = ac.json_size_rows(atto_series.export_web(tmp_path, models, vocab, infos, vocab.encode(TEXT[:64])))
    assert [r[0] for r in manifest] == ["atto-64", "atto-128"] and manifest[0][2] == "1.8 KB"
    listed = json.loads((tmp_path / "models.json").read_text())
    assert [m["file"] for m in listed["models"]] == ["atto-64.json", "atto-128.json"]
    assert (tmp_path / "atto-128.json.js").exists()


# -- the training plan (book.estimate) ------------------------------------------------------------

def _by_budget(plan, P) -> dict:
    """{(budget, family, "search" or "final"): runs}: every run's model has exactly its budget."""
    from atome_core.models import atto, tiny_transformer
    count = {"atto": lambda d: atto.count_params(AttoConfig(**d)),
             "tiny_transformer": lambda d: tiny_transformer.count_params(tiny_transformer.TinyTransformerConfig(**d))}
    assert {s.steps for s in plan} == {P.search_steps, P.final_steps}
    return Counter((count[s.family](json.loads(s.model_config)), s.family,
                    "search" if s.steps == P.search_steps else "final") for s in plan)


def test_the_paper_plan_searches_every_shape_then_trains_two_finalists_and_the_other_seeds_per_budget():
    from atome_core.book.estimate import chapter_namespace
    P = chapter_namespace("01_atto_series", "paper")
    plan = [s for s in atto_plan.training_plan(P) if s.family == "atto"]
    final = [s for s in plan if (s.steps, s.batch_size, s.seq_len) == (P.final_steps, P.final_batch, P.final_seq_len)]
    search = [s for s in plan if (s.steps, s.batch_size, s.seq_len) == (P.search_steps, P.search_batch, P.search_seq_len)]
    assert len(final) + len(search) == len(plan)
    # 64 parameters fit only the linear model: no variants, one finalist; every other budget's
    # stand-in winner has a two-layer variant, so two finalists, then the other seeds
    assert len(final) == 1 + len(P.seeds) - 1 + (len(P.budgets) - 1) * (2 + len(P.seeds) - 1)
    shapes = {b: atto_series.search_shapes(b, *atto_plan.series_search_grid(P, b)) for b in P.budgets}
    assert len(shapes[P.heatmap_budget]) > len(P.heatmap_fulls)          # the heat map's wider grid
    assert len(search) > sum(map(len, shapes.values())) + len(P.budgets) * len(P.search_lrs)
    (linear,) = shapes[64].values()      # 64: its one shape at three rates, then with every seed
    assert sum(s.model_config == json.dumps(linear.__dict__, sort_keys=True) for s in plan) == 3 + len(P.seeds)


def test_the_paper_plan_gives_the_transformer_the_n_gram_search_s_run_count_and_a_finalist_round_at_every_budget():
    from atome_core.book.estimate import chapter_namespace
    from atome_core.models import tiny_transformer as tt
    P = chapter_namespace("01_atto_series", "paper")
    assert P.transformer_budgets is None          # the paper profile compares at every budget
    plan = atto_plan.training_plan(P)
    runs = _by_budget(plan, P)
    for b in P.budgets:
        pool = tt.shape_candidates(b, atto_series.search_widths(b, n_widths=P.transformer_widths))
        # as many search runs as the n-gram's, fewer only where fewer shapes fit (64: none fits)
        assert runs[b, "tiny_transformer", "search"] == \
            (min(runs[b, "atto", "search"], len(pool) + len(P.search_lrs)) if pool else 0)
        # the stand-in winner (the widest, one layer) and the deeper shape tried, then the other seeds
        assert runs[b, "tiny_transformer", "final"] == (2 + len(P.seeds) - 1 if pool else 0)
    assert runs[8192, "tiny_transformer", "search"] == runs[8192, "atto", "search"] > 30
    for s in plan:   # each run on windows of its own block, about as many characters a step as the n-gram's
        if s.family == "tiny_transformer":
            assert s.seq_len == json.loads(s.model_config)["block_size"]
            steps_chars = P.search_batch * P.search_seq_len if s.steps == P.search_steps else \
                P.final_batch * P.final_seq_len
            assert abs(s.batch_size * s.seq_len - steps_chars) <= s.seq_len / 2


def test_a_paper_parameter_changes_the_plan():
    from atome_core.book.estimate import chapter_namespace
    P = chapter_namespace("01_atto_series", "paper")
    fewer = SimpleNamespace(**{**vars(P), "seeds": [0], "search_lrs": [0.01]})
    # per budget and family: the kept configuration with two seeds fewer, the search's winner at
    # one rate fewer (the transformer's search, one run shorter as the n-gram's, loses its rate run);
    # no transformer fits 64 parameters
    plan = atto_plan.training_plan(P)
    assert len(plan) - len(atto_plan.training_plan(fewer)) == \
        (2 + 1) * (2 * len(P.budgets) - 1)
    # the transformer at two budgets only: the other budgets' transformer runs are gone
    two = SimpleNamespace(**{**vars(P), "transformer_budgets": [256, 16384]})
    runs = _by_budget(atto_plan.training_plan(two), P)
    assert {b for b, family, _ in runs if family == "tiny_transformer"} == {256, 16384}
    assert runs == {k: n for k, n in _by_budget(plan, P).items()
                    if k[1] == "atto" or k[0] in (256, 16384)}


def test_the_transformer_is_searched_at_the_budgets_named_in_series_order_or_at_every_one_when_none_are():
    assert atto_series.transformer_budget_list([64, 256, 1024], None) == [64, 256, 1024]
    assert atto_series.transformer_budget_list([64, 256, 1024], []) == [64, 256, 1024]
    assert atto_series.transformer_budget_list([64, 256, 1024], [1024, 256, 9]) == [256, 1024]


def _tiny_parameters(profile="unit"):
    return SimpleNamespace(profile=profile, budgets=[64, 256], heatmap_budget=256, heatmap_widths=[1, 2],
                           heatmap_fulls=[1, 2], search_widths=1, search_fulls=[2], search_variants=True, lr=0.03,
                           search_lrs=[0.01], search_steps=2, search_batch=4, search_seq_len=16, seed=0,
                           final_steps=3, final_batch=2, final_seq_len=8, seeds=[0, 1],
                           transformer_budgets=None, transformer_widths=2)


def _work(plan, family, with_config=False) -> list:
    return sorted((s.model_config if with_config else "", s.steps, s.batch_size, s.seq_len)
                  for s in plan if s.family == family)


def test_the_plan_given_a_build_s_recorded_outcomes_is_exactly_the_runs_its_ledger_recorded(tmp_path, monkeypatch):
    from atome_core.book.estimate import plan_mismatch
    from atome_core.ledger import LEDGER_ENV, read_ledger
    P, ledger = _tiny_parameters(), tmp_path / "training_runs.jsonl"
    monkeypatch.setenv(LEDGER_ENV, str(ledger))
    ids = AttoVocab.from_text(TEXT, 64).encode(TEXT)
    fit, tune, val = ids[:1000], ids[1000:1300], ids[1300:]
    # the notebook's training cells (search, final, the transformer's search and final)
    search = atto_series.search_series(
        P.budgets, fit, tune, heatmap_budget=P.heatmap_budget, heatmap_widths=P.heatmap_widths,
        heatmap_fulls=P.heatmap_fulls, n_widths=P.search_widths, fulls=P.search_fulls, steps=P.search_steps,
        batch_size=P.search_batch, seq_len=P.search_seq_len, lr=P.lr, extra_lrs=P.search_lrs, seed=P.seed,
        variants=P.search_variants)
    runs = atto_series.train_series(search, fit, val, tune, seeds=P.seeds, steps=P.final_steps,
                                    batch_size=P.final_batch, seq_len=P.final_seq_len)
    tf_budgets = atto_series.transformer_budget_list(P.budgets, P.transformer_budgets)
    tf_search = atto_series.search_transformers(
        {b: search[b] for b in tf_budgets}, fit, tune, n_widths=P.transformer_widths, steps=P.search_steps,
        chars_per_step=P.search_batch * P.search_seq_len, lr=P.lr, extra_lrs=P.search_lrs if P.search_variants else (),
        seed=P.seed)
    tf_runs = atto_series.train_transformer_series(tf_search, fit, val, tune, seeds=P.seeds, steps=P.final_steps,
                                                   chars_per_step=P.final_batch * P.final_seq_len)
    metrics = json.loads(json.dumps({"profile": P.profile, "search": ac.search_metrics(search),
                                     "final": ac.final_metrics(runs, search),
                                     "transformer": ac.transformer_metrics(tf_search, tf_runs)}, sort_keys=True))
    ran = read_ledger(ledger)
    assert tf_search[64] is None and {s.family for s in ran} == {"atto", "tiny_transformer"}
    assert len(ran) == sum(atto_series.search_runs(r) for r in [*search.values(), *filter(None, tf_search.values())]) \
        + sum(len(f) + len(P.seeds) - 1 for f in [*runs.finalist_losses.values(), *tf_runs.finalist_losses.values()])
    plan = atto_plan.training_plan(P, metrics)
    assert plan_mismatch(plan, ran) == []
    # the transformer's runs to the configuration: the shapes its walk tried, the winner, the kept one
    assert _work(plan, "tiny_transformer", with_config=True) == _work(ran, "tiny_transformer", with_config=True)
    # without them, the n-gram's stand-ins plan at least every run made, and the transformer's as many
    # runs of as many steps (their blocks, hence batches, are the stand-in walk's)
    standin = atto_plan.training_plan(P)
    assert all(p.startswith("planned but not run") for p in plan_mismatch(
        [s for s in standin if s.family == "atto"], [s for s in ran if s.family == "atto"]))
    planned_steps, ran_steps = (Counter(w[1] for w in _work(plan, "tiny_transformer")) for plan in (standin, ran))
    assert set(planned_steps) == set(ran_steps) and all(planned_steps[k] >= n for k, n in ran_steps.items())
    # a build of another profile searched another grid: its outcomes are not this profile's
    assert atto_plan.training_plan(_tiny_parameters("other"), metrics) == \
        atto_plan.training_plan(_tiny_parameters("other"))


def test_recorded_transformer_outcomes_name_the_shapes_tried_the_rates_the_finalists_and_the_kept_one():
    metrics = {"transformer": {"64": None, "256": {
        "shapes": {"E2_L1_H1_block16": 3.1, "E2_L2_H1_block32": 3.0}, "lr_losses": {"0.03": 3.0, "0.01": 3.2},
        "finalists": [["a", 3.0], ["b", 3.1]], "config": "b"}}}
    assert atto_plan.transformer_search_outcomes(metrics) == {
        64: None, 256: {"shapes": [(2, 1, 1, 16), (2, 2, 1, 32)], "rates": [0.03, 0.01], "finalists": ["a", "b"],
                        "kept": "b"}}
    assert atto_plan.transformer_search_outcomes({"search": {}}) == {}


def test_the_plan_trains_the_recorded_transformer_shapes_and_the_kept_one_with_the_other_seeds():
    from atome_core.models import tiny_transformer as tt
    P = _tiny_parameters()
    pool = tt.shape_candidates(1024, atto_series.search_widths(1024, n_widths=P.transformer_widths))
    one = next(k for k in pool if k[1] == 1)
    deep = next(k for k in pool if k[1] == 2 and pool[k].block_size != pool[one].block_size)
    outcome = {"shapes": [one, deep], "rates": [P.lr, 0.01], "finalists": [pool[one].describe(), pool[deep].describe()],
               "kept": pool[deep].describe()}
    plan = atto_plan.transformer_plan(P, {1024: atto_plan.planned_transformer_search(P, 1024, 9, outcome)})
    blocks = {k: pool[k].block_size for k in (one, deep)}
    # the two shapes, the winner (the first finalist) at the other rate; both finalists, the kept one again
    assert [s.seq_len for s in plan if s.steps == P.search_steps] == [blocks[one], blocks[deep], blocks[one]]
    assert [s.seq_len for s in plan if s.steps == P.final_steps] == [blocks[one], blocks[deep], blocks[deep]]
    # a recorded shape this pool does not have (another code's build): the stand-in walk, 9 - 1 shapes
    stale = atto_plan.planned_transformer_search(P, 1024, 9, {**outcome, "shapes": [(3, 1, 1, 16)]})
    assert len(stale[0].shape_losses) == 8 and stale[0].best == next(iter(pool.values()))
