"""Helpers the sales, QC and finance tests share: walking an order along the workflow as the people who do
each step would, and driving the app in Pilot tests."""

from __future__ import annotations

import contextlib
from datetime import date
from typing import Any

from sqlalchemy import text
from textual.pilot import Pilot
from textual.widgets import DataTable, Input
from textual.worker import WorkerCancelled

from orderdesk.clock import FixedClock
from orderdesk.orders import create_order, edit_order, move_order
from orderdesk.store import Store
from screens.app import OrderdeskApp, build_app

SIZE = (80, 24)


def to_tech_review(store: Store, order_no: str) -> None:
    move_order(store, order_no=order_no, to="sign_contract", user="wang")
    move_order(store, order_no=order_no, to="start_tech_review", user="zhao")


def to_qc_pending(store: Store, order_no: str, *, inspector: str | None = "zhou") -> None:
    """Draft → QC pending the way the desk would: tech sign-off, kitting, production, surface treatment."""
    to_tech_review(store, order_no)
    edit_order(
        store, order_no=order_no, changes={"tech_approved": True, "materials_kitted": True}, user="zhao"
    )
    for step, user in (
        ("approve_tech", "zhao"),
        ("kit_materials", "liu"),
        ("start_production", "zhao"),
        ("to_surface_treatment", "zhao"),
    ):
        move_order(store, order_no=order_no, to=step, user=user)
    if inspector:
        edit_order(store, order_no=order_no, changes={"inspector": inspector}, user="zhou")
        move_order(store, order_no=order_no, to="submit_qc", user="zhao")


def scan_everything(store: Store, order_no: str) -> None:
    """The warehouse scanned every line (what issue 3's scan-to-ship does), so ``ship`` may go."""
    with store.write() as session:
        session.execute(
            text(
                "UPDATE order_line SET scanned_qty = quantity WHERE order_id = "
                "(SELECT id FROM sales_order WHERE order_no = :no)"
            ),
            {"no": order_no},
        )


def to_packing(store: Store, order_no: str, *, picker: str = "liu") -> None:
    """A from-stock order signed and picked: ready to be packed (scanned)."""
    move_order(store, order_no=order_no, to="sign_contract", user="wang")
    move_order(store, order_no=order_no, to="pick_from_stock", user=picker)


def ready_to_pack(store: Store, quantity: int, *, picker: str = "liu") -> str:
    """A new from-stock order of ``quantity`` HX-M8 bolts, ready to be packed."""
    order_no = create_order(
        store, customer="C001", lines=[("HX-M8", quantity)], user="wang", route="from_stock"
    ).order_no
    to_packing(store, order_no, picker=picker)
    return order_no


def ship_from_stock(store: Store, order_no: str) -> None:
    """A from-stock order: sign, pick from stock, scan, waybill, ship."""
    to_packing(store, order_no)
    ship_ready(store, order_no)


def ship_ready(store: Store, order_no: str) -> None:
    """An order ready to ship: scan, waybill, ship."""
    scan_everything(store, order_no)
    edit_order(store, order_no=order_no, changes={"waybill": f"SF{order_no[-7:]}"}, user="liu")
    move_order(store, order_no=order_no, to="ship", user="liu")


def order_state(store: Store, order_no: str) -> str:
    with store.read() as session:
        return str(
            session.execute(
                text("SELECT state FROM sales_order WHERE order_no = :no"), {"no": order_no}
            ).scalar()
        )


def count_orders(store: Store) -> int:
    with store.read() as session:
        return int(session.execute(text("SELECT count(*) FROM sales_order")).scalar() or 0)


def make_app(store: Store, clock: FixedClock, lang: str = "en") -> OrderdeskApp:
    app = build_app(db_path=store.path, clock=clock, lang=lang)
    app.CURSOR_BLINK = False  # type: ignore[misc]
    return app


async def settle(pilot: Pilot[Any]) -> None:
    """Let workers finish and their messages be handled (a handler may start another worker, and a newer
    load may cancel an older one)."""
    for _ in range(6):
        with contextlib.suppress(WorkerCancelled):
            await pilot.app.workers.wait_for_complete()
        await pilot.pause()


async def log_in(pilot: Pilot[Any], name: str) -> None:
    await settle(pilot)
    screen = pilot.app.screen
    screen.query_one("#login-name", Input).value = name
    pin = screen.query_one("#login-pin", Input)
    pin.value = "0000" if name == "admin" else "1234"
    pin.focus()
    await pilot.press("enter")
    await settle(pilot)


def row_keys(table: DataTable[Any]) -> list[str]:
    return [str(table.coordinate_to_cell_key((i, 0)).row_key.value) for i in range(table.row_count)]


def row_texts(table: DataTable[Any], key: str) -> list[str]:
    return [str(c) for c in table.get_row(key)]


def screen_text(app: OrderdeskApp) -> str:
    """What the terminal shows right now, as plain text (one line per row)."""
    from textual.strip import Strip

    compositor = app.screen._compositor
    chops = compositor._render_chops(compositor.size.region, lambda y: True)
    return "\n".join(Strip.join(list(chop.values())).text for chop in chops)


def today(clock: FixedClock) -> date:
    return clock().date()
