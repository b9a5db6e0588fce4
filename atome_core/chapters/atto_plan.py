"""Chapter 1's training plan: every run the notebook starts under its parameters, without
training (atome_core.book.estimate): the n-gram search and finalists at every budget, then the
transformer's search and finalists, from the chapter's own grid and recipes (atto_series).
Which shapes win, and so how many variants and finalists follow, comes from a build's
metrics.json of the same profile when there is one, else from the most-work outcome."""
import re

from ..models.atto import AttoModel
from .atto_series import (
    SearchResult,
    extra_rates,
    finalists,
    recipe_config,
    search_runs,
    search_shapes,
    search_widths,
    series_grid,
    transformer_budget_list,
    transformer_finalists,
    transformer_recipe,
    transformer_shape_runs,
    transformer_walk,
    variant_candidates,
)


def series_search_grid(P, budget: int) -> tuple:
    """(widths, fulls) the notebook's search_series gives `budget` under the chapter's parameters P."""
    return series_grid(budget, heatmap_budget=P.heatmap_budget, heatmap_widths=P.heatmap_widths,
                       heatmap_fulls=P.heatmap_fulls, n_widths=P.search_widths, fulls=P.search_fulls)


def search_outcomes(metrics: dict) -> dict:
    """{budget: ((E, n_full) of the shape round's winner, number of finalists)} as a build of the
    chapter recorded them in metrics.json ("search" and "final"): what the plan cannot know beforehand."""
    out = {}
    for budget, s in metrics["search"].items():
        winner = min(s["shapes"], key=s["shapes"].get)   # search_budget's rule, over the same order
        E, n_full = winner.removeprefix("E").split("_full")
        out[int(budget)] = ((int(E), int(n_full)), len(metrics["final"][budget]["finalists"]))
    return out


def planned_search(P, budget: int, outcome: tuple | None = None) -> tuple[SearchResult, list]:
    """(the SearchResult the plan assumes for `budget`, the finalists it assumes), losses all zero.

    The shape round is the notebook's own (search_shapes on series_search_grid). Its winner is
    outcome's (E, n_full) when that shape is in this grid, else the stand-in: the shape with the
    most variants, then one with a two-layer variant (ties: the first), so that without outcomes
    the plan is the most work any result gives. The variant round is the winner's variants
    (when P.search_variants), the rate round the winner at extra_rates. The finalists are what
    finalists() picks on equal losses (the winner, and the first two-layer variant where there
    is one), cut to outcome's count."""
    widths, fulls = series_search_grid(P, budget)
    shapes = search_shapes(budget, widths, fulls)
    variants = {k: variant_candidates(budget, cfg) if P.search_variants else [] for k, cfg in shapes.items()}
    if outcome is not None and outcome[0] in shapes:
        key = outcome[0]
    else:
        key = max(shapes, key=lambda k: (len(variants[k]), any(c.n_hidden2 for c in variants[k])))
    best = shapes[key]
    rates = {P.lr: 0.0, **{r: 0.0 for r in extra_rates(P.lr, P.search_lrs, P.search_variants)}}
    result = SearchResult(budget, {k: 0.0 for k in shapes}, shapes, [(c, 0.0) for c in variants[key]], best,
                          0.0, 0.0, P.lr, rates)
    picked = finalists(result)
    return result, picked[: outcome[1]] if outcome is not None else picked


def series_plan(P, search: dict, picked: dict) -> list:
    """RunShapes of the n-gram runs given each budget's search ({budget: SearchResult}) and
    finalists ({budget: configs}): every search run (each shape, each variant, the winner at
    each further rate) at the search's steps, batch and window, then each finalist at the first
    seed and the first finalist (standing in for the kept one) at every other seed, at the
    final steps, batch and window (train_series)."""
    from ..ledger import run_shape
    search_tc = recipe_config(steps=P.search_steps, batch_size=P.search_batch, seq_len=P.search_seq_len,
                              lr=P.lr, seed=P.seed)
    final_tc = recipe_config(steps=P.final_steps, batch_size=P.final_batch, seq_len=P.final_seq_len,
                             lr=P.lr, seed=P.seed)
    plan = []
    for budget, r in search.items():
        searched = [*r.shape_configs.values(), *(c for c, _ in r.variant_losses)]
        searched += [r.best] * (len(r.lr_losses) - 1)
        plan += [run_shape(AttoModel, cfg, search_tc) for cfg in searched]
        finals = [*picked[budget], *[picked[budget][0]] * (len(P.seeds) - 1)]
        plan += [run_shape(AttoModel, cfg, final_tc) for cfg in finals]
    return plan


TRANSFORMER_KEY = re.compile(r"E(\d+)_L(\d+)_H(\d+)_block(\d+)")


def transformer_search_outcomes(metrics: dict) -> dict:
    """{budget: the transformer's search and finalist round there as a build of the chapter recorded
    them in metrics.json ("transformer", atto_comparison.transformer_metrics)}: None where no
    transformer fits, else {"shapes": [(E, n_layer, n_head, target block) of each shape tried],
    "rates": [each learning rate the winner trained at], "finalists": [describe() of each finalist,
    the search's winner first], "kept": describe() of the kept one}. {} for a build without them."""
    out = {}
    for budget, t in (metrics.get("transformer") or {}).items():
        out[int(budget)] = None if t is None else {
            "shapes": [tuple(map(int, TRANSFORMER_KEY.fullmatch(k).groups())) for k in t["shapes"]],
            "rates": [float(r) for r in t["lr_losses"]],
            "finalists": [name for name, _ in t["finalists"]], "kept": t["config"]}
    return out


