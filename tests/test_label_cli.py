"""The warehouse CLI: ``orderdesk label``, ``orderdesk desk-card``, ``orderdesk scan list|release``, and the
scan-to-ship trail as ``order show --json`` and ``audit --json`` show it. Barcodes are decoded back from the
files with zxing-cpp (PNG directly, PDF through its embedded image, SVG drawn from its bars)."""

from __future__ import annotations

import io
import json
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import zxingcpp
from PIL import Image, ImageDraw

from orderdesk.cli import main
from orderdesk.orders import create_order, move_order
from orderdesk.scanning import (
    ShippingSettings,
    choose_packing_preset,
    is_local_waybill,
    open_for_packing,
    record_scan,
    ship_order,
)
from orderdesk.store import Store

HX = "6901234567892"
SVG = "{http://www.w3.org/2000/svg}"


def cli(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def decode(image: Image.Image) -> set[str]:
    return {
        r.text
        for r in zxingcpp.read_barcodes(
            image, formats=zxingcpp.BarcodeFormat.Code128, text_mode=zxingcpp.TextMode.Plain
        )
    }


def pdf_image(data: bytes) -> Image.Image:
    match = re.search(rb"/Subtype /Image.*?stream\r?\n", data, re.S)
    assert match, "no image in the PDF"
    end = data.index(b"endstream", match.end())
    return Image.open(io.BytesIO(data[match.end() : end]))


def svg_barcodes(svg: bytes) -> dict[str, set[str]]:
    """Each barcode group of the SVG drawn from its bars with Pillow, then decoded."""
    found = {}
    for group in ET.fromstring(svg).iter(f"{SVG}g"):
        if not (group.get("id") or "").startswith("barcode-"):
            continue
        bars = [r for r in group.iter(f"{SVG}rect") if r.get("fill") == "#000"]
        scale = 12.0
        width = max(float(r.get("x", 0)) + float(r.get("width", 0)) for r in bars) + 10
        height = max(float(r.get("y", 0)) + float(r.get("height", 0)) for r in bars) + 10
        image = Image.new("L", (round(width * scale), round(height * scale)), 255)
        draw = ImageDraw.Draw(image)
        for r in bars:
            x, y = float(r.get("x", 0)) * scale + 60, float(r.get("y", 0)) * scale + 60
            w, h = float(r.get("width", 0)) * scale, float(r.get("height", 0)) * scale
            draw.rectangle([round(x), round(y), round(x + w) - 1, round(y + h) - 1], fill=0)
        found[group.get("id", "")] = decode(image)
    return found


@pytest.fixture
def shipped(desk: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """An order scanned and shipped by liu; returns (order_no, waybill)."""
    monkeypatch.setenv("ORDERDESK_LABEL_DIR", str(tmp_path / "labels"))
    monkeypatch.delenv("ORDERDESK_LABEL_FORMAT", raising=False)
    monkeypatch.delenv("ORDERDESK_PRINT_COMMAND", raising=False)
    order_no = create_order(
        desk, customer="C001", lines=[("HX-M8", 2)], user="wang", route="from_stock"
    ).order_no
    move_order(desk, order_no=order_no, to="sign_contract", user="wang")
    move_order(desk, order_no=order_no, to="pick_from_stock", user="zhao")
    open_for_packing(desk, order_no=order_no, user="liu")
    record_scan(desk, user="liu", code=HX)
    record_scan(desk, user="liu", code=f"01{'0' + HX}10LOT-9")
    choose_packing_preset(desk, user="liu", preset="3")
    result = ship_order(desk, user="liu", settings=ShippingSettings(label_dir=tmp_path / "x"))
    return order_no, result.waybill


def test_label_png_carries_the_order_and_the_waybill(
    desk: Store, shipped: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    order_no, waybill = shipped
    out_file = tmp_path / "label.png"
    code, out, err = cli(capsys, "label", order_no, "-o", out_file, "--db", desk.path)
    assert code == 0, err
    assert str(out_file) in out
    image = Image.open(out_file)
    assert image.size == (1181, 1772)  # 100 x 150 mm at 300 dpi
    assert decode(image) == {order_no, waybill}
    assert is_local_waybill(waybill)


def test_label_pdf_and_svg_barcodes_scan(
    desk: Store, shipped: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    order_no, waybill = shipped
    assert (
        cli(capsys, "label", order_no, "--format", "pdf", "-o", tmp_path / "l.pdf", "--db", desk.path)[0] == 0
    )
    data = (tmp_path / "l.pdf").read_bytes()
    assert data.startswith(b"%PDF") and decode(pdf_image(data)) == {order_no, waybill}
    assert cli(capsys, "label", order_no, "-o", tmp_path / "l.svg", "--db", desk.path)[0] == 0  # by suffix
    assert svg_barcodes((tmp_path / "l.svg").read_bytes()) == {
        "barcode-waybill": {waybill},
        "barcode-order": {order_no},
    }


def test_label_zpl_to_stdout(
    desk: Store, shipped: tuple[str, str], capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    order_no, waybill = shipped
    code = main(["label", order_no, "--format", "zpl", "-o", "-", "--db", str(desk.path)])
    zpl = capsysbinary.readouterr().out.decode()
    assert code == 0 and zpl.startswith("^XA") and "^XZ" in zpl
    assert f"^FD{waybill}^FS" in zpl and f"^FD{order_no}^FS" in zpl
    assert "Items: 2" in zpl and "5号纸箱" in zpl


def test_label_goes_to_the_labels_folder_by_default(
    desk: Store, shipped: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    order_no, waybill = shipped
    code, out, err = cli(capsys, "label", order_no, "--db", desk.path)
    assert code == 0, err
    path = tmp_path / "labels" / f"{order_no}-{waybill}.pdf"
    assert path.exists() and str(path) in out


def test_label_print_command(
    desk: Store, shipped: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    order_no, _ = shipped
    spool = tmp_path / "spool"
    printer = f'{sys.executable} -c "import shutil,sys; shutil.copy(sys.argv[1], {str(spool)!r})"'
    code, _, err = cli(
        capsys, "label", order_no, "--format", "zpl", "--print", "--print-command", printer, "--db", desk.path
    )
    assert code == 0, err
    assert spool.read_text().startswith("^XA") and "Printed with" in err


def test_label_print_needs_a_command(
    desk: Store, shipped: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = cli(capsys, "label", shipped[0], "--print", "--db", desk.path)
    assert code == 2 and "ORDERDESK_PRINT_COMMAND" in err


def test_label_refusals(desk: Store, capsys: pytest.CaptureFixture[str]) -> None:
    draft = create_order(desk, customer="C001", lines=[("HX-M8", 1)], user="wang").order_no
    code, out, err = cli(capsys, "label", draft, "--db", desk.path)
    assert code == 1 and "no waybill yet" in err and out == "" and err.count("\n") == 1
    assert cli(capsys, "label", "SO-D1-0000999", "--db", desk.path)[0] == 1
    code, _, err = cli(capsys, "label", draft, "--format", "gif", "--db", desk.path)
    assert code == 2 and "svg, png, zpl, pdf" in err


def test_desk_card_barcodes_are_the_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "desk-card", "-o", tmp_path / "card.png")
    assert code == 0, err
    found = decode(Image.open(tmp_path / "card.png"))
    assert {"%CMD:SHIP", "%CMD:UNDO", "%CMD:CANCEL", "%CMD:NEXT", "*12"} <= found
    assert {f"%CMD:PRESET:{i}" for i in range(1, 7)} <= found
    assert cli(capsys, "desk-card", "-o", tmp_path / "card.svg")[0] == 0
    assert (tmp_path / "card.svg").read_bytes().startswith(b"<?xml")
    assert cli(capsys, "desk-card", "--format", "zpl")[0] == 2  # a desk card is printed on paper


def test_order_show_json_has_the_scanned_quantities(
    desk: Store, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    order_no = create_order(
        desk, customer="C001", lines=[("HX-M8", 5)], user="wang", route="from_stock"
    ).order_no
    move_order(desk, order_no=order_no, to="sign_contract", user="wang")
    move_order(desk, order_no=order_no, to="pick_from_stock", user="zhao")
    open_for_packing(desk, order_no=order_no, user="liu")
    record_scan(desk, user="liu", code=HX, multiplier=3)
    code, out, _ = cli(capsys, "order", "show", order_no, "--user", "liu", "--json", "--db", desk.path)
    assert code == 0
    (line,) = json.loads(out)["lines"]
    assert (line["sku"], line["quantity"], line["scanned_qty"], line["shipped_qty"]) == ("HX-M8", 5, 3, 0)


def test_the_audit_trail_shows_each_scan_and_the_shipment_with_who(
    desk: Store, shipped: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    order_no, waybill = shipped
    code, out, _ = cli(capsys, "audit", "--order", order_no, "--json", "--db", desk.path)
    assert code == 0
    entries = json.loads(out)
    scans = [e for e in entries if e["command"] == "record_scan"]
    assert [(e["user"], e["detail"]["sku"], e["detail"]["scanned"]) for e in scans] == [
        ("liu", "HX-M8", 1),
        ("liu", "HX-M8", 2),
    ]
    assert scans[1]["detail"]["batch"] == "LOT-9"
    (ship,) = [e for e in entries if e["command"] == "ship_order"]
    assert (
        ship["user"] == "liu" and ship["detail"]["waybill"] == waybill and ship["detail"]["to"] == "shipped"
    )
    code, out, _ = cli(capsys, "order", "show", order_no, "--json", "--db", desk.path)
    detail = json.loads(out)
    assert (
        detail["state"] == "shipped"
        and detail["lines"][0]["shipped_qty"] == 2
        and detail["waybill"] == waybill
    )
    assert cli(capsys, "audit", "--verify", "--db", desk.path)[0] == 0


def test_scan_list_and_release(desk: Store, capsys: pytest.CaptureFixture[str]) -> None:
    order_no = create_order(
        desk, customer="C001", lines=[("PT-RED", 1), ("HX-M8", 1)], user="wang", route="from_stock"
    ).order_no
    move_order(desk, order_no=order_no, to="sign_contract", user="wang")
    move_order(desk, order_no=order_no, to="pick_from_stock", user="zhao")
    open_for_packing(desk, order_no=order_no, user="liu")
    record_scan(desk, user="liu", code=HX)
    code, _, err = cli(capsys, "scan", "release", order_no, "PT-RED", "--user", "liu", "--db", desk.path)
    assert code == 1 and "supervisor" in err
    code, out, err = cli(
        capsys, "scan", "release", order_no, "PT-RED", "--user", "sun", "--reason", "DG ok", "--db", desk.path
    )
    assert code == 0, err
    record_scan(desk, user="liu", code="PT-RED")
    code, out, _ = cli(capsys, "scan", "list", order_no, "--json", "--db", desk.path)
    rows = json.loads(out)
    assert [(r["user"], r["sku"], r["qty"], r["undone"]) for r in rows] == [
        ("liu", "HX-M8", 1, False),
        ("liu", "PT-RED", 1, False),
    ]
    code, out, _ = cli(capsys, "scan", "list", order_no, "--db", desk.path)
    assert code == 0 and "PT-RED" in out
