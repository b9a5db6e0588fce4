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

from ..ledger import RunShape, job_shape
from ..models import presets
from ..recipe import (
    BOOK_RECIPE,
    KIT_LR,
    RECIPES,
    best_rates,
    book_cell_job,
    book_steps,
    book_steps_for,
    book_tokens,
    cell_job,
    pick_device,
    rate_at_edge,
)
from ..train import torch_threads
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

def ladder_jobs(recipe, families, seeds: dict, sizes, tokens, rates: dict, train_tokens, val_tokens,
                device: str = "auto") -> list:
    """Every cell of the ladder (family, size, seed) as a TrainJob. recipe "book": the book's
    recipe for `tokens` training bytes, each family at its rate in `rates`; otherwise a recipe
    of atome_core.recipe ("paper": the kit's 944K recipe) at its own rate, on `device`."""
    if recipe == "book":
        return [book_cell_job(f, size, book_steps_for(tokens_for(tokens, size)), rates[f], s, train_tokens,
                              val_tokens) for size in sizes for f in families for s in seeds[size]]
    return [cell_job(f, size, tokens_for(tokens, size), s, train_tokens, val_tokens, recipe=recipe, device=device)
            for size in sizes for f in families for s in seeds[size]]


def sweep_text(sweep: dict, rates: dict, steps: int, size: str, runs: int, seconds: float, profile: str) -> str:
    """What the learning-rate sweep did and chose, as one paragraph (or why none ran)."""
    chosen = ", ".join(f"{f} {lr:g}" for f, lr in rates.items())
    if not sweep:
        return f"No sweep runs at the {profile} profile: every family trains at the recipe's own rate ({chosen})."
    edge = [f for f, scores in sweep.items() if rate_at_edge(scores)]
    return (f"The {runs} runs of {steps:,} steps at the {size} rung took {seconds:,.0f} s. Chosen: {chosen}. "
            + (f"At the edge of the rates tried: {', '.join(edge)} (a wider sweep could still move it)."
               if edge else "Every chosen rate lies inside the rates tried."))


def first_seed_models(jobs: list, finished: list, seeds: dict, family: str = "routed") -> dict:
    """{size: trained model} of `family`'s first seed at each size, from run_jobs' results."""
    from ..train import load_state
    models = {}
    for job, result in zip(jobs, finished):
        fam, size, seed = job.name.split("|")
        if fam == family and int(seed) == seeds[size][0]:
            models[size] = load_state(presets.build_model(family, size), result.state_dict)
    return models


def recipe_rows(cfg, rates: dict) -> tuple[list, list]:
    """(header, rows): the training recipe of the ladder's runs (one run's TrainConfig) and
    each family's learning rate."""
    schedule = ("constant, no warmup" if cfg.schedule == "constant" else
                f"cosine from the peak to {cfg.min_lr:g} after {cfg.warmup_steps:,} warmup steps")
    rows = [["optimizer", f"AdamW, betas {tuple(cfg.betas)}, weight decay {cfg.weight_decay:g}"],
            ["learning rate", f"{schedule}; peak " + ", ".join(f"{f} {lr:g}" for f, lr in rates.items())],
            ["batch", f"{cfg.batch_size} x {cfg.grad_accum} windows of {cfg.seq_len} bytes"],
            ["gradient clipping", "none" if cfg.grad_clip is None else f"at {cfg.grad_clip:g}"],
            ["BF16 autocast", "on" if cfg.autocast_bf16 else "off"]]
    return ["", "every run of the ladder"], rows


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


def skipped_note(profile: str, skipped_sizes) -> str:
    """What the profile leaves out of the ladder."""
    if not skipped_sizes:
        return f"Every rung is trained at the {profile} profile."
    plural = "s" if len(skipped_sizes) > 1 else ""
    return (f"Not trained at the {profile} profile: the {', '.join(skipped_sizes)} rung{plural} "
            "(the cpu and paper profiles train every rung).")


def budget_note(ladder_steps: int, book_steps: int, profile: str, worker_seconds: float, workers: int,
                time_share: float) -> str:
    """Why the ladder trains fewer steps than the book's budget: its runs' measured training
    time, scaled to the book's budget, against the chapter's share of the book's time."""
    if ladder_steps >= book_steps:
        return f"Every rung trains the book's budget of {book_steps:,} steps at the {profile} profile."
    scaled = worker_seconds * book_steps / ladder_steps / workers
    fits = (f"past the chapter's share of the book's time (about {time_share:,.0f} s)" if scaled > time_share else
            f"within the chapter's share of the book's time (about {time_share:,.0f} s) on this machine, so this "
            "profile could afford the book's budget here")
    return (f"Every rung trains {ladder_steps:,} steps ({book_tokens(ladder_steps):,} bytes), fewer than the "
            f"book's {book_steps:,} at the {profile} profile. The ladder's runs took {worker_seconds:,.0f} s of "
            f"training in all; at the book's budget they would take about {scaled:,.0f} s on {workers} cores, "
            f"{fits}. The budget curves below show what the shorter budget changes at 60K.")


