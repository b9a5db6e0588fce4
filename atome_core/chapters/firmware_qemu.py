"""Chapter 7's measurements: the firmware's self-tests, parity of every core and path with
the NumPy reference, instructions per token against context, where a decode step's
instructions go, flash and RAM, the engine's code by purpose and the published 944K model
on the Cortex-M7, each beside the kit's reported figure or the target we set.

The `run_*` functions run QEMU; the `*_table` functions return (header, rows) for
atome_core.book.report.table; the `*_findings` functions return the numbers the prose
quotes, formatted, with NOT_MEASURED where this profile's setup does not measure them
(a smaller model, a shorter context, a core left out).
"""
import numpy as np

from .. import firmware as FW
from ..firmware.sizes import group_sizes

# The kit's figures, as its documentation reports them (not runs here).
KIT = {"tokens_60k": (48, 48), "tokens_944k": (16, 16),
       "engine_text_Os": {"m0": 3130, "m3": 3262, "m4f": 3146, "m7": 3138},
       "state_60k_ctx32": 53824, "docs_part_ram_60k": 16 * 1024, "instructions_per_position_60k": 2.6e6}

# The targets we set for the integer path of the 60K model at a 64-token context.
TARGETS = {"instructions_m3_i8_ctx64": 400_000, "engine_text_m3_Os": 2600, "ram_60k_ctx64": 32 * 1024}
TARGET_NAMES = {"instructions_m3_i8_ctx64": ("instructions per token on the Cortex-M3", " instructions"),
                "engine_text_m3_Os": ("the engine's .text on the Cortex-M3", " B"),
                "ram_60k_ctx64": ("the engine's RAM", " B")}

NOT_MEASURED = "n/a"
NOT_MEASURED_NOTE = "(n/a: not measured in this profile, which runs a smaller model, a shorter context or fewer cores.)"
TARGET_CONTEXT = 64


def label(core: str) -> str:
    return FW.CORES[core].label


def printable(ids) -> str:
    """Byte tokens as text, newlines shown as ⏎."""
    return bytes(ids).decode("utf-8", errors="replace").replace("\n", "⏎")


def literal(text: str) -> str:
    """`text` as a Markdown code span: shown as typed, never read as markup (a fence of
    more backticks than any run inside it; padded where it starts or ends with one)."""
    longest, run = 0, 0
    for ch in text:
        run = run + 1 if ch == "`" else 0
        longest = max(longest, run)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text.strip() else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def is_60k(cfg) -> bool:
    from ..formats import PRESETS
    return cfg == PRESETS["60k"]


def model_name(cfg) -> str:
    return "60K" if is_60k(cfg) else f"{cfg.n_params:,}-parameter"


def model_shape(cfg) -> str:
    return (f"d_model {cfg.d_model}, n_layers {cfg.n_layers}, d_head {cfg.d_head}, top_k {cfg.top_k}, "
            f"kernel {cfg.kernel}")


def with_note(findings: dict, note_key: str) -> dict:
    """`findings` and, under `note_key`, NOT_MEASURED_NOTE where any of them reads
    NOT_MEASURED, else an empty string."""
    return {**findings, note_key: NOT_MEASURED_NOTE if NOT_MEASURED in findings.values() else ""}


def _n(x) -> str:
    return NOT_MEASURED if x is None else f"{x:,}"


def _verdict(value, target, unit="") -> str:
    if value is None:
        return NOT_MEASURED
    if value <= target:
        return f"within the target we set (at most {target:,}{unit})"
    return f"over the target we set (at most {target:,}{unit}) by {value - target:,}{unit}: missed"


# -- the boards' self-tests ---------------------------------------------------------------------------------

def run_selftests(cores, check_bytes: bytes) -> dict:
    """{core: calibration ticks, instructions per tick, whether the CRC-32 the core computed
    of `check_bytes` in its flash is zlib's}."""
    import zlib
    out = {}
    for core in cores:
        st = FW.selftest(core, check_bytes, args="crc")
        cal = FW.calibration(core)
        crc_equal = st["outcome"] == "ok" and st.get("crc32") == zlib.crc32(check_bytes)
        out[core] = {"calibration_ticks": cal["ticks"], "instructions_per_tick": cal["instructions_per_tick"],
                     "crc_equal": bool(crc_equal), "crc_address": st.get("crc_address")}
    return out


