"""The sales desk: what needs attention, order entry with the checks answered as you type, change requests,
versions side by side, and the change requests waiting for this person's decision.

Keyboard first and sized for 80x24. Every database call runs in a thread worker that posts a message; the
handlers own the widgets. Tables hold one page at most.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta, timezone
from typing import TYPE_CHECKING, Any, ClassVar

from rich.cells import cell_len
from rich.console import Group
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import ContentSwitcher, DataTable, Footer, Input, OptionList, Static
from textual.widgets.option_list import Option

from orderdesk.errors import OrderdeskError
from orderdesk.i18n import Label, Msg, _
from screens.base import (
    RED,
    CommandRefused,
    DeskScreen,
    QueueDeskScreen,
    StatusLine,
    cursor_key,
    desk_app,
    fit,
    keep_cursor,
    refusal_text,
    text_input,
)
from screens.desk_dialogs import Choice, ChoiceDialog, ConfirmDialog, ReasonDialog

if TYPE_CHECKING:
    from orderdesk.sales import (
        ChangePreview,
        ChangeRequestView,
        CustomerDefaults,
        CustomerPick,
        EntryCheck,
        EntryResult,
        ProductPick,
        RevisionView,
        WorkItem,
    )
    from screens.session import DeskSession

PAGE = 50
CHANNELS = ("offline", "wholesale", "taobao", "jd", "miniprogram", "alibaba")
CHANNEL_LABELS = {
    "offline": Label("Offline", "线下"),
    "wholesale": Label("Wholesale", "批发"),
    "taobao": Label("Taobao", "淘宝"),
    "jd": Label("JD", "京东"),
    "miniprogram": Label("Mini-program", "小程序"),
    "alibaba": Label("Alibaba.com", "阿里国际站"),
}
FLAG_LABELS = {
    "credit_hold": Label("Credit hold", "信用冻结"),
    "approval_pending": Label("Approval", "待审批"),
    "approval_rejected": Label("Rejected", "未批准"),
    "rush_blocked": Label("Rush blocked", "加急受阻"),
    "change_pending": Label("Change", "变更待批"),
    "short_lead": Label("Short", "交期紧"),
}
W_ORDER, W_PROMISED, W_AMOUNT, W_FLAGS, W_MIN = 15, 10, 12, 18, 10
# Times on the desks are shown in China Standard Time, where the desks are (stable in tests too).
BUSINESS_TZ = timezone(timedelta(hours=8))


def promised_text(promised: date | None, short: bool, width: int = W_PROMISED) -> Text:
    """A promised date, red wherever it is shown when the lead time is short."""
    return fit(promised.isoformat() if promised else "-", width, style=RED if short else "")


def money(amount: int | None) -> str:
    from orderdesk.money import format_money

    return "—" if amount is None else format_money(amount)


def label_pad(label: str, width: int) -> str:
    """``label`` padded to ``width`` cells (Chinese labels take two cells a character)."""
    return label + " " * max(0, width - cell_len(label))


def table_flex(table: DataTable[Any], app_width: int, fixed: int, columns: int) -> int:
    width = table.size.width or app_width
    return max(W_MIN, width - fixed - 2 * columns - 2)


# ---------------------------------------------------------------------------------------------------------
# The desk: orders needing attention
# ---------------------------------------------------------------------------------------------------------
class SalesDeskScreen(QueueDeskScreen):
    """Home of the sales role: the orders that need sales, most urgent first; n enters a new order."""

    DEFAULT_CSS = """
    SalesDeskScreen #sales-title { height: 1; padding: 0 1; background: $boost; text-style: bold; }
    SalesDeskScreen #worklist { height: 1fr; }
    SalesDeskScreen #sales-hint { height: 2; padding: 0 1; color: $text-muted; }
    """
    AUTO_FOCUS = "#worklist"
    QUEUE_ID = "worklist"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n", "new_order", "New order", id="sales.new"),
        Binding("c", "change", "Change", id="sales.change"),
        Binding("v", "versions", "Versions", id="sales.versions"),
        Binding("a", "approvals", "Approvals", id="sales.approvals"),
        Binding("slash", "find", "Find", id="sales.find"),
        Binding("f5", "reload", "Refresh", id="sales.reload"),
    ]

    @dataclass
    class Loaded(Message):
        items: list[WorkItem]

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, SalesDeskScreen.Loaded)

    def __init__(self, session: DeskSession) -> None:
        super().__init__(session)
        self.items: list[WorkItem] = []

    def compose(self) -> ComposeResult:
        yield from self.compose_queue(_("Sales desk — loading…"), "sales-title", "sales-hint")

    def load(self) -> None:
        def worklist() -> list[WorkItem]:
            from orderdesk.sales import sales_worklist

            return sales_worklist(self.session.store, viewer=self.session.user.name, limit=PAGE, recent=True)

        self.run_command(worklist, self.Loaded, group="sales-worklist")

    @on(Loaded)
    def _loaded(self, event: Loaded) -> None:
        self.items, self.loaded = event.items, True
        attention = sum(1 for i in event.items if i.flags)
        self.query_one("#sales-title", Static).update(
            _("Sales desk — {count} orders need attention", count=attention)
            if attention
            else _("Sales desk — nothing needs attention. n: new order")
        )
        self._fill()
        self._hint()
        self.refresh_bindings()

    @on(CommandRefused)
    def _failed(self, event: CommandRefused) -> None:
        self.query_one("#sales-title", Static).update(Text(str(event.reason), style=RED))

    def _fill(self) -> None:
        table = self.query_one("#worklist", DataTable)
        current = self.current_order()
        show_amount = "amount" in self.session.user.see
        fixed = W_ORDER + W_PROMISED + W_FLAGS + (W_AMOUNT if show_amount else 0)
        w_customer = table_flex(table, self.app.size.width, fixed, 4 + show_amount)
        with self.app.batch_update():
            table.clear(columns=True)
            table.add_column(_("Order"), width=W_ORDER, key="order")
            table.add_column(_("Customer"), width=w_customer, key="customer")
            table.add_column(_("Promised"), width=W_PROMISED, key="promised")
            if show_amount:
                table.add_column(Text(_("Amount"), justify="right"), width=W_AMOUNT, key="amount")
            table.add_column(_("Attention"), width=W_FLAGS, key="flags")
            for item in self.items[:PAGE]:
                cells = [
                    fit(item.order_no + (" !" if item.rush else ""), W_ORDER, style=RED if item.rush else ""),
                    fit(item.customer_name, w_customer),
                    promised_text(item.promised_date, item.short_lead),
                ]
                if show_amount:
                    cells.append(fit(money(item.amount), W_AMOUNT, justify="right"))
                cells.append(fit(" · ".join(str(FLAG_LABELS[f]) for f in item.flags), W_FLAGS))
                table.add_row(*cells, key=item.order_no)
        keep_cursor(table, current)

    def _current_item(self) -> WorkItem | None:
        no = self.current_order()
        return next((i for i in self.items if i.order_no == no), None)

    @on(DataTable.RowHighlighted, "#worklist")
    def _highlighted(self) -> None:
        self._hint()

    def _hint(self) -> None:
        item = self._current_item()
        self.query_one("#sales-hint", Static).update(explain(item) if item else "")

    @on(DataTable.RowSelected, "#worklist")
    def _open(self, event: DataTable.RowSelected) -> None:
        from screens.order_detail import OrderDetailScreen

        if event.row_key.value is not None:
            self.app.push_screen(OrderDetailScreen(self.session, str(event.row_key.value)))

    # -- actions -----------------------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("change", "versions"):
            return self.current_order() is not None
        return True

    def action_new_order(self) -> None:
        self.app.push_screen(OrderEntryScreen(self.session))

    def action_change(self) -> None:
        order_no = self.current_order()
        if order_no:
            self.app.push_screen(ChangeRequestScreen(self.session, order_no))

    def action_versions(self) -> None:
        order_no = self.current_order()
        if order_no:
            self.app.push_screen(VersionsScreen(self.session, order_no))

    def action_approvals(self) -> None:
        self.app.push_screen(ChangeApprovalsScreen(self.session))

    async def action_find(self) -> None:
        await desk_app(self).action_find_order()


def explain(item: WorkItem) -> Text:
    """The selected order's attention flags in plain words, with who must act."""
    parts: list[str] = []
    if item.credit_hold == "pending":
        parts.append(_("On credit hold: finance is asked to release it."))
    elif item.credit_hold == "kept":
        parts.append(_("Finance keeps it on credit hold."))
    if item.approval == "pending":
        parts.append(_("Over the approval threshold: waiting for approval."))
    elif item.approval == "rejected":
        parts.append(_("Approval refused: change or cancel the order."))
    if item.rush_blockers:
        missing = [
            _("technical sign-off") if b == "tech" else _("kitted materials") for b in item.rush_blockers
        ]
        parts.append(_("Rush: enters scheduling only after {missing}.", missing=" + ".join(missing)))
    if item.change_pending:
        parts.append(_("A change request waits for a decision."))
    if item.short_lead:
        parts.append(_("Short lead time."))
    if item.parent:
        parts.append(_("Linked to {order_no}.", order_no=item.parent))
    return Text(f"{item.order_no} · {item.state_label} · " + " ".join(parts), no_wrap=False)


