"""The distillation experiment's module: paired jobs, the plain run unchanged, the teacher on
the students' windows, the table's verdicts, what the recipe keeps, and the refusals."""
import json
import math

import numpy as np
import pytest
import torch

from atome_core import train as T
from atome_core.chapters import distillation as D
from atome_core.models.modern import ModernConfig, ModernLM

pytestmark = pytest.mark.usefixtures("one_thread")

SEQ = 16


def tiny(d_model=6, vocab=256, **kw):
    return ModernConfig(vocab_size=vocab, d_model=d_model, n_layers=1, n_heads=3, n_kv_heads=1, d_ff=8, **kw)


@pytest.fixture(scope="module")
def corpus():
    rng = np.random.default_rng(0)
    words = [b"the ", b"cat ", b"sat ", b"on ", b"a ", b"mat. ", b"dog ", b"ran "]
    text = b"".join(words[i] for i in rng.integers(0, len(words), 1500))
    raw = np.frombuffer(text, dtype=np.uint8).astype(np.int64)
    cut = int(len(raw) * 0.9)
    return raw[:cut], raw[cut:]


@pytest.fixture(scope="module")
def teacher(corpus):
    """A tiny teacher trained a few steps: wider than the students."""
    torch.manual_seed(0)
    model = ModernLM(tiny(d_model=24))
    T.train(model, *corpus, T.TrainConfig(steps=30, batch_size=8, seq_len=SEQ, lr=1e-2, log_every=0))
    return D.teacher_spec(model.eval())


def jobs(corpus, teacher, students=None, seeds=(0, 1), alphas=(0, 0.5), steps=4, **kw):
    return D.distillation_jobs(students or {"small": (ModernLM, tiny(6))}, teacher, *corpus, steps=steps,
                               batch_size=4, seq_len=SEQ, lr=3e-3, seeds=seeds, alphas=alphas,
                               temperature=2.0, **kw)


def test_jobs_pair_every_distilled_run_with_a_plain_run_of_the_same_seed(corpus, teacher):
    got = jobs(corpus, teacher, students={"a": (ModernLM, tiny(6)), "b": (ModernLM, tiny(12))})
    assert len(got) == 2 * 2 * 2
    by = {(p["student"], p["alpha"], p["seed"]): j for j in got for p in [D.parse_job_name(j.name)]}
    for student in ("a", "b"):
        for seed in (0, 1):
            plain, distilled = by[(student, 0.0, seed)], by[(student, 0.5, seed)]
            assert plain.init_seed == distilled.init_seed == seed
            assert plain.cfg.seed == distilled.cfg.seed == seed
            assert plain.model_config == distilled.model_config
            assert plain.teacher is None and distilled.teacher is teacher
            assert plain.cfg.distill_alpha == 0 and distilled.cfg.distill_alpha == 0.5
            assert distilled.cfg.distill_temperature == 2.0 and distilled.cfg.schedule == "constant"
            assert np.array_equal(plain.train_tokens, distilled.train_tokens)


def test_each_student_may_train_at_its_own_rate(corpus, teacher):
    students = {"a": (ModernLM, tiny(6)), "b": (ModernLM, tiny(12))}
    got = D.distillation_jobs(students, teacher, *corpus, steps=2, batch_size=4, seq_len=SEQ,
                              lr={"a": 1e-3, "b": 1e-2}, seeds=[0], alphas=[0, 0.5])
    assert {(D.parse_job_name(j.name)["student"], j.cfg.lr) for j in got} == {("a", 1e-3), ("b", 1e-2)}
    with pytest.raises(ValueError, match=r"no learning rate for student\(s\) \['b'\]"):
        D.distillation_jobs(students, teacher, *corpus, steps=2, batch_size=4, seq_len=SEQ,
                            lr={"a": 1e-3}, seeds=[0], alphas=[0, 0.5])


def test_jobs_refuse_alphas_without_the_plain_run(corpus, teacher):
    with pytest.raises(ValueError, match="include 0"):
        jobs(corpus, teacher, alphas=(0.5,))


