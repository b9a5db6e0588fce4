"""Local lm-evaluation-harness tasks made from our own held-out text, runnable offline.

`write_local_tasks(folder)` writes JSONL data and task YAMLs; pass the folder to
lm-eval as `--include_path` (or `TaskManager(include_path=...)`). All items come from
the Shakespeare *validation* split (the last 10 %), which no model trains on.

- shakespeare_nextline (multiple choice): a speaker and two lines of a speech; pick
  the true third line among four (three distractor lines from other speeches).
  Chance: 25 %.
- shakespeare_cloze (log-likelihood): a line without its last word; is the word the
  model's greedy continuation (acc), and its perplexity.
- shakespeare_complete (generation): the first half of a line; greedy generation up
  to the newline must equal the rest of the line (exact match).
- shakespeare_bpb (rolling log-likelihood): whole speeches; bits per byte.
"""
import contextlib
import io
import json
import logging
import os
import re
import sys
import warnings
from pathlib import Path

import numpy as np

from ..data import load_corpus

TASK_NAMES = ("shakespeare_nextline", "shakespeare_cloze", "shakespeare_complete", "shakespeare_bpb")


def speeches(text: str) -> list[tuple[str, list[str]]]:
    """(speaker, lines) for every whole speech in `text` (blocks separated by blank lines)."""
    out = []
    for block in text.split("\n\n")[1:-1]:          # the first and last block may be cut
        lines = block.strip("\n").split("\n")
        if len(lines) >= 2 and lines[0].endswith(":"):
            out.append((lines[0][:-1], lines[1:]))
    return out


