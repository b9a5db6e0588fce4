"""The atto series: exact budgets, context-only forward, JSON round trip, float64 reference."""
import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from atome_core.chapters import atto_series
from atome_core.formats import atto_json as atto_export
from atome_core.models import atto, tiny_transformer
from atome_core.models.atto import AttoConfig, AttoModel, AttoVocab, count_params

# Configurations that exercise every path of the forward pass.
VARIANTS = [
    AttoConfig(n_embd=4, n_full=3, n_diag=2, n_hidden=6, nonlinearity="relu", hidden_bias=True,
               output_bias=True, skip=True),
    AttoConfig(n_embd=4, n_full=2, rank=2, nonlinearity="tanh"),
    AttoConfig(n_embd=2, n_full=0, n_diag=3),
    AttoConfig(n_embd=1, n_full=0, skip=True),
    AttoConfig(n_embd=3, n_full=1, n_diag=1, nonlinearity="none", output_bias=True),
    AttoConfig(n_embd=4, n_full=2, n_hidden=5, n_hidden2=3, nonlinearity="relu", hidden_bias=True, n_diag=1),
    AttoConfig(n_embd=4, n_full=2, n_hidden2=4, nonlinearity="tanh", skip=True),
]


def naive_logits(model: AttoModel, idx: torch.Tensor) -> torch.Tensor:
    """The model's definition written out position by position, in float64."""
    cfg = model.cfg
    p = {k: v.detach().double() for k, v in model.named_parameters()}
    B, T = idx.shape
    out = torch.zeros(B, T, cfg.vocab_size, dtype=torch.float64)
    for b in range(B):
        for t in range(T):
            xs = [p["wte"][idx[b, t - k]] if t - k >= 0 else torch.zeros(cfg.n_embd, dtype=torch.float64)
                  for k in range(cfg.n_full + cfg.n_diag + 1)]
            z = torch.zeros(cfg.n_embd, dtype=torch.float64)
            if cfg.n_full:
                if cfg.rank == 0:
                    h = sum(xs[k] @ p["full_maps"][k] for k in range(cfg.n_full))
                else:
                    h = sum(xs[k] @ p["lowrank_in"][k] for k in range(cfg.n_full)) @ p["lowrank_out"]
                if cfg.hidden_bias:
                    h = h + p["hidden_bias"]
                h = atto.activation(h, cfg.nonlinearity)
                if cfg.n_hidden2:
                    h = h @ p["layer2"] + (p["layer2_bias"] if cfg.hidden_bias else 0)
                    h = atto.activation(h, cfg.nonlinearity)
                z = h @ p["proj"] if "proj" in p else h
            for k in range(cfg.n_full, cfg.n_full + cfg.n_diag):
                z = z + p["diag_gains"][k - cfg.n_full] * xs[k]
            if cfg.skip:
                z = z + xs[0]
            logits = z @ p["wte"].T
            out[b, t] = logits + p["output_bias"] if cfg.output_bias else logits
    return out


def random_model(cfg: AttoConfig, seed: int = 0) -> AttoModel:
    torch.manual_seed(seed)
    model = AttoModel(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.7)
    return model


@pytest.mark.parametrize("cfg", VARIANTS, ids=lambda c: c.describe())
def test_forward_matches_the_definition_and_count(cfg):
    model = random_model(cfg)
    idx = torch.randint(0, 64, (2, 11), generator=torch.Generator().manual_seed(1))
    got = model(idx).double()
    assert got.shape == (2, 11, 64)
    torch.testing.assert_close(got, naive_logits(model, idx), rtol=1e-4, atol=1e-4)
    assert model.num_params() == count_params(cfg)
    assert set(dict(model.named_parameters())) == set(atto_export.tensor_shapes(cfg))


@pytest.mark.parametrize("cfg", VARIANTS, ids=lambda c: c.describe())
def test_each_position_sees_only_its_previous_context_characters(cfg):
    model = random_model(cfg)
    n = cfg.context
    base = torch.randint(0, 64, (1, 30), generator=torch.Generator().manual_seed(2))
    changed = base.clone()
    changed[0, 10] = (changed[0, 10] + 1) % 64
    a, b = model(base), model(changed)
    differs = (a != b).any(-1)[0]
    # position t sees t-n+1 .. t: a change at 10 may only move positions 10 .. 10+n-1
    assert not differs[:10].any() and not differs[10 + n:].any()
    assert differs[10]


