"""The Atome kit's FP32 baseline: a plain GPT (learned positions, pre-LN, GELU MLP).

    x = tok_embed(idx) + pos_embed(0..T-1)
    per block:  x += out(attn(norm1 x));  x += down(gelu(up(norm2 x)))
    logits = unembed(norm_final x)

`qkv` is one bias-free d -> 3d linear whose output splits as (3, heads, d_head);
attention is causal softmax scaled by 1/sqrt(d_head); no biases anywhere except
the LayerNorms; the unembedding is not tied. Parameter names equal the published
checkpoint's (vanilla_1m_v1.pt). Sizes used in the book:

    param-fair 60K:  d 44, 3 layers, 4 heads, d_ff 44, max_seq 64   -> 60,808 params
    flash-fair 60K:  d 8, 2 layers, 4 heads, d_ff 24, max_seq 64    ->  5,968 params
    published 944K:  d 152, 3 layers, 4 heads, d_ff 608, max_seq 256 -> 950,608 params
"""
import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .sampling import generate_windowed, next_token_loss


@dataclass
class VanillaConfig:
    vocab_size: int = 256
    d_model: int = 44
    n_layers: int = 3
    n_heads: int = 4
    d_ff: int = 44
    max_seq: int = 64

    def __post_init__(self):
        for name in ("vocab_size", "d_model", "n_layers", "n_heads", "d_ff", "max_seq"):
            if getattr(self, name) < 1:
                raise ValueError(f"VanillaConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} is not divisible by n_heads {self.n_heads}")


PARAM_FAIR_60K = VanillaConfig(d_model=44, n_layers=3, n_heads=4, d_ff=44, max_seq=64)
FLASH_FAIR_60K = VanillaConfig(d_model=8, n_layers=2, n_heads=4, d_ff=24, max_seq=64)
PUBLISHED_944K = VanillaConfig(d_model=152, n_layers=3, n_heads=4, d_ff=608, max_seq=256)


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: VanillaConfig):
        super().__init__()
        self.n_heads, self.d_head = cfg.n_heads, cfg.d_model // cfg.n_heads
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=False)
        self.out = nn.Linear(cfg.d_model, cfg.d_model, bias=False)

    def forward(self, x):
        B, T, _ = x.shape
        # (B, T, 3, heads, d_head) -> three (B, heads, T, d_head)
        q, k, v = self.qkv(x).view(B, T, 3, self.n_heads, self.d_head).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.out(y.transpose(1, 2).reshape(B, T, -1))


class FeedForward(nn.Module):
    def __init__(self, cfg: VanillaConfig):
        super().__init__()
        self.up = nn.Linear(cfg.d_model, cfg.d_ff, bias=False)
        self.down = nn.Linear(cfg.d_ff, cfg.d_model, bias=False)

    def forward(self, x):
        return self.down(F.gelu(self.up(x)))  # exact (erf) GELU


class Block(nn.Module):
    def __init__(self, cfg: VanillaConfig):
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.d_model)
        self.attn = CausalSelfAttention(cfg)
        self.norm2 = nn.LayerNorm(cfg.d_model)
        self.ffn = FeedForward(cfg)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


class VanillaGPT(nn.Module):
    def __init__(self, cfg: VanillaConfig = None):
        super().__init__()
        self.cfg = cfg = cfg or VanillaConfig()
        self.tok_embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos_embed = nn.Embedding(cfg.max_seq, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm_final = nn.LayerNorm(cfg.d_model)
        self.unembed = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.apply(self._init)
        # GPT-2: residual projections scaled down with depth
        for name, p in self.named_parameters():
            if name.endswith(("attn.out.weight", "ffn.down.weight")):
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * cfg.n_layers))

    @staticmethod
    def _init(m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, idx):
        T = idx.size(1)
        if T > self.cfg.max_seq:
            raise ValueError(f"sequence of {T} tokens is longer than max_seq {self.cfg.max_seq}")
        x = self.tok_embed(idx) + self.pos_embed(torch.arange(T, device=idx.device))
        for block in self.blocks:
            x = block(x)
        return self.unembed(self.norm_final(x))

    def loss(self, idx, targets):
        return next_token_loss(self(idx), targets)

    def generate(self, idx, max_new_tokens: int, temperature: float = 0.0, top_k: int | None = None,
                 top_p: float | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """Continue idx (B, T) greedily or by sampling; the context is the last max_seq tokens."""
        return generate_windowed(self, idx, max_new_tokens, self.cfg.max_seq, temperature, top_k,
                                 top_p, generator)
