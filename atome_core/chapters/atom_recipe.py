"""Atom 3.4m as a configuration of the modern baseline (chapter 4's ModernLM).

7 layers, hidden 192, 3 query heads and 1 key-value head of dimension 64, SwiGLU FFN
480, context 512, RoPE theta 5000, RMSNorm, tied embeddings, a 4,096-token byte-level
BPE: 3,412,800 parameters.
"""
from ..evaluate import text_bits_per_byte
from ..models.modern import ModernConfig

ATOM_3_4M = dict(vocab_size=4096, d_model=192, n_layers=7, n_heads=3, n_kv_heads=1, d_ff=480,
                 max_seq=512, rope_theta=5000.0)


def atom_config(**overrides) -> ModernConfig:
    """The Atom 3.4m config; overrides scale it (e.g. for the CPU budget)."""
    return ModernConfig(**{**ATOM_3_4M, **overrides})


# -- chapter 8's steps -----------------------------------------------------------------------------

SAMPLE_LINE = "ROMEO:\nBut, soft! what light through yonder window breaks?\n"


def curriculum_corpora(curriculum, eval_bytes: int) -> tuple[list, dict, str]:
    """(corpus names in the curriculum, sorted; {name: Corpus}; the first `eval_bytes`
    characters of Shakespeare's validation split, the text every model is scored on)."""
    from .. import data
    names = sorted({name for _, weights in curriculum for name in weights})
    corpora = {name: data.load_corpus(name) for name in names}
    shakespeare = corpora["shakespeare"] if "shakespeare" in corpora else data.load_corpus("shakespeare")
    return names, corpora, shakespeare.val[:eval_bytes]


def tokenizer_stats(tokenizer, text: str) -> dict:
    """Vocabulary size, and the bytes, tokens and bytes per token of `text`."""
    n_bytes, n_tokens = len(text.encode()), len(tokenizer.encode(text))
    return {"vocab_size": tokenizer.vocab_size, "bytes": n_bytes, "tokens": n_tokens,
            "bytes_per_token": n_bytes / n_tokens}


def token_pieces(tokenizer, text: str) -> list[str]:
    """The pieces `text` splits into, each token decoded on its own."""
    return [tokenizer.decode_bytes([t]).decode("utf-8", "replace") for t in tokenizer.encode(text)]


def byte_window(seq_len: int, bytes_per_token: float) -> int:
    """Training window of a byte-level model that sees about as many bytes per step as a
    BPE model with windows of `seq_len` tokens (at least 8)."""
    return max(8, int(round(seq_len * bytes_per_token)))


def model_specs(vocab_size: int, atom_overrides: dict, atom_small_overrides: dict, seq_len: int,
                byte_seq: int) -> list:
    """[(name, model class, config, byte-level?, training window)] of the chapter's four models:
    the Atom-style model at the profile's size and one of the modern 60K baseline's size (BPE,
    `vocab_size`), the routed ternary and modern 60K models (bytes). A modern model's max_seq
    (a sanity bound: RoPE has no table, the parameters do not change) is raised to its window."""
    import dataclasses

    from ..models.modern import ModernLM
    from ..models.routed import RoutedConfig, RoutedLM

    def fitting(cfg, window):
        return dataclasses.replace(cfg, max_seq=max(cfg.max_seq, window))
    return [("Atom-style (BPE)", ModernLM, fitting(atom_config(vocab_size=vocab_size, **atom_overrides), seq_len),
             False, seq_len),
            ("Atom-style 60K (BPE)", ModernLM,
             fitting(atom_config(vocab_size=vocab_size, **atom_small_overrides), seq_len), False, seq_len),
            ("routed ternary 60K (bytes)", RoutedLM, RoutedConfig(), True, byte_seq),
            ("modern 60K (bytes)", ModernLM, fitting(ModernConfig(), byte_seq), True, byte_seq)]


def build_models(tokenizer, seed: int, atom_overrides: dict, atom_small_overrides: dict, seq_len: int,
                 byte_seq: int) -> dict:
    """{name: (model, tokenizer, training window)} of `model_specs`, each initialised right
    after torch.manual_seed(seed)."""
    import torch

    from ..data.tokenizer import ByteTokenizer
    models = {}
    for name, model_class, config, byte_level, window in model_specs(tokenizer.vocab_size, atom_overrides,
                                                                     atom_small_overrides, seq_len, byte_seq):
        torch.manual_seed(seed)
        models[name] = (model_class(config), ByteTokenizer() if byte_level else tokenizer, window)
    return models


