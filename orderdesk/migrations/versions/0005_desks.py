"""sales, QC and finance desks (issue 6)

Revision ID: 0005
Revises: 0001

Hand-written. Creates only the desks' own tables: the sales rules' decisions per order, order revisions and
change requests, QC inspections and findings, invoices, payments and their matching. Nothing existing is
altered, so it upgrades a desk of any size in an instant.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0005"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_S = sqlmodel.sql.sqltypes.AutoString
_T = sqlmodel.sql.sqltypes.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "order_sales",
        sa.Column("order_id", sa.Integer(), sa.ForeignKey("sales_order.id"), primary_key=True),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("parent_id", sa.Integer(), sa.ForeignKey("sales_order.id"), nullable=True),
        sa.Column("duplicate_of", _S(length=20), nullable=False),
        sa.Column("duplicate_reason", _S(length=20), nullable=False),
        sa.Column("duplicate_note", _S(length=500), nullable=False),
        sa.Column("credit_hold", _S(length=12), nullable=False),
        sa.Column("approval", _S(length=12), nullable=False),
        sa.Column("approval_roles", _S(length=100), nullable=False),
        sa.Column("approved_amount", sa.Integer(), nullable=False),
        sa.Column("short_lead", sa.Boolean(), nullable=False),
        sa.Column("proposed_date", sa.Date(), nullable=True),
        sa.Column("promised_reason", _S(length=500), nullable=False),
    )
    op.create_index("ix_order_sales_parent_id", "order_sales", ["parent_id"])
    op.create_index("ix_order_sales_credit_hold", "order_sales", ["credit_hold"])
    op.create_index("ix_order_sales_approval", "order_sales", ["approval"])

    op.create_table(
        "desk_decision",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("order_id", sa.Integer(), sa.ForeignKey("sales_order.id"), nullable=False),
        sa.Column("kind", _S(length=12), nullable=False),
        sa.Column("decision", _S(length=12), nullable=False),
        sa.Column("reason", _S(length=500), nullable=False),
        sa.Column("user_name", _S(length=40), nullable=False),
        sa.Column("at", _T(), nullable=False),
    )
    op.create_index("ix_desk_decision_order_id", "desk_decision", ["order_id"])

    op.create_table(
        "order_revision",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("order_id", sa.Integer(), sa.ForeignKey("sales_order.id"), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("snapshot", _S(), nullable=False),
        sa.Column("created_at", _T(), nullable=False),
        sa.Column("created_by", _S(length=40), nullable=False),
        sa.Column("change_request_id", sa.Integer(), nullable=True),
        sa.UniqueConstraint("order_id", "revision"),
    )
    op.create_index("ix_order_revision_order_id", "order_revision", ["order_id"])

    op.create_table(
        "change_request",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("order_id", sa.Integer(), sa.ForeignKey("sales_order.id"), nullable=False),
        sa.Column("status", _S(length=12), nullable=False),
        sa.Column("change_class", _S(length=20), nullable=False),
        sa.Column("approve_roles", _S(length=100), nullable=False),
        sa.Column("fields", _S(length=100), nullable=False),
        sa.Column("proposed", _S(), nullable=False),
        sa.Column("impact", _S(), nullable=False),
        sa.Column("reason", _S(length=500), nullable=False),
        sa.Column("base_revision", sa.Integer(), nullable=False),
        sa.Column("requested_at", _T(), nullable=False),
        sa.Column("requested_by", _S(length=40), nullable=False),
        sa.Column("decided_at", _T(), nullable=True),
        sa.Column("decided_by", _S(length=40), nullable=False),
        sa.Column("decision_reason", _S(length=500), nullable=False),
        sa.Column("new_revision", sa.Integer(), nullable=True),
    )
    op.create_index("ix_change_request_order_id", "change_request", ["order_id"])
    op.create_index("ix_change_request_status", "change_request", ["status"])

    op.create_table(
        "qc_inspection",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("order_id", sa.Integer(), sa.ForeignKey("sales_order.id"), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("inspector", _S(length=40), nullable=False),
        sa.Column("at", _T(), nullable=False),
        sa.Column("result", _S(length=12), nullable=False),
        sa.Column("reason", _S(length=500), nullable=False),
        sa.Column("notes", _S(length=2000), nullable=False),
        sa.UniqueConstraint("order_id", "seq"),
    )
    op.create_index("ix_qc_inspection_order_id", "qc_inspection", ["order_id"])
    op.create_index("ix_qc_inspection_at", "qc_inspection", ["at"])

    op.create_table(
        "qc_finding",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("inspection_id", sa.Integer(), sa.ForeignKey("qc_inspection.id"), nullable=False),
        sa.Column("line_no", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.Integer(), sa.ForeignKey("product.id"), nullable=False),
        sa.Column("sample_no", sa.Integer(), nullable=False),
        sa.Column("samples", sa.Integer(), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("defects", _S(length=200), nullable=False),
        sa.Column("measurements", _S(length=500), nullable=False),
        sa.Column("note", _S(length=500), nullable=False),
    )
    op.create_index("ix_qc_finding_inspection_id", "qc_finding", ["inspection_id"])
    op.create_index("ix_qc_finding_product_id", "qc_finding", ["product_id"])

    op.create_table(
        "invoice",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("invoice_no", _S(length=24), nullable=False, unique=True),
        sa.Column("customer_id", sa.Integer(), sa.ForeignKey("customer.id"), nullable=False),
        sa.Column("invoice_date", sa.Date(), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("net", sa.Integer(), nullable=False),
        sa.Column("tax", sa.Integer(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("tax_rate_bp", sa.Integer(), nullable=False),
        sa.Column("paid", sa.Integer(), nullable=False),
        sa.Column("created_at", _T(), nullable=False),
        sa.Column("created_by", _S(length=40), nullable=False),
        sa.Column("note", _S(length=500), nullable=False),
    )
    op.create_index("ix_invoice_invoice_date", "invoice", ["invoice_date"])
    op.create_index("ix_invoice_customer_date", "invoice", ["customer_id", "invoice_date"])

    op.create_table(
        "invoice_order",
        sa.Column("order_id", sa.Integer(), sa.ForeignKey("sales_order.id"), primary_key=True),
        sa.Column("invoice_id", sa.Integer(), sa.ForeignKey("invoice.id"), nullable=False),
        sa.Column("amount", sa.Integer(), nullable=False),
    )
    op.create_index("ix_invoice_order_invoice_id", "invoice_order", ["invoice_id"])

    op.create_table(
        "payment",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("payment_no", _S(length=24), nullable=False, unique=True),
        sa.Column("customer_id", sa.Integer(), sa.ForeignKey("customer.id"), nullable=False),
        sa.Column("received_on", sa.Date(), nullable=False),
        sa.Column("amount", sa.Integer(), nullable=False),
        sa.Column("unallocated", sa.Integer(), nullable=False),
        sa.Column("method", _S(length=20), nullable=False),
        sa.Column("reference", _S(length=60), nullable=False),
        sa.Column("note", _S(length=500), nullable=False),
        sa.Column("created_at", _T(), nullable=False),
        sa.Column("created_by", _S(length=40), nullable=False),
    )
    op.create_index("ix_payment_customer_id", "payment", ["customer_id"])

    op.create_table(
        "payment_allocation",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("payment_id", sa.Integer(), sa.ForeignKey("payment.id"), nullable=False),
        sa.Column("invoice_id", sa.Integer(), sa.ForeignKey("invoice.id"), nullable=False),
        sa.Column("amount", sa.Integer(), nullable=False),
    )
    op.create_index("ix_payment_allocation_payment_id", "payment_allocation", ["payment_id"])
    op.create_index("ix_payment_allocation_invoice_id", "payment_allocation", ["invoice_id"])


def downgrade() -> None:
    for table in (
        "payment_allocation",
        "payment",
        "invoice_order",
        "invoice",
        "qc_finding",
        "qc_inspection",
        "change_request",
        "order_revision",
        "desk_decision",
        "order_sales",
    ):
        op.drop_table(table)
