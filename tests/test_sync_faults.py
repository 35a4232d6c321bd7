# ruff: noqa: F811 - pytest fixtures are imported from tests/sync_fixtures.py
"""Sync under failure, against a real central API on loopback: a server killed mid-batch, a response lost
after the commit, a desk killed mid-push, a long outage, a busy database on either side, a full disk on the
desk, clock skew, and copied or restored desk files. Afterwards every op is decided exactly once."""

from __future__ import annotations

import dataclasses
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event, text

import orderdesk.store as store_module
from orderdesk import replication as rep
from orderdesk.orders import add_note, create_order, move_order, show_order
from orderdesk.store import Store
from sync.client import Backoff
from tests.sync_fixtures import BOTH_STORES, pg_cluster, pg_template, sqlite_template, world  # noqa: F401
from tests.sync_harness import (
    READY_ORDER,
    FaultyTransport,
    World,
    add_notes,
    business_state,
    copy_sqlite,
    free_port,
    server_note_texts,
    store_write_lock,
    table_count,
    write_lock,
)

PROC = Path(__file__).with_name("sync_proc.py")


def notes_on(store: Store, order_no: str) -> list[str]:
    return [e.detail.get("text") for e in show_order(store, order_no).timeline if e.command == "add_note"]


def make_notes(store: Store, n: int, prefix: str = "n") -> list[str]:
    return add_notes(store, (f"{prefix}{i}" for i in range(n)))


def ops_decided(world: World, desk: str) -> int:
    desk_id = rep.pending_ops(world.desks[desk])[0]
    with world.store.read() as session:
        return int(
            session.connection()
            .execute(text("SELECT count(*) FROM sync_op WHERE desk_id = :desk"), {"desk": desk_id})
            .scalar_one()
        )


def point_at(store: Store, url: str) -> None:
    with store.write() as session:
        session.connection().exec_driver_sql("UPDATE sync_link SET server_url = ?", (url,))


@pytest.fixture
def process_server(world: World) -> Iterator[Any]:
    """Start the central API as a separate process on the world's server file."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(*extra: str) -> str:
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, str(PROC), "serve", world.store.url or str(world.store.path), str(port), *extra],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        procs.append(proc)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:  # wait until it answers (readiness, not an assertion about time)
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    return url
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("server process did not start: " + proc.stderr.read().decode())  # type: ignore[union-attr]
            time.sleep(0.05)

    yield start
    for p in procs:
        p.kill()
        p.wait()


@BOTH_STORES
def test_server_killed_mid_batch_then_restarted(world: World, process_server: Any) -> None:
    texts = make_notes(world.desks["a"], 6)
    world.server.stop()
    url = process_server("--die-after-ops", "3")
    point_at(world.desks["a"], url)
    report = world.client("a").sync_once()
    assert report.error is not None  # the server died under the push: the desk is offline, nothing lost
    assert rep.outbox_count(world.desks["a"]) == 6
    # Ops are committed two at a time: the kill came inside the second transaction, after its first op
    # (the third in all) was decided, so the first two stand and the third left no trace.
    assert ops_decided(world, "a") == 2
    point_at(world.desks["a"], process_server())
    report = world.client("a").sync_once()
    assert report.error is None and report.applied == 6
    assert rep.outbox_count(world.desks["a"]) == 0
    assert ops_decided(world, "a") == 6
    assert server_note_texts(world) == texts  # each exactly once, in order
    assert notes_on(world.desks["a"], READY_ORDER) == texts


@BOTH_STORES
def test_an_op_the_servers_database_refuses_is_rejected_not_retried_forever(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A change the central API's database refuses (here a NOT NULL violation injected into one replay) would
    fail the same way on every retry: it is rejected with the database's reason, the ops around it apply.
    (The three notes are replayed together first; that fails as a whole, so they are replayed one at a time
    and only the note at fault is refused.)"""
    texts = make_notes(world.desks["a"], 3)
    real = rep.REPLAYS["add_note"]
    assert real.many is not None
    many_real = real.many
    sizes: list[int] = []

    def many(store: Store, ops: list[rep.OpContext]) -> object:
        sizes.append(len(ops))
        result = many_real(store, ops)
        if any(op.args["text"] == texts[1] for op in ops):
            with store.write() as session:
                session.connection().exec_driver_sql("UPDATE sales_order SET order_no = NULL")
        return result

    monkeypatch.setitem(rep.REPLAYS, "add_note", dataclasses.replace(real, many=many))
    report = world.client("a").sync_once()
    assert report.error is None and (report.applied, report.rejected) == (2, 1)
    assert rep.outbox_count(world.desks["a"]) == 0
    [rejection] = rep.rejections(world.desks["a"])
    reason = str(rejection.reason)
    assert rejection.code == "server_refused" and ("NOT NULL" in reason or "not-null" in reason), reason
    assert server_note_texts(world) == [texts[0], texts[2]]
    assert sizes == [3, 1, 1, 1]


