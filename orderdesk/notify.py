"""Telling people: the in-app inbox, e-mail over SMTP, and WeCom / DingTalk group-robot webhooks.

Every message is a row of ``notification`` written in the same transaction as the alert event that caused
it (so nothing is lost and nothing is queued twice: ``dedupe`` is unique). Inbox rows are delivered by being
written. The rest are sent by ``deliver_pending``:

* a sender **claims** due rows atomically (one ``UPDATE … RETURNING`` under ``BEGIN IMMEDIATE``: status
  ``sending``, its id, a lease), so several desks or processes on one file never send the same row twice;
* rows are sent **per destination in parallel**, each with its own timeout; after a destination fails once,
  the rest of its rows in the batch wait for the next retry instead of timing out one by one, so a slow or
  dead channel never holds up another;
* a failure is recorded on the row (``last_error``) and retried with exponential backoff, and after
  ``max_attempts`` the row is marked ``failed`` — visible in ``orderdesk alerts deliveries`` and the inbox.

Channel settings are data (``data/notify.toml``, or ``ORDERDESK_NOTIFY``); secrets are named there as
environment variables and read only when sending.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import smtplib
import threading
import time
import tomllib
import urllib.parse
import uuid
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

from orderdesk.canonical import canonical_json
from orderdesk.errors import OrderdeskError
from orderdesk.i18n import Label, Msg, msg
from orderdesk.models import AppUser, Notification, UserRole
from orderdesk.store import Store, sqlite_time

CHANNELS = ("inbox", "email", "wecom", "dingtalk")
WEBHOOK_KINDS = ("wecom", "dingtalk")
SEVERITIES = ("amber", "red")


class NotifyConfigError(OrderdeskError):
    """``notify.toml`` cannot be used as it is; the message names the file and the key."""


# -- configuration ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AlertSettings:
    """Thresholds of the alert engine ([alerts] in notify.toml)."""

    amber_days: int = 3  # a promised date this close (days) is amber; passed is red
    rush_stall_fraction: float = 0.5  # a rush order is "not moving" after this share of the state's timeout
    utc_offset_hours: float = 8  # the business day (China Standard Time): "today", "this week"
    scan_seconds: int = 30  # how often the scheduler runs a pass
    delivered_states: tuple[str, ...] = ("delivered",)  # past these the promised date no longer matters
    shipped_states: tuple[str, ...] = ("shipped",)  # entering these counts as "shipped" on the board


@dataclass(frozen=True)
class DeliverySettings:
    timeout_seconds: float = 10.0
    max_attempts: int = 8
    backoff_seconds: float = 30.0
    backoff_max_seconds: float = 3600.0
    lease_seconds: float = 300.0  # must be well over timeout_seconds: a claim older than this is re-sent
    batch: int = 50
    deliver_seconds: int = 10  # how often the scheduler delivers


@dataclass(frozen=True)
class EmailSettings:
    enabled: bool = False
    host: str = "localhost"
    port: int = 25
    security: str = "none"  # none | starttls | ssl
    username_env: str = ""
    password_env: str = ""
    sender: str = "orderdesk@localhost"
    lang: str = "zh"
    users: dict[str, str] = field(default_factory=dict)  # user name -> address
    roles: dict[str, tuple[str, ...]] = field(default_factory=dict)  # role -> group addresses


@dataclass(frozen=True)
class Webhook:
    """A group robot: where it posts (URL from an environment variable) and whose alerts it carries."""

    name: str
    kind: str  # wecom | dingtalk
    url_env: str = ""
    url: str = ""  # a literal URL (tests, a local relay); prefer url_env for real robots
    secret_env: str = ""  # DingTalk "加签" secret
    roles: tuple[str, ...] = ()  # empty = every role
    min_severity: str = "amber"
    lang: str = "zh"
    enabled: bool = True

    def resolved_url(self) -> str:
        return os.environ.get(self.url_env, "") if self.url_env else self.url


@dataclass(frozen=True)
class NotifyConfig:
    alerts: AlertSettings = field(default_factory=AlertSettings)
    delivery: DeliverySettings = field(default_factory=DeliverySettings)
    email: EmailSettings = field(default_factory=EmailSettings)
    webhooks: tuple[Webhook, ...] = ()
    source: str = "<defaults>"

    def webhook(self, name: str) -> Webhook | None:
        return next((w for w in self.webhooks if w.name == name), None)


def default_notify_path() -> Path:
    """``ORDERDESK_NOTIFY``, else the shipped ``notify.toml`` (package data when installed, else ``data/``)."""
    env = os.environ.get("ORDERDESK_NOTIFY")
    if env:
        return Path(env).expanduser()
    here = Path(__file__).parent
    installed = here / "_data" / "notify.toml"
    return installed if installed.is_file() else here.parent / "data" / "notify.toml"


def _bad(source: str, key: str, problem: str) -> NotifyConfigError:
    return NotifyConfigError(
        msg("{file}: {key}: {problem}", file=source, key=key, problem=problem), code="bad_notify_config"
    )


def _section(data: dict[str, Any], name: str, cls: type, source: str, renames: dict[str, str]) -> Any:
    body = data.get(name, {})
    if not isinstance(body, dict):
        raise _bad(source, name, "must be a table")
    known = {f.name for f in cls.__dataclass_fields__.values()}  # type: ignore[attr-defined]
    kwargs: dict[str, Any] = {}
    for key, value in body.items():
        attr = renames.get(key, key)
        if attr not in known:
            raise _bad(source, f"{name}.{key}", "unknown setting")
        default = cls.__dataclass_fields__[attr].default  # type: ignore[attr-defined]
        if isinstance(value, list):
            value = tuple(value)
        elif isinstance(default, bool) and not isinstance(value, bool):
            raise _bad(source, f"{name}.{key}", "must be true or false")
        elif (
            isinstance(default, int | float)
            and not isinstance(default, bool)
            and (not isinstance(value, int | float) or isinstance(value, bool) or value < 0)
        ):
            raise _bad(source, f"{name}.{key}", "must be a number ≥ 0")
        kwargs[attr] = value
    return cls(**kwargs)


def parse_notify_config(text_: str, *, source: str = "<text>") -> NotifyConfig:
    """Parse and check a notify.toml document."""
    try:
        data = tomllib.loads(text_)
    except tomllib.TOMLDecodeError as exc:
        raise _bad(source, "-", str(exc)) from None
    unknown = set(data) - {"alerts", "delivery", "email", "webhooks"}
    if unknown:
        raise _bad(source, sorted(unknown)[0], "unknown section")
    alerts = _section(data, "alerts", AlertSettings, source, {})
    delivery = _section(data, "delivery", DeliverySettings, source, {})
    email_body = dict(data.get("email", {}))
    users = email_body.pop("users", {})
    roles = email_body.pop("roles", {})
    email = _section({"email": email_body}, "email", EmailSettings, source, {"from": "sender"})
    if email.security not in ("none", "starttls", "ssl"):
        raise _bad(source, "email.security", "use none, starttls or ssl")
    email = EmailSettings(
        **{**email.__dict__, "users": dict(users), "roles": {k: tuple(v) for k, v in roles.items()}}
    )
    hooks: list[Webhook] = []
    for i, body in enumerate(data.get("webhooks", [])):
        where = f"webhooks[{i}]"
        hook = _section({where: body}, where, Webhook, source, {})
        if hook.kind not in WEBHOOK_KINDS:
            raise _bad(source, f"{where}.kind", "use wecom or dingtalk")
        if hook.min_severity not in SEVERITIES:
            raise _bad(source, f"{where}.min_severity", "use amber or red")
        if not hook.name or any(h.name == hook.name for h in hooks):
            raise _bad(source, f"{where}.name", "every webhook needs its own name")
        hooks.append(hook)
    return NotifyConfig(alerts=alerts, delivery=delivery, email=email, webhooks=tuple(hooks), source=source)


def load_notify_config(path: Path | str | None = None) -> NotifyConfig:
    """The channel configuration from ``path`` (default ``default_notify_path()``); defaults if absent."""
    file = Path(path) if path else default_notify_path()
    if not file.is_file():
        if path:
            raise _bad(str(file), "-", "no such file")
        return NotifyConfig()
    return parse_notify_config(file.read_text(encoding="utf-8"), source=str(file))


# -- messages --------------------------------------------------------------------------------------------
def message_from_json(data: Any) -> Any:
    """Rebuild a ``Msg`` (or ``Label``) from ``Msg.to_json()`` output."""
    if isinstance(data, dict) and "msgid" in data:
        return Msg(data["msgid"], {k: message_from_json(v) for k, v in data.get("params", {}).items()})
    if isinstance(data, dict) and set(data) == {"en", "zh"}:
        return Label(data["en"], data["zh"])
    return data


def render_payload(payload: str, lang: str | None = None) -> str:
    """A notification's text in ``lang``."""
    message = message_from_json(json.loads(payload).get("message"))
    return message.render(lang) if isinstance(message, Msg) else str(message or "")


