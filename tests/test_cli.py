"""The CLI contract: --db everywhere, stable --json, one-line errors, exit 1 refused / 2 bad usage."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from orderdesk.cli import main
from orderdesk.store import Store

ROOT = Path(__file__).resolve().parent.parent


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_init_creates_and_is_idempotent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "sub" / "new.db"
    assert cli(capsys, "init", "--db", db)[0] == 0
    assert db.exists()
    code, out, _ = cli(capsys, "--db", db, "init")
    assert code == 0 and "ready" in out


def test_order_lifecycle_through_the_cli(desk: Store, capsys: pytest.CaptureFixture[str]) -> None:
    db = desk.path
    code, out, err = cli(
        capsys,
        "order",
        "create",
        "--db",
        db,
        "--customer",
        "C001",
        "--line",
        "HX-M8:12",
        "--line",
        "FL-DN50:1",
        "--channel",
        "taobao",
        "--promised",
        "2026-12-20",
        "--rush",
        "--user",
        "wang",
        "--json",
    )
    assert code == 0, err
    order = json.loads(out)
    assert order["order_no"] == "SO-D1-0000001" and order["state"] == "draft" and order["rush"] is True
    assert order["lines"][0] == {
        "line_no": 1,
        "sku": "HX-M8",
        "name": "六角螺栓 M8x40",
        "unit": "个",
        "barcode": "6901234567892",
        "barcodes": ["6901234567892"],
        "quantity": 12,
        "scanned_qty": 0,
        "shipped_qty": 0,
        "batch": "",
        "unit_price": 150,
        "hazard": "none",
    }
    code, out, _ = cli(
        capsys, "order", "move", order["order_no"], "contract_signed", "--user", "wang", "--db", db
    )
    assert code == 0 and "Contract signed" in out
    code, out, _ = cli(capsys, "order", "list", "--state", "contract_signed", "--json", "--db", db)
    listed = json.loads(out)
    assert listed["total"] == 1 and listed["orders"][0]["order_no"] == order["order_no"]
    code, out, _ = cli(capsys, "order", "show", order["order_no"].lower(), "--json", "--db", db)
    shown = json.loads(out)
    assert shown["version"] == 2 and [t["command"] for t in shown["timeline"]] == [
        "create_order",
        "move_order",
    ]
    code, out, _ = cli(capsys, "order", "show", order["order_no"], "--user", "liu", "--json", "--db", db)
    assert "amount" not in json.loads(out)
    code, out, _ = cli(capsys, "audit", "--order", order["order_no"], "--json", "--db", db)
    assert [e["user"] for e in json.loads(out)] == ["wang", "wang"]
    code, out, _ = cli(capsys, "audit", "--verify", "--db", db)
    assert code == 0 and "intact" in out
    code, out, _ = cli(capsys, "order", "show", order["order_no"], "--db", db)
    assert code == 0 and "六角螺栓" in out


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["order", "show", "SO-D1-9999999"], 1, "There is no order SO-D1-9999999"),
        (["order", "move", "SO-D1-9999999", "shipped", "--user", "wang"], 1, "There is no order"),
        (["order", "create", "--customer", "C001", "--line", "HX-M8", "--user", "wang"], 2, "SKU:QTY"),
        (["order", "create", "--customer", "C001", "--line", "HX-M8:1", "--user", "liu"], 1, "may not"),
        (
            [
                "order",
                "create",
                "--customer",
                "C001",
                "--line",
                "HX-M8:1",
                "--user",
                "wang",
                "--promised",
                "soon",
            ],
            2,
            "date",
        ),
        (["order", "list", "--state", "limbo"], 1, "Unknown state limbo"),
        (["order", "list", "--limit", "0"], 2, "limit"),
        (["order", "frobnicate"], 2, "frobnicate"),
        (["user", "add", "bob", "--role", "chef"], 1, "Unknown role chef"),
        (["audit", "--since", "yesterday"], 2, "--since"),
        (["--lang", "fr", "order", "list"], 2, "fr"),
    ],
)
def test_errors_are_one_line_with_the_right_exit_code(
    desk: Store, capsys: pytest.CaptureFixture[str], args: list[str], code: int, needle: str
) -> None:
    got, out, err = cli(capsys, *args, *([] if args[0].startswith("--") else ["--db", desk.path]))
    assert got == code, (out, err)
    assert needle in err and err.count("\n") == 1 and "Traceback" not in err


def test_chinese_errors(desk: Store, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "--lang", "zh", "order", "show", "SO-D1-0000042", "--db", desk.path)
    assert code == 1 and "没有订单 SO-D1-0000042" in err


def test_missing_database_is_explained(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "order", "list", "--db", tmp_path / "none.db")
    assert code == 1 and "orderdesk init" in err


def test_bad_workflow_file_names_file_and_line(
    desk: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "ours.toml"
    text = (
        (ROOT / "data" / "workflow.toml")
        .read_text(encoding="utf-8")
        .replace('to = "shipped"', 'to = "shiped"', 1)
    )
    bad.write_text(text, encoding="utf-8")
    line = text[: text.index('to = "shiped"')].count("\n") + 1
    code, _, err = cli(capsys, "--workflow", bad, "order", "list", "--db", desk.path)
    assert code == 1 and f"ours.toml:{line}" in err and "shiped" in err


def test_user_commands(store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(
        capsys,
        "user",
        "add",
        "xiaoli",
        "--role",
        "warehouse",
        "--pin",
        "4321",
        "--badge",
        "B-XL",
        "--db",
        store.path,
    )
    assert code == 0 and "xiaoli" in out
    code, out, _ = cli(capsys, "user", "list", "--json", "--db", store.path)
    users = {u["name"]: u for u in json.loads(out)}
    assert users["xiaoli"] == {
        "name": "xiaoli",
        "display_name": "xiaoli",
        "roles": ["warehouse"],
        "has_pin": True,
        "has_badge": True,
        "active": True,
    }


def test_locked_database_from_the_real_command(desk: Store) -> None:
    """A second program holding the write lock: the CLI says so in one line, exit 1, no traceback."""
    blocker = sqlite3.connect(desk.path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "orderdesk.cli",
                "order",
                "create",
                "--db",
                str(desk.path),
                "--customer",
                "C001",
                "--line",
                "HX-M8:1",
                "--user",
                "wang",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
            check=False,
        )
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert result.returncode == 1, result.stderr
    assert "busy" in result.stderr and "Traceback" not in result.stderr
