"""The desk's local store: one SQLite file, WAL, synchronous=FULL (NORMAL for a write whose every effect the
central API can send again), write transactions that take the write lock up front (``BEGIN IMMEDIATE``), and
every failure of the file turned into a clear message."""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections import namedtuple
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from functools import cache, cached_property, lru_cache, reduce
from operator import iadd, itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orderdesk.clock import Clock, utcnow
from orderdesk.errors import StoreError
from orderdesk.i18n import msg

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine
    from sqlmodel import Session, SQLModel

    from orderdesk.workflow import Workflow

MIGRATIONS = Path(__file__).parent / "migrations" / "versions"
BUSY_TIMEOUT_MS = 5000
SQLITE_HEADER = b"SQLite format 3\x00"
# On PostgreSQL every writer takes this transaction-level advisory lock first, so writes commit one at a
# time, in the order they began: the audit chain and the sync change log stay gap-free and in order.
PG_WRITE_LOCK = 0x6F72646572  # "order"
# Connection info key: the synchronous level a refetchable write lowered, restored when the connection is
# returned to the pool.
_SYNCHRONOUS_AFTER = "synchronous_after_refetchable"
# Connection info key: the WAL auto-checkpoint threshold a refetchable write raised, restored likewise.
_CHECKPOINT_AFTER = "wal_autocheckpoint_after_refetchable"
# The WAL auto-checkpoint threshold (pages of 4 KiB) of a refetchable write. At SQLite's default of 1,000 pages,
# every pulled page of about a megabyte of orders checkpointed the WAL as it committed, copying the same index
# pages to the database file again and again: a quarter of the time applying 20,000 pulled orders. The pull
# checkpoints once it is caught up (``Store.checkpoint``); this bounds the WAL of a long backlog meanwhile.
REFETCHABLE_CHECKPOINT_PAGES = 16_384

# A bool bound to a statement is stored as the integer it is (1 or 0) either way. Without an adapter, the
# sqlite3 module first asks it for ``__conform__`` and its protocol for ``__adapt__``, two failed lookups
# that make a bool cost five times an int to bind: a pulled order binds several.
sqlite3.register_adapter(bool, int)
# None likewise: bound as NULL either way, but without an adapter each None costs the failed lookups (the
# protocol's one raises and formats an AttributeError), about 0.3 µs, and rows are full of them. An empty
# dict's ``get`` returns None for None without leaving C (a lambda costs twice as much over an int's bind).
sqlite3.register_adapter(type(None), {}.get)

# The write transaction this thread is inside (its store, its session, whether it is refetchable), so a domain
# command run inside an outer transaction (the central API replaying a desk's op under a savepoint) joins it
# instead of opening its own.
_ambient: ContextVar[tuple[Store, Session, bool] | None] = ContextVar(
    "orderdesk_ambient_session", default=None
)


def is_database_url(value: Path | str) -> bool:
    """True for ``postgresql://…`` / ``postgresql+psycopg://…`` / ``sqlite:///…`` (not a plain file path)."""
    return isinstance(value, str) and value.split(":", 1)[0] in ("postgresql", "postgresql+psycopg", "sqlite")


def _masked(url: str) -> str:
    """The URL with any password replaced, for messages."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@cache
def schema_heads() -> frozenset[str]:
    """The newest schema revisions this code knows (Alembic heads), read from the migration files without
    importing Alembic so that opening an up-to-date desk stays fast. A test checks it against Alembic."""
    import ast

    revisions: set[str] = set()
    parents: set[str] = set()
    for path in MIGRATIONS.glob("*.py"):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            target = node.target if isinstance(node, ast.AnnAssign) else None
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                target = node.targets[0]
            if not isinstance(target, ast.Name) or node.value is None:
                continue
            if target.id == "revision":
                revisions.add(ast.literal_eval(node.value))
            elif target.id == "down_revision":
                value = ast.literal_eval(node.value)
                parents.update([value] if isinstance(value, str) else list(value or ()))
    return frozenset(revisions - parents)


def default_db_path() -> Path:
    """``ORDERDESK_DB`` or ``orderdesk.db`` in the user's data directory."""
    env = os.environ.get("ORDERDESK_DB")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_path

    return user_data_path("orderdesk", appauthor=False) / "orderdesk.db"


