"""The chapters as stored: one source line per line, no outputs, code folded unless asked.

`normalize` is what `atome book --normalize` writes and what tests/test_notebooks.py
checks every chapter against:

- each cell's source is a list of lines (readable diffs), outputs and execution counts
  are dropped (the book stores executed copies under _build/);
- every code cell carries one visibility tag for the rendered page. A cell tagged
  `show-input` (the parameters cell and the key call of a section) shows its code; one
  tagged `remove-input` or `remove-cell` shows none; every other code cell gets
  `hide-input`: its code folds under a toggle and its output shows.
- `show-input` is our own tag (Jupyter Book shows untagged cells); it marks the choice.
"""
import re
from pathlib import Path

VISIBILITY_TAGS = ("show-input", "hide-input", "remove-input", "remove-cell", "hide-cell", "hide-output")


def normalize_notebook(nb) -> object:
    """The normalized copy of an nbformat v4 notebook (the argument is changed in place)."""
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
            tags = list(cell.metadata.get("tags", []))
            if "parameters" in tags and "show-input" not in tags:
                tags.append("show-input")
            if not any(t in tags for t in VISIBILITY_TAGS):
                tags.append("hide-input")
            cell.metadata["tags"] = tags
        if isinstance(cell.source, list):
            cell.source = "".join(cell.source)
        cell.source = cell.source.rstrip("\n")
    nb.metadata.pop("papermill", None)
    nb.metadata.pop("atome", None)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def notebook_text(nb) -> str:
    """How a notebook is stored: nbformat's writer splits each source into a list of lines."""
    import nbformat
    return nbformat.writes(nb) + "\n"


def normalize_file(path) -> bool:
    """Rewrite the notebook at `path` in normalized form; True when it changed."""
    import nbformat
    path = Path(path)
    before = path.read_text()
    after = notebook_text(normalize_notebook(nbformat.reads(before, as_version=4)))
    if after != before:
        path.write_text(after)
        return True
    return False


def function_definitions(nb) -> list[str]:
    """Names of the functions a notebook's code cells define (analysis belongs in the package)."""
    return [m.group(1) for cell in nb.cells if cell.cell_type == "code"
            for m in re.finditer(r"^\s*def (\w+)", cell.source, re.M)]
