"""A believable demo desk: one user per role, Chinese customers and a hardware maker's catalogue made
through the domain commands, and as many orders as asked for, written in bulk.

Everything is drawn from ``random.Random(seed)`` and the injected clock, so a seed and a clock give the same
desk every time. Orders are planned in two passes: the first draws each order's state and timeline (how
long it spent in every state so far, from the workflow's ``timeout_hours``), the orders are then numbered in
the order they were created, and the second pass draws what they contain (customer, channel, lines) and
writes them with ``executemany`` on the store's write connection, in batches, a few big transactions. On a
big desk (``PARALLEL_MIN_ORDERS``, Linux) a forked helper process does the planning and drawing while this
process makes the catalogue and then inserts; each chunk of orders has its own seeded generator, so the
desk is the same either way.

The bulk orders are a fixture, not business: each gets exactly one audit record (``demo_seed``) chained
like ``audit.chain`` does, so ``orderdesk audit --verify`` passes and every order has a timeline, but no
outbox record (there is nothing for the central API to learn from a demo desk).
"""

from __future__ import annotations

import bisect
import math
import os
import random
import sqlite3
import sys
import time
import tomllib
from array import array
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, NamedTuple

from orderdesk import audit
from orderdesk.barcodes import gtin_check_digit, make_ean13
from orderdesk.canonical import canonical_json
from orderdesk.catalog import add_customer, add_product
from orderdesk.clock import Clock, utcnow
from orderdesk.commands import SYSTEM
from orderdesk.errors import OrderdeskError, StoreError
from orderdesk.i18n import msg
from orderdesk.store import Store
from orderdesk.users import add_user
from orderdesk.workflow import default_workflow_path


class DemoUser(NamedTuple):
    """One demo login: name, PIN, role, display name and (optionally) a badge."""

    name: str
    pin: str
    role: str
    display_name: str
    badge: str = ""


# One user per role; the README lists this table.
DEMO_USERS: tuple[DemoUser, ...] = (
    DemoUser("admin", "0000", "admin", "系统管理员"),
    DemoUser("wang", "1111", "sales", "王芳"),
    DemoUser("zhou", "2222", "qc", "周杰"),
    DemoUser("liu", "3333", "warehouse", "刘洋", "B-LIU"),
    DemoUser("chen", "4444", "finance", "陈静"),
    DemoUser("zhao", "5555", "planner", "赵磊"),
    DemoUser("sun", "6666", "supervisor", "孙丽"),
)

DESK_CODE = "DM"
SEED_COMMAND = "demo_seed"
HISTORY_DAYS = 540  # orders were created over the past ~18 months
BATCH_ORDERS = 10_000  # rows handed to one executemany
TXN_ORDERS = 100_000  # orders per write transaction (a multiple of BATCH_ORDERS)
PARALLEL_MIN_ORDERS = 50_000  # from this many orders on, a forked process makes the rows

# How the desk's orders are spread over the workflow (per mille). Most are done; a good number in flight.
STATE_MIX: dict[str, int] = {
    "closed": 814,
    "delivered": 40,
    "in_transit": 20,
    "shipped": 6,
    "ready_to_ship": 11,
    "qc_pending": 7,
    "qc_failed": 3,
    "surface_treatment": 8,
    "in_production": 22,
    "materials_kitted": 5,
    "scheduled": 9,
    "tech_review": 7,
    "contract_signed": 6,
    "draft": 9,
    "on_hold": 5,
    "cancelled": 28,
}
STATES: tuple[str, ...] = tuple(STATE_MIX)
_S = {s: i for i, s in enumerate(STATES)}
NO_STATE = 255

MTO_PATH: tuple[str, ...] = (
    "draft",
    "contract_signed",
    "tech_review",
    "scheduled",
    "materials_kitted",
    "in_production",
    "surface_treatment",
    "qc_pending",
    "ready_to_ship",
    "shipped",
    "in_transit",
    "delivered",
    "closed",
)
STOCK_PATH: tuple[str, ...] = (
    "draft",
    "contract_signed",
    "ready_to_ship",
    "shipped",
    "in_transit",
    "delivered",
    "closed",
)
ROUTES: tuple[str, ...] = ("make_to_order", "from_stock")
PATHS: tuple[tuple[str, ...], ...] = (MTO_PATH, STOCK_PATH)

STOCK_ROUTE_SHARE = 0.12  # orders of standard parts shipped straight from stock
RUSH_SHARE = 0.08
SLOW_STAGE_SHARE = 0.06  # finished stages that took longer than the state's timeout
OVERDUE_SHARE = 0.10  # open orders that have sat in their current state past its timeout
# Where orders were held, and where cancelled ones were cancelled from (weights).
HELD_FROM: dict[str, int] = {
    "draft": 5,
    "contract_signed": 10,
    "tech_review": 15,
    "scheduled": 15,
    "materials_kitted": 5,
    "in_production": 25,
    "surface_treatment": 5,
    "qc_failed": 5,
    "ready_to_ship": 15,
}
CANCELLED_FROM: dict[str, int] = {
    "draft": 40,
    "contract_signed": 20,
    "tech_review": 15,
    "scheduled": 8,
    "materials_kitted": 2,
    "in_production": 5,
    "on_hold": 10,
}

CHANNEL_MIX: dict[str, float] = {
    "wholesale": 30,
    "offline": 22,
    "alibaba": 18,
    "taobao": 12,
    "jd": 10,
    "miniprogram": 8,
}
RETAIL_CHANNELS = frozenset({"taobao", "jd", "miniprogram"})
LINE_COUNT_MIX = (35, 28, 18, 11, 8)  # orders with 1, 2, 3, 4, 5 lines

# Who made the move into each state (the order's updated_by).
LAST_MOVER: dict[str, str] = {
    "draft": "wang",
    "contract_signed": "wang",
    "tech_review": "zhao",
    "scheduled": "zhao",
    "materials_kitted": "liu",
    "in_production": "zhao",
    "surface_treatment": "zhao",
    "qc_pending": "zhao",
    "qc_failed": "zhou",
    "ready_to_ship": "zhou",
    "shipped": "liu",
    "in_transit": "liu",
    "delivered": "wang",
    "closed": "chen",
    "on_hold": "sun",
    "cancelled": "wang",
}

NOTES: tuple[str, ...] = (
    "客户要求随货附材质证明书",
    "出口订单：木箱包装，需熏蒸证明",
    "送货前请提前一天电话联系收货人",
    "发票随货寄出",
    "客户指定顺丰到付",
    "按图纸 Rev.C 生产，注意倒角",
    "表面处理：热镀锌，锌层≥85μm",
    "分两批发货，第一批先发一半",
    "老客户，优先排产",
    "包装需贴客户物料编码",
)