def test_the_plain_run_is_the_plain_trainer_bit_for_bit(corpus, teacher):
    plain_job = [j for j in jobs(corpus, teacher, seeds=(1,)) if j.cfg.distill_alpha == 0][0]
    got = T.run_job(plain_job)
    torch.manual_seed(1)
    model = ModernLM(tiny(6))
    want = T.train(model, *corpus, T.TrainConfig(steps=4, batch_size=4, seq_len=SEQ, lr=3e-3, seed=1,
                                                 log_every=0))
    assert got.final_val_loss == want.final_val_loss
    for name, value in model.state_dict().items():
        assert np.array_equal(got.state_dict[name], value.numpy()), name


def test_the_distilled_run_differs_from_the_plain_one(corpus, teacher):
    plain, distilled = sorted(jobs(corpus, teacher, seeds=(0,)), key=lambda j: j.cfg.distill_alpha)
    a, b = T.run_jobs([plain, distilled])
    assert a.final_val_loss != b.final_val_loss
    assert "train_data_loss" in b.history[-1]


class RecordingTeacher(ModernLM):
    """A teacher that keeps every input it is asked to predict from."""
    seen = []

    def forward(self, idx):
        RecordingTeacher.seen.append(idx.clone())
        return super().forward(idx)


def test_the_teacher_reads_exactly_the_students_training_windows(corpus, teacher):
    _, config, state = teacher
    spec = (RecordingTeacher, config, state)
    job = [j for j in jobs(corpus, spec, seeds=(3,), steps=3) if j.cfg.distill_alpha > 0][0]
    RecordingTeacher.seen.clear()
    T.run_job(job)
    assert len(RecordingTeacher.seen) == 3
    rng = np.random.default_rng(3)          # the trainer's batch stream for seed 3
    for idx in RecordingTeacher.seen:
        x, _ = T.batches(corpus[0], 4, SEQ, rng)
        assert idx.shape == (4, SEQ)
        assert torch.equal(idx, x)


def test_a_teacher_with_another_vocabulary_is_refused(corpus):
    torch.manual_seed(0)
    other = D.teacher_spec(ModernLM(tiny(12, vocab=64)))
    with pytest.raises(ValueError, match="vocabulary of 64 tokens"):
        jobs(corpus, other)


def test_a_teacher_that_reads_fewer_tokens_than_the_windows_is_refused(corpus):
    short = D.teacher_spec(ModernLM(tiny(24, max_seq=8)))
    with pytest.raises(ValueError, match="at most 8 tokens"):
        jobs(corpus, short)


def test_no_teacher_is_needed_when_every_run_is_plain(corpus):
    got = jobs(corpus, None, alphas=(0,))
    assert all(j.teacher is None for j in got)
    with pytest.raises(ValueError, match="needs a teacher"):
        jobs(corpus, None)


def records(student, plain, distilled, alpha=0.5):
    """Hand-made results: plain and distilled bits per byte, one per seed."""
    out = [{"student": student, "alpha": 0.0, "seed": s, "val_bpb": v, "params": 100} for s, v in enumerate(plain)]
    out += [{"student": student, "alpha": alpha, "seed": s, "val_bpb": v, "params": 100}
            for s, v in enumerate(distilled)]
    return out


def test_the_table_pairs_each_seed_with_its_own_plain_run():
    table = D.distillation_table(records("8k", [3.0, 3.2, 2.9], [2.9, 3.0, 2.85]))
    plain, distilled = table
    assert plain["alpha"] == 0 and "verdict" not in plain
    assert plain["val_bpb"] == {"median": 3.0, "min": 2.9, "max": 3.2, "n": 3}
    assert distilled["diff_by_seed"] == pytest.approx({0: -0.1, 1: -0.2, 2: -0.05})
    assert distilled["diff"]["median"] == pytest.approx(-0.1)
    assert distilled["verdict"] == "helps"
    assert distilled["params"] == 100


