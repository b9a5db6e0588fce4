"""The README's `atome` command lines are ones the command accepts (parsed, not run)."""
import re
import shlex
from pathlib import Path

from atome_core import cli

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[list[str]]:
    text = (ROOT / "README.md").read_text().replace("\\\n", " ")
    lines = [line.split("  #")[0].strip() for block in re.findall(r"```bash\n(.*?)```", text, re.DOTALL)
             for line in block.splitlines()]
    return [shlex.split(line)[1:] for line in lines if line.startswith(".venv/bin/atome ")]


def test_every_atome_line_in_the_readme_parses():
    commands = readme_commands()
    assert {argv[0] for argv in commands} >= {"book", "corpus", "train", "export", "inspect", "generate", "qemu",
                                              "sweep"}
    own = {"corpus": cli.corpus_parser, "atto": cli.atto_parser}
    for argv in commands:
        if argv[0] in own:
            own[argv[0]]().parse_args(argv[1:])
        else:
            cli.build_parser().parse_args(argv)
