"""Scan-to-ship: the warehouse's home screen, made for a person with a barcode scanner and twenty minutes of
training. Scan the order, scan the items, choose the box, ship; a big ✓ or ✗ answers every scan.

Every scan and key goes into one queue, handled in order by one thread worker at a time that runs the
core's ``PackingStation`` (domain commands: each scan is committed before its ✓ is shown) and posts an
``Outcome``; handlers on the event loop only draw. Nothing here touches the database on the event loop, and
nothing imports the core's database modules until a worker needs them.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import shlex
import subprocess
import time
import uuid
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.geometry import Region
from textual.message import Message
from textual.screen import Screen
from textual.strip import Strip
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import Footer, Static

from orderdesk.heap import freeze_heap
from orderdesk.i18n import Msg, _, current_language
from screens.base import ReportsWorkerErrors, StatusLine, fit, localize_bindings
from screens.scanner import ScannerInput, scanner_settings

if TYPE_CHECKING:
    from orderdesk.scanning import PackingStation, PackingView, StationOutcome
    from screens.session import DeskSession

# Big glyphs, 5 rows: readable from a step away.
GLYPHS = {
    "ok": ("        ██", "       ██ ", " ██   ██  ", "  ██ ██   ", "   ███    "),
    "error": (" ██    ██ ", "  ██  ██  ", "   ████   ", "  ██  ██  ", " ██    ██ "),
    "notice": ("    ██    ", "    ██    ", "    ██    ", "          ", "    ██    "),
    "idle": ("          ", "  ▄▄▄▄▄▄  ", "  █ ▌▐ █  ", "  ▀▀▀▀▀▀  ", "          "),
}
W_NO, W_SKU, W_QTY, W_SCANNED, W_STATUS, W_NAME_MIN = 2, 12, 5, 9, 10, 10
ERROR_BELL_GAP = 0.15  # s between the two beeps of a ✗
TICK = 0.005  # s: the stall meter's beat (benchmark trace only)
REPAINT_PERIOD = 1 / 250  # s: the shortest time between two repaints of this screen


@dataclass(frozen=True)
class Job:
    """One thing for the station to do, in arrival order."""

    kind: str  # scan | command | resume
    text: str = ""
    arg: str | None = None
    typed: bool = False
    key: str = ""  # idempotency key: a retried job never counts twice
    at: float = 0.0  # when its Enter arrived (monotonic), for the latency trace
    queued: float = 0.0


def sound_settings(environ: dict[str, str] | None = None) -> dict[str, str]:
    """``ORDERDESK_SOUND`` (bell | off), ``ORDERDESK_SOUND_OK`` / ``ORDERDESK_SOUND_ERROR`` (commands)."""
    env = os.environ if environ is None else environ
    return {
        "mode": env.get("ORDERDESK_SOUND", "bell").strip().lower() or "bell",
        "ok": env.get("ORDERDESK_SOUND_OK", "").strip(),
        "error": env.get("ORDERDESK_SOUND_ERROR", "").strip(),
    }


class ScanToShipScreen(ReportsWorkerErrors, Screen[None]):
    """The packing desk: scan an order, scan its items, choose the packing, ship and print the label."""

    CSS_PATH = "scan_to_ship.tcss"
    AUTO_FOCUS = "#scanner"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f9", "ship", "Ship", id="scan.ship"),
        Binding("f4", "undo", "Undo", id="scan.undo"),
        Binding("f3", "type_code", "Type", id="scan.type"),
        Binding("f6", "park", "Set aside", id="scan.next"),
        Binding("f8", "reset", "Start over", id="scan.reset"),
        Binding("f7", "reprint", "Reprint label", id="scan.reprint", show=False),
        Binding("f2", "switch_language", "中文/EN", id="scan.switch_language"),
    ]

    @dataclass
    class Outcome(Message):
        outcome: StationOutcome
        at: float
        steps: tuple[float, ...] = ()  # (queued, worker started, done) for the benchmark trace

    @dataclass
    class StationReady(Message):
        presets: tuple[tuple[str, str, str], ...]  # (id, label_en, label_zh)
        require_preset: bool

    class Drained(Message):
        """The queue is empty and the worker has finished."""

    @dataclass
    class LabelDone(Message):
        order_no: str
        path: Path | None
        printed: bool
        error: Msg | None

    def __init__(self, session: DeskSession) -> None:
        super().__init__()
        self.session = session
        self.jobs: deque[Job] = deque()
        self.draining = False
        self.station: PackingStation | None = None  # made and used by the worker thread only
        self.view: PackingView | None = None
        self.presets: tuple[tuple[str, str, str], ...] = ()
        self.require_preset = True
        self.last_outcome: StationOutcome | None = None
        self.last_shipped = ""
        self.sound = sound_settings()
        self._after_drain: list[Any] = []
        self._shown: dict[str, Any] = {}  # what each fixed line shows now, so unchanged lines are not redrawn
        self._trace_path = os.environ.get("ORDERDESK_SCAN_TRACE", "").strip()
        self._trace: dict[str, list[Any]] = {"latency_ms": [], "stalls": []}
        self._tick_last = self._tick_cpu = self._tick_proc = self._gc_started = 0.0
        localize_bindings(self)

    @property
    def _update_timer(self) -> Timer:
        # Textual repaints a screen at most 60 times a second (TEXTUAL_FPS): a ✓ could wait up to 17 ms for
        # its slot after the line it typed was drawn. This screen repaints as soon as it is idle, at most
        # every REPAINT_PERIOD; repaints stay coalesced, so a burst of scans does not draw more often.
        timer = self.__dict__.get("_repaint_timer")
        if timer is None:
            timer = self.set_interval(REPAINT_PERIOD, self._on_timer_update, name="screen_update", pause=True)
            self.__dict__["_repaint_timer"] = timer
        return timer

    # -- layout ----------------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Static(id="scan-order")
        yield Static(id="scan-meta")
        yield PackLines(id="scan-lines")
        with Horizontal(id="verdict", classes="-idle"):
            yield Static(id="verdict-glyph")
            yield Static(id="verdict-text")
        yield Static(id="scan-next")
        yield ScannerInput(id="scanner", prompt=_("Scan") + " ▸", **scanner_settings())
        yield StatusLine(self.session, self.session.db_path.name)
        yield Footer()

    def on_mount(self) -> None:
        self._show_view(None)
        self._show_verdict("idle", _("Opening…"), "", None)
        self.enqueue(Job("resume"))
        if self._trace_path:
            self._start_trace()

    def on_screen_resume(self) -> None:
        self.query_one(ScannerInput).focus()

    def on_unmount(self) -> None:
        if self._trace_path:
            with contextlib.suppress(ValueError):
                gc.callbacks.remove(self._gc_trace)
            with contextlib.suppress(OSError):
                Path(self._trace_path).write_text(json.dumps(self._trace), encoding="utf-8")

    # -- the queue -------------------------------------------------------------------------------------
    def enqueue(self, job: Job) -> None:
        """Add a job; start the worker unless one is already draining the queue."""
        self.jobs.append(job)
        if not self.draining:
            self.draining = True
            self.drain()

    @work(thread=True, exit_on_error=False, group="scan")
    def drain(self) -> None:
        """Handle queued jobs one by one, in order, and post each outcome; never touches widgets."""
        try:
            try:
                station = self._station()
            except Exception as exc:  # a broken settings or presets file: say so for every waiting scan
                self._refuse_all(exc)
                return
            while True:
                try:
                    job = self.jobs.popleft()
                except IndexError:
                    break
                started = time.monotonic()
                try:
                    outcome = self._run(station, job)
                except Exception as exc:  # a bug must not lose the rest of the queue
                    outcome = self._crash(station, exc)
                self.post_message(self.Outcome(outcome, job.at, (job.queued, started, time.monotonic())))
                station.after()
        finally:
            self.post_message(self.Drained())

    def _station(self) -> PackingStation:
        if self.station is None:
            from orderdesk.scanning import PackingStation

            self.station = PackingStation(self.session.store, self.session.user.name)
            self.post_message(
                self.StationReady(
                    tuple((p.id, p.label_en, p.label_zh) for p in self.station.presets),
                    self.station.settings.require_preset,
                )
            )
        return self.station

    def _refuse_all(self, exc: Exception) -> None:
        from orderdesk.errors import OrderdeskError
        from orderdesk.i18n import msg
        from orderdesk.scanning import StationOutcome

        detail = exc.message if isinstance(exc, OrderdeskError) else msg("{detail}", detail=str(exc))
        while self.jobs:
            job = self.jobs.popleft()
            self.post_message(
                self.Outcome(
                    StationOutcome(False, msg("The packing desk cannot start"), detail, None, "error", 0),
                    job.at,
                )
            )

    @staticmethod
    def _run(station: PackingStation, job: Job) -> StationOutcome:
        if job.kind == "resume":
            return station.resume()
        if job.kind == "command":
            return station.command(job.text, job.arg, idem_key=job.key)
        return station.scan(job.text, typed=job.typed, idem_key=job.key)

    @staticmethod
    def _crash(station: PackingStation, exc: Exception) -> StationOutcome:
        from orderdesk.errors import OrderdeskError
        from orderdesk.i18n import msg
        from orderdesk.scanning import StationOutcome

        station.seq += 1
        detail = (
            exc.message
            if isinstance(exc, OrderdeskError)
            else msg("{detail}", detail=str(exc) or type(exc).__name__)
        )
        return StationOutcome(False, msg("Something went wrong"), detail, station.view, "error", station.seq)

    @on(Drained)
    def _drained(self) -> None:
        self.draining = False
        if self.jobs:
            self.draining = True
            self.drain()
            return
        pending, self._after_drain = self._after_drain, []
        for action in pending:
            action()

    @on(StationReady)
    def _station_ready(self, event: StationReady) -> None:
        freeze_heap()  # the station's screen and what it loaded live as long as the app
        self.presets = event.presets
        self.require_preset = event.require_preset
        self._show_next()

    # -- input -----------------------------------------------------------------------------------------
    @on(ScannerInput.Scanned)
    def _scanned(self, event: ScannerInput.Scanned) -> None:
        event.stop()
        if event.discarded:
            self.notify(_("Ignored {text} typed before the scan.", text=event.discarded[:40]), timeout=4)
        self.enqueue(
            Job(
                "scan",
                event.text,
                typed=event.typed,
                key=str(uuid.uuid4()),
                at=event.at,
                queued=time.monotonic(),
            )
        )

    @on(ScannerInput.Hotkey)
    def _hotkey(self, event: ScannerInput.Hotkey) -> None:
        event.stop()
        self._command("PRESET_KEY", event.key)

    def _command(self, name: str, arg: str | None = None) -> None:
        self.enqueue(Job("command", name, arg, key=str(uuid.uuid4()), at=time.monotonic()))

    def action_undo(self) -> None:
        self._command("UNDO")

    def action_ship(self) -> None:
        self._command("SHIP")

    def action_reset(self) -> None:
        self._command("CANCEL")

    def action_park(self) -> None:
        self._command("NEXT")

    def action_type_code(self) -> None:
        self.query_one(ScannerInput).start_typing()

    def action_reprint(self) -> None:
        if not self.last_shipped:
            self.notify(_("No label printed here yet."), timeout=4)
            return
        self.make_label(self.last_shipped, None)

    def action_switch_language(self) -> None:
        # Never rebuild the screen with scans still queued: switch once they are all handled.
        # The app rebuilds this screen: run it on the app's queue, never on this screen's own.
        if self.draining or self.jobs:
            self._after_drain.append(lambda: self.app.call_later(self.app.action_switch_language))
        else:
            self.app.call_later(self.app.action_switch_language)

    # -- outcomes --------------------------------------------------------------------------------------
    @on(Outcome)
    def _outcome(self, event: Outcome) -> None:
        outcome = event.outcome
        self.last_outcome = outcome
        self.view = outcome.view
        with self.app.batch_update():
            self._show_view(outcome.view, outcome.line_no)
            kind = "ok" if outcome.ok else "error" if outcome.ok is False else "notice"
            if outcome.kind == "info" and outcome.ok is None:
                kind = "idle"
            who = self.session.role_labels(outcome.who) if outcome.who else ""
            self._show_verdict(kind, str(outcome.title), str(outcome.detail or ""), who, outcome.seq)
        scanner = self.query_one(ScannerInput)
        scanner.hotkeys = outcome.view is not None and bool(self.presets)
        self._beep(outcome.ok)
        if outcome.shipment is not None:
            freeze_heap()  # what the last order left behind is long-lived too
            self.last_shipped = outcome.shipment.order_no
            self.make_label(outcome.shipment.order_no, outcome.shipment.label)
        if self._trace_path and event.at:
            at, steps, handled = event.at, event.steps, time.monotonic()
            self.call_after_refresh(lambda: self._traced(at, steps, handled))

    def _show_view(self, view: PackingView | None, line_no: int | None = None) -> None:
        head = self.query_one("#scan-order", Static)
        meta = self.query_one("#scan-meta", Static)
        width = max(20, self.app.size.width - 2)
        if view is None:
            self._set(head, fit(_("No order open"), width, style="bold"))
            self._set(meta, fit(_("Scan the order barcode on the pick list."), width, style="dim"))
        else:
            text = Text(view.order_no, style="bold")
            text.append(f"  {view.customer}")
            text.append(f"  {view.state_label}", style="dim")
            if view.rush:
                text.append("  " + _("RUSH"), style="bold red")
            self._set(head, fit(text.plain, width, style="bold") if text.cell_len > width else text)
            parts = [
                _("Scanned {units}/{total}", units=view.units_scanned, total=view.units_total),
                _("Packing: {preset}", preset=self._preset_name(view.packing_preset) or "—"),
                _("Waybill: {waybill}", waybill=view.waybill or "—"),
            ]
            multiplier = self.last_outcome.multiplier if self.last_outcome else 1
            if multiplier > 1:
                parts.append(f"×{multiplier}")
            self._set(meta, fit("  ·  ".join(parts), width))
        self._fill_lines(view, line_no)
        self._show_next()

    def _set(self, widget: Static, content: Text) -> None:
        """Update a fixed-size line only if it changed, and without a layout pass (they are costly)."""
        key = (content.plain, str(content.style), tuple(str(span) for span in content.spans))
        if self._shown.get(widget.id or "") != key:
            self._shown[widget.id or ""] = key
            widget.update(content, layout=False)

    def _preset_name(self, preset_id: str) -> str:
        for pid, en, zh in self.presets:
            if pid == preset_id:
                return f"{pid} {zh if current_language() == 'zh' else en}"
        return preset_id

    def _fill_lines(self, view: PackingView | None, line_no: int | None) -> None:
        self.query_one(PackLines).show(view, line_no)

    def _show_verdict(
        self, kind: str, title: str, detail: str, who: str | None, seq: int | None = None
    ) -> None:
        box = self.query_one("#verdict", Horizontal)
        for name in ("ok", "error", "notice", "idle"):
            box.set_class(name == kind, f"-{name}")
        self._set(self.query_one("#verdict-glyph", Static), Text("\n".join(GLYPHS[kind])))
        text = Text(title, style="bold")
        if seq is not None:
            text.append(f"  #{seq:04d}", style="dim")
        if detail:
            text.append("\n" + detail)
        if who:
            text.append("\n" + _("Who must act: {who}", who=who), style="bold")
        self._set(self.query_one("#verdict-text", Static), text)

    def _show_next(self) -> None:
        view = self.view
        line = self.query_one("#scan-next", Static)
        width = max(20, self.app.size.width - 2)
        if view is None:
            self._set(line, fit(_("Next: scan an order barcode, or type its number and press Enter."), width))
            return
        if view.complete and view.blockers:
            blocker = view.blockers[0]
            who = self.session.role_labels(blocker.who)
            self._set(
                line,
                fit(
                    _("Cannot ship: {reason} ({who})", reason=str(blocker.message), who=who),
                    width,
                    style="bold red",
                ),
            )
        elif not view.complete:
            self._set(
                line, fit(_("Next: scan the items. Still needed: {items}", items=view.still_needed()), width)
            )
        elif self.require_preset and not view.packing_preset:
            keys = " · ".join(
                f"{pid} {zh if current_language() == 'zh' else en}" for pid, en, zh in self.presets[:9]
            )
            self._set(
                line,
                fit(_("Next: choose the packing (number key): {presets}", presets=keys), width, style="bold"),
            )
        elif not view.waybill:
            self._set(
                line,
                fit(
                    _("Next: scan the carrier's waybill, or press F9 to ship with the local carrier."),
                    width,
                    style="bold",
                ),
            )
        else:
            self._set(line, fit(_("Next: press F9 or scan SHIP to ship."), width, style="bold"))

    # -- sound -----------------------------------------------------------------------------------------
    def _beep(self, ok: bool | None) -> None:
        mode = self.sound["mode"]
        if mode == "off" or ok is None:
            return
        command = self.sound["ok" if ok else "error"]
        if command:
            self.play(command)
            return
        self.app.bell()
        if not ok:
            self.set_timer(ERROR_BELL_GAP, self.app.bell)

    @work(thread=True, exit_on_error=False, group="sound")
    def play(self, command: str) -> None:
        """Run the configured sound command in a thread, so the screen never waits for it."""
        # A missing or broken player must not stop the packing.
        with contextlib.suppress(OSError, ValueError, subprocess.TimeoutExpired):
            subprocess.run(shlex.split(command), capture_output=True, timeout=5, check=False)

    # -- labels ----------------------------------------------------------------------------------------
    @work(thread=True, exit_on_error=False, group="label")
    def make_label(self, order_no: str, label: Any) -> None:
        """Write the shipping label into the labels folder and print it if a print command is set."""
        from orderdesk.errors import OrderdeskError
        from orderdesk.labels import print_file
        from orderdesk.scanning import ShippingSettings, label_file_name, shipping_label, write_label

        store = self.session.store
        try:
            settings = ShippingSettings.from_env()
            data = label if label is not None else shipping_label(store, order_no, settings=settings)
            folder = settings.labels_folder(store.path)
            path = write_label(
                data,
                folder / label_file_name(data.order_no, data.waybill, settings.label_format),
                settings.label_format,
            )
        except OrderdeskError as exc:
            self.post_message(self.LabelDone(order_no, None, False, exc.message))
            return
        if not settings.print_command:
            self.post_message(self.LabelDone(order_no, path, False, None))
            return
        try:
            print_file(path, settings.print_command)
        except OrderdeskError as exc:
            self.post_message(self.LabelDone(order_no, path, False, exc.message))
            return
        self.post_message(self.LabelDone(order_no, path, True, None))

    @on(LabelDone)
    def _label_done(self, event: LabelDone) -> None:
        if event.error is not None:
            where = _(" Saved as {path}.", path=str(event.path)) if event.path else ""
            self.notify(
                _(
                    "Label for {order_no} not printed: {reason}",
                    order_no=event.order_no,
                    reason=str(event.error),
                )
                + where,
                severity="error",
                timeout=15,
            )
            self.app.bell()
        elif event.printed:
            self.notify(_("Label for {order_no} printed.", order_no=event.order_no), timeout=5)
        else:
            self.notify(
                _("Label for {order_no} saved: {path}", order_no=event.order_no, path=str(event.path)),
                timeout=8,
            )

    # -- benchmark trace (ORDERDESK_SCAN_TRACE=file: bench/bench_scan.py reads it) ----------------------
    def _start_trace(self) -> None:
        self._tick_last, self._tick_cpu = time.monotonic(), time.thread_time()
        self._tick_proc = time.process_time()
        gc.callbacks.append(self._gc_trace)
        asyncio.get_running_loop().call_later(TICK, self._tick)

    def _gc_trace(self, phase: str, info: dict[str, int]) -> None:
        # Full collections are what stall a Python program longest: note when and how long.
        if phase == "start":
            self._gc_started = time.monotonic()
        elif info.get("generation") == 2:
            took = round((time.monotonic() - self._gc_started) * 1000, 2)
            self._trace.setdefault("gc2", []).append((self._gc_started, took))

    def _traced(self, at: float, steps: tuple[float, ...], handled: float) -> None:
        now = time.monotonic()
        self._trace["latency_ms"].append(round((now - at) * 1000, 3))
        self._trace.setdefault("steps_ms", []).append(
            [round((t - at) * 1000, 3) for t in (*steps, handled, now)]
        )
        self._trace.setdefault("enter_at", []).append(at)

    def _tick(self) -> None:
        # A bare event-loop callback (not a Textual timer), so measuring stalls costs next to nothing.
        now, cpu, proc = time.monotonic(), time.thread_time(), time.process_time()
        late = (now - self._tick_last - TICK) * 1000
        busy = (cpu - self._tick_cpu) * 1000  # this thread's own work in that time; the rest was waiting
        process = (proc - self._tick_proc) * 1000  # every thread of the process: the rest, other programs
        self._tick_last, self._tick_cpu, self._tick_proc = now, cpu, proc
        if late > 1:
            self._trace["stalls"].append((now, round(late, 2), round(busy, 2), round(process, 2)))
        if self.is_attached:
            asyncio.get_running_loop().call_later(TICK, self._tick)


class PackLines(Widget):
    """The order's lines: #, SKU, name, quantity, scanned, status. A scan repaints only the rows it changed
    (a DataTable repaints every visible row on any cell change, too slow for a ✓ within a frame)."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "pack-lines--header",
        "pack-lines--odd",
        "pack-lines--current",
        "pack-lines--done",
        "pack-lines--blocked",
    }
    DEFAULT_CSS = """
    PackLines {
        height: 1fr;
    }
    PackLines > .pack-lines--header {
        text-style: bold;
        background: $panel;
    }
    PackLines > .pack-lines--odd {
        background: $boost;
    }
    PackLines > .pack-lines--current {
        background: $accent 30%;
        text-style: bold;
    }
    PackLines > .pack-lines--done {
        color: $text-success;
    }
    PackLines > .pack-lines--blocked {
        color: $text-error;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.rows: list[tuple[str, ...]] = []  # cell texts per line, as shown
        self.kinds: list[str] = []  # "" | done | blocked, per line
        self.current: int | None = None  # index of the line the last scan changed
        self.top = 0  # first line shown below the header
        self._order = ""
        self._cache: dict[tuple[Any, ...], Strip] = {}

    def widths(self) -> tuple[int, ...]:
        width = self.size.width or self.app.size.width
        name = max(W_NAME_MIN, width - (W_NO + W_SKU + W_QTY + W_SCANNED + W_STATUS) - 6)
        return (W_NO, W_SKU, name, W_QTY, W_SCANNED, W_STATUS)

    def show(self, view: PackingView | None, line_no: int | None) -> None:
        """Show ``view``'s lines; repaint only the rows that changed (and the current-row highlight)."""
        rows = [self._cells(line) for line in view.lines] if view else []
        kinds = (
            [("done" if ln.done else "blocked" if ln.blocked else "") for ln in view.lines] if view else []
        )
        order = view.order_no if view else ""
        current = (
            next((i for i, ln in enumerate(view.lines) if ln.line_no == line_no), self.current)
            if view
            else None
        )
        changed = {
            i
            for i, r in enumerate(rows)
            if i >= len(self.rows) or self.rows[i] != r or self.kinds[i] != kinds[i]
        }
        whole = order != self._order or len(rows) != len(self.rows)
        if current != self.current:
            changed |= {i for i in (current, self.current) if i is not None}
        self.rows, self.kinds, self._order, self.current = rows, kinds, order, current
        visible = max(1, self.size.height - 1)
        top = self.top if not whole else 0
        if current is not None and not top <= current < top + visible:
            top = max(0, current - visible + 1) if current >= top + visible else current
        if whole or top != self.top:
            self.top = top
            self.refresh()
            return
        for i in changed:
            if top <= i < top + visible:
                self.refresh(Region(0, i - top + 1, self.size.width, 1))

    def _cells(self, line: Any) -> tuple[str, ...]:
        if line.done:
            status = "✓ " + _("done")
        elif line.blocked:
            status = "⚠ " + _("hazard")
        elif line.hazard != "none":
            status = "⚠ " + _("released")
        else:
            status = ""
        return (
            str(line.line_no),
            line.sku,
            line.name,
            str(line.quantity),
            f"{line.scanned}/{line.quantity}",
            status,
        )

    def cells(self) -> list[list[str]]:
        """What each row shows (for tests and the curious)."""
        return [list(r) for r in self.rows]

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        if y == 0:
            header = ("#", _("SKU"), _("Name"), _("Qty"), _("Scanned"), "")
            return self._strip(header, width, ("pack-lines--header",))
        index = self.top + y - 1
        if index >= len(self.rows):
            return Strip.blank(width, self.rich_style)
        classes = ["pack-lines--odd"] if index % 2 else []
        if self.kinds[index]:
            classes.append(f"pack-lines--{self.kinds[index]}")
        if index == self.current:
            classes.append("pack-lines--current")
        return self._strip(self.rows[index], width, tuple(classes))

    def _strip(self, cells: tuple[str, ...], width: int, classes: tuple[str, ...]) -> Strip:
        key = (cells, width, classes, self.app.current_theme.name)
        strip = self._cache.get(key)
        if strip is None:
            style = self.rich_style
            for name in classes:
                style += self.get_component_rich_style(name, partial=True)
            text = Text(style=style, no_wrap=True, overflow="crop", end="")
            text.append(" ")
            for i, (cell, w) in enumerate(zip(cells, self.widths(), strict=False)):
                piece = fit(cell, w)
                piece.align("right" if i in (3, 4) else "left", w)
                text.append_text(piece)
                text.append(" ")
            strip = Strip(text.render(self.app.console), text.cell_len).crop_extend(0, width, style)
            if len(self._cache) > 500:
                self._cache.clear()
            self._cache[key] = strip
        return strip

    def on_resize(self) -> None:
        self._cache.clear()
        self.refresh()