def explain_db_error(exc: BaseException, path: Path | str) -> StoreError:
    """Turn a sqlite3/SQLAlchemy error into a message that says what happened and what to do."""
    text = str(getattr(exc, "orig", None) or exc).lower()
    if "locked" in text or "busy" in text or "lock timeout" in text:
        return StoreError(
            msg(
                "The database {path} is busy: another program is writing to it. Wait a moment and try again.",
                path=str(path),
            ),
            code="db_locked",
        )
    if "not a database" in text or "malformed" in text or "corrupt" in text:
        return StoreError(
            msg(
                "The database {path} is damaged or is not an orderdesk database. Restore it from a backup "
                "or point --db at another file.",
                path=str(path),
            ),
            code="db_corrupt",
        )
    if "disk is full" in text or "disk i/o" in text or "full" in text:
        return StoreError(
            msg(
                "Cannot write to {path}: the disk is full or failing. Nothing was changed; free some space "
                "and try again.",
                path=str(path),
            ),
            code="disk_full",
        )
    if "readonly" in text or "read-only" in text:
        return StoreError(
            msg("The database {path} is read-only: check the file's permissions.", path=str(path)),
            code="db_readonly",
        )
    if "connection refused" in text or "could not connect" in text or "connection failed" in text:
        return StoreError(
            msg("Cannot reach the database server {path}: is it running?", path=str(path)),
            code="db_unreachable",
        )
    if "unable to open" in text or "permission" in text:
        return StoreError(
            msg(
                "Cannot open the database {path}: check that the folder exists and that you may read and "
                "write it.",
                path=str(path),
            ),
            code="db_unreadable",
        )
    return StoreError(
        msg("Database error on {path}: {detail}", path=str(path), detail=str(exc)), code="db_error"
    )


@contextmanager
def db_errors(path: Path | str) -> Iterator[None]:
    """Re-raise database driver errors as ``StoreError`` with a readable message."""
    from sqlalchemy.exc import DBAPIError

    try:
        yield
    except (sqlite3.Error, DBAPIError) as exc:
        raise explain_db_error(exc, path) from exc
    except OSError as exc:
        raise explain_db_error(exc, path) from exc


def _check_file(path: Path) -> None:
    """Refuse files that are clearly not SQLite before SQLAlchemy gets a chance to print a traceback."""
    if path.is_dir():
        raise StoreError(
            msg("{path} is a folder, not a database file.", path=str(path)), code="db_unreadable"
        )
    if not path.exists():
        return
    try:
        with path.open("rb") as fh:
            header = fh.read(16)
    except OSError as exc:
        raise explain_db_error(exc, path) from exc
    if header and header != SQLITE_HEADER:
        raise explain_db_error(sqlite3.DatabaseError("file is not a database"), path)


