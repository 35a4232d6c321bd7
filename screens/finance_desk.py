"""The finance desk: credit holds and approvals to decide (with a reason), shipped orders to invoice (linked
orders on one invoice), payments matched to invoices, receivables ageing with each customer's credit exposure,
and the CSV / XLSX exports for the accounting package.

Five tabs (1–5). Each loads in a thread worker when shown; tables hold one page at most.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import DataTable, Footer, Static, TabbedContent, TabPane

from orderdesk.i18n import _
from screens.base import CommandRefused, DeskScreen, StatusLine, cursor_key, fit, keep_cursor
from screens.desk_dialogs import ConfirmDialog, FieldSpec, FormDialog, ReasonDialog
from screens.sales_desk import RED, money

PAGE = 50
TABS = ("holds", "approvals", "invoice", "ageing", "invoices")


@dataclass(frozen=True)
class Row:
    """One table row: its key and cells (already fitted), plus what the actions need."""

    key: str
    cells: tuple[Text, ...]
    data: Any = None


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    width: int  # 0: takes what is left
    right: bool = False


def order_columns(amount_width: int) -> list[Column]:
    """The columns every order queue starts with: order, customer (takes what is left), amount."""
    return [
        Column("order", _("Order"), 15),
        Column("customer", _("Customer"), 0),
        Column("amount", _("Amount"), amount_width, True),
    ]


def order_cells(item: Any, cols: list[Column], *, style: str = "") -> tuple[Text, Text, Text]:
    """The cells under ``order_columns`` for one queued order."""
    return (
        fit(item.order_no, cols[0].width, style=style),
        fit(item.customer_name, cols[1].width),
        fit(money(item.amount), cols[2].width, justify="right"),
    )


class FinanceDeskScreen(DeskScreen):
    """Home of the finance role."""

    DEFAULT_CSS = """
    FinanceDeskScreen TabbedContent { height: 1fr; }
    FinanceDeskScreen TabPane { padding: 0; }
    FinanceDeskScreen DataTable { height: 1fr; }
    FinanceDeskScreen #fin-hint { height: 2; padding: 0 1; color: $text-muted; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("1", "tab('holds')", "Holds", id="finance.holds", show=False),
        Binding("2", "tab('approvals')", "Approvals", id="finance.approvals", show=False),
        Binding("3", "tab('invoice')", "To invoice", id="finance.to_invoice", show=False),
        Binding("4", "tab('ageing')", "Receivables", id="finance.ageing", show=False),
        Binding("5", "tab('invoices')", "Invoices", id="finance.invoices", show=False),
        Binding("r", "release", "Release", id="finance.release"),
        Binding("k", "keep", "Keep", id="finance.keep"),
        Binding("y", "approve(True)", "Approve", id="finance.approve"),
        Binding("x", "approve(False)", "Reject", id="finance.reject"),
        Binding("i", "invoice", "Invoice", id="finance.invoice"),
        Binding("p", "payment", "Payment", id="finance.payment"),
        Binding("e", "export", "Export", id="finance.export"),
        Binding("f5", "reload", "Refresh", id="finance.reload"),
    ]

    @dataclass
    class Loaded(Message):
        tab: str
        columns: list[Column]
        rows: list[Row]
        title: str

    @dataclass
    class Done(Message):
        text: str
        tabs: tuple[str, ...]

    def __init__(self, session: Any) -> None:
        super().__init__(session)
        self.rows: dict[str, list[Row]] = {}
        self.busy = False
        # A refusal stays in the hint line while its row is selected (reloads must not wipe it away).
        self.notice: tuple[str, str | None, Text] | None = None

    def compose(self) -> ComposeResult:
        titles = {
            "holds": _("1 Credit holds"),
            "approvals": _("2 Approvals"),
            "invoice": _("3 To invoice"),
            "ageing": _("4 Receivables"),
            "invoices": _("5 Invoices"),
        }
        with TabbedContent(initial="tab-holds", id="fin-tabs"):
            for tab in TABS:
                with TabPane(titles[tab], id=f"tab-{tab}"):
                    yield DataTable(id=f"fin-{tab}", cursor_type="row", zebra_stripes=True)
        yield Static("", id="fin-hint")
        yield StatusLine(self.session, self.session.db_path.name)
        yield Footer()

    def on_mount(self) -> None:
        self.load("holds")
        self.query_one("#fin-holds", DataTable).focus()

    def on_screen_resume(self) -> None:
        if self.rows:  # back from another screen: its work may have changed the queues
            self.load(self.tab)

    @property
    def tab(self) -> str:
        active = self.query_one("#fin-tabs", TabbedContent).active or "tab-holds"
        return active.removeprefix("tab-")

    @on(TabbedContent.TabActivated, "#fin-tabs")
    def _tab_changed(self) -> None:
        self.load(self.tab)
        self.query_one(f"#fin-{self.tab}", DataTable).focus()
        self.refresh_bindings()
        self._hint()

    def action_tab(self, tab: str) -> None:
        self.query_one("#fin-tabs", TabbedContent).active = f"tab-{tab}"

    # -- loading -------------------------------------------------------------------------------------------
    def load(self, tab: str) -> None:
        width = self.query_one(f"#fin-{tab}", DataTable).size.width or self.app.size.width
        self.run_command(
            lambda: getattr(self, f"_rows_{tab}")(width),
            lambda found: self.Loaded(tab, *found),
            group="finance-load",
            exclusive=False,
        )

    def _flex(self, width: int, columns: list[Column]) -> list[Column]:
        fixed = sum(c.width for c in columns)
        rest = max(8, width - fixed - 2 * len(columns) - 2)
        return [Column(c.key, c.label, c.width or rest, c.right) for c in columns]

    # Each _rows_* runs in the worker: it queries the core and returns fitted rows (plain data only).
    def _rows_holds(self, width: int) -> tuple[list[Column], list[Row], str]:
        from orderdesk.finance import credit_hold_queue

        items = credit_hold_queue(self.session.store, viewer=self.session.user.name, limit=PAGE)
        cols = self._flex(
            width,
            [*order_columns(12), Column("over", _("Over by"), 12, True), Column("status", _("Status"), 8)],
        )
        rows = [
            Row(
                i.order_no,
                (
                    *order_cells(i, cols),
                    fit(
                        money(i.over_by),
                        cols[3].width,
                        justify="right",
                        style=RED if i.over_by > 0 else "green",
                    ),
                    fit(
                        _("kept") if i.status == "kept" else _("new"),
                        cols[4].width,
                        style="yellow" if i.status == "kept" else "",
                    ),
                ),
                i,
            )
            for i in items
        ]
        return cols, rows, _("Credit holds: {count}", count=len(items))

    def _rows_approvals(self, width: int) -> tuple[list[Column], list[Row], str]:
        from orderdesk.finance import approval_queue

        items = approval_queue(self.session.store, viewer=self.session.user.name, limit=PAGE)
        cols = self._flex(
            width, [*order_columns(13), Column("terms", _("Terms"), 10), Column("since", _("Entered"), 10)]
        )
        rows = [
            Row(
                i.order_no,
                (
                    *order_cells(i, cols),
                    fit(i.settlement_terms or "-", cols[3].width),
                    fit(i.since.date().isoformat(), cols[4].width),
                ),
                i,
            )
            for i in items
        ]
        return cols, rows, _("Approvals: {count}", count=len(items))

    def _rows_invoice(self, width: int) -> tuple[list[Column], list[Row], str]:
        from orderdesk.finance import orders_to_invoice

        items = orders_to_invoice(self.session.store, viewer=self.session.user.name, limit=PAGE)
        cols = self._flex(width, [*order_columns(13), Column("linked", _("Linked"), 16)])
        rows = []
        for i in items:
            linked = (f"+{len(i.children)} " + " ".join(c[-4:] for c in i.children)) if i.children else ""
            if i.waiting_for:
                linked = _("waiting {n}", n=len(i.waiting_for))
            rows.append(
                Row(
                    i.order_no,
                    (
                        *order_cells(i, cols, style="" if i.ready else "dim"),
                        fit(linked, cols[3].width, style="yellow" if i.waiting_for else ""),
                    ),
                    i,
                )
            )
        return cols, rows, _("To invoice: {count}", count=len(items))

    def _rows_ageing(self, width: int) -> tuple[list[Column], list[Row], str]:
        from orderdesk.finance import receivables_ageing

        items = receivables_ageing(self.session.store, viewer=self.session.user.name)[:PAGE]
        cols = self._flex(
            width,
            [
                Column("customer", _("Customer"), 0),
                Column("b0", "0-30", 9, True),
                Column("b1", "31-60", 9, True),
                Column("b2", "61-90", 9, True),
                Column("b3", ">90", 9, True),
                Column("exposure", _("Exposure"), 11, True),
            ],
        )

        def short(fen: int) -> str:
            # Whole yuan keeps five columns of money inside 80 cells.
            return f"{round(fen / 100):,}" if fen else "-"

        rows = [
            Row(
                r.customer_code,
                (
                    fit(r.customer_name, cols[0].width),
                    *(
                        fit(
                            short(b),
                            cols[k + 1].width,
                            justify="right",
                            style="bold red" if k == 3 and b else "",
                        )
                        for k, b in enumerate(r.buckets)
                    ),
                    fit(
                        short(r.exposure),
                        cols[5].width,
                        justify="right",
                        style=RED if r.available < 0 else "",
                    ),
                ),
                r,
            )
            for r in items
        ]
        return cols, rows, _("Receivables: {count} customers", count=len(items))

    def _rows_invoices(self, width: int) -> tuple[list[Column], list[Row], str]:
        from orderdesk.finance import list_invoices

        items = list_invoices(self.session.store, viewer=self.session.user.name, limit=PAGE)
        cols = self._flex(
            width,
            [
                Column("invoice", _("Invoice"), 16),
                Column("date", _("Date"), 10),
                Column("customer", _("Customer"), 0),
                Column("total", _("Total"), 12, True),
                Column("open", _("Unpaid"), 12, True),
            ],
        )
        today = self.session.store.clock().date()
        rows = [
            Row(
                v.invoice_no,
                (
                    fit(v.invoice_no, cols[0].width),
                    fit(v.invoice_date.isoformat(), cols[1].width),
                    fit(v.customer_name, cols[2].width),
                    fit(money(v.total), cols[3].width, justify="right"),
                    fit(
                        money(v.open) if v.open else _("paid"),
                        cols[4].width,
                        justify="right",
                        style=(RED if v.open and v.due_date < today else "") if v.open else "green",
                    ),
                ),
                v,
            )
            for v in items
        ]
        return cols, rows, _("Invoices: {count}", count=len(items))

    @on(Loaded)
    def _loaded(self, event: Loaded) -> None:
        self.rows[event.tab] = event.rows
        table = self.query_one(f"#fin-{event.tab}", DataTable)
        columns = event.columns
        current = self._current_key(event.tab)
        with self.app.batch_update():
            table.clear(columns=True)
            for c in columns:
                table.add_column(
                    Text(c.label, justify="right" if c.right else "left"), width=c.width, key=c.key
                )
            for row in event.rows:
                table.add_row(*row.cells, key=row.key)
        keep_cursor(table, current)
        table.border_title = event.title
        self._hint()
        self.refresh_bindings()

    def _current_key(self, tab: str | None = None) -> str | None:
        return cursor_key(self.query_one(f"#fin-{tab or self.tab}", DataTable))

    def current(self) -> Row | None:
        key = self._current_key()
        return next((r for r in self.rows.get(self.tab, []) if r.key == key), None)

    @on(DataTable.RowHighlighted)
    def _hint(self) -> None:
        row = self.current()
        hint = self.query_one("#fin-hint", Static)
        tab = self.tab
        if self.notice is not None:
            if self.notice[:2] == (tab, row.key if row else None):
                hint.update(self.notice[2])
                return
            self.notice = None
        if row is None:
            hint.update(_("Nothing here.") if tab in self.rows else _("Loading…"))
            return
        d = row.data
        if tab == "holds":
            text = _(
                "{customer}: owes {exposure} + this order {amount} against a limit of {limit} ({terms}).",
                customer=d.customer_name,
                exposure=money(d.exposure),
                amount=money(d.amount),
                limit=money(d.credit_limit),
                terms=d.settlement_terms or "-",
            )
            if d.last_reason:
                text += " " + _("Last decision: {reason}", reason=d.last_reason)
        elif tab == "approvals":
            text = _(
                "{order_no} · {amount} · approved by {roles}",
                order_no=d.order_no,
                amount=money(d.amount),
                roles=self.session.role_labels(d.roles),
            )
        elif tab == "invoice":
            text = _("{order_no} with {children}", order_no=d.order_no, children=", ".join(d.children) or "-")
            if d.waiting_for:
                text += " · " + _("waiting for {orders} to ship", orders=", ".join(d.waiting_for))
        elif tab == "ageing":
            text = _(
                "{customer}: receivable {receivable}, uninvoiced {uninvoiced}, unmatched {unallocated}; exposure {exposure} of {limit}.",
                customer=d.customer_name,
                receivable=money(d.receivable),
                uninvoiced=money(d.uninvoiced),
                unallocated=money(d.unallocated),
                exposure=money(d.exposure),
                limit=money(d.credit_limit),
            )
        else:
            text = _(
                "{invoice_no}: {orders} · due {due} · net {net} + VAT {tax}",
                invoice_no=d.invoice_no,
                orders=", ".join(d.orders),
                due=d.due_date.isoformat(),
                net=money(d.net),
                tax=money(d.tax),
            )
        hint.update(text)

    # -- actions -------------------------------------------------------------------------------------------
    ACTIONS_BY_TAB: ClassVar[dict[str, set[str]]] = {
        "release": {"holds"},
        "keep": {"holds"},
        "approve": {"approvals"},
        "invoice": {"invoice"},
        "payment": {"invoices"},
        "export": {"ageing", "invoices"},
    }

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        tabs = self.ACTIONS_BY_TAB.get(action)
        if tabs is None:
            return True
        if self.tab not in tabs:
            return False
        return action == "export" or self.current() is not None

    def _run(self, text: str, tabs: tuple[str, ...], call: Any) -> None:
        if self.busy:
            return
        self.busy = True
        self.run_command(call, lambda done: self.Done(done or text, tabs), group="finance-command")

    @on(Done)
    def _done(self, event: Done) -> None:
        self.busy = False
        self.notice = None
        self.notify(event.text, timeout=8)
        for tab in event.tabs:
            self.load(tab)

    @on(CommandRefused)
    def _refused(self, event: CommandRefused) -> None:
        self.busy = False
        row = self.current()
        self.notice = (self.tab, row.key if row else None, self.show_refusal(event, "#fin-hint"))

    def action_release(self) -> None:
        self._credit(True)

    def action_keep(self) -> None:
        self._credit(False)

    def _credit(self, release: bool) -> None:
        row = self.current()
        if row is None:
            return
        self._decide(
            row,
            ReasonDialog(
                _("Release {order_no}", order_no=row.key)
                if release
                else _("Keep {order_no} on hold", order_no=row.key),
                _("Why is it released?") if release else _("Why is it kept on hold? (sales is told)"),
                required=True,
            ),
            _("{order_no} released.", order_no=row.key)
            if release
            else _("{order_no} kept on hold.", order_no=row.key),
            ("holds", "ageing"),
            "decide_credit",
            release=release,
        )

    def action_approve(self, approve: bool) -> None:
        row = self.current()
        if row is None:
            return
        self._decide(
            row,
            ReasonDialog(
                _("Approve {order_no}", order_no=row.key)
                if approve
                else _("Reject {order_no}", order_no=row.key),
                _("Reason (optional for approval)") if approve else _("Why is it rejected? (sales is told)"),
                required=not approve,
            ),
            _("{order_no} approved.", order_no=row.key)
            if approve
            else _("{order_no} rejected.", order_no=row.key),
            ("approvals",),
            "decide_approval",
            approve=approve,
        )

    def _decide(
        self,
        row: Row,
        dialog: ReasonDialog,
        done_text: str,
        tabs: tuple[str, ...],
        command: str,
        **decision: bool,
    ) -> None:
        """Ask ``dialog`` for a reason, then run ``orderdesk.finance.<command>`` on ``row``'s order."""
        user = self.session.user.name

        def decide(reason: str) -> str:
            from orderdesk import finance

            getattr(finance, command)(
                self.session.store,
                order_no=row.key,
                user=user,
                reason=reason,
                expected_version=row.data.version,
                **decision,
            )
            return ""

        def decided(reason: str | None) -> None:
            if reason is not None:
                self._run(done_text, tabs, lambda: decide(reason))

        self.app.push_screen(dialog, callback=decided)

    def action_invoice(self) -> None:
        row = self.current()
        if row is None:
            return
        d = row.data
        orders = ", ".join([d.order_no, *d.children])

        def answered(yes: bool | None) -> None:
            if not yes:
                return
            from orderdesk.finance import create_invoice

            user = self.session.user.name

            def call() -> str:
                view = create_invoice(self.session.store, order_nos=[d.order_no], user=user)
                return _(
                    "Invoice {invoice_no}: {total}, due {due}.",
                    invoice_no=view.invoice_no,
                    total=money(view.total),
                    due=view.due_date.isoformat(),
                )

            self._run("", ("invoice", "invoices", "ageing"), call)

        self.app.push_screen(
            ConfirmDialog(
                _("Invoice"),
                _(
                    "One invoice for {customer}: {orders}, {amount}?",
                    customer=d.customer_name,
                    orders=orders,
                    amount=money(d.amount),
                ),
            ),
            callback=answered,
        )

    def action_payment(self) -> None:
        row = self.current()
        if row is None:
            return
        d = row.data
        fields = [
            FieldSpec("amount", _("Amount received (¥)"), f"{d.open / 100:.2f}", required=True),
            FieldSpec(
                "date", _("Date received"), self.session.store.clock().date().isoformat(), required=True
            ),
            FieldSpec("reference", _("Bank reference"), ""),
        ]

        def entered(values: dict[str, str] | None) -> None:
            if values is None:
                return
            from orderdesk.finance import record_payment
            from orderdesk.money import parse_money

            try:
                amount = parse_money(values["amount"])
                day = date.fromisoformat(values["date"])
            except ValueError:
                self.query_one("#fin-hint", Static).update(
                    Text(_("The amount or the date is not valid."), style=RED)
                )
                return
            user = self.session.user.name

            def call() -> str:
                view = record_payment(
                    self.session.store,
                    customer=d.customer_code,
                    amount=amount,
                    user=user,
                    received_on=day,
                    invoices=[d.invoice_no] if d.open else [],
                    reference=values["reference"],
                )
                return _(
                    "Payment {payment_no}: {amount} matched; on account {left}.",
                    payment_no=view.payment_no,
                    amount=money(view.amount - view.unallocated),
                    left=money(view.unallocated),
                )

            self._run("", ("invoices", "ageing"), call)

        self.app.push_screen(
            FormDialog(
                _("Payment from {customer}", customer=d.customer_name),
                fields,
                _("Matched to {invoice_no} first.", invoice_no=d.invoice_no),
            ),
            callback=entered,
        )

    def action_export(self) -> None:
        from orderdesk.finance import default_export_name

        kind = "receivables" if self.tab == "ageing" else "invoices"
        today = self.session.store.clock().date()
        folder = Path(self.session.db_path).parent / "exports"
        fields = [
            FieldSpec("folder", _("Folder"), str(folder), required=True),
            FieldSpec("format", _("Format: csv, xlsx or both"), "both", required=True),
        ]

        def entered(values: dict[str, str] | None) -> None:
            if values is None:
                return
            fmt = values["format"].lower()
            formats = ("csv", "xlsx") if fmt == "both" else (fmt,)
            user = self.session.user.name
            target = Path(values["folder"]).expanduser()

            def call() -> str:
                from orderdesk.finance import export_invoices, export_receivables

                written = []
                for f in formats:
                    path = target / default_export_name(kind, today, f)
                    if kind == "receivables":
                        export_receivables(self.session.store, path, viewer=user, as_of=today, fmt=f)
                    else:
                        export_invoices(self.session.store, path, viewer=user, fmt=f)
                    written.append(str(path))
                return _("Written: {files}", files=", ".join(written))

            self._run("", (), call)

        self.app.push_screen(
            FormDialog(_("Export receivables") if kind == "receivables" else _("Export invoices"), fields),
            callback=entered,
        )

    def action_reload(self) -> None:
        self.load(self.tab)
