"""Sales, QC and finance commands for scripts (issue 6): the same domain commands as the three desks.

    orderdesk order change NO --reason TEXT [--qty SKU=N] [--replace OLD=NEW] [--address A] [--promised D]
    orderdesk order changes / approve-change ID / reject-change ID / versions NO
    orderdesk qc record NO --pass|--fail [--defect SKU=D01,D03] [--measure SKU=TEXT] [--samples SKU=N] ...
    orderdesk qc queue / history NO / yield / defects
    orderdesk invoice create NO... / pending / list / export FILE
    orderdesk payment record --customer C --amount 1234.50 [--invoice INV-...] / list
    orderdesk credit holds / release NO / keep NO / exposure C
    orderdesk approval list / approve NO / reject NO
    orderdesk receivables [--as-of D] [--export FILE]

Errors are one line on stderr: exit 1 for a refused action, 2 for bad usage (like every orderdesk command).
"""

from __future__ import annotations

from datetime import date
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from orderdesk.errors import UsageError
from orderdesk.i18n import _, msg

if TYPE_CHECKING:
    from orderdesk.rules import Rules

qc_app = typer.Typer(
    help="QC: record inspections, the queue, history and first-pass yield.", no_args_is_help=True
)
invoice_app = typer.Typer(
    help="Invoices from shipped orders, and the accounting export.", no_args_is_help=True
)
payment_app = typer.Typer(help="Payments received, matched to invoices.", no_args_is_help=True)
credit_app = typer.Typer(help="Credit holds and each customer's credit exposure.", no_args_is_help=True)
approval_app = typer.Typer(help="Large orders waiting for approval.", no_args_is_help=True)

