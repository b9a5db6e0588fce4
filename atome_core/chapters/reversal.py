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

Statistics are plain numpy: average ranks for ties, AUROC as the Mann-Whitney U
statistic, percentile bootstrap intervals from a seeded generator.
"""
import math

import numpy as np
import torch
import torch.nn.functional as F

from ..models.routed import RoutedLM
from ..progress import progress

# -----------------------------------------------------------------------------
# statistics

def average_ranks(x) -> np.ndarray:
    """Ranks 1..n of a 1-D array, ties given the mean of the ranks they span."""
    x = np.asarray(x, dtype=float).ravel()
    if np.isnan(x).any():
        raise ValueError("cannot rank NaN values")
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    # runs of equal values: [start, end) in sorted order
    boundaries = np.flatnonzero(np.diff(sorted_x)) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [len(x)]])
    mean_rank = (starts + ends + 1) / 2.0          # mean of ranks start+1 .. end
    ranks = np.empty(len(x))
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def spearman(x, y) -> float:
    """Spearman's rank correlation of two equally long samples (ties: average ranks)."""
    x, y = np.asarray(x, dtype=float).ravel(), np.asarray(y, dtype=float).ravel()
    if x.shape != y.shape:
        raise ValueError(f"samples differ in length: {x.size} and {y.size}")
    if x.size < 2:
        raise ValueError("Spearman's correlation needs at least two pairs")
    rx, ry = average_ranks(x), average_ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denom = math.sqrt(float((rx * rx).sum() * (ry * ry).sum()))
    if denom == 0:
        raise ValueError("a sample is constant: its rank correlation is undefined")
    return float((rx * ry).sum() / denom)


def auroc(negatives, positives) -> float:
    """P(score of a random positive > score of a random negative), ties counting 1/2.

    Here positives are out-of-domain windows and the score is "higher means more
    out-of-domain": 1 separates perfectly, 0.5 is chance, below 0.5 the score points
    the other way."""
    neg, pos = np.asarray(negatives, dtype=float).ravel(), np.asarray(positives, dtype=float).ravel()
    if neg.size == 0 or pos.size == 0:
        raise ValueError("AUROC needs at least one sample of each class")
    ranks = average_ranks(np.concatenate([neg, pos]))
    u = ranks[neg.size:].sum() - pos.size * (pos.size + 1) / 2.0
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

def windows(tokens, seq_len: int, max_windows: int | None = None) -> np.ndarray:
    """Non-overlapping windows of seq_len + 1 bytes from byte 0: (n, seq_len + 1); window i
    feeds tokens[i*L : i*L+L] and predicts tokens[i*L+1 : i*L+L+1] (as evaluate_loss does)."""
    tokens = np.asarray(tokens)
    available = (len(tokens) - 1) // seq_len
    if available < 1:
        raise ValueError(f"{len(tokens)} bytes are too few for one window of {seq_len}+1")
    starts = np.arange(available if max_windows is None else min(available, max_windows)) * seq_len
    return tokens[starts[:, None] + np.arange(seq_len + 1)].astype(np.int64)


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