def planned_transformer_search(P, budget: int, n_runs: int, outcome: dict | None = None) -> tuple:
    """(the SearchResult the plan assumes for the transformer at `budget`, the finalists it assumes,
    the kept configuration), losses all zero; (None, [], None) where no transformer fits.

    The shapes are the notebook's pool (tiny_transformer.shape_candidates over search_widths with
    P.transformer_widths), the rate round P.search_lrs when P.search_variants (as the notebook
    passes them). With `outcome` (transformer_search_outcomes) the shapes tried, the rates, the
    finalists and the kept one are the recorded ones. Without it, the stand-in: transformer_walk on
    equal losses (the widest shape stays the best, the shapes nearest it are tried) for as many
    shape runs as n_runs (the atto search's count) leaves, the winner at each further rate, the
    finalists transformer_finalists picks (the winner and, where a deeper shape was tried, the first
    of them: the most finalists any result gives), the winner kept. Any other result makes as many
    runs of as many steps, each of about as many characters (whole windows of another block)."""
    from ..models import tiny_transformer
    pool = tiny_transformer.shape_candidates(budget, search_widths(budget, n_widths=P.transformer_widths))
    if not pool:
        return None, [], None
    extra = tuple(P.search_lrs) if P.search_variants else ()
    named = {cfg.describe(): cfg for cfg in pool.values()}
    if outcome is not None and set(outcome["shapes"]) <= set(pool) and \
            {*outcome["finalists"], outcome["kept"]} <= set(named):
        tried = dict.fromkeys(outcome["shapes"], 0.0)
        best, rates = named[outcome["finalists"][0]], outcome["rates"]
        picked, kept = [named[name] for name in outcome["finalists"]], named[outcome["kept"]]
    else:
        tried, best_key = transformer_walk(pool, transformer_shape_runs(n_runs, extra), lambda key: 0.0)
        best, rates, picked, kept = pool[best_key], [P.lr, *extra], None, None
    result = SearchResult(budget, tried, {k: pool[k] for k in tried}, [], best, 0.0, 0.0, P.lr,
                          dict.fromkeys(rates, 0.0))
    picked = picked or transformer_finalists(result)
    return result, picked, kept or picked[0]


def transformer_plan(P, planned: dict) -> list:
    """RunShapes of the transformer's runs given each budget's planned_transformer_search ({budget:
    (SearchResult or None, finalists, kept)}): every search run (each shape, the winner at each
    further rate) at the search's steps and characters per step (search_transformers), then each
    finalist at the first seed and the kept one at every other seed at the final steps and
    characters per step (train_transformer_series); each run on windows of its own block
    (transformer_recipe)."""
    from ..ledger import run_shape
    from ..models.tiny_transformer import TinyTransformer

    def shape(cfg, steps, chars_per_step):
        tc = transformer_recipe(cfg, steps=steps, chars_per_step=chars_per_step, lr=P.lr, seed=P.seed)
        return run_shape(TinyTransformer, cfg, tc)

    plan = []
    for r, picked, kept in planned.values():
        if r is None:
            continue
        searched = [*r.shape_configs.values(), *[r.best] * (len(r.lr_losses) - 1)]
        plan += [shape(cfg, P.search_steps, P.search_batch * P.search_seq_len) for cfg in searched]
        finals = [*picked, *[kept] * (len(P.seeds) - 1)]
        plan += [shape(cfg, P.final_steps, P.final_batch * P.final_seq_len) for cfg in finals]
    return plan


def training_plan(P, recorded: dict | None = None) -> list:
    """Every training run the chapter's notebook starts under parameters P: each budget's n-gram
    search runs (search_series) and finalist round (train_series), then the transformer's search
    (search_transformers, as many runs as the n-gram search made) and finalist round
    (train_transformer_series) at each budget of transformer_budget_list where one fits.

    What depends on results (each n-gram winner, hence its variants and the transformer's run
    count; which transformer shapes the walk tries, hence their blocks and batches; how many
    finalists; which transformer is kept) comes from `recorded`, the chapter's metrics.json from a
    build, when that build ran this profile (another profile searched another grid for other
    steps), else from the stand-ins of planned_search and planned_transformer_search (the most
    runs any result gives)."""
    same_run = recorded is not None and recorded.get("profile") == P.profile
    outcomes = search_outcomes(recorded) if same_run else {}
    tf_outcomes = transformer_search_outcomes(recorded) if same_run else {}
    search, picked = {}, {}
    for budget in P.budgets:
        search[budget], picked[budget] = planned_search(P, budget, outcomes.get(budget))
    tf = {b: planned_transformer_search(P, b, search_runs(search[b]), tf_outcomes.get(b))
          for b in transformer_budget_list(P.budgets, P.transformer_budgets)}
    return series_plan(P, search, picked) + transformer_plan(P, tf)
