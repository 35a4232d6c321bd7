"""a note knows the op that added it

Revision ID: 0008
Revises: 0007

Hand-written. The change log carries each note as an entity of its own, named by the id of the op that added
it, instead of carrying all of an order's notes in every image of the order (which made the central API dump
every note of an order again for each transaction that added one). A desk's own note and the copy the central
API makes of it carry the same op id, so the desk recognises its note when it comes back. A note whose op
still waits in the outbox is named by it here (matched by order, author, time and text: ``add_note`` writes
the note and its outbox record at one time), so it too comes back as itself, not as a second copy. Other
notes from before this revision keep ``NULL``: they were synced whole, with their orders, and stay as they
are.
"""

import json
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
    bind = op.get_bind()
    waiting = bind.execute(sa.text("SELECT op_id, args FROM outbox WHERE command = 'add_note' ORDER BY seq"))
    for op_id, args in waiting.all():
        bind.execute(
            sa.text(
                "UPDATE order_note SET op_id = :op WHERE id = (SELECT min(n.id) FROM order_note n "
                "JOIN sales_order o ON o.id = n.order_id "
                "JOIN outbox b ON b.order_no = o.order_no AND b.user_name = n.user_name AND b.created_at = n.at "
                "WHERE b.op_id = :op AND n.text = :text AND n.op_id IS NULL)"
            ),
            {"op": op_id, "text": json.loads(args).get("text")},
        )


def downgrade() -> None:
    with op.batch_alter_table("order_note", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_order_note_op_id"))
        batch_op.drop_column("op_id")
