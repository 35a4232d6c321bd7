"""Test harness for sync: a real central API on loopback (uvicorn in a thread), a throwaway PostgreSQL
cluster, a "world" of one server and enrolled desks built once and copied per test, and an HTTP transport
that loses requests or responses on cue."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from orderdesk import replication as rep
from orderdesk.catalog import add_customer, add_product
from orderdesk.clock import FixedClock
from orderdesk.store import Store
from orderdesk.users import add_user
from sync.client import Backoff, SyncClient

ROOT = Path(__file__).resolve().parent.parent
USERS = {
    "admin": ["admin"],
    "wang": ["sales"],
    "liu": ["warehouse"],
    "zhao": ["planner"],
    "sun": ["supervisor"],
    "zhou": ["qc"],
    "li": ["sales"],  # a second salesperson: decides the change requests wang files
    "chen": ["finance"],
}
READY_ORDER = "SO-HQ-0000001"  # prepared in ready_to_ship with every line scanned and a waybill


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- the central API on loopback -------------------------------------------------------------------------
class LoopbackServer:
    """uvicorn serving ``create_app(store)`` in a thread on a fixed loopback port; stop and start it at will."""

    def __init__(self, store: Store, port: int | None = None) -> None:
        from sync.server import create_app

        self.app = create_app(store)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def store(self) -> Store:
        return self.app.state.store

    @store.setter
    def store(self, value: Store) -> None:
        from orderdesk.replication import init_server

        init_server(value)
        self.app.state.store = value

    def start(self) -> LoopbackServer:
        import uvicorn

        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        config = uvicorn.Config(self.app, log_level="error", lifespan="off")
        self._server = uvicorn.Server(config)
        self._server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the loopback server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=20)
        self._server = self._thread = None


# -- a transport that fails on cue -----------------------------------------------------------------------
@dataclass
class FaultyTransport(httpx.BaseTransport):
    """Wraps a real transport. ``faults`` is consumed one per request: ``None`` passes, ``"drop"`` fails
    before sending (nothing reaches the server), ``"lose"`` sends and lets the server commit, then loses
    the response, ``"503"`` answers busy without sending, ``"garble"`` sends and damages the body the server
    answered (its bytes as sent, gzipped or not) on the way back. ``only`` limits faults to paths containing
    it."""

    faults: list[str | None] = field(default_factory=list)
    only: str = ""
    inner: httpx.BaseTransport = field(default_factory=httpx.HTTPTransport)
    seen: list[tuple[str, str, int | None]] = field(default_factory=list)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        fault = None
        if self.faults and (not self.only or self.only in request.url.path):
            fault = self.faults.pop(0)
        if fault == "drop":
            self.seen.append((request.url.path, "drop", None))
            raise httpx.ConnectError("fault: dropped before sending", request=request)
        if fault == "503":
            self.seen.append((request.url.path, "503", 503))
            return httpx.Response(503, json={"error": {"code": "busy"}}, request=request)
        response = self.inner.handle_request(request)
        if fault == "lose":
            response.read()
            response.close()
            self.seen.append((request.url.path, "lose", response.status_code))
            raise httpx.ReadError("fault: response lost after the server answered", request=request)
        if fault == "garble":
            raw = bytearray(b"".join(response.iter_raw()))
            response.close()
            middle = slice(len(raw) // 3, 2 * len(raw) // 3)
            raw[middle] = bytes(b ^ 0xFF for b in raw[middle])
            self.seen.append((request.url.path, "garble", response.status_code))
            return httpx.Response(response.status_code, headers=response.headers, content=bytes(raw))
        self.seen.append((request.url.path, "ok", response.status_code))
        return response

    def close(self) -> None:
        self.inner.close()


def no_wait() -> Backoff:
    """Backoff that does not sleep (tests never wait on the wall clock)."""
    return Backoff(attempts=4, sleep=lambda _s: None)


# -- PostgreSQL ------------------------------------------------------------------------------------------
def pg_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class PgCluster:
    """A throwaway PostgreSQL cluster in a temp folder on a free loopback port (run as ``postgres`` when
    we are root: PostgreSQL refuses to run as root)."""

    def __init__(self, *, fsync: bool = False) -> None:
        binaries = pg_bin()
        if binaries is None:
            why = "PostgreSQL server binaries (initdb) are not installed: apt-get install postgresql"
            if os.environ.get("ORDERDESK_REQUIRE_PG"):  # CI: the PostgreSQL tests must run, never skip
                pytest.fail(why)
            pytest.skip(why)
        self.bin = binaries
        self.dir = Path(tempfile.mkdtemp(prefix="orderdesk-pg-"))
        self.port = free_port()
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            self.as_user = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.dir, "postgres")
        self._run("initdb", "-D", str(self.dir / "data"), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c max_connections=200"
        opts += "" if fsync else " -c fsync=off"  # throwaway test data need not survive a power cut
        self._run(
            "pg_ctl", "-D", str(self.dir / "data"), "-l", str(self.dir / "log"), "-o", opts, "-w", "start"
        )
        self._n = 0

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run([*self.as_user, str(self.bin / tool), *args], check=True, capture_output=True)

    def url(self, db: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{db}"

    def execute(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{self.port}/postgres", autocommit=True) as c:
            c.execute(sql)

    def create(self, template: str | None = None) -> str:
        self._n += 1
        name = f"t{self._n}"
        self.execute(f"CREATE DATABASE {name}" + (f" TEMPLATE {template}" if template else ""))
        return name

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._run("pg_ctl", "-D", str(self.dir / "data"), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)


# -- a world: one central API store and enrolled desks ---------------------------------------------------
def seed_server(store: Store) -> None:
    """Users, customers and products made on the central API itself (they reach desks by snapshot)."""
    rep.init_server(store)
    for name, roles in USERS.items():
        add_user(store, name=name, roles=roles, pin="0000" if name == "admin" else "1234")
    add_customer(
        store, code="C001", name="苏州精工机械有限公司", address="苏州工业园区", credit_limit=2_000_000_000
    )
    add_customer(
        store, code="C002", name="宁波海拓贸易有限公司", address="宁波鄞州区", credit_limit=2_000_000_000
    )
    add_product(
        store,
        sku="HX-M8",
        name="六角螺栓 M8x40",
        unit_price=150,
        barcodes=["6901234567892"],
        stock_on_hand=5000,
    )
    add_product(
        store,
        sku="BR-6204",
        name="深沟球轴承 6204",
        unit_price=1250,
        barcodes=["4006381333931"],
        stock_on_hand=5,
    )
    from orderdesk.orders import create_order, edit_order, move_order

    create_order(store, customer="C001", lines=[("HX-M8", 10)], user="wang", route="from_stock")
    move_order(store, order_no=READY_ORDER, to="sign_contract", user="wang")
    move_order(store, order_no=READY_ORDER, to="pick_from_stock", user="liu")
    edit_order(store, order_no=READY_ORDER, changes={"waybill": "SF1234567890"}, user="liu")
    with store.write() as session:  # the scanning area's record_scan is not here yet: mark lines scanned
        session.connection().exec_driver_sql("UPDATE order_line SET scanned_qty = quantity")
    rep.publish_local_changes(store)


def enrol_local(server: Store, desk: Store, name: str) -> rep.Enrolment:
    """Enrol and bootstrap a desk through the core (what the HTTP routes call)."""
    enrolment = rep.enrol_desk(server, code=rep.create_enrol_code(server, name=name), name=name)
    rep.link_desk(desk, server_url="http://unset", enrolment=enrolment)
    with tempfile.TemporaryDirectory() as folder:
        snap = Path(folder) / "snap.db"
        rep.write_snapshot(server, snap)
        rep.install_snapshot(desk, snap)
    return enrolment


def copy_sqlite(src: Path, dst: Path) -> None:
    a, b = sqlite3.connect(src), sqlite3.connect(dst)
    try:
        a.backup(b)
    finally:
        a.close()
        b.close()


@dataclass
class WorldTemplate:
    folder: Path
    desks: list[str]
    server_db: str | None = None  # PostgreSQL template database name, else server.db in folder
    pg: PgCluster | None = None


def build_template(folder: Path, desks: list[str], pg: PgCluster | None = None) -> WorldTemplate:
    folder.mkdir(parents=True, exist_ok=True)
    clock = FixedClock(datetime(2026, 11, 20, 2, 0, tzinfo=UTC))
    db_name = None
    if pg is not None:
        db_name = pg.create()
        server = Store.open(pg.url(db_name), create=True, clock=clock)
    else:
        server = Store.open(folder / "server.db", create=True, clock=clock)
    seed_server(server)
    for name in desks:
        desk = Store.open(folder / f"{name}.db", create=True, clock=clock)
        enrol_local(server, desk, name)
        desk.close()
    server.close()
    return WorldTemplate(folder, desks, db_name, pg)


@dataclass
class World:
    """A running central API and desk stores (each desk with its own clock)."""

    server: LoopbackServer
    desks: dict[str, Store]
    clocks: dict[str, FixedClock]
    folder: Path
    clients: list[SyncClient] = field(default_factory=list)

    @property
    def store(self) -> Store:
        return self.server.store

    def client(self, name: str, *, transport: httpx.BaseTransport | None = None, **kwargs: Any) -> SyncClient:
        kwargs.setdefault("backoff", no_wait())
        c = SyncClient(self.desks[name], transport=transport, **kwargs)
        self.clients.append(c)
        return c

    def sync(self, name: str, **kwargs: Any) -> Any:
        report = self.client(name, **kwargs).sync_once()
        assert report.error is None, str(report.error)
        return report

    def close(self) -> None:
        for c in self.clients:
            c.close()
        self.server.stop()
        for d in self.desks.values():
            d.close()
        self.server.store.close()


def open_world(template: WorldTemplate, folder: Path) -> World:
    """Copies of the template's server and desks, with the server running on loopback."""
    folder.mkdir(parents=True, exist_ok=True)
    server_clock = FixedClock(datetime(2026, 11, 20, 8, 0, tzinfo=UTC))
    if template.pg is not None:
        assert template.server_db is not None
        server_store = Store.open(template.pg.url(template.pg.create(template.server_db)), clock=server_clock)
    else:
        copy_sqlite(template.folder / "server.db", folder / "server.db")
        server_store = Store.open(folder / "server.db", clock=server_clock)
    server = LoopbackServer(server_store).start()
    desks, clocks = {}, {}
    for name in template.desks:
        copy_sqlite(template.folder / f"{name}.db", folder / f"{name}.db")
        clocks[name] = FixedClock(datetime(2026, 11, 20, 8, 0, tzinfo=UTC))
        desks[name] = Store.open(folder / f"{name}.db", clock=clocks[name])
        with desks[name].write() as session:
            session.connection().exec_driver_sql("UPDATE sync_link SET server_url = ?", (server.url,))
    return World(server, desks, clocks, folder)


