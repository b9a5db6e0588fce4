"""The C engine as WebAssembly in the book's page (book/engine_demo.md), in headless Chromium
with no network: for every model, the page's greedy and seeded continuations and the CRC-32
of every step's float32 logits equal the native C engine's, bit for bit.

The page is served over loopback (127.0.0.1, a server that stops with the test) and opened
as files; every request that is neither is answered with a failure and recorded, and none
may happen. The speeds measured in the page and natively in the same run, the sizes, and a
screenshot go to _build/engine_demo/ (measurements.json, engine_demo.png): run
`.venv/bin/python -m pytest tests/test_engine_browser.py -q` to reproduce them.
"""
import ctypes
import functools
import http.server
import json
import re
import threading
import zlib
from contextlib import closing, contextmanager
from pathlib import Path

import numpy as np
import pytest
from test_atto_browser import CHROMIUM, CHROMIUM_ARGS

from atome_core import engine as E
from atome_core import formats as F
from atome_core.book import engine_demo, runner
from atome_core.engine import bench
from atome_core.engine.binding import Config
from atome_core.files import write_atomic
from atome_core.paths import build_dir

ROOT = Path(__file__).resolve().parents[1]
PROMPT = "Once upon a time, "
N_TOKENS = 48
SEED = 7
TEMPERATURE = 0.8
OUT = build_dir() / "engine_demo"
# chapter 1's offline flags, with loopback excepted from the resolver's "no such host"
LAUNCH_ARGS = [a if not a.startswith("--host-resolver-rules") else
               "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1" for a in CHROMIUM_ARGS]

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium not installed (make sysdeps)")


def demo_snippet() -> str:
    """The demo's HTML, exactly as book/engine_demo.md has it."""
    md = (ROOT / "book" / "engine_demo.md").read_text()
    div = re.search(r'<div id="engine-demo".*?</div>', md, re.DOTALL).group(0)
    scripts = re.findall(r'<script src="[^"]*"></script>', md)
    return div + "\n" + "\n".join(scripts)


@functools.lru_cache(maxsize=1)
def own_models() -> tuple:
    """Random routed models the test makes itself: an ATMB blob (byte vocabulary, packed
    trits, float16 vectors) and an ATOME01 blob of the 60k preset (found by its size)."""
    small = F.RoutedBlobConfig(vocab=256, d_model=24, n_layers=2, d_head=8, top_k=3, kernel=4)
    atmb = F.write_blob(small, E.random_tensors(small, seed=1), codec="dense", float_dtype="float16")
    legacy = F.write_legacy(E.random_tensors(F.PRESETS["60k"], seed=2), F.PRESETS["60k"])
    return ({"name": "random-small", "blob": atmb, "trained_on": "nothing (random weights)", "path": "f32"},
            {"name": "random-60k-atome01", "blob": legacy, "trained_on": "nothing (random weights)", "path": "i8"})


def site_with(root: Path, models) -> Path:
    static = root / "_static" / "engine"
    engine_demo.write_site(static, list(models))
    for f in (ROOT / "book" / "_static" / "engine").glob("*.js"):
        write_atomic(static / f.name, f.read_bytes())
    (root / "book").mkdir(parents=True, exist_ok=True)
    (root / "book" / "engine_demo.html").write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>engine</title></head><body>\n"
        + demo_snippet() + "\n</body></html>\n")
    return root


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    return site_with(tmp_path_factory.mktemp("site"), own_models())


@contextmanager
def loopback(root: Path):
    """A static server for `root` on 127.0.0.1, stopped on exit."""
    handler = functools.partial(QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def browser():
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    with sync_playwright() as p, closing(p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)) as b:
        yield b


def offline_page(browser, refused: list):
    """A page whose every request off this machine (not file://, not 127.0.0.1) fails and is recorded."""
    context = browser.new_context()

    def handle(route):
        url = route.request.url
        if url.startswith(("file://", "http://127.0.0.1:")):
            route.continue_()
        else:
            refused.append(url)
            route.abort()
    context.route("**/*", handle)
    return context.new_page()


# -- the native engine: what the page must reproduce ------------------------------------------

