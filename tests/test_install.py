"""The install steps of `make book` / `make test`: idempotent, and honest when they cannot install."""
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_second_run_installs_nothing():
    # -q: exit 0 only if the venv stamp and the vendored MathJax are up to date,
    # i.e. a second `make` would run no install recipe.
    proc = subprocess.run(["make", "-q", ".venv/.installed",
                           ".cache/vendor/node_modules/mathjax/es5/tex-chtml.js"], cwd=ROOT)
    assert proc.returncode == 0
    out = subprocess.run(["bash", "scripts/sysdeps.sh"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0
    assert "installed" not in out.stdout.replace("all system packages present", "")


def test_without_root_it_names_what_is_missing_and_which_chapters_cannot_run():
    env = {"PATH": "/usr/bin:/bin", "ATOME_SYSDEPS_EXTRA": "atome-no-such-package",
           "ATOME_SYSDEPS_AS_USER": "1"}
    out = subprocess.run(["bash", "scripts/sysdeps.sh"], cwd=ROOT, capture_output=True, text=True, env=env)
    assert out.returncode == 0                     # the build goes on; chapters skip
    assert "atome-no-such-package" in out.stdout
    assert "apt-get install --no-install-recommends atome-no-such-package" in out.stderr
    assert "cannot run" in out.stderr


def test_torch_is_the_cpu_build_unless_the_machine_has_a_gpu():
    import shutil

    import torch
    assert torch.__version__.startswith("2.13.0")
    if shutil.which("nvidia-smi"):              # make's default TORCH_VARIANT there is cuda
        assert torch.version.cuda is not None
    else:
        assert "+cpu" in torch.__version__


def test_make_picks_the_cuda_torch_only_when_asked_or_on_a_gpu_machine():
    def dry_run(*args):
        out = subprocess.run(["make", "-n", "-B", ".venv/.installed", *args], cwd=ROOT, capture_output=True,
                             text=True, env={"PATH": "/usr/bin:/bin"})
        return out.stdout
    plain = dry_run("TORCH_VARIANT=cpu")
    assert "'+cpu' in v" in plain and "TORCH_VARIANT=cpu" in plain and "--index-url" not in plain
    cuda = dry_run("TORCH_VARIANT=cuda", "TORCH_INDEX=https://download.pytorch.org/whl/cu126")
    assert "--index-url https://download.pytorch.org/whl/cu126 torch==2.13.0" in cuda
    assert "TORCH_VARIANT=cuda" in cuda


def test_corpus_fetch_fetches_nothing_when_cached():
    import sys
    out = subprocess.run([sys.executable, "-m", "atome_core.cli", "corpus", "fetch"], cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    out = subprocess.run([sys.executable, "-m", "atome_core.cli", "corpus", "fetch"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.count("(cached, sha256 verified)") == 2
    assert "fetching" not in out.stderr
