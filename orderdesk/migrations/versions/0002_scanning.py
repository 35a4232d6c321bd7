"""scan-to-ship: scans, packing sessions, hazard releases (issue 3)

Revision ID: 0002
Revises: 0001

Hand-written. Creates only the scanning tables, plus two partial indexes on existing tables (packed but
unshipped order lines per product; orders by waybill). ``op.create_index`` is used directly (never a batch
operation on ``sales_order`` / ``order_line``), so no table is rebuilt and other areas' triggers survive.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_str = sqlmodel.sql.sqltypes.AutoString
_when = sqlmodel.sql.sqltypes.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "scan",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("idem_key", _str(length=64), nullable=False),
        sa.Column("at", _when(), nullable=False),
        sa.Column("user_name", _str(length=40), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("order_no", _str(length=20), nullable=False),
        sa.Column("line_id", sa.Integer(), nullable=False),
        sa.Column("line_no", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("code", _str(length=200), nullable=False),
        sa.Column("gtin", _str(length=14), nullable=False),
        sa.Column("batch", _str(length=20), nullable=False),
        sa.Column("expiry", sa.Date(), nullable=True),
        sa.Column("serial", _str(length=20), nullable=False),
        sa.Column("qty", sa.Integer(), nullable=False),
        sa.Column("multiplier", sa.Integer(), nullable=False),
        sa.Column("source", _str(length=8), nullable=False),
        sa.Column("undone", sa.Boolean(), nullable=False),
        sa.Column("undone_at", _when(), nullable=True),
        sa.Column("undone_by", _str(length=40), nullable=False),
        sa.Column("undo_key", _str(length=64), nullable=True),
        sa.ForeignKeyConstraint(["order_id"], ["sales_order.id"]),
        sa.ForeignKeyConstraint(["line_id"], ["order_line.id"]),
        sa.ForeignKeyConstraint(["product_id"], ["product.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("idem_key"),
        sa.UniqueConstraint("undo_key"),
    )
    op.create_index("ix_scan_order_id", "scan", ["order_id", "undone", "id"])  # counted scans, the last one
    op.create_index(
        "ux_scan_serial",
        "scan",
        ["gtin", "serial"],
        unique=True,
        sqlite_where=sa.text("serial <> '' AND undone = 0"),
        postgresql_where=sa.text("serial <> '' AND NOT undone"),
    )

    op.create_table(
        "packing_session",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_name", _str(length=40), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("order_no", _str(length=20), nullable=False),
        sa.Column("opened_at", _when(), nullable=False),
        sa.Column("waybill", _str(length=40), nullable=False),
        sa.Column("carrier", _str(length=20), nullable=False),
        sa.ForeignKeyConstraint(["order_id"], ["sales_order.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("user_name"),
        sa.UniqueConstraint("order_id"),
    )

    op.create_table(
        "hazard_release",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("released_by", _str(length=40), nullable=False),
        sa.Column("at", _when(), nullable=False),
        sa.Column("reason", _str(length=500), nullable=False),
        sa.ForeignKeyConstraint(["order_id"], ["sales_order.id"]),
        sa.ForeignKeyConstraint(["product_id"], ["product.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("order_id", "product_id"),
    )

    op.create_index(
        "ix_order_line_packed",
        "order_line",
        ["product_id", "order_id", "scanned_qty", "shipped_qty"],  # covering: chosen without statistics
        sqlite_where=sa.text("scanned_qty > shipped_qty"),
        postgresql_where=sa.text("scanned_qty > shipped_qty"),
    )
    op.create_index(
        "ix_sales_order_waybill",
        "sales_order",
        ["waybill"],
        sqlite_where=sa.text("waybill <> ''"),
        postgresql_where=sa.text("waybill <> ''"),
    )


def downgrade() -> None:
    op.drop_index("ix_sales_order_waybill", table_name="sales_order")
    op.drop_index("ix_order_line_packed", table_name="order_line")
    op.drop_table("hazard_release")
    op.drop_table("packing_session")
    op.drop_index("ux_scan_serial", table_name="scan")
    op.drop_index("ix_scan_order_id", table_name="scan")
    op.drop_table("scan")