def native_run(blob: bytes, prompt: bytes, n: int, temperature: float, seed: int, path: str) -> dict:
    """Prompt bytes one step each, then n tokens picked by atome_sample: tokens and the CRC
    of every step's logits (taken before atome_sample overwrites them)."""
    eng = E.Engine(blob, window=engine_demo.WINDOW, path=path)
    crcs, logits = [], None
    for t in prompt:
        logits = eng.step(t)
        crcs.append(zlib.crc32(logits.tobytes()))
    rng, tokens = ctypes.c_uint64(seed), []
    for _ in range(n):
        buf = np.ascontiguousarray(logits, np.float32)
        t = int(eng.lib.atome_sample(buf.ctypes.data, eng.config.vocab, temperature, ctypes.byref(rng)))
        tokens.append(t)
        logits = eng.step(t)
        crcs.append(zlib.crc32(logits.tobytes()))
    return {"tokens": tokens, "crcs": crcs}


def page_run(page, name: str, mode: str, path: str) -> dict:
    page.wait_for_function("() => ['ready', 'done'].includes(document.getElementById('engine-demo').dataset.state)",
                           timeout=60000)
    page.select_option("#engine-model", name)
    page.wait_for_function("() => document.getElementById('engine-demo').dataset.state === 'ready'", timeout=60000)
    page.select_option("#engine-path", path)
    page.fill("#engine-prompt", PROMPT)
    page.fill("#engine-length", str(N_TOKENS))
    page.select_option("#engine-mode", mode)
    page.fill("#engine-temperature", str(TEMPERATURE))
    page.fill("#engine-seed", str(SEED))
    page.click("#engine-generate")
    page.wait_for_function("() => ['done', 'error'].includes(document.getElementById('engine-demo').dataset.state)",
                           timeout=120000)
    assert page.get_attribute("#engine-demo", "data-state") == "done", page.text_content("#engine-status")
    return page.evaluate("() => window.atomeEngineDemo.last")


def check_model(page, model: dict, runs=(("greedy", "f32"), ("sample", "f32"), ("greedy", "i8"))) -> dict:
    speeds = {}
    for mode, path in runs:
        got = page_run(page, model["name"], mode, path)
        want = native_run(model["blob"], PROMPT.encode(), N_TOKENS, TEMPERATURE if mode == "sample" else 0.0,
                          SEED, path)
        assert got["prompt"] == list(PROMPT.encode())
        assert got["tokens"] == want["tokens"], f"{model['name']} {mode} {path}: tokens differ"
        assert [c & 0xFFFFFFFF for c in got["crcs"]] == want["crcs"], f"{model['name']} {mode} {path}: logits differ"
        speeds[f"{mode} {path}"] = got["tokensPerSecond"]
    return speeds


def record(key: str, value) -> None:
    """Merge one measurement into _build/engine_demo/measurements.json."""
    path = OUT / "measurements.json"
    data = json.loads(path.read_text()) if path.is_file() else {}
    data[key] = value
    write_atomic(path, json.dumps(data, indent=1, sort_keys=True) + "\n")


# -- the tests --------------------------------------------------------------------------------

def test_every_steps_logits_and_the_continuation_equal_the_native_engines_over_loopback(browser, site):
    refused = []
    page = offline_page(browser, refused)
    with loopback(site) as origin:
        page.goto(f"{origin}/book/engine_demo.html")
        for model in own_models():
            record(f"page decode tokens/s, {model['name']}", check_model(page, model))
    assert refused == []
    page.close()


def test_the_page_opened_as_a_file_runs_the_engine_with_no_request_off_the_machine(browser, site):
    refused = []
    page = offline_page(browser, refused)
    page.goto((site / "book" / "engine_demo.html").as_uri())
    check_model(page, own_models()[0], runs=(("greedy", "f32"),))
    assert refused == []
    page.close()


