# ruff: noqa: F811 - pytest fixtures are imported from tests/sync_fixtures.py
"""The sales, QC and finance desks through sync, against the real central API on loopback: each command is
made on one desk, replayed on the central API through the same domain command, and pulled by the other desk
with everything it wrote (sales checks, change requests and revisions, decisions, inspections, invoices,
payments); two desks deciding the same thing — the first to reach the central API wins and the other is
told why; a new desk's snapshot and a re-bootstrapped desk carry it all; and no synced command lacks a
replay."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from orderdesk import replication as rep
from orderdesk.catalog import add_customer
from orderdesk.errors import Refused
from orderdesk.finance import (
    approval_queue,
    create_invoice,
    credit_hold_queue,
    decide_approval,
    decide_credit,
    invoice_view,
    list_invoices,
    payment_view,
    record_payment,
)
from orderdesk.i18n import catalog
from orderdesk.models import Invoice, Payment
from orderdesk.orders import create_order, edit_order, move_order, show_order
from orderdesk.qc import Verdict, inspection_history, record_inspection
from orderdesk.sales import (
    change_requests,
    decide_change,
    enter_order,
    order_revisions,
    request_change,
)
from orderdesk.store import Store
from tests.desks_support import to_qc_pending
from tests.sync_fixtures import any_world, pg_cluster, pg_template, sqlite_template, world  # noqa: F401
from tests.sync_harness import READY_ORDER, World, business_state, enrol_local
from tests.sync_harness import converge as sync_converge

ROOT = Path(__file__).resolve().parent.parent


# -- helpers ---------------------------------------------------------------------------------------------
def image(store: Store, kind: str, key: str) -> Any:
    with store.read() as session:
        return rep.DUMPERS[kind](session, key)


def finance_state(store: Store) -> dict[str, Any]:
    """Every invoice's and payment's image (no local ids), to compare a desk with the server."""
    from sqlmodel import select

    with store.read() as session:
        out = {
            f"invoice:{n}": rep.DUMPERS["invoice"](session, n)
            for n in session.exec(select(Invoice.invoice_no))
        }
        out |= {
            f"payment:{n}": rep.DUMPERS["payment"](session, n)
            for n in session.exec(select(Payment.payment_no))
        }
        return out


def converge(w: World) -> None:
    """Every desk holds the server's entities, invoices and payments included."""
    sync_converge(w, lambda store: (business_state(store), finance_state(store)))


