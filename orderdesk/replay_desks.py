"""Sync replays for the sales, QC and finance desks (issue 6): registered into ``orderdesk.replication``.

The central API replays each desk op through the **same domain command** the desk ran:

* ``create_order`` from the sales desk (its args carry ``sales_entry``) runs ``sales.enter_order`` again, so
  the central API decides duplicates, credit, approval, the proposed promised date and links on its own data
  (without refusing for what only time offline or another desk changed);
* ``request_change`` / ``decide_change``: a change request is named by its number on the order
  (``request_no``), since row ids differ between stores;
* ``record_inspection`` (QC), ``decide_credit``, ``decide_approval``, ``create_invoice`` and
  ``record_payment`` (finance); invoices and payments keep the number the desk gave them.

First-decision-wins conflicts are refused before the command runs, with who got there first: deciding a
change request, a credit hold or an approval someone else already decided (``decision_conflict``), filing a
change request while another waits (``change_pending``) or on a stale view of the order's requests
(``change_conflict``), inspecting an order someone else already inspected (``inspection_conflict``),
invoicing an order already invoiced (``invoice_conflict``).

What these commands write reaches other desks: an order's image carries its sales row, change requests,
revisions, desk decisions and QC inspections (``ORDER_PARTS``), applied by natural key (order number, the
request's number on the order, revision, inspection seq); invoices and payments are entities of their own
(kinds ``invoice`` and ``payment``); and every table is in the bootstrap snapshot.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace
from datetime import date
from typing import Any

from sqlmodel import Session, col, select

from orderdesk import replication as rep
from orderdesk.errors import Refused
from orderdesk.finance import HOLD_STATUS, create_invoice, decide_approval, decide_credit, record_payment
from orderdesk.i18n import Label, msg
from orderdesk.models import (
    ChangeRequest,
    Customer,
    DeskDecision,
    Invoice,
    InvoiceOrder,
    OrderLine,
    OrderRevision,
    OrderSales,
    Payment,
    PaymentAllocation,
    Product,
    QcFinding,
    QcInspection,
    SalesOrder,
)
from orderdesk.money import format_money
from orderdesk.qc import RESULT_LABELS, Verdict, record_inspection
from orderdesk.sales import (
    CHANGE_STATUS,
    decide_change,
    enter_order,
    find_change_request,
    order_change_requests,
    request_change,
)
from orderdesk.store import Store, rows_in

DECISIONS = {
    "approve": Label("approve", "批准"),
    "reject": Label("reject", "驳回"),
    "release": Label("release", "放行"),
    "keep": Label("keep on hold", "继续冻结"),
}
APPROVAL_STATUS = {"approved": Label("approved", "已批准"), "rejected": Label("rejected", "已驳回")}


def _order(session: Session, order_no: str) -> SalesOrder | None:
    return session.exec(select(SalesOrder).where(SalesOrder.order_no == order_no)).first()


def _last_decision(session: Session, order: SalesOrder, kind: str) -> str:
    row = session.exec(
        select(DeskDecision)
        .where(DeskDecision.order_id == order.id, DeskDecision.kind == kind)
        .order_by(col(DeskDecision.id).desc())
    ).first()
    return row.user_name if row else "?"


def _day(text: str | None) -> date | None:
    return date.fromisoformat(text) if text else None


# -- the sales desk: entering an order -------------------------------------------------------------------
_plain_create = rep.REPLAYS["create_order"]


def _replay_create(store: Store, a: dict[str, Any], user: str) -> object:
    """A sales-desk entry runs ``enter_order`` with the desk's final values; any other create as before."""
    if "sales_entry" not in a and "sales" not in a:
        return _plain_create.run(store, a, user)
    entry = a.get("sales_entry") or {}  # no entry facts: an op queued before they were recorded
    sales = a.get("sales") or {}
    return enter_order(
        store,
        customer=a["customer"],
        lines=[(str(sku), int(qty)) for sku, qty in a["lines"]],
        user=user,
        channel=a.get("channel", "offline"),
        promised=_day(a.get("promised")),
        promised_reason=str(sales.get("promised_reason", "")),
        rush=bool(a.get("rush")),
        route=a.get("route", "make_to_order"),
        ship_address=a.get("ship_address"),
        notes=a.get("notes", ""),
        packing_preset=str(sales.get("packing_preset", "")),
        duplicate_reason=str(sales.get("duplicate_reason", "")),
        duplicate_note=str(sales.get("duplicate_note", "")),
        parent=str(sales.get("parent", "")),
        order_no=a["order_no"],
        entered_on=_day(entry.get("entered_on")),
        ship_address_given=bool(entry.get("ship_address_given", False)),
    )


