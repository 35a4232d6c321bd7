"""The local store: pragmas, write locks, migrations, and clear messages for a bad file."""

from __future__ import annotations

import sqlite3
import threading
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, insert, text
from sqlmodel import Session

from orderdesk.errors import StoreError
from orderdesk.models import AlertEvent, AuditRecord, OrderNote, OutboxRecord, Scan, SyncChange, SyncOp
from orderdesk.store import Store, default_db_path, insert_rows, insert_values, schema_heads


def test_pragmas_are_set_on_every_connection(store: Store) -> None:
    with store.read() as session:
        conn = session.connection()
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000
        assert conn.exec_driver_sql("PRAGMA temp_store").scalar() == 2  # statement journals in memory


def test_only_a_refetchable_write_commits_without_waiting_for_the_disk(store: Store) -> None:
    """A pulled page, or pushed ops' outcomes, can be fetched from the central API again, so that write
    commits with ``synchronous = NORMAL`` and leaves the WAL for a checkpoint later; every other transaction
    waits (FULL) and checkpoints at SQLite's default, and so does a raw connection from the pool after it. A
    plain write cannot join a refetchable one."""
    from orderdesk.store import REFETCHABLE_CHECKPOINT_PAGES

    def pragmas(session) -> tuple[int, int]:  # type: ignore[no-untyped-def]
        conn = session.connection()
        return (
            int(conn.exec_driver_sql("PRAGMA synchronous").scalar()),
            int(conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar()),
        )

    refetchable, plain = (1, REFETCHABLE_CHECKPOINT_PAGES), (2, 1000)
    for _ in range(2):
        with store.write(refetchable=True) as session:
            assert pragmas(session) == refetchable
            with store.write(refetchable=True) as inner:
                assert inner is session
        with store.write() as session:
            assert pragmas(session) == plain
        with store.write(refetchable=True) as session:
            assert pragmas(session) == refetchable
        with store.read() as session:
            assert pragmas(session) == plain
        with store.write(refetchable=True):
            pass
        raw = store.engine.raw_connection()
        try:
            cursor = raw.cursor()
            assert cursor.execute("PRAGMA synchronous").fetchone()[0] == 2
            assert cursor.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000
        finally:
            raw.close()
    with pytest.raises(RuntimeError, match="cannot join"), store.write(refetchable=True), store.write():
        pass


def test_a_connection_that_skips_fsync_is_not_raised_by_a_refetchable_write(tmp_path: Path) -> None:
    """The demo build turns fsync off on its connections; a refetchable write leaves it off, not NORMAL."""
    from sqlalchemy import event

    store = Store.open(tmp_path / "fast.db", create=True)
    store.close()
    event.listen(
        store.engine, "connect", lambda dbapi_conn, _record: dbapi_conn.execute("PRAGMA synchronous = OFF")
    )
    try:
        for refetchable in (True, False, True):
            with store.write(refetchable=refetchable) as session:
                assert session.connection().exec_driver_sql("PRAGMA synchronous").scalar() == 0
    finally:
        store.close()


def test_schema_head_matches_alembic(store: Store) -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    import orderdesk.store as store_module

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(store_module.__file__).parent / "migrations"))
    assert frozenset(ScriptDirectory.from_config(cfg).get_heads()) == schema_heads()
    assert store.schema_revisions() == schema_heads()


def test_write_takes_the_lock_up_front(store: Store) -> None:
    """A writer holds RESERVED from BEGIN, so a second writer waits instead of failing mid-transaction."""
    other = sqlite3.connect(store.path, timeout=0.05, isolation_level=None)
    with store.write() as session:
        session.exec(text("SELECT 1"))  # no write yet: only BEGIN IMMEDIATE has run
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("BEGIN IMMEDIATE")
    other.execute("BEGIN IMMEDIATE")
    other.execute("ROLLBACK")
    other.close()


