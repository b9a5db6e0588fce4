"""The intro's claims table: each original project's headline claim beside our number.

Our column is read from the chapters' metrics.json of the same build (nothing typed
in); a chapter that has not run, or ran without the data a claim needs (e.g. no
../shared/interop), leaves "not measured in this build". `atome book` writes the
table to book/_generated/claims.md, which book/intro.md includes.
"""
import json
from pathlib import Path

NOT_MEASURED = "not measured in this build"


def _atto(m):
    c = m["01_atto_series"]["comparison"]
    return (f"atto-8192 {c['8192']['ours_mean']:.2f}, atto-64 {c['64']['ours_mean']:.2f} nats per character "
            f"(our Shakespeare's last 10 %, mean over seeds)")


def _atto_vs_transformer(m):
    c = m["01_atto_series"]["comparison"]
    both = [b for b, row in c.items() if row.get("transformer") is not None]
    better = [b for b in both if c[b]["transformer"] < c[b]["ours_seed0"]]
    return (f"the transformer is better at {len(better)} of {len(both)} budgets where one fits "
            f"(same parameters and training characters)")


def _ternary_cost(m):
    f = m["02_ternary_qat"]["final_val_nats_per_byte"]["60K"]
    fp32, ternary = f["fp32"]["median"], f["ternary"]["median"]
    return (f"60K model: ternary {ternary:.3f} vs FP32 {fp32:.3f} nats per byte "
            f"({ternary - fp32:+.3f}, median of {f['ternary']['n_seeds']} seed(s))")


def _blob_size(m):
    files = m["03_packing"]["file_bytes"]
    sizes = files[m["03_packing"]["blob_60k_model"]]
    return (f"60K: ATOME01 layout {sizes['ATOME01']:,} B; our ATMB blob {sizes['ATMB dense f32']:,} B "
            f"(dense trits, FP32 vectors), {sizes['ATMB dense f16']:,} B with float16 vectors")


def _ab_60k(m):
    ch = m["04_ab_60k"]
    corpus = ch["main_corpus"]
    ppl = {name: ch["final"][f"{corpus}|{name}"]["ppl"] for name in
           ("routed", "vanilla param-fair", "vanilla flash-fair", "modern")}
    return (f"{corpus}, {ch['steps']:,} steps, median of {ppl['routed']['n']} seed(s): routed "
            f"{ppl['routed']['median']:.2f}, param-fair {ppl['vanilla param-fair']['median']:.2f}, flash-fair "
            f"{ppl['vanilla flash-fair']['median']:.2f}, modern {ppl['modern']['median']:.2f} (per-byte ppl)")


def _reversal(m):
    p = m["05_reversal"]["published"]
    return (f"published pair on the TinyStories sample ({p['routed']['windows']:,} windows of 256 B): "
            f"{p['routed']['nats_per_byte']:.4f} vs {p['vanilla']['nats_per_byte']:.4f} nats per byte")


def _engine(m):
    ch = m["06_c_engine"]
    verdict = "every logit bit-equal" if ch["parity_all_bits_equal"] else "NOT bit-equal"
    tps = ch["tokens_per_second"]
    return (f"{verdict} (max {ch['parity_max_ulp']} ULP over {ch['parity_logits']:,} logits); "
            f"{ch['bench_model']} at 128 tokens of context: {tps['recompute_f32_128']:,.1f} tokens/s recomputing "
            f"the prefix as the kit does, {tps['incremental_f32_128']:,.0f} with our cache")


def _firmware(m):
    ch = m["07_firmware_qemu"]
    parity = ch["parity"]
    exact = sum(run["bit_exact"] for run in parity.values())
    text = f"0-ULP logits and equal tokens on {exact} of {len(parity)} core/path runs"
    published = ch.get("published_944k_m7")
    if published:
        text += (f"; published 944K on the M7: {published['tokens_equal_kit']}/{published['tokens']} tokens "
                 f"equal to the kit's")
    return text


def _atom_benchmarks(m):
    local = m["08_atom_recipe"]["lm_eval_local"]
    name = next(iter(local))
    nextline = local[name]["shakespeare_nextline"]
    return (f"ARC-E, HellaSwag, PIQA are not available offline; on our local 4-choice task "
            f"(chance 0.25) the {name} model scores acc_norm {nextline['acc_norm']:.2f} "
            f"({nextline['sample_len']} items)")


# (project, claim, units and setting as the project states them, chapter, our number)
CLAIMS = [
    ("atto", "atto-8192 reaches validation loss 1.91; atto-64 reaches 2.59",
     "loss per character (nats presumed), Tiny Shakespeare, vocabulary 64", "01_atto_series", _atto),
    ("atto", "at this scale a neural n-gram beats a transformer of the same size", "parameters matched",
     "01_atto_series", _atto_vs_transformer),
    ("Atome kit", "ternary weights (BitNet b1.58 absmean recipe) cost little at small scale",
     "weights only, activations FP32", "02_ternary_qat", _ternary_cost),
    ("Atome kit", "the 60K model's blob is 15.1 KB (the published file is 20,575 B at 2 bits per trit)",
     "bytes on disk", "03_packing", _blob_size),
    ("Atome kit", "routed ternary model at 60K beats a param-fair FP32 GPT by 22 % and a flash-fair one by 52 %",
     "per-byte perplexity 6.31 vs 8.12 vs 13.10; first 500 KB of TinyStories, 3,000 steps, one seed",
     "04_ab_60k", _ab_60k),
    ("Atome kit", "the advantage reverses at ~944K parameters",
     "1.0545 vs 0.9337 nats per byte (routed vs vanilla), 30,000 steps, one seed", "05_reversal", _reversal),
    ("Atome kit", "the C engine is bit-exact with Python",
     "parity within a 1e-3 tolerance; 3.8 tokens/s at 128 tokens of context (944K)", "06_c_engine", _engine),
    ("Atome kit", "the firmware reproduces Python's greedy tokens on a Cortex-M3",
     "48/48 tokens (60K), 16/16 (944K), QEMU MPS2-AN385", "07_firmware_qemu", _firmware),
    ("Atom 3.4m", "3,412,800 parameters score near chance on reasoning benchmarks",
     "ARC-E 33.08 acc_norm, HellaSwag 27.65, PIQA 55.71", "08_atom_recipe", _atom_benchmarks),
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


def ours(claim_fn, metrics: dict) -> str:
    """Our number for one claim, or NOT_MEASURED when the chapter or the data it needs is absent."""
    try:
        return claim_fn(metrics)
    except (KeyError, TypeError, StopIteration):
        return NOT_MEASURED


def chapter_number(stem: str) -> int:
    return int(stem.split("_", 1)[0])


def claims_markdown(metrics: dict, profile: str) -> str:
    rows = [f"| project | claim | units and setting | ours (this build, `{profile}` profile) | chapter |",
            "|---|---|---|---|---|"]
    for project, claim, units, chapter, fn in CLAIMS:
        rows.append(f"| {project} | {claim} | {units} | {ours(fn, metrics)} | {chapter_number(chapter)} |")
    return "\n".join(rows) + "\n"
