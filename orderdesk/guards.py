"""Named checks a workflow transition can require. The workflow file names them; this module defines them.

Each guard looks at an order inside the command's transaction and returns ``None`` (pass) or a
``GuardFailure`` that says what is missing and which roles must act.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import bindparam, func
from sqlmodel import Session, col, select

from orderdesk.i18n import Msg, msg
from orderdesk.models import (
    Customer,
    Invoice,
    InvoiceOrder,
    OrderLine,
    OrderSales,
    Payment,
    Product,
    SalesOrder,
)
from orderdesk.money import format_money

# States whose orders do not count towards a customer's open receivables.
NOT_OWED_STATES = ("draft", "cancelled", "closed")


@dataclass(frozen=True)
class GuardFailure:
    guard: str
    message: Msg
    who: tuple[str, ...]


Guard = Callable[[Session, SalesOrder, Msg], "GuardFailure | None"]


# Statements built once: a guard runs for every transition, and the central API replays thousands.
_LINES = select(OrderLine).where(OrderLine.order_id == bindparam("order_id")).order_by(col(OrderLine.line_no))
_CUSTOMER = bindparam("customer_id")
# What a customer owes or has committed, in one statement (see ``credit_exposure``).
_EXPOSURE = select(
    select(func.coalesce(func.sum(col(Invoice.total) - col(Invoice.paid)), 0))
    .where(Invoice.customer_id == _CUSTOMER)
    .scalar_subquery()
    - select(func.coalesce(func.sum(Payment.unallocated), 0))
    .where(Payment.customer_id == _CUSTOMER)
    .scalar_subquery()
    + select(func.coalesce(func.sum(SalesOrder.amount), 0))
    .where(
        SalesOrder.customer_id == _CUSTOMER,
        col(SalesOrder.state).not_in(NOT_OWED_STATES),
        col(SalesOrder.held_from_state).not_in(NOT_OWED_STATES),  # a draft on hold is not owed either
        ~select(InvoiceOrder.order_id).where(InvoiceOrder.order_id == SalesOrder.id).exists(),
        SalesOrder.id != bindparam("excluding_order"),
    )
    .scalar_subquery()
)
_FAMILY = (
    select(SalesOrder)
    .join(OrderSales, col(OrderSales.order_id) == SalesOrder.id, isouter=True)
    .where((SalesOrder.id == bindparam("parent_id")) | (OrderSales.parent_id == bindparam("parent_id")))
)


def order_lines(session: Session, order: SalesOrder) -> list[OrderLine]:
    """The order's lines, by line number."""
    return list(session.exec(_LINES, params={"order_id": order.id}))


def has_lines(session: Session, order: SalesOrder, state: Msg) -> GuardFailure | None:
    if order_lines(session, order):
        return None
    return GuardFailure(
        "has_lines", msg("Order {order_no} has no lines.", order_no=order.order_no), ("sales",)
    )


def credit_exposure(session: Session, customer_id: int, *, excluding_order: int | None = None) -> int:
    """What the customer owes or has committed (fen): open receivables (invoiced − paid, less money received
    but not yet matched to an invoice) plus open orders not yet invoiced (past draft, not closed/cancelled)."""
    params = {"customer_id": customer_id, "excluding_order": excluding_order or 0}  # ids start at 1
    return int(session.exec(_EXPOSURE, params=params).one())


def credit_ok(session: Session, order: SalesOrder, state: Msg) -> GuardFailure | None:
    """The commercial release: within the credit limit (or released by finance), and approved if large."""
    if order.credit_released:
        return approval_given(session, order, state)
    customer = session.get(Customer, order.customer_id)
    if customer is None:  # pragma: no cover - foreign key
        return None
    owed = credit_exposure(session, customer.id or 0, excluding_order=order.id)
    if owed + order.amount <= customer.credit_limit:
        return approval_given(session, order, state)
    return GuardFailure(
        "credit_ok",
        msg(
            "Over the credit limit: {customer} would owe {exposure} against a limit of {limit}. "
            "Finance must release order {order_no}.",
            customer=customer.name,
            exposure=format_money(owed + order.amount),
            limit=format_money(customer.credit_limit),
            order_no=order.order_no,
        ),
        ("finance",),
    )


def tech_approved(session: Session, order: SalesOrder, state: Msg) -> GuardFailure | None:
    if order.tech_approved:
        return rush_ready(session, order, state)  # a rush order also needs its materials before scheduling
    return GuardFailure(
        "tech_approved",
        msg("Technical feasibility is not signed off for order {order_no}.", order_no=order.order_no),
        ("planner",),
    )


def materials_kitted(session: Session, order: SalesOrder, state: Msg) -> GuardFailure | None:
    if order.materials_kitted:
        return None
    return GuardFailure(
        "materials_kitted",
        msg("Materials are not confirmed kitted for order {order_no}.", order_no=order.order_no),
        ("planner", "warehouse"),
    )


def inspector_assigned(session: Session, order: SalesOrder, state: Msg) -> GuardFailure | None:
    if order.inspector_id:
        return None
    return GuardFailure(
        "inspector_assigned",
        msg("No QC inspector is assigned to order {order_no}.", order_no=order.order_no),
        ("qc",),
    )


