"""atto models as dependency-free JSON, and a float64 reference that the browser demo matches.

The file (schema version 1):

    {"format": "atome-atto", "schema_version": 1, "name": "atto-1024",
     "vocab":   {"symbols": "<63 characters, id order>", "other_id": 63, "other_display": "\\ufffd"},
     "config":  {AttoConfig fields},
     "num_params": 1024,
     "tensors": {"wte": {"shape": [64, 8], "dtype": "float32", "encoding": "base64-le", "data": "..."}, ...},
     "info":    {free-form: losses, training recipe}}

Tensors are row-major little-endian float32, base64: decoding gives the exact float32
weights, so Python -> JSON -> Python reproduces the logits bit for bit. Layouts:
wte (V, E); full_maps (n_full, E, H), index 0 the current character; lowrank_in
(n_full, E, r) and lowrank_out (r, H); hidden_bias (H); layer2 (H, H2) and layer2_bias
(H2); proj (H or H2, E); diag_gains
(n_diag, E), index 0 the position n_full back; output_bias (V).

`reference_next_logits` evaluates a model from its JSON in float64 numpy with one fixed
order of operations, the same order `book/_static/atto/atto.js` uses, so that the page's
greedy continuation equals the reference byte for byte:
- every product and sum is one IEEE-754 double operation, in the same order in both
  (numpy is vectorised only over the output index, never over a reduction);
- relu is `h > 0 ? h : 0` in both; argmax takes the first maximum in both;
- tanh is the one function whose last bit may differ between libm and V8: for models
  with tanh the reference reports the smallest gap between the best and second-best
  logit over a continuation, and the browser test requires it to be far larger than
  any such rounding difference, so the argmax cannot differ.
"""
import base64
import json
from dataclasses import asdict, fields
from pathlib import Path

import numpy as np
import torch

from ..models.atto import AttoConfig, AttoModel, AttoVocab, count_params

FORMAT = "atome-atto"
SCHEMA_VERSION = 1


class AttoFormatError(ValueError):
    """A JSON file that is not a valid atto model (the message says what is wrong)."""


def tensor_shapes(cfg: AttoConfig) -> dict:
    """Name -> shape of every tensor the config implies (the model's parameters)."""
    V, E, H, r = cfg.vocab_size, cfg.n_embd, cfg.hidden, cfg.rank
    shapes = {"wte": (V, E)}
    if cfg.n_full:
        if r == 0:
            shapes["full_maps"] = (cfg.n_full, E, H)
        else:
            shapes["lowrank_in"] = (cfg.n_full, E, r)
            shapes["lowrank_out"] = (r, H)
        if cfg.hidden_bias:
            shapes["hidden_bias"] = (H,)
        if cfg.n_hidden2:
            shapes["layer2"] = (H, cfg.n_hidden2)
            if cfg.hidden_bias:
                shapes["layer2_bias"] = (cfg.n_hidden2,)
        if cfg.last_width != E:
            shapes["proj"] = (cfg.last_width, E)
    if cfg.n_diag:
        shapes["diag_gains"] = (cfg.n_diag, E)
    if cfg.output_bias:
        shapes["output_bias"] = (V,)
    return shapes


def encode_tensor(t: torch.Tensor) -> dict:
    a = t.detach().cpu().contiguous().to(torch.float32).numpy().astype("<f4")
    return {"shape": list(a.shape), "dtype": "float32", "encoding": "base64-le",
            "data": base64.b64encode(a.tobytes()).decode("ascii")}


def decode_tensor(d, name: str) -> np.ndarray:
    if not isinstance(d, dict) or d.get("dtype") != "float32" or d.get("encoding") != "base64-le":
        raise AttoFormatError(f"tensor {name!r}: want dtype float32, encoding base64-le")
    shape = tuple(d.get("shape") or ())
    try:
        raw = base64.b64decode(d["data"], validate=True)
    except (KeyError, ValueError, TypeError) as e:
        raise AttoFormatError(f"tensor {name!r}: bad base64 data ({e})") from None
    count = int(np.prod(shape)) if shape else 1
    if len(raw) != 4 * count:
        raise AttoFormatError(f"tensor {name!r}: {len(raw)} bytes for shape {list(shape)} "
                              f"(want {4 * count})")
    return np.frombuffer(raw, dtype="<f4").reshape(shape).copy()


