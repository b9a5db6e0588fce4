"""`atome sweep` on a throw-away book: the grid, Dask and local executors, the cache, failures;
and a chapter run by hand with parameters never writing into the published results."""
import csv
import json
import os
import textwrap

import pytest
from test_book_runner import make_notebook

from atome_core.book import sweep as S
from atome_core.book.chapter import open_chapter
from atome_core.cli import main


@pytest.fixture
def grid_book(tmp_path, monkeypatch):
    root = tmp_path / "book"
    (root / "notebooks").mkdir(parents=True)
    (root / "_toc.yml").write_text("format: jb-book\nroot: intro\nchapters:\n  - file: notebooks/a\n")
    (root / "intro.md").write_text("# intro\n")
    (root / "profiles.yml").write_text(textwrap.dedent("""
        profiles: {smoke: {}, cpu: {}, paper: {}}
        chapters:
          a: {defaults: {n: 1, m: 1}, smoke: {n: 2}}
    """))
    make_notebook(root / "notebooks" / "a.ipynb", """
        if P.n == 3:
            raise ValueError("n = 3 is refused")
        results.save_metrics({'product': P.n * P.m, 'm': P.m, 'fit': {'n': P.n}})
    """, extra_params="m = None")
    build = tmp_path / "_build"
    published = build / "results" / "smoke" / "a" / "metrics.json"
    published.parent.mkdir(parents=True)
    published.write_text('{"product": 2}\n')
    monkeypatch.setenv("ATOME_ROOT", str(root))
    monkeypatch.setenv("ATOME_BUILD_DIR", str(build))
    return root, build


def tree_bytes(folder):
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def table(sweep_dir):
    with open(sweep_dir / "sweep.csv") as f:
        return list(csv.DictReader(f))


def quiet(*args):
    pass


def test_values_are_read_as_yaml_and_commas_inside_brackets_do_not_split():
    assert S.parse_values("6,12") == [6, 12]
    assert S.parse_values("0.001, null ,[a, b],true") == [0.001, None, ["a", "b"], True]
    assert S.parse_grid(["steps=6,12", "lr=1e-3"]) == {"steps": [6, 12], "lr": [0.001]}
    with pytest.raises(ValueError):
        S.parse_grid(["steps"])


def test_a_sweep_on_a_dask_local_cluster_runs_the_grid_without_touching_published_results(grid_book):
    _, build = grid_book
    before = tree_bytes(build / "results")
    out = S.sweep("a", ["n=1,2", "m=10,20"], profile="smoke", name="dask", dask_local=2, log=quiet)
    assert tree_bytes(build / "results") == before
    assert out["runs"] == {r: "executed" for r in ("n=1,m=10", "n=1,m=20", "n=2,m=10", "n=2,m=20")}
    rows = table(out["dir"])
    assert all(r["metrics.m"] == r["m"] for r in rows)   # a metric named like a parameter keeps its column
    assert [(r["n"], r["m"], r["product"], r["fit.n"]) for r in rows] == [
        ("1", "10", "10", "1"), ("1", "20", "20", "1"), ("2", "10", "20", "2"), ("2", "20", "40", "2")]
    run = out["dir"] / "n=2,m=20"
    assert json.loads((run / "params.json").read_text())["parameters"]["m"] == 20
    assert (run / "notebook.ipynb").is_file() and (run / "results" / "metrics.json").is_file()
    assert (out["dir"] / "sweep.md").read_text().count("\n") == 6 and (out["dir"] / "sweep.png").is_file()

    local = S.sweep("a", ["n=1,2", "m=10,20"], profile="smoke", name="local", workers=1, log=quiet)
    assert [r["product"] for r in table(local["dir"])] == [r["product"] for r in rows]
    again = S.sweep("a", ["n=1,2", "m=10,20"], profile="smoke", name="local", workers=1, log=quiet)
    assert set(again["runs"].values()) == {"cached"}


