"""The plain `jupyter-book build .` route: Jupyter Book executes the chapters itself.

_config.yml turns MyST-NB's execution on (`cache` mode: jupyter-cache) and lists this
extension, which makes that build the same book `atome book` renders:

- The profile is $ATOME_PROFILE, else cpu (as the notebooks' open_chapter reads it); the
  kernels inherit it, and the quiet-output variables of chapter.QUIET_ENV.
- The jupyter-cache lives at <build>/.jupyter_cache/<profile>-<source fingerprint>: a
  notebook runs again when its code, the profile, or the atome_core source (and data
  manifests, runner.source_fingerprint) change, as with `atome book`. Both are Sphinx
  config values, so a change re-reads every page. Older caches of the profile are removed.
- The chapters are read, and so executed, in the runner's order (runner.execution_order:
  a chapter that reads others' results, `reads:` in profiles.yml, after them), and a reader
  is executed again when their published metrics.json changed since its cached run.
- The pages that include generated tables (book/intro.md: the claims table, and
  book/reproducing.md: the build table) are read after every chapter, and re-read
  whenever a chapter was; the tables (book/_generated/*.md) are written just before they
  are read, from the results this build published (<build>/results/<profile>/).
- The stylesheets, MathJax and the files pages load themselves are gathered into
  <build>/site/ (runner.static_files) and served from there.

When `atome book` renders its already executed notebooks (runner.render sets
ATOME_BOOK_RENDER) the extension only turns execution off: the runner did the rest.
"""
import hashlib
import json
import os
from pathlib import Path

from ..paths import build_dir
from . import claims, runner
from . import profiles as profiles_mod
from .chapter import QUIET_ENV

TABLE_PAGES = ("book/intro", "book/reproducing", "book/commands")   # they include book/_generated/*.md
READS_RECORD = "atome_reads.json"                   # in the cache: each reader's inputs


def book_profile() -> str:
    profile = os.environ.get("ATOME_PROFILE") or profiles_mod.DEFAULT_PROFILE
    if profile not in profiles_mod.PROFILE_NAMES:
        raise ValueError(f"ATOME_PROFILE={profile!r}; choose one of {', '.join(profiles_mod.PROFILE_NAMES)}")
    return profile


def on_config_inited(app, config) -> None:
    if os.environ.get(runner.RENDER_ONLY_ENV):
        config.nb_execution_mode = "off"
        return
    root, build, profile = Path(app.srcdir), build_dir(), book_profile()
    execution_order(root)   # refuses reads of chapters not in the book, and cycles, as atome book does
    config.atome_profile = profile
    # The kernels inherit this process's environment: the same one `atome book` gives them.
    for name, value in QUIET_ENV.items():
        os.environ.setdefault(name, value)
    os.environ["ATOME_PROFILE"] = profile
    os.environ["PYTHONWARNINGS"] = ",".join(filter(None, [os.environ.get("PYTHONWARNINGS"), *runner.KERNEL_WARNINGS]))
    os.environ.pop("MPLBACKEND", None)   # the kernel's inline backend puts figures into the page
    if not config.nb_execution_cache_path:
        caches = build / ".jupyter_cache"
        cache = caches / f"{profile}-{runner.source_fingerprint(root)[:16]}"
        for old in caches.glob(f"{profile}-*"):
            if old != cache and old.is_dir():
                import shutil
                shutil.rmtree(old, ignore_errors=True)
        config.nb_execution_cache_path = str(cache)
    site = build / "site"
    gather_static(root, build, profile, site)
    config.html_static_path = [str(site / "_static")]
    config.html_extra_path = [str(site / runner.EXTRA_DIR)]


def gather_static(root: Path, build: Path, profile: str, site: Path) -> None:
    for source, rel in runner.static_files(root, build, profile, runner.list_chapters(root)):
        runner._copy_if_changed(source, site / rel)


def _rendering_only(app) -> bool:
    return bool(os.environ.get(runner.RENDER_ONLY_ENV))


