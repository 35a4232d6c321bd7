"""The desk's tables (SQLModel). Money is kept in fen (integer cents of CNY); times are aware UTC."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Index, Integer, UniqueConstraint
from sqlmodel import Field, SQLModel

# Upper bounds for free text, enforced by the domain commands so the database never holds a novel.
NAME_MAX = 120
ADDRESS_MAX = 300
NOTE_MAX = 2000
REASON_MAX = 500

# Money in fen: 64-bit, so an amount may pass 21 million CNY (SQLite's INTEGER is 64-bit already).
MONEY = BigInteger().with_variant(Integer(), "sqlite")


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
    credit_limit: int = Field(default=0, sa_type=MONEY)  # fen
    settlement_terms: str = Field(default="", max_length=40)
    credit_level: str = Field(default="B", max_length=2)
    notes: str = Field(default="", max_length=NOTE_MAX)


class Product(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    sku: str = Field(index=True, unique=True, max_length=40)
    name: str = Field(max_length=NAME_MAX)
    unit: str = Field(default="pcs", max_length=12)
    unit_price: int = Field(default=0, sa_type=MONEY)  # fen
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
        # A customer's orders by date; the state and amount ride along so the credit guard
        # (guards.credit_exposure) sums a customer's open orders from the index alone (migration 0007).
        Index(
            "ix_sales_order_customer_created",
            "customer_id",
            "created_at",
            "state",
            "held_from_state",
            "amount",
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    order_no: str = Field(unique=True, max_length=20)
    channel: str = Field(default="offline", max_length=20)
    customer_id: int = Field(foreign_key="customer.id")
    ship_address: str = Field(default="", max_length=ADDRESS_MAX)
    amount: int = Field(default=0, sa_type=MONEY)  # fen
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
    unit_price: int = Field(default=0, sa_type=MONEY)  # fen, copied from the product when the line is made
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
    # The op that added the note (its id is the note's name in the change log: a desk's own note and the
    # central API's copy of it are one note). None for a note from before notes were synced by op (0008).
    op_id: str | None = Field(default=None, max_length=36, index=True, unique=True)


# -- alerts (issue 5) --
class Alert(SQLModel, table=True):
    """Something late or waiting for an answer, addressed to a level of an escalation chain.

    At most one alert per order, kind and topic is open at a time (a partial unique index enforces it, so
    two engines racing on one file cannot raise it twice). ``state``/``state_since`` are the order's when
    the alert was raised: once the order moves on they no longer match and the alert is closed.
    """

    __tablename__ = "alert"

    id: int | None = Field(default=None, primary_key=True)
    order_id: int = Field(foreign_key="sales_order.id", index=True)
    order_no: str = Field(max_length=20)
    kind: str = Field(max_length=12)  # overdue | promised | rush | ack | info
    topic: str = Field(default="", max_length=40)  # ack: the role asked to answer; "" otherwise
    severity: str = Field(default="amber", max_length=8)  # amber | red
    state: str = Field(max_length=32)
    state_since: datetime
    due_at: datetime  # when the order became late, the promised date, or when the question was asked
    level: int = 0  # 0 = the owner; n = the n-th role of the state's escalation chain
    target_role: str = Field(default="", max_length=20)
    target_user: str = Field(default="", max_length=40)  # a named person at level 0 (owner, mover)
    mover: str = Field(default="", max_length=40)  # ack/info: who made the move that asked
    status: str = Field(default="open", max_length=12)  # open | acked | snoozed | closed
    raised_at: datetime
    escalate_at: datetime | None = None  # the current level's acknowledgement deadline (status open)
    escalated_at: datetime | None = None
    acked_at: datetime | None = None
    acked_by: str = Field(default="", max_length=40)
    snoozed_until: datetime | None = None
    snooze_reason: str = Field(default="", max_length=REASON_MAX)
    answer: str = Field(default="", max_length=20)  # ack: acknowledged | need_info
    answer_reason: str = Field(default="", max_length=REASON_MAX)
    closed_at: datetime | None = None
    close_reason: str = Field(default="", max_length=40)
    version: int = 1


class AlertEvent(SQLModel, table=True):
    """The trail of one alert: raised, escalated, acknowledged, snoozed, answered, closed."""

    __tablename__ = "alert_event"

    id: int | None = Field(default=None, primary_key=True)
    alert_id: int = Field(foreign_key="alert.id", index=True)
    at: datetime
    event: str = Field(max_length=20)
    level: int = 0
    user_name: str = Field(default="", max_length=40)
    detail: str = "{}"  # canonical JSON


class AlertCursor(SQLModel, table=True):
    """Where the alert engine got to (time and audit watermarks), so each pass only looks at what is new."""

    __tablename__ = "alert_cursor"

    name: str = Field(primary_key=True, max_length=40)
    value: str = Field(default="", max_length=200)


class Notification(SQLModel, table=True):
    """One message for one channel and recipient: the delivery queue and the in-app inbox in one table.

    ``dedupe`` is unique, so an event is queued once per channel and recipient however many engines run;
    a sender claims rows atomically (status ``sending`` + ``claimed_by`` + ``lease_until``) before sending.
    """

    __tablename__ = "notification"

    id: int | None = Field(default=None, primary_key=True)
    dedupe: str = Field(unique=True, max_length=160)
    alert_id: int | None = Field(default=None, foreign_key="alert.id", index=True)
    order_no: str = Field(default="", max_length=20)
    event: str = Field(max_length=20)
    channel: str = Field(max_length=12)  # inbox | email | wecom | dingtalk
    target: str = Field(max_length=120)  # a user name (inbox, e-mail) or a robot's name (webhooks)
    severity: str = Field(default="amber", max_length=8)
    payload: str = "{}"  # canonical JSON: the message as msgid + params, rendered in the reader's language
    status: str = Field(default="pending", max_length=10)  # pending | sending | sent | failed
    attempts: int = 0
    next_attempt_at: datetime
    claimed_by: str = Field(default="", max_length=64)
    lease_until: datetime | None = None
    last_error: str = Field(default="", max_length=500)
    created_at: datetime
    sent_at: datetime | None = None
    read_at: datetime | None = None


class BoardTally(SQLModel, table=True):
    """Orders per state and promised date, kept by triggers on ``sales_order`` so the board never counts."""

    __tablename__ = "board_tally"

    state: str = Field(primary_key=True, max_length=32)
    promised: str = Field(default="", primary_key=True, max_length=10)  # ISO date, "" = none
    n: int = 0


class BoardFlow(SQLModel, table=True):
    """Orders entering a state per UTC hour and promised date (shipped today, on-time rate), by triggers."""

    __tablename__ = "board_flow"

    state: str = Field(primary_key=True, max_length=32)
    hour: str = Field(primary_key=True, max_length=13)  # "YYYY-MM-DD HH" (UTC)
    promised: str = Field(default="", primary_key=True, max_length=10)
    n: int = 0


# Indexes the alert engine and the board lean on (created by migration 0004; partial where only live rows
# matter, so they stay small on a desk with a million closed orders).
Index(
    "ux_alert_open",
    Alert.order_id,
    Alert.kind,
    Alert.topic,
    unique=True,
    sqlite_where=Alert.closed_at.is_(None),  # type: ignore[union-attr]
)
Index("ix_alert_escalate", Alert.escalate_at, sqlite_where=Alert.status == "open")
Index("ix_alert_snoozed", Alert.snoozed_until, sqlite_where=Alert.status == "snoozed")
Index("ix_alert_live", Alert.status, Alert.level, Alert.escalate_at)  # board: live alerts per level
Index(
    "ix_notification_due",
    Notification.next_attempt_at,
    sqlite_where=Notification.status.in_(("pending", "sending")),  # type: ignore[attr-defined]
)
Index(
    "ix_notification_inbox",
    Notification.target,
    Notification.read_at,  # the bell's unread count is an index-only range
    Notification.created_at,
    sqlite_where=Notification.channel == "inbox",
)
Index("ix_sales_order_updated_at", SalesOrder.updated_at)
Index("ix_sales_order_state_promised", SalesOrder.state, SalesOrder.promised_date)


# -- sync (issue 4) --


# Central API side: enrolled desks, their op streams, every op's terminal outcome and the change log.
class SyncServer(SQLModel, table=True):
    """On a central API store: one row with the change log's counters."""

    __tablename__ = "sync_server"

    id: int = Field(default=1, primary_key=True)
    server_id: str = Field(max_length=36)
    next_change_seq: int = Field(default=1, sa_type=BigInteger)
    log_floor: int = Field(default=0, sa_type=BigInteger)  # entries up to here were pruned
    next_desk_no: int = 1
    created_at: datetime


