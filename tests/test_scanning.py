"""The packing desk's domain commands and station (orderdesk.scanning), on a real SQLite file.

Every refusal is checked for its reason *and* for nothing having changed; every accepted scan for its row,
its audit record (with who) and its outbox record.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from orderdesk import scanning
from orderdesk.barcodes import make_ean13
from orderdesk.catalog import add_product
from orderdesk.errors import Refused, StoreError
from orderdesk.i18n import msg
from orderdesk.labels import load_presets
from orderdesk.orders import create_order, move_order, show_order
from orderdesk.scanning import (
    NewScan,
    PackingStation,
    ShippingSettings,
    choose_packing_preset,
    is_local_waybill,
    make_local_waybill,
    open_for_packing,
    order_scans,
    packing_view,
    park_order,
    record_scan,
    record_scans,
    record_waybill,
    release_hazard,
    reset_packing,
    ship_order,
    undo_last_scan,
)
from orderdesk.store import Store
from tests.desks_support import to_packing
from tests.sync_harness import copy_sqlite

HX = "6901234567892"  # HX-M8's EAN-13
HX14 = "0" + HX


# -- helpers ---------------------------------------------------------------------------------------------
def ready(desk: Store, *lines: tuple[str, int], customer: str = "C001") -> str:
    """An order on the from-stock route, moved to ready to ship."""
    order_no = create_order(
        desk, customer=customer, lines=list(lines) or [("HX-M8", 3)], user="wang", route="from_stock"
    ).order_no
    to_packing(desk, order_no, picker="zhao")
    return order_no


def refused(fn: Callable[..., Any], /, **kwargs: Any) -> Refused:
    with pytest.raises(Refused) as info:
        fn(**kwargs)
    return info.value


def one(store: Store, sql: str, **params: Any) -> Any:
    with store.read() as session:
        return session.exec(text(sql), params=params).scalar()  # type: ignore[call-overload]


def line(store: Store, order_no: str, sku: str) -> Any:
    return next(ln for ln in show_order(store, order_no).lines if ln.sku == sku)


def counts(store: Store) -> tuple[int, int, int]:
    """Scans, audit records and outbox records: a refusal must change none of them."""
    return (
        one(store, "SELECT count(*) FROM scan"),
        one(store, "SELECT count(*) FROM audit_record"),
        one(store, "SELECT count(*) FROM outbox"),
    )


def add_valid_product(desk: Store, sku: str, body12: str, **kwargs: Any) -> str:
    code = make_ean13(body12)
    add_product(desk, sku=sku, name=kwargs.pop("name", sku), barcodes=[code], user="zhao", **kwargs)
    return code


@pytest.fixture
def settings(tmp_path: Path) -> ShippingSettings:
    return ShippingSettings(label_dir=tmp_path / "labels", label_format="png")


@pytest.fixture
def order_no(desk: Store) -> str:
    no = ready(desk, ("HX-M8", 3), ("FL-DN50", 2))
    open_for_packing(desk, order_no=no, user="liu")
    return no


# -- opening an order ------------------------------------------------------------------------------------
def test_opening_shows_the_lines_and_remembers_the_order_for_the_user(desk: Store) -> None:
    no = ready(desk, ("HX-M8", 3), ("FL-DN50", 2))
    view, taken = open_for_packing(desk, order_no=no, user="liu")
    assert taken == ""
    assert [(ln.sku, ln.quantity, ln.scanned) for ln in view.lines] == [("HX-M8", 3, 0), ("FL-DN50", 2, 0)]
    assert view.customer == "苏州精工机械有限公司" and view.state == "ready_to_ship"
    assert view.still_needed() == "HX-M8 x3, FL-DN50 x2"
    again = packing_view(desk, user="liu")
    assert again is not None and again.order_no == no
    audit = one(
        desk, "SELECT count(*) FROM audit_record WHERE command='open_for_packing' AND user_name='liu'"
    )
    assert audit == 1
    open_for_packing(desk, order_no=no, user="liu")  # already open: nothing new is written
    assert one(desk, "SELECT count(*) FROM audit_record WHERE command='open_for_packing'") == 1


def test_a_station_the_central_api_closed_is_not_remembered_under_its_id(desk: Store) -> None:
    """The central API opens and closes a station once per run of a desk's ops, writing packing_session
    directly (``start_packing``, ``close_packing``). A station the transaction holds as an object and then
    closes is forgotten: the next station opened takes the same id and is read as itself."""
    from sqlmodel import select

    from orderdesk.models import PackingSession
    from orderdesk.users import add_user

    add_user(desk, name="ma", roles=["warehouse"], pin="1234")
    first, second = ready(desk), ready(desk)
    mine = select(PackingSession).where(PackingSession.user_name == "liu")
    with desk.write() as session:
        scanning.start_packing(desk, order_no=first, user="liu")
        held = session.exec(mine).one()
        assert held.order_no == first
        held.waybill = "SF1234567890"  # changed, not written yet: written, then removed with the station
        scanning.close_packing(session, users={"liu"})
        scanning.start_packing(desk, order_no=second, user="liu")
        again = session.exec(mine).one()
        assert again.id == held.id  # SQLite gave the new row the closed one's id
        assert (again.order_no, again.waybill) == (second, "")
        assert again is not held
        scanning.start_packing(desk, order_no=second, user="ma")  # another station takes the order over
        assert [s.user_name for s in session.exec(select(PackingSession)).all()] == ["ma"]


def test_an_order_number_can_be_typed_as_its_last_digits(desk: Store) -> None:
    no = ready(desk)
    view, _ = open_for_packing(desk, order_no=str(int(no[-7:])), user="liu")
    assert view.order_no == no


@pytest.mark.parametrize(
    ("prepare", "code", "who"),
    [
        ("draft", "not_ready", ("sales",)),
        ("hold", "order_on_hold", ("admin", "finance", "planner", "supervisor")),
        ("cancel", "order_closed", ("sales",)),
    ],
)
def test_an_order_that_is_not_ready_to_ship_cannot_be_opened(
    desk: Store, prepare: str, code: str, who: tuple[str, ...]
) -> None:
    if prepare == "draft":
        no = create_order(desk, customer="C001", lines=[("HX-M8", 1)], user="wang").order_no
    else:
        no = ready(desk)
        move_order(desk, order_no=no, to="hold" if prepare == "hold" else "cancel", user="sun")
    before = counts(desk)
    err = refused(open_for_packing, store=desk, order_no=no, user="liu")
    assert err.code == code and err.who == who
    assert packing_view(desk, user="liu") is None and counts(desk) == before


def test_only_the_ship_roles_may_pack(desk: Store) -> None:
    err = refused(open_for_packing, store=desk, order_no=ready(desk), user="wang")
    assert err.code == "forbidden" and "warehouse" in err.who


def test_another_orders_barcode_while_one_is_open(desk: Store, order_no: str) -> None:
    other = ready(desk)
    err = refused(open_for_packing, store=desk, order_no=other, user="liu")
    assert err.code == "another_order"
    assert order_no in str(err) and other in str(err)
    view = packing_view(desk, user="liu")
    assert view is not None and view.order_no == order_no


def test_a_second_packer_takes_the_order_over(desk: Store, order_no: str) -> None:
    record_scan(desk, user="liu", code=HX)
    view, taken = open_for_packing(desk, order_no=order_no, user="admin")
    assert taken == "liu" and view.lines[0].scanned == 1
    err = refused(record_scan, store=desk, user="liu", code=HX, order_no=order_no)
    assert err.code == "taken_over" and "admin" in str(err)


# -- scanning items --------------------------------------------------------------------------------------
def test_a_right_item_counts_up_with_its_row_audit_and_outbox(desk: Store, order_no: str) -> None:
    version = show_order(desk, order_no).version
    result = record_scan(desk, user="liu", code=HX, idem_key="k-1")
    assert (result.sku, result.qty, result.line_no) == ("HX-M8", 1, 1)
    assert result.view.lines[0].scanned == 1 and result.view.scans == 1
    assert line(desk, order_no, "HX-M8").scanned_qty == 1
    detail = show_order(desk, order_no)
    assert detail.version == version + 1 and detail.updated_by == "liu"
    (scan,) = order_scans(desk, order_no)
    assert scan["user"] == "liu" and scan["gtin"] == HX14 and scan["qty"] == 1 and scan["source"] == "scanner"
    entry = detail.timeline[-1]
    assert entry.command == "record_scan" and entry.user_name == "liu"
    assert entry.detail["sku"] == "HX-M8" and entry.detail["scanned"] == 1
    outbox = one(desk, "SELECT args FROM outbox WHERE command='record_scan'")
    assert '"idem_key":"k-1"' in outbox


def test_a_finished_line_and_a_finished_order(desk: Store) -> None:
    no = ready(desk, ("HX-M8", 2))
    open_for_packing(desk, order_no=no, user="liu")
    record_scan(desk, user="liu", code=HX)
    result = record_scan(desk, user="liu", code=HX)
    assert result.view.lines[0].done and result.view.complete and result.view.still_needed() == ""


def test_an_item_not_in_the_order_says_what_is_still_needed(desk: Store, order_no: str) -> None:
    before = counts(desk)
    err = refused(record_scan, store=desk, user="liu", code="4006381333931")  # BR-6204
    assert err.code == "not_in_order"
    assert "BR-6204" in str(err) and "HX-M8 x3, FL-DN50 x2" in str(err)
    assert counts(desk) == before


def test_more_than_ordered_does_not_change_the_count(desk: Store, order_no: str) -> None:
    for _ in range(3):
        record_scan(desk, user="liu", code=HX)
    version = show_order(desk, order_no).version
    before = counts(desk)
    err = refused(record_scan, store=desk, user="liu", code=HX)
    assert err.code == "over_quantity" and "needs 3, 3 are scanned" in str(err)
    assert line(desk, order_no, "HX-M8").scanned_qty == 3
    assert counts(desk) == before and show_order(desk, order_no).version == version


def test_a_hazardous_item_is_blocked_until_a_supervisor_releases_it(desk: Store) -> None:
    no = ready(desk, ("PT-RED", 1))
    open_for_packing(desk, order_no=no, user="liu")
    err = refused(record_scan, store=desk, user="liu", code="PT-RED")
    assert err.code == "hazard:hazardous" and err.who == ("supervisor", "admin")
    assert "UN1263" in str(err) and "supervisor" in str(err)
    assert refused(release_hazard, store=desk, order_no=no, sku="PT-RED", user="liu").code == "forbidden"
    release_hazard(desk, order_no=no, sku="PT-RED", user="sun", reason="DG packaging checked")
    assert record_scan(desk, user="liu", code="PT-RED").view.lines[0].released_by == "sun"
    entry = show_order(desk, no).timeline[-2]
    assert entry.command == "release_hazard" and entry.user_name == "sun"


def test_a_prohibited_item_only_an_admin_may_release(desk: Store) -> None:
    add_valid_product(
        desk, "LI-BAT", "690111111111", hazard="prohibited", hazard_note="UN3480", stock_on_hand=5
    )
    no = ready(desk, ("LI-BAT", 1))
    open_for_packing(desk, order_no=no, user="liu")
    err = refused(record_scan, store=desk, user="liu", code="LI-BAT")
    assert err.code == "hazard:prohibited" and err.who == ("admin",)
    assert refused(release_hazard, store=desk, order_no=no, sku="LI-BAT", user="sun").code == "forbidden"
    release_hazard(desk, order_no=no, sku="LI-BAT", user="admin")
    assert record_scan(desk, user="liu", code="LI-BAT").qty == 1


def test_not_enough_stock_on_hand_is_blocked(desk: Store) -> None:
    first = ready(desk, ("BR-6204", 3))  # all 3 on hand
    second = ready(desk, ("BR-6204", 1))
    open_for_packing(desk, order_no=first, user="liu")
    for _ in range(3):
        record_scan(desk, user="liu", code="4006381333931")
    park_order(desk, user="liu")
    open_for_packing(desk, order_no=second, user="liu")
    before = counts(desk)
    err = refused(record_scan, store=desk, user="liu", code="4006381333931")
    assert err.code == "no_stock" and err.who == ("planner",)
    assert "3 on hand, 3 already packed" in str(err)
    assert counts(desk) == before


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("6900000000014", "unknown_code"),  # a valid EAN nobody sells here
        ("HX-M9", "unknown_code"),
        ("6901234567893", "invalid_scan"),  # wrong check digit
        ("%CMD:SHIP", "not_an_item"),
    ],
)
def test_unknown_and_unreadable_codes(desk: Store, order_no: str, code: str, reason: str) -> None:
    before = counts(desk)
    assert refused(record_scan, store=desk, user="liu", code=code).code == reason
    assert counts(desk) == before


def test_a_scan_needs_an_open_order(desk: Store) -> None:
    ready(desk)
    assert refused(record_scan, store=desk, user="liu", code=HX).code == "no_open_order"


def test_gs1_content_records_batch_expiry_and_serial(desk: Store, order_no: str) -> None:
    result = record_scan(desk, user="liu", code=f"]C101{HX14}17271231\x1d10LOT-7\x1d21SN0001")
    assert (result.batch, result.serial, result.expiry) == ("LOT-7", "SN0001", date(2027, 12, 31))
    (scan,) = order_scans(desk, order_no)
    assert (scan["batch"], scan["serial"], scan["expiry"]) == ("LOT-7", "SN0001", "2027-12-31")
    assert line(desk, order_no, "HX-M8").batch == "LOT-7"


def test_fnc1_as_text_stand_ins(desk: Store, order_no: str) -> None:
    result = record_scan(desk, user="liu", code=f"01{HX14}10B2<GS>21SN-X")
    assert (result.batch, result.serial) == ("B2", "SN-X")


def test_a_serial_number_counts_once(desk: Store, order_no: str) -> None:
    code = f"01{HX14}21SN0001"
    record_scan(desk, user="liu", code=code)
    before = counts(desk)
    err = refused(record_scan, store=desk, user="liu", code=code)
    assert err.code == "serial_repeated" and "SN0001" in str(err)
    assert counts(desk) == before
    undo_last_scan(desk, user="liu")
    assert record_scan(desk, user="liu", code=code).serial == "SN0001"  # undone, so it may count again


def test_a_serial_counted_on_one_order_cannot_count_on_another(desk: Store, order_no: str) -> None:
    record_scan(desk, user="liu", code=f"01{HX14}21SN0001")
    other = ready(desk, ("HX-M8", 1))
    view, _ = open_for_packing(desk, order_no=other, user="admin")
    err = refused(record_scan, store=desk, user="admin", code=f"01{HX14}21SN0001")
    assert err.code == "serial_repeated" and order_no in str(err)
    assert view.lines[0].scanned == 0


def test_the_database_refuses_a_repeated_serial_even_past_the_checks(desk: Store, order_no: str) -> None:
    record_scan(desk, user="liu", code=f"01{HX14}21SN0001")
    with (
        pytest.raises(StoreError, match=r"UNIQUE constraint failed: scan\.gtin, scan\.serial"),
        desk.write() as session,
    ):
        session.exec(  # type: ignore[call-overload]
            text(
                "INSERT INTO scan (idem_key, at, user_name, order_id, order_no, line_id, line_no, product_id, code,"
                " gtin, batch, serial, qty, multiplier, source, undone, undone_by)"
                " SELECT 'race', at, user_name, order_id, order_no, line_id, line_no, product_id, code, gtin,"
                " batch, serial, qty, multiplier, source, 0, '' FROM scan"
            )
        )


def test_two_desks_racing_for_one_serial_count_it_once(desk: Store) -> None:
    first, second = ready(desk, ("HX-M8", 1)), ready(desk, ("HX-M8", 1))
    open_for_packing(desk, order_no=first, user="liu")
    open_for_packing(desk, order_no=second, user="admin")
    other = Store.open(desk.path, clock=desk.clock)  # a second connection pool, like a second process
    barrier = threading.Barrier(2)
    results: list[str] = []

    def scan(store: Store, user: str) -> None:
        barrier.wait()
        try:
            record_scan(store, user=user, code=f"01{HX14}21RACE-1")
            results.append("counted")
        except Refused as err:
            results.append(err.code)

    threads = [threading.Thread(target=scan, args=(s, u)) for s, u in ((desk, "liu"), (other, "admin"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    other.close()
    assert sorted(results) == ["counted", "serial_repeated"]
    assert one(desk, "SELECT count(*) FROM scan WHERE serial='RACE-1'") == 1


def test_gs1_count_times_the_multiplier(desk: Store) -> None:
    no = ready(desk, ("HX-M8", 100))
    open_for_packing(desk, order_no=no, user="liu")
    result = record_scan(desk, user="liu", code=f"01{HX14}3010", multiplier=3)
    assert result.qty == 30 and result.view.lines[0].scanned == 30
    assert order_scans(desk, no)[0]["multiplier"] == 3


def test_a_carton_barcode_counts_its_units(desk: Store) -> None:
    no = ready(desk, ("FL-DN50", 48))
    with desk.write() as session:
        session.exec(text("UPDATE productbarcode SET units = 12 WHERE code = 'FL-DN50-CTN'"))  # type: ignore[call-overload]
    open_for_packing(desk, order_no=no, user="liu")
    assert record_scan(desk, user="liu", code="FL-DN50-CTN", multiplier=2).qty == 24
    err = refused(record_scan, store=desk, user="liu", code="FL-DN50-CTN", multiplier=3)  # 36 > 24 left
    assert err.code == "over_quantity"


def test_a_serial_item_counts_one_at_a_time(desk: Store, order_no: str) -> None:
    err = refused(record_scan, store=desk, user="liu", code=f"01{HX14}21SN9", multiplier=2)
    assert err.code == "serial_multiple"


def test_expired_goods_are_refused(desk: Store, order_no: str) -> None:
    err = refused(record_scan, store=desk, user="liu", code=f"01{HX14}17261031")  # clock: 2026-11-20
    assert err.code == "expired" and "2026-10-31" in str(err)


def test_batches_of_a_line_are_kept_and_follow_undo(desk: Store, order_no: str) -> None:
    record_scan(desk, user="liu", code=f"01{HX14}10B-1")
    record_scan(desk, user="liu", code=f"01{HX14}10B-2")
    assert line(desk, order_no, "HX-M8").batch == "B-1,B-2"
    undo_last_scan(desk, user="liu")
    assert line(desk, order_no, "HX-M8").batch == "B-1"


def test_many_batches_fit_the_line(desk: Store) -> None:
    assert (
        scanning._join_batches([f"BATCH-{i:04d}" for i in range(9)]) == "BATCH-0000,BATCH-0001,BATCH-0002+6"
    )


def test_a_retried_scan_never_counts_twice(desk: Store, order_no: str) -> None:
    first = record_scan(desk, user="liu", code=HX, idem_key="same")
    again = record_scan(desk, user="liu", code=HX, idem_key="same")
    assert not first.repeated and again.repeated
    assert line(desk, order_no, "HX-M8").scanned_qty == 1
    assert one(desk, "SELECT count(*) FROM scan") == 1
    assert one(desk, "SELECT count(*) FROM audit_record WHERE command='record_scan'") == 1


# -- many scans in one command (the central API replays a station's scans set-based) ---------------------
# (code, multiplier, key) for every decision a scan can get but a barcode that is no item. In order: counted;
# a key and a serial counted before the command (k0, SN0); a batch; a serial; the same serial again; over
# the line's quantity; the first key again; not in the order (XX-1, made by the test); a bad check digit;
# unknown; expired; a serial times two; no multiplier; FL-DN50 by its SKU, twice (lower case too); one too
# many; a second batch; hazardous; more BR-6204 than in stock (2); one, another, one more.
MIXED = (
    (HX, 1, "k1"),
    (HX, 1, "k0"),
    (f"01{HX14}21SN0", 1, "k21"),
    (f"01{HX14}10B-1", 1, "k2"),
    (f"01{HX14}21SN1", 1, "k3"),
    (f"01{HX14}21SN1", 1, "k4"),
    (f"01{HX14}3009", 1, "k5"),
    (HX, 1, "k1"),
    ("XX-1", 1, "k6"),
    ("6901234567890", 1, "k7"),
    ("HELLO", 1, "k8"),
    (f"01{HX14}17261031", 1, "k9"),
    (f"01{HX14}21SN9", 2, "k10"),
    (HX, 0, "k11"),
    ("FL-DN50", 1, "k12"),
    ("fl-dn50", 1, "k13"),
    ("FL-DN50", 1, "k14"),
    (f"01{HX14}10B-2", 1, "k15"),
    ("6905555555552", 1, "k16"),
    ("4006381333931", 3, "k17"),
    ("4006381333931", 1, "k18"),
    ("4006381333931", 1, "k19"),
    ("4006381333931", 1, "k20"),
)


def _scan_outcome(result: Any) -> Any:
    """A scan's outcome as both ways answer it: the refusal, or what was counted."""
    if isinstance(result, Refused):
        return (result.code, str(result), result.who)
    fields = ("line_no", "sku", "name", "qty", "batch", "serial", "expiry", "repeated")
    return tuple(getattr(result, name) for name in fields)


