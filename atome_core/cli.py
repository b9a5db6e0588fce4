"""The `atome` command: every subcommand's parser and handler.

Exit codes, the same for every subcommand: 0 success; 2 usage or bad input (a missing
file, a file that is not what it should be, a value out of range: ValueError, OSError);
1 a run that failed (a build error, a QEMU run that failed, a parity mismatch, an invalid
blob reported by `inspect`, a book that did not build: RuntimeError, ArithmeticError).
Either prints one line `atome <cmd>: error: ...` (details, such as a compiler's output,
on the lines below it) and no traceback; `guarded` does that for every handler.
Handlers import what they need when they run, so `atome --help` starts fast.
"""
import argparse
import json
import os
import sys
from pathlib import Path

from .data.corpora import (
    FETCHED_KINDS,
    TINYSTORIES_ENV,
    USER_CORPORA,
    CorpusError,
    cached_source_path,
    corpus_info,
    fetch_corpus,
    list_corpora,
    load_corpus,
    sha256_hex,
)
from .files import write_atomic
from .models.presets import (  # plain data: the one table of named shapes
    FAMILIES,
    FRONTIER_SIZES,
    SIZES,
)

BAD_INPUT, FAILED = 2, 1
PRESET_NAMES = ", ".join(SIZES)   # --config accepts the routed rungs by name


def report(command: str, error, code: int) -> int:
    print(f"atome {command}: error: {error}", file=sys.stderr)
    return code


def guarded(command: str, handler, *args) -> int:
    """Run a handler; bad input exits 2, a failed run 1, each with its one-line message."""
    try:
        return handler(*args)
    except (ValueError, OSError) as e:
        return report(command, e, BAD_INPUT)
    except (RuntimeError, ArithmeticError) as e:
        return report(command, e, FAILED)


# -- atome book ------------------------------------------------------------------------

def cmd_book(args) -> int:
    from .book import runner as book
    if args.normalize:
        from .book.notebooks import normalize_file
        changed = [c.path.name for c in book.list_chapters() if normalize_file(c.path)]
        print(f"normalized {', '.join(changed)}" if changed else "every chapter is already normalized")
        return 0
    if args.list:
        book.describe()
        return 0
    book.build_book(profile=args.profile, only=args.only, render_html=not args.no_render, force=args.force)
    return 0


# -- atome corpus list | show NAME [--path P] | fetch [NAME ...] -----------------------

def short(s: str, n: int) -> str:
    return s if len(s) <= n else s[:n - 3] + "..."


def cli_corpus(argv: list) -> int:
    parser = argparse.ArgumentParser(prog="atome corpus", description="the book's corpora")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="a table of all corpora (fetches alice/moby on first use)")
    show = sub.add_parser("show", help="details of one corpus")
    show.add_argument("name")
    show.add_argument("--path", help="the file, for tinystories and file")
    show.add_argument("--val-fraction", type=float, default=0.1)
    fetch = sub.add_parser("fetch", help="fetch registry corpora into the cache now")
    fetch.add_argument("names", nargs="*", help="default: all that are fetched")
    fetch.add_argument("--force", action="store_true", help="fetch again even when a verified copy is cached")
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse already printed usage / error
        return e.code if isinstance(e.code, int) else BAD_INPUT
    return guarded("corpus", run_corpus, args)


