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

The modern frontier (`FRONTIER`, `frontier_config`): the modern family at seven sizes
(the ladder's four modern rungs, 8k below them, 30k and 120k between them; 3 layers,
3 query heads on 1 kv head, SwiGLU hidden ~ 1.8-2.8 d), each in three variants: FP32;
ternary (every matrix, the tied embedding/unembedding included, trit x scale through
atome_core.quant; RMSNorm weights FP32; the same parameters as FP32); ternary at doubled
width (d_model and d_ff x 2, heads unchanged so the head dim doubles: BitNet b1.58
Reloaded finds ternary on par with 16-bit at small scale once the hidden size is
doubled). Exact parameters, n = 256 d + 3 (2 d + 2 d^2 + 2 d^2 / 3 + 3 d d_ff) + d, and
deployed bytes (FP32: 4 n; ternary: the ATMM file of atome_core.formats.modern_blob,
dense trits, float32 scales and norms, absmean as named here):

    size  | d_model  d_ff  head |  parameters |  FP32 bytes | ternary bytes
    8k    |   12      34    4   |      7,980  |     31,920  |      2,868
    15k   |   18      46    6   |     14,778  |     59,112  |      4,384
    30k   |   30      55   10   |     29,940  |    119,760  |      7,656
    60k   |   42      94   14   |     60,690  |    242,760  |     14,096
    120k  |   60     140   20   |    120,180  |    480,720  |     26,372
    240k  |   84     212   28   |    238,812  |    955,248  |     50,512
    944k  |  174     420   58   |    945,690  |  3,782,760  |    192,920

    ternary x2 | d_model  d_ff  head |  parameters | ternary bytes
    8k         |   24      68     8  |     25,608  |      6,644
    15k        |   36      92    12  |     49,644  |     11,764
    30k        |   60     110    20  |    103,980  |     23,132
    60k        |   84     188    28  |    220,668  |     46,912
    120k       |  120     280    40  |    449,160  |     93,136
    240k       |  168     424    56  |    911,064  |    185,908
    944k       |  348     840   116  |  3,691,236  |    741,516

(15k, 60k, 240k and 944k are the ladder's modern rungs; 8k, 30k and 120k were sized by
the same search, the count nearest the nominal size.) Presets are named
"modern-<size>", "modern-ternary-<size>" and "modern-ternary-x2-<size>" (`MODERN_PRESETS`).
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


# -- the modern frontier: FP32, ternary, ternary at doubled width ---------------------------

FRONTIER_SIZES = ("8k", "15k", "30k", "60k", "120k", "240k", "944k")
MODERN_SHAPES = {
    "8k": dict(d_model=12, n_layers=3, d_ff=34),              # 7,980
    "15k": LADDER[("modern", "15k")],                          # 14,778
    "30k": dict(d_model=30, n_layers=3, d_ff=55),             # 29,940
    "60k": LADDER[("modern", "60k")],                          # 60,690
    "120k": dict(d_model=60, n_layers=3, d_ff=140),           # 120,180
    "240k": LADDER[("modern", "240k")],                        # 238,812
    "944k": LADDER[("modern", "944k")],                        # 945,690
}
VARIANTS = ("fp32", "ternary", "ternary-x2")
SCALES = ("absmean", "absmedian")       # atome_core.quant.SCALES (this module loads no torch)


def ternary_quant(scale: str = "absmean", act_bits: int = 32) -> dict:
    """A QuantConfig's fields for ternary weights (ModernConfig accepts them as a dict)."""
    if scale not in SCALES:
        raise ValueError(f"unknown ternary scale {scale!r}; choose one of {', '.join(SCALES)}")
    return {"weights": "ternary", "act_bits": act_bits, "per_row": False, "scale": scale}


def widened(shape: dict, width: int) -> dict:
    """A modern shape at `width` times its d_model and d_ff (heads unchanged)."""
    if not isinstance(width, int) or isinstance(width, bool) or width < 1:
        raise ValueError(f"width must be a positive integer, got {width!r}")
    return {**shape, "d_model": shape["d_model"] * width, "d_ff": shape["d_ff"] * width}


def frontier_fields(variant: str, size: str) -> dict:
    """The ModernConfig fields of one frontier preset (plain data)."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown frontier variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    if size not in FRONTIER_SIZES:
        raise ValueError(f"unknown frontier size {size!r}; choose one of {', '.join(FRONTIER_SIZES)}")
    shape = MODERN_SHAPES[size]
    if variant == "fp32":
        return dict(shape)
    return {**widened(shape, 2 if variant == "ternary-x2" else 1), "quant": ternary_quant()}


FRONTIER = {(variant, size): frontier_fields(variant, size) for variant in VARIANTS for size in FRONTIER_SIZES}
MODERN_PRESETS = {("modern" if variant == "fp32" else f"modern-{variant}") + f"-{size}": fields
           for (variant, size), fields in FRONTIER.items()}


def frontier_config(variant: str, size: str, **overrides):
    """The ModernConfig of one frontier preset, any field overridden (a new object each call)."""
    fields = frontier_fields(variant, size)
    return family("modern")[0](**{**fields, **overrides})


def preset_config(name: str, **overrides):
    """The ModernConfig of a named preset (MODERN_PRESETS), e.g. "modern-ternary-x2-30k"."""
    if name not in MODERN_PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(MODERN_PRESETS)}")
    return family("modern")[0](**{**MODERN_PRESETS[name], **overrides})


# -- one cell of the ladder ---------------------------------------------------------------------

def check_cell(family_name: str, size: str) -> None:
    """A ladder cell: a family at one of SIZES; the modern family also at any FRONTIER_SIZES."""
    if family_name not in FAMILIES:
        raise ValueError(f"unknown model family {family_name!r}; choose one of {', '.join(FAMILIES)}")
    sizes = FRONTIER_SIZES if family_name == "modern" else SIZES
    if size not in sizes:
        raise ValueError(f"unknown ladder size {size!r} for the {family_name} model; "
                         f"choose one of {', '.join(sizes)}")


def ladder_config(family_name: str, size: str, **overrides):
    """The config dataclass of one rung, with any field overridden (a new object each call)."""
    check_cell(family_name, size)
    config_cls, _ = family(family_name)
    shape = LADDER[(family_name, size)] if (family_name, size) in LADDER else MODERN_SHAPES[size]
    return config_cls(**{**shape, **overrides})


def build_model(family_name: str, size: str, init_seed: int = 0):
    import torch
    torch.manual_seed(init_seed)
    return family(family_name)[1](ladder_config(family_name, size))


def count_params(model) -> int:
    return sum(p.numel() for p in model.parameters())
