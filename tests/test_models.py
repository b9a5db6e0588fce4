"""The chapter-4 models: exact sizes, causality, the routed model's recurrent path, sampling."""
import math

import pytest
import torch

from atome_core.models import modern as M
from atome_core.models import routed as R
from atome_core.models import sampling as S
from atome_core.models import vanilla as V

pytestmark = pytest.mark.usefixtures("one_thread")


TINY_ROUTED = R.RoutedConfig(vocab_size=32, d_model=16, n_layers=2, d_head=8, top_k=3, kernel_size=3)


def routed(cfg=TINY_ROUTED, seed=0):
    torch.manual_seed(seed)
    return R.RoutedLM(cfg).eval()


def all_models():
    torch.manual_seed(0)
    return {"routed": R.RoutedLM(TINY_ROUTED),
            "vanilla": V.VanillaGPT(V.VanillaConfig(vocab_size=32, d_model=16, n_layers=2, n_heads=2,
                                                    d_ff=24, max_seq=24)),
            "modern": M.ModernLM(M.ModernConfig(vocab_size=32, d_model=24, n_layers=2, n_heads=3,
                                                n_kv_heads=1, d_ff=40, max_seq=24))}


# -----------------------------------------------------------------------------
# sizes

def test_routed_parameter_counts():
    assert R.RoutedLM().num_params() == 60_800
    published = R.RoutedConfig(d_model=256, n_layers=8, d_head=64, top_k=4, kernel_size=5)
    assert R.RoutedLM(published).num_params() == 944_640
    # by hand: embed + unembed + per block (norm, conv, state, q, k, v, router) + final norm
    d, L, dh, V_ = 64, 4, 16, 256
    assert 2 * V_ * d + L * (2 * d + 5 * d + 3 * d + 2 * dh * d + d * d + 3 * d) + 2 * d == 60_800


def test_vanilla_parameter_counts():
    assert V.VanillaGPT(V.PARAM_FAIR_60K).num_params() == 60_808
    assert V.VanillaGPT(V.FLASH_FAIR_60K).num_params() == 5_968
    assert V.VanillaGPT(V.PUBLISHED_944K).num_params() == 950_608


def test_modern_parameter_count_is_param_fair():
    n = M.ModernLM().num_params()
    assert n == 60_690
    assert abs(n - 60_800) / 60_800 < 0.01
    cfg = M.ModernConfig()
    assert cfg.n_heads // cfg.n_kv_heads == 3 and cfg.rope_theta == 5000.0


def test_ablated_routed_sizes():
    full = R.RoutedLM().num_params()
    d, dh = 64, 16
    no_local = R.RoutedLM(R.RoutedConfig(pathways=("state", "sparse"))).num_params()
    assert full - no_local == 4 * (5 * d + d)          # conv weights and one router row per block
    no_sparse = R.RoutedLM(R.RoutedConfig(pathways=("local", "state"))).num_params()
    assert full - no_sparse == 4 * (2 * dh * d + d * d + d)
    with pytest.raises(ValueError):
        R.RoutedConfig(pathways=("local", "attention"))
    with pytest.raises(ValueError):
        R.RoutedConfig(pathways=())


def test_bad_configs_are_rejected():
    with pytest.raises(ValueError):
        V.VanillaConfig(d_model=10, n_heads=4)
    with pytest.raises(ValueError):
        M.ModernConfig(n_heads=4, n_kv_heads=3, d_model=48)
    with pytest.raises(ValueError):
        R.RoutedConfig(state_impl="fft")


# -----------------------------------------------------------------------------
# every model: shapes, loss, causality, generation

@pytest.mark.parametrize("name", ["routed", "vanilla", "modern"])
def test_forward_loss_and_causality(name):
    model = all_models()[name].eval()
    x = torch.randint(0, 32, (3, 20), generator=torch.Generator().manual_seed(1))
    logits = model(x)
    assert logits.shape == (3, 20, 32)
    y = torch.roll(x, -1, dims=1)
    expected = torch.nn.functional.cross_entropy(logits.reshape(-1, 32), y.reshape(-1))
    assert torch.allclose(model.loss(x, y), expected)
    # changing the future never changes the past
    x2 = x.clone()
    x2[:, 12:] = (x2[:, 12:] + 7) % 32
    with torch.no_grad():
        assert torch.equal(model(x)[:, :12], model(x2)[:, :12])
    assert not torch.equal(model(x)[:, 12:], model(x2)[:, 12:])


