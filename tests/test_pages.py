"""The rendered smoke book, read as a reader would: every page of the session's one smoke
build (tests/conftest.py) is checked for what must never reach a page.

- no absolute path (the build machine's folders, the checkout, an installed package's
  files), no `PosixPath(`, no traceback, no progress bar;
- no raw `**` in the text outside code (Markdown that did not render);
- no page whose scripts weigh more than 3 MB: the local .js files it references, each
  counted once; MathJax is counted by its entry point, the components it pulls on
  demand are not;
- the atto models load only on the demo page; MathJax is the one tex-chtml bundle, only
  on pages with math; every page has the book's stylesheet;
- code cells tagged hide-input are folded;
- the prose pages speak the book's words, and the intro's claims table has every number
  (a chapter that ran wrote every claim the table declares).

The checks are plain functions of an HTML string, tested on small bad pages first, so a
check that could never fail is caught.
"""
import html as html_lib
import json
import re
from pathlib import Path

import pytest

from atome_core.book import claims
from atome_core.chapters import answer

ROOT = Path(__file__).resolve().parents[1]
MAX_SCRIPT_BYTES = 3_000_000
MATHJAX_ENTRY = "_static/mathjax/tex-chtml.js"
PROSE_PAGES = ("book/intro.html", "book/reproducing.html", "book/atto_demo.html")

ABSOLUTE_PATH = re.compile(
    "|".join([r"/work/", r"/root/", r"/home/", r"/tmp/", re.escape(str(ROOT)),
              r"/\.venv\b", r"\.venv/lib", r"site-packages"]))
BROKEN_OUTPUT = re.compile(
    r"PosixPath\(|WindowsPath\(|Traceback|it/s\]|s/it\]|\d%\|")
TRACKER_WORDS = re.compile(r"\bissues?\b|\bgoals?\b|\bagainst the goals\b|\breached\b", re.I)


# ------------------------------------------------------------------ the checks

def _drop(html: str, *tags: str) -> str:
    for tag in tags:
        html = re.sub(rf"<{tag}\b[^>]*>.*?</{tag}\s*>", " ", html, flags=re.S | re.I)
    return html


def _text(html: str) -> str:
    return html_lib.unescape(re.sub(r"<[^>]+>", " ", html))


def page_text(html: str) -> str:
    """The text a reader sees, code and outputs included (no scripts or styles)."""
    return _text(_drop(html, "script", "style", "head"))


def prose_text(html: str) -> str:
    """The text outside code: no code blocks, outputs shown as code, or inline code."""
    html = _drop(html, "script", "style", "head", "pre", "code")
    html = re.sub(r'<span class="pre">.*?</span>', " ", html, flags=re.S)
    return _text(html)


def local_scripts(html: str) -> list[str]:
    """The src of every <script> that is a file of the site (no query string)."""
    out = []
    for m in re.finditer(r"<script\b[^>]*\bsrc\s*=\s*[\"']([^\"']+)[\"']", html, re.I):
        src = m.group(1)
        if re.match(r"^(?:[a-z]+:)?//", src, re.I) or src.startswith("data:"):
            continue
        out.append(src.split("?", 1)[0].split("#", 1)[0])
    return out


def script_bytes(html: str, page: Path, site: Path) -> tuple[int, list[str]]:
    """(the sum of the sizes of the page's local scripts, the scripts that are missing)."""
    total, missing = 0, []
    for src in dict.fromkeys(local_scripts(html)):
        f = (page.parent / src).resolve()
        if not f.is_file() or not f.is_relative_to(site.resolve()):
            missing.append(src)
            continue
        total += f.stat().st_size
    return total, missing


def page_problems(html: str, page: Path | None = None, site: Path | None = None) -> list[str]:
    """Everything a reader should never see on this page, in words (empty when clean)."""
    problems = []
    for m in ABSOLUTE_PATH.finditer(html):
        problems.append(f"absolute path: ...{html[max(0, m.start() - 60):m.end() + 40]!r}...")
    text = page_text(html)
    for m in BROKEN_OUTPUT.finditer(text):
        problems.append(f"broken output: ...{text[max(0, m.start() - 60):m.end() + 40]!r}...")
    prose = prose_text(html)
    for m in re.finditer(r"\*\*", prose):
        problems.append(f"raw ** in the text: ...{prose[max(0, m.start() - 60):m.end() + 40]!r}...")
    if page is not None and site is not None:
        total, missing = script_bytes(html, page, site)
        if total > MAX_SCRIPT_BYTES:
            problems.append(f"scripts weigh {total:,} B (more than {MAX_SCRIPT_BYTES:,})")
        problems += [f"script not in the site: {src}" for src in missing]
    return problems[:20]


