"""The handlers behind `atome`'s subcommands (atome_core.cli builds the parsers), and the
one exit-code convention every subcommand follows:

    0    success
    2    usage or bad input: a missing file, a file that is not what it should be, a value
         out of range (ValueError, OSError, argparse's own errors)
    1    a run that failed: a build error, a QEMU run that failed, a parity mismatch, an
         invalid blob reported by `inspect`, a book that did not build (RuntimeError,
         ArithmeticError), or an error nobody anticipated (named with where it was raised)
    130  interrupted (Ctrl-C), quietly

Each error is one line `atome <cmd>: error: ...` naming the file or value and what is wrong
(details, such as a compiler's output, on the lines below it), never a traceback; `guarded`
does that for every handler. Handlers import what they need when they run, so `atome --help`
starts fast.
"""
import json
import math
import os
import sys
import traceback
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

BAD_INPUT, FAILED, INTERRUPTED = 2, 1, 130


def report(command: str, error, code: int) -> int:
    print(f"atome {command}: error: {error}", file=sys.stderr)
    return code


def os_error_text(e: OSError) -> str:
    """'FILE: what is wrong' for an OSError that names a file, its own words otherwise."""
    if e.filename is None or not e.strerror:
        return str(e)
    what = {FileNotFoundError: "no such file or folder", IsADirectoryError: "is a folder; give a file",
            PermissionError: "permission denied"}.get(type(e), e.strerror.lower())
    return f"{e.filename}: {what}"


def guarded(command: str, handler, *args) -> int:
    """Run a handler; bad input exits 2, a failed run 1, Ctrl-C 130, each without a traceback."""
    try:
        return handler(*args)
    except KeyboardInterrupt:
        sys.stderr.write("\n")
        return INTERRUPTED
    except BrokenPipeError:  # the reader went away (`atome corpus list | head`): nothing to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as e:
        return report(command, os_error_text(e), BAD_INPUT)
    except ValueError as e:
        return report(command, e, BAD_INPUT)
    except (RuntimeError, ArithmeticError) as e:
        return report(command, e, FAILED)
    except Exception as e:  # noqa: BLE001  (a bug: named with where it was raised, in one line)
        where = traceback.extract_tb(e.__traceback__)[-1]
        return report(command, f"unexpected {type(e).__name__} at {Path(where.filename).name}:{where.lineno}: "
                      f"{e}", FAILED)


def at_least(minimum: int):
    """argparse type: an integer >= minimum; the refusal names the value and the bound."""
    import argparse

    def integer(value: str) -> int:
        try:
            n = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{value!r} is not an integer") from None
        if n < minimum:
            raise argparse.ArgumentTypeError(f"{n} is too small: give an integer >= {minimum}")
        return n
    return integer


def finite_at_least(minimum: float, strict: bool = False):
    """argparse type: a finite number >= minimum (> minimum when strict); nan and inf refused."""
    import argparse

    def number(value: str) -> float:
        try:
            x = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
        if not math.isfinite(x) or x < minimum or (strict and x == minimum):
            raise argparse.ArgumentTypeError(f"{value} is not allowed: give a finite number "
                                             f"{'>' if strict else '>='} {minimum:g}")
        return x
    return number


def output_file(value: str) -> str:
    """argparse type of a file to write: refused up front when it names a folder."""
    import argparse
    if Path(value).is_dir():
        raise argparse.ArgumentTypeError(f"{value} is a folder; give a file name")
    return value


def device_arg(value: str) -> str:
    """argparse type of --device: auto, cpu, cuda, cuda:N or mps; anything else is refused."""
    import argparse
    import re
    if value in ("auto", "cpu", "mps") or re.fullmatch(r"cuda(:\d+)?", value):
        return value
    raise argparse.ArgumentTypeError(f"{value!r} is not a device torch trains on here: "
                                     "choose auto, cpu, cuda, cuda:N or mps")


# -- atome corpus ------------------------------------------------------------------------------

def short(s: str, n: int) -> str:
    return s if len(s) <= n else s[:n - 3] + "..."


