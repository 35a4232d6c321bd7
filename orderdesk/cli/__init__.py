"""The ``orderdesk`` command line: the composition root. Heavy modules are imported inside commands so
``orderdesk run`` paints its first frame quickly.

Errors are one line on stderr: exit 1 for a refused action, 2 for bad usage; never a traceback.
"""

from __future__ import annotations

import json
import sys
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from orderdesk.errors import OrderdeskError, UsageError
from orderdesk.i18n import _, detect_language, msg, set_language

if TYPE_CHECKING:
    from orderdesk.store import Store

app = typer.Typer(
    name="orderdesk",
    help="The order desk for manufacturers and B2B wholesalers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
order_app = typer.Typer(help="Create, list, show and move orders.", no_args_is_help=True)
user_app = typer.Typer(help="Users, roles, PINs and badges.", no_args_is_help=True)
app.add_typer(order_app, name="order")
app.add_typer(user_app, name="user")

DbOpt = Annotated[
    Path | None, typer.Option("--db", help="SQLite file (default: ORDERDESK_DB or the user data folder).")
]
LangOpt = Annotated[
    str | None, typer.Option("--lang", help="en or zh (default: ORDERDESK_LANG, then the locale).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Stable JSON on stdout (see docs/cli-json.md).")]
UserOpt = Annotated[str, typer.Option("--user", help="Who is doing this (a user name).")]

_globals: dict[str, Any] = {"db": None, "workflow": None}


@app.callback()
def _root(
    db: DbOpt = None,
    lang: LangOpt = None,
    workflow: Annotated[
        Path | None,
        typer.Option("--workflow", help="The company's own workflow file (default data/workflow.toml)."),
    ] = None,
) -> None:
    _globals["db"], _globals["workflow"] = db, workflow
    _apply_lang(lang)


def _apply_lang(lang: str | None) -> None:
    try:
        set_language(detect_language(lang))
    except ValueError as exc:
        raise UsageError(msg("{detail}", detail=str(exc))) from None


def _db_path(db: Path | None) -> Path:
    from orderdesk.store import default_db_path

    return Path(db or _globals["db"] or default_db_path())


def open_store(db: Path | None, *, create: bool = False) -> Store:
    from orderdesk.store import Store

    store = Store.open(_db_path(db), create=create, workflow_path=_globals["workflow"])
    store.workflow  # noqa: B018 - load (and validate) the workflow now, so a bad file is reported up front
    return store


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, sort_keys=False) + "\n")


def _console() -> Any:
    from rich.console import Console

    return Console()


def _parse_date(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise UsageError(
            msg("{option} takes a date like 2026-12-31, not {value}.", option=option, value=value)
        ) from None


# -- database --------------------------------------------------------------------------------------------
@app.command()
def init(db: DbOpt = None) -> None:
    """Create the database, or upgrade it to this version's schema."""
    store = open_store(db, create=True)
    typer.echo(_("Database ready: {path}", path=str(store.path)))


@app.command()
def demo(
    db: DbOpt = None,
    orders: Annotated[int, typer.Option(min=0, max=10_000_000, help="How many orders.")] = 2000,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same desk).")] = 7,
    customers: Annotated[int, typer.Option(min=1, max=1_000_000)] = 50,
    products: Annotated[int, typer.Option(min=1, max=1_000_000)] = 300,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing database file.")] = False,
) -> None:
    """Build a believable demo desk: customers, products, orders in every state, one user per role."""
    from orderdesk.demo import build_demo

    path = _db_path(db)
    if path.exists() and not force:
        raise UsageError(
            msg(
                "{path} already exists. Use --force to replace it with a demo desk, or choose another --db.",
                path=str(path),
            )
        )
    stats = build_demo(path, orders=orders, customers=customers, products=products, seed=seed, replace=force)
    typer.echo(
        _(
            "Demo desk ready at {path}: {customers} customers, {products} products, {orders} orders in {seconds} s.",
            path=str(path),
            customers=stats.customers,
            products=stats.products,
            orders=stats.orders,
            seconds=f"{stats.seconds:.1f}",
        )
    )
    typer.echo(_("Log in as admin / 0000, or see the README for one user per role."))


