"""The atto series: neural n-gram character models from 64 to 16,384 parameters.

A neural n-gram model predicts the next character from the previous `context`
characters only (no recurrence, no attention). Ours, for a 64-symbol vocabulary
with embedding width E:

    x_k   = wte[c_{t-k}]                                 k = 0 (the current character) .. context-1
    h     = sum_{k < n_full} x_k W_k  (+ hidden bias)    per-position maps, E -> H
    z     = f(h) (P if H != E)                           f: none | relu | tanh; P: H -> E
            (or f(f(h) U + c2) P with a second hidden layer U: H -> H2)
    z    += sum_{n_full <= k < context} g_k * x_k        far positions: one gain per dimension
    z    += x_0                                          when skip: a parameter-free residual
    logit = z wte^T (+ output bias)                      readout tied to the embedding

W_k is a full E x H matrix, or low-rank (W_k = A_k B, A_k: E x r, B: r x H shared by
all positions). Positions before the start of the text contribute zero vectors,
so no padding symbol (and no parameter) is needed.

Every parameter is counted (`count_params`), and the budget search picks, per
budget, a configuration whose count equals the budget exactly: the far-position
gains cost E each, which is what lets a configuration fill a power-of-two budget.
"""

import math
from collections import Counter
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

BUDGETS = tuple(64 * 2 ** i for i in range(9))  # 64, 128, ..., 16384
NONLINEARITIES = ("none", "relu", "tanh")


# -----------------------------------------------------------------------------
# the 64-symbol vocabulary

OTHER_DISPLAY = "\ufffd"  # how the "other" symbol prints


class AttoVocab:
    """The 63 most frequent characters of a training text plus one "other" symbol.

    Ids are in frequency order (most frequent first; ties by code point), and id 63
    is "other": every character outside the 63 maps to it and decodes to U+FFFD.
    The mapping is a pure function of the training text.
    """

    def __init__(self, symbols):
        symbols = list(symbols)
        if len(symbols) != len(set(symbols)) or any(len(s) != 1 for s in symbols):
            raise ValueError("vocabulary symbols must be distinct single characters")
        if OTHER_DISPLAY in symbols:
            raise ValueError(f"{OTHER_DISPLAY!r} is reserved for the 'other' symbol")
        self.symbols = symbols                     # the known characters, id = position
        self.other = len(symbols)                  # the id of "other"
        self.index = {ch: i for i, ch in enumerate(symbols)}

    @classmethod
    def from_text(cls, text: str, size: int = 64) -> "AttoVocab":
        if size < 2:
            raise ValueError(f"vocabulary size must be at least 2, got {size}")
        counts = Counter(text)
        ranked = [ch for ch in sorted(counts, key=lambda ch: (-counts[ch], ord(ch))) if ch != OTHER_DISPLAY]
        # A text with fewer distinct characters is topped up with unused printable ASCII (in
        # code-point order), so the vocabulary - and every parameter count - stays the same.
        fillers = (chr(c) for c in list(range(32, 127)) + list(range(161, 1024)) if chr(c) not in counts)
        while len(ranked) < size - 1:
            ranked.append(next(fillers))
        return cls(ranked[: size - 1])

    @property
    def size(self) -> int:
        return len(self.symbols) + 1

    def __len__(self):
        return self.size

    def encode(self, text: str) -> np.ndarray:
        other = self.other
        return np.fromiter((self.index.get(ch, other) for ch in text), dtype=np.int64, count=len(text))

    def decode(self, ids) -> str:
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        if ids.size and (ids.min() < 0 or ids.max() >= self.size):
            raise ValueError(f"ids must be in 0..{self.size - 1}, got range {ids.min()}..{ids.max()}")
        table = self.symbols + [OTHER_DISPLAY]
        return "".join(table[i] for i in ids)

    def changed_fraction(self, text: str) -> float:
        """Fraction of the characters of `text` that map to "other" (i.e. are changed)."""
        if not text:
            return 0.0
        return sum(1 for ch in text if ch not in self.index) / len(text)

    def to_dict(self) -> dict:
        return {"symbols": "".join(self.symbols), "other_id": self.other, "other_display": OTHER_DISPLAY}

    @classmethod
    def from_dict(cls, d) -> "AttoVocab":
        if not isinstance(d, dict) or not isinstance(d.get("symbols"), str):
            raise ValueError("not an atto vocabulary: want {'symbols': '...', 'other_id': n}")
        vocab = cls(list(d["symbols"]))
        if d.get("other_id", vocab.other) != vocab.other:
            raise ValueError(f"vocabulary other_id {d.get('other_id')} != {vocab.other}")
        return vocab


# -----------------------------------------------------------------------------
# config and exact parameter count

