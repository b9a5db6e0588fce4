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
import dataclasses
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from . import formats
from .paths import PACKAGE_DIR

ENGINE_DIR = PACKAGE_DIR.parent / "c_engine"
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
    target = ENGINE_DIR / "build" / LIBRARIES[variant]
    cc = os.environ.get("CC", "cc")
    if shutil.which(cc) is None:
        raise EngineBuildError(f"no C compiler: {cc!r} is not on PATH. Install one (Debian: "
                               "apt-get install --no-install-recommends gcc make) or set CC")
    if shutil.which("make") is None:
        raise EngineBuildError("`make` is not on PATH (Debian: apt-get install --no-install-recommends make)")
    run = subprocess.run(["make", "-s", "-C", str(ENGINE_DIR), f"build/{LIBRARIES[variant]}"],
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
    if config is not None:
        return formats.as_config(config)
    for cfg in formats.PRESETS.values():
        if formats.legacy_size(cfg) == len(data):
            return cfg
    raise formats.LegacySizeError(f"an ATOME01 blob of {len(data)} bytes matches no preset; give its config")


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
                 max_total: int | None = None) -> list[int]:
        """Greedy (temperature 0) or sampled continuation, all in C: the new token ids.

        max_total caps prompt + generated tokens (the kit stopped at 128)."""
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


# -- the reference arithmetic in NumPy -----------------------------------------------------
# Every constant is written with the same decimal digits as in c_engine/atome.c.

EXP_LOG2E, EXP_LN2_HI, EXP_LN2_LO = f32("1.44269502"), f32("0.693145751953125"), f32("1.428606765e-6")
EXP_TAYLOR = [f32(c) for c in ("1.0", "1.0", "0.5", "0.166666672", "0.0416666679", "0.00833333377",
                                "0.00138888892", "0.000198412701")]
TANH_POLY = [f32(c) for c in ("-0.333333313", "0.133332163", "-0.0539480969", "0.0217081271",
                               "-0.00819607731", "0.00216041808")]
ROUND_MAGIC = f32(12582912.0)
LN_EPS, Q_EPS = f32("1e-5"), f32("1e-5")


def _pow2(k: np.ndarray) -> np.ndarray:
    return ((np.clip(k, -126, 127).astype(np.int64) + 127) << 23).astype(np.uint32).view(np.float32)


def exp_ref(x) -> np.ndarray:
    """atome_exp: x = n ln2 + r, e^r by Taylor to degree 7, times 2^n."""
    x = np.asarray(x, np.float32)
    with np.errstate(all="ignore"):
        n = (x * EXP_LOG2E + ROUND_MAGIC) - ROUND_MAGIC
        r = (x - n * EXP_LN2_HI) - n * EXP_LN2_LO
        p = EXP_TAYLOR[7]
        for c in EXP_TAYLOR[6::-1]:
            p = c + r * p
        k = np.where(np.isfinite(n), n, 0).astype(np.int64)
        big = (p * _pow2(k - 1)) * f32(2.0)
        tiny = (p * _pow2(k + 64)) * f32("5.42101086e-20")
        out = np.where(k > 127, big, np.where(k < -126, tiny, p * _pow2(k)))
        out = np.where(x < f32(-104.0), f32(0.0), out)
        out = np.where(x > f32(88.8), f32(np.inf), out)
        return np.where(np.isnan(x), x, out).astype(np.float32)


def tanh_ref(x) -> np.ndarray:
    """atome_tanh: an odd polynomial below 0.625, else 1 - 2 / (e^{2|x|} + 1)."""
    x = np.asarray(x, np.float32)
    with np.errstate(all="ignore"):
        a = np.where(x < 0, -x, x)
        z = x * x
        poly = TANH_POLY[5]
        for c in TANH_POLY[4::-1]:
            poly = c + z * poly
        small = x + x * (z * poly)
        t = np.where(a > f32(9.5), f32(1.0), f32(1.0) - f32(2.0) / (exp_ref(f32(2.0) * a) + f32(1.0)))
        big = np.where(x < 0, -t, t)
        return np.where(a < f32(0.625), small, big).astype(np.float32)


def rsqrt_ref(x) -> np.ndarray:
    """atome_rsqrt: the bit-level first guess, two Newton steps and a correcting third."""
    x = np.asarray(x, np.float32)
    with np.errstate(all="ignore"):
        y = (np.uint32(0x5F3759DF) - (x.view(np.uint32) >> np.uint32(1))).astype(np.uint32).view(np.float32)
        half = f32(0.5) * x
        for _ in range(2):
            y = y * (f32(1.5) - half * y * y)
        return y + y * (f32(0.5) - (half * y) * y)