class SyncDesk(SQLModel, table=True):
    """An enrolled desk. Only a hash of its token is kept."""

    __tablename__ = "sync_desk"

    desk_id: str = Field(primary_key=True, max_length=36)
    name: str = Field(default="", max_length=60)
    token_hash: str = Field(max_length=64)
    current_epoch: int = 1
    enrolled_at: datetime
    revoked_at: datetime | None = None
    last_seen_at: datetime | None = None


class SyncEnrolCode(SQLModel, table=True):
    """A one-time enrolment code (hashed); used once, then never again."""

    __tablename__ = "sync_enrol_code"

    code_hash: str = Field(primary_key=True, max_length=64)
    name: str = Field(default="", max_length=60)
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None = None
    desk_id: str | None = Field(default=None, max_length=36)


class SyncStream(SQLModel, table=True):
    """One desk epoch's op sequence: ops must arrive as ``last_seq + 1``. Each epoch has its own order code."""

    __tablename__ = "sync_stream"

    desk_id: str = Field(primary_key=True, max_length=36)
    epoch: int = Field(primary_key=True)
    desk_code: str = Field(unique=True, max_length=4)
    last_seq: int = 0
    created_at: datetime


class SyncOp(SQLModel, table=True):
    """Every op a desk pushed, with its terminal outcome (applied / rejected) kept for retries."""

    __tablename__ = "sync_op"
    __table_args__ = (
        UniqueConstraint("desk_id", "epoch", "seq"),
        Index("ix_sync_op_desk_order", "desk_id", "order_no"),
    )

    op_id: str = Field(primary_key=True, max_length=36)
    desk_id: str = Field(max_length=36)
    epoch: int
    seq: int
    payload_hash: str = Field(max_length=64)
    command: str = Field(max_length=40)
    order_no: str = Field(default="", max_length=20)
    user_name: str = Field(default="", max_length=40)
    args: str = "{}"  # canonical JSON, as pushed
    status: str = Field(max_length=12)  # applied | rejected
    code: str = Field(default="", max_length=40)
    reason: str = ""  # canonical JSON of the Msg (msgid + params), rendered in each reader's language
    change_seq: int | None = Field(default=None, sa_type=BigInteger)
    decided_at: datetime