def run_corpus(args) -> int:
    if args.command == "list":
        return cli_list()
    if args.command == "show":
        c = load_corpus(args.name, path=args.path, val_fraction=args.val_fraction)
        cut = len(c.train)
        print(f"name:        {c.name}")
        print(f"description: {c.description}")
        print(f"source:      {c.source}")
        print(f"licence:     {c.licence}")
        print(f"sha256:      {c.sha256}  (source bytes)")
        print(f"size:        {c.n_bytes:,} bytes, {c.n_chars:,} characters")
        print(f"characters:  {len(c.chars)} distinct: {''.join(c.chars)!r}")
        print(f"split:       train {len(c.train):,} chars, val {len(c.val):,} chars "
              f"(val_fraction {args.val_fraction}, cut at character {cut:,})")
        print("train begins:")
        print(c.train[:300])
        return 0
    names = args.names or [n for n in list_corpora() if corpus_info(n)["kind"] in FETCHED_KINDS]  # fetch
    for name in names:
        if corpus_info(name)["kind"] not in FETCHED_KINDS:
            raise CorpusError(f"corpus {name!r} is not fetched from a registry")
        cached = cached_source_path(corpus_info(name))
        if not args.force and cached.is_file() and \
                sha256_hex(cached.read_bytes()) == corpus_info(name)["source_sha256"]:
            print(f"{name}: {cached} (cached, sha256 verified)")
            continue
        print(f"{name}: {fetch_corpus(name)}")
    return 0


def cli_list() -> int:
    header = ("name", "bytes", "chars", "distinct", "train", "val", "sha256", "licence", "source")
    rows, failures = [], []
    names = list_corpora() + list(USER_CORPORA)
    for name in names:
        info = corpus_info(name)
        path = os.environ.get(TINYSTORIES_ENV) if name == "tinystories" else None
        if name in USER_CORPORA and not path:
            rows.append((name, "needs --path", "", "", "", "", "", info["licence"],
                         short(info["source"], 60)))
            continue
        try:
            c = load_corpus(name, path=path)
        except CorpusError as e:
            failures.append(f"{name}: {e}")
            rows.append((name, "unavailable", "", "", "", "", "", info["licence"],
                         short(info["source"], 60)))
            continue
        rows.append((name, f"{c.n_bytes:,}", f"{c.n_chars:,}", str(len(c.chars)), f"{len(c.train):,}",
                     f"{len(c.val):,}", c.sha256[:12], c.licence, short(c.source, 60)))
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    for r in [header] + rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip())
    for f in failures:
        report("corpus", f, BAD_INPUT)
    return BAD_INPUT if failures else 0


def cmd_corpus(args) -> int:
    return cli_corpus(args.rest)


# -- atome atto train | sample | export ---------------------------------------------------

def cli_atto(argv: list) -> int:
    parser = argparse.ArgumentParser(prog="atome atto", description="the atto series outside the book")
    sub = parser.add_subparsers(dest="command", required=True)
    tr = sub.add_parser("train", help="search a budget's configuration (or take one) and train it")
    tr.add_argument("--budget", type=int, required=True, help="exact parameter count, e.g. 1024")
    tr.add_argument("--out", required=True, help="model file to write (.safetensors)")
    tr.add_argument("--corpus", default="shakespeare")
    tr.add_argument("--max-chars", type=int, help="use only the first N characters of the corpus")
    tr.add_argument("--steps", type=int, default=800)
    tr.add_argument("--batch-size", type=int, default=32)
    tr.add_argument("--seq-len", type=int, default=128)
    tr.add_argument("--lr", type=float, default=3e-2, help="base rate; the search may double it")
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--search-steps", type=int, default=150, help="steps per search candidate")
    tr.add_argument("--config", help="skip the search: an AttoConfig as JSON, e.g. "
                    "'{\"n_embd\": 8, \"n_full\": 2, \"n_hidden\": 18, \"n_diag\": 2, ...}'")
    sa = sub.add_parser("sample", help="continue a prompt with a trained model")
    sa.add_argument("model", help=".safetensors model file or .json export")
    sa.add_argument("--prompt", default="ROMEO:")
    sa.add_argument("--chars", type=int, default=200)
    sa.add_argument("--greedy", action="store_true")
    sa.add_argument("--temperature", type=float, default=0.8)
    sa.add_argument("--seed", type=int, default=0)
    ex = sub.add_parser("export", help="write a model file as dependency-free JSON")
    ex.add_argument("model", help=".safetensors model file")
    ex.add_argument("--out", required=True, help="JSON file, or a folder with --web")
    ex.add_argument("--name", help="model name in the file (default: atto-<params>)")
    ex.add_argument("--web", action="store_true", help="write the demo folder (JSON, manifest, .js fallbacks)")
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else BAD_INPUT
    return guarded("atto", run_atto, args)


