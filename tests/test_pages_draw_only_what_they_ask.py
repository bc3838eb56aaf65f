"""No page draws text its code did not ask for: a bare expression in a page script (an attribute docstring, a
leftover value) is drawn by Streamlit's magic. The app turns magic off (.streamlit/config.toml); this holds the
page files to the rule too, since a page may be served with magic on (another config, `streamlit run pages/x.py`)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import tomllib

REPO = Path(__file__).resolve().parents[1]
# The scripts Streamlit runs: app.py and every page it declares (helpers such as pages/ui.py are imported modules,
# which magic never touches).
PAGE_SCRIPTS = [REPO / "app.py", *(REPO / p for p in re.findall(r'st\.Page\("([^"]+)"', (REPO / "app.py").read_text()))]


def drawn_by_magic(tree: ast.Module) -> list[int]:
    """Lines of the statements magic would draw: bare expressions that are not calls, yields, awaits or docstrings
    (the first statement of the module, a function or a class), at any depth (magic recurses into bodies)."""
    lines: list[int] = []

    def visit(body: list[ast.stmt], owner: ast.AST) -> None:
        for i, node in enumerate(body):
            if isinstance(node, ast.Expr):
                docstring = (i == 0 and isinstance(owner, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef
                                                   | ast.ClassDef)
                             and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str))
                if not docstring and not isinstance(node.value, ast.Call | ast.Yield | ast.YieldFrom | ast.Await):
                    lines.append(node.lineno)
            for field in ("body", "orelse", "finalbody", "handlers"):
                inner = getattr(node, field, None)
                if isinstance(inner, list) and inner and isinstance(inner[0], ast.stmt | ast.excepthandler):
                    visit([n for n in inner if isinstance(n, ast.stmt)], node)
                    for h in inner:
                        if isinstance(h, ast.ExceptHandler):
                            visit(h.body, h)

    visit(tree.body, tree)
    return lines


@pytest.mark.parametrize("script", PAGE_SCRIPTS, ids=lambda p: str(p.relative_to(REPO)))
def test_a_page_script_holds_no_bare_expression_for_magic_to_draw(script: Path) -> None:
    lines = drawn_by_magic(ast.parse(script.read_text(encoding="utf-8")))
    assert not lines, f"{script.name}: magic would draw the expressions on lines {lines}; use a # comment"


def test_the_rule_catches_an_attribute_docstring_and_a_bare_value_but_not_calls_or_docstrings() -> None:
    code = ('"""Module docstring."""\nX = 1\n"""What X is."""\nimport streamlit as st\nst.write("ok")\n'
            'def f():\n    """Doc."""\n    y = 2\n    y\n    if y:\n        "shown"\n')
    assert drawn_by_magic(ast.parse(code)) == [3, 9, 11]


def test_every_declared_page_is_checked() -> None:
    assert {p.name for p in PAGE_SCRIPTS} == {"app.py", "home.py", "data.py", "train.py", "explore.py", "runs.py",
                                              "evaluate.py", "chat.py"}


def test_the_app_turns_magic_off() -> None:
    config = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text(encoding="utf-8"))
    assert config["runner"]["magicEnabled"] is False
