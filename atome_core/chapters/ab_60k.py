"""Chapter 4: the Atome kit's 60K A/B: its published figures, the four models compared,
and the tables and numbers the chapter shows.

Every run trains with the book's recipe (atome_core.recipe.book_config) at the kit's one
rate, so the claim is tested on its own terms. Each point of a run's curve scores the whole
validation split, so with a constant rate and no warmup the curve's point at step k is the
k-step run's result: from the curves come the ranking at each budget, the comparison with
the kit at its own step counts (`baseline_finding`) and the ablations' baseline. The chapter
publishes two routed models for chapters 3 and 7 (`PUBLISHED_MODELS`, `publish_models`).
The kit's published 944K checkpoints, scored beside the 60K models, are in published_944k.
"""
import math

import numpy as np

# The kit's published per-byte perplexities on the first 500 KB of TinyStories (90/10
# split, batch 16 x 64 bytes, AdamW 3e-4 constant): one seed at 3,000 steps, and
# medians of three seeds at 1,500 steps. It had no modern baseline.
KIT_PPL = {
    "3000 steps, 1 seed": {"routed": 6.31, "vanilla param-fair": 8.12, "vanilla flash-fair": 13.10},
    "1500 steps, median of 3 seeds": {"routed": 7.60, "vanilla param-fair": 9.86, "vanilla flash-fair": 18.69},
}
# the step count behind each of the kit's figures
KIT_STEPS = {"3000 steps, 1 seed": 3000, "1500 steps, median of 3 seeds": 1500}
KIT_TRAIN_SECONDS = {"routed": 195, "vanilla param-fair": 95}
# the four models of the main comparison, in the order of every table and figure
MAIN = ["routed", "vanilla param-fair", "vanilla flash-fair", "modern"]
# the training speed we set out to reach: routed at this fraction of vanilla's tokens per second
SPEED_TARGET = 0.8
# the kit's corpus fraction of the 90/10 split: first 90 % train, last 10 % validation
TRAIN_FRACTION = 0.9
# our routed model "matches" the kit's when its perplexity is within this fraction of the kit's
ROUTED_CLOSE = 0.10
# the routed run with 8-bit activations (chapter 7's integer path), trained on Shakespeare
ACT8 = "routed act8"
# name -> file in the chapter's results folder (chapters 3 and 7 read them)
PUBLISHED_MODELS = {"routed-60k-tinystories-seed0": "models/routed-60k-tinystories-seed0.safetensors",
                    "routed-60k-act8-shakespeare-seed0": "models/routed-60k-act8-shakespeare-seed0.safetensors"}


def ab_models(pathway_ablations: bool = False) -> dict:
    """name -> (model class, config) of the 60K A/B; with the ablations, the routed model
    trained without one pathway each."""
    from ..models import modern, routed, vanilla
    specs = {
        "routed": (routed.RoutedLM, routed.RoutedConfig()),
        "vanilla param-fair": (vanilla.VanillaGPT, vanilla.PARAM_FAIR_60K),
        "vanilla flash-fair": (vanilla.VanillaGPT, vanilla.FLASH_FAIR_60K),
        "modern": (modern.ModernLM, modern.ModernConfig()),
    }
    if pathway_ablations:
        for drop in routed.PATHWAYS:
            kept = tuple(p for p in routed.PATHWAYS if p != drop)
            specs[f"routed without {drop}"] = (routed.RoutedLM, routed.RoutedConfig(pathways=kept))
    return specs


# -- the data ------------------------------------------------------------------------------------


def tinystories_source(tinystories_path=None):
    """The TinyStories file the chapter reads: the path given, else the kit's sample in
    ../shared/interop when present, else None (the chapter runs on Shakespeare only)."""
    from ..paths import shared_interop_dir
    if tinystories_path is not None:
        return tinystories_path
    if shared_interop_dir() is not None:
        candidate = shared_interop_dir() / "tinystories_sample.txt"
        return candidate if candidate.exists() else None
    return None


