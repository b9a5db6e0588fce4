"""Model files: our versioned blob format (ATMB) and the published ATOME01/ATOME02 layouts.

Everything here works on plain data, not torch models: a config (RoutedBlobConfig, or
anything with the same fields) and a dict of named NumPy arrays,

    "<name>.weight"        int8 trits in {-1, 0, +1}, in the PyTorch weight's shape
    "<name>.weight.scale"  float32 scalar (0-d): the per-tensor scale alpha
    "<vector name>"        float32 vector (LayerNorm weight/bias, SSM a_raw/b/c_out)

with the parameter names of the routed-ternary model's state_dict.
`tensors_from_state_dict` makes that dict from FP32 shadow weights in one call.

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
from dataclasses import asdict, dataclass, field

import numpy as np

from . import packing
from .packing import CodecError

# -- errors -------------------------------------------------------------------


class BlobError(ValueError):
    """A model file that cannot be read; the subclass says why."""


class BadMagicError(BlobError):
    """The file does not start with the expected magic bytes."""


class UnsupportedVersionError(BlobError):
    """A format version this reader does not know."""


class TruncatedBlobError(BlobError):
    """The file is shorter than its header (or its config) says."""


class TrailingBytesError(BlobError):
    """The file is longer than its header says."""


class ChecksumError(BlobError):
    """The CRC-32 stored at the end does not match the bytes."""


class BadHeaderError(BlobError):
    """A header or section-table field holds a value the format does not allow."""


class SectionBoundsError(BlobError):
    """A section (or the table) lies outside the file's data area, or is misaligned."""


class SectionOverlapError(BlobError):
    """Two sections share bytes."""


class ConfigMismatchError(BlobError):
    """The sections do not match the model config (missing, extra, duplicate, wrong shape or dtype)."""


class LegacySizeError(ConfigMismatchError):
    """An ATOME01/ATOME02 blob whose size is not the size its config implies."""


class CorruptSectionError(BlobError):
    """A section's payload does not decode (wrong length for its codec, invalid codes)."""


# -- the model config ----------------------------------------------------------

ARCH_ROUTED = 1
MAX_DIM = 65535  # dimensions are u16 in the header


@dataclass(frozen=True)
class RoutedBlobConfig:
    """The routed-ternary model's shape (see ../shared/interop/README.md)."""
    vocab: int = 256
    d_model: int = 64
    n_layers: int = 4
    d_head: int = 16
    top_k: int = 4
    kernel: int = 5

    def __post_init__(self):
        for name, value in asdict(self).items():
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or not 1 <= value <= MAX_DIM:
                raise ValueError(f"config {name} must be an integer in [1, {MAX_DIM}], got {value!r}")

    @property
    def n_params(self) -> int:
        return sum(int(np.prod(s)) for s in expected_shapes(self).values()
                   if len(s) > 0)


PRESETS = {
    "60k": RoutedBlobConfig(),
    "944k": RoutedBlobConfig(d_model=256, n_layers=8, d_head=64),
}

_CONFIG_ALIASES = {"vocab_size": "vocab", "kernel_size": "kernel"}