# -- queueing (inside the caller's transaction) ------------------------------------------------------------
def users_with_roles(session: Session, roles: Iterable[str]) -> dict[str, list[str]]:
    """Active users per role."""
    wanted = list(dict.fromkeys(roles))
    out: dict[str, list[str]] = {r: [] for r in wanted}
    if not wanted:
        return out
    rows = session.exec(
        select(UserRole.role, AppUser.name)
        .join(AppUser, col(AppUser.id) == UserRole.user_id)
        .where(col(UserRole.role).in_(wanted), col(AppUser.active).is_(True))
        .order_by(col(AppUser.name))
    ).all()
    for role, name in rows:
        out[role].append(name)
    return out


def enqueue(
    session: Session,
    config: NotifyConfig,
    *,
    key: str,
    now: datetime,
    event: str,
    message: Msg,
    users: Sequence[str],
    roles: Sequence[str],
    severity: str = "amber",
    alert_id: int | None = None,
    order_no: str = "",
) -> int:
    """Queue ``message`` for ``users`` (inbox, their e-mail) and for the groups of ``roles`` (role e-mail
    addresses, webhooks carrying those roles). ``key`` names the event: queueing it again is a no-op."""
    payload = canonical_json({"message": message.to_json()})
    rows: list[dict[str, Any]] = []

    def add(channel: str, target: str, *, sent: bool = False) -> None:
        rows.append(
            {
                "dedupe": f"{key}|{channel}|{target}"[:160],
                "alert_id": alert_id,
                "order_no": order_no,
                "event": event,
                "channel": channel,
                "target": target,
                "severity": severity,
                "payload": payload,
                "status": "sent" if sent else "pending",
                "attempts": 0,
                "next_attempt_at": now,
                "claimed_by": "",
                "last_error": "",
                "created_at": now,
                "sent_at": now if sent else None,
            }
        )

    for user in dict.fromkeys(users):
        add("inbox", user, sent=True)
    if config.email.enabled:
        addresses = [config.email.users[u] for u in dict.fromkeys(users) if u in config.email.users]
        for role in roles:
            addresses += config.email.roles.get(role, ())
        for address in dict.fromkeys(addresses):
            add("email", address)
    rank = SEVERITIES.index(severity) if severity in SEVERITIES else 0
    for hook in config.webhooks:
        if not hook.enabled or rank < SEVERITIES.index(hook.min_severity):
            continue
        if not hook.roles or set(hook.roles) & set(roles):
            add(hook.kind, hook.name)
    if not rows:
        return 0
    if is_sqlite(session):
        statement = sqlite_insert(Notification).values(rows).on_conflict_do_nothing(index_elements=["dedupe"])
    else:
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        statement = pg_insert(Notification).values(rows).on_conflict_do_nothing(index_elements=["dedupe"])
    result = session.execute(statement)
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


