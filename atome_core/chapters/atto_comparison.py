"""Chapter 1's comparisons: the atto project's published table beside our series and the
transformer of the same size, as table rows, verdicts and the chapter's claims.

Losses are nats per character on the validation split; `runs` is atto_series.SeriesRuns
(the n-gram series), `tf_runs` the transformer's (atto_series.train_transformer_series) and
`tf_spread` its seed_spread: {budget: losses over the seeds} for the budgets where a
transformer was trained. Both families are judged by their mean over the same seeds.
"""
import itertools
import math

import numpy as np

from .atto_series import search_runs

LN2 = math.log(2)

# facts from the atto project: budget -> (context, weights JSON size as published, validation loss)
PUBLISHED = {64: (3, "1.8 KB", 2.59), 128: (7, "3.5 KB", 2.83), 256: (8, "6.0 KB", 2.33),
             512: (16, "11.8 KB", 2.44), 1024: (8, "22.3 KB", 2.11), 2048: (24, "44.3 KB", 2.15),
             4096: (56, "86.4 KB", 2.40), 8192: (28, "172.7 KB", 1.91), 16384: (60, "~640 KB", 2.11)}

COUNT_MODELS = ("unigram counts", "bigram counts", "trigram counts")


def published_rows() -> list:
    """The published table: model, parameters, context, weights JSON, validation loss."""
    return [[f"atto-{b}", b, c, s, f"{loss:.2f}"] for b, (c, s, loss) in PUBLISHED.items()]


def budget_list(budgets) -> str:
    """"256, 1,024" for the prose; "none" when empty."""
    return ", ".join(f"{b:,}" for b in budgets) or "none"


# -----------------------------------------------------------------------------
# the vocabulary and the count models

def count_model_losses(train_ids, val_ids) -> dict:
    """Nats per character of the unigram, bigram and trigram count tables (additive
    smoothing 0.1, corpora.ngram_cross_entropy_bits) fitted on train_ids, scored on val_ids."""
    from .corpora import ngram_cross_entropy_bits
    train_b, val_b = np.asarray(train_ids).astype(np.uint8).tobytes(), np.asarray(val_ids).astype(np.uint8).tobytes()
    return {name: ngram_cross_entropy_bits(train_b, val_b, order) * LN2 for order, name in enumerate(COUNT_MODELS)}


def count_model_rows(count_models: dict, vocab_size: int = 64) -> list:
    """model, nats per character, bits per character, table entries."""
    return [[name, v, v / LN2, vocab_size ** (i + 1)] for i, (name, v) in enumerate(count_models.items())]


def vocab_metrics(D) -> dict:
    return {"symbols": "".join(D.vocab.symbols), "distinct_train_chars": D.distinct_train_chars,
            "val_changed_fraction": D.val_changed_fraction, "train_changed_fraction": D.train_changed_fraction,
            "train_chars": len(D.train), "val_chars": len(D.val)}


# -----------------------------------------------------------------------------
# the search

def search_rows(search: dict) -> list:
    """budget, runs (search_runs), winner, context, learning rate, search loss, seconds."""
    return [[b, search_runs(s), s.best.describe(), s.best.context, f"{s.lr:g}",
             s.best_loss, f"{s.seconds:.1f}"] for b, s in search.items()]


def search_metrics(search: dict) -> dict:
    return {str(b): {"best": s.best.__dict__, "best_loss": s.best_loss, "seconds": s.seconds, "lr": s.lr,
                     "lr_losses": {str(k): v for k, v in (s.lr_losses or {}).items()},
                     "shapes": {f"E{k[0]}_full{k[1]}": v for k, v in s.shape_losses.items()},
                     "variants": [{"config": c.describe(), "loss": loss} for c, loss in s.variant_losses]}
            for b, s in search.items()}