def as_config(obj) -> RoutedBlobConfig:
    """A RoutedBlobConfig from itself, a preset name, a dict or any object with the fields.

    Accepts the kit's checkpoint keys (vocab_size, kernel_size, n_pathways = 3).
    """
    if isinstance(obj, RoutedBlobConfig):
        return obj
    if isinstance(obj, str):
        if obj not in PRESETS:
            raise ValueError(f"unknown config preset {obj!r}; choose one of {', '.join(PRESETS)}")
        return PRESETS[obj]
    names = [*RoutedBlobConfig.__dataclass_fields__, *_CONFIG_ALIASES, "n_pathways"]
    d = dict(obj) if isinstance(obj, dict) else {k: getattr(obj, k) for k in names if hasattr(obj, k)}
    d = {_CONFIG_ALIASES.get(k, k): v for k, v in d.items()}
    if d.get("n_pathways", 3) != 3:
        raise ValueError(f"the routed model has 3 pathways, config says {d['n_pathways']}")
    pathways = getattr(obj, "pathways", None) if not isinstance(obj, dict) else d.get("pathways")
    if pathways is not None and tuple(pathways) != ("local", "state", "sparse"):
        raise ValueError(f"an ablated model (pathways {tuple(pathways)}) has no ATMB layout; "
                         "version 1 stores the full three-pathway model")
    quant = getattr(obj, "quant", None) if not isinstance(obj, dict) else None
    if quant is not None and (getattr(quant, "per_row", False) or getattr(quant, "weights", "ternary") != "ternary"):
        raise ValueError(f"ATMB version 1 stores ternary weights with one scale per tensor; quant is {quant}")
    fields = RoutedBlobConfig.__dataclass_fields__
    missing = [k for k in fields if k not in d]
    if missing:
        raise ValueError(f"config lacks {missing}; has {sorted(d)}")
    return RoutedBlobConfig(**{k: int(d[k]) for k in fields})


def config_from_state_dict(state_dict, top_k: int = 4) -> RoutedBlobConfig:
    """The config implied by a state_dict's shapes; top_k has no weights, so it is given."""
    if "embed.weight" not in state_dict:
        raise ValueError("state_dict has no embed.weight: not a routed-ternary model")
    vocab, d = tuple(state_dict["embed.weight"].shape)
    layers = {int(k.split(".")[1]) for k in state_dict if k.startswith("blocks.")}
    if layers != set(range(len(layers))) or not layers:
        raise ValueError(f"state_dict blocks are numbered {sorted(layers)}; expected 0..L-1")
    return RoutedBlobConfig(vocab=vocab, d_model=d, n_layers=len(layers),
                            d_head=int(state_dict["blocks.0.sparse.Wq.weight"].shape[0]), top_k=top_k,
                            kernel=int(state_dict["blocks.0.local.weight"].shape[-1]))


def layer_trit_names(layer: int) -> list[str]:
    p = f"blocks.{layer}."
    return [p + "local.weight", p + "sparse.Wq.weight", p + "sparse.Wk.weight",
            p + "sparse.Wv.weight", p + "router.proj.weight"]


def trit_weight_names(config) -> list[str]:
    cfg = as_config(config)
    names = ["embed.weight"]
    for layer in range(cfg.n_layers):
        names += layer_trit_names(layer)
    return names + ["unembed.weight"]


def vector_names(config) -> list[str]:
    cfg = as_config(config)
    names = []
    for layer in range(cfg.n_layers):
        p = f"blocks.{layer}."
        names += [p + "norm.weight", p + "norm.bias", p + "state.a_raw", p + "state.b", p + "state.c_out"]
    return names + ["final_norm.weight", "final_norm.bias"]


def scale_key(weight_name: str) -> str:
    return weight_name + ".scale"


def expected_shapes(config) -> dict[str, tuple]:
    """Every key of the tensors dict and its shape (scales are 0-d)."""
    cfg = as_config(config)
    d, dh, v = cfg.d_model, cfg.d_head, cfg.vocab
    per_kind = {"local.weight": (d, 1, cfg.kernel), "sparse.Wq.weight": (dh, d),
                "sparse.Wk.weight": (dh, d), "sparse.Wv.weight": (d, d), "router.proj.weight": (3, d)}
    shapes = {}
    for name in trit_weight_names(cfg):
        kind = name.split(".", 2)[-1] if name.startswith("blocks.") else None
        shapes[name] = per_kind[kind] if kind else (v, d)
        shapes[scale_key(name)] = ()
    for name in vector_names(cfg):
        shapes[name] = (d,)
    return shapes