def make_engine(path: Path) -> Engine:
    """An engine with the pragmas every connection needs; transactions are begun by us, not the driver."""
    from sqlalchemy import create_engine, event

    engine = create_engine(
        f"sqlite:///{path}",
        connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (see _on_begin)
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA synchronous = FULL")
        cur.execute("PRAGMA foreign_keys = ON")
        # A statement that fires a trigger (the board's tallies) keeps a statement journal of every page it
        # changes. Once one statement's journal passes 64 KiB, SQLite moves it to a temp file for the rest of
        # the transaction, and every page then costs a write() call: a pulled order took 34 us in SQLite,
        # 17 us with the journal kept in memory. Temp tables of large sorts are kept in memory too; the
        # board reads tallies and every large query is served by an index.
        cur.execute("PRAGMA temp_store = MEMORY")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # A deferred transaction that later upgrades to a write gets SQLITE_BUSY in WAL mode despite the
        # busy timeout, so writers take the lock up front.
        options = conn.get_execution_options()
        # A refetchable write (see Store.write): set before BEGIN, as SQLite allows no change inside one.
        if options.get("sqlite_refetchable"):
            level = int(conn.exec_driver_sql("PRAGMA synchronous").scalar() or 0)
            if level > 1:  # FULL; a connection that skips fsync altogether (the demo build) stays so
                conn.exec_driver_sql("PRAGMA synchronous = NORMAL")
                conn.info[_SYNCHRONOUS_AFTER] = level
            pages = int(conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() or 0)
            if 0 < pages < REFETCHABLE_CHECKPOINT_PAGES:
                conn.exec_driver_sql(f"PRAGMA wal_autocheckpoint = {REFETCHABLE_CHECKPOINT_PAGES}")
                conn.info[_CHECKPOINT_AFTER] = pages
        conn.exec_driver_sql(f"BEGIN {options.get('sqlite_begin', 'DEFERRED')}")

    @event.listens_for(engine, "checkin")
    def _on_checkin(dbapi_conn: sqlite3.Connection | None, record: Any) -> None:
        # Back to waiting for the disk before anything else uses the connection (raw_connection users too).
        level = record.info.pop(_SYNCHRONOUS_AFTER, None)
        if level is not None and dbapi_conn is not None:
            dbapi_conn.execute(f"PRAGMA synchronous = {int(level)}")
        pages = record.info.pop(_CHECKPOINT_AFTER, None)
        if pages is not None and dbapi_conn is not None:
            dbapi_conn.execute(f"PRAGMA wal_autocheckpoint = {int(pages)}")

    return engine


def make_pg_engine(url: str) -> Engine:
    """An engine for the central API on PostgreSQL (``postgresql+psycopg://…``)."""
    from sqlalchemy import create_engine

    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    # A write waits for another at most as long as on SQLite, then fails as busy (503: the desk retries),
    # rather than hanging a request, and the desk behind it, on a writer that never finishes.
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=8,
        max_overflow=8,
        connect_args={"options": f"-c lock_timeout={BUSY_TIMEOUT_MS}"},
    )


