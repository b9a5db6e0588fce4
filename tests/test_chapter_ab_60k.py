"""Chapter 4's analysis: the kit's split, the jobs, the scores and the tables it shows."""
import math
from types import SimpleNamespace

import numpy as np
import pytest

from atome_core.book.report import table_markdown
from atome_core.chapters import ab_60k as ab
from atome_core.train import TrainConfig


def run(bits_per_byte, tokens_per_second=100.0):
    return SimpleNamespace(final_val_loss=bits_per_byte * math.log(2), tokens_per_second=tokens_per_second)


@pytest.fixture
def runs():
    """Two corpora; three seeds of each main model on tinystories, one on shakespeare."""
    out = {}
    bpb = {"routed": 2.0, "vanilla param-fair": 2.5, "vanilla flash-fair": 3.0, "modern": 1.5}
    for seed, shift in ((0, 0.0), (1, 0.1), (2, -0.1)):
        for name, b in bpb.items():
            out[f"tinystories|{name}|{seed}"] = run(b + shift)
    for name, b in bpb.items():
        out[f"shakespeare|{name}|0"] = run(b + 1)
    out["tinystories|routed without state|0"] = run(2.2)
    return out


def test_the_split_keeps_the_first_max_bytes_and_gives_the_last_tenth_to_validation():
    corpus = SimpleNamespace(text="abcdefghij" * 3)
    splits = ab.corpus_splits({"toy": corpus}, max_bytes=20)
    train, val = splits["toy"]
    assert len(train) == 18 and len(val) == 2
    assert bytes(train.astype(np.uint8)) == b"abcdefghijabcdefgh" and bytes(val.astype(np.uint8)) == b"ij"
    assert train.dtype == np.int64


def test_ablations_train_on_the_main_corpus_with_its_first_seed_only():
    specs = ab.ab_models(pathway_ablations=True)
    tokens = np.zeros(10, np.int64)
    splits = {"shakespeare": (tokens, tokens), "tinystories": (tokens, tokens)}
    seeds_of = ab.seeds_by_corpus(splits, "tinystories", [0, 1], [7])
    jobs = ab.train_jobs(splits, specs, seeds_of, "tinystories", TrainConfig(steps=1, batch_size=2, seq_len=4))
    names = [j.name for j in jobs]
    assert names[:4] == [f"shakespeare|{n}|7" for n in ab.MAIN]
    assert [n for n in names if "without" in n] == [f"tinystories|routed without {p}|0"
                                                    for p in ("local", "state", "sparse")]
    assert len(names) == 4 + 2 * 4 + 3
    assert all(j.cfg.seed == j.init_seed == int(j.name.rsplit("|", 1)[1]) for j in jobs)


def test_final_scores_take_the_median_and_range_over_seeds_of_one_corpus(runs):
    final = ab.final_scores(runs, ["tinystories", "shakespeare"], ab.ab_models(pathway_ablations=True))
    routed = final[("tinystories", "routed")]
    assert routed["bpb"]["n"] == 3 and routed["bpb"]["median"] == pytest.approx(2.0)
    assert routed["bpb"]["min"] == pytest.approx(1.9) and routed["bpb"]["max"] == pytest.approx(2.1)
    assert routed["ppl"]["median"] == pytest.approx(4.0)
    assert final[("shakespeare", "routed")]["bpb"]["n"] == 1
    assert ("shakespeare", "routed without state") not in final
    assert final[("tinystories", "routed without state")]["bpb"]["n"] == 1


def test_the_gain_table_says_plainly_where_the_routed_model_loses(runs):
    final = ab.final_scores(runs, ["tinystories"], ab.ab_models())
    header, rows = ab.gain_table(final, ["tinystories"])
    words = {row[1]: row[4] for row in rows}
    # routed 2^2 = 4 against param-fair 2^2.5 = 5.66: 29 % lower; against modern 2^1.5 = 2.83: 41 % higher
    assert words["vanilla param-fair"] == "29 % lower"
    assert words["modern"] == "41 % higher"
    claimed = {row[1]: row[5] for row in rows}
    assert claimed == {"vanilla param-fair": "22 % lower", "vanilla flash-fair": "52 % lower", "modern": "—"}


def test_the_results_table_shows_median_and_range_and_the_kit_only_beside_tinystories(runs):
    final = ab.final_scores(runs, ["shakespeare", "tinystories"], ab.ab_models())
    text = table_markdown(*ab.results_table(final, ["shakespeare", "tinystories"], steps=1500))
    assert "kit ppl (1500 steps, median of 3 seeds) | kit ppl (3000 steps, 1 seed)" in text
    assert "| tinystories | routed | 2.000 [1.900, 2.100] | 4.000 [3.732, 4.287] | 7.60 | 6.31 |" in text
    assert "| shakespeare | routed | 3.000 | 8.000 | — | — |" in text
    assert "| tinystories | modern | 1.500 [1.400, 1.600] | 2.828 [2.639, 3.031] | — | — |" in text