# -- the sales desk: change requests ---------------------------------------------------------------------
def _replay_request_change(store: Store, a: dict[str, Any], user: str) -> object:
    if "quantities" in a:
        quantities = {str(k): int(v) for k, v in (a.get("quantities") or {}).items()}
        swaps = {str(k): str(v) for k, v in (a.get("replace") or {}).items()}
        address, promised = a.get("ship_address"), _day(a.get("promised"))
    else:  # queued before the request's inputs were recorded: ask for the proposed content itself
        quantities, swaps = _quantities_for(store, a["order_no"], a["proposed"]["lines"]), {}
        address, promised = a["proposed"]["ship_address"], _day(a["proposed"]["promised_date"])
    return request_change(
        store,
        order_no=a["order_no"],
        user=user,
        reason=a["reason"],
        quantities=quantities,
        replace=swaps,
        ship_address=address,
        promised=promised,
    )


def _quantities_for(store: Store, order_no: str, lines: list[dict[str, Any]]) -> dict[str, int]:
    """Quantities that turn the order's lines into ``lines`` (0 removes a line)."""
    with store.read() as session:
        order = _order(session, order_no)
        current = session.exec(
            select(Product.sku)
            .join(OrderLine, col(OrderLine.product_id) == Product.id)
            .where(OrderLine.order_id == (order.id if order else -1))
        ).all()
    wanted = {str(ln["sku"]): int(ln["quantity"]) for ln in lines}
    return {**dict.fromkeys(current, 0), **wanted}


def _check_request_change(store: Store, session: Session, op: rep.OpContext) -> Refused | None:
    """One change at a time per order, and the request gets the number the desk gave it."""
    order = _order(session, op.order_no)
    if order is None:
        return None  # the command refuses
    requests = order_change_requests(session, order.id)
    waiting = next((r for r in requests if r.status == "pending"), None)
    if waiting is not None:
        return Refused(
            msg(
                "Order {order_no} already has a change request from {user} waiting for a decision on the "
                "central API; yours was not filed. One change at a time: file it again once that one is "
                "decided.",
                order_no=order.order_no,
                user=waiting.requested_by,
            ),
            code="change_pending",
        )
    number = op.args.get("request_no")
    if number is not None and int(number) != len(requests) + 1:
        return Refused(
            msg(
                "Your desk had not yet received every change request of order {order_no} when you filed this "
                "one (the central API has {count}, your desk knew of {known}); it was not filed, so that no "
                "decision on it lands on another request. Look at the order again and file your change anew.",
                order_no=order.order_no,
                count=len(requests),
                known=int(number) - 1,
            ),
            code="change_conflict",
        )
    return None


def _replay_decide_change(store: Store, a: dict[str, Any], user: str) -> object:
    approve = {"approve": True, "reject": False}[a["decision"]]
    reason = str(a.get("reason", ""))
    if a.get("request_no") is not None:
        return decide_change(
            store,
            order_no=a["order_no"],
            request_no=int(a["request_no"]),
            approve=approve,
            user=user,
            reason=reason,
        )
    # Queued before requests were numbered: the order's one waiting request, if any.
    with store.read() as session:
        order = _order(session, a["order_no"])
        waiting = session.exec(
            select(ChangeRequest.id).where(
                ChangeRequest.order_id == (order.id if order else -1), ChangeRequest.status == "pending"
            )
        ).first()
    return decide_change(store, request_id=waiting or 0, approve=approve, user=user, reason=reason)


def _check_decide_change(store: Store, session: Session, op: rep.OpContext) -> Refused | None:
    """The first decision on a change request wins; a decision on a request whose filing the central API
    rejected never lands on another request with the same number."""
    order = _order(session, op.order_no)
    number = op.args.get("request_no")
    if order is None or number is None:
        return None
    if _filing_rejected(session, op, int(number)):
        return Refused(
            msg(
                "Your change request for order {order_no} was never accepted by the central API (its filing "
                "was rejected), so this decision on it was not applied.",
                order_no=order.order_no,
            ),
            code="change_rejected",
        )
    try:
        request = find_change_request(session, order.order_no, int(number))
    except Refused:
        return None  # the command refuses
    if request.status == "pending":
        return None
    return Refused(
        msg(
            "The change request on order {order_no} from {requester} was already {status} by {user} before "
            "your decision ({decision}) arrived. The first decision to reach the central API wins.",
            order_no=order.order_no,
            requester=request.requested_by,
            status=CHANGE_STATUS.get(request.status, Label(request.status, request.status)),
            user=request.decided_by,
            decision=DECISIONS.get(str(op.args.get("decision")), ""),
        ),
        code="decision_conflict",
    )


