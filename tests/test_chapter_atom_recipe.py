"""Chapter 8's steps (atome_core.chapters.atom_recipe) on tiny models and texts."""
import numpy as np
import pytest
import torch

from atome_core.chapters import atom_recipe as recipe
from atome_core.data.tokenizer import BPETokenizer, ByteTokenizer

TEXT = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n" * 20)
SMALL = dict(d_model=12, n_layers=1, d_ff=16, max_seq=64)


@pytest.fixture(scope="module")
def bpe():
    return BPETokenizer.train([TEXT], vocab_size=280)


def test_curriculum_corpora_are_sorted_and_scored_on_shakespeares_validation_text():
    names, corpora, val = recipe.curriculum_corpora([[0.0, {"shakespeare": 1.0}], [1.0, {"alice": 1.0}]], 500)
    assert names == ["alice", "shakespeare"] and set(corpora) == {"alice", "shakespeare"}
    assert val == corpora["shakespeare"].val[:500]
    _, only_alice, val2 = recipe.curriculum_corpora([[0.0, {"alice": 1.0}]], 500)
    assert set(only_alice) == {"alice"} and val2 == val     # Shakespeare is loaded for scoring alone


def test_tokenizer_stats_count_bytes_not_characters_and_pieces_spell_the_text(bpe):
    text = "Speak, speak. — café\n"
    stats = recipe.tokenizer_stats(bpe, text)
    assert stats["bytes"] == len(text.encode()) > len(text)
    assert stats["bytes_per_token"] == pytest.approx(stats["bytes"] / stats["tokens"])
    assert "".join(recipe.token_pieces(bpe, "Speak, speak.\n")) == "Speak, speak.\n"
    assert recipe.tokenizer_stats(ByteTokenizer(), text)["bytes_per_token"] == 1.0


def test_byte_window_matches_the_bytes_a_bpe_window_sees_and_is_at_least_eight():
    assert recipe.byte_window(32, 1.32) == 42
    assert recipe.byte_window(4, 1.0) == 8


def test_build_models_seeds_each_model_so_the_byte_models_do_not_depend_on_the_bpe_sizes(bpe):
    a = recipe.build_models(bpe, 0, SMALL, SMALL, 16, 20)
    b = recipe.build_models(bpe, 0, dict(SMALL, d_model=24), SMALL, 16, 20)
    assert list(a) == ["Atom-style (BPE)", "Atom-style 60K (BPE)", "routed ternary 60K (bytes)", "modern 60K (bytes)"]
    assert a["routed ternary 60K (bytes)"][2] == 20 and a["Atom-style (BPE)"][2] == 16
    assert a["Atom-style (BPE)"][1] is bpe and isinstance(a["modern 60K (bytes)"][1], ByteTokenizer)
    for name in ("routed ternary 60K (bytes)", "modern 60K (bytes)"):
        for x, y in zip(a[name][0].state_dict().values(), b[name][0].state_dict().values()):
            assert torch.equal(x, y), name


@pytest.fixture(scope="module")
def trained(bpe):
    models = recipe.build_models(bpe, 0, SMALL, SMALL, 16, 20)
    models = {k: v for k, v in models.items() if "routed" not in k}          # keep the test short
    corpora = {"shakespeare": type("C", (), {"train": TEXT})()}
    return recipe.train_on_curriculum(models, corpora, [[0.0, {"shakespeare": 1.0}]], TEXT[:600], steps=3,
                                      batch_size=2, lr=1e-3, seed=0)


def test_training_runs_every_model_for_the_steps_and_logs_the_mixture(trained):
    for name, (_, _, _, result) in trained.items():
        assert result.history[-1]["step"] == 3, name
        assert result.history[-1]["mixture"] == {"shakespeare": 1.0}


def test_bits_per_byte_table_counts_bpe_tokens_as_bytes_seen(trained, bpe):
    table = recipe.bits_per_byte_table(trained, TEXT[:600], bpe, 2.5)
    bpe_row, byte_row = table["Atom-style (BPE)"], table["modern 60K (bytes)"]
    assert bpe_row["train_bytes_seen"] == pytest.approx(2.5 * trained["Atom-style (BPE)"][3].history[-1]["tokens_seen"])
    assert byte_row["train_bytes_seen"] == trained["modern 60K (bytes)"][3].history[-1]["tokens_seen"]
    assert byte_row["deployed_bytes"] == 4 * byte_row["params"] and byte_row["deployed_format"] == "FP32"
    assert all(0 < r["bits_per_byte"] < 16 for r in table.values())


