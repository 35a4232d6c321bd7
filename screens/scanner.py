"""The scanner line: reads a keyboard-wedge barcode scanner key by key, so that scans arriving back to back
with no gap at all each come out once, whole, in order.

Textual's ``Input`` edits a value and reports it on Enter; with a scanner typing 30 characters and Enter
several times a millisecond, scans must never share or lose a character. ``ScannerInput`` keeps its own
buffer of (character, arrival time) and cuts it only at a terminator, so the order of key events — which
Textual delivers to the focused widget one by one, in order — is the order of scans.

* Terminators: Enter (CR), Tab, LF (``ctrl+j``); CR+LF gives one scan (an empty line is ignored).
* An optional prefix (``ORDERDESK_SCANNER_PREFIX``): when it arrives, anything already in the buffer was
  not part of this scan and is dropped; the prefix itself is stripped.
* Modifier-only key events (a scanner emulating Shift, a keyboard reporting Caps Lock) are ignored.
* Timing tells a scanner from a person: a scanner's characters arrive at most ``burst_gap`` apart. A lone
  digit key (1-9) with nothing after it for ``lone_key_delay`` is a hot key (a packing preset), not the
  start of a scan; a fast run of characters after a pause drops the slow, stray typing before it; and
  every scan says whether it was keyed by hand (kept on the scan row for the audit).

``ScanAssembler`` is the logic without Textual (unit-tested with made-up times); ``ScannerInput`` is the
widget around it.
"""

from __future__ import annotations

import codecs
import contextlib
import itertools
import os
from dataclasses import dataclass
from typing import Any

from rich.cells import cell_len
from rich.text import Text
from textual import events, on
from textual.message import Message
from textual.widget import Widget

TERMINATORS = frozenset({"enter", "tab", "ctrl+j", "ctrl+m", "newline"})
MODIFIER_KEYS = frozenset(
    {
        "shift",
        "ctrl",
        "control",
        "alt",
        "meta",
        "super",
        "hyper",
        "left_shift",
        "right_shift",
        "left_control",
        "right_control",
        "left_alt",
        "right_alt",
        "left_super",
        "right_super",
        "left_meta",
        "right_meta",
        "left_hyper",
        "right_hyper",
        "caps_lock",
        "num_lock",
        "scroll_lock",
        "iso_level3_shift",
        "iso_level5_shift",
    }
)
HOTKEYS = frozenset("123456789")
BURST_GAP = 0.030  # s: a scanner's characters come closer together than this
HUMAN_GAP = 0.500  # s: a pause this long before a fast run means the run is a new scan
MIN_BURST = 4  # characters: shorter fast runs are a person's quick fingers, not a scan
LONE_KEY_DELAY = 0.080  # s: a digit alone for this long is a hot key
MAX_BUFFER = 400  # characters kept; a stuck key must not eat memory


@dataclass(frozen=True)
class Assembled:
    """One complete scan: the text, whether a person typed it, and stray typing dropped before it."""

    text: str
    typed: bool
    discarded: str = ""


