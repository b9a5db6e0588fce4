"""The ternary modern model (atome_core.models.modern with a QuantConfig) as bytes: ATMM.

What a deployed ternary modern model holds: every matrix (the tied embedding, which is
also the output matrix, and per layer the attention's wq, wk, wv, wo and the SwiGLU's
gate, up, down) as trits and a float32 scale (one per matrix; one per row with
QuantConfig(per_row=True)), and the RMSNorm weights as float32 or float16 vectors.
`deployed_bytes(model)` is the length of this file: the model's cost on disk, counted
from real packed bytes. The C engine does not run this family (yet).

Version 1, all little-endian:

    header (16 B)       u8[4] magic "ATMM" | u16 version 1 | u16 n_sections
                        | u32 file_size (CRC included, a multiple of 4) | u32 config_len
    config              config_len bytes of UTF-8 JSON: the ModernConfig as dataclasses.asdict
                        writes it (quant nested), zero bytes up to a multiple of 4
    section table       n_sections entries of 20 B, one per tensor, in the model's
                        state_dict order (modern.state_shapes(config)):
                        u8 dtype (1 trit, 2 float32, 3 float16) | u8 codec (0 raw; trit
                        codecs as in ATMB: 1 2bit, 2 base3x5, 3 dense, 4 rans) | u8 ndim
                        (1 or 2) | u8 reserved 0 | u32 dim0 | u32 dim1 (0 when ndim 1)
                        | u32 offset (a multiple of 4) | u32 length (padding excluded)
    sections            each at its offset, zero bytes between; a trit section is its
                        float32 scale(s) then the trits in row-major order in its codec;
                        a float section is the raw values
    u32 CRC-32 (zlib) of every byte before it

The reader checks magic, version, length, CRC, the config, the table (bounds,
alignment, overlaps, shapes and dtypes against the config), then each payload, and
raises the named BlobError subclasses of atome_core.formats.errors; it allocates
nothing larger than the file allows.
"""
import dataclasses
import json
import struct

import numpy as np

from . import packing
from .atmb import (  # shared with ATMB
    ALIGN,
    CODEC_RAW,
    CRC_BYTES,
    DEFAULT_CODEC,
    DTYPE_F16,
    DTYPE_F32,
    DTYPE_NAMES,
    DTYPE_TRIT,
    _align,
    check_frame,
    frame_crc,
    seal,
)
from .errors import (
    BadHeaderError,
    ChecksumError,
    ConfigMismatchError,
    CorruptSectionError,
    SectionBoundsError,
    SectionOverlapError,
)
from .packing import CodecError

MAGIC = b"ATMM"
VERSION = 1
HEADER = struct.Struct("<4sHHII")
ENTRY = struct.Struct("<BBBBIIII")
MAX_CONFIG_BYTES = 1 << 16


def _pad(b: bytes) -> bytes:
    return b + bytes(_align(len(b)) - len(b))


def _config_json(cfg) -> bytes:
    return json.dumps(dataclasses.asdict(cfg), sort_keys=True, separators=(",", ":")).encode()


def _check_ternary(cfg) -> None:
    from ..models.modern import ModernConfig
    if not isinstance(cfg, ModernConfig):
        raise ValueError(f"an ATMM blob holds a ModernConfig, got {type(cfg).__name__}")
    if cfg.quant is None or cfg.quant.weights != "ternary":
        raise ValueError("an ATMM blob holds a ternary modern model (ModernConfig.quant with weights "
                         f"'ternary'); this one's quant is {cfg.quant}")


def _n_scales(cfg, shape: tuple) -> int:
    return shape[0] if cfg.quant.per_row else 1


# -- writer ------------------------------------------------------------------------------------

def _trit_payload(trits: np.ndarray, scales: np.ndarray, codec: str) -> tuple[int, bytes]:
    head = np.asarray(scales, np.float32).reshape(-1).astype("<f4").tobytes()
    if codec == "auto":   # the smallest; ties go to the earlier (random-access) codec
        _, _, c = min((len(c.encode(trits)), i, c) for i, c in enumerate(packing.CODECS.values()))
    else:
        c = packing.get_codec(codec)
    return c.code, head + c.encode(trits)


def _float_payload(name: str, values: np.ndarray, float_dtype: str) -> tuple[int, bytes]:
    values = np.asarray(values, np.float32).reshape(-1)
    if float_dtype == "float16":
        with np.errstate(over="ignore"):
            half = values.astype(np.float16)
        if (np.isinf(half) & np.isfinite(values)).any():
            raise ValueError(f"{name}: values beyond the float16 range (|x| > 65504)")
        return DTYPE_F16, half.astype("<f2").tobytes()
    return DTYPE_F32, values.astype("<f4").tobytes()


