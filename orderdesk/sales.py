"""The sales desk's rules and commands: entering an order with the checks that keep bad orders out, change
requests on confirmed orders, order revisions and linked orders.

Checks on entering an order (``enter_order``), all in the one ``create_order`` transaction:

* **duplicate suspicion** — the same customer, the same SKUs and quantities within the window: refused unless
  a reason from ``rules.toml [duplicates]`` is given;
* **credit** — open receivables plus uninvoiced open orders plus this order over the customer's limit: the
  order goes on hold and finance is asked to release it;
* **approval** — an amount over the threshold needs approval by the configured role (``credit_ok`` refuses
  to let it on until then);
* **short lead time** — a promised date fewer than N days away is flagged;
* **promised date** — proposed as order date + the products' lead time + transit days to the region; moving
  it (earlier, by default) needs a reason;
* **linked orders** — a second order for the same customer and ship-to within the window may be a child of
  the first; children ship and are invoiced with their parent.

Rush orders are held back at scheduling by the ``tech_approved`` / ``rush_ready`` guards (``guards.py``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, or_
from sqlmodel import Session, col, select

from orderdesk.canonical import canonical_json
from orderdesk.commands import Actor, CommandContext, clean_text, command, load_actor, require_role
from orderdesk.errors import Refused
from orderdesk.guards import credit_exposure
from orderdesk.i18n import Label, Msg, msg
from orderdesk.models import (
    ADDRESS_MAX,
    REASON_MAX,
    ChangeRequest,
    Customer,
    OrderLine,
    OrderRevision,
    OrderSales,
    Product,
    SalesOrder,
)
from orderdesk.orders import (
    MAX_LINE_QTY,
    create_order,
    find_product,
    get_order_row,
    order_for_change,
    require_fields,
    state_label,
    touch_order,
    visible_fields,
)
from orderdesk.rules import (
    CHANGE_FIELD_PERMISSION,
    ChangeFacts,
    Rules,
    role_list,
    rules_for,
    split_roles,
)
from orderdesk.store import Store
from orderdesk.views import OrderDetail

PICK_MAX = 20  # suggestions in a customer or product lookup
# How a change request's status and the fields it touches read to a person.
CHANGE_STATUS = {
    "pending": Label("waiting for a decision", "待审批"),
    "approved": Label("approved", "已批准"),
    "rejected": Label("rejected", "已驳回"),
}
CHANGE_FIELDS_LABELS = {
    "quantity": Label("quantity", "数量"),
    "sku": Label("SKU", "物料"),
    "address": Label("ship-to", "收货地址"),
    "date": Label("promised date", "交期"),
}
SHIPPED_STATES = ("shipped", "in_transit", "delivered", "closed")
_HISTORY_FOR_DEFAULTS = 20  # a returning customer's usual address and packaging: from this many orders


# -- permission helpers ----------------------------------------------------------------------------------
def require_any_role(ctx: CommandContext, roles: frozenset[str] | tuple[str, ...], action: str) -> None:
    """Refuse unless the actor holds one of ``roles``; an admin always may."""
    if "admin" not in ctx.actor.roles:
        require_role(ctx, frozenset(roles), action=action)


def _viewer_sees(store: Store, viewer: str | Actor | None, field_name: str) -> bool:
    if viewer is None:
        return True
    with store.read() as session:
        actor = viewer if isinstance(viewer, Actor) else load_actor(session, viewer)
    return field_name in visible_fields(store.workflow, actor)


# -- lookups for order entry -----------------------------------------------------------------------------
@dataclass(frozen=True)
class CustomerPick:
    code: str
    name: str
    phone: str
    contact: str
    region: str


def _prefix_range(column: Any, prefix: str) -> Any:
    # ``LIKE 'x%'`` cannot use SQLite's index on a case-sensitive column; a range on the raw text can.
    return (column >= prefix) & (column < prefix + "\U0010ffff")


def find_customers(store: Store, text: str, *, limit: int = 8) -> list[CustomerPick]:
    """Customers by code, phone (prefix; uses the phone index) or name (contains), best matches first."""
    text = " ".join(text.split())
    if not text:
        return []
    limit = max(1, min(limit, PICK_MAX))
    with store.read() as session:
        found: dict[str, Customer] = {}

        def take(rows: Sequence[Customer]) -> None:
            for c in rows:
                if len(found) < limit:
                    found.setdefault(c.code, c)

        take(session.exec(select(Customer).where(Customer.code == text)).all())
        is_phone = bool(phone_prefixes(text))
        if is_phone:
            take(_by_phone(session, text, limit))
        if len(found) < limit:
            take(
                session.exec(
                    select(Customer)
                    .where(_prefix_range(col(Customer.code), text.upper()))
                    .order_by(col(Customer.code))
                    .limit(limit)
                ).all()
            )
        if len(found) < limit and not is_phone:
            take(
                session.exec(
                    select(Customer)
                    .where(col(Customer.name).contains(text))
                    .order_by(col(Customer.code))
                    .limit(limit)
                ).all()
            )
        return [CustomerPick(c.code, c.name, c.phone, c.contact, c.region) for c in found.values()]


def phone_prefixes(text: str) -> list[str]:
    """The ways a typed phone number may start in the customer table: as typed, digits only, and for a
    landline typed without its dash, with the dash after a 3- or 4-digit area code (``0571-8…``, ``028-8…``)."""
    raw = "".join(text.split()).removeprefix("+86")
    digits = raw.replace("-", "")
    if not digits.isdigit():
        return []
    out = [raw, digits]
    if digits.startswith("0") and "-" not in raw:
        out += [digits[:4] + "-" + digits[4:]] if len(digits) > 4 else []
        out += [digits[:3] + "-" + digits[3:]] if len(digits) > 3 else []
    return list(dict.fromkeys(out))


def _by_phone(session: Session, text: str, limit: int) -> list[Customer]:
    found: dict[str, Customer] = {}
    for prefix in phone_prefixes(text):
        for c in session.exec(
            select(Customer).where(_prefix_range(col(Customer.phone), prefix)).limit(limit)
        ).all():
            if len(found) < limit:
                found.setdefault(c.code, c)
    return list(found.values())


def find_customer_by_phone(store: Store, phone: str) -> list[CustomerPick]:
    """Customers whose phone starts with ``phone`` (index range scans: fast on 100,000 customers)."""
    with store.read() as session:
        rows = _by_phone(session, phone, PICK_MAX)
        return [CustomerPick(c.code, c.name, c.phone, c.contact, c.region) for c in rows]


@dataclass(frozen=True)
class ProductPick:
    sku: str
    name: str
    unit: str
    unit_price: int
    stock_on_hand: int
    lead_time_days: int
    hazard: str


def find_products(store: Store, text: str, *, limit: int = 8) -> list[ProductPick]:
    """Products by barcode (exact), SKU (prefix) or name (contains)."""
    text = text.strip()
    if not text:
        return []
    limit = max(1, min(limit, PICK_MAX))
    with store.read() as session:
        found: dict[str, Product] = {}
        try:
            exact = find_product(session, text)
            found[exact.sku] = exact
        except Refused:
            pass
        for query in (
            select(Product).where(_prefix_range(col(Product.sku), text.upper())).order_by(col(Product.sku)),
            select(Product).where(_prefix_range(col(Product.sku), text)).order_by(col(Product.sku)),
            select(Product).where(col(Product.name).contains(text)).order_by(col(Product.sku)),
        ):
            if len(found) >= limit:
                break
            for p in session.exec(query.limit(limit)).all():
                if len(found) < limit:
                    found.setdefault(p.sku, p)
        return [
            ProductPick(p.sku, p.name, p.unit, p.unit_price, p.stock_on_hand, p.lead_time_days, p.hazard)
            for p in found.values()
        ]


@dataclass(frozen=True)
class CustomerDefaults:
    """What order entry fills in for a customer; ``returning`` when they have ordered before."""

    code: str
    name: str
    phone: str
    region: str
    ship_address: str  # their usual ship-to (most used in recent orders), else the registered address
    packing_preset: str  # the packaging of their latest order that had one
    standing_notes: str  # the customer's notes, copied onto every order
    settlement_terms: str
    credit_limit: int
    exposure: int
    returning: bool
    orders: int


def customer_defaults(store: Store, code: str) -> CustomerDefaults:
    """The returning customer's usual address, packaging preference and standing notes."""
    with store.read() as session:
        cust = _customer(session, code)
        recent = session.exec(
            select(SalesOrder.ship_address, SalesOrder.packing_preset)
            .where(SalesOrder.customer_id == cust.id, SalesOrder.state != "cancelled")
            .order_by(col(SalesOrder.created_at).desc(), col(SalesOrder.id).desc())
            .limit(_HISTORY_FOR_DEFAULTS)
        ).all()
        total = int(
            session.exec(
                select(func.count()).select_from(SalesOrder).where(SalesOrder.customer_id == cust.id)
            ).one()
        )
        counts: dict[str, int] = {}
        for address, _preset in recent:
            if address:
                counts[address] = counts.get(address, 0) + 1
        # Most used; on a tie the most recent (dicts keep first-seen order, and ``recent`` is newest first).
        usual = max(counts, key=lambda a: counts[a]) if counts else cust.address
        packing = next((p for _a, p in recent if p), "")
        return CustomerDefaults(
            code=cust.code,
            name=cust.name,
            phone=cust.phone,
            region=cust.region,
            ship_address=usual,
            packing_preset=packing,
            standing_notes=cust.notes,
            settlement_terms=cust.settlement_terms,
            credit_limit=cust.credit_limit,
            exposure=credit_exposure(session, cust.id or 0),
            returning=total > 0,
            orders=total,
        )