def atto_model_file(path):
    """(AttoModel, vocabulary, info) of an atto model file."""
    from .formats.model_file import model_of, read_model_file
    mf = read_model_file(path)
    if mf.family != "atto":
        raise ValueError(f"{path}: holds a {mf.family or 'unknown'} model, not an atto model")
    return model_of(mf), mf.tokenizer, mf.info


def run_atto(args) -> int:
    import numpy as np
    import torch

    from .chapters import atto_series
    from .formats import atto_json
    from .formats.model_file import save_model
    from .models import atto
    from .models.atto import AttoConfig, count_params

    if args.command == "train":
        if args.budget not in atto.BUDGETS and args.config is None:
            print(f"note: {args.budget} is not one of the book's budgets {atto.BUDGETS}", file=sys.stderr)
        data = atto_series.series_data(args.corpus, max_chars=args.max_chars)
        lr = args.lr
        if args.config:
            cfg = AttoConfig(**json.loads(args.config))
            if count_params(cfg) != args.budget:
                raise ValueError(f"--config has {count_params(cfg)} parameters, not {args.budget}")
        else:
            found = atto_series.search_budget(args.budget, data.train, data.val[:50_000], steps=args.search_steps,
                                              lr=args.lr, seed=args.seed, log=print)
            cfg, lr = found.best, found.lr
        print(f"training {cfg.describe()} ({count_params(cfg)} parameters) for {args.steps} steps")
        model, _ = atto_series.train_atto(cfg, data.train, data.val[: 2 * args.seq_len + 1], steps=args.steps,
                                          batch_size=args.batch_size, seq_len=args.seq_len, lr=lr,
                                          seed=args.seed, progress_desc=f"atto-{args.budget}")
        val = atto.stream_loss(model, data.val)
        save_model(model, args.out, tokenizer=data.vocab, info={"val_loss_nats": val, "corpus": args.corpus})
        print(f"validation loss {val:.4f} nats/char ({val / np.log(2):.4f} bits/char); wrote {args.out}")
        return 0
    if args.command == "sample":
        if Path(args.model).suffix == ".json":
            model, vocab = atto_json.load(args.model)
        else:
            model, vocab, _ = atto_model_file(args.model)
        ids = torch.from_numpy(vocab.encode(args.prompt))[None]
        if ids.shape[1] == 0:
            raise ValueError("--prompt must not be empty")
        gen = torch.Generator().manual_seed(args.seed)
        out = model.generate(ids, args.chars, temperature=args.temperature, greedy=args.greedy, generator=gen)
        print(args.prompt + vocab.decode(out[0, ids.shape[1]:].numpy()))
        return 0
    model, vocab, info = atto_model_file(args.model)  # export
    name = args.name or f"atto-{count_params(model.cfg)}"
    if args.web:
        atto_json.write_web_folder(args.out, [{"name": name, "model": model, "vocab": vocab, "info": info}])
    else:
        atto_json.save(args.out, model, vocab, name, info)
    print(f"wrote {args.out}")
    return 0


def cmd_atto(args) -> int:
    return cli_atto(args.rest)


# -- atome export / atome inspect -----------------------------------------------------------

def cli_export(args) -> int:
    """atome export SOURCE -o OUT: write ATMB (or ATOME01/02) with the chosen codec."""
    from .formats import (
        ATOME01_MAGIC,
        ATOME02_MAGIC,
        format_inspection,
        inspect_blob,
        load_routed_tensors,
        parse_config_arg,
        write_blob,
        write_legacy,
    )
    cfg, tensors, kind = load_routed_tensors(args.source, parse_config_arg(args.config), args.top_k)
    if args.format == "atmb":
        blob = write_blob(cfg, tensors, codec=args.codec, float_dtype=args.float_dtype)
    else:
        blob = write_legacy(tensors, cfg, {"atome01": ATOME01_MAGIC, "atome02": ATOME02_MAGIC}[args.format])
    write_atomic(Path(args.output), blob)
    print(f"{args.source} ({kind}) -> {args.output}: {len(blob):,} bytes, {args.format}"
          + (f", codec {args.codec}, floats {args.float_dtype}" if args.format == "atmb" else ""))
    if args.format == "atmb":
        print(format_inspection(inspect_blob(blob)))
    return 0


