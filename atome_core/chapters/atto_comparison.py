"""Chapter 1's comparisons: the atto project's published table beside our series and the
transformer of the same size, as table rows, verdicts and the chapter's claims.

Losses are nats per character on the validation split; `runs` is atto_series.SeriesRuns,
`tf` the {budget: {config, loss, ...} or None} of atto_series.train_transformers.
"""
import math

import numpy as np

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
    """budget, candidates, winner, context, learning rate, search loss, seconds."""
    return [[b, len(s.shape_losses) + len(s.variant_losses), s.best.describe(), s.best.context, f"{s.lr:g}",
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


def transformer_rows(tf: dict) -> list:
    """budget, transformer, loss (n/a where none fits)."""
    return [[b, t["config"].describe() if t else "no transformer fits", t["loss"] if t else None]
            for b, t in tf.items()]


def transformer_metrics(tf: dict) -> dict:
    return {str(b): (None if t is None else {"config": t["config"].describe(), "loss": t["loss"],
                                             "seconds": t["seconds"], "tokens": t["tokens"]})
            for b, t in tf.items()}


# -----------------------------------------------------------------------------
# our series beside atto's and beside the transformer

def seed_spread(runs) -> dict:
    """{budget: losses over the seeds, in seed order}."""
    return {b: np.array(list(by_seed.values())) for b, by_seed in runs.losses.items()}


def _sd(x: np.ndarray) -> float:
    return float(x.std(ddof=1)) if len(x) > 1 else 0.0


def verdicts(budgets, ours: dict, spread: dict, tf: dict) -> dict:
    """Where the mean over seeds is below atto's published loss (wins) or not (losses; a
    budget atto did not publish counts as not won), the wins by less than two standard
    deviations of our seeds (narrow), the budgets where the transformer beat our first
    seed, and the transformer's mean distance from our first seed where both exist."""
    atto = {b: PUBLISHED.get(b, (None, None, float("nan")))[2] for b in budgets}
    wins = [b for b in budgets if spread[b].mean() < atto[b]]
    both = [b for b in budgets if tf.get(b)]
    return {"wins": wins, "losses": [b for b in budgets if b not in wins],
            "narrow": [b for b in wins if atto[b] - spread[b].mean() < 2 * _sd(spread[b])],
            "tf_better": [b for b in both if tf[b]["loss"] < ours[b]],
            "tf_gap": float(np.mean([tf[b]["loss"] - ours[b] for b in both])) if both else float("nan")}


def comparison_rows(budgets, chosen: dict, ours: dict, spread: dict, tf: dict) -> list:
    """budget, atto context, atto loss, our configuration, context, our first seed's loss,
    its bits per character, mean ± sd over the seeds, the transformer's loss, ours − atto."""
    rows = []
    for b in budgets:
        a_ctx, _, a_loss = PUBLISHED.get(b, (None, None, float("nan")))
        s, t = spread[b], tf.get(b)
        rows.append([b, a_ctx, f"{a_loss:.2f}", chosen[b].describe(), chosen[b].context, ours[b], ours[b] / LN2,
                     f"{s.mean():.3f} ± {_sd(s):.3f}", t["loss"] if t else "–", f"{ours[b] - a_loss:+.3f}"])
    return rows


def comparison_metrics(budgets, ours: dict, spread: dict, tf: dict) -> dict:
    """The comparison as metrics.json keeps it, for the budgets atto published."""
    return {str(b): {"atto": PUBLISHED[b][2], "ours_seed0": ours[b], "ours_bits": ours[b] / LN2,
                     "ours_mean": float(spread[b].mean()), "ours_sd": _sd(spread[b]),
                     "transformer": tf[b]["loss"] if tf.get(b) else None}
            for b in budgets if b in PUBLISHED}


def comparison_claims(comparison: dict) -> dict:
    """The chapter's claims ({key: (value, unit, reason)}) from comparison_metrics: our
    mean over seeds at 8,192 and 64 parameters, and at how many of the budgets where a
    transformer fits it beat our first seed."""
    def mean_at(b):
        row = comparison.get(str(b))
        return (row["ours_mean"], "nats per character", None) if row else \
            (None, "nats per character", f"the budget {b:,} was not trained under this profile")
    both = [b for b, row in comparison.items() if row.get("transformer") is not None]
    better = [b for b in both if comparison[b]["transformer"] < comparison[b]["ours_seed0"]]
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
    return sum(ours[a] > ours[b] for a, b in zip(budgets, budgets[1:]))


def json_size_rows(manifest: dict) -> list:
    """model, our JSON, atto's JSON as published, bytes per parameter (KB = 1,000 bytes)."""
    rows = []
    for m in manifest["models"]:
        b = m["num_params"]
        rows.append([m["name"], f"{m['bytes'] / 1000:.1f} KB", PUBLISHED[b][1] if b in PUBLISHED else "–",
                     f"{m['bytes'] / b:.1f}"])
    return rows
