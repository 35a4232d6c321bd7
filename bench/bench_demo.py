"""How fast ``orderdesk demo`` builds a desk: orders per second for N orders (default a million).

    .venv/bin/python bench/bench_demo.py [--orders N] [--seed S]

Writes ``bench/out/demo-1m.db`` (or ``demo-<N>.db``), replacing it; the other benchmarks reuse that file.
Prints wall-clock seconds, orders/s, and the CPU time of this process and its forked helper, since on a
shared machine the wall clock also measures the neighbours.
"""

from __future__ import annotations

import argparse
import resource
import time

from _common import DEMO_ORDERS, DEMO_SEED, demo_db_path, load_note


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=DEMO_ORDERS)
    parser.add_argument("--seed", type=int, default=DEMO_SEED)
    args = parser.parse_args()

    from orderdesk.demo import build_demo

    path = demo_db_path(args.orders)
    path.parent.mkdir(parents=True, exist_ok=True)
    print(f"building {path} with {args.orders:,} orders (seed {args.seed}); {load_note()}", flush=True)
    cpu_start = time.process_time()
    stats = build_demo(path, orders=args.orders, seed=args.seed, replace=True)
    cpu_self = time.process_time() - cpu_start
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_child = children.ru_utime + children.ru_stime
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    size_mb = path.stat().st_size / 1e6
    print(f"orders        {stats.orders:,} ({stats.customers} customers, {stats.products} products)")
    print(f"total         {stats.seconds:.1f} s wall clock")
    print(f"rate          {stats.orders / stats.seconds:,.0f} orders/s")
    print(f"cpu           {cpu_self:.1f} s this process + {cpu_child:.1f} s forked helper")
    print(f"peak memory   {peak_mb:,.0f} MB (this process)")
    print(f"file          {size_mb:,.0f} MB")
    print(f"after         {load_note()}")


if __name__ == "__main__":
    main()
