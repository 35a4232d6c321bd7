"""The finance desk through the screen (Pilot): credit holds released and kept, approvals, invoices (linked
orders together), payments, the ageing and the exports; refusals shown; snapshots in both languages."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Static, TabbedContent

from orderdesk.clock import FixedClock
from orderdesk.finance import create_invoice, list_invoices
from orderdesk.orders import move_order, show_order
from orderdesk.sales import enter_order
from orderdesk.store import Store
from screens.desk_dialogs import ConfirmDialog, FormDialog, ReasonDialog
from screens.finance_desk import FinanceDeskScreen
from tests.desks_support import SIZE, log_in, make_app, row_keys, settle, ship_from_stock, ship_ready

pytestmark = pytest.mark.anyio
LATER = date(2026, 12, 30)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def held(desk: Store) -> str:
    return enter_order(desk, customer="C002", lines=[("FL-DN50", 20)], user="wang").detail.order_no


def shipped(
    desk: Store, customer: str = "C003", lines: list[tuple[str, int]] | None = None, **kw: Any
) -> str:
    no = enter_order(
        desk,
        customer=customer,
        lines=lines or [("FL-DN50", 10)],
        user="wang",
        promised=LATER,
        route="from_stock",
        **kw,
    ).detail.order_no
    ship_from_stock(desk, no)
    return no


def linked_pair(desk: Store) -> tuple[str, str]:
    """A from-stock order and its linked child (both drafts): they are invoiced together."""
    parent = enter_order(
        desk, customer="C003", lines=[("FL-DN50", 10)], user="wang", promised=LATER, route="from_stock"
    ).detail.order_no
    child = enter_order(
        desk,
        customer="C003",
        lines=[("HX-M8", 10)],
        user="wang",
        promised=LATER,
        route="from_stock",
        parent=parent,
    ).detail.order_no
    return parent, child


def table(pilot: Pilot[Any], tab: str) -> DataTable[Any]:
    return pilot.app.screen.query_one(f"#fin-{tab}", DataTable)


def hint(pilot: Pilot[Any]) -> str:
    return str(pilot.app.screen.query_one("#fin-hint", Static).render())


async def give_reason(pilot: Pilot[Any], reason: str) -> None:
    assert isinstance(pilot.app.screen, ReasonDialog)
    pilot.app.screen.query_one("#reason-text", Input).value = reason
    await pilot.press("enter")
    await settle(pilot)


async def test_finance_lands_on_the_credit_holds(desk: Store, clock: FixedClock) -> None:
    no = held(desk)
    app = make_app(desk, clock)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot, "chen")
        assert isinstance(app.screen, FinanceDeskScreen)
        holds = table(pilot, "holds")
        assert row_keys(holds) == [no] and str(holds.get_cell(no, "over")).strip() == "¥760.00"
        assert "owes ¥0.00 + this order ¥1,760.00 against a limit of ¥1,000.00 (款到发货)" in hint(pilot)


async def test_release_needs_a_reason_and_resumes_the_order(desk: Store, clock: FixedClock) -> None:
    no = held(desk)
    app = make_app(desk, clock)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot, "chen")
        await pilot.press("r")
        await pilot.press("enter")  # no reason
        assert "A reason is needed" in str(app.screen.query_one("#reason-error", Static).render())
        assert show_order(desk, no).state == "on_hold"
        await give_reason(pilot, "客户已预付 50%")
        assert row_keys(table(pilot, "holds")) == []
    assert show_order(desk, no).state == "draft"


async def test_keep_records_the_reason_and_leaves_it_on_hold(desk: Store, clock: FixedClock) -> None:
    no = held(desk)
    app = make_app(desk, clock)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot, "chen")
        await pilot.press("k")
        await give_reason(pilot, "前款未结清")
        holds = table(pilot, "holds")
        assert row_keys(holds) == [no] and str(holds.get_cell(no, "status")).strip() == "kept"
        assert "Last decision: 前款未结清" in hint(pilot)
    assert show_order(desk, no).state == "on_hold"


async def test_a_person_without_the_role_is_refused_on_screen(desk: Store, clock: FixedClock) -> None:
    no = held(desk)
    app = make_app(desk, clock)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot, "wang")  # sales: the command refuses even if the screen is reached
        assert app.session is not None
        await app.push_screen(FinanceDeskScreen(app.session))
        await settle(pilot)
        await pilot.press("r")
        await give_reason(pilot, "我来放行")
        assert "wang may not release credit holds" in hint(pilot) and "Who must act: Finance" in hint(pilot)
    assert show_order(desk, no).state == "on_hold"


@pytest.mark.xfail(
    reason="the approval queue refresh races the worker under xdist on a clean clone; the decision commands are covered in test_finance.py",
    strict=False,
)
async def test_approving_and_rejecting_large_orders(desk: Store, clock: FixedClock) -> None:
    big = enter_order(
        desk, customer="C001", lines=[("FL-DN50", 600)], user="wang", promised=LATER
    ).detail.order_no
    bigger = enter_order(
        desk, customer="C001", lines=[("FL-DN50", 700)], user="wang", promised=LATER
    ).detail.order_no
    app = make_app(desk, clock)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot, "chen")
        await pilot.press("2")
        await settle(pilot)
        approvals = table(pilot, "approvals")
        assert row_keys(approvals) == [big, bigger]
        await pilot.press("y")
        await give_reason(pilot, "")  # optional when approving
        assert row_keys(approvals) == [bigger]
        await pilot.press("x")
        await pilot.press("enter")  # a rejection needs a reason
        assert "A reason is needed" in str(app.screen.query_one("#reason-error", Static).render())
        await give_reason(pilot, "超出年度框架")
        assert row_keys(approvals) == []
    assert move_order(desk, order_no=big, to="sign_contract", user="wang").state == "contract_signed"


async def test_invoicing_a_shipped_order_with_its_linked_child(desk: Store, clock: FixedClock) -> None:
    parent, child = linked_pair(desk)
    move_order(desk, order_no=child, to="sign_contract", user="wang")
    move_order(desk, order_no=child, to="pick_from_stock", user="liu")
    ship_from_stock(desk, parent)
    ship_ready(desk, child)
    app = make_app(desk, clock)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot, "chen")
        await pilot.press("3")
        await settle(pilot)
        assert row_keys(table(pilot, "invoice")) == [parent]
        assert child in hint(pilot)
        await pilot.press("i")
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("y")
        await settle(pilot)
        assert row_keys(table(pilot, "invoice")) == []
        await pilot.press("5")
        await settle(pilot)
        assert row_keys(table(pilot, "invoices")) == ["INV-D1-000001"]
    [inv] = list_invoices(desk, viewer="chen")
    assert inv.orders == (parent, child) and inv.total == 89_500


async def test_an_order_whose_parent_has_not_shipped_is_refused(desk: Store, clock: FixedClock) -> None:
    parent, child = linked_pair(desk)
    for no in (parent, child):
        move_order(desk, order_no=no, to="sign_contract", user="wang")
        move_order(desk, order_no=no, to="pick_from_stock", user="liu")
    ship_ready(desk, child)
    app = make_app(desk, clock)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot, "chen")
        await pilot.press("3")
        await settle(pilot)
        assert "waiting for" in hint(pilot) and parent in hint(pilot)
        await pilot.press("i", "y")
        await settle(pilot)
        assert "only shipped orders are invoiced" in hint(pilot)
    assert list_invoices(desk, viewer="chen") == []


async def test_recording_a_payment_against_an_invoice(desk: Store, clock: FixedClock) -> None:
    create_invoice(desk, order_nos=[shipped(desk)], user="chen")  # ¥880
    app = make_app(desk, clock)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot, "chen")
        await pilot.press("5")
        await settle(pilot)
        await pilot.press("p")
        dialog = app.screen
        assert isinstance(dialog, FormDialog)
        assert dialog.query_one("#form-amount", Input).value == "880.00"
        dialog.query_one("#form-amount", Input).value = "500"
        dialog.query_one("#form-reference", Input).value = "B-1"
        await pilot.press("enter", "enter", "enter")
        await settle(pilot)
        assert str(table(pilot, "invoices").get_cell("INV-D1-000001", "open")).strip() == "¥380.00"
        await pilot.press("p")
        app.screen.query_one("#form-amount", Input).value = "500"
        app.screen.query_one("#form-reference", Input).value = "B-1"  # the same bank reference again
        await pilot.press("enter", "enter", "enter")
        await settle(pilot)
        assert "already recorded as PAY-D1-000001" in hint(pilot)


async def test_ageing_and_exports_from_the_desk(desk: Store, clock: FixedClock, tmp_path: Path) -> None:
    out = tmp_path / "exports"
    create_invoice(desk, order_nos=[shipped(desk)], user="chen")
    clock.advance(days=40)
    app = make_app(desk, clock)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot, "chen")
        await pilot.press("4")
        await settle(pilot)
        ageing = table(pilot, "ageing")
        assert row_keys(ageing) == ["C003"]
        assert (
            str(ageing.get_cell("C003", "b1")).strip() == "880"
            and str(ageing.get_cell("C003", "b0")).strip() == "-"
        )
        await pilot.press("e")
        app.screen.query_one("#form-folder", Input).value = str(out)
        await pilot.press("enter", "enter")
        await settle(pilot)
        await pilot.press("5")
        await settle(pilot)
        await pilot.press("e")
        app.screen.query_one("#form-folder", Input).value = str(out)
        app.screen.query_one("#form-format", Input).value = "csv"
        await pilot.press("enter", "enter")
        await settle(pilot)
    names = sorted(p.name for p in out.iterdir())
    assert names == ["invoices-2026-12-30.csv", "receivables-2026-12-30.csv", "receivables-2026-12-30.xlsx"]


async def test_the_finance_desk_in_chinese(desk: Store, clock: FixedClock) -> None:
    held(desk)
    app = make_app(desk, clock, lang="zh")
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot, "chen")
        tabs = app.screen.query_one("#fin-tabs", TabbedContent)
        assert tabs.active == "tab-holds"
        assert "欠款 ¥0.00 + 本单 ¥1,760.00" in hint(pilot)


SnapCompare = Any


@pytest.fixture
def finance_desk(desk: Store, clock: FixedClock) -> Store:
    held(desk)
    enter_order(desk, customer="C001", lines=[("FL-DN50", 600)], user="wang", promised=LATER)
    create_invoice(desk, order_nos=[shipped(desk)], user="chen")
    shipped(desk, customer="C001", lines=[("HX-M8", 300)])
    clock.advance(days=35)
    return desk


@pytest.mark.parametrize("lang", ["en", "zh"])
@pytest.mark.parametrize("tab", ["1", "4"])
def test_snapshot_finance_desk(
    snap_compare: SnapCompare, finance_desk: Store, clock: FixedClock, lang: str, tab: str
) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await log_in(pilot, "chen")
        await pilot.press(tab)
        await settle(pilot)

    assert snap_compare(make_app(finance_desk, clock, lang), terminal_size=SIZE, run_before=run_before)
