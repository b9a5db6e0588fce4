"""How long each chapter's training takes on a device, from a measured throughput.

A chapter that trains states its training work for a profile: `training_plan(P)` in its
module (atome_core.chapters) returns one `RunShape` (atome_core.ledger) per training run its
notebook starts under the parameters `P` (the namespace the notebook's `open_chapter` gives).
Where a run's model depends on results (a search's winner) the plan names a stand-in of the
same family and says which; its steps, batch, window, accumulation and autocast are the run's own.

A build checks the plans: every `train` call appends its shape to the chapter's ledger
(`training_runs.jsonl` in its results, atome_core.ledger.record_run), and `plan_mismatch`
compares a plan with a ledger (tests: every chapter under paper-smoke, the paper profile's code
paths with sizes cut, so a plan that drifts from its notebook fails).

`estimate(profile)`: for every distinct step shape of every chapter's plan, a few real training
steps are timed on the device (`measure_throughput`; cached per device in
`_build/throughput/<device>.json`), and each run's time is its tokens over its shape's measured
tokens per second. The estimate counts training only, runs one after another on one device; it
leaves out evaluation, tokenizer training and the chapters' other work.
"""
import inspect
import json
import platform
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace

from ..files import write_atomic
from ..ledger import RunShape, measure_throughput
from . import profiles as profiles_mod

# chapter -> (module under atome_core.chapters, its plan function); a chapter not named trains nothing
PLANS = {
    "01_atto_series": ("atto_plan", "training_plan"),
    "02_ternary_qat": ("ternary_qat", "training_plan"),
    "04_ab_60k": ("ab_60k", "training_plan"),
    "05_reversal": ("reversal_ladder", "training_plan"),
    "06_c_engine": ("c_engine", "training_plan"),
    "07_firmware_qemu": ("firmware_qemu", "training_plan"),
    "08_atom_recipe": ("atom_recipe", "training_plan"),
    "09_frontier": ("frontier_runs", "training_plan"),
}


def chapter4_parameters(profile: str, spec: dict, build: Path | None) -> dict:
    """Chapter 7's plan needs chapter 4's parameters: whether it reads chapter 4's model or trains its own."""
    return {"chapter4": profiles_mod.chapter_parameters("04_ab_60k", profile, spec)}


def published_metrics(build: Path | None, profile: str, chapter: str) -> dict | None:
    """The metrics `chapter` published under `profile` in `build`, or None."""
    from .runner import published_metrics_path
    path = published_metrics_path(build, profile, chapter) if build else None
    return json.loads(path.read_text()) if path is not None and path.exists() else None


def tokenizer_bytes_per_token(profile: str, spec: dict, build: Path | None) -> dict:
    """Chapter 8's plan needs its trained tokenizer's bytes per token: from the chapter's metrics
    published under `profile` in `build`, else under the cpu profile; {} (the plan's stand-in)
    when no build has them."""
    for source in dict.fromkeys([profile, "cpu"]):
        metrics = published_metrics(build, source, "08_atom_recipe")
        if metrics is not None:
            return {"bytes_per_token": metrics["tokenizer"]["bytes_per_token_val"]}
    return {}


def atto_search_outcomes(profile: str, spec: dict, build: Path | None) -> dict:
    """Chapter 1's plan needs its searches' winners (how many variants and finalists follow):
    the chapter's metrics published under `profile` in `build`; {} (the plan assumes the most
    work any outcome gives) when this build has none."""
    metrics = published_metrics(build, profile, "01_atto_series")
    return {"recorded": metrics} if metrics is not None else {}


# chapter -> the keyword arguments its plan takes besides its parameters: another chapter's
# parameters, or a value only a build measures
PLAN_INPUTS = {
    "01_atto_series": atto_search_outcomes,
    "07_firmware_qemu": chapter4_parameters,
    "08_atom_recipe": tokenizer_bytes_per_token,
}


def chapter_namespace(chapter: str, profile: str, spec: dict | None = None) -> SimpleNamespace:
    """The parameters a chapter's notebook sees under `profile`, as its `open_chapter` gives them."""
    return SimpleNamespace(chapter=chapter, **profiles_mod.chapter_parameters(chapter, profile, spec))