def test_every_budget_has_exactly_its_parameter_count():
    for budget in atto.BUDGETS:
        shapes = atto_series.shape_candidates(budget, atto_series.search_widths(budget), (0, 1, 2, 4, 8))
        assert shapes, budget
        for cfg in list(shapes.values()):
            assert count_params(cfg) == budget
            assert AttoModel(cfg).num_params() == budget
        deepest = max(shapes.values(), key=lambda c: (c.n_full, c.n_embd))
        for v in atto_series.variant_candidates(budget, deepest):
            assert count_params(v) == budget == AttoModel(v).num_params()
    assert atto.BUDGETS == (64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)


def test_fill_budget_refuses_what_cannot_be_exact():
    t = AttoConfig(n_embd=16, n_full=4, nonlinearity="relu")
    assert atto_series.fill_budget(1000, t) is None            # below the template's own count
    assert atto_series.fill_budget(count_params(t) + 8, t) is None  # not a multiple of E
    cfg = atto_series.fill_budget(count_params(t) + 32, t)
    assert cfg.n_diag == 2 and count_params(cfg) == count_params(t) + 32


def test_bad_configs_raise_clear_errors():
    with pytest.raises(ValueError, match="nonlinearity"):
        AttoConfig(nonlinearity="gelu")
    with pytest.raises(ValueError, match="no context"):
        AttoConfig(n_full=0, n_diag=0, skip=False)
    with pytest.raises(ValueError, match="batch, time"):
        AttoModel(VARIANTS[0])(torch.zeros(5, dtype=torch.long))


def test_vocab_is_deterministic_and_folds_rare_characters():
    text = "aaaabbbc" + "d" * 2 + "xyz"
    v = AttoVocab.from_text(text, size=4)
    assert v.symbols == ["a", "b", "d"] and v.other == 3
    assert AttoVocab.from_text("ab", size=5).symbols == ["a", "b", " ", "!"]  # topped up, same size
    assert v.decode(v.encode("abdc?")) == "abd\ufffd\ufffd"
    assert v.changed_fraction("abcz") == 0.5
    assert AttoVocab.from_dict(v.to_dict()).symbols == v.symbols


def test_generate_greedy_and_seeded_sampling():
    model = random_model(VARIANTS[0])
    prompt = torch.tensor([[1, 2, 3]])
    g1 = model.generate(prompt, 20, greedy=True)
    assert torch.equal(g1, model.generate(prompt, 20, greedy=True)) and g1.shape == (1, 23)
    s1 = model.generate(prompt, 20, generator=torch.Generator().manual_seed(5))
    s2 = model.generate(prompt, 20, generator=torch.Generator().manual_seed(5))
    s3 = model.generate(prompt, 20, generator=torch.Generator().manual_seed(6))
    assert torch.equal(s1, s2) and not torch.equal(s1, s3)


def test_stream_loss_equals_one_pass_over_the_whole_stream():
    model = random_model(VARIANTS[0])
    tokens = np.random.default_rng(0).integers(0, 64, 500)
    whole = model(torch.from_numpy(tokens[:-1])[None])[0].double()
    expected = torch.nn.functional.cross_entropy(whole, torch.from_numpy(tokens[1:])).item()
    assert atto.stream_loss(model, tokens, chunk=37) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("cfg", VARIANTS, ids=lambda c: c.describe())
def test_json_round_trip_is_bit_exact(cfg, tmp_path):
    model = random_model(cfg)
    vocab = AttoVocab([chr(32 + i) for i in range(63)])
    path = atto_export.save(tmp_path / "m.json", model, vocab, "test", {"note": 1})
    loaded, vocab2 = atto_export.load(path)
    assert vocab2.symbols == vocab.symbols and loaded.cfg == cfg
    idx = torch.randint(0, 64, (3, 17), generator=torch.Generator().manual_seed(3))
    a, b = model(idx), loaded(idx)
    assert torch.equal(a.view(torch.int32), b.view(torch.int32))  # equal float32 bits


def test_json_errors_name_the_problem(tmp_path):
    model = random_model(VARIANTS[0])
    vocab = AttoVocab([chr(32 + i) for i in range(63)])
    d = atto_export.to_json_dict(model, vocab, "x")
    bad = json.loads(json.dumps(d))
    bad["schema_version"] = 99
    with pytest.raises(atto_export.AttoFormatError, match="schema_version"):
        atto_export.from_json_dict(bad)
    bad = json.loads(json.dumps(d))
    bad["tensors"]["wte"]["data"] = bad["tensors"]["wte"]["data"][:-8]
    with pytest.raises(atto_export.AttoFormatError, match="wte"):
        atto_export.from_json_dict(bad)
    bad = json.loads(json.dumps(d))
    bad["num_params"] += 1
    with pytest.raises(atto_export.AttoFormatError, match="num_params"):
        atto_export.from_json_dict(bad)
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(atto_export.AttoFormatError, match="broken.json"):
        atto_export.load(tmp_path / "broken.json")


