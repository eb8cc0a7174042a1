"""Modules and functions fit in a head: a module over 400 lines or a function whose body is
over 60 lines says why in its docstring ("... over the usual size because ..."), or this test
names it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("falcoctl_py", "detector", "tools")
MODULE_LINES = 400
FUNCTION_LINES = 60
REASON = re.compile(r"usual (module |function )?size because", re.IGNORECASE)


def _sources() -> list[Path]:
    return [
        path
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if not path.name.endswith("_pb2.py") and not path.name.endswith("_pb2_grpc.py")
    ]


def _has_reason(node: ast.AST) -> bool:
    kinds = (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    doc = ast.get_docstring(node) if isinstance(node, kinds) else None
    return bool(doc and REASON.search(" ".join(doc.split())))


def _body_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    body = node.body
    first = body[0] if body else None
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
        body = body[1:]
    if not body:
        return 0
    return (body[-1].end_lineno or body[-1].lineno) - body[0].lineno + 1


def test_modules_fit_in_a_head() -> None:
    long = []
    for path in _sources():
        text = path.read_text()
        lines = text.count("\n")
        if lines > MODULE_LINES and not _has_reason(ast.parse(text)):
            long.append(f"{path.relative_to(ROOT)}: {lines} lines")
    assert long == []


def test_functions_fit_in_a_head() -> None:
    long = []
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                size = _body_lines(node)
                if size > FUNCTION_LINES and not _has_reason(node):
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {size} lines")
    assert long == []
