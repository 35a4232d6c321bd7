# ruff: noqa: F811 - pytest fixtures are imported from tests/sync_fixtures.py
"""Two desks changing the same things: state moves (first to arrive wins, the loser is told why), free-text
edits (last writer wins in server order; a stale edit of a field someone else changed waits for a person),
stock deltas that may not go below zero, and pulls that are idempotent — on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from orderdesk import audit
from orderdesk import replication as rep
from orderdesk.catalog import add_customer
from orderdesk.errors import Refused, StoreError
from orderdesk.labels import load_presets
from orderdesk.orders import add_note, edit_order, move_order, show_order
from orderdesk.scanning import (
    ShippingSettings,
    choose_packing_preset,
    local_today,
    open_for_packing,
    order_scans,
    park_order,
    record_scan,
    record_waybill,
    reset_packing,
    ship_order,
)
from orderdesk.stock import adjust_stock
from orderdesk.store import Store
from tests.desks_support import ready_to_pack
from tests.sync_fixtures import (  # noqa: F401
    any_world,
    pg_cluster,
    pg_template,
    pg_world,
    sqlite_template,
    world,
)
from tests.sync_harness import READY_ORDER, World, business_state, converge, table_count


def stock_of(store, sku: str) -> int:  # type: ignore[no-untyped-def]
    from sqlalchemy import text

    with store.read() as session:
        return int(
            session.connection()
            .execute(text("SELECT stock_on_hand FROM product WHERE sku = :sku"), {"sku": sku})
            .scalar_one()
        )


@pytest.mark.parametrize("first", ["ship", "cancel"])
def test_two_desks_ship_and_cancel_the_same_order(any_world: World, first: str) -> None:
    w = any_world
    move_order(w.desks["a"], order_no=READY_ORDER, to="ship", user="liu")
    move_order(w.desks["b"], order_no=READY_ORDER, to="cancel", user="wang")
    winner, loser = ("a", "b") if first == "ship" else ("b", "a")
    w.sync(winner)
    report = w.sync(loser)
    assert report.rejected == 1 and report.applied == 0
    [rejection] = rep.rejections(w.desks[loser])
    assert rejection.code == "state_conflict" and rejection.is_conflict
    expected = "Shipped" if first == "ship" else "Cancelled"
    text = str(rejection.reason)
    assert f"already moved to {expected}" in text and "first change to reach the central API wins" in text
    assert rejection.reason.render("zh") != text  # the loser's desk shows it in its user's language
    converge(w)
    state = "shipped" if first == "ship" else "cancelled"
    assert {show_order(d, READY_ORDER).state for d in [w.store, *w.desks.values()]} == {state}
    assert rep.rejections(w.desks[winner]) == []
    assert rep.desk_sync_state(w.desks[loser]).rejected == 1


def test_stale_edit_of_the_same_field_is_kept_as_a_conflict(any_world: World) -> None:
    w = any_world
    edit_order(
        w.desks["a"], order_no=READY_ORDER, changes={"ship_address": "上海市浦东新区 1 号"}, user="wang"
    )
    edit_order(w.desks["b"], order_no=READY_ORDER, changes={"ship_address": "杭州市西湖区 2 号"}, user="wang")
    w.sync("a")
    report = w.sync("b")
    assert report.rejected == 1
    [conflict] = rep.rejections(w.desks["b"])
    assert conflict.code == "edit_conflict"
    assert "上海市浦东新区 1 号" in str(conflict.reason) and "杭州市西湖区 2 号" in str(conflict.reason)
    converge(w)
    assert show_order(w.desks["b"], READY_ORDER).ship_address == "上海市浦东新区 1 号"
    # The supervisor keeps desk b's address: it is applied again, now based on the current version.
    rep.reapply_rejection(w.desks["b"], conflict.op_id, user="sun")
    assert rep.rejections(w.desks["b"]) == []
    converge(w)
    assert show_order(w.store, READY_ORDER).ship_address == "杭州市西湖区 2 号"


def test_edit_after_seeing_the_other_change_is_last_writer_wins(world: World) -> None:
    edit_order(world.desks["a"], order_no=READY_ORDER, changes={"notes": "第一版"}, user="wang")
    world.sync("a")
    world.sync("b")  # b has seen a's notes
    edit_order(world.desks["b"], order_no=READY_ORDER, changes={"notes": "第二版"}, user="wang")
    edit_order(
        world.desks["a"], order_no=READY_ORDER, changes={"notes": "第三版"}, user="wang"
    )  # a's own, later
    assert world.sync("b").rejected == 0
    assert world.sync("a").rejected == 1  # a had not seen b's edit: a conflict, not a silent overwrite
    converge(world)
    assert show_order(world.store, READY_ORDER).notes == "第二版"


def test_concurrent_edits_of_different_fields_both_apply(world: World) -> None:
    edit_order(world.desks["a"], order_no=READY_ORDER, changes={"notes": "易碎"}, user="wang")
    edit_order(world.desks["b"], order_no=READY_ORDER, changes={"ship_address": "广州市天河区"}, user="wang")
    assert world.sync("a").applied == 1
    assert world.sync("b").applied == 1
    converge(world)
    detail = show_order(world.store, READY_ORDER)
    assert (detail.notes, detail.ship_address) == ("易碎", "广州市天河区")


def test_concurrent_edits_to_the_same_value_are_not_a_conflict(world: World) -> None:
    for desk in ("a", "b"):
        edit_order(world.desks[desk], order_no=READY_ORDER, changes={"notes": "同一个值"}, user="wang")
    assert world.sync("a").applied == 1
    assert world.sync("b").applied == 1


def test_dismissed_conflict_keeps_the_central_value(world: World) -> None:
    edit_order(world.desks["a"], order_no=READY_ORDER, changes={"waybill": "SF-A"}, user="liu")
    edit_order(world.desks["b"], order_no=READY_ORDER, changes={"waybill": "SF-B"}, user="liu")
    world.sync("a")
    world.sync("b")
    [conflict] = rep.rejections(world.desks["b"])
    rep.resolve_rejection(world.desks["b"], conflict.op_id, user="sun")
    assert rep.rejections(world.desks["b"]) == []
    assert len(rep.rejections(world.desks["b"], include_resolved=True)) == 1
    converge(world)
    assert show_order(world.desks["b"], READY_ORDER).waybill == "SF-A"


def test_stock_deltas_from_two_desks_never_go_below_zero(any_world: World) -> None:
    w = any_world
    assert stock_of(w.store, "BR-6204") == 5
    adjust_stock(w.desks["a"], sku="BR-6204", delta=-3, user="liu", reason="破损")
    adjust_stock(w.desks["b"], sku="BR-6204", delta=-3, user="liu", reason="领用")
    with pytest.raises(Refused):
        adjust_stock(w.desks["b"], sku="BR-6204", delta=-3, user="liu")  # the desk itself refuses too
    w.sync("a")
    report = w.sync("b")
    assert report.rejected == 1 and rep.rejections(w.desks["b"])[0].code == "stock_below_zero"
    adjust_stock(w.desks["b"], sku="BR-6204", delta=10, user="liu")
    adjust_stock(w.desks["a"], sku="BR-6204", delta=-1, user="liu")
    converge(w)
    assert stock_of(w.store, "BR-6204") == 5 - 3 + 10 - 1
    assert all(stock_of(d, "BR-6204") == 11 for d in w.desks.values())


def test_pulling_the_same_page_twice_changes_nothing(world: World) -> None:
    add_note(world.desks["a"], order_no=READY_ORDER, text="一次", user="liu")
    edit_order(world.desks["a"], order_no=READY_ORDER, changes={"notes": "x"}, user="wang")
    world.sync("a")
    page = rep.changes_after(world.store, rep.get_link(world.desks["b"]).cursor)  # type: ignore[union-attr]
    assert page.entries
    b = world.desks["b"]
    rep.apply_changes(b, page.entries, next_cursor=page.next_after or 0)

    def state() -> tuple[object, ...]:
        return business_state(b), table_count(b, "audit_record"), table_count(b, "order_note"), notes_of(b)

    before = state()
    assert before[0] == business_state(world.store)
    # The same page again (a response applied, then received again): no row, history entry or note twice.
    assert rep.apply_changes(b, page.entries, next_cursor=page.next_after or 0) == 0
    assert state() == before
    # Even with the cursor moved back, images are applied only if newer and a note is one note. (Another
    # desk's history is kept once by the cursor alone, which moves in the same transaction as it.)
    with b.write() as session:
        session.connection().exec_driver_sql("UPDATE sync_link SET cursor = 0")
    assert rep.apply_changes(b, page.entries, next_cursor=page.next_after or 0) == 0
    after = state()
    assert (after[0], after[2], after[3]) == (before[0], before[2], before[3])


def notes_of(store: Store) -> list[tuple[str | None, str, str]]:
    """The notes on ``READY_ORDER``: (the op that added it, when, what), oldest first."""
    with store.read() as session:
        rows = session.connection().exec_driver_sql(
            "SELECT order_note.op_id, order_note.at, order_note.text FROM order_note "
            "JOIN sales_order ON sales_order.id = order_note.order_id "
            f"WHERE sales_order.order_no = '{READY_ORDER}' ORDER BY order_note.at, order_note.id"
        )
        return [(op_id, str(at)[:19], text) for op_id, at, text in rows]


def test_a_desks_note_comes_back_as_the_same_note_with_the_central_apis_time(any_world: World) -> None:
    """A note is an entry of its own, named by the op that added it: the desk's own note and the central
    API's copy of it are one note, which ends with the central API's time (the desk's clock is 3 h behind),
    on every desk. The order's image is not published again for a note."""
    w = any_world
    a, b = w.desks["a"], w.desks["b"]
    w.store.clock.advance(hours=3)  # type: ignore[attr-defined]
    add_note(a, order_no=READY_ORDER, text="到货后请电话联系", user="liu")
    [(op_id, made_at, _)] = [n for n in notes_of(a) if n[2] == "到货后请电话联系"]
    assert op_id is not None and made_at == "2026-11-20 08:00:00"
    before = table_count(w.store, "sync_change")
    w.client("a").push()
    with w.store.read() as session:
        published = (
            session.connection()
            .exec_driver_sql(f"SELECT kind, key FROM sync_change WHERE seq > {before}")
            .all()
        )
    assert [tuple(row) for row in published] == [("note", op_id)]
    assert notes_of(a)[-1] == (op_id, "2026-11-20 08:00:00", "到货后请电话联系")  # shown until it comes back
    converge(w)
    for desk in (a, b, w.store):
        assert [n for n in notes_of(desk) if n[0] == op_id] == [
            (op_id, "2026-11-20 11:00:00", "到货后请电话联系")
        ]
    assert len(notes_of(a)) == len(notes_of(w.store))


def test_a_rejected_note_is_dropped_from_the_desk_that_made_it(world: World) -> None:
    """A note whose op the central API rejects (its author was deactivated there) never existed at the
        centre: the desk that made it drops it when it learns the outcome; a note sent with it still stands, and
    the desk's notes are the central API's."""
    w = world
    a = w.desks["a"]
    with w.store.write() as session:
        session.connection().exec_driver_sql("UPDATE app_user SET active = 0 WHERE name = 'liu'")
    add_note(a, order_no=READY_ORDER, text="离职员工的备注", user="liu")
    add_note(a, order_no=READY_ORDER, text="主管的备注", user="wang")
    assert [n[2] for n in notes_of(a)][-2:] == ["离职员工的备注", "主管的备注"]
    report = w.client("a").push()
    assert (report.applied, report.rejected) == (1, 1)
    assert [r.code for r in rep.rejections(a)] == ["inactive_user"]
    assert "离职员工的备注" not in [n[2] for n in notes_of(a)] and "主管的备注" in [n[2] for n in notes_of(a)]
    w.sync("a")
    assert business_state(a)["notes"] == business_state(w.store)["notes"]


def test_an_order_image_that_carries_its_notes_still_applies(world: World) -> None:
    """An image written before notes were entries of their own (``_notes``: all the order's notes, none named
    by an op) brings the order's notes to it, as ever, but for the desk's own notes still waiting to be sent
    (they come back as note entries); note entries after it add theirs beside them, and an order image without
    ``_notes`` leaves them all alone."""
    b = world.desks["b"]
    link = rep.get_link(b)
    assert link is not None
    with world.store.read() as session:
        held = rep.dump_order(session, READY_ORDER)
    assert held is not None and "_notes" not in held
    old_note = {"at": "2026-11-19T06:30:00.000000+00:00", "user_name": "liu", "text": "旧版的备注"}
    new_note = {
        "at": "2026-11-19T07:00:00.000000+00:00",
        "user_name": "wang",
        "text": "新版的备注",
        "order_no": READY_ORDER,
    }
    add_note(b, order_no=READY_ORDER, text="还没发出的备注", user="liu")  # waits in b's outbox
    seq = link.cursor
    page = [
        (
            seq + 1,
            "order",
            READY_ORDER,
            json.dumps(held | {"version": held["version"] + 1, "_notes": [old_note]}),
            "",
        ),
        (seq + 2, "note", "6c1d3f7e-0000-4000-8000-000000000001", json.dumps(new_note), ""),
    ]
    (waiting,) = [op.op_id for op in rep.pending_ops(b)[2]]
    rep.apply_changes(b, page, next_cursor=seq + 2)
    later = [(seq + 3, "order", READY_ORDER, json.dumps(held | {"version": held["version"] + 2}), "")]
    rep.apply_changes(b, later, next_cursor=seq + 3)  # a page of its own: a page applies an order's newest
    assert [n[1:] for n in notes_of(b)] == [
        ("2026-11-19 06:30:00", "旧版的备注"),
        ("2026-11-19 07:00:00", "新版的备注"),
        ("2026-11-20 08:00:00", "还没发出的备注"),
    ]
    assert [n[0] for n in notes_of(b)] == [None, "6c1d3f7e-0000-4000-8000-000000000001", waiting]


def test_other_desks_changes_show_in_the_timeline_once(world: World) -> None:
    add_note(world.desks["a"], order_no=READY_ORDER, text="来自仓库一", user="liu")
    world.sync("a")
    world.sync("b")
    world.sync("b")
    timeline = show_order(world.desks["b"], READY_ORDER).timeline
    notes = [e for e in timeline if e.command == "add_note"]
    assert [(e.user_name, e.detail["text"], e.detail["via"]) for e in notes] == [("liu", "来自仓库一", "D1")]
    from orderdesk import audit

    with world.desks["b"].read() as session:
        assert audit.verify(session)[1] == []  # the chain stays intact with the pulled events in it
    # The desk that made it does not get its own event twice.
    assert [e.command for e in show_order(world.desks["a"], READY_ORDER).timeline].count("add_note") == 1


def test_a_desk_keeps_its_own_unsent_change_while_pulling_others(world: World) -> None:
    a, b = world.desks["a"], world.desks["b"]
    edit_order(b, order_no=READY_ORDER, changes={"ship_address": "b 的地址"}, user="wang")
    add_note(a, order_no=READY_ORDER, text="a 的备注", user="liu")
    world.sync("a")
    world.client("b").pull()  # only pull: b's edit is still waiting
    assert show_order(b, READY_ORDER).ship_address == "b 的地址"  # not overwritten by the older image
    world.client("b").push()
    assert show_order(b, READY_ORDER).ship_address == "b 的地址"
    converge(world)
    detail = show_order(b, READY_ORDER)
    assert detail.ship_address == "b 的地址" and "a 的备注" in [n.detail.get("text") for n in detail.timeline]


def test_customers_and_users_made_on_a_desk_reach_the_others(world: World) -> None:
    add_customer(world.desks["a"], code="C900", name="厦门新客户", user="wang")
    converge(world)
    assert "customer:C900" in business_state(world.desks["b"])


def test_a_command_the_server_does_not_know_stays_queued(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_note(world.desks["a"], order_no=READY_ORDER, text="x", user="liu")
    monkeypatch.delitem(rep.REPLAYS, "add_note")
    report = world.client("a").sync_once()
    assert report.error is not None and "does not know the command add_note" in str(report.error)
    assert rep.outbox_count(world.desks["a"]) == 1  # not lost, not rejected: waiting for a newer server
    monkeypatch.undo()
    assert world.sync("a").applied == 1


def test_concurrent_pushes_never_let_a_pull_skip_an_entry(any_world: World) -> None:
    """Two desks push at once while a third reader pages the change log: every seq it sees comes in order,
    with no gap, even while later transactions are still committing (PostgreSQL: the advisory lock)."""
    import threading

    w = any_world
    for desk in ("a", "b"):
        for i in range(12):
            add_note(w.desks[desk], order_no=READY_ORDER, text=f"{desk}{i}", user="liu")
    start = rep.changes_after(w.store, 0, limit=10_000).high_water
    errors: list[BaseException] = []

    def push(desk: str) -> None:
        try:
            c = w.client(desk, batch=3)
            c.push()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=push, args=(d,)) for d in ("a", "b")]
    for t in threads:
        t.start()
    seen: list[int] = []
    cursor = start
    while any(t.is_alive() for t in threads) or cursor < rep.changes_after(w.store, cursor).high_water:
        page = rep.changes_after(w.store, cursor, limit=5)
        seen += [e[0] for e in page.entries]
        cursor = page.next_after or cursor
    for t in threads:
        t.join()
    assert not errors, errors
    assert seen == list(range(start + 1, start + 1 + len(seen)))  # contiguous: nothing skipped
    assert len(seen) == 24
    converge(w)


