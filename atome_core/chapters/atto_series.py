"""Chapter 1's experiment: the atto series' data (Shakespeare in the 64-symbol vocabulary),
the one training recipe, and the budget search that picks each budget's configuration.
"""

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from ..models.atto import (
    AttoConfig,
    AttoModel,
    AttoVocab,
    count_params,
    count_terms,
    stream_loss,
)


@dataclass
class SeriesData:
    """The chapter's data: a corpus mapped to the 64-symbol vocabulary, split as load_corpus splits it."""
    corpus: str
    vocab: AttoVocab
    train: np.ndarray            # int64 ids of the training split
    val: np.ndarray              # int64 ids of the validation split (the last 10 %)
    distinct_train_chars: int    # before folding
    val_changed_fraction: float  # validation characters mapped to "other"
    train_changed_fraction: float


def series_data(corpus: str = "shakespeare", max_chars: int | None = None, vocab_size: int = 64) -> SeriesData:
    """Load a corpus (data.load_corpus), build the vocabulary from its training split, encode both splits.

    max_chars truncates the text first (the smoke profile); the split rule stays the same.
    """
    from .. import data
    c = data.load_corpus(corpus)
    train_text, val_text = c.train, c.val
    if max_chars:
        train_text, val_text = data.train_val_split(c.text[:max_chars])
    vocab = AttoVocab.from_text(train_text, vocab_size)
    return SeriesData(corpus, vocab, vocab.encode(train_text), vocab.encode(val_text), len(set(train_text)),
                      vocab.changed_fraction(val_text), vocab.changed_fraction(train_text))


# -----------------------------------------------------------------------------
# budget search: configurations whose count is exactly the budget, and which wins

