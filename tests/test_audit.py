"""The audit trail: one record per command, append-only, hash-chained, searchable, tamper-evident."""

from __future__ import annotations

import sqlite3
from datetime import timedelta

import pytest
from sqlalchemy import text

from orderdesk import audit
from orderdesk.clock import FixedClock
from orderdesk.orders import add_note, create_order, move_order
from orderdesk.store import Store


def _trail(store: Store, **filters: object) -> list[audit.AuditEntry]:
    with store.read() as session:
        return audit.search(session, **filters)  # type: ignore[arg-type]


def test_search_by_order_user_and_time(desk: Store, clock: FixedClock) -> None:
    start = clock()
    a = create_order(desk, customer="C001", lines=[("HX-M8", 10)], user="wang")
    clock.advance(hours=2)
    add_note(desk, order_no=a.order_no, text="客户要求加急", user="zhao")
    clock.advance(hours=2)
    b = create_order(desk, customer="C003", lines=[("FL-DN50", 1)], user="wang")

    assert [e.command for e in _trail(desk, order_no=a.order_no)] == ["create_order", "add_note"]
    assert [e.order_no for e in _trail(desk, user_name="zhao")] == [a.order_no]
    window = _trail(desk, since=start + timedelta(hours=1), until=start + timedelta(hours=3))
    assert [e.command for e in window] == ["add_note"]
    assert [e.order_no for e in _trail(desk, since=start + timedelta(hours=3))] == [b.order_no]


def test_verify_passes_on_an_honest_trail(desk: Store) -> None:
    o = create_order(desk, customer="C001", lines=[("HX-M8", 10)], user="wang")
    move_order(desk, order_no=o.order_no, to="contract_signed", user="wang")
    with desk.read() as session:
        count, breaks = audit.verify(session)
    assert count >= 10 and breaks == []


def test_the_database_refuses_edits_and_deletions(desk: Store) -> None:
    con = sqlite3.connect(desk.path)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        con.execute("UPDATE audit_record SET user_name = 'mallory' WHERE id = 3")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        con.execute("DELETE FROM audit_record WHERE id = 3")
    con.close()


def _tamper(store: Store, sql: str) -> None:
    """What someone with the file and a SQLite shell could do: drop the triggers, then change history."""
    con = sqlite3.connect(store.path)
    con.execute("DROP TRIGGER audit_record_no_update")
    con.execute("DROP TRIGGER audit_record_no_delete")
    con.execute(sql)
    con.commit()
    con.close()


def test_verify_detects_an_edited_record(desk: Store) -> None:
    _tamper(desk, "UPDATE audit_record SET detail = '{\"credit_limit\":999999999}' WHERE id = 9")
    with desk.read() as session:
        _, breaks = audit.verify(session)
    assert [b.record_id for b in breaks] == [9]
    assert "edited" in str(breaks[0].problem)


def test_verify_detects_a_deleted_record(desk: Store) -> None:
    _tamper(desk, "DELETE FROM audit_record WHERE id = 5")
    with desk.read() as session:
        _, breaks = audit.verify(session)
    assert breaks and breaks[0].record_id == 5
    assert "missing" in str(breaks[0].problem)


def test_verify_detects_a_deleted_tail_record_rewritten(desk: Store) -> None:
    """Deleting a record and re-hashing it away still breaks the link to the next record."""
    _tamper(desk, "UPDATE audit_record SET hash = 'f' || substr(hash, 2) WHERE id = 4")
    with desk.read() as session:
        _, breaks = audit.verify(session)
    assert {b.record_id for b in breaks} == {4, 5}


def test_pins_never_reach_the_trail(desk: Store) -> None:
    with desk.read() as session:
        details = session.exec(text("SELECT detail FROM audit_record WHERE command = 'add_user'")).all()
    assert details and not any("1234" in d[0] or "B-LIU" in d[0] for d in details)


def test_latest_returns_the_newest_records_oldest_first(desk: Store) -> None:
    o = create_order(desk, customer="C001", lines=[("HX-M8", 10)], user="wang")
    for i in range(5):
        add_note(desk, order_no=o.order_no, text=f"note {i}", user="wang")
    newest = _trail(desk, order_no=o.order_no, limit=2, latest=True)
    assert [e.detail["text"] for e in newest] == ["note 3", "note 4"]
    assert [e.command for e in _trail(desk, order_no=o.order_no, limit=2)] == ["create_order", "add_note"]
