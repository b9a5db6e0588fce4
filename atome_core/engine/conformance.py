"""The one catalogue of malformed blobs, fuzz seeds and the self-check.

Every damaged file the book feeds a reader comes from here: the tests of chapter 3's
reader (tests/test_formats.py) and of the C loader (tests/test_engine.py), chapter 3's
table and fuzzer, chapter 6's verdicts, and the seeds of c_engine/fuzz_blob.c.

- `atmb_damages(blob)`: every structural damage of a valid ATMB file, each with the
  named error chapter 3's reader raises for it (a copy that keeps its CRC valid where
  the damage is structural, so the check behind the CRC is the one that fires).
- `malformed_catalogue()` / `malformed_cases()`: those damages of a small random model,
  plus one broken payload per codec, a huge header in a tiny file and the ATOME01
  cases; the Python reader and the C loader must give the same named verdict
  (`same_verdict`).
- `mutated_copies(blob, n, seed)`: random damage (bit flips; header and table bytes
  overwritten with the CRC recomputed; truncations), and `header_field_at(offset)`.
- `fuzz_seeds(folder)`: valid inputs for the C fuzzer; `selfcheck` runs parity on random
  configs, every case, and random garbage.
"""

import ctypes
import dataclasses
import struct
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .. import formats
from ..formats import errors
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

# -- byte surgery on ATMB files -----------------------------------------------------------------


def with_crc(blob: bytes) -> bytes:
    """Recompute the trailing CRC so that a damage reaches the checks behind it."""
    body = blob[:-4]
    return body + zlib.crc32(body).to_bytes(4, "little")


def patch(blob: bytes, offset: int, fmt: str, *values) -> bytes:
    """`values` packed with struct format `fmt` at `offset`, CRC recomputed."""
    b = bytearray(blob)
    struct.pack_into(fmt, b, offset, *values)
    return with_crc(bytes(b))


def entry_offset(i: int) -> int:
    """Where section-table entry i starts."""
    return formats.HEADER.size + formats.ENTRY.size * i


def section_table(blob: bytes) -> list:
    """The raw section-table entries (tuples in formats.ENTRY's field order; offset and length last)."""
    n = int.from_bytes(blob[24:26], "little")
    return [formats.ENTRY.unpack_from(blob, entry_offset(i)) for i in range(n)]


# the names tests/test_engine.py and atome_core.engine have always used
_with_crc, _patch, _entry, _table = with_crc, patch, entry_offset, section_table


def header_field_at(offset: int) -> str:
    """The header field that holds byte `offset`, else "section table" or "payload"."""
    widths = {"u8[4]": 4, "u16": 2, "u32": 4}
    for start, typ, name, _ in formats.HEADER_FIELDS:
        if start <= offset < start + widths[typ]:
            return name
    return "section table" if offset < entry_offset(len(formats.SECTIONS)) else "payload"


# -- the catalogue ------------------------------------------------------------------------------


class Malformed(NamedTuple):
    name: str          # what is wrong
    error: type        # the BlobError subclass chapter 3's reader raises
    data: bytes
    config: object     # the config an ATOME01 file is read with; None for ATMB