def load_corpora(tinystories_path=None) -> tuple[dict, str]:
    """({name: corpus}, the main corpus): Shakespeare always; TinyStories from the path
    given, else the kit's sample in ../shared/interop when present. TinyStories is the
    main corpus when it is there."""
    from .. import data
    ts_path = tinystories_source(tinystories_path)
    corpora = {"shakespeare": data.load_corpus("shakespeare")}
    if ts_path is not None:
        corpora["tinystories"] = data.load_corpus("tinystories", path=str(ts_path))
    return corpora, "tinystories" if "tinystories" in corpora else "shakespeare"


def corpus_splits(corpora: dict, max_bytes: int) -> dict:
    """name -> (train, validation) int64 bytes: the first `max_bytes` bytes, the first
    90 % to train, the last 10 % to validate (the kit's split)."""
    from .. import data
    splits = {}
    for name, corpus in corpora.items():
        raw = data.encode_bytes(corpus.text)[:max_bytes]
        cut = int(len(raw) * TRAIN_FRACTION)
        splits[name] = (raw[:cut].astype(np.int64), raw[cut:].astype(np.int64))
    return splits


def seeds_by_corpus(corpus_names, main_corpus: str, seeds: list, other_seeds: list) -> dict:
    """corpus -> its training seeds: `seeds` on the main corpus, `other_seeds` elsewhere."""
    return {name: (seeds if name == main_corpus else other_seeds) for name in corpus_names}


def split_table(corpora: dict, splits: dict, seeds_of: dict) -> tuple[list, list]:
    """(header, rows) of the corpora as used: bytes in the file, used, train, validation, seeds."""
    header = ["corpus", "bytes in the file", "bytes used", "train", "validation", "seeds"]
    rows = [[name, corpora[name].n_bytes, len(tr) + len(va), len(tr), len(va), len(seeds_of[name])]
            for name, (tr, va) in splits.items()]
    return header, rows


# -- the models ----------------------------------------------------------------------------------


def model_sizes(specs: dict, names=MAIN) -> tuple[dict, dict]:
    """(name -> parameters, name -> deployed bytes) of freshly initialised models (seed 0)."""
    import torch

    from .. import evaluate
    params, sizes = {}, {}
    for name in names:
        cls, cfg = specs[name]
        torch.manual_seed(0)
        model = cls(cfg)
        params[name] = model.num_params()
        sizes[name] = evaluate.deployed_bytes(model)
    return params, sizes


def size_table(params: dict, sizes: dict) -> tuple[list, list]:
    """(header, rows): parameters, deployed format and bytes (the routed model also in ATOME01)."""
    header = ["model", "parameters", "deployed as", "bytes on disk", "bytes as ATOME01"]
    rows = [[name, params[name], sizes[name]["format"], sizes[name]["bytes"], sizes[name].get("atome01_bytes", "—")]
            for name in params]
    return header, rows


def size_comparison(params: dict, sizes: dict) -> dict:
    """The numbers the chapter's prose quotes about sizes."""
    gap = (params["modern"] - params["routed"]) / params["routed"]
    return {"modern_params": params["modern"], "routed_params": params["routed"],
            "modern_param_gap": abs(gap), "modern_fewer_or_more": "fewer" if gap < 0 else "more",
            "routed_bytes": sizes["routed"]["bytes"],
            "param_fair_bytes": sizes["vanilla param-fair"]["bytes"],
            "param_fair_over_routed_bytes": sizes["vanilla param-fair"]["bytes"] / sizes["routed"]["bytes"],
            "flash_fair_bytes": sizes["vanilla flash-fair"]["bytes"],
            "modern_bytes": sizes["modern"]["bytes"]}


# -- training ------------------------------------------------------------------------------------


