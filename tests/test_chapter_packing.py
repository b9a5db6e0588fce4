"""Chapter 3's analysis (atome_core.chapters.packing) and the damaged files it draws from
the one catalogue (atome_core.engine.conformance)."""
import numpy as np
import pytest

from atome_core import formats as F
from atome_core.chapters import packing as measure
from atome_core.engine import conformance
from atome_core.formats.published import CheckpointError

TINY = F.RoutedBlobConfig(vocab=16, d_model=8, n_layers=2, d_head=4, top_k=2, kernel=3)


@pytest.fixture(scope="module")
def tiny_tensors():
    return conformance.random_tensors(TINY, seed=1)


@pytest.fixture(scope="module")
def tiny_blob(tiny_tensors):
    return F.write_blob(TINY, tiny_tensors, codec="dense", float_dtype="float16")


def row(name, n, zero, entropy, **bits):
    return {"name": name, "n_trits": n, "zero_fraction": zero, "entropy_bits": entropy,
            **{f"bits_{c}": bits.get(c, 2.0) for c in F.packing.CODECS}}


# -- the group code and the codecs ---------------------------------------------------------------


def test_record_group_sizes_each_cost_less_per_trit_than_every_smaller_group():
    rows = measure.group_size_rows(320)
    assert [r[0] for r in rows][:3] == [1, 3, 5] and rows[-1][:2] == [306, 485]
    rates = [r[2] for r in rows]
    assert rates == sorted(rates, reverse=True)
    assert rows[2][3] == pytest.approx(100 * (1.6 / F.packing.LOG2_3 - 1))   # five per byte: 0.95 % above


def test_codec_rows_give_each_codec_its_rate_and_say_which_are_sequential():
    trits = np.random.default_rng(0).integers(-1, 2, 3000).astype(np.int8)
    rows = {r[0]: r for r in measure.codec_rows(trits)}
    assert set(rows) == set(F.packing.CODECS)
    assert rows["2bit"][1] == 2.0 and rows["base3x5"][1] == pytest.approx(1.6, abs=1e-3)
    assert rows["rans"][2] == "no (sequential)" and rows["dense"][2] == "yes"


# -- the models measured -----------------------------------------------------------------------------


def test_published_blob_is_none_when_absent_and_refused_when_its_sha256_differs(tmp_path):
    assert measure.published_blob(tmp_path) is None
    (tmp_path / "atome_944k.bin").write_bytes(b"not the published file")
    with pytest.raises(CheckpointError, match="sha256"):
        measure.published_blob(tmp_path)


def test_models_to_measure_without_training_is_the_60k_model_at_its_seeds_initialisation():
    models = measure.models_to_measure(None, seed=0)
    assert list(models) == ["60K at init"]
    again = measure.models_to_measure(None, seed=0)
    other = measure.models_to_measure(None, seed=1)
    name = F.trit_weight_names("60k")[0]
    assert np.array_equal(models["60K at init"][1][name], again["60K at init"][1][name])
    assert not np.array_equal(models["60K at init"][1][name], other["60K at init"][1][name])


def test_models_to_measure_add_the_trained_model_given_with_its_weights():
    import torch

    from atome_core.models.routed import RoutedConfig, RoutedLM
    torch.manual_seed(5)
    trained = RoutedLM(RoutedConfig())
    models = measure.models_to_measure(None, seed=0, trained=trained)
    assert list(models) == ["60K at init", "60K trained"]
    name = F.trit_weight_names("60k")[0]
    assert np.array_equal(models["60K trained"][1][name],
                          F.tensors_from_state_dict(trained.state_dict(), "60k")[name])


SMALL = {"d_model": 16, "n_layers": 1, "d_head": 8, "top_k": 2, "kernel_size": 3}
RECIPE = {"steps": 2, "max_bytes": 20000, "tinystories_path": None}


def test_chapter4s_model_is_read_when_it_has_the_config_asked_for(tmp_path, one_thread):
    import torch

    from atome_core.formats.model_file import save_model
    from atome_core.models.routed import RoutedConfig, RoutedLM
    from atome_core.quant import QuantConfig
    torch.manual_seed(3)
    net = RoutedLM(RoutedConfig(quant=QuantConfig(weights="ternary", act_bits=8), **SMALL))
    path = save_model(net, tmp_path / "m.safetensors", info={"corpus": "shakespeare", "steps": 3000, "lr": 3e-4,
                                                             "seed": 0, "val_bpb": 2.5, "act_bits": 8})
    model, info = measure.chapter4_routed(path, RECIPE, "shakespeare", act_bits=8, shape=SMALL)
    assert info["source"] == "chapter 4" and info["steps"] == 3000
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), net.state_dict().values()))
    assert measure.trained_row(info) == ["chapter 4", "shakespeare", 3000, 3e-4, 2.5]


