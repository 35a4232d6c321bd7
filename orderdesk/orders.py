"""Domain commands and queries on orders: create, move, assign, edit fields, add notes; show, list, search."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, ParamSpec

from sqlalchemy import func, or_
from sqlmodel import Session, col, select

from orderdesk import audit
from orderdesk.commands import (
    Actor,
    CommandContext,
    Record,
    clean_text,
    command,
    command_batch,
    load_actor,
    new_op_id,
    require_role,
)
from orderdesk.errors import Refused
from orderdesk.guards import GUARDS
from orderdesk.i18n import Label, msg
from orderdesk.models import (
    ADDRESS_MAX,
    NOTE_MAX,
    REASON_MAX,
    AppUser,
    Customer,
    Desk,
    OrderLine,
    OrderNote,
    Product,
    ProductBarcode,
    SalesOrder,
)
from orderdesk.store import Store, insert_rows, rows_in
from orderdesk.views import LineView, OrderDetail, OrderSummary, TransitionOption
from orderdesk.workflow import Transition, Workflow

CHANNELS = ("taobao", "jd", "miniprogram", "wholesale", "alibaba", "offline")
ROUTES = ("make_to_order", "from_stock")
MAX_LINE_QTY = 1_000_000
MAX_LINES = 200
PAGE_MAX = 1000
TIMELINE_MAX = 500  # newest audit records shown with an order; `orderdesk audit --order` has them all


# -- lookups ---------------------------------------------------------------------------------------------
def normalise_order_no(order_no: str) -> str:
    if not isinstance(order_no, str):  # a malformed op or import row (a number, a list)
        raise Refused(msg("{field} must be text.", field=msg("Order number")), code="bad_text")
    return order_no.strip().upper()


def get_order_row(session: Session, order_no: str) -> SalesOrder:
    """The order row, or a refusal a person can act on."""
    order = session.exec(
        select(SalesOrder).where(SalesOrder.order_no == normalise_order_no(order_no))
    ).first()
    if order is None:
        raise no_order_refusal(order_no)
    return order


def no_order_refusal(order_no: str) -> Refused:
    return Refused(
        msg(
            "There is no order {order_no}. Check the number, or find it with `orderdesk order list`.",
            order_no=order_no.strip(),
        ),
        code="unknown_order",
    )


P = ParamSpec("P")


def _reading_back(effect: Callable[P, tuple[str, str]]) -> Callable[P, OrderDetail]:
    """A command as screens and the CLI call it: ``effect`` (which returns the order number and who ran it),
    then the order as that person now sees it. The central API's replays call ``effect`` alone: they have
    no screen to show it on."""

    def run(*args: P.args, **kwargs: P.kwargs) -> OrderDetail:
        order_no, viewer = effect(*args, **kwargs)
        store = kwargs["store"] if "store" in kwargs else args[0]
        assert isinstance(store, Store)
        return show_order(store, order_no, viewer=viewer)

    run.__name__ = run.__qualname__ = effect.__name__.removesuffix("_effect")
    run.__doc__ = effect.__doc__
    return run


def check_version(order: SalesOrder, expected: int | None) -> None:
    if expected is not None and expected != order.version:
        raise Refused(
            msg(
                "Order {order_no} was changed by {user} while you were looking at it (version {expected} → "
                "{actual}). Reload it and try again.",
                order_no=order.order_no,
                user=order.updated_by,
                expected=expected,
                actual=order.version,
            ),
            code="stale_version",
        )


def touch_order(ctx: CommandContext, order: SalesOrder) -> int:
    """Bump the order's version and stamp who changed it; returns the version the change was based on."""
    base = order.version
    order.version += 1
    order.updated_at = ctx.now
    order.updated_by = ctx.actor.name
    ctx.session.add(order)
    return base


