"""The C engine (c_engine/) from Python, and its reference in NumPy.

Two halves:

- `Engine`: a ctypes binding of c_engine/libatome.so, built on demand with the
  system's C compiler (`make -C c_engine`). Python allocates the buffers the engine
  asks for (model view, decode arena, state, scratch) and hands them over: the engine
  itself never allocates.
- `Reference`: the same arithmetic in NumPy float32 (and int32 for the 8-bit path),
  operation for operation in the engine's order, with the engine's own exp / tanh /
  rsqrt. The two agree bit for bit on every logit of every step (tests/test_engine.py);
  the reference's data structures are independent (a list of past keys instead of a
  ring), so a bug in the ring would show as a mismatch.

Context semantics, shared by both: the convolution window and the SSM state stream over
the whole history; attention sees the last `window` tokens (the current one included),
and keeps the top_k best-scoring of those (ties to the earlier token). While fewer than
`window` tokens have been seen this is the model's full causal attention.

Reductions (dot products, LayerNorm sums) use 8 lanes: element i into lane i % 8, each
lane summed in order from +0, then ((l0+l1)+(l2+l3))+((l4+l5)+(l6+l7)).
"""

import ctypes
import os
import shutil
import subprocess
import threading
from pathlib import Path

import numpy as np

from .. import formats
from ..paths import REPO_ROOT, beside_package, cache_dir

ENGINE_DIR = beside_package("c_engine")
PATHS = {"f32": 0, "i8": 1}
DEFAULT_WINDOW = 128
f32 = np.float32

# -- status codes (c_engine/atome.h) -> the Python reader's error classes -------------

STATUS_NAMES = ["OK", "BAD_MAGIC", "UNSUPPORTED_VERSION", "TRUNCATED", "TRAILING_BYTES", "CHECKSUM",
                "BAD_HEADER", "SECTION_BOUNDS", "SECTION_OVERLAP", "CONFIG_MISMATCH", "LEGACY_SIZE",
                "CORRUPT_SECTION", "CONFIG_LIMITS", "ARENA_TOO_SMALL", "BUFFER_TOO_SMALL", "MISALIGNED",
                "BAD_ARGUMENT", "BAD_TOKEN", "CODEC_NOT_BUILT"]
STATUS_ERRORS = {
    "BAD_MAGIC": formats.BadMagicError, "UNSUPPORTED_VERSION": formats.UnsupportedVersionError,
    "TRUNCATED": formats.TruncatedBlobError, "TRAILING_BYTES": formats.TrailingBytesError,
    "CHECKSUM": formats.ChecksumError, "BAD_HEADER": formats.BadHeaderError,
    "SECTION_BOUNDS": formats.SectionBoundsError, "SECTION_OVERLAP": formats.SectionOverlapError,
    "CONFIG_MISMATCH": formats.ConfigMismatchError, "LEGACY_SIZE": formats.LegacySizeError,
    "CORRUPT_SECTION": formats.CorruptSectionError,
}


class EngineError(ValueError):
    """The C engine refused a call (bad argument, token, buffer)."""


class EngineBuildError(RuntimeError):
    """The C library could not be built (no compiler, or a compile error)."""


def status_name(code: int) -> str:
    return STATUS_NAMES[code] if 0 <= code < len(STATUS_NAMES) else f"UNKNOWN({code})"


def error_for(code: int, what: str) -> Exception:
    name = status_name(code)
    return STATUS_ERRORS.get(name, EngineError)(f"{what}: C engine says {name}")


# -- building and loading the library ---------------------------------------------------

# release: the engine; sanitize: the same under ASan/UBSan; minimal: built with ATOME_MINIMAL
# (the firmware's small engine: the i8 path and 2-bit trit sections only)
LIBRARIES = {"release": "libatome.so", "sanitize": "libatome_san.so", "minimal": "libatome_min.so"}
_loaded: dict = {}
_lock = threading.Lock()


def build_library(variant: str = "release") -> Path:
    """Build c_engine/build/<lib> with make (a no-op when up to date); its path."""
    if variant not in LIBRARIES:
        raise ValueError(f"variant must be one of {list(LIBRARIES)}, got {variant!r}")
    # a checkout builds in c_engine/build; an installed copy of the sources in the user's cache
    build = ENGINE_DIR / "build" if ENGINE_DIR == REPO_ROOT / "c_engine" else cache_dir() / "c_engine-build"
    target = build / LIBRARIES[variant]
    if not (ENGINE_DIR / "Makefile").is_file():
        raise EngineBuildError(f"the C engine's sources are not at {ENGINE_DIR}: install from a checkout "
                               "(pip install . or -e .) or set ATOME_ENGINE_LIB to a built libatome.so")
    cc = os.environ.get("CC", "cc")
    if shutil.which(cc) is None:
        raise EngineBuildError(f"no C compiler: {cc!r} is not on PATH. Install one (Debian: "
                               "apt-get install --no-install-recommends gcc make) or set CC")
    if shutil.which("make") is None:
        raise EngineBuildError("`make` is not on PATH (Debian: apt-get install --no-install-recommends make)")
    run = subprocess.run(["make", "-s", "-C", str(ENGINE_DIR), f"BUILD={build}", str(target)], check=False,
                         capture_output=True, text=True)
    if run.returncode != 0 or not target.is_file():
        raise EngineBuildError(f"building {target.name} failed:\n{run.stdout}{run.stderr}")
    return target


