"""Model files: our versioned blob format (ATMB) and the published ATOME01/ATOME02 layouts.

The ATMB format (version 1), all little-endian, specified by the tables below
(`HEADER_FIELDS`, `ENTRY_FIELDS`, `SECTIONS`) and rendered in chapter 3:

    header (28 B) | section table (20 B per section) | sections, each at a 4-byte
    aligned offset, zero bytes between | u32 CRC-32 (zlib) of every byte before it

Per-layer tensors of the same kind are stacked into one section (shape (n_layers, ...));
a trit section starts with one float32 scale per layer (or one for embed/unembed),
followed by the trits in row-major order encoded by the section's codec
(`atome_core.packing`). Float sections hold float32 or float16 values.

A reader checks, in this order: magic, version, length (truncated / trailing bytes),
CRC, header fields, section table bounds and alignment, overlaps, the sections against
the config, then each section's payload, and raises a named subclass of BlobError.
Every size it allocates is bounded by the file's length.
"""

import struct
import zlib
from dataclasses import dataclass

import numpy as np

from . import packing
from .errors import (
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
from .packing import CodecError
from .routed_shape import (
    ARCH_ROUTED,
    RoutedBlobConfig,
    as_config,
    check_tensors,
    expected_shapes,
    scale_key,
)

# -- ATMB: our format ----------------------------------------------------------

MAGIC = b"ATMB"
VERSION = 1
HEADER = struct.Struct("<4sHHIHHHHHHHH")
ENTRY = struct.Struct("<BBBB4HII")
CRC_BYTES = 4
ALIGN = 4

# (offset, type, field, meaning): the header, as the chapter documents it
HEADER_FIELDS = [
    (0, "u8[4]", "magic", 'the bytes "ATMB"'),
    (4, "u16", "version", "1"),
    (6, "u16", "arch", "1 = routed-ternary (the only architecture so far)"),
    (8, "u32", "file_size", "bytes in the whole file, CRC included; a multiple of 4"),
    (12, "u16", "vocab", "vocabulary size (256: raw bytes)"),
    (14, "u16", "d_model", "model width d"),
    (16, "u16", "n_layers", "number of blocks L"),
    (18, "u16", "d_head", "query/key width of the sparse attention"),
    (20, "u16", "top_k", "scores kept per attention row"),
    (22, "u16", "kernel", "causal convolution width"),
    (24, "u16", "n_sections", "entries in the section table"),
    (26, "u16", "reserved", "0"),
]
ENTRY_FIELDS = [
    (0, "u8", "name", "section id (table of sections)"),
    (1, "u8", "dtype", "1 = trit, 2 = float32, 3 = float16"),
    (2, "u8", "codec", "0 = raw (float sections); 1 = 2bit, 2 = base3x5, 3 = dense, 4 = rans (trit sections)"),
    (3, "u8", "ndim", "1 to 4"),
    (4, "u16[4]", "shape", "dimensions, unused ones 0"),
    (12, "u32", "offset", "from the start of the file; a multiple of 4"),
    (16, "u32", "length", "bytes of the section, padding excluded"),
]

DTYPE_TRIT, DTYPE_F32, DTYPE_F16 = 1, 2, 3
DTYPE_NAMES = {DTYPE_TRIT: "trit", DTYPE_F32: "float32", DTYPE_F16: "float16"}
FLOAT_DTYPES = {"float32": DTYPE_F32, "float16": DTYPE_F16}
CODEC_RAW = 0
CODEC_NAMES = {CODEC_RAW: "raw", **{c.code: c.name for c in packing.CODECS.values()}}
DEFAULT_CODEC = "dense"


@dataclass(frozen=True)
class SectionSpec:
    id: int
    name: str
    kind: str            # "trit" or "float"
    stacked: bool        # one slice per layer (shape starts with n_layers)
    parts: tuple = ()    # float sections: the vectors, in order, per layer
    meaning: str = ""

    def shape(self, cfg: RoutedBlobConfig) -> tuple:
        d = cfg.d_model
        if self.kind == "float":
            inner = (len(self.parts), d)
        elif self.stacked:
            inner = expected_shapes(cfg)[f"blocks.0.{self.name.split('.', 1)[1]}"]
        else:
            inner = (cfg.vocab, d)
        return (cfg.n_layers, *inner) if self.stacked else inner

    def members(self, cfg: RoutedBlobConfig) -> list[str]:
        """Tensor names in storage order: the slices (trit) or the vectors (float)."""
        if self.kind == "trit":
            if not self.stacked:
                return [self.name]
            return [f"blocks.{i}.{self.name.split('.', 1)[1]}" for i in range(cfg.n_layers)]
        prefixes = [f"blocks.{i}." for i in range(cfg.n_layers)] if self.stacked else [""]
        return [p + part for p in prefixes for part in self.parts]

    def n_scales(self, cfg: RoutedBlobConfig) -> int:
        return (cfg.n_layers if self.stacked else 1) if self.kind == "trit" else 0


SECTIONS = [
    SectionSpec(1, "embed.weight", "trit", False, meaning="token embedding (vocab, d); 1 scale"),
    SectionSpec(2, "blocks.norm", "float", True, ("norm.weight", "norm.bias"),
                "per layer: LayerNorm weight, bias"),
    SectionSpec(3, "blocks.local.weight", "trit", True,
                meaning="causal conv (L, d, 1, kernel), PyTorch time order (last = current); L scales"),
    SectionSpec(4, "blocks.state", "float", True, ("state.a_raw", "state.b", "state.c_out"),
                "per layer: SSM a_raw, b, c_out"),
    SectionSpec(5, "blocks.sparse.Wq.weight", "trit", True, meaning="(L, d_head, d); L scales"),
    SectionSpec(6, "blocks.sparse.Wk.weight", "trit", True, meaning="(L, d_head, d); L scales"),
    SectionSpec(7, "blocks.sparse.Wv.weight", "trit", True, meaning="(L, d, d); L scales"),
    SectionSpec(8, "blocks.router.proj.weight", "trit", True, meaning="(L, 3, d); L scales"),
    SectionSpec(9, "final_norm", "float", False, ("final_norm.weight", "final_norm.bias"),
                "final LayerNorm weight, bias"),
    SectionSpec(10, "unembed.weight", "trit", False, meaning="output projection (vocab, d); 1 scale"),
]
SECTIONS_BY_ID = {s.id: s for s in SECTIONS}
TRIT_SECTION_NAMES = [s.name for s in SECTIONS if s.kind == "trit"]


def _align(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def _choose_codecs(codec) -> dict:
    """{trit section name: codec name or 'auto'} from one name or a per-section dict."""
    if isinstance(codec, dict):
        unknown = set(codec) - set(TRIT_SECTION_NAMES)
        if unknown:
            raise ValueError(f"codec given for unknown trit sections {sorted(unknown)}; "
                             f"trit sections: {TRIT_SECTION_NAMES}")
        chosen = {name: codec.get(name, DEFAULT_CODEC) for name in TRIT_SECTION_NAMES}
    else:
        chosen = {name: codec for name in TRIT_SECTION_NAMES}
    for c in chosen.values():
        if c != "auto":
            packing.get_codec(c)
    return chosen


def _encode_trit_section(spec, cfg, tensors, codec_name):
    members = spec.members(cfg)
    scales = np.array([np.float32(tensors[scale_key(m)]) for m in members], "<f4").tobytes()
    trits = np.concatenate([packing.as_trits(tensors[m]) for m in members])
    if codec_name == "auto":  # the smallest; ties go to the earlier (random-access) codec
        streams = [(len(s), i, c.code, s) for i, c in enumerate(packing.CODECS.values())
                   for s in [c.encode(trits)]]
        _, _, code, stream = min(streams)
    else:
        c = packing.get_codec(codec_name)
        code, stream = c.code, c.encode(trits)
    return code, scales + stream


def _encode_float_section(spec, cfg, tensors, float_dtype):
    values = np.concatenate([np.asarray(tensors[m], np.float32).reshape(-1) for m in spec.members(cfg)])
    if float_dtype == "float16":
        with np.errstate(over="ignore"):
            half = values.astype(np.float16)
        if (np.isinf(half) & np.isfinite(values)).any():
            raise ValueError(f"{spec.name}: values beyond the float16 range (|x| > 65504)")
        return DTYPE_F16, half.astype("<f2").tobytes()
    return DTYPE_F32, values.astype("<f4").tobytes()


def write_blob(config, tensors: dict, codec="dense", float_dtype: str = "float32") -> bytes:
    """The ATMB file for `tensors`.

    codec: one codec name for every trit section, "auto" (the smallest per section), or
    a dict {trit section name: codec} (sections left out get "dense").
    float_dtype: "float32" or "float16" for the LayerNorm and SSM vectors; with float16
    the deployed model uses the rounded values (what read_blob returns).
    """
    cfg = as_config(config)
    check_tensors(tensors, cfg)
    if float_dtype not in FLOAT_DTYPES:
        raise ValueError(f"float_dtype must be 'float32' or 'float16', got {float_dtype!r}")
    codecs = _choose_codecs(codec)
    entries, payloads = [], []
    for spec in SECTIONS:
        if spec.kind == "trit":
            dtype = DTYPE_TRIT
            code, payload = _encode_trit_section(spec, cfg, tensors, codecs[spec.name])
        else:
            code = CODEC_RAW
            dtype, payload = _encode_float_section(spec, cfg, tensors, float_dtype)
        entries.append((spec, dtype, code, spec.shape(cfg)))
        payloads.append(payload)
    table_end = HEADER.size + ENTRY.size * len(entries)
    offset = _align(table_end)
    offsets = []
    for p in payloads:
        offsets.append(offset)
        offset = _align(offset + len(p))
    file_size = offset + CRC_BYTES
    if file_size >= 2 ** 32:
        raise ValueError(f"blob of {file_size} bytes exceeds the format's 4 GiB limit")
    out = bytearray(file_size)
    HEADER.pack_into(out, 0, MAGIC, VERSION, ARCH_ROUTED, file_size, cfg.vocab, cfg.d_model,
                     cfg.n_layers, cfg.d_head, cfg.top_k, cfg.kernel, len(entries), 0)
    for i, ((spec, dtype, code, shape), off, p) in enumerate(zip(entries, offsets, payloads)):
        dims = list(shape) + [0] * (4 - len(shape))
        ENTRY.pack_into(out, HEADER.size + ENTRY.size * i, spec.id, dtype, code, len(shape), *dims, off, len(p))
        out[off:off + len(p)] = p
    seal(out, file_size)
    return bytes(out)


@dataclass
class Entry:
    """One section-table row as read from a file."""
    id: int
    dtype: int
    codec: int
    shape: tuple
    offset: int
    length: int

    @property
    def name(self) -> str:
        spec = SECTIONS_BY_ID.get(self.id)
        return spec.name if spec else f"<unknown id {self.id}>"


@dataclass
class Header:
    version: int
    arch: int
    file_size: int
    config: dict
    n_sections: int
    reserved: int


def check_frame(data: bytes, magic: bytes, version: int, header: struct.Struct, hint: str = "") -> tuple:
    """The checks every framed blob of ours (ATMB, ATMM) makes first, in this order: magic, version,
    length against the file size the header records (its fourth field). Returns the header's fields."""
    if len(data) < len(magic):
        if magic.startswith(data):
            raise TruncatedBlobError(f"{len(data)} bytes: shorter than the magic")
        raise BadMagicError(f"magic {bytes(data)!r} is not {magic!r}")
    if data[:4] != magic:
        raise BadMagicError(f"magic {bytes(data[:4])!r} is not {magic!r}" + hint)
    if len(data) < 6:
        raise TruncatedBlobError(f"{len(data)} bytes: shorter than the version field")
    found = struct.unpack_from("<H", data, 4)[0]
    if found != version:
        raise UnsupportedVersionError(f"format version {found}; this reader knows version {version}")
    if len(data) < header.size + CRC_BYTES:
        raise TruncatedBlobError(f"{len(data)} bytes: shorter than the {header.size}-byte header and CRC")
    fields = header.unpack_from(data, 0)
    file_size = fields[3]
    if file_size > len(data):
        raise TruncatedBlobError(f"header says {file_size} bytes, file has {len(data)}")
    if file_size < len(data):
        raise TrailingBytesError(f"header says {file_size} bytes, file has {len(data)} "
                                 f"({len(data) - file_size} trailing)")
    return fields


def frame_crc(data: bytes, file_size: int) -> tuple[int, int]:
    """(stored, computed) CRC-32 of a framed blob: the last 4 bytes over every byte before them."""
    end = file_size - CRC_BYTES
    return struct.unpack_from("<I", data, end)[0], zlib.crc32(data[:end])


def seal(out: bytearray, file_size: int) -> None:
    """Write the trailing CRC-32 of a framed blob in place."""
    struct.pack_into("<I", out, file_size - CRC_BYTES, zlib.crc32(bytes(out[:file_size - CRC_BYTES])))


def _parse_header(data: bytes) -> Header:
    hint = " (this is an ATOME01/02 blob: use read_atome01 with its config)" if data[:5] == b"ATOME" else ""
    (_, version, arch, file_size, vocab, d_model, n_layers, d_head, top_k, kernel,
     n_sections, reserved) = check_frame(data, MAGIC, VERSION, HEADER, hint)
    config = dict(vocab=vocab, d_model=d_model, n_layers=n_layers, d_head=d_head, top_k=top_k, kernel=kernel)
    return Header(version, arch, file_size, config, n_sections, reserved)


def _crc(data: bytes, header: Header) -> tuple[int, int]:
    """(stored, computed) CRC-32."""
    return frame_crc(data, header.file_size)


def _check_header_fields(header: Header) -> RoutedBlobConfig:
    if header.arch != ARCH_ROUTED:
        raise BadHeaderError(f"architecture {header.arch} unknown (1 = routed-ternary)")
    if header.reserved != 0:
        raise BadHeaderError(f"reserved header field is {header.reserved}, must be 0")
    if header.file_size % ALIGN:
        raise BadHeaderError(f"file size {header.file_size} is not a multiple of {ALIGN}")
    try:
        return RoutedBlobConfig(**header.config)
    except ValueError as e:
        raise BadHeaderError(f"config in the header: {e}") from None


def _parse_table(data: bytes, header: Header) -> list[Entry]:
    data_end = header.file_size - CRC_BYTES
    table_end = HEADER.size + ENTRY.size * header.n_sections
    if table_end > data_end:
        raise SectionBoundsError(f"section table of {header.n_sections} entries ends at byte {table_end}, "
                                 f"past the data end {data_end}")
    entries = []
    for i in range(header.n_sections):
        sid, dtype, codec, ndim, *dims, offset, length = ENTRY.unpack_from(data, HEADER.size + ENTRY.size * i)
        where = f"section {i} (id {sid})"
        if dtype not in DTYPE_NAMES:
            raise BadHeaderError(f"{where}: dtype {dtype} unknown")
        if dtype == DTYPE_TRIT and codec not in packing.CODECS_BY_ID:
            raise BadHeaderError(f"{where}: codec {codec} is not a trit codec")
        if dtype != DTYPE_TRIT and codec != CODEC_RAW:
            raise BadHeaderError(f"{where}: float sections are raw (codec 0), found codec {codec}")
        if not 1 <= ndim <= 4 or any(dims[ndim:]) or not all(dims[:ndim]):
            raise BadHeaderError(f"{where}: shape {dims} with ndim {ndim} is malformed")
        if offset % ALIGN:
            raise SectionBoundsError(f"{where}: offset {offset} is not {ALIGN}-byte aligned")
        if offset < table_end or offset + length > data_end:
            raise SectionBoundsError(f"{where}: bytes [{offset}, {offset + length}) outside the data area "
                                     f"[{table_end}, {data_end})")
        entries.append(Entry(sid, dtype, codec, tuple(dims[:ndim]), offset, length))
    ordered = sorted(entries, key=lambda e: (e.offset, e.length))
    for a, b in zip(ordered, ordered[1:]):
        if a.offset + a.length > b.offset:
            raise SectionOverlapError(f"{a.name} [{a.offset}, {a.offset + a.length}) overlaps "
                                      f"{b.name} at {b.offset}")
    return entries


def _check_sections_against_config(entries: list[Entry], cfg: RoutedBlobConfig) -> dict:
    """{section id: entry}; ConfigMismatchError unless every section is present once, right shape and dtype."""
    by_id = {}
    for e in entries:
        spec = SECTIONS_BY_ID.get(e.id)
        if spec is None:
            raise ConfigMismatchError(f"section id {e.id} is not part of the routed-ternary model")
        if e.id in by_id:
            raise ConfigMismatchError(f"section {spec.name} appears twice")
        want_trit = spec.kind == "trit"
        if (e.dtype == DTYPE_TRIT) != want_trit:
            raise ConfigMismatchError(f"section {spec.name} has dtype {DTYPE_NAMES[e.dtype]}, "
                                      f"needs {'trit' if want_trit else 'float32 or float16'}")
        if e.shape != spec.shape(cfg):
            raise ConfigMismatchError(f"section {spec.name} has shape {e.shape}; the config {cfg} "
                                      f"needs {spec.shape(cfg)}")
        by_id[e.id] = e
    missing = [s.name for s in SECTIONS if s.id not in by_id]
    if missing:
        raise ConfigMismatchError(f"sections missing: {missing}")
    return by_id


def _decode_section(data: bytes, e: Entry, cfg: RoutedBlobConfig) -> dict:
    spec = SECTIONS_BY_ID[e.id]
    payload = data[e.offset:e.offset + e.length]
    count = int(np.prod(e.shape))
    members = spec.members(cfg)
    if spec.kind == "float":
        item = 4 if e.dtype == DTYPE_F32 else 2
        if e.length != count * item:
            raise CorruptSectionError(f"{spec.name}: {count} {DTYPE_NAMES[e.dtype]} values need "
                                      f"{count * item} bytes, section has {e.length}")
        values = np.frombuffer(payload, "<f4" if item == 4 else "<f2").astype(np.float32)
        return {m: v.copy() for m, v in zip(members, values.reshape(len(members), -1))}
    n_scales = spec.n_scales(cfg)
    if e.length < 4 * n_scales:
        raise CorruptSectionError(f"{spec.name}: {e.length} bytes cannot hold {n_scales} scales")
    codec = packing.CODECS_BY_ID[e.codec]
    stream = payload[4 * n_scales:]
    if count > codec.max_trits(len(stream)):
        raise CorruptSectionError(f"{spec.name}: {count} trits cannot fit in {len(stream)} bytes of {codec.name}")
    try:
        trits = codec.decode(stream, count)
    except CodecError as err:
        raise CorruptSectionError(f"{spec.name}: {err}") from None
    scales = np.frombuffer(payload[:4 * n_scales], "<f4").astype(np.float32)
    slices = trits.reshape(e.shape) if spec.stacked else trits.reshape(1, *e.shape)
    out = {}
    for m, s, t in zip(members, scales, slices):
        out[m] = t.copy()
        out[scale_key(m)] = np.asarray(s, dtype=np.float32)
    return out


def read_blob(data) -> tuple[RoutedBlobConfig, dict]:
    """(config, tensors) from an ATMB file; a BlobError subclass names anything wrong."""
    data = bytes(data)
    header = _parse_header(data)
    stored, computed = _crc(data, header)
    if stored != computed:
        raise ChecksumError(f"CRC-32 stored {stored:08x}, computed {computed:08x}")
    cfg = _check_header_fields(header)
    entries = _parse_table(data, header)
    by_id = _check_sections_against_config(entries, cfg)
    tensors = {}
    for spec in SECTIONS:
        tensors.update(_decode_section(data, by_id[spec.id], cfg))
    return cfg, tensors

