"""`atome book`: execute every chapter with papermill, then render the HTML book.

Layout under _build/ (ATOME_BUILD_DIR):
  executed/<profile>/notebooks/<name>.ipynb   executed notebooks (cache key in metadata)
  results/<profile>/<name>/                    each chapter's metrics.json and figures
  failed/<profile>/<name>.ipynb                the notebook as it stood when it failed
  src/                                         the book source assembled for rendering
  html/                                        the rendered book

A chapter is re-executed only when its cache key changes: the notebook's bytes,
its injected parameters and the atome_core source (plus data manifests), and, for a
chapter whose profiles.yml block lists `reads: [...]`, the published metrics.json of each
chapter it reads, under the same profile (so it runs again when their results change).
Chapters execute in book order, except that a chapter runs after the chapters it reads
(execution_order); the rendered book keeps the order of _toc.yml.
Results move into place only after the notebook succeeded (staging + rename).
"""
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..distributed import CHECKPOINT_ENV
from ..paths import PACKAGE_DIR, build_dir, repo_root
from ..progress import progress_enabled
from . import claims
from . import profiles as profiles_mod
from .chapter import QUIET_ENV

# Source files that change what a notebook computes, besides the notebook itself.
FINGERPRINT_GLOBS = [(PACKAGE_DIR, "**/*.py"), (PACKAGE_DIR, "**/*.yml"), (PACKAGE_DIR, "**/*.json")]
ROOT_FINGERPRINT_FILES = ["data/*.yml", "data/*.json", "c_engine/*.c", "c_engine/*.h", "c_engine/Makefile",
                          "firmware/**/*.c", "firmware/**/*.h", "firmware/**/*.ld", "firmware/**/*.S",
                          "firmware/**/Makefile"]
BOOK_FILES = ["_config.yml", "_toc.yml"]
EXTRA_DIR = "_extra"   # html_extra_path in _config.yml: copied into the site as is
RENDER_ONLY_ENV = "ATOME_BOOK_RENDER"   # set while `atome book` renders executed notebooks


# The kernel starts quiet (chapter.QUIET_ENV), and without the warning that tqdm found no
# notebook widgets (it names an absolute path).
KERNEL_WARNINGS = ["ignore:IProgress not found"]


