"""The engine's arithmetic in NumPy, operation for operation in the engine's order.

Every constant is written with the same decimal digits as in c_engine/atome.c; the
f32 path in float32, the i8 path in exact integers (int64 arrays holding int32
values in Q16). `Reference` keeps its own data structures (a list of past keys, not
a ring), so a bug in the engine's ring shows as a mismatch. `sample_ref` is the
engine's sampler (splitmix64, inverse CDF)."""


import numpy as np

from .. import formats
from .binding import DEFAULT_WINDOW, PATHS, atome01_config, blob_kind, f32

# -- the reference arithmetic in NumPy -----------------------------------------------------
# Every constant is written with the same decimal digits as in c_engine/atome.c.

EXP_LOG2E, EXP_LN2_HI, EXP_LN2_LO = f32("1.44269502"), f32("0.693145751953125"), f32("1.428606765e-6")
EXP_TAYLOR = [f32(c) for c in ("1.0", "1.0", "0.5", "0.166666672", "0.0416666679", "0.00833333377",
                                "0.00138888892", "0.000198412701")]
TANH_POLY = [f32(c) for c in ("-0.333333313", "0.133332163", "-0.0539480969", "0.0217081271",
                               "-0.00819607731", "0.00216041808")]
ROUND_MAGIC = f32(12582912.0)
LN_EPS = f32("1e-5")


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
