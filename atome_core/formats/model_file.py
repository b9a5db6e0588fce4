"""The one model-file contract, and any file the routed model lives in read as blob tensors.

A model file is one safetensors file: the model's state_dict and, as metadata,

    format     "atome-model-1"
    family     the model's family in atome_core.models' registry (routed, vanilla, modern, atto)
    config     the family's config dataclass as JSON (dataclasses.asdict)
    tokenizer  "" or {"kind": "bytes"}: bytes; {"kind": "chars", "vocab": ...}: atto's
               characters; else a byte-level BPE (the `tokenizers` library's JSON)
    info       JSON the trainer keeps beside the weights (scores, corpus); may be absent

Every trainer writes one (`atome train` and recipe.train_cell(out=...), `atome atto
train`). The trainer's resumable checkpoints (atome_core.train) keep their own format but
record family and config too, so `read_model_file` reads them as well; a safetensors
state_dict without metadata reads with neither (the command line's flags fill them in).

`load_model` builds the model. `load_routed_tensors` reads any file a routed model lives
in (model files, checkpoints, ATMB and ATOME01/02 blobs, the kit's .pt through
formats.published) as (RoutedBlobConfig, tensors): what `atome export`, `atome generate`
and `atome qemu` start from.
"""
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from ..files import write_atomic
from .atmb import MAGIC, read_blob, write_blob
from .errors import ConfigMismatchError, LegacySizeError
from .legacy import ATOME01_MAGIC, LEGACY_CODECS, legacy_config, read_legacy
from .routed_shape import (
    PRESETS,
    RoutedBlobConfig,
    as_config,
    blob_config,
    config_from_state_dict,
    tensors_from_state_dict,
)

FORMAT = "atome-model-1"
TRAIN_CHECKPOINT_FORMAT = "atome-train-checkpoint-1"   # atome_core.train's resumable checkpoints


@dataclass
class ModelFile:
    """What a model file holds; family and config are None where the file records none."""
    family: str | None
    config: object | None           # the family's config dataclass
    state_dict: dict                # name -> torch tensor
    tokenizer: object | None        # None: the file records none
    info: dict
    kind: str                       # what the file was, in words


# -- configs and tokenizers as JSON ---------------------------------------------------------

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


def tokenizer_json(tokenizer) -> str:
    from ..models.atto import AttoVocab
    if tokenizer is None:
        return ""
    if isinstance(tokenizer, AttoVocab):
        return json.dumps({"kind": "chars", "vocab": tokenizer.to_dict()})
    return tokenizer.to_json()


def tokenizer_from_json(text: str):
    from ..data.tokenizer import BPETokenizer, ByteTokenizer
    if not text:
        return ByteTokenizer()
    kind = json.loads(text).get("kind")
    if kind == "bytes":
        return ByteTokenizer()
    if kind == "chars":
        from ..models.atto import AttoVocab
        return AttoVocab.from_dict(json.loads(text)["vocab"])
    return BPETokenizer.from_json(text)


# -- the contract -----------------------------------------------------------------------------

def save_model(model, path, tokenizer=None, info: dict | None = None) -> Path:
    """Write `model` (a family of atome_core.models) as a model file, atomically."""
    from safetensors.torch import save

    from ..models import REGISTRY, family_of
    family = family_of(model)
    if family is None:
        raise ValueError(f"{type(model).__name__} is not one of the saveable families {list(REGISTRY)}")
    meta = {"format": FORMAT, "family": family, "config": json.dumps(dataclasses.asdict(model.cfg)),
            "tokenizer": tokenizer_json(tokenizer), "info": json.dumps(info or {})}
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    return write_atomic(Path(path), canonical_header(save(tensors, metadata=meta)))


def canonical_header(data: bytes) -> bytes:
    """A safetensors file with its JSON header's keys sorted: the library writes its metadata
    in an arbitrary order, so the same model would give other bytes (and another sha256) on
    every save. Same length (the header is padded with spaces, as the format allows)."""
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    text = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    if len(text) > n:
        raise ValueError("the sorted safetensors header is longer than the original")
    return data[:8] + text + b" " * (n - len(text)) + data[8 + n:]


def read_model_file(path) -> ModelFile:
    """A model file, a trainer's checkpoint or a bare safetensors state_dict, unbuilt."""
    from ..files import SafetensorsReadError, read_safetensors
    from ..models import family as family_classes
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such model file")
    try:
        meta, tensors = read_safetensors(path)
    except SafetensorsReadError as e:
        raise ValueError(f"{path}: not a safetensors model file ({e})") from None

    def config_of(family, config):
        if family is None or config is None:
            return None
        return config_from_dict(family_classes(family)[0], config)

    if meta.get("format") == FORMAT:
        family = meta.get("family")
        family_classes(family)                      # a ValueError names an unknown family
        config = json.loads(meta["config"]) if meta.get("config") else None
        return ModelFile(family, config_of(family, config), tensors,
                         tokenizer_from_json(meta.get("tokenizer", "")), json.loads(meta.get("info") or "{}"),
                         "model file")
    if "atome" in meta:
        record = json.loads(meta["atome"])
        if record.get("format") != TRAIN_CHECKPOINT_FORMAT:
            raise ValueError(f"{path}: unknown checkpoint format {record.get('format')!r}")
        family = record.get("family")
        state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
        return ModelFile(family, config_of(family, record.get("model_config")), state, None,
                         {"step": record.get("step")}, "training checkpoint")
    if meta.get("format"):
        raise ValueError(f"{path}: not an atome model file (format {meta.get('format')!r})")
    if any(k.startswith("model.") for k in tensors):       # a trainer-style state_dict
        tensors = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    return ModelFile(None, None, tensors, None, {}, "safetensors state_dict")


