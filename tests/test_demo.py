"""The demo desk (``orderdesk demo``): deterministic, believable, consistent with the workflow, and a real
desk afterwards (the audit chain verifies, users log in, the CLI shows its orders)."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from orderdesk import audit, demo
from orderdesk.barcodes import is_valid_gtin
from orderdesk.clock import FixedClock
from orderdesk.demo import DEMO_USERS, build_demo
from orderdesk.errors import Refused, StoreError
from orderdesk.orders import show_order
from orderdesk.store import Store
from orderdesk.users import login

NOW = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
ORDERS = 500
MTO_AFTER_REVIEW = (
    "scheduled",
    "materials_kitted",
    "in_production",
    "surface_treatment",
    "qc_pending",
    "qc_failed",
)
SHIPPED_AND_LATER = ("shipped", "in_transit", "delivered", "closed")


def _clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("demo") / "demo.db"
    stats = build_demo(path, orders=ORDERS, seed=1, clock=_clock())
    assert (stats.orders, stats.customers, stats.products) == (ORDERS, 50, 300)
    return path


@pytest.fixture(scope="module")
def db(demo_db: Path) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(f"file:{demo_db}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    yield conn
    conn.close()


@pytest.fixture
def store(demo_db: Path) -> Iterator[Store]:
    s = Store.open(demo_db, clock=_clock())
    yield s
    s.close()


def _orders(db: sqlite3.Connection) -> list[sqlite3.Row]:
    return db.execute("SELECT * FROM sales_order ORDER BY id").fetchall()


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _snapshot(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Everything a seed decides (not salts, uuids or PIN hashes)."""
    conn = sqlite3.connect(path)
    try:
        return {
            "orders": conn.execute(
                "SELECT o.order_no, c.code, o.channel, o.amount, o.state, o.state_since, o.created_at, "
                "o.promised_date, o.rush, o.route, o.waybill FROM sales_order o JOIN customer c "
                "ON c.id = o.customer_id ORDER BY o.id"
            ).fetchall(),
            "lines": conn.execute("SELECT * FROM order_line ORDER BY id").fetchall(),
            "customers": conn.execute("SELECT * FROM customer ORDER BY id").fetchall(),
            "products": conn.execute("SELECT * FROM product ORDER BY id").fetchall(),
            "barcodes": conn.execute("SELECT * FROM productbarcode ORDER BY code").fetchall(),
            "audit": conn.execute(
                "SELECT id, at, order_no, detail, hash FROM audit_record ORDER BY id"
            ).fetchall(),
        }
    finally:
        conn.close()


# -- determinism ------------------------------------------------------------------------------------------
def test_same_seed_same_desk_and_another_seed_another(demo_db: Path, tmp_path: Path) -> None:
    again = tmp_path / "again.db"
    build_demo(again, orders=ORDERS, seed=1, clock=_clock())
    first, second = _snapshot(demo_db), _snapshot(again)
    for table in first:
        assert first[table] == second[table], table
    other = tmp_path / "other.db"
    build_demo(other, orders=ORDERS, seed=2, clock=_clock())
    third = _snapshot(other)
    assert third["orders"] != first["orders"]
    assert third["customers"] != first["customers"]


def test_forked_writer_makes_the_same_desk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo, "BATCH_ORDERS", 100)
    monkeypatch.setattr(demo, "TXN_ORDERS", 200)
    inline, forked = tmp_path / "inline.db", tmp_path / "forked.db"
    monkeypatch.setattr(demo, "PARALLEL_MIN_ORDERS", 10**9)
    build_demo(inline, orders=450, customers=8, products=40, seed=3, clock=_clock())
    monkeypatch.setattr(demo, "PARALLEL_MIN_ORDERS", 0)
    build_demo(forked, orders=450, customers=8, products=40, seed=3, clock=_clock())
    assert _snapshot(inline) == _snapshot(forked)
    with sqlite3.connect(forked) as conn:
        assert conn.execute("SELECT count(*) FROM sales_order").fetchone()[0] == 450
        assert conn.execute("SELECT next_order_no FROM desk").fetchone()[0] == 451


# -- what is in it ----------------------------------------------------------------------------------------
def test_every_workflow_state_has_orders_most_of_them_done(db: sqlite3.Connection, store: Store) -> None:
    counts = Counter(row["state"] for row in _orders(db))
    assert set(counts) == set(store.workflow.states)
    assert counts.most_common(1)[0][0] == "closed"
    done = counts["closed"] + counts["delivered"] + counts["cancelled"]
    in_flight = ORDERS - done
    assert 0.6 * ORDERS < done < 0.9 * ORDERS
    assert in_flight >= 0.1 * ORDERS
    assert counts["cancelled"] < 0.06 * ORDERS and counts["on_hold"] < 0.03 * ORDERS


