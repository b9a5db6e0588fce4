"""The batch runner on a throw-away book: caching, selective re-execution, failures."""
import json
import os
import textwrap

import nbformat
import pytest

from atome_core.book import runner as book


def make_notebook(path, body, extra_params=""):
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell(f"chapter = {path.stem!r}\nprofile = None\nn = None\n{extra_params}")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [
        params,
        nbformat.v4.new_code_cell(textwrap.dedent("""
            from atome_core.book.chapter import open_chapter
            P, results = open_chapter(globals())
        """)),
        nbformat.v4.new_code_cell(textwrap.dedent(body)),
    ]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


@pytest.fixture
def tiny_book(tmp_path, monkeypatch):
    root = tmp_path / "book"
    (root / "notebooks").mkdir(parents=True)
    (root / "_toc.yml").write_text("format: jb-book\nroot: intro\nchapters:\n"
                                   "  - file: notebooks/a\n  - file: notebooks/b\n")
    (root / "intro.md").write_text("# intro\n")
    (root / "profiles.yml").write_text(textwrap.dedent("""
        profiles: {smoke: {}, cpu: {}, paper: {}}
        chapters:
          a: {defaults: {n: 1}, smoke: {n: 2}}
          b: {defaults: {n: 10}}
    """))
    make_notebook(root / "notebooks" / "a.ipynb", "results.save_metrics({'n_squared': P.n ** 2})")
    make_notebook(root / "notebooks" / "b.ipynb", "results.save_metrics({'n': P.n})")
    monkeypatch.setenv("ATOME_ROOT", str(root))
    monkeypatch.setenv("ATOME_BUILD_DIR", str(tmp_path / "_build"))
    return root, tmp_path / "_build"


def statuses(report):
    return {k: v["status"] for k, v in report.items()}


def test_executes_caches_and_reexecutes_only_what_changed(tiny_book):
    root, build = tiny_book
    first = book.build_book("smoke", render_html=False, log=lambda *a: None)
    assert statuses(first) == {"a": "executed", "b": "executed"}
    metrics = json.loads((build / "results" / "smoke" / "a" / "metrics.json").read_text())
    assert metrics["n_squared"] == 4 and metrics["profile"] == "smoke"   # smoke's n=2 injected
    executed = nbformat.read(build / "executed" / "smoke" / "notebooks" / "a.ipynb", as_version=4)
    assert "injected-parameters" in executed.cells[1].metadata.get("tags", [])
    assert "hide-input" in executed.cells[1].metadata["tags"]      # folded on the page
    assert executed.metadata["atome"]["parameters"] == {"profile": "smoke", "n": 2, "chapter": "a",
                                                        "injected": ["n"]}

    again = book.build_book("smoke", render_html=False, log=lambda *a: None)
    assert statuses(again) == {"a": "cached", "b": "cached"}

    make_notebook(root / "notebooks" / "b.ipynb", "results.save_metrics({'n': P.n + 1})")
    third = book.build_book("smoke", render_html=False, log=lambda *a: None)
    assert statuses(third) == {"a": "cached", "b": "executed"}

    # Another profile is its own cache entry with its own parameters.
    cpu = book.build_book("cpu", only=["a"], render_html=False, log=lambda *a: None)
    assert statuses(cpu) == {"a": "executed"}
    assert json.loads((build / "results" / "cpu" / "a" / "metrics.json").read_text())["n_squared"] == 1


def test_changed_parameters_invalidate_the_cache(tiny_book):
    root, build = tiny_book
    book.build_book("smoke", render_html=False, log=lambda *a: None)
    (root / "profiles.yml").write_text((root / "profiles.yml").read_text().replace("n: 2", "n: 3"))
    report = book.build_book("smoke", render_html=False, log=lambda *a: None)
    assert statuses(report) == {"a": "executed", "b": "cached"}