def test_a_pull_sees_nothing_of_a_write_still_open_nor_of_any_after_it(pg_world: World) -> None:
    """PostgreSQL hands out sequence values that may commit out of order; orderdesk never lets them. While
    one push's transaction has numbered its entries and not committed, a second push waits for it (the
    advisory write lock) instead of numbering after it and committing first, and a pull meanwhile returns
    nothing past what has committed. Then both land, in order, with no gap. Deterministic: the first write is
    held open on purpose, and the second is seen waiting in PostgreSQL's own lock table."""
    import threading

    w = pg_world
    store = w.store
    for desk in ("a", "b"):
        for i in range(2):
            add_note(w.desks[desk], order_no=READY_ORDER, text=f"{desk}{i}", user="liu")
    start = rep.changes_after(store, 0, limit=10_000).high_water
    numbered, release = threading.Event(), threading.Event()
    results: dict[str, Any] = {}

    def first() -> None:  # desk a's push, held open after its entries are numbered
        try:
            with store.write():
                results["a"] = rep.decide_ops(store, *rep.pending_ops(w.desks["a"]))
                numbered.set()
                assert release.wait(60)
        except BaseException as exc:  # reported below
            results["a"] = exc
            numbered.set()

    def second() -> None:  # desk b's push, started while a's is open
        try:
            results["b"] = rep.decide_ops(store, *rep.pending_ops(w.desks["b"]))
        except BaseException as exc:
            results["b"] = exc

    def waiting_on_the_write_lock() -> int:
        with store.engine.connect() as conn:
            return int(
                conn.exec_driver_sql(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND wait_event = 'advisory' AND datname = current_database()"
                ).scalar_one()
            )

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    threads[0].start()
    assert numbered.wait(60) and not isinstance(results.get("a"), BaseException), results
    threads[1].start()
    try:
        for _ in range(600):  # until the second push is seen queued behind the first (not a timing guess)
            if waiting_on_the_write_lock() == 1:
                break
            threads[1].join(0.05)
        assert waiting_on_the_write_lock() == 1, "the second push did not wait for the open one"
        page = rep.changes_after(store, start, limit=100)
        assert page.entries == [] and page.high_water == start  # nothing of either push yet
    finally:
        release.set()
        for t in threads:
            t.join(60)
    assert not any(isinstance(r, BaseException) for r in results.values()), results
    a_ops, b_ops = ([r.op_id for r in results[d][0] if r.status == "applied"] for d in ("a", "b"))
    assert len(a_ops) == len(b_ops) == 2
    entries = rep.changes_after(store, start, limit=100).entries
    assert [e[0] for e in entries] == list(range(start + 1, start + 1 + len(entries)))  # no gap
    assert [e[2] for e in entries if e[1] == "note"] == a_ops + b_ops  # a's entries, then b's