def cli_inspect(args) -> int:
    """atome inspect FILE: header, sections, bits per trit, CRC status. Exit 1 if invalid."""
    from .formats import format_inspection, inspect_blob, parse_config_arg
    info = inspect_blob(Path(args.file).read_bytes(), parse_config_arg(args.config))
    print(format_inspection(info))
    return 0 if info.ok else FAILED


# -- atome generate ----------------------------------------------------------------------------

def cli_generate(args) -> int:
    """atome generate --blob F --prompt TEXT: continue a prompt with the C engine."""
    from . import formats
    from .engine import Engine
    config = formats.parse_config_arg(args.config)
    data, _ = formats.blob_of(args.blob, config)
    engine = Engine(data, window=args.window, path=args.path, config=config)
    ids = engine.generate(args.prompt, args.max_new_tokens, temperature=args.temperature,
                          seed=args.seed, max_total=args.max_total)
    if args.ids:
        print(" ".join(map(str, ids)))
    else:
        sys.stdout.write(args.prompt + bytes(ids).decode("utf-8", errors="replace") + "\n")
    return 0


# -- atome engine selfcheck | fuzz-seeds DIR ------------------------------------------------

def cli_engine(args) -> int:
    """Developer checks of the C engine against the Python reader and reference."""
    from .engine.conformance import fuzz_seeds, selfcheck
    if args.action == "fuzz-seeds":
        if not args.folder:
            raise ValueError("fuzz-seeds: give the folder to write the seeds into")
        print(f"{len(fuzz_seeds(args.folder))} seeds in {args.folder}")
        return 0
    problems = selfcheck()
    print("\n".join(problems) or "selfcheck: all agree")
    return FAILED if problems else 0


# -- atome qemu ---------------------------------------------------------------------------------

def cli_qemu(args) -> int:
    """atome qemu --blob F --core m3 --prompt TEXT: generate on the emulated core."""
    from . import formats
    from .firmware.qemu import (
        CORES,
        build_image,
        compare,
        firmware_blob,
        instructions_per_tick,
        reference_steps,
        require_tools,
        run_engine,
    )
    blob, config, note = firmware_blob(args.blob, formats.parse_config_arg(args.config))
    require_tools()
    image = build_image(args.core, blob, app="engine")
    ids = list(args.prompt.encode())
    reference = reference_steps(blob, ids, args.max_new_tokens, args.path, args.window, config) \
        if args.check else None
    run = run_engine(image, ids, args.max_new_tokens, path=args.path, window=args.window,
                     full_logits=args.check, config=config, timeout=args.timeout,
                     expect_crcs=[s.crc for s in reference] if reference else None)
    core = CORES[args.core]
    print(f"{core.label} on QEMU {core.board}, path {args.path}, window {args.window} ({note})")
    if not run.run.ok and run.run.outcome != "check failed":
        return report("qemu", f"the firmware ended with {run.run.outcome} (exit {run.run.exit_code}):\n"
                      + ("\n".join(run.errors) or run.run.stderr.strip()), FAILED)
    text = bytes(t for t in run.generated if t < 256).decode("utf-8", errors="replace")
    print(args.prompt + text)
    per_tick = instructions_per_tick(args.core)
    gen = run.steps[len(ids):] or run.steps[-1:]
    mean = per_tick * sum(s.ticks for s in gen) / len(gen)
    print(f"{len(run.generated)} tokens; {mean:,.0f} instructions per generated token; "
          f"stack peak {run.stack.get('used', 0):,} B; state {run.ram['state']:,} B, "
          f"scratch {run.ram['scratch']:,} B")
    if args.check:
        result = compare(run, reference)
        print(f"parity with the Python reference: {result['tokens_equal']}/{result['tokens']} tokens, "
              f"max {result['max_ulp']} ULP over {result['logits_compared']:,} logits, "
              f"{result['firmware_check']} steps failed the firmware's own CRC check: "
              f"{'bit-exact' if result['bit_exact'] else 'MISMATCH'}")
        return 0 if result["bit_exact"] else FAILED
    return 0