def selftest_table(selftests: dict) -> tuple[list, list]:
    header = ["core", "QEMU board", "FPU", "ticks for 2,000,000 instructions", "instructions per tick",
              "CRC-32 of 4 KiB in flash = zlib's"]
    rows = [[label(core), FW.CORES[core].board, FW.CORES[core].fpu or "none (soft float)", s["calibration_ticks"],
             f"{s['instructions_per_tick']:.4f}", s["crc_equal"]] for core, s in selftests.items()]
    return header, rows


# -- parity -------------------------------------------------------------------------------------------------

def run_parity(cores, paths, blob: bytes, prompt_ids, new_tokens: int, window: int, timeout: float) -> dict:
    """{(core, path): FW.check_parity's row}, every core on every path."""
    return {(core, path): FW.check_parity(core, blob, prompt_ids, new_tokens, path=path, window=window,
                                          timeout=timeout)
            for core in cores for path in paths}


def parity_table(parity: dict) -> tuple[list, list]:
    header = ["core", "path", "steps", "logits compared", "max ULP", "unequal logits", "greedy tokens equal",
              "steps failing the on-core CRC check", "bit-exact"]
    rows = [[label(core), path, r["steps"], r["logits_compared"], r["max_ulp"], r["unequal_logits"],
             f"{r['tokens_equal']}/{r['tokens']}", r["firmware_check"], r["bit_exact"]]
            for (core, path), r in parity.items()]
    return header, rows


def parity_summary(parity: dict) -> dict:
    """Runs, bit-exact runs, logits compared and the largest difference in ULP over all runs."""
    return {"runs": len(parity), "bit_exact_runs": sum(bool(r["bit_exact"]) for r in parity.values()),
            "logits": sum(r["logits_compared"] for r in parity.values()),
            "max_ulp": max(r["max_ulp"] for r in parity.values())}


def parity_metrics(parity: dict) -> dict:
    return {f"{c}/{p}": {k: v for k, v in r.items() if k not in ("run", "image")} for (c, p), r in parity.items()}


def continuation_table(parity: dict, prompt_ids) -> tuple[list, list]:
    """What each core wrote: the prompt and its own greedy continuation, as literal text."""
    header = ["core", "path", "prompt", "generated"]
    rows = [[label(core), path, literal(printable(prompt_ids)), literal(printable(r["generated"]))]
            for (core, path), r in parity.items()]
    return header, rows


# -- what the integer path costs ---------------------------------------------------------------------------

def path_loss_findings(path_loss: dict) -> dict:
    """The two paths' losses in nats and bits per byte, and what the integer path costs."""
    f32, i8 = path_loss["f32"], path_loss["i8"]
    gap = i8 - f32
    return {"f32": f32, "i8": i8, "f32_bits": f32 / np.log(2), "i8_bits": i8 / np.log(2), "gap": gap,
            "gap_percent": 100 * gap / f32}


# -- instructions per token ---------------------------------------------------------------------------------

def run_sweep(cores, paths, blob: bytes, ids, window: int, per_tick: int, timeout: float) -> dict:
    """{(core, path): instructions of every step of one run over `ids`, CRC-equal steps,
    instructions of loading the blob}."""
    sweep = {}
    for core in cores:
        for path in paths:
            image = FW.build_image(core, blob)
            run = FW.run_engine(image, ids, 1, path=path, window=window, full_logits=False, timeout=timeout)
            check = FW.compare(run, FW.reference_steps(blob, ids, 1, path, window))
            sweep[(core, path)] = {"instructions": np.array([s.ticks for s in run.steps]) * per_tick,
                                   "crc_equal_steps": check["crc_equal_steps"], "steps": check["steps"],
                                   "load_instructions": run.load["ticks"] * per_tick}
    return sweep


