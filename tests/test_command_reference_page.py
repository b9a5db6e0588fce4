"""book/commands.md renders: the page and the reference `atome commands` writes for it,
built alone by Jupyter Book with warnings as errors (the whole book: test_book_render)."""
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_command_reference_page_renders_without_warnings(tmp_path):
    from atome_core.book.runner import command_reference
    (tmp_path / "book" / "_generated").mkdir(parents=True)
    shutil.copy(ROOT / "book" / "commands.md", tmp_path / "book" / "commands.md")
    (tmp_path / "book" / "_generated" / "commands.md").write_text(command_reference())
    (tmp_path / "_config.yml").write_text("title: reference\nonly_build_toc_files: true\n"   # as the book's
                                          "exclude_patterns: [_build, book/_generated]\n"
                                          "execute:\n  execute_notebooks: 'off'\n")
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: book/commands\n")
    jb = Path(sys.executable).parent / "jupyter-book"
    proc = subprocess.run([str(jb), "build", str(tmp_path), "-W", "-n", "--keep-going"], capture_output=True,
                          text=True, check=False, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    html = (tmp_path / "_build" / "html" / "book" / "commands.html").read_text()
    for name in ("atome generate", "atome qemu", "atome atto train", "ATOME_TINYSTORIES", "--max-new-tokens"):
        assert name in html, name
    from test_pages import page_problems  # what a reader must never see on any page
    assert page_problems(html) == []
