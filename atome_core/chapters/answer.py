"""Chapter 10, "How small can a writer be?": the book's answer from the numbers the other
chapters published in the same build. Nothing here trains or scores a model.

Inputs are plain dicts: chapter 9's metrics.json (the frontier; None when this build did
not measure it) and, per original claim, the values of the chapters' claims blocks
(`atome_core.book.claims.claim_values` reads them; this layer does not import the book).

- `frontier_glue(frontier, packing)`: every number the answer paragraph quotes, as text
  ("n/a" where the frontier was not measured), so the page renders on either path.
- `best_by_budget_table`, `references_table`, `targets_table`: the frontier's tables.
- `verdict(values, why_not, profile)`: what one original claim turned out to be: holds,
  refuted, or not comparable, with the reason in numbers. Each rule (`RULES`) names the
  claims-block keys it reads and its threshold; the thresholds are the module's constants.
  Each claim row of the intro's table is judged by exactly one rule, the one whose keys
  it all reads (`rule_for`); the intro's table and chapter 10's both come from
  `verdict_table`.
"""
from dataclasses import dataclass
from typing import Callable

from .c_engine import KIT_PARITY_TOLERANCE, KIT_TOKENS_PER_SECOND, SPEED_CONTEXT

NA = "n/a"
HOLDS, REFUTED, NOT_COMPARABLE = "holds", "refuted", "not comparable"

# Thresholds of the verdicts (stated in each reason).
ATTO_CLAIMED = {"atto_8192_nats_per_char": 1.91, "atto_64_nats_per_char": 2.59}
ATTO_TOLERANCE = 0.05          # nats per character above the claimed loss that still "reaches" it
TERNARY_LITTLE = 0.05          # "costs little": at most 5 % more nats per byte than FP32
KIT_60K_CLAIMED_KB = 15.1      # read as KiB (15,462 B), the reading most favourable to the claim
KIT_AB_MARGINS = {"param_fair": 0.22, "flash_fair": 0.52}   # 1 - routed / baseline, per-byte ppl
KIT_944K = {"routed": 1.0545, "vanilla": 0.9337}            # nats per byte, the kit's one seed
SHAKESPEARE = "shakespeare"


@dataclass(frozen=True)
class Verdict:
    verdict: str   # HOLDS, REFUTED or NOT_COMPARABLE
    reason: str


# -- numbers as the frontier stores them ------------------------------------------------

def number(x) -> float | None:
    """A value as stored in the frontier's metrics: a number, a median-and-range dict, or a
    row with bits per byte; None when there is none."""
    if isinstance(x, dict):
        for key in ("median", "bpb", "bits_per_byte", "value"):
            if key in x:
                return number(x[key])
        return None
    if isinstance(x, bool) or x is None:
        return None
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def bpb_text(x) -> str:
    v = number(x)
    return NA if v is None else f"{v:.3f}"


def bytes_text(x) -> str:
    v = number(x)
    return NA if v is None else f"{int(round(v)):,}"


def claim_value(metrics: dict | None, key: str):
    """The value of `key` in a chapter's claims block (None when absent or not measured)."""
    entry = ((metrics or {}).get("claims") or {}).get(key)
    return entry.get("value") if isinstance(entry, dict) else None


def kn_best(kn_rows: list | None, budget: float | None = None) -> dict | None:
    """The Kneser-Ney reference row with the fewest bits per byte (within `budget` bytes)."""
    rows = [r for r in (kn_rows or []) if number(r) is not None
            and (budget is None or (number(r.get("deployed_bytes", r.get("bytes"))) or float("inf")) <= budget)]
    return min(rows, key=number) if rows else None


def densest_family(best_by_budget: dict) -> tuple[list[str], int, int]:
    """(families best at the most (corpus, budget) pairs, their count, the number of pairs)."""
    wins: dict[str, int] = {}
    pairs = 0
    for rows in (best_by_budget or {}).values():
        for row in rows:
            if row.get("family") is None:
                continue
            pairs += 1
            wins[row["family"]] = wins.get(row["family"], 0) + 1
    if not wins:
        return [], 0, 0
    top = max(wins.values())
    return sorted(f for f, n in wins.items() if n == top), top, pairs


