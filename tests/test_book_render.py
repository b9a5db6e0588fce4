"""End to end: `atome book --profile smoke` renders the book (the session's one smoke
build, tests/conftest.py), and a headless Chromium with no network shows the intro, the
corpus chapter's figures and rendered math."""
import shutil
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
NO_NETWORK_ARGS = [
    "--no-sandbox", "--disable-gpu", "--headless=new", "--host-resolver-rules=MAP * ~NOTFOUND",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-quic", "--no-first-run", "--disable-default-apps", "--disable-extensions",
]


def test_build_writes_executed_notebooks_results_and_html(smoke_book):
    build, html = smoke_book.build, smoke_book.html
    assert (html / "index.html").exists() and (html / "notebooks" / "00_corpora.html").exists()
    assert (build / "executed" / "smoke" / "notebooks" / "00_corpora.ipynb").exists()
    results = build / "results" / "smoke" / "00_corpora"
    assert (results / "metrics.json").exists() and (results / "byte_histograms.png").exists()
    assert (html / "_static" / "mathjax" / "tex-chtml.js").exists()
    page = (html / "notebooks" / "00_corpora.html").read_text()
    assert "cdn.jsdelivr.net" not in page and "mathjax/tex-chtml.js" in page


def test_rebuild_with_nothing_changed_executes_nothing(smoke_book):
    proc = smoke_book.run_again()
    assert proc.returncode == 0, proc.stderr
    assert "executing" not in proc.stdout and "cached" in proc.stdout


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium not installed (make sysdeps)")
def test_pages_render_offline_in_chromium(smoke_book):
    playwright = pytest.importorskip("playwright.sync_api")
    build, html = smoke_book.build, smoke_book.html
    remote_requests = []
    with playwright.sync_playwright() as p:
        # scrollbars drawn as a reader's browser draws them (headless hides them by default)
        browser = p.chromium.launch(executable_path=CHROMIUM, args=NO_NETWORK_ARGS,
                                    ignore_default_args=["--hide-scrollbars"])
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
        # a table wider than the text column scrolls sideways, with its scrollbar shown
        tables = page.eval_on_selector_all(
            "main .pst-scrollable-table-container",
            "cs => cs.map(c => [c.scrollWidth > c.clientWidth, getComputedStyle(c).overflowX,"
            " c.offsetHeight - c.clientHeight])")
        wide = [t for t in tables if t[0]]
        assert wide and all(overflow == "auto" and scrollbar > 0 for _, overflow, scrollbar in wide), tables
        page.locator("mjx-container").nth(1).scroll_into_view_if_needed()
        page.screenshot(path=str(build / "corpora_screenshot.png"))
        browser.close()
    assert remote_requests == []
