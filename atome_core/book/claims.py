"""The intro's claims table: each original project's headline claim beside our number.

Our column is read from one place only: the `claims` block each chapter writes into its
metrics.json (`ChapterResults.claim`), each entry {"value", "unit"} or {"value": null,
"reason"}. Every row below declares the keys it reads. A chapter that did not run in this
build leaves its rows "not measured in this build"; a chapter that ran but lacks a
declared key is an error of the chapter, shown as such in the table and reported by
`missing_claims` (a test over the smoke build fails on it). Each row carries a verdict
(holds / refuted / not comparable, with the reason) that `chapters.answer.verdict_table`
computes from the same values by the claim's one rule; chapter 10's verdict table is the
same call on the same `claim_entries`. `atome book` writes the table to
book/_generated/claims.md, which book/intro.md includes.
"""
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..chapters.c_engine import (
    KIT_PARITY_TOLERANCE,
    KIT_TOKENS_PER_SECOND,
    SPEED_CONTEXT,
)

NOT_MEASURED = "not measured in this build"


@dataclass(frozen=True)
class Claim:
    project: str
    claim: str
    units: str          # units and setting as the project states them
    chapter: str        # the notebook stem that measures it
    keys: tuple         # the keys of that chapter's claims block this row reads
    ours: Callable      # values (key -> value) -> our number in words


def _atto(v):
    return (f"atto-8192 {v['atto_8192_nats_per_char']:.2f}, atto-64 {v['atto_64_nats_per_char']:.2f} nats "
            f"per character (our Shakespeare's last 10 %, mean over seeds)")


def _atto_vs_transformer(v):
    return (f"the transformer is better at {v['transformer_better_budgets']} of {v['compared_budgets']} "
            f"budgets where one fits (same parameters, characters and evaluation)")


def _ternary_cost(v):
    t, f = v["ternary_60k_nats_per_byte"], v["fp32_60k_nats_per_byte"]
    return (f"60K model: ternary {t:.3f} vs FP32 {f:.3f} nats per byte ({t - f:+.3f}, median of "
            f"{v['seeds']} seed(s))")


def _blob_size(v):
    return (f"60K: ATOME01 layout {v['atome01_60k_bytes']:,} B; our ATMB blob {v['atmb_60k_f32_bytes']:,} B "
            f"(dense trits, FP32 vectors), {v['atmb_60k_f16_bytes']:,} B with float16 vectors")


def _ab_60k(v):
    return (f"{v['corpus']}, {v['steps']:,} steps, median of {v['seeds']} seed(s): routed "
            f"{v['routed_ppl']:.2f}, param-fair {v['param_fair_ppl']:.2f}, flash-fair {v['flash_fair_ppl']:.2f}, "
            f"modern {v['modern_ppl']:.2f} (per-byte ppl)")


def _reversal(v):
    return (f"published pair on the TinyStories sample ({v['published_windows']:,} windows of 256 B): "
            f"{v['published_routed_nats_per_byte']:.4f} vs {v['published_vanilla_nats_per_byte']:.4f} "
            f"nats per byte")


def _engine(v):
    ours = (f"bit-exact with our NumPy reference (max {v['parity_max_ulp']} ULP over {v['parity_logits']:,} logits)"
            if v["parity_all_bits_equal"] else
            f"NOT bit-exact with our NumPy reference (max {v['parity_max_ulp']} ULP over {v['parity_logits']:,} logits)")
    torch = "; ".join(f"{size.upper()} {v[f'torch_{size}_max_abs']:.1e} ({v[f'torch_{size}_max_ulp']:,} ULP)"
                      for size in ("60k", "944k") if v.get(f"torch_{size}_max_abs") is not None)
    return (f"{ours}; largest logit difference from PyTorch's forward pass: {torch} "
            f"(the kit's tolerance: {KIT_PARITY_TOLERANCE:.0e})")