def train_jobs(splits: dict, specs: dict, seeds_of: dict, main_corpus: str, base,
               ablation_steps: int | None = None) -> list:
    """Every training run, named "corpus|model|seed": the four models for each seed of each
    corpus, and on the main corpus the ablations for its first seed only, trained
    `ablation_steps` steps (None: as long as the others)."""
    import dataclasses

    from ..train import TrainJob
    jobs = []
    for corpus_name, (train_tokens, val_tokens) in splits.items():
        names = [n for n in specs if n in MAIN or corpus_name == main_corpus]
        for seed in seeds_of[corpus_name]:
            for name in names:
                if name not in MAIN and seed != seeds_of[corpus_name][0]:
                    continue   # ablations: one seed
                cls, cfg = specs[name]
                steps = ablation_steps if name not in MAIN and ablation_steps else base.steps
                jobs.append(TrainJob(name=f"{corpus_name}|{name}|{seed}", model_class=cls, model_config=cfg,
                                     train_tokens=train_tokens, val_tokens=val_tokens,
                                     cfg=dataclasses.replace(base, seed=seed, steps=steps), init_seed=seed))
    return jobs


def act8_config():
    """The config of the routed model trained with 8-bit activations (ternary weights, 60K shape)."""
    from ..models import routed
    from ..quant import QuantConfig
    return routed.RoutedConfig(quant=QuantConfig(weights="ternary", act_bits=8))


def act8_job(splits: dict, base, seed: int = 0):
    """The routed model trained with 8-bit activations (what chapter 7's integer path runs),
    on Shakespeare with the chapter's recipe and steps: run "shakespeare|routed act8|seed"."""
    import dataclasses

    from ..models import routed
    from ..train import TrainJob
    train_tokens, val_tokens = splits["shakespeare"]
    return TrainJob(name=f"shakespeare|{ACT8}|{seed}", model_class=routed.RoutedLM, model_config=act8_config(),
                    train_tokens=train_tokens, val_tokens=val_tokens,
                    cfg=dataclasses.replace(base, seed=seed), init_seed=seed)


def training_plan(P) -> list:
    """Every training run of the chapter under parameters `P` (atome_core.book.estimate): the
    8-bit routed run and `train_jobs`' runs, built as the notebook builds them, without data."""
    from ..ledger import job_shape
    from ..recipe import KIT_LR, book_config
    names = ["shakespeare"] + (["tinystories"] if tinystories_source(P.tinystories_path) else [])
    main_corpus = names[-1]
    empty = np.zeros(0, np.int64)
    splits = {name: (empty, empty) for name in names}
    seeds_of = seeds_by_corpus(names, main_corpus, P.seeds, P.shakespeare_seeds)
    base = book_config(P.steps, P.lr or KIT_LR, seed=0, eval_every=P.eval_every)
    jobs = [act8_job(splits, base, seed=0)] + train_jobs(splits, ab_models(bool(P.train_ablations)), seeds_of,
                                                         main_corpus, base, P.ablation_steps)
    return [job_shape(job) for job in jobs]


