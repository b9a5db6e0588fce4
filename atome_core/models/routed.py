"""The routed-ternary model of the Atome kit: three pathways mixed per token by a router.

Block (pre-norm, one residual):

    h = LayerNorm(x)
    r = softmax(W_r h)                                   per-token weights of 3 pathways
    x = x + r0 * local(h) + r1 * state(h) + r2 * sparse(h)

local:  depthwise causal convolution, kernel 5, no bias
state:  per-channel diagonal recurrence  s_t = tanh(a_raw) * s_{t-1} + b * h_t,  y_t = c_out * s_t
sparse: one attention head; each query keeps only its top-k causal scores (k = min(top_k, t+1))

Every matrix (embedding, conv, Wq/Wk/Wv, router, unembed) is ternary (absmean scale,
straight-through, atome_core.quant); LayerNorms and the state vectors stay FP32.
No positional embedding: order comes from the convolution and the recurrence.
Parameter names equal the published checkpoint's, so its state_dict loads as is.

Two ways to run it, equal within float rounding (tests/test_models.py):
- `forward(idx)`: the whole sequence at once (training). The recurrence is a
  Hillis-Steele doubling scan: log2(T) element-wise steps instead of the
  kit's T x T kernel or a T-step Python loop.
- `step(token, cache)`: one token at a time with a cache (conv window, state,
  keys and values), which is what the C engine and the firmware do.
"""
import math
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..quant import QuantConfig, TernaryCausalConv1d, TernaryEmbedding, TernaryLinear
from .sampling import check_prompt, next_token_loss, sample_next

PATHWAYS = ("local", "state", "sparse")
STATE_IMPLS = ("scan", "kernel", "loop")