# ---------------------------------------------------------------------------------------------------------
# Order entry
# ---------------------------------------------------------------------------------------------------------
@dataclass
class DraftLine:
    sku: str
    name: str
    quantity: int
    unit_price: int
    stock: int


@dataclass
class Draft:
    """The order on screen, before it is saved."""

    customer: CustomerDefaults | None = None
    lines: list[DraftLine] = field(default_factory=list)
    channel: str = "offline"
    rush: bool = False
    link: bool | None = None  # None: not decided yet


class OrderEntryScreen(DeskScreen):
    """Enter an order: customer by code, name or phone; lines by SKU, name or scan; the checks answered live."""

    DEFAULT_CSS = """
    OrderEntryScreen { layout: vertical; }
    OrderEntryScreen #entry-title { height: 1; padding: 0 1; background: $boost; text-style: bold; }
    OrderEntryScreen .entry-row { height: 1; }
    OrderEntryScreen .entry-label { width: 10; color: $text-muted; }
    OrderEntryScreen .entry-row Input { width: 1fr; }
    OrderEntryScreen #entry-customer-info { width: 1fr; padding: 0 1; }
    OrderEntryScreen #entry-qty { width: 8; }
    OrderEntryScreen #entry-packing { width: 14; }
    OrderEntryScreen #entry-flags { width: 1fr; padding: 0 1; }
    OrderEntryScreen #entry-promised { width: 12; }
    OrderEntryScreen #entry-proposal { width: auto; padding: 0 1; color: $text-muted; }
    OrderEntryScreen #entry-lines { height: 1fr; min-height: 4; border-top: solid $secondary; }
    OrderEntryScreen #entry-bottom { height: 6; border-top: solid $secondary; }
    OrderEntryScreen #entry-picks { height: 6; }
    OrderEntryScreen #entry-checks { height: 6; padding: 0 1; }
    """
    AUTO_FOCUS = "#entry-customer"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s,f10", "save", "Save", id="entry.save", priority=True),
        Binding("f4", "cycle_channel", "Channel", id="entry.channel"),
        Binding("f6", "toggle_rush", "Rush", id="entry.rush"),
        Binding("f7", "toggle_link", "Link", id="entry.link"),
        Binding("delete", "remove_line", "Remove line", id="entry.remove", show=False),
        Binding("escape", "back", "Back", id="entry.back"),
    ]

    @dataclass
    class CustomersFound(Message):
        query: str
        picks: list[CustomerPick]

    @dataclass
    class ProductsFound(Message):
        query: str
        picks: list[ProductPick]

    @dataclass
    class CustomerLoaded(Message):
        defaults: CustomerDefaults

    @dataclass
    class Checked(Message):
        check: EntryCheck

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, OrderEntryScreen.Checked)

    @dataclass
    class Saved(Message):
        result: EntryResult

    def __init__(self, session: DeskSession) -> None:
        super().__init__(session)
        self.draft = Draft()
        self.check: EntryCheck | None = None
        self.picks: list[Any] = []
        self.picks_for = ""  # "customer" | "product"
        self.pending_product: ProductPick | None = None
        self.promised_touched = False
        self.duplicate: tuple[str, str] = ("", "")
        self.busy = False
        self.problem: Text | None = None

    def compose(self) -> ComposeResult:
        yield Static(_("New order"), id="entry-title")
        with Horizontal(classes="entry-row"):
            yield Static(label_pad(_("Customer"), 10), classes="entry-label")
            yield text_input(self, placeholder=_("code, name or phone"), id="entry-customer", compact=True)
            yield Static("", id="entry-customer-info")
        with Horizontal(classes="entry-row"):
            yield Static(label_pad(_("Ship to"), 10), classes="entry-label")
            yield text_input(self, id="entry-address", compact=True, max_length=300)
        with Horizontal(classes="entry-row"):
            yield Static(label_pad(_("Packaging"), 10), classes="entry-label")
            yield text_input(self, id="entry-packing", compact=True, max_length=20)
            yield Static(self._flags_text(), id="entry-flags")
        with Horizontal(classes="entry-row"):
            yield Static(label_pad(_("Notes"), 10), classes="entry-label")
            yield text_input(self, id="entry-notes", compact=True, max_length=2000)
        with Horizontal(classes="entry-row"):
            yield Static(label_pad(_("Add line"), 10), classes="entry-label")
            yield text_input(
                self, placeholder=_("SKU, name or scan a barcode"), id="entry-product", compact=True
            )
            yield text_input(self, "1", id="entry-qty", compact=True, restrict=r"[0-9]*", max_length=7)
        lines: DataTable[Any] = DataTable(id="entry-lines", cursor_type="row", zebra_stripes=True)
        yield lines
        with Horizontal(classes="entry-row"):
            yield Static(label_pad(_("Promised"), 10), classes="entry-label")
            yield text_input(self, placeholder="YYYY-MM-DD", id="entry-promised", compact=True, max_length=10)
            yield Static("", id="entry-proposal")
        with Horizontal(classes="entry-row"):
            yield Static(label_pad(_("Reason"), 10), classes="entry-label")
            yield text_input(
                self,
                placeholder=_("why this date (if not the proposed one)"),
                id="entry-reason",
                compact=True,
                max_length=500,
            )
        with ContentSwitcher(initial="entry-checks", id="entry-bottom"):
            yield Static(_("Pick a customer to start."), id="entry-checks")
            yield OptionList(id="entry-picks")
        yield StatusLine(self.session, self.session.db_path.name)
        yield Footer()

    def on_mount(self) -> None:
        self._fill_lines()

    # -- lookups -----------------------------------------------------------------------------------------
    @on(Input.Changed, "#entry-customer")
    def _customer_typed(self, event: Input.Changed) -> None:
        if self.draft.customer is not None and event.value.strip() == self.draft.customer.code:
            return
        self.lookup("find_customers", event.value, self.CustomersFound)

    @work(thread=True, exclusive=True, exit_on_error=False, group="entry-lookup")
    def lookup(self, finder: str, text: str, found: Callable[[str, list[Any]], Message]) -> None:
        """Customers or products matching ``text`` (``finder``: the ``orderdesk.sales`` function)."""
        from orderdesk import sales

        try:
            picks = getattr(sales, finder)(self.session.store, text, limit=6)
        except OrderdeskError:
            picks = []  # a half-typed query that finds nothing is not an error
        self.post_message(found(text, picks))

    @on(CustomersFound)
    def _customers_found(self, event: CustomersFound) -> None:
        if event.query != self.query_one("#entry-customer", Input).value:
            return
        self._show_picks(
            "customer",
            event.picks,
            [Text.assemble((p.code, "bold"), "  ", p.name, "  ", (p.phone, "dim")) for p in event.picks],
        )

    @on(Input.Changed, "#entry-product")
    def _product_typed(self, event: Input.Changed) -> None:
        self.pending_product = None
        self.lookup("find_products", event.value, self.ProductsFound)

    @on(ProductsFound)
    def _products_found(self, event: ProductsFound) -> None:
        if event.query != self.query_one("#entry-product", Input).value:
            return
        see_price = "lines.unit_price" in self.session.user.see
        self._show_picks(
            "product",
            event.picks,
            [
                Text.assemble(
                    (p.sku, "bold"),
                    "  ",
                    p.name,
                    "  ",
                    (_("stock {n}", n=p.stock_on_hand), "red" if p.stock_on_hand <= 0 else "green"),
                    ("  " + money(p.unit_price)) if see_price else "",
                )
                for p in event.picks
            ],
        )

    def _show_picks(self, kind: str, picks: list[Any], labels: list[Text]) -> None:
        self.picks, self.picks_for = picks, kind
        options = self.query_one("#entry-picks", OptionList)
        options.clear_options()
        options.add_options([Option(label, id=str(i)) for i, label in enumerate(labels)])
        if picks:
            options.highlighted = 0
        self.query_one("#entry-bottom", ContentSwitcher).current = "entry-picks" if picks else "entry-checks"

    def _hide_picks(self) -> None:
        self.picks, self.picks_for = [], ""
        self.query_one("#entry-bottom", ContentSwitcher).current = "entry-checks"

    def on_key(self, event: Any) -> None:
        # Down from a lookup field walks into its suggestions; Enter in the field takes the highlighted one.
        focused = self.focused
        if (
            event.key == "down"
            and isinstance(focused, Input)
            and focused.id in ("entry-customer", "entry-product")
            and self.picks
        ):
            self.query_one("#entry-picks", OptionList).focus()
            event.stop()

    @on(Input.Submitted, "#entry-customer")
    def _customer_submitted(self) -> None:
        if self.picks_for == "customer" and self.picks:
            index = self.query_one("#entry-picks", OptionList).highlighted or 0
            self._choose_customer(self.picks[index])

    @on(OptionList.OptionSelected, "#entry-picks")
    def _pick_selected(self, event: OptionList.OptionSelected) -> None:
        index = int(event.option.id or 0)
        if self.picks_for == "customer" and index < len(self.picks):
            self._choose_customer(self.picks[index])
        elif self.picks_for == "product" and index < len(self.picks):
            self._choose_product(self.picks[index])

    def _choose_customer(self, pick: CustomerPick) -> None:
        self._hide_picks()
        field_ = self.query_one("#entry-customer", Input)
        with field_.prevent(Input.Changed):
            field_.value = pick.code
        self.query_one("#entry-customer-info", Static).update(fit(pick.name, 40))
        self.load_customer(pick.code)
        self.query_one("#entry-product", Input).focus()

    def load_customer(self, code: str) -> None:
        def defaults() -> CustomerDefaults:
            from orderdesk.sales import customer_defaults

            return customer_defaults(self.session.store, code)

        self.run_command(defaults, self.CustomerLoaded, group="entry-customer")

    @on(CustomerLoaded)
    def _customer_loaded(self, event: CustomerLoaded) -> None:
        d = event.defaults
        self.draft.customer = d
        self.draft.link = None
        info = Text.assemble((d.name, "bold"), "  ", (d.phone, "dim"))
        if d.returning:
            info.append("  " + _("returning: {n} orders", n=d.orders), style="green")
        self.query_one("#entry-customer-info", Static).update(info)
        # A returning customer's usual ship-to, packaging and standing notes.
        self.query_one("#entry-address", Input).value = d.ship_address
        self.query_one("#entry-packing", Input).value = d.packing_preset
        self.query_one("#entry-notes", Input).value = d.standing_notes
        self.run_checks()

    @on(Input.Submitted, "#entry-product")
    def _product_submitted(self) -> None:
        if self.picks_for == "product" and self.picks:
            index = self.query_one("#entry-picks", OptionList).highlighted or 0
            self._choose_product(self.picks[index])

    def _choose_product(self, pick: ProductPick) -> None:
        self.pending_product = pick
        self._hide_picks()
        field_ = self.query_one("#entry-product", Input)
        with field_.prevent(Input.Changed):
            field_.value = pick.sku
        qty = self.query_one("#entry-qty", Input)
        qty.focus()

    @on(Input.Submitted, "#entry-qty")
    def _qty_submitted(self, event: Input.Submitted) -> None:
        pick = self.pending_product
        if pick is None:
            self.query_one("#entry-product", Input).focus()
            return
        qty = int(event.value or 0)
        if qty <= 0:
            self.notify(_("Quantity must be at least 1."), severity="warning")
            return
        for line in self.draft.lines:
            if line.sku == pick.sku:
                line.quantity += qty
                break
        else:
            self.draft.lines.append(DraftLine(pick.sku, pick.name, qty, pick.unit_price, pick.stock_on_hand))
        self.pending_product = None
        product = self.query_one("#entry-product", Input)
        with product.prevent(Input.Changed):
            product.value = ""
        event.input.value = "1"
        product.focus()
        self._fill_lines()
        self.run_checks()

    def _fill_lines(self) -> None:
        table = self.query_one("#entry-lines", DataTable)
        see_price = "lines.unit_price" in self.session.user.see
        w_sku, w_qty, w_stock, w_price = 10, 7, 7, 11
        fixed = w_sku + w_qty + w_stock + (2 * w_price if see_price else 0)
        w_name = table_flex(table, self.app.size.width, fixed, 4 + 2 * see_price)
        with self.app.batch_update():
            table.clear(columns=True)
            table.add_column("SKU", width=w_sku, key="sku")
            table.add_column(_("Name"), width=w_name, key="name")
            table.add_column(Text(_("Qty"), justify="right"), width=w_qty, key="qty")
            table.add_column(Text(_("Stock"), justify="right"), width=w_stock, key="stock")
            if see_price:
                table.add_column(Text(_("Unit price"), justify="right"), width=w_price, key="price")
                table.add_column(Text(_("Amount"), justify="right"), width=w_price, key="amount")
            for line in self.draft.lines:
                short = line.stock < line.quantity
                cells = [
                    fit(line.sku, w_sku),
                    fit(line.name, w_name),
                    fit(str(line.quantity), w_qty, justify="right"),
                    fit(str(line.stock), w_stock, justify="right", style="yellow" if short else ""),
                ]
                if see_price:
                    cells += [
                        fit(money(line.unit_price), w_price, justify="right"),
                        fit(money(line.unit_price * line.quantity), w_price, justify="right"),
                    ]
                table.add_row(*cells, key=line.sku)
        total = sum(ln.unit_price * ln.quantity for ln in self.draft.lines)
        table.border_title = _("Lines") + (f" · {money(total)}" if see_price and self.draft.lines else "")

    def on_resize(self) -> None:
        self._fill_lines()

    # -- the checks, answered as the order takes shape ---------------------------------------------------
    @on(Input.Changed, "#entry-promised")
    def _promised_typed(self, event: Input.Changed) -> None:
        if self.check is None or event.value != self.check.proposal.promised.isoformat():
            self.promised_touched = True
        self.run_checks()

    @on(Input.Changed, "#entry-address")
    def _address_typed(self) -> None:
        self.draft.link = None
        self.run_checks()

    def _promised(self) -> date | None:
        text = self.query_one("#entry-promised", Input).value.strip()
        try:
            return date.fromisoformat(text) if text else None
        except ValueError:
            return None

    def run_checks(self) -> None:
        if self.draft.customer is None or not self.draft.lines:
            self._render_checks()
            return
        self.check_entry(
            self.draft.customer.code,
            [(ln.sku, ln.quantity) for ln in self.draft.lines],
            self._promised() if self.promised_touched else None,
            self.query_one("#entry-address", Input).value,
        )

    def check_entry(
        self, customer: str, lines: list[tuple[str, int]], promised: date | None, address: str
    ) -> None:
        def check() -> EntryCheck:
            from orderdesk.sales import check_entry

            return check_entry(
                self.session.store, customer=customer, lines=lines, promised=promised, ship_address=address
            )

        self.run_command(check, self.Checked, group="entry-check")

    @on(Checked)
    def _checked(self, event: Checked) -> None:
        self.check = event.check
        self.problem = None
        promised = self.query_one("#entry-promised", Input)
        if not self.promised_touched:
            with promised.prevent(Input.Changed):
                promised.value = event.check.proposal.promised.isoformat()
        p = event.check.proposal
        self.query_one("#entry-proposal", Static).update(
            _(
                "proposed {date} ({production} d + {transit} d transit)",
                date=p.promised.isoformat(),
                production=p.production_days,
                transit=p.transit_days,
            )
        )
        self._render_checks()

    def _render_checks(self) -> None:
        box = self.query_one("#entry-checks", Static)
        lines: list[Text] = []
        if self.problem is not None:
            lines.append(self.problem)
        check = self.check
        if self.draft.customer is None:
            lines.append(Text(_("Pick a customer to start.")))
        elif not self.draft.lines or check is None:
            lines.append(Text(_("Add lines: the checks are answered as you go.")))
        else:
            ok, warn = "✔ ", "⚠ "
            if check.duplicate:
                lines.append(
                    Text(
                        warn
                        + _(
                            "Looks like {order_no} (same items, entered by {user}): you will be asked why.",
                            order_no=check.duplicate.order_no,
                            user=check.duplicate.created_by,
                        ),
                        style="yellow",
                    )
                )
            else:
                lines.append(Text(ok + _("Not a duplicate."), style="green"))
            used = money(check.exposure + check.amount) if "amount" in self.session.user.see else "—"
            if check.over_credit:
                lines.append(
                    Text(
                        warn
                        + _(
                            "Over the credit limit ({used} of {limit}): it goes on hold for finance to release.",
                            used=used,
                            limit=money(check.credit_limit),
                        ),
                        style="yellow",
                    )
                )
            else:
                lines.append(
                    Text(
                        ok + _("Credit: {used} of {limit}.", used=used, limit=money(check.credit_limit)),
                        style="green",
                    )
                )
            if check.needs_approval:
                lines.append(
                    Text(
                        warn
                        + _(
                            "Over {threshold}: needs approval by {roles}.",
                            threshold=money(check.approval_threshold),
                            roles=self.session.role_labels(check.approval_roles),
                        ),
                        style="yellow",
                    )
                )
            else:
                lines.append(Text(ok + _("No approval needed."), style="green"))
            if check.short_lead:
                lines.append(
                    Text(
                        warn + _("Short lead time: under {days} days.", days=check.short_lead_days), style=RED
                    )
                )
            if self.draft.rush:
                lines.append(
                    Text(
                        _("Rush: it enters scheduling only after technical sign-off and kitted materials."),
                        style="yellow",
                    )
                )
            if check.link:
                if self.draft.link:
                    lines.append(
                        Text(
                            "↳ "
                            + _(
                                "Linked to {order_no}: ships and is invoiced with it (F7 to undo).",
                                order_no=check.link.order_no,
                            ),
                            style="cyan",
                        )
                    )
                else:
                    lines.append(
                        Text(
                            "↳ "
                            + _(
                                "{order_no} was entered just now for the same address: F7 links this one as its child.",
                                order_no=check.link.order_no,
                            ),
                            style="cyan",
                        )
                    )
        box.update(Text("\n").join(lines))
        self.refresh_bindings()

    def _flags_text(self) -> Text:
        channel = CHANNEL_LABELS[self.draft.channel]
        text = Text.assemble((_("Channel") + " ", "dim"), (str(channel), "bold"), (" F4   ", "dim"))
        text.append(_("Rush") + " ", style="dim")
        text.append(_("yes") if self.draft.rush else _("no"), style=RED if self.draft.rush else "bold")
        text.append(" F6", style="dim")
        return text

    # -- actions ---------------------------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "toggle_link":
            return self.check is not None and self.check.link is not None
        if action == "remove_line":
            return self.focused is self.query_one("#entry-lines", DataTable) and bool(self.draft.lines)
        return True

    def action_cycle_channel(self) -> None:
        i = CHANNELS.index(self.draft.channel)
        self.draft.channel = CHANNELS[(i + 1) % len(CHANNELS)]
        self.query_one("#entry-flags", Static).update(self._flags_text())

    def action_toggle_rush(self) -> None:
        self.draft.rush = not self.draft.rush
        self.query_one("#entry-flags", Static).update(self._flags_text())
        self._render_checks()

    def action_toggle_link(self) -> None:
        self.draft.link = not self.draft.link
        self._render_checks()

    def action_remove_line(self) -> None:
        table = self.query_one("#entry-lines", DataTable)
        if not table.row_count:
            return
        sku = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        self.draft.lines = [ln for ln in self.draft.lines if ln.sku != sku]
        self._fill_lines()
        self.run_checks()

    def action_back(self) -> None:
        if self.picks:
            self._hide_picks()
            return
        if not self.draft.lines:
            self.app.pop_screen()
            return
        self.app.push_screen(
            ConfirmDialog(
                _("Discard this order?"), _("The lines entered are not saved. Leave without saving?")
            ),
            callback=lambda yes: self.app.pop_screen() if yes else None,
        )

    def action_save(self) -> None:
        if self.busy:
            return
        if self.draft.customer is None or not self.draft.lines:
            self.problem = Text(_("An order needs a customer and at least one line."), style=RED)
            self._render_checks()
            return
        promised_text_ = self.query_one("#entry-promised", Input).value.strip()
        if promised_text_ and self._promised() is None:
            self.problem = Text(_("The promised date must look like 2026-12-31."), style=RED)
            self._render_checks()
            return
        if self.check is not None and self.check.link is not None and self.draft.link is None:
            link = self.check.link.order_no
            self.app.push_screen(
                ConfirmDialog(
                    _("Linked order?"),
                    _(
                        "{order_no} was entered minutes ago for the same customer and address. Link this order as its child, so they ship and are invoiced together?",
                        order_no=link,
                    ),
                ),
                callback=self._link_answered,
            )
            return
        self._save()

    def _link_answered(self, yes: bool | None) -> None:
        self.draft.link = bool(yes)
        self._render_checks()
        self._save()

    def _save(self) -> None:
        assert self.draft.customer is not None
        self.busy = True
        self.problem = Text(_("Saving…"), style="dim")
        self._render_checks()
        self.save(
            customer=self.draft.customer.code,
            lines=[(ln.sku, ln.quantity) for ln in self.draft.lines],
            channel=self.draft.channel,
            promised=self._promised() if self.promised_touched else None,
            promised_reason=self.query_one("#entry-reason", Input).value,
            rush=self.draft.rush,
            ship_address=self.query_one("#entry-address", Input).value,
            notes=self.query_one("#entry-notes", Input).value,
            packing_preset=self.query_one("#entry-packing", Input).value,
            duplicate_reason=self.duplicate[0],
            duplicate_note=self.duplicate[1],
            parent=self.check.link.order_no if self.check and self.check.link and self.draft.link else "",
        )

    def save(self, **kwargs: Any) -> None:
        def enter() -> EntryResult:
            from orderdesk.sales import enter_order

            address_given = kwargs["ship_address"] != (
                self.draft.customer.ship_address if self.draft.customer else ""
            )
            if not address_given:
                kwargs["ship_address"] = None  # the usual address: no edit permission needed to keep it
            return enter_order(self.session.store, user=self.session.user.name, **kwargs)

        self.run_command(enter, self.Saved, group="entry-save")

    @on(CommandRefused)
    def _refused(self, event: CommandRefused) -> None:
        self.busy = False
        if event.code == "duplicate_suspected":
            self.problem = None
            self._render_checks()
            self.ask_duplicate_reason(str(event.reason))
            return
        self.problem = Text(refusal_text(self.session, event.reason, event.who), style=RED)
        self._render_checks()

    def ask_duplicate_reason(self, why: str) -> None:
        self.fetch_reasons(why)

    @work(thread=True, exclusive=True, exit_on_error=False, group="entry-rules")
    def fetch_reasons(self, why: str) -> None:
        from orderdesk.rules import rules_for

        reasons = rules_for(self.session.store).duplicate_reasons
        choices = [Choice(r.id, str(r.label), r.needs_text) for r in reasons]
        self.app.call_from_thread(self._duplicate_dialog, why, choices)

    def _duplicate_dialog(self, why: str, choices: list[Choice]) -> None:
        self.app.push_screen(
            ChoiceDialog(_("Suspected duplicate"), why, choices), callback=self._duplicate_answered
        )

    def _duplicate_answered(self, answer: tuple[str, str] | None) -> None:
        if answer is None:
            self.problem = Text(_("Not saved: it looked like a duplicate."), style="yellow")
            self._render_checks()
            return
        self.duplicate = answer
        self._save()

    @on(Saved)
    def _saved(self, event: Saved) -> None:
        self.busy = False
        self.notify(saved_text(event.result), title=_("Order saved"), timeout=10)
        self.app.pop_screen()


