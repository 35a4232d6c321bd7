"""The core never imports Textual, screens or sync; only the CLI (the composition root) may."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = ("textual", "screens", "sync")


def test_no_core_module_imports_the_ui_or_sync() -> None:
    offenders = []
    for path in (ROOT / "orderdesk").rglob("*.py"):
        if "cli" in path.relative_to(ROOT / "orderdesk").parts[:1]:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [
                f"{path.relative_to(ROOT)}:{node.lineno} {n}" for n in names if n.split(".")[0] in FORBIDDEN
            ]
    assert not offenders, offenders


def test_importing_the_whole_core_loads_no_textual() -> None:
    code = (
        "import sys, pkgutil, importlib, orderdesk\n"
        "for m in pkgutil.walk_packages(orderdesk.__path__, 'orderdesk.'):\n"
        "    if not m.name.startswith('orderdesk.cli') and '.migrations' not in m.name: importlib.import_module(m.name)\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('textual', 'screens', 'sync')]\n"
        "print(bad); sys.exit(1 if bad else 0)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_import_linter_contract_holds() -> None:
    lint = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "KEPT" in result.stdout