class SyncChange(SQLModel, table=True):
    """The change log: an entity's full image after a change, numbered by a global sequence (once per entity
    per transaction; its other entries in the transaction carry ``""``, see ``replication.SAME_IMAGE``)."""

    __tablename__ = "sync_change"
    __table_args__ = (Index("ix_sync_change_entity", "kind", "key"),)

    seq: int = Field(primary_key=True, sa_type=BigInteger, sa_column_kwargs={"autoincrement": False})
    kind: str = Field(max_length=12)  # order | customer | product | user | invoice | payment
    key: str = Field(max_length=64)
    image: str  # canonical JSON, or "" (the image is on the entity's earlier entry in the transaction)
    event: str = ""  # canonical JSON: the command, user, args and desk of the op (on one entry per op)
    op_id: str | None = Field(default=None, max_length=36)
    desk_id: str = Field(default="", max_length=36)  # where the change came from ("" = the server itself)
    at: datetime


class SyncFieldChange(SQLModel, table=True):
    """Which desk last changed an order field, at which change seq: the stale-edit conflict check."""

    __tablename__ = "sync_field_change"

    order_no: str = Field(primary_key=True, max_length=20)
    field: str = Field(primary_key=True, max_length=40)
    seq: int = Field(sa_type=BigInteger)
    desk_id: str = Field(default="", max_length=36)
    user_name: str = Field(default="", max_length=40)
    value: str = ""  # canonical JSON of the value it was set to


# Desk side: the link to the central API, what the desk has pulled, and the outcomes of its ops.
class SyncLink(SQLModel, table=True):
    """On a desk: its enrolment at a central API (one row) and how far it has pulled."""

    __tablename__ = "sync_link"

    id: int = Field(default=1, primary_key=True)
    server_url: str = Field(max_length=300)
    server_id: str = Field(max_length=36)
    token: str = Field(max_length=200)
    cursor: int = Field(default=0, sa_type=BigInteger)  # the last change-log seq applied here
    snapshot_seq: int = Field(default=0, sa_type=BigInteger)  # every entity is at least this new
    needs_bootstrap: bool = True
    enrolled_at: datetime
    last_sync_at: datetime | None = None  # last time push and pull both completed (desk clock; shown only)
    last_error: str = ""  # canonical JSON of a Msg, "" when the last attempt succeeded