def user_corpus_path(name: str, path):
    """The file behind a corpus given by path, as `atome train --corpus` finds it: tinystories
    without a path is $ATOME_TINYSTORIES, else the kit's sample in ../shared/interop."""
    if name != "tinystories" or path:
        return path
    from .recipe import interop_tinystories
    return os.environ.get(TINYSTORIES_ENV) or interop_tinystories()


def run_corpus(args) -> int:
    if args.command == "list":
        return cli_list()
    if args.command == "show":
        c = load_corpus(args.name, path=user_corpus_path(args.name, args.path), val_fraction=args.val_fraction)
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
        path = user_corpus_path(name, None)
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


# -- atome atto -------------------------------------------------------------------------------

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
        if args.corpus in USER_CORPORA:
            raise ValueError(f"atto train takes a corpus by name ({', '.join(list_corpora())}), not "
                             f"{args.corpus!r}; for your own text: atome train --corpus file --corpus-path FILE")
        if args.budget not in atto.BUDGETS and args.config is None:
            print(f"note: {args.budget} is not one of the book's budgets {atto.BUDGETS}", file=sys.stderr)
        data = atto_series.series_data(args.corpus, max_chars=args.max_chars)
        lr = args.lr
        if args.config:
            try:
                cfg = AttoConfig(**json.loads(args.config))
            except (json.JSONDecodeError, TypeError) as e:
                raise ValueError(f"--config {args.config!r} is not an AttoConfig as JSON ({e})") from None
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
        text = load_corpus(args.corpus).text[: args.max_chars or None]   # the text series_data split
        recipe = (f"atto: {args.steps} steps of {args.batch_size} x {args.seq_len} characters, cosine from "
                  f"lr {lr:g}")
        info = {"val_loss_nats": val, "val_bits_per_char": val / np.log(2), "corpus": args.corpus,
                "corpus_sha256": sha256_hex(text.encode()), "corpus_licence": corpus_info(args.corpus)["licence"],
                "corpus_source": corpus_info(args.corpus)["source"], "recipe": recipe, "seed": args.seed,
                "tokens": args.steps * args.batch_size * args.seq_len}
        save_model(model, args.out, tokenizer=data.vocab, info=info)
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
    from dataclasses import asdict
    exported = Path(args.out)
    card = card_of("atto", count_params(model.cfg), asdict(model.cfg), info, args.model,
                   exported.read_bytes() if exported.is_file() else None)
    write_atomic(card_path(args.out), json.dumps(card | {"val_bits_per_char": info.get("val_bits_per_char")},
                                                 indent=2) + "\n")
    print(f"wrote {args.out}; model card {card_path(args.out)}")
    return 0


# -- atome export / atome inspect -----------------------------------------------------------

CARD_FORMAT = "atome-model-card-1"
# What a card tells, in the order `inspect` shows it; fields the source did not record are null.
CARD_FIELDS = ("family", "parameters", "config", "corpus", "corpus_sha256", "corpus_licence", "corpus_source",
               "recipe", "seed", "tokens", "val_bpb", "source", "source_sha256", "blob_sha256")


def card_path(output) -> Path:
    """A model card sits beside the file it describes: OUT.card.json."""
    return Path(str(output) + ".card.json")


def corpus_card(name: str, path, train_tokens, val_tokens) -> dict:
    """What a model file records of its training text: name, sha256 of the exact bytes trained
    and validated on, the data's licence and where it came from (`atome train` keeps it in info)."""
    import numpy as np
    text = np.concatenate([train_tokens, val_tokens]).astype(np.uint8).tobytes()
    source = str(path) if path else corpus_info(name)["source"]
    return {"corpus": name, "corpus_sha256": sha256_hex(text), "corpus_licence": corpus_info(name)["licence"],
            "corpus_source": source}


def model_card(source, kind: str, cfg, blob: bytes) -> dict:
    """The card `atome export` writes beside a blob: the blob formats have no room for it, so
    it is JSON naming the blob by sha256. A model file's info (from `atome train`) fills the
    data and score fields; a blob or checkpoint source leaves them null."""
    from dataclasses import asdict

    from .formats.model_file import read_model_file
    info = read_model_file(source).info if kind == "model file" else {}
    return card_of(info.get("family", "routed"), cfg.n_params, asdict(cfg), info, source, blob)