def _packing_state(store: Store, order_no: str) -> dict[str, list[tuple[Any, ...]]]:
    """Everything counting scans writes (but the outbox's op ids, which are random)."""
    queries = {
        "scans": "SELECT * FROM scan ORDER BY id",
        "lines": "SELECT l.* FROM order_line l JOIN sales_order o ON o.id = l.order_id WHERE o.order_no = :no",
        "order": "SELECT version, updated_at, updated_by FROM sales_order WHERE order_no = :no",
        "audit": "SELECT * FROM audit_record ORDER BY id",
        "outbox": "SELECT seq, desk_id, epoch, command, args, order_no, base_version, payload_hash, created_at,"
        " user_name FROM outbox ORDER BY seq",
    }
    with store.read() as session:
        return {
            name: [tuple(r) for r in session.exec(text(sql), params={"no": order_no}).all()]  # type: ignore[call-overload]
            for name, sql in queries.items()
        }


def test_scans_counted_together_end_as_if_counted_one_by_one(desk: Store, tmp_path: Path) -> None:
    add_valid_product(desk, "XX-1", "690000000001")
    no = ready(desk, ("HX-M8", 5), ("FL-DN50", 2), ("PT-RED", 1), ("BR-6204", 3))
    with desk.write() as session:  # two of the three on the shelf went missing
        session.exec(text("UPDATE product SET stock_on_hand = 2 WHERE sku = 'BR-6204'"))  # type: ignore[call-overload]
    open_for_packing(desk, order_no=no, user="liu")
    record_scan(desk, user="liu", code=f"01{HX14}21SN0", idem_key="k0")  # counted before: key and serial
    twin_path = tmp_path / "twin.db"
    copy_sqlite(desk.path, twin_path)
    twin = Store.open(twin_path, clock=desk.clock)
    one_by_one = []
    for code, multiplier, key in MIXED:
        try:
            one_by_one.append(
                record_scan(desk, user="liu", code=code, multiplier=multiplier, idem_key=key, order_no=no)
            )
        except Refused as exc:
            one_by_one.append(exc)
    together = record_scans(
        twin, user="liu", order_no=no, scans=[NewScan(code, m, key) for code, m, key in MIXED]
    )
    assert [_scan_outcome(r) for r in together] == [_scan_outcome(r) for r in one_by_one]
    outcomes = [
        r[0] if isinstance(r, tuple) and isinstance(r[0], str) else "counted"
        for r in map(_scan_outcome, together)
    ]
    assert outcomes == [
        *(
            "counted",
            "counted",
            "serial_repeated",
            "counted",
            "counted",
            "serial_repeated",
            "over_quantity",
            "counted",
            "not_in_order",
        ),
        *("invalid_scan", "unknown_code", "expired", "serial_multiple", "bad_multiplier", "counted"),
        *("counted", "over_quantity", "counted", "hazard:hazardous", "no_stock", "counted", "counted"),
        "no_stock",
    ]
    repeated = [i for i, r in enumerate(together) if getattr(r, "repeated", False)]
    assert repeated == [1, 7]  # k0 from before the command, k1 from within it
    assert _packing_state(twin, no) == _packing_state(desk, no)
    twin.close()