class SyncEntity(SQLModel, table=True):
    """On a desk: the change seq of the server image an entity was last brought to."""

    __tablename__ = "sync_entity"

    kind: str = Field(primary_key=True, max_length=12)
    key: str = Field(primary_key=True, max_length=64)
    seq: int = Field(sa_type=BigInteger)


class SyncDeferred(SQLModel, table=True):
    """On a desk: the newest server image of an entity that still has unpushed ops (applied once they go)."""

    __tablename__ = "sync_deferred"

    kind: str = Field(primary_key=True, max_length=12)
    key: str = Field(primary_key=True, max_length=64)
    seq: int = Field(sa_type=BigInteger)
    image: str


class SyncOutcome(SQLModel, table=True):
    """On a desk: the server's decision on each pushed op; rejected ones wait in the supervisor's queue."""

    __tablename__ = "sync_outcome"
    __table_args__ = (Index("ix_sync_outcome_status", "status", "resolved_at"),)

    op_id: str = Field(primary_key=True, max_length=36)
    seq: int
    epoch: int
    command: str = Field(max_length=40)
    order_no: str = Field(default="", max_length=20)
    user_name: str = Field(default="", max_length=40)
    args: str = "{}"
    status: str = Field(max_length=12)  # applied | rejected
    code: str = Field(default="", max_length=40)
    reason: str = ""  # canonical JSON of the Msg
    created_at: datetime  # when the desk made the op (desk clock)
    decided_at: datetime  # when it was decided (server clock)
    resolved_at: datetime | None = None
    resolved_by: str = Field(default="", max_length=40)
    resolution: str = Field(default="", max_length=20)  # dismissed | reapplied


# -- sales, QC, finance (issue 6) --
class OrderSales(SQLModel, table=True):
    """What the sales rules decided about an order (duplicate reason, credit hold, approval, short lead time,
    linked parent) and its business revision (1, 2, ... one per approved change request)."""

    __tablename__ = "order_sales"

    order_id: int = Field(foreign_key="sales_order.id", primary_key=True)
    revision: int = 1
    parent_id: int | None = Field(default=None, foreign_key="sales_order.id", index=True)
    duplicate_of: str = Field(default="", max_length=20)  # the earlier order it looked like
    duplicate_reason: str = Field(default="", max_length=20)  # a [duplicates] reason id
    duplicate_note: str = Field(default="", max_length=REASON_MAX)
    credit_hold: str = Field(default="", max_length=12, index=True)  # "" | pending | released | kept
    approval: str = Field(default="", max_length=12, index=True)  # "" | pending | approved | rejected
    approval_roles: str = Field(default="", max_length=100)  # who may approve, as configured at the time
    approved_amount: int = Field(
        default=0, sa_type=MONEY
    )  # fen; a change that raises the amount above it needs approval again
    short_lead: bool = False
    proposed_date: date | None = None
    promised_reason: str = Field(default="", max_length=REASON_MAX)


class DeskDecision(SQLModel, table=True):
    """A finance or approval decision on an order (release / keep a credit hold, approve / reject)."""

    __tablename__ = "desk_decision"

    id: int | None = Field(default=None, primary_key=True)
    order_id: int = Field(foreign_key="sales_order.id", index=True)
    kind: str = Field(max_length=12)  # credit | approval
    decision: str = Field(max_length=12)  # release | keep | approve | reject
    reason: str = Field(default="", max_length=REASON_MAX)
    user_name: str = Field(max_length=40)
    at: datetime


class OrderRevision(SQLModel, table=True):
    """A business version of an order's commercial content (lines, ship-to, promised date) as JSON."""

    __tablename__ = "order_revision"
    __table_args__ = (UniqueConstraint("order_id", "revision"),)

    id: int | None = Field(default=None, primary_key=True)
    order_id: int = Field(foreign_key="sales_order.id", index=True)
    revision: int
    snapshot: str  # canonical JSON
    created_at: datetime
    created_by: str = Field(max_length=40)
    change_request_id: int | None = None


