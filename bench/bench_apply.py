"""A desk applying pulled pages, in process: no HTTP, no central API running beside it, so the figure is what
``bench_sync.py``'s pull spends most of its time on (decoding a page and applying it).

    .venv/bin/python bench/bench_apply.py [--changes 6000] [--runs 5]

The central API's change log gets ``--changes`` entries (as ``bench_sync.py`` makes them: new orders, each
followed by none to two notes) and serves them as pages (the bytes a desk receives); a freshly enrolled desk's database is copied
``--runs`` times and each copy decodes and applies every page, as ``SyncClient.pull`` does (best and median
µs a change over the warm runs). Wall clock swings with the
machine; for a figure that does not, count instructions in the warm runs only::

    valgrind --tool=callgrind --toggle-collect='_operator_call*' .venv/bin/python bench/bench_apply.py --runs 2

and divide the ``Collected`` figure it prints by the number of changes.
"""

# _common (sorted before orderdesk) puts the checkout on sys.path first.
from __future__ import annotations

import argparse
from pathlib import Path

from _common import scratch_run, warm_runs
from bench_sync import fill_change_log

from orderdesk import replication as rep
from orderdesk.store import Store
from sync.client import decode_page
from tests.sync_harness import enrol_local, seed_server


def prepare(folder: Path, n_changes: int) -> tuple[Path, list[bytes], int]:
    """An enrolled desk, caught up, and the pages of ``n_changes`` changes it has yet to pull (new orders and
    their notes), with how many are orders."""
    server = Store.open(str(folder / "server.db"), create=True)
    seed_server(server)
    desk = Store.open(folder / "desk.db", create=True)
    enrol_local(server, desk, "bench")
    link = rep.get_link(desk)
    assert link is not None
    while (page := rep.changes_after(server, link.cursor)).next_after is not None:  # the seed's own changes
        rep.apply_changes(desk, page.entries, next_cursor=page.next_after)
        link = rep.get_link(desk)
        assert link is not None
    orders = fill_change_log(server, n_changes)
    bodies, after = [], link.cursor
    while (page := rep.changes_after(server, after, limit=2000)).next_after is not None:
        bodies.append(page.body())
        after = page.next_after
    server.close()
    desk.close()
    return folder / "desk.db", bodies, orders


def apply_pages(desk: Store, bodies: list[bytes]) -> int:
    """Decode and apply each page as the desk's sync client does; how many changes."""
    n = 0
    for body in bodies:
        entries, next_after = decode_page(body)
        assert next_after is not None
        rep.apply_changes(desk, entries, next_cursor=next_after)
        n += len(entries)
    return n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=6000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with scratch_run("apply") as folder:
        source, bodies, orders = prepare(folder, args.changes)
        best, median, warm = warm_runs(source, args.runs, lambda desk: apply_pages(desk, bodies))
        n = args.changes
        print(
            f"[sqlite] apply {n:>7,} changes in {len(bodies)} pages: best {best * 1e6 / n:5.1f} µs a change "
            f"({n / best:,.0f} changes/s), median {median * 1e6 / n:5.1f} µs over {warm} warm runs "
            f"({orders:,} new orders, {n - orders:,} notes)"
        )


if __name__ == "__main__":
    main()