def add_notes(store: Store, texts: Iterable[str]) -> list[str]:
    """Each of ``texts`` as a note on ``READY_ORDER`` (by liu), in order; returns them."""
    from orderdesk.orders import add_note

    texts = list(texts)
    for t in texts:
        add_note(store, order_no=READY_ORDER, text=t, user="liu")
    return texts


def server_note_texts(world: World) -> list[str]:
    """The notes on ``READY_ORDER`` at the central API, oldest first."""
    from sqlalchemy import text

    with world.store.read() as session:
        rows = session.connection().execute(
            text(
                "SELECT text FROM order_note JOIN sales_order ON sales_order.id = order_note.order_id "
                "WHERE sales_order.order_no = :no ORDER BY order_note.id"
            ),
            {"no": READY_ORDER},
        )
        return [r[0] for r in rows]


def table_count(store: Store, table: str) -> int:
    with store.read() as session:
        return int(session.connection().exec_driver_sql(f"SELECT count(*) FROM {table}").scalar_one())


def converge(w: World, state: Any = None) -> None:
    """Sync every desk until each has sent all it had and holds the server's ``state`` (by default every
    synced entity's image: ``business_state``)."""
    state = state or business_state
    for name in ("a", "b", "a"):
        w.sync(name)
    for name in w.desks:
        assert rep.outbox_count(w.desks[name]) == 0
        assert state(w.desks[name]) == state(w.store)