def order_for_change(
    ctx: CommandContext, order_no: str, expected_version: int | None, *, workflow: Workflow
) -> SalesOrder:
    """The order a command is about to change: it exists, was not changed since ``expected_version`` and is
    not in a terminal state; otherwise a refusal that says which."""
    order = get_order_row(ctx.session, order_no)
    check_version(order, expected_version)
    if workflow.states[order.state].kind == "terminal":
        raise Refused(
            msg(
                "Order {order_no} is {state}; it can no longer be changed.",
                order_no=order.order_no,
                state=state_label(workflow, order.state),
            ),
            code="order_closed",
        )
    return order


def state_label(workflow: Workflow, state: str) -> Label:
    st = workflow.states.get(state)
    return Label(st.label_en, st.label_zh) if st else Label(state, state)


# -- create ----------------------------------------------------------------------------------------------
def create_order(
    store: Store,
    *,
    customer: str,
    lines: Sequence[tuple[str, int]],
    user: str | Actor,
    channel: str = "offline",
    promised: date | None = None,
    rush: bool = False,
    route: str = "make_to_order",
    ship_address: str | None = None,
    notes: str = "",
    order_no: str | None = None,
    sales_checks: Callable[[CommandContext, SalesOrder], tuple[dict[str, Any], dict[str, Any]]] | None = None,
) -> OrderDetail:
    """Create an order in the workflow's initial state. ``lines`` are (SKU or barcode, quantity).

    ``order_no`` is for the central API replaying a desk's create: the desk already numbered the order, and
    the promised date is not re-checked against today (time spent offline must not turn it into a refusal).
    ``sales_checks`` (the sales desk's rules, ``orderdesk.sales``) runs in the same transaction once the order
    and its lines are written: it may refuse or change the order, and returns extra args and audit detail.
    """
    if channel not in CHANNELS:
        raise Refused(
            msg(
                "Unknown channel {channel}: use one of {channels}.",
                channel=channel,
                channels=", ".join(CHANNELS),
            ),
            code="bad_channel",
        )
    if route not in ROUTES:
        raise Refused(
            msg("Unknown route {route}: use one of {routes}.", route=route, routes=", ".join(ROUTES))
        )
    if not lines:
        raise Refused(msg("An order needs at least one line (SKU:QTY)."), code="no_lines")
    if len(lines) > MAX_LINES:
        raise Refused(msg("An order may have at most {max} lines.", max=MAX_LINES), code="too_many_lines")
    notes = clean_text(notes, field_name="Notes", max_len=NOTE_MAX)
    workflow = store.workflow
    with command(store, "create_order", user=user) as ctx:
        require_role(ctx, {"sales", "admin"}, action="create orders")
        cust = ctx.session.exec(select(Customer).where(Customer.code == customer.strip())).first()
        if cust is None or cust.id is None:
            raise Refused(
                msg("There is no customer with code {code}.", code=customer.strip()), code="unknown_customer"
            )
        if promised is not None and order_no is None and promised < ctx.now.date():
            raise Refused(
                msg("The promised date {date} is in the past.", date=promised.isoformat()),
                code="date_in_past",
            )
        address = clean_text(
            cust.address if ship_address is None else ship_address,
            field_name="Ship-to address",
            max_len=ADDRESS_MAX,
        )
        merged: dict[int, tuple[Product, int]] = {}
        for code, qty in lines:
            product = find_product(ctx.session, code)
            if not isinstance(qty, int) or not 0 < qty <= MAX_LINE_QTY:
                raise Refused(
                    msg(
                        "Quantity for {sku} must be a whole number from 1 to {max}.",
                        sku=code,
                        max=MAX_LINE_QTY,
                    ),
                    code="bad_quantity",
                )
            prev = merged.get(product.id or 0)
            merged[product.id or 0] = (product, qty + (prev[1] if prev else 0))
        if order_no is None:
            desk = ctx.session.get(Desk, 1)
            assert desk is not None
            order_no = f"SO-{desk.desk_code}-{desk.next_order_no:07d}"
            desk.next_order_no += 1
            ctx.session.add(desk)
        elif ctx.session.exec(select(SalesOrder.id).where(SalesOrder.order_no == order_no)).first():
            raise Refused(
                msg("Order number {order_no} is already in use.", order_no=order_no), code="duplicate_order"
            )
        order = SalesOrder(
            order_no=order_no,
            channel=channel,
            customer_id=cust.id,
            ship_address=address,
            amount=sum(p.unit_price * q for p, q in merged.values()),
            promised_date=promised,
            rush=rush,
            route=route,
            state=workflow.initial,
            state_since=ctx.now,
            notes=notes,
            created_at=ctx.now,
            created_by=ctx.actor.name,
            updated_at=ctx.now,
            updated_by=ctx.actor.name,
        )
        ctx.session.add(order)
        ctx.session.flush()
        for n, (product, qty) in enumerate(merged.values(), start=1):
            ctx.session.add(
                OrderLine(
                    order_id=order.id or 0,
                    line_no=n,
                    product_id=product.id or 0,
                    quantity=qty,
                    unit_price=product.unit_price,
                )
            )
        extra_args, extra_detail = sales_checks(ctx, order) if sales_checks else ({}, {})
        ctx.record(
            order_no=order_no,
            args={
                **extra_args,
                "order_no": order_no,
                "customer": cust.code,
                "lines": [[p.sku, q] for p, q in merged.values()],
                "channel": channel,
                "promised": promised.isoformat() if promised else None,
                "rush": rush,
                "route": route,
                "ship_address": address,
                "notes": notes,
            },
            base_version=0,
            detail=extra_detail or None,
        )
    return show_order(store, order_no, viewer=user if isinstance(user, str) else user.name)