def frontier_glue(frontier: dict | None, packing: dict | None = None) -> dict:
    """Every value the answer paragraph glues, as text; the same keys whether or not the
    frontier (chapter 9's metrics) and the packing chapter's claims exist in this build."""
    atome01 = claim_value(packing, "atome01_60k_bytes")
    out = {"atome01_60k_bytes": bytes_text(atome01)}
    if not frontier:
        out.update(frontier_status="the frontier of chapter 9 was not measured in this build, so every "
                                   "number of this paragraph reads n/a",
                   n_models=NA, corpora=NA, best_under_atome01_model=NA, best_under_atome01_bpb=NA,
                   routed_60k_bpb=NA, match_fp32_60k_bytes=NA, fp32_60k_bytes=NA, shakespeare_best_under_64k_bpb=NA,
                   bz2_shakespeare_bpb=NA, kn_shakespeare_bpb=NA, kn_shakespeare_bytes=NA,
                   densest_family=NA, densest_wins=NA, budget_pairs=NA,
                   double_width_holds_sizes=NA, double_width_sizes=NA)
        return out
    cells = frontier.get("cells") or []
    corpora = sorted({c.get("corpus") for c in cells if c.get("corpus")} | set(frontier.get("best_by_budget") or {}))
    refs = (frontier.get("references") or {}).get(SHAKESPEARE) or {}
    kn = kn_best(refs.get("kn"))
    families, wins, pairs = densest_family(frontier.get("best_by_budget") or {})
    model = claim_value(frontier, "best_under_atome01_model")
    holds, sizes = claim_value(frontier, "double_width_holds_sizes"), claim_value(frontier, "double_width_sizes")
    out.update(
        frontier_status=f"chapter 9 scored {len(cells):,} models under one recipe, on "
                        f"{len(corpora)} corpora ({', '.join(corpora)})",
        n_models=f"{len(cells):,}", corpora=", ".join(corpora) or NA,
        best_under_atome01_model=NA if model is None else str(model),
        best_under_atome01_bpb=bpb_text(claim_value(frontier, "best_under_atome01_bpb")),
        routed_60k_bpb=bpb_text(claim_value(frontier, "routed_60k_bpb")),
        match_fp32_60k_bytes=bytes_text(claim_value(frontier, "match_fp32_60k_bytes")),
        fp32_60k_bytes=bytes_text(((targets(frontier).get("match_fp32_60k") or {}).get("measured") or {})
                                  .get("fp32_60k_bytes")),
        shakespeare_best_under_64k_bpb=bpb_text(claim_value(frontier, "shakespeare_best_under_64k_bpb")),
        bz2_shakespeare_bpb=bpb_text(claim_value(frontier, "bz2_shakespeare_bpb")
                                     if claim_value(frontier, "bz2_shakespeare_bpb") is not None
                                     else refs.get("bz2")),
        kn_shakespeare_bpb=bpb_text(kn),
        kn_shakespeare_bytes=bytes_text(None if kn is None else kn.get("deployed_bytes", kn.get("bytes"))),
        densest_family=" and ".join(families) or NA, densest_wins=str(wins) if pairs else NA,
        budget_pairs=str(pairs) if pairs else NA,
        double_width_holds_sizes=NA if holds is None else str(len(holds) if isinstance(holds, list) else holds),
        double_width_sizes=NA if sizes is None else str(len(sizes) if isinstance(sizes, list) else sizes),
    )
    return out


# -- the frontier's tables ----------------------------------------------------------------

def _sample(row: dict, width: int = 60) -> str:
    text = row.get("sampled") or row.get("greedy") or ""
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[:width - 1] + "…"


def budget_bytes(row: dict) -> int | None:
    """A best-by-budget row's flash budget in bytes (`budget`, `budget_bytes` or `budget_kb`
    x 1,024)."""
    for key, scale in (("budget", 1), ("budget_bytes", 1), ("budget_kb", 1024)):
        if number(row.get(key)) is not None:
            return int(number(row[key]) * scale)
    return None