def business_state(store: Store) -> dict[str, Any]:
    """Every synced entity's image (no local ids), to compare a desk with the server."""
    from sqlmodel import col, select

    from orderdesk.models import AppUser, Customer, OrderNote, Product, SalesOrder

    out: dict[str, Any] = {}
    with store.read() as session:
        for kind, model, key in (
            ("order", SalesOrder, "order_no"),
            ("product", Product, "sku"),
            ("customer", Customer, "code"),
            ("user", AppUser, "name"),
        ):
            for value in session.exec(select(getattr(model, key))).all():
                image = rep.DUMPERS[kind](session, value)
                if image is not None and kind == "user":
                    image.pop("pin_hash", None)  # desk-local PINs may differ by design
                    image.pop("badge_hash", None)
                out[f"{kind}:{value}"] = image
        # Notes, by the op that added them (None for one from before 0008), each with its order and text,
        # and the time the central API gave it: a desk's own note ends with that time too.
        notes = session.exec(
            select(
                OrderNote.op_id, SalesOrder.order_no, OrderNote.at, OrderNote.user_name, OrderNote.text
            ).join(SalesOrder, col(SalesOrder.id) == OrderNote.order_id)
        ).all()
        out["notes"] = sorted(
            ((op_id, no, at.astimezone(UTC).isoformat(), who, text) for op_id, no, at, who, text in notes),
            key=repr,
        )
    return out


@contextlib.contextmanager
def write_lock(path: Path) -> Iterator[sqlite3.Connection]:
    """Hold SQLite's write lock on ``path`` (another program writing) until the block ends (which may come on
    another thread: a sync client retries, and so backs off, on its sending thread)."""
    con = sqlite3.connect(path, isolation_level=None, timeout=10, check_same_thread=False)
    con.execute("BEGIN IMMEDIATE")
    try:
        yield con
    finally:
        con.execute("ROLLBACK")
        con.close()


@contextlib.contextmanager
def store_write_lock(store: Store) -> Iterator[object]:
    """Hold the writer of a central API store until the block ends, as another program would: SQLite's write
    lock, or PostgreSQL's advisory write lock (every orderdesk write takes it first)."""
    if store.url is None:
        with write_lock(store.path) as con:
            yield con
        return
    import psycopg

    from orderdesk.store import PG_WRITE_LOCK

    with psycopg.connect(store.url.replace("postgresql+psycopg://", "postgresql://")) as con:
        con.execute("SELECT pg_advisory_xact_lock(%s)", (PG_WRITE_LOCK,))
        try:
            yield con
        finally:
            con.rollback()