def fill_budget(budget: int, template: AttoConfig, max_diag: int = 8) -> AttoConfig | None:
    """`template` completed with the n_diag that makes the count exactly `budget`, or None."""
    base = count_params(replace(template, n_diag=0))
    remainder = budget - base
    E = template.n_embd
    if remainder < 0 or remainder % E or remainder // E > max_diag:
        return None
    try:
        cfg = replace(template, n_diag=remainder // E)
    except ValueError:  # e.g. no context at all
        return None
    return cfg if count_params(cfg) == budget else None


def fit_hidden(budget: int, template: AttoConfig, max_diag: int = 8, min_diag: int = 0,
               second: float = 0.0) -> AttoConfig | None:
    """The widest hidden layer H for which far-position gains (min_diag..max_diag of them)
    fill `budget` exactly; None when no H >= 1 fits. H = E means no hidden width of its own.

    second > 0 adds a second hidden layer of width about second * H (the nearest width,
    within a quarter of it either way, that makes the count exact).
    """
    if template.n_full == 0:
        return fill_budget(budget, template, max_diag)
    t, E = template, template.n_embd
    for H in range(budget // (t.n_full * (t.rank or E)), 0, -1):
        widths2 = [0]
        if second > 0:
            target = max(1, round(second * H))
            slack = max(1, target // 4)
            widths2 = sorted((w for w in range(target - slack, target + slack + 1) if w >= 1),
                             key=lambda w: abs(w - target))
        for H2 in widths2:
            # plain arithmetic first: building a config for every (H, H2) is slow
            rest = budget - count_terms(t.vocab_size, E, t.n_full, 0, H, H2, t.rank, t.hidden_bias, t.output_bias)
            if rest < 0 or rest % E or not min_diag <= rest // E <= max_diag:
                continue
            cfg = fill_budget(budget, replace(t, n_hidden=0 if H == E else H, n_hidden2=H2), max_diag)
            if cfg is not None:
                return cfg
    return None


def shape_candidates(budget: int, widths, fulls, max_diag: int = 8, vocab_size: int = 64) -> dict:
    """{(E, n_full): config} for the base recipe: relu hidden layer, output bias, H filled.

    n_full = 0 is the linear, parameter-free-mixing family (the current character's
    embedding plus per-dimension gains for earlier ones), which is all that fits the
    smallest budgets.
    """
    out = {}
    for E in widths:
        if vocab_size * E > budget:
            continue
        for n_full in fulls:
            tries = []
            if n_full:
                tries = [AttoConfig(vocab_size=vocab_size, n_embd=E, n_full=n_full, nonlinearity="relu",
                                    output_bias=ob) for ob in (True, False)]
            else:
                tries = [AttoConfig(vocab_size=vocab_size, n_embd=E, n_full=0, skip=True, output_bias=ob)
                         for ob in (True, False)]
            for t in tries:
                cfg = fit_hidden(budget, t, max_diag if n_full else 64)
                if cfg is not None:
                    out[(E, n_full)] = cfg
                    break
    return out


def variant_candidates(budget: int, best: AttoConfig, max_diag: int = 8) -> list[AttoConfig]:
    """Alternatives around the best shape, each refilled to the exact budget: other
    nonlinearities, a hidden bias, the skip path, low-rank mixing, a long tail of
    per-dimension gains (tying across positions) in place of hidden units, and a second
    hidden layer (half as wide as the first) at the same width and at half the width."""
    if best.n_full == 0:
        return []
    E = best.n_embd
    base = replace(best, n_hidden=0, n_hidden2=0, n_diag=0)
    tries = [replace(base, nonlinearity="tanh"), replace(base, nonlinearity="none"),
             replace(base, hidden_bias=True), replace(base, skip=True),
             replace(base, rank=max(1, E // 2))]
    out = []
    for t in tries:
        cfg = fit_hidden(budget, t, max(max_diag, 2 * E if t.hidden_bias else max_diag))
        if cfg is not None and cfg != best:
            out.append(cfg)
    out.append(fit_hidden(budget, base, max_diag=64, min_diag=24))
    out.append(fit_hidden(budget, base, max_diag, second=0.5))
    if E >= 2:
        out.append(fit_hidden(budget, replace(base, n_embd=E // 2), max_diag, second=0.5))
    return [c for c in dict.fromkeys(out) if c is not None and c != best]


def search_widths(budget: int, all_widths=(1, 2, 4, 8, 16, 32, 64), n_widths: int = 3,
                  vocab_size: int = 64) -> tuple:
    """The n_widths largest widths whose embedding takes at most half the budget, plus the
    width whose embedding is the whole budget when nothing else fits (the 64-parameter model)."""
    half = [E for E in all_widths if vocab_size * E * 2 <= budget]
    if half:
        return tuple(half[-n_widths:])
    return tuple(E for E in all_widths if vocab_size * E <= budget)[-1:]


@dataclass
class SearchResult:
    budget: int
    shape_losses: dict            # (E, n_full) -> validation loss (nats/char) of the base recipe
    shape_configs: dict           # (E, n_full) -> AttoConfig
    variant_losses: list          # [(AttoConfig, loss)] around the best shape
    best: AttoConfig
    best_loss: float
    seconds: float
    lr: float = 0.0               # the learning rate the winner trains with
    lr_losses: dict = None        # lr -> loss of the winner's short run


def train_recipe(model: nn.Module, train_tokens, val_tokens, *, steps: int, batch_size: int, seq_len: int,
                 lr: float, seed: int, progress_desc: str = ""):
    """The chapter's one training recipe, through the shared trainer: AdamW, 5 % linear
    warmup then cosine down to lr/20, batches drawn from `seed`. Returns the TrainResult.
    `val_tokens` only feeds the trainer's own end-of-run loss; callers score separately."""
    from ..train import TrainConfig, train
    tc = TrainConfig(steps=steps, batch_size=batch_size, seq_len=seq_len, lr=lr, schedule="cosine",
                     warmup_steps=max(1, steps // 20), min_lr=lr / 20, seed=seed,
                     log_every=max(1, steps // 20))
    return train(model, train_tokens, val_tokens, tc, progress_desc=progress_desc)


def train_atto(cfg: AttoConfig, train_tokens, val_tokens, *, steps: int, batch_size: int, seq_len: int,
               lr: float, seed: int, progress_desc: str = ""):
    """A fresh AttoModel(cfg), initialised from torch.manual_seed(seed), trained by train_recipe.
    Returns (model, TrainResult)."""
    torch.manual_seed(seed)
    model = AttoModel(cfg)
    result = train_recipe(model, train_tokens, val_tokens, steps=steps, batch_size=batch_size,
                          seq_len=seq_len, lr=lr, seed=seed, progress_desc=progress_desc)
    return model, result


def search_budget(budget: int, train_tokens, val_tokens, *, widths=None, n_widths: int = 2,
                  fulls=(2, 4, 8), variants: bool = True, steps: int = 150, batch_size: int = 16,
                  seq_len: int = 128, lr: float = 3e-2, seed: int = 0, max_diag: int = 8,
                  vocab_size: int = 64, log=None) -> SearchResult:
    """Pick the configuration for `budget` by short training runs scored on `val_tokens`.

    1. Shape: for each width E (given, or the n_widths largest whose embedding takes at
       most half the budget) and each n_full in `fulls`, the base recipe (relu hidden layer
       as wide as fits, output bias, far-position gains filling the rest exactly), plus the
       linear family (n_full = 0: skip path and gains only) at the largest width.
    2. Variants around the best shape (variant_candidates), when `variants`.
    3. The winner once more at twice the learning rate (when `variants`); the better rate
       is the one its final training uses.
    Each candidate trains `steps` steps (train_atto, same seed); the lowest stream_loss on
    val_tokens wins. Every candidate has exactly `budget` parameters.
    """
    import time
    t0 = time.perf_counter()
    val_score = np.asarray(val_tokens)
    trainer_val = val_score[: seq_len * 2 + 1]

    def score(cfg, tag, rate=lr):
        model, _ = train_atto(cfg, train_tokens, trainer_val, steps=steps, batch_size=batch_size,
                              seq_len=seq_len, lr=rate, seed=seed, progress_desc=f"atto-{budget} {tag}")
        loss = stream_loss(model, val_score)
        if log:
            log(f"atto-{budget} {tag:8s} {cfg.describe():75s} {loss:.4f}")
        return loss

    widths = tuple(widths or search_widths(budget, n_widths=n_widths, vocab_size=vocab_size))
    shapes = shape_candidates(budget, widths, tuple(fulls), max_diag, vocab_size)
    shapes.update(shape_candidates(budget, widths[-1:], (0,), max_diag, vocab_size))
    if not shapes:
        raise ValueError(f"no configuration of the search space has exactly {budget} parameters")
    shape_losses = {key: score(cfg, "shape") for key, cfg in shapes.items()}
    best_key = min(shape_losses, key=shape_losses.get)
    best, best_loss = shapes[best_key], shape_losses[best_key]
    variant_losses = []
    for cfg in (variant_candidates(budget, best, max_diag) if variants else []):
        loss = score(cfg, "variant")
        variant_losses.append((cfg, loss))
        if loss < best_loss:
            best, best_loss = cfg, loss
    lr_losses = {lr: best_loss}
    if variants:
        lr_losses[2 * lr] = score(best, "2x lr", 2 * lr)
    best_lr = min(lr_losses, key=lr_losses.get)
    return SearchResult(budget, shape_losses, shapes, variant_losses, best, lr_losses[best_lr],
                        time.perf_counter() - t0, best_lr, lr_losses)


def finalists(result: SearchResult) -> list[AttoConfig]:
    """The configurations that go on to full-length training: the search winner and, when it
    has one hidden layer, the best two-layer variant. Short runs favour what learns fastest,
    and a second layer learns more slowly but further (the chapter measures it), so the
    two-layer candidate gets a full-length run before the choice is made."""
    out = [result.best]
    deep = [(loss, cfg) for cfg, loss in result.variant_losses if cfg.n_hidden2]
    if deep and not result.best.n_hidden2:
        out.append(min(deep, key=lambda lc: lc[0])[1])
    return out


# -----------------------------------------------------------------------------
# the whole series: every budget searched, its finalists trained, the winner with every seed

def search_series(budgets, train_tokens, val_search, *, heatmap_budget, heatmap_widths, heatmap_fulls,
                  n_widths: int, fulls, **search_kw) -> dict:
    """{budget: SearchResult}, in budget order. The heat-map budget searches the wider grid
    (heatmap_widths x heatmap_fulls); every other budget the n_widths largest widths x fulls.
    search_kw: steps, batch_size, seq_len, lr, seed, variants (search_budget)."""
    from ..progress import progress
    search = {}
    for budget in progress(budgets, desc="search"):
        if budget == heatmap_budget:
            search[budget] = search_budget(budget, train_tokens, val_search, widths=heatmap_widths,
                                           fulls=heatmap_fulls, **search_kw)
        else:
            search[budget] = search_budget(budget, train_tokens, val_search, n_widths=n_widths,
                                           fulls=fulls, **search_kw)
    return search


@dataclass
class SeriesRuns:
    """The full-length runs of the series."""
    chosen: dict           # budget -> the kept AttoConfig
    finalist_losses: dict  # budget -> [(describe, loss on the search's part of validation)] at the first seed
    losses: dict           # budget -> {seed: nats per character on the whole validation split}
    seconds: dict          # budget -> {seed: training seconds}
    models: dict           # budget -> the first seed's trained model


def train_series(search: dict, train_tokens, val_tokens, val_search, *, seeds, steps: int, batch_size: int,
                 seq_len: int) -> SeriesRuns:
    """Per budget (in order): every finalist trains with the first seed and the one with the
    lower stream_loss on `val_search` is kept; the kept configuration then trains with the
    other seeds. Every run uses its search's learning rate and is scored on all of val_tokens."""
    from ..progress import progress
    trainer_val = val_tokens[: 2 * seq_len + 1]

    def run(cfg, budget, seed):
        return train_atto(cfg, train_tokens, trainer_val, steps=steps, batch_size=batch_size, seq_len=seq_len,
                          lr=search[budget].lr, seed=seed, progress_desc=f"atto-{budget} seed {seed}")

    out = SeriesRuns({}, {}, {}, {}, {})
    for budget in progress(list(search), desc="final"):
        first = {}
        for cfg in finalists(search[budget]):
            model, res = run(cfg, budget, seeds[0])
            first[cfg] = (stream_loss(model, val_search), model, res)
        cfg = min(first, key=lambda c: first[c][0])
        out.chosen[budget] = cfg
        out.finalist_losses[budget] = [(c.describe(), v[0]) for c, v in first.items()]
        out.losses[budget], out.seconds[budget] = {}, {}
        for s in seeds:
            model, res = first[cfg][1:] if s == seeds[0] else run(cfg, budget, s)
            out.losses[budget][s] = stream_loss(model, val_tokens)
            out.seconds[budget][s] = res.train_seconds
            if s == seeds[0]:
                out.models[budget] = model
    return out


TRANSFORMER_LR = 1e-2  # attention trains less stably at atto's 3e-2


def train_transformers(budgets, train_tokens, val_tokens, *, seed: int, steps: int, block: int,
                       chars_per_step: int, lr: float = TRANSFORMER_LR) -> dict:
    """{budget: {config, loss, seconds, tokens}, or None where no transformer fits}: the
    contrast transformer with exactly the budget's parameters, trained by train_recipe on
    about chars_per_step characters a step and scored in windows of its block size."""
    from ..evaluate import evaluate_loss
    from ..models import tiny_transformer
    from ..progress import progress
    out = {}
    for budget in progress(budgets, desc="transformer"):
        cfg = tiny_transformer.contrast_config(budget, block)
        if cfg is None:
            out[budget] = None
            continue
        torch.manual_seed(seed)
        model = tiny_transformer.TinyTransformer(cfg)
        if model.num_params() != budget:
            raise ValueError(f"transformer for {budget} has {model.num_params()} parameters")
        batch = max(1, chars_per_step // cfg.block_size)
        res = train_recipe(model, train_tokens, val_tokens[: 2 * cfg.block_size + 1], steps=steps, batch_size=batch,
                           seq_len=cfg.block_size, lr=lr, seed=seed, progress_desc=f"transformer-{budget}")
        out[budget] = {"config": cfg, "loss": evaluate_loss(model, val_tokens, cfg.block_size, batch_size=256),
                       "seconds": res.train_seconds, "tokens": steps * batch * cfg.block_size}
    return out


def continuations(model, vocab: AttoVocab, prompts, n_chars: int, temperature: float, seed: int) -> dict:
    """{prompt: {greedy, sampled}}: n_chars after each prompt, argmax and sampled at
    `temperature` from a torch.Generator seeded seed + the prompt's index."""
    out = {}
    for i, prompt in enumerate(prompts):
        ids = torch.from_numpy(vocab.encode(prompt))[None]
        greedy = vocab.decode(model.generate(ids, n_chars, greedy=True)[0, ids.shape[1]:].numpy())
        g = torch.Generator().manual_seed(seed + i)
        sampled = model.generate(ids, n_chars, temperature=temperature, generator=g)[0, ids.shape[1]:]
        out[prompt] = {"greedy": greedy, "sampled": vocab.decode(sampled.numpy())}
    return out


def export_web(folder, models: dict, vocab: AttoVocab, infos: dict, probe_tokens) -> dict:
    """Write every model ({budget: model}) as atto-<budget>.json (+ .js) and models.json into
    `folder` (formats.atto_json.write_web_folder), read each file back and check that it gives
    bit-identical logits on probe_tokens. Returns the manifest."""
    from ..formats import atto_json
    entries = [{"name": f"atto-{b}", "model": m, "vocab": vocab, "info": infos[b]} for b, m in models.items()]
    manifest = atto_json.write_web_folder(folder, entries)
    probe = torch.from_numpy(np.asarray(probe_tokens))[None]
    for e in entries:
        back, _ = atto_json.load(Path(folder) / f"{e['name']}.json")
        a, b = e["model"](probe), back(probe)
        if not torch.equal(a.view(torch.int32), b.view(torch.int32)):
            raise ValueError(f"{e['name']}: the exported file does not give bit-identical logits")
    return manifest