class Store:
    """A desk's SQLite store (or the central API's, SQLite or PostgreSQL when given a database URL).
    Use ``read()`` for queries and ``write()`` for domain commands."""

    def __init__(
        self, path: Path | str, *, clock: Clock = utcnow, workflow_path: Path | str | None = None
    ) -> None:
        self.url: str | None = None
        if is_database_url(path) and str(path).startswith("sqlite:///"):
            path = str(path).removeprefix("sqlite:///")
        elif is_database_url(path):
            self.url = str(path)
        self.dialect = "postgresql" if self.url else "sqlite"
        self.path = Path(path).expanduser() if self.url is None else Path("postgresql")
        # Where the data lives, for messages: the file, or the server URL without its password.
        self.location = str(self.path) if self.url is None else _masked(self.url)
        self.clock = clock
        self.workflow_path = Path(workflow_path) if workflow_path else None
        self._engine: Engine | None = None

    # -- opening ---------------------------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        path: Path | str,
        *,
        create: bool = False,
        clock: Clock = utcnow,
        workflow_path: Path | str | None = None,
    ) -> Store:
        """Open (and upgrade) an existing desk; with ``create`` make a new one if the file is missing."""
        store = cls(path, clock=clock, workflow_path=workflow_path)
        if store.url is None and not store.path.exists() and not create:
            raise StoreError(
                msg(
                    "No orderdesk database at {path}. Create one with `orderdesk init` or a demo desk with "
                    "`orderdesk demo`, or point --db / ORDERDESK_DB at an existing file.",
                    path=str(store.path),
                ),
                code="db_missing",
            )
        if create and store.url is None:
            try:
                store.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise explain_db_error(exc, store.path) from exc
        store.migrate()
        return store

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            if self.url is not None:
                with db_errors(self.location):
                    self._engine = make_pg_engine(self.url)
                return self._engine
            _check_file(self.path)
            with db_errors(self.path):
                self._engine = make_engine(self.path)
        return self._engine

    def checkpoint(self) -> None:
        """Copy what the WAL holds into the database file now, as far as readers allow (SQLite's passive
        checkpoint; nothing on PostgreSQL). After a run of refetchable writes (a pull), which leave it to this,
        so the next write that waits for the disk does not pay for theirs."""
        if self.url is not None:
            return
        with db_errors(self.path):
            raw = self.engine.raw_connection()
            try:
                raw.driver_connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            finally:
                raw.close()

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def schema_revisions(self) -> frozenset[str] | None:
        """The schema revisions recorded in the file, or None for an empty file."""
        from sqlalchemy import inspect, text

        if self.url is not None:
            with db_errors(self.location), self.engine.connect() as conn:
                tables = inspect(conn).get_table_names()
                if "alembic_version" not in tables:
                    if tables:
                        raise StoreError(
                            msg("{path} is a database, but not an orderdesk one.", path=self.location),
                            code="db_foreign",
                        )
                    return None
                return frozenset(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())
        with db_errors(self.path), self.engine.connect() as conn:
            has_table = conn.exec_driver_sql(
                "SELECT 1 FROM sqlite_master WHERE type='table' AND name='alembic_version'"
            ).first()
            if not has_table:
                tables = conn.exec_driver_sql(
                    "SELECT count(*) FROM sqlite_master WHERE type='table'"
                ).scalar()
                if tables:
                    raise StoreError(
                        msg("{path} is a SQLite database, but not an orderdesk one.", path=str(self.path)),
                        code="db_foreign",
                    )
                return None
            return frozenset(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())

    def migrate(self) -> None:
        """Create the schema or upgrade it to the newest revisions; refuse a file written by a newer version."""
        current = self.schema_revisions()
        if current == schema_heads():
            self._ensure_desk()
            return
        from alembic import command
        from alembic.config import Config
        from alembic.script import ScriptDirectory

        cfg = Config()
        cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
        known = {rev.revision for rev in ScriptDirectory.from_config(cfg).walk_revisions()}
        unknown = sorted((current or frozenset()) - known)
        if unknown:
            raise StoreError(
                msg(
                    "The database {path} was written by a newer version of orderdesk (schema {revision}). "
                    "Install the newer orderdesk to open it; nothing was changed.",
                    path=self.location,
                    revision=", ".join(unknown),
                ),
                code="db_too_new",
            )
        with db_errors(self.location), self.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "heads")
        self._ensure_desk()

    def _ensure_desk(self) -> None:
        from sqlmodel import select

        from orderdesk.models import Desk

        with self.read() as session:
            if session.exec(select(Desk)).first() is not None:
                return
        with self.write() as session:
            if session.exec(select(Desk)).first() is None:
                session.add(Desk(desk_id=str(uuid.uuid4()), desk_code="D1", created_at=self.clock()))

    # -- sessions --------------------------------------------------------------------------------------
    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only session (deferred transaction, rolled back at the end). Inside ``write()`` on this
        thread it is the write's own session, so a command sees what it has written so far."""
        from sqlmodel import Session

        outer = _ambient.get()
        if outer is not None and outer[0] is self:
            yield outer[1]
            return
        with db_errors(self.location), Session(self.engine, expire_on_commit=False) as session:
            yield session

    @contextmanager
    def write(self, *, refetchable: bool = False) -> Iterator[Session]:
        """A write session under ``BEGIN IMMEDIATE``: committed if the block ends cleanly, else rolled back.

        On PostgreSQL the transaction first takes ``PG_WRITE_LOCK``, so writers are serialised as on SQLite.
        A ``write()`` nested inside another on the same thread joins it: the outermost one commits.

        ``refetchable``: everything the transaction writes can be fetched from the central API again (a
        pulled page, which moves the cursor with it; outcomes of pushed ops, which a push of the same ops
        gets again; or, once the change log is pruned past the cursor, a fresh snapshot). On SQLite it then
        commits without waiting for the disk (``synchronous = NORMAL``, for this transaction only): a power
        cut can undo it but never corrupt the file, and a later transaction that does wait for the disk
        makes it durable too, as the WAL is written in order. Nor does it checkpoint the WAL at SQLite's
        default threshold (see ``REFETCHABLE_CHECKPOINT_PAGES``): whoever runs many of them calls
        ``checkpoint()`` after. A plain ``write()`` cannot join it.
        """
        from sqlmodel import Session

        outer = _ambient.get()
        if outer is not None and outer[0] is self:
            if outer[2] and not refetchable:
                raise RuntimeError("a write that must reach the disk cannot join a refetchable one")
            yield outer[1]
            return
        with db_errors(self.location):
            bind = self.engine.execution_options(sqlite_begin="IMMEDIATE", sqlite_refetchable=refetchable)
            with Session(bind, expire_on_commit=False) as session:
                token = _ambient.set((self, session, refetchable))
                try:
                    if self.url is not None:
                        session.connection().exec_driver_sql(f"SELECT pg_advisory_xact_lock({PG_WRITE_LOCK})")
                    yield session
                    session.commit()
                except BaseException:
                    session.rollback()
                    raise
                finally:
                    _ambient.reset(token)

    @cached_property
    def workflow(self) -> Workflow:
        """The workflow this desk runs (the company's own file if configured, else the default)."""
        from orderdesk.guards import GUARD_NAMES
        from orderdesk.workflow import default_workflow_path, load_workflow

        path = self.workflow_path or Path(os.environ.get("ORDERDESK_WORKFLOW") or default_workflow_path())
        return load_workflow(path, known_guards=GUARD_NAMES)


