"""Plain `jupyter-book build . -W -n --keep-going` (Jupyter Book executes the notebooks, see
atome_core/book/sphinx_ext.py), on a copy of the book cut to two small chapters under the
smoke profile. The copy carries a snapshot of atome_core (first on PYTHONPATH, for the
build and its kernels), so the source fingerprint holds still while the tests run."""
import json
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

from atome_core.book import claims

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = ["00_corpora", "10_how_small"]
JB = Path(sys.executable).parent / "jupyter-book"


def book_copy(dest: Path, chapters: list[str], notebooks: dict | None = None) -> Path:
    """The book's config, prose and `chapters` under dest/book, atome_core (with the data
    manifests and C engine it finds beside itself) under dest/pkg."""
    book = dest / "book"
    book.mkdir(parents=True)
    shutil.copy(ROOT / "_config.yml", book / "_config.yml")
    spec = yaml.safe_load((ROOT / "profiles.yml").read_text())
    for block in spec["chapters"].values():   # a chapter reads only the chapters of the copy
        if "reads" in block:
            block["reads"] = [r for r in block["reads"] if r in chapters]
    (book / "profiles.yml").write_text(yaml.safe_dump(spec))
    for folder in ("book", "data"):
        shutil.copytree(ROOT / folder, book / folder, ignore=shutil.ignore_patterns("_generated"))
    (book / "notebooks").mkdir()
    for name in chapters:
        shutil.copy(ROOT / "notebooks" / f"{name}.ipynb", book / "notebooks")
    for name, nb in (notebooks or {}).items():
        (book / "notebooks" / f"{name}.ipynb").write_text(json.dumps(nb))
    (book / ".cache").symlink_to(ROOT / ".cache")   # the vendored MathJax
    entries = "".join(f"      - file: notebooks/{name}\n" for name in [*chapters, *(notebooks or {})])
    (book / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nparts:\n  - caption: The book\n"
                                   "    chapters:\n      - file: book/reproducing\n" + entries)
    for folder in ("atome_core", "c_engine", "data"):   # the package reads ../data, builds ../c_engine
        shutil.copytree(ROOT / folder, dest / "pkg" / folder, ignore=shutil.ignore_patterns("__pycache__"))
    return book


def book_env(book: Path, build: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("ATOME_RESULTS_DIR", "ATOME_BUILD_DIR")}
    env.update(ATOME_ROOT=str(book), ATOME_PROFILE="smoke", PYTHONPATH=str(book.parent / "pkg"))
    if build != book / "_build":
        env["ATOME_BUILD_DIR"] = str(build)
    return env


def jupyter_book_build(book: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(JB), "build", ".", "-W", "-n", "--keep-going"], cwd=book, check=False,
                          env=book_env(book, book / "_build"), capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    book = book_copy(tmp_path_factory.mktemp("jb"), CHAPTERS)
    proc = jupyter_book_build(book)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return book, proc


class _Text(HTMLParser):
    """The text of a page's article, less the cell papermill injects (`atome book` only)."""

    def __init__(self):
        super().__init__()
        self.depth, self.skip_at, self.parts = 0, None, []

    def handle_starttag(self, tag, attrs):
        if tag in ("br", "img", "meta", "link", "input", "hr"):
            return
        self.depth += 1
        if self.skip_at is None and "tag_injected-parameters" in (dict(attrs).get("class") or ""):
            self.skip_at = self.depth

    def handle_endtag(self, tag):
        if tag in ("br", "img", "meta", "link", "input", "hr"):
            return
        if self.skip_at == self.depth:
            self.skip_at = None
        self.depth -= 1

    def handle_data(self, data):
        if self.skip_at is None:
            self.parts.append(data)


def page_text(path: Path) -> str:
    html = path.read_text()
    article = html[html.index('<article class="bd-article"'):html.index("</article>")]
    parser = _Text()
    parser.feed(article)
    return re.sub(r"\s+", " ", " ".join(parser.parts)).strip()


