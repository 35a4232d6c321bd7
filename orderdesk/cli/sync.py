"""Central API and sync: serve, enrol, sync (issue 4)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated

import typer

from orderdesk.i18n import _

if TYPE_CHECKING:
    from orderdesk.store import Store

server_app = typer.Typer(help="Administer the central API: enrolment codes, desks.", no_args_is_help=True)
desk_app = typer.Typer(help="This desk's link to a central API.", no_args_is_help=True)

DbUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="The server's database: a SQLite file or postgresql+psycopg://user@host/db (default: --db).",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="JSON on stdout.")]


def _server_store(db: str | None) -> Store:
    from pathlib import Path

    from orderdesk.cli import _db_path, _globals
    from orderdesk.replication import init_server
    from orderdesk.store import Store, is_database_url

    target = db if db and is_database_url(db) else str(_db_path(Path(db) if db else None))
    store = Store.open(target, create=True, workflow_path=_globals["workflow"])
    store.workflow  # noqa: B018 - a bad workflow file is reported before serving
    init_server(store)
    return store


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8765,
    db: DbUrlOpt = None,
) -> None:
    """Run the central API (HTTP/JSON; OpenAPI at /docs and /openapi.json)."""
    import uvicorn

    from sync.server import create_app

    store = _server_store(db)
    typer.echo(
        _("Central API on http://{host}:{port} (database {db}).", host=host, port=port, db=store.location)
    )
    uvicorn.run(create_app(store), host=host, port=port, log_level="warning")


@server_app.command("enrol-code")
def enrol_code(
    name: Annotated[str, typer.Option(help="Who the code is for, e.g. 'Warehouse 2'.")] = "",
    hours: Annotated[
        int, typer.Option("--hours", min=1, max=24 * 14, help="Valid for this many hours.")
    ] = 24,
    db: DbUrlOpt = None,
) -> None:
    """Make a one-time enrolment code for a new desk (shown once)."""
    from datetime import timedelta

    from orderdesk.replication import create_enrol_code

    code = create_enrol_code(_server_store(db), name=name, ttl=timedelta(hours=hours))
    typer.echo(code)


@server_app.command("revoke")
def revoke(
    desk: Annotated[str, typer.Argument(help="Desk id or desk code (e.g. D2).")],
    db: DbUrlOpt = None,
) -> None:
    """Revoke a desk's token: its requests are refused from now on."""
    from orderdesk.replication import revoke_desk

    revoke_desk(_server_store(db), desk)
    typer.echo(_("Desk {desk} revoked.", desk=desk))


@server_app.command("desks")
def desks(db: DbUrlOpt = None, as_json: JsonOpt = False) -> None:
    """Enrolled desks, their epochs and how far each has pushed."""
    import json

    from sqlmodel import select

    from orderdesk.models import SyncDesk, SyncStream

    store = _server_store(db)
    with store.read() as session:
        rows = []
        for d in session.exec(select(SyncDesk).order_by(SyncDesk.enrolled_at)).all():
            streams = session.exec(select(SyncStream).where(SyncStream.desk_id == d.desk_id)).all()
            rows.append(
                {
                    "desk_id": d.desk_id,
                    "name": d.name,
                    "codes": [s.desk_code for s in streams],
                    "epoch": d.current_epoch,
                    "pushed": {str(s.epoch): s.last_seq for s in streams},
                    "revoked": d.revoked_at is not None,
                    "last_seen": d.last_seen_at.isoformat() if d.last_seen_at else None,
                }
            )
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for r in rows:
        state = _("revoked") if r["revoked"] else _("active")
        typer.echo(f"{'/'.join(r['codes'])}\t{r['name']}\t{state}\t{r['last_seen'] or '-'}\t{r['desk_id']}")


@server_app.command("prune")
def prune(
    keep_after: Annotated[
        int, typer.Option("--keep-after", min=0, help="Drop change-log entries up to this seq.")
    ],
    db: DbUrlOpt = None,
) -> None:
    """Shorten the change log; desks whose cursor is older reload a snapshot."""
    from orderdesk.replication import prune_change_log

    floor = prune_change_log(_server_store(db), keep_after=keep_after)
    typer.echo(_("Change log now starts after {floor}.", floor=floor))


@desk_app.command("enrol")
def desk_enrol(
    server: Annotated[str, typer.Option("--server", help="The central API, e.g. http://10.0.0.5:8765")],
    code: Annotated[str, typer.Option("--code", help="The one-time code from the admin.")],
    name: Annotated[str, typer.Option(help="A name for this desk.")] = "",
    db: Annotated[str | None, typer.Option("--db", help="This desk's SQLite file.")] = None,
) -> None:
    """Enrol this desk with the central API and load its data."""
    from pathlib import Path

    from orderdesk.cli import open_store
    from sync.client import enrol

    store = open_store(Path(db) if db else None, create=True)
    enrolment = enrol(store, server_url=server, code=code, name=name)
    typer.echo(
        _(
            "Enrolled as desk {code}: new orders are numbered SO-{code}-…; data loaded from {server}.",
            code=enrolment.desk_code,
            server=server,
        )
    )


