"""Distillation, tried honestly: small students trained on a larger teacher's soft targets.

Each student is trained twice per seed with the same recipe, the same initialisation
and the same batches: once on the data alone (alpha 0, the plain trainer) and once on
(1 - alpha) * CE(data) + alpha * T^2 * KL(teacher || student) (atome_core.train,
`distillation_loss`). The effect of distillation at a size is the paired difference of
final validation bits per byte, seed by seed. It is kept in the recipe only where it
helps every seed by more than a stated margin (`MARGIN_BPB`).

The teacher: on the TinyStories sample, the published 944K routed model
(atome_1m_v1.pt in ../shared/interop, `published_teacher`); on another corpus, any
model given as `teacher_spec(model)`. The teacher sees exactly the student's training
windows (`train` calls it on the same (batch, seq_len) input), so a teacher with an
unbounded context such as the routed model predicts from the same 64 bytes as the
student, never from more.

Cost: one teacher forward per student step. At 944K parameters it dominates the step
of a small student (`step_seconds` measures both on the machine at hand).
"""
import math
import time

import numpy as np

from ..evaluate import median_and_range

LN2 = math.log(2)
# a gain smaller than this (bits per byte, on every seed) is not called a gain
MARGIN_BPB = 0.01
VERDICTS = ("helps", "no clear gain", "hurts")
TEACHER_FILE = "atome_1m_v1.pt"


# -- the teacher ------------------------------------------------------------------------------

def teacher_spec(model) -> tuple:
    """A trained model as a TrainJob's teacher: (model class, config, state_dict of numpy arrays)."""
    return (type(model), model.cfg, {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()})


def published_teacher(path=None) -> tuple:
    """The published 944K routed model (FP32 shadow weights, sha256 checked) as a teacher spec.
    Raises atome_core.formats.published.CheckpointError when the file is absent or wrong."""
    from ..formats.published import load_routed_pt
    model, _ = load_routed_pt(path)
    return teacher_spec(model)


def published_teacher_or_reason(path=None) -> tuple:
    """(teacher spec, None), or (None, why the experiment is not run) when the published
    checkpoint cannot be read (a fresh clone has no ../shared/interop)."""
    from ..formats.published import CheckpointError
    try:
        return published_teacher(path), None
    except CheckpointError as e:
        return None, f"not run: the published 944K teacher ({TEACHER_FILE}) could not be read ({e})"


def build_spec(spec: tuple):
    """The model of a teacher spec, in eval mode."""
    from ..train import build_teacher
    return build_teacher(spec)


def teacher_bits_per_byte(spec: tuple, val_tokens, seq_len: int, batch_size: int = 16) -> float:
    """The teacher's validation bits per byte on the students' evaluation windows (every
    non-overlapping window of seq_len bytes): what the soft targets are worth on this split."""
    from ..evaluate import evaluate_loss
    from ..train import torch_threads
    with torch_threads(1):
        return evaluate_loss(build_spec(spec), np.asarray(val_tokens), seq_len, batch_size=batch_size) / LN2


# -- the students -----------------------------------------------------------------------------

def student_spec(name: str) -> tuple:
    """(model class, config) of a student named as a preset: a modern frontier preset
    ("modern-ternary-8k", "modern-ternary-x2-8k", "modern-30k", ...) or a ladder rung
    "<family>-<size>" ("routed-15k", "vanilla-60k")."""
    from ..models import family
    from ..models.presets import FAMILIES, MODERN_PRESETS, ladder_config, preset_config
    if name in MODERN_PRESETS:
        return family("modern")[1], preset_config(name)
    fam, _, size = name.partition("-")
    if fam in FAMILIES and size:
        return family(fam)[1], ladder_config(fam, size)
    raise ValueError(f"unknown student {name!r}: a modern preset ({', '.join(MODERN_PRESETS)}) "
                     f"or <family>-<size> of the ladder (e.g. routed-15k)")


def _students(students) -> dict:
    """name -> (model class, config), from a list of preset names or such a dict."""
    if isinstance(students, dict):
        return dict(students)
    return {name: student_spec(name) for name in students}


# -- the jobs ---------------------------------------------------------------------------------

def job_name(student: str, alpha: float, seed: int) -> str:
    return f"{student}|alpha={float(alpha):g}|seed={int(seed)}"


def parse_job_name(name: str) -> dict:
    """job_name's fields back: {"student", "alpha", "seed"}."""
    student, alpha, seed = name.rsplit("|", 2)
    if not (alpha.startswith("alpha=") and seed.startswith("seed=")):
        raise ValueError(f"{name!r} is not a distillation job's name")
    return {"student": student, "alpha": float(alpha[len("alpha="):]), "seed": int(seed[len("seed="):])}


