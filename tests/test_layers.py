"""The package's layers: who may import whom, one home per utility, files a reader can finish."""
import ast
import subprocess
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "atome_core"

# Lowest first. A module may import its own layer and the layers below it, never above.
# Shared helpers (paths, files, progress) sit under everything.
LAYERS = [
    {"paths", "files", "progress", "__init__"},
    {"data"},
    {"quant"},
    {"models"},
    {"formats"},
    {"train", "ledger", "evaluate", "recipe", "distributed"},
    {"engine"},
    {"firmware"},
    {"harness"},
    {"chapters"},
    {"book"},
    {"cli", "cli_commands"},
]


def layer_of(module: str) -> int:
    """The layer of 'atome_core.<top>...' by its first component under atome_core."""
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else "__init__"
    for i, members in enumerate(LAYERS):
        if top in members:
            return i
    raise AssertionError(f"{module}: no layer declared for atome_core.{top}")


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) of every atome_core import in the file, lazy ones included."""
    tree = ast.parse(path.read_text())
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rsplit(".", 1)[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.startswith("atome_core")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("atome_core"):
                if node.module is None or target.count(".") == 0:   # from . import x
                    out += [(node.lineno, f"{target}.{a.name}") for a in node.names]
                else:
                    out.append((node.lineno, target))
    return out


SOURCES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_layer():
    for path in SOURCES:
        layer_of(module_name(path) if path.name != "__init__.py" or path.parent != PACKAGE else "atome_core")


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_imports_a_layer_above_its_own(path):
    me = module_name(path)
    mine = layer_of(me) if path.parent != PACKAGE or path.name != "__init__.py" else 0
    upward = [f"line {line}: {target}" for line, target in imports_of(path) if layer_of(target) > mine]
    assert not upward, f"{me} (layer {sorted(LAYERS[mine])}) imports upward: {upward}"


def test_the_layer_check_catches_an_upward_import(tmp_path):
    # the check itself can fail: a models file importing chapters is reported
    fake = PACKAGE / "models" / "_layer_probe.py"
    fake.write_text("from ..chapters import corpora\n")
    try:
        assert [t for _, t in imports_of(fake)] == ["atome_core.chapters"]
        assert layer_of("atome_core.chapters") > layer_of(module_name(fake))
    finally:
        fake.unlink()


def test_no_file_is_longer_than_a_reader_finishes():
    long = {str(p.relative_to(PACKAGE)): n for p in SOURCES if (n := len(p.read_text().splitlines())) > 600}
    assert not long, f"over 600 lines: {long}"


def test_one_atomic_write_in_the_package():
    out = subprocess.run(["git", "grep", "-n", r"def write_atomic\|mkstemp", "--", "atome_core"],
                         cwd=PACKAGE.parent, capture_output=True, text=True).stdout.strip().splitlines()
    assert len(out) == 2 and all(line.startswith("atome_core/files.py") for line in out), out
