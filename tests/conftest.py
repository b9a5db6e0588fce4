"""Fixtures shared by the test files."""
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from atome_core.paths import LEDGER_ENV
from atome_core.train import torch_threads

ROOT = Path(__file__).resolve().parents[1]
SMOKE = "smoke"


@pytest.fixture(autouse=True)
def no_training_ledger(monkeypatch):
    """No test's training lands in a ledger another test left set (open_chapter sets one for the
    process); a test that wants a ledger sets ATOME_TRAINING_LEDGER itself."""
    monkeypatch.delenv(LEDGER_ENV, raising=False)


@pytest.fixture(scope="module")
def one_thread():
    """Run a test module's tiny tensors on one torch thread (no OpenMP spin-waiting on a
    shared machine); a module opts in with `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    with torch_threads(1):
        yield


@dataclass(frozen=True)
class SmokeBook:
    build: Path     # ATOME_BUILD_DIR of the build: executed/, results/, src/
    env: dict       # the environment `atome book` ran with (to run it again)
    reused: bool    # the executed chapters were copied from a fresh build in _build/

    @property
    def html(self) -> Path:
        from atome_core.book.runner import html_dir
        return html_dir(self.build)

    @property
    def results(self) -> Path:
        return self.build / "results" / SMOKE

    def run_again(self, timeout: int = 600) -> subprocess.CompletedProcess:
        """`atome book --profile smoke` once more, into the same build folder."""
        return atome_book(self.env, timeout)


def atome_book(env: dict, timeout: int) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "atome_core.cli", "book", "--profile", SMOKE],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def smoke_book(tmp_path_factory) -> SmokeBook:
    """The whole book, every chapter executed and rendered under the smoke profile, once
    per test session, in a scratch folder (the HTML in _build/ is never touched).

    When _build/ already holds a fresh smoke build (every chapter's executed notebook
    carries the cache key `atome book` would compute now), its executed notebooks and
    results are copied over and only the rendering runs."""
    from atome_core.book import runner
    from atome_core.paths import build_dir

    build = tmp_path_factory.mktemp("smoke_book") / "_build"
    existing = build_dir()
    reused = (existing / "executed" / SMOKE).is_dir() and not runner.stale_chapters(existing, SMOKE)
    if reused:
        for part in ("executed", "results"):
            shutil.copytree(existing / part / SMOKE, build / part / SMOKE)
    env = {k: v for k, v in os.environ.items() if k not in ("ATOME_PROGRESS", "ATOME_RESULTS_DIR")}
    env.update(ATOME_BUILD_DIR=str(build), CI="1")
    proc = atome_book(env, timeout=1800)
    assert proc.returncode == 0, f"atome book --profile smoke failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return SmokeBook(build, env, reused)


@pytest.fixture
def text_file(tmp_path):
    """A small text file of ten words in random order (for `atome train` on a tiny budget)."""
    rng = np.random.default_rng(0)
    words = ["the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "far"]
    path = tmp_path / "text.txt"
    path.write_text(" ".join(rng.choice(words, 6000)) + "\n")
    return path
