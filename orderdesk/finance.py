"""The finance desk: credit holds and approvals to decide, invoices from shipped orders, payments matched to
invoices, receivables ageing, credit exposure, and the exports an accountant imports.

Money is integer fen throughout. Invoice amounts follow ``rules.toml [finance]``: with ``prices_include_tax``
(含税价, the usual case in China) an invoice's total is the orders' amount and the VAT is split out of it.
Linked orders (a parent and its children, see ``orderdesk.sales``) are always invoiced together.
The export columns are documented in ``docs/finance-export.md``.
"""

from __future__ import annotations

import csv
import heapq
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from orderdesk.commands import Actor, CommandContext, clean_text, command, load_actor
from orderdesk.errors import Refused
from orderdesk.guards import NOT_OWED_STATES, credit_exposure
from orderdesk.i18n import Label, msg
from orderdesk.models import (
    REASON_MAX,
    Customer,
    Desk,
    DeskDecision,
    Invoice,
    InvoiceOrder,
    OrderSales,
    Payment,
    PaymentAllocation,
    SalesOrder,
)
from orderdesk.orders import (
    check_version,
    get_order_row,
    order_for_change,
    state_label,
    touch_order,
    visible_fields,
)
from orderdesk.rules import Rules, role_list, rules_for, split_roles
from orderdesk.sales import require_any_role
from orderdesk.store import Store

FINANCE_ROLES = frozenset({"finance"})  # who invoices and records payments (admin always may)
BUCKETS = ("0-30", "31-60", "61-90", "90+")
HOLD_STATUS = {
    "pending": Label("waiting", "待处理"),
    "kept": Label("kept on hold", "继续冻结"),
    "released": Label("released", "已放行"),
}
PAGE_MAX = 200
NUMBER_MAX = 24  # invoice and payment numbers (INV-D1-000001)


# -- permissions ---------------------------------------------------------------------------------------
def require_sees_money(session: Session, store: Store, viewer: str | Actor) -> Actor:
    """Refuse a viewer whose roles may not see amounts (the warehouse never sees prices)."""
    actor = viewer if isinstance(viewer, Actor) else load_actor(session, viewer)
    if "amount" not in visible_fields(store.workflow, actor):
        raise Refused(
            msg(
                "{user} may not see amounts ({roles}).", user=actor.name, roles=", ".join(sorted(actor.roles))
            ),
            code="forbidden_field",
        )
    return actor


def _money(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_HALF_UP))


def split_tax(rules: Rules, amount: int) -> tuple[int, int, int]:
    """(net, tax, total) in fen for orders worth ``amount`` under the rules' VAT settings."""
    rate = rules.tax_rate
    if rules.prices_include_tax:
        net = _money(Decimal(amount) / (1 + rate))
        return net, amount - net, amount
    tax = _money(Decimal(amount) * rate)
    return amount, tax, amount + tax


# -- credit holds and approvals ------------------------------------------------------------------------
@dataclass(frozen=True)
class QueueItem:
    """An order waiting for finance: a credit hold or a large order's approval."""

    order_no: str
    customer_code: str
    customer_name: str
    settlement_terms: str
    amount: int
    exposure: int  # the customer's exposure without this order
    credit_limit: int
    state: str
    state_label: Label
    since: datetime
    status: str  # pending | kept (credit) ; pending (approval)
    roles: tuple[str, ...]
    last_reason: str
    version: int

    @property
    def over_by(self) -> int:
        return self.exposure + self.amount - self.credit_limit


def _queue(store: Store, viewer: str | Actor, kind: str, limit: int) -> list[QueueItem]:
    rules = rules_for(store)
    workflow = store.workflow
    with store.read() as session:
        require_sees_money(session, store, viewer)
        flag = col(OrderSales.credit_hold) if kind == "credit" else col(OrderSales.approval)
        statuses = ("pending", "kept") if kind == "credit" else ("pending",)
        rows = session.exec(
            select(SalesOrder, Customer, OrderSales)
            .join(Customer)
            .join(OrderSales, col(OrderSales.order_id) == SalesOrder.id)
            .where(flag.in_(statuses), SalesOrder.state != "cancelled")
            .order_by(col(SalesOrder.created_at), col(SalesOrder.id))
            .limit(max(1, min(limit, PAGE_MAX)))
        ).all()
        last = {
            d.order_id: d.reason
            for d in session.exec(
                select(DeskDecision)
                .where(
                    col(DeskDecision.order_id).in_([o.id for o, _c, _i in rows]), DeskDecision.kind == kind
                )
                .order_by(col(DeskDecision.id))
            )
        }
        exposures: dict[int, int] = {}
        items = []
        for o, c, info in rows:
            if c.id not in exposures:
                exposures[c.id or 0] = credit_exposure(session, c.id or 0)
            owed = o.state not in NOT_OWED_STATES and o.held_from_state not in NOT_OWED_STATES
            own = o.amount if owed else 0
            roles = (
                split_roles(role_list(rules.credit_release_roles))
                if kind == "credit"
                else split_roles(info.approval_roles) or split_roles(role_list(rules.approval_roles))
            )
            items.append(
                QueueItem(
                    order_no=o.order_no,
                    customer_code=c.code,
                    customer_name=c.name,
                    settlement_terms=c.settlement_terms,
                    amount=o.amount,
                    exposure=exposures[c.id or 0] - own,
                    credit_limit=c.credit_limit,
                    state=o.state,
                    state_label=state_label(workflow, o.state),
                    since=o.created_at,
                    status=info.credit_hold if kind == "credit" else info.approval,
                    roles=roles,
                    last_reason=last.get(o.id or 0, ""),
                    version=o.version,
                )
            )
        return items