def on_env_get_outdated(app, env, added, changed, removed) -> list[str]:
    """Re-read the readers of a chapter that is read again, and the table pages."""
    if _rendering_only(app):
        return []
    root = Path(app.srcdir)
    chapters = {ch.toc_entry: ch.name for ch in runner.list_chapters(root)}
    touched = {chapters[d] for d in (set(added) | set(changed) | set(removed)) if d in chapters}
    if not touched:
        return [p for p in TABLE_PAGES if not (root / "book" / "_generated").is_dir()]
    spec = profiles_mod.load_profiles(root / "profiles.yml")
    more = [entry for entry, name in chapters.items() if set(profiles_mod.chapter_reads(name, spec)) & touched]
    return more + [p for p in TABLE_PAGES if p in env.found_docs]


def execution_order(root: Path) -> list[runner.Chapter]:
    return runner.execution_order(runner.list_chapters(root), profiles_mod.load_profiles(root / "profiles.yml"))


def on_env_before_read_docs(app, env, docnames: list) -> None:
    """Read (and so execute) the chapters in the runner's order, each after the chapters it
    reads; prose pages first, the table pages last."""
    if _rendering_only(app):
        return
    rank = {ch.toc_entry: i for i, ch in enumerate(execution_order(Path(app.srcdir)))}
    docnames.sort(key=lambda d: (d in TABLE_PAGES, rank.get(d, -1), d))


def on_source_read(app, docname: str, source: list) -> None:
    if _rendering_only(app):
        return
    root, build, profile = Path(app.srcdir), build_dir(), app.config.atome_profile
    if docname in TABLE_PAGES:
        write_tables(root, build, profile, app.env)
        return
    chapter = next((ch for ch in runner.list_chapters(root) if ch.toc_entry == docname), None)
    reads = profiles_mod.chapter_reads(chapter.name, profiles_mod.load_profiles(root / "profiles.yml")) if chapter else []
    if reads:
        forget_if_inputs_changed(chapter, runner.read_inputs(build, profile, reads),
                                 Path(app.env.mystnb_config.execution_cache_path))


def forget_if_inputs_changed(chapter: runner.Chapter, inputs: dict, cache_path: Path) -> None:
    """Drop `chapter`'s cached outputs when the results it reads differ from those its cached
    run read: MyST-NB then executes it again."""
    import nbformat
    from jupyter_cache import get_cache
    digest = hashlib.sha256(json.dumps({k: v and v.decode() for k, v in sorted(inputs.items())}).encode()).hexdigest()
    record_file = cache_path / READS_RECORD
    try:
        record = json.loads(record_file.read_text())
    except (OSError, ValueError):
        record = {}
    if record.get(chapter.name) == digest:
        return
    cache = get_cache(str(cache_path))
    try:
        cache.remove_cache(cache.match_cache_notebook(nbformat.read(chapter.path, as_version=4)).pk)
    except KeyError:   # nothing cached for this notebook's code
        pass
    record[chapter.name] = digest
    cache_path.mkdir(parents=True, exist_ok=True)
    record_file.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")


def write_tables(root: Path, build: Path, profile: str, env) -> None:
    """book/_generated/claims.md and build_info.md from what this build published."""
    from myst_nb.sphinx_ import NbMetadataCollector
    walls = {}
    for ch in runner.list_chapters(root):
        data = NbMetadataCollector.get_doc_data(env).get(ch.toc_entry, {}).get("exec_data") or {}
        walls[ch.name] = data.get("runtime")
    generated = root / "book" / "_generated"
    runner._write_if_changed(generated / "build_info.md", runner.build_info_table(profile, walls))
    runner._write_if_changed(generated / "claims.md",
                             claims.claims_markdown(claims.load_metrics(build / "results" / profile), profile))
    runner._write_if_changed(generated / "commands.md", runner.command_reference())


def on_env_updated(app, env) -> None:
    """Chapters may have published files their pages load (results/<profile>/<chapter>/_static)."""
    if not _rendering_only(app):
        gather_static(Path(app.srcdir), build_dir(), app.config.atome_profile, build_dir() / "site")


def setup(app):
    app.add_config_value("atome_profile", profiles_mod.DEFAULT_PROFILE, "env")
    app.connect("config-inited", on_config_inited)
    app.connect("env-get-outdated", on_env_get_outdated)
    app.connect("env-before-read-docs", on_env_before_read_docs)
    app.connect("source-read", on_source_read)
    app.connect("env-updated", on_env_updated)
    return {"parallel_read_safe": False, "parallel_write_safe": True}
