"""Import of the Atome kit's published PyTorch checkpoints into the book's model classes.

The `.pt` files are pickles: they are read with `torch.load(weights_only=True)`
only (tensors and plain containers, no code), mapped to the CPU (they were saved
from a GPU). Each holds {"state_dict", "config", "step", "val_loss"}; the
state_dict's names equal our modules', so import is a strict load_state_dict.

The files live in ../shared/interop/ beside the project (or wherever the user
downloaded them); each is checked against its published sha256 before use.
The ATOME01 blob (`atome_944k.bin`) is read by chapter 3's packing module.
"""
import hashlib
import warnings
from pathlib import Path

import torch

from ..paths import shared_interop_dir

# sha256 of the published files (../shared/interop/README.md)
PUBLISHED_SHA256 = {
    "atome_1m_v1.pt": "0bba4c123a9026bffb36f05acc9a7f9e68dcac95b01321d151d32d8320b660c8",
    "vanilla_1m_v1.pt": "8c2f4308185c91c5c493d61a7ac5aa3d1c44cfb3baaa205ce7275ce74ee4494d",
    "atome_944k.bin": "fdf8a6b69eacc5e4834e488759593198e482399887fce2c5b048a599844ae2f5",
    "tinystories_sample.txt": "4c8bf5f6562f0fa399fede68bf62d863667309a03c94ca7f148a94e8305110bd",
}


class CheckpointError(ValueError):
    """A missing, damaged or unexpected checkpoint file."""


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def published_path(name: str, path=None, verify: bool = True) -> Path:
    """The path of a published file: `path` if given, else ../shared/interop/<name>;
    its sha256 checked against the published one."""
    if name not in PUBLISHED_SHA256:
        raise CheckpointError(f"unknown published file {name!r}; known: {', '.join(PUBLISHED_SHA256)}")
    if path is None:
        interop = shared_interop_dir()
        if interop is None:
            raise CheckpointError(f"{name}: no path given and ../shared/interop is absent; download it from "
                                  "the Atome kit's release (TilelliLab/atome-lm) and pass its path")
        path = interop / name
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    if verify:
        got = sha256_file(path)
        if got != PUBLISHED_SHA256[name]:
            raise CheckpointError(f"{path}: sha256 {got} is not the published {PUBLISHED_SHA256[name]}")
    return path


def read_pt(path) -> dict:
    try:
        with warnings.catch_warnings():
            # the kit saved with pickle protocol 4, which the weights-only reader handles
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            ckpt = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as e:  # a pickle that needs code, a truncated file, not a zip...
        raise CheckpointError(f"{path}: not a weights-only PyTorch checkpoint ({e})") from None
    if not isinstance(ckpt, dict) or not {"state_dict", "config"} <= set(ckpt):
        raise CheckpointError(f"{path}: expected a dict with 'state_dict' and 'config'")
    return ckpt


def config_fields(ckpt: dict, names: tuple, path) -> dict:
    """The named entries of the checkpoint's config, all present and integers."""
    c = ckpt["config"]
    missing = [n for n in names if not isinstance(c.get(n), int)]
    if missing:
        raise CheckpointError(f"{path}: config lacks integer field(s) {missing}; has {sorted(c)}")
    return {n: c[n] for n in names}


def _load_strict(model, state_dict, path):
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not fit {type(model).__name__}: {e}") from None
    model.eval()
    return model


def load_routed_pt(path=None, verify: bool = True):
    """atome_1m_v1.pt -> (RoutedLM with the FP32 shadow weights, checkpoint info)."""
    from ..models.routed import RoutedConfig, RoutedLM
    path = published_path("atome_1m_v1.pt", path, verify)
    ckpt = read_pt(path)
    if ckpt["config"].get("n_pathways", 3) != 3:
        raise CheckpointError(f"{path}: n_pathways {ckpt['config']['n_pathways']}, expected 3")
    cfg = RoutedConfig(**config_fields(ckpt, ("vocab_size", "d_model", "n_layers", "d_head", "top_k",
                                              "kernel_size"), path))
    model = _load_strict(RoutedLM(cfg), ckpt["state_dict"], path)
    return model, {k: v for k, v in ckpt.items() if k != "state_dict"}