@pytest.mark.parametrize("cfg", VARIANTS, ids=lambda c: c.describe())
def test_float64_reference_agrees_with_the_torch_model(cfg):
    model = random_model(cfg)
    vocab = AttoVocab([chr(32 + i) for i in range(63)])
    ref = atto_export.ReferenceModel(atto_export.to_json_dict(model, vocab, "x"))
    ids = [5, 9, 1, 40, 63, 2, 7]
    torch_logits = model(torch.tensor([ids]))[0, -1].detach().double().numpy()
    np.testing.assert_allclose(ref.next_logits(ids), torch_logits, rtol=1e-4, atol=1e-4)
    text, margin = ref.greedy("ab", 30)
    expected = model.generate(torch.from_numpy(vocab.encode("ab"))[None], 30, greedy=True)[0, 2:]
    if margin > 1e-3:  # float32 torch and the float64 reference agree when no near-tie
        assert text == vocab.decode(expected.numpy())


def test_transformer_counts_are_exact():
    for budget in atto.BUDGETS[1:]:
        found = [tiny_transformer.for_budget(budget, E, L, max(1, E // 4), min_block=1)
                 for E in (1, 2, 4, 8, 16) for L in (1, 2)]
        found = [c for c in found if c is not None]
        assert found, budget
        for cfg in found:
            assert tiny_transformer.TinyTransformer(cfg).num_params() == budget
    model = tiny_transformer.TinyTransformer(tiny_transformer.for_budget(4096, 8, 1, 2))
    idx = torch.randint(0, 64, (2, 10))
    assert model(idx).shape == (2, 10, 64) and model.loss(idx, idx).item() > 0


def test_cli_train_export_sample(tmp_path, capsys):
    from atome_core.cli import main
    ckpt, js = tmp_path / "m.safetensors", tmp_path / "m.json"
    cfg = '{"n_embd": 2, "n_full": 2, "n_hidden": 10, "n_diag": 2, "nonlinearity": "relu", "output_bias": true}'
    assert main(["atto", "train", "--budget", "256", "--config", cfg, "--steps", "3", "--batch-size", "4",
                 "--max-chars", "40000", "--out", str(ckpt)]) == 0
    assert "validation loss" in capsys.readouterr().out
    assert main(["atto", "export", str(ckpt), "--out", str(js)]) == 0
    model, _ = atto_export.load(js)
    assert model.num_params() == 256
    assert main(["atto", "export", str(ckpt), "--web", "--out", str(tmp_path / "web")]) == 0
    assert json.loads((tmp_path / "web" / "models.json").read_text())["models"][0]["num_params"] == 256
    capsys.readouterr()
    assert main(["atto", "sample", str(js), "--prompt", "to be", "--chars", "12", "--greedy"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("to be") and len(out.rstrip("\n")) == 17
    # a config that does not have the budget's count is refused with a clear message
    assert main(["atto", "train", "--budget", "512", "--config", cfg, "--out", str(ckpt), "--max-chars", "40000"]) == 2
    assert "not 512" in capsys.readouterr().err


def test_search_budget_returns_an_exact_winner_with_its_learning_rate(one_thread):
    tokens = np.random.default_rng(0).integers(0, 64, 5000)
    r = atto_series.search_budget(512, tokens, tokens[:600], steps=2, batch_size=4, seq_len=16, lr=1e-2)
    assert count_params(r.best) == 512 and r.lr in (1e-2, 2e-2) and set(r.lr_losses) == {1e-2, 2e-2}
    assert r.best_loss == min(list(r.shape_losses.values()) + [l for _, l in r.variant_losses]
                              + list(r.lr_losses.values()))
    assert any(c.n_hidden2 for c, _ in r.variant_losses)  # the second-layer variant was tried
    assert all(count_params(c) == 512 for c in list(r.shape_configs.values()) + [c for c, _ in r.variant_losses])


def test_finalists_add_the_best_two_layer_variant():
    one = AttoConfig(n_embd=4, n_full=2, n_hidden=8, nonlinearity="relu")
    deep_a = replace(one, n_hidden2=4)
    deep_b = replace(one, n_hidden2=3)
    r = atto_series.SearchResult(0, {}, {}, [(deep_a, 2.5), (deep_b, 2.4), (replace(one, skip=True), 2.2)], one, 2.1, 0.0)
    assert atto_series.finalists(r) == [one, deep_b]
    r.best = deep_a
    assert atto_series.finalists(r) == [deep_a]