def test_scans_from_two_stations_count_a_serial_once_and_the_shipment_syncs(world: World) -> None:

    a, b = world.desks["a"], world.desks["b"]
    order = ready_to_pack(a, 2)
    world.sync("a")
    world.sync("b")
    stock_before = stock_of(world.store, "HX-M8")
    open_for_packing(a, order_no=order, user="liu")
    record_scan(a, user="liu", code="(01)06901234567892(21)SN001", order_no=order)
    open_for_packing(b, order_no=order, user="liu")  # the same carton scanned at a second station, offline
    record_scan(b, user="liu", code="(01)06901234567892(21)SN001", order_no=order)
    world.sync("a")
    report = world.sync("b")
    assert report.rejected == 1  # the serial counts once
    record_scan(a, user="liu", code="(01)06901234567892(21)SN002", order_no=order)
    choose_packing_preset(a, user="liu", preset="1")
    shipped = ship_order(a, user="liu")
    assert world.sync("a").applied == 3
    converge(world)
    detail = show_order(world.store, order)
    assert detail.state == "shipped" and [(ln.scanned_qty, ln.shipped_qty) for ln in detail.lines] == [(2, 2)]
    assert shipped.generated and detail.waybill == shipped.waybill  # the label the station printed
    assert stock_of(world.store, "HX-M8") == stock_before - 2