def full_validation_batches(splits: dict, seq_len: int, batch_size: int) -> int:
    """TrainConfig.eval_batches that make every curve point score each corpus's whole
    validation split (the windows of the final score), not just its first batches."""
    windows = max((len(val) - 1) // seq_len for _, val in splits.values())
    return max(1, math.ceil(windows / batch_size))


def runs_of(runs: dict, corpus_name: str, model_name: str) -> list:
    """The runs of one model on one corpus, every seed, in training order."""
    return [r for key, r in runs.items() if key.split("|")[:2] == [corpus_name, model_name]]


def loss_curves(runs: list) -> dict:
    """Bits per byte along training, median over seeds (and the seeds' range for validation)."""
    val_steps = [h["step"] for h in runs[0].history if "val_loss" in h]
    val = np.array([[h["val_loss"] / math.log(2) for h in r.history if "val_loss" in h] for r in runs])
    train_steps = [h["step"] for h in runs[0].history]
    train = np.median([[h["train_loss"] / math.log(2) for h in r.history] for r in runs], axis=0)
    return {"val_steps": val_steps, "val_median": np.median(val, axis=0), "val_min": val.min(axis=0),
            "val_max": val.max(axis=0), "train_steps": train_steps, "train_median": train}


# -- results -------------------------------------------------------------------------------------


def final_scores(runs: dict, corpus_names, specs) -> dict:
    """(corpus, model) -> {"bpb", "ppl"}: median and range over seeds of the final
    validation bits per byte and per-byte perplexity."""
    from ..evaluate import median_and_range
    final = {}
    for corpus_name in corpus_names:
        for name in specs:
            rs = runs_of(runs, corpus_name, name)
            if not rs:
                continue
            bpb = [r.final_val_loss / math.log(2) for r in rs]
            final[(corpus_name, name)] = {"bpb": median_and_range(bpb),
                                          "ppl": median_and_range([2 ** b for b in bpb])}
    return final


def budgets(steps: int, eval_every: int, cpu_steps: int) -> list:
    """The step counts the models are ranked at: the book's cpu budget and the kit's step
    counts where the runs have a curve point there, and the runs' last step."""
    on_curve = {s for s in (cpu_steps, *KIT_STEPS.values())
                if s < steps and eval_every and s % eval_every == 0}
    return sorted(on_curve | {steps})


def scores_at_step(runs: dict, corpus_names, names, step: int) -> dict:
    """(corpus, model) -> {"bpb", "ppl"} like final_scores, from each run's validation point
    at `step` (runs without one there are left out)."""
    from ..evaluate import median_and_range
    scores = {}
    for corpus_name in corpus_names:
        for name in names:
            bpb = [h["val_loss"] / math.log(2) for r in runs_of(runs, corpus_name, name)
                   for h in r.history if h["step"] == step and "val_loss" in h]
            if bpb:
                scores[(corpus_name, name)] = {"bpb": median_and_range(bpb),
                                               "ppl": median_and_range([2 ** b for b in bpb])}
    return scores


def ranking(scores: dict, corpus_name: str, names=MAIN) -> list:
    """The models from best to worst median per-byte perplexity."""
    return sorted(names, key=lambda name: scores[(corpus_name, name)]["ppl"]["median"])


def ranking_table(by_step: dict, corpus_names) -> tuple[list, list]:
    """(header, rows): per corpus and budget ({step: scores_at_step}), the models in order
    with their median per-byte perplexity, and the routed model against param-fair."""
    from ..recipe import book_tokens
    header = ["corpus", "steps", "training bytes", "1st", "2nd", "3rd", "4th", "routed against param-fair"]
    rows = []
    for corpus_name in corpus_names:
        for step, scores in sorted(by_step.items()):
            order = [f"{n} ({scores[(corpus_name, n)]['ppl']['median']:.2f})" for n in ranking(scores, corpus_name)]
            gap = lower_or_higher(relative(scores, corpus_name, "routed", "vanilla param-fair"))
            rows.append([corpus_name, step, book_tokens(step), *order, gap])
    return header, rows


def ranking_change(by_step: dict, corpus_name: str) -> str:
    """In words: whether the order of the models moves between the first and last budget."""
    steps = sorted(by_step)
    first, last = (ranking(by_step[s], corpus_name) for s in (steps[0], steps[-1]))
    if len(steps) == 1:
        return f"measured at one budget only ({steps[0]:,} steps)"
    if first == last:
        return f"the same at {steps[0]:,} and at {steps[-1]:,} steps"
    moved = [f"{n} from {first.index(n) + 1} to {last.index(n) + 1}" for n in first if first.index(n) != last.index(n)]
    return f"different at {steps[0]:,} and at {steps[-1]:,} steps (places: {', '.join(moved)})"


def kit_match(by_step: dict, corpus_name: str = "tinystories") -> dict:
    """kit recipe -> {"steps", "ours": {model: ppl}, "kit": {model: ppl}, "seeds"} for each
    of the kit's figures whose step count our curves reached (on TinyStories only)."""
    matched = {}
    for recipe, steps in KIT_STEPS.items():
        scores = by_step.get(steps, {})
        if (corpus_name, "routed") not in scores:
            continue
        names = [n for n in KIT_PPL[recipe] if (corpus_name, n) in scores]
        matched[recipe] = {"steps": steps, "seeds": scores[(corpus_name, "routed")]["ppl"]["n"],
                           "ours": {n: scores[(corpus_name, n)]["ppl"]["median"] for n in names},
                           "kit": {n: KIT_PPL[recipe][n] for n in names}}
    return matched


def kit_match_table(matched: dict) -> tuple[list, list]:
    """(header, rows): our median per-byte perplexity beside the kit's at the same steps."""
    header = ["the kit's run", "model", "ours (median)", "the kit's", "ours against the kit's"]
    rows = [[recipe, name, m["ours"][name], m["kit"][name], lower_or_higher(1 - m["ours"][name] / m["kit"][name])]
            for recipe, m in matched.items() for name in m["ours"]]
    return header, rows


def baseline_finding(ours: dict, kit: dict, steps: int) -> str:
    """The chapter's finding at one step count, in words, as far as the numbers carry it:
    is our routed model close to the kit's (ROUTED_CLOSE), and is our param-fair baseline
    stronger than the kit's by at least the advantage the kit claimed over it?"""
    pf = "vanilla param-fair"
    routed_words = lower_or_higher(1 - ours["routed"] / kit["routed"])
    baseline_gain = 1 - ours[pf] / kit[pf]
    claimed = 1 - kit["routed"] / kit[pf]
    routed_pair = f"{ours['routed']:.2f} against {kit['routed']:.2f} per-byte perplexity, {routed_words}"
    baseline_pair = f"{ours[pf]:.2f} against {kit[pf]:.2f}, {lower_or_higher(baseline_gain)}"
    claimed_words = f"the {claimed:.0%} by which the kit's routed model beat it".replace("%", " %")
    if abs(ours["routed"] / kit["routed"] - 1) > ROUTED_CLOSE:
        return (f"At {steps:,} steps our routed model is not close to the kit's routed result ({routed_pair}; "
                f"we call within {ROUTED_CLOSE * 100:.0f} % close), so our runs differ from the kit's in more "
                f"than the baseline ({baseline_pair} for the param-fair baseline), and this comparison cannot "
                f"say where the kit's advantage came from.")
    head = f"At {steps:,} steps our routed model is close to the kit's routed result ({routed_pair})"
    if baseline_gain >= claimed:
        return (f"{head}, while our param-fair vanilla baseline is much stronger than the kit's ({baseline_pair}: "
                f"more than {claimed_words}). So the kit's advantage most likely came from a weak baseline, "
                f"not from the routed architecture.")
    if baseline_gain > 0:
        return (f"{head}, and our param-fair vanilla baseline is stronger than the kit's ({baseline_pair}), but "
                f"by less than {claimed_words}: a weak baseline explains part of the kit's advantage, not all.")
    return (f"{head}, and our param-fair vanilla baseline is no stronger than the kit's ({baseline_pair}): "
            f"the kit's advantage does not come from a weak baseline here.")


def findings(matched: dict, main_corpus: str, steps: int) -> str:
    """baseline_finding at each of the kit's step counts our curves reached, or why none is."""
    if not matched:
        return (f"This build's runs ({steps:,} steps on {main_corpus}) reach none of the kit's step counts "
                f"on TinyStories ({' and '.join(f'{s:,}' for s in sorted(KIT_STEPS.values()))}), so this "
                f"build sets no finding beside the kit's figures.")
    return " ".join(baseline_finding(m["ours"], m["kit"], m["steps"])
                    for m in sorted(matched.values(), key=lambda m: m["steps"]))


def kit_recipes(steps: int) -> tuple[str, str]:
    """(the kit's recipe closest to `steps`, the other one)."""
    near = "3000 steps, 1 seed" if steps >= 3000 else "1500 steps, median of 3 seeds"
    return near, next(k for k in KIT_PPL if k != near)


def results_table(final: dict, corpus_names, steps: int) -> tuple[list, list]:
    """(header, rows) for report.table: per corpus and model, bits per byte and per-byte
    perplexity (median/range dicts), beside the kit's two published perplexities as it
    printed them (TinyStories only)."""
    near, other = kit_recipes(steps)
    header = ["corpus", "model", "bits per byte", "per-byte ppl", f"kit ppl ({near})", f"kit ppl ({other})"]
    rows = []
    for corpus_name in corpus_names:
        for name in MAIN:
            f = final[(corpus_name, name)]
            kit = [f"{KIT_PPL[k][name]:.2f}" if corpus_name == "tinystories" and name in KIT_PPL[k] else "—"
                   for k in (near, other)]
            rows.append([corpus_name, name, f["bpb"], f["ppl"], *kit])
    return header, rows


def relative(final: dict, corpus_name: str, a: str, b: str) -> float:
    """How much lower a's median per-byte perplexity is than b's (negative: a is worse)."""
    pa, pb = final[(corpus_name, a)]["ppl"]["median"], final[(corpus_name, b)]["ppl"]["median"]
    return 1 - pa / pb


def lower_or_higher(gain: float) -> str:
    """A relative difference in words: 0.22 -> "22 % lower", -0.05 -> "5 % higher"."""
    return f"{gain:.0%} lower".replace("%", " %") if gain > 0 else f"{-gain:.0%} higher".replace("%", " %")


def kit_gain(baseline: str) -> float:
    """The kit's headline: how much lower the routed model's perplexity was (3,000 steps)."""
    headline = KIT_PPL["3000 steps, 1 seed"]
    return 1 - headline["routed"] / headline[baseline]


def gain_table(final: dict, corpus_names) -> tuple[list, list]:
    """(header, rows): the routed model's median perplexity against each baseline's, in
    words, beside what the kit claimed (on TinyStories)."""
    header = ["corpus", "routed against", "routed ppl", "baseline ppl", "routed's perplexity is", "the kit claimed"]
    rows = []
    for corpus_name in corpus_names:
        for other in ("vanilla param-fair", "vanilla flash-fair", "modern"):
            gain = relative(final, corpus_name, "routed", other)
            claimed = (lower_or_higher(kit_gain(other))
                       if corpus_name == "tinystories" and other in KIT_PPL["3000 steps, 1 seed"] else "—")
            rows.append([corpus_name, other, final[(corpus_name, "routed")]["ppl"]["median"],
                         final[(corpus_name, other)]["ppl"]["median"], lower_or_higher(gain), claimed])
    return header, rows


def headline(final: dict, corpus_name: str) -> dict:
    """The numbers the prose quotes for one corpus: each model's median perplexity, the
    routed model's gaps in words, and the best model."""
    ppl = {name: final[(corpus_name, name)]["ppl"]["median"] for name in MAIN}
    best = min(MAIN, key=ppl.get)
    return {"routed_ppl": ppl["routed"], "param_fair_ppl": ppl["vanilla param-fair"],
            "flash_fair_ppl": ppl["vanilla flash-fair"], "modern_ppl": ppl["modern"],
            "against_param_fair": lower_or_higher(relative(final, corpus_name, "routed", "vanilla param-fair")),
            "against_flash_fair": lower_or_higher(relative(final, corpus_name, "routed", "vanilla flash-fair")),
            "against_modern": lower_or_higher(relative(final, corpus_name, "routed", "modern")),
            "best_model": best, "best_ppl": ppl[best]}


def claims(final: dict, main_corpus: str, steps: int) -> dict:
    """key -> (value, unit) of the intro's claims table: the main corpus's median per-byte
    perplexities, its steps and the number of seeds behind each median."""
    ppl = {name: final[(main_corpus, name)]["ppl"] for name in MAIN}
    unit = "per-byte perplexity"
    return {"corpus": (main_corpus, ""), "steps": (steps, "steps"), "seeds": (ppl["routed"]["n"], "seeds"),
            "routed_ppl": (ppl["routed"]["median"], unit),
            "param_fair_ppl": (ppl["vanilla param-fair"]["median"], unit),
            "flash_fair_ppl": (ppl["vanilla flash-fair"]["median"], unit),
            "modern_ppl": (ppl["modern"]["median"], unit)}


# -- the models this chapter publishes ----------------------------------------------------------


def publish_models(jobs: list, runs: dict, main_corpus: str, folder) -> dict:
    """Write each PUBLISHED_MODELS file into `folder` (the routed run of seed 0 on the main
    corpus, the 8-bit-activation run on Shakespeare), its info the run's corpus, steps, lr,
    seed and validation score (and act_bits); {name: its entry for "published_models"}."""
    from pathlib import Path

    from ..formats.model_file import save_model
    from ..formats.published import sha256_file
    from ..train import load_state
    job_of = {job.name: job for job in jobs}
    run_names = dict(zip(PUBLISHED_MODELS, [f"{main_corpus}|routed|0", f"shakespeare|{ACT8}|0"]))
    published = {}
    for name, run_name in run_names.items():
        if run_name not in runs:      # seed 0 not among this run's seeds (a sweep): nothing to publish
            continue
        job, run = job_of[run_name], runs[run_name]
        extra = {"act_bits": job.model_config.quant.act_bits} if ACT8 in run_name else {}
        val_bpb = run.final_val_loss / math.log(2)
        path = save_model(load_state(job.model_class(job.model_config), run.state_dict),
                          Path(folder) / PUBLISHED_MODELS[name],
                          info={"corpus": job.name.split("|")[0], "steps": job.cfg.steps, "lr": job.cfg.lr,
                                "seed": job.cfg.seed, "val_nats_per_byte": run.final_val_loss,
                                "val_bpb": val_bpb, **extra})
        published[name] = {"file": PUBLISHED_MODELS[name], "corpus": job.name.split("|")[0],
                           "steps": job.cfg.steps, "val_bpb": val_bpb, "sha256": sha256_file(path)}
    return published


# -- training speed ------------------------------------------------------------------------------


def speed_contenders(specs: dict) -> dict:
    """name -> model of the training-speed comparison: the routed model with each state
    implementation (scan, the kit's T x T kernel, a time loop), vanilla param-fair, modern."""
    import torch

    from ..models import routed
    contenders = {}
    for impl in ["scan", "kernel", "loop"]:
        torch.manual_seed(0)
        contenders[f"routed ({impl})"] = routed.RoutedLM(routed.RoutedConfig(state_impl=impl))
    for name in ["vanilla param-fair", "modern"]:
        cls, cfg = specs[name]
        torch.manual_seed(0)
        contenders[name] = cls(cfg)
    return contenders


def speed_table(speed: dict) -> tuple[list, list]:
    """(header, rows) of train.benchmark_steps' result: ms per step (wall, CPU), tokens/s."""
    header = ["model", "ms per step (wall)", "ms per step (CPU)", "training tokens per second"]
    rows = [[name, f"{1e3 * s['seconds_per_step']:.1f}", f"{1e3 * s['cpu_seconds_per_step']:.1f}",
             round(s["tokens_per_second"])] for name, s in speed.items()]
    return header, rows


def speed_summary(speed: dict, job_speed: dict) -> dict:
    """The training-speed numbers the prose quotes: routed (scan) over vanilla param-fair
    by tokens per second and by CPU time, the kit's ratio, the scan's gain over the kit's
    kernel, whether the target we set is met, and the speeds during the training runs."""
    ratio = speed["routed (scan)"]["tokens_per_second"] / speed["vanilla param-fair"]["tokens_per_second"]
    return {"ratio": ratio,
            "cpu_ratio": speed["vanilla param-fair"]["cpu_seconds_per_step"]
            / speed["routed (scan)"]["cpu_seconds_per_step"],
            "kit_ratio": KIT_TRAIN_SECONDS["vanilla param-fair"] / KIT_TRAIN_SECONDS["routed"],
            "target": SPEED_TARGET,
            "target_verdict": "meets" if ratio >= SPEED_TARGET else "falls short of",
            "scan_over_kernel": speed["routed (kernel)"]["seconds_per_step"]
            / speed["routed (scan)"]["seconds_per_step"],
            "routed_job_tokens_per_second": job_speed["routed"],
            "vanilla_job_tokens_per_second": job_speed["vanilla param-fair"]}


def job_speeds(runs: dict, corpus_name: str) -> dict:
    """Median training tokens per second of each main model during its training runs."""
    return {name: float(np.median([r.tokens_per_second for r in runs_of(runs, corpus_name, name)]))
            for name in MAIN}


# -- what each pathway contributes ---------------------------------------------------------------


def bpb_after(run, steps: int | None) -> float:
    """Validation bits per byte of a run after `steps` steps (None: its end), from its curve
    point there (the whole split at a constant rate: the score of a run that long)."""
    at = [h["val_loss"] for h in run.history if h["step"] == (steps or run.history[-1]["step"]) and "val_loss" in h]
    if not at:
        raise ValueError(f"the run has no curve point at step {steps}: eval_every must divide it")
    return at[-1] / math.log(2)


def ablation_scores(trained, val_tokens, seq_len: int, runs: dict, main_corpus: str, first_seed,
                    trained_steps: int | None = None) -> dict:
    """Bits per byte of the trained routed model, whole and with each pathway switched off, and
    of models trained `trained_steps` steps without each (None where not trained)."""
    from .. import evaluate
    from ..models import routed
    full = evaluate.score(trained, val_tokens, seq_len).bits_per_byte
    full_trained = bpb_after(runs[f"{main_corpus}|routed|{first_seed}"], trained_steps)
    ablation = {}
    for pathway in routed.PATHWAYS:
        with trained.ablate(pathway):
            off = evaluate.score(trained, val_tokens, seq_len).bits_per_byte
        key = f"{main_corpus}|routed without {pathway}|{first_seed}"
        without = runs[key].final_val_loss / math.log(2) if key in runs else None
        ablation[pathway] = {"switched_off_bpb": off, "trained_without_bpb": without}
    return {"full_bpb": full, "full_trained_bpb": full_trained, "trained_steps": trained_steps,
            "pathways": ablation}


def ablation_table(scores: dict) -> tuple[list, list]:
    """(header, rows): per pathway, bits per byte switched off and trained without, and
    each one's change from the full model."""
    steps = scores.get("trained_steps")
    trained = f"trained {steps:,} steps without" if steps else "trained without"
    header = ["pathway", "switched off: bits per byte", "change", f"{trained}: bits per byte", "change"]
    rows = [["none (full model)", scores["full_bpb"], "—", scores["full_trained_bpb"], "—"]]
    for pathway, a in scores["pathways"].items():
        without = a["trained_without_bpb"]
        rows.append([pathway, a["switched_off_bpb"], f"{a['switched_off_bpb'] - scores['full_bpb']:+.3f}",
                     without, "—" if without is None else f"{without - scores['full_trained_bpb']:+.3f}"])
    return header, rows


def ablation_summary(scores: dict) -> dict:
    """The pathway whose loss costs the trained model most, and (when the ablations were
    trained) the pathways the architecture needs most and least."""
    p = scores["pathways"]
    worst = max(p, key=lambda k: p[k]["switched_off_bpb"])
    retrained = {k: a["trained_without_bpb"] for k, a in p.items() if a["trained_without_bpb"] is not None}
    not_trained = "(not trained in this run)"
    return {"worst": worst, "worst_cost": p[worst]["switched_off_bpb"] - scores["full_bpb"],
            "needed": max(retrained, key=retrained.get) if retrained else not_trained,
            "spare": min(retrained, key=retrained.get) if retrained else not_trained}