def damaged(blob: bytes) -> dict:
    flipped = bytearray(blob)
    flipped[len(blob) // 2] ^= 0x10
    return {"truncated.bin": blob[:-5], "flipped.bin": bytes(flipped), "notes.txt": b"not a model at all\n"}


def native_status(blob: bytes) -> str:
    """The native loader's verdict on an ATMB blob, by its status name."""
    lib, cfg, arena = E.load_library(), Config(), ctypes.c_size_t(0)
    data = ctypes.create_string_buffer(blob, len(blob))
    return lib.atome_status_name(lib.atome_check_blob(data, len(blob), ctypes.byref(cfg), ctypes.byref(arena))).decode()


def test_a_truncated_or_bit_flipped_blob_shows_the_loaders_named_error(browser, site):
    page = offline_page(browser, [])
    page.goto((site / "book" / "engine_demo.html").as_uri())
    page.wait_for_selector("#engine-demo[data-state='done']", timeout=60000)
    seen = {}
    for name, data in damaged(own_models()[0]["blob"]).items():
        page.set_input_files("#engine-file", files=[{"name": name, "mimeType": "application/octet-stream",
                                                    "buffer": data}])
        page.wait_for_function("() => document.getElementById('engine-demo').dataset.state === 'error'",
                               timeout=20000)
        seen[name] = page.get_attribute("#engine-demo", "data-error")
        assert seen[name] in page.text_content("#engine-status")
        assert seen[name] == native_status(data), name
        page.select_option("#engine-model", "random-small")   # back to a good model
        page.wait_for_function("() => document.getElementById('engine-demo').dataset.state === 'ready'")
    assert seen == {"truncated.bin": "TRUNCATED", "flipped.bin": "CHECKSUM", "notes.txt": "BAD_MAGIC"}
    # the page still runs the reader's own good blob, with its name
    page.set_input_files("#engine-file", files=[{"name": "mine.bin", "mimeType": "application/octet-stream",
                                                "buffer": own_models()[0]["blob"]}])
    page.wait_for_function("() => document.getElementById('engine-demo').dataset.state === 'ready'")
    assert page.text_content("#engine-info").startswith("mine.bin:")
    page.close()


def test_the_engine_and_its_page_fit_the_size_budget(site):
    """atome.wasm at most 32 KB; the page, the engine and the scripts at most 100 KB before any
    blob, over loopback (atome.wasm) and from files (its base64 script, atome.wasm.js)."""
    static = site / "_static" / "engine"
    wasm = (static / "atome.wasm").stat().st_size
    wasm_script = (static / "atome.wasm.js").stat().st_size
    scripts = sum((static / f).stat().st_size for f in ("atome_engine.js", "engine_demo.js"))
    built = runner.html_dir(build_dir()) / "book" / "engine_demo.html"
    page = built.stat().st_size if built.is_file() else len(demo_snippet())
    page_is = "the built book's page" if built.is_file() else "the page's snippet"
    record("atome.wasm bytes", wasm)
    record(f"{page_is} + atome.wasm + scripts, bytes", page + wasm + scripts)
    record(f"{page_is} + atome.wasm.js + scripts, bytes (opened as files)", page + wasm_script + scripts)
    assert wasm <= 32 * 1024
    assert page + max(wasm, wasm_script) + scripts <= 100 * 1024


def book_models() -> list[dict]:
    """The book's own blobs: those of the first profile whose build published chapter 4's
    models, else what any build has (the published 944K when ../shared/interop is there)."""
    for profile in ("cpu", "smoke", "paper"):
        models = engine_demo.book_models(profile)
        if any(m["name"] in engine_demo.CHAPTER_4_MODELS for m in models):
            return models
    return engine_demo.book_models("smoke")


def test_the_books_own_models_match_the_native_engine_in_the_page_and_their_speed_is_recorded(
        browser, tmp_path):
    models = book_models()
    if not models:
        pytest.skip("no build has published chapter 4's models and ../shared/interop is absent")
    root = site_with(tmp_path / "built", models)
    refused = []
    page = offline_page(browser, refused)
    with loopback(root) as origin:
        page.goto(f"{origin}/book/engine_demo.html")
        speeds = {}
        for model in models:
            record(f"page decode tokens/s, {model['name']}", check_model(page, model, runs=(("greedy", model["path"]),)))
            page.click("#engine-bench")
            measured = page.evaluate("() => window.atomeEngineDemo.bench")
            native = E.Model(model["blob"])
            speeds[model["name"]] = {
                "page tokens/s": measured["tokensPerSecond"], "path": measured["path"],
                "native tokens/s": max(bench.tokens_per_second(native, engine_demo.WINDOW, 512, path=model["path"],
                                                               seed=s) for s in range(3)),
                "window": engine_demo.WINDOW}
        OUT.mkdir(parents=True, exist_ok=True)
        page.select_option("#engine-model", models[-1]["name"])
        page.click("#engine-generate")
        page.wait_for_selector("#engine-demo[data-state='done']", timeout=60000)
        page.screenshot(path=str(OUT / "engine_demo.png"), full_page=True)
    record("speed at a 128-token window (best of 3 runs of 512 tokens)", speeds)
    assert refused == []
    for name, s in speeds.items():
        assert s["page tokens/s"] > 0 and s["native tokens/s"] > 0, name
    page.close()