# -- the inbox -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class InboxItem:
    id: int
    at: datetime
    order_no: str
    event: str
    severity: str
    text: str
    read: bool
    alert_id: int | None


@dataclass(frozen=True)
class InboxSummary:
    unread: int
    newest_id: int  # the newest unread item (0 if none): a rising value means "something new arrived"
    failed_deliveries: int  # messages to this desk's people that could not be delivered


def inbox_summary(store: Store, user: str, *, with_failed: bool = False) -> InboxSummary:
    """Unread count for ``user`` (an index-only count: cheap enough to poll every second or two);
    ``with_failed`` also counts undeliverable messages (a table scan: for the inbox screen, not the bell)."""
    with store.read() as session:
        row = session.execute(
            text(
                "SELECT count(*), coalesce(max(id), 0) FROM notification "
                "WHERE channel = 'inbox' AND target = :u AND read_at IS NULL"
            ),
            {"u": user},
        ).one()
        failed = (
            session.execute(text("SELECT count(*) FROM notification WHERE status = 'failed'")).scalar_one()
            if with_failed
            else 0
        )
    return InboxSummary(int(row[0]), int(row[1]), int(failed))


def inbox(store: Store, user: str, *, limit: int = 50, lang: str | None = None) -> list[InboxItem]:
    """The newest ``limit`` inbox items of ``user``, rendered in ``lang``."""
    with store.read() as session:
        rows = session.exec(
            select(Notification)
            .where(Notification.channel == "inbox", Notification.target == user)
            .order_by(col(Notification.created_at).desc(), col(Notification.id).desc())
            .limit(limit)
        ).all()
        return [
            InboxItem(
                r.id or 0,
                r.created_at,
                r.order_no,
                r.event,
                r.severity,
                render_payload(r.payload, lang),
                r.read_at is not None,
                r.alert_id,
            )
            for r in rows
        ]


