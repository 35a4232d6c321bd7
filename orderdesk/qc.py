"""The QC desk: the inspection queue, inspections per line or per sample, and first-pass yield.

An inspection records pass or fail per order line (or per sample of a line), defect codes from
``rules.toml [[qc.defects]]``, measured values and notes. It is one domain command: the inspection is kept
(never changed; a re-inspection after rework is a new one), ``qc_result`` is set, and the order makes the
workflow move ``[qc] pass_transition`` (→ ready to ship) or ``fail_transition`` (→ QC failed / rework, back to
production) with the reason — with that move's roles and guards, all in one transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from orderdesk.commands import Actor, clean_text, command
from orderdesk.errors import Refused
from orderdesk.i18n import Label, msg
from orderdesk.models import (
    NOTE_MAX,
    REASON_MAX,
    AppUser,
    Customer,
    OrderLine,
    Product,
    QcFinding,
    QcInspection,
    SalesOrder,
)
from orderdesk.orders import (
    apply_transition,
    check_version,
    get_order_row,
    require_fields,
    state_label,
    touch_order,
)
from orderdesk.rules import Rules, rules_for
from orderdesk.sales import is_short_lead
from orderdesk.store import Store

# Periods of the yield report are calendar days in China Standard Time, where the desks are.
BUSINESS_TZ = timezone(timedelta(hours=8))
UNASSIGNED = "-"  # the queue filter for orders nobody is assigned to inspect
RESULT_LABELS = {"passed": Label("passed", "合格"), "failed": Label("failed", "不合格")}
MEASUREMENTS_MAX = 500


@dataclass(frozen=True)
class Verdict:
    """Pass or fail for one order line (``sample_no`` 0) or for one sample of it (``sample_no`` 1, 2, ...).

    ``line`` is the line number or the line's SKU. ``samples`` is how many units a line verdict covers
    (0: the sampling plan's size for the line).
    """

    line: int | str
    passed: bool
    samples: int = 0
    sample_no: int = 0
    defects: tuple[str, ...] = ()
    measurements: str = ""
    note: str = ""


@dataclass(frozen=True)
class FindingView:
    line_no: int
    sku: str
    sample_no: int
    samples: int
    passed: bool
    defects: tuple[str, ...]
    measurements: str
    note: str


@dataclass(frozen=True)
class InspectionView:
    order_no: str
    seq: int
    inspector: str
    at: datetime
    result: str  # passed | failed
    reason: str
    notes: str
    findings: tuple[FindingView, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "order_no": self.order_no,
            "seq": self.seq,
            "inspector": self.inspector,
            "at": self.at.isoformat(),
            "result": self.result,
            "reason": self.reason,
            "notes": self.notes,
            "findings": [
                {
                    "line_no": f.line_no,
                    "sku": f.sku,
                    "sample_no": f.sample_no,
                    "samples": f.samples,
                    "passed": f.passed,
                    "defects": list(f.defects),
                    "measurements": f.measurements,
                    "note": f.note,
                }
                for f in self.findings
            ],
        }


def _qc_states(store: Store, rules: Rules) -> list[str]:
    """States an order awaits QC in: those the pass move leaves from."""
    found = [t for t in store.workflow.transitions if t.id == rules.qc_pass_transition]
    return sorted({s for t in found for s in t.sources})


# -- recording an inspection ---------------------------------------------------------------------------
def record_inspection(
    store: Store,
    *,
    order_no: str,
    user: str | Actor,
    verdicts: Sequence[Verdict],
    notes: str = "",
    reason: str = "",
    expected_version: int | None = None,
) -> InspectionView:
    """Record an inspection and move the order: every line passed → pass move, else fail move with the reason."""
    notes = clean_text(notes, field_name="Notes", max_len=NOTE_MAX)
    reason = clean_text(reason, field_name="Reason", max_len=REASON_MAX)
    rules = rules_for(store)
    workflow = store.workflow
    with command(store, "record_inspection", user=user) as ctx:
        require_fields(ctx, ["qc_result"])
        order = get_order_row(ctx.session, order_no)
        check_version(order, expected_version)
        here = state_label(workflow, order.state)
        if workflow.find(order.state, rules.qc_pass_transition) is None:
            raise Refused(
                msg(
                    "Order {order_no} is in {state}; an inspection is recorded only while it awaits QC.",
                    order_no=order.order_no,
                    state=here,
                ),
                code="not_awaiting_qc",
            )
        lines = list(
            ctx.session.exec(
                select(OrderLine, Product)
                .join(Product)
                .where(OrderLine.order_id == order.id)
                .order_by(col(OrderLine.line_no))
            ).all()
        )
        findings, line_passed = _check_verdicts(rules, lines, verdicts)
        passed = all(line_passed.values())
        if not passed and not reason:
            reason = "; ".join(f"{f.sku}: {f.defects}" for f in findings if not f.passed and f.defects)
        move = workflow.find(order.state, rules.qc_pass_transition if passed else rules.qc_fail_transition)
        if move is None:
            raise Refused(
                msg(
                    "Order {order_no} is in {state}; the workflow has no move {move} from there.",
                    order_no=order.order_no,
                    state=here,
                    move=rules.qc_fail_transition,
                ),
                code="illegal_transition",
            )
        if order.inspector_id is None:
            order.inspector_id = ctx.actor.user_id or None
        order.qc_result = "passed" if passed else "failed"
        source = order.state
        apply_transition(ctx, order, move.id, workflow=workflow)
        seq = (
            int(
                ctx.session.exec(
                    select(func.coalesce(func.max(QcInspection.seq), 0)).where(
                        QcInspection.order_id == order.id
                    )
                ).one()
            )
            + 1
        )
        inspection = QcInspection(
            order_id=order.id or 0,
            seq=seq,
            inspector=ctx.actor.name,
            at=ctx.now,
            result=order.qc_result,
            reason=reason,
            notes=notes,
        )
        ctx.session.add(inspection)
        ctx.session.flush()
        for f in findings:
            ctx.session.add(
                QcFinding(
                    inspection_id=inspection.id or 0,
                    line_no=f.line_no,
                    product_id=f.product_id,
                    sample_no=f.sample_no,
                    samples=f.samples,
                    passed=f.passed,
                    defects=f.defects,
                    measurements=f.measurements,
                    note=f.note,
                )
            )
        base = touch_order(ctx, order)
        ctx.record(
            order_no=order.order_no,
            args={
                "order_no": order.order_no,
                "result": order.qc_result,
                "seq": seq,
                "verdicts": [
                    {
                        "line_no": f.line_no,
                        "sample_no": f.sample_no,
                        "samples": f.samples,
                        "passed": f.passed,
                        "defects": f.defects,
                        "measurements": f.measurements,
                        "note": f.note,
                    }
                    for f in findings
                ],
                "reason": reason,
                "notes": notes,
            },
            base_version=base,
            detail={
                "from": source,
                "to": order.state,
                "transition": move.id,
                "notify": list(move.notify),
                "require_ack": move.require_ack,
            },
        )
    return inspection_history(store, order.order_no)[-1]


@dataclass
class _Finding:
    line_no: int
    product_id: int
    sku: str
    sample_no: int
    samples: int
    passed: bool
    defects: str
    measurements: str
    note: str


def _check_verdicts(
    rules: Rules, lines: list[tuple[OrderLine, Product]], verdicts: Sequence[Verdict]
) -> tuple[list[_Finding], dict[int, bool]]:
    if not lines:
        raise Refused(msg("The order has no lines to inspect."), code="no_lines")
    by_no = {ln.line_no: (ln, p) for ln, p in lines}
    by_sku = {p.sku: (ln, p) for ln, p in lines}
    findings: list[_Finding] = []
    seen_samples: set[tuple[int, int]] = set()
    for v in verdicts:
        target = by_no.get(v.line) if isinstance(v.line, int) else by_sku.get(str(v.line).strip())
        if target is None:
            raise Refused(msg("The order has no line {line}.", line=str(v.line)), code="unknown_line")
        ln, p = target
        codes = tuple(dict.fromkeys(c.strip().upper() for c in v.defects if c.strip()))
        unknown = [c for c in codes if c not in rules.defect_codes]
        if unknown:
            raise Refused(
                msg(
                    "Unknown defect code {code}: use one of {codes}.",
                    code=", ".join(unknown),
                    codes=", ".join(rules.defect_codes),
                ),
                code="unknown_defect",
            )
        if not v.passed and not codes:
            raise Refused(
                msg("{sku}: a failed verdict needs at least one defect code.", sku=p.sku),
                code="defect_needed",
            )
        if v.sample_no < 0 or v.samples < 0:
            raise Refused(msg("Sample numbers and counts cannot be negative."), code="bad_value")
        if v.sample_no and (ln.line_no, v.sample_no) in seen_samples:
            raise Refused(
                msg("{sku}: sample {n} is recorded twice.", sku=p.sku, n=v.sample_no), code="bad_value"
            )
        seen_samples.add((ln.line_no, v.sample_no))
        samples = 1 if v.sample_no else (v.samples or rules.sample_size(ln.quantity))
        if samples > ln.quantity:
            raise Refused(
                msg(
                    "{sku}: {samples} units inspected, but the line has only {quantity}.",
                    sku=p.sku,
                    samples=samples,
                    quantity=ln.quantity,
                ),
                code="bad_value",
            )
        findings.append(
            _Finding(
                line_no=ln.line_no,
                product_id=p.id or 0,
                sku=p.sku,
                sample_no=v.sample_no,
                samples=samples,
                passed=v.passed,
                defects=",".join(codes),
                measurements=clean_text(
                    v.measurements, field_name="Measured values", max_len=MEASUREMENTS_MAX
                ),
                note=clean_text(v.note, field_name="Note", max_len=REASON_MAX),
            )
        )
    line_passed: dict[int, bool] = {}
    inspected: dict[int, int] = {}
    for f in findings:
        line_passed[f.line_no] = line_passed.get(f.line_no, True) and f.passed
        inspected[f.line_no] = inspected.get(f.line_no, 0) + f.samples
    missing = [p.sku for ln, p in lines if ln.line_no not in line_passed]
    if missing:
        raise Refused(
            msg("Every line needs a verdict; missing: {skus}.", skus=", ".join(missing)), code="line_missing"
        )
    if rules.qc_enforce_sample_size and all(line_passed.values()):
        for ln, p in lines:
            need = rules.sample_size(ln.quantity)
            if inspected[ln.line_no] < need:
                raise Refused(
                    msg(
                        "{sku}: {done} of {need} samples inspected; the sampling plan asks for {need} before it "
                        "can pass.",
                        sku=p.sku,
                        done=inspected[ln.line_no],
                        need=need,
                    ),
                    code="sample_too_small",
                )
    return findings, line_passed


# -- the queue and the history -------------------------------------------------------------------------
@dataclass(frozen=True)
class QueueItem:
    order_no: str
    customer_name: str
    state: str
    state_label: Label
    waiting: timedelta  # how long it has been waiting for QC
    inspector: str
    lines: int
    units: int
    rush: bool
    promised_date: date | None
    short_lead: bool
    inspections: int  # earlier inspections (a re-inspection after rework has some)
    version: int


def qc_queue(store: Store, *, inspector: str | None = None, limit: int = 50) -> list[QueueItem]:
    """Orders awaiting inspection, the longest waiting first; ``inspector`` filters (``"-"``: unassigned)."""
    rules = rules_for(store)
    workflow = store.workflow
    now = store.clock()
    limit = max(1, min(limit, 200))
    with store.read() as session:
        query = (
            select(SalesOrder, Customer)
            .join(Customer)
            .where(col(SalesOrder.state).in_(_qc_states(store, rules)))
            .order_by(col(SalesOrder.state_since), col(SalesOrder.id))
        )
        if inspector == UNASSIGNED:
            query = query.where(col(SalesOrder.inspector_id).is_(None))
        elif inspector:
            user = session.exec(select(AppUser).where(AppUser.name == inspector)).first()
            query = query.where(SalesOrder.inspector_id == (user.id if user else -1))
        rows = session.exec(query.limit(limit)).all()
        ids = [o.id for o, _c in rows]
        names = {
            u.id: u.name
            for u in session.exec(
                select(AppUser).where(
                    col(AppUser.id).in_([o.inspector_id for o, _c in rows if o.inspector_id])
                )
            )
        }
        totals = {
            oid: (n, units)
            for oid, n, units in session.exec(
                select(OrderLine.order_id, func.count(), func.sum(OrderLine.quantity))
                .where(col(OrderLine.order_id).in_(ids))
                .group_by(col(OrderLine.order_id))
            ).all()
        }
        done = dict(
            session.exec(
                select(QcInspection.order_id, func.count())
                .where(col(QcInspection.order_id).in_(ids))
                .group_by(col(QcInspection.order_id))
            ).all()
        )
        return [
            QueueItem(
                order_no=o.order_no,
                customer_name=c.name,
                state=o.state,
                state_label=state_label(workflow, o.state),
                waiting=now - o.state_since,
                inspector=names.get(o.inspector_id, ""),
                lines=totals.get(o.id, (0, 0))[0],
                units=int(totals.get(o.id, (0, 0))[1] or 0),
                rush=o.rush,
                promised_date=o.promised_date,
                short_lead=is_short_lead(rules, o.promised_date, now.date(), o.state),
                inspections=done.get(o.id, 0),
                version=o.version,
            )
            for o, c in rows
        ]


@dataclass(frozen=True)
class PlanLine:
    line_no: int
    sku: str
    name: str
    quantity: int
    sample_size: int
    batch: str


@dataclass(frozen=True)
class InspectionPlan:
    order_no: str
    customer_name: str
    state: str
    state_label: Label
    version: int
    rush: bool
    inspector: str
    awaiting_qc: bool
    lines: tuple[PlanLine, ...]
    history: tuple[InspectionView, ...]


def inspection_plan(store: Store, order_no: str) -> InspectionPlan:
    """What to inspect on an order: its lines with the sample size for each, and the earlier inspections."""
    rules = rules_for(store)
    workflow = store.workflow
    with store.read() as session:
        order = get_order_row(session, order_no)
        cust = session.get(Customer, order.customer_id)
        inspector = session.get(AppUser, order.inspector_id) if order.inspector_id else None
        lines = session.exec(
            select(OrderLine, Product)
            .join(Product)
            .where(OrderLine.order_id == order.id)
            .order_by(col(OrderLine.line_no))
        ).all()
        history = _history(session, order)
        return InspectionPlan(
            order_no=order.order_no,
            customer_name=cust.name if cust else "",
            state=order.state,
            state_label=state_label(workflow, order.state),
            version=order.version,
            rush=order.rush,
            inspector=inspector.name if inspector else "",
            awaiting_qc=workflow.find(order.state, rules.qc_pass_transition) is not None,
            lines=tuple(
                PlanLine(ln.line_no, p.sku, p.name, ln.quantity, rules.sample_size(ln.quantity), ln.batch)
                for ln, p in lines
            ),
            history=tuple(history),
        )


def _history(session: Session, order: SalesOrder) -> list[InspectionView]:
    inspections = session.exec(
        select(QcInspection).where(QcInspection.order_id == order.id).order_by(col(QcInspection.seq))
    ).all()
    if not inspections:
        return []
    rows = session.exec(
        select(QcFinding, Product)
        .join(Product)
        .where(col(QcFinding.inspection_id).in_([i.id for i in inspections]))
        .order_by(col(QcFinding.line_no), col(QcFinding.sample_no))
    ).all()
    by_inspection: dict[int, list[FindingView]] = {}
    for f, p in rows:
        by_inspection.setdefault(f.inspection_id, []).append(
            FindingView(
                f.line_no,
                p.sku,
                f.sample_no,
                f.samples,
                f.passed,
                tuple(c for c in f.defects.split(",") if c),
                f.measurements,
                f.note,
            )
        )
    return [
        InspectionView(
            order.order_no,
            i.seq,
            i.inspector,
            i.at,
            i.result,
            i.reason,
            i.notes,
            tuple(by_inspection.get(i.id or 0, [])),
        )
        for i in inspections
    ]


def inspection_history(store: Store, order_no: str) -> list[InspectionView]:
    """Every inspection of an order, first to last (re-inspections after rework show the whole story)."""
    with store.read() as session:
        return _history(session, get_order_row(session, order_no))


def assign_inspector(store: Store, *, order_no: str, inspector: str, user: str | Actor) -> None:
    """Assign (or take) the inspection of an order: an edit of the ``inspector`` field, by QC's permissions."""
    from orderdesk.orders import edit_order

    edit_order(store, order_no=order_no, changes={"inspector": inspector}, user=user)


# -- first-pass yield ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class YieldRow:
    period: str  # "2026-11", "2026-W47" or "all"
    sku: str  # "" for the period's total
    name: str
    inspected: int  # order lines inspected for the first time
    passed_first: int

    @property
    def yield_pct(self) -> float:
        return 100.0 * self.passed_first / self.inspected if self.inspected else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "period": self.period,
            "sku": self.sku or None,
            "name": self.name,
            "inspected": self.inspected,
            "passed_first": self.passed_first,
            "yield_pct": round(self.yield_pct, 1),
        }


