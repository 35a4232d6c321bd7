"""Alerts, the planner's triage and the supervisor's board (issue 5): ``orderdesk alerts …`` and
``orderdesk board``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from orderdesk.errors import UsageError
from orderdesk.i18n import _, msg

if TYPE_CHECKING:
    from orderdesk.board import Board
    from orderdesk.notify import NotifyConfig

alerts_app = typer.Typer(
    help="Late-order alerts: check, list, acknowledge, snooze, escalate.", no_args_is_help=True
)

DbOpt = Annotated[
    Path | None, typer.Option("--db", help="SQLite file (default: ORDERDESK_DB or the user data folder).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Stable JSON on stdout.")]
UserOpt = Annotated[str, typer.Option("--user", help="Who is doing this (a user name).")]
NotifyOpt = Annotated[
    Path | None,
    typer.Option("--notify", help="Channel settings (default: ORDERDESK_NOTIFY or data/notify.toml)."),
]


def register(app: typer.Typer) -> None:
    """Add this area's commands to the root CLI."""
    app.add_typer(alerts_app, name="alerts")
    app.command("board")(board_cmd)


def _store(db: Path | None) -> Any:
    from orderdesk.cli import open_store

    return open_store(db)


def _config(path: Path | None) -> NotifyConfig:
    from orderdesk.notify import load_notify_config

    return load_notify_config(path)


def _json(data: Any) -> None:
    from orderdesk.cli import _print_json

    _print_json(data)


def _console() -> Any:
    from rich.console import Console

    return Console()