def model_of(mf: ModelFile):
    """The model a ModelFile holds, in eval mode."""
    from ..models import family as family_classes
    if mf.config is None:
        raise ValueError(f"a {mf.kind} that records no model family and config is not loadable as a model")
    model = family_classes(mf.family)[1](mf.config)
    try:
        model.load_state_dict(mf.state_dict, strict=True)
    except RuntimeError as e:
        raise ValueError(f"its weights do not fit its {type(mf.config).__name__}: {e}") from None
    return model.eval()


def load_model(path):
    """(model in eval mode, tokenizer) from a model file (or a checkpoint that records its config)."""
    from ..data.tokenizer import ByteTokenizer
    mf = read_model_file(path)
    try:
        model = model_of(mf)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    if mf.tokenizer is None and getattr(mf.config, "vocab_size", None) != 256:
        raise ValueError(f"{path}: a {mf.kind} records no tokenizer, and the model is not a byte model")
    return model, ByteTokenizer() if mf.tokenizer is None else mf.tokenizer


# -- the routed model from any file it lives in -------------------------------------------------

def parse_config_arg(text: str | None):
    """--config: a preset name (PRESETS), a JSON file, or inline JSON; None stays None."""
    if text is None:
        return None
    if text in PRESETS:
        return PRESETS[text]
    source = Path(text).read_text() if Path(text).is_file() else text
    try:
        return as_config(json.loads(source))
    except json.JSONDecodeError:
        raise ValueError(f"--config {text!r} is neither a preset ({', '.join(PRESETS)}), "
                         "a JSON file nor JSON") from None


def load_routed_tensors(path, config=None, top_k: int | None = None) -> tuple[RoutedBlobConfig, dict, str]:
    """(config, tensors, what the file was) from any file a routed model lives in.

    ATMB blobs carry their config; ATOME01/02 blobs need one (given, or the preset whose
    size matches); model files and checkpoints use the config they store, the kit's .pt
    checkpoints (formats.published) theirs; FP32 shadow weights are ternarised. Only a
    file that stores no config takes it from `config` or, with `top_k` (default 4), from
    the weights' shapes; a given config or top_k that contradicts a stored one is refused.
    """
    path = Path(path)
    data = path.read_bytes()
    given = as_config(config) if config is not None else None

    def agree(stored: RoutedBlobConfig, what: str) -> RoutedBlobConfig:
        if given is not None and given != stored:
            raise ConfigMismatchError(f"{path}: the {what} stores config {stored}; the given {given} differs")
        if top_k is not None and top_k != stored.top_k:
            raise ConfigMismatchError(f"{path}: the {what} stores top_k {stored.top_k}; "
                                      f"a top_k ({top_k}) is only for files that store no config")
        return stored

    if data[:4] == MAGIC:
        blob_cfg, tensors = read_blob(data)
        return agree(blob_cfg, "blob"), tensors, "ATMB blob"
    if data[:7] in LEGACY_CODECS:
        try:
            cfg = legacy_config(data, given)
        except LegacySizeError as e:
            raise LegacySizeError(f"{path}: {e}") from None
        return cfg, read_legacy(data, cfg, data[:7]), f"{data[:7].decode()} blob"
    if path.suffix == ".pt":
        from .published import read_pt
        ck = read_pt(path)
        return (agree(blob_config(ck["config"]), "checkpoint"),
                tensors_from_state_dict(ck["state_dict"], blob_config(ck["config"])), "PyTorch checkpoint")
    mf = read_model_file(path)
    if mf.family not in (None, "routed"):
        raise ValueError(f"{path}: holds a {mf.family} model; only the routed model has a blob")
    if mf.config is not None:
        cfg = agree(blob_config(mf.config), mf.kind)
    else:
        cfg = given or config_from_state_dict(mf.state_dict, top_k=4 if top_k is None else top_k)
    return cfg, tensors_from_state_dict(mf.state_dict, cfg), mf.kind


def blob_of(path, config=None, top_k: int | None = None, codec: str = "dense") -> tuple[bytes, str]:
    """(blob bytes, what the file was): ATMB and ATOME01 blobs as they are, any other file
    a routed model lives in written as ATMB with `codec`."""
    data = Path(path).read_bytes()
    if data[:4] == MAGIC or data[:7] == ATOME01_MAGIC:
        return data, "ATMB blob" if data[:4] == MAGIC else "ATOME01 blob"
    cfg, tensors, kind = load_routed_tensors(path, config, top_k)
    return write_blob(cfg, tensors, codec=codec), kind