def _customer(session: Session, code: str) -> Customer:
    cust = session.exec(select(Customer).where(Customer.code == code.strip())).first()
    if cust is None or cust.id is None:
        raise Refused(
            msg("There is no customer with code {code}.", code=code.strip()), code="unknown_customer"
        )
    return cust


# -- the promised date ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class PromiseProposal:
    promised: date
    production_days: int
    transit_days: int


def _propose(
    rules: Rules, products: Sequence[Product], cust: Customer, route: str, today: date
) -> PromiseProposal:
    if route == "from_stock":
        production = rules.stock_handling_days
    else:
        production = max((p.lead_time_days for p in products), default=0)
    transit = rules.transit_days(cust.region, cust.address)
    return PromiseProposal(today + timedelta(days=production + transit), production, transit)


def propose_promised_date(
    store: Store,
    *,
    customer: str,
    skus: Sequence[str],
    route: str = "make_to_order",
    today: date | None = None,
) -> PromiseProposal:
    """Order date + the products' production lead time (or stock handling) + transit days to the region."""
    rules = rules_for(store)
    with store.read() as session:
        cust = _customer(session, customer)
        products = [find_product(session, s) for s in skus]
        return _propose(rules, products, cust, route, today or _today(store))


def _today(store: Store) -> date:
    return store.clock().date()


# -- entry checks --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DuplicateSuspect:
    order_no: str
    created_at: datetime
    created_by: str


@dataclass(frozen=True)
class LinkOffer:
    order_no: str
    created_at: datetime


@dataclass(frozen=True)
class EntryCheck:
    """What saving this order would run into, answered before saving (the sales screen shows it live)."""

    amount: int
    proposal: PromiseProposal
    duplicate: DuplicateSuspect | None
    link: LinkOffer | None
    exposure: int  # before this order
    credit_limit: int
    over_credit: bool
    needs_approval: bool
    approval_threshold: int
    approval_roles: tuple[str, ...]
    short_lead: bool
    short_lead_days: int
    reason_needed: bool  # the promised date moved away from the proposal needs a reason


