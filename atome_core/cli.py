"""The `atome` command. Sub-commands grow with the chapters."""
import argparse
import sys


def cmd_book(args) -> int:
    from . import book
    if args.list:
        book.describe()
        return 0
    try:
        book.build_book(profile=args.profile, only=args.only, render_html=not args.no_render,
                        force=args.force)
    except book.BookError as e:
        print(f"atome book: error: {e}", file=sys.stderr)
        return 1
    return 0


def cmd_corpus(args) -> int:
    from . import data
    return data.cli_corpus(args.rest)


def cmd_atto(args) -> int:
    from . import atto_export
    return atto_export.cli_atto(args.rest)


def cmd_export(args) -> int:
    from . import formats
    return formats.cli_export(args)


def cmd_inspect(args) -> int:
    from . import formats
    return formats.cli_inspect(args)


def cmd_generate(args) -> int:
    from . import engine
    return engine.cli_generate(args)


def cmd_qemu(args) -> int:
    from . import firmware
    return firmware.cli_qemu(args)


def cmd_train(args) -> int:
    from . import ladder
    return ladder.cli_train(args)


def cmd_lm_eval(args) -> int:
    try:
        from . import lm_eval_adapter
    except ImportError as e:
        print(f"atome lm-eval: error: lm-evaluation-harness is not installed ({e}); "
              f"pip install 'atome-core[eval]'", file=sys.stderr)
        return 2
    return lm_eval_adapter.main(args.rest)


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
    p.add_argument("source", help=".pt / .safetensors checkpoint (FP32 shadow weights) or a blob")
    p.add_argument("-o", "--output", required=True, help="the file to write")
    p.add_argument("--codec", default="dense", choices=["dense", "rans", "base3x5", "2bit", "auto"],
                   help="trit codec for every trit section; auto: the smallest per section (default dense)")
    p.add_argument("--float-dtype", default="float32", choices=["float32", "float16"],
                   help="storage of the LayerNorm and SSM vectors (default float32)")
    p.add_argument("--format", default="atmb", choices=["atmb", "atome01", "atome02"])
    p.add_argument("--config", help="model config: preset (60k, 944k), JSON file or JSON; "
                   "default: stored in the source, else read off the weights' shapes")
    p.add_argument("--top-k", type=int, default=4, help="top_k when the config is read off the shapes")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("inspect", help="print a blob's header, sections, bits per trit and CRC status")
    p.add_argument("file")
    p.add_argument("--config", help="config of an ATOME01/02 blob (preset or JSON); default: "
                   "the preset whose size matches")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("generate", help="continue a prompt with the C engine (greedy or seeded sampling)")
    p.add_argument("--blob", required=True, help="an ATMB blob, or an ATOME01 blob (with --config unless a preset fits)")
    p.add_argument("--prompt", required=True, help="the text to continue (UTF-8 bytes are the tokens)")
    p.add_argument("--max-new-tokens", type=int, default=124, help="tokens to generate (default 124)")
    p.add_argument("--max-total", type=int, default=None,
                   help="cap on prompt + generated tokens (the kit's reference stops at 128)")
    p.add_argument("--temperature", type=float, default=0.0, help="0: greedy (default); > 0: sample")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (splitmix64 in the engine)")
    p.add_argument("--window", type=int, default=128, help="attention window in tokens (default 128)")
    p.add_argument("--path", default="f32", choices=["f32", "i8"], help="float or 8-bit activations")
    p.add_argument("--config", help="config of an ATOME01 blob: preset (60k, 944k), JSON file or JSON")
    p.add_argument("--ids", action="store_true", help="print the generated token ids instead of text")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("qemu", help="generate with the engine as firmware on an emulated Cortex-M "
                       "(QEMU MPS2), optionally checked bit for bit against Python")
    p.add_argument("--blob", required=True, help="an ATMB or ATOME01 blob (or a checkpoint: re-encoded 2-bit)")
    p.add_argument("--core", default="m3", choices=["m0", "m3", "m4f", "m7"], help="default m3")
    p.add_argument("--prompt", required=True, help="the text to continue (UTF-8 bytes are the tokens)")
    p.add_argument("--max-new-tokens", type=int, default=48, help="tokens to generate (default 48)")
    p.add_argument("--path", default="i8", choices=["f32", "i8"], help="float or 8-bit activations (default i8)")
    p.add_argument("--window", type=int, default=128, help="attention window in tokens (default 128)")
    p.add_argument("--config", help="config of an ATOME01 blob: preset (60k, 944k), JSON file or JSON")
    p.add_argument("--check", action="store_true", help="compare every logit's bits and every token "
                   "with the Python reference; exit 1 on any difference")
    p.add_argument("--timeout", type=float, default=300, help="kill QEMU after this many seconds")
    p.set_defaults(func=cmd_qemu)

    p = sub.add_parser("train", help="train one cell of chapter 5's size ladder (a family at a size, "
                       "a token budget, a seed) and save the model")
    # choices spelled out (not imported from atome_core.ladder, which loads torch) so `atome`
    # starts fast; tests/test_reversal.py checks they equal ladder.FAMILIES/SIZES/RECIPES
    p.add_argument("--model", required=True, choices=["routed", "vanilla", "modern"], help="model family")
    p.add_argument("--size", required=True, choices=["15k", "60k", "240k", "944k"],
                   help="ladder rung (nominal parameters; exact counts in chapter 5)")
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
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("lm-eval", add_help=False,
                       help="EleutherAI lm-evaluation-harness with `--model atome` registered "
                            "(all arguments go to lm_eval)")
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_lm_eval)

    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
