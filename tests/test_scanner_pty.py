"""The real program in a real pseudo-terminal: ``python -m orderdesk.cli --db … run`` under ``os.openpty``.

A keyboard-wedge scanner is a keyboard: its scans reach the app as bytes on the terminal, many per read
when they come back to back. This writes 100 back-to-back 30-character scans in one ``os.write`` and then
checks the database: every scan counted exactly once, in order. Then it kills the terminal mid-order and
checks that reopening resumes the order with every scan. No sleeps decide anything: the test waits for
the screen to say something, or for the database to hold something, with a generous deadline.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from orderdesk.store import Store
from tests.desks_support import ready_to_pack
from tests.pty_terminal import Terminal

pytestmark = [pytest.mark.pty, pytest.mark.slow]
REPO = Path(__file__).resolve().parent.parent
GTIN = "06901234567892"  # HX-M8
DEADLINE = 90.0  # seconds; only ever reached when something is broken


def wait_until(check: Callable[[], bool], what: str) -> None:
    end = time.monotonic() + DEADLINE
    while time.monotonic() < end:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"never: {what}")


def query(db: Path, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def refused(db: Path) -> list[str]:
    """The codes of refused scans, from the audit trail, in order."""
    import json

    rows = query(db, "SELECT detail FROM audit_record WHERE command='scan_refused' ORDER BY id")
    return [json.loads(str(r[0]))["code"] for r in rows]


@pytest.fixture
def program(desk: Store, tmp_path: Path) -> Callable[[], Terminal]:
    env = {
        **os.environ,
        "TERM": "xterm-256color",
        "LANG": "en_US.UTF-8",
        "ORDERDESK_LANG": "en",
        "TEXTUAL_ANIMATION": "none",
        "ORDERDESK_SOUND": "off",
        "ORDERDESK_LABEL_DIR": str(tmp_path / "labels"),
        "ORDERDESK_LABEL_FORMAT": "zpl",
        "PYTHONPATH": str(REPO),
    }
    env.pop("ORDERDESK_PRINT_COMMAND", None)
    argv = [sys.executable, "-m", "orderdesk.cli", "--db", str(desk.path), "run"]
    started: list[Terminal] = []

    def start() -> Terminal:
        terminal = Terminal(argv, env)
        started.append(terminal)
        return terminal

    yield start  # type: ignore[misc]
    for terminal in started:
        terminal.kill()


def test_back_to_back_scans_in_a_real_terminal_then_kill_and_resume(
    desk: Store, program: Callable[[], Terminal]
) -> None:
    order_no = ready_to_pack(desk, 120, picker="zhao")
    db = desk.path
    terminal = program()
    terminal.wait_for("User name")
    terminal.write(b"%BADGE:B-LIU\r")
    terminal.wait_for("No order open")
    at = terminal.mark()
    terminal.write(order_no.encode() + b"\r")
    terminal.wait_for("Still needed", at)

    # 100 scans of 30 characters, back to back with no gap at all, in one write.
    scans = [f"01{GTIN}21P{i:011d}" for i in range(100)]
    assert all(len(s) == 30 for s in scans)
    # A last, unknown code marks the end: scans are handled in order, so once its refusal is in the audit
    # trail every scan before it has been handled.
    burst = "".join(s + "\r" for s in scans).encode() + b"END-OF-BURST-1\r"
    assert terminal.write(burst) == len(burst)
    wait_until(lambda: refused(db) == ["END-OF-BURST-1"], "the end marker handled")
    rows = query(db, "SELECT serial, qty, undone, source FROM scan ORDER BY id")
    assert [r[0] for r in rows] == [f"P{i:011d}" for i in range(100)]
    assert [r[1:] for r in rows] == [(1, 0, "scanner")] * 100
    assert query(db, "SELECT scanned_qty FROM order_line")[0][0] == 100
    records = "SELECT count(*) FROM audit_record WHERE command='record_scan' AND user_name='liu'"
    assert query(db, records)[0][0] == 100

    # Scanners that end with CR+LF or with Tab, mixed, also back to back.
    more = [f"01{GTIN}21Q{i:011d}" for i in range(20)]
    burst = (
        "".join(s + ("\r\n" if i % 2 else "\t") for i, s in enumerate(more)).encode() + b"END-OF-BURST-2\r\n"
    )
    assert terminal.write(burst) == len(burst)
    wait_until(lambda: refused(db) == ["END-OF-BURST-1", "END-OF-BURST-2"], "the second end marker handled")
    serials = [r[0] for r in query(db, "SELECT serial FROM scan ORDER BY id")]
    assert serials[100:] == [f"Q{i:011d}" for i in range(20)] and len(serials) == 120
    assert query(db, "SELECT scanned_qty FROM order_line")[0][0] == 120

    # Kill the terminal mid-order (not shipped), then open the desk again: the order is back.
    terminal.kill()
    terminal = program()
    terminal.wait_for("User name")
    terminal.write(b"%BADGE:B-LIU\r")
    terminal.wait_for(f"Resumed order {order_no}")
    terminal.wait_for("120/120")
    at = terminal.mark()
    terminal.write(b"%CMD:PRESET:1\r%CMD:SHIP\r")
    terminal.wait_for(f"Shipped {order_no}", at)
    wait_until(lambda: query(db, "SELECT state FROM sales_order")[0][0] == "shipped", "the order shipped")
    assert query(db, "SELECT shipped_qty FROM order_line")[0][0] == 120
    wait_until(lambda: any((Path(db).parent / "labels").glob("*.zpl")), "the label file")
    terminal.quit()
