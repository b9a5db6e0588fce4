"""Chapter 7's analysis: the engine's functions by purpose, the parity summary, the findings
the prose quotes beside the kit and the targets we set, and generated text kept literal.

The last tests build and run firmware under QEMU, as tests/test_firmware.py does, and are
skipped the same way when the cross compiler or QEMU is missing."""
from types import SimpleNamespace

import numpy as np
import pytest
from markdown_it import MarkdownIt

from atome_core import engine as E
from atome_core import firmware as FW
from atome_core import formats as F
from atome_core.book.report import table_markdown
from atome_core.chapters import firmware_qemu as FQ
from atome_core.firmware.sizes import (
    DECODE_GROUP,
    ENGINE_GROUPS,
    function_group,
    group_sizes,
)


def html(markdown: str) -> str:
    return MarkdownIt("commonmark").enable("table").render(markdown)


# -- the engine's functions by purpose ------------------------------------------------------------------


def test_each_engine_function_falls_in_the_group_its_name_says():
    assert function_group("parse_blob") == "blob validation and loading"
    assert function_group("decode_rans") == "packed-codec decoders (base3x5, dense, rANS)"
    assert function_group("check_2bit_section") == "2-bit check"
    assert function_group("atome_crc32") == "CRC-32"
    assert function_group("atome_load_atome01") == "ATOME01 loader"
    assert function_group("atome_state_bytes") == "state and scratch layout"
    assert function_group("ternary_dot4_q") == DECODE_GROUP      # no prefix matches: decode code
    assert function_group("atome_step") == DECODE_GROUP


def test_group_sizes_sum_every_function_and_list_every_group_in_order():
    functions = {"parse_blob": 100, "rd32": 10, "atome_crc32": 56, "atome_step": 900, "softmax3": 40}
    groups = group_sizes(functions)
    assert list(groups) == [g for g, _ in ENGINE_GROUPS]
    assert groups["blob validation and loading"] == 110 and groups[DECODE_GROUP] == 940
    assert groups["ATOME01 loader"] == 0
    assert sum(groups.values()) == sum(functions.values())


# -- generated text on the page ---------------------------------------------------------------------------


def test_generated_text_with_markup_characters_stays_literal_in_a_table():
    text = FQ.printable(b"Once** upon `a` time | th*\n")
    assert "\n" not in text and text.endswith("⏎")
    page = html(table_markdown(["core", "generated"], [["Cortex-M7", FQ.literal(text)]]))
    assert "<strong>" not in page and "<em>" not in page
    assert page.count("<td>") == 2                                  # the pipe did not split the cell
    assert "<code>Once** upon `a` time | th*⏎</code>" in page


def test_a_literal_is_padded_where_the_text_starts_with_a_backtick():
    assert FQ.literal("x") == "`x`"
    assert FQ.literal("`a``b") == "``` `a``b ```"
    assert "<code>`a``b</code>" in html(FQ.literal("`a``b"))


# -- parity ------------------------------------------------------------------------------------------------


def parity_row(bit_exact, logits=100, ulp=0):
    return {"steps": 5, "logits_compared": logits, "max_ulp": ulp, "unequal_logits": 0 if bit_exact else 3,
            "tokens_equal": 4, "tokens": 4, "firmware_check": 0, "bit_exact": bit_exact,
            "generated": [65, 66], "run": object(), "image": object()}


def test_parity_summary_counts_the_bit_exact_runs_and_the_largest_difference():
    parity = {("m3", "f32"): parity_row(True), ("m3", "i8"): parity_row(False, logits=50, ulp=2),
              ("m7", "i8"): parity_row(True)}
    assert FQ.parity_summary(parity) == {"runs": 3, "bit_exact_runs": 2, "logits": 250, "max_ulp": 2}
    header, rows = FQ.parity_table(parity)
    assert len(rows) == 3 and all(len(r) == len(header) for r in rows)
    assert rows[1][0] == "Cortex-M3" and rows[1][-1] is False
    assert "run" not in FQ.parity_metrics(parity)["m3/i8"]            # no QEMU objects in the JSON


# -- instructions per token --------------------------------------------------------------------------------


def sweep(m3_i8_at_64, m7_like_m4f=True, context=128):
    def curve(base):
        return np.arange(1, context + 1) * 10 + base
    out = {("m3", "f32"): {"instructions": curve(3_800_000)}, ("m3", "i8"): {"instructions": curve(0)},
           ("m4f", "f32"): {"instructions": curve(600_000)}, ("m4f", "i8"): {"instructions": curve(300_000)},
           ("m7", "f32"): {"instructions": curve(600_000)},
           ("m7", "i8"): {"instructions": curve(300_000 if m7_like_m4f else 299_000)}}
    if context >= 64:
        out[("m3", "i8")]["instructions"][63] = m3_i8_at_64
    return out


