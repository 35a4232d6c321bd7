"""a customer's orders index carries their state and amount

Revision ID: 0007
Revises: 0006

Hand-written. The credit guard (``guards.credit_exposure``) sums a customer's open orders on every move
through a guarded step, shipping included. Through ``ix_sales_order_customer_created`` it read every one of
the customer's rows from the table: about 0.1 s for a customer with 78,000 orders on the million-order
demo desk, seconds from a cold cache. With the state, the held-from state and the amount in the index it
reads the index alone, 6-8 times faster. The index is rebuilt once (a few seconds on a million orders).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "ix_sales_order_customer_created"


def upgrade() -> None:
    op.drop_index(INDEX, table_name="sales_order")
    op.create_index(
        INDEX,
        "sales_order",
        ["customer_id", "created_at", "state", "held_from_state", "amount"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(INDEX, table_name="sales_order")
    op.create_index(INDEX, "sales_order", ["customer_id", "created_at"], unique=False)
