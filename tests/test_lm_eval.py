"""The lm-evaluation-harness adapter, end to end on a tiny model and our local tasks."""
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from atome_core.data.tokenizer import BPETokenizer, ByteTokenizer
from atome_core.formats.model_file import load_model, save_model
from atome_core.models.modern import ModernConfig, ModernLM
from atome_core.models.routed import RoutedConfig, RoutedLM
from atome_core.models.vanilla import VanillaConfig, VanillaGPT
from atome_core.quant import QuantConfig

lm_eval = pytest.importorskip("lm_eval", reason="the optional extra atome-core[eval] is not installed "
                                                "(make test installs it)")


class Req:
    def __init__(self, *args):
        self.args = args


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    torch.manual_seed(0)
    model = ModernLM(ModernConfig(d_model=24, n_layers=1, n_heads=3, n_kv_heads=1, d_ff=32, max_seq=64))
    path = tmp_path_factory.mktemp("m") / "tiny.safetensors"
    save_model(model, path)
    return model, path


@pytest.mark.parametrize("model", [
    RoutedLM(RoutedConfig(d_model=16, n_layers=1, d_head=8, quant=QuantConfig(act_bits=8))),
    VanillaGPT(VanillaConfig(d_model=8, n_layers=1, n_heads=2, d_ff=8, max_seq=16)),
    ModernLM(ModernConfig(d_model=12, n_layers=1, n_heads=3, n_kv_heads=1, d_ff=8)),
])
def test_model_files_round_trip(model, tmp_path):
    tok = BPETokenizer.train(["to be or not to be " * 50], vocab_size=270)
    save_model(model, tmp_path / "m.safetensors", tokenizer=tok)
    loaded, loaded_tok = load_model(tmp_path / "m.safetensors")
    idx = torch.randint(0, 256, (2, 8))
    assert torch.equal(model.eval()(idx), loaded(idx))
    assert loaded.cfg == model.cfg and loaded_tok.to_json() == tok.to_json()


def test_bad_model_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "missing.safetensors")
    (tmp_path / "junk").write_bytes(b"not safetensors")
    with pytest.raises(ValueError, match="not a safetensors"):
        load_model(tmp_path / "junk")


def test_loglikelihood_equals_a_direct_computation(tiny):
    from atome_core.harness.adapter import AtomeLM
    model, path = tiny
    lm = AtomeLM(checkpoint=str(path))
    (ll, greedy), = lm.loglikelihood([Req("ROMEO:\nBut soft", " what light")])
    tokens = list(b"\nROMEO:\nBut soft what light")      # newline prefix token for byte models
    logp = F.log_softmax(model(torch.tensor([tokens[:-1]])), dim=-1)[0]
    n = len(" what light")
    expected = sum(logp[len(tokens) - 1 - n + i, tokens[len(tokens) - n + i]].item() for i in range(n))
    assert ll == pytest.approx(expected, abs=1e-4)
    rolled, = lm.loglikelihood_rolling([Req("ROMEO:\nBut soft what light")])
    full = sum(logp[i, tokens[i + 1]].item() for i in range(len(tokens) - 1))
    assert rolled == pytest.approx(full, abs=1e-4)


def test_generate_until_is_greedy_and_stops(tiny):
    from atome_core.harness.adapter import AtomeLM
    model, path = tiny
    lm = AtomeLM(checkpoint=str(path))
    out, = lm.generate_until([Req("KING:\n", {"until": ["zzz"], "max_gen_toks": 12})])
    ref = model.generate(torch.tensor([list(b"\nKING:\n")]), 12)[0, 7:].tolist()
    assert out == ByteTokenizer().decode(ref)
    if out:
        stop = out[len(out) // 2]
        cut, = lm.generate_until([Req("KING:\n", {"until": [stop], "max_gen_toks": 12})])
        assert cut == out.split(stop)[0]


def test_local_tasks_end_to_end(tiny, tmp_path):
    from atome_core.harness import tasks as lm_eval_tasks
    model, _ = tiny
    folder = lm_eval_tasks.write_local_tasks(tmp_path / "tasks", n=6)
    scores = lm_eval_tasks.evaluate(model, ByteTokenizer(), folder)
    assert set(scores) == set(lm_eval_tasks.TASK_NAMES)
    assert 0.0 <= scores["shakespeare_nextline"]["acc"] <= 1.0
    # an untrained model is (nearly) uniform over 256 bytes: 8 bits per byte
    assert 7.5 < scores["shakespeare_bpb"]["bits_per_byte"] < 8.5


def test_lm_eval_command_line_with_the_atome_model(tiny, tmp_path):
    from atome_core.harness import tasks as lm_eval_tasks
    _, path = tiny
    folder = lm_eval_tasks.write_local_tasks(tmp_path / "tasks", n=3)
    proc = subprocess.run([sys.executable, "-m", "atome_core.harness.adapter", "--model", "atome",
                           "--model_args", f"checkpoint={path}", "--tasks", "shakespeare_nextline",
                           "--include_path", str(folder)],
                          capture_output=True, text=True, timeout=600, env={"HF_DATASETS_OFFLINE": "1",
                                                                            "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "shakespeare_nextline" in proc.stdout and "acc" in proc.stdout