def test_a_reset_made_offline_undoes_only_the_scans_its_station_had(any_world: World) -> None:
    """Station a packs a carton, loses the network and resets it; meanwhile station b took the order over and
    packed another. The reset reaches the central API last: a's carton is undone there, b's still counts."""
    a, b = any_world.desks["a"], any_world.desks["b"]
    order = ready_to_pack(a, 3)
    any_world.sync("a")
    any_world.sync("b")
    open_for_packing(a, order_no=order, user="liu")
    record_scan(a, user="liu", code="(01)06901234567892(21)SN001", order_no=order)
    record_scan(a, user="liu", code="(01)06901234567892(21)SN002", order_no=order)
    any_world.sync("a")  # a's two scans reach the centre; then a goes offline
    any_world.sync("b")  # b sees them, and takes the order over
    open_for_packing(b, order_no=order, user="liu")
    record_scan(b, user="liu", code="(01)06901234567892(21)SN003", order_no=order)
    any_world.sync("b")
    result = reset_packing(a, user="liu")  # a, offline, never saw SN003
    assert (result.scans, result.units) == (2, 2)
    assert any_world.sync("a").applied == 1
    counted = [s["code"] for s in order_scans(any_world.store, order) if not s["undone"]]
    assert counted == ["(01)06901234567892(21)SN003"]
    assert show_order(any_world.store, order).lines[0].scanned_qty == 1
    converge(any_world)  # and every desk counts b's carton only
    assert [show_order(desk, order).lines[0].scanned_qty for desk in (a, b)] == [1, 1]