def verdict_table(html: str) -> tuple[list[str], list[list[str]]]:
    """(header, body rows) of the page's table with a `verdict` column, each cell the text
    a reader sees, whitespace collapsed and Sphinx's typographic quotes straight again;
    ([], []) when the page has none."""
    straight = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"'})

    def cells(part: str, tag: str) -> list[str]:
        return [" ".join(_text(c).translate(straight).split())
                for c in re.findall(rf"<{tag}\b[^>]*>(.*?)</{tag}\s*>", part, re.S | re.I)]
    for tab in re.findall(r"<table\b.*?</table\s*>", html, re.S | re.I):
        header = cells(tab, "th")
        if "verdict" in header:
            return header, [cells(tr, "td") for tr in re.findall(r"<tr\b.*?</tr\s*>", tab, re.S | re.I)
                            if "<td" in tr.lower()]
    return [], []


# ------------------------------------------------------------ the checks can fail

BAD_PAGE = """<html><head><script src="_static/big.js"></script><script src="https://cdn/x.js"></script>
<style>b::after { content: "**" }</style></head><body>
<p>Saved to /work/main/_build/results/smoke/00_corpora/metrics.json</p>
<p>This is **not bold** because the Markdown was built by hand.</p>
<div class="output"><pre>PosixPath('results')
Traceback (most recent call last):
train:  45%|████▌     | 45/100 [00:01&lt;00:02, 30.12it/s]</pre></div>
<pre>x = 2 ** 10   # a power in code is fine</pre>
<p>see <code>a**b</code> and <img src="/home/me/fig.png"></p>
<script src="_static/missing.js"></script></body></html>"""


def test_the_checks_find_every_kind_of_problem_on_a_bad_page(tmp_path):
    (tmp_path / "_static").mkdir()
    (tmp_path / "_static" / "big.js").write_bytes(b" " * (MAX_SCRIPT_BYTES + 1))
    page = tmp_path / "page.html"
    problems = "\n".join(page_problems(BAD_PAGE, page, tmp_path))
    assert "/work/main/_build" in problems and "/home/me" in problems
    assert "PosixPath(" in problems and "Traceback" in problems and "it/s]" in problems
    assert problems.count("raw **") == 2 and "not bold" in problems   # both markers, none from code or style
    assert "scripts weigh" in problems and "script not in the site: _static/missing.js" in problems
    assert local_scripts(BAD_PAGE) == ["_static/big.js", "_static/missing.js"]


def test_a_clean_page_has_no_problems(tmp_path):
    (tmp_path / "_static").mkdir()
    (tmp_path / "_static" / "small.js").write_text("var a = 2 ** 3;")
    good = ('<html><head><script src="_static/small.js?v=1"></script></head><body><p>A <strong>bold</strong> '
            "claim: 1.585 bits per trit, 42 % of the time.</p><pre>2 ** 10</pre>"
            '<code class="docutils literal notranslate"><span class="pre">**kwargs</span></code></body></html>')
    assert page_problems(good, tmp_path / "page.html", tmp_path) == []


def test_the_verdict_table_is_read_as_a_reader_sees_it_and_only_when_it_has_the_column():
    page = ("<table><thead><tr><th>claim</th><th>why</th></tr></thead><tbody><tr><td>a</td><td>b</td></tr>"
            "</tbody></table><table><thead><tr><th>claim</th><th>verdict</th></tr></thead><tbody>"
            "<tr><td><p>the kit\u2019s loss &lt; 1.91</p></td><td>holds\n</td></tr><tr><td>x</td><td>refuted</td></tr>"
            "</tbody></table>")
    assert verdict_table(page) == (["claim", "verdict"], [["the kit's loss < 1.91", "holds"], ["x", "refuted"]])
    assert verdict_table(page.split("</table>")[0] + "</table>") == ([], [])


def test_tracker_words_are_found_but_not_their_neighbours():
    assert TRACKER_WORDS.search("Against the goals we set") and TRACKER_WORDS.search("an issue")
    assert TRACKER_WORDS.search("the target was reached")
    assert not TRACKER_WORDS.search("atto-8192 reaches validation loss 1.91; tissues; goalkeeper")


# ------------------------------------------------------------- the smoke build

def site_pages(html_root: Path) -> list[Path]:
    skip = {"_static", "_sources", "_images", "_extra"}
    return sorted(p for p in html_root.rglob("*.html") if not skip & set(p.relative_to(html_root).parts))


@pytest.fixture(scope="module")
def site(smoke_book) -> Path:
    html_root = smoke_book.html
    assert (html_root / "book" / "intro.html").exists(), "the smoke build rendered no intro"
    return html_root


def test_no_page_shows_paths_tracebacks_progress_bars_raw_markdown_or_heavy_scripts(site):
    report = {}
    for page in site_pages(site):
        problems = page_problems(page.read_text(encoding="utf-8"), page, site)
        if problems:
            report[str(page.relative_to(site))] = problems
    assert not report, json.dumps(report, indent=1, ensure_ascii=False)