def distillation_jobs(students, teacher_spec, train_tokens, val_tokens, steps: int, batch_size: int,
                      seq_len: int, lr, seeds, alphas, temperature: float = 1.0,
                      log_every: int = 0) -> list:
    """TrainJobs: every student x seed x alpha, AdamW at a constant lr, final validation on
    every non-overlapping seq_len window of val_tokens.

    `students`: preset names (`student_spec`) or {name: (model class, config)};
    `teacher_spec`: (model class, config, state_dict), e.g. `published_teacher()`;
    `lr`: one rate for every student, or {student: rate} (e.g. each family's rate of a sweep).
    Alpha 0 is the plain run (no teacher at all); every alpha of a seed starts from the
    same initialisation (init_seed = seed) and draws the same batches (cfg.seed = seed),
    so the runs of a seed are a paired comparison. Refuses a teacher whose vocabulary
    differs from a student's, or one that cannot read seq_len tokens.
    """
    from ..train import TrainConfig, TrainJob
    students = _students(students)
    alphas = sorted({float(a) for a in alphas}, reverse=True)   # the costly runs first
    seeds = list(dict.fromkeys(int(s) for s in seeds))
    if 0.0 not in alphas:
        raise ValueError("alphas must include 0 (the plain run every distilled run is compared with)")
    if any(not 0.0 <= a <= 1.0 for a in alphas):
        raise ValueError(f"alphas must lie in [0, 1], got {alphas}")
    if not seeds:
        raise ValueError("at least one seed is needed")
    if any(a > 0 for a in alphas):
        if teacher_spec is None:
            raise ValueError("a distilled run (alpha > 0) needs a teacher")
        t_class, t_config, _ = teacher_spec
        t_vocab = getattr(t_config, "vocab_size", None)
        t_max = getattr(t_config, "max_seq", None)
        if isinstance(t_max, int) and t_max < seq_len:
            raise ValueError(f"the teacher reads at most {t_max} tokens, fewer than the {seq_len}-token windows")
        for name, (_, config) in students.items():
            s_vocab = getattr(config, "vocab_size", None)
            if s_vocab != t_vocab:
                raise ValueError(f"the teacher ({t_class.__name__}) has a vocabulary of {t_vocab} tokens, "
                                 f"the student {name} of {s_vocab}: distillation needs the same vocabulary")
    rates = lr if isinstance(lr, dict) else {name: lr for name in students}
    missing = [name for name in students if name not in rates]
    if missing:
        raise ValueError(f"no learning rate for student(s) {missing}")
    train_tokens, val_tokens = np.asarray(train_tokens), np.asarray(val_tokens)
    if len(val_tokens) < seq_len + 1:
        raise ValueError(f"{len(val_tokens)} validation tokens are too few for one {seq_len}-token window")
    jobs = []
    for alpha in alphas:
        for seed in seeds:
            for name, (model_class, config) in students.items():
                cfg = TrainConfig(steps=steps, batch_size=batch_size, seq_len=seq_len, lr=float(rates[name]),
                                  schedule="constant", seed=seed, log_every=log_every,
                                  distill_alpha=alpha, distill_temperature=temperature)
                jobs.append(TrainJob(name=job_name(name, alpha, seed), model_class=model_class,
                                     model_config=config, train_tokens=train_tokens, val_tokens=val_tokens,
                                     cfg=cfg, init_seed=seed, threads=1,
                                     teacher=teacher_spec if alpha > 0 else None))
    return jobs


def training_plan(students, teacher_spec, steps: int, batch_size: int, seq_len: int, seeds, alphas,
                  temperature: float = 1.0) -> list:
    """The RunShape (atome_core.ledger) of every run `run_distillation` trains with these
    arguments, built by `distillation_jobs` without data: [] when teacher_spec is None (the
    experiment then trains nothing). The rate is a stand-in: it does not change a run's shape."""
    from ..ledger import job_shape
    if teacher_spec is None:
        return []
    # distillation_jobs refuses a validation split without one window to score
    no_train, one_window = np.zeros(0, np.int64), np.zeros(seq_len + 1, np.int64)
    jobs = distillation_jobs(students, teacher_spec, no_train, one_window, steps, batch_size, seq_len,
                             lr=1e-3, seeds=seeds, alphas=alphas, temperature=temperature)
    return [job_shape(job) for job in jobs]


def run_records(results) -> list[dict]:
    """JobResults of distillation jobs as plain records: student, alpha, seed, val_bpb,
    params, train_seconds."""
    records = []
    for r in results:
        records.append({**parse_job_name(r.name), "val_bpb": r.final_val_loss / LN2,
                        "params": r.num_params, "train_seconds": r.train_seconds})
    return records