def _first(row: dict, *keys):
    return next((row[k] for k in keys if row.get(k) is not None), None)


def best_by_budget_table(frontier: dict | None) -> tuple[list, list]:
    """Per corpus and flash budget: the best model, its size and bytes, bits per byte, the
    share of its sampled words found in the corpus and the start of the sampled text."""
    header = ["corpus", "flash budget (B)", "best model", "parameters", "deployed (B)", "bits per byte",
              "words known", "sampled text"]
    rows = []
    for corpus, best in sorted(((frontier or {}).get("best_by_budget") or {}).items()):
        for r in sorted(best, key=lambda r: budget_bytes(r) or 0):
            name = _first(r, "model", "label") or " ".join(str(r[k]) for k in ("family", "size") if r.get(k))
            rows.append([corpus, budget_bytes(r), name or "none fits", r.get("params"),
                         _first(r, "bytes", "deployed_bytes"), number(r.get("bpb")),
                         number(_first(r, "words_known", "writes")), _sample(r)])
    return header, rows


def references_table(frontier: dict | None) -> tuple[list, list]:
    """Per corpus: the best model of the frontier against bz2, xz and the best Kneser-Ney model."""
    header = ["corpus", "best model (bits per byte)", "its bytes", "bz2", "xz", "best Kneser-Ney",
              "its bytes"]
    rows = []
    front = (frontier or {}).get("front") or {}
    for corpus, refs in sorted(((frontier or {}).get("references") or {}).items()):
        cells = [c for c in front.get(corpus, []) if number(c.get("bpb")) is not None]
        best = min(cells, key=lambda c: number(c.get("bpb"))) if cells else None
        kn = kn_best(refs.get("kn"))
        rows.append([corpus, None if best is None else number(best.get("bpb")),
                     None if best is None else best.get("deployed_bytes"), number(refs.get("bz2")),
                     number(refs.get("xz")), number(kn),
                     None if kn is None else kn.get("deployed_bytes", kn.get("bytes"))])
    return header, rows


def targets(frontier: dict | None) -> dict:
    """{name: target} of the frontier's targets, stored as a dict by name or as a list of
    dicts with a `name`; each has `threshold`, `met` (None: not measured) and what was measured
    (`measured`, a dict, or the other keys)."""
    stored = (frontier or {}).get("targets") or {}
    if isinstance(stored, list):
        stored = {t.get("name", str(i)): t for i, t in enumerate(stored)}
    return dict(sorted(stored.items()))


def targets_table(frontier: dict | None) -> tuple[list, list]:
    """The targets we set for the frontier: what was measured, the threshold, met or not."""
    header = ["target", "measured", "threshold", "met"]
    rows = []
    for name, t in targets(frontier).items():
        measured = t["measured"] if "measured" in t else {k: v for k, v in t.items()
                                                          if k not in ("name", "threshold", "met", "reason")}
        met = t.get("met")
        rows.append([name, _short(measured) if measured else t.get("reason") or NA, _short(t.get("threshold")),
                     "not measured" if met is None else met])
    return header, rows


def missed_targets(frontier: dict | None) -> list[str]:
    """The targets measured and not met (a target not measured is neither met nor missed)."""
    return [name for name, t in targets(frontier).items() if t.get("met") is False]


def met_targets(frontier: dict | None) -> list[str]:
    return [name for name, t in targets(frontier).items() if t.get("met") is True]


def _short(v) -> str:
    if isinstance(v, dict):
        return "; ".join(f"{str(k).replace('_', ' ')} {_short(x)}" for k, x in v.items())
    if isinstance(v, float):
        return f"{v:,.4g}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return NA if v is None else str(v)


# -- what each original claim turned out to be ----------------------------------------------

