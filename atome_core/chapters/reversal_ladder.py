"""Chapter 5's ladder: the published 944K pair, our runs at four sizes, and where they cross.

What the chapter shows, built from what it measured: the rows of its tables, the
numbers and short phrases its prose glues in, and its figure of the ladder. The
statistics (medians over seeds, the crossover, the router) live in
atome_core.chapters.reversal; this module only reads them.

The glued phrases are plain text (no Markdown: a backtick would show as one). Numbers
that a build may not have (the published checkpoints are absent from a fresh
clone; one rung has no crossover) are glued as text: "n/a" rather than a number, so the
chapter's prose renders in every build.
"""
import math

import numpy as np

from ..models import presets
from ..recipe import steps_for
from ..train import benchmark_steps, torch_threads
from .reversal import crossover, per_token_stats

LN2 = math.log(2)
NOT_MEASURED = "n/a"
PUBLISHED_CLAIMS = (("published_windows", "windows of 256 bytes"),
                    ("published_routed_nats_per_byte", "nats per byte"),
                    ("published_vanilla_nats_per_byte", "nats per byte"))
PUBLISHED_ABSENT = "the published checkpoints (../shared/interop) are absent"


def tokens_for(tokens, size: str) -> int:
    """The training bytes of one run at `size`: one number for every size, or {size: number}."""
    return tokens[size] if isinstance(tokens, dict) else tokens


def budget_text(tokens, sizes) -> str:
    """The token budget as the summary says it: "4,096" or "15k: 4,096, 60k: 8,192"."""
    if not isinstance(tokens, dict):
        return f"{tokens:,}"
    return ", ".join(f"{s}: {tokens_for(tokens, s):,}" for s in sizes)


# -----------------------------------------------------------------------------
# the ladder's shapes

def shape_of(family: str, config: dict) -> str:
    """A model's shape in a few words, from its config as a dict."""
    if family == "routed":
        return f"d {config['d_model']}, {config['n_layers']} layers, d_head {config['d_head']}"
    heads = (f"{config['n_heads']} heads" if family == "vanilla"
             else f"{config['n_heads']} q / {config['n_kv_heads']} kv heads")
    return f"d {config['d_model']}, {config['n_layers']} layers, {heads}, d_ff {config['d_ff']}"


def ladder_rows(table_rows: list[dict]) -> tuple[list, list]:
    """(header, rows) of the ladder table, from atome_core.recipe.ladder_table."""
    header = ["rung", "family", "shape", "parameters", "vs routed", "deployed as", "bytes"]
    rows = [[r["size"], r["family"], shape_of(r["family"], r["config"]), r["params"],
             f"{r['gap_to_routed']:+.2%}", r["deployed"]["format"], r["deployed"]["bytes"]] for r in table_rows]
    return header, rows


def worst_gap(table_rows: list[dict]) -> float:
    """The largest parameter gap, as a fraction, of any baseline to the routed model of its rung."""
    return max(abs(r["gap_to_routed"]) for r in table_rows)


# -----------------------------------------------------------------------------
# the published pair

def score_published(pair: dict, sample_windows, device: str, threads) -> tuple[dict, dict]:
    """Score each published model ({name: (model, info)}) on the sample's windows.

    Returns (published, stats): per model its parameters, windows, nats and bits per
    byte and the kit's own validation figure; and its per_token_stats."""
    published, stats = {}, {}
    for name, (model, info) in pair.items():
        model.to(device)
        with torch_threads(threads):
            stats[name] = per_token_stats(model, sample_windows, batch_size=16, desc=f"published {name}")
        nats = float(stats[name]["loss"].mean())
        published[name] = {"parameters": model.num_params(), "windows": len(sample_windows),
                           "nats_per_byte": nats, "bits_per_byte": nats / LN2,
                           "kit_val_nats_per_byte": float(info["val_loss"]), "kit_step": info.get("step")}
    return published, stats


def published_rows(published: dict) -> tuple[list, list]:
    """(header, rows) of the published pair's table (numbers to four decimals)."""
    header = ["model", "parameters", "windows", "nats per byte", "bits per byte",
              "the kit's validation split (nats per byte)"]
    rows = [[f"{name} 944K", p["parameters"], p["windows"], p["nats_per_byte"], p["bits_per_byte"],
             p["kit_val_nats_per_byte"]] for name, p in published.items()]
    return header, rows