@pytest.mark.parametrize("name", ["routed", "vanilla", "modern"])
def test_generate_greedy_and_seeded_sampling(name):
    model = all_models()[name]
    prompt = torch.tensor([[1, 2, 3]])
    a = model.generate(prompt, 20)   # stays within max_seq 24: the greedy check below is exact
    assert a.shape == (1, 23) and torch.equal(a[:, :3], prompt)
    assert torch.equal(a, model.generate(prompt, 20))
    # greedy = argmax of the full forward at every step
    with torch.no_grad():
        assert torch.equal(model(a[:, :-1])[0, 2:].argmax(-1), a[0, 3:])
    s1 = model.generate(prompt, 30, temperature=1.0, top_k=5, generator=torch.Generator().manual_seed(3))
    s2 = model.generate(prompt, 30, temperature=1.0, top_k=5, generator=torch.Generator().manual_seed(3))
    assert torch.equal(s1, s2)
    one = model.generate(prompt, 20, temperature=0.7, top_k=1, generator=torch.Generator().manual_seed(4))
    assert torch.equal(one, a)
    with pytest.raises(ValueError, match="token ids"):
        model.generate(torch.tensor([[1, 99]]), 3)
    assert model.training  # generate leaves the mode as it found it


def test_windowed_generation_crops_to_max_seq():
    model = all_models()["vanilla"]
    out = model.generate(torch.tensor([[1, 2]]), 40)   # longer than max_seq 24
    assert out.shape == (1, 42)
    with pytest.raises(ValueError, match="max_seq"):
        model(torch.zeros(1, 25, dtype=torch.long))


# -----------------------------------------------------------------------------
# the routed model

def test_recurrences_agree_values_and_gradients():
    torch.manual_seed(0)
    u = torch.randn(3, 37, 5, dtype=torch.float64, requires_grad=True)
    a_raw = torch.tensor([-2.0, -0.3, 0.4, 1.0, 3.0], dtype=torch.float64, requires_grad=True)
    outs = {}
    for name, fn in R.SCANS.items():
        s = fn(u, torch.tanh(a_raw))
        grads = torch.autograd.grad((s * torch.linspace(-1, 1, 37, dtype=torch.float64)[:, None]).sum(), (u, a_raw))
        outs[name] = (s, *grads)
    for name in ("scan", "kernel"):
        for got, want in zip(outs[name], outs["loop"]):
            assert torch.allclose(got, want, atol=1e-10)
    assert torch.autograd.gradcheck(lambda u, a: R.scan_doubling(u, torch.tanh(a)),
                                    (u[:1, :9, :3].detach().requires_grad_(), a_raw[:3].detach().requires_grad_()))


@pytest.mark.parametrize("pathways", [R.PATHWAYS, ("local", "sparse"), ("state",)])
def test_forward_equals_recurrent_step(pathways):
    cfg = R.RoutedConfig(**{**TINY_ROUTED.__dict__, "pathways": pathways})
    model = routed(cfg)
    x = torch.randint(0, 32, (2, 40), generator=torch.Generator().manual_seed(2))
    x[:, 20:30] = 5   # repeats: exact score ties in the first layer's top-k
    with torch.no_grad():
        parallel = model(x)
    recurrent = model.forward_recurrent(x)
    assert torch.allclose(parallel, recurrent, atol=1e-5, rtol=1e-5)
    stats = []
    cache = model.init_cache(2)
    with torch.no_grad():
        for t in range(40):
            model.step(x[:, t], cache, stats)
    step_router = torch.stack(stats).view(40, cfg.n_layers, 2, -1).permute(1, 2, 0, 3)
    assert torch.allclose(step_router, model.router_weights(x), atol=1e-5)


