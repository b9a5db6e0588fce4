"""Chapter 3's measurements: what each codec costs per tensor, where a blob's bytes go,
and what a damaged blob does to each reader.

The models measured (`published_blob`, `models_to_measure`; the trained 60K model is
chapter 4's, read with `chapter4_routed`, which chapter 7 uses too), per-tensor and per-model
codec costs (`tensor_report`, `weighted_summary`, `entropy_extremes`,
`rans_saving_by_kind`), whole files and their bytes by role (`file_variants`,
`blob_breakdown`, `legacy_breakdown`, `role_totals`, `sixty_k_file`,
`float16_rounding`), and the reader against damage (`damage_table` and `fuzz_reader`,
both drawing their damaged files from atome_core.engine.conformance, the one catalogue),
and the published file's round trips (`published_roundtrips`).
"""

import hashlib
import time
from pathlib import Path

import numpy as np

from ..engine.conformance import atmb_damages, header_field_at, mutated_copies
from ..formats import packing
from ..formats.atmb import (
    CRC_BYTES,
    ENTRY,
    HEADER,
    SECTIONS,
    SECTIONS_BY_ID,
    _parse_header,
    _parse_table,
    read_blob,
)
from ..formats.errors import BlobError
from ..formats.inspect import _trit_stats
from ..formats.legacy import ATOME01_MAGIC, legacy_item_sizes, legacy_layout
from ..formats.published import published_path
from ..formats.routed_shape import as_config, trit_weight_names
from ..paths import shared_interop_dir

PUBLISHED_BLOB = "atome_944k.bin"

# -- measurements for the chapter --------------------------------------------------


def tensor_report(tensors: dict, config, codecs=None) -> list[dict]:
    """Per ternary tensor: trits, zero fraction, entropy and the bits/trit of each codec
    applied to that tensor alone (stream bytes, scale excluded)."""
    from ..progress import progress
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


# -- the group code and the codecs -------------------------------------------------------------


def group_size_rows(max_k: int) -> list[list]:
    """[k, bits b(k), bits per trit, % above log2(3)] for each record group size k <= max_k
    (a group size that costs less per trit than every smaller one)."""
    rows = []
    for k in packing.record_group_sizes(max_k):
        rate = packing.group_bits_per_trit(k)
        rows.append([k, packing.group_bits(k), rate, 100 * (rate / packing.LOG2_3 - 1)])
    return rows


def codec_rows(trits) -> list[list]:
    """[codec, bits per trit on `trits`, random access, streamable, what it is] per codec."""
    return [[name, packing.bits_per_trit(codec, trits), "yes" if codec.random_access else "no (sequential)",
             "yes", codec.description] for name, codec in packing.CODECS.items()]


# -- the models measured -------------------------------------------------------------------------


def published_blob(interop_dir=None) -> bytes | None:
    """The kit's published ATOME01 file (sha256 checked), or None when it is absent."""
    base = Path(interop_dir) if interop_dir else shared_interop_dir()
    if base is None or not (base / PUBLISHED_BLOB).is_file():
        return None
    return published_path(PUBLISHED_BLOB, base / PUBLISHED_BLOB).read_bytes()


def chapter4_routed_config(act_bits: int = 32, shape: dict | None = None):
    """The routed model chapter4_routed gives: ternary weights, `act_bits`-bit activations, `shape`."""
    from ..models.routed import RoutedConfig
    from ..quant import QuantConfig
    return RoutedConfig(quant=QuantConfig(weights="ternary", act_bits=act_bits), **(shape or {}))


def chapter4_routed_job(recipe: dict, corpus_name: str, config, train_tokens, val_tokens):
    """The run chapter4_routed trains when chapter 4 published no model of `config`: chapter 4's
    steps (`recipe`: its parameters) at KIT_LR, seed 0, on `corpus_name`'s split."""
    from ..models.routed import RoutedLM
    from ..recipe import KIT_LR, book_config
    from ..train import TrainJob
    return TrainJob(name=f"{corpus_name}|routed|0", model_class=RoutedLM, model_config=config,
                    train_tokens=train_tokens, val_tokens=val_tokens,
                    cfg=book_config(recipe["steps"], KIT_LR, seed=0), init_seed=0)


