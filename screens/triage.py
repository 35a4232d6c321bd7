"""The planner's triage: late and at-risk orders, worst first, one page at a time.

Each row says what is late, by how much, who owns it and what is blocking it (the failing guard of the next
step, filled in by a second worker so the page shows at once). Keys act on the highlighted alert — each a
domain command run in a thread worker: acknowledge (a), assign an owner (o), a new promised date with a
reason (d), escalate (e), snooze until a time with a reason (z), open the order (Enter). Filters: state (F3),
owner (F4), channel (F6), customer (/). The table never holds more than ``PAGE`` rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Input, OptionList, Static
from textual.widgets.option_list import Option

from orderdesk.errors import OrderdeskError
from orderdesk.i18n import Msg, _, current_language, msg
from screens.alert_inbox import AlertBell, AlertInboxScreen
from screens.base import (
    CommandRefused,
    DeskScreen,
    RunsCommands,
    StatusLine,
    cursor_key,
    fit,
    keep_cursor,
    localize_bindings,
    refusal_text,
    text_input,
)
from screens.order_dialogs import DIALOG_CSS

if TYPE_CHECKING:
    from orderdesk.alerts import TriageFilter, TriageRow
    from screens.session import DeskSession

PAGE = 40  # rows held in the table: a screenful or two, never the whole backlog
REFRESH_SECONDS = 15.0
W_SEV, W_ORDER, W_LATE, W_WHAT, W_OWNER, W_FLEX_MIN = 2, 14, 6, 9, 8, 16
W_STATE, W_CUSTOMER, W_AMOUNT = 12, 18, 11
KIND_WORDS = {"overdue": "overdue", "promised": "promised", "rush": "rush", "ack": "ack", "info": "info"}


def late_text(seconds: int) -> str:
    """``+3d`` late, ``+5h``, ``+40m``; ``-2d`` = due in two days."""
    sign = "+" if seconds >= 0 else "-"
    left = abs(seconds)
    if left >= 86400:
        return f"{sign}{left // 86400}d"
    if left >= 3600:
        return f"{sign}{left // 3600}h"
    return f"{sign}{left // 60}m"


class TriageScreen(DeskScreen):
    """Overdue and at-risk orders ranked by how bad they are; the planner's home."""

    CSS_PATH = "alert_screens.tcss"
    AUTO_FOCUS = "#triage"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "acknowledge", "Acknowledge", id="triage.acknowledge"),
        Binding("o", "assign", "Assign", id="triage.assign"),
        Binding("d", "new_date", "New date", id="triage.new_date"),
        Binding("e", "escalate", "Escalate", id="triage.escalate"),
        Binding("z", "snooze", "Snooze", id="triage.snooze"),
        Binding("enter", "open_order", "Open", id="triage.open", show=False),
        Binding("f3", "cycle('state')", "State", id="triage.state", show=False),
        Binding("f4", "cycle('owner')", "Owner", id="triage.owner", show=False),
        Binding("f6", "cycle('channel')", "Channel", id="triage.channel", show=False),
        Binding("slash", "find_customer", "Customer", id="triage.customer", show=False),
        Binding("pagedown", "page(1)", "Next page", id="triage.next_page", show=False, priority=True),
        Binding("pageup", "page(-1)", "Previous page", id="triage.previous_page", show=False, priority=True),
        Binding("i", "inbox", "Inbox", id="triage.inbox"),
        Binding("f5", "reload", "Refresh", id="triage.reload"),
        Binding("escape", "clear_customer", "Clear", id="triage.clear", show=False),
    ]

    @dataclass
    class Loaded(Message):
        filters: TriageFilter
        offset: int
        total: int
        rows: list[TriageRow]

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, TriageScreen.Loaded)

    @dataclass
    class BlockingLoaded(Message):
        found: dict[int, tuple[Msg | None, tuple[str, ...]]]

    @dataclass
    class ChoicesLoaded(Message):
        owners: list[str]

    def __init__(self, session: DeskSession) -> None:
        super().__init__(session)
        self.rows: list[TriageRow] = []
        self.total = 0
        self.page_offset = 0
        self.filter: dict[str, str | None] = {"state": None, "owner": None, "channel": None}
        self.owners: list[str] = []
        self.blocking: dict[int, tuple[Msg | None, tuple[str, ...]]] = {}

    # -- layout --------------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        with Horizontal(id="triage-bar"):
            yield Static(self._title_text(), id="triage-title")
            yield AlertBell(self.session, id="triage-bell")
        with Horizontal(id="triage-filters"):
            yield Static(self._filters_text(), id="triage-filter-text")
            yield text_input(self, placeholder=_("customer"), id="triage-customer")
        yield DataTable(id="triage", cursor_type="row", zebra_stripes=True)
        yield Static("", id="triage-detail")
        yield StatusLine(self.session, self.session.db_path.name)
        yield Footer()

    def on_mount(self) -> None:
        self.reload()
        self.load_choices()
        self.set_interval(REFRESH_SECONDS, self.reload)

    def on_screen_resume(self) -> None:
        if self.is_mounted:
            self.reload()

    def on_resize(self) -> None:
        if self.rows:
            self._fill()

    def _title_text(self) -> Text:
        title = Text(_("Late and at-risk orders"), style="bold")
        if self.total:
            first = self.page_offset + 1 if self.rows else 0
            title.append(
                "  "
                + _(
                    "{first}-{last} of {total}",
                    first=first,
                    last=self.page_offset + len(self.rows),
                    total=self.total,
                ),
                style="dim",
            )
        return title

    def _filters_text(self) -> Text:
        lang = current_language()
        wf = self.session.workflow
        every = _("All")
        parts = [
            (
                _("State"),
                wf.states[self.filter["state"]].label(lang) if self.filter["state"] else every,
                "F3",
            ),
            (_("Owner"), self.filter["owner"] or every, "F4"),
            (_("Channel"), _(self.filter["channel"]) if self.filter["channel"] else every, "F6"),
        ]
        out = Text()
        for i, (label, value, key) in enumerate(parts):
            if i:
                out.append(" · ", style="dim")
            out.append(f"{label} ", style="dim")
            out.append(value, style="bold" if value != every else "")
            out.append(f" {key}", style="dim italic")
        out.append(" · " + _("Customer") + " /", style="dim")
        return out

    # -- loading -------------------------------------------------------------------------------------
    def current_filters(self) -> TriageFilter:
        from orderdesk.alerts import TriageFilter

        customer = self.query_one("#triage-customer", Input).value.strip()
        return TriageFilter(
            state=self.filter["state"],
            owner=self.filter["owner"],
            channel=self.filter["channel"],
            customer=customer,
        )

    def reload(self) -> None:
        self.load(self.current_filters(), self.page_offset)

    @work(thread=True, exclusive=True, exit_on_error=False, group="triage")
    def load(self, filters: TriageFilter, offset: int) -> None:
        from orderdesk.alerts import blocking_of, triage

        try:
            total, rows = triage(
                self.session.store, filters=filters, limit=PAGE, offset=offset, with_blocking=False
            )
        except OrderdeskError as exc:
            self.post_message(CommandRefused(exc.message, exc.who, exc.code))
            return
        self.post_message(self.Loaded(filters, offset, total, rows))
        # What blocks each order runs the workflow's guards (a few queries per row): shown when ready.
        try:
            found = blocking_of(self.session.store, [r.alert_id for r in rows])
        except OrderdeskError:
            return
        self.post_message(self.BlockingLoaded(found))

    @work(thread=True, exclusive=True, exit_on_error=False, group="triage-choices")
    def load_choices(self) -> None:
        from orderdesk.users import list_users

        owners = [u.name for u in list_users(self.session.store) if u.active]
        self.post_message(self.ChoicesLoaded(owners))

    @on(ChoicesLoaded)
    def _choices(self, event: ChoicesLoaded) -> None:
        self.owners = event.owners

    @on(Loaded)
    def _loaded(self, event: Loaded) -> None:
        if event.filters != self.current_filters() or event.offset != self.page_offset:
            return  # the filters changed while it loaded; a newer load is on its way
        self.rows, self.total = event.rows, event.total
        self.blocking = {k: v for k, v in self.blocking.items() if k in {r.alert_id for r in self.rows}}
        self._fill()
        self.query_one("#triage-title", Static).update(self._title_text())
        self.refresh_bindings()  # the row keys apply now there are rows (the table may have had focus first)

    @on(BlockingLoaded)
    def _blocking_loaded(self, event: BlockingLoaded) -> None:
        self.blocking.update(event.found)
        table = self.query_one("#triage", DataTable)
        width = self._widths()["blocking"]
        for row in self.rows:
            if row.alert_id in event.found and str(row.alert_id) in table.rows:
                table.update_cell(str(row.alert_id), "blocking", self._blocking_cell(row, width))
        self._show_detail()

    @on(CommandRefused)
    def _load_failed(self, event: CommandRefused) -> None:
        self.notify(str(event.reason), severity="error", timeout=8)

    # -- the table -----------------------------------------------------------------------------------
    def _wide(self) -> bool:
        return self.app.size.width >= 120

    def _widths(self) -> dict[str, int]:
        table = self.query_one("#triage", DataTable)
        width = table.size.width or self.app.size.width
        fixed = {"sev": W_SEV, "order": W_ORDER, "late": W_LATE, "what": W_WHAT, "owner": W_OWNER}
        if self._wide():
            fixed |= {"state": W_STATE, "customer": W_CUSTOMER, "amount": W_AMOUNT}
        columns = len(fixed) + 1
        fixed["blocking"] = max(W_FLEX_MIN, width - sum(fixed.values()) - 2 * columns - 2)
        return fixed

    def _columns(self) -> list[tuple[str, str]]:
        cols = [
            ("sev", ""),
            ("order", _("Order")),
            ("late", _("Late")),
            ("what", _("What")),
            ("owner", _("Owner")),
        ]
        if self._wide():
            cols += [("state", _("State")), ("customer", _("Customer")), ("amount", _("Amount"))]
        return [*cols, ("blocking", _("Blocking"))]

    def _blocking_cell(self, row: TriageRow, width: int) -> Text:
        found = self.blocking.get(row.alert_id)
        if found is None:
            return fit("…", width, style="dim")
        reason, _who = found
        return fit(str(reason) if reason else "-", width)

    def _cells(self, row: TriageRow, widths: dict[str, int]) -> dict[str, Text]:
        from orderdesk.money import format_money

        lang = current_language()
        dim = row.status != "open"
        colour = "red" if row.severity == "red" else "yellow"
        mark = {"acked": "✓", "snoozed": "z"}.get(row.status, "●")
        owner = row.target_user or row.owner or self._role(row.target_role)
        what = _(KIND_WORDS.get(row.kind, row.kind)) + (f"↑{row.level}" if row.level else "")
        order = row.order_no + ("!" if row.rush else "")
        style = "dim" if dim else ""
        cells = {
            "sev": Text(mark, style=f"bold {colour}" if not dim else "dim"),
            "order": fit(order, widths["order"], style="bold red" if row.rush and not dim else style),
            "late": fit(late_text(row.late_seconds), widths["late"], style=style or colour, justify="right"),
            "what": fit(what, widths["what"], style=style),
            "owner": fit(owner, widths["owner"], style=style),
            "blocking": self._blocking_cell(row, widths["blocking"]),
        }
        if self._wide():
            cells["state"] = fit(row.state_label.render(lang), widths["state"], style=style)
            cells["customer"] = fit(row.customer_name, widths["customer"], style=style)
            amount = format_money(row.amount) if self.session.user.may_see("amount") else "-"
            cells["amount"] = fit(amount, widths["amount"], style=style, justify="right")
        return cells

    def _role(self, role: str) -> str:
        r = self.session.workflow.roles.get(role)
        return r.label(current_language()) if r else role

    def _fill(self) -> None:
        table = self.query_one("#triage", DataTable)
        current = self.current_row()
        widths = self._widths()
        columns = self._columns()
        with self.app.batch_update():
            table.clear(columns=True)
            for key, label in columns:
                table.add_column(
                    Text(label, justify="right" if key in ("late", "amount") else "left"),
                    width=widths[key],
                    key=key,
                )
            for row in self.rows[:PAGE]:
                cells = self._cells(row, widths)
                table.add_row(*(cells[k] for k, _l in columns), key=str(row.alert_id))
            keep_cursor(table, str(current.alert_id) if current else None)
        self._show_detail()

    def current_row(self) -> TriageRow | None:
        key = cursor_key(self.query_one("#triage", DataTable))
        return next((r for r in self.rows if str(r.alert_id) == key), None)

    @on(DataTable.RowSelected, "#triage")
    def _selected(self) -> None:
        self.action_open_order()

    @on(DataTable.RowHighlighted, "#triage")
    def _highlighted(self) -> None:
        self._show_detail()

    def _show_detail(self) -> None:
        from orderdesk.board import countdown_text

        detail = self.query_one("#triage-detail", Static)
        row = self.current_row()
        if row is None:
            detail.update(Text(_("Nothing is late. 🎉") if not self.total else "", style="green"))
            return
        lines = [Text(str(row.message), style="bold")]
        reason, who = self.blocking.get(row.alert_id, (None, ()))
        if reason is not None:
            blocking = Text(_("Blocking") + ": ", style="dim")
            blocking.append(str(reason))
            if who:
                blocking.append("  (" + self.session.role_labels(who) + ")", style="dim")
            lines.append(blocking)
        now = self.session.store.clock()
        if row.status == "snoozed" and row.snoozed_until:
            state = _("Snoozed until {time}.", time=row.snoozed_until.astimezone().strftime("%m-%d %H:%M"))
        elif row.status == "acked":
            state = _("Acknowledged; watching until the order moves on.")
        elif row.escalate_at is not None:
            chain_next = self._next_level(row)
            state = (
                _(
                    "Escalates to {role} in {left}.",
                    role=chain_next,
                    left=countdown_text((row.escalate_at - now).total_seconds()),
                )
                if chain_next
                else _(
                    "Top of the chain: reminded again in {left}.",
                    left=countdown_text((row.escalate_at - now).total_seconds()),
                )
            )
        else:
            state = ""
        if state:
            lines.append(Text(state, style="dim"))
        detail.update(Text("\n").join(lines))

    def _next_level(self, row: TriageRow) -> str:
        from orderdesk.alerts import chain_roles

        chain = chain_roles(self.session.workflow, row.kind, row.state, row.topic)
        return self._role(chain[row.level + 1]) if row.level + 1 < len(chain) else ""

    # -- filters -------------------------------------------------------------------------------------
    def action_cycle(self, which: str) -> None:
        from orderdesk.orders import CHANNELS

        options: list[str | None]
        if which == "state":
            options = [None, *(s for s, st in self.session.workflow.states.items() if st.kind != "terminal")]
        elif which == "owner":
            options = [None, *self.owners]
        else:
            options = [None, *CHANNELS]
        current = self.filter[which]
        self.filter[which] = (
            options[(options.index(current) + 1) % len(options)] if current in options else None
        )
        self.page_offset = 0
        self.query_one("#triage-filter-text", Static).update(self._filters_text())
        self.reload()

    @on(Input.Changed, "#triage-customer")
    def _customer_changed(self) -> None:
        self.page_offset = 0
        self.reload()

    @on(Input.Submitted, "#triage-customer")
    def _customer_submitted(self) -> None:
        self.query_one("#triage", DataTable).focus()

    def action_find_customer(self) -> None:
        self.query_one("#triage-customer", Input).focus()

    def action_clear_customer(self) -> None:
        field = self.query_one("#triage-customer", Input)
        if field.value:
            field.value = ""
        self.query_one("#triage", DataTable).focus()

    def action_page(self, step: int) -> None:
        offset = max(0, self.page_offset + step * PAGE)
        if offset >= self.total and step > 0:
            return
        self.page_offset = offset
        self.reload()

    def action_reload(self) -> None:
        self.reload()

    def action_inbox(self) -> None:
        self.app.push_screen(AlertInboxScreen(self.session))

    # -- actions (each a domain command in a worker, via a dialog) ------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("acknowledge", "assign", "new_date", "escalate", "snooze", "open_order"):
            return self.current_row() is not None and not isinstance(self.focused, Input)
        return True

    def _ask(self, row: TriageRow, title: str, run: Callable[[dict[str, str]], Msg], **form: Any) -> None:
        """Open the form for one action on ``row``'s alert; the page reloads once the action went through."""
        self.app.push_screen(
            ActionDialog(self.session, title, row.message, run, **form), callback=self._after
        )

    def _after(self, done: bool | None) -> None:
        if done:
            self.reload()

    def action_open_order(self) -> None:
        row = self.current_row()
        if row is not None:
            from screens.order_detail import OrderDetailScreen

            self.app.push_screen(OrderDetailScreen(self.session, row.order_no))

    def action_acknowledge(self) -> None:
        from orderdesk.alerts import acknowledge_alert, answer_ack_request

        row = self.current_row()
        if row is None:
            return
        user = self.session.user.name
        if row.kind == "ack":
            choices = [("acknowledged", _("Acknowledged")), ("need_info", _("Need more information"))]

            def answer(values: dict[str, str]) -> Msg:
                answer_ack_request(
                    self.session.store,
                    alert_id=row.alert_id,
                    user=user,
                    answer=values["choice"],
                    reason=values["text"],
                    expected_version=row.alert_version,
                )
                return msg("Answered: {order_no}.", order_no=row.order_no)

            self._ask(
                row,
                _("Answer {order_no}", order_no=row.order_no),
                answer,
                choices=choices,
                fields=[("text", _("Reason (needed when you ask for more information)"), "")],
            )
        else:

            def ack(values: dict[str, str]) -> Msg:
                acknowledge_alert(
                    self.session.store,
                    alert_id=row.alert_id,
                    user=user,
                    note=values["text"],
                    expected_version=row.alert_version,
                )
                return msg("Acknowledged: {order_no}.", order_no=row.order_no)

            self._ask(
                row,
                _("Acknowledge {order_no}", order_no=row.order_no),
                ack,
                fields=[("text", _("What you are doing about it (optional)"), "")],
            )

    def action_assign(self) -> None:
        from orderdesk.alerts import assign_alert_owner

        row = self.current_row()
        if row is None:
            return

        def assign(values: dict[str, str]) -> Msg:
            assign_alert_owner(
                self.session.store,
                order_no=row.order_no,
                owner=values["choice"],
                user=self.session.user.name,
                expected_version=row.order_version,
            )
            return msg("{order_no} is now owned by {owner}.", order_no=row.order_no, owner=values["choice"])

        self._ask(
            row,
            _("Assign {order_no}", order_no=row.order_no),
            assign,
            choices=[(name, name) for name in self.owners],
        )

    def action_new_date(self) -> None:
        from orderdesk.alerts import set_promised_date

        row = self.current_row()
        if row is None:
            return

        def new_date(values: dict[str, str]) -> Msg:
            try:
                promised = date.fromisoformat(values["date"].strip())
            except ValueError:
                raise OrderdeskError(
                    msg("Type the date like 2026-12-31, not {value}.", value=values["date"]), code="bad_date"
                ) from None
            set_promised_date(
                self.session.store,
                order_no=row.order_no,
                promised=promised,
                reason=values["text"],
                user=self.session.user.name,
                expected_version=row.order_version,
            )
            return msg(
                "{order_no} is now promised for {date}.", order_no=row.order_no, date=promised.isoformat()
            )

        current = row.promised_date.isoformat() if row.promised_date else ""
        self._ask(
            row,
            _("New promised date for {order_no}", order_no=row.order_no),
            new_date,
            fields=[
                ("date", _("New date, e.g. 2026-12-31"), current),
                ("text", _("Reason (required)"), ""),
            ],
        )

    def action_escalate(self) -> None:
        from orderdesk.alerts import escalate_alert

        row = self.current_row()
        if row is None:
            return

        def escalate(values: dict[str, str]) -> Msg:
            change = escalate_alert(
                self.session.store,
                alert_id=row.alert_id,
                user=self.session.user.name,
                reason=values["text"],
                expected_version=row.alert_version,
            )
            return msg("Escalated {order_no} to level {level}.", order_no=row.order_no, level=change.level)

        self._ask(
            row,
            _("Escalate {order_no}", order_no=row.order_no),
            escalate,
            fields=[("text", _("Why (optional)"), "")],
        )

    def action_snooze(self) -> None:
        from orderdesk.alerts import parse_until, snooze_alert

        row = self.current_row()
        if row is None:
            return

        def snooze(values: dict[str, str]) -> Msg:
            until = parse_until(values["until"], self.session.store.clock())
            snooze_alert(
                self.session.store,
                alert_id=row.alert_id,
                user=self.session.user.name,
                until=until,
                reason=values["text"],
                expected_version=row.alert_version,
            )
            return msg("Snoozed {order_no}.", order_no=row.order_no)

        self._ask(
            row,
            _("Snooze {order_no}", order_no=row.order_no),
            snooze,
            fields=[
                ("until", _("Until: +2h, +1d or 2026-11-23T09:00"), "+2h"),
                ("text", _("Reason (required)"), ""),
            ],
        )


