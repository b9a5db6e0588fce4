"""The first call of every chapter: its parameters, resolved once, and its results folder.

A chapter's parameters cell (tagged `parameters`) names the chapter once and declares
each parameter as None:

    chapter = "04_ab_60k"
    profile = None
    steps = None

then its setup cell calls `P, results = open_chapter(globals())`.

- Run by `atome book` (papermill), every parameter is injected with the profile's value,
  together with `injected`, the list of their names: nothing is read again.
- Run any other way (nbmake, `jupyter-book build`, a plain papermill run with `-p`), the
  profile comes from `profile`, else $ATOME_PROFILE, else cpu, and every parameter still
  None is filled from profiles.yml; values given explicitly win. A run given any value by
  hand (a plain `papermill ... -p profile cpu`) writes its results to
  _build/scratch/<profile>/<chapter>/ (or ATOME_RESULTS_DIR), never to the published
  _build/results/<profile>/ the book and other chapters read; a run as stored (nbmake,
  `jupyter-book build`) publishes there.
- A plain papermill run that passes `--inject-output-path` (papermill then defines
  PAPERMILL_OUTPUT_PATH in the notebook) writes its results beside the output notebook:
  `papermill in.ipynb runs/out.ipynb --inject-output-path` -> runs/out_results/ (unless
  ATOME_RESULTS_DIR names a folder), never to the published results.

Every route records the chapter's training work: open_chapter points ATOME_TRAINING_LEDGER at
training_runs.jsonl in the results folder (emptied first), and every training run of the
chapter, in its process or in worker processes it starts, appends its shape there.

It also keeps a chapter's outputs clean for the page: no progress bars (ATOME_PROGRESS
and the Hugging Face libraries' bars off unless asked for), no tqdm warnings.
"""
import os
import warnings
from pathlib import Path
from types import SimpleNamespace

from ..paths import LEDGER_ENV, LEDGER_FILE
from .profiles import resolve_parameters
from .results import ChapterResults

# What a chapter prints becomes part of its page: no progress bar may draw there, ours
# (atome_core.progress) or a library's (tqdm's defaults, Hugging Face datasets and hub).
# The runner starts the kernel with these; open_chapter sets them for the other routes.
QUIET_ENV = {"ATOME_PROGRESS": "0", "TQDM_DISABLE": "1", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
             "HF_HUB_DISABLE_PROGRESS_BARS": "1", "TOKENIZERS_PARALLELISM": "false"}


def quiet_outputs() -> None:
    """Keep progress bars and library chatter out of executed notebooks."""
    for name, value in QUIET_ENV.items():
        os.environ.setdefault(name, value)
    try:
        from tqdm import TqdmExperimentalWarning, TqdmWarning
        warnings.filterwarnings("ignore", category=TqdmWarning)
        warnings.filterwarnings("ignore", category=TqdmExperimentalWarning)
    except ImportError:
        pass


def open_chapter(namespace: dict) -> tuple[SimpleNamespace, ChapterResults]:
    """(parameters, results) of the chapter whose globals() are `namespace`."""
    P, results = chapter_and_results(namespace)
    ledger = results.dir / LEDGER_FILE
    ledger.unlink(missing_ok=True)          # this run's training, not an earlier run's
    os.environ[LEDGER_ENV] = str(ledger)
    return P, results


def chapter_and_results(namespace: dict) -> tuple[SimpleNamespace, ChapterResults]:
    """The chapter's parameters and its results folder, by the route it runs on (module docstring)."""
    chapter = namespace.get("chapter")
    if not chapter:
        raise ValueError("the parameters cell must name the chapter: chapter = \"<notebook stem>\"")
    quiet_outputs()
    injected = namespace.get("injected")
    if injected:
        P = SimpleNamespace(chapter=chapter, profile=namespace["profile"],
                            **{name: namespace[name] for name in injected if name != "profile"})
        return P, ChapterResults(chapter, P.profile)
    P = resolve_parameters(chapter, namespace)
    output = namespace.get("PAPERMILL_OUTPUT_PATH")
    if output:   # a plain papermill run that told the notebook where it goes: results beside it
        output = Path(output)
        return P, ChapterResults(chapter, P.profile, publish=False, folder=output.parent / f"{output.stem}_results")
    # A value given by hand (papermill -p, the profile included) makes this someone's
    # experiment: its results go to the scratch folder, not those the book publishes.
    given = [name for name in vars(P) if name != "chapter" and namespace.get(name) is not None]
    return P, ChapterResults(chapter, P.profile, publish=not given)