def mark_read(store: Store, user: str, ids: Sequence[int] | None = None) -> int:
    """Mark ``user``'s inbox items read (all unread if ``ids`` is None). Personal UI state, not business data."""
    now = store.clock()
    with store.write() as session:
        query = "UPDATE notification SET read_at = :now WHERE channel = 'inbox' AND target = :u AND read_at IS NULL"
        params: dict[str, Any] = {"now": bind_time(session, now), "u": user}
        if ids is not None:
            if not ids:
                return 0
            query += " AND id IN (" + ",".join(str(int(i)) for i in ids) + ")"
        return int(session.execute(text(query), params).rowcount or 0)  # type: ignore[attr-defined]


# -- delivery --------------------------------------------------------------------------------------------
class DeliveryFailed(Exception):
    """A channel refused or could not be reached; ``unreachable`` means the whole destination is down."""

    def __init__(self, reason: str, *, unreachable: bool = False) -> None:
        super().__init__(reason)
        self.unreachable = unreachable


@dataclass(frozen=True)
class Claimed:
    id: int
    channel: str
    target: str
    payload: str
    attempts: int
    order_no: str
    severity: str
    event: str


@dataclass(frozen=True)
class DeliveryReport:
    claimed: int
    sent: int
    retrying: int
    failed: int
    deferred: int  # not tried: their destination had just failed in this batch

    def to_json(self) -> dict[str, int]:
        return self.__dict__.copy()


def is_sqlite(session: Session) -> bool:
    return session.get_bind().dialect.name == "sqlite"


def bind_time(session: Session, value: datetime) -> Any:
    """A time for hand-written SQL: SQLite compares the text SQLAlchemy stores, PostgreSQL a timestamptz."""
    return sqlite_time(value) if is_sqlite(session) else value


def claim(store: Store, *, worker: str, now: datetime, limit: int, lease_seconds: float) -> list[Claimed]:
    """Atomically take up to ``limit`` due rows for ``worker`` (one statement under BEGIN IMMEDIATE)."""
    lease = now + timedelta(seconds=lease_seconds)
    with store.write() as session:
        # The outer conditions repeat the inner ones so that a concurrent claimer on PostgreSQL (whose
        # UPDATE re-checks only the outer WHERE on a row another transaction just changed) skips it.
        due = "status IN ('pending', 'sending') AND next_attempt_at <= :now AND (status = 'pending' OR lease_until < :now)"
        rows = session.execute(
            text(
                "UPDATE notification SET status = 'sending', claimed_by = :w, lease_until = :lease, "
                f"attempts = attempts + 1 WHERE {due} AND id IN (SELECT id FROM notification WHERE {due} "
                "ORDER BY next_attempt_at, id LIMIT :n) "
                "RETURNING id, channel, target, payload, attempts, order_no, severity, event"
            ),
            {"w": worker, "lease": bind_time(session, lease), "now": bind_time(session, now), "n": limit},
        ).all()
    return sorted((Claimed(*r) for r in rows), key=lambda c: c.id)


def _title(item: Claimed, lang: str) -> str:
    from orderdesk.i18n import translate

    mark = "🔴" if item.severity == "red" else "🟠"
    return f"{mark} orderdesk {item.order_no} · {translate(EVENT_TITLES.get(item.event, item.event), lang)}"


EVENT_TITLES = {
    "raised": "late order",
    "escalated": "escalated",
    "reminder": "still unacknowledged",
    "reopened": "worse now",
    "snooze_ended": "snooze over",
    "move": "order moved",
    "ack_request": "please acknowledge",
    "need_info": "needs more information",
    "answered": "acknowledged",
}


