"""Chapter 9 (the frontier): the analysis on small, hand-checkable fixtures, and the runs' plumbing."""
import numpy as np
import pytest

from atome_core.chapters import frontier as fa
from atome_core.chapters import frontier_runs as fr
from atome_core.evaluate import median_and_range
from atome_core.models.modern import ModernConfig
from atome_core.models.presets import preset_config
from atome_core.models.vanilla import VanillaConfig
from atome_core.recipe import best_rates, book_config, tuning_split
from atome_core.train import run_jobs


def cell(name, nbytes, bpb, family="modern", size="60k", scheme=None, params=1000, ram=100):
    return {"label": name, "deployed_bytes": nbytes, "bpb": median_and_range([bpb]), "family": family,
            "size": size, "scheme": scheme, "params": params, "ram_bytes": ram, "corpus": "toy"}


# -- the Pareto front ------------------------------------------------------------------------------

def test_the_front_keeps_only_the_cells_no_other_cell_beats_on_bytes_and_bits():
    cells = [cell("a", 100, 3.0), cell("b", 200, 3.5), cell("c", 300, 2.5), cell("d", 50, 4.0),
             cell("e", 400, 2.6)]
    # d is the smallest; a beats b (smaller and better); c beats e
    assert [c["label"] for c in fa.pareto_front(cells)] == ["d", "a", "c"]


def test_of_two_cells_with_equal_bytes_the_front_keeps_the_better_and_drops_an_exact_duplicate():
    cells = [cell("worse", 100, 3.0), cell("better", 100, 2.0), cell("twin", 100, 2.0), cell("big", 500, 2.0)]
    assert [c["label"] for c in fa.pareto_front(cells)] == ["better"]


def test_the_front_can_be_drawn_against_ram_instead_of_bytes():
    cells = [cell("a", 100, 3.0, ram=900), cell("b", 200, 2.0, ram=50)]
    assert [c["label"] for c in fa.pareto_front(cells, "ram_bytes")] == ["b"]
    assert [c["label"] for c in fa.pareto_front(cells)] == ["a", "b"]


def test_each_flash_budget_gets_the_best_cell_that_fits_or_none():
    cells = [cell("tiny", 3000, 4.0), cell("mid", 9000, 3.0), cell("big", 20000, 2.0)]
    best = fa.best_by_budget(cells, [2, 4, 16, 32])
    assert [b["cell"] and b["cell"]["label"] for b in best] == [None, "tiny", "mid", "big"]
    assert best[1]["budget_bytes"] == 4096


# -- RAM ---------------------------------------------------------------------------------------------

def test_the_modern_ram_formula_counts_kv_cache_activations_and_logits_for_a_tiny_config():
    cfg = ModernConfig(vocab_size=10, d_model=6, n_layers=2, n_heads=3, n_kv_heads=1, d_ff=5)
    # d_head 2: KV 2 layers * 2 * 4 tokens * 1 head * 2 = 32; activations 3*6 + 3*2 + 3*4 + 2*5 = 46; logits 10
    assert fa.ram_formula("modern", cfg, window=4) == 4 * (32 + 46 + 10)


def test_the_vanilla_ram_formula_caches_full_width_keys_and_values():
    cfg = VanillaConfig(vocab_size=10, d_model=8, n_layers=1, n_heads=2, d_ff=16, max_seq=32)
    # KV 1 * 2 * 4 * 8 = 64; activations 4*8 + 2*4 + 16 = 56; logits 10
    assert fa.ram_formula("vanilla", cfg, window=4) == 4 * (64 + 56 + 10)


def test_a_ternary_model_needs_the_ram_of_its_fp32_shape_and_doubling_the_width_needs_more():
    fp32 = fa.ram_formula("modern", preset_config("modern-30k"))
    assert fa.ram_formula("modern", preset_config("modern-ternary-30k")) == fp32
    assert fa.ram_formula("modern", preset_config("modern-ternary-x2-30k")) > fp32


def test_routed_ram_comes_from_the_engine_or_the_formula_and_grows_with_the_window():
    from atome_core.models.presets import build_model
    model = build_model("routed", "15k")
    small, large = fa.ram_bytes(model, 16), fa.ram_bytes(model, 64)
    assert small["source"] in ("formula", "C engine state + scratch + logits")
    assert 0 < small["bytes"] < large["bytes"]