CREDIT_LEVEL_TERMS: dict[str, tuple[str, ...]] = {
    "A": ("月结60天", "月结30天", "票到60天"),
    "B": ("月结30天", "货到付款", "票到30天"),
    "C": ("货到付款", "款到发货", "预付30%，发货前付清"),
    "D": ("款到发货",),
}
# Credit limit as a share of what a customer's open orders rarely exceed, and the smallest limit (yuan),
# per level: A and B customers almost never hit theirs; a few C customers do (credit holds to release).
CREDIT_HEADROOM: dict[str, tuple[float, int]] = {
    "A": (1.5, 500_000),
    "B": (1.2, 200_000),
    "C": (0.85, 50_000),
    "D": (0.0, 0),  # cash before shipment: finance releases each order
}

_SQL_ORDER = (
    "INSERT INTO sales_order (id, order_no, channel, customer_id, ship_address, amount, signed_date, "
    "promised_date, rush, route, state, state_since, held_from_state, version, owner_id, inspector_id, "
    "tech_approved, materials_kitted, qc_result, credit_released, waybill, packing_preset, notes, created_at, "
    "created_by, updated_at, updated_by) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
)
_SQL_LINE = (
    "INSERT INTO order_line (order_id, line_no, product_id, quantity, unit_price, scanned_qty, shipped_qty, "
    "batch) VALUES (?,?,?,?,?,?,?,?)"
)
_SQL_TIP = "SELECT id, hash FROM audit_record ORDER BY id DESC LIMIT 1"
_SQL_AUDIT = (
    "INSERT INTO audit_record (id, at, user_name, order_no, command, detail, prev_hash, hash) "
    "VALUES (?,?,?,?,?,?,?,?)"
)

_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_CHINA = 8 * 3600  # China Standard Time, UTC+8, no daylight saving
_HOUR = 3600
_DAY = 86400


@dataclass(frozen=True)
class DemoStats:
    """What ``build_demo`` made, and how long it took (wall-clock seconds)."""

    customers: int
    products: int
    orders: int
    seconds: float


# -- data files -------------------------------------------------------------------------------------------
def demo_data_dir() -> Path:
    """The folder with ``names.toml`` and ``products.toml``: package data when installed, else the repo's."""
    here = Path(__file__).parent
    installed = here / "_data" / "demo"
    return installed if installed.is_dir() else here.parent / "data" / "demo"


def _load(name: str) -> dict[str, Any]:
    return tomllib.loads((demo_data_dir() / name).read_text(encoding="utf-8"))


# -- the entry point --------------------------------------------------------------------------------------
def build_demo(
    path: Path,
    *,
    orders: int,
    customers: int = 50,
    products: int = 300,
    seed: int = 7,
    replace: bool = False,
    clock: Clock = utcnow,
) -> DemoStats:
    """Make a demo desk at ``path``: users (``DEMO_USERS``), customers, products and ``orders`` orders.

    ``replace`` removes an existing file (and its -wal/-shm) first; without it an existing file is refused.
    The same ``seed`` and clock give the same desk. If building fails, the half-built file is removed.
    """
    started = time.perf_counter()
    path = Path(path).expanduser()
    if orders < 0 or customers < 1 or products < 1:
        raise ValueError("orders must be >= 0, customers and products >= 1")
    if path.exists() and not replace:
        raise StoreError(
            msg(
                "{path} already exists. Use --force to replace it with a demo desk, or choose another --db.",
                path=str(path),
            ),
            code="db_exists",
        )
    _remove_db_files(path)
    # The demo company runs the workflow orderdesk ships (not ORDERDESK_WORKFLOW): its states are below.
    workflow_path = default_workflow_path()
    store = Store.open(path, create=True, clock=clock, workflow_path=workflow_path)
    _no_fsync_while_building(store)
    try:
        now = clock().astimezone(UTC)
        workflow = store.workflow
        missing = [s for s in STATES if s not in workflow.states]
        if missing:
            raise OrderdeskError(
                msg(
                    "The demo desk needs the workflow states {states}, but {path} has no {missing}.",
                    states=", ".join(STATES),
                    path=str(workflow_path),
                    missing=", ".join(missing),
                ),
                code="demo_workflow",
            )
        timeouts = {s: float(workflow.states[s].timeout_hours) for s in STATES}
        rng = random.Random(seed)
        product_seed, estimate_seed, customer_seed, plan_seed, content_seed = (
            rng.getrandbits(64) for _ in range(5)
        )
        # The orders' states and timelines need nothing from the catalogue: on a big desk a forked helper
        # starts planning them now, while this process makes the users, products and customers.
        with _order_source(_PlanArgs(plan_seed, orders, int(now.timestamp()), timeouts)) as source:
            user_ids = _make_users(store)
            catalog = _make_products(store, random.Random(product_seed), products)
            estimate = _estimate_open_exposure(random.Random(estimate_seed), catalog, orders)
            book = _make_customers(store, random.Random(customer_seed), customers, estimate)
            _write_orders(store, source, content_seed, catalog, book, user_ids, now)
    except BaseException:
        store.close()
        _remove_db_files(path)
        raise
    store.close()
    _fsync(path)
    return DemoStats(
        customers=len(book.customers),
        products=len(catalog.products),
        orders=orders,
        seconds=time.perf_counter() - started,
    )