class _RunnerParameters(logging.Filter):
    """papermill warns of every injected name the parameters cell does not declare; the two
    the runner itself injects (`chapter`, `injected`, see injected_parameters) are expected."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() not in ("Passed unknown parameter: chapter", "Passed unknown parameter: injected")


class BookError(RuntimeError):
    """A build step failed; the message says which notebook, cell and error."""


@dataclass
class Chapter:
    name: str       # file stem, e.g. "00_corpora"
    path: Path      # the source notebook
    toc_entry: str  # as written in _toc.yml, e.g. "notebooks/00_corpora"

    def toc_entry_path(self) -> Path:
        return Path(self.toc_entry).with_suffix(".ipynb")


def toc_files(root: Path) -> list[str]:
    """Every `file:` entry of _toc.yml, in reading order."""
    with open(root / "_toc.yml") as f:
        toc = yaml.safe_load(f)
    out = [toc["root"]]

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                out.append(node["file"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk({k: v for k, v in toc.items() if k != "root"})
    return out


def resolve_toc_entry(root: Path, entry: str) -> Path:
    """The file a toc entry names (entries may omit .ipynb / .md)."""
    p = root / entry
    candidates = [p] if p.suffix in (".ipynb", ".md") else [p.with_suffix(".ipynb"), p.with_suffix(".md")]
    for c in candidates:
        if c.exists():
            return c
    raise BookError(f"_toc.yml lists {entry}, but {' / '.join(map(str, candidates))} does not exist")


def list_chapters(root: Path | None = None) -> list[Chapter]:
    """The notebooks of the book, in toc order."""
    root = Path(root or repo_root())
    chapters = []
    for entry in toc_files(root):
        p = resolve_toc_entry(root, entry)
        if p.suffix == ".ipynb":
            chapters.append(Chapter(p.stem, p, str(Path(entry).with_suffix(""))))
    return chapters


def source_fingerprint(root: Path) -> str:
    h = hashlib.sha256()
    files = []
    for base, pattern in FINGERPRINT_GLOBS:
        files += [p for p in base.glob(pattern) if "__pycache__" not in p.parts]
    for pattern in ROOT_FINGERPRINT_FILES:
        files += list(root.glob(pattern))
    for p in sorted(set(files)):
        h.update(str(p.relative_to(p.parent.parent if p.is_relative_to(PACKAGE_DIR) else root)).encode())
        h.update(b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def cache_key(chapter: Chapter, params: dict, fingerprint: str, reads: dict | None = None) -> str:
    """`reads`: {chapter name: the bytes of its published metrics.json, or None when it has
    none}, from read_inputs; a chapter that reads nothing keeps the key it had without it."""
    h = hashlib.sha256()
    h.update(chapter.path.read_bytes())
    h.update(json.dumps(params, sort_keys=True).encode())
    h.update(fingerprint.encode())
    for name in sorted(reads or {}):
        data = reads[name]
        h.update(b"\0reads\0" + name.encode() + (b"\0absent" if data is None else b"\0" + data))
    return h.hexdigest()


def published_metrics_path(build: Path, profile: str, chapter: str) -> Path:
    return build / "results" / profile / chapter / "metrics.json"


def read_inputs(build: Path, profile: str, names: list[str]) -> dict:
    """{name: bytes of that chapter's published metrics.json under `profile`, or None}."""
    out = {}
    for name in names:
        try:
            out[name] = published_metrics_path(build, profile, name).read_bytes()
        except OSError:
            out[name] = None
    return out


def execution_order(chapters: list[Chapter], spec: dict) -> list[Chapter]:
    """The chapters in the order the runner executes them: book order, except that a chapter
    runs after every chapter it reads (a stable topological order, so its key and its run see
    their fresh results). A read of a chapter not in the book, or a cycle of reads, is refused."""
    names = {ch.name for ch in chapters}
    reads = {ch.name: profiles_mod.chapter_reads(ch.name, spec) for ch in chapters}
    for ch in chapters:
        for name in reads[ch.name]:
            if name not in names:
                raise BookError(f"profiles.yml: {ch.name} reads {name}, which is not in _toc.yml")
    order, done = [], set()
    while len(order) < len(chapters):
        # the first chapter in book order whose reads have all run
        ready = next((ch for ch in chapters if ch.name not in done
                      and all(name in done for name in reads[ch.name])), None)
        if ready is None:
            waiting = [ch.name for ch in chapters if ch.name not in done]
            raise BookError(f"profiles.yml: the reads of {', '.join(waiting)} form a cycle")
        order.append(ready)
        done.add(ready.name)
    return order


def injected_parameters(chapter: str, profile: str, spec: dict | None = None) -> dict:
    """What papermill injects: the profile's parameters, the chapter's name, and the list of
    parameter names (so the notebook's open_chapter reads nothing again)."""
    params = profiles_mod.chapter_parameters(chapter, profile, spec)
    return {**params, "chapter": chapter, "injected": sorted(k for k in params if k != "profile")}


def executed_path(build: Path, profile: str, chapter: Chapter) -> Path:
    return build / "executed" / profile / chapter.toc_entry_path()


def cached_key(path: Path) -> str | None:
    try:
        with open(path) as f:
            return json.load(f)["metadata"]["atome"]["cache_key"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def stale_chapters(build: Path, profile: str, root: Path | None = None) -> list[str]:
    """The chapters whose executed notebook under `build` is missing or carries an old
    cache key, and those that read a stale chapter's results (they run again when those
    change): what `atome book --profile <profile>` would execute again."""
    root = Path(root or repo_root())
    spec = profiles_mod.load_profiles()
    fingerprint = source_fingerprint(root)
    stale = []
    for ch in execution_order(list_chapters(root), spec):
        reads = profiles_mod.chapter_reads(ch.name, spec)
        key = cache_key(ch, injected_parameters(ch.name, profile, spec), fingerprint,
                        read_inputs(build, profile, reads))
        if cached_key(executed_path(build, profile, ch)) != key or set(reads) & set(stale):
            stale.append(ch.name)
    return stale


def execute_chapter(chapter: Chapter, profile: str, params: dict, key: str, build: Path,
                    spec: dict) -> float:
    """Run one notebook with papermill; publish its notebook and results only on success.
    `spec`: the book's profiles (profiles.load_profiles), read once per build."""
    import nbformat
    import papermill
    from papermill.exceptions import PapermillExecutionError

    final_nb = executed_path(build, profile, chapter)
    final_results = build / "results" / profile / chapter.name
    staging_root = build / "staging"
    staging_root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{chapter.name}-", dir=staging_root))
    staged_nb = staging / "notebook.ipynb"
    staged_results = staging / "results"
    staged_results.mkdir()
    # The kernel inherits these. MPLBACKEND must stay unset there: the kernel's
    # inline backend is what puts figures into the executed notebook.
    kernel_env = {**QUIET_ENV, "ATOME_RESULTS_DIR": str(staged_results), "ATOME_PROFILE": profile,
                  "PYTHONWARNINGS": ",".join(filter(None, [os.environ.get("PYTHONWARNINGS"), *KERNEL_WARNINGS]))}
    if (spec["profiles"].get(profile) or {}).get("checkpoints"):
        # every training run of the chapter resumes from its last checkpoint when run again
        kernel_env[CHECKPOINT_ENV] = str(build / "checkpoints" / profile / chapter.name)
    env_before = {k: os.environ.get(k) for k in (*kernel_env, "MPLBACKEND")}
    os.environ.update(kernel_env)
    os.environ.pop("MPLBACKEND", None)
    t0 = time.perf_counter()
    succeeded = False
    quiet = _RunnerParameters()
    logging.getLogger("papermill").addFilter(quiet)
    try:
        papermill.execute_notebook(
            str(chapter.path), str(staged_nb), parameters=params, kernel_name="python3",
            cwd=str(chapter.path.parent), progress_bar=progress_enabled(), log_output=False,
        )
        succeeded = True
    except PapermillExecutionError as e:
        failed = build / "failed" / profile / f"{chapter.name}.ipynb"
        failed.parent.mkdir(parents=True, exist_ok=True)
        if staged_nb.exists():
            shutil.copyfile(staged_nb, failed)
        raise BookError(
            f"notebook {chapter.path.relative_to(repo_root())} failed in cell {e.cell_index} "
            f"(execution count {e.exec_count}): {e.ename}: {e.evalue}\n"
            f"  cell source begins: {e.source.strip().splitlines()[0] if e.source.strip() else ''}\n"
            f"  the failed notebook is at {failed}; no results were published"
        ) from None
    except Exception as e:
        raise BookError(f"notebook {chapter.path.relative_to(repo_root())} could not be executed: "
                        f"{type(e).__name__}: {e}") from None
    finally:
        logging.getLogger("papermill").removeFilter(quiet)
        for k, v in env_before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if not succeeded:  # failed or interrupted (Ctrl-C too): publish nothing
            shutil.rmtree(staging, ignore_errors=True)
    wall = time.perf_counter() - t0

    nb = nbformat.read(staged_nb, as_version=4)
    for cell in nb.cells:   # papermill's cell of injected values: folded on the page, one click away
        tags = cell.metadata.get("tags", [])
        if "injected-parameters" in tags and "hide-input" not in tags:
            cell.metadata["tags"] = tags + ["hide-input"]
    nb.metadata["atome"] = {"cache_key": key, "profile": profile, "parameters": params,
                            "wall_seconds": round(wall, 2)}
    nbformat.write(nb, staged_nb)

    # Publish: results folder first, then the notebook (whose key marks the chapter done).
    final_results.parent.mkdir(parents=True, exist_ok=True)
    old = None
    if final_results.exists():
        old = staging / "old-results"
        os.replace(final_results, old)
    os.replace(staged_results, final_results)
    final_nb.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staged_nb, final_nb)
    shutil.rmtree(staging, ignore_errors=True)
    return wall


# The one MathJax bundle the book loads (mathjax_path in _config.yml) and the folders
# it pulls components and fonts from on demand; the other bundles are not shipped.
MATHJAX_ENTRY = "tex-chtml.js"
MATHJAX_FOLDERS = ("a11y", "adaptors", "input", "output", "sre", "ui")


def vendored_mathjax(root: Path) -> Path | None:
    p = root / ".cache" / "vendor" / "node_modules" / "mathjax" / "es5"
    return p if (p / MATHJAX_ENTRY).exists() else None


def mathjax_files(mathjax: Path) -> list[Path]:
    """The vendored MathJax files the site serves, relative to es5/."""
    files = [Path(MATHJAX_ENTRY)]
    for folder in MATHJAX_FOLDERS:
        files += sorted(p.relative_to(mathjax) for p in (mathjax / folder).glob("**/*") if p.is_file())
    return files


def _copy_if_changed(src: Path, dst: Path) -> None:
    # Keep mtimes of unchanged files so Sphinx re-reads only what changed.
    if dst.exists() and dst.read_bytes() == src.read_bytes():
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, dst)