def chapter4_routed(path, recipe: dict, corpus: str = "main", act_bits: int = 32,
                    shape: dict | None = None) -> tuple:
    """(routed 60K model in eval mode, info): the model file at `path` (one that chapter 4
    published in this build; None when it has not) when it has the config `shape` asks for,
    else the same recipe trained here: chapter 4's `recipe` (its parameters at this profile:
    steps, max_bytes, tinystories_path), recipe.book_config at KIT_LR, seed 0, ternary weights
    and `act_bits`-bit activations, on chapter 4's split of `corpus` ("main": TinyStories when
    present, else Shakespeare). info: the file's info (corpus, steps, lr, seed, val_bpb, ...)
    and "source": "chapter 4" or "trained here"."""
    import math

    from ..formats.model_file import load_model, read_model_file
    from ..models.routed import RoutedLM
    from ..train import load_state, run_job
    from . import ab_60k

    config = chapter4_routed_config(act_bits, shape)
    if path is not None:
        model, _ = load_model(path)
        if model.cfg == config:
            return model, {**read_model_file(path).info, "source": "chapter 4"}
    corpora, main = ab_60k.load_corpora(recipe.get("tinystories_path"))
    name = main if corpus == "main" else corpus
    train_tokens, val_tokens = ab_60k.corpus_splits({name: corpora[name]}, recipe["max_bytes"])[name]
    job = chapter4_routed_job(recipe, name, config, train_tokens, val_tokens)
    run = run_job(job)
    model = load_state(RoutedLM(config), run.state_dict).eval()
    info = {"corpus": name, "steps": job.cfg.steps, "lr": job.cfg.lr, "seed": 0, "val_nats_per_byte": run.final_val_loss,
            "val_bpb": run.final_val_loss / math.log(2), "act_bits": act_bits, "source": "trained here",
            "train_seconds": run.train_seconds}
    return model, info


def models_to_measure(published: bytes | None, seed: int, trained=None) -> dict:
    """{label: (config, tensors)}: the published 944K model when given, the 60K routed model
    at initialisation (torch seed `seed`) and, when given, `trained` (a trained 60K routed
    model, from chapter4_routed)."""
    import torch

    from ..formats import PRESETS, read_atome01, tensors_from_state_dict
    from ..models.routed import RoutedConfig, RoutedLM

    models = {}
    if published is not None:
        models["944K published"] = (PRESETS["944k"], read_atome01(published, "944k"))
    torch.manual_seed(seed)
    models["60K at init"] = ("60k", tensors_from_state_dict(RoutedLM(RoutedConfig()).state_dict(), "60k"))
    if trained is not None:
        models["60K trained"] = ("60k", tensors_from_state_dict(trained.state_dict(), "60k"))
    return models


def trained_row(info: dict) -> list:
    """The trained 60K model in one table row: where it comes from, corpus, steps, learning
    rate, validation bits per byte."""
    return [info["source"], info["corpus"], info["steps"], info["lr"], info["val_bpb"]]


def trained_source_sentence(info: dict) -> str:
    """Where the trained model of a chapter4_routed info came from, in words."""
    if info["source"] == "chapter 4":
        return "It is the file chapter 4 published in this build, read from its results."
    return ("Chapter 4 had not published it in this build (this chapter ran before it, or alone), "
            "so this chapter trained the same recipe itself.")


# -- codec costs over a model ----------------------------------------------------------------------

WORST = "worst tensor rans / H (>= 4096 trits)"


def weighted_summary(rows: list[dict]) -> dict:
    """One model's tensor_report rows, weighted by trits: the zero fraction, the entropy H,
    each codec's bits per trit, rans / H over the model and for its worst tensor of at
    least 4,096 trits (None when it has none)."""
    n = np.array([r["n_trits"] for r in rows], dtype=np.float64)
    h = np.array([r["entropy_bits"] for r in rows])
    out = {"trits": int(n.sum()), "p0": (n * [r["zero_fraction"] for r in rows]).sum() / n.sum(),
           "H (bits/trit)": (n * h).sum() / n.sum()}
    for c in packing.CODECS:
        out[c] = (n * [r[f"bits_{c}"] for r in rows]).sum() / n.sum()
    ratio = np.array([r["bits_rans"] / r["entropy_bits"] for r in rows])
    big = n >= 4096
    out["rans / H"] = (n * [r["bits_rans"] for r in rows]).sum() / (n * h).sum()
    out[WORST] = float(ratio[big].max()) if big.any() else None
    return out


def summary_metrics(summary: dict) -> dict:
    """weighted_summary's numbers as the chapter's table prints them (p0 to 3 decimals,
    the rest to 4; trits whole), as metrics.json has always held them."""
    return {k: float(v) if k == "trits" else round(float(v), 3 if k == "p0" else 4)
            for k, v in summary.items() if v is not None}


