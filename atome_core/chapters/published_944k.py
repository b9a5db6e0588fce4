"""Chapter 4's last section: the Atome kit's published 944K checkpoints (routed and vanilla),
their greedy text against the kit's C engine's reference generation, and their scores on the
TinyStories sample beside the validation losses the kit reports (on its own split)."""

# reported validation losses of the published 944K checkpoints (nats per byte, the kit's split)
KIT_944K_VAL_NATS = {"routed": 1.0545, "vanilla": 0.9337}


def published_generation(models: dict, reference: dict, prompt: str = "Once") -> tuple[dict, list]:
    """({model name: greedy output equals the kit's C engine's}, the blob model's output)
    for the kit's reference prompt, up to its max_total_tokens."""
    import torch
    case = next(c for c in reference["cases"] if c["prompt"] == prompt)
    once = torch.tensor([list(case["prompt"].encode())])
    n_new = reference["max_total_tokens"] - once.size(1)
    generated = {name: m.generate(once, n_new)[0, once.size(1):].tolist() for name, m in models.items()}
    return {name: g == case["generated_byte_ids"] for name, g in generated.items()}, generated


def published_scores(models: dict, kit_val: dict, tokens, max_windows) -> dict:
    """Per published model: its score on non-overlapping 256-byte windows of `tokens`,
    beside the kit's reported validation loss."""
    from .. import evaluate
    published = {}
    for name, model in models.items():
        s = evaluate.score(model, tokens, 256, max_windows=max_windows, batch_size=16)
        published[name] = {"windows": s.predicted_tokens // 256, "nats_per_byte": s.nats_per_byte,
                           "bits_per_byte": s.bits_per_byte, "ppl_per_byte": s.ppl_per_byte,
                           "parameters": model.num_params(), "kit_val_nats_per_byte": kit_val[name]}
    return published


def published_table(published: dict) -> tuple[list, list]:
    header = ["model", "parameters", "windows", "nats per byte", "bits per byte", "per-byte ppl",
              "kit's reported val (nats per byte, its split)"]
    rows = [[name, p["parameters"], p["windows"], p["nats_per_byte"], p["bits_per_byte"], p["ppl_per_byte"],
             p["kit_val_nats_per_byte"]] for name, p in published.items()]
    return header, rows


def published_gap_table(published: dict) -> tuple[list, list]:
    """(header, rows): routed minus vanilla in nats per byte, here and as the kit reports it,
    and each model's score here minus the kit's reported one."""
    header = ["nats per byte", "on this sample", "the kit's report (its split)", "difference"]
    here = published["routed 944K"]["nats_per_byte"] - published["vanilla 944K"]["nats_per_byte"]
    kit = KIT_944K_VAL_NATS["routed"] - KIT_944K_VAL_NATS["vanilla"]
    rows = [["routed minus vanilla", here, kit, here - kit]]
    rows += [[name, p["nats_per_byte"], p["kit_val_nats_per_byte"], p["nats_per_byte"] - p["kit_val_nats_per_byte"]]
             for name, p in published.items()]
    return header, rows
