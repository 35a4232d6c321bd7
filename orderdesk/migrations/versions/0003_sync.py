"""sync: the central API's desks, op streams, outcomes and change log; the desk's link and outcomes (issue 4)

Revision ID: 0003
Revises: 0001

Hand-written. Creates only the sync tables. On PostgreSQL it also makes the audit trail append-only (the
triggers in 0001 are SQLite syntax and are created only there).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString, UTCDateTime

revision: str = "0003"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PG_AUDIT_GUARD = """
CREATE OR REPLACE FUNCTION audit_record_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit records are append-only';
END;
$$ LANGUAGE plpgsql
"""


def upgrade() -> None:
    op.create_table(
        "sync_server",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("server_id", AutoString(length=36), nullable=False),
        sa.Column("next_change_seq", sa.BigInteger(), nullable=False),
        sa.Column("log_floor", sa.BigInteger(), nullable=False),
        sa.Column("next_desk_no", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "sync_desk",
        sa.Column("desk_id", AutoString(length=36), nullable=False),
        sa.Column("name", AutoString(length=60), nullable=False),
        sa.Column("token_hash", AutoString(length=64), nullable=False),
        sa.Column("current_epoch", sa.Integer(), nullable=False),
        sa.Column("enrolled_at", UTCDateTime(), nullable=False),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.Column("last_seen_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("desk_id"),
    )
    op.create_table(
        "sync_enrol_code",
        sa.Column("code_hash", AutoString(length=64), nullable=False),
        sa.Column("name", AutoString(length=60), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=True),
        sa.Column("desk_id", AutoString(length=36), nullable=True),
        sa.PrimaryKeyConstraint("code_hash"),
    )
    op.create_table(
        "sync_stream",
        sa.Column("desk_id", AutoString(length=36), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("desk_code", AutoString(length=4), nullable=False),
        sa.Column("last_seq", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("desk_id", "epoch"),
        sa.UniqueConstraint("desk_code"),
    )
    op.create_table(
        "sync_op",
        sa.Column("op_id", AutoString(length=36), nullable=False),
        sa.Column("desk_id", AutoString(length=36), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("payload_hash", AutoString(length=64), nullable=False),
        sa.Column("command", AutoString(length=40), nullable=False),
        sa.Column("order_no", AutoString(length=20), nullable=False),
        sa.Column("user_name", AutoString(length=40), nullable=False),
        sa.Column("args", AutoString(), nullable=False),
        sa.Column("status", AutoString(length=12), nullable=False),
        sa.Column("code", AutoString(length=40), nullable=False),
        sa.Column("reason", AutoString(), nullable=False),
        sa.Column("change_seq", sa.BigInteger(), nullable=True),
        sa.Column("decided_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("op_id"),
        sa.UniqueConstraint("desk_id", "epoch", "seq"),
    )
    op.create_index("ix_sync_op_desk_order", "sync_op", ["desk_id", "order_no"])
    op.create_table(
        "sync_change",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("kind", AutoString(length=12), nullable=False),
        sa.Column("key", AutoString(length=64), nullable=False),
        sa.Column("image", AutoString(), nullable=False),
        sa.Column("event", AutoString(), nullable=False),
        sa.Column("op_id", AutoString(length=36), nullable=True),
        sa.Column("desk_id", AutoString(length=36), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
    )
    op.create_index("ix_sync_change_entity", "sync_change", ["kind", "key"])
    op.create_table(
        "sync_field_change",
        sa.Column("order_no", AutoString(length=20), nullable=False),
        sa.Column("field", AutoString(length=40), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("desk_id", AutoString(length=36), nullable=False),
        sa.Column("user_name", AutoString(length=40), nullable=False),
        sa.Column("value", AutoString(), nullable=False),
        sa.PrimaryKeyConstraint("order_no", "field"),
    )
    op.create_table(
        "sync_link",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("server_url", AutoString(length=300), nullable=False),
        sa.Column("server_id", AutoString(length=36), nullable=False),
        sa.Column("token", AutoString(length=200), nullable=False),
        sa.Column("cursor", sa.BigInteger(), nullable=False),
        sa.Column("snapshot_seq", sa.BigInteger(), nullable=False),
        sa.Column("needs_bootstrap", sa.Boolean(), nullable=False),
        sa.Column("enrolled_at", UTCDateTime(), nullable=False),
        sa.Column("last_sync_at", UTCDateTime(), nullable=True),
        sa.Column("last_error", AutoString(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "sync_entity",
        sa.Column("kind", AutoString(length=12), nullable=False),
        sa.Column("key", AutoString(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "key"),
    )
    op.create_table(
        "sync_deferred",
        sa.Column("kind", AutoString(length=12), nullable=False),
        sa.Column("key", AutoString(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("image", AutoString(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "key"),
    )
    op.create_table(
        "sync_outcome",
        sa.Column("op_id", AutoString(length=36), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("command", AutoString(length=40), nullable=False),
        sa.Column("order_no", AutoString(length=20), nullable=False),
        sa.Column("user_name", AutoString(length=40), nullable=False),
        sa.Column("args", AutoString(), nullable=False),
        sa.Column("status", AutoString(length=12), nullable=False),
        sa.Column("code", AutoString(length=40), nullable=False),
        sa.Column("reason", AutoString(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("decided_at", UTCDateTime(), nullable=False),
        sa.Column("resolved_at", UTCDateTime(), nullable=True),
        sa.Column("resolved_by", AutoString(length=40), nullable=False),
        sa.Column("resolution", AutoString(length=20), nullable=False),
        sa.PrimaryKeyConstraint("op_id"),
    )
    op.create_index("ix_sync_outcome_status", "sync_outcome", ["status", "resolved_at"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(PG_AUDIT_GUARD)
        for event in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER audit_record_no_{event.lower()} BEFORE {event} ON audit_record "
                "FOR EACH ROW EXECUTE FUNCTION audit_record_append_only()"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_record_no_update ON audit_record")
        op.execute("DROP TRIGGER IF EXISTS audit_record_no_delete ON audit_record")
        op.execute("DROP FUNCTION IF EXISTS audit_record_append_only()")
    op.drop_index("ix_sync_outcome_status", table_name="sync_outcome")
    for table in ("sync_outcome", "sync_deferred", "sync_entity", "sync_link", "sync_field_change"):
        op.drop_table(table)
    op.drop_index("ix_sync_change_entity", table_name="sync_change")
    op.drop_table("sync_change")
    op.drop_index("ix_sync_op_desk_order", table_name="sync_op")
    for table in ("sync_op", "sync_stream", "sync_enrol_code", "sync_desk", "sync_server"):
        op.drop_table(table)