def test_failing_notebook_names_cell_and_publishes_nothing(tiny_book):
    root, build = tiny_book
    book.build_book("smoke", render_html=False, log=lambda *a: None)
    good = (build / "results" / "smoke" / "b" / "metrics.json").read_text()
    make_notebook(root / "notebooks" / "b.ipynb", """
        results.save_metrics({'n': -1})   # written to staging, must never be published
        raise RuntimeError('deliberately broken')
    """)
    with pytest.raises(book.BookError) as err:
        book.build_book("smoke", render_html=False, log=lambda *a: None)
    msg = str(err.value)
    assert "notebooks/b.ipynb" in msg and "cell 3" in msg and "deliberately broken" in msg
    assert (build / "results" / "smoke" / "b" / "metrics.json").read_text() == good
    assert not any((build / "staging").iterdir())
    assert not list((build / "results").rglob("*.tmp"))


def test_unknown_chapter_and_missing_notebook_are_clear_errors(tiny_book):
    root, build = tiny_book
    with pytest.raises(book.BookError, match="unknown chapter"):
        book.build_book("smoke", only=["zzz"], render_html=False, log=lambda *a: None)
    (root / "notebooks" / "a.ipynb").unlink()
    with pytest.raises(book.BookError, match="does not exist"):
        book.list_chapters(root)


def test_cli_lists_chapters_and_profiles(capsys):
    from atome_core.cli import main
    assert main(["book", "--list"]) == 0
    out = capsys.readouterr().out
    assert "00_corpora" in out and "smoke" in out and "paper" in out


def test_open_chapter_takes_injected_parameters_without_reading_profiles_again(tmp_path, monkeypatch):
    from atome_core.book.chapter import open_chapter
    monkeypatch.setenv("ATOME_ROOT", str(tmp_path))            # no profiles.yml there
    monkeypatch.setenv("ATOME_RESULTS_DIR", str(tmp_path / "out"))
    P, results = open_chapter({"chapter": "a", "profile": "smoke", "n": 5, "injected": ["n"]})
    assert (P.chapter, P.profile, P.n) == ("a", "smoke", 5) and results.dir == tmp_path / "out"
    with pytest.raises(FileNotFoundError):                      # not injected: profiles.yml is read
        open_chapter({"chapter": "a", "profile": "smoke", "n": None})
    with pytest.raises(ValueError, match="must name the chapter"):
        open_chapter({"profile": "smoke"})


def test_stale_chapters_are_the_ones_a_build_would_execute_again(tiny_book):
    root, build = tiny_book
    assert book.stale_chapters(build, "smoke") == ["a", "b"]
    book.build_book("smoke", render_html=False, log=lambda *a: None)
    assert book.stale_chapters(build, "smoke") == []
    make_notebook(root / "notebooks" / "b.ipynb", "results.save_metrics({'n': P.n + 1})")
    assert book.stale_chapters(build, "smoke") == ["b"]


def test_the_kernel_draws_no_progress_bars_and_the_environment_is_restored(tiny_book, monkeypatch):
    root, build = tiny_book
    monkeypatch.setenv("ATOME_PROGRESS", "1")
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    make_notebook(root / "notebooks" / "a.ipynb", """
        import os
        from atome_core.progress import progress_enabled
        results.save_metrics({"bars": progress_enabled(), "tqdm": os.environ.get("TQDM_DISABLE"),
                              "warnings": os.environ.get("PYTHONWARNINGS")})
    """)
    book.build_book("smoke", only=["a"], render_html=False, log=lambda *a: None)
    metrics = json.loads((build / "results" / "smoke" / "a" / "metrics.json").read_text())
    assert metrics["bars"] is False and metrics["tqdm"] == "1" and "IProgress" in metrics["warnings"]
    assert os.environ["ATOME_PROGRESS"] == "1" and "TQDM_DISABLE" not in os.environ


