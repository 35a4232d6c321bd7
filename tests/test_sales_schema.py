"""Migration 0005 (the desks' tables): from an empty database up it creates exactly what the models say, and
only its own tables; a desk made before it upgrades cleanly."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

from orderdesk.store import Store, schema_heads

DESK_TABLES = {
    "order_sales",
    "desk_decision",
    "order_revision",
    "change_request",
    "qc_inspection",
    "qc_finding",
    "invoice",
    "invoice_order",
    "payment",
    "payment_allocation",
}


def test_the_desks_migration_matches_the_models(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "new.db", create=True)
    # 0006 (64-bit money), 0007 (an index) and 0008 (a note's op) follow 0005 on the same branch
    assert "0008" in schema_heads()
    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn)
        diffs = compare_metadata(context, SQLModel.metadata)
    mine = [d for d in diffs if any(t in repr(d) for t in DESK_TABLES)]
    assert mine == [], mine


def test_the_migration_touches_only_its_own_tables() -> None:
    source = (
        Path(__file__).resolve().parent.parent / "orderdesk/migrations/versions/0005_desks.py"
    ).read_text(encoding="utf-8")
    import re

    created = set(re.findall(r'op\.create_table\(\s*"(\w+)"', source))
    indexed = set(re.findall(r'op\.create_index\(\s*"\w+",\s*"(\w+)"', source))
    assert created == DESK_TABLES and indexed <= DESK_TABLES
    assert "alter_table" not in source and "drop_column" not in source


def test_a_desk_from_before_the_desks_upgrades(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    store = Store.open(path, create=True)
    store.close()
    with sqlite3.connect(path) as conn:
        for table in sorted(DESK_TABLES, reverse=True):
            conn.execute(f"DROP TABLE {table}")
        conn.execute("DROP INDEX ix_order_note_op_id")  # and what came after the desks (0008)
        conn.execute("ALTER TABLE order_note DROP COLUMN op_id")
        conn.execute("DELETE FROM alembic_version WHERE version_num = '0008'")  # the branch's head
    reopened = Store.open(path)
    with sqlite3.connect(path) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        versions = {r[0] for r in conn.execute("SELECT version_num FROM alembic_version")}
    assert tables >= DESK_TABLES and "0008" in versions
    reopened.close()