# -- the table and the verdict ----------------------------------------------------------------

def verdict(diffs, margin: float = MARGIN_BPB) -> str:
    """The verdict on paired differences (distilled minus plain bits per byte, one per seed):
    "helps" when every seed improves by more than `margin` (at least two seeds), "hurts" when
    every seed worsens by more than `margin` (at least two seeds), otherwise "no clear gain"."""
    d = np.asarray(list(diffs), dtype=float)
    if d.size >= 2 and np.all(d < -margin):
        return "helps"
    if d.size >= 2 and np.all(d > margin):
        return "hurts"
    return "no clear gain"


def _as_record(r) -> dict:
    if isinstance(r, dict):
        return r
    return run_records([r])[0]


def distillation_table(results, margin: float = MARGIN_BPB) -> list[dict]:
    """One row per student and alpha (students in the order they first appear, alpha rising).

    `results`: JobResults of `distillation_jobs` or records (dicts with student, alpha,
    seed, val_bpb). A row: student, alpha, params (when known), val_bpb (median/min/max/n
    over seeds), and for alpha > 0: diff_by_seed {seed: distilled - plain bits per byte},
    diff (median/min/max/n of those) and verdict (`verdict` at `margin`). Every seed of a
    distilled run needs its plain run.
    """
    records = [_as_record(r) for r in results]
    by = {}
    for r in records:
        key = (r["student"], float(r["alpha"]), int(r["seed"]))
        if key in by:
            raise ValueError(f"two results for {key}")
        by[key] = r
    students = list(dict.fromkeys(r["student"] for r in records))
    rows = []
    for student in students:
        alphas = sorted({a for (s, a, _) in by if s == student})
        plain = {seed: r["val_bpb"] for (s, a, seed), r in by.items() if s == student and a == 0.0}
        for alpha in alphas:
            runs = {seed: r for (s, a, seed), r in by.items() if s == student and a == alpha}
            row = {"student": student, "alpha": alpha,
                   "val_bpb": median_and_range([runs[s]["val_bpb"] for s in sorted(runs)])}
            params = {r.get("params") for r in runs.values()} - {None}
            if len(params) == 1:
                row["params"] = params.pop()
            if alpha > 0:
                missing = sorted(set(runs) - set(plain))
                if missing:
                    raise ValueError(f"{student}: no plain run (alpha 0) for seed(s) {missing} to compare with")
                diffs = {seed: runs[seed]["val_bpb"] - plain[seed] for seed in sorted(runs)}
                row["diff_by_seed"] = diffs
                row["diff"] = median_and_range(diffs.values())
                row["verdict"] = verdict(diffs.values(), margin)
            rows.append(row)
    return rows


def size_verdicts(table: list[dict]) -> dict:
    """student -> one verdict: "helps" when some alpha helps, "hurts" when every alpha
    tried hurts, otherwise "no clear gain"."""
    out = {}
    for student in dict.fromkeys(r["student"] for r in table):
        got = [r["verdict"] for r in table if r["student"] == student and r["alpha"] > 0]
        if "helps" in got:
            out[student] = "helps"
        elif got and all(v == "hurts" for v in got):
            out[student] = "hurts"
        else:
            out[student] = "no clear gain"
    return out


def keep_in_recipe(table: list[dict]) -> dict:
    """The students (sizes) where distillation helps -> the alpha to keep (of the alphas
    that help, the one with the lowest median validation bits per byte). Empty: keep the
    plain recipe everywhere."""
    keep = {}
    for row in table:
        if row.get("verdict") == "helps":
            best = keep.get(row["student"])
            if best is None or row["val_bpb"]["median"] < best[1]:
                keep[row["student"]] = (row["alpha"], row["val_bpb"]["median"])
    return {student: alpha for student, (alpha, _) in keep.items()}


def table_rows(table: list[dict], digits: int = 3) -> tuple[list, list]:
    """(header, rows) for atome_core.book.report.table: one row per student and alpha."""
    header = ["student", "parameters", "alpha", "validation bits per byte", "distilled - plain", "verdict"]
    rows = []
    for r in table:
        rows.append([r["student"], f"{r['params']:,}" if "params" in r else "", f"{r['alpha']:g}",
                     r["val_bpb"], r.get("diff", ""), r.get("verdict", "(the plain run)")])
    return header, rows


# -- the cost ---------------------------------------------------------------------------------

