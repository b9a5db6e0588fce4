"""Chapter 4: the Atome kit's 60K A/B: its published figures and the four models compared."""



# The kit's published per-byte perplexities on the first 500 KB of TinyStories (90/10
# split, batch 16 x 64 bytes, AdamW 3e-4 constant): one seed at 3,000 steps, and
# medians of three seeds at 1,500 steps. It had no modern baseline.
KIT_PPL = {
    "3000 steps, 1 seed": {"routed": 6.31, "vanilla param-fair": 8.12, "vanilla flash-fair": 13.10},
    "1500 steps, median of 3 seeds": {"routed": 7.60, "vanilla param-fair": 9.86, "vanilla flash-fair": 18.69},
}
KIT_TRAIN_SECONDS = {"routed": 195, "vanilla param-fair": 95}
# reported validation losses of the published 944K checkpoints (nats per byte, the kit's split)
KIT_944K_VAL_NATS = {"routed": 1.0545, "vanilla": 0.9337}


def ab_models(pathway_ablations: bool = False) -> dict:
    """name -> (model class, config) of the 60K A/B; with the ablations, the routed model
    trained without one pathway each."""
    from ..models import modern, routed, vanilla
    specs = {
        "routed": (routed.RoutedLM, routed.RoutedConfig()),
        "vanilla param-fair": (vanilla.VanillaGPT, vanilla.PARAM_FAIR_60K),
        "vanilla flash-fair": (vanilla.VanillaGPT, vanilla.FLASH_FAIR_60K),
        "modern": (modern.ModernLM, modern.ModernConfig()),
    }
    if pathway_ablations:
        for drop in routed.PATHWAYS:
            kept = tuple(p for p in routed.PATHWAYS if p != drop)
            specs[f"routed without {drop}"] = (routed.RoutedLM, routed.RoutedConfig(pathways=kept))
    return specs