def published_gap(published: dict) -> float | None:
    """The routed model's loss over the vanilla model's, minus one (positive: routed behind)."""
    if not published:
        return None
    return published["routed"]["nats_per_byte"] / published["vanilla"]["nats_per_byte"] - 1


def published_glue(published: dict) -> dict:
    """The published section's numbers and verdicts as text for {glue:text} ("n/a" when absent)."""
    if not published:
        return {"published_status": "This build has no published checkpoints: the numbers of this "
                                    "section and of its summary read n/a.",
                "published_verdict": "not measured in this build",
                **{k: NOT_MEASURED for k in ("published_windows", "published_routed_nats",
                                             "published_vanilla_nats", "published_routed_bits",
                                             "published_vanilla_bits", "published_gap", "kit_routed_nats",
                                             "kit_vanilla_nats", "kit_gap")}}
    r, v = published["routed"], published["vanilla"]
    behind = r["nats_per_byte"] > v["nats_per_byte"]
    return {"published_status": ("The reversal holds on the sample: the FP32 baseline is ahead." if behind else
                                 "On the sample the routed model is ahead: no reversal here."),
            "published_verdict": ("the reversal is real in the published weights" if behind else
                                  "on this sample the published weights do not show the reversal"),
            "published_windows": f"{r['windows']:,}",
            "published_routed_nats": f"{r['nats_per_byte']:.4f}",
            "published_vanilla_nats": f"{v['nats_per_byte']:.4f}",
            "published_routed_bits": f"{r['bits_per_byte']:.3f}",
            "published_vanilla_bits": f"{v['bits_per_byte']:.3f}",
            "published_gap": f"{published_gap(published):+.1%}",
            "kit_routed_nats": f"{r['kit_val_nats_per_byte']:.4f}",
            "kit_vanilla_nats": f"{v['kit_val_nats_per_byte']:.4f}",
            "kit_gap": f"{r['kit_val_nats_per_byte'] / v['kit_val_nats_per_byte'] - 1:+.1%}"}


def record_published_claims(results, published: dict) -> None:
    """The claims table's three numbers of the published pair, or why they are missing."""
    values = ({} if not published else
              {"published_windows": published["routed"]["windows"],
               "published_routed_nats_per_byte": published["routed"]["nats_per_byte"],
               "published_vanilla_nats_per_byte": published["vanilla"]["nats_per_byte"]})
    for key, unit in PUBLISHED_CLAIMS:
        if published:
            results.claim(key, values[key], unit)
        else:
            results.claim(key, None, reason=PUBLISHED_ABSENT)


# -----------------------------------------------------------------------------
# our runs

def first_seed_models(jobs: list, finished: list, seeds: dict, family: str = "routed") -> dict:
    """{size: trained model} of `family`'s first seed at each size, from run_jobs' results."""
    from ..train import load_state
    models = {}
    for job, result in zip(jobs, finished):
        fam, size, seed = job.name.split("|")
        if fam == family and int(seed) == seeds[size][0]:
            models[size] = load_state(presets.build_model(family, size), result.state_dict)
    return models


def recipe_facts(cfg) -> dict:
    """The training recipe of a run (its TrainConfig) as the prose quotes it."""
    return {"batch_size": cfg.batch_size, "grad_accum": cfg.grad_accum, "seq_len": cfg.seq_len,
            "lr": f"{cfg.lr:g}", "min_lr": f"{cfg.min_lr:g}", "betas": str(tuple(cfg.betas)),
            "weight_decay": f"{cfg.weight_decay:g}", "grad_clip": f"{cfg.grad_clip:g}",
            "bf16": "on" if cfg.autocast_bf16 else "off"}


def budget_rows(cells: list[dict], sizes, seeds: dict, train_bytes: int) -> tuple[list, list]:
    """(header, rows): per trained rung its steps, training bytes, passes over the text, seeds."""
    header = ["rung", "steps", "training bytes", "passes over the training text", "seed numbers"]
    rows = []
    for size in sizes:
        c = next(c for c in cells if c["size"] == size)
        rows.append([size, c["steps"], c["tokens"], f"{c['tokens'] / train_bytes:.1f}",
                     ", ".join(map(str, seeds[size]))])
    return header, rows


