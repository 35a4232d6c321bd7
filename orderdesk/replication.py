"""Replication between desks and the central API, in the core (no HTTP here: ``sync/`` carries it).

On the central API a desk's op (an outbox record: a command and its arguments as intent) is replayed through
the **same domain command** the desk ran, inside one transaction that also stores the op's terminal outcome
(applied, or rejected with a reason kept as a message id + parameters) and appends an entry for every
entity the command changed to the change log under a global sequence number, with the entity's full image
(stored once per transaction, on its first entry there).

On a desk, pulled change-log entries are applied by natural key (order number, SKU, customer code, user
name), so applying a page twice changes nothing; an entity with ops still waiting to go up keeps the desk's
own version until they are decided (the newest server image waits in ``sync_deferred``).

The protocol and its guarantees are written up in ``docs/sync-protocol.md``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cache, partial
from itertools import groupby
from operator import itemgetter
from pathlib import Path
from typing import Any, NamedTuple, NoReturn, TypeVar

from sqlalchemy import Boolean, DateTime, Row, bindparam, delete, event, func
from sqlalchemy.exc import DataError, IntegrityError
from sqlmodel import Session, SQLModel, col, select

from orderdesk.canonical import canonical_json
from orderdesk.clock import as_utc
from orderdesk.commands import REPLAYING, payload_hash
from orderdesk.errors import OrderdeskError, Refused, StoreError
from orderdesk.i18n import Label, Msg, msg
from orderdesk.models import (
    AppUser,
    Customer,
    Desk,
    OrderLine,
    OrderNote,
    OutboxRecord,
    Product,
    ProductBarcode,
    SalesOrder,
    SyncChange,
    SyncDesk,
    SyncEnrolCode,
    SyncFieldChange,
    SyncLink,
    SyncOp,
    SyncOutcome,
    SyncServer,
    SyncStream,
    UserRole,
)
from orderdesk.store import (
    Store,
    execute_core,
    insert_rows,
    insert_values,
    iter_chunks,
    rows_in,
    sqlite_time,
    transaction_cache,
)

logger = logging.getLogger(__name__)

SERVER_DESK_CODE = "HQ"  # orders created on the central API itself are SO-HQ-…
ENROL_CODE_TTL = timedelta(hours=24)
DEFAULT_PAGE = 1000
PAGE_BYTES = 1_000_000  # a pull page holds about this many characters of JSON (decoding holds the desk's GIL)
PAGE_CHUNK = 250  # … read from the change log this many entries at a time
OPS_PER_COMMIT = 1000  # a push's ops are decided in transactions of at most this many ops …
COMMIT_BUDGET_S = 0.5  # … or of about this long, so other desks never wait long for the writer


# -- errors ----------------------------------------------------------------------------------------------
class SyncError(OrderdeskError):
    """A request the central API refuses as a whole (nothing written). ``status`` is the HTTP status."""

    def __init__(self, message: Msg, *, code: str, status: int = 409, **extra: Any) -> None:
        super().__init__(message, code=code)
        self.status = status
        self.extra = extra

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message.to_json(), **self.extra}


class AuthError(SyncError):
    """No token, an unknown one (401), or a revoked one / a desk speaking for another desk (403)."""


class CursorTooOld(SyncError):
    """The desk's cursor is older than the change log keeps: it must re-bootstrap."""


def msg_from_json(data: Any) -> Msg:
    """The inverse of ``Msg.to_json``: a reason that crossed the network, ready to render in any language."""

    def value(v: Any) -> Any:
        if isinstance(v, dict) and "msgid" in v:
            return msg_from_json(v)
        if isinstance(v, dict) and set(v) == {"en", "zh"}:
            return Label(v["en"], v["zh"])
        return v

    if isinstance(data, str):
        data = json.loads(data) if data else {"msgid": ""}
    return Msg(data.get("msgid", ""), {k: value(v) for k, v in (data.get("params") or {}).items()})


# -- entity images ---------------------------------------------------------------------------------------
def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    if isinstance(value, date):
        return value.isoformat()
    return value


def _columns(obj: Any, skip: Collection[str]) -> dict[str, Any]:
    """An ORM object's columns as JSON values, but for ``skip`` (plain rows: ``row_image``)."""
    return {c.name: _jsonable(getattr(obj, c.name)) for c in obj.__table__.columns if c.name not in skip}


def row_image(skip: Collection[str]) -> Callable[[Row[Any]], dict[str, Any]]:
    """The images of the plain rows of one query (``rows_under``, a dump's): their columns as JSON values,
    but for ``skip``. Which columns to keep is worked out once, from the first row (a row names its columns
    slowly), not for every row."""
    keep: list[tuple[int, str]] = []

    def image(row: Row[Any]) -> dict[str, Any]:
        if not keep:
            keep.extend((i, name) for i, name in enumerate(row._fields) if name not in skip)
        return {name: _jsonable(row[i]) for i, name in keep}

    return image


@dataclass(frozen=True)
class OrderPart:
    """Extra data carried in an order's image (e.g. scans from the scanning area): add one to
    ``ORDER_PARTS`` with a dumper (server, set-based over many orders) and an applier (desk, raw SQLite connection and local order id)."""

    # order rows (plain rows with the order's columns: id, order_no, …) -> {order id: the part}
    dump: Callable[[Session, list[Any]], dict[int, Any]]
    apply: Callable[[sqlite3.Connection, int, Any], None]
    empty: Any = None  # the part of an order the dumper left out


ORDER_PARTS: dict[str, OrderPart] = {}


def rows_under(
    session: Session, model: Any, parent: Any, keys: Iterable[Any], *then: Any, with_sku: bool = False
) -> list[Row[Any]]:
    """``model``'s rows whose ``parent`` column is one of ``keys``, grouped by parent and each parent's in
    ``then`` order, as plain rows (a dump reads hundreds; ORM objects cost several times as much);
    ``with_sku``: each with the SKU of its ``product_id`` as ``_sku``."""
    by = col(parent)
    columns = model.__table__.c

    def query(chunk: list[Any]) -> Any:
        rows = (
            select(*columns, col(Product.sku).label("_sku")).join(
                Product, col(Product.id) == columns.product_id
            )
            if with_sku
            else select(*columns)
        )
        return rows.where(by.in_(chunk)).order_by(by, *(col(c) for c in then))

    return rows_in(session, query, keys)


def grouped(
    rows: Iterable[Any], key: Callable[[Any], int], image: Callable[[Any], Any]
) -> dict[int, list[Any]]:
    """Rows (already in order, as ``rows_under`` gives them) as each parent's list of images."""
    out: dict[int, list[Any]] = {}
    for row in rows:
        out.setdefault(key(row), []).append(image(row))
    return out


def dump_orders(session: Session, order_nos: Iterable[str]) -> dict[str, dict[str, Any] | None]:
    """The images of many orders (None for an order that does not exist), in one query per table."""
    order_nos = list(order_nos)
    orders_c = SalesOrder.__table__.c  # type: ignore[attr-defined]
    found = rows_in(session, lambda c: select(*orders_c).where(orders_c.order_no.in_(c)), order_nos)
    orders = {o.order_no: o for o in found}
    ids = [o.id for o in found]
    customers = dict(
        rows_in(
            session,
            lambda c: select(Customer.id, Customer.code).where(col(Customer.id).in_(c)),
            {o.customer_id for o in found},
        )
    )
    users = dict(
        rows_in(
            session,
            lambda c: select(AppUser.id, AppUser.name).where(col(AppUser.id).in_(c)),
            {u for o in found for u in (o.owner_id, o.inspector_id) if u},
        )
    )
    lines = grouped(
        rows_under(session, OrderLine, OrderLine.order_id, ids, OrderLine.line_no, with_sku=True),
        lambda row: row.order_id,
        row_image(("id", "order_id", "product_id")),
    )
    parts = {name: part.dump(session, found) for name, part in ORDER_PARTS.items()}
    images: dict[str, dict[str, Any] | None] = {}
    order_image = row_image(("id", "customer_id", "owner_id", "inspector_id"))
    for order_no in order_nos:
        order = orders.get(order_no)
        if order is None:
            images[order_no] = None
            continue
        image = order_image(order)
        image["_customer"] = customers.get(order.customer_id)
        image["_owner"] = users.get(order.owner_id) if order.owner_id else None
        image["_inspector"] = users.get(order.inspector_id) if order.inspector_id else None
        image["_lines"] = lines.get(order.id or 0, [])
        for name, part in ORDER_PARTS.items():
            image[f"_{name}"] = parts[name].get(order.id, part.empty)
        images[order_no] = image
    return images


def dump_order(session: Session, order_no: str) -> dict[str, Any] | None:
    return dump_orders(session, [order_no])[order_no]


def dump_notes(session: Session, op_ids: Iterable[str]) -> dict[str, dict[str, Any] | None]:
    """The images of notes, each named by the op that added it (None for no such note), in one query. A
    note is an entity of its own in the change log, not part of its order's image: notes only ever grow, and
    an order's image carrying all of them made each transaction that added one dump them all again."""
    op_ids = list(op_ids)
    c = OrderNote.__table__.c  # type: ignore[attr-defined]
    image = row_image(("op_id",))
    found = {
        row.op_id: image(row)
        for row in rows_in(
            session,
            lambda chunk: (
                select(c.op_id, c.at, c.user_name, c.text, col(SalesOrder.order_no))
                .join(SalesOrder, col(SalesOrder.id) == c.order_id)
                .where(c.op_id.in_(chunk))
            ),
            op_ids,
        )
    }
    return {op_id: found.get(op_id) for op_id in op_ids}


def dump_note(session: Session, op_id: str) -> dict[str, Any] | None:
    return dump_notes(session, [op_id])[op_id]


def dump_customer(session: Session, code: str) -> dict[str, Any] | None:
    row = session.exec(select(Customer).where(Customer.code == code)).first()
    return _columns(row, ("id",)) if row else None


def dump_product(session: Session, sku: str) -> dict[str, Any] | None:
    row = session.exec(select(Product).where(Product.sku == sku)).first()
    if row is None:
        return None
    image = _columns(row, ("id",))
    codes = session.exec(
        select(ProductBarcode).where(ProductBarcode.product_id == row.id).order_by(col(ProductBarcode.code))
    ).all()
    image["_barcodes"] = [_columns(b, ("product_id",)) for b in codes]
    return image


def dump_user(session: Session, name: str) -> dict[str, Any] | None:
    row = session.exec(select(AppUser).where(AppUser.name == name)).first()
    if row is None:
        return None
    # Failed logins and lockouts are the desk's own business; the PIN and badge hashes travel so that a
    # person added at the centre can log in at every desk (an empty hash never overwrites a desk's own).
    image = _columns(row, ("id", "failed_logins", "locked_until"))
    image["_roles"] = sorted(session.exec(select(UserRole.role).where(UserRole.user_id == row.id)).all())
    return image


DUMPERS: dict[str, Callable[[Session, str], dict[str, Any] | None]] = {
    "user": dump_user,
    "customer": dump_customer,
    "product": dump_product,
    "order": dump_order,
    "note": dump_note,
}
# Kinds dumped set-based (a transaction publishes hundreds of them)
MANY_DUMPERS: dict[str, Callable[[Session, Iterable[str]], dict[str, dict[str, Any] | None]]] = {
    "order": dump_orders,
    "note": dump_notes,
}


def dump_many(session: Session, kind: str, keys: Iterable[str]) -> dict[str, dict[str, Any] | None]:
    """The images of many entities of one kind: orders and notes (the busiest) set-based, the others one by
    one."""
    many = MANY_DUMPERS.get(kind)
    if many is not None:
        return many(session, keys)
    return {key: DUMPERS[kind](session, key) for key in keys}


# -- tracking what a command changed ---------------------------------------------------------------------
# model -> how to name the entity a changed row belongs to: ("order", order_no) or ("order_id", id) etc.
TRACKED: dict[type, Callable[[Any], tuple[str, Any]]] = {
    SalesOrder: lambda o: ("order", o.order_no),
    OrderLine: lambda o: ("order_id", o.order_id),
    OrderNote: lambda o: ("note", o.op_id),
    Customer: lambda o: ("customer", o.code),
    Product: lambda o: ("product", o.sku),
    ProductBarcode: lambda o: ("product_id", o.product_id),
    AppUser: lambda o: ("user", o.name),
    UserRole: lambda o: ("user_id", o.user_id),
}
_BY_ID: dict[str, tuple[type, str, str]] = {
    "order_id": (SalesOrder, "order_no", "order"),
    "product_id": (Product, "sku", "product"),
    "user_id": (AppUser, "name", "user"),
}