def command_reference() -> str:
    """`atome commands`' Markdown, which book/commands.md includes. Run as a command: the
    command line is the layer above the book."""
    return subprocess.run([sys.executable, "-m", "atome_core.cli", "commands"], check=True,
                          capture_output=True, text=True).stdout


def _write_if_changed(path: Path, text: str) -> None:
    if path.exists() and path.read_text() == text:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def machine_description() -> str:
    import platform
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import torch
        torch_version = torch.__version__
    except ImportError:
        torch_version = "not installed"
    return (f"{os.cpu_count()} logical CPUs ({cpu}), {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}, torch {torch_version}")


def build_info_markdown(build: Path, profile: str, chapters: list[Chapter]) -> str:
    """The timing table of reproducing.md, from the executed notebooks' metadata."""
    walls = {}
    for ch in chapters:
        try:
            with open(executed_path(build, profile, ch)) as f:
                walls[ch.name] = json.load(f)["metadata"]["atome"]["wall_seconds"]
        except (OSError, ValueError, KeyError):
            walls[ch.name] = None
    return build_info_table(profile, walls)


def build_info_table(profile: str, walls: dict) -> str:
    """The timing table: {chapter: wall seconds of its last execution, or None}, in order."""
    rows = ["| chapter | profile | wall time of its last execution |", "|---|---|---|"]
    total = 0.0
    for name, wall in walls.items():
        total += wall or 0.0
        rows.append(f"| {name} | {profile} | {'%.1f s' % wall if wall is not None else 'n/a'} |")
    rows.append(f"| **all chapters** | {profile} | **{total:.1f} s** |")
    return ("\n".join(rows) + "\n\n" + f"Machine: {machine_description()}.\n")