def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def _atto_levels(v: dict, profile: str) -> Verdict:
    ours = {k: v[k] for k in ATTO_CLAIMED}
    if all(ours[k] <= ATTO_CLAIMED[k] + ATTO_TOLERANCE for k in ATTO_CLAIMED):
        return Verdict(HOLDS, f"both losses are at most {ATTO_TOLERANCE} nats above the claimed 1.91 and 2.59 "
                              f"(ours {ours['atto_8192_nats_per_char']:.2f} and {ours['atto_64_nats_per_char']:.2f})")
    gaps = ", ".join(f"{ours[k]:.2f} vs {ATTO_CLAIMED[k]}" for k in ATTO_CLAIMED)
    if profile == "paper":
        return Verdict(REFUTED, f"at the paper profile's training length our losses stay above the claim ({gaps})")
    return Verdict(NOT_COMPARABLE, f"a loss level is judged only at the original training length, and the "
                                   f"{profile} profile trains far shorter ({gaps})")


def _atto_vs_transformer(v: dict, profile: str) -> Verdict:
    better, compared = v["transformer_better_budgets"], v["compared_budgets"]
    if not compared:
        return Verdict(NOT_COMPARABLE, "no budget where both models were trained")
    if better == 0:
        return Verdict(HOLDS, f"the neural n-gram is better at all {compared} budgets compared")
    return Verdict(REFUTED, f"the transformer of the same size is better at {better} of {compared} budgets")


def _ternary_cost(v: dict, profile: str) -> Verdict:
    t, f = v["ternary_60k_nats_per_byte"], v["fp32_60k_nats_per_byte"]
    cost = t / f - 1
    limit = f"we call a cost little up to {_pct(TERNARY_LITTLE)} more nats per byte than FP32"
    if cost <= TERNARY_LITTLE:
        return Verdict(HOLDS, f"ternary costs {_pct(cost)} at 60K; {limit}")
    return Verdict(REFUTED, f"ternary costs {_pct(cost)} at 60K; {limit}")


def _blob_size(v: dict, profile: str) -> Verdict:
    kit, f16 = v["atome01_60k_bytes"], v["atmb_60k_f16_bytes"]
    limit = KIT_60K_CLAIMED_KB * 1024
    if kit <= limit:
        return Verdict(HOLDS, f"the kit's ATOME01 layout of the 60K config takes {kit:,} B, within 15.1 KB")
    return Verdict(REFUTED, f"the kit's own ATOME01 layout of the 60K config takes {kit:,} B, more than 15.1 KB "
                            f"even read as {limit:,.0f} B; our ATMB file with float16 vectors takes {f16:,} B")


def _ab_60k(v: dict, profile: str) -> Verdict:
    if v["corpus"] != "tinystories":
        return Verdict(NOT_COMPARABLE, f"measured on {v['corpus']}; the kit's claim is on TinyStories")
    routed = v["routed_ppl"]
    margins = {k: 1 - routed / v[f"{k}_ppl"] for k in KIT_AB_MARGINS}
    said = (f"routed {routed:.2f} vs param-fair {v['param_fair_ppl']:.2f} and flash-fair "
            f"{v['flash_fair_ppl']:.2f}, margins {_pct(margins['param_fair'])} and {_pct(margins['flash_fair'])} "
            f"(kit: 22 % and 52 %)")
    if routed >= v["param_fair_ppl"]:
        return Verdict(REFUTED, f"the routed model's perplexity is not below the param-fair one's: {said}")
    if routed >= v["flash_fair_ppl"]:
        return Verdict(REFUTED, f"the routed model's perplexity is not below the flash-fair one's: {said}")
    return Verdict(HOLDS, f"the routed model is below both baselines: {said}")


def _reversal(v: dict, profile: str) -> Verdict:
    r, b = v["published_routed_nats_per_byte"], v["published_vanilla_nats_per_byte"]
    kit = _pct(1 - KIT_944K["vanilla"] / KIT_944K["routed"])
    said = f"the published pair on {v['published_windows']:,} windows: routed {r:.4f}, vanilla {b:.4f} nats per byte"
    if b < r:
        return Verdict(HOLDS, f"{said}, vanilla ahead by {_pct(1 - b / r)} (kit: {kit})")
    return Verdict(REFUTED, f"{said}: vanilla is not ahead (kit: ahead by {kit})")


