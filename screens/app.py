"""The orderdesk terminal app: one factory (``build_app``) for the CLI and the tests, one stylesheet, the
login → role home flow, and the command palette.

Startup stays fast because nothing here imports SQLAlchemy or the order queries: the store is opened
by a thread worker once the login screen has been painted (``open_desk``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from textual import on, work
from textual.app import App
from textual.binding import Binding, BindingType
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.message import Message
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from orderdesk.errors import OrderdeskError
from orderdesk.heap import freeze_heap
from orderdesk.i18n import _, current_language, set_language
from screens.alert_inbox import start_alert_jobs, stop_alert_jobs
from screens.base import ReportsWorkerErrors, desk_app, localize_bindings
from screens.board import StatusBoardScreen
from screens.finance_desk import FinanceDeskScreen
from screens.login import LoginScreen
from screens.order_detail import OrderDetailScreen
from screens.orders import OrderBrowserScreen
from screens.qc_desk import QCDeskScreen
from screens.sales_desk import SalesDeskScreen
from screens.scan_to_ship import ScanToShipScreen
from screens.session import DeskSession, DeskUser
from screens.sync_status import (
    ChangesRejected,
    SyncStatusChanged,
    show_sync_status,
    start_sync,
    stop_sync,
    sync_commands,
    tell_rejections,
)
from screens.triage import TriageScreen

if TYPE_CHECKING:
    from orderdesk.clock import Clock
    from orderdesk.store import Store
    from orderdesk.workflow import Workflow

HomeScreenFactory = Callable[[DeskSession], Screen[Any]]

# A role's home screen, keyed by the role's ``home`` in the workflow file. Register a new desk with one
# line, e.g. ``HOME_SCREENS["warehouse"] = ScanToShipScreen``; unknown homes fall back to the browser.
HOME_SCREENS: dict[str, HomeScreenFactory] = {
    "sales": SalesDeskScreen,
    "qc": QCDeskScreen,
    "warehouse": ScanToShipScreen,
    "finance": FinanceDeskScreen,
    "planner": TriageScreen,
    "supervisor": StatusBoardScreen,
    "admin": OrderBrowserScreen,
}


def home_screen(session: DeskSession) -> Screen[Any]:
    """A new instance of the logged-in user's home screen."""
    return HOME_SCREENS.get(session.user.home, OrderBrowserScreen)(session)


class DeskCommands(Provider):
    """Our commands in the command palette (ctrl+p), named in the current language."""

    def _commands(self) -> list[tuple[str, str, Callable[[], Any]]]:
        app = desk_app(self.screen)
        commands: list[tuple[str, str, Callable[[], Any]]] = []
        if app.session is not None:
            commands += [
                (_("Find order"), _("Search by order number, customer or phone"), app.action_find_order),
                (_("Open home"), _("Back to your home screen"), app.action_go_home),
                (_("Log out"), _("Leave the desk for the next person"), app.action_log_out),
            ]
            commands += sync_commands(app)
        commands += [
            (_("Switch language"), _("中文 / English"), app.action_switch_language),
            (_("Quit"), _("Close orderdesk"), app.action_quit),
        ]
        return commands

    async def discover(self) -> Hits:
        for name, help_text, callback in self._commands():
            yield DiscoveryHit(name, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, help_text, callback in self._commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, help=help_text)


