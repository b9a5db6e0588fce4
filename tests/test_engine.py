"""The C engine (c_engine/) against its NumPy reference, the model, and hostile input.

Parity is bit-exact: logits compared as uint32 views. The published-blob tests need
../shared/interop (sha256-checked) and skip without it; the fuzz smoke needs clang
with libFuzzer, the sanitizer run GCC's libasan/libubsan.
"""
import ctypes
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atome_core import engine as E
from atome_core import formats as F
from atome_core.cli import main as atome_main
from atome_core.paths import shared_interop_dir

TINY = F.RoutedBlobConfig(vocab=16, d_model=8, n_layers=2, d_head=4, top_k=2, kernel=3)
PUBLISHED = {"atome_944k.bin": "fdf8a6b69eacc5e4834e488759593198e482399887fce2c5b048a599844ae2f5"}


def published(name):
    interop = shared_interop_dir()
    if interop is None or not (interop / name).is_file():
        pytest.skip(f"../shared/interop/{name} is absent (published Atome kit fixture); test skipped")
    data = (interop / name).read_bytes()
    assert hashlib.sha256(data).hexdigest() == PUBLISHED[name], f"{name}: sha256 differs from the published one"
    return data


@pytest.fixture(scope="module")
def lib():
    return E.load_library()


# -- the engine's own functions ------------------------------------------------------------


def call_each(fn, xs):
    return np.array([fn(float(v)) for v in xs], np.float32)


def test_exp_tanh_rsqrt_are_bit_identical_in_c_and_numpy(lib):
    rng = np.random.default_rng(0)
    xs = np.concatenate([rng.uniform(-120, 100, 4000), rng.uniform(-4, 4, 4000), rng.standard_normal(2000) * 1e-3,
                         [0.0, -0.0, 88.7, 88.75, 88.8, -87.3, -103.9, -104.5, 0.625, -0.625, 9.5, np.inf,
                          -np.inf, np.nan]]).astype(np.float32)
    assert E.bits_equal(call_each(lib.atome_exp, xs), E.exp_ref(xs))
    assert E.bits_equal(call_each(lib.atome_tanh, xs), E.tanh_ref(xs))
    pos = (np.abs(xs[np.isfinite(xs)]) + np.float32(1e-6)).astype(np.float32)
    assert E.bits_equal(call_each(lib.atome_rsqrt, pos), E.rsqrt_ref(pos))


def test_own_functions_are_within_one_ulp_of_float64():
    x = np.linspace(-87, 88, 400_001).astype(np.float32)
    assert E.ulp_distance(E.exp_ref(x), np.exp(x.astype(np.float64)).astype(np.float32)).max() <= 1
    x = np.linspace(-12, 12, 400_001).astype(np.float32)
    assert E.ulp_distance(E.tanh_ref(x), np.tanh(x.astype(np.float64)).astype(np.float32)).max() <= 1
    assert np.array_equal(E.tanh_ref(-x), -E.tanh_ref(x))
    x = np.exp(np.linspace(-25, 25, 400_001)).astype(np.float32)
    assert E.ulp_distance(E.rsqrt_ref(x), (1 / np.sqrt(x.astype(np.float64))).astype(np.float32)).max() <= 1
    powers = np.float32(4.0) ** np.arange(-8, 9, dtype=np.float32)   # 1/sqrt(d_head) exact for 16, 64, ...
    assert np.array_equal(E.rsqrt_ref(powers), (1 / np.sqrt(powers.astype(np.float64))).astype(np.float32))


def test_lane_sum_is_eight_sequential_lanes_then_a_tree():
    rng = np.random.default_rng(1)
    for n in (1, 3, 8, 13, 64, 100):
        a = (rng.standard_normal((5, n)) * 10 ** rng.uniform(-3, 3, (5, n))).astype(np.float32)
        a[0] = -0.0
        lanes = np.zeros((5, 8), np.float32)
        for i in range(n):
            lanes[:, i % 8] = lanes[:, i % 8] + a[:, i]
        l = lanes.T
        want = ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]))
        assert E.bits_equal(E.lane_sum(a), want)
    assert E.lane_sum(np.full(4, -0.0, np.float32)).view(np.uint32) == 0   # +0, as the engine


def test_crc32_is_zlibs(lib):
    import zlib
    data = np.random.default_rng(2).bytes(4099)
    for n in (0, 1, 7, 4099):
        assert lib.atome_crc32(data[:n], n) == zlib.crc32(data[:n])