def credit_hold_queue(store: Store, *, viewer: str | Actor, limit: int = 50) -> list[QueueItem]:
    """Orders held over their customer's credit limit (pending first decision, or kept on hold)."""
    return _queue(store, viewer, "credit", limit)


def approval_queue(store: Store, *, viewer: str | Actor, limit: int = 50) -> list[QueueItem]:
    """Orders over the approval threshold waiting for approval."""
    return _queue(store, viewer, "approval", limit)


def _decision(ctx: CommandContext, order: SalesOrder, kind: str, decision: str, reason: str) -> None:
    ctx.session.add(
        DeskDecision(
            order_id=order.id or 0,
            kind=kind,
            decision=decision,
            reason=reason,
            user_name=ctx.actor.name,
            at=ctx.now,
        )
    )


def decide_credit(
    store: Store,
    *,
    order_no: str,
    release: bool,
    user: str | Actor,
    reason: str,
    expected_version: int | None = None,
) -> str:
    """Release an order from its credit hold (it resumes where it was) or keep it held, with a reason.

    Release also works on an order that was never held but is blocked by ``credit_ok`` further on (e.g. at
    shipping): it lets that order through. Returns the order's state afterwards.
    """
    reason = clean_text(reason, field_name="Reason", max_len=REASON_MAX, required=True)
    rules = rules_for(store)
    workflow = store.workflow
    with command(store, "decide_credit", user=user) as ctx:
        require_any_role(ctx, rules.credit_release_roles, action="release credit holds")
        order = order_for_change(ctx, order_no, expected_version, workflow=workflow)
        info = ctx.session.get(OrderSales, order.id)
        hold_was = info.credit_hold if info is not None else ""
        held = hold_was in ("pending", "kept")
        if not release and not held:
            raise Refused(
                msg("Order {order_no} is not on credit hold.", order_no=order.order_no), code="not_on_hold"
            )
        source = order.state
        if release:
            order.credit_released = True
            if held and workflow.states[order.state].kind == "hold" and order.held_from_state:
                order.state, order.held_from_state = order.held_from_state, ""
                order.state_since = ctx.now
        if info is not None and (held or release):
            info.credit_hold = "released" if release else "kept"
            ctx.session.add(info)
        _decision(ctx, order, "credit", "release" if release else "keep", reason)
        base = touch_order(ctx, order)
        ctx.record(
            order_no=order.order_no,
            args={
                "order_no": order.order_no,
                "decision": "release" if release else "keep",
                "reason": reason,
                "hold_was": hold_was,  # what the decision was made on: the central API's conflict check
            },
            base_version=base,
            detail={"from": source, "to": order.state, "notify": ["sales"], "require_ack": not release},
        )
        return order.state


def decide_approval(
    store: Store,
    *,
    order_no: str,
    approve: bool,
    user: str | Actor,
    reason: str = "",
    expected_version: int | None = None,
) -> str:
    """Approve or reject a large order (by the role configured when it was entered); rejecting needs a reason."""
    reason = clean_text(reason, field_name="Reason", max_len=REASON_MAX, required=not approve)
    rules = rules_for(store)
    with command(store, "decide_approval", user=user) as ctx:
        order = get_order_row(ctx.session, order_no)
        check_version(order, expected_version)
        info = ctx.session.get(OrderSales, order.id)
        if info is None or info.approval != "pending":
            raise Refused(
                msg("Order {order_no} is not waiting for approval.", order_no=order.order_no),
                code="not_pending",
            )
        roles = frozenset(split_roles(info.approval_roles)) or rules.approval_roles
        require_any_role(ctx, roles, action="approve large orders")
        info.approval = "approved" if approve else "rejected"
        if approve:
            info.approved_amount = order.amount
        ctx.session.add(info)
        _decision(ctx, order, "approval", "approve" if approve else "reject", reason)
        base = touch_order(ctx, order)
        ctx.record(
            order_no=order.order_no,
            args={
                "order_no": order.order_no,
                "decision": "approve" if approve else "reject",
                "reason": reason,
                "amount": order.amount,  # what was approved: the central API refuses it for another amount
            },
            base_version=base,
            detail={"notify": ["sales"], "require_ack": not approve},
        )
        return info.approval


