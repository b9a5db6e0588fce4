"""The files of the page "Run the engine in your browser" (book/engine_demo.md).

`write_site(folder, models)` writes what the page loads from the book's _static/engine/:

  atome.wasm        the C engine for wasm32 (`make -C c_engine wasm`, the same sources as
                    the native library), and atome_engine.js, its JavaScript side
  <name>.bin        each model's blob
  models.json       the page's list: per model name, file, kind (ATMB or ATOME01), bytes,
                    num_params, trained_on, about and the arithmetic path to start on; the
                    attention window (WINDOW); the ATOME01 presets (an ATOME01 blob has no
                    header: the page takes the preset whose size is the blob's)
  <file>.js         beside every file the page loads: the bytes as base64 handed to
                    AtomeEngine.fileLoaded, for a book opened from file:// (no fetch there)

`book_models(profile)` is what this build has: chapter 4's published routed models
(safetensors, written as ATMB blobs with the default codec, as `atome export` does) and
the kit's published 944K blob when ../shared/interop is there (copied into the built
site only; it is never part of the repository).
"""
import base64
import json
import shutil
import subprocess
from pathlib import Path

from .. import formats
from ..chapters import ab_60k
from ..engine.binding import ENGINE_DIR, EngineBuildError
from ..files import write_atomic
from ..paths import shared_interop_dir
from .results import read_chapter_file

PAGE = "book/engine_demo"   # its _toc.yml entry
WINDOW = 128   # attention window the page runs at (the kit's context)
JS_SOURCE = ENGINE_DIR / "wasm" / "atome_engine.js"
PUBLISHED_944K = "atome_944k.bin"


def build_wasm() -> Path:
    """c_engine/build/atome.wasm (make is a no-op when it is up to date)."""
    target = ENGINE_DIR / "build" / "atome.wasm"
    if shutil.which("make") is None or shutil.which("clang") is None:
        raise EngineBuildError("the wasm build needs make and clang (and wasm-ld: Debian lld-14); run `make sysdeps`")
    run = subprocess.run(["make", "-s", "-C", str(ENGINE_DIR), "wasm"], check=False, capture_output=True, text=True)
    if run.returncode != 0 or not target.is_file():
        raise EngineBuildError(f"building atome.wasm failed (Debian: lld-14 gives wasm-ld):\n{run.stdout}{run.stderr}")
    return target


def script_fallback(file_name: str, data: bytes) -> str:
    return f"AtomeEngine.fileLoaded({json.dumps(file_name)}, \"{base64.b64encode(data).decode('ascii')}\");\n"


def _write_with_fallback(folder: Path, name: str, data: bytes) -> list[Path]:
    return [write_atomic(folder / name, data),
            write_atomic(folder / f"{name}.js", script_fallback(name, data).encode("ascii"))]


def write_site(folder, models: list[dict]) -> list[Path]:
    """Write the page's files into `folder`; the paths written. `models`: dicts with name,
    blob (bytes), trained_on, about and optionally path ("f32" or "i8")."""
    folder = Path(folder)
    written = _write_with_fallback(folder, "atome.wasm", build_wasm().read_bytes())
    written.append(write_atomic(folder / "atome_engine.js", JS_SOURCE.read_bytes()))
    entries = []
    for m in models:
        blob = m["blob"]
        kind = "ATOME01" if blob[:7] == formats.ATOME01_MAGIC else "ATMB"
        cfg = formats.read_blob(blob)[0] if kind == "ATMB" else formats.legacy_config(blob)
        file_name = f"{m['name']}.bin"
        written += _write_with_fallback(folder, file_name, blob)
        entries.append({"name": m["name"], "file": file_name, "kind": kind, "bytes": len(blob),
                        "num_params": cfg.n_params, "trained_on": m.get("trained_on", ""),
                        "about": m.get("about", ""), "path": m.get("path", "f32")})
    manifest = {"window": WINDOW, "models": entries,
                "atome01_presets": [vars(c) | {"name": n} for n, c in formats.PRESETS.items()]}
    written += _write_with_fallback(folder, "models.json", json.dumps(manifest, indent=1).encode("ascii"))
    return written


def atmb_from_model_file(path) -> bytes:
    """A routed model file as an ATMB blob (what `atome export FILE -o OUT.bin` writes)."""
    cfg, tensors, _ = formats.load_routed_tensors(path)
    return formats.write_blob(cfg, tensors)


# name -> what the page says about chapter 4's published models
CHAPTER_4_MODELS = {
    "routed-60k-tinystories-seed0": ("TinyStories, with the book's recipe (chapter 4)",
                                     "Chapter 4's routed 60K model.", "f32"),
    "routed-60k-act8-shakespeare-seed0": ("Tiny Shakespeare, with 8-bit activations (chapter 4, for chapter 7)",
                                          ("The model chapter 7's firmware runs; pick 8-bit integer "
                                           "arithmetic to run it as the microcontroller does."), "i8"),
}


def book_models(profile: str) -> list[dict]:
    """The blobs this build can show: chapter 4's models when it has published them, and
    the published 944K when ../shared/interop is present."""
    models = []
    for name, (trained_on, about, path) in CHAPTER_4_MODELS.items():
        found = read_chapter_file("04_ab_60k", profile, ab_60k.PUBLISHED_MODELS[name])
        if found is not None:
            models.append({"name": name, "blob": atmb_from_model_file(found), "trained_on": trained_on,
                           "about": about, "path": path})
    interop = shared_interop_dir()
    if interop is not None and (interop / PUBLISHED_944K).is_file():
        models.append({"name": "atome-944k-published", "blob": (interop / PUBLISHED_944K).read_bytes(),
                       "trained_on": "TinyStories (the Atome kit's published model)",
                       "about": "The kit's published blob, as it was released (ATOME01: no header, no checksum).",
                       "path": "f32"})
    return models