class ScanAssembler:
    """Characters with arrival times in, complete scans out. No Textual here: the rules are testable."""

    def __init__(
        self,
        *,
        prefix: str = "",
        burst_gap: float = BURST_GAP,
        human_gap: float = HUMAN_GAP,
        min_burst: int = MIN_BURST,
        lone_key_delay: float = LONE_KEY_DELAY,
    ) -> None:
        self.prefix = prefix
        self.burst_gap = burst_gap
        self.human_gap = human_gap
        self.min_burst = min_burst
        self.lone_key_delay = lone_key_delay
        self.chars: list[tuple[str, float]] = []
        self.lone: float | None = None  # arrival time of a lone hot-key digit waiting to be decided
        self.dropped = ""  # what a prefix pushed out of the buffer, reported with the next scan

    @property
    def text(self) -> str:
        return "".join(c for c, _ in self.chars)

    def char(self, ch: str, at: float, *, hotkeys: bool = False) -> None:
        """A character arrived at ``at`` (seconds, monotonic)."""
        if self.lone is not None:
            self.lone = None  # something followed the digit: it is text after all
        if not self.chars and hotkeys and ch in HOTKEYS:
            self.lone = at
        self.chars.append((ch, at))
        if self.prefix and self.text.endswith(self.prefix):
            # A new scan starts here: whatever came before it belongs to no scan.
            before = self.chars[: len(self.chars) - len(self.prefix)]
            self.dropped += "".join(c for c, _ in before)
            self.chars = []
            self.lone = None
        elif len(self.chars) > MAX_BUFFER:
            self.chars = self.chars[-MAX_BUFFER:]

    def backspace(self) -> None:
        if self.chars:
            self.chars.pop()
        self.lone = None

    def clear(self) -> str:
        text, self.chars, self.lone = self.text, [], None
        return text

    def lone_key(self, now: float) -> str | None:
        """The hot-key digit, once it has been alone long enough; None if undecided or not a hot key."""
        if self.lone is None or len(self.chars) != 1 or now - self.lone < self.lone_key_delay:
            return None
        key = self.chars[0][0]
        self.clear()
        return key

    def terminator(self, at: float) -> Assembled | str | None:
        """End of a scan. Returns the scan, a lone hot-key digit ended with Enter, or None for an empty line."""
        chars, self.chars = self.chars, []
        lone, self.lone = self.lone, None
        dropped, self.dropped = self.dropped, ""
        if not chars:
            return None  # the LF of CR+LF, or Enter on an empty line
        if lone is not None and len(chars) == 1:
            return chars[0][0]
        start = self._scan_start(chars, at)
        if start:
            dropped += "".join(c for c, _ in chars[:start])
            chars = chars[start:]
        times = [t for _, t in chars] + [at]
        # A person is slow between most keys; a scanner whose characters were held up once (a busy machine
        # delivers them late) is still fast between most of them.
        slow = sum(b - a > self.burst_gap for a, b in itertools.pairwise(times))
        return Assembled("".join(c for c, _ in chars), slow * 2 > len(times) - 1, dropped)

    def _scan_start(self, chars: list[tuple[str, float]], end: float) -> int:
        """Where a scanner's fast run begins after a person's slow typing (0: the whole buffer is one scan)."""
        times = [t for _, t in chars] + [end]
        i = len(chars)
        while i > 0 and times[i] - times[i - 1] <= self.burst_gap:
            i -= 1
        # chars[i:] arrived as one fast run; chars[i - 1] came before it after a pause.
        if i > 0 and len(chars) - i >= self.min_burst and times[i] - times[i - 1] >= self.human_gap:
            return i
        return 0


def scanner_settings(environ: dict[str, str] | None = None) -> dict[str, Any]:
    """Scanner tuning from the environment: ``ORDERDESK_SCANNER_PREFIX`` (escapes allowed, e.g. ``\\x02``)
    and ``ORDERDESK_SCAN_GAP_MS`` (the longest gap between a scanner's characters, default 30)."""
    env = os.environ if environ is None else environ
    prefix = env.get("ORDERDESK_SCANNER_PREFIX", "")
    with contextlib.suppress(UnicodeDecodeError):
        prefix = codecs.decode(prefix, "unicode_escape")  # so "\x02" (STX) can be written in a setting
    settings: dict[str, Any] = {"prefix": prefix}
    gap = env.get("ORDERDESK_SCAN_GAP_MS", "").strip()
    if gap.isdigit() and 1 <= int(gap) <= 1000:
        settings["burst_gap"] = int(gap) / 1000
    return settings


