"""One order: header, lines and the timeline from the audit trail; ``m`` moves it, ``n`` adds a note.

Only the fields the user's roles may see are shown (the workflow's ``see`` lists), so the warehouse never
sees a price.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from rich.cells import cell_len
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import DataTable, Footer, Static

from orderdesk.i18n import _, current_language
from screens.base import CommandRefused, DeskScreen, StatusLine, fit
from screens.order_dialogs import MoveDialog, NoteDialog

if TYPE_CHECKING:
    from orderdesk.audit import AuditEntry
    from orderdesk.views import OrderDetail
    from orderdesk.workflow import Workflow
    from screens.session import DeskSession

TIMELINE_MAX = 100  # newest entries shown; an order's trail is short, but never fill a table unbounded
W_SKU, W_QTY, W_PRICE, W_WHEN, W_WHO, W_MIN = 10, 7, 11, 11, 8, 12


def describe(entry: AuditEntry, workflow: Workflow) -> str:
    """One timeline row in words: what happened to the order, in the reader's language."""
    lang = current_language()
    d = entry.detail
    reason = str(d.get("reason") or "")
    if entry.command == "create_order":
        text = _("Created the order")
    elif entry.command == "move_order":
        text = f"{workflow.state_label(str(d.get('from', '')), lang)} → {workflow.state_label(str(d.get('to', '')), lang)}"
    elif entry.command == "add_note":
        text = _("Note: {text}", text=str(d.get("text", "")))
    elif entry.command == "edit_order":
        text = _("Changed {fields}", fields=", ".join(sorted(d.get("changes", {}))))
    else:
        text = entry.command.replace("_", " ")
    return f"{text} · {reason}" if reason else text