def lane_sum(a) -> np.ndarray:
    """Sum over the last axis in the engine's order: 8 lanes, each in order, then a tree."""
    a = np.asarray(a, np.float32)
    n = a.shape[-1]
    pad = -n % 8
    if pad or n == 0:
        a = np.concatenate([a, np.zeros(a.shape[:-1] + (pad or 8,), np.float32)], axis=-1)
    chunks = a.reshape(a.shape[:-1] + (-1, 8)).copy()
    chunks[..., 0, :] += f32(0.0)          # lanes start at +0 (turns -0 into +0, as C does)
    lanes = np.cumsum(chunks, axis=-2, dtype=np.float32)[..., -1, :]   # sequential per lane
    l = [lanes[..., j] for j in range(8)]
    return ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]))


def layer_norm_ref(x, w, b) -> np.ndarray:
    d = f32(x.shape[-1])
    mean = lane_sum(x) / d
    diff = x - mean
    var = lane_sum(diff * diff) / d
    rstd = rsqrt_ref(var + LN_EPS)
    return (diff * rstd) * w + b


# -- the i8 path: integers (c_engine/atome.c, "The i8 path") ---------------------------------
# Activations int64 arrays holding int32 values in Q16; every step below is an exact
# integer operation or a float32 operation on a scalar, in the engine's order.

Q, QP, QF = 16, 24, 8       # fractional bits: activations, parameters, value/conv factors
SAT = 2 ** 31 - 1
TWO_M16, TWO_M32, INV127 = f32(2.0 ** -16), f32(2.0 ** -32), f32(1.0) / f32(127.0)


def sat32(v):
    return np.clip(v, -SAT, SAT)


def shift_round(v, s: int):
    """round(v / 2^s), halves up (an arithmetic shift)."""
    return (v + (1 << (s - 1))) >> s


def int_to_f32(v) -> np.float32:
    """(float)v for an integer below 2^63: one correct rounding (int64 -> float32 cast)."""
    return np.array(v, np.int64).astype(np.float32)[()]


def fixed_ref(x, frac: int) -> np.ndarray:
    """round(x * 2^frac), halves away from zero, saturated to +-(2^31 - 1); NaN -> 0."""
    x = np.asarray(x, np.float32)
    v = x.astype(np.float64) * 2.0 ** frac            # exact
    with np.errstate(invalid="ignore"):
        r = np.sign(v) * np.floor(np.abs(v) + 0.5)    # exact: |v| + 0.5 fits a double here
        return np.where(np.isnan(x), 0, np.clip(r, -SAT, SAT)).astype(np.int64)


def multiplier_ref(f) -> tuple[int, int]:
    """A float32 as m * 2^-shift from its bits (0 for zero, subnormals, inf and NaN)."""
    u = int(np.float32(f).view(np.uint32))
    e = (u >> 23) & 255
    if e in (0, 255):
        return 0, 0
    m = (u & 0x7FFFFF) | 0x800000
    return (-m if u >> 31 else m), 150 - e


def scale_by_ref(a, f) -> np.ndarray:
    """round(a * f), halves up, saturated (the engine's scale_by)."""
    m, shift = multiplier_ref(f)
    p = np.asarray(a, np.int64) * m
    if shift >= 56:
        return np.zeros_like(p)
    if shift > 0:
        return sat32(shift_round(p, shift))
    if shift <= -8:
        return np.sign(p) * SAT
    return sat32(p * (1 << -shift))


def dequant_ref(scale, amax: int) -> np.float32:
    """(scale * (float)amax) * (1 / 127): from 8-bit codes to Q16 units, times scale."""
    return f32(f32(f32(scale) * f32(amax)) * INV127)


def quantize_q_ref(x) -> tuple[np.ndarray, int]:
    """(codes in -127..127, amax): round(127 x / amax) through one 32-bit division."""
    x = np.asarray(x, np.int64)
    amax = int(np.max(np.abs(x)))
    if amax == 0:
        return np.zeros_like(x), 0
    t = 0
    while (amax >> t) >= 1 << 16:
        t += 1
    r = (127 << 23) // (amax >> t)
    return ((x >> t) * r + (1 << 22)) >> 23, amax


def layer_norm_q_ref(x, w, b) -> np.ndarray:
    """LayerNorm in Q16: exact integer statistics of x >> t, one float 1/std."""
    x = np.asarray(x, np.int64)
    d = x.size
    amax, t = int(np.max(np.abs(x))), 0
    while (amax >> t) >= 1 << 14:
        t += 1
    y = x >> t
    total, squares = int(y.sum()), int((y * y).sum())
    spread = d * squares - total * total
    var = f32(f32(f32(int_to_f32(spread) / f32(d)) / f32(d)) * _pow2(np.int64(2 * t - 2 * Q)))
    g = f32(f32(rsqrt_ref(f32(var + LN_EPS)) * _pow2(np.int64(t))) / f32(d))
    n = scale_by_ref(d * y - total, g)
    return sat32(shift_round(n * fixed_ref(w, QP), QP) + fixed_ref(b, Q))