def variant_rows(search: dict) -> list:
    """budget, candidate, search loss, change against the best shape: each variant, then
    the winner at each learning rate tried (budgets searched without variants have none)."""
    rows = []
    for b, s in search.items():
        if not s.variant_losses:
            continue
        base = min(s.shape_losses.values())
        rows += [[b, c.describe(), loss, f"{loss - base:+.3f}"] for c, loss in s.variant_losses]
        rows += [[b, f"the winner at learning rate {k:g}", v, f"{v - base:+.3f}"] for k, v in s.lr_losses.items()]
    return rows


def heatmap_grid(result, widths, fulls) -> np.ndarray:
    """Search losses as a len(widths) x len(fulls) grid (NaN where no configuration fits)."""
    widths, fulls = list(widths), list(fulls)
    grid = np.full((len(widths), len(fulls)), np.nan)
    for (E, nf), loss in result.shape_losses.items():
        if E in widths and nf in fulls:
            grid[widths.index(E), fulls.index(nf)] = loss
    return grid


def heatmap_extremes(result, widths, fulls) -> dict:
    """The best and the worst cell of the grid: {"best": (E, n_full, loss), "worst": ...}."""
    cells = {k: v for k, v in result.shape_losses.items() if k[0] in widths and k[1] in fulls}
    if not cells:
        raise ValueError("no configuration of the heat-map grid fits its budget")
    (bE, bn), bl = min(cells.items(), key=lambda kv: kv[1])
    (wE, wn), wl = max(cells.items(), key=lambda kv: kv[1])
    return {"best": (bE, bn, bl), "worst": (wE, wn, wl)}


# -----------------------------------------------------------------------------
# the full-length runs

def finalist_rows(runs) -> list:
    """budget, finalist, loss at the first seed, kept: budgets with more than one finalist."""
    return [[b, d, loss, d == runs.chosen[b].describe()]
            for b, fl in runs.finalist_losses.items() if len(fl) > 1 for d, loss in fl]


def final_metrics(runs, search: dict) -> dict:
    return {str(b): {"config": runs.chosen[b].__dict__, "context": runs.chosen[b].context, "lr": search[b].lr,
                     "finalists": runs.finalist_losses[b],
                     "loss_by_seed": {str(s): v for s, v in runs.losses[b].items()},
                     "train_seconds_by_seed": {str(s): v for s, v in runs.seconds[b].items()}}
            for b in runs.losses}


def search_budget_rows(search: dict, tf_search: dict, steps: int) -> list:
    """budget, n-gram runs, transformer runs, steps per run, n-gram steps (runs x steps),
    transformer steps: what each family's search spent at each budget."""
    rows = []
    for b, s in search.items():
        t = tf_search.get(b)
        n, m = search_runs(s), search_runs(t) if t else 0
        why = "not searched under this profile" if b not in tf_search else "no transformer fits"
        rows.append([b, n, m if t else why, steps, n * steps, m * steps])
    return rows


def search_budget_summary(search: dict, tf_search: dict, steps: int) -> dict:
    """Over the budgets where a transformer was searched: each family's search steps in all,
    and the budgets where the transformer made fewer runs (fewer shapes fit than the n-gram ran)."""
    both = [b for b, t in tf_search.items() if t is not None]
    return {"ngram_steps": sum(search_runs(search[b]) for b in both) * steps,
            "transformer_steps": sum(search_runs(tf_search[b]) for b in both) * steps,
            "fewer": [b for b in both if search_runs(tf_search[b]) < search_runs(search[b])]}


def transformer_rows(tf_search: dict, tf_runs, tf_spread: dict) -> list:
    """budget, the kept transformer, its learning rate, mean ± sd over the seeds (nats/char);
    "no transformer fits" where none does."""
    rows = []
    for b, t in tf_search.items():
        if t is None or b not in tf_spread:
            rows.append([b, "no transformer fits", "–", "–"])
            continue
        x = tf_spread[b]
        rows.append([b, tf_runs.chosen[b].describe(), f"{t.lr:g}", f"{x.mean():.3f} ± {_sd(x):.3f}"])
    return rows