def send_email(settings: EmailSettings, to: str, subject: str, body: str, timeout: float) -> None:
    """One message over SMTP (SSL, STARTTLS or plain), with ``timeout`` on every socket operation."""
    message = EmailMessage()
    message["From"] = settings.sender
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = f"<{uuid.uuid4()}@orderdesk>"
    message.set_content(body)
    try:
        cls = smtplib.SMTP_SSL if settings.security == "ssl" else smtplib.SMTP
        with cls(settings.host, settings.port, timeout=timeout) as smtp:
            if settings.security == "starttls":
                smtp.starttls()
            user = os.environ.get(settings.username_env, "") if settings.username_env else ""
            if user:
                smtp.login(user, os.environ.get(settings.password_env, ""))
            smtp.send_message(message)
    except (OSError, smtplib.SMTPConnectError, smtplib.SMTPServerDisconnected) as exc:
        raise DeliveryFailed(f"SMTP {settings.host}:{settings.port}: {exc}", unreachable=True) from exc
    except smtplib.SMTPException as exc:
        raise DeliveryFailed(f"SMTP refused: {exc}") from exc


def webhook_body(kind: str, title: str, body: str) -> dict[str, Any]:
    """The JSON a WeCom or DingTalk group robot expects for a markdown message."""
    content = f"**{title}**\n\n{body}"
    if kind == "wecom":
        return {"msgtype": "markdown", "markdown": {"content": content}}
    return {"msgtype": "markdown", "markdown": {"title": title, "text": content}}


def signed_dingtalk_url(url: str, secret: str, now_ms: int) -> str:
    """DingTalk's 加签: timestamp and an HMAC-SHA256 signature appended to the robot URL."""
    digest = hmac.new(secret.encode(), f"{now_ms}\n{secret}".encode(), hashlib.sha256).digest()
    sign = urllib.parse.quote_plus(base64.b64encode(digest))
    return f"{url}{'&' if '?' in url else '?'}timestamp={now_ms}&sign={sign}"


def send_webhook(hook: Webhook, title: str, body: str, timeout: float) -> None:
    import httpx

    url = hook.resolved_url()
    if not url:
        raise DeliveryFailed(f"webhook {hook.name}: set the environment variable {hook.url_env}")
    if hook.kind == "dingtalk" and hook.secret_env and os.environ.get(hook.secret_env):
        url = signed_dingtalk_url(url, os.environ[hook.secret_env], int(time.time() * 1000))
    try:
        response = httpx.post(url, json=webhook_body(hook.kind, title, body), timeout=timeout)
    except httpx.TransportError as exc:
        raise DeliveryFailed(
            f"{hook.kind} {hook.name}: {type(exc).__name__}: {exc}", unreachable=True
        ) from exc
    if response.status_code >= 500:
        raise DeliveryFailed(f"{hook.kind} {hook.name}: HTTP {response.status_code}", unreachable=True)
    if response.status_code != 200:
        raise DeliveryFailed(f"{hook.kind} {hook.name}: HTTP {response.status_code}")
    try:
        answer = response.json()
    except ValueError:
        raise DeliveryFailed(f"{hook.kind} {hook.name}: not a JSON answer") from None
    if answer.get("errcode", 0) != 0:
        raise DeliveryFailed(
            f"{hook.kind} {hook.name}: errcode {answer.get('errcode')} {answer.get('errmsg')}"
        )


def send_one(config: NotifyConfig, item: Claimed) -> None:
    """Send one claimed notification, or raise ``DeliveryFailed``."""
    timeout = config.delivery.timeout_seconds
    if item.channel == "email":
        lang = config.email.lang
        send_email(config.email, item.target, _title(item, lang), render_payload(item.payload, lang), timeout)
        return
    hook = config.webhook(item.target)
    if hook is None or hook.kind != item.channel:
        raise DeliveryFailed(f"no {item.channel} webhook called {item.target} in {config.source}")
    send_webhook(hook, _title(item, hook.lang), render_payload(item.payload, hook.lang), timeout)


def _backoff(config: NotifyConfig, attempts: int) -> timedelta:
    d = config.delivery
    return timedelta(seconds=min(d.backoff_max_seconds, d.backoff_seconds * 2 ** max(0, attempts - 1)))