def sweep_contexts(context_max: int) -> list:
    return sorted({1, min(TARGET_CONTEXT, context_max), context_max})


def sweep_table(sweep: dict, context_max: int) -> tuple[list, list]:
    shown = sweep_contexts(context_max)
    header = ["core", "path"] + [f"at context {c}" for c in shown] + ["CRC-equal steps"]
    rows = [[label(core), path] + [int(s["instructions"][c - 1]) for c in shown]
            + [f"{s['crc_equal_steps']}/{s['steps']}"] for (core, path), s in sweep.items()]
    return header, rows


def sweep_metrics(sweep: dict, context_max: int) -> dict:
    ctx = list(range(1, context_max + 1))
    return {f"{c}/{p}": {"context": ctx, "instructions": s["instructions"].tolist(),
                         "crc_equal_steps": s["crc_equal_steps"]} for (c, p), s in sweep.items()}


def plot_sweep(sweep: dict, context_max: int, window: int, title: str):
    """Instructions per token against context, each core and path, with the kit's prefix
    recompute and the target we set."""
    import matplotlib.pyplot as plt
    ctx = np.arange(1, context_max + 1)
    cores = list(dict.fromkeys(core for core, _ in sweep))
    fig, ax = plt.subplots(figsize=(8, 4))
    for i, core in enumerate(cores):
        for (c, path), s in sweep.items():
            if c == core:
                ax.plot(ctx, s["instructions"], color=f"C{i}", ls="-" if path == "i8" else ":",
                        label=f"{label(core)} {path}")
    ax.plot(ctx, KIT["instructions_per_position_60k"] * ctx, color="k", ls="--", lw=1,
            label="kit: prefix recompute, 2.6 M per position (reported)")
    ax.axhline(TARGETS["instructions_m3_i8_ctx64"], color="C3", lw=0.8, ls="-.",
               label="target we set for the M3's i8 path at context 64")
    ax.set_yscale("log")
    ax.axvline(window, color="gray", lw=0.8)
    ax.text(window, ax.get_ylim()[1], f" window {window}", fontsize=8, va="top")
    ax.set_xlabel("context (tokens attended to, incl. the new one)")
    ax.set_ylabel("guest instructions per generated token")
    ax.set_title(title, fontsize=9, loc="left")
    ax.legend(fontsize=7, ncol=2, loc="center right")
    fig.tight_layout()
    return fig


def sweep_findings(sweep: dict, context_max: int, model_is_60k: bool) -> dict:
    """The numbers the prose quotes about the curves, NOT_MEASURED where this profile does
    not run the setup they describe (the 60K model to context 64; an FPU core)."""
    c = TARGET_CONTEXT - 1
    out = dict.fromkeys(("m3_i8_ctx64", "m3_i8_ctx64_verdict", "m3_f32_over_i8_ctx64", "m3_f32_ctx1",
                         "m3_f32_vs_kit_position", "kit_ctx64_millions", "m3_f32_ctx64_millions",
                         "kit_over_m3_f32_ctx64", "fpu_core", "fpu_i8", "fpu_f32", "fpu_i8_over_f32",
                         "m4f_m7_curves"), NOT_MEASURED)
    if ("m3", "i8") in sweep and context_max >= TARGET_CONTEXT and model_is_60k:
        m3_64 = int(sweep[("m3", "i8")]["instructions"][c])
        out["m3_i8_ctx64"] = f"{m3_64:,}"
        out["m3_i8_ctx64_verdict"] = _verdict(m3_64, TARGETS["instructions_m3_i8_ctx64"])
        if ("m3", "f32") in sweep:
            f32 = sweep[("m3", "f32")]["instructions"]
            kit_position = KIT["instructions_per_position_60k"]
            out["m3_f32_over_i8_ctx64"] = f"{f32[c] / m3_64:.0f}"
            out["m3_f32_ctx1"] = f"{int(f32[0]):,}"
            out["m3_f32_vs_kit_position"] = ("more than the kit's: per position, we lose" if f32[0] > kit_position
                                             else "fewer than the kit's")
            kit_64 = kit_position * TARGET_CONTEXT
            out["kit_ctx64_millions"] = f"{kit_64 / 1e6:.0f}"
            out["m3_f32_ctx64_millions"] = f"{int(f32[c]) / 1e6:.1f}"
            out["kit_over_m3_f32_ctx64"] = f"{kit_64 / int(f32[c]):.0f}"
    for fpu_core in ("m4f", "m7"):
        if (fpu_core, "i8") in sweep and (fpu_core, "f32") in sweep:
            i8, f = sweep[(fpu_core, "i8")]["instructions"][-1], sweep[(fpu_core, "f32")]["instructions"][-1]
            out.update(fpu_core=label(fpu_core), fpu_i8=f"{int(i8):,}", fpu_f32=f"{int(f):,}",
                       fpu_i8_over_f32=f"{i8 / f:.2f}")
            break
    if all((core, "i8") in sweep for core in ("m4f", "m7")):
        same = np.array_equal(sweep[("m4f", "i8")]["instructions"], sweep[("m7", "i8")]["instructions"])
        out["m4f_m7_curves"] = ("coincide: the compiler emits the same single-precision code for both" if same
                                else "differ slightly")
    return with_note(out, "sweep_note")