def check_tensors(tensors: dict, config) -> None:
    """ValueError unless `tensors` holds exactly the model's keys with the right shapes and values."""
    want = expected_shapes(config)
    missing = [k for k in want if k not in tensors]
    extra = [k for k in tensors if k not in want]
    if missing or extra:
        raise ValueError(f"tensors do not match the config: missing {missing[:6]}{'...' if len(missing) > 6 else ''}, "
                         f"unexpected {extra[:6]}{'...' if len(extra) > 6 else ''}")
    for k, shape in want.items():
        a = np.asarray(tensors[k])
        if a.shape != shape:
            raise ValueError(f"{k}: shape {a.shape}, config needs {shape}")
    for name in trit_weight_names(config):
        packing.as_trits(tensors[name])  # raises on values outside {-1, 0, 1}


def tensors_from_state_dict(state_dict, config, ignore_extra: bool = False) -> dict:
    """FP32 shadow weights (torch tensors or arrays, by state_dict name) -> the tensors dict.

    Ternary weights go through atome_core.quant.ternarize (absmean scale per tensor),
    exactly what the model uses in its forward pass.
    """
    import torch

    from .quant import ternarize
    cfg = as_config(config)
    wanted = set(trit_weight_names(cfg)) | set(vector_names(cfg))
    missing = sorted(wanted - set(state_dict))
    extra = sorted(set(state_dict) - wanted)
    if missing or (extra and not ignore_extra):
        raise ValueError(f"state_dict does not match the config: missing {missing[:6]}, unexpected {extra[:6]}")
    out = {}
    for name in trit_weight_names(cfg):
        w = torch.as_tensor(np.asarray(_to_numpy(state_dict[name]), dtype=np.float32))
        trits, alpha = ternarize(w)
        out[name] = trits.to(torch.int8).numpy()
        out[scale_key(name)] = np.asarray(alpha.item(), dtype=np.float32)
    for name in vector_names(cfg):
        out[name] = np.array(_to_numpy(state_dict[name]), dtype=np.float32)
    check_tensors(out, cfg)
    return out


def _to_numpy(x):
    if hasattr(x, "detach"):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def effective_weights(tensors: dict) -> dict:
    """{name: float32 array}: trits * scale for ternary weights, vectors unchanged.

    What the deployed model computes with. (Loading these as shadow weights into a model
    that re-quantises with absmean would change the scale: use the trits and scales.)
    """
    out = {}
    for k, a in tensors.items():
        if k.endswith(".scale"):
            continue
        if scale_key(k) in tensors:
            out[k] = np.asarray(a, np.float32) * np.float32(tensors[scale_key(k)])
        else:
            out[k] = np.asarray(a, np.float32)
    return out


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
SECTIONS_BY_NAME = {s.name: s for s in SECTIONS}
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
    struct.pack_into("<I", out, file_size - CRC_BYTES, zlib.crc32(bytes(out[:file_size - CRC_BYTES])))
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


def _parse_header(data: bytes) -> Header:
    if len(data) < len(MAGIC):
        if MAGIC.startswith(data):
            raise TruncatedBlobError(f"{len(data)} bytes: shorter than the magic")
        raise BadMagicError(f"magic {bytes(data)!r} is not {MAGIC!r}")
    if data[:4] != MAGIC:
        raise BadMagicError(f"magic {bytes(data[:4])!r} is not {MAGIC!r}"
                            + (" (this is an ATOME01/02 blob: use read_atome01 with its config)"
                               if data[:5] == b"ATOME" else ""))
    if len(data) < 6:
        raise TruncatedBlobError(f"{len(data)} bytes: shorter than the version field")
    version = struct.unpack_from("<H", data, 4)[0]
    if version != VERSION:
        raise UnsupportedVersionError(f"format version {version}; this reader knows version {VERSION}")
    if len(data) < HEADER.size + CRC_BYTES:
        raise TruncatedBlobError(f"{len(data)} bytes: shorter than the {HEADER.size}-byte header and CRC")
    (_, version, arch, file_size, vocab, d_model, n_layers, d_head, top_k, kernel,
     n_sections, reserved) = HEADER.unpack_from(data, 0)
    if file_size > len(data):
        raise TruncatedBlobError(f"header says {file_size} bytes, file has {len(data)}")
    if file_size < len(data):
        raise TrailingBytesError(f"header says {file_size} bytes, file has {len(data)} "
                                 f"({len(data) - file_size} trailing)")
    config = dict(vocab=vocab, d_model=d_model, n_layers=n_layers, d_head=d_head, top_k=top_k, kernel=kernel)
    return Header(version, arch, file_size, config, n_sections, reserved)


