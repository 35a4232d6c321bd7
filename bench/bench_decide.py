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
from pathlib import Path

from _common import scratch_run, warm_runs
from bench_sync import queue_scans

from orderdesk import replication as rep
from orderdesk.store import Store
from tests.sync_harness import enrol_local, seed_server


def prepare(folder: Path, n_scans: int) -> tuple[Path, str, int, list[rep.OpIn]]:
    """The central API's database with the desk's orders on it, and the desk's scans as it would push them."""
    server = Store.open(folder / "server.db", create=True)
    seed_server(server)
    desk = Store.open(folder / "desk.db", create=True)
    enrol_local(server, desk, "bench")

    def push() -> None:
        results = decide_all(server, *rep.pending_ops(desk, limit=100_000))
        rep.record_outcomes(desk, [r.to_json() for r in results])

    queue_scans(desk, n_scans, push)
    desk_id, epoch, ops = rep.pending_ops(desk, limit=100_000)
    server.engine.dispose()
    desk.engine.dispose()
    return folder / "server.db", desk_id, epoch, ops


def decide_all(server: Store, desk_id: str, epoch: int, ops: list[rep.OpIn]) -> list[rep.OpResult]:
    """Decide ``ops`` as the central API decides a push (a transaction per thousand), every one applied."""
    results: list[rep.OpResult] = []
    while len(results) < len(ops):
        decided, error = rep.decide_ops(server, desk_id, epoch, ops[len(results) :])
        assert error is None, error
        assert all(r.status == "applied" for r in decided), [r for r in decided if r.status != "applied"][:1]
        results += decided
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scans", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with scratch_run("decide") as folder:
        source, desk_id, epoch, ops = prepare(folder, args.scans)
        best, median, warm = warm_runs(
            source, args.runs, lambda server: decide_all(server, desk_id, epoch, ops)
        )
        n = len(ops)
        print(
            f"[sqlite] decide scans {n:>6,} ops: best {best * 1e6 / n:6.1f} µs a scan ({n / best:,.0f} ops/s), "
            f"median {median * 1e6 / n:6.1f} µs over {warm} warm runs"
        )


if __name__ == "__main__":
    main()