def step_seconds(students, teacher_spec, tokens, batch_size: int = 16, seq_len: int = 64,
                 rounds: int = 20, warmup: int = 3, alpha: float = 0.5, temperature: float = 1.0,
                 lr: float = 3e-4, seed: int = 0) -> dict:
    """Wall seconds of one student optimizer step on one thread, plain and distilled, and of
    the teacher's forward alone, measured interleaved (each round runs every step once, so
    a slow patch of a shared machine hits them alike); medians after `warmup` rounds.

    Returns {"teacher_forward_s": s, "students": {name: {"plain_s", "distilled_s", "ratio"}}}.
    """
    import torch

    from ..train import (
        TrainConfig,
        batches,
        distillation_loss,
        make_optimizer,
        torch_threads,
    )
    students = _students(students)
    teacher = build_spec(teacher_spec)
    rng = np.random.default_rng(seed)
    opt_cfg = TrainConfig(steps=1, batch_size=batch_size, seq_len=seq_len, lr=lr)
    steppers = {}
    for name, (model_class, config) in students.items():
        pair = []
        for _ in range(2):
            torch.manual_seed(seed)
            model = model_class(config).train()
            pair.append((model, make_optimizer(model, opt_cfg)))
        steppers[name] = pair
    times = {"teacher": []} | {(n, k): [] for n in students for k in ("plain", "distilled")}
    with torch_threads(1):
        for _ in range(warmup + rounds):
            x, y = batches(np.asarray(tokens), batch_size, seq_len, rng)
            t0 = time.perf_counter()
            with torch.no_grad():
                teacher(x)
            times["teacher"].append(time.perf_counter() - t0)
            for name, ((plain, plain_opt), (student, student_opt)) in steppers.items():
                t0 = time.perf_counter()
                plain.loss(x, y).backward()
                plain_opt.step()
                plain_opt.zero_grad(set_to_none=True)
                times[(name, "plain")].append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                logits = student(x)
                with torch.no_grad():
                    teacher_logits = teacher(x)
                distillation_loss(logits, teacher_logits, y, alpha, temperature).backward()
                student_opt.step()
                student_opt.zero_grad(set_to_none=True)
                times[(name, "distilled")].append(time.perf_counter() - t0)

    def med(key):
        return float(np.median(times[key][warmup:]))

    out = {"teacher_forward_s": med("teacher"), "students": {}}
    for name in students:
        plain, distilled = med((name, "plain")), med((name, "distilled"))
        out["students"][name] = {"plain_s": plain, "distilled_s": distilled, "ratio": distilled / plain}
    return out


# -- the whole experiment ---------------------------------------------------------------------

def verdict_text(table: list[dict], margin: float = MARGIN_BPB) -> str:
    """One plain sentence of the verdicts per student, for the prose (no Markdown)."""
    verdicts = size_verdicts(table)
    if not verdicts:
        return "no student was trained"
    keep = keep_in_recipe(table)
    parts = [f"{v} for {s}" + (f" (alpha {keep[s]:g})" if s in keep else "") for s, v in verdicts.items()]
    return "; ".join(parts) + f" (a gain counts only when every seed gains more than {margin:g} bits per byte)"


def run_distillation(students, teacher_spec, train_tokens, val_tokens, steps: int, batch_size: int,
                     seq_len: int, lr, seeds, alphas, temperature: float = 1.0, workers: int = 1,
                     margin: float = MARGIN_BPB, reason: str | None = None, device: str = "cpu") -> dict:
    """The experiment end to end: the jobs, their runs (`workers` processes), the table, the
    verdicts, what the recipe keeps, and the teacher's own bits per byte on the same windows.
    `device`: where the runs train (recipe.on_device).

    teacher_spec None (with `reason`, e.g. from `published_teacher_or_reason`): nothing is
    trained and the summary says why ({"run": False, "reason": ...}).
    """
    from ..recipe import on_device
    from ..train import run_jobs
    if teacher_spec is None:
        return {"run": False, "reason": reason or "not run: no teacher"}
    jobs = distillation_jobs(students, teacher_spec, train_tokens, val_tokens, steps, batch_size, seq_len,
                             lr, seeds, alphas, temperature)
    t0 = time.perf_counter()
    results = run_jobs(on_device(jobs, device), workers=workers)
    wall = time.perf_counter() - t0
    records = run_records(results)
    table = distillation_table(records, margin)
    return {"run": True, "reason": None, "records": records, "table": table,
            "verdicts": size_verdicts(table), "keep": keep_in_recipe(table),
            "verdict_text": verdict_text(table, margin), "margin_bpb": margin,
            "teacher_bpb": teacher_bits_per_byte(teacher_spec, val_tokens, seq_len, batch_size),
            "wall_seconds": wall, "train_seconds": sum(r["train_seconds"] for r in records),
            "recipe": {"steps": steps, "batch_size": batch_size, "seq_len": seq_len, "lr": lr,
                       "seeds": [int(s) for s in seeds], "alphas": sorted(float(a) for a in alphas),
                       "temperature": temperature}}