def static_files(root: Path, build: Path, profile: str, chapters: list[Chapter]) -> list[tuple[Path, Path]]:
    """(file, where the site's source holds it): stylesheets under _static/, the files one page
    loads itself under _extra/_static/ (see assemble_source). Also used by the plain
    `jupyter-book build` route (atome_core.book.sphinx_ext)."""
    out = []
    book_static = root / "book" / "_static"
    for f in sorted(book_static.glob("**/*")):
        if f.is_file():
            rel = f.relative_to(book_static)
            out.append((f, (Path("_static") if f.suffix == ".css" else Path(EXTRA_DIR, "_static")) / rel))
    # Files a chapter writes under results/<profile>/<chapter>/_static/ (e.g. chapter 1's
    # exported models for the in-browser demo) are served from the book's _static/ too.
    for ch in chapters:
        chapter_static = build / "results" / profile / ch.name / "_static"
        for f in sorted(chapter_static.glob("**/*")):
            if f.is_file():
                out.append((f, Path(EXTRA_DIR, "_static") / f.relative_to(chapter_static)))
    # The engine page's files (book/engine_demo.md), when it is in the book: atome.wasm built
    # from c_engine/, and the blobs of this build.
    from . import engine_demo
    if engine_demo.PAGE in toc_files(root):
        for f in engine_demo.write_site(build / "engine_demo" / profile, engine_demo.book_models(profile)):
            out.append((f, Path(EXTRA_DIR, "_static", "engine") / f.name))
    mathjax = vendored_mathjax(root)
    if mathjax is None:
        raise BookError("MathJax is not vendored (.cache/vendor/node_modules/mathjax); "
                        "run `make vendor` (npm install mathjax@3) so math renders offline")
    for rel in mathjax_files(mathjax):
        out.append((mathjax / rel, Path(EXTRA_DIR, "_static", "mathjax") / rel))
    return out