def test_order_numbers_follow_creation_time_and_the_desk_code(db: sqlite3.Connection) -> None:
    rows = _orders(db)
    assert [r["order_no"] for r in rows] == [f"SO-DM-{i:07d}" for i in range(1, ORDERS + 1)]
    created = [r["created_at"] for r in rows]
    assert created == sorted(created)
    span = _utc(created[-1]) - _utc(created[0])
    assert timedelta(days=400) < span < timedelta(days=560)
    assert tuple(db.execute("SELECT desk_code, next_order_no FROM desk").fetchone()) == ("DM", ORDERS + 1)


def test_channels_lines_and_amounts(db: sqlite3.Connection) -> None:
    rows = _orders(db)
    channels = Counter(r["channel"] for r in rows)
    assert set(channels) == {"taobao", "jd", "miniprogram", "wholesale", "alibaba", "offline"}
    lines = db.execute(
        "SELECT order_id, count(*), sum(quantity * unit_price) FROM order_line GROUP BY order_id"
    )
    per_order = {order_id: (n, total) for order_id, n, total in lines}
    assert len(per_order) == ORDERS
    assert {n for n, _ in per_order.values()} == {1, 2, 3, 4, 5}
    for r in rows:
        assert r["amount"] == per_order[r["id"]][1] > 0
    prices = dict(db.execute("SELECT id, unit_price FROM product"))
    for product_id, unit_price in db.execute("SELECT product_id, unit_price FROM order_line"):
        assert unit_price == prices[product_id]


def test_customers_look_chinese_and_complete(db: sqlite3.Connection) -> None:
    rows = db.execute("SELECT * FROM customer").fetchall()
    assert len(rows) == 50
    assert len({r["name"] for r in rows}) == 50
    chinese = [r for r in rows if r["name"].endswith("有限公司")]
    english = [r for r in rows if r["name"].isascii()]
    assert len(chinese) >= 40 and 1 <= len(english) <= 6
    for r in chinese:
        assert r["address"].startswith(
            (
                "广东省",
                "浙江省",
                "江苏省",
                "上海市",
                "北京市",
                "天津市",
                "重庆市",
                "山东省",
                "河北省",
                "河南省",
                "湖北省",
                "湖南省",
                "四川省",
                "陕西省",
                "辽宁省",
                "福建省",
                "安徽省",
            )
        )
        assert "号" in r["address"] and r["region"]
        phone = r["phone"]
        mobile = len(phone) == 11 and phone.isdigit() and phone[0] == "1" and phone[1] in "3456789"
        landline = "-" in phone and phone.split("-")[0].startswith("0") and len(phone.split("-")[1]) == 8
        assert mobile or landline, phone
        assert 2 <= len(r["contact"]) <= 4
    assert {r["credit_level"] for r in rows} == {"A", "B", "C", "D"}
    assert {"款到发货", "月结30天"} <= {r["settlement_terms"] for r in rows}
    assert all(r["credit_limit"] == 0 for r in rows if r["credit_level"] == "D")
    assert all(r["credit_limit"] > 0 for r in rows if r["credit_level"] in "ABC")


def test_barcodes_are_valid_ean13_from_china_or_code128(db: sqlite3.Connection) -> None:
    codes = db.execute("SELECT code, product_id, kind, units FROM productbarcode").fetchall()
    gtins = [c for c in codes if c["kind"] == "gtin"]
    ean13 = [c["code"][1:] for c in gtins if c["code"].startswith("0")]
    cartons = [c for c in gtins if not c["code"].startswith("0")]
    assert all(is_valid_gtin(c["code"]) for c in gtins)
    assert all(is_valid_gtin(code) and 690 <= int(code[:3]) <= 699 for code in ean13)
    with_ean = {c["product_id"] for c in gtins if c["code"].startswith("0")}
    assert len(with_ean) > 0.6 * 300  # most products carry an EAN-13
    code128 = [c for c in codes if c["kind"] == "code128"]
    assert code128 and all(c["code"].isascii() and not c["code"].isdigit() for c in code128)
    assert cartons and all(c["units"] > 1 for c in cartons)
    # A carton's GTIN-14 wraps the unit's EAN-13: same item, packaging indicator 1.
    units = {c["product_id"]: c["code"] for c in gtins if c["code"].startswith("0")}
    assert all(units[c["product_id"]][1:13] == c["code"][1:13] for c in cartons)