def test_a_retried_scan_answers_its_first_count_even_once_the_line_is_full(
    desk: Store, order_no: str
) -> None:
    for i in range(3):
        record_scan(desk, user="liu", code=HX, idem_key=f"k{i}")
    before = counts(desk)
    again = record_scan(desk, user="liu", code=HX, idem_key="k2")  # not "Too many": it is the third one
    assert again.repeated and again.qty == 1 and again.view.line(1).scanned == 3  # type: ignore[union-attr]
    assert counts(desk) == before


def test_a_keyed_scan_is_marked(desk: Store, order_no: str) -> None:
    record_scan(desk, user="liu", code=HX, source="keyed")
    assert order_scans(desk, order_no)[0]["source"] == "keyed"


def test_an_order_put_on_hold_while_packing_stops_the_scans(desk: Store, order_no: str) -> None:
    move_order(desk, order_no=order_no, to="hold", user="zhao", reason="customer called")
    err = refused(record_scan, store=desk, user="liu", code=HX)
    assert err.code == "order_on_hold" and "supervisor" in err.who


# -- undo, reset, park -----------------------------------------------------------------------------------
def test_undo_takes_back_the_last_scan_only(desk: Store, order_no: str) -> None:
    record_scan(desk, user="liu", code=HX)
    record_scan(desk, user="liu", code="FL-DN50")
    result = undo_last_scan(desk, user="liu", idem_key="u-1")
    assert (result.sku, result.qty) == ("FL-DN50", 1)
    again = undo_last_scan(desk, user="liu", idem_key="u-1")  # a retried undo undoes nothing more
    assert again.repeated
    assert line(desk, order_no, "HX-M8").scanned_qty == 1 and line(desk, order_no, "FL-DN50").scanned_qty == 0
    scans = order_scans(desk, order_no)
    assert [s["undone"] for s in scans] == [False, True] and scans[1]["undone_by"] == "liu"
    assert show_order(desk, order_no).timeline[-1].command == "undo_scan"


