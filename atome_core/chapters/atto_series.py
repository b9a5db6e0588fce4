"""Chapter 1's experiment: the atto series' data (Shakespeare in the 64-symbol vocabulary),
the one training recipe, and the budget search that picks each budget's configuration.
"""

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

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


def recipe_config(*, steps: int, batch_size: int, seq_len: int, lr: float, seed: int):
    """The chapter's one training recipe as a TrainConfig: AdamW, 5 % linear warmup then
    cosine down to lr/20, batches drawn from `seed`."""
    from ..train import TrainConfig
    return TrainConfig(steps=steps, batch_size=batch_size, seq_len=seq_len, lr=lr, schedule="cosine",
                       warmup_steps=max(1, steps // 20), min_lr=lr / 20, seed=seed, log_every=max(1, steps // 20))


def train_recipe(model: nn.Module, train_tokens, val_tokens, *, steps: int, batch_size: int, seq_len: int,
                 lr: float, seed: int, progress_desc: str = ""):
    """The chapter's one training recipe, through the shared trainer: AdamW, 5 % linear
    warmup then cosine down to lr/20, batches drawn from `seed`. Returns the TrainResult.
    `val_tokens` only feeds the trainer's own end-of-run loss; callers score separately."""
    from ..train import train
    tc = recipe_config(steps=steps, batch_size=batch_size, seq_len=seq_len, lr=lr, seed=seed)
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


def search_shapes(budget: int, widths, fulls, max_diag: int = 8, vocab_size: int = 64) -> dict:
    """{(E, n_full): config} of a search's shape round: the base recipe at every width x n_full
    (shape_candidates), plus the linear family (n_full = 0) at the largest width. Raises when
    nothing has exactly `budget` parameters."""
    shapes = shape_candidates(budget, tuple(widths), tuple(fulls), max_diag, vocab_size)
    shapes.update(shape_candidates(budget, tuple(widths)[-1:], (0,), max_diag, vocab_size))
    if not shapes:
        raise ValueError(f"no configuration of the search space has exactly {budget} parameters")
    return shapes


def extra_rates(lr: float, extra_lrs, variants: bool) -> tuple:
    """The further learning rates a search tries its winner at: extra_lrs (twice lr when None),
    none when the search has no variant round."""
    if not variants:
        return ()
    return (2 * lr,) if extra_lrs is None else tuple(extra_lrs)


def search_budget(budget: int, train_tokens, tune_tokens, *, widths=None, n_widths: int = 2,
                  fulls=(2, 4, 8), variants: bool = True, steps: int = 150, batch_size: int = 16,
                  seq_len: int = 128, lr: float = 3e-2, extra_lrs=None, seed: int = 0, max_diag: int = 8,
                  vocab_size: int = 64, log=None) -> SearchResult:
    """Pick the configuration for `budget` by short training runs scored on `tune_tokens`
    (text no run trains on).

    1. Shape: for each width E (given, or the n_widths largest whose embedding takes at
       most half the budget) and each n_full in `fulls`, the base recipe (relu hidden layer
       as wide as fits, output bias, far-position gains filling the rest exactly), plus the
       linear family (n_full = 0: skip path and gains only) at the largest width.
    2. Variants around the best shape (variant_candidates), when `variants`.
    3. The winner once more at each of `extra_lrs` (twice `lr` when None), when `variants`;
       the best rate is the one its final training uses.
    Each candidate trains `steps` steps (train_atto, same seed); the lowest stream_loss on
    tune_tokens wins. Every candidate has exactly `budget` parameters.
    """
    import time
    t0 = time.perf_counter()
    val_score = np.asarray(tune_tokens)
    trainer_val = val_score[: seq_len * 2 + 1]

    def score(cfg, tag, rate=lr):
        model, _ = train_atto(cfg, train_tokens, trainer_val, steps=steps, batch_size=batch_size,
                              seq_len=seq_len, lr=rate, seed=seed, progress_desc=f"atto-{budget} {tag}")
        loss = stream_loss(model, val_score)
        if log:
            log(f"atto-{budget} {tag:8s} {cfg.describe():75s} {loss:.4f}")
        return loss

    widths = tuple(widths or search_widths(budget, n_widths=n_widths, vocab_size=vocab_size))
    shapes = search_shapes(budget, widths, fulls, max_diag, vocab_size)
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
    for rate in extra_rates(lr, extra_lrs, variants):
        lr_losses[rate] = score(best, f"lr {rate:g}", rate)
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

def series_grid(budget: int, *, heatmap_budget, heatmap_widths, heatmap_fulls, n_widths: int, fulls) -> tuple:
    """(widths, fulls) a budget of the series searches: the heat map's grid at heatmap_budget,
    else the n_widths largest widths (search_widths) x fulls."""
    if budget == heatmap_budget:
        return tuple(heatmap_widths), tuple(heatmap_fulls)
    return search_widths(budget, n_widths=n_widths), tuple(fulls)


def search_series(budgets, train_tokens, tune_tokens, *, heatmap_budget, heatmap_widths, heatmap_fulls,
                  n_widths: int, fulls, **search_kw) -> dict:
    """{budget: SearchResult}, in budget order. The heat-map budget searches the wider grid
    (heatmap_widths x heatmap_fulls); every other budget the n_widths largest widths x fulls.
    search_kw: steps, batch_size, seq_len, lr, extra_lrs, seed, variants (search_budget)."""
    from ..progress import progress
    search = {}
    for budget in progress(budgets, desc="search"):
        widths, budget_fulls = series_grid(budget, heatmap_budget=heatmap_budget, heatmap_widths=heatmap_widths,
                                           heatmap_fulls=heatmap_fulls, n_widths=n_widths, fulls=fulls)
        search[budget] = search_budget(budget, train_tokens, tune_tokens, widths=widths, fulls=budget_fulls,
                                       **search_kw)
    return search


def search_runs(result: SearchResult) -> int:
    """How many short training runs a search made: every shape and variant, and the winner at
    each learning rate other than the first."""
    return len(result.shape_losses) + len(result.variant_losses) + len(result.lr_losses or {1: 0}) - 1


@dataclass
class SeriesRuns:
    """The full-length runs of the series."""
    chosen: dict           # budget -> the kept AttoConfig
    finalist_losses: dict  # budget -> [(describe, loss on the search's part of validation)] at the first seed
    losses: dict           # budget -> {seed: nats per character on the whole validation split}
    seconds: dict          # budget -> {seed: training seconds}
    models: dict           # budget -> the first seed's trained model


def train_finalists(search: dict, pick, fit, score, val_tokens, tune_tokens, seeds) -> SeriesRuns:
    """Per budget (in order): every finalist (pick(SearchResult) -> configs) trains with the
    first seed and the one with the lower score on `tune_tokens` is kept; the kept configuration
    then trains with the other seeds. fit(cfg, lr, seed, desc) -> (model, TrainResult) trains at
    the search's learning rate; score(model, tokens) -> nats per character; every kept run is
    scored on all of val_tokens."""
    from ..progress import progress
    out = SeriesRuns({}, {}, {}, {}, {})
    for budget in progress(list(search), desc="final"):
        lr, first = search[budget].lr, {}
        for cfg in pick(search[budget]):
            model, res = fit(cfg, lr, seeds[0], f"{budget} seed {seeds[0]}")
            first[cfg] = (score(model, tune_tokens), model, res)
        cfg = min(first, key=lambda c: first[c][0])
        out.chosen[budget] = cfg
        out.finalist_losses[budget] = [(c.describe(), v[0]) for c, v in first.items()]
        out.losses[budget], out.seconds[budget] = {}, {}
        for s in seeds:
            model, res = first[cfg][1:] if s == seeds[0] else fit(cfg, lr, s, f"{budget} seed {s}")
            out.losses[budget][s] = score(model, val_tokens)
            out.seconds[budget][s] = res.train_seconds
            if s == seeds[0]:
                out.models[budget] = model
    return out


def train_series(search: dict, train_tokens, val_tokens, tune_tokens, *, seeds, steps: int, batch_size: int,
                 seq_len: int) -> SeriesRuns:
    """The atto series' finalist round (train_finalists): finalists(), train_atto, stream_loss."""
    trainer_val = val_tokens[: 2 * seq_len + 1]

    def fit(cfg, lr, seed, desc):
        return train_atto(cfg, train_tokens, trainer_val, steps=steps, batch_size=batch_size, seq_len=seq_len,
                          lr=lr, seed=seed, progress_desc=f"atto-{desc}")

    return train_finalists(search, lambda r: finalists(r), fit, lambda m, t: stream_loss(m, t), val_tokens,
                           tune_tokens, seeds)


# -----------------------------------------------------------------------------
# the transformer at the same budgets: the same search budget, the same finalist round

def transformer_batch(chars_per_step: int, block: int) -> int:
    """Windows per step so that a step sees about chars_per_step characters."""
    return max(1, round(chars_per_step / block))


def transformer_recipe(cfg, *, steps: int, chars_per_step: int, lr: float, seed: int):
    """The chapter's recipe (recipe_config) for a TinyTransformer(cfg): windows of its block,
    transformer_batch of them per step."""
    return recipe_config(steps=steps, batch_size=transformer_batch(chars_per_step, cfg.block_size),
                         seq_len=cfg.block_size, lr=lr, seed=seed)


def train_transformer(cfg, train_tokens, *, steps: int, chars_per_step: int, lr: float, seed: int,
                      progress_desc: str = ""):
    """A fresh TinyTransformer(cfg) from torch.manual_seed(seed), trained with transformer_recipe
    through the shared trainer. Returns (model, TrainResult)."""
    from ..models.tiny_transformer import TinyTransformer
    from ..train import train
    torch.manual_seed(seed)
    model = TinyTransformer(cfg)
    tc = transformer_recipe(cfg, steps=steps, chars_per_step=chars_per_step, lr=lr, seed=seed)
    # the trainer's own end-of-run loss reads a few training windows: nothing is chosen by it
    result = train(model, train_tokens, train_tokens[: 2 * cfg.block_size + 1], tc, progress_desc=progress_desc)
    return model, result


def transformer_loss(model, tokens) -> float:
    """Nats per character over tokens[1:], by sliding windows of the model's block, stride half a block."""
    from ..evaluate import sliding_loss
    return sliding_loss(model, tokens, model.cfg.block_size, max(1, model.cfg.block_size // 2))


def axes_changed(a: tuple, b: tuple) -> int:
    """How many of (width, layers, heads, target block) differ between two shape keys."""
    return sum(x != y for x, y in zip(a, b))


def transformer_walk(pool: dict, n_shapes: int, score) -> tuple[dict, tuple]:
    """The transformer search's shape round over `pool` ({key: config}, tiny_transformer.shape_candidates):
    ({key: loss} of the shapes tried, in the order tried; the best key). The first shape is the
    pool's first (the widest); each next one is the untried shape with the fewest axes changed
    from the best so far (ties: pool order), until min(n_shapes, len(pool)) shapes have been
    scored by score(key) -> loss. A later shape is the best only with a strictly lower loss."""
    keys, tried, best = list(pool), {}, None
    while len(tried) < min(len(pool), n_shapes):
        key = min((k for k in keys if k not in tried), key=lambda k: (axes_changed(k, best or keys[0]), keys.index(k)))
        tried[key] = score(key)
        if best is None or tried[key] < tried[best]:
            best = key
    return tried, best


def transformer_shape_runs(n_runs: int, extra_lrs) -> int:
    """How many shapes a transformer search of n_runs runs tries: the runs its rate round leaves, at least one."""
    return max(1, n_runs - len(extra_lrs))


def search_transformer(budget: int, n_runs: int, train_tokens, tune_tokens, *, widths, steps: int,
                       chars_per_step: int, lr: float, extra_lrs=(), seed: int = 0, log=None) -> SearchResult | None:
    """The transformer's search for `budget` in exactly n_runs short runs (the atto search's
    count), or fewer when fewer shapes fit; None when none fits.

    Shapes are tiny_transformer.shape_candidates (exact counts), walked by transformer_walk
    until transformer_shape_runs (n_runs - len(extra_lrs)) shapes have trained; then the
    winner once more at each of extra_lrs, as search_budget does. Every run trains `steps`
    steps of about chars_per_step characters and is scored by transformer_loss on tune_tokens.
    """
    import time

    from ..models import tiny_transformer
    t0 = time.perf_counter()
    pool = tiny_transformer.shape_candidates(budget, widths)
    if not pool:
        return None
    tune = np.asarray(tune_tokens)

    def score(cfg, tag, rate):
        model, _ = train_transformer(cfg, train_tokens, steps=steps, chars_per_step=chars_per_step, lr=rate,
                                     seed=seed, progress_desc=f"transformer-{budget} {tag}")
        loss = transformer_loss(model, tune)
        if log:
            log(f"transformer-{budget} {tag:8s} {cfg.describe():60s} {loss:.4f}")
        return loss

    tried, best = transformer_walk(pool, transformer_shape_runs(n_runs, extra_lrs),
                                   lambda key: score(pool[key], "shape", lr))
    lr_losses = {lr: tried[best]}
    for rate in extra_lrs:
        lr_losses[rate] = score(pool[best], f"lr {rate:g}", rate)
    best_lr = min(lr_losses, key=lr_losses.get)
    return SearchResult(budget, tried, {k: pool[k] for k in tried}, [], pool[best], lr_losses[best_lr],
                        time.perf_counter() - t0, best_lr, lr_losses)


def transformer_finalists(result: SearchResult) -> list:
    """The search winner and, when it has one layer, the best deeper shape the search tried
    (the transformer's counterpart of finalists())."""
    out = [result.best]
    deeper = [(loss, result.shape_configs[k]) for k, loss in result.shape_losses.items()
              if result.shape_configs[k].n_layer > result.best.n_layer]
    if deeper and result.best.n_layer == 1:
        out.append(min(deeper, key=lambda lc: lc[0])[1])
    return out


def transformer_budget_list(budgets, transformer_budgets) -> list:
    """The budgets of the series (in its order) the transformer is searched at: those in
    transformer_budgets, every one when that is None or empty."""
    return [b for b in budgets if b in (transformer_budgets or budgets)]


def search_transformers(atto_search: dict, train_tokens, tune_tokens, *, n_widths: int = 3, **kw) -> dict:
    """{budget: SearchResult or None}: each budget's transformer search with as many runs as
    the atto search made there (search_runs), over the n_widths largest widths (search_widths).
    kw: steps, chars_per_step, lr, extra_lrs, seed (search_transformer)."""
    from ..progress import progress
    return {b: search_transformer(b, search_runs(r), train_tokens, tune_tokens,
                                  widths=search_widths(b, n_widths=n_widths), **kw)
            for b, r in progress(list(atto_search.items()), desc="transformer search")}


def train_transformer_series(search: dict, train_tokens, val_tokens, tune_tokens, *, seeds, steps: int,
                             chars_per_step: int) -> SeriesRuns:
    """The transformer's finalist round (train_finalists) over the budgets where one fits."""
    def fit(cfg, lr, seed, desc):
        return train_transformer(cfg, train_tokens, steps=steps, chars_per_step=chars_per_step, lr=lr, seed=seed,
                                 progress_desc=f"transformer-{desc}")

    fitted = {b: r for b, r in search.items() if r is not None}
    return train_finalists(fitted, transformer_finalists, fit, transformer_loss, val_tokens, tune_tokens, seeds)


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