def _speed(v):
    return (f"{v['bench_model']} at {SPEED_CONTEXT} tokens of context, side by side on one core of this machine: "
            f"{v['recompute_tokens_per_second']:,.1f} tokens/s recomputing the prefix as the kit does, "
            f"{v['incremental_tokens_per_second']:,.0f} with our cache; the kit's {KIT_TOKENS_PER_SECOND[SPEED_CONTEXT]} is from another machine")


def _firmware(v):
    text = (f"0-ULP logits and equal tokens on {v['bit_exact_runs']} of {v['runs']} core/path runs")
    if v.get("published_944k_tokens") is not None:
        text += (f"; published 944K on the M7: {v['published_944k_tokens_equal']}/{v['published_944k_tokens']} "
                 f"tokens equal to the kit's")
    return text


def _double_width(v):
    holds, sizes = v["double_width_holds_sizes"], v["double_width_sizes"]
    where = f" ({', '.join(holds)})" if holds else ""
    return (f"holds at {len(holds)} of {len(sizes)} sizes{where}: ternary at doubled width against FP32 of the "
            f"same nominal size, bits per byte on the TinyStories sample")


def _atom_benchmarks(v):
    return (f"ARC-E, HellaSwag, PIQA are not available offline; on our local 4-choice task "
            f"(chance 0.25) the best model, {v['nextline_model']}, scores acc_norm {v['nextline_acc_norm']:.2f} "
            f"({v['nextline_items']} items, {v['nextline_z']:+.1f} standard errors from chance)")


CLAIMS = [
    Claim("atto", "atto-8192 reaches validation loss 1.91; atto-64 reaches 2.59",
          "loss per character (nats presumed), Tiny Shakespeare, vocabulary 64", "01_atto_series",
          ("atto_8192_nats_per_char", "atto_64_nats_per_char"), _atto),
    Claim("atto", "at this scale a neural n-gram beats a transformer of the same size", "parameters matched",
          "01_atto_series", ("transformer_better_budgets", "compared_budgets"), _atto_vs_transformer),
    Claim("Atome kit", "ternary weights (BitNet b1.58 absmean recipe) cost little at small scale",
          "weights only, activations FP32", "02_ternary_qat",
          ("ternary_60k_nats_per_byte", "fp32_60k_nats_per_byte", "seeds"), _ternary_cost),
    Claim("Atome kit", "the 60K model's blob is 15.1 KB (the published file is 20,575 B at 2 bits per trit)",
          "bytes on disk", "03_packing", ("atome01_60k_bytes", "atmb_60k_f32_bytes", "atmb_60k_f16_bytes"),
          _blob_size),
    Claim("Atome kit", "routed ternary model at 60K beats a param-fair FP32 GPT by 22 % and a flash-fair one by 52 %",
          "per-byte perplexity 6.31 vs 8.12 vs 13.10; first 500 KB of TinyStories, 3,000 steps, one seed",
          "04_ab_60k", ("corpus", "steps", "seeds", "routed_ppl", "param_fair_ppl", "flash_fair_ppl", "modern_ppl"),
          _ab_60k),
    Claim("Atome kit", "the advantage reverses at ~944K parameters",
          "1.0545 vs 0.9337 nats per byte (routed vs vanilla), 30,000 steps, one seed", "05_reversal",
          ("published_windows", "published_routed_nats_per_byte", "published_vanilla_nats_per_byte"), _reversal),
    Claim("Atome kit", "the C engine is bit-exact with Python",
          "logits within a 1e-3 tolerance of PyTorch's", "06_c_engine",
          ("parity_all_bits_equal", "parity_max_ulp", "parity_logits", "torch_60k_max_abs", "torch_60k_max_ulp",
           "torch_944k_max_abs", "torch_944k_max_ulp"), _engine),
    Claim("Atome kit", "the C engine decodes 3.8 tokens/s at 128 tokens of context (944K)",
          "tokens per second, one host core of the kit's machine (not this one), recomputing the prefix",
          "06_c_engine", ("bench_model", "recompute_tokens_per_second", "incremental_tokens_per_second"), _speed),
    Claim("Atome kit", "the firmware reproduces Python's greedy tokens on a Cortex-M3",
          "48/48 tokens (60K), 16/16 (944K), QEMU MPS2-AN385", "07_firmware_qemu",
          ("bit_exact_runs", "runs", "published_944k_tokens_equal", "published_944k_tokens"), _firmware),
    Claim("Atom 3.4m", "3,412,800 parameters score near chance on reasoning benchmarks",
          "ARC-E 33.08 acc_norm, HellaSwag 27.65, PIQA 55.71", "08_atom_recipe",
          ("nextline_model", "nextline_acc_norm", "nextline_items", "nextline_z", "nextline_beats_chance"),
          _atom_benchmarks),
    Claim("BitNet b1.58 Reloaded", "at small scale ternary weights match FP16 when the hidden size is doubled",
          "models of 100K-48M parameters (Nielsen & Schneider-Kamp 2024)", "09_frontier",
          ("double_width_holds_sizes", "double_width_sizes"), _double_width),
]