def test_nothing_to_undo(desk: Store, order_no: str) -> None:
    assert refused(undo_last_scan, store=desk, user="liu").code == "nothing_to_undo"


def test_reset_undoes_every_scan_and_frees_the_order(desk: Store, order_no: str) -> None:
    record_scan(desk, user="liu", code=HX, multiplier=2)
    record_scan(desk, user="liu", code="FL-DN50")
    result = reset_packing(desk, user="liu")
    assert (result.scans, result.units) == (2, 3)
    assert all(ln.scanned_qty == 0 for ln in show_order(desk, order_no).lines)
    assert all(s["undone"] for s in order_scans(desk, order_no))
    assert packing_view(desk, user="liu") is None


def test_a_parked_order_keeps_its_scans_and_resumes(desk: Store, order_no: str) -> None:
    record_scan(desk, user="liu", code=HX)
    assert park_order(desk, user="liu").units == 1
    assert packing_view(desk, user="liu") is None
    view, _ = open_for_packing(desk, order_no=order_no, user="liu")
    assert view.lines[0].scanned == 1 and view.scans == 1


# -- presets, waybills, shipping -------------------------------------------------------------------------
def test_choosing_a_packing_preset(desk: Store, order_no: str) -> None:
    view = choose_packing_preset(desk, user="liu", preset="3")
    assert view.packing_preset == "3" and show_order(desk, order_no).packing_preset == "3"
    assert refused(choose_packing_preset, store=desk, user="liu", preset="99").code == "unknown_preset"


