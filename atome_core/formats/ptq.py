"""Post-training quantisation of the FP32 baselines: int8 and int4 weights in a real file.

The book judges its ternary models against FP32 baselines; nobody ships 4 bytes a
parameter, so this module writes what a user would ship instead and counts its bytes.

What is quantised
    Every 2-D floating tensor of the model's state_dict is a *matrix*: Linear weights
    (out_features, in_features), Embedding tables (rows, d), and also the vanilla GPT's
    learned position table (max_seq, d), which is an Embedding like any other. A row is
    the first dimension (an output channel of a Linear, a token or a position of an
    Embedding); a column is the input dimension. Every other tensor (norm weights and
    biases, 0-D and 3-D+ tensors) is a *vector* and is stored as float32 (default) or
    float16 (`vector_dtype`), never quantised. A tensor reached under several names
    (tied weights, e.g. `unembed.weight = tok_embed.weight`) is stored once; the other
    names are listed in the header's "tied" map. ModernLM's tied embedding is one
    parameter and so one matrix.

Schemes (the dequantised weight is q * s, computed in float32)
    fp32   matrices as float32 (the baseline, measured from a file like the others)
    fp16   matrices as float16 (round to nearest even)
    int8   per row: s = max|w_row| / 127 (float32); q = round(w / s), clamped to
           [-127, 127]; one float32 s per row
    int4   per row and per group of `group_size` (32) consecutive columns, the last
           group short when the row length is not a multiple: s = max|w_group| / 7;
           q = round(w / s) clamped to [-7, 7]; one float16 s per (row, group)
           (q * s is exact in float32: q has 3 significant bits and s 11)

    Rounding is round half to even (torch.round). The range is symmetric ([-127, 127],
    [-7, 7], not down to -128 / -8) so that zero is exactly zero, w and -w quantise to
    q and -q, and one scale with no zero-point covers both signs; the unused code
    (-128, -8) is rejected by the reader. The int4 scale is computed in float32 and
    rounded *up* to the next float16 when float16 rounding would make it smaller, so
    |w / s| <= 7 holds and the clamp never bites; every element's error is at most
    half a step, |w - q s| <= s / 2 (to float32 rounding), and every nonzero row
    (group) uses the top code 127 (7) -- for int4 as long as its scale is a normal
    float16 (>= 2^-14, i.e. max|w_group| >= 4.3e-4; below, float16's subnormal scales
    have fewer bits and the top code may go unused, the bound still holds). An
    all-zero row (group) gets s = 0 and q = 0. A scale that overflows its type is an
    error. int8 keeps float32 scales (as PyTorch's and ONNX's per-channel int8 do): a
    float16 scale would turn subnormal for a row whose largest |w| is under 7.8e-3,
    which small residual projections at initialisation come close to.

The file (ATPQ version 1), all little-endian:

    magic  "ATPQ"                    4 bytes
    u32    version (1)               4 bytes
    u32    header length H           4 bytes
    header JSON, UTF-8, H bytes: {"format": "atome-ptq-1", "family", "config",
           "scheme", "group_size" (int4; else null), "vector_dtype",
           "tensors": [{"name", "kind", "shape"}, ...], "tied": {alias: name}}
           (compact separators, sorted keys)
    payloads, in the order of "tensors", no padding, each by its kind:
      f32   numel x 4 bytes              f16   numel x 2 bytes
      int8  R*C int8 codes (row-major), then R float32 scales
      int4  ceil(R*C / 2) bytes: the codes row-major, two per byte, element 2i in the
            low nibble and 2i+1 in the high nibble, each a 4-bit two's complement
            (-7..7; a final odd element leaves a zero high nibble), then
            R * ceil(C / group_size) float16 scales (row-major: row, then group)

    family and config are the model's registered family (atome_core.models) and its
    config dataclass as JSON, null for a model outside the registry. A state_dict
    tensor that is not floating point is refused by the writer. The reader checks
    magic, version, the header, the exact length (TruncatedBlobError /
    TrailingBytesError), codes within the symmetric range, a zero padding nibble and
    finite non-negative scales, and raises the named errors of formats.errors.

What is counted
    The deployed bytes of a model under a scheme are the length of that file:
    12 + H + the payloads (`section_sizes` splits them). Nothing else: no alignment,
    no checksum, no tokenizer (a byte model needs none).

API: `quantise_int8`, `quantise_int4`, `dequantise_int8`, `dequantise_int4`,
`pack_int4`, `unpack_int4`; `quantise_model` -> `QuantisedModel`; `to_bytes` /
`from_bytes`, `write_ptq` / `read_ptq`; `dequantised_state_dict`, `load_ptq_model`
(the model rebuilt from a file), `dequantised_copy` (a copy of a model carrying the
dequantised weights, for `atome_core.evaluate.score`), `deployed_bytes`, `section_sizes`.
"""
import copy
import dataclasses
import json
import math
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..files import write_atomic
from .errors import (
    BadHeaderError,
    BadMagicError,
    ConfigMismatchError,
    CorruptSectionError,
    TrailingBytesError,
    TruncatedBlobError,
    UnsupportedVersionError,
)

