"""The alert engine: notice late and at-risk orders, tell the owner, escalate until someone acts.

Kinds of alert (one open alert per order, kind and topic — a partial unique index makes that hold even with
several engines on one file):

* ``overdue``  — the order has sat in its state longer than the state's ``timeout_hours`` (red at twice it);
* ``promised`` — the promised delivery date is within ``amber_days`` (amber) or has passed (red);
* ``rush``     — a rush order has not moved for ``rush_stall_fraction`` of the state's timeout;
* ``ack``      — a move whose transition has ``require_ack``: each notified role must answer
                 "acknowledged" or "need more information" (the reason goes back to the mover);
* ``info``     — "need more information": addressed to the person who made the move.

Each alert is addressed to a level of a chain — the state's owner (or the order's named owner), then the
state's ``escalation`` roles — and must be acknowledged before ``escalate_at``; otherwise it climbs one level
every ``escalation_minutes`` (``[workflow].ack_minutes`` for acknowledgement requests), and at the top it
reminds the top again. Alerts close by themselves when the order moves on or the risk is gone.

**A pass is incremental.** The engine keeps watermarks (``alert_cursor``): the time of the last pass and the
last audit record it has seen. A pass looks only at orders that crossed a threshold since then (range scans
on ``(state, state_since)`` and ``(state, promised_date)``), orders changed since then (``updated_at``),
alerts whose deadline or snooze is due, and new moves in the audit trail. It first looks (read-only); if
there is anything to do it applies it as one domain command (``alert_pass``: audit record, ``sync=False``
because whichever node runs the engine derives alerts itself), re-checking everything inside the write
transaction so two engines racing never raise, escalate or notify twice.

**Across nodes.** Each node that runs the engine has its own alerts (ids are local). People's actions on an
alert — acknowledge, answer, snooze, escalate — are synced with the alert's key (order, kind, topic, the
order's state), replayed by the central API with the same commands (``key=``), and, once a desk has pulled
one into its audit trail, applied by that desk's next pass to its own alert with the same key
(``_Engine.follow_action``). The first action to arrive wins (``already_done``).
"""

from __future__ import annotations

import hashlib
import json
import re
import time as _time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import insert, text
from sqlmodel import Session, col, select

from orderdesk.canonical import canonical_json
from orderdesk.clock import as_utc
from orderdesk.commands import SYSTEM, Actor, CommandContext, clean_text, command
from orderdesk.errors import Refused
from orderdesk.i18n import Label, Msg, msg
from orderdesk.models import REASON_MAX, Alert, AlertCursor, AlertEvent, AuditRecord
from orderdesk.notify import NotifyConfig, bind_time, enqueue, is_sqlite, load_notify_config, users_with_roles
from orderdesk.store import Store, insert_rows, rows_in
from orderdesk.workflow import Workflow

SCAN_KINDS = ("overdue", "promised", "rush")
KINDS = (*SCAN_KINDS, "ack", "info")
LIVE = ("open", "acked", "snoozed")
COORDINATORS = frozenset({"planner", "supervisor", "admin"})  # may act on any late-order alert
CHANGED_OVERLAP = timedelta(minutes=5)  # re-look at orders changed a little before the last pass
DIGEST_AFTER = 5  # more messages than this for the same people in one pass become one digest
SNOOZE_MAX = timedelta(days=14)
SAMPLE = 50  # order numbers listed per change in the pass's audit record
CHUNK = 500
PASS_BATCH = 5000  # orders per transaction in a catch-up pass
ESCALATE_BATCH = 10_000  # due alerts escalated (or reminded) per transaction (one digest each)
QUIET_BOOKMARK = timedelta(minutes=2)
SETTLED_CHECK_MAX = 2000  # above this a pass just does the work (a catch-up)
COUNTS = ("raised", "escalated", "reopened", "closed", "ack_requests", "followed")
# People's actions on alerts: synced by the alert's key, and followed by other nodes' engines.
ACTION_COMMANDS = ("acknowledge_alert", "answer_ack_request", "snooze_alert", "escalate_alert")
# Audit records a pass follows: every move (broadcasts, acknowledgement requests), and actions on alerts that
# came from another node (sync adds those to the trail with "via": the desk code they were made at).
# Actions on alerts that sync brought from other nodes (their events carry the desk they came "via").
PULLED_ACTIONS_SQL = "command IN ({}) AND detail LIKE :via".format(
    ", ".join(f"'{c}'" for c in ACTION_COMMANDS)
)
FOLLOWED_SQL = f"command = 'move_order' OR ({PULLED_ACTIONS_SQL})"
VIA_LIKE = '%"via":%'


# -- time helpers ----------------------------------------------------------------------------------------
def _parse_time(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(value)).replace(tzinfo=UTC)


def _date(value: Any) -> date | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def local_today(now: datetime, offset_hours: float) -> date:
    """The business day ``now`` falls on (UTC+offset, China Standard Time by default)."""
    return (now.astimezone(UTC) + timedelta(hours=offset_hours)).date()


def local_midnight(day: date, offset_hours: float) -> datetime:
    """The UTC moment the business day ``day`` starts."""
    return datetime.combine(day, time(0), UTC) - timedelta(hours=offset_hours)


# -- chains ----------------------------------------------------------------------------------------------
def chain_for(workflow: Workflow, alert: Alert) -> tuple[str, ...]:
    """The roles an alert climbs, level 0 first (an ``info`` alert's level 0 is a person, shown as "")."""
    return chain_roles(workflow, alert.kind, alert.state, alert.topic)


def chain_roles(workflow: Workflow, kind: str, state: str, topic: str = "") -> tuple[str, ...]:
    """``chain_for`` from the alert's kind, state and topic."""
    st = workflow.states.get(state)
    above = st.escalation if st else ()
    if kind == "ack":
        return (topic, *(r for r in above if r != topic))
    if kind == "info":
        return ("", *above)
    owner = st.owner if st else "supervisor"
    return (owner, *(r for r in above if r != owner))


def minutes_for(workflow: Workflow, alert: Alert) -> timedelta:
    """How long each level has to acknowledge."""
    if alert.kind in ("ack", "info"):
        return timedelta(minutes=workflow.ack_minutes)
    st = workflow.states.get(alert.state)
    return timedelta(minutes=st.escalation_minutes if st else workflow.ack_minutes)


# -- what an order deserves ------------------------------------------------------------------------------
@dataclass(frozen=True)
class OrderFacts:
    id: int
    order_no: str
    state: str
    state_since: datetime
    promised_date: date | None
    rush: bool
    owner: str


@dataclass(frozen=True)
class Wanted:
    kind: str
    severity: str
    due_at: datetime


def wanted_alerts(
    facts: OrderFacts, workflow: Workflow, config: NotifyConfig, now: datetime
) -> dict[str, Wanted]:
    """The scan alerts an order should have open right now, by kind."""
    st = workflow.states.get(facts.state)
    if st is None or st.kind == "terminal":
        return {}
    s = config.alerts
    out: dict[str, Wanted] = {}
    if st.timeout_hours > 0:
        timeout = timedelta(hours=st.timeout_hours)
        due = facts.state_since + timeout
        if now >= due:
            out["overdue"] = Wanted("overdue", "red" if now >= due + timeout else "amber", due)
        elif facts.rush and now >= facts.state_since + timeout * s.rush_stall_fraction:
            out["rush"] = Wanted("rush", "red", facts.state_since + timeout * s.rush_stall_fraction)
    if facts.promised_date is not None and facts.state not in s.delivered_states:
        days_left = (facts.promised_date - local_today(now, s.utc_offset_hours)).days
        if days_left <= s.amber_days:
            due_at = local_midnight(facts.promised_date + timedelta(days=1), s.utc_offset_hours)
            out["promised"] = Wanted("promised", "red" if days_left < 0 else "amber", due_at)
    return out