def qc_passed(session: Session, order: SalesOrder, state: Msg) -> GuardFailure | None:
    if order.qc_result == "passed":
        return None
    return GuardFailure(
        "qc_passed",
        msg("QC has not passed: order {order_no} is in {state}.", order_no=order.order_no, state=state),
        ("qc",),
    )


def all_lines_scanned(session: Session, order: SalesOrder, state: Msg) -> GuardFailure | None:
    short = [
        (line, line.quantity - line.scanned_qty)
        for line in order_lines(session, order)
        if line.scanned_qty < line.quantity
    ]
    if not short:
        return linked_orders_ready(session, order, state)  # linked orders go out in one shipment
    skus = {
        p.id: p.sku
        for p in session.exec(select(Product).where(col(Product.id).in_([ln.product_id for ln, _ in short])))
    }
    missing = ", ".join(f"{skus.get(line.product_id, '?')} x{left}" for line, left in short)
    return GuardFailure(
        "all_lines_scanned",
        msg(
            "Not every line is scanned on order {order_no}: still to scan {missing}.",
            order_no=order.order_no,
            missing=missing,
        ),
        ("warehouse",),
    )


def stock_available(session: Session, order: SalesOrder, state: Msg) -> GuardFailure | None:
    short = []
    for line in order_lines(session, order):
        product = session.get(Product, line.product_id)
        need = line.quantity - line.shipped_qty
        if product is not None and product.stock_on_hand < need:
            short.append(f"{product.sku} {product.stock_on_hand}/{need}")
    if not short:
        return None
    return GuardFailure(
        "stock_available",
        msg(
            "Not enough stock for order {order_no} (on hand/needed): {short}.",
            order_no=order.order_no,
            short=", ".join(short),
        ),
        ("planner", "warehouse"),
    )


def waybill_recorded(session: Session, order: SalesOrder, state: Msg) -> GuardFailure | None:
    if order.waybill:
        return None
    return GuardFailure(
        "waybill_recorded",
        msg("No waybill number is recorded for order {order_no}.", order_no=order.order_no),
        ("warehouse",),
    )


def approval_given(session: Session, order: SalesOrder, state: Msg) -> GuardFailure | None:
    """An order over the approval threshold (rules.toml [approval]) goes no further until approved."""
    info = session.get(OrderSales, order.id)
    if info is None or info.approval in ("", "approved"):
        return None
    who = tuple(r for r in info.approval_roles.split(",") if r) or ("supervisor",)
    text = (
        "Order {order_no} ({amount}) was not approved; sales must change or cancel it."
        if info.approval == "rejected"
        else "Order {order_no} ({amount}) is over the approval threshold and waits for approval."
    )
    return GuardFailure(
        "approval_given", msg(text, order_no=order.order_no, amount=format_money(order.amount)), who
    )


def rush_ready(session: Session, order: SalesOrder, state: Msg) -> GuardFailure | None:
    """A rush order enters scheduling only after technical sign-off and with its materials kitted."""
    if not order.rush or (order.tech_approved and order.materials_kitted):
        return None
    if not order.tech_approved and not order.materials_kitted:
        text, who = (
            "Rush order {order_no} enters scheduling only after technical feasibility is signed off and "
            "materials are confirmed kitted; neither is done yet.",
            ("planner", "warehouse"),
        )
    elif not order.tech_approved:
        text, who = (
            "Rush order {order_no} enters scheduling only after technical feasibility is signed off.",
            ("planner",),
        )
    else:
        text, who = (
            "Rush order {order_no} enters scheduling only once its materials are confirmed kitted.",
            ("warehouse", "planner"),
        )
    return GuardFailure("rush_ready", msg(text, order_no=order.order_no), who)


# States from which a linked order counts as going out in the same shipment.
_SHIPPING_STATES = ("ready_to_ship", "shipped", "in_transit", "delivered", "closed")


def linked_orders_ready(session: Session, order: SalesOrder, state: Msg) -> GuardFailure | None:
    """Linked orders (a parent and its children) ship together: every live one must be ready to ship."""
    info = session.get(OrderSales, order.id)
    parent_id = info.parent_id if info is not None and info.parent_id else order.id
    family = session.exec(_FAMILY, params={"parent_id": parent_id}).all()
    waiting = [
        o.order_no
        for o in family
        if o.id != order.id and o.state not in _SHIPPING_STATES and o.state != "cancelled"
    ]
    if not waiting:
        return None
    return GuardFailure(
        "linked_orders_ready",
        msg(
            "Order {order_no} ships together with its linked orders; not ready to ship yet: {waiting}.",
            order_no=order.order_no,
            waiting=", ".join(sorted(waiting)),
        ),
        ("planner", "warehouse"),
    )


GUARDS: dict[str, Guard] = {
    "has_lines": has_lines,
    "credit_ok": credit_ok,
    "tech_approved": tech_approved,
    "materials_kitted": materials_kitted,
    "inspector_assigned": inspector_assigned,
    "qc_passed": qc_passed,
    "all_lines_scanned": all_lines_scanned,
    "stock_available": stock_available,
    "waybill_recorded": waybill_recorded,
    "approval_given": approval_given,
    "rush_ready": rush_ready,
    "linked_orders_ready": linked_orders_ready,
}
GUARD_NAMES = frozenset(GUARDS)
