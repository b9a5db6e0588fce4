"""The routed-ternary model as plain data: a config and a dict of named NumPy arrays.

    "<name>.weight"        int8 trits in {-1, 0, +1}, in the PyTorch weight's shape
    "<name>.weight.scale"  float32 scalar (0-d): the per-tensor scale alpha
    "<vector name>"        float32 vector (LayerNorm weight/bias, SSM a_raw/b/c_out)

with the parameter names of the routed-ternary model's state_dict.
`tensors_from_state_dict` makes that dict from FP32 shadow weights in one call.
"""

from dataclasses import asdict, dataclass

import numpy as np

from . import packing

# -- the model config ----------------------------------------------------------

ARCH_ROUTED = 1
MAX_DIM = 65535  # dimensions are u16 in the header


@dataclass(frozen=True)
class RoutedBlobConfig:
    """The routed-ternary model's shape as the ATMB header and the C engine name it
    (see ../shared/interop/README.md). The defaults are the kit's 60K model, PRESETS["60k"];
    `blob_config` makes one from the model's RoutedConfig."""
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


# the routed model's field names -> the blob's (ATMB header, C engine): the one place they meet
_BLOB_NAMES = {"vocab_size": "vocab", "d_model": "d_model", "n_layers": "n_layers", "d_head": "d_head",
               "top_k": "top_k", "kernel_size": "kernel"}


def _fields(obj, names) -> dict:
    from collections.abc import Mapping
    if isinstance(obj, Mapping):
        return dict(obj)
    return {k: getattr(obj, k) for k in names if hasattr(obj, k)}


def blob_config(model_config) -> RoutedBlobConfig:
    """The routed model's config as the blob's: the one conversion from the model's field
    names (vocab_size, kernel_size) to the header's and the C engine's (vocab, kernel).

    `model_config`: a RoutedConfig, or a mapping with its field names (a row of
    atome_core.models.presets, the kit's checkpoint config with n_pathways = 3).
    """
    d = _fields(model_config, [*_BLOB_NAMES, "pathways", "quant", "n_pathways"])
    if d.get("n_pathways", 3) != 3:
        raise ValueError(f"the routed model has 3 pathways, config says {d['n_pathways']}")
    pathways = d.get("pathways")
    if pathways is not None and tuple(pathways) != ("local", "state", "sparse"):
        raise ValueError(f"an ablated model (pathways {tuple(pathways)}) has no ATMB layout; "
                         "version 1 stores the full three-pathway model")
    quant = d.get("quant")
    quant = _fields(quant, ["per_row", "weights", "scale"]) if quant is not None else {}
    if quant.get("per_row", False) or quant.get("weights", "ternary") != "ternary":
        raise ValueError(f"ATMB version 1 stores ternary weights with one scale per tensor; quant is {d['quant']}")
    if quant.get("scale", "absmean") != "absmean":
        # the exporter ternarises with the absmean scale; other trits than the model trained with
        raise ValueError(f"ATMB version 1 is written from absmean-scaled weights; quant is {d['quant']}")
    missing = [k for k in _BLOB_NAMES if k not in d]
    if missing:
        raise ValueError(f"config lacks {missing}; has {sorted(d)}")
    return RoutedBlobConfig(**{blob: int(d[k]) for k, blob in _BLOB_NAMES.items()})


def _presets() -> dict:
    from ..models.presets import LADDER, SIZES
    return {size: blob_config(LADDER[("routed", size)]) for size in SIZES}


PRESETS = _presets()   # the routed rungs of atome_core.models.presets, by size name


def as_config(obj) -> RoutedBlobConfig:
    """A RoutedBlobConfig from itself, a preset name, a mapping or object with its field
    names (JSON from the command line), or the routed model's config (`blob_config`)."""
    if isinstance(obj, RoutedBlobConfig):
        return obj
    if isinstance(obj, str):
        if obj not in PRESETS:
            raise ValueError(f"unknown config preset {obj!r}; choose one of {', '.join(PRESETS)}")
        return PRESETS[obj]
    fields = RoutedBlobConfig.__dataclass_fields__
    d = _fields(obj, [*fields, *_BLOB_NAMES])
    if "vocab_size" in d or "kernel_size" in d:
        return blob_config(obj)
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

    from ..quant import ternarize
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
