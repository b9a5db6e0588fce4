"""`atome sweep`: run one chapter over a grid of parameters with papermill, and collect.

    atome sweep 04_ab_60k --profile smoke -p steps=6,12 -p lr=0.001,0.003 [--dask-local 2]

- The grid is the cartesian product of the `-p NAME=V1,V2,...` lists; each value is read as
  YAML (6 is an int, 0.001 a float, [a, b] a list, null None). Every name must be a
  parameter of the chapter (profiles.yml); the others keep the profile's values.
- Each run goes to _build/sweeps/<sweep>/<run>/: notebook.ipynb (executed), params.json,
  results/ (the chapter's metrics.json and figures: ATOME_RESULTS_DIR points there) and,
  when it failed, failure.json (cell, error). Nothing is written under _build/results/.
- A run is skipped when its notebook carries the cache key the book's runner would give
  the same inputs (runner.cache_key: notebook, parameters, atome_core source, and the
  published results of the chapters it reads).
- A failing run is recorded and the others finish; the sweep then fails, listing them.
- The table of every run's metrics (the scalar entries of metrics.json, one level of
  nesting flattened as "a.b") is written as sweep.csv and sweep.md, and, when one or two
  parameters vary, sweep.png plots one metric against them.
- Executors: local processes (`workers`, 1: in this process), or Dask distributed:
  `dask_local=N` starts a LocalCluster of N single-threaded worker processes on 127.0.0.1
  and stops it after; `scheduler="tcp://host:port"` uses a running cluster (started by hand
  or by dask-jobqueue on Slurm/PBS), whose workers must see this folder at the same path.
"""
import csv
import io
import itertools
import json
import os
import re
import shutil
import time
from pathlib import Path

import yaml

from ..files import write_atomic
from ..paths import build_dir, repo_root
from ..progress import progress_enabled
from . import profiles as profiles_mod
from . import runner
from .chapter import QUIET_ENV
from .report import table_markdown


def parse_values(text: str) -> list:
    """"6,12" -> [6, 12]; commas inside [..] or {..} do not split ("[a, b],[c]" is two values)."""
    values, depth, start = [], 0, 0
    for i, ch in enumerate(text + ","):
        if ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            piece = text[start:i].strip()
            if not piece:
                raise ValueError(f"empty value in {text!r}")
            values.append(yaml_value(piece))
            start = i + 1
    return values


def yaml_value(text: str):
    """YAML, except that 1e-3 is a float (YAML 1.1, PyYAML's, wants 1.0e-3)."""
    value = yaml.safe_load(text)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    return value


def parse_grid(specs: list[str]) -> dict:
    """["steps=6,12", "lr=0.001"] -> {"steps": [6, 12], "lr": [0.001]} (in the order given)."""
    grid = {}
    for spec in specs:
        name, sep, values = spec.partition("=")
        name = name.strip()
        if not sep or not name or not values.strip():
            raise ValueError(f"-p {spec!r}: write NAME=V1,V2,...")
        if name in grid:
            raise ValueError(f"-p {name} given twice")
        grid[name] = parse_values(values)
    if not grid:
        raise ValueError("give at least one -p NAME=V1,V2,...")
    return grid


def run_name(point: dict) -> str:
    """A folder name for one point of the grid: "steps=6,lr=0.001"."""
    text = ",".join(f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in point.items())
    return re.sub(r"[^A-Za-z0-9._=,+-]", "_", text)


def grid_points(grid: dict) -> list[dict]:
    return [dict(zip(grid, values)) for values in itertools.product(*grid.values())]


def execute_run(notebook: str, run_dir: str, params: dict, key: str, profile: str) -> dict:
    """One papermill run into run_dir (in whichever process the executor chose)."""
    import nbformat
    import papermill
    from papermill.exceptions import PapermillExecutionError

    run = Path(run_dir)
    shutil.rmtree(run / "results", ignore_errors=True)
    (run / "failure.json").unlink(missing_ok=True)
    (run / "results").mkdir(parents=True)
    out = run / "notebook.ipynb"
    kernel_env = {**QUIET_ENV, "ATOME_RESULTS_DIR": str(run / "results"), "ATOME_PROFILE": profile}
    env_before = {k: os.environ.get(k) for k in (*kernel_env, "MPLBACKEND")}
    os.environ.update(kernel_env)
    os.environ.pop("MPLBACKEND", None)
    t0 = time.perf_counter()
    try:
        papermill.execute_notebook(notebook, str(out), parameters=params, kernel_name="python3",
                                   cwd=str(Path(notebook).parent), progress_bar=False, log_output=False)
    except PapermillExecutionError as e:
        failure = {"cell": e.cell_index, "execution_count": e.exec_count, "error": f"{e.ename}: {e.evalue}",
                   "cell_source_begins": (e.source.strip().splitlines() or [""])[0]}
        write_atomic(run / "failure.json", json.dumps(failure, indent=2) + "\n")
        return {"run": run.name, "status": "failed", **failure}
    except Exception as e:  # noqa: BLE001 (the kernel died, the notebook is unreadable, ...: a run's failure)
        failure = {"cell": None, "execution_count": None, "error": f"{type(e).__name__}: {e}", "cell_source_begins": ""}
        write_atomic(run / "failure.json", json.dumps(failure, indent=2) + "\n")
        return {"run": run.name, "status": "failed", **failure}
    finally:
        for k, v in env_before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    wall = time.perf_counter() - t0
    nb = nbformat.read(out, as_version=4)
    nb.metadata["atome"] = {"cache_key": key, "profile": profile, "parameters": params, "wall_seconds": round(wall, 2)}
    nbformat.write(nb, out)   # the key last: it marks the run done
    return {"run": run.name, "status": "executed", "wall_seconds": wall}


