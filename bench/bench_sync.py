"""Sync throughput on loopback: push ops/s, pull changes/s, bootstrap from a million-order server, and a
desk draining queued ops while the TUI's event loop keeps ticking.

    .venv/bin/python bench/bench_sync.py [--server sqlite|postgresql|both] [--ops 2000] [--changes 20000]
                                         [--scans 500] [--station 100] [--bootstrap] [--drain 10000]
                                         [--skip-push] [--skip-pull]

The central API runs as a separate process (uvicorn), as in production, so client and server do not share a
GIL. ``--server postgresql`` starts a throwaway PostgreSQL cluster (initdb/pg_ctl, fsync on). Bootstrap uses
``bench/out/demo-1m.db`` (bench/bench_demo.py builds it). Figures are wall clock on this machine.
"""

# _common (sorted before orderdesk) puts the checkout on sys.path first.
from __future__ import annotations

import argparse
import asyncio
import json
import random
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
from _common import DEMO_DB, OUT, ROOT, scratch_run
from sqlmodel import col, select

from orderdesk import replication as rep
from orderdesk.canonical import canonical_json
from orderdesk.models import SalesOrder
from orderdesk.store import Store, sqlite_time
from tests.sync_harness import PgCluster, enrol_local, free_port, seed_server

if TYPE_CHECKING:
    from sync.client import SyncClient