# -- invoices ------------------------------------------------------------------------------------------
def _family(session: Session, order: SalesOrder) -> tuple[SalesOrder, list[SalesOrder]]:
    """An order's parent and the parent's children (an order without links is its own family)."""
    info = session.get(OrderSales, order.id)
    parent = session.get(SalesOrder, info.parent_id) if info and info.parent_id else order
    assert parent is not None
    children = session.exec(
        select(SalesOrder)
        .join(OrderSales, col(OrderSales.order_id) == SalesOrder.id)
        .where(OrderSales.parent_id == parent.id, SalesOrder.state != "cancelled")
        .order_by(col(SalesOrder.id))
    ).all()
    return parent, list(children)


@dataclass(frozen=True)
class ToInvoice:
    """A shipped order (with its linked children) not yet invoiced."""

    order_no: str
    customer_code: str
    customer_name: str
    state_label: Label
    amount: int  # the whole family's
    children: tuple[str, ...]
    ready: bool  # every linked order has shipped too
    waiting_for: tuple[str, ...]


def orders_to_invoice(
    store: Store, *, viewer: str | Actor, customer: str | None = None, limit: int = 50
) -> list[ToInvoice]:
    """Shipped orders without an invoice, grouped with their linked orders (parents listed, oldest first).

    Closed orders (terminal states) are left out of the queue: on a desk with years of history they are the
    past, not work. ``create_invoice`` still invoices one when it is named.
    """
    rules = rules_for(store)
    workflow = store.workflow
    states = sorted(s for s in rules.invoice_states if workflow.states[s].kind != "terminal")
    page = max(1, min(limit, PAGE_MAX)) * 3
    with store.read() as session:
        require_sees_money(session, store, viewer)
        invoiced = select(InvoiceOrder.order_id).where(InvoiceOrder.order_id == SalesOrder.id).exists()
        # One index range per state (state, state_since), merged: an IN over the states would sort them all.
        per_state = []
        for state in states:
            query = (
                select(SalesOrder, Customer)
                .join(Customer)
                .where(SalesOrder.state == state, ~invoiced)
                .order_by(col(SalesOrder.state_since), col(SalesOrder.id))
            )
            if customer:
                query = query.where(Customer.code == customer.strip())
            per_state.append(session.exec(query.limit(page)).all())
        rows = list(heapq.merge(*per_state, key=lambda r: (r[0].state_since, r[0].id or 0)))[:page]
        out: list[ToInvoice] = []
        seen: set[int] = set()
        for o, c in rows:
            parent, children = _family(session, o)
            if parent.id in seen:
                continue
            seen.add(parent.id or 0)
            family = [parent, *children]
            waiting = tuple(f.order_no for f in family if f.state not in rules.invoice_states)
            out.append(
                ToInvoice(
                    order_no=parent.order_no,
                    customer_code=c.code,
                    customer_name=c.name,
                    state_label=state_label(workflow, parent.state),
                    amount=sum(f.amount for f in family),
                    children=tuple(ch.order_no for ch in children),
                    ready=not waiting,
                    waiting_for=waiting,
                )
            )
            if len(out) >= limit:
                break
        return out


def _next_number(session: Session, model: Any, column: Any, prefix: str) -> str:
    desk = session.get(Desk, 1)
    code = desk.desk_code if desk else "D1"
    last = session.exec(
        select(column)
        .where(col(column).startswith(f"{prefix}-{code}-"))
        .order_by(col(column).desc())
        .limit(1)
    ).first()
    n = int(str(last).rsplit("-", 1)[1]) + 1 if last else 1
    return f"{prefix}-{code}-{n:06d}"


def _given_number(session: Session, column: Any, number: str | None) -> str | None:
    """A number a desk already gave an invoice or payment (the central API replaying it), checked free."""
    if number is None:
        return None
    number = number.strip().upper()
    if not number or len(number) > NUMBER_MAX:
        raise Refused(msg("{number} is not a valid document number.", number=number), code="bad_number")
    if session.exec(select(column).where(column == number)).first() is not None:
        raise Refused(msg("Number {number} is already in use.", number=number), code="duplicate_number")
    return number


