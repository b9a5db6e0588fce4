"""Chapter 9's analysis: one frontier of quality per deployed byte over every family.

- cells: each trained (corpus, family, size) scored on the validation windows, median and
  range over seeds, with its deployed bytes (atome_core.evaluate.deployed_bytes: the real
  file of its format) and its inference RAM; the FP32 families again after post-training
  int8 / int4 (atome_core.formats.ptq, no retraining).
- `pareto_front`: the cells no other cell beats in both bytes and bits per byte.
- `ram_bytes`, the inference RAM at a 64-token window. The weights stay in flash (read in
  place); RAM holds what a decode step keeps and computes, in float32 (4 bytes a number):

      modern   KV cache  L * 2 * T * n_kv * d_head
               + activations 3 d + n_heads d_head + n_heads T + 2 d_ff   (residual, normed
                 input, block output; queries; scores over the window; SwiGLU gate and up)
               + logits V
      vanilla  KV cache  L * 2 * T * d  + activations 4 d + n_heads T + d_ff  + logits V
      routed   the C engine's own state + scratch at window T (atome_state_bytes,
               atome_scratch_bytes, f32 path) + logits V; where the engine cannot be built,
               per layer the conv window (k - 1) d, the recurrent state d and the sparse
               head's keys and values 2 T d_head, + activations 5 d + d_head + T + 3, + logits V
      atto     the context's embeddings context * E + hidden layers H (+ H2) + E + logits V

  A ternary model computes in float32 like the FP32 one (its trits are read from flash), so
  the same shape has the same RAM; so does a post-training int8 / int4 copy.
- `best_by_budget`, `writes_share` (the share of generated words found in the training
  text's vocabulary), the three targets (`target_atome01`, `target_match_fp32`,
  `target_bz2`) and `double_width` (ternary at doubled width against FP32).
"""
import math
import re

import numpy as np

from ..evaluate import deployed_bytes, median_and_range, score
from ..models import family_of
from .frontier_runs import FP32_ARMS, LABELS, LN2, WINDOW, parse_name

KB = 1024
ATOME01_60K_BYTES = 20_575       # the kit's ATOME01 blob of the 60K routed model
ATOME01_MARGIN = 0.15            # the target we set: 15 % below the routed 60K in bits per byte
MATCH_FP32_BYTES = 30 * KB       # the target we set: the modern FP32 60K's quality in <= 30 KB
SHAKESPEARE_BYTES = 64 * KB      # the target we set: beat bz2 -9 on Shakespeare in <= 64 KB
FLOAT = 4
COLORS = {"routed": "C0", "vanilla": "C1", "modern": "C2", "modern-ternary": "C3", "modern-ternary-x2": "C4",
          "atto": "C5"}


def bpb_of(cell: dict) -> float:
    b = cell["bpb"]
    return b["median"] if isinstance(b, dict) else float(b)


# -- RAM at a 64-token window --------------------------------------------------------------------

def ram_formula(family_name: str, cfg, window: int = WINDOW) -> int:
    """Bytes of RAM of one decode step at `window` tokens (module docstring), float32."""
    T = window
    if family_name == "modern":
        d, dh = cfg.d_model, cfg.d_model // cfg.n_heads
        kv = cfg.n_layers * 2 * T * cfg.n_kv_heads * dh
        act = 3 * d + cfg.n_heads * dh + cfg.n_heads * T + 2 * cfg.d_ff
        return FLOAT * (kv + act + cfg.vocab_size)
    if family_name == "vanilla":
        d = cfg.d_model
        return FLOAT * (cfg.n_layers * 2 * T * d + 4 * d + cfg.n_heads * T + cfg.d_ff + cfg.vocab_size)
    if family_name == "routed":
        d, dh = cfg.d_model, cfg.d_head
        state = cfg.n_layers * ((cfg.kernel_size - 1) * d + d + 2 * T * dh)
        return FLOAT * (state + 5 * d + dh + T + 3 + cfg.vocab_size)
    if family_name == "atto":
        hidden = cfg.hidden + cfg.n_hidden2 if cfg.n_full else 0
        return FLOAT * (cfg.context * cfg.n_embd + hidden + cfg.n_embd + cfg.vocab_size)
    raise ValueError(f"no RAM estimate for the {family_name!r} family")