def test_a_reset_undoes_the_scans_its_station_saw_from_another_station(any_world: World) -> None:
    """Station b packed part of the order and synced; station a took it over, saw b's count, packed more and
    then emptied the carton: every scan it saw is undone at the centre, b's among them."""
    a, b = any_world.desks["a"], any_world.desks["b"]
    order = ready_to_pack(b, 3)
    any_world.sync("b")
    open_for_packing(b, order_no=order, user="liu")
    record_scan(b, user="liu", code="(01)06901234567892(21)SN001", order_no=order)
    any_world.sync("b")
    any_world.sync("a")
    open_for_packing(a, order_no=order, user="liu")
    record_scan(a, user="liu", code="(01)06901234567892(21)SN002", order_no=order)
    assert reset_packing(a, user="liu").units == 2  # b's unit too, as a's screen showed it
    assert any_world.sync("a").applied == 2
    assert all(s["undone"] for s in order_scans(any_world.store, order))
    converge(any_world)
    assert show_order(b, order).lines[0].scanned_qty == 0


def test_an_item_in_date_when_scanned_offline_still_counts_when_it_syncs_after_expiry(world: World) -> None:
    """A station offline over midnight: the item was in date on the station's day, and it is judged as of
    that day when the central API replays the scan a day later, so the scan and the shipment both sync."""

    a = world.desks["a"]
    order = ready_to_pack(a, 1)
    world.sync("a")
    day = local_today(world.clocks["a"]())
    code = f"(01)06901234567892(17){day:%y%m%d}(10)B7(21)LASTDAY"
    open_for_packing(a, order_no=order, user="liu")
    assert record_scan(a, user="liu", code=code, order_no=order).expiry == day
    choose_packing_preset(a, user="liu", preset="1")
    ship_order(a, user="liu")
    world.store.clock.advance(days=1)  # type: ignore[attr-defined]  # the station syncs the next day
    assert local_today(world.store.clock()) > day
    report = world.sync("a")
    assert report.rejected == 0, rep.rejections(a)
    detail = show_order(world.store, order)
    assert (detail.state, detail.lines[0].scanned_qty) == ("shipped", 1)
    with world.store.read() as session:  # which station had it open is the station's fact, not the centre's
        opened = "SELECT count(*) FROM audit_record WHERE command = 'open_for_packing'"
        assert session.connection().exec_driver_sql(opened).scalar() == 0