def test_only_stylesheets_are_static_and_scripts_load_where_a_page_asks(tiny_book):
    """Jupyter Book puts every .js under a static path on every page: the demo's script, the
    exported models and MathJax go to the extra path; only the tex-chtml bundle is shipped."""
    root, build = tiny_book
    book.build_book("smoke", render_html=False, log=lambda *a: None)
    (root / "_config.yml").write_text("title: tiny\n")
    (root / "book" / "_static" / "demo").mkdir(parents=True)
    (root / "book" / "_static" / "book.css").write_text("table {}")
    (root / "book" / "_static" / "demo" / "demo.js").write_text("var demo;")
    models = build / "results" / "smoke" / "a" / "_static" / "demo"
    models.mkdir(parents=True)
    (models / "m.json").write_text("{}")
    (models / "m.json.js").write_text("load({})")
    es5 = root / ".cache" / "vendor" / "node_modules" / "mathjax" / "es5"
    for rel in ("tex-chtml.js", "tex-svg.js", "input/tex/extensions/ams.js", "output/chtml/fonts/woff-v2/a.woff"):
        (es5 / rel).parent.mkdir(parents=True, exist_ok=True)
        (es5 / rel).write_text(rel)
    old = build / "src" / "_static" / "mathjax" / "tex-svg.js"   # a file of an older layout
    old.parent.mkdir(parents=True)
    old.write_text("old")

    src = book.assemble_source(root, build, "smoke", book.list_chapters(root))
    static = sorted(p.relative_to(src / "_static").as_posix() for p in (src / "_static").rglob("*") if p.is_file())
    assert static == ["book.css"]
    extra = sorted(p.relative_to(src / "_extra" / "_static").as_posix()
                   for p in (src / "_extra" / "_static").rglob("*") if p.is_file())
    assert extra == ["demo/demo.js", "demo/m.json", "demo/m.json.js", "mathjax/input/tex/extensions/ams.js",
                     "mathjax/output/chtml/fonts/woff-v2/a.woff", "mathjax/tex-chtml.js"]
    assert not old.parent.exists()
    assert (src / "notebooks" / "a.ipynb").exists() and (src / "intro.md").exists()


def reading_book(root):
    """The tiny book with b reading a's published results (profiles.yml `reads`)."""
    (root / "profiles.yml").write_text(textwrap.dedent("""
        profiles: {smoke: {}, cpu: {}, paper: {}}
        chapters:
          a: {defaults: {n: 1}, smoke: {n: 2}}
          b: {reads: [a], defaults: {n: 10}}
    """))
    make_notebook(root / "notebooks" / "b.ipynb", """
        from atome_core.book.results import read_chapter_metrics
        a = read_chapter_metrics("a", P.profile)
        results.save_metrics({"a_n_squared": a["n_squared"], "missing": read_chapter_metrics("zzz", P.profile)})
    """)


def test_a_chapter_that_reads_another_runs_again_when_its_results_change(tiny_book):
    root, build = tiny_book
    reading_book(root)
    first = book.build_book("smoke", render_html=False, log=lambda *a: None)
    assert statuses(first) == {"a": "executed", "b": "executed"}
    b_metrics = build / "results" / "smoke" / "b" / "metrics.json"
    assert json.loads(b_metrics.read_text())["a_n_squared"] == 4
    assert json.loads(b_metrics.read_text())["missing"] is None

    assert statuses(book.build_book("smoke", render_html=False, log=lambda *a: None)) == {"a": "cached", "b": "cached"}
    assert book.stale_chapters(build, "smoke") == []

    # a's notebook changes but publishes the same result: b stays cached.
    make_notebook(root / "notebooks" / "a.ipynb", "results.save_metrics({'n_squared': P.n * P.n})")
    assert book.stale_chapters(build, "smoke") == ["a", "b"]    # a runs again, so b may
    same = book.build_book("smoke", render_html=False, log=lambda *a: None)
    assert statuses(same) == {"a": "executed", "b": "cached"}

    # a's result changes: b runs again and reads the new value.
    (root / "profiles.yml").write_text((root / "profiles.yml").read_text().replace("n: 2", "n: 3"))
    changed = book.build_book("smoke", render_html=False, log=lambda *a: None)
    assert statuses(changed) == {"a": "executed", "b": "executed"}
    assert json.loads(b_metrics.read_text())["a_n_squared"] == 9

    # a's published results replaced behind the runner's back (another build, by hand): b is stale.
    published = build / "results" / "smoke" / "a" / "metrics.json"
    published.write_text(published.read_text().replace("9", "16"))
    assert book.stale_chapters(build, "smoke") == ["b"]
    assert statuses(book.build_book("smoke", render_html=False, log=lambda *a: None)) == {"a": "cached", "b": "executed"}
    assert json.loads(b_metrics.read_text())["a_n_squared"] == 16