def test_hazardous_and_prohibited_products(db: sqlite3.Connection) -> None:
    products = db.execute("SELECT * FROM product").fetchall()
    hazardous = [p for p in products if p["hazard"] == "hazardous"]
    prohibited = [p for p in products if p["hazard"] == "prohibited"]
    assert 0.03 * len(products) <= len(hazardous) <= 0.08 * len(products)
    assert 1 <= len(prohibited) <= 2
    assert all(p["hazard_note"].startswith("UN") for p in hazardous + prohibited)
    assert any("漆" in p["name"] for p in hazardous) and any("丙酮" in p["name"] for p in hazardous)
    ordered = {r[0] for r in db.execute("SELECT DISTINCT product_id FROM order_line")}
    assert not ordered & {p["id"] for p in prohibited}
    units = {p["unit"] for p in products}
    assert {"个", "件", "套", "米", "公斤", "桶"} <= units
    stocked = [p for p in products if p["safety_stock"] > 0]
    below = [p for p in stocked if p["stock_on_hand"] < p["safety_stock"]]
    assert 0.03 * len(stocked) < len(below) < 0.3 * len(stocked)


def test_overdue_rush_and_late_orders(db: sqlite3.Connection, store: Store) -> None:
    states = store.workflow.states
    open_rows = [r for r in _orders(db) if not states[r["state"]].is_terminal]
    overdue = [
        r
        for r in open_rows
        if states[r["state"]].timeout_hours
        and NOW - _utc(r["state_since"]) > timedelta(hours=states[r["state"]].timeout_hours)
    ]
    assert 0.03 * len(open_rows) <= len(overdue) <= 0.2 * len(open_rows)
    today = (NOW + timedelta(hours=8)).date().isoformat()
    late = [
        r
        for r in open_rows
        if r["state"] != "delivered" and r["promised_date"] and r["promised_date"] < today
    ]
    assert late
    rush = [r for r in _orders(db) if r["rush"]]
    assert 0.03 * ORDERS < len(rush) < 0.15 * ORDERS
    assert any(r["rush"] for r in open_rows)


def test_times_are_consistent(db: sqlite3.Connection) -> None:
    for r in _orders(db):
        created, since = _utc(r["created_at"]), _utc(r["state_since"])
        assert created <= since <= NOW, r["order_no"]
        assert since <= _utc(r["updated_at"]) <= NOW
        if r["state"] == "draft" or (
            r["state"] in ("on_hold", "cancelled") and r["held_from_state"] == "draft"
        ):
            assert r["signed_date"] is None
        elif r["state"] not in ("cancelled",):
            assert r["signed_date"] is not None
        if r["signed_date"]:
            local_created = (created + timedelta(hours=8)).date().isoformat()
            assert local_created <= r["signed_date"]
        assert r["version"] >= 1


def test_flags_match_the_state(db: sqlite3.Connection, store: Store) -> None:
    zhou = db.execute("SELECT id FROM app_user WHERE name = 'zhou'").fetchone()[0]
    lines: dict[int, list[sqlite3.Row]] = {}
    for line in db.execute("SELECT * FROM order_line"):
        lines.setdefault(line["order_id"], []).append(line)
    routes = Counter()
    for r in _orders(db):
        state, mto = r["state"], r["route"] == "make_to_order"
        routes[r["route"]] += 1
        if not mto:
            assert state not in ("tech_review", *MTO_AFTER_REVIEW), r["order_no"]
            assert not r["tech_approved"] and not r["materials_kitted"] and r["qc_result"] == ""
        if mto and state in (*MTO_AFTER_REVIEW, "ready_to_ship", *SHIPPED_AND_LATER):
            assert r["tech_approved"], r["order_no"]
        if mto and state in (*MTO_AFTER_REVIEW[1:], "ready_to_ship", *SHIPPED_AND_LATER):
            assert r["materials_kitted"], r["order_no"]
        if mto and state in ("qc_pending", "qc_failed", "ready_to_ship", *SHIPPED_AND_LATER):
            assert r["inspector_id"] == zhou, r["order_no"]
        if mto and state in ("ready_to_ship", *SHIPPED_AND_LATER):
            assert r["qc_result"] == "passed", r["order_no"]
        if state == "qc_failed":
            assert r["qc_result"] == "failed"
        if state in ("draft", "contract_signed", "tech_review", "scheduled"):
            assert r["qc_result"] == "" and r["inspector_id"] is None
        if state in SHIPPED_AND_LATER:
            assert r["waybill"], r["order_no"]
            assert all(ln["scanned_qty"] == ln["shipped_qty"] == ln["quantity"] for ln in lines[r["id"]])
        else:
            assert all(ln["shipped_qty"] == 0 for ln in lines[r["id"]]), r["order_no"]
        if state == "on_hold":
            assert r["held_from_state"] in store.workflow.states and r["held_from_state"] != "on_hold"
        elif state != "cancelled":
            assert r["held_from_state"] == ""
    assert 0.03 * ORDERS < routes["from_stock"] < 0.25 * ORDERS