def softmax3_ref(g) -> np.ndarray:
    """The router's softmax over three pathways (the engine's softmax3)."""
    top = g[0]
    if g[1] > top:
        top = g[1]
    if g[2] > top:
        top = g[2]
    e = exp_ref(g - top)
    return e / ((e[0] + e[1]) + e[2])


class Reference:
    """The engine's arithmetic in NumPy: same inputs, same float32 bits out (f32 path),
    same integers and float32 bits (i8 path)."""

    def __init__(self, config, tensors: dict, window: int = DEFAULT_WINDOW, path: str = "f32"):
        self.cfg = formats.as_config(config)
        if path not in PATHS:
            raise ValueError(f"path must be one of {list(PATHS)}, got {path!r}")
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.window, self.path = int(window), path
        formats.check_tensors(tensors, self.cfg)
        self.t = {k: np.asarray(v) for k, v in tensors.items()}
        # trits as float32 (the f32 path multiplies by them) and as int32 (the i8 path)
        self.wf = {k: np.asarray(v, np.float32) for k, v in self.t.items() if k in formats.trit_weight_names(self.cfg)}
        self.wi = {k: np.asarray(v, np.int32) for k, v in self.wf.items()}
        self.scale = {k: f32(self.t[formats.scale_key(k)]) for k in self.wf}
        # per-model constants, computed once as atome_state_init does: the SSM decay
        self.decay = [tanh_ref(self.t[f"blocks.{l}.state.a_raw"]) for l in range(self.cfg.n_layers)]
        self.decay_q = [fixed_ref(a, QP) for a in self.decay]
        self.reset()

    @classmethod
    def from_blob(cls, data: bytes, config=None, **kwargs):
        data = bytes(data)
        if blob_kind(data) == "ATMB":
            cfg, tensors = formats.read_blob(data)
        else:
            cfg = atome01_config(data, config)
            tensors = formats.read_atome01(data, cfg)
        return cls(cfg, tensors, **kwargs)

    def reset(self):
        c = self.cfg
        self.keys = [[] for _ in range(c.n_layers)]     # every past key, by time
        self.values = [[] for _ in range(c.n_layers)]
        if self.path == "f32":
            self.conv = [np.zeros((c.kernel - 1, c.d_model), np.float32) for _ in range(c.n_layers)]
            self.ssm = [np.zeros(c.d_model, np.float32) for _ in range(c.n_layers)]
        else:   # 8-bit conv inputs with their amax; the SSM state in Q16
            zero = (np.zeros(c.d_model, np.int64), 0)
            self.conv = [[zero] * (c.kernel - 1) for _ in range(c.n_layers)]
            self.ssm = [np.zeros(c.d_model, np.int64) for _ in range(c.n_layers)]

    def step(self, token: int) -> np.ndarray:
        if not 0 <= token < self.cfg.vocab:
            raise ValueError(f"token {token} outside 0..{self.cfg.vocab - 1}")
        return self._step_f32(token) if self.path == "f32" else self._step_i8(token)

    def run(self, tokens) -> np.ndarray:
        return np.stack([self.step(int(t)) for t in tokens])

    # -- the f32 path -----------------------------------------------------------------------

    def _matvec(self, name, x):
        return lane_sum(self.wf[name] * x[None, :]) * self.scale[name]

    def _attention(self, layer, q):
        c = self.cfg
        keys, values = np.stack(self.keys[layer][-self.window:]), np.stack(self.values[layer][-self.window:])
        scores = lane_sum(keys * q[None, :]) * rsqrt_ref(f32(c.d_head))
        k = min(c.top_k, len(scores))
        order = np.argsort(-scores, kind="stable")[:k]   # descending, ties to the earlier token
        e = exp_ref(scores[order] - scores[order[0]])
        total = f32(0.0)
        for v in e:
            total = f32(total + v)
        out = np.zeros(c.d_model, np.float32)
        for j, i in enumerate(order):
            out = out + (e[j] / total) * values[i]
        return out

    def _step_f32(self, token: int) -> np.ndarray:
        c, p = self.cfg, lambda layer, name: f"blocks.{layer}.{name}"
        x = self.wf["embed.weight"][token] * self.scale["embed.weight"]
        for l in range(c.n_layers):
            h = layer_norm_ref(x, self.t[p(l, "norm.weight")], self.t[p(l, "norm.bias")])
            g = self._matvec(p(l, "router.proj.weight"), h)
            q = self._matvec(p(l, "sparse.Wq.weight"), h)
            self.keys[l].append(self._matvec(p(l, "sparse.Wk.weight"), h))
            self.values[l].append(self._matvec(p(l, "sparse.Wv.weight"), h))
            del self.keys[l][:-self.window], self.values[l][:-self.window]
            g = softmax3_ref(g)
            # local: taps oldest first (PyTorch order: the last tap is the current token)
            w = self.wf[p(l, "local.weight")][:, 0, :]
            taps = np.concatenate([self.conv[l], h[None]], axis=0)
            acc = np.zeros(c.d_model, np.float32)
            for j in range(c.kernel):
                acc = acc + w[:, j] * taps[j]
            local = acc * self.scale[p(l, "local.weight")]
            self.conv[l] = taps[1:]
            # state
            self.ssm[l] = self.decay[l] * self.ssm[l] + self.t[p(l, "state.b")] * h
            ssm_out = self.t[p(l, "state.c_out")] * self.ssm[l]
            attn = self._attention(l, q)
            x = ((x + g[0] * local) + g[1] * ssm_out) + g[2] * attn
        h = layer_norm_ref(x, self.t["final_norm.weight"], self.t["final_norm.bias"])
        return self._matvec("unembed.weight", h)

    # -- the i8 path --------------------------------------------------------------------------

    def _matvec_q(self, name, codes, amax):
        """Exact integer W q, then round(. * scale * amax / 127) into Q16."""
        return scale_by_ref(self.wi[name].astype(np.int64) @ codes, dequant_ref(self.scale[name], amax))

    def _attention_q(self, layer, q8, amax_q):
        c = self.cfg
        keys, values = self.keys[layer][-self.window:], self.values[layer][-self.window:]
        rank = np.array([int(k @ q8) * amax for k, amax in keys], np.int64)   # exact
        k = min(c.top_k, len(rank))
        order = np.argsort(-rank, kind="stable")[:k]
        unit = f32(f32(f32(f32(amax_q) / f32(16129.0)) * rsqrt_ref(f32(c.d_head))) * TWO_M32)
        e = [exp_ref(f32(int_to_f32(int(rank[i]) - int(rank[order[0]])) * unit)) for i in order]
        total = f32(0.0)
        for v in e:
            total = f32(total + v)
        inv_total = f32(f32(1.0) / total)
        acc = np.zeros(c.d_model, np.int64)
        for j, i in enumerate(order):
            codes, amax = values[i]
            acc = acc + fixed_ref(dequant_ref(f32(e[j] * inv_total), amax), QF) * codes
        return sat32(shift_round(acc, QF))

    def _step_i8(self, token: int) -> np.ndarray:
        c, p = self.cfg, lambda layer, name: f"blocks.{layer}.{name}"
        x = self.wi["embed.weight"][token].astype(np.int64) * fixed_ref(self.scale["embed.weight"], Q)
        for l in range(c.n_layers):
            h = layer_norm_q_ref(x, self.t[p(l, "norm.weight")], self.t[p(l, "norm.bias")])
            h8, amax = quantize_q_ref(h)
            router = self._matvec_q(p(l, "router.proj.weight"), h8, amax)
            gate = fixed_ref(softmax3_ref(router.astype(np.float32) * TWO_M16), Q)
            q8, amax_q = quantize_q_ref(self._matvec_q(p(l, "sparse.Wq.weight"), h8, amax))
            self.keys[l].append(quantize_q_ref(self._matvec_q(p(l, "sparse.Wk.weight"), h8, amax)))
            self.values[l].append(quantize_q_ref(self._matvec_q(p(l, "sparse.Wv.weight"), h8, amax)))
            del self.keys[l][:-self.window], self.values[l][:-self.window]
            # local: 8-bit taps oldest first, each with its factor scale * amax / 127 in Q8
            w = self.wi[p(l, "local.weight")][:, 0, :].astype(np.int64)
            taps = self.conv[l] + [(h8, amax)]
            acc = np.zeros(c.d_model, np.int64)
            for j, (codes, tap_amax) in enumerate(taps):
                acc = acc + (w[:, j] * codes) * fixed_ref(dequant_ref(self.scale[p(l, "local.weight")], tap_amax), QF)
            local = sat32(shift_round(acc, QF))
            self.conv[l] = taps[1:]
            # state, Q24 parameters
            s = self.decay_q[l] * self.ssm[l] + fixed_ref(self.t[p(l, "state.b")], QP) * h
            self.ssm[l] = sat32(shift_round(s, QP))
            ssm_out = sat32(shift_round(fixed_ref(self.t[p(l, "state.c_out")], QP) * self.ssm[l], QP))
            attn = self._attention_q(l, q8, amax_q)
            mix = gate[0] * local + gate[1] * ssm_out + gate[2] * attn
            x = sat32(x + shift_round(mix, Q))
        h = layer_norm_q_ref(x, self.t["final_norm.weight"], self.t["final_norm.bias"])
        h8, amax = quantize_q_ref(h)
        unit = f32(dequant_ref(self.scale["unembed.weight"], amax) * TWO_M16)
        return (self.wi["unembed.weight"].astype(np.int64) @ h8).astype(np.float32) * unit