def ram_bytes(model, window: int = WINDOW) -> dict:
    """{"bytes", "source"}: the C engine's buffers for a routed model where it builds, else the formula."""
    name = family_of(model)
    if name == "routed":
        try:
            import ctypes

            from ..engine import Config, load_library
            from ..engine.binding import PATHS
            lib, c = load_library(), ctypes.byref(Config.of(model.cfg))
            n = lib.atome_state_bytes(c, window, PATHS["f32"]) + lib.atome_scratch_bytes(c, window, PATHS["f32"])
            return {"bytes": int(n) + FLOAT * model.cfg.vocab_size, "source": "C engine state + scratch + logits"}
        except Exception:          # no compiler here: the same quantities by formula
            pass
    return {"bytes": ram_formula(name, model.cfg, window), "source": "formula"}


# -- cells ----------------------------------------------------------------------------------------

def label(arm: str, size: str, scheme: str | None = None) -> str:
    size_text = f"{int(size):,}" if size.isdigit() else size.upper()
    return f"{LABELS[arm]} {size_text}" + (f" as {scheme}" if scheme else "")


def score_model(model, val, bytes_per_token=None) -> float:
    """Bits per byte over every 64-token window of `val` (atome_core.evaluate.score)."""
    return score(model, val, WINDOW, batch_size=16, bytes_per_token=bytes_per_token).bits_per_byte


def collect_cells(corpus: str, jobs: list, results: dict, val, rates: dict, schemes=("int8", "int4"),
                  atto: dict | None = None) -> tuple[list, dict]:
    """(cells, models): one cell per (family, size) trained on `corpus`, and one per FP32 cell
    and post-training scheme; `models[label]` is the first seed's model (for samples).

    A byte model's bits per byte come from its run's final validation loss (every window of
    `val`, the same scorer); an atto model and every quantised copy are scored here, atto's
    nats divided by the bytes its symbols stand for (atto["bytes_per_token"]).
    """
    from ..formats import ptq
    from ..train import load_state
    groups = {}
    for job in jobs:
        p = parse_name(job.name)
        if p["corpus"] == corpus and "lr" not in p:
            groups.setdefault((p["arm"], p["size"]), []).append(job)
    cells, models = [], {}
    for (arm, size), group in groups.items():
        group = sorted(group, key=lambda j: parse_name(j.name)["seed"])
        trained = [load_state(j.model_class(j.model_config), results[j.name].state_dict) for j in group]
        if arm == "atto":
            bpt, eval_val = atto["bytes_per_token"], atto["val"]
            bpbs = [score_model(m, eval_val, bpt) for m in trained]
            lr = group[0].cfg.lr
        else:
            bpt, eval_val = None, val
            bpbs = [results[j.name].final_val_loss / LN2 for j in group]
            lr = rates[arm]
        first = trained[0]
        size_info = deployed_bytes(first)
        base = {"corpus": corpus, "family": arm, "size": size, "params": sum(p.numel() for p in first.parameters()),
                "ram_bytes": ram_bytes(first)["bytes"], "lr": lr, "seeds": [parse_name(j.name)["seed"] for j in group]}
        cells.append({**base, "scheme": None, "label": label(arm, size), "deployed_bytes": size_info["bytes"],
                      "deployed_format": "FP32 (atto)" if arm == "atto" else size_info["format"],
                      "bpb": median_and_range(bpbs)})
        models[label(arm, size)] = first
        if arm not in FP32_ARMS:
            continue
        for scheme in schemes:
            copies = [ptq.dequantised_copy(m, scheme) for m in trained]
            q = deployed_bytes(first, scheme)
            cells.append({**base, "scheme": scheme, "label": label(arm, size, scheme), "deployed_bytes": q["bytes"],
                          "deployed_format": q["format"],
                          "bpb": median_and_range(score_model(c, eval_val, bpt) for c in copies)})
            models[label(arm, size, scheme)] = copies[0]
    return cells, models