def card_of(family: str, parameters: int, config: dict, info: dict, source, blob: bytes | None) -> dict:
    """A model card: the CARD_FIELDS a trainer's `info` holds (others null), the model's family,
    parameters and config, the source file and the exported bytes named by sha256."""
    card = dict.fromkeys(CARD_FIELDS)
    card.update({k: info[k] for k in CARD_FIELDS if k in info})
    card.update(format=CARD_FORMAT, family=family, parameters=parameters, config=config,
                source=Path(source).name, source_sha256=sha256_hex(Path(source).read_bytes()),
                blob_sha256=sha256_hex(blob) if blob is not None else None)
    return card


def format_card(card: dict, fields=CARD_FIELDS) -> str:
    return "\n".join(f"card     {k:15s} {json.dumps(card.get(k)) if isinstance(card.get(k), dict) else card.get(k)}"
                     for k in fields)


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
    card = card_path(args.output)
    write_atomic(card, json.dumps(model_card(args.source, kind, cfg, blob), indent=2) + "\n")
    print(f"{args.source} ({kind}) -> {args.output}: {len(blob):,} bytes, {args.format}"
          + (f", codec {args.codec}, floats {args.float_dtype}" if args.format == "atmb" else "")
          + f"; model card {card}")
    if args.format == "atmb":
        print(format_inspection(inspect_blob(blob)))
    return 0


def inspect_model_file(path) -> int:
    """A model file's family, config and the info its trainer kept (the card's fields first)."""
    from dataclasses import asdict

    from .formats.model_file import read_model_file
    mf = read_model_file(path)
    print(f"format   {mf.kind} (safetensors), {Path(path).stat().st_size:,} bytes")
    print(f"family   {mf.family}")
    print(f"config   {json.dumps(asdict(mf.config)) if mf.config is not None else None}")
    print(format_card({"parameters": mf.info.get("params"), **mf.info}, ("parameters",) + CARD_FIELDS[3:11]))
    return 0


def cli_inspect(args) -> int:
    """atome inspect FILE: header, sections, bits per trit, CRC status. Exit 1 if invalid."""
    from .formats import format_inspection, inspect_blob, parse_config_arg
    data = Path(args.file).read_bytes()
    if Path(args.file).suffix == ".safetensors":
        return inspect_model_file(args.file)
    info = inspect_blob(data, parse_config_arg(args.config))
    print(format_inspection(info))
    if not info.ok:
        report("inspect", f"{args.file}: not a valid blob ({info.problems[0] if info.problems else 'see above'})",
               FAILED)
    card = card_path(args.file)
    if card.is_file():
        stored = json.loads(card.read_text())
        print(format_card(stored))
        if stored.get("blob_sha256") != sha256_hex(data):
            print(f"card     {card} describes another file (its blob_sha256 differs)")
    return 0 if info.ok else FAILED


# -- atome generate ----------------------------------------------------------------------------

def cli_generate(args) -> int:
    """atome generate --blob F --prompt TEXT: continue a prompt with the C engine, printing
    each token as it comes (bytes decoded as UTF-8 once a character is complete)."""
    import codecs

    from . import formats
    from .engine import Engine
    config = formats.parse_config_arg(args.config)
    data, _ = formats.blob_of(args.blob, config)
    engine = Engine(data, window=args.window, path=args.path, config=config)
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    shown = []

    def show(token: int) -> None:
        shown.append(token)
        if args.ids:
            text = f"{' ' if len(shown) > 1 else ''}{token}"
        else:
            text = decoder.decode(bytes([token])) if token < 256 else ""
        sys.stdout.write(text)
        sys.stdout.flush()

    sys.stdout.write("" if args.ids else args.prompt)
    try:
        engine.generate(args.prompt, args.max_new_tokens, temperature=args.temperature,
                        seed=args.seed, max_total=args.max_total, on_token=show)
    finally:  # Ctrl-C included: end the line that was streaming
        sys.stdout.write(("" if args.ids else decoder.decode(b"", final=True)) + "\n")
        sys.stdout.flush()
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


