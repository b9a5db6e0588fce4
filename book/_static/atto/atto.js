/* atto in the browser: the neural n-gram models of chapter 1, run client-side.
 *
 * Plain JavaScript, no framework, no network beyond this book's own files. The models
 * are the JSON files the chapter exports (atome_core.formats.atto_json.py documents the
 * format). The arithmetic follows atome_core.formats.atto_json.ReferenceModel operation for
 * operation, in float64, so the greedy continuation equals the Python reference's:
 * keep the two in step when changing either.
 *
 * Loading: fetch("<name>.json"); where fetch is refused (a book opened from file://),
 * the same JSON wrapped as "<name>.json.js" is loaded with a <script> tag instead.
 */
(function () {
  "use strict";

  var scriptSrc = document.currentScript ? document.currentScript.src : "";
  var BASE = scriptSrc ? scriptSrc.replace(/[^\/]*$/, "") : "./";
  var pending = {};   // file name -> callback, for the <script> fallback

  // Called by the "<name>.json.js" fallback files.
  window.attoJSONP = function (file, obj) {
    if (pending[file]) { pending[file](obj); delete pending[file]; }
  };

  function loadScript(file) {
    return new Promise(function (resolve, reject) {
      pending[file] = resolve;
      var s = document.createElement("script");
      s.src = BASE + file + ".js";
      s.onerror = function () { reject(new Error("cannot load " + file)); };
      document.head.appendChild(s);
    });
  }

  function loadJSON(file) {
    if (window.location.protocol === "file:") return loadScript(file);
    return fetch(BASE + file).then(function (r) {
      if (!r.ok) throw new Error(file + ": HTTP " + r.status);
      return r.json();
    }).catch(function () { return loadScript(file); });
  }

  // ---------------------------------------------------------------- the model

  function decodeTensor(t, name) {
    if (t.dtype !== "float32" || t.encoding !== "base64-le") throw new Error(name + ": unsupported tensor encoding");
    var bin = atob(t.data);
    var n = bin.length / 4, view = new DataView(new ArrayBuffer(bin.length));
    for (var i = 0; i < bin.length; i++) view.setUint8(i, bin.charCodeAt(i));
    var out = new Float64Array(n);          // float32 -> float64 is exact
    for (var j = 0; j < n; j++) out[j] = view.getFloat32(4 * j, true);
    var want = t.shape.reduce(function (a, b) { return a * b; }, 1);
    if (want !== n) throw new Error(name + ": " + n + " values for shape " + t.shape);
    return out;
  }

  function Model(json) {
    if (json.format !== "atome-atto" || json.schema_version !== 1) throw new Error("not an atto model (schema 1)");
    var c = json.config;
    this.json = json;
    this.name = json.name;
    this.cfg = c;
    this.V = c.vocab_size; this.E = c.n_embd; this.H = c.n_hidden || c.n_embd;
    this.context = Math.max(c.n_full + c.n_diag, c.skip ? 1 : 0);
    this.symbols = Array.from(json.vocab.symbols);
    this.otherId = json.vocab.other_id;
    this.otherDisplay = json.vocab.other_display;
    this.index = {};
    for (var i = 0; i < this.symbols.length; i++) this.index[this.symbols[i]] = i;
    this.t = {};
    for (var name in json.tensors) this.t[name] = decodeTensor(json.tensors[name], name);
  }

  Model.prototype.encode = function (text) {
    var self = this;
    return Array.from(text).map(function (ch) {
      return Object.prototype.hasOwnProperty.call(self.index, ch) ? self.index[ch] : self.otherId;
    });
  };

  Model.prototype.decode = function (ids) {
    var self = this;
    return ids.map(function (i) { return i === self.otherId ? self.otherDisplay : self.symbols[i]; }).join("");
  };

  // float64 logits for the character after ids[ids.length-1]; the same order of
  // operations as ReferenceModel.next_logits.
  Model.prototype.nextLogits = function (ids) {
    var c = this.cfg, t = this.t, E = this.E, H = this.H, V = this.V;
    var wte = t.wte, last = ids.length - 1;
    function embAt(k) { return last - k >= 0 ? ids[last - k] * E : -1; }  // row offset, -1 before the text
    var z = new Float64Array(E), h, k, i, o, e, x;
    if (c.n_full > 0) {
      h = new Float64Array(H);
      if (c.rank === 0) {
        var W = t.full_maps;
        for (k = 0; k < c.n_full; k++) {
          x = embAt(k);
          if (x < 0) continue;
          for (i = 0; i < E; i++) {
            var xi = wte[x + i], base = (k * E + i) * H;
            for (o = 0; o < H; o++) h[o] += xi * W[base + o];
          }
        }
      } else {
        var R = c.rank, A = t.lowrank_in, B = t.lowrank_out, u = new Float64Array(R);
        for (k = 0; k < c.n_full; k++) {
          x = embAt(k);
          if (x < 0) continue;
          for (i = 0; i < E; i++) {
            var xr = wte[x + i], baseA = (k * E + i) * R;
            for (var j = 0; j < R; j++) u[j] += xr * A[baseA + j];
          }
        }
        for (var jj = 0; jj < R; jj++) {
          for (o = 0; o < H; o++) h[o] += u[jj] * B[jj * H + o];
        }
      }
      if (c.hidden_bias) for (o = 0; o < H; o++) h[o] += t.hidden_bias[o];
      activate(h, c.nonlinearity);
      if (c.n_hidden2 > 0) {
        var H2 = c.n_hidden2, h2 = new Float64Array(H2);
        for (o = 0; o < H; o++) for (var q = 0; q < H2; q++) h2[q] += h[o] * t.layer2[o * H2 + q];
        if (c.hidden_bias) for (q = 0; q < H2; q++) h2[q] += t.layer2_bias[q];
        activate(h2, c.nonlinearity);
        h = h2;
      }
      if (t.proj) {
        for (o = 0; o < h.length; o++) for (e = 0; e < E; e++) z[e] += h[o] * t.proj[o * E + e];
      } else {
        for (e = 0; e < E; e++) z[e] = h[e];
      }
    }
    for (k = c.n_full; k < c.n_full + c.n_diag; k++) {
      x = embAt(k);
      if (x < 0) continue;
      var g = (k - c.n_full) * E;
      for (e = 0; e < E; e++) z[e] += t.diag_gains[g + e] * wte[x + e];
    }
    if (c.skip) {
      x = embAt(0);
      for (e = 0; e < E; e++) z[e] += wte[x + e];
    }
    var logits = new Float64Array(V);
    for (var v = 0; v < V; v++) {
      var acc = 0;
      for (e = 0; e < E; e++) acc += z[e] * wte[v * E + e];
      logits[v] = acc;
    }
    if (c.output_bias) for (v = 0; v < V; v++) logits[v] += t.output_bias[v];
    return logits;
  };

  function activate(h, name) {  // in place; relu as `h > 0 ? h : 0`, as the reference
    var o;
    if (name === "relu") for (o = 0; o < h.length; o++) h[o] = h[o] > 0 ? h[o] : 0;
    else if (name === "tanh") for (o = 0; o < h.length; o++) h[o] = Math.tanh(h[o]);
  }

  function argmax(a) {  // the first maximum, as numpy
    var best = 0;
    for (var i = 1; i < a.length; i++) if (a[i] > a[best]) best = i;
    return best;
  }

  function mulberry32(seed) {  // a small seeded PRNG: the same seed, the same sample
    var s = seed >>> 0;
    return function () {
      s = (s + 0x6D2B79F5) >>> 0;
      var r = Math.imul(s ^ (s >>> 15), 1 | s);
      r = (r + Math.imul(r ^ (r >>> 7), 61 | r)) ^ r;
      return ((r ^ (r >>> 14)) >>> 0) / 4294967296;
    };
  }

  function sample(logits, temperature, rand) {
    var m = -Infinity, i;
    for (i = 0; i < logits.length; i++) m = Math.max(m, logits[i]);
    var p = new Float64Array(logits.length), sum = 0;
    for (i = 0; i < logits.length; i++) { p[i] = Math.exp((logits[i] - m) / temperature); sum += p[i]; }
    var u = rand() * sum;
    for (i = 0; i < p.length; i++) { u -= p[i]; if (u < 0) return i; }
    return p.length - 1;
  }

  Model.prototype.generate = function (prompt, n, opts) {
    var ids = this.encode(prompt), out = [];
    if (ids.length === 0) throw new Error("type a prompt first");
    var rand = opts.greedy ? null : mulberry32(opts.seed);
    for (var s = 0; s < n; s++) {
      var logits = this.nextLogits(ids);
      var next = opts.greedy ? argmax(logits) : sample(logits, opts.temperature, rand);
      ids.push(next); out.push(next);
    }
    return this.decode(out);
  };

  window.AttoModel = Model;  // for the console and the tests

  // ---------------------------------------------------------------- the page

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    for (var a in attrs || {}) node.setAttribute(a, attrs[a]);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function fmtBytes(n) { return n >= 1000 ? (n / 1000).toFixed(1) + " KB" : n + " B"; }  // KB = 1,000 bytes, as the chapter

  function buildUI(root, manifest) {
    var models = {};
    var form = el("div", { "class": "atto-controls" });
    var select = el("select", { id: "atto-budget", "aria-label": "parameter budget" });
    manifest.models.forEach(function (m) {
      select.appendChild(el("option", { value: m.name }, m.name + " (" + m.num_params.toLocaleString("en") + " parameters)"));
    });
    var prompt = el("input", { id: "atto-prompt", type: "text", value: "ROMEO:", size: "30", "aria-label": "prompt" });
    var length = el("input", { id: "atto-length", type: "number", value: "200", min: "1", max: "2000", "aria-label": "characters to generate" });
    select.value = defaultModel(manifest).name;
    // Sampling by default: greedy decoding soon loops on models this small.
    var mode = el("select", { id: "atto-mode", "aria-label": "decoding" });
    mode.appendChild(el("option", { value: "sample" }, "sample (seeded)"));
    mode.appendChild(el("option", { value: "greedy" }, "greedy"));
    mode.value = "sample";
    var temp = el("input", { id: "atto-temperature", type: "number", value: "0.8", step: "0.1", min: "0.05", "aria-label": "temperature" });
    var seed = el("input", { id: "atto-seed", type: "number", value: "0", "aria-label": "seed" });
    var button = el("button", { id: "atto-generate", type: "button" }, "Generate");
    [["model ", select], [" prompt ", prompt], [" characters ", length], [" decoding ", mode],
     [" temperature ", temp], [" seed ", seed]].forEach(function (pair) {
      var label = el("label", {}, pair[0]);
      label.appendChild(pair[1]);
      form.appendChild(label);
    });
    form.appendChild(button);
    var info = el("p", { id: "atto-info" });
    var output = el("pre", { id: "atto-output", style: "white-space: pre-wrap" });
    var promptSpan = el("span", { id: "atto-shown-prompt", style: "font-weight: bold" });
    var cont = el("span", { id: "atto-continuation" });
    output.appendChild(promptSpan);
    output.appendChild(cont);
    var status = el("p", { id: "atto-status" }, "ready");
    root.textContent = "";
    [form, info, output, status].forEach(function (n) { root.appendChild(n); });

    function entry(name) {
      return manifest.models.filter(function (m) { return m.name === name; })[0];
    }
    function getModel(name) {
      if (models[name]) return Promise.resolve(models[name]);
      return loadJSON(entry(name).file).then(function (json) { return (models[name] = new Model(json)); });
    }
    function showInfo() {
      var m = entry(select.value);
      info.textContent = m.name + ": " + m.num_params.toLocaleString("en") + " parameters; " + m.describe +
        "; JSON " + fmtBytes(m.bytes) +
        (m.val_loss_nats !== undefined ? "; validation loss " + m.val_loss_nats.toFixed(3) + " nats/char" : "");
    }
    select.addEventListener("change", showInfo);
    showInfo();
    function run() {
      status.textContent = "running";
      root.setAttribute("data-state", "running");
      getModel(select.value).then(function (model) {
        var n = Math.max(1, Math.min(2000, parseInt(length.value, 10) || 1));
        var text = model.generate(prompt.value, n, {
          greedy: mode.value === "greedy", temperature: parseFloat(temp.value) || 1.0,
          seed: parseInt(seed.value, 10) || 0
        });
        promptSpan.textContent = prompt.value;
        cont.textContent = text;
        status.textContent = "done: " + model.name + ", " + n + " characters, " + mode.value;
        root.setAttribute("data-state", "done");
      }).catch(function (err) {
        status.textContent = "error: " + err.message;
        root.setAttribute("data-state", "error");
      });
    }
    button.addEventListener("click", run);
    root.setAttribute("data-state", "ready");
    run();  // the page opens with a continuation already written by the default model
  }

  // The model the page opens on: the lowest validation loss of this build, else the largest.
  function defaultModel(manifest) {
    var withLoss = manifest.models.filter(function (m) { return typeof m.val_loss_nats === "number"; });
    var pool = withLoss.length ? withLoss : manifest.models;
    return pool.reduce(function (best, m) {
      if (withLoss.length) return m.val_loss_nats < best.val_loss_nats ? m : best;
      return m.num_params > best.num_params ? m : best;
    });
  }

  function start() {
    var root = document.getElementById("atto-demo");
    if (!root) return;
    loadJSON("models.json").then(function (manifest) { buildUI(root, manifest); }).catch(function (err) {
      root.textContent = "The atto models are not in this build (" + err.message + "): build the book with " +
        "`atome book`, which runs chapter 1 and copies its JSON files here.";
      root.setAttribute("data-state", "error");
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