# -- where a decode step's instructions go -------------------------------------------------------------------

def run_step_profiles(cores, blob: bytes, prompt_ids, window: int, timeout: float) -> dict:
    """{core: instructions of one i8 decode step, those in the C runtime, per function}."""
    profiles = {}
    for core in cores:
        image = FW.build_image(core, blob)
        prof = FW.step_profile(image, prompt_ids, path="i8", window=window, timeout=timeout)
        runtime = set(FW.function_sizes(image, "__runtime_text_start", "__runtime_text_end"))
        profiles[core] = {"total": sum(prof.values()), "runtime": sum(v for k, v in prof.items() if k in runtime),
                          "functions": prof}
    return profiles


def profile_table(profiles: dict, top: int = 8) -> tuple[list, list]:
    header = ["core", "instructions in one step", "in libgcc/newlib", f"the {top} costliest functions"]
    rows = []
    for core, p in profiles.items():
        total = p["total"]
        functions = sorted(p["functions"].items(), key=lambda kv: -kv[1])[:top]
        rows.append([label(core), total, f"{100 * p['runtime'] / total:.0f} %",
                     ", ".join(f"{literal(k)} {100 * v / total:.0f} %" for k, v in functions)])
    return header, rows


# -- flash and RAM ------------------------------------------------------------------------------------------

def measure_ram(core: str, blob: bytes, path: str, window: int, ids, timeout: float) -> tuple[dict, dict]:
    """(image sizes, RAM of one run over `ids`) of `core`'s image on `path`."""
    image = FW.build_image(core, blob)
    run = FW.run_engine(image, ids, 1, path=path, window=window, full_logits=False, timeout=timeout)
    sizes = FW.image_sizes(image)
    return sizes, FW.ram_usage(run, sizes)


def run_footprint(cores, paths, blob: bytes, ids, window: int, timeout: float) -> dict:
    """{"core/path": {"sizes", "ram"}} at a `window`-token window over ids[:window]."""
    out = {}
    for core in cores:
        for path in paths:
            sizes, ram = measure_ram(core, blob, path, window, ids[:window], timeout)
            out[f"{core}/{path}"] = {"sizes": sizes, "ram": ram}
    return out


def footprint_table(footprint: dict) -> tuple[list, list]:
    header = ["core", "path", ".text (engine / C runtime)", ".rodata (engine tables / blob)", ".data",
              ".bss (harness)", "state", "scratch + logits", "stack peak", "engine RAM", "total RAM"]
    rows = []
    for key, f in footprint.items():
        core, path = key.split("/")
        s, r = f["sizes"], f["ram"]
        rows.append([label(core), path, f"{s['text']:,} ({s['engine_text']:,} / {s['runtime_text']:,})",
                     f"{s['rodata']:,} ({s['engine_rodata']:,} / {s['blob']:,})", s["data"],
                     f"{s['bss']:,} ({r['harness_ram']:,})", r["state"], r["scratch"] + r["logits"],
                     r["stack_peak"], r["engine_ram"], r["total_ram"]])
    return header, rows


