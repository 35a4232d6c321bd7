"""The supervisor's live board with Pilot: it refreshes by itself, changes only the cells that changed,
skips ticks while a refresh is still running, and fits 80x24 in both languages (snapshots); plus the alert
inbox and its bell."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Static

from orderdesk.alerts import run_alert_pass
from orderdesk.clock import FixedClock
from orderdesk.notify import NotifyConfig, inbox_summary
from orderdesk.orders import create_order, move_order
from orderdesk.store import Store
from screens.alert_inbox import AlertBell, AlertInboxScreen
from screens.board import StatusBoardScreen
from screens.order_detail import OrderDetailScreen
from screens.triage import TriageScreen
from tests.desks_support import log_in as desks_log_in
from tests.desks_support import make_app, settle

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("shanghai_time")]
SIZE = (80, 24)
CONFIG = NotifyConfig()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def floor(desk: Store, clock: FixedClock) -> list[str]:
    """Orders spread over a few states, some late, alerts raised and one escalated."""
    made = []
    for customer, promised in (
        ("C001", date(2026, 11, 21)),
        ("C003", date(2026, 11, 22)),
        ("C001", date(2026, 12, 30)),
    ):
        made.append(
            create_order(
                desk, customer=customer, lines=[("HX-M8", 10)], user="wang", promised=promised
            ).order_no
        )
    move_order(desk, order_no=made[1], to="contract_signed", user="wang")
    move_order(desk, order_no=made[2], to="contract_signed", user="wang")
    move_order(desk, order_no=made[2], to="tech_review", user="zhao")
    run_alert_pass(desk, CONFIG)
    clock.advance(hours=30)
    run_alert_pass(desk, CONFIG)
    clock.advance(minutes=20)
    run_alert_pass(desk, CONFIG)
    clock.advance(minutes=5)
    return made


async def log_in(pilot: Pilot[Any], name: str = "sun") -> None:
    await desks_log_in(pilot, name)


async def next_refresh(pilot: Pilot[Any], board: StatusBoardScreen) -> None:
    """Wait for the board's own timer to bring one more refresh (bounded; no assertion on timing)."""
    seen = board.refreshes
    for _ in range(200):
        await pilot.pause(0.05)
        if board.refreshes > seen:
            await settle(pilot)
            return
    raise AssertionError("the board did not refresh by itself")


def cell(board: StatusBoardScreen, state: str, column: str) -> str:
    return str(board.query_one("#board-states", DataTable).get_cell(state, column))


async def test_the_supervisor_lands_on_the_board_and_it_refreshes_by_itself(
    desk: Store, clock: FixedClock
) -> None:
    made = floor(desk, clock)
    app = make_app(desk, clock)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot)
        board = app.screen
        assert isinstance(board, StatusBoardScreen)
        assert cell(board, "draft", "count") == "1" and cell(board, "contract_signed", "count") == "1"
        assert cell(board, "contract_signed", "late") == "1"  # 30 h in a 24 h state
        assert cell(board, "contract_signed", "state").startswith("▶")  # the bottleneck
        side = str(board.query_one("#board-alerts", Static).render())
        assert "Level 1" in side  # the contract's alert climbed to the supervisor
        create_order(desk, customer="C001", lines=[("HX-M8", 1)], user="wang", promised=date(2026, 12, 31))
        await next_refresh(pilot, board)
        assert cell(board, "draft", "count") == "2"
        move_order(desk, order_no=made[1], to="tech_review", user="zhao")
        await next_refresh(pilot, board)
        assert cell(board, "contract_signed", "count") == "0"


async def test_only_changed_cells_are_updated(desk: Store, clock: FixedClock) -> None:
    floor(desk, clock)
    app = make_app(desk, clock)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot)
        board = app.screen
        assert isinstance(board, StatusBoardScreen)
        await next_refresh(pilot, board)
        before = board.cell_updates
        await next_refresh(pilot, board)  # nothing changed, the clock stands still
        assert board.cell_updates == before
        create_order(desk, customer="C001", lines=[("HX-M8", 1)], user="wang", promised=date(2026, 12, 31))
        await next_refresh(pilot, board)
        assert board.cell_updates == before + 1  # the draft count, nothing else


