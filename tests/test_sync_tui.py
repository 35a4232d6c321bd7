# ruff: noqa: F811 - pytest fixtures are imported from tests/sync_fixtures.py
"""The desk app syncs in the background: the status line says online/offline, what waits and what was
rejected, and a supervisor resolves rejections on their screen — while the event loop never blocks."""

from __future__ import annotations

from typing import Any

import pytest
from textual.message import Message
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Static

from orderdesk import replication as rep
from orderdesk.orders import add_note, edit_order, move_order, show_order
from screens.app import build_app
from screens.rejections import RejectionsScreen
from screens.sync_status import (
    ChangesRejected,
    SyncStatusChanged,
    sync_commands,
    sync_status_text,
    tell_rejections,
)
from tests.sync_fixtures import sqlite_template, world  # noqa: F401
from tests.sync_harness import READY_ORDER, World

pytestmark = pytest.mark.anyio
SIZE = (110, 30)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def settle(pilot: Pilot[Any], group: str | None = None) -> None:
    """Let the screens' workers finish (the sync worker runs until the app closes, so it is not awaited)."""
    for _ in range(4):
        workers = [w for w in pilot.app.workers if w.group != "sync" and (group is None or w.group == group)]
        if workers:  # an empty list would mean "all", the endless sync worker included
            await pilot.app.workers.wait_for_complete(workers)
        await pilot.pause()


async def until(pilot: Pilot[Any], seen: list[Message], want: Any) -> SyncStatusChanged:
    """Wait (by pumping the event loop) until the sync worker has posted a status matching ``want``."""
    for _ in range(600):
        found = [m for m in seen if isinstance(m, SyncStatusChanged) and want(m)]
        if found:
            return found[-1]
        await pilot.pause(0.05)
    raise AssertionError("the sync worker never reported")


async def log_in(pilot: Pilot[Any], name: str) -> None:
    await settle(pilot)
    screen = pilot.app.screen
    screen.query_one("#login-name", Input).value = name
    field = screen.query_one("#login-pin", Input)
    field.value = "1234"
    field.focus()
    await pilot.press("enter")
    await settle(pilot)


def status(app: Any) -> str:
    return str(app.screen.query_one("StatusLine", Static).render())


async def test_status_line_and_the_supervisors_rejection_queue(world: World) -> None:
    a, b = world.desks["a"], world.desks["b"]
    edit_order(a, order_no=READY_ORDER, changes={"waybill": "SF-A"}, user="liu")
    edit_order(b, order_no=READY_ORDER, changes={"waybill": "SF-B"}, user="liu")
    world.sync("a")
    world.sync("b")
    assert len(rep.rejections(b)) == 1
    b.close()
    seen: list[Message] = []
    app = build_app(db_path=b.path, clock=world.clocks["b"])
    async with app.run_test(size=SIZE, message_hook=seen.append) as pilot:
        await log_in(pilot, "sun")
        await until(pilot, seen, lambda m: not m.busy and m.online)
        await pilot.pause()
        line = status(app)
        assert "sun" in line and "● online" in line and "0 waiting" in line and "1 rejected" in line
        [(_name, _help, open_queue)] = sync_commands(app)
        open_queue()
        await settle(pilot, "rejections")
        assert isinstance(app.screen, RejectionsScreen)
        table = app.screen.query_one("#rejections", DataTable)
        assert table.row_count == 1
        reason = str(app.screen.query_one("#rejection-reason", Static).render())
        assert "SF-A" in reason and "SF-B" in reason
        await pilot.press("k")  # keep this desk's waybill
        await settle(pilot, "rejections-resolve")
        await settle(pilot, "rejections")
        assert table.row_count == 0
        seen.clear()
        await until(pilot, seen, lambda m: not m.busy and m.online and m.state.waiting == 0)
    world.sync("a")
    assert show_order(world.store, READY_ORDER).waybill == "SF-B"
    assert show_order(world.desks["a"], READY_ORDER).waybill == "SF-B"


async def test_the_person_at_the_desk_is_told_why_a_change_was_rejected(world: World) -> None:
    """Not only the supervisor: whoever is at the desk when the rejection comes back sees which change of
    theirs was refused, by whom it was made, and why, in their language; the queue's count says the rest."""
    a, b = world.desks["a"], world.desks["b"]
    move_order(a, order_no=READY_ORDER, to="ship", user="liu")
    move_order(b, order_no=READY_ORDER, to="cancel", user="wang")  # offline: it waits in b's outbox
    world.sync("a")
    b.close()
    seen: list[Message] = []
    app = build_app(db_path=b.path, clock=world.clocks["b"])
    async with app.run_test(size=SIZE, message_hook=seen.append) as pilot:
        await log_in(pilot, "wang")  # sales: no rejection queue of their own
        assert sync_commands(app) == []
        await until(pilot, seen, lambda m: not m.busy and m.online and m.state.rejected == 1)
        await pilot.pause()
        [told] = [m for m in seen if isinstance(m, ChangesRejected)]
        assert [r.code for r in told.rejections] == ["state_conflict"]
        [toast] = [n for n in app._notifications if n.severity == "error"]
        assert toast.message.startswith(
            f"{READY_ORDER}: Move: cancel by wang was rejected by the central API"
        )
        assert "already moved to Shipped" in toast.message
        assert "1 rejected" in status(app)


