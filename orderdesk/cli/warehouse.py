"""Warehouse (issue 3): shipping labels, the desk card of command barcodes, and the packing desk's scans.

orderdesk label ORDER_NO [--format svg|png|zpl|pdf] [-o FILE] [--print] [--print-command CMD]
orderdesk desk-card [--format svg|png|pdf] [-o FILE] [--print] [--print-command CMD]
orderdesk scan list ORDER_NO [--json]
orderdesk scan release ORDER_NO SKU --user NAME [--reason TEXT]
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from orderdesk.errors import UsageError
from orderdesk.i18n import _, msg

if TYPE_CHECKING:
    from orderdesk.store import Store

scan_app = typer.Typer(
    help="The packing desk's scans: list an order's scans, release a hazardous item.", no_args_is_help=True
)

DbOpt = Annotated[
    Path | None, typer.Option("--db", help="SQLite file (default: ORDERDESK_DB or the user data folder).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Stable JSON on stdout.")]
OutputOpt = Annotated[
    str | None,
    typer.Option(
        "-o", "--output", help="Write here ('-' for stdout; default: the labels folder next to the database)."
    ),
]
PrintOpt = Annotated[bool, typer.Option("--print", help="Print it with the print command.")]
PrintCommandOpt = Annotated[
    str | None,
    typer.Option("--print-command", help="e.g. 'lp -d ZEBRA -o raw' (default: ORDERDESK_PRINT_COMMAND)."),
]


def register(app: typer.Typer) -> None:
    """Add this area's commands to the root CLI."""
    app.command("label")(label_cmd)
    app.command("desk-card")(desk_card_cmd)
    app.add_typer(scan_app, name="scan")


def _store(db: Path | None) -> Store:
    from orderdesk.cli import open_store

    return open_store(db)


def _format(fmt: str | None, output: str | None, default: str, valid: tuple[str, ...]) -> str:
    """The format asked for, else the output file's suffix, else the default."""
    if fmt is None and output and output != "-":
        suffix = Path(output).suffix.lower().lstrip(".")
        fmt = suffix if suffix in valid else None
    name = (fmt or default).strip().lower()
    if name not in valid:
        raise UsageError(
            msg("Unknown format {fmt}: use one of {formats}", fmt=name, formats=", ".join(valid))
        )
    return name


def _emit(body: bytes, output: str | None, default_path: Path) -> Path | None:
    """Write ``body`` to the output (stdout for '-'); returns the file written, if any."""
    if output == "-":
        sys.stdout.buffer.write(body)
        sys.stdout.flush()
        return None
    path = Path(output).expanduser() if output else default_path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
    except OSError as err:
        raise UsageError(
            msg("Cannot write the label to {path}: {error}", path=str(path), error=err.strerror or str(err))
        ) from err
    return path


def _print(path: Path | None, command: str | None, settings: Any) -> None:
    from orderdesk.labels import print_file

    chosen = (command or settings.print_command).strip()
    if not chosen:
        raise UsageError(
            msg("No print command: set ORDERDESK_PRINT_COMMAND or pass --print-command, e.g. 'lp -d ZEBRA'.")
        )
    if path is None:
        raise UsageError(msg("--print needs a file: leave out -o - or give -o FILE."))
    print_file(path, chosen)
    typer.echo(_("Printed with: {command}", command=chosen), err=True)


def label_cmd(
    order_no: Annotated[
        str, typer.Argument(help="Order number (it must have a waybill: shipped, or scanned).")
    ],
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            help="svg, png, zpl or pdf (default: -o's suffix, else ORDERDESK_LABEL_FORMAT or pdf).",
        ),
    ] = None,
    output: OutputOpt = None,
    print_it: PrintOpt = False,
    print_command: PrintCommandOpt = None,
    db: DbOpt = None,
) -> None:
    """A 100x150 mm shipping label: sender, recipient, order and waybill as Code 128, items, packing."""
    from orderdesk.labels import LABEL_FORMATS, render_label
    from orderdesk.scanning import ShippingSettings, label_file_name, shipping_label

    settings = ShippingSettings.from_env()
    name = _format(fmt, output, settings.label_format, LABEL_FORMATS)
    store = _store(db)
    data = shipping_label(store, order_no, settings=settings)
    default = settings.labels_folder(store.path) / label_file_name(data.order_no, data.waybill, name)
    path = _emit(render_label(data, name), output, default)
    if path is not None:
        typer.echo(_("Label written: {path}", path=str(path)))
    if print_it:
        _print(path, print_command, settings)


def desk_card_cmd(
    fmt: Annotated[
        str | None, typer.Option("--format", help="svg, png or pdf (default: -o's suffix, else pdf).")
    ] = None,
    output: Annotated[
        str | None,
        typer.Option("-o", "--output", help="Write here ('-' for stdout; default: desk-card.<format>)."),
    ] = None,
    print_it: PrintOpt = False,
    print_command: PrintCommandOpt = None,
) -> None:
    """The A4 desk card: SHIP, UNDO, CANCEL, NEXT, quantity multipliers and one barcode per packing preset."""
    from orderdesk.labels import CARD_FORMATS, desk_card_entries, load_presets, render_desk_card
    from orderdesk.scanning import ShippingSettings

    settings = ShippingSettings.from_env()
    name = _format(fmt, output, "pdf", CARD_FORMATS)
    presets = load_presets(settings.presets_path)
    entries = desk_card_entries([(p.id, p.label_en, p.label_zh) for p in presets])
    path = _emit(render_desk_card(entries, name), output, Path(f"desk-card.{name}"))
    if path is not None:
        typer.echo(_("Desk card written: {path}", path=str(path)))
    if print_it:
        _print(path, print_command, settings)


@scan_app.command("list")
def scan_list(
    order_no: Annotated[str, typer.Argument(help="Order number.")],
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Every scan of an order, oldest first: who, when, code, batch, expiry, serial, quantity, undone."""
    from orderdesk.scanning import order_scans

    rows = order_scans(_store(db), order_no)
    if as_json:
        from orderdesk.cli import _print_json

        _print_json(rows)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=_("Scans of {order_no}", order_no=order_no.strip().upper()))
    for column in (_("When"), _("Who"), "#", "SKU", _("Code"), _("Batch"), _("Serial"), _("Qty"), ""):
        table.add_column(column)
    for r in rows:
        table.add_row(
            r["at"][:19].replace("T", " "),
            r["user"],
            str(r["line_no"]),
            r["sku"],
            r["code"],
            r["batch"],
            r["serial"],
            str(r["qty"]),
            _("undone") if r["undone"] else "",
        )
    Console().print(table)


@scan_app.command("release")
def scan_release(
    order_no: Annotated[str, typer.Argument(help="Order number.")],
    sku: Annotated[str, typer.Argument(help="The hazardous or prohibited product's SKU.")],
    user: Annotated[str, typer.Option("--user", help="Who releases it (supervisor; admin for prohibited).")],
    reason: Annotated[str, typer.Option(help="Why (kept in the audit trail).")] = "",
    db: DbOpt = None,
) -> None:
    """Release a hazardous (supervisor) or prohibited (admin) product on one order, so it can be scanned."""
    from orderdesk.scanning import release_hazard

    release_hazard(_store(db), order_no=order_no, sku=sku, user=user, reason=reason)
    typer.echo(_("{sku} released on {order_no}.", sku=sku.strip(), order_no=order_no.strip().upper()))