def rows(store: Store, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    with store.read() as session:
        return [tuple(r) for r in session.execute(text(sql), params).all()]


def sales_row(store: Store, order_no: str) -> dict[str, Any]:
    """The order's sales facts as the sales desk wrote them (the parent by order number)."""
    [row] = rows(
        store,
        "SELECT s.credit_hold, s.approval, s.duplicate_of, s.duplicate_reason, s.short_lead, s.proposed_date, "
        "s.promised_reason, p.order_no, o.state, o.promised_date FROM order_sales s "
        "JOIN sales_order o ON o.id = s.order_id LEFT JOIN sales_order p ON p.id = s.parent_id "
        "WHERE o.order_no = :no",
        no=order_no,
    )
    names = ["credit_hold", "approval", "duplicate_of", "duplicate_reason", "short_lead", "proposed_date"]
    names += ["promised_reason", "parent", "state", "promised_date"]
    return {  # the same types from SQLite and PostgreSQL
        k: v.isoformat() if isinstance(v, date) else bool(v) if k == "short_lead" else v
        for k, v in zip(names, row, strict=True)
    }


def request_id(store: Store, order_no: str) -> int:
    """This desk's row id of the order's (latest) change request."""
    return change_requests(store, status=None, order_no=order_no)[-1].id


def signed_on_server(w: World, lines: list[tuple[str, int]]) -> str:
    """An order the central API itself entered and signed, pulled by both desks."""
    no = create_order(w.store, customer="C001", lines=lines, user="wang").order_no
    move_order(w.store, order_no=no, to="sign_contract", user="wang")
    w.sync("a")
    w.sync("b")
    return no


def only_rejection(store: Store, code: str) -> rep.Rejection:
    [rejection] = rep.rejections(store)
    assert rejection.code == code, (rejection.code, str(rejection.reason))
    assert rejection.reason.msgid in catalog("zh")  # shown in the desk user's language
    assert rejection.is_conflict  # the supervisor's queue marks it as "someone else got there first"
    return rejection


# -- the sales desk --------------------------------------------------------------------------------------
def test_an_order_entered_at_the_sales_desk_arrives_with_its_checks(any_world: World) -> None:
    w = any_world
    a, b = w.desks["a"], w.desks["b"]
    add_customer(
        w.store, code="C010", name="杭州小额客户有限公司", address="杭州市西湖区", credit_limit=100_000
    )
    w.sync("a")
    held = enter_order(a, customer="C010", lines=[("HX-M8", 1000)], user="wang", promised=date(2026, 12, 30))
    large = enter_order(a, customer="C001", lines=[("BR-6204", 5000)], user="wang")
    # The same items as READY_ORDER a few hours ago: entered anyway with a reason, linked to ``large``,
    # promised sooner than proposed with a reason, packed with the customer's packaging.
    child = enter_order(
        a,
        customer="C001",
        lines=[("HX-M8", 10)],
        user="wang",
        duplicate_reason="urgent_restock",
        parent=large.detail.order_no,
        promised=date(2026, 11, 22),
        promised_reason="客户自提",
        rush=True,
        packing_preset="1",
    )
    assert held.on_credit_hold and large.needs_approval and child.duplicate_of == READY_ORDER
    orders = [held.detail.order_no, large.detail.order_no, child.detail.order_no]
    on_desk = {no: sales_row(a, no) for no in orders}
    assert w.sync("a").applied == 3

    # The central API ran the sales desk's checks: the same facts, not a bare order.
    for no in orders:
        assert sales_row(w.store, no) == on_desk[no]
    assert sales_row(w.store, held.detail.order_no)["credit_hold"] == "pending"
    assert sales_row(w.store, held.detail.order_no)["state"] == "on_hold"
    assert sales_row(w.store, large.detail.order_no)["approval"] == "pending"
    facts = sales_row(w.store, child.detail.order_no)
    assert (facts["duplicate_of"], facts["duplicate_reason"], facts["parent"]) == (
        READY_ORDER,
        "urgent_restock",
        large.detail.order_no,
    )
    assert facts["promised_reason"] == "客户自提" and facts["short_lead"]
    assert show_order(w.store, child.detail.order_no).summary.rush
    assert image(w.store, "order", child.detail.order_no)["packing_preset"] == "1"

    # Desk b sees them as desk a does: in finance's queues, with the same sales facts.
    w.sync("b")
    for no in orders:
        assert sales_row(b, no) == on_desk[no]
    assert [i.order_no for i in credit_hold_queue(b, viewer="chen")] == [held.detail.order_no]
    assert [i.order_no for i in approval_queue(b, viewer="chen")] == [large.detail.order_no]
    converge(w)


def test_an_entry_made_offline_is_not_refused_for_what_only_the_central_api_knew(world: World) -> None:
    """Desk b enters the same items as desk a (neither knows of the other): the central API sees a duplicate
    desk b's user never saw, and takes the order anyway rather than lose it."""
    a, b = world.desks["a"], world.desks["b"]
    first = enter_order(a, customer="C002", lines=[("BR-6204", 2)], user="wang").detail.order_no
    second = enter_order(b, customer="C002", lines=[("BR-6204", 2)], user="wang").detail.order_no
    world.sync("a")
    assert world.sync("b").applied == 1 and rep.rejections(b) == []
    assert {first, second} <= {r[0] for r in rows(world.store, "SELECT order_no FROM sales_order")}
    converge(world)


def test_a_change_request_filed_on_one_desk_is_decided_on_the_other(world: World) -> None:
    a, b = world.desks["a"], world.desks["b"]
    x = signed_on_server(world, [("HX-M8", 100)])
    y = signed_on_server(world, [("HX-M8", 200)])
    request_change(a, order_no=x, user="wang", reason="客户加 5 个", quantities={"HX-M8": 105})
    request_change(b, order_no=y, user="wang", reason="客户加 10 个", quantities={"HX-M8": 210})
    assert world.sync("a").applied == 1
    assert rows(world.store, "SELECT status, requested_by FROM change_request") == [("pending", "wang")]
    assert world.sync("b").applied == 1
    # Row ids differ: the server has x's request first, desk b has y's first.
    assert (
        request_id(b, x)
        != rows(
            world.store,
            "SELECT c.id FROM change_request c JOIN sales_order o ON o.id = c.order_id WHERE o.order_no = :x",
            x=x,
        )[0][0]
    )
    assert change_requests(b, order_no=x)[0].reason == "客户加 5 个"

    decide_change(b, request_id=request_id(b, x), approve=True, user="li")
    assert world.sync("b").applied == 1
    assert [ln.quantity for ln in show_order(world.store, x).lines] == [105]
    assert [ln.quantity for ln in show_order(world.store, y).lines] == [200]  # not y's request
    assert change_requests(world.store, status=None, order_no=x)[0].status == "approved"
    assert change_requests(world.store, status=None, order_no=y)[0].status == "pending"
    assert [r.revision for r in order_revisions(world.store, x)] == [1, 2]

    world.sync("a")
    [done] = change_requests(a, status=None, order_no=x)
    assert (done.status, done.decided_by, done.new_revision) == ("approved", "li", 2)
    revisions = order_revisions(a, x)
    assert [r.revision for r in revisions] == [1, 2] and revisions[1].change_request_id == done.id
    assert [ln.quantity for ln in show_order(a, x).lines] == [105]
    converge(world)


def test_two_desks_deciding_the_same_change_request_first_wins(any_world: World) -> None:
    w = any_world
    a, b = w.desks["a"], w.desks["b"]
    no = signed_on_server(w, [("HX-M8", 100)])
    request_change(a, order_no=no, user="wang", reason="客户加 5 个", quantities={"HX-M8": 105})
    w.sync("a")
    w.sync("b")
    decide_change(a, request_id=request_id(a, no), approve=True, user="li")
    decide_change(b, request_id=request_id(b, no), approve=False, user="sun", reason="库存不够")
    assert w.sync("a").applied == 1
    report = w.sync("b")
    assert report.rejected == 1 and report.applied == 0
    rejection = only_rejection(b, "decision_conflict")
    reason = str(rejection.reason)
    assert f"change request on order {no} from wang was already approved by li" in reason
    assert "first decision to reach the central API wins" in reason
    assert rejection.command == "decide_change" and rejection.order_no == no
    converge(w)
    [decided] = change_requests(b, status=None, order_no=no)
    assert (decided.status, decided.decided_by) == ("approved", "li")
    assert [ln.quantity for ln in show_order(b, no).lines] == [105]


def test_a_decision_on_a_change_request_the_central_api_refused_does_not_land_on_another(
    world: World,
) -> None:
    a, b = world.desks["a"], world.desks["b"]
    no = signed_on_server(world, [("HX-M8", 100)])
    request_change(a, order_no=no, user="wang", reason="客户加 5 个", quantities={"HX-M8": 105})
    # Desk b, offline, files its own change and approves it: both number the request 1 on the order.
    request_change(b, order_no=no, user="wang", reason="客户减 10 个", quantities={"HX-M8": 90})
    decide_change(b, request_id=request_id(b, no), approve=True, user="li")
    world.sync("a")
    report = world.sync("b")
    assert report.rejected == 2
    codes = {r.command: r.code for r in rep.rejections(b)}
    assert codes == {"request_change": "change_pending", "decide_change": "change_rejected"}
    assert change_requests(world.store, status=None, order_no=no)[0].status == "pending"  # a's: untouched
    assert [ln.quantity for ln in show_order(world.store, no).lines] == [100]
    converge(world)
    [waiting] = change_requests(b, order_no=no)
    assert waiting.reason == "客户加 5 个" and [ln.quantity for ln in show_order(b, no).lines] == [100]


def test_an_edit_of_a_field_an_approved_change_set_meanwhile_is_a_conflict(world: World) -> None:
    """An approved change request sets the ship-to; desk b, which had not seen it, edits the ship-to too:
    b's edit is kept as a conflict for a person, as if another desk had edited the field."""
    a, b = world.desks["a"], world.desks["b"]
    no = signed_on_server(world, [("HX-M8", 100)])
    request_change(
        a, order_no=no, user="wang", reason="客户换仓库", ship_address="苏州市工业园区星湖街 328 号"
    )
    world.sync("a")
    decide_change(world.store, request_id=request_id(world.store, no), approve=True, user="sun")
    edit_order(b, order_no=no, changes={"ship_address": "上海市浦东新区张江路 88 号"}, user="wang")
    assert world.sync("b").rejected == 1
    [rejection] = rep.rejections(b)
    assert rejection.code == "edit_conflict" and "苏州市工业园区星湖街 328 号" in str(rejection.reason)
    converge(world)
    assert show_order(b, no).ship_address == "苏州市工业园区星湖街 328 号"


def test_a_change_request_filed_on_an_out_of_date_order_is_refused(world: World) -> None:
    a, b = world.desks["a"], world.desks["b"]
    no = signed_on_server(world, [("HX-M8", 100)])
    request_change(a, order_no=no, user="wang", reason="客户加 5 个", quantities={"HX-M8": 105})
    decide_change(a, request_id=request_id(a, no), approve=False, user="li", reason="不加了")
    world.sync("a")
    request_change(b, order_no=no, user="wang", reason="客户加 10 个", quantities={"HX-M8": 110})  # b: #1
    assert world.sync("b").rejected == 1
    reason = str(only_rejection(b, "change_conflict").reason)
    assert (
        f"every change request of order {no} when you filed this one (the central API has 1, your desk knew of 0)"
        in reason
    )
    converge(world)
    assert [r.status for r in change_requests(b, status=None, order_no=no)] == ["rejected"]


# -- the QC desk -----------------------------------------------------------------------------------------
def qc_order_on_server(w: World) -> str:
    no = create_order(w.store, customer="C001", lines=[("HX-M8", 100), ("BR-6204", 2)], user="wang").order_no
    to_qc_pending(w.store, no)
    w.sync("a")
    w.sync("b")
    return no


def test_an_inspection_reaches_the_server_and_the_other_desk(any_world: World) -> None:
    w = any_world
    a, b = w.desks["a"], w.desks["b"]
    no = qc_order_on_server(w)
    verdicts = [
        Verdict(line=1, passed=True),
        Verdict(line=2, passed=True, sample_no=1),
        Verdict(line=2, passed=False, sample_no=2, defects=("D01",), measurements="Ø20.4", note="外圈超差"),
    ]
    record_inspection(a, order_no=no, user="zhou", verdicts=verdicts, notes="第二件超差")
    mine = inspection_history(a, no)
    assert w.sync("a").applied == 1
    assert rows(w.store, "SELECT seq, inspector, result, notes FROM qc_inspection") == [
        (1, "zhou", "failed", "第二件超差")
    ]
    assert rows(
        w.store, "SELECT line_no, sample_no, passed, defects, measurements FROM qc_finding ORDER BY id"
    ) == [
        (1, 0, True, "", ""),
        (2, 1, True, "", ""),
        (2, 2, False, "D01", "Ø20.4"),
    ]
    server = show_order(w.store, no)
    assert (server.state, server.qc_result) == ("qc_failed", "failed")
    w.sync("b")
    theirs = inspection_history(b, no)
    assert [(v.seq, v.result, v.reason, v.findings) for v in theirs] == [
        (v.seq, v.result, v.reason, v.findings) for v in mine
    ]
    assert show_order(b, no).state == "qc_failed"
    converge(w)


def test_two_desks_inspecting_the_same_order_first_wins(world: World) -> None:
    a, b = world.desks["a"], world.desks["b"]
    no = qc_order_on_server(world)
    record_inspection(
        a,
        order_no=no,
        user="zhou",
        verdicts=[Verdict(line=1, passed=False, defects=("D02",)), Verdict(line=2, passed=True)],
    )
    record_inspection(
        b, order_no=no, user="zhou", verdicts=[Verdict(line=1, passed=True), Verdict(line=2, passed=True)]
    )
    world.sync("a")
    assert world.sync("b").rejected == 1
    reason = str(only_rejection(b, "inspection_conflict").reason)
    assert f"Order {no} was already inspected by zhou (failed)" in reason
    assert "first inspection to reach the central API wins" in reason
    converge(world)
    assert [v.result for v in inspection_history(b, no)] == ["failed"]
    assert show_order(b, no).state == "qc_failed"


# -- the finance desk: credit holds and approvals --------------------------------------------------------
def held_on_server(w: World) -> str:
    add_customer(
        w.store, code="C010", name="杭州小额客户有限公司", address="杭州市西湖区", credit_limit=100_000
    )
    no = enter_order(w.store, customer="C010", lines=[("HX-M8", 1000)], user="wang").detail.order_no
    w.sync("a")
    w.sync("b")
    return no


def test_a_credit_release_reaches_the_server_and_the_other_desk(world: World) -> None:
    a, b = world.desks["a"], world.desks["b"]
    no = held_on_server(world)
    assert show_order(b, no).state == "on_hold"
    decide_credit(a, order_no=no, release=True, user="chen", reason="客户已付款")
    assert world.sync("a").applied == 1
    assert sales_row(world.store, no)["credit_hold"] == "released"
    assert show_order(world.store, no).state == "draft"
    assert rows(world.store, "SELECT kind, decision, reason, user_name FROM desk_decision") == [
        ("credit", "release", "客户已付款", "chen")
    ]
    world.sync("b")
    assert sales_row(b, no)["credit_hold"] == "released" and show_order(b, no).state == "draft"
    assert rows(b, "SELECT kind, decision, reason, user_name FROM desk_decision") == [
        ("credit", "release", "客户已付款", "chen")
    ]
    assert credit_hold_queue(b, viewer="chen") == []
    converge(world)


def test_two_desks_deciding_the_same_credit_hold_first_wins(any_world: World) -> None:
    w = any_world
    a, b = w.desks["a"], w.desks["b"]
    no = held_on_server(w)
    decide_credit(a, order_no=no, release=True, user="chen", reason="客户已付款")
    decide_credit(b, order_no=no, release=False, user="chen", reason="等待付款")
    w.sync("a")
    assert w.sync("b").rejected == 1
    reason = str(only_rejection(b, "decision_conflict").reason)
    assert f"credit hold on order {no} was already decided (released) by chen" in reason
    assert "your decision (keep on hold)" in reason
    converge(w)
    assert show_order(b, no).state == "draft" and sales_row(b, no)["credit_hold"] == "released"


def test_two_desks_deciding_the_same_approval_first_wins(world: World) -> None:
    a, b = world.desks["a"], world.desks["b"]
    no = enter_order(world.store, customer="C001", lines=[("BR-6204", 5000)], user="wang").detail.order_no
    world.sync("a")
    world.sync("b")
    assert [i.order_no for i in approval_queue(b, viewer="chen")] == [no]
    decide_approval(a, order_no=no, approve=True, user="chen")
    decide_approval(b, order_no=no, approve=False, user="chen", reason="金额太大")
    assert world.sync("a").applied == 1
    assert sales_row(world.store, no)["approval"] == "approved"
    assert rows(world.store, "SELECT kind, decision, user_name FROM desk_decision") == [
        ("approval", "approve", "chen")
    ]
    assert world.sync("b").rejected == 1
    reason = str(only_rejection(b, "decision_conflict").reason)
    assert f"Order {no} was already approved by chen before your decision (reject) arrived" in reason
    converge(world)
    assert sales_row(b, no)["approval"] == "approved" and approval_queue(b, viewer="chen") == []


def test_an_approval_made_on_an_amount_that_changed_meanwhile_decides_nothing(world: World) -> None:
    """Desk b approves offline; meanwhile the centre approves it and a change raises the amount, so the order
    waits for approval again: b's approval of the old amount must not approve the new one."""
    b = world.desks["b"]
    no = enter_order(world.store, customer="C001", lines=[("BR-6204", 5000)], user="wang").detail.order_no
    world.sync("b")
    decide_approval(b, order_no=no, approve=True, user="chen")
    decide_approval(world.store, order_no=no, approve=True, user="chen")
    move_order(world.store, order_no=no, to="sign_contract", user="wang")
    request_change(world.store, order_no=no, user="wang", reason="客户加量", quantities={"BR-6204": 9000})
    decide_change(world.store, request_id=request_id(world.store, no), approve=True, user="sun")
    assert sales_row(world.store, no)["approval"] == "pending"  # the raise needs approval again
    assert world.sync("b").rejected == 1
    reason = str(only_rejection(b, "decision_conflict").reason)
    assert f"Order {no} now comes to" in reason and "Decide it again" in reason
    assert sales_row(world.store, no)["approval"] == "pending"
    converge(world)
    assert [i.order_no for i in approval_queue(b, viewer="chen")] == [no]


# -- the finance desk: invoices and payments -------------------------------------------------------------
def shipped_on_server(w: World) -> str:
    move_order(w.store, order_no=READY_ORDER, to="ship", user="liu")
    w.sync("a")
    w.sync("b")
    return READY_ORDER


def test_invoices_and_payments_reach_the_server_and_the_other_desk(any_world: World) -> None:
    w = any_world
    a, b = w.desks["a"], w.desks["b"]
    no = shipped_on_server(w)
    prepaid = record_payment(a, customer="C001", amount=500, user="chen", reference="预付款")
    invoice = create_invoice(a, order_nos=[no], user="chen", note="十一月")
    assert (invoice.total, invoice.paid) == (1500, 500)
    assert w.sync("a").applied == 2
    # The central API keeps the numbers desk a gave them.
    assert rows(w.store, "SELECT invoice_no, total, paid, note, created_by FROM invoice") == [
        (invoice.invoice_no, 1500, 500, "十一月", "chen")
    ]
    assert rows(w.store, "SELECT payment_no, amount, unallocated, reference FROM payment") == [
        (prepaid.payment_no, 500, 0, "预付款")
    ]
    assert invoice_view(w.store, invoice.invoice_no).orders == (no,)
    assert payment_view(w.store, prepaid.payment_no).matched == ((invoice.invoice_no, 500),)

    w.sync("b")
    assert invoice_view(b, invoice.invoice_no) == invoice_view(w.store, invoice.invoice_no)
    assert payment_view(b, prepaid.payment_no).matched == ((invoice.invoice_no, 500),)
    rest = record_payment(b, customer="C001", amount=1000, user="chen", invoices=[invoice.invoice_no])
    assert rest.payment_no.startswith("PAY-") and rest.payment_no != prepaid.payment_no
    assert w.sync("b").applied == 1
    assert invoice_view(w.store, invoice.invoice_no).paid == 1500
    assert payment_view(w.store, rest.payment_no).matched == ((invoice.invoice_no, 1000),)
    w.sync("a")
    assert invoice_view(a, invoice.invoice_no).open == 0
    converge(w)


def test_two_desks_invoicing_the_same_order_first_wins(world: World) -> None:
    a, b = world.desks["a"], world.desks["b"]
    no = shipped_on_server(world)
    prepaid = record_payment(b, customer="C001", amount=500, user="chen", reference="预付款")
    world.sync("b")
    mine = create_invoice(a, order_nos=[no], user="chen")  # desk a has not heard of the prepayment
    theirs = create_invoice(b, order_nos=[no], user="chen")  # desk b matches it to its own invoice
    assert (mine.paid, theirs.paid) == (0, 500)
    world.sync("a")
    # The central API matched the prepayment to the invoice that reached it.
    assert invoice_view(world.store, mine.invoice_no).paid == 500
    assert payment_view(world.store, prepaid.payment_no).matched == ((mine.invoice_no, 500),)
    assert world.sync("b").rejected == 1
    reason = str(only_rejection(b, "invoice_conflict").reason)
    assert (
        f"Order {no} was already invoiced on {mine.invoice_no} by chen before your invoice {theirs.invoice_no}"
        in reason
    )
    assert "first invoice to reach the central API wins" in reason
    converge(world)
    with pytest.raises(Refused) as gone:
        invoice_view(b, theirs.invoice_no)
    assert gone.value.code == "unknown_invoice"
    assert [i.invoice_no for i in list_invoices(b, viewer="chen")] == [mine.invoice_no]
    assert payment_view(b, prepaid.payment_no).matched == ((mine.invoice_no, 500),)


# -- bootstrap -------------------------------------------------------------------------------------------
def everything(w: World) -> dict[str, str]:
    """Every desk command once, from desk a, synced."""
    a = w.desks["a"]
    add_customer(
        w.store, code="C010", name="杭州小额客户有限公司", address="杭州市西湖区", credit_limit=100_000
    )
    w.sync("a")
    held = enter_order(a, customer="C010", lines=[("HX-M8", 1000)], user="wang", rush=True).detail.order_no
    decide_credit(a, order_no=held, release=False, user="chen", reason="等待付款")
    w.sync("a")
    no = signed_on_server(w, [("HX-M8", 100)])
    request_change(a, order_no=no, user="wang", reason="客户加 5 个", quantities={"HX-M8": 105})
    decide_change(a, request_id=request_id(a, no), approve=True, user="li")
    qc = qc_order_on_server(w)
    record_inspection(
        a,
        order_no=qc,
        user="zhou",
        verdicts=[Verdict(line=1, passed=False, defects=("D01",)), Verdict(line=2, passed=True)],
    )
    shipped = shipped_on_server(w)
    invoice = create_invoice(a, order_nos=[shipped], user="chen").invoice_no
    record_payment(a, customer="C001", amount=600, user="chen", invoices=[invoice])
    w.sync("a")
    return {"held": held, "changed": no, "inspected": qc, "invoiced": shipped, "invoice": invoice}


def test_a_new_desks_snapshot_carries_the_desks_data(any_world: World, tmp_path: Path) -> None:
    w = any_world
    made = everything(w)
    desk = Store.open(tmp_path / "c.db", create=True, clock=w.clocks["a"])
    try:
        enrol_local(w.store, desk, "c")
        assert business_state(desk) == business_state(w.store)
        assert finance_state(desk) == finance_state(w.store)
        assert sales_row(desk, made["held"])["credit_hold"] == "kept"
        [request] = change_requests(desk, status=None, order_no=made["changed"])
        assert request.status == "approved"
        assert order_revisions(desk, made["changed"])[1].change_request_id == request.id
        assert inspection_history(desk, made["inspected"]) == inspection_history(w.store, made["inspected"])
        assert invoice_view(desk, made["invoice"]).paid == 600
        assert invoice_view(desk, made["invoice"]).orders == (made["invoiced"],)
    finally:
        desk.close()


def test_a_desk_that_reloads_a_snapshot_over_its_own_data_keeps_the_desks_data(world: World) -> None:
    """The reload maps rows without a key of their own (a finding's inspection, a revision's change request)
    onto the desk's rows, whose ids differ from the central API's."""
    a, b = world.desks["a"], world.desks["b"]
    x = signed_on_server(world, [("HX-M8", 100)])
    y = signed_on_server(world, [("HX-M8", 200)])
    q1, q2 = qc_order_on_server(world), qc_order_on_server(world)
    # Each desk works on its own orders first, so the two stores number these rows differently.
    request_change(a, order_no=x, user="wang", reason="客户加 5 个", quantities={"HX-M8": 105})
    record_inspection(
        a,
        order_no=q1,
        user="zhou",
        verdicts=[Verdict(line=1, passed=False, defects=("D01",)), Verdict(line=2, passed=True)],
    )
    request_change(b, order_no=y, user="wang", reason="客户加 10 个", quantities={"HX-M8": 210})
    record_inspection(
        b, order_no=q2, user="zhou", verdicts=[Verdict(line=1, passed=True), Verdict(line=2, passed=True)]
    )
    world.sync("a")
    world.store.clock.advance(minutes=1)  # type: ignore[attr-defined]  # the central API's own time moves on
    world.sync("b")
    world.sync("a")
    decide_change(a, request_id=request_id(a, y), approve=True, user="li")
    decide_change(b, request_id=request_id(b, x), approve=True, user="li")
    world.sync("a")
    world.store.clock.advance(minutes=1)  # type: ignore[attr-defined]
    converge(world)
    ids = "SELECT o.order_no, c.id FROM change_request c JOIN sales_order o ON o.id = c.order_id ORDER BY 1"
    assert rows(b, ids) != rows(world.store, ids)
    record_payment(a, customer="C001", amount=300, user="chen", reference="预付款")  # only in the snapshot
    world.sync("a")

    rep.mark_needs_bootstrap(b)  # e.g. its cursor fell behind the change log: it reloads over its own data
    report = world.sync("b")
    assert report.bootstrapped
    assert business_state(b) == business_state(world.store)
    assert finance_state(b) == finance_state(world.store)
    for no in (x, y):
        [request] = change_requests(b, status=None, order_no=no)
        assert order_revisions(b, no)[1].change_request_id == request.id
    for no in (q1, q2):
        assert inspection_history(b, no) == inspection_history(world.store, no)


# -- every synced command has a replay -------------------------------------------------------------------
DESK_LOCAL = {"login", "open_for_packing", "park_packing", "record_waybill", "scan_refused", "alert_pass"}


def test_every_command_that_syncs_has_a_replay_on_the_central_api() -> None:
    """A command recorded with sync but unknown to the central API stops its desk's queue forever
    (``unknown_command``): every ``command(store, "<name>", ...)`` in the core is either replayed or one of
    the desk-local facts recorded with ``sync=False``."""
    sources = [p.read_text(encoding="utf-8") for p in sorted((ROOT / "orderdesk").rglob("*.py"))]
    opened = re.compile(r"\bcommand\(\s*[\w.]+\s*,\s*\"(\w+)\"")
    found: dict[str, str] = {}
    for code in sources:
        starts = list(opened.finditer(code))
        for i, match in enumerate(starts):
            # The command's block: up to the next command opened in the same file.
            end = starts[i + 1].start() if i + 1 < len(starts) else len(code)
            found[match.group(1)] = code[match.start() : end]
    assert len(found) > 25, "the scanner found suspiciously few commands"
    assert set(found) >= DESK_LOCAL, sorted(DESK_LOCAL - set(found))
    for name in DESK_LOCAL:
        assert "sync=False" in found[name], f"{name} is listed as desk-local but records with sync"
    missing = sorted(set(found) - DESK_LOCAL - set(rep.REPLAYS))
    assert not missing, f"commands that sync but have no replay on the central API: {missing}"


def test_orders_dumped_together_have_the_images_each_has_alone(any_world: World) -> None:
    """The central API dumps a transaction's orders set-based: nothing of one order may land in another's
    image, and each part keeps its own order (change requests by number, inspections by seq)."""
    w = any_world
    made = everything(w)
    numbers = [made[k] for k in ("held", "changed", "inspected", "invoiced")] + [READY_ORDER, "SO-XX-0404040"]
    with w.store.read() as session:
        together = rep.dump_orders(session, numbers)
        alone = {no: rep.dump_orders(session, [no])[no] for no in numbers}
    assert together == alone
    assert together["SO-XX-0404040"] is None
    changed, inspected, invoiced = (together[made[k]] for k in ("changed", "inspected", "invoiced"))
    assert (
        changed and changed["_change_requests"] and changed["_revisions"] and not changed["_qc_inspections"]
    )
    assert inspected and inspected["_qc_inspections"][0]["_findings"] and not inspected["_change_requests"]
    assert invoiced and invoiced["_invoice"]["invoice_no"] == made["invoice"]
    assert together[made["held"]]["_sales"]["credit_hold"] == "kept"  # type: ignore[index]