def find_product(session: Session, code: str) -> Product:
    """A product by SKU or by any of its barcodes."""
    code = code.strip()
    product = session.exec(select(Product).where(Product.sku == code)).first()
    if product is None:
        key = code.zfill(14) if code.isdigit() and len(code) in (8, 12, 13, 14) else code
        product = session.exec(select(Product).join(ProductBarcode).where(ProductBarcode.code == key)).first()
    if product is None:
        raise Refused(
            msg("There is no product with SKU or barcode {code}.", code=code), code="unknown_product"
        )
    return product


# -- move ------------------------------------------------------------------------------------------------
def _targets_text(options: list[Transition]) -> str:
    return ", ".join(f"{t.to} ({t.id})" for t in options) or "-"


def apply_transition(
    ctx: CommandContext, order: SalesOrder, to: str, *, workflow: Workflow
) -> tuple[Transition, str, str]:
    """Make one workflow move of ``order`` inside ``ctx``'s transaction, or refuse.

    ``to`` is a state id or a transition id. The transition must leave the order's state, the actor must hold
    one of its roles and every guard must pass. Returns (transition, from, to); the caller bumps the version
    and records the command. Shared by ``move_order`` and ``scanning.ship_order``.
    """
    here = state_label(workflow, order.state)
    transition = workflow.find(order.state, to.strip())
    if transition is None:
        options = workflow.allowed(order.state, ctx.actor.roles)
        raise Refused(
            msg(
                "Order {order_no} is in {state}; it cannot move to {target}. You may move it to: {options}.",
                order_no=order.order_no,
                state=here,
                target=to,
                options=_targets_text(options),
            ),
            code="illegal_transition",
        )
    if not ctx.actor.has_any(transition.roles):
        raise Refused(
            msg(
                "{user} may not {move} order {order_no}: that needs the role {roles}.",
                user=ctx.actor.name,
                move=Label(transition.label_en, transition.label_zh),
                order_no=order.order_no,
                roles=" / ".join(sorted(transition.roles)),
            ),
            code="forbidden",
            who=tuple(sorted(transition.roles)),
        )
    failures = [f for g in transition.guards if (f := GUARDS[g](ctx.session, order, here)) is not None]
    if failures:
        first = failures[0]
        raise Refused(
            first.message
            if len(failures) == 1
            else msg(
                "{first} (and {more} more: {names})",
                first=first.message,
                more=len(failures) - 1,
                names=", ".join(f.guard for f in failures[1:]),
            ),
            code=f"guard:{first.guard}",
            who=tuple(dict.fromkeys(r for f in failures for r in f.who)),
        )
    source = order.state
    target = order.held_from_state if transition.to == "@previous" else transition.to
    if not target:
        raise Refused(msg("Order {order_no} has no earlier state to return to.", order_no=order.order_no))
    if workflow.states[target].kind == "hold":
        order.held_from_state = source
    else:  # leaving a hold (resumed or cancelled): nothing to return to any more
        order.held_from_state = ""
    order.state = target
    order.state_since = ctx.now
    return transition, source, target