class ChangeRequest(SQLModel, table=True):
    """A requested change to a confirmed order: what, why, its impact, its class and the decision."""

    __tablename__ = "change_request"

    id: int | None = Field(default=None, primary_key=True)
    order_id: int = Field(foreign_key="sales_order.id", index=True)
    status: str = Field(default="pending", max_length=12, index=True)  # pending | approved | rejected
    change_class: str = Field(max_length=20)
    approve_roles: str = Field(max_length=100)
    fields: str = Field(max_length=100)  # comma list: quantity, sku, address, date
    proposed: str  # canonical JSON: lines, ship_address, promised_date
    impact: str  # canonical JSON: state, production_started, materials_issued, amount_before/after...
    reason: str = Field(max_length=REASON_MAX)
    base_revision: int
    requested_at: datetime
    requested_by: str = Field(max_length=40)
    decided_at: datetime | None = None
    decided_by: str = Field(default="", max_length=40)
    decision_reason: str = Field(default="", max_length=REASON_MAX)
    new_revision: int | None = None


class QcInspection(SQLModel, table=True):
    """One inspection of an order (re-inspections after rework are new rows; none is ever changed)."""

    __tablename__ = "qc_inspection"
    __table_args__ = (UniqueConstraint("order_id", "seq"), Index("ix_qc_inspection_at", "at"))

    id: int | None = Field(default=None, primary_key=True)
    order_id: int = Field(foreign_key="sales_order.id", index=True)
    seq: int  # 1 = the first inspection of this order
    inspector: str = Field(max_length=40)
    at: datetime
    result: str = Field(max_length=12)  # passed | failed
    reason: str = Field(default="", max_length=REASON_MAX)
    notes: str = Field(default="", max_length=NOTE_MAX)


class QcFinding(SQLModel, table=True):
    """The verdict on one order line (sample_no 0) or on one sample of it, with defects and measurements."""

    __tablename__ = "qc_finding"

    id: int | None = Field(default=None, primary_key=True)
    inspection_id: int = Field(foreign_key="qc_inspection.id", index=True)
    line_no: int
    product_id: int = Field(foreign_key="product.id", index=True)
    sample_no: int = 0
    samples: int = 0  # units inspected for this verdict
    passed: bool
    defects: str = Field(default="", max_length=200)  # comma list of defect codes
    measurements: str = Field(default="", max_length=500)
    note: str = Field(default="", max_length=REASON_MAX)


class Invoice(SQLModel, table=True):
    """A sales invoice for one or more shipped orders of one customer (a parent with its linked orders)."""

    __tablename__ = "invoice"
    __table_args__ = (Index("ix_invoice_customer_date", "customer_id", "invoice_date"),)

    id: int | None = Field(default=None, primary_key=True)
    invoice_no: str = Field(unique=True, max_length=24)
    customer_id: int = Field(foreign_key="customer.id")
    invoice_date: date = Field(index=True)
    due_date: date
    net: int = Field(sa_type=MONEY)  # fen, without VAT
    tax: int = Field(sa_type=MONEY)  # fen
    total: int = Field(sa_type=MONEY)  # fen, VAT included
    tax_rate_bp: int  # basis points: 1300 = 13 %
    paid: int = Field(default=0, sa_type=MONEY)  # fen matched from payments so far
    created_at: datetime
    created_by: str = Field(max_length=40)
    note: str = Field(default="", max_length=REASON_MAX)


class InvoiceOrder(SQLModel, table=True):
    """Which orders an invoice covers; an order is invoiced once."""

    __tablename__ = "invoice_order"

    order_id: int = Field(foreign_key="sales_order.id", primary_key=True)
    invoice_id: int = Field(foreign_key="invoice.id", index=True)
    amount: int = Field(sa_type=MONEY)  # fen, VAT included


class Payment(SQLModel, table=True):
    """Money received from a customer; ``unallocated`` is what is not yet matched to an invoice."""

    __tablename__ = "payment"

    id: int | None = Field(default=None, primary_key=True)
    payment_no: str = Field(unique=True, max_length=24)
    customer_id: int = Field(foreign_key="customer.id", index=True)
    received_on: date
    amount: int = Field(sa_type=MONEY)  # fen
    unallocated: int = Field(default=0, sa_type=MONEY)  # fen
    method: str = Field(default="bank", max_length=20)
    reference: str = Field(default="", max_length=60)
    note: str = Field(default="", max_length=REASON_MAX)
    created_at: datetime
    created_by: str = Field(max_length=40)


