"""The chapters as stored: normalized, narrated in prose, analysis in the package."""
import re
from pathlib import Path

import nbformat
import pytest

from atome_core.book.notebooks import (
    function_definitions,
    normalize_notebook,
    notebook_text,
)

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_chapter_is_stored_normalized(path):
    text = path.read_text()
    assert notebook_text(normalize_notebook(nbformat.reads(text, as_version=4))) == text, \
        f"{path.name} is not normalized: run `atome book --normalize`"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_chapter_defines_at_most_two_small_helpers(path):
    defs = function_definitions(nbformat.read(path, as_version=4))
    assert len(defs) <= 2, f"{path.name} defines {defs}: analysis functions belong in atome_core.chapters"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_chapter_prose_is_not_built_by_fstrings(path):
    nb = nbformat.read(path, as_version=4)
    built = [c.source.splitlines()[0] for c in nb.cells if c.cell_type == "code"
             and re.search(r"Markdown\(\s*f[\"']", c.source)]
    assert not built, f"{path.name}: prose with numbers goes through glue, tables through report.table: {built}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_chapter_names_itself_once_and_opens_through_open_chapter(path):
    nb = nbformat.read(path, as_version=4)
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1 and f'chapter = "{path.stem}"' in params[0].source
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert code.count(path.stem) == 1 and "open_chapter(globals())" in code


def test_normalize_folds_code_and_keeps_the_parameters_cell_visible():
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("chapter = 'x'\nprofile = None")
    params.metadata["tags"] = ["parameters"]
    shown = nbformat.v4.new_code_cell("key_call()")
    shown.metadata["tags"] = ["show-input"]
    plain = nbformat.v4.new_code_cell("x = 1\n")
    plain.outputs = [nbformat.v4.new_output("stream", text="1")]
    nb.cells = [params, shown, plain, nbformat.v4.new_markdown_cell("prose")]
    out = normalize_notebook(nb)
    assert out.cells[0].metadata["tags"] == ["parameters", "show-input"]
    assert out.cells[1].metadata["tags"] == ["show-input"]
    assert out.cells[2].metadata["tags"] == ["hide-input"] and out.cells[2].outputs == []
    assert '"x = 1"' in notebook_text(out)


MAX_SHOWN_LINES = 8


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_only_short_key_calls_are_shown(path):
    # the page shows the parameters cell and each section's key call; longer code folds
    nb = nbformat.read(path, as_version=4)
    long = [c.source.splitlines()[0] for c in nb.cells if c.cell_type == "code"
            and "show-input" in c.metadata.get("tags", []) and "parameters" not in c.metadata.get("tags", [])
            and len(c.source.splitlines()) > MAX_SHOWN_LINES]
    assert not long, f"{path.name}: shown cells over {MAX_SHOWN_LINES} lines (split the key call out): {long}"