def test_a_missed_instruction_target_is_said_with_the_number_it_missed_by():
    within = FQ.sweep_findings(sweep(375_480), 128, model_is_60k=True)
    assert within["m3_i8_ctx64"] == "375,480" and within["m3_i8_ctx64_verdict"].startswith("within")
    assert within["sweep_note"] == ""
    over = FQ.sweep_findings(sweep(412_000), 128, model_is_60k=True)
    assert over["m3_i8_ctx64_verdict"] == "over the target we set (at most 400,000) by 12,000: missed"


def test_the_m3_float_path_loses_to_the_kit_per_position_and_wins_per_token_at_64():
    f = FQ.sweep_findings(sweep(375_480), 128, model_is_60k=True)
    assert f["m3_f32_ctx1"] == "3,800,010" and "we lose" in f["m3_f32_vs_kit_position"]
    assert f["kit_ctx64_millions"] == "166" and f["m3_f32_ctx64_millions"] == "3.8"
    assert f["kit_over_m3_f32_ctx64"] == f"{2.6e6 * 64 / 3_800_640:.0f}"
    assert f["fpu_core"] == "Cortex-M4F" and f["fpu_i8"] == "301,280"
    assert f["m4f_m7_curves"].startswith("coincide")
    assert FQ.sweep_findings(sweep(375_480, m7_like_m4f=False), 128, True)["m4f_m7_curves"] == "differ slightly"


def test_a_smaller_setup_leaves_the_60k_findings_not_measured_and_says_so():
    f = FQ.sweep_findings(sweep(375_480), 128, model_is_60k=False)
    assert f["m3_i8_ctx64"] == f["m3_f32_ctx1"] == FQ.NOT_MEASURED
    assert f["fpu_core"] == "Cortex-M4F"                   # measured on any model
    assert f["sweep_note"] == FQ.NOT_MEASURED_NOTE
    assert FQ.sweep_findings(sweep(1, context=12), 12, model_is_60k=True)["m3_i8_ctx64"] == FQ.NOT_MEASURED
    assert FQ.sweep_contexts(12) == [1, 12] and FQ.sweep_contexts(128) == [1, 64, 128]


# -- RAM and code -------------------------------------------------------------------------------------------


def test_ram_findings_count_the_keys_and_values_of_the_60k_model():
    cfg = SimpleNamespace(n_layers=4, d_head=16, d_model=64)
    by_window = {32: {"state": 14_400, "engine_ram": 19_316}, 64: {"state": 25_664, "engine_ram": 33_000}}
    f = FQ.ram_findings(by_window, cfg, model_is_60k=True)
    assert f["kv_i8_ctx64"] == "20,480" and f["kv_f32_ctx64"] == "81,920" and f["kv_amax_ctx64"] == "2,048"
    assert f["ram_ctx64_verdict"] == "over the target we set (at most 32,768 B) by 232 B: missed"
    assert FQ.ram_findings(by_window, cfg, model_is_60k=False)["state_ctx32"] == FQ.NOT_MEASURED


def code_row(linked, groups, divisions=()):
    return {"linked": linked, "rodata": 592, "runtime_text": 2492, "library_text": linked + 1000,
            "groups": groups, "division_64": list(divisions)}


def test_engine_code_findings_name_the_largest_parts_and_the_missed_target():
    full = group_sizes({"atome_step": 6500, "parse_blob": 1400, "decode_rans": 1300, "layout_state": 800})
    small = group_sizes({"atome_step": 4588, "parse_blob": 1256, "layout_state": 732, "atome_crc32": 56})
    rows = {"m3/full": code_row(10_000, full, ["__aeabi_uldivmod"]), "m3/minimal": code_row(6_632, small)}
    f = FQ.engine_code_findings(rows)
    assert f["engine_text_m3_minimal"] == "6,632"
    assert f["engine_text_verdict"] == "over the target we set (at most 2,600 B) by 4,032 B: missed"
    assert f["engine_text_largest"].startswith(f"{DECODE_GROUP}, 4,588 B; blob validation and loading, 1,256 B")
    assert f["division_64"] == "__aeabi_uldivmod"
    header, table = FQ.engine_code_table(rows, ["m3"])
    assert header == ["", "Cortex-M3"] and table[0] == [DECODE_GROUP, "6,500 / 4,588"]
    assert table[-1] == ["kit's engine .text at -Os (reported)", 3262]


def test_missed_targets_are_listed_with_their_numbers_and_met_ones_are_not():
    measured = {"instructions_m3_i8_ctx64": 375_480, "engine_text_m3_Os": 6_716, "engine_text_m3_Os_full": 10_100,
                "ram_60k_ctx64": 30_836}
    assert FQ.missed_targets(measured) == "the engine's .text on the Cortex-M3, 6,716 B against at most 2,600 B"
    header, rows = FQ.target_table(measured)
    assert [r[-1] for r in rows] == [True, False, True]
    assert FQ.missed_targets({"ram_60k_ctx64": 30_000}) == "none"


