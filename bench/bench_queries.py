"""How fast the desk answers on a million orders: ``order show`` and ``order list --state``.

    .venv/bin/python bench/bench_queries.py [--db PATH] [--runs 50] [--cli-runs 10]

In-process (``orders.show_order`` / ``orders.list_orders`` on one open store, random orders and states,
median and p95 over ``--runs``) and as whole commands (``python -m orderdesk.cli ...`` in a subprocess,
median over ``--cli-runs``: interpreter start, imports, opening the file, the query, printing).
A query slower than 50 ms in-process gets its SQL explained: full scans and temporary sort trees are
printed, which is where an index is missing.
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from _common import DEMO_DB, ROOT, ensure_demo_db, load_note, ms, summary, timed

SLOW = 0.050  # seconds, in-process


def _capture_sql(store: object, call: Callable[[], object]) -> list[tuple[str, tuple[object, ...]]]:
    """The SQL statements (with parameters) one call runs."""
    from sqlalchemy import event

    seen: list[tuple[str, tuple[object, ...]]] = []

    def before(conn: object, cursor: object, statement: str, parameters: object, *_: object) -> None:
        seen.append((statement, tuple(parameters) if isinstance(parameters, tuple | list) else ()))

    engine = store.engine  # type: ignore[attr-defined]
    event.listen(engine, "before_cursor_execute", before)
    try:
        call()
    finally:
        event.remove(engine, "before_cursor_execute", before)
    return seen


def explain(db: Path, store: object, call: Callable[[], object]) -> None:
    """Print the query plan of each statement ``call`` runs, marking scans and temp b-trees."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        for statement, params in _capture_sql(store, call):
            if not statement.lstrip().upper().startswith("SELECT"):
                continue
            plan = conn.execute(f"EXPLAIN QUERY PLAN {statement}", params).fetchall()
            flagged = [row[-1] for row in plan if "SCAN" in row[-1] or "TEMP B-TREE" in row[-1]]
            if flagged:
                print("    " + " ".join(statement.split())[:160])
                for line in flagged:
                    print(f"      -> {line}")
    finally:
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, default=DEMO_DB)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--cli-runs", type=int, default=10)
    args = parser.parse_args()
    db = ensure_demo_db(args.db) if args.db == DEMO_DB else args.db

    from orderdesk.orders import list_orders, show_order
    from orderdesk.store import Store

    store = Store.open(db)
    workflow = store.workflow
    with store.read() as session:
        conn = session.connection()
        code, next_no = conn.exec_driver_sql("SELECT desk_code, next_order_no FROM desk").one()
        counts = dict(conn.exec_driver_sql("SELECT state, count(*) FROM sales_order GROUP BY state").all())
    total = next_no - 1
    rng = random.Random(1)
    numbers = [f"SO-{code}-{rng.randint(1, total):07d}" for _ in range(args.runs)]
    states = list(workflow.states)
    picked = [rng.choice(states) for _ in range(args.runs)]
    print(f"desk {db} ({total:,} orders); {load_note()}")

    show_order(store, numbers[0], viewer="admin")  # warm up: imports, caches, the file's first pages
    list_orders(store, state=picked[0])
    results: dict[str, list[float]] = {
        "order show (in-process)": [timed(show_order, store, no, viewer="admin") for no in numbers],
        "order list --state S (in-process)": [timed(list_orders, store, state=s) for s in picked],
        "order list, no filter (in-process)": [timed(list_orders, store) for _ in range(args.runs)],
    }
    by_state = {s: timed(list_orders, store, state=s) for s in states}

    python = [sys.executable, "-m", "orderdesk.cli", "--db", str(db)]
    env = {**os.environ, "ORDERDESK_LANG": "en", "COLUMNS": "120"}

    def cli(*argv: str) -> float:
        return timed(
            subprocess.run, [*python, *argv], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL
        )

    cli("order", "show", numbers[0])  # warm the page cache and .pyc files
    results["orderdesk order show NO (CLI)"] = [cli("order", "show", no) for no in numbers[: args.cli_runs]]
    results["orderdesk order list --state S (CLI)"] = [
        cli("order", "list", "--state", s) for s in picked[: args.cli_runs]
    ]
    results["python -c pass (interpreter floor)"] = [
        timed(subprocess.run, [sys.executable, "-c", "pass"], check=True) for _ in range(args.cli_runs)
    ]

    print(f"\n{'':40}  {'median':>11}  {'p95':>11}  runs")
    for name, samples in results.items():
        median, p95 = summary(samples)
        print(f"{name:40}  {ms(median)}  {ms(p95)}  {len(samples)}")
    print("\norder list --state S, one run per state (in-process):")
    for s in states:
        print(f"  {s:20} {counts.get(s, 0):>9,} orders  {ms(by_state[s])}")

    slow = [name for name, samples in results.items() if "in-process" in name and summary(samples)[0] > SLOW]
    slow_states = [s for s in states if by_state[s] > SLOW]
    if not slow and not slow_states:
        print(f"\nevery in-process query is under {SLOW * 1000:.0f} ms")
        return
    print(f"\nslower than {SLOW * 1000:.0f} ms in-process; their plans (scans and temp b-trees):")
    if "order show (in-process)" in slow:
        explain(db, store, lambda: show_order(store, numbers[0], viewer="admin"))
    for s in slow_states[:3]:
        print(f"  list --state {s}:")
        explain(db, store, lambda s=s: list_orders(store, state=s))
    if "order list, no filter (in-process)" in slow:
        print("  list, no filter:")
        explain(db, store, lambda: list_orders(store))


if __name__ == "__main__":
    main()