# -- the writes measure ----------------------------------------------------------------------------

def test_the_writes_measure_is_the_share_of_letter_words_found_in_the_training_vocabulary():
    vocab = fa.vocabulary("Once upon a time, a cat sat. The cat's hat!")
    assert vocab == {"once", "upon", "a", "time", "cat", "sat", "the", "s", "hat"}
    # words: The, cat, zzq, sat, on, a, mat -> the, cat, sat, a known: 4 of 7
    assert fa.writes_share("The cat zzq sat on a mat.", vocab) == pytest.approx(4 / 7)
    assert fa.writes_share("12 ?! --", vocab) is None


# -- the targets -----------------------------------------------------------------------------------

def test_the_atome01_target_is_met_only_at_fifteen_percent_below_the_routed_60k():
    routed = cell("routed 60K", 17_732, 3.0, family="routed")
    met = fa.target_atome01([routed, cell("small", 14_000, 2.5, "modern-ternary"), cell("big", 30_000, 1.0)])
    assert met["met"] and met["measured"]["best_model"] == "small"
    assert met["measured"]["reduction"] == pytest.approx(1 - 2.5 / 3.0)
    missed = fa.target_atome01([routed, cell("small", 14_000, 2.7, "modern-ternary")])
    assert missed["met"] is False
    assert fa.target_atome01([cell("small", 14_000, 2.7)])["met"] is None


def test_the_match_target_finds_the_smallest_model_as_good_as_the_fp32_60k():
    cells = [cell("fp32 60K", 242_760, 2.5), cell("x2", 25_000, 2.45, "modern-ternary-x2", "30k"),
             cell("tiny", 3_000, 2.9, "modern-ternary", "8k"), cell("int4", 38_000, 2.5, scheme="int4")]
    t = fa.target_match_fp32(cells)
    assert t["measured"]["smallest_model"] == "x2" and t["met"]
    assert t["measured"]["times_smaller"] == pytest.approx(242_760 / 25_000)
    assert fa.target_match_fp32(cells, limit=20_000)["met"] is False


def test_the_bz2_target_needs_a_model_within_64_kb_strictly_below_bz2():
    cells = [cell("a", 60_000, 2.40), cell("b", 70_000, 2.0)]
    assert fa.target_bz2(cells, 2.43)["met"] is True
    assert fa.target_bz2(cells, 2.40)["met"] is False
    assert fa.target_bz2([cell("b", 70_000, 2.0)], 2.43)["met"] is None


def test_double_width_compares_at_the_same_size_and_against_the_best_fp32_model_in_no_more_bytes():
    cells = [cell("fp32 8K", 31_920, 3.0, size="8k"), cell("fp32 8K int4", 7_000, 3.1, size="8k", scheme="int4"),
             cell("x2 8K", 6_644, 2.9, "modern-ternary-x2", "8k"),
             cell("fp32 15K", 59_112, 2.5, size="15k"), cell("fp32 15K int4", 12_000, 2.6, size="15k", scheme="int4"),
             cell("x2 15K", 11_764, 2.7, "modern-ternary-x2", "15k")]
    v = {d["size"]: d for d in fa.double_width(cells)}
    assert v["8k"]["same_size_holds"] and v["8k"]["same_bytes_model"] is None
    assert not v["15k"]["same_size_holds"]
    assert v["15k"]["same_bytes_model"] == "fp32 8K int4" and v["15k"]["same_bytes_holds"]


def test_the_claims_carry_every_key_the_closing_chapter_reads():
    ts = [cell("routed 60K", 17_732, 3.0, family="routed"), cell("fp32 60K", 242_760, 2.5),
          cell("x2 60K", 46_000, 2.4, "modern-ternary-x2")]
    targets = [fa.target_atome01(ts), fa.target_match_fp32(ts), fa.target_bz2([cell("a", 9_000, 3.0)], 2.4)]
    claims = fa.claims(targets, fa.double_width(ts), {"shakespeare": {"bz2": 2.4}})
    assert set(claims) == {"best_under_atome01_bpb", "routed_60k_bpb", "best_under_atome01_model",
                           "match_fp32_60k_bytes", "shakespeare_best_under_64k_bpb", "bz2_shakespeare_bpb",
                           "double_width_holds_sizes", "double_width_sizes"}
    assert claims["match_fp32_60k_bytes"][0] == 46_000
    assert claims["double_width_holds_sizes"][0] == ["60k"]


