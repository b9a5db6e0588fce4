"""ATOME01 / ATOME02: the Atome kit's published layouts (no header beyond the magic, no
checksum; the config must be known). ATOME01 packs trits at 2 bits, ATOME02 in base-3x5.
"""

import numpy as np

from . import packing
from .atmb import read_blob, write_blob
from .errors import BadMagicError, CorruptSectionError, LegacySizeError
from .packing import CodecError
from .routed_shape import (
    PRESETS,
    as_config,
    check_tensors,
    expected_shapes,
    layer_trit_names,
    scale_key,
)

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


def legacy_config(data: bytes, config=None):
    """The given config, else the preset whose ATOME01/02 size is the blob's (the layouts
    have no header); LegacySizeError when none matches."""
    if config is not None:
        return as_config(config)
    magic = bytes(data[:7])
    for cfg in PRESETS.values():
        if legacy_size(cfg, magic) == len(data):
            return cfg
    raise LegacySizeError(f"{len(data)} bytes match no preset ({', '.join(PRESETS)}); give the config")


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
