"""Every chapter under paper-smoke: the paper profile's code paths (its recipes, corpora, rates,
checkpoints) with only the sizes cut, executed on CPU by the book's runner."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from atome_core.book import profiles
from atome_core.recipe import interop_tinystories

PROFILE = "paper-smoke"
BIN = Path(sys.executable).parent


def chapters_needing_tinystories() -> set:
    """Chapters whose paper parameters name the TinyStories corpus itself (no stand-in)."""
    spec = profiles.load_profiles()
    return {ch for ch in spec["chapters"]
            if profiles.chapter_parameters(ch, PROFILE, spec).get("corpus") == "tinystories"}


@pytest.fixture(scope="module")
def paper_smoke_build(tmp_path_factory):
    build = tmp_path_factory.mktemp("paper_smoke") / "_build"
    env = {k: v for k, v in os.environ.items() if k not in ("ATOME_PROGRESS", "ATOME_RESULTS_DIR")}
    env.update(ATOME_BUILD_DIR=str(build), CI="1")
    skipped = set() if (interop_tinystories() or os.environ.get("ATOME_TINYSTORIES")) else chapters_needing_tinystories()
    only = [a for ch in profiles.load_profiles()["chapters"] if ch not in skipped for a in ("--only", ch)]
    proc = subprocess.run([str(BIN / "atome"), "book", "--profile", PROFILE, "--no-render", *only],
                          check=False, env=env, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, f"atome book --profile {PROFILE} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return build, skipped


def test_every_chapter_runs_under_paper_smoke(paper_smoke_build):
    build, skipped = paper_smoke_build
    ran = {p.parent.name for p in (build / "results" / PROFILE).glob("*/metrics.json")}
    expected = set(profiles.load_profiles()["chapters"]) - skipped
    assert ran == expected
    for name in ran:
        metrics = json.loads((build / "results" / PROFILE / name / "metrics.json").read_text())
        assert metrics["profile"] == PROFILE


def test_paper_smoke_training_runs_checkpoint_so_a_rerun_resumes(paper_smoke_build):
    build, _ = paper_smoke_build
    checkpoints = list((build / "checkpoints" / PROFILE).glob("*/*.ckpt.safetensors"))
    assert checkpoints, "no chapter's training run wrote a checkpoint under paper-smoke"
    chapters = {p.parent.name for p in checkpoints}
    assert "04_ab_60k" in chapters


def test_every_chapters_training_plan_matches_what_it_trained_under_paper_smoke(paper_smoke_build):
    # The plans behind `atome book --list --profile paper`: what each notebook trained under the
    # paper profile's code paths (its ledger) is exactly what its plan says it trains.
    from atome_core.book.estimate import PLANS, chapter_plan, plan_mismatch
    from atome_core.ledger import read_ledger
    build, skipped = paper_smoke_build
    results = build / "results" / PROFILE
    for name in profiles.load_profiles()["chapters"]:
        if name in skipped:
            continue
        ledger_file = results / name / "training_runs.jsonl"
        ledger = read_ledger(ledger_file) if ledger_file.exists() else []
        assert bool(ledger) == (name in PLANS), f"{name}: trains {len(ledger)} runs; in PLANS: {name in PLANS}"
        assert plan_mismatch(chapter_plan(name, PROFILE, build=build), ledger) == [], name
