"""A program in a real pseudo-terminal, as a person's terminal runs it: used by the pty tests and by
bench/bench_scan.py."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import signal
import struct
import subprocess
import termios
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def plain(output: bytes | bytearray) -> str:
    """Terminal output without its escape sequences, for messages."""
    text = re.sub(rb"\x1b\[[0-9;?]*[A-Za-z]", b" ", bytes(output)).decode(errors="replace")
    return " ".join(text.split())[-800:]


class Terminal:
    """A program running in a pseudo-terminal (80x24 unless told), its output collected by a reader thread."""

    def __init__(self, argv: list[str], env: dict[str, str], size: tuple[int, int] = (24, 80)) -> None:
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", size[0], size[1], 0, 0))
        self.proc = subprocess.Popen(
            argv, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=REPO, start_new_session=True
        )
        os.close(slave)
        self.output = bytearray()
        self._changed = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                return
            if not chunk:
                return
            with self._changed:
                self.output += chunk
                self._changed.notify_all()

    def mark(self) -> int:
        with self._changed:
            return len(self.output)

    def wait_for(self, text: str, since: int = 0, timeout: float = 90.0) -> int:
        """Wait until ``text`` appears in the output after position ``since``; returns where it ends. The
        timeout is only ever reached when something is broken."""
        needle = text.encode()
        end = time.monotonic() + timeout
        with self._changed:
            while True:
                found = self.output.find(needle, since)
                if found >= 0:
                    return found + len(needle)
                left = end - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise AssertionError(
                        f"{text!r} never appeared; the screen last said: {plain(self.output)}"
                    )
                self._changed.wait(min(left, 0.5))

    def write(self, data: bytes) -> int:
        return os.write(self.master, data)

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        if self.master >= 0:
            os.close(self.master)
            self.master = -1

    def quit(self, timeout: float = 20.0) -> None:
        """Ctrl+Q, as a person quits (a clean exit writes what it must), then make sure it is gone."""
        if self.proc.poll() is None:
            self.write(b"\x11")
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout)
        self.kill()
