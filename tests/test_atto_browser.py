"""The in-browser atto demo, in headless Chromium with no network: for every budget the
page's greedy continuation equals the Python float64 reference's, byte for byte.

Equality is by construction, not tolerance: atto.js and atto_export.ReferenceModel do the
same IEEE-754 double operations in the same order (see atto_export's docstring). The one
function whose last bit may differ between V8 and libm is tanh; for models with tanh the
reference's smallest top-two logit gap over the continuation must be far above any
such rounding difference (MARGIN), so no argmax can flip.
"""
import functools
import json
import re
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from atome_core.chapters import atto_series
from atome_core.formats import atto_json as atto_export
from atome_core.models import atto
from atome_core.paths import build_dir
from atome_core.train import torch_threads

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--headless=new", "--host-resolver-rules=MAP * ~NOTFOUND",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-quic", "--no-first-run"]
ORIGIN = "http://atto.invalid"   # never resolved: Playwright answers every request from disk
PROMPT = "to be, or "
N_CHARS = 60
MARGIN = 1e-9

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium not installed (make sysdeps)")


def demo_snippet() -> str:
    """The demo's HTML, exactly as book/atto_demo.md has it."""
    md = (ROOT / "book" / "atto_demo.md").read_text()
    div = re.search(r'<div id="atto-demo".*?</div>', md, re.S).group(0)
    script = re.search(r'<script src="[^"]*atto\.js"></script>', md).group(0)
    return div + "\n" + script


@functools.lru_cache(maxsize=1)
def small_models() -> tuple:
    """One model per budget, shapes chosen to cover every code path of atto.js, briefly trained."""
    with torch_threads(1):  # tiny matrices: a second thread only adds contention
        return _train_small_models()


def _train_small_models() -> tuple:
    text = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n" * 40
            + "To be, or not to be, that is the question: whether 'tis nobler in the mind to suffer\n" * 40)
    vocab = atto.AttoVocab.from_text(text + "".join(map(chr, range(32, 127))))  # 63 symbols + other
    tokens = vocab.encode(text)
    twists = [{}, {"nonlinearity": "tanh"}, {"hidden_bias": True}, {"skip": True}, {"rank": 2},
              {"nonlinearity": "none"}, {"second": 0.5}, {"nonlinearity": "tanh", "skip": True},
              {"hidden_bias": True, "second": 0.5}]
    models = []
    for budget, twist in zip(atto.BUDGETS, twists):
        shapes = atto_series.shape_candidates(budget, atto_series.search_widths(budget), (2, 0))
        base = shapes.get((max(e for e, _ in shapes), 2)) or next(iter(shapes.values()))
        cfg = base
        if base.n_full and twist:
            twist = dict(twist)
            second = twist.pop("second", 0.0)
            cfg = atto_series.fit_hidden(budget, replace(base, n_hidden=0, n_diag=0, **twist), max_diag=64,
                                  second=second) or base
        assert atto.count_params(cfg) == budget
        model, _ = atto_series.train_atto(cfg, tokens, tokens[:300], steps=25, batch_size=8, seq_len=64, lr=3e-2, seed=0)
        models.append({"name": f"atto-{budget}", "model": model, "vocab": vocab, "info": {}})
    return tuple(models)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("site")
    static = root / "_static" / "atto"
    atto_export.write_web_folder(static, list(small_models()))
    shutil.copy(ROOT / "book" / "_static" / "atto" / "atto.js", static / "atto.js")
    (root / "book").mkdir()
    (root / "book" / "atto_demo.html").write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>atto</title></head><body>\n"
        + demo_snippet() + "\n</body></html>\n")
    return root


def built_site() -> Path | None:
    """The book's own exported models, when a build has produced them (any profile)."""
    for profile in ("cpu", "smoke", "paper"):
        d = build_dir() / "results" / profile / "01_atto_series" / "_static" / "atto"
        if (d / "models.json").exists():
            return d
    return None


def serve(page, root: Path, requests: list):
    def handle(route):
        url = route.request.url
        requests.append(url)
        rel = url[len(ORIGIN) + 1:].split("?")[0]
        path = root / rel
        if not path.is_file():
            route.fulfill(status=404, body="not found")
            return
        ctype = {"js": "text/javascript", "json": "application/json", "html": "text/html"}[path.suffix[1:]]
        route.fulfill(status=200, body=path.read_bytes(), headers={"content-type": ctype})
    page.route(f"{ORIGIN}/**", handle)