def complete(desk: Store, order_no: str) -> None:
    for ln in show_order(desk, order_no).lines:
        for _ in range(ln.quantity - ln.scanned_qty):
            record_scan(desk, user="liu", code=ln.sku)


def test_ship_with_the_local_carrier(desk: Store, order_no: str, settings: ShippingSettings) -> None:
    stock = {"HX-M8": 5000, "FL-DN50": 200}
    complete(desk, order_no)
    choose_packing_preset(desk, user="liu", preset="2")
    result = ship_order(desk, user="liu", settings=settings)
    assert result.generated and result.carrier == "LOCAL" and is_local_waybill(result.waybill)
    assert result.items == 5 and result.label.order_no == order_no and result.label.waybill == result.waybill
    assert result.label.recipient.name == "苏州精工机械有限公司" and "7号纸箱" in result.label.packing_preset
    detail = show_order(desk, order_no)
    assert detail.state == "shipped" and detail.waybill == result.waybill
    assert [(ln.sku, ln.shipped_qty) for ln in detail.lines] == [("HX-M8", 3), ("FL-DN50", 2)]
    for sku, before in stock.items():
        qty = line(desk, order_no, sku).shipped_qty
        assert one(desk, "SELECT stock_on_hand FROM product WHERE sku=:sku", sku=sku) == before - qty
    entry = detail.timeline[-1]
    assert entry.command == "ship_order" and entry.user_name == "liu"
    assert entry.detail["to"] == "shipped" and entry.detail["transition"] == "ship"
    assert packing_view(desk, user="liu") is None
    assert refused(open_for_packing, store=desk, order_no=order_no, user="liu").code == "already_shipped"


