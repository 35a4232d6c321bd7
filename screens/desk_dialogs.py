"""Small modal dialogs the sales, QC and finance desks share: a reason, a choice with a reason, a yes/no
question, defects and measured values for a line, a payment, an export.

They only collect input and dismiss with it; the desk that opened them runs the domain command in a worker
and shows the answer (so a refusal is shown where the person is working).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, TypeVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, SelectionList, Static
from textual.widgets.option_list import Option

from orderdesk.i18n import _
from screens.base import localize_bindings, text_input
from screens.order_dialogs import DIALOG_CSS

ResultT = TypeVar("ResultT")


class DeskDialog(ModalScreen[ResultT]):
    """A small modal form in a box titled ``title_text``; the ``cancel`` action (Esc) dismisses None."""

    def __init__(self, title: str) -> None:
        super().__init__()
        self.title_text = title
        localize_bindings(self)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ReasonDialog(DeskDialog[str | None]):
    """Ask for a reason (required or not); Enter confirms, Esc cancels (dismisses None)."""

    DEFAULT_CSS = DIALOG_CSS.format(name="ReasonDialog")
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel", id="reason.cancel")]

    def __init__(self, title: str, prompt: str, *, required: bool = True, value: str = "") -> None:
        super().__init__(title)
        self.prompt = prompt
        self.required = required
        self.value = value

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = self.title_text
            yield Static(self.prompt, classes="dialog-hint")
            yield text_input(self, self.value, placeholder=_("Reason"), id="reason-text", max_length=500)
            yield Static("", id="reason-error", classes="dialog-error")
            yield Static(_("Enter: confirm · Esc: cancel"), classes="dialog-hint")

    def on_mount(self) -> None:
        self.query_one("#reason-text", Input).focus()

    @on(Input.Submitted, "#reason-text")
    def _confirm(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if self.required and not text:
            self.query_one("#reason-error", Static).update(_("A reason is needed."))
            return
        self.dismiss(text)


@dataclass(frozen=True)
class Choice:
    id: str
    label: str
    needs_text: bool = False


class ChoiceDialog(DeskDialog[tuple[str, str] | None]):
    """Pick one option (with a text where the option needs one); dismisses (option id, text) or None."""

    DEFAULT_CSS = DIALOG_CSS.format(name="ChoiceDialog")
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel", id="choice.cancel")]

    def __init__(self, title: str, prompt: str, choices: list[Choice]) -> None:
        super().__init__(title)
        self.prompt = prompt
        self.choices = choices

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = self.title_text
            yield Static(self.prompt, classes="dialog-hint", id="choice-prompt")
            yield OptionList(*(Option(c.label, id=c.id) for c in self.choices), id="choice-options")
            yield text_input(
                self, placeholder=_("Say what (needed for this choice)"), id="choice-text", max_length=500
            )
            yield Static("", id="choice-error", classes="dialog-error")
            yield Static(_("Enter: choose · Esc: cancel"), classes="dialog-hint")

    def on_mount(self) -> None:
        options = self.query_one("#choice-options", OptionList)
        options.highlighted = 0
        options.focus()

    def _chosen(self) -> Choice | None:
        option = self.query_one("#choice-options", OptionList).highlighted_option
        return next((c for c in self.choices if option and c.id == option.id), None)

    @on(OptionList.OptionSelected, "#choice-options")
    def _selected(self) -> None:
        choice = self._chosen()
        if choice is None:
            return
        if choice.needs_text:
            self.query_one("#choice-text", Input).focus()
            return
        self.dismiss((choice.id, self.query_one("#choice-text", Input).value.strip()))

    @on(Input.Submitted, "#choice-text")
    def _text_done(self, event: Input.Submitted) -> None:
        choice = self._chosen()
        if choice is None:
            return
        if choice.needs_text and not event.value.strip():
            self.query_one("#choice-error", Static).update(_("Say what the reason is."))
            return
        self.dismiss((choice.id, event.value.strip()))


class ConfirmDialog(DeskDialog[bool]):
    """A yes/no question: y or Enter says yes, n or Esc says no."""

    DEFAULT_CSS = DIALOG_CSS.format(name="ConfirmDialog")
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y,enter", "answer(True)", "Yes", id="confirm.yes"),
        Binding("n,escape", "answer(False)", "No", id="confirm.no"),
    ]

    def __init__(self, title: str, question: str) -> None:
        super().__init__(title)
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = self.title_text
            yield Static(self.question, id="confirm-question")
            yield Static(_("y / Enter: yes · n / Esc: no"), classes="dialog-hint")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


@dataclass(frozen=True)
class DefectInput:
    defects: tuple[str, ...]
    measurements: str
    note: str


class DefectDialog(DeskDialog[DefectInput | None]):
    """Defect codes for a failed line (space ticks), its measured values and a note; Enter in the note saves."""

    DEFAULT_CSS = (
        DIALOG_CSS.format(name="DefectDialog")
        + """
    DefectDialog SelectionList { height: auto; max-height: 10; }
    """
    )
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="defect.cancel"),
        Binding("ctrl+s", "save", "Save", id="defect.save"),
    ]

    def __init__(
        self, title: str, codes: list[tuple[str, str]], *, chosen: tuple[str, ...] = (), measured: str = ""
    ) -> None:
        super().__init__(title)
        self.codes = codes
        self.chosen = chosen
        self.measured = measured

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = self.title_text
            yield SelectionList[str](
                *((f"{code}  {label}", code, code in self.chosen) for code, label in self.codes),
                id="defect-codes",
            )
            yield text_input(
                self,
                self.measured,
                placeholder=_("Measured values, e.g. Ø8.05 L40.2"),
                id="defect-measured",
                max_length=500,
            )
            yield text_input(self, placeholder=_("Note"), id="defect-note", max_length=500)
            yield Static("", id="defect-error", classes="dialog-error")
            yield Static(
                _("Space: tick a defect · Tab: next field · Enter in the note or Ctrl+S: save"),
                classes="dialog-hint",
            )

    def on_mount(self) -> None:
        self.query_one("#defect-codes", SelectionList).focus()

    @on(Input.Submitted, "#defect-note")
    def _note_done(self) -> None:
        self.action_save()

    @on(Input.Submitted, "#defect-measured")
    def _measured_done(self) -> None:
        self.query_one("#defect-note", Input).focus()

    def action_save(self) -> None:
        codes = tuple(self.query_one("#defect-codes", SelectionList).selected)
        if not codes:
            self.query_one("#defect-error", Static).update(_("Tick at least one defect code."))
            return
        self.dismiss(
            DefectInput(
                codes,
                self.query_one("#defect-measured", Input).value.strip(),
                self.query_one("#defect-note", Input).value.strip(),
            )
        )


@dataclass(frozen=True)
class FieldSpec:
    id: str
    label: str
    value: str = ""
    placeholder: str = ""
    required: bool = False


class FormDialog(DeskDialog[dict[str, str] | None]):
    """A few labelled fields (a payment, an export path); Enter moves on, Enter in the last one confirms."""

    DEFAULT_CSS = (
        DIALOG_CSS.format(name="FormDialog")
        + """
    FormDialog .form-label { color: $text-muted; }
    """
    )
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel", id="form.cancel")]

    def __init__(self, title: str, fields: list[FieldSpec], hint: str = "") -> None:
        super().__init__(title)
        self.fields = fields
        self.hint = hint

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = self.title_text
            if self.hint:
                yield Static(self.hint, classes="dialog-hint")
            for spec in self.fields:
                yield Static(spec.label, classes="form-label")
                yield text_input(
                    self, spec.value, placeholder=spec.placeholder, id=f"form-{spec.id}", max_length=300
                )
            yield Static("", id="form-error", classes="dialog-error")
            yield Static(_("Enter: next / confirm · Esc: cancel"), classes="dialog-hint")

    def on_mount(self) -> None:
        self.query_one(f"#form-{self.fields[0].id}", Input).focus()

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        ids = [f"form-{s.id}" for s in self.fields]
        here = ids.index(event.input.id or "")
        if here < len(ids) - 1:
            self.query_one(f"#{ids[here + 1]}", Input).focus()
            return
        values = {s.id: self.query_one(f"#form-{s.id}", Input).value.strip() for s in self.fields}
        missing = [s.label for s in self.fields if s.required and not values[s.id]]
        if missing:
            self.query_one("#form-error", Static).update(_("Fill in: {fields}", fields=", ".join(missing)))
            return
        self.dismiss(values)