def alert_message(alert: Alert, workflow: Workflow, now: datetime, config: NotifyConfig) -> Msg:
    """What the alert is about, in words (rendered in the reader's language later)."""
    state = _state_label(workflow, alert.state)
    if alert.kind == "overdue":
        st = workflow.states.get(alert.state)
        late = max(0, int((now - alert.due_at).total_seconds() // 3600))
        return msg(
            "{order_no} is overdue in {state}: {hours} h over its {timeout} h.",
            order_no=alert.order_no,
            state=state,
            hours=late,
            timeout=int(st.timeout_hours) if st else 0,
        )
    if alert.kind == "promised":
        promised = (alert.due_at + timedelta(hours=config.alerts.utc_offset_hours) - timedelta(days=1)).date()
        days = (promised - local_today(now, config.alerts.utc_offset_hours)).days
        if days < 0:
            return msg(
                "{order_no}: the promised date {date} has passed ({days} d ago) and it is still in {state}.",
                order_no=alert.order_no,
                date=promised.isoformat(),
                days=-days,
                state=state,
            )
        return msg(
            "{order_no}: promised for {date} ({days} d left) and still in {state}.",
            order_no=alert.order_no,
            date=promised.isoformat(),
            days=days,
            state=state,
        )
    if alert.kind == "rush":
        hours = int((now - alert.state_since).total_seconds() // 3600)
        return msg(
            "Rush order {order_no} has not moved for {hours} h in {state}.",
            order_no=alert.order_no,
            hours=hours,
            state=state,
        )
    if alert.kind == "ack":
        return msg(
            "{user} moved {order_no} to {state}: please acknowledge, or ask for more information.",
            user=alert.mover,
            order_no=alert.order_no,
            state=state,
        )
    return msg(
        "{user} needs more information about your move of {order_no} to {state}: {reason}",
        user=alert.acked_by or alert.mover,
        order_no=alert.order_no,
        state=state,
        reason=alert.answer_reason,
    )


def _state_label(workflow: Workflow, state: str) -> Label:
    st = workflow.states.get(state)
    return Label(st.label_en, st.label_zh) if st else Label(state, state)


# -- the notification collector (digests floods) ---------------------------------------------------------
@dataclass
class _Outbox:
    """Messages a pass wants to send, grouped by who gets them, so a flood becomes one digest."""

    pass_key: str
    groups: dict[
        tuple[str, tuple[str, ...], tuple[str, ...], str], list[tuple[str, Msg, Alert | None, str]]
    ] = field(default_factory=dict)

    def add(
        self,
        event: str,
        key: str,
        message: Msg,
        *,
        users: Sequence[str],
        roles: Sequence[str],
        severity: str,
        alert: Alert | None,
        order_no: str,
    ) -> None:
        group = (event, tuple(sorted(set(users))), tuple(sorted(set(roles))), severity)
        self.groups.setdefault(group, []).append((key, message, alert, order_no))

    def flush(self, session: Session, config: NotifyConfig, now: datetime) -> int:
        queued = 0
        for (event, users, roles, severity), items in self.groups.items():
            if not users and not roles:
                continue
            if len(items) <= DIGEST_AFTER:
                for key, message, alert, order_no in items:
                    queued += enqueue(
                        session,
                        config,
                        key=key,
                        now=now,
                        event=event,
                        message=message,
                        users=users,
                        roles=roles,
                        severity=severity,
                        alert_id=alert.id if alert else None,
                        order_no=order_no,
                    )
                continue
            orders = [order_no for *_rest, order_no in items]
            digest = hashlib.sha256("|".join(k for k, *_r in items).encode()).hexdigest()[:16]
            queued += enqueue(
                session,
                config,
                key=f"digest:{self.pass_key}:{digest}",
                now=now,
                event=event,
                message=msg(
                    "{count} orders need attention ({event}): {orders} — see the triage screen.",
                    count=len(items),
                    event=msg(EVENT_WORDS.get(event, event)),
                    orders=", ".join(orders[:8]) + (" …" if len(orders) > 8 else ""),
                ),
                users=users,
                roles=roles,
                severity=severity,
                order_no=orders[0],
            )
        self.groups.clear()
        return queued


EVENT_WORDS = {
    "raised": "late or at risk",
    "escalated": "escalated to you",
    "reminder": "still unacknowledged",
    "reopened": "worse now",
    "snooze_ended": "snooze over",
    "move": "moved",
    "ack_request": "please acknowledge",
}


# -- the pass --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PassReport:
    """What one pass did (and how long it took)."""

    full: bool
    examined: int
    raised: int
    escalated: int
    reopened: int
    closed: int
    ack_requests: int
    notifications: int
    seconds: float
    wrote: bool
    followed: int = 0  # actions on alerts pulled from other desks, applied to this node's alerts

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "seconds": round(self.seconds, 4)}


@dataclass
class _Plan:
    full: bool
    order_ids: set[int]
    escalations: bool
    moves: bool

    @property
    def empty(self) -> bool:
        return not (self.order_ids or self.escalations or self.moves)


def _fingerprint(workflow: Workflow, config: NotifyConfig) -> str:
    parts = [
        (s.id, s.kind, s.owner, s.timeout_hours, s.escalation, s.escalation_minutes)
        for s in workflow.states.values()
    ]
    body = json.dumps([parts, workflow.ack_minutes, config.alerts.__dict__], default=str, sort_keys=True)
    return hashlib.sha256(body.encode()).hexdigest()[:32]


def _cursor(session: Session) -> dict[str, str]:
    return {c.name: c.value for c in session.exec(select(AlertCursor))}


def _set_cursor(session: Session, values: dict[str, str]) -> None:
    for name, value in values.items():
        row = session.get(AlertCursor, name)
        if row is None:
            session.add(AlertCursor(name=name, value=value))
        else:
            row.value = value
            session.add(row)


def _ids(session: Session, sql: str, params: dict[str, Any]) -> set[int]:
    return {int(r[0]) for r in session.execute(text(sql), params)}


def _candidates(
    session: Session,
    workflow: Workflow,
    config: NotifyConfig,
    now: datetime,
    cursor: dict[str, str],
    full: bool,
) -> _Plan:
    """Which orders, alerts and moves a pass must look at (read-only, index range scans)."""
    s = config.alerts
    last = _parse_time(cursor["time"]) if "time" in cursor and not full else None
    if last is not None and last > now:
        last = now  # the clock went back: nothing new crossed
    hi_now = bind_time(session, now)
    # Every window is one indexed range; they go to SQLite as one compound statement (a pass on a quiet
    # desk is mostly per-statement overhead otherwise).
    parts: list[str] = []
    params: dict[str, Any] = {}

    def part(sql: str, values: dict[str, Any]) -> None:
        n = len(parts)
        for key, value in values.items():
            sql = re.sub(rf":{key}\b", f":{key}_{n}", sql)
            params[f"{key}_{n}"] = value
        parts.append(sql)

    for st in workflow.states.values():
        if st.kind == "terminal" or st.timeout_hours <= 0:
            continue
        timeout = timedelta(hours=st.timeout_hours)
        for span, rush in ((timeout, False), (timeout * 2, False), (timeout * s.rush_stall_fraction, True)):
            if full and not rush and span != timeout:
                continue  # a full pass already has every overdue order from the first range
            sql = "SELECT id FROM sales_order WHERE state = :s AND state_since <= :hi"
            values: dict[str, Any] = {"s": st.id, "hi": bind_time(session, now - span)}
            if last is not None:
                sql += " AND state_since > :lo"
                values["lo"] = bind_time(session, last - span)
            if rush:
                sql += " AND rush"
            part(sql, values)
    promised_states = [
        st.id for st in workflow.states.values() if st.kind != "terminal" and st.id not in s.delivered_states
    ]
    today = local_today(now, s.utc_offset_hours)
    last_day = local_today(last, s.utc_offset_hours) if last is not None else None
    if promised_states and last_day != today:
        marks = ",".join(f":p{i}" for i in range(len(promised_states)))
        values = {f"p{i}": st for i, st in enumerate(promised_states)}
        sql = f"SELECT id FROM sales_order WHERE state IN ({marks}) AND promised_date <= :hi"
        values["hi"] = (today + timedelta(days=s.amber_days)).isoformat()
        if last_day is not None:
            # amber: the window's far edge moved; red: the promised date is now behind us
            sql += " AND (promised_date > :lo_amber OR (promised_date >= :lo_red AND promised_date < :today))"
            values["lo_amber"] = (last_day + timedelta(days=s.amber_days)).isoformat()
            values["lo_red"] = last_day.isoformat()
            values["today"] = today.isoformat()
        part(sql, values)
    if last is not None:
        part(
            "SELECT id FROM sales_order WHERE updated_at >= :since",
            {"since": bind_time(session, last - CHANGED_OVERLAP)},
        )
    else:
        part("SELECT order_id FROM alert WHERE closed_at IS NULL", {})
    ids = _ids(session, " UNION ".join(parts), params)
    escalations = (
        session.execute(
            text(
                "SELECT EXISTS(SELECT 1 FROM alert WHERE status = 'open' AND escalate_at <= :now) "
                "OR EXISTS(SELECT 1 FROM alert WHERE status = 'snoozed' AND snoozed_until <= :now)"
            ),
            {"now": hi_now},
        ).scalar_one()
        == 1
    )
    audit_id = int(cursor.get("audit_id") or 0)
    moves = "audit_id" in cursor and (
        session.execute(
            text(f"SELECT EXISTS(SELECT 1 FROM audit_record WHERE id > :a AND ({FOLLOWED_SQL}))"),
            {"a": audit_id, "via": VIA_LIKE},
        ).scalar_one()
        == 1
    )
    return _Plan(full=full or last is None, order_ids=ids, escalations=escalations, moves=moves)


def run_alert_pass(
    store: Store,
    config: NotifyConfig | None = None,
    *,
    full: bool = False,
    only_orders: Iterable[int] | None = None,
) -> PassReport:
    """One pass of the engine at ``store.clock()``: raise, re-grade, close, escalate, broadcast moves.

    ``full`` re-examines every order (done by itself the first time and when the workflow's timeouts or the
    alert settings change); ``only_orders`` re-examines just those orders now (after a triage action).
    """
    started = _time.perf_counter()
    config = config or load_notify_config()
    workflow = store.workflow
    now = store.clock()
    fingerprint = _fingerprint(workflow, config)
    with store.read() as session:
        cursor = _cursor(session)
        if only_orders is not None:
            plan = _Plan(False, set(only_orders), False, False)
        else:
            plan = _candidates(
                session, workflow, config, now, cursor, full or cursor.get("workflow") != fingerprint
            )
        first_time = "time" not in cursor
        quiet = plan.empty or (
            not (plan.full or first_time or plan.escalations or plan.moves or only_orders is not None)
            and len(plan.order_ids) <= SETTLED_CHECK_MAX
            and _settled(session, workflow, config, now, sorted(plan.order_ids))
        )
    if quiet and not first_time:
        marked = _parse_time(cursor["time"])
        if plan.order_ids and (now - marked >= QUIET_BOOKMARK or now < marked):
            with store.write() as session:  # only the engine's bookmark moves on (no business data)
                _set_cursor(session, {"time": now.isoformat()})
        return PassReport(
            plan.full, len(plan.order_ids), 0, 0, 0, 0, 0, 0, _time.perf_counter() - started, False
        )
    counts = dict.fromkeys(COUNTS, 0)
    notifications = 0
    wrote = False
    ids = sorted(plan.order_ids)
    # A catch-up on a big desk is split so no transaction holds the write lock for long.
    batches = [ids[i : i + PASS_BATCH] for i in range(0, len(ids), PASS_BATCH)] or [[]]
    order_batches = len(batches)
    for n, batch in enumerate(batches):  # grows while more alerts are due than one transaction takes
        tail = n >= order_batches - 1  # the last batch of orders, and each escalation transaction after it
        samples: dict[str, list[str]] = {k: [] for k in counts}
        before = dict(counts)
        cursor_values: dict[str, str] = {}
        try:
            with command(store, "alert_pass", user=SYSTEM) as ctx:
                engine = _Engine(
                    ctx, workflow, config, now, counts, samples, pass_key=f"{now.isoformat()}#{n}"
                )
                engine.examine(batch)
                if tail and only_orders is None:
                    inside = _cursor(ctx.session)
                    if "audit_id" in inside:
                        # before deadlines: an acknowledgement pulled from another desk stops this one's
                        engine.follow_audit(int(inside["audit_id"]))
                if tail and engine.escalate_due(ESCALATE_BATCH):
                    batches.append([])  # more alerts are due: they climb in the next transaction
                if tail and only_orders is None:  # the bookmark moves on with what this one followed
                    top = ctx.session.execute(
                        text("SELECT coalesce(max(id), 0) FROM audit_record")
                    ).scalar_one()
                    cursor_values = {
                        "time": now.isoformat(),
                        "audit_id": str(max(int(top), engine.last_audit)),
                        "workflow": fingerprint,
                    }
                    _set_cursor(ctx.session, cursor_values)
                queued = engine.flush()
                if not engine.changed and not queued:
                    raise _Quiet
                notifications += queued
                ctx.record(
                    args={"full": plan.full, **{k: counts[k] - before[k] for k in counts}},
                    detail={"orders": {k: v for k, v in samples.items() if v}, "notifications": queued},
                    sync=False,
                )
                wrote = True
        except _Quiet:
            # Nothing about any alert changed: no business data, no audit record; only the engine's own
            # bookmark moves on, so the next pass does not look at the same orders again.
            # (At most every QUIET_BOOKMARK: re-looking at a few minutes of changes costs less than a commit.)
            marked = _parse_time(cursor["time"]) if "time" in cursor else None
            if cursor_values and (marked is None or now - marked >= QUIET_BOOKMARK or now < marked):
                with store.write() as session:
                    _set_cursor(session, cursor_values)
    return PassReport(
        plan.full,
        len(plan.order_ids),
        counts["raised"],
        counts["escalated"],
        counts["reopened"],
        counts["closed"],
        counts["ack_requests"],
        notifications,
        _time.perf_counter() - started,
        wrote,
        counts["followed"],
    )


def order_facts(session: Session, ids: Sequence[int]) -> list[OrderFacts]:
    """What the engine needs to know about these orders (one query)."""
    if not ids:
        return []
    marks = ",".join(str(int(i)) for i in ids)
    rows = session.execute(
        text(
            "SELECT o.id, o.order_no, o.state, o.state_since, o.promised_date, o.rush, coalesce(u.name, '') "
            f"FROM sales_order o LEFT JOIN app_user u ON u.id = o.owner_id WHERE o.id IN ({marks})"
        )
    ).all()
    return [OrderFacts(int(r[0]), r[1], r[2], _parse_time(r[3]), _date(r[4]), bool(r[5]), r[6]) for r in rows]


def _settled(
    session: Session, workflow: Workflow, config: NotifyConfig, now: datetime, ids: Sequence[int]
) -> bool:
    """True if none of these orders needs an alert raised, closed, re-graded or re-addressed (read-only: a
    quiet pass on a busy desk then never takes the write lock)."""
    live: dict[int, list[Any]] = {}
    if ids:
        marks = ",".join(str(int(i)) for i in ids)
        for row in session.execute(
            text(
                "SELECT order_id, kind, severity, state, state_since, level, target_user FROM alert "
                f"WHERE closed_at IS NULL AND order_id IN ({marks})"
            )
        ):
            live.setdefault(int(row[0]), []).append(row)
    for facts in order_facts(session, ids):
        wanted = wanted_alerts(facts, workflow, config, now)
        for _id, kind, severity, state, since, level, target_user in live.get(facts.id, []):
            moved = state != facts.state or _parse_time(since) != facts.state_since
            if kind in ("ack", "info"):
                if moved:
                    return False
                continue
            want = wanted.pop(kind, None)
            if (
                want is None
                or moved
                or want.severity != severity
                or (level == 0 and target_user != facts.owner)
            ):
                return False
        if wanted:
            return False
    return True


class _Quiet(Exception):
    """A pass found nothing to change (rolls its command back)."""


class _Row:
    """A just-inserted alert as plain attributes (what messages and notifications read)."""

    def __init__(self, **values: Any) -> None:
        self.__dict__.update(values)


class _Engine:
    """The write half of a pass, inside the ``alert_pass`` command's transaction."""

    def __init__(
        self,
        ctx: CommandContext,
        workflow: Workflow,
        config: NotifyConfig,
        now: datetime,
        counts: dict[str, int],
        samples: dict[str, list[str]],
        *,
        pass_key: str = "",
    ) -> None:
        self.ctx, self.session, self.workflow, self.config, self.now = ctx, ctx.session, workflow, config, now
        self.counts, self.samples = counts, samples
        self.outbox = _Outbox(pass_key=pass_key or now.isoformat())
        self._role_users: dict[str, list[str]] = {}
        self.last_audit = 0
        self.changed = 0  # alert rows written (events, re-addressing): 0 means a quiet pass
        self.events: list[dict[str, Any]] = []  # trail entries not yet written (``write_events``)

    # -- bookkeeping --------------------------------------------------------------------------------
    def _count(self, what: str, order_no: str) -> None:
        self.counts[what] += 1
        if len(self.samples[what]) < SAMPLE:
            self.samples[what].append(order_no)

    def users_of(self, role: str) -> list[str]:
        if role not in self._role_users:
            self._role_users.update(users_with_roles(self.session, [role]))
        return self._role_users.get(role, [])

    def event(self, alert: Alert, name: str, *, user: str = "system", **detail: Any) -> None:
        """Add to the alert's trail: kept here and written set-based (a catch-up makes tens of thousands)."""
        self.changed += 1
        self.events.append(_event_row(alert, self.now, name, user, detail))

    def write_events(self) -> None:
        """Write the trail entries made so far, in order: before an action that writes the trail itself
        (``follow_action``), and in ``flush``. Entries that action added through the session are flushed first:
        they were made before these (the trail is read back in id order)."""
        if self.events:
            self.session.flush()
            insert_rows(self.session, AlertEvent, self.events)
            self.events = []

    def flush(self) -> int:
        """Write the trail entries and queue the messages this transaction made; returns how many queued."""
        self.write_events()
        return self.outbox.flush(self.session, self.config, self.now)

    def tell(self, alert: Alert, event: str, message: Msg | None = None) -> None:
        """Queue ``event`` for the alert's current level (people and their groups)."""
        users = [alert.target_user] if alert.target_user else self.users_of(alert.target_role)
        roles = [alert.target_role] if alert.target_role else []
        text_ = message or alert_message(alert, self.workflow, self.now, self.config)
        if event == "escalated":
            text_ = msg("Escalated to you (level {level}): {text}", level=alert.level, text=text_)
        elif event == "reminder":
            text_ = msg("Still unacknowledged: {text}", text=text_)
        key = f"a{alert.id}:{event}:{alert.level}:{alert.version}"
        self.outbox.add(
            event,
            key,
            text_,
            users=users,
            roles=roles,
            severity=alert.severity,
            alert=alert,
            order_no=alert.order_no,
        )

    # -- scan alerts --------------------------------------------------------------------------------
    def _facts(self, ids: Sequence[int]) -> list[OrderFacts]:
        return order_facts(self.session, ids)

    def examine(self, ids: Sequence[int]) -> None:
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start : start + CHUNK]
            live: dict[int, list[Alert]] = {}
            for alert in self.session.exec(
                select(Alert).where(col(Alert.order_id).in_(chunk), col(Alert.closed_at).is_(None))
            ):
                live.setdefault(alert.order_id, []).append(alert)
            to_raise: list[tuple[OrderFacts, Wanted]] = []
            for facts in self._facts(chunk):
                to_raise += self._reconcile(facts, live.get(facts.id, []))
            self.raise_alerts(to_raise)

    def _reconcile(self, facts: OrderFacts, live: list[Alert]) -> list[tuple[OrderFacts, Wanted]]:
        wanted = wanted_alerts(facts, self.workflow, self.config, self.now)
        for alert in live:
            moved = alert.state != facts.state or alert.state_since != facts.state_since
            if alert.kind in ("ack", "info"):
                if moved:
                    self.close(alert, "moved_on")
                continue
            want = wanted.pop(alert.kind, None)
            if want is None or moved:
                self.close(alert, "moved_on" if moved else "resolved")
                if want is not None:
                    wanted[alert.kind] = want
                continue
            if want.severity != alert.severity:
                self._regrade(alert, want)
            if alert.level == 0 and alert.target_user != facts.owner:
                alert.target_user = facts.owner  # the order was (re)assigned: level 0 is that person now
                alert.version += 1
                self.changed += 1
                self.session.add(alert)
        return [(facts, want) for want in wanted.values()]

    def raise_alerts(self, wanted: Sequence[tuple[OrderFacts, Wanted]]) -> None:
        """Open new alerts with bulk inserts (a first pass on a big desk raises tens of thousands, and ORM
        objects cost a third of a millisecond each)."""
        if not wanted:
            return
        self.session.flush()  # closes first: the partial unique index allows one open alert per kind
        rows: list[dict[str, Any]] = []
        for facts, want in wanted:
            st = self.workflow.states[facts.state]
            minutes = timedelta(minutes=st.escalation_minutes)
            rows.append(
                dict(
                    order_id=facts.id,
                    order_no=facts.order_no,
                    kind=want.kind,
                    topic="",
                    severity=want.severity,
                    state=facts.state,
                    state_since=facts.state_since,
                    due_at=want.due_at,
                    level=0,
                    target_role=st.owner,
                    target_user=facts.owner,
                    mover="",
                    status="open",
                    raised_at=self.now,
                    escalate_at=self.now + minutes,
                    acked_by="",
                    snooze_reason="",
                    answer="",
                    answer_reason="",
                    close_reason="",
                    version=1,
                )
            )
        table = Alert.__table__  # type: ignore[attr-defined]
        ids = (
            self.session.execute(insert(table).returning(table.c.id, sort_by_parameter_order=True), rows)
            .scalars()
            .all()
        )
        for alert_id, row in zip(ids, rows, strict=True):
            self.event(_Row(id=alert_id, level=0), "raised", severity=row["severity"])  # type: ignore[arg-type]
        settled = self.follow_earlier_actions(list(zip(ids, rows, strict=True)))
        for alert_id, row in zip(ids, rows, strict=True):
            if alert_id not in settled:  # acknowledged elsewhere already: nobody needs to hear it was raised
                self.tell(_Row(id=alert_id, **row), "raised")  # type: ignore[arg-type]
            self._count("raised", row["order_no"])

    def follow_earlier_actions(self, raised: list[tuple[int, dict[str, Any]]]) -> set[int]:
        """Apply what people at other nodes already did about alerts this node raises only now (its clock or
        its last pass was behind theirs, so it read their acknowledgement before it had the alert): actions
        since the order entered its state, on an alert this node raises for the first time in that stay.
        Returns the ids of the alerts they settled (acknowledged or answered: nobody needs to hear of them)."""
        since = {row["order_no"]: as_utc(row["state_since"]) for _, row in raised}
        actions = [  # usually none: only orders someone acted on elsewhere
            rec
            for rec in rows_in(
                self.session,
                lambda c: (
                    select(AuditRecord)
                    .where(col(AuditRecord.order_no).in_(c), text(f"({PULLED_ACTIONS_SQL})"))
                    .params(via=VIA_LIKE)
                    .order_by(col(AuditRecord.id))
                ),
                since,
            )
            if as_utc(rec.at) >= since[rec.order_no]
        ]
        settled: set[int] = set()
        if not actions:
            return settled
        new_ids = {alert_id for alert_id, _ in raised}
        earlier = {  # alerts this node already had in the same stay: not raised here for the first time
            (a.order_no, a.kind, a.topic, a.state)
            for a in rows_in(
                self.session,
                lambda c: select(Alert).where(col(Alert.order_no).in_(c)),
                {rec.order_no for rec in actions},
            )
            if a.id not in new_ids and as_utc(a.state_since) == since[a.order_no]
        }
        firsts = {(row["order_no"], row["kind"], row["topic"], row["state"]) for _, row in raised} - earlier
        for rec in actions:
            detail = json.loads(rec.detail)
            if (rec.order_no, detail.get("kind"), detail.get("topic"), detail.get("state")) in firsts:
                alert = self.follow_action(rec, detail)
                if alert is not None and alert.id is not None and alert.status in ("acked", "closed"):
                    settled.add(alert.id)
        return settled

    def _regrade(self, alert: Alert, want: Wanted) -> None:
        worse = want.severity == "red" and alert.severity != "red"
        alert.severity = want.severity
        alert.due_at = want.due_at
        alert.version += 1
        if worse:
            # Worse news starts the chain again at the owner, even if someone had acknowledged it.
            alert.status, alert.level, alert.snoozed_until = "open", 0, None
            chain = chain_for(self.workflow, alert)
            alert.target_role = chain[0]
            alert.escalate_at = self.now + minutes_for(self.workflow, alert)
            self.event(alert, "reopened", severity=want.severity)
            self.tell(alert, "reopened")
            self._count("reopened", alert.order_no)
        else:
            self.event(alert, "regraded", severity=want.severity)
        self.session.add(alert)

    def close(self, alert: Alert, reason: str) -> None:
        alert.status, alert.closed_at, alert.close_reason = "closed", self.now, reason
        alert.escalate_at = None
        alert.version += 1
        self.session.add(alert)
        self.event(alert, "closed", reason=reason)
        self._count("closed", alert.order_no)

    # -- escalation ---------------------------------------------------------------------------------
    def escalate_due(self, limit: int) -> bool:
        """End snoozes that are over and climb (or remind) alerts whose deadline passed: at most ``limit`` in
        this transaction, earliest deadline first. Returns True if more are due: the pass goes on in another
        transaction, so a desk that was off over a weekend never holds the write lock for long."""
        snoozed = self.session.exec(
            select(Alert)
            .where(Alert.status == "snoozed", col(Alert.snoozed_until) <= self.now)
            .order_by(col(Alert.snoozed_until))
            .limit(limit + 1)  # one more than taken: whether any are left
        ).all()
        more, snoozed = len(snoozed) > limit, snoozed[:limit]
        for alert in snoozed:
            alert.status, alert.snoozed_until = "open", None
            alert.escalate_at = self.now + minutes_for(self.workflow, alert)
            alert.version += 1
            self.session.add(alert)
            self.event(alert, "snooze_ended")
            self.tell(alert, "snooze_ended")
        room = limit - len(snoozed)
        due = self.session.exec(
            select(Alert)
            .where(Alert.status == "open", col(Alert.escalate_at) <= self.now)
            .order_by(col(Alert.escalate_at))
            .limit(room + 1)
        ).all()
        for alert in due[:room]:
            self.step_up(alert)
        return more or len(due) > room

    def step_up(self, alert: Alert, *, by: str = "system", reason: str = "", **detail: Any) -> bool:
        """Climb as many levels as deadlines have passed (one for a manual escalation); at the top, remind."""
        chain = chain_for(self.workflow, alert)
        minutes = minutes_for(self.workflow, alert)
        manual = by != "system"
        climbed = False
        while manual or (alert.escalate_at is not None and alert.escalate_at <= self.now):
            if alert.level + 1 < len(chain):
                alert.level += 1
                alert.target_role, alert.target_user = chain[alert.level], ""
                alert.escalated_at = self.now
                alert.version += 1
                # Deadlines follow each other (not the pass), so a late engine catches up level by level.
                alert.escalate_at = (self.now if manual else (alert.escalate_at or self.now)) + minutes
                self.event(alert, "escalated", user=by, reason=reason, to=alert.target_role, **detail)
                self.tell(alert, "escalated")
                self._count("escalated", alert.order_no)
                climbed = True
            else:
                if manual:
                    return False
                alert.version += 1
                alert.escalate_at = self.now + minutes
                self.event(alert, "reminder", to=alert.target_role)
                self.tell(alert, "reminder")
            if manual:
                break
        self.session.add(alert)
        return climbed or not manual

    # -- following the audit trail: moves, and other nodes' actions on alerts ------------------------
    def follow_audit(self, after: int) -> None:
        """Broadcast moves (asking for acknowledgement where the transition says so) and apply the actions
        on alerts that sync brought from other nodes, in the order they reached this node's trail."""
        records = self.session.exec(
            select(AuditRecord)
            .where(col(AuditRecord.id) > after, text(f"({FOLLOWED_SQL})"))
            .params(via=VIA_LIKE)
            .order_by(col(AuditRecord.id))
        ).all()
        for rec in records:
            self.last_audit = max(self.last_audit, rec.id or 0)
            detail = json.loads(rec.detail)
            if rec.command != "move_order":
                if "via" in detail:
                    self.follow_action(rec, detail)
                continue
            if "via" in detail and "notify" not in detail:
                # A move made at another node: its event carries the op's arguments; whom the transition
                # tells, and whether it asks them to acknowledge, is in this node's workflow.
                moved = next((t for t in self.workflow.transitions if t.id == detail.get("transition")), None)
                if moved is not None:
                    detail |= {"notify": list(moved.notify), "require_ack": moved.require_ack}
            roles = [r for r in detail.get("notify", []) if isinstance(r, str)]
            if not roles:
                continue
            to, source = str(detail.get("to", "")), str(detail.get("from", ""))
            order = self.session.execute(
                text("SELECT id, state, state_since FROM sales_order WHERE order_no = :n"),
                {"n": rec.order_no},
            ).first()
            still_there = order is not None and order[1] == to
            ask = bool(detail.get("require_ack")) and still_there
            for role in roles:
                move_text = msg(
                    "{user} moved {order_no} from {source} to {target}.{reason}",
                    user=rec.user_name,
                    order_no=rec.order_no,
                    source=_state_label(self.workflow, source),
                    target=_state_label(self.workflow, to),
                    reason=f" {detail['reason']}" if detail.get("reason") else "",
                )
                users = [u for u in self.users_of(role) if u != rec.user_name]
                if not ask:
                    self.outbox.add(
                        "move",
                        f"m{rec.id}:{role}",
                        move_text,
                        users=users,
                        roles=[role],
                        severity="amber",
                        alert=None,
                        order_no=rec.order_no,
                    )
                    continue
                assert order is not None
                for old in self.session.exec(
                    select(Alert).where(
                        Alert.order_id == order[0],
                        Alert.kind == "ack",
                        Alert.topic == role,
                        col(Alert.closed_at).is_(None),
                    )
                ):
                    self.close(old, "superseded")
                self.session.flush()
                alert = Alert(
                    order_id=int(order[0]),
                    order_no=rec.order_no,
                    kind="ack",
                    topic=role,
                    severity="amber",
                    state=to,
                    state_since=_parse_time(order[2]),
                    due_at=rec.at,
                    level=0,
                    target_role=role,
                    mover=rec.user_name,
                    raised_at=self.now,
                )
                alert.escalate_at = rec.at + minutes_for(self.workflow, alert)
                self.session.add(alert)
                self.session.flush()
                self.event(alert, "raised", audit_id=rec.id, source=source)
                self.outbox.add(
                    "ack_request",
                    f"m{rec.id}:{role}",
                    msg("{text} Please acknowledge, or ask for more information.", text=move_text),
                    users=users,
                    roles=[role],
                    severity="amber",
                    alert=alert,
                    order_no=rec.order_no,
                )
                self._count("ack_requests", rec.order_no)

    def follow_action(self, rec: AuditRecord, detail: dict[str, Any]) -> Alert | None:
        """Apply another node's action (pulled by sync into this node's trail) to this node's live alert
        with the same key, as that person, under the same first-arrival rules as the central API
        (``already_done``). Nothing to apply to, or an event this engine cannot read: it stays in the order's
        timeline and changes nothing. Returns the alert it changed."""
        self.write_events()  # the action writes its own trail entry: after those made before it
        command = rec.command
        try:
            key = AlertKey.from_args(detail)
            level = (
                int(detail["level"])
                if command == "escalate_alert" and detail.get("level") is not None
                else None
            )
            until = as_utc(datetime.fromisoformat(detail["until"])) if command == "snooze_alert" else None
            answer = str(detail.get("answer") or "acknowledged")
            if answer not in ("acknowledged", "need_info"):
                raise ValueError(answer)
        except (KeyError, TypeError, ValueError):
            return None
        alert = find_live_alert(self.session, key)
        if already_done(self.workflow, alert, command, now=self.now, level=level, until=until):
            return None
        assert alert is not None
        user, via, reason = rec.user_name, str(detail["via"]), str(detail.get("reason") or "")
        if command == "snooze_alert":
            assert until is not None
            _apply_snooze(self.session, alert, user=user, now=self.now, until=until, reason=reason, via=via)
        elif command == "escalate_alert":
            if not _apply_escalate(self, alert, user=user, reason=reason, to_level=level, via=via):
                return None
        elif alert.kind == "ack":  # answered, or acknowledged (which answers a request)
            _apply_answer(
                self.session,
                self.workflow,
                self.config,
                alert,
                user=user,
                now=self.now,
                answer=answer,
                reason=reason,
                via=via,
            )
        elif command == "acknowledge_alert":
            _apply_acknowledge(
                self.session, alert, user=user, now=self.now, note=str(detail.get("note") or ""), via=via
            )
        else:
            return None  # an answer, but this alert is not a request for acknowledgement
        self.changed += 1
        self._count("followed", alert.order_no)
        return alert


def parse_until(value: str, now: datetime) -> datetime:
    """A snooze end typed by a person: ``+2h``, ``+30m``, ``+1d`` or an ISO time (UTC if no offset)."""
    from orderdesk.errors import UsageError

    text_ = value.strip().lower()
    units = {"m": "minutes", "h": "hours", "d": "days"}
    if text_.startswith("+") and text_[-1:] in units and text_[1:-1].replace(".", "", 1).isdigit():
        return now + timedelta(**{units[text_[-1]]: float(text_[1:-1])})
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise UsageError(
            msg("Snooze until +2h, +30m, +1d or a time like 2026-11-22T08:00, not {value}.", value=value)
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


# -- actions people take (domain commands) ---------------------------------------------------------------
# Alert ids are local to each node: every node that runs the engine raises its own alerts. A person's action
# therefore goes up (sync) with the alert's natural key — order, kind, topic and the order's state it was
# about — and whoever receives it acts on *its own* live alert with that key (``AlertKey``): the central
# API through these same commands (``key=``, see orderdesk/replay_alerts.py), a desk's engine when it reads
# the action in its pulled audit trail (``_Engine.follow_audit``). A node without such a live alert (it does
# not run the engine, or the alert already closed there) only records the action; and where two people acted
# on the same alert, the first action to arrive wins (``already_done``).


@dataclass(frozen=True)
class AlertKey:
    """An alert by what it is about, the same on every node: at most one is live per order, kind and topic.

    ``state`` is the order's state the alert was raised for (an action on an order's overdue alert in
    ``draft`` is not meant for the one it gets later in ``tech_review``). ``topic`` and ``state`` are None in
    ops recorded before they were carried: then any live alert of that kind on the order matches, if just one.
    """

    order_no: str
    kind: str
    topic: str | None = ""
    state: str | None = None

    @classmethod
    def of(cls, alert: Alert) -> AlertKey:
        return cls(alert.order_no, alert.kind, alert.topic, alert.state)

    @classmethod
    def from_args(cls, args: dict[str, Any]) -> AlertKey:
        """The key an action's outbox args carry (ValueError if they do not name one)."""
        order_no, kind = args["order_no"], args["kind"]
        topic, state = args.get("topic"), args.get("state")
        if not isinstance(order_no, str) or not order_no.strip():
            raise ValueError("the alert's order_no must be an order number")
        if kind not in KINDS:
            raise ValueError(f"the alert's kind must be one of {', '.join(KINDS)}, not {kind!r}")
        if not (topic is None or isinstance(topic, str)) or not (state is None or isinstance(state, str)):
            raise ValueError("the alert's topic and state must be text")
        return cls(order_no.strip().upper(), kind, topic, state)

    def to_args(self) -> dict[str, Any]:
        return {"order_no": self.order_no, "kind": self.kind, "topic": self.topic, "state": self.state}


def find_live_alert(session: Session, key: AlertKey) -> Alert | None:
    """This node's live (not closed) alert with ``key``, if it has one."""
    query = select(Alert).where(
        Alert.order_no == key.order_no, Alert.kind == key.kind, col(Alert.closed_at).is_(None)
    )
    if key.topic is not None:
        query = query.where(Alert.topic == key.topic)
    if key.state is not None:
        query = query.where(Alert.state == key.state)
    found = session.exec(query.limit(2)).all()
    return found[0] if len(found) == 1 else None


def already_done(
    workflow: Workflow,
    alert: Alert | None,
    command: str,
    *,
    now: datetime,
    level: int | None = None,
    until: datetime | None = None,
) -> str:
    """Why an action that reached this node from another one changes nothing here ("" if it applies).

    The first action to arrive wins: a late one never undoes what an earlier one did.

    * ``no_live_alert``: no live alert with its key (this node does not run the engine, or the alert has
      closed: the order moved on, or someone answered the request first);
    * ``already_acknowledged``: someone acknowledged it first — a later acknowledgement keeps the first
      person's name, and a later snooze or escalation would only undo "someone is on it";
    * ``already_snoozed``: someone snoozed it first (their time stands);
    * ``snooze_over``: the snooze ended before it arrived;
    * ``already_escalated``: it is already at (or above) the level the person sent it to, or at the top.
    """
    if alert is None:
        return "no_live_alert"
    if alert.status == "acked":
        return "already_acknowledged"
    if command == "snooze_alert":
        if alert.status == "snoozed":
            return "already_snoozed"
        if until is not None and until <= now:
            return "snooze_over"
    if command == "escalate_alert":
        top = len(chain_for(workflow, alert)) - 1
        if alert.level >= top or (level is not None and alert.level >= level):
            return "already_escalated"
    return ""


def _load_alert(ctx: CommandContext, alert_id: int) -> Alert:
    alert = ctx.session.get(Alert, alert_id)
    if alert is None:
        raise Refused(msg("There is no alert {id}.", id=alert_id), code="unknown_alert")
    if alert.status == "closed":
        raise Refused(
            msg(
                "The alert on {order_no} is already closed ({reason}); nothing to do.",
                order_no=alert.order_no,
                reason=alert.close_reason,
            ),
            code="alert_closed",
        )
    return alert


def _one_of(alert_id: int | None, key: AlertKey | None) -> None:
    if (alert_id is None) == (key is None):
        raise TypeError("name the alert either by alert_id (on this node) or by key (from another node)")


def _target(
    ctx: CommandContext,
    alert_id: int | None,
    key: AlertKey | None,
    *,
    level: int | None = None,
    until: datetime | None = None,
) -> tuple[Alert | None, str]:
    """The alert a command acts on, and why it changes nothing ("" if it applies): by id the alert must be
    live here (else a refusal); by key see ``already_done``."""
    if key is None:
        assert alert_id is not None
        return _load_alert(ctx, alert_id), ""
    known = ctx.session.execute(
        text("SELECT 1 FROM sales_order WHERE order_no = :n"), {"n": key.order_no}
    ).first()
    if known is None:
        raise Refused(msg("There is no order {order_no}.", order_no=key.order_no), code="unknown_order")
    alert = find_live_alert(ctx.session, key)
    return alert, already_done(ctx.store.workflow, alert, ctx.name, now=ctx.now, level=level, until=until)


def _check_version(alert: Alert, expected: int | None) -> None:
    if expected is not None and expected != alert.version:
        raise Refused(
            msg(
                "The alert on {order_no} changed while you were looking at it (it may have escalated). "
                "Look again and retry.",
                order_no=alert.order_no,
            ),
            code="stale_alert",
        )


def _require_may_act(ctx: CommandContext, workflow: Workflow, alert: Alert, action: str) -> None:
    chain = {r for r in chain_for(workflow, alert) if r}
    allowed = chain | ({"admin"} if alert.kind in ("ack", "info") else set(COORDINATORS))
    if alert.target_user == ctx.actor.name or ctx.actor.has_any(allowed):
        return
    raise Refused(
        msg(
            "{user} may not {action} the alert on {order_no}: that needs the role {roles}.",
            user=ctx.actor.name,
            action=msg(action),
            order_no=alert.order_no,
            roles=" / ".join(sorted(allowed)),
        ),
        code="forbidden",
        who=tuple(sorted(allowed)),
    )


def _event_row(alert: Alert, at: datetime, name: str, user: str, detail: dict[str, Any]) -> dict[str, Any]:
    return {
        "alert_id": alert.id or 0,
        "at": at,
        "event": name,
        "level": alert.level,
        "user_name": user,
        "detail": canonical_json(detail),
    }


def _add_event(session: Session, alert: Alert, at: datetime, name: str, user: str, **detail: Any) -> None:
    session.add(AlertEvent(**_event_row(alert, at, name, user, detail)))


def _record(
    ctx: CommandContext,
    key: AlertKey | None,
    alert: Alert | None,
    base: int | None,
    unchanged: str,
    **args: Any,
) -> None:
    """Audit and outbox: the synced args name the alert by its key (``alert_id`` is this node's, so it goes
    in the audit detail only), plus why nothing changed if so."""
    named = AlertKey.of(alert) if alert is not None else key
    assert named is not None
    detail: dict[str, Any] = {"alert_id": alert.id if alert is not None else None}
    if unchanged:
        detail["unchanged"] = unchanged
    ctx.record(order_no=named.order_no, args={**named.to_args(), **args}, base_version=base, detail=detail)


@dataclass(frozen=True)
class AlertChange:
    """The outcome of an action on an alert, for the screen that asked (``unchanged``: why the action was only
    recorded, see ``already_done``; then ``alert_id`` is 0 if this node has no such alert)."""

    alert_id: int
    order_no: str
    status: str
    level: int
    version: int
    unchanged: str = ""


def _change(alert: Alert | None, key: AlertKey | None, unchanged: str = "") -> AlertChange:
    if alert is None:
        assert key is not None
        return AlertChange(0, key.order_no, "", 0, 0, unchanged)
    return AlertChange(alert.id or 0, alert.order_no, alert.status, alert.level, alert.version, unchanged)


# The effects, shared by the commands and by the engine following another node's action.
def _apply_acknowledge(session: Session, alert: Alert, *, user: str, now: datetime, **detail: Any) -> None:
    alert.status, alert.acked_at, alert.acked_by = "acked", now, user
    alert.escalate_at, alert.snoozed_until = None, None
    if alert.kind == "info":
        alert.status, alert.closed_at, alert.close_reason = "closed", now, "answered"
    alert.version += 1
    session.add(alert)
    _add_event(session, alert, now, "acknowledged", user, **detail)


def _apply_answer(
    session: Session,
    workflow: Workflow,
    config: NotifyConfig,
    alert: Alert,
    *,
    user: str,
    now: datetime,
    answer: str,
    reason: str,
    **detail: Any,
) -> None:
    alert.answer, alert.answer_reason = answer, reason
    alert.acked_at, alert.acked_by = now, user
    alert.status, alert.closed_at, alert.close_reason = "closed", now, answer
    alert.escalate_at = None
    alert.version += 1
    session.add(alert)
    _add_event(session, alert, now, answer, user, reason=reason, **detail)
    state = _state_label(workflow, alert.state)
    if answer == "acknowledged":
        message = msg(
            "{user} ({role}) acknowledged your move of {order_no} to {state}.",
            user=user,
            role=alert.topic,
            order_no=alert.order_no,
            state=state,
        )
        enqueue(
            session,
            config,
            key=f"a{alert.id}:answered",
            now=now,
            event="answered",
            message=message,
            users=[alert.mover],
            roles=[],
            alert_id=alert.id,
            order_no=alert.order_no,
        )
        return
    info = Alert(
        order_id=alert.order_id,
        order_no=alert.order_no,
        kind="info",
        topic=alert.topic,
        severity="amber",
        state=alert.state,
        state_since=alert.state_since,
        due_at=now,
        level=0,
        target_role="",
        target_user=alert.mover,
        mover=alert.mover,
        acked_by=user,
        answer_reason=reason,
        raised_at=now,
    )
    existing = session.exec(
        select(Alert).where(
            Alert.order_id == alert.order_id,
            Alert.kind == "info",
            Alert.topic == alert.topic,
            col(Alert.closed_at).is_(None),
        )
    ).first()
    if existing is not None:
        existing.status, existing.closed_at, existing.close_reason = "closed", now, "superseded"
        session.add(existing)
        session.flush()
    info.escalate_at = now + minutes_for(workflow, info)
    session.add(info)
    session.flush()
    _add_event(session, info, now, "raised", user, reason=reason, by=user, **detail)
    enqueue(
        session,
        config,
        key=f"a{info.id}:raised",
        now=now,
        event="need_info",
        message=alert_message(info, workflow, now, config),
        users=[alert.mover],
        roles=[],
        alert_id=info.id,
        order_no=alert.order_no,
    )


def _apply_snooze(
    session: Session, alert: Alert, *, user: str, now: datetime, until: datetime, reason: str, **detail: Any
) -> None:
    alert.status, alert.snoozed_until, alert.snooze_reason = "snoozed", until, reason
    alert.escalate_at = None
    alert.version += 1
    session.add(alert)
    _add_event(session, alert, now, "snoozed", user, until=until.isoformat(), reason=reason, **detail)


def _apply_escalate(
    engine: _Engine, alert: Alert, *, user: str, reason: str, to_level: int | None, **detail: Any
) -> bool:
    """One level up (reopening a snoozed or acknowledged alert), then on up to ``to_level`` if given; False
    if it is already at the top of its chain (nothing changed)."""
    if alert.level + 1 >= len(chain_for(engine.workflow, alert)):
        return False
    if alert.status != "open":
        alert.status, alert.snoozed_until = "open", None
    engine.step_up(alert, by=user, reason=reason, **detail)
    while (
        to_level is not None
        and alert.level < to_level
        and engine.step_up(alert, by=user, reason=reason, **detail)
    ):
        pass
    return True


def acknowledge_alert(
    store: Store,
    *,
    alert_id: int | None = None,
    key: AlertKey | None = None,
    user: str | Actor,
    note: str = "",
    expected_version: int | None = None,
    config: NotifyConfig | None = None,
) -> AlertChange:
    """ "I have seen it and I am on it": stops the escalation until the order moves on or gets worse.

    On an acknowledgement request (``ack``) this is the answer "acknowledged", sent back to the mover.
    ``key`` instead of ``alert_id``: the same action from another node (see ``already_done``).
    """
    _one_of(alert_id, key)
    if (key.kind if key is not None else _kind_of(store, alert_id or 0)) == "ack":
        return answer_ack_request(
            store,
            alert_id=alert_id,
            key=key,
            user=user,
            answer="acknowledged",
            reason=note,
            expected_version=expected_version,
            config=config,
        )
    note = clean_text(note, field_name="Note", max_len=REASON_MAX)
    workflow = store.workflow
    with command(store, "acknowledge_alert", user=user) as ctx:
        alert, unchanged = _target(ctx, alert_id, key)
        base = alert.version if alert is not None else None
        if not unchanged:
            assert alert is not None
            _check_version(alert, expected_version)
            _require_may_act(ctx, workflow, alert, "acknowledge")
            _apply_acknowledge(ctx.session, alert, user=ctx.actor.name, now=ctx.now, note=note)
        _record(ctx, key, alert, base, unchanged, note=note)
        return _change(alert, key, unchanged)


def _kind_of(store: Store, alert_id: int) -> str:
    with store.read() as session:
        alert = session.get(Alert, alert_id)
        return alert.kind if alert else ""


def answer_ack_request(
    store: Store,
    *,
    alert_id: int | None = None,
    key: AlertKey | None = None,
    user: str | Actor,
    answer: str,
    reason: str = "",
    expected_version: int | None = None,
    config: NotifyConfig | None = None,
) -> AlertChange:
    """Answer a move that asked for acknowledgement: ``acknowledged``, or ``need_info`` with a reason that
    goes back to whoever made the move (as an ``info`` alert addressed to them). ``key`` instead of
    ``alert_id``: the same answer from another node (see ``already_done``)."""
    _one_of(alert_id, key)
    if answer not in ("acknowledged", "need_info"):
        raise Refused(
            msg("Answer acknowledged or need_info, not {answer}.", answer=answer), code="bad_answer"
        )
    reason = clean_text(reason, field_name="Reason", max_len=REASON_MAX, required=answer == "need_info")
    config = config or load_notify_config()
    workflow = store.workflow
    with command(store, "answer_ack_request", user=user) as ctx:
        if key is not None and key.kind != "ack":
            raise Refused(
                msg("The alert on {order_no} is not a request for acknowledgement.", order_no=key.order_no),
                code="not_ack_request",
            )
        alert, unchanged = _target(ctx, alert_id, key)
        base = alert.version if alert is not None else None
        if not unchanged:
            assert alert is not None
            if alert.kind != "ack":
                raise Refused(
                    msg(
                        "The alert on {order_no} is not a request for acknowledgement.",
                        order_no=alert.order_no,
                    ),
                    code="not_ack_request",
                )
            _check_version(alert, expected_version)
            _require_may_act(ctx, workflow, alert, "answer")
            _apply_answer(
                ctx.session,
                workflow,
                config,
                alert,
                user=ctx.actor.name,
                now=ctx.now,
                answer=answer,
                reason=reason,
            )
        _record(ctx, key, alert, base, unchanged, answer=answer, reason=reason)
        return _change(alert, key, unchanged)


def snooze_alert(
    store: Store,
    *,
    alert_id: int | None = None,
    key: AlertKey | None = None,
    user: str | Actor,
    until: datetime,
    reason: str,
    expected_version: int | None = None,
) -> AlertChange:
    """Quiet an alert until ``until`` (at most two weeks) for a stated reason; then it comes back.

    ``key`` instead of ``alert_id``: the same snooze from another node, which checked the two weeks against
    its own clock; here it is only recorded if it has already ended (see ``already_done``)."""
    _one_of(alert_id, key)
    reason = clean_text(reason, field_name="Reason", max_len=REASON_MAX, required=True)
    until = until if until.tzinfo else until.replace(tzinfo=UTC)
    workflow = store.workflow
    with command(store, "snooze_alert", user=user) as ctx:
        alert, unchanged = _target(ctx, alert_id, key, until=until)
        base = alert.version if alert is not None else None
        if not unchanged:
            assert alert is not None
            _check_version(alert, expected_version)
            _require_may_act(ctx, workflow, alert, "snooze")
            if until <= ctx.now:
                raise Refused(msg("Snooze until a time in the future."), code="snooze_past")
            if key is None and until > ctx.now + SNOOZE_MAX:
                raise Refused(
                    msg("An alert may be snoozed for at most {days} days.", days=SNOOZE_MAX.days),
                    code="snooze_long",
                )
            _apply_snooze(ctx.session, alert, user=ctx.actor.name, now=ctx.now, until=until, reason=reason)
        _record(ctx, key, alert, base, unchanged, until=until.isoformat(), reason=reason)
        return _change(alert, key, unchanged)


def escalate_alert(
    store: Store,
    *,
    alert_id: int | None = None,
    key: AlertKey | None = None,
    user: str | Actor,
    reason: str = "",
    to_level: int | None = None,
    expected_version: int | None = None,
    config: NotifyConfig | None = None,
) -> AlertChange:
    """Send an alert one level up now (and tell that level); with ``to_level``, on up to that level.

    ``key`` instead of ``alert_id``: the same escalation from another node, with the level it went to there
    (only recorded if the alert is already at or above it, see ``already_done``)."""
    _one_of(alert_id, key)
    reason = clean_text(reason, field_name="Reason", max_len=REASON_MAX)
    config = config or load_notify_config()
    workflow = store.workflow
    with command(store, "escalate_alert", user=user) as ctx:
        alert, unchanged = _target(ctx, alert_id, key, level=to_level)
        base = alert.version if alert is not None else None
        if not unchanged:
            assert alert is not None
            _check_version(alert, expected_version)
            _require_may_act(ctx, workflow, alert, "escalate")
            engine = _Engine(
                ctx, workflow, config, ctx.now, dict.fromkeys(COUNTS, 0), {k: [] for k in COUNTS}
            )
            if not _apply_escalate(engine, alert, user=ctx.actor.name, reason=reason, to_level=to_level):
                raise Refused(
                    msg(
                        "The alert on {order_no} is already at the top of its chain ({role}).",
                        order_no=alert.order_no,
                        role=alert.target_role,
                    ),
                    code="top_of_chain",
                )
            engine.flush()
        level = alert.level if alert is not None and not unchanged else to_level
        to = alert.target_role if alert is not None and not unchanged else None
        _record(ctx, key, alert, base, unchanged, level=level, to=to, reason=reason)
        return _change(alert, key, unchanged)


def set_promised_date(
    store: Store,
    *,
    order_no: str,
    promised: date,
    reason: str,
    user: str | Actor,
    expected_version: int | None = None,
    config: NotifyConfig | None = None,
) -> None:
    """A new promised date, with the reason (required: the customer will ask). Re-grades its alerts now."""
    from orderdesk.orders import edit_order

    reason = clean_text(reason, field_name="Reason", max_len=REASON_MAX, required=True)
    config = config or load_notify_config()
    today = local_today(store.clock(), config.alerts.utc_offset_hours)
    if promised < today:
        raise Refused(
            msg("The promised date {date} is in the past.", date=promised.isoformat()), code="date_in_past"
        )
    edit_order(
        store,
        order_no=order_no,
        changes={"promised_date": promised.isoformat()},
        user=user,
        reason=reason,
        expected_version=expected_version,
    )
    refresh_order_alerts(store, order_no, config=config)


def assign_alert_owner(
    store: Store,
    *,
    order_no: str,
    owner: str,
    user: str | Actor,
    expected_version: int | None = None,
    config: NotifyConfig | None = None,
) -> None:
    """Make ``owner`` responsible for the order (the order's own ``assign`` command) and re-address its
    alerts: level 0 goes to that person from now on."""
    from orderdesk.orders import assign_order

    assign_order(store, order_no=order_no, owner=owner, user=user, expected_version=expected_version)
    refresh_order_alerts(store, order_no, config=config)


def refresh_order_alerts(
    store: Store, order_no: str, *, config: NotifyConfig | None = None
) -> PassReport | None:
    """Re-examine one order's alerts now (after an action that changes what it deserves) — only where the
    alert jobs run (on a desk that syncs, the server re-examines it when the change arrives)."""
    from orderdesk.scheduler import run_alert_jobs_here

    if not run_alert_jobs_here(store):
        return None
    with store.read() as session:
        order_id = session.execute(
            text("SELECT id FROM sales_order WHERE order_no = :n"), {"n": order_no.strip().upper()}
        ).scalar()
    if order_id is None:
        raise Refused(msg("There is no order {order_no}.", order_no=order_no), code="unknown_order")
    return run_alert_pass(store, config, only_orders=[int(order_id)])


# -- reading (plain data for screens and the CLI) --------------------------------------------------------
@dataclass(frozen=True)
class AlertView:
    id: int
    order_no: str
    kind: str
    topic: str
    severity: str
    status: str
    state: str
    state_label: Label
    level: int
    target_role: str
    target_user: str
    mover: str
    raised_at: datetime
    due_at: datetime
    escalate_at: datetime | None
    snoozed_until: datetime | None
    acked_by: str
    message: Msg
    version: int

    def to_json(self, now: datetime | None = None) -> dict[str, Any]:
        return {
            "id": self.id,
            "order_no": self.order_no,
            "kind": self.kind,
            "topic": self.topic,
            "severity": self.severity,
            "status": self.status,
            "state": self.state,
            "state_label": self.state_label.to_json(),
            "level": self.level,
            "target_role": self.target_role,
            "target_user": self.target_user,
            "mover": self.mover,
            "raised_at": self.raised_at.isoformat(),
            "due_at": self.due_at.isoformat(),
            "escalate_at": self.escalate_at.isoformat() if self.escalate_at else None,
            "escalates_in_seconds": int((self.escalate_at - now).total_seconds())
            if self.escalate_at and now
            else None,
            "snoozed_until": self.snoozed_until.isoformat() if self.snoozed_until else None,
            "acked_by": self.acked_by,
            "message": str(self.message),
            "version": self.version,
        }


def _view(alert: Alert, workflow: Workflow, now: datetime, config: NotifyConfig) -> AlertView:
    return AlertView(
        alert.id or 0,
        alert.order_no,
        alert.kind,
        alert.topic,
        alert.severity,
        alert.status,
        alert.state,
        _state_label(workflow, alert.state),
        alert.level,
        alert.target_role,
        alert.target_user,
        alert.mover,
        alert.raised_at,
        alert.due_at,
        alert.escalate_at,
        alert.snoozed_until,
        alert.acked_by,
        alert_message(alert, workflow, now, config),
        alert.version,
    )


def list_alerts(
    store: Store,
    *,
    include_closed: bool = False,
    order_no: str | None = None,
    kind: str | None = None,
    limit: int = 100,
    config: NotifyConfig | None = None,
) -> list[AlertView]:
    """Alerts, soonest to escalate first (open ones), then the newest."""
    config = config or load_notify_config()
    now = store.clock()
    with store.read() as session:
        query = select(Alert)
        if not include_closed:
            query = query.where(col(Alert.closed_at).is_(None))
        if order_no:
            query = query.where(Alert.order_no == order_no.strip().upper())
        if kind:
            query = query.where(Alert.kind == kind)
        query = query.order_by(col(Alert.escalate_at).is_(None), col(Alert.escalate_at), col(Alert.id).desc())
        rows = session.exec(query.limit(max(1, min(limit, 1000)))).all()
        return [_view(a, store.workflow, now, config) for a in rows]


@dataclass(frozen=True)
class AlertEventView:
    at: datetime
    event: str
    level: int
    user_name: str
    detail: dict[str, Any]


def alert_trail(store: Store, alert_id: int) -> list[AlertEventView]:
    """Everything that happened to one alert, oldest first."""
    with store.read() as session:
        rows = session.exec(
            select(AlertEvent).where(AlertEvent.alert_id == alert_id).order_by(col(AlertEvent.id))
        ).all()
        return [AlertEventView(r.at, r.event, r.level, r.user_name, json.loads(r.detail)) for r in rows]


def alert_for_order(store: Store, order_no: str) -> list[AlertView]:
    return list_alerts(store, order_no=order_no)


__all__ = [
    "ACTION_COMMANDS",
    "KINDS",
    "AlertChange",
    "AlertKey",
    "AlertView",
    "PassReport",
    "acknowledge_alert",
    "alert_trail",
    "already_done",
    "answer_ack_request",
    "assign_alert_owner",
    "escalate_alert",
    "find_live_alert",
    "list_alerts",
    "run_alert_pass",
    "set_promised_date",
    "snooze_alert",
    "wanted_alerts",
]


# -- the planner's triage (plain data, one page at a time) -----------------------------------------------
@dataclass(frozen=True)
class TriageFilter:
    """What the triage list is narrowed to; None / "" = everything."""

    state: str | None = None
    owner: str | None = None  # the order's owner (user name)
    channel: str | None = None
    customer: str = ""  # code, or part of the name


@dataclass(frozen=True)
class TriageRow:
    alert_id: int
    alert_version: int
    order_no: str
    order_version: int
    kind: str
    topic: str
    severity: str
    status: str
    state: str
    state_label: Label
    late_seconds: int  # > 0: how late; < 0: how long until it is due (amber promised dates)
    level: int
    target_role: str
    target_user: str
    owner: str  # the order's owner ("" if nobody is named)
    mover: str
    customer_code: str
    customer_name: str
    channel: str
    amount: int
    rush: bool
    promised_date: date | None
    escalate_at: datetime | None
    snoozed_until: datetime | None
    score: float
    message: Msg
    blocking: Msg | None  # the first failing guard of the next step, or who the order waits for
    blocking_who: tuple[str, ...]


# How bad an alert is, in points: 10 per day late (up to 30 days), 40 for a rush order, 25 for red, the
# order's value (4 per digit of its amount in yuan), the customer (credit level A 15, B 8, C 3), and
# acknowledged or snoozed alerts sink below the ones nobody has picked up yet.
SCORE_SQL = (
    "({late_days} * 10"
    " + CASE WHEN o.rush THEN 40 ELSE 0 END + CASE WHEN a.severity = 'red' THEN 25 ELSE 0 END"
    " + length(CAST(o.amount / 100 AS TEXT)) * 4"
    " + CASE c.credit_level WHEN 'A' THEN 15 WHEN 'B' THEN 8 WHEN 'C' THEN 3 ELSE 0 END"
    " - CASE WHEN a.status <> 'open' THEN 200 ELSE 0 END)"
)
LATE_DAYS = {  # days late, clamped to [-3, 30]
    "sqlite": "(min(max((julianday(:now) - julianday(a.due_at)) * 24, -72), 720) / 24.0)",
    "postgresql": "(LEAST(GREATEST(EXTRACT(EPOCH FROM (CAST(:now AS timestamptz) - a.due_at)) / 3600.0, -72), 720) / 24.0)",
}


def _triage_where(filters: TriageFilter) -> tuple[str, dict[str, Any]]:
    where = ["a.closed_at IS NULL"]
    params: dict[str, Any] = {}
    if filters.state:
        where.append("o.state = :state")
        params["state"] = filters.state
    if filters.owner:
        where.append("u.name = :owner")
        params["owner"] = filters.owner
    if filters.channel:
        where.append("o.channel = :channel")
        params["channel"] = filters.channel
    if filters.customer.strip():
        where.append("(c.code = :ccode OR c.name LIKE :cname)")
        params["ccode"] = filters.customer.strip()
        params["cname"] = f"%{filters.customer.strip()}%"
    return " AND ".join(where), params


def triage(
    store: Store,
    *,
    filters: TriageFilter | None = None,
    limit: int = 50,
    offset: int = 0,
    config: NotifyConfig | None = None,
    with_blocking: bool = True,
) -> tuple[int, list[TriageRow]]:
    """Open alerts ranked by how bad they are (``SCORE_SQL``), one page, with what blocks each order.

    ``with_blocking=False`` leaves ``blocking`` empty (guards can be slow on a big desk: the triage screen
    shows the page first and fills that column in with ``blocking_of``)."""
    filters = filters or TriageFilter()
    config = config or load_notify_config()
    workflow = store.workflow
    now = store.clock()
    where, params = _triage_where(filters)
    joins = (
        "FROM alert a JOIN sales_order o ON o.id = a.order_id JOIN customer c ON c.id = o.customer_id "
        "LEFT JOIN app_user u ON u.id = o.owner_id "
    )
    with store.read() as session:
        score = SCORE_SQL.format(late_days=LATE_DAYS["sqlite" if is_sqlite(session) else "postgresql"])
        if params:
            total = int(session.execute(text(f"SELECT count(*) {joins} WHERE {where}"), params).scalar_one())
        else:  # no filter on the order: count the live alerts alone (an index-only count)
            total = int(
                session.execute(text("SELECT count(*) FROM alert WHERE closed_at IS NULL")).scalar_one()
            )
        rows = session.execute(
            text(
                "SELECT a.id, a.version, a.order_no, o.version, a.kind, a.topic, a.severity, a.status, o.state, "
                "a.due_at, a.level, a.target_role, a.target_user, coalesce(u.name, ''), a.mover, c.code, c.name, "
                f"o.channel, o.amount, o.rush, o.promised_date, a.escalate_at, a.snoozed_until, {score} "
                f"{joins} WHERE {where} ORDER BY 24 DESC, a.id LIMIT :limit OFFSET :offset"
            ),
            {
                **params,
                "now": bind_time(session, now),
                "limit": max(1, min(limit, 200)),
                "offset": max(0, offset),
            },
        ).all()
        alerts = {
            a.id: a for a in session.exec(select(Alert).where(col(Alert.id).in_([int(r[0]) for r in rows])))
        }
        out: list[TriageRow] = []
        for r in rows:
            alert = alerts[int(r[0])]
            due_at = _parse_time(r[9])
            out.append(
                TriageRow(
                    alert_id=int(r[0]),
                    alert_version=int(r[1]),
                    order_no=r[2],
                    order_version=int(r[3]),
                    kind=r[4],
                    topic=r[5],
                    severity=r[6],
                    status=r[7],
                    state=r[8],
                    state_label=_state_label(workflow, r[8]),
                    late_seconds=int((now - due_at).total_seconds()),
                    level=int(r[10]),
                    target_role=r[11],
                    target_user=r[12],
                    owner=r[13],
                    mover=r[14],
                    customer_code=r[15],
                    customer_name=r[16],
                    channel=r[17],
                    amount=int(r[18]),
                    rush=bool(r[19]),
                    promised_date=_date(r[20]),
                    escalate_at=_parse_time(r[21]) if r[21] else None,
                    snoozed_until=_parse_time(r[22]) if r[22] else None,
                    score=float(r[23]),
                    message=alert_message(alert, workflow, now, config),
                    blocking=None,
                    blocking_who=(),
                )
            )
    if with_blocking:
        found = blocking_of(store, [r.alert_id for r in out])
        out = [replace(r, blocking=found[r.alert_id][0], blocking_who=found[r.alert_id][1]) for r in out]
    return total, out


def blocking_of(store: Store, alert_ids: Sequence[int]) -> dict[int, tuple[Msg | None, tuple[str, ...]]]:
    """For each alert, what keeps its order from the next step (see ``blocking_for``)."""
    from orderdesk.orders import get_order_row

    workflow = store.workflow
    out: dict[int, tuple[Msg | None, tuple[str, ...]]] = {}
    with store.read() as session:
        for alert in session.exec(select(Alert).where(col(Alert.id).in_(list(alert_ids)))):
            order = get_order_row(session, alert.order_no)
            out[alert.id or 0] = blocking_for(session, workflow, order, alert)
    return out


def next_step(workflow: Workflow, order: Any) -> Any:
    """The transition that moves ``order`` forward: the first in file order from its state, on its route,
    that is not an exception (hold / cancel, which leave every active state) and leads further on."""
    order_of = {s: i for i, s in enumerate(workflow.states)}
    here = order_of.get(order.state, -1)
    everywhere = {s for s, st in workflow.states.items() if st.kind == "active"}
    for t in workflow.transitions_from(order.state):
        if t.returns_to_previous:
            return t
        target = workflow.states.get(t.to)
        if target is None or target.kind == "hold" or everywhere <= t.sources:
            continue
        if t.route not in (None, "common", order.route):
            continue
        if order_of.get(t.to, -1) > here:
            return t
    return None


def blocking_for(
    session: Session, workflow: Workflow, order: Any, alert: Alert
) -> tuple[Msg | None, tuple[str, ...]]:
    """What keeps the order from its next step: the first failing guard, else who has to make the move."""
    from orderdesk.guards import GUARDS

    if alert.kind == "ack":
        return msg("Waiting for {role} to acknowledge.", role=_role_label(workflow, alert.topic)), (
            alert.topic,
        )
    if alert.kind == "info":
        return msg("{user} must answer the question.", user=alert.mover), ()
    step = next_step(workflow, order)
    if step is None:
        return None, ()
    here = _state_label(workflow, order.state)
    for guard in step.guards:
        failure = GUARDS[guard](session, order, here)
        if failure is not None:
            return failure.message, failure.who
    roles = tuple(sorted(step.roles - {"admin"})) or tuple(sorted(step.roles))
    return (
        msg(
            "Waiting for {roles}: {step}",
            step=Label(step.label_en, step.label_zh),
            roles=" / ".join(str(_role_label(workflow, r)) for r in roles),
        ),
        roles,
    )


def _role_label(workflow: Workflow, role: str) -> Label:
    r = workflow.roles.get(role)
    return Label(r.label_en, r.label_zh) if r else Label(role, role)