@desk_app.command("rejections")
def desk_rejections(
    db: Annotated[str | None, typer.Option("--db", help="This desk's SQLite file.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Include resolved ones.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Changes the central API rejected, with the reason, for a supervisor to resolve."""
    import json
    from pathlib import Path

    from orderdesk.cli import open_store
    from orderdesk.replication import rejections

    rows = rejections(open_store(Path(db) if db else None), include_resolved=all_)
    if as_json:
        out = [
            {
                "op_id": r.op_id,
                "command": r.command,
                "order_no": r.order_no,
                "user": r.user_name,
                "code": r.code,
                "reason": str(r.reason),
                "decided_at": r.decided_at.isoformat(),
            }
            for r in rows
        ]
        typer.echo(json.dumps(out, ensure_ascii=False, indent=2))
        return
    for r in rows:
        typer.echo(f"{r.op_id}  {r.order_no or '-'}  {r.what}  {r.user_name}: {r.reason}")


@desk_app.command("resolve")
def desk_resolve(
    op_id: Annotated[str, typer.Argument(help="The rejected change (see `orderdesk desk rejections`).")],
    user: Annotated[str, typer.Option("--user", help="The supervisor resolving it.")],
    keep_mine: Annotated[
        bool, typer.Option("--keep-mine", help="Apply the desk's value again instead of dismissing.")
    ] = False,
    db: Annotated[str | None, typer.Option("--db", help="This desk's SQLite file.")] = None,
) -> None:
    """Resolve a rejection: dismiss it (the central API's value stays) or apply this desk's value again."""
    from pathlib import Path

    from orderdesk.cli import open_store
    from orderdesk.replication import reapply_rejection, resolve_rejection

    store = open_store(Path(db) if db else None)
    if keep_mine:
        reapply_rejection(store, op_id, user=user)
    else:
        resolve_rejection(store, op_id, user=user)
    typer.echo(_("Resolved."))


def sync(
    once: Annotated[bool, typer.Option("--once", help="One round (push, then pull), then exit.")] = False,
    interval: Annotated[float, typer.Option(min=0.5, help="Seconds between rounds.")] = 5.0,
    status: Annotated[bool, typer.Option("--status", help="Only show the sync status.")] = False,
    db: Annotated[str | None, typer.Option("--db", help="This desk's SQLite file.")] = None,
) -> None:
    """Sync this desk with its central API: push waiting changes, pull everyone else's."""
    from pathlib import Path

    from orderdesk.cli import open_store
    from orderdesk.errors import OrderdeskError
    from orderdesk.replication import desk_sync_state, rejections
    from sync.client import SyncClient

    store = open_store(Path(db) if db else None)
    if status:
        state = desk_sync_state(store)
        typer.echo(sync_status_line(state))
        return
    client = SyncClient(store)
    try:
        while True:
            report = client.sync_once()
            typer.echo(
                _(
                    "Pushed {pushed} ({rejected} rejected), pulled {pulled}.",
                    pushed=report.pushed,
                    rejected=report.rejected,
                    pulled=report.pulled,
                )
                + (f" {_('Offline:')} {report.error}" if report.error else "")
            )
            for r in rejections(store, op_ids=report.rejections):
                typer.echo(str(r.headline), err=True)
            if once:
                if report.error:
                    raise OrderdeskError(report.error, code="sync_failed")
                return
            time.sleep(interval)
    except KeyboardInterrupt:
        return
    finally:
        client.close()


def sync_status_line(state: object) -> str:
    from orderdesk.replication import DeskSyncState

    assert isinstance(state, DeskSyncState)
    if not state.enrolled:
        return _("Not enrolled with a central API.")
    when = state.last_sync_at.strftime("%Y-%m-%d %H:%M") if state.last_sync_at else _("never")
    parts = [
        _("offline: {error}", error=str(state.last_error)) if state.last_error else _("online"),
        _("{n} waiting", n=state.waiting),
        _("last sync {when}", when=when),
        _("{n} rejected", n=state.rejected),
    ]
    return " · ".join(parts)


def register(app: typer.Typer) -> None:
    """Add this area's commands to the root CLI."""
    app.command("serve")(serve)
    app.command("sync")(sync)
    app.add_typer(server_app, name="server")
    app.add_typer(desk_app, name="desk")