def test_locked_database_gets_a_clear_message(store: Store) -> None:
    import orderdesk.store as store_module

    blocker = sqlite3.connect(store.path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    original = store_module.BUSY_TIMEOUT_MS
    try:
        store_module.BUSY_TIMEOUT_MS = 50
        fresh = Store(store.path)
        with pytest.raises(StoreError) as err, fresh.write() as session:
            session.exec(text("UPDATE desk SET next_seq = next_seq"))
        assert err.value.code == "db_locked"
        assert "busy" in str(err.value) and str(store.path) in str(err.value)
    finally:
        store_module.BUSY_TIMEOUT_MS = original
        blocker.execute("ROLLBACK")
        blocker.close()


def test_missing_file_is_explained(tmp_path: Path) -> None:
    with pytest.raises(StoreError) as err:
        Store.open(tmp_path / "nope.db")
    assert err.value.code == "db_missing" and "orderdesk init" in str(err.value)
    assert not (tmp_path / "nope.db").exists()


def test_corrupt_file_is_explained_and_left_alone(tmp_path: Path) -> None:
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"this is an Excel sheet, honest" * 100)
    before = bad.read_bytes()
    with pytest.raises(StoreError) as err:
        Store.open(bad)
    assert err.value.code == "db_corrupt"
    assert bad.read_bytes() == before


def test_damaged_pages_are_explained(store: Store) -> None:
    store.close()
    data = bytearray(store.path.read_bytes())
    data[100:4096] = b"\xff" * (4096 - 100)  # trash the schema page, keep the header
    store.path.write_bytes(bytes(data))
    for suffix in ("-wal", "-shm"):
        Path(str(store.path) + suffix).unlink(missing_ok=True)
    with pytest.raises(StoreError) as err:
        Store.open(store.path)
    assert err.value.code in ("db_corrupt", "db_error")


def test_unreadable_file_is_explained(tmp_path: Path) -> None:
    folder = tmp_path / "adir.db"
    folder.mkdir()
    with pytest.raises(StoreError) as err:
        Store.open(folder)
    assert err.value.code == "db_unreadable"


def test_foreign_sqlite_file_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE stuff (x)")
    con.commit()
    con.close()
    with pytest.raises(StoreError) as err:
        Store.open(other)
    assert err.value.code == "db_foreign"


def test_newer_schema_is_refused_and_nothing_changes(store: Store) -> None:
    with store.write() as session:
        session.exec(text("DELETE FROM alembic_version"))
        session.exec(text("INSERT INTO alembic_version (version_num) VALUES ('9999')"))
    store.close()
    before = store.path.read_bytes()
    with pytest.raises(StoreError) as err:
        Store.open(store.path)
    assert err.value.code == "db_too_new" and "newer version" in str(err.value)
    assert store.path.read_bytes() == before


def test_default_path_honours_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ORDERDESK_DB", str(tmp_path / "x.db"))
    assert default_db_path() == tmp_path / "x.db"
    monkeypatch.delenv("ORDERDESK_DB")
    assert default_db_path().name == "orderdesk.db"


def test_concurrent_writers_both_succeed(store: Store) -> None:
    """Two threads writing at once: BEGIN IMMEDIATE + busy timeout serialises them, nothing is lost."""
    from orderdesk.catalog import add_customer

    errors: list[BaseException] = []

    def worker(prefix: str) -> None:
        try:
            for i in range(20):
                add_customer(store, code=f"{prefix}{i}", name=f"客户{prefix}{i}")
        except BaseException as exc:  # pragma: no cover - the assertion below reports it
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(p,)) for p in "AB"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    with store.read() as session:
        assert session.exec(text("SELECT count(*) FROM customer")).scalar() == 40


