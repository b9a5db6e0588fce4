"""Save and load any of the book's byte/token models as one safetensors file.

The file holds the weights; its metadata holds the family, the config (as JSON) and
the tokenizer (JSON; absent for byte models), so `load_model(path)` needs nothing
else. Used by the lm-evaluation-harness adapter and the CLI.
"""
import dataclasses
import json
from pathlib import Path

FORMAT = "atome-model-1"


def families() -> dict:
    """family name -> (config class, model class), imported lazily."""
    from .models.modern import ModernConfig, ModernLM
    from .models.routed import RoutedConfig, RoutedLM
    from .models.vanilla import VanillaConfig, VanillaGPT
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
    import os
    from safetensors.torch import save_file
    path = Path(path)
    meta = {"format": FORMAT, "family": family_of(model),
            "config": json.dumps(dataclasses.asdict(model.cfg)),
            "tokenizer": tokenizer.to_json() if tokenizer is not None else ""}
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tmp = path.with_name(f".{path.name}.tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(tmp), metadata=meta)
    os.replace(tmp, path)   # atomic: never a half-written model file
    return path


def load_model(path):
    """(model in eval mode, tokenizer) from a file written by save_model."""
    from .results import SafetensorsReadError, read_safetensors
    from .tokenizer import BPETokenizer, ByteTokenizer
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