def move_order_effect(
    store: Store,
    *,
    order_no: str,
    to: str,
    user: str | Actor,
    reason: str = "",
    expected_version: int | None = None,
) -> tuple[str, str]:
    """Move an order along the workflow: ``to`` is a state id or a transition id. Returns the order number
    and who moved it (``move_order`` also reads the order back)."""
    reason = clean_text(reason, field_name="Reason", max_len=REASON_MAX)
    workflow = store.workflow
    with command(store, "move_order", user=user) as ctx:
        order = get_order_row(ctx.session, order_no)
        check_version(order, expected_version)
        transition, source, target = apply_transition(ctx, order, to, workflow=workflow)
        base = touch_order(ctx, order)
        ctx.record(
            order_no=order.order_no,
            args={
                "order_no": order.order_no,
                "transition": transition.id,
                "from": source,
                "to": target,
                "reason": reason,
            },
            base_version=base,
            detail={"notify": list(transition.notify), "require_ack": transition.require_ack},
        )
    return order.order_no, ctx.actor.name


# -- edit fields -----------------------------------------------------------------------------------------
def _user_id(session: Session, name: str) -> int | None:
    if not name:
        return None
    user = session.exec(select(AppUser).where(AppUser.name == name.strip())).first()
    if user is None:
        raise Refused(
            msg("There is no user called {name}. `orderdesk user list` shows who exists.", name=name)
        )
    return user.id


move_order = _reading_back(move_order_effect)


def _parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "y", "on", "是"):
        return True
    if text in ("0", "false", "no", "n", "off", "否"):
        return False
    raise ValueError(value)


def _parse_date(value: Any) -> date | None:
    if value in (None, ""):
        return None
    return value if isinstance(value, date) else date.fromisoformat(str(value).strip())


def _one_of(*allowed: str) -> Any:
    def convert(value: Any) -> str:
        if value not in allowed:
            raise ValueError(value)
        return str(value)

    return convert


# field -> (model attribute, converter). Converters raise ValueError for bad input; None = a user name.
EDITABLE_FIELDS: dict[str, tuple[str, Any]] = {
    "ship_address": (
        "ship_address",
        lambda v: clean_text(str(v), field_name="Ship-to address", max_len=ADDRESS_MAX),
    ),
    "notes": ("notes", lambda v: clean_text(str(v), field_name="Notes", max_len=NOTE_MAX)),
    "promised_date": ("promised_date", _parse_date),
    "signed_date": ("signed_date", _parse_date),
    "rush": ("rush", _parse_bool),
    "channel": ("channel", _one_of(*CHANNELS)),
    "waybill": ("waybill", lambda v: clean_text(str(v), field_name="Waybill", max_len=40)),
    "tech_approved": ("tech_approved", _parse_bool),
    "materials_kitted": ("materials_kitted", _parse_bool),
    "qc_result": ("qc_result", _one_of("", "passed", "failed")),
    "inspector": ("inspector_id", None),  # a user name, resolved in the transaction
    "owner": ("owner_id", None),
}


