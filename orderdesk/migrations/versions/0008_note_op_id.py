"""a note knows the op that added it

Revision ID: 0008
Revises: 0007

Hand-written. The change log carries each note as an entity of its own, named by the id of the op that added
it, instead of carrying all of an order's notes in every image of the order (which made the central API dump
every note of an order again for each transaction that added one). A desk's own note and the copy the central
API makes of it carry the same op id, so the desk recognises its note when it comes back. Notes from before
this revision keep ``NULL``: they were synced whole, with their orders, and stay as they are.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("order_note", schema=None) as batch_op:
        batch_op.add_column(sa.Column("op_id", sa.String(length=36), nullable=True))
        batch_op.create_index(batch_op.f("ix_order_note_op_id"), ["op_id"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("order_note", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_order_note_op_id"))
        batch_op.drop_column("op_id")