def write_blob(cfg, state: dict, codec: str = DEFAULT_CODEC, float_dtype: str = "float32") -> bytes:
    """The ATMM file of a ternary ModernConfig and its deployed state
    (atome_core.models.modern.deployed_state: {name: (trits, scale)} for matrices,
    {name: vector} for the norms; torch tensors or NumPy arrays).

    codec: a trit codec name (atome_core.formats.packing) for every matrix, or "auto"
    (the smallest per matrix); float_dtype: "float32" or "float16" for the norm weights
    (with float16 the read-back model uses the rounded values).
    """
    from ..models.modern import state_shapes
    _check_ternary(cfg)
    if codec != "auto":
        packing.get_codec(codec)
    if float_dtype not in ("float32", "float16"):
        raise ValueError(f"float_dtype must be 'float32' or 'float16', got {float_dtype!r}")
    shapes = state_shapes(cfg)
    if list(state) != list(shapes):
        raise ValueError(f"the state's tensors {sorted(set(state) ^ set(shapes))} do not match the config's")
    entries, payloads = [], []
    for name, shape in shapes.items():
        value = state[name]
        if len(shape) == 2:
            if not isinstance(value, tuple):
                raise ValueError(f"{name}: a matrix is stored as (trits, scale), got {type(value).__name__}")
            trits, scales = (np.asarray(v.detach().cpu() if hasattr(v, "detach") else v) for v in value)
            if trits.shape != shape or scales.size != _n_scales(cfg, shape):
                raise ValueError(f"{name}: trits {trits.shape} and {scales.size} scale(s); the config needs "
                                 f"{shape} and {_n_scales(cfg, shape)}")
            code, payload = _trit_payload(packing.as_trits(trits), scales, codec)
            dtype = DTYPE_TRIT
        else:
            v = np.asarray(value.detach().cpu() if hasattr(value, "detach") else value)
            if v.shape != shape:
                raise ValueError(f"{name}: shape {v.shape}, the config needs {shape}")
            code = CODEC_RAW
            dtype, payload = _float_payload(name, v, float_dtype)
        entries.append((dtype, code, shape))
        payloads.append(payload)
    config = _config_json(cfg)
    table_start = HEADER.size + _align(len(config))
    offset = table_start + ENTRY.size * len(entries)
    offsets = []
    for p in payloads:
        offsets.append(offset)
        offset = _align(offset + len(p))
    file_size = offset + CRC_BYTES
    if file_size >= 2 ** 32:
        raise ValueError(f"blob of {file_size} bytes exceeds the format's 4 GiB limit")
    out = bytearray(file_size)
    HEADER.pack_into(out, 0, MAGIC, VERSION, len(entries), file_size, len(config))
    out[HEADER.size:HEADER.size + len(config)] = config
    for i, ((dtype, code, shape), off, p) in enumerate(zip(entries, offsets, payloads)):
        dims = (*shape, 0) if len(shape) == 1 else shape
        ENTRY.pack_into(out, table_start + ENTRY.size * i, dtype, code, len(shape), 0, *dims, off, len(p))
        out[off:off + len(p)] = p
    seal(out, file_size)
    return bytes(out)


def blob_of_model(model, codec: str = DEFAULT_CODEC, float_dtype: str = "float32") -> bytes:
    """The ATMM file of a ternary ModernLM (its shadow weights ternarised by atome_core.quant)."""
    from ..models.modern import deployed_state
    _check_ternary(model.cfg)
    return write_blob(model.cfg, deployed_state(model), codec=codec, float_dtype=float_dtype)


def deployed_bytes(model, codec: str = DEFAULT_CODEC, float_dtype: str = "float32") -> int:
    """What a ternary modern model costs on disk: the length of its ATMM file."""
    return len(blob_of_model(model, codec=codec, float_dtype=float_dtype))


# -- reader ------------------------------------------------------------------------------------

def _read_config(data: bytes, config_len: int):
    from ..models.modern import ModernConfig
    from .model_file import config_from_dict
    try:
        d = json.loads(data[HEADER.size:HEADER.size + config_len].decode())
        if not isinstance(d, dict):
            raise ValueError("not a JSON object")
        for f in dataclasses.fields(ModernConfig):
            value = d.get(f.name)
            if f.type is int and value is not None and (not isinstance(value, int) or isinstance(value, bool)):
                raise ValueError(f"{f.name} must be an integer, got {value!r}")
        cfg = config_from_dict(ModernConfig, d)
        _check_ternary(cfg)
    except (ValueError, TypeError, UnicodeDecodeError) as e:
        raise BadHeaderError(f"config: {e}") from None
    return cfg