def _crc(data: bytes, header: Header) -> tuple[int, int]:
    """(stored, computed) CRC-32."""
    end = header.file_size - CRC_BYTES
    return struct.unpack_from("<I", data, end)[0], zlib.crc32(data[:end])


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


def read_blob_file(path) -> tuple[RoutedBlobConfig, dict]:
    with open(path, "rb") as f:
        return read_blob(f.read())


# -- ATOME01 / ATOME02: the published layouts ----------------------------------

ATOME01_MAGIC = b"ATOME01"
ATOME02_MAGIC = b"ATOME02"
LEGACY_CODECS = {ATOME01_MAGIC: packing.TWO_BIT, ATOME02_MAGIC: packing.BASE3X5}


def legacy_layout(config) -> list[tuple[str, str, tuple]]:
    """[(tensor name, 'trit' or 'float', shape)] in ATOME01 file order."""
    cfg = as_config(config)
    shapes = expected_shapes(cfg)
    items = [("embed.weight", "trit", shapes["embed.weight"])]
    for layer in range(cfg.n_layers):
        p = f"blocks.{layer}."
        items += [(p + "norm.weight", "float", (cfg.d_model,)), (p + "norm.bias", "float", (cfg.d_model,)),
                  (p + "local.weight", "trit", shapes[p + "local.weight"])]
        items += [(p + f"state.{v}", "float", (cfg.d_model,)) for v in ("a_raw", "b", "c_out")]
        items += [(name, "trit", shapes[name]) for name in layer_trit_names(layer)[1:]]
    items += [("final_norm.weight", "float", (cfg.d_model,)), ("final_norm.bias", "float", (cfg.d_model,)),
              ("unembed.weight", "trit", shapes["unembed.weight"])]
    return items


def legacy_item_sizes(config, magic: bytes = ATOME01_MAGIC) -> list[tuple[str, int, int]]:
    """[(name, offset, bytes)] of each item (a trit item includes its 4-byte scale)."""
    codec = LEGACY_CODECS[magic]
    out, offset = [], len(magic)
    for name, kind, shape in legacy_layout(config):
        n = int(np.prod(shape))
        size = 4 + codec.encoded_size(n) if kind == "trit" else 4 * n
        out.append((name, offset, size))
        offset += size
    return out


def legacy_size(config, magic: bytes = ATOME01_MAGIC) -> int:
    name, offset, size = legacy_item_sizes(config, magic)[-1]
    return offset + size


def _legacy_trit_order(name: str, trits: np.ndarray) -> np.ndarray:
    """ATOME01 stores the conv's time axis reversed (index 0 = the current position)."""
    return trits[..., ::-1] if name.endswith("local.weight") else trits


def write_legacy(tensors: dict, config, magic: bytes = ATOME01_MAGIC) -> bytes:
    cfg = as_config(config)
    check_tensors(tensors, cfg)
    codec = LEGACY_CODECS[magic]
    out = [magic]
    for name, kind, shape in legacy_layout(cfg):
        if kind == "trit":
            out.append(np.array([np.float32(tensors[scale_key(name)])], "<f4").tobytes())
            out.append(codec.encode(_legacy_trit_order(name, np.asarray(tensors[name]))))
        else:
            out.append(np.asarray(tensors[name], "<f4").tobytes())
    return b"".join(out)


