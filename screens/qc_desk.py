"""The QC desk: orders awaiting inspection by inspector and by age; an inspection per line (pass / fail with
defect codes, measured values, notes); the history of earlier inspections; first-pass yield.

Keyboard first and sized for 80x24; all database work in thread workers; tables hold one page at most.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import DataTable, Footer, Input, Static

from orderdesk.i18n import Label, _
from screens.base import (
    CommandRefused,
    DeskScreen,
    QueueDeskScreen,
    StatusLine,
    fit,
    keep_cursor,
    refusal_text,
    text_input,
)
from screens.desk_dialogs import DefectDialog, DefectInput
from screens.sales_desk import BUSINESS_TZ, RED, label_pad, promised_text, table_flex

if TYPE_CHECKING:
    from orderdesk.qc import InspectionPlan, InspectionView, QueueItem, YieldRow
    from screens.session import DeskSession

PAGE = 50
FILTERS = ("all", "mine", "unassigned")
FILTER_LABELS = {
    "all": Label("All", "全部"),
    "mine": Label("Mine", "我的"),
    "unassigned": Label("Unassigned", "未分配"),
}


def waited(delta: timedelta) -> str:
    """``35m`` / ``7h`` / ``3d 4h``: how long an order has been waiting."""
    minutes = int(delta.total_seconds() // 60)
    if minutes < 60:
        return f"{max(0, minutes)}m"
    hours = minutes // 60
    if hours < 24:
        return f"{hours}h"
    return f"{hours // 24}d {hours % 24}h"


class QCDeskScreen(QueueDeskScreen):
    """Home of the QC role: the inspection queue, longest waiting first; Enter inspects."""

    DEFAULT_CSS = """
    QCDeskScreen #qc-title { height: 1; padding: 0 1; background: $boost; text-style: bold; }
    QCDeskScreen #qc-queue { height: 1fr; }
    QCDeskScreen #qc-hint { height: 2; padding: 0 1; color: $text-muted; }
    """
    AUTO_FOCUS = "#qc-queue"
    QUEUE_ID = "qc-queue"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "inspect", "Inspect", id="qc.inspect", show=True),
        Binding("t", "take", "Take", id="qc.take"),
        Binding("h", "history", "History", id="qc.history"),
        Binding("f3", "cycle_filter", "Filter", id="qc.filter"),
        Binding("y", "yield_report", "Yield", id="qc.yield"),
        Binding("f5", "reload", "Refresh", id="qc.reload"),
    ]

    @dataclass
    class Loaded(Message):
        items: list[QueueItem]
        filter: str

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, QCDeskScreen.Loaded)

    @dataclass
    class Taken(Message):
        order_no: str

    def __init__(self, session: DeskSession) -> None:
        super().__init__(session)
        self.items: list[QueueItem] = []
        self.filter = "all"

    def compose(self) -> ComposeResult:
        yield from self.compose_queue(_("QC desk — loading…"), "qc-title", "qc-hint")

    def load(self) -> None:
        shown = self.filter

        def queue() -> list[QueueItem]:
            from orderdesk.qc import UNASSIGNED, qc_queue

            wanted = {"all": None, "mine": self.session.user.name, "unassigned": UNASSIGNED}[shown]
            return qc_queue(self.session.store, inspector=wanted, limit=PAGE)

        self.run_command(queue, lambda items: self.Loaded(items, shown), group="qc-queue")

    @on(Loaded)
    def _loaded(self, event: Loaded) -> None:
        if event.filter != self.filter:
            return
        self.items, self.loaded = event.items, True
        self.query_one("#qc-title", Static).update(
            _(
                "QC desk — awaiting inspection: {count} · {filter} (F3)",
                count=len(self.items),
                filter=str(FILTER_LABELS[self.filter]),
            )
        )
        self._fill()
        self._hint()
        self.refresh_bindings()

    @on(CommandRefused)
    def _failed(self, event: CommandRefused) -> None:
        self.notify(refusal_text(self.session, event.reason, event.who), severity="error", timeout=8)

    def _fill(self) -> None:
        table = self.query_one("#qc-queue", DataTable)
        current = self.current_order()
        w_order, w_wait, w_insp, w_lines, w_prom = 15, 7, 9, 5, 10
        w_cust = table_flex(table, self.app.size.width, w_order + w_wait + w_insp + w_lines + w_prom, 6)
        with self.app.batch_update():
            table.clear(columns=True)
            table.add_column(_("Order"), width=w_order, key="order")
            table.add_column(_("Customer"), width=w_cust, key="customer")
            table.add_column(Text(_("Waiting"), justify="right"), width=w_wait, key="waiting")
            table.add_column(_("Inspector"), width=w_insp, key="inspector")
            table.add_column(Text(_("Rows"), justify="right"), width=w_lines, key="lines")
            table.add_column(_("Promised"), width=w_prom, key="promised")
            for i in self.items[:PAGE]:
                order = i.order_no + (" !" if i.rush else "") + (" ↻" if i.inspections else "")
                table.add_row(
                    fit(order, w_order, style=RED if i.rush else ""),
                    fit(i.customer_name, w_cust),
                    fit(waited(i.waiting), w_wait, justify="right"),
                    fit(i.inspector or "—", w_insp),
                    fit(str(i.lines), w_lines, justify="right"),
                    promised_text(i.promised_date, i.short_lead),
                    key=i.order_no,
                )
        keep_cursor(table, current)

    @on(DataTable.RowHighlighted, "#qc-queue")
    def _hint(self) -> None:
        no = self.current_order()
        item = next((i for i in self.items if i.order_no == no), None)
        hint = self.query_one("#qc-hint", Static)
        if item is None:
            hint.update(_("Nothing is waiting for QC.") if self.loaded else "")
            return
        parts = [
            f"{item.order_no} · {item.customer_name}",
            _("{units} units on {lines} lines", units=item.units, lines=item.lines),
        ]
        if item.inspections:
            parts.append(_("re-inspection after {n} earlier", n=item.inspections))
        if item.rush:
            parts.append(_("rush"))
        hint.update(" · ".join(parts))

    @on(DataTable.RowSelected, "#qc-queue")
    def _selected(self) -> None:
        self.action_inspect()

    # -- actions -----------------------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("inspect", "take", "history"):
            return self.current_order() is not None
        return True

    def action_inspect(self) -> None:
        no = self.current_order()
        if no:
            self.app.push_screen(InspectionScreen(self.session, no))

    def action_history(self) -> None:
        no = self.current_order()
        if no:
            self.app.push_screen(HistoryScreen(self.session, no))

    def action_take(self) -> None:
        no = self.current_order()
        if no:
            self.take(no)

    def take(self, order_no: str) -> None:
        def assign() -> str:
            from orderdesk.qc import assign_inspector

            user = self.session.user.name
            assign_inspector(self.session.store, order_no=order_no, inspector=user, user=user)
            return order_no

        self.run_command(assign, self.Taken, group="qc-take")

    @on(Taken)
    def _taken(self, event: Taken) -> None:
        self.notify(_("You inspect {order_no}.", order_no=event.order_no))
        self.load()

    def action_cycle_filter(self) -> None:
        self.filter = FILTERS[(FILTERS.index(self.filter) + 1) % len(FILTERS)]
        self.load()

    def action_yield_report(self) -> None:
        self.app.push_screen(YieldScreen(self.session))


# ---------------------------------------------------------------------------------------------------------
# One inspection
# ---------------------------------------------------------------------------------------------------------
@dataclass
class LineResult:
    line_no: int
    sku: str
    name: str
    quantity: int
    sample_size: int
    passed: bool | None = None
    samples: int = 0
    defects: tuple[str, ...] = ()
    measurements: str = ""
    note: str = ""


@dataclass
class InspectionForm:
    lines: list[LineResult] = field(default_factory=list)


class InspectionScreen(DeskScreen):
    """Inspect an order line by line: p passes a line, f fails it with defects, a passes every open line."""

    DEFAULT_CSS = """
    InspectionScreen #insp-title { height: 1; padding: 0 1; background: $boost; text-style: bold; }
    InspectionScreen #insp-lines { height: 1fr; min-height: 4; }
    InspectionScreen #insp-history { height: 2; padding: 0 1; color: $text-muted; border-top: solid $secondary; }
    InspectionScreen .entry-row { height: 1; }
    InspectionScreen .entry-label { width: 11; color: $text-muted; }
    InspectionScreen .entry-row Input { width: 1fr; }
    InspectionScreen #insp-samples { width: 8; }
    InspectionScreen #insp-result { height: 3; padding: 0 1; }
    """
    AUTO_FOCUS = "#insp-lines"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("p", "verdict(True)", "Pass line", id="inspect.pass"),
        Binding("f", "verdict(False)", "Fail line", id="inspect.fail"),
        Binding("a", "pass_rest", "Pass the rest", id="inspect.pass_rest"),
        Binding("m", "measure", "Measured", id="inspect.measure"),
        Binding("ctrl+s,f10", "record", "Record", id="inspect.record", priority=True),
        Binding("h", "history", "History", id="inspect.history"),
        Binding("escape", "back", "Back", id="inspect.back"),
    ]

    @dataclass
    class Loaded(Message):
        plan: InspectionPlan
        codes: list[tuple[str, str]]

    @dataclass
    class Recorded(Message):
        view: InspectionView

    def __init__(self, session: DeskSession, order_no: str) -> None:
        super().__init__(session)
        self.order_no = order_no
        self.plan: InspectionPlan | None = None
        self.form = InspectionForm()
        self.codes: list[tuple[str, str]] = []
        self.busy = False

    def compose(self) -> ComposeResult:
        yield Static(_("Inspect {order_no} — loading…", order_no=self.order_no), id="insp-title")
        yield DataTable(id="insp-lines", cursor_type="row", zebra_stripes=True)
        with Horizontal(classes="entry-row"):
            yield Static(label_pad(_("Measured"), 11), classes="entry-label")
            yield text_input(
                self,
                id="insp-measured",
                compact=True,
                placeholder=_("values for the selected line, e.g. Ø8.02 L40.1"),
                max_length=500,
            )
            yield text_input(self, id="insp-samples", compact=True, restrict=r"[0-9]*", max_length=6)
        with Horizontal(classes="entry-row"):
            yield Static(label_pad(_("Notes"), 11), classes="entry-label")
            yield text_input(self, id="insp-notes", compact=True, max_length=2000)
        with Horizontal(classes="entry-row"):
            yield Static(label_pad(_("Reason"), 11), classes="entry-label")
            yield text_input(
                self,
                id="insp-reason",
                compact=True,
                placeholder=_("why it fails (default: the defects)"),
                max_length=500,
            )
        yield Static("", id="insp-history")
        yield Static("", id="insp-result")
        yield StatusLine(self.session, self.session.db_path.name)
        yield Footer()

    def on_mount(self) -> None:
        self.load()

    def load(self) -> None:
        def plan_and_codes() -> tuple[InspectionPlan, list[tuple[str, str]]]:
            from orderdesk.i18n import current_language
            from orderdesk.qc import inspection_plan
            from orderdesk.rules import rules_for

            plan = inspection_plan(self.session.store, self.order_no)
            lang = current_language()
            codes = [
                (d.id, d.label.render(lang)) for d in rules_for(self.session.store).defect_codes.values()
            ]
            return plan, codes

        self.run_command(plan_and_codes, lambda found: self.Loaded(*found), group="inspect-load")

    @on(Loaded)
    def _loaded(self, event: Loaded) -> None:
        plan = event.plan
        self.plan, self.codes = plan, event.codes
        self.form = InspectionForm(
            [
                LineResult(ln.line_no, ln.sku, ln.name, ln.quantity, ln.sample_size, samples=ln.sample_size)
                for ln in plan.lines
            ]
        )
        seq = len(plan.history) + 1
        title = Text.assemble(
            (_("Inspect {order_no}", order_no=plan.order_no), "bold"),
            f"  {plan.customer_name} · {plan.state_label} · ",
            (_("inspection #{n}", n=seq), "bold yellow" if seq > 1 else ""),
        )
        self.query_one("#insp-title", Static).update(title)
        self.query_one("#insp-history", Static).update(
            history_summary(plan.history) or _("First inspection of this order.")
        )
        if not plan.awaiting_qc:
            self.query_one("#insp-result", Static).update(
                Text(
                    _(
                        "{order_no} is {state}: not awaiting QC.",
                        order_no=plan.order_no,
                        state=str(plan.state_label),
                    ),
                    style="yellow",
                )
            )
        self._fill()
        self._sync_inputs()

    def _fill(self) -> None:
        table = self.query_one("#insp-lines", DataTable)
        current = table.cursor_row if table.row_count else 0
        w_sku, w_qty, w_sample, w_verdict, w_def = 10, 6, 7, 7, 10
        w_name = table_flex(table, self.app.size.width, w_sku + w_qty + w_sample + w_verdict + w_def, 6)
        with self.app.batch_update():
            table.clear(columns=True)
            table.add_column("SKU", width=w_sku, key="sku")
            table.add_column(_("Name"), width=w_name, key="name")
            table.add_column(Text(_("Qty"), justify="right"), width=w_qty, key="qty")
            table.add_column(Text(_("Sample"), justify="right"), width=w_sample, key="sample")
            table.add_column(_("Verdict"), width=w_verdict, key="verdict")
            table.add_column(_("Defects"), width=w_def, key="defects")
            for ln in self.form.lines:
                verdict = (
                    fit(_("PASS"), w_verdict, style="bold green")
                    if ln.passed
                    else fit(_("FAIL"), w_verdict, style="bold red")
                    if ln.passed is False
                    else fit("—", w_verdict, style="dim")
                )
                short = ln.samples < ln.sample_size
                table.add_row(
                    fit(ln.sku, w_sku),
                    fit(ln.name, w_name),
                    fit(str(ln.quantity), w_qty, justify="right"),
                    fit(
                        f"{ln.samples}/{ln.sample_size}",
                        w_sample,
                        justify="right",
                        style="yellow" if short else "",
                    ),
                    verdict,
                    fit(",".join(ln.defects), w_def, style="red"),
                    key=str(ln.line_no),
                )
        if table.row_count:
            table.move_cursor(row=min(current, table.row_count - 1))

    def _selected(self) -> LineResult | None:
        table = self.query_one("#insp-lines", DataTable)
        if not table.row_count or table.cursor_row >= len(self.form.lines):
            return None
        return self.form.lines[table.cursor_row]

    @on(DataTable.RowHighlighted, "#insp-lines")
    def _sync_inputs(self) -> None:
        line = self._selected()
        if line is None:
            return
        for sel, value in (("#insp-measured", line.measurements), ("#insp-samples", str(line.samples))):
            box = self.query_one(sel, Input)
            with box.prevent(Input.Changed):
                box.value = value

    @on(Input.Changed, "#insp-measured")
    def _measured(self, event: Input.Changed) -> None:
        line = self._selected()
        if line is not None:
            line.measurements = event.value

    @on(Input.Changed, "#insp-samples")
    def _samples(self, event: Input.Changed) -> None:
        line = self._selected()
        if line is not None and event.value.isdigit():
            line.samples = int(event.value)
            self._fill()

    @on(Input.Submitted)
    def _back_to_lines(self, event: Input.Submitted) -> None:
        if event.input.id in ("insp-measured", "insp-samples"):
            self.query_one("#insp-lines", DataTable).focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        typing = isinstance(self.focused, Input)
        if action in ("verdict", "pass_rest", "measure", "history"):
            return self.plan is not None and not typing
        return True

    def action_verdict(self, passed: bool) -> None:
        line = self._selected()
        if line is None:
            return
        if passed:
            line.passed, line.defects = True, ()
            self._fill()
            self._next_open()
            return
        self.app.push_screen(
            DefectDialog(
                _("Defects on {sku}", sku=line.sku),
                self.codes,
                chosen=line.defects,
                measured=line.measurements,
            ),
            callback=lambda answer: self._defects(line, answer),
        )

    def _defects(self, line: LineResult, answer: DefectInput | None) -> None:
        if answer is None:
            return
        line.passed, line.defects = False, answer.defects
        line.measurements, line.note = answer.measurements or line.measurements, answer.note
        self._fill()
        self._sync_inputs()
        self._next_open()

    def _next_open(self) -> None:
        table = self.query_one("#insp-lines", DataTable)
        for i, ln in enumerate(self.form.lines):
            if ln.passed is None:
                table.move_cursor(row=i)
                return

    def action_pass_rest(self) -> None:
        for ln in self.form.lines:
            if ln.passed is None:
                ln.passed = True
        self._fill()

    def action_measure(self) -> None:
        self.query_one("#insp-measured", Input).focus()

    def action_history(self) -> None:
        self.app.push_screen(HistoryScreen(self.session, self.order_no))

    def action_record(self) -> None:
        if self.plan is None or self.busy:
            return
        open_lines = [ln.sku for ln in self.form.lines if ln.passed is None]
        if open_lines:
            self.query_one("#insp-result", Static).update(
                Text(
                    _("Give every line a verdict first: {skus}.", skus=", ".join(open_lines)), style="yellow"
                )
            )
            return
        from orderdesk.qc import Verdict

        verdicts = [
            Verdict(
                line=ln.line_no,
                passed=bool(ln.passed),
                samples=ln.samples,
                defects=ln.defects,
                measurements=ln.measurements,
                note=ln.note,
            )
            for ln in self.form.lines
        ]
        self.busy = True
        self.query_one("#insp-result", Static).update(Text(_("Recording…"), style="dim"))
        self.record(
            verdicts,
            self.query_one("#insp-notes", Input).value,
            self.query_one("#insp-reason", Input).value,
            self.plan.version,
        )

    def record(self, verdicts: list[Any], notes: str, reason: str, version: int) -> None:
        def record_it() -> InspectionView:
            from orderdesk.qc import record_inspection

            return record_inspection(
                self.session.store,
                order_no=self.order_no,
                user=self.session.user.name,
                verdicts=verdicts,
                notes=notes,
                reason=reason,
                expected_version=version,
            )

        self.run_command(record_it, self.Recorded, group="inspect-record")

    @on(CommandRefused)
    def _refused(self, event: CommandRefused) -> None:
        self.busy = False
        self.show_refusal(event, "#insp-result")

    @on(Recorded)
    def _recorded(self, event: Recorded) -> None:
        v = event.view
        self.notify(
            _("{order_no} passed QC: ready to ship.", order_no=v.order_no)
            if v.result == "passed"
            else _("{order_no} failed QC: back to rework. {reason}", order_no=v.order_no, reason=v.reason),
            severity="information" if v.result == "passed" else "warning",
            timeout=8,
        )
        self.app.pop_screen()


def history_summary(history: tuple[InspectionView, ...] | list[InspectionView]) -> Text | None:
    """The earlier inspections in one or two lines: ``#1 11-18 zhou FAIL D03 (HX-M8)``."""
    if not history:
        return None
    parts = []
    for v in history[-3:]:
        failed = [f"{f.sku}:{','.join(f.defects)}" for f in v.findings if not f.passed]
        verdict = _("PASS") if v.result == "passed" else _("FAIL")
        parts.append(
            f"#{v.seq} {v.at.astimezone(BUSINESS_TZ):%m-%d} {v.inspector} {verdict}"
            + (f" {' '.join(failed)}" if failed else "")
        )
    return Text(_("Earlier: ") + " · ".join(parts))


