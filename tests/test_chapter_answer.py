"""Chapter 10's answer and verdicts, on small fixtures shaped like the chapters' metrics."""
import pytest

from atome_core.book.claims import CLAIMS, claim_entries
from atome_core.chapters import answer

AB = {"corpus": "tinystories", "steps": 1500, "seeds": 3, "routed_ppl": 7.6, "param_fair_ppl": 9.86,
      "flash_fair_ppl": 18.69, "modern_ppl": 7.0}


def frontier_fixture():
    stat = lambda m: {"median": m, "min": m - 0.01, "max": m + 0.02, "n": 3}   # noqa: E731
    cells = [
        {"corpus": "shakespeare", "family": "modern-ternary", "size": "30k", "params": 29940,
         "deployed_bytes": 7656, "deployed_format": "ATMM", "ram_bytes": 1000, "bpb": stat(2.4), "lr": 0.003,
         "scheme": "ternary"},
        {"corpus": "shakespeare", "family": "routed", "size": "60k", "params": 60800, "deployed_bytes": 14000,
         "deployed_format": "ATMB", "ram_bytes": 2000, "bpb": stat(2.6), "lr": 0.003, "scheme": "ternary"},
        {"corpus": "tinystories", "family": "modern-ternary", "size": "30k", "params": 29940,
         "deployed_bytes": 7656, "deployed_format": "ATMM", "ram_bytes": 1000, "bpb": stat(1.9), "lr": 0.003,
         "scheme": "ternary"},
    ]
    row = lambda budget, family, bpb: {"budget": budget, "family": family, "size": "30k", "params": 29940,  # noqa: E731
                                       "bytes": 7656, "ram": 1000, "bpb": bpb, "greedy": "the the the",
                                       "sampled": "ROMEO:\nWhat  say you " + "x" * 100, "words_known": 0.8}
    return {
        "recipe": {}, "lr_sweep": {}, "cells": cells,
        "front": {"shakespeare": cells[:1], "tinystories": cells[2:]},
        "references": {"shakespeare": {"bz2": 2.2, "xz": 2.4,
                                       "kn": [{"order": 3, "prune_above": None, "bits_per_byte": 2.5,
                                               "deployed_bytes": 50000},
                                              {"order": 5, "prune_above": None, "bits_per_byte": 2.1,
                                               "deployed_bytes": 900000}]},
                       "tinystories": {"bz2": 2.0, "xz": 2.1, "kn": []}},
        "best_by_budget": {"shakespeare": [row(65536, "modern-ternary", 2.4), row(16384, "routed", 2.6)],
                           "tinystories": [{"budget_kb": 4, "model": None},
                                           {"budget_kb": 16, "model": "modern-ternary-30k",
                                            "family": "modern-ternary", "size": "30k", "params": 29940,
                                            "deployed_bytes": 7656, "bpb": stat(1.9), "greedy": "Once",
                                            "sampled": "Once upon", "writes": 1.0}]},
        "targets": [   # as chapter 9 stores them: a list with names, `measured` None when not measured
            {"name": "shakespeare_bz2", "threshold": {"deployed_bytes": 65536, "bz2_bpb": 2.2}, "met": False,
             "measured": {"best_model": "modern-ternary-30k", "best_bpb": 2.4}},
            {"name": "match_fp32_60k", "threshold": {"deployed_bytes": 30720}, "met": True,
             "measured": {"fp32_60k_bytes": 242760, "smallest_bytes": 23132}},
            {"name": "atome01", "threshold": {"deployed_bytes": 20575, "reduction": 0.15}, "met": None,
             "measured": None, "reason": "the routed 60K was not trained"}],
        "double_width": {"30k": {}},
        "claims": {"best_under_atome01_bpb": {"value": 2.4, "unit": "bits per byte"},
                   "routed_60k_bpb": {"value": 2.6, "unit": "bits per byte"},
                   "best_under_atome01_model": {"value": "modern-ternary-30k", "unit": ""},
                   "match_fp32_60k_bytes": {"value": 23132, "unit": "bytes"},
                   "shakespeare_best_under_64k_bpb": {"value": 2.4, "unit": "bits per byte"},
                   "bz2_shakespeare_bpb": {"value": 2.2, "unit": "bits per byte"},
                   "double_width_holds_sizes": {"value": ["30k", "60k"], "unit": "sizes"},
                   "double_width_sizes": {"value": ["8k", "30k", "60k"], "unit": "sizes"}},
    }