@BOTH_STORES
def test_response_lost_after_commit_is_retried_and_gets_the_stored_outcome(world: World) -> None:
    texts = make_notes(world.desks["a"], 4)
    transport = FaultyTransport(["lose"], only="/v1/push")
    report = world.client("a", transport=transport).sync_once()
    assert report.error is None and report.applied == 4
    assert [f for _p, f, _s in transport.seen if _p == "/v1/push"] == ["lose", "ok"]
    assert server_note_texts(world) == texts
    assert ops_decided(world, "a") == 4


@BOTH_STORES
def test_request_dropped_before_sending_changes_nothing_and_is_retried(world: World) -> None:
    texts = make_notes(world.desks["a"], 2)
    transport = FaultyTransport(["drop", "503", "drop"], only="/v1/push")
    report = world.client("a", transport=transport).sync_once()
    assert report.error is None and report.applied == 2
    assert server_note_texts(world) == texts


@BOTH_STORES
def test_a_page_damaged_on_the_way_is_retried_and_then_applied(world: World) -> None:
    """A gzipped page of changes damaged on the way (the gzip check fails) is fetched again, as a truncated
    one is; then applied."""
    texts = make_notes(world.desks["a"], 40, prefix="到货后请电话联系")
    world.sync("a")
    transport = FaultyTransport(["garble"], only="/v1/changes")
    report = world.client("b", transport=transport).sync_once()
    assert report.error is None, str(report.error)
    pages = [(fault, status) for path, fault, status in transport.seen if path == "/v1/changes"]
    assert pages[:2] == [("garble", 200), ("ok", 200)]
    assert notes_on(world.desks["b"], READY_ORDER) == texts


@BOTH_STORES
def test_pages_damaged_every_time_leave_the_desk_offline_and_unchanged(world: World) -> None:
    """Every try damaged: the desk reports it cannot reach the central API, applies nothing and keeps its
    cursor; the next clean sync brings everything."""
    texts = make_notes(world.desks["a"], 40)
    world.sync("a")
    b = world.desks["b"]
    cursor = rep.get_link(b).cursor  # type: ignore[union-attr]
    transport = FaultyTransport(["garble"] * 10, only="/v1/changes")
    report = world.client("b", transport=transport).sync_once()
    assert report.error is not None and "DecodingError" in str(report.error)
    assert {fault for path, fault, _ in transport.seen if path == "/v1/changes"} == {"garble"}
    assert rep.get_link(b).cursor == cursor  # type: ignore[union-attr]
    assert notes_on(b, READY_ORDER) == []
    world.sync("b")
    assert notes_on(b, READY_ORDER) == texts


@BOTH_STORES
def test_desk_killed_mid_push_and_restarted_on_the_same_file(world: World) -> None:
    texts = make_notes(world.desks["a"], 5)
    path = world.desks["a"].path
    world.desks["a"].close()
    done = subprocess.run(
        [sys.executable, str(PROC), "desk-sync", str(path), "--die-after-push"], check=False
    )
    assert done.returncode == 9
    assert ops_decided(world, "a") == 5  # the server committed them all
    desk = Store.open(path)
    world.desks["a"] = desk
    assert rep.outbox_count(desk) == 5  # the desk never learnt the outcomes, so it kept the ops
    report = world.client("a").sync_once()
    assert report.error is None and report.applied == 5
    assert rep.outbox_count(desk) == 0
    assert server_note_texts(world) == texts  # nothing applied twice
    assert table_count(desk, "sync_outcome") == 5


