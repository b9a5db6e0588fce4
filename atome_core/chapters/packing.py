"""Chapter 3's measurements: what each codec costs per tensor, where a blob's bytes go,
and what a damaged blob does to each reader."""

import struct
import zlib

from ..formats import packing
from ..formats.atmb import (
    CRC_BYTES,
    DTYPE_TRIT,
    ENTRY,
    HEADER,
    SECTIONS,
    SECTIONS_BY_ID,
    _parse_header,
    _parse_table,
    read_blob,
)
from ..formats.errors import (
    BadHeaderError,
    BadMagicError,
    ChecksumError,
    ConfigMismatchError,
    CorruptSectionError,
    SectionBoundsError,
    SectionOverlapError,
    TrailingBytesError,
    TruncatedBlobError,
    UnsupportedVersionError,
)
from ..formats.inspect import _trit_stats
from ..formats.legacy import ATOME01_MAGIC, legacy_item_sizes, legacy_layout
from ..formats.routed_shape import as_config, trit_weight_names

# -- measurements for the chapter --------------------------------------------------


def tensor_report(tensors: dict, config, codecs=None) -> list[dict]:
    """Per ternary tensor: trits, zero fraction, entropy and the bits/trit of each codec
    applied to that tensor alone (stream bytes, scale excluded)."""
    from ..progress import progress
    cfg = as_config(config)
    rows = []
    for name in progress(trit_weight_names(cfg), desc="codecs per tensor"):
        t = packing.as_trits(tensors[name])
        row = {"name": name, "n_trits": int(t.size), **_trit_stats(t)}
        for c in codecs or packing.CODECS:
            row[f"bits_{c}"] = packing.bits_per_trit(c, t)
        rows.append(row)
    return rows


def blob_breakdown(data) -> dict:
    """Bytes of an ATMB file by role: header and table, scales, trits per section, floats, padding, CRC."""
    data = bytes(data)
    cfg, _ = read_blob(data)  # validates first
    header = _parse_header(data)
    entries = _parse_table(data, header)
    out = {"header+table": HEADER.size + ENTRY.size * len(entries), "crc": CRC_BYTES}
    used = out["header+table"] + CRC_BYTES
    for e in entries:
        spec = SECTIONS_BY_ID[e.id]
        if spec.kind == "trit":
            scales = 4 * spec.n_scales(cfg)
            out["scales"] = out.get("scales", 0) + scales
            out[f"trits {spec.name}"] = e.length - scales
        else:
            out[f"floats {spec.name}"] = e.length
        used += e.length
    out["padding"] = len(data) - used
    return out


def legacy_breakdown(config, magic: bytes = ATOME01_MAGIC) -> dict:
    """The same roles for an ATOME01/02 file of `config` (sizes follow from the config)."""
    out = {"header+table": len(magic), "scales": 0}
    for (name, kind, shape), (_, _, size) in zip(legacy_layout(config), legacy_item_sizes(config, magic)):
        if kind == "trit":
            out["scales"] += 4
            key = "trits " + (name if not name.startswith("blocks.") else "blocks." + name.split(".", 2)[2])
            out[key] = out.get(key, 0) + size - 4
        else:
            key = "floats " + _float_section_of(name)
            out[key] = out.get(key, 0) + size
    return out


def _float_section_of(vector_name: str) -> str:
    stacked = vector_name.startswith("blocks.")
    part = vector_name.split(".", 2)[2] if stacked else vector_name
    return next(s.name for s in SECTIONS if s.kind == "float" and s.stacked == stacked and part in s.parts)


def corrupted_variants(blob: bytes) -> dict:
    """{what was done: (the error a reader must raise, bytes)}: damaged copies of a valid blob.

    The structural damages recompute the CRC, so that the check behind it is the one
    that fires (a reader that relied on the CRC alone would accept them).
    """
    blob = bytes(blob)
    header = _parse_header(blob)
    entries = _parse_table(blob, header)

    def refit(b):
        b = bytes(b)
        return b[:-4] + struct.pack("<I", zlib.crc32(b[:-4]))

    def patched(offset, fmt, *values):
        b = bytearray(blob)
        struct.pack_into(fmt, b, offset, *values)
        return refit(b)

    def entry_at(i):
        return HEADER.size + ENTRY.size * i

    flipped = bytearray(blob)
    flipped[len(blob) // 2] ^= 0x01
    first_trit = next(i for i, e in enumerate(entries) if e.dtype == DTYPE_TRIT)
    return {
        "wrong magic": (BadMagicError, b"ATMX" + blob[4:]),
        "unknown version (2)": (UnsupportedVersionError, patched(4, "<H", 2)),
        "truncated by 1 byte": (TruncatedBlobError, blob[:-1]),
        "1 trailing byte": (TrailingBytesError, blob + b"\x00"),
        "one bit flipped": (ChecksumError, bytes(flipped)),
        "unknown architecture": (BadHeaderError, patched(6, "<H", 7)),
        "section offset past the end": (SectionBoundsError, patched(entry_at(1) + 12, "<I", header.file_size)),
        "section offset not 4-aligned": (SectionBoundsError, patched(entry_at(1) + 12, "<I", entries[1].offset + 2)),
        "section table longer than the file": (SectionBoundsError, patched(24, "<H", 65535)),
        "two sections overlap": (SectionOverlapError, patched(entry_at(1) + 12, "<I", entries[0].offset)),
        "header d_model changed": (ConfigMismatchError, patched(14, "<H", header.config["d_model"] + 1)),
        "a section id duplicated": (ConfigMismatchError, patched(entry_at(1), "<B", entries[0].id)),
        "section length one byte short": (CorruptSectionError,
                                          patched(entry_at(first_trit) + 16, "<I", entries[first_trit].length - 1)),
    }