def _filing_rejected(session: Session, op: rep.OpContext, number: int) -> bool:
    """Whether this desk's latest filing of request ``number`` on the order was rejected."""
    filings = rep.ops_of(session, op.desk_id, "request_change", op.order_no)
    mine = [f for f in filings if json.loads(f.args or "{}").get("request_no") == number]
    latest = max(mine, key=lambda f: (f.epoch, f.seq), default=None)
    return latest is not None and latest.status == "rejected"


# -- the QC desk -----------------------------------------------------------------------------------------
def _replay_inspection(store: Store, a: dict[str, Any], user: str) -> object:
    verdicts = [
        Verdict(
            line=int(v["line_no"]),
            passed=bool(v["passed"]),
            samples=int(v.get("samples", 0)),
            sample_no=int(v.get("sample_no", 0)),
            defects=tuple(c for c in str(v.get("defects", "")).split(",") if c),
            measurements=str(v.get("measurements", "")),
            note=str(v.get("note", "")),
        )
        for v in a["verdicts"]
    ]
    return record_inspection(
        store,
        order_no=a["order_no"],
        user=user,
        verdicts=verdicts,
        notes=str(a.get("notes", "")),
        reason=str(a.get("reason", "")),
    )


def _check_inspection(store: Store, session: Session, op: rep.OpContext) -> Refused | None:
    """The first inspection of an order's turn in QC to reach the central API wins."""
    order = _order(session, op.order_no)
    seq = op.args.get("seq")
    if order is None or seq is None:
        return None
    done = session.exec(
        select(QcInspection)
        .where(QcInspection.order_id == order.id, col(QcInspection.seq) >= int(seq))
        .order_by(col(QcInspection.seq))
    ).first()
    if done is None:
        return None
    return Refused(
        msg(
            "Order {order_no} was already inspected by {user} ({result}) before your inspection arrived; your "
            "inspection was not recorded. The first inspection to reach the central API wins.",
            order_no=order.order_no,
            user=done.inspector,
            result=RESULT_LABELS.get(done.result, Label(done.result, done.result)),
        ),
        code="inspection_conflict",
    )


# -- the finance desk: credit holds and approvals --------------------------------------------------------
def _replay_credit(store: Store, a: dict[str, Any], user: str) -> object:
    return decide_credit(
        store,
        order_no=a["order_no"],
        release={"release": True, "keep": False}[a["decision"]],
        user=user,
        reason=a["reason"],
    )


def _check_credit(store: Store, session: Session, op: rep.OpContext) -> Refused | None:
    """A credit hold decided by someone else (released or kept) since this desk decided on it: first wins."""
    was = op.args.get("hold_was")
    order = _order(session, op.order_no)
    if was is None or order is None:
        return None
    info = session.get(OrderSales, order.id)
    now = info.credit_hold if info is not None else ""
    if now == was or now not in ("released", "kept"):
        return None
    return Refused(
        msg(
            "The credit hold on order {order_no} was already decided ({status}) by {user} before your decision "
            "({decision}) arrived. The first decision to reach the central API wins.",
            order_no=order.order_no,
            status=HOLD_STATUS[now],
            user=_last_decision(session, order, "credit"),
            decision=DECISIONS.get(str(op.args.get("decision")), ""),
        ),
        code="decision_conflict",
    )


def _replay_approval(store: Store, a: dict[str, Any], user: str) -> object:
    return decide_approval(
        store,
        order_no=a["order_no"],
        approve={"approve": True, "reject": False}[a["decision"]],
        user=user,
        reason=str(a.get("reason", "")),
    )


def _check_approval(store: Store, session: Session, op: rep.OpContext) -> Refused | None:
    """A large order approved or rejected by someone else first: the first decision wins. A decision made
    on another amount (a change raised it meanwhile, and it waits for approval again) decides nothing."""
    order = _order(session, op.order_no)
    info = session.get(OrderSales, order.id) if order is not None else None
    if order is None or info is None:
        return None
    seen = op.args.get("amount")
    if info.approval == "pending" and isinstance(seen, int) and seen != order.amount:
        return Refused(
            msg(
                "Order {order_no} now comes to {amount}, not the {seen} your decision ({decision}) was made on: "
                "it was changed meanwhile and waits for approval at its new amount. Decide it again.",
                order_no=order.order_no,
                amount=format_money(order.amount),
                seen=format_money(seen),
                decision=DECISIONS.get(str(op.args.get("decision")), ""),
            ),
            code="decision_conflict",
        )
    if info.approval not in APPROVAL_STATUS:
        return None
    return Refused(
        msg(
            "Order {order_no} was already {status} by {user} before your decision ({decision}) arrived. The "
            "first decision to reach the central API wins.",
            order_no=order.order_no,
            status=APPROVAL_STATUS[info.approval],
            user=_last_decision(session, order, "approval"),
            decision=DECISIONS.get(str(op.args.get("decision")), ""),
        ),
        code="decision_conflict",
    )


