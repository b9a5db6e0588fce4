"""How a chapter shows numbers: glued into its prose, or as a generated table.

- `glue(name, value)`: a number (or short text) for the prose, where a markdown cell
  writes {glue:text}`name` or {glue:text}`name:.3f`. Nothing is displayed in the cell.
- `stat_text(stat)`: a median over seeds with its range, "2.946 [2.918, 2.950]", or the
  single value when there was one seed; `stat` as from atome_core.evaluate.median_and_range.
- `table(header, rows)`: a Markdown table displayed as the cell's output (the book renders
  it; wide tables scroll). Cells may be numbers, formatted with `digits`.
"""
import math
import numbers


def glue(name: str, value) -> None:
    """Glue `value` under `name` for {glue:text} in the chapter's markdown (not displayed)."""
    from myst_nb import glue as myst_glue
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"glue {name!r}: {value} is not a number a reader can use")
    myst_glue(name, value, display=False)


def number_text(x, digits: int = 3) -> str:
    """One table cell: ints with thousands separators, floats with `digits` decimals."""
    if x is None:
        return "n/a"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, numbers.Integral):
        return f"{int(x):,}"
    if isinstance(x, numbers.Real):
        return f"{float(x):,.{digits}f}"
    return str(x)


def stat_text(stat: dict, digits: int = 3) -> str:
    """"median [min, max]" over seeds; the value alone for one seed."""
    if stat["n"] == 1:
        return f"{stat['median']:.{digits}f}"
    return f"{stat['median']:.{digits}f} [{stat['min']:.{digits}f}, {stat['max']:.{digits}f}]"


def table_markdown(header: list, rows: list, digits: int = 3) -> str:
    """A Markdown table; a cell that is a dict with median/min/max/n becomes stat_text."""
    def cell(x):
        if isinstance(x, dict) and {"median", "min", "max", "n"} <= set(x):
            return stat_text(x, digits)
        return number_text(x, digits).replace("|", "\\|").replace("\n", " ")
    for i, row in enumerate(rows):
        if len(row) != len(header):
            raise ValueError(f"row {i} has {len(row)} cells, the header {len(header)}")
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(x) for x in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def table(header: list, rows: list, digits: int = 3) -> None:
    """Display a Markdown table as the cell's output."""
    from IPython.display import Markdown, display
    display(Markdown(table_markdown(header, rows, digits)))
