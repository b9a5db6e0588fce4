/* The page "Run the engine in your browser" (book/engine_demo.md): the C engine as
 * WebAssembly (atome_engine.js, atome.wasm) on the book's blobs or a reader's own.
 *
 * models.json (written by atome_core.book.engine_demo) lists the blobs beside this file,
 * with what the page states about each, and the presets an ATOME01 blob may have.
 * Tokens are bytes: the prompt's UTF-8 bytes go in one step each; every new token is
 * picked by the engine's atome_sample from the logits of the step before (argmax when
 * greedy). For tests, window.atomeEngineDemo.last holds the token ids, the CRC-32 of
 * every step's float32 logits (prompt steps included), and the decode speed.
 */
(function () {
  "use strict";

  var scriptSrc = document.currentScript ? document.currentScript.src : "";
  var BASE = scriptSrc ? scriptSrc.replace(/[^\/]*$/, "") : "./";
  var root = document.getElementById("engine-demo");
  var api = window.atomeEngineDemo = {last: null, model: null};
  var runtime = null, manifest = null, entry = null, busy = false;

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function field(label, input) {
    var l = el("label", {}, label + " ");
    l.appendChild(input);
    return l;
  }

  function setState(state, text, error) {
    root.dataset.state = state;
    root.dataset.error = error || "";
    status.textContent = text;
  }

  var pick = el("select", {id: "engine-model"});
  var file = el("input", {id: "engine-file", type: "file"});
  var prompt = el("input", {id: "engine-prompt", type: "text", size: "40", value: "Once upon a time"});
  var length = el("input", {id: "engine-length", type: "number", min: "1", max: "2000", value: "200", style: "width: 5em"});
  var mode = el("select", {id: "engine-mode"});
  ["greedy", "sample"].forEach(function (m) { mode.appendChild(el("option", {value: m}, m)); });
  var temperature = el("input", {id: "engine-temperature", type: "number", step: "0.1", min: "0.1", value: "0.8", style: "width: 4em"});
  var seed = el("input", {id: "engine-seed", type: "number", value: "0", style: "width: 6em"});
  var path = el("select", {id: "engine-path"});
  [["f32", "float32"], ["i8", "8-bit integer"]].forEach(function (p) { path.appendChild(el("option", {value: p[0]}, p[1])); });
  var go = el("button", {id: "engine-generate", type: "button"}, "Generate");
  var bench = el("button", {id: "engine-bench", type: "button"}, "Measure speed");
  var info = el("p", {id: "engine-info"});
  var status = el("p", {id: "engine-status"});
  var output = el("pre", {id: "engine-output", style: "white-space: pre-wrap"});
  var speed = el("p", {id: "engine-speed"});

  function build() {
    root.textContent = "";
    [[field("Model", pick), field("or your own blob", file)],
     [field("Prompt", prompt), field("New tokens", length)],
     [field("Decoding", mode), field("temperature", temperature), field("seed", seed), field("arithmetic", path)],
     [go, bench]].forEach(function (row) {
      var p = el("p");
      row.forEach(function (x) { p.appendChild(x); p.appendChild(document.createTextNode(" ")); });
      root.appendChild(p);
    });
    [info, status, output, speed].forEach(function (x) { root.appendChild(x); });
  }

  function describe(e, model) {
    var c = model.config;
    return e.name + ": " + (e.num_params ? e.num_params.toLocaleString("en") + " parameters, " : "")
      + model.bytes.toLocaleString("en") + " bytes (" + model.kind + "), " + c.n_layers + " layers of width "
      + c.d_model + ", vocabulary " + c.vocab + ". " + (e.trained_on ? "Trained on " + e.trained_on + ". " : "")
      + (e.about || "");
  }

  function useBytes(e, bytes) {
    try {
      api.model = runtime.load(bytes, manifest.atome01_presets);
    } catch (err) {
      api.model = null;
      info.textContent = e.name + ": " + bytes.length.toLocaleString("en") + " bytes";
      setState("error", "refused: " + err.name + " (" + err.message + ")", err.name);
      return false;
    }
    entry = e;
    info.textContent = describe(e, api.model);
    setState("ready", "ready");
    return true;
  }

  function choose(name) {
    var e = manifest.models.filter(function (m) { return m.name === name; })[0];
    path.value = e.path || "f32";
    setState("loading", "loading " + e.file + " …");
    return AtomeEngine.loadBytes(BASE, e.file).then(function (bytes) { return useBytes(e, bytes); });
  }

  function generate() {
    if (busy || !api.model) return Promise.resolve();
    busy = true;
    var session, ids = Array.from(new TextEncoder().encode(prompt.value)), crcs = [], tokens = [];
    var n = Math.max(1, parseInt(length.value, 10) || 1);
    var temp = mode.value === "sample" ? parseFloat(temperature.value) : 0;
    var decoder = new TextDecoder("utf-8"), text = "", seconds = 0;
    output.textContent = prompt.value;
    setState("running", "generating …");
    try {
      session = runtime.session(api.model, manifest.window, path.value);
      session.seed(parseInt(seed.value, 10) || 0);
      ids.forEach(function (t) { crcs.push(session.step(t)); });
    } catch (err) {
      busy = false;
      setState("error", "refused: " + err.name + " (" + err.message + ")", err.name);
      return Promise.resolve();
    }
    // Decode in slices of about 30 ms, then let the page redraw: tokens/s is engine time.
    return new Promise(function (resolve) {
      function slice() {
        var t0 = performance.now(), bytes = [];
        while (tokens.length < n && performance.now() - t0 < 30) {
          var t = session.pick(temp);
          tokens.push(t);
          bytes.push(t);
          crcs.push(session.step(t));
        }
        seconds += (performance.now() - t0) / 1000;
        text += decoder.decode(new Uint8Array(bytes.filter(function (b) { return b < 256; })), {stream: true});
        output.textContent = prompt.value + text;
        var rate = tokens.length / Math.max(seconds, 1e-6);
        speed.textContent = tokens.length + " tokens at " + Math.round(rate).toLocaleString("en")
          + " tokens/s (engine time in this page, " + path.value + " arithmetic)";
        if (tokens.length < n) { setTimeout(slice, 0); return; }
        api.last = {model: entry.name, path: path.value, prompt: ids, tokens: tokens, crcs: crcs,
                    tokensPerSecond: rate, window: manifest.window};
        busy = false;
        setState("done", "done");
        resolve();
      }
      slice();
    });
  }

  function measure() {
    if (busy || !api.model) return;
    var session = runtime.session(api.model, manifest.window, path.value), best = 0;
    for (var r = 0; r < 3; r++) best = Math.max(best, session.tokensPerSecond(manifest.window, 512, r + 1));
    api.bench = {model: entry.name, path: path.value, window: manifest.window, tokensPerSecond: best};
    speed.textContent = "decode speed with " + manifest.window + " tokens in the window: "
      + Math.round(best).toLocaleString("en") + " tokens/s (" + path.value + ", best of 3 runs of 512 tokens)";
  }

  function readerFile() {
    var f = file.files[0];
    if (!f) return;
    f.arrayBuffer().then(function (b) {
      useBytes({name: f.name, file: f.name, about: "Your own file."}, new Uint8Array(b));
    });
  }

  function start() {
    build();
    setState("loading", "loading the engine …");
    Promise.all([AtomeEngine.loadBytes(BASE, "atome.wasm").then(AtomeEngine.create),
                 AtomeEngine.loadBytes(BASE, "models.json")]).then(function (r) {
      runtime = r[0];
      manifest = JSON.parse(new TextDecoder().decode(r[1]));
      manifest.models.forEach(function (m) { pick.appendChild(el("option", {value: m.name}, m.name)); });
      pick.addEventListener("change", function () { choose(pick.value); });
      file.addEventListener("change", readerFile);
      go.addEventListener("click", generate);
      bench.addEventListener("click", measure);
      api.generate = generate;
      api.measure = measure;
      if (!manifest.models.length) {
        setState("ready", "this build has no models of its own: open a blob of yours");
        return false;
      }
      return choose(manifest.models[0].name);
    }).then(function (ok) {
      if (ok) return generate();
    }).catch(function (err) {
      setState("error", "the engine did not start: " + err.message, "START");
    });
  }

  start();
})();