# -- picking tokens, as the engine does ----------------------------------------------------

MASK64 = 2 ** 64 - 1


def splitmix64(state: int) -> tuple[int, int]:
    """(new state, output)."""
    state = (state + 0x9E3779B97F4A7C15) & MASK64
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return state, z ^ (z >> 31)


def sample_ref(logits: np.ndarray, temperature: float, rng: int) -> tuple[int, int]:
    """atome_sample: (token, new rng state)."""
    logits = np.asarray(logits, np.float32)
    best = int(np.argmax(logits))
    if not temperature > 0:
        return best, rng
    p = exp_ref((logits - logits[best]) / f32(temperature))
    acc = np.cumsum(p, dtype=np.float32)
    rng, z = splitmix64(rng)
    target = f32(f32(z >> 40) * f32("5.96046448e-8")) * acc[-1]
    hit = np.nonzero(target < acc)[0]
    if hit.size:
        return int(hit[0]), rng
    positive = np.nonzero(p > 0)[0]
    return (int(positive[-1]) if positive.size else best), rng


# -- comparing --------------------------------------------------------------------------------


def ulp_distance(a, b) -> np.ndarray:
    """|a - b| in units in the last place (0 iff the float32 bits are equal, +0 vs -0 aside)."""
    def ordered(x):
        i = np.asarray(x, np.float32).view(np.int32).astype(np.int64)
        return np.where(i < 0, -(i & 0x7FFFFFFF), i)
    return np.abs(ordered(a) - ordered(b))


