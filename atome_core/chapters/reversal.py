"""What the router knows: its per-token entropy against loss, and as an out-of-domain detector.

Two questions from the Atome kit's claim that router entropy "tracks out-of-domain
inputs and correlates with per-token loss":

1. Per token, does the routing entropy of a layer rank like the model's loss on the
   next byte? Spearman's rank correlation, with a bootstrap interval that resamples
   whole windows (the tokens of one window are not independent of each other).
2. Per window, does the mean routing entropy tell in-domain text from other text
   (another book, or the same bytes shuffled) better than the simplest detectors
   that need no router: the model's own mean loss and its mean max-softmax
   probability (MSP)? AUROC with a stratified bootstrap interval.

Ranks come from scipy.stats.rankdata (average ranks for ties): Spearman is the Pearson
correlation of the ranks, AUROC the Mann-Whitney U from the positives' rank sum (ties count
1/2). Those one-line formulas stand in for scipy.stats.spearmanr, mannwhitneyu and
sklearn's roc_auc_score because the bootstraps call them thousands of times and the
library calls cost 2x (spearmanr) to 40x (mannwhitneyu, roc_auc_score) more per call;
tests/test_reversal_statistics.py checks they equal the libraries' on the same data. The intervals are percentile bootstraps from
a seeded generator written here because the unit resampled is not one observation: the
Spearman interval resamples whole windows (a cluster bootstrap: tokens of one window are
not independent), the AUROC interval each class on its own (stratified), and the detector
comparison one set of windows for both detectors (paired). tests/test_reversal_statistics.py
checks each against scipy.stats.bootstrap on the same data. The chapter's own
reading of them (its tables, its verdicts, its figure of the router) follows the
statistics; the ladder and the crossover's tables are in chapters.reversal_ladder.
"""

import numpy as np
import torch
import torch.nn.functional as F
from scipy import stats

from ..evaluate import eval_windows
from ..models.routed import RoutedLM
from ..progress import progress

# -----------------------------------------------------------------------------
# statistics

def spearman(x, y) -> float:
    """Spearman's rank correlation of two equally long samples (ties: average ranks)."""
    x, y = np.asarray(x, dtype=float).ravel(), np.asarray(y, dtype=float).ravel()
    if x.shape != y.shape:
        raise ValueError(f"samples differ in length: {x.size} and {y.size}")
    if x.size < 2:
        raise ValueError("Spearman's correlation needs at least two pairs")
    if np.isnan(x).any() or np.isnan(y).any():
        raise ValueError("cannot rank NaN values")
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        raise ValueError("a sample is constant: its rank correlation is undefined")
    return float(np.corrcoef(stats.rankdata(x), stats.rankdata(y))[0, 1])


def auroc(negatives, positives) -> float:
    """P(score of a random positive > score of a random negative), ties counting 1/2.

    Here positives are out-of-domain windows and the score is "higher means more
    out-of-domain": 1 separates perfectly, 0.5 is chance, below 0.5 the score points
    the other way."""
    neg, pos = np.asarray(negatives, dtype=float).ravel(), np.asarray(positives, dtype=float).ravel()
    if neg.size == 0 or pos.size == 0:
        raise ValueError("AUROC needs at least one sample of each class")
    u = stats.rankdata(np.concatenate([neg, pos]))[neg.size:].sum() - pos.size * (pos.size + 1) / 2
    return float(u / (neg.size * pos.size))


def percentile_interval(values, level: float = 0.95) -> tuple[float, float]:
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(np.asarray(values, dtype=float), [tail, 100 - tail])
    return float(lo), float(hi)


def _check_boot(n_boot: int):
    if not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise ValueError(f"n_boot must be a positive integer, got {n_boot!r}")