def test_a_failing_run_is_recorded_the_others_finish_and_the_sweep_exits_1(grid_book, capsys):
    _, build = grid_book
    assert main(["sweep", "a", "--profile", "smoke", "--name", "f", "-p", "n=1,3"]) == 1
    assert "n=3" in capsys.readouterr().err
    sweep_dir = build / "sweeps" / "f"
    failure = json.loads((sweep_dir / "n=3" / "failure.json").read_text())
    assert failure["cell"] is not None and "n = 3 is refused" in failure["error"]
    rows = {r["run"]: r for r in table(sweep_dir)}
    assert rows["n=1"]["status"] == "ok" and rows["n=1"]["product"] == "1"
    assert rows["n=3"]["status"].startswith("failed: ValueError")


def test_a_parameter_the_chapter_does_not_have_is_bad_input(grid_book, capsys):
    assert main(["sweep", "a", "--profile", "smoke", "-p", "lr=1,2"]) == 2
    assert "no parameter lr" in capsys.readouterr().err


def test_a_chapter_given_a_value_by_hand_writes_to_scratch_not_to_the_published_results(grid_book, monkeypatch):
    _, build = grid_book
    monkeypatch.delenv("ATOME_RESULTS_DIR", raising=False)
    monkeypatch.setenv("ATOME_PROFILE", "smoke")
    _, stored = open_chapter({"chapter": "a", "profile": None, "n": None, "m": None})
    assert stored.dir == build / "results" / "smoke" / "a"          # nbmake, jupyter-book build
    _, by_hand = open_chapter({"chapter": "a", "profile": "smoke", "n": None, "m": None})
    assert by_hand.dir == build / "scratch" / "smoke" / "a"         # papermill -p profile smoke
    _, by_hand = open_chapter({"chapter": "a", "profile": None, "n": 5, "m": None})
    assert by_hand.dir == build / "scratch" / "smoke" / "a"


def test_a_papermill_run_that_injects_its_output_path_writes_results_beside_the_output_notebook(
        grid_book, monkeypatch, tmp_path):
    _, build = grid_book
    monkeypatch.delenv("ATOME_RESULTS_DIR", raising=False)
    out = tmp_path / "runs" / "try-1.ipynb"
    published = build / "results"
    before = {f: f.read_bytes() for f in published.rglob("*") if f.is_file()}
    _, results = open_chapter({"chapter": "a", "profile": "smoke", "n": None, "m": None,
                               "PAPERMILL_OUTPUT_PATH": str(out)})
    assert results.dir == tmp_path / "runs" / "try-1_results"
    results.save_metrics({"x": 1})
    assert (tmp_path / "runs" / "try-1_results" / "metrics.json").exists()
    assert {f: f.read_bytes() for f in published.rglob("*") if f.is_file()} == before
    monkeypatch.setenv("ATOME_RESULTS_DIR", str(tmp_path / "elsewhere"))   # the environment still wins
    _, results = open_chapter({"chapter": "a", "profile": "smoke", "PAPERMILL_OUTPUT_PATH": str(out)})
    assert results.dir == tmp_path / "elsewhere"


def test_opening_a_chapter_starts_a_fresh_training_ledger_in_its_results(grid_book, monkeypatch):
    from atome_core.paths import LEDGER_ENV, LEDGER_FILE
    monkeypatch.delenv("ATOME_RESULTS_DIR", raising=False)
    monkeypatch.setenv("ATOME_PROFILE", "smoke")
    monkeypatch.setenv(LEDGER_ENV, "elsewhere.jsonl")     # restored after the test
    _, results = open_chapter({"chapter": "a", "profile": None, "n": None, "m": None})
    ledger = results.dir / LEDGER_FILE
    assert os.environ[LEDGER_ENV] == str(ledger)
    ledger.write_text('{"an earlier run": 1}\n')
    open_chapter({"chapter": "a", "profile": None, "n": None, "m": None})
    assert not ledger.exists()                           # the run opened again records only its own work