def test_a_database_from_the_first_version_upgrades_cleanly(tmp_path: Path) -> None:
    """Build a file at the first schema revision, put data in it, then open it with this version."""
    from alembic import command
    from alembic.config import Config

    from orderdesk.store import make_engine

    path = tmp_path / "old.db"
    cfg = Config()
    cfg.set_main_option(
        "script_location", str(Path(__file__).resolve().parent.parent / "orderdesk" / "migrations")
    )
    engine = make_engine(path)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
        conn.exec_driver_sql(
            "INSERT INTO customer (code, name, contact, phone, address, region, credit_limit, settlement_terms,"
            " credit_level, notes) VALUES ('OLD1', '老客户有限公司', '', '', '', '', 100, '', 'A', '')"
        )
    engine.dispose()
    store = Store.open(path)
    assert store.schema_revisions() == schema_heads()
    with store.read() as session:
        assert session.exec(text("SELECT name FROM customer WHERE code='OLD1'")).scalar() == "老客户有限公司"


def test_rows_inserted_together_are_cut_into_statements_sqlite_can_bind() -> None:
    """``insert_values`` writes many rows to a statement, as many as the connection binds: every row lands,
    and an upsert's tail applies to rows in every statement."""
    import sqlite3

    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (k TEXT PRIMARY KEY, a INTEGER, b TEXT)")
    conn.execute("INSERT INTO t VALUES ('k3', 0, 'old')")
    conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 7)  # two rows of three to a statement
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    rows = [(f"k{i}", i, f"v{i}") for i in range(9)]
    insert_values(conn, "INSERT INTO t (k, a, b)", "ON CONFLICT (k) DO UPDATE SET b = excluded.b", rows=rows)
    assert len(statements) == 5
    assert conn.execute("SELECT k, a, b FROM t ORDER BY k").fetchall() == [
        (k, 0 if k == "k3" else a, b) for k, a, b in rows
    ]


def test_a_bound_bool_or_none_is_stored_as_it_was_without_an_adapter(store: Store) -> None:
    """Bools and None are bound through adapters (faster than the sqlite3 module's protocol lookups): still
    stored as the integers 1 and 0, as SQLAlchemy's Boolean writes and reads them, and None as NULL."""
    assert sqlite3.adapters.keys() >= {(bool, sqlite3.PrepareProtocol), (type(None), sqlite3.PrepareProtocol)}
    conn = sqlite3.connect(store.path)
    conn.execute("CREATE TABLE flags (f)")
    conn.executemany("INSERT INTO flags VALUES (?)", [(True,), (False,), (None,)])
    assert conn.execute("SELECT f, typeof(f) FROM flags ORDER BY rowid").fetchall() == [
        (1, "integer"),
        (0, "integer"),
        (None, "null"),
    ]
    conn.close()


def test_rows_inserted_together_go_in_statements_of_a_few_sizes() -> None:
    """Whatever the count of rows, ``insert_values`` uses statements of a full size or a power of two, so
    the connection compiles each size once and reuses it (a statement for exactly 300 rows, then one for
    297, would each be compiled afresh)."""
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)")
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    insert_values(conn, "INSERT INTO t (k, v)", rows=[(i, "a") for i in range(300)])
    insert_values(conn, "INSERT INTO t (k, v)", rows=[(i, "b") for i in range(1000, 1297)])
    sizes = [s.count("), (") + 1 for s in statements if s.startswith("INSERT")]
    assert sizes == [256, 32, 8, 4, 256, 32, 8, 1]
    assert conn.execute("SELECT count(*), count(DISTINCT v) FROM t").fetchone() == (597, 2)


def _sample_row(table: Any, i: int, *, left_out: bool) -> dict[str, Any]:
    """A row of every column type's kind of value (an aware time in Beijing, a date, a bool, CJK text), but for
    an integer primary key (SQLite gives it) and, if ``left_out``, the columns that have a default."""
    when = datetime(2026, 11, 23, 15, 30, 1, 123456, tzinfo=timezone(timedelta(hours=8)))
    by_type = {int: 100 + i, str: f"文本{i}", datetime: when, date: date(2026, 11, 23), bool: True}
    row = {}
    for column in table.columns:
        if (column.primary_key and column.autoincrement is True) or column.name == "id":
            continue
        if left_out and column.default is not None:
            continue
        kind = getattr(column.type, "impl", column.type).python_type  # a TypeDecorator: its impl's
        row[column.name] = by_type[kind]
    return row


