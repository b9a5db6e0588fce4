"""A GPT-style transformer small enough to match the atto budgets exactly.

The contrast model of chapter 1: token and learned position embeddings, n_layer
pre-norm blocks (RMSNorm with a gain, causal multi-head attention, a ReLU MLP), a
final RMSNorm and a readout tied to the token embedding. No biases. The block size
(number of learned positions) is what fills a budget exactly: every other term of
the count is a multiple of the width E, so with E dividing the budget the remainder
is a whole number of positions.
"""
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .atto import decode_loop


@dataclass(frozen=True)
class TinyTransformerConfig:
    vocab_size: int = 64
    n_embd: int = 8
    n_layer: int = 1
    n_head: int = 2
    n_mlp: int = 32
    block_size: int = 64

    def __post_init__(self):
        for name in ("vocab_size", "n_embd", "n_layer", "n_head", "n_mlp", "block_size"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"TinyTransformerConfig.{name} must be a positive integer")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd {self.n_embd} is not divisible by n_head {self.n_head}")

    def describe(self) -> str:
        return (f"E={self.n_embd}, {self.n_layer} layer(s), {self.n_head} head(s), MLP {self.n_mlp}, "
                f"block {self.block_size}")


def count_params(cfg: TinyTransformerConfig) -> int:
    E, M = cfg.n_embd, cfg.n_mlp
    per_layer = 2 * E + 4 * E * E + 2 * E * M          # two norms, q k v o, MLP in and out
    return cfg.vocab_size * E + cfg.block_size * E + cfg.n_layer * per_layer + E


def for_budget(budget: int, n_embd: int, n_layer: int, n_head: int, target_block: int = 64,
               min_block: int = 16, max_block: int = 256, vocab_size: int = 64) -> TinyTransformerConfig | None:
    """The configuration with exactly `budget` parameters whose block size (what the
    MLP width leaves over) is closest to target_block within [min_block, max_block]."""
    best = None
    for n_mlp in range(1, 16 * n_embd + 1):
        rest = count_params(TinyTransformerConfig(vocab_size, n_embd, n_layer, n_head, n_mlp, 1)) - n_embd
        remainder = budget - rest
        if remainder % n_embd or not min_block <= remainder // n_embd <= max_block:
            continue
        cfg = TinyTransformerConfig(vocab_size, n_embd, n_layer, n_head, n_mlp, remainder // n_embd)
        if best is None or abs(cfg.block_size - target_block) < abs(best.block_size - target_block):
            best = cfg
    assert best is None or count_params(best) == budget
    return best


class RMSNorm(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * self.weight


class Block(nn.Module):
    def __init__(self, cfg: TinyTransformerConfig):
        super().__init__()
        E = cfg.n_embd
        self.n_head = cfg.n_head
        self.norm1, self.norm2 = RMSNorm(E), RMSNorm(E)
        self.qkv = nn.Linear(E, 3 * E, bias=False)
        self.out = nn.Linear(E, E, bias=False)
        self.mlp_in = nn.Linear(E, cfg.n_mlp, bias=False)
        self.mlp_out = nn.Linear(cfg.n_mlp, E, bias=False)

    def forward(self, x):
        B, T, E = x.shape
        q, k, v = self.qkv(self.norm1(x)).split(E, dim=2)
        q, k, v = (t.view(B, T, self.n_head, E // self.n_head).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.out(y.transpose(1, 2).reshape(B, T, E))
        return x + self.mlp_out(F.relu(self.mlp_in(self.norm2(x))))


class TinyTransformer(nn.Module):
    def __init__(self, cfg: TinyTransformerConfig):
        super().__init__()
        self.cfg = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.wpe = nn.Embedding(cfg.block_size, cfg.n_embd)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.norm = RMSNorm(cfg.n_embd)
        for name, p in self.named_parameters():
            if p.dim() == 2:
                nn.init.normal_(p, std=0.02 if name.startswith("w") else 1 / math.sqrt(p.shape[1]))
        for block in self.blocks:  # residual branches start small
            nn.init.normal_(block.out.weight, std=0.02 / math.sqrt(2 * cfg.n_layer))
            nn.init.normal_(block.mlp_out.weight, std=0.02 / math.sqrt(2 * cfg.n_layer))

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        T = idx.shape[1]
        if T > self.cfg.block_size:
            raise ValueError(f"sequence of {T} exceeds the block size {self.cfg.block_size}")
        x = self.wte(idx) + self.wpe(torch.arange(T, device=idx.device))
        for block in self.blocks:
            x = block(x)
        return self.norm(x) @ self.wte.weight.t()

    def loss(self, idx, targets):
        logits = self.forward(idx)
        return F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))

    @torch.no_grad()
    def generate(self, idx, max_new_tokens: int, temperature: float = 1.0, greedy: bool = False,
                 generator: torch.Generator | None = None):
        return decode_loop(self, idx, self.cfg.block_size, max_new_tokens, temperature, greedy, generator)


def shape_candidates(budget: int, widths, layers=(1, 2, 3), head_counts=(1, 2, 4, 8), blocks=(32, 16, 64, 128),
                     min_block: int = 8, max_block: int = 256, vocab_size: int = 64) -> dict:
    """{(E, n_layer, n_head, target block): config} for chapter 1's transformer search: every
    combination that for_budget fills to exactly `budget` parameters, heads at least 2 wide
    (one head may be narrower). Keys come widest E first, then by the order of each argument;
    a combination that repeats an earlier configuration is left out."""
    out, seen = {}, set()
    for E in sorted(widths, reverse=True):
        for L in layers:
            for H in head_counts:
                if E % H or (H > 1 and E // H < 2):
                    continue
                for target in blocks:
                    cfg = for_budget(budget, E, L, H, target, min_block, max_block, vocab_size)
                    if cfg is not None and cfg not in seen:
                        seen.add(cfg)
                        out[(E, L, H, target)] = cfg
    return out
