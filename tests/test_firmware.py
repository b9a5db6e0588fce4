"""The firmware under QEMU: the platform (startup, semihosting, exit codes, faults,
timeouts, the instruction counter, the stack gauge) and the engine on every core,
bit-exact with the NumPy reference.

Needs arm-none-eabi-gcc, newlib and qemu-system-arm: skipped with the Debian package
names when they are missing, except under CI (`make test` installs them), where a
missing tool is a failure."""
import json
import os
import shutil
import zlib

import numpy as np
import pytest

from atome_core import engine as E
from atome_core import firmware as FW
from atome_core import formats as F
from atome_core.paths import shared_interop_dir

PROBLEM = FW.tool_problem()
if PROBLEM and os.environ.get("CI"):
    pytest.fail(f"CI must run the firmware tests: {PROBLEM}", pytrace=False)
needs_tools = pytest.mark.skipif(PROBLEM is not None, reason=PROBLEM or "")

TINY = F.RoutedBlobConfig(vocab=40, d_model=16, n_layers=2, d_head=8, top_k=3, kernel=4)
FLASH_END = 4 << 20
RAM_START = 0x20000000


@pytest.fixture(scope="module")
def tiny_blob():
    return F.write_blob(TINY, E.random_tensors(TINY, seed=3), codec="2bit")


