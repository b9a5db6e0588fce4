"""Ternary quantisation-aware training, BitNet b1.58 style.

Training keeps FP32 "shadow" weights W. Every forward pass uses the effective
weight  trit * alpha  where

    alpha = max(mean(|W|), 1e-5)              (per tensor; per output row optional)
    trit  = clamp(round(W / alpha), -1, 1)    (round half to even, as torch.round)

(`QuantConfig(scale="absmedian")` takes alpha = max(median(|W|), 1e-5) instead, the
median-based scale of BitNet b1.58 Reloaded, on par or better at small scale; torch's
median of an even count is the lower of the two middle values. absmean is the default.)

and the straight-through estimator passes the gradient of the effective weight
to W unchanged. So the stored training weights are *not* in {-1, 0, +1}: only
`ternary_weight(...)` of them is. `trits_and_scale` returns what is exported.

Activations can be fake-quantised to 8 bits per token (absmax): x_q =
round(x * 127 / max|x|) / (127 / max|x|), again with a straight-through gradient.
"""
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

SCALE_EPS = 1e-5
SCALES = ("absmean", "absmedian")


def absmean_scale(w: torch.Tensor, per_row: bool = False) -> torch.Tensor:
    """alpha = mean |W| (per tensor, or per output row: shape (rows, 1, ...))."""
    if per_row:
        dims = tuple(range(1, w.dim()))
        return w.abs().mean(dim=dims, keepdim=True).clamp(min=SCALE_EPS)
    return w.abs().mean().clamp(min=SCALE_EPS)


def absmedian_scale(w: torch.Tensor, per_row: bool = False) -> torch.Tensor:
    """alpha = median |W| (per tensor, or per output row: shape (rows, 1, ...))."""
    if per_row:
        rows = w.abs().reshape(w.size(0), -1).median(dim=1).values
        return rows.view(-1, *([1] * (w.dim() - 1))).clamp(min=SCALE_EPS)
    return w.abs().median().clamp(min=SCALE_EPS)


def weight_scale(w: torch.Tensor, per_row: bool = False, scale: str = "absmean") -> torch.Tensor:
    if scale == "absmean":
        return absmean_scale(w, per_row)
    if scale == "absmedian":
        return absmedian_scale(w, per_row)
    raise ValueError(f"scale must be one of {', '.join(SCALES)}, got {scale!r}")


def ternarize(w: torch.Tensor, per_row: bool = False,
              scale: str = "absmean") -> tuple[torch.Tensor, torch.Tensor]:
    """(trits in {-1, 0, 1} as w's dtype, scale alpha). No gradient."""
    with torch.no_grad():
        alpha = weight_scale(w, per_row, scale)
        trits = torch.clamp(torch.round(w / alpha), -1, 1)
    return trits, alpha


class _StraightThrough(torch.autograd.Function):
    """Forward returns `quantised` exactly; backward passes the gradient to `x` unchanged.

    (The common `x + (q - x).detach()` is not exactly q in floating point, which would
    make the training forward differ from the exported model by rounding.)
    """

    @staticmethod
    def forward(ctx, x, quantised):
        return quantised

    @staticmethod
    def backward(ctx, grad):
        return grad, None


def ternary_weight(w: torch.Tensor, per_row: bool = False, scale: str = "absmean") -> torch.Tensor:
    """trit * alpha in the forward pass; identity gradient to w (straight-through)."""
    trits, alpha = ternarize(w, per_row, scale)
    return _StraightThrough.apply(w, trits * alpha)


def activation_quant_int8(x: torch.Tensor) -> torch.Tensor:
    """Per-token (last dimension) absmax fake quantisation to 8 bits, straight-through.

    The error per element is at most max|x| / 254 (half a quantisation step).
    """
    with torch.no_grad():
        scale = 127.0 / x.abs().amax(dim=-1, keepdim=True).clamp(min=SCALE_EPS)
        x_q = torch.clamp(torch.round(x * scale), -128, 127) / scale
    return _StraightThrough.apply(x, x_q)


@dataclass(frozen=True)
class QuantConfig:
    """How a model's big matrices are trained: 'fp32' or 'ternary', activations 32 or 8 bits,
    the ternary scale 'absmean' (BitNet b1.58) or 'absmedian' (BitNet b1.58 Reloaded)."""
    weights: str = "ternary"
    act_bits: int = 32
    per_row: bool = False
    scale: str = "absmean"

    def __post_init__(self):
        if self.scale not in SCALES:
            raise ValueError(f"scale must be one of {', '.join(SCALES)}, got {self.scale!r}")
        if self.weights not in ("fp32", "ternary"):
            raise ValueError(f"weights must be 'fp32' or 'ternary', got {self.weights!r}")
        if self.act_bits not in (8, 32):
            raise ValueError(f"act_bits must be 8 or 32, got {self.act_bits}")