@BOTH_STORES
def test_long_server_outage_while_desks_keep_working(world: World) -> None:
    a, b = world.desks["a"], world.desks["b"]
    for name in ("a", "b"):
        world.sync(name)
    last_ok = {name: rep.desk_sync_state(world.desks[name]).last_sync_at for name in ("a", "b")}
    assert None not in last_ok.values()
    world.server.stop()
    created = []
    for day in range(3):  # three days offline
        world.clocks["a"].advance(days=1)
        world.clocks["b"].advance(days=1)
        created.append(create_order(a, customer="C001", lines=[("HX-M8", 2 + day)], user="wang").order_no)
        created.append(create_order(b, customer="C002", lines=[("BR-6204", 1)], user="wang").order_no)
        add_note(a, order_no=READY_ORDER, text=f"day {day}", user="liu")
        for name in ("a", "b"):
            report = world.client(name).sync_once()
            assert report.error is not None
            state = rep.desk_sync_state(world.desks[name])
            assert state.last_error is not None and state.waiting > 0
            assert state.last_sync_at == last_ok[name]  # a failed round is not a sync
    assert rep.outbox_count(a) == 6 and rep.outbox_count(b) == 3
    world.server.start()
    world.sync("a")
    world.sync("b")
    world.sync("a")
    for name in ("a", "b"):
        assert rep.outbox_count(world.desks[name]) == 0
        state = rep.desk_sync_state(world.desks[name])
        assert state.last_error is None and state.last_sync_at == world.clocks[name]()
        assert state.last_sync_at > last_ok[name]  # type: ignore[operator]
        assert business_state(world.desks[name]) == business_state(world.store)
    assert {o for o in created} <= {
        k.split(":", 1)[1] for k in business_state(world.store) if k.startswith("order:")
    }


@BOTH_STORES
def test_server_database_busy_gives_503_then_the_retry_succeeds(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another writer holds the central API's database: the push waits the busy timeout (on PostgreSQL too,
    its lock_timeout), answers 503 with nothing written, and the desk's retry goes through once it is free."""
    monkeypatch.setattr(store_module, "BUSY_TIMEOUT_MS", 50)
    world.store.close()  # new connections pick up the short busy timeout
    texts = make_notes(world.desks["a"], 2)
    lock = store_write_lock(world.store)
    lock.__enter__()
    released = []

    def release_on_first_backoff(_seconds: float) -> None:
        if not released:
            released.append(True)
            lock.__exit__(None, None, None)

    transport = FaultyTransport()
    client = world.client(
        "a", transport=transport, backoff=Backoff(attempts=4, sleep=release_on_first_backoff)
    )
    report = client.sync_once()
    assert report.error is None and report.applied == 2
    assert ("/v1/push", "ok", 503) in transport.seen  # busy was answered as a retryable 503
    assert server_note_texts(world) == texts