# -- the finance desk: invoices and payments -------------------------------------------------------------
def _replay_invoice(store: Store, a: dict[str, Any], user: str) -> object:
    return create_invoice(
        store,
        order_nos=[str(o) for o in a["orders"]],
        user=user,
        invoice_date=_day(a.get("invoice_date")),
        note=str(a.get("note", "")),
        invoice_no=a["invoice_no"],
    )


def _check_invoice(store: Store, session: Session, op: rep.OpContext) -> Refused | None:
    """An order goes on one invoice: the first invoice for it to reach the central API wins."""
    for order_no in op.args.get("orders") or []:
        order = _order(session, str(order_no))
        link = session.get(InvoiceOrder, order.id) if order is not None else None
        invoice = session.get(Invoice, link.invoice_id) if link is not None else None
        if order is None or invoice is None:
            continue
        return Refused(
            msg(
                "Order {order_no} was already invoiced on {invoice_no} by {user} before your invoice {mine} "
                "arrived; yours was not created. The first invoice to reach the central API wins.",
                order_no=order.order_no,
                invoice_no=invoice.invoice_no,
                user=invoice.created_by,
                mine=str(op.args.get("invoice_no", "")),
            ),
            code="invoice_conflict",
        )
    return None


def _replay_payment(store: Store, a: dict[str, Any], user: str) -> object:
    return record_payment(
        store,
        customer=a["customer"],
        amount=int(a["amount"]),
        user=user,
        received_on=_day(a.get("received_on")),
        invoices=[str(i) for i in a.get("invoices") or []],
        method=str(a.get("method", "bank")),
        reference=str(a.get("reference", "")),
        note=str(a.get("note", "")),
        payment_no=a["payment_no"],
    )


def _invoice_touches(a: dict[str, Any], _order_no: str) -> list[tuple[str, str]]:
    return [
        ("invoice", a["invoice_no"]),
        *(("order", str(o)) for o in a.get("orders") or []),
        *(("payment", str(p)) for p in a.get("matched_payments") or []),
    ]


def _payment_touches(a: dict[str, Any], _order_no: str) -> list[tuple[str, str]]:
    named = [str(i).strip().upper() for i in a.get("invoices") or []]
    matched = [str(m[0]) for m in a.get("matched") or []]
    return [("payment", a["payment_no"]), *(("invoice", i) for i in dict.fromkeys(named + matched))]


# -- an order's image: what the desks wrote about it -----------------------------------------------------
# The dumpers get the orders as plain rows (``replication.dump_orders``): id, order_no and the other columns.
def _ids(orders: list[Any]) -> list[int]:
    return [o.id for o in orders if o.id is not None]


def _dump_sales(session: Session, orders: list[Any]) -> dict[int, Any]:
    infos = rows_in(
        session, lambda c: select(OrderSales).where(col(OrderSales.order_id).in_(c)), _ids(orders)
    )
    parents = dict(
        rows_in(
            session,
            lambda c: select(SalesOrder.id, SalesOrder.order_no).where(col(SalesOrder.id).in_(c)),
            {i.parent_id for i in infos if i.parent_id},
        )
    )
    return {
        i.order_id: {**rep._columns(i, ("order_id", "parent_id")), "_parent": parents.get(i.parent_id)}
        for i in infos
    }


def _rows_by_order(session: Session, model: Any, orders: list[Any], then: Any) -> list[Any]:
    """``model``'s rows of ``orders``, grouped by order and each order's in ``then`` order."""
    return rep.rows_under(session, model, model.order_id, _ids(orders), then)


def _change_requests(session: Session, orders: list[Any]) -> list[Any]:
    """The orders' change requests, each order's in the order they were filed (request n is number n)."""
    return _rows_by_order(session, ChangeRequest, orders, ChangeRequest.id)


def _apply_sales(conn: sqlite3.Connection, order_id: int, image: dict[str, Any] | None) -> None:
    if image is None:
        conn.execute("DELETE FROM order_sales WHERE order_id = ?", (order_id,))
        return
    parent = rep._id_of(conn, "sales_order", "order_no", image.get("_parent"))
    rep._upsert(
        conn,
        "order_sales",
        image,
        ("order_id",),
        extra={"order_id": order_id, "parent_id": parent},
        skip=("order_id", "parent_id"),
    )


def _dump_change_requests(session: Session, orders: list[Any]) -> dict[int, Any]:
    return rep.grouped(
        _change_requests(session, orders), lambda r: r.order_id, rep.row_image(("id", "order_id"))
    )


def _request_ids(conn: sqlite3.Connection, order_id: int) -> list[int]:
    return [
        int(r[0])
        for r in conn.execute("SELECT id FROM change_request WHERE order_id = ? ORDER BY id", (order_id,))
    ]