def cell_rows(cells: list) -> tuple[list, list]:
    header = ["model", "parameters", "deployed bytes", "format", "RAM at 64 tokens (bytes)", "lr", "bits per byte"]
    rows = [[c["label"], c["params"], c["deployed_bytes"], c["deployed_format"], c["ram_bytes"], f"{c['lr']:g}",
             c["bpb"]] for c in sorted(cells, key=lambda c: c["deployed_bytes"])]
    return header, rows


# -- the front and the budgets ----------------------------------------------------------------------

def pareto_front(cells: list, x: str = "deployed_bytes") -> list:
    """The cells no other cell matches or beats on both `x` and bits per byte (median), by x.

    Of cells with equal x the lower bits per byte is kept; of exact duplicates, the first."""
    front, best = [], math.inf
    for c in sorted(cells, key=lambda c: (c[x], bpb_of(c))):
        if bpb_of(c) < best:
            front.append(c)
            best = bpb_of(c)
    return front


def best_by_budget(cells: list, budgets_kb) -> list:
    """[{"budget_kb", "budget_bytes", "cell"}]: the lowest bits per byte among the cells
    whose deployed bytes fit each budget (KB = 1,024 bytes); cell None where none fits."""
    out = []
    for kb in budgets_kb:
        fits = [c for c in cells if c["deployed_bytes"] <= kb * KB]
        out.append({"budget_kb": kb, "budget_bytes": kb * KB,
                    "cell": min(fits, key=bpb_of) if fits else None})
    return out


# -- what the models write ---------------------------------------------------------------------

WORD = re.compile(r"[A-Za-z]+")


def vocabulary(text: str) -> set:
    """The training text's words: maximal runs of ASCII letters, lower-cased."""
    return {w.lower() for w in WORD.findall(text)}


def writes_share(text: str, vocab: set) -> float | None:
    """Share of the words (letters-only tokens) of `text` found in `vocab`; None for no word."""
    words = [w.lower() for w in WORD.findall(text)]
    if not words:
        return None
    return sum(w in vocab for w in words) / len(words)


def continuation(model, prompt: str, n: int, temperature: float = 0.0, seed: int = 0, atto_vocab=None) -> str:
    """`n` new characters after `prompt`, greedy (temperature 0) or sampled with a seeded
    generator; byte models see at most the last 64 bytes (the RAM estimate's window)."""
    import torch

    from ..models.sampling import generate_windowed
    g = torch.Generator().manual_seed(seed)
    if family_of(model) == "atto":
        ids = torch.from_numpy(atto_vocab.encode(prompt))[None]
        out = model.generate(ids, n, temperature=temperature or 1.0, greedy=temperature == 0, generator=g)
        return atto_vocab.decode(out[0, ids.size(1):].numpy())
    ids = torch.tensor(list(prompt.encode()), dtype=torch.long)[None]
    out = generate_windowed(model, ids, n, WINDOW, temperature=temperature, generator=g)
    return bytes(out[0, ids.size(1):].tolist()).decode("utf-8", errors="replace")


