"""The one door for changing business data.

A domain command opens ``command(store, name, user=...)``: a ``BEGIN IMMEDIATE`` transaction in which it
checks, writes its effect and then calls ``ctx.record(...)``, which appends exactly one audit record and
one outbox record. Leaving the block commits all three together; any ``Refused`` rolls all of it back.

A command with a set-based form (``orders.add_notes_effect``: the central API replays a desk's notes
hundreds at a time) opens ``command_batch(store, name)`` instead: one transaction for many runs of the
command, each by its own user, and ``ctx.record([...])`` appends one audit and one outbox record per run.
"""

from __future__ import annotations

import unicodedata
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlmodel import Session, select

from orderdesk import audit
from orderdesk.canonical import canonical_json, hash_text, sha256_hex
from orderdesk.errors import Refused
from orderdesk.i18n import msg
from orderdesk.models import AppUser, Desk, OutboxRecord, UserRole
from orderdesk.store import Store, insert_rows, transaction_cache


@dataclass(frozen=True)
class Actor:
    """Who is running a command, with every role they hold."""

    user_id: int
    name: str
    roles: frozenset[str]

    def has_any(self, roles: frozenset[str] | set[str] | tuple[str, ...]) -> bool:
        return bool(self.roles & set(roles))


# Set in ``Session.info`` while the central API replays desks' ops: their commands keep no outbox copy.
REPLAYING = "replaying"

SYSTEM = Actor(user_id=0, name="system", roles=frozenset({"admin"}))


def load_actor(session: Session, name: str) -> Actor:
    """The active user called ``name``, or a refusal saying so. Remembered for the rest of the session's
    transaction (the central API decides many ops in one): users and roles are only ever added, never
    changed, by commands, and a user who does not exist is never remembered."""
    actors = transaction_cache(session, "actors")
    if name in actors:
        return actors[name]
    user = session.exec(select(AppUser).where(AppUser.name == name)).first()
    if user is None or user.id is None:
        raise Refused(
            msg("There is no user called {name}. `orderdesk user list` shows who exists.", name=name),
            code="unknown_user",
        )
    if not user.active:
        raise Refused(msg("User {name} is deactivated; ask an admin.", name=name), code="inactive_user")
    roles = session.exec(select(UserRole.role).where(UserRole.user_id == user.id)).all()
    actors[name] = Actor(user.id, user.name, frozenset(roles))
    return actors[name]


@dataclass
class CommandContext:
    """What a domain command works with inside its transaction."""

    store: Store
    session: Session
    actor: Actor
    name: str
    now: datetime
    recorded: bool = False
    outcome: dict[str, Any] = field(default_factory=dict)

    def record(
        self,
        *,
        args: dict[str, Any],
        order_no: str = "",
        base_version: int | None = None,
        detail: dict[str, Any] | None = None,
        sync: bool = True,
    ) -> None:
        """Append the audit record and the outbox record for this command (exactly once per command).

        ``sync=False`` is for desk-local facts (a login attempt) that the central API has no use for. The
        central API replaying a desk's op writes no outbox record either (``REPLAYING``): it is nobody's desk.
        """
        if self.recorded:
            raise RuntimeError(f"command {self.name} recorded twice")
        self.recorded = True
        write_records(
            self.session,
            self.name,
            self.now,
            [Record(self.actor.name, args, order_no, base_version, detail)],
            sync=sync,
        )


@dataclass(frozen=True)
class Record:
    """One run of a command as the audit trail and the outbox keep it: who ran it, its arguments as intent,
    its order, the order version it was based on, and detail for the audit trail only."""

    user_name: str
    args: dict[str, Any]
    order_no: str = ""
    base_version: int | None = None
    detail: dict[str, Any] | None = None
    op_id: str | None = None  # the outbox record's op id, when the effect names it (a note); else a new one


def payload_hash(command: str, args: dict[str, Any], base_version: int | None, user: str) -> str:
    """The hash of an op's canonical payload, as its outbox record carries it and the central API checks it."""
    payload = {"command": command, "args": args, "base_version": base_version, "user": user}
    return sha256_hex(hash_text(payload))


def new_op_id() -> str:
    """A new op id (what names an outbox record, and the note it adds)."""
    return str(uuid.uuid4())