# -- parity: every logit of every step, float32 bits ------------------------------------------

PARITY = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PARITY
@given(vocab=st.integers(1, 20), d=st.integers(1, 19), layers=st.integers(1, 3), dh=st.integers(1, 9),
       top_k=st.integers(1, 6), kernel=st.integers(1, 6), window=st.integers(1, 9), steps=st.integers(1, 14),
       codec=st.sampled_from(["2bit", "dense", "rans", "base3x5", "atome01"]),
       float16=st.booleans(), seed=st.integers(0, 2 ** 16))
def test_parity_on_random_small_configs(vocab, d, layers, dh, top_k, kernel, window, steps, codec, float16, seed):
    cfg = F.RoutedBlobConfig(vocab=vocab, d_model=d, n_layers=layers, d_head=dh, top_k=top_k, kernel=kernel)
    t = E.random_tensors(cfg, seed)
    if codec == "atome01":
        data, config = F.write_atome01(t, cfg), cfg
    else:
        data, config = F.write_blob(cfg, t, codec=codec, float_dtype="float16" if float16 else "float32"), None
    tokens = np.random.default_rng(seed).integers(0, vocab, steps)
    for path in E.PATHS:
        r = E.parity(data, tokens, window=window, path=path, config=config)
        assert r["bits_equal"], r


def model_60k(seed=0):
    from atome_core.models.routed import RoutedConfig, RoutedLM
    torch.manual_seed(seed)
    return RoutedLM(RoutedConfig())


def test_parity_on_a_60k_model_both_paths_with_ring_wraparound():
    model = model_60k()
    blob = F.write_blob("60k", F.tensors_from_state_dict(model.state_dict(), "60k"), codec="2bit")
    tokens = np.frombuffer(b"To be, or not to be, that is the question: whether 'tis nobler", np.uint8)
    for path in E.PATHS:
        for window in (16, 128):   # 16: the ring wraps; 128: full causal context
            r = E.parity(blob, tokens, window=window, path=path)
            assert r["bits_equal"] and r["steps"] == len(tokens), r


@pytest.mark.parametrize("blow_up", [1e-7, 1e4, 1e9])
def test_i8_path_saturates_and_underflows_like_the_reference(blow_up):
    """Scales and vectors far outside a trained model's: the fixed-point path saturates
    (or rounds to zero) at the same places in C and in NumPy."""
    cfg = F.RoutedBlobConfig(vocab=12, d_model=9, n_layers=2, d_head=5, top_k=3, kernel=3)
    t = E.random_tensors(cfg, seed=11)
    for name in t:
        if name.endswith(".scale") or ".norm." in name or ".state." in name:
            t[name] = (np.asarray(t[name], np.float32) * np.float32(blow_up)).astype(np.float32)
    blob = F.write_blob(cfg, t, codec="2bit")
    tokens = np.random.default_rng(1).integers(0, cfg.vocab, 10)
    r = E.parity(blob, tokens, window=4, path="i8")
    assert r["bits_equal"], r


def test_fixed_point_helpers_round_and_saturate_as_documented():
    x = np.array([0.5, -0.5, 1.5, 2 ** -25, -(2 ** -24), 127.99, 128.0, -1e30, np.inf, -np.inf, np.nan, 1e-40],
                 np.float32)
    assert E.fixed_ref(x, 0).tolist() == [1, -1, 2, 0, 0, 128, 128, -E.SAT, E.SAT, -E.SAT, 0, 0]
    assert E.fixed_ref(np.float32(1.0), 24) == 2 ** 24 and E.fixed_ref(np.float32(128.0), 24) == E.SAT
    assert E.scale_by_ref(np.array([3, -3]), np.float32(0.5)).tolist() == [2, -1]   # halves up
    assert E.scale_by_ref(np.array([10 ** 9, -10 ** 9]), np.float32(4.0)).tolist() == [E.SAT, -E.SAT]
    q, amax = E.quantize_q_ref(np.array([120_000, -200_000, 3, 0]))   # round(127 x / amax)
    assert amax == 200_000 and q.tolist() == [76, -127, 0, 0]
    q, amax = E.quantize_q_ref(np.array([E.SAT, -E.SAT, 1]))
    assert q.tolist() == [127, -127, 0]