def test_a_chapter_that_reads_nothing_keeps_its_cache_key(tiny_book):
    root, build = tiny_book
    ch = book.list_chapters(root)[0]
    params = {"profile": "smoke", "n": 2}
    assert book.cache_key(ch, params, "f") == book.cache_key(ch, params, "f", {})
    assert book.cache_key(ch, params, "f", {"a": None}) != book.cache_key(ch, params, "f", {"a": b"{}"})


def test_reads_must_name_chapters_of_the_book_in_a_list(tiny_book):
    from atome_core.book import profiles
    root, _ = tiny_book
    spec_file = root / "profiles.yml"
    spec_file.write_text(spec_file.read_text().replace("b: {defaults", "b: {reads: [zzz], defaults"))
    with pytest.raises(ValueError, match="not other chapters"):
        profiles.load_profiles()
    spec_file.write_text(spec_file.read_text().replace("reads: [zzz]", "reads: b"))
    with pytest.raises(ValueError, match="list of chapter names"):
        profiles.load_profiles()
    spec_file.write_text(spec_file.read_text().replace("b: {reads: b, ", "b: {")
                         .replace("a: {defaults", "a: {reads: [b], defaults"))
    assert profiles.chapter_reads("a") == ["b"] and profiles.chapter_reads("b") == []
    assert "reads" not in profiles.chapter_parameters("a", "smoke")


def order_of(names_and_reads: list) -> list:
    chapters = [book.Chapter(name, None, f"notebooks/{name}") for name, _ in names_and_reads]
    spec = {"chapters": {name: {"reads": reads} for name, reads in names_and_reads}}
    return [ch.name for ch in book.execution_order(chapters, spec)]


def test_a_chapter_runs_after_the_chapters_it_reads_and_the_rest_keep_book_order():
    assert order_of([("a", []), ("b", []), ("c", [])]) == ["a", "b", "c"]
    assert order_of([("a", []), ("b", ["d"]), ("c", []), ("d", []), ("e", [])]) == ["a", "c", "d", "b", "e"]
    # a chain: b waits for d, which waits for e
    assert order_of([("a", []), ("b", ["d"]), ("c", []), ("d", ["e"]), ("e", [])]) == ["a", "c", "e", "d", "b"]
    # reads of earlier chapters change nothing
    assert order_of([("a", []), ("b", ["a"]), ("c", ["a", "b"])]) == ["a", "b", "c"]


def test_a_cycle_of_reads_and_a_read_outside_the_book_are_refused():
    with pytest.raises(book.BookError, match="cycle"):
        order_of([("a", []), ("b", ["c"]), ("c", ["b"])])
    with pytest.raises(book.BookError, match="cycle"):
        order_of([("a", ["a"])])
    with pytest.raises(book.BookError, match="not in _toc.yml"):
        order_of([("a", []), ("b", ["zzz"])])


def test_a_chapter_that_reads_a_later_one_executes_after_it_and_sees_its_results(tiny_book):
    root, build = tiny_book
    spec_file = root / "profiles.yml"
    spec_file.write_text(spec_file.read_text().replace("a: {defaults", "a: {reads: [b], defaults"))
    make_notebook(root / "notebooks" / "a.ipynb", """
        from atome_core.book.results import read_chapter_metrics
        results.save_metrics({"b_n": read_chapter_metrics("b", P.profile)["n"]})
    """)
    report = book.build_book("smoke", render_html=False, log=lambda *a: None)
    assert list(report) == ["b", "a"]
    assert json.loads((build / "results" / "smoke" / "a" / "metrics.json").read_text())["b_n"] == 10
    assert book.stale_chapters(build, "smoke") == []
    (root / "profiles.yml").write_text(spec_file.read_text().replace("n: 10", "n: 11"))
    assert book.stale_chapters(build, "smoke") == ["b", "a"]
    assert [ch.name for ch in book.list_chapters(root)] == ["a", "b"]     # the book keeps its order


def test_the_books_chapters_run_after_the_chapters_they_read():
    from atome_core.book import profiles
    spec = profiles.load_profiles()
    order = [ch.name for ch in book.execution_order(book.list_chapters(), spec)]
    for name in order:
        assert all(order.index(read) < order.index(name) for read in profiles.chapter_reads(name, spec))
    assert order.index("04_ab_60k") < order.index("03_packing") and order.index("02_ternary_qat") < order.index("03_packing")