def make_items(text: str, n: int, seed: int) -> dict[str, list[dict]]:
    rng = np.random.default_rng(seed)
    all_speeches = speeches(text)
    if len(all_speeches) < 10:
        raise ValueError("too little text to build the local tasks")
    order = rng.permutation(len(all_speeches))
    all_lines = [line for _, lines in all_speeches for line in lines if len(line) > 10]
    items = {name: [] for name in TASK_NAMES}
    for i in order:
        speaker, lines = all_speeches[i]
        head = f"{speaker}:\n"
        if len(lines) >= 3 and len(items["shakespeare_nextline"]) < n:
            true = lines[2]
            distractors = [all_lines[j] for j in rng.choice(len(all_lines), size=8, replace=False)
                           if all_lines[j] != true][:3]
            choices = distractors + [true]
            perm = rng.permutation(4)
            choices = [choices[p] for p in perm]
            items["shakespeare_nextline"].append({"context": head + lines[0] + "\n" + lines[1] + "\n",
                                                  "choices": choices, "label": int(np.argmax(perm == 3))})
        line = lines[0]
        m = re.match(r"^(.*\S)\s+([A-Za-z']+)$", line)
        if m and len(line.split()) >= 4 and len(items["shakespeare_cloze"]) < n:
            items["shakespeare_cloze"].append({"context": head + m.group(1), "target": " " + m.group(2)})
        if len(line) >= 20 and len(items["shakespeare_complete"]) < n:
            cut = line.rfind(" ", 0, len(line) // 2)
            if cut > 0:
                items["shakespeare_complete"].append({"context": head + line[:cut],
                                                      "target": line[cut:]})
        if len(items["shakespeare_bpb"]) < n:
            items["shakespeare_bpb"].append({"text": head + "\n".join(lines) + "\n"})
        if all(len(v) >= n for v in items.values()):
            break
    return items


def _metric(name: str, aggregation: str, higher_is_better: bool) -> str:
    return (f"  - metric: {name}\n    aggregation: {aggregation}\n"
            f"    higher_is_better: {str(higher_is_better).lower()}\n")


def task_yaml(name: str, data_file: Path) -> str:
    common = (f"task: {name}\ndataset_path: json\ndataset_kwargs:\n  data_files:\n"
              f"    test: {json.dumps(str(data_file))}\ntest_split: test\n")
    body = {
        "shakespeare_nextline": ('output_type: multiple_choice\ndoc_to_text: "{{context}}"\n'
                                 'doc_to_choice: choices\ndoc_to_target: label\ntarget_delimiter: ""\n'
                                 "metric_list:\n" + _metric("acc", "mean", True) + _metric("acc_norm", "mean", True)),
        "shakespeare_cloze": ('output_type: loglikelihood\ndoc_to_text: "{{context}}"\n'
                              'doc_to_target: "{{target}}"\ntarget_delimiter: ""\n'
                              "metric_list:\n" + _metric("acc", "mean", True)
                              + _metric("perplexity", "perplexity", False)),
        "shakespeare_complete": ('output_type: generate_until\ndoc_to_text: "{{context}}"\n'
                                 'doc_to_target: "{{target}}"\ntarget_delimiter: ""\n'
                                 'generation_kwargs:\n  until: ["\\n"]\n  max_gen_toks: 48\n'
                                 "metric_list:\n" + _metric("exact_match", "mean", True)),
        "shakespeare_bpb": ('output_type: loglikelihood_rolling\ndoc_to_text: ""\n'
                            'doc_to_target: "{{text}}"\n'
                            "metric_list:\n" + _metric("word_perplexity", "weighted_perplexity", False)
                            + _metric("byte_perplexity", "weighted_perplexity", False)
                            + _metric("bits_per_byte", "bits_per_byte", False)),
    }[name]
    return common + body + "metadata:\n  version: 1.0\n"


def write_local_tasks(folder, n: int = 200, seed: int = 0, corpus: str = "shakespeare") -> Path:
    """Write the four tasks (data + YAML) under `folder`; returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    items = make_items(load_corpus(corpus).val, n, seed)
    for name, rows in items.items():
        data_file = folder / f"{name}.jsonl"
        data_file.write_text("".join(json.dumps(r) + "\n" for r in rows))
        (folder / f"{name}.yaml").write_text(task_yaml(name, data_file.resolve()))
    return folder


@contextlib.contextmanager
def quiet_lm_eval():
    """lm-eval and `datasets` without progress bars, warnings or chatter, for a chapter's
    output: datasets' bars off and both libraries' loggers at ERROR; tqdm's warnings
    ignored; Python's stderr captured (lm-eval's own tqdm bars cannot be switched off)
    and written out only if an error escapes; and the stderr of the `git describe` that
    lm-eval runs to record a commit sent to /dev/null (outside a repository it prints
    "fatal: not a git repository")."""
    captured = io.StringIO()
    sys.stderr.flush()
    saved_fd, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    loggers = {name: logging.getLogger(name) for name in ("lm_eval", "lm-eval", "datasets")}
    levels = {name: lg.level for name, lg in loggers.items()}
    bars_were_off = None
    try:
        try:
            with warnings.catch_warnings(), contextlib.redirect_stderr(captured):
                warnings.filterwarnings("ignore", module="tqdm")
                warnings.filterwarnings("ignore", message=".*IProgress not found.*")
                import datasets
                bars_were_off = datasets.are_progress_bars_disabled()
                datasets.disable_progress_bars()
                for lg in loggers.values():
                    lg.setLevel(logging.ERROR)
                yield
        finally:
            os.dup2(saved_fd, 2)
            os.close(saved_fd)
            os.close(devnull)
            for name, lg in loggers.items():
                lg.setLevel(levels[name])
            if bars_were_off is False:
                import datasets
                datasets.enable_progress_bars()
    except Exception:
        sys.stderr.write(captured.getvalue())
        raise


def evaluate(model, tokenizer, folder, tasks=TASK_NAMES, limit: int | None = None, quiet: bool = True) -> dict:
    """Run lm-eval on the local tasks; {task: {metric: value}} (stderr entries dropped).
    quiet: no progress bars or library chatter (quiet_lm_eval)."""
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    with quiet_lm_eval() if quiet else contextlib.nullcontext():
        from lm_eval import simple_evaluate
        from lm_eval.tasks import TaskManager

        from .adapter import AtomeLM
        lm = AtomeLM(model=model, tokenizer=tokenizer)
        out = simple_evaluate(model=lm, tasks=list(tasks),
                              task_manager=TaskManager(include_path=str(folder), include_defaults=False),
                              limit=limit, log_samples=False, bootstrap_iters=0, verbosity="ERROR")
    return {task: {k.split(",")[0]: v for k, v in metrics.items()
                   if "stderr" not in k and k != "alias" and isinstance(v, (int, float))}
            for task, metrics in out["results"].items()}