def transformer_metrics(tf_search: dict, tf_runs) -> dict:
    """The transformer's search and runs as metrics.json keeps them (None where none fits)."""
    out = {}
    for b, t in tf_search.items():
        if t is None or b not in tf_runs.losses:
            out[str(b)] = None
            continue
        out[str(b)] = {"search_runs": search_runs(t), "search_seconds": t.seconds, "lr": t.lr,
                       "lr_losses": {str(k): v for k, v in t.lr_losses.items()},
                       "shapes": {"E{}_L{}_H{}_block{}".format(*k): v for k, v in t.shape_losses.items()},
                       "config": tf_runs.chosen[b].describe(), "finalists": tf_runs.finalist_losses[b],
                       "loss_by_seed": {str(s): v for s, v in tf_runs.losses[b].items()},
                       "train_seconds_by_seed": {str(s): v for s, v in tf_runs.seconds[b].items()}}
    return out


def family_seconds(search: dict, runs, budgets=None) -> float:
    """Seconds a family spent on its searches and its kept runs at `budgets` (default: every
    budget it trained)."""
    budgets = list(runs.losses) if budgets is None else list(budgets)
    return sum(search[b].seconds + sum(runs.seconds[b].values()) for b in budgets)


def contest_rows(budgets, spread: dict, tf_spread: dict) -> list:
    """budget, n-gram bits/char (mean ± sd), transformer bits/char (mean ± sd), transformer −
    n-gram (bits/char), the better family by the mean over seeds, and whether the gap is
    under two standard deviations of either family's seeds (narrow): budgets with both."""
    rows = []
    for b in budgets:
        if b not in tf_spread:
            continue
        a, t = spread[b] / LN2, tf_spread[b] / LN2
        gap = float(t.mean() - a.mean())
        winner = "transformer" if gap < 0 else "n-gram"
        narrow = abs(gap) < 2 * max(_sd(a), _sd(t))
        rows.append([b, f"{a.mean():.3f} ± {_sd(a):.3f}", f"{t.mean():.3f} ± {_sd(t):.3f}", f"{gap:+.3f}",
                     winner + (" (narrow)" if narrow else "")])
    return rows


# -----------------------------------------------------------------------------
# our series beside atto's and beside the transformer

def seed_spread(runs) -> dict:
    """{budget: losses over the seeds, in seed order}."""
    return {b: np.array(list(by_seed.values())) for b, by_seed in runs.losses.items()}


def _sd(x: np.ndarray) -> float:
    return float(x.std(ddof=1)) if len(x) > 1 else 0.0


def verdicts(budgets, spread: dict, tf_spread: dict) -> dict:
    """Where the mean over seeds is below atto's published loss (wins) or not (losses; a
    budget atto did not publish counts as not won), the wins by less than two standard
    deviations of our seeds (narrow), the budgets where the transformer's mean over seeds
    is below ours, and the transformer's mean distance from ours where both exist."""
    atto = {b: PUBLISHED.get(b, (None, None, float("nan")))[2] for b in budgets}
    wins = [b for b in budgets if spread[b].mean() < atto[b]]
    both = [b for b in budgets if b in tf_spread]
    return {"wins": wins, "losses": [b for b in budgets if b not in wins],
            "narrow": [b for b in wins if atto[b] - spread[b].mean() < 2 * _sd(spread[b])],
            "tf_better": [b for b in both if tf_spread[b].mean() < spread[b].mean()],
            "tf_gap": float(np.mean([tf_spread[b].mean() - spread[b].mean() for b in both])) if both
            else float("nan")}