def test_helps_only_when_every_seed_gains_more_than_the_margin():
    # the medians gain 0.1, but one seed gains less than the margin: no clear gain
    table = D.distillation_table(records("8k", [3.0, 3.0, 3.0], [2.9, 2.8, 2.995]), margin=0.01)
    assert table[1]["verdict"] == "no clear gain"
    table = D.distillation_table(records("8k", [3.0, 3.0, 3.0], [2.9, 2.8, 2.985]), margin=0.01)
    assert table[1]["verdict"] == "helps"
    table = D.distillation_table(records("8k", [3.0, 3.0, 3.0], [2.9, 2.8, 2.985]), margin=0.05)
    assert table[1]["verdict"] == "no clear gain"


def test_hurts_when_every_seed_loses_more_than_the_margin_and_mixed_seeds_are_no_clear_gain():
    assert D.distillation_table(records("8k", [3.0, 3.0], [3.1, 3.2]))[1]["verdict"] == "hurts"
    assert D.distillation_table(records("8k", [3.0, 3.0], [2.8, 3.2]))[1]["verdict"] == "no clear gain"


def test_one_seed_never_earns_a_verdict_either_way():
    assert D.distillation_table(records("8k", [3.0], [2.0]))[1]["verdict"] == "no clear gain"
    assert D.distillation_table(records("8k", [3.0], [4.0]))[1]["verdict"] == "no clear gain"


def test_a_distilled_seed_without_its_plain_run_is_refused():
    rows = records("8k", [3.0], [2.9, 2.8])
    with pytest.raises(ValueError, match=r"seed\(s\) \[1\]"):
        D.distillation_table(rows)


def test_keep_in_recipe_names_the_sizes_where_it_helps_with_their_best_alpha():
    rows = (records("8k", [3.0, 3.1], [2.9, 3.0], alpha=0.5) + records("8k", [], [2.8, 2.95], alpha=0.9)
            + records("30k", [2.5, 2.6], [2.55, 2.58]) + records("x2", [2.4, 2.5], [2.6, 2.7]))
    table = D.distillation_table(rows)
    assert D.keep_in_recipe(table) == {"8k": 0.9}
    assert D.size_verdicts(table) == {"8k": "helps", "30k": "no clear gain", "x2": "hurts"}
    assert D.keep_in_recipe(D.distillation_table(records("30k", [2.5, 2.6], [2.55, 2.58]))) == {}


def test_the_table_reads_job_results_by_their_names(corpus, teacher):
    got = jobs(corpus, teacher, seeds=(0, 1), steps=2)
    results = T.run_jobs(got)
    table = D.distillation_table(results)
    assert [(r["student"], r["alpha"]) for r in table] == [("small", 0.0), ("small", 0.5)]
    assert table[0]["val_bpb"]["n"] == 2
    by_name = {r.name: r.final_val_loss / math.log(2) for r in results}
    assert table[1]["diff_by_seed"][1] == pytest.approx(by_name["small|alpha=0.5|seed=1"]
                                                         - by_name["small|alpha=0|seed=1"])
    header, rows = D.table_rows(table)
    assert len(rows) == 2 and len(header) == len(rows[0])
    assert rows[0][-1] == "(the plain run)" and rows[1][-1] in D.VERDICTS


def test_students_are_named_as_presets_or_ladder_rungs():
    from atome_core.models.routed import RoutedLM
    cls, config = D.student_spec("modern-ternary-x2-8k")
    assert cls is ModernLM and config.d_model == 24 and config.quant is not None
    cls, config = D.student_spec("routed-15k")
    assert cls is RoutedLM and config.d_model == 24
    with pytest.raises(ValueError, match="unknown student"):
        D.student_spec("tiny-thing")


def test_step_seconds_times_both_steps_and_the_teacher(corpus, teacher):
    got = D.step_seconds({"small": (ModernLM, tiny(6))}, teacher, corpus[0], batch_size=4, seq_len=SEQ,
                         rounds=2, warmup=1)
    assert got["teacher_forward_s"] > 0
    s = got["students"]["small"]
    assert s["plain_s"] > 0 and s["distilled_s"] > 0 and s["ratio"] == s["distilled_s"] / s["plain_s"]