def _apply_change_requests(conn: sqlite3.Connection, order_id: int, images: list[dict[str, Any]]) -> None:
    """Request n of the image is the desk's n-th request of the order (by number, not by id)."""
    have = _request_ids(conn, order_id)
    for n, image in enumerate(images):
        cols, values = rep._row_values("change_request", image, None, ("id", "order_id"), ())
        if n < len(have):
            sets = ", ".join(f"{c} = ?" for c in cols)
            conn.execute(f"UPDATE change_request SET {sets} WHERE id = ?", (*values, have[n]))
        else:
            marks = ", ".join("?" * (len(cols) + 1))
            conn.execute(
                f"INSERT INTO change_request (order_id, {', '.join(cols)}) VALUES ({marks})",
                (order_id, *values),
            )
    for stale in have[len(images) :]:
        conn.execute("DELETE FROM change_request WHERE id = ?", (stale,))


def _dump_revisions(session: Session, orders: list[Any]) -> dict[int, Any]:
    revisions = _rows_by_order(session, OrderRevision, orders, OrderRevision.revision)
    # A revision names its change request by number; most have none, and then nothing is read for it.
    asked = {r.order_id for r in revisions if r.change_request_id is not None}
    numbers = {
        request_id: n
        for ids in rep.grouped(
            _change_requests(session, [o for o in orders if o.id in asked]),
            lambda r: r.order_id,
            lambda r: r.id,
        ).values()
        for n, request_id in enumerate(ids, start=1)
    }
    image = rep.row_image(("id", "order_id", "change_request_id"))
    return rep.grouped(
        revisions,
        lambda r: r.order_id,
        lambda r: {**image(r), "_request_no": numbers.get(r.change_request_id)},
    )


def _apply_revisions(conn: sqlite3.Connection, order_id: int, images: list[dict[str, Any]]) -> None:
    if not images:  # most orders: never changed through a request (one statement per pulled order)
        conn.execute("DELETE FROM order_revision WHERE order_id = ?", (order_id,))
        return
    requests = _request_ids(conn, order_id)  # the change requests are applied first (ORDER_PARTS order)
    kept = []
    for image in images:
        number = image.get("_request_no")
        request_id = requests[number - 1] if number and number <= len(requests) else None
        rep._upsert(
            conn,
            "order_revision",
            image,
            ("order_id", "revision"),
            extra={"order_id": order_id, "change_request_id": request_id},
            skip=("id", "order_id", "change_request_id"),
        )
        kept.append(image["revision"])
    conn.execute(
        f"DELETE FROM order_revision WHERE order_id = ? AND {rep.not_in('revision', kept)}",
        (order_id, *kept),
    )


def _dump_decisions(session: Session, orders: list[Any]) -> dict[int, Any]:
    rows = _rows_by_order(session, DeskDecision, orders, DeskDecision.id)
    return rep.grouped(rows, lambda r: r.order_id, rep.row_image(("id", "order_id")))


def _apply_decisions(conn: sqlite3.Connection, order_id: int, images: list[dict[str, Any]]) -> None:
    """Decisions only grow and have no key of their own: replaced as a whole when they differ."""
    if not images:
        conn.execute("DELETE FROM desk_decision WHERE order_id = ?", (order_id,))
        return
    names = [c for c in rep._table_columns("desk_decision")[0] if c not in ("id", "order_id")]
    target = [
        tuple(rep._row_values("desk_decision", {c: d.get(c) for c in names}, None, (), ())[1]) for d in images
    ]
    have = conn.execute(
        f"SELECT {', '.join(names)} FROM desk_decision WHERE order_id = ? ORDER BY id", (order_id,)
    ).fetchall()
    if have == target:
        return
    conn.execute("DELETE FROM desk_decision WHERE order_id = ?", (order_id,))
    conn.executemany(
        f"INSERT INTO desk_decision (order_id, {', '.join(names)}) VALUES ({', '.join('?' * (len(names) + 1))})",
        [(order_id, *row) for row in target],
    )


def _dump_inspections(session: Session, orders: list[Any]) -> dict[int, Any]:
    inspections = _rows_by_order(session, QcInspection, orders, QcInspection.seq)
    findings = rep.grouped(
        rep.rows_under(
            session,
            QcFinding,
            QcFinding.inspection_id,
            [i.id for i in inspections],
            QcFinding.id,
            with_sku=True,
        ),
        lambda row: row.inspection_id,
        rep.row_image(("id", "inspection_id", "product_id")),
    )
    image = rep.row_image(("id", "order_id"))
    return rep.grouped(
        inspections,
        lambda i: i.order_id,
        lambda i: {**image(i), "_findings": findings.get(i.id or 0, [])},
    )


