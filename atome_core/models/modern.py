"""A modern small decoder in the style of Atom 3.4m, scaled down: what a user would pick today.

RMSNorm, rotary positions (RoPE, theta 5000), grouped-query attention with 3 query
heads per key-value head, a SwiGLU feed-forward, tied input/output embeddings,
no biases. Atom 3.4m has hidden 192 = 3 query heads x 64, one key-value head, FFN
480 (2.5 x hidden). At ~60K parameters on raw bytes the 256 x d embedding is a
large share, so the param-fair default keeps the head layout (3 query heads, 1
kv head, hidden = 3 x head dim) and trims the FFN:

    d 42 = 3 heads x 14, 1 kv head, 3 layers, SwiGLU hidden 94  -> 60,690 params
    (0.18 % under the routed model's 60,800)

With `ModernConfig(quant=QuantConfig(...))` the same model has ternary weights through
chapter 2's layers (atome_core.quant): every matrix -- the attention and SwiGLU
projections and the tied embedding, which is also the output matrix (the unembedding
multiplies by the same ternary effective weight) -- is trit x scale in the forward
pass, with straight-through gradients to FP32 shadow weights; the RMSNorm weights stay
FP32. With 8-bit activations every matrix's input is fake-quantised per token (the
output matrix's too; the embedding's input is a token id). The parameter count does not
change; `quant=None` is the FP32 model, bit for bit. `deployed_model` replaces the
shadow weights by trits x scale (the form atome_core.formats.modern_blob stores); its
forward equals the ternary forward bit for bit.

    n_params = V d + L (2 d + 2 d^2 + 2 d (n_kv d / n_heads) + 3 d d_ff) + d
"""
import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..quant import QuantConfig, TernaryEmbedding, TernaryLinear
from .sampling import generate_windowed, next_token_loss