def test_the_kit_recipe_beside_ours_follows_the_number_of_steps():
    assert ab.kit_recipes(3000)[0] == "3000 steps, 1 seed"
    assert ab.kit_recipes(12) == ("1500 steps, median of 3 seeds", "3000 steps, 1 seed")


def test_claims_quote_the_main_corpus_medians_and_how_many_seeds_they_are_over(runs):
    final = ab.final_scores(runs, ["shakespeare", "tinystories"], ab.ab_models())
    claims = ab.claims(final, "tinystories", 1500)
    assert set(claims) == {"corpus", "steps", "seeds", "routed_ppl", "param_fair_ppl", "flash_fair_ppl",
                           "modern_ppl"}
    assert claims["corpus"] == ("tinystories", "") and claims["steps"][0] == 1500 and claims["seeds"][0] == 3
    assert claims["routed_ppl"] == (pytest.approx(4.0), "per-byte perplexity")
    assert claims["flash_fair_ppl"][0] == pytest.approx(8.0)
    assert ab.claims(final, "shakespeare", 1500)["seeds"][0] == 1


def test_the_headline_names_the_best_model_even_when_it_is_not_routed(runs):
    final = ab.final_scores(runs, ["tinystories"], ab.ab_models())
    h = ab.headline(final, "tinystories")
    assert h["best_model"] == "modern" and h["best_ppl"] == pytest.approx(2 ** 1.5)
    assert h["against_flash_fair"] == "50 % lower"


def speed_of(tokens_per_second, cpu_seconds_per_step, seconds_per_step=0.01):
    return {"tokens_per_second": tokens_per_second, "cpu_seconds_per_step": cpu_seconds_per_step,
            "seconds_per_step": seconds_per_step}


def test_the_speed_summary_says_whether_the_target_we_set_is_met():
    speed = {"routed (scan)": speed_of(600, 0.02, 0.02), "routed (kernel)": speed_of(300, 0.04, 0.05),
             "vanilla param-fair": speed_of(1000, 0.01)}
    s = ab.speed_summary(speed, {"routed": 10.0, "vanilla param-fair": 20.0})
    assert s["ratio"] == pytest.approx(0.6) and s["cpu_ratio"] == pytest.approx(0.5)
    assert s["target_verdict"] == "falls short of" and s["scan_over_kernel"] == pytest.approx(2.5)
    assert s["kit_ratio"] == pytest.approx(95 / 195)
    speed["routed (scan)"]["tokens_per_second"] = 800
    assert ab.speed_summary(speed, {"routed": 1, "vanilla param-fair": 1})["target_verdict"] == "meets"


def test_the_ablation_summary_finds_the_costliest_pathway_and_copes_without_retrained_models():
    scores = {"full_bpb": 2.0, "full_trained_bpb": 2.1, "pathways": {
        "local": {"switched_off_bpb": 2.5, "trained_without_bpb": 2.3},
        "state": {"switched_off_bpb": 2.1, "trained_without_bpb": 2.15},
        "sparse": {"switched_off_bpb": 2.2, "trained_without_bpb": 2.6}}}
    s = ab.ablation_summary(scores)
    assert s["worst"] == "local" and s["worst_cost"] == pytest.approx(0.5)
    assert (s["needed"], s["spare"]) == ("sparse", "state")
    header, rows = ab.ablation_table(scores)
    assert rows[3] == ["sparse", 2.2, "+0.200", 2.6, "+0.500"]
    for a in scores["pathways"].values():
        a["trained_without_bpb"] = None
    s = ab.ablation_summary(scores)
    assert s["needed"] == s["spare"] == "(not trained in this run)"
    assert ab.ablation_table(scores)[1][1][3:] == [None, "—"]


def test_the_published_gap_is_routed_minus_vanilla_here_and_in_the_kit():
    published = {"routed 944K": {"nats_per_byte": 1.10, "kit_val_nats_per_byte": 1.0545},
                 "vanilla 944K": {"nats_per_byte": 1.00, "kit_val_nats_per_byte": 0.9337}}
    header, rows = ab.published_gap_table(published)
    assert rows[0][0] == "routed minus vanilla"
    assert rows[0][1] == pytest.approx(0.10) and rows[0][2] == pytest.approx(0.1208)
    assert rows[0][3] == pytest.approx(0.10 - 0.1208)