@dataclass(frozen=True)
class AttoConfig:
    vocab_size: int = 64
    n_embd: int = 16          # E: embedding width (and readout width: tied)
    n_full: int = 8           # nearest positions with a full (or low-rank) E x H map
    n_diag: int = 0           # further positions with one gain per dimension
    n_hidden: int = 0         # H; 0 means H = E
    n_hidden2: int = 0        # H2: a second hidden layer H -> H2 (0: none)
    rank: int = 0             # 0: full per-position maps; r > 0: W_k = A_k B
    nonlinearity: str = "none"
    hidden_bias: bool = False
    output_bias: bool = False
    skip: bool = False        # add the current character's embedding to z (no parameters)

    def __post_init__(self):
        for name in ("vocab_size", "n_embd"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"AttoConfig.{name} must be a positive integer, got {getattr(self, name)!r}")
        for name in ("n_full", "n_diag", "n_hidden", "n_hidden2", "rank"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                raise ValueError(f"AttoConfig.{name} must be a non-negative integer, got {getattr(self, name)!r}")
        if self.nonlinearity not in NONLINEARITIES:
            raise ValueError(f"nonlinearity must be one of {NONLINEARITIES}, got {self.nonlinearity!r}")
        if self.n_full == 0 and (self.n_hidden or self.n_hidden2 or self.rank or self.hidden_bias):
            raise ValueError("n_hidden, n_hidden2, rank and hidden_bias need n_full >= 1")
        if self.context < 1 and not self.skip:
            raise ValueError("the model sees no context: set n_full, n_diag or skip")

    @property
    def context(self) -> int:
        """How many characters (the current one included) a prediction sees."""
        return max(self.n_full + self.n_diag, 1 if self.skip else 0)

    @property
    def hidden(self) -> int:
        return self.n_hidden or self.n_embd

    @property
    def last_width(self) -> int:
        """Width of the last hidden layer; a projection P maps it to E when it differs."""
        return self.n_hidden2 or self.hidden

    def describe(self) -> str:
        mix = f"{self.n_full} full" if not self.rank else f"{self.n_full} rank-{self.rank}"
        parts = [f"E={self.n_embd}", f"context {self.context} ({mix} + {self.n_diag} diagonal)"]
        if self.n_hidden or self.n_hidden2:
            parts.append(f"H={self.hidden}" + (f"+{self.n_hidden2}" if self.n_hidden2 else ""))
        parts.append(self.nonlinearity)
        if self.hidden_bias:
            parts.append("hidden bias")
        if self.output_bias:
            parts.append("output bias")
        if self.skip:
            parts.append("skip")
        return ", ".join(parts)


def count_params(cfg: AttoConfig) -> int:
    """The exact number of parameters of AttoModel(cfg), from the config alone."""
    return count_terms(cfg.vocab_size, cfg.n_embd, cfg.n_full, cfg.n_diag, cfg.hidden, cfg.n_hidden2,
                       cfg.rank, cfg.hidden_bias, cfg.output_bias)


def count_terms(V: int, E: int, n_full: int, n_diag: int, H: int, H2: int, rank: int,
                hidden_bias: bool, output_bias: bool) -> int:
    """count_params on plain numbers (H is the first hidden width, E when it has none)."""
    n = V * E                                                          # wte (tied readout)
    if n_full:
        n += n_full * E * H if rank == 0 else n_full * E * rank + rank * H
        n += H if hidden_bias else 0
        if H2:
            n += H * H2 + (H2 if hidden_bias else 0)
        last = H2 or H
        n += last * E if last != E else 0                              # projection P
    n += n_diag * E                                                    # far-position gains
    n += V if output_bias else 0
    return n


# -----------------------------------------------------------------------------
# the model

class AttoModel(nn.Module):
    def __init__(self, cfg: AttoConfig):
        super().__init__()
        self.cfg = cfg
        V, E, H, r = cfg.vocab_size, cfg.n_embd, cfg.hidden, cfg.rank
        self.wte = nn.Parameter(torch.randn(V, E) / math.sqrt(E))
        fan_in = max(1, cfg.n_full * E)
        if cfg.n_full and r == 0:
            # full_maps[k] maps the embedding of the character k positions back
            self.full_maps = nn.Parameter(torch.randn(cfg.n_full, E, H) / math.sqrt(fan_in))
        if cfg.n_full and r > 0:
            self.lowrank_in = nn.Parameter(torch.randn(cfg.n_full, E, r) / math.sqrt(fan_in))
            self.lowrank_out = nn.Parameter(torch.randn(r, H) / math.sqrt(r))
        if cfg.n_full and cfg.hidden_bias:
            self.hidden_bias = nn.Parameter(torch.zeros(H))
        if cfg.n_full and cfg.n_hidden2:
            self.layer2 = nn.Parameter(torch.randn(H, cfg.n_hidden2) / math.sqrt(H))
            if cfg.hidden_bias:
                self.layer2_bias = nn.Parameter(torch.zeros(cfg.n_hidden2))
        if cfg.n_full and cfg.last_width != E:
            self.proj = nn.Parameter(torch.randn(cfg.last_width, E) / math.sqrt(cfg.last_width))
        if cfg.n_diag:
            self.diag_gains = nn.Parameter(torch.full((cfg.n_diag, E), 1.0 / cfg.context))
        if cfg.output_bias:
            self.output_bias = nn.Parameter(torch.zeros(V))

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """(B, T) character ids -> (B, T, V) logits for the next character."""
        if idx.dim() != 2:
            raise ValueError(f"idx must be (batch, time), got shape {tuple(idx.shape)}")
        cfg = self.cfg
        x = self.wte[idx]                                          # (B, T, E)
        xt = x.transpose(1, 2)                                     # (B, E, T) for conv1d
        T = idx.shape[1]
        z = None
        if cfg.n_full:
            # A causal convolution: output t sees t-n_full+1 .. t; kernel tap j is k = n_full-1-j.
            near = F.pad(xt, (cfg.n_full - 1, 0))
            if cfg.rank == 0:
                h = F.conv1d(near, self.full_maps.flip(0).permute(2, 1, 0)).transpose(1, 2)
            else:
                u = F.conv1d(near, self.lowrank_in.flip(0).permute(2, 1, 0)).transpose(1, 2)
                h = u @ self.lowrank_out
            if cfg.hidden_bias:
                h = h + self.hidden_bias
            h = activation(h, cfg.nonlinearity)
            if cfg.n_hidden2:
                h = h @ self.layer2
                if cfg.hidden_bias:
                    h = h + self.layer2_bias
                h = activation(h, cfg.nonlinearity)
            z = h @ self.proj if hasattr(self, "proj") else h
        if cfg.n_diag:
            # Depthwise: tap j is position k = context-1-j; the last n_full outputs look too recent.
            far = F.pad(xt, (cfg.context - 1, 0))
            w = self.diag_gains.flip(0).t().unsqueeze(1)           # (E, 1, n_diag)
            zd = F.conv1d(far, w, groups=cfg.n_embd)[:, :, :T].transpose(1, 2)
            z = zd if z is None else z + zd
        if cfg.skip:
            z = x if z is None else z + x
        logits = z @ self.wte.t()
        if cfg.output_bias:
            logits = logits + self.output_bias
        return logits

    def loss(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits = self.forward(idx)
        return F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))

    @torch.no_grad()
    def generate(self, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
                 greedy: bool = False, generator: torch.Generator | None = None) -> torch.Tensor:
        """Continue (B, T) ids by max_new_tokens: argmax (greedy) or sampled with `generator`.

        Greedy breaks ties by the lowest id (torch.argmax's first maximum).
        """
        return decode_loop(self, idx, self.cfg.context, max_new_tokens, temperature, greedy, generator)