def test_minimal_build_runs_the_i8_path_bit_exactly_and_refuses_the_rest():
    """ATOME_MINIMAL (the firmware's small engine): i8 path and 2-bit trit sections only."""
    minimal = E.load_library("minimal")
    cfg = F.RoutedBlobConfig(vocab=20, d_model=12, n_layers=2, d_head=6, top_k=3, kernel=4)
    t = E.random_tensors(cfg, seed=9)
    blob = F.write_blob(cfg, t, codec="2bit", float_dtype="float16")
    tokens = np.random.default_rng(2).integers(0, cfg.vocab, 12)
    small = E.Engine(E.Model(blob, lib=minimal), window=5, path="i8").run(tokens)
    assert E.bits_equal(small, E.Engine(blob, window=5, path="i8").run(tokens))
    assert E.bits_equal(small, E.Reference.from_blob(blob, window=5, path="i8").run(tokens))
    assert minimal.atome_state_bytes(ctypes.byref(E.Config.of(cfg)), 5, 0) == 0
    with pytest.raises(E.EngineError, match="BAD_ARGUMENT"):
        E.Engine(E.Model(blob, lib=minimal), window=5, path="f32")
    for codec in ("dense", "rans", "base3x5"):
        with pytest.raises(E.EngineError, match="CODEC_NOT_BUILT"):
            E.Model(F.write_blob(cfg, t, codec=codec), lib=minimal)
    for name, data, config in E.malformed_cases():   # the other checks are the full build's
        if config is None:
            full, small_verdict = E.c_verdict(data), E.c_verdict(data, lib=minimal)
            assert small_verdict == full or small_verdict == "CODEC_NOT_BUILT", name


def test_engine_computes_the_model():
    """Within the window the engine is the PyTorch model's forward pass, up to float rounding."""
    model = model_60k(1).eval()
    blob = F.write_blob("60k", F.tensors_from_state_dict(model.state_dict(), "60k"))
    tokens = np.frombuffer(b"First Citizen: Before we proceed any further, hear me speak.", np.uint8)
    with torch.no_grad():
        want = model(torch.from_numpy(tokens.astype(np.int64))[None])[0].numpy()
    got = E.Engine(blob, window=len(tokens)).run(tokens)
    assert np.abs(got - want).max() <= 1e-4 * max(1.0, np.abs(want).max())


def test_next_token_loss_is_the_cross_entropy_of_the_engines_logits():
    blob = F.write_blob(TINY, E.random_tensors(TINY, 3))
    tokens = np.random.default_rng(4).integers(0, TINY.vocab, 30)
    logits = E.Engine(blob, window=8, path="i8").run(tokens[:-1]).astype(np.float64)
    p = np.exp(logits - logits.max(1, keepdims=True))
    want = -np.mean(np.log(p[np.arange(29), tokens[1:]] / p.sum(1)))
    assert abs(E.next_token_loss(blob, tokens, window=8, path="i8") - want) < 1e-9
    with pytest.raises(ValueError):
        E.next_token_loss(blob, tokens[:1])


def test_recompute_mode_equals_incremental_decode_within_the_window():
    blob = F.write_blob(TINY, E.random_tensors(TINY, 3))
    tokens = np.random.default_rng(3).integers(0, TINY.vocab, 10)
    eng = E.Engine(blob, window=10)
    incremental = eng.run(tokens)
    for n in (1, 4, 10):
        assert E.bits_equal(eng.forward(tokens[:n]), incremental[n - 1])
    eng.reset()
    assert E.bits_equal(eng.prefill(tokens[:6]), incremental[5])   # several tokens in one call
    assert E.bits_equal(eng.prefill(tokens[6:]), incremental[-1])


def test_sliding_window_forgets_tokens_beyond_it_but_the_state_does_not():
    """With window N, a one-layer model's logits depend on tokens older than N only
    through the convolution and the SSM state; with the SSM's b and the conv zeroed, not
    at all. (With more layers, keys inside the window carry older tokens forward.)"""
    cfg = F.RoutedBlobConfig(vocab=16, d_model=8, n_layers=1, d_head=4, top_k=2, kernel=3)
    t = E.random_tensors(cfg, 4)
    t["blocks.0.state.b"][:] = 0
    t["blocks.0.local.weight"][:] = 0
    blob = F.write_blob(cfg, t)
    a = E.Engine(blob, window=3).run([1, 2, 3, 4, 5, 6])[-1]
    b = E.Engine(blob, window=3).run([9, 9, 9, 4, 5, 6])[-1]
    assert E.bits_equal(a, b)
    c = E.Engine(blob, window=4).run([9, 9, 9, 4, 5, 6])[-1]
    assert not E.bits_equal(a, c)