# -- facts read once per transaction ---------------------------------------------------------------------
CACHES = "transaction_caches"  # Session.info key


def transaction_cache(session: Session, name: str) -> dict[Any, Any]:
    """A dict for facts a transaction reads once and then keeps (the audit chain's tip, users, the natural keys
    of row ids): the central API decides hundreds of ops in one. Emptied on every rollback, a savepoint's
    included, and when the transaction ends, so nothing in it outlives the rows it was read from."""
    _forget_caches_on_rollback()
    caches: dict[str, dict[Any, Any]] = session.info.setdefault(CACHES, {})
    return caches.setdefault(name, {})


@cache
def _forget_caches_on_rollback() -> None:
    from sqlalchemy import event
    from sqlalchemy.orm import Session as OrmSession
    from sqlalchemy.orm import SessionTransaction

    def on_rollback(session: OrmSession, _previous: SessionTransaction) -> None:
        session.info.pop(CACHES, None)

    def on_end(session: OrmSession, transaction: SessionTransaction) -> None:
        if transaction.parent is None:
            session.info.pop(CACHES, None)

    event.listen(OrmSession, "after_soft_rollback", on_rollback)
    event.listen(OrmSession, "after_transaction_end", on_end)


# -- reading many rows by key ----------------------------------------------------------------------------
IN_CHUNK = 500  # keys per ``IN (...)`` list: well under SQLite's and PostgreSQL's bound-parameter limits