def read_legacy(data, config, magic: bytes = ATOME01_MAGIC) -> dict:
    """The tensors of an ATOME01/ATOME02 blob; its size must match the config exactly."""
    data = bytes(data)
    cfg = as_config(config)
    if data[:len(magic)] != magic:
        raise BadMagicError(f"magic {data[:len(magic)]!r} is not {magic!r}")
    want = legacy_size(cfg, magic)
    if len(data) != want:
        raise LegacySizeError(f"{magic.decode()} blob has {len(data)} bytes; config {cfg} needs exactly {want}")
    codec = LEGACY_CODECS[magic]
    tensors = {}
    layout = legacy_layout(cfg)
    for (name, kind, shape), (_, offset, size) in zip(layout, legacy_item_sizes(cfg, magic)):
        chunk = data[offset:offset + size]
        if kind == "float":
            tensors[name] = np.frombuffer(chunk, "<f4").astype(np.float32).reshape(shape)
            continue
        tensors[scale_key(name)] = np.frombuffer(chunk[:4], "<f4").astype(np.float32).reshape(())
        try:
            trits = codec.decode(chunk[4:], int(np.prod(shape))).reshape(shape)
        except CodecError as err:
            raise CorruptSectionError(f"{name}: {err}") from None
        tensors[name] = np.ascontiguousarray(_legacy_trit_order(name, trits))
    return tensors


def read_atome01(data, config) -> dict:
    return read_legacy(data, config, ATOME01_MAGIC)


def write_atome01(tensors: dict, config) -> bytes:
    return write_legacy(tensors, config, ATOME01_MAGIC)


def read_atome02(data, config) -> dict:
    return read_legacy(data, config, ATOME02_MAGIC)


def write_atome02(tensors: dict, config) -> bytes:
    return write_legacy(tensors, config, ATOME02_MAGIC)


def atome01_to_blob(data, config, codec="dense", float_dtype: str = "float32") -> bytes:
    cfg = as_config(config)
    return write_blob(cfg, read_atome01(data, cfg), codec=codec, float_dtype=float_dtype)


def blob_to_atome01(data) -> bytes:
    cfg, tensors = read_blob(data)
    return write_atome01(tensors, cfg)


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
    if config is None:  # the format has no header: try the known configs by size
        matches = [c for c in PRESETS.values() if legacy_size(c, magic) == len(data)]
        if not matches:
            info.problems.append(f"LegacySizeError: {len(data)} bytes match no known config; give --config")
            return info
        config = matches[0]
    info.config = as_config(config)
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
            lines.append(f"trits    {n:,} in {bits / 8:,.0f} bytes: {bits / n:.4f} bits/trit "
                         f"(floor log2(3) = {packing.LOG2_3:.4f})")
    lines.append("status   " + ("ok" if info.ok else "INVALID"))
    lines += [f"problem  {p}" for p in info.problems]
    return "\n".join(lines)


# -- files and the command line -------------------------------------------------


def parse_config_arg(text: str | None):
    """--config: a preset name (60k, 944k), a JSON file, or inline JSON; None stays None."""
    if text is None:
        return None
    import json
    from pathlib import Path
    if text in PRESETS:
        return PRESETS[text]
    source = Path(text).read_text() if Path(text).is_file() else text
    try:
        return as_config(json.loads(source))
    except json.JSONDecodeError:
        raise ValueError(f"--config {text!r} is neither a preset ({', '.join(PRESETS)}), "
                         "a JSON file nor JSON") from None