def test_forward_equals_recurrent_with_int8_activations():
    from atome_core.quant import QuantConfig
    model = routed(R.RoutedConfig(**{**TINY_ROUTED.__dict__, "quant": QuantConfig(act_bits=8)}))
    x = torch.randint(0, 32, (2, 30), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        assert torch.allclose(model(x), model.forward_recurrent(x), atol=1e-5, rtol=1e-5)


def test_default_size_forward_equals_recurrent():
    model = routed(R.RoutedConfig())
    x = torch.randint(0, 256, (1, 70), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(model(x), model.forward_recurrent(x), atol=1e-5, rtol=1e-5)


def test_top_k_attention_keeps_exactly_k():
    torch.manual_seed(0)
    att = R.TopKAttention(8, 4, top_k=3, quant=R.QuantConfig())
    h = torch.randn(2, 10, 8)
    h[:, 5:] = h[:, 4:5]   # identical rows: tied scores
    captured = {}
    original = torch.Tensor.scatter_

    def spy(self, dim, index, src):
        out = original(self, dim, index, src)
        captured.setdefault("weights", out)    # the forward's first scatter: the weights
        return out
    torch.Tensor.scatter_ = spy
    try:
        att(h)
    finally:
        torch.Tensor.scatter_ = original
    w = captured["weights"]
    nonzero = (w > 0).sum(-1)
    assert nonzero.tolist() == [[min(3, t + 1) for t in range(10)]] * 2
    assert torch.allclose(w.sum(-1), torch.ones(2, 10))
    assert torch.all(w.triu(1) == 0)


def test_top_k_attention_backward_matches_autograd():
    torch.manual_seed(4)
    q, k = (torch.randn(2, 9, 4, dtype=torch.float64, requires_grad=True) for _ in range(2))
    v = torch.randn(2, 9, 6, dtype=torch.float64, requires_grad=True)
    attend = lambda q, k, v: R._TopKAttention.apply(q, k, v, 3, 0.5)
    assert torch.autograd.gradcheck(attend, (q, k, v))


def test_router_weights_and_entropy():
    model = routed()
    x = torch.randint(0, 32, (2, 12))
    r = model.router_weights(x)
    assert r.shape == (2, 2, 12, 3)
    assert torch.allclose(r.sum(-1), torch.ones(2, 2, 12))
    ent = model.router_entropy(x)
    assert ent.shape == (2, 2, 12)
    assert torch.all(ent >= 0) and torch.all(ent <= math.log(3) + 1e-6)


def test_ablation_switches_pathways_off_and_restores():
    model = routed()
    x = torch.randint(0, 32, (2, 12))
    with torch.no_grad():
        full = model(x)
        with model.ablate("local", "state", "sparse"):
            # no pathway left: the residual stream is the embedding itself
            bare = model.unembed(model.final_norm(model.embed(x)))
            assert torch.allclose(model(x), bare)
        with model.ablate("sparse"):
            assert not torch.allclose(model(x), full)
            cache = model.init_cache(2)
            stepped = torch.stack([model.step(x[:, t], cache) for t in range(12)], 1)
            assert torch.allclose(stepped, model(x), atol=1e-5)
        assert torch.equal(model(x), full)
    with pytest.raises(ValueError):
        with model.ablate("attention"):
            pass


def test_routed_trains_ternary_shadow_weights():
    model = routed()
    x = torch.randint(0, 32, (2, 12))
    model.loss(x, torch.roll(x, -1, 1)).backward()
    for name in ("embed.weight", "unembed.weight", "blocks.0.local.weight", "blocks.0.sparse.Wv.weight",
                 "blocks.0.router.proj.weight", "blocks.0.state.a_raw", "blocks.0.norm.weight"):
        grad = dict(model.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name
    # the forward uses trit * alpha, not the shadow weights
    w = model.unembed.weight.detach()
    alpha = w.abs().mean()
    eff = model.unembed.effective_weight().detach()
    assert set(torch.unique(torch.round(eff / alpha)).tolist()) <= {-1.0, 0.0, 1.0}


# -----------------------------------------------------------------------------
# the modern model's pieces, sampling

def test_rope_scores_depend_only_on_relative_position():
    torch.manual_seed(0)
    q, k = torch.randn(1, 1, 1, 8), torch.randn(1, 1, 1, 8)
    cos, sin = M.rope_tables(40, 8, 5000.0, "cpu")

    def score(m, n):
        return (M.apply_rope(q, cos[m:m + 1], sin[m:m + 1]) * M.apply_rope(k, cos[n:n + 1], sin[n:n + 1])).sum()
    assert torch.allclose(score(10, 3), score(30, 23), atol=1e-5)
    assert not torch.allclose(score(10, 3), score(10, 4), atol=1e-3)


def test_sample_next():
    logits = torch.tensor([[0.0, 3.0, 1.0, 2.0]])
    assert S.sample_next(logits).item() == 1
    g = torch.Generator().manual_seed(0)
    draws = {S.sample_next(logits, 1.0, top_k=2, generator=g).item() for _ in range(200)}
    assert draws == {1, 3}
    # top_p: 0.6 of the mass is reached by the best token plus the next one
    probs = torch.softmax(logits, -1)[0]
    assert probs[1] < 0.7 < probs[1] + probs[3]
    draws = {S.sample_next(logits, 1.0, top_p=0.7, generator=g).item() for _ in range(200)}
    assert draws == {1, 3}
    draws = {S.sample_next(logits, 1.0, top_p=0.1, generator=g).item() for _ in range(50)}
    assert draws == {1}
    for bad in (dict(temperature=-1.0), dict(temperature=1.0, top_k=0), dict(temperature=1.0, top_p=0.0)):
        with pytest.raises(ValueError):
            S.sample_next(logits, **bad)


def test_shadow_weights_reproduce_trits_and_scale():
    """Importing a blob: FP32 weights that ternarise to given (trits, scale) bit for bit."""
    from atome_core.formats.published import CheckpointError, shadow_from_trits
    from atome_core.quant import ternarize
    g = torch.Generator().manual_seed(0)
    for shape in [(3, 8), (16, 33), (64, 1, 5), (300, 40)]:
        for _ in range(3):
            # a scale that some FP32 tensor really has (not every float is a float32 mean)
            trits, alpha = ternarize(torch.randn(shape, generator=g) * torch.rand((), generator=g))
            w = shadow_from_trits(trits, alpha)
            got_trits, got_alpha = ternarize(w)
            assert torch.equal(got_trits, trits) and got_alpha.view(torch.int32) == alpha.view(torch.int32)
    with pytest.raises(CheckpointError, match="all-zero"):
        shadow_from_trits(torch.zeros(5), torch.tensor(0.1))