def test_a_plain_jupyter_book_build_executes_the_chapters_and_fills_the_tables(built):
    book, proc = built
    for name in CHAPTERS:
        assert f"{name}.ipynb: Executed notebook" in proc.stdout
        assert (book / "_build" / "results" / "smoke" / name / "metrics.json").is_file()
    page = (book / "_build" / "html" / "notebooks" / "00_corpora.html").read_text()
    assert "cell_output" in page and "<img" in page        # the outputs are on the page
    info = (book / "book" / "_generated" / "build_info.md").read_text()
    assert re.search(r"\| 00_corpora \| smoke \| \d+\.\d s \|", info)
    generated = (book / "book" / "_generated" / "claims.md").read_text()
    results = book / "_build" / "results" / "smoke"
    assert generated == claims.claims_markdown(claims.load_metrics(results), "smoke")   # not stale
    intro = page_text(book / "_build" / "html" / "book" / "intro.html")
    first_row = generated.splitlines()[2].split("|")[1:-1]
    assert " ".join(c.strip() for c in first_row).replace("`", "") in intro


def test_a_second_plain_build_executes_nothing(built):
    book, _ = built
    metrics = book / "_build" / "results" / "smoke" / "00_corpora" / "metrics.json"
    before = metrics.stat().st_mtime_ns
    proc = jupyter_book_build(book)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Executing notebook" not in proc.stdout
    assert metrics.stat().st_mtime_ns == before


def test_atome_book_renders_the_same_chapter_page_without_executing_again(built):
    book, _ = built
    build = book.parent / "atome_build"
    proc = subprocess.run([sys.executable, "-m", "atome_core.cli", "book", "--profile", "smoke"], cwd=book, check=False,
                          env=book_env(book, build), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Executing notebook" not in (build / "jupyter-book.log").read_text()
    papermill_page = build / "_build" / "html" / "notebooks" / "00_corpora.html"
    assert page_text(papermill_page) == page_text(book / "_build" / "html" / "notebooks" / "00_corpora.html")


def failing_notebook() -> dict:
    nb = json.loads((ROOT / "notebooks" / "00_corpora.ipynb").read_text())
    first_code = next(i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code")
    nb["cells"].insert(first_code + 1, {"cell_type": "code", "execution_count": None, "metadata": {},
                                        "outputs": [], "source": "raise RuntimeError('a deliberate failure')"})
    return nb


def test_a_failing_cell_fails_the_plain_build_naming_the_notebook(tmp_path):
    book = book_copy(tmp_path, [], {"99_fails": failing_notebook()})
    proc = jupyter_book_build(book)
    assert proc.returncode != 0
    assert "notebooks/99_fails.ipynb" in proc.stdout + proc.stderr
    assert "a deliberate failure" in proc.stdout + proc.stderr


def test_a_reader_s_cached_run_is_forgotten_only_when_what_it_reads_changed(tmp_path):
    import nbformat
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    from atome_core.book.runner import Chapter
    from atome_core.book.sphinx_ext import forget_if_inputs_changed

    path = tmp_path / "10_how_small.ipynb"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(1)")])
    nbformat.write(nb, path)
    cache_path = tmp_path / "cache"
    cache = get_cache(str(cache_path))

    def cached() -> bool:
        try:
            cache.match_cache_notebook(nbformat.read(path, as_version=4))
            return True
        except KeyError:
            return False

    def run_it():
        cache.cache_notebook_bundle(CacheBundleIn(nbformat.read(path, as_version=4), str(path)),
                                    check_validity=False, overwrite=True)

    chapter = Chapter("10_how_small", path, "notebooks/10_how_small")
    run_it()
    forget_if_inputs_changed(chapter, {"04_ab_60k": b'{"a": 1}'}, cache_path)   # never recorded: run again
    assert not cached()
    run_it()
    forget_if_inputs_changed(chapter, {"04_ab_60k": b'{"a": 1}'}, cache_path)
    assert cached()
    forget_if_inputs_changed(chapter, {"04_ab_60k": b'{"a": 2}'}, cache_path)
    assert not cached()
