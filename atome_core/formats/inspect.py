"""What a blob holds: header, sections, bits per trit against the log2(3) floor, CRC status.
"""

from dataclasses import asdict, dataclass, field

import numpy as np

from . import packing
from .atmb import (
    CODEC_NAMES,
    DTYPE_NAMES,
    DTYPE_TRIT,
    MAGIC,
    SECTIONS_BY_ID,
    _check_header_fields,
    _check_sections_against_config,
    _crc,
    _decode_section,
    _parse_header,
    _parse_table,
)
from .errors import BlobError, LegacySizeError
from .legacy import (
    LEGACY_CODECS,
    legacy_config,
    legacy_item_sizes,
    legacy_layout,
    read_legacy,
)
from .routed_shape import RoutedBlobConfig

# -- inspection ------------------------------------------------------------------


@dataclass
class BlobInfo:
    """What `atome inspect` prints: never raises on a bad file, lists the problems instead."""
    format: str                   # "ATMB", "ATOME01", "ATOME02" or "unknown"
    size: int
    header: dict = field(default_factory=dict)
    config: RoutedBlobConfig | None = None
    crc_stored: int | None = None
    crc_computed: int | None = None
    sections: list = field(default_factory=list)   # dicts: name, dtype, codec, shape, offset, length, ...
    problems: list = field(default_factory=list)   # "ErrorName: message"

    @property
    def crc_ok(self) -> bool | None:
        return None if self.crc_stored is None else self.crc_stored == self.crc_computed

    @property
    def ok(self) -> bool:
        return not self.problems


def _problem(err: Exception) -> str:
    return f"{type(err).__name__}: {err}"


def _trit_stats(trits: np.ndarray) -> dict:
    p = np.array(packing.trit_counts(trits), dtype=np.float64) / max(trits.size, 1)
    return {"zero_fraction": float(p[1]), "entropy_bits": packing.empirical_entropy(trits)}


def inspect_blob(data, config=None) -> BlobInfo:
    """Header, sections, bits per trit and CRC status of an ATMB or ATOME01/02 file."""
    data = bytes(data)
    if data[:7] in LEGACY_CODECS:
        return _inspect_legacy(data, config)
    info = BlobInfo("ATMB" if data[:4] == MAGIC else "unknown", len(data))
    try:
        header = _parse_header(data)
    except BlobError as e:
        info.problems.append(_problem(e))
        return info
    info.header = asdict(header)
    info.crc_stored, info.crc_computed = _crc(data, header)
    if not info.crc_ok:
        info.problems.append(f"ChecksumError: stored {info.crc_stored:08x}, computed {info.crc_computed:08x}")
    try:
        info.config = _check_header_fields(header)
        entries = _parse_table(data, header)
    except BlobError as e:
        info.problems.append(_problem(e))
        return info
    try:
        _check_sections_against_config(entries, info.config)
    except BlobError as e:
        info.problems.append(_problem(e))
    for e in entries:
        spec = SECTIONS_BY_ID.get(e.id)
        row = {"name": e.name, "dtype": DTYPE_NAMES[e.dtype], "codec": CODEC_NAMES[e.codec],
               "shape": e.shape, "offset": e.offset, "length": e.length}
        if spec is not None and e.shape == spec.shape(info.config) and (e.dtype == DTYPE_TRIT) == (spec.kind == "trit"):
            try:
                decoded = _decode_section(data, e, info.config)
                if spec.kind == "trit":
                    n = int(np.prod(e.shape))
                    trits = np.concatenate([decoded[m].reshape(-1) for m in spec.members(info.config)])
                    stream_bytes = e.length - 4 * spec.n_scales(info.config)
                    row.update(n_trits=n, bits_per_trit=8 * stream_bytes / n, **_trit_stats(trits))
            except BlobError as err:
                info.problems.append(_problem(err))
                row["error"] = _problem(err)
        info.sections.append(row)
    return info


def _inspect_legacy(data: bytes, config) -> BlobInfo:
    magic = data[:7]
    info = BlobInfo(magic.decode(), len(data))
    try:  # the format has no header: without a config, try the presets by size
        info.config = legacy_config(data, config)
    except LegacySizeError:
        info.problems.append(f"LegacySizeError: {len(data)} bytes match no known config; give --config")
        return info
    try:
        tensors = read_legacy(data, info.config, magic)
    except BlobError as e:
        info.problems.append(_problem(e))
        return info
    for (name, kind, shape), (_, offset, size) in zip(legacy_layout(info.config),
                                                     legacy_item_sizes(info.config, magic)):
        row = {"name": name, "dtype": "trit" if kind == "trit" else "float32",
               "codec": LEGACY_CODECS[magic].name if kind == "trit" else "raw",
               "shape": shape, "offset": offset, "length": size}
        if kind == "trit":
            n = int(np.prod(shape))
            row.update(n_trits=n, bits_per_trit=8 * (size - 4) / n, **_trit_stats(tensors[name]))
        info.sections.append(row)
    return info


def format_inspection(info: BlobInfo) -> str:
    lines = [f"format   {info.format}, {info.size:,} bytes"]
    if info.header:
        h = info.header
        lines.append(f"header   version {h['version']}, arch {h['arch']}, file_size {h['file_size']:,}, "
                     f"{h['n_sections']} sections")
    if info.config is not None:
        lines.append("config   " + ", ".join(f"{k} {v}" for k, v in asdict(info.config).items())
                     + f" ({info.config.n_params:,} parameters)")
    if info.crc_stored is not None:
        status = "ok" if info.crc_ok else "MISMATCH"
        lines.append(f"crc32    stored {info.crc_stored:08x}, computed {info.crc_computed:08x}: {status}")
    elif info.format in ("ATOME01", "ATOME02"):
        lines.append("crc32    none (the format has no checksum)")
    if info.sections:
        lines.append(f"{'section':34s} {'dtype':8s} {'codec':8s} {'shape':18s} {'offset':>8s} {'bytes':>8s} "
                     f"{'bits/trit':>9s} {'p0':>6s} {'H bits':>6s}")
        for s in info.sections:
            bpt = f"{s['bits_per_trit']:.4f}" if "bits_per_trit" in s else ""
            p0 = f"{s['zero_fraction']:.3f}" if "zero_fraction" in s else ""
            ent = f"{s['entropy_bits']:.4f}" if "entropy_bits" in s else ""
            lines.append(f"{s['name']:34s} {s['dtype']:8s} {s['codec']:8s} {str(s['shape']):18s} "
                         f"{s['offset']:8d} {s['length']:8d} {bpt:>9s} {p0:>6s} {ent:>6s}")
        trit_rows = [s for s in info.sections if "n_trits" in s]
        if trit_rows:
            n = sum(s["n_trits"] for s in trit_rows)
            bits = sum(s["bits_per_trit"] * s["n_trits"] for s in trit_rows)
            entropy = sum(s["entropy_bits"] * s["n_trits"] for s in trit_rows) / n
            # log2(3) bounds codes that treat every trit as equally likely; an entropy code
            # (rans) is bounded by the trits' own entropy instead, which can be lower.
            lines.append(f"trits    {n:,} in {bits / 8:,.0f} bytes: {bits / n:.4f} bits/trit; bounds: "
                         f"log2(3) = {packing.LOG2_3:.4f} for a fixed-length code, the trits' entropy "
                         f"{entropy:.4f} for an entropy code (rans)")
    lines.append("status   " + ("ok" if info.ok else "INVALID"))
    lines += [f"problem  {p}" for p in info.problems]
    return "\n".join(lines)