def _apply_inspections(conn: sqlite3.Connection, order_id: int, images: list[dict[str, Any]]) -> None:
    """Inspections by their seq on the order; each one's findings replaced as a whole when they differ."""
    names = [c for c in rep._table_columns("qc_finding")[0] if c not in ("id", "inspection_id", "product_id")]
    seqs = []
    for image in images:
        inspection_id = rep._upsert(
            conn,
            "qc_inspection",
            image,
            ("order_id", "seq"),
            extra={"order_id": order_id},
            skip=("id", "order_id"),
        )
        seqs.append(image["seq"])
        target = [
            (rep._id_of(conn, "product", "sku", f["_sku"]), *(f.get(c) for c in names))
            for f in image.get("_findings", [])
        ]
        have = conn.execute(
            f"SELECT product_id, {', '.join(names)} FROM qc_finding WHERE inspection_id = ? ORDER BY id",
            (inspection_id,),
        ).fetchall()
        if have != target:
            conn.execute("DELETE FROM qc_finding WHERE inspection_id = ?", (inspection_id,))
            conn.executemany(
                f"INSERT INTO qc_finding (inspection_id, product_id, {', '.join(names)}) "
                f"VALUES ({', '.join('?' * (len(names) + 2))})",
                [(inspection_id, *row) for row in target],
            )
    gone = f"SELECT id FROM qc_inspection WHERE order_id = ? AND {rep.not_in('seq', seqs)}"
    conn.execute(f"DELETE FROM qc_finding WHERE inspection_id IN ({gone})", (order_id, *seqs))
    conn.execute(
        f"DELETE FROM qc_inspection WHERE order_id = ? AND {rep.not_in('seq', seqs)}",
        (order_id, *seqs),
    )


# -- invoices and payments: entities of their own --------------------------------------------------------
# An invoice covers orders and is matched to payments; a payment is matched to invoices. Each link travels on
# both sides (the order's image names its invoice, the invoice its orders and payments, the payment its
# invoices), and each side links what the desk already has: whichever image arrives second completes the
# link. So no image ever needs another that has not arrived yet (a rejected op's refresh comes before the
# pull that brings what it refers to).
def _document(
    session: Session, model: type[Invoice] | type[Payment], number: str
) -> tuple[int, dict[str, Any]] | None:
    """An invoice's or payment's row id and image: its row, the customer's code and the other side it is
    matched to, as (number, amount) pairs."""
    name = model.__tablename__
    other = Payment if model is Invoice else Invoice
    row = session.exec(select(model).where(getattr(model, f"{name}_no") == number)).first()
    if row is None or row.id is None:
        return None
    image = rep._columns(row, ("id", "customer_id"))
    customer = session.get(Customer, row.customer_id)
    image["_customer"] = customer.code if customer else None
    other_no = getattr(other, f"{other.__tablename__}_no")
    matched = session.exec(
        select(PaymentAllocation.amount, other_no)
        .join(other, col(other.id) == getattr(PaymentAllocation, f"{other.__tablename__}_id"))
        .where(getattr(PaymentAllocation, f"{name}_id") == row.id)
        .order_by(col(other_no))
    ).all()
    image[f"_{other.__tablename__}s"] = [[no, amount] for amount, no in matched]
    return row.id, image


def dump_invoice(session: Session, invoice_no: str) -> dict[str, Any] | None:
    """An invoice's image (``_document``) with the orders it covers (by order number)."""
    found = _document(session, Invoice, invoice_no)
    if found is None:
        return None
    invoice_id, image = found
    links = session.exec(
        select(InvoiceOrder.amount, SalesOrder.order_no)
        .join(SalesOrder, col(SalesOrder.id) == InvoiceOrder.order_id)
        .where(InvoiceOrder.invoice_id == invoice_id)
        .order_by(col(SalesOrder.order_no))
    ).all()
    image["_orders"] = [[order_no, amount] for amount, order_no in links]
    return image


def dump_payment(session: Session, payment_no: str) -> dict[str, Any] | None:
    """A payment's image (``_document``)."""
    found = _document(session, Payment, payment_no)
    return found[1] if found else None


def _dump_invoice_link(session: Session, orders: list[Any]) -> dict[int, Any]:
    links = rows_in(
        session,
        lambda c: (
            select(InvoiceOrder.order_id, Invoice.invoice_no, InvoiceOrder.amount)
            .join(Invoice, col(Invoice.id) == InvoiceOrder.invoice_id)
            .where(col(InvoiceOrder.order_id).in_(c))
        ),
        _ids(orders),
    )
    return {order_id: {"invoice_no": no, "amount": amount} for order_id, no, amount in links}


def _row_id(conn: sqlite3.Connection, table: str, column: str, value: Any) -> int | None:
    row = conn.execute(f'SELECT id FROM "{table}" WHERE {column} = ?', (value,)).fetchone()
    return int(row[0]) if row else None