class PaymentAllocation(SQLModel, table=True):
    """Part of a payment matched to an invoice."""

    __tablename__ = "payment_allocation"

    id: int | None = Field(default=None, primary_key=True)
    payment_id: int = Field(foreign_key="payment.id", index=True)
    invoice_id: int = Field(foreign_key="invoice.id", index=True)
    amount: int = Field(sa_type=MONEY)  # fen


# -- scanning (issue 3) --
from sqlalchemy import text as _sql  # noqa: E402 - kept inside this block so each area's tables stay one block


class Scan(SQLModel, table=True):
    """One accepted scan at the packing desk, committed before its ✓ is shown. Undone, never deleted.

    ``idem_key`` is unique, so a retried command never counts a scan twice; a partial unique index on
    (gtin, serial) over the scans not undone makes a serial number count once even if two desks race.
    """

    __tablename__ = "scan"
    __table_args__ = (
        Index("ix_scan_order_id", "order_id", "undone", "id"),  # counted scans and the last one, per order
        Index(
            "ux_scan_serial",
            "gtin",
            "serial",
            unique=True,
            sqlite_where=_sql("serial <> '' AND undone = 0"),
            postgresql_where=_sql("serial <> '' AND NOT undone"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    idem_key: str = Field(unique=True, max_length=64)
    at: datetime
    user_name: str = Field(max_length=40)
    order_id: int = Field(foreign_key="sales_order.id")
    order_no: str = Field(max_length=20)
    line_id: int = Field(foreign_key="order_line.id")
    line_no: int
    product_id: int = Field(foreign_key="product.id")
    code: str = Field(max_length=200)  # as scanned; GS1 content in its (AI)value form
    gtin: str = Field(default="", max_length=14)
    batch: str = Field(default="", max_length=20)
    expiry: date | None = None
    serial: str = Field(default="", max_length=20)
    qty: int  # units counted: barcode units x GS1 count (AI 30/37) x multiplier
    multiplier: int = 1
    source: str = Field(default="scanner", max_length=8)  # scanner | keyed (typed by hand)
    undone: bool = False
    undone_at: datetime | None = None
    undone_by: str = Field(default="", max_length=40)
    undo_key: str | None = Field(default=None, unique=True, max_length=64)


class PackingSession(SQLModel, table=True):
    """The order a user is packing at this desk (one each), so a killed terminal resumes where it was."""

    __tablename__ = "packing_session"

    id: int | None = Field(default=None, primary_key=True)
    user_name: str = Field(unique=True, max_length=40)
    order_id: int = Field(foreign_key="sales_order.id", unique=True)
    order_no: str = Field(max_length=20)
    opened_at: datetime
    waybill: str = Field(default="", max_length=40)  # scanned from the carrier's label; used when shipping
    carrier: str = Field(default="", max_length=20)


class HazardRelease(SQLModel, table=True):
    """A supervisor's (hazardous) or an admin's (prohibited) release of one product on one order."""

    __tablename__ = "hazard_release"
    __table_args__ = (UniqueConstraint("order_id", "product_id"),)

    id: int | None = Field(default=None, primary_key=True)
    order_id: int = Field(foreign_key="sales_order.id")
    product_id: int = Field(foreign_key="product.id")
    released_by: str = Field(max_length=40)
    at: datetime
    reason: str = Field(default="", max_length=REASON_MAX)


# Packed but not yet shipped quantities (stock check on every scan) and waybill look-ups stay fast on a
# desk with a million orders: both partial, so they only hold the few live rows.
Index(  # covering, so SQLite prefers it to ix_order_line_product_id without statistics
    "ix_order_line_packed",
    OrderLine.product_id,
    OrderLine.order_id,
    OrderLine.scanned_qty,
    OrderLine.shipped_qty,
    sqlite_where=_sql("scanned_qty > shipped_qty"),
    postgresql_where=_sql("scanned_qty > shipped_qty"),
)
Index(
    "ix_sales_order_waybill",
    SalesOrder.waybill,
    sqlite_where=_sql("waybill <> ''"),
    postgresql_where=_sql("waybill <> ''"),
)