@app.command()
def run(
    db: DbOpt = None,
    user: Annotated[
        str | None, typer.Option("--user", help="Skip the name prompt (PIN still asked).")
    ] = None,
    lang: LangOpt = None,
    demo: Annotated[
        bool,
        typer.Option("--demo", help="Open the demo desk (built on first use) instead of your own database."),
    ] = False,
) -> None:
    """Open the terminal app."""
    if lang:
        _apply_lang(lang)
    if demo:
        path = Path(db) if db else _db_path(None).with_name("demo.db")
        if not path.exists():
            from orderdesk.demo import build_demo

            typer.echo(_("Building the demo desk at {path}…", path=str(path)))
            build_demo(path, orders=2000)
    else:
        path = _db_path(db)
        if not path.exists():
            open_store(db)  # raises the "no database here" message
    from screens.app import build_app

    build_app(db_path=path, workflow_path=_globals["workflow"], user=user).run()


# -- orders ----------------------------------------------------------------------------------------------
def _parse_line(text: str) -> tuple[str, int]:
    sku, sep, qty = text.rpartition(":")
    if not sep or not sku or not qty.strip().isdigit():
        raise UsageError(msg("--line takes SKU:QTY, e.g. HX-2044:12, not {value}.", value=text))
    return sku.strip(), int(qty)


def _show_detail(detail: Any, as_json: bool, see: Any = None) -> None:
    if as_json:
        _print_json(detail.to_json(see))
        return
    from orderdesk.render import order_detail_table

    _console().print(order_detail_table(detail))