def start_server(target: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    code = (
        f"import sys, uvicorn; sys.path.insert(0, {str(ROOT)!r})\n"
        "from orderdesk.store import Store; from sync.server import create_app\n"
        f"uvicorn.run(create_app(Store.open({target!r})), host='127.0.0.1', port={port}, log_level='error')\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code])
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError("server did not start")


def point(desk: Store, url: str) -> None:
    with desk.write() as session:
        session.connection().exec_driver_sql("UPDATE sync_link SET server_url = ?", (url,))


def queue_ops(desk: Store, n: int, order_no: str) -> None:
    """Put ``n`` add_note ops in the outbox directly (as the domain command would), fast."""
    with desk.write() as session:
        conn = session.connection()
        row = conn.exec_driver_sql("SELECT desk_id, epoch, next_seq FROM desk WHERE id = 1").one()
        desk_id, epoch, seq = row
        now = sqlite_time(desk.clock())
        rows = []
        for i in range(n):
            args = {"order_no": order_no, "text": f"bench note {seq + i}"}
            rows.append(
                (
                    seq + i,
                    str(uuid.uuid4()),
                    desk_id,
                    epoch,
                    "add_note",
                    canonical_json(args),
                    order_no,
                    None,
                    rep.payload_hash("add_note", args, None, "liu"),
                    now,
                    "liu",
                )
            )
        conn.exec_driver_sql(
            "INSERT INTO outbox (seq, op_id, desk_id, epoch, command, args, order_no, base_version, "
            "payload_hash, created_at, user_name) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            rows,
        )
        conn.exec_driver_sql("UPDATE desk SET next_seq = ?", (seq + n,))


def fill_change_log(server: Store, n: int) -> int:
    """``n`` change-log entries, as if desks had created orders and noted things on them: each new order (a
    full image) followed by none to two notes (entries of their own) of different lengths, so entries and
    pages of changes differ in size. Returns how many are orders."""
    with server.read() as session:
        base = rep.dump_order(session, "SO-HQ-0000001")
    assert base is not None
    sizes = random.Random(4)
    with server.write() as session:
        conn = session.connection()
        start = conn.exec_driver_sql("SELECT next_change_seq FROM sync_server").scalar_one()
        rows: list[tuple[object, ...]] = []
        i = 0
        while len(rows) < n:
            order_no = f"SO-BN-{i:07d}"
            image = dict(base, order_no=order_no, notes=f"bench {i}")
            entries = [("order", order_no, image)]
            for _ in range(sizes.randint(0, 2)):
                note = {
                    "order_no": order_no,
                    "at": base["created_at"],
                    "user_name": "liu",
                    "text": "到货后请电话联系" * sizes.randint(1, 5),
                }
                entries.append(("note", str(uuid.UUID(int=sizes.getrandbits(128))), note))
            for kind, key, img in entries[: n - len(rows)]:
                rows.append(
                    (start + len(rows), kind, key, canonical_json(img), "", None, "", base["created_at"])
                )
            i += 1
        mark = "%s" if server.url else "?"
        conn.exec_driver_sql(
            "INSERT INTO sync_change (seq, kind, key, image, event, op_id, desk_id, at) VALUES "
            f"({', '.join([mark] * 8)})",
            rows,
        )
        conn.exec_driver_sql(f"UPDATE sync_server SET next_change_seq = {mark}", (start + n,))
    return sum(row[1] == "order" for row in rows)


def queue_scans(desk: Store, n_scans: int, push: Callable[[], object]) -> None:
    """A packing station's serial scans, 100 per order, made on the desk by the real commands and left in its
    outbox; the orders are made and pushed (``push``) first."""
    from orderdesk.scanning import open_for_packing, park_order, record_scan
    from tests.desks_support import ready_to_pack

    orders = [ready_to_pack(desk, 100) for _ in range(max(1, n_scans // 100))]
    push()
    for k, no in enumerate(orders):
        open_for_packing(desk, order_no=no, user="liu")
        for i in range(min(100, n_scans - 100 * k)):
            record_scan(desk, user="liu", code=f"(01)06901234567892(21)B{k:03d}N{i:03d}", order_no=no)
        park_order(desk, user="liu")  # desk-local: nothing to push


def bench_scans(kind: str, desk: Store, client: SyncClient, n_scans: int) -> None:
    """A packing station's serial scans (what a warehouse pushes most), pushed: the central API replays each
    order's scans together (set-based), each decided as the station decided it."""
    queue_scans(desk, n_scans, client.push)
    queued = rep.outbox_count(desk)
    t = time.perf_counter()
    report = client.push()
    dt = time.perf_counter() - t
    assert report.applied == queued, report
    print(
        f"[{kind}] push scans  {queued:>8,} ops in {dt:6.2f} s = {queued / dt:8,.0f} ops/s (replayed set-based)"
    )


def bench_station(kind: str, server: Store, desk: Store, client: SyncClient, n_orders: int) -> None:
    """A packing station's day as it goes up: orders of 5 serial-numbered items, each opened, scanned, given
    its packing and shipped (with a generated waybill), then pushed: 5 scans (replayed together), a preset
    and a shipment (each replayed alone, the workflow's ship guards and the stock included) per order."""
    from orderdesk.scanning import (
        choose_packing_preset,
        open_for_packing,
        record_scan,
        ship_order,
    )
    from tests.desks_support import ready_to_pack

    orders = [ready_to_pack(desk, 5) for _ in range(n_orders)]
    client.push()
    waybills = {}
    for k, no in enumerate(orders):
        open_for_packing(desk, order_no=no, user="liu")
        for i in range(5):
            record_scan(desk, user="liu", code=f"(01)06901234567892(21)D{k:04d}N{i}", order_no=no)
        choose_packing_preset(desk, user="liu", preset="1")
        waybills[no] = ship_order(desk, user="liu").waybill
    queued = rep.outbox_count(desk)
    assert queued == 7 * n_orders, queued
    t = time.perf_counter()
    report = client.push()
    dt = time.perf_counter() - t
    assert report.applied == queued, report
    with server.read() as session:
        got = session.exec(
            select(SalesOrder.order_no, SalesOrder.state, SalesOrder.waybill).where(
                col(SalesOrder.order_no).in_(orders)
            )
        ).all()
        assert {no: (state, waybill) for no, state, waybill in got} == {
            no: ("shipped", waybill) for no, waybill in waybills.items()
        }
    print(
        f"[{kind}] push station {queued:>7,} ops in {dt:6.2f} s = {queued / dt:8,.0f} ops/s "
        f"({n_orders / dt:,.0f} orders/s: 5 scans, a preset and a shipment each)"
    )


def bench_push_pull(
    kind: str,
    n_ops: int,
    n_changes: int,
    folder: Path,
    do_push: bool,
    do_pull: bool,
    n_scans: int = 0,
    n_station: int = 0,
) -> None:
    from sync.client import SyncClient

    pg = PgCluster(fsync=True) if kind == "postgresql" else None
    folder.mkdir(parents=True, exist_ok=True)
    try:
        target = pg.url(pg.create()) if pg else str(folder / "server.db")
        server = Store.open(target, create=True)
        seed_server(server)
        desk = Store.open(folder / "desk.db", create=True)
        enrol_local(server, desk, "bench")
        proc, url = start_server(target)
        try:
            point(desk, url)
            client = SyncClient(desk)
            if do_push:
                # Notes spread over 100 orders (a realistic mix; one order with thousands of notes would
                # measure the timeline query instead).
                from orderdesk.orders import create_order

                targets = [
                    create_order(server, customer="C001", lines=[("HX-M8", 1)], user="wang").order_no
                    for _ in range(100)
                ]
                # Made on the server's own store, so published to the change log at the next push; published
                # now, as part of the set-up, and pulled by the desk.
                rep.publish_local_changes(server)
                client.pull()
                for i in range(n_ops):
                    queue_ops(desk, 1, targets[i % len(targets)])
                t = time.perf_counter()
                report = client.push()
                dt = time.perf_counter() - t
                assert report.applied == n_ops, report
                print(
                    f"[{kind}] push        {n_ops:>8,} ops in {dt:6.2f} s = {n_ops / dt:8,.0f} ops/s (each replayed)"
                )
                # The same ops again (a retry after a lost response): stored outcomes only.
                desk_id, epoch, _ = rep.pending_ops(desk)
                with server.read() as session:
                    rows = (
                        session.connection()
                        .exec_driver_sql(
                            "SELECT op_id, seq, command, args, order_no, payload_hash, user_name FROM sync_op "
                            "WHERE desk_id = %s ORDER BY seq" % ("%s" if pg else "?"),
                            (desk_id,),
                        )
                        .all()
                    )
                ops = [
                    rep.OpIn(r[0], r[1], r[2], json.loads(r[3]), r[4], None, r[5], r[6]).to_json()
                    for r in rows
                ]
                token = rep.get_link(desk).token  # type: ignore[union-attr]
                t = time.perf_counter()
                with httpx.Client(timeout=120) as http:
                    for i in range(0, len(ops), 500):
                        r = http.post(
                            url + "/v1/push",
                            json={
                                "desk_id": desk_id,
                                "epoch": epoch,
                                "ops": ops[i : i + 500],
                                "note_entries": True,
                            },
                            headers={"Authorization": f"Bearer {token}"},
                        )
                        assert r.status_code == 200, r.text
                dt = time.perf_counter() - t
                print(
                    f"[{kind}] push again  {n_ops:>8,} ops in {dt:6.2f} s = {n_ops / dt:8,.0f} ops/s (stored outcomes)"
                )
                client.pull()
                if n_scans:
                    bench_scans(kind, desk, client, n_scans)
                if n_station:
                    bench_station(kind, server, desk, client, n_station)
            if do_pull:
                client.pull()  # what is there already (the desk's own ops): the figure is the change log's
                orders = fill_change_log(server, n_changes)
                t = time.perf_counter()
                report = client.pull()
                dt = time.perf_counter() - t
                # the change log alone: the desk's own ops came before
                assert report.pulled == n_changes, report
                print(
                    f"[{kind}] pull        {report.pulled:>8,} changes in {dt:6.2f} s = {report.pulled / dt:8,.0f} changes/s "
                    f"({orders:,} new orders, {n_changes - orders:,} notes)"
                )
        finally:
            proc.kill()
            proc.wait()
            server.close()
            desk.close()
    finally:
        if pg:
            pg.stop()


def bench_bootstrap(folder: Path, source: Path) -> None:
    from sync.client import enrol

    if not source.exists():
        print(f"bootstrap: {source} is missing; build it with bench/bench_demo.py")
        return
    server_db = OUT / f"sync-server-{source.stem}.db"
    if not server_db.exists():
        print(f"copying {source} to {server_db} …", flush=True)
        src, dst = sqlite3.connect(source), sqlite3.connect(server_db)
        src.backup(dst)
        src.close()
        dst.close()
    server = Store.open(server_db)
    rep.init_server(server)
    code = rep.create_enrol_code(server, name="bench")
    orders = server.engine.connect().exec_driver_sql("SELECT count(*) FROM sales_order").scalar_one()
    server.close()
    proc, url = start_server(str(server_db))
    try:
        from sync.client import SyncClient

        desk = Store.open(folder / "boot.db", create=True)
        t0 = time.perf_counter()
        enrol(desk, server_url=url, code=code, name="bench", bootstrap=False)
        client = SyncClient(desk)
        snap = folder / "boot-snapshot.db"
        t1 = time.perf_counter()
        client._download(snap)  # the server writes a consistent copy, then streams it
        t2 = time.perf_counter()
        cpu = time.process_time()
        rep.install_snapshot(desk, snap)
        t3 = time.perf_counter()
        cpu = time.process_time() - cpu
        client.pull()
        t4 = time.perf_counter()
        client.close()
        with desk.read() as session:
            got = session.connection().exec_driver_sql("SELECT count(*) FROM sales_order").scalar_one()
        assert got == orders, (got, orders)
        size = snap.stat().st_size / 1e6
        print(
            f"[sqlite] bootstrap   {orders:>8,} orders in {t4 - t0:6.1f} s: enrol {t1 - t0:.1f} s, snapshot "
            f"{size:,.0f} MB made+downloaded {t2 - t1:.1f} s, loaded {t3 - t2:.1f} s ({cpu:.1f} s CPU), "
            f"pull {t4 - t3:.1f} s"
        )
        desk.close()
    finally:
        proc.kill()
        proc.wait()


def bench_drain(folder: Path, n_ops: int) -> None:
    """A desk app with ``n_ops`` queued: the sync worker drains them while a 20 ms timer measures how late
    the event loop runs it (the TUI's responsiveness)."""
    from orderdesk.orders import create_order
    from screens.app import build_app

    server = Store.open(folder / "drain-server.db", create=True)
    seed_server(server)
    targets = [
        create_order(server, customer="C001", lines=[("HX-M8", 1)], user="wang").order_no for _ in range(100)
    ]
    desk = Store.open(folder / "drain-desk.db", create=True)
    enrol_local(server, desk, "drain")
    server.close()
    proc, url = start_server(str(folder / "drain-server.db"))
    try:
        point(desk, url)
        for i in range(n_ops):  # spread over 100 orders, as in the push figure
            queue_ops(desk, 1, targets[i % len(targets)])
        desk.close()
        app = build_app(db_path=folder / "drain-desk.db")
        lags: list[float] = []

        async def run() -> float:
            async with app.run_test(size=(100, 30)) as pilot:
                start = time.perf_counter()
                while True:
                    t = time.perf_counter()
                    await asyncio.sleep(0.02)
                    lags.append(time.perf_counter() - t - 0.02)
                    if app.store is not None and rep.outbox_count(app.store) == 0:
                        break
                    if time.perf_counter() - start > 3600:
                        break
                await pilot.pause()
                return time.perf_counter() - start

        dt = asyncio.run(run())
        lags.sort()
        p99 = lags[int(len(lags) * 0.99)] if lags else 0
        print(
            f"[sqlite] drain       {n_ops:>8,} ops in {dt:6.1f} s; event-loop lag p99 {p99 * 1000:.1f} ms, "
            f"max {max(lags) * 1000:.1f} ms over {len(lags):,} ticks"
        )
    finally:
        proc.kill()
        proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", choices=["sqlite", "postgresql", "both"], default="sqlite")
    parser.add_argument("--ops", type=int, default=2000)
    parser.add_argument("--changes", type=int, default=20_000)
    parser.add_argument("--scans", type=int, default=500, help="serial scans for the scan push figure")
    parser.add_argument("--station", type=int, default=100, help="orders packed and shipped at a station")
    parser.add_argument("--bootstrap", action="store_true", help="bootstrap from bench/out/demo-1m.db")
    parser.add_argument("--bootstrap-db", type=Path, default=DEMO_DB)
    parser.add_argument("--drain", type=int, default=0, help="queued ops for the TUI drain test (e.g. 10000)")
    parser.add_argument("--skip-push", action="store_true")
    parser.add_argument("--skip-pull", action="store_true")
    args = parser.parse_args()
    with scratch_run("sync") as folder:
        kinds = ["sqlite", "postgresql"] if args.server == "both" else [args.server]
        for kind in kinds:
            if not (args.skip_push and args.skip_pull):
                bench_push_pull(
                    kind,
                    args.ops,
                    args.changes,
                    folder / kind,
                    not args.skip_push,
                    not args.skip_pull,
                    args.scans,
                    args.station,
                )
        if args.bootstrap:
            bench_bootstrap(folder, args.bootstrap_db)
        if args.drain:
            bench_drain(folder, args.drain)


if __name__ == "__main__":
    main()