def time_ago(delta: timedelta) -> Msg:
    """``42 min`` / ``3 h`` / ``2 d``, for "ordered ... ago"."""
    minutes = max(0, int(delta.total_seconds() // 60))
    if minutes < 60:
        return msg("{n} min", n=minutes)
    if minutes < 48 * 60:
        return msg("{n} h", n=minutes // 60)
    return msg("{n} d", n=minutes // 1440)


def _line_key(pairs: Sequence[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    merged: dict[int, int] = {}
    for pid, qty in pairs:
        merged[pid] = merged.get(pid, 0) + qty
    return tuple(sorted(merged.items()))


def _find_duplicate(
    session: Session,
    rules: Rules,
    customer_id: int,
    key: tuple[tuple[int, int], ...],
    now: datetime,
    skip: int | None,
) -> DuplicateSuspect | None:
    candidates = session.exec(
        select(SalesOrder)
        .where(
            SalesOrder.customer_id == customer_id,
            col(SalesOrder.created_at) >= now - rules.duplicate_window,
            SalesOrder.state != "cancelled",
        )
        .order_by(col(SalesOrder.created_at).desc())
        .limit(200)
    ).all()
    for other in candidates:
        if other.id == skip:
            continue
        lines = session.exec(
            select(OrderLine.product_id, OrderLine.quantity).where(OrderLine.order_id == other.id)
        ).all()
        if _line_key(list(lines)) == key:
            return DuplicateSuspect(other.order_no, other.created_at, other.created_by)
    return None


def _norm_address(text: str) -> str:
    return "".join(text.split())


def _link_candidate(
    session: Session, rules: Rules, customer_id: int, address: str, now: datetime, skip: int | None
) -> SalesOrder | None:
    if rules.linked_window <= timedelta(0):
        return None
    rows = session.exec(
        select(SalesOrder)
        .join(OrderSales, col(OrderSales.order_id) == SalesOrder.id, isouter=True)
        .where(
            SalesOrder.customer_id == customer_id,
            col(SalesOrder.created_at) >= now - rules.linked_window,
            col(SalesOrder.state).not_in(("cancelled", *SHIPPED_STATES)),
            col(OrderSales.parent_id).is_(None),
        )
        .order_by(col(SalesOrder.created_at).desc())
        .limit(20)
    ).all()
    want = _norm_address(address)
    return next((o for o in rows if o.id != skip and _norm_address(o.ship_address) == want), None)


def check_entry(
    store: Store,
    *,
    customer: str,
    lines: Sequence[tuple[str, int]],
    promised: date | None = None,
    route: str = "make_to_order",
    ship_address: str | None = None,
) -> EntryCheck:
    """The answers ``enter_order`` will give, without saving anything."""
    rules = rules_for(store)
    now = store.clock()
    with store.read() as session:
        cust = _customer(session, customer)
        products = [(find_product(session, code), qty) for code, qty in lines]
        amount = sum(p.unit_price * q for p, q in products)
        proposal = _propose(rules, [p for p, _q in products], cust, route, now.date())
        key = _line_key([(p.id or 0, q) for p, q in products])
        duplicate = _find_duplicate(session, rules, cust.id or 0, key, now, None) if products else None
        address = cust.address if ship_address is None else ship_address
        link = _link_candidate(session, rules, cust.id or 0, address, now, None)
        if link is not None and duplicate is not None and link.order_no == duplicate.order_no:
            link = None  # the same order again is a duplicate question, not a linked order
        exposure = credit_exposure(session, cust.id or 0)
        chosen = promised or proposal.promised
        return EntryCheck(
            amount=amount,
            proposal=proposal,
            duplicate=duplicate,
            link=LinkOffer(link.order_no, link.created_at) if link else None,
            exposure=exposure,
            credit_limit=cust.credit_limit,
            over_credit=exposure + amount > cust.credit_limit,
            needs_approval=amount > rules.approval_threshold,
            approval_threshold=rules.approval_threshold,
            approval_roles=split_roles(role_list(rules.approval_roles)),
            short_lead=(chosen - now.date()).days < rules.short_lead_days,
            short_lead_days=rules.short_lead_days,
            reason_needed=_reason_needed(rules, chosen, proposal.promised),
        )


def _reason_needed(rules: Rules, promised: date, proposed: date) -> bool:
    if rules.promised_change_reason == "always":
        return promised != proposed
    if rules.promised_change_reason == "earlier":
        return promised < proposed
    return False


# -- entering an order ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class EntryResult:
    """The saved order and what the checks did to it, for the screen and the CLI to say plainly."""

    detail: OrderDetail
    on_credit_hold: bool
    needs_approval: bool
    approval_roles: tuple[str, ...]
    short_lead: bool
    duplicate_of: str
    parent: str
    link_offer: str  # an order this one could have been linked to (same customer and ship-to, just entered)
    proposed: date
    exposure: int
    credit_limit: int

    def to_json(self, see: Any = None) -> dict[str, Any]:
        data = self.detail.to_json(see)
        data["checks"] = {
            "on_credit_hold": self.on_credit_hold,
            "needs_approval": self.needs_approval,
            "approval_roles": list(self.approval_roles),
            "short_lead": self.short_lead,
            "duplicate_of": self.duplicate_of or None,
            "parent": self.parent or None,
            "link_offer": self.link_offer or None,
            "proposed_promised_date": self.proposed.isoformat(),
        }
        return data


def enter_order(
    store: Store,
    *,
    customer: str,
    lines: Sequence[tuple[str, int]],
    user: str | Actor,
    channel: str = "offline",
    promised: date | None = None,
    promised_reason: str = "",
    rush: bool = False,
    route: str = "make_to_order",
    ship_address: str | None = None,
    notes: str | None = None,
    packing_preset: str | None = None,
    duplicate_reason: str = "",
    duplicate_note: str = "",
    parent: str = "",
    order_no: str | None = None,
    entered_on: date | None = None,
    ship_address_given: bool | None = None,
) -> EntryResult:
    """Create an order the way the sales desk does: with every check in ``rules.toml``, in one transaction.

    ``ship_address``, ``notes`` and ``packing_preset`` left as None are the customer's usual ones (see
    ``customer_defaults``); an empty string means none.

    ``order_no``, ``entered_on`` and ``ship_address_given`` are for the central API replaying a desk's entry
    (``orderdesk.replay_desks``): the desk's order number, the day the desk entered it (the proposed promised
    date and the short-lead flag count from it) and whether its user typed the ship-to. A replay runs every
    check on the central API's data — credit and approval are decided on its figures — but does not refuse
    for what the desk's user could not have seen or what only time spent offline changed: a duplicate found
    only on the central API, a linked order's time window, a promised-date reason."""
    replaying = order_no is not None
    rules = rules_for(store)
    workflow = store.workflow
    promised_reason = clean_text(promised_reason, field_name="Reason", max_len=REASON_MAX)
    duplicate_note = clean_text(duplicate_note, field_name="Reason", max_len=REASON_MAX)
    duplicate_reason = duplicate_reason.strip()
    if duplicate_reason:
        reason = rules.duplicate_reason(duplicate_reason)
        if reason is None:
            raise Refused(
                msg(
                    "Unknown duplicate reason {reason}: use one of {reasons}.",
                    reason=duplicate_reason,
                    reasons=", ".join(r.id for r in rules.duplicate_reasons),
                ),
                code="bad_duplicate_reason",
            )
        if reason.needs_text and not duplicate_note:
            raise Refused(
                msg("Say what the reason \u201c{reason}\u201d is.", reason=reason.label),
                code="reason_text_needed",
            )
    # A returning customer's usual ship-to, packaging and standing notes, unless given.
    defaults = customer_defaults(store, customer)
    address_given = ship_address is not None if ship_address_given is None else ship_address_given
    ship_address = defaults.ship_address if ship_address is None else ship_address
    notes = defaults.standing_notes if notes is None else notes
    packing_preset = clean_text(
        defaults.packing_preset if packing_preset is None else packing_preset,
        field_name="Packaging",
        max_len=20,
    )
    outcome: dict[str, Any] = {}

    def checks(ctx: CommandContext, order: SalesOrder) -> tuple[dict[str, Any], dict[str, Any]]:
        fields = ["lines.sku", "lines.quantity"]
        fields += ["rush"] if rush else []
        fields += ["promised_date"] if promised else []
        fields += ["ship_address"] if address_given else []
        require_fields(ctx, fields)
        session = ctx.session
        cust = session.get(Customer, order.customer_id)
        assert cust is not None
        pairs = session.exec(
            select(OrderLine.product_id, OrderLine.quantity).where(OrderLine.order_id == order.id)
        ).all()
        products = [session.get(Product, pid) for pid, _q in pairs]
        today = entered_on if replaying and entered_on is not None else ctx.now.date()
        proposal = _propose(rules, [p for p in products if p is not None], cust, route, today)

        # Duplicate suspicion.
        suspect = _find_duplicate(session, rules, cust.id or 0, _line_key(list(pairs)), ctx.now, order.id)
        if suspect is not None and not duplicate_reason and not replaying:
            raise Refused(
                msg(
                    "This looks like a duplicate of {order_no}: {customer} ordered the same items {ago} ago. "
                    "Give a reason ({reasons}) or cancel.",
                    order_no=suspect.order_no,
                    customer=cust.name,
                    ago=time_ago(ctx.now - suspect.created_at),
                    reasons=Label(
                        " / ".join(r.label_en for r in rules.duplicate_reasons),
                        " / ".join(r.label_zh for r in rules.duplicate_reasons),
                    ),
                ),
                code="duplicate_suspected",
            )

        # Linked order.
        parent_row: SalesOrder | None = None
        offer = None
        if parent.strip():
            parent_row = _check_parent(session, rules, order, parent, ctx.now, window=not replaying)
        else:
            offer = _link_candidate(session, rules, cust.id or 0, order.ship_address, ctx.now, order.id)
            if offer is not None and suspect is not None and offer.order_no == suspect.order_no:
                offer = None

        # Promised date.
        if order.promised_date is None:
            order.promised_date = proposal.promised
        elif (
            _reason_needed(rules, order.promised_date, proposal.promised)
            and not promised_reason
            and not replaying
        ):
            raise Refused(
                msg(
                    "The promised date {date} is earlier than the proposed {proposed} (production {production} "
                    "days + transit {transit} days); give a reason for promising it.",
                    date=order.promised_date.isoformat(),
                    proposed=proposal.promised.isoformat(),
                    production=proposal.production_days,
                    transit=proposal.transit_days,
                )
                if order.promised_date < proposal.promised
                else msg(
                    "The promised date {date} differs from the proposed {proposed}; give a reason.",
                    date=order.promised_date.isoformat(),
                    proposed=proposal.promised.isoformat(),
                ),
                code="promised_reason_needed",
            )
        short = (order.promised_date - today).days < rules.short_lead_days
        if packing_preset:
            order.packing_preset = packing_preset

        # Credit.
        exposure = credit_exposure(session, cust.id or 0, excluding_order=order.id)
        over = exposure + order.amount > cust.credit_limit
        if over:
            hold = workflow.find(order.state, "hold")
            target = hold.to if hold is not None else "on_hold"
            if target not in workflow.states or workflow.states[target].kind != "hold":
                target = next((s for s, st in workflow.states.items() if st.kind == "hold"), order.state)
            order.held_from_state = order.state
            order.state = target
        # Approval.
        needs_approval = order.amount > rules.approval_threshold
        roles = role_list(rules.approval_roles)
        session.add(
            OrderSales(
                order_id=order.id or 0,
                parent_id=parent_row.id if parent_row else None,
                duplicate_of=suspect.order_no if suspect and duplicate_reason else "",
                duplicate_reason=duplicate_reason if suspect else "",
                duplicate_note=duplicate_note if suspect else "",
                credit_hold="pending" if over else "",
                approval="pending" if needs_approval else "",
                approval_roles=roles if needs_approval else "",
                short_lead=short,
                proposed_date=proposal.promised,
                promised_reason=promised_reason,
            )
        )
        session.flush()
        _snapshot(session, order, revision=1, user=ctx.actor.name, at=ctx.now)
        outcome.update(
            over=over,
            approval=needs_approval,
            roles=split_roles(roles),
            short=short,
            duplicate=suspect.order_no if suspect else "",
            parent=parent_row.order_no if parent_row else "",
            link_offer=offer.order_no if offer else "",
            proposed=proposal.promised,
            exposure=exposure,
            limit=cust.credit_limit,
        )
        notify = (["finance"] if over else []) + (list(split_roles(roles)) if needs_approval else [])
        # Only what differs from an ordinary order, so the timeline stays readable.
        given = {
            "duplicate_reason": duplicate_reason if suspect else "",
            "duplicate_note": duplicate_note if suspect else "",
            "parent": parent_row.order_no if parent_row else "",
            "promised_reason": promised_reason,
            "packing_preset": packing_preset,
        }
        args: dict[str, Any] = {"sales": {k: v for k, v in given.items() if v}} if any(given.values()) else {}
        # What the central API needs to replay this as the sales desk's entry, not a bare create_order.
        args["sales_entry"] = {"entered_on": today.isoformat(), "ship_address_given": address_given}
        found = {
            "credit_hold": over,
            "needs_approval": needs_approval,
            "short_lead": short,
            "duplicate_of": suspect.order_no if suspect else "",
        }
        detail: dict[str, Any] = {k: v for k, v in found.items() if v}
        if over:
            detail.update(exposure=exposure, credit_limit=cust.credit_limit)
        if notify:
            detail.update(notify=sorted(set(notify)), require_ack=True)
        return args, detail

    detail = create_order(
        store,
        customer=customer,
        lines=lines,
        user=user,
        channel=channel,
        promised=promised,
        rush=rush,
        route=route,
        ship_address=ship_address,
        notes=notes,
        order_no=order_no,
        sales_checks=checks,
    )
    return EntryResult(
        detail=detail,
        on_credit_hold=outcome["over"],
        needs_approval=outcome["approval"],
        approval_roles=outcome["roles"],
        short_lead=outcome["short"],
        duplicate_of=outcome["duplicate"],
        parent=outcome["parent"],
        link_offer=outcome["link_offer"],
        proposed=outcome["proposed"],
        exposure=outcome["exposure"],
        credit_limit=outcome["limit"],
    )


def _check_parent(
    session: Session, rules: Rules, order: SalesOrder, parent: str, now: datetime, *, window: bool = True
) -> SalesOrder:
    row = get_order_row(session, parent)
    info = session.get(OrderSales, row.id)
    problem: Msg | None = None
    if row.customer_id != order.customer_id:
        problem = msg("{parent} is another customer's order.", parent=row.order_no)
    elif _norm_address(row.ship_address) != _norm_address(order.ship_address):
        problem = msg("{parent} goes to another address.", parent=row.order_no)
    elif info is not None and info.parent_id:
        problem = msg("{parent} is itself linked to another order; link to that one.", parent=row.order_no)
    elif row.state in ("cancelled", *SHIPPED_STATES):
        problem = msg("{parent} has already shipped or is cancelled.", parent=row.order_no)
    elif window and now - row.created_at > rules.linked_window:
        problem = msg(
            "{parent} was entered more than {minutes} minutes ago.",
            parent=row.order_no,
            minutes=int(rules.linked_window.total_seconds() // 60),
        )
    if problem is not None:
        raise Refused(
            msg("Cannot link this order to {parent}: {problem}", parent=row.order_no, problem=problem),
            code="bad_link",
        )
    return row


# -- revisions -------------------------------------------------------------------------------------------
def _order_content(session: Session, order: SalesOrder) -> dict[str, Any]:
    rows = session.exec(
        select(OrderLine, Product)
        .join(Product)
        .where(OrderLine.order_id == order.id)
        .order_by(col(OrderLine.line_no))
    ).all()
    return {
        "lines": [
            {
                "line_no": ln.line_no,
                "sku": p.sku,
                "name": p.name,
                "quantity": ln.quantity,
                "unit_price": ln.unit_price,
            }
            for ln, p in rows
        ],
        "ship_address": order.ship_address,
        "promised_date": order.promised_date.isoformat() if order.promised_date else None,
        "amount": order.amount,
    }


def _snapshot(
    session: Session,
    order: SalesOrder,
    *,
    revision: int,
    user: str,
    at: datetime,
    change_request_id: int | None = None,
) -> None:
    session.add(
        OrderRevision(
            order_id=order.id or 0,
            revision=revision,
            snapshot=canonical_json(_order_content(session, order)),
            created_at=at,
            created_by=user,
            change_request_id=change_request_id,
        )
    )


def _sales_info(session: Session, order: SalesOrder, *, user: str, at: datetime) -> OrderSales:
    """The order's sales row; orders entered before the desks (or by import) get revision 1 on first need."""
    info = session.get(OrderSales, order.id)
    if info is None:
        info = OrderSales(order_id=order.id or 0, proposed_date=None)
        session.add(info)
        session.flush()
    if (
        session.exec(
            select(OrderRevision.id).where(
                OrderRevision.order_id == order.id, OrderRevision.revision == info.revision
            )
        ).first()
        is None
    ):
        _snapshot(session, order, revision=info.revision, user=user, at=at)
    return info


@dataclass(frozen=True)
class RevisionLine:
    sku: str
    name: str
    quantity: int
    unit_price: int | None


@dataclass(frozen=True)
class RevisionView:
    revision: int
    created_at: datetime
    created_by: str
    change_request_id: int | None
    lines: tuple[RevisionLine, ...]
    ship_address: str
    promised_date: date | None
    amount: int | None


def _revision_view(row: OrderRevision) -> RevisionView:
    data = json.loads(row.snapshot)
    return RevisionView(
        revision=row.revision,
        created_at=row.created_at,
        created_by=row.created_by,
        change_request_id=row.change_request_id,
        lines=tuple(
            RevisionLine(ln["sku"], ln["name"], ln["quantity"], ln["unit_price"]) for ln in data["lines"]
        ),
        ship_address=data["ship_address"],
        promised_date=date.fromisoformat(data["promised_date"]) if data["promised_date"] else None,
        amount=data["amount"],
    )


def order_revisions(store: Store, order_no: str, *, viewer: str | Actor | None = None) -> list[RevisionView]:
    """Every business version of an order, oldest first (an order never changed has just its current one).
    For a ``viewer`` whose roles may not see prices, amounts and unit prices are left out (None)."""
    show_money = _viewer_sees(store, viewer, "amount")
    with store.read() as session:
        order = get_order_row(session, order_no)
        rows = session.exec(
            select(OrderRevision)
            .where(OrderRevision.order_id == order.id)
            .order_by(col(OrderRevision.revision))
        ).all()
        views = [_revision_view(r) for r in rows]
        if not views:
            data = _order_content(session, order)
            views = [
                RevisionView(
                    revision=1,
                    created_at=order.created_at,
                    created_by=order.created_by,
                    change_request_id=None,
                    lines=tuple(
                        RevisionLine(ln["sku"], ln["name"], ln["quantity"], ln["unit_price"])
                        for ln in data["lines"]
                    ),
                    ship_address=order.ship_address,
                    promised_date=order.promised_date,
                    amount=order.amount,
                )
            ]
        if show_money:
            return views
        return [
            replace(
                v,
                amount=None,
                lines=tuple(replace(ln, unit_price=None) for ln in v.lines),
            )
            for v in views
        ]


@dataclass(frozen=True)
class LineDiff:
    sku: str
    name: str
    before: int | None  # None: the line is new
    after: int | None  # None: the line was removed

    @property
    def changed(self) -> bool:
        return self.before != self.after


@dataclass(frozen=True)
class RevisionDiff:
    """Two versions side by side: lines matched by SKU, and which header fields differ."""

    old: RevisionView
    new: RevisionView
    lines: tuple[LineDiff, ...]
    address_changed: bool
    date_changed: bool
    amount_changed: bool


def compare_revisions(old: RevisionView, new: RevisionView) -> RevisionDiff:
    """Mark the differences between two versions (pure; the screen and the CLI render it)."""
    before = {ln.sku: ln for ln in old.lines}
    after = {ln.sku: ln for ln in new.lines}
    order = list(before) + [s for s in after if s not in before]
    return RevisionDiff(
        old=old,
        new=new,
        lines=tuple(
            LineDiff(
                sku,
                (after.get(sku) or before[sku]).name,
                before[sku].quantity if sku in before else None,
                after[sku].quantity if sku in after else None,
            )
            for sku in order
        ),
        address_changed=old.ship_address != new.ship_address,
        date_changed=old.promised_date != new.promised_date,
        amount_changed=old.amount != new.amount,
    )


# -- change requests -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ChangeRequestView:
    id: int
    order_no: str
    customer_name: str
    status: str
    change_class: str
    class_label: Label
    approve_roles: tuple[str, ...]
    fields: tuple[str, ...]
    reason: str
    impact: dict[str, Any]
    proposed: dict[str, Any]
    before: dict[str, Any]
    requested_at: datetime
    requested_by: str
    decided_at: datetime | None
    decided_by: str
    decision_reason: str
    new_revision: int | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "order_no": self.order_no,
            "status": self.status,
            "class": self.change_class,
            "class_label": self.class_label.to_json(),
            "approve_roles": list(self.approve_roles),
            "fields": list(self.fields),
            "reason": self.reason,
            "impact": self.impact,
            "before": self.before,
            "proposed": self.proposed,
            "requested_at": self.requested_at.isoformat(),
            "requested_by": self.requested_by,
            "decided_at": self.decided_at.isoformat() if self.decided_at else None,
            "decided_by": self.decided_by or None,
            "decision_reason": self.decision_reason or None,
            "new_revision": self.new_revision,
        }


@dataclass(frozen=True)
class ChangePreview:
    """What a change request would be: fields touched, impact and class, before it is filed."""

    fields: tuple[str, ...]
    facts: ChangeFacts
    change_class: str
    class_label: Label
    approve_roles: tuple[str, ...]
    before: dict[str, Any]
    proposed: dict[str, Any]


def _proposed_lines(
    session: Session,
    current: list[tuple[OrderLine, Product]],
    quantities: Mapping[str, int],
    replace: Mapping[str, str],
) -> list[tuple[Product, int, int]]:
    """The order's lines after the change: (product, quantity, unit price)."""
    out: list[tuple[Product, int, int]] = []
    by_sku = {p.sku: (ln, p) for ln, p in current}
    for old, new in replace.items():
        if old.strip() not in by_sku:
            raise Refused(msg("The order has no line with SKU {sku}.", sku=old.strip()), code="unknown_line")
        find_product(session, new)  # refuse an unknown SKU early, with the standard message
    for ln, p in current:
        new_code = replace.get(p.sku)
        product = find_product(session, new_code) if new_code else p
        price = ln.unit_price if product.id == p.id else product.unit_price
        out.append((product, ln.quantity, price))
    for code, qty in quantities.items():
        if not isinstance(qty, int) or not 0 <= qty <= MAX_LINE_QTY:
            raise Refused(
                msg("Quantity for {sku} must be a whole number from 1 to {max}.", sku=code, max=MAX_LINE_QTY),
                code="bad_quantity",
            )
        product = find_product(session, code)
        for i, (p, _q, price) in enumerate(out):
            if p.id == product.id:
                out[i] = (p, qty, price)
                break
        else:
            out.append((product, qty, product.unit_price))
    merged: dict[int, tuple[Product, int, int]] = {}
    for p, q, price in out:
        prev = merged.get(p.id or 0)
        merged[p.id or 0] = (p, q + (prev[1] if prev else 0), price)
    lines = [v for v in merged.values() if v[1] > 0]
    if not lines:
        raise Refused(msg("An order needs at least one line (SKU:QTY)."), code="no_lines")
    return lines


def _change_facts(
    rules: Rules,
    order: SalesOrder,
    current: list[tuple[OrderLine, Product]],
    lines: list[tuple[Product, int, int]],
    ship_address: str,
    promised: date | None,
) -> ChangeFacts:
    fields: set[str] = set()
    before_q = {p.sku: ln.quantity for ln, p in current}
    after_q = {p.sku: q for p, q, _price in lines}
    if set(before_q) != set(after_q):
        fields.add("sku")
    pct = 0.0
    for sku in set(before_q) | set(after_q):
        b, a = before_q.get(sku, 0), after_q.get(sku, 0)
        if b != a:
            if b and a:
                fields.add("quantity")
            pct = max(pct, 100.0 if not b or not a else abs(a - b) * 100.0 / b)
    if _norm_address(ship_address) != _norm_address(order.ship_address):
        fields.add("address")
    if promised != order.promised_date:
        fields.add("date")
    amount = sum(price * q for _p, q, price in lines)
    return ChangeFacts(
        fields=frozenset(fields),
        state=order.state,
        production_started=order.state in rules.production_started_states
        or (order.state == "on_hold" and order.held_from_state in rules.production_started_states),
        materials_issued=order.materials_kitted
        or order.state in rules.materials_issued_states
        or (order.state == "on_hold" and order.held_from_state in rules.materials_issued_states),
        quantity_change_pct=round(pct, 2),
        date_earlier=bool(promised and order.promised_date and promised < order.promised_date),
        amount_increase=amount - order.amount,
    )


_FIELD_ORDER = ("quantity", "sku", "address", "date")


def _prepare_change(
    session: Session,
    rules: Rules,
    order: SalesOrder,
    *,
    quantities: Mapping[str, int],
    replace: Mapping[str, str],
    ship_address: str | None,
    promised: date | None,
) -> ChangePreview:
    current = list(
        session.exec(
            select(OrderLine, Product)
            .join(Product)
            .where(OrderLine.order_id == order.id)
            .order_by(col(OrderLine.line_no))
        ).all()
    )
    lines = _proposed_lines(session, current, quantities, replace)
    address = (
        order.ship_address
        if ship_address is None
        else clean_text(ship_address, field_name="Ship-to address", max_len=ADDRESS_MAX, required=True)
    )
    new_date = order.promised_date if promised is None else promised
    facts = _change_facts(rules, order, current, lines, address, new_date)
    if not facts.fields:
        raise Refused(msg("Nothing to change."), code="no_changes")
    cls = rules.classify(facts)
    before = _order_content(session, order)
    proposed = {
        "lines": [
            {"sku": p.sku, "name": p.name, "quantity": q, "unit_price": price} for p, q, price in lines
        ],
        "ship_address": address,
        "promised_date": new_date.isoformat() if new_date else None,
        "amount": sum(price * q for _p, q, price in lines),
    }
    return ChangePreview(
        fields=tuple(f for f in _FIELD_ORDER if f in facts.fields),
        facts=facts,
        change_class=cls.id,
        class_label=cls.label,
        approve_roles=split_roles(role_list(cls.approve_roles)),
        before=before,
        proposed=proposed,
    )


def preview_change(
    store: Store,
    *,
    order_no: str,
    quantities: Mapping[str, int] | None = None,
    replace: Mapping[str, str] | None = None,
    ship_address: str | None = None,
    promised: date | None = None,
) -> ChangePreview:
    """Classify a change without filing it (the change screen shows impact and class as you type)."""
    rules = rules_for(store)
    with store.read() as session:
        order = get_order_row(session, order_no)
        return _prepare_change(
            session,
            rules,
            order,
            quantities=quantities or {},
            replace=replace or {},
            ship_address=ship_address,
            promised=promised,
        )


def request_change(
    store: Store,
    *,
    order_no: str,
    user: str | Actor,
    reason: str,
    quantities: Mapping[str, int] | None = None,
    replace: Mapping[str, str] | None = None,
    ship_address: str | None = None,
    promised: date | None = None,
    expected_version: int | None = None,
) -> ChangeRequestView:
    """File a change request (quantity, SKU, address, date) with its reason, impact and class."""
    reason = clean_text(reason, field_name="Reason", max_len=REASON_MAX, required=True)
    rules = rules_for(store)
    workflow = store.workflow
    with command(store, "request_change", user=user) as ctx:
        order = order_for_change(ctx, order_no, expected_version, workflow=workflow)
        pending = ctx.session.exec(
            select(ChangeRequest.id).where(
                ChangeRequest.order_id == order.id, ChangeRequest.status == "pending"
            )
        ).first()
        if pending is not None:
            raise Refused(
                msg(
                    "Order {order_no} already has change request #{id} waiting for a decision; one change at a "
                    "time.",
                    order_no=order.order_no,
                    id=pending,
                ),
                code="change_pending",
            )
        preview = _prepare_change(
            ctx.session,
            rules,
            order,
            quantities=quantities or {},
            replace=replace or {},
            ship_address=ship_address,
            promised=promised,
        )
        require_fields(ctx, [CHANGE_FIELD_PERMISSION[f] for f in preview.fields])
        new_date = preview.proposed["promised_date"]
        if "date" in preview.fields and new_date and date.fromisoformat(new_date) < ctx.now.date():
            raise Refused(msg("The promised date {date} is in the past.", date=new_date), code="date_in_past")
        info = _sales_info(ctx.session, order, user=ctx.actor.name, at=ctx.now)
        impact = {
            "state": order.state,
            "production_started": preview.facts.production_started,
            "materials_issued": preview.facts.materials_issued,
            "quantity_change_pct": preview.facts.quantity_change_pct,
            "date_earlier": preview.facts.date_earlier,
            "amount_before": order.amount,
            "amount_after": preview.proposed["amount"],
        }
        request = ChangeRequest(
            order_id=order.id or 0,
            change_class=preview.change_class,
            approve_roles=",".join(preview.approve_roles),
            fields=",".join(preview.fields),
            proposed=canonical_json(preview.proposed),
            impact=canonical_json(impact),
            reason=reason,
            base_revision=info.revision,
            requested_at=ctx.now,
            requested_by=ctx.actor.name,
        )
        ctx.session.add(request)
        ctx.session.flush()
        ctx.record(
            order_no=order.order_no,
            args={
                "order_no": order.order_no,
                "request_id": request.id,
                # The order's own number for the request (its natural key on every desk and the central
                # API; ``request_id`` is this desk's row id) and what was asked, so it can be replayed.
                "request_no": request_number(ctx.session, request),
                "quantities": dict(quantities or {}),
                "replace": dict(replace or {}),
                "ship_address": ship_address,
                "promised": promised.isoformat() if promised else None,
                "proposed": preview.proposed,
                "reason": reason,
            },
            base_version=order.version,
            detail={
                "class": preview.change_class,
                "fields": list(preview.fields),
                "impact": impact,
                "notify": list(preview.approve_roles),
                "require_ack": True,
            },
        )
        request_id = request.id or 0
    return change_request(store, request_id)


def order_change_requests(session: Session, order_id: int | None) -> list[ChangeRequest]:
    """An order's change requests, oldest first: request n is the n-th (its number on every desk)."""
    return list(
        session.exec(
            select(ChangeRequest).where(ChangeRequest.order_id == order_id).order_by(col(ChangeRequest.id))
        ).all()
    )


def request_number(session: Session, request: ChangeRequest) -> int:
    """The request's number on its order (1 = the order's first change request): the natural key that names
    it on every desk and on the central API, where row ids differ."""
    return [r.id for r in order_change_requests(session, request.order_id)].index(request.id) + 1


def find_change_request(session: Session, order_no: str, request_no: int) -> ChangeRequest:
    """Change request number ``request_no`` of an order, or a refusal saying there is none."""
    order = get_order_row(session, order_no)
    requests = order_change_requests(session, order.id)
    if not 1 <= request_no <= len(requests):
        raise Refused(
            msg("Order {order_no} has no change request {n}.", order_no=order.order_no, n=request_no),
            code="unknown_change",
        )
    return requests[request_no - 1]


def decide_change(
    store: Store,
    *,
    request_id: int | None = None,
    approve: bool,
    user: str | Actor,
    reason: str = "",
    order_no: str | None = None,
    request_no: int | None = None,
) -> ChangeRequestView:
    """Approve (the change becomes a new order version) or reject a change request, by the class's role.

    The request is ``request_id`` (this desk's row), or ``order_no`` with ``request_no`` (its number on the
    order: how the central API finds the request a desk decided)."""
    reason = clean_text(reason, field_name="Reason", max_len=REASON_MAX, required=not approve)
    rules = rules_for(store)
    with command(store, "decide_change", user=user) as ctx:
        if order_no is not None and request_no is not None:
            request: ChangeRequest | None = find_change_request(ctx.session, order_no, request_no)
        else:
            request = ctx.session.get(ChangeRequest, request_id) if request_id is not None else None
        if request is None or request.id is None:
            raise Refused(msg("There is no change request #{id}.", id=request_id), code="unknown_change")
        request_id = request.id
        order = ctx.session.get(SalesOrder, request.order_id)
        assert order is not None
        if request.status != "pending":
            raise Refused(
                msg(
                    "Change request #{id} was already decided ({status}) by {user}.",
                    id=request_id,
                    status=CHANGE_STATUS.get(request.status, Label(request.status, request.status)),
                    user=request.decided_by,
                ),
                code="already_decided",
            )
        roles = frozenset(split_roles(request.approve_roles))
        require_any_role(ctx, roles, action="decide this change request")
        if approve and not rules.self_approval and request.requested_by == ctx.actor.name:
            raise Refused(
                msg(
                    "{user} asked for change #{id} and may not approve it too; another {roles} must.",
                    user=ctx.actor.name,
                    id=request_id,
                    roles=" / ".join(sorted(roles)),
                ),
                code="self_approval",
                who=tuple(sorted(roles)),
            )
        info = _sales_info(ctx.session, order, user=ctx.actor.name, at=ctx.now)
        detail: dict[str, Any] = {"notify": ["sales"]}
        fields_before = _change_fields(order)
        if approve:
            if info.revision != request.base_revision:
                raise Refused(
                    msg(
                        "Order {order_no} changed since request #{id} was filed (version {base} → {now}); "
                        "reject it and file the change again.",
                        order_no=order.order_no,
                        id=request_id,
                        base=request.base_revision,
                        now=info.revision,
                    ),
                    code="stale_change",
                )
            if order.state in SHIPPED_STATES or order.state == "cancelled":
                raise Refused(
                    msg(
                        "Order {order_no} is {state}; it can no longer be changed.",
                        order_no=order.order_no,
                        state=state_label(store.workflow, order.state),
                    ),
                    code="order_closed",
                )
            _apply_change(ctx, order, info, json.loads(request.proposed))
            info.revision += 1
            ctx.session.add(info)
            _snapshot(
                ctx.session,
                order,
                revision=info.revision,
                user=ctx.actor.name,
                at=ctx.now,
                change_request_id=request.id,
            )
            request.new_revision = info.revision
            # A change that makes the order large needs the order approved (again) at its new amount.
            if order.amount > rules.approval_threshold and order.amount > info.approved_amount:
                info.approval = "pending"
                info.approval_roles = role_list(rules.approval_roles)
                detail["notify"] = ["sales", *split_roles(info.approval_roles)]
            if order.promised_date is not None:
                info.short_lead = (order.promised_date - ctx.now.date()).days < rules.short_lead_days
        request.status = "approved" if approve else "rejected"
        request.decided_at = ctx.now
        request.decided_by = ctx.actor.name
        request.decision_reason = reason
        ctx.session.add(request)
        # Only an approved change alters the order; a rejection leaves its version alone.
        base = touch_order(ctx, order) if approve else order.version
        ctx.record(
            order_no=order.order_no,
            args={
                "order_no": order.order_no,
                "request_id": request_id,
                "request_no": request_number(ctx.session, request),
                "decision": "approve" if approve else "reject",
                "reason": reason,
                # the order fields the approval set, as an edit would name them (sync's field conflicts)
                "changes": {k: v for k, v in _change_fields(order).items() if v != fields_before[k]},
            },
            base_version=base,
            detail={**detail, "class": request.change_class, "new_revision": request.new_revision},
        )
    return change_request(store, request_id)


def _change_fields(order: SalesOrder) -> dict[str, Any]:
    """The order fields an approved change request may set, as ``edit_order`` names and records them."""
    return {
        "ship_address": order.ship_address,
        "promised_date": order.promised_date.isoformat() if order.promised_date else None,
    }


def _apply_change(ctx: CommandContext, order: SalesOrder, info: OrderSales, proposed: dict[str, Any]) -> None:
    session = ctx.session
    current = {
        ln.product_id: ln
        for ln in session.exec(select(OrderLine).where(OrderLine.order_id == order.id)).all()
    }
    wanted: dict[int, tuple[int, int]] = {}
    for item in proposed["lines"]:
        product = find_product(session, item["sku"])
        wanted[product.id or 0] = (item["quantity"], item["unit_price"])
    skus = {
        p.id: p.sku
        for p in session.exec(select(Product).where(col(Product.id).in_(list(current) + list(wanted))))
    }
    for pid, line in current.items():
        keep = wanted.get(pid)
        floor = max(line.scanned_qty, line.shipped_qty)
        if (keep is None and floor > 0) or (keep is not None and keep[0] < floor):
            raise Refused(
                msg(
                    "{sku}: {done} already scanned or shipped; the quantity cannot go below that.",
                    sku=skus.get(pid, "?"),
                    done=floor,
                ),
                code="below_scanned",
            )
    next_no = max((ln.line_no for ln in current.values()), default=0) + 1
    for pid, line in current.items():
        if pid not in wanted:
            session.delete(line)
    for pid, (qty, price) in wanted.items():
        if pid in current:
            current[pid].quantity = qty
            session.add(current[pid])
        else:
            session.add(
                OrderLine(
                    order_id=order.id or 0, line_no=next_no, product_id=pid, quantity=qty, unit_price=price
                )
            )
            next_no += 1
    order.ship_address = proposed["ship_address"]
    order.promised_date = date.fromisoformat(proposed["promised_date"]) if proposed["promised_date"] else None
    order.amount = sum(q * price for q, price in wanted.values())
    session.add(order)
    session.flush()


def _without_money(content: dict[str, Any]) -> dict[str, Any]:
    """An order's content as a role that may not see prices gets it: no amount, no unit prices."""
    out = {k: v for k, v in content.items() if k not in ("amount", "amount_before", "amount_after")}
    if "lines" in content:
        out["lines"] = [{k: v for k, v in ln.items() if k != "unit_price"} for ln in content["lines"]]
    return out


def _request_view(
    session: Session, rules: Rules | None, request: ChangeRequest, *, show_money: bool = True
) -> ChangeRequestView:
    order = session.get(SalesOrder, request.order_id)
    assert order is not None
    cust = session.get(Customer, order.customer_id)
    cls = rules.change_classes.get(request.change_class) if rules else None
    before_row = session.exec(
        select(OrderRevision).where(
            OrderRevision.order_id == order.id, OrderRevision.revision == request.base_revision
        )
    ).first()
    before = json.loads(before_row.snapshot) if before_row else _order_content(session, order)
    return ChangeRequestView(
        id=request.id or 0,
        order_no=order.order_no,
        customer_name=cust.name if cust else "",
        status=request.status,
        change_class=request.change_class,
        class_label=cls.label if cls else Label(request.change_class, request.change_class),
        approve_roles=split_roles(request.approve_roles),
        fields=tuple(f for f in request.fields.split(",") if f),
        reason=request.reason,
        impact=json.loads(request.impact) if show_money else _without_money(json.loads(request.impact)),
        proposed=json.loads(request.proposed) if show_money else _without_money(json.loads(request.proposed)),
        before=before if show_money else _without_money(before),
        requested_at=request.requested_at,
        requested_by=request.requested_by,
        decided_at=request.decided_at,
        decided_by=request.decided_by,
        decision_reason=request.decision_reason,
        new_revision=request.new_revision,
    )


def change_request(store: Store, request_id: int, *, viewer: str | Actor | None = None) -> ChangeRequestView:
    rules = rules_for(store)
    with store.read() as session:
        request = session.get(ChangeRequest, request_id)
        if request is None:
            raise Refused(msg("There is no change request #{id}.", id=request_id), code="unknown_change")
        return _request_view(session, rules, request, show_money=_viewer_sees(store, viewer, "amount"))


def change_requests(
    store: Store,
    *,
    status: str | None = "pending",
    order_no: str | None = None,
    decidable_by: str | None = None,
    viewer: str | Actor | None = None,
    limit: int = 50,
) -> list[ChangeRequestView]:
    """Change requests, oldest first; ``decidable_by`` keeps those that user's roles may decide. Amounts and
    prices are left out for a ``viewer`` (or ``decidable_by``) whose roles may not see them."""
    rules = rules_for(store)
    show_money = _viewer_sees(store, viewer or decidable_by, "amount")
    with store.read() as session:
        query = select(ChangeRequest)
        if status:
            query = query.where(ChangeRequest.status == status)
        if order_no:
            query = query.where(ChangeRequest.order_id == get_order_row(session, order_no).id)
        rows = session.exec(query.order_by(col(ChangeRequest.id)).limit(max(1, min(limit, 500)))).all()
        actor = load_actor(session, decidable_by) if decidable_by else None
        views = []
        for r in rows:
            if actor is not None and not actor.has_any(set(split_roles(r.approve_roles)) | {"admin"}):
                continue
            views.append(_request_view(session, rules, r, show_money=show_money))
        return views


# -- the sales worklist --------------------------------------------------------------------------------
@dataclass(frozen=True)
class WorkItem:
    """An open order with what needs attention (for the sales desk's list)."""

    order_no: str
    customer_name: str
    state: str
    state_label: Label
    promised_date: date | None
    amount: int | None  # None: the viewer may not see amounts
    rush: bool
    short_lead: bool  # flagged red wherever the promised date is shown
    credit_hold: str
    approval: str
    rush_blockers: tuple[str, ...]  # "tech", "materials"
    change_pending: bool
    parent: str
    flags: tuple[str, ...] = field(default=())
    version: int = 1


_PRE_SCHEDULING = ("draft", "contract_signed", "tech_review", "on_hold")


def is_short_lead(rules: Rules, promised: date | None, today: date, state: str) -> bool:
    """A promised date fewer than ``short_days`` away on an order not yet shipped."""
    return (
        promised is not None
        and state not in (*SHIPPED_STATES, "cancelled")
        and ((promised - today).days < rules.short_lead_days)
    )


def sales_worklist(
    store: Store, *, viewer: str | Actor | None = None, limit: int = 50, recent: bool = False
) -> list[WorkItem]:
    """Open orders that need the sales desk: holds, approvals, short lead times, blocked rush orders, changes
    waiting — most urgent first, at most ``limit`` (one page). With ``recent`` the page is filled up with the
    newest other open orders (no flags), so the desk can open, change or compare any of them."""
    rules = rules_for(store)
    workflow = store.workflow
    today = _today(store)
    show_amount = _viewer_sees(store, viewer, "amount")
    limit = max(1, min(limit, 200))
    terminal = [s for s, st in workflow.states.items() if st.kind == "terminal"]
    with store.read() as session:
        ids: set[int] = set()
        ids.update(
            session.exec(
                select(OrderSales.order_id)
                .where(
                    or_(
                        col(OrderSales.credit_hold).in_(("pending", "kept")),
                        col(OrderSales.approval).in_(("pending", "rejected")),
                    )
                )
                .limit(500)
            ).all()
        )
        ids.update(
            session.exec(
                select(ChangeRequest.order_id).where(ChangeRequest.status == "pending").limit(500)
            ).all()
        )
        ids.update(
            session.exec(
                select(SalesOrder.id)
                .where(
                    col(SalesOrder.promised_date) < today + timedelta(days=rules.short_lead_days),
                    col(SalesOrder.promised_date) >= today - timedelta(days=30),
                    col(SalesOrder.state).not_in((*SHIPPED_STATES, *terminal)),
                )
                .limit(500)
            ).all()
        )
        ids.update(
            session.exec(
                select(SalesOrder.id)
                .where(col(SalesOrder.state).in_(_PRE_SCHEDULING), SalesOrder.rush == True)  # noqa: E712
                .limit(500)
            ).all()
        )
        flagged = set(ids)
        if recent:
            ids.update(
                session.exec(
                    select(SalesOrder.id)
                    .where(col(SalesOrder.state).not_in(terminal))
                    .order_by(col(SalesOrder.id).desc())
                    .limit(limit)
                ).all()
            )
        if not ids:
            return []
        rows = session.exec(
            select(SalesOrder, Customer, OrderSales)
            .join(Customer)
            .join(OrderSales, col(OrderSales.order_id) == SalesOrder.id, isouter=True)
            .where(col(SalesOrder.id).in_(list(ids)), col(SalesOrder.state).not_in(terminal))
        ).all()
        pending_cr = set(
            session.exec(
                select(ChangeRequest.order_id).where(
                    ChangeRequest.status == "pending", col(ChangeRequest.order_id).in_(list(ids))
                )
            ).all()
        )
        parents = {
            o.id: o.order_no
            for o in session.exec(
                select(SalesOrder).where(
                    col(SalesOrder.id).in_(
                        [info.parent_id for _o, _c, info in rows if info and info.parent_id]
                    )
                )
            )
        }
        items = []
        for o, c, info in rows:
            blockers: tuple[str, ...] = ()
            if o.rush and (o.state in _PRE_SCHEDULING):
                blockers = tuple(
                    b for b, ok in (("tech", o.tech_approved), ("materials", o.materials_kitted)) if not ok
                )
            short = is_short_lead(rules, o.promised_date, today, o.state) or bool(
                info and info.short_lead and o.state not in SHIPPED_STATES
            )
            flags = []
            if info and info.credit_hold in ("pending", "kept"):
                flags.append("credit_hold")
            if info and info.approval in ("pending", "rejected"):
                flags.append("approval_" + info.approval)
            if o.id in pending_cr:
                flags.append("change_pending")
            if blockers:
                flags.append("rush_blocked")
            if short:
                flags.append("short_lead")
            if not flags and (o.id in flagged or not recent):
                continue
            items.append(
                WorkItem(
                    order_no=o.order_no,
                    customer_name=c.name,
                    state=o.state,
                    state_label=state_label(workflow, o.state),
                    promised_date=o.promised_date,
                    amount=o.amount if show_amount else None,
                    rush=o.rush,
                    short_lead=short,
                    credit_hold=info.credit_hold if info else "",
                    approval=info.approval if info else "",
                    rush_blockers=blockers,
                    change_pending=o.id in pending_cr,
                    parent=parents.get(info.parent_id, "") if info and info.parent_id else "",
                    flags=tuple(flags),
                    version=o.version,
                )
            )
        weight = {
            "credit_hold": 0,
            "approval_rejected": 1,
            "approval_pending": 2,
            "rush_blocked": 3,
            "change_pending": 4,
            "short_lead": 5,
        }
        items.sort(key=lambda i: i.order_no, reverse=True)  # the newest first among equals (sort is stable)
        items.sort(
            key=lambda i: (
                (0, min(weight[f] for f in i.flags), i.promised_date or date.max, i.order_no)
                if i.flags
                else (1, 0, date.max, "")
            )
        )
        return items[:limit]


def rush_blockers(store: Store, order_no: str) -> list[Msg]:
    """Why a rush order cannot enter scheduling yet (empty when it can)."""
    with store.read() as session:
        order = get_order_row(session, order_no)
        out = []
        if order.rush and not order.tech_approved:
            out.append(msg("technical feasibility not signed off"))
        if order.rush and not order.materials_kitted:
            out.append(msg("materials not confirmed kitted"))
        return out
