"""The sales desk through the screen (Pilot): every sales rule allowed and refused as a person meets it,
plus SVG snapshots of the desk and of order entry in both languages (80x24, fixed clock)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from rich.text import Text
from sqlalchemy import text
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Static

from orderdesk.clock import FixedClock
from orderdesk.orders import move_order, show_order
from orderdesk.sales import enter_order, request_change
from orderdesk.store import Store
from orderdesk.users import add_user
from screens.desk_dialogs import ChoiceDialog, ConfirmDialog, ReasonDialog
from screens.sales_desk import (
    ChangeApprovalsScreen,
    ChangeRequestScreen,
    OrderEntryScreen,
    SalesDeskScreen,
    VersionsScreen,
)
from tests.desks_support import (
    SIZE,
    count_orders,
    log_in,
    make_app,
    order_state,
    row_keys,
    screen_text,
    settle,
)

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("shanghai_time")]
LATER = date(2026, 12, 30)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def cell_style(table: DataTable[Any], key: str, column: str) -> str:
    cell = table.get_cell(key, column)
    return str(cell.style) if isinstance(cell, Text) else ""


def checks_text(pilot: Pilot[Any]) -> str:
    return str(pilot.app.screen.query_one("#entry-checks", Static).render())


async def new_entry(pilot: Pilot[Any]) -> OrderEntryScreen:
    await pilot.press("n")
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, OrderEntryScreen)
    return screen


async def pick_customer(pilot: Pilot[Any], query: str) -> None:
    field = pilot.app.screen.query_one("#entry-customer", Input)
    field.focus()
    field.value = query
    await settle(pilot)
    await pilot.press("enter")
    await settle(pilot)


async def add_line(pilot: Pilot[Any], product: str, qty: int) -> None:
    screen = pilot.app.screen
    field = screen.query_one("#entry-product", Input)
    field.focus()
    field.value = product
    await settle(pilot)
    await pilot.press("enter")  # takes the first match, focus moves to the quantity
    assert screen.focused is screen.query_one("#entry-qty", Input)
    screen.query_one("#entry-qty", Input).value = str(qty)
    await pilot.press("enter")
    await settle(pilot)


async def enter_draft(pilot: Pilot[Any], customer: str, *lines: tuple[str, int]) -> OrderEntryScreen:
    """n, then a customer and lines typed in as the clerk would; nothing is saved yet."""
    screen = await new_entry(pilot)
    await pick_customer(pilot, customer)
    for product, qty in lines:
        await add_line(pilot, product, qty)
    return screen


async def set_promised(pilot: Pilot[Any], day: date, reason: str = "") -> None:
    screen = pilot.app.screen
    screen.query_one("#entry-promised", Input).value = day.isoformat()
    screen.query_one("#entry-reason", Input).value = reason
    await settle(pilot)


async def save(pilot: Pilot[Any]) -> None:
    await pilot.press("ctrl+s")
    await settle(pilot)


def last_order(desk: Store) -> str:
    with desk.read() as s:
        return str(s.execute(text("SELECT order_no FROM sales_order ORDER BY id DESC LIMIT 1")).scalar())


# -- the desk ----------------------------------------------------------------------------------------------
async def test_sales_lands_on_the_desk_with_what_needs_attention_first(
    desk: Store, clock: FixedClock
) -> None:
    plain = enter_order(
        desk, customer="C003", lines=[("HX-M8", 5)], user="wang", promised=LATER
    ).detail.order_no
    held = enter_order(desk, customer="C002", lines=[("FL-DN50", 20)], user="wang").detail.order_no
    short = enter_order(
        desk,
        customer="C001",
        lines=[("HX-M8", 10)],
        user="wang",
        promised=clock().date() + timedelta(days=3),
        promised_reason="急",
    ).detail.order_no
    rush = enter_order(
        desk, customer="C001", lines=[("PT-RED", 1)], user="wang", promised=LATER, rush=True
    ).detail.order_no
    app = make_app(desk, clock)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot, "wang")
        assert isinstance(app.screen, SalesDeskScreen)
        table = app.screen.query_one("#worklist", DataTable)
        assert row_keys(table) == [
            held,
            rush,
            short,
            plain,
        ]  # credit hold, rush blocked, short lead; then the rest
        assert "red" in cell_style(table, short, "promised")  # a short lead time is red wherever it is shown
        assert "red" not in cell_style(table, plain, "promised")
        assert "Credit hold" in str(table.get_cell(held, "flags"))
        table.move_cursor(row=1)
        await settle(pilot)
        hint = str(app.screen.query_one("#sales-hint", Static).render())
        assert "enters scheduling only after technical sign-off + kitted materials" in hint


# -- order entry: allowed ---------------------------------------------------------------------------------
async def test_entering_an_order_from_the_screen(desk: Store, clock: FixedClock) -> None:
    app = make_app(desk, clock)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot, "wang")
        screen = await new_entry(pilot)
        await pick_customer(pilot, "0755")  # by phone
        assert screen.draft.customer is not None and screen.draft.customer.code == "C003"
        assert screen.query_one("#entry-address", Input).value == "深圳市南山区科技园 6 栋"
        await add_line(pilot, "6909876543212", 3)  # a barcode scan
        await add_line(pilot, "螺栓", 20)  # a name
        assert [(ln.sku, ln.quantity) for ln in screen.draft.lines] == [("FL-DN50", 3), ("HX-M8", 20)]
        # Proposed: 7 production days + 3 days to 深圳.
        assert screen.query_one("#entry-promised", Input).value == "2026-11-30"
        text_ = checks_text(pilot)
        assert "Not a duplicate" in text_ and "No approval needed" in text_ and "Credit:" in text_
        await pilot.press("f4")  # channel: offline → wholesale
        await save(pilot)
        assert isinstance(app.screen, SalesDeskScreen)
        detail = show_order(desk, last_order(desk))
        assert (
            detail.summary.customer_code == "C003"
            and detail.channel == "wholesale"
            and detail.state == "draft"
        )
        assert [ln.quantity for ln in detail.lines] == [3, 20] and detail.promised_date == date(2026, 11, 30)


async def test_leaving_an_unsaved_order_asks_first(desk: Store, clock: FixedClock) -> None:
    app = make_app(desk, clock)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot, "wang")
        await enter_draft(pilot, "C003", ("HX-M8", 5))
        app.screen.query_one("#entry-lines", DataTable).focus()
        await pilot.press("escape")
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("n")
        await settle(pilot)
        assert isinstance(app.screen, OrderEntryScreen) and app.screen.draft.lines
        await pilot.press("escape", "y")
        await settle(pilot)
        assert isinstance(app.screen, SalesDeskScreen) and count_orders(desk) == 0


async def test_a_returning_customer_gets_the_usual_address_and_standing_notes(
    desk: Store, clock: FixedClock
) -> None:
    with desk.write() as s:
        s.execute(text("UPDATE customer SET notes = '送货前电话联系' WHERE code = 'C001'"))
    site = "江苏省苏州市吴中区木渎镇 2 号仓"
    enter_order(
        desk,
        customer="C001",
        lines=[("HX-M8", 1)],
        user="wang",
        ship_address=site,
        packing_preset="3",
        promised=LATER,
    )
    clock.advance(hours=2)
    app = make_app(desk, clock)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot, "wang")
        screen = await new_entry(pilot)
        await pick_customer(pilot, "C001")
        assert screen.query_one("#entry-address", Input).value == site
        assert screen.query_one("#entry-packing", Input).value == "3"
        assert screen.query_one("#entry-notes", Input).value == "送货前电话联系"
        assert "returning: 1 orders" in str(screen.query_one("#entry-customer-info", Static).render())


# -- duplicates --------------------------------------------------------------------------------------------
async def test_a_duplicate_asks_for_a_reason_and_cancel_saves_nothing(desk: Store, clock: FixedClock) -> None:
    first = enter_order(desk, customer="C003", lines=[("FL-DN50", 3)], user="wang").detail.order_no
    app = make_app(desk, clock)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot, "wang")
        await enter_draft(pilot, "C003", ("FL-DN50", 3))
        assert f"Looks like {first}" in checks_text(pilot)
        await save(pilot)
        assert isinstance(app.screen, ChoiceDialog)
        assert first in str(app.screen.query_one("#choice-prompt", Static).render())
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, OrderEntryScreen) and "Not saved" in checks_text(pilot)
        assert count_orders(desk) == 1
        await save(pilot)
        await pilot.press("down", "enter")  # Urgent restock
        await settle(pilot)
        assert isinstance(app.screen, SalesDeskScreen) and count_orders(desk) == 2
    with desk.read() as s:
        reason = s.execute(
            text("SELECT duplicate_reason, duplicate_of FROM order_sales ORDER BY order_id DESC")
        ).first()
    assert tuple(reason) == ("urgent_restock", first)  # type: ignore[arg-type]


async def test_other_as_the_duplicate_reason_needs_text(desk: Store, clock: FixedClock) -> None:
    enter_order(desk, customer="C003", lines=[("FL-DN50", 3)], user="wang")
    app = make_app(desk, clock)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot, "wang")
        await enter_draft(pilot, "C003", ("FL-DN50", 3))
        await save(pilot)
        await pilot.press("down", "down", "down", "enter")  # Other: the text field takes the focus
        await pilot.press("enter")
        await settle(pilot)
        assert "Say what the reason is" in str(app.screen.query_one("#choice-error", Static).render())
        await pilot.press(*"trade fair", "enter")
        await settle(pilot)
        assert count_orders(desk) == 2


# -- credit, approval, lead time, rush ----------------------------------------------------------------------
async def test_over_credit_is_said_before_saving_and_the_order_goes_on_hold(
    desk: Store, clock: FixedClock
) -> None:
    app = make_app(desk, clock)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot, "wang")
        await enter_draft(pilot, "C002", ("FL-DN50", 11))  # ¥968 of ¥1,000: fine
        assert "Credit: ¥968.00 of ¥1,000.00" in checks_text(pilot)
        await add_line(pilot, "FL-DN50", 9)  # ¥1,760: over
        assert "Over the credit limit (¥1,760.00 of ¥1,000.00)" in checks_text(pilot)
        await save(pilot)
        assert isinstance(app.screen, SalesDeskScreen)
        no = last_order(desk)
        assert order_state(desk, no) == "on_hold"
        table = app.screen.query_one("#worklist", DataTable)
        assert row_keys(table)[0] == no and "Credit hold" in str(table.get_cell(no, "flags"))


async def test_approval_is_said_before_saving(desk: Store, clock: FixedClock) -> None:
    app = make_app(desk, clock)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot, "wang")
        await enter_draft(pilot, "C001", ("FL-DN50", 500))  # ¥44,000: under ¥50,000
        assert "No approval needed" in checks_text(pilot)
        await add_line(pilot, "FL-DN50", 100)  # ¥52,800
        assert "Over ¥50,000.00: needs approval by Finance" in checks_text(pilot)
        await save(pilot)
    with desk.read() as s:
        assert s.execute(text("SELECT approval FROM order_sales")).scalar() == "pending"


async def test_an_earlier_promise_without_a_reason_is_refused_on_screen(
    desk: Store, clock: FixedClock
) -> None:
    app = make_app(desk, clock)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot, "wang")
        screen = await enter_draft(pilot, "C001", ("HX-M8", 10))
        await set_promised(pilot, clock().date() + timedelta(days=3))
        assert "Short lead time: under 7 days" in checks_text(pilot)
        await save(pilot)
        assert isinstance(app.screen, OrderEntryScreen)
        assert "give a reason for promising it" in checks_text(pilot) and count_orders(desk) == 0
        screen.query_one("#entry-reason", Input).value = "客户自提"
        await save(pilot)
        assert isinstance(app.screen, SalesDeskScreen)
        no = last_order(desk)
        table = app.screen.query_one("#worklist", DataTable)
        assert "red" in cell_style(table, no, "promised") and "Short" in str(table.get_cell(no, "flags"))


async def test_a_rush_order_is_entered_and_shown_blocked_until_ready(desk: Store, clock: FixedClock) -> None:
    app = make_app(desk, clock)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot, "wang")
        screen = await enter_draft(pilot, "C003", ("HX-M8", 10))
        await pilot.press("f6")
        assert screen.draft.rush and "only after technical sign-off and kitted materials" in checks_text(
            pilot
        )
        await save(pilot)
        no = last_order(desk)
        assert show_order(desk, no).rush
        table = app.screen.query_one("#worklist", DataTable)
        assert "Rush blocked" in str(table.get_cell(no, "flags"))


async def test_a_second_order_is_offered_as_a_linked_child(desk: Store, clock: FixedClock) -> None:
    parent = enter_order(
        desk, customer="C001", lines=[("HX-M8", 10)], user="wang", promised=LATER
    ).detail.order_no
    clock.advance(minutes=12)
    app = make_app(desk, clock)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot, "wang")
        await enter_draft(pilot, "C001", ("FL-DN50", 1))
        assert f"{parent} was entered just now for the same address" in checks_text(pilot)
        await save(pilot)
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("y")
        await settle(pilot)
        child = last_order(desk)
        await enter_draft(pilot, "C001", ("PT-RED", 1))
        await save(pilot)
        await pilot.press("n")  # not linked
        await settle(pilot)
        other = last_order(desk)
    with desk.read() as s:
        parents = dict(
            s.execute(
                text(
                    "SELECT o.order_no, p.order_no FROM order_sales x JOIN sales_order o ON o.id = x.order_id LEFT JOIN sales_order p ON p.id = x.parent_id"
                )
            ).all()
        )
    assert parents[child] == parent and parents[other] is None


# -- change requests, approvals, versions ------------------------------------------------------------------
async def test_filing_a_change_request_from_the_desk(desk: Store, clock: FixedClock) -> None:
    no = enter_order(
        desk, customer="C003", lines=[("HX-M8", 100)], user="wang", promised=LATER
    ).detail.order_no
    move_order(desk, order_no=no, to="sign_contract", user="wang")
    app = make_app(desk, clock)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot, "wang")
        table = app.screen.query_one("#worklist", DataTable)
        table.move_cursor(row=table.get_row_index(no))
        await pilot.press("c")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, ChangeRequestScreen)
        await pilot.press("e")
        screen.query_one("#change-qty", Input).value = "105"
        await pilot.press("enter")
        await settle(pilot)
        preview = str(screen.query_one("#change-preview", Static).render())
        assert "Class: Minor" in preview and "Approved by: Sales / Supervisor" in preview
        await pilot.press("ctrl+s")  # no reason yet: refused
        await settle(pilot)
        assert "Reason must not be empty" in str(screen.query_one("#change-preview", Static).render())
        screen.query_one("#change-reason", Input).value = "客户加 5 个"
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert isinstance(app.screen, SalesDeskScreen)
        assert "Change" in str(app.screen.query_one("#worklist", DataTable).get_cell(no, "flags"))
    with desk.read() as s:
        assert s.execute(text("SELECT change_class, status FROM change_request")).first() == (
            "minor",
            "pending",
        )


async def test_the_requester_may_not_approve_but_a_colleague_may_and_versions_show_it(
    desk: Store, clock: FixedClock
) -> None:
    add_user(desk, name="li", roles=["sales"], pin="1234")
    no = enter_order(
        desk, customer="C003", lines=[("HX-M8", 100)], user="wang", promised=LATER
    ).detail.order_no
    cr = request_change(desk, order_no=no, user="wang", reason="加量", quantities={"HX-M8": 110})
    app = make_app(desk, clock)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot, "wang")
        await pilot.press("a")
        await settle(pilot)
        assert isinstance(app.screen, ChangeApprovalsScreen)
        await pilot.press("y")
        assert isinstance(app.screen, ReasonDialog)
        await pilot.press("enter")
        await settle(pilot)
        assert "may not approve it too" in str(app.screen.query_one("#approval-detail", Static).render())
    app = make_app(desk, clock)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot, "li")
        await pilot.press("a")
        await settle(pilot)
        assert row_keys(app.screen.query_one("#approvals", DataTable)) == [str(cr.id)]
        await pilot.press("y", "enter")
        await settle(pilot)
        assert row_keys(app.screen.query_one("#approvals", DataTable)) == []
        await pilot.press("escape")
        table = app.screen.query_one("#worklist", DataTable)
        table.move_cursor(row=table.get_row_index(no))
        await pilot.press("v")
        await settle(pilot)
        assert isinstance(app.screen, VersionsScreen)
        title = str(app.screen.query_one("#versions-title", Static).render())
        assert "version 1 → 2" in title
        # Side by side: the old quantity on the left, the new one on the right, on the same row.
        row = next(ln for ln in screen_text(app).splitlines() if "HX-M8" in ln)
        left, right = row[: len(row) // 2], row[len(row) // 2 :]
        assert "100" in left and "110" in right
    assert [ln.quantity for ln in show_order(desk, no).lines] == [110]


async def test_a_major_change_waits_for_the_supervisor(desk: Store, clock: FixedClock) -> None:
    no = enter_order(
        desk, customer="C003", lines=[("HX-M8", 100)], user="wang", promised=LATER
    ).detail.order_no
    request_change(desk, order_no=no, user="wang", reason="换料", replace={"HX-M8": "BR-6204"})
    app = make_app(desk, clock)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot, "wang")
        await pilot.press("a")
        await settle(pilot)
        assert row_keys(app.screen.query_one("#approvals", DataTable)) == []  # not sales' to decide
    app = make_app(desk, clock)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot, "sun")
        assert app.session is not None
        await app.push_screen(ChangeApprovalsScreen(app.session))
        await settle(pilot)
        await pilot.press("y", "enter")
        await settle(pilot)
    assert [ln.sku for ln in show_order(desk, no).lines] == ["BR-6204"]


# -- both languages, 80x24 ---------------------------------------------------------------------------------
async def test_order_entry_works_in_chinese(desk: Store, clock: FixedClock) -> None:
    app = make_app(desk, clock, lang="zh")
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot, "wang")
        await enter_draft(pilot, "宁波", ("FL-DN50", 20))
        assert "超出信用额度" in checks_text(pilot)
        await save(pilot)
        assert isinstance(app.screen, SalesDeskScreen)
        assert "信用冻结" in str(
            app.screen.query_one("#worklist", DataTable).get_cell(last_order(desk), "flags")
        )


SnapCompare = Any


@pytest.fixture
def busy_desk(desk: Store, clock: FixedClock) -> Store:
    enter_order(desk, customer="C002", lines=[("FL-DN50", 20)], user="wang")
    enter_order(desk, customer="C001", lines=[("FL-DN50", 600)], user="wang", promised=LATER)
    enter_order(
        desk,
        customer="C003",
        lines=[("HX-M8", 10)],
        user="wang",
        promised=date(2026, 11, 24),
        promised_reason="客户急需",
        rush=True,
    )
    no = enter_order(
        desk,
        customer="C001",
        lines=[("PT-RED", 2)],
        user="wang",
        promised=LATER,
        duplicate_reason="sample_test",
    ).detail.order_no
    request_change(desk, order_no=no, user="wang", reason="加量", quantities={"PT-RED": 3})
    enter_order(
        desk, customer="C003", lines=[("BR-6204", 2)], user="wang", promised=LATER, route="from_stock"
    )
    return desk


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_snapshot_sales_desk(
    snap_compare: SnapCompare, busy_desk: Store, clock: FixedClock, lang: str
) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await log_in(pilot, "wang")

    assert snap_compare(make_app(busy_desk, clock, lang), terminal_size=SIZE, run_before=run_before)


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_snapshot_order_entry(
    snap_compare: SnapCompare, busy_desk: Store, clock: FixedClock, lang: str
) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await log_in(pilot, "wang")
        await enter_draft(pilot, "C002", ("FL-DN50", 12))
        await add_line(pilot, "HX-M8", 40)

    assert snap_compare(make_app(busy_desk, clock, lang), terminal_size=SIZE, run_before=run_before)