def _declare(lib):
    P, S, U32, I = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint32, ctypes.c_int
    F, U64P = ctypes.c_float, ctypes.POINTER(ctypes.c_uint64)
    sig = {
        "atome_check_blob": (I, [P, S, P, ctypes.POINTER(S)]),
        "atome_load_blob": (I, [P, P, S, P, S]),
        "atome01_size": (S, [P]),
        "atome_load_atome01": (I, [P, P, S, P]),
        "atome_state_bytes": (S, [P, U32, I]),
        "atome_scratch_bytes": (S, [P, U32, I]),
        "atome_state_init": (I, [P, P, U32, I, P, S, P, S]),
        "atome_reset": (None, [P]),
        "atome_step": (I, [P, U32, P]),
        "atome_forward": (I, [P, P, S, P]),
        "atome_run": (I, [P, P, S, P]),
        "atome_argmax": (U32, [P, U32]),
        "atome_sample": (U32, [P, U32, F, U64P]),
        "atome_exp": (F, [F]),
        "atome_tanh": (F, [F]),
        "atome_rsqrt": (F, [F]),
        "atome_crc32": (U32, [P, S]),
        "atome_sizeof_model": (S, []),
        "atome_sizeof_state": (S, []),
        "atome_status_name": (ctypes.c_char_p, [I]),
    }
    for name, (res, args) in sig.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = res, args
    return lib


def load_library(variant: str = "release"):
    """The engine as a ctypes CDLL. $ATOME_ENGINE_LIB names a prebuilt library instead
    of the release build (the sanitizer run uses it)."""
    with _lock:
        if variant not in _loaded:
            path = (variant == "release" and os.environ.get("ATOME_ENGINE_LIB")) or build_library(variant)
            _loaded[variant] = _declare(ctypes.CDLL(str(path)))
        return _loaded[variant]


class Config(ctypes.Structure):
    _fields_ = [(k, ctypes.c_uint32) for k in ("vocab", "d_model", "n_layers", "d_head", "top_k", "kernel")]

    @classmethod
    def of(cls, cfg):
        cfg = formats.as_config(cfg)
        return cls(cfg.vocab, cfg.d_model, cfg.n_layers, cfg.d_head, cfg.top_k, cfg.kernel)

    def as_blob_config(self):
        return formats.RoutedBlobConfig(**{k: getattr(self, k) for k, _ in self._fields_})


def _buffer(nbytes: int) -> np.ndarray:
    """Zeroed memory that Python owns and the engine writes: exactly nbytes from malloc
    (NumPy), so that under AddressSanitizer one byte too far is caught; 16-byte aligned."""
    return np.zeros(max(1, nbytes), np.uint8)


def _ptr(buf: np.ndarray) -> int:
    return buf.ctypes.data


def blob_kind(data: bytes) -> str:
    if data[:4] == formats.MAGIC:
        return "ATMB"
    if data[:7] == formats.ATOME01_MAGIC:
        return "ATOME01"
    raise formats.BadMagicError(f"neither an ATMB blob nor ATOME01 (starts with {bytes(data[:8])!r})")


def atome01_config(data: bytes, config=None) -> formats.RoutedBlobConfig:
    """The given config, else the preset whose ATOME01 size is the blob's."""
    return formats.legacy_config(data, config)


class Model:
    """A blob loaded into the C engine: the model view (and decode arena) over a copy of the bytes."""

    def __init__(self, data: bytes, config=None, lib=None):
        self.lib = lib or load_library()
        data = bytes(data)
        self.kind = blob_kind(data)
        self._blob = np.frombuffer(data, np.uint8).copy() if data else _buffer(1)
        self._view = _buffer(self.lib.atome_sizeof_model())
        self.arena_bytes = 0
        if self.kind == "ATMB":
            cfg, arena = Config(), ctypes.c_size_t(0)
            status = self.lib.atome_check_blob(_ptr(self._blob), len(data), ctypes.byref(cfg), ctypes.byref(arena))
            if status:
                raise error_for(status, "ATMB blob")
            self.arena_bytes = arena.value
            self._arena = _buffer(self.arena_bytes)
            status = self.lib.atome_load_blob(_ptr(self._view), _ptr(self._blob), len(data),
                                              _ptr(self._arena), self.arena_bytes)
            self.config = cfg.as_blob_config()
        else:
            self.config = atome01_config(data, config)
            cfg = Config.of(self.config)
            status = self.lib.atome_load_atome01(_ptr(self._view), _ptr(self._blob), len(data), ctypes.byref(cfg))
        if status:
            raise error_for(status, f"{self.kind} blob")
        self.blob_bytes = len(data)

    def state_bytes(self, window: int, path: str = "f32") -> int:
        return self.lib.atome_state_bytes(ctypes.byref(Config.of(self.config)), window, PATHS[path])

    def scratch_bytes(self, window: int, path: str = "f32") -> int:
        return self.lib.atome_scratch_bytes(ctypes.byref(Config.of(self.config)), window, PATHS[path])