class ActionDialog(RunsCommands, ModalScreen[bool]):
    """A small form for one action on an alert: optional choices, text fields, Enter runs it in a worker.

    A refusal keeps the dialog open with the reason (and who must act) in red; success closes it.
    """

    DEFAULT_CSS = (
        DIALOG_CSS.format(name="ActionDialog")
        + """
    ActionDialog .dialog-about {
        color: $text-muted;
        height: auto;
        margin-bottom: 1;
    }
    """
    )
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel", id="action.cancel")]

    @dataclass
    class Done(Message):
        note: Msg

    def __init__(
        self,
        session: DeskSession,
        title: str,
        about: Msg,
        run: Callable[[dict[str, str]], Msg],
        *,
        choices: list[tuple[str, str]] | None = None,
        fields: list[tuple[str, str, str]] | None = None,
    ) -> None:
        super().__init__()
        self.session = session
        self.title_text = title
        self.about = about
        self.run = run
        self.choices = choices or []
        self.fields = fields or []
        self._busy = False
        localize_bindings(self)

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = self.title_text
            yield Static(str(self.about), classes="dialog-about")
            if self.choices:
                yield OptionList(*(Option(label, id=key) for key, label in self.choices), id="action-choices")
            for key, placeholder, value in self.fields:
                yield text_input(self, value, placeholder=placeholder, id=f"action-{key}", max_length=500)
            yield Static("", id="action-error", classes="dialog-error")
            yield Static(_("Enter: do it · Esc: cancel"), classes="dialog-hint")

    def on_mount(self) -> None:
        if self.choices:
            options = self.query_one("#action-choices", OptionList)
            options.highlighted = 0
            options.focus()
        elif self.fields:
            self.query_one(f"#action-{self.fields[0][0]}", Input).focus()

    @on(OptionList.OptionSelected, "#action-choices")
    def _chosen(self) -> None:
        if self.fields:
            self.query_one(f"#action-{self.fields[0][0]}", Input).focus()
        else:
            self._go()

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        keys = [f"action-{k}" for k, _p, _v in self.fields]
        index = keys.index(event.input.id) if event.input.id in keys else len(keys) - 1
        if index + 1 < len(keys):
            self.query_one(f"#{keys[index + 1]}", Input).focus()
        else:
            self._go()

    def values(self) -> dict[str, str]:
        out = {key: self.query_one(f"#action-{key}", Input).value for key, _p, _v in self.fields}
        out.setdefault("text", "")
        if self.choices:
            option = self.query_one("#action-choices", OptionList).highlighted_option
            out["choice"] = option.id if option and option.id else ""
        return out

    def _go(self) -> None:
        if self._busy:
            return
        self._busy = True
        self.query_one("#action-error", Static).update(_("Working…"))
        values = self.values()
        self.run_command(lambda: self.run(values), self.Done, group="alert-action")

    @on(Done)
    def _done(self, event: Done) -> None:
        self.app.notify(str(event.note))
        self.dismiss(True)

    @on(CommandRefused)
    def _refused(self, event: CommandRefused) -> None:
        self._busy = False
        self.query_one("#action-error", Static).update(refusal_text(self.session, event.reason, event.who))

    def action_cancel(self) -> None:
        self.dismiss(False)
