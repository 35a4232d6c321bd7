"""Shared fixtures: a real SQLite file per test, a small believable company built through the domain
commands, and a clock tests move by hand."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from orderdesk.catalog import add_customer, add_product
from orderdesk.clock import FixedClock
from orderdesk.i18n import set_language
from orderdesk.store import Store
from orderdesk.users import add_user

os.environ.setdefault("TEXTUAL_ANIMATION", "none")

# One user per role; the PIN of each is 1234 except admin (0000).
DESK_USERS = {
    "admin": ["admin"],
    "wang": ["sales"],
    "zhou": ["qc"],
    "liu": ["warehouse"],
    "chen": ["finance"],
    "zhao": ["planner"],
    "sun": ["supervisor"],
}


@pytest.fixture(autouse=True)
def _english() -> None:
    set_language("en")


@pytest.fixture
def shanghai_time(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The desks' own time zone as the local one, so times on screen (and in snapshots) are stable."""
    monkeypatch.setenv("TZ", "Asia/Shanghai")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(2026, 11, 20, 2, 0, tzinfo=UTC))


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "desk.db"


@pytest.fixture
def store(db_path: Path, clock: FixedClock) -> Store:
    """An empty desk (schema only) with one user per role."""
    s = Store.open(db_path, create=True, clock=clock)
    for name, roles in DESK_USERS.items():
        add_user(
            s, name=name, roles=roles, pin="0000" if name == "admin" else "1234", badge=f"B-{name.upper()}"
        )
    return s


@pytest.fixture
def desk(store: Store) -> Store:
    """A small company: three customers (one with a tiny credit limit), four products (one hazardous)."""
    add_customer(
        store,
        code="C001",
        name="苏州精工机械有限公司",
        contact="王强",
        phone="13800001111",
        address="江苏省苏州市工业园区星湖街 88 号",
        credit_limit=50_000_000,
        settlement_terms="月结30天",
    )
    add_customer(
        store,
        code="C002",
        name="宁波海拓贸易有限公司",
        contact="李娜",
        phone="13900002222",
        address="浙江省宁波市鄞州区天童南路 1 号",
        credit_limit=100_000,
        settlement_terms="款到发货",
    )
    add_customer(
        store,
        code="C003",
        name="Shenzhen Brightway Electronics Co., Ltd.",
        contact="Amy Chen",
        phone="075500003333",
        address="深圳市南山区科技园 6 栋",
        credit_limit=20_000_000,
    )
    add_product(
        store,
        sku="HX-M8",
        name="六角螺栓 M8x40",
        unit="个",
        unit_price=150,
        barcodes=["6901234567892"],
        stock_on_hand=5000,
        safety_stock=500,
    )
    add_product(
        store,
        sku="FL-DN50",
        name="不锈钢法兰 DN50",
        unit="件",
        unit_price=8_800,
        barcodes=["6909876543212", "FL-DN50-CTN"],
        stock_on_hand=200,
        safety_stock=20,
    )
    add_product(
        store,
        sku="PT-RED",
        name="防锈红漆 5L",
        unit="桶",
        unit_price=12_000,
        barcodes=["6905555555552"],
        hazard="hazardous",
        hazard_note="UN1263 易燃液体",
        stock_on_hand=40,
    )
    add_product(
        store,
        sku="BR-6204",
        name="深沟球轴承 6204",
        unit="个",
        unit_price=1_250,
        barcodes=["4006381333931"],
        stock_on_hand=3,
    )
    return store


@pytest.fixture
def make_store(tmp_path: Path, clock: FixedClock) -> Callable[[str], Store]:
    def make(name: str) -> Store:
        return Store.open(tmp_path / f"{name}.db", create=True, clock=clock)

    return make