def bits_equal(a, b) -> bool:
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    return a.shape == b.shape and np.array_equal(a.view(np.uint32), b.view(np.uint32))


def parity(data: bytes, tokens, window: int = DEFAULT_WINDOW, path: str = "f32", config=None,
           lib=None) -> dict:
    """Run the C engine and the reference over `tokens`; compare every logit's bits."""
    engine = Engine(Model(data, config, lib=lib), window=window, path=path)
    ref = Reference.from_blob(data, config, window=window, path=path)
    c_logits, r_logits = engine.run(tokens), ref.run(tokens)
    ulps = ulp_distance(c_logits, r_logits)
    return {"steps": len(tokens), "window": window, "path": path, "logits": int(c_logits.size),
            "bits_equal": bits_equal(c_logits, r_logits), "max_ulp": int(ulps.max()),
            "unequal": int((c_logits.view(np.uint32) != r_logits.view(np.uint32)).sum())}


# -- malformed blobs: every way chapter 3's reader refuses a file -------------------------------


def _with_crc(blob: bytes) -> bytes:
    """Recompute the trailing CRC so that a case reaches the checks behind it."""
    import zlib
    body = blob[:-4]
    return body + zlib.crc32(body).to_bytes(4, "little")


def _patch(blob: bytes, offset: int, fmt: str, *values) -> bytes:
    import struct
    b = bytearray(blob)
    struct.pack_into(fmt, b, offset, *values)
    return _with_crc(bytes(b))


def _entry(i: int) -> int:
    return formats.HEADER.size + formats.ENTRY.size * i


def _table(blob: bytes) -> list:
    n = int.from_bytes(blob[24:26], "little")
    return [formats.ENTRY.unpack_from(blob, _entry(i)) for i in range(n)]


def _huge_rans_blob() -> bytes:
    """A header claiming 65535 x 65535 trits (4 GiB decoded) in tiny rANS sections."""
    import struct
    huge = formats.RoutedBlobConfig(vocab=65535, d_model=65535, n_layers=1, d_head=1, top_k=1, kernel=1)
    n = len(formats.SECTIONS)
    table_end = _entry(n)
    out = bytearray(table_end + 64 * n + 4)
    struct.pack_into("<4sHHIHHHHHHHH", out, 0, formats.MAGIC, 1, 1, len(out), huge.vocab, huge.d_model,
                     huge.n_layers, huge.d_head, huge.top_k, huge.kernel, n, 0)
    for i, spec in enumerate(formats.SECTIONS):
        shape = spec.shape(huge)
        dtype, codec = (formats.DTYPE_TRIT, 4) if spec.kind == "trit" else (formats.DTYPE_F32, 0)
        formats.ENTRY.pack_into(out, _entry(i), spec.id, dtype, codec, len(shape),
                                *(list(shape) + [0] * (4 - len(shape))), table_end + 64 * i, 64)
    return _with_crc(bytes(out))