def curriculum_config(steps: int, batch_size: int, window: int, lr: float, seed: int):
    """Every model's recipe: cosine schedule after 5 % warm-up, down to lr / 10."""
    from ..train import TrainConfig
    return TrainConfig(steps=steps, batch_size=batch_size, seq_len=window, lr=lr, schedule="cosine",
                       warmup_steps=max(1, steps // 20), min_lr=lr / 10, seed=seed,
                       log_every=max(1, steps // 50), eval_batches=4)


def training_plan(P, bytes_per_token: float | None = None) -> list:
    """The chapter's four training runs under parameters `P` (atome_core.book.estimate), as
    `build_models` and `train_on_curriculum` make them. The byte models' window follows the
    trained tokenizer's bytes per token (`byte_window`), known only once it is trained: pass the
    value a build measured; None stands in one byte per token (the byte window = the BPE window).
    The BPE models' vocabulary is `P.bpe_vocab`, the size the tokenizer is trained to."""
    from ..ledger import run_shape
    byte_seq = byte_window(P.seq_len, bytes_per_token or 1.0)
    specs = model_specs(P.bpe_vocab, P.atom_overrides, P.atom_small_overrides, P.seq_len, byte_seq)
    return [run_shape(model_class, config, curriculum_config(P.steps, P.batch_size, window, P.lr, P.seed))
            for _, model_class, config, _, window in specs]


def train_on_curriculum(models: dict, corpora: dict, curriculum, val_text: str, steps: int, batch_size: int,
                        lr: float, seed: int, train_chars: int | None = None) -> dict:
    """Train each model in turn on the curriculum's mixture of `corpora` (cosine schedule,
    5 % warm-up, final lr / 10); {name: (model, tokenizer, window, TrainResult)}."""
    import numpy as np

    from ..data.curriculum import Curriculum
    from ..train import train
    schedule = [(float(f), dict(w)) for f, w in curriculum]
    trained = {}
    for name, (model, tok, window) in models.items():
        streams = {n: np.asarray(tok.encode(c.train[:train_chars]), dtype=np.int64) for n, c in corpora.items()}
        val = np.asarray(tok.encode(val_text), dtype=np.int64)
        result = train(model, Curriculum(streams, schedule), val, curriculum_config(steps, batch_size, window, lr, seed),
                       progress_desc=name)
        trained[name] = (model, tok, window, result)
    return trained


def bits_per_byte_table(trained: dict, val_text: str, bpe_tokenizer, bytes_per_token: float) -> dict:
    """{name: parameters, deployed bytes and format, bits per byte of `val_text`, training
    bytes seen (tokens seen x bytes per token for the BPE models)}."""
    from ..evaluate import deployed_bytes
    table = {}
    for name, (model, tok, window, result) in trained.items():
        size = deployed_bytes(model)
        seen = result.history[-1]["tokens_seen"] * (bytes_per_token if tok is bpe_tokenizer else 1)
        table[name] = {"params": model.num_params(), "deployed_bytes": size["bytes"],
                       "deployed_format": size["format"],
                       "bits_per_byte": text_bits_per_byte(model, tok, val_text, window),
                       "train_bytes_seen": seen}
    return table


LOCAL_TASK_COLUMNS = [("shakespeare_nextline", "acc"), ("shakespeare_nextline", "acc_norm"),
                      ("shakespeare_cloze", "acc"), ("shakespeare_complete", "exact_match"),
                      ("shakespeare_bpb", "bits_per_byte")]


def local_task_scores(trained: dict, n_items: int, seed: int) -> dict:
    """lm-evaluation-harness on the four local tasks (atome_core.harness.tasks), written
    to a scratch folder: {name: {task: {metric: value}}}, quietly."""
    import tempfile

    from ..harness import tasks
    with tempfile.TemporaryDirectory(prefix="atome-tasks-") as folder:
        task_dir = tasks.write_local_tasks(folder, n=n_items, seed=seed)
        return {name: tasks.evaluate(model, tok, task_dir) for name, (model, tok, _, _) in trained.items()}


def local_task_rows(scores: dict) -> list[list]:
    """[name, one value per LOCAL_TASK_COLUMNS] per model."""
    return [[name, *(s[t][m] for t, m in LOCAL_TASK_COLUMNS)] for name, s in scores.items()]


CHANCE = 0.25          # next-line choice has four options
BEATS_CHANCE_Z = 2.0   # a score beats chance when it is at least this many standard errors above it


def nextline_reading(scores: dict, default_items: int, metric: str = "acc_norm") -> dict:
    """The model with the highest next-line score (`metric`; acc_norm is the metric of Atom
    3.4m's published ARC-Easy), its score, the items, how many binomial standard errors at
    chance it lies from chance, and whether it beats chance (z >= BEATS_CHANCE_Z)."""
    import math
    best = max(scores, key=lambda n: scores[n]["shakespeare_nextline"][metric])
    acc = scores[best]["shakespeare_nextline"][metric]
    n = scores[best]["shakespeare_nextline"].get("sample_len", default_items)
    se = math.sqrt(CHANCE * (1 - CHANCE) / n)
    z = (acc - CHANCE) / se
    return {"best": best, "metric": metric, "acc": acc, "items": n, "se": se, "z": z, "models": len(scores),
            "beats_chance": bool(z >= BEATS_CHANCE_Z)}


def nextline_sentence(r: dict) -> str:
    """What the next-line scores say, in words: the best model when it beats chance, else
    that no model does, with the highest score and its distance from chance either way."""
    said = (f"{100 * r['acc']:.1f} % ({r['metric']}) against {100 * CHANCE:.0f} % chance over {r['items']:,} "
            f"items, {r['z']:+.1f} standard errors from chance (two standard errors are "
            f"±{200 * r['se']:.1f} points)")
    if r["beats_chance"]:
        return f"the best model here is {r['best']}, at {said}"
    return (f"no model of the {r['models']} beats chance by {BEATS_CHANCE_Z:.0f} standard errors: the highest "
            f"score, {r['best']}'s, is {said}")
