"""Sync in the background of the desk app, and what the status line says about it.

The loop runs in a thread worker (HTTP and SQLite block): it never touches widgets, it posts
``SyncStatusChanged`` to the app, whose handler updates the status line of the screen on top. Nothing here
runs on the event loop but formatting.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from textual.message import Message

from orderdesk.i18n import _

if TYPE_CHECKING:
    from textual.app import App

    from orderdesk.replication import DeskSyncState, Rejection
    from orderdesk.store import Store

INTERVAL_S = 5.0  # between rounds while all is well
OFFLINE_INTERVAL_S = 15.0  # between rounds while the central API cannot be reached


@dataclass
class SyncStatusChanged(Message):
    """Posted by the sync worker after each round (and at start)."""

    state: DeskSyncState
    online: bool
    busy: bool = False  # True while a round runs (ops going up)

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, SyncStatusChanged)  # only the newest status matters


@dataclass
class ChangesRejected(Message):
    """Posted by the sync worker when a round brings rejections of this desk's changes (never replaced: each
    one is told)."""

    rejections: list[Rejection]


MAX_TOLD = 3  # rejections told one by one after a round; the rest are counted


def sync_status_text(state: DeskSyncState | None, *, online: bool, busy: bool = False) -> str:
    """One short segment for the status line, e.g. "● online · 3 waiting · synced 14:05 · 1 rejected"."""
    if state is None or not state.enrolled:
        return ""
    parts = [("◐ " + _("syncing")) if busy else ("● " + _("online")) if online else ("○ " + _("offline"))]
    parts.append(_("{n} waiting", n=state.waiting))
    if state.last_sync_at is not None:
        parts.append(_("synced {when}", when=_local_time(state.last_sync_at)))
    else:
        parts.append(_("never synced"))
    if state.rejected:
        parts.append(_("{n} rejected", n=state.rejected))
    return " · ".join(parts)


def _local_time(when: datetime) -> str:
    local = when.astimezone()
    return (
        local.strftime("%H:%M")
        if local.date() == datetime.now().astimezone().date()
        else local.strftime("%m-%d %H:%M")
    )


def run_sync_loop(
    app: App[object], store: Store, stop: threading.Event, *, interval: float = INTERVAL_S
) -> None:
    """Push and pull until ``stop`` is set or the worker is cancelled (call from a thread worker). Offline
    rounds wait longer. Every wait checks for cancellation often, so closing the app is never held up."""
    from textual.worker import get_current_worker

    from orderdesk.replication import desk_sync_state, get_link, rejections
    from sync.client import Backoff, SyncClient

    worker = get_current_worker()

    def stopped() -> bool:
        if worker.is_cancelled:
            stop.set()
        return stop.is_set()

    def pause(seconds: float) -> None:
        end = time.monotonic() + seconds
        while not stopped() and time.monotonic() < end:
            stop.wait(0.2)

    if get_link(store) is None:
        return  # not enrolled: a stand-alone desk, nothing to do

    def progress(_report: object) -> None:  # after each pushed batch: the waiting count goes down
        app.post_message(SyncStatusChanged(desk_sync_state(store), online=True, busy=True))

    client = SyncClient(store, stop=stop, backoff=Backoff(attempts=3, sleep=pause), on_progress=progress)
    try:
        app.post_message(SyncStatusChanged(desk_sync_state(store), online=True, busy=True))
        while not stopped():
            report = client.sync_once()
            if stopped():
                break
            app.post_message(SyncStatusChanged(desk_sync_state(store), online=report.error is None))
            if report.rejections:
                app.post_message(ChangesRejected(rejections(store, op_ids=report.rejections)))
            pause(interval if report.error is None else OFFLINE_INTERVAL_S)
    finally:
        client.close()


# -- wiring into the app (called from screens/app.py) ---------------------------------------------------
def start_sync(app: App[object]) -> None:
    """Start the background sync worker once the desk's store is open (a no-op for a stand-alone desk)."""
    from functools import partial

    store = getattr(app, "store", None)
    if store is None or getattr(app, "_sync_stop", None) is not None:
        return
    stop = threading.Event()
    app._sync_stop = stop  # type: ignore[attr-defined]
    app.run_worker(
        partial(run_sync_loop, app, store, stop),
        name="sync",
        group="sync",
        thread=True,
        exclusive=True,
        exit_on_error=False,
    )


def stop_sync(app: App[object]) -> None:
    stop = getattr(app, "_sync_stop", None)
    if stop is not None:
        stop.set()


def show_sync_status(app: App[object], event: SyncStatusChanged) -> None:
    """The app's handler: remember the text (new screens show it) and update the visible status line."""
    from screens.base import StatusLine

    app.sync_text = sync_status_text(event.state, online=event.online, busy=event.busy)  # type: ignore[attr-defined]
    for line in app.screen.query(StatusLine):
        line.show_sync(app.sync_text)  # type: ignore[attr-defined]


def tell_rejections(app: App[object], event: ChangesRejected) -> None:
    """The app's handler: whoever is at the desk is told which changes made here the central API refused, and
    why (the person who made one may be the one at the desk); the supervisor's queue keeps them all."""
    told = event.rejections[:MAX_TOLD]
    for r in told:
        app.notify(str(r.headline), severity="error", timeout=30, markup=False)
    if len(event.rejections) > len(told):
        app.notify(
            _(
                "{n} more rejected: a supervisor resolves them under Sync rejections.",
                n=len(event.rejections) - len(told),
            ),
            severity="error",
            timeout=30,
            markup=False,
        )


def sync_commands(app: App[object]) -> list[tuple[str, str, Callable[[], Any]]]:
    """Command-palette entries for sync: the rejection queue, for supervisors and admins."""
    session = getattr(app, "session", None)
    if session is None or not {"supervisor", "admin"} & set(session.user.roles):
        return []

    def open_queue() -> None:
        from screens.rejections import RejectionsScreen

        app.push_screen(RejectionsScreen(session))

    return [
        (_("Sync rejections"), _("Changes the central API rejected, and conflicts to resolve"), open_queue)
    ]