def test_an_absent_published_teacher_gives_the_reason_instead_of_a_crash(tmp_path):
    spec, reason = D.published_teacher_or_reason(tmp_path / "missing.pt")
    assert spec is None and reason.startswith("not run:") and "missing.pt" in reason


def test_the_published_teacher_fits_the_frontier_students_and_scores_the_split():
    spec, reason = D.published_teacher_or_reason()
    if spec is None:
        pytest.skip(reason)
    text = b"Once upon a time there was a little girl. She liked to play in the park. " * 8
    tokens = np.frombuffer(text, dtype=np.uint8).astype(np.int64)
    got = D.distillation_jobs(["modern-ternary-8k"], spec, tokens, tokens, steps=1, batch_size=2,
                              seq_len=64, lr=3e-3, seeds=[0], alphas=[0, 0.5])
    assert len(got) == 2
    # a trained model predicts repeated simple English far below 8 bits per byte
    assert D.teacher_bits_per_byte(spec, tokens, 64) < 2.0


def test_the_experiment_without_a_teacher_trains_nothing_and_says_why(corpus):
    got = D.run_distillation({"small": (ModernLM, tiny(6))}, None, *corpus, steps=2, batch_size=4,
                             seq_len=SEQ, lr=1e-3, seeds=[0], alphas=[0, 0.5], reason="not run: no file")
    assert got == {"run": False, "reason": "not run: no file"}


def test_the_experiment_end_to_end_gives_the_table_the_verdicts_and_the_teachers_score(corpus, teacher):
    got = D.run_distillation({"small": (ModernLM, tiny(6))}, teacher, *corpus, steps=3, batch_size=4,
                             seq_len=SEQ, lr=3e-3, seeds=[0, 1], alphas=[0, 0.5])
    assert got["run"] and len(got["records"]) == 4 and len(got["table"]) == 2
    assert got["verdicts"]["small"] in D.VERDICTS
    assert got["teacher_bpb"] == pytest.approx(D.teacher_bits_per_byte(teacher, corpus[1], SEQ))
    assert got["verdict_text"].startswith(got["verdicts"]["small"] + " for small")
    json.dumps(got)   # the summary goes into a chapter's metrics as it is


def test_the_verdict_text_names_the_alpha_kept():
    table = D.distillation_table(records("8k", [3.0, 3.1], [2.9, 3.0]) + records("30k", [2.5, 2.6], [2.55, 2.58]))
    assert D.verdict_text(table, 0.01) == ("helps for 8k (alpha 0.5); no clear gain for 30k (a gain counts "
                                           "only when every seed gains more than 0.01 bits per byte)")


def test_jobs_put_on_the_cpu_keep_their_threads_and_auto_picks_cuda_only_when_present():
    import dataclasses

    from atome_core.recipe import on_device
    from atome_core.train import TrainConfig, TrainJob
    job = TrainJob(name="j", model_class=object, model_config=None, train_tokens=np.zeros(10), val_tokens=np.zeros(10),
                   cfg=TrainConfig(steps=1, batch_size=1, seq_len=2), threads=1)
    (cpu,) = on_device([job], "cpu")
    assert cpu.cfg.device == "cpu" and cpu.threads == 1
    (auto,) = on_device([dataclasses.replace(job)], "auto")
    assert auto.cfg.device == ("cuda" if torch.cuda.is_available() else "cpu")


def test_the_plan_has_one_shape_per_job_and_the_teacher_only_on_the_distilled_runs(teacher):
    students = {"small": (ModernLM, tiny(6)), "wider": (ModernLM, tiny(12))}
    plan = D.training_plan(students, teacher, steps=7, batch_size=4, seq_len=SEQ, seeds=[0, 1], alphas=[0, 0.5, 0.9])
    assert len(plan) == 2 * 2 * 3
    assert {(s.steps, s.batch_size, s.seq_len) for s in plan} == {(7, 4, SEQ)}
    assert sum(s.teacher_family == "modern" for s in plan) == 2 * 2 * 2
    assert sum(s.teacher_family is None for s in plan) == 2 * 2
    assert D.training_plan(students, None, steps=7, batch_size=4, seq_len=SEQ, seeds=[0], alphas=[0, 0.5]) == []