def _apply_invoice_link(conn: sqlite3.Connection, order_id: int, link: dict[str, Any] | None) -> None:
    invoice_id = _row_id(conn, "invoice", "invoice_no", link["invoice_no"]) if link else None
    if link is None or invoice_id is None:  # not invoiced, or by an invoice whose own image brings the link
        conn.execute("DELETE FROM invoice_order WHERE order_id = ?", (order_id,))
        return
    _link_order(conn, order_id, invoice_id, int(link["amount"]))


def _link_order(conn: sqlite3.Connection, order_id: int, invoice_id: int, amount: int) -> None:
    conn.execute(
        "INSERT INTO invoice_order (order_id, invoice_id, amount) VALUES (?, ?, ?) "
        "ON CONFLICT (order_id) DO UPDATE SET invoice_id = excluded.invoice_id, amount = excluded.amount",
        (order_id, invoice_id, amount),
    )


def _match(conn: sqlite3.Connection, payment_id: int, invoice_id: int, amount: int) -> None:
    """One payment matched to one invoice (a pair is matched once: by the payment or by the invoice)."""
    row = conn.execute(
        "SELECT id FROM payment_allocation WHERE payment_id = ? AND invoice_id = ?", (payment_id, invoice_id)
    ).fetchone()
    if row is None:
        conn.execute(
            "INSERT INTO payment_allocation (payment_id, invoice_id, amount) VALUES (?, ?, ?)",
            (payment_id, invoice_id, amount),
        )
    else:
        conn.execute("UPDATE payment_allocation SET amount = ? WHERE id = ?", (amount, row[0]))


# The two sides of a match: a document of one side -> the other side's table and its recount.
_SIDES = {
    "invoice": (
        "payment",
        "UPDATE payment SET unallocated = amount - (SELECT coalesce(sum(amount), 0) FROM "
        "payment_allocation WHERE payment_id = payment.id) WHERE id = ?",
    ),
    "payment": (
        "invoice",
        "UPDATE invoice SET paid = (SELECT coalesce(sum(amount), 0) FROM payment_allocation "
        "WHERE invoice_id = invoice.id) WHERE id = ?",
    ),
}


def _drop_document(conn: sqlite3.Connection, side: str, number: str) -> None:
    """An invoice or payment the central API does not have (its creation was rejected): gone, and what was
    matched to it is open again until the central API's images of the other side arrive."""
    doc_id = _row_id(conn, side, f"{side}_no", number)
    if doc_id is None:
        return
    other, recount = _SIDES[side]
    matched = conn.execute(
        f"SELECT DISTINCT {other}_id FROM payment_allocation WHERE {side}_id = ?", (doc_id,)
    ).fetchall()
    conn.execute(f"DELETE FROM payment_allocation WHERE {side}_id = ?", (doc_id,))
    conn.executemany(recount, matched)
    if side == "invoice":
        conn.execute("DELETE FROM invoice_order WHERE invoice_id = ?", (doc_id,))
    conn.execute(f"DELETE FROM {side} WHERE id = ?", (doc_id,))


def _upsert_document(conn: sqlite3.Connection, side: str, image: dict[str, Any]) -> int:
    """An invoice's or payment's own row (by its number); its matches to the other side become exactly the
    image's (number, amount) pairs, where this desk has the other side (else its image brings the match)."""
    customer = rep._id_of(conn, "customer", "code", image["_customer"])
    doc_id = rep._upsert(
        conn, side, image, (f"{side}_no",), extra={"customer_id": customer}, skip=("id", "customer_id")
    )
    assert doc_id is not None
    other, _ = _SIDES[side]
    kept = []
    for number, amount in image.get(f"_{other}s", []):
        other_id = _row_id(conn, other, f"{other}_no", number)
        if other_id is not None:
            ids = {side: doc_id, other: other_id}
            _match(conn, ids["payment"], ids["invoice"], int(amount))
            kept.append(other_id)
    conn.execute(
        f"DELETE FROM payment_allocation WHERE {side}_id = ? AND {rep.not_in(f'{other}_id', kept)}",
        (doc_id, *kept),
    )
    return doc_id


def _apply_invoice(conn: sqlite3.Connection, invoice_no: str, image: dict[str, Any] | None) -> None:
    if image is None:
        _drop_document(conn, "invoice", invoice_no)
        return
    invoice_id = _upsert_document(conn, "invoice", image)
    orders = []
    for order_no, amount in image.get("_orders", []):
        order_id = _row_id(conn, "sales_order", "order_no", order_no)
        if order_id is not None:
            _link_order(conn, order_id, invoice_id, int(amount))
            orders.append(order_id)
    conn.execute(
        f"DELETE FROM invoice_order WHERE invoice_id = ? AND {rep.not_in('order_id', orders)}",
        (invoice_id, *orders),
    )