def ram_core(cores) -> str:
    """The core whose RAM is followed by context: the Cortex-M3 where it runs."""
    return "m3" if "m3" in cores else cores[0]


def run_ram_by_window(core: str, blob: bytes, ids, context_max: int, timeout: float) -> dict:
    """{window: RAM} of the i8 path at 32- and 64-token windows (those within context_max)."""
    return {win: measure_ram(core, blob, "i8", win, ids[:win], timeout)[1]
            for win in (32, 64) if win <= context_max}


def ram_findings(by_window: dict, cfg, model_is_60k: bool) -> dict:
    """The numbers the prose quotes about RAM at 32 and 64 tokens of context (60K model only)."""
    out = dict.fromkeys(("state_ctx32", "engine_ram_ctx32", "engine_ram_ctx64", "state_ctx64", "kv_i8_ctx64",
                         "kv_amax_ctx64", "kv_f32_ctx64", "ram_ctx64_verdict"), NOT_MEASURED)
    if not model_is_60k:
        return with_note(out, "ram_note")
    if 32 in by_window:
        out.update(state_ctx32=_n(by_window[32]["state"]), engine_ram_ctx32=_n(by_window[32]["engine_ram"]))
    if 64 in by_window:
        need, kv = by_window[64]["engine_ram"], cfg.n_layers * 64 * (cfg.d_head + cfg.d_model)
        out.update(engine_ram_ctx64=_n(need), state_ctx64=_n(by_window[64]["state"]), kv_i8_ctx64=_n(kv),
                   kv_amax_ctx64=_n(2 * 4 * cfg.n_layers * 64), kv_f32_ctx64=_n(4 * kv),
                   ram_ctx64_verdict=_verdict(need, TARGETS["ram_60k_ctx64"], " B"))
    return with_note(out, "ram_note")


# -- the engine's code ---------------------------------------------------------------------------------------

BUILDS = (("full", False), ("minimal", True))


def run_engine_code(cores, blob: bytes) -> dict:
    """{"core/build": engine .text linked and by purpose, .rodata, the C runtime linked, the
    whole library compiled, 64-bit divisions linked}, full and minimal builds."""
    rows = {}
    for build, minimal in BUILDS:
        for core in cores:
            image = FW.build_image(core, blob, minimal=minimal)
            sizes = FW.image_sizes(image)
            runtime = FW.function_sizes(image, "__runtime_text_start", "__runtime_text_end")
            rows[f"{core}/{build}"] = {"linked": sizes["engine_text"], "rodata": sizes["engine_rodata"],
                                       "runtime_text": sizes["runtime_text"],
                                       "groups": group_sizes(FW.function_sizes(image)),
                                       "library_text": FW.engine_object_sizes(image)["text"],
                                       "division_64": sorted(k for k in runtime if "divmoddi" in k)}
    return rows


def engine_code_table(code_rows: dict, cores) -> tuple[list, list]:
    """Bytes at -Os, each cell full / minimal build."""
    def pair(core, f):
        return f"{f(code_rows[core + '/full']):,} / {f(code_rows[core + '/minimal']):,}"
    header = [""] + [label(c) for c in cores]
    groups = list(code_rows[f"{cores[0]}/full"]["groups"])
    rows = [[g] + [pair(c, lambda r: r["groups"][g]) for c in cores] for g in groups]
    rows.append(["engine .text linked, ATMB firmware"] + [pair(c, lambda r: r["linked"]) for c in cores])
    rows.append(["engine .rodata (the float path's trit table; status names)"]
                + [pair(c, lambda r: r["rodata"]) for c in cores])
    rows.append(["C runtime linked (libgcc soft float, memcpy...)"]
                + [pair(c, lambda r: r["runtime_text"]) for c in cores])
    rows.append(["whole library .text (compiled, before linking)"]
                + [pair(c, lambda r: r["library_text"]) for c in cores])
    rows.append(["kit's engine .text at -Os (reported)"] + [KIT["engine_text_Os"][c] for c in cores])
    return header, rows