def _engine(v: dict, profile: str) -> Verdict:
    """The kit's "bit-exact with Python" is its engine within KIT_PARITY_TOLERANCE of
    PyTorch's logits: judged on our engine against PyTorch's forward pass (60K, and the
    published 944K where measured), our bit-exactness with our reference stated beside it."""
    torch = [(size, v[f"torch_{size}_max_abs"], v[f"torch_{size}_max_ulp"]) for size in ("60k", "944k")
             if v.get(f"torch_{size}_max_abs") is not None]
    vs_torch = ", ".join(f"{size.upper()} {diff:.1e} ({ulp:,} ulp)" for size, diff, ulp in torch)
    ours = (f"bit-exact with our NumPy reference over {v['parity_logits']:,} logits" if v["parity_all_bits_equal"]
            else f"NOT bit-exact with our NumPy reference (max {v['parity_max_ulp']} ulp over "
                 f"{v['parity_logits']:,} logits)")
    within = all(diff <= KIT_PARITY_TOLERANCE for _, diff, _ in torch)
    said = (f"largest logit difference from PyTorch's forward pass: {vs_torch}, "
            f"{'within' if within else 'beyond'} the kit's {KIT_PARITY_TOLERANCE:.0e} tolerance; {ours}")
    return Verdict(HOLDS if within else REFUTED, said)


def _speed(v: dict, profile: str) -> Verdict:
    recompute, incremental = v["recompute_tokens_per_second"], v["incremental_tokens_per_second"]
    return Verdict(NOT_COMPARABLE, f"the kit's {KIT_TOKENS_PER_SECOND[SPEED_CONTEXT]} tokens/s was measured on another "
                                   f"machine; side by side on this one ({v['bench_model']}), our cache decodes "
                                   f"{incremental / recompute:,.0f} times faster than recomputing the prefix as the "
                                   f"kit does ({incremental:,.0f} vs {recompute:,.1f} tokens/s)")


def _firmware(v: dict, profile: str) -> Verdict:
    exact, runs = v["bit_exact_runs"], v["runs"]
    if not runs:
        return Verdict(NOT_COMPARABLE, "no core/path run in this build")
    said = f"{exact} of {runs} core/path runs bit-exact"
    big, big_equal = v.get("published_944k_tokens"), v.get("published_944k_tokens_equal")
    if big is None:
        said += "; the published 944K model is not run in this profile"
    else:
        said += f"; published 944K: {big_equal}/{big} tokens equal"
    if exact == runs and (big is None or big_equal == big):
        return Verdict(HOLDS, said)
    return Verdict(REFUTED, said)


def _atom(v: dict, profile: str) -> Verdict:
    z = v.get("nextline_z")
    chance = "" if z is None else (f", {z:+.1f} standard errors from chance: "
                                   f"{'above' if v.get('nextline_beats_chance') else 'not above'} it")
    return Verdict(NOT_COMPARABLE, f"ARC-E, HellaSwag and PIQA are not available offline; our local 4-choice "
                                   f"task is another test (best model {v['nextline_acc_norm']:.2f} acc_norm on "
                                   f"{v['nextline_items']} items, chance 0.25{chance})")


def _double_width(v: dict, profile: str) -> Verdict:
    holds, sizes = v["double_width_holds_sizes"], v["double_width_sizes"]
    k = len(holds) if isinstance(holds, list) else holds
    n = len(sizes) if isinstance(sizes, list) else sizes
    if not n:
        return Verdict(NOT_COMPARABLE, "no size measured at doubled width")
    if k == n:
        return Verdict(HOLDS, f"ternary at doubled width matches FP32 at all {n} sizes measured")
    return Verdict(REFUTED, f"ternary at doubled width matches FP32 at {k} of {n} sizes measured")


@dataclass(frozen=True)
class Rule:
    needs: tuple            # the claims-block keys the rule reads (all must be measured)
    judge: Callable         # (values, profile) -> Verdict