def saved_text(result: EntryResult) -> str:
    """What happened to a new order, one plain sentence per check that fired."""
    parts = [_("{order_no} saved.", order_no=result.detail.order_no)]
    if result.on_credit_hold:
        parts.append(_("On credit hold: finance is asked to release it."))
    if result.needs_approval:
        parts.append(_("Needs approval."))
    if result.short_lead:
        parts.append(_("Short lead time."))
    if result.parent:
        parts.append(_("Linked to {order_no}.", order_no=result.parent))
    return " ".join(parts)


# ---------------------------------------------------------------------------------------------------------
# Change request
# ---------------------------------------------------------------------------------------------------------
@dataclass
class ChangeLine:
    sku: str
    name: str
    now: int
    new: int
    replaced_by: str = ""


class ChangeRequestScreen(DeskScreen):
    """Ask for a change to an order: quantities, SKUs, ship-to, date, with a reason; impact and class shown live."""

    DEFAULT_CSS = """
    ChangeRequestScreen #change-title { height: 1; padding: 0 1; background: $boost; text-style: bold; }
    ChangeRequestScreen #change-lines { height: 1fr; min-height: 4; }
    ChangeRequestScreen .entry-row { height: 1; }
    ChangeRequestScreen .entry-label { width: 12; color: $text-muted; }
    ChangeRequestScreen .entry-row Input { width: 1fr; }
    ChangeRequestScreen #change-qty { width: 8; }
    ChangeRequestScreen #change-preview { height: 5; padding: 0 1; border-top: solid $secondary; }
    """
    AUTO_FOCUS = "#change-lines"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s,f10", "file", "File request", id="change.file", priority=True),
        Binding("e", "edit_qty", "Quantity", id="change.qty"),
        Binding("r", "replace_sku", "Replace SKU", id="change.replace"),
        Binding("plus,a", "add_line", "Add line", id="change.add"),
        Binding("escape", "back", "Back", id="change.back"),
    ]

    @dataclass
    class Loaded(Message):
        detail: Any

    @dataclass
    class Previewed(Message):
        preview: ChangePreview | None
        reason: Msg | None

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, ChangeRequestScreen.Previewed)

    @dataclass
    class Filed(Message):
        view: ChangeRequestView

    def __init__(self, session: DeskSession, order_no: str) -> None:
        super().__init__(session)
        self.order_no = order_no
        self.detail: Any = None
        self.lines: list[ChangeLine] = []
        self.mode = "qty"  # qty | replace | add
        self.busy = False

    def compose(self) -> ComposeResult:
        yield Static(_("Change {order_no} — loading…", order_no=self.order_no), id="change-title")
        yield DataTable(id="change-lines", cursor_type="row", zebra_stripes=True)
        with Horizontal(classes="entry-row"):
            yield Static(label_pad(_("Quantity"), 12), classes="entry-label", id="change-mode")
            yield text_input(self, id="change-sku", compact=True, placeholder=_("SKU"))
            yield text_input(self, id="change-qty", compact=True, restrict=r"[0-9]*", max_length=7)
        with Horizontal(classes="entry-row"):
            yield Static(label_pad(_("Ship to"), 12), classes="entry-label")
            yield text_input(self, id="change-address", compact=True, max_length=300)
        with Horizontal(classes="entry-row"):
            yield Static(label_pad(_("Promised"), 12), classes="entry-label")
            yield text_input(
                self, id="change-promised", compact=True, placeholder="YYYY-MM-DD", max_length=10
            )
        with Horizontal(classes="entry-row"):
            yield Static(label_pad(_("Reason"), 12), classes="entry-label")
            yield text_input(
                self,
                id="change-reason",
                compact=True,
                placeholder=_("why the customer wants it"),
                max_length=500,
            )
        yield Static("", id="change-preview")
        yield StatusLine(self.session, self.session.db_path.name)
        yield Footer()

    def on_mount(self) -> None:
        self.load()

    def load(self) -> None:
        def detail() -> Any:
            from orderdesk.orders import show_order

            return show_order(self.session.store, self.order_no, viewer=self.session.user.name)

        self.run_command(detail, self.Loaded, group="change-load")

    @on(Loaded)
    def _loaded(self, event: Loaded) -> None:
        d = event.detail
        self.detail = d
        self.lines = [ChangeLine(ln.sku, ln.name, ln.quantity, ln.quantity) for ln in d.lines]
        self.query_one("#change-title", Static).update(
            Text.assemble(
                (_("Change {order_no}", order_no=d.order_no), "bold"),
                f"  {d.summary.customer_name} · {d.summary.state_label} · v{d.version}",
            )
        )
        for field_id, value in (
            ("#change-address", d.ship_address),
            ("#change-promised", d.promised_date.isoformat() if d.promised_date else ""),
        ):
            box = self.query_one(field_id, Input)
            with box.prevent(Input.Changed):
                box.value = value
        self._fill()
        self.preview()

    def _fill(self) -> None:
        table = self.query_one("#change-lines", DataTable)
        w_sku, w_qty = 12, 8
        w_name = table_flex(table, self.app.size.width, w_sku * 2 + w_qty * 2, 5)
        current = table.cursor_row if table.row_count else 0
        with self.app.batch_update():
            table.clear(columns=True)
            table.add_column("SKU", width=w_sku, key="sku")
            table.add_column(_("Name"), width=w_name, key="name")
            table.add_column(Text(_("Now"), justify="right"), width=w_qty, key="now")
            table.add_column(Text(_("New"), justify="right"), width=w_qty, key="new")
            table.add_column(_("Replace by"), width=w_sku, key="replace")
            for ln in self.lines:
                changed = ln.new != ln.now or bool(ln.replaced_by)
                style = "bold yellow" if changed else ""
                table.add_row(
                    fit(ln.sku, w_sku),
                    fit(ln.name, w_name),
                    fit(str(ln.now) if ln.now else "-", w_qty, justify="right"),
                    fit(
                        str(ln.new) if ln.new else _("removed"),
                        w_qty,
                        justify="right",
                        style=RED if not ln.new else style,
                    ),
                    fit(ln.replaced_by or "", w_sku, style=style),
                    key=ln.sku,
                )
        if table.row_count:
            table.move_cursor(row=min(current, table.row_count - 1))

    def _selected(self) -> ChangeLine | None:
        table = self.query_one("#change-lines", DataTable)
        if not table.row_count:
            return None
        return self.lines[table.cursor_row] if table.cursor_row < len(self.lines) else None

    def _set_mode(self, mode: str) -> None:
        self.mode = mode
        label = {"qty": _("Quantity"), "replace": _("Replace by"), "add": _("Add line")}[mode]
        self.query_one("#change-mode", Static).update(label_pad(label, 12))

    def action_edit_qty(self) -> None:
        line = self._selected()
        if line is None:
            return
        self._set_mode("qty")
        sku = self.query_one("#change-sku", Input)
        sku.value = line.sku
        qty = self.query_one("#change-qty", Input)
        qty.value = str(line.new)
        qty.focus()

    def action_replace_sku(self) -> None:
        line = self._selected()
        if line is None:
            return
        self._set_mode("replace")
        self.query_one("#change-qty", Input).value = ""
        sku = self.query_one("#change-sku", Input)
        sku.value = line.replaced_by
        sku.focus()

    def action_add_line(self) -> None:
        self._set_mode("add")
        self.query_one("#change-sku", Input).value = ""
        self.query_one("#change-qty", Input).value = "1"
        self.query_one("#change-sku", Input).focus()

    @on(Input.Submitted, "#change-sku")
    def _sku_done(self, event: Input.Submitted) -> None:
        if self.mode == "replace":
            line = self._selected()
            if line is not None:
                line.replaced_by = event.value.strip()
                self._fill()
                self.preview()
            self.query_one("#change-lines", DataTable).focus()
        else:
            self.query_one("#change-qty", Input).focus()

    @on(Input.Submitted, "#change-qty")
    def _qty_done(self, event: Input.Submitted) -> None:
        sku = self.query_one("#change-sku", Input).value.strip()
        qty = int(event.value or 0)
        if not sku:
            return
        for line in self.lines:
            if line.sku == sku:
                line.new = qty
                break
        else:
            self.lines.append(ChangeLine(sku, "", 0, qty))
        self._set_mode("qty")
        self._fill()
        self.preview()
        self.query_one("#change-lines", DataTable).focus()

    @on(Input.Changed, "#change-address")
    @on(Input.Changed, "#change-promised")
    def _field_changed(self) -> None:
        self.preview()

    def _request(self) -> dict[str, Any] | None:
        if self.detail is None:
            return None
        d = self.detail
        quantities = {ln.sku: ln.new for ln in self.lines if ln.new != ln.now}
        replace_ = {ln.sku: ln.replaced_by for ln in self.lines if ln.replaced_by}
        address = self.query_one("#change-address", Input).value
        promised_raw = self.query_one("#change-promised", Input).value.strip()
        try:
            promised = date.fromisoformat(promised_raw) if promised_raw else None
        except ValueError:
            promised = None
        return {
            "quantities": quantities,
            "replace": replace_,
            "ship_address": address if address.strip() != d.ship_address.strip() else None,
            "promised": promised if promised != d.promised_date else None,
        }

    def preview(self) -> None:
        request = self._request()
        if request is not None:
            self.run_preview(request)

    @work(thread=True, exclusive=True, exit_on_error=False, group="change-preview")
    def run_preview(self, request: dict[str, Any]) -> None:
        from orderdesk.sales import preview_change

        try:
            preview = preview_change(self.session.store, order_no=self.order_no, **request)
        except OrderdeskError as exc:
            self.post_message(self.Previewed(None, exc.message))
            return
        self.post_message(self.Previewed(preview, None))

    @on(Previewed)
    def _previewed(self, event: Previewed) -> None:
        box = self.query_one("#change-preview", Static)
        if event.preview is None:
            box.update(Text(str(event.reason), style="dim" if self.busy else "yellow"))
            return
        box.update(preview_text(self.session, event.preview))

    def action_file(self) -> None:
        request = self._request()
        if request is None or self.busy:
            return
        self.busy = True
        self.file(request, self.query_one("#change-reason", Input).value, self.detail.version)

    def file(self, request: dict[str, Any], reason: str, version: int) -> None:
        def request_it() -> ChangeRequestView:
            from orderdesk.sales import request_change

            return request_change(
                self.session.store,
                order_no=self.order_no,
                user=self.session.user.name,
                reason=reason,
                expected_version=version,
                **request,
            )

        self.run_command(request_it, self.Filed, group="change-file")

    @on(CommandRefused)
    def _refused(self, event: CommandRefused) -> None:
        self.busy = False
        self.show_refusal(event, "#change-preview")

    @on(Filed)
    def _filed(self, event: Filed) -> None:
        v = event.view
        self.notify(
            _(
                "Change request #{id} filed: {cls}, waiting for {roles}.",
                id=v.id,
                cls=str(v.class_label),
                roles=self.session.role_labels(v.approve_roles),
            ),
            title=v.order_no,
            timeout=8,
        )
        self.app.pop_screen()