@dataclass
class RoutedConfig:
    vocab_size: int = 256
    d_model: int = 64
    n_layers: int = 4
    d_head: int = 16
    top_k: int = 4
    kernel_size: int = 5
    pathways: tuple = PATHWAYS      # a subset trains an ablated model (the router has one output each)
    state_impl: str = "scan"        # "scan" (fast), "kernel" (the kit's T x T), "loop" (reference)
    quant: QuantConfig = field(default_factory=QuantConfig)

    def __post_init__(self):
        self.pathways = tuple(self.pathways)
        if not self.pathways or any(p not in PATHWAYS for p in self.pathways) \
                or len(set(self.pathways)) != len(self.pathways):
            raise ValueError(f"pathways must be a non-empty subset of {PATHWAYS}, got {self.pathways}")
        if self.state_impl not in STATE_IMPLS:
            raise ValueError(f"state_impl must be one of {STATE_IMPLS}, got {self.state_impl!r}")
        for name in ("vocab_size", "d_model", "n_layers", "d_head", "top_k", "kernel_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"RoutedConfig.{name} must be >= 1, got {getattr(self, name)}")


# -----------------------------------------------------------------------------
# the diagonal recurrence s_t = a * s_{t-1} + u_t, three ways

def _doubling_pass(x: torch.Tensor, a: torch.Tensor, reverse: bool = False) -> torch.Tensor:
    """In place on x (B, T, d): x_t += a^i x_{t-i} summed over i >= 1 (reverse: x_{t+i}).

    Hillis-Steele: after the pass with offset 2^j, x_t holds sum_{i < 2^(j+1)} a^i u_{t-i};
    ceil(log2 T) passes cover the whole past.
    """
    power, offset, T = a, 1, x.size(1)
    while offset < T:
        if reverse:
            x[:, :-offset] += power * x[:, offset:]
        else:
            x[:, offset:] += power * x[:, :-offset]   # the product is a new tensor: no aliasing
        power = power * power
        offset *= 2
    return x


class _DiagonalScan(torch.autograd.Function):
    """s_t = a * s_{t-1} + u_t with a hand-written backward: the adjoint of this linear
    recurrence is the same recurrence run backwards in time, g_u[t] = g[t] + a * g_u[t+1],
    and dL/da = sum_t g_u[t] * s[t-1]. Half the work of letting autograd record every pass."""

    @staticmethod
    def forward(ctx, u, a):
        s = _doubling_pass(u.detach().clone(), a.detach())
        ctx.save_for_backward(s, a)
        return s

    @staticmethod
    def backward(ctx, grad):
        s, a = ctx.saved_tensors
        grad_u = _doubling_pass(grad.contiguous().clone(), a, reverse=True)
        grad_a = (grad_u[:, 1:] * s[:, :-1]).sum(dim=(0, 1))
        return grad_u, grad_a


def scan_doubling(u: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """u (B, T, d), a (d,) -> s (B, T, d) with s_t = a * s_{t-1} + u_t, s_{-1} = 0."""
    return _DiagonalScan.apply(u, a)


def scan_kernel(u: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """The kit's way: a (T, T, d) kernel K[t, s] = a^(t-s) for s <= t, then one contraction."""
    T = u.size(1)
    t = torch.arange(T, device=u.device)
    lag = (t[:, None] - t[None, :]).clamp(min=0).to(u.dtype)
    kernel = torch.pow(a[None, None, :], lag[..., None]) * (t[:, None] >= t[None, :])[..., None]
    return torch.einsum("tsd,bsd->btd", kernel, u)


def scan_loop(u: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    s, out = torch.zeros_like(u[:, 0]), []
    for t in range(u.size(1)):
        s = a * s + u[:, t]
        out.append(s)
    return torch.stack(out, dim=1)


SCANS = {"scan": scan_doubling, "kernel": scan_kernel, "loop": scan_loop}


class DiagonalState(nn.Module):
    def __init__(self, d: int, impl: str = "scan"):
        super().__init__()
        # decays tanh(a_raw) start between 0.46 and 0.91: memories of a few to ~10 tokens
        self.a_raw = nn.Parameter(torch.empty(d).uniform_(0.5, 1.5))
        self.b = nn.Parameter(torch.randn(d) * 0.1)
        self.c_out = nn.Parameter(torch.randn(d) * 0.1)
        self.impl = impl

    def forward(self, h):
        return self.c_out * SCANS[self.impl](self.b * h, torch.tanh(self.a_raw))

    def step(self, h, s):
        """One token: h (B, d), previous state s (B, d) -> (y, new state)."""
        s = torch.tanh(self.a_raw) * s + self.b * h
        return self.c_out * s, s


_MASKS: dict = {}


def causal_future_mask(T: int, device) -> torch.Tensor:
    """(T, T) bool, True above the diagonal (the future); cached per size and device."""
    key = (T, str(device))
    if key not in _MASKS:
        _MASKS[key] = torch.ones(T, T, dtype=torch.bool, device=device).triu(1)
    return _MASKS[key]


class _TopKAttention(torch.autograd.Function):
    """Causal attention keeping exactly k scores per row, with a hand-written backward.

    Exactly k kept per row (ties broken by topk), so rows with t+1 < k keep -inf entries
    that the softmax turns into zero weight. Autograd through topk/gather/scatter costs
    twice the operations of the backward below (the same arithmetic, bit for bit); at
    this size the training step is mostly per-operation overhead.
    """

    @staticmethod
    def forward(ctx, q, k, v, top_k, scale):
        T = q.size(1)
        scores = (q @ k.transpose(1, 2)) * scale
        scores.masked_fill_(causal_future_mask(T, q.device), float("-inf"))
        kept, where = scores.topk(min(top_k, T), dim=-1, sorted=False)
        kept_weights = torch.softmax(kept, dim=-1)
        weights = torch.zeros_like(scores).scatter_(-1, where, kept_weights)
        ctx.save_for_backward(q, k, v, where, kept_weights, weights)
        ctx.scale = scale
        return weights @ v

    @staticmethod
    def backward(ctx, grad):
        q, k, v, where, kept_weights, weights = ctx.saved_tensors
        grad = grad.contiguous()
        grad_v = weights.transpose(1, 2) @ grad
        grad_kept = (grad @ v.transpose(1, 2)).gather(-1, where)
        # softmax backward over the k kept scores; the dropped ones get no gradient
        grad_kept = kept_weights * (grad_kept - (kept_weights * grad_kept).sum(dim=-1, keepdim=True))
        grad_scores = torch.zeros_like(weights).scatter_(-1, where, grad_kept.mul_(ctx.scale))
        return grad_scores @ k, grad_scores.transpose(1, 2) @ q, grad_v, None, None


class TopKAttention(nn.Module):
    """One head; q, k: d -> d_head, v: d -> d; no output projection."""

    def __init__(self, d: int, d_head: int, top_k: int, quant: QuantConfig):
        super().__init__()
        self.Wq = TernaryLinear(d, d_head, quant=quant)
        self.Wk = TernaryLinear(d, d_head, quant=quant)
        self.Wv = TernaryLinear(d, d, quant=quant)
        self.top_k, self.scale = top_k, 1.0 / math.sqrt(d_head)

    def forward(self, h):
        return self.attend(self.Wq(h), self.Wk(h), self.Wv(h))

    def attend(self, q, k, v):
        """q, k (B, T, d_head), v (B, T, d) -> (B, T, d)."""
        return _TopKAttention.apply(q, k, v, self.top_k, self.scale)

    def step(self, h, keys, values):
        """h (B, d); keys (B, t, d_head) and values (B, t, d) of the past, extended here."""
        q = self.Wq(h)
        keys = torch.cat([keys, self.Wk(h)[:, None]], dim=1)
        values = torch.cat([values, self.Wv(h)[:, None]], dim=1)
        scores = torch.einsum("bd,btd->bt", q, keys) * self.scale
        kept, where = scores.topk(min(self.top_k, scores.size(1)), dim=-1)
        weights = torch.softmax(kept, dim=-1)
        chosen = torch.gather(values, 1, where[..., None].expand(-1, -1, values.size(-1)))
        return (weights[..., None] * chosen).sum(dim=1), keys, values


class Router(nn.Module):
    def __init__(self, d: int, n_pathways: int, quant: QuantConfig):
        super().__init__()
        self.proj = TernaryLinear(d, n_pathways, quant=quant)

    def forward(self, h):
        return torch.softmax(self.proj(h), dim=-1)


class RoutedBlock(nn.Module):
    def __init__(self, cfg: RoutedConfig):
        super().__init__()
        d = cfg.d_model
        self.pathways = cfg.pathways
        self.norm = nn.LayerNorm(d, eps=1e-5)
        if "local" in cfg.pathways:
            self.local = TernaryCausalConv1d(d, cfg.kernel_size, quant=cfg.quant)
        if "state" in cfg.pathways:
            self.state = DiagonalState(d, cfg.state_impl)
        if "sparse" in cfg.pathways:
            self.sparse = TopKAttention(d, cfg.d_head, cfg.top_k, cfg.quant)
        self.router = Router(d, len(cfg.pathways), cfg.quant)
        self.disabled = set()   # pathways switched off at inference (ablation), see RoutedLM.ablate

    def forward(self, x, stats: list | None = None):
        h = self.norm(x)
        # router, Wq, Wk, Wv read the same h: one matmul for all four (each keeps its
        # own ternary scale); fewer, larger operations matter at this size
        projections = [self.router.proj]
        if "sparse" in self.pathways:
            projections += [self.sparse.Wq, self.sparse.Wk, self.sparse.Wv]
        fused = F.linear(self.router.proj.quant_input(h), torch.cat([m.effective_weight() for m in projections]))
        parts = fused.split([m.out_features for m in projections], dim=-1)
        r = torch.softmax(parts[0], dim=-1)
        if stats is not None:
            stats.append(r)
        out = x
        for i, name in enumerate(self.pathways):
            if name in self.disabled:
                continue
            if name == "sparse":
                y = self.sparse.attend(*parts[1:])
            else:
                y = getattr(self, name)(h)
            out = out + r[..., i:i + 1] * y
        return out

    def step(self, x, cache: dict, stats: list | None = None):
        """x (B, d) for one position; cache holds this block's conv window, state, keys, values."""
        h = self.norm(x)
        r = self.router(h)
        if stats is not None:
            stats.append(r)
        outputs = {}
        if "local" in self.pathways:
            window = torch.cat([cache["window"], self.local.quant_input(h)[:, None]], dim=1)  # oldest first
            cache["window"] = window[:, 1:]
            w = self.local.effective_weight()[:, 0, :]                  # (d, k)
            outputs["local"] = (window * w.t()[None]).sum(dim=1)
        if "state" in self.pathways:
            outputs["state"], cache["s"] = self.state.step(h, cache["s"])
        if "sparse" in self.pathways:
            outputs["sparse"], cache["keys"], cache["values"] = self.sparse.step(h, cache["keys"], cache["values"])
        out = x
        for i, name in enumerate(self.pathways):
            if name not in self.disabled:
                out = out + r[:, i:i + 1] * outputs[name]
        return out


class RoutedLM(nn.Module):
    def __init__(self, cfg: RoutedConfig = None):
        super().__init__()
        self.cfg = cfg = cfg or RoutedConfig()
        self.embed = TernaryEmbedding(cfg.vocab_size, cfg.d_model, quant=cfg.quant)
        self.blocks = nn.ModuleList(RoutedBlock(cfg) for _ in range(cfg.n_layers))
        self.final_norm = nn.LayerNorm(cfg.d_model, eps=1e-5)
        self.unembed = TernaryLinear(cfg.d_model, cfg.vocab_size, quant=cfg.quant)
        nn.init.normal_(self.embed.weight, std=0.02)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, idx, return_stats: bool = False):
        """idx (B, T) -> logits (B, T, V); with return_stats also the router weights
        (n_layers, B, T, n_pathways)."""
        stats = [] if return_stats else None
        x = self.embed(idx)
        for block in self.blocks:
            x = block(x, stats)
        logits = self.unembed(self.final_norm(x))
        return (logits, torch.stack(stats)) if return_stats else logits

    def loss(self, idx, targets):
        return next_token_loss(self(idx), targets)

    @torch.no_grad()
    def router_weights(self, idx) -> torch.Tensor:
        """Per layer, per token pathway weights (n_layers, B, T, n_pathways); rows sum to 1."""
        return self(idx, return_stats=True)[1]

    @torch.no_grad()
    def router_entropy(self, idx) -> torch.Tensor:
        """Entropy in nats of each token's routing (n_layers, B, T); at most ln(n_pathways)."""
        r = self.router_weights(idx)
        return -(r * torch.log(r.clamp_min(1e-30))).sum(dim=-1)

    @contextmanager
    def ablate(self, *names):
        """Switch pathways off (their contribution zeroed, router weights left as they are)."""
        bad = [n for n in names if n not in self.cfg.pathways]
        if bad:
            raise ValueError(f"unknown pathway(s) {bad}; this model has {self.cfg.pathways}")
        saved = [set(b.disabled) for b in self.blocks]
        for b in self.blocks:
            b.disabled |= set(names)
        try:
            yield self
        finally:
            for b, s in zip(self.blocks, saved):
                b.disabled = s

    # --- recurrent path: one token at a time --------------------------------

    def init_cache(self, batch_size: int = 1) -> list:
        p = next(self.parameters())
        d, k = self.cfg.d_model, self.cfg.kernel_size
        zeros = lambda *shape: torch.zeros(*shape, dtype=p.dtype, device=p.device)
        return [{"window": zeros(batch_size, k - 1, d), "s": zeros(batch_size, d),
                 "keys": zeros(batch_size, 0, self.cfg.d_head), "values": zeros(batch_size, 0, d)}
                for _ in self.blocks]

    def step(self, token, cache: list, stats: list | None = None) -> torch.Tensor:
        """token (B,) -> logits (B, V) for the next position; updates `cache` in place."""
        x = self.embed(token)
        for block, block_cache in zip(self.blocks, cache):
            x = block.step(x, block_cache, stats)
        return self.unembed(self.final_norm(x))

    @torch.no_grad()
    def forward_recurrent(self, idx) -> torch.Tensor:
        """The logits of forward(idx), computed token by token through `step`."""
        cache = self.init_cache(idx.size(0))
        return torch.stack([self.step(idx[:, t], cache) for t in range(idx.size(1))], dim=1)

    @torch.no_grad()
    def generate(self, idx, max_new_tokens: int, temperature: float = 0.0, top_k: int | None = None,
                 top_p: float | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """Continue idx (B, T) by max_new_tokens; returns (B, T + max_new_tokens).

        Every position sees the whole sequence before it (no window: the model has no
        positional table). The kit's C engine holds at most 128 tokens, prompt and
        generation together, in its context; its reference output (`Once` plus 124
        bytes) fills exactly those 128, so within that cap the two agree token for token
        (tests/test_import.py). What the engine does past 128 tokens is not covered here.
        """
        idx = check_prompt(idx, self.cfg.vocab_size).to(next(self.parameters()).device)
        was_training = self.training
        self.eval()
        cache = self.init_cache(idx.size(0))
        for t in range(idx.size(1)):
            logits = self.step(idx[:, t], cache)
        out = [idx]
        for _ in range(max_new_tokens):
            nxt = sample_next(logits, temperature, top_k, top_p, generator)
            out.append(nxt[:, None])
            logits = self.step(nxt, cache)
        self.train(was_training)
        return torch.cat(out, dim=1)