def load_vanilla_pt(path=None, verify: bool = True):
    """vanilla_1m_v1.pt -> (VanillaGPT, checkpoint info)."""
    from ..models.vanilla import VanillaConfig, VanillaGPT
    path = published_path("vanilla_1m_v1.pt", path, verify)
    ckpt = read_pt(path)
    kind = ckpt["config"].get("kind", "vanilla_transformer_fp32")
    if kind != "vanilla_transformer_fp32":
        raise CheckpointError(f"{path}: kind {kind!r}, expected 'vanilla_transformer_fp32'")
    cfg = VanillaConfig(**config_fields(ckpt, ("vocab_size", "d_model", "n_layers", "n_heads", "d_ff",
                                               "max_seq"), path))
    model = _load_strict(VanillaGPT(cfg), ckpt["state_dict"], path)
    return model, {k: v for k, v in ckpt.items() if k != "state_dict"}


# -----------------------------------------------------------------------------
# ATOME01 blob (trits and scales) -> the training class

def shadow_from_trits(trits: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """FP32 weights W whose ternarisation (atome_core.quant.ternarize) is exactly (trits, alpha).

    (W = trits * alpha would not do: its absmean is alpha times the fraction of non-zero
    trits.) W = trits * c with c = alpha / fraction, rescaled until the float32 mean
    agrees; any last-ulp difference is absorbed by one element's magnitude, found by
    bisection over its float32 bit patterns (every representable value is a candidate).
    Elements spread over the tensor sit in different partial sums of the reduction, so
    if one cannot hit alpha exactly the next is tried. Magnitudes stay above alpha / 2
    (and trits are clamped above), so no trit changes.
    """
    from ..quant import ternarize
    trits, alpha = trits.float(), alpha.float().reshape(())
    nonzero = (trits != 0).reshape(-1)
    if not nonzero.any():
        raise CheckpointError("an all-zero trit tensor has no shadow weights with a given scale")
    base = (trits * (alpha / nonzero.float().mean())).reshape(-1)
    for _ in range(4):
        base = base * float(alpha.double() / ternarize(base.view_as(trits))[1].double())

    def exact(w) -> bool:
        got_trits, got_alpha = ternarize(w.view_as(trits))
        return bool(got_alpha == alpha) and torch.equal(got_trits, trits)

    if exact(base):
        return base.view_as(trits).clone()

    def to_bits(x: float) -> int:
        return int(torch.tensor([x], dtype=torch.float32).view(torch.int32)[0])

    def scale_with(w, i, bits) -> torch.Tensor:
        w[i] = torch.sign(base[i]) * torch.tensor([bits], dtype=torch.int32).view(torch.float32)[0]
        return ternarize(w.view_as(trits))[1]

    c = base.abs().max().item()
    candidates = nonzero.nonzero()[:, 0]
    for i in candidates[torch.linspace(0, len(candidates) - 1, min(64, len(candidates))).long()].tolist():
        w = base.clone()
        lo, hi = to_bits(max(0.51 * alpha.item(), 0.9 * c)), to_bits(1.1 * c)
        if not scale_with(w, i, lo) <= alpha <= scale_with(w, i, hi):
            continue
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if scale_with(w, i, mid) < alpha:
                lo = mid
            else:
                hi = mid
        for bits in (lo, hi):
            scale_with(w, i, bits)
            if exact(w):
                return w.view_as(trits).clone()
    raise CheckpointError(f"no FP32 weights ternarise to scale {alpha.item()!r} exactly")


def load_routed_blob(path=None, config=None, verify: bool = True):
    """An ATOME01 blob (read by atome_core.formats) -> RoutedLM whose forward uses exactly
    the blob's trits and scales.

    Default: the published atome_944k.bin (sha256 checked) with its 944K config. For any
    other blob give `path` and its RoutedConfig: the layout has no header, so the
    reader checks the size against the config.
    """
    from .. import formats
    from ..models.presets import ladder_config
    from ..models.routed import RoutedLM
    if config is None:
        path = published_path("atome_944k.bin", path, verify)
        config = ladder_config("routed", "944k")
    elif path is None:
        raise CheckpointError("a blob with a given config needs its path")
    try:
        tensors = formats.read_atome01(Path(path).read_bytes(), config)
    except (formats.BlobError, OSError) as e:
        raise CheckpointError(f"{path}: {e}") from None
    state = {}
    for name in formats.trit_weight_names(config):
        state[name] = shadow_from_trits(torch.from_numpy(tensors[name].astype("float32")),
                                        torch.from_numpy(tensors[formats.scale_key(name)]))
    for name in formats.vector_names(config):
        state[name] = torch.from_numpy(tensors[name].copy())
    return _load_strict(RoutedLM(config), state, path)