def results_rows(final: dict, families, sizes, seeds: dict) -> tuple[list, list]:
    """(header, rows): median bits per byte [range] per family and rung, and the best family."""
    header = ["rung", *families, "seeds", "best"]
    rows = [[size, *(final[(f, size)] for f in families), len(seeds[size]),
             min(families, key=lambda f: final[(f, size)]["median"])] for size in sizes]
    return header, rows


# -----------------------------------------------------------------------------
# each family's rate, and the budget curves at 60K

def family_rates(families, sweep: dict, default_lr: float) -> dict:
    """{family: learning rate}: the sweep's best (recipe.best_rates) for each swept family,
    `default_lr` for the others (no sweep: the recipe's own rate)."""
    best = best_rates(sweep)
    return {f: best.get(f, default_lr) for f in families}


def curve_budget(recipe: str, curve_steps: int | None, profile: str) -> int:
    """The budget curves' steps: `curve_steps`, or the book's budget at `profile` when None;
    0 (no curves) unless the ladder trains the book's recipe."""
    if recipe != "book":
        return 0
    return book_steps(profile) if curve_steps is None else curve_steps


def curve_jobs(families, size: str, steps: int, rates: dict, seed: int, train_tokens, val_tokens,
               eval_every: int, ladder_steps: int) -> list:
    """One book-recipe run per family at `size` for `steps` steps, evaluated every `eval_every`
    steps on the whole validation text (so that the point at the ladder's budget is the ladder's
    own measure; constant rate: it is the ladder's run with the same seed, step for step)."""
    if eval_every < 1 or steps % eval_every or ladder_steps % eval_every:
        raise ValueError(f"eval_every {eval_every} must divide the curves' {steps} steps and the ladder's "
                         f"{ladder_steps}")
    if ladder_steps > steps:
        raise ValueError(f"the curves' {steps} steps must reach the ladder's {ladder_steps}")
    per_batch = BOOK_RECIPE["seq_len"] * BOOK_RECIPE["batch_size"]
    batches = -(-(len(val_tokens) - 1) // per_batch)     # every validation window
    return [book_cell_job(f, size, steps, rates[f], seed, train_tokens, val_tokens, eval_every=eval_every,
                          eval_batches=batches, name=f"curve|{f}|{size}|{seed}") for f in families]


def curve_points(history: list) -> list[tuple[int, float]]:
    """[(training bytes, validation bits per byte)] at a run's evaluation points."""
    return [(r["tokens_seen"], r["val_loss"] / LN2) for r in history if "val_loss" in r]


def bpb_at(points: list, tokens: int) -> float:
    """A curve's value at exactly `tokens` training bytes (one of its evaluation points)."""
    for t, v in points:
        if t == tokens:
            return v
    raise ValueError(f"the curve has no evaluation point at {tokens:,} training bytes")


def ranking(scores: dict) -> list:
    """The families best first, from {family: bits per byte} (lower is better; ties by name)."""
    return sorted(scores, key=lambda f: (scores[f], f))


def ranking_text(scores: dict) -> str:
    """"modern (2.456) < vanilla (2.501) < routed (2.610)": best first."""
    return " < ".join(f"{f} ({scores[f]:.3f})" for f in ranking(scores))


def rankings_glue(curves: dict, ladder_tokens: int, ladder_medians: dict) -> dict:
    """The budget section's verdict as text: the ranking of the families ({family: curve_points})
    at the ladder's budget and at the curves' end, whether it holds, and the ladder's own ranking
    at the rung (medians over seeds, {family: bits per byte})."""
    if not curves:
        return {"rank_ladder_medians": ranking_text(ladder_medians), "rank_verdict": "No budget curves at this profile.",
                **{k: NOT_MEASURED for k in ("rank_ladder_budget", "rank_book_budget", "rank_holds", "curve_tokens",
                                             "ladder_tokens")}}
    at_ladder = {f: bpb_at(p, ladder_tokens) for f, p in curves.items()}
    at_end = {f: p[-1][1] for f, p in curves.items()}
    end_tokens = {p[-1][0] for p in curves.values()}
    if len(end_tokens) != 1:
        raise ValueError("the budget curves end at different budgets")
    short, long = ranking(at_ladder), ranking(at_end)
    same = short == long
    swapped = [f"{a} is ahead of {b} at the ladder's budget and behind it at the longer one"
               for i, a in enumerate(short) for b in short[i + 1:] if long.index(a) > long.index(b)]
    lead = (f"{short[0]} leads at both" if short[0] == long[0] else
            f"{short[0]} leads at the ladder's budget, {long[0]} at the longer one")
    verdict = ("The ranking at the ladder's budget still holds at the longer one." if same else
               f"The ranking changes with the budget: {'; '.join(swapped)} ({lead}). The ladder's ranking at this "
               "rung is a statement about a short budget, not about the families' end points; chapters 4 and 9, "
               "which train the longer budget, see the longer one's ranking.")
    return {"rank_ladder_budget": ranking_text(at_ladder), "rank_book_budget": ranking_text(at_end),
            "rank_ladder_medians": ranking_text(ladder_medians), "rank_holds": "yes" if same else "no",
            "rank_verdict": verdict, "curve_tokens": f"{end_tokens.pop():,}", "ladder_tokens": f"{ladder_tokens:,}"}


def curve_vs_ladder(curves: dict, cells: list[dict], size: str, seed: int, ladder_tokens: int) -> float | None:
    """The largest difference, in bits per byte, between a curve's point at the ladder's budget
    and the ladder's own run of that family, size and seed (0: the curve starts as the ladder's
    run; None: no such runs)."""
    diffs = [abs(bpb_at(curves[c["family"]], ladder_tokens) - c["val_bpb"]) for c in cells
             if c["size"] == size and c["seed"] == seed and c["family"] in curves]
    return max(diffs) if diffs else None


def budget_curve_figure(curves: dict, ladder_tokens: int, size: str):
    """Validation bits per byte against training bytes, one line per family, the ladder's budget marked."""
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 3.8))
    for i, (family, points) in enumerate(curves.items()):
        ax.plot(*zip(*points), "o-", ms=3, color=f"C{i}", label=family)
    ax.axvline(ladder_tokens, color="k", ls="--", lw=0.8, label="the ladder's budget")
    ax.set_xlabel("training bytes")
    ax.set_ylabel("validation bits per byte")
    ax.set_title(f"the {size} rung, seed 0, each family at its own rate", fontsize=9, loc="left")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


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