def write_records(
    session: Session, name: str, now: datetime, records: Sequence[Record], *, sync: bool = True
) -> None:
    """The audit records and outbox records of ``records``, runs of the command ``name``, in order and
    set-based: one statement each for however many there are (``CommandContext.record`` writes one; a
    set-based command such as ``orders.add_notes_effect`` writes its whole batch)."""
    audit.append_many(
        session,
        [audit.Entry(now, r.user_name, r.order_no, name, {**r.args, **(r.detail or {})}) for r in records],
    )
    if not sync or session.info.get(REPLAYING) or not records:
        return
    desk = session.get(Desk, 1)
    if desk is None:  # pragma: no cover - Store.migrate always creates it
        raise RuntimeError("desk identity missing")
    rows = []
    for r in records:
        rows.append(
            {
                "seq": desk.next_seq,
                "op_id": r.op_id or new_op_id(),
                "desk_id": desk.desk_id,
                "epoch": desk.epoch,
                "command": name,
                "args": canonical_json(r.args),
                "order_no": r.order_no,
                "base_version": r.base_version,
                "payload_hash": payload_hash(name, r.args, r.base_version, r.user_name),
                "created_at": now,
                "user_name": r.user_name,
            }
        )
        desk.next_seq += 1
    insert_rows(session, OutboxRecord, rows)
    session.add(desk)


def _actor(session: Session, user: str | Actor) -> Actor:
    return user if isinstance(user, Actor) else load_actor(session, user)


@contextmanager
def command(store: Store, name: str, *, user: str | Actor) -> Iterator[CommandContext]:
    """Run one domain command in one transaction; see the module docstring."""
    with store.write() as session:
        ctx = CommandContext(
            store=store, session=session, actor=_actor(session, user), name=name, now=store.clock()
        )
        yield ctx
        if not ctx.recorded:
            raise RuntimeError(f"command {name} changed data without an audit record")


@dataclass
class BatchContext:
    """What a set-based command works with inside its transaction: many runs of command ``name``."""

    store: Store
    session: Session
    name: str
    now: datetime
    recorded: bool = False

    def actor(self, user: str | Actor) -> Actor:
        """Who runs one of the runs (refused if there is no such active user)."""
        return _actor(self.session, user)

    def record(self, records: Sequence[Record]) -> None:
        """The audit record and outbox record of each run that wrote its effect, in order."""
        write_records(self.session, self.name, self.now, records)
        self.recorded = True


@contextmanager
def command_batch(store: Store, name: str) -> Iterator[BatchContext]:
    """Run many occurrences of one domain command in one transaction, set-based; see the module docstring.
    A run the command refuses is left out (and not recorded); the others commit together."""
    with store.write() as session:
        ctx = BatchContext(store=store, session=session, name=name, now=store.clock())
        yield ctx
        if not ctx.recorded:
            raise RuntimeError(f"command {name} changed data without audit records")


def require_role(ctx: CommandContext, roles: set[str] | frozenset[str], action: str) -> None:
    """Refuse unless the actor holds one of ``roles``."""
    if not ctx.actor.has_any(roles):
        raise Refused(
            msg(
                "{user} may not {action}: that needs the role {roles}.",
                user=ctx.actor.name,
                action=msg(action),
                roles=" / ".join(sorted(roles)),
            ),
            code="forbidden",
            who=tuple(sorted(roles)),
        )


def clean_text(value: str, *, field_name: str, max_len: int, required: bool = False) -> str:
    """Strip, refuse control characters and over-long text, so nothing odd reaches the database."""
    if not isinstance(value, str):  # a malformed op or import row (a number, a list)
        raise Refused(msg("{field} must be text.", field=msg(field_name)), code="bad_text")
    text = unicodedata.normalize("NFC", value).strip()
    if any(unicodedata.category(ch) == "Cc" and ch not in "\n\t" for ch in text):
        raise Refused(
            msg("{field} contains control characters; type it again without them.", field=msg(field_name)),
            code="bad_text",
        )
    if required and not text:
        raise Refused(msg("{field} must not be empty.", field=msg(field_name)), code="empty_text")
    if len(text) > max_len:
        raise Refused(
            msg(
                "{field} is {length} characters long; the most allowed is {max}.",
                field=msg(field_name),
                length=len(text),
                max=max_len,
            ),
            code="text_too_long",
        )
    return text
