"""money columns are 64-bit everywhere

Revision ID: 0006
Revises: 0005

Hand-written. On PostgreSQL (the central API's store) money in fen was a 32-bit ``integer``, which stops at
21,474,836.47 CNY: a larger order or invoice was refused by the database. This widens every money column to
``bigint``. SQLite's INTEGER is 64-bit already, so a desk's file is not touched.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MONEY_COLUMNS = (
    ("customer", "credit_limit"),
    ("product", "unit_price"),
    ("sales_order", "amount"),
    ("order_line", "unit_price"),
    ("order_sales", "approved_amount"),
    ("invoice", "net"),
    ("invoice", "tax"),
    ("invoice", "total"),
    ("invoice", "paid"),
    ("invoice_order", "amount"),
    ("payment", "amount"),
    ("payment", "unallocated"),
    ("payment_allocation", "amount"),
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        return
    for table, column in MONEY_COLUMNS:
        op.alter_column(
            table, column, type_=sa.BigInteger(), existing_type=sa.Integer(), existing_nullable=False
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        return
    for table, column in MONEY_COLUMNS:
        op.alter_column(
            table, column, type_=sa.Integer(), existing_type=sa.BigInteger(), existing_nullable=False
        )