RULES = [
    Rule(tuple(ATTO_CLAIMED), _atto_levels),
    Rule(("transformer_better_budgets", "compared_budgets"), _atto_vs_transformer),
    Rule(("ternary_60k_nats_per_byte", "fp32_60k_nats_per_byte"), _ternary_cost),
    Rule(("atome01_60k_bytes", "atmb_60k_f16_bytes"), _blob_size),
    Rule(("corpus", "routed_ppl", "param_fair_ppl", "flash_fair_ppl"), _ab_60k),
    Rule(("published_windows", "published_routed_nats_per_byte", "published_vanilla_nats_per_byte"), _reversal),
    Rule(("torch_60k_max_abs", "torch_60k_max_ulp", "parity_all_bits_equal", "parity_max_ulp", "parity_logits"),
         _engine),
    Rule(("bench_model", "recompute_tokens_per_second", "incremental_tokens_per_second"), _speed),
    Rule(("bit_exact_runs", "runs"), _firmware),
    Rule(("nextline_acc_norm", "nextline_items"), _atom),
    Rule(("double_width_holds_sizes", "double_width_sizes"), _double_width),
]


def rule_for(keys) -> Rule | None:
    """The rule that judges a claim reading `keys`: the one whose keys it all reads."""
    found = [rule for rule in RULES if set(rule.needs) <= set(keys)]
    return found[0] if len(found) == 1 else None


def verdict(values: dict | None, why_not: str | None, profile: str) -> Verdict:
    """What one claim turned out to be, from its claims-block values in this build.

    `values`, `why_not` as from claims.claim_values: values None means the claim was not
    measured (the reason is `why_not`). The claim's rule (`rule_for` its keys) judges when
    every key it needs is measured; otherwise the claim is not comparable, saying which
    keys were not measured.
    """
    if values is None:
        return Verdict(NOT_COMPARABLE, why_not or "not measured in this build")
    rule = rule_for(values)
    if rule is None:
        return Verdict(NOT_COMPARABLE, "no rule of this chapter judges these numbers")
    missing = [k for k in rule.needs if values.get(k) is None]
    if missing:
        return Verdict(NOT_COMPARABLE, "not measured in this build: " + ", ".join(missing))
    return rule.judge(values, profile)


VERDICT_COLUMN = 4   # of verdict_table's rows


def verdict_table(entries: list[dict], profile: str) -> tuple[list, list]:
    """Rows (project, claim, its units and setting, our measurement, verdict, why), one per
    claim; each entry has project, claim, units, ours (our number in words), values and
    why_not (as claims.claim_entries gives them). The intro's table and chapter 10's."""
    header = ["project", "claim", "units and setting", f"ours (this build, `{profile}` profile)", "verdict", "why"]
    rows = []
    for e in entries:
        v = verdict(e["values"], e["why_not"], profile)
        rows.append([e["project"], e["claim"], e["units"], e["ours"], v.verdict, v.reason])
    return header, rows


def verdict_counts(rows: list) -> dict:
    """{verdict: how many rows of verdict_table have it}, every verdict present."""
    counts = {HOLDS: 0, REFUTED: 0, NOT_COMPARABLE: 0}
    for row in rows:
        counts[row[VERDICT_COLUMN]] += 1
    return counts


def open_questions_glue(metrics: dict) -> dict:
    """The numbers the list of open questions quotes, as text ("n/a" where a chapter did not
    run): the frontier's targets we set, chapter 4's seeds and steps, chapter 5's windows,
    chapter 8's items. `metrics`: {chapter: its published metrics}."""
    frontier = metrics.get("09_frontier")
    ab, rev, atom = metrics.get("04_ab_60k"), metrics.get("05_reversal"), metrics.get("08_atom_recipe")

    def count(x):
        return NA if x is None else f"{x:,}"
    return {"targets_total": count(len(targets(frontier))) if frontier else NA,
            "targets_met": count(len(met_targets(frontier))) if frontier else NA,
            "targets_missed": count(len(missed_targets(frontier))) if frontier else NA,
            "ab_seeds": count(claim_value(ab, "seeds")), "ab_steps": count(claim_value(ab, "steps")),
            "reversal_windows": count(claim_value(rev, "published_windows")),
            "nextline_items": count(claim_value(atom, "nextline_items"))}