class ChangeTracker:
    """Collects the entities whose rows a session flushes (new, changed or deleted) while it is attached:
    ``take`` hands over what was seen since the last ``take`` (one op's changes), ``close`` detaches."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.seen: set[tuple[str, Any]] = set()
        event.listen(session, "before_flush", self._before_flush)

    def _before_flush(self, session: Session, _ctx: Any, _instances: Any) -> None:
        for obj in [*session.new, *session.dirty, *session.deleted]:
            namer = TRACKED.get(type(obj))
            if namer is not None:
                self.seen.add(namer(obj))

    def close(self) -> None:
        event.remove(self.session, "before_flush", self._before_flush)

    def take(self) -> set[tuple[str, str]]:
        self.session.flush()
        seen, self.seen = self.seen, set()
        out: set[tuple[str, str]] = set()
        # Row id -> natural key (order numbers, SKUs and user names never change)
        names: dict[tuple[str, Any], str] = transaction_cache(self.session, "natural_keys")
        for kind, key in seen:
            if kind in _BY_ID and key is not None:
                model, attr, real = _BY_ID[kind]
                if (kind, key) not in names:
                    row = self.session.get(model, key)
                    if row is None:
                        continue
                    names[(kind, key)] = getattr(row, attr)
                out.add((real, names[(kind, key)]))
            elif key is not None:
                out.add((kind, key))
        return out


# -- the replay registry ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class OpContext:
    """What a conflict check knows about the op being replayed."""

    desk_id: str
    command: str
    args: dict[str, Any]
    order_no: str
    user_name: str
    seen_seq: int
    op_id: str = ""


@dataclass(frozen=True)
class Replay:
    """How the central API replays one outbox command: ``run`` calls the domain command; ``check`` may
    refuse it first against the server's state (conflicts); ``touches`` names entities to publish even if
    the session did not see them change. A command with a set-based form has ``many`` instead of ``run``:
    it replays a run of consecutive ops together, answering for each the entities it changed, or its
    refusal."""

    run: Callable[[Store, dict[str, Any], str], object] | None = None
    # ``run`` for a replay that depends on the op's desk or on what it had seen (``OpContext``)
    run_op: Callable[[Store, OpContext], object] | None = None
    check: Callable[[Store, Session, OpContext], Refused | None] | None = None
    touches: Callable[[dict[str, Any], str], list[tuple[str, str]]] = lambda args, order_no: (
        [("order", order_no)] if order_no else []
    )
    many: Callable[[Store, list[OpContext]], Sequence[list[tuple[str, str]] | Refused]] | None = None
    # the kind of entity the command adds, named by the op's id (a note): published when the op is applied,
    # and dropped again on the desk that made it if the op is rejected
    adds: str | None = None

    def __post_init__(self) -> None:
        if [self.run, self.run_op, self.many].count(None) != 2:
            raise ValueError("a Replay has one of run, run_op or many")
        if self.many is not None and self.check is not None:
            raise ValueError(
                "a set-based replay (many) has no conflict check: replay such a command with run"
            )


def _replay_create(store: Store, a: dict[str, Any], user: str) -> object:
    from orderdesk.orders import create_order

    return create_order(
        store,
        customer=a["customer"],
        lines=[(str(sku), int(qty)) for sku, qty in a["lines"]],
        user=user,
        channel=a.get("channel", "offline"),
        promised=date.fromisoformat(a["promised"]) if a.get("promised") else None,
        rush=bool(a.get("rush")),
        route=a.get("route", "make_to_order"),
        ship_address=a.get("ship_address"),
        notes=a.get("notes", ""),
        order_no=a["order_no"],
    )


def _replay_move(store: Store, a: dict[str, Any], user: str) -> object:
    from orderdesk.orders import move_order_effect

    return move_order_effect(
        store, order_no=a["order_no"], to=a["transition"], user=user, reason=a.get("reason", "")
    )


def _check_move(store: Store, session: Session, op: OpContext) -> Refused | None:
    """State moves are compare-and-set on the state: the first move to reach the centre wins."""
    from orderdesk.orders import state_label

    order = session.exec(select(SalesOrder).where(SalesOrder.order_no == op.order_no)).first()
    expected = op.args.get("from")
    if order is None or expected is None or order.state == expected:
        return None  # a missing order is refused by the command itself
    workflow = store.workflow
    return Refused(
        msg(
            "Order {order_no} was already moved to {state} by {user} before your change ({transition}) "
            "arrived; you made it while the order was {was}. The first change to reach the central API wins.",
            order_no=order.order_no,
            state=state_label(workflow, order.state),
            user=order.updated_by,
            transition=op.args.get("transition", ""),
            was=state_label(workflow, expected),
        ),
        code="state_conflict",
    )


def _replay_edit(store: Store, a: dict[str, Any], user: str) -> object:
    from orderdesk.orders import edit_order_effect

    return edit_order_effect(
        store, order_no=a["order_no"], changes=dict(a["changes"]), user=user, reason=a.get("reason", "")
    )


def _check_edit(store: Store, session: Session, op: OpContext) -> Refused | None:
    """A field someone else changed after the version this edit was based on is a conflict for a person."""
    for name, value in (op.args.get("changes") or {}).items():
        last = session.get(SyncFieldChange, (op.order_no, name))
        if last is None or last.seq <= op.seen_seq or last.desk_id == op.desk_id:
            continue
        if last.value == canonical_json(value):
            continue  # both set the same value: nothing to decide
        return Refused(
            msg(
                "{field} of order {order_no} was changed to “{theirs}” by {user} after the version your "
                "change was based on; your “{yours}” was not applied. A supervisor decides which to keep.",
                field=name,
                order_no=op.order_no,
                theirs=_show(json.loads(last.value)),
                user=last.user_name or "?",
                yours=_show(value),
            ),
            code="edit_conflict",
        )
    return None


def _show(value: Any) -> str:
    return "" if value is None else str(value)


def _replay_notes(store: Store, ops: list[OpContext]) -> list[list[tuple[str, str]] | Refused]:
    from orderdesk.orders import NewNote, add_notes_effect

    added = add_notes_effect(
        store, [NewNote(op.args["order_no"], op.args["text"], op.user_name, op.op_id) for op in ops]
    )
    return [
        got if isinstance(got, Refused) else [("note", op.op_id)] for got, op in zip(added, ops, strict=True)
    ]


def _replay_customer(store: Store, a: dict[str, Any], user: str) -> object:
    from orderdesk.catalog import add_customer

    return add_customer(store, **a, user=user)


def _replay_product(store: Store, a: dict[str, Any], user: str) -> object:
    from orderdesk.catalog import add_product

    return add_product(store, **a, user=user)


def _replay_user(store: Store, a: dict[str, Any], user: str) -> object:
    from orderdesk.users import add_user

    return add_user(
        store, name=a["name"], roles=list(a["roles"]), display_name=a.get("display_name", ""), by=user
    )


def _replay_stock(store: Store, a: dict[str, Any], user: str) -> object:
    from orderdesk.stock import adjust_stock

    return adjust_stock(store, sku=a["sku"], delta=int(a["delta"]), user=user, reason=a.get("reason", ""))


# -- the scanning area's commands (issue 3) ---------------------------------------------------------------
# Packing happens at a station: the desk's open packing session is desk-local (not synced). To replay a
# station's op the central API opens the same order for the same user, inside the op's savepoint (a run of
# scans: inside its group's, ``_replay_scans``), and runs the command. A run of one station's ops on one
# order (its scans) shares that session, as it did on the desk; another station's or another order's op
# closes it first, and none outlives the transaction.
PACKING = "replay_packing"  # Session.info key: (user, order number) of the station session a replay left open
T = TypeVar("T")


def _with_packing(store: Store, order_no: str, user: str, run: Callable[[], T], *, ends: bool = False) -> T:
    """Run a station's op (or a run of its scans) with ``order_no`` open at ``user``'s station; ``ends``: the
    op closes the station (a shipment, a reset), so nothing is left open after it."""
    from orderdesk.scanning import start_packing

    with store.write() as session:
        if session.info.get(PACKING) != (user, order_no):
            _close_packing(store, also=user)
            start_packing(store, order_no=order_no, user=user)
            session.info[PACKING] = (user, order_no)
        result = run()
        if ends:
            _close_packing(store)
        return result


def _close_packing(store: Store, *, also: str = "") -> None:
    """Close the station session a replay left open in this transaction (and any of ``also``'s)."""
    from orderdesk.scanning import close_packing

    with store.write() as session:
        held = session.info.pop(PACKING, None)
        close_packing(session, users={u for u in (held[0] if held else "", also) if u})


def _replay_scans(store: Store, ops: list[OpContext]) -> list[list[tuple[str, str]] | Refused]:
    """A run of scans, set-based: each station's consecutive scans on one order together, with that order
    open there, in a savepoint. A group that counts nothing (the order cannot be opened there any more, or
    every scan is refused) is rolled back, station and all, as its ops one at a time would have been."""
    out: list[list[tuple[str, str]] | Refused] = []
    with store.write() as session:
        day = _station_day(session, ops[0].desk_id, store.clock())  # a push's ops are one desk's
        for (user, order_no), run in groupby(ops, key=lambda op: (op.user_name, op.args["order_no"])):
            out += _replay_scan_group(store, session, user, order_no, list(run), day)
    return out


def _replay_scan_group(
    store: Store,
    session: Session,
    user: str,
    order_no: str,
    ops: list[OpContext],
    day: Callable[[Any], date | None],
) -> list[list[tuple[str, str]] | Refused]:
    """One station's consecutive scans on one order (``_replay_scans``); ``day``: ``_station_day``'s."""
    from orderdesk.scanning import NewScan, record_scans

    scans = [
        NewScan(
            op.args["code"],
            op.args.get("multiplier", 1),  # checked by record_scans, as the station checks it
            op.args.get("idem_key"),
            op.args.get("source", "scanner"),
            day(op.args.get("day")),
        )
        for op in ops
    ]
    savepoint = _StationSavepoint(session)
    try:
        counted = _with_packing(
            store, order_no, user, partial(record_scans, store, user=user, order_no=order_no, scans=scans)
        )
    except Refused as refused:  # opening the order refused before it wrote anything
        counted = [refused] * len(scans)
    # Anything else propagates: the op's own savepoint (``_attempt``) rolls this one back with it.
    if all(isinstance(got, Refused) for got in counted):
        savepoint.rollback()
    else:
        savepoint.commit()
    return [got if isinstance(got, Refused) else [("order", order_no)] for got in counted]


def _station_day(session: Session, desk_id: str, now: datetime) -> Callable[[Any], date | None]:
    """How the day of a station's scan (``day``, by the station's clock) is taken: as sent, unless no scan can
    have been made that day, before the desk was enrolled or after today here (a wrong clock, such as one
    reset by a dead battery). Then, as for an older desk that sends none, the scan is judged by today here."""
    from orderdesk.scanning import local_today

    desk = session.get(SyncDesk, desk_id)
    earliest = local_today(as_utc(desk.enrolled_at)) if desk is not None else date.min
    today = local_today(now)

    def day(sent: Any) -> date | None:
        if not sent:
            return None
        station = date.fromisoformat(sent)
        return station if earliest <= station <= today else None

    return day


def _replay_undo_scan(store: Store, a: dict[str, Any], user: str) -> object:
    from orderdesk.models import Scan
    from orderdesk.scanning import undo_last_scan

    def run() -> object:
        with store.read() as session:
            newest = session.exec(
                select(Scan.idem_key)
                .where(Scan.order_no == a["order_no"], col(Scan.undone).is_(False))
                .order_by(col(Scan.id).desc())
                .limit(1)
            ).first()
        if a.get("scan") and newest != a["scan"]:
            raise Refused(
                msg(
                    "The scan to undo on order {order_no} is no longer its last one; nothing was undone.",
                    order_no=a["order_no"],
                ),
                code="undo_conflict",
            )
        return undo_last_scan(store, user=user, idem_key=a.get("idem_key"))

    return _with_packing(store, a["order_no"], user, run)


def _replay_reset_packing(store: Store, op: OpContext) -> object:
    """A station's reset undoes the scans of the order as the station saw it: not those another desk's
    station made after the image the station had (its ``seen_seq``), which went into another carton."""
    from orderdesk.scanning import reset_packing, scan_key

    others = select(SyncDesk.desk_id).where(SyncDesk.desk_id != op.desk_id)
    with store.read() as session:
        unseen = session.exec(
            select(SyncOp.args).where(
                col(SyncOp.desk_id).in_(others),  # a few desks: ix_sync_op_desk_order
                SyncOp.order_no == op.order_no,
                SyncOp.command == "record_scan",
                SyncOp.status == "applied",
                col(SyncOp.change_seq) > op.seen_seq,
            )
        ).all()
    keep = {scan_key(key) for args in unseen if (key := json.loads(args).get("idem_key"))}
    return _with_packing(
        store,
        op.args["order_no"],
        op.user_name,
        lambda: reset_packing(store, user=op.user_name, keep=keep),
        ends=True,
    )


def _replay_preset(store: Store, a: dict[str, Any], user: str) -> object:
    from orderdesk.scanning import set_packing_preset

    return _with_packing(
        store,
        a["order_no"],
        user,
        lambda: set_packing_preset(store, user=user, preset=a["packing_preset"]),
    )


def _replay_release_hazard(store: Store, a: dict[str, Any], user: str) -> object:
    from orderdesk.scanning import release_hazard

    return release_hazard(store, order_no=a["order_no"], sku=a["sku"], user=user, reason=a.get("reason", ""))


def _replay_ship(store: Store, a: dict[str, Any], user: str) -> object:
    from orderdesk.scanning import ship_packed

    return _with_packing(
        store,
        a["order_no"],
        user,
        lambda: ship_packed(store, user=user, waybill=a.get("waybill", ""), carrier=a.get("carrier", "")),
        ends=True,
    )


# Outbox command name -> how the central API replays it. Adding a command that syncs is one line here:
# ``Replay(run)``, ``run(store, args, user)`` calling the domain command with the op's arguments.
REPLAYS: dict[str, Replay] = {
    "create_order": Replay(_replay_create),
    "move_order": Replay(_replay_move, check=_check_move),
    "edit_order": Replay(_replay_edit, check=_check_edit),
    "add_note": Replay(many=_replay_notes, touches=lambda a, o: [], adds="note"),
    "add_customer": Replay(_replay_customer, touches=lambda a, o: [("customer", a["code"])]),
    "add_product": Replay(_replay_product, touches=lambda a, o: [("product", a["sku"])]),
    "add_user": Replay(_replay_user, touches=lambda a, o: [("user", a["name"])]),
    "adjust_stock": Replay(_replay_stock, touches=lambda a, o: [("product", a["sku"])]),
    # the scanning area (issue 3)
    "record_scan": Replay(many=_replay_scans),
    "undo_scan": Replay(_replay_undo_scan),
    "reset_packing": Replay(run_op=_replay_reset_packing),
    "choose_packing_preset": Replay(_replay_preset),
    "release_hazard": Replay(_replay_release_hazard),
    "ship_order": Replay(_replay_ship),
}


def touches_of(command: str, args: dict[str, Any], order_no: str, op_id: str = "") -> list[tuple[str, str]]:
    """The entities an outbox command changes (as far as its intent says), with the one it adds if it names
    it by ``op_id`` (``Replay.adds``)."""
    replay = REPLAYS.get(command)
    if replay is None:
        return [("order", order_no)] if order_no else []
    try:
        touched = replay.touches(args, order_no)
    except (KeyError, TypeError):
        touched = [("order", order_no)] if order_no else []
    return [*touched, (replay.adds, op_id)] if replay.adds and op_id else touched


# -- central API: set-up, enrolment, authentication ------------------------------------------------------
def init_server(store: Store) -> str:
    """Make ``store`` a central API store (idempotent); returns the server id."""
    with store.write() as session:
        row = session.get(SyncServer, 1)
        if row is None:
            row = SyncServer(server_id=str(uuid.uuid4()), created_at=store.clock())
            session.add(row)
        desk = session.get(Desk, 1)
        if desk is not None and desk.desk_code != SERVER_DESK_CODE:
            desk.desk_code = SERVER_DESK_CODE
            session.add(desk)
        return row.server_id


def _hash_secret(text: str) -> str:
    return hashlib.sha256(("orderdesk-sync:" + text).encode()).hexdigest()


def _normalise_code(code: str) -> str:
    return "".join(ch for ch in code.upper() if ch.isalnum())


def create_enrol_code(store: Store, *, name: str = "", ttl: timedelta = ENROL_CODE_TTL) -> str:
    """A one-time enrolment code for a new desk (shown once; only its hash is kept)."""
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud over the phone
    raw = "".join(secrets.choice(alphabet) for _ in range(12))
    with store.write() as session:
        if session.get(SyncServer, 1) is None:
            raise Refused(
                msg("This database is not a central API store: start it once with `orderdesk serve`.")
            )
        now = store.clock()
        session.add(
            SyncEnrolCode(code_hash=_hash_secret(raw), name=name[:60], created_at=now, expires_at=now + ttl)
        )
    return f"{raw[:4]}-{raw[4:8]}-{raw[8:]}"


@dataclass(frozen=True)
class Enrolment:
    desk_id: str
    desk_code: str
    epoch: int
    token: str
    server_id: str


def _new_desk_code(session: Session) -> str:
    server = session.get(SyncServer, 1)
    assert server is not None
    digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    while True:
        n, out = server.next_desk_no, ""
        server.next_desk_no += 1
        while n:
            n, r = divmod(n, 36)
            out = digits[r] + out
        code = "D" + out
        if session.exec(select(SyncStream).where(SyncStream.desk_code == code)).first() is None:
            session.add(server)
            return code


def enrol_desk(store: Store, *, code: str, name: str = "") -> Enrolment:
    """Trade a one-time code for a desk identity and token (the token is returned once, kept hashed)."""
    with store.write() as session:
        server = session.get(SyncServer, 1)
        row = session.get(SyncEnrolCode, _hash_secret(_normalise_code(code)))
        now = store.clock()
        if server is None or row is None or row.used_at is not None or row.expires_at < now:
            raise AuthError(
                msg("That enrolment code is unknown, used or expired. Ask an admin for a new one."),
                code="bad_enrol_code",
                status=403,
            )
        desk_id = str(uuid.uuid4())
        token = f"{desk_id}.{secrets.token_urlsafe(32)}"
        row.used_at, row.desk_id = now, desk_id
        session.add(row)
        session.add(
            SyncDesk(
                desk_id=desk_id, name=(name or row.name)[:60], token_hash=_hash_secret(token), enrolled_at=now
            )
        )
        desk_code = _new_desk_code(session)
        session.add(SyncStream(desk_id=desk_id, epoch=1, desk_code=desk_code, created_at=now))
        return Enrolment(desk_id, desk_code, 1, token, server.server_id)


def authenticate(store: Store, token: str | None) -> SyncDesk:
    """The desk a bearer token belongs to; 401 for none/unknown, 403 for a revoked desk."""
    if not token:
        raise AuthError(msg("This request needs a desk token."), code="no_token", status=401)
    desk_id, _, _secret = token.partition(".")
    with store.read() as session:
        desk = session.get(SyncDesk, desk_id[:36]) if desk_id else None
        if desk is None or not hmac.compare_digest(desk.token_hash, _hash_secret(token)):
            raise AuthError(msg("This desk token is not valid."), code="bad_token", status=401)
        if desk.revoked_at is not None:
            raise AuthError(
                msg("This desk was revoked by an admin; enrol it again with a new code."),
                code="revoked",
                status=403,
            )
        return desk


def revoke_desk(store: Store, desk: str) -> None:
    """Revoke a desk's token (by desk id or by any of its desk codes)."""
    with store.write() as session:
        row = session.get(SyncDesk, desk)
        if row is None:
            stream = session.exec(select(SyncStream).where(SyncStream.desk_code == desk.upper())).first()
            row = session.get(SyncDesk, stream.desk_id) if stream else None
        if row is None:
            raise Refused(msg("There is no enrolled desk {desk}.", desk=desk), code="unknown_desk")
        row.revoked_at = store.clock()
        session.add(row)


def rekey_desk(store: Store, desk_id: str) -> tuple[int, str]:
    """Open a new epoch (a fresh op sequence and a fresh order-number code) for a desk whose file was
    copied or restored. Earlier epochs stay valid for whichever copy still uses them."""
    with store.write() as session:
        desk = session.get(SyncDesk, desk_id)
        assert desk is not None
        last = (
            session.exec(select(func.max(SyncStream.epoch)).where(SyncStream.desk_id == desk_id)).one() or 0
        )
        epoch = int(last) + 1
        code = _new_desk_code(session)
        session.add(SyncStream(desk_id=desk_id, epoch=epoch, desk_code=code, created_at=store.clock()))
        desk.current_epoch = epoch
        session.add(desk)
        return epoch, code


def desk_status(store: Store, desk_id: str) -> dict[str, Any]:
    """Where a desk stands: the last op seq decided in each of its epochs, and the change log's bounds."""
    with store.read() as session:
        streams = session.exec(select(SyncStream).where(SyncStream.desk_id == desk_id)).all()
        server = session.get(SyncServer, 1)
        return {
            "streams": {str(s.epoch): s.last_seq for s in streams},
            "high_water": high_water(session),
            "floor": server.log_floor if server else 0,
        }


# -- central API: deciding ops ---------------------------------------------------------------------------
@dataclass
class OpIn:
    """One outbox record as pushed by a desk."""

    op_id: str
    seq: int
    command: str
    args: dict[str, Any]
    order_no: str
    base_version: int | None
    payload_hash: str
    user_name: str
    seen_seq: int = 0

    def to_json(self) -> dict[str, Any]:
        """The op as a push carries it (``sync.protocol.Op``); ``args`` shared, not copied."""
        return dict(self.__dict__)


@dataclass
class OpResult:
    """The terminal outcome of an op, as stored and as returned on every retry."""

    op_id: str
    seq: int
    status: str  # applied | rejected
    code: str = ""
    reason: dict[str, Any] | None = None
    change_seq: int | None = None
    decided_at: str = ""
    refresh: list[dict[str, Any]] = field(default_factory=list)  # current images, for a rejected op

    def to_json(self) -> dict[str, Any]:
        return {
            "op_id": self.op_id,
            "seq": self.seq,
            "status": self.status,
            "code": self.code,
            "reason": self.reason,
            "change_seq": self.change_seq,
            "decided_at": self.decided_at,
            "refresh": self.refresh,
        }


CHANGES = "pending_changes"  # Session.info key: change-log entries waiting for their images
# An image's key for the seq it is the state "as of": the entity's last entry in its transaction. A desk that
# applies an earlier entry of that transaction holds that state, and says so when it sends an edit.
AS_OF = "_as_of"
# A change-log entry's image when an earlier entry of the same transaction carries the entity's image (each
# entry of a transaction would carry the same one). Not JSON, so never mistaken for an image.
SAME_IMAGE = ""


@dataclass
class _PendingLog:
    """The change-log entries of a ``_publishing`` block and the next seq to number them, written to the
    server row once when the block ends (not flushed after every op of a group)."""

    next_seq: int
    entries: list[dict[str, Any]] = field(default_factory=list)


@contextmanager
def _publishing(session: Session) -> Iterator[None]:
    """Collect the change-log entries appended inside the block and write them when it ends, with the image
    of each entity as the block leaves it: an entity changed by several ops of one transaction is dumped once
    and stored once, on its first entry in the transaction; its later entries there carry ``SAME_IMAGE``. The
    image is the committed state, the only state anyone else ever sees, as of the entity's last entry in the
    transaction (``AS_OF``), so a desk that pulls only the first entries already holds it."""
    assert CHANGES not in session.info, "one _publishing block per transaction"
    server = session.get(SyncServer, 1)
    log = _PendingLog(server.next_change_seq if server else 1)
    session.info[CHANGES] = log
    pending = log.entries
    try:
        yield
        last: dict[tuple[str, str], int] = {}  # each entity's last entry in the block
        for row in pending:
            last[(row["kind"], row["key"])] = row["seq"]
        keys: dict[str, set[str]] = {}
        for kind, key in last:
            keys.setdefault(kind, set()).add(key)
        images = {
            (kind, key): canonical_json(
                image if image is None or kind in IMMUTABLE_KINDS else {**image, AS_OF: last[(kind, key)]}
            )
            for kind, some in keys.items()
            for key, image in dump_many(session, kind, some).items()
        }
        stored: set[tuple[str, str]] = set()
        for row in pending:
            entity = (row["kind"], row["key"])
            image = images[entity]
            # An entity that is gone says so on every entry: "null" has no AS_OF to say which seq it is as of.
            row["image"] = SAME_IMAGE if entity in stored and image != "null" else image
            stored.add(entity)
        if pending:
            assert server is not None
            server.next_change_seq = log.next_seq
            session.add(server)
            insert_rows(session, SyncChange, pending)
    finally:
        del session.info[CHANGES]


def high_water(session: Session) -> int:
    """The last change seq taken: by this transaction's entries not written yet, else as stored."""
    log: _PendingLog | None = session.info.get(CHANGES)
    if log is not None:
        return log.next_seq - 1
    server = session.get(SyncServer, 1)
    return (server.next_change_seq - 1) if server else 0


def _append_change(
    session: Session,
    kind: str,
    key: str,
    *,
    op_id: str | None,
    desk_id: str,
    now: datetime,
    event: dict[str, Any] | None = None,
) -> int:
    """Take the next global sequence number for an entry about (``kind``, ``key``), written when the
    enclosing ``_publishing`` block ends."""
    log: _PendingLog = session.info[CHANGES]
    seq = log.next_seq
    log.next_seq += 1
    log.entries.append(
        {
            "seq": seq,
            "kind": kind,
            "key": key,
            "event": canonical_json(event) if event else "",
            "op_id": op_id,
            "desk_id": desk_id,
            "at": now,
        }
    )
    return seq


def _record_fields(
    session: Session, args: dict[str, Any], order_no: str, *, seq: int, desk_id: str, user: str
) -> None:
    """Remember who last set which order field, at which change seq: an edit (``edit_order``) or an approved
    change request (``decide_change``) names the fields it set as ``changes``. A later edit from another desk
    based on an older seq is then a conflict (``_check_edit``)."""
    for name, value in (args.get("changes") or {}).items():
        row = session.get(SyncFieldChange, (order_no, name)) or SyncFieldChange(
            order_no=order_no, field=name, seq=seq
        )
        row.seq, row.desk_id, row.user_name, row.value = seq, desk_id, user, canonical_json(value)
        session.add(row)


# Kinds in the order a publish appends and a pull applies them (parents first); other areas add theirs.
KIND_ORDER = {"user": 0, "customer": 1, "product": 2, "order": 3, "note": 4}
# Kinds whose entities never change once added (a note): their images carry no ``AS_OF``, and a desk keeps no
# seq for each (applying one again changes nothing).
IMMUTABLE_KINDS = frozenset({"note"})


def _publish(
    session: Session,
    touched: Iterable[tuple[str, str]],
    *,
    op_id: str | None,
    desk_id: str,
    now: datetime,
    event: dict[str, Any] | None = None,
) -> int | None:
    """Append the images of ``touched``; the op's event (what was done, by whom, via which desk) rides on
    the entry of its order, or else on the first entry, so every desk's timeline shows it once."""
    last = None
    ordered = sorted(set(touched), key=lambda t: (KIND_ORDER.get(t[0], 9), t[1]))
    carrier = next((t for t in ordered if event and t == ("order", event.get("order_no"))), None)
    carrier = carrier or next((t for t in ordered if t[0] in DUMPERS), None)
    for kind, key in ordered:
        if kind in DUMPERS:
            ev = event if (kind, key) == carrier else None
            last = _append_change(session, kind, key, op_id=op_id, desk_id=desk_id, now=now, event=ev)
    return last


def _event(
    command: str, user: str, order_no: str, args: dict[str, Any], at: datetime | str, desk_id: str, code: str
) -> dict[str, Any]:
    return {
        "command": command,
        "user": user,
        "order_no": order_no,
        "detail": args,
        "at": _jsonable(at),
        "desk_id": desk_id,
        "desk_code": code,
    }


def _stored(row: Mapping[str, Any], session: Session, decided_at: str | None = None) -> OpResult:
    """The outcome a decided op's ``sync_op`` row holds (as a desk is told it, every time it asks);
    ``decided_at``: its time as JSON, when the caller has it already."""
    result = OpResult(
        row["op_id"],
        row["seq"],
        row["status"],
        row["code"],
        json.loads(row["reason"]) if row["reason"] else None,
        row["change_seq"],
        _jsonable(row["decided_at"]) if decided_at is None else decided_at,
    )
    if row["status"] == "rejected":
        result.refresh = _refresh(session, row["command"], json.loads(row["args"] or "{}"), row["order_no"])
    return result


def _refresh(session: Session, command: str, args: dict[str, Any], order_no: str) -> list[dict[str, Any]]:
    """The server's current images of what a rejected op touched, so the desk can drop its own effect."""
    high = high_water(session)
    out = []
    for kind, key in touches_of(command, args, order_no):
        if kind in DUMPERS:
            out.append({"seq": high, "kind": kind, "key": key, "image": DUMPERS[kind](session, key)})
    return out


@dataclass
class _Group:
    """What the ops decided in one transaction share: the desk's stream, the ops already stored (fetched
    once for the whole group, then each decided op added) and the orders whose creation from this desk was
    rejected (an op on one of them is rejected too, ``_cascade``)."""

    desk_id: str
    epoch: int
    stream: SyncStream | None
    stored: dict[str, Mapping[str, Any]]  # op id -> its ``sync_op`` row
    failed_creates: set[str]
    tracker: ChangeTracker
    last_seq: int = 0  # the stream's last decided seq, written to it once when the group ends
    # outcomes not yet written (``write_decided``)
    decided: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def load(cls, session: Session, desk_id: str, epoch: int, ops: list[OpIn]) -> _Group:
        table = SyncOp.__table__  # type: ignore[attr-defined]
        stored = {
            row.op_id: row._mapping
            for row in rows_in(
                session, lambda c: select(*table.c).where(table.c.op_id.in_(c)), [op.op_id for op in ops]
            )
        }
        failed = set(
            rows_in(
                session,
                lambda c: select(SyncOp.order_no).where(
                    SyncOp.desk_id == desk_id,
                    SyncOp.command == "create_order",
                    SyncOp.status == "rejected",
                    col(SyncOp.order_no).in_(c),
                ),
                [op.order_no for op in ops if op.order_no],
            )
        )
        stream = session.get(SyncStream, (desk_id, epoch))
        last = stream.last_seq if stream else 0
        group = cls(desk_id, epoch, stream, stored, failed, ChangeTracker(session), last)
        session.info[GROUP] = group
        return group

    def keep(self, row: dict[str, Any]) -> None:
        """Take a decided op's outcome row (written with the others by ``write_decided``)."""
        self.last_seq = row["seq"]
        self.decided.append(row)
        self.stored[row["op_id"]] = row

    def close(self, session: Session, now: datetime) -> None:
        """Write what the group decided: its outcomes, where the desk's stream now stands, and when the desk
        was last seen (``orderdesk server desks``)."""
        self.tracker.close()
        write_decided(session)
        if self.stream is not None and self.stream.last_seq != self.last_seq:
            self.stream.last_seq = self.last_seq
            session.add(self.stream)
        desk = session.get(SyncDesk, self.desk_id)
        if desk is not None:
            desk.last_seen_at = now
            session.add(desk)
        del session.info[GROUP]


GROUP = "decide_group"  # Session.info key: the ``_Group`` being decided in this transaction


def write_decided(session: Session) -> None:
    """Write the outcomes decided so far in this transaction, set-based (``ops_of`` reads after it)."""
    group: _Group | None = session.info.get(GROUP)
    if group is None or not group.decided:
        return
    insert_rows(session, SyncOp, group.decided)
    group.decided.clear()


def ops_of(session: Session, desk_id: str, command: str, order_no: str) -> list[SyncOp]:
    """A desk's decided ops of ``command`` on an order, those decided earlier in this transaction too."""
    write_decided(session)
    return list(
        session.exec(
            select(SyncOp).where(
                SyncOp.desk_id == desk_id, SyncOp.command == command, SyncOp.order_no == order_no
            )
        ).all()
    )


def decide_ops(
    store: Store,
    desk_id: str,
    epoch: int,
    ops: list[OpIn],
    *,
    limit: int = OPS_PER_COMMIT,
    budget_s: float = COMMIT_BUDGET_S,
) -> tuple[list[OpResult], SyncError | None]:
    """Decide the first of ``ops`` in order in one transaction (group commit): at most ``limit``, and no more
    once ``budget_s`` has passed, so one desk never holds the writer long. An op's effect, its outcome and its
    change-log entries are written in the same transaction, so they stand or fall together. A protocol error
    (``SyncError``, raised before the op writes anything) stops the batch: the ops before it stand and are
    returned with it. Any other failure (the database locked, the disk full) rolls the whole transaction back
    and propagates: none of it stands, and the desk sends the ops again.

    Consecutive new ops of a command with a set-based replay (``Replay.many``: notes, scans) are replayed
    together; each still gets its own outcome, change-log entry and audit record.
    """
    results: list[OpResult] = []
    publish_local_changes(store)  # commands run on the central API itself came first: they count first
    deadline = time.monotonic() + budget_s
    batch = ops[:limit]
    error: SyncError | None = None
    with store.write() as session, _publishing(session):
        group = _Group.load(session, desk_id, epoch, batch)
        run: dict[str, OpIn] = {}  # admitted new ops of one set-based command, by op id, not replayed yet
        for op in batch:
            if (results or run) and time.monotonic() > deadline:
                break
            if op.op_id in run:  # the same op twice in one push: the second copy gets the first's outcome
                results += _decide_run(store, session, list(run.values()), group)
                run = {}
            try:
                admitted = _admit(op, desk_id, group, ahead=len(run))
            except SyncError as exc:
                error = exc
                break
            joins = isinstance(admitted, Replay) and admitted.many is not None
            if run and (not joins or op.command != next(iter(run.values())).command):
                results += _decide_run(store, session, list(run.values()), group)
                run = {}
            if joins:
                run[op.op_id] = op
            elif isinstance(admitted, Replay):
                results.append(_decide_one(store, session, op, admitted, group))
            else:
                if group.stream is not None and op.seq == group.last_seq + 1:
                    group.last_seq = op.seq  # an op renumbered into a new epoch after a re-key
                results.append(_stored(admitted, session))
        if run:
            results += _decide_run(store, session, list(run.values()), group)
        _close_packing(store)
        group.close(session, store.clock())
    return results, error


def _admit(op: OpIn, desk_id: str, group: _Group, *, ahead: int = 0) -> Mapping[str, Any] | Replay:
    """The stored outcome of a retried op, or how to replay a new one (``ahead``: admitted ops before it
    not decided yet).

    Raises ``SyncError`` (nothing written) for a hash mismatch, a sequence gap or reuse, or an unknown command.
    """
    existing = group.stored.get(op.op_id)
    if existing is not None:
        if existing["payload_hash"] != op.payload_hash or existing["desk_id"] != desk_id:
            raise SyncError(
                msg("Op {op_id} was already received with different content.", op_id=op.op_id),
                code="op_conflict",
            )
        return existing
    if payload_hash(op.command, op.args, op.base_version, op.user_name) != op.payload_hash:
        raise SyncError(
            msg("Op {op_id} does not match its hash; it was damaged on the way.", op_id=op.op_id),
            code="bad_hash",
        )
    if group.stream is None:
        raise SyncError(msg("This desk has no epoch {epoch}.", epoch=group.epoch), code="unknown_epoch")
    expected = group.last_seq + 1 + ahead
    if op.seq != expected:
        code = "seq_taken" if op.seq < expected else "seq_gap"
        raise SyncError(
            msg(
                "Op {seq} of epoch {epoch} is out of order: the central API expects op {expected}.",
                seq=op.seq,
                epoch=group.epoch,
                expected=expected,
            ),
            code=code,
            expected_seq=expected,
        )
    replay = REPLAYS.get(op.command)
    if replay is None:
        raise SyncError(
            msg(
                "The central API does not know the command {command}; upgrade it. The op stays queued.",
                command=op.command,
            ),
            code="unknown_command",
        )
    return replay


def _context(desk_id: str, op: OpIn) -> OpContext:
    return OpContext(desk_id, op.command, op.args, op.order_no, op.user_name, op.seen_seq, op.op_id)


def _attempt(
    session: Session, ops: list[OpIn], desk_id: str, replay_it: Callable[[], object]
) -> Refused | None:
    """Run ``replay_it`` (replaying ``ops``) in a savepoint as the central API (no outbox copy): ``None`` if
    it stood, else why it was refused, with everything it wrote rolled back. A failure that would repeat every
    time (malformed arguments, a constraint of the database) is a refusal too; anything else (the database
    locked, the disk full) propagates."""
    savepoint = _StationSavepoint(session)
    session.info[REPLAYING] = True  # the server is nobody's desk: its commands keep no outbox copy
    rejection: Refused | None = None
    try:
        replay_it()
        savepoint.commit()
    except Refused as exc:
        savepoint.rollback()
        rejection = exc
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        savepoint.rollback()
        rejection = Refused(
            msg("The op's arguments are malformed: {detail}", detail=f"{type(exc).__name__}: {exc}"),
            code="malformed_op",
        )
    except (IntegrityError, DataError) as exc:
        # The same op would fail the same way every time: rejected (a person sees why), not retried.
        savepoint.rollback()
        what = (
            f"op {ops[0].op_id}"
            if len(ops) == 1
            else f"{len(ops)} ops from {ops[0].op_id}, replayed together,"
        )
        logger.warning("%s (%s) from desk %s refused by the database: %s", what, ops[0].command, desk_id, exc)
        rejection = Refused(
            msg(
                "The central API's database refused this change ({detail}); it was not applied. Tell "
                "whoever runs the central API.",
                detail=str(exc.orig).splitlines()[0] if exc.orig is not None else type(exc).__name__,
            ),
            code="server_refused",
        )
    finally:
        del session.info[REPLAYING]
    return rejection


class _StationSavepoint:
    """A savepoint whose rollback also puts back the station a replay had open (``PACKING``): what the
    rolled-back ops opened or closed there is undone with them."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.station = session.info.get(PACKING)
        self.savepoint = session.begin_nested()

    def commit(self) -> None:
        self.savepoint.commit()

    def rollback(self) -> None:
        self.savepoint.rollback()
        self.session.info[PACKING] = self.station


def _decide_one(store: Store, session: Session, op: OpIn, replay: Replay, group: _Group) -> OpResult:
    """Replay one new op (admitted by ``_admit``) and keep its outcome."""
    ctx = _context(group.desk_id, op)
    rejection = _cascade(ctx, group.failed_creates)
    if rejection is None and replay.check is not None:
        rejection = replay.check(store, session, ctx)
    touched: set[tuple[str, str]] = set()
    if rejection is None:
        if replay.run is not None:
            call = partial(replay.run, store, op.args, op.user_name)
        else:
            assert replay.run_op is not None
            call = partial(replay.run_op, store, ctx)
        group.tracker.take()  # what ran before this op (a station closed) is not this op's change
        rejection = _attempt(session, [op], group.desk_id, call)
        touched = group.tracker.take()
    return _conclude(store, session, op, group, rejection, touched)


def _decide_run(store: Store, session: Session, ops: list[OpIn], group: _Group) -> list[OpResult]:
    """Replay consecutive new ops of one command set-based (``Replay.many``), each with its own outcome. If
    the set-based replay fails as a whole, the ops are replayed one at a time, so only the op at fault is
    refused."""
    replay = REPLAYS[ops[0].command]
    assert replay.many is not None
    many = replay.many
    ctxs = [_context(group.desk_id, op) for op in ops]
    cascaded = [_cascade(ctx, group.failed_creates) for ctx in ctxs]
    todo = [ctx for ctx, refused in zip(ctxs, cascaded, strict=True) if refused is None]
    got: list[list[tuple[str, str]] | Refused] = []
    group.tracker.take()  # what ran before this run (a station closed) is not its change
    failed = _attempt(session, ops, group.desk_id, lambda: got.extend(many(store, todo)) if todo else None)
    tracked = group.tracker.take()  # what the run changed through the ORM, published with each applied op
    if failed is not None:
        if len(ops) > 1:
            return [result for op in ops for result in _decide_run(store, session, [op], group)]
        got = [failed]
    elif len(got) != len(todo):
        raise RuntimeError(f"the set-based replay of {ops[0].command} answered {len(got)} of {len(todo)} ops")
    outcomes = iter(got)
    results = []
    for op, refused in zip(ops, cascaded, strict=True):
        outcome = refused or next(outcomes)
        if isinstance(outcome, Refused):
            results.append(_conclude(store, session, op, group, outcome, set()))
        else:
            results.append(_conclude(store, session, op, group, None, set(outcome) | tracked))
    return results


def _conclude(
    store: Store,
    session: Session,
    op: OpIn,
    group: _Group,
    rejection: Refused | None,
    touched: set[tuple[str, str]],
) -> OpResult:
    """Keep a replayed op's outcome; an applied op's changes go to the change log with it."""
    now = store.clock()
    at = _jsonable(now)  # as the desk is told it, in the outcome and in the event
    row: dict[str, Any] = {
        "op_id": op.op_id,
        "desk_id": group.desk_id,
        "epoch": group.epoch,
        "seq": op.seq,
        "payload_hash": op.payload_hash,
        "command": op.command,
        "order_no": op.order_no,
        "user_name": op.user_name,
        "args": canonical_json(op.args),
        "status": "rejected" if rejection else "applied",
        "code": rejection.code if rejection else "",
        "reason": canonical_json(rejection.message.to_json()) if rejection else "",
        "change_seq": None,
        "decided_at": now,
    }
    if rejection is None:
        assert group.stream is not None
        touched |= set(touches_of(op.command, op.args, op.order_no, op.op_id))
        event = _event(
            op.command, op.user_name, op.order_no, op.args, at, group.desk_id, group.stream.desk_code
        )
        row["change_seq"] = _publish(
            session, touched, op_id=op.op_id, desk_id=group.desk_id, now=now, event=event
        )
        if row["change_seq"] is not None:
            _record_fields(
                session, op.args, op.order_no, seq=row["change_seq"], desk_id=group.desk_id, user=op.user_name
            )
    elif op.command == "create_order":
        group.failed_creates.add(op.order_no)
    group.keep(row)
    return _stored(row, session, at)


def _cascade(op: OpContext, failed_creates: set[str]) -> Refused | None:
    """An op on an order whose creation (from the same desk) was rejected is rejected too: it was meant
    for the desk's own order, which the centre never accepted (e.g. a copied desk reused its number)."""
    if not op.order_no or op.command == "create_order" or op.order_no not in failed_creates:
        return None
    return Refused(
        msg(
            "Order {order_no} was never accepted by the central API (its creation was rejected), so this "
            "change to it was not applied.",
            order_no=op.order_no,
        ),
        code="create_rejected",
    )


def publish_local_changes(store: Store, *, batch: int = 1000) -> int:
    """Put commands run directly on the central API's own store (an admin adding a user there) into the
    change log, so desks receive them. Returns how many were published."""
    with store.read() as session:
        if session.exec(select(OutboxRecord.seq).limit(1)).first() is None:
            return 0
    published = 0
    while True:
        with store.write() as session, _publishing(session):
            rows = session.exec(select(OutboxRecord).order_by(col(OutboxRecord.seq)).limit(batch)).all()
            if not rows:
                return published
            now = store.clock()
            for r in rows:
                args = json.loads(r.args)
                event = _event(r.command, r.user_name, r.order_no, args, r.created_at, "", SERVER_DESK_CODE)
                seq = _publish(
                    session,
                    touches_of(r.command, args, r.order_no, r.op_id),
                    op_id=None,
                    desk_id="",
                    now=now,
                    event=event,
                )
                if seq is not None:
                    _record_fields(session, args, r.order_no, seq=seq, desk_id="", user=r.user_name)
                session.delete(r)
            published += len(rows)


# -- central API: the change log and snapshots -----------------------------------------------------------
@dataclass(frozen=True)
class ChangePage:
    """Entries as (seq, kind, key, image JSON or ``SAME_IMAGE``, event JSON or ""), the image and event as the
    UTF-8 bytes stored: the central API sends them as they are (``body``), never decoded and re-encoded."""

    raw: list[tuple[int, str, str, bytes, bytes]]
    high_water: int
    floor: int

    @property
    def entries(self) -> list[tuple[int, str, str, str, str]]:
        """The entries with their image and event as text (as ``apply_changes`` takes them)."""
        return [(s, k, key, img.decode(), ev.decode()) for s, k, key, img, ev in self.raw]

    @property
    def next_after(self) -> int | None:
        return self.raw[-1][0] if self.raw else None

    def body(self) -> bytes:
        """The page as the central API sends it (``ChangesResponse``), built from the stored bytes: decoding a
        megabyte of orders to text and encoding it back cost twice the rest of serving a page."""
        same = _quoted(SAME_IMAGE)
        kinds = {k: _quoted(k) for k in {entry[1] for entry in self.raw}}  # a handful
        entries = b",".join(
            b"[%d,%s,%s,%s,%s]"
            % (s, kinds[k], _quoted(key), same if img == _SAME_BYTES else img, ev or b"null")
            for s, k, key, img, ev in self.raw
        )
        return b'{"entries":[%s],"next_after":%s,"high_water":%d,"floor":%d}' % (
            entries,
            json.dumps(self.next_after).encode(),
            self.high_water,
            self.floor,
        )


_SAME_BYTES = SAME_IMAGE.encode()  # as ``_page`` reads it


def _quoted(text: str) -> bytes:
    return json.dumps(text).encode()


def _stored_bytes(session: Session, column: Any) -> Any:
    """``column`` (text) read as its UTF-8 bytes, not decoded: ``CAST AS BLOB`` on SQLite; ``convert_to`` on
    PostgreSQL, whose cast to ``bytea`` would read backslashes as escapes."""
    from sqlalchemy import LargeBinary, cast

    if session.get_bind().dialect.name == "postgresql":
        return func.convert_to(column, "UTF8", type_=LargeBinary)
    return cast(column, LargeBinary)


def refuse_desk_too_old() -> NoReturn:
    """A push or pull from a desk built before notes were entities of their own (migration 0008): it would
    read an order's image without ``_notes`` (pulled, or a rejected op's refresh) as an order without notes
    and drop them all, and its notes carry no op id to come back by. It keeps its ops until upgraded."""
    raise SyncError(
        msg(
            "This desk runs an older orderdesk than the central API and cannot sync with it. Upgrade "
            "orderdesk on this desk, then sync again; its unsent work is kept until then."
        ),
        code="desk_too_old",
        status=409,
    )


def changes_after(
    store: Store,
    after: int,
    *,
    limit: int = DEFAULT_PAGE,
    max_bytes: int = PAGE_BYTES,
) -> ChangePage:
    """Change-log entries with seq > ``after``, oldest first: at most ``limit``, and no more once they hold
    ``max_bytes`` characters of JSON (at least one), so a desk decodes a page in a few milliseconds whatever
    its orders hold. Writers commit one at a time in seq order (SQLite's single writer; ``pg_advisory_xact_lock`` on
    PostgreSQL), so no later entry is ever visible before an earlier one: paging by seq never skips one."""
    publish_local_changes(store)
    with store.read() as session:
        server = session.get(SyncServer, 1)
        floor = server.log_floor if server else 0
        high = high_water(session)
        if after < floor:
            raise CursorTooOld(
                msg(
                    "This desk last synced at change {after}, but the central API keeps changes only after "
                    "{floor}: the desk reloads a fresh snapshot (its unsent work is kept).",
                    after=after,
                    floor=floor,
                ),
                code="cursor_too_old",
                status=410,
                floor=floor,
            )
        return ChangePage(_page(session, after, max(1, min(limit, 10_000)), max_bytes), high, floor)


def _page(
    session: Session, after: int, limit: int, max_bytes: int
) -> list[tuple[int, str, str, bytes, bytes]]:
    """The entries after ``after``: at most ``limit``, no more once they hold ``max_bytes`` (one at least),
    read in chunks, so a page of large orders stops reading at its budget."""
    entries: list[tuple[int, str, str, bytes, bytes]] = []
    size, last = 0, after
    statement = (
        select(
            SyncChange.seq,
            SyncChange.kind,
            SyncChange.key,
            _stored_bytes(session, SyncChange.image),
            _stored_bytes(session, SyncChange.event),
        )
        .where(col(SyncChange.seq) > bindparam("last"))
        .order_by(col(SyncChange.seq))
        .limit(bindparam("chunk"))
    )
    while len(entries) < limit:
        rows = execute_core(
            session, statement, {"last": last, "chunk": min(PAGE_CHUNK, limit - len(entries))}
        ).all()
        for s, k, key, img, ev in rows:
            seq = int(s)
            size += len(img) + len(ev)
            if entries and size > max_bytes:
                return entries
            entries.append((seq, k, key, img, ev))
            last = seq
        if len(rows) < PAGE_CHUNK:
            break
    return entries


def prune_change_log(store: Store, *, keep_after: int) -> int:
    """Drop change-log entries up to ``keep_after``; desks behind that re-bootstrap. Returns the new floor."""
    with store.write() as session:
        server = session.get(SyncServer, 1)
        assert server is not None
        floor = min(keep_after, server.next_change_seq - 1)
        session.exec(delete(SyncChange).where(col(SyncChange.seq) <= floor))  # type: ignore[call-overload]
        server.log_floor = max(server.log_floor, floor)
        session.add(server)
        return server.log_floor


@dataclass(frozen=True)
class TableSpec:
    """A table a snapshot carries: its natural key, and its foreign keys as (parent table, parent's key)."""

    table: str
    key: tuple[str, ...]
    refs: dict[str, tuple[str, str]] = field(default_factory=dict)
    keep_if_empty: tuple[str, ...] = ()  # desk-local values an empty server value never overwrites
    local_only: tuple[str, ...] = ()  # columns the snapshot never sets on a desk


# In parent-before-child order. Another area's table joins with one line here.
SNAPSHOT_TABLES: list[TableSpec] = [
    TableSpec(
        "app_user", ("name",), keep_if_empty=("pin_hash",), local_only=("failed_logins", "locked_until")
    ),
    TableSpec("user_role", ("user_id", "role"), {"user_id": ("app_user", "name")}),
    TableSpec("customer", ("code",)),
    TableSpec("product", ("sku",)),
    TableSpec("productbarcode", ("code",), {"product_id": ("product", "sku")}),
    TableSpec(
        "sales_order",
        ("order_no",),
        {
            "customer_id": ("customer", "code"),
            "owner_id": ("app_user", "name"),
            "inspector_id": ("app_user", "name"),
        },
    ),
    TableSpec(
        "order_line",
        ("order_id", "line_no"),
        {"order_id": ("sales_order", "order_no"), "product_id": ("product", "sku")},
    ),
]
# Child rows without a natural key: replaced wholesale for the parents in the snapshot.
SNAPSHOT_REPLACED: list[TableSpec] = [TableSpec("order_note", (), {"order_id": ("sales_order", "order_no")})]
SNAPSHOT_META = "snapshot_meta"


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return sqlite_time(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool):
        return int(value)
    return value


def write_snapshot(store: Store, dest: Path) -> int:
    """Write a consistent copy of the business tables to a new SQLite file; returns the change seq it is
    consistent with (every entry up to it is in the copy, none after)."""
    publish_local_changes(store)
    dest = Path(dest)
    dest.unlink(missing_ok=True)
    tables = [t.table for t in [*SNAPSHOT_TABLES, *SNAPSHOT_REPLACED]]
    if store.url is None:
        con = sqlite3.connect(store.path, isolation_level=None, timeout=30)
        try:
            con.execute("ATTACH DATABASE ? AS snap", (str(dest),))
            con.execute("BEGIN")
            seq = int(con.execute("SELECT next_change_seq - 1 FROM main.sync_server").fetchone()[0])
            for t in tables:
                con.execute(f'CREATE TABLE snap."{t}" AS SELECT * FROM main."{t}"')
            con.execute(f"CREATE TABLE snap.{SNAPSHOT_META} (seq INTEGER, created_at TEXT)")
            con.execute(f"INSERT INTO snap.{SNAPSHOT_META} VALUES (?, ?)", (seq, _jsonable(store.clock())))
            con.execute("COMMIT")
            con.execute("DETACH DATABASE snap")
        finally:
            con.close()
        return seq
    return _write_snapshot_pg(store, dest, tables)


def _write_snapshot_pg(store: Store, dest: Path, tables: list[str]) -> int:
    from sqlalchemy import select as core_select
    from sqlalchemy import text

    out = sqlite3.connect(dest, isolation_level=None)
    try:
        out.execute("PRAGMA journal_mode = OFF")
        out.execute("PRAGMA synchronous = OFF")
        out.execute("BEGIN")
        with store.engine.connect() as conn:
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                seq = int(conn.execute(text("SELECT next_change_seq - 1 FROM sync_server")).scalar_one())
                for t in tables:
                    table = SQLModel.metadata.tables[t]
                    names = [c.name for c in table.columns]
                    out.execute(f'CREATE TABLE "{t}" ({", ".join(names)})')
                    insert = f'INSERT INTO "{t}" VALUES ({", ".join("?" * len(names))})'
                    result = conn.execution_options(stream_results=True, yield_per=20_000).execute(
                        core_select(table)
                    )
                    for chunk in result.partitions(20_000):
                        out.executemany(insert, [tuple(_sqlite_value(v) for v in r) for r in chunk])
        out.execute(f"CREATE TABLE {SNAPSHOT_META} (seq INTEGER, created_at TEXT)")
        out.execute(f"INSERT INTO {SNAPSHOT_META} VALUES (?, ?)", (seq, _jsonable(store.clock())))
        out.execute("COMMIT")
    finally:
        out.close()
    return seq


# -- desk: enrolment and bookkeeping ---------------------------------------------------------------------
def _refuse_if_not_enrollable(session: Session) -> None:
    if session.get(SyncLink, 1) is not None:
        raise Refused(msg("This desk is already enrolled with a central API."), code="already_enrolled")
    pending = session.exec(select(func.count()).select_from(OutboxRecord)).one()
    orders = session.exec(select(func.count()).select_from(SalesOrder)).one()
    if pending or orders:
        raise Refused(
            msg(
                "This desk file already has its own data ({orders} orders, {pending} changes not on any "
                "server). Enrol a new desk file: `orderdesk --db NEW.db desk enrol …`.",
                orders=orders,
                pending=pending,
            ),
            code="desk_not_empty",
        )


def check_enrollable(store: Store) -> None:
    """Refuse before contacting the server (which would use up the one-time code) if enrolment would fail."""
    with store.read() as session:
        _refuse_if_not_enrollable(session)


def link_desk(store: Store, *, server_url: str, enrolment: Enrolment) -> None:
    """Give this desk the identity the central API assigned, ready for its first bootstrap. Refused for a
    desk that already holds orders or unsent work (enrol a new desk file instead)."""
    with store.write() as session:
        _refuse_if_not_enrollable(session)
        desk = session.get(Desk, 1)
        assert desk is not None
        desk.desk_id, desk.desk_code, desk.epoch = enrolment.desk_id, enrolment.desk_code, enrolment.epoch
        desk.next_seq, desk.next_order_no = 1, 1
        session.add(desk)
        session.add(
            SyncLink(
                server_url=server_url.rstrip("/"),
                server_id=enrolment.server_id,
                token=enrolment.token,
                enrolled_at=store.clock(),
            )
        )


def get_link(store: Store) -> SyncLink | None:
    with store.read() as session:
        return session.get(SyncLink, 1)


def adopt_epoch(store: Store, *, epoch: int, desk_code: str) -> int:
    """After a re-key: renumber the unsent ops into the new epoch from 1 and number new orders with the new
    code. Returns how many ops were renumbered."""
    with store.write() as session:
        desk = session.get(Desk, 1)
        assert desk is not None
        rows = session.exec(select(OutboxRecord).order_by(col(OutboxRecord.seq))).all()
        conn = session.connection()
        conn.exec_driver_sql("UPDATE outbox SET seq = -seq")
        for n, r in enumerate(rows, start=1):
            conn.exec_driver_sql("UPDATE outbox SET seq = ?, epoch = ? WHERE seq = ?", (n, epoch, -r.seq))
        session.expire_all()
        desk = session.get(Desk, 1)
        assert desk is not None
        desk.epoch, desk.desk_code, desk.next_seq, desk.next_order_no = epoch, desk_code, len(rows) + 1, 1
        session.add(desk)
        return len(rows)


def pending_ops(store: Store, *, limit: int = 200, after: int = 0) -> tuple[str, int, list[OpIn]]:
    """The oldest unsent ops (desk id, epoch, ops), those after seq ``after`` (a batch still on its way),
    each with the change seq of the server image its order was at on this desk, which the central API uses to
    spot an edit based on a stale version."""
    with store.read() as session:  # raw SQLite: a push reads a thousand ops at a time
        conn = _raw(session)
        desk_id, epoch = conn.execute("SELECT desk_id, epoch FROM desk WHERE id = 1").fetchone()
        link = conn.execute("SELECT snapshot_seq FROM sync_link WHERE id = 1").fetchone()
        floor = int(link[0]) if link else 0
        rows = conn.execute(
            "SELECT op_id, seq, command, args, order_no, base_version, payload_hash, user_name FROM outbox "
            "WHERE seq > ? AND epoch = ? ORDER BY seq LIMIT ?",
            (after, epoch, limit),
        ).fetchall()
        seen: dict[str, int] = dict(
            _keyed(
                conn,
                "SELECT key, seq FROM sync_entity WHERE kind = 'order' AND key IN ({marks})",
                (),
                sorted({r[4] for r in rows if r[4]}),
            )
        )
        ops = [
            OpIn(
                op_id=op_id,
                seq=seq,
                command=command,
                args=json.loads(args),
                order_no=order_no,
                base_version=base_version,
                payload_hash=payload_hash,
                user_name=user_name,
                seen_seq=max(seen.get(order_no, 0), floor),
            )
            for op_id, seq, command, args, order_no, base_version, payload_hash, user_name in rows
        ]
        return desk_id, epoch, ops


def outbox_count(store: Store) -> int:
    with store.read() as session:
        return int(session.exec(select(func.count()).select_from(OutboxRecord)).one())


def record_outcomes(store: Store, results: list[dict[str, Any]]) -> int:
    """Store the server's decisions and drop the decided ops from the outbox, in one transaction.
    Idempotent: an outcome for an op no longer in the outbox is ignored. Returns how many were new."""
    if not results:
        return 0
    # Refetchable: if a power cut undoes this, the ops are back in the outbox and a push gets the same outcomes.
    with store.write(refetchable=True) as session:  # raw SQLite, as a pull: a thousand outcomes at a time
        conn = _raw(session)
        queued = {
            row[0]: row
            for row in _keyed(
                conn,
                "SELECT op_id, seq, epoch, command, order_no, user_name, args, created_at FROM outbox "
                "WHERE op_id IN ({marks})",
                (),
                [res["op_id"] for res in results],
            )
        }
        decided = [(queued.pop(res["op_id"]), res) for res in results if res["op_id"] in queued]
        now = store.clock()
        insert_values(
            conn,
            "INSERT INTO sync_outcome (op_id, seq, epoch, command, order_no, user_name, args, created_at, "
            "status, code, reason, decided_at, resolved_at, resolved_by, resolution)",
            rows=[
                (
                    *row,
                    res["status"],
                    res.get("code") or "",
                    canonical_json(res["reason"]) if res.get("reason") else "",
                    _sqlite_value(_parse_time(res.get("decided_at")) or now),
                    None,
                    "",
                    "",
                )
                for row, res in decided
            ],
        )
        for chunk in iter_chunks([row[0] for row, _ in decided]):
            conn.execute(f"DELETE FROM outbox WHERE op_id IN ({', '.join('?' * len(chunk))})", chunk)
        # What a rejected op added here (its note) never existed at the centre: it goes.
        dropped: dict[str, list[tuple[str, None]]] = {}
        for row, res in decided:
            adds = REPLAYS[row[3]].adds if row[3] in REPLAYS else None
            if adds and res["status"] == "rejected":
                dropped.setdefault(adds, []).append((row[0], None))
        for kind, gone in dropped.items():
            _apply_kind(conn, kind, gone)
        # Usually nothing is deferred: then there is nothing to drop or apply (and the outbox, perhaps
        # thousands of ops long, is not read).
        deferred = conn.execute("SELECT 1 FROM sync_deferred LIMIT 1").fetchone() is not None
        for (_, _, _, command, order_no, _, args, _), res in decided:
            if deferred and res["status"] == "applied" and res.get("change_seq"):
                # A server image older than this op's own change is already out of date here: the desk
                # shows the op's effect, and the pull brings the image with it.
                for kind, key in touches_of(command, json.loads(args), order_no):
                    conn.execute(
                        "DELETE FROM sync_deferred WHERE kind = ? AND key = ? AND seq < ?",
                        (kind, key, int(res["change_seq"])),
                    )
            for entry in res.get("refresh") or []:
                _defer(conn, entry["kind"], entry["key"], int(entry["seq"]), canonical_json(entry["image"]))
                deferred = True
        if deferred:
            _fresh_lookups()
            _apply_deferred(conn, _pending_entities(conn))
    return len(decided)


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    return as_utc(datetime.fromisoformat(text))


def _raw(session: Session) -> sqlite3.Connection:
    """The desk's sqlite3 connection inside the session's transaction (fast path for applying images)."""
    return session.connection().connection.driver_connection  # type: ignore[return-value]


def _pending_entities(conn: sqlite3.Connection) -> set[tuple[str, str]]:
    out: set[tuple[str, str]] = set()
    for command, args, order_no in conn.execute("SELECT command, args, order_no FROM outbox"):
        try:
            parsed = json.loads(args)
        except ValueError:
            parsed = {}
        out.update(touches_of(command, parsed, order_no))
    return out


def _as_of(seq: int, image: dict[str, Any] | None) -> int:
    """The change seq an image (from the entry with ``seq``) is the state as of."""
    return max(seq, int(image.get(AS_OF, 0))) if image else seq


def _defer(conn: sqlite3.Connection, kind: str, key: str, seq: int, image: str) -> None:
    conn.execute(
        "INSERT INTO sync_deferred (kind, key, seq, image) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (kind, key) DO UPDATE SET seq = excluded.seq, image = excluded.image "
        "WHERE excluded.seq >= sync_deferred.seq",
        (kind, key, seq, image),
    )


def _apply_deferred(conn: sqlite3.Connection, pending: set[tuple[str, str]]) -> None:
    rows = conn.execute("SELECT seq, kind, key, image FROM sync_deferred").fetchall()
    ready = [r for r in rows if (r[1], r[2]) not in pending]
    _apply_images(conn, ready, as_of=True)
    conn.executemany(
        "DELETE FROM sync_deferred WHERE kind = ? AND key = ?", [(k, key) for _, k, key, _ in ready]
    )


def apply_changes(store: Store, entries: list[tuple[Any, ...]], *, next_cursor: int) -> int:
    """Apply a page of change-log entries (seq, kind, key, image[, event]) and advance the cursor, in one
    transaction. An entity is brought to an image only if the image is newer than what it has; one with
    unsent ops waits (deferred). Another desk's event is added to this desk's audit trail, so the order's
    timeline shows it. Applying the same page twice changes nothing. Returns how many entities changed.

    Images are whole states, so only an entity's newest image in the page is applied, and a page is applied
    kind by kind in set-based statements (users, customers and products before the orders that name them).
    """
    with store.write(refetchable=True) as session:  # a power cut undoing it moves the cursor back with it
        conn = _raw(session)
        link = conn.execute("SELECT cursor FROM sync_link WHERE id = 1").fetchone()
        if link is None:
            raise Refused(msg("This desk is not enrolled with a central API."), code="not_enrolled")
        me = conn.execute("SELECT desk_id FROM desk WHERE id = 1").fetchone()[0]
        _fresh_lookups()
        pending = _pending_entities(conn)
        events = []
        newest: dict[tuple[str, str], tuple[int, Any]] = {}
        for seq, kind, key, image, *rest in entries:
            if seq <= link[0]:
                continue
            event = rest[0] if rest else None
            if event:
                event = json.loads(event) if isinstance(event, str) else event
                if event.get("desk_id") != me:
                    events.append(event)
            if image == SAME_IMAGE:  # the image came with an earlier entry of its transaction
                continue
            if (kind, key) in pending:
                # kept as canonical JSON (as sent when it came as text); decoded only for the seq it is as of
                text = image if isinstance(image, str) else canonical_json(image)
                decoded = json.loads(image) if isinstance(image, str) else image
                _defer(conn, kind, key, _as_of(seq, decoded), text)
                continue
            newest[(kind, key)] = (seq, image)
        changed = _apply_images(
            conn, [(seq, kind, key, image) for (kind, key), (seq, image) in newest.items()]
        )
        _append_audit(session, events)
        conn.execute("UPDATE sync_link SET cursor = max(cursor, ?) WHERE id = 1", (next_cursor,))
    return changed


def _append_audit(session: Session, events: list[dict[str, Any]]) -> None:
    """Chain other desks' events onto this desk's audit trail."""
    from orderdesk import audit

    audit.append_many(
        session,
        [
            audit.Entry(
                datetime.fromisoformat(ev["at"]),
                ev.get("user", ""),
                ev.get("order_no", ""),
                ev.get("command", ""),
                {**(ev.get("detail") or {}), "via": ev.get("desk_code") or "HQ"},
            )
            for ev in events
        ],
    )


# -- desk: applying an image (raw SQLite: this runs for every pulled change) -----------------------------
class _Columns(NamedTuple):
    """A table's column names, and which of them hold date-times and which booleans (from the models)."""

    names: tuple[str, ...]
    times: frozenset[str]
    bools: frozenset[str]


@cache
def _table_columns(table: str) -> _Columns:
    t = SQLModel.metadata.tables[table]
    return _Columns(
        tuple(c.name for c in t.columns),
        frozenset(
            c.name
            for c in t.columns
            if isinstance(c.type, DateTime)
            or getattr(c.type, "impl", None) is DateTime
            or type(c.type).__name__ == "UTCDateTime"
        ),
        frozenset(c.name for c in t.columns if isinstance(c.type, Boolean)),
    )


def _to_sqlite(value: str | None) -> str | None:
    """An ISO date-time from an image as SQLite keeps it (as ``sqlite_time`` writes it)."""
    if value is None:
        return value
    return value[:10] + " " + value[11:26] if len(value) >= 26 else value.replace("T", " ")[:19]


def _keyed(
    conn: sqlite3.Connection, sql: str, fixed: tuple[Any, ...], keys: list[Any]
) -> list[tuple[Any, ...]]:
    """Rows of ``sql`` (ending in ``IN ({marks})``) for ``keys``, asked in chunks SQLite accepts."""
    rows: list[tuple[Any, ...]] = []
    for chunk in iter_chunks(keys):
        rows += conn.execute(sql.format(marks=", ".join("?" * len(chunk))), (*fixed, *chunk)).fetchall()
    return rows


def _entity_seqs(conn: sqlite3.Connection, kind: str, keys: list[str]) -> dict[str, int]:
    """The change seq each entity is at here: its last applied image, else the snapshot it came with."""
    cached = getattr(_lookups, "snapshot_seq", None)
    if cached is None:
        link = conn.execute("SELECT snapshot_seq FROM sync_link WHERE id = 1").fetchone()
        cached = _lookups.snapshot_seq = int(link[0]) if link else 0
    have = dict(
        _keyed(conn, "SELECT key, seq FROM sync_entity WHERE kind = ? AND key IN ({marks})", (kind,), keys)
    )
    return {key: int(have.get(key, cached)) for key in keys}


def _apply_images(
    conn: sqlite3.Connection, items: list[tuple[int, str, str, Any]], *, as_of: bool = False
) -> int:
    """Bring entities to images (seq, kind, key, image; one per entity) newer than what the desk has, kind
    by kind. ``as_of``: an image is the state "as of" its seq (a refresh after a rejection), so it also wins
    over an entry with that same seq. Returns how many entities changed."""
    by_kind: dict[str, list[tuple[int, str, Any]]] = {}
    for seq, kind, key, image in items:
        decoded = json.loads(image) if isinstance(image, str) else image
        by_kind.setdefault(kind, []).append((seq, key, decoded))
    changed = 0
    for kind in sorted(by_kind, key=lambda k: KIND_ORDER.get(k, 9)):
        group = by_kind[kind]
        if kind in IMMUTABLE_KINDS:  # applied as they come: one the desk has already changes nothing
            before = conn.total_changes
            _apply_kind(conn, kind, [(key, image) for _, key, image in group])
            changed += conn.total_changes - before
            continue
        have = _entity_seqs(conn, kind, [key for _, key, _ in group])
        # Compared by the seq an image is as of: the image on a transaction's first entry about an entity is
        # its state as of the last one, newer than an image the desk got in between (a rejected op's refresh).
        fresh: list[tuple[int, str, Any]] = []
        for seq, key, image in group:
            seq = _as_of(seq, image)
            if seq > have[key] or (as_of and seq == have[key]):
                fresh.append((seq, key, image))
        if not fresh:
            continue
        _apply_kind(conn, kind, [(key, image) for _, key, image in fresh])
        insert_values(
            conn,
            "INSERT INTO sync_entity (kind, key, seq)",
            "ON CONFLICT (kind, key) DO UPDATE SET seq = excluded.seq",
            rows=[(kind, key, seq) for seq, key, _ in fresh],
        )
        changed += len(fresh)
    return changed


def _apply_kind(conn: sqlite3.Connection, kind: str, items: list[tuple[str, Any]]) -> None:
    """Bring entities of one kind to their images (``None``: the entity is gone), set-based where the kind
    has a batch applier."""
    many = BATCH_APPLIERS.get(kind)
    if many is not None:
        many(conn, items)
    else:
        for key, image in items:
            APPLIERS[kind](conn, key, image)


@cache
def _upsert_sql(
    table: str,
    cols: tuple[str, ...],
    conflict: tuple[str, ...],
    keep_if_empty: tuple[str, ...],
    insert_only: tuple[str, ...],
) -> tuple[str, str]:
    """An upsert of one shape of row, as the part before ``VALUES`` and the part after the values."""
    sets = [
        f"{c} = CASE WHEN excluded.{c} != '' THEN excluded.{c} ELSE {table}.{c} END"
        if c in keep_if_empty
        else f"{c} = excluded.{c}"
        for c in cols
        if c not in conflict and c not in insert_only
    ] or [f"{conflict[0]} = excluded.{conflict[0]}"]  # DO NOTHING would return no id
    return (
        f'INSERT INTO "{table}" ({", ".join(cols)})',
        f"ON CONFLICT ({', '.join(conflict)}) DO UPDATE SET {', '.join(sets)}",
    )


def _row_values(
    table: str,
    image: dict[str, Any],
    extra: dict[str, Any] | None,
    skip: tuple[str, ...],
    local_only: tuple[str, ...],
) -> tuple[tuple[str, ...], list[Any]]:
    """The columns and SQLite values one row of ``table`` gets from ``image`` (see ``_upsert``)."""
    extra = extra or {}
    if local_only:
        extra = extra | {k: v for k, v in _local_defaults(table, local_only).items() if k not in extra}
    shape = _row_shape(table, tuple(image), skip, tuple(extra))
    return shape.columns, shape.values(image, extra)


@dataclass(frozen=True, slots=True)
class _Shape:
    """How to read one shape of image as a row: ``columns`` (the image's columns, then the extra ones), a
    getter of the image's columns, and which of them hold date-times and which booleans."""

    columns: tuple[str, ...]
    get: Callable[[dict[str, Any]], Any]
    times: tuple[int, ...]
    bools: tuple[int, ...]

    def values(self, image: dict[str, Any], extra: dict[str, Any]) -> list[Any]:
        """The row's values: the image's columns, then ``extra``'s values."""
        values = list(self.get(image))
        for i in self.times:
            values[i] = _to_sqlite(values[i])
        # As the driver's bool adapter would bind them, without its lookup and call (about 1 µs a value).
        for i in self.bools:
            if values[i] is True:
                values[i] = 1
            elif values[i] is False:
                values[i] = 0
        values += extra.values()
        return values


@cache
def _row_shape(table: str, keys: tuple[str, ...], skip: tuple[str, ...], extra: tuple[str, ...]) -> _Shape:
    """How to read an image with ``keys`` as a row of ``table``: which keys are columns to write, and which
    of those hold date-times and which booleans."""
    names, times, bools = _table_columns(table)
    # The image's own key objects (a decoder reuses them from image to image): looking a key up by the very
    # object it was stored under skips comparing the text: reading a row's columns costs half as much.
    own = {key: key for key in keys}
    cols = tuple(own[c] for c in names if c in own and c not in skip and c not in extra)
    # itemgetter of one key returns the value itself, not a tuple of one
    get = itemgetter(*cols) if len(cols) > 1 else (lambda image: tuple(image[c] for c in cols))
    return _Shape(
        cols + extra,
        get,
        tuple(i for i, c in enumerate(cols) if c in times),
        tuple(i for i, c in enumerate(cols) if c in bools),
    )


def _upsert(
    conn: sqlite3.Connection,
    table: str,
    image: dict[str, Any],
    conflict: tuple[str, ...],
    extra: dict[str, Any] | None = None,
    skip: tuple[str, ...] = ("id",),
    keep_if_empty: tuple[str, ...] = (),
    local_only: tuple[str, ...] = (),
) -> int | None:
    """Insert or update one row by its natural key; returns its local id. ``extra`` holds resolved foreign
    keys; ``local_only`` columns get their defaults on insert and are never overwritten."""
    cols, values = _row_values(table, image, extra, skip, local_only)
    absent, defaults = _absent(table, cols, skip)
    sql, returning = _upsert_one_sql(table, cols + absent, conflict, keep_if_empty, (*local_only, *absent))
    row = conn.execute(sql, [*values, *defaults]).fetchone()
    return int(row[0]) if returning and row else None


@cache
def _absent(
    table: str, cols: tuple[str, ...], skip: tuple[str, ...]
) -> tuple[tuple[str, ...], tuple[Any, ...]]:
    """The columns of ``table`` a row of ``cols`` leaves out (but for ``skip``), and their defaults: an image
    from a central API older than a column has no value for it. A new row gets the default (the column may
    be NOT NULL); a row the desk has keeps its own value."""
    left = tuple(c for c in _table_columns(table).names if c not in cols and c not in skip)
    defaults = tuple(_local_defaults(table, left).values())
    model = SQLModel.metadata.tables[table]
    needed = [c for c, d in zip(left, defaults, strict=True) if d is None and not model.c[c].nullable]
    if needed:
        raise StoreError(
            msg(
                "A change from the central API has no {columns} for {table}, which this desk needs: the "
                "central API runs an older orderdesk than this desk. Nothing was applied; upgrade the central "
                "API to this desk's version, then sync again.",
                columns=", ".join(needed),
                table=table,
            ),
            code="sync_image_incomplete",
        )
    return left, defaults


@cache
def _upsert_one_sql(table: str, cols: tuple[str, ...], *how: tuple[str, ...]) -> tuple[str, bool]:
    """``_upsert``'s statement for one row (``how``: as ``_upsert_sql`` takes it), returning the row's id if
    the table has one (and whether)."""
    head, tail = _upsert_sql(table, cols, *how)
    returning = "id" in _table_columns(table).names
    sql = f"{head} VALUES ({', '.join('?' * len(cols))}) {tail}"
    return (sql + " RETURNING id" if returning else sql), returning


def _upsert_many(
    conn: sqlite3.Connection,
    table: str,
    rows: list[tuple[dict[str, Any], dict[str, Any]]],
    conflict: tuple[str, ...],
    skip: tuple[str, ...] = ("id",),
    returning: str = "",
) -> list[tuple[Any, ...]]:
    """``_upsert`` for many (image, extra) rows at once, one statement per shape of row; returns the
    ``returning`` columns of each row upserted (in no particular order)."""
    shapes: dict[tuple[str, ...], list[list[Any]]] = {}
    seen: tuple[tuple[str, ...], tuple[str, ...]] | None = None
    for image, extra in rows:
        keys = (tuple(image), tuple(extra))
        if keys != seen:  # rarely: a page's images come from one version of the central API
            shape = _row_shape(table, keys[0], skip, keys[1])
            _, defaults = _absent(table, shape.columns, skip)
            batch = shapes.setdefault(shape.columns, [])
            seen = keys
        values = shape.values(image, extra)
        if defaults:
            values += defaults
        batch.append(values)
    out: list[tuple[Any, ...]] = []
    for cols, batch in shapes.items():
        absent, _ = _absent(table, cols, skip)
        head, tail = _upsert_sql(table, cols + absent, conflict, (), absent)
        out += insert_values(conn, head, f"{tail} RETURNING {returning}" if returning else tail, rows=batch)
    return out


# Per-transaction lookups (local ids of customers, products, users; the snapshot seq), so a page of
# thousands of orders does not ask for the same customer thousands of times. Cleared by ``_fresh_lookups``.
_lookups = threading.local()


def _fresh_lookups() -> None:
    _lookups.ids = {}
    _lookups.snapshot_seq = None


def _id_of(conn: sqlite3.Connection, table: str, column: str, value: Any) -> int | None:
    if value is None:
        return None
    cache: dict[tuple[str, Any], int] | None = getattr(_lookups, "ids", None)
    key = (table, value)
    if cache is not None and (found := cache.get(key)) is not None:
        return found
    row = conn.execute(f'SELECT id FROM "{table}" WHERE {column} = ?', (value,)).fetchone()
    if row is not None and cache is not None and table != "sales_order":
        cache[key] = int(row[0])
    if row is None:
        raise StoreError(
            msg(
                "A change from the central API refers to {table} {value}, which this desk does not have.",
                table=table,
                value=str(value),
            ),
            code="sync_missing_parent",
        )
    return int(row[0])


def _ids_of(
    conn: sqlite3.Connection, table: str, column: str, values: Iterable[Any]
) -> dict[Any, int | None]:
    """``_id_of`` each distinct value: a page of thousands of orders names a few customers and products."""
    return {value: _id_of(conn, table, column, value) for value in set(values)}


_ABSENT = object()  # a part the image leaves out (from a central API older than the part)


def _apply_orders(conn: sqlite3.Connection, items: list[tuple[str, dict[str, Any] | None]]) -> None:
    """Bring orders to their images (``None``: the central API has no such order), with their lines, notes
    and ``ORDER_PARTS``, in set-based statements for the whole batch."""
    for order_no, image in items:
        if image is None:
            _delete_order(conn, order_no)
    images = [image for _, image in items if image is not None]
    if not images:
        return
    refs = ("customer_id", "owner_id", "inspector_id")
    numbers = [i["order_no"] for i in images]
    # before the upsert: the orders this desk already had (their ids come back from the upsert)
    held_orders = {
        r[0]
        for r in _keyed(conn, "SELECT order_no FROM sales_order WHERE order_no IN ({marks})", (), numbers)
    }
    customers = _ids_of(conn, "customer", "code", [i["_customer"] for i in images])
    users = _ids_of(conn, "app_user", "name", [i.get(k) for i in images for k in ("_owner", "_inspector")])
    rows = [
        (
            image,
            {
                "customer_id": customers[image["_customer"]],
                "owner_id": users[image.get("_owner")],
                "inspector_id": users[image.get("_inspector")],
            },
        )
        for image in images
    ]
    upserted = _upsert_many(
        conn, "sales_order", rows, ("order_no",), skip=("id", *refs), returning="order_no, id"
    )
    ids = dict(upserted)
    order_ids = [int(ids[image["order_no"]]) for image in images]
    # Lines, by (order, line number): upserted, and those no longer in the image removed.
    products = _ids_of(conn, "product", "sku", [ln["_sku"] for i in images for ln in i.get("_lines", [])])
    lines = [
        (line, {"order_id": oid, "product_id": products[line["_sku"]]})
        for oid, image in zip(order_ids, images, strict=True)
        for line in image.get("_lines", [])
    ]
    _upsert_many(conn, "order_line", lines, ("order_id", "line_no"), skip=("id", "order_id", "product_id"))
    wanted = {(extra["order_id"], line["line_no"]) for line, extra in lines}
    # Only an order the desk had before can hold lines and notes (a page of new orders asks nothing here).
    held_ids = [ids[n] for n in numbers if n in held_orders]
    held = _keyed(conn, "SELECT order_id, line_no FROM order_line WHERE order_id IN ({marks})", (), held_ids)
    conn.executemany(
        "DELETE FROM order_line WHERE order_id = ? AND line_no = ?",
        [r for r in held if tuple(r) not in wanted],
    )
    _apply_whole_notes(conn, order_ids, images, held_ids)
    parts = [(f"_{name}", part.apply) for name, part in ORDER_PARTS.items()]
    for oid, image, number in zip(order_ids, images, numbers, strict=True):
        new = number not in held_orders
        for name, apply in parts:
            part = image.get(name, _ABSENT)
            if part is not _ABSENT and (part or not new):  # a new order has no parts yet
                apply(conn, oid, part)


def _apply_whole_notes(
    conn: sqlite3.Connection, order_ids: list[int], images: list[dict[str, Any]], held_ids: list[int]
) -> None:
    """All of an order's notes, as an image from before notes were entities of their own carries them
    (``_notes``; a central API older than migration 0008, or its change log from then). Notes only grow:
    usually the desk holds a prefix of the image's and only the tail is new. Anything else (a note the desk
    made itself, now back with the server's time) is replaced wholesale, but for the desk's notes still
    waiting to be sent: those come back as ``note`` entries. An image without ``_notes`` leaves the order's
    notes alone."""
    whole = [
        (oid, image["_notes"]) for oid, image in zip(order_ids, images, strict=True) if "_notes" in image
    ]
    if not whole:
        return
    synced = "(op_id IS NULL OR op_id NOT IN (SELECT op_id FROM outbox))"
    held = set(held_ids)
    have: dict[int, list[tuple[Any, ...]]] = {}
    for oid, *note in _keyed(
        conn,
        f"SELECT order_id, at, user_name, text FROM order_note WHERE {synced} AND order_id IN ({{marks}}) "
        "ORDER BY order_id, at, id",
        (),
        [oid for oid, _ in whole if oid in held],
    ):
        have.setdefault(oid, []).append(tuple(note))
    replaced, added = [], []
    for oid, notes in whole:
        target = [(_to_sqlite(n["at"]), n["user_name"], n["text"]) for n in notes]
        held_notes = have.get(oid, [])
        start = len(held_notes)
        if held_notes != target[:start]:
            replaced.append((oid,))
            start = 0
        added += [(oid, *n) for n in target[start:]]
    conn.executemany(f"DELETE FROM order_note WHERE order_id = ? AND {synced}", replaced)
    insert_values(conn, "INSERT INTO order_note (order_id, at, user_name, text)", rows=added)


def _apply_notes(conn: sqlite3.Connection, items: list[tuple[str, dict[str, Any] | None]]) -> None:
    """Bring notes (named by the op that added them) to their images, set-based. The desk's own note comes
    back as the same note, with the central API's time; a note whose image is ``None`` (its op was
    rejected) is dropped."""
    conn.executemany(
        "DELETE FROM order_note WHERE op_id = ?", [(op_id,) for op_id, image in items if image is None]
    )
    notes = [(op_id, image) for op_id, image in items if image is not None]
    orders = _ids_of(conn, "sales_order", "order_no", [image["order_no"] for _, image in notes])
    insert_values(
        conn,
        "INSERT INTO order_note (op_id, order_id, at, user_name, text)",
        "ON CONFLICT (op_id) DO UPDATE SET order_id = excluded.order_id, at = excluded.at, "
        "user_name = excluded.user_name, text = excluded.text WHERE order_note.at IS NOT excluded.at "
        "OR order_note.order_id IS NOT excluded.order_id OR order_note.user_name IS NOT excluded.user_name "
        "OR order_note.text IS NOT excluded.text",
        rows=[
            (op_id, orders[image["order_no"]], _to_sqlite(image["at"]), image["user_name"], image["text"])
            for op_id, image in notes
        ],
    )


def not_in(column: str, values: list[Any]) -> str:
    """SQL for "``column`` is none of ``values``" (bind ``values`` after it; an empty list matches every row,
    as ``NOT IN ()`` would: ``NOT IN (NULL)`` would match none)."""
    return f"{column} NOT IN ({', '.join('?' * len(values))})" if values else "1 = 1"


def _delete_order(conn: sqlite3.Connection, order_no: str) -> None:
    """The central API has no such order (a create it rejected): remove the desk's own copy and the rows
    that hang off it."""
    row = conn.execute("SELECT id FROM sales_order WHERE order_no = ?", (order_no,)).fetchone()
    if row is None:
        return
    _delete_with_children(conn, "sales_order", int(row[0]))


def _delete_with_children(conn: sqlite3.Connection, table: str, row_id: int) -> None:
    for child, column in _children(conn, table):
        has_id = any(r[1] == "id" for r in conn.execute(f'PRAGMA table_info("{child}")'))
        if has_id:
            for (cid,) in conn.execute(f'SELECT id FROM "{child}" WHERE {column} = ?', (row_id,)).fetchall():
                _delete_with_children(conn, child, int(cid))
        else:
            conn.execute(f'DELETE FROM "{child}" WHERE {column} = ?', (row_id,))
    conn.execute(f'DELETE FROM "{table}" WHERE id = ?', (row_id,))


def _children(conn: sqlite3.Connection, table: str) -> list[tuple[str, str]]:
    out = []
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
        for fk in conn.execute(f'PRAGMA foreign_key_list("{name}")').fetchall():
            if fk[2] == table:
                out.append((name, fk[3]))
    return out


def _apply_customer(conn: sqlite3.Connection, code: str, image: dict[str, Any] | None) -> None:
    if image is not None:
        _upsert(conn, "customer", image, ("code",))


def _apply_product(conn: sqlite3.Connection, sku: str, image: dict[str, Any] | None) -> None:
    if image is None:
        return
    product_id = _upsert(conn, "product", image, ("sku",))
    codes = []
    for bc in image.get("_barcodes", []):
        _upsert(conn, "productbarcode", bc, ("code",), extra={"product_id": product_id}, skip=("product_id",))
        codes.append(bc["code"])
    conn.execute(
        f"DELETE FROM productbarcode WHERE product_id = ? AND {not_in('code', codes)}",
        (product_id, *codes),
    )


def _apply_user(conn: sqlite3.Connection, name: str, image: dict[str, Any] | None) -> None:
    if image is None:
        return
    if image.get("badge_hash") is None:
        image = {k: v for k, v in image.items() if k != "badge_hash"}
    user_id = _upsert(
        conn,
        "app_user",
        image,
        ("name",),
        keep_if_empty=("pin_hash",),
        local_only=("failed_logins", "locked_until"),
    )
    conn.execute("DELETE FROM user_role WHERE user_id = ?", (user_id,))
    conn.executemany(
        "INSERT INTO user_role (user_id, role) VALUES (?, ?)", [(user_id, r) for r in image.get("_roles", [])]
    )


APPLIERS: dict[str, Callable[[sqlite3.Connection, str, Any], None]] = {
    "user": _apply_user,
    "customer": _apply_customer,
    "product": _apply_product,
}
# Kinds applied a batch at a time (a page holds thousands of orders).
BATCH_APPLIERS: dict[str, Callable[[sqlite3.Connection, list[tuple[str, Any]]], None]] = {
    "order": _apply_orders,
    "note": _apply_notes,
}


# -- desk: installing a snapshot -------------------------------------------------------------------------
def install_snapshot(store: Store, snapshot: Path) -> int:
    """Bring the desk to a snapshot in one transaction (set-based upserts by natural key, so it works for a
    fresh desk and for one re-bootstrapping). The outbox must be empty: unsent work is pushed first.
    Returns the change seq the desk now stands at."""
    raw = store.engine.raw_connection()
    try:
        conn: sqlite3.Connection = raw.driver_connection  # type: ignore[assignment]
        conn.execute("ATTACH DATABASE ? AS snap", (str(snapshot),))
        cache = conn.execute("PRAGMA cache_size").fetchone()[0]
        conn.execute("PRAGMA cache_size = -262144")  # 256 MiB while a million rows and their indexes go in
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                seq = _install(conn)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        finally:
            conn.execute("DETACH DATABASE snap")
            conn.execute(f"PRAGMA cache_size = {int(cache)}")
    except sqlite3.Error as exc:
        from orderdesk.store import explain_db_error

        raise explain_db_error(exc, store.location) from exc
    finally:
        raw.close()
    return seq


def _install(conn: sqlite3.Connection) -> int:
    if conn.execute("SELECT 1 FROM main.outbox LIMIT 1").fetchone():
        raise Refused(msg("Unsent changes must go up before a snapshot is loaded."), code="outbox_not_empty")
    seq = int(conn.execute(f"SELECT seq FROM snap.{SNAPSHOT_META}").fetchone()[0])
    specs = [*SNAPSHOT_TABLES, *SNAPSHOT_REPLACED]
    if all(conn.execute(f'SELECT 1 FROM main."{t.table}" LIMIT 1').fetchone() is None for t in specs):
        # A fresh desk: copy the rows as they are, ids included (nothing local to map them onto). The
        # secondary indexes are dropped first and built again after, in the same transaction: building an
        # index over a million sorted keys is several times faster than growing it row by row.
        tables = [spec.table for spec in specs]
        marks = ", ".join("?" * len(tables))
        indexes = conn.execute(
            f"SELECT name, sql FROM main.sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
            f"AND tbl_name IN ({marks})",
            tables,
        ).fetchall()
        for name, _sql in indexes:
            conn.execute(f'DROP INDEX main."{name}"')
        for spec in specs:
            names = _table_columns(spec.table).names
            cols = ", ".join(c for c in names if c in _snap_columns(conn, spec.table))
            conn.execute(f'INSERT INTO main."{spec.table}" ({cols}) SELECT {cols} FROM snap."{spec.table}"')
        for _name, sql in indexes:
            conn.execute(sql)
        return _installed(conn, seq)
    for spec in SNAPSHOT_TABLES:
        _install_table(conn, spec)
    for spec in SNAPSHOT_REPLACED:
        column, (parent, pkey) = next(iter(spec.refs.items()))
        conn.execute(
            f'DELETE FROM main."{spec.table}" WHERE {column} IN (SELECT m.id FROM main."{parent}" m '
            f'JOIN snap."{parent}" s ON s.{pkey} = m.{pkey})'
        )
        _install_table(conn, spec)
    return _installed(conn, seq)


def _installed(conn: sqlite3.Connection, seq: int) -> int:
    conn.execute("DELETE FROM main.sync_entity")
    conn.execute("DELETE FROM main.sync_deferred")
    conn.execute(
        "UPDATE main.sync_link SET cursor = ?, snapshot_seq = ?, needs_bootstrap = 0 WHERE id = 1", (seq, seq)
    )
    return seq


def _local_defaults(table: str, columns: Iterable[str]) -> dict[str, Any]:
    """Python-side defaults of desk-local columns (a new row needs them; an update never touches them)."""
    t = SQLModel.metadata.tables[table]
    out = {}
    for name in columns:
        default = t.c[name].default
        out[name] = _sqlite_value(default.arg) if default is not None and default.is_scalar else None
    return out


def _snap_columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {r[1] for r in conn.execute(f'PRAGMA snap.table_info("{table}")').fetchall()}


def _install_table(conn: sqlite3.Connection, spec: TableSpec) -> None:
    names = _table_columns(spec.table).names
    available = _snap_columns(conn, spec.table)
    plain = [
        c for c in names if c in available and c != "id" and c not in spec.refs and c not in spec.local_only
    ]
    exprs = [f"s.{c}" for c in plain]
    cols = list(plain)
    local = _local_defaults(spec.table, spec.local_only)
    for column, value in local.items():
        cols.append(column)
        exprs.append("NULL" if value is None else repr(value) if isinstance(value, int) else f"'{value}'")
    for column, (parent, pkey) in spec.refs.items():
        cols.append(column)
        exprs.append(
            f'(SELECT m.id FROM main."{parent}" m WHERE m.{pkey} = '
            f'(SELECT p.{pkey} FROM snap."{parent}" p WHERE p.id = s.{column}))'
        )
    sql = f'INSERT INTO main."{spec.table}" ({", ".join(cols)}) SELECT {", ".join(exprs)} FROM snap."{spec.table}" s WHERE true'
    if spec.key:
        sets = []
        for c in cols:
            if c in spec.key or c in local:
                continue
            if c in spec.keep_if_empty:
                sets.append(f"{c} = CASE WHEN excluded.{c} != '' THEN excluded.{c} ELSE {c} END")
            else:
                sets.append(f"{c} = excluded.{c}")
        sql += f" ON CONFLICT ({', '.join(spec.key)}) DO " + (
            f"UPDATE SET {', '.join(sets)}" if sets else "NOTHING"
        )
    conn.execute(sql)


# -- desk: the supervisor's queue ------------------------------------------------------------------------
@dataclass(frozen=True)
class Rejection:
    """A rejected op as plain data for the screens and the CLI."""

    op_id: str
    command: str
    order_no: str
    user_name: str
    code: str
    reason: Msg
    args: dict[str, Any]
    created_at: datetime
    decided_at: datetime

    @property
    def is_conflict(self) -> bool:
        """Two desks acted on the same thing and this one arrived second (a person decides what stands)."""
        return self.code in CONFLICT_CODES

    @property
    def what(self) -> Msg:
        """The change in words ("Shipment", "Edit: waybill"), in the reader's language."""
        return change_name(self.command, self.args)

    @property
    def headline(self) -> Msg:
        """One line for the person who made the change: which order, what, by whom, and why it was refused."""
        return msg(
            "{order_no}: {what} by {user} was rejected by the central API: {reason}",
            order_no=self.order_no or "-",
            what=self.what,
            user=self.user_name,
            reason=self.reason,
        )


def change_name(command: str, args: Mapping[str, Any]) -> Msg:
    """An outbox command as a person would name it (an unknown one by its own name)."""
    if command == "move_order":
        return msg("Move: {transition}", transition=str(args.get("transition", "")))
    if command == "edit_order":
        return msg("Edit: {fields}", fields=", ".join(sorted(args.get("changes") or {})))
    return CHANGE_NAMES.get(command) or msg("{command}", command=command.replace("_", " "))


# Outbox commands in words (rendered when shown, in the reader's language); moves and edits say more.
CHANGE_NAMES: dict[str, Msg] = {
    "create_order": msg("New order"),
    "add_note": msg("Note"),
    "add_customer": msg("New customer"),
    "add_product": msg("New product"),
    "add_user": msg("New user"),
    "adjust_stock": msg("Stock change"),
    "record_scan": msg("Scan"),
    "undo_scan": msg("Scan undone"),
    "reset_packing": msg("Packing reset"),
    "choose_packing_preset": msg("Packing choice"),
    "release_hazard": msg("Hazard release"),
    "ship_order": msg("Shipment"),
}


# Rejection codes that mean "someone else got there first"; other areas add theirs.
CONFLICT_CODES: set[str] = {"edit_conflict", "state_conflict"}


def rejections(
    store: Store, *, include_resolved: bool = False, limit: int = 500, op_ids: Collection[str] | None = None
) -> list[Rejection]:
    """Rejected ops, newest first: the open ones (or all), or only those named by ``op_ids``."""
    if op_ids is not None and not op_ids:
        return []
    with store.read() as session:
        query = select(SyncOutcome).where(SyncOutcome.status == "rejected")
        if not include_resolved:
            query = query.where(col(SyncOutcome.resolved_at).is_(None))
        if op_ids is not None:
            query = query.where(col(SyncOutcome.op_id).in_(list(op_ids)))
        rows = session.exec(query.order_by(col(SyncOutcome.decided_at).desc()).limit(limit)).all()
        return [
            Rejection(
                r.op_id,
                r.command,
                r.order_no,
                r.user_name,
                r.code,
                msg_from_json(r.reason),
                json.loads(r.args or "{}"),
                r.created_at,
                r.decided_at,
            )
            for r in rows
        ]


def resolve_rejection(store: Store, op_id: str, *, user: str, resolution: str = "dismissed") -> None:
    """Mark a rejection handled (a supervisor's note, desk-local: it changes no business data)."""
    with store.write() as session:
        row = session.get(SyncOutcome, op_id)
        if row is None or row.status != "rejected":
            raise Refused(msg("There is no rejected change {op_id}.", op_id=op_id), code="unknown_rejection")
        row.resolved_at, row.resolved_by, row.resolution = store.clock(), user, resolution
        session.add(row)


def reapply_rejection(store: Store, op_id: str, *, user: str) -> object:
    """Keep the desk's value of a rejected edit (or retry a rejected move): the original user's intent is run
    again — now based on the current version, so it wins in server order — with the supervisor who decided
    named in the reason, then the rejection is marked handled."""
    from orderdesk.orders import edit_order, move_order

    found = next((r for r in rejections(store) if r.op_id == op_id), None)
    if found is None:
        raise Refused(msg("There is no open rejected change {op_id}.", op_id=op_id), code="unknown_rejection")
    reason = f"sync conflict resolved by {user}"
    if found.command == "edit_order":
        result = edit_order(
            store, order_no=found.order_no, changes=found.args["changes"], user=found.user_name, reason=reason
        )
    elif found.command == "move_order":
        result = move_order(
            store, order_no=found.order_no, to=found.args["transition"], user=found.user_name, reason=reason
        )
    else:
        raise Refused(
            msg("Only edits and moves can be applied again; dismiss this one."), code="not_reapplicable"
        )
    resolve_rejection(store, op_id, user=user, resolution="reapplied")
    return result


def note_sync(store: Store, *, ok: bool, error: Msg | None = None) -> None:
    """Remember the last successful sync (desk clock, shown only) or the last error."""
    with store.write() as session:
        link = session.get(SyncLink, 1)
        if link is None:
            return
        if ok:
            link.last_sync_at, link.last_error = store.clock(), ""
        else:
            link.last_error = canonical_json(error.to_json()) if error else ""
        session.add(link)


def mark_needs_bootstrap(store: Store) -> None:
    with store.write() as session:
        link = session.get(SyncLink, 1)
        if link is not None:
            link.needs_bootstrap = True
            session.add(link)


@dataclass(frozen=True)
class DeskSyncState:
    """What the status line shows."""

    enrolled: bool
    server_url: str = ""
    waiting: int = 0
    rejected: int = 0
    last_sync_at: datetime | None = None
    last_error: Msg | None = None
    cursor: int = 0


def desk_sync_state(store: Store) -> DeskSyncState:
    with store.read() as session:
        link = session.get(SyncLink, 1)
        if link is None:
            return DeskSyncState(False)
        waiting = session.exec(select(func.count()).select_from(OutboxRecord)).one()
        rejected = session.exec(
            select(func.count())
            .select_from(SyncOutcome)
            .where(SyncOutcome.status == "rejected", col(SyncOutcome.resolved_at).is_(None))
        ).one()
        return DeskSyncState(
            True,
            link.server_url,
            int(waiting),
            int(rejected),
            link.last_sync_at,
            msg_from_json(link.last_error) if link.last_error else None,
            int(link.cursor),
        )


# Other areas register their replays, order parts and snapshot tables here (they import this module).
from orderdesk import replay_alerts, replay_desks  # noqa: E402, F401