def spearman_ci(x, y, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> dict:
    """Spearman of x and y with a percentile bootstrap interval.

    2-D inputs (windows, positions) are resampled by whole windows (rows); 1-D inputs
    by single pairs. Same seed, same interval."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"x and y differ in shape: {x.shape} and {y.shape}")
    if x.ndim not in (1, 2):
        raise ValueError(f"x and y must be 1-D (pairs) or 2-D (windows, positions), got {x.ndim}-D")
    _check_boot(n_boot)
    estimate = spearman(x, y)
    rng = np.random.default_rng(seed)
    n = x.shape[0]
    boots = []
    for _ in range(n_boot):
        rows = rng.integers(0, n, size=n)
        try:
            boots.append(spearman(x[rows], y[rows]))
        except ValueError:       # a resample that is constant: no correlation to record
            continue
    low, high = percentile_interval(boots, level)
    return {"estimate": estimate, "low": low, "high": high, "n_boot": len(boots), "level": level,
            "n_units": int(n), "n_pairs": int(x.size)}


def auroc_ci(negatives, positives, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> dict:
    """AUROC with a percentile bootstrap interval; each class resampled on its own."""
    neg, pos = np.asarray(negatives, dtype=float).ravel(), np.asarray(positives, dtype=float).ravel()
    _check_boot(n_boot)
    estimate = auroc(neg, pos)
    rng = np.random.default_rng(seed)
    boots = [auroc(neg[rng.integers(0, neg.size, neg.size)], pos[rng.integers(0, pos.size, pos.size)])
             for _ in range(n_boot)]
    low, high = percentile_interval(boots, level)
    return {"estimate": estimate, "low": low, "high": high, "n_boot": n_boot, "level": level,
            "n_negative": int(neg.size), "n_positive": int(pos.size)}


def separation_difference_ci(neg_a, pos_a, neg_b, pos_b, n_boot: int = 1000, seed: int = 0,
                             level: float = 0.95) -> dict:
    """Is detector a further from chance than detector b on the same windows?

    Separation = |AUROC - 0.5| (direction-free: a score that is lower out of domain
    separates as well as one that is higher). neg_a/neg_b are the two detectors' scores
    of the same in-domain windows, pos_a/pos_b of the same out-of-domain windows; each
    bootstrap resample draws one set of windows for both (a paired comparison).
    Returns the difference sep(a) - sep(b) with its percentile interval."""
    neg_a, pos_a, neg_b, pos_b = (np.asarray(v, dtype=float).ravel() for v in (neg_a, pos_a, neg_b, pos_b))
    if neg_a.shape != neg_b.shape or pos_a.shape != pos_b.shape:
        raise ValueError("the two detectors must score the same windows")
    _check_boot(n_boot)

    def diff(ni, pi):
        return abs(auroc(neg_a[ni], pos_a[pi]) - 0.5) - abs(auroc(neg_b[ni], pos_b[pi]) - 0.5)

    estimate = diff(slice(None), slice(None))
    rng = np.random.default_rng(seed)
    boots = [diff(rng.integers(0, neg_a.size, neg_a.size), rng.integers(0, pos_a.size, pos_a.size))
             for _ in range(n_boot)]
    low, high = percentile_interval(boots, level)
    return {"estimate": float(estimate), "low": low, "high": high, "n_boot": n_boot, "level": level}


# -----------------------------------------------------------------------------
# windows of text

def shuffled_bytes(tokens, seed: int) -> np.ndarray:
    """The same bytes in a random order: the byte frequencies of the text, none of its structure."""
    return np.random.default_rng(seed).permutation(np.asarray(tokens))


# -----------------------------------------------------------------------------
# per-token quantities of a model

@torch.no_grad()
def per_token_stats(model, window_array: np.ndarray, batch_size: int = 16, desc: str = "") -> dict:
    """One forward pass over windows (n, L+1); every array is (n, L), position t being the
    prediction of byte t+1:
      loss: nats; msp: the largest next-byte probability;
      router_entropy (routed models only): (n_layers, n, L) entropy in nats of the routing."""
    window_array = np.asarray(window_array)
    if window_array.ndim != 2 or window_array.shape[1] < 2:
        raise ValueError(f"windows must be (n, L+1) with L >= 1, got shape {window_array.shape}")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    routed = isinstance(model, RoutedLM)
    losses, msps, entropies = [], [], []
    try:
        for first in progress(range(0, len(window_array), batch_size), desc=desc or "scoring windows",
                              unit="batch"):
            w = torch.from_numpy(window_array[first:first + batch_size]).to(device)
            x, y = w[:, :-1], w[:, 1:]
            if routed:
                logits, r = model(x, return_stats=True)         # r: (layers, B, T, pathways)
                entropies.append((-(r * torch.log(r.clamp_min(1e-30))).sum(-1)).float().cpu().numpy())
            else:
                logits = model(x)
            logp = F.log_softmax(logits.float(), dim=-1)
            losses.append((-logp.gather(-1, y[..., None])[..., 0]).cpu().numpy())
            msps.append(logp.max(dim=-1).values.exp().cpu().numpy())
    finally:
        model.train(was_training)
    out = {"loss": np.concatenate(losses).astype(np.float64), "msp": np.concatenate(msps).astype(np.float64)}
    if routed:
        out["router_entropy"] = np.concatenate(entropies, axis=1).astype(np.float64)
    return out


def window_scores(stats: dict) -> dict:
    """Per-window detector scores, each oriented "higher = more out-of-domain" except the
    router's, whose direction is what we want to find out:
      loss: mean nats; one_minus_msp: 1 - mean MSP;
      entropy_mean: mean routing entropy over layers and positions; entropy_layer_i: per layer."""
    scores = {"loss": stats["loss"].mean(axis=1), "one_minus_msp": 1.0 - stats["msp"].mean(axis=1)}
    if "router_entropy" in stats:
        ent = stats["router_entropy"]
        scores["entropy_mean"] = ent.mean(axis=(0, 2))
        for layer in range(ent.shape[0]):
            scores[f"entropy_layer_{layer}"] = ent[layer].mean(axis=1)
    return scores


BASELINES = ("loss", "one_minus_msp")


def detection_table(in_domain: dict, out_of_domain: dict, n_boot: int = 1000, seed: int = 0,
                    level: float = 0.95) -> dict:
    """{ood source: {detector: auroc_ci}} from window_scores of the in-domain windows and of
    each out-of-domain source ({name: window_scores}). With router scores, each source also
    gets "entropy_vs_<baseline>": separation_difference_ci of the mean routing entropy
    against each no-router baseline (positive: entropy separates better)."""
    table = {}
    for source, scores in out_of_domain.items():
        row = {det: auroc_ci(in_domain[det], scores[det], n_boot=n_boot, seed=seed, level=level)
               for det in in_domain if det in scores}
        if "entropy_mean" in row:
            for base in BASELINES:
                row[f"entropy_vs_{base}"] = separation_difference_ci(
                    in_domain["entropy_mean"], scores["entropy_mean"], in_domain[base], scores[base],
                    n_boot=n_boot, seed=seed, level=level)
        table[source] = row
    return table


def entropy_loss_correlations(stats: dict, n_boot: int = 1000, seed: int = 0, level: float = 0.95,
                              skip_first: int = 0) -> dict:
    """Spearman (with window-bootstrap interval) of per-token routing entropy and per-token
    loss: per layer and for the mean over layers. skip_first drops the first positions of
    each window, where a fresh context makes both the loss and the routing unusual."""
    if "router_entropy" not in stats:
        raise ValueError("these stats have no router entropy: not a routed model")
    if skip_first < 0 or skip_first >= stats["loss"].shape[1]:
        raise ValueError(f"skip_first must be in [0, {stats['loss'].shape[1]}), got {skip_first}")
    loss = stats["loss"][:, skip_first:]
    ent = stats["router_entropy"][:, :, skip_first:]
    out = {"mean_over_layers": spearman_ci(ent.mean(axis=0), loss, n_boot, seed, level)}
    for layer in range(ent.shape[0]):
        out[f"layer_{layer}"] = spearman_ci(ent[layer], loss, n_boot, seed, level)
    return out


# -----------------------------------------------------------------------------
# the chapter's router measurements, and how they read

DETECTORS = {"entropy_mean": "router entropy", "loss": "loss", "one_minus_msp": "1 − MSP"}
OTHER_BOOKS = ("alice", "moby")


def ci_text(stat: dict, digits: int = 3) -> str:
    """An estimate with its interval: "0.612 [0.540, 0.688]"."""
    return f"{stat['estimate']:.{digits}f} [{stat['low']:.{digits}f}, {stat['high']:.{digits}f}]"


def strength(rho: float) -> str:
    """The conventional label for the size of a correlation."""
    a = abs(rho)
    return "negligible" if a < 0.1 else "weak" if a < 0.3 else "moderate" if a < 0.5 else "strong"


def other_books() -> dict:
    """The out-of-domain books of the corpus registry, as bytes."""
    from .. import data
    return {name: data.encode_bytes(data.load_corpus(name).text) for name in OTHER_BOOKS}


def ood_window_sets(in_domain_tokens, books: dict, n_windows: int, seed: int, window: int = 256) -> dict:
    """{name: windows} of each out-of-domain text: the books, then the in-domain bytes shuffled."""
    texts = {**books, "shuffled in-domain bytes": shuffled_bytes(in_domain_tokens, seed)}
    return {name: eval_windows(t, window, n_windows) for name, t in texts.items()}


def analyse_router(model, in_stats: dict, in_tokens, books: dict, *, ood_windows: int, bootstrap: int,
                   spearman_windows: int, spearman_bootstrap: int, skip_first: int, seed: int,
                   label: str = "", window: int = 256) -> dict:
    """Detection (the DETECTORS' AUROCs per out-of-domain text) and the entropy-loss
    correlations of a routed model; in_stats: per_token_stats of its in-domain windows
    (`window` bytes each, as the out-of-domain windows)."""
    out_stats = {name: per_token_stats(model, w, batch_size=16, desc=f"{label}: {name}")
                 for name, w in ood_window_sets(in_tokens, books, ood_windows, seed, window).items()}

    def shown(scores):   # the detectors of the tables (per-layer AUROCs would cost bootstrap time unseen)
        return {k: v for k, v in scores.items() if k in DETECTORS}

    detection = detection_table(shown(window_scores(in_stats)),
                                {n: shown(window_scores(s)) for n, s in out_stats.items()},
                                n_boot=bootstrap, seed=seed)
    subset = {k: (v[:spearman_windows] if k != "router_entropy" else v[:, :spearman_windows])
              for k, v in in_stats.items()}
    corr = entropy_loss_correlations(subset, n_boot=spearman_bootstrap, seed=seed)
    corr_late = entropy_loss_correlations(
        {**subset, "router_entropy": subset["router_entropy"].mean(axis=0, keepdims=True)},
        n_boot=spearman_bootstrap, seed=seed, skip_first=skip_first)["layer_0"]
    return {"detection": detection, "correlation": corr, "correlation_after_first": corr_late,
            "mean_entropy_in": float(in_stats["router_entropy"].mean()),
            "mean_entropy_out": {n: float(s["router_entropy"].mean()) for n, s in out_stats.items()}}


def analyse_routed_models(models: dict, val_tokens, books: dict, device: str, threads, window: int = 256,
                          **options) -> dict:
    """analyse_router for each {size: model}, the validation bytes as in-domain text, in
    windows of `window` bytes (the length the models trained on)."""
    from ..train import torch_threads
    out = {}
    for size, model in models.items():
        model.to(device)
        in_windows = eval_windows(val_tokens, window, options["ood_windows"])
        with torch_threads(threads):
            in_stats = per_token_stats(model, in_windows, batch_size=16, desc=f"routed {size}")
            out[size] = analyse_router(model, in_stats, val_tokens, books, label=f"routed {size}", window=window,
                                       **options)
    return out


def correlation_rows(result: dict, n_layers: int, skip_first: int) -> tuple[list, list]:
    """(header, rows) of the entropy-loss correlations: per layer, their mean, the mean late in windows."""
    corr = result["correlation"]
    labelled = [(str(layer), corr[f"layer_{layer}"]) for layer in range(n_layers)]
    labelled += [("mean over layers", corr["mean_over_layers"]),
                 (f"mean over layers, positions ≥ {skip_first}", result["correlation_after_first"])]
    header = ["layer", "Spearman ρ (entropy, loss)", "tokens", "windows"]
    return header, [[name, ci_text(c), c["n_pairs"], c["n_units"]] for name, c in labelled]


def detection_rows(detection: dict) -> tuple[list, list]:
    """(header, rows): each out-of-domain text's AUROC under each detector."""
    header = ["out-of-domain text", *(f"AUROC: {v}" for v in DETECTORS.values())]
    return header, [[source, *(ci_text(row[d]) for d in DETECTORS)] for source, row in detection.items()]


def router_verdict(result: dict) -> dict:
    """How the router's measurements read: the correlation's strength, its strongest layer, and
    per out-of-domain text whether the entropy separates better than the best no-router baseline
    (the paired bootstrap interval of the difference in distance from chance excludes 0)."""
    corr = result["correlation"]
    best_layer = max((k for k in corr if k.startswith("layer_")), key=lambda k: abs(corr[k]["estimate"]))
    rows, wins = [], 0
    for source, row in result["detection"].items():
        e = row["entropy_mean"]
        base = max(BASELINES, key=lambda d: abs(row[d]["estimate"] - 0.5))
        diff = row[f"entropy_vs_{base}"]
        if diff["low"] > 0:
            wins += 1
            compare = "separates better"
        elif diff["high"] < 0:
            compare = "separates worse"
        else:
            compare = "not distinguishable"
        side = ("interval includes chance" if e["low"] <= 0.5 <= e["high"]
                else "higher out of domain" if e["estimate"] > 0.5 else "lower out of domain")
        rows.append([source, ci_text(e), side, f"{DETECTORS[base]}: {ci_text(row[base])}", compare, ci_text(diff)])
    header = ["out-of-domain text", "AUROC: router entropy", "routing entropy", "best baseline: AUROC",
              "entropy against it", "difference in distance from chance"]
    return {"strength": strength(corr["mean_over_layers"]["estimate"]), "rho": ci_text(corr["mean_over_layers"]),
            "rho_late": ci_text(result["correlation_after_first"]), "best_layer": best_layer.replace("_", " "),
            "best_rho": ci_text(corr[best_layer]), "wins": wins, "header": header, "rows": rows}


def router_glue(result: dict | None) -> dict:
    """The router paragraph's text for {glue:text}: "n/a" where the published model is absent."""
    if not result:
        return {"router_strength": "not measured", "router_wins": "n/a", "router_aurocs": "n/a",
                "router_sources": "n/a",
                "router_conclusion": "The published model is absent from this build.",
                **{k: "n/a" for k in ("router_rho", "router_rho_late", "router_best_layer", "router_best_rho")}}
    v = router_verdict(result)
    n = len(result["detection"])
    return {"router_strength": v["strength"], "router_rho": v["rho"], "router_rho_late": v["rho_late"],
            "router_best_layer": v["best_layer"], "router_best_rho": v["best_rho"],
            "router_wins": str(v["wins"]), "router_sources": str(n),
            "router_aurocs": ", ".join(f"{src} {row['entropy_mean']['estimate']:.3f}"
                                       for src, row in result["detection"].items()),
            "router_conclusion": ("At this scale the routing entropy is not a more useful signal than the loss "
                                  "or MSP the model already gives." if v["wins"] < n else
                                  "Here the routing entropy is a better detector than the loss or MSP.")}


def trained_rows(router_ours: dict) -> tuple[list, list]:
    """(header, rows): per trained rung, the correlation and each text's AUROC per detector."""
    header = ["rung", "ρ (mean entropy, loss)", "out-of-domain text",
              *(f"AUROC: {v}" for v in DETECTORS.values())]
    rows = []
    for size, res in router_ours.items():
        for i, (source, row) in enumerate(res["detection"].items()):
            first = i == 0
            rows.append([size if first else "", ci_text(res["correlation"]["mean_over_layers"]) if first else "",
                         source, *(ci_text(row[d]) for d in DETECTORS)])
    return header, rows


def trained_wins_text(router_ours: dict) -> str:
    """"0 of 3 texts at 15k, 1 of 3 texts at 60k": where entropy beats the best baseline."""
    if not router_ours:
        return "no rung (none trained)"
    return ", ".join(f"{router_verdict(res)['wins']} of {len(res['detection'])} texts at {size}"
                     for size, res in router_ours.items())


def router_figure(result: dict, n_layers: int):
    """Per-layer Spearman ρ with its interval, and each detector's AUROC per out-of-domain text."""
    import matplotlib.pyplot as plt
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.6))
    corr = result["correlation"]
    keys = [f"layer_{i}" for i in range(n_layers)] + ["mean_over_layers"]
    est = np.array([corr[k]["estimate"] for k in keys])
    ax1.errorbar(range(len(keys)), est, yerr=[est - [corr[k]["low"] for k in keys], [corr[k]["high"] for k in keys] - est],
                 fmt="o", capsize=3)
    ax1.axhline(0, color="k", lw=0.8)
    ax1.set_xticks(range(len(keys)), [k.replace("layer_", "").replace("mean_over_layers", "mean") for k in keys])
    ax1.set_xlabel("layer")
    ax1.set_ylabel("Spearman ρ")
    ax1.set_title("routing entropy vs next-byte loss, per token", fontsize=9, loc="left")
    det = result["detection"]
    width = 0.25
    for j, (d, label) in enumerate(DETECTORS.items()):
        vals = np.array([det[s][d]["estimate"] for s in det])
        lo = vals - [det[s][d]["low"] for s in det]
        hi = np.array([det[s][d]["high"] for s in det]) - vals
        ax2.bar(np.arange(len(det)) + (j - 1) * width, vals, width, yerr=[lo, hi], capsize=2, label=label, color=f"C{j}")
    ax2.axhline(0.5, color="k", ls="--", lw=0.8)
    ax2.set_xticks(range(len(det)), list(det), fontsize=8)
    ax2.set_ylim(0, 1)
    ax2.set_ylabel("AUROC (out-of-domain positive)")
    ax2.set_title("telling TinyStories from other text, per window", fontsize=9, loc="left")
    ax2.legend(fontsize=7)
    fig.tight_layout()
    return fig


