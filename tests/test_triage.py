"""The planner's triage screen with Pilot: worst first, what blocks each order, filters, every key an audited
domain command; pinned by snapshots in English and Chinese (fixed clock, fixed time zone)."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from sqlalchemy import text
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Static

from orderdesk.alerts import list_alerts, run_alert_pass
from orderdesk.clock import FixedClock
from orderdesk.notify import NotifyConfig
from orderdesk.orders import create_order, edit_order, move_order, show_order
from orderdesk.store import Store
from screens.order_detail import OrderDetailScreen
from screens.triage import PAGE, ActionDialog, TriageScreen, late_text
from tests.desks_support import log_in as desks_log_in
from tests.desks_support import make_app, settle

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("shanghai_time")]
SIZE = (80, 24)
CONFIG = NotifyConfig()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def build_scenario(desk: Store, clock: FixedClock) -> dict[str, str]:
    """Late and at-risk orders of every kind, 50 hours after they were made."""
    rush = create_order(
        desk, customer="C001", lines=[("FL-DN50", 40)], user="wang", promised=date(2026, 11, 23), rush=True
    ).order_no
    tight = create_order(
        desk, customer="C002", lines=[("HX-M8", 10)], user="wang", promised=date(2026, 12, 10)
    ).order_no
    move_order(desk, order_no=tight, to="contract_signed", user="wang")
    passed = create_order(
        desk, customer="C003", lines=[("BR-6204", 3)], user="wang", promised=date(2026, 11, 21)
    ).order_no
    move_order(desk, order_no=passed, to="contract_signed", user="wang")
    edit_order(desk, order_no=passed, changes={"owner": "zhao"}, user="sun")
    held = create_order(
        desk, customer="C001", lines=[("HX-M8", 5)], user="wang", promised=date(2026, 12, 20)
    ).order_no
    move_order(desk, order_no=held, to="contract_signed", user="wang")
    run_alert_pass(desk, CONFIG)
    clock.advance(hours=50)
    move_order(desk, order_no=held, to="hold", user="zhao", reason="客户要求暂停")
    run_alert_pass(desk, CONFIG)
    return {"rush": rush, "tight": tight, "passed": passed, "held": held}


async def log_in(pilot: Pilot[Any], name: str = "zhao") -> None:
    await desks_log_in(pilot, name)


def table_rows(pilot: Pilot[Any]) -> list[list[str]]:
    table = pilot.app.screen.query_one("#triage", DataTable)
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


def alert_of(desk: Store, order_no: str, kind: str) -> Any:
    return next(a for a in list_alerts(desk, order_no=order_no, config=CONFIG) if a.kind == kind)


async def type_into(pilot: Pilot[Any], widget_id: str, value: str) -> None:
    field = pilot.app.screen.query_one(widget_id, Input)
    field.value = value
    field.focus()
    await pilot.pause()


# -- the list --------------------------------------------------------------------------------------------
async def test_the_planner_lands_on_triage_worst_first_with_what_blocks(
    desk: Store, clock: FixedClock
) -> None:
    orders = build_scenario(desk, clock)
    app = make_app(desk, clock)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot)
        screen = app.screen
        assert isinstance(screen, TriageScreen)
        rows = table_rows(pilot)
        assert rows[0][1] == orders["rush"] + "!"  # rush, red, valuable, an A-level customer: first
        assert len(rows) == screen.total == len(list_alerts(desk, config=CONFIG))
        by_order = {r[1].rstrip("!"): r for r in rows}
        assert "Over the credit limit" not in by_order[orders["tight"]][-1]
        assert by_order[orders["tight"]][-1].startswith("Waiting for Production")
        blocking = {r.order_no: str(screen.blocking[r.alert_id][0]) for r in screen.rows}
        assert blocking[orders["tight"]] == "Waiting for Production planner: Start technical review"
        assert by_order[orders["passed"]][4] == "zhao"  # the named owner, not the role
        assert any(r[3].startswith("ack") for r in rows)  # the hold asked sales and the supervisor
        detail = str(screen.query_one("#triage-detail", Static).render())
        assert orders["rush"] in detail and "Escalates to Supervisor in" in detail


async def test_filters_by_state_owner_and_customer(desk: Store, clock: FixedClock) -> None:
    orders = build_scenario(desk, clock)
    app = make_app(desk, clock)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot)
        await pilot.press("f3")  # state: draft
        await settle(pilot)
        assert {r[1].rstrip("!") for r in table_rows(pilot)} == {orders["rush"]}
        await pilot.press("f3")  # contract signed
        await settle(pilot)
        assert {r[1] for r in table_rows(pilot)} == {orders["tight"], orders["passed"]}
        app.screen.action_cycle("state")  # back through every state to "All"
        for _ in range(20):
            if app.screen.filter["state"] is None:
                break
            app.screen.action_cycle("state")
        await type_into(pilot, "#triage-customer", "Brightway")
        await settle(pilot)
        assert {r[1] for r in table_rows(pilot)} == {orders["passed"]}
        await pilot.press("escape")  # clears the customer filter
        await settle(pilot)
        while app.screen.filter["owner"] != "zhao":
            app.screen.action_cycle("owner")
        await settle(pilot)
        assert {r[1] for r in table_rows(pilot)} == {orders["passed"]}


async def test_the_table_holds_one_page(desk: Store, clock: FixedClock) -> None:
    for _ in range(PAGE + 5):
        create_order(desk, customer="C001", lines=[("HX-M8", 1)], user="wang", promised=date(2026, 12, 31))
    run_alert_pass(desk, CONFIG)
    clock.advance(hours=49)
    run_alert_pass(desk, CONFIG)
    app = make_app(desk, clock)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot)
        assert len(table_rows(pilot)) == PAGE and app.screen.total == PAGE + 5
        await pilot.press("pagedown")
        await settle(pilot)
        assert len(table_rows(pilot)) == 5


# -- the keys --------------------------------------------------------------------------------------------
async def test_acknowledge_from_the_keyboard(desk: Store, clock: FixedClock) -> None:
    orders = build_scenario(desk, clock)
    app = make_app(desk, clock)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot)
        await pilot.press("a")
        await settle(pilot)
        assert isinstance(app.screen, ActionDialog)
        await pilot.press(*"calling", "enter")
        await settle(pilot)
        assert isinstance(app.screen, TriageScreen)
        assert alert_of(desk, orders["rush"], "promised").status == "acked" or any(
            a.status == "acked" for a in list_alerts(desk, order_no=orders["rush"], config=CONFIG)
        )
        with desk.read() as session:
            commands = session.execute(
                text("SELECT user_name, command FROM audit_record ORDER BY id DESC LIMIT 1")
            ).one()
        assert tuple(commands) == ("zhao", "acknowledge_alert")


async def test_snooze_needs_a_reason_and_says_so(desk: Store, clock: FixedClock) -> None:
    orders = build_scenario(desk, clock)
    app = make_app(desk, clock)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot)
        first = app.screen.current_row()
        await pilot.press("z")
        await settle(pilot)
        await pilot.press("enter", "enter")  # keep "+2h", no reason
        await settle(pilot)
        assert isinstance(app.screen, ActionDialog)
        assert "must not be empty" in str(app.screen.query_one("#action-error", Static).render())
        await pilot.press(*"paint is late", "enter")
        await settle(pilot)
        assert isinstance(app.screen, TriageScreen)
        snoozed = [
            a for a in list_alerts(desk, order_no=orders["rush"], config=CONFIG) if a.id == first.alert_id
        ]
        assert snoozed[0].status == "snoozed"


async def test_new_promised_date_with_reason(desk: Store, clock: FixedClock) -> None:
    orders = build_scenario(desk, clock)
    app = make_app(desk, clock)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot)
        table = app.screen.query_one("#triage", DataTable)
        keys = [r.order_no for r in app.screen.rows]
        table.move_cursor(row=keys.index(orders["passed"]))
        await pilot.press("d")
        await settle(pilot)
        await type_into(pilot, "#action-date", "2026-12-05")
        await pilot.press("enter", *"客户同意延期", "enter")
        await settle(pilot)
        assert isinstance(app.screen, TriageScreen)
        assert show_order(desk, orders["passed"]).promised_date == date(2026, 12, 5)
        assert orders["passed"] not in [r.order_no for r in app.screen.rows if r.kind == "promised"]


async def test_assign_escalate_and_open(desk: Store, clock: FixedClock) -> None:
    orders = build_scenario(desk, clock)
    app = make_app(desk, clock)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot)
        row = app.screen.current_row()
        await pilot.press("o")
        await settle(pilot)
        dialog = app.screen
        assert isinstance(dialog, ActionDialog)
        names = [o.id for o in dialog.query_one("#action-choices").options]
        for _ in range(names.index("wang")):
            await pilot.press("down")
        await pilot.press("enter")
        await settle(pilot)
        assert show_order(desk, row.order_no).owner == "wang"
        await pilot.press("e")
        await settle(pilot)
        await pilot.press(*"customer calling", "enter")
        await settle(pilot)
        [escalated] = [
            a for a in list_alerts(desk, order_no=row.order_no, config=CONFIG) if a.id == row.alert_id
        ]
        assert escalated.level == row.level + 1
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, OrderDetailScreen) and app.screen.order_no == row.order_no
        assert orders  # the scenario is used


async def test_a_refused_action_keeps_the_dialog_open_with_who_must_act(
    desk: Store, clock: FixedClock
) -> None:
    build_scenario(desk, clock)
    app = make_app(desk, clock)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot, "liu")  # the warehouse: its own desk; open triage from there
        app.push_screen(TriageScreen(app.session))
        await settle(pilot)
        await pilot.press("a", "enter")
        await settle(pilot)
        assert isinstance(app.screen, ActionDialog)
        error = str(app.screen.query_one("#action-error", Static).render())
        assert "may not acknowledge" in error and "Who must act" in error


def test_late_text() -> None:
    assert [late_text(s) for s in (3 * 86400 + 5, 5 * 3600, 40 * 60, -2 * 86400)] == [
        "+3d",
        "+5h",
        "+40m",
        "-2d",
    ]


# -- snapshots -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("lang", ["en", "zh"])
def test_triage_snapshot(snap_compare: Any, desk: Store, clock: FixedClock, lang: str) -> None:
    build_scenario(desk, clock)
    assert snap_compare(make_app(desk, clock, lang), terminal_size=SIZE, run_before=log_in)


def test_triage_snapshot_on_a_big_screen(snap_compare: Any, desk: Store, clock: FixedClock) -> None:
    build_scenario(desk, clock)
    assert snap_compare(make_app(desk, clock, "zh"), terminal_size=(150, 32), run_before=log_in)