def budget_rows(best: list, models: dict, prompt: str, n: int, temperature: float, vocab: set,
                seed: int = 0, atto_vocab=None) -> tuple[list, list, list]:
    """(header, rows, records): the best model at each budget, its samples and writes share."""
    header = ["flash", "model", "parameters", "bytes", "RAM", "bits per byte", "greedy", "sampled", "writes"]
    rows, records = [], []
    for b in best:
        c = b["cell"]
        if c is None:
            rows.append([f"{b['budget_kb']} KB", "none fits", None, None, None, None, "", "", None])
            records.append({"budget_kb": b["budget_kb"], "model": None})
            continue
        m = models[c["label"]]
        greedy = continuation(m, prompt, n, 0.0, seed, atto_vocab)
        sampled = continuation(m, prompt, n, temperature, seed, atto_vocab)
        share = writes_share(sampled, vocab)
        rows.append([f"{b['budget_kb']} KB", c["label"], c["params"], c["deployed_bytes"], c["ram_bytes"],
                     c["bpb"], greedy, sampled, share])
        records.append({"budget_kb": b["budget_kb"], "model": c["label"], "family": c["family"], "size": c["size"],
                        "scheme": c["scheme"], "params": c["params"], "deployed_bytes": c["deployed_bytes"],
                        "ram_bytes": c["ram_bytes"], "bpb": c["bpb"], "greedy": greedy, "sampled": sampled,
                        "writes_greedy": writes_share(greedy, vocab), "writes": share})
    return header, rows, records


# -- the targets ------------------------------------------------------------------------------------

def find(cells: list, family_name: str, size: str, scheme: str | None = None) -> dict | None:
    for c in cells:
        if c["family"] == family_name and c["size"] == size and c["scheme"] == scheme:
            return c
    return None


def _missing(name: str, why: str, threshold) -> dict:
    return {"name": name, "measured": None, "threshold": threshold, "met": None, "reason": why}


def target_atome01(cells: list, limit: int = ATOME01_60K_BYTES, margin: float = ATOME01_MARGIN) -> dict:
    """Our best model within the kit's ATOME01 60K bytes against the routed 60K."""
    threshold = {"deployed_bytes": limit, "reduction": margin}
    routed = find(cells, "routed", "60k")
    fits = [c for c in cells if c["deployed_bytes"] <= limit]
    if routed is None or not fits:
        return _missing("atome01", "the routed 60K or a model within the bytes was not trained", threshold)
    best = min(fits, key=bpb_of)
    reduction = 1 - bpb_of(best) / bpb_of(routed)
    return {"name": "atome01", "threshold": threshold, "met": bool(reduction >= margin),
            "measured": {"best_model": best["label"], "best_bpb": bpb_of(best), "best_bytes": best["deployed_bytes"],
                         "routed_60k_bpb": bpb_of(routed), "reduction": reduction}}


def target_match_fp32(cells: list, limit: int = MATCH_FP32_BYTES) -> dict:
    """The smallest model at least as good as the modern FP32 60K (median bits per byte)."""
    threshold = {"deployed_bytes": limit}
    ref = find(cells, "modern", "60k")
    if ref is None:
        return _missing("match_fp32_60k", "the modern FP32 60K was not trained", threshold)
    good = [c for c in cells if bpb_of(c) <= bpb_of(ref)]
    small = min(good, key=lambda c: (c["deployed_bytes"], bpb_of(c)))
    return {"name": "match_fp32_60k", "threshold": threshold, "met": bool(small["deployed_bytes"] <= limit),
            "measured": {"fp32_60k_bpb": bpb_of(ref), "fp32_60k_bytes": ref["deployed_bytes"],
                         "smallest_model": small["label"], "smallest_bytes": small["deployed_bytes"],
                         "smallest_bpb": bpb_of(small), "times_smaller": ref["deployed_bytes"] / small["deployed_bytes"]}}


def target_bz2(cells: list, bz2_bpb: float, limit: int = SHAKESPEARE_BYTES) -> dict:
    """The best Shakespeare model within `limit` bytes against bz2 -9 on the validation text."""
    threshold = {"deployed_bytes": limit, "bz2_bpb": bz2_bpb}
    fits = [c for c in cells if c["deployed_bytes"] <= limit]
    if not fits:
        return _missing("shakespeare_bz2", "no Shakespeare model within the bytes was trained", threshold)
    best = min(fits, key=bpb_of)
    return {"name": "shakespeare_bz2", "threshold": threshold, "met": bool(bpb_of(best) < bz2_bpb),
            "measured": {"best_model": best["label"], "best_bpb": bpb_of(best), "best_bytes": best["deployed_bytes"],
                         "bz2_bpb": bz2_bpb, "gap": bpb_of(best) - bz2_bpb}}