def test_the_kits_60k_claim_is_refuted_when_the_routed_perplexity_is_not_below_the_param_fair_one():
    v = answer.verdict({**AB, "routed_ppl": 205.4, "param_fair_ppl": 181.6, "flash_fair_ppl": 250.1}, None, "cpu")
    assert v.verdict == answer.REFUTED and "param-fair" in v.reason and "205.43" not in v.reason
    assert "205.40" in v.reason and "181.60" in v.reason


def test_the_kits_60k_claim_holds_when_the_routed_model_is_below_both_baselines_and_gives_the_margins():
    v = answer.verdict(AB, None, "cpu")
    assert v.verdict == answer.HOLDS
    assert "22.9 %" in v.reason and "59.3 %" in v.reason and "kit: 22 % and 52 %" in v.reason


def test_the_kits_60k_claim_is_refuted_when_only_the_flash_fair_baseline_is_beaten_in_reverse():
    v = answer.verdict({**AB, "flash_fair_ppl": 7.0}, None, "cpu")
    assert v.verdict == answer.REFUTED and "flash-fair" in v.reason


def test_the_kits_60k_claim_is_not_comparable_on_another_corpus():
    v = answer.verdict({**AB, "corpus": "shakespeare"}, None, "cpu")
    assert v.verdict == answer.NOT_COMPARABLE and "TinyStories" in v.reason


def test_a_loss_level_is_refuted_only_at_the_original_training_length():
    worse = {"atto_8192_nats_per_char": 2.78, "atto_64_nats_per_char": 4.26}
    assert answer.verdict(worse, None, "cpu").verdict == answer.NOT_COMPARABLE
    assert answer.verdict(worse, None, "paper").verdict == answer.REFUTED
    close = {"atto_8192_nats_per_char": 1.95, "atto_64_nats_per_char": 2.50}
    assert answer.verdict(close, None, "smoke").verdict == answer.HOLDS
    just_over = {"atto_8192_nats_per_char": 1.97, "atto_64_nats_per_char": 2.50}
    assert answer.verdict(just_over, None, "paper").verdict == answer.REFUTED


@pytest.mark.parametrize("better, compared, expected", [(0, 8, "holds"), (1, 8, "refuted"), (0, 0, "not comparable")])
def test_the_ngram_claim_holds_only_when_no_transformer_of_the_same_size_is_better(better, compared, expected):
    v = answer.verdict({"transformer_better_budgets": better, "compared_budgets": compared}, None, "cpu")
    assert v.verdict == expected


def test_ternary_costs_little_up_to_five_percent_more_than_fp32():
    fp32 = 3.86
    assert answer.verdict({"ternary_60k_nats_per_byte": 4.45, "fp32_60k_nats_per_byte": fp32, "seeds": 1},
                          None, "cpu").verdict == answer.REFUTED
    v = answer.verdict({"ternary_60k_nats_per_byte": 4.0, "fp32_60k_nats_per_byte": fp32, "seeds": 1}, None, "cpu")
    assert v.verdict == answer.HOLDS and "3.6 %" in v.reason and "5.0 %" in v.reason


def test_the_15_kb_blob_is_judged_on_the_kits_own_layout_read_as_kib():
    v = answer.verdict({"atome01_60k_bytes": 20575, "atmb_60k_f32_bytes": 17732, "atmb_60k_f16_bytes": 14916},
                       None, "smoke")
    assert v.verdict == answer.REFUTED and "20,575" in v.reason and "15,462" in v.reason and "14,916" in v.reason
    assert answer.verdict({"atome01_60k_bytes": 15400, "atmb_60k_f32_bytes": 1, "atmb_60k_f16_bytes": 1},
                          None, "smoke").verdict == answer.HOLDS


def test_the_reversal_holds_when_the_vanilla_model_is_ahead_and_is_refuted_otherwise():
    v = answer.verdict({"published_windows": 1023, "published_routed_nats_per_byte": 1.1246,
                        "published_vanilla_nats_per_byte": 1.0508}, None, "cpu")
    assert v.verdict == answer.HOLDS and "6.6 %" in v.reason and "11.5 %" in v.reason
    v = answer.verdict({"published_windows": 4, "published_routed_nats_per_byte": 1.0,
                        "published_vanilla_nats_per_byte": 1.0}, None, "cpu")
    assert v.verdict == answer.REFUTED and "not ahead" in v.reason


ENGINE = {"parity_all_bits_equal": True, "parity_max_ulp": 0, "parity_logits": 15968,
          "torch_60k_max_abs": 1.9e-6, "torch_60k_max_ulp": 3540, "torch_944k_max_abs": 7.6e-6,
          "torch_944k_max_ulp": 72119}


