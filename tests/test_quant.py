import pytest
import torch
import torch.nn.functional as F

from atome_core import quant


def test_ternary_values_and_scale():
    torch.manual_seed(0)
    w = torch.randn(33, 17)
    trits, alpha = quant.ternarize(w)
    assert set(trits.unique().tolist()) <= {-1.0, 0.0, 1.0}
    assert alpha == pytest.approx(w.abs().mean().item())
    eff = quant.ternary_weight(w)
    values = set(eff.unique().tolist())
    assert values <= {-alpha.item(), 0.0, alpha.item()} and len(values) == 3


def test_scale_is_clamped_for_all_zero_weights():
    trits, alpha = quant.ternarize(torch.zeros(4, 4))
    assert alpha.item() == pytest.approx(quant.SCALE_EPS) and trits.abs().sum() == 0


def test_round_half_to_even_at_the_thresholds():
    # mean |w| = 1, so w/alpha = +-0.5 rounds to 0 (half to even), +-1.5 rounds to +-2, clamps to +-1.
    w = torch.tensor([0.5, -0.5, 1.5, -1.5])
    trits, alpha = quant.ternarize(w)
    assert alpha.item() == 1.0
    assert trits.tolist() == [0.0, -0.0, 1.0, -1.0]


def test_per_row_scale():
    w = torch.tensor([[1.0, -1.0, 0.0], [10.0, 0.0, -20.0]])
    trits, alpha = quant.ternarize(w, per_row=True)
    assert alpha.squeeze().tolist() == pytest.approx([2 / 3, 10.0])
    assert trits.tolist() == [[1, -1, 0], [1, 0, -1]]


def test_straight_through_gradient_is_identity_and_forward_exact():
    w = torch.randn(8, 8, requires_grad=True)
    eff = quant.ternary_weight(w)
    trits, alpha = quant.ternarize(w)
    assert torch.equal(eff, trits * alpha)        # exactly, not up to rounding
    g = torch.randn(8, 8)
    eff.backward(g)
    assert torch.equal(w.grad, g)


def test_activation_quant_error_bound_and_levels():
    torch.manual_seed(1)
    x = torch.randn(5, 64) * 3
    xq = quant.activation_quant_int8(x)
    scale = 127.0 / x.abs().amax(dim=-1, keepdim=True)
    assert ((xq - x).abs() <= 0.5 / scale + 1e-6).all()
    levels = torch.round(xq * scale)
    assert torch.allclose(levels, xq * scale, atol=1e-4)
    assert levels.abs().max() <= 127
    x.requires_grad_(True)
    quant.activation_quant_int8(x).sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))


def test_quantisers_are_deterministic():
    w = torch.randn(64, 64)
    assert torch.equal(quant.ternary_weight(w), quant.ternary_weight(w.clone()))
    assert torch.equal(quant.activation_quant_int8(w), quant.activation_quant_int8(w.clone()))


def test_layers_forward_from_exported_trits_equals_training_forward():
    torch.manual_seed(2)
    lin = quant.TernaryLinear(16, 8)
    conv = quant.TernaryCausalConv1d(8, 5)
    emb = quant.TernaryEmbedding(10, 8)
    x = torch.randn(2, 7, 16)
    t, a = lin.trits_and_scale()
    assert t.dtype == torch.int8
    assert torch.equal(lin(x), x @ (t.float() * a).T)
    e = emb(torch.tensor([[1, 2, 3]]))
    t, a = emb.trits_and_scale()
    assert torch.equal(e, (t.float() * a)[torch.tensor([[1, 2, 3]])])
    assert set(quant.export_trits(torch.nn.Sequential(lin, conv, emb))) == {"0", "1", "2"}


def test_causal_conv_does_not_see_the_future():
    conv = quant.TernaryCausalConv1d(4, 5)
    x = torch.randn(1, 10, 4)
    y = conv(x)
    x2 = x.clone()
    x2[:, 6:] = 100.0
    y2 = conv(x2)
    assert torch.equal(y[:, :6], y2[:, :6]) and not torch.equal(y[:, 6:], y2[:, 6:])


def test_fp32_mode_and_bad_config():
    lin = quant.TernaryLinear(4, 4, quant=quant.QuantConfig(weights="fp32"))
    assert torch.equal(lin.effective_weight(), lin.weight)
    with pytest.raises(ValueError):
        quant.QuantConfig(weights="int4")
    with pytest.raises(ValueError):
        quant.QuantConfig(act_bits=4)


def test_trit_statistics_and_flip_counter():
    lin = quant.TernaryLinear(8, 4)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, -1.0, 0.0, 0.0] * 2] * 4))   # alpha = 0.5
    s = quant.trit_statistics(torch.nn.Sequential(lin))["0"]
    assert s["n"] == 32 and s["p0"] == 0.5 and s["p_plus"] == 0.25 and s["p_minus"] == 0.25
    assert s["entropy_bits"] == pytest.approx(1.5) and s["alpha"] == pytest.approx(0.5)
    counter = quant.TritFlipCounter(lin)
    assert counter.update() == {"": 0}
    with torch.no_grad():
        lin.weight[0, 2] = 5.0    # 0 -> +1 (and alpha grows, which may flip others)
    flips = counter.update()[""]
    assert flips >= 1
    assert counter.update() == {"": 0}


def test_causal_depthwise_conv_matches_conv1d_and_its_gradients():
    torch.manual_seed(3)
    x = torch.randn(3, 11, 6, dtype=torch.float64, requires_grad=True)
    w = torch.randn(6, 5, dtype=torch.float64, requires_grad=True)
    # float64 so gradcheck's finite differences are meaningful
    assert torch.autograd.gradcheck(quant.causal_depthwise_conv, (x, w))
    reference = F.conv1d(F.pad(x.transpose(1, 2), (4, 0)), w[:, None, :], groups=6).transpose(1, 2)
    assert torch.allclose(quant.causal_depthwise_conv(x, w), reference, rtol=0, atol=1e-12)
    with pytest.raises(ValueError):
        quant.causal_depthwise_conv(x, w[:5])
