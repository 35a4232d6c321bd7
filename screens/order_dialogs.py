"""Modal dialogs on an order: move it along the workflow, add a note.

Both run the domain command in a thread worker and stay open with the refusal in red when the core
says no, so the person sees why (and who must act) with the order untouched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from orderdesk.i18n import _
from screens.base import CommandRefused, RunsCommands, localize_bindings, refusal_text, text_input

if TYPE_CHECKING:
    from orderdesk.views import OrderDetail
    from screens.session import DeskSession

DIALOG_CSS = """
{name} {{
    align: center middle;
}}
{name} > Vertical {{
    width: 70;
    max-width: 100%;
    height: auto;
    max-height: 100%;
    border: round $primary;
    border-title-style: bold;
    background: $surface;
    padding: 0 1;
}}
{name} OptionList {{
    height: auto;
    max-height: 8;
    margin-bottom: 1;
}}
{name} .dialog-error {{
    color: $text-error;
    height: auto;
}}
{name} .dialog-hint {{
    color: $text-muted;
}}
"""


class MoveDialog(RunsCommands, ModalScreen["OrderDetail | None"]):
    """Pick one of the moves this user may make on the order, give a reason, Enter to move."""

    DEFAULT_CSS = DIALOG_CSS.format(name="MoveDialog")
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="move.cancel"),
    ]

    @dataclass
    class Moved(Message):
        detail: OrderDetail

    def __init__(self, session: DeskSession, detail: OrderDetail) -> None:
        super().__init__()
        self.session = session
        self.detail = detail
        self._busy = False
        localize_bindings(self)

    def compose(self) -> ComposeResult:
        d = self.detail
        with Vertical() as box:
            # Text, not a str: a str title is read as markup, and state labels come from a data file.
            box.border_title = Text(
                _(
                    "Move {order_no} · {state} · v{version}",
                    order_no=d.order_no,
                    state=str(d.summary.state_label),
                    version=d.version,
                )
            )
            yield OptionList(
                *(Option(f"{t.label}  →  {t.to_label}", id=t.id) for t in d.transitions),
                id="move-options",
                markup=False,
            )
            reason = text_input(
                self, placeholder=_("Reason (kept in the audit trail)"), id="move-reason", max_length=500
            )
            yield reason
            yield Static("", id="move-error", classes="dialog-error", markup=False)
            yield Static(
                _("Enter: choose, then Enter to move · Esc: cancel"), classes="dialog-hint", markup=False
            )

    def on_mount(self) -> None:
        options = self.query_one("#move-options", OptionList)
        options.highlighted = 0
        options.focus()

    @property
    def chosen(self) -> str | None:
        """The transition id highlighted in the list."""
        option = self.query_one("#move-options", OptionList).highlighted_option
        return option.id if option else None

    @on(OptionList.OptionSelected, "#move-options")
    def _option_selected(self) -> None:
        self.query_one("#move-reason", Input).focus()

    @on(Input.Submitted, "#move-reason")
    def _confirm(self) -> None:
        transition = self.chosen
        if self._busy or transition is None:
            return
        self._busy = True
        self.query_one("#move-error", Static).update(_("Moving…"))
        self.move(transition, self.query_one("#move-reason", Input).value)

    def move(self, transition: str, reason: str) -> None:
        """Run the move against the version on screen: a change made meanwhile is refused as stale."""

        def move_it() -> OrderDetail:
            from orderdesk.orders import move_order

            return move_order(
                self.session.store,
                order_no=self.detail.order_no,
                to=transition,
                user=self.session.user.name,
                reason=reason,
                expected_version=self.detail.version,
            )

        self.run_command(move_it, self.Moved, group="move")

    @on(Moved)
    def _moved(self, event: Moved) -> None:
        self.dismiss(event.detail)

    @on(CommandRefused)
    def _move_refused(self, event: CommandRefused) -> None:
        self._busy = False
        self.query_one("#move-error", Static).update(refusal_text(self.session, event.reason, event.who))

    def action_cancel(self) -> None:
        self.dismiss(None)


class NoteDialog(RunsCommands, ModalScreen[bool]):
    """Add a note to the order's timeline; Enter saves, Esc cancels."""

    DEFAULT_CSS = DIALOG_CSS.format(name="NoteDialog")
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="note.cancel"),
    ]

    @dataclass
    class NoteAdded(Message):
        pass

    def __init__(self, session: DeskSession, order_no: str) -> None:
        super().__init__()
        self.session = session
        self.order_no = order_no
        self._busy = False
        localize_bindings(self)

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = Text(_("Note on {order_no}", order_no=self.order_no))
            yield text_input(self, placeholder=_("The note"), id="note-text", max_length=2000)
            yield Static("", id="note-error", classes="dialog-error", markup=False)
            yield Static(_("Enter: save · Esc: cancel"), classes="dialog-hint", markup=False)

    @on(Input.Submitted, "#note-text")
    def _save(self, event: Input.Submitted) -> None:
        if self._busy:
            return
        self._busy = True
        self.add(event.value)

    def add(self, text: str) -> None:
        def add_it() -> None:
            from orderdesk.orders import add_note

            add_note(self.session.store, order_no=self.order_no, text=text, user=self.session.user.name)

        self.run_command(add_it, lambda _added: self.NoteAdded(), group="note")

    @on(NoteAdded)
    def _added(self) -> None:
        self.dismiss(True)

    @on(CommandRefused)
    def _refused(self, event: CommandRefused) -> None:
        self._busy = False
        self.query_one("#note-error", Static).update(str(event.reason))

    def action_cancel(self) -> None:
        self.dismiss(False)
