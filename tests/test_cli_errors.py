"""Every subcommand meets bad input with one line naming the file or value and what is wrong:
exit 2 for usage or bad input, 1 for a run that failed, 130 on Ctrl-C, never a traceback.
Also what a newcomer meets next: --version, streaming, the model card, file modes."""
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from atome_core import cli

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Bad inputs beside one tiny trained model and its blob (15K routed, a few steps)."""
    d = tmp_path_factory.mktemp("bad")
    (d / "random.bin").write_bytes(os.urandom(4096))
    (d / "empty.bin").write_bytes(b"")
    (d / "junk.safetensors").write_bytes(os.urandom(500))
    (d / "junk.json").write_text('{"bad')
    (d / "folder").mkdir()
    (d / "text.txt").write_text("a tiny corpus of plain words for a test of the command line. " * 200)
    code = cli.main(["train", "--model", "routed", "--size", "15k", "--tokens", "2000", "--corpus", "file",
                     "--corpus-path", str(d / "text.txt"), "--out", str(d / "model.safetensors")])
    assert code == 0
    assert cli.main(["export", str(d / "model.safetensors"), "-o", str(d / "model.atmb")]) == 0
    return d


# (argv with {d} for the fixture folder, exit code, what the message must name)
BAD_INPUTS = [
    (["bogus"], 2, "invalid choice: 'bogus'"),
    ([], 2, "required"),
    (["book", "--profile", "nope"], 2, "invalid choice: 'nope'"),
    (["book", "--only", "99_nope", "--no-render"], 2, "--only 99_nope: no such chapter"),
    (["corpus", "show", "nope"], 2, "unknown corpus 'nope'"),
    (["corpus", "show", "file"], 2, "needs a path"),
    (["corpus", "show", "file", "--path", "{d}/no_such.txt"], 2, "no_such.txt"),
    (["corpus", "show", "file", "--path", "{d}/random.bin"], 2, "random.bin: looks like a binary file"),
    (["corpus", "show", "file", "--path", "{d}/folder"], 2, "folder"),
    (["corpus", "show", "shakespeare", "--val-fraction", "-1"], 2, "argument --val-fraction: -1"),
    (["corpus", "fetch", "nope"], 2, "unknown corpus 'nope'"),
    (["atto", "train", "--budget", "1024", "--out", "{d}/a.safetensors", "--corpus", "file"], 2,
     "atome train --corpus file --corpus-path FILE"),
    (["atto", "train", "--budget", "0", "--out", "{d}/a.safetensors"], 2, "argument --budget: 0 is too small"),
    (["atto", "train", "--budget", "1024", "--out", "{d}/a.safetensors", "--config", "{{bad"], 2,
     "--config '{{bad' is not an AttoConfig"),
    (["atto", "sample", "{d}/random.bin"], 2, "random.bin: not a safetensors model file"),
    (["atto", "sample", "{d}/junk.json"], 2, "junk.json: cannot read JSON"),
    (["atto", "sample", "{d}/model.safetensors"], 2, "holds a routed model, not an atto model"),
    (["atto", "sample", "{d}/model.safetensors", "--temperature", "nan"], 2, "argument --temperature: nan"),
    (["atto", "export", "{d}/no_such.safetensors", "--out", "{d}/a.json"], 2, "no_such.safetensors: no such"),
    (["export", "{d}/random.bin", "-o", "{d}/out.atmb"], 2, "random.bin: not a safetensors model file"),
    (["export", "{d}/empty.bin", "-o", "{d}/out.atmb"], 2, "empty.bin: not a safetensors model file"),
    (["export", "{d}/junk.safetensors", "-o", "{d}/out.atmb"], 2, "junk.safetensors: not a safetensors"),
    (["export", "{d}/model.safetensors", "-o", "{d}/folder"], 2, "folder is a folder"),
    (["export", "{d}/no_such.pt", "-o", "{d}/out.atmb"], 2, "no_such.pt: no such file"),
    (["export", "{d}/model.safetensors", "-o", "{d}/out.atmb", "--config", "nonsense"], 2,
     "--config 'nonsense' is neither a preset"),
    (["export", "{d}/model.safetensors", "-o", "{d}/out.atmb", "--top-k", "3"], 2, "stores top_k 4"),
    (["export", "{d}/model.safetensors", "-o", "{d}/out.atmb", "--codec", "zip"], 2, "invalid choice: 'zip'"),
    (["inspect", "{d}/no_such.atmb"], 2, "no_such.atmb: no such file"),
    (["inspect", "{d}/random.bin"], 1, "random.bin: not a valid blob (BadMagicError"),
    (["inspect", "{d}/empty.bin"], 1, "empty.bin: not a valid blob (TruncatedBlobError"),
    (["inspect", "{d}/junk.safetensors"], 2, "junk.safetensors: not a safetensors model file"),
    (["inspect", "{d}/model.atmb", "--config", "nonsense"], 2, "--config 'nonsense'"),
    (["generate", "--blob", "{d}/random.bin", "--prompt", "a"], 2, "random.bin: not a safetensors model file"),
    (["generate", "--blob", "{d}/no_such.atmb", "--prompt", "a"], 2, "no_such.atmb: no such"),
    (["generate", "--blob", "{d}/model.atmb", "--prompt", "a", "--max-new-tokens", "-5"], 2,
     "argument --max-new-tokens: -5 is too small"),
    (["generate", "--blob", "{d}/model.atmb", "--prompt", "a", "--max-total", "-1"], 2,
     "argument --max-total: -1 is too small"),
    (["generate", "--blob", "{d}/model.atmb", "--prompt", "a", "--temperature", "-1"], 2,
     "argument --temperature: -1 is not allowed"),
    (["generate", "--blob", "{d}/model.atmb", "--prompt", "a", "--temperature", "nan"], 2,
     "argument --temperature: nan is not allowed"),
    (["generate", "--blob", "{d}/model.atmb", "--prompt", "a", "--window", "0"], 2, "argument --window: 0"),
    (["generate", "--blob", "{d}/model.atmb", "--prompt", ""], 2, "the prompt is empty"),
    (["generate", "--blob", "{d}/model.atmb", "--prompt", "a", "--max-new-tokens", "ten"], 2, "'ten' is not an integer"),
    (["qemu", "--blob", "{d}/random.bin", "--prompt", "a"], 2, "random.bin: not a safetensors model file"),
    (["qemu", "--blob", "{d}/model.atmb", "--prompt", "a", "--core", "m9"], 2, "invalid choice: 'm9'"),
    (["qemu", "--blob", "{d}/model.atmb", "--prompt", "a", "--timeout", "0"], 2, "argument --timeout: 0"),
    (["train", "--model", "routed", "--size", "15k", "--tokens", "100", "--out", "{d}/t.safetensors",
      "--device", "tpu"], 2, "argument --device: 'tpu' is not a device"),
    (["train", "--model", "routed", "--size", "15k", "--tokens", "0", "--out", "{d}/t.safetensors",
      "--corpus", "file", "--corpus-path", "{d}/text.txt"], 2, "token budget must be a positive integer"),
    (["train", "--model", "routed", "--size", "15k", "--tokens", "100", "--out", "{d}/folder"], 2,
     "folder is a folder"),
    (["train", "--model", "routed", "--size", "15k", "--tokens", "100", "--out", "{d}/t.safetensors",
      "--corpus", "nope"], 2, "unknown corpus 'nope'"),
    (["train", "--model", "routed", "--size", "15k", "--tokens", "100", "--out", "{d}/t.safetensors",
      "--corpus", "file"], 2, "--corpus file needs --corpus-path FILE"),
    (["train", "--model", "routed", "--size", "15k", "--tokens", "100", "--out", "{d}/t.safetensors",
      "--corpus", "file", "--corpus-path", "{d}/random.bin"], 2, "random.bin: looks like a binary file"),
    (["train", "--model", "routed", "--size", "15k", "--tokens", "100", "--out", "{d}/t.safetensors",
      "--quant", "ternary"], 2, "are for --model modern"),
    (["train", "--model", "routed", "--size", "15k", "--tokens", "100", "--out", "{d}/t.safetensors",
      "--seed", "-1"], 2, "argument --seed: -1 is too small"),
    (["train", "--model", "routed", "--size", "2m", "--tokens", "100", "--out", "{d}/t.safetensors"], 2,
     "invalid choice: '2m'"),
    (["engine", "fuzz-seeds"], 2, "give the folder"),
    (["engine", "bogus"], 2, "invalid choice: 'bogus'"),
    (["commands", "--bogus"], 2, "unrecognized arguments: --bogus"),
]


@pytest.mark.parametrize("argv, code, message", BAD_INPUTS, ids=[" ".join(a[:3]) for a, _, _ in BAD_INPUTS])
def test_bad_input_exits_with_its_code_and_one_line_naming_it(files, argv, code, message, capsys):
    argv = [a.format(d=files) for a in argv]
    message = message.format(d=files)
    assert cli.main(argv) == code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    error_lines = [line for line in err.splitlines() if re.match(r"atome( [\w-]+)*: error: ", line)]
    assert len(error_lines) == 1, err
    assert message in error_lines[0], err


def test_the_table_covers_every_subcommand():
    parser = cli.build_parser()
    subs = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    covered = {argv[0] for argv, _, _ in BAD_INPUTS if argv}
    # lm-eval hands everything to lm_eval (its own parser, exit 2); sweep has its own tests
    assert set(subs.choices) - covered <= {"lm-eval", "sweep"}
    assert len(BAD_INPUTS) >= 30


def test_lm_eval_refusing_its_arguments_returns_its_exit_code_in_process(capsys):
    pytest.importorskip("lm_eval")
    assert cli.main(["lm-eval", "--no-such-flag"]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_an_unexpected_error_is_one_line_with_where_it_was_raised(capsys):
    def broken(args):
        return {}["missing"]
    assert cli.guarded("demo", broken, None) == 1
    err = capsys.readouterr().err.strip()
    assert re.fullmatch(r"atome demo: error: unexpected KeyError at test_cli_errors\.py:\d+: 'missing'", err)


def test_version_names_the_package_version(capsys):
    import atome_core
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"atome {atome_core.__version__}"


def test_generate_streams_the_same_text_the_engine_returns(files, capsys):
    from atome_core import formats
    from atome_core.engine import Engine
    data, _ = formats.blob_of(files / "model.atmb", None)
    seen = []
    ids = Engine(data).generate("the ", 20, temperature=0.9, seed=3, on_token=seen.append)
    assert seen == ids
    assert cli.main(["generate", "--blob", str(files / "model.atmb"), "--prompt", "the ", "--max-new-tokens",
                     "20", "--temperature", "0.9", "--seed", "3"]) == 0
    assert capsys.readouterr().out == "the " + bytes(ids).decode("utf-8", errors="replace") + "\n"
    assert cli.main(["generate", "--blob", str(files / "model.atmb"), "--prompt", "the ", "--max-new-tokens",
                     "20", "--temperature", "0.9", "--seed", "3", "--ids"]) == 0
    assert capsys.readouterr().out == " ".join(map(str, ids)) + "\n"


def test_ctrl_c_during_generate_exits_130_quietly(files):
    # Started as a terminal starts it: when the tests run where SIGINT is ignored (a background job
    # of a script), the child would inherit the ignoring and never see the Ctrl-C this test sends.
    inherited = signal.getsignal(signal.SIGINT)
    if inherited == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
    try:
        proc = subprocess.Popen([sys.executable, "-m", "atome_core.cli", "generate", "--blob",
                                 str(files / "model.atmb"), "--prompt", "the ", "--max-new-tokens", "100000000"],
                                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    finally:
        signal.signal(signal.SIGINT, inherited)
    first = proc.stdout.read(64)       # tokens arrive while it runs: it streams
    assert first.startswith(b"the ") and len(first) == 64
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert err.strip() == b""


def test_export_writes_a_model_card_that_inspect_shows(files, capsys):
    card = json.loads((files / "model.atmb.card.json").read_text())
    summary = json.loads((files / "model.safetensors.json").read_text())
    text_sha = hashlib.sha256((files / "text.txt").read_bytes()).hexdigest()   # ASCII: bytes == tokens
    assert card["corpus"] == "file" and card["corpus_sha256"] == text_sha
    assert card["val_bpb"] == summary["val_bpb"] and card["parameters"] == summary["params"]
    assert card["recipe"] == "cpu" and card["family"] == "routed" and card["corpus_licence"]
    assert card["blob_sha256"] == hashlib.sha256((files / "model.atmb").read_bytes()).hexdigest()
    assert cli.main(["inspect", str(files / "model.atmb")]) == 0
    out = capsys.readouterr().out
    assert re.search(rf"^card\s+corpus_sha256\s+{text_sha}$", out, re.MULTILINE)
    assert "describes another file" not in out
    assert cli.main(["inspect", str(files / "model.safetensors")]) == 0
    assert re.search(rf"^card\s+val_bpb\s+{summary['val_bpb']}$", capsys.readouterr().out, re.MULTILINE)


def test_atto_train_and_export_write_what_the_model_card_needs(tmp_path, capsys):
    from atome_core import data
    model, exported = tmp_path / "atto.safetensors", tmp_path / "atto.json"
    assert cli.main(["atto", "train", "--budget", "256", "--steps", "4", "--search-steps", "2",
                     "--max-chars", "60000", "--out", str(model)]) == 0
    assert cli.main(["atto", "export", str(model), "--out", str(exported)]) == 0
    card = json.loads((tmp_path / "atto.json.card.json").read_text())
    text = data.load_corpus("shakespeare").text[:60000]
    assert card["family"] == "atto" and card["parameters"] == 256 and card["config"]["vocab_size"] == 64
    assert card["corpus"] == "shakespeare" and card["corpus_sha256"] == hashlib.sha256(text.encode()).hexdigest()
    assert card["corpus_licence"] and card["recipe"].startswith("atto: 4 steps")
    assert card["tokens"] == 4 * 32 * 128 and card["val_bits_per_char"] > 0
    assert card["blob_sha256"] == hashlib.sha256(exported.read_bytes()).hexdigest()
    assert card["source_sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
    assert cli.main(["inspect", str(model)]) == 0
    assert re.search(r"^card\s+corpus\s+shakespeare$", capsys.readouterr().out, re.MULTILINE)


def test_a_card_beside_another_blob_is_flagged(files, tmp_path, capsys):
    other = tmp_path / "other.atmb"
    assert cli.main(["export", str(files / "model.safetensors"), "-o", str(other), "--codec", "rans"]) == 0
    (tmp_path / "other.atmb.card.json").write_bytes((files / "model.atmb.card.json").read_bytes())
    capsys.readouterr()
    assert cli.main(["inspect", str(other)]) == 0
    assert "describes another file" in capsys.readouterr().out


def test_exported_and_trained_files_are_readable_by_everyone(files):
    for name in ("model.atmb", "model.atmb.card.json", "model.safetensors", "model.safetensors.json"):
        assert (files / name).stat().st_mode & 0o777 == 0o644, name


def test_inspect_names_both_bounds_for_an_entropy_coded_blob(files, tmp_path, capsys):
    assert cli.main(["export", str(files / "model.safetensors"), "-o", str(tmp_path / "r.atmb"),
                     "--codec", "rans"]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("trits"))
    assert "floor" not in line and "for a fixed-length code" in line and "for an entropy code" in line


def test_every_atome_variable_the_code_reads_is_in_the_reference():
    found = set()
    for path in (ROOT / "atome_core").rglob("*.py"):
        found |= set(re.findall(r"[\"'](ATOME_[A-Z0-9_]+)[\"']", path.read_text()))
    assert found == set(cli.ENVIRONMENT)
    reference = cli.command_reference()
    for name in found:
        assert f"`{name}`" in reference
    for name in ("export", "inspect", "generate", "qemu", "train", "atto", "corpus", "lm-eval"):
        assert f"## atome {name}" in reference
    assert "### atome atto train" in reference and "### atome corpus show" in reference
