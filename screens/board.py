"""The supervisor's live status board: where everything is right now, refreshed every second.

The database is read in a thread worker (``orderdesk.board.load_board``, a handful of indexed queries);
refreshes are coalesced (a tick while one is still running is skipped, and only the newest result is
handled); the table is keyed by state and only cells whose text changed are updated, the side panels only
when their text changed. At 80x24 it shows every state with its count, late orders and oldest age, the
red/amber/green split of due dates, today's shipments, the week's on-time rate, the bottleneck and the open
alerts per level with their countdowns; a wider or taller terminal gets more columns and more escalations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import DataTable, Footer, Static

from orderdesk.i18n import _, current_language
from screens.alert_inbox import AlertBell, AlertInboxScreen
from screens.base import CommandRefused, DeskScreen, StatusLine, fit

if TYPE_CHECKING:
    from orderdesk.board import Board
    from screens.session import DeskSession

REFRESH_SECONDS = 1.0
W_STATE, W_COUNT, W_LATE, W_AGE, W_OLDEST, W_TIMEOUT = 16, 8, 6, 6, 14, 7
BAR = 8  # cells of the red/amber/green bar


class StatusBoardScreen(DeskScreen):
    """The whole floor at a glance; the supervisor's home."""

    CSS_PATH = "alert_screens.tcss"
    AUTO_FOCUS = "#board-states"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open_oldest", "Oldest order", id="board.open_oldest", show=False),
        Binding("t", "triage", "Triage", id="board.triage"),
        Binding("i", "inbox", "Inbox", id="board.inbox"),
        Binding("p", "pause", "Pause", id="board.pause"),
        Binding("f5", "refresh_now", "Refresh", id="board.refresh"),
    ]

    @dataclass
    class Loaded(Message):
        board: Board

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, StatusBoardScreen.Loaded)  # only the newest board matters

    def __init__(self, session: DeskSession) -> None:
        super().__init__(session)
        self.board: Board | None = None
        self.refreshes = 0  # boards applied (tests and the benchmark read it)
        self.cell_updates = 0  # table cells actually changed
        self._inflight = False
        self._paused = False
        self._cells: dict[tuple[str, str], str] = {}
        self._texts: dict[str, str] = {}
        self._columns: tuple[str, ...] = ()

    def compose(self) -> ComposeResult:
        with Horizontal(id="board-bar"):
            yield Static(Text(_("Floor status"), style="bold"), id="board-title")
            yield AlertBell(self.session, id="board-bell")
        with Horizontal(id="board-main"):
            yield DataTable(id="board-states", cursor_type="row", zebra_stripes=True)
            with Vertical(id="board-side"):
                yield Static("", id="board-due")
                yield Static("", id="board-today")
                yield Static("", id="board-alerts")
        yield StatusLine(self.session, self.session.db_path.name)
        yield Footer()

    def on_mount(self) -> None:
        self.tick()
        self.set_interval(REFRESH_SECONDS, self.tick)

    # -- refreshing ----------------------------------------------------------------------------------
    def tick(self) -> None:
        """Start a refresh unless one is still running (coalescing: a slow database skips ticks)."""
        if self._inflight or self._paused:
            return
        self._inflight = True
        self.load()

    def load(self) -> None:
        def board() -> Board:
            from orderdesk.board import load_board

            return load_board(self.session.store)

        self.run_command(board, self.Loaded, group="board", exclusive=False)

    @on(Loaded)
    def _loaded(self, event: Loaded) -> None:
        self._inflight = False
        self.board = event.board
        self.refreshes += 1
        self.apply(event.board)

    @on(CommandRefused)
    def _failed(self, event: CommandRefused) -> None:
        self._inflight = False
        self._set_text("board-title", Text(str(event.reason), style="bold red"))

    def on_resize(self) -> None:
        if self.board is not None:
            self.apply(self.board)

    # -- drawing (diffs only) ------------------------------------------------------------------------
    def _wanted_columns(self) -> tuple[str, ...]:
        cols = ("state", "count", "late", "age")
        return (*cols, "oldest", "timeout") if self.app.size.width >= 110 else cols

    def apply(self, board: Board) -> None:
        table = self.query_one("#board-states", DataTable)
        columns = self._wanted_columns()
        with self.app.batch_update():
            if columns != self._columns or table.row_count != len(board.states):
                self._rebuild(table, columns, board)
            for line in board.states:
                for key, text in self._row(line, board).items():
                    if self._cells.get((line.state, key)) != text.plain + text.style.__str__():
                        self._cells[(line.state, key)] = text.plain + text.style.__str__()
                        table.update_cell(line.state, key, text)
                        self.cell_updates += 1
            self._side(board)

    def _rebuild(self, table: DataTable[Any], columns: tuple[str, ...], board: Board) -> None:
        titles = {
            "state": (_("State"), W_STATE),
            "count": (_("Orders"), W_COUNT),
            "late": (_("Late"), W_LATE),
            "age": (_("Oldest"), W_AGE),
            "oldest": (_("Oldest order"), W_OLDEST),
            "timeout": (_("Time limit"), W_TIMEOUT),
        }
        table.clear(columns=True)
        self._cells.clear()
        for key in columns:
            label, width = titles[key]
            table.add_column(
                Text(label, justify="left" if key in ("state", "oldest") else "right"), width=width, key=key
            )
        for line in board.states:
            row = self._row(line, board)
            table.add_row(*(row[k] for k in columns), key=line.state)
            for key, text in row.items():
                self._cells[(line.state, key)] = text.plain + text.style.__str__()
        self._columns = columns

    def _row(self, line: Any, board: Board) -> dict[str, Text]:
        from orderdesk.board import age_text

        live = line.kind != "terminal"
        bottleneck = line.state == board.bottleneck
        name = line.label.render(current_language())
        row = {
            "state": fit(
                ("▶ " if bottleneck else "") + name,
                W_STATE,
                style="bold red" if bottleneck else ("" if live else "dim"),
            ),
            "count": fit(f"{line.count:,}", W_COUNT, justify="right", style="" if live else "dim"),
            "late": fit(
                f"{line.overdue:,}" if line.overdue else "-",
                W_LATE,
                justify="right",
                style="red" if line.overdue else "dim",
            ),
            "age": fit(
                age_text((board.at - line.oldest_since).total_seconds())
                if live and line.oldest_since
                else "-",
                W_AGE,
                justify="right",
                style="" if live else "dim",
            ),
        }
        if "oldest" in self._wanted_columns():
            row["oldest"] = fit(line.oldest_order_no if live else "", W_OLDEST, style="dim")
            row["timeout"] = fit(
                f"{line.timeout_hours:g}h" if line.timeout_hours else "-",
                W_TIMEOUT,
                justify="right",
                style="dim",
            )
        return row

    def _set_text(self, widget_id: str, text: Text) -> None:
        key = text.plain + "".join(str(s.style) for s in text.spans)
        if self._texts.get(widget_id) != key:
            self._texts[widget_id] = key
            self.query_one(f"#{widget_id}", Static).update(text)

    def _side(self, board: Board) -> None:
        from orderdesk.board import countdown_text

        lang = current_language()
        title = Text(_("Floor status"), style="bold")
        title.append("  " + board.at.astimezone().strftime("%Y-%m-%d %H:%M:%S"), style="dim")
        if self._paused:
            title.append("  " + _("paused"), style="bold yellow")
        self._set_text("board-title", title)

        # Red / amber / green by promised date (open orders).
        total = board.red + board.amber + board.green + board.undated or 1
        due = Text(_("Due dates of open orders") + "\n", style="bold")
        for label, value, colour in (
            (_("Late"), board.red, "red"),
            (_("Due ≤ 3 days"), board.amber, "yellow"),
            (_("On track"), board.green, "green"),
        ):
            cells = round(BAR * value / total) if value else 0
            due.append("█" * cells, style=colour)
            due.append("░" * (BAR - cells), style="dim")
            due.append(f" {value:>7,} ", style=f"bold {colour}")
            due.append(label + "\n", style="dim")
        self._set_text("board-due", due)

        today = Text()
        today.append(_("Shipped today") + " ", style="bold")
        today.append(f"{board.shipped_today:,}\n")
        today.append(_("On time this week") + " ", style="bold")
        rate = board.on_time_rate
        today.append(
            "-" if rate is None else f"{rate:.0%}",
            style="" if rate is None else ("green" if rate >= 0.95 else "yellow" if rate >= 0.85 else "red"),
        )
        today.append(f" ({board.on_time_week:,}/{board.delivered_week:,})\n", style="dim")
        today.append(_("Bottleneck") + " ", style="bold")
        if board.bottleneck:
            st = self.session.workflow.states[board.bottleneck]
            late = next(s.overdue for s in board.states if s.state == board.bottleneck)
            today.append(st.label(lang), style="bold red")
            today.append(f" ({late:,})", style="red")
        else:
            today.append("-", style="dim")
        self._set_text("board-today", today)

        alerts = Text(_("Open alerts") + "\n", style="bold")
        if not board.levels and not board.acked and not board.snoozed:
            alerts.append(_("none") + "\n", style="green")
        for lv in board.levels:
            left = (lv.next_escalate_at - board.at).total_seconds() if lv.next_escalate_at else None
            alerts.append(_("Level {level}", level=lv.level) + " ", style="dim")
            alerts.append(f"{lv.open:,}", style="bold red" if lv.level else "bold yellow")
            if left is not None:
                alerts.append("  ⏱ " + countdown_text(left), style="red" if left < 0 else "")
            alerts.append("\n")
        if board.acked or board.snoozed:
            alerts.append(
                _(
                    "{acked} acknowledged · {snoozed} snoozed",
                    acked=f"{board.acked:,}",
                    snoozed=f"{board.snoozed:,}",
                )
                + "\n",
                style="dim",
            )
        room = max(0, self.query_one("#board-alerts", Static).size.height - len(board.levels) - 3)
        if board.next_escalations and room:
            alerts.append(_("Next escalations") + "\n", style="bold")
            for esc in board.next_escalations[:room]:
                alerts.append(
                    countdown_text((esc.escalate_at - board.at).total_seconds()).rjust(6), style="bold"
                )
                alerts.append(f" {esc.order_no} → {self._role(esc.target_role, esc.level)}\n", style="dim")
        self._set_text("board-alerts", alerts)

    def _role(self, role: str, level: int) -> str:
        from orderdesk.alerts import chain_roles  # noqa: F401  (the next level is shown in the triage)

        r = self.session.workflow.roles.get(role)
        return r.label(current_language()) if r else role or _("owner")

    # -- actions -------------------------------------------------------------------------------------
    @on(DataTable.RowSelected, "#board-states")
    def _selected(self) -> None:
        self.action_open_oldest()

    def action_open_oldest(self) -> None:
        if self.board is None:
            return
        table = self.query_one("#board-states", DataTable)
        if not table.row_count:
            return
        state = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        line = next((s for s in self.board.states if s.state == state), None)
        if line is not None and line.oldest_order_no and line.kind != "terminal":
            from screens.order_detail import OrderDetailScreen

            self.app.push_screen(OrderDetailScreen(self.session, line.oldest_order_no))

    def action_triage(self) -> None:
        from screens.triage import TriageScreen

        self.app.push_screen(TriageScreen(self.session))

    def action_inbox(self) -> None:
        self.app.push_screen(AlertInboxScreen(self.session))

    def action_pause(self) -> None:
        self._paused = not self._paused
        if self.board is not None:
            self._side(self.board)
        if not self._paused:
            self.tick()

    def action_refresh_now(self) -> None:
        self.tick()
