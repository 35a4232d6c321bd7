"""Shared by the benchmarks: where the million-order demo desk lives, and making it when it is missing."""

from __future__ import annotations

import gc
import operator
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
DEMO_DB = OUT / "demo-1m.db"
DEMO_ORDERS = 1_000_000
DEMO_SEED = 7

if str(ROOT) not in sys.path:  # run as `python bench/x.py` from a checkout
    sys.path.insert(0, str(ROOT))


def demo_db_path(orders: int) -> Path:
    """``bench/out/demo-1m.db`` for a million orders, ``bench/out/demo-<N>.db`` otherwise."""
    return DEMO_DB if orders == DEMO_ORDERS else OUT / f"demo-{orders}.db"


def ensure_demo_db(path: Path = DEMO_DB, orders: int = DEMO_ORDERS) -> Path:
    """The demo desk at ``path``, built first (seed 7) if it is not there yet."""
    if not path.exists():
        from orderdesk.demo import build_demo

        path.parent.mkdir(parents=True, exist_ok=True)
        print(f"building {path} ({orders:,} orders) first…", flush=True)
        stats = build_demo(path, orders=orders, seed=DEMO_SEED)
        print(f"  built in {stats.seconds:.1f} s", flush=True)
    return path


def load_note() -> str:
    """The machine's load, so a slow figure on a busy box can be read as such."""
    try:
        one, five, _ = os.getloadavg()
    except OSError:  # pragma: no cover - not on every platform
        return ""
    return f"load average {one:.2f} (1 min) / {five:.2f} (5 min) on {os.cpu_count()} CPUs"


def speed_note() -> str:
    """How fast this machine runs a fixed piece of Python right now (best of five): a shared machine's speed
    swings, by up to 1.8x on the one these figures were taken on, so a figure is read against the probe taken
    with it."""
    data = [str(i) * 3 for i in range(20_000)]
    best = min(timed(lambda: sorted(hash(s) ^ len(s) for s in data)) for _ in range(5))
    return f"speed probe {best * 1000:.2f} ms (lower is faster)"


@contextmanager
def scratch_run(name: str) -> Iterator[Path]:
    """A benchmark's run: the machine's load and speed before and after it, and a scratch folder for its
    databases, removed afterwards."""
    print(f"{load_note()}; {speed_note()}", flush=True)
    folder = Path(tempfile.mkdtemp(prefix=f"orderdesk-bench-{name}-"))
    try:
        yield folder
        print(f"after: {load_note()}; {speed_note()}", flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def ms(seconds: float) -> str:
    """Seconds as right-aligned milliseconds."""
    return f"{seconds * 1000:8.2f} ms"


def summary(samples: list[float]) -> tuple[float, float]:
    """Median and 95th percentile (nearest rank) of ``samples``, in seconds."""
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, max(0, round(0.95 * len(ordered)) - 1))]
    return statistics.median(ordered), p95


def timed(fn: Callable[..., object], *args: object, **kwargs: object) -> float:
    """Seconds one call of ``fn`` takes."""
    start = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - start


def warm_runs(source: Path, runs: int, work: Callable[[Any], object]) -> tuple[float, float, int]:
    """Run ``work(store)`` on a fresh copy of the database ``source``, ``runs`` times: the best and median
    seconds of the warm runs (all but the first, which warms the process; the one run if there is one), and
    how many. Warm runs go through ``operator.call``, so that callgrind's ``--toggle-collect='_operator_call*'``
    counts them only; the fixture's objects are frozen out of the collector's way."""
    from orderdesk.store import Store
    from tests.sync_harness import copy_sqlite

    times = []
    for run in range(runs):
        copy = source.with_name(f"run{run}.db")
        copy_sqlite(source, copy)
        store = Store.open(copy)
        gc.collect()
        gc.freeze()
        try:
            start = time.perf_counter()
            if run:
                operator.call(work, store)
            else:
                work(store)
            times.append(time.perf_counter() - start)
        finally:
            gc.unfreeze()
            store.close()
    warm = times[1:] or times
    return min(warm), statistics.median(warm), len(warm)