class ScannerInput(Widget, can_focus=True):
    """The scan line. Posts ``Scanned`` for every complete scan and ``Hotkey`` for a lone digit key."""

    DEFAULT_CSS = """
    ScannerInput {
        height: 1;
        padding: 0 1;
        background: $boost;
    }
    ScannerInput:focus {
        background: $primary 20%;
    }
    """

    @dataclass
    class Scanned(Message):
        text: str
        typed: bool
        discarded: str
        at: float  # when the terminator arrived (monotonic), for the latency trace

    @dataclass
    class Hotkey(Message):
        key: str

    @dataclass
    class _DecideLone(Message):
        at: float

    def __init__(self, *, prompt: str = "▸", id: str | None = None, **settings: Any) -> None:
        super().__init__(id=id)
        self.assembler = ScanAssembler(**settings)
        self.prompt = prompt
        self.hotkeys = False  # the screen turns digit hot keys on while an order is open
        self.typing = False  # a person types a code by hand: digits are text, not hot keys
        self.typing_prompt = "⌨"

    # -- keys ------------------------------------------------------------------------------------------
    def on_key(self, event: events.Key) -> None:
        key = event.key
        if key in TERMINATORS:
            self._consume(event)
            self._terminate(event.time)
        elif event.character and (event.is_printable or event.character in self.assembler.prefix):
            self._consume(event)
            self.assembler.char(event.character, event.time, hotkeys=self.hotkeys and not self.typing)
            if self.assembler.lone is not None:
                self.set_timer(
                    self.assembler.lone_key_delay, lambda: self.post_message(self._DecideLone(event.time))
                )
            self.refresh()
        elif key in MODIFIER_KEYS:
            self._consume(event)  # a modifier on its own types nothing
        elif key == "backspace" and self.assembler.chars:
            self._consume(event)
            self.assembler.backspace()
            self.refresh()
        elif key == "escape" and (self.assembler.chars or self.typing):
            self._consume(event)
            self.assembler.clear()
            self.typing = False
            self.refresh()
        # Anything else (function keys, ctrl+...) goes on to the screen's and the app's bindings.

    def on_paste(self, event: events.Paste) -> None:
        """Pasted text: one scan per line, as if typed."""
        event.stop()
        for line in event.text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", "\n").split("\n"):
            if line.strip():
                self.post_message(self.Scanned(line, True, "", event.time))

    def _consume(self, event: events.Key) -> None:
        event.stop()
        event.prevent_default()

    def _terminate(self, at: float) -> None:
        done = self.assembler.terminator(at)
        typing, self.typing = self.typing, False
        if isinstance(done, str):
            self.post_message(self.Hotkey(done))
        elif done is not None:
            self.post_message(self.Scanned(done.text, done.typed or typing, done.discarded, at))
        self.refresh()

    @on(_DecideLone)
    def _decide_lone(self, message: _DecideLone) -> None:
        # Posted to our own queue, so every key that arrived before it has been handled first.
        if self.assembler.lone != message.at:
            return
        pending = getattr(self.app, "_message_queue", None)
        if pending is not None and not pending.empty():
            # Keys may still be on their way from the app: decide once they are through.
            self.set_timer(0.01, lambda: self.post_message(self._DecideLone(message.at)))
            return
        key = self.assembler.lone_key(message.at + self.assembler.lone_key_delay)
        if key is not None:
            self.post_message(self.Hotkey(key))
            self.refresh()

    def start_typing(self) -> None:
        """A person is about to type a code: digits are text until Enter or Escape."""
        self.typing = True
        self.assembler.lone = None
        self.refresh()

    # -- drawing ---------------------------------------------------------------------------------------
    def render(self) -> Text:
        prompt = self.typing_prompt if self.typing else self.prompt
        text = self.assembler.text
        room = max(1, self.size.width - cell_len(prompt) - 3)
        while cell_len(text) > room:
            text = text[1:]
        out = Text(f"{prompt} ", style="bold")
        out.append(text)
        out.append("█" if self.has_focus else " ")
        return out