class HistoryScreen(DeskScreen):
    """Every inspection of one order with each line's verdict, defects and measured values."""

    DEFAULT_CSS = """
    HistoryScreen #hist-title { height: 1; padding: 0 1; background: $boost; text-style: bold; }
    HistoryScreen #hist-table { height: 1fr; }
    """
    AUTO_FOCUS = "#hist-table"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "back", "Back", id="history.back")]

    @dataclass
    class Loaded(Message):
        history: list[InspectionView]

    def __init__(self, session: DeskSession, order_no: str) -> None:
        super().__init__(session)
        self.order_no = order_no

    def compose(self) -> ComposeResult:
        yield Static(_("Inspections of {order_no}", order_no=self.order_no), id="hist-title")
        yield DataTable(id="hist-table", cursor_type="row", zebra_stripes=True)
        yield StatusLine(self.session, self.session.db_path.name)
        yield Footer()

    def on_mount(self) -> None:
        self.load()

    def load(self) -> None:
        def history() -> list[InspectionView]:
            from orderdesk.qc import inspection_history

            return inspection_history(self.session.store, self.order_no)

        self.run_command(history, self.Loaded, group="history")

    @on(CommandRefused)
    def _failed(self, event: CommandRefused) -> None:
        self.query_one("#hist-title", Static).update(Text(str(event.reason), style=RED))

    @on(Loaded)
    def _loaded(self, event: Loaded) -> None:
        table = self.query_one("#hist-table", DataTable)
        w_no, w_when, w_who, w_sku, w_verdict, w_def = 3, 11, 9, 10, 7, 9
        w_meas = table_flex(table, self.app.size.width, w_no + w_when + w_who + w_sku + w_verdict + w_def, 7)
        self.query_one("#hist-title", Static).update(
            _("Inspections of {order_no}: {count}", order_no=self.order_no, count=len(event.history))
        )
        with self.app.batch_update():
            table.clear(columns=True)
            for key, label, width in (
                ("seq", "#", w_no),
                ("when", _("When"), w_when),
                ("who", _("Inspector"), w_who),
                ("sku", "SKU", w_sku),
                ("verdict", _("Verdict"), w_verdict),
                ("defects", _("Defects"), w_def),
                ("measured", _("Measured"), w_meas),
            ):
                table.add_column(label, width=width, key=key)
            for v in reversed(event.history):
                for i, f in enumerate(v.findings):
                    first = i == 0
                    table.add_row(
                        fit(str(v.seq) if first else "", w_no),
                        fit(f"{v.at.astimezone(BUSINESS_TZ):%m-%d %H:%M}" if first else "", w_when),
                        fit(v.inspector if first else "", w_who),
                        fit(f.sku + (f" #{f.sample_no}" if f.sample_no else ""), w_sku),
                        fit(
                            _("PASS") if f.passed else _("FAIL"),
                            w_verdict,
                            style="green" if f.passed else "bold red",
                        ),
                        fit(",".join(f.defects), w_def, style="red"),
                        fit(" ".join(x for x in (f.measurements, f.note) if x), w_meas),
                        key=f"{v.seq}-{i}",
                    )
        if not event.history:
            self.query_one("#hist-title", Static).update(
                _("{order_no} has not been inspected yet.", order_no=self.order_no)
            )


