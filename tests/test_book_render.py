"""End to end: `atome book --profile smoke` renders the book, and a headless Chromium
with no network shows the intro, the corpus chapter's figures and rendered math."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
NO_NETWORK_ARGS = [
    "--no-sandbox", "--disable-gpu", "--headless=new", "--host-resolver-rules=MAP * ~NOTFOUND",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-quic", "--no-first-run", "--disable-default-apps", "--disable-extensions",
]


MINI_TOC = """format: jb-book
root: book/intro
parts:
  - caption: The book
    chapters:
      - file: book/reproducing
      - file: notebooks/00_corpora
"""


@pytest.fixture(scope="module")
def smoke_book(tmp_path_factory):
    """The real pipeline on a copy of the book cut down to the intro, reproducing and the
    corpus chapter (every chapter is executed by nbmake in the same `make test`, and the
    whole book is rendered by `make book`)."""
    root = tmp_path_factory.mktemp("book")
    for name in ("_config.yml", "profiles.yml"):
        shutil.copy(ROOT / name, root / name)
    shutil.copytree(ROOT / "book", root / "book")
    (root / "notebooks").mkdir()
    shutil.copy(ROOT / "notebooks" / "00_corpora.ipynb", root / "notebooks")
    (root / "_toc.yml").write_text(MINI_TOC)
    (root / ".cache").symlink_to(ROOT / ".cache")      # the vendored MathJax
    build = root / "_build"
    env = {**os.environ, "ATOME_ROOT": str(root), "ATOME_BUILD_DIR": str(build), "CI": "1"}
    proc = subprocess.run([sys.executable, "-m", "atome_core.cli", "book", "--profile", "smoke"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return build, env


def test_build_writes_executed_notebooks_results_and_html(smoke_book):
    build, proc = smoke_book
    html = build / "html"
    assert (html / "index.html").exists() and (html / "notebooks" / "00_corpora.html").exists()
    assert (build / "executed" / "smoke" / "notebooks" / "00_corpora.ipynb").exists()
    results = build / "results" / "smoke" / "00_corpora"
    assert (results / "metrics.json").exists() and (results / "byte_histograms.png").exists()
    assert (html / "_static" / "mathjax" / "tex-chtml.js").exists()
    page = (html / "notebooks" / "00_corpora.html").read_text()
    assert "cdn.jsdelivr.net" not in page and "mathjax/tex-chtml.js" in page


def test_rebuild_with_nothing_changed_executes_nothing(smoke_book):
    build, env = smoke_book
    proc = subprocess.run([sys.executable, "-m", "atome_core.cli", "book", "--profile", "smoke"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "executing" not in proc.stdout and "cached" in proc.stdout


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium not installed (make sysdeps)")
def test_pages_render_offline_in_chromium(smoke_book):
    playwright = pytest.importorskip("playwright.sync_api")
    build, _ = smoke_book
    html = build / "html"
    remote_requests = []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=NO_NETWORK_ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.on("request", lambda r: r.url.startswith(("http:", "https:")) and remote_requests.append(r.url))

        page.goto((html / "index.html").as_uri())
        assert "how small can a language model be" in page.inner_text("main").lower()
        page.wait_for_selector("mjx-container", timeout=20000)   # $\log_2 3$ in the intro

        page.goto((html / "notebooks" / "00_corpora.html").as_uri())
        page.wait_for_selector("mjx-container", timeout=20000)
        assert page.locator("mjx-container").count() >= 3
        # MathJax replaced the TeX source: no raw "\sum" left in the visible text.
        assert "\\sum" not in page.inner_text("main")
        widths = page.eval_on_selector_all("main img", "imgs => imgs.map(i => i.naturalWidth)")
        assert len(widths) >= 2 and all(w > 100 for w in widths)
        page.locator("mjx-container").nth(1).scroll_into_view_if_needed()
        page.screenshot(path=str(build / "corpora_screenshot.png"))
        browser.close()
    assert remote_requests == []