def edit_order_effect(
    store: Store,
    *,
    order_no: str,
    changes: dict[str, Any],
    user: str | Actor,
    expected_version: int | None = None,
    reason: str = "",
) -> tuple[str, str]:
    """Change order fields. Each field must be editable by one of the user's roles (workflow ``[roles]``).
    Returns the order number and who changed it (``edit_order`` also reads the order back)."""
    if not changes:
        raise Refused(msg("Nothing to change."), code="no_changes")
    reason = clean_text(reason, field_name="Reason", max_len=REASON_MAX)
    workflow = store.workflow
    with command(store, "edit_order", user=user) as ctx:
        may_edit = editable_fields(workflow, ctx.actor)
        order = order_for_change(ctx, order_no, expected_version, workflow=workflow)
        applied: dict[str, Any] = {}
        for field, raw in changes.items():
            if field not in EDITABLE_FIELDS:
                raise Refused(msg("{field} cannot be changed here.", field=field), code="not_editable")
            require_fields(ctx, [field], may_edit)
            attr, convert = EDITABLE_FIELDS[field]
            try:
                value = _user_id(ctx.session, str(raw or "")) if convert is None else convert(raw)
            except ValueError:
                raise Refused(
                    msg("{value} is not a valid value for {field}.", value=str(raw), field=field),
                    code="bad_value",
                ) from None
            setattr(order, attr, value)
            applied[field] = (
                value.isoformat() if isinstance(value, date) else (raw if convert is None else value)
            )
        base = touch_order(ctx, order)
        ctx.record(
            order_no=order.order_no,
            args={"order_no": order.order_no, "changes": applied, "reason": reason},
            base_version=base,
        )
    return order.order_no, ctx.actor.name


edit_order = _reading_back(edit_order_effect)


def assign_order(
    store: Store, *, order_no: str, owner: str, user: str | Actor, expected_version: int | None = None
) -> OrderDetail:
    """Make ``owner`` the person responsible for the order."""
    return edit_order(
        store, order_no=order_no, changes={"owner": owner}, user=user, expected_version=expected_version
    )


def add_note_effect(store: Store, *, order_no: str, text: str, user: str | Actor) -> tuple[str, str]:
    """Add a note to the order's timeline (anyone who may see the order may). Returns the order number and
    who added it (``add_note`` also reads the order back)."""
    (added,) = add_notes_effect(store, [NewNote(order_no, text, user)])
    if isinstance(added, Refused):
        raise added
    return added


@dataclass(frozen=True)
class NewNote:
    """A note to add: to which order, what it says, and who adds it."""

    order_no: str
    text: str
    user: str | Actor
    # the op that adds it: the desk's, when the central API replays it; else a new one
    op_id: str | None = None


def add_notes_effect(store: Store, notes: Sequence[NewNote]) -> list[tuple[str, str] | Refused]:
    """Add notes in one transaction, set-based, each as ``add_note`` adds one: its own audit record and
    outbox record, in the order given. One query per few hundred orders finds them, one statement each
    writes the notes, the audit records and the outbox records (the central API replays a desk's notes hundreds at a time).
    A note that would be refused is refused alone: its entry is the refusal; every other entry is the
    order number and who added it."""
    ready: list[tuple[str, str] | Refused] = []  # (order number, cleaned text), before the write lock
    for note in notes:
        try:
            ready.append(
                (
                    normalise_order_no(note.order_no),
                    clean_text(note.text, field_name="Note", max_len=NOTE_MAX, required=True),
                )
            )
        except Refused as refused:
            ready.append(refused)
    if all(isinstance(r, Refused) for r in ready):
        return ready
    out = list(ready)
    with command_batch(store, "add_note") as ctx:
        found = {
            no: (order_id, version)
            for order_id, no, version in rows_in(
                ctx.session,
                lambda chunk: select(SalesOrder.id, SalesOrder.order_no, SalesOrder.version).where(
                    col(SalesOrder.order_no).in_(chunk)
                ),
                {r[0] for r in ready if not isinstance(r, Refused)},
            )
        }
        rows: list[dict[str, Any]] = []
        records: list[Record] = []
        for i, (note, prepared) in enumerate(zip(notes, ready, strict=True)):
            if isinstance(prepared, Refused):
                continue
            no, text = prepared
            try:
                actor = ctx.actor(note.user)
                if no not in found:
                    raise no_order_refusal(note.order_no)
            except Refused as refused:
                out[i] = refused
                continue
            order_id, version = found[no]
            op_id = note.op_id or new_op_id()  # names the note everywhere it syncs to
            rows.append(
                {"order_id": order_id, "at": ctx.now, "user_name": actor.name, "text": text, "op_id": op_id}
            )
            records.append(Record(actor.name, {"order_no": no, "text": text}, no, version, op_id=op_id))
            out[i] = (no, actor.name)
        insert_rows(ctx.session, OrderNote, rows)
        ctx.record(records)
    return out


