"""`atome book --list --profile P`: each chapter's training time from a measured throughput."""
import json
import math
import os

import pytest
import torch

from atome_core.book import estimate as E
from atome_core.book import runner
from atome_core.ledger import (
    LEDGER_ENV,
    RunShape,
    measure_throughput,
    read_ledger,
    run_shape,
)
from atome_core.models.routed import RoutedConfig, RoutedLM
from atome_core.train import TrainConfig, train


def small_shape(steps=5, batch_size=4, seq_len=16) -> RunShape:
    cfg = RoutedConfig(d_model=16, n_layers=1, d_head=8, top_k=2, kernel_size=3)
    return run_shape(RoutedLM, cfg, TrainConfig(steps=steps, batch_size=batch_size, seq_len=seq_len))


def test_a_training_run_appends_its_shape_to_the_ledger(tmp_path, monkeypatch):
    import numpy as np
    ledger = tmp_path / "training_runs.jsonl"
    monkeypatch.setenv(LEDGER_ENV, str(ledger))
    shape = small_shape(steps=3)
    model = RoutedLM(RoutedConfig(d_model=16, n_layers=1, d_head=8, top_k=2, kernel_size=3))
    tokens = np.arange(2000) % 256
    train(model, tokens, tokens[:200], TrainConfig(steps=3, batch_size=4, seq_len=16))
    train(model, tokens, tokens[:200], TrainConfig(steps=2, batch_size=4, seq_len=16))
    runs = read_ledger(ledger)
    assert runs == [shape, small_shape(steps=2)]
    assert runs[0].tokens == 3 * 4 * 16


def test_measuring_throughput_times_real_steps_and_leaves_the_ledger_alone(tmp_path, monkeypatch):
    ledger = tmp_path / "training_runs.jsonl"
    monkeypatch.setenv(LEDGER_ENV, str(ledger))
    monkeypatch.setenv("ATOME_PROGRESS", "1")
    rate = measure_throughput(small_shape(), max_steps=3)
    assert math.isfinite(rate) and rate > 0
    assert not ledger.exists()
    assert os.environ[LEDGER_ENV] == str(ledger) and os.environ["ATOME_PROGRESS"] == "1"   # both restored
    assert json.loads(json.dumps(E._shape_key(small_shape())))   # the cache key is plain JSON


def test_plan_mismatch_names_runs_planned_but_not_run_and_the_reverse():
    a, b = small_shape(steps=5), small_shape(steps=6)
    assert E.plan_mismatch([a, b], [b, a]) == []
    problems = E.plan_mismatch([a, a], [a, b])
    assert len(problems) == 2
    assert any("planned but not run 1x" in p and ", 5," in p for p in problems)
    assert any("run but not planned 1x" in p and ", 6," in p for p in problems)


def test_the_estimate_is_each_runs_tokens_over_its_measured_rate_and_measures_each_shape_once(tmp_path, monkeypatch):
    plans = {"A": [small_shape(steps=10), small_shape(steps=30)], "B": [small_shape(steps=5, seq_len=32)], "C": []}
    monkeypatch.setattr(E, "chapter_plan", lambda name, profile, spec=None, build=None, device=None: plans[name])
    timed = []

    def fake_rate(shape, device):
        timed.append(shape)
        return 100.0 * shape.seq_len            # tokens per second
    monkeypatch.setattr(E, "measure_throughput", fake_rate)
    est = E.estimate("smoke", device="cpu", build=tmp_path, chapters=list(plans), log=lambda *a: None)
    assert len(timed) == 2                       # two step shapes; the steps do not matter
    assert est["chapters"]["A"] == {"runs": 2, "tokens": 40 * 4 * 16, "seconds": pytest.approx(40 * 4 * 16 / 1600)}
    assert est["chapters"]["B"]["seconds"] == pytest.approx(5 * 4 * 32 / 3200)
    assert est["chapters"]["C"] == {"runs": 0, "tokens": 0, "seconds": 0}
    assert est["total_seconds"] == pytest.approx(sum(c["seconds"] for c in est["chapters"].values()))
    E.estimate("smoke", device="cpu", build=tmp_path, chapters=list(plans), log=lambda *a: None)
    assert len(timed) == 2                       # the second estimate reads the cache
    assert E.throughput_cache(tmp_path, "cpu").exists()


