"""Where a chapter writes its results (metrics JSON and figures), atomically.

`atome book` points ATOME_RESULTS_DIR at a staging folder and moves it into
place only when the whole notebook succeeded (`atome sweep` at each run's folder); run
as stored (nbmake, `jupyter-book build`) the results go to
_build/results/<profile>/<chapter>/, run with values given by hand (papermill -p) to
_build/scratch/<profile>/<chapter>/, or, when papermill injected its output path
(`--inject-output-path`), beside the output notebook (chapter.open_chapter).

metrics.json holds, besides whatever the chapter measured, a `claims` block: the
numbers the intro's claims table quotes, each {"value": ..., "unit": ...} (or
{"value": null, "reason": ...} when this build could not measure it). The table reads
that block and nothing else (atome_core.book.claims), so a renamed metric cannot
silently drop a claim. The save methods return None so a notebook cell that ends
with one prints nothing.

`read_chapter_metrics(chapter, profile)` reads what another chapter published in the same
build (a chapter that does must list it under `reads` in profiles.yml, so that the runner
executes it again when that chapter's results change). `read_chapter_file(chapter, profile,
name)` finds a file it published beside its metrics (a trained model, say), or None. A
chapter that publishes a model for others records its name in metrics.json, so the
reader's cache key changes when the model does.
"""
import json
import os
from pathlib import Path

from ..files import write_atomic
from ..paths import build_dir


class ChapterResults:
    def __init__(self, chapter: str, profile: str, publish: bool = True, folder: Path | None = None):
        """publish=False: a run with parameters given by hand writes to _build/scratch/;
        `folder`: to that folder instead (ATOME_RESULTS_DIR still wins)."""
        self.chapter, self.profile = chapter, profile
        env_dir = os.environ.get("ATOME_RESULTS_DIR")
        kind = "results" if publish else "scratch"
        self.dir = Path(env_dir) if env_dir else Path(folder) if folder else build_dir() / kind / profile / chapter
        self.dir.mkdir(parents=True, exist_ok=True)
        self.metrics: dict = {}

    def save_metrics(self, metrics: dict, name: str = "metrics.json") -> None:
        """Merge into the chapter's metrics and rewrite the JSON file."""
        self.metrics.update(metrics)
        self._write(name)

    def claim(self, key: str, value, unit: str = "", reason: str | None = None) -> None:
        """Record one number the claims table quotes (value None needs the reason)."""
        if value is None and not reason:
            raise ValueError(f"claim {key!r} has no value: say why it was not measured")
        entry = {"value": value, "unit": unit}
        if reason:
            entry["reason"] = reason
        self.metrics.setdefault("claims", {})[key] = entry
        self._write()

    def _write(self, name: str = "metrics.json") -> None:
        payload = {"chapter": self.chapter, "profile": self.profile, **self.metrics}
        write_atomic(self.dir / name, json.dumps(payload, indent=2, sort_keys=True, default=_jsonable) + "\n")

    def path(self, name: str) -> Path:
        """A file in this chapter's results folder (for files a chapter writes itself)."""
        return self.dir / name

    def save_figure(self, fig, name: str) -> None:
        import io
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=120, bbox_inches="tight", metadata={"Software": None})
        write_atomic(self.dir / f"{name}.png", buf.getvalue())


def read_chapter_metrics(chapter: str, profile: str) -> dict | None:
    """The metrics `chapter` published under `profile` in this build (its metrics.json as a
    dict), or None when it has published none."""
    path = build_dir() / "results" / profile / chapter / "metrics.json"
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        return json.loads(text)
    except ValueError as e:
        raise ValueError(f"chapter {chapter}'s published metrics ({profile}) are not JSON: {e}") from None


def read_chapter_file(chapter: str, profile: str, name: str) -> Path | None:
    """The path of a file `chapter` published under `profile` in this build (e.g.
    "models/routed-60k.safetensors"), or None when it has not."""
    path = build_dir() / "results" / profile / chapter / name
    return path if path.is_file() else None


def _jsonable(x):
    if hasattr(x, "item") and getattr(x, "ndim", 1) == 0:
        return x.item()
    if hasattr(x, "tolist"):
        return x.tolist()
    if isinstance(x, Path):
        return str(x)
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")