def test_a_rejection_is_told_in_chinese_and_the_rest_are_counted() -> None:
    from datetime import UTC, datetime

    from orderdesk.i18n import msg, set_language
    from orderdesk.replication import Rejection

    when = datetime(2026, 11, 20, 8, tzinfo=UTC)
    rows = [
        Rejection(
            f"op{i}",
            "ship_order",
            f"SO-A-{i}",
            "liu",
            "stock_below_zero",
            msg(
                "Not enough stock of {sku}: {on_hand} on hand, cannot take {take}.",
                sku="HX-M8",
                on_hand=0,
                take=1,
            ),
            {},
            when,
            when,
        )
        for i in range(5)
    ]
    told: list[tuple[str, str]] = []

    class FakeApp:
        def notify(self, message: str, *, severity: str, timeout: float, markup: bool) -> None:
            told.append((message, severity))

    set_language("zh")
    try:
        tell_rejections(FakeApp(), ChangesRejected(rows))  # type: ignore[arg-type]
    finally:
        set_language("en")
    assert told == [
        *[
            (f"SO-A-{i}：liu 的发货被中心服务器拒绝：HX-M8 库存不足：现有 0，无法扣减 1。", "error")
            for i in range(3)
        ],
        ("另有 2 项被拒：由主管在“同步被拒事项”中处理。", "error"),
    ]


async def test_the_desk_answers_while_a_sync_request_hangs(world: World) -> None:
    """The central API takes the request and never answers (a half-dead proxy): the sync worker waits on the
    network, and meanwhile a person signs in, their screen loads its data, and keys work. Nothing waits
    for the network but the worker, and it does not hold the desk's database while it waits."""
    import socket
    import threading

    b = world.desks["b"]
    add_note(b, order_no=READY_ORDER, text="waiting to go up", user="wang")
    silent = socket.create_server(("127.0.0.1", 0))  # accepts, reads nothing, never answers
    taken: list[socket.socket] = []
    asked = threading.Event()

    def take() -> None:
        conn, _ = silent.accept()
        taken.append(conn)
        asked.set()

    threading.Thread(target=take, daemon=True).start()
    with b.write() as session:
        session.connection().exec_driver_sql(
            "UPDATE sync_link SET server_url = ?", (f"http://127.0.0.1:{silent.getsockname()[1]}",)
        )
    b.close()
    seen: list[Message] = []
    app = build_app(db_path=b.path, clock=world.clocks["b"])
    try:
        async with app.run_test(size=SIZE, message_hook=seen.append) as pilot:
            for _ in range(600):  # until the worker's request is in the silent server's hands
                if asked.is_set():
                    break
                await pilot.pause(0.05)
            assert asked.is_set(), "the sync worker never called"
            await log_in(pilot, "wang")  # reads the desk's database in workers of its own
            assert "wang" in status(app) and "syncing" in status(app)
            await pilot.press("ctrl+p")
            await pilot.pause()
            assert type(app.screen).__name__ == "CommandPalette"
            await pilot.press("escape")
            await pilot.pause()
            assert type(app.screen).__name__ != "CommandPalette"
            [sync] = [w for w in app.workers if w.group == "sync"]
            assert sync.is_running and rep.outbox_count(b) == 1  # still waiting on the network
    finally:
        for conn in taken:
            conn.close()
        silent.close()


async def test_offline_is_shown_and_work_goes_on(world: World) -> None:
    world.server.stop()
    b = world.desks["b"]
    b.close()
    seen: list[Message] = []
    app = build_app(db_path=b.path, clock=world.clocks["b"])
    async with app.run_test(size=SIZE, message_hook=seen.append) as pilot:
        await log_in(pilot, "wang")
        await until(pilot, seen, lambda m: not m.busy and not m.online)
        await pilot.pause()
        assert "○ offline" in status(app)
        assert not [w for w in app.workers if w.group == "sync" and w.is_finished]  # it keeps trying


def test_status_text_in_both_languages() -> None:
    from datetime import UTC, datetime

    from orderdesk.i18n import set_language
    from orderdesk.replication import DeskSyncState

    state = DeskSyncState(
        True, "http://x", waiting=3, rejected=1, last_sync_at=datetime(2026, 1, 2, 3, 4, tzinfo=UTC)
    )
    assert sync_status_text(state, online=False).startswith("○ offline · 3 waiting · synced ")
    set_language("zh")
    text = sync_status_text(state, online=True)
    assert "在线" in text and "3 项待上传" in text and "1 项被拒" in text
    assert sync_status_text(DeskSyncState(False), online=True) == ""