def engine_code_findings(code_rows: dict) -> dict:
    """The Cortex-M3's minimal and full engine .text beside the target and the kit, its three
    largest parts, and any 64-bit division linked by any build."""
    out = dict.fromkeys(("engine_text_m3_minimal", "engine_text_m3_full", "engine_text_verdict",
                         "engine_text_largest"), NOT_MEASURED)
    divisions = sorted({k for r in code_rows.values() for k in r["division_64"]})
    out["division_64"] = ", ".join(divisions) if divisions else "none"
    if "m3/minimal" in code_rows:
        small, full = code_rows["m3/minimal"], code_rows["m3/full"]
        biggest = sorted(small["groups"].items(), key=lambda kv: -kv[1])[:3]
        out.update(engine_text_m3_minimal=_n(small["linked"]), engine_text_m3_full=_n(full["linked"]),
                   engine_text_verdict=_verdict(small["linked"], TARGETS["engine_text_m3_Os"], " B"),
                   engine_text_largest="; ".join(f"{g}, {v:,} B" for g, v in biggest))
    return out


# -- the published 944K model --------------------------------------------------------------------------------

def published_944k_missing(interop, run_944k: bool) -> str | None:
    """Why the published 944K section cannot run in this build, or None when it can."""
    if not run_944k:
        return "the published 944K model is not run in this profile"
    if interop is None or not (interop / "atome_944k.bin").is_file():
        return "the published 944K blob (atome_944k.bin, from the kit's repository) is not in ../shared/interop/"
    return None


def run_published_944k(interop, new_tokens: int, per_tick: int, timeout: float) -> dict:
    """The kit's 944K blob on the Cortex-M7's float path against the NumPy reference and the
    greedy continuation the kit's own engine produced (reference_generations.json)."""
    import json
    blob = (interop / "atome_944k.bin").read_bytes()
    case = json.loads((interop / "reference_generations.json").read_text())["cases"][0]
    r = FW.check_parity("m7", blob, list(case["prompt"].encode()), new_tokens, path="f32", window=128,
                        timeout=timeout)
    sizes, run = FW.image_sizes(r["image"]), r["run"]
    kit_ids = case["generated_byte_ids"][:new_tokens]
    gen = [s.ticks * per_tick for s in run.steps[len(case["prompt"]) - 1:]]
    m7 = {"bit_exact": r["bit_exact"], "max_ulp": r["max_ulp"], "tokens_equal_reference": r["tokens_equal"],
          "tokens_equal_kit": sum(a == b for a, b in zip(r["generated"], kit_ids)), "tokens": r["tokens"],
          "flash": sizes["flash"], "blob": sizes["blob"], "ram": FW.ram_usage(run, sizes),
          "mean_instructions_per_token": float(np.mean(gen)), "load_instructions": run.load["ticks"] * per_tick}
    shown = {"prompt": case["prompt"], "generated": r["generated"], "kit_tokens": len(kit_ids),
             "logits": r["logits_compared"]}
    return {"metrics": m7, "shown": shown}


def published_944k_findings(published: dict | None) -> dict:
    """The numbers and text the prose quotes about the 944K run (NOT_MEASURED when not run)."""
    keys = ("m7_blob", "m7_flash", "m7_prompt", "m7_generated", "m7_tokens_equal_reference", "m7_logits",
            "m7_max_ulp", "m7_tokens_equal_kit", "m7_million_instructions_per_token", "m7_million_load",
            "m7_state", "m7_total_ram")
    if published is None:
        return dict.fromkeys(keys, NOT_MEASURED)
    m, s = published["metrics"], published["shown"]
    return dict(zip(keys, (
        _n(m["blob"]), _n(m["flash"]), printable(s["prompt"].encode()), printable(s["generated"]),
        f"{m['tokens_equal_reference']}/{m['tokens']}", _n(s["logits"]), str(m["max_ulp"]),
        f"{m['tokens_equal_kit']}/{s['kit_tokens']}", f"{m['mean_instructions_per_token'] / 1e6:.2f}",
        f"{m['load_instructions'] / 1e6:.2f}", _n(m["ram"]["state"]), _n(m["ram"]["total_ram"]))))


