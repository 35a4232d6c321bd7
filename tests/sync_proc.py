"""Run the central API or a desk sync in a separate process that dies on cue (``os._exit``: no cleanup,
no flushing, exactly like a power cut or ``kill -9``). Used by tests/test_sync_faults.py.

    python tests/sync_proc.py serve DB PORT [--die-after-ops N]   (ops are committed two at a time)
    python tests/sync_proc.py desk-sync DB [--die-after-push]
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def serve(db: str, port: int, die_after: int | None) -> None:
    import uvicorn

    from orderdesk import replication
    from orderdesk.store import Store
    from sync.server import create_app

    if die_after is not None:
        real = replication._Group.keep
        decided = {"n": 0}

        def keep_then_die(*args, **kwargs):  # type: ignore[no-untyped-def]
            real(*args, **kwargs)  # decided, but committed only with the rest of its transaction
            decided["n"] += 1
            if decided["n"] >= die_after:
                os._exit(9)  # killed in the middle of a batch, inside a transaction

        replication._Group.keep = keep_then_die  # type: ignore[method-assign]
    app = create_app(Store.open(db), ops_per_commit=2)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="error")


def desk_sync(db: str, die_after_push: bool) -> None:
    from orderdesk import replication
    from orderdesk.store import Store
    from sync.client import Backoff, SyncClient

    if die_after_push:

        def die(*_args, **_kwargs):  # type: ignore[no-untyped-def]
            os._exit(9)  # the server committed and answered; the desk dies before recording it

        replication.record_outcomes = die  # type: ignore[assignment]
    report = SyncClient(Store.open(db), backoff=Backoff(attempts=2, sleep=lambda _s: None)).sync_once()
    print("error" if report.error else "ok", report.pushed, report.pulled)


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "serve":
        die = int(sys.argv[5]) if len(sys.argv) > 5 and sys.argv[4] == "--die-after-ops" else None
        serve(sys.argv[2], int(sys.argv[3]), die)
    elif cmd == "desk-sync":
        desk_sync(sys.argv[2], "--die-after-push" in sys.argv)