def test_a_failing_guard_ships_nothing_and_says_who_must_act(
    desk: Store, order_no: str, settings: ShippingSettings
) -> None:
    complete(desk, order_no)
    choose_packing_preset(desk, user="liu", preset="2")
    with desk.write() as session:  # finance cut the customer's credit while the goods were packed
        session.exec(text("UPDATE customer SET credit_limit = 1 WHERE code = 'C001'"))  # type: ignore[call-overload]
    before = counts(desk)
    err = refused(ship_order, store=desk, user="liu", settings=settings)
    assert err.code == "guard:credit_ok" and err.who == ("finance",)
    detail = show_order(desk, order_no)
    assert detail.state == "ready_to_ship" and detail.waybill == ""
    assert one(desk, "SELECT stock_on_hand FROM product WHERE sku='HX-M8'") == 5000
    assert packing_view(desk, user="liu") is not None and counts(desk) == before


def test_shipping_needs_every_line_scanned(desk: Store, order_no: str, settings: ShippingSettings) -> None:
    choose_packing_preset(desk, user="liu", preset="2")
    record_scan(desk, user="liu", code=HX)
    err = refused(ship_order, store=desk, user="liu", settings=settings)
    assert err.code == "guard:all_lines_scanned" and "HX-M8 x2" in str(err)


def test_shipping_needs_a_packing_preset_unless_configured_not_to(
    desk: Store, order_no: str, settings: ShippingSettings
) -> None:
    complete(desk, order_no)
    assert refused(ship_order, store=desk, user="liu", settings=settings).code == "no_preset"
    no_preset = ShippingSettings(label_dir=settings.label_dir, require_preset=False)
    assert ship_order(desk, user="liu", settings=no_preset).order_no == order_no


def test_a_scanned_waybill_is_used(desk: Store, order_no: str, settings: ShippingSettings) -> None:
    complete(desk, order_no)
    choose_packing_preset(desk, user="liu", preset="1")
    view = record_waybill(desk, user="liu", waybill="sf1234567890123")
    assert view.waybill == "SF1234567890123" and view.waybill_source == "scanned"
    result = ship_order(desk, user="liu", settings=settings)
    assert (result.waybill, result.carrier, result.generated) == ("SF1234567890123", "SF", False)


def test_a_waybill_cannot_be_used_twice(desk: Store, order_no: str, settings: ShippingSettings) -> None:
    complete(desk, order_no)
    choose_packing_preset(desk, user="liu", preset="1")
    record_waybill(desk, user="liu", waybill="SF1234567890123")
    ship_order(desk, user="liu", settings=settings)
    other = ready(desk, ("HX-M8", 1))
    open_for_packing(desk, order_no=other, user="liu")
    err = refused(record_waybill, store=desk, user="liu", waybill="SF1234567890123")
    assert err.code == "waybill_in_use" and order_no in str(err)
    assert refused(record_waybill, store=desk, user="liu", waybill="ABC").code == "bad_waybill"
    bad_check = make_local_waybill("D1", 5)[:-1] + "0"
    assert not is_local_waybill(bad_check)
    assert refused(record_waybill, store=desk, user="liu", waybill=bad_check).code == "bad_waybill"


def test_stock_never_goes_below_zero(desk: Store, settings: ShippingSettings) -> None:
    no = ready(desk, ("BR-6204", 3))
    open_for_packing(desk, order_no=no, user="liu")
    for _ in range(3):
        record_scan(desk, user="liu", code="4006381333931")
    with desk.write() as session:  # a stock count found only one on the shelf meanwhile
        session.exec(text("UPDATE product SET stock_on_hand = 1 WHERE sku = 'BR-6204'"))  # type: ignore[call-overload]
    choose_packing_preset(desk, user="liu", preset="1")
    ship_order(desk, user="liu", settings=settings)
    assert one(desk, "SELECT stock_on_hand FROM product WHERE sku='BR-6204'") == 0
    assert show_order(desk, no).timeline[-1].detail["stock_short"] == ["BR-6204 1/3"]


def test_local_waybills_carry_a_check_digit() -> None:
    waybill = make_local_waybill("D1", 123)
    assert waybill.startswith("LCD1-000000123") and len(waybill) == 15 and is_local_waybill(waybill)
    for i in range(10):
        tampered = waybill[:-2] + str(i) + waybill[-1]
        assert is_local_waybill(tampered) == (tampered == waybill)


@pytest.mark.parametrize(
    ("text", "waybill", "carrier"),
    [
        ("SF1234567890123", True, "SF"),
        ("JDVA12345678901", True, "JD"),
        ("EA123456789CN", True, "EMS"),
        ("731234567890", True, ""),  # an all-digit waybill
        ("LCD1-0000001236", True, "LOCAL"),
        ("6901234567892", False, ""),  # a Chinese product's EAN-13 is never a waybill
        ("NO-SUCH-THING", False, ""),  # no digits
        ("SF123", False, "SF"),  # too short
    ],
)
def test_what_looks_like_a_waybill(text: str, waybill: bool, carrier: str) -> None:
    assert scanning.looks_like_waybill(text) is waybill
    assert scanning.carrier_of(text) == carrier