class OrderdeskApp(ReportsWorkerErrors, App[None]):
    """The order desk. Build it with ``build_app``."""

    CSS_PATH = "app.tcss"
    TITLE = "orderdesk"
    # Snapshot tests set this False so a blinking cursor never makes two screenshots differ.
    CURSOR_BLINK: ClassVar[bool] = True
    COMMANDS: ClassVar[set[type[Provider] | Callable[[], type[Provider]]]] = {DeskCommands}
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+q", "quit", "Quit", id="app.quit", priority=True),
        # Not in the footer's key list: the footer shows the palette key on its right edge.
        Binding("ctrl+p", "command_palette", "Commands", id="app.command_palette", priority=True, show=False),
        Binding("f2", "switch_language", "中文/EN", id="app.switch_language"),
    ]

    def __init__(
        self,
        *,
        db_path: Path,
        workflow_path: Path | None = None,
        user: str | None = None,
        clock: Clock | None = None,
    ) -> None:
        super().__init__()
        self.db_path = Path(db_path)
        self.workflow_path = workflow_path
        self.initial_user = user
        self.clock = clock
        self.store: Store | None = None  # set once the worker has opened it (see open_desk)
        self.workflow: Workflow | None = None
        self.desk_error: Exception | None = None  # why the store or workflow cannot be used
        self._desk_opening = False
        self.session: DeskSession | None = None  # set at login, cleared at log out
        localize_bindings(self)

    def on_mount(self) -> None:
        self.push_screen(LoginScreen(user=self.initial_user))

    def on_unmount(self) -> None:
        stop_alert_jobs(self)
        stop_sync(self)
        if self.store is not None:
            self.store.close()

    # -- opening the desk: once per run, in a thread, after the login screen is painted ---------------
    @dataclass
    class DeskOpened(Message):
        store: Store
        workflow: Workflow

    @dataclass
    class DeskFailed(Message):
        error: Exception  # OrderdeskError or WorkflowError: both render in the reader's language

    def open_desk_once(self) -> None:
        if self.store is None and self.desk_error is None and not self._desk_opening:
            self._desk_opening = True
            self.open_desk(self.db_path, self.workflow_path, self.clock)

    @work(thread=True, exclusive=True, exit_on_error=False, group="desk")
    def open_desk(self, db_path: Path, workflow_path: Path | None, clock: Clock | None) -> None:
        """Open (and migrate) the store and load the workflow; never touches widgets."""
        from orderdesk.clock import utcnow
        from orderdesk.store import Store
        from orderdesk.workflow import WorkflowError

        try:
            store = Store.open(db_path, clock=clock or utcnow, workflow_path=workflow_path)
            workflow = store.workflow
            # Import the query modules now, off the event loop, so the first search does not stall.
            import orderdesk.orders
            import orderdesk.users  # noqa: F401
        except (OrderdeskError, WorkflowError) as exc:
            self.post_message(self.DeskFailed(exc))
            return
        self.post_message(self.DeskOpened(store, workflow))

    @on(DeskOpened)
    def _desk_opened(self, event: DeskOpened) -> None:
        self.store, self.workflow, self._desk_opening = event.store, event.workflow, False
        freeze_heap(once=True)  # what is loaded by now lives as long as the process
        start_sync(self)  # background push/pull when the desk is enrolled with a central API (issue 4)
        if isinstance(self.screen, LoginScreen):
            self.screen.desk_ready()

    @on(SyncStatusChanged)
    def _sync_status(self, event: SyncStatusChanged) -> None:
        show_sync_status(self, event)

    @on(ChangesRejected)
    def _changes_rejected(self, event: ChangesRejected) -> None:
        tell_rejections(self, event)

    @on(DeskFailed)
    def _desk_failed(self, event: DeskFailed) -> None:
        self.desk_error, self._desk_opening = event.error, False
        if isinstance(self.screen, LoginScreen):
            self.screen.desk_failed(event.error)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        # Textual also calls the mixin's handler (it walks the MRO) unless the default is prevented.
        if event.worker.group == "desk" and event.state is WorkerState.ERROR and event.worker.error:
            # An error nobody foresaw while opening still ends on the login screen, not in a spinner.
            event.prevent_default()
            self.post_message(self.DeskFailed(event.worker.error))

    def sign_in(self, user: DeskUser) -> None:
        """Start a session for ``user`` and show their role's home screen in place of the login."""
        assert self.store is not None and self.workflow is not None
        self.session = DeskSession(self.store, self.workflow, user, self.db_path)
        start_alert_jobs(self)  # the desk runs the alert jobs unless a central server does (issue 5)
        self.switch_screen(home_screen(self.session))

    async def _reset_to(self, screen: Screen[Any]) -> None:
        # Keep the (blank) default screen at the bottom; replace everything above it.
        while len(self.screen_stack) > 2:
            await self.pop_screen()
        await self.switch_screen(screen)

    # -- actions (keys and the command palette) ------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("find_order", "go_home", "log_out"):
            return self.session is not None
        return True

    async def action_go_home(self) -> None:
        if self.session is None:
            return
        while len(self.screen_stack) > 2:
            await self.pop_screen()

    async def action_find_order(self) -> None:
        if self.session is None:
            return
        await self.action_go_home()
        home = self.screen
        if isinstance(home, OrderBrowserScreen):
            home.focus_search()
        else:  # a role desk without a search: open the browser on top of it
            browser = OrderBrowserScreen(self.session)
            await self.push_screen(browser)
            browser.focus_search()

    async def action_log_out(self) -> None:
        self.session = None
        await self._reset_to(LoginScreen())

    async def action_switch_language(self) -> None:
        """Switch between English and Chinese; screens are rebuilt so every label changes."""
        set_language("en" if current_language() == "zh" else "zh")
        localize_bindings(self)
        if self.session is None:
            login = self.screen if isinstance(self.screen, LoginScreen) else None
            await self._reset_to(LoginScreen(user=login.typed_name() if login else self.initial_user))
            return
        open_order = next(
            (s.order_no for s in reversed(self.screen_stack) if isinstance(s, OrderDetailScreen)), None
        )
        await self._reset_to(home_screen(self.session))
        if open_order:
            await self.push_screen(OrderDetailScreen(self.session, open_order))


def build_app(
    *,
    db_path: Path,
    workflow_path: Path | None = None,
    user: str | None = None,
    lang: str | None = None,
    clock: Clock | None = None,
) -> OrderdeskApp:
    """The app the CLI runs and the tests drive: ``lang`` (en/zh) overrides the process language."""
    if lang:
        set_language(lang)
    return OrderdeskApp(db_path=db_path, workflow_path=workflow_path, user=user, clock=clock)