def create_invoice(
    store: Store,
    *,
    order_nos: Sequence[str],
    user: str | Actor,
    invoice_date: date | None = None,
    note: str = "",
    invoice_no: str | None = None,
) -> InvoiceView:
    """One invoice for shipped orders of one customer; each order brings its linked orders along.

    Unmatched payments of the customer (prepayments) are matched to the new invoice, oldest first.
    ``invoice_no`` is for the central API replaying a desk's invoice: the desk already numbered it.
    """
    note = clean_text(note, field_name="Notes", max_len=REASON_MAX)
    if not order_nos:
        raise Refused(msg("Name at least one order to invoice."), code="no_orders")
    rules = rules_for(store)
    workflow = store.workflow
    with command(store, "create_invoice", user=user) as ctx:
        require_any_role(ctx, FINANCE_ROLES, action="issue invoices")
        orders: dict[int, SalesOrder] = {}
        for no in order_nos:
            order = get_order_row(ctx.session, no)
            parent, children = _family(ctx.session, order)
            for member in (parent, *children):
                orders[member.id or 0] = member
        customers = {o.customer_id for o in orders.values()}
        if len(customers) > 1:
            raise Refused(
                msg("An invoice is for one customer; these orders belong to several."), code="mixed_customers"
            )
        for o in orders.values():
            if o.state not in rules.invoice_states:
                raise Refused(
                    msg(
                        "Order {order_no} is {state}: only shipped orders are invoiced (linked orders go on one "
                        "invoice with their parent).",
                        order_no=o.order_no,
                        state=state_label(workflow, o.state),
                    ),
                    code="not_shipped",
                )
            done = ctx.session.get(InvoiceOrder, o.id)
            if done is not None:
                inv = ctx.session.get(Invoice, done.invoice_id)
                raise Refused(
                    msg(
                        "Order {order_no} is already on invoice {invoice_no}.",
                        order_no=o.order_no,
                        invoice_no=inv.invoice_no if inv else "?",
                    ),
                    code="already_invoiced",
                )
        cust = ctx.session.get(Customer, customers.pop())
        assert cust is not None
        day = invoice_date or ctx.now.date()
        amount = sum(o.amount for o in orders.values())
        net, tax, total = split_tax(rules, amount)
        invoice = Invoice(
            invoice_no=_given_number(ctx.session, Invoice.invoice_no, invoice_no)
            or _next_number(ctx.session, Invoice, Invoice.invoice_no, "INV"),
            customer_id=cust.id or 0,
            invoice_date=day,
            due_date=day + timedelta(days=rules.payment_days(cust.settlement_terms)),
            net=net,
            tax=tax,
            total=total,
            tax_rate_bp=int(rules.tax_rate * 10000),
            created_at=ctx.now,
            created_by=ctx.actor.name,
            note=note,
        )
        ctx.session.add(invoice)
        ctx.session.flush()
        for o in sorted(orders.values(), key=lambda o: o.id or 0):
            ctx.session.add(InvoiceOrder(order_id=o.id or 0, invoice_id=invoice.id or 0, amount=o.amount))
        matched = _match_prepayments(ctx, invoice)
        ctx.record(
            args={
                "invoice_no": invoice.invoice_no,
                "customer": cust.code,
                "orders": [o.order_no for o in sorted(orders.values(), key=lambda o: o.id or 0)],
                "invoice_date": day.isoformat(),
                "net": net,
                "tax": tax,
                "total": total,
                "note": note,
                "matched_payments": matched,  # what this desk matched (the central API matches its own)
            },
            detail={"matched_payments": matched},
        )
        invoice_no = invoice.invoice_no
    return invoice_view(store, invoice_no)


def _match_prepayments(ctx: CommandContext, invoice: Invoice) -> list[str]:
    payments = ctx.session.exec(
        select(Payment)
        .where(Payment.customer_id == invoice.customer_id, col(Payment.unallocated) > 0)
        .order_by(col(Payment.received_on), col(Payment.id))
    ).all()
    used = []
    for p in payments:
        share = min(p.unallocated, invoice.total - invoice.paid)
        if share <= 0:
            break
        _allocate(ctx.session, p, invoice, share)
        used.append(p.payment_no)
    return used


def _allocate(session: Session, payment: Payment, invoice: Invoice, amount: int) -> None:
    session.add(PaymentAllocation(payment_id=payment.id or 0, invoice_id=invoice.id or 0, amount=amount))
    payment.unallocated -= amount
    invoice.paid += amount
    session.add(payment)
    session.add(invoice)


@dataclass(frozen=True)
class InvoiceView:
    invoice_no: str
    customer_code: str
    customer_name: str
    invoice_date: date
    due_date: date
    orders: tuple[str, ...]
    net: int
    tax: int
    total: int
    tax_rate_bp: int
    paid: int
    note: str

    @property
    def open(self) -> int:
        return self.total - self.paid

    def to_json(self) -> dict[str, Any]:
        return {
            "invoice_no": self.invoice_no,
            "customer": {"code": self.customer_code, "name": self.customer_name},
            "invoice_date": self.invoice_date.isoformat(),
            "due_date": self.due_date.isoformat(),
            "orders": list(self.orders),
            "net": self.net,
            "tax": self.tax,
            "total": self.total,
            "tax_rate": self.tax_rate_bp / 10000,
            "paid": self.paid,
            "open": self.open,
            "note": self.note,
        }


