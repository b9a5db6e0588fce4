"""The ternary modern model: chapter 2's ternary layers in the Atom-style decoder, its presets,
its deployed forward, its ATMM file and `atome train --model modern --quant ternary`."""
import dataclasses
import json
import struct
import zlib

import numpy as np
import pytest
import torch
import torch.nn as nn

from atome_core import quant as Q
from atome_core.cli import main as atome
from atome_core.evaluate import evaluate_loss
from atome_core.formats import errors as E
from atome_core.formats import modern_blob as B
from atome_core.formats.model_file import load_model, save_model
from atome_core.models import modern as M
from atome_core.models import presets

TINY = dict(vocab_size=256, d_model=12, n_layers=2, n_heads=3, n_kv_heads=1, d_ff=20, max_seq=64)
QUANTS = [Q.QuantConfig(scale=scale, act_bits=bits) for scale in Q.SCALES for bits in (32, 8)]


def bits(t: torch.Tensor) -> torch.Tensor:
    return t.detach().contiguous().view(torch.int32)


def trained(quant, seed=0, steps=3, **shape):
    """A tiny ternary modern model after a few AdamW steps on random bytes (eval mode)."""
    torch.manual_seed(seed)
    model = M.ModernLM(M.ModernConfig(**{**TINY, **shape}, quant=quant))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x = torch.randint(0, 256, (2, 33), generator=g)
        loss = model.loss(x[:, :-1], x[:, 1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


@pytest.fixture(scope="module")
def tokens():
    return torch.randint(0, 256, (2, 40), generator=torch.Generator().manual_seed(7))


# -- the scale -------------------------------------------------------------------------------

def test_absmedian_takes_the_median_of_the_magnitudes_and_absmean_stays_the_default():
    w = torch.tensor([[1.0, -2.0, 3.0, -4.0, 0.1]])
    trits, alpha = Q.ternarize(w, scale="absmedian")
    assert alpha.item() == 2.0
    assert trits.tolist() == [[0.0, -1.0, 1.0, -1.0, 0.0]]
    mean_trits, mean_alpha = Q.ternarize(w)
    assert mean_alpha.item() == pytest.approx(2.02) and mean_trits.tolist() == [[0.0, -1.0, 1.0, -1.0, 0.0]]
    rows = torch.tensor([[1.0, 5.0, 9.0], [-0.2, 0.4, -0.6]])
    _, per_row = Q.ternarize(rows, per_row=True, scale="absmedian")
    assert per_row.shape == (2, 1) and per_row.flatten().tolist() == pytest.approx([5.0, 0.4])
    assert Q.QuantConfig().scale == "absmean"
    w = torch.randn(16, 16, generator=torch.Generator().manual_seed(0))
    assert torch.equal(bits(Q.ternary_weight(w)), bits(Q.ternary_weight(w, scale="absmean")))
    with pytest.raises(ValueError, match="scale"):
        Q.QuantConfig(scale="absmax")


# -- the model ---------------------------------------------------------------------------------

def test_without_a_quant_config_the_model_is_the_fp32_model_with_plain_layers():
    model = M.ModernLM(M.ModernConfig(**TINY))
    assert model.cfg.quant is None
    assert not any(isinstance(m, Q.TERNARY_LAYERS) for m in model.modules())
    assert type(model.embed) is nn.Embedding and type(model.blocks[0].attn.wq) is nn.Linear


def test_every_matrix_is_ternary_the_tied_embedding_too_and_the_norms_stay_fp32():
    torch.manual_seed(0)
    fp32 = M.ModernLM(M.ModernConfig(**TINY))
    torch.manual_seed(0)
    ternary = M.ModernLM(M.ModernConfig(**TINY, quant=Q.QuantConfig()))
    # the same initial shadow weights: the ternary model is the FP32 model's init
    assert all(torch.equal(a, b) for a, b in zip(fp32.state_dict().values(), ternary.state_dict().values()))
    matrices = M.ternary_matrices(ternary)
    assert list(matrices) == [n for n, p in ternary.named_parameters() if p.dim() == 2]
    assert len(matrices) == 1 + 7 * TINY["n_layers"] and "embed.weight" in matrices
    for m in matrices.values():
        assert len(torch.unique(m.effective_weight().detach().abs())) <= 2   # {0, alpha}
    norms = [n for n, p in ternary.named_parameters() if p.dim() == 1]
    assert all(n.endswith("norm.weight") for n in norms) and len(norms) == 2 * TINY["n_layers"] + 1
    x = torch.randint(0, 256, (1, 16), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert not torch.equal(fp32(x), ternary(x))
        # the output matrix is the embedding's ternary effective weight
        h = ternary.embed(x)
        cos, sin = M.rope_tables(16, TINY["d_model"] // TINY["n_heads"], ternary.cfg.rope_theta, "cpu")
        for block in ternary.blocks:
            h = block(h, cos, sin)
        want = torch.nn.functional.linear(ternary.final_norm(h), ternary.embed.effective_weight())
        assert torch.equal(bits(ternary(x)), bits(want))


def test_gradients_reach_every_shadow_weight_through_the_straight_through_estimator():
    torch.manual_seed(0)
    model = M.ModernLM(M.ModernConfig(**TINY, quant=Q.QuantConfig(scale="absmedian", act_bits=8)))
    x = torch.randint(0, 256, (2, 17), generator=torch.Generator().manual_seed(2))
    model.loss(x[:, :-1], x[:, 1:]).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_a_quant_config_given_as_a_dict_is_rebuilt_and_a_wrong_one_is_refused():
    cfg = M.ModernConfig(quant={"weights": "ternary", "act_bits": 8, "per_row": False, "scale": "absmedian"})
    assert cfg.quant == Q.QuantConfig(act_bits=8, scale="absmedian")
    assert M.ModernConfig(**dataclasses.asdict(cfg)) == cfg
    with pytest.raises(ValueError, match="quant"):
        M.ModernConfig(quant="ternary")


def test_state_shapes_are_the_models_own():
    for quant in (None, Q.QuantConfig()):
        cfg = M.ModernConfig(**TINY, quant=quant)
        model = M.ModernLM(cfg)
        assert M.state_shapes(cfg) == {k: tuple(v.shape) for k, v in model.state_dict().items()}


# -- parameter counts ----------------------------------------------------------------------------

def hand_count(d, d_ff, n_layers=3, vocab=256):
    # embedding (tied) + per layer: 2 norms, wq and wo (d x d), wk and wv (d x d/3), gate/up/down + final norm
    return vocab * d + n_layers * (2 * d + 2 * d * d + 2 * d * (d // 3) + 3 * d * d_ff) + d


FP32_COUNTS = {"8k": 7_980, "15k": 14_778, "30k": 29_940, "60k": 60_690, "120k": 120_180,
               "240k": 238_812, "944k": 945_690}
X2_COUNTS = {"8k": 25_608, "15k": 49_644, "30k": 103_980, "60k": 220_668, "120k": 449_160,
             "240k": 911_064, "944k": 3_691_236}


@pytest.mark.parametrize("size", presets.FRONTIER_SIZES)
def test_the_frontier_presets_have_the_documented_parameter_counts(size):
    shape = presets.MODERN_SHAPES[size]
    assert hand_count(shape["d_model"], shape["d_ff"]) == FP32_COUNTS[size]
    assert hand_count(2 * shape["d_model"], 2 * shape["d_ff"]) == X2_COUNTS[size]
    want = {"fp32": FP32_COUNTS[size], "ternary": FP32_COUNTS[size], "ternary-x2": X2_COUNTS[size]}
    for variant, n in want.items():
        cfg = presets.frontier_config(variant, size)
        assert (cfg.quant is None) == (variant == "fp32")
        assert sum(int(np.prod(s)) for s in M.state_shapes(cfg).values()) == n
    if size in ("8k", "60k"):   # building every model is slow; two rungs build
        for variant, n in want.items():
            assert M.ModernLM(presets.frontier_config(variant, size)).num_params() == n


@pytest.mark.parametrize("name, n_bytes", [("modern-ternary-8k", 2_868), ("modern-ternary-30k", 7_656),
                                           ("modern-ternary-60k", 14_096), ("modern-ternary-x2-8k", 6_644),
                                           ("modern-ternary-x2-30k", 23_132)])
def test_the_documented_deployed_bytes_are_the_atmm_files_length(name, n_bytes):
    torch.manual_seed(0)
    assert B.deployed_bytes(M.ModernLM(presets.preset_config(name))) == n_bytes
    assert f"{n_bytes:,}" in presets.__doc__


def test_the_frontier_keeps_the_ladders_modern_rungs_and_names_every_preset():
    for size in presets.SIZES:
        assert presets.MODERN_SHAPES[size] == presets.LADDER[("modern", size)]
        assert presets.ladder_config("modern", size) == presets.frontier_config("fp32", size)
    assert presets.ladder_config("modern", "8k") == presets.preset_config("modern-8k")
    assert len(presets.MODERN_PRESETS) == 21
    cfg = presets.preset_config("modern-ternary-x2-30k")
    assert (cfg.d_model, cfg.d_ff, cfg.quant) == (60, 110, Q.QuantConfig())
    assert presets.preset_config("modern-ternary-60k", quant=presets.ternary_quant("absmedian")).quant.scale \
        == "absmedian"
    with pytest.raises(ValueError, match="8k"):
        presets.ladder_config("routed", "8k")
    with pytest.raises(ValueError, match="unknown preset"):
        presets.preset_config("modern-ternary-7k")


# -- the deployed forward ------------------------------------------------------------------------

@pytest.mark.parametrize("quant", QUANTS, ids=lambda q: f"{q.scale}-a{q.act_bits}")
def test_the_ternary_forward_equals_the_deployed_trits_times_scale_forward_bit_for_bit(quant, tokens):
    model = trained(quant)
    deployed = M.deployed_model(model)
    for name, m in M.ternary_matrices(deployed).items():   # the deployed weights are trits x scale
        w = m.weight.detach()
        assert len(torch.unique(w.abs())) <= 2 and name in M.ternary_matrices(model)
    assert deployed.cfg.quant.weights == "fp32" and deployed.cfg.quant.act_bits == quant.act_bits
    with torch.no_grad():
        want = model(tokens)
        assert torch.equal(bits(deployed(tokens)), bits(want))
        assert torch.equal(bits(B.model_from_blob(B.blob_of_model(model))(tokens)), bits(want))


def test_per_row_scales_deploy_bit_for_bit_too(tokens):
    model = trained(Q.QuantConfig(per_row=True, scale="absmedian", act_bits=8))
    with torch.no_grad():
        want = model(tokens)
        assert torch.equal(bits(M.deployed_model(model)(tokens)), bits(want))
        assert torch.equal(bits(B.model_from_blob(B.blob_of_model(model, codec="rans"))(tokens)), bits(want))


def test_only_a_ternary_model_deploys():
    with pytest.raises(ValueError, match="ternary"):
        M.deployed_model(M.ModernLM(M.ModernConfig(**TINY)))
    with pytest.raises(ValueError, match="ternary"):
        B.deployed_bytes(M.ModernLM(M.ModernConfig(**TINY)))


# -- the ATMM file -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def model():
    return trained(Q.QuantConfig(scale="absmedian"), seed=1)


@pytest.fixture(scope="module")
def blob(model):
    return B.blob_of_model(model)


@pytest.mark.parametrize("codec", ["dense", "2bit", "base3x5", "rans", "auto"])
def test_the_blob_round_trips_trits_scales_and_norms_exactly(model, codec):
    want = M.deployed_state(model)
    cfg, state = B.read_blob(B.blob_of_model(model, codec=codec))
    assert cfg == model.cfg and list(state) == list(want)
    for name, value in want.items():
        if isinstance(value, tuple):
            assert np.array_equal(state[name][0], value[0].numpy())
            assert state[name][1].shape == () and state[name][1].view(np.uint32) == value[1].numpy().view(np.uint32)
        else:
            assert np.array_equal(state[name].view(np.uint32), value.numpy().view(np.uint32))


def test_deployed_bytes_is_the_blobs_length_and_the_dense_codec_is_near_log2_3_bits(model, blob):
    assert B.deployed_bytes(model) == len(blob)
    assert blob[:4] == B.MAGIC and len(blob) % 4 == 0
    n_sections, file_size, config_len = struct.unpack_from("<HII", blob, 6)
    assert file_size == len(blob) and n_sections == 2 + 9 * TINY["n_layers"]
    assert json.loads(blob[16:16 + config_len]) == dataclasses.asdict(model.cfg)
    matrices = sum(m.weight.numel() for m in M.ternary_matrices(model).values())
    norms = sum(p.numel() for p in model.parameters() if p.dim() == 1)
    floor = matrices * np.log2(3) / 8 + 4 * len(M.ternary_matrices(model)) + 4 * norms
    overhead = 16 + B._align(config_len) + 20 * n_sections + 4 + 3 * n_sections  # header, table, CRC, padding
    assert floor < len(blob) < floor + overhead + len(M.ternary_matrices(model))
    assert len(B.blob_of_model(model, codec="2bit")) > len(blob)
    half = B.blob_of_model(model, float_dtype="float16")
    assert len(half) == len(blob) - 2 * norms
    _, state = B.read_blob(half)
    assert np.array_equal(state["final_norm.weight"], model.final_norm.weight.detach().half().float().numpy())


def with_crc(data: bytes) -> bytes:
    body = data[:-4]
    return body + struct.pack("<I", zlib.crc32(body))


def test_the_reader_names_what_is_wrong(blob):
    with pytest.raises(E.BadMagicError):
        B.read_blob(b"ATMB" + blob[4:])
    with pytest.raises(E.TruncatedBlobError):
        B.read_blob(blob[:3])
    with pytest.raises(E.TruncatedBlobError):
        B.read_blob(blob[:-8])
    with pytest.raises(E.TrailingBytesError):
        B.read_blob(blob + bytes(4))
    with pytest.raises(E.UnsupportedVersionError):
        B.read_blob(blob[:4] + struct.pack("<H", 2) + blob[6:])
    damaged = bytearray(blob)
    damaged[len(blob) // 2] ^= 1
    with pytest.raises(E.ChecksumError):
        B.read_blob(bytes(damaged))
    # a config that says something else than the sections: one layer more
    config_len = struct.unpack_from("<I", blob, 12)[0]
    config = blob[16:16 + config_len].replace(b'"n_layers":2', b'"n_layers":3')
    with pytest.raises(E.ConfigMismatchError):
        B.read_blob(with_crc(blob[:16] + config + blob[16 + config_len:]))
    config = blob[16:16 + config_len].replace(b'"ternary"', b'"fp32"\x20\x20\x20')
    assert len(config) == config_len
    with pytest.raises(E.BadHeaderError):
        B.read_blob(with_crc(blob[:16] + config + blob[16 + config_len:]))
    # a trit section whose payload is cut short
    table = 16 + B._align(config_len)
    entry = bytearray(blob[table:table + 20])
    struct.pack_into("<I", entry, 16, struct.unpack_from("<I", entry, 16)[0] - 1)
    with pytest.raises(E.CorruptSectionError):
        B.read_blob(with_crc(blob[:table] + bytes(entry) + blob[table + 20:]))
    # a section that points into the table
    struct.pack_into("<I", entry, 12, table)
    with pytest.raises(E.SectionBoundsError):
        B.read_blob(with_crc(blob[:table] + bytes(entry) + blob[table + 20:]))


# -- the model file ------------------------------------------------------------------------------

@pytest.mark.parametrize("quant", [Q.QuantConfig(scale="absmedian", act_bits=8), Q.QuantConfig()],
                         ids=["absmedian-a8", "absmean"])
def test_a_ternary_model_file_round_trips_its_config_and_its_logits_bits(quant, tokens, tmp_path):
    model = trained(quant)
    path = save_model(model, tmp_path / "m.safetensors")
    loaded, _ = load_model(path)
    assert loaded.cfg == model.cfg and isinstance(loaded.cfg.quant, Q.QuantConfig)
    assert isinstance(loaded.embed, Q.TernaryEmbedding)
    with torch.no_grad():
        assert torch.equal(bits(loaded(tokens)), bits(model(tokens)))


# -- atome train ---------------------------------------------------------------------------------

def run_train(text_file, out, *extra, size="8k"):
    return atome(["train", "--model", "modern", "--size", size, "--tokens", "4096", "--seed", "1",
                  "--corpus", "file", "--corpus-path", str(text_file), "--val-bytes", "600",
                  "--device", "cpu", "--out", str(out), *extra])


def test_cli_trains_a_ternary_modern_model_at_doubled_width_and_saves_its_full_config(text_file, tmp_path):
    out = tmp_path / "t8k.safetensors"
    assert run_train(text_file, out, "--quant", "ternary", "--scale", "absmedian", "--width", "2") == 0
    summary = json.loads((tmp_path / "t8k.safetensors.json").read_text())
    assert (summary["family"], summary["size"], summary["params"]) == ("modern", "8k", 25_608)
    model, _ = load_model(out)
    assert model.cfg == presets.frontier_config("ternary-x2", "8k", quant=presets.ternary_quant("absmedian"))
    assert summary["deployed"] == {"format": "ATMM v1 (dense trits)", "bytes": B.deployed_bytes(model)}
    raw = np.frombuffer(text_file.read_bytes(), dtype=np.uint8).astype(np.int64)
    val = raw[int(len(raw) * 0.9):][:600]
    assert evaluate_loss(model, val, 256) == pytest.approx(summary["val_nats_per_byte"], rel=1e-6)


def test_cli_trains_the_modern_model_at_a_frontier_size_fp32_or_with_8_bit_activations(text_file, tmp_path):
    out = tmp_path / "m30k.safetensors"
    assert run_train(text_file, out, size="30k") == 0
    model, _ = load_model(out)
    assert model.cfg == presets.ladder_config("modern", "30k") and model.cfg.quant is None
    summary = json.loads((tmp_path / "m30k.safetensors.json").read_text())
    assert summary["params"] == 29_940 and summary["deployed"] == {"format": "FP32", "bytes": 4 * 29_940}
    assert run_train(text_file, tmp_path / "a8.safetensors", "--quant", "ternary", "--act-bits", "8") == 0
    model, _ = load_model(tmp_path / "a8.safetensors")
    assert model.cfg.quant == Q.QuantConfig(act_bits=8) and model.num_params() == 7_980


def test_cli_refuses_misplaced_flags_and_a_frontier_size_for_another_family(text_file, tmp_path, capsys):
    assert run_train(text_file, tmp_path / "x", "--scale", "absmedian") == 2
    assert "--scale and --act-bits are for --quant ternary" in capsys.readouterr().err
    assert atome(["train", "--model", "routed", "--size", "15k", "--tokens", "10", "--quant", "ternary",
                  "--out", str(tmp_path / "x")]) == 2
    assert "are for --model modern" in capsys.readouterr().err
    assert atome(["train", "--model", "routed", "--size", "8k", "--tokens", "10", "--corpus", "file",
                  "--corpus-path", str(text_file), "--out", str(tmp_path / "x")]) == 2
    assert "unknown ladder size '8k' for the routed model" in capsys.readouterr().err


def test_one_deployed_size_for_every_family():
    from atome_core import evaluate as E
    from atome_core.formats import ptq
    ternary = M.ModernLM(presets.preset_config("modern-ternary-8k"))
    fp32 = M.ModernLM(presets.preset_config("modern-8k"))
    assert E.deployed_bytes(ternary) == {"format": "ATMM v1 (dense trits)", "bytes": B.deployed_bytes(ternary)}
    assert E.deployed_bytes(fp32) == {"format": "FP32", "bytes": 4 * 7_980}
    assert E.deployed_bytes(fp32, "int8") == {"format": "ATPQ v1 (int8)", "bytes": ptq.deployed_bytes(fp32, "int8")}


def test_a_routed_model_trained_with_the_median_scale_has_no_atmb_layout():
    from atome_core import formats
    from atome_core.models.routed import RoutedConfig
    from atome_core.quant import QuantConfig
    with pytest.raises(ValueError, match="absmean"):
        formats.blob_config(RoutedConfig(quant=QuantConfig(scale="absmedian")))
