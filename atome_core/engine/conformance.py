"""The one catalogue of malformed blobs, fuzz seeds and the self-check.

`malformed_cases` lists every way the readers refuse a file (each case a name, the
bytes, the config); the Python reader and the C loader must give the same named
verdict (`same_verdict`). `fuzz_seeds` writes valid inputs for c_engine/fuzz_blob.c;
`selfcheck` runs parity on random configs, every case, and random garbage."""

import ctypes
import dataclasses
from pathlib import Path

import numpy as np

from .. import formats
from .binding import (
    PATHS,
    STATUS_ERRORS,
    Config,
    _buffer,
    _ptr,
    load_library,
    status_name,
)
from .parity import parity

# -- malformed blobs: every way chapter 3's reader refuses a file -------------------------------


def _with_crc(blob: bytes) -> bytes:
    """Recompute the trailing CRC so that a case reaches the checks behind it."""
    import zlib
    body = blob[:-4]
    return body + zlib.crc32(body).to_bytes(4, "little")


def _patch(blob: bytes, offset: int, fmt: str, *values) -> bytes:
    import struct
    b = bytearray(blob)
    struct.pack_into(fmt, b, offset, *values)
    return _with_crc(bytes(b))


def _entry(i: int) -> int:
    return formats.HEADER.size + formats.ENTRY.size * i


def _table(blob: bytes) -> list:
    n = int.from_bytes(blob[24:26], "little")
    return [formats.ENTRY.unpack_from(blob, _entry(i)) for i in range(n)]


def _huge_rans_blob() -> bytes:
    """A header claiming 65535 x 65535 trits (4 GiB decoded) in tiny rANS sections."""
    import struct
    huge = formats.RoutedBlobConfig(vocab=65535, d_model=65535, n_layers=1, d_head=1, top_k=1, kernel=1)
    n = len(formats.SECTIONS)
    table_end = _entry(n)
    out = bytearray(table_end + 64 * n + 4)
    struct.pack_into("<4sHHIHHHHHHHH", out, 0, formats.MAGIC, 1, 1, len(out), huge.vocab, huge.d_model,
                     huge.n_layers, huge.d_head, huge.top_k, huge.kernel, n, 0)
    for i, spec in enumerate(formats.SECTIONS):
        shape = spec.shape(huge)
        dtype, codec = (formats.DTYPE_TRIT, 4) if spec.kind == "trit" else (formats.DTYPE_F32, 0)
        formats.ENTRY.pack_into(out, _entry(i), spec.id, dtype, codec, len(shape),
                                *(list(shape) + [0] * (4 - len(shape))), table_end + 64 * i, 64)
    return _with_crc(bytes(out))


