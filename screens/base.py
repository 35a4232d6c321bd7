"""What every orderdesk screen shares: translated key bindings, worker failures shown to the user, domain
commands run in thread workers that post their answer or refusal back (``RunsCommands``, ``DeskScreen``),
the status line, table cursor keys, and text fitted to a number of terminal cells (Chinese characters take
two).

Nothing here touches the database; the heavy core modules are imported only by workers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, cast

from rich.cells import cell_len
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import BindingsMap
from textual.dom import DOMNode
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Static
from textual.worker import Worker, WorkerState

from orderdesk.errors import OrderdeskError
from orderdesk.i18n import Msg, _, current_language

if TYPE_CHECKING:
    from screens.app import OrderdeskApp
    from screens.session import DeskSession

ELLIPSIS = "…"
RED = "bold red"  # refusals, rush orders, short lead times
T = TypeVar("T")


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


def refusal_text(session: DeskSession, reason: Msg, who: tuple[str, ...]) -> str:
    """A refusal as shown to the person: the reason, then who has to act before it can work."""
    text = str(reason)
    if who:
        text += "\n" + _("Who must act: {roles}", roles=session.role_labels(who))
    return text


@dataclass
class CommandRefused(Message):
    """The core refused a command or a read run by ``RunsCommands.run_command``: why, and who must act."""

    reason: Msg
    who: tuple[str, ...] = ()
    code: str = ""


class RunsCommands(ReportsWorkerErrors):
    """Mixin for screens: run a domain command in a thread worker and post its answer back as a message.

    The worker never touches a widget; the screen's handlers for ``done``'s message and for
    ``CommandRefused`` own the UI.
    """

    def run_command(
        self,
        call: Callable[[], T],
        done: Callable[[T], Message],
        *,
        group: str,
        exclusive: bool = True,
    ) -> Worker[None]:
        """Run ``call`` (which imports the core it needs) in a thread worker of ``group``; post
        ``done(result)``, or ``CommandRefused`` when it raises an ``OrderdeskError``."""
        node = cast(DOMNode, self)

        def in_thread() -> None:
            try:
                result = call()
            except OrderdeskError as exc:
                node.post_message(CommandRefused(exc.message, exc.who, exc.code))
                return
            node.post_message(done(result))

        return node.run_worker(
            in_thread, name=group, group=group, exclusive=exclusive, exit_on_error=False, thread=True
        )


class DeskScreen(RunsCommands, Screen[None]):
    """A full screen of one person's desk: key descriptions in their language, commands run in workers,
    Esc (where a screen binds it to ``back``) returns to the screen below."""

    def __init__(self, session: DeskSession) -> None:
        super().__init__()
        self.session = session
        localize_bindings(self)

    def action_back(self) -> None:
        self.app.pop_screen()

    def show_refusal(self, event: CommandRefused, where: str) -> Text:
        """Show a refusal, and who must act, in red in the ``Static`` at ``where``; returns the text."""
        text = Text(refusal_text(self.session, event.reason, event.who), style=RED)
        self.query_one(where, Static).update(text)
        return text


class QueueDeskScreen(DeskScreen):
    """A role's home: a title line, its queue of orders (one page at most), a hint on the highlighted one.

    Loaded when mounted and again each time the person comes back to it; refilled when the terminal is
    resized. Subclasses compose with ``compose_queue`` and provide ``load`` (a worker whose handler sets
    ``loaded``) and ``_fill``; they must not define ``on_mount``/``on_screen_resume``/``on_resize`` again
    (Textual runs the handler of every class in the MRO, so the queue would load twice).
    """

    QUEUE_ID: ClassVar[str] = ""

    def __init__(self, session: DeskSession) -> None:
        super().__init__(session)
        self.loaded = False

    def compose_queue(self, loading: str, title_id: str, hint_id: str) -> ComposeResult:
        """Title line (``loading`` until the first load), the queue table, the hint, status line, footer."""
        yield Static(loading, id=title_id)
        yield DataTable(id=self.QUEUE_ID, cursor_type="row", zebra_stripes=True)
        yield Static("", id=hint_id)
        yield StatusLine(self.session, self.session.db_path.name)
        yield Footer()

    def load(self) -> None:
        raise NotImplementedError

    def _fill(self) -> None:
        raise NotImplementedError

    def on_mount(self) -> None:
        self.load()

    def on_screen_resume(self) -> None:
        if self.loaded:
            self.load()

    def on_resize(self) -> None:
        if self.loaded:
            self._fill()

    def current_order(self) -> str | None:
        """The order number of the highlighted row."""
        return cursor_key(self.query_one(f"#{self.QUEUE_ID}", DataTable))

    def action_reload(self) -> None:
        self.load()


def cursor_key(table: DataTable[Any]) -> str | None:
    """The key of the row under ``table``'s cursor; None while the table is empty."""
    if not table.row_count:
        return None
    key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
    return str(key) if key is not None else None


def keep_cursor(table: DataTable[Any], key: str | None) -> None:
    """After a refill, put the cursor back on the row ``key`` if the table still has it."""
    if key and key in table.rows:
        table.move_cursor(row=table.get_row_index(key))


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
