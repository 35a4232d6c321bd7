"""alerts, notifications and the board's tallies (issue 5)

Revision ID: 0004
Revises: 0001

Hand-written. Creates only the alert engine's tables, the notification queue, the board's tally tables with
the triggers that keep them, and two indexes on ``sales_order`` the engine and the board need.
The trigger SQL is frozen here; ``orderdesk.board.ensure_tallies`` recreates the same triggers if a later
migration rebuilds ``sales_order`` (SQLite drops a table's triggers with it).
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0004"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TRIGGERS = (
    """
    CREATE TRIGGER board_tally_insert AFTER INSERT ON sales_order BEGIN
        INSERT INTO board_tally (state, promised, n) VALUES (NEW.state, coalesce(NEW.promised_date, ''), 1)
            ON CONFLICT (state, promised) DO UPDATE SET n = n + 1;
        INSERT INTO board_flow (state, hour, promised, n)
            VALUES (NEW.state, substr(NEW.state_since, 1, 13), coalesce(NEW.promised_date, ''), 1)
            ON CONFLICT (state, hour, promised) DO UPDATE SET n = n + 1;
    END
    """,
    """
    CREATE TRIGGER board_tally_update AFTER UPDATE OF state, promised_date ON sales_order
    WHEN OLD.state IS NOT NEW.state OR OLD.promised_date IS NOT NEW.promised_date BEGIN
        UPDATE board_tally SET n = n - 1 WHERE state = OLD.state AND promised = coalesce(OLD.promised_date, '');
        INSERT INTO board_tally (state, promised, n) VALUES (NEW.state, coalesce(NEW.promised_date, ''), 1)
            ON CONFLICT (state, promised) DO UPDATE SET n = n + 1;
    END
    """,
    """
    CREATE TRIGGER board_flow_move AFTER UPDATE OF state ON sales_order
    WHEN OLD.state IS NOT NEW.state BEGIN
        INSERT INTO board_flow (state, hour, promised, n)
            VALUES (NEW.state, substr(NEW.state_since, 1, 13), coalesce(NEW.promised_date, ''), 1)
            ON CONFLICT (state, hour, promised) DO UPDATE SET n = n + 1;
    END
    """,
    """
    CREATE TRIGGER board_tally_delete AFTER DELETE ON sales_order BEGIN
        UPDATE board_tally SET n = n - 1 WHERE state = OLD.state AND promised = coalesce(OLD.promised_date, '');
    END
    """,
)
TRIGGER_NAMES = ("board_tally_insert", "board_tally_update", "board_flow_move", "board_tally_delete")

BACKFILL = (
    "DELETE FROM board_tally",
    "DELETE FROM board_flow",
    "INSERT INTO board_tally (state, promised, n) "
    "SELECT state, coalesce(promised_date, ''), count(*) FROM sales_order GROUP BY 1, 2",
    "INSERT INTO board_flow (state, hour, promised, n) "
    "SELECT state, substr(state_since, 1, 13), coalesce(promised_date, ''), count(*) FROM sales_order "
    "GROUP BY 1, 2, 3",
)


# PostgreSQL (the central API's store): one plpgsql function keeps both tallies.
PG_TRIGGER = (
    """
    CREATE OR REPLACE FUNCTION board_tally_keep() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'UPDATE' AND OLD.state IS NOT DISTINCT FROM NEW.state
           AND OLD.promised_date IS NOT DISTINCT FROM NEW.promised_date THEN
            RETURN NULL;
        END IF;
        IF TG_OP IN ('UPDATE', 'DELETE') THEN
            UPDATE board_tally SET n = n - 1
             WHERE state = OLD.state AND promised = coalesce(OLD.promised_date::text, '');
        END IF;
        IF TG_OP IN ('INSERT', 'UPDATE') THEN
            INSERT INTO board_tally (state, promised, n) VALUES (NEW.state, coalesce(NEW.promised_date::text, ''), 1)
                ON CONFLICT (state, promised) DO UPDATE SET n = board_tally.n + 1;
        END IF;
        IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND OLD.state IS DISTINCT FROM NEW.state) THEN
            INSERT INTO board_flow (state, hour, promised, n)
                VALUES (NEW.state, to_char(NEW.state_since AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24'),
                        coalesce(NEW.promised_date::text, ''), 1)
                ON CONFLICT (state, hour, promised) DO UPDATE SET n = board_flow.n + 1;
        END IF;
        RETURN NULL;
    END $$
    """,
    "CREATE TRIGGER board_tally_keep AFTER INSERT OR DELETE OR UPDATE OF state, promised_date ON sales_order "
    "FOR EACH ROW EXECUTE FUNCTION board_tally_keep()",
)
PG_BACKFILL = (
    "INSERT INTO board_tally (state, promised, n) "
    "SELECT state, coalesce(promised_date::text, ''), count(*) FROM sales_order GROUP BY 1, 2",
    "INSERT INTO board_flow (state, hour, promised, n) "
    "SELECT state, to_char(state_since AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24'), coalesce(promised_date::text, ''), "
    "count(*) FROM sales_order GROUP BY 1, 2, 3",
)


def _dt(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sqlmodel.sql.sqltypes.UTCDateTime(), nullable=nullable)


def _s(name: str, length: int | None = None) -> sa.Column:
    return sa.Column(name, sqlmodel.sql.sqltypes.AutoString(length=length), nullable=False)


def upgrade() -> None:
    op.create_table(
        "alert",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        _s("order_no", 20),
        _s("kind", 12),
        _s("topic", 40),
        _s("severity", 8),
        _s("state", 32),
        _dt("state_since"),
        _dt("due_at"),
        sa.Column("level", sa.Integer(), nullable=False),
        _s("target_role", 20),
        _s("target_user", 40),
        _s("mover", 40),
        _s("status", 12),
        _dt("raised_at"),
        _dt("escalate_at", True),
        _dt("escalated_at", True),
        _dt("acked_at", True),
        _s("acked_by", 40),
        _dt("snoozed_until", True),
        _s("snooze_reason", 500),
        _s("answer", 20),
        _s("answer_reason", 500),
        _dt("closed_at", True),
        _s("close_reason", 40),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["order_id"], ["sales_order.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_alert_order_id", "alert", ["order_id"])
    op.execute("CREATE UNIQUE INDEX ux_alert_open ON alert (order_id, kind, topic) WHERE closed_at IS NULL")
    op.execute("CREATE INDEX ix_alert_escalate ON alert (escalate_at) WHERE status = 'open'")
    op.execute("CREATE INDEX ix_alert_snoozed ON alert (snoozed_until) WHERE status = 'snoozed'")
    op.create_index("ix_alert_live", "alert", ["status", "level", "escalate_at"])

    op.create_table(
        "alert_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("alert_id", sa.Integer(), nullable=False),
        _dt("at"),
        _s("event", 20),
        sa.Column("level", sa.Integer(), nullable=False),
        _s("user_name", 40),
        _s("detail"),
        sa.ForeignKeyConstraint(["alert_id"], ["alert.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_alert_event_alert_id", "alert_event", ["alert_id"])

    op.create_table(
        "alert_cursor",
        _s("name", 40),
        _s("value", 200),
        sa.PrimaryKeyConstraint("name"),
    )

    op.create_table(
        "notification",
        sa.Column("id", sa.Integer(), nullable=False),
        _s("dedupe", 160),
        sa.Column("alert_id", sa.Integer(), nullable=True),
        _s("order_no", 20),
        _s("event", 20),
        _s("channel", 12),
        _s("target", 120),
        _s("severity", 8),
        _s("payload"),
        _s("status", 10),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _dt("next_attempt_at"),
        _s("claimed_by", 64),
        _dt("lease_until", True),
        _s("last_error", 500),
        _dt("created_at"),
        _dt("sent_at", True),
        _dt("read_at", True),
        sa.ForeignKeyConstraint(["alert_id"], ["alert.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("dedupe"),
    )
    op.create_index("ix_notification_alert_id", "notification", ["alert_id"])
    op.execute(
        "CREATE INDEX ix_notification_due ON notification (next_attempt_at) "
        "WHERE status IN ('pending', 'sending')"
    )
    op.execute(
        "CREATE INDEX ix_notification_inbox ON notification (target, read_at, created_at) WHERE channel = 'inbox'"
    )

    op.create_table(
        "board_tally",
        _s("state", 32),
        _s("promised", 10),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("state", "promised"),
    )
    op.create_table(
        "board_flow",
        _s("state", 32),
        _s("hour", 13),
        _s("promised", 10),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("state", "hour", "promised"),
    )
    op.create_index("ix_sales_order_updated_at", "sales_order", ["updated_at"])
    op.create_index("ix_sales_order_state_promised", "sales_order", ["state", "promised_date"])
    postgres = op.get_bind().dialect.name == "postgresql"
    for sql in PG_BACKFILL if postgres else BACKFILL:
        op.execute(sql)
    for sql in PG_TRIGGER if postgres else TRIGGERS:
        op.execute(sql)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS board_tally_keep ON sales_order")
        op.execute("DROP FUNCTION IF EXISTS board_tally_keep()")
    else:
        for name in TRIGGER_NAMES:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.drop_index("ix_sales_order_state_promised", "sales_order")
    op.drop_index("ix_sales_order_updated_at", "sales_order")
    op.drop_table("board_flow")
    op.drop_table("board_tally")
    op.drop_table("notification")
    op.drop_table("alert_cursor")
    op.drop_table("alert_event")
    op.drop_table("alert")
