"""Plain, frozen read models. ORM rows never leave the store's sessions; screens and the CLI get these.

``to_json`` output is the documented, stable JSON of ``orderdesk order show/list --json``. Given the set of
fields a role may see (from the workflow's ``[roles]``), fields outside it are left out entirely.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from orderdesk.audit import AuditEntry
from orderdesk.i18n import Label
from orderdesk.money import format_money


@dataclass(frozen=True)
class LineView:
    line_no: int
    sku: str
    name: str
    unit: str
    barcodes: tuple[str, ...]
    quantity: int
    scanned_qty: int
    shipped_qty: int
    batch: str
    unit_price: int
    hazard: str

    def to_json(self, see: Collection[str] | None = None) -> dict[str, Any]:
        data: dict[str, Any] = {
            "line_no": self.line_no,
            "sku": self.sku,
            "name": self.name,
            "unit": self.unit,
            "barcode": self.barcodes[0] if self.barcodes else "",
            "barcodes": list(self.barcodes),
            "quantity": self.quantity,
            "scanned_qty": self.scanned_qty,
            "shipped_qty": self.shipped_qty,
            "batch": self.batch,
            "unit_price": self.unit_price,
            "hazard": self.hazard,
        }
        return _redact(data, see, LINE_FIELDS)


@dataclass(frozen=True)
class OrderSummary:
    order_no: str
    channel: str
    customer_code: str
    customer_name: str
    amount: int
    promised_date: date | None
    rush: bool
    state: str
    state_label: Label
    state_since: datetime
    version: int

    def to_json(self, see: Collection[str] | None = None) -> dict[str, Any]:
        data = {
            "order_no": self.order_no,
            "channel": self.channel,
            "customer": {"code": self.customer_code, "name": self.customer_name},
            "amount": self.amount,
            "amount_text": format_money(self.amount),
            "promised_date": self.promised_date.isoformat() if self.promised_date else None,
            "rush": self.rush,
            "state": self.state,
            "state_label": self.state_label.to_json(),
            "state_since": self.state_since.isoformat(),
            "version": self.version,
        }
        return _redact(data, see, ORDER_FIELDS)


@dataclass(frozen=True)
class TransitionOption:
    id: str
    to: str
    label: Label
    to_label: Label


@dataclass(frozen=True)
class OrderDetail:
    summary: OrderSummary
    customer_phone: str
    customer_contact: str
    credit_terms: str
    ship_address: str
    signed_date: date | None
    route: str
    owner: str
    inspector: str
    tech_approved: bool
    materials_kitted: bool
    qc_result: str
    credit_released: bool
    waybill: str
    packing_preset: str
    notes: str
    created_at: datetime
    created_by: str
    updated_at: datetime
    updated_by: str
    lines: tuple[LineView, ...]
    timeline: tuple[AuditEntry, ...]
    transitions: tuple[TransitionOption, ...]  # the moves the viewing user may make (empty if no viewer)

    def __getattr__(self, name: str) -> Any:
        # order_no, state, version... read through to the summary
        return getattr(self.summary, name)

    def to_json(self, see: Collection[str] | None = None) -> dict[str, Any]:
        data = self.summary.to_json(None)
        data["customer"].update(phone=self.customer_phone, contact=self.customer_contact)
        data.update(
            credit_terms=self.credit_terms,
            ship_address=self.ship_address,
            signed_date=self.signed_date.isoformat() if self.signed_date else None,
            route=self.route,
            owner=self.owner,
            inspector=self.inspector,
            tech_approved=self.tech_approved,
            materials_kitted=self.materials_kitted,
            qc_result=self.qc_result,
            credit_released=self.credit_released,
            waybill=self.waybill,
            packing_preset=self.packing_preset,
            notes=self.notes,
            created_at=self.created_at.isoformat(),
            created_by=self.created_by,
            updated_at=self.updated_at.isoformat(),
            updated_by=self.updated_by,
            lines=[line.to_json(see) for line in self.lines],
            timeline=[entry.to_json() for entry in self.timeline],
            transitions=[{"id": t.id, "to": t.to, "label": t.label.to_json()} for t in self.transitions],
        )
        data = _redact(data, see, ORDER_FIELDS)
        if see is not None and "customer_phone" not in see and "customer" in data:
            data["customer"].pop("phone", None)
        return data


# JSON key -> the permission field (workflow FIELDS) that must be visible for it to be shown.
ORDER_FIELDS = {
    "channel": "channel",
    "customer": "customer",
    "amount": "amount",
    "amount_text": "amount",
    "credit_terms": "credit_terms",
    "ship_address": "ship_address",
    "signed_date": "signed_date",
    "promised_date": "promised_date",
    "rush": "rush",
    "owner": "owner",
    "inspector": "inspector",
    "tech_approved": "tech_approved",
    "materials_kitted": "materials_kitted",
    "qc_result": "qc_result",
    "waybill": "waybill",
    "notes": "notes",
}
LINE_FIELDS = {
    "sku": "lines.sku",
    "name": "lines.name",
    "quantity": "lines.quantity",
    "scanned_qty": "lines.scanned",
    "shipped_qty": "lines.shipped",
    "batch": "lines.batch",
    "unit_price": "lines.unit_price",
}


def _redact(data: dict[str, Any], see: Collection[str] | None, fields: dict[str, str]) -> dict[str, Any]:
    if see is None:
        return data
    return {k: v for k, v in data.items() if k not in fields or fields[k] in see}