# -- the runs ----------------------------------------------------------------------------------------

def test_the_recipe_is_the_kits_shape_at_the_rate_given():
    cfg = book_config(100, 3e-3, seed=1)
    assert (cfg.batch_size, cfg.seq_len, cfg.schedule, cfg.warmup_steps, cfg.weight_decay, cfg.grad_clip) == \
        (16, 64, "constant", 0, 0.0, None)
    assert cfg.lr == 3e-3 and cfg.seed == 1


def test_the_grid_gives_extra_seeds_only_to_the_named_sizes_and_refuses_unknown_sizes():
    cells = fr.grid_cells({"modern": ["8k", "60k"], "routed": ["60k"]}, [0], {"60k": [0, 1]})
    assert cells == [("modern", "8k", 0), ("modern", "60k", 0), ("modern", "60k", 1),
                     ("routed", "60k", 0), ("routed", "60k", 1)]
    with pytest.raises(ValueError):
        fr.grid_cells({"routed": ["8k"]}, [0])


def test_the_tuning_slice_is_the_end_of_the_training_bytes_and_never_the_validation():
    train = np.arange(100)
    rest, tune = tuning_split(train, 10)
    assert rest.tolist() == list(range(90)) and tune.tolist() == list(range(90, 100))
    with pytest.raises(ValueError):
        tuning_split(train, 60)


def test_the_sweep_picks_each_familys_lowest_tuning_score():
    sweep = {"modern": {1e-3: 3.0, 3e-3: 2.5, 1e-2: 2.7}, "routed": {1e-3: 3.1, 3e-3: 3.1}}
    assert best_rates(sweep) == {"modern": 3e-3, "routed": 1e-3}


def test_a_tiny_grid_trains_scores_and_quantises_end_to_end():
    rng = np.random.default_rng(0)
    train, val = rng.integers(0, 256, 4000), rng.integers(0, 256, 64 * 3 + 1)
    rates = {"modern": 1e-2, "modern-ternary": 1e-2}
    jobs = fr.grid_jobs("toy", train, val, [("modern", "8k", 0), ("modern-ternary", "8k", 0)], rates, steps=2)
    runs = {j.name: r for j, r in zip(jobs, run_jobs(jobs))}
    cells, models = fa.collect_cells("toy", jobs, runs, val, rates, ("int4",))
    by = {c["label"]: c for c in cells}
    assert set(by) == {"modern FP32 8K", "modern FP32 8K as int4", "modern ternary 8K"}
    assert by["modern FP32 8K"]["deployed_bytes"] == 4 * 7980
    assert by["modern ternary 8K"]["deployed_bytes"] == 2868
    assert by["modern FP32 8K as int4"]["deployed_bytes"] < by["modern FP32 8K"]["deployed_bytes"]
    # the cell's score is the scorer's on the model as trained
    assert by["modern FP32 8K"]["bpb"]["median"] == pytest.approx(fa.score_model(models["modern FP32 8K"], val))
    text = fa.continuation(models["modern ternary 8K"], "Once", 5, temperature=0.8, seed=0)
    assert text == fa.continuation(models["modern ternary 8K"], "Once", 5, temperature=0.8, seed=0)


def test_without_the_tinystories_sample_a_stand_in_is_named_and_its_claims_are_not_measured(monkeypatch):
    from atome_core.chapters import frontier as fa
    from atome_core.chapters import frontier_runs as fr

    def absent(name, path=None, max_bytes=None):
        if name == "tinystories":
            raise ValueError("tinystories needs a file: give its path")
        return np.arange(100) % 7, np.arange(10) % 7

    monkeypatch.setattr(fr, "load_split", absent)
    train, _val, note = fr.load_main_split()
    assert len(train) == 100 and "Moby-Dick stand in" in note
    targets = [{"name": n, "measured": None, "threshold": {}, "met": None, "reason": "r"}
               for n in ("atome01", "match_fp32_60k", "shakespeare_bz2")]
    got = fa.claims(targets, [], {"shakespeare": {"bz2": 2.4}}, stand_in=note)
    assert got["routed_60k_bpb"] == (None, "bits per byte, TinyStories sample", note)
    assert got["double_width_sizes"][0] is None and got["bz2_shakespeare_bpb"][0] == 2.4