@dataclass
class ModernConfig:
    vocab_size: int = 256
    d_model: int = 42
    n_layers: int = 3
    n_heads: int = 3            # query heads
    n_kv_heads: int = 1         # key-value heads (grouped-query attention)
    d_ff: int = 94              # SwiGLU hidden size
    max_seq: int = 512          # longest sequence (RoPE has no table to outgrow; a sanity bound)
    rope_theta: float = 5000.0
    norm_eps: float = 1e-5
    quant: QuantConfig | None = None   # None: FP32 matrices; else chapter 2's ternary layers

    def __post_init__(self):
        if isinstance(self.quant, dict):    # as dataclasses.asdict and a model file's JSON write it
            self.quant = QuantConfig(**self.quant)
        if self.quant is not None and not isinstance(self.quant, QuantConfig):
            raise ValueError(f"ModernConfig.quant must be None or a QuantConfig, got {self.quant!r}")
        for name in ("vocab_size", "d_model", "n_layers", "n_heads", "n_kv_heads", "d_ff", "max_seq"):
            if getattr(self, name) < 1:
                raise ValueError(f"ModernConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} is not divisible by n_heads {self.n_heads}")
        if self.n_heads % self.n_kv_heads:
            raise ValueError(f"n_heads {self.n_heads} is not a multiple of n_kv_heads {self.n_kv_heads}")
        if (self.d_model // self.n_heads) % 2:
            raise ValueError(f"head dim {self.d_model // self.n_heads} must be even for RoPE")


class RMSNorm(nn.Module):
    def __init__(self, d: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope_tables(T: int, d_head: int, theta: float, device) -> tuple[torch.Tensor, torch.Tensor]:
    inv_freq = 1.0 / theta ** (torch.arange(0, d_head, 2, device=device, dtype=torch.float32) / d_head)
    angles = torch.outer(torch.arange(T, device=device, dtype=torch.float32), inv_freq)  # (T, d_head/2)
    return angles.cos(), angles.sin()


def apply_rope(x, cos, sin):
    """x (B, heads, T, d_head): rotate each (first-half, second-half) pair by its angle."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


def linear(cfg: ModernConfig, d_in: int, d_out: int) -> nn.Linear:
    """A bias-free matrix: nn.Linear (FP32 model) or chapter 2's TernaryLinear."""
    if cfg.quant is None:
        return nn.Linear(d_in, d_out, bias=False)
    return TernaryLinear(d_in, d_out, bias=False, quant=cfg.quant)


class GroupedQueryAttention(nn.Module):
    def __init__(self, cfg: ModernConfig):
        super().__init__()
        self.n_heads, self.n_kv_heads = cfg.n_heads, cfg.n_kv_heads
        self.d_head = cfg.d_model // cfg.n_heads
        self.wq = linear(cfg, cfg.d_model, cfg.n_heads * self.d_head)
        self.wk = linear(cfg, cfg.d_model, cfg.n_kv_heads * self.d_head)
        self.wv = linear(cfg, cfg.d_model, cfg.n_kv_heads * self.d_head)
        self.wo = linear(cfg, cfg.n_heads * self.d_head, cfg.d_model)

    def forward(self, x, cos, sin):
        B, T, _ = x.shape
        q = self.wq(x).view(B, T, self.n_heads, self.d_head).transpose(1, 2)
        k = self.wk(x).view(B, T, self.n_kv_heads, self.d_head).transpose(1, 2)
        v = self.wv(x).view(B, T, self.n_kv_heads, self.d_head).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        # each kv head serves n_heads / n_kv_heads consecutive query heads
        group = self.n_heads // self.n_kv_heads
        k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.wo(y.transpose(1, 2).reshape(B, T, -1))


class SwiGLU(nn.Module):
    def __init__(self, cfg: ModernConfig):
        super().__init__()
        self.gate = linear(cfg, cfg.d_model, cfg.d_ff)
        self.up = linear(cfg, cfg.d_model, cfg.d_ff)
        self.down = linear(cfg, cfg.d_ff, cfg.d_model)

    def forward(self, x):
        return self.down(F.silu(self.gate(x)) * self.up(x))


class ModernBlock(nn.Module):
    def __init__(self, cfg: ModernConfig):
        super().__init__()
        self.attn_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.attn = GroupedQueryAttention(cfg)
        self.ffn_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.ffn = SwiGLU(cfg)

    def forward(self, x, cos, sin):
        x = x + self.attn(self.attn_norm(x), cos, sin)
        return x + self.ffn(self.ffn_norm(x))


class ModernLM(nn.Module):
    def __init__(self, cfg: ModernConfig = None):
        super().__init__()
        self.cfg = cfg = cfg or ModernConfig()
        # also the output matrix (tied)
        self.embed = (nn.Embedding(cfg.vocab_size, cfg.d_model) if cfg.quant is None
                      else TernaryEmbedding(cfg.vocab_size, cfg.d_model, quant=cfg.quant))
        self.blocks = nn.ModuleList(ModernBlock(cfg) for _ in range(cfg.n_layers))
        self.final_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        for name, p in self.named_parameters():
            if p.dim() == 2:
                residual_out = name.endswith(("attn.wo.weight", "ffn.down.weight"))
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * cfg.n_layers) if residual_out else 0.02)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, idx):
        T = idx.size(1)
        if T > self.cfg.max_seq:
            raise ValueError(f"sequence of {T} tokens is longer than max_seq {self.cfg.max_seq}")
        cos, sin = rope_tables(T, self.cfg.d_model // self.cfg.n_heads, self.cfg.rope_theta, idx.device)
        x = self.embed(idx)
        for block in self.blocks:
            x = block(x, cos, sin)
        if self.cfg.quant is None:
            return F.linear(self.final_norm(x), self.embed.weight)
        # the unembedding uses the embedding's own (ternary) effective weight
        return F.linear(self.embed.quant_input(self.final_norm(x)), self.embed.effective_weight())

    def loss(self, idx, targets):
        return next_token_loss(self(idx), targets)

    def generate(self, idx, max_new_tokens: int, temperature: float = 0.0, top_k: int | None = None,
                 top_p: float | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """Continue idx (B, T) greedily or by sampling; the context is the last max_seq tokens."""
        return generate_windowed(self, idx, max_new_tokens, self.cfg.max_seq, temperature, top_k,
                                 top_p, generator)


# -- the deployed model ---------------------------------------------------------------------

def state_shapes(cfg: ModernConfig) -> dict[str, tuple[int, ...]]:
    """{state_dict name: shape} of ModernLM(cfg), in state_dict order, without building it."""
    d, d_head = cfg.d_model, cfg.d_model // cfg.n_heads
    shapes = {"embed.weight": (cfg.vocab_size, d)}
    for i in range(cfg.n_layers):
        p = f"blocks.{i}."
        shapes.update({
            p + "attn_norm.weight": (d,),
            p + "attn.wq.weight": (cfg.n_heads * d_head, d),
            p + "attn.wk.weight": (cfg.n_kv_heads * d_head, d),
            p + "attn.wv.weight": (cfg.n_kv_heads * d_head, d),
            p + "attn.wo.weight": (d, cfg.n_heads * d_head),
            p + "ffn_norm.weight": (d,),
            p + "ffn.gate.weight": (cfg.d_ff, d),
            p + "ffn.up.weight": (cfg.d_ff, d),
            p + "ffn.down.weight": (d, cfg.d_ff),
        })
    shapes["final_norm.weight"] = (d,)
    return shapes


def ternary_matrices(model: ModernLM) -> dict[str, nn.Module]:
    """{state_dict name of the weight: layer} of every ternary matrix, in registration order."""
    if model.cfg.quant is None or model.cfg.quant.weights != "ternary":
        return {}
    return {f"{name}.weight": m for name, m in model.named_modules()
            if isinstance(m, (TernaryLinear, TernaryEmbedding))}


def deployed_state(model: ModernLM) -> dict[str, tuple[torch.Tensor, torch.Tensor] | torch.Tensor]:
    """What a deployed ternary model holds, by state_dict name: (int8 trits, float32 scale)
    for every ternary matrix, the float32 tensor for the rest (the RMSNorm weights)."""
    if model.cfg.quant is None or model.cfg.quant.weights != "ternary":
        raise ValueError("only a ternary modern model (ModernConfig.quant with weights 'ternary') "
                         "has trits to deploy")
    matrices = ternary_matrices(model)
    return {name: matrices[name].trits_and_scale() if name in matrices else t.detach().float().clone()
            for name, t in model.state_dict().items()}


def deployed_config(cfg: ModernConfig) -> ModernConfig:
    """The config of the deployed model: its stored weights already are trit x scale, so its
    layers use them as they are (weights 'fp32'); activations are quantised as in training."""
    return dataclasses.replace(cfg, quant=dataclasses.replace(cfg.quant, weights="fp32"))


def model_from_deployed(cfg: ModernConfig, state: dict) -> ModernLM:
    """The deployed model (eval mode) from a ternary config and deployed_state-style tensors:
    each ternary matrix's weight becomes trits x scale in float32, the norms as given."""
    model = ModernLM(deployed_config(cfg))
    weights = {}
    for name, value in state.items():
        if isinstance(value, tuple):
            trits, alpha = value
            value = trits.to(torch.float32) * alpha.to(torch.float32)
        weights[name] = value.to(torch.float32)
    model.load_state_dict(weights, strict=True)
    return model.eval()


def deployed_model(model: ModernLM) -> ModernLM:
    """The ternary model as it deploys: weights replaced by trits x scale, FP32 norms. Its
    forward equals `model`'s (ternary, quantised on the fly) bit for bit."""
    return model_from_deployed(model.cfg, deployed_state(model))