def test_without_chapter4s_model_or_with_another_config_the_same_recipe_trains_here(tmp_path, one_thread):
    import torch

    from atome_core.formats.model_file import save_model
    from atome_core.models.routed import RoutedConfig, RoutedLM
    from atome_core.recipe import KIT_LR
    model, info = measure.chapter4_routed(None, RECIPE, "shakespeare", act_bits=8, shape=SMALL)
    assert info["source"] == "trained here" and info["corpus"] == "shakespeare"
    assert (info["steps"], info["lr"], info["seed"], info["act_bits"]) == (2, KIT_LR, 0, 8)
    assert model.cfg.quant.act_bits == 8 and model.cfg.d_model == 16 and not model.training
    # a file with FP32 activations is not the 8-bit model asked for: trained here, the same weights
    other = save_model(RoutedLM(RoutedConfig(**SMALL)), tmp_path / "fp32act.safetensors")
    again, again_info = measure.chapter4_routed(other, RECIPE, "shakespeare", act_bits=8, shape=SMALL)
    assert again_info["source"] == "trained here"
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))


# -- codec costs over a model ------------------------------------------------------------------------


def test_weighted_summary_weights_each_tensor_by_its_trits_and_finds_the_worst_big_tensor():
    rows = [row("a", 3000, 0.5, 1.5, rans=1.53, dense=1.585), row("b", 9000, 0.3, 1.55, rans=1.55, dense=1.585),
            row("c", 100, 0.1, 1.2, rans=2.4, dense=1.6)]
    s = measure.weighted_summary(rows)
    n = 12100
    assert s["trits"] == n
    assert s["p0"] == pytest.approx((3000 * 0.5 + 9000 * 0.3 + 100 * 0.1) / n)
    assert s["rans"] == pytest.approx((3000 * 1.53 + 9000 * 1.55 + 100 * 2.4) / n)
    assert s[measure.WORST] == pytest.approx(1.0)          # c is under 4,096 trits, a is 1.02 x, b 1.0 x
    assert measure.weighted_summary(rows[2:])[measure.WORST] is None


def test_summary_metrics_keep_the_tables_precision():
    m = measure.summary_metrics({"trits": 12, "p0": 0.123456, "rans": 1.5555555, measure.WORST: None})
    assert m == {"trits": 12.0, "p0": 0.123, "rans": 1.5556}


def test_entropy_extremes_find_the_lowest_entropy_and_the_worst_coded_tensor():
    rows = [row("a", 1000, 0.5, 1.4, rans=1.42), row("b", 1000, 0.3, 1.5, rans=1.6)]
    e = measure.entropy_extremes(rows, dense_rate=1.5)
    assert e["lowest"] == "a" and e["worst"] == "b" and e["worst rans / H"] == pytest.approx(1.6 / 1.5)
    assert e["rans bits/trit"] == pytest.approx(1.51)
    assert e["rans vs dense (%)"] == pytest.approx(100 * (1.51 / 1.5 - 1))   # positive: larger than dense


def test_rans_saving_groups_layers_by_kind_and_reports_the_attention_gap():
    rows = [row("blocks.0.sparse.Wq.weight", 800, 0.33, 1.584, dense=1.585, rans=1.586),
            row("blocks.1.sparse.Wq.weight", 800, 0.33, 1.580, dense=1.585, rans=1.583),
            row("embed.weight", 8000, 0.5, 1.5, dense=1.585, rans=1.5)]
    s = measure.rans_saving_by_kind(rows)
    assert [k for k, _ in s["by_kind"]] == ["embed.weight", "sparse.Wq.weight"]
    assert dict(s["by_kind"])["sparse.Wq.weight"] == pytest.approx(800 * (-0.001 + 0.002) / 8)
    assert s["total"] == pytest.approx(sum(v for _, v in s["by_kind"]))
    assert s["qk_gap"] == pytest.approx(F.packing.LOG2_3 - 1.580)
    assert measure.tensor_kind("blocks.3.router.proj.weight") == "router.proj.weight"


# -- whole files ---------------------------------------------------------------------------------------


def test_every_file_variant_reads_back_and_its_roles_add_up_to_its_size(tiny_tensors):
    files = measure.file_variants(TINY, tiny_tensors)
    assert list(files) == ["ATOME01", "ATOME02", "ATMB 2bit f32", "ATMB dense f32", "ATMB dense f16", "ATMB auto f16"]
    for name, data in files.items():
        totals = measure.role_totals(measure.file_breakdown(name, data, TINY))
        assert set(totals) == set(measure.ROLES) and sum(totals.values()) == len(data), name
    assert len(files["ATMB dense f16"]) < len(files["ATMB dense f32"]) < len(files["ATMB 2bit f32"])
    assert measure.role_of("trits embed.weight") == "trits" and measure.role_of("crc") == measure.ROLES[-1]


def test_sixty_k_file_splits_the_dense_float16_file_into_trits_floats_scales_and_overhead():
    tensors = conformance.random_tensors("60k", seed=2)
    files = measure.file_variants("60k", tensors)
    f = measure.sixty_k_file(files, measure.blob_breakdown(files["ATMB dense f16"]))
    assert f["trits"] == sum(tensors[k].size for k in F.trit_weight_names("60k"))
    assert f["trit_bytes"] + f["float_bytes"] + f["scale_bytes"] + f["overhead_bytes"] == f["ATMB dense f16"]
    assert F.packing.LOG2_3 < f["trit_bits_per_trit"] < 1.6
    assert f["ATOME01"] == F.legacy_size("60k")


