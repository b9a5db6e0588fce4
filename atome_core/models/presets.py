"""The one table of named model shapes: the size ladder (~15K, 60K, 240K, 944K parameters)
of three families.

Each rung is named by its nominal size; the routed-ternary model sets the count and the
two FP32 baselines are sized to within 1 % of it (exact counts: `atome_core.recipe.ladder_table()`).
The 60K and 944K routed models are the kit's own shapes (60,800 and 944,640
parameters); the 944K vanilla model is the kit's published baseline (950,608).
Every model can read 256 bytes of context: the vanilla GPT's position table has 256
rows at every rung (so its counts include them), as in the kit's 944K baseline.

The table holds each config's fields (plain data: this module loads no torch); the
blob formats' named shapes (`atome_core.formats.PRESETS`, the `--config 944k` of the
command line) are its routed rows, and `ladder_config` builds the config dataclass.
"""
from . import family

SIZES = ("15k", "60k", "240k", "944k")
FAMILIES = ("routed", "vanilla", "modern")
CONTEXT = 256   # bytes of context every ladder model handles (the kit's 944K sequence length)

# The routed shapes keep the kit's d_head = d_model / 4, byte vocabulary, top_k 4 and
# kernel 5; the baselines keep their own layouts (vanilla: 4 heads, 3 layers, d_ff ~ 4 d;
# modern: 3 query heads on 1 kv head, 3 layers, SwiGLU hidden ~ 2.5 d) and were sized by
# a search over d_model and d_ff.
_KIT = {"vocab_size": 256, "top_k": 4, "kernel_size": 5}
LADDER = {
    ("routed", "15k"): dict(_KIT, d_model=24, n_layers=2, d_head=6),           # 14,688
    ("routed", "60k"): dict(_KIT, d_model=64, n_layers=4, d_head=16),          # 60,800 (kit default)
    ("routed", "240k"): dict(_KIT, d_model=144, n_layers=5, d_head=36),        # 238,896
    ("routed", "944k"): dict(_KIT, d_model=256, n_layers=8, d_head=64),        # 944,640 (published)
    ("vanilla", "15k"): dict(d_model=12, n_layers=3, n_heads=4, d_ff=48, max_seq=CONTEXT),
    ("vanilla", "60k"): dict(d_model=32, n_layers=3, n_heads=4, d_ff=124, max_seq=CONTEXT),
    ("vanilla", "240k"): dict(d_model=72, n_layers=3, n_heads=4, d_ff=280, max_seq=CONTEXT),
    ("vanilla", "944k"): dict(d_model=152, n_layers=3, n_heads=4, d_ff=608, max_seq=CONTEXT),  # published
    ("modern", "15k"): dict(d_model=18, n_layers=3, d_ff=46),
    ("modern", "60k"): dict(d_model=42, n_layers=3, d_ff=94),             # chapter 4's modern model
    ("modern", "240k"): dict(d_model=84, n_layers=3, d_ff=212),
    ("modern", "944k"): dict(d_model=174, n_layers=3, d_ff=420),
}


def check_cell(family_name: str, size: str) -> None:
    if family_name not in FAMILIES:
        raise ValueError(f"unknown model family {family_name!r}; choose one of {', '.join(FAMILIES)}")
    if size not in SIZES:
        raise ValueError(f"unknown ladder size {size!r}; choose one of {', '.join(SIZES)}")


def ladder_config(family_name: str, size: str, **overrides):
    """The config dataclass of one rung, with any field overridden (a new object each call)."""
    check_cell(family_name, size)
    config_cls, _ = family(family_name)
    return config_cls(**{**LADDER[(family_name, size)], **overrides})


def build_model(family_name: str, size: str, init_seed: int = 0):
    import torch
    torch.manual_seed(init_seed)
    return family(family_name)[1](ladder_config(family_name, size))


def count_params(model) -> int:
    return sum(p.numel() for p in model.parameters())