@torch.no_grad()
def decode_loop(model: nn.Module, idx: torch.Tensor, window: int, max_new_tokens: int, temperature: float = 1.0,
                greedy: bool = False, generator: torch.Generator | None = None) -> torch.Tensor:
    """Autoregressive continuation for any model mapping (B, T) ids to (B, T, V) logits that
    needs only the last `window` ids: argmax (first maximum) or a sample drawn with `generator`."""
    if not greedy and not temperature > 0:
        raise ValueError(f"temperature must be positive when sampling, got {temperature}")
    was_training = model.training
    model.eval()
    for _ in range(max_new_tokens):
        logits = model(idx[:, -window:])[:, -1, :]
        if greedy:
            nxt = torch.argmax(logits, dim=-1, keepdim=True)
        else:
            probs = F.softmax(logits.double() / temperature, dim=-1)
            nxt = torch.multinomial(probs, 1, generator=generator)
        idx = torch.cat([idx, nxt], dim=1)
    model.train(was_training)
    return idx


def activation(h: torch.Tensor, name: str) -> torch.Tensor:
    if name == "relu":
        return F.relu(h)
    if name == "tanh":
        return torch.tanh(h)
    return h


@torch.no_grad()
def stream_loss(model: AttoModel, tokens: np.ndarray, chunk: int = 8192) -> float:
    """Mean nats per character over a whole token stream, every prediction with its full context.

    Predicts tokens[1:] from what precedes each; chunks overlap by the context, so the
    result equals one pass over the whole stream (the first predictions see fewer characters).
    """
    tokens = np.asarray(tokens, dtype=np.int64)
    if len(tokens) < 2:
        raise ValueError("need at least 2 tokens to score a prediction")
    n = model.cfg.context
    was_training = model.training
    model.eval()
    total = 0.0
    try:
        for start in range(0, len(tokens) - 1, chunk):
            end = min(len(tokens) - 1, start + chunk)
            lead = min(start, n - 1)                 # previous characters the first prediction needs
            x = torch.from_numpy(tokens[start - lead:end])[None]
            y = torch.from_numpy(tokens[start + 1:end + 1])
            logits = model(x)[0, lead:]
            total += F.cross_entropy(logits.double(), y, reduction="sum").item()
    finally:
        model.train(was_training)
    return total / (len(tokens) - 1)
