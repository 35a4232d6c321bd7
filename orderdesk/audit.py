"""The audit trail: append-only, hash-chained, searchable by order, user and time range.

Each record's hash covers its id, time, user, order, command, detail and the previous record's hash, so
editing or deleting any record (even with the append-only triggers dropped) breaks the chain at that point.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session, col, select

from orderdesk.canonical import canonical_json, sha256_hex
from orderdesk.i18n import Msg, msg
from orderdesk.models import AuditRecord
from orderdesk.store import insert_rows, transaction_cache

GENESIS = "0" * 64


def record_hash(
    *, id: int, at: datetime, user_name: str, order_no: str, command: str, detail: str, prev_hash: str
) -> str:
    return _hash(id, at.isoformat(), user_name, order_no, command, detail, prev_hash)


def _hash(id: int, at: str, user_name: str, order_no: str, command: str, detail: str, prev_hash: str) -> str:
    """``record_hash`` with ``at`` as its ``isoformat`` already."""
    return sha256_hex(canonical_json([id, at, user_name, order_no, command, detail, prev_hash]))


@dataclass(frozen=True)
class Entry:
    """One audit record to append: when, who, which order, which command, and its detail."""

    at: datetime
    user_name: str
    order_no: str
    command: str
    detail: dict[str, Any]


def chain(tip: tuple[int, str] | None, entries: Sequence[Entry]) -> list[dict[str, Any]]:
    """The rows that continue the chain after ``tip`` (the last record's id and hash, ``None`` for an empty
    trail) with ``entries``, in order: each numbered, hashed, and linked to the one before."""
    last_id, prev = tip if tip else (0, GENESIS)
    rows: list[dict[str, Any]] = []
    texts: dict[datetime, str] = {}  # the entries of a batch share their time: formatted once
    for e in entries:
        at = e.at.astimezone(UTC)
        if at not in texts:
            texts[at] = at.isoformat()
        last_id += 1
        detail = canonical_json(e.detail)
        this = _hash(last_id, texts[at], e.user_name, e.order_no, e.command, detail, prev)
        rows.append(
            {
                "id": last_id,
                "at": at,
                "user_name": e.user_name,
                "order_no": e.order_no,
                "command": e.command,
                "detail": detail,
                "prev_hash": prev,
                "hash": this,
            }
        )
        prev = this
    return rows


def append_many(session: Session, entries: Sequence[Entry]) -> None:
    """Append records to the chain in order, set-based (one statement for all of them). Must run inside a
    write transaction: it reads the chain's tip once per transaction, then remembers where the chain ends."""
    if not entries:
        return
    cached = transaction_cache(session, "audit")  # a transaction appending many reads the tip once
    tip = (
        cached.get("tip")
        or session.exec(
            select(AuditRecord.id, AuditRecord.hash).order_by(col(AuditRecord.id).desc()).limit(1)
        ).first()
    )
    rows = chain(tip, entries)
    # A pull appends a record per op of every other desk: insert_rows sends them straight to SQLite.
    insert_rows(session, AuditRecord, rows)
    cached["tip"] = (rows[-1]["id"], rows[-1]["hash"])


@dataclass(frozen=True)
class AuditEntry:
    """An audit record as plain data for screens and JSON output."""

    id: int
    at: datetime
    user_name: str
    order_no: str
    command: str
    detail: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "user": self.user_name,
            "order_no": self.order_no,
            "command": self.command,
            "detail": self.detail,
        }


def search(
    session: Session,
    *,
    order_no: str | None = None,
    user_name: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 1000,
    latest: bool = False,
) -> list[AuditEntry]:
    """Records matching every given filter, oldest first; with ``latest``, the newest ``limit`` of them."""
    query = select(AuditRecord)
    if order_no:
        query = query.where(AuditRecord.order_no == order_no)
    if user_name:
        query = query.where(AuditRecord.user_name == user_name)
    if since:
        query = query.where(AuditRecord.at >= since)
    if until:
        query = query.where(AuditRecord.at < until)
    order = col(AuditRecord.id).desc() if latest else col(AuditRecord.id)
    rows = session.exec(query.order_by(order).limit(limit)).all()
    if latest:
        rows = list(reversed(rows))
    return [
        AuditEntry(r.id or 0, r.at, r.user_name, r.order_no, r.command, json.loads(r.detail)) for r in rows
    ]


@dataclass(frozen=True)
class ChainBreak:
    """Where verification found the chain broken, and why."""

    record_id: int
    problem: Msg


def _walk(session: Session, batch: int = 5000) -> Iterator[AuditRecord]:
    last = 0
    while True:
        rows = session.exec(
            select(AuditRecord).where(col(AuditRecord.id) > last).order_by(col(AuditRecord.id)).limit(batch)
        ).all()
        if not rows:
            return
        yield from rows
        last = rows[-1].id or last


def verify(session: Session) -> tuple[int, list[ChainBreak]]:
    """Walk the chain; return the number of records checked and every break found."""
    breaks: list[ChainBreak] = []
    prev_hash, expected_id, count = GENESIS, 1, 0
    for r in _walk(session):
        count += 1
        rid = r.id or 0
        if rid != expected_id:
            breaks.append(
                ChainBreak(
                    expected_id,
                    msg("records {first}..{last} are missing (deleted)", first=expected_id, last=rid - 1),
                )
            )
        if r.prev_hash != prev_hash:
            breaks.append(
                ChainBreak(rid, msg("does not follow the record before it (a record was removed or altered)"))
            )
        actual = record_hash(
            id=rid,
            at=r.at,
            user_name=r.user_name,
            order_no=r.order_no,
            command=r.command,
            detail=r.detail,
            prev_hash=r.prev_hash,
        )
        if actual != r.hash:
            breaks.append(ChainBreak(rid, msg("its content was edited after it was written")))
        prev_hash, expected_id = r.hash, rid + 1
    return count, breaks