# -----------------------------------------------------------------------------
# the crossover

def median_by_cell(cells: list[dict], key: str = "val_bpb") -> dict:
    """(family, size) -> {"median", "min", "max", "n"} over seeds."""
    grouped = {}
    for c in cells:
        grouped.setdefault((c["family"], c["size"]), []).append(c[key])
    return {k: {"median": float(np.median(v)), "min": float(np.min(v)), "max": float(np.max(v)), "n": len(v)}
            for k, v in grouped.items()}


def crossover(xs, a, b) -> list[dict]:
    """Where curve a stops beating curve b (or starts), lower being better.

    xs: increasing positive sizes (parameters or bytes); a, b: their values at each.
    Returns one entry per sign change of a - b between consecutive points, with the
    crossing point interpolated linearly in log(x): {"between": (x0, x1), "at": x,
    "a_better_below": bool}. An empty list: no crossing within the range.
    """
    xs, a, b = (np.asarray(v, dtype=float) for v in (xs, a, b))
    if not (len(xs) == len(a) == len(b)):
        raise ValueError("xs, a and b must have the same length")
    if len(xs) and (np.any(xs <= 0) or np.any(np.diff(xs) <= 0)):
        raise ValueError("xs must be positive and strictly increasing")
    diff = a - b
    out = []
    for i in range(len(xs) - 1):
        d0, d1 = diff[i], diff[i + 1]
        if d0 == 0 or np.sign(d0) == np.sign(d1):
            continue
        frac = d0 / (d0 - d1)                   # where the line through (log x, diff) is zero
        lx = np.log(xs[i]) + frac * (np.log(xs[i + 1]) - np.log(xs[i]))
        out.append({"between": (float(xs[i]), float(xs[i + 1])), "at": float(np.exp(lx)),
                    "a_better_below": bool(d0 < 0)})
    return out
