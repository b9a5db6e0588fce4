"""Post-training int8 / int4 quantisation of the FP32 baselines and its ATPQ file."""
import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from atome_core.evaluate import evaluate_loss, score
from atome_core.formats import ptq
from atome_core.formats.errors import (
    BadMagicError,
    CorruptSectionError,
    TrailingBytesError,
    TruncatedBlobError,
)
from atome_core.models.modern import ModernConfig, ModernLM
from atome_core.models.vanilla import VanillaConfig, VanillaGPT
from atome_core.train import TrainConfig, train

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL_VANILLA = VanillaConfig(vocab_size=256, d_model=16, n_layers=1, n_heads=2, d_ff=40, max_seq=16)
SMALL_MODERN = ModernConfig(d_model=12, n_layers=1, n_heads=3, n_kv_heads=1, d_ff=20)


def seeded(cls, cfg, seed=0):
    torch.manual_seed(seed)
    return cls(cfg)


class TiedToy(nn.Module):
    """An embedding (5 x 33: two groups of 32, the last of one column; 165 codes, odd)
    reused as the output matrix under a second name, a LayerNorm and a biased Linear."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(5, 33)
        self.norm = nn.LayerNorm(33)
        self.proj = nn.Linear(33, 7)
        self.out = nn.Linear(33, 5, bias=False)
        self.out.weight = self.embed.weight

    def forward(self, idx):
        return self.out(self.norm(self.embed(idx)))


# -- int4 packing -------------------------------------------------------------------------

@settings(max_examples=200, deadline=None)
@given(codes=st.lists(st.integers(-8, 7), max_size=301))
def test_unpacking_packed_int4_codes_gives_back_every_code(codes):
    q = torch.tensor(codes, dtype=torch.int8)
    packed = ptq.pack_int4(q)
    assert packed.dtype == torch.uint8 and packed.numel() == (len(codes) + 1) // 2
    assert torch.equal(ptq.unpack_int4(packed, len(codes)), q)


def test_the_first_code_of_a_pair_sits_in_the_low_nibble_as_twos_complement():
    assert ptq.pack_int4(torch.tensor([1, -1, -7], dtype=torch.int8)).tolist() == [0xF1, 0x09]


def test_packing_refuses_a_code_that_does_not_fit_four_bits():
    with pytest.raises(ValueError):
        ptq.pack_int4(torch.tensor([8], dtype=torch.int8))


# -- one matrix ---------------------------------------------------------------------------

matrices = st.tuples(st.integers(1, 9), st.integers(1, 100), st.integers(0, 2**31 - 1),
                     st.sampled_from([1e-4, 0.02, 1.0, 300.0]))


def random_matrix(rows, cols, seed, spread):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(rows, cols, generator=g) * spread
    if rows > 1:
        w[1] = 0.0                                  # an all-zero row
    return w


@settings(max_examples=80, deadline=None)
@given(shape=matrices)
def test_int8_error_is_at_most_half_a_step_and_each_nonzero_row_uses_code_127(shape):
    w = random_matrix(*shape)
    q, s = ptq.quantise_int8(w)
    assert q.dtype == torch.int8 and s.dtype == torch.float32 and s.shape == (w.shape[0],)
    step = s.float()[:, None]
    assert ((w - ptq.dequantise_int8(q, s)).abs() <= step / 2 * (1 + 1e-6)).all()
    assert int(q.to(torch.int16).abs().max()) <= 127
    nonzero = w.abs().amax(dim=1) > 0
    assert (q.to(torch.int16).abs().amax(dim=1)[nonzero] == 127).all()
    assert (s[~nonzero] == 0).all() and (q[~nonzero] == 0).all()


@settings(max_examples=80, deadline=None)
@given(shape=matrices, group=st.sampled_from([32, 7, 1]))
def test_int4_error_is_at_most_half_a_step_of_its_own_group(shape, group):
    w = random_matrix(*shape)
    rows, cols = w.shape
    q, s = ptq.quantise_int4(w, group)
    assert s.dtype == torch.float16 and s.shape == (rows, -(-cols // group))
    step = s.float().repeat_interleave(group, dim=1)[:, :cols]
    assert ((w - ptq.dequantise_int4(q, s, group)).abs() <= step / 2 * (1 + 1e-6)).all()
    assert int(q.to(torch.int16).abs().max()) <= 7
    # each group whose scale is a normal float16 puts its largest element on code 7
    for r in range(rows):
        for g in range(s.shape[1]):
            if s[r, g] >= 2.0 ** -14:
                assert q[r, g * group:(g + 1) * group].to(torch.int16).abs().max() == 7


def test_the_short_last_int4_group_has_its_own_scale():
    w = torch.zeros(1, 33)
    w[0, :32] = 0.01
    w[0, 32] = 7.0
    q, s = ptq.quantise_int4(w)
    assert s[0].float().tolist() == [pytest.approx(0.01 / 7, rel=1e-3), 1.0]
    assert q[0].tolist() == [7] * 32 + [7]


def test_rounding_is_half_to_even_and_the_codes_are_symmetric():
    w = torch.tensor([[127.0, 2.5, 3.5, -2.5, -0.5, 0.5, 1.5]])     # scale 1 exactly
    q, s = ptq.quantise_int8(w)
    assert s.item() == 1.0 and q[0].tolist() == [127, 2, 4, -2, 0, 0, 2]
    w = torch.randn(4, 50, generator=torch.Generator().manual_seed(3))
    for quantise in (ptq.quantise_int8, ptq.quantise_int4):
        (q_pos, s_pos), (q_neg, s_neg) = quantise(w), quantise(-w)
        assert torch.equal(q_neg, -q_pos) and torch.equal(s_neg, s_pos)


def test_an_int4_scale_rounded_down_by_float16_is_bumped_up_so_no_code_is_clamped():
    # 0.1 / 7 rounds down in float16; the stored scale must still cover 0.1
    w = torch.tensor([[0.1, -0.1, 0.05]])
    assert torch.tensor(0.1 / 7).to(torch.float16).float().item() < 0.1 / 7
    q, s = ptq.quantise_int4(w)
    assert s.float().item() >= 0.1 / 7
    assert q[0, :2].tolist() == [7, -7]
    assert abs(0.1 - 7 * s.float().item()) <= s.float().item() / 2


# -- the file -----------------------------------------------------------------------------

@pytest.mark.parametrize("scheme", ptq.SCHEMES)
@pytest.mark.parametrize("vector_dtype", ["float32", "float16"])
def test_the_file_reads_back_exactly_what_was_written(tmp_path, scheme, vector_dtype):
    model = seeded(VanillaGPT, SMALL_VANILLA)
    qm = ptq.quantise_model(model, scheme, vector_dtype=vector_dtype)
    path = ptq.write_ptq(model, tmp_path / f"{scheme}.atpq", scheme, vector_dtype=vector_dtype)
    back = ptq.read_ptq(path)
    assert (back.family, back.config, back.scheme, back.group_size, back.tied) == (
        "vanilla", qm.config, scheme, 32 if scheme == "int4" else None, {})
    assert list(back.tensors) == list(model.state_dict())
    for name, qt in qm.tensors.items():
        got = back.tensors[name]
        assert (got.kind, got.shape) == (qt.kind, qt.shape)
        assert got.values.dtype == qt.values.dtype and torch.equal(got.values, qt.values)
        assert (got.scales is None and qt.scales is None) or torch.equal(got.scales, qt.scales)
    assert ptq.to_bytes(back) == path.read_bytes()


def expected_header(tensors, tied, scheme, family=None, config=None, vector_dtype="float32"):
    header = {"format": "atome-ptq-1", "family": family, "config": config, "scheme": scheme,
              "group_size": 32 if scheme == "int4" else None, "vector_dtype": vector_dtype,
              "tensors": [{"name": n, "kind": k, "shape": list(s)} for n, k, s in tensors], "tied": tied}
    return json.dumps(header, separators=(",", ":"), sort_keys=True).encode()


# hand counts for TiedToy: embed 5x33 (165 codes, 2 groups a row), proj 7x33 (231 codes,
# 2 groups a row), vectors norm.weight 33, norm.bias 33, proj.bias 7 (73 floats);
# int8: a float32 scale a row; int4: ceil(n / 2) bytes of codes, a float16 scale a group
TOY_PAYLOAD = {
    ("fp32", "float32"): 4 * (165 + 231) + 4 * 73,
    ("fp16", "float16"): 2 * (165 + 231) + 2 * 73,
    ("int8", "float32"): (165 + 231) + 4 * (5 + 7) + 4 * 73,
    ("int4", "float32"): (83 + 116) + 2 * (5 * 2 + 7 * 2) + 4 * 73,
    ("int4", "float16"): (83 + 116) + 2 * (5 * 2 + 7 * 2) + 2 * 73,
}


@pytest.mark.parametrize("scheme,vector_dtype", list(TOY_PAYLOAD))
def test_the_file_is_prefix_header_and_payloads_to_the_byte_and_a_tied_matrix_counts_once(scheme, vector_dtype):
    toy = TiedToy()
    data = ptq.to_bytes(ptq.quantise_model(toy, scheme, vector_dtype=vector_dtype))
    kind = {"fp32": "f32", "fp16": "f16"}.get(scheme, scheme)
    vec = {"float32": "f32", "float16": "f16"}[vector_dtype]
    header = expected_header([("embed.weight", kind, (5, 33)), ("norm.weight", vec, (33,)),
                              ("norm.bias", vec, (33,)), ("proj.weight", kind, (7, 33)),
                              ("proj.bias", vec, (7,))], {"out.weight": "embed.weight"}, scheme,
                             vector_dtype=vector_dtype)
    assert data[:4] == b"ATPQ" and int.from_bytes(data[4:8], "little") == 1
    assert int.from_bytes(data[8:12], "little") == len(header) and data[12:12 + len(header)] == header
    assert len(data) == 12 + len(header) + TOY_PAYLOAD[(scheme, vector_dtype)]
    assert sum(ptq.section_sizes(ptq.from_bytes(data)).values()) == len(data)
    # the alias is restored on reading, the same values under both names
    sd = ptq.dequantised_state_dict(ptq.from_bytes(data))
    assert torch.equal(sd["out.weight"], sd["embed.weight"])
    clone = ptq.dequantised_copy(toy, scheme, vector_dtype=vector_dtype)
    assert clone.out.weight is clone.embed.weight


def test_the_modern_models_tied_embedding_is_one_matrix_in_the_file():
    model = seeded(ModernLM, SMALL_MODERN)
    qm = ptq.quantise_model(model, "int8")
    data = ptq.to_bytes(qm)
    header_len = int.from_bytes(data[8:12], "little")
    # matrices: embed 256x12, wq 12x12, wk 4x12, wv 4x12, wo 12x12, gate/up 20x12, down 12x20
    codes = 256 * 12 + 144 + 48 + 48 + 144 + 240 + 240 + 240
    rows = 256 + 12 + 4 + 4 + 12 + 20 + 20 + 12
    vectors = 3 * 12 * 4                                     # attn_norm, ffn_norm, final_norm
    assert len(data) == 12 + header_len + codes + 4 * rows + vectors     # float32 scale a row
    assert [n for n in qm.tensors if "embed" in n] == ["embed.weight"]


def test_the_fp32_file_is_four_bytes_a_parameter_plus_its_header():
    model = seeded(VanillaGPT, SMALL_VANILLA)
    data = ptq.to_bytes(ptq.quantise_model(model, "fp32"))
    assert len(data) == 12 + int.from_bytes(data[8:12], "little") + 4 * model.num_params()


def test_a_damaged_file_is_refused_with_a_named_error():
    data = ptq.to_bytes(ptq.quantise_model(TiedToy(), "int4"))
    with pytest.raises(BadMagicError):
        ptq.from_bytes(b"ATPX" + data[4:])
    with pytest.raises(TruncatedBlobError):
        ptq.from_bytes(data[:-1])
    with pytest.raises(TrailingBytesError):
        ptq.from_bytes(data + b"\0")
    qm = ptq.quantise_model(TiedToy(), "int4")
    qm.tensors["embed.weight"].values[0, 0] = -8                # a code the writer never emits
    with pytest.raises(CorruptSectionError):
        ptq.from_bytes(ptq.to_bytes(qm))


# -- scoring with the quantised weights -----------------------------------------------------

def as_bits(t):
    return t.detach().contiguous().view(torch.int32).numpy().view(np.uint32)


@pytest.mark.parametrize("cls,cfg", [(VanillaGPT, SMALL_VANILLA), (ModernLM, SMALL_MODERN)])
@pytest.mark.parametrize("scheme", ["int8", "int4"])
def test_the_dequantised_copy_computes_what_the_files_weights_compute_bit_for_bit(tmp_path, cls, cfg, scheme):
    model = seeded(cls, cfg)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    path = ptq.write_ptq(model, tmp_path / "m.atpq", scheme)
    from_file = ptq.load_ptq_model(path)
    clone = ptq.dequantised_copy(model, scheme)
    idx = torch.randint(0, 256, (2, 16), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert np.array_equal(as_bits(clone(idx)), as_bits(from_file(idx)))
        assert not torch.equal(clone(idx), model(idx))          # the weights did change
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())   # original untouched


def corpus(n_bytes, seed):
    """Seeded random-ish text: words drawn from a small list, a few misspelt."""
    rng = np.random.default_rng(seed)
    words = b"the a cat sat on mat and dog ran to red blue house tree while we sing".split()
    out = bytearray()
    while len(out) < n_bytes:
        w = bytearray(words[rng.integers(len(words))])
        if rng.random() < 0.1:
            w[rng.integers(len(w))] = rng.integers(97, 123)
        out += w + (b". " if rng.random() < 0.1 else b" ")
    return np.frombuffer(bytes(out[:n_bytes]), np.uint8).astype(np.int64)


def test_int8_moves_a_trained_models_validation_loss_less_than_int4_does():
    torch.manual_seed(0)
    model = VanillaGPT(VanillaConfig(d_model=32, n_layers=1, n_heads=2, d_ff=64, max_seq=32))
    cfg = TrainConfig(steps=40, batch_size=8, seq_len=32, lr=3e-3, seed=0, log_every=100)
    train(model, corpus(20_000, 1), corpus(4_000, 2), cfg)
    val = corpus(4_000, 2)
    base = evaluate_loss(model, val, 32)
    shift = {s: abs(evaluate_loss(ptq.dequantised_copy(model, s), val, 32) - base) for s in ("int8", "int4")}
    assert base < 2.5                                           # it did learn something
    assert 0 < shift["int8"] < shift["int4"]
    # the copy is an ordinary model: evaluate.score takes it unchanged
    assert score(ptq.dequantised_copy(model, "int8"), val, 32).bits_per_byte > 0