def test_settings_from_the_environment(tmp_path: Path) -> None:
    env = {
        "ORDERDESK_LABEL_FORMAT": "ZPL",
        "ORDERDESK_LABEL_DIR": str(tmp_path),
        "ORDERDESK_PRINT_COMMAND": "lp -d ZEBRA -o raw",
        "ORDERDESK_SENDER_NAME": "苏州发货仓",
        "ORDERDESK_REQUIRE_PRESET": "0",
    }
    s = ShippingSettings.from_env(env)
    assert (s.label_format, s.label_dir, s.print_command, s.sender.name, s.require_preset) == (
        "zpl",
        tmp_path,
        "lp -d ZEBRA -o raw",
        "苏州发货仓",
        False,
    )
    assert ShippingSettings.from_env({}).labels_folder(tmp_path / "desk.db") == tmp_path / "labels"
    with pytest.raises(Refused, match="ORDERDESK_LABEL_FORMAT"):
        ShippingSettings.from_env({"ORDERDESK_LABEL_FORMAT": "gif"})


# -- the station -----------------------------------------------------------------------------------------
@pytest.fixture
def station(desk: Store, settings: ShippingSettings) -> PackingStation:
    s = PackingStation(desk, "liu", settings=settings)
    assert s.resume().view is None
    return s


def test_station_flow_from_order_to_shipment(desk: Store, station: PackingStation) -> None:
    no = ready(desk, ("HX-M8", 2))
    opened = station.scan(no)
    assert opened.ok and opened.kind == "order" and opened.view is not None
    first = station.scan(HX)
    assert first.ok and str(first.title) == "HX-M8 +1 → 1/2" and first.line_no == 1
    done = station.scan(HX)
    assert done.view is not None and done.view.complete
    assert "choose the packing" in str(done.detail)
    preset = station.command("PRESET_KEY", "2")
    assert preset.ok and preset.view is not None and preset.view.packing_preset == "2"
    shipped = station.scan("%CMD:SHIP")
    assert shipped.ok and shipped.kind == "ship" and shipped.shipment is not None and shipped.view is None
    assert show_order(desk, no).state == "shipped"
    assert [o.seq for o in (opened, first, done, preset, shipped)] == [2, 3, 4, 5, 6]


def test_station_multiplier_applies_to_the_next_item_only(desk: Store, station: PackingStation) -> None:
    station.scan(ready(desk, ("HX-M8", 20)))
    armed = station.scan("*12")
    assert armed.ok is None and armed.multiplier == 12
    assert str(station.scan(HX).title) == "HX-M8 +12 → 12/20"
    assert str(station.scan(HX).title) == "HX-M8 +1 → 13/20"
    station.scan("*12")
    over = station.scan(HX)  # 25 > 20: refused, and the x12 is used up
    assert over.ok is False and over.code == "over_quantity" and "x12 was not used" in str(over.detail)
    assert station.multiplier == 1


def test_station_refusals_are_red_with_who_and_audited(desk: Store, station: PackingStation) -> None:
    station.scan(ready(desk, ("PT-RED", 1)))
    out = station.scan("PT-RED")
    assert out.ok is False and out.code == "hazard:hazardous" and str(out.title) == "Hazardous: blocked"
    assert out.who == ("supervisor", "admin")
    station.after()
    assert (
        one(desk, "SELECT count(*) FROM audit_record WHERE command='scan_refused' AND user_name='liu'") == 1
    )
    assert one(desk, "SELECT count(*) FROM outbox WHERE command='scan_refused'") == 0


def test_a_supervisors_badge_releases_the_blocked_item(desk: Store, station: PackingStation) -> None:
    station.scan(ready(desk, ("PT-RED", 1)))
    station.scan("PT-RED")
    wrong = station.scan("%BADGE:B-ZHOU")  # QC may not release it
    assert wrong.ok is False and wrong.code == "forbidden"
    released = station.scan("%BADGE:B-SUN")
    assert released.ok and released.kind == "release" and "sun" in str(released.title)
    assert station.scan("PT-RED").ok


def test_a_badge_without_a_blocked_item(desk: Store, station: PackingStation) -> None:
    station.scan(ready(desk))
    assert station.scan("%BADGE:B-SUN").code == "badge"
    assert station.scan("%BADGE:NOBODY").code == "unknown_badge"


def test_another_orders_barcode_is_red_and_keeps_the_open_order(desk: Store, station: PackingStation) -> None:
    first, second = ready(desk), ready(desk)
    station.scan(first)
    out = station.scan(second)
    assert out.ok is False and out.code == "another_order" and str(out.title) == "Another order's barcode"
    assert out.view is not None and out.view.order_no == first
    assert station.scan(first).ok is None  # the open order's own barcode: just a reminder


def test_an_item_before_any_order(desk: Store, station: PackingStation) -> None:
    out = station.scan(HX)
    assert out.ok is False and out.code == "no_open_order"


def test_cancel_asks_again_before_it_resets(desk: Store, station: PackingStation) -> None:
    no = ready(desk)
    station.scan(no)
    station.scan(HX)
    ask = station.scan("%CMD:CANCEL")
    assert ask.ok is None and ask.awaiting_confirm
    kept = station.scan(HX)  # anything else: the scans are kept
    assert kept.ok and "Reset not done" in str(kept.detail)
    assert line(desk, no, "HX-M8").scanned_qty == 2
    station.command("CANCEL")
    reset = station.command("CANCEL")
    assert reset.ok and reset.kind == "reset" and reset.view is None
    assert line(desk, no, "HX-M8").scanned_qty == 0


