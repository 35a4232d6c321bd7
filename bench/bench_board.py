"""The supervisor's board and the alert engine on a million orders.

    .venv/bin/python bench/bench_board.py [--db PATH] [--runs 50] [--seconds 8] [--in-place]

Figures (targets from issue 5):

* **board refresh, database time** — ``orderdesk.board.load_board`` (``Board.db_ms``), median and p95
  over ``--runs`` (target < 20 ms);
* **alert pass** — the first pass on the desk (a catch-up that raises every alert the desk already
  deserves, once), then steady-state passes every 30 s of business time with nothing changed and with
  twenty orders changed in between (target < 100 ms);
* **event-loop stall** — the board screen running headless on the desk for ``--seconds``, refreshing itself
  every second, while a probe on the event loop measures how late a 10 ms sleep wakes up (target < 50 ms).

The alert engine writes (alerts, notifications), so by default it works on a copy of the demo desk
(``bench/out/demo-1m-alerts.db``, made once); ``--in-place`` uses ``--db`` itself.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import sqlite3
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

from _common import DEMO_DB, OUT, ensure_demo_db, load_note, ms, summary


def copy_desk(source: Path, target: Path) -> Path:
    if target.exists():
        return target
    print(f"copying {source.name} to {target.name} (the engine writes alerts)…", flush=True)
    with sqlite3.connect(source) as conn:  # fold the WAL in so the copy is complete
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    shutil.copyfile(source, target)
    return target


def bench_engine(path: Path, runs: int) -> None:
    from sqlalchemy import text

    from orderdesk.alerts import run_alert_pass
    from orderdesk.clock import FixedClock
    from orderdesk.notify import NotifyConfig
    from orderdesk.orders import edit_order
    from orderdesk.store import Store

    clock = FixedClock(datetime.now(UTC).replace(microsecond=0))
    started = time.perf_counter()
    store = Store.open(path, clock=clock)
    print(f"open (and upgrade) the desk        {ms(time.perf_counter() - started)}")
    config = NotifyConfig()
    first = run_alert_pass(store, config)
    print(
        f"first alert pass (catch-up)        {ms(first.seconds)}   full={first.full} examined {first.examined:,}, "
        f"raised {first.raised:,}, {first.notifications:,} messages queued (digests)"
    )
    quiet, busy = [], []
    with store.read() as session:
        open_orders = [
            r[0]
            for r in session.execute(
                text("SELECT order_no FROM sales_order WHERE state IN ('draft', 'tech_review') LIMIT 5000")
            )
        ]
    rng = random.Random(5)
    for i in range(runs):
        clock.advance(seconds=30)
        quiet.append(run_alert_pass(store, config).seconds)
        if i % 5 == 0:
            clock.advance(seconds=30)
            for no in rng.sample(open_orders, 20):
                edit_order(store, order_no=no, changes={"notes": f"bench {i}"}, user="zhao")
            busy.append(run_alert_pass(store, config).seconds)
    med, p95 = summary(quiet)
    print(f"alert pass, nothing changed        {ms(med)} median {ms(p95)} p95  (target < 100 ms)")
    med, p95 = summary(busy)
    print(f"alert pass, 20 orders changed      {ms(med)} median {ms(p95)} p95")
    with store.read() as session:
        alerts = session.execute(text("SELECT count(*) FROM alert WHERE closed_at IS NULL")).scalar()
    print(f"open alerts on the desk            {alerts:>11,}")
    store.close()


def bench_board(path: Path, runs: int) -> None:
    from orderdesk.board import load_board
    from orderdesk.notify import NotifyConfig
    from orderdesk.store import Store

    store = Store.open(path)
    config = NotifyConfig()
    load_board(store, config)  # warm the page cache and the trigger check
    samples = [load_board(store, config).db_ms / 1000 for _ in range(runs)]
    med, p95 = summary(samples)
    print(f"board refresh, database time       {ms(med)} median {ms(p95)} p95  (target < 20 ms)")
    store.close()


def bench_stall(path: Path, seconds: float) -> None:
    from orderdesk.i18n import set_language
    from orderdesk.store import Store
    from orderdesk.users import list_users
    from screens.app import build_app
    from screens.board import StatusBoardScreen
    from screens.session import DeskSession, DeskUser

    set_language("en")
    store = Store.open(path)
    user = next(u for u in list_users(store) if "supervisor" in u.roles)
    session = DeskSession(
        store,
        store.workflow,
        DeskUser(user.name, ("supervisor",), "supervisor", "supervisor", frozenset({"*"})),
        path,
    )
    app = build_app(db_path=path)
    lags: list[float] = []

    async def run() -> int:
        async with app.run_test(size=(120, 40)) as pilot:
            # Let the login screen open the desk first (its worker imports the database layer), so the
            # probe measures the board, not the app's start.
            for _ in range(600):
                if app.store is not None or app.desk_error is not None:
                    break
                await pilot.pause(0.05)
            board = StatusBoardScreen(session)
            await app.push_screen(board)
            await pilot.pause(1.5)  # first refreshes: imports of the board's own modules
            loop = asyncio.get_running_loop()
            end = loop.time() + seconds
            while loop.time() < end:
                before = loop.time()
                await asyncio.sleep(0.01)
                lags.append(loop.time() - before - 0.01)
            await pilot.pause()
            return board.refreshes

    refreshes = asyncio.run(run())
    lags.sort()
    print(
        f"event loop while refreshing        {ms(max(lags))} worst  {ms(lags[int(len(lags) * 0.99)])} p99 "
        f"{ms(statistics.median(lags))} median  ({refreshes} refreshes in {seconds:g} s; target < 50 ms)"
    )
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, default=DEMO_DB)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--in-place", action="store_true", help="run the engine on --db itself")
    parser.add_argument("--skip-engine", action="store_true", help="only the board and the event loop")
    args = parser.parse_args()
    source = ensure_demo_db(args.db) if args.db == DEMO_DB else args.db
    path = source if args.in_place else copy_desk(source, OUT / f"{source.stem}-alerts.db")
    print(f"desk: {path} · {load_note()}")
    if not args.skip_engine:
        bench_engine(path, args.runs)
    bench_board(path, args.runs)
    bench_stall(path, args.seconds)


if __name__ == "__main__":
    main()