@pytest.mark.parametrize(
    "model", [Scan, SyncOp, SyncChange, OrderNote, OutboxRecord, AlertEvent, AuditRecord]
)
def test_rows_sent_straight_to_sqlite_are_stored_as_sqlalchemy_stores_them(
    tmp_path: Path, model: Any
) -> None:
    """``insert_rows`` sends rows to SQLite as tuples: each value through its type's bind processor (times in
    UTC, without an offset) and the columns left out with their defaults, exactly as SQLAlchemy's insert
    stores them."""
    table = model.__table__
    stored = []
    for name, send in (
        ("fast", insert_rows),
        ("core", lambda session, model, rows: session.execute(insert(table), rows)),
    ):
        Store.open(tmp_path / f"{name}.db", create=True).close()
        engine = create_engine(f"sqlite:///{tmp_path / name}.db")  # no foreign keys: rows need no parents
        with Session(engine) as session:
            before = session.execute(text(f'SELECT coalesce(max(rowid), 0) FROM "{table.name}"')).scalar_one()
            for left_out in (False, True):
                send(
                    session,
                    model,
                    [_sample_row(table, i + 10 * left_out, left_out=left_out) for i in range(2)],
                )
            session.commit()
            rows = session.execute(
                text(f'SELECT * FROM "{table.name}" WHERE rowid > {before} ORDER BY rowid')
            )
            stored.append([tuple(r) for r in rows])
        engine.dispose()
    fast, core = stored
    assert len(fast) == 4 and fast == core


def test_a_row_the_driver_cannot_take_fails_as_sqlalchemy_reports_it(tmp_path: Path) -> None:
    """A row ``insert_rows`` cannot bind (a key missing, a value of the wrong kind) fails as a statement
    error, as SQLAlchemy's insert reports it, not as the ValueError or KeyError a replay would take for a
    malformed op; nothing is written."""
    from sqlalchemy.exc import StatementError

    store = Store.open(tmp_path / "d.db", create=True)
    good = _sample_row(SyncChange.__table__, 1, left_out=False)
    missing = {k: v for k, v in _sample_row(SyncChange.__table__, 2, left_out=False).items() if k != "key"}
    wrong = {**_sample_row(SyncChange.__table__, 3, left_out=False), "at": "yesterday"}
    for rows in ([good, missing], [good, wrong]):
        with pytest.raises(StatementError), store.write() as session:
            insert_rows(session, SyncChange, rows)
    with store.read() as session:
        assert (
            session.execute(text("SELECT count(*) FROM sync_change WHERE kind = '文本1'")).scalar_one() == 0
        )
    store.close()


def test_rows_inserted_come_after_what_the_session_added_before_them(tmp_path: Path) -> None:
    """``insert_rows`` flushes the session first, as SQLAlchemy's insert does: rows may refer to an object
    added just before them, and that object is written first."""
    store = Store.open(tmp_path / "d.db", create=True)
    table = OutboxRecord.__table__  # type: ignore[attr-defined]
    with store.write() as session:
        first = OutboxRecord(**{k: v for k, v in _sample_row(table, 1, left_out=False).items() if k != "id"})
        session.add(first)
        insert_rows(session, OutboxRecord, [_sample_row(table, i, left_out=True) for i in (2, 3)])
        assert first not in session.new
    with store.read() as session:
        seqs = session.execute(text("SELECT seq FROM outbox ORDER BY rowid")).scalars().all()
    assert seqs == [_sample_row(table, i, left_out=False)["seq"] for i in (1, 2, 3)]
    store.close()
