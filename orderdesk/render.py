"""Rich renderings for the CLI (Rich measures CJK characters as two cells, so Chinese columns line up)."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Group
from rich.table import Table
from rich.text import Text

from orderdesk.audit import AuditEntry
from orderdesk.i18n import _
from orderdesk.money import format_money
from orderdesk.users import UserInfo
from orderdesk.views import OrderDetail, OrderSummary


def order_list_table(rows: Sequence[OrderSummary], *, total: int, offset: int = 0) -> Table:
    table = Table(
        title=_(
            "Orders {first}-{last} of {total}",
            first=offset + 1 if rows else 0,
            last=offset + len(rows),
            total=total,
        ),
        expand=False,
    )
    for header in (_("Order"), _("Customer"), _("State"), _("Promised"), _("Amount")):
        table.add_column(header, no_wrap=header != _("Customer"))
    for r in rows:
        table.add_row(
            Text(r.order_no + (" !" if r.rush else ""), style="bold red" if r.rush else ""),
            r.customer_name,
            str(r.state_label),
            r.promised_date.isoformat() if r.promised_date else "-",
            format_money(r.amount),
        )
    return table


def order_detail_table(d: OrderDetail) -> Group:
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    head.add_row(_("Order"), d.order_no + ("  " + _("RUSH") if d.rush else ""))
    head.add_row(_("Customer"), f"{d.summary.customer_name} ({d.summary.customer_code})  {d.customer_phone}")
    head.add_row(_("State"), f"{d.summary.state_label} · v{d.version}")
    head.add_row(_("Ship to"), d.ship_address)
    head.add_row(_("Promised"), d.promised_date.isoformat() if d.promised_date else "-")
    head.add_row(_("Amount"), format_money(d.summary.amount))
    if d.waybill:
        head.add_row(_("Waybill"), d.waybill)
    lines = Table(title=_("Lines"))
    for header in ("#", "SKU", _("Name"), _("Qty"), _("Scanned"), _("Shipped")):
        lines.add_column(header)
    for ln in d.lines:
        lines.add_row(
            str(ln.line_no), ln.sku, ln.name, str(ln.quantity), str(ln.scanned_qty), str(ln.shipped_qty)
        )
    return Group(head, lines, audit_table(d.timeline, title=_("Timeline")))


def audit_table(entries: Sequence[AuditEntry], *, title: str | None = None) -> Table:
    table = Table(title=title or _("Audit trail"))
    for header in ("#", _("When (UTC)"), _("User"), _("Order"), _("Action"), _("Detail")):
        table.add_column(header)
    for e in entries:
        detail = ", ".join(
            f"{k}={v}" for k, v in e.detail.items() if k not in ("order_no",) and v not in ("", None, [])
        )
        table.add_row(
            str(e.id), e.at.strftime("%Y-%m-%d %H:%M:%S"), e.user_name, e.order_no, e.command, detail
        )
    return table


def user_table(users: Sequence[UserInfo]) -> Table:
    table = Table(title=_("Users"))
    for header in (_("Name"), _("Display name"), _("Roles"), _("PIN"), _("Badge")):
        table.add_column(header)
    for u in users:
        table.add_row(
            u.name, u.display_name, ", ".join(u.roles), "✓" if u.has_pin else "-", "✓" if u.has_badge else "-"
        )
    return table