def test_a_station_run_replays_through_a_rejection_and_leaves_no_station_open(any_world: World) -> None:
    """The central API replays a run of one station's scans with the order open at that station once. When
    the first scan of a run is rejected (its serial was counted first at another station), it is rejected
    alone and the next scans of that run count; no station is left open on the central API, and the audit
    chain, whose tip a group remembers, skips nothing."""
    from orderdesk.users import add_user

    w = any_world
    a, b = w.desks["a"], w.desks["b"]
    add_user(w.store, name="ma", roles=["warehouse"], pin="1234")

    def scan(desk: Store, user: str, order: str, serial: str) -> None:
        record_scan(desk, user=user, code=f"(01)06901234567892(21){serial}", order_no=order)

    first, second = ready_to_pack(a, 4), ready_to_pack(a, 2)
    w.sync("a")
    w.sync("b")
    open_for_packing(b, order_no=second, user="ma")
    scan(b, "ma", second, "R101")
    w.sync("b")  # the other station counted R101 first
    open_for_packing(a, order_no=first, user="liu")
    for serial in ("R001", "R002", "R003"):
        scan(a, "liu", first, serial)
    park_order(a, user="liu")
    open_for_packing(a, order_no=second, user="ma")
    scan(a, "ma", second, "R101")  # rejected: the first op of ma's run
    scan(a, "ma", second, "R102")
    open_for_packing(a, order_no=first, user="liu")
    scan(a, "liu", first, "R004")
    report = w.sync("a")
    assert (report.applied, report.rejected) == (5, 1)
    assert [r.code for r in rep.rejections(a)] == ["serial_repeated"]
    scanned = {no: [ln.scanned_qty for ln in show_order(w.store, no).lines] for no in (first, second)}
    assert scanned == {first: [4], second: [2]}  # R101 from the other station and R102
    assert table_count(w.store, "packing_session") == 0
    with w.store.read() as session:  # the rejected op's audit records went with it; the chain is whole
        assert audit.verify(session)[1] == []


def test_scans_on_an_order_cancelled_meanwhile_are_each_rejected_and_the_order_before_counts(
    any_world: World,
) -> None:
    """A station packs two orders offline while the sales office cancels the second. The central API
    replays each order's scans together: the first order's count; the cancelled order cannot be opened, so
    each of its scans is rejected with the reason a packer can act on, and its group is rolled back with the
    station as it was. The packing preset chosen next for the cancelled order is rejected too; it never
    lands on the order the station had open before."""

    w = any_world
    a, b = w.desks["a"], w.desks["b"]
    kept, cancelled = ready_to_pack(a, 2), ready_to_pack(a, 3)
    w.sync("a")
    w.sync("b")
    move_order(b, order_no=cancelled, to="cancel", user="wang")
    w.sync("b")
    open_for_packing(a, order_no=kept, user="liu")
    for i in range(2):
        record_scan(a, user="liu", code=f"(01)06901234567892(21)K{i}", order_no=kept)
    park_order(a, user="liu")
    open_for_packing(a, order_no=cancelled, user="liu")
    for i in range(3):
        record_scan(a, user="liu", code=f"(01)06901234567892(21)C{i}", order_no=cancelled)
    choose_packing_preset(a, user="liu", preset="1")
    report = w.sync("a")
    assert (report.applied, report.rejected) == (2, 4)
    rejections = rep.rejections(a)
    assert [r.code for r in rejections] == ["order_closed"] * 4
    assert all(cancelled in str(r.reason) for r in rejections)
    assert [ln.scanned_qty for ln in show_order(w.store, cancelled).lines] == [0]
    assert [ln.scanned_qty for ln in show_order(w.store, kept).lines] == [2]
    assert show_order(w.store, kept).packing_preset == ""
    assert table_count(w.store, "scan") == 2 and table_count(w.store, "packing_session") == 0
    converge(w)