def deliver_pending(
    store: Store,
    config: NotifyConfig,
    *,
    worker: str | None = None,
    limit: int | None = None,
    sender: Any = None,
) -> DeliveryReport:
    """Claim due notifications, send them (one thread per destination), record each outcome."""
    worker = worker or f"{os.getpid()}-{threading.get_ident()}-{uuid.uuid4().hex[:8]}"
    send = sender or (lambda item: send_one(config, item))
    items = claim(
        store,
        worker=worker,
        now=store.clock(),
        limit=limit or config.delivery.batch,
        lease_seconds=config.delivery.lease_seconds,
    )
    if not items:
        return DeliveryReport(0, 0, 0, 0, 0)
    groups: dict[tuple[str, str], list[Claimed]] = {}
    for item in items:
        groups.setdefault(
            (item.channel, item.target if item.channel != "email" else config.email.host), []
        ).append(item)
    outcomes: dict[int, tuple[str, str]] = {}  # id -> (sent | retry | deferred, error)

    def run_group(group: list[Claimed]) -> None:
        down = ""
        for item in group:
            if down:
                outcomes[item.id] = ("deferred", down)
                continue
            try:
                send(item)
            except DeliveryFailed as exc:
                outcomes[item.id] = ("retry", str(exc))
                if exc.unreachable:
                    down = str(exc)
            except Exception as exc:  # a bug in a channel must not stop the others
                outcomes[item.id] = ("retry", f"{type(exc).__name__}: {exc}")
            else:
                outcomes[item.id] = ("sent", "")

    with ThreadPoolExecutor(max_workers=min(16, len(groups)), thread_name_prefix="notify") as pool:
        list(pool.map(run_group, groups.values()))
    return _record_outcomes(store, config, worker, items, outcomes)


def _record_outcomes(
    store: Store,
    config: NotifyConfig,
    worker: str,
    items: list[Claimed],
    outcomes: dict[int, tuple[str, str]],
) -> DeliveryReport:
    now = store.clock()
    sent = retrying = failed = deferred = 0
    with store.write() as session:
        for item in items:
            outcome, error = outcomes.get(item.id, ("retry", "no outcome"))
            params: dict[str, Any] = {
                "id": item.id,
                "w": worker,
                "now": bind_time(session, now),
                "err": error[:500],
            }
            if outcome == "sent":
                sent += 1
                sql = (
                    "UPDATE notification SET status = 'sent', sent_at = :now, lease_until = NULL, "
                    "last_error = '' WHERE id = :id AND claimed_by = :w AND status = 'sending'"
                )
            elif outcome == "deferred":
                deferred += 1
                # Not tried: give the attempt back and wait for the destination's next retry.
                params["next"] = bind_time(session, now + _backoff(config, max(1, item.attempts - 1)))
                sql = (
                    "UPDATE notification SET status = 'pending', attempts = attempts - 1, next_attempt_at = :next, "
                    "lease_until = NULL, last_error = :err WHERE id = :id AND claimed_by = :w AND status = 'sending'"
                )
            elif item.attempts >= config.delivery.max_attempts:
                failed += 1
                sql = (
                    "UPDATE notification SET status = 'failed', lease_until = NULL, last_error = :err "
                    "WHERE id = :id AND claimed_by = :w AND status = 'sending'"
                )
            else:
                retrying += 1
                params["next"] = bind_time(session, now + _backoff(config, item.attempts))
                sql = (
                    "UPDATE notification SET status = 'pending', next_attempt_at = :next, lease_until = NULL, "
                    "last_error = :err WHERE id = :id AND claimed_by = :w AND status = 'sending'"
                )
            session.execute(text(sql), params)
    return DeliveryReport(len(items), sent, retrying, failed, deferred)


@dataclass(frozen=True)
class DeliveryRow:
    id: int
    created_at: datetime
    channel: str
    target: str
    order_no: str
    event: str
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "created_at": self.created_at.isoformat(),
            "channel": self.channel,
            "target": self.target,
            "order_no": self.order_no,
            "event": self.event,
            "status": self.status,
            "attempts": self.attempts,
            "next_attempt_at": self.next_attempt_at.isoformat(),
            "last_error": self.last_error,
        }


def deliveries(store: Store, *, status: str | None = None, limit: int = 50) -> list[DeliveryRow]:
    """Outgoing (non-inbox) notifications, newest first; ``status`` filters (pending, sent, failed…)."""
    with store.read() as session:
        query = select(Notification).where(Notification.channel != "inbox")
        if status:
            query = query.where(Notification.status == status)
        rows = session.exec(query.order_by(col(Notification.id).desc()).limit(limit)).all()
        return [
            DeliveryRow(
                r.id or 0,
                r.created_at,
                r.channel,
                r.target,
                r.order_no,
                r.event,
                r.status,
                r.attempts,
                r.next_attempt_at,
                r.last_error,
            )
            for r in rows
        ]