def test_book_list_with_a_profile_prints_every_chapters_estimated_time(tmp_path, monkeypatch):
    monkeypatch.setenv("ATOME_BUILD_DIR", str(tmp_path))
    monkeypatch.setattr(E, "measure_throughput", lambda shape, device: 1000.0)
    lines = []
    runner.describe("paper", log=lines.append)
    table = lines[lines.index(next(line for line in lines if line.startswith("estimated training time"))) + 2:]
    chapters = [c.name for c in runner.list_chapters()]
    assert [row.split()[0] for row in table[:len(chapters)]] == chapters
    paper = {name: E.chapter_plan(name, "paper") for name in chapters}
    for name, row in zip(chapters, table):
        tokens = sum(s.tokens for s in paper[name])
        assert row.split()[1:3] == [str(len(paper[name])), f"{tokens:,d}"]
        assert row.endswith(runner.duration(tokens / 1000))
    total = next(row for row in table if row.split()[0] == "total")
    assert total.endswith(runner.duration(sum(s.tokens for p in paper.values() for s in p) / 1000))


@pytest.mark.parametrize(("seconds", "text"), [(0, "0 s"), (12.34, "12.3 s"), (90, "1.5 min"), (7200, "2 h"),
                                                (3 * 86400, "3 d")])
def test_durations_read_in_the_largest_unit_that_fits(seconds, text):
    assert runner.duration(seconds) == text


def test_book_list_without_a_profile_measures_nothing(monkeypatch):
    monkeypatch.setattr(E, "measure_throughput", lambda *a, **k: pytest.fail("measured"))
    lines = []
    runner.describe(None, log=lines.append)
    assert not any(line.startswith("estimated") for line in lines)


@pytest.mark.parametrize("profile", ["cpu", "paper"])
def test_every_planned_run_fits_its_models_longest_sequence(profile):
    # A window longer than a model's max_seq (or block) fails on the first step: at paper, after
    # hours of other chapters. The plans let a test see it without training anything.
    from atome_core.book import profiles
    limits = {"modern": "max_seq", "vanilla": "max_seq", "tiny_transformer": "block_size"}
    for name in profiles.load_profiles()["chapters"]:
        for run in E.chapter_plan(name, profile):
            if run.family in limits:
                limit = json.loads(run.model_config)[limits[run.family]]
                assert run.seq_len <= limit, f"{name}: a {run.family} run of {run.seq_len} > {limit}"


def test_a_planned_run_that_cannot_train_names_its_chapter_and_shape(tmp_path, monkeypatch):
    from atome_core.models.modern import ModernConfig, ModernLM
    too_long = run_shape(ModernLM, ModernConfig(max_seq=16), TrainConfig(steps=3, batch_size=2, seq_len=32))
    monkeypatch.setattr(E, "chapter_plan", lambda name, profile, spec=None, build=None, device=None: [too_long])
    with pytest.raises(ValueError, match=r"^X: a planned modern run \(2 x 32, .*longer than max_seq 16"):
        E.estimate("smoke", device="cpu", build=tmp_path, chapters=["X"], log=lambda *a: None)


def test_a_teacher_outside_the_registry_is_recorded_by_its_class_name():
    class Oracle(torch.nn.Module):
        pass
    shape = run_shape(RoutedLM, RoutedConfig(), TrainConfig(steps=1, batch_size=2, seq_len=8), teacher=Oracle())
    assert (shape.teacher_family, shape.teacher_config) == ("Oracle", None)