def to_json_dict(model: AttoModel, vocab: AttoVocab, name: str, info: dict | None = None) -> dict:
    cfg = model.cfg
    if vocab.size != cfg.vocab_size:
        raise ValueError(f"vocabulary has {vocab.size} symbols, the model {cfg.vocab_size}")
    params = dict(model.named_parameters())
    return {
        "format": FORMAT, "schema_version": SCHEMA_VERSION, "name": name,
        "vocab": vocab.to_dict(), "config": asdict(cfg), "num_params": count_params(cfg),
        "tensors": {k: encode_tensor(params[k]) for k in tensor_shapes(cfg)},
        "info": info or {},
    }


def dumps(model: AttoModel, vocab: AttoVocab, name: str, info: dict | None = None) -> str:
    # compact separators: the file size is one of the chapter's numbers
    return json.dumps(to_json_dict(model, vocab, name, info), separators=(",", ":"), ensure_ascii=True)


def save(path, model: AttoModel, vocab: AttoVocab, name: str, info: dict | None = None) -> Path:
    from ..files import write_atomic
    path = Path(path)
    write_atomic(path, dumps(model, vocab, name, info).encode("ascii"))
    return path


def parse(d) -> tuple[AttoConfig, AttoVocab, dict]:
    """Validate a loaded JSON dict -> (config, vocab, {name: float32 array})."""
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        raise AttoFormatError(f"not an atto model: 'format' must be {FORMAT!r}")
    if d.get("schema_version") != SCHEMA_VERSION:
        raise AttoFormatError(f"unsupported schema_version {d.get('schema_version')!r} "
                              f"(this reader knows {SCHEMA_VERSION})")
    known = {f.name for f in fields(AttoConfig)}
    cfg_d = d.get("config")
    if not isinstance(cfg_d, dict) or set(cfg_d) - known:
        raise AttoFormatError(f"config must be a dict with keys from {sorted(known)}")
    try:
        cfg = AttoConfig(**cfg_d)
        vocab = AttoVocab.from_dict(d.get("vocab"))
    except (TypeError, ValueError) as e:
        raise AttoFormatError(f"bad config or vocabulary: {e}") from None
    if vocab.size != cfg.vocab_size:
        raise AttoFormatError(f"vocabulary has {vocab.size} symbols, config says {cfg.vocab_size}")
    if d.get("num_params") != count_params(cfg):
        raise AttoFormatError(f"num_params {d.get('num_params')} != {count_params(cfg)} implied by config")
    tensors_d = d.get("tensors")
    shapes = tensor_shapes(cfg)
    if not isinstance(tensors_d, dict) or set(tensors_d) != set(shapes):
        got = sorted(tensors_d) if isinstance(tensors_d, dict) else tensors_d
        raise AttoFormatError(f"tensors {got} do not match the config's {sorted(shapes)}")
    tensors = {}
    for name, shape in shapes.items():
        a = decode_tensor(tensors_d[name], name)
        if a.shape != shape:
            raise AttoFormatError(f"tensor {name!r} has shape {list(a.shape)}, config implies {list(shape)}")
        tensors[name] = a
    return cfg, vocab, tensors


def from_json_dict(d) -> tuple[AttoModel, AttoVocab]:
    cfg, vocab, tensors = parse(d)
    model = AttoModel(cfg)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in tensors.items()}, strict=True)
    return model, vocab