def most_passes(cells: list[dict], train_bytes: int) -> float:
    return max(c["tokens"] for c in cells) / train_bytes


def passes_note(passes: float) -> str:
    if passes > 10:
        return ("Past ten passes these runs measure memorisation as much as learning. The kit trained on "
                "the whole TinyStories corpus; give it with the corpus_path parameter or $ATOME_TINYSTORIES.")
    return "Few enough passes that the runs measure learning, not memorisation."


def skipped_cost_seconds(families, skipped_sizes, train_tokens, recipe, tokens) -> dict:
    """{size: seconds of one core} that one seed of every family would take at each skipped
    size and its budget, from a few training steps timed now."""
    models = {f"{family} {size}": presets.build_model(family, size) for size in skipped_sizes for family in families}
    timing = benchmark_steps(models, train_tokens, recipe.batch_size, recipe.seq_len, rounds=2, warmup=1)
    per_size = {}
    for size in skipped_sizes:
        steps = steps_for(tokens_for(tokens, size), recipe) * recipe.grad_accum
        per_size[size] = sum(timing[f"{family} {size}"]["seconds_per_step"] for family in families) * steps
    return per_size


def skipped_note(profile: str, skipped_sizes, n_families: int, cost_seconds: dict | None) -> str:
    """What the profile leaves out of the ladder and, when timed, what it would cost."""
    if not skipped_sizes:
        return f"Every rung is trained at the {profile} profile."
    plural = "s" if len(skipped_sizes) > 1 else ""
    note = f"Not trained at the {profile} profile: the {', '.join(skipped_sizes)} rung{plural}."
    if cost_seconds:
        note += " " + " ".join(
            f"One seed of the {n_families} families at {size} and this budget would take about "
            f"{secs / 60:.0f} minutes of one core here (steps timed just now)." for size, secs in cost_seconds.items())
        note += (" Added to the rungs above, that would take this chapter past its share of the book's time "
                 "(about 8 of the 45 minutes on two cores); the paper profile trains it with the kit's recipe "
                 "on a GPU.")
    return note


def results_rows(final: dict, families, sizes, seeds: dict) -> tuple[list, list]:
    """(header, rows): median bits per byte [range] per family and rung, and the best family."""
    header = ["rung", *families, "seeds", "best"]
    rows = [[size, *(final[(f, size)] for f in families), len(seeds[size]),
             min(families, key=lambda f: final[(f, size)]["median"])] for size in sizes]
    return header, rows


# -----------------------------------------------------------------------------
# where the curves cross

def crossing(final: dict, x_of: dict, other: str, sizes, unit: str) -> tuple[str, str, list]:
    """(shared range, what the curves do, crossings) of the routed curve against `other`'s.

    In parameters the rungs are matched; in bytes they are not, so each family's median
    curve is interpolated in log(x) on the range both cover."""
    xs = [x_of[("routed", s)] for s in sizes]
    a = [final[("routed", s)]["median"] for s in sizes]
    ox = [x_of[(other, s)] for s in sizes]
    ob = [final[(other, s)]["median"] for s in sizes]
    lo, hi = max(min(xs), min(ox)), min(max(xs), max(ox))
    if hi < 2 * lo:
        # the routed rungs are 3-4x smaller on disk than the baselines' rungs of the same count:
        # little or no common range (the equal-bytes pairs say what there is)
        shared = "none" if lo >= hi else f"{lo:,.0f} to {hi:,.0f}"
        return shared, "too little shared range to look for a crossing", []
    grid = np.exp(np.linspace(np.log(lo), np.log(hi), 64))
    ra_ = np.interp(np.log(grid), np.log(xs), a)
    rb_ = np.interp(np.log(grid), np.log(ox), ob)
    found = crossover(grid, ra_, rb_)
    shared = f"{lo:,.0f} to {hi:,.0f}"
    if not found:
        side = "below" if ra_[0] < rb_[0] else "above"
        return shared, f"the routed curve stays {side} the {other} curve: no crossover", []
    reading = "; ".join(f"they cross near {c['at']:,.0f} {unit} (routed {'better' if c['a_better_below'] else 'worse'} "
                        f"below, {'worse' if c['a_better_below'] else 'better'} above)" for c in found)
    return shared, reading, found