def test_a_chosen_rate_at_the_edge_of_the_sweep_is_marked():
    sweep = {"routed": {1e-3: 3.0, 1e-2: 2.5}, "modern": {1e-3: 3.0, 3e-3: 2.4, 1e-2: 2.6}}
    _, rows = fr.sweep_rows(sweep, best_rates(sweep))
    chosen = {row[0]: row[-1] for row in rows}
    assert chosen["routed ternary"] == "0.01 (edge of the sweep)"
    assert chosen["modern FP32"] == "0.003"


# -- the plan (atome_core.book.estimate) ---------------------------------------------------------------

def routed_stand_in_teacher():
    """The published teacher's family and size without its file (the plan needs no weights)."""
    from atome_core.models import family
    from atome_core.models.presets import ladder_config
    return family("routed")[1], ladder_config("routed", "944k"), None


def test_the_paper_plan_has_every_sweep_grid_atto_and_distillation_run_at_its_profiles_steps(monkeypatch):
    from collections import Counter

    from atome_core.book.estimate import chapter_namespace
    from atome_core.chapters import distillation as D
    monkeypatch.setattr(D, "published_teacher_or_reason", lambda path=None: (routed_stand_in_teacher(), None))
    P = chapter_namespace("09_frontier", "paper")
    plan = fr.training_plan(P)
    cells = (sum(len(sizes) for sizes in P.tinystories_grid.values()) * len(P.seeds)
             + sum(len(sizes) for sizes in P.shakespeare_grid.values()) * len(P.shakespeare_seeds))
    students = len(P.distill_students) * len(P.distill_seeds)
    distilled = students * (len(P.distill_alphas) - 1)
    atto = len(P.atto_budgets) * len(P.shakespeare_seeds)
    got = Counter((s.family == "atto", s.steps, s.teacher_family) for s in plan)
    assert got[(False, P.sweep_steps, None)] == len(fr.ARMS) * len(P.sweep_lrs)
    assert sum(got[(False, steps, None)] for steps in {P.steps, P.distill_steps}) == cells + students
    assert got[(False, P.distill_steps, "routed")] == distilled
    assert got[(True, P.atto_steps, None)] == atto
    search = got[(True, P.atto_search_steps, None)]
    assert search >= 2 * len(P.atto_budgets)        # at least one width and n_full plus the linear family per budget
    assert len(plan) == len(fr.ARMS) * len(P.sweep_lrs) + cells + students + distilled + atto + search
    assert {(s.batch_size, s.seq_len) for s in plan if s.family != "atto"} == {(16, 64)}
    assert {(s.batch_size, s.seq_len) for s in plan if s.family == "atto"} == {(P.atto_batch, P.atto_seq_len)}
    assert not any(s.autocast_bf16 or s.grad_accum != 1 for s in plan)


def test_without_the_published_teacher_the_plan_has_no_distillation_runs_and_follows_the_parameters(monkeypatch):
    from atome_core.book.estimate import chapter_namespace
    from atome_core.chapters import distillation as D
    monkeypatch.setattr(D, "published_teacher_or_reason", lambda path=None: (None, "not run: absent"))
    P = chapter_namespace("09_frontier", "paper")
    plan = fr.training_plan(P)
    assert not any(s.teacher_family for s in plan)
    P.seeds, P.atto_steps = [0], 10
    fewer = fr.training_plan(P)
    grid_ts = sum(len(sizes) for sizes in P.tinystories_grid.values())
    assert len(plan) - len(fewer) == 2 * grid_ts        # two of the three seeds gone from the TinyStories grid
    assert {s.steps for s in fewer if s.family == "atto"} == {P.atto_search_steps, 10}