def test_missing_tools_are_named_with_their_debian_packages(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    problem = FW.tool_problem()
    for package in ("gcc-arm-none-eabi", "qemu-system-arm", "libnewlib-arm-none-eabi"):
        assert package in problem
    with pytest.raises(FW.FirmwareToolMissing, match="apt-get install"):
        FW.build_image("m3", b"")


def test_unknown_core_and_app_are_refused():
    with pytest.raises(ValueError, match="unknown core"):
        FW.core_of("m33")
    if PROBLEM is None:
        with pytest.raises(ValueError, match="app must be"):
            FW.build_image("m3", b"", app="bootloader")


# -- the platform, without the engine -------------------------------------------------------------


@needs_tools
@pytest.mark.parametrize("core", list(FW.CORES))
def test_selftest_crc_of_a_buffer_in_flash_is_zlibs(core):
    data = np.random.default_rng(7).integers(0, 256, 3001, dtype=np.uint8).tobytes()
    r = FW.selftest(core, data, args="crc")
    assert r["outcome"] == "ok", r["run"].stdout + r["run"].stderr
    assert r["crc32"] == zlib.crc32(data) and r["crc_bytes"] == len(data)
    assert r["crc_address"] < FLASH_END            # linked in flash, read in place
    assert 0 < r["stack_used"] < 1024


@needs_tools
def test_instruction_counter_is_deterministic_and_the_same_on_every_core():
    ticks = {core: FW.calibration(core)["ticks"] for core in FW.CORES}
    assert len(set(ticks.values())) == 1, ticks
    # a whole number of instructions per tick: the loop's 2,000,000 instructions are that
    # many ticks, give or take the tick it takes to call the loop and read the counter
    calib, per_tick = FW.calibration("m3"), FW.instructions_per_tick("m3")
    assert abs(calib["instructions"] - per_tick * calib["ticks"]) <= 2 * per_tick
    image = FW.build_image("m7", b"abc", app="selftest")
    first, second = FW.run_image(image, "crc"), FW.run_image(image, "crc")
    assert first.stdout == second.stdout and "ticks=" in first.stdout


@needs_tools
@pytest.mark.parametrize("core", ["m0", "m4f"])
def test_a_bus_fault_exits_with_the_fault_code_and_says_where(core):
    r = FW.run_image(FW.build_image(core, b"", app="selftest"), "fault")
    assert r.exit_code == 13 and r.outcome == "fault"
    assert "FAULT HardFault pc=" in r.stdout


@needs_tools
def test_unaligned_loads_trap_on_m0_code_only():
    m0 = FW.run_image(FW.build_image("m0", b"", app="selftest"), "unaligned")
    m3 = FW.run_image(FW.build_image("m3", b"", app="selftest"), "unaligned")
    assert m0.outcome == "fault"
    assert m3.outcome == "ok" and "UNALIGNED 04030201" in m3.stdout


@needs_tools
def test_a_hung_firmware_is_killed_by_the_timeout():
    r = FW.run_image(FW.build_image("m3", b"", app="selftest"), "hang", timeout=2)
    assert r.exit_code is None and r.outcome == "timeout"
    assert r.wall_s < 10


@needs_tools
def test_exit_codes_pass_through_semihosting():
    image = FW.build_image("m3", b"", app="selftest")
    assert FW.run_image(image, "exit=7").exit_code == 7
    assert FW.run_image(image, "").exit_code == 0


@needs_tools
def test_stack_gauge_measures_depth_and_catches_an_overflow():
    image = FW.build_image("m3", b"", app="selftest")
    used = {}
    for depth in (10, 60):
        run = FW.run_image(image, f"recurse={depth}")
        assert run.ok, run.stdout
        used[depth] = FW.fields(run.lines("STACK")[0])["used"]
    assert used[60] - used[10] >= 50 * 64       # each frame holds a 64-byte buffer
    over = FW.run_image(image, "recurse=400")   # 400 frames > the 16 KiB stack
    assert over.exit_code == 6 and over.outcome == "stack overflow"


# -- the engine ------------------------------------------------------------------------------------


@needs_tools
@pytest.mark.parametrize("core", list(FW.CORES))
def test_engine_parity_on_a_tiny_model_every_core_both_paths(core, tiny_blob):
    prompt = [1, 5, 9, 2, 33, 7]
    for path in FW.PATHS:   # window 5 < 13 steps: the KV ring wraps
        r = FW.check_parity(core, tiny_blob, prompt, 8, path=path, window=5)
        assert r["bit_exact"], {k: v for k, v in r.items() if k not in ("run", "image")}
        assert r["max_ulp"] == 0 and r["logits_compared"] == 13 * TINY.vocab
        assert r["tokens_equal"] == r["tokens"] == 8
        assert r["firmware_check"] == 0 and r["run"].check["steps"] == 13   # checked on the core too


@needs_tools
@pytest.mark.parametrize("core", ["m0", "m3"])
def test_minimal_engine_is_smaller_and_bit_exact_on_the_i8_path(core, tiny_blob):
    r = FW.check_parity(core, tiny_blob, [1, 5, 9, 2], 6, path="i8", window=5, minimal=True)
    assert r["bit_exact"] and r["max_ulp"] == 0 and r["firmware_check"] == 0
    small, full = FW.image_sizes(r["image"]), FW.image_sizes(FW.build_image(core, tiny_blob))
    assert small["engine_text"] < full["engine_text"] - 2000
    assert small["engine_rodata"] < full["engine_rodata"] - 4000       # no float trit table
    f32 = FW.run_engine(r["image"], [1, 2], 1, path="f32", window=4)   # left out of this build
    assert f32.run.exit_code == 3 and "status=BAD_ARGUMENT" in f32.errors[0]
    dense = F.write_blob(TINY, E.random_tensors(TINY, seed=3), codec="dense")
    refused = FW.run_engine(FW.build_image(core, dense, minimal=True), [1], 1, window=4)
    assert refused.run.exit_code == 3 and "status=CODEC_NOT_BUILT" in refused.errors[0]


# The goal for the engine's .text at -Os on the Cortex-M3, validation and CRC
# included, is 2,600 B. Not met: the minimal build measured 6,716 B (chapter 7 lists its
# functions by purpose). This budget only keeps it from growing back unnoticed.
ENGINE_TEXT_BUDGET_M3_MINIMAL = 7_000


@needs_tools
def test_minimal_m3_engine_text_stays_within_its_budget_with_validation_and_crc(tiny_blob):
    image = FW.build_image("m3", tiny_blob, minimal=True)
    text = FW.image_sizes(image)["engine_text"]
    functions = FW.function_sizes(image)
    assert 0 < text <= ENGINE_TEXT_BUDGET_M3_MINIMAL, text
    assert {"parse_blob", "check_2bit", "atome_crc32"} <= set(functions), sorted(functions)   # still linked


@needs_tools
def test_the_comparison_catches_a_different_model(tiny_blob):
    """The same run against the reference of a slightly different model must fail."""
    tensors = E.random_tensors(TINY, seed=3)
    tensors["unembed.weight.scale"] = np.float32(tensors["unembed.weight.scale"] * np.float32(1.0001))
    other = F.write_blob(TINY, tensors, codec="2bit")
    image = FW.build_image("m3", tiny_blob)
    run = FW.run_engine(image, [1, 2, 3], 3, path="f32", window=8)
    same = FW.compare(run, FW.reference_steps(tiny_blob, [1, 2, 3], 3, "f32", 8))
    different = FW.compare(run, FW.reference_steps(other, [1, 2, 3], 3, "f32", 8))
    assert same["bit_exact"] and not different["bit_exact"]
    assert different["max_ulp"] > 0 and different["crc_equal_steps"] < different["steps"]
    # the firmware's own check: pass with the right CRCs, exit code 5 with the other model's
    right = [s.crc for s in FW.reference_steps(tiny_blob, [1, 2, 3], 3, "f32", 8)]
    wrong = [s.crc for s in FW.reference_steps(other, [1, 2, 3], 3, "f32", 8)]
    assert FW.run_engine(image, [1, 2, 3], 3, path="f32", window=8, expect_crcs=right).run.exit_code == 0
    failed = FW.run_engine(image, [1, 2, 3], 3, path="f32", window=8, expect_crcs=wrong)
    assert failed.run.exit_code == 5 and failed.run.outcome == "check failed"
    assert failed.check["mismatches"] == sum(a != b for a, b in zip(right, wrong)) > 0


@needs_tools
def test_blob_stays_in_flash_and_ram_matches_the_engines_sizes(tiny_blob):
    image = FW.build_image("m4f", tiny_blob)
    sizes = FW.image_sizes(image)
    run = FW.run_engine(image, [4, 4, 4], 2, path="i8", window=16, full_logits=False)
    assert run.ok
    assert int(run.load["at"], 16) + len(tiny_blob) <= FLASH_END
    assert sizes["rodata"] >= len(tiny_blob) > sizes["data"] + sizes["bss"] - 2048   # not copied to RAM
    host = E.Model(tiny_blob)
    assert run.ram["state"] == host.state_bytes(16, "i8") and run.ram["scratch"] == host.scratch_bytes(16, "i8")
    assert run.ram["arena"] == 0
    ram = FW.ram_usage(run, sizes)
    assert ram["total_ram"] == sizes["data"] + sizes["bss"] + run.ram["work_used"] + run.stack["used"]
    assert 0 < sizes["engine_text"] < sizes["text"]


@needs_tools
def test_a_packed_blob_is_decoded_into_the_ram_arena_and_still_bit_exact():
    blob = F.write_blob(TINY, E.random_tensors(TINY, seed=4), codec="dense")
    r = FW.check_parity("m3", blob, [3, 1, 4, 1, 5], 4, path="i8", window=8)
    assert r["bit_exact"]
    assert r["run"].ram["arena"] == E.Model(blob).arena_bytes > 0


@needs_tools
def test_engine_errors_exit_with_the_engine_code(tiny_blob):
    image = FW.build_image("m3", tiny_blob)
    bad_token = FW.run_engine(image, [1, TINY.vocab + 1], 1, window=4)
    assert bad_token.run.exit_code == 3 and "status=BAD_TOKEN" in bad_token.errors[0]
    corrupt = bytearray(tiny_blob)
    corrupt[100] ^= 0x40
    bad_crc = FW.run_engine(FW.build_image("m3", bytes(corrupt)), [1], 1, window=4)
    assert bad_crc.run.exit_code == 3 and "load status=CHECKSUM" in bad_crc.errors[0]
    usage = FW.run_image(image, "path=f64 window=4 new=1 prompt=0001")
    assert usage.exit_code == 2


@needs_tools
def test_instructions_per_token_grow_with_the_attended_context(tiny_blob):
    image = FW.build_image("m3", tiny_blob)
    run = FW.run_engine(image, [1] * 24, 1, path="i8", window=16, full_logits=False)
    ticks = [s.ticks for s in run.steps]
    assert ticks[15] > ticks[0]                    # more keys to score while the window fills
    again = FW.run_engine(image, [1] * 24, 1, path="i8", window=16, full_logits=False)
    assert [s.ticks for s in again.steps] == ticks  # deterministic


@needs_tools
def test_qemu_cli_generates_and_checks(tmp_path, tiny_blob, capsys):
    from atome_core import cli
    blob_file = tmp_path / "tiny.atmb"
    blob_file.write_bytes(tiny_blob)
    code = cli.main(["qemu", "--blob", str(blob_file), "--core", "m4f", "--prompt", "\x01\x02\x03",
                     "--max-new-tokens", "5", "--window", "8", "--check"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "Cortex-M4F" in out and "5/5 tokens, max 0 ULP" in out and "bit-exact" in out
    assert cli.main(["qemu", "--blob", str(tmp_path / "missing.bin"), "--prompt", "x"]) == 2


@needs_tools
def test_published_944k_blob_generates_the_kits_text_on_m7():
    interop = shared_interop_dir()
    if interop is None or not (interop / "atome_944k.bin").is_file():
        pytest.skip("../shared/interop/atome_944k.bin is not here")
    blob = (interop / "atome_944k.bin").read_bytes()
    ref = json.loads((interop / "reference_generations.json").read_text())["cases"][0]
    r = FW.check_parity("m7", blob, ref["prompt"], 16, path="f32", window=128)
    assert r["bit_exact"]
    assert r["generated"] == ref["generated_byte_ids"][:16]