def double_width(cells: list) -> list:
    """Per size with both: ternary x2 against modern FP32 at the same size, and against the best
    modern FP32 model (FP32, int8 or int4) that deploys in no more bytes than the x2 model."""
    out = []
    for x2 in sorted((c for c in cells if c["family"] == "modern-ternary-x2"), key=lambda c: c["params"]):
        fp32 = find(cells, "modern", x2["size"])
        if fp32 is None:
            continue
        same_bytes = [c for c in cells if c["family"] == "modern" and c["deployed_bytes"] <= x2["deployed_bytes"]]
        rival = min(same_bytes, key=bpb_of) if same_bytes else None
        out.append({"size": x2["size"], "x2_bpb": bpb_of(x2), "x2_bytes": x2["deployed_bytes"],
                    "fp32_bpb": bpb_of(fp32), "fp32_bytes": fp32["deployed_bytes"],
                    "same_size_holds": bool(bpb_of(x2) <= bpb_of(fp32)),
                    "same_bytes_model": rival["label"] if rival else None,
                    "same_bytes_bpb": bpb_of(rival) if rival else None,
                    "same_bytes_holds": bool(bpb_of(x2) <= bpb_of(rival)) if rival else None})
    return out


def double_width_rows(verdicts: list) -> tuple[list, list]:
    header = ["size", "ternary x2", "bytes", "modern FP32", "bytes", "x2 as good (same size)",
              "best FP32 model in no more bytes", "its bits per byte", "x2 as good (same bytes)"]
    rows = [[v["size"], v["x2_bpb"], v["x2_bytes"], v["fp32_bpb"], v["fp32_bytes"], v["same_size_holds"],
             v["same_bytes_model"] or "none fits", v["same_bytes_bpb"], v["same_bytes_holds"]] for v in verdicts]
    return header, rows


def learning_curves(jobs: list, results: dict, labels_wanted) -> dict:
    """{label: (training bytes, validation bits per byte)} of the first seed's run, for the
    periodic evaluations (the first windows of the validation text) and the final one (all)."""
    out = {}
    for job in jobs:
        p = parse_name(job.name)
        name = label(p["arm"], p["size"])
        if "lr" in p or name not in labels_wanted or name in out:
            continue
        pts = [(h["tokens_seen"], h["val_loss"] / LN2) for h in results[job.name].history if "val_loss" in h]
        out[name] = (np.array([t for t, _ in pts]), np.array([v for _, v in pts]))
    return out


# -- figures -----------------------------------------------------------------------------------------

def plot_frontier(ax, cells: list, refs: dict, x: str = "deployed_bytes", title: str = "") -> None:
    """Cells by family (open markers: post-training int8 / int4), the Pareto front, bz2 and xz as
    horizontal lines and, on the bytes axis, the Kneser-Ney models as grey crosses."""
    markers = {None: "o", "int8": "s", "int4": "^"}
    for fam, color in COLORS.items():
        for scheme, marker in markers.items():
            pts = [c for c in cells if c["family"] == fam and c["scheme"] == scheme]
            if pts:
                ax.scatter([c[x] for c in pts], [bpb_of(c) for c in pts], marker=marker, s=28,
                           color=color, facecolors=color if scheme is None else "none",
                           label=LABELS[fam] + (f" as {scheme}" if scheme else ""))
    front = pareto_front(cells, x)
    ax.step([c[x] for c in front], [bpb_of(c) for c in front], where="post", color="k", lw=1, label="Pareto front")
    if x == "deployed_bytes":
        kn = refs.get("kn", [])
        ax.scatter([r["deployed_bytes"] for r in kn], [r["bpb"] for r in kn], marker="x", color="0.5",
                   label="Kneser-Ney (orders 3-6)")
    for name, style in (("bz2", "--"), ("xz", ":")):
        ax.axhline(refs[name], color="0.3", ls=style, lw=0.9, label=f"{name} on the validation text")
    ax.set_xscale("log")
    ax.set_xlabel("deployed bytes" if x == "deployed_bytes" else "RAM at a 64-token window (bytes)")
    ax.set_ylabel("bits per byte")
    ax.set_title(title, fontsize=9, loc="left")
    ax.grid(alpha=0.3, which="both")