def crossover_figure(final: dict, params: dict, disk: dict, families, sizes):
    """Bits per byte of our runs against parameters and against bytes on disk. The published
    pair (30,000 steps of the kit's recipe) is not drawn here: its budget is thousands of times
    ours, so its points would not belong on these curves (its own table shows it)."""
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, x_of, xlabel in [(axes[0], params, "parameters"), (axes[1], disk, "deployed bytes")]:
        for i, family in enumerate(families):
            xs = [x_of[(family, s)] for s in sizes]
            med = np.array([final[(family, s)]["median"] for s in sizes])
            lo = np.array([final[(family, s)]["min"] for s in sizes])
            hi = np.array([final[(family, s)]["max"] for s in sizes])
            ax.errorbar(xs, med, yerr=[med - lo, hi - med], fmt="o-", ms=4, capsize=3, color=f"C{i}", label=family)
        ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("validation bits per byte")
        ax.grid(alpha=0.3, which="both")
    axes[0].set_title("bits per byte vs parameters (median, range over seeds)", fontsize=9, loc="left")
    axes[1].set_title("bits per byte vs bytes on disk", fontsize=9, loc="left")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


# -----------------------------------------------------------------------------
# the chapter's training, as a plan

def training_plan(P, device: str | None = None) -> list[RunShape]:
    """Every training run the chapter's notebook starts under parameters `P`: the learning-rate
    sweep (frontier_runs.sweep_jobs; none when P.sweep_lrs is empty), the ladder (`ladder_jobs`)
    and the budget curves (`curve_jobs`, at `curve_budget`'s steps), built as the notebook
    builds them with no text in them. The rates come from the sweep; they do not change a
    run's shape, so the plan gives every family the kit's rate in their place.

    `device` (default P.device, "auto": CUDA when this machine has it) is the device the
    notebook resolves (recipe.pick_device): the paper recipe autocasts to BF16 on CUDA only,
    so a paper-recipe plan made on a CPU machine (a paper-smoke build's, whose ledger records
    CPU runs) has autocast off, and one made on the GPU that `atome book --list` measures
    has it on. The book's recipe (sweep, curves, the ladder at smoke and cpu) trains on the CPU."""
    from .frontier_runs import sweep_jobs
    device = pick_device(P.device if device is None else device)
    no_text = np.zeros(0, np.int64)
    # cell_job and book_cell_job ask for one validation window of their recipe's length
    window = np.zeros(max([BOOK_RECIPE["seq_len"]] + [r.seq_len for r in RECIPES.values()]) + 1, np.int64)
    sweep = sweep_jobs("plan", no_text, window, P.families, P.sweep_size, P.sweep_lrs or [], P.sweep_steps, P.seed)
    rates = {f: KIT_LR for f in P.families}
    sizes = [s for s in presets.SIZES if s in P.seeds]
    jobs = ladder_jobs(P.recipe, P.families, P.seeds, sizes, P.tokens, rates, no_text, window, device)
    steps = curve_budget(P.recipe, P.curve_steps, P.profile)
    curves = curve_jobs(P.families, P.curve_size, steps, rates, P.seeds[P.curve_size][0], no_text, window,
                        P.eval_every, jobs[0].cfg.steps) if steps else []
    return [job_shape(job) for job in sweep + jobs + curves]