# -- beside the targets -------------------------------------------------------------------------------------

def target_measurements(sweep: dict, code_rows: dict, by_window: dict, context_max: int,
                        model_is_60k: bool) -> dict:
    """{target: measured} for each target this profile measures (the 60K model at a 64-token
    context on the Cortex-M3; the engine's code wherever the M3 is built), plus the full build's
    .text beside the minimal one's."""
    out = {}
    if ("m3", "i8") in sweep and context_max >= TARGET_CONTEXT and model_is_60k:
        out["instructions_m3_i8_ctx64"] = int(sweep[("m3", "i8")]["instructions"][TARGET_CONTEXT - 1])
    if "m3/minimal" in code_rows:
        out["engine_text_m3_Os"] = code_rows["m3/minimal"]["linked"]
        out["engine_text_m3_Os_full"] = code_rows["m3/full"]["linked"]
    if TARGET_CONTEXT in by_window and model_is_60k:
        out["ram_60k_ctx64"] = by_window[TARGET_CONTEXT]["engine_ram"]
    return out


def target_table(measured: dict) -> tuple[list, list]:
    header = ["measure", "measured", "the target we set", "within it"]
    rows = []
    if "instructions_m3_i8_ctx64" in measured:
        v, t = measured["instructions_m3_i8_ctx64"], TARGETS["instructions_m3_i8_ctx64"]
        rows.append(["instructions per token, 60K, 64-token context, Cortex-M3, i8 path", v, f"≤ {t:,}", v <= t])
    if "engine_text_m3_Os" in measured:
        v, t = measured["engine_text_m3_Os"], TARGETS["engine_text_m3_Os"]
        rows.append([f"engine .text at -Os on the Cortex-M3, validation and CRC included (minimal build; full "
                     f"build {measured['engine_text_m3_Os_full']:,} B)", f"{v:,} B", f"≤ {t:,} B", v <= t])
    if "ram_60k_ctx64" in measured:
        v, t = measured["ram_60k_ctx64"], TARGETS["ram_60k_ctx64"]
        rows.append(["RAM of the engine, 60K, 64-token context", f"{v:,} B", f"≤ {t:,} B", v <= t])
    return header, rows


def missed_targets(measured: dict) -> str:
    """The targets measured and missed, each with its number, or "none"."""
    missed = [k for k, v in measured.items() if k in TARGETS and v > TARGETS[k]]
    if not missed:
        return "none"
    return "; ".join(f"{TARGET_NAMES[k][0]}, {measured[k]:,}{TARGET_NAMES[k][1]} against at most "
                     f"{TARGETS[k]:,}{TARGET_NAMES[k][1]}" for k in missed)


def not_run_note(reason: str) -> str:
    """The line a section shows in place of its results when it could not run."""
    return f"This section did not run in this build ({reason}); the numbers below read {NOT_MEASURED}."


def training_plan(P, chapter4: dict) -> list:
    """The chapter's training under parameters `P` (atome_core.book.estimate): none when its model
    is chapter 4's published 8-bit routed model (packing.chapter4_routed reads that file), else the
    one run chapter4_routed trains (`chapter4`: chapter 4's parameters at the same profile)."""
    from ..ledger import job_shape
    from .ab_60k import act8_config
    from .packing import chapter4_routed_config, chapter4_routed_job
    config = chapter4_routed_config(P.act_bits, P.model)
    if config == act8_config():
        return []
    empty = np.zeros(0, np.int64)
    return [job_shape(chapter4_routed_job(chapter4, "shakespeare", config, empty, empty))]