def malformed_cases(cfg=None, seed: int = 0) -> list[tuple[str, bytes, object]]:
    """[(what is wrong, bytes, config for ATOME01 or None)]: the malformed files of
    tests/test_formats.py, plus one per codec, built from a valid random model."""
    cfg = formats.as_config(cfg or FUZZ_CONFIGS[0])
    t = random_tensors(cfg, seed)
    blob = formats.write_blob(cfg, t)                     # dense, the default codec
    table = _table(blob)
    cases = [("magic XTMB", b"XTMB" + blob[4:]), ("ATOME01 bytes read as ATMB", b"ATOME01" + bytes(100)),
             ("version 2", _patch(blob, 4, "<H", 2))]
    cases += [(f"truncated to {len(blob[:k])} bytes", blob[:k]) for k in (0, 2, 5, 20, 31, -1, -4)]
    flipped = bytearray(blob)
    flipped[len(blob) // 2] ^= 0x10
    e3, e0 = _entry(3), table[0]
    cases += [
        ("one trailing byte", blob + b"\0"),
        ("one bit flipped (CRC)", bytes(flipped)),
        ("section offset at the end of the file", _patch(blob, e3 + 12, "<I", len(blob))),
        ("section length 2^32 - 1", _patch(blob, e3 + 16, "<I", 2 ** 32 - 1)),
        ("section offset not 4-aligned", _patch(blob, e3 + 12, "<I", table[3][-2] + 2)),
        ("65535 sections in the table", _patch(blob, 24, "<H", 65535)),
        ("section over the header", _patch(blob, e3 + 12, "<I", 0)),
        ("two sections at one offset", _patch(blob, _entry(1) + 12, "<I", e0[-2])),
        ("header d_model + 1", _patch(blob, 14, "<H", cfg.d_model + 1)),
        ("section id twice", _patch(blob, _entry(1), "<B", e0[0])),
        ("unknown section id 77", _patch(blob, _entry(1), "<B", 77)),
        ("a section missing", _patch(blob, 24, "<H", len(table) - 1)),
        ("float section typed as trits", _patch(blob, _entry(1) + 1, "<BB", formats.DTYPE_TRIT, 3)),
        ("architecture 9", _patch(blob, 6, "<H", 9)),
        ("reserved field 1", _patch(blob, 26, "<H", 1)),
        ("n_layers 0", _patch(blob, 16, "<H", 0)),
        ("dtype 9", _patch(blob, _entry(0) + 1, "<B", 9)),
        ("trit section with codec 0", _patch(blob, _entry(0) + 2, "<B", 0)),
        ("dense section one byte short", _patch(blob, _entry(0) + 16, "<I", e0[-1] - 1)),
    ]
    n = cfg.vocab * cfg.d_model
    ones = np.packbits(np.ones(formats.packing.DENSE.stream_bits(n), np.uint8), bitorder="little").tobytes()
    b = bytearray(blob)
    b[e0[-2] + 4:e0[-2] + 4 + len(ones)] = ones
    cases.append(("dense group value >= 3^k", _with_crc(bytes(b))))
    for codec, where, value in (("2bit", 0, 0b10), ("base3x5", 0, 250), ("rans", 0, 0xFF)):
        other = formats.write_blob(cfg, t, codec=codec)
        b = bytearray(other)
        b[_table(other)[0][-2] + 4 + where] = value      # first payload byte after the scale
        cases.append((f"{codec}: invalid first byte", _with_crc(bytes(b))))
    cases.append(("huge config, tiny rANS sections", _huge_rans_blob()))
    legacy = formats.write_atome01(t, cfg)
    bigger = dataclasses.replace(cfg, n_layers=cfg.n_layers + 1)
    code10 = bytearray(legacy)
    code10[7 + 4] = 0b10
    out = [(name, data, None) for name, data in cases]
    out += [("ATOME01 one byte short", legacy[:-1], cfg), ("ATOME01 one byte long", legacy + b"\0", cfg),
            ("ATOME01 read with n_layers + 1", legacy, bigger), ("ATOME02 magic", b"ATOME02" + legacy[7:], cfg),
            ("ATOME01 code 10", bytes(code10), cfg)]
    return out


def python_verdict(data: bytes, config=None) -> type | None:
    """The error class chapter 3's reader raises (None: it reads the file)."""
    try:
        if config is None:
            formats.read_blob(data)
        else:
            formats.read_atome01(data, config)
    except formats.BlobError as e:
        return type(e)
    return None


def c_verdict(data: bytes, config=None, lib=None) -> str:
    """The C loader's status name for the same bytes."""
    lib = lib or load_library()
    buf = np.frombuffer(data, np.uint8).copy() if data else _buffer(1)
    if config is None:
        return status_name(lib.atome_check_blob(_ptr(buf), len(data), None, None))
    view = _buffer(lib.atome_sizeof_model())
    return status_name(lib.atome_load_atome01(_ptr(view), _ptr(buf), len(data), ctypes.byref(Config.of(config))))


def same_verdict(data: bytes, config=None, lib=None) -> tuple[bool, str, str]:
    """(do Python and C agree?, Python's class name or OK, C's status name)."""
    py, c = python_verdict(data, config), c_verdict(data, config, lib)
    py_name = py.__name__ if py else "OK"
    agree = (c == "OK") if py is None else STATUS_ERRORS.get(c) is py
    return agree, py_name, c


# -- fuzz seeds and the command line ----------------------------------------------------------------

FUZZ_CONFIGS = [formats.RoutedBlobConfig(vocab=16, d_model=8, n_layers=2, d_head=4, top_k=2, kernel=3),
                formats.RoutedBlobConfig(vocab=5, d_model=6, n_layers=1, d_head=3, top_k=3, kernel=2)]


def random_tensors(cfg, seed: int = 0, p0: float = 0.4) -> dict:
    """A random model (trits with P(0) = p0, positive scales, normal vectors) for tests."""
    cfg = formats.as_config(cfg)
    rng = np.random.default_rng(seed)
    out = {}
    trit_names = set(formats.trit_weight_names(cfg))
    for name, shape in formats.expected_shapes(cfg).items():
        if name.endswith(".scale"):
            out[name] = np.asarray(rng.uniform(0.05, 0.5), np.float32)
        elif name in trit_names:
            out[name] = (rng.choice(3, size=shape, p=[(1 - p0) / 2, p0, (1 - p0) / 2]) - 1).astype(np.int8)
        else:
            out[name] = rng.standard_normal(shape).astype(np.float32)
    return out


def fuzz_seeds(folder) -> list[Path]:
    """Valid inputs for c_engine/fuzz_blob.c: tiny ATMB blobs in every codec and ATOME01."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for i, cfg in enumerate(FUZZ_CONFIGS):
        t = random_tensors(cfg, seed=i)
        for codec in ("2bit", "base3x5", "dense", "rans"):
            for fd in ("float32", "float16"):
                blob = formats.write_blob(cfg, t, codec=codec, float_dtype=fd)
                written.append(folder / f"atmb_{i}_{codec}_{fd}")
                written[-1].write_bytes(bytes([4 * i + 32 * (fd == 'float16') + 192 * (codec == 'rans')]) + blob)
        legacy = formats.write_atome01(t, cfg)
        dims = [cfg.vocab, cfg.d_model, cfg.n_layers, cfg.d_head, cfg.top_k, cfg.kernel]
        written.append(folder / f"atome01_{i}")
        written[-1].write_bytes(bytes([3]) + bytes(v - 1 for v in dims) + legacy[7:])
    return written


def selfcheck(seed: int = 0, n_garbage: int = 300) -> list[str]:
    """Parity on random configs (every codec, both paths, ring wrap-around), every
    malformed case, random garbage through the loaders. The problems found (none: [])."""
    problems = []
    rng = np.random.default_rng(seed)
    for i, cfg in enumerate(FUZZ_CONFIGS):
        t = random_tensors(cfg, seed + i)
        tokens = rng.integers(0, cfg.vocab, 12)
        blobs = [(c, formats.write_blob(cfg, t, codec=c)) for c in ("2bit", "dense", "rans", "base3x5")]
        blobs.append(("atome01", formats.write_atome01(t, cfg)))
        for name, data in blobs:
            for path in PATHS:
                r = parity(data, tokens, window=5, path=path, config=cfg if name == "atome01" else None)
                if not r["bits_equal"]:
                    problems.append(f"parity {cfg} {name} {path}: {r}")
    for name, data, cfg in malformed_cases():
        agree, py, c = same_verdict(data, cfg)
        if not agree or py == "OK":
            problems.append(f"malformed case {name!r}: Python {py}, C {c}")
    good = formats.write_blob(FUZZ_CONFIGS[0], random_tensors(FUZZ_CONFIGS[0]), codec="rans")
    for _ in range(n_garbage):
        b = bytearray(good[:int(rng.integers(0, len(good) + 1))])
        for pos in rng.integers(0, max(1, len(b)), int(rng.integers(0, 4))):
            if b:
                b[pos] = int(rng.integers(0, 256))
        for data in (bytes(b), _with_crc(bytes(b)) if len(b) >= 4 else bytes(b)):
            agree, py, c = same_verdict(data)
            if not agree:
                problems.append(f"garbage of {len(data)} bytes: Python {py}, C {c}")
    return problems