def chapter_plan(chapter: str, profile: str, spec: dict | None = None, build: Path | None = None,
                 device: str | None = None) -> list[RunShape]:
    """Every training run `chapter` starts under `profile` ([] for a chapter that trains nothing);
    `build`: where to read values a plan needs that only a build measures (PLAN_INPUTS);
    `device`: the device the runs would train on, for a plan whose recipe depends on it (None:
    what the notebook resolves on this machine)."""
    if chapter not in PLANS:
        return []
    import importlib
    module, function = PLANS[chapter]
    plan = getattr(importlib.import_module(f"atome_core.chapters.{module}"), function)
    spec = spec or profiles_mod.load_profiles()
    inputs = PLAN_INPUTS[chapter](profile, spec, build) if chapter in PLAN_INPUTS else {}
    if device is not None and "device" in inspect.signature(plan).parameters:
        inputs["device"] = device
    return list(plan(chapter_namespace(chapter, profile, spec), **inputs))


def _work(shape: RunShape) -> tuple:
    """What a plan must match of a ledger's run: everything but a stand-in's model config."""
    return (shape.family, shape.steps, shape.batch_size, shape.seq_len, shape.grad_accum,
            shape.autocast_bf16, shape.teacher_family)


def plan_mismatch(plan: list[RunShape], ledger: list[RunShape]) -> list[str]:
    """How a plan differs from the runs a build recorded: [] when every run's family, steps,
    batch, window, accumulation, autocast and teacher family agree (as multisets)."""
    planned, ran = Counter(map(_work, plan)), Counter(map(_work, ledger))
    problems = [f"planned but not run {n}x: {k}" for k, n in (planned - ran).items()]
    problems += [f"run but not planned {n}x: {k}" for k, n in (ran - planned).items()]
    return problems


# -- measured throughput ----------------------------------------------------------------------

def device_name(device: str) -> str:
    """A device in words, the key of its throughput cache: the GPU's name, or the CPU's."""
    import torch
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return f"cpu {platform.machine()} {platform.processor() or ''} one thread".replace("  ", " ")


def default_device() -> str:
    """CUDA when present (what the paper profile runs on), else the CPU."""
    import torch
    return "cuda" if torch.cuda.is_available() else "cpu"


def throughput_cache(build: Path, device: str) -> Path:
    """The file of a device's measured rates, named by the device in words."""
    safe = "".join(c if c.isalnum() else "-" for c in device_name(device)).strip("-")
    return build / "throughput" / f"{safe}.json"


def _shape_key(shape: RunShape) -> str:
    return json.dumps(asdict(shape) | {"steps": 1}, sort_keys=True)


def measured_rates(plans: dict[str, list[RunShape]], device: str, build: Path, log=print) -> dict[str, float]:
    """{step key: training tokens per second} of each distinct shape of `plans` ({chapter: plan})
    on `device`, measured once and cached in `throughput_cache` (a shape measured before is not
    timed again; each measurement is kept as soon as it is made)."""
    from ..progress import progress
    cache = throughput_cache(build, device)
    rates = json.loads(cache.read_text())["tokens_per_second"] if cache.exists() else {}
    todo = {_shape_key(s): (chapter, s) for chapter, plan in plans.items() for s in plan if _shape_key(s) not in rates}
    if todo:
        log(f"[atome book] timing {len(todo)} training-step shapes on {device_name(device)} ...")
    for key, (chapter, shape) in progress(list(todo.items()), desc="measuring throughput", unit="shape"):
        try:
            rates[key] = measure_throughput(shape, device)
        except (ValueError, RuntimeError) as e:   # a run that cannot train: say which
            raise ValueError(f"{chapter}: a planned {shape.family} run ({shape.batch_size} x {shape.seq_len}, "
                             f"config {shape.model_config}) cannot train: {e}") from None
        write_atomic(cache, json.dumps({"device": device_name(device), "tokens_per_second": rates},
                                       indent=1, sort_keys=True))
    return rates


def estimate(profile: str, device: str | None = None, build: Path | None = None,
             chapters: list[str] | None = None, log=print) -> dict:
    """{chapter: {"runs", "tokens", "seconds"}} of `profile`'s training on `device` (default: CUDA
    when present), from measured throughputs; plus "device" (in words) and "total_seconds"."""
    from ..paths import build_dir
    from .runner import list_chapters
    device = device or default_device()
    build = build or build_dir()
    spec = profiles_mod.load_profiles()
    names = chapters or [ch.name for ch in list_chapters()]
    plans = {name: chapter_plan(name, profile, spec, build, device) for name in names}
    rates = measured_rates(plans, device, build, log=log)
    out = {}
    for name, plan in plans.items():
        seconds = sum(s.tokens / rates[_shape_key(s)] for s in plan)
        out[name] = {"runs": len(plan), "tokens": sum(s.tokens for s in plan), "seconds": seconds}
    return {"device": device_name(device), "device_spec": device, "profile": profile, "chapters": out,
            "total_seconds": sum(c["seconds"] for c in out.values())}
