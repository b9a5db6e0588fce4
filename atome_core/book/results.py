"""Where a chapter writes its results (metrics JSON and figures), atomically.

`atome book` points ATOME_RESULTS_DIR at a staging folder and moves it into
place only when the whole notebook succeeded; run by hand (or by nbmake) the
results go to _build/results/<profile>/<chapter>/.
"""
import json
import os
from pathlib import Path

from ..files import write_atomic
from ..paths import build_dir


class ChapterResults:
    def __init__(self, chapter: str, profile: str):
        self.chapter, self.profile = chapter, profile
        env_dir = os.environ.get("ATOME_RESULTS_DIR")
        self.dir = Path(env_dir) if env_dir else build_dir() / "results" / profile / chapter
        self.dir.mkdir(parents=True, exist_ok=True)
        self.metrics: dict = {}

    def save_metrics(self, metrics: dict, name: str = "metrics.json") -> Path:
        """Merge into the chapter's metrics and rewrite the JSON file."""
        self.metrics.update(metrics)
        payload = {"chapter": self.chapter, "profile": self.profile, **self.metrics}
        path = self.dir / name
        write_atomic(path, (json.dumps(payload, indent=2, sort_keys=True, default=_jsonable) + "\n").encode())
        return path

    def save_figure(self, fig, name: str) -> Path:
        import io
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=120, bbox_inches="tight", metadata={"Software": None})
        path = self.dir / f"{name}.png"
        write_atomic(path, buf.getvalue())
        return path


def _jsonable(x):
    if hasattr(x, "tolist"):
        return x.tolist()
    if isinstance(x, Path):
        return str(x)
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")