class _QuantMixin:
    quant: QuantConfig

    def effective_weight(self) -> torch.Tensor:
        if self.quant.weights == "ternary":
            return ternary_weight(self.weight, self.quant.per_row, self.quant.scale)
        return self.weight

    def quant_input(self, x: torch.Tensor) -> torch.Tensor:
        return activation_quant_int8(x) if self.quant.act_bits == 8 else x

    def trits_and_scale(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The exported form: int8 trits (same shape as weight) and float32 scale(s)."""
        trits, alpha = ternarize(self.weight.detach().float(), self.quant.per_row, self.quant.scale)
        return trits.to(torch.int8), alpha.float()


class TernaryLinear(_QuantMixin, nn.Linear):
    def __init__(self, in_features, out_features, bias=False, quant: QuantConfig = QuantConfig()):
        super().__init__(in_features, out_features, bias=bias)
        self.quant = quant

    def forward(self, x):
        return F.linear(self.quant_input(x), self.effective_weight(), self.bias)


class TernaryCausalConv1d(_QuantMixin, nn.Conv1d):
    """Depthwise causal convolution over time: input (B, T, C), output (B, T, C).

    Output at t sees inputs t-k+1 .. t (left padding k-1), weight (C, 1, k).
    """

    def __init__(self, channels, kernel_size, quant: QuantConfig = QuantConfig()):
        super().__init__(channels, channels, kernel_size, groups=channels, bias=False)
        self.quant = quant

    def forward(self, x):
        w = self.effective_weight()
        return causal_depthwise_conv(self.quant_input(x), w.view(w.size(0), w.size(2)))


class _CausalDepthwiseConv(torch.autograd.Function):
    """y[t] = sum_j w[:, j] * x[t - (k-1) + j], shift-and-add with a hand-written backward.

    At 64 channels and kernel 5 this is k fused multiply-adds over (B, T, C); the
    general depthwise F.conv1d (and above all its backward) was 3x slower on CPU and
    a tenth of the routed model's training step. The sums run j = 0 .. k-1 in order,
    as the recurrent step and the C engine do.
    """

    @staticmethod
    def forward(ctx, x, w):
        T, k = x.size(1), w.size(1)
        x_padded = F.pad(x, (0, 0, k - 1, 0))
        taps = w.t().contiguous()                       # (k, C): one contiguous row per tap
        y = x_padded[:, 0:T] * taps[0]
        for j in range(1, k):
            y.addcmul_(x_padded[:, j:j + T], taps[j])
        ctx.save_for_backward(x_padded, taps)
        return y

    @staticmethod
    def backward(ctx, grad):
        x_padded, taps = ctx.saved_tensors
        T, k = grad.size(1), taps.size(0)
        grad = grad.contiguous()
        # the adjoint: the same taps applied to the gradient shifted the other way
        grad_padded = F.pad(grad, (0, 0, 0, k - 1))
        grad_x = grad_padded[:, k - 1:k - 1 + T] * taps[0]
        for j in range(1, k):
            grad_x.addcmul_(grad_padded[:, k - 1 - j:k - 1 - j + T], taps[j])
        grad_w = torch.stack([(grad * x_padded[:, j:j + T]).sum(dim=(0, 1)) for j in range(k)], dim=1)
        return grad_x, grad_w


def causal_depthwise_conv(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """x (B, T, C), w (C, k) -> (B, T, C): output t sees inputs t-k+1 .. t (zeros before 0)."""
    if x.dim() != 3 or w.dim() != 2 or x.size(2) != w.size(0):
        raise ValueError(f"expected x (B, T, C) and w (C, k), got {tuple(x.shape)} and {tuple(w.shape)}")
    return _CausalDepthwiseConv.apply(x, w)


class TernaryEmbedding(_QuantMixin, nn.Embedding):
    def __init__(self, num_embeddings, embedding_dim, quant: QuantConfig = QuantConfig()):
        super().__init__(num_embeddings, embedding_dim)
        self.quant = quant

    def forward(self, idx):
        return F.embedding(idx, self.effective_weight())


TERNARY_LAYERS = (TernaryLinear, TernaryCausalConv1d, TernaryEmbedding)


def ternary_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Every ternary layer of a model by name, in registration order."""
    return {name: m for name, m in model.named_modules() if isinstance(m, TERNARY_LAYERS)}


def export_trits(model: nn.Module) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """{layer name: (int8 trits, float32 scale)} for every ternary-weight layer."""
    return {name: m.trits_and_scale() for name, m in ternary_layers(model).items()
            if m.quant.weights == "ternary"}


def trit_entropy_bits(trits: torch.Tensor) -> float:
    """Empirical entropy (bits per trit) of the {-1, 0, +1} distribution of a tensor."""
    counts = torch.stack([(trits == v).sum() for v in (-1, 0, 1)]).double()
    p = counts[counts > 0] / counts.sum()
    return float(-(p * p.log2()).sum())


def trit_statistics(model: nn.Module) -> dict[str, dict]:
    """Per ternary layer: zero fraction p0, fractions of +1/-1, entropy, scale alpha, size."""
    stats = {}
    for name, (trits, alpha) in export_trits(model).items():
        n = trits.numel()
        stats[name] = {
            "n": n,
            "p0": float((trits == 0).sum()) / n,
            "p_plus": float((trits == 1).sum()) / n,
            "p_minus": float((trits == -1).sum()) / n,
            "entropy_bits": trit_entropy_bits(trits),
            "alpha": float(alpha.mean()),
        }
    return stats


class TritFlipCounter:
    """Counts how many trits change between successive calls (e.g. once per training step)."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.previous = {k: t.clone() for k, (t, _) in export_trits(model).items()}

    def update(self) -> dict[str, int]:
        flips = {}
        for name, (trits, _) in export_trits(self.model).items():
            flips[name] = int((trits != self.previous[name]).sum())
            self.previous[name] = trits.clone()
        return flips