def load(path) -> tuple[AttoModel, AttoVocab]:
    path = Path(path)
    try:
        d = json.loads(path.read_text(encoding="ascii"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise AttoFormatError(f"{path}: cannot read JSON ({e})") from None
    try:
        return from_json_dict(d)
    except AttoFormatError as e:
        raise AttoFormatError(f"{path}: {e}") from None


# -----------------------------------------------------------------------------
# the float64 reference (what atto.js computes, operation for operation)

class ReferenceModel:
    """A JSON model's weights as float64 arrays, evaluated in atto.js's order."""

    def __init__(self, d):
        self.cfg, self.vocab, tensors = parse(d)
        self.t = {k: v.astype(np.float64) for k, v in tensors.items()}  # float32 -> float64 is exact

    def next_logits(self, ids) -> np.ndarray:
        """float64 logits for the character after ids[-1] (ids: the whole history)."""
        cfg, t = self.cfg, self.t
        wte = t["wte"]
        E, H, V = cfg.n_embd, cfg.hidden, cfg.vocab_size
        last = len(ids) - 1

        def emb(k):  # embedding of the character k positions back, None before the text
            return wte[ids[last - k]] if last - k >= 0 else None

        z = np.zeros(E)
        if cfg.n_full:
            if cfg.rank == 0:
                h = np.zeros(H)
                for k in range(cfg.n_full):
                    x = emb(k)
                    if x is not None:
                        for i in range(E):
                            h += x[i] * t["full_maps"][k, i]
            else:
                u = np.zeros(cfg.rank)
                for k in range(cfg.n_full):
                    x = emb(k)
                    if x is not None:
                        for i in range(E):
                            u += x[i] * t["lowrank_in"][k, i]
                h = np.zeros(H)
                for j in range(cfg.rank):
                    h += u[j] * t["lowrank_out"][j]
            if cfg.hidden_bias:
                h += t["hidden_bias"]
            h = self.activation(h)
            if cfg.n_hidden2:
                h2 = np.zeros(cfg.n_hidden2)
                for o in range(H):
                    h2 += h[o] * t["layer2"][o]
                if cfg.hidden_bias:
                    h2 += t["layer2_bias"]
                h = self.activation(h2)
            if "proj" in t:
                for o in range(cfg.last_width):
                    z += h[o] * t["proj"][o]
            else:
                z = h.copy()
        for k in range(cfg.n_full, cfg.n_full + cfg.n_diag):
            x = emb(k)
            if x is not None:
                z += t["diag_gains"][k - cfg.n_full] * x
        if cfg.skip:
            z += emb(0)
        logits = np.zeros(V)
        for e in range(E):
            logits += z[e] * wte[:, e]
        if cfg.output_bias:
            logits += t["output_bias"]
        return logits

    def activation(self, h: np.ndarray) -> np.ndarray:
        if self.cfg.nonlinearity == "relu":
            return np.where(h > 0, h, 0.0)
        if self.cfg.nonlinearity == "tanh":
            return np.tanh(h)
        return h

    def greedy(self, prompt: str, n_new: int) -> tuple[str, float]:
        """(continuation text, smallest gap between the best and second-best logit)."""
        ids = [int(i) for i in self.vocab.encode(prompt)]
        if not ids:
            raise ValueError("the prompt must have at least one character")
        out, margin = [], float("inf")
        for _ in range(n_new):
            logits = self.next_logits(ids)
            best = int(np.argmax(logits))  # first maximum, as atto.js
            others = np.delete(logits, best)
            margin = min(margin, float(logits[best] - others.max()))
            ids.append(best)
            out.append(best)
        return self.vocab.decode(out), margin


# -----------------------------------------------------------------------------
# the demo's folder: models, a manifest, and <script> fallbacks for file:// pages

MANIFEST_FORMAT = "atome-atto-manifest"


def jsonp(file_name: str, text: str) -> str:
    """The same JSON as a script that hands it to atto.js (pages opened from file:// cannot fetch)."""
    return f"attoJSONP({json.dumps(file_name)}, {text});\n"


def write_web_folder(folder, models: list[dict]) -> dict:
    """Write each model's JSON (+ .js fallback) and models.json (+ .js) into `folder`.

    `models`: dicts with name, model, vocab, info (info may hold val_loss_nats). Returns
    the manifest; each entry's `bytes` is the size of the model's JSON file.
    """
    from ..files import write_atomic
    folder = Path(folder)
    entries = []
    for m in models:
        text = dumps(m["model"], m["vocab"], m["name"], m.get("info"))
        file_name = f"{m['name']}.json"
        write_atomic(folder / file_name, text.encode("ascii"))
        write_atomic(folder / f"{file_name}.js", jsonp(file_name, text).encode("ascii"))
        cfg = m["model"].cfg
        entry = {"name": m["name"], "file": file_name, "num_params": count_params(cfg),
                 "context": cfg.context, "describe": cfg.describe(), "bytes": len(text)}
        if m.get("info", {}).get("val_loss_nats") is not None:
            entry["val_loss_nats"] = float(m["info"]["val_loss_nats"])
        entries.append(entry)
    manifest = {"format": MANIFEST_FORMAT, "schema_version": SCHEMA_VERSION, "models": entries}
    text = json.dumps(manifest, indent=1, ensure_ascii=True)
    write_atomic(folder / "models.json", text.encode("ascii"))
    write_atomic(folder / "models.json.js", jsonp("models.json", text).encode("ascii"))
    return manifest