def malformed_cases(cfg=None, seed: int = 0) -> list[tuple[str, bytes, object]]:
    """[(what is wrong, bytes, config for ATOME01 or None)]: the malformed files of
    tests/test_formats.py, plus one per codec, built from a valid random model."""
    cfg = formats.as_config(cfg or FUZZ_CONFIGS[0])
    t = random_tensors(cfg, seed)
    blob = formats.write_blob(cfg, t)                     # dense, the default codec
    table = _table(blob)
    cases = [("magic XTMB", b"XTMB" + blob[4:]), ("ATOME01 bytes read as ATMB", b"ATOME01" + bytes(100)),
             ("version 2", _patch(blob, 4, "<H", 2))]
    cases += [(f"truncated to {len(blob[:k])} bytes", blob[:k]) for k in (0, 2, 5, 20, 31, -1, -4)]
    flipped = bytearray(blob)
    flipped[len(blob) // 2] ^= 0x10
    e3, e0 = _entry(3), table[0]
    cases += [
        ("one trailing byte", blob + b"\0"),
        ("one bit flipped (CRC)", bytes(flipped)),
        ("section offset at the end of the file", _patch(blob, e3 + 12, "<I", len(blob))),
        ("section length 2^32 - 1", _patch(blob, e3 + 16, "<I", 2 ** 32 - 1)),
        ("section offset not 4-aligned", _patch(blob, e3 + 12, "<I", table[3][-2] + 2)),
        ("65535 sections in the table", _patch(blob, 24, "<H", 65535)),
        ("section over the header", _patch(blob, e3 + 12, "<I", 0)),
        ("two sections at one offset", _patch(blob, _entry(1) + 12, "<I", e0[-2])),
        ("header d_model + 1", _patch(blob, 14, "<H", cfg.d_model + 1)),
        ("section id twice", _patch(blob, _entry(1), "<B", e0[0])),
        ("unknown section id 77", _patch(blob, _entry(1), "<B", 77)),
        ("a section missing", _patch(blob, 24, "<H", len(table) - 1)),
        ("float section typed as trits", _patch(blob, _entry(1) + 1, "<BB", formats.DTYPE_TRIT, 3)),
        ("architecture 9", _patch(blob, 6, "<H", 9)),
        ("reserved field 1", _patch(blob, 26, "<H", 1)),
        ("n_layers 0", _patch(blob, 16, "<H", 0)),
        ("dtype 9", _patch(blob, _entry(0) + 1, "<B", 9)),
        ("trit section with codec 0", _patch(blob, _entry(0) + 2, "<B", 0)),
        ("dense section one byte short", _patch(blob, _entry(0) + 16, "<I", e0[-1] - 1)),
    ]
    n = cfg.vocab * cfg.d_model
    ones = np.packbits(np.ones(formats.packing.DENSE.stream_bits(n), np.uint8), bitorder="little").tobytes()
    b = bytearray(blob)
    b[e0[-2] + 4:e0[-2] + 4 + len(ones)] = ones
    cases.append(("dense group value >= 3^k", _with_crc(bytes(b))))
    for codec, where, value in (("2bit", 0, 0b10), ("base3x5", 0, 250), ("rans", 0, 0xFF)):
        other = formats.write_blob(cfg, t, codec=codec)
        b = bytearray(other)
        b[_table(other)[0][-2] + 4 + where] = value      # first payload byte after the scale
        cases.append((f"{codec}: invalid first byte", _with_crc(bytes(b))))
    cases.append(("huge config, tiny rANS sections", _huge_rans_blob()))
    legacy = formats.write_atome01(t, cfg)
    bigger = dataclasses.replace(cfg, n_layers=cfg.n_layers + 1)
    code10 = bytearray(legacy)
    code10[7 + 4] = 0b10
    out = [(name, data, None) for name, data in cases]
    out += [("ATOME01 one byte short", legacy[:-1], cfg), ("ATOME01 one byte long", legacy + b"\0", cfg),
            ("ATOME01 read with n_layers + 1", legacy, bigger), ("ATOME02 magic", b"ATOME02" + legacy[7:], cfg),
            ("ATOME01 code 10", bytes(code10), cfg)]
    return out


def python_verdict(data: bytes, config=None) -> type | None:
    """The error class chapter 3's reader raises (None: it reads the file)."""
    try:
        if config is None:
            formats.read_blob(data)
        else:
            formats.read_atome01(data, config)
    except formats.BlobError as e:
        return type(e)
    return None


def c_verdict(data: bytes, config=None, lib=None) -> str:
    """The C loader's status name for the same bytes."""
    lib = lib or load_library()
    buf = np.frombuffer(data, np.uint8).copy() if data else _buffer(1)
    if config is None:
        return status_name(lib.atome_check_blob(_ptr(buf), len(data), None, None))
    view = _buffer(lib.atome_sizeof_model())
    return status_name(lib.atome_load_atome01(_ptr(view), _ptr(buf), len(data), ctypes.byref(Config.of(config))))


def same_verdict(data: bytes, config=None, lib=None) -> tuple[bool, str, str]:
    """(do Python and C agree?, Python's class name or OK, C's status name)."""
    py, c = python_verdict(data, config), c_verdict(data, config, lib)
    py_name = py.__name__ if py else "OK"
    agree = (c == "OK") if py is None else STATUS_ERRORS.get(c) is py
    return agree, py_name, c


# -- what a path costs in prediction ------------------------------------------------------------


def next_token_loss(model: "Model | bytes", tokens, window: int = DEFAULT_WINDOW, path: str = "f32",
                    config=None) -> float:
    """Mean cross-entropy in nats of each next token of `tokens` under the C engine's
    logits (one streaming pass, attention over the last `window` tokens); for byte
    models nats per byte. Computed in float64 from the engine's float32 logits."""
    tokens = np.asarray(tokens, np.int64)
    if tokens.size < 2:
        raise ValueError("need at least two tokens")
    engine = Engine(model, window=window, path=path, config=config)
    logits = engine.run(tokens[:-1]).astype(np.float64)
    top = logits.max(axis=1, keepdims=True)
    log_total = np.log(np.exp(logits - top).sum(axis=1)) + top[:, 0]
    return float(np.mean(log_total - logits[np.arange(tokens.size - 1), tokens[1:]]))


# -- timing --------------------------------------------------------------------------------------


def tokens_per_second(model: Model, context: int, n_tokens: int = 64, mode: str = "incremental",
                      path: str = "f32", seed: int = 0) -> float:
    """Decode speed with `context` tokens in the attention window, timed inside C
    (one call for all n_tokens, so Python adds nothing per token).

    incremental: an engine whose window is `context`, filled with `context` tokens, then
    n_tokens more steps, each attending over exactly `context` keys. recompute: every new
    token re-runs the whole prefix of `context` tokens from a reset state (the kit's way)."""
    rng = np.random.default_rng(seed)
    tokens = rng.integers(32, 127, size=context + n_tokens).astype(np.uint32)
    if mode == "incremental":
        engine = Engine(model, window=context, path=path)
        engine.prefill(tokens[:context])
        t0 = time.perf_counter()
        engine.prefill(tokens[context:])
        return n_tokens / (time.perf_counter() - t0)
    if mode == "recompute":
        engine = Engine(model, window=context, path=path)
        t0 = time.perf_counter()
        for i in range(n_tokens):
            engine.forward(tokens[i + 1:i + 1 + context])
        return n_tokens / (time.perf_counter() - t0)
    raise ValueError(f"mode must be 'incremental' or 'recompute', got {mode!r}")


def library_code_bytes(variant: str = "release") -> dict:
    """Sizes of the engine's object code (text, data, bss) from the static library."""
    build_library(variant)
    lib_a = ENGINE_DIR / "build" / "libatome.a"
    subprocess.run(["make", "-s", "-C", str(ENGINE_DIR), "build/libatome.a"], check=True, capture_output=True)
    out = subprocess.run(["size", "-t", str(lib_a)], capture_output=True, text=True, check=True).stdout
    text, data, bss = (int(v) for v in out.strip().splitlines()[-1].split()[:3])
    return {"text": text, "data": data, "bss": bss}


# -- fuzz seeds and the command line ----------------------------------------------------------------

FUZZ_CONFIGS = [formats.RoutedBlobConfig(vocab=16, d_model=8, n_layers=2, d_head=4, top_k=2, kernel=3),
                formats.RoutedBlobConfig(vocab=5, d_model=6, n_layers=1, d_head=3, top_k=3, kernel=2)]


def random_tensors(cfg, seed: int = 0, p0: float = 0.4) -> dict:
    """A random model (trits with P(0) = p0, positive scales, normal vectors) for tests."""
    cfg = formats.as_config(cfg)
    rng = np.random.default_rng(seed)
    out = {}
    trit_names = set(formats.trit_weight_names(cfg))
    for name, shape in formats.expected_shapes(cfg).items():
        if name.endswith(".scale"):
            out[name] = np.asarray(rng.uniform(0.05, 0.5), np.float32)
        elif name in trit_names:
            out[name] = (rng.choice(3, size=shape, p=[(1 - p0) / 2, p0, (1 - p0) / 2]) - 1).astype(np.int8)
        else:
            out[name] = rng.standard_normal(shape).astype(np.float32)
    return out


def fuzz_seeds(folder) -> list[Path]:
    """Valid inputs for c_engine/fuzz_blob.c: tiny ATMB blobs in every codec and ATOME01."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for i, cfg in enumerate(FUZZ_CONFIGS):
        t = random_tensors(cfg, seed=i)
        for codec in ("2bit", "base3x5", "dense", "rans"):
            for fd in ("float32", "float16"):
                blob = formats.write_blob(cfg, t, codec=codec, float_dtype=fd)
                written.append(folder / f"atmb_{i}_{codec}_{fd}")
                written[-1].write_bytes(bytes([4 * i + 32 * (fd == 'float16') + 192 * (codec == 'rans')]) + blob)
        legacy = formats.write_atome01(t, cfg)
        dims = [cfg.vocab, cfg.d_model, cfg.n_layers, cfg.d_head, cfg.top_k, cfg.kernel]
        written.append(folder / f"atome01_{i}")
        written[-1].write_bytes(bytes([3]) + bytes(v - 1 for v in dims) + legacy[7:])
    return written


def cli_generate(args) -> int:
    """atome generate --blob F --prompt TEXT: continue a prompt with the C engine."""
    try:
        data = Path(args.blob).read_bytes()
        engine = Engine(data, window=args.window, path=args.path,
                        config=formats.parse_config_arg(args.config))
        ids = engine.generate(args.prompt, args.max_new_tokens, temperature=args.temperature,
                              seed=args.seed, max_total=args.max_total)
    except (OSError, ValueError, EngineBuildError) as e:
        print(f"atome generate: error: {e}", file=sys.stderr)
        return 1
    if args.ids:
        print(" ".join(map(str, ids)))
    else:
        sys.stdout.write(args.prompt + bytes(ids).decode("utf-8", errors="replace") + "\n")
    return 0


def selfcheck(seed: int = 0, n_garbage: int = 300) -> list[str]:
    """Parity on random configs (every codec, both paths, ring wrap-around), every
    malformed case, random garbage through the loaders. The problems found (none: [])."""
    problems = []
    rng = np.random.default_rng(seed)
    for i, cfg in enumerate(FUZZ_CONFIGS):
        t = random_tensors(cfg, seed + i)
        tokens = rng.integers(0, cfg.vocab, 12)
        blobs = [(c, formats.write_blob(cfg, t, codec=c)) for c in ("2bit", "dense", "rans", "base3x5")]
        blobs.append(("atome01", formats.write_atome01(t, cfg)))
        for name, data in blobs:
            for path in PATHS:
                r = parity(data, tokens, window=5, path=path, config=cfg if name == "atome01" else None)
                if not r["bits_equal"]:
                    problems.append(f"parity {cfg} {name} {path}: {r}")
    for name, data, cfg in malformed_cases():
        agree, py, c = same_verdict(data, cfg)
        if not agree or py == "OK":
            problems.append(f"malformed case {name!r}: Python {py}, C {c}")
    good = formats.write_blob(FUZZ_CONFIGS[0], random_tensors(FUZZ_CONFIGS[0]), codec="rans")
    for _ in range(n_garbage):
        b = bytearray(good[:int(rng.integers(0, len(good) + 1))])
        for pos in rng.integers(0, max(1, len(b)), int(rng.integers(0, 4))):
            if b:
                b[pos] = int(rng.integers(0, 256))
        for data in (bytes(b), _with_crc(bytes(b)) if len(b) >= 4 else bytes(b)):
            agree, py, c = same_verdict(data)
            if not agree:
                problems.append(f"garbage of {len(data)} bytes: Python {py}, C {c}")
    return problems


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 2 and argv[0] == "fuzz-seeds":
        print(f"{len(fuzz_seeds(argv[1]))} seeds in {argv[1]}")
        return 0
    if argv == ["selfcheck"]:
        problems = selfcheck()
        print("\n".join(problems) or "selfcheck: all agree")
        return 1 if problems else 0
    print("usage: python -m atome_core.engine fuzz-seeds DIR | selfcheck", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