def test_desk_database_busy_is_reported_and_nothing_moves(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_note(world.desks["a"], order_no=READY_ORDER, text="from a", user="liu")
    world.sync("a")
    monkeypatch.setattr(store_module, "BUSY_TIMEOUT_MS", 50)
    b = world.desks["b"]
    b.close()
    cursor = rep.get_link(b).cursor  # type: ignore[union-attr]
    with write_lock(b.path):
        report = world.client("b").sync_once()
    assert report.error is not None and "busy" in str(report.error)
    assert rep.get_link(b).cursor == cursor  # type: ignore[union-attr]
    world.sync("b")
    assert "from a" in notes_on(b, READY_ORDER)


def test_disk_full_on_the_desk_is_a_clear_message_and_corrupts_nothing(world: World) -> None:
    a, b = world.desks["a"], world.desks["b"]
    for i in range(30):
        add_note(a, order_no=READY_ORDER, text=f"{i} " + "长备注" * 600, user="liu")
    world.sync("a")
    add_note(b, order_no=READY_ORDER, text="queued on b", user="liu")
    b.close()
    pages = sqlite3.connect(b.path).execute("PRAGMA page_count").fetchone()[0]

    def cap(dbapi: sqlite3.Connection, _record: Any) -> None:
        dbapi.execute(f"PRAGMA max_page_count = {pages + 2}")  # the disk fills up

    event.listen(b.engine, "connect", cap)
    before_cursor = rep.get_link(b).cursor  # type: ignore[union-attr]
    report = world.client("b").sync_once()
    assert report.error is not None
    assert "disk is full" in str(report.error) and "Nothing was changed" in str(report.error)
    assert rep.get_link(b).cursor == before_cursor  # type: ignore[union-attr]
    assert rep.outbox_count(b) <= 1
    b.close()
    # b.close() dropped the engine; the next one has no cap: the disk has room again.
    check = sqlite3.connect(b.path)
    assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    check.close()
    world.sync("b")
    assert rep.outbox_count(b) == 0
    assert business_state(b) == business_state(world.store)


@BOTH_STORES
def test_clock_skew_never_decides(world: World) -> None:
    """Desk a's clock is three days behind, desk b's two days ahead: arrival order at the centre decides,
    and a promised date that was valid on a slow desk is not refused later."""
    a, b = world.desks["a"], world.desks["b"]
    world.clocks["a"].advance(days=-3)
    world.clocks["b"].advance(days=2)
    promised = world.clocks["a"].now.date()  # "today" on desk a: in the past for the server
    order = create_order(a, customer="C001", lines=[("HX-M8", 1)], user="wang", promised=promised)
    move_order(b, order_no=READY_ORDER, to="ship", user="liu")  # b's clock says later...
    move_order(a, order_no=READY_ORDER, to="cancel", user="wang")  # ...a's says earlier
    world.sync("b")  # but b's move reaches the centre first
    report = world.sync("a")
    assert report.applied == 1 and report.rejected == 1
    assert show_order(world.store, READY_ORDER).state == "shipped"
    assert show_order(world.store, order.order_no).summary.promised_date == promised
    assert promised < date(2026, 11, 20)
    world.sync("a")
    assert show_order(a, READY_ORDER).state == "shipped"


@BOTH_STORES
def test_copied_desk_file_gets_its_own_epoch_and_order_code(world: World, tmp_path: Path) -> None:
    a = world.desks["a"]
    copy_sqlite(a.path, tmp_path / "a-copy.db")
    copy = Store.open(tmp_path / "a-copy.db", clock=world.clocks["a"])
    world.desks["a2"] = copy
    first = create_order(a, customer="C001", lines=[("HX-M8", 1)], user="wang")
    second = create_order(copy, customer="C002", lines=[("HX-M8", 2)], user="wang")
    assert first.order_no == second.order_no  # the copy reuses the number: it cannot know better offline
    world.sync("a")
    report = world.sync("a2")
    assert report.rekeyed
    # The copy's create collided and was rejected (shown to its supervisor); the original's order stands.
    assert report.rejected == 1 and rep.rejections(copy)[0].code == "duplicate_order"
    third = create_order(copy, customer="C002", lines=[("HX-M8", 3)], user="wang")
    assert not third.order_no.startswith(first.order_no[:6])  # a new desk code for the new epoch
    world.sync("a2")
    world.sync("a")
    assert show_order(world.store, third.order_no).lines[0].quantity == 3
    assert show_order(world.store, first.order_no).lines[0].quantity == 1
    for name in ("a", "a2"):
        assert rep.outbox_count(world.desks[name]) == 0
        assert business_state(world.desks[name]) == business_state(world.store)


@BOTH_STORES
def test_desk_restored_from_backup_never_reuses_a_sequence(world: World, tmp_path: Path) -> None:
    a = world.desks["a"]
    make_notes(a, 2, "before backup ")
    a.close()
    shutil.copy(a.path, tmp_path / "backup.db")
    world.sync("a")  # the two ops are decided and leave the outbox
    make_notes(a, 1, "lost with the disk ")
    world.sync("a")
    a.close()
    shutil.copy(tmp_path / "backup.db", a.path)  # the desk's disk died; restored from last night
    restored = Store.open(a.path, clock=world.clocks["a"])
    world.desks["a"] = restored
    make_notes(restored, 1, "after restore ")
    report = world.sync("a")
    assert report.rekeyed  # its op 3 was taken by the lost op: new epoch, renumbered
    assert rep.outbox_count(restored) == 0
    texts = server_note_texts(world)
    assert texts == ["before backup 0", "before backup 1", "lost with the disk 0", "after restore 0"]


@BOTH_STORES
def test_too_old_cursor_rebootstraps_and_keeps_the_unpushed_outbox(world: World) -> None:
    a, b = world.desks["a"], world.desks["b"]
    make_notes(a, 3, "a ")
    world.sync("a")
    make_notes(b, 2, "b ")  # waiting on b while its cursor falls behind
    high = rep.changes_after(world.store, 0).high_water
    rep.prune_change_log(world.store, keep_after=high)
    report = world.sync("b")
    assert report.bootstrapped
    assert rep.outbox_count(b) == 0
    assert server_note_texts(world) == ["a 0", "a 1", "a 2", "b 0", "b 1"]
    assert business_state(b) == business_state(world.store)


@BOTH_STORES
def test_a_rebootstrap_never_loads_over_work_still_waiting(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The snapshot goes in only when the outbox is empty: work made while the snapshot could not be fetched,
    or while it was downloading, is pushed first (and lands once), never overwritten or dropped."""
    a, b = world.desks["a"], world.desks["b"]
    make_notes(a, 2, "a ")
    world.sync("a")
    rep.prune_change_log(world.store, keep_after=rep.changes_after(world.store, 0).high_water)
    # b's cursor is now older than the log: told to re-bootstrap, and the snapshot cannot be fetched.
    broken = FaultyTransport(["drop"] * 20, only="/v1/snapshot")
    report = world.client("b", transport=broken).sync_once()
    assert report.error is not None and not report.bootstrapped
    assert ("/v1/snapshot", "drop", None) in broken.seen
    assert rep.get_link(b).needs_bootstrap  # type: ignore[union-attr]
    make_notes(b, 2, "b offline ")  # the desk keeps working meanwhile
    client = world.client("b")
    download = client._download
    during: list[str] = []

    def download_while_someone_works(path: Path) -> None:
        download(path)
        if not during:  # the first snapshot is stale by the time it lands: this note is not in it
            during.extend(make_notes(b, 1, "b during download "))

    monkeypatch.setattr(client, "_download", download_while_someone_works)
    report = client.sync_once()
    assert report.error is None and report.bootstrapped and during
    assert rep.outbox_count(b) == 0
    assert server_note_texts(world) == ["a 0", "a 1", "b offline 0", "b offline 1", "b during download 0"]
    assert business_state(b) == business_state(world.store)
    assert not rep.get_link(b).needs_bootstrap  # type: ignore[union-attr]


@BOTH_STORES
def test_a_snapshot_is_refused_while_work_waits(world: World, tmp_path: Path) -> None:
    b = world.desks["b"]
    make_notes(b, 1, "waiting ")
    snapshot = tmp_path / "snapshot.db"
    rep.write_snapshot(world.store, snapshot)
    before = (business_state(b), rep.outbox_count(b), rep.get_link(b))
    with pytest.raises(rep.Refused) as refused:
        rep.install_snapshot(b, snapshot)
    assert refused.value.code == "outbox_not_empty"
    assert (business_state(b), rep.outbox_count(b), rep.get_link(b)) == before


@BOTH_STORES
def test_rejected_create_is_removed_from_the_desk(world: World) -> None:
    a = world.desks["a"]
    with world.store.write() as session:  # wang left the company: deactivated at the centre
        session.connection().exec_driver_sql("UPDATE app_user SET active = false WHERE name = 'wang'")
    order = create_order(a, customer="C001", lines=[("HX-M8", 1)], user="wang")
    add_note(a, order_no=order.order_no, text="follow-up", user="liu")
    report = world.sync("a")
    assert report.rejected == 2
    assert [r.code for r in sorted(rep.rejections(a), key=lambda r: r.command)] == [
        "create_rejected",
        "inactive_user",
    ]
    orders = {k: v for k, v in business_state(a).items() if k.startswith("order:")}
    assert f"order:{order.order_no}" not in orders
    assert orders == {k: v for k, v in business_state(world.store).items() if k.startswith("order:")}


@BOTH_STORES
def test_offline_promised_date_edge(world: World) -> None:
    """A promised date of 'tomorrow' made on the desk stays valid whenever it arrives."""
    a = world.desks["a"]
    tomorrow = world.clocks["a"].now.date() + timedelta(days=1)
    order = create_order(a, customer="C001", lines=[("HX-M8", 1)], user="wang", promised=tomorrow)
    world.server.store.clock.advance(days=5)  # type: ignore[attr-defined]
    world.sync("a")
    assert show_order(world.store, order.order_no).summary.promised_date == tomorrow