class OrderDetailScreen(DeskScreen):
    """Everything about one order for the person looking at it."""

    AUTO_FOCUS = "#lines"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("m", "move", "Move", id="detail.move"),
        Binding("n", "note", "Note", id="detail.note"),
        Binding("r", "reload", "Reload", id="detail.reload"),
        Binding("escape", "back", "Back", id="detail.back"),
    ]

    @dataclass
    class Loaded(Message):
        detail: OrderDetail

    def __init__(self, session: DeskSession, order_no: str) -> None:
        super().__init__(session)
        self.order_no = order_no.strip().upper()
        self.detail: OrderDetail | None = None

    def compose(self) -> ComposeResult:
        yield Static(_("Loading {order_no}…", order_no=self.order_no), id="detail-header", markup=False)
        lines: DataTable[Any] = DataTable(id="lines", cursor_type="row", zebra_stripes=True)
        lines.border_title = _("Lines")
        yield lines
        timeline: DataTable[Any] = DataTable(id="timeline", cursor_type="row")
        timeline.border_title = _("Timeline")
        yield timeline
        yield StatusLine(self.session, self.session.db_path.name)
        yield Footer()

    def on_mount(self) -> None:
        self.load_detail()

    # -- loading -------------------------------------------------------------------------------------
    def load_detail(self) -> None:
        def detail() -> OrderDetail:
            from orderdesk.orders import show_order

            return show_order(self.session.store, self.order_no, viewer=self.session.user.name)

        self.run_command(detail, self.Loaded, group="detail")

    @on(Loaded)
    def _loaded(self, event: Loaded) -> None:
        self.show(event.detail)

    @on(CommandRefused)
    def _load_failed(self, event: CommandRefused) -> None:
        self.query_one("#detail-header", Static).update(Text(str(event.reason), style="bold red"))

    def show(self, detail: OrderDetail) -> None:
        """Render ``detail`` (from a load or returned by a move)."""
        self.detail = detail
        with self.app.batch_update():
            self.query_one("#detail-header", Static).update(self._header(detail))
            self._fill_lines(detail)
            self._fill_timeline(detail)
        self.refresh_bindings()

    def _header(self, d: OrderDetail) -> Text:
        """Four lines at most: number and state, customer, ship-to, promised date and amount."""
        see = self.session.user.see
        title = Text.assemble((d.order_no, "bold"), "  ")
        if d.rush and "rush" in see:
            title.append(f" {_('RUSH')} ", style="bold white on red")
            title.append("  ")
        title.append(f" {d.summary.state_label} ", style="bold reverse")
        title.append(f"  v{d.version}", style="dim")
        rows: list[tuple[str, Text]] = []
        customer = f"{d.summary.customer_name} ({d.summary.customer_code})"
        if "customer_phone" in see and d.customer_phone:
            customer += f"  ☎ {d.customer_phone}"
        rows.append((_("Customer"), Text(customer)))
        if "ship_address" in see:
            rows.append((_("Ship to"), Text(" ".join((d.ship_address or "-").split()))))
        when: list[Text] = []
        if "promised_date" in see:
            promised = d.promised_date.isoformat() if d.promised_date else "-"
            when.append(Text.assemble(promised, (f" {_('rush')}" if d.rush else "", "bold red")))
        if "amount" in see:
            from orderdesk.money import format_money

            when.append(Text.assemble((_("Amount") + " ", "bold"), format_money(d.summary.amount)))
        if when:
            rows.append((_("Promised") if "promised_date" in see else "", Text("   ").join(when)))
        # Labels padded by cells, not characters, so Chinese labels line the values up too.
        width = max(cell_len(label) for label, _value in rows)
        lines = [title]
        for label, value in rows:
            lines.append(Text.assemble((label + " " * (width - cell_len(label) + 1), "bold"), value))
        return Text("\n").join(lines)

    def _flex(self, table: DataTable[Any], fixed: int, columns: int) -> int:
        width = table.size.width or self.app.size.width
        return max(W_MIN, width - fixed - 2 * columns - 2)

    def _fill_lines(self, d: OrderDetail) -> None:
        from orderdesk.money import format_money

        see = self.session.user.see
        table = self.query_one("#lines", DataTable)
        numeric = [
            ("lines.quantity", _("Qty"), W_QTY, lambda ln: str(ln.quantity)),
            ("lines.scanned", _("Scanned"), W_QTY, lambda ln: str(ln.scanned_qty)),
            ("lines.shipped", _("Shipped"), W_QTY, lambda ln: str(ln.shipped_qty)),
            ("lines.unit_price", _("Unit price"), W_PRICE, lambda ln: format_money(ln.unit_price)),
        ]
        numeric = [c for c in numeric if c[0] in see]
        show_sku = "lines.sku" in see
        fixed = (W_SKU if show_sku else 0) + sum(c[2] for c in numeric)
        w_name = self._flex(table, fixed, 1 + show_sku + len(numeric))
        table.clear(columns=True)
        if show_sku:
            table.add_column("SKU", width=W_SKU, key="sku")
        table.add_column(_("Name"), width=w_name, key="name")
        for key, label, width, _value in numeric:
            table.add_column(Text(label, justify="right"), width=width, key=key)
        for ln in d.lines:
            cells: list[Text] = [fit(ln.sku, W_SKU)] if show_sku else []
            name = ln.name + (" ⚠" if ln.hazard == "hazardous" else "")
            cells.append(fit(name, w_name))
            cells += [fit(value(ln), width, justify="right") for _k, _l, width, value in numeric]
            table.add_row(*cells, key=str(ln.line_no))

    def _fill_timeline(self, d: OrderDetail) -> None:
        table = self.query_one("#timeline", DataTable)
        w_what = self._flex(table, W_WHEN + W_WHO, 3)
        table.clear(columns=True)
        table.add_column(_("When"), width=W_WHEN, key="when")
        table.add_column(_("Who"), width=W_WHO, key="who")
        table.add_column(_("What"), width=w_what, key="what")
        # Newest first: what just happened is what the person at the desk is asking about.
        for entry in list(reversed(d.timeline))[:TIMELINE_MAX]:
            table.add_row(
                fit(entry.at.astimezone().strftime("%m-%d %H:%M"), W_WHEN),
                fit(entry.user_name, W_WHO),
                fit(describe(entry, self.session.workflow), w_what),
                key=str(entry.id),
            )

    def on_resize(self) -> None:
        if self.detail is not None:
            self.show(self.detail)

    # -- actions -------------------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("move", "note"):
            return self.detail is not None
        return True

    def action_move(self) -> None:
        if self.detail is None:
            return
        if not self.detail.transitions:
            self.notify(
                _(
                    "You have no moves for {order_no} in {state}.",
                    order_no=self.detail.order_no,
                    state=str(self.detail.summary.state_label),
                ),
                severity="warning",
                markup=False,
            )
            return
        self.app.push_screen(MoveDialog(self.session, self.detail), callback=self._after_move)

    def _after_move(self, detail: OrderDetail | None) -> None:
        if detail is None:
            self.load_detail()  # the dialog may have found the order changed underneath: show it fresh
            return
        self.show(detail)
        self.notify(
            _("{order_no} is now {state}.", order_no=detail.order_no, state=str(detail.summary.state_label)),
            markup=False,
        )

    def action_note(self) -> None:
        if self.detail is not None:
            self.app.push_screen(NoteDialog(self.session, self.detail.order_no), callback=self._after_note)

    def _after_note(self, added: bool | None) -> None:
        if added:
            self.load_detail()

    def action_reload(self) -> None:
        self.load_detail()
