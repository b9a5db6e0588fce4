"""Loading any model file the book uses into (config, tensors).
"""

from ..files import write_atomic
from .atmb import MAGIC, read_blob
from .errors import ConfigMismatchError, LegacySizeError
from .legacy import (
    LEGACY_CODECS,
    legacy_size,
    read_legacy,
)
from .routed_shape import (
    PRESETS,
    RoutedBlobConfig,
    as_config,
    config_from_state_dict,
    tensors_from_state_dict,
)

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


# -- Save and load any of the book's byte/token models as one safetensors file. --

import dataclasses
import json
from pathlib import Path

FORMAT = "atome-model-1"


def families() -> dict:
    """family name -> (config class, model class), imported lazily."""
    from ..models.modern import ModernConfig, ModernLM
    from ..models.routed import RoutedConfig, RoutedLM
    from ..models.vanilla import VanillaConfig, VanillaGPT
    return {"routed": (RoutedConfig, RoutedLM), "vanilla": (VanillaConfig, VanillaGPT),
            "modern": (ModernConfig, ModernLM)}


def family_of(model) -> str:
    for name, (_, cls) in families().items():
        if isinstance(model, cls):
            return name
    raise ValueError(f"{type(model).__name__} is not one of the saveable families {list(families())}")


def config_from_dict(cls, d: dict):
    """Rebuild a (possibly nested) config dataclass from asdict() output."""
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in d:
            continue
        value = d[f.name]
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if dataclasses.is_dataclass(default) and isinstance(value, dict):
            value = config_from_dict(type(default), value)
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[f.name] = value
    unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise ValueError(f"{cls.__name__} has no field(s) {sorted(unknown)}")
    return cls(**kwargs)


def save_model(model, path, tokenizer=None) -> Path:
    from safetensors.torch import save
    path = Path(path)
    meta = {"format": FORMAT, "family": family_of(model),
            "config": json.dumps(dataclasses.asdict(model.cfg)),
            "tokenizer": tokenizer.to_json() if tokenizer is not None else ""}
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    return write_atomic(path, save(tensors, metadata=meta))


def load_model(path):
    """(model in eval mode, tokenizer) from a file written by save_model."""
    from ..data.tokenizer import BPETokenizer, ByteTokenizer
    from ..files import SafetensorsReadError, read_safetensors
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such model file")
    try:
        meta, tensors = read_safetensors(path)
    except SafetensorsReadError as e:
        raise ValueError(f"{path}: not a safetensors model file ({e})") from None
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: not an atome model file (format {meta.get('format')!r})")
    if meta["family"] not in families():
        raise ValueError(f"{path}: unknown model family {meta['family']!r}")
    config_cls, model_cls = families()[meta["family"]]
    model = model_cls(config_from_dict(config_cls, json.loads(meta["config"])))
    model.load_state_dict(tensors, strict=True)
    model.eval()
    tokenizer = BPETokenizer.from_json(meta["tokenizer"]) if meta.get("tokenizer") else ByteTokenizer()
    return model, tokenizer