FIELD_LABELS = {
    "quantity": Label("quantity", "数量"),
    "sku": Label("SKU", "物料"),
    "address": Label("address", "地址"),
    "date": Label("date", "交期"),
}


def preview_text(session: DeskSession, p: ChangePreview) -> Text:
    yes, no = _("yes"), _("no")
    impact = Text.assemble(
        (_("Changes") + ": ", "dim"),
        ", ".join(str(FIELD_LABELS[f]) for f in p.fields),
        "   ",
        (_("Production started") + ": ", "dim"),
        (yes, "bold red") if p.facts.production_started else no,
        "   ",
        (_("Materials issued") + ": ", "dim"),
        (yes, "bold yellow") if p.facts.materials_issued else no,
    )
    cls = Text.assemble(
        (_("Class") + ": ", "dim"),
        (str(p.class_label), "bold red" if p.change_class == "major" else "bold green"),
        "   ",
        (_("Approved by") + ": ", "dim"),
        session.role_labels(p.approve_roles),
    )
    if "amount" in session.user.see:
        cls.append("   ")
        cls.append(_("Amount") + ": ", style="dim")
        cls.append(f"{money(p.before['amount'])} → {money(p.proposed['amount'])}")
    return Text("\n").join(
        [impact, cls, Text(_("Ctrl+S files the request; nothing changes until it is approved."), style="dim")]
    )