async def test_a_tick_while_a_refresh_runs_is_skipped(desk: Store, clock: FixedClock) -> None:
    floor(desk, clock)
    app = make_app(desk, clock)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot)
        board = app.screen
        assert isinstance(board, StatusBoardScreen)
        started: list[int] = []
        board.load = lambda: started.append(1)  # type: ignore[method-assign]  # a refresh that never returns
        board._inflight = False
        board.tick()
        board.tick()
        board.tick()
        assert started == [1]
        board._paused = False


async def test_keys_open_the_oldest_order_triage_and_inbox(desk: Store, clock: FixedClock) -> None:
    made = floor(desk, clock)
    app = make_app(desk, clock)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot)
        await pilot.press("enter")  # the cursor is on Draft: its oldest order
        await settle(pilot)
        assert isinstance(app.screen, OrderDetailScreen) and app.screen.order_no == made[0]
        await pilot.press("escape", "t")
        await settle(pilot)
        assert isinstance(app.screen, TriageScreen)
        await pilot.press("escape")
        await settle(pilot)
        await pilot.press("i")
        await settle(pilot)
        assert isinstance(app.screen, AlertInboxScreen)


# -- the inbox and its bell ------------------------------------------------------------------------------
async def test_the_bell_counts_unread_and_rings_when_something_arrives(
    desk: Store, clock: FixedClock
) -> None:
    made = floor(desk, clock)
    app = make_app(desk, clock)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot)
        bell = app.screen.query_one(AlertBell)
        unread = inbox_summary(desk, "sun").unread
        assert unread >= 1 and bell.unread == unread and str(bell.render()) == f"🔔 {unread}"
        assert not app._notifications  # old news is not toasted
        move_order(desk, order_no=made[0], to="contract_signed", user="wang")
        move_order(desk, order_no=made[0], to="hold", user="zhao", reason="客户要求暂停")
        run_alert_pass(desk, CONFIG)  # a hold asks the supervisor to acknowledge
        for _ in range(100):
            bell.poll()
            await settle(pilot)
            if bell.unread > unread:
                break
        assert bell.unread > unread
        assert any("New alert" in str(n.title) for n in app._notifications)


async def test_the_inbox_lists_and_marks_read(desk: Store, clock: FixedClock) -> None:
    made = floor(desk, clock)
    app = make_app(desk, clock)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot, "zhao")
        await pilot.press("i")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, AlertInboxScreen)
        rows = screen.query_one("#inbox", DataTable).row_count
        assert rows == len(screen.items) >= 1
        assert any(made[2] in i.text or made[1] in i.text for i in screen.items)
        await pilot.press("r")
        await settle(pilot)
        assert inbox_summary(desk, "zhao").unread == 0


# -- snapshots -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("lang", ["en", "zh"])
def test_board_snapshot(snap_compare: Any, desk: Store, clock: FixedClock, lang: str) -> None:
    floor(desk, clock)
    assert snap_compare(make_app(desk, clock, lang), terminal_size=SIZE, run_before=log_in)


def test_board_snapshot_on_a_big_screen(snap_compare: Any, desk: Store, clock: FixedClock) -> None:
    floor(desk, clock)
    assert snap_compare(make_app(desk, clock, "zh"), terminal_size=(140, 40), run_before=log_in)


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_inbox_snapshot(snap_compare: Any, desk: Store, clock: FixedClock, lang: str) -> None:
    floor(desk, clock)

    async def run_before(pilot: Pilot[Any]) -> None:
        await log_in(pilot, "zhao")
        await pilot.press("i")
        await settle(pilot)

    assert snap_compare(make_app(desk, clock, lang), terminal_size=SIZE, run_before=run_before)