def load_metrics(results_dir: Path) -> dict:
    """{chapter: metrics} for every chapter with a readable metrics.json under results_dir."""
    out = {}
    for path in sorted(Path(results_dir).glob("*/metrics.json")):
        try:
            out[path.parent.name] = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
    return out


def claim_values(claim: Claim, metrics: dict) -> tuple[dict | None, str | None]:
    """(key -> value, None) when every key is measured; else (None, why not)."""
    if claim.chapter not in metrics:
        return None, NOT_MEASURED
    block = metrics[claim.chapter].get("claims", {})
    missing = [k for k in claim.keys if k not in block]
    if missing:
        return None, f"MISSING in chapter {claim.chapter}'s claims: {', '.join(missing)}"
    reasons = sorted({block[k]["reason"] for k in claim.keys if block[k].get("value") is None
                      and block[k].get("reason")})
    values = {k: block[k]["value"] for k in claim.keys}
    if reasons and all(v is None for v in values.values()):
        return None, f"not measured in this build: {'; '.join(reasons)}"
    return values, None


def ours(claim: Claim, metrics: dict) -> str:
    values, why_not = claim_values(claim, metrics)
    return why_not if values is None else claim.ours(values)


def missing_claims(metrics: dict) -> list[str]:
    """Every declared key that a chapter which ran did not write (should be empty)."""
    out = []
    for claim in CLAIMS:
        if claim.chapter in metrics:
            block = metrics[claim.chapter].get("claims", {})
            out += [f"{claim.chapter}: {k}" for k in claim.keys if k not in block]
    return sorted(set(out))


def chapter_number(stem: str) -> int:
    return int(stem.split("_", 1)[0])


def claim_entries(metrics: dict) -> list[dict]:
    """Per claim: project, claim, units, chapter, our number in words, and the values
    (or why not) that `answer.verdict_table` judges. The intro and chapter 10 both read it."""
    out = []
    for c in CLAIMS:
        values, why_not = claim_values(c, metrics)
        out.append({"project": c.project, "claim": c.claim, "units": c.units, "chapter": c.chapter,
                    "ours": why_not if values is None else c.ours(values), "values": values, "why_not": why_not})
    return out


def claims_markdown(metrics: dict, profile: str) -> str:
    """The intro's table: chapter 10's verdict table (`answer.verdict_table`, one home for
    the verdicts), with the chapter that measures each claim."""
    from ..chapters.answer import verdict_table
    from .report import table_markdown
    entries = claim_entries(metrics)
    header, rows = verdict_table(entries, profile)
    return table_markdown([*header, "chapter"], [[*row, chapter_number(e["chapter"])] for e, row in zip(entries, rows)])