# ---------------------------------------------------------------------------------------------------------
# Versions side by side
# ---------------------------------------------------------------------------------------------------------
class VersionsScreen(DeskScreen):
    """Two versions of an order side by side with the differences marked; [ and ] step through them."""

    DEFAULT_CSS = """
    VersionsScreen #versions-title { height: 1; padding: 0 1; background: $boost; text-style: bold; }
    VersionsScreen #versions-panes { height: 1fr; }
    VersionsScreen .version-pane { width: 1fr; height: 1fr; border: round $secondary; padding: 0 1; overflow-y: auto; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("left_square_bracket,left", "step(-1)", "Older", id="versions.older"),
        Binding("right_square_bracket,right", "step(1)", "Newer", id="versions.newer"),
        Binding("escape", "back", "Back", id="versions.back"),
    ]

    @dataclass
    class Loaded(Message):
        revisions: list[RevisionView]

    def __init__(self, session: DeskSession, order_no: str) -> None:
        super().__init__(session)
        self.order_no = order_no
        self.revisions: list[RevisionView] = []
        self.index = 0  # compare revisions[index] (left) with revisions[index + 1] (right)

    def compose(self) -> ComposeResult:
        yield Static(_("Versions of {order_no} — loading…", order_no=self.order_no), id="versions-title")
        with Horizontal(id="versions-panes"):
            yield Static("", id="version-old", classes="version-pane")
            yield Static("", id="version-new", classes="version-pane")
        yield StatusLine(self.session, self.session.db_path.name)
        yield Footer()

    def on_mount(self) -> None:
        self.load()

    def load(self) -> None:
        def revisions() -> list[RevisionView]:
            from orderdesk.sales import order_revisions

            return order_revisions(self.session.store, self.order_no, viewer=self.session.user.name)

        self.run_command(revisions, self.Loaded, group="versions")

    @on(Loaded)
    def _loaded(self, event: Loaded) -> None:
        self.revisions = event.revisions
        self.index = max(0, len(self.revisions) - 2)
        self._show_versions()

    @on(CommandRefused)
    def _failed(self, event: CommandRefused) -> None:
        self.query_one("#versions-title", Static).update(Text(str(event.reason), style=RED))

    def _show_versions(self) -> None:
        from orderdesk.sales import compare_revisions

        revs = self.revisions
        title = self.query_one("#versions-title", Static)
        old_pane, new_pane = self.query_one("#version-old", Static), self.query_one("#version-new", Static)
        if len(revs) < 2:
            title.update(_("{order_no}: one version — it was never changed.", order_no=self.order_no))
            old_pane.update(version_text(self.session, revs[0], None, "old") if revs else "")
            new_pane.update("")
            return
        old, new = revs[self.index], revs[self.index + 1]
        diff = compare_revisions(old, new)
        title.update(
            _(
                "{order_no}: version {old} → {new} of {count} ([ ] to step)",
                order_no=self.order_no,
                old=old.revision,
                new=new.revision,
                count=len(revs),
            )
        )
        old_pane.border_title = f"v{old.revision} · {old.created_by}"
        new_pane.border_title = f"v{new.revision} · {new.created_by}" + (
            f" · #{new.change_request_id}" if new.change_request_id else ""
        )
        old_pane.update(version_text(self.session, old, diff, "old"))
        new_pane.update(version_text(self.session, new, diff, "new"))

    def action_step(self, step: int) -> None:
        if len(self.revisions) < 2:
            return
        self.index = max(0, min(len(self.revisions) - 2, self.index + step))
        self._show_versions()


def version_text(session: DeskSession, rev: RevisionView, diff: Any, side: str) -> Group:
    """One version as a small table and its header fields; what differs from the other side is marked
    (yellow; ``+`` a line that is new, ``−`` a line that was removed). Lines are aligned by SKU across sides."""
    from rich.table import Table

    mark = "bold black on yellow"
    table = Table.grid(padding=(0, 1))
    table.add_column(width=1)
    table.add_column(width=10, no_wrap=True)
    table.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
    table.add_column(width=6, justify="right", no_wrap=True)
    lines = (
        diff.lines
        if diff is not None
        else [_PlainLine(ln.sku, ln.name, ln.quantity, ln.quantity) for ln in rev.lines]
    )
    for ln in lines:
        qty = ln.before if side == "old" else ln.after
        if qty is None:
            table.add_row("", "", "", "")  # keeps the other side's line opposite its match
            continue
        changed = diff is not None and ln.changed
        sign = ""
        if diff is not None and side == "new" and ln.before is None:
            sign = "+"
        elif diff is not None and side == "old" and ln.after is None:
            sign = "−"
        table.add_row(
            Text(sign, style="bold green" if sign == "+" else "bold red"),
            Text(ln.sku, style="strike" if sign == "−" else ""),
            Text(" ".join(ln.name.split())),
            Text(str(qty), style=mark if changed else "bold"),
        )
    out: list[Text] = [Text("")]
    address_mark = mark if diff is not None and diff.address_changed else ""
    date_mark = mark if diff is not None and diff.date_changed else ""
    out.append(Text.assemble((_("Ship to") + " ", "dim"), (" ".join(rev.ship_address.split()), address_mark)))
    out.append(
        Text.assemble(
            (_("Promised") + " ", "dim"),
            (rev.promised_date.isoformat() if rev.promised_date else "-", date_mark),
        )
    )
    if "amount" in session.user.see:
        amount_mark = mark if diff is not None and diff.amount_changed else ""
        out.append(Text.assemble((_("Amount") + " ", "dim"), (money(rev.amount), amount_mark)))
    out.append(Text(rev.created_at.astimezone(BUSINESS_TZ).strftime("%Y-%m-%d %H:%M"), style="dim"))
    return Group(table, *out)


@dataclass(frozen=True)
class _PlainLine:
    sku: str
    name: str
    before: int | None
    after: int | None
    changed: bool = False


# ---------------------------------------------------------------------------------------------------------
# Change requests to decide
# ---------------------------------------------------------------------------------------------------------
class ChangeApprovalsScreen(DeskScreen):
    """Change requests this person's roles may decide: y approves (a new order version), x rejects."""

    DEFAULT_CSS = """
    ChangeApprovalsScreen #approvals-title { height: 1; padding: 0 1; background: $boost; text-style: bold; }
    ChangeApprovalsScreen #approvals { height: 1fr; }
    ChangeApprovalsScreen #approval-detail { height: 6; padding: 0 1; border-top: solid $secondary; }
    """
    AUTO_FOCUS = "#approvals"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "decide(True)", "Approve", id="approvals.approve"),
        Binding("x", "decide(False)", "Reject", id="approvals.reject"),
        Binding("v", "versions", "Versions", id="approvals.versions"),
        Binding("f5", "reload", "Refresh", id="approvals.reload"),
        Binding("escape", "back", "Back", id="approvals.back"),
    ]

    @dataclass
    class Loaded(Message):
        views: list[ChangeRequestView]

    @dataclass
    class Decided(Message):
        view: ChangeRequestView

    def __init__(self, session: DeskSession) -> None:
        super().__init__(session)
        self.views: list[ChangeRequestView] = []
        self.busy = False

    def compose(self) -> ComposeResult:
        yield Static(_("Change requests to decide — loading…"), id="approvals-title")
        yield DataTable(id="approvals", cursor_type="row", zebra_stripes=True)
        yield Static("", id="approval-detail")
        yield StatusLine(self.session, self.session.db_path.name)
        yield Footer()

    def on_mount(self) -> None:
        self.load()

    def load(self) -> None:
        def waiting() -> list[ChangeRequestView]:
            from orderdesk.sales import change_requests

            return change_requests(self.session.store, decidable_by=self.session.user.name, limit=PAGE)

        self.run_command(waiting, self.Loaded, group="approvals")

    @on(Loaded)
    def _loaded(self, event: Loaded) -> None:
        self.views = event.views
        self.query_one("#approvals-title", Static).update(
            _("Change requests to decide: {count}", count=len(self.views))
        )
        table = self.query_one("#approvals", DataTable)
        w_no, w_order, w_cls, w_by = 5, 15, 10, 8
        w_what = table_flex(table, self.app.size.width, w_no + w_order + w_cls + w_by, 5)
        with self.app.batch_update():
            table.clear(columns=True)
            table.add_column("#", width=w_no, key="id")
            table.add_column(_("Order"), width=w_order, key="order")
            table.add_column(_("Class"), width=w_cls, key="class")
            table.add_column(_("Changes"), width=w_what, key="what")
            table.add_column(_("By"), width=w_by, key="by")
            for v in self.views:
                table.add_row(
                    fit(str(v.id), w_no),
                    fit(v.order_no, w_order),
                    fit(str(v.class_label), w_cls, style=RED if v.change_class == "major" else ""),
                    fit(", ".join(str(FIELD_LABELS.get(f, f)) for f in v.fields) + " · " + v.reason, w_what),
                    fit(v.requested_by, w_by),
                    key=str(v.id),
                )
        self._detail()

    def _current(self) -> ChangeRequestView | None:
        key = cursor_key(self.query_one("#approvals", DataTable))
        return next((v for v in self.views if str(v.id) == key), None)

    @on(DataTable.RowHighlighted, "#approvals")
    def _detail(self) -> None:
        v = self._current()
        box = self.query_one("#approval-detail", Static)
        if v is None:
            box.update(_("Nothing waiting for you."))
            return
        impact = v.impact
        yes, no = _("yes"), _("no")
        before = {ln["sku"]: ln["quantity"] for ln in v.before.get("lines", [])}
        after = {ln["sku"]: ln["quantity"] for ln in v.proposed.get("lines", [])}
        changes = [
            f"{sku} {before.get(sku, 0)}→{after.get(sku, 0)}"
            for sku in dict.fromkeys([*before, *after])
            if before.get(sku) != after.get(sku)
        ]
        if v.before.get("ship_address") != v.proposed.get("ship_address"):
            changes.append(_("ship-to: {address}", address=v.proposed.get("ship_address")))
        if v.before.get("promised_date") != v.proposed.get("promised_date"):
            changes.append(
                f"{_('Promised')} {v.before.get('promised_date')}→{v.proposed.get('promised_date')}"
            )
        box.update(
            Text("\n").join(
                [
                    Text.assemble(
                        (f"#{v.id} {v.order_no} ", "bold"), v.customer_name, "  ", (v.reason, "italic")
                    ),
                    Text("; ".join(changes)),
                    Text.assemble(
                        (_("Production started") + ": ", "dim"),
                        (yes, RED) if impact.get("production_started") else no,
                        "   ",
                        (_("Materials issued") + ": ", "dim"),
                        (yes, "yellow") if impact.get("materials_issued") else no,
                        "   ",
                        (_("Approved by") + ": ", "dim"),
                        self.session.role_labels(v.approve_roles),
                    ),
                ]
            )
        )

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("decide", "versions"):
            return self._current() is not None
        return True

    def action_decide(self, approve: bool) -> None:
        v = self._current()
        if v is None or self.busy:
            return
        title = _("Approve change #{id}", id=v.id) if approve else _("Reject change #{id}", id=v.id)
        self.app.push_screen(
            ReasonDialog(
                title,
                _("Reason (optional for approval)") if approve else _("Why is it rejected?"),
                required=not approve,
            ),
            callback=lambda reason: self._reasoned(v.id, approve, reason),
        )

    def _reasoned(self, request_id: int, approve: bool, reason: str | None) -> None:
        if reason is None:
            return
        self.busy = True
        self.decide(request_id, approve, reason)

    def decide(self, request_id: int, approve: bool, reason: str) -> None:
        def decide_it() -> ChangeRequestView:
            from orderdesk.sales import decide_change

            return decide_change(
                self.session.store,
                request_id=request_id,
                approve=approve,
                user=self.session.user.name,
                reason=reason,
            )

        self.run_command(decide_it, self.Decided, group="approvals-decide")

    @on(Decided)
    def _decided(self, event: Decided) -> None:
        self.busy = False
        v = event.view
        self.notify(
            _(
                "Change #{id} approved: {order_no} is now version {revision}.",
                id=v.id,
                order_no=v.order_no,
                revision=v.new_revision,
            )
            if v.status == "approved"
            else _("Change #{id} rejected.", id=v.id)
        )
        self.load()

    @on(CommandRefused)
    def _refused(self, event: CommandRefused) -> None:
        self.busy = False
        self.show_refusal(event, "#approval-detail")

    def action_versions(self) -> None:
        v = self._current()
        if v is not None:
            self.app.push_screen(VersionsScreen(self.session, v.order_no))

    def action_reload(self) -> None:
        self.load()
