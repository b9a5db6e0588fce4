"""Chapter 6's analysis: parity and speed summaries, the claims, the fuzzer's verdict, the
tables, and the engine measurements behind them (on tiny models)."""
import numpy as np
import pytest

from atome_core import engine as E
from atome_core import formats as F
from atome_core.book.report import table_markdown
from atome_core.chapters import c_engine as ce
from atome_core.engine import bench

TINY = F.RoutedBlobConfig(vocab=16, d_model=8, n_layers=2, d_head=4, top_k=2, kernel=3)


def row(logits, max_ulp=0, model="m"):
    return {"model": model, "codec": "2bit", "path": "f32", "window": 4, "steps": 2, "logits": logits,
            "bits_equal": max_ulp == 0, "max_ulp": max_ulp}


def speeds(at_128=True):
    speed = {("incremental", p, c): v for p, v0 in (("f32", 8000.0), ("i8", 2000.0)) for c, v in ((8, v0), (128, v0))}
    speed.update({("recompute", p, 8): 100.0 for p in ("f32", "i8")})
    if at_128:
        speed[("recompute", "f32", 128)] = 40.0
        speed[("recompute", "i8", 128)] = 20.0
    return speed


def test_parity_summary_is_false_when_a_single_run_differs_by_one_ulp():
    rows = [row(100), row(50)]
    assert ce.parity_summary(rows) == {"runs": 2, "logits": 150, "all_bits_equal": True, "max_ulp": 0}
    rows.append(row(10, max_ulp=1))
    s = ce.parity_summary(rows)
    assert s["all_bits_equal"] is False and s["max_ulp"] == 1 and s["logits"] == 160


TORCH_60K = {"logits": 10, "max_abs": 1.9e-6, "max_ulp": 3540, "max_ulp_logit": 1e-3, "largest_logit": 9.0}


def test_claims_carry_exactly_the_keys_of_the_claims_table_with_a_reason_when_not_timed():
    from atome_core.book.claims import CLAIMS
    keys = {k for c in CLAIMS if c.chapter == "06_c_engine" for k in c.keys}
    parity = ce.parity_summary([row(100)])
    out = ce.claims(parity, "60K trained", speeds(), TORCH_60K, None)
    assert set(out) == keys
    assert out["recompute_tokens_per_second"] == (40.0, "tokens per second", None)
    assert out["incremental_tokens_per_second"][0] == 8000.0
    assert out["torch_60k_max_abs"][0] == 1.9e-6 and out["torch_60k_max_ulp"][0] == 3540
    value, _, reason = out["torch_944k_max_abs"]
    assert value is None and "944K" in reason
    both = ce.claims(parity, "60K trained", speeds(), TORCH_60K, {**TORCH_60K, "max_abs": 7.6e-6})
    assert both["torch_944k_max_abs"] == (7.6e-6, "largest |engine - PyTorch| logit", None)
    missing = ce.claims(parity, "60K trained", speeds(at_128=False), TORCH_60K, None)
    value, _, reason = missing["recompute_tokens_per_second"]
    assert value is None and "128" in reason


def test_the_difference_from_pytorch_counts_ulps_where_they_are_largest():
    engine = np.array([[10.0, 1e-6], [-3.0, 2.0]], np.float32)
    torch_logits = engine.copy()
    torch_logits[0, 1] = np.nextafter(np.float32(1e-6), np.float32(1), dtype=np.float32)   # one ulp near zero
    torch_logits[1, 0] = -3.0001
    d = ce.torch_difference(engine, torch_logits)
    assert d["logits"] == 4 and d["largest_logit"] == 10.0
    assert d["max_abs"] == pytest.approx(1e-4, rel=1e-2)
    assert d["max_ulp"] > 1 and d["max_ulp_logit"] == pytest.approx(3.0001)
    assert ce.torch_difference(engine, engine)["max_ulp"] == 0


def test_the_speed_summary_splits_the_gain_over_the_kit_into_decode_and_arithmetic():
    s = ce.speed_summary(speeds())
    assert s["kit"] == 3.8 and s["over_kit"] == pytest.approx(8000 / 3.8)
    assert s["incremental_factor"] * s["arithmetic_factor"] == pytest.approx(s["over_kit"])
    with pytest.raises(ValueError, match="128"):
        ce.speed_summary(speeds(at_128=False))