def assemble_source(root: Path, build: Path, profile: str, chapters: list[Chapter]) -> Path:
    """The book as Sphinx sees it: config, prose pages and the *executed* notebooks.

    Jupyter Book adds every .js and .css file under a static path to *every* page, so
    only stylesheets go to src/_static/. Scripts and data that one page loads itself
    (book/_static/atto/atto.js, chapter 1's exported models, the vendored MathJax) go to
    src/_extra/_static/ (`html_extra_path`): copied into the site's _static/ unchanged and
    loaded only by the pages that ask for them (Sphinx adds MathJax to pages with math).
    """
    src = build / "src"
    wanted = set()

    def place(source: Path, dst: Path) -> None:
        _copy_if_changed(source, dst)
        wanted.add(dst)

    for name in BOOK_FILES:
        place(root / name, src / name)
    for entry in toc_files(root):
        p = resolve_toc_entry(root, entry)
        if p.suffix == ".md":
            place(p, src / p.relative_to(root))
    for ch in chapters:
        place(executed_path(build, profile, ch), src / ch.toc_entry_path())
    for source, rel in static_files(root, build, profile, chapters):
        place(source, src / rel)
    info = src / "book" / "_generated" / "build_info.md"
    _write_if_changed(info, build_info_markdown(build, profile, chapters))
    wanted.add(info)
    claims_table = src / "book" / "_generated" / "claims.md"
    _write_if_changed(claims_table, claims.claims_markdown(claims.load_metrics(build / "results" / profile), profile))
    wanted.add(claims_table)
    commands = src / "book" / "_generated" / "commands.md"
    _write_if_changed(commands, command_reference())
    wanted.add(commands)
    # Drop what is no longer part of the book (pages out of the toc, files of an older layout).
    for p in sorted(src.rglob("*"), reverse=True):
        if p.is_file() and p not in wanted:
            p.unlink()
        elif p.is_dir() and not any(p.iterdir()):
            p.rmdir()
    return src


def html_dir(build: Path) -> Path:
    # jupyter-book always writes to <path-output>/_build/html.
    return (build.parent if build.name == "_build" else build) / "_build" / "html"


def render(root: Path, build: Path, src: Path) -> None:
    jb = Path(sys.executable).parent / "jupyter-book"
    cmd = [str(jb) if jb.exists() else "jupyter-book", "build", str(src),
           "--path-output", str(html_dir(build).parent.parent), "-W", "-n", "--keep-going"]
    # RENDER_ONLY_ENV: the notebooks are executed already; sphinx_ext keeps execution off.
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env={**os.environ, RENDER_ONLY_ENV: "1"})
    log = build / "jupyter-book.log"
    log.write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-25:])
        raise BookError(f"jupyter-book build failed (exit {proc.returncode}); log at {log}\n{tail}")