@alerts_app.command("check")
def check(
    full: Annotated[
        bool, typer.Option("--full", help="Re-examine every order, not only what changed.")
    ] = False,
    deliver: Annotated[
        bool, typer.Option("--deliver/--no-deliver", help="Also send queued messages.")
    ] = True,
    db: DbOpt = None,
    notify: NotifyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run one pass of the alert engine (and one delivery round) now."""
    from orderdesk.alerts import run_alert_pass
    from orderdesk.notify import deliver_pending

    store, config = _store(db), _config(notify)
    report = run_alert_pass(store, config, full=full)
    delivery = deliver_pending(store, config) if deliver else None
    if as_json:
        _json({"pass": report.to_json(), "delivery": delivery.to_json() if delivery else None})
        return
    typer.echo(
        _(
            "Alert pass: {examined} orders examined, {raised} raised, {escalated} escalated, {closed} closed, "
            "{asks} acknowledgement requests, {queued} messages queued ({ms} ms).",
            examined=report.examined,
            raised=report.raised,
            escalated=report.escalated,
            closed=report.closed,
            asks=report.ack_requests,
            queued=report.notifications,
            ms=f"{report.seconds * 1000:.0f}",
        )
    )
    if delivery is not None and delivery.claimed:
        typer.echo(
            _(
                "Delivery: {sent} sent, {retrying} to retry, {failed} failed, {deferred} waiting for their channel.",
                sent=delivery.sent,
                retrying=delivery.retrying,
                failed=delivery.failed,
                deferred=delivery.deferred,
            )
        )


@alerts_app.command("list")
def list_cmd(
    include_closed: Annotated[bool, typer.Option("--all", help="Closed alerts too.")] = False,
    order: Annotated[str | None, typer.Option("--order", help="Only this order.")] = None,
    kind: Annotated[str | None, typer.Option("--kind", help="overdue, promised, rush, ack or info.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Open alerts, the soonest to escalate first."""
    from orderdesk.alerts import KINDS, list_alerts

    if kind is not None and kind not in KINDS:
        raise UsageError(msg("--kind takes one of {kinds}.", kinds=", ".join(KINDS)))
    store = _store(db)
    rows = list_alerts(store, include_closed=include_closed, order_no=order, kind=kind, limit=limit)
    now = store.clock()
    if as_json:
        _json([r.to_json(now) for r in rows])
        return
    from rich.table import Table

    from orderdesk.board import countdown_text

    table = Table(title=_("Alerts"))
    for header in ("#", _("Order"), _("Kind"), _("Level"), _("To"), _("Escalates in"), _("What")):
        table.add_column(header, no_wrap=header != _("What"))
    for r in rows:
        table.add_row(
            str(r.id),
            r.order_no,
            _(r.kind) + ("" if r.status == "open" else f" ({_(r.status)})"),
            str(r.level),
            r.target_user or r.target_role,
            countdown_text((r.escalate_at - now).total_seconds()) if r.escalate_at else "-",
            str(r.message),
            style="red" if r.severity == "red" else None,
        )
    _console().print(table)


@alerts_app.command("ack")
def ack_cmd(
    alert_id: Annotated[int, typer.Argument(help="Alert number (from `orderdesk alerts list`).")],
    user: UserOpt,
    note: Annotated[str, typer.Option(help="What you are doing about it.")] = "",
    need_info: Annotated[
        bool,
        typer.Option(
            "--need-info", help="On a move that asked for acknowledgement: ask for more information."
        ),
    ] = False,
    reason: Annotated[str, typer.Option(help="With --need-info: what you need to know.")] = "",
    db: DbOpt = None,
) -> None:
    """Acknowledge an alert (stops its escalation), or answer a move that asked for acknowledgement."""
    from orderdesk.alerts import acknowledge_alert, answer_ack_request

    store = _store(db)
    if need_info:
        change = answer_ack_request(store, alert_id=alert_id, user=user, answer="need_info", reason=reason)
    else:
        change = acknowledge_alert(store, alert_id=alert_id, user=user, note=note or reason)
    typer.echo(
        _(
            "Alert {id} on {order_no} is now {status}.",
            id=change.alert_id,
            order_no=change.order_no,
            status=_(change.status),
        )
    )


@alerts_app.command("snooze")
def snooze_cmd(
    alert_id: Annotated[int, typer.Argument(help="Alert number.")],
    until: Annotated[str, typer.Option("--until", help="+2h, +30m, +1d or an ISO time.")],
    reason: Annotated[str, typer.Option("--reason", help="Why it can wait (required).")],
    user: UserOpt,
    db: DbOpt = None,
) -> None:
    """Quiet an alert until a time, for a reason; then it comes back."""
    from orderdesk.alerts import parse_until, snooze_alert

    store = _store(db)
    change = snooze_alert(
        store, alert_id=alert_id, user=user, until=parse_until(until, store.clock()), reason=reason
    )
    typer.echo(
        _(
            "Alert {id} on {order_no} is now {status}.",
            id=change.alert_id,
            order_no=change.order_no,
            status=_(change.status),
        )
    )


@alerts_app.command("escalate")
def escalate_cmd(
    alert_id: Annotated[int, typer.Argument(help="Alert number.")],
    user: UserOpt,
    reason: Annotated[str, typer.Option(help="Why.")] = "",
    db: DbOpt = None,
    notify: NotifyOpt = None,
) -> None:
    """Send an alert one level up now."""
    from orderdesk.alerts import escalate_alert

    change = escalate_alert(_store(db), alert_id=alert_id, user=user, reason=reason, config=_config(notify))
    typer.echo(
        _(
            "Alert {id} on {order_no} is now at level {level}.",
            id=change.alert_id,
            order_no=change.order_no,
            level=change.level,
        )
    )


@alerts_app.command("deliveries")
def deliveries_cmd(
    status: Annotated[str | None, typer.Option(help="pending, sending, sent or failed.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Outgoing e-mail and webhook messages with their state and last error (failures are kept visible)."""
    from orderdesk.notify import deliveries

    rows = deliveries(_store(db), status=status, limit=limit)
    if as_json:
        _json([r.to_json() for r in rows])
        return
    from rich.table import Table

    table = Table(title=_("Deliveries"))
    for header in ("#", _("Via"), _("To"), _("Order"), _("Status"), _("Tries"), _("Last error")):
        table.add_column(header, no_wrap=header != _("Last error"))
    for r in rows:
        table.add_row(
            str(r.id),
            r.channel,
            r.target,
            r.order_no,
            _(r.status),
            str(r.attempts),
            r.last_error,
            style="red" if r.status == "failed" else None,
        )
    _console().print(table)


@alerts_app.command("run")
def run_cmd(db: DbOpt = None, notify: NotifyOpt = None) -> None:
    """Run the alert jobs in the foreground (a central server, or a desk without the app open); Ctrl-C stops."""
    from orderdesk.scheduler import AlertScheduler

    scheduler = AlertScheduler(_store(db), _config(notify))
    scheduler.start()
    typer.echo(_("Alert jobs running: {jobs}. Ctrl-C stops.", jobs=", ".join(scheduler.jobs())))
    try:
        while True:
            time.sleep(3600)
    finally:
        scheduler.shutdown()


# -- the board -------------------------------------------------------------------------------------------
def board_cmd(db: DbOpt = None, notify: NotifyOpt = None, as_json: JsonOpt = False) -> None:
    """Print the supervisor's status board once (for scripts; the live one is in the app)."""
    from orderdesk.board import load_board

    store = _store(db)
    board = load_board(store, _config(notify))
    if as_json:
        _json(board.to_json())
        return
    _console().print(board_renderable(board))


def board_renderable(board: Board) -> Any:
    """The board as Rich tables: states with counts, oldest and overdue; due dates; alerts; today and week."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    from orderdesk.board import age_text, countdown_text
    from orderdesk.i18n import current_language

    lang = current_language()
    states = Table(title=_("Orders by state"), expand=False)
    states.add_column(_("State"))
    states.add_column(_("Orders"), justify="right")
    states.add_column(_("Overdue"), justify="right")
    states.add_column(_("Oldest"))
    for line in board.states:
        name = line.label.render(lang)
        if line.state == board.bottleneck:
            name += " ◀ " + _("bottleneck")
        states.add_row(
            Text(name, style="bold red" if line.state == board.bottleneck else ""),
            f"{line.count:,}",
            Text(f"{line.overdue:,}" if line.overdue else "-", style="red" if line.overdue else "dim"),
            f"{line.oldest_order_no} {age_text((board.at - line.oldest_since).total_seconds())}"
            if line.oldest_since and line.kind != "terminal"
            else "-",
        )
    due = Table(title=_("Due dates of open orders"), expand=False)
    for label, style in (
        (_("Late"), "red"),
        (_("Due ≤ 3 days"), "yellow"),
        (_("On track"), "green"),
        (_("No date"), "dim"),
    ):
        due.add_column(Text(label, style=style), justify="right")
    due.add_row(f"{board.red:,}", f"{board.amber:,}", f"{board.green:,}", f"{board.undated:,}")
    alerts = Table(title=_("Open alerts"), expand=False)
    alerts.add_column(_("Level"))
    alerts.add_column(_("Unacknowledged"), justify="right")
    alerts.add_column(_("Next escalation in"), justify="right")
    for lv in board.levels:
        alerts.add_row(
            str(lv.level),
            f"{lv.open:,}",
            countdown_text((lv.next_escalate_at - board.at).total_seconds()) if lv.next_escalate_at else "-",
        )
    alerts.add_row(_("acknowledged"), f"{board.acked:,}", "")
    alerts.add_row(_("snoozed"), f"{board.snoozed:,}", "")
    rate = "-" if board.on_time_rate is None else f"{board.on_time_rate:.0%}"
    summary = Text.assemble(
        (_("Shipped today") + ": ", "bold"),
        f"{board.shipped_today:,}   ",
        (_("On time this week") + ": ", "bold"),
        f"{rate} ({board.on_time_week:,}/{board.delivered_week:,})   ",
        (_("As of") + ": ", "bold"),
        board.at.astimezone().strftime("%Y-%m-%d %H:%M:%S"),
    )
    return Group(states, due, alerts, summary)