def test_the_speed_table_leaves_recompute_blank_where_it_was_not_timed():
    speed = speeds()
    del speed[("recompute", "f32", 128)], speed[("recompute", "i8", 128)]
    text = table_markdown(*ce.speed_table(speed, [8, 128]))
    assert "| 8 | 8,000 | 2,000 | 100.0 | 100.0 |" in text
    assert "| 128 | 8,000 | 2,000 | — | — |" in text


def test_the_fuzzer_counts_a_crash_from_its_exit_status_or_an_error_line():
    log = "stat::number_of_executed_units: 5452\nstat::peak_rss_mb: 440\n"
    assert ce.fuzz_stats(log, 0) == {"number_of_executed_units": 5452, "peak_rss_mb": 440, "crashes": 0}
    assert ce.fuzz_stats(log, 1)["crashes"] == 1
    assert ce.fuzz_stats("==1==ERROR: AddressSanitizer: heap-buffer-overflow\n" + log, 0)["crashes"] == 1
    assert ce.fuzz_table(3, None)[1] == [[3, "not built", "—", "—"]]


def test_the_published_table_says_where_the_8_bit_path_departs():
    g = {"generated": [1, 2, 3], "same": True, "min_margin": 0.07666, "min_margin_step": 2,
         "torch_max_abs": 9.5e-6, "torch_max_ulp": 72119, "margin_over_difference": 8069.0, "i8_first_difference": None}
    rows = dict(ce.published_table(g)[1])
    assert rows["the 8-bit path departs from the float path's text"] == "never"
    assert rows["smallest gap between the best and second-best logit"] == "0.0767"
    g["i8_first_difference"] = 0
    assert dict(ce.published_table(g)[1])["the 8-bit path departs from the float path's text"] == "at token 0"


def test_random_parity_rows_cycle_the_codecs_cover_both_paths_and_repeat_with_the_seed():
    rows = ce.random_parity_rows(2, steps=3, seed=5)
    assert [r["codec"] for r in rows] == ["2bit", "2bit", "dense", "dense"]
    assert [r["path"] for r in rows] == ["f32", "i8", "f32", "i8"]
    assert all(r["bits_equal"] and r["steps"] == 3 for r in rows)
    assert [r["model"] for r in ce.random_parity_rows(2, steps=3, seed=5)] == [r["model"] for r in rows]


def test_decode_speeds_time_both_paths_and_recompute_only_at_its_own_contexts():
    cfg = F.RoutedBlobConfig(vocab=128, d_model=8, n_layers=1, d_head=4, top_k=2, kernel=3)   # printable bytes
    model = E.Model(F.write_blob(cfg, E.random_tensors(cfg), codec="2bit"))
    speed = bench.decode_speeds(model, [4, 8], 4, [4], 2, seed=0, repeats=1)
    assert set(speed) == {("incremental", p, c) for p in E.PATHS for c in (4, 8)} | \
        {("recompute", p, 4) for p in E.PATHS}
    assert all(v > 0 for v in speed.values())


def test_the_state_grows_with_the_window_and_the_integer_path_needs_less():
    sizes = bench.state_scratch_bytes({"tiny": TINY}, windows=(4, 8))
    state = ce.state_of(sizes)
    assert len(sizes) == 4
    assert state[("tiny", 8, "f32")] > state[("tiny", 4, "f32")]
    assert state[("tiny", 8, "i8")] < state[("tiny", 8, "f32")]


def test_the_engine_source_is_counted_from_its_three_files():
    assert bench.source_lines() == sum(bench.source_lines((f,)) for f in bench.SOURCE_FILES) > 100


def test_the_plan_is_the_one_60k_routed_run_of_the_profiles_steps():
    from atome_core.book.estimate import chapter_namespace
    for profile in ("smoke", "paper"):
        P = chapter_namespace("06_c_engine", profile)
        [run] = ce.training_plan(P)
        assert (run.family, run.steps, run.batch_size, run.seq_len) == ("routed", P.train_steps, P.batch_size, P.seq_len)
