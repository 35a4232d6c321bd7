"""The supervisor's status board: where everything is right now, in a handful of indexed queries.

Nothing here counts a million rows. Orders per state and promised date are kept in ``board_tally`` and
entries into each state per hour in ``board_flow``, both by triggers on ``sales_order`` (migration 0004);
the oldest order per state is an index seek on ``(state, state_since)``; overdue work per state is a range
count on the same index; open alerts by level come from a partial index on live alerts. ``load_board``
returns frozen data and how long the database took (``db_ms``), which the board screen and the benchmark
report.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlmodel import Session

from orderdesk.alerts import local_midnight, local_today
from orderdesk.i18n import Label
from orderdesk.notify import NotifyConfig, load_notify_config
from orderdesk.store import Store, sqlite_time
from orderdesk.workflow import Workflow

NEXT_ESCALATIONS = 8

# Kept identical to migration 0004: recreated if a later migration rebuilt sales_order and lost them.
TRIGGERS = {
    "board_tally_insert": """
    CREATE TRIGGER board_tally_insert AFTER INSERT ON sales_order BEGIN
        INSERT INTO board_tally (state, promised, n) VALUES (NEW.state, coalesce(NEW.promised_date, ''), 1)
            ON CONFLICT (state, promised) DO UPDATE SET n = n + 1;
        INSERT INTO board_flow (state, hour, promised, n)
            VALUES (NEW.state, substr(NEW.state_since, 1, 13), coalesce(NEW.promised_date, ''), 1)
            ON CONFLICT (state, hour, promised) DO UPDATE SET n = n + 1;
    END
    """,
    "board_tally_update": """
    CREATE TRIGGER board_tally_update AFTER UPDATE OF state, promised_date ON sales_order
    WHEN OLD.state IS NOT NEW.state OR OLD.promised_date IS NOT NEW.promised_date BEGIN
        UPDATE board_tally SET n = n - 1 WHERE state = OLD.state AND promised = coalesce(OLD.promised_date, '');
        INSERT INTO board_tally (state, promised, n) VALUES (NEW.state, coalesce(NEW.promised_date, ''), 1)
            ON CONFLICT (state, promised) DO UPDATE SET n = n + 1;
    END
    """,
    "board_flow_move": """
    CREATE TRIGGER board_flow_move AFTER UPDATE OF state ON sales_order
    WHEN OLD.state IS NOT NEW.state BEGIN
        INSERT INTO board_flow (state, hour, promised, n)
            VALUES (NEW.state, substr(NEW.state_since, 1, 13), coalesce(NEW.promised_date, ''), 1)
            ON CONFLICT (state, hour, promised) DO UPDATE SET n = n + 1;
    END
    """,
    "board_tally_delete": """
    CREATE TRIGGER board_tally_delete AFTER DELETE ON sales_order BEGIN
        UPDATE board_tally SET n = n - 1 WHERE state = OLD.state AND promised = coalesce(OLD.promised_date, '');
    END
    """,
}
REBUILD = (
    "DELETE FROM board_tally",
    "DELETE FROM board_flow",
    "INSERT INTO board_tally (state, promised, n) "
    "SELECT state, coalesce(promised_date, ''), count(*) FROM sales_order GROUP BY 1, 2",
    "INSERT INTO board_flow (state, hour, promised, n) "
    "SELECT state, substr(state_since, 1, 13), coalesce(promised_date, ''), count(*) FROM sales_order "
    "GROUP BY 1, 2, 3",
)


def ensure_tallies(store: Store) -> bool:
    """Recreate the tally triggers (and rebuild the tallies) if they are missing; True if it had to."""
    if getattr(store, "dialect", "sqlite") != "sqlite":
        return False  # PostgreSQL keeps them with one plpgsql trigger (migration 0004)
    with store.read() as session:
        present = {
            r[0] for r in session.execute(text("SELECT name FROM sqlite_master WHERE type = 'trigger'")).all()
        }
    if set(TRIGGERS) <= present:
        return False
    with store.write() as session:
        for name, sql in TRIGGERS.items():
            session.execute(text(f"DROP TRIGGER IF EXISTS {name}"))
            session.execute(text(sql))
        for sql in REBUILD:
            session.execute(text(sql))
    return True


@contextmanager
def tallies_suspended(store: Store) -> Iterator[None]:
    """For bulk loads (the demo desk, an import): drop the tally triggers, and rebuild the tallies in one
    pass afterwards. Per-row triggers roughly double the time of a million-row ``executemany``."""
    with store.write() as session:
        for name in TRIGGERS:
            session.execute(text(f"DROP TRIGGER IF EXISTS {name}"))
    try:
        yield
    finally:
        ensure_tallies(store)


@dataclass(frozen=True)
class StateLine:
    state: str
    label: Label
    kind: str
    count: int
    overdue: int
    timeout_hours: float
    oldest_order_no: str
    oldest_since: datetime | None


@dataclass(frozen=True)
class LevelLine:
    level: int
    open: int
    next_escalate_at: datetime | None


@dataclass(frozen=True)
class Escalation:
    alert_id: int
    order_no: str
    kind: str
    severity: str
    level: int
    target_role: str
    escalate_at: datetime


@dataclass(frozen=True)
class Board:
    """One refresh of the board (plain data; safe to hand to the UI thread)."""

    at: datetime
    today: date
    states: tuple[StateLine, ...]  # in workflow order
    red: int  # open orders whose promised date has passed
    amber: int  # ... is within amber_days
    green: int  # ... is further away
    undated: int  # open orders without a promised date
    bottleneck: str  # the state holding the most overdue orders ("" if none)
    levels: tuple[LevelLine, ...]  # open (unacknowledged) alerts per level
    acked: int
    snoozed: int
    next_escalations: tuple[Escalation, ...]
    shipped_today: int
    delivered_week: int
    on_time_week: int
    db_ms: float

    @property
    def on_time_rate(self) -> float | None:
        return self.on_time_week / self.delivered_week if self.delivered_week else None

    @property
    def open_alerts(self) -> int:
        return sum(line.open for line in self.levels)

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "today": self.today.isoformat(),
            "states": [
                {
                    "state": s.state,
                    "label": s.label.to_json(),
                    "count": s.count,
                    "overdue": s.overdue,
                    "oldest": {
                        "order_no": s.oldest_order_no,
                        "since": s.oldest_since.isoformat() if s.oldest_since else None,
                    },
                }
                for s in self.states
            ],
            "due": {"red": self.red, "amber": self.amber, "green": self.green, "undated": self.undated},
            "bottleneck": self.bottleneck or None,
            "alerts": {
                "by_level": [
                    {
                        "level": lv.level,
                        "open": lv.open,
                        "next_escalate_at": lv.next_escalate_at.isoformat() if lv.next_escalate_at else None,
                    }
                    for lv in self.levels
                ],
                "acknowledged": self.acked,
                "snoozed": self.snoozed,
                "next_escalations": [
                    {
                        "alert_id": e.alert_id,
                        "order_no": e.order_no,
                        "kind": e.kind,
                        "level": e.level,
                        "to": e.target_role,
                        "escalate_at": e.escalate_at.isoformat(),
                    }
                    for e in self.next_escalations
                ],
            },
            "shipped_today": self.shipped_today,
            "delivered_this_week": self.delivered_week,
            "on_time_this_week": self.on_time_week,
            "on_time_rate": None if self.on_time_rate is None else round(self.on_time_rate, 4),
            "db_ms": round(self.db_ms, 2),
        }


def _time(value: Any) -> datetime | None:
    from orderdesk.alerts import _parse_time

    return _parse_time(value) if value else None


def load_board(store: Store, config: NotifyConfig | None = None) -> Board:
    """Everything the board shows, at ``store.clock()``."""
    config = config or load_notify_config()
    if not store.__dict__.get("_board_tallies_checked"):
        ensure_tallies(store)
        store.__dict__["_board_tallies_checked"] = True
    workflow = store.workflow
    now = store.clock()
    started = time.perf_counter()
    with store.read() as session:
        board = _query(session, workflow, config, now)
    return Board(**{**board, "db_ms": (time.perf_counter() - started) * 1000})


def _query(session: Session, workflow: Workflow, config: NotifyConfig, now: datetime) -> dict[str, Any]:
    s = config.alerts
    run = session.execute
    today = local_today(now, s.utc_offset_hours)
    counts = {r[0]: int(r[1]) for r in run(text("SELECT state, sum(n) FROM board_tally GROUP BY state"))}
    live = [st for st in workflow.states.values() if st.kind != "terminal"]
    # Oldest order and overdue count per live state: one statement, one index seek/range per state.
    parts, params = [], {}
    for i, st in enumerate(live):
        params[f"s{i}"] = st.id
        cut = sqlite_time(now - timedelta(hours=st.timeout_hours)) if st.timeout_hours > 0 else ""
        params[f"c{i}"] = cut
        parts.append(
            f"SELECT {i}, (SELECT order_no || '|' || state_since FROM sales_order WHERE state = :s{i} "
            f"ORDER BY state_since LIMIT 1), "
            + (
                f"(SELECT count(*) FROM sales_order WHERE state = :s{i} AND state_since <= :c{i})"
                if cut
                else "0"
            )
        )
    oldest: dict[str, tuple[str, datetime | None]] = {}
    overdue: dict[str, int] = {}
    if parts:
        for i, head, late in run(text(" UNION ALL ".join(parts)), params):
            st = live[int(i)]
            if head:
                order_no, _, since = str(head).partition("|")
                oldest[st.id] = (order_no, _time(since))
            overdue[st.id] = int(late or 0)
    due_states = [st.id for st in live if st.id not in s.delivered_states]
    red = amber = green = undated = 0
    if due_states:
        marks = ",".join(f":d{i}" for i in range(len(due_states)))
        row = run(
            text(
                "SELECT coalesce(sum(CASE WHEN promised = '' THEN n END), 0), "
                "coalesce(sum(CASE WHEN promised <> '' AND promised < :today THEN n END), 0), "
                "coalesce(sum(CASE WHEN promised >= :today AND promised <= :amber THEN n END), 0), "
                "coalesce(sum(CASE WHEN promised > :amber THEN n END), 0) "
                f"FROM board_tally WHERE state IN ({marks})"
            ),
            {
                **{f"d{i}": st for i, st in enumerate(due_states)},
                "today": today.isoformat(),
                "amber": (today + timedelta(days=s.amber_days)).isoformat(),
            },
        ).one()
        undated, red, amber, green = (int(v) for v in row)
    # Per level: a count over an index range and a seek for the soonest deadline (no GROUP BY over every
    # live alert: a desk that has just switched alerts on can have tens of thousands open).
    top = max((len(st.escalation) + 1 for st in workflow.states.values()), default=1)
    parts = [
        f"SELECT {lv}, (SELECT count(*) FROM alert WHERE status = 'open' AND level = {lv}), "
        f"(SELECT min(escalate_at) FROM alert WHERE status = 'open' AND level = {lv})"
        for lv in range(top + 1)
    ]
    parts.append("SELECT -1, (SELECT count(*) FROM alert WHERE status = 'acked'), NULL")
    parts.append("SELECT -2, (SELECT count(*) FROM alert WHERE status = 'snoozed'), NULL")
    levels: dict[int, list[Any]] = {}
    acked = snoozed = 0
    for level, n, soonest in run(text(" UNION ALL ".join(parts))):
        if level == -1:
            acked = int(n)
        elif level == -2:
            snoozed = int(n)
        elif n:
            levels[int(level)] = [int(n), _time(soonest)]
    upcoming = tuple(
        Escalation(int(r[0]), r[1], r[2], r[3], int(r[4]), r[5], _time(r[6]) or now)
        for r in run(
            text(
                "SELECT id, order_no, kind, severity, level, target_role, escalate_at FROM alert "
                "INDEXED BY ix_alert_escalate WHERE status = 'open' AND escalate_at IS NOT NULL "
                "ORDER BY escalate_at LIMIT :n"
            ),
            {"n": NEXT_ESCALATIONS},
        )
    )
    day_start = local_midnight(today, s.utc_offset_hours)
    week_start = local_midnight(today - timedelta(days=today.weekday()), s.utc_offset_hours)
    shipped_today = 0
    if s.shipped_states:
        marks = ",".join(f":h{i}" for i in range(len(s.shipped_states)))
        shipped_today = int(
            run(
                text(
                    f"SELECT coalesce(sum(n), 0) FROM board_flow WHERE state IN ({marks}) AND hour >= :start"
                ),
                {**{f"h{i}": st for i, st in enumerate(s.shipped_states)}, "start": _hour(day_start)},
            ).scalar_one()
        )
    delivered = on_time = 0
    if s.delivered_states:
        marks = ",".join(f":v{i}" for i in range(len(s.delivered_states)))
        # On time: the business day the order entered a delivered state is on or before the promised date.
        row = run(
            text(
                "SELECT coalesce(sum(n), 0), "
                "coalesce(sum(CASE WHEN date(hour || ':00:00', :shift) <= promised THEN n END), 0) "
                f"FROM board_flow WHERE state IN ({marks}) AND hour >= :start AND promised <> ''"
            ),
            {
                **{f"v{i}": st for i, st in enumerate(s.delivered_states)},
                "start": _hour(week_start),
                "shift": f"{s.utc_offset_hours:+g} hours",
            },
        ).one()
        delivered, on_time = int(row[0]), int(row[1])
    lines = tuple(
        StateLine(
            st.id,
            Label(st.label_en, st.label_zh),
            st.kind,
            counts.get(st.id, 0),
            overdue.get(st.id, 0),
            st.timeout_hours,
            oldest.get(st.id, ("", None))[0],
            oldest.get(st.id, ("", None))[1],
        )
        for st in workflow.states.values()
    )
    worst = max(lines, key=lambda line: line.overdue, default=None)
    return {
        "at": now,
        "today": today,
        "states": lines,
        "red": red,
        "amber": amber,
        "green": green,
        "undated": undated,
        "bottleneck": worst.state if worst is not None and worst.overdue > 0 else "",
        "levels": tuple(LevelLine(lv, v[0], v[1]) for lv, v in sorted(levels.items())),
        "acked": acked,
        "snoozed": snoozed,
        "next_escalations": upcoming,
        "shipped_today": shipped_today,
        "delivered_week": delivered,
        "on_time_week": on_time,
    }


def _hour(moment: datetime) -> str:
    return sqlite_time(moment)[:13]


def countdown_text(seconds: float) -> str:
    """Time left before an escalation, compact and language-neutral: ``14:05`` (m:s), ``2h05``, ``3d04``;
    overdue deadlines are negative (``-0:40``): the next pass escalates them."""
    sign = "-" if seconds < 0 else ""
    left = int(abs(seconds))
    if left < 3600:
        return f"{sign}{left // 60}:{left % 60:02d}"
    if left < 86400:
        return f"{sign}{left // 3600}h{left % 3600 // 60:02d}"
    return f"{sign}{left // 86400}d{left % 86400 // 3600:02d}"


def age_text(seconds: float) -> str:
    """How long something has been waiting: ``45m``, ``7h``, ``3d``."""
    left = max(0, int(seconds))
    if left < 3600:
        return f"{left // 60}m"
    if left < 86400 * 2:
        return f"{left // 3600}h"
    return f"{left // 86400}d"