# -- atome train ----------------------------------------------------------------------------------

def train_overrides(args) -> dict:
    """The config fields --quant, --scale, --act-bits and --width change (the modern model only)."""
    from .models.presets import MODERN_SHAPES, ternary_quant, widened
    if args.model != "modern" and (args.quant != "fp32" or args.scale or args.act_bits or args.width != 1):
        raise ValueError("--quant, --scale, --act-bits and --width are for --model modern")
    if args.quant != "ternary" and (args.scale or args.act_bits):
        raise ValueError("--scale and --act-bits are for --quant ternary")
    overrides = {}
    if args.quant == "ternary":
        overrides["quant"] = ternary_quant(args.scale or "absmean", args.act_bits or 32)
    if args.width != 1:
        shape = widened(MODERN_SHAPES[args.size], args.width)
        overrides.update(d_model=shape["d_model"], d_ff=shape["d_ff"])
    return overrides


def cli_train(args) -> int:
    from .recipe import load_ladder_corpus, pick_device, train_cell
    overrides = train_overrides(args)
    corpus_name, train_tokens, val_tokens = load_ladder_corpus(args.corpus, args.corpus_path)
    if args.val_bytes is not None:
        if args.val_bytes < 1:
            raise ValueError(f"--val-bytes must be positive, got {args.val_bytes}")
        val_tokens = val_tokens[:args.val_bytes]
    out = Path(args.out)
    run = {"corpus": corpus_name, "recipe": args.recipe, "device": pick_device(args.device)}
    summary, _ = train_cell(args.model, args.size, args.tokens, args.seed, train_tokens, val_tokens,
                            recipe=args.recipe, device=args.device, out=out, info=run, **overrides)
    summary = {**summary, **run}
    write_atomic(Path(str(out) + ".json"), (json.dumps(summary, indent=2) + "\n").encode())
    variant = "".join([f" {args.quant}" if args.quant != "fp32" else "",
                       f" ({overrides['quant']['scale']})" if "quant" in overrides else "",
                       f" x{args.width} width" if args.width != 1 else ""])
    print(f"{args.model}{variant} {args.size} ({summary['params']:,} params, {summary['deployed']['bytes']:,} bytes "
          f"{summary['deployed']['format']}), seed {args.seed}, {summary['tokens']:,} tokens on {corpus_name}: "
          f"validation {summary['val_bpb']:.4f} bits per byte -> {out}")
    return 0


# -- atome lm-eval ---------------------------------------------------------------------------------

def cmd_lm_eval(args) -> int:
    try:
        from .harness import adapter as lm_eval_adapter
    except ImportError as e:
        return report("lm-eval", f"lm-evaluation-harness is not installed ({e}); "
                      "pip install 'atome-core[eval]'", BAD_INPUT)
    return guarded("lm-eval", lm_eval_adapter.main, args.rest)


# -- the parser ------------------------------------------------------------------------------------

