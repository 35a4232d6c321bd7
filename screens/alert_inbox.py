"""The alert inbox: a bell with the unread count (polled in a thread worker, a toast and the terminal bell when
something new arrives), the inbox screen, and starting the alert jobs when a desk opens.

The bell sits in the planner's triage and the supervisor's board; any screen can ``yield AlertBell(session)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.events import Click
from textual.message import Message
from textual.widgets import DataTable, Footer, Static

from orderdesk.errors import OrderdeskError
from orderdesk.i18n import _, current_language
from screens.base import CommandRefused, DeskScreen, StatusLine, cursor_key, fit

if TYPE_CHECKING:
    from orderdesk.notify import InboxItem, InboxSummary
    from screens.session import DeskSession

INBOX_PAGE = 50
POLL_SECONDS = 2.0
W_WHEN, W_ORDER = 11, 14


def start_alert_jobs(app: Any) -> None:
    """Run the alert jobs in this desk process if it is the one that should (``run_alert_jobs_here``) and
    the app runs on real time (tests drive a fixed clock and run passes themselves)."""
    if getattr(app, "alert_jobs", None) is not None or app.store is None or app.clock is not None:
        return
    from orderdesk.scheduler import AlertScheduler, run_alert_jobs_here

    if run_alert_jobs_here(app.store):
        jobs = AlertScheduler(app.store)
        jobs.start()
        app.alert_jobs = jobs


def stop_alert_jobs(app: Any) -> None:
    jobs = getattr(app, "alert_jobs", None)
    if jobs is not None:
        jobs.shutdown()
        app.alert_jobs = None


class AlertBell(Static):
    """``🔔 3``: the logged-in user's unread alerts. Click it (or press the screen's key) for the inbox."""

    DEFAULT_CSS = """
    AlertBell {
        width: auto;
        height: 1;
        padding: 0 1;
        color: $text-muted;
    }
    AlertBell.-unread {
        background: $error;
        color: $text;
        text-style: bold;
    }
    """

    @dataclass
    class Polled(Message):
        summary: InboxSummary
        newest: str  # the newest unread message, rendered (for the toast)

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, AlertBell.Polled)

    def __init__(self, session: DeskSession, **kwargs: Any) -> None:
        super().__init__("🔔", **kwargs)
        self.session = session
        self.unread = 0
        self._newest_seen: int | None = None  # None until the first poll: old news is not toasted
        self._busy = False

    def on_mount(self) -> None:
        self.poll()
        self.set_interval(POLL_SECONDS, self.poll)

    def poll(self) -> None:
        if not self._busy:
            self._busy = True
            self._load()

    @work(thread=True, exclusive=True, exit_on_error=False, group="alert-bell")
    def _load(self) -> None:
        from orderdesk.notify import inbox, inbox_summary

        try:
            summary = inbox_summary(self.session.store, self.session.user.name)
            newest = ""
            if summary.unread and summary.newest_id != (self._newest_seen or 0):
                items = inbox(self.session.store, self.session.user.name, limit=1, lang=current_language())
                newest = items[0].text if items else ""
        except OrderdeskError:
            self._busy = False
            return
        self.post_message(self.Polled(summary, newest))

    @on(Polled)
    def _polled(self, event: Polled) -> None:
        self._busy = False
        summary = event.summary
        first = self._newest_seen is None
        arrived = not first and summary.unread and summary.newest_id > (self._newest_seen or 0)
        self._newest_seen = max(self._newest_seen or 0, summary.newest_id)
        self.unread = summary.unread
        self.update(f"🔔 {summary.unread}" if summary.unread else "🔔")
        self.set_class(bool(summary.unread), "-unread")
        self.tooltip = _("{count} unread alerts", count=summary.unread)
        if arrived:
            self.app.bell()
            self.app.notify(
                event.newest or _("New alert"), title=_("New alert"), severity="warning", timeout=8
            )

    def on_click(self, event: Click) -> None:
        event.stop()
        self.app.push_screen(AlertInboxScreen(self.session))


class AlertInboxScreen(DeskScreen):
    """The newest messages for the logged-in user; Enter opens the order, ``r`` marks everything read."""

    AUTO_FOCUS = "#inbox"
    DEFAULT_CSS = """
    AlertInboxScreen #inbox-title {
        height: 1;
        padding: 0 1;
        text-style: bold;
        background: $primary-background;
    }
    AlertInboxScreen #inbox {
        height: 1fr;
    }
    AlertInboxScreen #inbox-failed {
        height: auto;
        padding: 0 1;
        color: $text-error;
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open_order", "Open", id="inbox.open", show=True, priority=True),
        Binding("r", "mark_read", "Mark all read", id="inbox.mark_read"),
        Binding("f5", "reload", "Refresh", id="inbox.reload"),
        Binding("escape", "back", "Back", id="inbox.back"),
    ]

    @dataclass
    class Loaded(Message):
        items: list[InboxItem]
        failed: int

    def __init__(self, session: DeskSession) -> None:
        super().__init__(session)
        self.items: list[InboxItem] = []

    def compose(self) -> ComposeResult:
        yield Static(_("Alert inbox · {user}", user=self.session.user.name), id="inbox-title")
        yield DataTable(id="inbox", cursor_type="row", zebra_stripes=True)
        yield Static("", id="inbox-failed")
        yield StatusLine(self.session, self.session.db_path.name)
        yield Footer()

    def on_mount(self) -> None:
        self.load()

    def load(self) -> None:
        lang = current_language()

        def inbox_page() -> tuple[list[InboxItem], int]:
            from orderdesk.notify import inbox, inbox_summary

            items = inbox(self.session.store, self.session.user.name, limit=INBOX_PAGE, lang=lang)
            failed = inbox_summary(
                self.session.store, self.session.user.name, with_failed=True
            ).failed_deliveries
            return items, failed

        self.run_command(inbox_page, lambda found: self.Loaded(*found), group="inbox")

    @on(Loaded)
    def _loaded(self, event: Loaded) -> None:
        self.items = event.items
        table = self.query_one("#inbox", DataTable)
        width = table.size.width or self.app.size.width
        w_text = max(20, width - W_WHEN - W_ORDER - 8)
        with self.app.batch_update():
            table.clear(columns=True)
            table.add_column(_("When"), width=W_WHEN, key="when")
            table.add_column(_("Order"), width=W_ORDER, key="order")
            table.add_column(_("Message"), width=w_text, key="text")
            for item in self.items:
                style = "" if item.read else "bold"
                if item.severity == "red" and not item.read:
                    style = "bold red"
                table.add_row(
                    fit(item.at.astimezone().strftime("%m-%d %H:%M"), W_WHEN, style=style),
                    fit(item.order_no, W_ORDER, style=style),
                    fit(item.text, w_text, style=style),
                    key=str(item.id),
                )
        failed = self.query_one("#inbox-failed", Static)
        failed.update(
            Text(
                _(
                    "{count} messages could not be delivered: orderdesk alerts deliveries --status failed",
                    count=event.failed,
                )
            )
            if event.failed
            else ""
        )
        if not self.items:
            self.query_one("#inbox-title", Static).update(
                _("Alert inbox · {user} · nothing here", user=self.session.user.name)
            )

    @on(CommandRefused)
    def _failed(self, event: CommandRefused) -> None:
        self.notify(str(event.reason), severity="error")

    def _current(self) -> InboxItem | None:
        key = cursor_key(self.query_one("#inbox", DataTable))
        return next((i for i in self.items if str(i.id) == key), None)

    def action_open_order(self) -> None:
        item = self._current()
        if item is None or not item.order_no:
            return
        self.mark([item.id])
        from screens.order_detail import OrderDetailScreen

        self.app.push_screen(OrderDetailScreen(self.session, item.order_no))

    @work(thread=True, exit_on_error=False, group="inbox-read")
    def mark(self, ids: list[int] | None) -> None:
        from orderdesk.notify import mark_read

        mark_read(self.session.store, self.session.user.name, ids)
        self.post_message(self.Marked())

    @dataclass
    class Marked(Message):
        pass

    @on(Marked)
    def _marked(self) -> None:
        self.load()

    def action_mark_read(self) -> None:
        self.mark(None)

    def action_reload(self) -> None:
        self.load()
