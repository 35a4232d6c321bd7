"""SVG snapshots of the main screens at 80x24 in English and Chinese (pytest-textual-snapshot).

Deterministic: a fixed clock, a fixed time zone for the timeline, no cursor blink, and every worker
finished before the picture is taken. Update with ``pytest tests/test_tui_snapshots.py --snapshot-update``
and look at the SVGs (Chinese must line up in the tables).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import date
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Input

from orderdesk.clock import FixedClock
from orderdesk.orders import create_order, move_order
from orderdesk.store import Store
from screens.app import HOME_SCREENS, OrderdeskApp, build_app
from screens.orders import OrderBrowserScreen

SIZE = (80, 24)
SnapCompare = Callable[..., bool]


@pytest.fixture(autouse=True)
def _every_role_home_is_the_browser(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests pin the shell (login, browser, detail, dialogs); the role desks have tests of their own."""
    for home in ("sales", "qc", "warehouse", "finance", "planner", "supervisor", "admin"):
        monkeypatch.setitem(HOME_SCREENS, home, OrderBrowserScreen)


@pytest.fixture(autouse=True)
def _shanghai_time(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The timeline shows local time; pin the zone so the pictures do not depend on the machine."""
    monkeypatch.setenv("TZ", "Asia/Shanghai")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def orders(desk: Store) -> list[str]:
    """Three orders: a rush one that was signed, a long-named customer, one for a tight credit limit."""
    rush = create_order(
        desk,
        customer="C001",
        lines=[("HX-M8", 200), ("FL-DN50", 4), ("PT-RED", 2)],
        user="wang",
        promised=date(2026, 11, 28),
        rush=True,
    ).order_no
    move_order(desk, order_no=rush, to="sign_contract", user="wang", reason="客户已盖章回传")
    create_order(desk, customer="C003", lines=[("BR-6204", 3)], user="wang", promised=date(2026, 12, 15))
    tight = create_order(desk, customer="C002", lines=[("HX-M8", 1000)], user="wang").order_no
    return [rush, tight]


def make_app(desk: Store, clock: FixedClock, lang: str) -> OrderdeskApp:
    app = build_app(db_path=desk.path, clock=clock, lang=lang)
    app.CURSOR_BLINK = False  # type: ignore[misc]  # per instance: no blink, stable pictures
    return app


async def settle(pilot: Pilot[Any]) -> None:
    for _ in range(4):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()


async def log_in(pilot: Pilot[Any], name: str = "wang") -> None:
    await settle(pilot)
    screen = pilot.app.screen
    screen.query_one("#login-name", Input).value = name
    pin = screen.query_one("#login-pin", Input)
    pin.value = "1234"
    pin.focus()
    await pilot.press("enter")
    await settle(pilot)


def open_order(order_no: str) -> Callable[[Pilot[Any]], Awaitable[None]]:
    async def run(pilot: Pilot[Any]) -> None:
        await log_in(pilot)
        pilot.app.screen.query_one("#search", Input).value = order_no
        await settle(pilot)
        pilot.app.screen.query_one("#orders", DataTable).focus()
        await pilot.press("enter")
        await settle(pilot)

    return run


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_login(snap_compare: SnapCompare, desk: Store, clock: FixedClock, lang: str) -> None:
    assert snap_compare(make_app(desk, clock, lang), terminal_size=SIZE, run_before=settle)


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_login_refused(snap_compare: SnapCompare, desk: Store, clock: FixedClock, lang: str) -> None:
    async def wrong_pin(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        pilot.app.screen.query_one("#login-name", Input).value = "wang"
        pin = pilot.app.screen.query_one("#login-pin", Input)
        pin.value = "9999"
        pin.focus()
        await pilot.press("enter")
        await settle(pilot)

    assert snap_compare(make_app(desk, clock, lang), terminal_size=SIZE, run_before=wrong_pin)


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_home(
    snap_compare: SnapCompare, desk: Store, clock: FixedClock, orders: list[str], lang: str
) -> None:
    assert snap_compare(make_app(desk, clock, lang), terminal_size=SIZE, run_before=log_in)


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_detail(
    snap_compare: SnapCompare, desk: Store, clock: FixedClock, orders: list[str], lang: str
) -> None:
    assert snap_compare(make_app(desk, clock, lang), terminal_size=SIZE, run_before=open_order(orders[0]))


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_move_refused(
    snap_compare: SnapCompare, desk: Store, clock: FixedClock, orders: list[str], lang: str
) -> None:
    async def refused(pilot: Pilot[Any]) -> None:
        await open_order(orders[1])(pilot)
        await pilot.press("m", "enter")
        pilot.app.screen.query_one("#move-reason", Input).value = "客户催单"
        await pilot.press("enter")
        await settle(pilot)

    assert snap_compare(make_app(desk, clock, lang), terminal_size=SIZE, run_before=refused)
