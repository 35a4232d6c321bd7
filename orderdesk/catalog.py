"""Domain commands for the catalogue: customers and products (used by importers, the demo and screens)."""

from __future__ import annotations

from sqlmodel import select

from orderdesk.barcodes import is_valid_gtin
from orderdesk.commands import SYSTEM, Actor, clean_text, command, require_role
from orderdesk.errors import Refused
from orderdesk.i18n import msg
from orderdesk.models import ADDRESS_MAX, NAME_MAX, Customer, Product, ProductBarcode

HAZARDS = ("none", "hazardous", "prohibited")


def normalise_barcode(code: str) -> str:
    """GTINs (8/12/13/14 digits) are kept as 14 digits so a UPC and its EAN-13 form match."""
    code = code.strip()
    return code.zfill(14) if code.isdigit() and len(code) in (8, 12, 13, 14) else code


def add_customer(
    store,
    *,
    code: str,
    name: str,
    contact: str = "",
    phone: str = "",
    address: str = "",
    region: str = "",
    credit_limit: int = 0,
    settlement_terms: str = "",
    credit_level: str = "B",
    user: str | Actor = SYSTEM,
) -> None:
    """Add a customer. Credit limit in fen."""
    code = clean_text(code, field_name="Customer code", max_len=32, required=True)
    fields = {
        "name": clean_text(name, field_name="Customer name", max_len=NAME_MAX, required=True),
        "contact": clean_text(contact, field_name="Contact", max_len=60),
        "phone": clean_text(phone, field_name="Phone", max_len=32),
        "address": clean_text(address, field_name="Address", max_len=ADDRESS_MAX),
        "region": clean_text(region, field_name="Region", max_len=40),
        "settlement_terms": clean_text(settlement_terms, field_name="Settlement terms", max_len=40),
        "credit_level": clean_text(credit_level, field_name="Credit level", max_len=2),
    }
    if credit_limit < 0:
        raise Refused(msg("A credit limit cannot be negative."), code="bad_value")
    with command(store, "add_customer", user=user) as ctx:
        require_role(ctx, {"sales", "finance", "admin"}, action="add customers")
        if ctx.session.exec(select(Customer).where(Customer.code == code)).first():
            raise Refused(
                msg("A customer with code {code} already exists.", code=code), code="duplicate_customer"
            )
        ctx.session.add(Customer(code=code, credit_limit=credit_limit, **fields))
        ctx.record(args={"code": code, "credit_limit": credit_limit, **fields})


def add_product(
    store,
    *,
    sku: str,
    name: str,
    unit: str = "pcs",
    unit_price: int = 0,
    barcodes: list[str] | None = None,
    hazard: str = "none",
    hazard_note: str = "",
    stock_on_hand: int = 0,
    safety_stock: int = 0,
    lead_time_days: int = 7,
    barcode_units: dict[str, int] | None = None,
    user: str | Actor = SYSTEM,
) -> None:
    """Add a product with its barcodes. Price in fen. ``barcode_units`` says how many units one scan of a
    code stands for (a carton code), default 1."""
    sku = clean_text(sku, field_name="SKU", max_len=40, required=True)
    name = clean_text(name, field_name="Product name", max_len=NAME_MAX, required=True)
    if hazard not in HAZARDS:
        raise Refused(msg("Hazard must be one of {values}.", values=", ".join(HAZARDS)), code="bad_value")
    if min(unit_price, stock_on_hand, safety_stock, lead_time_days) < 0:
        raise Refused(msg("Prices, stock and lead times cannot be negative."), code="bad_value")
    codes = [normalise_barcode(c) for c in (barcodes or []) if c.strip()]
    for raw in barcodes or []:
        digits = raw.strip()
        if digits.isdigit() and len(digits) in (8, 12, 13, 14) and not is_valid_gtin(digits):
            raise Refused(
                msg("Barcode {code} has a wrong check digit; copy it again from the label.", code=digits),
                code="bad_barcode",
            )
    units = {normalise_barcode(c): n for c, n in (barcode_units or {}).items()}
    if any(c not in codes or not 1 <= n <= 100_000 for c, n in units.items()):
        raise Refused(
            msg("Units per scan must be from 1 to 100000, for one of the product's barcodes."),
            code="bad_value",
        )
    with command(store, "add_product", user=user) as ctx:
        require_role(ctx, {"planner", "admin"}, action="add products")
        if ctx.session.exec(select(Product).where(Product.sku == sku)).first():
            raise Refused(msg("A product with SKU {sku} already exists.", sku=sku), code="duplicate_product")
        for c in codes:
            if ctx.session.get(ProductBarcode, c):
                raise Refused(
                    msg("Barcode {code} already belongs to another product.", code=c),
                    code="duplicate_barcode",
                )
        product = Product(
            sku=sku,
            name=name,
            unit=unit,
            unit_price=unit_price,
            hazard=hazard,
            hazard_note=hazard_note,
            stock_on_hand=stock_on_hand,
            safety_stock=safety_stock,
            lead_time_days=lead_time_days,
        )
        ctx.session.add(product)
        ctx.session.flush()
        for c in codes:
            kind = "gtin" if c.isdigit() and len(c) == 14 else "code128"
            ctx.session.add(
                ProductBarcode(code=c, product_id=product.id or 0, kind=kind, units=units.get(c, 1))
            )
        ctx.record(
            args={
                "sku": sku,
                "name": name,
                "unit": unit,
                "unit_price": unit_price,
                "barcodes": codes,
                "barcode_units": units,
                "hazard": hazard,
                "hazard_note": hazard_note,
                "stock_on_hand": stock_on_hand,
                "safety_stock": safety_stock,
                "lead_time_days": lead_time_days,
            }
        )
