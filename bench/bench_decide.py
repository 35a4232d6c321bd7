"""The central API deciding a desk's scans, in process: no HTTP, no second process, so the figure is the
decision alone (what ``bench_sync.py``'s scan push spends most of its time on).

    .venv/bin/python bench/bench_decide.py [--scans 2000] [--runs 7]

A desk packs ``--scans`` serial-numbered items, 100 to an order, with the real commands; the central API's
database after the orders were pushed is kept, and its scans are decided on a fresh copy of it ``--runs``
times (best and median µs a scan). Wall clock swings with the machine; for a figure that does not, count
instructions in the second run only (the first warms the process)::

    valgrind --tool=callgrind --toggle-collect='_operator_call*' .venv/bin/python bench/bench_decide.py --runs 2

and divide the ``I refs`` it prints by the number of scans.
"""

# _common (sorted before orderdesk) puts the checkout on sys.path first.
from __future__ import annotations

import argparse
import gc
import operator
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from _common import load_note, speed_note

from orderdesk import replication as rep
from orderdesk.scanning import open_for_packing, park_order, record_scan
from orderdesk.store import Store
from tests.desks_support import ready_to_pack
from tests.sync_harness import enrol_local, seed_server


def prepare(folder: Path, n_scans: int) -> tuple[Path, str, int, list[rep.OpIn]]:
    """The central API's database with the desk's orders on it, and the desk's scans as it would push them."""
    server = Store.open(folder / "server.db", create=True)
    seed_server(server)
    desk = Store.open(folder / "desk.db", create=True)
    enrol_local(server, desk, "bench")
    orders = [ready_to_pack(desk, 100) for _ in range(max(1, n_scans // 100))]
    while rep.outbox_count(desk):
        desk_id, epoch, ops = rep.pending_ops(desk, limit=500)
        results, error = rep.decide_ops(server, desk_id, epoch, ops)
        assert error is None, error
        rep.record_outcomes(desk, [r.to_json() for r in results])
    for k, order_no in enumerate(orders):
        open_for_packing(desk, order_no=order_no, user="liu")
        for i in range(min(100, n_scans - 100 * k)):
            record_scan(desk, user="liu", code=f"(01)06901234567892(21)D{k:03d}N{i:03d}", order_no=order_no)
        park_order(desk, user="liu")  # desk-local: nothing to push
    desk_id, epoch, ops = rep.pending_ops(desk, limit=100_000)
    server.engine.dispose()
    desk.engine.dispose()
    return folder / "server.db", desk_id, epoch, ops


def decide_all(server: Store, desk_id: str, epoch: int, ops: list[rep.OpIn]) -> None:
    rest = ops
    while rest:
        results, error = rep.decide_ops(server, desk_id, epoch, rest)
        assert error is None, error
        assert all(r.status == "applied" for r in results), [r for r in results if r.status != "applied"][:1]
        rest = rest[len(results) :]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scans", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    print(f"{load_note()}; {speed_note()}", flush=True)
    folder = Path(tempfile.mkdtemp(prefix="orderdesk-bench-decide-"))
    try:
        source, desk_id, epoch, ops = prepare(folder, args.scans)
        times = []
        for run in range(args.runs):
            copy = folder / f"run{run}.db"
            shutil.copy(source, copy)
            for suffix in ("-wal", "-shm"):
                if Path(f"{source}{suffix}").exists():
                    shutil.copy(f"{source}{suffix}", f"{copy}{suffix}")
            server = Store.open(copy)
            gc.collect()
            gc.freeze()  # the fixture's objects are not the decision's garbage
            start = time.perf_counter()
            if run:  # callgrind's --toggle-collect counts this call only
                operator.call(decide_all, server, desk_id, epoch, ops)
            else:
                decide_all(server, desk_id, epoch, ops)
            times.append(time.perf_counter() - start)
            gc.unfreeze()
            server.engine.dispose()
        n = len(ops)
        best, median = min(times[1:] or times), statistics.median(times[1:] or times)
        print(
            f"[sqlite] decide scans {n:>6,} ops: best {best * 1e6 / n:6.1f} µs a scan ({n / best:,.0f} ops/s), "
            f"median {median * 1e6 / n:6.1f} µs over {max(1, len(times) - 1)} warm runs"
        )
        print(f"after: {load_note()}; {speed_note()}", flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