def _no_fsync_while_building(store: Store) -> None:
    """Let SQLite skip fsync while the demo is built (``_fsync`` makes the finished file durable).

    The store runs ``synchronous=FULL``, right for business data; a half-built demo is worthless anyway,
    and ~360 domain commands each waiting for the disk would be most of a small demo's build time.
    """
    from sqlalchemy import event

    store.close()  # connections made from here on get the listener below, after the store's own

    @event.listens_for(store.engine, "connect")
    def _fast(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.execute("PRAGMA synchronous = OFF")


def _fsync(path: Path) -> None:
    with path.open("rb") as fh:
        os.fsync(fh.fileno())


def _remove_db_files(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def _make_users(store: Store) -> dict[str, int]:
    """The demo users through ``add_user``; the desk code set to ``DM``. Returns user name → id."""
    from sqlmodel import select

    from orderdesk.models import AppUser, Desk

    with store.write() as session:
        desk = session.get(Desk, 1)
        assert desk is not None
        desk.desk_code = DESK_CODE
        session.add(desk)
    for u in DEMO_USERS:
        add_user(
            store,
            name=u.name,
            roles=[u.role],
            pin=u.pin,
            badge=u.badge or None,
            display_name=u.display_name,
            by=SYSTEM,
        )
    with store.read() as session:
        return {u.name: u.id or 0 for u in session.exec(select(AppUser))}


# -- products ---------------------------------------------------------------------------------------------
@dataclass
class _Product:
    id: int
    sku: str
    name: str
    unit: str
    price: int  # fen
    qty_lo: int
    qty_hi: int
    stock: bool
    hazard: str


@dataclass
class _Catalog:
    products: list[_Product]
    orderable: list[_Product]  # everything but the prohibited
    cum: list[float]  # cumulative popularity over ``orderable``
    stock: list[_Product]  # what from-stock orders are made of
    stock_cum: list[float]


def _nice_price(yuan: float) -> int:
    """Fen, rounded the way a price list is: whole yuan from 100, dimes from 10, else fen."""
    fen = yuan * 100
    step = 100 if yuan >= 100 else 10 if yuan >= 10 else 1
    return max(1, round(fen / step) * step)


def _specs(family: dict[str, Any]) -> list[dict[str, Any]]:
    """A family's specs as dicts (code, name, price?, hazard?, note?) in file order."""
    out = []
    for spec in family["specs"]:
        if isinstance(spec, str):
            out.append({"code": spec, "name": spec})
        elif isinstance(spec, list):
            out.append({"code": spec[0], "name": spec[1]})
        else:
            out.append(dict(spec))
    return out


def _make_products(store: Store, rng: random.Random, count: int) -> _Catalog:
    """About ``count`` products through ``add_product``, each family keeping its share of the catalogue."""
    families = _load("products.toml")["families"]
    # Every candidate product of each family: (spec, material or None, spec's index, number of specs).
    candidates: list[list[tuple[dict[str, Any], tuple[str, str, float] | None, int, int]]] = []
    for fam in families:
        specs = _specs(fam)
        mats = [tuple(m) for m in fam.get("materials", [])] or [None]
        cands = []
        for mat in mats:
            for j, spec in enumerate(specs):
                cands.append((spec, mat, j, len(specs)))
        candidates.append(cands)
    # Quotas: the prohibited family gives 1-2 products; the others share the rest by ``share``.
    quotas = [0] * len(families)
    prohibited = [i for i, f in enumerate(families) if float(f["share"]) == 0]
    for i in prohibited:
        quotas[i] = min(len(candidates[i]), 1 if count < 100 else 2, max(0, count - 1))
    rest = count - sum(quotas)
    total_share = sum(float(f["share"]) for f in families) or 1.0
    for i, fam in enumerate(families):
        if i not in prohibited:
            quotas[i] = min(len(candidates[i]), math.floor(rest * float(fam["share"]) / total_share))
    # Hand out what is left to families that still have candidates, largest share first.
    order = sorted(
        (i for i in range(len(families)) if i not in prohibited), key=lambda i: -families[i]["share"]
    )
    left = count - sum(quotas)
    while left > 0 and any(quotas[i] < len(candidates[i]) for i in order):
        for i in order:
            if left and quotas[i] < len(candidates[i]):
                quotas[i] += 1
                left -= 1
    chosen: list[tuple[int, dict[str, Any], tuple[str, str, float] | None, int, int, int]] = []
    for i, cands in enumerate(candidates):
        picked = sorted(rng.sample(range(len(cands)), quotas[i]))
        chosen += [(i, *cands[k], 0) for k in picked]
    # More products asked for than the file describes: customer-specific variants of standard items.
    variant = 0
    while left > 0:
        variant += 1
        for i in order:
            for cand in candidates[i]:
                if left == 0:
                    break
                chosen.append((i, *cand, variant))
                left -= 1
            if left == 0:
                break

    ean_items: dict[str, int] = {}
    specs_out: list[dict[str, Any]] = []
    for i, spec, mat, j, nspecs, var in chosen:
        fam = families[i]
        mat_code, mat_zh, factor = (mat[0], mat[1], float(mat[2])) if mat else ("", "", 1.0)
        sku = "-".join(p for p in (fam["prefix"], mat_code, spec["code"]) if p)
        name = fam["name"].format(material=mat_zh, spec=spec["name"]).strip()
        if var:
            sku += f"-C{var:03d}"
            name += f"（客户定制 {var:03d}）"
        lo, hi = (float(x) for x in fam["price"])
        base = spec.get("price") or lo * (hi / lo) ** (j / max(1, nspecs - 1))
        price = _nice_price(float(base) * factor * (1 + 0.15 * var))
        qty_lo, qty_hi = (int(x) for x in fam["qty"])
        hazard = spec.get("hazard", "none")
        stock = bool(fam["stock"]) and hazard != "prohibited"
        codes: list[str] = []
        carton_units = 0
        prefix = str(fam["gs1"])
        if hazard != "prohibited" and rng.random() < float(fam["ean"]):
            item = (ean_items[prefix] if prefix in ean_items else rng.randint(100, 3000)) + rng.randint(1, 7)
            if item <= 99_999:
                ean_items[prefix] = item
                ean = make_ean13(f"{prefix}{item:05d}")
                codes.append(ean)
                if int(fam["carton"]) and rng.random() < 0.5:
                    body = "1" + ean[:12]
                    codes.append(body + str(gtin_check_digit(body)))
                    carton_units = int(fam["carton"])
        if not codes:
            codes.append(sku)  # a Code 128 label carrying the SKU
        if stock:
            safety = max(1, round(qty_hi * rng.uniform(0.5, 2.0)))
            roll = rng.random()
            on_hand = (
                0
                if roll < 0.03
                else round(safety * rng.uniform(0.1, 0.9))
                if roll < 0.13
                else round(safety * rng.uniform(1.2, 6))
            )
        else:
            safety = 0
            on_hand = 0 if hazard == "prohibited" or rng.random() < 0.7 else rng.randint(1, 2 * qty_lo)
        lead_lo, lead_hi = (int(x) for x in fam["lead_days"])
        specs_out.append(
            {
                "sku": sku,
                "name": name,
                "unit": fam["unit"],
                "unit_price": price,
                "barcodes": codes,
                "carton_units": carton_units,
                "hazard": hazard,
                "hazard_note": spec.get("note", ""),
                "stock_on_hand": on_hand,
                "safety_stock": safety,
                "lead_time_days": rng.randint(lead_lo, lead_hi),
                "qty": (qty_lo, qty_hi),
                "stock": stock,
            }
        )
    for p in specs_out:
        add_product(
            store,
            sku=p["sku"],
            name=p["name"],
            unit=p["unit"],
            unit_price=p["unit_price"],
            barcodes=p["barcodes"],
            hazard=p["hazard"],
            hazard_note=p["hazard_note"],
            stock_on_hand=p["stock_on_hand"],
            safety_stock=p["safety_stock"],
            lead_time_days=p["lead_time_days"],
            user=SYSTEM,
        )
    _set_carton_units(store, [(p["carton_units"], p["barcodes"][1]) for p in specs_out if p["carton_units"]])
    ids = _ids(store, "SELECT sku, id FROM product")
    products = [
        _Product(
            ids[p["sku"]], p["sku"], p["name"], p["unit"], p["unit_price"], *p["qty"], p["stock"], p["hazard"]
        )
        for p in specs_out
    ]
    orderable = [p for p in products if p.hazard != "prohibited"] or products
    # Popularity: a long tail, in an order that has nothing to do with the file's.
    ranks = list(range(len(orderable)))
    rng.shuffle(ranks)
    weights = [1 / (r + 3) ** 0.8 for r in ranks]
    stock = [(p, w) for p, w in zip(orderable, weights, strict=True) if p.stock] or list(
        zip(orderable, weights, strict=True)
    )
    return _Catalog(
        products=products,
        orderable=orderable,
        cum=_cumulative(weights),
        stock=[p for p, _ in stock],
        stock_cum=_cumulative([w for _, w in stock]),
    )


def _set_carton_units(store: Store, rows: Sequence[tuple[int, str]]) -> None:
    """How many units one scan of a carton GTIN-14 stands for.

    ``add_product`` takes plain codes (one unit each); a carton code needs its pack size, so the demo
    sets it here, as part of the seeding fixture.
    """
    if not rows:
        return
    with store.write() as session:
        session.connection().exec_driver_sql("UPDATE productbarcode SET units = ? WHERE code = ?", list(rows))


def _ids(store: Store, sql: str) -> dict[str, int]:
    with store.read() as session:
        return {str(k): int(v) for k, v in session.connection().exec_driver_sql(sql).all()}


def _cumulative(weights: Sequence[float]) -> list[float]:
    out, total = [], 0.0
    for w in weights:
        total += w
        out.append(total)
    return out


def _pick(rng_random: Callable[[], float], cum: Sequence[float]) -> int:
    """An index drawn with the weights whose running sum is ``cum``."""
    return min(bisect.bisect_right(cum, rng_random() * cum[-1]), len(cum) - 1)


# -- customers --------------------------------------------------------------------------------------------
@dataclass
class _Customer:
    id: int
    code: str
    level: str
    address: str
    sites: list[str]
    channels: list[float]  # cumulative weights over CHANNEL_MIX
    weight: float


@dataclass
class _Book:
    customers: list[_Customer]
    cum: list[float]


def _mobile(rng: random.Random, prefixes: Sequence[str]) -> str:
    return rng.choice(prefixes) + f"{rng.randrange(10**8):08d}"


def _landline(rng: random.Random, area: str) -> str:
    return f"{area}-{rng.randint(2, 8)}{rng.randrange(10**7):07d}"


def _address(
    rng: random.Random, city: dict[str, Any], streets: Sequence[str], district: str | None = None
) -> str:
    district = district or rng.choice(city["districts"])
    extra = rng.choice(
        ("", "", f"{rng.randint(1, 12)}栋", f"{rng.randint(1, 9)}号厂房", f"{rng.randint(2, 18)}楼")
    )
    return f"{city['province']}{city['city']}{district}{rng.choice(streets)}{rng.randint(1, 999)}号{extra}"


@dataclass(frozen=True)
class _Exposure:
    """How many orders will be open (past draft, not closed or cancelled), and their amounts (fen)."""

    open_orders: float
    mean: float
    mean_square: float

    def limit_for(self, share: float) -> float:
        """A credit limit that a customer placing ``share`` of the orders rarely exceeds (mean + 2 sd)."""
        n = self.open_orders * share
        return n * self.mean + 2 * math.sqrt(n * self.mean_square)


def _estimate_open_exposure(rng: random.Random, catalog: _Catalog, orders: int) -> _Exposure:
    """Sample order amounts the way the orders will be drawn, to size the customers' credit limits."""
    sample = 2000
    channels = list(CHANNEL_MIX)
    cum = _cumulative(list(CHANNEL_MIX.values()))
    total = squares = 0
    for _ in range(sample):
        channel = channels[_pick(rng.random, cum)]
        amount = sum(p.price * q for p, q in _draw_lines(rng, catalog, channel, stock_route=False))
        total += amount
        squares += amount * amount
    owed = sum(w for s, w in STATE_MIX.items() if s not in ("draft", "cancelled", "closed"))
    return _Exposure(orders * owed / sum(STATE_MIX.values()), total / sample, squares / sample)


def _make_customers(store: Store, rng: random.Random, count: int, exposure: _Exposure) -> _Book:
    """``count`` customers through ``add_customer``, credit limits sized to the orders they will place."""
    names = _load("names.toml")
    cities = names["cities"]
    city_cum = _cumulative([float(c["weight"]) for c in cities])
    foreign = list(names["foreign"])
    n_foreign = min(len(foreign), max(1, count // 12)) if count >= 8 else 0
    rng.shuffle(foreign)
    foreign_at = set(rng.sample(range(count), n_foreign))
    weights = [min(25.0, rng.paretovariate(1.16)) for _ in range(count)]
    by_weight = sorted(range(count), key=lambda i: -weights[i])
    level = {}
    for rank, i in enumerate(by_weight):
        frac = rank / count
        level[i] = "A" if frac < 0.2 else "B" if frac < 0.6 else "C" if frac < 0.9 else "D"
    total_weight = sum(weights)
    width = max(4, len(str(count)))
    seen: set[str] = set()
    made: list[dict[str, Any]] = []
    for i in range(count):
        lvl = level[i]
        profile = {ch: w * rng.lognormvariate(0, 0.6) for ch, w in CHANNEL_MIX.items()}
        if i in foreign_at:
            f = foreign.pop()
            name, contact, phone, address, region = (
                f["name"],
                f["contact"],
                f["phone"],
                f["address"],
                f["region"],
            )
            terms = f["terms"]
            lvl = "B" if lvl == "D" else lvl
            profile = {
                ch: w * (5 if ch == "alibaba" else 0.1 if ch in RETAIL_CHANNELS else 1)
                for ch, w in profile.items()
            }
            sites = [address]
        else:
            city = cities[_pick(rng.random, city_cum)]
            stem = city["city"] if city["province"] else city["city"].removesuffix("市")
            name = f"{stem}{rng.choice(names['brands'])}{rng.choice(names['industries'])}有限公司"
            tries = 0
            while name in seen:
                tries += 1
                name = f"{stem}{rng.choice(names['brands'])}{rng.choice(names['industries'])}有限公司"
                if tries > 20:
                    name = name.removesuffix("有限公司") + f"第{tries}分公司"
            contact = rng.choice(names["surnames"]) + rng.choice(names["given_names"])
            phone = (
                _landline(rng, city["area_code"])
                if rng.random() < 0.15
                else _mobile(rng, names["mobile_prefixes"])
            )
            address = _address(rng, city, names["streets"])
            region = city["region"]
            terms = rng.choice(CREDIT_LEVEL_TERMS[lvl])
            sites = [
                _address(rng, city, names["streets"]) + f"（{rng.choice(names['sites'])}）"
                for _ in range(rng.randint(1, 2))
            ]
            if lvl in ("C", "D"):
                for ch in RETAIL_CHANNELS:
                    profile[ch] *= 2.5
        seen.add(name)
        headroom, floor_yuan = CREDIT_HEADROOM[lvl]
        limit = 0
        if headroom:
            needed = exposure.limit_for(weights[i] / total_weight) * headroom
            limit = max(floor_yuan * 100, math.ceil(needed / 1_000_000) * 1_000_000)  # whole 10k yuan
        made.append(
            {
                "code": f"C{i + 1:0{width}d}",
                "name": name,
                "contact": contact,
                "phone": phone,
                "address": address,
                "region": region,
                "credit_limit": limit,
                "settlement_terms": terms,
                "credit_level": lvl,
                "sites": sites,
                "channels": _cumulative([profile[ch] for ch in CHANNEL_MIX]),
                "weight": weights[i],
            }
        )
    for c in made:
        add_customer(
            store,
            code=c["code"],
            name=c["name"],
            contact=c["contact"],
            phone=c["phone"],
            address=c["address"],
            region=c["region"],
            credit_limit=c["credit_limit"],
            settlement_terms=c["settlement_terms"],
            credit_level=c["credit_level"],
            user=SYSTEM,
        )
    ids = _ids(store, "SELECT code, id FROM customer")
    customers = [
        _Customer(
            ids[c["code"]], c["code"], c["credit_level"], c["address"], c["sites"], c["channels"], c["weight"]
        )
        for c in made
    ]
    return _Book(customers, _cumulative([c.weight for c in customers]))


# -- pass 1: states and timelines -------------------------------------------------------------------------
@dataclass
class _Plan:
    """Every order's state and timeline, in the order they were drawn (``order`` numbers them)."""

    state: array  # index into STATES
    eff: array  # the state the order's flags follow (where it was held / cancelled from)
    held: array  # held_from_state, NO_STATE if none
    route: array  # 0 make to order, 1 from stock
    bits: array  # 1 rush, 2 reworked after a failed QC
    created: array  # epoch seconds
    since: array  # epoch seconds
    signed: array  # China-local day number, -1 if not signed
    promised: array  # China-local day number, -1 if none
    order: list[int]  # draw indexes sorted by creation time


def _quotas(n: int) -> list[int]:
    """Orders per state: proportional to STATE_MIX (largest remainder), at least one each if n allows."""
    weights = list(STATE_MIX.values())
    total = sum(weights)
    exact = [n * w / total for w in weights]
    counts = [math.floor(x) for x in exact]
    for i in sorted(range(len(counts)), key=lambda i: exact[i] - counts[i], reverse=True)[: n - sum(counts)]:
        counts[i] += 1
    if n >= len(counts):
        for i, c in enumerate(counts):
            if c == 0:
                donor = max(range(len(counts)), key=lambda k: counts[k])
                counts[donor] -= 1
                counts[i] = 1
    return counts


def _plan_orders(rng: random.Random, n: int, now: int, timeouts: dict[str, float]) -> _Plan:
    """Draw each order's state and a timeline consistent with it, then sort the orders by creation time."""
    rnd, uniform, randint = rng.random, rng.uniform, rng.randint
    t_hours = {s: (timeouts[s] or 48.0) for s in STATES}
    t_seconds = {s: h * _HOUR for s, h in t_hours.items()}
    path_seconds = [[t_seconds[s] for s in path] for path in PATHS]
    start = now - HISTORY_DAYS * _DAY
    held_states, held_cum = list(HELD_FROM), _cumulative(list(HELD_FROM.values()))
    cancel_states, cancel_cum = list(CANCELLED_FROM), _cumulative(list(CANCELLED_FROM.values()))
    pos = [{s: i for i, s in enumerate(p)} for p in PATHS]
    qc_pos = pos[0]["qc_pending"]

    def stage(s: str, rush: bool) -> int:
        """Seconds a finished stage took."""
        # Most stages finish inside the timeout (about half of it); a few overrun it.
        f = 1.05 + 1.45 * rnd() if rnd() < SLOW_STAGE_SHARE else 0.05 + 0.45 * (rnd() + rnd())
        return int(t_seconds[s] * f * (0.6 if rush else 1.0))

    def elapsed(s: str) -> int:
        """Seconds an open order has sat in its current state (some past the timeout)."""
        f = uniform(1.02, 2.5) if rnd() < OVERDUE_SHARE else uniform(0.02, 0.97)
        return max(60, int(t_hours[s] * f * _HOUR))

    def priors(route: int, upto: str, rush: bool) -> tuple[int, int, bool]:
        """Seconds spent before entering ``upto`` (qc_failed: after qc_pending), the draft stage, reworked?"""
        end = qc_pos + 1 if upto == "qc_failed" else pos[route][upto]
        scale = 0.6 if rush else 1.0
        total = first = 0
        for k, seconds in enumerate(path_seconds[route][:end]):
            f = 1.05 + 1.45 * rnd() if rnd() < SLOW_STAGE_SHARE else 0.05 + 0.45 * (rnd() + rnd())
            d = int(seconds * f * scale)
            if k == 0:
                first = d
            total += d
        rework = route == 0 and upto != "qc_failed" and end > qc_pos and rnd() < 0.05
        if rework:
            total += stage("qc_failed", rush) + stage("in_production", rush) // 3 + stage("qc_pending", rush)
        return total, first, rework

    def route_for(s: str) -> int:
        in_stock = s in pos[1]
        return 1 if in_stock and rnd() < STOCK_ROUTE_SHARE else 0

    def growth_time(lo: int, hi: int) -> int:
        """A time in [lo, hi], more orders later (the business grew about 2x over the period)."""
        x = math.sqrt(1 + 3 * rnd()) - 1
        return lo + int(x * max(0, hi - lo))

    plan = _Plan(
        state=array("B"),
        eff=array("B"),
        held=array("B"),
        route=array("B"),
        bits=array("B"),
        created=array("q"),
        since=array("q"),
        signed=array("q"),
        promised=array("q"),
        order=[],
    )
    remaining = _quotas(n)
    left = n
    for _ in range(n):
        # Exact quotas, drawn in random order.
        r = rnd() * left
        s_idx = 0
        while r >= remaining[s_idx]:
            r -= remaining[s_idx]
            s_idx += 1
        remaining[s_idx] -= 1
        left -= 1
        state = STATES[s_idx]
        rush = rnd() < RUSH_SHARE
        held = ""
        eff = state
        if state in ("closed", "cancelled"):
            if state == "closed":
                route = route_for(state)
                total, first, rework = priors(route, "closed", rush)
            else:
                eff = cancel_states[_pick(rnd, cancel_cum)]
                if eff == "on_hold":
                    held = eff = held_states[_pick(rnd, held_cum)]
                route = route_for(eff)
                total, first, rework = priors(route, eff, rush)
                total += int(t_hours[eff] * uniform(0.1, 1.5) * _HOUR)
                if held:
                    total += int(t_hours["on_hold"] * uniform(0.2, 1.5) * _HOUR)
            created = growth_time(start, now - total - _HOUR)
            since = created + total
        else:
            if state == "on_hold":
                held = eff = held_states[_pick(rnd, held_cum)]
            route = 0 if eff == "qc_failed" else route_for(eff)
            since = now - elapsed(state)
            total, first, rework = priors(route, eff, rush)
            if held:
                total += int(t_hours[eff] * uniform(0.1, 0.9) * _HOUR)
            created = since - total
        signed_at = created + first if eff != "draft" else -1
        # Orders are mostly keyed in during office hours (China time): move a night-time one earlier.
        local = (created + _CHINA) % _DAY
        if since != created and (local < 8.5 * _HOUR or local > 18.5 * _HOUR) and rnd() < 0.85:
            back = local - int(uniform(8.5, 18.5) * _HOUR)
            created -= back if back > 0 else back + _DAY
        created_day = (created + _CHINA) // _DAY
        if state == "draft" and rnd() < 0.25:
            promised = -1
        else:
            lead = randint(7, 12) if rush else randint(3, 10) if route == 1 else randint(15, 40)
            promised = created_day + lead
        plan.state.append(s_idx)
        plan.eff.append(_S[eff])
        plan.held.append(_S[held] if held else NO_STATE)
        plan.route.append(route)
        plan.bits.append((1 if rush else 0) | (2 if rework else 0))
        plan.created.append(created)
        plan.since.append(since)
        plan.signed.append((signed_at + _CHINA) // _DAY if signed_at >= 0 else -1)
        plan.promised.append(promised)
    plan.order = sorted(range(n), key=plan.created.__getitem__)
    return plan


# -- pass 2: contents, and writing ------------------------------------------------------------------------
def _draw_lines(
    rng: random.Random, catalog: _Catalog, channel: str, *, stock_route: bool
) -> list[tuple[_Product, int]]:
    """1-5 distinct products with believable quantities for the channel."""
    rnd = rng.random
    pool, cum = (catalog.stock, catalog.stock_cum) if stock_route else (catalog.orderable, catalog.cum)
    want = min(len(pool), 1 + _pick(rnd, _LINE_CUM))
    retail = channel in RETAIL_CHANNELS
    picked: list[tuple[_Product, int]] = []
    seen: set[int] = set()
    tries = 0
    while len(picked) < want and tries < 30:
        tries += 1
        k = _pick(rnd, cum)
        if k in seen:
            continue
        seen.add(k)
        p = pool[k]
        lo, hi = p.qty_lo, p.qty_hi
        u = rnd()
        if retail:
            lo, u = max(1, lo // 4), u * 0.45
        q = lo * (hi / lo) ** u
        step = 100 if q >= 2000 else 10 if q >= 100 else 5 if q >= 30 else 1
        picked.append((p, max(1, int(round(q / step) * step))))
    return picked


_LINE_CUM = _cumulative(LINE_COUNT_MIX)


class _Days:
    """Fast epoch-seconds → text, with the day part cached."""

    def __init__(self) -> None:
        self._days: dict[int, str] = {}

    def day(self, n: int) -> str:
        text = self._days.get(n)
        if text is None:
            text = self._days[n] = date.fromordinal(_EPOCH_ORDINAL + n).isoformat()
        return text

    def sql(self, t: int) -> str:
        """As SQLAlchemy stores a UTC datetime in SQLite."""
        d, s = divmod(t, _DAY)
        h, s = divmod(s, 3600)
        m, s = divmod(s, 60)
        return f"{self.day(d)} {h:02d}:{m:02d}:{s:02d}.000000"

    def iso(self, t: int) -> str:
        d, s = divmod(t, _DAY)
        h, s = divmod(s, 3600)
        m, s = divmod(s, 60)
        return f"{self.day(d)}T{h:02d}:{m:02d}:{s:02d}+00:00"


def _waybill(rng: random.Random, channel: str) -> str:
    digits = rng.randrange
    roll = rng.random()
    if channel == "jd":
        return f"JDVA{digits(10**11):011d}"
    if channel in ("wholesale", "offline", "alibaba") and roll < 0.5:
        return f"DPK{digits(10**12):012d}" if roll < 0.3 else f"ANE{digits(10**10):010d}"
    if roll < 0.75:
        return f"SF{digits(10**13):013d}"
    return f"YT{digits(10**13):013d}" if roll < 0.9 else f"7{digits(10**13):013d}"


def _write_orders(
    store: Store,
    source: _OrderSource,
    seed: int,
    catalog: _Catalog,
    book: _Book,
    user_ids: dict[str, int],
    now: datetime,
) -> None:
    """Write the planned orders, their lines and one audit record each, in bulk.

    ``source`` makes the rows in chunks of ``BATCH_ORDERS`` (each chunk from its own seeded generator, so
    the result does not depend on who makes it); this process inserts them, 100,000 orders a transaction.
    """
    from orderdesk.models import Desk

    n = source.plan_args.n
    if n == 0:
        return
    with store.read() as session:
        desk = session.get(Desk, 1)
        assert desk is not None
        code, first_no = desk.desk_code, desk.next_order_no
        sql = "SELECT coalesce(max(id), 0) FROM sales_order"
        first_id = int(session.connection().exec_driver_sql(sql).scalar() or 0) + 1
        tip = session.connection().exec_driver_sql(_SQL_TIP).first()
    chain = (int(tip[0]), str(tip[1])) if tip else (0, audit.GENESIS)
    chunks = source.chunks(_Context(seed, catalog, book, user_ids, now, code, first_id, first_no, chain))
    done = 0
    restore: list[str] | None = None  # set once the bulk load's indexes and triggers are suspended
    while done < n:
        end = min(n, done + TXN_ORDERS)
        with store.write() as session:
            cur = session.connection().connection.driver_connection.cursor()
            cur.execute("PRAGMA cache_size = -262144")  # 256 MB while loading
            if done == 0 and first_id == 1:
                restore = _suspend_indexes(cur)
            tip = cur.execute(_SQL_TIP).fetchone()
            if (tuple(tip) if tip else (0, audit.GENESIS)) != chain:
                raise RuntimeError("something else wrote to the demo desk while it was being built")
            while done < end:
                orders, lines, records = next(chunks)
                cur.executemany(_SQL_ORDER, orders)
                cur.executemany(_SQL_LINE, lines)
                cur.executemany(_SQL_AUDIT, records)
                done += len(orders)
                chain = (records[-1][0], records[-1][-1])
            # No outbox records for the bulk orders: seeding is a fixture, not a business change.
            cur.execute("UPDATE desk SET next_order_no = ? WHERE id = 1", (first_no + done,))
            cur.close()
    if restore is not None:
        with store.write() as session:
            cur = session.connection().connection.driver_connection.cursor()
            cur.execute("PRAGMA cache_size = -262144")
            for sql in restore:
                cur.execute(sql)
            cur.close()
        _restore_tallies(store)


_BULK_TABLES = ("sales_order", "order_line", "audit_record")


def _suspend_indexes(cur: sqlite3.Cursor) -> list[str]:
    """Drop the bulk tables' secondary indexes and the board's tally triggers for the load; return the SQL
    that puts the indexes back exactly as they were (``_restore_tallies`` puts the triggers back).

    Building an index once, sorted, is several times faster than keeping it up to date row by row, and the
    tally trigger does two upserts per order. The triggers are only dropped when ``orderdesk.board`` can put
    them back and recount the tallies (exact here: the demo desk had no orders before); any other trigger
    stays and simply runs.
    """
    placeholders = ",".join("?" * len(_BULK_TABLES))
    rows = cur.execute(
        "SELECT type, name, sql FROM sqlite_master WHERE type IN ('index', 'trigger') AND sql IS NOT NULL "
        f"AND tbl_name IN ({placeholders}) ORDER BY type, name",
        _BULK_TABLES,
    ).fetchall()
    restore = []
    for kind, name, sql in rows:
        if kind == "index":
            cur.execute(f'DROP INDEX "{name}"')
            restore.append(sql)
    board = _board()
    if board is not None:
        for name in board.TRIGGERS:
            cur.execute(f'DROP TRIGGER IF EXISTS "{name}"')
    return restore


def _restore_tallies(store: Store) -> None:
    """Put the board's tally triggers back and recount the tallies from ``sales_order``."""
    board = _board()
    if board is not None:
        board.ensure_tallies(store)


def _board() -> Any:
    """``orderdesk.board`` if it offers what a bulk load needs (``TRIGGERS``, ``ensure_tallies``), else None."""
    try:
        from orderdesk import board
    except ImportError:
        return None
    ok = isinstance(getattr(board, "TRIGGERS", None), dict) and callable(
        getattr(board, "ensure_tallies", None)
    )
    return board if ok else None


_Chunk = tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]]]


@dataclass(frozen=True)
class _PlanArgs:
    """What planning the orders needs: ``_plan_orders(random.Random(seed), n, now, timeouts)``."""

    seed: int
    n: int
    now: int
    timeouts: dict[str, float]


@dataclass(frozen=True)
class _Context:
    """What making the rows needs besides the plan (known once the catalogue and customers exist)."""

    seed: int
    catalog: _Catalog
    book: _Book
    user_ids: dict[str, int]
    now: datetime
    desk_code: str
    first_id: int
    first_no: int
    chain: tuple[int, str]


class _OrderSource:
    """Plans the orders and makes their rows, in this process."""

    def __init__(self, plan_args: _PlanArgs) -> None:
        self.plan_args = plan_args

    def chunks(self, context: _Context) -> Iterator[_Chunk]:
        """Every chunk of rows, in order."""
        a = self.plan_args
        maker = _OrderMaker(_plan_orders(random.Random(a.seed), a.n, a.now, a.timeouts), context)
        return map(maker.chunk, range(0, a.n, BATCH_ORDERS))

    def close(self) -> None:
        """Stop making rows (nothing to do in-process)."""


class _ForkedOrderSource(_OrderSource):
    """Plans the orders and makes their rows in a forked child, which starts planning at once; the rows
    come back pickled through a pipe, which blocks the child when the parent falls behind."""

    def __init__(self, plan_args: _PlanArgs) -> None:
        import multiprocessing as mp

        super().__init__(plan_args)
        ctx = mp.get_context("fork")
        self._rows, child_rows = ctx.Pipe(duplex=False)
        child_context, self._context = ctx.Pipe(duplex=False)
        self._child = ctx.Process(
            target=_child_main,
            args=(plan_args, child_context, child_rows),
            name="orderdesk-demo",
            daemon=True,
        )
        self._child.start()
        child_rows.close()
        child_context.close()

    def chunks(self, context: _Context) -> Iterator[_Chunk]:
        """Send the child ``context``, then yield what it makes."""
        import pickle

        # If the child already failed, the pipe is closed and its report is waiting in the rows pipe.
        with suppress(OSError):
            self._context.send_bytes(pickle.dumps(context, protocol=pickle.HIGHEST_PROTOCOL))
        for _ in range(0, self.plan_args.n, BATCH_ORDERS):
            kind, payload = pickle.loads(self._rows.recv_bytes())
            if kind == "error":
                raise RuntimeError(f"making the demo orders failed in the helper process:\n{payload}")
            yield payload

    def close(self) -> None:
        """End the child (it is done, or the build failed) and close the pipes."""
        self._rows.close()
        self._context.close()
        if self._child.is_alive():
            self._child.terminate()
        self._child.join()


def _child_main(plan_args: _PlanArgs, context_in: Any, rows_out: Any) -> None:
    """The forked child: plan, wait for the context, then make and send every chunk."""
    import pickle
    import traceback

    try:
        a = plan_args
        plan = _plan_orders(random.Random(a.seed), a.n, a.now, a.timeouts)
        context = pickle.loads(context_in.recv_bytes())
        maker = _OrderMaker(plan, context)
        for start in range(0, a.n, BATCH_ORDERS):
            rows_out.send_bytes(pickle.dumps(("rows", maker.chunk(start)), protocol=pickle.HIGHEST_PROTOCOL))
    except EOFError:
        pass  # the parent gave up before sending the context
    except BaseException:
        rows_out.send_bytes(pickle.dumps(("error", traceback.format_exc())))
    finally:
        rows_out.close()


@contextmanager
def _order_source(plan_args: _PlanArgs) -> Iterator[_OrderSource]:
    """A forked source for a big desk on Linux, else an in-process one; closed (the child ended) on exit."""
    import multiprocessing as mp

    # Fork only on Linux: macOS has fork, but forking there is unsafe once system frameworks are loaded.
    can_fork = sys.platform.startswith("linux") and "fork" in mp.get_all_start_methods()
    forked = plan_args.n >= PARALLEL_MIN_ORDERS and can_fork
    source = _ForkedOrderSource(plan_args) if forked else _OrderSource(plan_args)
    try:
        yield source
    finally:
        source.close()


class _OrderMaker:
    """Turns planned orders into rows for sales_order and order_line, plus each audit record's detail."""

    def __init__(self, plan: _Plan, context: _Context) -> None:
        c = context
        self.seed, self.plan, self.catalog, self.book = c.seed, plan, c.catalog, c.book
        self.audit_id, self.prev_hash = c.chain  # the audit chain's tip; ``chunk`` must be called in order
        self.wang, self.zhou = c.user_ids["wang"], c.user_ids["zhou"]
        self.at = c.now.astimezone(UTC)
        self.at_sql = f"{self.at:%Y-%m-%d %H:%M:%S.%f}"  # as SQLAlchemy stores it
        self.now = int(self.at.timestamp())
        self.desk_code, self.first_id, self.first_no = c.desk_code, c.first_id, c.first_no
        self.days = _Days()
        self._reach: dict[tuple[int, int], tuple[frozenset[str], int]] = {}

    def reached(self, route: int, state: int, eff: int) -> tuple[frozenset[str], int]:
        """The states an order has passed through (its flags follow them), and how many moves that took."""
        key = (route, state * 256 + eff)
        hit = self._reach.get(key)
        if hit is None:
            path = PATHS[route]
            s, e = STATES[state], STATES[eff]
            here = path.index("qc_pending" if e == "qc_failed" else e) if e in path or e == "qc_failed" else 0
            moves = here + (e == "qc_failed") + (s in ("on_hold", "cancelled"))
            hit = self._reach[key] = (frozenset(path[: here + 1]), moves)
        return hit

    def chunk(self, begin: int) -> _Chunk:
        """Rows for the ``BATCH_ORDERS`` orders from number ``begin`` on, in creation order: orders, lines,
        and audit records chained from the previous chunk's last one (exactly as ``audit.chain`` would)."""
        plan, days, catalog = self.plan, self.days, self.catalog
        rng = random.Random(f"{self.seed}:{begin}")
        rnd, randint, choice, uniform = rng.random, rng.randint, rng.choice, rng.uniform
        customers, cust_cum = self.book.customers, self.book.cum
        channels = list(CHANNEL_MIX)
        wang, zhou, now = self.wang, self.zhou, self.now
        first_id, first_no, desk_code = self.first_id, self.first_no, self.desk_code
        order_rows: list[tuple[Any, ...]] = []
        line_rows: list[tuple[Any, ...]] = []
        records: list[tuple[Any, ...]] = []
        record_hash, user, command, at, at_sql = (
            audit.record_hash,
            SYSTEM.name,
            SEED_COMMAND,
            self.at,
            self.at_sql,
        )
        audit_id, prev = self.audit_id, self.prev_hash
        for k in range(begin, min(len(plan.order), begin + BATCH_ORDERS)):
            i = plan.order[k]
            s_idx, e_idx, held_idx = plan.state[i], plan.eff[i], plan.held[i]
            state, eff = STATES[s_idx], STATES[e_idx]
            held = STATES[held_idx] if held_idx != NO_STATE else ""
            route, bits = plan.route[i], plan.bits[i]
            created, since = plan.created[i], plan.since[i]
            signed, promised = plan.signed[i], plan.promised[i]
            order_id = first_id + k
            order_no = f"SO-{desk_code}-{first_no + k:07d}"

            cust = customers[_pick(rnd, cust_cum)]
            channel = channels[_pick(rnd, cust.channels)]
            lines = _draw_lines(rng, catalog, channel, stock_route=route == 1)

            # Flags follow the furthest state the order reached (for held/cancelled ones: before that).
            reached, moves = self.reached(route, s_idx, e_idx)
            edited = ""  # who last edited a field after the order entered its current state
            tech = "scheduled" in reached
            if eff == "tech_review" and rnd() < 0.3:
                tech, edited = True, "zhao"
            kitted = "materials_kitted" in reached
            if eff == "scheduled" and rnd() < 0.25:
                kitted, edited = True, "liu"
            inspector = "qc_pending" in reached or eff == "qc_failed"
            if eff == "surface_treatment" and rnd() < 0.5:
                inspector, edited = True, "zhou"
            qc = (
                "failed"
                if eff == "qc_failed"
                else "passed"
                if route == 0 and "ready_to_ship" in reached
                else ""
            )
            shipped = "shipped" in reached
            partial = eff == "ready_to_ship" and not shipped and rnd() < 0.4
            if partial:
                edited = "liu"
            waybill = _waybill(rng, channel) if shipped or (partial and rnd() < 0.5) else ""
            month = days.day((created + _CHINA) // _DAY)[2:7].replace("-", "")
            if route == 0 and "in_production" in reached:
                batch = f"P{month}-{randint(1, 9999):04d}"
            elif route == 1 and "ready_to_ship" in reached:
                batch = f"K{month}-{randint(1, 999):03d}"
            else:
                batch = ""
            signed_ok = signed >= 0
            credit_released = signed_ok and (cust.level == "D" or rnd() < 0.01)
            if held and state == "cancelled":
                moves += 1  # held, then cancelled
            if bits & 2:
                moves += 4  # fail_qc, rework, to_surface_treatment, submit_qc
            version = 1 + moves + signed_ok + tech + kitted + inspector + bool(qc) + bool(waybill)
            mover = LAST_MOVER[state]
            if state == "ready_to_ship" and route == 1:
                mover = "liu"  # picked from stock
            elif state == "on_hold":
                mover = choice(("sun", "chen", "zhao"))
            elif state == "cancelled" and held:
                mover = "sun"
            updated_at, updated_by = since, mover
            if edited and state == eff:
                updated_at, updated_by = since + int((now - since) * uniform(0.1, 0.9)), edited

            since_sql = days.sql(since)
            amount = 0
            detail_lines = []
            for line_no, (product, qty) in enumerate(lines, start=1):
                amount += product.price * qty
                scanned = qty if shipped else randint(0, qty) if partial else 0
                line_rows.append(
                    (order_id, line_no, product.id, qty, product.price, scanned, qty if shipped else 0, batch)
                )
                detail_lines.append([product.sku, qty])
            order_rows.append(
                (
                    order_id,
                    order_no,
                    channel,
                    cust.id,
                    cust.address if rnd() < 0.88 else choice(cust.sites),
                    amount,
                    days.day(signed) if signed_ok else None,
                    days.day(promised) if promised >= 0 else None,
                    bits & 1,
                    ROUTES[route],
                    state,
                    since_sql,
                    held,
                    version,
                    None if (state == "draft" and channel in RETAIL_CHANNELS) else wang,
                    zhou if inspector else None,
                    int(tech),
                    int(kitted),
                    qc,
                    int(credit_released),
                    waybill,
                    "",
                    choice(NOTES) if rnd() < 0.06 else "",
                    days.sql(created),
                    "wang",
                    since_sql if updated_at == since else days.sql(updated_at),
                    updated_by,
                )
            )
            detail: dict[str, Any] = {
                "order_no": order_no,
                "customer": cust.code,
                "channel": channel,
                "route": ROUTES[route],
                "state": state,
                "created_at": days.iso(created),
                "lines": detail_lines,
            }
            if held:
                detail["held_from"] = held
            if bits & 2:
                detail["rework"] = True
            detail_json = canonical_json(detail)
            audit_id += 1
            digest = record_hash(
                id=audit_id,
                at=at,
                user_name=user,
                order_no=order_no,
                command=command,
                detail=detail_json,
                prev_hash=prev,
            )
            records.append((audit_id, at_sql, user, order_no, command, detail_json, prev, digest))
            prev = digest
        self.audit_id, self.prev_hash = audit_id, prev
        return order_rows, line_rows, records
