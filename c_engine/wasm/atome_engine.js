/* atome_engine.js: the C engine (atome.wasm, built by `make -C c_engine wasm`) from
 * plain JavaScript. No framework, no network beyond the files it is pointed at.
 *
 *   AtomeEngine.loadBytes(base, file)     -> Promise<Uint8Array>: fetch(base + file); where
 *                                           fetch is refused (a page opened from file://),
 *                                           the script base + file + ".js" hands the bytes over
 *                                           as base64 (AtomeEngine.fileLoaded(file, base64)).
 *   AtomeEngine.create(wasmBytes)          -> Promise<Runtime>
 *   runtime.load(blobBytes, presets)       -> Model, or throws an AtomeError whose .name is the
 *                                           loader's status name (TRUNCATED, CHECKSUM, ...)
 *   runtime.session(model, window, path)   -> Session ("f32" or "i8")
 *   session.step(token)                    -> the CRC-32 of the float32 logits after `token`
 *   session.pick(temperature)              -> the next token, by the engine's atome_sample
 *                                           (temperature <= 0: argmax) with the session's
 *                                           splitmix64 state (session.seed(n) sets it)
 *   session.tokensPerSecond(context, n)    -> decode speed as the native bench measures it
 *
 * Memory is the page's: one WebAssembly.Memory that this file lays out, after the
 * module's own stack and data (__heap_base): config, model view, state struct, blob,
 * decode arena, state, scratch, logits, tokens. Loading a model lays it out afresh (one
 * model at a time). The engine itself never allocates.
 */
