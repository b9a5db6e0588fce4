"""Progress bars that show in a terminal and stay quiet in CI and logs."""
import os
import sys

from tqdm import tqdm  # not tqdm.auto: no widgets in executed notebooks


def progress_enabled() -> bool:
    if os.environ.get("ATOME_PROGRESS") in ("0", "1"):
        return os.environ["ATOME_PROGRESS"] == "1"
    if os.environ.get("CI"):
        return False
    return sys.stderr.isatty()


def progress(iterable=None, **kwargs):
    """tqdm, disabled unless stderr is a terminal (ATOME_PROGRESS=1/0 forces it)."""
    kwargs.setdefault("disable", not progress_enabled())
    kwargs.setdefault("dynamic_ncols", True)
    return tqdm(iterable, **kwargs)