def _invoice_views(session: Session, rows: Sequence[tuple[Invoice, Customer]]) -> list[InvoiceView]:
    orders: dict[int, list[str]] = {}
    for link, no in session.exec(
        select(InvoiceOrder, SalesOrder.order_no)
        .join(SalesOrder, col(SalesOrder.id) == InvoiceOrder.order_id)
        .where(col(InvoiceOrder.invoice_id).in_([i.id for i, _c in rows]))
        .order_by(col(InvoiceOrder.order_id))
    ).all():
        orders.setdefault(link.invoice_id, []).append(no)
    return [
        InvoiceView(
            i.invoice_no,
            c.code,
            c.name,
            i.invoice_date,
            i.due_date,
            tuple(orders.get(i.id or 0, [])),
            i.net,
            i.tax,
            i.total,
            i.tax_rate_bp,
            i.paid,
            i.note,
        )
        for i, c in rows
    ]


def invoice_view(store: Store, invoice_no: str) -> InvoiceView:
    with store.read() as session:
        row = session.exec(
            select(Invoice, Customer).join(Customer).where(Invoice.invoice_no == invoice_no.strip().upper())
        ).first()
        if row is None:
            raise Refused(
                msg("There is no invoice {invoice_no}.", invoice_no=invoice_no), code="unknown_invoice"
            )
        return _invoice_views(session, [row])[0]


def list_invoices(
    store: Store,
    *,
    viewer: str | Actor,
    customer: str | None = None,
    open_only: bool = False,
    since: date | None = None,
    until: date | None = None,
    limit: int = 50,
) -> list[InvoiceView]:
    """Invoices, newest first (``since``/``until`` are inclusive invoice dates)."""
    with store.read() as session:
        require_sees_money(session, store, viewer)
        query = select(Invoice, Customer).join(Customer)
        if customer:
            query = query.where(Customer.code == customer.strip())
        if open_only:
            query = query.where(col(Invoice.paid) < col(Invoice.total))
        if since:
            query = query.where(col(Invoice.invoice_date) >= since)
        if until:
            query = query.where(col(Invoice.invoice_date) <= until)
        rows = session.exec(
            query.order_by(col(Invoice.invoice_date).desc(), col(Invoice.id).desc()).limit(max(1, limit))
        ).all()
        return _invoice_views(session, rows)


# -- payments ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PaymentView:
    payment_no: str
    customer_code: str
    customer_name: str
    received_on: date
    amount: int
    unallocated: int
    method: str
    reference: str
    matched: tuple[tuple[str, int], ...]  # (invoice no, amount)

    def to_json(self) -> dict[str, Any]:
        return {
            "payment_no": self.payment_no,
            "customer": {"code": self.customer_code, "name": self.customer_name},
            "received_on": self.received_on.isoformat(),
            "amount": self.amount,
            "unallocated": self.unallocated,
            "method": self.method,
            "reference": self.reference,
            "matched": [{"invoice_no": no, "amount": amount} for no, amount in self.matched],
        }


METHODS = (
    "bank",
    "cash",
    "alipay",
    "wechat",
    "acceptance",
    "other",
)  # 银行转账 现金 支付宝 微信 承兑汇票 其他


def record_payment(
    store: Store,
    *,
    customer: str,
    amount: int,
    user: str | Actor,
    received_on: date | None = None,
    invoices: Sequence[str] = (),
    method: str = "bank",
    reference: str = "",
    note: str = "",
    payment_no: str | None = None,
) -> PaymentView:
    """Record money received and match it: to the named invoices in order, else to the customer's open
    invoices oldest first; what is left stays on account (and is matched to the next invoice).

    ``payment_no`` is for the central API replaying a desk's payment: the desk already numbered it."""
    reference = clean_text(reference, field_name="Reference", max_len=60)
    note = clean_text(note, field_name="Notes", max_len=REASON_MAX)
    if not isinstance(amount, int) or amount <= 0:
        raise Refused(msg("A payment must be a positive amount."), code="bad_amount")
    if method not in METHODS:
        raise Refused(
            msg(
                "Unknown payment method {method}: use one of {methods}.",
                method=method,
                methods=", ".join(METHODS),
            ),
            code="bad_method",
        )
    with command(store, "record_payment", user=user) as ctx:
        require_any_role(ctx, FINANCE_ROLES, action="record payments")
        cust = ctx.session.exec(select(Customer).where(Customer.code == customer.strip())).first()
        if cust is None or cust.id is None:
            raise Refused(
                msg("There is no customer with code {code}.", code=customer.strip()), code="unknown_customer"
            )
        day = received_on or ctx.now.date()
        if day > ctx.now.date():
            raise Refused(
                msg("The payment date {date} is in the future.", date=day.isoformat()), code="date_in_future"
            )
        if reference:
            twin = ctx.session.exec(
                select(Payment).where(
                    Payment.customer_id == cust.id, Payment.reference == reference, Payment.amount == amount
                )
            ).first()
            if twin is not None:
                raise Refused(
                    msg(
                        "This payment is already recorded as {payment_no} (same customer, reference and amount).",
                        payment_no=twin.payment_no,
                    ),
                    code="duplicate_payment",
                )
        targets: list[Invoice] = []
        for no in invoices:
            inv = ctx.session.exec(select(Invoice).where(Invoice.invoice_no == no.strip().upper())).first()
            if inv is None:
                raise Refused(msg("There is no invoice {invoice_no}.", invoice_no=no), code="unknown_invoice")
            if inv.customer_id != cust.id:
                raise Refused(
                    msg("Invoice {invoice_no} is another customer's.", invoice_no=inv.invoice_no),
                    code="wrong_customer",
                )
            if inv.paid >= inv.total:
                raise Refused(
                    msg("Invoice {invoice_no} is already paid.", invoice_no=inv.invoice_no), code="paid"
                )
            targets.append(inv)
        if not invoices:
            targets = list(
                ctx.session.exec(
                    select(Invoice)
                    .where(Invoice.customer_id == cust.id, col(Invoice.paid) < col(Invoice.total))
                    .order_by(col(Invoice.invoice_date), col(Invoice.id))
                ).all()
            )
        payment = Payment(
            payment_no=_given_number(ctx.session, Payment.payment_no, payment_no)
            or _next_number(ctx.session, Payment, Payment.payment_no, "PAY"),
            customer_id=cust.id,
            received_on=day,
            amount=amount,
            unallocated=amount,
            method=method,
            reference=reference,
            note=note,
            created_at=ctx.now,
            created_by=ctx.actor.name,
        )
        ctx.session.add(payment)
        ctx.session.flush()
        matched = []
        for inv in targets:
            share = min(payment.unallocated, inv.total - inv.paid)
            if share <= 0:
                break
            _allocate(ctx.session, payment, inv, share)
            matched.append([inv.invoice_no, share])
        ctx.record(
            args={
                "payment_no": payment.payment_no,
                "customer": cust.code,
                "amount": amount,
                "received_on": day.isoformat(),
                "invoices": [i.strip().upper() for i in invoices],
                "method": method,
                "reference": reference,
                "note": note,
                "matched": matched,  # what this desk matched (the central API matches its own)
            },
            detail={"matched": matched, "unallocated": payment.unallocated},
        )
        payment_no = payment.payment_no
    return payment_view(store, payment_no)