# -- a real desk afterwards -------------------------------------------------------------------------------
def test_audit_chain_verifies_and_every_order_has_its_record(db: sqlite3.Connection, store: Store) -> None:
    with store.read() as session:
        count, breaks = audit.verify(session)
    assert breaks == []
    assert count == len(DEMO_USERS) + 50 + 300 + ORDERS
    seeded = Counter(
        row[0] for row in db.execute("SELECT order_no FROM audit_record WHERE command = 'demo_seed'")
    )
    assert len(seeded) == ORDERS and set(seeded.values()) == {1}
    # Seeding is a fixture: the outbox holds the users, customers and products, not the bulk orders.
    assert db.execute("SELECT count(*) FROM outbox WHERE order_no != ''").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM outbox").fetchone()[0] <= len(DEMO_USERS) + 50 + 300
    detail = json.loads(
        db.execute("SELECT detail FROM audit_record WHERE order_no = 'SO-DM-0000042'").fetchone()[0]
    )
    order = db.execute("SELECT state FROM sales_order WHERE order_no = 'SO-DM-0000042'").fetchone()
    assert detail["state"] == order["state"] and detail["lines"]


def test_indexes_triggers_and_board_tallies_as_on_a_fresh_desk(
    db: sqlite3.Connection, tmp_path: Path
) -> None:
    fresh = Store.open(tmp_path / "fresh.db", create=True, clock=_clock())
    fresh.close()
    schema = (
        "SELECT type, name, sql FROM sqlite_master WHERE type IN ('index', 'trigger') ORDER BY type, name"
    )
    with sqlite3.connect(tmp_path / "fresh.db") as conn:
        assert [tuple(r) for r in db.execute(schema)] == conn.execute(schema).fetchall()
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "board_tally" in tables:
        tally = dict(db.execute("SELECT state, sum(n) FROM board_tally GROUP BY state").fetchall())
        counts = dict(db.execute("SELECT state, count(*) FROM sales_order GROUP BY state").fetchall())
        assert tally == counts


def test_users_log_in_with_the_listed_pins(demo_db: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy.db"  # logging in writes audit records; keep the shared desk as built
    shutil.copyfile(demo_db, copy)
    store = Store.open(copy, clock=_clock())
    assert [u.name for u in DEMO_USERS] == ["admin", "wang", "zhou", "liu", "chen", "zhao", "sun"]
    for user in DEMO_USERS:
        actor = login(store, name=user.name, pin=user.pin)
        assert actor.roles == frozenset({user.role})
    assert login(store, badge="B-LIU").name == "liu"
    with pytest.raises(Refused):
        login(store, name="wang", pin="0000")
    assert {u.role for u in DEMO_USERS} == {
        "admin",
        "sales",
        "qc",
        "warehouse",
        "finance",
        "planner",
        "supervisor",
    }


def test_order_show_on_a_generated_number(
    store: Store, demo_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    detail = show_order(store, "SO-DM-0000123", viewer="admin")
    assert detail.order_no == "SO-DM-0000123" and detail.lines and detail.timeline
    assert detail.timeline[0].command == "demo_seed"
    from orderdesk.cli import main

    assert main(["--db", str(demo_db), "order", "show", "SO-DM-0000001", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["order_no"] == "SO-DM-0000001" and shown["lines"]


# -- the file ---------------------------------------------------------------------------------------------
def test_refuses_an_existing_file_unless_replacing(tmp_path: Path) -> None:
    path = tmp_path / "desk.db"
    path.write_bytes(b"precious")
    Path(f"{path}-wal").write_bytes(b"old wal")
    with pytest.raises(StoreError) as refused:
        build_demo(path, orders=5, customers=2, products=5, clock=_clock())
    assert refused.value.code == "db_exists"
    assert path.read_bytes() == b"precious"
    stats = build_demo(path, orders=5, customers=2, products=5, replace=True, clock=_clock())
    assert stats.orders == 5 and stats.seconds > 0
    assert path.read_bytes()[:16] == b"SQLite format 3\x00"
    assert not Path(f"{path}-wal").exists()


def test_a_failed_build_leaves_no_half_desk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk gone")

    monkeypatch.setattr(demo, "_write_orders", broken)
    path = tmp_path / "desk.db"
    with pytest.raises(RuntimeError):
        build_demo(path, orders=5, customers=2, products=5, clock=_clock())
    assert not path.exists()


def test_a_failure_in_the_forked_helper_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: object, begin: int) -> None:
        raise ValueError("out of paper")

    monkeypatch.setattr(demo, "PARALLEL_MIN_ORDERS", 0)
    monkeypatch.setattr(demo._OrderMaker, "chunk", broken)
    path = tmp_path / "desk.db"
    with pytest.raises(RuntimeError, match="out of paper"):
        build_demo(path, orders=20, customers=2, products=5, clock=_clock())
    assert not path.exists()
