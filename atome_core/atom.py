"""Atom 3.4m as a configuration of the modern baseline (chapter 4's ModernLM).

7 layers, hidden 192, 3 query heads and 1 key-value head of dimension 64, SwiGLU FFN
480, context 512, RoPE theta 5000, RMSNorm, tied embeddings, a 4,096-token byte-level
BPE: 3,412,800 parameters.
"""
from .models.modern import ModernConfig

ATOM_3_4M = dict(vocab_size=4096, d_model=192, n_layers=7, n_heads=3, n_kv_heads=1, d_ff=480,
                 max_seq=512, rope_theta=5000.0)


def atom_config(**overrides) -> ModernConfig:
    """The Atom 3.4m config; overrides scale it (e.g. for the CPU budget)."""
    return ModernConfig(**{**ATOM_3_4M, **overrides})