class Engine:
    """Incremental decode in C: `step(token) -> logits`, state kept between calls."""

    def __init__(self, model: Model | bytes, window: int = DEFAULT_WINDOW, path: str = "f32", config=None):
        self.model = model if isinstance(model, Model) else Model(model, config)
        self.lib, self.config = self.model.lib, self.model.config
        if path not in PATHS:
            raise ValueError(f"path must be one of {list(PATHS)}, got {path!r}")
        if not isinstance(window, (int, np.integer)) or window < 1:
            raise ValueError(f"window must be a positive integer, got {window!r}")
        self.window, self.path = int(window), path
        self.state_bytes = self.model.state_bytes(self.window, path)
        self.scratch_bytes = self.model.scratch_bytes(self.window, path)
        self._state_struct = _buffer(self.lib.atome_sizeof_state())
        self._state = _buffer(self.state_bytes)
        self._scratch = _buffer(self.scratch_bytes)
        self._logits = np.zeros(self.config.vocab, np.float32)
        self._s, self._out = _ptr(self._state_struct), _ptr(self._logits)   # addresses, looked up once
        status = self.lib.atome_state_init(self._s, _ptr(self.model._view), self.window, PATHS[path],
                                           _ptr(self._state), self.state_bytes, _ptr(self._scratch),
                                           self.scratch_bytes)
        if status:
            raise error_for(status, "state init")

    def reset(self):
        self.lib.atome_reset(self._s)

    def _check(self, status, what):
        if status:
            raise error_for(status, what)

    def step(self, token: int) -> np.ndarray:
        """The logits (float32, vocab) for the token after `token`."""
        self._check(self.lib.atome_step(self._s, int(token), self._out), f"step({token})")
        return self._logits.copy()

    def prefill(self, tokens) -> np.ndarray:
        """Run several tokens from the current state in one call; the last logits."""
        ids = np.ascontiguousarray(tokens, dtype=np.uint32)
        self._check(self.lib.atome_run(self._s, ids.ctypes.data, ids.size, self._out), "prefill")
        return self._logits.copy()

    def forward(self, tokens) -> np.ndarray:
        """Full-prefix recompute: reset, run every token, the last logits."""
        ids = np.ascontiguousarray(tokens, dtype=np.uint32)
        self._check(self.lib.atome_forward(self._s, ids.ctypes.data, ids.size, self._out), "forward")
        return self._logits.copy()

    def run(self, tokens) -> np.ndarray:
        """Logits after every token (T, vocab), from the current state."""
        return np.stack([self.step(t) for t in tokens])

    def generate(self, prompt, max_new_tokens: int, temperature: float = 0.0, seed: int = 0,
                 max_total: int | None = None, on_token=None) -> list[int]:
        """Greedy (temperature 0) or sampled continuation, all in C: the new token ids.

        max_total caps prompt + generated tokens (the kit stopped at 128); on_token(id), when
        given, sees each token as it is chosen (`atome generate` streams with it)."""
        ids = check_prompt(prompt, self.config.vocab)
        if max_total is not None:
            max_new_tokens = max(0, min(max_new_tokens, max_total - len(ids)))
        self.reset()
        self.prefill(ids)
        rng = ctypes.c_uint64(seed & (2 ** 64 - 1))
        out = []
        for _ in range(max_new_tokens):
            nxt = self.lib.atome_sample(self._out, self.config.vocab, temperature, ctypes.byref(rng))
            out.append(int(nxt))
            if on_token is not None:
                on_token(int(nxt))
            self._check(self.lib.atome_step(self._s, nxt, self._out), "generate")
        return out


def check_prompt(prompt, vocab: int) -> list[int]:
    """Token ids from bytes, a str (UTF-8) or a sequence of ints; a clear error otherwise."""
    if isinstance(prompt, str):
        prompt = prompt.encode("utf-8")
    ids = [int(t) for t in prompt]
    if not ids:
        raise ValueError("the prompt is empty: give at least one token")
    bad = [t for t in ids if not 0 <= t < vocab]
    if bad:
        raise ValueError(f"token ids must be in 0..{vocab - 1}; got {bad[:5]}")
    return ids