def test_local_task_rows_follow_the_columns():
    scores = {"m": {t: {"acc": 0.5, "acc_norm": 0.25, "exact_match": 0.0, "bits_per_byte": 3.0}
                    for t, _ in recipe.LOCAL_TASK_COLUMNS}}
    assert recipe.local_task_rows(scores) == [["m", 0.5, 0.25, 0.5, 0.0, 3.0]]


def test_nextline_reading_finds_the_best_model_by_acc_norm_and_its_distance_from_chance():
    scores = {"a": {"shakespeare_nextline": {"acc": 0.60, "acc_norm": 0.30, "sample_len": 100}},
              "b": {"shakespeare_nextline": {"acc": 0.20, "acc_norm": 0.45, "sample_len": 100}}}
    r = recipe.nextline_reading(scores, default_items=7)
    assert r["best"] == "b" and r["items"] == 100 and r["metric"] == "acc_norm" and r["models"] == 2
    assert r["se"] == pytest.approx(np.sqrt(0.1875 / 100)) and r["z"] == pytest.approx(0.2 / r["se"])
    assert r["beats_chance"] is True
    assert recipe.nextline_reading(scores, default_items=7, metric="acc")["best"] == "a"
    del scores["b"]["shakespeare_nextline"]["sample_len"]
    assert recipe.nextline_reading(scores, default_items=7)["items"] == 7


def test_the_nextline_sentence_names_a_best_model_only_when_it_beats_chance():
    scores = {"a": {"shakespeare_nextline": {"acc_norm": 0.22, "sample_len": 100}},
              "b": {"shakespeare_nextline": {"acc_norm": 0.24, "sample_len": 100}}}
    r = recipe.nextline_reading(scores, default_items=100)
    assert r["best"] == "b" and r["beats_chance"] is False
    text = recipe.nextline_sentence(r)
    assert text.startswith("no model of the 2 beats chance") and "b's" in text and "24.0 %" in text
    assert "-0.2 standard errors" in text and "best model here" not in text
    # two standard errors at chance over 100 items is 8.7 points: 0.30 is not enough, 0.34 is
    scores["b"]["shakespeare_nextline"]["acc_norm"] = 0.30
    assert recipe.nextline_reading(scores, default_items=100)["beats_chance"] is False
    scores["b"]["shakespeare_nextline"]["acc_norm"] = 0.34
    r = recipe.nextline_reading(scores, default_items=100)
    assert r["beats_chance"] is True
    assert recipe.nextline_sentence(r).startswith("the best model here is b, at 34.0 % (acc_norm)")


def test_local_tasks_score_every_model_and_leave_no_bars_or_warnings_on_stderr(trained, capfd):
    pytest.importorskip("lm_eval")
    one = {"modern 60K (bytes)": trained["modern 60K (bytes)"]}
    scores = recipe.local_task_scores(one, n_items=2, seed=0)
    assert set(scores) == set(one)
    assert scores["modern 60K (bytes)"]["shakespeare_nextline"]["sample_len"] == 2
    out, err = capfd.readouterr()
    assert err == "" and "it/s" not in out and "Generating" not in out


def test_the_plan_trains_four_models_and_the_byte_models_window_follows_the_tokenizer():
    from atome_core.book.estimate import chapter_namespace
    P = chapter_namespace("08_atom_recipe", "paper")
    plan = recipe.training_plan(P)
    assert [s.family for s in plan] == ["modern", "modern", "routed", "modern"]
    assert all((s.steps, s.batch_size) == (P.steps, P.batch_size) for s in plan)
    assert [s.seq_len for s in plan] == [P.seq_len] * 4            # stand-in: one byte per token
    measured = recipe.training_plan(P, bytes_per_token=3.5)
    assert [s.seq_len for s in measured] == [P.seq_len] * 2 + [recipe.byte_window(P.seq_len, 3.5)] * 2