def test_float16_rounding_measures_relative_error_only_in_the_normal_range():
    r = measure.float16_rounding(np.array([1.0, 0.1, 1e-6, 3.0], np.float32))
    assert r["values"] == 4 and r["normal"] == 3 and r["subnormal"] == 1
    assert 0 < r["max_rel"] <= 2 ** -11 and r["max_abs"] == pytest.approx(abs(np.float16(0.1) - np.float32(0.1)))


# -- the reader against damage ----------------------------------------------------------------------


def test_damage_table_runs_the_catalogue_and_every_damage_raises_its_error(tiny_blob):
    rows = measure.damage_table(tiny_blob, width=20)
    assert [r[0] for r in rows] == [name for name, _, _ in conformance.atmb_damages(tiny_blob)]
    assert all(expected == raised for _, expected, raised, _ in rows)
    assert all(len(message) <= 23 for *_, message in rows) and any(m.endswith("...") for *_, m in rows)


def test_catalogue_fits_any_codec_and_float_width_and_names_the_first_trit_codec(tiny_tensors):
    for codec in ("rans", "base3x5"):
        blob = F.write_blob(TINY, tiny_tensors, codec=codec, float_dtype="float16")
        names = [name for name, _, _ in conformance.atmb_damages(blob)]
        assert f"{codec} section one byte short" in names and "dense group value >= 3^k" not in names
        assert all(conformance.python_verdict(data) is err for _, err, data in conformance.atmb_damages(blob))


def test_mutated_copies_are_repeatable_and_cycle_through_flips_rewrites_and_truncations(tiny_blob):
    a = list(conformance.mutated_copies(tiny_blob, 9, seed=4))
    assert a == list(conformance.mutated_copies(tiny_blob, 9, seed=4))
    assert a != list(conformance.mutated_copies(tiny_blob, 9, seed=5))
    assert all(len(b) == len(tiny_blob) for b in a[0::3]) and all(len(b) < len(tiny_blob) for b in a[2::3])
    table_end = conformance.entry_offset(len(F.SECTIONS))
    for b in a[1::3]:   # only the header and table changed, and the CRC fits
        assert b[table_end:-4] == tiny_blob[table_end:-4] and conformance.with_crc(b) == b


def test_header_field_at_names_each_byte():
    assert conformance.header_field_at(0) == conformance.header_field_at(3) == "magic"
    assert conformance.header_field_at(20) == "top_k"
    assert conformance.header_field_at(F.HEADER.size) == "section table"
    assert conformance.header_field_at(conformance.entry_offset(len(F.SECTIONS))) == "payload"


def test_fuzz_reader_counts_every_copy_and_is_repeatable(tiny_blob):
    a = measure.fuzz_reader(tiny_blob, 60, seed=1)
    assert sum(a["outcomes"].values()) == 60
    assert a["outcomes"] == measure.fuzz_reader(tiny_blob, 60, seed=1)["outcomes"]
    counts = list(a["outcomes"].values())
    assert counts == sorted(counts, reverse=True) and a["outcomes"]["TruncatedBlobError"] == 20
    assert set(a["changed_fields"]) <= {"top_k"}      # the one field no section's shape depends on


def test_published_roundtrips_are_identical_for_any_atome01_file_and_a_wrong_config_is_refused(tiny_tensors):
    legacy = F.write_atome01(tiny_tensors, TINY)
    rows = measure.published_roundtrips(legacy, TINY, F.read_atome01(legacy, TINY))
    assert len(rows) == 1 + len(F.packing.CODECS) and all(identical for *_, identical in rows)
    assert measure.atome01_verdict(legacy, TINY) == "accepted"
    assert measure.atome01_verdict(legacy, "60k").startswith("LegacySizeError: ")


# -- throughput -------------------------------------------------------------------------------------


def test_bench_trits_follow_the_models_distribution(tiny_tensors):
    uniform = measure.bench_trits(None, 30000, seed=2)
    assert abs(float(np.mean(uniform == 0)) - 1 / 3) < 0.02
    zeros = {k: np.zeros(1, np.int8) for k in F.trit_weight_names("944k")}
    assert (measure.bench_trits(zeros, 1000, seed=2) == 0).all()
    assert np.array_equal(measure.bench_trits(None, 50, seed=3), measure.bench_trits(None, 50, seed=3))


def test_throughput_rows_are_relative_to_the_two_bit_codec():
    speed = {"2bit": {"bits_per_trit": 2.0, "encode": 2e8, "decode": 4e8},
             "rans": {"bits_per_trit": 1.58, "encode": 2e6, "decode": 1e6}}
    rows = measure.throughput_rows(speed)
    assert rows[0][1:] == [2.0, 200.0, 400.0, 1.0, 1.0]
    assert rows[1][4:] == [pytest.approx(0.01), pytest.approx(0.0025)]