DbOpt = Annotated[
    Path | None, typer.Option("--db", help="SQLite file (default: ORDERDESK_DB or the user data folder).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="JSON on stdout.")]
UserOpt = Annotated[str, typer.Option("--user", help="Who is doing this (a user name).")]
ReasonOpt = Annotated[str, typer.Option("--reason", help="Why (kept in the audit trail).")]


def _root() -> Any:
    import orderdesk.cli as root

    return root


def _store(db: Path | None) -> Any:
    return _root().open_store(db)


def _json(data: Any) -> None:
    _root()._print_json(data)


def _date(value: str | None, option: str) -> date | None:
    return _root()._parse_date(value, option)


def _pairs(items: list[str], option: str, example: str) -> list[tuple[str, str]]:
    out = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(
                msg("{option} takes {example}, not {value}.", option=option, example=example, value=item)
            )
        out.append((key.strip(), value.strip()))
    return out


def _int(value: str, option: str) -> int:
    if not value.strip().isdigit():
        raise UsageError(msg("{option} takes a whole number, not {value}.", option=option, value=value))
    return int(value)


def _money(value: str, option: str) -> int:
    from orderdesk.money import parse_money

    try:
        return parse_money(value)
    except ValueError:
        raise UsageError(
            msg("{option} takes an amount like 1234.50, not {value}.", option=option, value=value)
        ) from None


def _print(renderable: Any) -> None:
    _root()._console().print(renderable)


def duplicate_reason_from_text(rules: Rules, text: str) -> tuple[str, str]:
    """``--duplicate-reason TEXT``: a reason id or label (English or Chinese) picks it; anything else is
    "other" with TEXT as what the person said."""
    wanted = text.strip()
    for reason in rules.duplicate_reasons:
        if wanted.lower() in (reason.id.lower(), reason.label_en.lower()) or wanted == reason.label_zh:
            return reason.id, ""
    other = next((r for r in rules.duplicate_reasons if r.needs_text), None)
    return (other.id if other else rules.duplicate_reasons[-1].id), wanted


def entry_messages(result: Any) -> list[str]:
    """What the sales checks did to a new order, one plain line each (the CLI's order create prints them)."""
    from orderdesk.money import format_money

    lines = []
    if result.on_credit_hold:
        lines.append(
            _(
                "On credit hold: {exposure} owed with this order against a limit of {limit}; finance is asked to "
                "release it.",
                exposure=format_money(result.exposure + result.detail.amount),
                limit=format_money(result.credit_limit),
            )
        )
    if result.needs_approval:
        lines.append(
            _("Needs approval by {roles} before it can go on.", roles=" / ".join(result.approval_roles))
        )
    if result.short_lead:
        lines.append(_("Short lead time: promised for {date}.", date=str(result.detail.promised_date)))
    if result.duplicate_of:
        lines.append(
            _("Entered although it looks like {order_no} (reason given).", order_no=result.duplicate_of)
        )
    if result.parent:
        lines.append(_("Linked to {order_no}: ships and is invoiced with it.", order_no=result.parent))
    elif result.link_offer:
        lines.append(
            _(
                "{order_no} was entered minutes ago for the same customer and address; to ship and invoice them "
                "together, cancel this one and enter it again with --link-to {order_no}.",
                order_no=result.link_offer,
            )
        )
    return lines


# -- order change, changes, approve-change, reject-change, versions ----------------------------------------------
def _change_text(view: Any) -> str:
    from orderdesk.sales import CHANGE_FIELDS_LABELS, CHANGE_STATUS

    fields = ", ".join(str(CHANGE_FIELDS_LABELS[f]) for f in view.fields)
    impact = view.impact
    yes, no = _("yes"), _("no")
    return _(
        "Change request #{id} on {order_no} ({fields}): {cls}, {status}. Production started: {started}; materials "
        "issued: {issued}. Approved by: {roles}.",
        id=view.id,
        order_no=view.order_no,
        fields=fields,
        cls=str(view.class_label),
        status=str(CHANGE_STATUS[view.status]),
        started=yes if impact.get("production_started") else no,
        issued=yes if impact.get("materials_issued") else no,
        roles=" / ".join(view.approve_roles),
    )


def order_change(
    order_no: Annotated[str, typer.Argument(help="Order number.")],
    user: UserOpt,
    reason: ReasonOpt,
    qty: Annotated[
        list[str] | None, typer.Option("--qty", help="SKU=QTY: new quantity (0 removes; a new SKU adds).")
    ] = None,
    replace: Annotated[
        list[str] | None, typer.Option("--replace", help="OLD=NEW: another SKU for a line.")
    ] = None,
    address: Annotated[str | None, typer.Option("--address", help="New ship-to address.")] = None,
    promised: Annotated[str | None, typer.Option("--promised", help="New promised date YYYY-MM-DD.")] = None,
    expect_version: Annotated[int | None, typer.Option("--expect-version")] = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """File a change request on an order (quantity, SKU, address, date); it is classified and waits for approval."""
    from orderdesk.sales import request_change

    view = request_change(
        _store(db),
        order_no=order_no,
        user=user,
        reason=reason,
        quantities={k: _int(v, "--qty") for k, v in _pairs(qty or [], "--qty", "SKU=QTY")},
        replace=dict(_pairs(replace or [], "--replace", "OLD=NEW")),
        ship_address=address,
        promised=_date(promised, "--promised"),
        expected_version=expect_version,
    )
    if as_json:
        _json(view.to_json())
    else:
        typer.echo(_change_text(view))


def order_changes(
    order: Annotated[str | None, typer.Option("--order", help="Only this order.")] = None,
    status: Annotated[str, typer.Option(help="pending, approved, rejected or all.")] = "pending",
    user: Annotated[str | None, typer.Option("--user", help="Only those this user may decide.")] = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Change requests (waiting for a decision by default), oldest first."""
    from orderdesk.sales import change_requests

    if status not in ("pending", "approved", "rejected", "all"):
        raise UsageError(msg("--status takes pending, approved, rejected or all, not {value}.", value=status))
    views = change_requests(
        _store(db), status=None if status == "all" else status, order_no=order, decidable_by=user, limit=500
    )
    if as_json:
        _json([v.to_json() for v in views])
        return
    for v in views:
        typer.echo(_change_text(v) + (f" · {v.reason}" if v.reason else ""))
    if not views:
        typer.echo(_("No change requests."))


def _decide_change(
    request_id: int, approve: bool, user: str, reason: str, db: Path | None, as_json: bool
) -> None:
    from orderdesk.sales import decide_change

    view = decide_change(_store(db), request_id=request_id, approve=approve, user=user, reason=reason)
    if as_json:
        _json(view.to_json())
    else:
        typer.echo(_change_text(view))


def order_approve_change(
    request_id: Annotated[int, typer.Argument(help="Change request number.")],
    user: UserOpt,
    reason: Annotated[str, typer.Option("--reason")] = "",
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Approve a change request: the order gets a new version with the change."""
    _decide_change(request_id, True, user, reason, db, as_json)


def order_reject_change(
    request_id: Annotated[int, typer.Argument(help="Change request number.")],
    user: UserOpt,
    reason: ReasonOpt,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Reject a change request (with a reason); the order stays as it is."""
    _decide_change(request_id, False, user, reason, db, as_json)


def order_versions(
    order_no: Annotated[str, typer.Argument(help="Order number.")],
    user: Annotated[
        str | None, typer.Option("--user", help="Show only what this user's roles may see.")
    ] = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """An order's versions, each compared with the one before (changed values marked)."""
    from rich.table import Table

    from orderdesk.money import format_money
    from orderdesk.sales import compare_revisions, order_revisions

    revisions = order_revisions(_store(db), order_no, viewer=user)
    if as_json:
        _json(
            [
                {
                    "revision": r.revision,
                    "created_at": r.created_at.isoformat(),
                    "created_by": r.created_by,
                    "change_request": r.change_request_id,
                    "lines": [{"sku": ln.sku, "name": ln.name, "quantity": ln.quantity} for ln in r.lines],
                    "ship_address": r.ship_address,
                    "promised_date": r.promised_date.isoformat() if r.promised_date else None,
                    "amount": r.amount,
                }
                for r in revisions
            ]
        )
        return
    if len(revisions) == 1:
        typer.echo(_("{order_no} has one version: it was never changed.", order_no=order_no.upper()))
    for old, new in pairwise(revisions):
        diff = compare_revisions(old, new)
        table = Table(title=_("Version {old} → {new}", old=old.revision, new=new.revision))
        table.add_column("")
        table.add_column(f"v{old.revision}")
        table.add_column(f"v{new.revision}")
        for line in diff.lines:
            mark = "bold yellow" if line.changed else ""
            table.add_row(
                f"{line.sku} {line.name}",
                "-" if line.before is None else str(line.before),
                "-" if line.after is None else str(line.after),
                style=mark,
            )
        table.add_row(
            _("Ship to"),
            old.ship_address,
            new.ship_address,
            style="bold yellow" if diff.address_changed else "",
        )
        table.add_row(
            _("Promised"),
            str(old.promised_date),
            str(new.promised_date),
            style="bold yellow" if diff.date_changed else "",
        )
        if old.amount is None or new.amount is None:
            _print(table)
            continue
        table.add_row(
            _("Amount"),
            format_money(old.amount),
            format_money(new.amount),
            style="bold yellow" if diff.amount_changed else "",
        )
        _print(table)


# -- qc ------------------------------------------------------------------------------------------------
@qc_app.command("record")
def qc_record(
    order_no: Annotated[str, typer.Argument(help="Order number.")],
    user: UserOpt,
    passed: Annotated[
        bool | None,
        typer.Option("--pass/--fail", help="--pass: every line passed; --fail: the --defect lines failed."),
    ] = None,
    defect: Annotated[
        list[str] | None, typer.Option("--defect", help="SKU=D01,D03: that line failed with these defects.")
    ] = None,
    measure: Annotated[list[str] | None, typer.Option("--measure", help="SKU=TEXT: measured values.")] = None,
    samples: Annotated[
        list[str] | None, typer.Option("--samples", help="SKU=N: units inspected on that line.")
    ] = None,
    sample: Annotated[
        list[str] | None,
        typer.Option("--sample", help="SKU:N:pass or SKU:N:fail:D01 (one sample's verdict)."),
    ] = None,
    reason: Annotated[str, typer.Option("--reason", help="Why it failed (default: the defects).")] = "",
    note: Annotated[str, typer.Option("--note", help="Notes on the inspection.")] = "",
    expect_version: Annotated[int | None, typer.Option("--expect-version")] = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Record an inspection: --pass moves the order to ready to ship, --fail back to rework with the reason."""
    from orderdesk.qc import RESULT_LABELS, Verdict, inspection_plan, record_inspection

    if passed is None:
        raise UsageError(msg("Say --pass or --fail."))
    store = _store(db)
    plan = inspection_plan(store, order_no)
    defects = {
        k: tuple(c for c in v.split(",") if c.strip())
        for k, v in _pairs(defect or [], "--defect", "SKU=D01,D03")
    }
    measures = dict(_pairs(measure or [], "--measure", "SKU=TEXT"))
    counts = {k: _int(v, "--samples") for k, v in _pairs(samples or [], "--samples", "SKU=N")}
    if passed and defects:
        raise UsageError(msg("--defect marks a failed line; use it with --fail."))
    per_sample: dict[str, list[Verdict]] = {}
    for item in sample or []:
        parts = item.split(":")
        if len(parts) < 3 or not parts[1].isdigit() or parts[2] not in ("pass", "fail"):
            raise UsageError(msg("--sample takes SKU:N:pass or SKU:N:fail:D01, not {value}.", value=item))
        per_sample.setdefault(parts[0], []).append(
            Verdict(
                line=parts[0],
                passed=parts[2] == "pass",
                sample_no=int(parts[1]),
                defects=tuple(c for c in ":".join(parts[3:]).split(",") if c),
                measurements=measures.get(parts[0], ""),
            )
        )
    verdicts: list[Verdict] = []
    for line in plan.lines:
        if line.sku in per_sample:
            verdicts += per_sample.pop(line.sku)
            continue
        failed = line.sku in defects
        verdicts.append(
            Verdict(
                line=line.line_no,
                passed=not failed,
                samples=counts.get(line.sku, 0),
                defects=defects.get(line.sku, ()),
                measurements=measures.get(line.sku, ""),
            )
        )
    unknown = set(per_sample) | (set(defects) - {ln.sku for ln in plan.lines})
    if unknown:
        raise UsageError(msg("The order has no line {line}.", line=", ".join(sorted(unknown))))
    if not passed and not defects and not any(not v.passed for v in verdicts):
        raise UsageError(msg("--fail needs at least one --defect SKU=CODE (or a failed --sample)."))
    view = record_inspection(
        store,
        order_no=order_no,
        user=user,
        verdicts=verdicts,
        notes=note,
        reason=reason,
        expected_version=expect_version,
    )
    if as_json:
        _json(view.to_json())
    else:
        typer.echo(
            _(
                "Inspection #{seq} of {order_no}: {result}.",
                seq=view.seq,
                order_no=view.order_no,
                result=str(RESULT_LABELS[view.result]),
            )
            + (f" {view.reason}" if view.reason else "")
        )


@qc_app.command("queue")
def qc_queue_cmd(
    inspector: Annotated[
        str | None, typer.Option(help='Only this inspector\'s orders ("-": unassigned).')
    ] = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Orders awaiting inspection, the longest waiting first."""
    from rich.table import Table

    from orderdesk.qc import qc_queue

    items = qc_queue(_store(db), inspector=inspector, limit=200)
    if as_json:
        _json(
            [
                {
                    "order_no": i.order_no,
                    "customer": i.customer_name,
                    "waiting_hours": round(i.waiting.total_seconds() / 3600, 1),
                    "inspector": i.inspector or None,
                    "lines": i.lines,
                    "rush": i.rush,
                    "promised_date": i.promised_date.isoformat() if i.promised_date else None,
                    "inspections": i.inspections,
                }
                for i in items
            ]
        )
        return
    table = Table(title=_("Awaiting QC: {count}", count=len(items)))
    for header in (_("Order"), _("Customer"), _("Waiting"), _("Inspector"), _("Lines")):
        table.add_column(header)
    for i in items:
        table.add_row(
            i.order_no + (" !" if i.rush else ""),
            i.customer_name,
            f"{i.waiting.total_seconds() / 3600:.0f} h",
            i.inspector or "-",
            str(i.lines),
        )
    _print(table)


@qc_app.command("history")
def qc_history(
    order_no: Annotated[str, typer.Argument(help="Order number.")], db: DbOpt = None, as_json: JsonOpt = False
) -> None:
    """Every inspection of an order, first to last."""
    from orderdesk.qc import RESULT_LABELS, inspection_history

    views = inspection_history(_store(db), order_no)
    if as_json:
        _json([v.to_json() for v in views])
        return
    if not views:
        typer.echo(_("{order_no} has not been inspected yet.", order_no=order_no.upper()))
    for v in views:
        typer.echo(
            f"#{v.seq} {v.at:%Y-%m-%d %H:%M} {v.inspector} {RESULT_LABELS[v.result]}"
            + (f" · {v.reason}" if v.reason else "")
        )
        for f in v.findings:
            sample = f" #{f.sample_no}" if f.sample_no else f" ({f.samples})"
            typer.echo(
                f"    {f.sku}{sample} {RESULT_LABELS['passed' if f.passed else 'failed']} {','.join(f.defects)} {f.measurements}".rstrip()
            )


@qc_app.command("yield")
def qc_yield(
    since: Annotated[str | None, typer.Option(help="From this date (default: 90 days ago).")] = None,
    until: Annotated[str | None, typer.Option(help="To this date, inclusive (default: today).")] = None,
    by: Annotated[str, typer.Option(help="month, week or all.")] = "month",
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """First-pass yield by product and period: lines that passed their first inspection."""
    from datetime import timedelta

    from rich.table import Table

    from orderdesk.qc import first_pass_yield

    store = _store(db)
    end = _date(until, "--until") or store.clock().date()
    start = _date(since, "--since") or end - timedelta(days=90)
    rows = first_pass_yield(store, since=start, until=end, by=by)
    if as_json:
        _json([r.to_json() for r in rows])
        return
    table = Table(
        title=_("First-pass yield {since} – {until}", since=start.isoformat(), until=end.isoformat())
    )
    for header in (_("Period"), "SKU", _("Name"), _("Inspected"), _("Passed first"), _("Yield")):
        table.add_column(header)
    for r in rows:
        table.add_row(
            r.period,
            r.sku or _("all products"),
            r.name,
            str(r.inspected),
            str(r.passed_first),
            f"{r.yield_pct:.1f}%",
        )
    _print(table)


@qc_app.command("defects")
def qc_defects(db: DbOpt = None, as_json: JsonOpt = False) -> None:
    """The defect codes configured in rules.toml."""
    from orderdesk.rules import rules_for

    rules = rules_for(_store(db))
    if as_json:
        _json([{"code": d.id, "label": d.label.to_json()} for d in rules.defect_codes.values()])
        return
    for d in rules.defect_codes.values():
        typer.echo(f"{d.id}  {d.label}")


# -- invoices and payments -----------------------------------------------------------------------------
@invoice_app.command("create")
def invoice_create(
    order_no: Annotated[list[str], typer.Argument(help="Shipped orders (their linked orders come along).")],
    user: UserOpt,
    on: Annotated[str | None, typer.Option("--date", help="Invoice date (default: today).")] = None,
    note: Annotated[str, typer.Option("--note")] = "",
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Invoice shipped orders of one customer (linked orders go on the same invoice)."""
    from orderdesk.finance import create_invoice
    from orderdesk.money import format_money

    view = create_invoice(
        _store(db), order_nos=order_no, user=user, invoice_date=_date(on, "--date"), note=note
    )
    if as_json:
        _json(view.to_json())
    else:
        typer.echo(
            _(
                "Invoice {invoice_no} for {customer}: {total} ({orders}), due {due}.",
                invoice_no=view.invoice_no,
                customer=view.customer_name,
                total=format_money(view.total),
                orders=", ".join(view.orders),
                due=view.due_date.isoformat(),
            )
        )


@invoice_app.command("pending")
def invoice_pending(
    user: UserOpt,
    customer: Annotated[str | None, typer.Option()] = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Shipped orders not yet invoiced (parents with their linked orders)."""
    from orderdesk.finance import orders_to_invoice
    from orderdesk.money import format_money

    items = orders_to_invoice(_store(db), viewer=user, customer=customer, limit=200)
    if as_json:
        _json(
            [
                {
                    "order_no": i.order_no,
                    "customer": i.customer_code,
                    "amount": i.amount,
                    "children": list(i.children),
                    "ready": i.ready,
                    "waiting_for": list(i.waiting_for),
                }
                for i in items
            ]
        )
        return
    for i in items:
        extra = f" + {', '.join(i.children)}" if i.children else ""
        wait = f" ({_('waiting for')} {', '.join(i.waiting_for)})" if i.waiting_for else ""
        typer.echo(f"{i.order_no}{extra}  {i.customer_name}  {format_money(i.amount)}{wait}")


@invoice_app.command("list")
def invoice_list(
    user: UserOpt,
    customer: Annotated[str | None, typer.Option()] = None,
    open_only: Annotated[bool, typer.Option("--open", help="Only invoices not fully paid.")] = False,
    since: Annotated[str | None, typer.Option()] = None,
    until: Annotated[str | None, typer.Option()] = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Invoices, newest first."""
    from rich.table import Table

    from orderdesk.finance import list_invoices
    from orderdesk.money import format_money

    views = list_invoices(
        _store(db),
        viewer=user,
        customer=customer,
        open_only=open_only,
        since=_date(since, "--since"),
        until=_date(until, "--until"),
        limit=1000,
    )
    if as_json:
        _json([v.to_json() for v in views])
        return
    table = Table(title=_("Invoices: {count}", count=len(views)))
    for header in (_("Invoice"), _("Date"), _("Customer"), _("Total"), _("Unpaid")):
        table.add_column(header)
    for v in views:
        table.add_row(
            v.invoice_no,
            v.invoice_date.isoformat(),
            v.customer_name,
            format_money(v.total),
            format_money(v.open),
        )
    _print(table)


@invoice_app.command("export")
def invoice_export(
    path: Annotated[Path, typer.Argument(help="File to write: .csv or .xlsx.")],
    user: UserOpt,
    since: Annotated[str | None, typer.Option()] = None,
    until: Annotated[str | None, typer.Option()] = None,
    fmt: Annotated[
        str | None, typer.Option("--format", help="csv or xlsx (default: from the file name).")
    ] = None,
    db: DbOpt = None,
) -> None:
    """Write the invoice register with the columns a Chinese accounting package imports."""
    from orderdesk.finance import export_invoices

    count = export_invoices(
        _store(db), path, viewer=user, since=_date(since, "--since"), until=_date(until, "--until"), fmt=fmt
    )
    typer.echo(_("{count} rows written to {path}.", count=count, path=str(path)))


@payment_app.command("record")
def payment_record(
    customer: Annotated[str, typer.Option("--customer", help="Customer code.")],
    amount: Annotated[str, typer.Option("--amount", help="Amount received, e.g. 1234.50.")],
    user: UserOpt,
    invoice: Annotated[
        list[str] | None, typer.Option("--invoice", help="Match to this invoice (repeat).")
    ] = None,
    on: Annotated[str | None, typer.Option("--date", help="Date received (default: today).")] = None,
    method: Annotated[str, typer.Option(help="bank, cash, alipay, wechat, acceptance, other")] = "bank",
    reference: Annotated[str, typer.Option(help="Bank reference (a repeat is refused).")] = "",
    note: Annotated[str, typer.Option()] = "",
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Record a payment and match it to invoices (named ones, else the oldest open ones)."""
    from orderdesk.finance import record_payment
    from orderdesk.money import format_money

    view = record_payment(
        _store(db),
        customer=customer,
        amount=_money(amount, "--amount"),
        user=user,
        received_on=_date(on, "--date"),
        invoices=invoice or [],
        method=method,
        reference=reference,
        note=note,
    )
    if as_json:
        _json(view.to_json())
        return
    matched = ", ".join(f"{no} {format_money(a)}" for no, a in view.matched) or "-"
    typer.echo(
        _(
            "Payment {payment_no}: {amount} from {customer}; matched {matched}; on account {left}.",
            payment_no=view.payment_no,
            amount=format_money(view.amount),
            customer=view.customer_name,
            matched=matched,
            left=format_money(view.unallocated),
        )
    )


@payment_app.command("list")
def payment_list(
    user: UserOpt,
    customer: Annotated[str | None, typer.Option()] = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Payments, newest first."""
    from orderdesk.finance import list_payments
    from orderdesk.money import format_money

    views = list_payments(_store(db), viewer=user, customer=customer, limit=1000)
    if as_json:
        _json([v.to_json() for v in views])
        return
    for v in views:
        typer.echo(
            f"{v.payment_no}  {v.received_on}  {v.customer_name}  {format_money(v.amount)}  {format_money(v.unallocated)}"
        )


# -- credit and approvals ------------------------------------------------------------------------------
def _queue_json(items: list[Any]) -> list[dict[str, Any]]:
    return [
        {
            "order_no": i.order_no,
            "customer": {"code": i.customer_code, "name": i.customer_name},
            "amount": i.amount,
            "exposure": i.exposure,
            "credit_limit": i.credit_limit,
            "state": i.state,
            "status": i.status,
            "roles": list(i.roles),
            "last_reason": i.last_reason or None,
        }
        for i in items
    ]


def _queue_print(items: list[Any], title: str) -> None:
    from rich.table import Table

    from orderdesk.finance import HOLD_STATUS
    from orderdesk.money import format_money

    table = Table(title=title)
    for header in (_("Order"), _("Customer"), _("Amount"), _("Exposure"), _("Limit"), _("Status")):
        table.add_column(header)
    for i in items:
        table.add_row(
            i.order_no,
            i.customer_name,
            format_money(i.amount),
            format_money(i.exposure),
            format_money(i.credit_limit),
            str(HOLD_STATUS.get(i.status, i.status)),
        )
    _print(table)


@credit_app.command("holds")
def credit_holds(user: UserOpt, db: DbOpt = None, as_json: JsonOpt = False) -> None:
    """Orders on credit hold, waiting for a decision or kept on hold."""
    from orderdesk.finance import credit_hold_queue

    items = credit_hold_queue(_store(db), viewer=user, limit=200)
    if as_json:
        _json(_queue_json(items))
    else:
        _queue_print(items, _("Credit holds: {count}", count=len(items)))


def _decide_credit(order_no: str, release: bool, user: str, reason: str, db: Path | None) -> None:
    from orderdesk.finance import decide_credit

    store = _store(db)
    state = decide_credit(store, order_no=order_no, release=release, user=user, reason=reason)
    label = store.workflow.state_label(state, _current_lang())
    typer.echo(
        _("{order_no} released: now {state}.", order_no=order_no.upper(), state=label)
        if release
        else _("{order_no} kept on hold.", order_no=order_no.upper())
    )


def _current_lang() -> str:
    from orderdesk.i18n import current_language

    return current_language()


@credit_app.command("release")
def credit_release(
    order_no: Annotated[str, typer.Argument(help="Order number.")],
    user: UserOpt,
    reason: ReasonOpt,
    db: DbOpt = None,
) -> None:
    """Release an order from its credit hold; it resumes where it was."""
    _decide_credit(order_no, True, user, reason, db)


@credit_app.command("keep")
def credit_keep(
    order_no: Annotated[str, typer.Argument(help="Order number.")],
    user: UserOpt,
    reason: ReasonOpt,
    db: DbOpt = None,
) -> None:
    """Keep an order on credit hold (sales is told why)."""
    _decide_credit(order_no, False, user, reason, db)


@credit_app.command("exposure")
def credit_exposure_cmd(
    customer: Annotated[str, typer.Argument(help="Customer code.")],
    user: UserOpt,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """A customer's credit exposure: open receivables + uninvoiced open orders − unmatched money."""
    from orderdesk.finance import customer_exposure
    from orderdesk.money import format_money

    row = customer_exposure(_store(db), customer=customer, viewer=user)
    if as_json:
        _json(row.to_json())
        return
    typer.echo(
        _(
            "{customer}: receivable {receivable}, uninvoiced {uninvoiced}, unmatched {unallocated}; exposure {exposure} "
            "of {limit} (available {available}).",
            customer=row.customer_name,
            receivable=format_money(row.receivable),
            uninvoiced=format_money(row.uninvoiced),
            unallocated=format_money(row.unallocated),
            exposure=format_money(row.exposure),
            limit=format_money(row.credit_limit),
            available=format_money(row.available),
        )
    )


@approval_app.command("list")
def approval_list(user: UserOpt, db: DbOpt = None, as_json: JsonOpt = False) -> None:
    """Large orders waiting for approval."""
    from orderdesk.finance import approval_queue

    items = approval_queue(_store(db), viewer=user, limit=200)
    if as_json:
        _json(_queue_json(items))
    else:
        _queue_print(items, _("Approvals: {count}", count=len(items)))


@approval_app.command("approve")
def approval_approve(
    order_no: Annotated[str, typer.Argument(help="Order number.")],
    user: UserOpt,
    reason: Annotated[str, typer.Option("--reason")] = "",
    db: DbOpt = None,
) -> None:
    """Approve a large order."""
    from orderdesk.finance import decide_approval

    decide_approval(_store(db), order_no=order_no, approve=True, user=user, reason=reason)
    typer.echo(_("{order_no} approved.", order_no=order_no.upper()))


@approval_app.command("reject")
def approval_reject(
    order_no: Annotated[str, typer.Argument(help="Order number.")],
    user: UserOpt,
    reason: ReasonOpt,
    db: DbOpt = None,
) -> None:
    """Reject a large order (with a reason); sales must change or cancel it."""
    from orderdesk.finance import decide_approval

    decide_approval(_store(db), order_no=order_no, approve=False, user=user, reason=reason)
    typer.echo(_("{order_no} rejected.", order_no=order_no.upper()))


def receivables(
    user: UserOpt,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="Age as of this date (default: today).")
    ] = None,
    export: Annotated[
        Path | None, typer.Option("--export", help="Also write it to this .csv or .xlsx file.")
    ] = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Receivables ageing (0-30, 31-60, 61-90, over 90 days) and credit exposure per customer."""
    from rich.table import Table

    from orderdesk.finance import export_receivables, receivables_ageing
    from orderdesk.money import format_money

    store = _store(db)
    day = _date(as_of, "--as-of") or store.clock().date()
    rows = receivables_ageing(store, viewer=user, as_of=day)
    if export is not None:
        count = export_receivables(store, export, viewer=user, as_of=day)
        typer.echo(_("{count} rows written to {path}.", count=count, path=str(export)), err=as_json)
    if as_json:
        _json({"as_of": day.isoformat(), "customers": [r.to_json() for r in rows]})
        return
    table = Table(title=_("Receivables as of {date}", date=day.isoformat()))
    for header in (_("Customer"), "0-30", "31-60", "61-90", ">90", _("Exposure"), _("Limit")):
        table.add_column(header)
    for r in rows:
        table.add_row(
            r.customer_name,
            *(format_money(b) for b in r.buckets),
            format_money(r.exposure),
            format_money(r.credit_limit),
            style="bold red" if r.available < 0 else "",
        )
    _print(table)


def register(app: typer.Typer) -> None:
    """Add this area's commands to the root CLI."""
    from orderdesk.cli import order_app

    order_app.command("change")(order_change)
    order_app.command("changes")(order_changes)
    order_app.command("approve-change")(order_approve_change)
    order_app.command("reject-change")(order_reject_change)
    order_app.command("versions")(order_versions)
    app.add_typer(qc_app, name="qc")
    app.add_typer(invoice_app, name="invoice")
    app.add_typer(payment_app, name="payment")
    app.add_typer(credit_app, name="credit")
    app.add_typer(approval_app, name="approval")
    app.command("receivables")(receivables)