# -- claims -------------------------------------------------------------------------------------------

def claims(targets: list, verdicts: list, refs: dict, stand_in: str | None = None) -> dict:
    """{claim key: (value, unit, reason)} for results.claim (reason None where measured). With a
    stand-in for the TinyStories sample, the claims about it are not measured (value None)."""
    by = {t["name"]: t for t in targets}
    t1, t2, t3 = (by[n]["measured"] for n in ("atome01", "match_fp32_60k", "shakespeare_bz2"))
    why = {n: by[n].get("reason") for n in by}
    bpb = "bits per byte"
    out = {
        "best_under_atome01_bpb": (t1 and t1["best_bpb"], f"{bpb}, TinyStories sample, <= 20,575 B", why["atome01"]),
        "routed_60k_bpb": (t1 and t1["routed_60k_bpb"], f"{bpb}, TinyStories sample", why["atome01"]),
        "best_under_atome01_model": (t1 and t1["best_model"], "", why["atome01"]),
        "match_fp32_60k_bytes": (t2 and t2["smallest_bytes"], "deployed bytes", why["match_fp32_60k"]),
        "shakespeare_best_under_64k_bpb": (t3 and t3["best_bpb"], f"{bpb}, Shakespeare, <= 64 KB",
                                           why["shakespeare_bz2"]),
        "bz2_shakespeare_bpb": (refs["shakespeare"]["bz2"], f"{bpb}, bz2 -9 on Shakespeare's validation text", None),
        "double_width_holds_sizes": ([v["size"] for v in verdicts if v["same_size_holds"]],
                                     "sizes where ternary x2 >= FP32", None),
        "double_width_sizes": ([v["size"] for v in verdicts], "sizes compared", None),
    }
    if stand_in:
        tinystories = ("best_under_atome01_bpb", "routed_60k_bpb", "best_under_atome01_model", "match_fp32_60k_bytes",
                       "double_width_holds_sizes", "double_width_sizes")
        out.update({k: (None, out[k][1], stand_in) for k in tinystories})
    return out


def figure_legend(fig, axes, ncol: int = 4) -> None:
    """One legend below the figure with every entry of its panels, each once."""
    entries = {}
    for ax in axes:
        for handle, name in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(name, handle)
    fig.legend(list(entries.values()), list(entries), loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=ncol,
               fontsize=7, frameon=False)


def edge_rates(sweep: dict, rates: dict) -> list:
    """The families whose chosen rate is the largest or smallest rate tried (a wider sweep might move it)."""
    return [arm for arm, lr in rates.items() if len(sweep[arm]) > 1 and lr in (min(sweep[arm]), max(sweep[arm]))]


def reference_summary(cells: list, refs: dict, budget_bytes: int) -> dict:
    """The best trained model and the best Kneser-Ney model within `budget_bytes` (None where none fits)."""
    models = [c for c in cells if c["deployed_bytes"] <= budget_bytes]
    kn = [r for r in refs["kn"] if r["deployed_bytes"] <= budget_bytes]
    best_m = min(models, key=bpb_of) if models else None
    best_k = min(kn, key=lambda r: r["bpb"]) if kn else None
    return {"model": best_m and best_m["label"], "model_bpb": best_m and bpb_of(best_m),
            "model_bytes": best_m and best_m["deployed_bytes"], "kn_order": best_k and best_k["order"],
            "kn_bpb": best_k and best_k["bpb"], "kn_bytes": best_k and best_k["deployed_bytes"]}