def atmb_damages(blob: bytes) -> list[tuple[str, type, bytes]]:
    """[(what is wrong, the error the reader raises, bytes)]: every structural damage of
    `blob`, a valid ATMB file as formats.write_blob writes it (sections in table order)."""
    blob = bytes(blob)
    table = _table(blob)
    e3, e0 = _entry(3), table[0]
    flipped = bytearray(blob)
    flipped[len(blob) // 2] ^= 0x10
    codec0 = formats.packing.CODECS_BY_ID[e0[2]].name if e0[1] == formats.DTYPE_TRIT else "first"
    out = [("magic XTMB", errors.BadMagicError, b"XTMB" + blob[4:]),
           ("ATOME01 bytes read as ATMB", errors.BadMagicError, b"ATOME01" + bytes(100)),
           ("version 2", errors.UnsupportedVersionError, _patch(blob, 4, "<H", 2))]
    out += [(f"truncated to {len(blob[:k])} bytes", errors.TruncatedBlobError, blob[:k])
            for k in (0, 2, 5, 20, 31, -1, -4)]
    out += [
        ("one trailing byte", errors.TrailingBytesError, blob + b"\0"),
        ("one bit flipped (CRC)", errors.ChecksumError, bytes(flipped)),
        ("section offset at the end of the file", errors.SectionBoundsError, _patch(blob, e3 + 12, "<I", len(blob))),
        ("section length 2^32 - 1", errors.SectionBoundsError, _patch(blob, e3 + 16, "<I", 2 ** 32 - 1)),
        ("section offset not 4-aligned", errors.SectionBoundsError, _patch(blob, e3 + 12, "<I", table[3][-2] + 2)),
        ("65535 sections in the table", errors.SectionBoundsError, _patch(blob, 24, "<H", 65535)),
        ("section over the header", errors.SectionBoundsError, _patch(blob, e3 + 12, "<I", 0)),
        ("two sections at one offset", errors.SectionOverlapError, _patch(blob, _entry(1) + 12, "<I", e0[-2])),
        ("header d_model + 1", errors.ConfigMismatchError, _patch(blob, 14, "<H", int.from_bytes(blob[14:16], "little") + 1)),
        ("section id twice", errors.ConfigMismatchError, _patch(blob, _entry(1), "<B", e0[0])),
        ("unknown section id 77", errors.ConfigMismatchError, _patch(blob, _entry(1), "<B", 77)),
        ("a section missing", errors.ConfigMismatchError, _patch(blob, 24, "<H", len(table) - 1)),
        ("float section typed as trits", errors.ConfigMismatchError,
         _patch(blob, _entry(1) + 1, "<BB", formats.DTYPE_TRIT, 3)),
        ("architecture 9", errors.BadHeaderError, _patch(blob, 6, "<H", 9)),
        ("reserved field 1", errors.BadHeaderError, _patch(blob, 26, "<H", 1)),
        ("n_layers 0", errors.BadHeaderError, _patch(blob, 16, "<H", 0)),
        ("dtype 9", errors.BadHeaderError, _patch(blob, _entry(0) + 1, "<B", 9)),
        ("trit section with codec 0", errors.BadHeaderError, _patch(blob, _entry(0) + 2, "<B", 0)),
        (f"{codec0} section one byte short", errors.CorruptSectionError,
         _patch(blob, _entry(0) + 16, "<I", e0[-1] - 1)),
    ]
    if codec0 == "dense":
        cfg, _ = formats.read_blob(blob)
        n = cfg.vocab * cfg.d_model
        ones = np.packbits(np.ones(formats.packing.DENSE.stream_bits(n), np.uint8), bitorder="little").tobytes()
        b = bytearray(blob)
        b[e0[-2] + 4:e0[-2] + 4 + len(ones)] = ones
        out.append(("dense group value >= 3^k", errors.CorruptSectionError, _with_crc(bytes(b))))
    return out


def _huge_rans_blob() -> bytes:
    """A header claiming 65535 x 65535 trits (4 GiB decoded) in tiny rANS sections."""
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


def malformed_catalogue(cfg=None, seed: int = 0) -> list[Malformed]:
    """Every malformed file, built from a valid random model: the structural damages of
    its dense ATMB file, one invalid payload per other codec, a huge config in a tiny
    file, and the ATOME01 cases (read with `config`)."""
    cfg = formats.as_config(cfg or FUZZ_CONFIGS[0])
    t = random_tensors(cfg, seed)
    cases = [Malformed(name, err, data, None)
             for name, err, data in atmb_damages(formats.write_blob(cfg, t))]   # dense, the default codec
    for codec, where, value in (("2bit", 0, 0b10), ("base3x5", 0, 250), ("rans", 0, 0xFF)):
        other = formats.write_blob(cfg, t, codec=codec)
        b = bytearray(other)
        b[_table(other)[0][-2] + 4 + where] = value      # first payload byte after the scale
        cases.append(Malformed(f"{codec}: invalid first byte", errors.CorruptSectionError, _with_crc(bytes(b)), None))
    cases.append(Malformed("huge config, tiny rANS sections", errors.CorruptSectionError, _huge_rans_blob(), None))
    legacy = formats.write_atome01(t, cfg)
    bigger = dataclasses.replace(cfg, n_layers=cfg.n_layers + 1)
    code10 = bytearray(legacy)
    code10[7 + 4] = 0b10
    cases += [Malformed("ATOME01 one byte short", errors.LegacySizeError, legacy[:-1], cfg),
              Malformed("ATOME01 one byte long", errors.LegacySizeError, legacy + b"\0", cfg),
              Malformed("ATOME01 read with n_layers + 1", errors.LegacySizeError, legacy, bigger),
              Malformed("ATOME02 magic", errors.BadMagicError, b"ATOME02" + legacy[7:], cfg),
              Malformed("ATOME01 code 10", errors.CorruptSectionError, bytes(code10), cfg)]
    return cases


def malformed_cases(cfg=None, seed: int = 0) -> list[tuple[str, bytes, object]]:
    """[(what is wrong, bytes, config for ATOME01 or None)]: the catalogue without its errors."""
    return [(m.name, m.data, m.config) for m in malformed_catalogue(cfg, seed)]


def mutated_copies(blob: bytes, n: int, seed: int):
    """n randomly damaged copies of `blob`, in turn: 1-4 random bits flipped anywhere (CRC
    left as it is); 1-3 header or table bytes overwritten (CRC recomputed); a truncation.
    Yields bytes; the same (blob, n, seed) gives the same copies."""
    rng = np.random.default_rng(seed)
    table_end = formats.HEADER.size + formats.ENTRY.size * len(formats.SECTIONS)
    for i in range(n):
        b = bytearray(blob)
        kind = i % 3
        if kind == 0:
            for bit in rng.integers(0, 8 * len(b), size=rng.integers(1, 5)):
                b[bit // 8] ^= 1 << (bit % 8)
        elif kind == 1:
            for pos in rng.integers(0, table_end, size=rng.integers(1, 4)):
                b[pos] = rng.integers(0, 256)
            b[-4:] = np.array([zlib.crc32(bytes(b[:-4]))], "<u4").tobytes()
        else:
            b = b[: rng.integers(0, len(b))]
        yield bytes(b)


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
    """Inputs for c_engine/fuzz_blob.c (byte 0 picks the layout and the run, see there):
    tiny valid ATMB blobs in every codec and float width, ATOME01 files, and every
    malformed ATMB file of the catalogue as it is (a starting point at each check)."""
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
    atmb = [m for m in malformed_catalogue() if m.config is None]
    for i, m in enumerate(atmb):
        written.append(folder / f"malformed_{i:02d}")
        written[-1].write_bytes(bytes([0]) + m.data)      # mode 0: ATMB, no length or CRC fix-up
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
