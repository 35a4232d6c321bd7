"""What every orderdesk screen shares: translated key bindings, worker failures shown to the user, the
status line, and text fitted to a number of terminal cells (Chinese characters take two).

Nothing here touches the database; the heavy core modules are imported only by workers.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any, cast

from rich.cells import cell_len
from rich.text import Text
from textual.binding import BindingsMap
from textual.dom import DOMNode
from textual.widgets import Input, Static
from textual.worker import Worker, WorkerState

from orderdesk.i18n import _, current_language

if TYPE_CHECKING:
    from screens.app import OrderdeskApp
    from screens.session import DeskSession

ELLIPSIS = "…"


def desk_app(node: DOMNode) -> OrderdeskApp:
    """The running ``OrderdeskApp`` (typed), for screens and widgets that need its state."""
    return cast("OrderdeskApp", node.app)


def localize_bindings(node: DOMNode) -> None:
    """Show ``node``'s key descriptions in the current language.

    Bindings are declared with English message ids; Textual copies them per instance, so each screen
    translates its own copy when it is built (a language switch rebuilds the screens).
    """
    english: BindingsMap = node.__dict__.setdefault("_english_bindings", node._bindings.copy())
    node._bindings = BindingsMap.from_keys(
        {
            key: [
                replace(b, description=_(b.description), tooltip=_(b.tooltip) if b.tooltip else "")
                if b.description
                else b
                for b in bindings
            ]
            for key, bindings in english.key_to_bindings.items()
        }
    )


def fit(text: str, width: int, *, style: str = "", justify: Any = "left") -> Text:
    """``text`` cut to at most ``width`` cells with an ellipsis, so CJK never breaks a column's edge."""
    text = " ".join(text.split())  # newlines in an address or a note would break a table row
    if cell_len(text) > width:
        out, used = [], 0
        for ch in text:
            w = cell_len(ch)
            if used + w > width - 1:
                break
            out.append(ch)
            used += w
        text = "".join(out) + ELLIPSIS
    return Text(text, style=style, justify=justify, no_wrap=True, overflow="ellipsis")


def text_input(node: DOMNode, value: str = "", **kwargs: Any) -> Input:
    """An ``Input`` whose cursor blinks only if the app's ``CURSOR_BLINK`` says so (off in snapshots)."""
    field = Input(value, **kwargs)
    field.cursor_blink = desk_app(node).CURSOR_BLINK
    return field


class ReportsWorkerErrors:
    """Mixin for screens: a worker that dies with an unexpected error is reported, not fatal.

    Expected failures (``Refused``, a locked database...) are caught inside the workers and posted as
    messages; this catches the rest (``exit_on_error=False`` keeps the app alive).
    """

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state is WorkerState.ERROR:
            error = event.worker.error
            node = cast(DOMNode, self)
            node.app.notify(
                _("Something went wrong: {error}", error=str(error) or type(error).__name__),
                title=_("Error"),
                severity="error",
                timeout=10,
                markup=False,  # an error text may hold [brackets]
            )


class StatusLine(Static):
    """One line at the bottom: who is logged in, their role, the language and the database file."""

    DEFAULT_CSS = """
    StatusLine {
        height: 1;
        padding: 0 1;
        background: $panel;
        color: $text-muted;
    }
    """

    def __init__(self, session: DeskSession | None, db_name: str, **kwargs: Any) -> None:
        self._base_text = status_text(session, db_name)
        super().__init__(self._base_text, markup=False, **kwargs)

    def on_mount(self) -> None:
        self.show_sync(getattr(self.app, "sync_text", ""))

    def show_sync(self, text: str) -> None:
        """Add the sync segment (online/offline, waiting, last sync, rejected: screens/sync_status.py)."""
        self.update(f"{self._base_text} · {text}" if text else self._base_text)


def status_text(session: DeskSession | None, db_name: str) -> str:
    lang = "中文" if current_language() == "zh" else "English"
    if session is None:
        return " · ".join((_("not logged in"), lang, db_name))
    return " · ".join((session.user.name, session.role_label(), lang, db_name))