def payment_view(store: Store, payment_no: str) -> PaymentView:
    with store.read() as session:
        row = session.exec(
            select(Payment, Customer).join(Customer).where(Payment.payment_no == payment_no.strip().upper())
        ).first()
        if row is None:
            raise Refused(
                msg("There is no payment {payment_no}.", payment_no=payment_no), code="unknown_payment"
            )
        return _payment_views(session, [row])[0]


def _payment_views(session: Session, rows: Sequence[tuple[Payment, Customer]]) -> list[PaymentView]:
    matched: dict[int, list[tuple[str, int]]] = {}
    for alloc, no in session.exec(
        select(PaymentAllocation, Invoice.invoice_no)
        .join(Invoice, col(Invoice.id) == PaymentAllocation.invoice_id)
        .where(col(PaymentAllocation.payment_id).in_([p.id for p, _c in rows]))
        .order_by(col(PaymentAllocation.id))
    ).all():
        matched.setdefault(alloc.payment_id, []).append((no, alloc.amount))
    return [
        PaymentView(
            p.payment_no,
            c.code,
            c.name,
            p.received_on,
            p.amount,
            p.unallocated,
            p.method,
            p.reference,
            tuple(matched.get(p.id or 0, [])),
        )
        for p, c in rows
    ]


def list_payments(
    store: Store, *, viewer: str | Actor, customer: str | None = None, limit: int = 50
) -> list[PaymentView]:
    with store.read() as session:
        require_sees_money(session, store, viewer)
        query = select(Payment, Customer).join(Customer)
        if customer:
            query = query.where(Customer.code == customer.strip())
        rows = session.exec(
            query.order_by(col(Payment.received_on).desc(), col(Payment.id).desc()).limit(max(1, limit))
        ).all()
        return _payment_views(session, rows)


# -- receivables ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AgeingRow:
    customer_code: str
    customer_name: str
    settlement_terms: str
    credit_limit: int
    buckets: tuple[int, int, int, int]  # open invoice balances aged 0-30, 31-60, 61-90, over 90 days
    unallocated: int  # money received but not matched to an invoice
    uninvoiced: int  # open orders not yet invoiced

    @property
    def receivable(self) -> int:
        return sum(self.buckets)

    @property
    def exposure(self) -> int:
        return self.receivable - self.unallocated + self.uninvoiced

    @property
    def available(self) -> int:
        return self.credit_limit - self.exposure

    def to_json(self) -> dict[str, Any]:
        return {
            "customer": {"code": self.customer_code, "name": self.customer_name},
            "settlement_terms": self.settlement_terms,
            "credit_limit": self.credit_limit,
            "ageing": dict(zip(BUCKETS, self.buckets, strict=True)),
            "receivable": self.receivable,
            "unallocated": self.unallocated,
            "uninvoiced": self.uninvoiced,
            "exposure": self.exposure,
            "available": self.available,
        }