def test_the_kits_bit_exact_claim_is_judged_on_pytorch_within_its_tolerance_and_states_both():
    v = answer.verdict(ENGINE, None, "cpu")
    assert v.verdict == answer.HOLDS
    assert "60K 1.9e-06" in v.reason and "944K 7.6e-06" in v.reason and "1e-03" in v.reason
    assert "bit-exact with our NumPy reference over 15,968 logits" in v.reason
    # past the tolerance at one size: refuted, even though our reference parity is exact
    assert answer.verdict({**ENGINE, "torch_944k_max_abs": 2e-3}, None, "cpu").verdict == answer.REFUTED
    # without the published model the 60K comparison judges alone; our own parity failing is said
    v = answer.verdict({**ENGINE, "torch_944k_max_abs": None, "torch_944k_max_ulp": None,
                        "parity_all_bits_equal": False, "parity_max_ulp": 3}, None, "cpu")
    assert v.verdict == answer.HOLDS and "944K" not in v.reason and "NOT bit-exact" in v.reason
    v = answer.verdict({**ENGINE, "torch_60k_max_abs": None}, None, "cpu")
    assert v.verdict == answer.NOT_COMPARABLE and "torch_60k_max_abs" in v.reason


def test_the_kits_speed_is_not_comparable_across_machines_and_the_side_by_side_ratio_is_given():
    v = answer.verdict({"bench_model": "944K published", "recompute_tokens_per_second": 75.0,
                        "incremental_tokens_per_second": 9000.0}, None, "cpu")
    assert v.verdict == answer.NOT_COMPARABLE
    assert "another machine" in v.reason and "120 times" in v.reason and "9,000 vs 75.0" in v.reason


def test_the_firmware_holds_only_when_every_run_is_bit_exact():
    firmware = {"bit_exact_runs": 2, "runs": 2, "published_944k_tokens": None, "published_944k_tokens_equal": None}
    v = answer.verdict(firmware, None, "smoke")
    assert v.verdict == answer.HOLDS and "944K model is not run" in v.reason
    assert answer.verdict({**firmware, "published_944k_tokens": 16, "published_944k_tokens_equal": 15},
                          None, "cpu").verdict == answer.REFUTED
    assert answer.verdict({**firmware, "bit_exact_runs": 1}, None, "cpu").verdict == answer.REFUTED


def test_the_atom_benchmarks_are_not_comparable_and_an_unmeasured_claim_says_why():
    v = answer.verdict({"nextline_model": "Atom-style (BPE)", "nextline_acc_norm": 0.25, "nextline_items": 4},
                       None, "smoke")
    assert v.verdict == answer.NOT_COMPARABLE and "offline" in v.reason
    v = answer.verdict({"nextline_model": "m", "nextline_acc_norm": 0.21, "nextline_items": 100, "nextline_z": -0.9,
                        "nextline_beats_chance": False}, None, "cpu")
    assert "-0.9 standard errors from chance: not above it" in v.reason
    v = answer.verdict(None, "not measured in this build", "cpu")
    assert v == answer.Verdict(answer.NOT_COMPARABLE, "not measured in this build")
    assert "no rule" in answer.verdict({"something_else": 1.0}, None, "cpu").reason


def test_every_claim_of_the_intro_table_has_exactly_one_rule_and_every_rule_a_claim():
    used = []
    for claim in CLAIMS:
        matching = [rule for rule in answer.RULES if set(rule.needs) <= set(claim.keys)]
        assert len(matching) == 1, (claim.claim, matching)
        assert answer.rule_for(claim.keys) is matching[0]
        used.append(matching[0])
    assert sorted(map(id, used)) == sorted(map(id, answer.RULES))


def test_the_verdict_table_reads_the_claims_blocks_as_the_intro_does():
    metrics = {"04_ab_60k": {"claims": {k: {"value": v, "unit": ""} for k, v in AB.items()}}}
    header, rows = answer.verdict_table(claim_entries(metrics), "cpu")
    assert len(header) == 6 and len(rows) == len(CLAIMS) and header[answer.VERDICT_COLUMN] == "verdict"
    by_chapter = {c.chapter: row for c, row in zip(CLAIMS, rows)}
    assert by_chapter["04_ab_60k"][answer.VERDICT_COLUMN] == answer.HOLDS
    assert by_chapter["05_reversal"][answer.VERDICT_COLUMN:] == [answer.NOT_COMPARABLE, "not measured in this build"]
    counts = answer.verdict_counts(rows)
    assert counts == {answer.HOLDS: 1, answer.REFUTED: 0, answer.NOT_COMPARABLE: len(CLAIMS) - 1}