def test_one_push_of_scans_on_two_orders_by_two_packers_counts_each_where_it_was_made(
    any_world: World,
) -> None:
    """One run of scans in one push: liu on the first order, then on the second, then ma on the first.
    Each station's scans on each order are replayed together with that order open at that station, and
    every scan counts on the order and by the packer it was made on and by."""
    from orderdesk.users import add_user

    w = any_world
    a = w.desks["a"]
    add_user(w.store, name="ma", roles=["warehouse"], pin="1234")
    first, second = ready_to_pack(a, 3), ready_to_pack(a, 2)
    w.sync("a")
    for user, order, serials in (("liu", first, "F1 F2"), ("liu", second, "S1 S2"), ("ma", first, "F3")):
        open_for_packing(a, order_no=order, user=user)
        for serial in serials.split():
            record_scan(a, user=user, code=f"(01)06901234567892(21){serial}", order_no=order)
        park_order(a, user=user)
    assert {op.command for op in rep.pending_ops(a)[2]} == {"record_scan"}  # one run
    report = w.sync("a")
    assert (report.applied, report.rejected) == (5, 0)
    with w.store.read() as session:
        conn = session.connection()
        made = conn.exec_driver_sql("SELECT order_no, user_name, serial FROM scan ORDER BY id").all()
    assert [tuple(r) for r in made] == [
        (first, "liu", "F1"),
        (first, "liu", "F2"),
        (second, "liu", "S1"),
        (second, "liu", "S2"),
        (first, "ma", "F3"),
    ]
    assert [ln.scanned_qty for ln in show_order(w.store, first).lines] == [3]
    assert [ln.scanned_qty for ln in show_order(w.store, second).lines] == [2]
    assert table_count(w.store, "packing_session") == 0
    converge(w)


def test_one_push_that_packs_two_orders_at_one_station_gives_each_its_own_preset_and_shipment(
    any_world: World,
) -> None:
    """One push packs two orders at one station: each gets its own preset, and only the second ships. The
    central API opens and closes the station once per run of its ops (on SQLite the second order's station
    takes the first's id, which the push read when it gave the first order its preset; the unit test of
    ``close_packing`` checks that case directly)."""
    w = any_world
    a = w.desks["a"]
    first, second = ready_to_pack(a, 1), ready_to_pack(a, 1)
    w.sync("a")
    open_for_packing(a, order_no=first, user="liu")
    record_scan(a, user="liu", code="(01)06901234567892(21)P1", order_no=first)
    choose_packing_preset(a, user="liu", preset="1")
    park_order(a, user="liu")
    open_for_packing(a, order_no=second, user="liu")
    record_scan(a, user="liu", code="(01)06901234567892(21)P2", order_no=second)
    choose_packing_preset(a, user="liu", preset="2")
    shipped = ship_order(a, user="liu").waybill
    report = w.sync("a")
    assert (report.applied, report.rejected) == (5, 0), rep.rejections(a)
    assert (show_order(w.store, first).state, show_order(w.store, first).packing_preset) == (
        "ready_to_ship",
        "1",
    )
    detail = show_order(w.store, second)
    assert (detail.state, detail.packing_preset, detail.waybill) == ("shipped", "2", shipped)
    assert table_count(w.store, "packing_session") == 0
    converge(w)


def test_a_shipment_with_a_waybill_typed_into_the_order_syncs(world: World) -> None:
    """Sales may type any text as an order's waybill; the station ships with it. The central API uses the
    order's own waybill as it is, not as a label scanned at a station (which must look like a waybill)."""

    a = world.desks["a"]
    order = ready_to_pack(a, 1)
    edit_order(a, order_no=order, user="admin", changes={"waybill": "SF-A"})
    open_for_packing(a, order_no=order, user="liu")
    record_scan(a, user="liu", code="(01)06901234567892(21)TYPED1", order_no=order)
    choose_packing_preset(a, user="liu", preset="1")
    assert ship_order(a, user="liu").waybill == "SF-A"
    report = world.sync("a")
    assert report.rejected == 0, rep.rejections(a)
    detail = show_order(world.store, order)
    assert (detail.state, detail.waybill) == ("shipped", "SF-A")