def test_target_measurements_keep_only_what_this_setup_measures():
    rows = {"m3/full": code_row(10_100, {}), "m3/minimal": code_row(6_716, {})}
    small = FQ.target_measurements(sweep(375_480, context=128), rows, {}, 12, model_is_60k=False)
    assert small == {"engine_text_m3_Os": 6_716, "engine_text_m3_Os_full": 10_100}
    full = FQ.target_measurements(sweep(375_480), rows, {64: {"engine_ram": 30_836}}, 128, model_is_60k=True)
    assert full["instructions_m3_i8_ctx64"] == 375_480 and full["ram_60k_ctx64"] == 30_836


def test_path_loss_findings_give_what_the_integer_path_costs():
    f = FQ.path_loss_findings({"f32": 2.0, "i8": 2.02})
    assert f["gap"] == pytest.approx(0.02) and f["gap_percent"] == pytest.approx(1.0)
    assert f["f32_bits"] == pytest.approx(2.0 / np.log(2))


# -- the published 944K model -------------------------------------------------------------------------------


def test_the_published_section_says_why_it_did_not_run(tmp_path):
    assert "not run in this profile" in FQ.published_944k_missing(tmp_path, run_944k=False)
    assert "shared/interop" in FQ.published_944k_missing(None, run_944k=True)
    assert "atome_944k.bin" in FQ.published_944k_missing(tmp_path, run_944k=True)
    (tmp_path / "atome_944k.bin").write_bytes(b"x")
    assert FQ.published_944k_missing(tmp_path, run_944k=True) is None
    assert set(FQ.published_944k_findings(None).values()) == {FQ.NOT_MEASURED}


def test_published_findings_show_the_prompt_and_continuation_as_text():
    published = {"metrics": {"blob": 276_655, "flash": 294_900, "tokens_equal_reference": 16, "tokens": 16,
                             "max_ulp": 0, "tokens_equal_kit": 15, "mean_instructions_per_token": 9_183_747.5,
                             "load_instructions": 1_636_360, "ram": {"state": 1_359_872, "total_ram": 1_370_040}},
                 "shown": {"prompt": "Once", "generated": list(b" upon a\ntime"), "kit_tokens": 16, "logits": 4864}}
    f = FQ.published_944k_findings(published)
    assert f["m7_prompt"] == "Once" and f["m7_generated"] == " upon a⏎time"
    assert f["m7_tokens_equal_kit"] == "15/16" and f["m7_million_instructions_per_token"] == "9.18"
    assert f["m7_blob"] == "276,655"


# -- under QEMU ---------------------------------------------------------------------------------------------

PROBLEM = FW.tool_problem()
needs_tools = pytest.mark.skipif(PROBLEM is not None, reason=PROBLEM or "")
TINY = F.RoutedBlobConfig(vocab=40, d_model=16, n_layers=2, d_head=8, top_k=3, kernel=4)


@pytest.fixture(scope="module")
def tiny_blob():
    return F.write_blob(TINY, E.random_tensors(TINY, seed=3), codec="2bit")


@needs_tools
def test_every_group_but_the_atome01_loader_is_linked_into_the_full_m3_engine(tiny_blob):
    """The name prefixes still match c_engine/'s functions: a renamed function would land in
    the decode group and leave its own group empty."""
    rows = FQ.run_engine_code(["m3"], tiny_blob)
    full, small = rows["m3/full"]["groups"], rows["m3/minimal"]["groups"]
    assert [g for g, v in full.items() if v == 0] == ["ATOME01 loader"]
    assert small["packed-codec decoders (base3x5, dense, rANS)"] == 0 < small["CRC-32"]
    image = FW.build_image("m3", tiny_blob)
    assert sum(full.values()) == sum(FW.function_sizes(image).values())


@needs_tools
def test_the_chapters_parity_run_on_a_tiny_model_is_bit_exact(tiny_blob):
    parity = FQ.run_parity(["m3"], ["i8"], tiny_blob, [1, 5, 9], 4, window=8, timeout=60)
    assert FQ.parity_summary(parity)["bit_exact_runs"] == FQ.parity_summary(parity)["runs"] == 1


def test_the_chapter_trains_only_when_its_model_is_not_chapter_4s():
    from atome_core.book import profiles
    from atome_core.book.estimate import chapter_namespace
    for profile in ("cpu", "paper"):       # the 60K shape: chapter 4's published 8-bit model is read
        assert FQ.training_plan(chapter_namespace("07_firmware_qemu", profile),
                                profiles.chapter_parameters("04_ab_60k", profile)) == []
    chapter4 = profiles.chapter_parameters("04_ab_60k", "smoke")
    [run] = FQ.training_plan(chapter_namespace("07_firmware_qemu", "smoke"), chapter4)   # a smaller shape
    assert (run.family, run.steps) == ("routed", chapter4["steps"])