def test_the_answer_glues_the_same_keys_with_or_without_the_frontier():
    packing = {"claims": {"atome01_60k_bytes": {"value": 20575, "unit": "bytes"}}}
    absent = answer.frontier_glue(None, packing)
    present = answer.frontier_glue(frontier_fixture(), packing)
    assert set(absent) == set(present)
    assert "not measured in this build" in absent["frontier_status"]
    assert absent["best_under_atome01_bpb"] == "n/a" and absent["atome01_60k_bytes"] == "20,575"
    assert answer.frontier_glue(None)["atome01_60k_bytes"] == "n/a"
    assert all(isinstance(v, str) for v in present.values())
    assert present["frontier_status"].startswith("chapter 9 scored 3 models")
    assert "2 corpora (shakespeare, tinystories)" in present["frontier_status"]
    assert present["best_under_atome01_model"] == "modern-ternary-30k"
    assert (present["best_under_atome01_bpb"], present["routed_60k_bpb"]) == ("2.400", "2.600")
    assert present["match_fp32_60k_bytes"] == "23,132"
    assert (present["kn_shakespeare_bpb"], present["kn_shakespeare_bytes"]) == ("2.100", "900,000")
    assert present["fp32_60k_bytes"] == "242,760"
    assert (present["densest_family"], present["densest_wins"], present["budget_pairs"]) == ("modern-ternary", "2", "3")
    assert (present["double_width_holds_sizes"], present["double_width_sizes"]) == ("2", "3")


def test_the_densest_family_names_every_family_tied_at_the_top():
    best = {"a": [{"family": "routed"}, {"family": "modern"}], "b": [{"family": "modern"}, {"family": "routed"}]}
    assert answer.densest_family(best) == (["modern", "routed"], 2, 4)
    assert answer.densest_family({}) == ([], 0, 0)


def test_the_best_kneser_ney_model_can_be_asked_within_a_budget():
    kn = frontier_fixture()["references"]["shakespeare"]["kn"]
    assert answer.kn_best(kn)["order"] == 5
    assert answer.kn_best(kn, budget=65536)["order"] == 3
    assert answer.kn_best(kn, budget=1000) is None and answer.kn_best(None) is None


def test_the_frontier_tables_are_ordered_by_corpus_and_budget_and_shorten_the_samples():
    f = frontier_fixture()
    header, rows = answer.best_by_budget_table(f)
    assert [(r[0], r[1]) for r in rows] == [("shakespeare", 16384), ("shakespeare", 65536), ("tinystories", 4096),
                                            ("tinystories", 16384)]
    assert rows[0][2] == "routed 30k" and rows[0][5] == 2.6
    assert rows[0][7].startswith("ROMEO: What say you") and len(rows[0][7]) == 60
    assert rows[2][2:] == ["none fits", None, None, None, None, ""]
    assert rows[3][2:] == ["modern-ternary-30k", 29940, 7656, 1.9, 1.0, "Once upon"]
    header, rows = answer.references_table(f)
    assert rows[0] == ["shakespeare", 2.4, 7656, 2.2, 2.4, 2.1, 900000]
    assert rows[1][5] is None and rows[1][6] is None
    header, rows = answer.targets_table(f)
    assert [r[0] for r in rows] == ["atome01", "match_fp32_60k", "shakespeare_bz2"]
    assert rows[0][1:] == ["the routed 60K was not trained", "deployed bytes 20,575; reduction 0.15", "not measured"]
    assert rows[2][1] == "best model modern-ternary-30k; best bpb 2.4" and rows[2][3] is False
    assert answer.missed_targets(f) == ["shakespeare_bz2"] and answer.met_targets(f) == ["match_fp32_60k"]
    as_dict = {"targets": {"beat bz2": {"bpb": 2.4, "threshold": 2.2, "met": False}}}
    assert answer.targets_table(as_dict)[1] == [["beat bz2", "bpb 2.4", "2.2", False]]
    assert answer.best_by_budget_table(None)[1] == [] and answer.targets_table(None)[1] == []


def test_the_open_questions_quote_the_chapters_numbers_or_say_n_a():
    ab = {"claims": {"seeds": {"value": 3, "unit": "seeds"}, "steps": {"value": 1500, "unit": "steps"}}}
    out = answer.open_questions_glue({"09_frontier": frontier_fixture(), "04_ab_60k": ab})
    assert out == {"targets_total": "3", "targets_met": "1", "targets_missed": "1", "ab_seeds": "3", "ab_steps": "1,500",
                   "reversal_windows": "n/a", "nextline_items": "n/a"}
    assert set(answer.open_questions_glue({}).values()) == {"n/a"}