def _apply_payment(conn: sqlite3.Connection, payment_no: str, image: dict[str, Any] | None) -> None:
    if image is None:
        _drop_document(conn, "payment", payment_no)
        return
    _upsert_document(conn, "payment", image)


# -- registration ----------------------------------------------------------------------------------------
rep.REPLAYS.update(
    {
        "create_order": replace(_plain_create, run=_replay_create),
        "request_change": rep.Replay(_replay_request_change, check=_check_request_change),
        "decide_change": rep.Replay(_replay_decide_change, check=_check_decide_change),
        "record_inspection": rep.Replay(_replay_inspection, check=_check_inspection),
        "decide_credit": rep.Replay(_replay_credit, check=_check_credit),
        "decide_approval": rep.Replay(_replay_approval, check=_check_approval),
        "create_invoice": rep.Replay(_replay_invoice, check=_check_invoice, touches=_invoice_touches),
        "record_payment": rep.Replay(_replay_payment, touches=_payment_touches),
    }
)

# Applied in this order on a desk: revisions name change requests by number, so requests come first.
rep.ORDER_PARTS.update(
    {
        "sales": rep.OrderPart(_dump_sales, _apply_sales),
        "change_requests": rep.OrderPart(_dump_change_requests, _apply_change_requests, empty=[]),
        "revisions": rep.OrderPart(_dump_revisions, _apply_revisions, empty=[]),
        "desk_decisions": rep.OrderPart(_dump_decisions, _apply_decisions, empty=[]),
        "qc_inspections": rep.OrderPart(_dump_inspections, _apply_inspections, empty=[]),
        "invoice": rep.OrderPart(_dump_invoice_link, _apply_invoice_link),
    }
)

rep.DUMPERS.update({"invoice": dump_invoice, "payment": dump_payment})
rep.APPLIERS.update({"invoice": _apply_invoice, "payment": _apply_payment})
# After orders (an invoice names them), and invoices before payments (a payment is matched to invoices).
rep.KIND_ORDER.setdefault("invoice", 5)
rep.KIND_ORDER.setdefault("payment", 6)
# A supervisor's queue marks these as "someone else got there first".
rep.CONFLICT_CODES.update(
    {"decision_conflict", "change_pending", "change_conflict", "inspection_conflict", "invoice_conflict"}
)
# Rows these commands change, so the central API publishes every entity a replay touched (e.g. the
# prepayments an invoice used up, the invoices a payment was matched to oldest first).
rep.TRACKED.update(
    {
        OrderSales: lambda r: ("order_id", r.order_id),
        ChangeRequest: lambda r: ("order_id", r.order_id),
        OrderRevision: lambda r: ("order_id", r.order_id),
        DeskDecision: lambda r: ("order_id", r.order_id),
        QcInspection: lambda r: ("order_id", r.order_id),
        InvoiceOrder: lambda r: ("order_id", r.order_id),
        Invoice: lambda r: ("invoice", r.invoice_no),
        Payment: lambda r: ("payment", r.payment_no),
    }
)

_BY_ORDER = {"order_id": ("sales_order", "order_no")}
rep.SNAPSHOT_TABLES.extend(
    [
        rep.TableSpec("order_sales", ("order_id",), {**_BY_ORDER, "parent_id": ("sales_order", "order_no")}),
        rep.TableSpec("qc_inspection", ("order_id", "seq"), dict(_BY_ORDER)),
        rep.TableSpec("invoice", ("invoice_no",), {"customer_id": ("customer", "code")}),
        rep.TableSpec("invoice_order", ("order_id",), {**_BY_ORDER, "invoice_id": ("invoice", "invoice_no")}),
        rep.TableSpec("payment", ("payment_no",), {"customer_id": ("customer", "code")}),
    ]
)
# Rows without a one-column natural key, replaced for the orders (payments) in the snapshot. A snapshot ref
# names its parent by one column, so a finding names its inspection, and a revision its change request, by
# the time the central API wrote it (its single writer stamps each command with its own time); the natural
# keys (order, seq) and (order, request number) are what pulled images use.
rep.SNAPSHOT_REPLACED.extend(
    [
        rep.TableSpec("desk_decision", (), dict(_BY_ORDER)),
        rep.TableSpec("change_request", (), dict(_BY_ORDER)),
        rep.TableSpec(
            "order_revision", (), {**_BY_ORDER, "change_request_id": ("change_request", "requested_at")}
        ),
        rep.TableSpec(
            "qc_finding", (), {"inspection_id": ("qc_inspection", "at"), "product_id": ("product", "sku")}
        ),
        rep.TableSpec(
            "payment_allocation",
            (),
            {"payment_id": ("payment", "payment_no"), "invoice_id": ("invoice", "invoice_no")},
        ),
    ]
)