def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    # these hand everything after their name, --help included, to their own parser
    # (argparse's REMAINDER would not take a leading option such as --help)
    pass_through = {"lm-eval": cmd_lm_eval, "corpus": cmd_corpus, "atto": cmd_atto}
    if argv[:1] and argv[0] in pass_through:
        return pass_through[argv[0]](argparse.Namespace(rest=argv[1:]))
    parser = argparse.ArgumentParser(prog="atome", description="atome: tiny language models, "
                                     "ternary weights, C engine and firmware; the book's tools.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("book", help="execute the chapters (papermill) and render the HTML book")
    p.add_argument("--profile", default="cpu", choices=["smoke", "cpu", "paper"],
                   help="parameter profile from profiles.yml (default: cpu)")
    p.add_argument("--only", action="append", metavar="NAME",
                   help="run only this chapter (file stem, e.g. 00_corpora); repeatable. "
                        "The book is rendered if every other chapter has been executed before")
    p.add_argument("--list", action="store_true", help="list chapters and profiles, run nothing")
    p.add_argument("--no-render", action="store_true", help="execute notebooks but do not render HTML")
    p.add_argument("--force", action="store_true", help="re-execute even when cached")
    p.add_argument("--normalize", action="store_true", help="rewrite the chapters in their stored form "
                   "(one source line per line, no outputs, code folded unless tagged show-input), run nothing")
    p.set_defaults(func=cmd_book)

    p = sub.add_parser("corpus", help="list or show the corpora (atome corpus list | show NAME)",
                       add_help=False)
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_corpus)

    p = sub.add_parser("atto", help="the atto series: atome atto train | sample | export (chapter 1)",
                       add_help=False)
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_atto)

    p = sub.add_parser("export", help="write a model (checkpoint, safetensors, ATOME01/02 or ATMB blob) "
                       "as an ATMB blob with a chosen codec, or as ATOME01/02")
    p.add_argument("source", help="a model file (atome train), a training checkpoint, the kit's .pt, "
                   "or a blob")
    p.add_argument("-o", "--output", required=True, help="the file to write")
    p.add_argument("--codec", default="dense", choices=["dense", "rans", "base3x5", "2bit", "auto"],
                   help="trit codec for every trit section; auto: the smallest per section (default dense)")
    p.add_argument("--float-dtype", default="float32", choices=["float32", "float16"],
                   help="storage of the LayerNorm and SSM vectors (default float32)")
    p.add_argument("--format", default="atmb", choices=["atmb", "atome01", "atome02"])
    p.add_argument("--config", help="only for a source that stores no config (an ATOME01/02 blob, a bare "
                   f"state_dict): a preset ({PRESET_NAMES}), a JSON file or JSON; default: the config "
                   "the source stores, else the preset whose size matches (blobs) or the weights' shapes")
    p.add_argument("--top-k", type=int, default=None, help="only for a source that stores no config: top_k "
                   "when the config is read off the weights' shapes (default 4)")
    p.set_defaults(func=cli_export)

    p = sub.add_parser("inspect", help="print a blob's header, sections, bits per trit and CRC status")
    p.add_argument("file")
    p.add_argument("--config", help=f"config of an ATOME01/02 blob: a preset ({PRESET_NAMES}), a JSON file "
                   "or JSON; default: the preset whose size matches")
    p.set_defaults(func=cli_inspect)

    p = sub.add_parser("generate", help="continue a prompt with the C engine (greedy or seeded sampling)")
    p.add_argument("--blob", required=True, help="an ATMB blob, an ATOME01 blob (with --config unless a preset "
                   "fits), or any file `atome export` reads (a model file of atome train: written as ATMB)")
    p.add_argument("--prompt", required=True, help="the text to continue (UTF-8 bytes are the tokens)")
    p.add_argument("--max-new-tokens", type=int, default=124, help="tokens to generate (default 124)")
    p.add_argument("--max-total", type=int, default=None,
                   help="cap on prompt + generated tokens (the kit's reference stops at 128)")
    p.add_argument("--temperature", type=float, default=0.0, help="0: greedy (default); > 0: sample")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (splitmix64 in the engine)")
    p.add_argument("--window", type=int, default=128, help="attention window in tokens (default 128)")
    p.add_argument("--path", default="f32", choices=["f32", "i8"], help="float or 8-bit activations")
    p.add_argument("--config", help=f"config of an ATOME01 blob: a preset ({PRESET_NAMES}), a JSON file or JSON")
    p.add_argument("--ids", action="store_true", help="print the generated token ids instead of text")
    p.set_defaults(func=cli_generate)

    p = sub.add_parser("qemu", help="generate with the engine as firmware on an emulated Cortex-M "
                       "(QEMU MPS2), optionally checked bit for bit against Python")
    p.add_argument("--blob", required=True, help="an ATMB or ATOME01 blob, or any file `atome export` reads "
                   "(a model file of atome train, a checkpoint: re-encoded 2-bit)")
    p.add_argument("--core", default="m3", choices=["m0", "m3", "m4f", "m7"], help="default m3")
    p.add_argument("--prompt", required=True, help="the text to continue (UTF-8 bytes are the tokens)")
    p.add_argument("--max-new-tokens", type=int, default=48, help="tokens to generate (default 48)")
    p.add_argument("--path", default="i8", choices=["f32", "i8"], help="float or 8-bit activations (default i8)")
    p.add_argument("--window", type=int, default=128, help="attention window in tokens (default 128)")
    p.add_argument("--config", help=f"config of an ATOME01 blob: a preset ({PRESET_NAMES}), a JSON file or JSON")
    p.add_argument("--check", action="store_true", help="compare every logit's bits and every token "
                   "with the Python reference; exit 1 on any difference")
    p.add_argument("--timeout", type=float, default=300, help="kill QEMU after this many seconds")
    p.set_defaults(func=cli_qemu)

    p = sub.add_parser("train", help="train one cell of chapter 5's size ladder (a family at a size, "
                       "a token budget, a seed) and save the model")
    p.add_argument("--model", required=True, choices=FAMILIES, help="model family")
    p.add_argument("--size", required=True, choices=FRONTIER_SIZES,
                   help=f"ladder rung (nominal parameters; exact counts in chapter 5): {', '.join(SIZES)}; "
                        "the modern model also " + ", ".join(s for s in FRONTIER_SIZES if s not in SIZES))
    p.add_argument("--quant", default="fp32", choices=["fp32", "ternary"],
                   help="modern model only: ternary weights for every matrix, the tied embedding included "
                        "(default fp32)")
    p.add_argument("--scale", default=None, choices=["absmean", "absmedian"],
                   help="with --quant ternary: the weight scale (default absmean, BitNet b1.58; absmedian: "
                        "BitNet b1.58 Reloaded)")
    p.add_argument("--act-bits", type=int, default=None, choices=[8, 32],
                   help="with --quant ternary: 8-bit activations (default 32)")
    p.add_argument("--width", type=int, default=1, choices=[1, 2],
                   help="modern model only: d_model and d_ff times this (default 1)")
    p.add_argument("--tokens", required=True, type=int, help="training token (byte) budget")
    p.add_argument("--seed", type=int, default=0, help="initialisation and batch-order seed (default 0)")
    p.add_argument("--out", required=True, help="model file to write (safetensors); a JSON summary "
                   "goes beside it as OUT.json")
    p.add_argument("--recipe", default="cpu", choices=["cpu", "paper"],
                   help="cpu: short runs on a CPU (default); paper: the kit's 944K recipe "
                        "(BF16 autocast on CUDA)")
    p.add_argument("--corpus", default="auto", help="auto (the TinyStories sample in ../shared/interop "
                   "when present, else shakespeare), shakespeare, alice, moby, tinystories or file")
    p.add_argument("--corpus-path", default=None, help="the file for --corpus tinystories or file")
    p.add_argument("--val-bytes", type=int, default=None,
                   help="score only the first N validation bytes (default: all)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present, default), cpu or cuda")
    p.set_defaults(func=cli_train)

    p = sub.add_parser("engine", help="developer checks of the C engine: selfcheck (parity on random "
                       "models, every malformed blob, garbage) or fuzz-seeds DIR (inputs for the C fuzzer)")
    p.add_argument("action", choices=["selfcheck", "fuzz-seeds"])
    p.add_argument("folder", nargs="?", help="where fuzz-seeds writes")
    p.set_defaults(func=cli_engine)

    p = sub.add_parser("lm-eval", add_help=False,
                       help="EleutherAI lm-evaluation-harness with `--model atome` registered "
                            "(all arguments go to lm_eval)")
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_lm_eval)

    args = parser.parse_args(argv)
    return guarded(args.command, args.func, args)


if __name__ == "__main__":
    sys.exit(main())
