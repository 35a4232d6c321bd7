"""The desk's tables (SQLModel). Money is kept in fen (integer cents of CNY); times are aware UTC."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

# Upper bounds for free text, enforced by the domain commands so the database never holds a novel.
NAME_MAX = 120
ADDRESS_MAX = 300
NOTE_MAX = 2000
REASON_MAX = 500


class Desk(SQLModel, table=True):
    """This desk's identity: one row. ``epoch`` changes when a copied or restored file is re-keyed."""

    id: int = Field(default=1, primary_key=True)
    desk_id: str = Field(max_length=36)
    desk_code: str = Field(max_length=4)
    epoch: int = 1
    next_seq: int = 1
    next_order_no: int = 1
    created_at: datetime


class Customer(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(index=True, unique=True, max_length=32)
    name: str = Field(index=True, max_length=NAME_MAX)
    contact: str = Field(default="", max_length=60)
    phone: str = Field(default="", index=True, max_length=32)
    address: str = Field(default="", max_length=ADDRESS_MAX)
    region: str = Field(default="", max_length=40)
    credit_limit: int = 0  # fen
    settlement_terms: str = Field(default="", max_length=40)
    credit_level: str = Field(default="B", max_length=2)
    notes: str = Field(default="", max_length=NOTE_MAX)


class Product(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    sku: str = Field(index=True, unique=True, max_length=40)
    name: str = Field(max_length=NAME_MAX)
    unit: str = Field(default="pcs", max_length=12)
    unit_price: int = 0  # fen
    hazard: str = Field(default="none", max_length=12)  # none | hazardous | prohibited
    hazard_note: str = Field(default="", max_length=200)
    stock_on_hand: int = 0
    safety_stock: int = 0
    lead_time_days: int = 7


class ProductBarcode(SQLModel, table=True):
    """One product may carry several barcodes (EAN-13 on the unit, Code 128 on the carton, ...)."""

    code: str = Field(primary_key=True, max_length=64)  # GTINs normalised to 14 digits
    product_id: int = Field(foreign_key="product.id", index=True)
    kind: str = Field(default="ean13", max_length=12)
    units: int = 1  # how many units one scan of this code stands for (carton codes)


class SalesOrder(SQLModel, table=True):
    __tablename__ = "sales_order"
    __table_args__ = (
        Index("ix_sales_order_state_since", "state", "state_since"),
        Index("ix_sales_order_customer_created", "customer_id", "created_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    order_no: str = Field(unique=True, max_length=20)
    channel: str = Field(default="offline", max_length=20)
    customer_id: int = Field(foreign_key="customer.id")
    ship_address: str = Field(default="", max_length=ADDRESS_MAX)
    amount: int = 0  # fen
    signed_date: date | None = None
    promised_date: date | None = Field(default=None, index=True)
    rush: bool = False
    route: str = Field(default="make_to_order", max_length=20)
    state: str = Field(max_length=32)
    state_since: datetime
    held_from_state: str = Field(default="", max_length=32)
    version: int = 1
    owner_id: int | None = Field(default=None, foreign_key="app_user.id")
    inspector_id: int | None = Field(default=None, foreign_key="app_user.id")
    tech_approved: bool = False
    materials_kitted: bool = False
    qc_result: str = Field(default="", max_length=12)  # "" | passed | failed
    credit_released: bool = False
    waybill: str = Field(default="", max_length=40)
    packing_preset: str = Field(default="", max_length=20)
    notes: str = Field(default="", max_length=NOTE_MAX)
    created_at: datetime
    created_by: str = Field(max_length=40)
    updated_at: datetime
    updated_by: str = Field(max_length=40)


class OrderLine(SQLModel, table=True):
    __tablename__ = "order_line"
    __table_args__ = (UniqueConstraint("order_id", "line_no"),)

    id: int | None = Field(default=None, primary_key=True)
    order_id: int = Field(foreign_key="sales_order.id", index=True)
    line_no: int
    product_id: int = Field(foreign_key="product.id", index=True)
    quantity: int
    unit_price: int = 0  # fen, copied from the product when the line is made
    scanned_qty: int = 0
    shipped_qty: int = 0
    batch: str = Field(default="", max_length=40)


class AppUser(SQLModel, table=True):
    __tablename__ = "app_user"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, max_length=40)
    display_name: str = Field(default="", max_length=60)
    pin_hash: str = Field(default="", max_length=200)
    badge_hash: str | None = Field(default=None, unique=True, max_length=64)
    active: bool = True
    failed_logins: int = 0
    locked_until: datetime | None = None
    created_at: datetime


class UserRole(SQLModel, table=True):
    __tablename__ = "user_role"

    user_id: int = Field(foreign_key="app_user.id", primary_key=True)
    role: str = Field(primary_key=True, max_length=20)


class AuditRecord(SQLModel, table=True):
    """Append-only (triggers refuse UPDATE/DELETE) and hash-chained: ``hash`` covers ``prev_hash``."""

    __tablename__ = "audit_record"
    __table_args__ = (
        Index("ix_audit_order_at", "order_no", "at"),
        Index("ix_audit_user_at", "user_name", "at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(index=True)
    user_name: str = Field(max_length=40)
    order_no: str = Field(default="", max_length=20)
    command: str = Field(max_length=40)
    detail: str = "{}"  # canonical JSON
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)


class OutboxRecord(SQLModel, table=True):
    """A command as intent, waiting to go up to the central API. ``seq`` is contiguous per desk epoch."""

    __tablename__ = "outbox"

    seq: int = Field(primary_key=True)
    op_id: str = Field(unique=True, max_length=36)
    desk_id: str = Field(max_length=36)
    epoch: int
    command: str = Field(max_length=40)
    args: str  # canonical JSON
    order_no: str = Field(default="", max_length=20)
    base_version: int | None = None
    payload_hash: str = Field(max_length=64)
    created_at: datetime
    user_name: str = Field(max_length=40)


class OrderNote(SQLModel, table=True):
    __tablename__ = "order_note"

    id: int | None = Field(default=None, primary_key=True)
    order_id: int = Field(foreign_key="sales_order.id", index=True)
    at: datetime
    user_name: str = Field(max_length=40)
    text: str = Field(max_length=NOTE_MAX)