add_note = _reading_back(add_note_effect)


def require_fields(ctx: CommandContext, fields: Sequence[str], may: frozenset[str] | None = None) -> None:
    """Refuse unless the actor's roles may edit every one of ``fields`` (workflow ``[roles.*] edit``)."""
    may = editable_fields(ctx.store.workflow, ctx.actor) if may is None else may
    for name in fields:
        if name not in may:
            raise Refused(
                msg(
                    "{user} may not change {field} ({roles}).",
                    user=ctx.actor.name,
                    field=name,
                    roles=", ".join(sorted(ctx.actor.roles)),
                ),
                code="forbidden_field",
            )


def visible_fields(workflow: Workflow, actor: Actor) -> frozenset[str]:
    return frozenset().union(*(workflow.roles[r].see for r in actor.roles if r in workflow.roles))


def editable_fields(workflow: Workflow, actor: Actor) -> frozenset[str]:
    return frozenset().union(*(workflow.roles[r].edit for r in actor.roles if r in workflow.roles))


# -- queries ---------------------------------------------------------------------------------------------
def _summaries(
    session: Session, workflow: Workflow, rows: Sequence[tuple[SalesOrder, Customer]]
) -> list[OrderSummary]:
    return [
        OrderSummary(
            o.order_no,
            o.channel,
            c.code,
            c.name,
            o.amount,
            o.promised_date,
            o.rush,
            o.state,
            state_label(workflow, o.state),
            o.state_since,
            o.version,
        )
        for o, c in rows
    ]


def show_order(store: Store, order_no: str, *, viewer: str | None = None) -> OrderDetail:
    """Everything about one order: lines, timeline and (with a viewer) the moves that viewer may make."""
    workflow = store.workflow
    with store.read() as session:
        actor = load_actor(session, viewer) if viewer else None
        order = get_order_row(session, order_no)
        cust = session.get(Customer, order.customer_id)
        assert cust is not None
        lines = session.exec(
            select(OrderLine, Product)
            .join(Product)
            .where(OrderLine.order_id == order.id)
            .order_by(col(OrderLine.line_no))
        ).all()
        codes: dict[int, list[str]] = {}
        for bc in session.exec(
            select(ProductBarcode).where(col(ProductBarcode.product_id).in_([p.id for _, p in lines]))
        ):
            codes.setdefault(bc.product_id, []).append(bc.code)
        names = {
            u.id: u.name
            for u in session.exec(
                select(AppUser).where(col(AppUser.id).in_([order.owner_id or 0, order.inspector_id or 0]))
            )
        }
        timeline = audit.search(session, order_no=order.order_no, limit=TIMELINE_MAX, latest=True)
        options = workflow.allowed(order.state, actor.roles) if actor else []
        return OrderDetail(
            summary=_summaries(session, workflow, [(order, cust)])[0],
            customer_phone=cust.phone,
            customer_contact=cust.contact,
            credit_terms=cust.settlement_terms,
            ship_address=order.ship_address,
            signed_date=order.signed_date,
            route=order.route,
            owner=names.get(order.owner_id, ""),
            inspector=names.get(order.inspector_id, ""),
            tech_approved=order.tech_approved,
            materials_kitted=order.materials_kitted,
            qc_result=order.qc_result,
            credit_released=order.credit_released,
            waybill=order.waybill,
            packing_preset=order.packing_preset,
            notes=order.notes,
            created_at=order.created_at,
            created_by=order.created_by,
            updated_at=order.updated_at,
            updated_by=order.updated_by,
            lines=tuple(
                LineView(
                    ln.line_no,
                    p.sku,
                    p.name,
                    p.unit,
                    _display_codes(codes.get(p.id or 0, [])),
                    ln.quantity,
                    ln.scanned_qty,
                    ln.shipped_qty,
                    ln.batch,
                    ln.unit_price,
                    p.hazard,
                )
                for ln, p in lines
            ),
            timeline=tuple(timeline),  # notes are in the trail too (add_note)
            transitions=tuple(
                TransitionOption(
                    t.id,
                    order.held_from_state if t.to == "@previous" else t.to,
                    Label(t.label_en, t.label_zh),
                    state_label(workflow, order.held_from_state if t.to == "@previous" else t.to),
                )
                for t in options
            ),
        )