def crossings_table(final: dict, params: dict, disk: dict, families, sizes) -> tuple[dict, list, list]:
    """(crossings, header, rows): every baseline against the routed curve, in parameters and bytes."""
    crossings, rows = {}, []
    for other in [f for f in families if f != "routed"]:
        for x_of, unit in [(params, "parameters"), (disk, "bytes")]:
            shared, reading, found = crossing(final, x_of, other, sizes, unit)
            crossings[f"routed_vs_{other}_{unit}"] = found
            rows.append([other, unit, shared, reading])
    return crossings, ["baseline", "measured in", "range both curves cover", "routed against the baseline"], rows


def equal_bytes_pairs(final: dict, disk: dict, families, sizes) -> list[dict]:
    """Each baseline rung against the routed rung whose blob is nearest in size (within 1.5x):
    the comparison of models that fit the same storage."""
    pairs = []
    for other in [f for f in families if f != "routed"]:
        for s in sizes:
            near = min(sizes, key=lambda r: abs(math.log(disk[("routed", r)] / disk[(other, s)])))
            ratio = disk[("routed", near)] / disk[(other, s)]
            if 1 / 1.5 <= ratio <= 1.5:
                pairs.append({"baseline": other, "baseline_size": s, "routed_size": near,
                              "baseline_bytes": disk[(other, s)], "routed_bytes": disk[("routed", near)],
                              "baseline_bpb": final[(other, s)]["median"],
                              "routed_bpb": final[("routed", near)]["median"]})
    return pairs


def equal_bytes_rows(pairs: list[dict]) -> tuple[list, list]:
    header = ["routed rung", "routed bytes", "routed bits per byte", "baseline", "baseline bytes",
              "baseline bits per byte"]
    rows = [[p["routed_size"], p["routed_bytes"], p["routed_bpb"], f"{p['baseline']} {p['baseline_size']}",
             p["baseline_bytes"], p["baseline_bpb"]] for p in pairs]
    return header, rows


def where_they_cross(crossings: dict, n_sizes: int) -> str:
    """Where the routed and vanilla medians cross, in parameters, as the summary says it."""
    if n_sizes < 2:
        return "nowhere we could look: one rung only"
    found = crossings.get("routed_vs_vanilla_parameters", [])
    if not found:
        return "nowhere between the rungs we trained"
    return "; ".join(f"near {c['at']:,.0f} parameters (routed {'ahead' if c['a_better_below'] else 'behind'} below)"
                     for c in found)


# -----------------------------------------------------------------------------
# figures

def crossover_figure(final: dict, params: dict, disk: dict, families, sizes, published: dict):
    """Bits per byte against parameters and against bytes on disk, with the published pair."""
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, x_of, xlabel in [(axes[0], params, "parameters"), (axes[1], disk, "deployed bytes")]:
        for i, family in enumerate(families):
            xs = [x_of[(family, s)] for s in sizes]
            med = np.array([final[(family, s)]["median"] for s in sizes])
            lo = np.array([final[(family, s)]["min"] for s in sizes])
            hi = np.array([final[(family, s)]["max"] for s in sizes])
            ax.errorbar(xs, med, yerr=[med - lo, hi - med], fmt="o-", ms=4, capsize=3, color=f"C{i}", label=family)
            if published and family in published:
                x = published[family]["parameters"] if xlabel == "parameters" else disk[(family, "944k")]
                ax.plot(x, published[family]["bits_per_byte"], marker="*", ms=12, ls="none", color=f"C{i}",
                        markeredgecolor="k", label=f"published {family} 944K (sample)")
        ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("validation bits per byte")
        ax.grid(alpha=0.3, which="both")
    axes[0].set_title("bits per byte vs parameters (median, range over seeds)", fontsize=9, loc="left")
    axes[1].set_title("bits per byte vs bytes on disk", fontsize=9, loc="left")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return fig