def entropy_extremes(rows: list[dict], dense_rate: float) -> dict:
    """The lowest-entropy tensor, the entropy code over the whole model (bits per trit,
    x H, % against `dense_rate`: negative when it is smaller) and its worst tensor."""
    n = np.array([r["n_trits"] for r in rows], dtype=np.float64)
    low = min(rows, key=lambda r: r["entropy_bits"])
    worst = max(rows, key=lambda r: r["bits_rans"] / r["entropy_bits"])
    rans_total = (n * [r["bits_rans"] for r in rows]).sum()
    h_total = (n * [r["entropy_bits"] for r in rows]).sum()
    return {"lowest": low["name"], "lowest p0": low["zero_fraction"], "lowest H": low["entropy_bits"],
            "rans bits/trit": rans_total / n.sum(), "rans / H": rans_total / h_total,
            "rans vs dense (%)": 100 * (rans_total / n.sum() / dense_rate - 1),
            "worst": worst["name"], "worst trits": worst["n_trits"],
            "worst rans / H": worst["bits_rans"] / worst["entropy_bits"]}


def tensor_kind(name: str) -> str:
    """A tensor's name without its layer: blocks.3.sparse.Wq.weight -> sparse.Wq.weight."""
    return name if not name.startswith("blocks.") else name.split(".", 2)[2]


def rans_saving_by_kind(rows: list[dict]) -> dict:
    """What the entropy code saves over the dense code: bytes by kind of tensor (largest
    first), the total, its % of the dense trit bytes, and how far below log2(3) the
    attention matrices Wq and Wk come at most (bits per trit)."""
    qk = [r for r in rows if ".sparse.Wq." in r["name"] or ".sparse.Wk." in r["name"]]
    saved = {}
    for r in rows:
        kind = tensor_kind(r["name"])
        saved[kind] = saved.get(kind, 0.0) + r["n_trits"] * (r["bits_dense"] - r["bits_rans"]) / 8
    total = sum(saved.values())
    return {"by_kind": sorted(saved.items(), key=lambda kv: -kv[1]), "total": total,
            "percent": 100 * total * 8 / sum(r["n_trits"] * r["bits_dense"] for r in rows),
            "qk_gap": max((packing.LOG2_3 - r["entropy_bits"] for r in qk), default=None)}


# -- whole files -------------------------------------------------------------------------------------

ROLES = ("trits", "floats", "scales", "header, table, padding, CRC")


def file_variants(config, tensors: dict) -> dict:
    """{file: bytes}: the same weights as ATOME01, ATOME02 and four ATMB files."""
    from ..formats import legacy_size, write_atome01, write_atome02, write_blob
    out = {"ATOME01": write_atome01(tensors, config), "ATOME02": write_atome02(tensors, config),
           "ATMB 2bit f32": write_blob(config, tensors, codec="2bit"),
           "ATMB dense f32": write_blob(config, tensors, codec="dense"),
           "ATMB dense f16": write_blob(config, tensors, codec="dense", float_dtype="float16"),
           "ATMB auto f16": write_blob(config, tensors, codec="auto", float_dtype="float16")}
    assert len(out["ATOME01"]) == legacy_size(config)
    return out


def file_breakdown(name: str, data: bytes, config) -> dict:
    """blob_breakdown for an ATMB file, legacy_breakdown for ATOME01/02 (by its magic)."""
    return blob_breakdown(data) if name.startswith("ATMB") else legacy_breakdown(config, data[:7])


def role_of(key: str) -> str:
    """The role (one of ROLES) of a breakdown entry."""
    if key.startswith("trits"):
        return "trits"
    if key.startswith("floats"):
        return "floats"
    return "scales" if key == "scales" else "header, table, padding, CRC"


def role_totals(breakdown: dict) -> dict:
    """{role: bytes} over ROLES."""
    return {r: sum(v for k, v in breakdown.items() if role_of(k) == r) for r in ROLES}


def sixty_k_file(files: dict, breakdown: dict) -> dict:
    """The 60K model's files (`files` as from file_variants) and where the bytes of its
    dense float16 ATMB file go (`breakdown` of that file)."""
    from ..formats import expected_shapes
    names = set(trit_weight_names("60k"))
    n = sum(int(np.prod(s)) for k, s in expected_shapes("60k").items() if k in names)
    trit_bytes = sum(v for k, v in breakdown.items() if k.startswith("trits"))
    return {"trits": n, "trit_bytes": trit_bytes, "trit_bits_per_trit": 8 * trit_bytes / n,
            "float_bytes": sum(v for k, v in breakdown.items() if k.startswith("floats")),
            "scale_bytes": breakdown["scales"],
            "overhead_bytes": breakdown["header+table"] + breakdown["padding"] + breakdown["crc"],
            **{name: len(data) for name, data in files.items()}}