@pytest.fixture(scope="module")
def blob_944k():
    return published("atome_944k.bin")


def test_parity_on_the_published_944k_blob_both_paths(blob_944k):
    tokens = np.frombuffer(b"Once upon a time, there was a little dog named Max.", np.uint8)
    for path in E.PATHS:
        r = E.parity(blob_944k, tokens, window=128, path=path)
        assert r["bits_equal"], r
    as_atmb = F.atome01_to_blob(blob_944k, "944k", codec="dense")   # our format, decoded into the arena
    r = E.parity(as_atmb, tokens[:20], window=8)
    assert r["bits_equal"], r


def test_published_greedy_generation_equals_the_kits_reference(blob_944k):
    ref = json.loads((shared_interop_dir() / "reference_generations.json").read_text())
    for case in ref["cases"]:
        eng = E.Engine(blob_944k, window=128)
        got = eng.generate(case["prompt"], 10_000, max_total=ref["max_total_tokens"])
        assert got == case["generated_byte_ids"]
        assert bytes(got).decode() == case["generated_text"]


# -- the loader: every malformed blob refused, with the reader's error ---------------------------


@pytest.mark.parametrize("name, error, data, config", E.conformance.malformed_catalogue(),
                         ids=lambda v: v if isinstance(v, str) else "")
def test_malformed_blob_is_refused_by_c_with_the_readers_error(name, error, data, config):
    agree, py, c = E.same_verdict(data, config)
    assert py == error.__name__, f"{name}: the Python reader says {py}, the catalogue {error.__name__}"
    assert agree, f"{name}: Python raises {py}, C says {c}"
    if config is not None or data[:4] == F.MAGIC:   # Model picks the layout by the magic
        with pytest.raises(E.STATUS_ERRORS[c]):
            E.Model(data, config)


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def tiny_blobs():
    t = E.random_tensors(TINY, 5)
    return [F.write_blob(TINY, t, codec=c) for c in ("dense", "rans", "2bit", "base3x5")]


@FUZZ
@given(data=st.data())
def test_c_and_python_agree_on_mutated_headers_and_tables(tiny_blobs, data):
    blob = bytearray(data.draw(st.sampled_from(tiny_blobs)))
    table_end = E._entry(len(F.SECTIONS))
    for _ in range(data.draw(st.integers(1, 3))):
        blob[data.draw(st.integers(0, table_end - 1))] = data.draw(st.integers(0, 255))
    agree, py, c = E.same_verdict(E._with_crc(bytes(blob)))
    assert agree, (py, c)


@FUZZ
@given(data=st.data())
def test_c_and_python_agree_on_mutated_payloads_and_truncations(tiny_blobs, data):
    blob = bytearray(data.draw(st.sampled_from(tiny_blobs)))
    for _ in range(data.draw(st.integers(0, 3))):
        blob[data.draw(st.integers(0, len(blob) - 1))] = data.draw(st.integers(0, 255))
    cut = bytes(blob[:data.draw(st.integers(0, len(blob)))])
    for candidate in (cut, E._with_crc(cut) if len(cut) >= 4 else cut):
        agree, py, c = E.same_verdict(candidate)
        assert agree, (py, c)


def test_atome01_needs_a_config_whose_size_matches():
    data = F.write_atome01(E.random_tensors(TINY), TINY)
    with pytest.raises(F.LegacySizeError):
        E.Model(data)   # no preset has this size
    assert E.Model(data, TINY).config == TINY
    lib = E.load_library()
    assert lib.atome01_size(ctypes.byref(E.Config.of(TINY))) == F.legacy_size(TINY) == len(data)
    assert lib.atome01_size(ctypes.byref(E.Config(0, 8, 2, 4, 2, 3))) == 0


# -- state, scratch, buffers and bad use ----------------------------------------------------------


