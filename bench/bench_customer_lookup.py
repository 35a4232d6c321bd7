"""Customer lookup by phone on a desk with 100,000 customers (target: under 10 ms).

    .venv/bin/python bench/bench_customer_lookup.py [--customers 100000] [--runs 200] [--db PATH]

Builds ``bench/out/customers-100k.db`` once (the schema from the migrations, users, then 100,000 customers
written in bulk: mobile numbers and landlines like ``0571-8xxxxxxx``, as the demo makes them), then times the
sales desk's own lookups on one open store, as the order-entry screen calls them:

* ``sales.find_customer_by_phone`` with prefixes of 4, 7 and 11 digits (a person typing a number);
* ``sales.find_customers`` with the same text (code, phone, name together: what the screen's field runs).

Median and p95 per kind, in milliseconds, and the query plan, which must search ``ix_customer_phone`` (a
range on the indexed column; ``LIKE 'x%'`` could not use SQLite's index on a case-sensitive column).
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

from _common import OUT, load_note, ms, summary, timed

TARGET = 0.010  # seconds


def build(path: Path, customers: int) -> None:
    from sqlalchemy import insert

    from orderdesk.models import Customer
    from orderdesk.store import Store
    from orderdesk.users import add_user

    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.unlink()
    store = Store.open(path, create=True)
    add_user(store, name="wang", roles=["sales"], pin="1234")
    rng = random.Random(7)
    provinces = [
        "浙江省杭州市",
        "江苏省苏州市",
        "广东省深圳市",
        "山东省青岛市",
        "四川省成都市",
        "湖北省武汉市",
    ]
    areas = ["0571", "0512", "0755", "0532", "028", "027"]
    rows = []
    seen: set[str] = set()
    for i in range(customers):
        while True:
            if rng.random() < 0.15:
                phone = f"{rng.choice(areas)}-{rng.randint(2_000_0000, 8_999_9999)}"
            else:
                phone = f"1{rng.choice('3456789')}{rng.randint(0, 999_999_999):09d}"
            if phone not in seen:
                seen.add(phone)
                break
        rows.append(
            {
                "code": f"C{i + 1:06d}",
                "name": f"{rng.choice(provinces)[3:5]}客户{i + 1:06d}有限公司",
                "contact": "",
                "phone": phone,
                "address": rng.choice(provinces) + f"工业路 {rng.randint(1, 999)} 号",
                "region": "",
                "credit_limit": 10_000_000,
                "settlement_terms": "月结30天",
                "credit_level": "B",
                "notes": "",
            }
        )
    with store.write() as session:
        for start in range(0, len(rows), 10_000):
            session.execute(insert(Customer), rows[start : start + 10_000])
    store.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--db", type=Path, default=None)
    args = parser.parse_args()
    path = args.db or OUT / f"customers-{args.customers // 1000}k.db"

    from sqlalchemy import text

    from orderdesk.store import Store

    if not path.exists():
        print(f"building {path} ({args.customers:,} customers)…", flush=True)
        build(path, args.customers)
    store = Store.open(path)
    from orderdesk.sales import _prefix_range, find_customer_by_phone, find_customers

    with store.read() as session:
        count = session.execute(text("SELECT count(*) FROM customer")).scalar()
        phones = [
            r[0]
            for r in session.execute(
                text("SELECT phone FROM customer ORDER BY random() LIMIT :n"), {"n": args.runs}
            )
        ]
    print(f"{count:,} customers in {path}; {load_note()}")

    # The plan, so a regression to a full scan is seen, not only felt.
    from sqlmodel import col, select

    from orderdesk.models import Customer

    query = select(Customer).where(_prefix_range(col(Customer.phone), "1380")).limit(20)
    sql = str(query.compile(compile_kwargs={"literal_binds": True}))
    with store.read() as session:
        plan = " | ".join(str(r[-1]) for r in session.execute(text("EXPLAIN QUERY PLAN " + sql)))
    print(f"plan: {plan}")

    find_customer_by_phone(store, "138")  # warm the connection and the caches once
    worst = 0.0
    for digits in (4, 7, 11):
        # As typed from the number on a card: landlines with or without their dash, half each.
        prefixes = [(p if i % 2 else p.replace("-", ""))[:digits] for i, p in enumerate(phones)]
        by_phone = [timed(find_customer_by_phone, store, p) for p in prefixes]
        by_field = [timed(find_customers, store, p) for p in prefixes]
        for label, samples in (
            (f"find_customer_by_phone, {digits:>2} digits", by_phone),
            (f"find_customers,         {digits:>2} digits", by_field),
        ):
            median, p95 = summary(samples)
            worst = max(worst, p95)
            print(f"{label}: median {ms(median)}   p95 {ms(p95)}   ({len(samples)} runs)")
    verdict = "OK" if worst < TARGET else "SLOW"
    print(
        f"customer lookup by phone, worst p95: {worst * 1000:.2f} ms (target < {TARGET * 1000:.0f} ms) {verdict}"
    )
    return 0 if worst < TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