PERIODS = ("month", "week", "all")


def _period(at: datetime, by: str) -> str:
    day = at.astimezone(BUSINESS_TZ).date()
    if by == "month":
        return f"{day.year}-{day.month:02d}"
    if by == "week":
        iso = day.isocalendar()
        return f"{iso.year}-W{iso.week:02d}"
    return "all"


def first_pass_yield(store: Store, *, since: date, until: date, by: str = "month") -> list[YieldRow]:
    """Share of order lines that passed their first inspection, per product and period (totals first).

    A line counts once, at its order's first inspection between ``since`` and ``until`` (inclusive, China
    Standard Time); it passed first time if every verdict on it passed.
    """
    if by not in PERIODS:
        raise Refused(
            msg("Unknown period {period}: use one of {periods}.", period=by, periods=", ".join(PERIODS))
        )
    start = datetime.combine(since, datetime.min.time(), BUSINESS_TZ).astimezone(UTC)
    end = datetime.combine(until + timedelta(days=1), datetime.min.time(), BUSINESS_TZ).astimezone(UTC)
    with store.read() as session:
        rows = session.exec(
            select(
                QcInspection.id,
                QcInspection.at,
                QcFinding.line_no,
                QcFinding.product_id,
                func.min(QcFinding.passed),
            )
            .join(QcFinding, col(QcFinding.inspection_id) == QcInspection.id)
            .where(QcInspection.seq == 1, col(QcInspection.at) >= start, col(QcInspection.at) < end)
            .group_by(col(QcInspection.id), col(QcFinding.line_no), col(QcFinding.product_id))
        ).all()
        products = {
            p.id: p for p in session.exec(select(Product).where(col(Product.id).in_({r[3] for r in rows})))
        }
    tally: dict[tuple[str, int], list[int]] = {}
    for _iid, at, _line, pid, ok in rows:
        period = _period(at, by)
        for key in ((period, 0), (period, pid)):
            t = tally.setdefault(key, [0, 0])
            t[0] += 1
            t[1] += 1 if ok else 0
    out = []
    for (period, pid), (n, good) in tally.items():
        p = products.get(pid)
        out.append(YieldRow(period, p.sku if p else "", p.name if p else "", n, good))
    out.sort(key=lambda r: (r.period, r.sku != "", r.yield_pct, r.sku))
    return out
