"""The sales rules through the CLI: `order create` refuses a suspected duplicate unless given a reason, puts
an over-credit order on hold, marks one that needs approval; `order change` files a change request."""

from __future__ import annotations

import json

import pytest

from orderdesk.cli import main
from orderdesk.orders import move_order
from orderdesk.store import Store

CREATE = [
    "order",
    "create",
    "--customer",
    "C001",
    "--line",
    "HX-M8:10",
    "--user",
    "wang",
    "--promised",
    "2026-12-30",
]


def cli(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_a_suspected_duplicate_is_refused_unless_a_reason_is_given(
    desk: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    db = desk.path
    code, out, err = cli(capsys, *CREATE, "--db", db, "--json")
    assert code == 0, err
    first = json.loads(out)["order_no"]
    code, out, err = cli(capsys, *CREATE, "--db", db)
    assert code == 1 and f"duplicate of {first}" in err and err.count("\n") == 1
    code, out, err = cli(capsys, *CREATE, "--db", db, "--duplicate-reason", "紧急补货", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["checks"]["duplicate_of"] == first
    # Free text is kept as "other" with what the person said.
    code, out, _ = cli(capsys, *CREATE, "--db", db, "--duplicate-reason", "客户展会样品")
    assert code == 0 and "looks like SO-D1-0000002 (reason given)" in out
    code, out, _ = cli(capsys, "audit", "--order", "SO-D1-0000003", "--json", "--db", db)
    assert json.loads(out)[0]["detail"]["sales"] == {
        "duplicate_reason": "other",
        "duplicate_note": "客户展会样品",
    }
    code, out, _ = cli(capsys, "audit", "--order", "SO-D1-0000002", "--json", "--db", db)
    assert json.loads(out)[0]["detail"]["sales"] == {"duplicate_reason": "urgent_restock"}


def test_over_credit_goes_on_hold_and_a_large_order_is_marked(
    desk: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    db = desk.path
    code, out, err = cli(
        capsys, "order", "create", "--customer", "C002", "--line", "FL-DN50:20", "--user", "wang", "--db", db
    )
    assert code == 0, err
    assert "On credit hold" in out and "finance is asked to release it" in out
    code, out, _ = cli(
        capsys,
        "order",
        "create",
        "--customer",
        "C001",
        "--line",
        "FL-DN50:600",
        "--user",
        "wang",
        "--db",
        db,
        "--json",
    )
    data = json.loads(out)
    assert (
        data["state"] == "draft"
        and data["checks"]["needs_approval"] is True
        and data["checks"]["approval_roles"] == ["finance"]
    )
    code, out, _ = cli(capsys, "order", "list", "--state", "on_hold", "--json", "--db", db)
    assert json.loads(out)["total"] == 1


def test_chinese_output(desk: Store, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(
        capsys,
        "--lang",
        "zh",
        "order",
        "create",
        "--customer",
        "C002",
        "--line",
        "FL-DN50:20",
        "--user",
        "wang",
        "--db",
        desk.path,
    )
    assert code == 0 and "信用冻结" in out


def test_promising_earlier_than_proposed_needs_a_reason(
    desk: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    from datetime import date, timedelta

    soon = (date.today() + timedelta(days=2)).isoformat()
    base = [
        "order",
        "create",
        "--customer",
        "C001",
        "--line",
        "HX-M8:10",
        "--user",
        "wang",
        "--promised",
        soon,
        "--db",
        desk.path,
    ]
    code, _, err = cli(capsys, *base)
    assert code == 1 and "give a reason" in err
    code, out, err = cli(capsys, *base, "--promised-reason", "客户自提", "--json")
    assert code == 0, err
    assert json.loads(out)["checks"]["short_lead"] is True


def test_order_change_files_a_request_and_approval_makes_a_version(
    desk: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    db = desk.path
    code, out, _ = cli(capsys, *CREATE, "--db", db, "--json")
    no = json.loads(out)["order_no"]
    move_order(desk, order_no=no, to="sign_contract", user="wang")
    code, out, err = cli(
        capsys,
        "order",
        "change",
        no,
        "--qty",
        "HX-M8=50",
        "--reason",
        "客户追加",
        "--user",
        "wang",
        "--db",
        db,
    )
    assert code == 0, err
    assert "Change request #1" in out and "Major" in out and "supervisor" in out
    code, out, _ = cli(capsys, "order", "changes", "--db", db, "--json")
    assert [c["id"] for c in json.loads(out)] == [1]
    code, _, err = cli(capsys, "order", "approve-change", "1", "--user", "wang", "--db", db)
    assert code == 1 and "supervisor" in err
    code, out, _ = cli(capsys, "order", "approve-change", "1", "--user", "sun", "--db", db)
    assert code == 0 and "approved" in out
    code, out, _ = cli(capsys, "order", "versions", no, "--db", db, "--json")
    assert [(v["revision"], v["lines"][0]["quantity"]) for v in json.loads(out)] == [(1, 10), (2, 50)]
    code, out, _ = cli(capsys, "order", "versions", no, "--db", db)
    assert code == 0 and "Version 1 → 2" in out


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["--qty", "HX-M8"], 2, "SKU=QTY"),
        (["--qty", "HX-M8=lots"], 2, "whole number"),
        (["--promised", "soon"], 2, "date"),
        (["--qty", "HX-M8=5", "--user", "chen"], 1, "may not change lines.quantity"),
        (["--qty", "NOPE=5"], 1, "no product"),
    ],
)
def test_order_change_errors(
    desk: Store, capsys: pytest.CaptureFixture[str], args: list[str], code: int, needle: str
) -> None:
    _, out, _ = cli(capsys, *CREATE, "--db", desk.path, "--json")
    no = json.loads(out)["order_no"]
    user = [] if "--user" in args else ["--user", "wang"]
    got, out, err = cli(capsys, "order", "change", no, "--reason", "试", *args, *user, "--db", desk.path)
    assert got == code and needle in err and err.count("\n") == 1, (out, err)