def read_blob(data) -> tuple[object, dict]:
    """(ModernConfig, deployed state) from an ATMM file: {name: (int8 trits, float32 scale)} for
    every matrix (scale shape () per tensor, (rows, 1) per row), {name: float32 vector} for the
    norms, as NumPy arrays. A BlobError subclass names anything wrong."""
    from ..models.modern import state_shapes
    data = bytes(data)
    _, _, n_sections, file_size, config_len = check_frame(data, MAGIC, VERSION, HEADER)
    end = file_size - CRC_BYTES
    stored, computed = frame_crc(data, file_size)
    if stored != computed:
        raise ChecksumError(f"CRC-32 stored {stored:08x}, computed {computed:08x}")
    if file_size % ALIGN:
        raise BadHeaderError(f"file size {file_size} is not a multiple of {ALIGN}")
    if config_len > MAX_CONFIG_BYTES or HEADER.size + _align(config_len) > end:
        raise BadHeaderError(f"config of {config_len} bytes does not fit the file")
    if any(data[HEADER.size + config_len:HEADER.size + _align(config_len)]):
        raise BadHeaderError("nonzero padding after the config")
    table_start = HEADER.size + _align(config_len)
    table_end = table_start + ENTRY.size * n_sections
    if table_end > end:
        raise SectionBoundsError(f"section table of {n_sections} entries ends at byte {table_end}, "
                                 f"past the data end {end}")
    cfg = _read_config(data, config_len)
    # sections are one per tensor; a config with more tensors than the table is refused before
    # its shapes are listed, and its parameter count is bounded by what the bytes can hold
    n_tensors = 2 + 9 * cfg.n_layers
    if n_tensors != n_sections:
        raise ConfigMismatchError(f"the config has {n_tensors} tensors, the table {n_sections} sections")
    shapes = state_shapes(cfg)
    total = sum(int(np.prod(s)) for s in shapes.values())
    if total > packing.RANS_MAX_TRITS_PER_BYTE * file_size:
        raise ConfigMismatchError(f"the config's {total:,} parameters cannot fit in {file_size:,} bytes")
    entries = []
    for i, (name, shape) in enumerate(shapes.items()):
        dtype, code, ndim, reserved, d0, d1, offset, length = ENTRY.unpack_from(data, table_start + ENTRY.size * i)
        where = f"section {i} ({name})"
        if dtype not in DTYPE_NAMES or reserved:
            raise BadHeaderError(f"{where}: dtype {dtype} or reserved byte {reserved} not allowed")
        if dtype == DTYPE_TRIT and code not in packing.CODECS_BY_ID:
            raise BadHeaderError(f"{where}: codec {code} is not a trit codec")
        if dtype != DTYPE_TRIT and code != CODEC_RAW:
            raise BadHeaderError(f"{where}: float sections are raw (codec 0), found codec {code}")
        if ndim not in (1, 2) or (ndim == 1 and d1):
            raise BadHeaderError(f"{where}: ndim {ndim} with dims ({d0}, {d1}) is malformed")
        got = (d0, d1)[:ndim]
        if got != shape or (dtype == DTYPE_TRIT) != (len(shape) == 2):
            raise ConfigMismatchError(f"{where}: {DTYPE_NAMES[dtype]} {got}; the config needs "
                                      f"{'trit' if len(shape) == 2 else 'float'} {shape}")
        if offset % ALIGN:
            raise SectionBoundsError(f"{where}: offset {offset} is not {ALIGN}-byte aligned")
        if offset < table_end or offset + length > end:
            raise SectionBoundsError(f"{where}: bytes [{offset}, {offset + length}) outside the data area "
                                     f"[{table_end}, {end})")
        entries.append((name, shape, dtype, code, offset, length))
    ordered = sorted(entries, key=lambda e: (e[4], e[5]))
    for a, b in zip(ordered, ordered[1:]):
        if a[4] + a[5] > b[4]:
            raise SectionOverlapError(f"{a[0]} [{a[4]}, {a[4] + a[5]}) overlaps {b[0]} at {b[4]}")
    state = {}
    for name, shape, dtype, code, offset, length in entries:
        payload = data[offset:offset + length]
        count = int(np.prod(shape))
        if dtype != DTYPE_TRIT:
            item = 4 if dtype == DTYPE_F32 else 2
            if length != count * item:
                raise CorruptSectionError(f"{name}: {count} {DTYPE_NAMES[dtype]} values need "
                                          f"{count * item} bytes, section has {length}")
            state[name] = np.frombuffer(payload, "<f4" if item == 4 else "<f2").astype(np.float32).reshape(shape)
            continue
        n_scales = _n_scales(cfg, shape)
        if length < 4 * n_scales:
            raise CorruptSectionError(f"{name}: {length} bytes cannot hold {n_scales} scales")
        c = packing.CODECS_BY_ID[code]
        stream = payload[4 * n_scales:]
        if count > c.max_trits(len(stream)):
            raise CorruptSectionError(f"{name}: {count} trits cannot fit in {len(stream)} bytes of {c.name}")
        try:
            trits = c.decode(stream, count).reshape(shape)
        except CodecError as err:
            raise CorruptSectionError(f"{name}: {err}") from None
        scales = np.frombuffer(payload[:4 * n_scales], "<f4").astype(np.float32)
        scales = scales.reshape(-1, 1) if cfg.quant.per_row else scales.reshape(())
        state[name] = (trits, scales)
    return cfg, state


def model_from_blob(data):
    """The deployed ternary modern model (eval mode) an ATMM file holds: each matrix trits x
    scale in float32, the norms as stored. Its forward equals the trained model's bit for bit
    (float32 norms)."""
    import torch

    from ..models.modern import model_from_deployed
    cfg, state = read_blob(data)
    tensors = {name: (torch.from_numpy(v[0].copy()), torch.from_numpy(np.array(v[1])))
               if isinstance(v, tuple) else torch.from_numpy(v.copy()) for name, v in state.items()}
    return model_from_deployed(cfg, tensors)
