"""The login screen: name + PIN, or a badge scan. It also opens the desk's database in the background,
so the first frame is painted before SQLAlchemy, Alembic and the workflow file are loaded."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Center, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Input, Static

from orderdesk.errors import OrderdeskError
from orderdesk.i18n import Msg, _
from screens.base import ReportsWorkerErrors, StatusLine, desk_app, localize_bindings, text_input

if TYPE_CHECKING:
    from orderdesk.store import Store
    from orderdesk.workflow import Workflow
    from screens.session import DeskUser

BADGE_PREFIX = "%BADGE:"


def badge_from_scan(raw: str) -> str | Msg | None:
    """The badge code if ``raw`` is a badge scan, a reason if it is a broken one, None if not a badge."""
    try:
        from orderdesk.barcodes import BadgeScan, InvalidScan, classify_scan
    except ImportError:  # barcodes.py not there yet: a badge is the text after the prefix
        text = raw.strip()
        return text[len(BADGE_PREFIX) :].strip() if text.upper().startswith(BADGE_PREFIX) else None
    scan = classify_scan(raw)
    if isinstance(scan, BadgeScan):
        return scan.badge
    if isinstance(scan, InvalidScan) and raw.strip().upper().startswith(("%BADGE", "％ＢＡＤＧＥ")):
        return scan.reason
    return None


class LoginScreen(ReportsWorkerErrors, Screen[None]):
    """Log in with a name and PIN (Enter to submit) or by scanning a badge into either field."""

    AUTO_FOCUS = None  # focus is set on mount: the PIN when the name is given on the command line

    @dataclass
    class LoggedIn(Message):
        user: DeskUser

    @dataclass
    class LoginRefused(Message):
        reason: Msg
        by_badge: bool

    def __init__(self, *, user: str | None = None) -> None:
        super().__init__()
        self.initial_user = user or ""
        self._pending: dict[str, str] | None = None  # a login typed (or scanned) before the desk opened
        localize_bindings(self)

    def compose(self) -> ComposeResult:
        app = desk_app(self)
        with Center(id="login-center"), Vertical(id="login-box"):
            yield Static("orderdesk", id="login-title", markup=False)
            yield Static(_("Order desk — log in"), id="login-subtitle", markup=False)
            name = text_input(self, self.initial_user, placeholder=_("your login name"), id="login-name")
            name.border_title = _("User name")
            yield name
            pin = text_input(self, placeholder=_("4 to 8 digits"), password=True, id="login-pin")
            pin.border_title = _("PIN")
            yield pin
            yield Static("", id="login-message", markup=False)
            yield Static(
                _("Type your name and PIN, then Enter — or scan your badge."), id="login-hint", markup=False
            )
        yield StatusLine(None, app.db_path.name)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#login-pin" if self.initial_user else "#login-name", Input).focus()
        app = desk_app(self)
        if app.desk_error is not None:
            self.desk_failed(app.desk_error)
        elif app.store is None:
            self._show(_("Opening database…"), "opening")
            # After the first frame: importing SQLAlchemy in a thread still holds the GIL, and would
            # delay the paint that tells the person the program has started.
            self.call_after_refresh(app.open_desk_once)

    def typed_name(self) -> str:
        """The name in the form now (kept when the language is switched)."""
        return self.query_one("#login-name", Input).value.strip()

    # -- the app tells us when the desk is open (or cannot be) ---------------------------------------
    def desk_ready(self) -> None:
        self._show("", "")
        if self._pending is not None:
            pending, self._pending = self._pending, None
            self._attempt(**pending)

    def desk_failed(self, error: Exception) -> None:
        """Show why the database or workflow cannot be used; nothing to log in to."""
        self._pending = None
        self._show(str(error) or type(error).__name__, "error")
        for field in self.query(Input):
            field.disabled = True

    # -- logging in ----------------------------------------------------------------------------------
    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        badge = badge_from_scan(event.value)
        if isinstance(badge, Msg):
            event.input.value = ""
            self._show(str(badge), "error")
            return
        if badge is not None:
            event.input.value = ""  # the scan is not a name or a PIN: do not leave it in the field
            self._attempt(badge=badge)
            return
        name = self.query_one("#login-name", Input)
        pin = self.query_one("#login-pin", Input)
        if not name.value.strip():
            self._show(_("Type your name first."), "error")
            name.focus()
            return
        if not pin.value:
            pin.focus()
            return
        self._attempt(name=name.value.strip(), pin=pin.value)

    def _attempt(self, **credentials: str) -> None:
        app = desk_app(self)
        if app.store is None:
            if app.desk_error is None:  # still opening: log in as soon as it is open
                self._pending = credentials
                self._show(_("Opening database…"), "opening")
            return
        self._show(_("Checking…"), "opening")
        self.log_in(app.store, app.workflow, credentials)

    @work(thread=True, exclusive=True, exit_on_error=False, group="login")
    def log_in(self, store: Store, workflow: Workflow | None, credentials: dict[str, str]) -> None:
        """Check the PIN or badge (scrypt: slow on purpose, hence a thread)."""
        from orderdesk.users import login
        from screens.session import desk_user

        assert workflow is not None
        try:
            actor = login(store, **credentials)
            user = desk_user(workflow, actor)
        except OrderdeskError as exc:
            self.post_message(self.LoginRefused(exc.message, "badge" in credentials))
            return
        self.post_message(self.LoggedIn(user))

    @on(LoggedIn)
    def _logged_in(self, event: LoggedIn) -> None:
        self.query_one("#login-pin", Input).value = ""
        desk_app(self).sign_in(event.user)

    @on(LoginRefused)
    def _refused(self, event: LoginRefused) -> None:
        self._show(str(event.reason), "error")
        pin = self.query_one("#login-pin", Input)
        pin.value = ""
        if not event.by_badge:
            pin.focus()

    def _show(self, text: str, kind: str) -> None:
        message = self.query_one("#login-message", Static)
        message.update(text)
        message.set_class(kind == "error", "-error")
        message.set_class(kind == "opening", "-opening")