def test_every_chapter_and_prose_page_was_rendered(site):
    from atome_core.book.runner import list_chapters, toc_files
    pages = {str(p.relative_to(site)) for p in site_pages(site)}
    wanted = {f"{Path(entry).with_suffix('')}.html" for entry in toc_files(ROOT)}
    assert wanted <= pages, sorted(wanted - pages)
    assert len(list_chapters(ROOT)) >= 9


def test_the_atto_models_load_on_the_demo_page_only(site):
    for page in site_pages(site):
        html = page.read_text(encoding="utf-8")
        refs = re.findall(r"""(?:src|href)\s*=\s*["']([^"']*_static/atto/[^"']*)""", html)
        if page.relative_to(site).as_posix() == "book/atto_demo.html":
            assert [r.split("?")[0] for r in refs] == ["../_static/atto/atto.js"]
        else:
            assert refs == [], f"{page.name} loads {refs}"
    atto = site / "_static" / "atto"
    manifest = json.loads((atto / "models.json").read_text())
    assert all((atto / m["file"]).is_file() and (atto / (m["file"] + ".js")).is_file()
               for m in manifest["models"])


def test_mathjax_is_the_one_bundle_and_only_on_pages_with_math(site):
    with_math = 0
    for page in site_pages(site):
        scripts = [(page.parent / s).resolve() for s in local_scripts(page.read_text(encoding="utf-8"))]
        mathjax = [s for s in scripts if "mathjax" in s.parts]
        assert mathjax in ([], [(site / MATHJAX_ENTRY).resolve()]), f"{page.name}: {mathjax}"
        with_math += bool(mathjax)
    assert with_math >= 2  # the intro and chapter 0 write math
    for name in ("book/reproducing.html", "book/atto_demo.html"):
        assert "mathjax" not in " ".join(local_scripts((site / name).read_text(encoding="utf-8")))


def test_every_page_has_the_books_stylesheet_and_it_makes_tables_scroll(site):
    css = (site / "_static" / "atome.css").read_text()
    assert ".pst-scrollable-table-container" in css and "overflow-x: auto" in css
    for page in site_pages(site):
        html = page.read_text(encoding="utf-8")
        if "http-equiv=\"Refresh\"" not in html:   # index.html only redirects to the intro
            assert "_static/atome.css" in html, page.name


def test_code_cells_tagged_hide_input_are_folded(smoke_book, site):
    import nbformat
    folded_somewhere = False
    for nb_path in sorted((smoke_book.build / "executed" / "smoke" / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(nb_path, as_version=4)
        tagged = sum(1 for c in nb.cells if c.cell_type == "code" and "hide-input" in c.metadata.get("tags", [])
                     and not {"remove-cell", "remove-input"} & set(c.metadata.get("tags", [])))
        html = (site / "notebooks" / f"{nb_path.stem}.html").read_text(encoding="utf-8")
        folded = len(re.findall(r'<details class="[^"]*\bhide above-input\b', html))
        assert folded == tagged, f"{nb_path.stem}: {tagged} cells tagged hide-input, {folded} folded"
        folded_somewhere |= folded > 0
    assert folded_somewhere


@pytest.mark.parametrize("name", PROSE_PAGES)
def test_prose_pages_speak_the_books_words(site, name):
    prose = prose_text((site / name).read_text(encoding="utf-8"))
    assert not TRACKER_WORDS.findall(prose), TRACKER_WORDS.findall(prose)


def test_the_claims_table_has_every_number(smoke_book, site):
    metrics = claims.load_metrics(smoke_book.results)
    assert len(metrics) >= 9, sorted(metrics)
    assert claims.missing_claims(metrics) == []
    intro = page_text((site / "book" / "intro.html").read_text(encoding="utf-8"))
    assert "MISSING" not in intro


def test_every_claim_row_has_the_verdict_its_rule_computes_from_this_builds_metrics(smoke_book, site):
    """The intro's verdict column is recomputed here from the build's metrics.json files by
    the claim's rule: a typed or stale verdict fails. Chapter 10 stored the same verdicts."""
    metrics = claims.load_metrics(smoke_book.results)
    header, rows = verdict_table((site / "book" / "intro.html").read_text(encoding="utf-8"))
    assert len(rows) == len(claims.CLAIMS), header
    verdict, why = header.index("verdict"), header.index("why")
    stored = metrics["10_how_small"]["verdicts"]
    assert len(stored) == len(claims.CLAIMS)
    for claim, row, ch10 in zip(claims.CLAIMS, rows, stored):
        expected = answer.verdict(*claims.claim_values(claim, metrics), "smoke")
        assert row[verdict] in (answer.HOLDS, answer.REFUTED, answer.NOT_COMPARABLE), row
        assert (row[verdict], row[why]) == (expected.verdict, " ".join(expected.reason.split())), claim.claim
        assert (ch10["verdict"], ch10["why"]) == (expected.verdict, expected.reason), claim.claim
    header10, rows10 = verdict_table((site / "notebooks" / "10_how_small.html").read_text(encoding="utf-8"))
    assert header10 == header[:len(header10)] and rows10 == [row[:len(header10)] for row in rows]
