"""Where things live: the repository root, the build folder, caches."""
import os
import sys
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent
# where a plain `pip install .` puts the files a checkout keeps beside the package
# (pyproject.toml's data-files: the C engine's sources, the corpus manifest)
INSTALLED_SHARE = Path(sys.prefix) / "share" / "atome"
# the file every training run appends its shape to (atome_core.train.record_run); a chapter
# points it at LEDGER_FILE in its results folder when it opens (book.chapter.open_chapter)
LEDGER_ENV = "ATOME_TRAINING_LEDGER"
LEDGER_FILE = "training_runs.jsonl"


def beside_package(relative: str) -> Path:
    """A file or folder a checkout keeps beside the package ("c_engine", "data/corpora.yml"):
    the checkout's, else the installed copy under <prefix>/share/atome (when there is one)."""
    in_checkout = REPO_ROOT / relative
    installed = INSTALLED_SHARE / relative
    return installed if not in_checkout.exists() and installed.exists() else in_checkout


def repo_root() -> Path:
    """The book's root (holds _toc.yml). ATOME_ROOT overrides, e.g. for a copy of the book."""
    return Path(os.environ.get("ATOME_ROOT", REPO_ROOT)).resolve()


def build_dir() -> Path:
    return Path(os.environ.get("ATOME_BUILD_DIR", repo_root() / "_build")).resolve()


def cache_dir() -> Path:
    """Downloads of pinned registry packages and derived files; safe to delete."""
    return Path(os.environ.get("ATOME_CACHE_DIR") or Path.home() / ".cache" / "atome").resolve()


def shared_interop_dir() -> Path | None:
    """../shared/interop beside the project (published checkpoints); None when absent."""
    candidates = [os.environ.get("ATOME_INTEROP_DIR"), repo_root().parent / "shared" / "interop"]
    for c in candidates:
        if c and Path(c).is_dir():
            return Path(c).resolve()
    return None