def iter_chunks(items: list[Any], size: int = IN_CHUNK) -> Iterator[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def rows_in(session: Session, query: Callable[[list[Any]], Any], keys: Iterable[Any]) -> list[Any]:
    """The rows of ``query(chunk)`` (a select with an ``IN`` over the chunk) for all ``keys``, a few hundred
    keys to a statement; each chunk's rows in the query's own order."""
    return _by_chunks(keys, lambda chunk: session.exec(query(chunk)).all())


def _by_chunks(keys: Iterable[Any], rows: Callable[[list[Any]], Iterable[Any]]) -> list[Any]:
    """``rows(chunk)`` for the distinct ``keys``, sorted, a few hundred to a chunk, one list."""
    out: list[Any] = []
    for chunk in iter_chunks(sorted(set(keys))):
        out.extend(rows(chunk))
    return out


def execute_core(
    session: Session, statement: Any, params: dict[str, Any] | None = None, *, expire: Iterable[Any] = ()
) -> Any:
    """Run ``statement`` on the session's connection, without the ORM's work around each statement (about
    50 µs a select, 100 µs an update or a statement given ``.params``): for statements run once per scan or
    run of scans. What the session has not written yet is written first (as its own ``execute`` does), and
    the ``expire`` objects (model, primary key) it holds are read afresh when next used: an update through
    here changes rows without the session knowing (its own would update the objects it holds)."""
    expire = list(expire)
    if session.autoflush or expire:  # an object expired with changes not written would lose them
        session.flush()
    result = session.connection().execute(statement, params)
    for model, pk in expire:
        held = held_object(session, model, pk)
        if held is not None:
            session.expire(held)
    return result


def held_object(session: Session, model: Any, pk: Any) -> Any:
    """The object the session holds for ``model``'s row ``pk``, if it holds one (without reading it)."""
    from sqlalchemy.orm.util import identity_key

    return session.identity_map.get(identity_key(model, pk))


def rows_for(session: Session, statement: Any, name: str, keys: Iterable[Any], **params: Any) -> list[Any]:
    """The rows of ``statement`` (``execute_core``) for all ``keys``, bound to its expanding parameter
    ``name`` a few hundred to a statement (as ``rows_in``)."""
    return _by_chunks(keys, lambda chunk: execute_core(session, statement, {**params, name: chunk}).all())


def named_rows(rows: Iterable[Any]) -> list[Any]:
    """SQLAlchemy rows as named tuples with the same fields, for code that reads their fields by name many
    times (the scan path). A ``Row``'s attribute lookup first fails as an ordinary attribute, raising and
    formatting an AttributeError inside, before it finds the column: about 280 ns, against 20 ns for a
    named tuple's field (and 220 ns to convert a row once). The tuples' classes are made at run time: they
    are for reading in the transaction, not for pickling."""
    out: list[Any] = []
    make = None
    for row in rows:
        if make is None:  # a Row's ``_fields`` costs about 2 µs: read once, from the first row
            make = _named(row._fields)._make
        out.append(make(row))
    return out


def named_row(row: Any) -> Any:
    """One row as ``named_rows`` gives it (``None`` stays ``None``)."""
    return None if row is None else _named(row._fields)._make(row)


@lru_cache(maxsize=256)
def _named(fields: tuple[str, ...]) -> type[tuple[Any, ...]]:
    return namedtuple("PlainRow", fields)


def sqlite_time(value: datetime) -> str:
    """A date-time as SQLAlchemy keeps it in SQLite (UTC), for SQL written by hand."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


# The most rows ``insert_values`` puts in one statement (fewer if SQLite cannot bind them all); each size of
# statement it uses is compiled once per connection, a 256-row one of 26 columns with the smaller ones in
# about 1.4 MB.
VALUES_ROWS = 256


def insert_values(
    conn: sqlite3.Connection, head: str, tail: str = "", *, rows: Sequence[Sequence[Any]]
) -> list[tuple[Any, ...]]:
    """``{head} VALUES (…), (…), … {tail}`` for all ``rows``, many rows to a statement; returns the rows the
    statements return (a ``tail`` ending in ``RETURNING``).

    Faster than ``executemany`` for a table with triggers (the board's tallies on ``sales_order``): SQLite
    keeps a statement journal of every page a statement changes, so one statement per row copies each of
    the row's index pages once per row, one statement for hundreds of rows copies a page once.

    Statements come in a few sizes only: full ones, then the rest as powers of two (300 rows: 256, 32, 8, 4).
    Compiling a statement of many rows costs about five times running it, and the connection keeps a
    compiled statement only for the same text: with a statement for exactly as many rows as there are,
    every page of changes (each with its own count) was compiled afresh."""
    if not rows:
        return []
    width = len(rows[0])
    assert set(map(len, rows)) == {width}, "rows of one width: a value would bind to another column"
    per = max(1, min(VALUES_ROWS, conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // width))
    done, total = 0, len(rows)
    returned: list[tuple[Any, ...]] = []
    while done < total:
        left = total - done
        size = per if left >= per else 1 << (left.bit_length() - 1)
        # reduce(iadd) extends one fresh list by each row's values in C: 4x list(chain.from_iterable(...))
        params = reduce(iadd, rows[done : done + size], [])
        returned += conn.execute(_values_sql(head, tail, width, size), params)
        done += size
    return returned


@cache
def _values_sql(head: str, tail: str, width: int, size: int) -> str:
    one = f"({', '.join('?' * width)})"
    return f"{head} VALUES {', '.join([one] * size)} {tail}"


def insert_rows(session: Session, model: type[SQLModel], rows: list[dict[str, Any]]) -> None:
    """Insert ``rows`` (plain dicts of ``model``'s columns, each with the same keys) with one executemany
    statement on the session's connection: no ORM objects and no unit of work, several times cheaper per row
    than ``session.add``. On SQLite the rows go to the driver as tuples, each value through its column
    type's bind processor and a column left out getting its default, as SQLAlchemy would send them, without
    its per-row parameter handling (a few microseconds a row: scans, sync ops and changes are written in
    hundreds)."""
    from sqlalchemy import insert
    from sqlalchemy.exc import StatementError

    if not rows:
        return
    table = model.__table__  # type: ignore[attr-defined]
    conn = session.connection()
    plan = _driver_insert(table, tuple(rows[0]), conn.dialect) if conn.dialect.name == "sqlite" else None
    if plan is None:
        session.execute(insert(table), rows)
        return
    if session.autoflush:
        session.flush()  # as SQLAlchemy's insert does first: the rows may refer to objects added before them
    sql, get, processed, defaults = plan
    values = []
    try:
        for row in rows:
            value = list(get(row))
            for i, process in processed:
                value[i] = process(value[i])
            values.append((*value, *defaults))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        # As SQLAlchemy reports a value it cannot bind: a fault of the code writing the rows, which callers
        # tell apart from a bad value in an op they are deciding.
        raise StatementError(f"({type(exc).__name__}) {exc}", sql, None, exc) from exc
    conn.exec_driver_sql(sql, values)


def _is_time(column: Any) -> bool:
    """A date, or a date-time kept in UTC (SQLModel's type for every date-time column): its bind processor
    (to UTC, then to text) costs about 2 µs a value, and the rows written together mostly share one (when a
    batch of scans or their audit records was made), so ``_driver_insert`` remembers the last few values it
    turned to text. Equal values of these types are stored as the same text: equal date-times are the same
    instant, and UTC text says which. (A plain date-time column keeps an aware value's own wall time, so two
    equal values could differ as text: not remembered.)"""
    from sqlalchemy.types import Date
    from sqlmodel.sql.sqltypes import UTCDateTime

    return isinstance(column.type, UTCDateTime | Date)


@lru_cache(maxsize=256)  # keyed by the engine's dialect too: bounded, as tests open many engines
def _driver_insert(table: Any, names: tuple[str, ...], dialect: Any) -> Any:
    """How ``insert_rows`` sends rows with keys ``names`` straight to SQLite: the statement, a getter of the
    values, the bind processors by position and the values of the columns left out (their defaults, bound
    already). ``None`` (SQLAlchemy's insert then) for a key that is no column, or when a column left out
    has a default computed per row."""
    columns = {c.name: c for c in table.columns}
    if any(n not in columns for n in names):
        return None  # SQLAlchemy's insert leaves out a key that is no column
    left_out = []
    for column in table.columns:
        if column.name in names or column.default is None:
            continue
        if not column.default.is_scalar:
            return None
        left_out.append((column, column.default.arg))
    order = [*(columns[n] for n in names), *(c for c, _ in left_out)]
    processors = [c.type.dialect_impl(dialect).bind_processor(dialect) for c in order]
    defaults = tuple(
        p(v) if p is not None else v for p, (_, v) in zip(processors[len(names) :], left_out, strict=True)
    )
    get = itemgetter(*names) if len(names) > 1 else (lambda row: (row[names[0]],))
    processed = tuple(
        (i, lru_cache(maxsize=64)(p) if _is_time(order[i]) else p)
        for i, p in enumerate(processors[: len(names)])
        if p is not None
    )
    quoted = ", ".join(f'"{c.name}"' for c in order)
    marks = ", ".join("?" * len(order))
    sql = f'INSERT INTO "{table.name}" ({quoted}) VALUES ({marks})'
    return sql, get, processed, defaults