def bucket_of(days: int) -> int:
    """0-30 → 0, 31-60 → 1, 61-90 → 2, over 90 → 3 (a future date counts as current)."""
    return 0 if days <= 30 else 1 if days <= 60 else 2 if days <= 90 else 3


def receivables_ageing(
    store: Store, *, viewer: str | Actor, as_of: date | None = None, customer: str | None = None
) -> list[AgeingRow]:
    """Each customer's open receivables by age, unmatched money, uninvoiced open orders and exposure
    (customers with nothing open are left out), the largest exposure first."""
    rules = rules_for(store)
    day = as_of or store.clock().date()
    with store.read() as session:
        require_sees_money(session, store, viewer)
        cust_filter = (
            session.exec(select(Customer.id).where(Customer.code == customer.strip())).first()
            if customer
            else None
        )
        if customer and cust_filter is None:
            raise Refused(
                msg("There is no customer with code {code}.", code=customer.strip()), code="unknown_customer"
            )
        buckets: dict[int, list[int]] = {}
        inv_q = select(Invoice).where(col(Invoice.paid) < col(Invoice.total))
        if cust_filter:
            inv_q = inv_q.where(Invoice.customer_id == cust_filter)
        for inv in session.exec(inv_q):
            basis = inv.invoice_date if rules.ageing_basis == "invoice_date" else inv.due_date
            b = buckets.setdefault(inv.customer_id, [0, 0, 0, 0])
            b[bucket_of((day - basis).days)] += inv.total - inv.paid
        pay_q = select(Payment.customer_id, func.sum(Payment.unallocated)).where(col(Payment.unallocated) > 0)
        if cust_filter:
            pay_q = pay_q.where(Payment.customer_id == cust_filter)
        unallocated = dict(session.exec(pay_q.group_by(col(Payment.customer_id))).all())
        # Open orders not yet invoiced = all open orders − the invoiced ones. An IN over the open states uses
        # the state index (a NOT IN, or a NOT EXISTS per row, reads the whole table on a big desk).
        open_states = [st for st in store.workflow.states if st not in NOT_OWED_STATES]
        live = (
            col(SalesOrder.state).in_(open_states),
            col(SalesOrder.held_from_state).not_in(NOT_OWED_STATES),
        )
        open_q = select(SalesOrder.customer_id, func.sum(SalesOrder.amount)).where(*live)
        billed_q = (
            select(SalesOrder.customer_id, func.sum(SalesOrder.amount))
            .join(InvoiceOrder, col(InvoiceOrder.order_id) == SalesOrder.id)
            .where(*live)
        )
        if cust_filter:
            open_q = open_q.where(SalesOrder.customer_id == cust_filter)
            billed_q = billed_q.where(SalesOrder.customer_id == cust_filter)
        billed = dict(session.exec(billed_q.group_by(col(SalesOrder.customer_id))).all())
        uninvoiced = {
            cid: int(total or 0) - int(billed.get(cid, 0) or 0)
            for cid, total in session.exec(open_q.group_by(col(SalesOrder.customer_id))).all()
        }
        uninvoiced = {cid: v for cid, v in uninvoiced.items() if v}
        ids = set(buckets) | set(unallocated) | set(uninvoiced)
        customers = {c.id: c for c in session.exec(select(Customer).where(col(Customer.id).in_(ids)))}
        rows = [
            AgeingRow(
                customers[cid].code,
                customers[cid].name,
                customers[cid].settlement_terms,
                customers[cid].credit_limit,
                tuple(buckets.get(cid, [0, 0, 0, 0])),  # type: ignore[arg-type]
                int(unallocated.get(cid, 0) or 0),
                int(uninvoiced.get(cid, 0) or 0),
            )
            for cid in ids
            if cid in customers
        ]
        rows.sort(key=lambda r: (-r.exposure, r.customer_code))
        return rows


def customer_exposure(store: Store, *, customer: str, viewer: str | Actor) -> AgeingRow:
    """One customer's exposure: open receivables + uninvoiced open orders − unmatched money, and headroom."""
    rows = receivables_ageing(store, viewer=viewer, customer=customer)
    if rows:
        return rows[0]
    with store.read() as session:
        c = session.exec(select(Customer).where(Customer.code == customer.strip())).one()
        return AgeingRow(c.code, c.name, c.settlement_terms, c.credit_limit, (0, 0, 0, 0), 0, 0)


# -- exports -------------------------------------------------------------------------------------------
# Column headers of the accounting exports, in the order written (see docs/finance-export.md).
INVOICE_COLUMNS = (
    "凭证日期",
    "凭证字",
    "摘要",
    "客户编码",
    "客户名称",
    "发票号",
    "发票日期",
    "到期日",
    "订单号",
    "税率",
    "金额",
    "税额",
    "价税合计",
    "已收金额",
    "未收金额",
    "币种",
    "应收科目",
    "收入科目",
    "销项税科目",
)
RECEIVABLE_COLUMNS = (
    "截止日期",
    "客户编码",
    "客户名称",
    "结算方式",
    "信用额度",
    "0-30天",
    "31-60天",
    "61-90天",
    "90天以上",
    "应收余额",
    "未核销收款",
    "未开票订单",
    "信用占用",
    "可用额度",
)
EXPORT_FORMATS = ("csv", "xlsx")