(function () {
  "use strict";

  var PAGE = 65536;
  var pending = {};   // file name -> resolve, for the <script> fallback

  function AtomeError(name, what) {
    this.name = name;
    this.message = what + ": the engine says " + name;
  }
  AtomeError.prototype = Object.create(Error.prototype);

  function fromBase64(text) {
    var bin = atob(text), out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }

  function loadScript(base, file) {
    return new Promise(function (resolve, reject) {
      pending[file] = resolve;
      var s = document.createElement("script");
      s.src = base + file + ".js";
      s.onerror = function () { reject(new Error("cannot load " + file)); };
      document.head.appendChild(s);
    });
  }

  function loadBytes(base, file) {
    if (window.location.protocol === "file:") return loadScript(base, file);
    return fetch(base + file).then(function (r) {
      if (!r.ok) throw new Error(file + ": HTTP " + r.status);
      return r.arrayBuffer();
    }).then(function (b) { return new Uint8Array(b); }, function () { return loadScript(base, file); });
  }

  function fileLoaded(file, base64) {
    if (pending[file]) { pending[file](fromBase64(base64)); delete pending[file]; }
  }

  function Runtime(instance, memory) {
    this.x = instance.exports;
    this.memory = memory;
    this.heapBase = this.x.__heap_base.value;
    this.top = this.heapBase;
  }

  // Bump allocation in the page's memory, 8-byte aligned, growing it when needed.
  Runtime.prototype.alloc = function (n) {
    var p = (this.top + 7) & ~7, end = p + Math.max(n, 1);
    var have = this.memory.buffer.byteLength;
    if (end > have) this.memory.grow(Math.ceil((end - have) / PAGE));
    this.top = end;
    return p;
  };

  Runtime.prototype.u8 = function () { return new Uint8Array(this.memory.buffer); };

  Runtime.prototype.statusName = function (status) {
    var p = this.x.atome_status_name(status), u8 = this.u8(), s = "";
    while (u8[p]) s += String.fromCharCode(u8[p++]);
    return s;
  };

  Runtime.prototype.check = function (status, what) {
    if (status !== 0) throw new AtomeError(this.statusName(status), what);
  };

  var DIMS = ["vocab", "d_model", "n_layers", "d_head", "top_k", "kernel"];

  function writeConfig(rt, p, cfg) {
    var v = new Uint32Array(rt.memory.buffer, p, 6);
    DIMS.forEach(function (k, i) { v[i] = cfg[k]; });
  }

  function readConfig(rt, p) {
    var v = new Uint32Array(rt.memory.buffer, p, 6), cfg = {};
    DIMS.forEach(function (k, i) { cfg[k] = v[i]; });
    return cfg;
  }

  // ATMB blobs carry their config; an ATOME01 blob (no header) takes the preset whose
  // size is the blob's, as atome_core.formats.legacy_config does; else the engine's
  // own refusal (BAD_MAGIC, LEGACY_SIZE) is the error.
  Runtime.prototype.load = function (bytes, presets) {
    var x = this.x;
    this.top = this.heapBase;
    var cfgPtr = this.alloc(24), arenaLenPtr = this.alloc(4), view = this.alloc(x.atome_sizeof_model());
    var blob = this.alloc(bytes.length);
    this.u8().set(bytes, blob);
    var legacy = bytes.length >= 7 && String.fromCharCode.apply(null, bytes.subarray(0, 7)) === "ATOME01";
    var kind = legacy ? "ATOME01" : "ATMB";
    if (legacy) {
      var list = presets || [], chosen = list[0] || {vocab: 0, d_model: 0, n_layers: 0, d_head: 0, top_k: 0, kernel: 0};
      for (var i = 0; i < list.length; i++) {
        writeConfig(this, cfgPtr, list[i]);
        if (x.atome01_size(cfgPtr) === bytes.length) { chosen = list[i]; break; }
      }
      writeConfig(this, cfgPtr, chosen);
      this.check(x.atome_load_atome01(view, blob, bytes.length, cfgPtr), kind + " blob");
    } else {
      this.check(x.atome_check_blob(blob, bytes.length, cfgPtr, arenaLenPtr), "blob");
      var arenaLen = new Uint32Array(this.memory.buffer, arenaLenPtr, 1)[0], arena = this.alloc(arenaLen);
      this.check(x.atome_load_blob(view, blob, bytes.length, arena, arenaLen), "blob");
    }
    return {runtime: this, view: view, cfgPtr: cfgPtr, config: readConfig(this, cfgPtr), kind: kind,
            bytes: bytes.length, layoutTop: this.top};
  };

  function Session(model, window, path) {
    var rt = model.runtime, x = rt.x, code = path === "i8" ? 1 : 0;
    rt.top = model.layoutTop;   // a new session replaces the last one of this model
    this.rt = rt;
    this.vocab = model.config.vocab;
    var stateBytes = x.atome_state_bytes(model.cfgPtr, window, code);
    var scratchBytes = x.atome_scratch_bytes(model.cfgPtr, window, code);
    if (!stateBytes || !scratchBytes) rt.check(16, "window " + window + ", path " + path);
    this.s = rt.alloc(x.atome_sizeof_state());
    this.rng = rt.alloc(8);
    var state = rt.alloc(stateBytes), scratch = rt.alloc(scratchBytes);
    this.logits = rt.alloc(4 * this.vocab);
    this.maxTokens = 4096;
    this.tokens = rt.alloc(4 * this.maxTokens);
    rt.check(x.atome_state_init(this.s, model.view, window, code, state, stateBytes, scratch, scratchBytes),
             "state init");
    this.seed(0);
  }

  Session.prototype.seed = function (n) {
    new BigUint64Array(this.rt.memory.buffer, this.rng, 1)[0] = BigInt.asUintN(64, BigInt(n));
  };

  Session.prototype.reset = function () { this.rt.x.atome_reset(this.s); };

  Session.prototype.step = function (token) {
    var x = this.rt.x;
    this.rt.check(x.atome_step(this.s, token, this.logits), "step(" + token + ")");
    return x.atome_crc32(this.logits, 4 * this.vocab) >>> 0;
  };

  // atome_sample overwrites the logits: take each step's CRC before picking.
  Session.prototype.pick = function (temperature) {
    return this.rt.x.atome_sample(this.logits, this.vocab, temperature, this.rng) >>> 0;
  };

  // The native bench's protocol (atome_core.engine.bench.tokens_per_second): a window of
  // `context` keys filled by `context` tokens, then n more in one atome_run call, timed.
  Session.prototype.tokensPerSecond = function (context, n, seed) {
    var x = this.rt.x, total = Math.min(context + n, this.maxTokens), r = (seed >>> 0) || 1;
    var ids = new Uint32Array(this.rt.memory.buffer, this.tokens, total);
    for (var i = 0; i < total; i++) { r = (Math.imul(r, 1664525) + 1013904223) >>> 0; ids[i] = (32 + (r >>> 8) % 95) % this.vocab; }
    this.reset();
    this.rt.check(x.atome_run(this.s, this.tokens, context, this.logits), "prefill");
    var t0 = performance.now();
    this.rt.check(x.atome_run(this.s, this.tokens + 4 * context, total - context, this.logits), "run");
    var seconds = (performance.now() - t0) / 1000;
    return (total - context) / seconds;
  };

  Runtime.prototype.session = function (model, window, path) { return new Session(model, window, path); };

  function create(wasmBytes) {
    var memory = new WebAssembly.Memory({initial: 32});
    return WebAssembly.instantiate(wasmBytes, {env: {memory: memory}}).then(function (r) {
      return new Runtime(r.instance, memory);
    });
  }

  window.AtomeEngine = {create: create, loadBytes: loadBytes, fileLoaded: fileLoaded, AtomeError: AtomeError};
})();
