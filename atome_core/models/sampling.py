"""Picking the next token from logits: greedy, or sampled with temperature / top-k / top-p.

Shared by every model's `generate`. Sampling draws from a torch.Generator the
caller passes, so a seed gives the same text every time.
"""
import torch
import torch.nn.functional as F


def sample_next(logits: torch.Tensor, temperature: float = 0.0, top_k: int | None = None,
                top_p: float | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """logits (B, V) -> next token ids (B,). temperature 0: argmax (the first maximum)."""
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    logits = logits.float()
    if temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits / temperature
    if top_k is not None and top_k < logits.size(-1):
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        # keep the smallest set of most likely tokens whose probability reaches top_p
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        cumulative = torch.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
        drop_sorted = cumulative - torch.softmax(sorted_logits, dim=-1) >= top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def check_prompt(idx: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """A (B, T) LongTensor of ids in range, with T >= 1; a clear error otherwise."""
    idx = torch.as_tensor(idx)
    if idx.dim() == 1:
        idx = idx[None]
    if idx.dim() != 2 or idx.size(1) < 1:
        raise ValueError(f"prompt must be (batch, time) with time >= 1, got shape {tuple(idx.shape)}")
    if idx.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        raise ValueError(f"prompt must hold integer token ids, got {idx.dtype}")
    if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= vocab_size):
        raise ValueError(f"token ids must be in 0..{vocab_size - 1}, got {int(idx.min())}..{int(idx.max())}")
    return idx.long()


def next_token_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy in nats of logits (B, T, V) against targets (B, T)."""
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), targets.reshape(-1))


@torch.no_grad()
def generate_windowed(model, idx, max_new_tokens: int, context: int, temperature: float = 0.0,
                      top_k: int | None = None, top_p: float | None = None,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """Generation by re-running `model(idx)` on the last `context` tokens for every new token
    (for models with a position limit and no recurrent path)."""
    idx = check_prompt(idx, model.cfg.vocab_size).to(next(model.parameters()).device)
    was_training = model.training
    model.eval()
    try:
        for _ in range(max_new_tokens):
            logits = model(idx[:, -context:])[:, -1]
            idx = torch.cat([idx, sample_next(logits, temperature, top_k, top_p, generator)[:, None]], dim=1)
    finally:
        model.train(was_training)
    return idx