def test_next_sets_the_order_aside(desk: Store, station: PackingStation) -> None:
    no = ready(desk)
    station.scan(no)
    station.scan(HX)
    out = station.scan("%CMD:NEXT")
    assert out.ok and out.view is None
    again = station.scan(no)
    assert again.view is not None and again.view.units_scanned == 1


def test_undo_by_command_barcode(desk: Store, station: PackingStation) -> None:
    no = ready(desk)
    station.scan(no)
    station.scan(HX)
    out = station.scan("%CMD:UNDO")
    assert out.ok and str(out.title) == "Undone: HX-M8 −1 → 0/3"
    assert station.command("UNDO").code == "nothing_to_undo"


def test_the_carriers_waybill_is_taken_once_the_order_is_complete(
    desk: Store, station: PackingStation
) -> None:
    station.scan(ready(desk, ("HX-M8", 1)))
    early = station.scan("YT1234567890123")
    assert early.code == "unknown_code" and "after the last item" in str(early.detail)
    station.scan(HX)
    out = station.scan("YT1234567890123")
    assert out.ok and out.kind == "waybill" and out.view is not None and out.view.waybill == "YT1234567890123"
    digits = station.scan("73123456789012")  # a numeric waybill that fails the EAN check: still a waybill
    assert digits.ok and digits.view is not None and digits.view.waybill == "73123456789012"


def test_a_refused_ship_shows_the_guard_and_keeps_the_order(desk: Store, station: PackingStation) -> None:
    no = ready(desk, ("HX-M8", 1))
    station.scan(no)
    station.scan(HX)
    station.command("PRESET", "1")
    with desk.write() as session:
        session.exec(text("UPDATE customer SET credit_limit = 1 WHERE code = 'C001'"))  # type: ignore[call-overload]
    out = station.command("SHIP")
    assert out.ok is False and str(out.title) == "Not shipped" and out.who == ("finance",)
    assert "credit limit" in str(out.detail)
    assert out.view is not None and out.view.blockers and out.view.blockers[0].guard == "credit_ok"
    assert show_order(desk, no).state == "ready_to_ship"


def test_an_order_cancelled_while_packing_can_be_put_back(desk: Store, station: PackingStation) -> None:
    no = ready(desk)
    station.scan(no)
    station.scan(HX)
    move_order(desk, order_no=no, to="cancel", user="wang", reason="customer cancelled")
    out = station.scan(HX)
    assert out.ok is False and out.code == "order_closed"
    station.scan("%CMD:CANCEL")
    reset = station.scan("%CMD:CANCEL")  # the goods go back to the shelf and the station is free
    assert reset.ok and reset.kind == "reset" and line(desk, no, "HX-M8").scanned_qty == 0
    assert station.scan(ready(desk)).ok


def test_a_typed_order_number_tail_opens_the_order(desk: Store, station: PackingStation) -> None:
    no = ready(desk)
    out = station.scan(str(int(no[-7:])), typed=True)
    assert out.ok and out.view is not None and out.view.order_no == no


def test_unknown_preset_key(desk: Store, station: PackingStation) -> None:
    station.scan(ready(desk))
    out = station.command("PRESET_KEY", "9")
    assert out.ok is False and out.code == "unknown_preset" and "1-6" in str(out.detail)


def test_a_busy_database_is_retried_with_the_same_key(
    desk: Store, station: PackingStation, monkeypatch: pytest.MonkeyPatch
) -> None:
    no = ready(desk)
    station.scan(no)
    keys: list[str] = []
    real = scanning.record_scan

    def flaky(store: Store, **kwargs: Any) -> Any:
        keys.append(kwargs["idem_key"])
        if len(keys) == 1:
            raise StoreError(msg("The database {path} is busy", path="x"), code="db_locked")
        return real(store, **kwargs)

    monkeypatch.setattr(scanning, "record_scan", flaky)
    out = station.scan(HX, idem_key="scan-7")
    assert out.ok and keys == ["scan-7", "scan-7"]
    assert line(desk, no, "HX-M8").scanned_qty == 1


def test_resume_after_a_restart(desk: Store, settings: ShippingSettings) -> None:
    no = ready(desk)
    first = PackingStation(desk, "liu", settings=settings)
    first.resume()
    first.scan(no)
    first.scan(HX)
    again = PackingStation(desk, "liu", settings=settings).resume()
    assert again.view is not None and again.view.order_no == no and again.view.units_scanned == 1
    assert "Resumed" in str(again.title)


def test_presets_come_from_the_configured_file(desk: Store, tmp_path: Path) -> None:
    path = tmp_path / "presets.toml"
    path.write_text(
        '[[presets]]\nid = "BOX"\nlabel_en = "Box"\nlabel_zh = "箱"\nlength_mm = 1\nwidth_mm = 1\nheight_mm = 1\n'
        "max_weight_kg = 1\n",
        encoding="utf-8",
    )
    station = PackingStation(desk, "liu", settings=ShippingSettings(presets_path=path))
    assert [p.id for p in station.presets] == ["BOX"]
    assert [p.id for p in load_presets()][:2] == ["1", "2"]


def test_the_schema_upgrades_from_the_first_revision(tmp_path: Path) -> None:
    from alembic import command
    from alembic.config import Config

    from orderdesk.store import make_engine

    path = tmp_path / "old.db"
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(scanning.__file__).parent / "migrations"))
    engine = make_engine(path)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
    engine.dispose()
    store = Store.open(path)
    with store.read() as session:
        names = set(session.exec(text("SELECT name FROM sqlite_master")).scalars())  # type: ignore[call-overload]
    assert {"scan", "packing_session", "hazard_release", "ux_scan_serial", "ix_order_line_packed"} <= names