def build_book(profile: str = "cpu", only: list[str] | None = None, render_html: bool = True,
               force: bool = False, log=print) -> dict:
    """Execute the chapters that changed, then render. Returns per-chapter status and times."""
    root = repo_root()
    build = build_dir()
    spec = profiles_mod.load_profiles()
    chapters = list_chapters(root)
    if only:
        names = {c.name for c in chapters}
        unknown = [o for o in only if o not in names]
        if unknown:
            raise BookError(f"unknown chapter(s) {unknown}; known: {sorted(names)}")
    fingerprint = source_fingerprint(root)
    report = {}
    for ch in execution_order(chapters, spec):
        if only and ch.name not in only:
            continue
        params = injected_parameters(ch.name, profile, spec)
        # Computed now, after the chapters it reads have run: their fresh results count.
        reads = read_inputs(build, profile, profiles_mod.chapter_reads(ch.name, spec))
        key = cache_key(ch, params, fingerprint, reads)
        if not force and cached_key(executed_path(build, profile, ch)) == key:
            log(f"[atome book] {ch.name}: cached ({profile})")
            report[ch.name] = {"status": "cached"}
            continue
        log(f"[atome book] {ch.name}: executing ({profile}) ...")
        wall = execute_chapter(ch, profile, params, key, build, spec)
        log(f"[atome book] {ch.name}: done in {wall:.1f} s")
        report[ch.name] = {"status": "executed", "wall_seconds": wall}
    if render_html:
        missing = [c.name for c in chapters if not executed_path(build, profile, c).exists()]
        if missing and only:
            log(f"[atome book] not rendering: never executed under {profile}: {', '.join(missing)}")
            return report
        if missing:
            raise BookError(f"cannot render: chapters never executed under {profile}: {missing} "
                            f"(run `atome book --profile {profile}` without --only)")
        t0 = time.perf_counter()
        src = assemble_source(root, build, profile, chapters)
        render(root, build, src)
        log(f"[atome book] rendered {html_dir(build) / 'index.html'} in {time.perf_counter() - t0:.1f} s")
    return report


def duration(seconds: float) -> str:
    """A time for people: seconds, minutes, hours or days, three significant figures at most."""
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds:.3g} s" if seconds else "0 s"


def describe(profile: str | None = None, log=print) -> None:
    """`atome book --list [--profile P]`: chapters and profiles; with a profile, each chapter's
    training work under it and its estimated time on this machine's device (CUDA when present),
    from throughputs measured here (atome_core.book.estimate)."""
    spec = profiles_mod.load_profiles()
    log("profiles:")
    for name in profiles_mod.PROFILE_NAMES:
        desc = (spec["profiles"].get(name) or {}).get("description", "")
        log(f"  {name:6s} {desc}")
    log("chapters (from _toc.yml):")
    for ch in list_chapters():
        params = profiles_mod.chapter_parameters(ch.name, profile or "cpu", spec)
        names = ", ".join(k for k in params if k != "profile") or "-"
        log(f"  {ch.name:24s} {ch.toc_entry}.ipynb  parameters: {names}")
    if profile is None:
        return
    from .estimate import estimate, throughput_cache
    est = estimate(profile, log=log)
    log(f"estimated training time under {profile} on {est['device']} (throughput measured on it; "
        f"cached in {throughput_cache(build_dir(), est['device_spec'])}):")
    log(f"  {'chapter':24s} {'runs':>6s} {'training tokens':>16s} {'time':>10s}")
    for name, row in est["chapters"].items():
        log(f"  {name:24s} {row['runs']:6d} {row['tokens']:16,d} {duration(row['seconds']):>10s}")
    log(f"  {'total':24s} {sum(r['runs'] for r in est['chapters'].values()):6d} "
        f"{sum(r['tokens'] for r in est['chapters'].values()):16,d} {duration(est['total_seconds']):>10s}")
    log("  (training steps only, one run after another on one device; evaluation, tokenizer training "
        "and the chapters' other work are not counted)")
