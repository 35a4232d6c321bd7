"""The supervisor's queue: changes the central API rejected and edit conflicts to resolve.

Each row says what was tried, by whom, and why it was refused, in the reader's language (reasons travel
as message ids). A supervisor dismisses a row (the central value stays) or keeps the desk's value (the edit
or move is made again, now based on the current version).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from orderdesk.errors import OrderdeskError
from orderdesk.i18n import Msg, _
from screens.base import ReportsWorkerErrors, StatusLine, fit, localize_bindings

if TYPE_CHECKING:
    from orderdesk.replication import Rejection
    from screens.session import DeskSession

W_WHEN, W_ORDER, W_WHAT, W_WHO = 11, 15, 12, 8


class RejectionsScreen(ReportsWorkerErrors, Screen[None]):
    """Rejected changes and conflicts, newest first."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("d", "dismiss_row", "Dismiss", id="rejections.dismiss"),
        Binding("k", "keep_mine", "Keep this desk's value", id="rejections.keep"),
        Binding("f5", "reload", "Refresh", id="rejections.reload"),
        Binding("escape", "app.pop_screen", "Back", id="rejections.back"),
    ]

    @dataclass
    class Loaded(Message):
        rows: list[Rejection]

    @dataclass
    class Failed(Message):
        reason: Msg

    def __init__(self, session: DeskSession) -> None:
        super().__init__()
        self.session = session
        self.rows: list[Rejection] = []
        localize_bindings(self)

    def compose(self) -> ComposeResult:
        yield Static(_("Changes the central API rejected"), id="rejections-title")
        table: DataTable[Any] = DataTable(id="rejections", cursor_type="row", zebra_stripes=True)
        yield table
        yield Static("", id="rejection-reason", markup=False)
        yield StatusLine(self.session, self.session.db_path.name)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#rejections", DataTable)
        table.add_column(_("When"), width=W_WHEN, key="when")
        table.add_column(_("Order"), width=W_ORDER, key="order")
        table.add_column(_("Change"), width=W_WHAT, key="what")
        table.add_column(_("By"), width=W_WHO, key="who")
        table.add_column(_("Reason"), key="reason")
        self.load()

    @work(thread=True, exclusive=True, exit_on_error=False, group="rejections")
    def load(self) -> None:
        from orderdesk.replication import rejections

        try:
            self.post_message(self.Loaded(rejections(self.session.store)))
        except OrderdeskError as exc:
            self.post_message(self.Failed(exc.message))

    @on(Loaded)
    def _loaded(self, event: Loaded) -> None:
        self.rows = event.rows
        table = self.query_one("#rejections", DataTable)
        table.clear()
        for r in event.rows:
            table.add_row(
                fit(r.decided_at.astimezone().strftime("%m-%d %H:%M"), W_WHEN),
                fit(r.order_no or "-", W_ORDER),
                fit(str(r.what), W_WHAT, style="bold" if r.is_conflict else ""),
                fit(r.user_name, W_WHO),
                fit(str(r.reason), 200),
                key=r.op_id,
            )
        self._show_reason()
        if not event.rows:
            self.query_one("#rejection-reason", Static).update(_("Nothing to resolve."))

    @on(Failed)
    def _failed(self, event: Failed) -> None:
        self.notify(str(event.reason), severity="error", timeout=10)

    @on(DataTable.RowHighlighted)
    def _highlighted(self, _event: DataTable.RowHighlighted) -> None:
        self._show_reason()

    def _current(self) -> Rejection | None:
        table = self.query_one("#rejections", DataTable)
        if not self.rows or table.cursor_row < 0 or table.cursor_row >= len(self.rows):
            return None
        return self.rows[table.cursor_row]

    def _show_reason(self) -> None:
        row = self._current()
        if row is not None:
            self.query_one("#rejection-reason", Static).update(str(row.reason))

    def action_reload(self) -> None:
        self.load()

    def action_dismiss_row(self) -> None:
        row = self._current()
        if row is not None:
            self.resolve(row.op_id, keep=False)

    def action_keep_mine(self) -> None:
        row = self._current()
        if row is not None:
            self.resolve(row.op_id, keep=True)

    @work(thread=True, exit_on_error=False, group="rejections-resolve")
    def resolve(self, op_id: str, keep: bool) -> None:
        from orderdesk.replication import reapply_rejection, resolve_rejection

        try:
            if keep:
                reapply_rejection(self.session.store, op_id, user=self.session.user.name)
            else:
                resolve_rejection(self.session.store, op_id, user=self.session.user.name)
        except OrderdeskError as exc:
            self.post_message(self.Failed(exc.message))
        self.app.call_from_thread(self.load)