# ---------------------------------------------------------------------------------------------------------
# First-pass yield
# ---------------------------------------------------------------------------------------------------------
RANGES = (30, 90, 180, 365)
PERIODS = ("month", "week", "all")
PERIOD_LABELS = {
    "month": Label("by month", "按月"),
    "week": Label("by week", "按周"),
    "all": Label("whole range", "整段"),
}


class YieldScreen(DeskScreen):
    """First-pass yield by product and period; F3 changes the period, [ and ] the range of days."""

    DEFAULT_CSS = """
    YieldScreen #yield-title { height: 1; padding: 0 1; background: $boost; text-style: bold; }
    YieldScreen #yield-table { height: 1fr; }
    """
    AUTO_FOCUS = "#yield-table"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f3", "cycle_period", "Period", id="yield.period"),
        Binding("left_square_bracket", "range(-1)", "Shorter", id="yield.shorter"),
        Binding("right_square_bracket", "range(1)", "Longer", id="yield.longer"),
        Binding("escape", "back", "Back", id="yield.back"),
    ]

    @dataclass
    class Loaded(Message):
        rows: list[YieldRow]
        key: tuple[str, int]

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, YieldScreen.Loaded)

    def __init__(self, session: DeskSession) -> None:
        super().__init__(session)
        self.period = "month"
        self.days = 90

    def compose(self) -> ComposeResult:
        yield Static(_("First-pass yield — loading…"), id="yield-title")
        yield DataTable(id="yield-table", cursor_type="row", zebra_stripes=True)
        yield StatusLine(self.session, self.session.db_path.name)
        yield Footer()

    def on_mount(self) -> None:
        self.load()

    @work(thread=True, exclusive=True, exit_on_error=False, group="yield")
    def load(self) -> None:
        from orderdesk.qc import first_pass_yield

        key = (self.period, self.days)
        end = self.session.store.clock().astimezone(BUSINESS_TZ).date()
        rows = first_pass_yield(
            self.session.store, since=end - timedelta(days=self.days - 1), until=end, by=self.period
        )
        self.post_message(self.Loaded(rows[:200], key))

    @on(Loaded)
    def _loaded(self, event: Loaded) -> None:
        if event.key != (self.period, self.days):
            return
        self.query_one("#yield-title", Static).update(
            _(
                "First-pass yield — last {days} days, {period} (F3, [ ])",
                days=self.days,
                period=str(PERIOD_LABELS[self.period]),
            )
        )
        table = self.query_one("#yield-table", DataTable)
        w_period, w_sku, w_n, w_pct = 9, 10, 9, 7
        w_name = table_flex(table, self.app.size.width, w_period + w_sku + 2 * w_n + w_pct, 6)
        with self.app.batch_update():
            table.clear(columns=True)
            table.add_column(_("Period"), width=w_period, key="period")
            table.add_column("SKU", width=w_sku, key="sku")
            table.add_column(_("Name"), width=w_name, key="name")
            table.add_column(Text(_("Inspected"), justify="right"), width=w_n, key="n")
            table.add_column(Text(_("1st pass"), justify="right"), width=w_n, key="good")
            table.add_column(Text(_("Yield"), justify="right"), width=w_pct, key="pct")
            for i, r in enumerate(event.rows):
                total = not r.sku
                style = "bold" if total else ""
                pct_style = "bold red" if r.yield_pct < 90 else "green"
                table.add_row(
                    fit(r.period if total else "", w_period, style=style),
                    fit(r.sku or _("all"), w_sku, style=style),
                    fit(r.name, w_name),
                    fit(str(r.inspected), w_n, justify="right", style=style),
                    fit(str(r.passed_first), w_n, justify="right", style=style),
                    fit(f"{r.yield_pct:.1f}%", w_pct, justify="right", style=pct_style),
                    key=str(i),
                )
        if not event.rows:
            self.query_one("#yield-title", Static).update(
                _("First-pass yield — no inspections in the last {days} days", days=self.days)
            )

    def action_cycle_period(self) -> None:
        self.period = PERIODS[(PERIODS.index(self.period) + 1) % len(PERIODS)]
        self.load()

    def action_range(self, step: int) -> None:
        i = max(0, min(len(RANGES) - 1, RANGES.index(self.days) + step))
        self.days = RANGES[i]
        self.load()