class LocalExecutor:
    """Runs in this process (workers=1) or in a pool of worker processes."""

    def __init__(self, workers: int):
        self.workers = workers

    def run(self, jobs: list[tuple]):
        if self.workers <= 1:
            for job in jobs:
                yield execute_run(*job)
            return
        from concurrent.futures import ProcessPoolExecutor, as_completed
        with ProcessPoolExecutor(self.workers) as pool:
            for future in as_completed([pool.submit(execute_run, *job) for job in jobs]):
                yield future.result()


class DaskExecutor:
    """Dask distributed: a LocalCluster on loopback (n_local workers), or a scheduler address."""

    def __init__(self, scheduler: str | None = None, n_local: int | None = None):
        self.scheduler, self.n_local = scheduler, n_local

    def run(self, jobs: list[tuple]):
        import logging

        from distributed import Client, LocalCluster, as_completed
        if self.scheduler:
            with Client(self.scheduler) as client:
                yield from self._collect(client, jobs, as_completed)
            return
        with LocalCluster(n_workers=self.n_local, threads_per_worker=1, processes=True, host="127.0.0.1",
                          dashboard_address=None, silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
            yield from self._collect(client, jobs, as_completed)

    @staticmethod
    def _collect(client, jobs, as_completed):
        futures = [client.submit(execute_run, *job, pure=False) for job in jobs]
        for future in as_completed(futures):
            yield future.result()


def flat_metrics(metrics: dict) -> dict:
    """The scalar entries of a metrics.json, one level of nesting as "a.b"."""
    out = {}
    for k, v in metrics.items():
        if k in ("chapter", "profile"):
            continue
        if isinstance(v, dict):
            for k2, v2 in v.items():
                if isinstance(v2, (int, float, str, bool)) or v2 is None:
                    out[f"{k}.{k2}"] = v2
        elif isinstance(v, (int, float, str, bool)):
            out[k] = v
    return out


def collect(sweep: Path, grid: dict, runs: list[tuple[dict, Path]]) -> tuple[list, list]:
    """(header, rows): the varied parameters, the run, its status, then every metric any run
    wrote (as "metrics.NAME" when a parameter has that name)."""
    records = []
    for point, run in runs:
        failure = run / "failure.json"
        if failure.exists():
            status, metrics = "failed: " + json.loads(failure.read_text())["error"], {}
        else:
            status = "ok"
            try:
                metrics = flat_metrics(json.loads((run / "results" / "metrics.json").read_text()))
            except (OSError, ValueError):
                metrics = {}
        records.append((point, status, metrics))
    keys = sorted({k for _, _, m in records for k in m})
    # a metric named like a parameter (a chapter may record its `steps`) gets its own column
    header = [*grid, "run", "status", *(f"metrics.{k}" if k in grid else k for k in keys)]
    rows = [[*point.values(), run.name, status, *(m.get(k) for k in keys)]
            for (point, status, m), (_, run) in zip(records, runs)]
    return header, rows


def write_table(sweep: Path, header: list, rows: list) -> None:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(header)
    for row in rows:
        w.writerow(["" if x is None else json.dumps(x) if isinstance(x, (list, dict)) else x for x in row])
    write_atomic(sweep / "sweep.csv", buf.getvalue())
    shown = [[json.dumps(x) if isinstance(x, (list, dict)) else x for x in row] for row in rows]
    write_atomic(sweep / "sweep.md", table_markdown(header, shown, digits=4))


def numeric(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def plot(sweep: Path, grid: dict, header: list, rows: list, metric: str | None) -> str | None:
    """sweep.png: `metric` (default: the first metric every ok run has as a number) against the
    first varied parameter, one line per value of the second. None when there is nothing to plot."""
    varied = [name for name, values in grid.items() if len(values) > 1]
    col = {h: i for i, h in enumerate(header)}
    ok = [r for r in rows if r[col["status"]] == "ok"]
    candidates = [h for h in header[len(grid) + 2:] if ok and all(numeric(r[col[h]]) for r in ok)]
    if metric is not None and metric not in candidates:
        raise ValueError(f"--metric {metric}: not a number in every run; numeric metrics: {', '.join(candidates)}")
    metric = metric or (candidates[0] if candidates else None)
    if metric is None or not 1 <= len(varied) <= 2:
        return None
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    x_name = varied[0]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    groups = grid[varied[1]] if len(varied) == 2 else [None]
    for g in groups:
        pts = [(r[col[x_name]], r[col[metric]]) for r in ok if g is None or r[col[varied[1]]] == g]
        if pts:
            ax.plot([str(p[0]) if not numeric(p[0]) else p[0] for p in pts], [p[1] for p in pts], "o-",
                    label=None if g is None else f"{varied[1]}={g}")
    ax.set_xlabel(x_name)
    ax.set_ylabel(metric)
    if len(varied) == 2:
        ax.legend()
    fig.savefig(sweep / "sweep.png", dpi=120, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return metric


def sweep(chapter: str, specs: list[str], profile: str = "cpu", name: str | None = None, workers: int = 1,
          scheduler: str | None = None, dask_local: int | None = None, metric: str | None = None,
          log=print) -> dict:
    """Run the grid; returns {"dir", "runs": {run: status}, "failed": [...]}. Raises
    RuntimeError naming the failed runs after writing the table."""
    root, build = repo_root(), build_dir()
    spec = profiles_mod.load_profiles()
    chapters = {c.name: c for c in runner.list_chapters(root)}
    if chapter not in chapters:
        raise ValueError(f"unknown chapter {chapter!r}; known: {', '.join(chapters)}")
    ch = chapters[chapter]
    grid = parse_grid(specs)
    base = runner.injected_parameters(chapter, profile, spec)
    unknown = [n for n in grid if n not in base or n in ("profile", "chapter", "injected")]
    if unknown:
        known = [k for k in base if k not in ("profile", "chapter", "injected")]
        raise ValueError(f"{chapter} has no parameter {', '.join(unknown)}; its parameters: {', '.join(known)}")
    if workers < 1 or (dask_local is not None and dask_local < 1):
        raise ValueError("--workers and --dask-local need at least 1")
    sweep_dir = build / "sweeps" / (name or f"{chapter}-{profile}-{'-'.join(grid)}")
    fingerprint = runner.source_fingerprint(root)
    reads = runner.read_inputs(build, profile, profiles_mod.chapter_reads(chapter, spec))
    runs, jobs, status = [], [], {}
    for point in grid_points(grid):
        params = {**base, **point}
        run = sweep_dir / run_name(point)
        key = runner.cache_key(ch, params, fingerprint, reads)
        runs.append((point, run))
        write_atomic(run / "params.json", json.dumps({"profile": profile, "chapter": chapter, "varied": point,
                                                       "parameters": params}, indent=2, sort_keys=True) + "\n")
        if runner.cached_key(run / "notebook.ipynb") == key:
            status[run.name] = "cached"
        else:
            jobs.append((str(ch.path), str(run), params, key, profile))
    log(f"[atome sweep] {sweep_dir}: {len(runs)} runs, {len(runs) - len(jobs)} cached, {len(jobs)} to execute")
    executor = DaskExecutor(scheduler, dask_local) if (scheduler or dask_local) else LocalExecutor(workers)
    from tqdm import tqdm
    with tqdm(total=len(jobs), desc="atome sweep", unit="run", disable=not progress_enabled() or not jobs) as bar:
        for result in executor.run(jobs):
            status[result["run"]] = result["status"]
            bar.update(1)
            if result["status"] == "failed":
                log(f"[atome sweep] {result['run']}: failed in cell {result['cell']}: {result['error']}")
    header, rows = collect(sweep_dir, grid, runs)
    write_table(sweep_dir, header, rows)
    plotted = plot(sweep_dir, grid, header, rows, metric)
    log(f"[atome sweep] table: {sweep_dir / 'sweep.md'} and sweep.csv" + (f"; sweep.png plots {plotted}" if plotted else ""))
    failed = [r.name for _, r in runs if (r / "failure.json").exists()]
    if failed:
        details = "; ".join(f"{n} ({json.loads((sweep_dir / n / 'failure.json').read_text())['error']})" for n in failed)
        raise RuntimeError(f"{len(failed)} of {len(runs)} runs failed: {details}")
    return {"dir": sweep_dir, "runs": status, "failed": failed}