def _yuan(fen: int) -> Decimal:
    return (Decimal(fen) / 100).quantize(Decimal("0.01"))


def invoice_export_rows(rules: Rules, invoices: Sequence[InvoiceView]) -> list[list[Any]]:
    """One row per invoice: dates as dates, money as yuan with two decimals."""
    acc = rules.export_accounts
    return [
        [
            inv.invoice_date,
            acc["voucher_word"],
            f"销售收入 {inv.customer_name} 发票{inv.invoice_no}",
            inv.customer_code,
            inv.customer_name,
            inv.invoice_no,
            inv.invoice_date,
            inv.due_date,
            " ".join(inv.orders),
            (Decimal(inv.tax_rate_bp) / 10000).quantize(Decimal("0.01")),
            _yuan(inv.net),
            _yuan(inv.tax),
            _yuan(inv.total),
            _yuan(inv.paid),
            _yuan(inv.open),
            "CNY",
            acc["receivable_account"],
            acc["revenue_account"],
            acc["output_tax_account"],
        ]
        for inv in invoices
    ]


def receivable_export_rows(rows: Sequence[AgeingRow], as_of: date) -> list[list[Any]]:
    return [
        [
            as_of,
            r.customer_code,
            r.customer_name,
            r.settlement_terms,
            _yuan(r.credit_limit),
            *(_yuan(b) for b in r.buckets),
            _yuan(r.receivable),
            _yuan(r.unallocated),
            _yuan(r.uninvoiced),
            _yuan(r.exposure),
            _yuan(r.available),
        ]
        for r in rows
    ]


def _write(
    path: Path, fmt: str, title: str, headers: Sequence[str], rows: list[list[Any]], encoding: str
) -> None:
    if fmt not in EXPORT_FORMATS:
        raise Refused(
            msg(
                "Unknown export format {format}: use one of {formats}.",
                format=fmt,
                formats=", ".join(EXPORT_FORMATS),
            ),
            code="bad_format",
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        # Plain values (2026-11-20, 1234.50): what 用友/金蝶 import templates and Excel both read.
        with path.open("w", encoding=encoding, newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(headers)
            for row in rows:
                writer.writerow([v.isoformat() if isinstance(v, date) else v for v in row])
        return
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = title
    sheet.append(list(headers))
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for row in rows:
        sheet.append([float(v) if isinstance(v, Decimal) else v for v in row])
    for column in sheet.iter_cols(min_row=2):
        for cell in column:
            if isinstance(cell.value, date):
                cell.number_format = "yyyy-mm-dd"
            elif isinstance(cell.value, float):
                cell.number_format = "0.00"
    for i, header in enumerate(headers, start=1):
        width = max([len(str(header)) * 2, *(len(str(r[i - 1])) + 2 for r in rows[:200])])
        sheet.column_dimensions[sheet.cell(row=1, column=i).column_letter].width = min(40, width)
    sheet.freeze_panes = "A2"
    book.save(path)


def export_invoices(
    store: Store,
    path: Path | str,
    *,
    viewer: str | Actor,
    since: date | None = None,
    until: date | None = None,
    fmt: str | None = None,
) -> int:
    """Write the invoice register for the period to CSV or XLSX (by ``fmt`` or the file's suffix)."""
    target = Path(path)
    fmt = fmt or target.suffix.lstrip(".").lower() or "csv"
    rules = rules_for(store)
    invoices = list_invoices(store, viewer=viewer, since=since, until=until, limit=1_000_000)
    invoices.sort(key=lambda i: (i.invoice_date, i.invoice_no))
    rows = invoice_export_rows(rules, invoices)
    _write(target, fmt, "发票", INVOICE_COLUMNS, rows, rules.csv_encoding)
    return len(rows)


def export_receivables(
    store: Store, path: Path | str, *, viewer: str | Actor, as_of: date | None = None, fmt: str | None = None
) -> int:
    """Write receivables ageing and credit exposure per customer to CSV or XLSX."""
    target = Path(path)
    fmt = fmt or target.suffix.lstrip(".").lower() or "csv"
    day = as_of or store.clock().date()
    rows = receivable_export_rows(receivables_ageing(store, viewer=viewer, as_of=day), day)
    _write(target, fmt, "应收账龄", RECEIVABLE_COLUMNS, rows, rules_for(store).csv_encoding)
    return len(rows)


def default_export_name(kind: str, day: date, fmt: str) -> str:
    """``invoices-2026-11-20.xlsx`` / ``receivables-2026-11-20.csv``."""
    return f"{kind}-{day.isoformat()}.{fmt}"
