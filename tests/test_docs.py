"""The documentation site: its examples run, and it builds in strict mode.

Every ```python block of the guides below runs, in order, in one namespace per page,
as a reader would paste them into one session. A top-level ``print(...)`` whose line
ends with ``# text`` (or that is followed by a comment line ``# text``) must print
exactly ``text``, so a page cannot claim an output its code does not give.

The site is built with ``mkdocs build --strict`` (a broken link, a missing page or an
unresolved API reference fails). mkdocs comes with the ``dev`` extra; where it is
missing the build test skips, except in CI (``CI`` or ``FNNET_REQUIRE_REFERENCES``
set), where it fails.
"""
import ast
import contextlib
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

# Pages whose examples run (the getting-started guide, the concept pages, attention: all cheap).
RUNNABLE = ["getting-started.md", "concepts/modules.md", "concepts/keys-and-state.md",
            "concepts/optimizers.md", "attention.md", "detection.md", "style-and-inspection.md",
            "howto/freeze-layers.md", "word-embeddings.md", "captioning-and-audio.md", "faces.md",
            "text-classification.md"]

_BLOCK = re.compile(r"^```python[^\n]*\n(.*?)^```", re.S | re.M)


def python_blocks(text: str) -> list[tuple[int, str]]:
    """``(first line number, source)`` of each ```python block of a Markdown page."""
    return [(text[:m.start(1)].count("\n") + 1, m.group(1)) for m in _BLOCK.finditer(text)]


def expected_output(lines: list[str], stmt: ast.stmt) -> str | None:
    """The output a top-level ``print`` statement claims: its trailing ``# text``
    comment, or else a comment line right below it; None when it claims nothing."""
    last = lines[stmt.end_lineno - 1]
    tokens = last.split("  # ", 1)
    if len(tokens) == 2:
        return tokens[1].strip()
    if stmt.end_lineno < len(lines) and lines[stmt.end_lineno].lstrip().startswith("# "):
        return lines[stmt.end_lineno].lstrip()[2:].strip()
    return None


def _is_print(stmt: ast.stmt) -> bool:
    return (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call)
            and isinstance(stmt.value.func, ast.Name) and stmt.value.func.id == "print")


def run_page(page: str) -> int:
    """Run every python block of ``page`` in one namespace; check claimed outputs.
    Returns the number of claims checked."""
    text = (DOCS / page).read_text()
    blocks = python_blocks(text)
    assert blocks, f"{page}: no python block"
    namespace = {"__name__": f"docs.{page}"}
    checked = 0
    for first_line, source in blocks:
        lines = source.splitlines()
        tree = ast.parse(source, filename=page)
        for stmt in tree.body:
            where = f"{page}, line {first_line + stmt.lineno - 1}"
            code = compile(ast.Module([stmt], type_ignores=[]), where, "exec")
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                exec(code, namespace)  # noqa: S102 - the page's own example
            claim = expected_output(lines, stmt) if _is_print(stmt) else None
            if claim is not None:
                printed = out.getvalue().rstrip("\n")
                assert printed == claim, f"{where}: the page says it prints {claim!r}, it prints {printed!r}"
                checked += 1
    return checked


def test_blocks_are_found():
    text = "a\n```python\nx = 1\n```\nb\n```\nnot python\n```\n```python\nprint(x)  # 1\n```\n"
    assert python_blocks(text) == [(3, "x = 1\n"), (10, "print(x)  # 1\n")]


def test_a_false_claim_fails(tmp_path, monkeypatch):
    page = tmp_path / "page.md"
    page.write_text("```python\nx = 2\nprint(x + 1)  # 4\n```\n")
    monkeypatch.setattr(sys.modules[__name__], "DOCS", tmp_path)
    with pytest.raises(AssertionError, match="says it prints '4', it prints '3'"):
        run_page("page.md")
    page.write_text("```python\nx = 2\nprint(x + 1)\n# 3\n```\n")
    assert run_page("page.md") == 1


@pytest.mark.parametrize("page", RUNNABLE)
def test_examples_run(page):
    checked = run_page(page)
    # Each page states what its examples print (and the guide at least four things).
    assert checked >= (4 if page == "getting-started.md" else 1), f"{page}: {checked} printed claims"


def _required() -> bool:
    return any(os.environ.get(v, "") not in ("", "0") for v in ("CI", "FNNET_REQUIRE_REFERENCES"))


def test_site_builds_strict(tmp_path):
    try:
        import mkdocs  # noqa: F401
        import mkdocstrings  # noqa: F401
        import material  # noqa: F401
    except ImportError as exc:
        if _required():
            pytest.fail(f"the docs packages are required in CI but missing ({exc}); "
                        "install them with pip install -e '.[dev]'", pytrace=False)
        pytest.skip(f"docs packages missing ({exc}); pip install -e '.[docs]'")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet",
                           "--site-dir", str(tmp_path / "site")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
    site = tmp_path / "site"
    for page in ("index.html", "getting-started/index.html", "reference/nn/index.html",
                 "gallery/index.html"):
        assert (site / page).is_file(), f"the site has no {page}"
    # The API reference is generated from the docstrings: fit's Args appear.
    assert "early_stopping" in (site / "reference/train/index.html").read_text()
    # Nothing is fetched by a reader's browser either: no external fonts or scripts.
    for html in site.rglob("*.html"):
        text = html.read_text()
        assert "fonts.googleapis" not in text and "fonts.gstatic" not in text, html