def test_state_and_scratch_sizes_and_refusals(lib):
    cfg = F.PRESETS["60k"]
    d, L, dh, K = cfg.d_model, cfg.n_layers, cfg.d_head, cfg.kernel
    state_bytes = lambda window, path: lib.atome_state_bytes(ctypes.byref(E.Config.of(cfg)), window, path)
    arrays = lambda *sizes: sum(-(-n // 8) * 8 for n in sizes)   # each array 8-byte aligned
    for window in (1, 64, 128):
        # SSM decay, conv window, SSM state, keys, values, all float32 on the f32 path ...
        assert state_bytes(window, 0) == arrays(4 * L * d, 4 * L * (K - 1) * d, 4 * L * d, 4 * L * window * dh,
                                                4 * L * window * d)
        # ... on the i8 path: decay and SSM in int32, the conv window, keys and values in
        # 8 bits with an int32 amax per vector
        assert state_bytes(window, 1) == arrays(4 * L * d, 4 * L * d, 4 * L * (K - 1), 4 * L * window,
                                                4 * L * window, L * (K - 1) * d, L * window * dh, L * window * d)
    assert state_bytes(64, 1) < 32 * 1024 < state_bytes(64, 0)
    assert state_bytes(0, 0) == state_bytes(8, 2) == 0
    model = E.Model(F.write_blob(cfg, E.random_tensors(cfg)))
    for path in (0, 1):
        name = list(E.PATHS)[path]
        state = E._buffer(model.state_bytes(8, name))
        scratch = E._buffer(model.scratch_bytes(8, name))
        st_struct = E._buffer(lib.atome_sizeof_state())
        init = lambda window, path, s_off, s_len, c_len: lib.atome_state_init(
            E._ptr(st_struct), E._ptr(model._view), window, path, E._ptr(state) + s_off, s_len,
            E._ptr(scratch), c_len)
        sb, cb = model.state_bytes(8, name), model.scratch_bytes(8, name)
        assert E.status_name(init(8, path, 0, sb, cb)) == "OK"
        assert E.status_name(init(8, path, 0, sb - 1, cb)) == "BUFFER_TOO_SMALL"
        assert E.status_name(init(8, path, 0, sb, cb - 1)) == "BUFFER_TOO_SMALL"
        assert E.status_name(init(4, path, 2, sb - 8, cb)) == "MISALIGNED"   # window 4 needs less: only alignment fails
        assert E.status_name(init(0, path, 0, sb, cb)) == "BAD_ARGUMENT"
        assert E.status_name(init(8, 7, 0, sb, cb)) == "BAD_ARGUMENT"


def test_bad_tokens_prompts_and_arguments_are_refused_clearly():
    eng = E.Engine(F.write_blob(TINY, E.random_tensors(TINY)), window=4)
    with pytest.raises(E.EngineError, match="BAD_TOKEN"):
        eng.step(TINY.vocab)
    with pytest.raises(ValueError, match="empty"):
        eng.generate(b"", 3)
    with pytest.raises(ValueError, match="token ids"):
        eng.generate([3, 99], 3)
    with pytest.raises(ValueError, match="window"):
        E.Engine(eng.model, window=0)
    with pytest.raises(ValueError, match="path"):
        E.Engine(eng.model, path="int4")
    with pytest.raises(F.BadMagicError):
        E.Model(b"GIF89a")


def test_build_without_a_compiler_says_so(monkeypatch):
    monkeypatch.setenv("CC", "no-such-compiler-atome")
    with pytest.raises(E.EngineBuildError, match="no C compiler"):
        E.build_library()


# -- picking tokens -----------------------------------------------------------------------------


def test_sampling_is_seeded_and_matches_the_reference(lib):
    rng = np.random.default_rng(6)
    for temperature in (0.0, 0.5, 1.0, 2.0):
        state_c = ctypes.c_uint64(1234)
        state_py = 1234
        for _ in range(50):
            logits = (rng.standard_normal(40) * 3).astype(np.float32)
            buf = (ctypes.c_float * 40)(*logits)
            c = lib.atome_sample(ctypes.addressof(buf), 40, temperature, ctypes.byref(state_c))
            py, state_py = E.sample_ref(logits, temperature, state_py)
            assert c == py
            assert state_c.value == state_py
    eng = E.Engine(F.write_blob(TINY, E.random_tensors(TINY, 7)), window=8)
    a, b = eng.generate([1, 2], 30, temperature=1.0, seed=5), eng.generate([1, 2], 30, temperature=1.0, seed=5)
    assert a == b and a != eng.generate([1, 2], 30, temperature=1.0, seed=6)
    greedy = eng.generate([1, 2], 5)
    ref = E.Reference.from_blob(F.write_blob(TINY, E.random_tensors(TINY, 7)), window=8)
    logits = ref.run([1, 2])[-1]
    assert greedy[0] == int(np.argmax(logits))


def test_generate_cli(tmp_path, capsys):
    path = tmp_path / "tiny.atmb"
    path.write_bytes(F.write_blob(TINY, E.random_tensors(TINY, 8), codec="rans"))
    assert atome_main(["generate", "--blob", str(path), "--prompt", "\x01\x02", "--max-new-tokens", "6",
                       "--ids", "--window", "4"]) == 0
    ids = [int(v) for v in capsys.readouterr().out.split()]
    assert ids == E.Engine(path.read_bytes(), window=4).generate([1, 2], 6)
    assert atome_main(["generate", "--blob", str(path), "--prompt", "\x01", "--temperature", "0.9",
                       "--seed", "1", "--ids", "--path", "i8"]) == 0
    assert len(capsys.readouterr().out.split()) == 124
    assert atome_main(["generate", "--blob", str(tmp_path / "missing"), "--prompt", "x"]) == 2
    assert atome_main(["generate", "--blob", str(path), "--prompt", "x"]) == 2   # "x" = 120 >= vocab 16
    assert "token ids" in capsys.readouterr().err


# -- the C sources: freestanding, sanitizers, fuzzing ----------------------------------------------


def test_core_is_freestanding_and_allocates_nothing(tmp_path):
    """Compiled -ffreestanding, the objects need nothing from outside but memcpy/memmove/memset/memcmp."""
    cc = os.environ.get("CC", "cc")
    undefined = set()
    for src in ("atome.c", "atome_load.c"):
        obj = tmp_path / (src + ".o")
        subprocess.run([cc, "-std=c99", "-pedantic", "-Wall", "-Wextra", "-Werror", "-ffp-contract=off", "-O2",
                        "-ffreestanding", "-fno-builtin", "-c", str(E.ENGINE_DIR / src), "-o", str(obj)],
                       check=True, capture_output=True)
        out = subprocess.run(["nm", "-u", str(obj)], check=True, capture_output=True, text=True).stdout
        undefined |= {line.split()[-1] for line in out.splitlines() if line.strip()}
    assert undefined <= {"memcpy", "memmove", "memset", "memcmp"}, undefined


def sanitizer_runtime():
    cc = os.environ.get("CC", "cc")
    libs = []
    for name in ("libasan.so", "libubsan.so"):
        out = subprocess.run([cc, f"-print-file-name={name}"], capture_output=True, text=True).stdout.strip()
        if not out or not Path(out).is_file():
            return None
        libs.append(str(Path(out).resolve()))
    return libs


def test_parity_and_loader_under_address_and_undefined_behaviour_sanitizers():
    libs = sanitizer_runtime()
    if libs is None:
        pytest.skip("the compiler has no libasan/libubsan (install gcc's sanitizer runtimes)")
    san = E.build_library("sanitize")
    # PYTHONMALLOC=malloc: Python's own small-object arenas would hide overruns from ASan
    env = dict(os.environ, ATOME_ENGINE_LIB=str(san), LD_PRELOAD=":".join(libs), PYTHONMALLOC="malloc",
               ASAN_OPTIONS="detect_leaks=0:abort_on_error=1", UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1")
    run = subprocess.run([sys.executable, "-m", "atome_core.cli", "engine", "selfcheck"], env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and "all agree" in run.stdout, run.stdout[-3000:] + run.stderr[-3000:]
    assert "runtime error" not in run.stderr and "AddressSanitizer" not in run.stderr, run.stderr[-3000:]


def test_fuzz_smoke_finds_nothing():
    if shutil.which("clang") is None:
        pytest.skip("clang is missing (apt-get install --no-install-recommends clang libclang-rt-14-dev): "
                    "no libFuzzer smoke run")
    run = subprocess.run(["make", "-s", "-C", str(E.ENGINE_DIR), "fuzz-smoke", "FUZZ_SMOKE_SECONDS=4"],
                         capture_output=True, text=True, timeout=240)
    log = run.stdout + run.stderr
    if run.returncode != 0 and "fuzzer" in log and "cannot find" in log.lower():
        pytest.skip(f"clang has no libFuzzer runtime: {log[-500:]}")
    assert run.returncode == 0, log[-3000:]
    assert "stat::number_of_executed_units" in log and "ERROR:" not in log and "deadly signal" not in log