def load_model_file(path, config=None, top_k: int = 4) -> tuple[RoutedBlobConfig, dict, str]:
    """(config, tensors, what it was) from any model file the book uses.

    ATMB blobs carry their config; ATOME01/02 blobs need one (given, or the preset whose
    size matches); PyTorch checkpoints (.pt, weights_only) and safetensors files (the
    trainer's checkpoints, "model."-prefixed) are ternarised from their FP32 shadow
    weights, with the config given, stored in the checkpoint, or read off the shapes.
    """
    from pathlib import Path
    path = Path(path)
    data = path.read_bytes()
    cfg = as_config(config) if config is not None else None
    if data[:4] == MAGIC:
        blob_cfg, tensors = read_blob(data)
        if cfg is not None and cfg != blob_cfg:
            raise ConfigMismatchError(f"{path}: blob config {blob_cfg} differs from the given {cfg}")
        return blob_cfg, tensors, "ATMB blob"
    if data[:7] in LEGACY_CODECS:
        magic = data[:7]
        if cfg is None:
            matches = [c for c in PRESETS.values() if legacy_size(c, magic) == len(data)]
            if not matches:
                raise LegacySizeError(f"{path}: {len(data)} bytes match no preset; give the config")
            cfg = matches[0]
        return cfg, read_legacy(data, cfg, magic), f"{magic.decode()} blob"
    if path.suffix == ".safetensors":
        from safetensors.numpy import load_file
        raw = load_file(str(path))
        if any(k.startswith("model.") for k in raw):  # the trainer's checkpoint
            raw = {k[len("model."):]: v for k, v in raw.items() if k.startswith("model.")}
        state_dict, kind = raw, "safetensors state_dict"
    else:
        import torch
        ck = torch.load(str(path), weights_only=True, map_location="cpu")
        if isinstance(ck, dict) and "state_dict" in ck:
            state_dict = ck["state_dict"]
            if cfg is None and isinstance(ck.get("config"), dict):
                cfg = as_config(ck["config"])
        else:
            state_dict = ck
        kind = "PyTorch checkpoint"
    if cfg is None:
        cfg = config_from_state_dict(state_dict, top_k=top_k)
    return cfg, tensors_from_state_dict(state_dict, cfg), kind


def cli_export(args) -> int:
    """atome export SOURCE -o OUT: write ATMB (or ATOME01/02) with the chosen codec."""
    import sys
    from pathlib import Path

    from .results import write_atomic
    try:
        cfg, tensors, kind = load_model_file(args.source, parse_config_arg(args.config), args.top_k)
        if args.format == "atmb":
            blob = write_blob(cfg, tensors, codec=args.codec, float_dtype=args.float_dtype)
        else:
            blob = write_legacy(tensors, cfg, {"atome01": ATOME01_MAGIC, "atome02": ATOME02_MAGIC}[args.format])
    except (OSError, ValueError) as e:
        print(f"atome export: error: {e}", file=sys.stderr)
        return 1
    write_atomic(Path(args.output), blob)
    print(f"{args.source} ({kind}) -> {args.output}: {len(blob):,} bytes, {args.format}"
          + (f", codec {args.codec}, floats {args.float_dtype}" if args.format == "atmb" else ""))
    if args.format == "atmb":
        print(format_inspection(inspect_blob(blob)))
    return 0


def cli_inspect(args) -> int:
    """atome inspect FILE: header, sections, bits per trit, CRC status. Exit 1 if invalid."""
    import sys
    try:
        with open(args.file, "rb") as f:
            data = f.read()
        info = inspect_blob(data, parse_config_arg(args.config))
    except (OSError, ValueError) as e:
        print(f"atome inspect: error: {e}", file=sys.stderr)
        return 1
    print(format_inspection(info))
    return 0 if info.ok else 1


# -- measurements for the chapter --------------------------------------------------


def tensor_report(tensors: dict, config, codecs=None) -> list[dict]:
    """Per ternary tensor: trits, zero fraction, entropy and the bits/trit of each codec
    applied to that tensor alone (stream bytes, scale excluded)."""
    from .progress import progress
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
