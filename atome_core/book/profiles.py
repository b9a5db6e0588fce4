"""Profiles: the parameters each chapter runs with (profiles.yml).

A notebook's parameters cell declares `profile = None` and one variable per
parameter, all None. papermill (`atome book`) injects the profile's values;
nbmake injects nothing, so the cell after it calls `resolve_parameters`, which
takes the profile from $ATOME_PROFILE (default cpu) and fills every parameter
still None from profiles.yml. Explicit values always win.

A chapter's block may also say which other chapters' published results it reads
(`reads: [09_frontier, ...]`, `chapter_reads`): the runner re-executes it when one of
their metrics.json changes. `reads` is not a parameter and is never injected.

A profile may be derived from another (`base: paper` under `profiles`): its parameters are
the base profile's with only the sizes changed (parameters whose names say they are a size,
`SIZE_WORDS`: steps, tokens, windows, seeds, ...): every size as the profile named by
`sizes_from` resolves it (e.g. smoke's), then the chapter's own block for it, which may
change only sizes. `paper-smoke` is the paper profile cut so: `make test` runs every chapter with it on
CPU, so every paper code path runs in CI.
A profile with `checkpoints: true` makes every training run of a chapter resumable (the
runner points $ATOME_CHECKPOINT_DIR into the build folder).
"""
import os
from pathlib import Path
from types import SimpleNamespace

import yaml

from ..paths import repo_root

PROFILE_NAMES = ("smoke", "cpu", "paper", "paper-smoke")
DEFAULT_PROFILE = "cpu"
# what a derived profile may change: parameters whose names say they are a size
SIZE_WORDS = ("steps", "tokens", "seeds", "window", "bytes", "chars", "items", "budget", "grid", "size",
              "workers", "trits", "repeats", "cases", "seconds", "context", "group", "model", "overrides",
              "students", "cores", "rounds", "bootstrap", "timeout", "max_", "vocab", "configs", "widths",
              "fulls", "batch", "every", "skip_first", "run_944k", "seq_len", "orders", "new_tokens")


def is_size(name: str) -> bool:
    return any(word in name for word in SIZE_WORDS)


def base_profile(profile: str, spec: dict) -> str | None:
    """The profile `profile` is derived from (its `base`), or None."""
    return (spec["profiles"].get(profile) or {}).get("base")


def profiles_file() -> Path:
    return repo_root() / "profiles.yml"


def load_profiles(path: Path | None = None) -> dict:
    path = Path(path or profiles_file())
    with open(path) as f:
        spec = yaml.safe_load(f)
    if not isinstance(spec, dict) or "profiles" not in spec or "chapters" not in spec:
        raise ValueError(f"{path}: needs top-level 'profiles' and 'chapters'")
    unknown = set(spec["profiles"]) - set(PROFILE_NAMES)
    if unknown:
        raise ValueError(f"{path}: unknown profiles {sorted(unknown)}; known: {PROFILE_NAMES}")
    for name, prof in spec["profiles"].items():
        base = (prof or {}).get("base")
        if base is not None and (base not in spec["profiles"] or spec["profiles"][base].get("base")):
            raise ValueError(f"{path}: profile {name} is based on {base!r}, which is not a profile of its own")
        sizes_from = (prof or {}).get("sizes_from")
        if sizes_from is not None and (base is None or sizes_from not in spec["profiles"]):
            raise ValueError(f"{path}: profile {name} takes sizes from {sizes_from!r}: it needs a base "
                             f"and a known profile to take them from")
    for chapter, block in spec["chapters"].items():
        bad = set(block) - {"defaults", "reads", *PROFILE_NAMES}
        if bad:
            raise ValueError(f"{path}: chapter {chapter} has unknown keys {sorted(bad)}")
        reads = block.get("reads", [])
        if not isinstance(reads, list) or not all(isinstance(r, str) for r in reads):
            raise ValueError(f"{path}: chapter {chapter}: reads must be a list of chapter names")
        unknown_reads = [r for r in reads if r not in spec["chapters"] or r == chapter]
        if unknown_reads:
            raise ValueError(f"{path}: chapter {chapter} reads {unknown_reads}, which are not other "
                             f"chapters of the book; known: {sorted(set(spec['chapters']) - {chapter})}")
        for prof in PROFILE_NAMES:
            extra = set(block.get(prof) or {}) - set(block.get("defaults") or {})
            if extra:
                raise ValueError(f"{path}: chapter {chapter}, profile {prof}: "
                                 f"{sorted(extra)} not declared in defaults")
            if (spec["profiles"].get(prof) or {}).get("base"):
                not_sizes = sorted(k for k in block.get(prof) or {} if not is_size(k))
                if not_sizes:
                    raise ValueError(f"{path}: chapter {chapter}, profile {prof}: a profile derived from "
                                     f"another changes only sizes, not {not_sizes}")
    return spec


def chapter_parameters(chapter: str, profile: str, spec: dict | None = None) -> dict:
    """The full parameter dict papermill injects for `chapter` under `profile`."""
    if profile not in PROFILE_NAMES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILE_NAMES)}")
    spec = spec or load_profiles()
    block = spec["chapters"].get(chapter)
    if block is None:
        return {"profile": profile}
    params = dict(block.get("defaults") or {})
    base = base_profile(profile, spec)
    if base:
        params.update(block.get(base) or {})
        sizes_from = spec["profiles"][profile].get("sizes_from")
        if sizes_from:
            small = {**(block.get("defaults") or {}), **(block.get(sizes_from) or {})}
            params.update({k: v for k, v in small.items() if is_size(k)})
    params.update(block.get(profile) or {})
    return {"profile": profile, **params}


def chapter_reads(chapter: str, spec: dict | None = None) -> list[str]:
    """The chapters whose published results `chapter` reads (its `reads` list; [] if none)."""
    spec = spec or load_profiles()
    return list((spec["chapters"].get(chapter) or {}).get("reads") or [])


def resolve_parameters(chapter: str, namespace: dict) -> SimpleNamespace:
    """Fill a notebook's parameters: explicit (non-None) values, else the profile's.

    `namespace` is the notebook's globals(). The profile comes from the
    `profile` variable, else $ATOME_PROFILE, else cpu.
    """
    profile = namespace.get("profile") or os.environ.get("ATOME_PROFILE") or DEFAULT_PROFILE
    resolved = chapter_parameters(chapter, profile)
    for name in resolved:
        if name != "profile" and namespace.get(name) is not None:
            resolved[name] = namespace[name]
    resolved["profile"] = profile
    return SimpleNamespace(chapter=chapter, **resolved)
