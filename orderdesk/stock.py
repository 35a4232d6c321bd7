"""Stock on hand changes by deltas: "+20 received", "-3 damaged". A delta that would take stock below zero
is refused, on the desk and again on the central API, where deltas from every desk meet."""

from __future__ import annotations

from orderdesk.commands import Actor, clean_text, command, require_role
from orderdesk.errors import Refused
from orderdesk.i18n import msg
from orderdesk.models import REASON_MAX
from orderdesk.orders import find_product

MAX_DELTA = 1_000_000


def adjust_stock(store, *, sku: str, delta: int, user: str | Actor, reason: str = "") -> int:
    """Add ``delta`` (may be negative) to a product's stock on hand; returns the new stock."""
    if not isinstance(delta, int) or delta == 0 or abs(delta) > MAX_DELTA:
        raise Refused(
            msg("A stock change is a whole number from -{max} to {max}, not 0.", max=MAX_DELTA),
            code="bad_quantity",
        )
    reason = clean_text(reason, field_name="Reason", max_len=REASON_MAX)
    with command(store, "adjust_stock", user=user) as ctx:
        require_role(ctx, {"warehouse", "planner", "admin"}, action="change stock")
        product = find_product(ctx.session, sku)
        if product.stock_on_hand + delta < 0:
            raise Refused(
                msg(
                    "Not enough stock of {sku}: {on_hand} on hand, cannot take {take}.",
                    sku=product.sku,
                    on_hand=product.stock_on_hand,
                    take=-delta,
                ),
                code="stock_below_zero",
                who=("planner", "warehouse"),
            )
        product.stock_on_hand += delta
        ctx.session.add(product)
        ctx.record(args={"sku": product.sku, "delta": delta, "reason": reason})
        return product.stock_on_hand
