"""What a user installs: the core (`pip install .`) runs the command line without the book's
tools; `make lab` serves JupyterLab on loopback; the version has one home."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BOOK_ONLY = ("jupyterlab", "jupyter_book", "papermill", "nbmake", "pytest", "matplotlib")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_core_dependencies_hold_none_of_the_books_tools():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = " ".join(project["dependencies"]).lower()
    for name in ("jupyter", "papermill", "nbmake", "pytest", "matplotlib", "lm-eval", "dask"):
        assert name not in core, name
    extras = project["optional-dependencies"]
    assert {"book", "test", "eval", "cluster"} <= set(extras)
    assert "'.[book,test,eval,cluster]'" in (ROOT / "Makefile").read_text()


def test_a_core_install_in_a_fresh_venv_exports_and_generates(tmp_path, text_file):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-qq"]
    subprocess.run(pip + ["torch==2.13.0"], check=True, timeout=600)   # the CPU wheel, as the Makefile does
    source = tmp_path / "source"      # a copy: pip builds in the tree it is given (build/)
    shutil.copytree(ROOT / "atome_core", source / "atome_core", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "LICENSE", "data/corpora.yml", *(f"c_engine/{f}" for f in
                 ("atome.c", "atome.h", "atome_load.c", "Makefile"))):
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, source / name)
    subprocess.run(pip + [str(source)], check=True, timeout=600)
    shutil.rmtree(source)             # the install must not lean on the tree it came from
    python = str(venv / "bin" / "python")
    missing = subprocess.run([python, "-c", ("import importlib.util as u; "
                                             f"print([m for m in {BOOK_ONLY!r} if u.find_spec(m)])")],
                             capture_output=True, text=True, check=True).stdout.strip()
    assert missing == "[]"
    atome = str(venv / "bin" / "atome")
    env = {**os.environ, "ATOME_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("ATOME_ENGINE_LIB", None)
    run = subprocess.run([atome, "train", "--model", "routed", "--size", "15k", "--tokens", "2000", "--corpus",
                          "file", "--corpus-path", str(text_file), "--out", str(tmp_path / "m.safetensors")],
                         capture_output=True, text=True, check=False, cwd=tmp_path, env=env)
    assert run.returncode == 0, run.stderr
    run = subprocess.run([atome, "export", str(tmp_path / "m.safetensors"), "-o", str(tmp_path / "m.atmb")],
                         capture_output=True, text=True, check=False, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    # the engine's sources came with the install; it builds them on first use, into the cache
    run = subprocess.run([atome, "generate", "--blob", str(tmp_path / "m.atmb"), "--prompt", "the ",
                          "--max-new-tokens", "8"], capture_output=True, text=True, check=False, cwd=tmp_path, env=env)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("the ")
    assert (tmp_path / "cache" / "c_engine-build" / "libatome.so").is_file()


def test_make_lab_answers_on_loopback_then_stops(tmp_path):
    port = free_port()
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path), "JUPYTER_CONFIG_DIR": str(tmp_path / "config")}
    proc = subprocess.Popen(["make", "-s", "lab", f"LAB_PORT={port}"], cwd=ROOT, env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline, status = time.time() + 240, None
        while time.time() < deadline and status is None:
            try:
                status = urllib.request.urlopen(f"http://127.0.0.1:{port}/api", timeout=5).status
            except OSError:
                time.sleep(1)
        assert status == 200
        listening = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True,
                                   check=True).stdout
        assert listening.strip() and all("127.0.0.1:" in line for line in listening.splitlines())
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0       # it stopped


def test_the_package_version_has_one_home():
    import importlib.metadata

    import atome_core
    assert importlib.metadata.version("atome-core") == atome_core.__version__
    assert f"## [{atome_core.__version__}]" in (ROOT / "CHANGELOG.md").read_text()
    assert f"version: {atome_core.__version__}" in (ROOT / "CITATION.cff").read_text()
