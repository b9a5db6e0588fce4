"""The one model-file contract, the one presets table, and the command line's exit codes."""

import numpy as np
import pytest
import torch

from atome_core import engine as E
from atome_core import formats as F
from atome_core import recipe
from atome_core.cli import main as atome
from atome_core.formats.model_file import load_model, read_model_file, save_model
from atome_core.models import REGISTRY, family, family_of, presets
from atome_core.models.atto import AttoConfig, AttoModel, AttoVocab
from atome_core.models.routed import RoutedConfig, RoutedLM
from atome_core.models.vanilla import VanillaConfig, VanillaGPT
from atome_core.train import TrainConfig, train


@pytest.fixture(scope="module")
def text_bytes():
    rng = np.random.default_rng(0)
    words = ["the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "far"]
    raw = (" ".join(rng.choice(words, 3000)) + "\n").encode()
    tokens = np.frombuffer(raw, dtype=np.uint8).astype(np.int64)
    cut = int(len(tokens) * 0.9)
    return tokens[:cut], tokens[cut:]


@pytest.fixture(scope="module")
def routed_top_k_2(text_bytes, tmp_path_factory):
    """A 15K ladder cell trained with top_k = 2 for two steps, written as a model file."""
    path = tmp_path_factory.mktemp("cell") / "routed15k.safetensors"
    summary, model = recipe.train_cell("routed", "15k", 4096, 0, *text_bytes, device="cpu", out=path, top_k=2)
    return path, model, summary


# -- export from the config the file stores ---------------------------------------------------

def test_a_top_k_2_ladder_cell_exports_with_no_flags_and_runs_bit_exact_in_the_c_engine(routed_top_k_2, tmp_path):
    path, model, _ = routed_top_k_2
    blob_path = tmp_path / "cell.atmb"
    assert atome(["export", str(path), "-o", str(blob_path)]) == 0
    blob = blob_path.read_bytes()
    cfg, tensors = F.read_blob(blob)
    assert cfg.top_k == 2 and cfg == F.blob_config(model.cfg)
    want = F.tensors_from_state_dict(model.state_dict(), model.cfg)   # the trained weights, ternarised
    assert want.keys() == tensors.keys() and all(np.array_equal(want[k], tensors[k]) for k in want)
    tokens = list(b"the cat sat on a mat and the dog ran far")
    c_logits = E.Engine(blob, window=16).run(tokens)
    reference = E.Reference.from_blob(blob, window=16).run(tokens)
    assert c_logits.shape == (len(tokens), 256)
    assert np.array_equal(c_logits.view(np.uint32), reference.view(np.uint32))


def test_a_flag_that_contradicts_the_stored_config_is_refused(routed_top_k_2, tmp_path, capsys):
    path, _, _ = routed_top_k_2
    assert atome(["export", str(path), "-o", str(tmp_path / "x.atmb"), "--top-k", "4"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("atome export: error: ") and "stores top_k 2" in err and "Traceback" not in err
    assert atome(["export", str(path), "-o", str(tmp_path / "x.atmb"), "--config", "15k"]) == 2   # top_k 4


def test_the_model_file_holds_family_config_tokenizer_and_the_run(routed_top_k_2):
    path, model, summary = routed_top_k_2
    mf = read_model_file(path)
    assert (mf.family, mf.config, mf.kind) == ("routed", model.cfg, "model file")
    assert mf.info["val_bpb"] == summary["val_bpb"] and mf.tokenizer.encode("ab") == [97, 98]
    loaded, _ = load_model(path)
    idx = torch.tensor([list(b"the cat")])
    assert torch.equal(loaded(idx), model(idx))


def test_generate_reads_a_model_file(routed_top_k_2, tmp_path, capsys):
    path, _, _ = routed_top_k_2
    blob = tmp_path / "cell.atmb"
    assert atome(["export", str(path), "-o", str(blob)]) == 0
    capsys.readouterr()
    assert atome(["generate", "--blob", str(path), "--prompt", "the ", "--max-new-tokens", "5", "--ids"]) == 0
    from_file = capsys.readouterr().out
    assert atome(["generate", "--blob", str(blob), "--prompt", "the ", "--max-new-tokens", "5", "--ids"]) == 0
    assert capsys.readouterr().out == from_file and len(from_file.split()) == 5


def test_a_training_checkpoint_exports_with_the_config_it_records(text_bytes, tmp_path, one_thread):
    torch.manual_seed(0)
    model = RoutedLM(RoutedConfig(d_model=8, n_layers=1, d_head=4, top_k=3, kernel_size=3))
    ckpt = tmp_path / "ckpt.safetensors"
    train(model, *text_bytes, TrainConfig(steps=1, batch_size=2, seq_len=32, checkpoint_path=str(ckpt)))
    assert read_model_file(ckpt).kind == "training checkpoint"
    assert atome(["export", str(ckpt), "-o", str(tmp_path / "c.atmb")]) == 0
    cfg, _ = F.read_blob((tmp_path / "c.atmb").read_bytes())
    assert cfg == F.RoutedBlobConfig(vocab=256, d_model=8, n_layers=1, d_head=4, top_k=3, kernel=3)


def test_only_a_routed_model_has_a_blob(tmp_path, capsys):
    path = tmp_path / "v.safetensors"
    save_model(VanillaGPT(VanillaConfig(d_model=8, n_layers=1, n_heads=2, d_ff=8, max_seq=16)), path)
    assert atome(["export", str(path), "-o", str(tmp_path / "v.atmb")]) == 2
    assert "holds a vanilla model" in capsys.readouterr().err


def test_an_atto_model_file_round_trips_with_its_character_vocabulary(tmp_path):
    torch.manual_seed(0)
    model = AttoModel(AttoConfig(n_embd=4, n_full=2))
    vocab = AttoVocab.from_text("to be or not to be, that is the question")
    save_model(model, tmp_path / "a.safetensors", tokenizer=vocab, info={"val_loss_nats": 1.5})
    loaded, loaded_vocab = load_model(tmp_path / "a.safetensors")
    idx = torch.randint(0, 64, (2, 9))
    assert torch.equal(loaded(idx), model(idx)) and loaded.cfg == model.cfg
    assert loaded_vocab.symbols == vocab.symbols
    assert read_model_file(tmp_path / "a.safetensors").info == {"val_loss_nats": 1.5}


# -- one presets table, one conversion, one registry -----------------------------------------

def test_the_blob_presets_are_the_routed_rungs_of_the_one_table():
    assert list(F.PRESETS) == list(presets.SIZES)
    for size, cfg in F.PRESETS.items():
        assert cfg == F.blob_config(presets.ladder_config("routed", size))
        assert cfg.n_params == presets.count_params(presets.build_model("routed", size))
    assert F.RoutedBlobConfig() == F.PRESETS["60k"] == F.blob_config(RoutedConfig())
    assert F.parse_config_arg("944k") == F.PRESETS["944k"]


def test_blob_config_renames_the_two_fields_and_refuses_what_atmb_cannot_hold():
    kit = {"vocab_size": 40, "d_model": 16, "n_layers": 2, "d_head": 8, "top_k": 3, "kernel_size": 4,
           "n_pathways": 3}
    assert F.blob_config(kit) == F.RoutedBlobConfig(vocab=40, d_model=16, n_layers=2, d_head=8, top_k=3, kernel=4)
    assert F.as_config(kit) == F.blob_config(kit)
    with pytest.raises(ValueError, match="3 pathways"):
        F.blob_config({**kit, "n_pathways": 2})
    with pytest.raises(ValueError, match="ablated"):
        F.blob_config(RoutedConfig(pathways=("local", "state")))
    with pytest.raises(ValueError, match="lacks"):
        F.blob_config({"vocab_size": 40})


def test_the_family_registry_names_every_saveable_model():
    assert set(presets.FAMILIES) <= set(REGISTRY)
    for name in REGISTRY:
        config_cls, model_cls = family(name)
        assert config_cls.__name__ == REGISTRY[name][1] and model_cls.__name__ == REGISTRY[name][2]
    assert family_of(presets.build_model("modern", "15k")) == "modern"
    assert family_of(torch.nn.Linear(2, 2)) is None
    with pytest.raises(ValueError, match="unknown model family"):
        family("gpt")


# -- exit codes ---------------------------------------------------------------------------------

def test_bad_input_exits_2_and_a_failed_run_1_with_one_line(tmp_path, capsys):
    missing = str(tmp_path / "missing.atmb")
    for argv in (["inspect", missing], ["export", missing, "-o", str(tmp_path / "o")],
                 ["generate", "--blob", missing, "--prompt", "x"], ["engine", "fuzz-seeds"],
                 ["export", missing, "-o", "o", "--config", "{\"vocab\": 1}"]):
        assert atome(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith(f"atome {argv[0]}: error: ") and "Traceback" not in err, err
    blob = tmp_path / "b.atmb"
    data = bytearray(F.write_blob(F.PRESETS["15k"], E.random_tensors(F.PRESETS["15k"])))
    data[200] ^= 1
    blob.write_bytes(bytes(data))
    assert atome(["inspect", str(blob)]) == 1          # inspect ran and found the blob invalid


def test_saving_the_same_model_twice_gives_the_same_bytes(tmp_path):
    import hashlib

    from safetensors.numpy import load_file as load_numpy
    torch.manual_seed(0)
    model = RoutedLM(RoutedConfig(d_model=16, n_layers=1, d_head=8, top_k=2, kernel_size=3))
    info = {f"key{i}": i for i in range(20)}
    digests = {hashlib.sha256(save_model(model, tmp_path / f"m{i}.safetensors", info=info).read_bytes()).hexdigest()
               for i in range(8)}
    assert len(digests) == 1
    loaded = load_numpy(str(tmp_path / "m0.safetensors"))
    assert set(loaded) == set(model.state_dict())
