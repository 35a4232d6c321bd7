"""How long ``orderdesk run`` takes to paint its first frame: launch to the login screen's text, in a real
pseudo-terminal (80x24), median of ``--runs``.

    .venv/bin/python bench/bench_startup.py [--db PATH] [--runs 10] [--timeout 30]

The program is started as ``python -m orderdesk.cli --db DESK run`` with its stdin/stdout/stderr on the pty;
the clock stops when the login screen's subtitle (English: "log in") shows up in what it writes, escape
codes stripped. Then the process is ended. The default desk is the million-order ``bench/out/demo-1m.db``;
the login screen opens the database only after its first frame, so the size should not matter.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

from _common import DEMO_DB, ROOT, ensure_demo_db, load_note, ms, summary

ANSI = re.compile(rb"\x1b\[[0-9;?<>=]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
MARKERS = (b"log in", b"Order desk")  # the login screen's subtitle (ORDERDESK_LANG=en)


def first_frame(db: Path, timeout: float) -> float:
    """Seconds from launch until the login screen's text appears on the pty."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    env = {
        **os.environ,
        "TERM": "xterm-256color",
        "COLUMNS": "80",
        "LINES": "24",
        "ORDERDESK_LANG": "en",
        "TEXTUAL_ANIMATION": "none",
    }
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "orderdesk.cli", "--db", str(db), "run"],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        cwd=ROOT,
        env=env,
        start_new_session=True,  # the pty becomes its controlling terminal
        close_fds=True,
    )
    os.close(slave)
    seen = b""
    try:
        while True:
            left = timeout - (time.perf_counter() - start)
            if left <= 0:
                raise TimeoutError(f"no login screen after {timeout:.0f} s; last output: {seen[-300:]!r}")
            ready, _, _ = select.select([master], [], [], left)
            if not ready:
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the child closed the pty (it exited)
                chunk = b""
            if not chunk:
                raise RuntimeError(f"orderdesk exited before painting (code {proc.poll()}): {seen[-500:]!r}")
            seen += chunk
            text = ANSI.sub(b"", seen)
            if any(marker in text for marker in MARKERS):
                return time.perf_counter() - start
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        os.close(master)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, default=DEMO_DB)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=30.0)
    args = parser.parse_args()
    db = ensure_demo_db(args.db) if args.db == DEMO_DB else args.db
    print(f"desk {db}; {load_note()}")
    first_frame(db, args.timeout)  # warm the .pyc files and the page cache
    samples = []
    for n in range(args.runs):
        samples.append(first_frame(db, args.timeout))
        print(f"  run {n + 1:2}: {ms(samples[-1])}", flush=True)
    median, p95 = summary(samples)
    print(f"first frame (login screen): median {ms(median).strip()}, p95 {ms(p95).strip()}, {args.runs} runs")


if __name__ == "__main__":
    main()
