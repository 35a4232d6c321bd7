"""The order browser: search by number, customer or phone; the newest orders by default; a state filter.

The table never holds more than one page (``PAGE`` rows): a desk with a million orders is browsed by
searching, not by scrolling.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Static
from textual.worker import get_current_worker

from orderdesk.errors import OrderdeskError
from orderdesk.i18n import Msg, _, current_language
from screens.base import ReportsWorkerErrors, StatusLine, fit, localize_bindings, text_input

if TYPE_CHECKING:
    from orderdesk.views import OrderSummary
    from screens.session import DeskSession

PAGE = 50  # rows in the table; the brief caps it at 100
ORDER_NO = re.compile(r"SO-[A-Z0-9]{1,4}-[0-9]{7}", re.IGNORECASE)

# Fixed column widths in cells; the customer column takes what is left (CJK counts two cells a char).
W_ORDER, W_STATE, W_PROMISED, W_AMOUNT, W_CUSTOMER_MIN = 15, 15, 10, 12, 12


class OrderBrowserScreen(ReportsWorkerErrors, Screen[None]):
    """Find and open orders. The home screen of every role until their own desk is registered."""

    AUTO_FOCUS = "#search"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f3", "cycle_state(1)", "State", id="orders.next_state"),
        Binding("shift+f3", "cycle_state(-1)", "Previous state", id="orders.previous_state", show=False),
        Binding("f5", "reload", "Refresh", id="orders.reload"),
        Binding("slash", "focus_search", "Find", id="orders.find"),
        Binding("down", "focus_table", "Results", id="orders.results", show=False),
        Binding("escape", "clear_search", "Clear", id="orders.clear", show=False),
    ]

    @dataclass
    class OrdersLoaded(Message):
        query: str
        state: str | None
        rows: list[OrderSummary]
        total: int  # orders matching the filter (for the newest-orders view); len(rows) when searching

        def can_replace(self, message: Message) -> bool:
            # Typing fast queues one load per key; only the newest result matters.
            return isinstance(message, OrderBrowserScreen.OrdersLoaded)

    @dataclass
    class LoadFailed(Message):
        reason: Msg

    def __init__(self, session: DeskSession) -> None:
        super().__init__()
        self.session = session
        self.states: list[str | None] = [None, *session.workflow.states]
        self.state: str | None = None
        self.rows: list[OrderSummary] = []
        self._open_when_loaded = ""  # a full order number typed or scanned before its search returned
        self._loaded_once = False
        localize_bindings(self)

    def compose(self) -> ComposeResult:
        with Horizontal(id="browser-bar"):
            search = text_input(
                self, placeholder=_("Order no. (or its last digits), customer, phone"), id="search"
            )
            search.border_title = _("Find order")
            yield search
            state = Static(self._state_text(), id="state-filter", markup=False)
            state.border_title = _("State")
            state.border_subtitle = "F3"
            yield state
        table: DataTable[Any] = DataTable(id="orders", cursor_type="row", zebra_stripes=True)
        yield table
        yield StatusLine(self.session, self.session.db_path.name)
        yield Footer()

    def on_mount(self) -> None:
        self._reload()

    def on_screen_resume(self) -> None:
        # Back from an order: its state may have changed, so show fresh rows.
        if self._loaded_once:
            self._reload()

    def focus_search(self) -> None:
        search = self.query_one("#search", Input)
        search.focus()
        search.select_all()

    # -- loading -------------------------------------------------------------------------------------
    def _reload(self) -> None:
        self.load_orders(self.query_one("#search", Input).value.strip(), self.state)

    @work(thread=True, exclusive=True, exit_on_error=False, group="orders")
    def load_orders(self, query: str, state: str | None) -> None:
        """Search (or list the newest orders) in a thread; post the frozen summaries."""
        from orderdesk.orders import list_orders, search_orders

        store = self.session.store
        try:
            if query:
                rows = search_orders(store, query, limit=PAGE)
                if state is not None:
                    rows = [r for r in rows if r.state == state]
                total = len(rows)
            else:
                total, rows = list_orders(store, state=state, limit=PAGE)
        except OrderdeskError as exc:
            self.post_message(self.LoadFailed(exc.message))
            return
        if not get_current_worker().is_cancelled:
            self.post_message(self.OrdersLoaded(query, state, rows, total))

    @on(OrdersLoaded)
    def _loaded(self, event: OrdersLoaded) -> None:
        if event.query != self.query_one("#search", Input).value.strip() or event.state != self.state:
            return  # an older search finished after the user typed on
        self.rows = event.rows
        self._loaded_once = True
        self._fill_table()
        self._caption(event)
        wanted, self._open_when_loaded = self._open_when_loaded, ""
        if wanted and any(r.order_no == wanted for r in event.rows):
            self.open_order(wanted)

    @on(LoadFailed)
    def _load_failed(self, event: LoadFailed) -> None:
        self.notify(str(event.reason), severity="error", timeout=8, markup=False)

    def _caption(self, event: OrdersLoaded) -> None:
        search = self.query_one("#search", Input)
        if event.query:
            text = _("{count} found", count=len(event.rows))
        elif event.total > len(event.rows):
            text = _("{shown} of {total}", shown=len(event.rows), total=event.total)
        else:
            text = _("{count} orders", count=event.total)
        search.border_subtitle = text

    # -- the table -----------------------------------------------------------------------------------
    def _columns(self) -> list[tuple[str, str, int]]:
        see = self.session.user.see
        cols = [("order_no", _("Order"), W_ORDER)]
        fixed = W_ORDER + W_STATE + (W_PROMISED if "promised_date" in see else 0)
        if "amount" in see:
            fixed += W_AMOUNT
        n = 3 + ("promised_date" in see) + ("amount" in see)
        width = self.query_one("#orders", DataTable).size.width or self.app.size.width
        # Each column has one cell of padding either side; leave room for the vertical scrollbar.
        customer = max(W_CUSTOMER_MIN, width - fixed - 2 * n - 2)
        cols.append(("customer", _("Customer"), customer))
        cols.append(("state", _("State"), W_STATE))
        if "promised_date" in see:
            cols.append(("promised", _("Promised"), W_PROMISED))
        if "amount" in see:
            cols.append(("amount", _("Amount"), W_AMOUNT))
        return cols

    def _fill_table(self) -> None:
        from orderdesk.money import format_money

        table = self.query_one("#orders", DataTable)
        current = self._current_order()
        columns = self._columns()
        with self.app.batch_update():
            table.clear(columns=True)
            for key, label, width in columns:
                justify = "right" if key == "amount" else "left"
                table.add_column(Text(label, justify=justify), width=width, key=key)
            for r in self.rows[:PAGE]:
                cells: dict[str, Text] = {
                    "order_no": fit(
                        r.order_no + (" !" if r.rush else ""), W_ORDER, style="bold red" if r.rush else ""
                    ),
                    "customer": fit(r.customer_name, columns[1][2]),
                    "state": fit(str(r.state_label), W_STATE),
                    "promised": fit(r.promised_date.isoformat() if r.promised_date else "-", W_PROMISED),
                    "amount": fit(format_money(r.amount), W_AMOUNT, justify="right"),
                }
                table.add_row(*(cells[key] for key, _label, _w in columns), key=r.order_no)
        if current is not None and current in {r.order_no for r in self.rows}:
            table.move_cursor(row=table.get_row_index(current))

    def _current_order(self) -> str | None:
        table = self.query_one("#orders", DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        return str(key.value) if key.value is not None else None

    def on_resize(self) -> None:
        if self.rows:
            self._fill_table()

    # -- events and actions --------------------------------------------------------------------------
    @on(Input.Changed, "#search")
    def _search_changed(self, event: Input.Changed) -> None:
        self.load_orders(event.value.strip(), self.state)

    @on(Input.Submitted, "#search")
    def _search_submitted(self, event: Input.Submitted) -> None:
        text = event.value.strip().upper()
        if ORDER_NO.fullmatch(text):  # typed or scanned in full: open it straight away
            if any(r.order_no == text for r in self.rows):
                self.open_order(text)
            else:
                self._open_when_loaded = text
            return
        if self.rows:
            self.action_focus_table()

    @on(DataTable.RowSelected, "#orders")
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is not None:
            self.open_order(str(event.row_key.value))

    def open_order(self, order_no: str) -> None:
        from screens.order_detail import OrderDetailScreen

        self.app.push_screen(OrderDetailScreen(self.session, order_no))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        focused_search = isinstance(self.focused, Input)
        if action == "focus_table":
            return focused_search and bool(self.rows)
        if action == "clear_search":
            return focused_search
        return True

    def action_focus_table(self) -> None:
        self.query_one("#orders", DataTable).focus()

    def action_focus_search(self) -> None:
        self.focus_search()

    def action_clear_search(self) -> None:
        self.query_one("#search", Input).value = ""

    def action_reload(self) -> None:
        self._reload()

    def action_cycle_state(self, step: int) -> None:
        index = (self.states.index(self.state) + step) % len(self.states)
        self.state = self.states[index]
        self.query_one("#state-filter", Static).update(self._state_text())
        self._reload()

    def _state_text(self) -> Text:
        if self.state is None:
            return Text(_("All"))
        return fit(self.session.workflow.states[self.state].label(current_language()), W_STATE)