MAGIC = b"ATPQ"
VERSION = 1
FORMAT = "atome-ptq-1"
PREFIX = struct.Struct("<4sII")          # magic, version, header length
SCHEMES = ("fp32", "fp16", "int8", "int4")
GROUP_SIZE = 32
QMAX = {"int8": 127, "int4": 7}
VECTOR_KINDS = {"float32": "f32", "float16": "f16"}
KINDS = ("f32", "f16", "int8", "int4")
_SCALE_DTYPE = {"int8": "<f4", "int4": "<f2"}   # the scales' type in the file


# -- one matrix ---------------------------------------------------------------------------

def _fp16_scales(amax: torch.Tensor, qmax: int) -> torch.Tensor:
    """float16 scales >= amax / qmax (rounded up where float16 rounding went down)."""
    if not torch.isfinite(amax).all():
        raise ValueError("cannot quantise a tensor holding inf or nan")
    s = amax / qmax
    s16 = s.to(torch.float16)
    if not torch.isfinite(s16).all():
        raise ValueError(f"a scale of {float(s.max()):.3g} overflows float16")
    low = s16.float() < s
    if low.any():
        s16 = torch.where(low, torch.nextafter(s16, torch.full_like(s16, math.inf)), s16)
    return s16


def _codes(w: torch.Tensor, s: torch.Tensor, qmax: int) -> torch.Tensor:
    """round(w / s) clamped to [-qmax, qmax] (s broadcast to w; zero where s is zero)."""
    s = s.float()
    q = torch.round(w / torch.where(s == 0, torch.ones_like(s), s)).clamp_(-qmax, qmax)
    return torch.where(s == 0, torch.zeros_like(q), q).to(torch.int8)


def _matrix(w: torch.Tensor) -> torch.Tensor:
    if w.dim() != 2:
        raise ValueError(f"expected a matrix, got shape {tuple(w.shape)}")
    return w.detach().to("cpu", torch.float32)