@order_app.command("create")
def order_create(
    customer: Annotated[str, typer.Option("--customer", help="Customer code.")],
    line: Annotated[list[str], typer.Option("--line", help="SKU:QTY (repeat for more lines).")],
    user: UserOpt,
    channel: Annotated[
        str, typer.Option(help="taobao, jd, miniprogram, wholesale, alibaba, offline")
    ] = "offline",
    promised: Annotated[str | None, typer.Option(help="Promised delivery date YYYY-MM-DD.")] = None,
    rush: Annotated[bool, typer.Option("--rush", help="A rush order.")] = False,
    from_stock: Annotated[
        bool, typer.Option("--from-stock", help="Ship from stock (the shorter route).")
    ] = False,
    address: Annotated[
        str | None, typer.Option(help="Ship-to address (default: the customer's usual).")
    ] = None,
    duplicate_reason: Annotated[
        str | None, typer.Option("--duplicate-reason", help="Enter a suspected duplicate anyway, saying why.")
    ] = None,
    promised_reason: Annotated[
        str, typer.Option("--promised-reason", help="Why the promised date differs from the proposed one.")
    ] = "",
    link_to: Annotated[
        str | None, typer.Option("--link-to", help="Ship and invoice with it (same customer and ship-to).")
    ] = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create an order with the same checks as the sales desk (duplicates, credit, approval, lead time)."""
    from orderdesk.cli.desks import duplicate_reason_from_text, entry_messages
    from orderdesk.rules import rules_for
    from orderdesk.sales import enter_order

    lines = [_parse_line(item) for item in line]
    store = open_store(db)
    reason, note = (
        duplicate_reason_from_text(rules_for(store), duplicate_reason) if duplicate_reason else ("", "")
    )
    result = enter_order(
        store,
        customer=customer,
        lines=lines,
        user=user,
        channel=channel,
        promised=_parse_date(promised, "--promised"),
        promised_reason=promised_reason,
        rush=rush,
        route="from_stock" if from_stock else "make_to_order",
        ship_address=address,
        duplicate_reason=reason,
        duplicate_note=note,
        parent=link_to or "",
    )
    if as_json:
        _print_json(result.to_json())
        return
    _show_detail(result.detail, False)
    for text in entry_messages(result):
        typer.echo(text)


@order_app.command("list")
def order_list(
    state: Annotated[str | None, typer.Option(help="Only orders in this state (a state id).")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many rows.")] = 50,
    offset: Annotated[int, typer.Option(min=0, help="Skip this many rows (paging).")] = 0,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Orders, oldest in their state first when --state is given, newest first otherwise."""
    from orderdesk.orders import list_orders

    total, rows = list_orders(open_store(db), state=state, limit=limit, offset=offset)
    if as_json:
        _print_json({"total": total, "offset": offset, "orders": [r.to_json() for r in rows]})
        return
    from orderdesk.render import order_list_table

    _console().print(order_list_table(rows, total=total, offset=offset))


@order_app.command("show")
def order_show(
    order_no: Annotated[str, typer.Argument(help="Order number, e.g. SO-DM-0000123.")],
    user: Annotated[
        str | None, typer.Option("--user", help="Show only what this user's roles may see.")
    ] = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """One order: lines with scanned quantities, state and its timeline."""
    from orderdesk.orders import show_order, visible_fields

    store = open_store(db)
    detail = show_order(store, order_no, viewer=user)
    see = None
    if user:
        from orderdesk.commands import load_actor

        with store.read() as session:
            see = visible_fields(store.workflow, load_actor(session, user))
    _show_detail(detail, as_json, see)


@order_app.command("move")
def order_move(
    order_no: Annotated[str, typer.Argument(help="Order number.")],
    state: Annotated[str, typer.Argument(help="Target state id (or transition id).")],
    user: UserOpt,
    reason: Annotated[str, typer.Option(help="Why (kept in the audit trail).")] = "",
    expect_version: Annotated[
        int | None, typer.Option("--expect-version", help="Refuse if the order changed since this version.")
    ] = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Move an order to another state, if the workflow, your role and the guards allow it."""
    from orderdesk.orders import move_order

    detail = move_order(
        open_store(db), order_no=order_no, to=state, user=user, reason=reason, expected_version=expect_version
    )
    if as_json:
        _print_json(detail.to_json())
    else:
        typer.echo(_("{order_no} is now {state}.", order_no=detail.order_no, state=str(detail.state_label)))


@order_app.command("edit")
def order_edit(
    order_no: Annotated[str, typer.Argument(help="Order number.")],
    field: Annotated[
        list[str], typer.Option("--set", help="FIELD=VALUE (repeat). Fields your role may edit.")
    ],
    user: UserOpt,
    reason: Annotated[str, typer.Option(help="Why.")] = "",
    expect_version: Annotated[int | None, typer.Option("--expect-version")] = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Change order fields (address, dates, rush, waybill, inspector, owner...)."""
    from orderdesk.orders import edit_order

    changes: dict[str, str] = {}
    for item in field:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(msg("--set takes FIELD=VALUE, not {value}.", value=item))
        changes[key.strip()] = value
    detail = edit_order(
        open_store(db),
        order_no=order_no,
        changes=changes,
        user=user,
        reason=reason,
        expected_version=expect_version,
    )
    _show_detail(detail, as_json)


@order_app.command("note")
def order_note(
    order_no: Annotated[str, typer.Argument(help="Order number.")],
    text: Annotated[str, typer.Argument(help="The note.")],
    user: UserOpt,
    db: DbOpt = None,
) -> None:
    """Add a note to an order's timeline."""
    from orderdesk.orders import add_note

    add_note(open_store(db), order_no=order_no, text=text, user=user)
    typer.echo(_("Note added to {order_no}.", order_no=order_no.upper()))


# -- audit -----------------------------------------------------------------------------------------------
def _parse_time(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    from datetime import UTC

    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(
            msg("{option} takes a time like 2026-11-22T08:00, not {value}.", option=option, value=value)
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


@app.command("audit")
def audit_cmd(
    order: Annotated[str | None, typer.Option("--order", help="Only this order.")] = None,
    user: Annotated[str | None, typer.Option("--user", help="Only this user's actions.")] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="From this time (ISO, UTC if no offset).")
    ] = None,
    until: Annotated[str | None, typer.Option("--until", help="Before this time.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=100_000)] = 1000,
    verify: Annotated[bool, typer.Option("--verify", help="Check the whole hash chain.")] = False,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Search the audit trail, or verify that no record was edited or deleted."""
    from orderdesk import audit

    store = open_store(db)
    with store.read() as session:
        if verify:
            count, breaks = audit.verify(session)
            if as_json:
                _print_json(
                    {
                        "ok": not breaks,
                        "records": count,
                        "breaks": [{"id": b.record_id, "problem": str(b.problem)} for b in breaks],
                    }
                )
            elif not breaks:
                typer.echo(_("Audit trail intact: {count} records verified.", count=count))
            for b in breaks if not as_json else []:
                typer.echo(_("Record {id}: {problem}", id=b.record_id, problem=str(b.problem)), err=True)
            if breaks:
                raise typer.Exit(1)
            return
        entries = audit.search(
            session,
            order_no=order.strip().upper() if order else None,
            user_name=user,
            since=_parse_time(since, "--since"),
            until=_parse_time(until, "--until"),
            limit=limit,
        )
    if as_json:
        _print_json([e.to_json() for e in entries])
        return
    from orderdesk.render import audit_table

    _console().print(audit_table(entries))


# -- users -----------------------------------------------------------------------------------------------
@user_app.command("add")
def user_add(
    name: Annotated[str, typer.Argument(help="Login name (no spaces).")],
    role: Annotated[
        list[str], typer.Option("--role", help="sales, qc, warehouse, finance, planner, supervisor, admin")
    ],
    pin: Annotated[str | None, typer.Option("--pin", help="4-8 digits.")] = None,
    badge: Annotated[str | None, typer.Option("--badge", help="Badge barcode text.")] = None,
    display_name: Annotated[str, typer.Option("--display-name")] = "",
    db: DbOpt = None,
) -> None:
    """Add a user (as the desk's owner at this terminal)."""
    from orderdesk.users import add_user

    info = add_user(open_store(db), name=name, roles=role, pin=pin, badge=badge, display_name=display_name)
    typer.echo(_("User {name} added with roles {roles}.", name=info.name, roles=", ".join(info.roles)))


@user_app.command("list")
def user_list(db: DbOpt = None, as_json: JsonOpt = False) -> None:
    """Every user with their roles."""
    from orderdesk.users import list_users

    users = list_users(open_store(db))
    if as_json:
        _print_json([u.to_json() for u in users])
        return
    from orderdesk.render import user_table

    _console().print(user_table(users))


# -- the areas' commands --------------------------------------------------------------------------------
def _register_areas() -> None:
    from orderdesk.cli import alerts, desks, sync, warehouse

    for area in (warehouse, sync, alerts, desks):
        area.register(app)


_register_areas()


# -- entry point -----------------------------------------------------------------------------------------
def _fail(text: str, code: int) -> int:
    sys.stderr.write(f"orderdesk: {text}\n")
    return code


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; turn every expected failure into one line on stderr and an exit code."""
    from orderdesk.workflow import WorkflowError

    try:
        app(args=argv, prog_name="orderdesk", standalone_mode=False)
    except typer.Exit as exc:
        return exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        return _fail(_("interrupted"), 130)
    except OrderdeskError as exc:
        return _fail(str(exc), exc.exit_code)
    except WorkflowError as exc:
        return _fail(str(exc), 1)
    except typer.TyperException as exc:  # click's usage errors (typer vendors click)
        text = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        return _fail(" ".join(text.split()), getattr(exc, "exit_code", 2))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