def comparison_rows(budgets, chosen: dict, ours: dict, spread: dict, tf_spread: dict) -> list:
    """budget, atto context, atto loss, our configuration, context, our first seed's loss,
    its bits per character, mean ± sd over the seeds, the transformer's mean, ours − atto."""
    rows = []
    for b in budgets:
        a_ctx, _, a_loss = PUBLISHED.get(b, (None, None, float("nan")))
        s = spread[b]
        rows.append([b, a_ctx, f"{a_loss:.2f}", chosen[b].describe(), chosen[b].context, ours[b], ours[b] / LN2,
                     f"{s.mean():.3f} ± {_sd(s):.3f}", float(tf_spread[b].mean()) if b in tf_spread else "–",
                     f"{ours[b] - a_loss:+.3f}"])
    return rows


def comparison_metrics(budgets, ours: dict, spread: dict, tf_spread: dict) -> dict:
    """The comparison as metrics.json keeps it, for the budgets atto published."""
    return {str(b): {"atto": PUBLISHED[b][2], "ours_seed0": ours[b], "ours_bits": ours[b] / LN2,
                     "ours_mean": float(spread[b].mean()), "ours_sd": _sd(spread[b]),
                     "transformer": float(tf_spread[b].mean()) if b in tf_spread else None,
                     "transformer_sd": _sd(tf_spread[b]) if b in tf_spread else None}
            for b in budgets if b in PUBLISHED}


def comparison_claims(comparison: dict) -> dict:
    """The chapter's claims ({key: (value, unit, reason)}) from comparison_metrics: our
    mean over seeds at 8,192 and 64 parameters, and at how many of the budgets where a
    transformer was trained its mean over seeds is below ours."""
    def mean_at(b):
        row = comparison.get(str(b))
        return (row["ours_mean"], "nats per character", None) if row else \
            (None, "nats per character", f"the budget {b:,} was not trained under this profile")
    both = [b for b, row in comparison.items() if row.get("transformer") is not None]
    better = [b for b in both if comparison[b]["transformer"] < comparison[b]["ours_mean"]]
    return {"atto_8192_nats_per_char": mean_at(8192), "atto_64_nats_per_char": mean_at(64),
            "transformer_better_budgets": (len(better), "budgets", None),
            "compared_budgets": (len(both), "budgets", None)}


def shortfall_rows(losses, ours: dict, spread: dict, count_models: dict, passes: float) -> list:
    """budget, ours, atto, the likely reason: for each budget where we are not below atto."""
    uni, big = count_models["unigram counts"], count_models["bigram counts"]
    rows = []
    for b in losses:
        a = PUBLISHED[b][2]
        if a < big and b < 4096:
            why = (f"atto's figure is below what a full bigram table reaches on our split ({big:.3f}, "
                   f"{64 * 64:,} free counts) with {b:,} parameters, while ours is "
                   f"{abs(ours[b] - big):.3f} {'above' if ours[b] > big else 'below'} that table")
        elif b <= 128:
            why = (f"with {b} parameters and 64 output symbols there is about one number per symbol: ours is "
                   f"{abs(uni - ours[b]):.3f} nats/char {'below' if ours[b] < uni else 'above'} the context-free "
                   f"unigram table ({uni:.3f})")
        else:
            why = (f"our seeds spread over {spread[b].max() - spread[b].min():.3f} nats/char and each run saw "
                   f"only {passes:.2f} passes over the data")
        rows.append([b, ours[b], f"{a:.2f}", why])
    return rows


def monotone_steps(budgets, ours: dict) -> int:
    """At how many steps from one budget to the next our loss falls."""
    return sum(ours[a] > ours[b] for a, b in itertools.pairwise(budgets))


def json_size_rows(manifest: dict) -> list:
    """model, our JSON, atto's JSON as published, bytes per parameter (KB = 1,000 bytes)."""
    rows = []
    for m in manifest["models"]:
        b = m["num_params"]
        rows.append([m["name"], f"{m['bytes'] / 1000:.1f} KB", PUBLISHED[b][1] if b in PUBLISHED else "–",
                     f"{m['bytes'] / b:.1f}"])
    return rows