def run_page(page, model_name: str, prompt: str, n: int, mode: str = "greedy") -> str:
    page.wait_for_selector("#atto-demo[data-state='ready'], #atto-demo[data-state='done']", timeout=20000)
    page.select_option("#atto-budget", model_name)
    page.fill("#atto-prompt", prompt)
    page.fill("#atto-length", str(n))
    page.select_option("#atto-mode", mode)
    page.click("#atto-generate")
    page.wait_for_function(
        "() => ['done', 'error'].includes(document.getElementById('atto-demo').dataset.state)", timeout=20000)
    status = page.text_content("#atto-status")
    assert status.startswith("done"), status
    return page.text_content("#atto-continuation")


def check_every_budget(page, static_dir: Path):
    manifest = json.loads((static_dir / "models.json").read_text())
    assert [m["num_params"] for m in manifest["models"]] == list(atto.BUDGETS)
    for m in manifest["models"]:
        ref = atto_export.ReferenceModel(json.loads((static_dir / m["file"]).read_text()))
        expected, margin = ref.greedy(PROMPT, N_CHARS)
        if ref.cfg.nonlinearity == "tanh":
            assert margin > MARGIN, f"{m['name']}: a near-tie ({margin}) could let tanh's last bit decide"
        got = run_page(page, m["name"], PROMPT, N_CHARS)
        assert got.encode("utf-8") == expected.encode("utf-8"), m["name"]


@pytest.fixture(scope="module")
def browser():
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def test_greedy_continuation_equals_the_python_reference_for_every_budget(browser, site):
    page = browser.new_page()
    requests = []
    serve(page, site, requests)
    page.goto(f"{ORIGIN}/book/atto_demo.html")
    check_every_budget(page, site / "_static" / "atto")
    assert all(r.startswith(ORIGIN) for r in requests)
    assert any(r.endswith("atto-16384.json") for r in requests)   # loaded with fetch, not the fallback
    # sampling is seeded: the same seed gives the same text
    assert run_page(page, "atto-1024", "Ham", 40, "sample") == run_page(page, "atto-1024", "Ham", 40, "sample")
    page.close()


def test_page_opens_on_a_model_and_has_already_written_a_sampled_continuation(browser, site):
    page = browser.new_page()
    serve(page, site, [])
    page.goto(f"{ORIGIN}/book/atto_demo.html")
    page.wait_for_selector("#atto-demo[data-state='done']", timeout=20000)
    manifest = json.loads((site / "_static" / "atto" / "models.json").read_text())
    with_loss = [m for m in manifest["models"] if "val_loss_nats" in m]
    best = (min(with_loss, key=lambda m: m["val_loss_nats"]) if with_loss
            else max(manifest["models"], key=lambda m: m["num_params"]))
    assert page.input_value("#atto-budget") == best["name"]
    assert page.input_value("#atto-mode") == "sample"
    assert 0 < float(page.input_value("#atto-temperature")) < 1.5
    written = page.text_content("#atto-continuation")
    assert len(written) == int(page.input_value("#atto-length")) > 0
    # greedy stays one choice away
    assert "greedy" in page.eval_on_selector_all("#atto-mode option", "os => os.map(o => o.value)")
    page.close()


def test_page_opened_from_a_file_uses_the_script_fallback(browser, site):
    page = browser.new_page()
    page.goto((site / "book" / "atto_demo.html").as_uri())
    ref = atto_export.ReferenceModel(json.loads((site / "_static/atto/atto-512.json").read_text()))
    assert run_page(page, "atto-512", "the", 30) == ref.greedy("the", 30)[0]
    page.close()


def test_the_books_own_exported_models_match_in_the_browser(browser, site, tmp_path, request):
    static = built_site()
    if static is None:
        # no build here (a fresh clone, CI): the session's smoke build of the whole book
        # (tests/conftest.py), so the models tested are the ones the book itself exports
        static = request.getfixturevalue("smoke_book").results / "01_atto_series" / "_static" / "atto"
    root = tmp_path / "built"
    shutil.copytree(static, root / "_static" / "atto")
    shutil.copy(ROOT / "book" / "_static" / "atto" / "atto.js", root / "_static" / "atto" / "atto.js")
    shutil.copytree(site / "book", root / "book")
    page = browser.new_page()
    serve(page, root, [])
    page.goto(f"{ORIGIN}/book/atto_demo.html")
    check_every_budget(page, root / "_static" / "atto")
    page.close()


def test_reference_is_a_faithful_float64_model():
    # the reference is the torch model's arithmetic in float64 (a different order of sums,
    # so equal to about 1e-5, the float32 rounding of the torch model)
    models = small_models()[3:6]
    for m in models:
        ref = atto_export.ReferenceModel(atto_export.to_json_dict(m["model"], m["vocab"], m["name"]))
        ids = [int(i) for i in m["vocab"].encode("To be, or not")]
        want = m["model"](torch.tensor([ids]))[0, -1].detach().double().numpy()
        np.testing.assert_allclose(ref.next_logits(ids), want, rtol=1e-4, atol=1e-4)