def float16_rounding(values) -> dict:
    """What rounding float32 values to float16 does: the largest absolute change, the
    largest relative change among values in float16's normal range, and the counts."""
    vec = np.asarray(values, np.float32)
    err = np.abs(vec.astype(np.float16).astype(np.float32) - vec)
    normal = np.abs(vec) >= np.finfo(np.float16).tiny   # below it float16 loses relative precision
    return {"values": int(vec.size), "max_abs": float(err.max()),
            "max_rel": float((err[normal] / np.abs(vec[normal])).max()),
            "normal": int(normal.sum()), "subnormal": int((~normal).sum())}


# -- the reader against damage ---------------------------------------------------------------------


def damage_table(blob: bytes, width: int = 90) -> list[list]:
    """[damage, the error expected, the error raised ("accepted!" if none), its message]
    for every damage of `blob` in the catalogue (atome_core.engine.conformance)."""
    rows = []
    for what, expected, damaged in atmb_damages(blob):
        try:
            read_blob(damaged)
            got, message = "accepted!", ""
        except BlobError as e:
            got, message = type(e).__name__, str(e)
        rows.append([what, expected.__name__, got, message[:width] + ("..." if len(message) > width else "")])
    return rows


def fuzz_reader(blob: bytes, n: int, seed: int) -> dict:
    """Feed the reader n randomly damaged copies of `blob` (conformance.mutated_copies):
    {"outcomes": {error name or "read: ...": files}, largest first, "changed_fields": the
    header fields in which files that still read differ, "ms_per_file"}. Anything but a
    BlobError propagates."""
    outcomes, changed, t0 = {}, set(), time.perf_counter()
    for b in mutated_copies(blob, n, seed):
        try:
            read_blob(b)
            name = "read: bytes unchanged" if b == blob else "read: a different valid file"
            if b != blob:
                changed.update(header_field_at(j) for j in range(len(b) - 4) if b[j] != blob[j])
        except BlobError as e:
            name = type(e).__name__
        outcomes[name] = outcomes.get(name, 0) + 1
    ms = 1000 * (time.perf_counter() - t0) / max(n, 1)
    return {"outcomes": dict(sorted(outcomes.items(), key=lambda kv: -kv[1])),
            "changed_fields": sorted(changed), "ms_per_file": ms}


def published_roundtrips(published: bytes, config, tensors: dict) -> list[list]:
    """[path, sha256 of the result (16 hex digits), identical to `published`] for writing
    the ATOME01 file back directly and through ATMB in each codec."""
    from ..formats import atome01_to_blob, blob_to_atome01, write_atome01
    results = {"read ATOME01, write ATOME01": write_atome01(tensors, config)}
    for codec in packing.CODECS:
        results[f"ATOME01 -> ATMB ({codec}) -> ATOME01"] = blob_to_atome01(
            atome01_to_blob(published, config, codec=codec))
    return [[path, hashlib.sha256(b).hexdigest()[:16] + "...", b == published] for path, b in results.items()]


# -- throughput ----------------------------------------------------------------------------------------


def bench_trits(tensors: dict | None, n: int, seed: int) -> np.ndarray:
    """n trits drawn with the overall distribution of the 944K model's `tensors`
    (uniform when None)."""
    if tensors is not None:
        counts = np.sum([packing.trit_counts(tensors[k]) for k in trit_weight_names("944k")], axis=0)
        p = counts / counts.sum()
    else:
        p = np.array([1, 1, 1]) / 3
    return (np.random.default_rng(seed).choice(3, size=n, p=p) - 1).astype(np.int8)


def throughput_rows(speed: dict) -> list[list]:
    """[codec, bits/trit, encode and decode (Mtrit/s), each / the 2-bit codec's] from
    packing.measure_throughput."""
    base = speed["2bit"]
    return [[c, v["bits_per_trit"], v["encode"] / 1e6, v["decode"] / 1e6, v["encode"] / base["encode"],
             v["decode"] / base["decode"]] for c, v in speed.items()]


def atome01_verdict(data: bytes, config) -> str:
    """What the ATOME01 reader says of `data` read with `config`: "accepted", or the
    error's class and message."""
    from ..formats import read_atome01
    try:
        read_atome01(data, config)
    except BlobError as e:
        return f"{type(e).__name__}: {e}"
    return "accepted"