def _display_codes(codes: list[str]) -> tuple[str, ...]:
    # GTINs are stored as 14 digits; show EAN-13 the way it is printed on the box.
    return tuple(c[1:] if len(c) == 14 and c.isdigit() and c.startswith("0") else c for c in codes)


def list_orders(
    store: Store, *, state: str | None = None, limit: int = 50, offset: int = 0
) -> tuple[int, list[OrderSummary]]:
    """Orders (oldest in their state first), with the total count matching the filter."""
    workflow = store.workflow
    if state is not None and state not in workflow.states:
        raise Refused(
            msg(
                "Unknown state {state}: use one of {states}.", state=state, states=", ".join(workflow.states)
            ),
            code="unknown_state",
        )
    limit = max(1, min(limit, PAGE_MAX))
    with store.read() as session:
        query = select(SalesOrder, Customer).join(Customer)
        count = select(func.count()).select_from(SalesOrder)
        if state:
            query = query.where(SalesOrder.state == state).order_by(col(SalesOrder.state_since))
            count = count.where(SalesOrder.state == state)
        else:
            query = query.order_by(col(SalesOrder.id).desc())
        total = int(session.exec(count).one())
        rows = session.exec(query.offset(max(0, offset)).limit(limit)).all()
        return total, _summaries(session, workflow, rows)


def search_orders(store: Store, text: str, *, limit: int = 50) -> list[OrderSummary]:
    """Find orders by number (or its tail), customer name or code, or phone."""
    text = text.strip()
    if not text:
        return []
    workflow = store.workflow
    with store.read() as session:
        upper = text.upper()
        query = select(SalesOrder, Customer).join(Customer)
        if upper.startswith("SO-"):
            rows = session.exec(
                query.where(col(SalesOrder.order_no).startswith(upper))
                .order_by(col(SalesOrder.order_no))
                .limit(limit)
            ).all()
            return _summaries(session, workflow, rows)
        like = f"%{text}%"
        customer_ids = session.exec(
            select(Customer.id)
            .where(
                or_(
                    col(Customer.name).like(like),
                    col(Customer.code) == text,
                    col(Customer.phone).startswith(text),
                )
            )
            .limit(200)
        ).all()
        clauses = [col(SalesOrder.customer_id).in_(customer_ids)] if customer_ids else []
        if text.isdigit():
            clauses.append(col(SalesOrder.order_no).endswith(text.zfill(7)))
        if not clauses:
            return []
        rows = session.exec(query.where(or_(*clauses)).order_by(col(SalesOrder.id).desc()).limit(limit)).all()
        return _summaries(session, workflow, rows)