def test_a_stations_own_packing_preset_and_shipping_rules_sync_as_the_station_applied_them(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A shipment that left the warehouse is a fact for the central API. The station chose a preset from its
    own presets file, which the central API does not have, its own rules let one order ship without a
    preset, and it printed its own carrier's name on the waybills it generated; the central API's settings
    (presets required, a label format it cannot print, its own carrier name) judge none of it."""

    presets = tmp_path / "presets.toml"
    presets.write_text(
        '[[presets]]\nid = "Z9"\nlabel_en = "Crate"\nlabel_zh = "木箱"\n'
        "length_mm = 1200\nwidth_mm = 800\nheight_mm = 600\nmax_weight_kg = 120.0\n",
        encoding="utf-8",
    )
    monkeypatch.delenv("ORDERDESK_PRESETS", raising=False)
    monkeypatch.delenv("ORDERDESK_REQUIRE_PRESET", raising=False)  # the central API: presets required
    monkeypatch.setenv("ORDERDESK_LABEL_FORMAT", "gif")  # a setting the central API never uses
    station = ShippingSettings(label_dir=tmp_path / "labels", require_preset=False, carrier="自送车队")
    a = world.desks["a"]
    crated, loose = ready_to_pack(a, 1), ready_to_pack(a, 1)
    world.sync("a")
    open_for_packing(a, order_no=crated, user="liu")
    record_scan(a, user="liu", code="(01)06901234567892(21)CRATE1", order_no=crated)
    choose_packing_preset(a, user="liu", preset="Z9", presets=load_presets(presets))
    ship_order(a, user="liu", settings=station, presets=load_presets(presets))
    open_for_packing(a, order_no=loose, user="liu")
    record_scan(a, user="liu", code="(01)06901234567892(21)LOOSE1", order_no=loose)
    ship_order(a, user="liu", settings=station)
    report = world.sync("a")
    assert report.rejected == 0, rep.rejections(a)
    assert report.applied == 5  # two scans, the preset, two shipments
    for order, preset in ((crated, "Z9"), (loose, "")):
        detail = show_order(world.store, order)
        assert (detail.state, detail.packing_preset) == ("shipped", preset)
    with world.store.read() as session:
        shipped = "SELECT detail FROM audit_record WHERE command = 'ship_order' AND order_no IN (?, ?)"
        details = session.connection().exec_driver_sql(shipped, (crated, loose)).scalars().all()
    assert [json.loads(d)["carrier"] for d in details] == ["自送车队"] * 2


def test_a_shipment_with_a_carriers_waybill_scanned_at_the_station_syncs(world: World) -> None:

    a = world.desks["a"]
    order = ready_to_pack(a, 1)
    open_for_packing(a, order_no=order, user="liu")
    record_scan(a, user="liu", code="(01)06901234567892(21)CARRIER1", order_no=order)
    choose_packing_preset(a, user="liu", preset="1")
    record_waybill(a, user="liu", waybill="sf2026112301")
    shipped = ship_order(a, user="liu")
    assert (shipped.waybill, shipped.carrier, shipped.generated) == ("SF2026112301", "SF", False)
    report = world.sync("a")
    assert report.rejected == 0, rep.rejections(a)
    detail = show_order(world.store, order)
    assert (detail.state, detail.waybill) == ("shipped", "SF2026112301")


def test_a_note_for_an_order_the_desk_does_not_have_refuses_its_page(world: World) -> None:
    """A note entry names its order by number; one this desk does not have means the page is not what the
    desk can apply: refused with a reason, nothing of it applied, the cursor where it was."""
    b = world.desks["b"]
    link = rep.get_link(b)
    assert link is not None
    note = {"at": "2026-11-19T07:00:00.000000+00:00", "user_name": "wang", "text": "无主的备注"}
    page = [
        (
            link.cursor + 1,
            "note",
            "6c1d3f7e-0000-4000-8000-000000000002",
            json.dumps(note | {"order_no": READY_ORDER}),
            "",
        ),
        (
            link.cursor + 2,
            "note",
            "6c1d3f7e-0000-4000-8000-000000000003",
            json.dumps(note | {"order_no": "SO-XX-0000001"}),
            "",
        ),
    ]
    before = notes_of(b)
    with pytest.raises(StoreError) as caught:
        rep.apply_changes(b, page, next_cursor=link.cursor + 2)
    assert caught.value.code == "sync_missing_parent" and "SO-XX-0000001" in str(caught.value)
    assert notes_of(b) == before and rep.get_link(b).cursor == link.cursor  # type: ignore[union-attr]


def test_a_desk_upgraded_with_notes_waiting_sends_them_once_and_gets_each_back_as_itself(
    world: World,
) -> None:
    """A desk from before notes were named by their op (0008), with two notes waiting in its outbox (one a
    repeat of an older, synced note's text): the upgrade names each waiting note by its op, so when the
    central API sends them back they are the same notes, not second copies, and the older note stays as it
    was."""
    w = world
    a = w.desks["a"]
    add_note(a, order_no=READY_ORDER, text="好的", user="liu")
    w.sync("a")
    w.sync("b")
    for store in (w.store, w.desks["b"]):  # synced before anyone was upgraded: named by no op anywhere
        with store.write() as session:
            session.connection().exec_driver_sql("UPDATE order_note SET op_id = NULL")
    w.clocks["a"].advance(minutes=5)
    add_note(a, order_no=READY_ORDER, text="好的", user="liu")
    add_note(a, order_no=READY_ORDER, text="明天发货", user="wang")
    waiting = [op.op_id for op in rep.pending_ops(a)[2]]
    a.close()
    path = w.folder / "a.db"
    with sqlite3.connect(path) as conn:  # as the desk was before 0008
        conn.execute("DROP INDEX ix_order_note_op_id")
        conn.execute("ALTER TABLE order_note DROP COLUMN op_id")
        conn.execute("UPDATE alembic_version SET version_num = '0007' WHERE version_num = '0008'")
    a = w.desks["a"] = Store.open(path, clock=w.clocks["a"])
    assert [n[0] for n in notes_of(a)][-3:] == [None, *waiting]
    converge(w)
    assert [n[2] for n in notes_of(a)].count("好的") == 2 and len(notes_of(a)) == len(notes_of(w.store))