def quantise_int8(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(codes int8 (R, C) in [-127, 127], scales float32 (R,)): symmetric, per row."""
    w = _matrix(w)
    amax = w.abs().amax(dim=1)
    if not torch.isfinite(amax).all():
        raise ValueError("cannot quantise a tensor holding inf or nan")
    s = amax / QMAX["int8"]
    return _codes(w, s[:, None], QMAX["int8"]), s


def dequantise_int8(q: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    return q.float() * scales.float()[:, None]


def n_groups(cols: int, group_size: int = GROUP_SIZE) -> int:
    return -(-cols // group_size)


def quantise_int4(w: torch.Tensor, group_size: int = GROUP_SIZE) -> tuple[torch.Tensor, torch.Tensor]:
    """(codes int8 (R, C) in [-7, 7], scales float16 (R, ceil(C / group_size))): symmetric,
    per row and group of group_size consecutive columns, the last group possibly short."""
    if group_size < 1:
        raise ValueError(f"group_size must be >= 1, got {group_size}")
    w = _matrix(w)
    rows, cols = w.shape
    g = n_groups(cols, group_size)
    padded = torch.nn.functional.pad(w.abs(), (0, g * group_size - cols))   # zeros leave amax alone
    s = _fp16_scales(padded.view(rows, g, group_size).amax(dim=2), QMAX["int4"])
    return _codes(w, _per_column(s, group_size, cols), QMAX["int4"]), s


def _per_column(scales: torch.Tensor, group_size: int, cols: int) -> torch.Tensor:
    return scales.repeat_interleave(group_size, dim=1)[:, :cols]


def dequantise_int4(q: torch.Tensor, scales: torch.Tensor, group_size: int = GROUP_SIZE) -> torch.Tensor:
    return q.float() * _per_column(scales.float(), group_size, q.shape[1])


def pack_int4(q: torch.Tensor) -> torch.Tensor:
    """Codes in [-8, 7] (any shape, read row-major) -> uint8, two per byte, low nibble first."""
    flat = q.reshape(-1).to(torch.int16)
    if flat.numel() and (flat.min() < -8 or flat.max() > 7):
        raise ValueError("int4 codes must lie in [-8, 7]")
    nib = (flat & 0xF).to(torch.uint8)
    if nib.numel() % 2:
        nib = torch.cat([nib, nib.new_zeros(1)])
    return nib[0::2] | (nib[1::2] << 4)


def unpack_int4(packed: torch.Tensor, n: int) -> torch.Tensor:
    """The first n codes (int8, flat) of pack_int4's bytes."""
    if packed.numel() != -(-n // 2):
        raise ValueError(f"{packed.numel()} bytes do not hold {n} int4 codes")
    nib = torch.stack([packed & 0xF, packed >> 4], dim=1).reshape(-1)[:n].to(torch.int16)
    return torch.where(nib >= 8, nib - 16, nib).to(torch.int8)


# -- the model ----------------------------------------------------------------------------

@dataclass
class QTensor:
    """One stored tensor: its kind, shape, values (int8 codes for int8/int4, float32 or
    float16 values for f32/f16) and scales (int8: float32 (R,), int4: float16 (R, groups))."""
    kind: str
    shape: tuple
    values: torch.Tensor
    scales: torch.Tensor | None = None


@dataclass
class QuantisedModel:
    family: str | None
    config: dict | None                # the config dataclass as JSON (dataclasses.asdict)
    scheme: str
    group_size: int | None             # int4 only
    vector_dtype: str
    tensors: dict = field(default_factory=dict)     # name -> QTensor, in file order
    tied: dict = field(default_factory=dict)        # alias -> stored name


def _check_scheme(scheme: str, vector_dtype: str) -> None:
    if scheme not in SCHEMES:
        raise ValueError(f"unknown scheme {scheme!r}; choose one of {', '.join(SCHEMES)}")
    if vector_dtype not in VECTOR_KINDS:
        raise ValueError(f"vector_dtype must be one of {', '.join(VECTOR_KINDS)}, got {vector_dtype!r}")


def quantise_tensor(t: torch.Tensor, scheme: str, group_size: int = GROUP_SIZE,
                    vector_dtype: str = "float32") -> QTensor:
    """One state_dict tensor stored under a scheme (a matrix quantised, a vector kept float)."""
    _check_scheme(scheme, vector_dtype)
    if not t.is_floating_point():
        raise ValueError(f"only floating tensors are stored, got {t.dtype}")
    t = t.detach().to("cpu", torch.float32)
    shape = tuple(t.shape)
    if t.dim() != 2 or scheme in ("fp32", "fp16"):
        kind = VECTOR_KINDS[vector_dtype] if t.dim() != 2 else {"fp32": "f32", "fp16": "f16"}[scheme]
        return QTensor(kind, shape, t.to(torch.float16) if kind == "f16" else t.clone())
    if scheme == "int8":
        return QTensor("int8", shape, *quantise_int8(t))
    return QTensor("int4", shape, *quantise_int4(t, group_size))


def quantise_model(model: torch.nn.Module, scheme: str, group_size: int = GROUP_SIZE,
                   vector_dtype: str = "float32") -> QuantisedModel:
    """Every tensor of model.state_dict() under `scheme`; tied tensors stored once."""
    from ..models import family_of
    _check_scheme(scheme, vector_dtype)
    cfg = getattr(model, "cfg", None)
    config = dataclasses.asdict(cfg) if dataclasses.is_dataclass(cfg) else None
    out = QuantisedModel(family_of(model), config, scheme, group_size if scheme == "int4" else None,
                         vector_dtype)
    first_name = {}                    # id(tensor) -> the first name it was seen under
    for name, t in model.state_dict(keep_vars=True).items():
        if id(t) in first_name:
            out.tied[name] = first_name[id(t)]
            continue
        first_name[id(t)] = name
        try:
            out.tensors[name] = quantise_tensor(t, scheme, group_size, vector_dtype)
        except ValueError as e:
            raise ValueError(f"{name}: {e}") from None
    return out


def dequantise(qt: QTensor, group_size: int | None = GROUP_SIZE) -> torch.Tensor:
    """A stored tensor as float32 (for int8/int4 q * s, in float32)."""
    if qt.kind == "int8":
        return dequantise_int8(qt.values, qt.scales)
    if qt.kind == "int4":
        return dequantise_int4(qt.values, qt.scales, group_size)
    return qt.values.float().reshape(qt.shape)


def dequantised_state_dict(qm: QuantisedModel) -> dict:
    """name -> float32 tensor for every name of the original state_dict (aliases included)."""
    sd = {name: dequantise(qt, qm.group_size) for name, qt in qm.tensors.items()}
    for alias, name in qm.tied.items():
        sd[alias] = sd[name]
    return sd


def dequantised_copy(model: torch.nn.Module, scheme: str, group_size: int = GROUP_SIZE,
                     vector_dtype: str = "float32") -> torch.nn.Module:
    """A deep copy of `model` whose weights are the dequantised values of `scheme` (an
    ordinary float32 model: atome_core.evaluate.score scores it unchanged)."""
    qm = quantise_model(model, scheme, group_size, vector_dtype)
    clone = copy.deepcopy(model)
    clone.load_state_dict(dequantised_state_dict(qm))
    return clone


def load_ptq_model(source) -> torch.nn.Module:
    """The registered family's model built from its config and carrying the dequantised
    weights of a file (a path, bytes, or a QuantisedModel). Torch's RNG is left as it was."""
    from ..models import family
    from .model_file import config_from_dict
    qm = source if isinstance(source, QuantisedModel) else (
        from_bytes(source) if isinstance(source, (bytes, bytearray)) else read_ptq(source))
    if qm.family is None or qm.config is None:
        raise ValueError("the file records no model family or config; load its dequantised_state_dict")
    config_cls, model_cls = family(qm.family)
    with torch.random.fork_rng(devices=[]):
        model = model_cls(config_from_dict(config_cls, qm.config))
    model.load_state_dict(dequantised_state_dict(qm))
    return model


# -- the file -----------------------------------------------------------------------------

def _payload_sizes(kind: str, shape: tuple, group_size: int | None) -> tuple[int, int]:
    """(value bytes, scale bytes) of one tensor."""
    n = math.prod(shape)
    if kind == "f32":
        return 4 * n, 0
    if kind == "f16":
        return 2 * n, 0
    rows, cols = shape
    if kind == "int8":
        return n, 4 * rows
    return -(-n // 2), 2 * rows * n_groups(cols, group_size)


def _header(qm: QuantisedModel) -> bytes:
    header = {"format": FORMAT, "family": qm.family, "config": qm.config, "scheme": qm.scheme,
              "group_size": qm.group_size, "vector_dtype": qm.vector_dtype,
              "tensors": [{"name": n, "kind": qt.kind, "shape": list(qt.shape)} for n, qt in qm.tensors.items()],
              "tied": qm.tied}
    return json.dumps(header, separators=(",", ":"), sort_keys=True).encode("utf-8")


def to_bytes(qm: QuantisedModel) -> bytes:
    header = _header(qm)
    parts = [PREFIX.pack(MAGIC, VERSION, len(header)), header]
    for qt in qm.tensors.values():
        if qt.kind == "f32":
            parts.append(qt.values.numpy().astype("<f4").tobytes())
        elif qt.kind == "f16":
            parts.append(qt.values.numpy().astype("<f2").tobytes())
        else:
            codes = pack_int4(qt.values) if qt.kind == "int4" else qt.values.reshape(-1)
            parts += [codes.numpy().tobytes(), qt.scales.numpy().astype(_SCALE_DTYPE[qt.kind]).tobytes()]
    return b"".join(parts)


def section_sizes(qm: QuantisedModel) -> dict:
    """The file's bytes by part: prefix, header, matrix codes/values, scales, vectors."""
    sizes = {"prefix": PREFIX.size, "header": len(_header(qm)), "matrices": 0, "scales": 0, "vectors": 0}
    for qt in qm.tensors.values():
        values, scales = _payload_sizes(qt.kind, qt.shape, qm.group_size)
        sizes["matrices" if len(qt.shape) == 2 else "vectors"] += values
        sizes["scales"] += scales
    return sizes


def _parse_header(raw: bytes) -> dict:
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise BadHeaderError(f"the header is not JSON ({e})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise BadHeaderError(f"not an {FORMAT} header")
    scheme, group_size = header.get("scheme"), header.get("group_size")
    if scheme not in SCHEMES or header.get("vector_dtype") not in VECTOR_KINDS:
        raise BadHeaderError(f"unknown scheme {scheme!r} or vector dtype {header.get('vector_dtype')!r}")
    if (scheme == "int4") != (isinstance(group_size, int) and not isinstance(group_size, bool)) or (
            scheme == "int4" and group_size < 1):
        raise BadHeaderError(f"group_size {group_size!r} does not fit scheme {scheme}")
    tensors, tied = header.get("tensors"), header.get("tied")
    if not isinstance(tensors, list) or not isinstance(tied, dict):
        raise BadHeaderError("the header's tensors must be a list and tied a map")
    names = set()
    for entry in tensors:
        ok = (isinstance(entry, dict) and isinstance(entry.get("name"), str) and entry.get("kind") in KINDS
              and isinstance(entry.get("shape"), list)
              and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in entry["shape"]))
        if not ok or (entry["kind"] in QMAX and len(entry["shape"]) != 2) or entry["name"] in names:
            raise BadHeaderError(f"bad tensor entry {entry!r}")
        names.add(entry["name"])
    if any(alias in names or name not in names for alias, name in tied.items()):
        raise ConfigMismatchError(f"tied names {tied} do not point at stored tensors")
    return header


def from_bytes(data: bytes) -> QuantisedModel:
    """Read an ATPQ file's bytes back (exactly what to_bytes wrote), checking as it goes."""
    data = bytes(data)
    if len(data) < PREFIX.size:
        raise TruncatedBlobError(f"{len(data)} bytes are shorter than the {PREFIX.size}-byte prefix")
    magic, version, header_len = PREFIX.unpack_from(data)
    if magic != MAGIC:
        raise BadMagicError(f"magic {magic!r} is not {MAGIC!r}")
    if version != VERSION:
        raise UnsupportedVersionError(f"ATPQ version {version}; this reader knows {VERSION}")
    if PREFIX.size + header_len > len(data):
        raise TruncatedBlobError(f"the header needs {header_len} bytes; the file stops sooner")
    header = _parse_header(data[PREFIX.size:PREFIX.size + header_len])
    group_size = header["group_size"]
    sizes = [_payload_sizes(e["kind"], tuple(e["shape"]), group_size) for e in header["tensors"]]
    expected = PREFIX.size + header_len + sum(v + s for v, s in sizes)
    if len(data) < expected:
        raise TruncatedBlobError(f"{len(data)} bytes; the header describes {expected}")
    if len(data) > expected:
        raise TrailingBytesError(f"{len(data) - expected} bytes after the last tensor")
    qm = QuantisedModel(header["family"], header["config"], header["scheme"], group_size,
                        header["vector_dtype"], tied=dict(header["tied"]))
    at = PREFIX.size + header_len
    for entry, (n_values, n_scales) in zip(header["tensors"], sizes):
        name, kind, shape = entry["name"], entry["kind"], tuple(entry["shape"])
        raw, scales_raw = data[at:at + n_values], data[at + n_values:at + n_values + n_scales]
        at += n_values + n_scales
        qm.tensors[name] = _decode(name, kind, shape, raw, scales_raw)
    return qm


def _decode(name: str, kind: str, shape: tuple, raw: bytes, scales_raw: bytes) -> QTensor:
    if kind in ("f32", "f16"):
        values = np.frombuffer(raw, "<f4" if kind == "f32" else "<f2").astype(np.float32 if kind == "f32"
                                                                             else np.float16)
        return QTensor(kind, shape, torch.from_numpy(values.copy()).reshape(shape))
    rows, cols = shape
    scale_dtype = _SCALE_DTYPE[kind]
    scales = torch.from_numpy(np.frombuffer(scales_raw, scale_dtype).astype(scale_dtype[1:]).copy())
    if kind == "int8":
        codes = torch.from_numpy(np.frombuffer(raw, np.int8).copy())
    else:
        packed = torch.from_numpy(np.frombuffer(raw, np.uint8).copy())
        if rows * cols % 2 and packed.numel() and packed[-1] >> 4:
            raise CorruptSectionError(f"{name}: the padding nibble after the last int4 code is not zero")
        codes = unpack_int4(packed, rows * cols)
        scales = scales.reshape(rows, -1)
    qmax = QMAX[kind]
    if codes.numel() and int(codes.to(torch.int16).abs().max()) > qmax:
        raise CorruptSectionError(f"{name}: a code outside [-{qmax}, {qmax}]")
    if not (torch.isfinite(scales).all() and (scales >= 0).all()):
        raise CorruptSectionError(f"{name}: a scale that is negative, inf or nan")
    return QTensor(kind, shape, codes.reshape(shape), scales)


def write_ptq(model_or_qm, path, scheme: str | None = None, group_size: int = GROUP_SIZE,
              vector_dtype: str = "float32") -> Path:
    """Write a model (quantised under `scheme`) or a QuantisedModel as an ATPQ file, atomically."""
    if isinstance(model_or_qm, QuantisedModel):
        qm = model_or_qm
    elif scheme is None:
        raise ValueError("give the scheme to quantise the model under")
    else:
        qm = quantise_model(model_or_qm, scheme, group_size, vector_dtype)
    return write_atomic(Path(path), to_bytes(qm))


def read_ptq(path) -> QuantisedModel:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    return from_bytes(path.read_bytes())


def deployed_bytes(model: torch.nn.Module, scheme: str, group_size: int = GROUP_SIZE,
                   vector_dtype: str = "float32") -> int:
    """The length of the ATPQ file of `model` under `scheme`."""
    return len(to_bytes(quantise_model(model, scheme, group_size, vector_dtype)))
